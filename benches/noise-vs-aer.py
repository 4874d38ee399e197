#!/usr/bin/env python3
"""Noisy simulation beside Qiskit Aer (and qsim's trajectories): issue 18.

One layered circuit family throughout: `layers` times an `ry` (seeded random
angle) on every qubit then a `cx` on every neighbouring pair (i, i+1),
measure all. Noise is a Qiskit Aer `NoiseModel`: `depolarizing_error(p1, 1)`
on every `ry` and `depolarizing_error(p2, 2)` on every `cx` (p1 = 0 leaves
the `ry` noiseless). Aer runs that model; Kettle runs the same model
serialised with `NoiseModel.to_dict(serializable=True)` and given to
`kettle run --noise-model`, so both simulate the same channels.

Cases (each Kettle beside its peers in the same run, alternating):

(a) 14 qubits, 30 layers, 10,000 shots (Aer issue 1979's circuit), two
    models: p1 = 0.001, p2 = 0.01, and the issue's own (cx only, 0.001).
    Kettle `--method automatic` (its choice is printed; when it chooses the
    state vector, that run *is* the `statevector` run) at `--threads` and
    at 1 thread, and the noiseless circuit; Aer `method="statevector"`,
    noisy and noiseless. Aer simulates every shot on its
    own, so its time is linear in the shots: it runs `--aer-shots` (1,000 by
    default; 10,000 take about 6 minutes here) and its time is also given
    scaled to Kettle's shots.
(b) density matrix at 10 … 13 qubits, `--dm-layers` layers, same noise,
    10,000 shots: Kettle `--method density_matrix`, Aer
    `method="density_matrix"`.
(c) 24 qubits, `--big-layers` layers, trajectories: Kettle `--method
    statevector` with `--big-shots` shots (time per distinct trajectory),
    Aer `method="statevector"` and qsim (`qsimcirq.QSimSimulator`, cirq's
    `depolarize(3p1/4)` and `depolarize(15p2/16, n_qubits=2)`: the same Pauli
    channels) with `--big-peer-shots` shots (each shot one trajectory).

What is timed (nothing a user pays is left out of Kettle's figure unless the
peer's figure leaves it out too):

- Kettle: `seconds` of `kettle run --json` (simulation and sampling) plus
  `timing.noise_model_seconds` (reading the JSON model and writing its
  channels into the circuit). Parsing the QASM file is excluded, as Aer's
  circuit construction and transpilation are.
- Aer: the experiment's `time_taken` (its C++ run: noise sampling, every
  shot, measurement); the wall time of `run().result()` is recorded too.
- qsim: the wall time of `QSimSimulator.run(circuit, repetitions)` in the
  process (cirq → qsim translation included; milliseconds). complex64.

Both agree statistically or the script says so: the counts are cut into
blocks of 4 qubits' marginals and each block's two samples (Kettle's, the
peer's) go through a chi-square test of homogeneity; the smallest p-value
over the blocks is printed (Bonferroni-corrected: ≥ 0.01 means compatible),
with the same test of Kettle's *noiseless* counts against the peer's noisy
ones beside it, to show the test can tell the noise apart.

    python3 -m venv target/noise-bench-venv
    target/noise-bench-venv/bin/pip install qiskit==2.6.2 qiskit-aer==0.18.2 \\
        qsimcirq==0.22.1 cirq-core==1.7.0 -c ../shared/bench-peers/constraints.txt
    cargo build --release --bin kettle
    target/noise-bench-venv/bin/python benches/noise-vs-aer.py --kettle target/release/kettle
"""

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time


def layered(n: int, layers: int, seed: int = 18):
    from qiskit import QuantumCircuit

    rng = random.Random(seed * 1000 + n)
    qc = QuantumCircuit(n)
    for _ in range(layers):
        for q in range(n):
            qc.ry(rng.uniform(0.0, 2 * math.pi), q)
        for q in range(n - 1):
            qc.cx(q, q + 1)
    qc.measure_all()
    return qc


def noise_model(p1: float, p2: float):
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    nm = NoiseModel()
    if p1 > 0:
        nm.add_all_qubit_quantum_error(depolarizing_error(p1, 1), ["ry"])
    if p2 > 0:
        nm.add_all_qubit_quantum_error(depolarizing_error(p2, 2), ["cx"])
    return nm


