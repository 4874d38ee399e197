//! The store as `kettle keys` and `kettle store` work on it, outside a
//! server: API keys, SQLite backups, and copying a whole installation from
//! one store to another (`kettle store copy`, e.g. from an SQLite folder to
//! the PostgreSQL database of a cluster).
//!
//! Keys and backups open an SQLite folder without its lock, so they work
//! beside a running server (the server reads keys from the store on every
//! request, and `VACUUM INTO` reads a consistent snapshot). A copy opens
//! both stores through [`store::open`], which locks an SQLite folder: a copy
//! from a folder a server is still changing would miss its last jobs, and
//! one into a folder a server runs on would put jobs behind the back of its
//! in-memory queue.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kettle_service::keys::{self, CreatedKey, KeyInfo};
use kettle_service::store::{self, ApiKeyRow, JobStore, OpenedStore, StoreLocation};
use kettle_service::{ServiceError, SqliteStore};

use crate::ServerError;

/// Jobs moved per transaction by [`store_copy`].
const COPY_PAGE: u32 = 500;
/// Ids named at most in a copy's report of what went wrong.
const NAMED: usize = 10;

/// A store given to [`keys_create`] and the other functions here: a
/// [`StoreLocation`], or the path of a data folder (an SQLite store).
pub trait AsStoreLocation {
    /// The location.
    fn to_store_location(&self) -> StoreLocation;
}

impl AsStoreLocation for StoreLocation {
    fn to_store_location(&self) -> StoreLocation {
        self.clone()
    }
}

impl AsStoreLocation for Path {
    fn to_store_location(&self) -> StoreLocation {
        StoreLocation::Sqlite(self.to_path_buf())
    }
}

impl AsStoreLocation for PathBuf {
    fn to_store_location(&self) -> StoreLocation {
        StoreLocation::Sqlite(self.clone())
    }
}

/// Runs `work` to its end on a runtime of its own, on a thread of its own,
/// so that callers inside an async runtime (tests, embedding programs) can
/// call these blocking functions too.
fn blocking<T: Send, F: Future<Output = Result<T, ServerError>>>(
    work: impl FnOnce() -> F + Send,
) -> Result<T, ServerError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(work())
            })
            .join()
            .unwrap_or_else(|_| Err(ServerError::Config("the store thread panicked".into())))
    })
}

/// Opens `location` for keys: an SQLite folder without its lock (a server
/// may be running on it), anything else as a server opens it.
async fn open_beside_servers(location: &StoreLocation) -> Result<OpenedStore, ServiceError> {
    match location {
        StoreLocation::Sqlite(dir) => Ok(OpenedStore {
            store: Arc::new(SqliteStore::open(dir).await?),
            lock: None,
        }),
        StoreLocation::Postgres(_) => store::open(location).await,
    }
}

fn with_store<T: Send>(
    location: &StoreLocation,
    f: impl AsyncFnOnce(&dyn JobStore) -> Result<T, ServiceError> + Send,
) -> Result<T, ServerError> {
    blocking(|| async {
        let opened = open_beside_servers(location).await?;
        Ok(f(opened.store.as_ref()).await?)
    })
}

/// `kettle keys create TENANT`: a new key for `tenant` in `store`; its
/// plaintext is in the result and nowhere else. A running server that
/// requires keys accepts it at once (every node of a shared store); one in
/// local mode keeps serving without keys until restarted (and then
/// requires them, unless started with `--local`).
///
/// # Errors
/// A bad tenant name or a store failure.
pub fn keys_create(
    store: &(impl AsStoreLocation + ?Sized),
    tenant: &str,
) -> Result<CreatedKey, ServerError> {
    with_store(&store.to_store_location(), async |s| {
        keys::create_key(s, tenant).await
    })
}

