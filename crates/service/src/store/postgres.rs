//! [`PgStore`]: the job store shared by every node of a cluster, one
//! PostgreSQL database through sqlx.
//!
//! The database is the only truth. A node claims work with
//! [`JobStore::claim_next`], one `UPDATE … WHERE seq = (SELECT … FOR UPDATE
//! SKIP LOCKED LIMIT 1)`, so two nodes never take the same row, under a
//! lease its heartbeat renews; every end and requeue is conditional on the
//! status, the attempt and the owner (the claiming handle's node id), so a
//! node that lost a job can no longer write its end. A tenant's active-job
//! limit is counted under a transaction-scoped advisory lock on the tenant,
//! so two nodes cannot both admit the last job.
//!
//! Events: writes send `pg_notify('kettle_jobs', …)` in their own
//! transaction (so a notification goes out only if the write commits); a
//! listener task re-broadcasts them as [`StoreEvent`]s, and after it
//! reconnects (notifications sent meanwhile are lost) it sends
//! [`StoreEvent::Resync`].
//!
//! Failures: every error of an unreachable database is
//! [`ServiceError::Store`], which callers retry and the server answers with
//! 503 and `Retry-After`; only a write the database can never take (a data
//! or constraint error) is [`ServiceError::Unstorable`]. The pool
//! reconnects by itself, and gives up acquiring after five seconds so that
//! requests fail fast while the database is away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};

use super::{
    ApiKeyRow, Capacity, ExportedJob, Inserted, JobRow, JobStore, NewJob, ResultText, StoreEvent,
    StoreResult, WriteOp, Written, check_schema_version, events_of, json_err, migrate_error,
    migrator, to_json,
};
use crate::error::ServiceError;
use crate::model::{JobError, JobStatus};

/// The schema's migrations, compiled in.
const MIGRATIONS: &[super::Embedded] = &[(
    1,
    "jobs",
    include_str!("../../migrations/postgres/0001_jobs.sql"),
)];

/// The notification channel of job events.
const CHANNEL: &str = "kettle_jobs";

/// Events kept for a slow receiver before it reads `Lagged`.
const EVENT_BUFFER: usize = 1024;

/// Columns of a job row, in the order [`job_row`] reads them.
const JOB_COLUMNS: &str = "seq, id, tenant, status, spec, attempt, cancel_requested, \
     created_ms, started_ms, ended_ms, result, error";

/// [`JOB_COLUMNS`] with the result left out.
const SUMMARY_COLUMNS: &str = "seq, id, tenant, status, spec, attempt, cancel_requested, \
     created_ms, started_ms, ended_ms, NULL::text AS result, error";

/// The PostgreSQL job store: a pool of connections, and a listener task
/// that turns notifications into [`StoreEvent`]s (stopped when the store
/// is dropped).
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    node_id: Arc<str>,
    events: tokio::sync::broadcast::Sender<StoreEvent>,
    listener: AbortOnDrop,
}

/// The listener task, stopped with its store.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// sqlx's error as the service's: a database error of class 22 (data) or
/// 23 (constraint), or a program limit, will fail again however often it
/// is retried; anything else (a lost connection, a pool timeout, a
/// shutdown, a serialization failure) may pass later.
fn pg(e: sqlx::Error) -> ServiceError {
    let permanent = e
        .as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code.starts_with("22") || code.starts_with("23") || code == "54000");
    if permanent {
        ServiceError::Unstorable(e.to_string())
    } else {
        ServiceError::Store(format!("PostgreSQL: {e}"))
    }
}

/// `.pg()`: [`pg`] on a result.
trait PgResult<T> {
    fn pg(self) -> StoreResult<T>;
}

impl<T> PgResult<T> for Result<T, sqlx::Error> {
    fn pg(self) -> StoreResult<T> {
        self.map_err(pg)
    }
}

fn job_row(row: &PgRow) -> StoreResult<JobRow> {
    let status: String = row.try_get("status").pg()?;
    let spec: String = row.try_get("spec").pg()?;
    let result: Option<String> = row.try_get("result").pg()?;
    let error: Option<String> = row.try_get("error").pg()?;
    Ok(JobRow {
        seq: row.try_get("seq").pg()?,
        id: row.try_get("id").pg()?,
        tenant: row.try_get("tenant").pg()?,
        status: JobStatus::parse(&status)
            .ok_or_else(|| ServiceError::Store(format!("unknown stored status `{status}`")))?,
        spec: serde_json::from_str(&spec).map_err(|e| json_err("spec", e))?,
        attempt: u32::try_from(row.try_get::<i32, _>("attempt").pg()?).unwrap_or(0),
        cancel_requested: row.try_get("cancel_requested").pg()?,
        created_ms: row.try_get("created_ms").pg()?,
        started_ms: row.try_get("started_ms").pg()?,
        ended_ms: row.try_get("ended_ms").pg()?,
        result: result
            .map(|r| serde_json::from_str(&r).map_err(|e| json_err("result", e)))
            .transpose()?,
        error: error
            .map(|r| serde_json::from_str(&r).map_err(|e| json_err("error", e)))
            .transpose()?,
    })
}

fn key_row(row: &PgRow) -> StoreResult<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: row.try_get("id").pg()?,
        tenant: row.try_get("tenant").pg()?,
        hash: row.try_get("hash").pg()?,
        created_ms: row.try_get("created_ms").pg()?,
        revoked_ms: row.try_get("revoked_ms").pg()?,
    })
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn attempt(a: u32) -> i32 {
    i32::try_from(a).unwrap_or(i32::MAX)
}

/// SQL text built from constant pieces only (column lists), never from input.
fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

/// An event as its notification payload.
fn payload(event: &StoreEvent) -> Option<String> {
    match event {
        StoreEvent::Queued => Some("queued".into()),
        StoreEvent::Ended(id) => Some(format!("ended:{id}")),
        StoreEvent::CancelRequested(id) => Some(format!("cancel:{id}")),
        StoreEvent::Resync => None,
    }
}

/// A notification payload as its event.
fn event(payload: &str) -> Option<StoreEvent> {
    if payload == "queued" {
        return Some(StoreEvent::Queued);
    }
    if let Some(id) = payload.strip_prefix("ended:") {
        return Some(StoreEvent::Ended(id.to_owned()));
    }
    payload
        .strip_prefix("cancel:")
        .map(|id| StoreEvent::CancelRequested(id.to_owned()))
}

/// Sends `events` as notifications, in the transaction on `conn`: they go
/// out when it commits, not at all if it does not.
async fn notify(conn: &mut PgConnection, events: &[StoreEvent]) -> StoreResult<()> {
    let payloads: Vec<String> = events.iter().filter_map(payload).collect();
    if payloads.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
        .bind(CHANNEL)
        .bind(payloads)
        .execute(&mut *conn)
        .await
        .pg()?;
    Ok(())
}

