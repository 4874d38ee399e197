//! The service over a store that fails on demand: writes that fail for a
//! while (a full disk) are retried until they go through, with no job left
//! `running` or `queued` and no restart; new submissions and cancellations
//! are turned down at once meanwhile, and readiness follows the store; a
//! result the store can never hold fails its job. Also how the
//! authentication mode is decided from the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::store::{
    ApiKeyRow, Capacity, ExportedJob, Inserted, JobRow, JobStore, NewJob, Outcome, ResultText,
    StoreEvent, StoreResult, WriteOp, Written,
};
use crate::*;

use crate::tests::{BELL, dense_program};

/// A job of about a second on one thread.
fn slowish_program() -> String {
    dense_program(16, 3000) + "creg c[1];\nmeasure q[0] -> c[0];\n"
}

fn request(source: &str) -> JobRequest {
    serde_json::from_value(serde_json::json!({
        "program": {"format": "qasm2", "source": source}, "seed": 3, "shots": 100,
        "result_types": ["counts"]
    }))
    .unwrap()
}

/// A [`SqliteStore`] whose writes fail while `full` is set (as
/// `SQLITE_FULL` would), and which refuses results for good while
/// `refuse_results` is set (as `SQLITE_TOOBIG` would).
/// While `hold_ends` is set, a batch that ends a job is committed and then
/// held, unacknowledged, with `holding` set: the moment between a job's end
/// reaching the store and its node hearing so.
#[derive(Debug)]
struct FaultyStore {
    inner: SqliteStore,
    full: AtomicBool,
    refuse_results: AtomicBool,
    hold_ends: AtomicBool,
    holding: AtomicBool,
}

