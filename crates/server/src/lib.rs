//! Kettle's HTTP job API (`kettle serve`): actix-web routes over
//! [`kettle_service::Service`].
//!
//! # Brief overview
//!
//! [`run`] is the whole server for the CLI: it loads nothing itself (the CLI
//! builds a [`ServerConfig`] with [`ServerConfig::load`] and its flags),
//! opens the store, refuses to serve without API keys on a non-loopback
//! address unless told to, binds, says on stderr where it listens and
//! whether it runs in local (no-key) mode, and serves until SIGTERM or
//! Ctrl-C; then it stops accepting, lets running jobs finish for the grace
//! period, re-queues the rest and returns. [`spawn`] does the same on a
//! background thread (tests, embedding). `admin` holds what `kettle keys`
//! and `kettle store` do without a server: [`keys_create`], [`keys_list`]
//! and [`keys_revoke`] manage API keys, [`store_backup`] copies a live
//! SQLite store (neither takes the folder's lock, so they work beside a
//! running server), and [`store_copy`] moves a whole installation into
//! another store (an SQLite folder to PostgreSQL, say) and checks it.
//!
//! - `routes`: `/v1/jobs` (submit with `?wait=`, list), `/v1/jobs/{id}`
//!   (read with `?wait=`/`?keys=hex`, `DELETE` to cancel),
//!   `/v1/jobs/{id}/cancel`, `/v1/jobs/{id}/circuit.svg` (the job's
//!   circuit drawn by `kettle-draw`), `/v1/backend`, `/healthz`, `/readyz`,
//!   `/metrics`; the list is [`ROUTES`], the contract is `openapi.yaml`.
//! - `page`: the web page at `/` (embedded; it uses only the public API;
//!   it shows a job's histogram beside the drawing of its circuit).
//! - `problem`: every error is RFC 7807 `application/problem+json` with a
//!   stable `type` `urn:kettle:problem:<code>`.
//! - `body`: JSON bodies are size- and depth-limited before serde sees them.
//! - Simulations run on the service's worker threads, never on actix's.
//! - Slow or idle clients are cut off: headers must arrive within
//!   `header_timeout_seconds` and bodies within `body_timeout_seconds`
//!   (`408`), and at most `max_connections` are open at once (the rest wait
//!   in the kernel's backlog). `tests/reliability/` measures all of this.
//! - `stream`: responses that carry a job's result hold its stored JSON
//!   text, counted against `response_memory` (a response that cannot get
//!   its share soon is `503`), and are sent in chunks; one not read within
//!   `write_timeout_seconds` lets go of its memory and its connection.

mod admin;
mod body;
mod config;
mod disconnect;
mod page;
mod problem;
mod routes;
mod stream;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use kettle_service::Service;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use thiserror::Error;

pub use admin::{
    AsStoreLocation, Copied, CopyReport, keys_create, keys_list, keys_revoke, store_backup,
    store_copy,
};
pub use config::{RanksConfig, ServerConfig};
pub use kettle_service::store::StoreLocation;
pub use kettle_service::{AuthMode, ServiceError};
pub use problem::{PROBLEM_JSON, Problem};
pub use routes::ROUTES;

/// Why the server could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// Local mode on a non-loopback address without `insecure_no_auth`.
    #[error("{0}")]
    Insecure(String),
    /// `kettle keys` or `kettle store` was given a store it cannot work
    /// on (a backup of PostgreSQL, a copy onto itself, a source folder
    /// that holds no store or that a server is using).
    #[error("{0}")]
    Store(String),
    /// The service failed (store, threads).
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Any other I/O failure (runtime, threads).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Where a started server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// The bound address (the real port when the configuration said 0).
    pub addr: SocketAddr,
    /// Whether it runs without API keys.
    pub local_mode: bool,
    /// Why it runs in that mode.
    pub auth: String,
}

/// The process-wide Prometheus recorder (a process has one metrics
/// recorder; servers started in one test process share it).
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding
            // program's); then this one renders nothing, which is harmless.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Opens the service, checks the address policy, binds: everything before
/// serving.
async fn start(
    config: &ServerConfig,
) -> Result<(Started, actix_web::dev::Server, Service), ServerError> {
    let service = Service::start(config.service_config()).await?;
    let local_mode = service.local_mode();
    if local_mode && !config.addr.ip().is_loopback() && !config.insecure_no_auth {
        service.shutdown(Duration::ZERO).await;
        return Err(ServerError::Insecure(format!(
            "local mode (no API keys) on {}: anyone who can reach it could run jobs; create a \
             key with `kettle keys create TENANT`, listen on 127.0.0.1, or pass \
             --insecure-no-auth",
            config.addr
        )));
    }
    let auth = service.auth_reason().to_owned();
    let state = web::Data::new(routes::AppState {
        service: service.clone(),
        max_wait: Duration::from_secs(config.max_wait_seconds),
        max_json_depth: config.max_json_depth,
        body_timeout: Duration::from_secs(config.body_timeout_seconds.max(1)),
        write_timeout: Duration::from_secs(config.write_timeout_seconds.max(1)),
        responses: stream::ResponseBudget::new(config.response_memory.as_u64()),
        prometheus: prometheus(),
        loopback: config.addr.ip().is_loopback(),
    });
    // actix counts connections per HTTP worker thread.
    let http_workers = std::thread::available_parallelism().map_or(1, usize::from);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap_fn(routes::http_metrics)
            .configure(routes::configure)
    })
    .on_connect(disconnect::on_connect)
    .disable_signals()
    .workers(http_workers)
    .max_connections(
        disconnect::connections_within_file_limit(config.max_connections)
            .div_ceil(http_workers)
            .max(1),
    )
    .client_request_timeout(Duration::from_secs(config.header_timeout_seconds.max(1)))
    .shutdown_timeout(config.shutdown_grace_seconds.max(1))
    .bind(config.addr)
    .map_err(|source| ServerError::Bind {
        addr: config.addr,
        source,
    })?;
    let addr = server.addrs().first().copied().unwrap_or(config.addr);
    Ok((
        Started {
            addr,
            local_mode,
            auth,
        },
        server.run(),
        service,
    ))
}

