"""Qiskit circuits as programs Kettle runs.

:func:`circuit_to_program` writes a circuit as OpenQASM 2 when that says
everything (no unbound parameters, no control flow, no classical
variables), else as OpenQASM 3, whose ``input float[64]`` declarations carry
the parameters; :attr:`Program.parameters` maps each Qiskit
:class:`~qiskit.circuit.Parameter` to the name its value is sent under in a
job's ``inputs``.

Before writing, every gate that Kettle's front end for that format does not
know by name is replaced by its definition (recursively), adding the
definition's global phase to the circuit's. The exporters would otherwise
write such gates as ``gate`` definitions, which cannot carry a global phase,
and the state vector would come back off by one. The circuit's own global
phase is not written either (OpenQASM 2 has no way to say it): it is kept in
:attr:`Program.global_phase`, and whoever reads a state vector multiplies by
``exp(i·global_phase)`` (the provider does).

Aer's noise instructions (``quantum_channel``: what an Aer noise model's
custom passes, such as ``NoiseModel.from_backend``'s relaxation during
``delay``, put into a circuit) are written as OpenQASM 3 noise pragmas
(``#pragma braket noise kraus(…)``), which Kettle's front end reads.

``delay`` is dropped (an ideal simulator has no time) and ``box`` is replaced
by its body. ``switch_case`` becomes a chain of ``if_else``: Qiskit writes
``switch`` only in a pre-standard syntax, and a chain tests each case in
order until one holds, as a ``switch`` does.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qiskit import QuantumCircuit, qasm2, qasm3
from qiskit.circuit import (
    CASE_DEFAULT,
    ClassicalRegister,
    Clbit,
    ControlFlowOp,
    Gate,
    IfElseOp,
    Parameter,
    ParameterExpression,
    SwitchCaseOp,
)
from qiskit.circuit.classical import expr
from qiskit.circuit.library import PauliEvolutionGate, UnitaryGate
from qiskit.quantum_info import Operator, SparsePauliOp

__all__ = [
    "QASM2_GATES",
    "QASM3_GATES",
    "Program",
    "UnsupportedCircuitError",
    "circuit_to_program",
    "has_control_flow",
]

#: Gates Kettle's OpenQASM 2 front end knows from ``qelib1.inc`` with the
#: same matrices as Qiskit's gates of these names (Qiskit's OpenQASM 2
#: exporter writes them without a definition).
QASM2_GATES = frozenset(
    {
        "id", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "sxdg",
        "rx", "ry", "rz", "p", "u1", "u2", "u3", "u",
        "cx", "cy", "cz", "ch", "csx", "cp", "cu1", "crx", "cry", "crz", "cu3", "cu",
        "swap", "ccx", "cswap", "rxx", "rzz",
    }
)  # fmt: skip

#: Gates of OpenQASM 3's ``stdgates.inc`` (and ``U``, which Qiskit's exporter
#: writes for ``u``), which Kettle's OpenQASM 3 front end knows.
QASM3_GATES = frozenset(
    {
        "id", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx",
        "rx", "ry", "rz", "p", "u1", "u2", "u3", "u",
        "cx", "cy", "cz", "ch", "cp", "crx", "cry", "crz", "cu",
        "swap", "ccx", "cswap",
    }
)  # fmt: skip

#: Non-gate instructions passed through as they are.
_PLAIN = frozenset({"measure", "reset", "barrier"})
#: Control flow Kettle's OpenQASM 3 front end runs (``box`` is inlined and
#: ``switch_case`` becomes ``if_else``).
_CONTROL_FLOW = frozenset({"if_else", "for_loop"})

# Qiskit's OpenQASM 3 exporter's rule for names it writes unchanged (ASCII and
# Greek letters, digits, underscore) and its escape for the others.
_VALID_IDENTIFIER = re.compile(r"[a-zA-Z\u0370-\u03ff_][a-zA-Z\u0370-\u03ff_0-9]*")
_BAD_IDENTIFIER_CHARACTERS = re.compile(r"[^a-zA-Z\u0370-\u03ff_0-9]")
_INPUT_DECLARATION = re.compile(r"^\s*input\s+float\[64\]\s+([^\s;]+)\s*;", re.M)


class UnsupportedCircuitError(ValueError):
    """The circuit uses something Kettle cannot run (the message says what)."""


@dataclass(frozen=True)
class Program:
    """A circuit as a Kettle program.

    ``format`` is ``"qasm2"`` or ``"qasm3"``; ``source`` the program text;
    ``parameters`` maps each parameter declared as an ``input`` in the
    source to its name there, in the order of ``circuit.parameters``;
    ``global_phase`` is the phase the source does not carry (a float, or a
    :class:`~qiskit.circuit.ParameterExpression` of the circuit's
    parameters); ``num_qubits``/``num_clbits`` are the circuit's.
    """

    format: str
    source: str
    parameters: dict[Parameter, str] = field(default_factory=dict)
    global_phase: float | ParameterExpression = 0.0
    num_qubits: int = 0
    num_clbits: int = 0

    @property
    def input_names(self) -> list[str]:
        """The ``input`` names, in the order of the circuit's parameters."""
        return list(self.parameters.values())

    def inputs(self, values: Mapping[Parameter | str, Any]) -> dict[str, Any]:
        """A job's ``inputs`` from values keyed by :class:`Parameter` (or by
        parameter name); each value is a number or a sequence of numbers
        (a sweep). Every declared parameter must have a value."""
        by_name = {p.name: p for p in self.parameters}
        out: dict[str, Any] = {}
        for key, value in values.items():
            param = by_name.get(key) if isinstance(key, str) else key
            if param is None or param not in self.parameters:
                raise KeyError(f"{key!r} is not a parameter of this program")
            out[self.parameters[param]] = _number_or_list(value)
        missing = [p.name for p in self.parameters if self.parameters[p] not in out]
        if missing:
            raise KeyError(f"no value for parameter(s) {', '.join(missing)}")
        return out

    def phase_value(self, values: Mapping[Parameter, float] | None = None) -> float:
        """The global phase as a number, with ``values`` bound."""
        phase = self.global_phase
        if isinstance(phase, ParameterExpression):
            bound = phase.assign_parameters({p: v for p, v in (values or {}).items() if p in phase.parameters})
            if bound.parameters:
                names = ", ".join(sorted(p.name for p in bound.parameters))
                raise ValueError(f"the global phase needs values for {names}")
            return float(bound)
        return float(phase)


