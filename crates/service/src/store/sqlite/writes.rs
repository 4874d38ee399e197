//! The statements of one write batch, inside its transaction.
//!
//! sqlx runs SQLite on a thread of its own, so every statement costs a
//! round trip between threads, which on a busy machine costs more than the
//! statement itself. The three writes every job makes (insert, claim, end)
//! are therefore set-based: one statement carries up to [`CHUNK_ROWS`] jobs
//! as a bound `VALUES` list. So that only a few statement texts are ever
//! prepared (and cached by sqlx), a statement holds 1, 4, 16 or 64 rows,
//! the last one of a batch padded with rows of NULLs that match and insert
//! nothing. (Rows as one JSON array read with `json_each` cost one round
//! trip too, but SQLite re-parses each row's JSON for every field: a
//! quarter of the store's CPU under load.) The rare writes (cancellations,
//! requeues, purges) run one by one.
//!
//! An insert with a tenant limit ([`NewJob::max_active`]) counts the
//! tenant's active jobs first, so it is written by itself, in its place
//! among the inserts; the inserts around it keep their statements.
//!
//! Every claim records `owner`, the store handle's node id, and every end
//! and requeue requires it, beside the attempt: the fencing that keeps a
//! node that lost a job from writing its end.
//!
//! Order: inserts first, then claims, then ends and the rare writes in the
//! order given. That keeps every job's own writes in its life's order,
//! which is all a batch promises: a caller issues a job's next write only
//! after the previous one was committed, except a claim, which an end of
//! the same job may follow within one batch.

use std::collections::HashMap;
use std::sync::LazyLock;

use sqlx::Row;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection};

use super::{find_idempotent_row, to_json};
use crate::error::ServiceError;
use crate::model::JobStatus;
use crate::store::{Inserted, NewJob, Outcome, StoreResult, WriteOp, Written};

/// Applies `ops`; what each did, in the order of `ops`.
pub(super) async fn apply_all(
    conn: &mut SqliteConnection,
    ops: &[WriteOp],
    owner: &str,
) -> StoreResult<Vec<Written>> {
    let mut out: Vec<Option<Written>> = ops.iter().map(|_| None).collect();
    let (mut inserts, mut claims, mut ends) = (Vec::new(), Vec::new(), Vec::new());
    for (i, op) in ops.iter().enumerate() {
        match op {
            WriteOp::Insert(job) => inserts.push((i, &**job)),
            WriteOp::Claim { id, now_ms } => claims.push((
                i,
                ClaimRow {
                    id,
                    now_ms: *now_ms,
                    owner,
                },
            )),
            WriteOp::Finish {
                id,
                attempt,
                outcome,
                now_ms,
            } => ends.push((i, end_row(id, *attempt, outcome, *now_ms, owner)?)),
            _ => {}
        }
    }
    for (i, inserted) in insert_all(conn, &inserts, owner).await? {
        out[i] = Some(Written::Inserted(Box::new(inserted)));
    }
    let claimed = claim_all(conn, &claims).await?;
    for (i, row) in &claims {
        let attempt = claimed.get(row.id).copied();
        out[*i] = Some(Written::Claimed(attempt));
    }
    let ended = end_all(conn, &ends).await?;
    for (i, row) in &ends {
        let attempt = i64::from(row.attempt);
        out[*i] = Some(Written::Changed(ended.get(row.id) == Some(&attempt)));
    }
    for (i, op) in ops.iter().enumerate() {
        if out[i].is_none() {
            out[i] = Some(apply_one(conn, op, owner).await?);
        }
    }
    out.into_iter()
        .map(|w| w.ok_or_else(|| ServiceError::Store("a write was not applied".into())))
        .collect()
}

/// Rows of one set-based statement, at most.
const CHUNK_ROWS: usize = 64;
/// Row counts statements are prepared for, smallest first.
const SIZES: [usize; 4] = [1, 4, 16, CHUNK_ROWS];

const INSERT_COLUMNS: usize = 17;
const CLAIM_COLUMNS: usize = 3;
const END_COLUMNS: usize = 7;

/// The statement texts, per kind and per entry of [`SIZES`].
struct Statements {
    insert: Vec<String>,
    claim: Vec<String>,
    end: Vec<String>,
}

