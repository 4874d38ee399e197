//! The HTTP routes under `/v1`, plus the web page, health, readiness and
//! metrics, and the bearer-token extractor. Handlers only translate: every
//! decision is the service's.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, guard, web};
use kettle_service::{JobRequest, JobResult, JobStatus, JobView, KeyFormat, ResultText, Service};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::body::{check_content_encoding, check_json_media_type, parse_json};
use crate::problem::Problem;
use crate::stream::{ResponseBudget, TimedBody};

/// How long a response waits for its share of `response_memory` before it
/// is answered `503`.
const RESPONSE_MEMORY_WAIT: Duration = Duration::from_secs(5);

/// Every route the API serves, as (method, path template): the contract
/// test compares this list with `openapi.yaml`.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("delete", "/v1/jobs/{id}"),
    ("get", "/v1/jobs/{id}/circuit.svg"),
    ("post", "/v1/jobs/{id}/cancel"),
    ("get", "/v1/backend"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

/// What the handlers share.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) service: Service,
    pub(crate) max_wait: Duration,
    pub(crate) max_json_depth: usize,
    /// How long a request body may take to arrive.
    pub(crate) body_timeout: Duration,
    /// How long a response body may take to be sent.
    pub(crate) write_timeout: Duration,
    /// Bytes of results responses may hold at once.
    pub(crate) responses: ResponseBudget,
    pub(crate) prometheus: PrometheusHandle,
    /// Listening on a loopback address: in local mode, requests must then
    /// be addressed to `localhost` or an IP address ([`host_is_local`]).
    pub(crate) loopback: bool,
}

type State = web::Data<AppState>;

/// Whether a `Host` header is one that no other site can make a browser
/// send here: an IP literal (with or without a port), `localhost`, or a
/// `*.localhost` name (RFC 6761 keeps those on the machine).
///
/// Why: a server in local mode has no keys, and a web page can point a
/// name it controls at 127.0.0.1 (DNS rebinding). The victim's browser
/// then treats the local server as that page's own origin: the page
/// could submit jobs and read every result. Such requests carry the
/// attacker's name in `Host`, so they are refused (as Jupyter does).
pub(crate) fn host_is_local(host: &str) -> bool {
    if let Some(rest) = host.strip_prefix('[') {
        return rest
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
}

/// Whether a request that changes state may come from the page that sent
/// it: a browser names that page's origin in `Origin`. Accepted: no
/// `Origin` (not a browser, or a same-origin GET), or this server's own
/// origin, `http://` + the `Host` the request was sent to (the web page at
/// `/` posts with it).
///
/// Why: a server in local mode has no key, and a page on any site can make
/// its visitor's browser send it a `POST` (a `fetch()` with a Blob body, no
/// Content-Type, needs no preflight) or a `DELETE` that the page cannot
/// read but the server would still carry out. Browsers always send
/// `Origin` on such cross-site requests, and `null` from sandboxed or
/// opaque contexts, which is refused too.
pub(crate) fn origin_is_own(origin: Option<&[u8]>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some(host) = host else {
        return false;
    };
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    let origin = origin.trim();
    origin
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
        && origin
            .get(7..)
            .is_some_and(|o| o.eq_ignore_ascii_case(host.trim()))
}

/// The tenant a request acts as, from its bearer key (or local mode).
#[derive(Debug)]
pub(crate) struct Tenant(String);

impl FromRequest for Tenant {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Tenant, Problem>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<State>().cloned();
        let host = req
            .headers()
            .get(header::HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()));
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned));
        let changes_state = !matches!(
            *req.method(),
            actix_web::http::Method::GET | actix_web::http::Method::HEAD
        );
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .map(|v| v.as_bytes().to_vec());
        Box::pin(async move {
            let state = state.ok_or_else(|| Problem::bad_request("no service"))?;
            if changes_state
                && state.service.local_mode()
                && !origin_is_own(origin.as_deref(), host.as_deref())
            {
                let origin = String::from_utf8_lossy(origin.as_deref().unwrap_or_default());
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "origin-not-allowed",
                    "Origin not allowed",
                    format!(
                        "this server has no API keys, so it carries out requests that change jobs only from its own web page or from programs, not from a page at `{origin}`; create a key with `kettle keys create TENANT` to allow other clients"
                    ),
                ));
            }
            if state.loopback
                && state.service.local_mode()
                && let Some(host) = host.filter(|h| !host_is_local(h))
            {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "host-not-allowed",
                    "Host not allowed",
                    format!(
                        "this server has no API keys, so it answers only requests addressed to localhost or an IP address, not `{host}` (a web page can point its own name at this machine); use http://127.0.0.1, or create a key with `kettle keys create TENANT`"
                    ),
                ));
            }
            let bearer = match header {
                None => None,
                Some(Ok(value)) => {
                    let (scheme, token) = value.split_once(' ').unwrap_or((value.as_str(), ""));
                    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                        if state.service.local_mode() {
                            None
                        } else {
                            return Err(kettle_service::ServiceError::Unauthorized(
                                "the Authorization header must read `Bearer <key>`".into(),
                            )
                            .into());
                        }
                    } else {
                        Some(token.trim().to_owned())
                    }
                }
                Some(Err(_)) => {
                    return Err(kettle_service::ServiceError::Unauthorized(
                        "the Authorization header is not readable text".into(),
                    )
                    .into());
                }
            };
            Ok(Tenant(state.service.authenticate(bearer.as_deref()).await?))
        })
    }
}

