//! [`SqliteStore`]: the embedded job store, one SQLite file under the data
//! folder, through sqlx.
//!
//! Durability: WAL journal with `synchronous = FULL`, so a commit has reached
//! the disk (fsync of the WAL) before `insert` returns and the HTTP layer
//! answers `201`; a power cut loses no acknowledged job. Schema changes are
//! numbered migrations applied in a transaction, tracked with SQLite's
//! `user_version`.

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
    ApiKeyRow, Inserted, JobRow, JobStore, NewJob, Outcome, ResultText, StoreResult, WriteOp,
    Written,
};
use crate::error::ServiceError;
use crate::model::{JobError, JobStatus};

mod writes;

use super::folder;

/// The database file's name inside the data folder.
pub(crate) const DB_FILE: &str = "kettle.db";

/// Migrations, in order; migration `i` brings `user_version` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    tenant           TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    spec             TEXT    NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_ms       INTEGER NOT NULL,
    started_ms       INTEGER,
    ended_ms         INTEGER,
    result           TEXT,
    error            TEXT,
    idempotency_key  TEXT,
    request_hash     TEXT
);
CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_tenant_seq ON jobs (tenant, seq);
CREATE INDEX jobs_status ON jobs (status, seq);
CREATE INDEX jobs_ended ON jobs (ended_ms) WHERE ended_ms IS NOT NULL;
CREATE TABLE api_keys (
    id         TEXT    PRIMARY KEY,
    tenant     TEXT    NOT NULL,
    hash       BLOB    NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
"#,
    // The store's identity (also in the folder's marker file, so that a start
    // can tell a deleted or replaced database), and whether it has ever held an
    // API key: set by the first key, never cleared by revoking (authentication
    // fails closed).
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))));
INSERT INTO meta (key, value) SELECT 'keys_held', '1' WHERE EXISTS (SELECT 1 FROM api_keys);
CREATE TRIGGER api_keys_held AFTER INSERT ON api_keys
BEGIN
    INSERT OR IGNORE INTO meta (key, value) VALUES ('keys_held', '1');
END;
"#,
];

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
}

#[derive(Debug)]
struct WriterConn(SqliteConnection);

fn json_err(what: &str, e: serde_json::Error) -> ServiceError {
    ServiceError::Store(format!("stored {what} is unreadable: {e}"))
}

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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(ServiceError::Store(format!(
                "the database has schema version {version}, newer than this build's {known}; use a newer kettle"
            )));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            sqlx::raw_sql(*m).execute(&mut *tx).await?;
            sqlx::query(sql(format!("PRAGMA user_version = {}", i + 1)))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| ServiceError::Unstorable(e.to_string()))
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

impl SqliteStore {
    async fn one(&self, op: WriteOp) -> StoreResult<Written> {
        self.write_batch(std::slice::from_ref(&op), true)
            .await?
            .pop()
            .ok_or_else(|| ServiceError::Store("a write batch answered nothing".into()))
    }

    async fn changed(&self, op: WriteOp) -> StoreResult<bool> {
        match self.one(op).await? {
            Written::Changed(b) => Ok(b),
            other => Err(ServiceError::Store(format!(
                "unexpected write result {other:?}"
            ))),
        }
    }
}

#[async_trait::async_trait]
impl JobStore for SqliteStore {
    async fn write_batch(&self, ops: &[WriteOp], durable: bool) -> StoreResult<Vec<Written>> {
        let mut conn = self.writer.lock().await;
        let conn = &mut conn.0;
        // Each call below is one round trip to sqlx's SQLite thread, so
        // statements that belong together share one. Without `durable`,
        // this connection's commit writes the WAL without waiting for the
        // disk (`synchronous` is per connection), and is put back after.
        let (begin, commit) = if durable {
            ("BEGIN IMMEDIATE", "COMMIT")
        } else {
            (
                "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
                "COMMIT; PRAGMA synchronous = FULL",
            )
        };
        let outcome = async {
            sqlx::raw_sql(begin).execute(&mut *conn).await?;
            let out = writes::apply_all(conn, ops).await?;
            sqlx::raw_sql(commit).execute(&mut *conn).await?;
            Ok(out)
        }
        .await;
        if outcome.is_err() {
            // Whatever failed (the batch, the commit), leave the connection
            // as it was: no open transaction, synchronous FULL.
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            sqlx::raw_sql("PRAGMA synchronous = FULL")
                .execute(&mut *conn)
                .await?;
        }
        outcome
    }

