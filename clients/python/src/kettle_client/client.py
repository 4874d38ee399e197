"""The HTTP client: one method per route of ``openapi.yaml``."""

from __future__ import annotations

import email.utils
import json as _json
import random
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Literal, TextIO
from urllib.parse import quote

import httpx

from . import __version__
from .errors import (
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    KettleError,
    TransportError,
    error_from_response,
)
from .models import Backend, Job, JobList, JobResult

__all__ = ["KettleClient", "guess_format", "noise_model_dict"]

#: Statuses worth retrying: the request was not carried out, or a proxy
#: could not say (and idempotency keys make a repeated submission safe).
RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})
#: Statuses that say for sure the server did not act on the request.
NOT_DONE_STATUSES = frozenset({429, 503})
#: The longest a single ``?wait=`` asks the server for (it caps waits at 60 s
#: by default).
POLL_SECONDS = 30.0

_Retry = Literal["safe", "unsent"]


def guess_format(source: str) -> str:
    """``qasm2``, ``qasm3`` or ``json`` from a program's text: the version in
    its ``OPENQASM`` header, ``json`` for a JSON document, else ``qasm3``
    (the header is optional in OpenQASM 3)."""
    text = source.lstrip("\ufeff")
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            break
    rest = text[i:]
    if rest.startswith("{"):
        return "json"
    if rest.startswith("OPENQASM"):
        version = rest[len("OPENQASM") :].lstrip()
        if version.startswith("2"):
            return "qasm2"
    return "qasm3"


def noise_model_dict(noise_model: Any) -> dict[str, Any]:
    """A noise model as a job's ``noise_model`` member: Qiskit Aer's
    ``NoiseModel.to_dict(serializable=True)`` for an object with that
    method, a mapping as it is (copied). Raises :class:`TypeError` for
    anything else."""
    to_dict = getattr(noise_model, "to_dict", None)
    if callable(to_dict):
        out = to_dict(serializable=True)
    elif isinstance(noise_model, Mapping):
        out = noise_model
    else:
        raise TypeError(
            "noise_model must be a Qiskit Aer NoiseModel (or anything with to_dict(serializable=True)) "
            f"or the dict it returns, not {type(noise_model).__name__}"
        )
    if not isinstance(out, Mapping):
        raise TypeError(f"noise_model.to_dict(serializable=True) returned a {type(out).__name__}, not a dict")
    return dict(out)


#: How often ``result(..., progress=True)`` reads the job.
PROGRESS_SECONDS = 0.5


def progress_line(job: Job, width: int = 30) -> str:
    """One line for a job's state: ``[#####     ] 42% about 3 s left``
    while it runs, its status otherwise."""
    if job.done:
        return f"[{'#' * width}] {job.status}".ljust(width + 30)
    if job.status != "running" or job.progress is None:
        where = f" (position {job.queue_position})" if job.queue_position else ""
        return f"[{' ' * width}] {job.status}{where}".ljust(width + 30)
    filled = int(width * min(max(job.progress.fraction, 0.0), 1.0))
    left = job.progress.seconds_left
    eta = f" about {left:.0f} s left" if left is not None else ""
    return f"[{'#' * filled}{' ' * (width - filled)}] {job.progress.fraction:4.0%}{eta}".ljust(width + 30)


