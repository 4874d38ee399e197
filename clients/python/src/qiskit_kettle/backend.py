"""``KettleBackend``: a Qiskit ``BackendV2`` that runs circuits on a Kettle server."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from qiskit import QuantumCircuit
import qiskit.circuit
from qiskit.circuit import (
    ControlFlowOp,
    ForLoopOp,
    IfElseOp,
    Instruction,
    Measure,
    Parameter,
    Reset,
    SwitchCaseOp,
)
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.providers import BackendV2, Options
from qiskit.transpiler import Target

from kettle_client import Backend, KettleClient, KettleError

from .convert import QASM2_GATES, QASM3_GATES, UnsupportedCircuitError, circuit_to_program
from .job import Experiment, KettleJob
from .noise import METHODS, NoiseSpec, aer_noise_model, check_method, fit_circuit, sent_method

if TYPE_CHECKING:
    from .provider import KettleProvider

__all__ = ["KettleBackend", "SaveStatevector", "build_target", "save_statevector"]


class SaveStatevector(Instruction):
    """Qiskit Aer's ``save_statevector`` instruction, for users without Aer:
    Kettle's backend reads any instruction of that name, Aer's included."""

    def __init__(self, num_qubits: int, label: str = "statevector") -> None:
        super().__init__("save_statevector", num_qubits, 0, [], label=label)


def save_statevector(circuit: QuantumCircuit) -> QuantumCircuit:
    """Appends ``save_statevector`` on all qubits, as Aer's
    ``QuantumCircuit.save_statevector()`` does; returns the circuit."""
    circuit.append(SaveStatevector(circuit.num_qubits), circuit.qubits)
    return circuit

#: Kettle's names that Qiskit spells differently.
_QISKIT_NAMES = {"gphase": "global_phase", "i": "id"}
#: Instructions the provider accepts besides gates; ``delay`` is dropped
#: (ideal simulation has no time), ``box`` is replaced by its body and
#: ``switch_case`` by a chain of ``if_else``.
_CONTROL_FLOW: dict[str, type[Instruction]] = {"if_else": IfElseOp, "switch_case": SwitchCaseOp, "for_loop": ForLoopOp}
if hasattr(qiskit.circuit, "BoxOp"):  # Qiskit 2.0 and later
    _CONTROL_FLOW["box"] = qiskit.circuit.BoxOp
_RUN_OPTIONS = (
    "shots", "seed_simulator", "memory", "precision", "parameter_binds", "name", "tags", "priority",
    "noise_model", "method",
)  # fmt: skip


def build_target(info: Backend, *, precision: str = "f64", description: str | None = None) -> Target:
    """A :class:`~qiskit.transpiler.Target` for a Kettle server: its gates
    (ideal, on every qubit: no coupling map), ``measure``, ``reset``,
    ``delay``, ``if_else``, ``switch_case``, ``for_loop``, ``box`` and
    ``save_statevector``,
    and as many qubits as
    the server runs at ``precision``."""
    from qiskit.circuit import Delay

    mapping = get_standard_gate_name_mapping()
    target = Target(
        description=description or f"Kettle {info.version} ({info.simulator})",
        num_qubits=info.qubit_limit(precision),
    )
    for name in info.gates:
        qname = _QISKIT_NAMES.get(name, name)
        gate = mapping.get(qname)
        if gate is None or qname in target:
            continue
        target.add_instruction(gate, name=qname)
    target.add_instruction(Measure(), name="measure")
    target.add_instruction(Reset(), name="reset")
    target.add_instruction(Delay(Parameter("t")), name="delay")
    for name, cls in _CONTROL_FLOW.items():
        target.add_instruction(cls, name=name)
    # Passed through by the transpiler; the backend turns it into the
    # ``statevector`` result type.
    target.add_instruction(SaveStatevector, name="save_statevector")
    return target


class KettleBackend(BackendV2):
    """A Kettle server as a Qiskit backend.

    ``run`` sends each circuit as one Kettle job (OpenQASM 2 where it
    suffices, else 3) and returns a :class:`KettleJob` whose ``result()``
    reads like Qiskit Aer's: ``get_counts()`` (bit order and register
    spaces as Aer's), ``get_memory()`` with ``memory=True``, and
    ``get_statevector()`` for circuits that ``save_statevector()`` right
    before their final measurements. ``client`` is the underlying
    :class:`kettle_client.KettleClient`.
    """

    def __init__(
        self,
        client: KettleClient,
        provider: KettleProvider | None = None,
        info: Backend | None = None,
        name: str | None = None,
    ) -> None:
        self.client = client
        self.info = info or client.backend()
        super().__init__(
            provider=provider,
            name=name or self.info.name or "kettle",
            description=f"Kettle state-vector emulator at {client.url}",
            backend_version=self.info.version,
        )
        self._target = build_target(self.info, description=self.description)

    def __repr__(self) -> str:
        return f"<KettleBackend('{self.name}') at {self.client.url}>"

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> int | None:
        return max(self.info.limits.max_active_jobs, 1)

    @classmethod
    def _default_options(cls) -> Options:
        return Options(
            shots=1024,
            seed_simulator=None,
            memory=False,
            precision="f64",
            parameter_binds=None,
            name=None,
            tags=None,
            priority=None,
            noise_model=None,
            method="automatic",
        )

    def set_options(self, **fields: Any) -> None:
        """Sets default options of :meth:`run` (``noise_model``, ``method``,
        ``shots``, …); a ``method`` Kettle does not have is warned about
        and replaced by ``"automatic"``, as :meth:`run` does."""
        if "method" in fields:
            fields["method"] = _method_option(fields["method"], stacklevel=3)
        if "noise_model" in fields:
            _check_noise_model(fields["noise_model"])
        super().set_options(**fields)

    @classmethod
    def from_backend(
        cls,
        backend: Any,
        client: Any = None,
        *,
        token: str | None = None,
        noise_model: Any = None,
        name: str | None = None,
        **options: Any,
    ) -> KettleBackend:
        """A Kettle backend that simulates the device ``backend`` as
        ``AerSimulator.from_backend(backend)`` does: the device's
        :class:`~qiskit.transpiler.Target` (its qubits, coupling map, basis
        gates, durations and error rates, so that ``transpile(qc, kettle)``
        produces circuits for the device), and its noise model
        (``qiskit_aer.noise.NoiseModel.from_backend(backend)``, which needs
        Qiskit Aer, unless ``noise_model`` is given) as the default
        ``noise_model`` option.

        ``client`` is where the circuits run: a :class:`KettleClient`, a
        :class:`KettleBackend` or :class:`KettleProvider` (its client), or
        a server's URL (default ``http://127.0.0.1:8080``, with ``token``).
        Other keyword arguments are default options (``shots``,
        ``method``, …).
        """
        from .provider import KettleProvider

        if client is None or isinstance(client, str):
            client = KettleClient(client or "http://127.0.0.1:8080", token)
        elif isinstance(client, (KettleBackend, KettleProvider)):
            client = client.client
        elif not isinstance(client, KettleClient):
            raise TypeError(f"client must be a KettleClient, KettleBackend, KettleProvider or URL, not {client!r}")
        target = _device_target(backend)
        if noise_model is None:
            noise_model = aer_noise_model().from_backend(backend)
        device_name = getattr(backend, "name", None)
        if callable(device_name):  # a BackendV1's name()
            device_name = device_name()
        device = str(device_name or "device")
        kettle = cls(client, name=name or f"kettle_from({device})")
        kettle._target = target
        kettle.description = f"Kettle at {client.url} simulating {device} with its noise model"
        _warn_unnative(noise_model)
        kettle.set_options(noise_model=noise_model, **options)
        return kettle

    def run(self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options: Any) -> KettleJob:
        """Runs one circuit or a list of circuits (one Kettle job each,
        submitted concurrently).

        Options: ``shots`` (1024), ``seed_simulator`` (the same seed for
        every circuit; None: the server picks one), ``memory`` (per-shot
        bitstrings for ``get_memory()``), ``precision`` (``"f64"`` or
        ``"f32"``), ``parameter_binds`` (one ``{Parameter: [values]}`` per
        circuit, as Aer's: one experiment per value, run as one Kettle sweep),
        and ``name``, ``tags``, ``priority`` passed to the jobs.

        ``noise_model`` is a Qiskit Aer ``NoiseModel`` (or the dict of its
        ``to_dict(serializable=True)``), applied by the server as Aer
        applies it; ``method`` is ``"automatic"``, ``"statevector"``
        (noise trajectories, one per shot) or ``"density_matrix"``; the
        method that ran is in each result's ``metadata["method"]``. A
        noisy circuit has no state vector (``save_statevector`` is
        refused). Qubits no instruction touches are left out before
        sending (a circuit transpiled for a large device runs as the qubits
        it uses), with the noise model's errors on the others.

        Circuit problems (an instruction Kettle cannot run, a program the
        server refuses) are raised here; an error from the server is a
        :class:`kettle_client.ApiError` whose message has the line and
        column of the OpenQASM source at fault.
        """
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        if not circuits or not all(isinstance(c, QuantumCircuit) for c in circuits):
            raise TypeError("run() takes a QuantumCircuit or a list of them")
        opts = dict(self.options.__dict__) if hasattr(self.options, "__dict__") else {}
        for k in _RUN_OPTIONS:
            opts[k] = getattr(self.options, k)
        for k, v in options.items():
            if k not in _RUN_OPTIONS:
                warnings.warn(f"option {k!r} is not used by the Kettle backend", stacklevel=2)
                continue
            if k == "method":
                v = _method_option(v, stacklevel=3)
            elif k == "noise_model":
                _check_noise_model(v)
            opts[k] = v
        opts["noise"] = NoiseSpec(opts.get("noise_model"))
        binds = opts.get("parameter_binds")
        if binds is not None and len(binds) != len(circuits):
            raise ValueError(
                f"parameter_binds has {len(binds)} entries for {len(circuits)} circuits (one dict per circuit)"
            )
        requests = [
            _prepare(c, opts, binds[i] if binds is not None else None, self.info) for i, c in enumerate(circuits)
        ]

        def send(req: dict[str, Any]) -> str:
            return self.client.submit(req["program"].source, req["program"].format, **req["submit"]).id

        ids: list[str] = []
        if len(requests) == 1:
            ids = [send(requests[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(8, len(requests))) as pool:
                futures = [pool.submit(send, r) for r in requests]
                errors = []
                for f in futures:
                    try:
                        ids.append(f.result())
                    except Exception as e:  # noqa: BLE001 - re-raised below
                        errors.append(e)
                if errors:
                    for job_id in ids:
                        try:
                            self.client.cancel(job_id)
                        except KettleError:
                            pass
                    raise errors[0]
        experiments = []
        for job_id, req in zip(ids, requests):
            exp = req["experiment"]
            exp.kettle_id = job_id
            experiments.append(exp)
        return KettleJob(self, experiments)


def _method_option(method: Any, stacklevel: int) -> str:
    """A ``method`` option as Kettle runs it: one of :data:`METHODS`; any
    other of Aer's (``matrix_product_state``, ``stabilizer``, …) is warned
    about and runs as ``"automatic"``."""
    if method is None or method in METHODS:
        return check_method(method)
    warnings.warn(
        f"option method={method!r} is not available on Kettle (it runs 'automatic', 'statevector' or "
        "'density_matrix'): running 'automatic'",
        stacklevel=stacklevel,
    )
    return "automatic"


def _check_noise_model(model: Any) -> None:
    if model is None or isinstance(model, Mapping) or callable(getattr(model, "to_dict", None)):
        return
    raise TypeError(
        "noise_model must be a Qiskit Aer NoiseModel or the dict of its to_dict(serializable=True), "
        f"not {type(model).__name__}"
    )


def _device_target(backend: Any) -> Target:
    """A copy of a device's target (a BackendV1 through Qiskit's converter)."""
    import copy

    target = getattr(backend, "target", None)
    if target is None:
        from qiskit.providers import BackendV2Converter  # Qiskit 1.x, for BackendV1

        target = BackendV2Converter(backend).target
    return copy.deepcopy(target)


def _warn_unnative(noise_model: Any) -> None:
    """Warns about noisy gates Kettle's programs do not keep by name (they
    are sent as their definitions, so their errors would not apply)."""
    names = getattr(noise_model, "noise_instructions", None)
    if names is None and isinstance(noise_model, Mapping):
        names = [op for e in noise_model.get("errors") or [] for op in e.get("operations") or []]
    missing = sorted(set(names or ()) - (QASM2_GATES | QASM3_GATES | {"measure", "reset"}))
    if missing:
        warnings.warn(
            f"the noise model has errors on {', '.join(missing)}, which Kettle's programs send as their "
            "definitions: those errors do not apply (transpile to other basis gates)",
            stacklevel=3,
        )


def _prepare(circuit: QuantumCircuit, opts: Mapping[str, Any], binds: Any, info: Backend) -> dict[str, Any]:
    circuit, want_sv = _strip_save_statevector(circuit)
    noise: NoiseSpec = opts.get("noise") or NoiseSpec(None)
    kept: list[int] | None = None
    sent = circuit
    if noise.noisy:
        if want_sv:
            raise UnsupportedCircuitError(
                f"circuit {circuit.name!r} saves its state vector, which a noisy circuit does not have on Kettle "
                "(ask for counts, or for probabilities and expectation values from KettleClient with "
                "method='density_matrix')"
            )
        circuit = noise.with_custom_noise(circuit)
        sent, kept = fit_circuit(circuit)
    program = circuit_to_program(sent)
    if noise.noisy:
        noise.warn_unnamed(circuit, program.format)
    measures = _count_measures(circuit)
    want_counts = measures > 0
    want_memory = bool(opts.get("memory")) and want_counts
    result_types: list[Any] = []
    if want_counts:
        result_types.append("counts")
    if want_memory:
        result_types.append("memory")
    if want_sv:
        result_types.append("statevector")
    if not result_types:
        # Nothing to report (Aer's result has no data either); the server
        # still checks and runs the circuit. A noisy circuit's probabilities
        # need the density-matrix method: it is asked for the trace.
        result_types.append({"expectation": ["1"]} if noise.noisy else "probabilities")
    inputs = None
    phases = [0.0]
    if program.parameters or circuit.parameters:
        if not binds:
            names = ", ".join(sorted(p.name for p in circuit.parameters))
            raise UnsupportedCircuitError(
                f"circuit {circuit.name!r} has unbound parameters ({names}): bind them "
                "(assign_parameters) or pass parameter_binds"
            )
        values = {(p if isinstance(p, Parameter) else _param_by_name(circuit, p)): v for p, v in binds.items()}
        lists = {p: _as_list(v) for p, v in values.items()}
        lengths = {len(v) for v in lists.values()}
        if len(lengths) != 1:
            raise ValueError("every parameter of a circuit's parameter_binds needs the same number of values")
        n = lengths.pop()
        inputs = program.inputs({p: lists[p] for p in program.parameters})
        phases = [program.phase_value({p: lists[p][i] for p in lists}) for i in range(n)]
    else:
        phases = [program.phase_value()]
    shots = int(opts.get("shots") or 0) if want_counts else None
    if want_counts and not shots:
        raise ValueError("shots must be at least 1 for a circuit that measures")
    seed = opts.get("seed_simulator")
    submit: dict[str, Any] = {
        "shots": shots,
        "seed": int(seed) if seed is not None else None,
        "result_types": result_types,
        "inputs": inputs,
        "precision": opts.get("precision") or "f64",
        "name": opts.get("name") or (circuit.name[:256] if circuit.name else None),
        "tags": opts.get("tags"),
        "priority": opts.get("priority"),
    }
    if noise.noisy:
        submit["noise_model"] = noise.for_qubits(kept)
    method = sent_method(opts.get("method"), noise.noisy)
    if method is not None:
        submit["method"] = method
    header = {
        "name": circuit.name,
        "creg_sizes": [[r.name, r.size] for r in circuit.cregs],
        "clbit_labels": [[r.name, j] for r in circuit.cregs for j in range(r.size)],
        "memory_slots": circuit.num_clbits,
        "n_qubits": circuit.num_qubits,
        "qreg_sizes": [[r.name, r.size] for r in circuit.qregs],
        "global_phase": float(circuit.global_phase) if not circuit.parameters else 0.0,
        "metadata": dict(circuit.metadata or {}),
    }
    experiment = Experiment(
        kettle_id="",
        header=header,
        shots=shots or 0,
        counts=want_counts,
        memory=want_memory,
        statevector=want_sv,
        phases=phases,
        num_qubits=circuit.num_qubits,
    )
    return {"program": program, "submit": submit, "experiment": experiment}


def _strip_save_statevector(circuit: QuantumCircuit) -> tuple[QuantumCircuit, bool]:
    """Removes Aer's ``save_statevector`` when only final measurements (and
    barriers) follow it and nothing before it measures, branches or resets
    a qubit already touched: Kettle's ``statevector`` result is then the
    state it would save."""
    positions = [i for i, inst in enumerate(circuit.data) if inst.operation.name == "save_statevector"]
    if not positions:
        return circuit, False
    if len(positions) > 1:
        raise UnsupportedCircuitError("Kettle saves one state vector per circuit (found several save_statevector)")
    at = positions[0]
    inst = circuit.data[at]
    if len(inst.qubits) != circuit.num_qubits:
        raise UnsupportedCircuitError("save_statevector must cover all the circuit's qubits on Kettle")
    for later in circuit.data[at + 1 :]:
        if later.operation.name not in ("measure", "barrier"):
            raise UnsupportedCircuitError(
                "Kettle returns the state before the final measurements: save_statevector may be "
                f"followed only by measurements and barriers (found `{later.operation.name}`)"
            )
    # A reset of a qubit nothing has touched changes nothing (Qiskit's
    # `Initialize` begins with one): the server drops it.
    touched: set[Any] = set()
    for earlier in circuit.data[:at]:
        op = earlier.operation
        if op.name == "reset" and not touched.intersection(earlier.qubits):
            continue
        if op.name in ("measure", "reset") or isinstance(op, ControlFlowOp):
            raise UnsupportedCircuitError(
                "Kettle cannot save the state after a measurement, reset or control flow "
                f"(found `{op.name}` before save_statevector)"
            )
        if op.name != "barrier":
            touched.update(earlier.qubits)
    stripped = circuit.copy_empty_like()
    for i, other in enumerate(circuit.data):
        if i != at:
            stripped._append(other)
    return stripped, True


def _count_measures(circuit: QuantumCircuit) -> int:
    n = 0
    for inst in circuit.data:
        op = inst.operation
        if op.name == "measure":
            n += 1
        elif isinstance(op, ControlFlowOp):
            n += sum(_count_measures(b) for b in op.blocks)
    return n


def _param_by_name(circuit: QuantumCircuit, name: str) -> Parameter:
    for p in circuit.parameters:
        if p.name == name:
            return p
    raise KeyError(f"circuit {circuit.name!r} has no parameter {name!r}")


def _as_list(v: Any) -> list[float]:
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, (int, float)):
        return [float(v)]
    return [float(x) for x in v]