class Files:
    """The QASM and model files Kettle reads, in a temporary folder."""

    def __init__(self, tmp: str):
        self.tmp = tmp

    def circuit(self, qc, name: str) -> str:
        from qiskit import qasm2

        path = os.path.join(self.tmp, f"{name}.qasm")
        with open(path, "w") as f:
            f.write(qasm2.dumps(qc))
        return path

    def model(self, nm, name: str) -> str:
        path = os.path.join(self.tmp, f"{name}.json")
        with open(path, "w") as f:
            json.dump(nm.to_dict(serializable=True), f)
        return path


def kettle(exe: str, qasm: str, model, method: str, shots: int, threads: int, seed: int):
    cmd = [exe, "run", qasm, "--shots", str(shots), "--seed", str(seed), "--threads",
           str(threads), "--method", method, "--json", "--quiet"]
    if model:
        cmd += ["--noise-model", model]
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    r = json.loads(out)
    assert sum(r["counts"].values()) == shots
    return {
        "seconds": float(r["seconds"]) + float(r["timing"].get("noise_model_seconds", 0.0)),
        "simulate_seconds": float(r["seconds"]),
        "noise_model_seconds": float(r["timing"].get("noise_model_seconds", 0.0)),
        "wall": wall,
        "method": r["method"],
        "trajectories": r.get("trajectories"),
        "stats": r["stats"],
        "counts": r["counts"],
    }


def aer(qc, nm, method: str, shots: int, threads: int, seed: int):
    from qiskit_aer import AerSimulator

    sim = AerSimulator(method=method, precision="double", noise_model=nm,
                       max_parallel_threads=threads)
    start = time.perf_counter()
    result = sim.run(qc, shots=shots, seed_simulator=seed).result()
    wall = time.perf_counter() - start
    counts = result.get_counts()
    assert sum(counts.values()) == shots
    return {"seconds": float(result.results[0].time_taken), "wall": wall,
            "method": result.results[0].metadata.get("method"), "counts": dict(counts)}


def qsim(n: int, layers: int, p1: float, p2: float, shots: int, threads: int, seed: int):
    import cirq
    import qsimcirq

    qc = layered(n, layers)
    qubits = cirq.LineQubit.range(n)
    ops = []
    for inst in qc.data:
        name = inst.operation.name
        qs = [qubits[qc.find_bit(q).index] for q in inst.qubits]
        if name == "ry":
            ops.append(cirq.ry(float(inst.operation.params[0])).on(*qs))
            if p1 > 0:
                ops.append(cirq.depolarize(3 * p1 / 4).on(*qs))
        elif name == "cx":
            ops.append(cirq.CNOT(*qs))
            if p2 > 0:
                ops.append(cirq.depolarize(15 * p2 / 16, n_qubits=2).on(*qs))
    # Aer's bitstrings: qubit 0 rightmost; the key lists qubits n-1 … 0.
    ops.append(cirq.measure(*reversed(qubits), key="m"))
    circuit = cirq.Circuit(ops)
    sim = qsimcirq.QSimSimulator(qsim_options={"t": threads}, seed=seed)
    start = time.perf_counter()
    result = sim.run(circuit, repetitions=shots)
    seconds = time.perf_counter() - start
    counts = {}
    for row in result.measurements["m"]:
        key = "".join(str(int(b)) for b in row)
        counts[key] = counts.get(key, 0) + 1
    return {"seconds": seconds, "wall": seconds, "counts": counts}


def compatibility(a: dict, b: dict, n: int, block: int = 4):
    """Smallest chi-square p-value of homogeneity over blocks of `block`
    qubits' marginals (Bonferroni-corrected), and the largest total
    variation distance between the two samples' block marginals."""
    from scipy.stats import chi2_contingency

    worst_p, worst_tvd = 1.0, 0.0
    blocks = [list(range(lo, min(lo + block, n))) for lo in range(0, n, block)]
    for qs in blocks:
        tables = []
        for counts in (a, b):
            m = {}
            for key, c in counts.items():
                bits = "".join(key.replace(" ", "")[n - 1 - q] for q in qs)
                m[bits] = m.get(bits, 0) + c
            tables.append(m)
        keys = sorted(set(tables[0]) | set(tables[1]))
        rows = [[t.get(k, 0) for k in keys] for t in tables]
        if len(keys) > 1:
            p = chi2_contingency(rows)[1]
            worst_p = min(worst_p, p * len(blocks))
        ta, tb = sum(rows[0]), sum(rows[1])
        tvd = 0.5 * sum(abs(x / ta - y / tb) for x, y in zip(*rows))
        worst_tvd = max(worst_tvd, tvd)
    return min(worst_p, 1.0), worst_tvd


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt(x, digits=3):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}" if x < 100 else f"{x:.1f}"


