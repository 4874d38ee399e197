"""``KettleJob``: one ``backend.run`` call, made of one Kettle job per circuit."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
from qiskit.providers import JobError, JobStatus, JobTimeoutError, JobV1
from qiskit.quantum_info import Statevector
from qiskit.result import Result
from qiskit.result.models import ExperimentResult, ExperimentResultData, MeasLevel

from kettle_client import Job
from kettle_client import JobTimeoutError as ClientJobTimeoutError
from kettle_client import KettleError

if TYPE_CHECKING:
    from .backend import KettleBackend

__all__ = ["Experiment", "KettleJob"]

_STATUS = {
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "completed": JobStatus.DONE,
    "failed": JobStatus.ERROR,
    "cancelled": JobStatus.CANCELLED,
}


@dataclass
class Experiment:
    """What the backend asked of one Kettle job, to build Qiskit results from it.

    One circuit is one Kettle job; a circuit run with ``parameter_binds`` is
    a sweep, and each of its executions is one experiment result.
    """

    kettle_id: str
    header: dict[str, Any]
    shots: int
    counts: bool
    memory: bool
    statevector: bool
    #: Global phase of each execution, to apply to its state vector.
    phases: list[float] = field(default_factory=lambda: [0.0])
    num_qubits: int = 0


class KettleJob(JobV1):
    """The job ``KettleBackend.run`` returns.

    ``job_id()`` is the Kettle job ids of its circuits joined by commas
    (``kettle_ids`` lists them). ``result()`` waits for all of them and
    builds a :class:`~qiskit.result.Result` shaped like Qiskit Aer's.
    """

    def __init__(self, backend: KettleBackend, experiments: Sequence[Experiment], **kwargs: Any) -> None:
        self._experiments = list(experiments)
        super().__init__(backend, ",".join(e.kettle_id for e in self._experiments), **kwargs)
        self._result: Result | None = None
        self._finished: dict[str, Job] = {}

    @property
    def kettle_ids(self) -> list[str]:
        """The Kettle job ids, one per circuit, in the order of the circuits."""
        return [e.kettle_id for e in self._experiments]

    @property
    def client(self) -> Any:
        return self._backend.client

    def submit(self) -> None:
        raise JobError("a KettleJob is submitted by KettleBackend.run")

    def status(self) -> JobStatus:
        """QUEUED until a circuit runs; ERROR or CANCELLED as soon as one
        circuit failed or was cancelled; DONE when all completed."""
        statuses = []
        for e in self._experiments:
            job = self._finished.get(e.kettle_id) or self.client.get(e.kettle_id)
            if job.done:
                self._finished[e.kettle_id] = job
            statuses.append(job.status)
        for s in ("failed", "cancelled", "running", "queued"):
            if s in statuses:
                return _STATUS[s]
        return JobStatus.DONE

    def cancel(self) -> bool:
        """Asks Kettle to cancel every circuit not yet ended; True if any was."""
        cancelled = False
        for e in self._experiments:
            if e.kettle_id in self._finished:
                continue
            try:
                job = self.client.cancel(e.kettle_id)
            except KettleError:
                continue
            cancelled = cancelled or job.status == "cancelled" or job.cancel_requested
        return cancelled

    def result(self, timeout: float | None = None) -> Result:
        """Waits for every circuit (``timeout`` seconds in all, None: no
        limit) and returns the results. Raises
        :class:`~qiskit.providers.JobTimeoutError` on time-out and
        :class:`~qiskit.providers.JobError` if a circuit failed or was
        cancelled (the message gives Kettle's reason)."""
        if self._result is not None:
            return self._result
        deadline = None if timeout is None else time.monotonic() + timeout
        results: list[ExperimentResult] = []
        for e in self._experiments:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                job = self._finished.get(e.kettle_id) or self.client.wait(e.kettle_id, remaining)
            except ClientJobTimeoutError as err:
                raise JobTimeoutError(f"Kettle job {e.kettle_id} did not end within {timeout} s") from err
            self._finished[e.kettle_id] = job
            if job.status != "completed" or job.result is None:
                error = job.error
                why = f": {error.code}: {error.message}" if error else ""
                verb = "was cancelled" if job.status == "cancelled" else "failed"
                raise JobError(f"Kettle job {e.kettle_id} {verb}{why}")
            out = job.result
            results.extend(_experiment_results(e, job, out))
        self._result = Result(
            backend_name=self._backend.name,
            backend_version=self._backend.backend_version,
            qobj_id="",
            job_id=self.job_id(),
            success=True,
            results=results,
            date=datetime.now(timezone.utc).isoformat(),
            status="COMPLETED",
        )
        return self._result


def _experiment_results(e: Experiment, job: Job, out: Any) -> list[ExperimentResult]:
    results = []
    for i, ex in enumerate(out.executions):
        data: dict[str, Any] = {}
        if e.counts and ex.counts is not None:
            data["counts"] = {_hex(k): v for k, v in ex.counts.items()}
        if e.memory:
            if ex.memory is None:
                raise JobError("the Kettle server sent no memory (it needs the `memory` result type)")
            data["memory"] = [_hex(k) for k in ex.memory]
        if e.statevector and (ex.statevector is not None or ex.sparse_statevector is not None):
            if ex.statevector is not None:
                vec = np.asarray(ex.statevector, dtype=complex)
            else:
                # Past the server's max_listed_qubits: the non-zero
                # amplitudes, by bitstring; Qiskit's Statevector is dense.
                sparse = ex.sparse_statevector or {}
                width = len(next(iter(sparse), ""))
                vec = np.zeros(1 << width, dtype=complex)
                for bits, amplitude in sparse.items():
                    vec[int(bits, 2)] = amplitude
            phase = e.phases[i] if i < len(e.phases) else e.phases[-1]
            if phase:
                vec = vec * np.exp(1j * phase)
            data["statevector"] = Statevector(vec)
        header = dict(e.header)
        metadata = {
            "kettle_job_id": job.id,
            "execution": i,
            "run_seconds": out.run_seconds,
            "precision": job.precision,
        }
        if ex.inputs:
            metadata["inputs"] = dict(ex.inputs)
        if ex.method is not None:
            metadata["method"] = ex.method
        results.append(
            ExperimentResult(
                shots=e.shots if e.counts else ex.shots,
                success=True,
                data=ExperimentResultData(**data),
                meas_level=MeasLevel.CLASSIFIED,
                status="DONE",
                seed=ex.seed,
                header=_header(header),
                seed_simulator=ex.seed,
                time_taken=out.run_seconds,
                metadata=metadata,
            )
        )
    return results


def _hex(key: str) -> str:
    if key.startswith("0x"):
        return key
    bits = key.replace(" ", "")
    return hex(int(bits, 2)) if bits else "0x0"


def _header(h: dict[str, Any]) -> Any:
    try:  # Qiskit 1.x keeps headers as objects, as Aer gives them there
        from qiskit.qobj import QobjExperimentHeader
    except ImportError:
        return h
    # Qiskit 1.2+ warns that the class is deprecated: a warning the user
    # cannot act on, since `Result` expects it on 1.x.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return QobjExperimentHeader.from_dict(h)
