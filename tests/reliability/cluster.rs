//! Many nodes on one PostgreSQL (issue 16): real `kettle serve` processes
//! sharing the database of [`test_postgres`], driven over HTTP and checked
//! from outside Kettle, in SQL.
//!
//! - [`cluster_survives_kills_restarts_and_partitions`]: three nodes under
//!   keyed load from three tenants; nodes SIGKILLed and restarted,
//!   PostgreSQL restarted once, one node cut off from the database by a
//!   proxy this file runs. A trigger the test adds records every write of a
//!   job's end, so "completed twice" is counted by the database itself.
//! - [`cancel_and_wait_cross_nodes`]: `?wait` on one node while another
//!   runs the job, `DELETE` on a node that does not run it, and keys made
//!   and revoked with the CLI, each measured.
//! - [`memory_aware_placement`]: a job too big for the node it was
//!   submitted to runs on the big one.
//! - [`postgres_down_503_and_resume`]: the database stopped, then started.
//! - [`tenant_limit_holds_across_nodes`]: `max_active_jobs` counted in the
//!   database, not per node.
//!
//! Each test skips (one line) when there is no PostgreSQL. The two that
//! stop or crash PostgreSQL have a server of their own ([`own_server`]);
//! the others share [`test_postgres`]'s. They take one lock, so that no
//! two of them load the cores at once. `RELIABILITY_SEED` replays the first test's schedule;
//! `RELIABILITY_CLUSTER_CYCLES` sets its kill cycles (default 10).

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kettle_service::now_ms;
use kettle_service::store::test_postgres::{
    PgServer, own_server, skip_without_postgres, test_postgres,
};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{report, seeded_rng};
use crate::server_util::*;

/// One cluster test at a time: each loads the cores with several nodes.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TERMINAL: [&str; 3] = ["completed", "failed", "cancelled"];

/// A free port on 127.0.0.1 (free when asked; a node binds it soon after).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `kettle serve --store URL` on a fixed port of 127.0.0.1: a node that a
/// test can SIGKILL, pause (SIGSTOP) and start again on the same port, as
/// a service manager would. Keys are required.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) base: String,
    port: u16,
    store: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// The last lines of its log, for a failure's message.
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Node {
    /// Starts a node on `store` with `KETTLE_*` settings `env` (one
    /// simulation thread, a grace of one second, unless `env` says).
    pub(crate) fn start(name: &str, store: &str, env: &[(&str, &str)]) -> Node {
        let port = free_port();
        let mut node = Node {
            name: name.to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            port,
            store: store.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            child: None,
            log: Arc::default(),
        };
        node.restart();
        node
    }

    /// Starts its process again, on its port, and waits until it listens.
    /// Blocks: call it from `block_in_place` in a test's runtime.
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        // A process that exits at once (its port still held by the killed
        // one's sockets, say) is started again.
        for _ in 0..50 {
            let mut child = Command::new(env!("CARGO_BIN_EXE_kettle"))
                .args(["serve", "--require-keys", "--addr"])
                .arg(format!("127.0.0.1:{}", self.port))
                .args(["--store", &self.store])
                .env("KETTLE_SIM_THREADS", "1")
                .env("KETTLE_SHUTDOWN_GRACE_SECONDS", "1")
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the kettle binary starts");
            let stderr = child.stderr.take().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let log = self.log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("listening on http://") {
                        let _ = tx.send(());
                    }
                    let mut log = log.lock().unwrap();
                    if log.len() == 200 {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            });
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(()) => {
                    self.child = Some(child);
                    return;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.wait();
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        panic!("node {} does not start:\n{}", self.name, self.log_tail());
    }

    /// SIGKILL: no shutdown code runs.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to its process.
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the node runs");
        let ok = Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -s {signal} {pid}");
    }

    /// Its process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its log's last lines.
    pub(crate) fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        let skip = log.len().saturating_sub(30);
        log.iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // A paused node would not die of SIGKILL's wait otherwise.
            let _ = Command::new("kill")
                .args(["-s", "CONT", &pid.to_string()])
                .status();
        }
        self.kill();
    }
}