/// Serves until `stop` resolves, then shuts down in order.
async fn serve(
    config: ServerConfig,
    stop: impl std::future::Future<Output = ()>,
    on_start: impl FnOnce(&Started, &ServerConfig),
) -> Result<(), ServerError> {
    let (started, server, service) = start(&config).await?;
    on_start(&started, &config);
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    stop.await;
    tracing::info!(
        "stopping: no new requests; running jobs get {} s",
        config.shutdown_grace_seconds
    );
    // No new jobs, and waiting requests answer now (503): a graceful HTTP
    // stop would otherwise hold them until the grace ends and then cut them
    // off unanswered. Then the HTTP side stops, then the workers.
    service.begin_shutdown();
    let http = handle.stop(true);
    service
        .shutdown(Duration::from_secs(config.shutdown_grace_seconds))
        .await;
    http.await;
    let _ = running.await;
    Ok(())
}

fn announce(started: &Started, config: &ServerConfig) {
    let _ = std::io::stderr().write_all(startup_lines(started, config).as_bytes());
    tracing::info!(addr = %started.addr, local_mode = started.local_mode, "serving");
}

/// What `kettle serve` says on stderr once it listens.
fn startup_lines(started: &Started, config: &ServerConfig) -> String {
    let service = config.service_config();
    let mode = &started.auth;
    let line = format!(
        "kettle serve: listening on http://{} (store {}, {} workers, memory budget {}). {mode}\n",
        started.addr,
        // Display hides a PostgreSQL URL's password.
        service.store,
        service.workers,
        config.memory_budget.display().iec(),
    );
    let page = format!(
        "kettle serve: web page at http://{}/ (the API is under /v1, described by openapi.yaml)\n",
        started.addr
    );
    line + &page
}

/// Resolves at SIGTERM or Ctrl-C.
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_tracing() {
    // PostgreSQL's notices ("relation … already exists, skipping" at every
    // start's migration check) are not news to an operator.
    let filter = tracing_subscriber::EnvFilter::try_from_env("KETTLE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Runs the server until SIGTERM or Ctrl-C (blocking): the `kettle serve`
/// command.
///
/// # Errors
/// A bad configuration, local mode on a public address, a store that cannot
/// be opened, or an address that cannot be bound.
pub fn run(config: ServerConfig) -> Result<(), ServerError> {
    init_tracing();
    actix_web::rt::System::new().block_on(serve(config, termination(), announce))
}

/// A server running on a background thread.
#[derive(Debug)]
pub struct ServerThread {
    started: Started,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl ServerThread {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.started.addr
    }

    /// Whether it runs without API keys.
    pub fn local_mode(&self) -> bool {
        self.started.local_mode
    }

    /// Shuts down as at SIGTERM and waits for it.
    ///
    /// # Errors
    /// What the server stopped with.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(ServerError::Config("the server thread panicked".into()))),
            None => Ok(()),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// Starts a server on a background thread and returns once it listens
/// (configure port 0 for a free port).
///
/// # Errors
/// As [`run`].
pub fn spawn(config: ServerConfig) -> Result<ServerThread, ServerError> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Started>();
    let thread = std::thread::Builder::new()
        .name("kettle-server".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(serve(
                config,
                async move {
                    let _ = stop_rx.await;
                },
                move |started, _| {
                    let _ = ready_tx.send(started.clone());
                },
            ))
        })?;
    match ready_rx.recv() {
        Ok(started) => Ok(ServerThread {
            started,
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        // The thread ended before it listened: its error says why.
        Err(_) => Err(thread
            .join()
            .unwrap_or_else(|_| Err(ServerError::Config("the server thread panicked".into())))
            .err()
            .unwrap_or_else(|| ServerError::Config("the server stopped before listening".into()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_startup_line_names_the_store_without_its_password() {
        let started = Started {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            local_mode: false,
            auth: "API keys required.".into(),
        };
        let mut config = ServerConfig::default();
        let line = startup_lines(&started, &config);
        assert!(line.contains("(store sqlite:./kettle-data,"), "{line}");
        config.store = Some("postgres://kettle:s3cret@db:5432/kettle".parse().unwrap());
        let line = startup_lines(&started, &config);
        assert!(
            line.contains("(store postgres://kettle:***@db:5432/kettle,"),
            "{line}"
        );
        assert!(!line.contains("s3cret"), "{line}");
    }
}