def case_a(args, files, out):
    n, layers, shots = 14, args.layers, args.shots
    qc = layered(n, layers)
    qasm = files.circuit(qc, "a")
    print(f"\n## (a) {n} qubits, {layers} layers ({layers * n} ry + {layers * (n - 1)} cx), "
          f"{shots} shots (Aer: {args.aer_shots}), {args.threads} threads, "
          f"{args.rounds} round(s), medians\n")
    print(f"| model | Kettle ideal s | Kettle noisy s (method) | Kettle noisy s, 1 thread | "
          f"distinct trajectories | Aer ideal s | Aer noisy s ({args.aer_shots} shots) | "
          f"Aer scaled to {shots} shots | Kettle ÷ Aer ({args.threads} threads; 1 thread) | "
          "Kettle noisy ÷ ideal | check p (noisy; ideal) | max TVD |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for label, p1, p2 in [("p1=0.001 ry, p2=0.01 cx", 0.001, 0.01),
                          ("issue 1979: cx 0.001", 0.0, 0.001)]:
        nm = noise_model(p1, p2)
        model = files.model(nm, f"a-{p1}-{p2}")
        t = {"ideal": [], "noisy": [], "noisy_t1": [], "aer": [], "aer_ideal": []}
        runs = {}
        for r in range(args.rounds):
            order = ["kettle", "aer"] if r % 2 == 0 else ["aer", "kettle"]
            for who in order:
                if who == "kettle":
                    ideal = kettle(args.kettle, qasm, None, "automatic", shots, args.threads, r + 1)
                    noisy = kettle(args.kettle, qasm, model, "automatic", shots, args.threads, r + 1)
                    t["ideal"].append(ideal["seconds"])
                    t["noisy"].append(noisy["seconds"])
                    runs["ideal"], runs["noisy"] = ideal, noisy
                    if args.threads != 1:
                        one = kettle(args.kettle, qasm, model, "automatic", shots, 1, r + 1)
                        t["noisy_t1"].append(one["seconds"])
                else:
                    a = aer(qc, nm, "statevector", args.aer_shots, args.threads, r + 1)
                    t["aer"].append(a["seconds"])
                    runs["aer"] = a
                    ai = aer(qc, None, "statevector", shots, args.threads, r + 1)
                    t["aer_ideal"].append(ai["seconds"])
        scaled = median(t["aer"]) * shots / args.aer_shots
        p_noisy, tvd = compatibility(runs["noisy"]["counts"], runs["aer"]["counts"], n)
        p_ideal, _ = compatibility(runs["ideal"]["counts"], runs["aer"]["counts"], n)
        kn, ki = median(t["noisy"]), median(t["ideal"])
        k1 = median(t["noisy_t1"])
        print(f"| {label} | {fmt(ki, 4)} | {fmt(kn)} ({runs['noisy']['method']}) | {fmt(k1)} | "
              f"{runs['noisy']['trajectories']} | {fmt(median(t['aer_ideal']), 4)} | "
              f"{fmt(median(t['aer']))} | {fmt(scaled)} | **{kn / scaled:.2f}**; "
              f"{k1 / scaled:.2f} | **{kn / ki:.0f}** | {p_noisy:.2g}; {p_ideal:.2g} | "
              f"{tvd:.3f} |", flush=True)
        out.append({"case": "a", "model": label, "times": t, "aer_scaled": scaled,
                    "trajectories": runs["noisy"]["trajectories"],
                    "method": runs["noisy"]["method"], "stats": runs["noisy"]["stats"],
                    "p_noisy": p_noisy, "p_ideal": p_ideal, "tvd": tvd})