/// `kettle keys list`: every key (never a secret), oldest first.
///
/// # Errors
/// A store failure.
pub fn keys_list(store: &(impl AsStoreLocation + ?Sized)) -> Result<Vec<KeyInfo>, ServerError> {
    with_store(&store.to_store_location(), async |s| {
        keys::list_keys(s).await
    })
}

/// `kettle keys revoke ID`: whether the key was active. Takes effect on
/// the next request, also on running servers.
///
/// # Errors
/// A store failure.
pub fn keys_revoke(store: &(impl AsStoreLocation + ?Sized), id: &str) -> Result<bool, ServerError> {
    with_store(&store.to_store_location(), async |s| {
        keys::revoke_key(s, id).await
    })
}

/// `kettle store backup PATH`: a consistent copy of the SQLite store in
/// `store`, also while a server runs on it (SQLite's `VACUUM INTO`), in the
/// new file `path`. Restore: put the copy, named `kettle.db`, into an empty
/// folder and serve that folder. A PostgreSQL store is backed up with
/// PostgreSQL's own tools.
///
/// # Errors
/// A PostgreSQL store, no store in the folder, `path` exists, or the copy
/// fails.
pub fn store_backup(
    store: &(impl AsStoreLocation + ?Sized),
    path: &Path,
) -> Result<(), ServerError> {
    let data_dir = match store.to_store_location() {
        StoreLocation::Sqlite(dir) => dir,
        postgres @ StoreLocation::Postgres(_) => {
            return Err(ServerError::Store(format!(
                "`kettle store backup` copies an SQLite store; {postgres} is PostgreSQL: back it \
                 up with pg_dump (`pg_dump --format=custom --file=kettle.dump DBNAME`) or \
                 PostgreSQL's continuous archiving, or copy it into an SQLite folder with \
                 `kettle store copy --from URL --to sqlite:DIR`"
            )));
        }
    };
    if !data_dir.join("kettle.db").is_file() {
        return Err(ServerError::Store(format!(
            "there is no store in {} (no kettle.db)",
            data_dir.display()
        )));
    }
    if path.exists() {
        return Err(ServerError::Store(format!(
            "{} exists already; a backup goes into a new file",
            path.display()
        )));
    }
    blocking(|| async { Ok(SqliteStore::open(&data_dir).await?.backup(path).await?) })
}

/// What [`store_copy`] did, for jobs or for API keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Copied {
    /// In the source.
    pub source: u64,
    /// Inserted into the destination now.
    pub copied: u64,
    /// In the destination before the copy (a copy run again adds nothing).
    pub present: u64,
    /// Ids in the source the destination lacks after the copy (at most a
    /// few named; `missing` counts them all).
    pub missing_ids: Vec<String>,
    /// How many the destination lacks after the copy.
    pub missing: u64,
    /// API keys only: ids whose row in the destination is not the source's
    /// (another tenant or secret, or revoked on one side only), at most a
    /// few named; `differing` counts them all.
    pub differing_ids: Vec<String>,
    /// How many differ.
    pub differing: u64,
}

impl Copied {
    /// Every one is in the destination, as in the source, and the counts
    /// agree: `source = copied + present`.
    pub fn complete(&self) -> bool {
        self.missing == 0 && self.differing == 0 && self.source == self.copied + self.present
    }

    fn miss(&mut self, id: &str) {
        self.missing += 1;
        if self.missing_ids.len() < NAMED {
            self.missing_ids.push(id.to_owned());
        }
    }

    fn differ(&mut self, id: &str) {
        self.differing += 1;
        if self.differing_ids.len() < NAMED {
            self.differing_ids.push(id.to_owned());
        }
    }
}

/// What `kettle store copy` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Jobs, with their results and idempotency keys.
    pub jobs: Copied,
    /// API keys, revoked ones included.
    pub keys: Copied,
}

impl CopyReport {
    /// Both checks passed.
    pub fn complete(&self) -> bool {
        self.jobs.complete() && self.keys.complete()
    }
}

