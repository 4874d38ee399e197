//! [`SqliteStore`]: the embedded job store, one SQLite file under the data
//! folder, through sqlx.
//!
//! Durability: WAL journal with `synchronous = FULL`, so a commit has reached
//! the disk (fsync of the WAL) before `insert` returns and the HTTP layer
//! answers `201`; a power cut loses no acknowledged job. Schema changes are
//! sqlx's migrations (`migrations/sqlite/`); `user_version` mirrors the
//! latest applied, so a kettle from before them refuses a newer store.
//!
//! Not shared ([`JobStore::shared`] is false): one service per folder. It
//! still implements the claims, leases and fencing of several nodes (two
//! handles on one file behave as two nodes), and broadcasts the events of
//! its own writes after they commit.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row};

use super::{
    ApiKeyRow, Capacity, ExportedJob, JobRow, JobStore, ResultText, StoreEvent, StoreResult,
    WriteOp, Written, check_schema_version, events_of, json_err, migrate_error, migrator, to_json,
};
use crate::error::ServiceError;
use crate::model::{JobError, JobStatus};

mod writes;

use super::folder;

/// The database file's name inside the data folder.
pub(crate) const DB_FILE: &str = "kettle.db";

/// The schema's migrations (sqlx's), compiled in. Stores created before
/// them (tracked with `user_version` 2, no `_sqlx_migrations`) adopt them:
/// 1 and 2 are the schema those stores have, written to be no-ops on them.
const MIGRATIONS: &[super::Embedded] = &[
    (
        1,
        "jobs",
        include_str!("../../migrations/sqlite/0001_jobs.sql"),
    ),
    (
        2,
        "meta",
        include_str!("../../migrations/sqlite/0002_meta.sql"),
    ),
    (
        3,
        "leases",
        include_str!("../../migrations/sqlite/0003_leases.sql"),
    ),
];

/// The error of a job whose node stopped while it ran and whose
/// cancellation had been asked for.
fn cancelled_while_running() -> JobError {
    JobError {
        code: "cancelled".into(),
        message: "cancelled while running; its node stopped before it ended".into(),
    }
}

/// Columns of a job row, in the order [`job_row`] reads them.
const JOB_COLUMNS: &str = "seq, id, tenant, status, spec, attempt, cancel_requested, \
     created_ms, started_ms, ended_ms, result, error";

/// [`JOB_COLUMNS`] with the result left out.
const SUMMARY_COLUMNS: &str = "seq, id, tenant, status, spec, attempt, cancel_requested, \
     created_ms, started_ms, ended_ms, NULL AS result, error";

/// The SQLite job store: a pool of connections for reads and one
/// connection for job writes (SQLite has one writer at a time anyway), on
/// which [`JobStore::write_batch`] runs its transactions.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Arc<tokio::sync::Mutex<WriterConn>>,
    /// This handle's node id: the owner its claims record.
    node_id: Arc<str>,
    events: tokio::sync::broadcast::Sender<StoreEvent>,
}

#[derive(Debug)]
struct WriterConn(SqliteConnection);

fn job_row(row: &SqliteRow) -> StoreResult<JobRow> {
    let status: String = row.try_get("status")?;
    let spec: String = row.try_get("spec")?;
    let result: Option<String> = row.try_get("result")?;
    let error: Option<String> = row.try_get("error")?;
    Ok(JobRow {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        status: JobStatus::parse(&status)
            .ok_or_else(|| ServiceError::Store(format!("unknown stored status `{status}`")))?,
        spec: serde_json::from_str(&spec).map_err(|e| json_err("spec", e))?,
        attempt: u32::try_from(row.try_get::<i64, _>("attempt")?).unwrap_or(u32::MAX),
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        created_ms: row.try_get("created_ms")?,
        started_ms: row.try_get("started_ms")?,
        ended_ms: row.try_get("ended_ms")?,
        result: result
            .map(|r| serde_json::from_str(&r).map_err(|e| json_err("result", e)))
            .transpose()?,
        error: error
            .map(|r| serde_json::from_str(&r).map_err(|e| json_err("error", e)))
            .transpose()?,
    })
}

