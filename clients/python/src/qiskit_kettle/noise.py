"""Qiskit Aer noise models on Kettle.

A Kettle job takes a noise model as Qiskit Aer's
``NoiseModel.to_dict(serializable=True)`` (its ``noise_model`` member) and
applies it as Aer does: each quantum error after the gates it names, on the
qubits it names (or on all), and readout errors on measurements. The
``method`` member picks ``"statevector"`` (each shot follows one sampled
noise trajectory), ``"density_matrix"`` (exact) or ``"automatic"``.

Qiskit Aer is needed only to build a ``NoiseModel`` object (``from_backend``,
``NoiseModel()``); a dict in that form needs no Aer, and the provider
imports without it.

Before a noisy circuit is sent, the qubits no instruction touches are left
out (as Aer's truncation does), and the noise model keeps only the errors
on the qubits that remain, renumbered: a circuit transpiled for a
127-qubit device that uses 5 of them runs as 5 qubits, with a noise model
of those 5. Errors never act on a qubit without an instruction, so the
results are the same.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp, QuantumRegister

from kettle_client import noise_model_dict

from .convert import QASM2_GATES, QASM3_GATES

__all__ = [
    "METHODS",
    "NoiseSpec",
    "aer_noise_model",
    "check_method",
    "fit_circuit",
    "pauli_sum_qubits",
    "remap_pauli_sum",
    "restrict_noise",
    "sent_method",
    "used_qubits",
]

#: The ``method`` values a Kettle job accepts.
METHODS = ("automatic", "statevector", "density_matrix")

#: Instructions that touch no qubit's state (Kettle drops ``delay``).
_NO_TOUCH = frozenset({"barrier", "delay"})

_PAULI_FACTOR = re.compile(r"([XYZ])(\d+)")


def aer_noise_model() -> Any:
    """Qiskit Aer's ``NoiseModel`` class, or a clear :class:`ImportError`."""
    try:
        from qiskit_aer.noise import NoiseModel
    except ImportError as e:
        raise ImportError(
            "building a noise model needs Qiskit Aer (pip install qiskit-aer); a noise model given "
            "as the dict of NoiseModel.to_dict(serializable=True) needs no Aer"
        ) from e
    return NoiseModel


def check_method(method: Any) -> str:
    """``method`` if Kettle runs it, else a :class:`ValueError` naming it."""
    if method is None:
        return "automatic"
    if method not in METHODS:
        raise ValueError(
            f"Kettle simulates with method 'automatic', 'statevector' or 'density_matrix', not {method!r}"
        )
    return str(method)


def sent_method(method: Any, noisy: bool) -> str | None:
    """The ``method`` member of a job, or None to leave it out: an ideal
    circuit runs as a state vector whatever is asked, unless the density
    matrix is asked for (so that a server without noise support still runs
    it)."""
    method = check_method(method)
    if method == "density_matrix" or (noisy and method != "automatic"):
        return method
    return None


