//! [`Service`]: the job API without HTTP. Submission (validate, parse,
//! admit, commit), reading, waiting, listing, cancelling, the backend's
//! description, authentication, and an orderly shutdown. It owns the store,
//! the scheduler and the worker threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use kettle_core::{Parallelism, Simulator};
use kettle_ir::{Circuit, StandardGate};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::admission::{AdmissionPermits, StopOnDrop};
use crate::config::{ServiceConfig, TenantLimits};
use crate::error::ServiceError;
use crate::keys;
use crate::model::{
    JobError, JobProgress, JobRequest, JobResult, JobSpec, JobStatus, JobView, KeyFormat,
};
use crate::prepare::{
    Admission, Interrupt, Prepared, parse_execution, prepare_within, program_error,
};
use crate::scheduler::{Entry, STOP_CANCEL, STOP_SHUTDOWN, Scheduler, WorkerKind};
use crate::store::{
    DataDirLock, Inserted, JobRow, JobState, JobStore, NewJob, ResultText, WriteOp, Written,
};
use crate::time::{now_ms, rfc3339};
use crate::worker::worker_loop;
use crate::writer::{PurgePolicy, Writer};

/// The tenant of local mode (no API keys configured).
pub const LOCAL_TENANT: &str = "local";
/// Most jobs one list call returns.
pub const MAX_LIST_LIMIT: u32 = 500;
/// Longest idempotency key.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// What a submission did.
#[derive(Clone, Debug, PartialEq)]
pub struct Submitted {
    /// The job.
    pub job: JobView,
    /// `false` when an idempotency key returned an existing job.
    pub created: bool,
}

/// One page of a tenant's jobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobPage {
    /// Newest first.
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What this server can run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// `"kettle"`.
    pub name: String,
    /// The server's version.
    pub version: String,
    /// `"statevector"`.
    pub simulator: String,
    /// Methods a job may ask for (`method`): `automatic`, `statevector`
    /// (noise by trajectories), `density_matrix`.
    pub methods: Vec<String>,
    /// Noise channels programs may use (OpenQASM 3 `#pragma braket noise`,
    /// the JSON format's `channel`), and that noise models become.
    pub channels: Vec<String>,
    /// Noise model formats accepted in `noise_model`: `qiskit_aer`
    /// (`NoiseModel.to_dict(serializable=True)`).
    pub noise_models: Vec<String>,
    /// The SIMD level the kernels run at: `avx512`, `avx2` or `portable`
    /// (the widest this CPU has, unless `KETTLE_SIMD` lowers it).
    pub simd: String,
    /// Largest qubit count per precision that fits the memory budget (and
    /// the caller's limit).
    pub max_qubits: QubitsPerPrecision,
    /// Bytes of state all running jobs together may hold.
    pub memory_budget_bytes: u64,
    /// Jobs larger than the memory budget that run with their state split
    /// over MPI ranks; `None` where the operator configured no launch.
    pub across_ranks: Option<AcrossRanks>,
    /// Jobs that may run at once for one tenant. While these workers are
    /// all busy, one more runs a job of a tenant that has none running, so
    /// another tenant's job starts at once even when one tenant's long
    /// jobs hold all of them.
    pub workers: usize,
    /// Program formats accepted.
    pub formats: Vec<String>,
    /// Result types accepted.
    pub result_types: Vec<String>,
    /// Gate names of the standard library (OpenQASM names).
    pub gates: Vec<String>,
    /// The caller's limits.
    pub limits: TenantLimits,
    /// Largest qubit count whose state vector or probabilities are returned.
    pub max_listed_qubits: u32,
    /// Largest result a job may have, in bytes of JSON (known at
    /// submission: a job whose result could be larger is refused).
    pub max_result_bytes: u64,
    /// Seconds a job may run.
    pub max_run_time_seconds: f64,
    /// Seconds a submission's checks (its program parsed for every
    /// execution) may take before it is refused with `limit-exceeded`.
    pub max_admission_seconds: f64,
    /// Steps of classical work (statements executed, expressions
    /// evaluated, loops counted at every iteration) an OpenQASM 3 program
    /// may do while it is read; more is refused with `limit-exceeded`.
    pub max_classical_steps: u64,
    /// Whether the server runs without API keys.
    pub local_mode: bool,
    /// Bit order of counts and state indices.
    pub bit_order: String,
}

/// What a server runs across MPI ranks ([`BackendInfo::across_ranks`]):
/// a noiseless job without `adjoint_gradient` (and without a state vector
/// past `max_listed_qubits`) larger than the memory budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcrossRanks {
    /// Ranks such a job runs on.
    pub ranks: u32,
    /// Bytes of state the ranks hold together.
    pub memory_budget_bytes: u64,
    /// Largest qubit count per precision the ranks hold (and the caller's
    /// limit allows).
    pub max_qubits: QubitsPerPrecision,
}

/// Max qubits per precision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QubitsPerPrecision {
    /// At double precision.
    pub f64: u32,
    /// At single precision.
    pub f32: u32,
}

/// A job the service holds in memory, from its submission (or the start)
/// until its end is committed: reads and `?wait` are answered from here,
/// without the store. Every change is published on the job's watch
/// channel; the entry leaves the map once its end is in the store, so a
/// reader that misses it finds the store up to date.
///
/// A job submitted with `?wait` is not stored at once (`stored` is false):
/// if it ends within the wait, one insert records it ended, instead of an
/// insert, a claim and an end. Until then it was never acknowledged, so a
/// crash loses nothing anyone was promised, and nobody knows its id: reads
/// do not see it. Whoever first needs it stored (its end, a wait that
/// expires, a shutdown) inserts it as it stands, under the live lock, so
/// that every later write of the job follows that insert.
#[derive(Clone, Debug)]
pub(crate) struct LiveJob {
    pub(crate) id: String,
    pub(crate) tenant: String,
    /// Arrival order, for the scheduler's FIFO.
    pub(crate) order: i64,
    pub(crate) stored: bool,
    pub(crate) status: JobStatus,
    pub(crate) spec: Arc<JobSpec>,
    pub(crate) attempt: u32,
    pub(crate) cancel_requested: bool,
    pub(crate) created_ms: i64,
    pub(crate) started_ms: Option<i64>,
    pub(crate) ended_ms: Option<i64>,
    pub(crate) result: Option<Arc<JobResult>>,
    pub(crate) error: Option<JobError>,
    /// While it runs here: how far (published by its worker's monitor).
    pub(crate) progress: Option<JobProgress>,
    /// Its end is on its way to the store: reads go to the store until the
    /// end is published here, so that no node shows the job running after
    /// another node has read its end there.
    pub(crate) ending: bool,
}

type LiveMap = HashMap<String, watch::Sender<Arc<LiveJob>>>;

