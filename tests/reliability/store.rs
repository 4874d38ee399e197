//! The store as an operator meets it, against `kettle serve` processes:
//! authentication that fails closed (a revoked last key, a deleted or
//! truncated database), one server per data folder, live backups that
//! restore, private files, `kettle keys` exit codes, and a full disk that
//! strands no job (a small tmpfs when the test runs as root and can mount
//! one; otherwise it says so, and the service's fault-injection tests in
//! `crates/service/src/store_fault_tests.rs` cover the same).
//!
//! Bounded: a few server starts of at most a minute each; the full-disk
//! part fills 16 MiB.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::report;
use crate::server_util::*;

/// `kettle serve` as a child process, with every line it logs kept.
struct Served {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Starts `kettle serve` on `dir` with `args`; `None` with its stderr if
    /// it exits before listening.
    fn start(dir: &Path, args: &[&str]) -> Result<Served, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kettle"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(args)
            .env("KETTLE_WORKERS", "1")
            .env("KETTLE_SIM_THREADS", "1")
            .env("KETTLE_SHUTDOWN_GRACE_SECONDS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kettle serve starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let addr = line
                    .split("listening on http://")
                    .nth(1)
                    .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned());
                // Kept before the address is handed over: the caller reads
                // the start-up line at once.
                lines.lock().unwrap().push(line);
                if let Some(addr) = addr
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Ok(Served {
                child,
                base: format!("http://{addr}"),
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(log.lock().unwrap().join("\n"))
            }
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `kettle ARGS` to its end.
fn kettle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args(args)
        .output()
        .expect("kettle runs")
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `kettle keys create TENANT` on `dir`: the key.
fn create_key(dir: &Path, tenant: &str) -> String {
    let o = kettle(&["keys", "create", tenant, "--data-dir", path_str(dir)]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn key_id(key: &str) -> String {
    key.trim_start_matches("kt_")
        .split('_')
        .next()
        .unwrap()
        .to_owned()
}

fn bell(seed: u64) -> Value {
    job(BELL, json!({"shots": 10, "seed": seed}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_last_key_keeps_authentication_on() {
    let dir = tempfile::tempdir().unwrap();
    let first = create_key(dir.path(), "alice");
    let o = kettle(&[
        "keys",
        "revoke",
        &key_id(&first),
        "--data-dir",
        path_str(dir.path()),
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));

    let server = Served::start(dir.path(), &[]).unwrap();
    let line = server.log();
    assert!(
        line.contains("API keys required") && line.contains("401"),
        "{line}"
    );
    let anonymous = Api::new(server.base.clone(), None);
    assert_eq!(anonymous.post_job(bell(1), "").await.status, 401);
    let old = Api::new(server.base.clone(), Some(&first));
    assert_eq!(old.post_job(bell(1), "").await.status, 401);
    // A key created while it runs works at once.
    let second = create_key(dir.path(), "bob");
    let bob = Api::new(server.base.clone(), Some(&second));
    let r = bob.post_job(bell(2), "?wait=20").await;
    assert_eq!(r.status, 201, "{}", r.body);
    server.stop();

    // Local mode only when asked for, and the start-up line says so.
    let server = Served::start(dir.path(), &["--local"]).unwrap();
    let line = server.log();
    assert!(
        line.contains("LOCAL MODE") && line.contains("--local"),
        "{line}"
    );
    let anonymous = Api::new(server.base.clone(), None);
    assert_eq!(anonymous.post_job(bell(3), "").await.status, 201);
    server.stop();
    report(
        "auth: a store whose last key was revoked starts requiring keys (401 without one); --local is the only way to local mode",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_or_truncated_database_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Served::start(&data, &[]).unwrap();
    assert!(
        server.log().contains("never held an API key"),
        "{}",
        server.log()
    );
    let api = Api::new(server.base.clone(), None);
    assert_eq!(api.post_job(bell(1), "?wait=20").await.status, 201);
    server.stop();
    let db = data.join("kettle.db");
    let remove_db = || {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
    };
    remove_db();
    let refused = Served::start(&data, &[])
        .err()
        .expect("no start without the database");
    assert!(
        refused.contains("missing") && refused.contains("Restore a backup"),
        "{refused}"
    );
    std::fs::File::create(&db).unwrap();
    let refused = Served::start(&data, &[])
        .err()
        .expect("no start on an empty database");
    assert!(
        refused.contains("empty") && refused.contains("move"),
        "{refused}"
    );
    report("a deleted or truncated kettle.db: the server refuses to start and says what to do");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_a_data_dir_exits_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let first = Served::start(dir.path(), &[]).unwrap();
    let pid = first.child.id();
    let started = Instant::now();
    let second = Served::start(dir.path(), &[]);
    let took = started.elapsed();
    let log = second.err().expect("the second server does not start");
    assert!(log.contains(&format!("PID {pid}")), "{log}");
    assert!(took < Duration::from_secs(30), "exits at once");
    // Keys and backups work beside the running server.
    let o = kettle(&["keys", "list", "--data-dir", path_str(dir.path())]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let backup = dir.path().join("copy.db");
    let o = kettle(&[
        "store",
        "backup",
        path_str(&backup),
        "--data-dir",
        path_str(dir.path()),
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let api = Api::new(first.base.clone(), None);
    assert_eq!(api.post_job(bell(1), "?wait=20").await.status, 201);
    first.stop();
    // Once the first is gone, the folder is free.
    Served::start(dir.path(), &[]).unwrap().stop();
    report(&format!(
        "lock: a second server on the folder exited after {} ms naming PID {pid}",
        took.as_millis()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_backup_restores_into_a_new_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Served::start(&data, &[]).unwrap();
    let api = Api::new(server.base.clone(), None);
    let mut done = Vec::new();
    for seed in 0..5 {
        let r = api.post_job(bell(seed), "?wait=20").await;
        assert_eq!(r.body["status"], "completed", "{}", r.body);
        done.push(r.body["id"].as_str().unwrap().to_owned());
    }
    // Jobs keep completing while the backup runs.
    let busy = {
        let api = api.clone();
        tokio::spawn(async move {
            for seed in 100..130 {
                api.post_job(bell(seed), "?wait=20").await;
            }
        })
    };
    let backup = dir.path().join("backup.db");
    let backup_path = backup.clone();
    let data_dir = data.clone();
    let o = tokio::task::spawn_blocking(move || {
        kettle(&[
            "store",
            "backup",
            path_str(&backup_path),
            "--data-dir",
            path_str(&data_dir),
        ])
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    busy.await.unwrap();
    // A backup never overwrites.
    let again = kettle(&[
        "store",
        "backup",
        path_str(&backup),
        "--data-dir",
        path_str(&data),
    ]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr_of(&again));
    server.stop();

    let restored = dir.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    std::fs::copy(&backup, restored.join("kettle.db")).unwrap();
    let server = Served::start(&restored, &[]).unwrap();
    let api = Api::new(server.base.clone(), None);
    for id in &done {
        let r = api.get_job(id, "").await;
        assert_eq!(r.body["status"], "completed", "{id}: {}", r.body);
    }
    server.stop();
    report(&format!(
        "backup: {} jobs completed before a live `kettle store backup` were all there after a restore into a new folder",
        done.len()
    ));
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_folder_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("new");
    let server = Served::start(&data, &[]).unwrap();
    let api = Api::new(server.base.clone(), None);
    assert_eq!(api.post_job(bell(1), "?wait=20").await.status, 201);
    let mode = |p: PathBuf| std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.clone()), 0o700);
    for name in ["kettle.db", "kettle.db-wal", "kettle.db-shm"] {
        assert_eq!(mode(data.join(name)), 0o600, "{name}");
    }
    server.stop();
}

#[test]
fn kettle_keys_input_problems_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = path_str(dir.path());
    let bad_tenant = kettle(&["keys", "create", "no spaces", "--data-dir", d]);
    assert_eq!(
        bad_tenant.status.code(),
        Some(2),
        "{}",
        stderr_of(&bad_tenant)
    );
    assert!(stderr_of(&bad_tenant).contains("tenant"));
    let unknown = kettle(&["keys", "revoke", "000000000000", "--data-dir", d]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr_of(&unknown));
    let ok = kettle(&["keys", "create", "team", "--data-dir", d]);
    assert_eq!(ok.status.code(), Some(0));
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mounted(PathBuf);

impl Mounted {
    fn new(at: &Path, size: &str) -> Option<Mounted> {
        // Only root can mount.
        let root = Command::new("id")
            .arg("-u")
            .output()
            .ok()
            .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !root {
            return None;
        }
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .ok()?
            .success();
        ok.then(|| Mounted(at.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `file` until a write fails.
fn fill(file: &Path) {
    let mut f = std::fs::File::create(file).unwrap();
    let big = vec![7u8; 1 << 20];
    while f.write_all(&big).is_ok() {}
    let small = vec![7u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

async fn ready_status(http: &reqwest::Client, base: &str) -> u16 {
    http.get(format!("{base}/readyz"))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn queue_depth(http: &reqwest::Client, base: &str) -> f64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("kettle_queue_depth "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_strands_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mount) = Mounted::new(&dir.path().join("small"), "16m") else {
        report(
            "full disk: no tmpfs (not root, or mount failed); the fault-injection tests \
             store_fault_tests::* cover the same (not this test)",
        );
        return;
    };
    let data = mount.0.join("data");
    let server = Served::start(&data, &[]).unwrap();
    let api = Api::new(server.base.clone(), None);
    let http = reqwest::Client::new();
    let slow = |layers| {
        job(
            &slow_program(18, layers),
            json!({"result_types": [{"expectation": ["Z0"]}]}),
        )
    };
    // One job running, one queued behind it, one more to cancel.
    let running = api.post_job(slow(1500), "").await;
    assert_eq!(running.status, 201, "{}", running.body);
    let running = running.body["id"].as_str().unwrap().to_owned();
    let queued = api.post_job(bell(1), "").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let to_cancel = api.post_job(slow(20_000), "").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.until(&running, "running").await;

    let filler = mount.0.join("filler");
    fill(&filler);
    let full_at = Instant::now();
    // Submissions are refused at once; readiness says the store cannot write.
    let refused = api.post_job(bell(2), "").await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    let refused_in = full_at.elapsed();
    let mut not_ready_at = None;
    for _ in 0..100 {
        if ready_status(&http, &server.base).await == 503 {
            not_ready_at = Some(full_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let not_ready_at = not_ready_at.expect("/readyz says 503 while the disk is full");
    // The running job ends meanwhile, and its end cannot be written.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.log().contains("retrying until it succeeds") {
        assert!(
            Instant::now() < deadline,
            "no write failed: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(api.get_job(&running, "").await.body["status"], "running");
    let cancel = api
        .send(
            Method::POST,
            "/v1/jobs/{id}/cancel",
            &format!("/v1/jobs/{to_cancel}/cancel"),
            None,
            &[],
        )
        .await;
    assert_eq!(cancel.status, 503, "{}", cancel.body);
    assert_eq!(ready_status(&http, &server.base).await, 503);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Space returns: no restart.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut ended_after = None;
    let mut ready_after = None;
    while ended_after.is_none() || ready_after.is_none() {
        assert!(
            freed.elapsed() < Duration::from_secs(30),
            "not recovered: {}",
            server.log()
        );
        if ended_after.is_none() && api.get_job(&running, "").await.body["status"] == "completed" {
            ended_after = Some(freed.elapsed());
        }
        if ready_after.is_none() && ready_status(&http, &server.base).await == 200 {
            ready_after = Some(freed.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    api.until(&queued, "completed").await;
    // Cancel and the queue gauge are true again.
    let cancel = api
        .send(
            Method::POST,
            "/v1/jobs/{id}/cancel",
            &format!("/v1/jobs/{to_cancel}/cancel"),
            None,
            &[],
        )
        .await;
    assert!(matches!(cancel.status, 200 | 202), "{}", cancel.body);
    api.until(&to_cancel, "cancelled").await;
    let list = api
        .send(Method::GET, "/v1/jobs", "/v1/jobs", None, &[])
        .await;
    let open: Vec<&Value> = list.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["status"] == "queued" || j["status"] == "running")
        .collect();
    assert!(open.is_empty(), "{open:?}");
    assert_eq!(queue_depth(&http, &server.base).await, 0.0);
    let r = api.post_job(bell(3), "?wait=20").await;
    assert_eq!(r.body["status"], "completed", "{}", r.body);
    server.stop();
    report(&format!(
        "full disk (tmpfs 16 MiB): a submission got 503 {} ms after the disk filled; /readyz 503 \
         after {} ms; once space returned, the running job's end was recorded after {} ms and \
         /readyz said 200 after {} ms; queue depth 0 and cancel true, without a restart",
        refused_in.as_millis(),
        not_ready_at.as_millis(),
        ended_after.unwrap().as_millis(),
        ready_after.unwrap().as_millis()
    ));
}
