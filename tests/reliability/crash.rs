//! Crash durability: several cycles of starting `kettle serve`, driving
//! submissions from three tenants (two clients each), and SIGKILL at a random moment, all on
//! one data folder. Clients behave as a careful client does: a submission
//! whose answer was lost is sent again with the same idempotency key after
//! the restart. At the end every job that got `201`/`200` exists once,
//! completed, with the counts the core gives for its seed; no job exists
//! that no client sent; and the store passes its integrity check.
//!
//! Bounded: `RELIABILITY_KILL_CYCLES` cycles (default 5) of at most 2.5 s of load
//! each. `RELIABILITY_SEED` replays a schedule.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{report, seeded_rng};
use crate::server_util::*;

const TENANTS: [&str; 3] = ["alpha", "beta", "gamma"];

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

/// A job that runs for a while, measured, so that kills find jobs running.
fn slow_measured() -> String {
    let mut s = slow_program(16, 1500);
    s.push_str("creg c[16];\nmeasure q -> c;\n");
    s
}

/// How a submission is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Idempotency key, no wait: the answer comes after the commit.
    Keyed,
    /// Idempotency key and `?wait=10`.
    KeyedWait,
    /// `?wait=10` without a key: stored when it ends; a lost answer cannot
    /// be retried, so the job may or may not exist.
    Unkeyed,
}

/// What a client knows about one submission.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// `201` or `200` with this id.
    Acked(String),
    /// The connection died before an answer.
    Unknown,
    /// A `4xx` (a tenant limit, say): it must not exist.
    Refused(u16),
}

#[derive(Clone, Debug)]
struct Submission {
    tenant: &'static str,
    name: String,
    source: String,
    shots: u64,
    seed: u64,
    mode: Mode,
    outcome: Outcome,
}

impl Submission {
    fn body(&self) -> Value {
        job(
            &self.source,
            json!({"shots": self.shots, "seed": self.seed, "name": self.name}),
        )
    }

    /// Sends it; `None` when the server did not answer.
    async fn send(&self, http: &reqwest::Client, base: &str, key: &str) -> Option<Outcome> {
        let query = if self.mode == Mode::Keyed {
            ""
        } else {
            "?wait=10"
        };
        let mut req = http
            .post(format!("{base}/v1/jobs{query}"))
            .bearer_auth(key)
            .json(&self.body());
        if self.mode != Mode::Unkeyed {
            req = req.header("Idempotency-Key", &self.name);
        }
        let resp = req.send().await.ok()?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.ok()?;
        assert!(status < 500, "{} got {status}: {body}", self.name);
        Some(match status {
            200 | 201 => Outcome::Acked(body["id"].as_str().unwrap().to_owned()),
            s => Outcome::Refused(s),
        })
    }
}

/// One of a tenant's clients (two per tenant) for one cycle: submits until the server dies or
/// `stop` is set.
async fn client(
    tenant: &'static str,
    key: String,
    base: String,
    label: String,
    mut rng: Xoshiro256PlusPlus,
    stop: Arc<AtomicBool>,
) -> Vec<Submission> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut sent = Vec::new();
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let source = match rng.random_range(0..10) {
            0 => slow_measured(),
            1..=4 => BELL.to_owned(),
            _ => ghz(rng.random_range(3..9)),
        };
        let mut s = Submission {
            tenant,
            name: format!("{tenant}-{label}-{i}"),
            source,
            shots: rng.random_range(10..300),
            seed: rng.random::<u64>() >> 12,
            mode: [Mode::Keyed, Mode::KeyedWait, Mode::Unkeyed][rng.random_range(0..3)],
            outcome: Outcome::Unknown,
        };
        let answer = s.send(&http, &base, &key).await;
        let dead = answer.is_none();
        if let Some(o) = answer {
            s.outcome = o;
        }
        sent.push(s);
        if dead {
            break;
        }
    }
    sent
}