    async fn insert(&self, job: &NewJob) -> StoreResult<Inserted> {
        match self.one(WriteOp::Insert(Box::new(job.clone()))).await? {
            Written::Inserted(i) => Ok(*i),
            other => Err(ServiceError::Store(format!(
                "unexpected write result {other:?}"
            ))),
        }
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

    async fn claim(&self, id: &str, now_ms: i64) -> StoreResult<Option<u32>> {
        match self
            .one(WriteOp::Claim {
                id: id.to_owned(),
                now_ms,
            })
            .await?
        {
            Written::Claimed(a) => Ok(a),
            other => Err(ServiceError::Store(format!(
                "unexpected write result {other:?}"
            ))),
        }
    }

    async fn finish(
        &self,
        id: &str,
        attempt: u32,
        outcome: &Outcome,
        now_ms: i64,
    ) -> StoreResult<bool> {
        self.changed(WriteOp::Finish {
            id: id.to_owned(),
            attempt,
            outcome: outcome.clone(),
            now_ms,
        })
        .await
    }

    async fn requeue(&self, id: &str, attempt: u32) -> StoreResult<bool> {
        self.changed(WriteOp::Requeue {
            id: id.to_owned(),
            attempt,
        })
        .await
    }

    async fn cancel_queued(&self, id: &str, error: &JobError, now_ms: i64) -> StoreResult<bool> {
        self.changed(WriteOp::CancelQueued {
            id: id.to_owned(),
            error: error.clone(),
            now_ms,
        })
        .await
    }

    async fn request_cancel(&self, id: &str) -> StoreResult<bool> {
        self.changed(WriteOp::RequestCancel { id: id.to_owned() })
            .await
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
            "UPDATE jobs SET status = 'queued', started_ms = NULL WHERE status = 'running'",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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
            match self.one(WriteOp::Purge { before_ms, limit }).await? {
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
        "stub"
    }
    async fn claim_next(
        &self,
        _capacity: &super::Capacity,
        _now_ms: i64,
        _lease_ms: i64,
    ) -> StoreResult<Option<JobRow>> {
        Err(ServiceError::Store("stub".into()))
    }
    async fn renew_leases(
        &self,
        _jobs: &[(String, u32)],
        _now_ms: i64,
        _lease_ms: i64,
    ) -> StoreResult<Vec<Option<bool>>> {
        Err(ServiceError::Store("stub".into()))
    }
    async fn active_count(&self, _tenant: &str) -> StoreResult<u64> {
        Err(ServiceError::Store("stub".into()))
    }
    async fn count_by_tenant_status(&self) -> StoreResult<Vec<(String, JobStatus, u64)>> {
        Err(ServiceError::Store("stub".into()))
    }
    fn events(&self) -> tokio::sync::broadcast::Receiver<super::StoreEvent> {
        tokio::sync::broadcast::channel(1).1
    }
    async fn export_jobs(
        &self,
        _after_seq: i64,
        _limit: u32,
    ) -> StoreResult<Vec<super::ExportedJob>> {
        Err(ServiceError::Store("stub".into()))
    }
    async fn import_jobs(&self, _jobs: &[super::ExportedJob]) -> StoreResult<u64> {
        Err(ServiceError::Store("stub".into()))
    }
    async fn import_key(&self, _key: &ApiKeyRow) -> StoreResult<bool> {
        Err(ServiceError::Store("stub".into()))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