/// The error of a job whose node stopped while it ran and whose
/// cancellation had been asked for.
fn cancelled_while_running() -> JobError {
    JobError {
        code: "cancelled".into(),
        message: "cancelled while running; its node stopped before it ended".into(),
    }
}

/// Re-broadcasts the store's notifications until the store is dropped
/// (which aborts this task) or its pool closed. A lost connection is
/// replaced, after a pause that grows to two seconds while the database is
/// away, and the reconnection is announced with [`StoreEvent::Resync`].
async fn listen(
    pool: PgPool,
    events: tokio::sync::broadcast::Sender<StoreEvent>,
    listening: tokio::sync::oneshot::Sender<()>,
) {
    let mut listening = Some(listening);
    let mut pause = Duration::from_millis(100);
    let mut first = true;
    while !pool.is_closed() {
        let listener = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // Reconnecting is this loop's business, so that it knows when.
            listener.eager_reconnect(false);
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let mut listener = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!("store events: cannot listen ({e}); retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        pause = Duration::from_millis(100);
        if !first {
            let _ = events.send(StoreEvent::Resync);
        }
        first = false;
        if let Some(listening) = listening.take() {
            let _ = listening.send(());
        }
        // Until the connection is lost (`None`) or fails.
        while let Ok(Some(note)) = listener.try_recv().await {
            if let Some(e) = event(note.payload()) {
                let _ = events.send(e);
            }
        }
        tracing::debug!("store events: the listening connection was lost");
    }
}

impl PgStore {
    /// Connects to the database at `url`, brings its schema up to date
    /// (several nodes starting at once migrate one at a time: sqlx's
    /// migrator holds an advisory lock), and starts listening for events.
    ///
    /// # Errors
    /// The database cannot be reached, or its schema is newer than this
    /// build knows, or a migration fails.
    pub async fn connect(url: &str) -> StoreResult<PgStore> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| ServiceError::Store(format!("invalid PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(0)
            // Fail fast while the database is away: the caller answers 503.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .pg()?;
        migrate(&pool).await?;
        Ok(PgStore::with_pool(pool).await)
    }

    /// A handle on `pool`'s database, listening for events when it
    /// returns: a write made after it is seen by [`JobStore::events`]
    /// (unless the database is away, after which the listener says
    /// [`StoreEvent::Resync`]).
    async fn with_pool(pool: PgPool) -> PgStore {
        let events = tokio::sync::broadcast::channel(EVENT_BUFFER).0;
        let (listening, started) = tokio::sync::oneshot::channel();
        let listener = AbortOnDrop(tokio::spawn(listen(
            pool.clone(),
            events.clone(),
            listening,
        )));
        // Bounded: a database that went away just now delays nothing
        // longer than a pool acquisition would.
        let _ = tokio::time::timeout(Duration::from_secs(5), started).await;
        PgStore {
            pool,
            node_id: uuid::Uuid::now_v7().to_string().into(),
            events,
            listener,
        }
    }

    /// Another handle on the same database: another node (its own node id
    /// and listener), sharing this one's connections.
    pub async fn another_node(&self) -> PgStore {
        PgStore::with_pool(self.pool.clone()).await
    }
}

/// Brings the schema up to date, refusing one newer than this build's.
async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let mut conn = pool.acquire().await.pg()?;
    let tracked: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .pg()?;
    if tracked {
        let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&mut *conn)
            .await
            .pg()?;
        check_schema_version(applied.unwrap_or(0), MIGRATIONS)?;
    }
    migrator(MIGRATIONS)
        .run(&mut *conn)
        .await
        .map_err(migrate_error)
}

impl PgStore {
    /// Closes every connection and stops the listener.
    pub async fn close(self) {
        self.listener.0.abort();
        self.pool.close().await;
    }

    /// The store's id (random, set when its schema was created).
    ///
    /// # Errors
    /// A store failure.
    pub async fn store_id(&self) -> StoreResult<String> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'store_id'")
            .fetch_optional(&self.pool)
            .await
            .pg()?
            .ok_or_else(|| ServiceError::Store("the store has no id".into()))
    }

    /// Checks the jobs' invariants (an ended job has its end time and its
    /// result or error; a queued job has neither; a leased job is running
    /// and owned). Returns what is wrong, nothing when the store is sound.
    ///
    /// # Errors
    /// The checks could not run.
    pub async fn integrity_check(&self) -> StoreResult<Vec<String>> {
        let invariants = [
            (
                "completed without a result or end time",
                "status = 'completed' AND (result IS NULL OR ended_ms IS NULL)",
            ),
            (
                "failed without an error or end time",
                "status = 'failed' AND (error IS NULL OR ended_ms IS NULL)",
            ),
            (
                "cancelled without an end time",
                "status = 'cancelled' AND ended_ms IS NULL",
            ),
            (
                "queued with a result, an error or an end time",
                "status = 'queued' AND (result IS NOT NULL OR error IS NOT NULL OR ended_ms IS NOT NULL)",
            ),
            (
                "leased but not running or without an owner",
                "lease_until_ms IS NOT NULL AND (status <> 'running' OR owner IS NULL)",
            ),
            (
                "in an unknown status",
                "status NOT IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
            ),
        ];
        let mut problems = Vec::new();
        for (what, condition) in invariants {
            let ids: Vec<String> = sqlx::query_scalar(sql(format!(
                "SELECT id FROM jobs WHERE {condition} ORDER BY seq LIMIT 10"
            )))
            .fetch_all(&self.pool)
            .await
            .pg()?;
            if !ids.is_empty() {
                problems.push(format!("jobs {what}: {}", ids.join(", ")));
            }
        }
        Ok(problems)
    }
}

async fn find_idempotent_row(
    conn: &mut PgConnection,
    tenant: &str,
    key: &str,
) -> StoreResult<Option<(JobRow, String)>> {
    let row = sqlx::query(sql(format!(
        "SELECT {JOB_COLUMNS}, request_hash FROM jobs WHERE tenant = $1 AND idempotency_key = $2"
    )))
    .bind(tenant)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .pg()?;
    row.map(|r| {
        Ok((
            job_row(&r)?,
            r.try_get::<Option<String>, _>("request_hash")
                .pg()?
                .unwrap_or_default(),
        ))
    })
    .transpose()
}

/// A job whose idempotency key is taken: the job holding it, if the
/// request was the same.
async fn replay(conn: &mut PgConnection, job: &NewJob) -> StoreResult<Option<Inserted>> {
    let Some((key, hash)) = &job.idempotency else {
        return Ok(None);
    };
    Ok(find_idempotent_row(conn, &job.tenant, key)
        .await?
        .map(|(row, stored)| {
            if &stored == hash {
                Inserted::Existing(row)
            } else {
                Inserted::Conflict
            }
        }))
}