def case_b(args, files, out):
    nm = noise_model(0.001, 0.01)
    model = files.model(nm, "b")
    shots = args.shots
    print(f"\n## (b) density matrix, {args.dm_layers} layers, p1=0.001 ry, p2=0.01 cx, "
          f"{shots} shots, {args.threads} threads, {args.rounds} round(s), medians\n")
    print("| qubits | gates | Kettle s | Aer s | Kettle ÷ Aer | check p (noisy; ideal) | max TVD |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for n in [int(x) for x in args.dm_qubits.split(",")]:
        qc = layered(n, args.dm_layers)
        qasm = files.circuit(qc, f"b{n}")
        tk, ta = [], []
        for r in range(args.rounds):
            order = ["kettle", "aer"] if r % 2 == 0 else ["aer", "kettle"]
            for who in order:
                if who == "kettle":
                    k = kettle(args.kettle, qasm, model, "density_matrix", shots, args.threads, r + 1)
                    tk.append(k["seconds"])
                else:
                    a = aer(qc, nm, "density_matrix", shots, args.threads, r + 1)
                    ta.append(a["seconds"])
        ideal = kettle(args.kettle, qasm, None, "automatic", shots, args.threads, 99)
        p_noisy, tvd = compatibility(k["counts"], a["counts"], n)
        p_ideal, _ = compatibility(ideal["counts"], a["counts"], n)
        mk, ma = median(tk), median(ta)
        print(f"| {n} | {args.dm_layers * (2 * n - 1)} | {fmt(mk)} | {fmt(ma)} | **{mk / ma:.2f}** | "
              f"{p_noisy:.2g}; {p_ideal:.2g} | {tvd:.3f} |", flush=True)
        out.append({"case": "b", "qubits": n, "kettle": tk, "aer": ta, "p_noisy": p_noisy,
                    "p_ideal": p_ideal, "tvd": tvd, "stats": k["stats"]})


def case_c(args, files, out):
    n, layers = 24, args.big_layers
    p1, p2 = 0.001, 0.01
    nm = noise_model(p1, p2)
    model = files.model(nm, "c")
    qc = layered(n, layers)
    qasm = files.circuit(qc, "c")
    print(f"\n## (c) {n} qubits, {layers} layers, p1=0.001 ry, p2=0.01 cx, trajectories, "
          f"{args.threads} threads, one run each\n")
    ideal = kettle(args.kettle, qasm, None, "automatic", args.big_shots, args.threads, 1)
    k = kettle(args.kettle, qasm, model, "statevector", args.big_shots, args.threads, 1)
    a = aer(qc, nm, "statevector", args.big_peer_shots, args.threads, 1)
    try:
        q = qsim(n, layers, p1, p2, args.big_peer_shots, args.threads, 1)
    except Exception as e:  # noqa: BLE001 — report, don't hide
        print(f"qsim failed: {e!r}")
        q = None
    print("| simulator | shots | distinct trajectories | s | s per trajectory | precision |")
    print("|---|--:|--:|--:|--:|---|")
    print(f"| Kettle, noiseless | {args.big_shots} | 1 | {fmt(ideal['seconds'])} | "
          f"{fmt(ideal['seconds'])} | complex128 |")
    kt = k["trajectories"]
    print(f"| Kettle | {args.big_shots} | {kt} | {fmt(k['seconds'])} | "
          f"**{fmt(k['seconds'] / kt)}** | complex128 |")
    print(f"| Aer statevector | {args.big_peer_shots} | {args.big_peer_shots} (one per shot) | "
          f"{fmt(a['seconds'])} | **{fmt(a['seconds'] / args.big_peer_shots)}** | complex128 |")
    if q:
        print(f"| qsim | {args.big_peer_shots} | {args.big_peer_shots} (one per shot) | "
              f"{fmt(q['seconds'])} | **{fmt(q['seconds'] / args.big_peer_shots)}** | complex64 |")
    print("\n(too few shots here for a statistical check)", flush=True)
    out.append({"case": "c", "kettle": k["seconds"], "kettle_ideal": ideal["seconds"],
                "trajectories": kt, "aer": a["seconds"], "qsim": q and q["seconds"],
                "stats": k["stats"]})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kettle", default="target/release/kettle")
    ap.add_argument("--cases", default="a,b,c")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--layers", type=int, default=30, help="(a)")
    ap.add_argument("--shots", type=int, default=10_000, help="(a), (b)")
    ap.add_argument("--aer-shots", type=int, default=1000, help="(a): Aer's shots")
    ap.add_argument("--dm-qubits", default="10,11,12,13", help="(b)")
    ap.add_argument("--dm-layers", type=int, default=2, help="(b)")
    ap.add_argument("--big-layers", type=int, default=5, help="(c)")
    ap.add_argument("--big-shots", type=int, default=20, help="(c): Kettle's shots")
    ap.add_argument("--big-peer-shots", type=int, default=4, help="(c): Aer's and qsim's shots")
    ap.add_argument("--json-out", help="write every figure here")
    args = ap.parse_args()
    started = time.perf_counter()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        files = Files(tmp)
        cases = args.cases.split(",")
        if "a" in cases:
            case_a(args, files, out)
        if "b" in cases:
            case_b(args, files, out)
        if "c" in cases:
            case_c(args, files, out)
    print(f"\n{time.perf_counter() - started:.0f} s in all; load average at the end: "
          f"{os.getloadavg()[0]:.2f}", file=sys.stderr)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