/// A row of one text column, as the text: SQLite's copy of the value, with
/// no other (see [`ResultText`]).
struct RowText(SqliteRow);

impl AsRef<[u8]> for RowText {
    fn as_ref(&self) -> &[u8] {
        self.0.try_get::<&str, _>(0).map_or(&[], str::as_bytes)
    }
}

fn key_row(row: &SqliteRow) -> StoreResult<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        hash: row.try_get("hash")?,
        created_ms: row.try_get("created_ms")?,
        revoked_ms: row.try_get("revoked_ms")?,
    })
}

/// SQL text built from constant pieces only (column lists), never from input.
fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir` and brings its
    /// schema up to date. A folder Kettle creates is private (0700, the
    /// database 0600). A folder whose marker says it held a store, but
    /// whose database is missing, empty, unreadable or another store's, is
    /// refused: starting afresh there would lose its jobs and keys.
    ///
    /// # Errors
    /// The folder cannot be created, the file cannot be opened, the
    /// database is not the folder's own, or a migration fails.
    pub async fn open(data_dir: &Path) -> StoreResult<SqliteStore> {
        folder::create_private_dir(data_dir)?;
        let db = data_dir.join(DB_FILE);
        let marker = folder::read_marker(data_dir)?;
        if marker.is_some() && !db.exists() {
            return Err(folder::damaged(
                data_dir,
                &format!("the database {} is missing", db.display()),
            ));
        }
        // Created here, private, before SQLite opens it: its -wal and -shm
        // files take its mode.
        folder::create_private_file(&db)?;
        let unreadable = |e: ServiceError| match &marker {
            Some(_) => folder::damaged(
                data_dir,
                &format!("the database {} cannot be read ({e})", db.display()),
            ),
            None => e,
        };
        let store = SqliteStore::connect(&db).await.map_err(unreadable)?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&store.pool)
            .await
            .map_err(|e| unreadable(e.into()))?;
        if version == 0 && marker.is_some() {
            return Err(folder::damaged(
                data_dir,
                &format!(
                    "the database {} is empty (deleted or truncated)",
                    db.display()
                ),
            ));
        }
        store.migrate().await.map_err(unreadable)?;
        let id = store.store_id().await?;
        match marker {
            Some(m) if m != id => {
                return Err(folder::damaged(
                    data_dir,
                    &format!(
                        "the database {} is another store's (id {id}, the folder's is {m})",
                        db.display()
                    ),
                ));
            }
            Some(_) => {}
            // A new folder, one from before the marker, or a backup
            // restored into an empty folder: the database names itself.
            None => folder::write_marker(data_dir, &id)?,
        }
        Ok(store)
    }

    /// Connects to the database file `db`.
    async fn connect(db: &Path) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(db)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: each commit fsyncs the WAL, so an acknowledged job
            // survives a power cut, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options.clone())
            .await?;
        let writer = SqliteConnection::connect_with(&options).await?;
        Ok(SqliteStore {
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(WriterConn(writer))),
            node_id: uuid::Uuid::now_v7().to_string().into(),
            events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
        })
    }

    /// Closes every connection, and waits until they are closed (a store
    /// merely dropped closes them in the background).
    pub async fn close(self) {
        self.pool.close().await;
        if let Ok(writer) = Arc::try_unwrap(self.writer) {
            let _ = writer.into_inner().0.close().await;
        }
    }

    /// The store's id (random, set when it was created).
    ///
    /// # Errors
    /// A store failure.
    pub async fn store_id(&self) -> StoreResult<String> {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'store_id'")
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| ServiceError::Store("the store has no id".into()))
    }

    /// Writes a consistent copy of the live database to `path` (SQLite's
    /// `VACUUM INTO`, which reads one snapshot while writers go on), a
    /// file that must not exist yet; created readable by its owner only.
    /// The copy is a whole `kettle.db`: put it into an empty folder to
    /// restore it.
    ///
    /// # Errors
    /// `path` exists or cannot be written, or the store fails.
    pub async fn backup(&self, path: &Path) -> StoreResult<()> {
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
        file.open(path).map_err(|e| {
            ServiceError::Store(format!("cannot create the backup {}: {e}", path.display()))
        })?;
        let target = path.to_str().ok_or_else(|| {
            ServiceError::Store(format!("the path {} is not UTF-8", path.display()))
        })?;
        let done = sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.pool)
            .await;
        if let Err(e) = done {
            let _ = std::fs::remove_file(path);
            return Err(e.into());
        }
        Ok(())
    }

    /// Checks the database: SQLite's own `integrity_check` and
    /// `foreign_key_check`, then the jobs' invariants (an ended job has its
    /// end time and its result or error; a queued job has neither). Returns
    /// what is wrong, nothing when the store is sound.
    ///
    /// # Errors
    /// The checks could not run.
    pub async fn integrity_check(&self) -> StoreResult<Vec<String>> {
        let mut problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .filter(|line: &String| line != "ok")
            .collect();
        let dangling = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&self.pool)
            .await?;
        if !dangling.is_empty() {
            problems.push(format!("{} rows break a foreign key", dangling.len()));
        }
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
                "in an unknown status",
                "status NOT IN ('queued', 'running', 'completed', 'failed', 'cancelled')",
            ),
        ];
        for (what, condition) in invariants {
            let ids: Vec<String> = sqlx::query_scalar(sql(format!(
                "SELECT id FROM jobs WHERE {condition} LIMIT 10"
            )))
            .fetch_all(&self.pool)
            .await?;
            if !ids.is_empty() {
                problems.push(format!("jobs {what}: {}", ids.join(", ")));
            }
        }
        Ok(problems)
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await?;
        let mut applied: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *conn)
            .await?;
        let tracked: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master \
             WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_one(&mut *conn)
        .await?;
        if tracked {
            let latest: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
                    .fetch_one(&mut *conn)
                    .await?;
            applied = applied.max(latest.unwrap_or(0));
        }
        check_schema_version(applied, MIGRATIONS)?;
        migrator(MIGRATIONS)
            .run(&mut *conn)
            .await
            .map_err(migrate_error)?;
        let latest = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
        sqlx::query(sql(format!("PRAGMA user_version = {latest}")))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Sends `events` to the receivers of [`JobStore::events`] (none is
    /// fine).
    fn broadcast(&self, events: impl IntoIterator<Item = StoreEvent>) {
        for event in events {
            let _ = self.events.send(event);
        }
    }
}

/// Events kept for a slow receiver before it reads `Lagged`.
const EVENT_BUFFER: usize = 1024;

/// Opens a write transaction on the writer connection. Without `durable`,
/// its commit writes the WAL without waiting for the disk (`synchronous`
/// is per connection), and [`end_tx`] puts it back.
async fn begin_tx(conn: &mut SqliteConnection, durable: bool) -> StoreResult<()> {
    let begin = if durable {
        "BEGIN IMMEDIATE"
    } else {
        "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE"
    };
    sqlx::raw_sql(begin).execute(&mut *conn).await?;
    Ok(())
}

/// Commits what [`begin_tx`] opened when `outcome` is `Ok`; whatever failed
/// (the work, the commit), leaves the connection as it was: no open
/// transaction, synchronous FULL.
async fn end_tx<T>(
    conn: &mut SqliteConnection,
    durable: bool,
    outcome: StoreResult<T>,
) -> StoreResult<T> {
    let commit = if durable {
        "COMMIT"
    } else {
        "COMMIT; PRAGMA synchronous = FULL"
    };
    let outcome = match outcome {
        Ok(value) => sqlx::raw_sql(commit)
            .execute(&mut *conn)
            .await
            .map(|_| value)
            .map_err(ServiceError::from),
        Err(e) => Err(e),
    };
    if outcome.is_err() {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
        sqlx::raw_sql("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await?;
    }
    outcome
}

async fn find_idempotent_row(
    conn: &mut SqliteConnection,
    tenant: &str,
    key: &str,
) -> StoreResult<Option<(JobRow, String)>> {
    let row = sqlx::query(sql(format!(
        "SELECT {JOB_COLUMNS}, request_hash FROM jobs WHERE tenant = ? AND idempotency_key = ?"
    )))
    .bind(tenant)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok((
            job_row(&r)?,
            r.try_get::<Option<String>, _>("request_hash")?
                .unwrap_or_default(),
        ))
    })
    .transpose()
}

#[async_trait::async_trait]
impl JobStore for SqliteStore {
    async fn write_batch(&self, ops: &[WriteOp], durable: bool) -> StoreResult<Vec<Written>> {
        let mut conn = self.writer.lock().await;
        let conn = &mut conn.0;
        // Each call below is one round trip to sqlx's SQLite thread, so
        // statements that belong together share one.
        let outcome = async {
            begin_tx(conn, durable).await?;
            writes::apply_all(conn, ops, &self.node_id).await
        }
        .await;
        let out = end_tx(conn, durable, outcome).await?;
        self.broadcast(events_of(ops, &out));
        Ok(out)
    }

    async fn find_idempotent(
        &self,
        tenant: &str,
        key: &str,
    ) -> StoreResult<Option<(JobRow, String)>> {
        let mut conn = self.pool.acquire().await?;
        find_idempotent_row(&mut conn, tenant, key).await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<JobRow>> {
        let row = sqlx::query(sql(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
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
            "SELECT {SUMMARY_COLUMNS} FROM jobs WHERE tenant = ? AND seq < ? \
             AND (? IS NULL OR status = ?) ORDER BY seq DESC LIMIT ?"
        )))
        .bind(tenant)
        .bind(before.unwrap_or(i64::MAX))
        .bind(status.map(JobStatus::as_str))
        .bind(status.map(JobStatus::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_row).collect()
    }

    async fn get_summary(&self, id: &str) -> StoreResult<Option<JobRow>> {
        let row = sqlx::query(sql(format!(
            "SELECT {SUMMARY_COLUMNS} FROM jobs WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_row).transpose()
    }

    async fn result_text(&self, tenant: &str, id: &str) -> StoreResult<Option<ResultText>> {
        let row = sqlx::query(
            "SELECT result FROM jobs WHERE id = ? AND tenant = ? AND result IS NOT NULL",
        )
        .bind(id)
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        // Checked once here: the text is UTF-8.
        row.try_get::<&str, _>(0)?;
        Ok(Some(ResultText::new(RowText(row))))
    }

    async fn recover(&self, now_ms: i64) -> StoreResult<u64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let cancelled = sqlx::query(
            "UPDATE jobs SET status = 'cancelled', ended_ms = ?, \
             error = '{\"code\":\"cancelled\",\"message\":\"cancelled while running\"}' \
             WHERE status IN ('running', 'queued') AND cancel_requested = 1",
        )
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let requeued = sqlx::query(
            "UPDATE jobs SET status = 'queued', started_ms = NULL, owner = NULL, \
             lease_until_ms = NULL WHERE status = 'running'",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if requeued.rows_affected() > 0 {
            self.broadcast([StoreEvent::Queued]);
        }
        Ok(cancelled.rows_affected() + requeued.rows_affected())
    }

    async fn queued(&self) -> StoreResult<Vec<JobRow>> {
        let rows = sqlx::query(sql(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'queued' ORDER BY seq"
        )))
        .fetch_all(&self.pool)
        .await?;
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
            .await?;
        let mut out = Vec::new();
        for r in rows {
            let status: String = r.try_get("status")?;
            let n: i64 = r.try_get("n")?;
            if let Some(s) = JobStatus::parse(&status) {
                out.push((s, u64::try_from(n).unwrap_or(0)));
            }
        }
        Ok(out)
    }

    async fn insert_key(&self, key: &ApiKeyRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant, hash, created_ms, revoked_ms) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.tenant)
        .bind(&key.hash)
        .bind(key.created_ms)
        .bind(key.revoked_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_key(&self, id: &str) -> StoreResult<Option<ApiKeyRow>> {
        let row = sqlx::query(
            "SELECT id, tenant, hash, created_ms, revoked_ms FROM api_keys WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_row).transpose()
    }

    async fn list_keys(&self) -> StoreResult<Vec<ApiKeyRow>> {
        let rows = sqlx::query(
            "SELECT id, tenant, hash, created_ms, revoked_ms FROM api_keys ORDER BY created_ms, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_row).collect()
    }

    async fn revoke_key(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL")
                .bind(now_ms)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn keys_held(&self) -> StoreResult<bool> {
        let held: Option<String> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'keys_held'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(held.is_some())
    }

    async fn probe_write(&self) -> StoreResult<()> {
        let mut conn = self.writer.lock().await;
        // A real write (a page to the WAL), without waiting for the disk.
        let probe = sqlx::raw_sql(
            "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE; \
             INSERT INTO meta (key, value) VALUES ('write_probe', '0') \
             ON CONFLICT (key) DO UPDATE SET value = (value + 1) % 1000000; COMMIT",
        )
        .execute(&mut conn.0)
        .await;
        if probe.is_err() {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut conn.0).await;
        }
        sqlx::raw_sql("PRAGMA synchronous = FULL")
            .execute(&mut conn.0)
            .await?;
        probe.map(|_| ()).map_err(ServiceError::from)
    }

    async fn active_key_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE revoked_ms IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
    fn shared(&self) -> bool {
        false
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
        let mut conn = self.writer.lock().await;
        let conn = &mut conn.0;
        let error = to_json(&cancelled_while_running())?;
        let memory = i64::try_from(capacity.memory_bytes).unwrap_or(i64::MAX);
        // Not durable: a claim lost in a power cut is a job run again.
        let outcome = async {
            begin_tx(conn, false).await?;
            let cancelled: Vec<String> = sqlx::query_scalar(
                "UPDATE jobs SET status = 'cancelled', ended_ms = ?1, error = ?2, \
                 owner = NULL, lease_until_ms = NULL \
                 WHERE status = 'running' AND lease_until_ms < ?1 AND cancel_requested = 1 \
                 RETURNING id",
            )
            .bind(now_ms)
            .bind(&error)
            .fetch_all(&mut *conn)
            .await?;
            // Fewest running first: a job whose lease ended is no longer
            // counted as running for its tenant.
            let claimed = sqlx::query(sql(format!(
                "WITH running (tenant, n) AS (SELECT tenant, COUNT(*) FROM jobs \
                   WHERE status = 'running' AND (lease_until_ms IS NULL OR lease_until_ms >= ?1) \
                   GROUP BY tenant) \
                 UPDATE jobs SET status = 'running', attempt = attempt + 1, owner = ?2, \
                   lease_until_ms = ?1 + ?3, started_ms = ?1 \
                 WHERE seq = (SELECT j.seq FROM jobs j LEFT JOIN running r ON r.tenant = j.tenant \
                   WHERE (j.status = 'queued' OR (j.status = 'running' AND j.lease_until_ms < ?1)) \
                   AND j.memory_bytes <= ?4 AND (?5 = 0 OR COALESCE(r.n, 0) = 0) \
                   ORDER BY COALESCE(r.n, 0), j.priority DESC, j.seq LIMIT 1) \
                 RETURNING {SUMMARY_COLUMNS}"
            )))
            .bind(now_ms)
            .bind(&*self.node_id)
            .bind(lease_ms)
            .bind(memory)
            .bind(capacity.idle_tenants_only)
            .fetch_optional(&mut *conn)
            .await?;
            Ok((cancelled, claimed.as_ref().map(job_row).transpose()?))
        }
        .await;
        let (cancelled, claimed) = end_tx(conn, false, outcome).await?;
        self.broadcast(cancelled.into_iter().map(StoreEvent::Ended));
        Ok(claimed)
    }

    async fn renew_leases(
        &self,
        jobs: &[(String, u32)],
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Vec<Option<bool>>> {
        let mut conn = self.writer.lock().await;
        let conn = &mut conn.0;
        let outcome = async {
            begin_tx(conn, false).await?;
            let mut held = Vec::with_capacity(jobs.len());
            for (id, attempt) in jobs {
                let cancel: Option<bool> = sqlx::query_scalar(
                    "UPDATE jobs SET lease_until_ms = ? \
                     WHERE id = ? AND attempt = ? AND status = 'running' AND owner = ? \
                     RETURNING cancel_requested",
                )
                .bind(now_ms.saturating_add(lease_ms))
                .bind(id)
                .bind(i64::from(*attempt))
                .bind(&*self.node_id)
                .fetch_optional(&mut *conn)
                .await?;
                held.push(cancel);
            }
            Ok(held)
        }
        .await;
        end_tx(conn, false, outcome).await
    }

    async fn active_count(&self, tenant: &str) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE tenant = ? AND status IN ('queued', 'running')",
        )
        .bind(tenant)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn count_by_tenant_status(&self) -> StoreResult<Vec<(String, JobStatus, u64)>> {
        let rows = sqlx::query(
            "SELECT tenant, status, COUNT(*) AS n FROM jobs GROUP BY tenant, status \
             ORDER BY tenant, status",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let status: String = r.try_get("status")?;
            let n: i64 = r.try_get("n")?;
            if let Some(status) = JobStatus::parse(&status) {
                out.push((r.try_get("tenant")?, status, u64::try_from(n).unwrap_or(0)));
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
             WHERE seq > ? ORDER BY seq LIMIT ?"
        )))
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let key: Option<String> = r.try_get("idempotency_key")?;
                let hash: Option<String> = r.try_get("request_hash")?;
                Ok(ExportedJob {
                    row: job_row(r)?,
                    idempotency: key.map(|k| (k, hash.unwrap_or_default())),
                })
            })
            .collect()
    }

    async fn import_jobs(&self, jobs: &[ExportedJob]) -> StoreResult<u64> {
        let mut conn = self.writer.lock().await;
        let conn = &mut conn.0;
        let outcome = async {
            begin_tx(conn, true).await?;
            let mut inserted = 0;
            for job in jobs {
                let row = imported(&job.row);
                let (key, hash) = match &job.idempotency {
                    Some((k, h)) => (Some(k.as_str()), Some(h.as_str())),
                    None => (None, None),
                };
                // No conflict target: an id or an idempotency key already
                // here leaves the copy out.
                let done = sqlx::query(
                    "INSERT INTO jobs (id, tenant, status, priority, memory_bytes, spec, attempt, \
                     cancel_requested, created_ms, started_ms, ended_ms, result, error, \
                     idempotency_key, request_hash) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                )
                .bind(&row.id)
                .bind(&row.tenant)
                .bind(row.status.as_str())
                .bind(row.spec.priority)
                .bind(i64::try_from(row.spec.memory_bytes).unwrap_or(i64::MAX))
                .bind(to_json(&row.spec)?)
                .bind(i64::from(row.attempt))
                .bind(row.cancel_requested)
                .bind(row.created_ms)
                .bind(row.started_ms)
                .bind(row.ended_ms)
                .bind(row.result.as_ref().map(to_json).transpose()?)
                .bind(row.error.as_ref().map(to_json).transpose()?)
                .bind(key)
                .bind(hash)
                .execute(&mut *conn)
                .await?;
                inserted += done.rows_affected();
            }
            Ok(inserted)
        }
        .await;
        let inserted = end_tx(conn, true, outcome).await?;
        if inserted > 0 {
            self.broadcast([StoreEvent::Queued]);
        }
        Ok(inserted)
    }

    async fn import_key(&self, key: &ApiKeyRow) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO api_keys (id, tenant, hash, created_ms, revoked_ms) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&key.id)
        .bind(&key.tenant)
        .bind(&key.hash)
        .bind(key.created_ms)
        .bind(key.revoked_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// A job as a copy stores it: one that was running is queued (no node
/// holds it in the new store), its attempts kept.
pub(super) fn imported(row: &JobRow) -> JobRow {
    let mut row = row.clone();
    if row.status == JobStatus::Running {
        row.status = JobStatus::Queued;
        row.started_ms = None;
    }
    row
}

#[cfg(test)]
mod tests;