class NoiseSpec:
    """A noise model as sent to Kettle: its dict (None when it has no
    error, which Aer runs as ideal), converted once, and the custom passes
    of an Aer model (applied by Aer before running; not by Kettle)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.passes = list(getattr(model, "_custom_noise_passes", None) or [])
        if model is None:
            self.doc: dict[str, Any] | None = None
        else:
            doc = noise_model_dict(model)
            self.doc = doc if doc.get("errors") else None
        #: Names of the operations the model's quantum errors follow.
        self.noisy_names: frozenset[str] = frozenset(
            str(op)
            for error in (self.doc or {}).get("errors") or []
            if isinstance(error, Mapping) and error.get("type") != "roerror"
            for op in error.get("operations") or []
        )

    @property
    def noisy(self) -> bool:
        return self.doc is not None

    def with_custom_noise(self, circuit: QuantumCircuit) -> QuantumCircuit:
        """``circuit`` with the errors an Aer model's custom passes add, as
        Aer adds them before it runs a circuit (``NoiseModel.from_backend``'s
        thermal relaxation during each ``delay``, for its duration): Aer's
        noise instructions, which the program carries as Kraus pragmas."""
        if not self.passes or not _has(circuit, "delay"):
            return circuit
        from qiskit.transpiler import PassManager

        return PassManager(self.passes).run(circuit)

    def warn_unnamed(self, circuit: QuantumCircuit, program_format: str) -> None:
        """Warns when the circuit has a gate with errors in the model that
        its program does not keep by name (``ecr``, ``ryy``, …, or
        ``rxx`` in OpenQASM 3): it is sent as its definition, after which
        the errors on it do not apply."""
        kept = (QASM2_GATES if program_format == "qasm2" else QASM3_GATES) | {"measure", "reset"}
        lost = sorted((_names(circuit) & self.noisy_names) - kept)
        if lost:
            warnings.warn(
                f"circuit {circuit.name!r} has {', '.join(lost)}, with errors in the noise model, which Kettle's "
                f"{program_format} program sends as their definitions: those errors do not apply (transpile "
                "to other basis gates)",
                stacklevel=4,
            )

    def for_qubits(self, kept: Sequence[int] | None) -> dict[str, Any] | None:
        """The noise document for a circuit of which only the ``kept``
        qubits (old indices, in new order) remain; None: all of them."""
        if self.doc is None or kept is None:
            return self.doc
        return restrict_noise(self.doc, kept)


def restrict_noise(doc: Mapping[str, Any], kept: Sequence[int]) -> dict[str, Any]:
    """The noise document with only the errors on the ``kept`` qubits,
    renumbered (old index ``kept[i]`` becomes ``i``). Errors on all qubits
    stay as they are; a local error keeps its qubit tuples that lie within
    ``kept`` and is left out when none does."""
    new_index = {int(q): i for i, q in enumerate(kept)}
    errors = []
    for error in doc.get("errors") or []:
        if not isinstance(error, Mapping) or "noise_qubits" in error and error["noise_qubits"]:
            return dict(doc)  # a form this does not know: sent whole
        tuples = error.get("gate_qubits")
        if not tuples:
            errors.append(error)
            continue
        fitted = [[new_index[int(q)] for q in t] for t in tuples if all(int(q) in new_index for q in t)]
        if fitted:
            errors.append({**error, "gate_qubits": fitted})
    out = dict(doc)
    out["errors"] = errors
    return out


def _names(circuit: QuantumCircuit) -> set[str]:
    names: set[str] = set()
    for inst in circuit.data:
        names.add(inst.operation.name)
        for block in getattr(inst.operation, "blocks", ()) or ():
            names |= _names(block)
    return names


def _has(circuit: QuantumCircuit, name: str) -> bool:
    for inst in circuit.data:
        if inst.operation.name == name:
            return True
        for block in getattr(inst.operation, "blocks", ()) or ():
            if _has(block, name):
                return True
    return False


def used_qubits(circuit: QuantumCircuit) -> set[int]:
    """Indices of the qubits an instruction other than a barrier or a delay
    acts on (control flow counts for all the qubits it spans)."""
    used: set[int] = set()
    for inst in circuit.data:
        if inst.operation.name in _NO_TOUCH:
            continue
        used.update(circuit.find_bit(q).index for q in inst.qubits)
    return used


def fit_circuit(circuit: QuantumCircuit, also: Iterable[int] = ()) -> tuple[QuantumCircuit, list[int] | None]:
    """The circuit without the qubits nothing touches (besides ``also``),
    and the old index of each qubit kept (None when all are kept, or the
    circuit has control flow, which is sent as it is)."""
    used = used_qubits(circuit) | set(also)
    if len(used) >= circuit.num_qubits or any(isinstance(i.operation, ControlFlowOp) for i in circuit.data):
        return circuit, None
    kept = sorted(used) or [0]
    new_index = {circuit.qubits[q]: i for i, q in enumerate(kept)}
    qreg = QuantumRegister(len(kept), "q")
    out = QuantumCircuit(qreg, name=circuit.name, global_phase=circuit.global_phase, metadata=circuit.metadata)
    out.add_bits(circuit.clbits)
    for creg in circuit.cregs:
        out.add_register(creg)
    for inst in circuit.data:
        qubits = [q for q in inst.qubits if q in new_index]
        if inst.operation.name in _NO_TOUCH:
            if not qubits:
                continue
            if inst.operation.name == "barrier" and len(qubits) != inst.operation.num_qubits:
                out.barrier([qreg[new_index[q]] for q in qubits])
                continue
        out.append(inst.operation, [qreg[new_index[q]] for q in qubits], inst.clbits)
    return out, kept


def remap_pauli_sum(text: str, kept: Sequence[int] | None) -> str:
    """A Kettle Pauli sum with its qubit indices renumbered for a circuit
    of which only ``kept`` remain (all of its qubits must be kept)."""
    if kept is None:
        return text
    new_index = {q: i for i, q in enumerate(kept)}
    return _PAULI_FACTOR.sub(lambda m: f"{m.group(1)}{new_index[int(m.group(2))]}", text)


def pauli_sum_qubits(text: str) -> set[int]:
    """The qubit indices a Kettle Pauli sum names."""
    return {int(m.group(2)) for m in _PAULI_FACTOR.finditer(text)}