/// `?wait=` and `?keys=` of job reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadQuery {
    wait: Option<f64>,
    keys: Option<Keys>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Keys {
    Bitstring,
    Hex,
}

impl ReadQuery {
    fn keys(&self) -> KeyFormat {
        match self.keys {
            Some(Keys::Hex) => KeyFormat::Hex,
            _ => KeyFormat::Bitstring,
        }
    }

    fn wait(&self, cap: Duration) -> Result<Duration, Problem> {
        match self.wait {
            None => Ok(Duration::ZERO),
            Some(w) if w.is_finite() && w >= 0.0 => {
                Ok(Duration::from_secs_f64(w.min(cap.as_secs_f64())))
            }
            Some(w) => Err(Problem::bad_request(format!(
                "wait must be a number of seconds from 0 to {}; got {w}",
                cap.as_secs()
            ))),
        }
    }
}

/// `?status=&limit=&cursor=` of the job list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `?fold=` of a job's drawing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DrawQuery {
    fold: Option<usize>,
}

/// Most layers per row that `?fold=` may ask for.
const MAX_FOLD: usize = 100;

/// A drawing opened on its own: nothing in it may run or load, only its
/// own style applies.
const SVG_CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

/// A job with its link, as the API shows it.
#[derive(serde::Serialize)]
struct JobJson<'a> {
    #[serde(flatten)]
    job: &'a JobView,
    links: Links,
}

#[derive(serde::Serialize)]
struct Links {
    #[serde(rename = "self")]
    this: String,
}

fn with_links(view: &JobView) -> JobJson<'_> {
    JobJson {
        job: view,
        links: Links {
            this: format!("/v1/jobs/{}", view.id),
        },
    }
}

/// A job as JSON, with its link.
fn job_json(view: &JobView) -> Value {
    serde_json::to_value(with_links(view)).unwrap_or(Value::Null)
}

/// A job as a response body, serialised once.
fn job_response(status: StatusCode, view: &JobView) -> HttpResponse {
    match serde_json::to_vec(&with_links(view)) {
        Ok(body) => HttpResponse::build(status)
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ))
            .body(body),
        Err(e) => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "Internal error",
            format!("the job could not be written as JSON: {e}"),
        )
        .error_response(),
    }
}

