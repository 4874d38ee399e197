//! Kettle's job service: jobs, a durable queue, a fair memory-aware
//! scheduler, tenants and API keys, and limits. It knows nothing of HTTP;
//! `kettle-server` puts it on the network.
//!
//! # Brief overview
//!
//! A client's [`JobRequest`] (program, shots, seed, result types, inputs,
//! precision, name, tags, priority) goes to [`Service::submit`], which
//! validates it and parses the program for every execution of its sweep
//! (errors carry line:column or a JSON path), refuses what breaks a
//! [`TenantLimits`] limit or can never fit the memory budget (with the
//! numbers), chooses and records the seed when none was given, and commits
//! the job to the [`JobStore`] before returning. A restart re-runs a job with
//! the same seed, so with the same result. [`Service::submit_and_wait`] (the
//! `?wait` of the HTTP API) without an idempotency key runs the job first and
//! stores it once, ended, unless the wait expires first; either way it is on
//! disk before the answer.
//!
//! - [`store`]: the [`JobStore`] boundary and [`SqliteStore`] (WAL,
//!   `synchronous = FULL`). Claims count attempts; completion is a
//!   conditional update on `(status = running, attempt)` carrying the result,
//!   so a job completes at most once. At start, jobs a crash left running
//!   return to the queue. The data folder is private, locked by one service
//!   ([`DataDirLock`]), and marked with the store's id, so that a deleted or
//!   replaced database is refused rather than started afresh. The single
//!   writer retries a failed write of an accepted job until the store takes
//!   it.
//!   [`PgStore`] is the same store on PostgreSQL, shared by any number of
//!   nodes; [`store::open`] chooses one from a [`StoreLocation`].
//! - The scheduler (private): round-robin over tenants, then priority, then
//!   FIFO; a job starts only when its state fits the memory left.
//! - On a shared store (the cluster module, private) the database is the
//!   queue: a node claims a job only when it can start it at once (a free
//!   worker, memory left), under a lease its heartbeat renews; a node that
//!   dies has its jobs claimed again once their leases end, and its late
//!   writes are refused (each claim's attempt and owner fence them).
//!   Tenant limits are counted in the database, and `?wait`, reads and
//!   cancellations reach a job on any node through the store and its
//!   notifications.
//! - Workers: `workers` dedicated OS threads run simulations (never the
//!   async executor's threads) under a [`kettle_core::Monitor`] that stops a
//!   run at the next gate on cancellation, shutdown or the run-time limit;
//!   one more, the fair-share worker, runs a job of a tenant with none
//!   running while all of them are busy.
//! - Across ranks: a job larger than the node's budget (and one a split
//!   state can run) is admitted up to what the ranks of [`RankLaunch`] hold;
//!   a worker runs it through the operator's launch command (the launch
//!   module, private: `mpirun … kettle job-run`, its own process group,
//!   ended by a stop), and every rank calls [`run_job_across`] with the same
//!   [`RankJob`]; rank 0 prints the result.
//! - Admission: programs are parsed off the async threads, on at most one
//!   permit per core (one tenant holds all but one), under the parser's
//!   work budget and `max_admission_time`; a submission dropped by its
//!   client stops its parse.
//! - [`keys`]: API keys stored as SHA-256 hashes, checked in constant time
//!   on every request; [`keys::decide_auth`] chooses the mode once: local
//!   mode (tenant [`LOCAL_TENANT`]) only by the operator's choice
//!   ([`AuthMode`]) or for a store that has never held a key.
//! - Idempotency keys: same key and same request → the same job; same key
//!   and another request → [`ServiceError::IdempotencyConflict`].
//! - Metrics through the `metrics` facade: `kettle_queue_depth`,
//!   `kettle_running_jobs`, `kettle_jobs{status}`,
//!   `kettle_jobs_submitted_total`, `kettle_jobs_finished_total{status}`,
//!   `kettle_simulation_seconds`, `kettle_memory_in_use_bytes` (this node's),
//!   and on a shared store `kettle_cluster_jobs{tenant,status}`, the whole
//!   cluster's queue (`kettle_jobs{status}` counts the store, so every
//!   node's too).

mod across;
mod admission;
mod cluster;
mod config;
mod decode;
mod error;
mod execute;
pub mod keys;
mod launch;
mod model;
mod prepare;
mod result_bound;
mod scheduler;
mod service;
pub mod store;
mod time;
mod worker;
mod writer;

pub use across::{PROGRESS_PREFIX, RankJob, run_job_across, run_job_across_reporting};
pub use config::{
    AuthMode, DEFAULT_MAX_RESULT_BYTES, MAX_RESULT_BYTES_CEILING, RankLaunch, ServiceConfig,
    TenantLimits,
};
pub use decode::{DecodeError, decode_json};
pub use error::{ProgramLocation, ServiceError};
pub use model::{
    ExecutionResult, Expectation, Gradient, GradientRequest, InputValue, JobError, JobProgress,
    JobRequest, JobResult, JobSpec, JobStatus, JobView, KeyFormat, Precision, Program,
    ProgramFormat, ResultType, bitstring_to_hex,
};
pub use prepare::{DEFAULT_SHOTS, check_request};
pub use service::{
    AcrossRanks, BackendInfo, JobPage, LOCAL_TENANT, MAX_LIST_LIMIT, QubitsPerPrecision, Service,
    Submitted,
};
pub use store::{
    DataDirLock, JobStore, PgStore, ResultText, SqliteStore, StoreLocation, WriteOp, Written,
};
pub use time::{now_ms, rfc3339};

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod store_fault_tests;
#[cfg(test)]
mod tests;
