//! Two services on one PostgreSQL database, as two nodes of a cluster, in
//! one process: a job submitted to one runs on whichever has room and is
//! read and waited for on the other; a cancellation reaches the node that
//! runs the job; a dead node's job is claimed again once its lease ends,
//! and the dead node's late end is refused; tenant limits count both
//! nodes' jobs. (Real processes, SIGKILL and partitions: the cluster test
//! in `tests/reliability/cluster.rs`.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::test_postgres::test_postgres;
use crate::store::{Capacity, JobStore, Outcome, PgStore, WriteOp, Written};
use crate::tests::{BELL, dense_program};
use crate::*;

/// A figure, shown with `--nocapture`.
fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn request(source: &str) -> JobRequest {
    serde_json::from_value(serde_json::json!({
        "program": {"format": "qasm2", "source": source}, "seed": 5, "shots": 100
    }))
    .unwrap()
}

/// A job of a few seconds on one thread.
fn slow_program() -> String {
    dense_program(18, 20_000) + "creg c[1];\nmeasure q[0] -> c[0];\n"
}

fn config(workers: usize) -> ServiceConfig {
    let mut c = ServiceConfig::new("unused-on-a-shared-store");
    c.auth = AuthMode::Local;
    c.workers = workers;
    c.sim_threads = 1;
    c.memory_budget = 1 << 30;
    c.lease = Duration::from_millis(900);
    c.claim_poll = Duration::from_millis(100);
    c
}

/// A node that accepts jobs (up to the cluster's 1 GiB budget) and runs
/// none: its own budget holds no state.
fn front_config() -> ServiceConfig {
    let mut c = config(1);
    c.memory_budget = 0;
    c.cluster_memory_budget = Some(1 << 30);
    c
}

async fn node(url: &str, config: ServiceConfig) -> Service {
    let store = PgStore::connect(url).await.unwrap();
    assert!(store.shared());
    Service::start_with_store(config, Arc::new(store))
        .await
        .unwrap()
}