/// A job as a response body; a completed job's result is read from the
/// store as its JSON text once the response has its share of the response
/// memory, and is sent from that text in chunks under the write timeout.
async fn job_reply(
    state: &AppState,
    tenant: &str,
    status: StatusCode,
    mut view: JobView,
    keys: KeyFormat,
) -> Result<HttpResponse, Problem> {
    if view.status != JobStatus::Completed {
        return Ok(job_response(status, &view));
    }
    // A result the view carries (a job that ended while its request
    // waited here) is written from memory; any other is read from the
    // store. On a shared store that read is a round trip per job.
    let carried = view.result.take();
    let bound = match view.result_bytes {
        // Jobs stored before the bound was recorded.
        0 => state.service.config().max_result_bytes,
        n => n,
    };
    // Re-keying holds the stored text, the parsed result (a map entry costs
    // about twice its text) and the new text, never more than two at once.
    let bound = match keys {
        KeyFormat::Hex => bound.saturating_mul(3),
        KeyFormat::Bitstring => bound,
    };
    let Some(share) = state.responses.take(bound, RESPONSE_MEMORY_WAIT).await else {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server-busy",
            "Server busy",
            format!(
                "other responses hold the memory for results (response_memory); this job's result may need {bound} bytes; retry later"
            ),
        )
        .retry_after(2));
    };
    let text = match carried {
        Some(result) => result_text(result, bound).await?,
        None => match state.service.result_json(tenant, &view.id, keys).await? {
            Some(text) => text,
            None => return Ok(job_response(status, &view)),
        },
    };
    let mut head = serde_json::to_vec(&with_links(&view)).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "Internal error",
            format!("the job could not be written as JSON: {e}"),
        )
    })?;
    // `{…}` becomes `{…,"result":TEXT}`.
    head.pop();
    head.extend_from_slice(b",\"result\":");
    let body = TimedBody::new(
        vec![
            Bytes::from(head),
            Bytes::from_owner(text),
            Bytes::from_static(b"}"),
        ],
        Some(share),
        state.write_timeout,
    );
    Ok(HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(body))
}

/// A result held in memory as JSON text; one that may be large (`bound`
/// bytes) is written off the async threads.
async fn result_text(result: JobResult, bound: u64) -> Result<ResultText, Problem> {
    const INLINE_BYTES: u64 = 64 * 1024;
    let failed = |e: String| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "Internal error",
            format!("the result could not be written as JSON: {e}"),
        )
    };
    let write = move || serde_json::to_string(&result).map_err(|e| e.to_string());
    let text = if bound <= INLINE_BYTES {
        write()
    } else {
        actix_web::rt::task::spawn_blocking(write)
            .await
            .map_err(|e| failed(e.to_string()))?
    };
    text.map(ResultText::from).map_err(failed)
}

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(body.to_string())
}

async fn submit(
    state: State,
    tenant: Tenant,
    req: HttpRequest,
    query: web::Query<ReadQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let wait = query.wait(state.max_wait)?;
    check_json_media_type(
        req.headers()
            .get(header::CONTENT_TYPE)
            .map(HeaderValue::as_bytes),
    )?;
    check_content_encoding(
        req.headers()
            .get(header::CONTENT_ENCODING)
            .map(HeaderValue::as_bytes),
    )?;
    let limit = state
        .service
        .config()
        .limits_for(&tenant.0)
        .max_request_bytes;
    let read = actix_web::rt::time::timeout(state.body_timeout, payload.to_bytes_limited(limit));
    let Ok(read) = read.await else {
        return Err(Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "Request timeout",
            format!(
                "the request body did not arrive within {} s",
                state.body_timeout.as_secs()
            ),
        ));
    };
    let body = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            return Err(Problem::bad_request(format!(
                "the body could not be read: {e}"
            )));
        }
        Err(_) => {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request-too-large",
                "Request too large",
                format!("the request body is larger than this tenant's limit of {limit} bytes"),
            )
            .with("limit", json!("max_request_bytes")));
        }
    };
    let request: JobRequest = parse_json(&body, state.max_json_depth)?;
    let key = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    Problem::bad_request("the Idempotency-Key header is not readable text")
                })?
                .to_owned(),
        ),
    };
    // A client that hangs up abandons its submission: the future is
    // dropped, which stops its program's parse (it may take seconds).
    let submission =
        state
            .service
            .submit_and_wait(&tenant.0, request, key.as_deref(), wait, query.keys());
    let submitted = tokio::select! {
        submitted = submission => submitted?,
        () = crate::disconnect::client_gone(&req) => {
            return Err(Problem::bad_request("the client closed the connection"));
        }
    };
    let view = submitted.job;
    let status = if submitted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/v1/jobs/{}", view.id);
    let mut resp = job_reply(&state, &tenant.0, status, view, query.keys()).await?;
    if let Ok(location) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    Ok(resp)
}

