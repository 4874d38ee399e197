//! The SQLite store's own behaviour, beyond the contract every store
//! passes (`contract_tests.rs`): crash recovery on reopen, the data
//! folder's files and its refusal of a database that is not its own,
//! backups, the integrity check, and the schema's migrations from stores
//! made before sqlx's.

use super::*;
use crate::model::JobStatus;
use crate::store::Outcome;
use crate::store::contract_tests::{created, job, result, spec};

#[tokio::test]
async fn a_reopened_store_requeues_running_jobs_and_stale_workers_cannot_complete() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        created(&store, &job("run", "t", None)).await;
        created(&store, &job("cancel-me", "t", None)).await;
        created(&store, &job("wait", "t", None)).await;
        store.claim("run", 1).await.unwrap();
        store.claim("cancel-me", 1).await.unwrap();
        assert!(store.request_cancel("cancel-me").await.unwrap());
        // The process dies here: no finish, no requeue.
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(store.recover(5).await.unwrap(), 2);
    let status = |id: &'static str| {
        let store = store.clone();
        async move { store.get(id).await.unwrap().unwrap().status }
    };
    assert_eq!(status("run").await, JobStatus::Queued);
    assert_eq!(status("cancel-me").await, JobStatus::Cancelled);
    assert_eq!(status("wait").await, JobStatus::Queued);
    let queued: Vec<String> = store
        .queued()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(queued, ["run", "wait"]);
    assert_eq!(store.claim("run", 6).await.unwrap(), Some(2));
    // The worker of attempt 1 (if it had survived) cannot complete it.
    assert!(
        !store
            .finish("run", 1, &Outcome::Completed(result()), 7)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish("run", 2, &Outcome::Completed(result()), 7)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_new_store_holds_no_keys_and_its_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = SqliteStore::open(&data).await.unwrap();
    assert!(!store.keys_held().await.unwrap());
    created(&store, &job("a", "t", None)).await;
    store.probe_write().await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |name: &str| {
            std::fs::metadata(data.join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for name in [DB_FILE, "kettle.db-wal", "kettle.db-shm", folder::ID_FILE] {
            assert_eq!(mode(name), 0o600, "{name}");
        }
    }
}

/// Each way a folder's database can stop being its own: the store refuses
/// to open (and so to start afresh), saying what to do.
#[tokio::test]
async fn a_deleted_truncated_or_replaced_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = SqliteStore::open(&data).await.unwrap();
    created(&store, &job("a", "t", None)).await;
    let backup = dir.path().join("backup.db");
    store.backup(&backup).await.unwrap();
    assert!(
        store.backup(&backup).await.is_err(),
        "a backup never overwrites"
    );
    store.close().await;
    let db = data.join(DB_FILE);
    let remove_db = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    };
    let refused = |e: ServiceError, what: &str| {
        let e = e.to_string();
        assert!(e.contains(what) && e.contains("Restore a backup"), "{e}");
    };

    remove_db();
    refused(SqliteStore::open(&data).await.unwrap_err(), "missing");
    remove_db();
    std::fs::File::create(&db).unwrap();
    refused(SqliteStore::open(&data).await.unwrap_err(), "empty");
    remove_db();
    std::fs::write(&db, b"SQLite format 3\0 and then garbage, a torn copy").unwrap();
    let torn = SqliteStore::open(&data).await.unwrap_err().to_string();
    assert!(
        torn.contains("Restore a backup")
            && (torn.contains("cannot be read") || torn.contains("empty")),
        "{torn}"
    );
    remove_db();
    let other = dir.path().join("other");
    SqliteStore::open(&other).await.unwrap().close().await;
    std::fs::copy(other.join(DB_FILE), &db).unwrap();
    refused(
        SqliteStore::open(&data).await.unwrap_err(),
        "another store's",
    );

    // The backup restores, in place or into a new folder.
    remove_db();
    std::fs::copy(&backup, &db).unwrap();
    let store = SqliteStore::open(&data).await.unwrap();
    assert!(store.get("a").await.unwrap().is_some());
    let restored = dir.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    std::fs::copy(&backup, restored.join(DB_FILE)).unwrap();
    let copy = SqliteStore::open(&restored).await.unwrap();
    assert!(copy.get("a").await.unwrap().is_some());
    assert_eq!(
        copy.store_id().await.unwrap(),
        store.store_id().await.unwrap()
    );
}