/// Opens one side of a copy, saying which side an error is about.
async fn open_side(side: &str, location: &StoreLocation) -> Result<OpenedStore, ServerError> {
    if let StoreLocation::Sqlite(dir) = location
        && side == "source"
        && !dir.join("kettle.db").is_file()
    {
        // Opening would create an empty store there and copy nothing.
        return Err(ServerError::Store(format!(
            "the source {location}: there is no store in {} (no kettle.db)",
            dir.display()
        )));
    }
    store::open(location)
        .await
        .map_err(|e| ServerError::Store(format!("the {side} {location}: {e}")))
}

/// Whether `a` and `b` name the same store (an SQLite folder by any path).
fn same_store(a: &StoreLocation, b: &StoreLocation) -> bool {
    match (a, b) {
        (StoreLocation::Sqlite(a), StoreLocation::Sqlite(b)) => {
            a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
        }
        _ => a == b,
    }
}

/// `kettle store copy --from FROM --to TO`: copies every job (results and
/// idempotency keys included; a running one arrives queued) and every API
/// key (revoked ones too) from `from` into `to`, then checks that each is
/// there. What is in `to` already is left alone, so a copy run again adds
/// nothing. Both stores are opened as a server opens them: an SQLite folder
/// a server runs on is refused (stop it first), and a PostgreSQL database
/// gets its schema.
///
/// # Errors
/// The same store twice, either store cannot be opened, or a read or write
/// fails. Jobs or keys that did not arrive are not an error: the report
/// says so ([`CopyReport::complete`]).
pub fn store_copy(from: &StoreLocation, to: &StoreLocation) -> Result<CopyReport, ServerError> {
    if same_store(from, to) {
        return Err(ServerError::Store(format!(
            "the source and the destination are the same store ({from})"
        )));
    }
    blocking(|| async {
        let source = open_side("source", from).await?;
        let destination = open_side("destination", to).await?;
        let (src, dst) = (source.store.as_ref(), destination.store.as_ref());
        Ok(CopyReport {
            jobs: copy_jobs(src, dst).await?,
            keys: copy_keys(src, dst).await?,
        })
    })
}

async fn copy_jobs(src: &dyn JobStore, dst: &dyn JobStore) -> Result<Copied, ServiceError> {
    let mut copied = Copied::default();
    let mut after = i64::MIN;
    loop {
        let page = src.export_jobs(after, COPY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.row.seq;
        // Counted before and after the import, by looking each one up,
        // rather than trusting the import's own count.
        for job in &page {
            if dst.get_summary(&job.row.id).await?.is_some() {
                copied.present += 1;
            }
        }
        copied.copied += dst.import_jobs(&page).await?;
        for job in &page {
            copied.source += 1;
            if dst.get_summary(&job.row.id).await?.is_none() {
                copied.miss(&job.row.id);
            }
        }
    }
    Ok(copied)
}

async fn copy_keys(src: &dyn JobStore, dst: &dyn JobStore) -> Result<Copied, ServiceError> {
    let mut copied = Copied::default();
    for key in src.list_keys().await? {
        copied.source += 1;
        if dst.find_key(&key.id).await?.is_some() {
            copied.present += 1;
        }
        if dst.import_key(&key).await? {
            copied.copied += 1;
        }
        match dst.find_key(&key.id).await? {
            None => copied.miss(&key.id),
            Some(there) if !same_key(&there, &key) => copied.differ(&key.id),
            Some(_) => {}
        }
    }
    Ok(copied)
}

/// A key as it authenticates: the same tenant, secret and revocation (a key
/// revoked in the source after an earlier copy must not stay usable in the
/// destination unnoticed).
fn same_key(a: &ApiKeyRow, b: &ApiKeyRow) -> bool {
    a.tenant == b.tenant && a.hash == b.hash && a.revoked_ms.is_some() == b.revoked_ms.is_some()
}
