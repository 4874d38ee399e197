#!/usr/bin/env python3
"""Adjoint gradients beside PennyLane Lightning's adjoint Jacobian.

One circuit, both simulators, double precision, the same thread count, in
alternating rounds: `--qubits` qubits and `--params` parameters, in layers of
one rotation per qubit (RX, RY, RZ in turn, each its own parameter) followed
by a CNOT ladder, and the expectation value of `Z0 Z1 + 0.5 X(n-1)`; the
gradient with respect to every parameter.

- Lightning: `lightning.qubit` with `diff_method="adjoint"`, timed around
  `qml.grad` (its forward run, the adjoint Jacobian and PennyLane's own
  overhead, which is milliseconds here); threads by `OMP_NUM_THREADS`, which
  the process is started with.
- Kettle: `kettle run FILE --expect … --gradient --json`, the program in
  OpenQASM 3 with one `input float` per parameter; the time is its
  `timing.gradient_seconds` (the angles' Jacobian from the program, the
  forward run and the backward walk; parsing the file once and the plain run
  before it are excluded, as PennyLane's tape construction is).

Both gradients are compared (they must agree to 1e-10), then the median time
of each over the rounds, and their ratio, is printed per thread count.

    python3 -m venv target/adjoint-bench-venv
    target/adjoint-bench-venv/bin/pip install pennylane==0.45.1 pennylane-lightning==0.45.0
    cargo build --release --bin kettle
    target/adjoint-bench-venv/bin/python benches/adjoint-vs-lightning.py \\
        --kettle target/release/kettle --qubits 20 --params 200 --threads 1,2 --rounds 3
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

GATES = ["rx", "ry", "rz"]


def angles(count: int) -> list[float]:
    # Fixed, irregular values: no rotation is trivial.
    return [0.1 + 0.37 * ((7 * i) % 17) for i in range(count)]


def program(n: int, p: int) -> str:
    lines = ["OPENQASM 3.0;", 'include "stdgates.inc";']
    lines += [f"input float[64] p{i};" for i in range(p)]
    lines.append(f"qubit[{n}] q;")
    k = 0
    layer = 0
    while k < p:
        for w in range(n):
            if k == p:
                break
            lines.append(f"{GATES[layer % 3]}(p{k}) q[{w}];")
            k += 1
        lines += [f"cx q[{w}], q[{w + 1}];" for w in range(n - 1)]
        layer += 1
    return "\n".join(lines) + "\n"


OBSERVABLE = "Z0 Z1 + 0.5*X{last}"


def time_kettle(kettle: str, path: str, values: list[float], n: int, threads: int):
    inputs = json.dumps({f"p{i}": v for i, v in enumerate(values)})
    out = subprocess.run(
        [kettle, "run", path, "--expect", OBSERVABLE.format(last=n - 1), "--gradient",
         "--inputs", inputs, "--threads", str(threads), "--json", "--quiet"],
        check=True, capture_output=True, text=True,
    ).stdout
    result = json.loads(out)
    g = result["gradients"][0]["gradient"]
    return float(result["timing"]["gradient_seconds"]), [g[f"p{i}"] for i in range(len(values))]


LIGHTNING = r"""
import json, sys, time
import pennylane as qml
from pennylane import numpy as pnp
n, p = int(sys.argv[1]), int(sys.argv[2])
values = json.loads(sys.argv[3])
dev = qml.device("lightning.qubit", wires=n)
gates = [qml.RX, qml.RY, qml.RZ]

@qml.qnode(dev, diff_method="adjoint")
def f(params):
    k = layer = 0
    while k < p:
        for w in range(n):
            if k == p:
                break
            gates[layer % 3](params[k], wires=w)
            k += 1
        for w in range(n - 1):
            qml.CNOT(wires=[w, w + 1])
        layer += 1
    return qml.expval(qml.Z(0) @ qml.Z(1) + 0.5 * qml.X(n - 1))

params = pnp.array(values, requires_grad=True)
grad = qml.grad(f)
grad(params)  # warm-up: compiles nothing, but loads the kernels
start = time.perf_counter()
g = grad(params)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "gradient": [float(x) for x in g]}))
"""


def time_lightning(n: int, p: int, values: list[float], threads: int):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run(
        [sys.executable, "-c", LIGHTNING, str(n), str(p), json.dumps(values)],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return float(result["seconds"]), result["gradient"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kettle", default="target/release/kettle")
    ap.add_argument("--qubits", type=int, default=20)
    ap.add_argument("--params", type=int, default=200)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n, p = args.qubits, args.params
    values = angles(p)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layers.qasm")
        with open(path, "w") as f:
            f.write(program(n, p))
        print(f"{n} qubits, {p} parameters, ⟨{OBSERVABLE.format(last=n - 1)}⟩, f64, "
              f"{args.rounds} alternating rounds (median)")
        print("threads   lightning s   kettle s   lightning/kettle   max |Δ gradient|")
        for threads in [int(t) for t in args.threads.split(",")]:
            times = {"lightning": [], "kettle": []}
            worst = 0.0
            for _ in range(args.rounds):
                tl, gl = time_lightning(n, p, values, threads)
                tk, gk = time_kettle(args.kettle, path, values, n, threads)
                times["lightning"].append(tl)
                times["kettle"].append(tk)
                worst = max(worst, max(abs(a - b) for a, b in zip(gl, gk)))
            assert worst < 1e-10, f"the gradients differ by {worst}"
            ml, mk = statistics.median(times["lightning"]), statistics.median(times["kettle"])
            print(f"{threads:>7}   {ml:>11.3f}   {mk:>8.3f}   {ml / mk:>16.2f}   {worst:>16.1e}")


if __name__ == "__main__":
    main()
