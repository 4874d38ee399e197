//! Durability over real HTTP: a server process is killed with SIGKILL while
//! jobs are queued and running, restarted on the same data folder, and every
//! job that got `201` ends completed with the result the core gives for its
//! seed; completed results survive untouched and nothing completes twice.

use std::time::Duration;

use serde_json::{Value, json};

use crate::server_util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_jobs_are_queued_and_running_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = ChildServer::start(dir.path());
    let api = Api::new(server.base.clone(), None);
    // Some jobs complete before the crash.
    let mut done = Vec::new();
    for seed in 0..3u64 {
        let r = api
            .post_job(job(BELL, json!({"shots": 100, "seed": seed})), "?wait=30")
            .await;
        assert_eq!(r.body["status"], "completed");
        done.push(r.body);
    }
    // One runs (a few seconds) and the rest queue behind it (one worker).
    let (slow_id, queued) = api.one_running_rest_queued(30_000, 100..120).await;
    server.kill();

    let server = ChildServer::start(dir.path());
    let api = Api::new(server.base.clone(), None);
    for before in &done {
        let after = api.get_job(before["id"].as_str().unwrap(), "").await.body;
        let unchanged = |v: &Value| {
            (
                v["status"].clone(),
                v["result"].clone(),
                v["ended_at"].clone(),
                v["attempts"].clone(),
            )
        };
        assert_eq!(
            unchanged(&after),
            unchanged(before),
            "a completed job changed"
        );
    }
    let slow = api.get_job(&slow_id, "?wait=120").await.body;
    assert_eq!(slow["status"], "completed", "{slow}");
    assert_eq!(slow["attempts"], 2, "the interrupted job ran again, once");
    for (id, seed) in &queued {
        let r = api.get_job(id, "?wait=60").await.body;
        assert_eq!(r["status"], "completed", "{r}");
        assert_eq!(r["attempts"], 1);
        assert_eq!(
            r["result"]["executions"][0]["counts"],
            core_counts(BELL, 100, *seed)
        );
    }
    let all = api
        .send(
            reqwest::Method::GET,
            "/v1/jobs",
            "/v1/jobs?limit=100",
            None,
            &[],
        )
        .await
        .body;
    assert_eq!(all["jobs"].as_array().unwrap().len(), 3 + 1 + queued.len());
    drop(server);
    tokio::time::sleep(Duration::from_millis(10)).await;
}