/// Takes the advisory lock of every tenant whose insert in `ops` counts
/// its active jobs, all at once and in one order (by lock key), before the
/// inserts: every node's insert for such a tenant then waits until the one
/// before it commits, so its count includes it. Taken one by one as the
/// batch reached each insert, two batches holding two tenants in opposite
/// orders would deadlock (seen with 8 tenants and 3 nodes: PostgreSQL
/// aborted one batch a second later, and its submissions failed).
async fn lock_limited_tenants(conn: &mut PgConnection, ops: &[WriteOp]) -> StoreResult<()> {
    let mut tenants: Vec<&str> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Insert(job) if job.max_active.is_some() => Some(job.tenant.as_str()),
            _ => None,
        })
        .collect();
    if tenants.is_empty() {
        return Ok(());
    }
    tenants.sort_unstable();
    tenants.dedup();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k) FROM \
         (SELECT DISTINCT hashtext(t) AS k FROM unnest($1::text[]) AS t) AS keys ORDER BY k",
    )
    .bind(&tenants)
    .execute(&mut *conn)
    .await
    .pg()?;
    Ok(())
}

/// Decides which of `inserts` fit their tenant's limit of active jobs
/// (the tenants' locks are held: `lock_limited_tenants`), with one count
/// for all the batch's limited tenants, then inserts those in one
/// statement. A retry of an accepted job is answered, not turned down.
async fn insert_all(
    conn: &mut PgConnection,
    inserts: &[(usize, &NewJob)],
    owner: &str,
) -> StoreResult<Vec<(usize, Inserted)>> {
    let mut limited: Vec<&str> = inserts
        .iter()
        .filter(|(_, job)| job.max_active.is_some())
        .map(|(_, job)| job.tenant.as_str())
        .collect();
    limited.sort_unstable();
    limited.dedup();
    let mut active: HashMap<String, u64> = HashMap::new();
    if !limited.is_empty() {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT tenant, COUNT(*) FROM jobs WHERE tenant = ANY($1) \
             AND status IN ('queued', 'running') GROUP BY tenant",
        )
        .bind(&limited)
        .fetch_all(&mut *conn)
        .await
        .pg()?;
        active.extend(rows.into_iter().map(|(t, n)| (t, count(n))));
    }
    let mut out = Vec::with_capacity(inserts.len());
    let mut fits = Vec::with_capacity(inserts.len());
    // A key seen earlier in this batch: that job is counted already.
    let mut keys_seen = std::collections::HashSet::new();
    for &(i, job) in inserts {
        // A second job with a key seen earlier in this batch is that job's
        // replay (the insert finds its row): it adds nothing to count.
        let counted = job
            .idempotency
            .as_ref()
            .is_none_or(|(key, _)| keys_seen.insert((job.tenant.as_str(), key.as_str())));
        if let Some(limit) = job.max_active {
            if let Some(replayed) = replay(conn, job).await? {
                out.push((i, replayed));
                continue;
            }
            let n = active.get(job.tenant.as_str()).copied().unwrap_or(0);
            if counted && n >= u64::from(limit) {
                out.push((i, Inserted::TooMany(n)));
                continue;
            }
        }
        if counted && (job.max_active.is_some() || active.contains_key(job.tenant.as_str())) {
            *active.entry(job.tenant.clone()).or_insert(0) += 1;
        }
        fits.push((i, job));
    }
    out.extend(insert_bulk(conn, &fits, owner).await?);
    out.sort_unstable_by_key(|(i, _)| *i);
    Ok(out)
}

/// Applies `ops`; what each did, in the order of `ops`. As in the SQLite
/// store, the writes every job makes are set-based, one statement for
/// many jobs (a round trip to the database costs more than the rows):
/// inserts (with one count of the limited tenants' active jobs), and ends.
/// Order: the writes to jobs older than the batch (ends, then the rare
/// writes in the order given), inserts (under the tenants' locks), claims,
/// then the ends and rare writes of the batch's own jobs: each job's own
/// writes keep its life's order.
async fn apply_all(
    conn: &mut PgConnection,
    ops: &[WriteOp],
    owner: &str,
) -> StoreResult<Vec<Written>> {
    let mut out: Vec<Option<Written>> = ops.iter().map(|_| None).collect();
    let inserts: Vec<(usize, &NewJob)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            WriteOp::Insert(job) => Some((i, &**job)),
            _ => None,
        })
        .collect();
    // The writes to jobs this batch neither inserts nor claims come first,
    // before the tenants' locks are taken: other nodes' inserts wait for
    // those locks only as long as the inserts take, and a batch holding
    // them never waits for a row another batch holds (which could be
    // waiting for those locks: a deadlock).
    let born_here: std::collections::HashSet<&str> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Insert(job) => Some(job.id.as_str()),
            WriteOp::Claim { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let early = |op: &WriteOp| match op {
        WriteOp::Insert(_) | WriteOp::Claim { .. } => false,
        WriteOp::Finish { id, .. }
        | WriteOp::Requeue { id, .. }
        | WriteOp::CancelQueued { id, .. }
        | WriteOp::RequestCancel { id } => !born_here.contains(id.as_str()),
        WriteOp::Purge { .. } => true,
    };
    let ends = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op, WriteOp::Finish { .. }));
    let (early_ends, late_ends): (Vec<_>, Vec<_>) = ends.partition(|(_, op)| early(op));
    end_all(conn, &early_ends, owner, &mut out).await?;
    for (i, op) in ops.iter().enumerate() {
        if out[i].is_none() && !matches!(op, WriteOp::Finish { .. }) && early(op) {
            out[i] = Some(apply(conn, op, owner).await?);
        }
    }
    if !inserts.is_empty() {
        lock_limited_tenants(conn, ops).await?;
        for (i, inserted) in insert_all(conn, &inserts, owner).await? {
            out[i] = Some(Written::Inserted(Box::new(inserted)));
        }
    }
    for (i, op) in ops.iter().enumerate() {
        if let WriteOp::Claim { .. } = op {
            out[i] = Some(apply(conn, op, owner).await?);
        }
    }
    end_all(conn, &late_ends, owner, &mut out).await?;
    for (i, op) in ops.iter().enumerate() {
        if out[i].is_none() {
            out[i] = Some(apply(conn, op, owner).await?);
        }
    }
    out.into_iter()
        .map(|w| w.ok_or_else(|| ServiceError::Store("a write was not applied".into())))
        .collect()
}