/// `kettle keys create TENANT --store URL`: the key it prints.
pub(crate) fn create_key(store: &str, tenant: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args(["keys", "create", tenant, "--store", store])
        .output()
        .expect("the kettle binary runs");
    assert!(
        out.status.success(),
        "kettle keys create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `kettle keys revoke ID --store URL` for `key` (`kt_<id>_<secret>`).
fn revoke_key(store: &str, key: &str) {
    let id = key.trim_start_matches("kt_").split('_').next().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args(["keys", "revoke", id, "--store", store])
        .output()
        .expect("the kettle binary runs");
    assert!(
        out.status.success(),
        "kettle keys revoke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A connection pool to the test's database, for the test's own SQL.
pub(crate) async fn pool(url: &str) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

/// A TCP proxy on 127.0.0.1 in front of PostgreSQL: [`Proxy::cut`] drops
/// the connections through it and blackholes new ones (accepted, never
/// answered, as across a partition) until [`Proxy::restore`].
#[derive(Debug)]
pub(crate) struct Proxy {
    pub(crate) port: u16,
    cut: Arc<AtomicBool>,
    /// Bumped by `cut`: every connection open before it ends.
    generation: watch::Sender<u64>,
    /// Connections accepted while cut, held unanswered.
    held: Arc<Mutex<Vec<TcpStream>>>,
    /// The tasks relaying the open connections.
    relays: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let held = Arc::new(Mutex::new(Vec::new()));
        let relays = Arc::new(Mutex::new(Vec::<tokio::task::JoinHandle<()>>::new()));
        let accept = {
            let (cut, generation, held) = (cut.clone(), generation.clone(), held.clone());
            let relays = relays.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    // Subscribed before the flag is read: a cut after the
                    // read is seen by `changed`, one before it by the read.
                    let mut ended = generation.subscribe();
                    if cut.load(Ordering::SeqCst) {
                        held.lock().unwrap().push(client);
                        continue;
                    }
                    let relay = tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await
                        else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = ended.changed() => {}
                        }
                    });
                    let mut relays = relays.lock().unwrap();
                    relays.retain(|r| !r.is_finished());
                    relays.push(relay);
                }
            })
        };
        Proxy {
            port,
            cut,
            generation,
            held,
            relays,
            accept,
        }
    }

    /// `url` with its port replaced by this proxy's.
    pub(crate) fn url(&self, url: &str, upstream: u16) -> String {
        url.replace(&format!(":{upstream}/"), &format!(":{}/", self.port))
    }

    /// Cuts every open connection, and returns once they are closed (a
    /// relay only told to stop could still pass the next bytes sent), and
    /// holds new ones unanswered.
    pub(crate) async fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
        let relays = std::mem::take(&mut *self.relays.lock().unwrap());
        for relay in relays {
            relay.abort();
            let _ = relay.await;
        }
    }

    pub(crate) fn restore(&self) {
        self.held.lock().unwrap().clear();
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.generation.send_modify(|g| *g += 1);
    }
}

/// The port of the server in `url` (`postgres://user@host:PORT/db`).
fn port_of(url: &str) -> u16 {
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    authority.rsplit(':').next().unwrap().parse().unwrap()
}

/// A PostgreSQL server for this test alone, which it may stop and crash;
/// `None` (after the one skip line) when none can be started.
fn server_of_our_own() -> Option<PgServer> {
    match blocking(own_server) {
        Ok(server) => Some(server),
        Err(why) => {
            skip_without_postgres(&why);
            None
        }
    }
}

/// Runs `f` (blocking: a node's start, `pg_ctl`) without holding up the
/// runtime's other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// A trigger recording, in `audit`, every write that puts a job into a
/// terminal status or changes a terminal job's end: a job completed twice
/// in the store has two rows, whatever Kettle's code believes.
async fn create_audit(db: &PgPool) {
    sqlx::raw_sql(
        "CREATE TABLE audit (
             n        BIGSERIAL PRIMARY KEY,
             id       TEXT   NOT NULL,
             status   TEXT   NOT NULL,
             attempt  INTEGER,
             owner    TEXT,
             ended_ms BIGINT
         );
         CREATE FUNCTION audit_end() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.status IN ('completed', 'failed', 'cancelled') AND (
                 TG_OP = 'INSERT'
                 OR OLD.status IS DISTINCT FROM NEW.status
                 OR OLD.ended_ms IS DISTINCT FROM NEW.ended_ms
                 OR OLD.result IS DISTINCT FROM NEW.result
                 OR OLD.attempt IS DISTINCT FROM NEW.attempt
             ) THEN
                 INSERT INTO audit (id, status, attempt, owner, ended_ms)
                 VALUES (NEW.id, NEW.status, NEW.attempt, NEW.owner, NEW.ended_ms);
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER audit_end AFTER INSERT OR UPDATE ON jobs
             FOR EACH ROW EXECUTE FUNCTION audit_end();",
    )
    .execute(db)
    .await
    .expect("the audit trigger is created (after the schema's migration)");
}

/// The store's integrity in SQL: each problem found, in words.
pub(crate) async fn integrity_problems(db: &PgPool) -> Vec<String> {
    let checks = [
        (
            "running without an owner and a lease",
            "SELECT id FROM jobs WHERE status = 'running' \
             AND (owner IS NULL OR lease_until_ms IS NULL)",
        ),
        (
            "queued with an owner or a lease",
            "SELECT id FROM jobs WHERE status = 'queued' \
             AND (owner IS NOT NULL OR lease_until_ms IS NOT NULL)",
        ),
        (
            "terminal without ended_ms",
            "SELECT id FROM jobs WHERE status IN ('completed', 'failed', 'cancelled') \
             AND ended_ms IS NULL",
        ),
        (
            "not terminal with ended_ms",
            "SELECT id FROM jobs WHERE status IN ('queued', 'running') AND ended_ms IS NOT NULL",
        ),
        (
            "completed without a result",
            "SELECT id FROM jobs WHERE status = 'completed' AND result IS NULL",
        ),
        (
            "failed or cancelled without an error",
            "SELECT id FROM jobs WHERE status IN ('failed', 'cancelled') AND error IS NULL",
        ),
        (
            "an unknown status",
            "SELECT id FROM jobs WHERE status NOT IN \
             ('queued', 'running', 'completed', 'failed', 'cancelled')",
        ),
        (
            "an idempotency key used twice",
            "SELECT tenant || '/' || idempotency_key FROM jobs \
             WHERE idempotency_key IS NOT NULL \
             GROUP BY tenant, idempotency_key HAVING count(*) > 1",
        ),
    ];
    let mut problems = Vec::new();
    for (what, query) in checks {
        let ids: Vec<String> = sqlx::query_scalar(query).fetch_all(db).await.unwrap();
        if !ids.is_empty() {
            problems.push(format!(
                "{} jobs {what}: {:?}",
                ids.len(),
                &ids[..ids.len().min(5)]
            ));
        }
    }
    problems
}

