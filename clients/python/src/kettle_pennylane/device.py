"""``qml.device("kettle", …)``: PennyLane circuits run on a Kettle server.

How a batch of tapes runs (:meth:`KettleDevice.execute`):

1. PennyLane's preprocessing (:meth:`KettleDevice.preprocess_transforms`)
   checks the wires, defers mid-circuit measurements, decomposes every
   operation that is not one of Kettle's gates
   (:data:`~kettle_pennylane.convert.NATIVE_GATES`), splits parameter
   broadcasting into one tape per value and, with shots, splits
   non-commuting measurements.
2. Each tape becomes an OpenQASM 3 program whose gate parameters are
   ``input``\\ s (:func:`~kettle_pennylane.convert.tape_to_program`); tapes
   of the same text, shots and kind are **one Kettle job**, a sweep of one
   execution per tape (split only beyond the server's limits).
3. Without shots the job asks for exact results: ``{"expectation": …}``
   for observables with a Pauli representation (and their squares, for
   variances), ``statevector`` for everything else (states, probabilities,
   ``Hermitian``, ``Projector``, entropies), which PennyLane's own
   measurement code then reads. With shots it asks for ``memory`` (every
   shot, in order; ``counts`` shuffled when a job would list more than
   1,000,000 shots) after the gates that diagonalise the observables, and
   PennyLane's ``process_samples`` computes samples, counts, probabilities,
   expectation values and variances.
4. ``diff_method="adjoint"`` (or ``"device"``) asks the server's
   ``adjoint_gradient`` result type for the values and the gradients of
   expectation values with respect to the trainable gate parameters, in
   the same single job per program.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pennylane as qml
from pennylane.devices import Device, ExecutionConfig
from pennylane.devices.modifiers import simulator_tracking, single_tape_support
from pennylane.devices.preprocess import decompose, validate_device_wires, validate_measurements
from pennylane.devices.qubit.measure import measure
from pennylane.exceptions import DecompositionUndefinedError, DeviceError
from pennylane.measurements import (
    ClassicalShadowMP,
    ExpectationMP,
    MeasurementProcess,
    SampleMeasurement,
    ShadowExpvalMP,
    StateMeasurement,
    VarianceMP,
)
from pennylane.tape import QuantumScript
from pennylane.transforms import broadcast_expand, defer_measurements, split_non_commuting
from pennylane.transforms.core import CompilePipeline
from pennylane.wires import Wires

from kettle_client import (
    ApiError,
    ExecutionResult,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    KettleClient,
    KettleError,
    LimitExceededError,
    TooLargeError,
    TransportError,
)

from .convert import (
    Program,
    is_native,
    pauli_sum,
    samples_array,
    sparse_to_dense,
    state_tensor,
    tape_to_program,
)

__all__ = ["KettleDevice", "KettleDeviceError"]

#: Kettle's bound on the shots one job lists one by one (``memory``).
MAX_MEMORY_SHOTS = 1_000_000
_SEED_MOD = 2**53


class KettleDeviceError(DeviceError):
    """The Kettle server refused a job, a job failed, or it did not finish in time."""


def _identity(results: Any) -> Any:
    return results[0]


@qml.transform
def _expand_broadcast(tape: QuantumScript) -> tuple[Sequence[QuantumScript], Callable[..., Any]]:
    """One tape per value of a broadcast parameter (and these tapes are one
    Kettle sweep); a tape without broadcasting goes on as it is."""
    if tape.batch_size is None:
        return (tape,), _identity
    return broadcast_expand(tape)


@qml.transform
def _split_if_sampled(tape: QuantumScript) -> tuple[Sequence[QuantumScript], Callable[..., Any]]:
    """With shots, expectation values of sums of several Pauli words are
    estimated term by term (PennyLane's ``split_non_commuting``), as
    default.qubit does; measurements that still do not commute are sampled
    in separate executions of the same job (see ``_sample_groups``)."""
    if not tape.shots:
        return (tape,), _identity
    multi = [m for m in tape.measurements if m.obs is not None and _words(m.obs) > 1]
    if not multi or not all(isinstance(m, ExpectationMP) for m in multi):
        return (tape,), _identity
    return split_non_commuting(tape)


def _words(obs: Any) -> int:
    rep = obs.pauli_rep
    return len(rep) if rep is not None else 0


def _basis(m: MeasurementProcess, num_wires: int) -> dict[int, Any]:
    """What a sampled measurement needs of each wire it reads: ``"X"``,
    ``"Y"`` or ``"Z"`` for a Pauli word (or the computational basis), else
    one token (the observable's hash) on all its wires, which only the same
    observable shares."""
    obs = m.obs
    if obs is None:
        wires = m.wires if len(m.wires) else Wires(range(num_wires))
        return {int(w): "Z" for w in wires}
    rep = obs.pauli_rep
    if rep is not None and len(rep) == 1:
        (word,) = rep.keys()
        return {int(w): str(p) for w, p in word.items() if str(p) != "I"}
    return {int(w): ("block", obs.hash) for w in obs.wires}


def _sample_groups(tape: QuantumScript, num_wires: int) -> list[tuple[list[int], list[Any]]]:
    """The measurements of a sampled tape in groups that one set of
    diagonalising gates serves (measured from the same shots), with those
    gates: each Pauli factor's rotation once per wire, each other
    observable's own diagonalising gates."""
    groups: list[tuple[list[int], dict[int, Any]]] = []
    for i, m in enumerate(tape.measurements):
        basis = _basis(m, num_wires)
        for members, need in groups:
            if all(need.get(w, t) == t for w, t in basis.items()):
                members.append(i)
                need.update(basis)
                break
        else:
            groups.append(([i], dict(basis)))
    out: list[tuple[list[int], list[Any]]] = []
    for members, need in groups:
        gates: list[Any] = []
        blocks: set[Any] = set()
        for w, t in sorted(need.items(), key=lambda item: item[0]):
            if t == "X":
                gates.extend(qml.X(w).diagonalizing_gates())
            elif t == "Y":
                gates.extend(qml.Y(w).diagonalizing_gates())
        for i in members:
            obs = tape.measurements[i].obs
            if obs is not None and _words(obs) != 1 and obs.hash not in blocks:
                blocks.add(obs.hash)
                gates.extend(obs.diagonalizing_gates())
        out.append((members, gates))
    return out


def _analytic_ok(m: MeasurementProcess) -> bool:
    return isinstance(m, StateMeasurement)


def _sample_ok(m: MeasurementProcess) -> bool:
    return isinstance(m, SampleMeasurement) and not isinstance(m, (ClassicalShadowMP, ShadowExpvalMP))


def _adjoint_observable(m: MeasurementProcess) -> bool:
    return isinstance(m, ExpectationMP) and m.obs is not None and m.obs.pauli_rep is not None


@qml.transform
def _validate_adjoint(tape: QuantumScript) -> tuple[Sequence[QuantumScript], Callable[..., Any]]:
    if tape.shots:
        raise DeviceError("Kettle's adjoint gradient is exact: it is not supported with shots")
    for m in tape.measurements:
        if not _adjoint_observable(m):
            raise DeviceError(
                f"Kettle's adjoint gradient supports expectation values of Pauli sums only, not {m}"
            )
    return (tape,), _identity


@dataclass
class _Plan:
    """One tape as it will run: its program, the results it needs and where
    they come from."""

    tape: QuantumScript  # on wires 0 … n-1
    program: Program
    kind: str  # "analytic", "sample" or "adjoint"
    shots: int
    observables: list[str] = field(default_factory=list)
    needs_state: bool = False
    parameters: list[str] = field(default_factory=list)  # adjoint: the trainable inputs
    execution: ExecutionResult | None = None
    asked: list[str] = field(default_factory=list)  # the job's observables, in the order of its results
    members: list[int] = field(default_factory=list)  # sampled: the tape's measurements this execution serves

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.program.source, self.shots, self.kind)


@simulator_tracking
@single_tape_support
class KettleDevice(Device):
    """A PennyLane device that runs circuits on a Kettle server.

    Args:
        wires: number of wires, or their labels (``None``: the wires of each
            circuit, in the order they appear).
        shots: default shots (``None``: exact results). PennyLane prefers
            ``qml.set_shots`` on the QNode.
        url: the server's base address.
        token: an API key (``kettle keys create TENANT``; none in local mode).
        timeout: seconds a batch may wait for its jobs; past it they are
            cancelled and :class:`KettleDeviceError` is raised.
        precision: ``"f64"`` or ``"f32"``.
        seed: with a seed, the k-th job a device submits runs with Kettle
            seed ``seed + k`` (reproducible samples); without, the server
            draws one.
        client: a :class:`~kettle_client.KettleClient` to use instead of one
            made from ``url`` and ``token``.
    """

    name = "kettle"

    def __init__(
        self,
        wires: Any = None,
        shots: Any = None,
        url: str = "http://127.0.0.1:8080",
        token: str | None = None,
        *,
        timeout: float = 600.0,
        precision: str = "f64",
        seed: int | None = None,
        client: KettleClient | None = None,
    ) -> None:
        super().__init__(wires=wires, shots=shots)
        if precision not in ("f64", "f32"):
            raise ValueError(f"precision must be 'f64' or 'f32', not {precision!r}")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.url = url
        self.timeout = float(timeout)
        self.precision = precision
        self.seed = seed
        self._jobs_submitted = 0
        self._own_client = client is None
        self.client = client if client is not None else KettleClient(url, token, timeout=min(60.0, self.timeout))
        self._max_executions: int | None = None
        self._adjoint: bool | None = None

    def __repr__(self) -> str:
        return f"<KettleDevice url={self.url!r} wires={self.wires} shots={self.shots}>"

    def close(self) -> None:
        """Closes the client's connections (when the device made the client)."""
        if self._own_client:
            self.client.close()

    # -- configuration --------------------------------------------------

    def setup_execution_config(
        self, config: ExecutionConfig | None = None, circuit: QuantumScript | None = None
    ) -> ExecutionConfig:
        config = config or ExecutionConfig()
        updates: dict[str, Any] = {}
        mcm = config.mcm_config
        if mcm.mcm_method not in (None, "deferred"):
            raise DeviceError(
                f"kettle supports mid-circuit measurements through mcm_method='deferred' only, not {mcm.mcm_method!r}"
            )
        if mcm.mcm_method is None:
            updates["mcm_config"] = replace(mcm, mcm_method="deferred")
        if config.gradient_method in ("adjoint", "device"):
            updates["use_device_gradient"] = True
            updates["grad_on_execution"] = True
            updates["use_device_jacobian_product"] = False
        elif config.gradient_method == "best":
            # Parameter-shift: the server's gradients only when asked for.
            updates["use_device_gradient"] = False
        return replace(config, **updates) if updates else config

    def preprocess_transforms(self, execution_config: ExecutionConfig | None = None) -> CompilePipeline:
        config = execution_config or ExecutionConfig()
        program = CompilePipeline()
        program.add_transform(validate_device_wires, wires=self.wires, name=self.name)
        program.add_transform(defer_measurements, allow_postselect=False)
        program.add_transform(
            decompose, stopping_condition=is_native, skip_initial_state_prep=False, name=self.name,
            device_wires=self.wires, decomposer=_decomposer,
        )  # fmt: skip
        program.add_transform(
            validate_measurements, analytic_measurements=_analytic_ok, sample_measurements=_sample_ok, name=self.name
        )
        program.add_transform(_expand_broadcast)
        program.add_transform(_split_if_sampled)
        if config.gradient_method in ("adjoint", "device"):
            program.add_transform(_validate_adjoint)
        return program

    def supports_derivatives(
        self, execution_config: ExecutionConfig | None = None, circuit: QuantumScript | None = None
    ) -> bool:
        """``diff_method="adjoint"`` or ``"device"``: first derivatives of
        exact expectation values of Pauli sums, computed by the server
        (its ``adjoint_gradient`` result type), when the server has it."""
        if execution_config is None:
            return self.adjoint_available()
        if execution_config.gradient_method not in ("adjoint", "device"):
            return False
        if execution_config.derivative_order != 1:
            return False
        if circuit is not None:
            if circuit.shots:
                return False
            if not all(_adjoint_observable(m) for m in circuit.measurements):
                return False
        return self.adjoint_available()

    def adjoint_available(self) -> bool:
        """Whether the server computes gradients (the ``adjoint_gradient``
        result type): asked once, with a one-qubit job."""
        if self._adjoint is None:
            src = 'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float[64] p0;\nqubit[1] q;\nrx(p0) q[0];\n'
            try:
                job = self.client.submit(
                    src, shots=0, inputs={"p0": 0.5}, wait=30,
                    result_types=[{"adjoint_gradient": {"observables": ["Z0"], "parameters": ["p0"]}}],
                )  # fmt: skip
                self._adjoint = job.status == "completed" or not job.done
            except ApiError:
                self._adjoint = False
            except KettleError:
                return False  # unreachable now: ask again next time
        return self._adjoint

    # -- execution ------------------------------------------------------

    def execute(self, circuits: Any, execution_config: ExecutionConfig | None = None) -> Any:
        plans = [self._plan(tape, adjoint=False) for tape in circuits]
        self._run([p for plan in plans for p in plan])
        return tuple(self._results(plan) for plan in plans)

    def compute_derivatives(self, circuits: Any, execution_config: ExecutionConfig | None = None) -> Any:
        return self.execute_and_compute_derivatives(circuits, execution_config)[1]

    def execute_and_compute_derivatives(self, circuits: Any, execution_config: ExecutionConfig | None = None) -> Any:
        plans = [self._plan(tape, adjoint=True) for tape in circuits]
        self._run([p for plan in plans for p in plan])
        results = []
        jacobians = []
        for plan in plans:
            if plan[0].kind == "adjoint":
                value, jac = self._adjoint_results(plan[0])
            else:  # no trainable parameter: plain values, an empty Jacobian
                value = self._results(plan)
                jac = _squeeze_jacobian(np.zeros((len(plan[0].tape.measurements), 0)))
            results.append(value)
            jacobians.append(jac)
        return tuple(results), tuple(jacobians)

    # -- planning -------------------------------------------------------

    def _wire_order(self, tape: QuantumScript) -> Wires:
        return self.wires if self.wires is not None else tape.wires

    def _plan(self, tape: QuantumScript, *, adjoint: bool) -> list[_Plan]:
        """The executions one tape needs: one, or with shots one per group
        of measurements that need different diagonalising gates."""
        order = self._wire_order(tape)
        (std,), _ = qml.map_wires(tape, {w: i for i, w in enumerate(order)})
        n = len(order)
        shots = int(tape.shots.total_shots) if tape.shots else 0
        if shots:
            plans = []
            for members, gates in _sample_groups(std, n):
                program = tape_to_program(std.operations, n, extra=_decomposed(gates, self.name))
                sub = std.copy(measurements=[std.measurements[i] for i in members])
                plan = _Plan(sub, program, "sample", shots)
                plan.members = members
                plans.append(plan)
            return plans
        program = tape_to_program(std.operations, n)
        plan = _Plan(std, program, "analytic", 0)
        if adjoint:
            n_op_params = len(program.names)
            trainable = []
            for k in tape.trainable_params:
                if k >= n_op_params:
                    raise KettleDeviceError(
                        "Kettle's adjoint gradient differentiates gate parameters only, not an observable's"
                    )
                trainable.append(program.names[k])
            if trainable:
                plan.kind = "adjoint"
                plan.parameters = trainable
                plan.observables = [pauli_sum(m.obs.pauli_rep) for m in std.measurements]
                return [plan]
        for m in std.measurements:
            if isinstance(m, (ExpectationMP, VarianceMP)) and m.obs is not None and m.obs.pauli_rep is not None:
                rep = m.obs.pauli_rep
                plan.observables.append(pauli_sum(rep))
                if isinstance(m, VarianceMP):
                    square = rep @ rep
                    square.simplify()
                    plan.observables.append(pauli_sum(square))
            else:
                plan.needs_state = True
        return [plan]

    # -- jobs -----------------------------------------------------------

    def _limits(self) -> int:
        if self._max_executions is None:
            try:
                self._max_executions = max(1, int(self.client.backend().limits.max_executions))
            except KettleError as e:
                raise self._error(e) from e
        return self._max_executions

    def _error(self, e: Exception, job_id: str | None = None) -> KettleDeviceError:
        if isinstance(e, TransportError):
            return KettleDeviceError(f"cannot reach the Kettle server at {self.url}: {e}")
        if isinstance(e, ApiError):
            return KettleDeviceError(f"the Kettle server at {self.url} refused the job: {e}")
        if isinstance(e, (JobFailedError, JobCancelledError)):
            return KettleDeviceError(f"Kettle job {job_id} did not complete: {e}")
        if isinstance(e, JobTimeoutError):
            return KettleDeviceError(f"Kettle job {job_id} did not finish within the device's timeout of {self.timeout:g} s")
        return KettleDeviceError(f"Kettle: {e}")

    def _run(self, plans: list[_Plan]) -> None:
        groups: dict[tuple[str, int, str], list[_Plan]] = {}
        for plan in plans:
            key = plan.key
            if plan.kind == "sample" and not plan.program.names:
                key = (*key[:2], f"sample-{id(plan)}")  # independent samples: jobs of their own
            groups.setdefault(key, []).append(plan)
        submitted: list[tuple[str, list[_Plan]]] = []
        try:
            for members in groups.values():
                submitted.extend(self._submit_group(members))
            deadline = time.monotonic() + self.timeout
            for job_id, chunk in submitted:
                result = self.client.result(job_id, timeout=max(deadline - time.monotonic(), 0.0))
                executions = result.executions
                if len(executions) == 1 and len(chunk) > 1:
                    executions = executions * len(chunk)  # no inputs: one execution serves all
                if len(executions) != len(chunk):
                    raise KettleDeviceError(
                        f"Kettle job {job_id} returned {len(executions)} executions for {len(chunk)} circuits"
                    )
                for plan, execution in zip(chunk, executions):
                    plan.execution = execution
        except KettleDeviceError:
            self._cancel(submitted)
            raise
        except (KettleError, ApiError) as e:
            self._cancel(submitted)
            raise self._error(e, getattr(e, "job_id", None)) from e

    def _cancel(self, submitted: list[tuple[str, list[_Plan]]]) -> None:
        for job_id, _ in submitted:
            try:
                self.client.cancel(job_id)
            except Exception:  # noqa: BLE001 - best effort: the batch is failing anyway
                pass

    @staticmethod
    def _result_types(members: list[_Plan], count: int) -> tuple[list[Any], list[str]]:
        """The result types of a job for ``count`` executions of ``members``'
        program, and the observables it asks for, in order."""
        first = members[0]
        if first.kind == "sample":
            return ["memory" if first.shots * count <= MAX_MEMORY_SHOTS else "counts"], []
        observables = list(dict.fromkeys(o for p in members for o in p.observables))
        if first.kind == "adjoint":
            parameters = list(dict.fromkeys(n for p in members for n in p.parameters))
            return [{"adjoint_gradient": {"observables": observables, "parameters": parameters}}], observables
        types: list[Any] = []
        if any(p.needs_state for p in members):
            types.append("statevector")
        if observables:
            types.append({"expectation": observables})
        return types or ["statevector"], observables

    def _submit_group(self, members: list[_Plan]) -> list[tuple[str, list[_Plan]]]:
        first = members[0]
        names = first.program.names
        if not names:
            # Identical programs without inputs: one execution answers all
            # (exact results; samples never come here, see _run).
            return [(self._submit(first, members[:1], names), members)]
        per_job = min(len(members), self._limits())
        if first.kind == "sample":
            per_job = min(per_job, max(1, MAX_MEMORY_SHOTS // max(first.shots, 1)))
        out: list[tuple[str, list[_Plan]]] = []
        start = 0
        while start < len(members):
            chunk = members[start : start + per_job]
            try:
                job_id = self._submit(first, chunk, names, all_members=members)
            except (LimitExceededError, TooLargeError) as e:
                if len(chunk) > 1 and e.limit in ("max_executions", "max_sweep_operations", "max_memory_shots",
                                                  "max_request_bytes", "max_result_bytes"):  # fmt: skip
                    per_job = max(1, len(chunk) // 2)
                    continue
                raise
            out.append((job_id, chunk))
            start += len(chunk)
        return out

    def _submit(
        self, first: _Plan, chunk: list[_Plan], names: list[str], *, all_members: list[_Plan] | None = None
    ) -> str:
        inputs: dict[str, Any] | None = None
        if names:
            if len(chunk) == 1:
                inputs = dict(zip(names, chunk[0].program.values))
            else:
                inputs = {name: [p.program.values[i] for p in chunk] for i, name in enumerate(names)}
        seed = None
        if self.seed is not None:
            seed = (int(self.seed) + self._jobs_submitted) % _SEED_MOD
        self._jobs_submitted += 1
        members = all_members or chunk
        result_types, asked = self._result_types(members, len(chunk))
        for plan in members:
            plan.asked = asked
        job = self.client.submit(
            first.program.source,
            "qasm3",
            shots=first.shots,
            seed=seed,
            result_types=result_types,
            inputs=inputs,
            precision=self.precision,
            tags={"pennylane": first.kind},
        )
        return job.id

    # -- results --------------------------------------------------------

    def _state(self, plan: _Plan) -> np.ndarray:
        ex = plan.execution
        assert ex is not None
        n = plan.program.num_qubits
        if ex.statevector is not None:
            vec = np.asarray(ex.statevector, dtype=np.complex128)
        elif ex.sparse_statevector is not None:
            vec = sparse_to_dense(ex.sparse_statevector, n)
        else:
            raise KettleDeviceError("the Kettle server returned no state vector")
        return state_tensor(vec, n)

    def _results(self, plans: list[_Plan]) -> Any:
        if plans[0].kind == "sample":
            return self._sample_results(plans)
        plan = plans[0]
        tape = plan.tape
        ex = plan.execution
        assert ex is not None
        # Kettle answers in the order asked (the union of the job's tapes').
        expectations = ex.expectations or []
        if len(expectations) != len(plan.asked):
            raise KettleDeviceError(
                f"the Kettle server returned {len(expectations)} expectation values for {len(plan.asked)} observables"
            )
        values = {text: e.value for text, e in zip(plan.asked, expectations)}
        state = self._state(plan) if plan.needs_state else None
        out = []
        for m in tape.measurements:
            if isinstance(m, (ExpectationMP, VarianceMP)) and m.obs is not None and m.obs.pauli_rep is not None:
                rep = m.obs.pauli_rep
                mean = values[pauli_sum(rep)]
                if isinstance(m, VarianceMP):
                    square = rep @ rep
                    square.simplify()
                    out.append(np.float64(max(values[pauli_sum(square)] - mean**2, 0.0)))
                else:
                    out.append(np.float64(mean))
            else:
                assert state is not None
                out.append(measure(m, state))
        return out[0] if len(out) == 1 else tuple(out)

    def _sample_results(self, plans: list[_Plan]) -> Any:
        shots = plans[0].tape.shots
        count = sum(len(p.members) for p in plans)
        per_bin: list[list[Any]] = [[None] * count for _ in shots.bins()]
        for plan in plans:
            ex = plan.execution
            assert ex is not None
            n = plan.program.num_qubits
            if ex.memory is not None:
                outcomes = ex.memory
            else:
                # A uniformly shuffled multinomial sample is distributed
                # exactly as independent shots.
                counts = ex.counts or {}
                keys = sorted(counts)
                index = np.repeat(np.arange(len(keys)), [counts[k] for k in keys])
                rng = np.random.default_rng([ex.seed & 0xFFFFFFFF, ex.seed >> 32, 0x504C])
                rng.shuffle(index)
                outcomes = [keys[i] for i in index]
            samples = samples_array(outcomes, n)
            wires = Wires(range(n))
            for b, (lower, upper) in enumerate(shots.bins()):
                sub = samples[lower:upper]
                for i, m in zip(plan.members, plan.tape.measurements):
                    per_bin[b][i] = m.process_samples(sub, wires)
        bins = [row[0] if len(row) == 1 else tuple(row) for row in per_bin]
        return tuple(bins) if shots.has_partitioned_shots else bins[0]

    def _adjoint_results(self, plan: _Plan) -> tuple[Any, Any]:
        ex = plan.execution
        assert ex is not None
        gradients = ex.gradients
        if gradients is None:
            raise KettleDeviceError("the Kettle server returned no gradients (adjoint_gradient)")
        if len(gradients) != len(plan.asked):
            raise KettleDeviceError(
                f"the Kettle server returned {len(gradients)} gradients for {len(plan.asked)} observables"
            )
        by_text = dict(zip(plan.asked, gradients))
        rows = []
        values = []
        for text in plan.observables:
            g = by_text.get(text)
            if g is None:
                raise KettleDeviceError(f"the Kettle server returned no gradient for the observable {text!r}")
            values.append(np.float64(g.value))
            rows.append([g.gradient[name] for name in plan.parameters])
        value: Any = values[0] if len(values) == 1 else tuple(values)
        return value, _squeeze_jacobian(np.asarray(rows, dtype=np.float64).reshape(len(values), len(plan.parameters)))


def _squeeze_jacobian(jac: np.ndarray) -> Any:
    """PennyLane's shape for one tape's Jacobian (as its adjoint method gives
    it): a scalar for one measurement and one parameter, a tuple over the
    one dimension of more than one entry, else a tuple of tuples."""
    squeezed = np.squeeze(jac)
    if squeezed.ndim == 0:
        return np.array(squeezed)
    if squeezed.ndim == 1:
        return tuple(np.array(j) for j in squeezed)
    return tuple(tuple(np.array(x) for x in row) for row in squeezed)


#: Operations without a decomposition but with a matrix on at most this many
#: wires are sent as that matrix's decomposition (PennyLane's, of a
#: ``QubitUnitary``).
MATRIX_FALLBACK_WIRES = 4


def _decomposer(op: Any) -> Sequence[Any]:
    """PennyLane's decomposition of ``op``, or, for an operation that has
    none but has a matrix (``BlockEncode``, ``DoubleExcitationPlus``, …),
    that of a ``QubitUnitary`` of its matrix."""
    try:
        return list(op.decomposition())
    except DecompositionUndefinedError:
        if op.has_matrix and 0 < len(op.wires) <= MATRIX_FALLBACK_WIRES:
            return [qml.QubitUnitary(op.matrix(), wires=op.wires)]
        raise


def _decomposed(ops: Sequence[Any], name: str) -> list[Any]:
    """``ops`` (diagonalising gates) decomposed into Kettle's gates."""
    if all(is_native(op) for op in ops):
        return list(ops)
    tape = QuantumScript(list(ops))
    (out,), _ = decompose(tape, stopping_condition=is_native, name=name, decomposer=_decomposer)
    return list(out.operations)


