//! The service's errors: every way a call can fail, each with a stable code
//! that the HTTP layer maps to a status and a problem `type`.

use thiserror::Error;

/// Where in a program an error is: a source position or a JSON path.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProgramLocation {
    /// 1-based line (OpenQASM, and JSON syntax errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column, in characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// JSON path of the offending value (JSON circuits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The included file the position is in, when not the main source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// Why a service call failed.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ServiceError {
    /// The request is malformed or asks for something contradictory.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong, in one line.
        message: String,
        /// The request field at fault, as a JSON path (`$.shots`).
        field: Option<String>,
    },
    /// The program does not parse or is not a valid circuit.
    #[error("{message}")]
    InvalidProgram {
        /// What is wrong, in one line.
        message: String,
        /// Where.
        location: ProgramLocation,
        /// The sweep index the error occurred at, for list-valued inputs.
        execution: Option<usize>,
    },
    /// A per-tenant limit (qubits, shots, executions) is exceeded.
    #[error("{message}")]
    LimitExceeded {
        /// Which limit: `max_qubits`, `max_shots`, `max_executions`, ….
        limit: &'static str,
        /// What is wrong, with the numbers.
        message: String,
    },
    /// The job's state can never fit the memory budget (or a result would
    /// be too large to return).
    #[error("{message}")]
    TooLarge {
        /// Which limit: `memory_budget` or `max_result_bytes`.
        limit: &'static str,
        /// Bytes the job would need.
        needed: u128,
        /// Bytes allowed.
        allowed: u128,
        /// What is wrong, with the numbers.
        message: String,
    },
    /// The tenant has too many queued and running jobs.
    #[error("{message}")]
    TooManyJobs {
        /// What is wrong, with the numbers.
        message: String,
        /// Seconds after which a retry may succeed.
        retry_after_secs: u64,
    },
    /// No such job for this tenant (another tenant's job is not found either).
    #[error("no job with id `{0}`")]
    NotFound(String),
    /// The job has finished, so it cannot be cancelled.
    #[error("job `{id}` has already finished ({status})")]
    AlreadyFinished {
        /// The job.
        id: String,
        /// Its final status.
        status: String,
    },
    /// The idempotency key was used before with a different request.
    #[error("the idempotency key `{0}` was already used with a different request")]
    IdempotencyConflict(String),
    /// Missing, unknown or revoked API key.
    #[error("{0}")]
    Unauthorized(String),
    /// The service is shutting down: it takes no new jobs, and requests
    /// waiting for a job answer with this (the job is kept).
    #[error(
        "the server is shutting down: it accepts no new jobs and ends waits now; jobs it accepted are kept, so ask again once it is back"
    )]
    ShuttingDown,
    /// The store failed (disk full, I/O error): not the caller's fault,
    /// and the same write may succeed later.
    #[error("the job store failed: {0}")]
    Store(String),
    /// The store refused a write that it will never accept (a value over
    /// SQLite's size limit, a broken constraint): retrying cannot help.
    #[error("the job store cannot hold this write: {0}")]
    Unstorable(String),
}

impl ServiceError {
    /// A stable, machine-readable code; the HTTP layer's problem `type`
    /// ends with it.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::InvalidRequest { .. } => "invalid-request",
            ServiceError::InvalidProgram { .. } => "invalid-program",
            ServiceError::LimitExceeded { .. } => "limit-exceeded",
            ServiceError::TooLarge { .. } => "too-large",
            ServiceError::TooManyJobs { .. } => "too-many-jobs",
            ServiceError::NotFound(_) => "not-found",
            ServiceError::AlreadyFinished { .. } => "already-finished",
            ServiceError::IdempotencyConflict(_) => "idempotency-conflict",
            ServiceError::Unauthorized(_) => "unauthorized",
            ServiceError::ShuttingDown => "shutting-down",
            ServiceError::Store(_) | ServiceError::Unstorable(_) => "store-failure",
        }
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
        ServiceError::InvalidRequest {
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }
}

impl ServiceError {
    /// Whether the same store write may succeed later (a full disk, an I/O
    /// error, a read-only or busy database): such writes are retried.
    pub fn is_transient(&self) -> bool {
        matches!(self, ServiceError::Store(_))
    }
}

/// SQLite's primary result codes of a write that can never succeed:
/// `SQLITE_TOOBIG`, `SQLITE_CONSTRAINT`, `SQLITE_MISMATCH`, `SQLITE_RANGE`.
/// Everything else (`SQLITE_FULL`, `IOERR`, `READONLY`, `BUSY`, `LOCKED`,
/// `CANTOPEN`, `NOMEM`, lost connections) may pass on a later try.
const PERMANENT_SQLITE_CODES: [i64; 4] = [18, 19, 20, 25];

impl From<sqlx::Error> for ServiceError {
    fn from(e: sqlx::Error) -> Self {
        let permanent = e
            .as_database_error()
            .and_then(|d| d.code())
            .and_then(|c| c.parse::<i64>().ok())
            // Extended codes keep the primary code in their low byte.
            .is_some_and(|code| PERMANENT_SQLITE_CODES.contains(&(code & 0xff)));
        if permanent {
            ServiceError::Unstorable(e.to_string())
        } else {
            ServiceError::Store(e.to_string())
        }
    }
}
