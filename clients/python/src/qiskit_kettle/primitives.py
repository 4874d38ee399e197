"""Qiskit's V2 primitives on Kettle: :class:`KettleSamplerV2` and
:class:`KettleEstimatorV2`.

Both map a PUB onto Kettle's own sweep and expectation support rather than
binding every parameter value set into a circuit of its own:

* A PUB's circuit is written once (:func:`~qiskit_kettle.convert.circuit_to_program`:
  OpenQASM 3 with an ``input float[64]`` per parameter) and its parameter
  values travel as a job's ``inputs``, one list per parameter, so a sweep of
  N value sets is **one Kettle job of N executions** (split into several
  jobs only beyond the server's limits: the tenant's ``max_executions``,
  2,000,000 operations over a sweep, 1,000,000 listed shots for ``memory``).
* The Estimator asks for ``{"expectation": [...]}`` only, so Kettle
  computes every expectation value exactly from the state (before final
  measurements) and **takes no shots**: the jobs have ``shots == 0``.
  Each distinct parameter value set is one execution, each distinct
  observable of the PUB is sent once (as Kettle's Pauli-sum text,
  :mod:`qiskit_kettle.observables`) and computed for every execution; the
  PUB's broadcast shape is rebuilt on the client. (When observables are
  zipped element-wise with parameter sets and the states are large, the
  unneeded values would cost more than extra jobs: then executions are
  grouped into one job per set of observables they need.)
* The Sampler asks for ``memory`` (every shot's outcome, in shot order) when
  the server offers it, else for ``counts``, whose outcomes are then put in a
  random order drawn from the execution's seed: a uniformly shuffled
  multinomial sample is distributed exactly as independent shots, so the
  :class:`~qiskit.primitives.BitArray` is statistically the same either way.
  Every element of the PUB's parameter array is its own execution (with its
  own seed), duplicates included.

Seeds: with ``seed=S``, the k-th execution of a ``run`` call (counting over
its PUBs in order) runs with Kettle seed ``S + k``, whatever the split into
jobs; the same call with the same seed gives the same bits. Without a seed
the server draws one per job.

``run`` submits the jobs at once (so a program Kettle refuses raises there,
with the line and column of the fault) and returns a
:class:`KettlePrimitiveJob`, whose ``result()`` waits for them and whose
``cancel()`` cancels them on the server.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2
from qiskit.primitives.base.base_primitive_job import BasePrimitiveJob
from qiskit.primitives.containers import (
    BitArray,
    DataBin,
    EstimatorPubLike,
    PrimitiveResult,
    PubResult,
    SamplerPubLike,
    SamplerPubResult,
)
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.providers import JobStatus

from kettle_client import (
    Backend,
    ConflictError,
    ExecutionResult,
    KettleClient,
    LimitExceededError,
)

from .convert import Program, circuit_to_program
from .noise import NoiseSpec, check_method, fit_circuit, pauli_sum_qubits, remap_pauli_sum, sent_method
from .observables import observable_to_pauli_sum

__all__ = ["KettleEstimatorV2", "KettlePrimitiveJob", "KettleSamplerV2"]

#: Kettle's bound on the operations of a sweep, over all its executions.
MAX_SWEEP_OPERATIONS = 2_000_000
#: Kettle's bound on the shots a job lists one by one (``memory``).
MAX_MEMORY_SHOTS = 1_000_000
_SEED_MOD = 1 << 64
#: A primitive's ``noise_model`` when not given: the backend's.
_FROM_BACKEND: Any = object()



# --------------------------------------------------------------------------
# The job handle
# --------------------------------------------------------------------------


@dataclass
class _Chunk:
    """One Kettle job: executions ``start .. start + count`` of a PUB."""

    job_id: str
    start: int
    count: int


@dataclass
class _PubPlan:
    """What was submitted for one PUB and how to read it back."""

    chunks: list[_Chunk]
    finish: Callable[[list[ExecutionResult]], PubResult]
    job_ids: list[str] = field(default_factory=list)


class KettlePrimitiveJob(BasePrimitiveJob[PrimitiveResult, JobStatus]):
    """The handle ``run`` returns: the Kettle jobs of a primitive call.

    :meth:`result` waits for every Kettle job and returns the
    :class:`~qiskit.primitives.PrimitiveResult` (it raises the client's
    :class:`~kettle_client.JobFailedError` or
    :class:`~kettle_client.JobCancelledError` when one did not complete);
    :meth:`status` is the least advanced status among them (any failure
    first); :meth:`cancel` cancels those still queued or running.
    :meth:`job_ids` lists the Kettle job ids, per PUB.
    """

    def __init__(self, client: KettleClient, plans: list[_PubPlan], metadata: dict[str, Any]):
        ids = [c.job_id for p in plans for c in p.chunks]
        super().__init__(ids[0] if len(ids) == 1 else f"kettle-{uuid.uuid4()}")
        self._client = client
        self._plans = plans
        self._result_metadata = metadata
        self._result: PrimitiveResult | None = None
        self._final: dict[str, str] = {}

    def job_ids(self) -> list[list[str]]:
        """The Kettle job ids of each PUB, in PUB order (one per PUB unless a
        sweep exceeded the server's limits)."""
        return [[c.job_id for c in p.chunks] for p in self._plans]

    def result(self, timeout: float | None = None) -> PrimitiveResult:
        """Waits for the Kettle jobs (``timeout`` seconds each at most; None:
        no limit) and returns the primitive's result."""
        if self._result is None:
            pub_results = []
            for plan in self._plans:
                executions: list[ExecutionResult] = []
                for chunk in plan.chunks:
                    res = self._client.result(chunk.job_id, timeout)
                    self._final[chunk.job_id] = "completed"
                    if len(res.executions) != chunk.count:
                        raise RuntimeError(
                            f"Kettle job {chunk.job_id} returned {len(res.executions)} executions, "
                            f"expected {chunk.count}"
                        )
                    executions.extend(res.executions)
                pub_results.append(plan.finish(executions))
            self._result = PrimitiveResult(pub_results, metadata=dict(self._result_metadata))
        return self._result

    def _statuses(self) -> list[str]:
        out = []
        for plan in self._plans:
            for chunk in plan.chunks:
                status = self._final.get(chunk.job_id)
                if status is None:
                    status = self._client.get(chunk.job_id).status
                    if status in ("completed", "failed", "cancelled"):
                        self._final[chunk.job_id] = status
                out.append(status)
        return out

    def status(self) -> JobStatus:
        statuses = self._statuses()
        for kettle, qiskit in (
            ("failed", JobStatus.ERROR),
            ("cancelled", JobStatus.CANCELLED),
            ("running", JobStatus.RUNNING),
            ("queued", JobStatus.QUEUED),
        ):
            if kettle in statuses:
                # Some jobs ran while others wait: the call as a whole runs.
                if qiskit is JobStatus.QUEUED and "completed" in statuses:
                    return JobStatus.RUNNING
                return qiskit
        return JobStatus.DONE

    def done(self) -> bool:
        return self.status() == JobStatus.DONE

    def running(self) -> bool:
        return self.status() == JobStatus.RUNNING

    def cancelled(self) -> bool:
        return self.status() == JobStatus.CANCELLED

    def in_final_state(self) -> bool:
        return self.status() in (JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELLED)

    def cancel(self) -> bool:
        """Cancels every Kettle job of the call that has not ended; True if
        any was still queued or running."""
        any_cancelled = False
        for plan in self._plans:
            for chunk in plan.chunks:
                if chunk.job_id in self._final:
                    continue
                try:
                    self._client.cancel(chunk.job_id)
                    any_cancelled = True
                except ConflictError:
                    pass  # it had already ended
        return any_cancelled


# --------------------------------------------------------------------------
# Shared submission machinery
# --------------------------------------------------------------------------


def _client_of(backend: Any) -> KettleClient:
    if isinstance(backend, KettleClient):
        return backend
    client = getattr(backend, "client", None)
    if client is None:
        raise TypeError(f"expected a KettleBackend (or a KettleClient), not {type(backend).__name__}")
    return client


def _seed_value(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, _SEED_MOD, dtype=np.uint64))
    seed = int(seed)
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    return seed % _SEED_MOD