/// Inserts `jobs` in one statement, in their order; one whose idempotency
/// key is taken is answered as a replay.
async fn insert_bulk(
    conn: &mut PgConnection,
    jobs: &[(usize, &NewJob)],
    owner: &str,
) -> StoreResult<Vec<(usize, Inserted)>> {
    let n = jobs.len();
    let mut ids = Vec::with_capacity(n);
    let mut tenants = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut memory = Vec::with_capacity(n);
    let mut specs = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut cancels = Vec::with_capacity(n);
    let mut owners = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut ended = Vec::with_capacity(n);
    let mut results = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    let mut leases = Vec::with_capacity(n);
    for &(_, job) in jobs {
        let state = &job.state;
        ids.push(job.id.as_str());
        tenants.push(job.tenant.as_str());
        statuses.push(state.status.as_str());
        priorities.push(job.spec.priority);
        memory.push(i64::try_from(job.spec.memory_bytes).unwrap_or(i64::MAX));
        specs.push(to_json(&job.spec)?);
        attempts.push(attempt(state.attempt));
        cancels.push(state.cancel_requested);
        owners.push((state.status == JobStatus::Running).then_some(owner));
        created.push(job.created_ms);
        started.push(state.started_ms);
        ended.push(state.ended_ms);
        results.push(state.result.as_ref().map(to_json).transpose()?);
        errors.push(state.error.as_ref().map(to_json).transpose()?);
        keys.push(job.idempotency.as_ref().map(|(k, _)| k.as_str()));
        hashes.push(job.idempotency.as_ref().map(|(_, h)| h.as_str()));
        leases.push(
            job.lease_until_ms
                .filter(|_| state.status == JobStatus::Running),
        );
    }
    // ORDER BY the ordinality: seqs follow the batch's order. The unique
    // index turns down a taken key, even one taken earlier in this batch.
    let rows = sqlx::query(
        "INSERT INTO jobs (id, tenant, status, priority, memory_bytes, spec, attempt, \
         cancel_requested, owner, created_ms, started_ms, ended_ms, result, error, \
         idempotency_key, request_hash, lease_until_ms) \
         SELECT id, tenant, status, priority, memory_bytes, spec, attempt, cancel_requested, \
         owner, created_ms, started_ms, ended_ms, result, error, idempotency_key, request_hash, \
         lease_until_ms \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::text[], \
         $7::int[], $8::bool[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], \
         $13::text[], $14::text[], $15::text[], $16::text[], $17::bigint[]) WITH ORDINALITY \
         AS u (id, tenant, status, priority, memory_bytes, spec, attempt, cancel_requested, \
         owner, created_ms, started_ms, ended_ms, result, error, idempotency_key, request_hash, \
         lease_until_ms, ord) ORDER BY ord \
         ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING id, seq",
    )
    .bind(ids)
    .bind(tenants)
    .bind(statuses)
    .bind(priorities)
    .bind(memory)
    .bind(specs)
    .bind(attempts)
    .bind(cancels)
    .bind(owners)
    .bind(created)
    .bind(started)
    .bind(ended)
    .bind(results)
    .bind(errors)
    .bind(keys)
    .bind(hashes)
    .bind(leases)
    .fetch_all(&mut *conn)
    .await
    .pg()?;
    let mut seqs = HashMap::with_capacity(rows.len());
    for r in rows {
        seqs.insert(
            r.try_get::<String, _>(0).pg()?,
            r.try_get::<i64, _>(1).pg()?,
        );
    }
    let mut out = Vec::with_capacity(n);
    for &(i, job) in jobs {
        let inserted = match seqs.get(&job.id) {
            Some(&seq) => Inserted::Created(job.created_row(seq)),
            None => replay(conn, job).await?.ok_or_else(|| {
                ServiceError::Store("an idempotency key conflicted with no row".into())
            })?,
        };
        out.push((i, inserted));
    }
    Ok(out)
}

/// Ends the jobs of `ends` ([`end_bulk`]) and records what each did in
/// `out`.
async fn end_all(
    conn: &mut PgConnection,
    ends: &[(usize, &WriteOp)],
    owner: &str,
    out: &mut [Option<Written>],
) -> StoreResult<()> {
    if ends.is_empty() {
        return Ok(());
    }
    let ended = end_bulk(conn, ends, owner).await?;
    for &(i, op) in ends {
        if let WriteOp::Finish { id, attempt: a, .. } = op {
            out[i] = Some(Written::Changed(ended.contains(&(id.clone(), attempt(*a)))));
        }
    }
    Ok(())
}

/// Ends the running jobs of `ends` (each a [`WriteOp::Finish`]) in one
/// statement, each only if still running under its attempt and owned by
/// this node; the (id, attempt) of those ended.
async fn end_bulk(
    conn: &mut PgConnection,
    ends: &[(usize, &WriteOp)],
    owner: &str,
) -> StoreResult<std::collections::HashSet<(String, i32)>> {
    let n = ends.len();
    let mut ids = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut results = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    for &(_, op) in ends {
        let WriteOp::Finish {
            id,
            attempt: a,
            outcome,
            now_ms,
        } = op
        else {
            continue;
        };
        let (status, result, error) = outcome.columns()?;
        ids.push(id.as_str());
        attempts.push(attempt(*a));
        statuses.push(status);
        results.push(result);
        errors.push(error);
        times.push(*now_ms);
    }
    // The status, attempt and owner guard make an end happen once: a node
    // that lost its claim changes nothing. (`id = ANY`: the rows are found
    // by their index, however many jobs run.)
    let rows = sqlx::query(
        "UPDATE jobs SET status = e.status, result = e.result, error = e.error, \
         ended_ms = e.now_ms, lease_until_ms = NULL \
         FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::bigint[]) \
         AS e (id, attempt, status, result, error, now_ms) \
         WHERE jobs.id = ANY($1) AND jobs.id = e.id AND jobs.status = 'running' \
         AND jobs.attempt = e.attempt AND jobs.owner = $7 RETURNING jobs.id, jobs.attempt",
    )
    .bind(ids)
    .bind(attempts)
    .bind(statuses)
    .bind(results)
    .bind(errors)
    .bind(times)
    .bind(owner)
    .fetch_all(&mut *conn)
    .await
    .pg()?;
    rows.iter()
        .map(|r| Ok((r.try_get(0).pg()?, r.try_get(1).pg()?)))
        .collect()
}