/// State shared by the service handle and the workers.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ServiceConfig,
    pub(crate) store: Arc<dyn JobStore>,
    pub(crate) writer: Writer,
    pub(crate) sched: Scheduler,
    pub(crate) sim: Simulator,
    local_mode: bool,
    /// Why the service runs in its mode (for the start-up line).
    auth_reason: String,
    /// The data folder's lock, when the service opened the folder itself;
    /// let go at shutdown.
    lock: Mutex<Option<DataDirLock>>,
    /// Set once the service begins to stop: it accepts no new job, and
    /// requests waiting for a job answer at once instead of holding the
    /// shutdown up.
    stopping: watch::Sender<bool>,
    /// Queued and running jobs. Lock order: this, then the scheduler's.
    live: Mutex<LiveMap>,
    /// Jobs held so far: the next one's arrival order.
    arrivals: AtomicI64,
    /// Admission parses that may run at once, one per core (at least 2),
    /// all but one for any one tenant. A 150-byte program can unroll to a
    /// million operations, about 150 MB while it is parsed: without this
    /// bound, a few dozen such submissions at once would take the machine's
    /// memory (8 took 1.8 GB). Parsing is CPU work, so more at once than
    /// cores would not be faster anyway.
    admissions: AdmissionPermits,
    /// The store is shared with other nodes ([`JobStore::shared`]): the
    /// store is the queue, and `live` holds only the jobs this node has
    /// claimed (see `cluster.rs`).
    shared: bool,
    /// Told when a local run ends: the node may claim another job.
    pub(crate) room: Arc<tokio::sync::Notify>,
    /// Set once the node's claims are all ended or returned: its cluster
    /// thread stops renewing them.
    cluster_stop: watch::Sender<bool>,
    /// Requests waiting for jobs this node does not hold, by job id: told
    /// when the store says the job ended (see `cluster.rs`), one waiter at
    /// a time rather than every waiter at every event.
    waiting: Mutex<HashMap<String, watch::Sender<()>>>,
    /// On a shared store: this node's last claim found nothing it could
    /// run, and no job was queued since (as the store's events tell), so
    /// a submission it has room for is stored claimed, and a local run's
    /// end does not send it to the store for more.
    pub(crate) queue_seen_empty: AtomicBool,
    /// Tenants the cluster's queue-depth gauges have named.
    cluster_tenants: Mutex<std::collections::BTreeSet<String>>,
}

/// A request's registration as a waiter for a job (see
/// [`Inner::watch_job`]); the last one out removes the job's entry.
struct JobWatch {
    inner: Arc<Inner>,
    id: String,
    rx: Option<watch::Receiver<()>>,
}

impl JobWatch {
    /// Returns once the job's waiters are told to re-read it.
    async fn changed(&mut self) {
        let told = match self.rx.as_mut() {
            Some(rx) => rx.changed().await.is_ok(),
            None => false,
        };
        if !told {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for JobWatch {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut waiting = self.inner.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if waiting
            .get(&self.id)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            waiting.remove(&self.id);
        }
    }
}

impl LiveJob {
    /// The job as a store insert, in the state `state`.
    pub(crate) fn to_insert(&self, state: JobState) -> WriteOp {
        WriteOp::Insert(Box::new(NewJob {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            spec: JobSpec::clone(&self.spec),
            created_ms: self.created_ms,
            idempotency: None,
            state,
            max_active: None,
            lease_until_ms: None,
        }))
    }

    /// Its state as it stands.
    pub(crate) fn state(&self) -> JobState {
        JobState {
            status: self.status,
            attempt: self.attempt,
            cancel_requested: self.cancel_requested,
            started_ms: self.started_ms,
            ended_ms: self.ended_ms,
            result: self.result.as_deref().cloned(),
            error: self.error.clone(),
        }
    }
}

impl Inner {
    fn live(&self) -> std::sync::MutexGuard<'_, LiveMap> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds a queued job in memory and hands it to the scheduler
    /// (`reserved`: the submission counted it with `try_reserve`); a row
    /// `running` is one this node has just claimed in a shared store.
    pub(crate) fn admit(
        &self,
        row: JobRow,
        circuits: Option<Arc<[Circuit]>>,
        reserved: bool,
    ) -> Arc<LiveJob> {
        self.hold(
            LiveJob {
                id: row.id,
                tenant: row.tenant,
                order: 0,
                stored: true,
                status: row.status,
                spec: Arc::new(row.spec),
                attempt: row.attempt,
                cancel_requested: row.cancel_requested,
                created_ms: row.created_ms,
                started_ms: row.started_ms,
                ended_ms: row.ended_ms,
                result: None,
                error: None,
                progress: None,
                ending: false,
            },
            circuits,
            reserved,
        )
        .borrow()
        .clone()
    }

    /// Holds `job` in memory, queued, and hands it to the scheduler with
    /// the circuits its submission kept.
    fn hold(
        &self,
        mut job: LiveJob,
        circuits: Option<Arc<[Circuit]>>,
        reserved: bool,
    ) -> watch::Receiver<Arc<LiveJob>> {
        job.order = self.arrivals.fetch_add(1, Ordering::Relaxed);
        // A job held running is one this node claimed in a shared store.
        let claimed = (job.status == JobStatus::Running).then_some(job.attempt);
        let entry = Entry {
            id: job.id.clone(),
            tenant: job.tenant.clone(),
            seq: job.order,
            spec: job.spec.clone(),
            circuits,
            claimed,
        };
        let (tx, rx) = watch::channel(Arc::new(job));
        let mut live = self.live();
        live.insert(entry.id.clone(), tx);
        let id = entry.id.clone();
        self.sched.push(entry, reserved);
        drop(live);
        // A request waiting for it in the store (it was queued there) now
        // follows it here instead of reading the store again.
        self.job_ended(&id);
        rx
    }

    /// The job `id` as held in memory.
    pub(crate) fn live_job(&self, id: &str) -> Option<Arc<LiveJob>> {
        self.live().get(id).map(|tx| tx.borrow().clone())
    }

    /// Changes a live job and publishes it; the new state, if it is live.
    pub(crate) fn live_update(
        &self,
        id: &str,
        f: impl FnOnce(&mut LiveJob),
    ) -> Option<Arc<LiveJob>> {
        self.modify(id, |job| {
            f(Arc::make_mut(job));
            job.clone()
        })
    }

    /// Runs `f` on a live job under the live lock (writes it queues there
    /// reach the writer in that order) and publishes the job; what `f`
    /// returned, if the job is live.
    pub(crate) fn with_live<R>(&self, id: &str, f: impl FnOnce(&mut LiveJob) -> R) -> Option<R> {
        self.modify(id, |job| f(Arc::make_mut(job)))
    }

    fn modify<R>(&self, id: &str, f: impl FnOnce(&mut Arc<LiveJob>) -> R) -> Option<R> {
        let live = self.live();
        let tx = live.get(id)?;
        let mut out = None;
        tx.send_modify(|job| out = Some(f(job)));
        out
    }

    /// Queues the insert of `id` as it stands, if it is live and not stored
    /// yet; the insert's commit, or `None` when there was nothing to do.
    fn store_now(
        &self,
        id: &str,
    ) -> Option<impl Future<Output = Result<Written, ServiceError>> + use<>> {
        self.with_live(id, |job| {
            (!job.stored).then(|| {
                job.stored = true;
                self.writer.write(job.to_insert(job.state()), true)
            })
        })
        .flatten()
    }

    /// A job's end is committed: publishes its last state and lets it go.
    pub(crate) fn live_end(&self, id: &str, f: impl FnOnce(&mut LiveJob)) {
        let tx = self.live().remove(id);
        if let Some(tx) = tx {
            tx.send_modify(|job| f(Arc::make_mut(job)));
        }
    }

    /// Drops a job submitted with `?wait` that was neither stored nor
    /// started; whether it did.
    fn drop_unstored_queued(&self, id: &str) -> bool {
        let mut live = self.live();
        let unstored = live.get(id).is_some_and(|tx| !tx.borrow().stored);
        if unstored && self.sched.remove_queued(id) {
            live.remove(id);
            drop(live);
            self.publish_depth();
            return true;
        }
        false
    }

    /// Returns the claimed ones of `entries` (taken out of the scheduler,
    /// not started) to the shared store's queue, for any node, and lets
    /// them go here; queued now, committed with the writer's next batch.
    pub(crate) fn give_back(&self, entries: Vec<Arc<Entry>>) {
        for entry in entries {
            if let Some(attempt) = entry.claimed {
                let op = WriteOp::Requeue {
                    id: entry.id.clone(),
                    attempt,
                };
                drop(self.writer.write(op, true));
                self.live_forget(&entry.id);
            }
        }
    }

