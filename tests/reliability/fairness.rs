//! Fair use of workers (issue 15, finding 8), against a `kettle serve`
//! process with two workers: tenant A's long jobs (a 123-byte program of a
//! million gates) fill both, and more of them wait; tenant B's Bell jobs
//! must still start at once (the fair-share worker), while A alone never
//! runs more jobs than there are workers.
//!
//! Bounded: four long jobs, cancelled at the end; about 15 s.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::report;
use crate::server_util::*;

const WORKERS: usize = 2;
const LONG_JOBS: usize = 4;

/// Minutes of simulation on one thread (a million gates on 16 qubits).
fn long_job() -> Value {
    json!({
        "program": {"format": "qasm3", "source": "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[16] q;\nfor int i in [0:499999] { h q[i % 16]; cx q[i % 16], q[(i + 1) % 16]; }\n"},
        "result_types": [{"expectation": ["Z0"]}],
    })
}

/// How many of `ids` are running now.
async fn running(api: &Api, ids: &[String]) -> usize {
    let mut n = 0;
    for id in ids {
        if api.get_job(id, "").await.body["status"] == "running" {
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_starts_at_once_while_one_tenant_holds_every_worker() {
    let dir = tempfile::tempdir().unwrap();
    let a_key = kettle_server::keys_create(dir.path(), "a").unwrap().key;
    let b_key = kettle_server::keys_create(dir.path(), "b").unwrap().key;
    let workers = WORKERS.to_string();
    let server = ChildServer::start_with(dir.path(), &[("KETTLE_WORKERS", &workers)]);
    let a = Api::new(server.base.clone(), Some(&a_key));
    let b = Api::new(server.base.clone(), Some(&b_key));

    let mut ids = Vec::new();
    for _ in 0..LONG_JOBS {
        let r = a.post_job(long_job(), "").await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    // A alone: every worker busy, and no more.
    let started = Instant::now();
    while running(&a, &ids).await < WORKERS {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "A's jobs never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alone = running(&a, &ids).await;
    assert_eq!(
        alone, WORKERS,
        "a single tenant runs on every worker and no more"
    );

    // B's small jobs while A's long ones hold both workers and more wait.
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = b
            .post_job(job(BELL, json!({"shots": 100})), "?wait=5")
            .await;
        assert_eq!(r.body["status"], "completed", "{}", r.body);
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let with_b = running(&a, &ids).await;
    assert_eq!(with_b, WORKERS, "A's jobs kept their workers");
    report(&format!(
        "fair use of {WORKERS} workers: tenant A alone runs {alone} of its {LONG_JOBS} long jobs at once; \
         with both workers busy, tenant B's Bell jobs (?wait=5) completed in median {:.1?}, at most {:.1?} (5 jobs)",
        latencies[2], latencies[4]
    ));
    assert!(latencies[4] < Duration::from_secs(5), "{latencies:?}");

    for id in &ids {
        let path = format!("/v1/jobs/{id}");
        a.send(Method::DELETE, "/v1/jobs/{id}", &path, None, &[])
            .await;
    }
}
