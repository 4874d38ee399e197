"""Exceptions of the Kettle client.

Every error the server answers is an RFC 7807 problem (``openapi.yaml``):
:class:`ApiError` carries its members (``type``'s code, ``title``,
``detail``, ``line``/``column`` for program errors, ``field``, ``limit``, …)
and the raw document in :attr:`ApiError.problem`. Subclasses name the kinds
a caller may want to catch; :func:`error_from_response` picks one from the
HTTP status and the problem's code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Job

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InvalidRequestError",
    "JobCancelledError",
    "JobFailedError",
    "JobTimeoutError",
    "KettleError",
    "LimitExceededError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProgramError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ServerError",
    "TooLargeError",
    "TransportError",
    "UnavailableError",
    "error_from_response",
]

PROBLEM_PREFIX = "urn:kettle:problem:"


class KettleError(Exception):
    """Base class of every error this package raises."""


class TransportError(KettleError):
    """The request did not get an HTTP answer (connection refused or reset,
    DNS failure, time-out), after the retries the client was allowed."""


class ApiError(KettleError):
    """The server answered with an error status and (usually) a problem document."""

    def __init__(self, status: int, problem: dict[str, Any] | None, *, retry_after: float | None = None):
        self.status: int = status
        self.problem: dict[str, Any] = dict(problem or {})
        p = self.problem
        self.type: str | None = _str_or_none(p.get("type"))
        self.code: str | None = (
            self.type[len(PROBLEM_PREFIX) :] if self.type and self.type.startswith(PROBLEM_PREFIX) else None
        )
        self.title: str | None = _str_or_none(p.get("title"))
        self.detail: str | None = _str_or_none(p.get("detail"))
        self.line: int | None = _int_or_none(p.get("line"))
        self.column: int | None = _int_or_none(p.get("column"))
        self.path: str | None = _str_or_none(p.get("path"))
        self.file: str | None = _str_or_none(p.get("file"))
        self.execution: int | None = _int_or_none(p.get("execution"))
        self.field: str | None = _str_or_none(p.get("field"))
        self.limit: str | None = _str_or_none(p.get("limit"))
        self.needed: str | None = _str_or_none(p.get("needed"))
        self.allowed: str | None = _str_or_none(p.get("allowed"))
        self.job_status: str | None = _str_or_none(p.get("job_status"))
        self.retry_after: float | None = retry_after
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
            if self.column is not None:
                where.append(f"column {self.column}")
        if self.path:
            where.append(f"at {self.path}")
        if self.execution is not None:
            where.append(f"execution {self.execution}")
        text = self.detail or self.title or "no details"
        prefix = f"{', '.join(where)}: " if where else ""
        code = f" {self.code}" if self.code else ""
        return f"{prefix}{text} (HTTP {self.status}{code})"


class BadRequestError(ApiError):
    """400: the request was malformed (bad JSON, query parameter or header)."""


class AuthenticationError(ApiError):
    """401: no API key, or one the server does not know."""


class PermissionDeniedError(ApiError):
    """403: the key may not do this."""


class NotFoundError(ApiError):
    """404: no such job (another tenant's jobs answer 404 too)."""


class RequestTimeoutError(ApiError):
    """408: the request body did not arrive in time."""


class ConflictError(ApiError):
    """409: the job has already ended (``job_status``), or an idempotency key
    was reused with another body."""


class InvalidRequestError(ApiError):
    """422: a well-formed request the server refuses (``field`` says which part)."""


class ProgramError(InvalidRequestError):
    """422 ``invalid-program``: the program does not parse or validate.
    ``line`` and ``column`` (1-based line) locate the fault in the source, and
    the message starts with ``line L, column C:``."""


class LimitExceededError(InvalidRequestError):
    """A tenant or server limit was exceeded; ``limit`` names it
    (``max_qubits``, ``max_shots``, ``max_executions``, ``max_request_bytes``,
    ``max_sweep_operations``)."""


class TooLargeError(LimitExceededError):
    """413: the request body or the state it needs is too large
    (``needed`` and ``allowed``, decimal strings)."""


class RateLimitedError(ApiError):
    """429: too many active jobs; retry after ``retry_after`` seconds."""


class UnavailableError(ApiError):
    """503 (or 502/504 from a proxy): the server is shutting down, not ready,
    or its store failed; retry later."""


class ServerError(ApiError):
    """Any other 5xx."""


class JobFailedError(KettleError):
    """The job ended with status ``failed``; ``job.error`` says why."""

    def __init__(self, job: Job):
        self.job = job
        err = job.error
        self.code: str | None = err.code if err else None
        self.error_message: str | None = err.message if err else None
        detail = f"{err.code}: {err.message}" if err else "no error recorded"
        super().__init__(f"job {job.id} failed: {detail}")


class JobCancelledError(KettleError):
    """The job was cancelled before it completed."""

    def __init__(self, job: Job):
        self.job = job
        err = job.error
        suffix = f" ({err.message})" if err else ""
        super().__init__(f"job {job.id} was cancelled{suffix}")


class JobTimeoutError(KettleError, TimeoutError):
    """The job did not end within the time the caller allowed; it goes on
    running on the server (cancel it to stop it)."""

    def __init__(self, job_id: str, timeout: float, last_status: str | None = None):
        self.job_id = job_id
        self.timeout = timeout
        self.last_status = last_status
        status = f" (still {last_status})" if last_status else ""
        super().__init__(f"job {job_id} did not end within {timeout:g} s{status}")


#: The error class of each status that has one of its own (422 depends on
#: the problem, other 5xx are ServerError, the rest ApiError).
_ERROR_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    409: ConflictError,
    413: TooLargeError,
    429: RateLimitedError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
}


def error_from_response(status: int, problem: dict[str, Any] | None, *, retry_after: float | None = None) -> ApiError:
    """The :class:`ApiError` subclass for an HTTP status and problem document."""
    code = ""
    if problem and isinstance(problem.get("type"), str) and problem["type"].startswith(PROBLEM_PREFIX):
        code = problem["type"][len(PROBLEM_PREFIX) :]
    cls: type[ApiError]
    if status == 422:
        if code == "invalid-program" or (problem and "line" in problem):
            cls = ProgramError
        elif code == "limit-exceeded" or (problem and "limit" in problem):
            cls = LimitExceededError
        else:
            cls = InvalidRequestError
    elif status in _ERROR_BY_STATUS:
        cls = _ERROR_BY_STATUS[status]
    elif status >= 500:
        cls = ServerError
    else:
        cls = ApiError
    return cls(status, problem, retry_after=retry_after)


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None
