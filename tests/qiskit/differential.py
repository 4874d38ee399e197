#!/usr/bin/env python3
"""Differential test: Kettle's final state against Qiskit's, on random circuits.

Seeded random circuits from four generators (Qiskit's ``random_circuit``; one
over every standard gate Qiskit exports, with random angles, extra controls
with random control states, inverses and nested custom gates; OpenQASM 2 text
written directly; OpenQASM 3 text with gate modifiers, loops and math in the
angles) are written as OpenQASM 2 and OpenQASM 3 (``qiskit.qasm2.dumps``,
``qiskit.qasm3.dumps``, or the text itself), run with ``kettle run FILE
--statevector --json --format qasm2|qasm3``, and the state Kettle prints is
compared with ``Statevector(circuit)``: the fidelity |<qiskit|kettle>|^2 must
be at least 1 - 1e-10. The programs in regressions/ run first, every time.

A mismatch that Qiskit's own importer reproduces from the same text (the
exporter wrote something that does not mean the circuit) is reported as an
exporter problem, not as a Kettle failure. Every failing file is kept, with a
note, in a temporary folder printed in the summary, and the first few are cut
down to minimal failing programs.

Exit status: 0 when nothing failed, 1 on any failure, 2 on a usage error.
See README.md beside this file.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
from qiskit import QuantumCircuit, qasm2, qasm3
from qiskit.circuit import Gate
from qiskit.circuit.library import (
    MCPhaseGate,
    MCXGate,
    get_standard_gate_name_mapping,
)
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import Statevector

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qasm3_reference import load_qasm3  # noqa: E402

TOLERANCE = 1e-10

# Kettle's message for a program it recognises as OpenQASM 3 but cannot run.
UNSUPPORTED = re.compile(
    r"OpenQASM 3.*(cannot run|not (yet )?supported|unsupported)", re.IGNORECASE
)
QASM3_PROBE = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nh q[0];\n'

STANDARD = get_standard_gate_name_mapping()
# Everything Qiskit calls a standard gate, less non-unitary instructions and
# the zero-qubit global phase (neither exporter can write it as a gate call).
GATE_NAMES = sorted(
    n for n in STANDARD if n not in {"measure", "reset", "delay", "global_phase"}
)
SPECIAL_ANGLES = [0.0, math.pi, -math.pi, math.pi / 2, -math.pi / 2, math.pi / 4,
                  3 * math.pi / 4, 2 * math.pi, math.pi / 8]


# --------------------------------------------------------------------------
# Circuit generators


def angle(rng: np.random.Generator) -> float:
    if rng.random() < 0.2:
        return float(rng.choice(SPECIAL_ANGLES))
    return float(rng.uniform(-2 * math.pi, 2 * math.pi))


def standard_gate(name: str, rng: np.random.Generator) -> Gate:
    proto = STANDARD[name]
    return type(proto)(*[angle(rng) for _ in proto.params])


def random_gate(rng: np.random.Generator, n: int, depth: int = 0) -> Gate:
    """One random gate acting on at most `n` qubits."""
    r = rng.random()
    if r < 0.06 and n >= 4:
        k = int(rng.integers(3, min(n - 1, 5) + 1))
        return MCXGate(k, ctrl_state=int(rng.integers(0, 2**k)))
    if r < 0.10 and n >= 3:
        k = int(rng.integers(2, min(n - 1, 4) + 1))
        return MCPhaseGate(angle(rng), k)
    if r < 0.16 and n >= 2 and depth < 2:
        # A custom gate built from a sub-circuit: a gate definition in the file.
        m = int(rng.integers(1, min(n, 3) + 1))
        sub = QuantumCircuit(m, name=f"blk{int(rng.integers(1_000_000))}")
        for _ in range(int(rng.integers(1, 5))):
            g = random_gate(rng, m, depth + 1)
            sub.append(g, [int(q) for q in rng.permutation(m)[: g.num_qubits]])
        gate = sub.to_gate()
        if rng.random() < 0.3 and gate.num_qubits < n:
            gate = gate.control(1, ctrl_state=int(rng.integers(0, 2)))
        return gate
    fits = [g for g in GATE_NAMES if STANDARD[g].num_qubits <= n]
    gate = standard_gate(str(rng.choice(fits)), rng)
    if rng.random() < 0.12 and gate.num_qubits < n:
        k = int(rng.integers(1, min(n - gate.num_qubits, 3) + 1))
        gate = gate.control(k, ctrl_state=int(rng.integers(0, 2**k)))
    elif rng.random() < 0.08:
        gate = gate.inverse()
    return gate


def hand_rolled(seed: int, n: int, depth: int) -> QuantumCircuit:
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(n)
    for _ in range(depth * max(1, n // 2)):
        g = random_gate(rng, n)
        qc.append(g, [int(q) for q in rng.permutation(n)[: g.num_qubits]])
    return qc


# OpenQASM 2 text written directly, to reach the parts of the front end
# Qiskit's exporter never writes: every qelib1.inc gate by its own name,
# register broadcasting, several registers, barriers, expressions with every
# function and operator, literals in every form, parameterised definitions.
QELIB1 = {  # name: (parameters, qubits)
    "U": (3, 1), "CX": (0, 2), "u3": (3, 1), "u2": (2, 1), "u1": (1, 1), "cx": (0, 2),
    "id": (0, 1), "u0": (1, 1), "u": (3, 1), "p": (1, 1), "x": (0, 1), "y": (0, 1),
    "z": (0, 1), "h": (0, 1), "s": (0, 1), "sdg": (0, 1), "t": (0, 1), "tdg": (0, 1),
    "rx": (1, 1), "ry": (1, 1), "rz": (1, 1), "sx": (0, 1), "sxdg": (0, 1), "cz": (0, 2),
    "cy": (0, 2), "swap": (0, 2), "ch": (0, 2), "ccx": (0, 3), "cswap": (0, 3),
    "crx": (1, 2), "cry": (1, 2), "crz": (1, 2), "cu1": (1, 2), "cp": (1, 2),
    "cu3": (3, 2), "csx": (0, 2), "cu": (4, 2), "rxx": (1, 2), "rzz": (1, 2),
    "rccx": (0, 3), "rc3x": (0, 4), "c3x": (0, 4), "c3sqrtx": (0, 4), "c4x": (0, 5),
}


def literal(rng: np.random.Generator) -> tuple[str, float]:
    v = float(rng.uniform(-3, 3))
    form = int(rng.integers(6))
    if form == 0:
        k = int(rng.integers(0, 10))
        return str(k), float(k)
    if form == 1:
        return f"{v:.17g}", float(f"{v:.17g}")
    if form == 2:
        t = f"{v * 10:.6e}"
        return f"({t}/10)", float(t) / 10
    if form == 3:
        return "pi", math.pi
    if form == 4:
        t = f"{abs(v):.4f}".lstrip("0")  # ".1234"
        return t, float(t)
    t = f"{abs(v):.0f}."  # "2."
    return t, float(t)


def expression(rng: np.random.Generator, depth: int = 0,
               params: tuple[str, ...] = ()) -> tuple[str, float | None]:
    """A random parameter expression and its value (None when it uses gate
    parameters, whose values the call decides: only total functions then)."""
    if depth >= 3 or rng.random() < 0.35:
        if params and rng.random() < 0.5:
            return str(rng.choice(params)), None
        return literal(rng)
    a, va = expression(rng, depth + 1, params)
    op = int(rng.integers(10))
    if op < 4:
        b, vb = expression(rng, depth + 1, params)
        sym = "+-*/"[op]
        if sym == "/":
            if vb is None or abs(vb) < 0.25:
                b, vb = literal(rng)
                if abs(vb) < 0.25:
                    return f"({a}+{b})", None if va is None else va + vb
            return f"{a}/({b})", None if va is None else va / vb
        val = None if va is None or vb is None else {"+": va + vb, "-": va - vb, "*": va * vb}[sym]
        return f"({a} {sym} {b})", val
    if op == 4:
        return f"-{a}" if not a.startswith("-") else f"-({a})", None if va is None else -va
    if op in (5, 6):
        f = "sin" if op == 5 else "cos"
        return f"{f}({a})", None if va is None else getattr(math, f)(va)
    if va is None:
        return f"cos({a})", None
    if op == 7 and abs(va) < 5:
        return f"exp({a})", math.exp(va)
    if op == 8 and va > 0.01:
        return (f"ln({a})", math.log(va)) if rng.random() < 0.5 else (f"sqrt({a})", math.sqrt(va))
    if op == 9 and abs(math.cos(va)) > 0.2:
        return f"tan({a})", math.tan(va)
    if 0.1 < abs(va) < 3:
        k = int(rng.integers(-2, 4))
        return f"({a})^{k}" if k >= 0 else f"({a})^({k})", va**k
    return f"sin({a})", math.sin(va)


def param_text(rng: np.random.Generator, gate: str, params: tuple[str, ...] = ()) -> str:
    # Qiskit reads u0(n) as n identity delays: n must be an integer there.
    if gate == "u0":
        return str(int(rng.integers(0, 4)))
    return expression(rng, 0 if not params else 1, params)[0]


def qasm2_text(seed: int, n: int, depth: int) -> str:
    rng = np.random.default_rng(seed)
    # Split the n qubits over one to three registers.
    cuts = sorted(int(c) for c in rng.choice(np.arange(1, n), size=min(int(rng.integers(0, 3)), n - 1),
                                             replace=False)) if n > 1 else []
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, n])]
    regs = [(f"{'qrab'[i]}{i}", size) for i, size in enumerate(sizes)]
    qubits = [f"{r}[{j}]" for r, size in regs for j in range(size)]
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";']
    gates = {k: v for k, v in QELIB1.items() if v[1] <= n}
    for d in range(int(rng.integers(0, 3))):
        nq = int(rng.integers(1, min(n, 3) + 1))
        np_ = int(rng.integers(0, 3))
        params = tuple(f"th{j}" for j in range(np_))
        args = [f"a{j}" for j in range(nq)]
        body = []
        for _ in range(int(rng.integers(1, 5))):
            usable = [g for g, (_, k) in gates.items() if k <= nq]
            g = str(rng.choice(usable))
            gp, gq = gates[g]
            ps = ", ".join(param_text(rng, g, params) for _ in range(gp))
            qs = ", ".join(str(a) for a in rng.permutation(args)[:gq])
            body.append(f"{g}({ps}) {qs};" if gp else f"{g} {qs};")
        name = f"def{d}"
        head = f"gate {name}({', '.join(params)})" if params else f"gate {name}"
        lines.append(f"{head} {', '.join(args)} {{ {' '.join(body)} }}")
        gates[name] = (np_, nq)
    lines += [f"qreg {r}[{size}];" for r, size in regs]
    for _ in range(depth * max(1, n // 2)):
        g = str(rng.choice(list(gates)))
        gp, gq = gates[g]
        ps = ", ".join(param_text(rng, g) for _ in range(gp))
        call = f"{g}({ps})" if gp else g
        r = rng.random()
        same = [(name, size) for name, size in regs]
        if r < 0.1:
            lines.append(f"barrier {', '.join(str(rng.choice(qubits + [x for x, _ in regs])) for _ in range(2))};"
                         .replace(", ", ", ", 1))
            continue
        if r < 0.3 and len(regs) >= gq:
            # Broadcast over registers of one size, or single qubits beside them.
            size = int(rng.choice([s for _, s in regs]))
            pool = [name for name, s in same if s == size]
            if len(pool) >= 1:
                chosen = list(rng.permutation(pool))[:gq]
                used = set(chosen)
                others = [q for q in qubits if q.split("[")[0] not in used]
                operands = chosen + list(rng.permutation(others))[: gq - len(chosen)]
                if len(operands) == gq:
                    rng.shuffle(operands)
                    lines.append(f"{call} {', '.join(str(o) for o in operands)};")
                    continue
        qs = [str(q) for q in rng.permutation(qubits)[:gq]]
        lines.append(f"{call} {', '.join(qs)};")
    return "\n".join(lines) + "\n"


# OpenQASM 3 text written directly: every gate of stdgates.inc and the
# built-in U and gphase, under chains of modifiers (ctrl, negctrl, inv, pow),
# inside parameterised definitions that are themselves modified, with
# constants, math functions and `**` in the angles, loops and broadcasts.
STDGATES = {  # name: (parameters, qubits)
    "p": (1, 1), "x": (0, 1), "y": (0, 1), "z": (0, 1), "h": (0, 1), "s": (0, 1),
    "sdg": (0, 1), "t": (0, 1), "tdg": (0, 1), "sx": (0, 1), "rx": (1, 1), "ry": (1, 1),
    "rz": (1, 1), "cx": (0, 2), "cy": (0, 2), "cz": (0, 2), "cp": (1, 2), "crx": (1, 2),
    "cry": (1, 2), "crz": (1, 2), "ch": (0, 2), "swap": (0, 2), "ccx": (0, 3),
    "cswap": (0, 3), "cu": (4, 2), "CX": (0, 2), "phase": (1, 1), "cphase": (1, 2),
    "id": (0, 1), "u1": (1, 1), "u2": (2, 1), "u3": (3, 1), "U": (3, 1),
}


def angle3(rng: np.random.Generator, params: tuple[str, ...] = ()) -> str:
    r = rng.random()
    if params and r < 0.35:
        p = str(rng.choice(params))
        return [p, f"-{p}", f"{p} / 2", f"2 * {p} + 0.25"][int(rng.integers(4))]
    if r < 0.5:
        return f"{rng.uniform(-7, 7)!r}"
    if r < 0.65:
        k, d = int(rng.integers(-7, 8)), int(rng.choice([1, 2, 3, 4, 8]))
        c = str(rng.choice(["pi", "π", "tau", "τ"]))
        return f"{k} * {c} / {d}"
    if r < 0.8:
        f = str(rng.choice(["sin", "cos", "arctan", "exp", "sqrt"]))
        x = float(rng.uniform(0.05, 1.5))
        return f"{f}({x!r})"
    if r < 0.9:
        return f"arccos({rng.uniform(-1, 1)!r}) - arcsin({rng.uniform(-1, 1)!r})"
    return f"{rng.uniform(0.5, 1.5)!r} ** {int(rng.integers(-2, 4))} * euler"


# stdgates.inc gives u2 and u3 a global phase that Qiskit's importer drops
# (U2Gate, U3Gate): under a control it becomes a relative phase, so these two
# are never controlled (nor put in definitions, which may be).
PHASE_AMBIGUOUS = {"u2", "u3"}


def modifiers(rng: np.random.Generator, spare: int, powers: bool = True) -> tuple[str, int]:
    """A chain of modifiers and the control qubits it adds (at most `spare`)."""
    chain, added = [], 0
    for _ in range(int(rng.integers(0, 4))):
        r = rng.random()
        if r < 0.45 and added < spare:
            k = int(rng.integers(1, min(2, spare - added) + 1))
            word = str(rng.choice(["ctrl", "negctrl"]))
            chain.append(word if k == 1 else f"{word}({k})")
            added += k
        elif r < 0.7 or not powers:
            chain.append("inv")
        else:
            chain.append(f"pow({int(rng.integers(-2, 4))})")
    return "".join(f"{m} @ " for m in chain), added


def qasm3_text(seed: int, n: int, depth: int) -> str:
    rng = np.random.default_rng(seed)
    lines = ["OPENQASM 3.0;", 'include "stdgates.inc";']
    gates = {k: v for k, v in STDGATES.items() if v[1] <= n}
    for d in range(int(rng.integers(0, 3))):
        nq = int(rng.integers(1, min(n, 3) + 1))
        # Distinct names in every definition: Qiskit's importer fails when a
        # definition passes its parameter to one with a parameter of that name.
        params = tuple(f"t{d}_{j}" for j in range(int(rng.integers(0, 3))))
        args = [f"a{j}" for j in range(nq)]
        body = []
        for _ in range(int(rng.integers(1, 4))):
            g = str(rng.choice([g for g, (_, k) in gates.items()
                                if k <= nq and g not in PHASE_AMBIGUOUS]))
            gp, gq = gates[g]
            # Qiskit's importer cannot raise a gate with symbolic angles to a power.
            mods, extra = modifiers(rng, nq - gq, powers=False)
            ps = ", ".join(angle3(rng, params) for _ in range(gp))
            qs = ", ".join(str(a) for a in rng.permutation(args)[: gq + extra])
            body.append(f"  {mods}{g}({ps}) {qs};" if gp else f"  {mods}{g} {qs};")
        head = f"gate def{d}({', '.join(params)})" if params else f"gate def{d}"
        lines += [f"{head} {', '.join(args)} {{", *body, "}"]
        gates[f"def{d}"] = (len(params), nq)
    lines.append(f"qubit[{n}] q;")
    for _ in range(depth * max(1, n // 2)):
        r = rng.random()
        if r < 0.05:
            lines.append(f"gphase({angle3(rng)});")
            continue
        if r < 0.1:
            lines.append(f"ctrl @ gphase({angle3(rng)}) q[{int(rng.integers(n))}];")
            continue
        g = str(rng.choice(list(gates)))
        gp, gq = gates[g]
        mods, extra = modifiers(rng, 0 if g in PHASE_AMBIGUOUS else n - gq)
        ps = ", ".join(angle3(rng) for _ in range(gp))
        call = f"{mods}{g}({ps})" if gp else f"{mods}{g}"
        if r < 0.2 and gq + extra == 1:
            lines.append(f"{call} q;")  # broadcast over the register
        elif r < 0.3 and gq + extra == 1 and n > 1:
            lo = int(rng.integers(0, n - 1))
            lines.append(f"for uint i in [{lo}:{n - 1}] {{ {call} q[i]; }}")
        else:
            qs = ", ".join(f"q[{int(i)}]" for i in rng.permutation(n)[: gq + extra])
            lines.append(f"{call} {qs};")
    return "\n".join(lines) + "\n"


@dataclass
class Case:
    name: str
    circuit: QuantumCircuit
    origin: str
    qasm2: str | None = None  # the text, when written directly
    qasm3: str | None = None
    only: str | None = None  # the one format a saved program is in


REGRESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions")


def saved_programs() -> list[Case]:
    """The programs in regressions/, each compared with Qiskit's reading of it."""
    cases = []
    for name in sorted(os.listdir(REGRESSIONS)) if os.path.isdir(REGRESSIONS) else []:
        if not name.endswith(".qasm"):
            continue
        with open(os.path.join(REGRESSIONS, name)) as f:
            text = f.read()
        code = [l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("//")]
        fmt = "qasm3" if code and code[0].startswith("OPENQASM 3") else "qasm2"
        if fmt == "qasm2":
            qc = qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
        else:
            qc = load_qasm3(text)
        cases.append(Case(f"regressions/{name[:-5]}", qc, f"tests/qiskit/regressions/{name}",
                          **{fmt: text}, only=fmt))
    return cases


