#!/usr/bin/env bash
# Runs Kettle's fuzz targets: run.sh [SECONDS] [TARGET...]
#
# For each target (default: all four, one after another), copies the seeds in
# seeds/TARGET into the working corpus corpus/TARGET, then fuzzes for SECONDS
# (default 60) with a 10 s timeout per input (a hang is a finding) and a
# 2048 MB RSS limit (an out-of-memory is a finding). Prints, per target, the
# executions, the corpus size and the findings (files libFuzzer wrote to
# artifacts/TARGET/ during this run); the full log is logs/TARGET.log.
# Exits 1 when any target found something.
#
# Environment: SANITIZER (default `none`: the fuzzed crates have no unsafe
# code, and without ASan the targets run about twice as fast; `address` to
# turn it on), FUZZ_ARGS (extra libFuzzer flags, such as `-jobs=2`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

seconds="${1:-60}"
if [[ $# -gt 0 ]]; then shift; fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(qasm2 qasm3 json_circuit job_request)
fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
fi

# A nightly toolchain when rustup has one; otherwise stable told to accept
# the nightly flags cargo-fuzz passes.
cargo=(cargo)
if command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly'; then
    cargo=(cargo +nightly)
else
    export RUSTC_BOOTSTRAP=1
fi
if ! "${cargo[@]}" fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

sanitizer="${SANITIZER:-none}"
mkdir -p logs
"${cargo[@]}" fuzz build --fuzz-dir "$here" -s "$sanitizer"

status=0
summary=()
for target in "${targets[@]}"; do
    if [[ ! -f "fuzz_targets/$target.rs" ]]; then
        echo "no such target: $target" >&2
        exit 2
    fi
    mkdir -p "corpus/$target" "artifacts/$target"
    cp -n "seeds/$target/"* "corpus/$target/" 2>/dev/null || true
    before="$(ls "artifacts/$target" | sort)"
    log="logs/$target.log"
    echo "== $target: ${seconds}s, log in crates/fuzz/$log"
    set +e
    "${cargo[@]}" fuzz run --fuzz-dir "$here" -s "$sanitizer" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="artifacts/$target/" ${FUZZ_ARGS:-} \
        >"$log" 2>&1
    rc=$?
    set -e
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)"
    if [[ -z "$execs" ]]; then
        execs="$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)"
    fi
    corpus_size="$(ls "corpus/$target" | wc -l)"
    new="$(comm -13 <(echo "$before") <(ls "artifacts/$target" | sort) | sed '/^$/d')"
    if [[ -n "$new" || $rc -ne 0 ]]; then
        status=1
        findings="$(echo "$new" | sed "s|^|artifacts/$target/|" | paste -sd' ' -)"
        line="$target: ${execs:-?} executions, corpus $corpus_size, FINDINGS (exit $rc): ${findings:-none written, see $log}"
        grep -m3 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | sed 's/^/    /' || true
    else
        line="$target: ${execs:-?} executions, corpus $corpus_size, no findings"
    fi
    echo "$line"
    summary+=("$line")
done
echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$status"
