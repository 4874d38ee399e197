#!/usr/bin/env bash
# pass-ratio.sh: the time of one dense 1-qubit gate at n = 24 and 26 divided
# by the time of one full memory pass (read + write of the complex128 state,
# 2 * 16 * 2^n bytes) at the in-place bandwidth `bench-peers/bw` measures, in
# the same run.
#
# Steps: build bench-peers/bw.c to <target>/bw; run it (4 GiB of arrays, the
# thread counts below, best of 5 reps) before and after running
#   cargo bench --bench kernels -- '^(dense1q|memory_pass)/f64/n(24|26)/'
# with KETTLE_BENCH_THREADS set to the same thread counts; read criterion's
# estimates (mean of the per-iteration times) and print markdown tables. The
# pass time uses the better bw figure of the two runs (bw itself reports the
# best of its reps). Raw outputs stay in <target>/pass-ratio/.
#
# Environment:
#   BENCH_PEERS         folder holding bw.c (default: <repo>/../shared/bench-peers)
#   PASS_RATIO_THREADS  thread counts, comma list (default: 1,2)
#   PASS_RATIO_SIZES    qubit counts, comma list; dense1q has 20, 24, 26
#                       (default: 24,26)
#   BW_GIB, BW_REPS     bw's total array size in GiB and reps (default: 4, 5)
#   CARGO               cargo to use (default: cargo)
#
# Takes about 2 minutes on a 2-core machine (threads 1,2), once built. The machine should
# be otherwise idle; a shared one gives noisy numbers (the load average is
# printed with the results).
set -euo pipefail

die() {
    echo "pass-ratio.sh: $*" >&2
    exit 1
}

command -v python3 >/dev/null || die "python3 is needed (to read JSON)"
command -v gcc >/dev/null || die "gcc is needed (to build bw.c)"
CARGO=${CARGO:-cargo}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/.." && pwd))
cd "$root"

peers=${BENCH_PEERS:-$root/../shared/bench-peers}
bw_src=$peers/bw.c
[[ -f $bw_src ]] || die "bw.c not found at $bw_src (set BENCH_PEERS to the bench-peers folder)"

threads=${PASS_RATIO_THREADS:-1,2}
sizes=${PASS_RATIO_SIZES:-24,26}
bw_gib=${BW_GIB:-4}
bw_reps=${BW_REPS:-5}
[[ $threads =~ ^[0-9]+(,[0-9]+)*$ ]] || die "PASS_RATIO_THREADS must be a comma list of numbers, got '$threads'"
[[ $sizes =~ ^[0-9]+(,[0-9]+)*$ ]] || die "PASS_RATIO_SIZES must be a comma list of numbers, got '$sizes'"

