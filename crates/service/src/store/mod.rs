//! The durable job store: the [`JobStore`] boundary and its rows. Every
//! state change a job goes through is one conditional write here, so the
//! store alone decides what happened (a job completes at most once even if
//! two workers, or two nodes, raced).
//!
//! Two implementations pass one contract suite (`contract_tests.rs`):
//! [`SqliteStore`], embedded, one service per data folder, whose scheduler
//! keeps the queue in memory and rebuilds it from the store at start; and
//! [`PgStore`], shared by any number of nodes ([`JobStore::shared`]), where
//! the database is the only truth: nodes claim jobs with
//! [`JobStore::claim_next`] (`FOR UPDATE SKIP LOCKED`) under a lease that
//! their heartbeat renews ([`JobStore::renew_leases`]), and every end is
//! fenced by the claim's attempt and owner. Which one runs is chosen in one
//! place, [`open`], from a [`StoreLocation`].

#[cfg(test)]
mod contract_tests;
mod folder;
mod location;
mod postgres;
mod sqlite;
#[cfg(any(test, feature = "test-postgres"))]
pub mod test_postgres;

pub use folder::DataDirLock;
pub use location::{OpenedStore, StoreLocation, open};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::error::ServiceError;
use crate::model::{JobError, JobResult, JobSpec, JobStatus};

/// A migration compiled into the binary: its version, name and SQL.
type Embedded = (i64, &'static str, &'static str);

/// sqlx's migrator over `migrations` (the files under
/// `crates/service/migrations/<store>/`, compiled in).
fn migrator(migrations: &[Embedded]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, name, text)| {
                Migration::new(
                    version,
                    name.into(),
                    MigrationType::Simple,
                    text.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Refuses a store whose schema is newer than this build's: its writes
/// could break what a newer kettle relies on.
fn check_schema_version(applied: i64, migrations: &[Embedded]) -> StoreResult<()> {
    let known = migrations.iter().map(|m| m.0).max().unwrap_or(0);
    if applied > known {
        return Err(ServiceError::Store(format!(
            "the store's schema is version {applied}; this kettle knows up to {known}: upgrade kettle"
        )));
    }
    Ok(())
}

fn migrate_error(e: sqlx::migrate::MigrateError) -> ServiceError {
    ServiceError::Store(format!("cannot migrate the store's schema: {e}"))
}

/// The wake-ups a committed batch gives: `out` is what each of `ops` did.
fn events_of(ops: &[WriteOp], out: &[Written]) -> Vec<StoreEvent> {
    let mut events = Vec::new();
    let mut queued = false;
    for (op, written) in ops.iter().zip(out) {
        match (op, written) {
            (WriteOp::Insert(_), Written::Inserted(i)) => {
                if let Inserted::Created(row) = i.as_ref() {
                    queued |= row.status == JobStatus::Queued;
                }
            }
            (WriteOp::Requeue { .. }, Written::Changed(true)) => queued = true,
            (
                WriteOp::Finish { id, .. } | WriteOp::CancelQueued { id, .. },
                Written::Changed(true),
            ) => events.push(StoreEvent::Ended(id.clone())),
            (WriteOp::RequestCancel { id }, Written::Changed(true)) => {
                events.push(StoreEvent::CancelRequested(id.clone()));
            }
            _ => {}
        }
    }
    if queued {
        events.insert(0, StoreEvent::Queued);
    }
    events
}

/// Result type of store calls.
pub type StoreResult<T> = Result<T, ServiceError>;

/// A job to insert.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant: String,
    /// What to run.
    pub spec: JobSpec,
    /// Unix milliseconds of acceptance.
    pub created_ms: i64,
    /// The idempotency key and the hash of the request it came with.
    pub idempotency: Option<(String, String)>,
    /// The state it is stored in: [`JobState::queued`] for a submission;
    /// a job the service ran before storing it (a submission waiting for
    /// its result) is stored as it stands then.
    pub state: JobState,
    /// When set, the insert is refused with [`Inserted::TooMany`] if the
    /// tenant already has this many jobs queued or running, counted in the
    /// store in the insert's own transaction (a shared store counts every
    /// node's; a single service counts in memory and leaves this `None`).
    pub max_active: Option<u32>,
    /// For a job inserted `running` on a shared store (claimed by this
    /// handle's node as it is stored, because the node can start it at
    /// once): the end of its lease, as [`JobStore::claim_next`] would set
    /// it. `None` otherwise.
    pub lease_until_ms: Option<i64>,
}

/// Where a job stands: the mutable part of a [`JobRow`].
#[derive(Clone, Debug, PartialEq)]
pub struct JobState {
    /// Its status.
    pub status: JobStatus,
    /// Times a worker has claimed it.
    pub attempt: u32,
    /// A cancellation was asked for while it ran.
    pub cancel_requested: bool,
    /// Last start.
    pub started_ms: Option<i64>,
    /// End.
    pub ended_ms: Option<i64>,
    /// The result, once completed.
    pub result: Option<JobResult>,
    /// Why it failed or was cancelled.
    pub error: Option<JobError>,
}

impl JobState {
    /// A job waiting for its first run.
    pub fn queued() -> JobState {
        JobState {
            status: JobStatus::Queued,
            attempt: 0,
            cancel_requested: false,
            started_ms: None,
            ended_ms: None,
            result: None,
            error: None,
        }
    }
}

/// A stored job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    /// Its id.
    pub id: String,
    /// Its tenant.
    pub tenant: String,
    /// Insertion order: FIFO order and list cursor.
    pub seq: i64,
    /// Current status.
    pub status: JobStatus,
    /// What to run.
    pub spec: JobSpec,
    /// Times a worker has claimed it.
    pub attempt: u32,
    /// A cancellation was asked for while it ran.
    pub cancel_requested: bool,
    /// Unix milliseconds of acceptance, last start and end.
    pub created_ms: i64,
    /// Last start.
    pub started_ms: Option<i64>,
    /// End.
    pub ended_ms: Option<i64>,
    /// The result, once completed.
    pub result: Option<JobResult>,
    /// Why it failed or was cancelled.
    pub error: Option<JobError>,
}