/// A measured program that runs for a while: `layers` dense layers on 18
/// qubits (about 0.5 ms a layer here, at one thread).
fn slow_measured(layers: u32) -> String {
    let mut s = slow_program(18, layers);
    s.push_str("creg c[18];\nmeasure q -> c;\n");
    s
}

/// CPU time process `pid` has used so far, in clock ticks (`utime` +
/// `stime` of `/proc/PID/stat`; 0 when it is gone).
pub(crate) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15; `fields` starts at field 3.
    field(11) + field(12)
}

/// POSTs `body` with idempotency key `key` to a random node until one
/// answers `201`/`200`, as a careful client does: after a lost connection
/// or a `503`, the same request goes to another node. The job's id.
async fn submit_keyed(
    http: &reqwest::Client,
    bases: &[String],
    api_key: &str,
    key: &str,
    body: &Value,
    query: &str,
    rng: &mut Xoshiro256PlusPlus,
) -> (String, u32) {
    let mut node = rng.random_range(0..bases.len());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut retries = 0;
    loop {
        let sent = http
            .post(format!("{}/v1/jobs{query}", bases[node]))
            .bearer_auth(api_key)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await;
        if let Ok(resp) = sent {
            let status = resp.status().as_u16();
            if let Ok(answer) = resp.json::<Value>().await {
                match status {
                    200 | 201 => return (answer["id"].as_str().unwrap().to_owned(), retries),
                    503 => {}
                    _ => panic!("{key} got {status}: {answer}"),
                }
            }
        }
        assert!(Instant::now() < deadline, "{key}: no node took it in 2 min");
        retries += 1;
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..300))).await;
        if bases.len() > 1 {
            node = (node + rng.random_range(1..bases.len())) % bases.len();
        }
    }
}

/// A job of about 4 s (tenant `alpha`) that node `holder` surely runs: it
/// is submitted there while the other nodes are paused, and they go on
/// once the store says it runs (or after 10 s).
async fn held_job(
    nodes: &[Node],
    bases: &[String],
    holder: usize,
    api_key: &str,
    db: &PgPool,
    rng: &mut Xoshiro256PlusPlus,
) -> Acked {
    let others: Vec<&Node> = (0..nodes.len())
        .filter(|&i| i != holder)
        .map(|i| &nodes[i])
        .collect();
    for node in &others {
        node.signal("STOP");
    }
    let name = format!("held-by-n{holder}");
    let body = job(&slow_measured(8000), json!({"shots": 10, "name": name}));
    let http = reqwest::Client::new();
    let only = &bases[holder..=holder];
    let (id, _) = submit_keyed(&http, only, api_key, &name, &body, "", rng).await;
    let held_by = Instant::now() + Duration::from_secs(10);
    while Instant::now() < held_by {
        let status: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
            .bind(&id)
            .fetch_one(db)
            .await
            .unwrap();
        if status == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for node in &others {
        node.signal("CONT");
    }
    Acked {
        tenant: "alpha",
        id,
        bell: None,
    }
}

/// A job a client got acknowledged.
#[derive(Debug)]
struct Acked {
    tenant: &'static str,
    id: String,
    /// Its Bell counts' seed and shots (none for slow jobs).
    bell: Option<(u64, u64)>,
}

/// One client of `tenant`: keyed submissions to random nodes until `stop`;
/// mostly Bell jobs, some of 0.5–2 s. What it got acknowledged, and how
/// many requests it sent again.
async fn tenant_client(
    tenant: &'static str,
    api_key: String,
    bases: Arc<Vec<String>>,
    label: String,
    mut rng: Xoshiro256PlusPlus,
    stop: Arc<AtomicBool>,
    slow_layers: (u32, u32),
) -> (Vec<Acked>, u32) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (mut acked, mut retries) = (Vec::new(), 0);
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("{tenant}-{label}-{i}");
        let seed = rng.random::<u64>() >> 12;
        let slow = rng.random_range(0..100) < 4;
        let (body, bell) = if slow {
            let layers = rng.random_range(slow_layers.0..slow_layers.1);
            (
                job(
                    &slow_measured(layers),
                    json!({"shots": 10, "seed": seed, "name": key}),
                ),
                None,
            )
        } else {
            let shots = rng.random_range(10..300);
            (
                job(BELL, json!({"shots": shots, "seed": seed, "name": key})),
                Some((seed, shots)),
            )
        };
        let query = if rng.random_range(0..4) == 0 {
            "?wait=3"
        } else {
            ""
        };
        let (id, again) = submit_keyed(&http, &bases, &api_key, &key, &body, query, &mut rng).await;
        retries += again;
        acked.push(Acked { tenant, id, bell });
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..400))).await;
    }
    (acked, retries)
}