class KettleClient:
    """A client of one Kettle server.

    ``url`` is the server's base address, ``token`` an API key (``kettle keys
    create``; none in local mode). ``timeout`` bounds each HTTP exchange in
    seconds (long polls get their wait added). Requests that can be repeated
    safely are retried up to ``retries`` times on connection errors and on
    408, 429, 502, 503 and 504, after ``Retry-After`` when the server sends
    one, else after ``backoff`` · 2^attempt seconds with jitter. Submissions
    are safe to repeat because each carries an ``Idempotency-Key``; no other
    4xx is ever retried.

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        # What a copy rebuilds its own connection pool from (see __getstate__).
        self._settings: dict[str, Any] = {
            "url": url, "token": token, "timeout": timeout, "retries": retries, "backoff": backoff,
            "max_backoff": max_backoff, "headers": dict(headers) if headers else None, "transport": transport,
        }  # fmt: skip
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        h = {"User-Agent": f"kettle-client/{__version__}", "Accept": "application/json"}
        if token:
            h["Authorization"] = f"Bearer {token}"
        if headers:
            h.update(headers)
        self._http = httpx.Client(base_url=self.url, headers=h, timeout=self.timeout, transport=transport)

    # -- plumbing -------------------------------------------------------

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    # A client is copied, deep-copied and pickled as its settings: the copy
    # opens its own connection pool (one holds locks and sockets, which
    # cannot be shared across copies or processes). Qiskit's runtime local
    # mode deep-copies a backend, and multiprocessing pickles it.
    def __getstate__(self) -> dict[str, Any]:
        if self._settings["transport"] is not None:
            raise TypeError("a KettleClient made with a custom transport cannot be copied or pickled")
        return dict(self._settings)

    def __setstate__(self, state: dict[str, Any]) -> None:
        url = state.pop("url")
        token = state.pop("token")
        self.__init__(url, token, **state)  # type: ignore[misc]

    def __enter__(self) -> KettleClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KettleClient({self.url!r})"

    def _sleep_before_retry(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            delay = retry_after
        else:
            delay = self.backoff * (2**attempt)
            delay *= 0.5 + random.random() / 2
        time.sleep(min(max(delay, 0.0), self.max_backoff))

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        retry: _Retry = "safe",
        extra_timeout: float = 0.0,
    ) -> httpx.Response:
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        content = None
        req_headers = dict(headers or {})
        if json is not None:
            content = _json.dumps(json, allow_nan=False).encode()
            req_headers["Content-Type"] = "application/json"
        timeout = self.timeout + max(extra_timeout, 0.0)
        attempt = 0
        while True:
            try:
                resp = self._http.request(
                    method,
                    path,
                    params=clean_params,
                    content=content,
                    headers=req_headers,
                    timeout=timeout,
                )
            except httpx.TransportError as e:
                unsent = isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
                if attempt < self.retries and (retry == "safe" or unsent):
                    self._sleep_before_retry(attempt, None)
                    attempt += 1
                    continue
                raise TransportError(f"{method} {self.url}{path}: {type(e).__name__}: {e}") from e
            if resp.status_code < 400:
                return resp
            retry_after = _retry_after(resp)
            retryable = RETRY_STATUSES if retry == "safe" else NOT_DONE_STATUSES
            if (
                resp.status_code in retryable
                and attempt < self.retries
                and (retry_after is None or retry_after <= self.max_backoff)
            ):
                self._sleep_before_retry(attempt, retry_after)
                attempt += 1
                continue
            raise error_from_response(resp.status_code, _problem(resp), retry_after=retry_after)

    def _json(self, resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError as e:
            raise KettleError(f"the server answered {resp.status_code} with a body that is not JSON") from e

    # -- jobs -----------------------------------------------------------

    def submit(
        self,
        program: str | Mapping[str, Any],
        format: str | None = None,
        *,
        shots: int | None = None,
        seed: int | None = None,
        result_types: Sequence[str | Mapping[str, Any]] | None = None,
        inputs: Mapping[str, float | Sequence[float]] | None = None,
        precision: str | None = None,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        priority: int | None = None,
        wait: float | None = None,
        idempotency_key: str | None = None,
        keys: str | None = None,
        noise_model: Any = None,
        method: str | None = None,
    ) -> Job:
        """Submits a job (``POST /v1/jobs``) and returns it as stored.

        ``program`` is OpenQASM 2 or 3 text or a ``kettle.circuit`` JSON
        document (text or a mapping); ``format`` (``qasm2``, ``qasm3``,
        ``json``) is guessed from the text when left out. ``result_types``
        lists ``"counts"``, ``"probabilities"``, ``"statevector"``,
        ``"memory"`` or ``{"expectation": ["Z0 Z1", …]}`` (default counts).
        ``inputs`` gives OpenQASM 3 ``input`` values; lists of equal length
        make a sweep, one execution per index. ``wait`` asks the server to
        hold the answer until the job ends or that many seconds pass.

        ``noise_model`` is Qiskit Aer's noise model, applied to every
        execution as Aer applies it: a ``NoiseModel`` (anything with
        ``to_dict(serializable=True)``) or the dict that method returns.
        ``method`` is ``"automatic"`` (the server's default),
        ``"statevector"`` (each shot follows one sampled noise trajectory)
        or ``"density_matrix"`` (exact); each execution's ``method`` says
        which ran. A noisy circuit has no state vector; its
        ``probabilities`` need the density-matrix method.

        A random ``idempotency_key`` is made when none is given, so that a
        retried submission can never make a second job.
        """
        if not isinstance(program, str):
            program = _json.dumps(program)
            format = format or "json"
        fmt = format or guess_format(program)
        body: dict[str, Any] = {"program": {"format": fmt, "source": program}}
        if shots is not None:
            body["shots"] = int(shots)
        if seed is not None:
            body["seed"] = int(seed)
        if result_types is not None:
            body["result_types"] = [rt if isinstance(rt, str) else dict(rt) for rt in result_types]
        if inputs is not None:
            body["inputs"] = {str(k): _input_value(v) for k, v in inputs.items()}
        if precision is not None:
            body["precision"] = precision
        if name is not None:
            body["name"] = name
        if tags is not None:
            body["tags"] = {str(k): str(v) for k, v in tags.items()}
        if priority is not None:
            body["priority"] = int(priority)
        if noise_model is not None:
            body["noise_model"] = noise_model_dict(noise_model)
        if method is not None:
            if not isinstance(method, str):
                raise TypeError(f"method must be a string, not {type(method).__name__}")
            body["method"] = method
        key = idempotency_key or str(uuid.uuid4())
        resp = self._request(
            "POST",
            "/v1/jobs",
            params={"wait": _seconds(wait), "keys": keys},
            json=body,
            headers={"Idempotency-Key": key},
            extra_timeout=wait or 0.0,
        )
        return Job.from_dict(self._json(resp))

    def get(self, job_id: str, *, wait: float | None = None, keys: str | None = None) -> Job:
        """A job (``GET /v1/jobs/{id}``), with its result once completed;
        ``wait`` holds the answer until the job ends or that many seconds
        pass; ``keys="hex"`` keys counts by ``0x…`` value."""
        resp = self._request(
            "GET",
            f"/v1/jobs/{_quote(job_id)}",
            params={"wait": _seconds(wait), "keys": keys},
            extra_timeout=wait or 0.0,
        )
        return Job.from_dict(self._json(resp))

    def wait(self, job_id: str, timeout: float | None = None, *, keys: str | None = None) -> Job:
        """Waits until the job ends (long-polling with ``?wait=``) and returns
        it, whatever its final status. Raises :class:`JobTimeoutError` after
        ``timeout`` seconds (None: no limit)."""
        start = time.monotonic()
        deadline = None if timeout is None else start + max(timeout, 0.0)
        while True:
            now = time.monotonic()
            w = POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - now))
            job = self.get(job_id, wait=w, keys=keys)
            if job.done:
                return job
            after = time.monotonic()
            if deadline is not None and after >= deadline:
                raise JobTimeoutError(job_id, float(timeout or 0.0), job.status)
            if after - now < min(w, 0.2):
                # The server answered before the wait was over: do not spin.
                time.sleep(min(0.2, w) if deadline is None else min(0.2, max(deadline - after, 0.0)))

    def result(
        self,
        job_id: str,
        timeout: float | None = None,
        *,
        keys: str | None = None,
        progress: bool | TextIO = False,
    ) -> JobResult:
        """Waits for the job and returns its result; raises
        :class:`JobFailedError` or :class:`JobCancelledError` (with the job's
        ``error``) if it did not complete, :class:`JobTimeoutError` after
        ``timeout`` seconds. With ``progress`` (True for standard error, or
        a stream), a progress bar of the running job is drawn meanwhile."""
        if progress is False:
            return _result_of(self.wait(job_id, timeout, keys=keys))
        stream: TextIO = sys.stderr if progress is True else progress
        start = time.monotonic()
        while True:
            job = self.get(job_id, keys=keys)
            stream.write("\r" + progress_line(job))
            stream.flush()
            if job.done:
                stream.write("\n")
                return _result_of(job)
            if timeout is not None and time.monotonic() - start >= timeout:
                stream.write("\n")
                raise JobTimeoutError(job_id, float(timeout), job.status)
            time.sleep(PROGRESS_SECONDS)

    def list_jobs(self, status: str | None = None, limit: int | None = None, cursor: str | None = None) -> JobList:
        """One page of the caller's jobs, newest first (``GET /v1/jobs``).

        The jobs are summaries: ``result`` is ``None`` even for completed
        ones (a page never carries results); read a result with
        :meth:`get` or :meth:`result`.
        """
        resp = self._request("GET", "/v1/jobs", params={"status": status, "limit": limit, "cursor": cursor})
        return JobList.from_dict(self._json(resp))

    def iter_jobs(self, status: str | None = None, *, page_size: int | None = None) -> Iterator[Job]:
        """Every job of the caller, newest first, following ``next_cursor``."""
        cursor: str | None = None
        while True:
            page = self.list_jobs(status=status, limit=page_size, cursor=cursor)
            yield from page.jobs
            if not page.next_cursor or not page.jobs:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> Job:
        """Cancels a job (``POST /v1/jobs/{id}/cancel``): a queued job is
        cancelled at once, a running one stops at its next gate (it is
        returned still ``running`` with ``cancel_requested``). A finished job
        raises :class:`ConflictError`."""
        resp = self._request("POST", f"/v1/jobs/{_quote(job_id)}/cancel", retry="unsent")
        return Job.from_dict(self._json(resp))

    def delete(self, job_id: str) -> Job:
        """``DELETE /v1/jobs/{id}``: the same as :meth:`cancel`."""
        resp = self._request("DELETE", f"/v1/jobs/{_quote(job_id)}", retry="unsent")
        return Job.from_dict(self._json(resp))

    def circuit_svg(self, job_id: str, *, fold: int | None = None) -> str:
        """The job's circuit drawn as SVG (``GET /v1/jobs/{id}/circuit.svg``),
        from the same parse the job runs (a sweep's first execution):
        wires, gates with their angles, controls, measurements, resets,
        barriers and ``if`` frames, ``fold`` layers per row (1–100, default
        20). The drawing is bounded; what is left out is said in it."""
        resp = self._request(
            "GET",
            f"/v1/jobs/{_quote(job_id)}/circuit.svg",
            params={"fold": fold},
            headers={"Accept": "image/svg+xml"},
        )
        return resp.text

    # -- server ---------------------------------------------------------

    def backend(self) -> Backend:
        """What the server can run and the caller's limits (``GET /v1/backend``)."""
        return Backend.from_dict(self._json(self._request("GET", "/v1/backend")))

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: ``{"status": "ok"}`` while the process answers."""
        return dict(self._json(self._request("GET", "/healthz")))

    def ready(self) -> dict[str, Any]:
        """``GET /readyz``: the server accepts jobs and its store answers
        (raises :class:`UnavailableError` when not, after the retries)."""
        return dict(self._json(self._request("GET", "/readyz")))

    def metrics(self) -> str:
        """``GET /metrics``: Prometheus text."""
        return self._request("GET", "/metrics", headers={"Accept": "text/plain"}).text


def _result_of(job: Job) -> JobResult:
    if job.status == "completed" and job.result is not None:
        return job.result
    if job.status == "cancelled":
        raise JobCancelledError(job)
    if job.status == "failed":
        raise JobFailedError(job)
    raise KettleError(f"job {job.id} is {job.status} and has no result")


def _input_value(v: Any) -> float | list[float]:
    if isinstance(v, (str, bytes)):
        raise TypeError(f"an input value must be a number or a list of numbers, not {v!r}")
    if hasattr(v, "__iter__"):
        return [float(x) for x in v]
    return float(v)


def _seconds(v: float | None) -> str | None:
    if v is None:
        return None
    return f"{max(float(v), 0.0):.3f}".rstrip("0").rstrip(".") or "0"


def _quote(job_id: str) -> str:
    if not job_id:
        raise ValueError("a job id must not be empty")
    return quote(str(job_id), safe="")


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(float((when - datetime.now(timezone.utc)).total_seconds()), 0.0)


def _problem(resp: httpx.Response) -> dict[str, Any]:
    try:
        doc = resp.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return doc
    text = resp.text.strip()
    return {"title": resp.reason_phrase or f"HTTP {resp.status_code}", "status": resp.status_code, "detail": text[:500]}