static STATEMENTS: LazyLock<Statements> = LazyLock::new(|| {
    let each = |columns: usize, sql: &dyn Fn(&str) -> String| -> Vec<String> {
        SIZES
            .iter()
            .map(|&rows| {
                let row = format!("({})", vec!["?"; columns].join(", "));
                sql(&vec![row; rows].join(", "))
            })
            .collect()
    };
    Statements {
        // The unique index decides between a new job and a replay, even
        // when two retries race or share this batch. (`WHERE` parts the
        // SELECT from the upsert clause, as SQLite's grammar requires.)
        insert: each(INSERT_COLUMNS, &|values| {
            format!(
                "INSERT INTO jobs (id, tenant, priority, spec, created_ms, idempotency_key, \
                 request_hash, status, attempt, cancel_requested, started_ms, ended_ms, result, error, \
                 memory_bytes, owner, lease_until_ms) \
                 SELECT * FROM (VALUES {values}) WHERE column1 IS NOT NULL \
                 ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
                 RETURNING id, seq"
            )
        }),
        claim: each(CLAIM_COLUMNS, &|values| {
            format!(
                "WITH c (id, now_ms, owner) AS (VALUES {values}) \
                 UPDATE jobs SET status = 'running', attempt = attempt + 1, started_ms = c.now_ms, \
                 owner = c.owner, lease_until_ms = NULL \
                 FROM c WHERE jobs.id = c.id AND jobs.status = 'queued' \
                 RETURNING jobs.id, jobs.attempt"
            )
        }),
        // The status, attempt and owner guard make an end happen once: a
        // worker that lost its claim (restart, requeue, another node's
        // claim after its lease ended) changes nothing.
        end: each(END_COLUMNS, &|values| {
            format!(
                "WITH e (id, attempt, status, result, error, now_ms, owner) AS (VALUES {values}) \
                 UPDATE jobs SET status = e.status, result = e.result, error = e.error, \
                 ended_ms = e.now_ms, lease_until_ms = NULL \
                 FROM e WHERE jobs.id = e.id AND jobs.status = 'running' AND jobs.attempt = e.attempt \
                 AND jobs.owner = e.owner \
                 RETURNING jobs.id, jobs.attempt"
            )
        }),
    }
});

type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

/// Runs `rows` through the statements `texts` (one per entry of [`SIZES`]),
/// `bind` adding one row's values; the `(id, value)` pairs returned.
async fn set_based<T>(
    conn: &mut SqliteConnection,
    texts: &'static [String],
    columns: usize,
    rows: &[T],
    bind: impl for<'q> Fn(Query<'q>, &'q T) -> Query<'q>,
) -> StoreResult<HashMap<String, i64>> {
    let mut out = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(CHUNK_ROWS) {
        let size = SIZES
            .iter()
            .position(|&s| s >= chunk.len())
            .unwrap_or(SIZES.len() - 1);
        let mut query = sqlx::query(texts[size].as_str());
        for row in chunk {
            query = bind(query, row);
        }
        for _ in 0..(SIZES[size] - chunk.len()) * columns {
            query = query.bind(None::<i64>);
        }
        for r in query.fetch_all(&mut *conn).await? {
            out.insert(r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?);
        }
    }
    Ok(out)
}

struct InsertRow<'a> {
    job: &'a NewJob,
    /// A job stored running is this node's.
    owner: Option<&'a str>,
    spec: String,
    result: Option<String>,
    error: Option<String>,
}

struct ClaimRow<'a> {
    id: &'a str,
    now_ms: i64,
    owner: &'a str,
}

struct EndRow<'a> {
    id: &'a str,
    attempt: u32,
    status: &'static str,
    result: Option<String>,
    error: Option<String>,
    now_ms: i64,
    owner: &'a str,
}

fn end_row<'a>(
    id: &'a str,
    attempt: u32,
    outcome: &Outcome,
    now_ms: i64,
    owner: &'a str,
) -> StoreResult<EndRow<'a>> {
    let (status, result, error) = outcome.columns()?;
    Ok(EndRow {
        id,
        attempt,
        status,
        result,
        error,
        now_ms,
        owner,
    })
}