/// What [`JobStore::insert`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Inserted {
    /// A new job.
    Created(JobRow),
    /// The idempotency key named this job already, with the same request.
    Existing(JobRow),
    /// The idempotency key was used with a different request.
    Conflict,
    /// [`NewJob::max_active`] was reached: the tenant has this many jobs
    /// queued or running.
    TooMany(u64),
}

/// How a running job ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// With a result.
    Completed(JobResult),
    /// With an error.
    Failed(JobError),
    /// Cancelled while running.
    Cancelled(JobError),
}

/// One write of a batch ([`JobStore::write_batch`]): every change a job's
/// life makes to the store.
#[derive(Clone, Debug)]
pub enum WriteOp {
    /// [`JobStore::insert`].
    Insert(Box<NewJob>),
    /// [`JobStore::claim`].
    Claim {
        /// The job.
        id: String,
        /// Unix milliseconds of the start.
        now_ms: i64,
    },
    /// [`JobStore::finish`].
    Finish {
        /// The job.
        id: String,
        /// The attempt that ran.
        attempt: u32,
        /// How it ended.
        outcome: Outcome,
        /// Unix milliseconds of the end.
        now_ms: i64,
    },
    /// [`JobStore::requeue`].
    Requeue {
        /// The job.
        id: String,
        /// The attempt that was stopped.
        attempt: u32,
    },
    /// [`JobStore::cancel_queued`].
    CancelQueued {
        /// The job.
        id: String,
        /// The error it ends with.
        error: JobError,
        /// Unix milliseconds of the end.
        now_ms: i64,
    },
    /// [`JobStore::request_cancel`].
    RequestCancel {
        /// The job.
        id: String,
    },
    /// Deletes at most `limit` jobs that ended before `before_ms`.
    Purge {
        /// The cut-off.
        before_ms: i64,
        /// Most rows deleted by this write.
        limit: u32,
    },
}

/// What one [`WriteOp`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Written {
    /// Of [`WriteOp::Insert`].
    Inserted(Box<Inserted>),
    /// Of [`WriteOp::Claim`]: the attempt number, or `None` if the job was
    /// no longer queued.
    Claimed(Option<u32>),
    /// Whether a conditional update changed the job.
    Changed(bool),
    /// Rows deleted.
    Deleted(u64),
}

/// A stored result's JSON text, in the buffer the store read it into
/// (SQLite's own, for [`SqliteStore`]) rather than copied: a response is
/// sent from it. Why not a `String`: a result can be tens of MB, and a copy
/// made on one thread and freed on another is one the global allocator may
/// keep counted as resident long after it is freed.
pub struct ResultText(Box<dyn AsRef<[u8]> + Send + Sync>);

