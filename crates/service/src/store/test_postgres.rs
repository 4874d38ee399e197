//! A throwaway PostgreSQL for tests: [`test_postgres`] hands each caller a
//! database of its own (`t_<random>`) on one server per test process, so
//! tests run in parallel without sharing state.
//!
//! The server is `KETTLE_TEST_POSTGRES` when that names one (its user must
//! be allowed to create databases); otherwise one started here from the
//! machine's PostgreSQL binaries (`pg_config --bindir`, else
//! `/usr/lib/postgresql/*/bin`, newest first): `initdb` into a fresh
//! folder under the temp dir, then `pg_ctl start` on a free port,
//! listening on 127.0.0.1 and a socket in that folder, with `fsync=off`
//! (a test's data need not survive a power cut). When the tests run as
//! root, PostgreSQL (which refuses root) runs as the `postgres` user
//! through `runuser`, and the folder is handed to that user.
//!
//! Why a watchdog: `pg_ctl` detaches the server from the test process, and
//! Rust runs no destructor of a static at exit, so nothing in the process
//! could stop it. A small `sh` loop started with it polls the test
//! process's PID every second; once the process is gone it stops the server
//! (`pg_ctl stop -m immediate`) and removes the folder. The watchdog reads
//! the server's PID from its data folder, so it also covers a server that
//! [`PgServer::stop`] and [`PgServer::start`] restarted.
//!
//! When no PostgreSQL is found, [`test_postgres`] prints one line
//! (`skipped: no PostgreSQL (why)`) and returns `None`; with
//! `KETTLE_REQUIRE_POSTGRES=1` (CI) it panics instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::Connection;

/// A database of one's own on the test server.
#[derive(Debug)]
pub struct TestPostgres {
    url: String,
    server: Option<&'static PgServer>,
}

impl TestPostgres {
    /// The database's URL (`postgres://…/t_<random>`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server this process started, to stop and restart it; `None`
    /// when the server is `KETTLE_TEST_POSTGRES`'s, which tests must not
    /// stop.
    pub fn server(&self) -> Option<&'static PgServer> {
        self.server
    }
}

/// The PostgreSQL server this test process started.
#[derive(Debug)]
pub struct PgServer {
    bindir: PathBuf,
    /// The folder holding `data/`, the socket and the log.
    root: PathBuf,
    port: u16,
    /// Run its commands as the `postgres` user (the tests run as root).
    as_postgres: bool,
}

/// The server, or why there is none; started once per process.
static SERVER: OnceLock<Result<Option<PgServer>, String>> = OnceLock::new();

/// A fresh, empty database for one test; `None` (after one line on
/// stderr) when no PostgreSQL can be found or started.
///
/// # Panics
/// When `KETTLE_REQUIRE_POSTGRES=1` and there is no PostgreSQL, or when
/// the database cannot be created.
pub async fn test_postgres() -> Option<TestPostgres> {
    let (admin_url, server) = match std::env::var("KETTLE_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => (url.trim().to_owned(), None),
        _ => {
            // Blocks this test's thread for the seconds a first start
            // takes (the other tests wait for the same server anyway).
            let started = SERVER.get_or_init(|| PgServer::launch().map(Some));
            match started {
                Ok(Some(server)) => (server.admin_url(), Some(server)),
                Ok(None) => unreachable!("the server is started or its failure kept"),
                Err(why) => {
                    skipped(why);
                    return None;
                }
            }
        }
    };
    Some(TestPostgres {
        url: create_database(&admin_url).await,
        server,
    })
}

/// Creates a database `t_<random>` on the server of `admin_url`; its URL.
async fn create_database(admin_url: &str) -> String {
    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL {admin_url}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
    let _ = admin.close().await;
    with_database(admin_url, &name)
}

/// Says why PostgreSQL tests are skipped, or fails them when CI requires
/// PostgreSQL.
fn skipped(why: &str) {
    if std::env::var("KETTLE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!("no PostgreSQL ({why}) and KETTLE_REQUIRE_POSTGRES=1");
    }
    // The one line a skipped test prints: the point is that it is seen.
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipped: no PostgreSQL ({why})");
    }
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    format!("{scheme}://{authority}/{name}{query}")
}

/// The folder of PostgreSQL's programs, newest version first.
fn find_bindir() -> Option<PathBuf> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_initdb(&dir) {
            return Some(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_initdb(&bin).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, dir)| dir)
}

fn running_as_root() -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// A server of one's own (not the one [`test_postgres`] shares), for a
/// test that stops, crashes or restarts it while other tests run. Stopped,
/// and its folder removed, when dropped (or by its watchdog, if the
/// process dies first).
///
/// # Errors
/// No PostgreSQL binaries, or the server does not start. Callers skip
/// with [`skip_without_postgres`].
pub fn own_server() -> Result<PgServer, String> {
    PgServer::launch()
}

