#!/usr/bin/env python3
"""Checks the claims of circuits/ with Qiskit, independently of Kettle.

For every program in circuits/qasm2 and circuits/qasm3 this script

- parses it with Qiskit (``qasm2.loads``; for OpenQASM 3, ``qasm3.loads``
  on a copy whose ``for`` loops are unrolled and ``const``s substituted,
  which qiskit_qasm3_import cannot do itself: see qasm3_reference.py),
- computes the exact distribution of its classical bits (from
  ``Statevector`` when every measurement is final) and samples it with Aer,
- checks the result its header comment states (the table below), and that the
  OpenQASM 2 and 3 versions of a circuit agree,
- with ``--kettle PATH``, also runs ``kettle run --probabilities --json`` on it
  and compares Kettle's exact distribution with Qiskit's (OpenQASM 3 files
  only if that build runs OpenQASM 3).

Usage: check_circuits.py [--kettle PATH] (run.sh's venv has what it needs:
``target/qiskit-venv/bin/python tests/qiskit/check_circuits.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from qiskit import QuantumCircuit, qasm2, transpile
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_aer import AerSimulator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qasm3_reference import load_qasm3  # noqa: E402

ROOT = Path(__file__).resolve().parents[2] / "circuits"
SHOTS = 20_000


def load(path: Path) -> QuantumCircuit:
    text = path.read_text()
    if path.parent.name == "qasm3":
        return load_qasm3(text)
    return qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)


# --------------------------------------------------------------------------
# Distributions


def bitstring(value: int, width: int) -> str:
    return format(value, f"0{width}b") if width else ""


def exact_distribution(qc: QuantumCircuit) -> dict[str, float] | None:
    """Exact distribution of the classical bits when every measurement is
    final (None otherwise)."""
    body = QuantumCircuit(qc.num_qubits)
    finals: list[tuple[int, int]] = []
    measured: set[int] = set()
    for inst in qc.data:
        qs = [qc.find_bit(q).index for q in inst.qubits]
        if inst.operation.name == "measure":
            finals.append((qs[0], qc.find_bit(inst.clbits[0]).index))
            measured.add(qs[0])
        elif inst.operation.name == "barrier":
            continue
        else:
            # A gate after a measurement of its qubits, a reset or anything
            # classically controlled: not a unitary followed by measurements.
            if measured & set(qs) or inst.clbits or inst.operation.name == "reset":
                return None
            body.append(inst.operation, qs)
    probs = Statevector(body).probabilities()
    dist: dict[str, float] = {}
    for k, p in enumerate(probs):
        if p < 1e-15:
            continue
        value = 0
        for q, c in finals:
            if (k >> q) & 1:
                value |= 1 << c
        key = bitstring(value, qc.num_clbits)
        dist[key] = dist.get(key, 0.0) + float(p)
    return dist


def aer_counts(qc: QuantumCircuit, seed: int = 11) -> dict[str, int]:
    sim = AerSimulator()
    counts = sim.run(transpile(qc, sim), shots=SHOTS, seed_simulator=seed).result().get_counts()
    return {k.replace(" ", ""): v for k, v in counts.items()}


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


# --------------------------------------------------------------------------
# The claims of the header comments

GROVER4 = math.sin(7 * math.asin(0.25)) ** 2
UNIFORM4 = {bitstring(k, 4): 1 / 16 for k in range(16)}


def teleport_claim(dist: dict[str, float]) -> None:
    ones = sum(p for k, p in dist.items() if k[0] == "1")
    assert abs(ones - math.sin(0.35) ** 2) < 0.01, ones
    for m in ("00", "01", "10", "11"):
        pm = sum(p for k, p in dist.items() if k[1:] == m)
        assert abs(pm - 0.25) < 0.015, (m, pm)


def qaoa_claim(dist: dict[str, float]) -> None:
    top = sorted(dist, key=dist.get, reverse=True)[:2]
    assert set(top) == {"0101", "1010"}, top
    assert abs(dist["0101"] - 0.1638115) < 5e-7 and abs(dist["0000"] - 0.0073359) < 5e-7, dist


CLAIMS = {
    "bell": {"00": 0.5, "11": 0.5},
    "ghz": {"00000": 0.5, "11111": 0.5},
    "bernstein_vazirani": {"1011": 1.0},
    "deutsch_jozsa": {"101": 1.0},
    "grover3": lambda d: abs(d["101"] - math.sin(5 * math.asin(1 / math.sqrt(8))) ** 2) < 1e-12,
    "teleport": teleport_claim,
    "qft4": UNIFORM4,
    "iqft4": {"1011": 1.0},
    "qpe3": {"101": 1.0},
    "adder4": {"110110110": 1.0},
    "grover4": lambda d: abs(d["1101"] - GROVER4) < 1e-12
    and all(abs(p - (1 - GROVER4) / 15) < 1e-12 for k, p in d.items() if k != "1101"),
    "qaoa_maxcut": qaoa_claim,
}

KITE = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]


def check_claim(stem: str, dist: dict[str, float]) -> None:
    claim = CLAIMS[stem]
    if isinstance(claim, dict):
        assert total_variation(claim, dist) < 1e-9, (claim, dist)
    else:
        ok = claim(dist)
        assert ok is None or ok, dist


def check_qaoa_state(qc: QuantumCircuit) -> None:
    body = qc.remove_final_measurements(inplace=False)
    sv = Statevector(body)
    cost = SparsePauliOp.from_sparse_list(
        [("", [], len(KITE) / 2)] + [("ZZ", [i, j], -0.5) for i, j in KITE], 4)
    c = sv.expectation_value(cost).real
    assert abs(c - 3.2370967) < 5e-8, c
    for i, j in KITE:
        zz = sv.expectation_value(SparsePauliOp.from_sparse_list([("ZZ", [i, j], 1)], 4)).real
        want = -0.2223881 if (i, j) == (0, 2) else -0.3129513
        assert abs(zz - want) < 5e-8, (i, j, zz)


H2 = SparsePauliOp.from_list([
    ("II", -1.052373245772859), ("ZI", 0.39793742484318045), ("IZ", -0.39793742484318045),
    ("ZZ", -0.01128010425623538), ("XX", 0.18093119978423156)])


def check_vqe(path: Path) -> None:
    qc = load(path)
    params = {p.name: p for p in qc.parameters}
    assert set(params) == {"theta", "phi"}, params
    sv = Statevector(qc.assign_parameters({params["theta"]: 0.3, params["phi"]: 1.1}))
    want = [0.8429516, 0.0781094, 0.5168180, 0.1273997]
    assert np.allclose(sv.data, want, atol=5e-8), sv.data
    ev = lambda s, op: sv.expectation_value(SparsePauliOp.from_list([(op, 1)])).real  # noqa: E731
    assert abs(ev(sv, "IZ") - math.cos(0.3)) < 1e-12
    assert abs(ev(sv, "ZZ") - math.cos(1.1)) < 1e-12
    assert abs(ev(sv, "XX") - math.sin(0.3)) < 1e-12
    assert abs(ev(sv, "ZI") - math.cos(0.3) * math.cos(1.1)) < 1e-12
    ground = Statevector(qc.assign_parameters({params["theta"]: -0.2235370, params["phi"]: math.pi}))
    e = ground.expectation_value(H2).real
    exact = min(np.linalg.eigvalsh(H2.to_matrix()))
    assert abs(e - exact) < 1e-9 and abs(exact - -1.8572750) < 5e-8, (e, exact)


# --------------------------------------------------------------------------


def kettle_distribution(kettle: str, path: Path, extra: list[str]) -> tuple[dict[str, float] | None, str]:
    p = subprocess.run([kettle, "run", str(path), "--probabilities", "--json", "--shots", "1",
                        *extra], capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        return None, p.stderr.strip()
    return json.loads(p.stdout).get("probabilities"), ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kettle", default=os.environ.get("KETTLE_BIN"), help="also check this kettle binary")
    args = ap.parse_args()
    failures = 0
    stems = sorted({p.stem for p in ROOT.glob("qasm*/*.qasm")})
    for stem in stems:
        dists = {}
        for fmt in ("qasm2", "qasm3"):
            path = ROOT / fmt / f"{stem}.qasm"
            if not path.exists():
                if stem != "vqe_ansatz":
                    print(f"MISSING {path.relative_to(ROOT.parent)}")
                    failures += 1
                continue
            label = path.relative_to(ROOT.parent)
            try:
                if stem == "vqe_ansatz":
                    check_vqe(path)
                    print(f"ok   {label}: state and expectations for theta=0.3, phi=1.1; H2 ground energy")
                    continue
                qc = load(path)
                exact = exact_distribution(qc)
                counts = aer_counts(qc)
                sampled = {k: v / SHOTS for k, v in counts.items()}
                if exact is not None:
                    tv = total_variation(exact, sampled)
                    assert tv < 0.03, f"Aer's counts are {tv:.3f} from the exact distribution"
                    dist = exact
                else:
                    dist = sampled
                check_claim(stem, dist)
                if stem == "qaoa_maxcut":
                    check_qaoa_state(qc)
                dists[fmt] = (dist, exact is not None)
                top = sorted(dist.items(), key=lambda kv: -kv[1])[:2]
                kind = "exact" if exact is not None else f"Aer, {SHOTS} shots"
                print(f"ok   {label}: {qc.num_qubits} qubits; top {', '.join(f'{k}: {p:.6f}' for k, p in top)} ({kind})")
                if args.kettle and exact is not None:
                    got, err = kettle_distribution(args.kettle, path, [])
                    if got is None and fmt == "qasm3" and "OpenQASM 3" in err:
                        print(f"     kettle: OpenQASM 3 unsupported by this build")
                    elif got is None:
                        raise AssertionError(f"kettle failed: {err}")
                    else:
                        tv = total_variation(exact, got)
                        assert tv < 1e-10, f"kettle's exact distribution is {tv:.2e} from Qiskit's"
                        print(f"     kettle agrees (total variation {tv:.1e})")
            except Exception as e:  # noqa: BLE001 - report and go on
                failures += 1
                print(f"FAIL {label}: {type(e).__name__}: {e}")
        if len(dists) == 2:
            (d2, e2), (d3, e3) = dists["qasm2"], dists["qasm3"]
            tol = 1e-10 if e2 and e3 else 0.03
            tv = total_variation(d2, d3)
            if tv > tol:
                failures += 1
                print(f"FAIL {stem}: qasm2 and qasm3 versions differ (total variation {tv:.3e})")
    print(f"{len(stems)} circuits: {'all claims hold' if not failures else f'{failures} failures'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