    /// Lets a job go without an end of its own (the store knows better);
    /// waiters then read the store.
    pub(crate) fn live_forget(&self, id: &str) {
        self.live().remove(id);
    }

    /// Registers a request waiting for job `id` to end: its receiver
    /// changes when the store says so.
    fn watch_job(self: &Arc<Self>, id: &str) -> JobWatch {
        let rx = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_owned())
            .or_insert_with(|| watch::Sender::new(()))
            .subscribe();
        JobWatch {
            inner: self.clone(),
            id: id.to_owned(),
            rx: Some(rx),
        }
    }

    /// The store says job `id` ended, or this node claimed it: its waiters
    /// look again.
    pub(crate) fn job_ended(&self, id: &str) {
        if let Some(tx) = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            tx.send_replace(());
        }
    }

    /// Store events were missed: every waiter re-reads its job.
    pub(crate) fn jobs_may_have_ended(&self) {
        for tx in self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            tx.send_replace(());
        }
    }

    /// Whether this node takes on more work from a shared store.
    pub(crate) fn accepts_claims(&self) -> bool {
        !*self.stopping.borrow()
    }

    /// The jobs this node holds claims on in a shared store, with their
    /// attempts: every job it holds running.
    pub(crate) fn claimed_jobs(&self) -> Vec<(String, u32)> {
        self.live()
            .values()
            .map(|tx| tx.borrow().clone())
            .filter(|j| j.status == JobStatus::Running)
            .map(|j| (j.id.clone(), j.attempt))
            .collect()
    }

    /// Publishes queue depth and memory in use.
    pub(crate) fn publish_depth(&self) {
        let (queued, running) = self.sched.depth();
        metrics::gauge!("kettle_queue_depth").set(queued as f64);
        metrics::gauge!("kettle_running_jobs").set(running as f64);
        metrics::gauge!("kettle_memory_in_use_bytes").set(self.sched.memory_in_use() as f64);
    }
}

/// The job service.
#[derive(Debug, Clone)]
pub struct Service {
    inner: Arc<Inner>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// The node's thread on a shared store (see `cluster.rs`).
    cluster: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// A seed for a request without one, below 2^53: JavaScript and other
/// readers that hold JSON numbers as doubles then read it exactly, and can
/// send it back to repeat the job. (A client's own seed may be any u64.)
fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // Without system randomness, a clock-derived seed is still a valid
    // seed: it is stored, so the job stays reproducible.
    if getrandom::fill(&mut b).is_err() {
        return now_ms() as u64 & SAFE_INTEGER_MASK;
    }
    u64::from_le_bytes(b) & SAFE_INTEGER_MASK
}

/// The integers a double holds exactly: below 2^53.
const SAFE_INTEGER_MASK: u64 = (1 << 53) - 1;

fn largest_fitting(precision: kettle_core::Precision, budget: u64, cap: u32) -> u32 {
    (0..=cap.min(kettle_core::MAX_QUBITS))
        .rev()
        .find(|&n| precision.state_bytes(n) <= u128::from(budget))
        .unwrap_or(0)
}

impl QubitsPerPrecision {
    /// The most qubits whose state fits `budget` bytes, at most `cap`.
    fn fitting(budget: u64, cap: u32) -> QubitsPerPrecision {
        QubitsPerPrecision {
            f64: largest_fitting(kettle_core::Precision::F64, budget, cap),
            f32: largest_fitting(kettle_core::Precision::F32, budget, cap),
        }
    }
}

impl Service {
    /// Opens the store at `config.store` (an SQLite folder is locked first:
    /// a second service on it is refused, naming the first one's PID) and
    /// starts the service.
    ///
    /// # Errors
    /// The folder is in use, the store cannot be opened (or is not the
    /// folder's own, or its schema is newer than this build), or the worker
    /// threads cannot start.
    pub async fn start(config: ServiceConfig) -> Result<Service, ServiceError> {
        let crate::store::OpenedStore { store, lock } = crate::store::open(&config.store).await?;
        Service::start_locked(config, store, lock).await
    }

    /// Starts the service on `store`: jobs a crash left running return to
    /// the queue, the queue is loaded, the workers start.
    ///
    /// # Errors
    /// A store failure, or the threads cannot start.
    pub async fn start_with_store(
        config: ServiceConfig,
        store: Arc<dyn JobStore>,
    ) -> Result<Service, ServiceError> {
        Service::start_locked(config, store, None).await
    }

    async fn start_locked(
        mut config: ServiceConfig,
        store: Arc<dyn JobStore>,
        lock: Option<DataDirLock>,
    ) -> Result<Service, ServiceError> {
        // The one place the ceiling applies: admission and the backend's
        // description read the value from here on.
        config.max_result_bytes = config
            .max_result_bytes
            .min(crate::config::MAX_RESULT_BYTES_CEILING);
        let shared = store.shared();
        // On a shared store, a job left running may be another node's:
        // leases decide, not this start.
        if !shared {
            let recovered = store.recover(now_ms()).await?;
            if recovered > 0 {
                tracing::info!(
                    "{recovered} jobs left running by the last stop returned to the queue"
                );
            }
        }
        let auth = keys::decide_auth(config.auth, store.as_ref()).await?;
        let par = Parallelism::threads(config.sim_threads)
            .map_err(|e| ServiceError::Store(e.to_string()))?;
        let (writer, writer_thread) = Writer::start(
            store.clone(),
            PurgePolicy {
                retention: config.retention,
                interval: config.purge_interval,
            },
        )
        .map_err(|e| ServiceError::Store(format!("cannot start the store writer: {e}")))?;
        let inner = Arc::new(Inner {
            sched: Scheduler::new(config.memory_budget, config.reserve_after, config.workers),
            sim: Simulator::new().with_parallelism(par),
            store,
            writer,
            local_mode: auth.local,
            auth_reason: auth.reason,
            lock: Mutex::new(lock),
            stopping: watch::Sender::new(false),
            live: Mutex::new(HashMap::new()),
            arrivals: AtomicI64::new(0),
            admissions: AdmissionPermits::for_this_machine(),
            shared,
            room: Arc::new(tokio::sync::Notify::new()),
            cluster_stop: watch::Sender::new(false),
            waiting: Mutex::default(),
            queue_seen_empty: AtomicBool::new(false),
            cluster_tenants: Mutex::default(),
            config,
        });
        let mut threads = Vec::new();
        let mut cluster = None;
        if shared {
            let stop = inner.cluster_stop.subscribe();
            let handle = crate::cluster::start(&inner, stop).map_err(|e| {
                ServiceError::Store(format!("cannot start the cluster thread: {e}"))
            })?;
            cluster = Some(handle);
        } else {
            for row in inner.store.queued().await? {
                inner.admit(row, None, false);
            }
        }
        inner.publish_depth();
        // The writer thread ends by itself once the service is dropped.
        drop(writer_thread);
        // The regular workers, then the fair-share one (see the scheduler).
        let workers = inner.config.workers.max(1);
        for i in 0..=workers {
            let inner = inner.clone();
            let (name, kind) = if i < workers {
                (format!("kettle-worker-{i}"), WorkerKind::Regular)
            } else {
                ("kettle-worker-fair".to_owned(), WorkerKind::FairShare)
            };
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn(move || worker_loop(inner, kind))
                .map_err(|e| ServiceError::Store(format!("cannot start a worker thread: {e}")))?;
            threads.push(handle);
        }
        let service = Service {
            inner,
            threads: Arc::new(Mutex::new(threads)),
            cluster: Arc::new(Mutex::new(cluster)),
        };
        service.purge_expired().await;
        Ok(service)
    }