async fn status_on(service: &Service, id: &str) -> JobView {
    service
        .get(LOCAL_TENANT, id, KeyFormat::Bitstring)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_submitted_to_one_node_is_read_and_waited_for_on_another() {
    let Some(pg) = test_postgres().await else {
        return;
    };
    let a = node(pg.url(), config(1)).await;
    let b = node(pg.url(), config(1)).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(
            a.submit(LOCAL_TENANT, request(BELL), None)
                .await
                .unwrap()
                .job
                .id,
        );
    }
    for id in &ids {
        let done = b
            .wait(
                LOCAL_TENANT,
                id,
                Duration::from_secs(20),
                KeyFormat::Bitstring,
            )
            .await
            .unwrap();
        assert_eq!(done.status, JobStatus::Completed, "{done:?}");
        assert_eq!(done.attempts, 1);
        let counts: u64 = done.result.as_ref().unwrap().executions[0]
            .counts
            .as_ref()
            .unwrap()
            .values()
            .sum();
        assert_eq!(counts, 100);
        assert_eq!(status_on(&a, id).await.status, JobStatus::Completed);
    }
    // `?wait` on a node with the job: one store, one answer.
    let sub = b
        .submit_and_wait(
            LOCAL_TENANT,
            request(BELL),
            None,
            Duration::from_secs(20),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    assert_eq!(sub.job.status, JobStatus::Completed);
    assert_eq!(
        status_on(&a, &sub.job.id).await.status,
        JobStatus::Completed
    );
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_one_node_stops_the_run_on_the_other() {
    let Some(pg) = test_postgres().await else {
        return;
    };
    // Only `runner` has workers that take jobs: `front` is full at once.
    let runner = node(pg.url(), config(1)).await;
    let front = node(pg.url(), front_config()).await;
    let id = front
        .submit(LOCAL_TENANT, request(&slow_program()), None)
        .await
        .unwrap()
        .job
        .id;
    let deadline = Instant::now() + Duration::from_secs(20);
    while status_on(&front, &id).await.status != JobStatus::Running {
        assert!(Instant::now() < deadline, "never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    front.cancel(LOCAL_TENANT, &id).await.unwrap();
    let ended = front
        .wait(
            LOCAL_TENANT,
            &id,
            Duration::from_secs(20),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    let took = asked.elapsed();
    assert_eq!(ended.status, JobStatus::Cancelled, "{ended:?}");
    assert_eq!(ended.error.unwrap().message, "cancelled while running");
    assert!(took < Duration::from_secs(2), "the cancel took {took:?}");
    report(&format!(
        "cross-node cancel: stopped and seen ended after {took:?}"
    ));
    runner.shutdown(Duration::from_secs(5)).await;
    front.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_job_runs_again_elsewhere_and_its_late_end_is_refused() {
    let Some(pg) = test_postgres().await else {
        return;
    };
    // The node that dies: its claim is made and never renewed.
    let dead = PgStore::connect(pg.url()).await.unwrap();
    let front = node(pg.url(), front_config()).await;
    let id = front
        .submit(LOCAL_TENANT, request(BELL), None)
        .await
        .unwrap()
        .job
        .id;
    let capacity = Capacity {
        memory_bytes: 1 << 30,
        idle_tenants_only: false,
    };
    let claimed = dead
        .claim_next(&capacity, now_ms(), 900)
        .await
        .unwrap()
        .expect("the dead node claims the job");
    assert_eq!((claimed.id.as_str(), claimed.attempt), (id.as_str(), 1));
    let died = Instant::now();
    let survivor = node(pg.url(), config(1)).await;
    let done = survivor
        .wait(
            LOCAL_TENANT,
            &id,
            Duration::from_secs(20),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    let rerun = died.elapsed();
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(done.attempts, 2);
    assert!(rerun < Duration::from_secs(5), "re-run after {rerun:?}");
    // The dead node wakes up and tries to end its attempt: refused.
    let late = WriteOp::Finish {
        id: id.clone(),
        attempt: 1,
        outcome: Outcome::Failed(JobError {
            code: "late".into(),
            message: "a stale end".into(),
        }),
        now_ms: now_ms(),
    };
    assert_eq!(
        dead.write_batch(&[late], true).await.unwrap(),
        vec![Written::Changed(false)]
    );
    assert_eq!(status_on(&front, &id).await.status, JobStatus::Completed);
    report(&format!(
        "a dead node's job completed elsewhere {rerun:?} after its claim (lease 0.9 s)"
    ));
    front.shutdown(Duration::from_secs(5)).await;
    survivor.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_limits_count_every_nodes_jobs() {
    let Some(pg) = test_postgres().await else {
        return;
    };
    // No node runs anything: jobs stay queued.
    let mut c = front_config();
    c.default_limits.max_active_jobs = 3;
    let a = node(pg.url(), c.clone()).await;
    let b = node(pg.url(), c).await;
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..8 {
        let node = if i % 2 == 0 { &a } else { &b };
        match node.submit(LOCAL_TENANT, request(BELL), None).await {
            Ok(_) => accepted += 1,
            Err(ServiceError::TooManyJobs { message, .. }) => {
                assert!(message.contains("at most 3"), "{message}");
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((accepted, refused), (3, 5));
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_claims_only_what_fits_its_memory() {
    let Some(pg) = test_postgres().await else {
        return;
    };
    // 20 qubits at f64 need 16 MiB: the small node cannot take it.
    let mut small = config(1);
    small.memory_budget = 1 << 20;
    small.cluster_memory_budget = Some(1 << 30);
    let small = node(pg.url(), small).await;
    let big_job = small
        .submit(
            LOCAL_TENANT,
            request(&(dense_program(20, 40) + "creg c[1];\nmeasure q[0] -> c[0];\n")),
            None,
        )
        .await
        .unwrap()
        .job
        .id;
    let small_job = small
        .submit(LOCAL_TENANT, request(BELL), None)
        .await
        .unwrap()
        .job
        .id;
    let done = small
        .wait(
            LOCAL_TENANT,
            &small_job,
            Duration::from_secs(20),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status_on(&small, &big_job).await.status, JobStatus::Queued);
    let big = node(pg.url(), config(1)).await;
    let done = small
        .wait(
            LOCAL_TENANT,
            &big_job,
            Duration::from_secs(30),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    small.shutdown(Duration::from_secs(5)).await;
    big.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_starts_at_once_while_one_tenant_holds_every_node() {
    let Some(pg) = test_postgres().await else {
        return;
    };
    let a = node(pg.url(), config(1)).await;
    let b = node(pg.url(), config(1)).await;
    // Tenant "flood" takes both nodes' one regular worker, and more waits.
    let mut flood = Vec::new();
    for _ in 0..4 {
        let job = a
            .submit("flood", request(&slow_program()), None)
            .await
            .unwrap();
        flood.push(job.job.id);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut running = 0;
        for id in &flood {
            if a.get("flood", id, KeyFormat::Bitstring)
                .await
                .unwrap()
                .status
                == JobStatus::Running
            {
                running += 1;
            }
        }
        if running == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the flood never held both nodes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    let quick = b
        .submit_and_wait(
            "other",
            request(BELL),
            None,
            Duration::from_secs(20),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    let took = asked.elapsed();
    assert_eq!(quick.job.status, JobStatus::Completed, "{:?}", quick.job);
    // Not behind the flood's jobs (seconds each), but through a node's
    // fair-share worker.
    assert!(took < Duration::from_secs(2), "took {took:?}");
    report(&format!(
        "another tenant's job beside a flood on every node: {took:?}"
    ));
    for id in &flood {
        let _ = a.cancel("flood", id).await;
    }
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_claimed_behind_a_long_run_goes_back_for_another_node() {
    let Some(pg) = test_postgres().await else {
        return;
    };
    let a = node(pg.url(), config(1)).await;
    let b = node(pg.url(), config(1)).await;
    // Both nodes have looked at the empty queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let slow = a
        .submit(LOCAL_TENANT, request(&slow_program()), None)
        .await
        .unwrap()
        .job;
    // A run that has just begun counts as short: `a` keeps the next job
    // too, claimed, to start when the slow one ends.
    let quick = a
        .submit(LOCAL_TENANT, request(BELL), None)
        .await
        .unwrap()
        .job;
    let submitted = Instant::now();
    assert_eq!(
        (slow.status, quick.status),
        (JobStatus::Running, JobStatus::Running),
        "both claimed by the node that took them"
    );
    // A second later it goes back to the queue, and `b` runs it while the
    // slow job still runs on `a`'s only worker.
    let done = b
        .wait(
            LOCAL_TENANT,
            &quick.id,
            Duration::from_secs(10),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    let took = submitted.elapsed();
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(done.attempts, 1, "a run given back is not counted");
    assert_eq!(status_on(&a, &slow.id).await.status, JobStatus::Running);
    assert!(
        took < Duration::from_secs(4),
        "given back and run after {took:?}"
    );
    report(&format!(
        "claimed behind a long run: given back and run on the other node after {took:?}"
    ));
    a.cancel(LOCAL_TENANT, &slow.id).await.unwrap();
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_ranks_claims_the_jobs_larger_than_any_node_and_only_those_it_can_split() {
    let Some(pg) = test_postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // `ranks`: 64 KiB of its own, 128 KiB across its (fake) ranks.
    let ranks = node(
        pg.url(),
        crate::tests::with_fake_ranks(config(1), dir.path()),
    )
    .await;
    // `front`: runs nothing, admits up to 128 KiB.
    let mut front_cfg = front_config();
    front_cfg.cluster_memory_budget = Some(1 << 17);
    let front = node(pg.url(), front_cfg).await;
    let split = front
        .submit(LOCAL_TENANT, crate::tests::wide(13, None), None)
        .await
        .unwrap()
        .job;
    let done = front
        .wait(
            LOCAL_TENANT,
            &split.id,
            Duration::from_secs(10),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(done.result.unwrap().run_seconds, 0.125, "run by the ranks");
    // A noisy job of 128 KiB (12 qubits and the trajectories' prefix)
    // cannot be split: `ranks` claims it when idle, gives it back, and it
    // waits for a node it fits.
    let noisy: JobRequest = serde_json::from_value(serde_json::json!({
        "program": {"format": "qasm3", "source": "OPENQASM 3.0;\nqubit[12] q;\nbit c;\nU(1, 0, 0) q[0];\n#pragma braket noise bit_flip(0.1) q[0]\nc = measure q[0];\n"},
        "shots": 10, "seed": 3,
    }))
    .unwrap();
    let noisy = front.submit(LOCAL_TENANT, noisy, None).await.unwrap().job;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waiting = status_on(&front, &noisy.id).await;
    assert_eq!(
        (waiting.status, waiting.attempts),
        (JobStatus::Queued, 0),
        "{waiting:?}"
    );
    let mut big_cfg = config(1);
    big_cfg.memory_budget = 1 << 17;
    let big = node(pg.url(), big_cfg).await;
    let done = front
        .wait(
            LOCAL_TENANT,
            &noisy.id,
            Duration::from_secs(10),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    assert_eq!(
        (done.status, done.attempts),
        (JobStatus::Completed, 1),
        "{done:?}"
    );
    for node in [ranks, front, big] {
        node.shutdown(Duration::from_secs(5)).await;
    }
}
