//! Where the store lives, and the one place a store is chosen and opened:
//! `sqlite:DIR` (or a bare folder path) is the embedded default, one
//! service per folder; `postgres://…` (or `postgresql://…`) is a database
//! any number of nodes share.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use super::{DataDirLock, JobStore, PgStore, SqliteStore, StoreResult};

/// A store's location, as `--store`, `KETTLE_STORE` and `store =` in
/// `kettle.toml` give it.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite database in this data folder.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (it may carry a password: shown without
    /// it).
    Postgres(String),
}

impl StoreLocation {
    /// The data folder, for an SQLite store.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        match self {
            StoreLocation::Sqlite(dir) => Some(dir),
            StoreLocation::Postgres(_) => None,
        }
    }
}

/// The URL with any password replaced by `***`, for logs and messages.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The host follows the last `@`: a careless password may hold a `/` or
    // an `@` unescaped, and must not show for it.
    let (userinfo, tail) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut out = format!("{scheme}://");
    match userinfo.map(|info| {
        info.split_once(':')
            .map_or((info, false), |(u, _)| (u, true))
    }) {
        Some((user, true)) => out.push_str(&format!("{user}:***@")),
        Some((user, false)) => out.push_str(&format!("{user}@")),
        None => {}
    }
    // A password may also come as a query parameter (`?password=…`).
    match tail.split_once('?') {
        Some((before, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            out.push_str(&format!("{before}?{}", params.join("&")));
        }
        None => out.push_str(tail),
    }
    out
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(dir) => write!(f, "sqlite:{}", dir.display()),
            StoreLocation::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for StoreLocation {
    type Err = String;

    fn from_str(text: &str) -> Result<StoreLocation, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err(
                "the store location is empty: give `sqlite:DIR` or `postgres://USER@HOST/DB`"
                    .into(),
            );
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(text.to_owned()));
        }
        if let Some(dir) = text.strip_prefix("sqlite:") {
            let dir = dir.strip_prefix("//").unwrap_or(dir);
            if dir.is_empty() {
                return Err("`sqlite:` needs a folder: `sqlite:DIR`".into());
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(dir)));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return Err(format!(
                "unknown store `{scheme}://`: give `sqlite:DIR` or `postgres://USER@HOST/DB`"
            ));
        }
        Ok(StoreLocation::Sqlite(PathBuf::from(text)))
    }
}

/// An opened store, and the data folder's lock when it has one (held for
/// as long as the store is used).
#[derive(Debug)]
pub struct OpenedStore {
    /// The store.
    pub store: Arc<dyn JobStore>,
    /// The SQLite data folder's lock.
    pub lock: Option<DataDirLock>,
}

/// Opens the store at `location`, creating or migrating its schema. An
/// SQLite folder is locked first (a second service on it is refused,
/// naming the first one's PID).
///
/// # Errors
/// The folder is in use or damaged, the database cannot be reached, or its
/// schema is newer than this build knows.
pub async fn open(location: &StoreLocation) -> StoreResult<OpenedStore> {
    match location {
        StoreLocation::Sqlite(dir) => {
            let lock = DataDirLock::acquire(dir)?;
            let store = SqliteStore::open(dir).await?;
            Ok(OpenedStore {
                store: Arc::new(store),
                lock: Some(lock),
            })
        }
        // No lock: any number of nodes share the database.
        StoreLocation::Postgres(url) => Ok(OpenedStore {
            store: Arc::new(PgStore::connect(url).await?),
            lock: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let sqlite = |s: &str| StoreLocation::from_str(s).unwrap();
        assert_eq!(
            sqlite("sqlite:/var/kettle"),
            StoreLocation::Sqlite("/var/kettle".into())
        );
        assert_eq!(sqlite("sqlite:data"), StoreLocation::Sqlite("data".into()));
        assert_eq!(
            sqlite("sqlite:///abs"),
            StoreLocation::Sqlite("/abs".into())
        );
        assert_eq!(sqlite("./data"), StoreLocation::Sqlite("./data".into()));
        assert_eq!(
            sqlite("postgres://k@db/kettle"),
            StoreLocation::Postgres("postgres://k@db/kettle".into())
        );
        assert!(
            StoreLocation::from_str("mysql://x")
                .unwrap_err()
                .contains("mysql://")
        );
        assert!(StoreLocation::from_str("").is_err());
        assert!(StoreLocation::from_str("sqlite:").is_err());
    }

    #[test]
    fn passwords_are_not_shown() {
        let l =
            StoreLocation::from_str("postgres://kettle:s3cret@db:5432/k?sslmode=require").unwrap();
        let shown = l.to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(shown, "postgres://kettle:***@db:5432/k?sslmode=require");
        assert_eq!(format!("{l:?}"), shown);
        for url in [
            "postgres://kettle:s3c/ret@db/k",
            "postgres://kettle:s3c@ret@db/k",
            "postgres://kettle@db/k?sslmode=require&password=s3cret",
        ] {
            let shown = StoreLocation::from_str(url).unwrap().to_string();
            assert!(!shown.contains("s3c"), "{shown}");
            assert!(shown.contains("@db/k"), "{shown}");
        }
        let plain = StoreLocation::from_str("postgres://kettle@db/k").unwrap();
        assert_eq!(plain.to_string(), "postgres://kettle@db/k");
    }
}