/// Says (in one line) why a test is skipped for want of PostgreSQL; panics
/// instead when `KETTLE_REQUIRE_POSTGRES=1`.
pub fn skip_without_postgres(why: &str) {
    skipped(why);
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.pg_ctl_stop("immediate");
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl PgServer {
    /// Finds the binaries, creates the cluster and starts it.
    fn launch() -> Result<PgServer, String> {
        let bindir = find_bindir()
            .ok_or("no initdb found: pg_config --bindir, /usr/lib/postgresql/*/bin")?;
        let as_postgres = running_as_root();
        let root = std::env::temp_dir().join(format!(
            "kettle-test-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&root)
            .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        if as_postgres {
            let chown = Command::new("chown")
                .args(["postgres:", "--"])
                .arg(&root)
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !chown.success() {
                return Err(
                    "cannot hand the test folder to the `postgres` user (running as root)".into(),
                );
            }
        }
        let server = PgServer {
            bindir,
            root,
            port: free_port()?,
            as_postgres,
        };
        server.watch();
        let data = server.root.join("data");
        let initdb = server
            .command("initdb")
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data)
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !initdb.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&initdb.stderr).trim()
            ));
        }
        server.start()?;
        Ok(server)
    }

    /// A command of PostgreSQL's, run as the `postgres` user when the tests
    /// run as root.
    fn command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        command.stdin(Stdio::null());
        command
    }

    /// Starts the sh loop that stops the server once this process is gone.
    fn watch(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {runuser}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{root}'",
            pid = std::process::id(),
            runuser = if self.as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            },
            pg_ctl = self.bindir.join("pg_ctl").display(),
            data = self.root.join("data").display(),
            root = self.root.display(),
        );
        // Its own process group, so a Ctrl-C to the tests does not stop it
        // before it has cleaned up.
        let mut watchdog = Command::new("sh");
        watchdog
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut watchdog, 0);
        // Not waited for: it outlives this process on purpose.
        let _ = watchdog.spawn();
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A fresh, empty database on it; its URL.
    ///
    /// # Panics
    /// The server cannot be reached or the database not created.
    pub async fn database(&self) -> String {
        create_database(&self.admin_url()).await
    }

    /// The URL of its `postgres` database, as superuser `postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts it (again) and waits until it accepts connections.
    ///
    /// # Errors
    /// `pg_ctl start` failed; the log's tail says why.
    pub fn start(&self) -> Result<(), String> {
        self.start_with(&[])
    }

    /// Starts it (again) with `settings` (`name=value`) after the tests'
    /// own, which they override: the store benchmark's durable server
    /// (`fsync=on`, …).
    ///
    /// # Errors
    /// `pg_ctl start` failed; the log's tail says why.
    pub fn start_with(&self, settings: &[&str]) -> Result<(), String> {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=on -c full_page_writes=off -c max_connections=300",
            self.port,
            self.root.display()
        );
        for setting in settings {
            options.push_str(&format!(" -c {setting}"));
        }
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.root.join("data"))
            .arg("-l")
            .arg(self.root.join("log"))
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.root.join("log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(format!(
                "pg_ctl start failed: {} {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        // `pg_ctl -w` waits for the socket; a TCP connection is what
        // clients use, so wait for that too.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("PostgreSQL does not listen on port {}", self.port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Stops it (fast shutdown: connections are cut, committed work kept)
    /// and waits until it has stopped.
    ///
    /// # Errors
    /// `pg_ctl stop` failed.
    pub fn stop(&self) -> Result<(), String> {
        self.pg_ctl_stop("fast")
    }

    /// Kills it as a crash would (immediate shutdown: recovery from the WAL
    /// at the next start).
    ///
    /// # Errors
    /// `pg_ctl stop` failed.
    pub fn crash(&self) -> Result<(), String> {
        self.pg_ctl_stop("immediate")
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<(), String> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.root.join("data"))
            .args(["-m", mode, "-w", "stop"])
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl stop failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_another_database() {
        assert_eq!(
            with_database("postgres://u:p@h:5/db?sslmode=disable", "t_1"),
            "postgres://u:p@h:5/t_1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t_1"), "postgres://h/t_1");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_caller_gets_a_database_of_its_own() {
        let Some(a) = test_postgres().await else {
            return;
        };
        let b = test_postgres().await.unwrap();
        assert_ne!(a.url(), b.url());
        let mut conn = sqlx::PgConnection::connect(a.url()).await.unwrap();
        sqlx::raw_sql("CREATE TABLE only_here (x INT)")
            .execute(&mut conn)
            .await
            .unwrap();
        let mut other = sqlx::PgConnection::connect(b.url()).await.unwrap();
        let seen: Option<String> = sqlx::query_scalar("SELECT to_regclass('only_here')::text")
            .fetch_one(&mut other)
            .await
            .unwrap();
        assert_eq!(seen, None);
    }
}