async fn get_job(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
    query: web::Query<ReadQuery>,
) -> Result<HttpResponse, Problem> {
    let wait = query.wait(state.max_wait)?;
    let view = state.service.wait_summary(&tenant.0, &id, wait).await?;
    job_reply(&state, &tenant.0, StatusCode::OK, view, query.keys()).await
}

/// `GET /v1/jobs/{id}/circuit.svg`: the job's circuit as a picture,
/// drawn from the IR it runs (its first execution's, for a sweep), folded
/// every `?fold=` layers. The drawing is bounded (`kettle_draw`): a large
/// circuit is drawn up to a number of operations, with a note of the rest.
async fn circuit_svg(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
    query: web::Query<DrawQuery>,
) -> Result<HttpResponse, Problem> {
    let fold = match query.fold {
        None => kettle_draw::DEFAULT_FOLD,
        Some(f) if (1..=MAX_FOLD).contains(&f) => f,
        Some(f) => {
            return Err(Problem::bad_request(format!(
                "fold must be a number of layers from 1 to {MAX_FOLD}; got {f}"
            )));
        }
    };
    let circuit = state.service.circuit(&tenant.0, &id).await?;
    let options = kettle_draw::Options {
        fold,
        ..kettle_draw::Options::default()
    };
    // Off the async threads: the drawing is bounded, but a circuit of a
    // million operations takes a while to drop.
    let svg = web::block(move || kettle_draw::draw(&circuit, &options).svg)
        .await
        .map_err(|e| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "Internal error",
                format!("the drawing failed: {e}"),
            )
        })?;
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, SVG_CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // A job's program never changes.
        .insert_header((header::CACHE_CONTROL, "private, max-age=86400"))
        .body(svg))
}

async fn list_jobs(
    state: State,
    tenant: Tenant,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, Problem> {
    let status = match query.status.as_deref() {
        None => None,
        // Also `?status=`: an empty filter is not one of the statuses.
        Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
            Problem::bad_request(format!(
                "status must be one of queued, running, completed, failed, cancelled; got `{s}`"
            ))
        })?),
    };
    let page = state
        .service
        .list(
            &tenant.0,
            status,
            query.limit.unwrap_or(50),
            query.cursor.as_deref(),
        )
        .await?;
    let jobs: Vec<Value> = page.jobs.iter().map(job_json).collect();
    let mut body = json!({ "jobs": jobs });
    if let Some(c) = page.next_cursor {
        body["next_cursor"] = json!(c);
    }
    // Summaries, but 500 of them with long tags are a few MB: sent under
    // the write timeout too.
    let body = TimedBody::new(
        vec![Bytes::from(body.to_string())],
        None,
        state.write_timeout,
    );
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(body))
}

async fn cancel_job(
    state: State,
    tenant: Tenant,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let view = state.service.cancel(&tenant.0, &id).await?;
    // A running job stops at its next gate: accepted, not yet done.
    let status = if view.status == JobStatus::Cancelled {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok(job_response(status, &view))
}

async fn backend(state: State, tenant: Tenant) -> HttpResponse {
    let info = state.service.backend(&tenant.0);
    json_response(
        StatusCode::OK,
        &serde_json::to_value(info).unwrap_or(Value::Null),
    )
}

async fn healthz() -> HttpResponse {
    json_response(StatusCode::OK, &json!({ "status": "ok" }))
}

async fn readyz(state: State) -> Result<HttpResponse, Problem> {
    if state.service.ready().await {
        Ok(json_response(StatusCode::OK, &json!({ "status": "ready" })))
    } else {
        Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            "the server is shutting down or its store cannot write",
        ))
    }
}

async fn metrics_text(state: State) -> HttpResponse {
    state.service.refresh_metrics().await;
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(state.prometheus.render())
}

/// `405` with the `Allow` header RFC 9110 requires: the methods `allow`
/// lists (such as `"GET, POST"`).
fn method_not_allowed(req: &HttpRequest, allow: &'static str) -> HttpResponse {
    let mut resp = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!(
            "{} is not allowed on {}; allowed: {allow}",
            req.method(),
            req.path()
        ),
    )
    .error_response();
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// A resource's fallback for methods it does not serve.
fn only(allow: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest| async move { method_not_allowed(&req, allow) })
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no-such-route",
        "Not found",
        format!("there is no route {}", req.path()),
    )
    .error_response()
}

