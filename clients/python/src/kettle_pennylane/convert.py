"""PennyLane tapes as Kettle programs (OpenQASM 3).

A tape whose wires are already the qubit indices ``0 … n-1`` (the device
maps its wire labels first) becomes::

    OPENQASM 3.0;
    include "stdgates.inc";
    input float[64] p0;
    input float[64] p1;
    qubit[2] q;
    bit[2] c;
    rx(p0) q[0];
    cx q[0], q[1];
    crz(p1) q[1], q[0];
    c = measure q;

Every gate parameter is its own ``input float[64] pK`` (``K`` the index of
the parameter on the tape), so tapes that differ only in their parameter
values (what parameter-shift and broadcasting make) are the same text and
travel as one Kettle sweep, and a gradient of the job's inputs is the
gradient of the tape's gate parameters. Gates that diagonalise sampled
observables are appended with literal angles. Every qubit is measured at
the end, ``c[i]`` from ``q[i]``: Kettle computes state vectors,
probabilities and expectation values before those final measurements.

Kettle's bit order is Qiskit's (qubit 0 is the rightmost character of a
bitstring and the least significant bit of a state index); PennyLane's is
big-endian (the first wire is the most significant): :func:`state_tensor`
and :func:`samples_array` convert.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pennylane as qml
from pennylane.operation import Operator

__all__ = [
    "NATIVE_GATES",
    "Program",
    "pauli_sum",
    "samples_array",
    "state_tensor",
    "tape_to_program",
]


def _angle(i: int) -> Callable[[list[str]], str]:
    return lambda p: p[i]


#: PennyLane operation name -> (OpenQASM 3 gate, its parameter texts from the
#: operation's). Only gates of the standard ``stdgates.inc`` (and the
#: built-ins ``U`` and ``gphase``) whose matrices equal PennyLane's,
#: global phase included; everything else is decomposed by PennyLane first.
NATIVE_GATES: dict[str, tuple[str, Callable[[list[str]], list[str]]]] = {
    "Identity": ("id", lambda p: []),
    "PauliX": ("x", lambda p: []),
    "PauliY": ("y", lambda p: []),
    "PauliZ": ("z", lambda p: []),
    "Hadamard": ("h", lambda p: []),
    "S": ("s", lambda p: []),
    "Adjoint(S)": ("sdg", lambda p: []),
    "T": ("t", lambda p: []),
    "Adjoint(T)": ("tdg", lambda p: []),
    "SX": ("sx", lambda p: []),
    "RX": ("rx", lambda p: [p[0]]),
    "RY": ("ry", lambda p: [p[0]]),
    "RZ": ("rz", lambda p: [p[0]]),
    "PhaseShift": ("p", lambda p: [p[0]]),
    "U1": ("p", lambda p: [p[0]]),
    # U2 and U3 are written as rz, ry, rz and a global phase (_gate_line),
    # so that they never depend on which global phase a server gives `U`.
    "U2": ("U", lambda p: [repr(math.pi / 2), p[0], p[1]]),
    "U3": ("U", lambda p: [p[0], p[1], p[2]]),
    "CNOT": ("cx", lambda p: []),
    "CY": ("cy", lambda p: []),
    "CZ": ("cz", lambda p: []),
    "CH": ("ch", lambda p: []),
    "SWAP": ("swap", lambda p: []),
    "Toffoli": ("ccx", lambda p: []),
    "CSWAP": ("cswap", lambda p: []),
    "ControlledPhaseShift": ("cp", lambda p: [p[0]]),
    "CRX": ("crx", lambda p: [p[0]]),
    "CRY": ("cry", lambda p: [p[0]]),
    "CRZ": ("crz", lambda p: [p[0]]),
    # PennyLane's GlobalPhase(φ) is exp(-iφ)·I, OpenQASM's gphase(γ) exp(iγ)·I.
    "GlobalPhase": ("gphase", lambda p: [f"-({p[0]})" if p[0].startswith("-") else f"-{p[0]}"]),
}

#: Operations that change nothing in an ideal simulation and are left out.
DROPPED = frozenset({"Barrier"})


def is_native(op: Operator) -> bool:
    """Whether ``op`` is sent as a gate as it is (the stopping condition of
    the device's decomposition)."""
    return op.name in NATIVE_GATES or op.name in DROPPED


@dataclass(frozen=True)
class Program:
    """One tape as Kettle's program: ``source`` (OpenQASM 3), the input
    names in the order of the tape's operation parameters and their
    values (``inputs[name]``)."""

    source: str
    names: list[str]
    values: list[float]
    num_qubits: int


def _literal(value: Any) -> str:
    v = float(np.real(qml.math.unwrap(value)))
    if not math.isfinite(v):
        raise ValueError(f"a gate parameter is not finite: {v}")
    return repr(v)


def _gate_line(op: Operator, params: list[str]) -> str:
    if op.name in DROPPED:
        return ""
    if op.name not in NATIVE_GATES:
        raise ValueError(f"operation {op.name} is not a Kettle gate (the device decomposes it first)")
    gate, texts = NATIVE_GATES[op.name]
    args = texts(params)
    if gate == "U":
        # PennyLane's U3(θ, φ, λ) is e^{i(φ+λ)/2} RZ(φ) RY(θ) RZ(λ).
        (qubit,) = (f"q[{int(w)}]" for w in op.wires)
        theta, phi, lam = args
        return f"rz({lam}) {qubit}; ry({theta}) {qubit}; rz({phi}) {qubit}; gphase(({phi} + {lam}) / 2);"
    head = f"{gate}({', '.join(args)})" if args else gate
    if op.name == "GlobalPhase":
        return f"{head};"
    qubits = ", ".join(f"q[{int(w)}]" for w in op.wires)
    return f"{head} {qubits};"


def tape_to_program(
    operations: Sequence[Operator],
    num_qubits: int,
    *,
    extra: Iterable[Operator] = (),
) -> Program:
    """The OpenQASM 3 program of ``operations`` on qubits ``0 … num_qubits-1``
    (their wires must be those integers), every parameter an input; then
    ``extra`` (diagonalising gates) with literal parameters; then every
    qubit measured into ``c``."""
    names: list[str] = []
    values: list[float] = []
    body: list[str] = []
    for op in operations:
        params: list[str] = []
        for value in op.data:
            name = f"p{len(names)}"
            v = float(np.real(qml.math.unwrap(value)))
            if not math.isfinite(v):
                raise ValueError(f"a parameter of {op.name} is not finite: {v}")
            names.append(name)
            values.append(v)
            params.append(name)
        line = _gate_line(op, params)
        if line:
            body.append(line)
    for op in extra:
        line = _gate_line(op, [_literal(v) for v in op.data])
        if line:
            body.append(line)
    n = max(int(num_qubits), 1)
    lines = ["OPENQASM 3.0;", 'include "stdgates.inc";']
    lines += [f"input float[64] {name};" for name in names]
    lines += [f"qubit[{n}] q;", f"bit[{n}] c;"]
    lines += body
    lines.append("c = measure q;")
    return Program("\n".join(lines) + "\n", names, values, n)


def _weight(value: float) -> str:
    # repr is the shortest text that reads back as the same double, in a form
    # Kettle's parser reads ("0.5", "1e-05").
    return repr(float(value))


def pauli_sum(sentence: Any, *, tolerance: float = 1e-10) -> str:
    """A :class:`~pennylane.pauli.PauliSentence` on integer wires as Kettle's
    Pauli-sum text (``"0.5*Z0 Z1 - 1.0*X2 + 0.25"``). Weights must be real
    (up to ``tolerance`` relative to the largest): Kettle's observables are
    Hermitian."""
    terms: list[tuple[list[tuple[int, str]], complex]] = []
    for word, coeff in sentence.items():
        c = complex(qml.math.unwrap(coeff))
        factors = sorted((int(w), str(p)) for w, p in word.items() if str(p) != "I")
        terms.append((factors, c))
    scale = max([1.0] + [abs(c) for _, c in terms])
    parts: list[str] = []
    for factors, c in terms:
        if abs(c.imag) > tolerance * scale:
            raise ValueError(f"the observable has the complex weight {c}; Kettle's observables are Hermitian")
        weight = c.real
        if weight == 0.0:
            continue
        if not math.isfinite(weight):
            raise ValueError(f"the observable has the non-finite weight {weight}")
        text = " ".join(f"{p}{w}" for w, p in factors)
        body = f"{_weight(abs(weight))}*{text}" if text else _weight(abs(weight))
        if not parts:
            parts.append(f"-{body}" if weight < 0 else body)
        else:
            parts.append(f"{'-' if weight < 0 else '+'} {body}")
    return " ".join(parts) if parts else "0.0"


def state_tensor(amplitudes: Sequence[complex] | np.ndarray, num_qubits: int) -> np.ndarray:
    """Kettle's state vector (index bit q is qubit q) as a tensor of shape
    ``(2,) * num_qubits`` whose axis i is qubit i (PennyLane's layout for
    wires ``0 … n-1``)."""
    vec = np.asarray(amplitudes, dtype=np.complex128)
    if num_qubits == 0:
        return vec.reshape(())
    tensor = vec.reshape((2,) * num_qubits)
    return np.transpose(tensor, tuple(range(num_qubits - 1, -1, -1)))


def sparse_to_dense(sparse: dict[str, complex], num_qubits: int) -> np.ndarray:
    """A ``sparse_statevector`` (bitstrings, qubit 0 rightmost) as the dense
    vector in Kettle's order."""
    vec = np.zeros(2**num_qubits, dtype=np.complex128)
    for key, amp in sparse.items():
        vec[int(key, 2)] = amp
    return vec


def samples_array(outcomes: Sequence[str], num_qubits: int) -> np.ndarray:
    """Kettle's outcome strings (classical bit i rightmost, bit i measured
    from qubit i) as PennyLane samples: shape ``(shots, num_qubits)``,
    column i the bit of wire i."""
    if not outcomes:
        return np.zeros((0, num_qubits), dtype=np.int64)
    digits = np.frombuffer("".join(outcomes).encode("ascii"), dtype=np.uint8) - ord("0")
    width = len(outcomes[0])
    table = digits.reshape(len(outcomes), width)[:, ::-1]
    return table[:, :num_qubits].astype(np.int64)