def generate(count: int, seed: int, max_qubits: int = 8) -> list[Case]:
    cases = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        n = int(rng.integers(1, max_qubits + 1))
        depth = int(rng.integers(1, 13))
        s = int(rng.integers(2**31))
        text = text3 = None
        if i % 4 == 0:
            qc = random_circuit(n, depth, max_operands=min(4, n), measure=False, seed=s)
            origin = f"random_circuit({n}, {depth}, max_operands={min(4, n)}, seed={s})"
        elif i % 4 == 1:
            qc = hand_rolled(s, n, depth)
            origin = f"hand_rolled(seed={s}, n={n}, depth={depth})"
        elif i % 4 == 3:
            # A program Qiskit's importer cannot read (it has gaps of its
            # own) is replaced by the next seed's.
            for attempt in range(10):
                text3 = qasm3_text(s + attempt, n, depth)
                try:
                    qc = load_qasm3(text3)
                    break
                except Exception:  # noqa: BLE001
                    if attempt == 9:
                        raise
            origin = f"qasm3_text(seed={s + attempt}, n={n}, depth={depth})"
        else:
            text = qasm2_text(s, n, depth)
            qc = qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
            origin = f"qasm2_text(seed={s}, n={n}, depth={depth})"
        qc.remove_final_measurements(inplace=True)
        cases.append(Case(f"c{i:04d}_{n}q", qc, origin, text, text3))
    return cases


