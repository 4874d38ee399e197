"""Typed, immutable views of the documents of ``openapi.yaml``.

Each class has ``from_dict`` that reads the server's JSON; members the
client does not know are ignored (a newer server may add some), and each
object keeps the document it came from in ``raw``. Timestamps become
timezone-aware :class:`~datetime.datetime` objects and state vectors lists
of :class:`complex`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

__all__ = [
    "TERMINAL_STATUSES",
    "Backend",
    "ExecutionResult",
    "Expectation",
    "Job",
    "JobError",
    "JobList",
    "JobResult",
    "TenantLimits",
    "parse_timestamp",
]

#: Statuses after which a job never changes.
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``2024-05-01T12:00:00.123Z``) as an aware datetime."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        # Python 3.10's fromisoformat takes only 0, 3 or 6 fraction digits.
        if "." in text:
            head, _, rest = text.partition(".")
            digits = "".join(c for c in rest if c.isdigit())
            tz = rest[len(digits) :]
            return datetime.fromisoformat(f"{head}.{(digits + '000000')[:6]}{tz}")
        raise


@dataclass(frozen=True)
class Expectation:
    """The expectation value of one Pauli sum.

    ``std_error`` is 0 when the value is exact (an ideal circuit, or the
    ``density_matrix`` method), else the standard error of the mean over
    the noise trajectories (``statevector`` method with a noise model); a
    server that does not send it ran the circuit exactly.
    """

    observable: str
    value: float
    std_error: float = 0.0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Expectation:
        err = d.get("std_error")
        return cls(
            observable=str(d.get("observable", "")),
            value=float(d.get("value", 0.0)),
            std_error=float(err) if isinstance(err, (int, float)) else 0.0,
            raw=d,
        )


@dataclass(frozen=True)
class Gradient:
    """An expectation value and its exact derivatives (the
    ``adjoint_gradient`` result type): ``gradient[name]`` is
    ∂⟨observable⟩/∂``name`` for each input parameter asked for."""

    observable: str
    value: float
    gradient: dict[str, float]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Gradient:
        g = d.get("gradient")
        return cls(
            observable=str(d.get("observable", "")),
            value=float(d.get("value", 0.0)),
            gradient={str(k): float(v) for k, v in g.items()} if isinstance(g, Mapping) else {},
            raw=d,
        )


@dataclass(frozen=True)
class ExecutionResult:
    """The result of one execution (one index of a sweep).

    ``counts`` and ``probabilities`` are keyed by bitstring (classical bit 0
    rightmost) or by ``0x…`` value when asked with ``keys="hex"``;
    ``statevector`` has qubit 0 as the least significant bit of the index;
    a state of more than the server's ``max_listed_qubits`` comes as
    ``sparse_statevector`` instead, its non-zero amplitudes keyed by the
    basis state's bitstring (qubit 0 rightmost, as Qiskit's
    ``Statevector.to_dict()``); ``memory`` is one key per shot, in shot
    order. ``method`` is the simulation method that ran: ``"statevector"``
    or ``"density_matrix"`` (None from a server that does not say, which
    simulates state vectors).
    """

    seed: int
    shots: int
    counts: dict[str, int] | None = None
    probabilities: dict[str, float] | None = None
    statevector: list[complex] | None = None
    sparse_statevector: dict[str, complex] | None = None
    expectations: list[Expectation] | None = None
    gradients: list[Gradient] | None = None
    memory: list[str] | None = None
    inputs: dict[str, float] | None = None
    method: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExecutionResult:
        sv = d.get("statevector")
        sparse = d.get("sparse_statevector")
        exps = d.get("expectations")
        grads = d.get("gradients")
        counts = d.get("counts")
        probs = d.get("probabilities")
        memory = d.get("memory")
        inputs = d.get("inputs")
        method = d.get("method")
        return cls(
            seed=int(d.get("seed", 0)),
            shots=int(d.get("shots", 0)),
            counts={str(k): int(v) for k, v in counts.items()} if isinstance(counts, Mapping) else None,
            probabilities={str(k): float(v) for k, v in probs.items()} if isinstance(probs, Mapping) else None,
            statevector=[complex(float(a[0]), float(a[1])) for a in sv] if isinstance(sv, list) else None,
            sparse_statevector=(
                {str(k): complex(float(a[0]), float(a[1])) for k, a in sparse.items()}
                if isinstance(sparse, Mapping)
                else None
            ),
            expectations=[Expectation.from_dict(e) for e in exps] if isinstance(exps, list) else None,
            gradients=[Gradient.from_dict(g) for g in grads] if isinstance(grads, list) else None,
            memory=[str(m) for m in memory] if isinstance(memory, list) else None,
            inputs={str(k): float(v) for k, v in inputs.items()} if isinstance(inputs, Mapping) else None,
            method=str(method) if isinstance(method, str) else None,
            raw=d,
        )


@dataclass(frozen=True)
class JobResult:
    """A completed job's results: one :class:`ExecutionResult` per execution."""

    executions: list[ExecutionResult]
    run_seconds: float
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobResult:
        return cls(
            executions=[ExecutionResult.from_dict(e) for e in d.get("executions") or []],
            run_seconds=float(d.get("run_seconds", 0.0)),
            raw=d,
        )