impl ResultText {
    /// Text held by `owner`, which must be UTF-8 JSON.
    pub fn new(owner: impl AsRef<[u8]> + Send + Sync + 'static) -> ResultText {
        ResultText(Box::new(owner))
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl From<String> for ResultText {
    fn from(text: String) -> ResultText {
        ResultText::new(text)
    }
}

impl AsRef<[u8]> for ResultText {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for ResultText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResultText({} bytes)", self.as_bytes().len())
    }
}

/// A wake-up about a change in the store, from [`JobStore::events`]:
/// never the truth itself (whoever wakes re-reads the store), and lost
/// while a connection is down, which [`StoreEvent::Resync`] then says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// A job was queued (inserted, or returned to the queue): a node with
    /// room may claim it.
    Queued,
    /// Job `id` ended (completed, failed or cancelled).
    Ended(String),
    /// A cancellation was requested for running job `id`.
    CancelRequested(String),
    /// Events may have been missed (a listener reconnected, or fell
    /// behind): poll now.
    Resync,
}

/// What a node can take on now: the filter of [`JobStore::claim_next`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Bytes of state the node's free memory budget holds: a job whose
    /// `spec.memory_bytes` is larger is left to a bigger node.
    pub memory_bytes: u64,
    /// Only a job of a tenant with no job running in the store: the claim
    /// of a node whose regular workers are all busy, for its fair-share
    /// worker (so that one tenant's long jobs on every node never keep
    /// another tenant's job waiting for one of them to end).
    pub idle_tenants_only: bool,
}

/// A job with everything a copy to another store needs
/// ([`JobStore::export_jobs`], [`JobStore::import_jobs`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ExportedJob {
    /// The job, result included.
    pub row: JobRow,
    /// Its idempotency key and request hash.
    pub idempotency: Option<(String, String)>,
}

/// `value` as the JSON text a store keeps; a value that cannot be
/// serialised can never be stored.
pub(super) fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| ServiceError::Unstorable(e.to_string()))
}

/// A stored JSON value that no longer reads.
pub(super) fn json_err(what: &str, e: serde_json::Error) -> ServiceError {
    ServiceError::Store(format!("stored {what} is unreadable: {e}"))
}

impl NewJob {
    /// The row it is once stored under `seq`.
    pub(super) fn created_row(&self, seq: i64) -> JobRow {
        let state = self.state.clone();
        JobRow {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            seq,
            status: state.status,
            spec: self.spec.clone(),
            attempt: state.attempt,
            cancel_requested: state.cancel_requested,
            created_ms: self.created_ms,
            started_ms: state.started_ms,
            ended_ms: state.ended_ms,
            result: state.result,
            error: state.error,
        }
    }
}

impl Outcome {
    /// The status, result and error columns of a job that ends so.
    pub(super) fn columns(&self) -> StoreResult<(&'static str, Option<String>, Option<String>)> {
        Ok(match self {
            Outcome::Completed(r) => ("completed", Some(to_json(r)?), None),
            Outcome::Failed(e) => ("failed", None, Some(to_json(e)?)),
            Outcome::Cancelled(e) => ("cancelled", None, Some(to_json(e)?)),
        })
    }
}

/// `op` as a durable batch of one: what it did. The single-row writes of
/// [`JobStore`] are these, for every store.
pub(super) async fn write_one<S: JobStore + ?Sized>(
    store: &S,
    op: WriteOp,
) -> StoreResult<Written> {
    store
        .write_batch(std::slice::from_ref(&op), true)
        .await?
        .pop()
        .ok_or_else(|| ServiceError::Store("a write batch answered nothing".into()))
}