/// Jobs of `ids` not yet terminal in the store.
async fn unfinished(db: &PgPool, ids: &[String]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT id FROM jobs WHERE id = ANY($1) \
         AND status NOT IN ('completed', 'failed', 'cancelled')",
    )
    .bind(ids)
    .fetch_all(db)
    .await
}

/// After a SIGKILL at `kill_ms`: follows the jobs that were running then
/// (`running`: id and attempt) until each has ended or been claimed again.
/// A job claimed again (its attempt went up) was the dead node's: the
/// delays from the kill to those claims, and the jobs still unresolved
/// after `bound`.
async fn reclaims(
    db: PgPool,
    kill_ms: i64,
    running: Vec<(String, i32)>,
    bound: Duration,
) -> (Vec<i64>, Vec<String>) {
    let mut pending: BTreeMap<String, i32> = running.into_iter().collect();
    let mut delays = Vec::new();
    let end = Instant::now() + bound;
    while !pending.is_empty() && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ids: Vec<String> = pending.keys().cloned().collect();
        let Ok(rows) = sqlx::query_as::<_, (String, String, i32, Option<i64>)>(
            "SELECT id, status, attempt, started_ms FROM jobs WHERE id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&db)
        .await
        else {
            continue;
        };
        let seen = now_ms();
        for (id, status, attempt, started_ms) in rows {
            let before = pending[&id];
            if attempt > before {
                // A claim writes started_ms; the time it was seen bounds it
                // otherwise.
                let at = started_ms.filter(|s| *s >= kill_ms).unwrap_or(seen);
                delays.push(at - kill_ms);
                pending.remove(&id);
            } else if TERMINAL.contains(&status.as_str()) {
                pending.remove(&id);
            }
        }
    }
    (delays, pending.into_keys().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_survives_kills_restarts_and_partitions() {
    let Some(server) = server_of_our_own() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let cycles: usize = std::env::var("RELIABILITY_CLUSTER_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let (mut rng, seed) = seeded_rng();
    const LEASE_MS: i64 = 3000;
    report(&format!(
        "cluster: 3 nodes, lease {LEASE_MS} ms, {cycles} kill cycles, RELIABILITY_SEED={seed}"
    ));
    let url = server.database().await;
    let upstream = port_of(&url);
    let tenants: [&'static str; 3] = ["alpha", "beta", "gamma"];
    let keys: BTreeMap<&str, String> = tenants.iter().map(|t| (*t, create_key(&url, t))).collect();
    let env = [
        ("KETTLE_LEASE_SECONDS", "3"),
        ("KETTLE_CLAIM_POLL_MS", "200"),
        ("KETTLE_WORKERS", "2"),
        ("KETTLE_LIMITS__MAX_ACTIVE_JOBS", "1000"),
    ];
    let proxy = Proxy::start(upstream).await;
    let mut nodes = vec![blocking(|| Node::start("n0", &url, &env))];
    let db = pool(&url).await;
    create_audit(&db).await;
    nodes.push(blocking(|| Node::start("n1", &url, &env)));
    let proxied = proxy.url(&url, upstream);
    nodes.push(blocking(|| Node::start("n2 (proxied)", &proxied, &env)));
    let bases = Arc::new(nodes.iter().map(|n| n.base.clone()).collect::<Vec<_>>());

    // Slow jobs of about 0.5 to 2 s on this machine.
    let slow_layers = (1000, 4000);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = tenants
        .iter()
        .flat_map(|t| [(*t, 0), (*t, 1)])
        .map(|(t, c)| {
            tokio::spawn(tenant_client(
                t,
                keys[t].clone(),
                bases.clone(),
                format!("c{c}"),
                Xoshiro256PlusPlus::seed_from_u64(rng.random()),
                stop.clone(),
                slow_layers,
            ))
        })
        .collect();

    let started = Instant::now();
    let (mut delays, mut unresolved) = (Vec::new(), Vec::new());
    let (mut pg_down_ms, mut cut_ms, mut cut_reclaims) = (0, 0, Vec::new());
    // Jobs the test itself got acknowledged.
    let mut extra = Vec::new();
    let restart_pg_at = cycles / 3;
    let cut_at = (2 * cycles) / 3;
    for cycle in 0..cycles {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..2000))).await;
        if cycle == restart_pg_at {
            // Under load, as a crash (immediate shutdown, recovery from the
            // WAL): clients get 503s and lost connections, and nodes cannot
            // write the ends of the runs that finish meanwhile.
            let t = Instant::now();
            blocking(|| server.crash()).unwrap();
            tokio::time::sleep(Duration::from_millis(rng.random_range(500..2000))).await;
            blocking(|| server.start()).unwrap();
            pg_down_ms = t.elapsed().as_millis();
        }
        if cycle == cut_at {
            // Cut while n2 runs a job of about 4 s, so that other nodes
            // claim it and n2's own end of it, written late, is refused:
            // with n0 and n1 paused for a moment, a job submitted to n2 is
            // n2's to run.
            extra.push(held_job(&nodes, &bases, 2, &keys["alpha"], &db, &mut rng).await);
            let running: Vec<(String, i32)> =
                sqlx::query_as("SELECT id, attempt FROM jobs WHERE status = 'running'")
                    .fetch_all(&db)
                    .await
                    .unwrap();
            let cut_at_ms = now_ms();
            let follow = tokio::spawn(reclaims(
                db.clone(),
                cut_at_ms,
                running,
                Duration::from_millis(LEASE_MS as u64) + Duration::from_secs(20),
            ));
            let t = Instant::now();
            proxy.cut().await;
            tokio::time::sleep(Duration::from_millis(2 * LEASE_MS as u64)).await;
            proxy.restore();
            cut_ms = t.elapsed().as_millis();
            let (d, u) = follow.await.unwrap();
            cut_reclaims = d;
            unresolved.extend(u);
        }
        // The first kill hits n0 while it surely runs a job of about 4 s
        // (submitted to it with n1 and n2 paused), so that every run
        // measures a re-run; then two kills in three hit the node busiest
        // over the last 300 ms (most likely running a slow job), so that
        // most cycles leave a job to run again; the third a node at random.
        let victim = if cycle == 0 {
            extra.push(held_job(&nodes, &bases, 0, &keys["alpha"], &db, &mut rng).await);
            0
        } else if cycle % 3 == 2 {
            rng.random_range(0..nodes.len())
        } else {
            let before: Vec<u64> = nodes.iter().map(|n| n.pid().map_or(0, cpu_ticks)).collect();
            tokio::time::sleep(Duration::from_millis(300)).await;
            (0..nodes.len())
                .max_by_key(|i| {
                    nodes[*i]
                        .pid()
                        .map_or(0, cpu_ticks)
                        .saturating_sub(before[*i])
                })
                .unwrap()
        };
        let kill_ms = now_ms();
        nodes[victim].kill();
        let running: Vec<(String, i32)> =
            sqlx::query_as("SELECT id, attempt FROM jobs WHERE status = 'running'")
                .fetch_all(&db)
                .await
                .unwrap();
        let follow = tokio::spawn(reclaims(
            db.clone(),
            kill_ms,
            running,
            Duration::from_millis(LEASE_MS as u64) + Duration::from_secs(20),
        ));
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..1500))).await;
        blocking(|| nodes[victim].restart());
        // Cycles do not overlap, so that a re-run is put down to its kill.
        let (d, u) = follow.await.unwrap();
        delays.extend(d);
        unresolved.extend(u);
    }
    let load_s = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (mut acked, mut retries) = (extra, 0);
    for c in clients {
        let (a, r) = c.await.unwrap();
        acked.extend(a);
        retries += r;
    }

    // Every acknowledged job ends.
    let ids: Vec<String> = acked.iter().map(|a| a.id.clone()).collect();
    let drain = Instant::now();
    let mut left = unfinished(&db, &ids).await.unwrap();
    while !left.is_empty() && drain.elapsed() < Duration::from_secs(150) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        left = unfinished(&db, &ids).await.unwrap();
    }
    let stored: BTreeMap<String, (String, i32)> = sqlx::query_as::<_, (String, String, i32)>(
        "SELECT id, status, attempt FROM jobs WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, status, attempt)| (id, (status, attempt)))
    .collect();
    let missing: Vec<&String> = ids.iter().filter(|id| !stored.contains_key(*id)).collect();
    let lost = missing.len() + left.len();

    // Ends written twice, as the database recorded them.
    let twice: Vec<(String, i64)> =
        sqlx::query_as("SELECT id, count(*) FROM audit GROUP BY id HAVING count(*) > 1")
            .fetch_all(&db)
            .await
            .unwrap();
    let completed_twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT id FROM audit WHERE status = 'completed' \
         GROUP BY id HAVING count(*) > 1) t",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit")
        .fetch_one(&db)
        .await
        .unwrap();

    // What nodes answer agrees with the store; Bell counts are the core's
    // for their seeds, re-run or not.
    let apis: BTreeMap<(&str, usize), Api> = tenants
        .iter()
        .flat_map(|t| (0..bases.len()).map(move |n| (*t, n)))
        .map(|(t, n)| ((t, n), Api::new(bases[n].clone(), Some(&keys[t]))))
        .collect();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    // Why jobs failed, by error code (a job whose node was killed during
    // each of its runs fails with `too-many-attempts`, by design).
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut reran = 0;
    for (i, a) in acked.iter().enumerate() {
        let Some((status, attempt)) = stored.get(&a.id) else {
            continue;
        };
        *by_status.entry(status.clone()).or_default() += 1;
        if *attempt > 1 {
            reran += 1;
        }
        let api = &apis[&(a.tenant, i % bases.len())];
        let view = api.get_job(&a.id, "").await.body;
        assert_eq!(view["status"], json!(status), "{view}");
        if status == "failed" {
            let code = view["error"]["code"].as_str().unwrap_or("?").to_owned();
            *failures.entry(code).or_default() += 1;
        }
        if let (Some((seed, shots)), "completed") = (a.bell, status.as_str()) {
            assert_eq!(
                view["result"]["executions"][0]["counts"],
                core_counts(BELL, shots, seed),
                "{}: wrong counts",
                a.id
            );
        }
    }
    let problems = integrity_problems(&db).await;

    delays.sort_unstable();
    let rerun = if delays.is_empty() {
        "none measured".to_owned()
    } else {
        format!(
            "{} jobs, median {} ms, max {} ms",
            delays.len(),
            delays[delays.len() / 2],
            delays[delays.len() - 1]
        )
    };
    report(&format!(
        "cluster: {} acknowledged in {load_s:.0} s of load ({retries} requests sent again after a \
         lost connection or 503), {lost} lost, {} with an end written twice ({completed_twice} \
         completed twice; {audited} ends audited); statuses {by_status:?} (failed: \
         {failures:?}), {reran} run more than once; re-run after SIGKILL: {rerun}; PostgreSQL crashed and restarted (down \
         {pg_down_ms} ms); node n2 cut off for {cut_ms} ms, its jobs claimed by others \
         {cut_reclaims:?} ms after the cut; integrity: {}",
        acked.len(),
        twice.len(),
        if problems.is_empty() {
            "ok".to_owned()
        } else {
            problems.join("; ")
        }
    ));
    assert_eq!(lost, 0, "missing {missing:?}, never ended {left:?}");
    assert!(twice.is_empty(), "ends written twice: {twice:?}");
    assert_eq!(problems, Vec::<String>::new(), "integrity");
    assert!(!delays.is_empty(), "no kill found a job running");
    assert!(
        !cut_reclaims.is_empty(),
        "the job n2 held when it was cut off was not claimed by another node"
    );
    assert!(
        unresolved.is_empty(),
        "jobs running at a kill neither ended nor re-claimed within lease + 20 s: {unresolved:?}"
    );
    let max = delays[delays.len() - 1];
    assert!(
        max <= LEASE_MS + 5000,
        "a dead node's job was claimed again {max} ms after the kill (lease {LEASE_MS} ms)"
    );
}