#[tokio::test]
async fn the_integrity_check_passes_a_sound_store_and_names_broken_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    created(&store, &job("a", "t", None)).await;
    created(&store, &job("b", "t", None)).await;
    assert_eq!(store.claim("a", 2000).await.unwrap(), Some(1));
    assert!(
        store
            .finish("a", 1, &Outcome::Completed(result()), 3000)
            .await
            .unwrap()
    );
    assert_eq!(store.integrity_check().await.unwrap(), Vec::<String>::new());
    // What a torn write would leave: a completed job without its result.
    sqlx::query("UPDATE jobs SET status = 'completed' WHERE id = 'b'")
        .execute(&store.pool)
        .await
        .unwrap();
    let problems = store.integrity_check().await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("completed without a result") && problems[0].ends_with(": b"));
}

/// The schema of stores made before sqlx's migrations: `MIGRATIONS` of
/// that code, applied in order, with `user_version` counting them.
const OLD_MIGRATIONS: &[&str] = &[
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

/// A raw connection to the folder's database, outside any store.
async fn raw(dir: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join(DB_FILE))
        .create_if_missing(true);
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap()
}

/// A folder written by the kettle before sqlx's migrations (schema
/// `user_version` 2, a queued, a running and a completed job, a key)
/// opens: it keeps its id, jobs and keys, gains the new columns, and can
/// be claimed from.
#[tokio::test]
async fn a_store_from_before_sqlx_migrations_opens_with_its_jobs_and_keys() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let mut conn = raw(dir.path()).await;
    for (i, m) in OLD_MIGRATIONS.iter().enumerate() {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*m))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {}",
            i + 1
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let spec_json = serde_json::to_string(&spec(3)).unwrap();
    let result_json = serde_json::to_string(&result()).unwrap();
    for (id, status, result) in [
        ("q", "queued", None),
        ("r", "running", None),
        ("c", "completed", Some(result_json.as_str())),
    ] {
        sqlx::query(
            "INSERT INTO jobs (id, tenant, status, priority, spec, attempt, created_ms, \
             started_ms, ended_ms, result, idempotency_key, request_hash) \
             VALUES (?, 't', ?, 3, ?, ?, 1, ?, ?, ?, ?, 'h')",
        )
        .bind(id)
        .bind(status)
        .bind(&spec_json)
        .bind(i64::from(status != "queued"))
        .bind((status != "queued").then_some(2_i64))
        .bind(result.map(|_| 3_i64))
        .bind(result)
        .bind(format!("key-{id}"))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO api_keys (id, tenant, hash, created_ms) VALUES ('k', 't', x'01', 1)")
        .execute(&mut conn)
        .await
        .unwrap();
    let old_id: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'store_id'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let store = SqliteStore::open(dir.path()).await.unwrap();
    assert_eq!(store.store_id().await.unwrap(), old_id);
    assert!(store.keys_held().await.unwrap());
    assert_eq!(store.list_keys().await.unwrap().len(), 1);
    let c = store.get("c").await.unwrap().unwrap();
    assert_eq!((c.status, c.result), (JobStatus::Completed, Some(result())));
    let (r, hash) = store.find_idempotent("t", "key-r").await.unwrap().unwrap();
    assert_eq!(
        (r.id.as_str(), r.status, hash.as_str()),
        ("r", JobStatus::Running, "h")
    );
    assert_eq!(store.recover(10).await.unwrap(), 1);
    // The new memory column was filled from the spec: a node too small
    // for 512 bytes claims nothing; one big enough takes the queued jobs.
    let small = Capacity {
        memory_bytes: 100,
        idle_tenants_only: false,
    };
    assert_eq!(store.claim_next(&small, 20, 1000).await.unwrap(), None);
    let big = Capacity {
        memory_bytes: 1 << 20,
        idle_tenants_only: false,
    };
    let first = store.claim_next(&big, 20, 1000).await.unwrap().unwrap();
    assert_eq!((first.id.as_str(), first.attempt), ("q", 1));
    let second = store.claim_next(&big, 20, 1000).await.unwrap().unwrap();
    assert_eq!((second.id.as_str(), second.attempt), ("r", 2));
    store.close().await;

    // Opened again: nothing is applied twice, `user_version` says 3.
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let mut conn = raw(dir.path()).await;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3]);
    let user_version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(user_version, 3);
    assert_eq!(store.list("t", None, 10, None).await.unwrap().len(), 3);
}

/// A store a newer kettle migrated is refused, naming both versions.
#[tokio::test]
async fn a_store_with_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    SqliteStore::open(dir.path()).await.unwrap().close().await;
    let mut conn = raw(dir.path()).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (5, 'future', 1, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let e = SqliteStore::open(dir.path()).await.unwrap_err().to_string();
    assert!(
        e.contains("the store's schema is version 5; this kettle knows up to 3: upgrade kettle"),
        "{e}"
    );
}