@dataclass(frozen=True)
class JobError:
    """Why a job failed or was cancelled (``code``: ``run-time-exceeded``,
    ``simulation-error``, ``cancelled``, ``internal-error``, ``stopped``)."""

    code: str
    message: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobError:
        return cls(code=str(d.get("code", "")), message=str(d.get("message", "")), raw=d)


@dataclass(frozen=True)
class Job:
    """A job as the server reports it; ``result`` is set once it completed.

    ``method`` is the simulation method it runs with (``statevector``,
    ``density_matrix``; ``automatic`` for a job from before noise support;
    None from a server without it) and ``noisy`` whether its circuits have
    noise (a ``noise_model``, or channels in the program)."""

    id: str
    status: str
    format: str
    qubits: int
    shots: int
    executions: int
    precision: str
    seed: int
    memory_bytes: int
    created_at: datetime | None
    attempts: int
    cancel_requested: bool
    priority: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    queue_position: int | None = None
    progress: JobProgress | None = None
    result: JobResult | None = None
    error: JobError | None = None
    links: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    noisy: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """Whether the job has ended (completed, failed or cancelled)."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Job:
        res = d.get("result")
        err = d.get("error")
        qp = d.get("queue_position")
        prog = d.get("progress")
        name = d.get("name")
        method = d.get("method")
        return cls(
            id=str(d["id"]),
            status=str(d.get("status", "")),
            format=str(d.get("format", "")),
            qubits=int(d.get("qubits", 0)),
            shots=int(d.get("shots", 0)),
            executions=int(d.get("executions", 0)),
            precision=str(d.get("precision", "")),
            seed=int(d.get("seed", 0)),
            memory_bytes=int(d.get("memory_bytes", 0)),
            created_at=parse_timestamp(d.get("created_at")),
            attempts=int(d.get("attempts", 0)),
            cancel_requested=bool(d.get("cancel_requested", False)),
            priority=int(d.get("priority", 0)),
            tags={str(k): str(v) for k, v in (d.get("tags") or {}).items()},
            name=str(name) if isinstance(name, str) else None,
            started_at=parse_timestamp(d.get("started_at")),
            ended_at=parse_timestamp(d.get("ended_at")),
            queue_position=int(qp) if isinstance(qp, int) else None,
            progress=JobProgress.from_dict(prog) if isinstance(prog, Mapping) else None,
            result=JobResult.from_dict(res) if isinstance(res, Mapping) else None,
            error=JobError.from_dict(err) if isinstance(err, Mapping) else None,
            links={str(k): str(v) for k, v in (d.get("links") or {}).items()},
            method=str(method) if isinstance(method, str) else None,
            noisy=bool(d.get("noisy", False)),
            raw=d,
        )


@dataclass(frozen=True)
class JobProgress:
    """How far a running job has got, as the node running it estimates:
    ``fraction`` of its operations applied (0 to 1) and ``seconds_left`` at
    the rate so far (None until something was applied)."""

    fraction: float
    seconds_left: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobProgress:
        left = d.get("seconds_left")
        return cls(fraction=float(d.get("fraction", 0.0)), seconds_left=float(left) if left is not None else None)


@dataclass(frozen=True)
class JobList:
    """One page of jobs, newest first; ``next_cursor`` is set when more follow."""

    jobs: list[Job]
    next_cursor: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobList:
        cur = d.get("next_cursor")
        return cls(
            jobs=[Job.from_dict(j) for j in d.get("jobs") or []],
            next_cursor=str(cur) if cur is not None else None,
            raw=d,
        )


@dataclass(frozen=True)
class TenantLimits:
    """The calling tenant's limits."""

    max_qubits: int
    max_shots: int
    max_executions: int
    max_active_jobs: int
    max_request_bytes: int
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TenantLimits:
        return cls(
            max_qubits=int(d.get("max_qubits", 0)),
            max_shots=int(d.get("max_shots", 0)),
            max_executions=int(d.get("max_executions", 0)),
            max_active_jobs=int(d.get("max_active_jobs", 0)),
            max_request_bytes=int(d.get("max_request_bytes", 0)),
            raw=d,
        )


