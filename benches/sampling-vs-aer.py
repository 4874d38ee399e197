#!/usr/bin/env python3
"""Sampling speed beside Qiskit Aer: 1,000,000 shots from one 26-qubit state.

The circuit prepares a cheap but entangled state (h on every qubit, a seeded
rz on each, a cz chain) and measures every qubit, so that sampling, not
simulation, is most of the work. Both simulators run it at double precision
with the same thread count, in alternating rounds; each reports its own time
(Aer: the experiment's `time_taken`; Kettle: `seconds` of `kettle run --json`,
simulation and sampling, parsing and output excluded).

Run with the peers' virtual environment (it has qiskit-aer):

    ../shared/bench-peers/.venv/bin/python benches/sampling-vs-aer.py \
        --kettle target/release/kettle --qubits 26 --shots 1000000 --threads 1,2
"""

import argparse
import json
import random
import subprocess
import tempfile


def circuit(n: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n}];", f"creg c[{n}];"]
    lines += [f"h q[{q}];" for q in range(n)]
    lines += [f"rz({rng.uniform(0, 6.283):.6f}) q[{q}];" for q in range(n)]
    lines += [f"cz q[{q}],q[{q + 1}];" for q in range(n - 1)]
    lines += [f"h q[{q}];" for q in range(0, n, 2)]
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def time_kettle(kettle: str, path: str, shots: int, threads: int) -> float:
    out = subprocess.run(
        [kettle, "run", path, "--shots", str(shots), "--seed", "1", "--threads", str(threads),
         "--json", "--quiet"],
        check=True, capture_output=True, text=True,
    ).stdout
    result = json.loads(out)
    assert sum(result["counts"].values()) == shots, "kettle returned the wrong number of shots"
    return float(result["seconds"])


def time_aer(source: str, shots: int, threads: int) -> float:
    from qiskit import QuantumCircuit
    from qiskit_aer import AerSimulator

    qc = QuantumCircuit.from_qasm_str(source)
    sim = AerSimulator(method="statevector", precision="double", max_parallel_threads=threads)
    result = sim.run(qc, shots=shots, seed_simulator=1).result()
    assert sum(result.get_counts().values()) == shots
    return float(result.results[0].time_taken)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kettle", required=True)
    ap.add_argument("--qubits", type=int, default=26)
    ap.add_argument("--shots", type=int, default=1_000_000)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    source = circuit(args.qubits, 20261123)
    with tempfile.NamedTemporaryFile("w", suffix=".qasm", delete=False) as f:
        f.write(source)
        path = f.name
    print("| threads | round | kettle s | aer s | kettle/aer |")
    print("|---|---|---|---|---|")
    for threads in [int(t) for t in args.threads.split(",")]:
        for r in range(1, args.rounds + 1):
            k = time_kettle(args.kettle, path, args.shots, threads)
            a = time_aer(source, args.shots, threads)
            print(f"| {threads} | {r} | {k:.3f} | {a:.3f} | {k / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