    /// The configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.inner.store
    }

    /// Whether the service runs without API keys (one implicit tenant).
    pub fn local_mode(&self) -> bool {
        self.inner.local_mode
    }

    /// Why the service authenticates as it does (see
    /// [`keys::decide_auth`]), for the start-up line.
    pub fn auth_reason(&self) -> &str {
        &self.inner.auth_reason
    }

    /// A store error while the writer retries a failed write: new work is
    /// turned down at once rather than left waiting for the disk.
    fn check_writable(&self) -> Result<(), ServiceError> {
        if self.inner.writer.healthy() {
            Ok(())
        } else {
            Err(ServiceError::Store(
                "the store cannot write now (a failed write is being retried)".into(),
            ))
        }
    }

    /// Whether new jobs are accepted.
    pub fn accepting(&self) -> bool {
        !*self.inner.stopping.borrow()
    }

    /// The tenant a request acts as. In local mode every request is the
    /// local tenant; otherwise a valid, unrevoked key is needed.
    ///
    /// # Errors
    /// [`ServiceError::Unauthorized`].
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<String, ServiceError> {
        if self.inner.local_mode {
            return Ok(LOCAL_TENANT.to_owned());
        }
        let key = bearer.ok_or_else(|| {
            ServiceError::Unauthorized(
                "an API key is required: send `Authorization: Bearer <key>`".into(),
            )
        })?;
        keys::authenticate(self.inner.store.as_ref(), key).await
    }

    /// Validates, parses and stores a job; it is on disk when this returns.
    ///
    /// # Errors
    /// Every problem of the request or its program, a limit, a state that
    /// can never fit, an idempotency conflict, or a store failure.
    pub async fn submit(
        &self,
        tenant: &str,
        request: JobRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Submitted, ServiceError> {
        let id = uuid::Uuid::now_v7().to_string();
        self.submit_as(&id, tenant, request, idempotency_key).await
    }

    /// [`submit`](Self::submit), with the id the job gets if it is new.
    async fn submit_as(
        &self,
        id: &str,
        tenant: &str,
        request: JobRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Submitted, ServiceError> {
        let (Prepared { spec, circuits }, hash) = self
            .prepare_submission(tenant, request, idempotency_key)
            .await?;
        // A retry is answered before the tenant's job limit is applied: it
        // adds no job. (The insert below settles races between retries.)
        if let Some(key) = idempotency_key
            && let Some((row, stored)) = self.inner.store.find_idempotent(tenant, key).await?
        {
            return if stored == hash {
                Ok(Submitted {
                    job: self.view(row, KeyFormat::Bitstring),
                    created: false,
                })
            } else {
                Err(ServiceError::IdempotencyConflict(key.to_owned()))
            };
        }
        self.check_writable()?;
        // A shared store counts the tenant's active jobs of every node, in
        // the insert's transaction; a single service counts them here.
        let max_active = if self.inner.shared {
            let limit = self.inner.config.limits_for(tenant).max_active_jobs;
            Some(u32::try_from(limit).unwrap_or(u32::MAX))
        } else {
            self.reserve(tenant)?;
            None
        };
        // On a shared store, a node that has room for the job (a free
        // worker, or a short wait behind its own short runs: see
        // `Scheduler::room`), and knows of nothing queued that it could
        // take instead, stores it claimed: what a claim would do next,
        // without the claim's round trips and writes. (Otherwise any node
        // with room claims it.)
        let created_ms = now_ms();
        let claim_now = self.inner.shared
            && self.inner.queue_seen_empty.load(Ordering::Relaxed)
            && self
                .inner
                .sched
                .room()
                .is_some_and(|room| spec.memory_bytes <= room.memory_bytes);
        let mut state = JobState::queued();
        let mut lease_until_ms = None;
        if claim_now {
            state.status = JobStatus::Running;
            state.attempt = 1;
            state.started_ms = Some(created_ms);
            let lease = i64::try_from(self.inner.config.lease.as_millis()).unwrap_or(i64::MAX);
            lease_until_ms = Some(created_ms.saturating_add(lease));
        }
        let job = NewJob {
            id: id.to_owned(),
            tenant: tenant.to_owned(),
            spec,
            created_ms,
            idempotency: idempotency_key.map(|k| (k.to_owned(), hash)),
            state,
            max_active,
            lease_until_ms,
        };
        // Through the writer: committed (durably) with whatever else is
        // pending, before this returns.
        let inserted = match self
            .inner
            .writer
            .write(WriteOp::Insert(Box::new(job)), true)
            .await
        {
            Ok(Written::Inserted(i)) => *i,
            Ok(other) => {
                self.unreserve(tenant);
                return Err(ServiceError::Store(format!(
                    "unexpected write result {other:?}"
                )));
            }
            Err(e) => {
                self.unreserve(tenant);
                return Err(e);
            }
        };
        match inserted {
            // Claimed as it was stored: it runs here.
            Inserted::Created(row) if self.inner.shared && row.status == JobStatus::Running => {
                metrics::counter!("kettle_jobs_submitted_total").increment(1);
                let job = self.inner.admit(row, circuits, false);
                let view = self.live_view(&job, KeyFormat::Bitstring);
                self.inner.publish_depth();
                Ok(Submitted {
                    job: view,
                    created: true,
                })
            }
            // Any node with room claims it (told by the store's event);
            // this one looks at once, without waiting for the notification.
            Inserted::Created(row) if self.inner.shared => {
                metrics::counter!("kettle_jobs_submitted_total").increment(1);
                self.inner.queue_seen_empty.store(false, Ordering::Relaxed);
                self.inner.room.notify_one();
                Ok(Submitted {
                    job: self.view(row, KeyFormat::Bitstring),
                    created: true,
                })
            }
            Inserted::Created(row) => {
                metrics::counter!("kettle_jobs_submitted_total").increment(1);
                let job = self.inner.admit(row, circuits, true);
                let view = self.live_view(&job, KeyFormat::Bitstring);
                self.inner.publish_depth();
                Ok(Submitted {
                    job: view,
                    created: true,
                })
            }
            Inserted::Existing(row) => {
                self.unreserve(tenant);
                Ok(Submitted {
                    job: self.view(row, KeyFormat::Bitstring),
                    created: false,
                })
            }
            Inserted::Conflict => {
                self.unreserve(tenant);
                Err(ServiceError::IdempotencyConflict(
                    idempotency_key.unwrap_or_default().to_owned(),
                ))
            }
            Inserted::TooMany(current) => {
                self.unreserve(tenant);
                Err(self.too_many(tenant, current))
            }
        }
    }

    /// [`submit`](Self::submit), then [`wait`](Self::wait) up to `wait`
    /// for the job to end. Without an idempotency key the job is stored
    /// only once it ends, or when the wait expires or the service shuts
    /// down, as it stands then: a small job costs one write instead of
    /// three. Until then it was never acknowledged, and reads do not see
    /// it. Either way it is on disk when this returns.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub async fn submit_and_wait(
        &self,
        tenant: &str,
        request: JobRequest,
        idempotency_key: Option<&str>,
        wait: Duration,
        keys: KeyFormat,
    ) -> Result<Submitted, ServiceError> {
        // On a shared store any node may run the job: it is stored first.
        if idempotency_key.is_some() || wait.is_zero() || self.inner.shared {
            // Watched from before it is stored: its end on any node, or its
            // claim here, is never missed, so the wait needs no first read
            // of what the insert just returned.
            let id = uuid::Uuid::now_v7().to_string();
            let watch = (!wait.is_zero()).then(|| self.inner.watch_job(&id));
            let submitted = self
                .submit_as(&id, tenant, request, idempotency_key)
                .await?;
            let Some(watch) = watch else {
                return Ok(submitted);
            };
            let job = if submitted.job.id == id {
                self.wait_watched(watch, tenant, wait, keys, true, false)
                    .await?
            } else {
                self.wait(tenant, &submitted.job.id, wait, keys).await?
            };
            return Ok(Submitted {
                job,
                created: submitted.created,
            });
        }
        let (Prepared { spec, circuits }, _) =
            self.prepare_submission(tenant, request, None).await?;
        self.check_writable()?;
        self.reserve(tenant)?;
        let id = uuid::Uuid::now_v7().to_string();
        let mut rx = self.inner.hold(
            LiveJob {
                id: id.clone(),
                tenant: tenant.to_owned(),
                order: 0,
                stored: false,
                status: JobStatus::Queued,
                spec: Arc::new(spec),
                attempt: 0,
                cancel_requested: false,
                created_ms: now_ms(),
                started_ms: None,
                ended_ms: None,
                result: None,
                error: None,
                progress: None,
                ending: false,
            },
            circuits,
            true,
        );
        metrics::counter!("kettle_jobs_submitted_total").increment(1);
        self.inner.publish_depth();
        // Its end is published only once committed (with its insert).
        let ended = tokio::select! {
            ended = tokio::time::timeout(wait, async {
                rx.wait_for(|j| j.status.is_terminal())
                    .await
                    .map(|j| j.clone())
            }) => ended.ok().and_then(Result::ok),
            () = self.stopping() => {
                // A shutdown: a job that has not started is dropped, never
                // stored nor acknowledged, and the client told to come back;
                // one that runs is stored below as it stands, as when the
                // wait expires.
                if self.inner.drop_unstored_queued(&id) {
                    return Err(ServiceError::ShuttingDown);
                }
                None
            }
        };
        if let Some(job) = ended {
            return Ok(Submitted {
                job: self.live_view(&job, keys),
                created: true,
            });
        }
        // Not ended in time: stored as it stands before the answer.
        match self.inner.store_now(&id) {
            Some(insert) => match insert.await {
                Ok(Written::Inserted(i)) if matches!(*i, Inserted::Created(_)) => {}
                other => {
                    self.inner.with_live(&id, |j| j.stored = false);
                    return Err(match other {
                        Err(e) => e,
                        Ok(w) => ServiceError::Store(format!("unexpected write result {w:?}")),
                    });
                }
            },
            // Stored by its end or a shutdown meanwhile: once that commit
            // is through, memory or the store has the job. (A writer that
            // is failing has turned the job's insert down already; waiting
            // behind the write it retries would wait for the disk.)
            None if self.inner.writer.healthy() => {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), self.inner.writer.flush()).await;
            }
            None => {}
        }
        let job = match self.inner.live_job(&id) {
            Some(job) => self.live_view(&job, keys),
            None => match self.row(tenant, &id).await {
                Ok(row) => self.view(row, keys),
                Err(ServiceError::NotFound(_)) => {
                    return Err(ServiceError::Store(
                        "the job's end could not be stored".into(),
                    ));
                }
                Err(e) => return Err(e),
            },
        };
        Ok(Submitted { job, created: true })
    }

    /// What every submission does first: checks the request and its
    /// program. The job's spec, and the hash of the request as sent (with
    /// an idempotency key: a retry of the same body is the same request).
    async fn prepare_submission(
        &self,
        tenant: &str,
        request: JobRequest,
        idempotency_key: Option<&str>,
    ) -> Result<(Prepared, String), ServiceError> {
        if !self.accepting() {
            return Err(ServiceError::ShuttingDown);
        }
        if let Some(key) = idempotency_key
            && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY)
        {
            return Err(ServiceError::InvalidRequest {
                message: format!("an Idempotency-Key has 1 to {MAX_IDEMPOTENCY_KEY} characters"),
                field: None,
            });
        }
        let limits = self.inner.config.limits_for(tenant).clone();
        let hash = idempotency_key
            .map(|_| {
                serde_json::to_vec(&request).map(|b| {
                    Sha256::digest(&b).iter().fold(String::new(), |mut s, x| {
                        use std::fmt::Write;
                        let _ = write!(s, "{x:02x}");
                        s
                    })
                })
            })
            .transpose()
            .map_err(|e| ServiceError::Store(e.to_string()))?
            .unwrap_or_default();
        let inner = self.inner.clone();
        let seed = random_seed();
        // Raised when this future is dropped (the client hung up): the
        // parse on its blocking thread then stops within milliseconds and
        // gives its permit back.
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
        let allowed = self.inner.config.max_admission_time;
        let work = move || {
            let interrupt = Interrupt {
                deadline: Some((std::time::Instant::now() + allowed, allowed)),
                stop: Some(&stop),
            };
            prepare_within(
                &request,
                &Admission {
                    limits: &limits,
                    memory_budget: inner.config.admission_memory_budget(),
                    split_memory_budget: inner.config.split_memory_budget(),
                    max_listed_qubits: inner.config.max_listed_qubits,
                    max_result_bytes: inner.config.max_result_bytes,
                },
                seed,
                interrupt,
            )
        };
        // Always off the async threads: size says nothing of the cost, as
        // a 150-byte loop unrolls to a million operations (1.2 s to parse).
        // The deadline runs from when the parse starts, not while it waits
        // for a permit (a wait whose client hangs up leaves the queue).
        let spec = if tokio::runtime::Handle::try_current().is_ok() {
            self.parse_under_permit(tenant, work).await??
        } else {
            work()?
        };
        Ok((spec, hash))
    }

    /// Whether the writer's writes go through (false while it retries).
    #[cfg(test)]
    pub(crate) fn inner_writer_healthy(&self) -> bool {
        self.inner.writer.healthy()
    }

    /// The scheduler's queued and running jobs.
    #[cfg(test)]
    pub(crate) fn inner_depth(&self) -> (usize, usize) {
        self.inner.sched.depth()
    }

    /// The permits admission parses take.
    #[cfg(test)]
    pub(crate) fn admission_permits(&self) -> &AdmissionPermits {
        &self.inner.admissions
    }

    /// Counts one more job against the tenant's limit of active jobs.
    fn reserve(&self, tenant: &str) -> Result<(), ServiceError> {
        let max_active = self.inner.config.limits_for(tenant).max_active_jobs;
        self.inner
            .sched
            .try_reserve(tenant, max_active)
            .map_err(|current| self.too_many(tenant, current as u64))
    }

    /// Undoes a [`reserve`](Self::reserve) (a single service's count).
    fn unreserve(&self, tenant: &str) {
        if !self.inner.shared {
            self.inner.sched.unreserve(tenant);
        }
    }

    /// The refusal of a job over the tenant's limit of active jobs.
    fn too_many(&self, tenant: &str, current: u64) -> ServiceError {
        let max_active = self.inner.config.limits_for(tenant).max_active_jobs;
        ServiceError::TooManyJobs {
            message: format!(
                "{current} jobs are queued or running for this tenant; at most {max_active} at once"
            ),
            retry_after_secs: 1,
        }
    }

    async fn row(&self, tenant: &str, id: &str) -> Result<JobRow, ServiceError> {
        match self.inner.store.get(id).await? {
            // Another tenant's job is not found either: no existence leak.
            Some(row) if row.tenant == tenant => Ok(row),
            _ => Err(ServiceError::NotFound(id.to_owned())),
        }
    }

    /// Like [`row`](Self::row), without the result.
    async fn summary_row(&self, tenant: &str, id: &str) -> Result<JobRow, ServiceError> {
        match self.inner.store.get_summary(id).await? {
            Some(row) if row.tenant == tenant => Ok(row),
            _ => Err(ServiceError::NotFound(id.to_owned())),
        }
    }

    fn view(&self, row: JobRow, keys: KeyFormat) -> JobView {
        let queue_position = if row.status == JobStatus::Queued {
            self.inner.sched.position(&row.id)
        } else {
            None
        };
        JobView {
            id: row.id,
            status: row.status,
            name: row.spec.name.clone(),
            tags: row.spec.tags.clone(),
            priority: row.spec.priority,
            format: row.spec.program.format,
            qubits: row.spec.qubits,
            shots: row.spec.shots,
            executions: row.spec.executions.len(),
            precision: row.spec.precision,
            method: row.spec.method,
            noisy: row.spec.noisy,
            seed: row.spec.seed,
            memory_bytes: row.spec.memory_bytes,
            created_at: rfc3339(row.created_ms),
            started_at: row.started_ms.map(rfc3339),
            ended_at: row.ended_ms.map(rfc3339),
            queue_position,
            progress: None,
            attempts: row.attempt,
            cancel_requested: row.cancel_requested,
            result: row.result.map(|r| r.with_keys(keys)),
            error: row.error,
            result_bytes: row.spec.result_bytes,
        }
    }

    fn live_view(&self, job: &LiveJob, keys: KeyFormat) -> JobView {
        self.live_view_with(job, keys, true)
    }

    /// A live job as a client sees it, with its result when `with_result`.
    fn live_view_with(&self, job: &LiveJob, keys: KeyFormat, with_result: bool) -> JobView {
        let queue_position = if job.status == JobStatus::Queued {
            self.inner.sched.position(&job.id)
        } else {
            None
        };
        let spec = &job.spec;
        JobView {
            id: job.id.clone(),
            status: job.status,
            name: spec.name.clone(),
            tags: spec.tags.clone(),
            priority: spec.priority,
            format: spec.program.format,
            qubits: spec.qubits,
            shots: spec.shots,
            executions: spec.executions.len(),
            precision: spec.precision,
            method: spec.method,
            noisy: spec.noisy,
            seed: spec.seed,
            memory_bytes: spec.memory_bytes,
            created_at: rfc3339(job.created_ms),
            started_at: job.started_ms.map(rfc3339),
            ended_at: job.ended_ms.map(rfc3339),
            queue_position,
            progress: job.progress.filter(|_| job.status == JobStatus::Running),
            attempts: job.attempt,
            cancel_requested: job.cancel_requested,
            result: job
                .result
                .as_ref()
                .filter(|_| with_result)
                .map(|r| JobResult::clone(r).with_keys(keys)),
            error: job.error.clone(),
            result_bytes: spec.result_bytes,
        }
    }

    /// The job held in memory, if `tenant` owns it. A job not stored yet
    /// was never acknowledged: nobody can know it.
    fn live_of(&self, tenant: &str, id: &str) -> Result<Option<Arc<LiveJob>>, ServiceError> {
        match self.inner.live_job(id) {
            Some(job) if !job.stored || job.ending => Ok(None),
            Some(job) if job.tenant == tenant => Ok(Some(job)),
            Some(_) => Err(ServiceError::NotFound(id.to_owned())),
            None => Ok(None),
        }
    }

    /// The job `id` of `tenant`.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`], or a store failure.
    pub async fn get(
        &self,
        tenant: &str,
        id: &str,
        keys: KeyFormat,
    ) -> Result<JobView, ServiceError> {
        if let Some(job) = self.live_of(tenant, id)? {
            return Ok(self.live_view(&job, keys));
        }
        Ok(self.view(self.row(tenant, id).await?, keys))
    }

    /// Like [`get`](Self::get), after waiting up to `timeout` for the job
    /// to end.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn wait(
        &self,
        tenant: &str,
        id: &str,
        timeout: Duration,
        keys: KeyFormat,
    ) -> Result<JobView, ServiceError> {
        self.wait_view(tenant, id, timeout, keys, true).await
    }

    /// Like [`wait`](Self::wait), without the result: its
    /// [`JobView::result_bytes`] bounds the result's size, which
    /// [`result_json`](Self::result_json) then reads. A server loads a
    /// large result only once it has the memory to send it.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn wait_summary(
        &self,
        tenant: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<JobView, ServiceError> {
        self.wait_view(tenant, id, timeout, KeyFormat::Bitstring, false)
            .await
    }

    /// The result of `tenant`'s completed job `id` as JSON, keyed as `keys`
    /// says, read from the store (a job's end is published only once
    /// stored); `None` when it has none. With bitstring keys this is the
    /// stored text itself, never parsed.
    ///
    /// # Errors
    /// A store failure.
    pub async fn result_json(
        &self,
        tenant: &str,
        id: &str,
        keys: KeyFormat,
    ) -> Result<Option<ResultText>, ServiceError> {
        let Some(text) = self.inner.store.result_text(tenant, id).await? else {
            return Ok(None);
        };
        if keys == KeyFormat::Bitstring {
            return Ok(Some(text));
        }
        // Off the async threads: a large result takes a while to re-key.
        tokio::task::spawn_blocking(move || {
            let result: JobResult = serde_json::from_slice(text.as_bytes())
                .map_err(|e| ServiceError::Store(format!("stored result is unreadable: {e}")))?;
            drop(text);
            serde_json::to_string(&result.with_keys(keys))
                .map(|t| Some(ResultText::from(t)))
                .map_err(|e| ServiceError::Store(e.to_string()))
        })
        .await
        .map_err(|e| ServiceError::Store(format!("the result task failed: {e}")))?
    }

    /// The circuit that `tenant`'s job `id` runs, as its program parses to
    /// for the job's first execution (a sweep's executions differ only in
    /// their input values): what a drawing of the job shows. The parse runs
    /// off the async threads under one of the tenant's admission permits,
    /// as a submission's does; it is one that the job's admission already
    /// completed within `max_admission_time`, for every execution.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`] (also for another tenant's job), a store
    /// failure, [`ServiceError::ShuttingDown`], or the parse's error (a
    /// program accepted by an older version that no longer parses).
    pub async fn circuit(&self, tenant: &str, id: &str) -> Result<Circuit, ServiceError> {
        let spec = self.summary_row(tenant, id).await?.spec;
        let limits = self.inner.config.limits_for(tenant).clone();
        self.parse_under_permit(tenant, move || {
            let inputs = spec.executions.first().cloned().unwrap_or_default();
            parse_execution(&spec.program, &inputs, &limits).map_err(|e| program_error(e, None))
        })
        .await?
    }

    /// Runs `parse` on a blocking thread under one of `tenant`'s admission
    /// permits: a program's size says nothing of its parse's cost.
    ///
    /// # Errors
    /// [`ServiceError::ShuttingDown`] when no permit is given, or the
    /// blocking task's failure.
    async fn parse_under_permit<T: Send + 'static>(
        &self,
        tenant: &str,
        parse: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let permit = self
            .inner
            .admissions
            .acquire(tenant)
            .await
            .ok_or(ServiceError::ShuttingDown)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            parse()
        })
        .await
        .map_err(|e| ServiceError::Store(format!("the parser task failed: {e}")))
    }

    async fn wait_view(
        &self,
        tenant: &str,
        id: &str,
        timeout: Duration,
        keys: KeyFormat,
        with_result: bool,
    ) -> Result<JobView, ServiceError> {
        // Registered first: a claim of the job by this node, or its end
        // anywhere, from now on wakes this request.
        let watch = self.inner.watch_job(id);
        self.wait_watched(watch, tenant, timeout, keys, with_result, true)
            .await
    }

    /// [`wait_view`](Self::wait_view) for the job `ended` watches;
    /// `read_first: false` when the caller knows the job was not ended
    /// when the watch began (it was being stored).
    async fn wait_watched(
        &self,
        mut ended: JobWatch,
        tenant: &str,
        timeout: Duration,
        keys: KeyFormat,
        with_result: bool,
        mut read_first: bool,
    ) -> Result<JobView, ServiceError> {
        let id = ended.id.clone();
        let id = id.as_str();
        let deadline = tokio::time::Instant::now() + timeout;
        let poll = if self.inner.shared {
            self.inner.config.claim_poll
        } else {
            Duration::from_millis(50)
        };
        let mut followed = false;
        loop {
            // Held in memory (from the start, or claimed here since): its
            // end is published here, result included. Followed once; a job
            // let go without an end of its own is read from the store.
            let rx = (!followed)
                .then(|| self.inner.live().get(id).map(watch::Sender::subscribe))
                .flatten();
            if let Some(mut rx) = rx {
                followed = true;
                let job = rx.borrow().clone();
                if job.tenant != tenant || !job.stored {
                    return Err(ServiceError::NotFound(id.to_owned()));
                }
                if !job.status.is_terminal() && tokio::time::Instant::now() < deadline {
                    tokio::select! {
                        _ = tokio::time::timeout_at(deadline, rx.wait_for(|j| j.status.is_terminal())) => {}
                        () = self.stopping() => return Err(ServiceError::ShuttingDown),
                    }
                }
                let job = rx.borrow().clone();
                // Still live, or ended with its last state published.
                if job.status.is_terminal() || rx.has_changed().is_ok() {
                    return Ok(self.live_view_with(&job, keys, with_result));
                }
                // Let go without an end of its own: the store knows.
            }
            // Not held in memory: finished (the store has it), unknown, or
            // (on a shared store) queued or running on any node. Re-read
            // when the store says the job ended or this node claimed it,
            // and every poll interval besides: a notification can be lost.
            if std::mem::replace(&mut read_first, true) {
                let row = if with_result {
                    self.row(tenant, id).await?
                } else {
                    self.summary_row(tenant, id).await?
                };
                if row.status.is_terminal() || tokio::time::Instant::now() >= deadline {
                    return Ok(self.view(row, keys));
                }
                if let Some(job) = self.live_of(tenant, id)?
                    && job.status.is_terminal()
                {
                    return Ok(self.live_view_with(&job, keys, with_result));
                }
            }
            if !followed && self.inner.live().contains_key(id) {
                continue;
            }
            let next_read = (tokio::time::Instant::now() + poll).min(deadline);
            tokio::select! {
                () = ended.changed() => {}
                () = tokio::time::sleep_until(next_read) => {}
                () = self.stopping() => return Err(ServiceError::ShuttingDown),
            }
        }
    }

    /// A page of `tenant`'s jobs, newest first: summaries, without results
    /// (a result is read from its job).
    ///
    /// # Errors
    /// A bad cursor or limit, or a store failure.
    pub async fn list(
        &self,
        tenant: &str,
        status: Option<JobStatus>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<JobPage, ServiceError> {
        if limit == 0 || limit > MAX_LIST_LIMIT {
            return Err(ServiceError::invalid(
                "limit",
                format!("limit must be between 1 and {MAX_LIST_LIMIT}"),
            ));
        }
        let before = cursor
            .map(|c| {
                c.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                    ServiceError::invalid("cursor", "the cursor is not one this server gave")
                })
            })
            .transpose()?;
        let rows = self
            .inner
            .store
            .list(tenant, status, limit + 1, before)
            .await?;
        let more = rows.len() > limit as usize;
        let rows: Vec<JobRow> = rows.into_iter().take(limit as usize).collect();
        let next_cursor = more
            .then(|| rows.last().map(|r| r.seq.to_string()))
            .flatten();
        Ok(JobPage {
            jobs: rows
                .into_iter()
                .map(|r| match self.inner.live_job(&r.id) {
                    // Memory is ahead of the store for claims.
                    Some(job) => self.live_view_with(&job, KeyFormat::Bitstring, false),
                    None => self.view(r, KeyFormat::Bitstring),
                })
                .collect(),
            next_cursor,
        })
    }

    /// Cancels a job: a queued one at once, a running one at its next gate
    /// (the returned view still says `running`, with `cancel_requested`).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`], [`ServiceError::AlreadyFinished`], or a
    /// store failure.
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<JobView, ServiceError> {
        let finished = |status: JobStatus| ServiceError::AlreadyFinished {
            id: id.to_owned(),
            status: status.as_str().to_owned(),
        };
        // A cancellation is a write: refused while the store cannot write,
        // before anything changes, rather than answered and lost.
        self.check_writable()?;
        // Decided under the live lock, so that the job cannot be dispatched
        // or admitted in between: still queued in the scheduler → cancelled
        // at once; otherwise a worker has it → stopped at its next gate.
        let queued = {
            let live = self.inner.live();
            match live.get(id).map(|tx| tx.borrow().clone()) {
                None => None,
                Some(job) if job.tenant != tenant || !job.stored => {
                    return Err(ServiceError::NotFound(id.to_owned()));
                }
                Some(job) if job.status.is_terminal() => return Err(finished(job.status)),
                // On a shared store a job held here is claimed: even one
                // not started yet is stopped through its claim (the worker
                // that takes it ends it cancelled).
                Some(_) if !self.inner.shared && self.inner.sched.remove_queued(id) => Some(true),
                Some(_) => {
                    self.inner.sched.stop_running(id, STOP_CANCEL);
                    Some(false)
                }
            }
        };
        let Some(queued) = queued else {
            // Not held in memory: finished, or (after a failed write) only
            // the store knows; it decides.
            let row = self.row(tenant, id).await?;
            if row.status.is_terminal() {
                return Err(finished(row.status));
            }
            let error = JobError {
                code: "cancelled".into(),
                message: "cancelled before it ran".into(),
            };
            let op = WriteOp::CancelQueued {
                id: id.to_owned(),
                error,
                now_ms: now_ms(),
            };
            if self.inner.writer.write(op, true).await? != Written::Changed(true) {
                let op = WriteOp::RequestCancel { id: id.to_owned() };
                self.inner.writer.write(op, true).await?;
            }
            return Ok(self.view(self.row(tenant, id).await?, KeyFormat::Bitstring));
        };
        if queued {
            self.inner.publish_depth();
            let error = JobError {
                code: "cancelled".into(),
                message: "cancelled before it ran".into(),
            };
            let now = now_ms();
            let written = self
                .inner
                .writer
                .write(
                    WriteOp::CancelQueued {
                        id: id.to_owned(),
                        error: error.clone(),
                        now_ms: now,
                    },
                    true,
                )
                .await;
            match written {
                Ok(Written::Changed(true)) => {
                    metrics::counter!("kettle_jobs_finished_total", "status" => "cancelled")
                        .increment(1);
                    let mut out = None;
                    self.inner.live_end(id, |j| {
                        j.status = JobStatus::Cancelled;
                        j.ended_ms = Some(now);
                        j.error = Some(error);
                        out = Some(self.live_view(j, KeyFormat::Bitstring));
                    });
                    if let Some(view) = out {
                        return Ok(view);
                    }
                }
                Ok(_) => self.inner.live_forget(id),
                Err(e) => {
                    // Not cancelled in the store, so still queued there:
                    // back to the scheduler, as after a restart.
                    if let Some(job) = self.inner.live_job(id) {
                        let entry = Entry {
                            id: job.id.clone(),
                            tenant: job.tenant.clone(),
                            seq: job.order,
                            spec: job.spec.clone(),
                            circuits: None,
                            claimed: None,
                        };
                        self.inner.sched.push(entry, false);
                    }
                    return Err(e);
                }
            }
        } else {
            self.inner.live_update(id, |j| j.cancel_requested = true);
            self.inner
                .writer
                .write(WriteOp::RequestCancel { id: id.to_owned() }, true)
                .await?;
            if let Some(job) = self.live_of(tenant, id)? {
                if matches!(job.status, JobStatus::Completed | JobStatus::Failed) {
                    return Err(finished(job.status));
                }
                return Ok(self.live_view(&job, KeyFormat::Bitstring));
            }
        }
        let row = self.row(tenant, id).await?;
        if row.status == JobStatus::Completed || row.status == JobStatus::Failed {
            return Err(finished(row.status));
        }
        Ok(self.view(row, KeyFormat::Bitstring))
    }

    /// What this server can run, for `tenant`.
    pub fn backend(&self, tenant: &str) -> BackendInfo {
        let c = &self.inner.config;
        let limits = c.limits_for(tenant).clone();
        BackendInfo {
            name: "kettle".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            simulator: "statevector".into(),
            methods: kettle_core::Method::ALL
                .iter()
                .map(|m| m.name().to_owned())
                .collect(),
            channels: kettle_qasm::noise_channel_names()
                .into_iter()
                .map(String::from)
                .collect(),
            noise_models: vec!["qiskit_aer".into()],
            simd: kettle_core::cpu::simd_level().name().into(),
            max_qubits: QubitsPerPrecision::fitting(c.admission_memory_budget(), limits.max_qubits),
            memory_budget_bytes: c.admission_memory_budget(),
            across_ranks: c.ranks.as_ref().map(|r| AcrossRanks {
                ranks: r.ranks,
                memory_budget_bytes: c.split_memory_budget(),
                max_qubits: QubitsPerPrecision::fitting(c.split_memory_budget(), limits.max_qubits),
            }),
            workers: c.workers,
            formats: ["qasm2", "qasm3", "json"].map(String::from).to_vec(),
            result_types: ["counts", "memory", "probabilities", "statevector", "expectation"]
                .map(String::from)
                .to_vec(),
            gates: StandardGate::ALL.iter().map(|g| g.name().to_owned()).collect(),
            limits,
            max_listed_qubits: c.max_listed_qubits,
            max_result_bytes: c.max_result_bytes,
            max_run_time_seconds: c.max_run_time.as_secs_f64(),
            max_admission_seconds: c.max_admission_time.as_secs_f64(),
            max_classical_steps: kettle_qasm::Limits::default().max_classical_steps,
            local_mode: self.inner.local_mode,
            bit_order: "qiskit: qubit 0 is the least significant bit of a state index; classical bit 0 is the rightmost character of a bitstring".into(),
        }
    }

    /// Refreshes the per-status job gauges from the store (for a scrape).
    pub async fn refresh_metrics(&self) {
        match self.inner.store.count_by_status().await {
            Ok(counts) => {
                for status in JobStatus::ALL {
                    let n = counts
                        .iter()
                        .find(|(s, _)| *s == status)
                        .map_or(0, |(_, n)| *n);
                    metrics::gauge!("kettle_jobs", "status" => status.as_str()).set(n as f64);
                }
            }
            Err(e) => tracing::warn!("could not count jobs: {e}"),
        }
        if self.inner.shared {
            // The cluster's queue by tenant, as every node sees it.
            match self.inner.store.count_by_tenant_status().await {
                Ok(counts) => {
                    // Every status of every tenant seen, zeros included: a
                    // gauge not set again would keep its last value.
                    let mut seen = self
                        .inner
                        .cluster_tenants
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    seen.extend(counts.iter().map(|(t, _, _)| t.clone()));
                    for tenant in seen.iter() {
                        for status in JobStatus::ALL {
                            let n = counts
                                .iter()
                                .find(|(t, s, _)| t == tenant && *s == status)
                                .map_or(0, |(_, _, n)| *n);
                            metrics::gauge!(
                                "kettle_cluster_jobs",
                                "tenant" => tenant.clone(),
                                "status" => status.as_str()
                            )
                            .set(n as f64);
                        }
                    }
                }
                Err(e) => tracing::warn!("could not count the cluster's jobs: {e}"),
            }
        }
        self.inner.publish_depth();
    }

    /// Deletes finished jobs older than the retention time.
    pub async fn purge_expired(&self) {
        let keep = i64::try_from(self.inner.config.retention.as_millis()).unwrap_or(i64::MAX);
        match self.inner.store.purge(now_ms().saturating_sub(keep)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("deleted {n} jobs past the retention time"),
            Err(e) => tracing::warn!("could not delete expired jobs: {e}"),
        }
    }

    /// Whether the service takes jobs: it is not shutting down, no store
    /// write is failing, and a probe write goes through.
    pub async fn ready(&self) -> bool {
        self.accepting()
            && self.inner.writer.healthy()
            && self.inner.store.probe_write().await.is_ok()
    }

    /// The first step of a shutdown, for the HTTP layer to take before it
    /// stops serving: no new jobs, and every request waiting for a job
    /// answers now with [`ServiceError::ShuttingDown`] rather than being cut
    /// off unanswered when the server exits. Its job is kept (or, never
    /// acknowledged, never stored).
    pub fn begin_shutdown(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Resolves once [`begin_shutdown`](Self::begin_shutdown) was called.
    async fn stopping(&self) {
        let mut rx = self.inner.stopping.subscribe();
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// Stops: no new jobs; running jobs get up to `grace` to finish, then
    /// are stopped at their next gate and return to the queue; the worker
    /// threads are joined. Queued jobs stay queued in the store.
    pub async fn shutdown(&self, grace: Duration) {
        self.begin_shutdown();
        self.inner.sched.close();
        let deadline = tokio::time::Instant::now() + grace;
        while self.inner.sched.depth().1 > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.inner.sched.stop_all(STOP_SHUTDOWN);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        while threads.iter().any(|t| !t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for t in threads {
            let _ = t.join();
        }
        // Jobs submitted with `?wait` that never ran are stored queued
        // (their waiters answer with that); then the workers' last ends and
        // requeues, and these, reach the store.
        let unstored: Vec<String> = self
            .inner
            .live()
            .iter()
            .filter(|(_, tx)| !tx.borrow().stored)
            .map(|(id, _)| id.clone())
            .collect();
        for id in unstored {
            // Queued now; awaited by the flush below.
            drop(self.inner.store_now(&id));
        }
        // On a shared store, jobs claimed but not started go back to the
        // store's queue, for another node.
        self.inner.give_back(self.inner.sched.drain_queued());
        // Writes the store does not take are retried; not for ever here.
        let patience = grace.max(Duration::from_secs(5));
        if tokio::time::timeout(patience, self.inner.writer.flush())
            .await
            .is_err()
        {
            tracing::error!(
                "the store did not take the last writes within {} s; the next start returns \
                 jobs left running to the queue",
                patience.as_secs()
            );
        }
        // Every claim is ended or returned: no more leases to renew.
        self.inner.cluster_stop.send_replace(true);
        let cluster = self
            .cluster
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(cluster) = cluster {
            while !cluster.is_finished() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _ = cluster.join();
        }
        // Another server may use the folder now.
        drop(
            self.inner
                .lock
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
    }
}