/// One claim or one of the rare writes, in the batch's transaction on
/// `conn` (inserts and ends are [`apply_all`]'s, set-based).
async fn apply(conn: &mut PgConnection, op: &WriteOp, owner: &str) -> StoreResult<Written> {
    let changed = |n: u64| Written::Changed(n == 1);
    Ok(match op {
        WriteOp::Claim { id, now_ms } => {
            let attempt: Option<i32> = sqlx::query_scalar(
                "UPDATE jobs SET status = 'running', attempt = attempt + 1, started_ms = $2, \
                 owner = $3, lease_until_ms = NULL \
                 WHERE id = $1 AND status = 'queued' RETURNING attempt",
            )
            .bind(id)
            .bind(now_ms)
            .bind(owner)
            .fetch_optional(&mut *conn)
            .await
            .pg()?;
            Written::Claimed(attempt.map(|a| u32::try_from(a).unwrap_or(0)))
        }
        // The stopped run is not counted (see the SQLite store).
        WriteOp::Requeue { id, attempt: a } => changed(
            sqlx::query(
                "UPDATE jobs SET status = 'queued', started_ms = NULL, attempt = attempt - 1, \
                 owner = NULL, lease_until_ms = NULL \
                 WHERE id = $1 AND status = 'running' AND attempt = $2 AND owner = $3",
            )
            .bind(id)
            .bind(attempt(*a))
            .bind(owner)
            .execute(&mut *conn)
            .await
            .pg()?
            .rows_affected(),
        ),
        WriteOp::CancelQueued { id, error, now_ms } => changed(
            sqlx::query(
                "UPDATE jobs SET status = 'cancelled', error = $2, ended_ms = $3 \
                 WHERE id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(to_json(error)?)
            .bind(now_ms)
            .execute(&mut *conn)
            .await
            .pg()?
            .rows_affected(),
        ),
        WriteOp::RequestCancel { id } => changed(
            sqlx::query(
                "UPDATE jobs SET cancel_requested = TRUE \
                 WHERE id = $1 AND status IN ('queued', 'running')",
            )
            .bind(id)
            .execute(&mut *conn)
            .await
            .pg()?
            .rows_affected(),
        ),
        WriteOp::Purge { before_ms, limit } => Written::Deleted(
            sqlx::query(
                "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs \
                 WHERE ended_ms IS NOT NULL AND ended_ms < $1 \
                 AND status IN ('completed', 'failed', 'cancelled') LIMIT $2)",
            )
            .bind(before_ms)
            .bind(i64::from(*limit))
            .execute(&mut *conn)
            .await
            .pg()?
            .rows_affected(),
        ),
        WriteOp::Insert(_) | WriteOp::Finish { .. } => {
            return Err(ServiceError::Store(
                "a set-based write was left to run alone".into(),
            ));
        }
    })
}

#[async_trait::async_trait]
impl JobStore for PgStore {
    async fn write_batch(&self, ops: &[WriteOp], durable: bool) -> StoreResult<Vec<Written>> {
        // Without `durable`, the commit returns before the WAL reaches the
        // disk: a crash of the database server may lose it, never corrupt
        // anything. (In BEGIN's round trip.)
        //
        // A batch's tenant locks are held through its commit's flush.
        // Committing without waiting and then waiting for the disk in a
        // transaction of its own (`SELECT txid_current()`) was tried, and
        // the cluster test lost an acknowledged job to a crash of
        // PostgreSQL: a commit that wrote no WAL of its own does not wait
        // for the flush, whatever `synchronous_commit` says.
        let begin = if durable {
            "BEGIN"
        } else {
            "BEGIN; SET LOCAL synchronous_commit = off"
        };
        let mut tx = self.pool.begin_with(begin).await.pg()?;
        let out = apply_all(&mut tx, ops, &self.node_id).await?;
        notify(&mut tx, &events_of(ops, &out)).await?;
        // Dropped uncommitted on any error above: rolled back.
        tx.commit().await.pg()?;
        Ok(out)
    }

    async fn find_idempotent(
        &self,
        tenant: &str,
        key: &str,
    ) -> StoreResult<Option<(JobRow, String)>> {
        let mut conn = self.pool.acquire().await.pg()?;
        find_idempotent_row(&mut conn, tenant, key).await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<JobRow>> {
        let row = sqlx::query(sql(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .pg()?;
        row.as_ref().map(job_row).transpose()
    }

    async fn list(
        &self,
        tenant: &str,
        status: Option<JobStatus>,
        limit: u32,
        before: Option<i64>,
    ) -> StoreResult<Vec<JobRow>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {SUMMARY_COLUMNS} FROM jobs WHERE tenant = $1 AND seq < $2 \
             AND ($3::text IS NULL OR status = $3) ORDER BY seq DESC LIMIT $4"
        )))
        .bind(tenant)
        .bind(before.unwrap_or(i64::MAX))
        .bind(status.map(JobStatus::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .pg()?;
        rows.iter().map(job_row).collect()
    }

    async fn get_summary(&self, id: &str) -> StoreResult<Option<JobRow>> {
        let row = sqlx::query(sql(format!(
            "SELECT {SUMMARY_COLUMNS} FROM jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .pg()?;
        row.as_ref().map(job_row).transpose()
    }

    async fn result_text(&self, tenant: &str, id: &str) -> StoreResult<Option<ResultText>> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT result FROM jobs WHERE id = $1 AND tenant = $2 AND result IS NOT NULL",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await
        .pg()?;
        Ok(text.map(ResultText::from))
    }

    /// Nothing: another node may be running the jobs that read `running`;
    /// a dead node's jobs come back when their leases end.
    async fn recover(&self, _now_ms: i64) -> StoreResult<u64> {
        Ok(0)
    }

    async fn queued(&self) -> StoreResult<Vec<JobRow>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'queued' ORDER BY seq"
        )))
        .fetch_all(&self.pool)
        .await
        .pg()?;
        rows.iter().map(job_row).collect()
    }

    async fn purge(&self, before_ms: i64) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let limit = 1000;
            match super::write_one(self, WriteOp::Purge { before_ms, limit }).await? {
                Written::Deleted(n) => {
                    total += n;
                    if n < u64::from(limit) {
                        return Ok(total);
                    }
                }
                other => {
                    return Err(ServiceError::Store(format!(
                        "unexpected write result {other:?}"
                    )));
                }
            }
        }
    }

    async fn count_by_status(&self) -> StoreResult<Vec<(JobStatus, u64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .pg()?;
        let mut out = Vec::new();
        for r in rows {
            let status: String = r.try_get("status").pg()?;
            if let Some(s) = JobStatus::parse(&status) {
                out.push((s, count(r.try_get("n").pg()?)));
            }
        }
        Ok(out)
    }

    async fn insert_key(&self, key: &ApiKeyRow) -> StoreResult<()> {
        // `keys_held` in the same statement: set by the first key, never
        // cleared.
        sqlx::query(
            "WITH k AS (INSERT INTO api_keys (id, tenant, hash, created_ms, revoked_ms) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id) \
             INSERT INTO meta (key, value) SELECT 'keys_held', '1' FROM k \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(&key.id)
        .bind(&key.tenant)
        .bind(&key.hash)
        .bind(key.created_ms)
        .bind(key.revoked_ms)
        .execute(&self.pool)
        .await
        .pg()?;
        Ok(())
    }

    async fn find_key(&self, id: &str) -> StoreResult<Option<ApiKeyRow>> {
        let row = sqlx::query(
            "SELECT id, tenant, hash, created_ms, revoked_ms FROM api_keys WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .pg()?;
        row.as_ref().map(key_row).transpose()
    }

    async fn list_keys(&self) -> StoreResult<Vec<ApiKeyRow>> {
        let rows = sqlx::query(
            "SELECT id, tenant, hash, created_ms, revoked_ms FROM api_keys ORDER BY created_ms, id",
        )
        .fetch_all(&self.pool)
        .await
        .pg()?;
        rows.iter().map(key_row).collect()
    }

    async fn revoke_key(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL")
                .bind(now_ms)
                .bind(id)
                .execute(&self.pool)
                .await
                .pg()?;
        Ok(done.rows_affected() == 1)
    }

    async fn active_key_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE revoked_ms IS NULL")
            .fetch_one(&self.pool)
            .await
            .pg()?;
        Ok(count(n))
    }

    async fn keys_held(&self) -> StoreResult<bool> {
        let held: Option<String> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'keys_held'")
                .fetch_optional(&self.pool)
                .await
                .pg()?;
        Ok(held.is_some())
    }

    async fn probe_write(&self) -> StoreResult<()> {
        let mut tx = self
            .pool
            .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
            .await
            .pg()?;
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('write_probe', '0') \
             ON CONFLICT (key) DO UPDATE SET value = ((meta.value::bigint + 1) % 1000000)::text",
        )
        .execute(&mut *tx)
        .await
        .pg()?;
        tx.commit().await.pg()
    }

    fn shared(&self) -> bool {
        true
    }

    fn node_id(&self) -> &str {
        &self.node_id
    }

    async fn claim_next(
        &self,
        capacity: &Capacity,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Option<JobRow>> {
        Ok(self
            .claim_several(capacity, 1, now_ms, lease_ms)
            .await?
            .pop())
    }

    async fn claim_several(
        &self,
        capacity: &Capacity,
        jobs: usize,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<JobRow>> {
        // A claim lost in a crash of the database is a job run again: no
        // need to wait for the disk. One statement: the expired jobs whose
        // cancel was asked are cancelled (and their ends announced), and
        // the jobs are claimed, never one of those (disjoint by
        // `cancel_requested`, so no row is updated twice).
        //
        // Which jobs: fewest running first (a job whose lease ended no
        // longer counts as running for its tenant; a tenant's k-th pick
        // counts as k − 1 more running, so several claimed at once go
        // round the tenants as one-by-one claims would), then priority,
        // then age; as many as fit the memory together. Sorting every
        // queued job for that costs time in the queue's length (34 ms a
        // claim with 50,000 queued), so the candidates are read from the
        // `jobs_queue` index instead: the tenants with queued work by a
        // skip scan (one index probe each), the first `jobs` of each tenant
        // in (priority, age) order that fit, and the expired ones (0.7 ms
        // with 50,000 queued). The candidates are locked as they are read,
        // passing over (SKIP LOCKED) those another node is claiming at that
        // moment, so two nodes claiming at once take different jobs rather
        // than one of them none; the update re-checks each pick. The final
        // join gives one row even when nothing was claimed, so that the
        // notifications are sent.
        let mut tx = self
            .pool
            .begin_with("BEGIN; SET LOCAL synchronous_commit = off")
            .await
            .pg()?;
        let rows = sqlx::query(sql(format!(
            "WITH RECURSIVE tenants (tenant) AS ( \
               (SELECT tenant FROM jobs WHERE status = 'queued' ORDER BY tenant LIMIT 1) \
               UNION ALL \
               SELECT (SELECT j.tenant FROM jobs j WHERE j.status = 'queued' \
                 AND j.tenant > t.tenant ORDER BY j.tenant LIMIT 1) \
               FROM tenants t WHERE t.tenant IS NOT NULL), \
             candidates AS ( \
               SELECT c.* FROM tenants t CROSS JOIN LATERAL ( \
                 SELECT j.seq, j.tenant, j.priority, j.memory_bytes FROM jobs j \
                 WHERE j.status = 'queued' AND j.tenant = t.tenant AND j.memory_bytes <= $4 \
                 ORDER BY j.priority DESC, j.seq LIMIT $7 FOR UPDATE SKIP LOCKED) c \
               WHERE t.tenant IS NOT NULL \
               UNION ALL \
               SELECT e.* FROM (SELECT seq, tenant, priority, memory_bytes FROM jobs \
                 WHERE status = 'running' AND lease_until_ms < $1 AND NOT cancel_requested \
                 AND memory_bytes <= $4 ORDER BY seq LIMIT $7 FOR UPDATE SKIP LOCKED) e), \
             running AS ( \
               SELECT tenant, COUNT(*) AS n FROM jobs WHERE status = 'running' \
                 AND (lease_until_ms IS NULL OR lease_until_ms >= $1) GROUP BY tenant), \
             ranked AS ( \
               SELECT c.seq, c.priority, c.memory_bytes, COALESCE(r.n, 0) - 1 \
                 + ROW_NUMBER() OVER (PARTITION BY c.tenant ORDER BY c.priority DESC, c.seq) AS load \
               FROM candidates c LEFT JOIN running r ON r.tenant = c.tenant \
               WHERE NOT $6 OR COALESCE(r.n, 0) = 0), \
             picked AS ( \
               SELECT seq FROM (SELECT seq, load, priority, SUM(memory_bytes) OVER \
                   (ORDER BY load, priority DESC, seq) AS held FROM ranked) o \
               WHERE held <= $4 ORDER BY load, priority DESC, seq LIMIT $7), \
             cancelled AS ( \
               UPDATE jobs SET status = 'cancelled', ended_ms = $1, error = $5, owner = NULL, \
                 lease_until_ms = NULL \
               WHERE seq IN (SELECT seq FROM jobs WHERE status = 'running' AND lease_until_ms < $1 \
                 AND cancel_requested FOR UPDATE SKIP LOCKED) \
               AND status = 'running' AND lease_until_ms < $1 RETURNING id), \
             notified AS (SELECT COUNT(pg_notify('{CHANNEL}', 'ended:' || id)) AS n FROM cancelled), \
             claimed AS ( \
               UPDATE jobs SET status = 'running', attempt = attempt + 1, owner = $2, \
                 lease_until_ms = $1 + $3, started_ms = $1 \
               WHERE seq IN (SELECT seq FROM picked) \
               AND (status = 'queued' OR (status = 'running' AND lease_until_ms < $1 \
                 AND NOT cancel_requested)) \
               RETURNING {SUMMARY_COLUMNS}) \
             SELECT claimed.*, notified.n AS cancelled FROM notified LEFT JOIN claimed ON TRUE"
        )))
        .bind(now_ms)
        .bind(&*self.node_id)
        .bind(lease_ms)
        .bind(i64::try_from(capacity.memory_bytes).unwrap_or(i64::MAX))
        .bind(to_json(&cancelled_while_running())?)
        .bind(capacity.idle_tenants_only)
        .bind(i64::try_from(if capacity.idle_tenants_only { 1 } else { jobs }).unwrap_or(1))
        .fetch_all(&mut *tx)
        .await
        .pg()?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<Option<i64>, _>("seq").pg()?.is_some() {
                claimed.push(job_row(row)?);
            }
        }
        tx.commit().await.pg()?;
        // Oldest first: the node's queue serves them in the order it gets them.
        claimed.sort_by_key(|j| j.seq);
        Ok(claimed)
    }

    async fn renew_leases(
        &self,
        jobs: &[(String, u32)],
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<Option<bool>>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = jobs.iter().map(|(id, _)| id.as_str()).collect();
        let attempts: Vec<i32> = jobs.iter().map(|&(_, a)| attempt(a)).collect();
        let rows = sqlx::query(
            "UPDATE jobs j SET lease_until_ms = $1 \
             FROM unnest($2::text[], $3::int[]) AS r (id, attempt) \
             WHERE j.id = ANY($2) AND j.id = r.id AND j.attempt = r.attempt \
             AND j.status = 'running' \
             AND j.owner = $4 RETURNING j.id, j.attempt, j.cancel_requested",
        )
        .bind(now_ms.saturating_add(lease_ms))
        .bind(ids)
        .bind(attempts)
        .bind(&*self.node_id)
        .fetch_all(&self.pool)
        .await
        .pg()?;
        let mut held = HashMap::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0).pg()?;
            let attempt: i32 = r.try_get(1).pg()?;
            held.insert((id, attempt), r.try_get::<bool, _>(2).pg()?);
        }
        Ok(jobs
            .iter()
            .map(|(id, a)| held.get(&(id.clone(), attempt(*a))).copied())
            .collect())
    }

    async fn active_count(&self, tenant: &str) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE tenant = $1 AND status IN ('queued', 'running')",
        )
        .bind(tenant)
        .fetch_one(&self.pool)
        .await
        .pg()?;
        Ok(count(n))
    }

    async fn count_by_tenant_status(&self) -> StoreResult<Vec<(String, JobStatus, u64)>> {
        let rows = sqlx::query(
            "SELECT tenant, status, COUNT(*) AS n FROM jobs GROUP BY tenant, status \
             ORDER BY tenant, status",
        )
        .fetch_all(&self.pool)
        .await
        .pg()?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let status: String = r.try_get("status").pg()?;
            if let Some(status) = JobStatus::parse(&status) {
                out.push((
                    r.try_get("tenant").pg()?,
                    status,
                    count(r.try_get("n").pg()?),
                ));
            }
        }
        Ok(out)
    }

    fn events(&self) -> tokio::sync::broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    async fn export_jobs(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<ExportedJob>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {JOB_COLUMNS}, idempotency_key, request_hash FROM jobs \
             WHERE seq > $1 ORDER BY seq LIMIT $2"
        )))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .pg()?;
        rows.iter()
            .map(|r| {
                let key: Option<String> = r.try_get("idempotency_key").pg()?;
                let hash: Option<String> = r.try_get("request_hash").pg()?;
                Ok(ExportedJob {
                    row: job_row(r)?,
                    idempotency: key.map(|k| (k, hash.unwrap_or_default())),
                })
            })
            .collect()
    }

    async fn import_jobs(&self, jobs: &[ExportedJob]) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.pg()?;
        let mut inserted = 0;
        for job in jobs {
            let row = super::sqlite::imported(&job.row);
            let (key, hash) = match &job.idempotency {
                Some((k, h)) => (Some(k.as_str()), Some(h.as_str())),
                None => (None, None),
            };
            // No conflict target: an id or an idempotency key already here
            // leaves the copy out.
            let done = sqlx::query(
                "INSERT INTO jobs (id, tenant, status, priority, memory_bytes, spec, attempt, \
                 cancel_requested, created_ms, started_ms, ended_ms, result, error, \
                 idempotency_key, request_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&row.id)
            .bind(&row.tenant)
            .bind(row.status.as_str())
            .bind(row.spec.priority)
            .bind(i64::try_from(row.spec.memory_bytes).unwrap_or(i64::MAX))
            .bind(to_json(&row.spec)?)
            .bind(attempt(row.attempt))
            .bind(row.cancel_requested)
            .bind(row.created_ms)
            .bind(row.started_ms)
            .bind(row.ended_ms)
            .bind(row.result.as_ref().map(to_json).transpose()?)
            .bind(row.error.as_ref().map(to_json).transpose()?)
            .bind(key)
            .bind(hash)
            .execute(&mut *tx)
            .await
            .pg()?;
            inserted += done.rows_affected();
        }
        if inserted > 0 {
            notify(&mut tx, &[StoreEvent::Queued]).await?;
        }
        tx.commit().await.pg()?;
        Ok(inserted)
    }

    async fn import_key(&self, key: &ApiKeyRow) -> StoreResult<bool> {
        let inserted: Option<String> = sqlx::query_scalar(
            "WITH k AS (INSERT INTO api_keys (id, tenant, hash, created_ms, revoked_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING id), \
             held AS (INSERT INTO meta (key, value) SELECT 'keys_held', '1' FROM k \
             ON CONFLICT (key) DO NOTHING) \
             SELECT id FROM k",
        )
        .bind(&key.id)
        .bind(&key.tenant)
        .bind(&key.hash)
        .bind(key.created_ms)
        .bind(key.revoked_ms)
        .fetch_optional(&self.pool)
        .await
        .pg()?;
        Ok(inserted.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::contract_tests::{created, job, next_event};
    use crate::store::test_postgres::{own_server, skip_without_postgres, test_postgres};
    use sqlx::Connection;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_schema_newer_than_this_build_is_refused() {
        let Some(db) = test_postgres().await else {
            return;
        };
        // Two nodes starting at once on an empty database: one migrates,
        // the other waits for it.
        let (a, b) = tokio::join!(PgStore::connect(db.url()), PgStore::connect(db.url()));
        assert_eq!(
            a.unwrap().store_id().await.unwrap(),
            b.unwrap().store_id().await.unwrap()
        );
        let mut conn = PgConnection::connect(db.url()).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (5, 'future', TRUE, $1, 0)",
        )
        .bind(vec![0_u8])
        .execute(&mut conn)
        .await
        .unwrap();
        let e = PgStore::connect(db.url()).await.unwrap_err().to_string();
        assert!(
            e.contains(
                "the store's schema is version 5; this kettle knows up to 1: upgrade kettle"
            ),
            "{e}"
        );
    }

    /// Two nodes' batches that insert for the same limited tenants in
    /// opposite orders: without the tenants' locks taken up front in one
    /// order, they deadlock and PostgreSQL aborts one (`40P01`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_with_limited_tenants_in_any_order_never_deadlock() {
        let Some(db) = test_postgres().await else {
            return;
        };
        let (a, b) = tokio::join!(PgStore::connect(db.url()), PgStore::connect(db.url()));
        let (a, b) = (a.unwrap(), b.unwrap());
        let tenants = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"];
        let batch = |node: &str, round: usize, reversed: bool| -> Vec<WriteOp> {
            let mut order: Vec<&str> = tenants.to_vec();
            if reversed {
                order.reverse();
            }
            order
                .into_iter()
                .map(|t| {
                    let mut j = job(&format!("{node}-{round}-{t}"), t, None);
                    j.max_active = Some(1000);
                    WriteOp::Insert(Box::new(j))
                })
                .collect()
        };
        for round in 0..40 {
            let (first, second) = (batch("a", round, false), batch("b", round, true));
            let (x, y) = tokio::join!(a.write_batch(&first, true), b.write_batch(&second, true));
            x.unwrap();
            y.unwrap();
        }
        let active: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
            .fetch_one(&a.pool)
            .await
            .unwrap();
        assert_eq!(active, 2 * 40 * 8);
    }

    /// `open` chooses PostgreSQL for a `postgres://` location: a shared
    /// store, with no folder lock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_postgres_location_opens_a_shared_store() {
        let Some(db) = test_postgres().await else {
            return;
        };
        let location: crate::store::StoreLocation = db.url().parse().unwrap();
        let opened = crate::store::open(&location).await.unwrap();
        assert!(opened.store.shared() && opened.lock.is_none());
        created(&*opened.store, &job("j", "t", None)).await;
        let again = crate::store::open(&location).await.unwrap();
        assert_ne!(again.store.node_id(), opened.store.node_id());
        assert!(again.store.get("j").await.unwrap().is_some());
    }

    /// What `kettle store copy` does: every job and key of an SQLite store
    /// arrives in PostgreSQL as it was (running ones queued), with the
    /// same ids, results and idempotency keys.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_sqlite_store_copies_into_postgres_row_for_row() {
        let Some(db) = test_postgres().await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let from = crate::store::SqliteStore::open(dir.path()).await.unwrap();
        let ops: Vec<WriteOp> = (0..50)
            .map(|i| {
                let key = (i % 2 == 0).then(|| (format!("k{i}"), format!("h{i}")));
                let mut j = job(&format!("j{i:02}"), &format!("t{}", i % 3), None);
                j.idempotency = key;
                WriteOp::Insert(Box::new(j))
            })
            .collect();
        from.write_batch(&ops, true).await.unwrap();
        for i in 0..30 {
            let id = format!("j{i:02}");
            assert_eq!(from.claim(&id, 10).await.unwrap(), Some(1));
            if i < 20 {
                let outcome =
                    crate::store::Outcome::Completed(crate::store::contract_tests::result());
                assert!(from.finish(&id, 1, &outcome, 20).await.unwrap());
            }
        }
        from.insert_key(&ApiKeyRow {
            id: "key".into(),
            tenant: "t0".into(),
            hash: vec![1; 32],
            created_ms: 1,
            revoked_ms: Some(2),
        })
        .await
        .unwrap();
        let to = PgStore::connect(db.url()).await.unwrap();
        let exported = from.export_jobs(0, 1000).await.unwrap();
        assert_eq!(exported.len(), 50);
        assert_eq!(to.import_jobs(&exported).await.unwrap(), 50);
        for key in from.list_keys().await.unwrap() {
            assert!(to.import_key(&key).await.unwrap());
        }
        let copied = to.export_jobs(0, 1000).await.unwrap();
        for (a, b) in exported.iter().zip(&copied) {
            let mut expected = a.clone();
            if expected.row.status == JobStatus::Running {
                expected.row.status = JobStatus::Queued;
                expected.row.started_ms = None;
            }
            expected.row.seq = b.row.seq;
            assert_eq!(&expected, b);
        }
        assert!(to.keys_held().await.unwrap());
        assert_eq!(
            to.list_keys().await.unwrap(),
            from.list_keys().await.unwrap()
        );
        assert_eq!(to.integrity_check().await.unwrap(), Vec::<String>::new());
    }

    /// While the database is down, every call fails as a transient store
    /// failure (the server's 503 with Retry-After), within the pool's
    /// acquire timeout; when it is back, the same store works again by
    /// itself, and its listener says that events may have been missed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_that_goes_away_fails_calls_transiently_until_it_is_back() {
        let server = match own_server() {
            Ok(s) => s,
            Err(why) => return skip_without_postgres(&why),
        };
        let server = std::sync::Arc::new(server);
        let store = PgStore::connect(&server.database().await).await.unwrap();
        created(&store, &job("before", "t", None)).await;
        let mut events = store.events();
        let s = server.clone();
        tokio::task::spawn_blocking(move || s.stop())
            .await
            .unwrap()
            .unwrap();
        let started = std::time::Instant::now();
        let during = job("during", "t", None);
        let (insert, get, probe) = tokio::join!(
            store.insert(&during),
            store.get("before"),
            store.probe_write()
        );
        let failed = insert.unwrap_err();
        assert!(
            matches!(failed, ServiceError::Store(_)) && failed.is_transient(),
            "{failed:?}"
        );
        assert!(matches!(get, Err(ServiceError::Store(_))), "{get:?}");
        assert!(matches!(probe, Err(ServiceError::Store(_))), "{probe:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let s = server.clone();
        tokio::task::spawn_blocking(move || s.start())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            next_event(&mut events, |e| *e == StoreEvent::Resync).await,
            StoreEvent::Resync
        );
        store.probe_write().await.unwrap();
        assert!(
            store.get("before").await.unwrap().is_some(),
            "nothing committed is lost"
        );
        assert!(
            store.get("during").await.unwrap().is_none(),
            "nothing failed is kept"
        );
        created(&store, &job("after", "t", None)).await;
        assert_eq!(
            next_event(&mut events, |e| *e == StoreEvent::Queued).await,
            StoreEvent::Queued,
            "listening again"
        );
    }

    #[test]
    fn events_travel_as_payloads() {
        for e in [
            StoreEvent::Queued,
            StoreEvent::Ended("a:b".into()),
            StoreEvent::CancelRequested("c".into()),
        ] {
            assert_eq!(event(&payload(&e).unwrap()), Some(e));
        }
        assert_eq!(payload(&StoreEvent::Resync), None);
        assert_eq!(event("nonsense"), None);
    }
}
