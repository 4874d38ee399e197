"""A typed client for Kettle's HTTP job API (``openapi.yaml``).

>>> from kettle_client import KettleClient
>>> with KettleClient("http://127.0.0.1:8080") as kettle:
...     job = kettle.submit('OPENQASM 3; include "stdgates.inc"; qubit[2] q; bit[2] c;'
...                         ' h q[0]; cx q[0], q[1]; c = measure q;', shots=1000)
...     counts = kettle.result(job.id).executions[0].counts
"""

from __future__ import annotations

__version__ = "0.1.0"

from .client import KettleClient, guess_format, noise_model_dict  # noqa: E402
from .errors import (  # noqa: E402
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InvalidRequestError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    KettleError,
    LimitExceededError,
    NotFoundError,
    PermissionDeniedError,
    ProgramError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    TooLargeError,
    TransportError,
    UnavailableError,
)
from .models import (  # noqa: E402
    TERMINAL_STATUSES,
    Backend,
    ExecutionResult,
    Expectation,
    Gradient,
    Job,
    JobError,
    JobList,
    JobProgress,
    JobResult,
    TenantLimits,
)

__all__ = [
    "TERMINAL_STATUSES",
    "ApiError",
    "AuthenticationError",
    "Backend",
    "BadRequestError",
    "ConflictError",
    "ExecutionResult",
    "Expectation",
    "Gradient",
    "InvalidRequestError",
    "Job",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobList",
    "JobProgress",
    "JobResult",
    "JobTimeoutError",
    "KettleClient",
    "KettleError",
    "LimitExceededError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProgramError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ServerError",
    "TenantLimits",
    "TooLargeError",
    "TransportError",
    "UnavailableError",
    "__version__",
    "noise_model_dict",
]