/// The job's `ended_ms` in the store.
async fn ended_ms(db: &PgPool, id: &str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>("SELECT ended_ms FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap()
        .expect("the job has ended")
}

/// `GET /v1/jobs` on every node with `key`: the status codes.
async fn list_codes(nodes: &[&Node], key: &str) -> Vec<u16> {
    let mut codes = Vec::new();
    for node in nodes {
        let api = Api::new(node.base.clone(), Some(key));
        codes.push(
            api.send(reqwest::Method::GET, "/v1/jobs", "/v1/jobs", None, &[])
                .await
                .status,
        );
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_wait_cross_nodes() {
    let Some(pg) = test_postgres().await else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let url = pg.url().to_owned();
    let key = create_key(&url, "team");
    // Only B's budget holds an 18-qubit state (4 MiB): whatever A or C
    // accepts, B runs.
    let small = [
        ("KETTLE_WORKERS", "1"),
        ("KETTLE_MEMORY_BUDGET", "1MiB"),
        ("KETTLE_CLUSTER_MEMORY_BUDGET", "1GiB"),
    ];
    let big = [("KETTLE_WORKERS", "1"), ("KETTLE_MEMORY_BUDGET", "1GiB")];
    let a = blocking(|| Node::start("A", &url, &small));
    let b = blocking(|| Node::start("B", &url, &big));
    let c = blocking(|| Node::start("C", &url, &small));
    let db = pool(&url).await;
    let on = |node: &Node| Api::new(node.base.clone(), Some(&key));
    let (api_a, api_c) = (on(&a), on(&c));

    // `?wait` on C for jobs submitted on A and run by B: how long after the
    // end was written the answer came.
    let mut wait_lag = Vec::new();
    for i in 0..5 {
        let r = api_a
            .post_job(
                job(
                    &slow_program(18, 300 + 100 * i),
                    json!({"result_types": [{"expectation": ["Z0"]}]}),
                ),
                "",
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let done = api_c.get_job(&id, "?wait=30").await;
        let returned = now_ms();
        assert_eq!(done.body["status"], "completed", "{}", done.body);
        wait_lag.push(returned - ended_ms(&db, &id).await);
    }
    wait_lag.sort_unstable();

    // DELETE on a node that does not run the job: how long until its end.
    let mut stop_lag = Vec::new();
    for canceller in [&api_a, &api_c] {
        let r = api_a
            .post_job(
                job(
                    &slow_program(18, 60_000),
                    json!({"result_types": [{"expectation": ["Z0"]}]}),
                ),
                "",
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_owned();
        api_c.until(&id, "running").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let asked = now_ms();
        let r = canceller
            .send(
                reqwest::Method::DELETE,
                "/v1/jobs/{id}",
                &format!("/v1/jobs/{id}"),
                None,
                &[],
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let done = api_a.get_job(&id, "?wait=30").await.body;
        assert_eq!(done["status"], "cancelled", "{done}");
        stop_lag.push(ended_ms(&db, &id).await - asked);
    }

    // Keys made and revoked by the CLI, with the nodes running.
    let fresh = create_key(&url, "newcomer");
    let created = list_codes(&[&a, &b, &c], &fresh).await;
    revoke_key(&url, &fresh);
    let revoked = list_codes(&[&a, &b, &c], &fresh).await;

    report(&format!(
        "cluster, across nodes: ?wait on C answered {:?} ms after B wrote the end (5 jobs \
         submitted on A); DELETE on A and on C stopped the job on B {stop_lag:?} ms after it \
         was sent; a key created by the CLI: {created:?} on A, B, C at once; revoked: \
         {revoked:?}",
        wait_lag
    ));
    assert_eq!(created, [200, 200, 200]);
    assert_eq!(revoked, [401, 401, 401]);
    assert!(
        wait_lag.iter().all(|ms| *ms <= 200),
        "?wait answered late: {wait_lag:?} ms"
    );
    assert!(
        stop_lag.iter().all(|ms| *ms <= 1500),
        "a cancel took {stop_lag:?} ms"
    );
}

/// A GHZ state on `n` qubits, measured.
fn ghz(n: u32) -> String {
    let mut s =
        format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\ncreg c[{n}];\nh q[0];\n");
    for i in 1..n {
        s.push_str(&format!("cx q[{}], q[{i}];\n", i - 1));
    }
    s.push_str("measure q -> c;\n");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_aware_placement() {
    let Some(pg) = test_postgres().await else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let url = pg.url().to_owned();
    let key = create_key(&url, "team");
    // 21 qubits at f64: 32 MiB of state.
    let small = blocking(|| {
        Node::start(
            "small",
            &url,
            &[
                ("KETTLE_WORKERS", "1"),
                ("KETTLE_MEMORY_BUDGET", "4MiB"),
                ("KETTLE_CLUSTER_MEMORY_BUDGET", "1GiB"),
            ],
        )
    });
    let big = blocking(|| {
        Node::start(
            "big",
            &url,
            &[("KETTLE_WORKERS", "1"), ("KETTLE_MEMORY_BUDGET", "1GiB")],
        )
    });
    let api = Api::new(small.base.clone(), Some(&key));

    // With the big node paused, the big job waits, while the small node
    // runs what fits it.
    big.signal("STOP");
    let r = api
        .post_job(job(&ghz(21), json!({"shots": 100, "seed": 5})), "")
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let bell = api
        .post_job(job(BELL, json!({"shots": 100})), "?wait=30")
        .await;
    assert_eq!(bell.body["status"], "completed", "{}", bell.body);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let waiting = api.get_job(&id, "").await.body;
    big.signal("CONT");
    assert_eq!(
        waiting["status"], "queued",
        "the small node took a job over its budget: {waiting}"
    );
    let done = api.get_job(&id, "?wait=60").await.body;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["attempts"], 1, "{done}");

    // Over the cluster's budget too: refused where it is submitted.
    let huge = api.post_job(job(&ghz(27), json!({"shots": 10})), "").await;
    assert_eq!(huge.status, 413, "{}", huge.body);
    report(&format!(
        "cluster, placement: a 21-qubit job (32 MiB) submitted to the 4 MiB node stayed queued \
         3 s while the 1 GiB node was paused, then completed there (attempts 1); a 27-qubit \
         job: {} (cluster budget 1 GiB)",
        huge.status
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_503_and_resume() {
    let Some(server) = server_of_our_own() else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let url = server.database().await;
    let key = create_key(&url, "team");
    let env = [("KETTLE_WORKERS", "1"), ("KETTLE_CLAIM_POLL_MS", "200")];
    let nodes = [
        blocking(|| Node::start("n0", &url, &env)),
        blocking(|| Node::start("n1", &url, &env)),
    ];
    let apis: Vec<Api> = nodes
        .iter()
        .map(|n| Api::new(n.base.clone(), Some(&key)))
        .collect();

    // Acknowledged before: done, running and queued.
    let mut acked = Vec::new();
    for i in 0..4 {
        let r = apis[i % 2]
            .post_job(job(BELL, json!({"shots": 50, "seed": i})), "?wait=30")
            .await;
        assert_eq!(r.body["status"], "completed", "{}", r.body);
        acked.push(r.body["id"].as_str().unwrap().to_owned());
    }
    for i in 0..4 {
        let r = apis[i % 2]
            .post_job(job(&slow_measured(3000), json!({"shots": 10})), "")
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        acked.push(r.body["id"].as_str().unwrap().to_owned());
    }

    blocking(|| server.stop()).unwrap();
    let down = Instant::now();
    // A submission needs the database: 503 with Retry-After, on each node.
    let mut refused = Vec::new();
    for api in &apis {
        let r = api.post_job(job(BELL, json!({"shots": 10})), "").await;
        assert_eq!(r.status, 503, "{}", r.body);
        let retry = r
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        assert!(retry.is_some(), "503 without Retry-After: {:?}", r.headers);
        refused.push(down.elapsed().as_millis());
    }
    // /readyz says so (within a few seconds of the loss).
    let mut not_ready = Vec::new();
    for api in &apis {
        let mut code = 200;
        for _ in 0..100 {
            code = api
                .send(reqwest::Method::GET, "/readyz", "/readyz", None, &[])
                .await
                .status;
            if code == 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(code, 503, "/readyz while the database is down");
        not_ready.push(down.elapsed().as_millis());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    blocking(|| server.start()).unwrap();
    let up = Instant::now();

    // Both nodes resume by themselves: ready again, and a new job on each
    // completes.
    let mut resumed = Vec::new();
    for api in &apis {
        loop {
            let r = api
                .send(reqwest::Method::GET, "/readyz", "/readyz", None, &[])
                .await;
            if r.status == 200 {
                break;
            }
            assert!(
                up.elapsed() < Duration::from_secs(60),
                "not ready a minute after the database came back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r = api
            .post_job(job(BELL, json!({"shots": 10})), "?wait=30")
            .await;
        assert_eq!(r.body["status"], "completed", "{}", r.body);
        resumed.push(up.elapsed().as_millis());
    }
    // Nothing acknowledged before is lost: every job ends, completed.
    for (i, id) in acked.iter().enumerate() {
        let done = apis[i % 2].get_job(id, "?wait=60").await.body;
        assert_eq!(done["status"], "completed", "{done}");
    }
    report(&format!(
        "cluster, PostgreSQL stopped: POST answered 503 + Retry-After at {refused:?} ms, \
         /readyz 503 at {not_ready:?} ms; back: a new job completed on each node {resumed:?} ms \
         after the database returned, without a restart; the {} jobs acknowledged before all \
         completed",
        acked.len()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_limit_holds_across_nodes() {
    let Some(pg) = test_postgres().await else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    const LIMIT: usize = 4;
    let url = pg.url().to_owned();
    let key = create_key(&url, "team");
    let env = [
        ("KETTLE_WORKERS", "1"),
        ("KETTLE_LIMITS__MAX_ACTIVE_JOBS", "4"),
    ];
    let nodes: Vec<Node> = (0..3)
        .map(|i| blocking(|| Node::start(&format!("n{i}"), &url, &env)))
        .collect();
    let db = pool(&url).await;
    let apis: Vec<Api> = nodes
        .iter()
        .map(|n| Api::new(n.base.clone(), Some(&key)))
        .collect();
    let long = job(
        &slow_program(18, 60_000),
        json!({"result_types": [{"expectation": ["Z0"]}]}),
    );
    let mut rounds = Vec::new();
    for _ in 0..3 {
        // 2 × LIMIT at once, spread over the nodes; the jobs run for
        // minutes, so every accepted one is still active.
        let sends: Vec<_> = (0..2 * LIMIT)
            .map(|i| {
                let (api, body) = (apis[i % apis.len()].clone(), long.clone());
                tokio::spawn(async move { api.post_job(body, "").await })
            })
            .collect();
        let mut accepted = Vec::new();
        let mut refused = 0;
        for s in sends {
            let r = s.await.unwrap();
            match r.status {
                201 => accepted.push(r.body["id"].as_str().unwrap().to_owned()),
                429 => refused += 1,
                code => panic!("{code}: {}", r.body),
            }
        }
        let active: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE tenant = 'team' AND status IN ('queued', 'running')",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        rounds.push((accepted.len(), refused, active));
        assert_eq!(
            (accepted.len(), refused, active),
            (LIMIT, LIMIT, LIMIT as i64),
            "accepted, refused, active in the store"
        );
        for id in &accepted {
            let r = apis[0]
                .send(
                    reqwest::Method::DELETE,
                    "/v1/jobs/{id}",
                    &format!("/v1/jobs/{id}"),
                    None,
                    &[],
                )
                .await;
            assert!(r.status == 200 || r.status == 202, "{}", r.body);
        }
        for id in &accepted {
            let done = apis[1].get_job(id, "?wait=30").await.body;
            assert_eq!(done["status"], "cancelled", "{done}");
        }
    }
    report(&format!(
        "cluster, tenant limit {LIMIT} over 3 nodes: {} concurrent submissions per round, \
         (accepted, refused 429, active in the store) per round: {rounds:?}",
        2 * LIMIT
    ));
}

/// The proxy the cluster test relies on: connections through it work, a
/// cut ends them and blackholes new ones, a restore lets new ones through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_cuts_and_restores() {
    use sqlx::Connection;
    let Some(pg) = test_postgres().await else {
        return;
    };
    let upstream = port_of(pg.url());
    let proxy = Proxy::start(upstream).await;
    let url = proxy.url(pg.url(), upstream);
    assert_ne!(url, pg.url());
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    proxy.cut().await;
    let cut = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&mut conn),
    )
    .await;
    assert!(
        matches!(cut, Ok(Err(_))),
        "an open connection is cut: {cut:?}"
    );
    let blackholed =
        tokio::time::timeout(Duration::from_secs(1), sqlx::PgConnection::connect(&url)).await;
    assert!(blackholed.is_err(), "a new connection hangs while cut");
    proxy.restore();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
}