/// The inserts in their order: runs of unlimited ones set-based, each
/// limited one by itself.
async fn insert_all(
    conn: &mut SqliteConnection,
    jobs: &[(usize, &NewJob)],
    owner: &str,
) -> StoreResult<Vec<(usize, Inserted)>> {
    let mut out = Vec::with_capacity(jobs.len());
    let mut rest = jobs;
    while !rest.is_empty() {
        let run = rest
            .iter()
            .position(|(_, job)| job.max_active.is_some())
            .unwrap_or(rest.len());
        if run > 0 {
            out.extend(insert_bulk(conn, &rest[..run], owner).await?);
            rest = &rest[run..];
            continue;
        }
        let (i, job) = rest[0];
        out.push((i, insert_limited(conn, (i, job), owner).await?));
        rest = &rest[1..];
    }
    Ok(out)
}

/// An insert under [`NewJob::max_active`]: a replay of its idempotency key
/// is answered first (a retry of an accepted job is not turned down), then
/// the tenant's queued and running jobs are counted, in this transaction.
async fn insert_limited(
    conn: &mut SqliteConnection,
    (i, job): (usize, &NewJob),
    owner: &str,
) -> StoreResult<Inserted> {
    if let Some((key, _)) = &job.idempotency
        && find_idempotent_row(conn, &job.tenant, key).await?.is_some()
    {
        return replay(conn, job).await;
    }
    let limit = job.max_active.unwrap_or(u32::MAX);
    let active: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE tenant = ? AND status IN ('queued', 'running')",
    )
    .bind(&job.tenant)
    .fetch_one(&mut *conn)
    .await?;
    let active = u64::try_from(active).unwrap_or(0);
    if active >= u64::from(limit) {
        return Ok(Inserted::TooMany(active));
    }
    let mut done = insert_bulk(conn, &[(i, job)], owner).await?;
    done.pop()
        .map(|(_, inserted)| inserted)
        .ok_or_else(|| ServiceError::Store("an insert answered nothing".into()))
}