/// Query strings that do not parse are `400` problems.
fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    Problem::bad_request(format!("bad query parameters: {err}")).into()
}

/// Path segments that do not parse are `400` problems.
fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    Problem::bad_request(format!("bad path: {err}")).into()
}

/// A route for GET and HEAD: RFC 9110 asks every server to answer HEAD
/// wherever it answers GET (load balancers and monitors probe with it).
/// actix-http sends a HEAD response's headers, `Content-Length` included,
/// without the body.
fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// Registers every route and the error handlers on an app.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .service(
            web::scope("/v1")
                .service(
                    web::resource("/jobs")
                        .route(web::post().to(submit))
                        .route(get_or_head().to(list_jobs))
                        .default_service(only("GET, HEAD, POST")),
                )
                .service(
                    web::resource("/jobs/{id}")
                        .route(get_or_head().to(get_job))
                        .route(web::delete().to(cancel_job))
                        .default_service(only("GET, HEAD, DELETE")),
                )
                .service(
                    web::resource("/jobs/{id}/circuit.svg")
                        .route(get_or_head().to(circuit_svg))
                        .default_service(only("GET, HEAD")),
                )
                .service(
                    web::resource("/jobs/{id}/cancel")
                        .route(web::post().to(cancel_job))
                        .default_service(only("POST")),
                )
                .service(
                    web::resource("/backend")
                        .route(get_or_head().to(backend))
                        .default_service(only("GET, HEAD")),
                ),
        )
        .service(
            web::resource("/")
                .route(get_or_head().to(crate::page::index))
                .default_service(only("GET, HEAD")),
        )
        .service(
            web::resource("/healthz")
                .route(get_or_head().to(healthz))
                .default_service(only("GET, HEAD")),
        )
        .service(
            web::resource("/readyz")
                .route(get_or_head().to(readyz))
                .default_service(only("GET, HEAD")),
        )
        .service(
            web::resource("/metrics")
                .route(get_or_head().to(metrics_text))
                .default_service(only("GET, HEAD")),
        )
        .default_service(web::to(not_found));
}

/// Counts requests and their latency by method and status.
pub(crate) fn http_metrics<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>> + use<S, B>
where
    S: actix_web::dev::Service<
            actix_web::dev::ServiceRequest,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
{
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let fut = srv.call(req);
    async move {
        let res = fut.await?;
        let status = res.status().as_u16().to_string();
        metrics::counter!("kettle_http_requests_total", "method" => method, "status" => status)
            .increment(1);
        metrics::histogram!("kettle_http_request_seconds").record(started.elapsed().as_secs_f64());
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::{host_is_local, origin_is_own};

    #[test]
    fn only_the_servers_own_origin_may_change_state() {
        let host = Some("127.0.0.1:8080");
        assert!(origin_is_own(None, host), "no Origin: not a browser");
        assert!(origin_is_own(None, None));
        assert!(origin_is_own(Some(b"http://127.0.0.1:8080"), host));
        assert!(origin_is_own(
            Some(b"HTTP://LOCALHOST:8080"),
            Some("localhost:8080")
        ));
        for other in [
            &b"http://evil.example"[..],
            b"null",
            b"https://127.0.0.1:8080",
            b"http://127.0.0.1:8081",
            b"http://127.0.0.1:8080.evil.example",
            b"http://127.0.0.1",
            b"",
            b"\xff",
        ] {
            assert!(!origin_is_own(Some(other), host), "{other:?}");
        }
        assert!(!origin_is_own(Some(b"http://127.0.0.1:8080"), None));
    }

    #[test]
    fn only_ip_literals_and_localhost_names_are_local_hosts() {
        for local in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "10.1.2.3:80",
            "[::1]:8080",
            "[::1]",
            "localhost",
            "LocalHost:8080",
            "localhost.",
            "kettle.localhost:9000",
        ] {
            assert!(host_is_local(local), "{local}");
        }
        for remote in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.nip.io",
            "localhost.evil.example",
            "[::1",
            "[evil]:80",
            "",
            "localhost:80:80",
        ] {
            assert!(!host_is_local(remote), "{remote}");
        }
    }
}