/// Every job of `tenant`, through the list's pages.
async fn all_jobs(api: &Api) -> Vec<Value> {
    let mut jobs = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/v1/jobs?limit=100{cursor}");
        let page = api
            .send(reqwest::Method::GET, "/v1/jobs", &path, None, &[])
            .await
            .body;
        jobs.extend(page["jobs"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return jobs,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_cycles_under_load_lose_no_acknowledged_job() {
    let cycles: usize = std::env::var("RELIABILITY_KILL_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let (mut rng, seed) = seeded_rng();
    report(&format!(
        "crash durability: {cycles} cycles, RELIABILITY_SEED={seed}"
    ));
    let dir = tempfile::tempdir().unwrap();
    let keys: BTreeMap<&str, String> = TENANTS
        .iter()
        .map(|t| (*t, kettle_server::keys_create(dir.path(), t).unwrap().key))
        .collect();
    let env = [
        ("KETTLE_WORKERS", "2"),
        ("KETTLE_LIMITS__MAX_ACTIVE_JOBS", "40"),
    ];
    let mut all: Vec<Submission> = Vec::new();
    let mut server = ChildServer::start_with(dir.path(), &env);
    for cycle in 0..cycles {
        // What a careful client does after an outage: send again every
        // keyed submission whose answer was lost, with the same key.
        retry_lost(&mut all, &server.base, &keys).await;
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = TENANTS
            .iter()
            .flat_map(|t| [(t, 0), (t, 1)])
            .map(|(t, worker)| {
                tokio::spawn(client(
                    t,
                    keys[t].clone(),
                    server.base.clone(),
                    format!("c{cycle}w{worker}"),
                    Xoshiro256PlusPlus::seed_from_u64(rng.random()),
                    stop.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..2500))).await;
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        server = ChildServer::start_with(dir.path(), &env);
    }
    retry_lost(&mut all, &server.base, &keys).await;

    // Every job each tenant can see, once each run to its end.
    let mut stored: BTreeMap<(&str, String), Value> = BTreeMap::new();
    let mut reran = 0;
    for tenant in TENANTS {
        let api = Api::new(server.base.clone(), Some(&keys[tenant]));
        let listed = all_jobs(&api).await;
        let mut names = BTreeSet::new();
        for j in listed {
            let name = j["name"]
                .as_str()
                .expect("every job has its name")
                .to_owned();
            assert!(names.insert(name.clone()), "{name} is stored twice");
            let id = j["id"].as_str().unwrap();
            let done = api.get_job(id, "?wait=60").await.body;
            assert_eq!(done["status"], "completed", "{done}");
            if done["attempts"].as_u64() > Some(1) {
                reran += 1;
            }
            stored.insert((tenant, name), done);
        }
    }
    let sent: BTreeMap<(&str, String), &Submission> = all
        .iter()
        .map(|s| ((s.tenant, s.name.clone()), s))
        .collect();
    for key in stored.keys() {
        assert!(
            sent.contains_key(key),
            "{key:?} exists but no client sent it"
        );
    }
    let (mut acked, mut unacked_stored, mut unacked_absent, mut refused) = (0, 0, 0, 0);
    for s in &all {
        let job = stored.get(&(s.tenant, s.name.clone()));
        match (&s.outcome, job) {
            (Outcome::Acked(id), Some(job)) => {
                acked += 1;
                assert_eq!(job["id"], json!(id), "{}", s.name);
            }
            (Outcome::Acked(_), None) => panic!("{} was acknowledged and is lost", s.name),
            (Outcome::Unknown, Some(_)) => unacked_stored += 1,
            (Outcome::Unknown, None) => unacked_absent += 1,
            (Outcome::Refused(code), Some(_)) => panic!("{} got {code} but exists", s.name),
            (Outcome::Refused(_), None) => refused += 1,
        }
        if let Some(job) = job {
            assert_eq!(
                job["result"]["executions"][0]["counts"],
                core_counts(&s.source, s.shots, s.seed),
                "{}: wrong counts",
                s.name
            );
        }
    }
    assert_eq!(
        all.iter()
            .filter(|s| s.mode != Mode::Unkeyed && s.outcome == Outcome::Unknown)
            .count(),
        0,
        "every keyed submission got an answer on retry"
    );
    server.kill();
    let store = kettle_service::SqliteStore::open(dir.path()).await.unwrap();
    let problems = store.integrity_check().await.unwrap();
    assert_eq!(problems, Vec::<String>::new(), "integrity check");
    report(&format!(
        "crash durability: {cycles} kill cycles, {} submissions: {acked} acknowledged (0 lost, \
         {reran} re-run after a kill), {unacked_stored} unanswered but stored, \
         {unacked_absent} unanswered and absent, {refused} refused; integrity check ok",
        all.len()
    ));
}

/// Sends again each keyed submission that has no answer yet.
async fn retry_lost(all: &mut [Submission], base: &str, keys: &BTreeMap<&str, String>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for s in all
        .iter_mut()
        .filter(|s| s.mode != Mode::Unkeyed && s.outcome == Outcome::Unknown)
    {
        let answer = s.send(&http, base, &keys[s.tenant]).await;
        s.outcome = answer.expect("the restarted server answers");
    }
}