impl FaultyStore {
    fn check(&self, ops: &[WriteOp]) -> StoreResult<()> {
        if self.full.load(Ordering::Relaxed) {
            return Err(ServiceError::Store(
                "database or disk is full (injected)".into(),
            ));
        }
        let has_result = |op: &WriteOp| match op {
            WriteOp::Finish { outcome, .. } => matches!(outcome, Outcome::Completed(_)),
            WriteOp::Insert(job) => job.state.result.is_some(),
            _ => false,
        };
        if self.refuse_results.load(Ordering::Relaxed) && ops.iter().any(has_result) {
            return Err(ServiceError::Unstorable(
                "string or blob too big (injected)".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl JobStore for FaultyStore {
    async fn write_batch(&self, ops: &[WriteOp], durable: bool) -> StoreResult<Vec<Written>> {
        self.check(ops)?;
        let written = self.inner.write_batch(ops, durable).await;
        let ends = |op: &WriteOp| match op {
            WriteOp::Finish { .. } => true,
            WriteOp::Insert(job) => job.state.status.is_terminal(),
            _ => false,
        };
        if ops.iter().any(ends) {
            while self.hold_ends.load(Ordering::Relaxed) {
                self.holding.store(true, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            self.holding.store(false, Ordering::Relaxed);
        }
        written
    }
    async fn insert(&self, job: &NewJob) -> StoreResult<Inserted> {
        self.check(&[])?;
        self.inner.insert(job).await
    }
    async fn find_idempotent(
        &self,
        tenant: &str,
        key: &str,
    ) -> StoreResult<Option<(JobRow, String)>> {
        self.inner.find_idempotent(tenant, key).await
    }
    async fn get(&self, id: &str) -> StoreResult<Option<JobRow>> {
        self.inner.get(id).await
    }
    async fn get_summary(&self, id: &str) -> StoreResult<Option<JobRow>> {
        self.inner.get_summary(id).await
    }
    async fn result_text(&self, tenant: &str, id: &str) -> StoreResult<Option<ResultText>> {
        self.inner.result_text(tenant, id).await
    }
    async fn list(
        &self,
        tenant: &str,
        status: Option<JobStatus>,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<Vec<JobRow>> {
        self.inner.list(tenant, status, limit, before).await
    }
    async fn claim(&self, id: &str, now_ms: i64) -> StoreResult<Option<u32>> {
        self.check(&[])?;
        self.inner.claim(id, now_ms).await
    }
    async fn finish(
        &self,
        id: &str,
        attempt: u32,
        outcome: &Outcome,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.check(&[])?;
        self.inner.finish(id, attempt, outcome, now_ms).await
    }
    async fn requeue(&self, id: &str, attempt: u32) -> StoreResult<bool> {
        self.check(&[])?;
        self.inner.requeue(id, attempt).await
    }
    async fn cancel_queued(&self, id: &str, error: &JobError, now_ms: i64) -> StoreResult<bool> {
        self.check(&[])?;
        self.inner.cancel_queued(id, error, now_ms).await
    }
    async fn request_cancel(&self, id: &str) -> StoreResult<bool> {
        self.check(&[])?;
        self.inner.request_cancel(id).await
    }
    async fn recover(&self, now_ms: i64) -> StoreResult<u64> {
        self.inner.recover(now_ms).await
    }
    async fn queued(&self) -> StoreResult<Vec<JobRow>> {
        self.inner.queued().await
    }
    async fn purge(&self, before_ms: i64) -> StoreResult<u64> {
        self.inner.purge(before_ms).await
    }
    async fn count_by_status(&self) -> StoreResult<Vec<(JobStatus, u64)>> {
        self.inner.count_by_status().await
    }
    async fn insert_key(&self, key: &ApiKeyRow) -> StoreResult<()> {
        self.inner.insert_key(key).await
    }
    async fn find_key(&self, id: &str) -> StoreResult<Option<ApiKeyRow>> {
        self.inner.find_key(id).await
    }
    async fn list_keys(&self) -> StoreResult<Vec<ApiKeyRow>> {
        self.inner.list_keys().await
    }
    async fn revoke_key(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        self.inner.revoke_key(id, now_ms).await
    }
    async fn active_key_count(&self) -> StoreResult<u64> {
        self.inner.active_key_count().await
    }
    async fn keys_held(&self) -> StoreResult<bool> {
        self.inner.keys_held().await
    }
    async fn probe_write(&self) -> StoreResult<()> {
        self.check(&[])?;
        self.inner.probe_write().await
    }
    fn shared(&self) -> bool {
        self.inner.shared()
    }
    fn node_id(&self) -> &str {
        self.inner.node_id()
    }
    async fn claim_next(
        &self,
        capacity: &Capacity,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Option<JobRow>> {
        self.check(&[])?;
        self.inner.claim_next(capacity, now_ms, lease_ms).await
    }
    async fn renew_leases(
        &self,
        jobs: &[(String, u32)],
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<Option<bool>>> {
        self.check(&[])?;
        self.inner.renew_leases(jobs, now_ms, lease_ms).await
    }
    async fn active_count(&self, tenant: &str) -> StoreResult<u64> {
        self.inner.active_count(tenant).await
    }
    async fn count_by_tenant_status(&self) -> StoreResult<Vec<(String, JobStatus, u64)>> {
        self.inner.count_by_tenant_status().await
    }
    fn events(&self) -> tokio::sync::broadcast::Receiver<StoreEvent> {
        self.inner.events()
    }
    async fn export_jobs(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<ExportedJob>> {
        self.inner.export_jobs(after_seq, limit).await
    }
    async fn import_jobs(&self, jobs: &[ExportedJob]) -> StoreResult<u64> {
        self.check(&[])?;
        self.inner.import_jobs(jobs).await
    }
    async fn import_key(&self, key: &ApiKeyRow) -> StoreResult<bool> {
        self.check(&[])?;
        self.inner.import_key(key).await
    }
}

/// A measured figure, shown with `--nocapture`.
#[allow(clippy::print_stderr)]
fn report(line: &str) {
    eprintln!("{line}");
}

async fn faulty_service(dir: &std::path::Path) -> (Service, Arc<FaultyStore>) {
    let store = Arc::new(FaultyStore {
        inner: SqliteStore::open(dir).await.unwrap(),
        full: AtomicBool::new(false),
        refuse_results: AtomicBool::new(false),
        hold_ends: AtomicBool::new(false),
        holding: AtomicBool::new(false),
    });
    let mut c = ServiceConfig::new(dir);
    c.workers = 1;
    c.sim_threads = 1;
    c.memory_budget = 1 << 30;
    let service = Service::start_with_store(c, store.clone()).await.unwrap();
    (service, store)
}

async fn status_of(service: &Service, id: &str) -> JobStatus {
    service
        .get("local", id, KeyFormat::Bitstring)
        .await
        .unwrap()
        .status
}

async fn until_status(
    service: &Service,
    id: &str,
    status: JobStatus,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    while status_of(service, id).await != status {
        assert!(
            start.elapsed() < within,
            "job {id} is not {status:?} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_end_is_stored_never_reads_as_running_again() {
    // Between the commit of a job's end and the moment its node hears of
    // it, another node may already have read the end from the store (the
    // cluster test saw it): this node must not show the job running then.
    let dir = tempfile::tempdir().unwrap();
    let (service, store) = faulty_service(dir.path()).await;
    store.hold_ends.store(true, Ordering::Relaxed);
    let id = service
        .submit("local", request(BELL), None)
        .await
        .unwrap()
        .job
        .id;
    let start = Instant::now();
    while !store.holding.load(Ordering::Relaxed) {
        assert!(start.elapsed() < Duration::from_secs(20), "no end written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stored = store.inner.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.status, JobStatus::Completed);
    let seen = service
        .get("local", &id, KeyFormat::Bitstring)
        .await
        .unwrap();
    assert_eq!(seen.status, JobStatus::Completed, "{seen:?}");
    assert!(seen.result.is_some());
    store.hold_ends.store(false, Ordering::Relaxed);
    until_status(&service, &id, JobStatus::Completed, Duration::from_secs(5)).await;
    service.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_fail_for_a_while_are_retried_until_the_store_takes_them() {
    let dir = tempfile::tempdir().unwrap();
    let (service, store) = faulty_service(dir.path()).await;
    assert!(service.ready().await);
    // One job running, one queued behind it (one worker).
    let running = service
        .submit("local", request(&slowish_program()), None)
        .await
        .unwrap()
        .job
        .id;
    let queued = service
        .submit("local", request(BELL), None)
        .await
        .unwrap()
        .job
        .id;
    until_status(
        &service,
        &running,
        JobStatus::Running,
        Duration::from_secs(20),
    )
    .await;
    store.full.store(true, Ordering::Relaxed);

    // New work is turned down at once; readiness says the store cannot write.
    let started = Instant::now();
    let refused = service.submit("local", request(BELL), None).await;
    assert!(
        matches!(refused, Err(ServiceError::Store(_))),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a submission fails fast"
    );
    assert!(!service.ready().await);
    // The running job ends meanwhile; its end cannot be written, so it
    // still reads running, and the writer is now retrying.
    let deadline = Instant::now() + Duration::from_secs(30);
    while service.inner_writer_healthy() {
        assert!(Instant::now() < deadline, "the job's end was never tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status_of(&service, &running).await, JobStatus::Running);
    let started = Instant::now();
    let refused = service
        .submit_and_wait(
            "local",
            request(BELL),
            None,
            Duration::from_secs(5),
            KeyFormat::Bitstring,
        )
        .await;
    assert!(
        matches!(refused, Err(ServiceError::Store(_))),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a submission fails fast while a write is retried"
    );
    let cancel = service.cancel("local", &queued).await;
    assert!(matches!(cancel, Err(ServiceError::Store(_))), "{cancel:?}");
    assert!(!service.ready().await);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Space returns: everything goes through without a restart.
    store.full.store(false, Ordering::Relaxed);
    let back = Instant::now();
    let ended = until_status(
        &service,
        &running,
        JobStatus::Completed,
        Duration::from_secs(10),
    )
    .await;
    until_status(
        &service,
        &queued,
        JobStatus::Completed,
        Duration::from_secs(20),
    )
    .await;
    assert!(service.ready().await);
    let ready_after = back.elapsed();
    for id in [&running, &queued] {
        let row = store.inner.get(id).await.unwrap().unwrap();
        assert_eq!(row.status, JobStatus::Completed, "stored: {row:?}");
        assert_eq!(row.attempt, 1);
    }
    assert!(store.inner.queued().await.unwrap().is_empty());
    assert_eq!(service.inner_depth(), (0, 0));
    // And new work is taken again.
    let after = service.submit("local", request(BELL), None).await.unwrap();
    let done = service
        .wait(
            "local",
            &after.job.id,
            Duration::from_secs(20),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    // A queued job is cancelled for real once the store writes again.
    let slow = service
        .submit("local", request(&slowish_program()), None)
        .await
        .unwrap()
        .job
        .id;
    let behind = service
        .submit("local", request(BELL), None)
        .await
        .unwrap()
        .job
        .id;
    let view = service.cancel("local", &behind).await.unwrap();
    assert_eq!(view.status, JobStatus::Cancelled);
    let row = store.inner.get(&behind).await.unwrap().unwrap();
    assert_eq!(row.status, JobStatus::Cancelled);
    service.cancel("local", &slow).await.unwrap();
    report(&format!(
        "store fault injection: the running job's end was recorded {:.2} s after the store \
         could write again; ready again within {:.2} s",
        ended.as_secs_f64(),
        ready_after.as_secs_f64()
    ));
    service.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_the_store_can_never_hold_fails_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let (service, store) = faulty_service(dir.path()).await;
    store.refuse_results.store(true, Ordering::Relaxed);
    // Stored first, ended later (a claim and an end).
    let id = service
        .submit("local", request(BELL), None)
        .await
        .unwrap()
        .job
        .id;
    let done = service
        .wait("local", &id, Duration::from_secs(20), KeyFormat::Bitstring)
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Failed, "{done:?}");
    assert_eq!(done.error.unwrap().code, "result-not-stored");
    let row = store.inner.get(&id).await.unwrap().unwrap();
    assert_eq!(row.status, JobStatus::Failed);
    // Stored only at its end (a submission that waits).
    let waited = service
        .submit_and_wait(
            "local",
            request(BELL),
            None,
            Duration::from_secs(20),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    assert_eq!(waited.job.status, JobStatus::Failed, "{:?}", waited.job);
    let row = store.inner.get(&waited.job.id).await.unwrap().unwrap();
    assert_eq!(row.error.unwrap().code, "result-not-stored");
    assert!(service.ready().await);
    service.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn the_mode_is_local_only_by_choice_or_for_a_store_that_never_held_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let decide = async |mode| keys::decide_auth(mode, &store).await.unwrap();
    let fresh = decide(AuthMode::Auto).await;
    assert!(
        fresh.local && fresh.reason.contains("never held"),
        "{fresh:?}"
    );
    assert!(!decide(AuthMode::Keys).await.local);
    let key = keys::create_key(&store, "team").await.unwrap();
    let keyed = decide(AuthMode::Auto).await;
    assert!(!keyed.local, "{keyed:?}");
    assert!(keys::revoke_key(&store, &key.id).await.unwrap());
    let revoked = decide(AuthMode::Auto).await;
    assert!(!revoked.local, "revoking the last key keeps keys on");
    assert!(revoked.reason.contains("401"), "{revoked:?}");
    let local = decide(AuthMode::Local).await;
    assert!(local.local && local.reason.contains("--local"), "{local:?}");
    drop(store);

    // A service on that store: every request 401, until a key is created
    // (no restart).
    let mut c = ServiceConfig::new(dir.path());
    c.workers = 1;
    let service = Service::start(c).await.unwrap();
    assert!(!service.local_mode());
    assert!(matches!(
        service.authenticate(None).await,
        Err(ServiceError::Unauthorized(_))
    ));
    let new = keys::create_key(service.store().as_ref(), "team")
        .await
        .unwrap();
    assert_eq!(service.authenticate(Some(&new.key)).await.unwrap(), "team");
    service.shutdown(Duration::ZERO).await;
}
