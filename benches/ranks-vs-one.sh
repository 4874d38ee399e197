#!/usr/bin/env bash
# ranks-vs-one.sh: a state split over 2 MPI ranks against one process, side
# by side on one machine (issue 20's "≤ 1.3× one process").
#
# For each bench circuit: `kettle bench --repeat 3` (best of 3) with one
# process × 2 threads, then `mpirun -np 2 BINARY bench … --threads 1` for
# each binary given (2 ranks × 1 thread: the same cores and memory bus), all
# back to back, ROUNDS times; one markdown row per circuit and round with
# the seconds, the ratios to the single process and the exchanges made.
# The single process runs with the first binary.
#
# Usage: benches/ranks-vs-one.sh [BINARY...]
#   (default: target/release/kettle, built with `--features mpi`)
# Environment:
#   BENCH_PEERS  folder holding circuits/ (default: <repo>/../shared/bench-peers)
#   SIZES        qubit counts, comma list (default: 24,26)
#   CIRCUITS     families, comma list (default: ghz,qft,qaoa,rqc)
#   ROUNDS       rounds (default: 2)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
peers="${BENCH_PEERS:-$root/../shared/bench-peers}"
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=("$root/target/release/kettle")
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# Seconds and exchanges from `kettle bench`'s JSON line.
read_bench() {
    python3 -c 'import json, sys
d = json.loads(sys.stdin.read().strip().splitlines()[-1])
print(d["seconds"], d.get("exchanges", "-"))'
}
header="| round | circuit | alone (s)"
for b in "${bins[@]}"; do header+=" | 2 ranks $(basename "$b") (s) | ratio | exchanges"; done
echo "$header |"
for round in $(seq "${ROUNDS:-2}"); do
    for n in $(echo "${SIZES:-24,26}" | tr , " "); do
        for c in $(echo "${CIRCUITS:-ghz,qft,qaoa,rqc}" | tr , ' '); do
            f="$peers/circuits/${c}_$n.qasm"
            read -r alone _ < <("${bins[0]}" bench "$f" --threads 2 --repeat 3 2>/dev/null | read_bench)
            row="| $round | ${c}_$n | $alone"
            for b in "${bins[@]}"; do
                read -r t x < <(mpirun -np 2 "$b" bench "$f" --threads 1 --repeat 3 2>/dev/null | read_bench)
                row+=" | $t | $(python3 -c "print(f'{$t / $alone:.2f}')") | $x"
            done
            echo "$row |"
        done
    done
done