async fn insert_bulk(
    conn: &mut SqliteConnection,
    jobs: &[(usize, &NewJob)],
    owner: &str,
) -> StoreResult<Vec<(usize, Inserted)>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let rows = jobs
        .iter()
        .map(|&(_, job)| {
            Ok(InsertRow {
                job,
                owner: (job.state.status == JobStatus::Running).then_some(owner),
                spec: to_json(&job.spec)?,
                result: job.state.result.as_ref().map(to_json).transpose()?,
                error: job.state.error.as_ref().map(to_json).transpose()?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let seqs = set_based(conn, &STATEMENTS.insert, INSERT_COLUMNS, &rows, |q, r| {
        let (job, state) = (r.job, &r.job.state);
        let (key, hash) = match &job.idempotency {
            Some((k, h)) => (Some(k.as_str()), Some(h.as_str())),
            None => (None, None),
        };
        q.bind(job.id.as_str())
            .bind(job.tenant.as_str())
            .bind(job.spec.priority)
            .bind(r.spec.as_str())
            .bind(job.created_ms)
            .bind(key)
            .bind(hash)
            .bind(state.status.as_str())
            .bind(i64::from(state.attempt))
            .bind(state.cancel_requested)
            .bind(state.started_ms)
            .bind(state.ended_ms)
            .bind(r.result.as_deref())
            .bind(r.error.as_deref())
            .bind(i64::try_from(job.spec.memory_bytes).unwrap_or(i64::MAX))
            .bind(r.owner)
            .bind(r.owner.and(job.lease_until_ms))
    })
    .await?;
    let mut out = Vec::with_capacity(jobs.len());
    for &(i, job) in jobs {
        let inserted = match seqs.get(&job.id) {
            Some(&seq) => Inserted::Created(job.created_row(seq)),
            None => replay(conn, job).await?,
        };
        out.push((i, inserted));
    }
    Ok(out)
}

/// A job whose insert the idempotency index turned down: the job that
/// holds its key, if the request was the same.
async fn replay(conn: &mut SqliteConnection, job: &NewJob) -> StoreResult<Inserted> {
    let Some((key, hash)) = &job.idempotency else {
        return Err(ServiceError::Store("a job insert changed no row".into()));
    };
    // In the same transaction: the row that holds the key is still there.
    match find_idempotent_row(conn, &job.tenant, key).await? {
        Some((row, stored)) if &stored == hash => Ok(Inserted::Existing(row)),
        Some(_) => Ok(Inserted::Conflict),
        None => Err(ServiceError::Store(
            "an idempotency key conflicted with no row".into(),
        )),
    }
}

/// The attempt number of each job claimed.
async fn claim_all(
    conn: &mut SqliteConnection,
    claims: &[(usize, ClaimRow<'_>)],
) -> StoreResult<HashMap<String, u32>> {
    if claims.is_empty() {
        return Ok(HashMap::new());
    }
    let attempts = set_based(
        conn,
        &STATEMENTS.claim,
        CLAIM_COLUMNS,
        claims,
        |q, (_, c)| q.bind(c.id).bind(c.now_ms).bind(c.owner),
    )
    .await?;
    Ok(attempts
        .into_iter()
        .map(|(id, a)| (id, u32::try_from(a).unwrap_or(u32::MAX)))
        .collect())
}

/// The jobs ended, with the attempt that ended each.
async fn end_all(
    conn: &mut SqliteConnection,
    ends: &[(usize, EndRow<'_>)],
) -> StoreResult<HashMap<String, i64>> {
    if ends.is_empty() {
        return Ok(HashMap::new());
    }
    set_based(conn, &STATEMENTS.end, END_COLUMNS, ends, |q, (_, e)| {
        q.bind(e.id)
            .bind(i64::from(e.attempt))
            .bind(e.status)
            .bind(e.result.as_deref())
            .bind(e.error.as_deref())
            .bind(e.now_ms)
            .bind(e.owner)
    })
    .await
}

/// One of the rare writes.
async fn apply_one(conn: &mut SqliteConnection, op: &WriteOp, owner: &str) -> StoreResult<Written> {
    let changed =
        |done: sqlx::sqlite::SqliteQueryResult| Written::Changed(done.rows_affected() == 1);
    Ok(match op {
        WriteOp::Requeue { id, attempt } => changed(
            sqlx::query(
                // The stopped run is not counted: a job is failed after
                // MAX_ATTEMPTS runs without an outcome, and a graceful
                // stop (a restart, a deployment) is not the job's doing.
                "UPDATE jobs SET status = 'queued', started_ms = NULL, attempt = attempt - 1, \
                 owner = NULL, lease_until_ms = NULL \
                 WHERE id = ? AND status = 'running' AND attempt = ? AND owner = ?",
            )
            .bind(id)
            .bind(i64::from(*attempt))
            .bind(owner)
            .execute(&mut *conn)
            .await?,
        ),
        WriteOp::CancelQueued { id, error, now_ms } => changed(
            sqlx::query(
                "UPDATE jobs SET status = 'cancelled', error = ?, ended_ms = ? \
                 WHERE id = ? AND status = 'queued'",
            )
            .bind(to_json(error)?)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *conn)
            .await?,
        ),
        // A job the scheduler has handed to a worker may still read
        // `queued` here (its claim is written lazily, after this): the flag
        // counts for both, and recovery cancels either.
        WriteOp::RequestCancel { id } => changed(
            sqlx::query(
                "UPDATE jobs SET cancel_requested = 1 \
                 WHERE id = ? AND status IN ('queued', 'running')",
            )
            .bind(id)
            .execute(&mut *conn)
            .await?,
        ),
        WriteOp::Purge { before_ms, limit } => Written::Deleted(
            sqlx::query(
                "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs \
                 WHERE ended_ms IS NOT NULL AND ended_ms < ? \
                 AND status IN ('completed', 'failed', 'cancelled') LIMIT ?)",
            )
            .bind(before_ms)
            .bind(i64::from(*limit))
            .execute(&mut *conn)
            .await?
            .rows_affected(),
        ),
        WriteOp::Insert(_) | WriteOp::Claim { .. } | WriteOp::Finish { .. } => {
            return Err(ServiceError::Store(
                "a set-based write was left to run alone".into(),
            ));
        }
    })
}
