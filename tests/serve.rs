//! `kettle serve` as users meet it: a parameter sweep in one job, and a
//! SIGTERM that drains the server without losing queued or running work.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::server_util::*;

const ROTATION: &str = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput float theta;\n\
                        qubit q;\nbit c;\nry(theta) q;\nc = measure q;\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_runs_one_execution_per_input_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = in_process(test_config(dir.path()));
    let api = Api::new(server.base.clone(), None);
    let thetas = [0.0, 0.4, 1.1, 2.0, std::f64::consts::PI];
    let body = json!({
        "program": {"format": "qasm3", "source": ROTATION},
        "inputs": {"theta": thetas},
        "shots": 2000,
        "seed": 5,
        "result_types": ["counts", "probabilities", {"expectation": ["Z0"]}],
    });
    let r = api.post_job(body, "?wait=60").await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "completed", "{}", r.body);
    let executions = r.body["result"]["executions"].as_array().unwrap();
    assert_eq!(executions.len(), thetas.len());
    for (run, theta) in executions.iter().zip(thetas) {
        assert_eq!(run["inputs"]["theta"], theta, "{run}");
        let p1 = (theta / 2.0).sin().powi(2);
        let got = run["probabilities"]["1"].as_f64().unwrap_or(0.0);
        assert!((got - p1).abs() < 1e-12, "theta {theta}: {run}");
        let z = run["expectation"][0]["value"]
            .as_f64()
            .or_else(|| run["expectations"][0]["value"].as_f64())
            .or_else(|| run["expectation"]["Z0"].as_f64())
            .unwrap_or_else(|| panic!("no expectation in {run}"));
        assert!((z - theta.cos()).abs() < 1e-12, "theta {theta}: {run}");
        let ones = run["counts"]["1"].as_u64().unwrap_or(0) as f64;
        // Five binomial standard deviations.
        let sigma = (2000.0 * p1 * (1.0 - p1)).sqrt();
        assert!((ones - 2000.0 * p1).abs() <= 5.0 * sigma + 1e-9, "{run}");
    }
    // Lists of different lengths, and a missing input, are refused at once.
    for inputs in [json!({"theta": [0.1, 0.2], "phi": [1.0]}), json!({})] {
        let body = json!({"program": {"format": "qasm3", "source": ROTATION}, "inputs": inputs});
        let r = api.post_job(body, "").await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert!(r.body["detail"].as_str().is_some(), "{}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_requeues_running_work_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ChildServer::start(dir.path());
    let api = Api::new(server.base.clone(), None);
    // One job runs longer than the 1 s grace (a few seconds); two wait behind it.
    let (slow_id, queued) = api.one_running_rest_queued(4_000, [7, 8]).await;
    // Two requests wait when SIGTERM comes: a read of the running job, and a
    // submission without an idempotency key, queued behind the others.
    let waiting_read = tokio::spawn({
        let (api, id) = (api.clone(), slow_id.clone());
        async move { api.get_job(&id, "?wait=60").await }
    });
    let waiting_submit = tokio::spawn({
        let api = api.clone();
        async move {
            api.post_job(job(BELL, json!({"shots": 100, "seed": 9})), "?wait=60")
                .await
        }
    });
    let held = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = api.http.get(format!("{}/metrics", api.base)).send().await;
        let text = match metrics {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.lines().any(|l| l == "kettle_queue_depth 3") {
            break;
        }
        assert!(
            Instant::now() < held,
            "the waiting submission was never queued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pid = server.child.id().to_string();
    let signalled = Instant::now();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "kettle serve did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
    drop(server);
    // Both waits were answered, at once, with 503 and when to come back.
    for waiting in [waiting_read, waiting_submit] {
        let r = waiting.await.unwrap();
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(
            r.body["type"], "urn:kettle:problem:shutting-down",
            "{}",
            r.body
        );
    }
    let answered = signalled.elapsed();
    assert!(
        answered < Duration::from_secs(10),
        "the waits were answered {answered:?} after SIGTERM"
    );

    let server = ChildServer::start(dir.path());
    let api = Api::new(server.base.clone(), None);
    // The interrupted job was queued again, not lost or failed, and runs
    // once more; the stopped run does not count towards its attempts.
    let slow = api.get_job(&slow_id, "?wait=120").await.body;
    assert_eq!(slow["status"], "completed", "{slow}");
    assert_eq!(slow["attempts"], 1, "{slow}");
    for (id, seed) in &queued {
        let r = api.get_job(id, "?wait=60").await.body;
        assert_eq!(r["status"], "completed", "{r}");
        assert_eq!(
            r["result"]["executions"][0]["counts"],
            core_counts(BELL, 100, *seed)
        );
    }
    // The submission answered 503 was never stored: no job its client
    // does not know of.
    let list = api
        .send(Method::GET, "/v1/jobs", "/v1/jobs", None, &[])
        .await;
    let jobs = list.body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3, "{}", list.body);
}
