//! Admission under attack (issue 15, finding 1), against a `kettle serve`
//! process: tenant A sends ten 11 KB OpenQASM 3 programs whose classical
//! loop would run 10^9 assignments while tenant B's Bell jobs (`?wait=5`)
//! are timed. Each attack must end with `422 limit-exceeded` naming the
//! limit, and B's latency must stay normal. Then A hangs up on slow sweeps:
//! their parses must stop, so A's own next job is not stuck behind them.
//!
//! Bounded: ten attacks of a few seconds each (A may parse on all permits
//! but one), about 30 s in a debug build.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{bell_latencies, percentile, report};
use crate::server_util::*;

const ATTACKS: usize = 10;

/// 11 KB: a million iterations of a thousand assignments.
fn attack_program() -> String {
    let assignments = "x = x + 1; ".repeat(1000);
    format!("OPENQASM 3.0;\nint x = 0;\nfor int i in [0:999999] {{ {assignments} }}\n")
}

/// A sweep of a thousand executions, each tens of milliseconds to parse:
/// its admission would run to the deadline unless stopped.
fn slow_sweep() -> Value {
    let source = "OPENQASM 3.0;\ninput float t;\nqubit q;\nbit c;\nint x = 0;\n\
                  for int i in [0:99999] { x = i + 1; }\nc = measure q;\n";
    json!({
        "program": {"format": "qasm3", "source": source},
        "shots": 10,
        "inputs": {"t": (0..1000).map(f64::from).collect::<Vec<_>>()},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_programs_of_one_tenant_end_in_422_and_others_keep_their_latency() {
    let dir = tempfile::tempdir().unwrap();
    let a_key = kettle_server::keys_create(dir.path(), "a").unwrap().key;
    let b_key = kettle_server::keys_create(dir.path(), "b").unwrap().key;
    let server = ChildServer::start_with(dir.path(), &[("KETTLE_WORKERS", "2")]);
    let a = Api::new(server.base.clone(), Some(&a_key));
    let b = Api::new(server.base.clone(), Some(&b_key));

    let backend = b
        .send(
            reqwest::Method::GET,
            "/v1/backend",
            "/v1/backend",
            None,
            &[],
        )
        .await
        .body;
    assert_eq!(backend["max_admission_seconds"], json!(10.0), "{backend}");
    assert!(
        backend["max_classical_steps"].as_u64().is_some(),
        "{backend}"
    );

    bell_latencies(&b, Duration::from_millis(300), 5).await;
    let before = bell_latencies(&b, Duration::from_secs(2), 5).await;

    let program = attack_program();
    assert!(program.len() > 10_000 && program.len() < 12_000);
    let started = Instant::now();
    let attacks: Vec<_> = (0..ATTACKS)
        .map(|_| {
            let a = Api::new(a.base.clone(), a.key.as_deref());
            let body = json!({"program": {"format": "qasm3", "source": program}});
            tokio::spawn(async move {
                let r = a.post_job(body, "").await;
                (r, started.elapsed())
            })
        })
        .collect();
    // B's jobs while A's attacks are being parsed.
    let b_during = tokio::spawn({
        let b = Api::new(b.base.clone(), b.key.as_deref());
        async move { bell_latencies(&b, Duration::from_secs(6), 5).await }
    });
    let mut limits = Vec::new();
    let mut took = Vec::new();
    for attack in attacks {
        let (r, at) = attack.await.unwrap();
        assert_eq!(r.status, 422, "{}", r.body);
        assert_eq!(r.body["type"], "urn:kettle:problem:limit-exceeded");
        let limit = r.body["limit"].as_str().unwrap_or_default().to_owned();
        assert!(
            limit == "max_classical_steps" || limit == "max_admission_seconds",
            "{}",
            r.body
        );
        limits.push(limit);
        took.push(at);
    }
    let during = b_during.await.unwrap();
    took.sort();
    let by_budget = limits
        .iter()
        .filter(|l| *l == "max_classical_steps")
        .count();
    report(&format!(
        "admission attack: {ATTACKS} programs of {} bytes from one tenant, all 422 limit-exceeded \
         ({by_budget} max_classical_steps, {} max_admission_seconds); first after {:.1?}, last after {:.1?}",
        program.len(),
        ATTACKS - by_budget,
        took[0],
        took[ATTACKS - 1],
    ));
    report(&format!(
        "other tenant's Bell jobs (?wait=5): before {} jobs p50 {:.1?} p99 {:.1?}; during the attack {} jobs p50 {:.1?} p99 {:.1?}",
        before.len(),
        percentile(&before, 0.5),
        percentile(&before, 0.99),
        during.len(),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
    ));
    // Each attack parses for a few seconds at most, one at a time at worst.
    assert!(took[ATTACKS - 1] < Duration::from_secs(120), "{took:?}");
    assert!(
        percentile(&during, 0.99) < Duration::from_secs(2),
        "{during:?}"
    );

    // A hangs up on sweeps that would parse until the deadline, on all the
    // permits it may hold: once they are abandoned, A's next job is parsed
    // at once (without that, it waited for the 10 s deadline).
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(1000))
        .build()
        .unwrap();
    let hang_ups: Vec<_> = (0..cores.max(2) - 1)
        .map(|_| {
            tokio::spawn(
                impatient
                    .post(format!("{}/v1/jobs", a.base))
                    .bearer_auth(&a_key)
                    .json(&slow_sweep())
                    .send(),
            )
        })
        .collect();
    for hang_up in hang_ups {
        let r = hang_up.await.unwrap();
        assert!(r.is_err_and(|e| e.is_timeout()), "the sweep was answered");
    }
    let hung_up = Instant::now();
    let r = a
        .post_job(job(BELL, json!({"shots": 100})), "?wait=5")
        .await;
    let next = hung_up.elapsed();
    assert_eq!(r.body["status"], "completed", "{}", r.body);
    report(&format!(
        "after hanging up on {} slow sweeps, the same tenant's Bell job completed in {next:.1?}",
        cores.max(2) - 1
    ));
    assert!(next < Duration::from_secs(5), "{next:?}");
}