# --------------------------------------------------------------------------
# Comparison


def fidelity(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.vdot(a, a).real, np.vdot(b, b).real
    if na == 0 or nb == 0:
        return 0.0
    return float(abs(np.vdot(a, b)) ** 2 / (na * nb))


def run_kettle(kettle: str, path: str, fmt: str, timeout: float,
               extra: tuple[str, ...] = ("--threads", "1")) -> tuple[np.ndarray | None, str]:
    """Kettle's state for one file, or None and the reason."""
    cmd = [kettle, "run", path, "--statevector", "--json", "--format", fmt, *extra]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    if p.returncode != 0:
        return None, (p.stderr.strip() or f"exit status {p.returncode}")
    try:
        out = json.loads(p.stdout)
        pairs = out["statevector"]
    except (ValueError, KeyError) as e:
        return None, f"no statevector in the output ({e}): {p.stdout[:300]!r} {p.stderr[:300]!r}"
    return np.array([complex(re_, im) for re_, im in pairs]), ""


def qiskit_reload(text: str, fmt: str) -> np.ndarray | None:
    """The state Qiskit's own importer gives the exported text, if it can read it."""
    try:
        if fmt == "qasm2":
            qc = qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
        else:
            qc = load_qasm3(text)
        return Statevector(qc).data
    except Exception:  # noqa: BLE001 - any importer failure just means "no opinion"
        return None


KEEP_LINE = re.compile(r"^\s*(OPENQASM|include|qreg|creg|qubit|bit|input)\b")


def shrink(text: str, fmt: str, kettle: str, extra: tuple[str, ...], tol: float,
           workdir: str, timeout: float) -> str:
    """A smaller program that still fails: statements are dropped one line at
    a time while Qiskit still reads the text and Kettle still disagrees with
    Qiskit's state for it (or still fails where Qiskit does not)."""
    path = os.path.join(workdir, f"shrink.{fmt}.qasm")

    def failing(candidate: str) -> bool:
        reference = qiskit_reload(candidate, fmt)
        if reference is None:
            return False
        with open(path, "w") as f:
            f.write(candidate)
        state, err = run_kettle(kettle, path, fmt, timeout, extra)
        if state is None:
            return not UNSUPPORTED.search(err)
        return state.shape != reference.shape or fidelity(reference, state) < 1 - tol

    lines = text.splitlines()
    if not failing(text):
        return text
    changed = True
    while changed:
        changed = False
        for i in reversed(range(len(lines))):
            if KEEP_LINE.match(lines[i]) or not lines[i].strip():
                continue
            candidate = lines[:i] + lines[i + 1:]
            if failing("\n".join(candidate) + "\n"):
                lines, changed = candidate, True
    os.remove(path)
    return "\n".join(lines) + "\n"


@dataclass
class Tally:
    total: int = 0
    passed: int = 0
    failed: list = field(default_factory=list)
    exporter: list = field(default_factory=list)  # Qiskit's export does not mean the circuit
    not_exported: int = 0  # Qiskit cannot write the circuit in this format
    unsupported: int = 0
    worst: float = 1.0
    worst_case: str = ""


def probe_qasm3(kettle: str, tmp: str) -> str | None:
    """None when this kettle runs OpenQASM 3, else its message."""
    path = os.path.join(tmp, "probe.qasm")
    with open(path, "w") as f:
        f.write(QASM3_PROBE)
    state, err = run_kettle(kettle, path, "qasm3", 30)
    os.remove(path)
    if state is not None:
        return None
    return err if UNSUPPORTED.search(err) else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kettle", default=os.environ.get("KETTLE_BIN"),
                    help="the kettle binary (default: $KETTLE_BIN)")
    ap.add_argument("--count", type=int, default=300, help="random circuits (default 300)")
    ap.add_argument("--seed", type=int, default=20261122, help="seed of the generators")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="kettle processes at once (default: CPU count)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--qasm3", dest="qasm3", action="store_const", const="require",
                   help="require OpenQASM 3: a build that does not support it fails")
    g.add_argument("--no-qasm3", dest="qasm3", action="store_const", const="skip",
                   help="test OpenQASM 2 only")
    ap.set_defaults(qasm3="try")
    ap.add_argument("--keep", action="store_true", help="keep every file, not just failures")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per kettle run")
    ap.add_argument("--max-qubits", type=int, default=8,
                    help="widest circuit (default 8; Kettle goes parallel from 15 qubits)")
    ap.add_argument("--tolerance", type=float, default=TOLERANCE,
                    help=f"accepted 1 - fidelity (default {TOLERANCE:g}; about 1e-5 for --precision f32)")
    ap.add_argument("--kettle-args", default="--threads 1",
                    help="more arguments for kettle run (default: '--threads 1'), "
                         "e.g. '--precision f32 --no-fusion --threads 2'")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every failure in full")
    ap.add_argument("--shrink", type=int, default=3, metavar="N",
                    help="cut the first N failures down to minimal programs, written "
                         "beside them as NAME.min.qasm (default 3; 0: off)")
    args = ap.parse_args(argv)
    if not args.kettle:
        ap.error("no kettle binary: pass --kettle PATH or set KETTLE_BIN")
    kettle = os.path.abspath(args.kettle)
    if not os.access(kettle, os.X_OK):
        ap.error(f"{kettle} is not an executable")

    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="kettle-differential-")
    formats = ["qasm2"]
    qasm3_note = None
    if args.qasm3 != "skip":
        formats.append("qasm3")
        qasm3_note = probe_qasm3(kettle, tmp)

    cases = saved_programs() + generate(args.count, args.seed, args.max_qubits)
    extra = tuple(args.kettle_args.split())
    tol = args.tolerance
    tallies = {f: Tally() for f in formats}
    jobs = []  # (case, fmt, path, text, reference)
    for case in cases:
        reference = Statevector(case.circuit).data
        for fmt in formats:
            if case.only not in (None, fmt):
                continue
            t = tallies[fmt]
            t.total += 1
            if fmt == "qasm3" and qasm3_note is not None:
                t.unsupported += 1
                continue
            try:
                if fmt == "qasm2":
                    text = case.qasm2 or qasm2.dumps(case.circuit)
                else:
                    text = case.qasm3 or qasm3.dumps(case.circuit)
            except Exception:  # noqa: BLE001 - Qiskit cannot write this circuit in fmt
                t.not_exported += 1
                continue
            path = os.path.join(tmp, f"{case.name.replace('/', '_')}.{fmt}.qasm")
            with open(path, "w") as f:
                f.write(f"// {case.origin}\n{text}")
            jobs.append((case, fmt, path, text, reference))

    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_kettle, kettle, j[2], j[1], args.timeout, extra): j for j in jobs}
        for fut in cf.as_completed(futures):
            case, fmt, path, text, reference = futures[fut]
            t = tallies[fmt]
            state, err = fut.result()
            if state is not None and state.shape != reference.shape:
                err = f"{len(state)} amplitudes, expected {len(reference)}"
                state = None
            fid = fidelity(reference, state) if state is not None else 0.0
            if state is not None and fid >= 1 - tol:
                t.passed += 1
                if fid < t.worst:
                    t.worst, t.worst_case = fid, case.name
                if not args.keep:
                    os.remove(path)
                continue
            reloaded = qiskit_reload(text, fmt)
            if state is None and reloaded is None and case.only is None:
                # Kettle refused a program that Qiskit cannot read back either.
                t.exporter.append((case.name, path, "Qiskit cannot read its own export; "
                                   f"kettle: {err.splitlines()[0][:150]}"))
                continue
            if state is not None:
                if reloaded is not None and fidelity(reference, reloaded) < 1 - tol \
                        and fidelity(reloaded, state) >= 1 - tol:
                    t.exporter.append((case.name, path, "Qiskit's own import of the text has "
                                       f"fidelity {fidelity(reference, reloaded):.6f} with the "
                                       "circuit; Kettle agrees with the import"))
                    continue
                err = f"fidelity {fid:.15f} (1 - {1 - fid:.3e})"
            if fid < t.worst:
                t.worst, t.worst_case = fid, case.name
            t.failed.append((case.name, path, err))
            with open(path + ".txt", "w") as f:
                f.write(f"{case.origin}\nkettle: {err}\n")

    shrunk = 0
    minimal: dict[str, str] = {}
    for fmt in formats:
        tallies[fmt].failed.sort()
        for name, path, err in tallies[fmt].failed:
            if shrunk >= args.shrink:
                break
            shrunk += 1
            with open(path) as f:
                text = f.read()
            small = shrink(text, fmt, kettle, extra, tol, tmp, args.timeout)
            minimal[path] = path[: -len(".qasm")] + ".min.qasm"
            with open(minimal[path], "w") as f:
                f.write(small)
    elapsed = time.monotonic() - started
    failures = 0
    saved = sum(1 for c in cases if c.only)
    print(f"kettle differential test: {saved} saved programs and {len(cases) - saved} random "
          f"circuits of 1 to {args.max_qubits} qubits "
          f"(seed {args.seed}), {kettle} {' '.join(extra)}, tolerance {tol:g}, {elapsed:.1f} s")
    for fmt in formats:
        t = tallies[fmt]
        if fmt == "qasm3" and qasm3_note is not None:
            print(f"  {fmt}: unsupported by this build ({t.unsupported} circuits not run): "
                  f"{qasm3_note.splitlines()[0]}")
            if args.qasm3 == "require":
                failures += t.unsupported
            continue
        ran = t.total - t.not_exported
        print(f"  {fmt}: {ran} run, {t.passed} passed, {len(t.failed)} failed"
              f"{f', {len(t.exporter)} Qiskit export problems (not counted)' if t.exporter else ''}"
              f"{f', {t.not_exported} not exportable by Qiskit' if t.not_exported else ''}"
              f"; worst fidelity 1 - {1 - t.worst:.2e}"
              f"{f' ({t.worst_case})' if t.worst_case else ''}")
        for name, path, err in t.failed[: None if args.verbose else 10]:
            first = err if args.verbose else err.splitlines()[0][:200]
            print(f"    FAIL {name} {path}: {first}")
            if path in minimal:
                n_lines = sum(1 for _ in open(minimal[path]))
                print(f"         minimal program ({n_lines} lines): {minimal[path]}")
        if len(t.failed) > 10 and not args.verbose:
            print(f"    … {len(t.failed) - 10} more (-v lists all)")
        for name, path, why in t.exporter:
            print(f"    export problem {name} {path}: {why}")
        failures += len(t.failed)
    kept = failures or any(t.exporter for t in tallies.values()) or args.keep
    if kept:
        print(f"  files kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    total_pass = sum(t.passed for t in tallies.values())
    print(f"{total_pass} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