def has_control_flow(circuit: QuantumCircuit) -> bool:
    """Whether the circuit contains a control-flow operation."""
    return any(isinstance(inst.operation, ControlFlowOp) for inst in circuit.data)


def circuit_to_program(circuit: QuantumCircuit, format: str | None = None) -> Program:
    """Writes ``circuit`` as a Kettle :class:`Program` (see the module doc).

    ``format`` forces ``"qasm2"`` or ``"qasm3"``; by default OpenQASM 2 is
    used where it suffices. Raises :class:`UnsupportedCircuitError` for an
    instruction Kettle cannot run (``initialize`` and the like are lowered
    through their definitions; Aer's ``save_*`` instructions are refused:
    the provider handles ``save_statevector`` itself).
    """
    needs3 = (
        bool(circuit.parameters)
        or has_control_flow(circuit)
        or _has_vars(circuit)
        or _has_channels(circuit)
    )
    if format is None:
        fmt = "qasm3" if needs3 else "qasm2"
    elif format in ("qasm2", "qasm3"):
        fmt = format
        if fmt == "qasm2" and needs3:
            raise UnsupportedCircuitError(
                "OpenQASM 2 cannot express this circuit (parameters, control flow or classical variables)"
            )
    else:
        raise ValueError(f"format must be 'qasm2' or 'qasm3', not {format!r}")
    native = QASM2_GATES if fmt == "qasm2" else QASM3_GATES
    channels: list[Any] = []
    lowered = _lower(circuit, native, fmt, 0, channels)
    lowered = _single_register_if_needed(lowered)
    global_phase = lowered.global_phase
    if not isinstance(global_phase, ParameterExpression) or not global_phase.parameters:
        global_phase = float(global_phase)
    # The source carries no global phase: write it with phase 0, so that the
    # exporters do not have to think about it.
    lowered.global_phase = 0.0
    try:
        if fmt == "qasm2":
            source = qasm2.dumps(lowered)
            return Program(fmt, source, {}, global_phase, circuit.num_qubits, circuit.num_clbits)
        program = _qasm3_program(lowered, global_phase, circuit.num_qubits, circuit.num_clbits)
        if channels:
            program = dataclasses.replace(program, source=_channels_as_pragmas(program.source, channels))
        return program
    except (qasm2.QASM2ExportError, qasm3.QASM3ExporterError) as e:
        raise UnsupportedCircuitError(f"cannot write circuit {circuit.name!r} as OpenQASM: {e}") from e