def _operation_count(circuit: QuantumCircuit) -> int:
    """A rough count of the operations Kettle unrolls one execution to
    (control flow bodies counted once): only used to size sweep chunks."""
    n = 0
    for inst in circuit.data:
        n += 1
        for block in getattr(inst.operation, "blocks", ()) or ():
            n += _operation_count(block)
    return max(n, 1)


class _Runner:
    """State shared by the PUBs of one ``run`` call."""

    def __init__(self, primitive: _KettlePrimitive, kind: str):
        self.primitive = primitive
        self.client = primitive._client
        self.kind = kind
        self.seed = _seed_value(primitive._seed)
        self.next_execution = 0
        self.submitted: list[str] = []

    def submit_sweep(
        self,
        pub_index: int,
        circuit: QuantumCircuit,
        program: Program,
        rows: np.ndarray,
        *,
        result_types: list[Any],
        shots: int | None,
        per_job: int,
        noise_model: dict[str, Any] | None = None,
    ) -> list[_Chunk]:
        """Submits executions ``rows`` (one row of values each, for the
        parameters :func:`_input_parameters` lists) as jobs of at most ``per_job``
        executions, halving a job that the server finds over a limit."""
        names = [program.parameters[p] for p in _input_parameters(circuit, program)]
        total = rows.shape[0]
        chunks: list[_Chunk] = []
        start = 0
        per_job = max(1, min(per_job, total))
        while start < total:
            count = min(per_job, total - start)
            block = rows[start : start + count]
            inputs: dict[str, Any] | None = None
            if names:
                if count == 1:
                    inputs = {n: float(block[0, i]) for i, n in enumerate(names)}
                else:
                    inputs = {n: [float(v) for v in block[:, i]] for i, n in enumerate(names)}
            seed = None if self.seed is None else (self.seed + self.next_execution + start) % _SEED_MOD
            tags = {"qiskit_kettle": self.kind, "pub": str(pub_index)}
            try:
                job = self.client.submit(
                    program.source,
                    program.format,
                    shots=shots,
                    seed=seed,
                    result_types=result_types,
                    inputs=inputs,
                    precision=self.primitive._precision,
                    name=(circuit.name or None) and str(circuit.name)[:256],
                    tags=tags,
                    noise_model=noise_model,
                    method=sent_method(self.primitive._method, noise_model is not None),
                )
            except LimitExceededError as e:
                splittable = e.limit in (
                    "max_executions",
                    "max_sweep_operations",
                    "max_memory_shots",
                    "max_request_bytes",
                )
                if count > 1 and splittable:
                    per_job = max(1, count // 2)
                    continue
                raise
            self.submitted.append(job.id)
            chunks.append(_Chunk(job.id, start, count))
            start += count
        self.next_execution += total
        return chunks

    def cancel_all(self) -> None:
        for job_id in self.submitted:
            try:
                self.client.cancel(job_id)
            except Exception:  # best effort: the run is failing anyway
                pass


class _KettlePrimitive:
    """What the Sampler and the Estimator share: the client, the server's
    limits (read once) and the options."""

    def __init__(self, backend: Any, seed: Any, precision: str, noise_model: Any = None, method: Any = None):
        if precision not in ("f64", "f32"):
            raise ValueError(f"precision must be 'f64' or 'f32', not {precision!r}")
        self._backend = backend
        self._client = _client_of(backend)
        self._seed = seed
        self._precision = precision
        self._info: Backend | None = None
        # A KettleBackend's own noise model and method (from_backend's, or
        # set_options') apply unless the primitive sets its own.
        backend_options = getattr(backend, "options", None) if not isinstance(backend, KettleClient) else None
        if noise_model is _FROM_BACKEND:
            noise_model = getattr(backend_options, "noise_model", None)
        if method is None:
            method = getattr(backend_options, "method", None)
        self._noise = NoiseSpec(noise_model)
        self._method = check_method(method)

    @property
    def noise_model(self) -> Any:
        """The noise model the jobs run with (None: ideal)."""
        return self._noise.model

    @property
    def method(self) -> str:
        """The simulation method asked for (``automatic``, ``statevector``, ``density_matrix``)."""
        return self._method

    @property
    def backend(self) -> Any:
        """The backend (or client) the jobs go to."""
        return self._backend

    @property
    def seed(self) -> Any:
        """The seed of the call's first execution (None: the server draws)."""
        return self._seed

    def _server(self) -> Backend:
        if self._info is None:
            info = getattr(self._backend, "info", None)
            self._info = info if isinstance(info, Backend) else self._client.backend()
        return self._info

    def _max_executions(self) -> int:
        limit = self._server().limits.max_executions
        return limit if limit > 0 else 1000

    def _run_pubs(
        self, kind: str, pubs: list[Any], plan_pub: Callable[[_Runner, int, Any], _PubPlan]
    ) -> KettlePrimitiveJob:
        runner = _Runner(self, kind)
        plans = []
        try:
            for i, pub in enumerate(pubs):
                plans.append(plan_pub(runner, i, pub))
        except BaseException:
            runner.cancel_all()
            raise
        return KettlePrimitiveJob(self._client, plans, {"version": 2})


def _input_parameters(circuit: QuantumCircuit, program: Program) -> list[Any]:
    """The circuit's parameters that are ``input``s of its program, in the
    order of ``circuit.parameters``: all of them except those that appear
    only in the global phase, which neither a Sampler nor an Estimator
    result depends on."""
    return [p for p in circuit.parameters if p in program.parameters]


def _parameter_rows(pub: Any, program: Program) -> tuple[np.ndarray, tuple[int, ...]]:
    """The PUB's parameter value sets as rows (C order of its shape), one
    column per :func:`_input_parameters`, and the shape."""
    bindings = pub.parameter_values
    shape = tuple(bindings.shape)
    size = int(np.prod(shape, dtype=np.int64))
    params = _input_parameters(pub.circuit, program)
    if params:
        every = list(pub.circuit.parameters)
        values = np.asarray(bindings.as_array(every), dtype=float).reshape(size, len(every))
        rows = values[:, [every.index(p) for p in params]]
    else:
        rows = np.zeros((size, 0), dtype=float)
    if rows.size and not np.all(np.isfinite(rows)):
        raise ValueError("parameter values must be finite")
    return rows, shape


# --------------------------------------------------------------------------
# Sampler
# --------------------------------------------------------------------------


@dataclass
class _Register:
    name: str
    size: int
    clbits: list[int]  # the result's bit index of each of the register's bits


def _registers(circuit: QuantumCircuit) -> list[_Register]:
    return [_Register(creg.name, creg.size, [circuit.find_bit(b).index for b in creg]) for creg in circuit.cregs]


def _measures(circuit: QuantumCircuit) -> bool:
    for inst in circuit.data:
        if inst.operation.name == "measure":
            return True
        for block in getattr(inst.operation, "blocks", ()) or ():
            if _measures(block):
                return True
    return False


def _pack(bits: np.ndarray) -> np.ndarray:
    """(n, size) little-endian bits (column j is bit j) as BitArray bytes:
    big-endian, bit 0 the lowest bit of the last byte."""
    n, size = bits.shape
    pad = -size % 8
    ordered = bits[:, ::-1]
    if pad:
        ordered = np.concatenate([np.zeros((n, pad), dtype=np.uint8), ordered], axis=1)
    return np.packbits(ordered, axis=1)


def _execution_outcomes(execution: ExecutionResult, shots: int) -> tuple[list[str], np.ndarray]:
    """The distinct outcome keys of one execution and, per shot in shot
    order, the index of its outcome."""
    if execution.memory is not None:
        distinct, first_index = np.unique(np.asarray(execution.memory, dtype=str), return_inverse=True)
        return [str(k) for k in distinct], first_index.reshape(-1)
    counts = execution.counts or {}
    keys = sorted(counts)
    index = np.repeat(np.arange(len(keys)), [counts[k] for k in keys])
    # Shot order from the execution's own seed: reproducible, and a uniform
    # shuffle of a multinomial sample is exactly i.i.d. shots.
    rng = np.random.default_rng([execution.seed & 0xFFFFFFFF, execution.seed >> 32, 0x5A4D])
    rng.shuffle(index)
    return keys, index


def _aer_options(options: dict[str, Any] | None, default_key: str) -> dict[str, Any]:
    """Qiskit Aer's primitive ``options`` dict as this module's arguments:
    ``default_key`` (``default_shots`` or ``default_precision``), ``seed``
    (from ``run_options.seed_simulator``) and ``precision`` (from
    ``backend_options.precision``). Aer options with no Kettle meaning are
    refused by name rather than ignored."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict, as Qiskit Aer's primitives take, not {type(options).__name__}")
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key == default_key:
            out[default_key] = value
        elif key == "backend_options":
            for name, v in dict(value or {}).items():
                if name == "precision":
                    if v not in ("double", "single"):
                        raise ValueError(f"backend_options precision must be 'double' or 'single', not {v!r}")
                    out["precision"] = "f64" if v == "double" else "f32"
                elif name == "method":
                    out["method"] = check_method(v)
                elif name == "device":
                    if str(v).upper() != "CPU":
                        raise ValueError(f"Kettle runs on the server's CPUs: device {v!r} is not available")
                elif name == "noise_model":
                    out["noise_model"] = v
                else:
                    raise ValueError(f"the Aer backend option {name!r} has no Kettle equivalent")
        elif key == "run_options":
            for name, v in dict(value or {}).items():
                if name == "seed_simulator":
                    out["seed"] = v
                elif name == "shots" and default_key == "default_precision":
                    out["shots"] = v
                else:
                    raise ValueError(f"the Aer run option {name!r} has no Kettle equivalent")
        else:
            raise ValueError(
                f"unknown option {key!r}: Kettle takes {default_key!r}, 'backend_options' and 'run_options' as Aer does"
            )
    return out


class KettleSamplerV2(BaseSamplerV2):
    """Qiskit's :class:`~qiskit.primitives.BaseSamplerV2` on a Kettle server.

    Args:
        backend: a :class:`~qiskit_kettle.KettleBackend` (or a
            :class:`~kettle_client.KettleClient`).
        default_shots: shots of a PUB that does not set its own.
        seed: the seed of the first execution of each ``run`` call (then
            ``seed + 1``, … over the call's PUBs); None lets the server draw.
            An ``np.random.Generator`` is drawn from once per call.
        precision: ``"f64"`` (default) or ``"f32"`` state vectors.
        noise_model: a Qiskit Aer ``NoiseModel`` (or the dict of its
            ``to_dict(serializable=True)``) applied to every circuit as Aer
            applies it; None runs ideal circuits. When not given, a
            :class:`~qiskit_kettle.KettleBackend`'s own ``noise_model``
            option applies (``KettleBackend.from_backend``'s device model).
        method: ``"automatic"``, ``"statevector"`` (each shot one noise
            trajectory) or ``"density_matrix"``; when not given, the
            backend's ``method`` option.
        options: Qiskit Aer's ``SamplerV2`` options dict, for code written
            for Aer: ``default_shots``, ``backend_options`` (``precision``
            ``"double"``/``"single"``, ``method``, ``noise_model``,
            ``device`` ``"CPU"``) and ``run_options`` (``seed_simulator``);
            any other is refused by name. The arguments above win.

    Each classical register becomes a :class:`~qiskit.primitives.BitArray`
    of the PUB's shape in the result's ``data``, under the register's name;
    ``metadata`` has ``shots``, ``circuit_metadata`` and ``kettle_job_ids``.
    Circuits may measure mid-circuit, reset and use ``if``/``for``
    (Kettle samples each shot's trajectory). A circuit that measures
    nothing gives all-zero bits (its program is still run once per
    execution to check it).
    """

    def __init__(
        self,
        backend: Any,
        *,
        default_shots: int | None = None,
        seed: Any = None,
        precision: str | None = None,
        options: dict[str, Any] | None = None,
        noise_model: Any = _FROM_BACKEND,
        method: str | None = None,
    ):
        aer = _aer_options(options, "default_shots")
        default_shots = default_shots if default_shots is not None else aer.get("default_shots", 1024)
        seed = seed if seed is not None else aer.get("seed")
        precision = precision or aer.get("precision", "f64")
        if int(default_shots) < 1:
            raise ValueError("default_shots must be at least 1")
        if noise_model is _FROM_BACKEND:
            noise_model = aer.get("noise_model", _FROM_BACKEND)
        self._kettle = _KettlePrimitive(backend, seed, precision, noise_model, method or aer.get("method"))
        self._default_shots = int(default_shots)

    @property
    def backend(self) -> Any:
        """The backend the jobs go to."""
        return self._kettle.backend

    @property
    def default_shots(self) -> int:
        """Shots of a PUB that does not set its own."""
        return self._default_shots

    @property
    def noise_model(self) -> Any:
        """The noise model the circuits run with (None: ideal)."""
        return self._kettle.noise_model

    @property
    def method(self) -> str:
        """The simulation method asked for."""
        return self._kettle.method

    @property
    def seed(self) -> Any:
        """The seed of each call's first execution (None: the server draws)."""
        return self._kettle.seed

    def run(self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None) -> KettlePrimitiveJob:
        if shots is None:
            shots = self._default_shots
        coerced = [SamplerPub.coerce(pub, shots) for pub in pubs]
        for i, pub in enumerate(coerced):
            if pub.shots < 1:
                raise ValueError(f"PUB {i} asks for {pub.shots} shots; at least 1 is needed")
        return self._kettle._run_pubs("sampler", coerced, self._plan)

    def _plan(self, runner: _Runner, index: int, pub: SamplerPub) -> _PubPlan:
        kettle = self._kettle
        circuit = pub.circuit
        noise = kettle._noise
        kept: list[int] | None = None
        sent = circuit
        if noise.noisy:
            circuit = noise.with_custom_noise(circuit)
            sent, kept = fit_circuit(circuit)
        noise_model = noise.for_qubits(kept)
        program = circuit_to_program(sent)
        if noise.noisy:
            noise.warn_unnamed(circuit, program.format)
        rows, shape = _parameter_rows(pub, program)
        shots = pub.shots
        measures = _measures(circuit)
        registers = _registers(circuit)
        per_job = kettle._max_executions()
        if rows.shape[1] > 0:
            per_job = min(per_job, max(1, MAX_SWEEP_OPERATIONS // _operation_count(circuit)))
        use_memory = False
        if measures:
            info = kettle._server()
            if "memory" in info.result_types and shots <= MAX_MEMORY_SHOTS:
                use_memory = True
                per_job = min(per_job, max(1, MAX_MEMORY_SHOTS // shots))
            result_types: list[Any] = ["memory"] if use_memory else ["counts"]
            job_shots: int | None = shots
        else:
            # Nothing to sample: run once per execution to check the program.
            # (A noisy circuit's probabilities need the density-matrix
            # method: it is asked for the trace.)
            result_types = [{"expectation": ["1"]}] if noise.noisy else ["probabilities"]
            job_shots = None
        if rows.shape[1] == 0 and rows.shape[0] > 1:
            # No parameters, several executions (a shaped empty binding):
            # Kettle sweeps only over inputs, so submit one job per element.
            chunks = []
            for k in range(rows.shape[0]):
                for c in runner.submit_sweep(
                    index, circuit, program, rows[k : k + 1],
                    result_types=result_types, shots=job_shots, per_job=1, noise_model=noise_model,
                ):  # fmt: skip
                    chunks.append(_Chunk(c.job_id, k, 1))
        else:
            chunks = runner.submit_sweep(
                index, circuit, program, rows,
                result_types=result_types, shots=job_shots, per_job=per_job, noise_model=noise_model,
            )  # fmt: skip
        job_ids = [c.job_id for c in chunks]

        def finish(executions: list[ExecutionResult]) -> SamplerPubResult:
            arrays = {reg.name: np.zeros(shape + (shots, (reg.size + 7) // 8), dtype=np.uint8) for reg in registers}
            if measures:
                for flat, (execution, idx) in enumerate(zip(executions, np.ndindex(*shape))):
                    keys, order = _execution_outcomes(execution, shots)
                    if order.shape[0] != shots:
                        raise RuntimeError(f"execution {flat} has {order.shape[0]} shots, expected {shots}")
                    width = max((len(k) for k in keys), default=0)
                    # Bits of each distinct outcome, column j = result bit j.
                    bits = np.zeros((len(keys), max(width, 1)), dtype=np.uint8)
                    for r, key in enumerate(keys):
                        if key:
                            bits[r, : len(key)] = np.frombuffer(key[::-1].encode(), dtype=np.uint8) - ord("0")
                    for reg in registers:
                        if reg.size == 0:
                            continue
                        packed = _pack(bits[:, reg.clbits])
                        arrays[reg.name][idx] = packed[order]
            meas = {reg.name: BitArray(arrays[reg.name], reg.size) for reg in registers}
            return SamplerPubResult(
                DataBin(**meas, shape=shape),
                metadata={
                    "shots": shots,
                    "circuit_metadata": circuit.metadata,
                    "kettle_job_ids": job_ids,
                    "seeds": [e.seed for e in executions],
                },
            )

        return _PubPlan(chunks, finish, job_ids)


# --------------------------------------------------------------------------
# Estimator
# --------------------------------------------------------------------------


class KettleEstimatorV2(BaseEstimatorV2):
    """Qiskit's :class:`~qiskit.primitives.BaseEstimatorV2` on a Kettle
    server, with exact expectation values and no shots.

    Args:
        backend: a :class:`~qiskit_kettle.KettleBackend` (or a
            :class:`~kettle_client.KettleClient`).
        default_precision: the precision of a PUB that does not set its own.
            0 (the default) returns the exact values with ``stds`` 0. A
            positive precision ε adds Gaussian noise of standard deviation ε
            to each value and reports ``stds`` ε, as Qiskit Aer's
            ``EstimatorV2`` and Qiskit's ``StatevectorEstimator`` do (to mimic
            a shot budget); the server still takes no shots.
        seed: seeds that noise (an int, a Generator, or None for fresh
            entropy); Kettle's results themselves are exact.
        precision: ``"f64"`` (default) or ``"f32"`` state vectors (the
            floating-point precision of the simulation, not the estimator's).
        noise_model: a Qiskit Aer ``NoiseModel`` (or its dict), as for
            :class:`KettleSamplerV2` (when not given, the backend's).
        method: as for :class:`KettleSamplerV2`. With a noise model, the
            ``density_matrix`` method gives exact values (``stds`` the
            precision); the ``statevector`` method averages ``shots``
            noise trajectories, and ``stds`` adds the server's standard
            error of that mean (in quadrature with the precision).
        shots: the noise trajectories of the ``statevector`` method (None:
            the server's default); unused for ideal circuits.
        options: Qiskit Aer's ``EstimatorV2`` options dict, for code written
            for Aer: ``default_precision``, ``backend_options`` (as for
            :class:`KettleSamplerV2`) and ``run_options`` (``seed_simulator``
            seeds the noise, ``shots``); any other is refused by name. The
            arguments above win.

    Observables may be ``SparsePauliOp``, ``Pauli``, ``SparseObservable``
    (projectors are expanded into Paulis), labels or label→weight mappings,
    with real weights (``ObservablesArray`` refuses others). Values are
    taken from the state before the circuit's final measurements; a circuit
    with a mid-circuit measurement, reset or classical control is refused by
    the server. ``metadata`` has ``target_precision``, ``shots`` (0),
    ``circuit_metadata`` and ``kettle_job_ids``.

    With ``gradients=True`` each result's ``data`` also has ``gradients``,
    of shape ``shape + (len(circuit.parameters),)``: the exact derivative of
    each (noise-free) expectation value with respect to each of the
    circuit's parameters, in ``circuit.parameters`` order, computed on the
    server by the adjoint method (one forward and one backward pass per
    parameter value set, whatever the number of parameters; the chain rule
    runs through parameter expressions such as ``2*θ``). A parameter that
    appears only in the global phase has derivative 0.
    """

    def __init__(
        self,
        backend: Any,
        *,
        default_precision: float | None = None,
        seed: Any = None,
        precision: str | None = None,
        options: dict[str, Any] | None = None,
        gradients: bool = False,
        noise_model: Any = _FROM_BACKEND,
        method: str | None = None,
        shots: int | None = None,
    ):
        aer = _aer_options(options, "default_precision")
        if default_precision is None:
            default_precision = float(aer.get("default_precision", 0.0))
        seed = seed if seed is not None else aer.get("seed")
        precision = precision or aer.get("precision", "f64")
        if default_precision < 0:
            raise ValueError("default_precision must be non-negative")
        if noise_model is _FROM_BACKEND:
            noise_model = aer.get("noise_model", _FROM_BACKEND)
        self._kettle = _KettlePrimitive(backend, None, precision, noise_model, method or aer.get("method"))
        shots = shots if shots is not None else aer.get("shots")
        if shots is not None and int(shots) < 1:
            raise ValueError("shots must be at least 1")
        self._shots = None if shots is None else int(shots)
        if gradients and self._kettle._noise.noisy:
            raise ValueError("gradients=True needs an ideal circuit: the adjoint method does not run noise models")
        self._noise_seed = seed
        self._default_precision = float(default_precision)
        self._gradients = bool(gradients)

    @property
    def backend(self) -> Any:
        """The backend the jobs go to."""
        return self._kettle.backend

    @property
    def default_precision(self) -> float:
        """The precision of a PUB that does not set its own."""
        return self._default_precision

    @property
    def noise_model(self) -> Any:
        """The noise model the circuits run with (None: ideal)."""
        return self._kettle.noise_model

    @property
    def method(self) -> str:
        """The simulation method asked for."""
        return self._kettle.method

    @property
    def seed(self) -> Any:
        """The seed of the noise added for a positive precision."""
        return self._noise_seed

    def run(self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None) -> KettlePrimitiveJob:
        if precision is None:
            precision = self._default_precision
        coerced = [EstimatorPub.coerce(pub, precision) for pub in pubs]
        for i, pub in enumerate(coerced):
            if pub.precision is not None and pub.precision < 0:
                raise ValueError(f"PUB {i} has the negative precision {pub.precision}")
        rng = np.random.default_rng(self._noise_seed)
        return self._kettle._run_pubs("estimator", coerced, lambda r, i, p: self._plan(r, i, p, rng))

    def _plan(self, runner: _Runner, index: int, pub: EstimatorPub, rng: np.random.Generator) -> _PubPlan:
        kettle = self._kettle
        circuit = pub.circuit
        precision = float(pub.precision or 0.0)
        # Observables: Kettle text of each element; each distinct text sent once.
        obs_array = pub.observables
        obs_shape = tuple(obs_array.shape)
        texts: list[str] = []
        text_index: dict[str, int] = {}
        obs_idx = np.zeros(obs_shape, dtype=np.int64)
        for nd in np.ndindex(*obs_shape):
            text = observable_to_pauli_sum(_observable_at(obs_array, nd), circuit.num_qubits)
            if text not in text_index:
                text_index[text] = len(texts)
                texts.append(text)
            obs_idx[nd] = text_index[text]
        noise = kettle._noise
        kept: list[int] | None = None
        sent = circuit
        if noise.noisy:
            # The qubits the observables act on are kept, even idle ones.
            circuit = noise.with_custom_noise(circuit)
            sent, kept = fit_circuit(circuit, also=set().union(*map(pauli_sum_qubits, texts)))
        noise_model = noise.for_qubits(kept)
        sent_texts = [remap_pauli_sum(t, kept) for t in texts]
        # Parameters: each distinct value set is one execution.
        program = circuit_to_program(sent)
        if noise.noisy:
            noise.warn_unnamed(circuit, program.format)
        rows, param_shape = _parameter_rows(pub, program)
        row_exec = np.zeros(rows.shape[0], dtype=np.int64)
        distinct: dict[tuple[float, ...], int] = {}
        unique_rows: list[np.ndarray] = []
        for r in range(rows.shape[0]):
            key = tuple(rows[r].tolist())
            if key not in distinct:
                distinct[key] = len(unique_rows)
                unique_rows.append(rows[r])
            row_exec[r] = distinct[key]
        exec_rows = np.asarray(unique_rows, dtype=float).reshape(len(unique_rows), rows.shape[1])
        shape = np.broadcast_shapes(param_shape, obs_shape)
        exec_of = np.broadcast_to(row_exec.reshape(param_shape), shape)
        text_of = np.broadcast_to(obs_idx, shape)

        groups = _observable_groups(exec_of, text_of, len(unique_rows), len(texts), sent.num_qubits)
        per_job = kettle._max_executions()
        if exec_rows.shape[1] > 0:
            per_job = min(per_job, max(1, MAX_SWEEP_OPERATIONS // _operation_count(circuit)))
        inputs = [program.parameters[p] for p in _input_parameters(circuit, program)]
        every = list(circuit.parameters)
        # Each circuit parameter's column among the inputs (None: global phase only).
        input_of = [inputs.index(program.parameters[p]) if p in program.parameters else None for p in every]
        def result_types(wanted: list[int]) -> list[Any]:
            observables = [sent_texts[t] for t in wanted]
            if self._gradients and inputs:
                return [{"adjoint_gradient": {"observables": observables, "parameters": inputs}}]
            return [{"expectation": observables}]

        chunks: list[_Chunk] = []
        order: list[tuple[int, list[int]]] = []  # per execution sent: (execution, its texts)
        for execs, wanted in groups:
            for c in runner.submit_sweep(
                index, circuit, program, exec_rows[execs],
                result_types=result_types(wanted), shots=self._shots if noise.noisy else None, per_job=per_job,
                noise_model=noise_model,
            ):  # fmt: skip
                chunks.append(_Chunk(c.job_id, len(order) + c.start, c.count))
            order.extend((e, wanted) for e in execs)
        job_ids = [c.job_id for c in chunks]
        added = rng.normal(0.0, precision, shape) if precision > 0 else None

        with_gradients = self._gradients and bool(inputs)

        def finish(executions: list[ExecutionResult]) -> PubResult:
            values = np.full((len(unique_rows), len(texts)), np.nan, dtype=float)
            errors = np.zeros((len(unique_rows), len(texts)), dtype=float)
            grads = np.zeros((len(unique_rows), len(texts), len(every)), dtype=float)
            for (e, wanted), execution in zip(order, executions, strict=True):
                if with_gradients:
                    found = execution.gradients or []
                    if len(found) != len(wanted):
                        raise RuntimeError(f"execution {e} returned {len(found)} gradients, expected {len(wanted)}")
                    values[e, wanted] = [g.value for g in found]
                    for t, g in zip(wanted, found, strict=True):
                        grads[e, t] = [0.0 if k is None else g.gradient[inputs[k]] for k in input_of]
                    continue
                exps = execution.expectations or []
                if len(exps) != len(wanted):
                    raise RuntimeError(f"execution {e} returned {len(exps)} expectation values, expected {len(wanted)}")
                values[e, wanted] = [x.value for x in exps]
                errors[e, wanted] = [x.std_error for x in exps]
            evs = np.asarray(values[exec_of, text_of], dtype=float).reshape(shape)
            if added is not None:
                evs = evs + added
            std_errors = np.asarray(errors[exec_of, text_of], dtype=float).reshape(shape)
            stds = np.sqrt(precision**2 + std_errors**2)
            fields: dict[str, Any] = {"evs": evs, "stds": stds}
            if self._gradients:
                fields["gradients"] = grads[exec_of, text_of].reshape(shape + (len(every),))
            return PubResult(
                DataBin(**fields, shape=shape),
                metadata={
                    "target_precision": precision,
                    "shots": 0 if not noise.noisy else (executions[0].shots if executions else 0),
                    "circuit_metadata": circuit.metadata,
                    "kettle_job_ids": job_ids,
                },
            )

        return _PubPlan(chunks, finish, job_ids)


#: Wasted work (amplitudes × expectation values computed but not needed)
#: beyond which an Estimator PUB is split into one job per set of observables.
_WASTE_BEFORE_SPLIT = 1 << 24


def _observable_groups(
    exec_of: np.ndarray, text_of: np.ndarray, n_exec: int, n_texts: int, num_qubits: int
) -> list[tuple[list[int], list[int]]]:
    """Which observables to send with which executions: ``[(executions,
    observables)]``. One job computing every observable for every execution
    is the rule; when the broadcast pairs far fewer (observables zipped
    element-wise with parameter sets) and the states are large enough for
    the unused values to cost more than extra jobs, executions are grouped
    by the set of observables they need."""
    everything = [(list(range(n_exec)), list(range(n_texts)))]
    needed: list[set[int]] = [set() for _ in range(n_exec)]
    for e, t in zip(exec_of.ravel().tolist(), text_of.ravel().tolist(), strict=True):
        needed[e].add(t)
    pairs = sum(len(n) for n in needed)
    if (n_exec * n_texts - pairs) * (1 << min(num_qubits, 40)) <= _WASTE_BEFORE_SPLIT:
        return everything
    by_set: dict[tuple[int, ...], list[int]] = {}
    for e, wanted in enumerate(needed):
        by_set.setdefault(tuple(sorted(wanted)), []).append(e)
    return [(execs, list(wanted)) for wanted, execs in by_set.items()]


def _observable_at(obs_array: Any, nd: tuple[int, ...]) -> Any:
    """One element of an ObservablesArray: a SparseObservable where Qiskit
    keeps them (2.x), else the label→weight mapping."""
    if hasattr(obs_array, "slice"):
        return obs_array.slice(nd)
    return obs_array[nd]