target_dir=$("$CARGO" metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
out=$target_dir/pass-ratio
mkdir -p "$out"

# 1. bw.
bw=$target_dir/bw
echo "== building $bw from $bw_src" >&2
gcc -O3 -march=native -fopenmp "$bw_src" -o "$bw" || die "building bw.c failed"

# 2. Build the bench first so compiling does not overlap the measurements.
echo "== building the kernels bench" >&2
"$CARGO" bench --bench kernels --no-run

# Runs bw and keeps the JSON of its last line in $out/bw-$1.json.
run_bw() {
    echo "== $bw $bw_gib $threads $bw_reps ($1)" >&2
    "$bw" "$bw_gib" "$threads" "$bw_reps" | tee "$out/bw-$1.txt" >&2
    tail -n 1 "$out/bw-$1.txt" >"$out/bw-$1.json"
    python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$out/bw-$1.json" ||
        die "the last line of bw's output is not JSON (see $out/bw-$1.txt)"
}

# 3. Bandwidth right before the kernel measurements (and again right after:
# on a shared host the 2-thread figure moves by tens of percent).
run_bw before

# 4. Kernel benches. Only estimates written after this marker count.
marker=$out/started
touch "$marker"
sleep 1 # file times: make "newer than the marker" unambiguous
size_re=$(echo "$sizes" | tr ',' '|')
filter="^(dense1q|memory_pass)/f64/n($size_re)/"
echo "== KETTLE_BENCH_THREADS=$threads cargo bench --bench kernels -- '$filter'" >&2
KETTLE_BENCH_THREADS=$threads "$CARGO" bench --bench kernels -- "$filter" 2>&1 | tee "$out/bench.txt" >&2
run_bw after

# 5. Tables.
python3 - "$target_dir/criterion" "$out/bw-before.json" "$out/bw-after.json" "$marker" "$threads" "$sizes" <<'PY'
import json
import os
import sys

crit, bw_before, bw_after, marker, threads, sizes = sys.argv[1:7]
threads = [int(t) for t in threads.split(",")]
sizes = [int(n) for n in sizes.split(",")]
since = os.path.getmtime(marker)
bw_runs = {"before": json.load(open(bw_before)), "after": json.load(open(bw_after))}

# Every benchmark criterion measured in this run, by full id.
results = {}
for group in os.listdir(crit):
    gdir = os.path.join(crit, group)
    if not os.path.isdir(gdir):
        continue
    for bench in os.listdir(gdir):
        new = os.path.join(gdir, bench, "new")
        est_path = os.path.join(new, "estimates.json")
        meta_path = os.path.join(new, "benchmark.json")
        sample_path = os.path.join(new, "sample.json")
        if not (os.path.exists(est_path) and os.path.exists(meta_path)):
            continue
        if os.path.getmtime(est_path) < since:
            continue  # from an earlier run
        meta = json.load(open(meta_path))
        mean_ns = json.load(open(est_path))["mean"]["point_estimate"]
        best_ns = mean_ns
        if os.path.exists(sample_path):
            s = json.load(open(sample_path))
            best_ns = min(t / i for t, i in zip(s["times"], s["iters"]))
        results[meta["full_id"]] = (mean_ns, best_ns)

if not results:
    sys.exit("pass-ratio.sh: criterion wrote no estimates in this run")


def inplace(t):
    """bw's best in-place figure for t threads over both bw runs."""
    figures = [r["threads"][str(t)]["inplace"] for r in bw_runs.values() if str(t) in r["threads"]]
    return max(figures) if figures else None


def pass_s(n, t):
    """One read + write sweep of a complex128 state at bw's in-place rate."""
    gbs = inplace(t)
    return None if not gbs else 2 * 16 * 2**n / (gbs * 1e9)


def ms(x):
    return "-" if x is None else f"{x * 1e3:.2f}"


def ratio(a, b):
    return "-" if a is None or not b else f"{a / b:.2f}"


load = os.getloadavg()
first = bw_runs["before"]
print(f"bw: {first['array_bytes'] / 2**30 * 3:.2f} GiB of arrays, best of {first['reps']} reps, "
      f"run before and after the kernel benches; load average now "
      f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
print()
print("| bw run | threads | copy GB/s | triad GB/s | inplace GB/s |")
print("|---|---|---|---|---|")
for name, run in bw_runs.items():
    for t in threads:
        e = run["threads"].get(str(t))
        if e:
            print(f"| {name} | {t} | {e['copy']:.1f} | {e['triad']:.1f} | {e['inplace']:.1f} |")
print()
print("Dense 1-qubit gate (`u`, f64) vs one full memory pass: pass ms = "
      "2 * 16 * 2^n / BW_inplace with the better of the two bw runs; gate ms = "
      "criterion mean; best = fastest sample; last column: gate mean / "
      "`memory_pass` mean (same n and threads, measured minutes apart at most):")
print()
print("| n | qubit | threads | gate ms | pass ms | ratio | gate ms (best) | ratio (best) | vs memory_pass |")
print("|---|---|---|---|---|---|---|---|---|")
missing = []
for n in sizes:
    for q in (1, n - 2):
        for t in threads:
            key = f"dense1q/f64/n{n}/q{q}/t{t}"
            if key not in results:
                missing.append(key)
                continue
            mean_ns, best_ns = results[key]
            p = pass_s(n, t)
            own = results.get(f"memory_pass/f64/n{n}/pass/t{t}")
            own_s = None if own is None else own[0] * 1e-9
            print(f"| {n} | {q} | {t} | {ms(mean_ns * 1e-9)} | {ms(p)} | "
                  f"{ratio(mean_ns * 1e-9, p)} | {ms(best_ns * 1e-9)} | {ratio(best_ns * 1e-9, p)} | "
                  f"{ratio(mean_ns * 1e-9, own_s)} |")
print()
print("Kettle's own `memory_pass` (x = x*s + 1e-300 over a Vec<f64> of 16 * 2^n bytes) "
      "in the same run, against bw:")
print()
print("| n | threads | memory_pass ms | its GB/s | bw pass ms | memory_pass / bw pass |")
print("|---|---|---|---|---|---|")
for n in sizes:
    for t in threads:
        key = f"memory_pass/f64/n{n}/pass/t{t}"
        if key not in results:
            missing.append(key)
            continue
        mean_s = results[key][0] * 1e-9
        p = pass_s(n, t)
        gbs = 2 * 16 * 2**n / mean_s / 1e9
        print(f"| {n} | {t} | {ms(mean_s)} | {gbs:.1f} | {ms(p)} | {ratio(mean_s, p)} |")
if missing:
    print()
    print("missing (not measured in this run): " + ", ".join(missing))
    sys.exit(1)
PY