def _qasm3_program(circuit: QuantumCircuit, global_phase: Any, nq: int, nc: int) -> Program:
    params = list(circuit.parameters)
    source = qasm3.dumps(circuit)
    expected = {p: _exported_name(p.name) for p in params}
    declared = _INPUT_DECLARATION.findall(source)
    if sorted(declared) != sorted(expected.values()) or len(set(declared)) != len(declared):
        # The exporter renamed something (a clash with a register or gate
        # name): give every parameter a plain name of our own and try again.
        renames = {p: Parameter(f"_kettle_p{i}") for i, p in enumerate(params)}
        renamed = circuit.assign_parameters(renames, inplace=False)
        source = qasm3.dumps(renamed)
        expected = {p: renames[p].name for p in params}
        declared = _INPUT_DECLARATION.findall(source)
        if sorted(declared) != sorted(expected.values()):
            raise UnsupportedCircuitError(
                f"cannot tell which input the exporter named for each parameter (declared: {declared})"
            )
    return Program("qasm3", source, expected, global_phase, nq, nc)


def _exported_name(name: str) -> str:
    if _VALID_IDENTIFIER.fullmatch(name):
        return name
    return "_" + _BAD_IDENTIFIER_CHARACTERS.sub("_", name)


def _is_native(op: Any, native: frozenset[str]) -> bool:
    if op.name not in native or not isinstance(op, Gate):
        return False
    # A user's own gate that happens to be called "rz" is not Qiskit's.
    standard = getattr(op, "_standard_gate", None)
    return standard is not None or type(op).__module__.startswith("qiskit.circuit.library")


def _lower(
    circuit: QuantumCircuit, native: frozenset[str], fmt: str, depth: int, channels: list[Any]
) -> QuantumCircuit:
    if depth > 64:
        raise UnsupportedCircuitError("gate definitions nest more than 64 deep")
    out = circuit.copy_empty_like()
    for inst in circuit.data:
        op = inst.operation
        name = op.name
        if name == "delay":
            continue
        if name in _PLAIN or _is_native(op, native):
            out._append(inst)
            continue
        if name == "box":
            body = _lower(op.blocks[0], native, fmt, depth + 1, channels)
            out.compose(body, qubits=inst.qubits, clbits=inst.clbits, inplace=True)
            continue
        if isinstance(op, SwitchCaseOp) and fmt == "qasm3":
            op = _switch_as_if_else(op)
            name = op.name
        if isinstance(op, ControlFlowOp):
            if fmt != "qasm3" or name not in _CONTROL_FLOW:
                raise UnsupportedCircuitError(
                    f"Kettle cannot run `{name}` (control flow it runs: if_else, switch_case, for_loop, box)"
                )
            blocks = [_lower(b, native, fmt, depth + 1, channels) for b in op.blocks]
            out.append(op.replace_blocks(blocks), inst.qubits, inst.clbits, copy=False)
            continue
        if name == "quantum_channel" and fmt == "qasm3":
            # A marker gate of identity in its place, written as a pragma
            # once exported (`_channels_as_pragmas`).
            out.append(_ChannelMarker(len(channels), op.num_qubits), inst.qubits, copy=False)
            channels.append(op)
            continue
        if name.startswith(("save_", "set_")) or name in ("snapshot", "kraus", "superop", "quantum_channel"):
            raise UnsupportedCircuitError(
                f"Kettle cannot run Aer's `{name}` instruction"
                + (" (only save_statevector, before the final measurements)" if name.startswith("save_") else "")
            )
        if isinstance(op, PauliEvolutionGate):
            op = _exact_evolution(op)
        definition = getattr(op, "definition", None)
        if definition is None:
            raise UnsupportedCircuitError(f"Kettle cannot run `{name}`: it has no definition in known gates")
        body = _lower(definition, native, fmt, depth + 1, channels)
        out.compose(body, qubits=inst.qubits, clbits=inst.clbits, inplace=True)
    return out


