"""Qiskit observables as Kettle Pauli sums.

Kettle's ``expectation`` result type takes observables as text such as
``"0.5*Z0 Z1 - 2 X2 + 1"`` (``crates/core/src/observable.rs``): terms
separated by ``+``/``-``, each an optional non-negative real weight
(optionally followed by ``*``) and Pauli factors written as a letter and a
qubit index; a term with a weight and no factor is a multiple of the
identity. Weights are real, so only Hermitian observables can be sent.

Qiskit's labels are little-endian (in ``"XIZ"`` the rightmost character acts
on qubit 0); the text names each qubit explicitly, so ``"XIZ"`` becomes
``"1.0*Z0 X2"``.

Accepted inputs are whatever :class:`~qiskit.primitives.containers.ObservablesArray`
accepts for one observable: :class:`~qiskit.quantum_info.SparsePauliOp`,
:class:`~qiskit.quantum_info.Pauli`, :class:`~qiskit.quantum_info.SparseObservable`
(projector terms such as ``"0"``, ``"+"`` or ``"r"`` are expanded into Paulis),
a label string, or a mapping from labels (or ``Pauli``) to real weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from qiskit.quantum_info import Pauli, SparseObservable, SparsePauliOp

__all__ = ["NonHermitianObservableError", "observable_to_pauli_sum", "to_sparse_observable"]

# A weight's imaginary part is "zero" below this, relative to the largest
# weight (and absolutely below it for tiny observables): round-off from
# products of Paulis, as numpy's real_if_close allows, but nothing a user
# wrote on purpose.
_IMAG_TOLERANCE = 1e-10


class NonHermitianObservableError(ValueError):
    """The observable has a weight with a non-zero imaginary part: Kettle
    computes expectation values of Hermitian observables (real weights on
    Pauli strings) only."""


def to_sparse_observable(observable: Any) -> SparseObservable:
    """``observable`` as a simplified :class:`SparseObservable` of Pauli
    terms (projectors expanded), with its weights still complex."""
    if isinstance(observable, SparseObservable):
        obs = observable
    elif isinstance(observable, SparsePauliOp):
        obs = SparseObservable.from_sparse_pauli_op(observable)
    elif isinstance(observable, Pauli):
        obs = SparseObservable.from_pauli(observable)
    elif isinstance(observable, str):
        try:
            obs = SparseObservable.from_label(observable)
        except Exception as exc:  # Qiskit raises ValueError with a terse message
            raise ValueError(f"`{observable}` is not an observable label: {exc}") from exc
    elif isinstance(observable, Mapping):
        terms = []
        for basis, coeff in observable.items():
            if isinstance(basis, str):
                terms.append((basis, coeff))
            elif isinstance(basis, Pauli):
                terms.append((basis[:].to_label(), (1j) ** basis.phase * coeff))
            else:
                raise TypeError(f"an observable's term must be a label or a Pauli, not {type(basis).__name__}")
        if not terms:
            raise ValueError("the observable has no terms")
        labels = {len(label) for label, _ in terms}
        if len(labels) != 1:
            raise ValueError(f"the labels of one observable have different lengths: {sorted(labels)}")
        obs = SparseObservable.from_list(terms)
    else:
        raise TypeError(
            f"{type(observable).__name__} is not an observable: use a SparsePauliOp, Pauli, "
            "SparseObservable, a label string or a mapping of labels to weights"
        )
    return _as_paulis(obs).simplify()


def _sparse_list(obs: SparseObservable) -> list[tuple[str, list[int], complex]]:
    """The terms of a Pauli-only observable as ``(label, qubits, weight)``,
    ``label[i]`` acting on ``qubits[i]``: ``to_sparse_list`` where Qiskit has
    it (2.0 and later), the same read off the terms on Qiskit 1.x."""
    if hasattr(obs, "to_sparse_list"):
        return [(label, list(indices), complex(coeff)) for label, indices, coeff in obs.to_sparse_list()]
    bit = SparseObservable.BitTerm
    names = {int(bit.X): "X", int(bit.Y): "Y", int(bit.Z): "Z"}
    return [
        ("".join(names[int(b)] for b in term.bit_terms), [int(i) for i in term.indices], complex(term.coeff))
        for term in obs
    ]


def _as_paulis(obs: SparseObservable) -> SparseObservable:
    """``obs`` with its projector terms (``+ - r l 0 1``) written as sums of
    Pauli strings: ``SparseObservable.as_paulis`` where Qiskit has it (2.0
    and later), the same expansion by hand on Qiskit 1.x."""
    if hasattr(obs, "as_paulis"):
        return obs.as_paulis()
    bit = SparseObservable.BitTerm
    # Each single-qubit factor as (Pauli, weight) pairs: a projector such as
    # |+⟩⟨+| is (I + X) / 2.
    factors: dict[int, list[tuple[str, float]]] = {
        int(bit.X): [("X", 1.0)],
        int(bit.Y): [("Y", 1.0)],
        int(bit.Z): [("Z", 1.0)],
        int(bit.PLUS): [("I", 0.5), ("X", 0.5)],
        int(bit.MINUS): [("I", 0.5), ("X", -0.5)],
        int(bit.RIGHT): [("I", 0.5), ("Y", 0.5)],
        int(bit.LEFT): [("I", 0.5), ("Y", -0.5)],
        int(bit.ZERO): [("I", 0.5), ("Z", 0.5)],
        int(bit.ONE): [("I", 0.5), ("Z", -0.5)],
    }
    terms: list[tuple[str, list[int], complex]] = []
    for term in obs:
        expanded: list[tuple[str, list[int], complex]] = [("", [], complex(term.coeff))]
        for index, bit_term in zip(term.indices, term.bit_terms):
            expanded = [
                (paulis + p, qubits + [int(index)], weight * w) if p != "I" else (paulis, qubits, weight * w)
                for paulis, qubits, weight in expanded
                for p, w in factors[int(bit_term)]
            ]
        terms.extend(expanded)
    if not terms:
        return SparseObservable.zero(obs.num_qubits)
    return SparseObservable.from_sparse_list(terms, obs.num_qubits)


def _weight(value: float) -> str:
    # repr gives the shortest text that reads back as the same double, in a
    # form Kettle's parser reads ("0.5", "1e-05", "1e+22").
    return repr(float(value))


def observable_to_pauli_sum(observable: Any, num_qubits: int | None = None) -> str:
    """Kettle's text for one Hermitian observable.

    Args:
        observable: a ``SparsePauliOp``, ``Pauli``, ``SparseObservable``,
            label string or mapping of labels to weights.
        num_qubits: the circuit's qubit count; when given, an observable on
            more qubits, or acting on a qubit the circuit lacks, is refused.

    Returns:
        A Pauli sum such as ``"0.5*Z0 Z1 - 1.0*X2 + 0.25"``. Terms keep the
        order of the simplified observable; the zero observable is ``"0.0"``.

    Raises:
        NonHermitianObservableError: a weight has a non-zero imaginary part.
        ValueError: an observable wider than ``num_qubits`` acts on a qubit
            beyond it, a weight is not finite, or a label is invalid.
        TypeError: ``observable`` is not an observable.
    """
    obs = to_sparse_observable(observable)
    coeffs = np.asarray(obs.coeffs, dtype=complex)
    scale = max(1.0, float(np.max(np.abs(coeffs)))) if coeffs.size else 1.0
    terms = _sparse_list(obs)
    for label, indices, coeff in terms:
        if abs(complex(coeff).imag) > _IMAG_TOLERANCE * scale:
            factors = " ".join(f"{p}{q}" for p, q in zip(label, indices)) or "I"
            raise NonHermitianObservableError(
                f"the observable is not Hermitian: term {factors} has the complex weight {complex(coeff)}; "
                "Kettle computes expectation values of real-weighted sums of Pauli strings only"
            )
        if not math.isfinite(complex(coeff).real):
            raise ValueError(f"the observable has the non-finite weight {complex(coeff).real}")
    if num_qubits is not None:
        top = max((max(indices) for _, indices, _ in terms if indices), default=-1)
        if top >= num_qubits:
            raise ValueError(
                f"the observable acts on qubit {top}, but the circuit has {num_qubits} "
                f"qubit{'s' if num_qubits != 1 else ''} (0..{num_qubits - 1})"
                if num_qubits > 0
                else f"the observable acts on qubit {top}, but the circuit has no qubits"
            )
    parts: list[str] = []
    for label, indices, coeff in terms:
        weight = complex(coeff).real
        if weight == 0.0:
            continue
        factors = " ".join(f"{p}{q}" for p, q in sorted(zip(label, indices), key=lambda f: f[1]))
        body = f"{_weight(abs(weight))}*{factors}" if factors else _weight(abs(weight))
        if not parts:
            parts.append(f"-{body}" if weight < 0 else body)
        else:
            parts.append(f"{'-' if weight < 0 else '+'} {body}")
    return " ".join(parts) if parts else "0.0"
