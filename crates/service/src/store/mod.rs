//! The durable job store: the [`JobStore`] boundary and its rows. Every
//! state change a job goes through is one conditional write here, so the
//! store alone decides what happened (a job completes at most once even if
//! two workers raced); the scheduler's in-memory view is rebuilt from it at
//! start. [`SqliteStore`] is the embedded implementation; a PostgreSQL one
//! for several nodes sharing one queue fits the same trait (claims would add
//! `FOR UPDATE SKIP LOCKED` and leases).

mod folder;
mod sqlite;

pub use folder::DataDirLock;
pub use sqlite::SqliteStore;

use crate::error::ServiceError;
use crate::model::{JobError, JobResult, JobSpec, JobStatus};

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
/// one.
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
    async fn insert(&self, job: &NewJob) -> StoreResult<Inserted>;
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
    async fn claim(&self, id: &str, now_ms: i64) -> StoreResult<Option<u32>>;
    /// Ends a running job, only if it is still running under `attempt`;
    /// whether it did.
    async fn finish(
        &self,
        id: &str,
        attempt: u32,
        outcome: &Outcome,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Returns a running job to the queue (shutdown); whether it did.
    async fn requeue(&self, id: &str, attempt: u32) -> StoreResult<bool>;
    /// Cancels a job if it is queued; whether it did.
    async fn cancel_queued(&self, id: &str, error: &JobError, now_ms: i64) -> StoreResult<bool>;
    /// Records that a running job should stop; whether it is running.
    async fn request_cancel(&self, id: &str) -> StoreResult<bool>;
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
}