#: Most qubits of a ``PauliEvolutionGate`` of non-commuting terms sent as
#: its exact unitary (a 2ⁿ × 2ⁿ matrix, synthesised by Qiskit).
EXACT_EVOLUTION_QUBITS = 8


class _ChannelMarker(Gate):
    """Where Aer's noise instruction number ``index`` stood: the identity,
    named so that the exported text can be found and replaced."""

    def __init__(self, index: int, num_qubits: int) -> None:
        super().__init__(f"{_CHANNEL_MARKER}{index}", num_qubits, [])

    def _define(self) -> None:
        self.definition = QuantumCircuit(self.num_qubits)


_CHANNEL_MARKER = "kettle_noise_channel_"
_MARKER_DEFINITION = re.compile(rf"gate {_CHANNEL_MARKER}\d+[^{{]*\{{[^}}]*\}}\n?")
_MARKER_CALL = re.compile(rf"^(\s*){_CHANNEL_MARKER}(\d+) ([^;]+);", re.MULTILINE)


def _has_channels(circuit: QuantumCircuit) -> bool:
    for inst in circuit.data:
        if inst.operation.name == "quantum_channel":
            return True
        if isinstance(inst.operation, ControlFlowOp) and any(_has_channels(b) for b in inst.operation.blocks):
            return True
    return False


def _braket_complex(z: complex) -> str:
    re_, im = float(z.real), float(z.imag)
    if im == 0.0:
        return repr(re_)
    return f"{re_!r} {'-' if im < 0 else '+'} {abs(im)!r}im"


def _kraus_pragma(op: Any, targets: str) -> str:
    """``#pragma braket noise kraus(…) targets`` for Aer's noise instruction
    ``op``. Braket's matrices have the first listed qubit as the most
    significant bit, Qiskit's as the least: the bits of each index are
    reversed."""
    from qiskit.quantum_info import Kraus

    n = op.num_qubits
    dim = 1 << n

    def rev(i: int) -> int:
        return int(format(i, f"0{n}b")[::-1], 2) if n > 1 else i

    matrices = []
    for k in Kraus(op._quantum_error).data:
        rows = []
        for r in range(dim):
            row = ", ".join(_braket_complex(k[rev(r)][rev(c)]) for c in range(dim))
            rows.append(f"[{row}]")
        matrices.append("[" + ", ".join(rows) + "]")
    return f"#pragma braket noise kraus({', '.join(matrices)}) {targets}"


def _channels_as_pragmas(source: str, channels: Sequence[Any]) -> str:
    """The exported ``source`` with each marker gate's definition removed
    and each call replaced by its channel's Kraus pragma."""
    source = _MARKER_DEFINITION.sub("", source)
    return _MARKER_CALL.sub(
        lambda m: m.group(1) + _kraus_pragma(channels[int(m.group(2))], m.group(3)), source
    )


def _exact_evolution(op: PauliEvolutionGate) -> Gate:
    """A ``PauliEvolutionGate`` as a gate whose definition is exact, as
    ``Statevector`` and ``StatevectorEstimator`` take it: its own (a product
    of exponentials, one per term) when the terms commute, else its unitary,
    up to :data:`EXACT_EVOLUTION_QUBITS` qubits with a bound time. Its
    default definition is one Trotter step, which is not the exponential
    of non-commuting terms."""
    operators = op.operator if isinstance(op.operator, list) else [op.operator]
    paulis = [p for o in operators for p in SparsePauliOp(o).paulis]
    if all(a.commutes(b) for i, a in enumerate(paulis) for b in paulis[i + 1 :]):
        return op
    if isinstance(op.params[0], ParameterExpression) and op.params[0].parameters:
        raise UnsupportedCircuitError(
            "Kettle cannot run a PauliEvolutionGate of non-commuting terms with an unbound time exactly "
            "(its definition is one Trotter step): bind the time, or synthesise it yourself first"
        )
    if op.num_qubits > EXACT_EVOLUTION_QUBITS:
        raise UnsupportedCircuitError(
            f"Kettle cannot run a PauliEvolutionGate of non-commuting terms on {op.num_qubits} qubits exactly "
            f"(its definition is one Trotter step; up to {EXACT_EVOLUTION_QUBITS} qubits are sent as their unitary): "
            "synthesise it yourself first, e.g. with qiskit.synthesis.SuzukiTrotter"
        )
    return UnitaryGate(Operator(op), check_input=False)