/// [`write_one`] of a conditional write: whether it changed the job.
async fn write_changed<S: JobStore + ?Sized>(store: &S, op: WriteOp) -> StoreResult<bool> {
    match write_one(store, op).await? {
        Written::Changed(b) => Ok(b),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(written: &Written) -> ServiceError {
    ServiceError::Store(format!("unexpected write result {written:?}"))
}

/// A stored API key (its secret only as a hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRow {
    /// Public id, also the key's prefix.
    pub id: String,
    /// The tenant it authenticates as.
    pub tenant: String,
    /// SHA-256 of the whole key.
    pub hash: Vec<u8>,
    /// Unix milliseconds of creation.
    pub created_ms: i64,
    /// Unix milliseconds of revocation.
    pub revoked_ms: Option<i64>,
}

/// The durable store of jobs and API keys.
///
/// Job writes go through [`write_batch`](Self::write_batch): the service's
/// single writer hands it every write pending at once, so that one commit
/// (one fsync) serves many jobs. The single-write methods are batches of
/// one, provided here for every store.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync + std::fmt::Debug {
    /// Applies `ops` in one transaction and commits it; what each did comes
    /// back in the order of `ops` (a conditional write that changed nothing
    /// is not an error). A store may reorder writes of different jobs, never
    /// those of one job. When `durable`, the commit has reached the disk when
    /// this returns (SQLite: the WAL is fsynced; a PostgreSQL store would
    /// commit with `synchronous_commit` on); otherwise it survives a crash
    /// of the process but perhaps not of the machine until the next durable
    /// commit, which makes it durable too. On `Err` (any op failed) nothing
    /// was committed.
    async fn write_batch(&self, ops: &[WriteOp], durable: bool) -> StoreResult<Vec<Written>>;
    /// Inserts a queued job, durably, unless its idempotency key is taken.
    async fn insert(&self, job: &NewJob) -> StoreResult<Inserted> {
        match write_one(self, WriteOp::Insert(Box::new(job.clone()))).await? {
            Written::Inserted(i) => Ok(*i),
            other => Err(unexpected(&other)),
        }
    }
    /// The job `tenant` submitted with idempotency key `key`, with the
    /// hash of that request.
    async fn find_idempotent(
        &self,
        tenant: &str,
        key: &str,
    ) -> StoreResult<Option<(JobRow, String)>>;
    /// The job `id`, whoever owns it.
    async fn get(&self, id: &str) -> StoreResult<Option<JobRow>>;
    /// `tenant`'s jobs, newest first, those with `seq < before` when given,
    /// without their results (`result` is `None`): a list carries
    /// summaries, and a page of large results would be hundreds of MB.
    async fn list(
        &self,
        tenant: &str,
        status: Option<JobStatus>,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<Vec<JobRow>>;
    /// The job `id`, whoever owns it, without its result (`result` is
    /// `None`): what a read needs to decide whether to load the result.
    async fn get_summary(&self, id: &str) -> StoreResult<Option<JobRow>>;
    /// The result of `tenant`'s job `id` as the JSON text it is stored as
    /// (a [`JobResult`] serialised); `None` when there is none.
    async fn result_text(&self, tenant: &str, id: &str) -> StoreResult<Option<ResultText>>;
    /// Marks a queued job running and counts the attempt; the attempt
    /// number, or `None` if the job is no longer queued.
    async fn claim(&self, id: &str, now_ms: i64) -> StoreResult<Option<u32>> {
        let op = WriteOp::Claim {
            id: id.to_owned(),
            now_ms,
        };
        match write_one(self, op).await? {
            Written::Claimed(a) => Ok(a),
            other => Err(unexpected(&other)),
        }
    }
    /// Ends a running job, only if it is still running under `attempt`;
    /// whether it did.
    async fn finish(
        &self,
        id: &str,
        attempt: u32,
        outcome: &Outcome,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let op = WriteOp::Finish {
            id: id.to_owned(),
            attempt,
            outcome: outcome.clone(),
            now_ms,
        };
        write_changed(self, op).await
    }
    /// Returns a running job to the queue (shutdown); whether it did.
    async fn requeue(&self, id: &str, attempt: u32) -> StoreResult<bool> {
        let op = WriteOp::Requeue {
            id: id.to_owned(),
            attempt,
        };
        write_changed(self, op).await
    }
    /// Cancels a job if it is queued; whether it did.
    async fn cancel_queued(&self, id: &str, error: &JobError, now_ms: i64) -> StoreResult<bool> {
        let op = WriteOp::CancelQueued {
            id: id.to_owned(),
            error: error.clone(),
            now_ms,
        };
        write_changed(self, op).await
    }
    /// Records that a running job should stop; whether it is running.
    async fn request_cancel(&self, id: &str) -> StoreResult<bool> {
        write_changed(self, WriteOp::RequestCancel { id: id.to_owned() }).await
    }
    /// After a crash: jobs left running return to the queue (or are
    /// cancelled, if that was asked); how many changed.
    async fn recover(&self, now_ms: i64) -> StoreResult<u64>;
    /// Every queued job, oldest first.
    async fn queued(&self) -> StoreResult<Vec<JobRow>>;
    /// Deletes jobs that ended before `before_ms`; how many.
    async fn purge(&self, before_ms: i64) -> StoreResult<u64>;
    /// Jobs per status.
    async fn count_by_status(&self) -> StoreResult<Vec<(JobStatus, u64)>>;
    /// Stores a new API key.
    async fn insert_key(&self, key: &ApiKeyRow) -> StoreResult<()>;
    /// The key with this id.
    async fn find_key(&self, id: &str) -> StoreResult<Option<ApiKeyRow>>;
    /// Every key, oldest first.
    async fn list_keys(&self) -> StoreResult<Vec<ApiKeyRow>>;
    /// Revokes a key; whether it was active.
    async fn revoke_key(&self, id: &str, now_ms: i64) -> StoreResult<bool>;
    /// Keys not revoked.
    async fn active_key_count(&self) -> StoreResult<u64>;
    /// Whether the store has ever held an API key, revoked ones included:
    /// once it has, authentication stays on.
    async fn keys_held(&self) -> StoreResult<bool> {
        Ok(!self.list_keys().await?.is_empty())
    }
    /// Makes a small write that reaches the store's files (not durably):
    /// whether the store can write now.
    async fn probe_write(&self) -> StoreResult<()> {
        Ok(())
    }

    // --- Several nodes on one store -------------------------------------

    /// Whether several services may share this store as nodes of one
    /// cluster. A service on a shared store keeps no queue of its own: it
    /// claims with [`claim_next`](Self::claim_next), and a job another node
    /// runs is read, waited for and cancelled through the store.
    fn shared(&self) -> bool;
    /// This handle's node id: the owner its claims record. Unique for each
    /// opened handle (two handles on one database are two nodes), so a
    /// node that restarts is a new owner.
    fn node_id(&self) -> &str;
    /// Claims, for this handle's node, in one atomic update: the first
    /// queued job whose `spec.memory_bytes` fits `capacity`, or a running
    /// job whose lease ended before `now_ms` (its node died or lost the
    /// database). It becomes running under attempt + 1, owned by this
    /// node, with its lease until `now_ms + lease_ms` and `started_ms =
    /// now_ms`. Order: the tenant with the fewest jobs running in the store
    /// first (fair sharing across the cluster), then higher priority, then
    /// `seq`; with [`Capacity::idle_tenants_only`], only tenants with none
    /// running. An expired job whose cancellation was requested is cancelled
    /// instead of claimed. Concurrent claims (any handles) never return
    /// the same job under the same attempt. The row comes without its
    /// result.
    async fn claim_next(
        &self,
        capacity: &Capacity,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Option<JobRow>>;
    /// Claims up to `jobs` jobs at once, in the order that many calls of
    /// [`claim_next`](Self::claim_next) one after another would take them,
    /// their states together within `capacity.memory_bytes`: fewer, or
    /// none, when the queue has fewer that fit (or, on a shared store,
    /// another node is claiming them at the same moment). The default makes
    /// those calls, each within what the earlier ones left; a store that
    /// claims them in one statement may stop at the first that does not fit
    /// beside the earlier ones.
    async fn claim_several(
        &self,
        capacity: &Capacity,
        jobs: usize,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<JobRow>> {
        let mut left = *capacity;
        let mut claimed = Vec::new();
        while claimed.len() < jobs {
            match self.claim_next(&left, now_ms, lease_ms).await {
                Ok(Some(row)) => {
                    left.memory_bytes = left.memory_bytes.saturating_sub(row.spec.memory_bytes);
                    claimed.push(row);
                }
                Ok(None) => break,
                // What was claimed is this node's now: its leases run.
                Err(_) if !claimed.is_empty() => break,
                Err(e) => return Err(e),
            }
        }
        Ok(claimed)
    }
    /// Extends to `now_ms + lease_ms` the leases of `jobs` (id, attempt)
    /// that are still running under that attempt and owned by this node;
    /// for each, in order, `Some(cancel_requested)` while held and `None`
    /// once lost (its lease ended and another node claimed it, or it was
    /// ended). A lost job's run must stop: its end would be refused.
    async fn renew_leases(
        &self,
        jobs: &[(String, u32)],
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<Option<bool>>>;
    /// Jobs of `tenant` queued or running, in the store.
    async fn active_count(&self, tenant: &str) -> StoreResult<u64>;
    /// Jobs per tenant and status: the cluster's queue depth.
    async fn count_by_tenant_status(&self) -> StoreResult<Vec<(String, JobStatus, u64)>>;
    /// Wake-ups about writes to the store, this node's and (for a shared
    /// store) every other node's.
    fn events(&self) -> tokio::sync::broadcast::Receiver<StoreEvent>;

    // --- Copying an installation -----------------------------------------

    /// Up to `limit` jobs with `seq > after_seq`, in `seq` order, results
    /// and idempotency keys included.
    async fn export_jobs(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<ExportedJob>>;
    /// Inserts copies of `jobs` (new `seq`s, same ids) in one transaction;
    /// a job that was running is stored queued (no node holds it here). A
    /// job whose id exists already is left as it is: a copy run twice adds
    /// nothing. How many were inserted.
    async fn import_jobs(&self, jobs: &[ExportedJob]) -> StoreResult<u64>;
    /// Every API key, revoked ones included, is copied with
    /// [`list_keys`](Self::list_keys) and this: inserts `key` unless its id
    /// exists; whether it did.
    async fn import_key(&self, key: &ApiKeyRow) -> StoreResult<bool>;
}
