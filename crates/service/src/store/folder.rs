//! The data folder around the database: created private (0700, the
//! database 0600, so that SQLite's `-wal` and `-shm` files, which take the
//! database's mode, are private too), the store-id marker that lets a start
//! tell a new folder from one whose database was deleted, truncated or
//! replaced, and the lock that keeps a second server off the folder.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::ServiceError;

/// The marker file's name: it holds the id of the store the folder was
/// created with, which the database keeps too.
pub(crate) const ID_FILE: &str = "kettle.id";
/// The lock file's name: locked by the server using the folder, holding
/// its PID.
pub(crate) const LOCK_FILE: &str = "kettle.lock";

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> ServiceError {
    ServiceError::Store(format!("cannot {what} {}: {e}", path.display()))
}

/// Creates `dir` (and its parents) if missing; a folder Kettle creates is
/// private to its user.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), ServiceError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| io_error("create", dir, &e))
}

/// Opens options that create a file readable by its owner only.
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    options
}

/// Creates an empty file readable by its owner only, unless it exists.
pub(crate) fn create_private_file(path: &Path) -> Result<(), ServiceError> {
    match private(OpenOptions::new().write(true).create_new(true)).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error("create", path, &e)),
    }
}

/// The store id the marker holds, if there is a marker.
pub(crate) fn read_marker(dir: &Path) -> Result<Option<String>, ServiceError> {
    let path = dir.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("read", &path, &e)),
    }
}

/// Writes the marker (whole, through a rename, so a crash leaves the old
/// one or the new one).
pub(crate) fn write_marker(dir: &Path, store_id: &str) -> Result<(), ServiceError> {
    let path = dir.join(ID_FILE);
    let tmp = dir.join(format!("{ID_FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = private(OpenOptions::new().write(true).create_new(true))
        .open(&tmp)
        .map_err(|e| io_error("create", &tmp, &e))?;
    file.write_all(format!("{store_id}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", &tmp, &e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_error("write", &path, &e))
}

/// What an operator does about a database that is not the folder's own.
pub(crate) fn damaged(dir: &Path, what: &str) -> ServiceError {
    ServiceError::Store(format!(
        "{what}. This folder held a store (its marker {} says so), so Kettle will not start \
         afresh on its own, which would lose the jobs and switch off the API keys. Restore a \
         backup (`kettle store backup`; see README, \"Backup and restore\") into a new folder, \
         or move {} aside to start with an empty store",
        dir.join(ID_FILE).display(),
        dir.display()
    ))
}

/// The exclusive lock of a data folder, held while a server uses it and
/// released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Locks `dir`, writing this process's PID into the lock file.
    ///
    /// # Errors
    /// Another process holds the lock (the message names its PID), or the
    /// file cannot be opened.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, ServiceError> {
        create_private_dir(dir)?;
        let path = dir.join(LOCK_FILE);
        let mut file = private(OpenOptions::new().read(true).write(true).create(true))
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error("open", &path, &e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_owned()
                } else {
                    format!("another process (PID {holder})")
                };
                return Err(ServiceError::Store(format!(
                    "the data folder {} is in use by {who}: a kettle server is already serving \
                     it (two servers on one folder would run the same jobs twice); stop that \
                     one first, or use another --data-dir",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error("lock", &path, &e)),
        }
        let pid = std::process::id();
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(format!("{pid}\n").as_bytes()))
            .map_err(|e| io_error("write", &path, &e))?;
        Ok(DataDirLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // The PID would be stale; the lock itself goes with the descriptor.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("PID {}", std::process::id())),
            "{err}"
        );
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_created_folder_and_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b");
        create_private_dir(&data).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        create_private_file(&data.join("f")).unwrap();
        assert_eq!(mode(&data.join("f")), 0o600);
        write_marker(&data, "abc").unwrap();
        assert_eq!(mode(&data.join(ID_FILE)), 0o600);
        assert_eq!(read_marker(&data).unwrap().as_deref(), Some("abc"));
    }
}