@dataclass(frozen=True)
class Backend:
    """What the server can run (``GET /v1/backend``).

    ``max_qubits`` maps a precision (``"f64"``, ``"f32"``) to the largest
    state the memory budget holds; ``limits`` are the caller's.
    ``methods`` lists the simulation methods a job may ask for
    (``automatic``, ``statevector``, ``density_matrix``), ``channels`` the
    noise channels a program may use (Braket's noise pragmas, the JSON
    format's ``channel``) and ``noise_models`` the formats of a job's
    ``noise_model`` (``qiskit_aer``); all are empty from a server without
    noise support. ``simd`` is the instruction set the server's kernels run
    (``avx512``, ``avx2`` or ``portable``; empty from older servers).
    ``ranks`` is how many MPI ranks the server splits a job larger than
    its memory budget over (0: it does not), and ``ranks_max_qubits`` the
    largest such job per precision (noiseless, without gradients).
    """

    name: str
    version: str
    simulator: str
    max_qubits: dict[str, int]
    memory_budget_bytes: int
    workers: int
    formats: list[str]
    result_types: list[str]
    gates: list[str]
    limits: TenantLimits
    max_listed_qubits: int
    max_run_time_seconds: float
    local_mode: bool
    bit_order: str
    methods: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    noise_models: list[str] = field(default_factory=list)
    simd: str = ""
    ranks: int = 0
    ranks_max_qubits: dict[str, int] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def supports_noise(self) -> bool:
        """Whether the server takes Qiskit Aer noise models (``noise_model``)."""
        return "qiskit_aer" in self.noise_models

    def qubit_limit(self, precision: str = "f64") -> int:
        """Most qubits a job at ``precision`` may have: the smaller of the
        memory's (the budget's, or the ranks' for a noiseless job) and the
        tenant's limit."""
        memory = max(self.max_qubits.get(precision, 0), self.ranks_max_qubits.get(precision, 0))
        return min(memory, self.limits.max_qubits)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Backend:
        return cls(
            name=str(d.get("name", "")),
            version=str(d.get("version", "")),
            simulator=str(d.get("simulator", "")),
            max_qubits={str(k): int(v) for k, v in (d.get("max_qubits") or {}).items()},
            memory_budget_bytes=int(d.get("memory_budget_bytes", 0)),
            workers=int(d.get("workers", 1)),
            formats=[str(x) for x in d.get("formats") or []],
            result_types=[str(x) for x in d.get("result_types") or []],
            gates=[str(x) for x in d.get("gates") or []],
            limits=TenantLimits.from_dict(d.get("limits") or {}),
            max_listed_qubits=int(d.get("max_listed_qubits", 0)),
            max_run_time_seconds=float(d.get("max_run_time_seconds", 0.0)),
            local_mode=bool(d.get("local_mode", False)),
            bit_order=str(d.get("bit_order", "")),
            methods=[str(x) for x in d.get("methods") or []],
            channels=[str(x) for x in d.get("channels") or []],
            noise_models=[str(x) for x in d.get("noise_models") or []],
            simd=str(d.get("simd", "")),
            ranks=int((d.get("across_ranks") or {}).get("ranks", 0)),
            ranks_max_qubits={
                str(k): int(v)
                for k, v in ((d.get("across_ranks") or {}).get("max_qubits") or {}).items()
            },
            raw=d,
        )