def _switch_as_if_else(op: SwitchCaseOp) -> IfElseOp:
    """``switch (t) { case a, b {A} case c {C} default {D} }`` as
    ``if (t == a || t == b) {A} else if (t == c) {C} else {D}``. Every block
    of a switch has the same bits, so each ``else`` body is a block emptied
    of its operations holding the next test."""
    target = op.target
    cases = list(op.cases_specifier())
    default = next((body for values, body in cases if CASE_DEFAULT in values), None)
    tests = [(values, body) for values, body in cases if CASE_DEFAULT not in values]
    if not tests:
        # Only a default: an always-true test keeps the bits the same.
        tests = [((), default)] if default is not None else []
        default = None
    chain: IfElseOp | None = None
    for values, body in reversed(tests):
        condition = _case_condition(target, values)
        else_body = default
        if chain is not None:
            else_body = body.copy_empty_like()
            else_body.append(chain, else_body.qubits, else_body.clbits, copy=False)
        chain = IfElseOp(condition, body, else_body)
        default = None
    if chain is None:
        raise UnsupportedCircuitError("a switch_case without cases")
    return chain


def _case_condition(target: Clbit | ClassicalRegister | expr.Expr, values: tuple[Any, ...]) -> expr.Expr:
    """``target == v₀ || target == v₁ || …``; no values: always true."""
    if not values:
        return expr.lift(True)
    tests = [expr.equal(target, bool(v) if isinstance(target, Clbit) else int(v)) for v in values]
    condition = tests[0]
    for test in tests[1:]:
        condition = expr.logic_or(condition, test)
    return condition


def _single_register_if_needed(circuit: QuantumCircuit) -> QuantumCircuit:
    """Kettle numbers classical bits in the order their registers are
    declared; when the circuit's registers do not list ``circuit.clbits`` in
    order (loose bits, overlapping or reordered registers), the bits are put
    in one fresh register so that bit ``i`` of a result is ``clbits[i]``."""
    in_order = [bit for creg in circuit.cregs for bit in creg]
    if in_order == list(circuit.clbits):
        return circuit
    if has_control_flow(circuit):
        raise UnsupportedCircuitError(
            "the classical registers do not cover the circuit's bits in order, and it has control flow"
        )
    names = {r.name for r in circuit.qregs} | {r.name for r in circuit.cregs}
    name = "c"
    while name in names:
        name += "_"
    creg = ClassicalRegister(circuit.num_clbits, name)
    out = QuantumCircuit(*circuit.qregs, creg, name=circuit.name, global_phase=circuit.global_phase)
    if circuit.num_qubits != sum(r.size for r in circuit.qregs):
        out = QuantumCircuit(circuit.num_qubits, 0, name=circuit.name, global_phase=circuit.global_phase)
        out.add_register(creg)
    out.compose(circuit, qubits=range(circuit.num_qubits), clbits=list(creg), inplace=True)
    return out


def _has_vars(circuit: QuantumCircuit) -> bool:
    n = 0
    for attr in ("num_vars", "num_stretches"):
        n += int(getattr(circuit, attr, 0) or 0)
    return n > 0


def _number_or_list(value: Any) -> float | list[float]:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"a parameter value must be a number or a sequence of numbers, not {value!r}")
    if isinstance(value, Iterable) or hasattr(value, "tolist"):
        seq = value.tolist() if hasattr(value, "tolist") else list(value)
        if isinstance(seq, (int, float)):
            return float(seq)
        return [float(v) for v in _flatten(seq)]
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        raise ValueError("parameter values must be finite")
    return v


def _flatten(seq: Sequence[Any]) -> Iterable[Any]:
    for v in seq:
        if isinstance(v, (list, tuple)):
            yield from _flatten(v)
        else:
            yield v
