//! Errors on the wire: RFC 7807 `application/problem+json` bodies with a
//! stable `type` (`urn:kettle:problem:<code>`), a `title` per type, the
//! `status`, a human `detail`, and extension members where they help
//! (`line`/`column`/`path` for program errors, `limit`, `needed`/`allowed`).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use kettle_service::ServiceError;
use serde_json::{Map, Value, json};

/// The media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answered as a problem document.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    extra: Map<String, Value>,
    retry_after: Option<u64>,
    /// Response headers the status calls for (`Accept-Encoding` on a 415);
    /// boxed, as a problem travels in every handler's `Err`.
    headers: Box<[(header::HeaderName, HeaderValue)]>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl Problem {
    /// A problem with no extension members.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            status,
            code,
            title,
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
            headers: Box::default(),
        }
    }

    /// Adds a response header.
    pub(crate) fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Problem {
        let mut headers = std::mem::take(&mut self.headers).into_vec();
        headers.push((name, HeaderValue::from_static(value)));
        self.headers = headers.into_boxed_slice();
        self
    }

    /// Adds an extension member.
    pub fn with(mut self, key: &str, value: Value) -> Problem {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// Sets `Retry-After` (seconds).
    pub fn retry_after(mut self, secs: u64) -> Problem {
        self.retry_after = Some(secs);
        self
    }

    /// A malformed request (syntax, types, query parameters).
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
            detail,
        )
    }

    /// The problem's `type` URI.
    pub fn type_uri(code: &str) -> String {
        format!("urn:kettle:problem:{code}")
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = Map::new();
        body.insert("type".into(), json!(Problem::type_uri(self.code)));
        body.insert("title".into(), json!(self.title));
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), json!(self.detail));
        for (k, v) in &self.extra {
            body.insert(k.clone(), v.clone());
        }
        let mut resp = HttpResponse::build(self.status);
        resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if let Some(secs) = self.retry_after {
            resp.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        for (name, value) in self.headers.iter() {
            resp.insert_header((name.clone(), value.clone()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        resp.body(Value::Object(body).to_string())
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Problem {
        let code = e.code();
        let detail = e.to_string();
        match e {
            ServiceError::InvalidRequest { field, .. } => {
                let p = Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    code,
                    "Invalid request",
                    detail,
                );
                match field {
                    Some(f) => p.with("field", json!(f)),
                    None => p,
                }
            }
            ServiceError::InvalidProgram {
                location,
                execution,
                ..
            } => {
                let mut p = Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    code,
                    "Invalid program",
                    detail,
                );
                if let Some(l) = location.line {
                    p = p.with("line", json!(l));
                }
                if let Some(c) = location.column {
                    p = p.with("column", json!(c));
                }
                if let Some(path) = location.path {
                    p = p.with("path", json!(path));
                }
                if let Some(file) = location.file {
                    p = p.with("file", json!(file));
                }
                if let Some(i) = execution {
                    p = p.with("execution", json!(i));
                }
                p
            }
            ServiceError::LimitExceeded { limit, .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                code,
                "Limit exceeded",
                detail,
            )
            .with("limit", json!(limit)),
            ServiceError::TooLarge {
                limit,
                needed,
                allowed,
                ..
            } => {
                // u128 does not fit JSON numbers exactly; strings keep them.
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, code, "Too large", detail)
                    .with("limit", json!(limit))
                    .with("needed", json!(needed.to_string()))
                    .with("allowed", json!(allowed.to_string()))
            }
            ServiceError::TooManyJobs {
                retry_after_secs, ..
            } => {
                let mut p =
                    Problem::new(StatusCode::TOO_MANY_REQUESTS, code, "Too many jobs", detail);
                p.retry_after = Some(retry_after_secs);
                p
            }
            ServiceError::NotFound(_) => {
                Problem::new(StatusCode::NOT_FOUND, code, "Not found", detail)
            }
            ServiceError::AlreadyFinished { status, .. } => {
                Problem::new(StatusCode::CONFLICT, code, "Job already finished", detail)
                    .with("job_status", json!(status))
            }
            ServiceError::IdempotencyConflict(_) => {
                Problem::new(StatusCode::CONFLICT, code, "Idempotency key reused", detail)
            }
            ServiceError::Unauthorized(_) => {
                Problem::new(StatusCode::UNAUTHORIZED, code, "Unauthorized", detail)
            }
            ServiceError::ShuttingDown => {
                let mut p = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "Shutting down",
                    detail,
                );
                p.retry_after = Some(5);
                p
            }
            ServiceError::Store(message) | ServiceError::Unstorable(message) => {
                tracing::error!("store failure: {message}");
                let mut p = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "Store unavailable",
                    "the job store failed; the request was not carried out",
                );
                p.retry_after = Some(5);
                p
            }
        }
    }
}
