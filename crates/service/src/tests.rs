//! The service end to end without HTTP: submit, wait, results against the
//! core, cancellation of a running job through the monitor, the run-time
//! limit, tenant limits and isolation, idempotency, keys, and a restart.

use std::time::Duration;

use kettle_core::{RunOptions, Simulator};

use crate::*;

pub(crate) const BELL: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0], q[1];\nmeasure q -> c;\n";

/// `layers` layers of a `u3` and a `cx` on `qubits` qubits, round the
/// register: a job whose run time grows with both.
pub(crate) fn dense_program(qubits: usize, layers: usize) -> String {
    let mut s = format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{qubits}];\n");
    for i in 0..layers {
        s.push_str(&format!(
            "u3(0.1,0.2,{}) q[{}];\ncx q[{}], q[{}];\n",
            i % 7,
            i % qubits,
            i % qubits,
            (i + 1) % qubits
        ));
    }
    s
}

/// A circuit that takes seconds: many dense gates on 20 qubits.
fn slow_program() -> String {
    dense_program(20, 20_000)
}

fn request(source: &str) -> JobRequest {
    serde_json::from_value(serde_json::json!({
        "program": {"format": "qasm2", "source": source}, "seed": 11, "shots": 500
    }))
    .unwrap()
}

fn config(dir: &std::path::Path) -> ServiceConfig {
    let mut c = ServiceConfig::new(dir);
    c.workers = 2;
    c.sim_threads = 1;
    c.memory_budget = 1 << 30;
    c
}

async fn wait_for(service: &Service, tenant: &str, id: &str, status: JobStatus) -> JobView {
    for _ in 0..500 {
        let v = service.get(tenant, id, KeyFormat::Bitstring).await.unwrap();
        if v.status == status {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never became {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_and_results_match_the_core() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(config(dir.path())).await.unwrap();
    assert!(service.local_mode());
    let tenant = service.authenticate(None).await.unwrap();
    let mut req = request(BELL);
    req.result_types = Some(vec![
        ResultType::Counts,
        ResultType::Probabilities,
        ResultType::Statevector,
        ResultType::Expectation(vec!["Z0 Z1".into(), "X0".into()]),
    ]);
    let sub = service.submit(&tenant, req, None).await.unwrap();
    assert!(sub.created);
    let job = service
        .wait(
            &tenant,
            &sub.job.id,
            Duration::from_secs(20),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    assert_eq!(job.attempts, 1);
    let result = job.result.unwrap();
    let e = &result.executions[0];
    let circuit = kettle_qasm::parse_qasm2(BELL, &Default::default()).unwrap();
    let direct = Simulator::new()
        .run::<f64>(
            &circuit,
            &RunOptions {
                shots: 500,
                seed: Some(11),
                keep_state: false,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(e.counts.as_ref().unwrap(), &direct.counts.to_bitstrings());
    assert_eq!(e.seed, 11);
    let p = e.probabilities.as_ref().unwrap();
    assert!((p["00"] - 0.5).abs() < 1e-12 && (p["11"] - 0.5).abs() < 1e-12 && p.len() == 2);
    let sv = e.statevector.as_ref().unwrap();
    assert!((sv[0][0] - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12 && sv.len() == 4);
    assert!((e.expectations[0].value - 1.0).abs() < 1e-12);
    assert!(e.expectations[1].value.abs() < 1e-12);
    // Hex keys at read time.
    let hex = service
        .get(&tenant, &sub.job.id, KeyFormat::Hex)
        .await
        .unwrap();
    let counts = hex.result.unwrap().executions[0].counts.clone().unwrap();
    assert!(
        counts.keys().all(|k| k == "0x0" || k == "0x3"),
        "{counts:?}"
    );
    // Qiskit's `Initialize` begins with a reset of qubits still in |0⟩:
    // it changes nothing, and the state can still be returned.
    let mut req = request(&BELL.replacen("h q[0];", "reset q;\nh q[0];", 1));
    req.result_types = Some(vec![ResultType::Statevector]);
    let sub = service.submit(&tenant, req, None).await.unwrap();
    let job = service
        .wait(
            &tenant,
            &sub.job.id,
            Duration::from_secs(20),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let e = &job.result.unwrap().executions[0];
    assert_eq!(
        e.statevector.as_ref(),
        Some(sv),
        "the same state as without the reset"
    );
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_is_cancelled_at_the_next_gate_and_a_slow_one_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.max_run_time = Duration::from_secs(600);
    let service = Service::start(c).await.unwrap();
    let mut req = request(&slow_program());
    req.result_types = Some(vec![ResultType::Statevector]);
    let id = service
        .submit("local", req.clone(), None)
        .await
        .unwrap()
        .job
        .id;
    wait_for(&service, "local", &id, JobStatus::Running).await;
    let view = service.cancel("local", &id).await.unwrap();
    assert!(view.cancel_requested);
    let done = service
        .wait("local", &id, Duration::from_secs(20), KeyFormat::Bitstring)
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Cancelled, "{done:?}");
    assert!(matches!(
        service.cancel("local", &id).await,
        Err(ServiceError::AlreadyFinished { .. })
    ));
    service.shutdown(Duration::ZERO).await;

    let mut c = config(dir.path());
    c.max_run_time = Duration::from_millis(200);
    let service = Service::start(c).await.unwrap();
    let id = service.submit("local", req, None).await.unwrap().job.id;
    let done = service
        .wait("local", &id, Duration::from_secs(20), KeyFormat::Bitstring)
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Failed);
    assert_eq!(done.error.unwrap().code, "run-time-exceeded");
    service.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_isolation_idempotency_and_queue_positions() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.workers = 1;
    c.default_limits.max_active_jobs = 3;
    let service = Service::start(c).await.unwrap();
    let mut slow = request(&slow_program());
    slow.result_types = Some(vec![ResultType::Statevector]);
    let first = service
        .submit("alice", slow.clone(), None)
        .await
        .unwrap()
        .job
        .id;
    wait_for(&service, "alice", &first, JobStatus::Running).await;
    // Bob's first job starts at once, on the fair-share worker, though
    // alice's holds the only worker.
    let bob_first = service.submit("bob", slow, None).await.unwrap().job.id;
    wait_for(&service, "bob", &bob_first, JobStatus::Running).await;
    let a2 = service
        .submit("alice", request(BELL), None)
        .await
        .unwrap()
        .job;
    assert_eq!(a2.queue_position, Some(1));
    let b1 = service
        .submit("bob", request(BELL), None)
        .await
        .unwrap()
        .job;
    let a3 = service
        .submit("alice", request(BELL), None)
        .await
        .unwrap()
        .job;
    // Round robin: alice's second queued job comes after bob's first.
    assert_eq!(
        service
            .get("bob", &b1.id, KeyFormat::Bitstring)
            .await
            .unwrap()
            .queue_position,
        Some(2)
    );
    assert_eq!(
        service
            .get("alice", &a3.id, KeyFormat::Bitstring)
            .await
            .unwrap()
            .queue_position,
        Some(3)
    );
    let err = service
        .submit("alice", request(BELL), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::TooManyJobs { .. }), "{err:?}");
    // Another tenant's job does not exist for bob.
    assert!(matches!(
        service.get("bob", &a2.id, KeyFormat::Bitstring).await,
        Err(ServiceError::NotFound(_))
    ));
    assert!(matches!(
        service.cancel("bob", &a2.id).await,
        Err(ServiceError::NotFound(_))
    ));
    // Cancelling a queued job frees a slot at once.
    let cancelled = service.cancel("alice", &a2.id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    // Idempotency: same key and body → same job; other body → conflict.
    let again = service
        .submit("alice", request(BELL), Some("key-1"))
        .await
        .unwrap();
    let replay = service
        .submit("alice", request(BELL), Some("key-1"))
        .await
        .unwrap();
    assert!(again.created && !replay.created);
    assert_eq!(again.job.id, replay.job.id);
    let mut other = request(BELL);
    other.shots = Some(7);
    assert!(matches!(
        service.submit("alice", other, Some("key-1")).await,
        Err(ServiceError::IdempotencyConflict(_))
    ));
    let page = service.list("alice", None, 2, None).await.unwrap();
    assert_eq!(page.jobs.len(), 2);
    let rest = service
        .list("alice", None, 10, page.next_cursor.as_deref())
        .await
        .unwrap();
    assert_eq!(rest.jobs.len(), 2);
    assert!(rest.next_cursor.is_none());
    service.cancel("alice", &first).await.unwrap();
    service.cancel("bob", &bob_first).await.unwrap();
    service.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_a_restart_and_keys_end_local_mode() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.workers = 1;
    let service = Service::start(c.clone()).await.unwrap();
    let mut slow = request(&slow_program());
    slow.result_types = Some(vec![ResultType::Statevector]);
    let running = service.submit("local", slow, None).await.unwrap().job.id;
    wait_for(&service, "local", &running, JobStatus::Running).await;
    let mut no_seed = request(BELL);
    no_seed.seed = None;
    let queued = service.submit("local", no_seed, None).await.unwrap().job;
    // Shutdown with no grace: the running job returns to the queue.
    service.shutdown(Duration::ZERO).await;
    let key = keys::create_key(service.store().as_ref(), "team-a")
        .await
        .unwrap();
    drop(service);

    let service = Service::start(c).await.unwrap();
    assert!(!service.local_mode());
    assert!(service.authenticate(None).await.is_err());
    assert!(
        service
            .authenticate(Some("kt_000000000000_00"))
            .await
            .is_err()
    );
    assert_eq!(
        service.authenticate(Some(&key.key)).await.unwrap(),
        "team-a"
    );
    let back = service
        .get("local", &running, KeyFormat::Bitstring)
        .await
        .unwrap();
    assert!(
        matches!(back.status, JobStatus::Queued | JobStatus::Running),
        "{back:?}"
    );
    service.cancel("local", &running).await.unwrap();
    let done = service
        .wait(
            "local",
            &queued.id,
            Duration::from_secs(30),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.seed, queued.seed, "the stored seed is reused");
    assert!(
        keys::revoke_key(service.store().as_ref(), &key.id)
            .await
            .unwrap()
    );
    assert!(matches!(
        service.authenticate(Some(&key.key)).await,
        Err(ServiceError::Unauthorized(_))
    ));
    service.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_purged_periodically_after_the_retention_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.retention = Duration::from_millis(300);
    c.purge_interval = Duration::from_millis(50);
    let service = Service::start(c).await.unwrap();
    let id = service
        .submit("local", request(BELL), None)
        .await
        .unwrap()
        .job
        .id;
    let done = service
        .wait("local", &id, Duration::from_secs(30), KeyFormat::Bitstring)
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    // Still there right after its end (and in the store, not only memory).
    assert!(service.store().get(&id).await.unwrap().is_some());
    let started = std::time::Instant::now();
    loop {
        match service.get("local", &id, KeyFormat::Bitstring).await {
            Err(ServiceError::NotFound(_)) => break,
            Ok(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "the finished job was never purged"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "purged before its retention time"
    );
    service.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_submission_is_stored_when_it_ends_when_its_wait_expires_or_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.workers = 1;
    let service = Service::start(c.clone()).await.unwrap();
    let wait = |service: Service, req: JobRequest, secs: f64| async move {
        service
            .submit_and_wait(
                "local",
                req,
                None,
                Duration::from_secs_f64(secs),
                KeyFormat::Bitstring,
            )
            .await
            .unwrap()
    };

    // Ends within the wait: stored once, ended, as the answer says.
    let quick = wait(service.clone(), request(BELL), 20.0).await;
    assert!(quick.created);
    assert_eq!(quick.job.status, JobStatus::Completed, "{quick:?}");
    assert_eq!(quick.job.attempts, 1);
    let row = service.store().get(&quick.job.id).await.unwrap().unwrap();
    assert_eq!(row.status, JobStatus::Completed);
    assert_eq!(row.attempt, 1);
    assert_eq!(row.result.as_ref(), quick.job.result.as_ref());

    // The only worker is busy: the wait expires with the job queued, and
    // it is on disk, queued, when the answer comes.
    let mut slow = request(&slow_program());
    slow.result_types = Some(vec![ResultType::Statevector]);
    let running = service.submit("local", slow, None).await.unwrap().job.id;
    wait_for(&service, "local", &running, JobStatus::Running).await;
    let late = wait(service.clone(), request(BELL), 0.2).await;
    assert_eq!(late.job.status, JobStatus::Queued, "{late:?}");
    let row = service.store().get(&late.job.id).await.unwrap().unwrap();
    assert_eq!(row.status, JobStatus::Queued);
    // From then on it is an ordinary job: readable, and it runs.
    service.cancel("local", &running).await.unwrap();
    let done = wait_for(&service, "local", &late.job.id, JobStatus::Completed).await;
    assert_eq!(done.attempts, 1);

    // Still queued at shutdown: answered at once with ShuttingDown, and
    // never stored (it was never acknowledged, so nothing is lost and no
    // job exists that its client does not know of).
    let mut slow = request(&slow_program());
    slow.result_types = Some(vec![ResultType::Statevector]);
    let running = service.submit("local", slow, None).await.unwrap().job.id;
    wait_for(&service, "local", &running, JobStatus::Running).await;
    let waiter = tokio::spawn({
        let service = service.clone();
        async move {
            service
                .submit_and_wait(
                    "local",
                    request(BELL),
                    None,
                    Duration::from_secs(60),
                    KeyFormat::Bitstring,
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = std::time::Instant::now();
    service.shutdown(Duration::ZERO).await;
    let answered = waiter.await.unwrap();
    assert_eq!(answered, Err(ServiceError::ShuttingDown));
    assert!(asked.elapsed() < Duration::from_secs(10));
    drop(service);
    let service = Service::start(c).await.unwrap();
    let page = service.list("local", None, 100, None).await.unwrap();
    // The quick job, the first slow one, the late job, the second slow one.
    assert_eq!(page.jobs.len(), 4, "{page:?}");
    service.cancel("local", &running).await.unwrap();
    service.shutdown(Duration::ZERO).await;
}

/// Admission parses take a permit each, one per core: a 150-byte program may
/// unroll to a million operations (about 150 MB while parsed), and eight such
/// submissions at once took the server to 1.8 GB before the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submissions_wait_for_a_parse_permit() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(config(dir.path())).await.unwrap();
    let tenant = service.authenticate(None).await.unwrap();
    let permits = service.admission_permits();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let total = permits.total();
    assert_eq!(total, cores.max(2));
    assert_eq!(permits.available(), total);
    // Other tenants hold every permit.
    let mut all = Vec::new();
    for i in 0..total {
        all.push(permits.acquire(&format!("other-{i}")).await.unwrap());
    }
    let submission = tokio::spawn({
        let service = service.clone();
        let tenant = tenant.clone();
        async move { service.submit(&tenant, request(BELL), None).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!submission.is_finished(), "parsed without a permit");
    drop(all);
    let sub = tokio::time::timeout(Duration::from_secs(20), submission)
        .await
        .expect("the submission goes on once a permit is free")
        .unwrap()
        .unwrap();
    assert!(sub.created);
    assert_eq!(permits.available(), total);
}

/// A sweep of 1000 executions of a program whose classical loop takes tens
/// of milliseconds to read: about a minute of admission in all.
fn slow_sweep() -> JobRequest {
    let source = "OPENQASM 3.0;\ninput float t;\nqubit q;\nbit c;\nint x = 0;\n\
                  for int i in [0:99999] { x = i + 1; }\nc = measure q;\n";
    serde_json::from_value(serde_json::json!({
        "program": {"format": "qasm3", "source": source},
        "shots": 10,
        "inputs": {"t": (0..1000).map(f64::from).collect::<Vec<_>>()},
    }))
    .unwrap()
}

/// Issue 15, finding 1: a submission whose client hung up (its future
/// dropped) went on parsing with its permit. The parse now stops within
/// milliseconds and gives the permit back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_submission_stops_its_parse_and_frees_its_permit() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.max_admission_time = Duration::from_secs(600);
    let service = Service::start(c).await.unwrap();
    let permits = service.admission_permits();
    let total = permits.total();
    let submission = tokio::spawn({
        let service = service.clone();
        async move { service.submit("local", slow_sweep(), None).await }
    });
    let started = std::time::Instant::now();
    while permits.available() == total {
        assert!(started.elapsed() < Duration::from_secs(10), "never parsed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!submission.is_finished());
    submission.abort();
    let dropped = std::time::Instant::now();
    while permits.available() < total {
        assert!(
            dropped.elapsed() < Duration::from_secs(5),
            "the parse runs on after its submission was dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let freed = dropped.elapsed();
    assert!(freed < Duration::from_secs(5), "{freed:?}");
    service.shutdown(Duration::ZERO).await;
}

/// Issue 15, finding 1: admission has a wall-clock bound, and the parser's
/// work budget is a limit: both end in `limit-exceeded` naming the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_ends_at_its_deadline_or_work_budget() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(config(dir.path())).await.unwrap();
    let backend = service.backend("local");
    assert!((backend.max_admission_seconds - 10.0).abs() < 1e-9);
    assert_eq!(backend.max_classical_steps, 25_000_000);
    let assignments: String = (0..1000).map(|i| format!("x = {i}; ")).collect();
    let attack = format!("int x = 0;\nfor int i in [0:999999] {{ {assignments}}}\n");
    let mut req = request(&attack);
    req.program.format = ProgramFormat::Qasm3;
    let err = service.submit("local", req, None).await.unwrap_err();
    match err {
        ServiceError::LimitExceeded { limit, message } => {
            assert_eq!(limit, "max_classical_steps");
            assert!(message.starts_with("2:"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    service.shutdown(Duration::ZERO).await;

    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.max_admission_time = Duration::from_millis(500);
    let service = Service::start(c).await.unwrap();
    let started = std::time::Instant::now();
    let err = service
        .submit("local", slow_sweep(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ServiceError::LimitExceeded {
                limit: "max_admission_seconds",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    service.shutdown(Duration::ZERO).await;
}

/// Seeds the service chooses stay below 2^53, so that clients holding JSON
/// numbers as doubles (JavaScript) read them exactly; a client's own seed
/// may be any u64.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chosen_seeds_fit_a_double_and_given_ones_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(config(dir.path())).await.unwrap();
    let tenant = service.authenticate(None).await.unwrap();
    let mut seeds = std::collections::HashSet::new();
    for _ in 0..20 {
        let mut req = request(BELL);
        req.seed = None;
        let sub = service.submit(&tenant, req, None).await.unwrap();
        assert!(sub.job.seed < 1 << 53, "{}", sub.job.seed);
        seeds.insert(sub.job.seed);
    }
    assert!(seeds.len() > 15, "seeds repeat: {seeds:?}");
    let mut req = request(BELL);
    req.seed = Some(u64::MAX);
    let sub = service.submit(&tenant, req, None).await.unwrap();
    assert_eq!(sub.job.seed, u64::MAX);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probabilities_list_the_non_zero_outcomes_of_any_number_of_qubits() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.max_listed_qubits = 4;
    let service = Service::start(c).await.unwrap();
    let tenant = service.authenticate(None).await.unwrap();
    let program = |prep: &str| {
        format!(
            "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[8];\ncreg c[8];\n{prep}measure q -> c;\n"
        )
    };
    let run = |source: String| {
        let service = service.clone();
        let tenant = tenant.clone();
        async move {
            let mut req = request(&source);
            req.result_types = Some(vec![ResultType::Probabilities]);
            let id = service.submit(&tenant, req, None).await.unwrap().job.id;
            service
                .wait(&tenant, &id, Duration::from_secs(20), KeyFormat::Bitstring)
                .await
                .unwrap()
        }
    };
    // Eight measured qubits, past max_listed_qubits: a GHZ state has two
    // outcomes, which is what is listed.
    let ghz = run(program("h q[0];\ncx q[0],q[1];\ncx q[1],q[2];\ncx q[2],q[3];\ncx q[3],q[4];\ncx q[4],q[5];\ncx q[5],q[6];\ncx q[6],q[7];\n")).await;
    assert_eq!(ghz.status, JobStatus::Completed, "{ghz:?}");
    let p = ghz.result.unwrap().executions[0]
        .probabilities
        .clone()
        .unwrap();
    assert_eq!(p.len(), 2, "{p:?}");
    assert!((p["00000000"] - 0.5).abs() < 1e-12 && (p["11111111"] - 0.5).abs() < 1e-12);
    // 32 outcomes are more than 2^4: the job fails and says why.
    let wide = run(program("h q[0];\nh q[1];\nh q[2];\nh q[3];\nh q[4];\n")).await;
    assert_eq!(wide.status, JobStatus::Failed, "{wide:?}");
    let message = wide.error.unwrap().message;
    assert!(
        message.contains("8 measured qubits") && message.contains("more than the 16"),
        "{message}"
    );
    // A state past max_listed_qubits comes back sparse, bit order as
    // Qiskit's `Statevector.to_dict()`.
    let mut req = request(&program("x q[1];\nh q[7];\n"));
    req.result_types = Some(vec![ResultType::Statevector]);
    let id = service.submit(&tenant, req, None).await.unwrap().job.id;
    let job = service
        .wait(&tenant, &id, Duration::from_secs(20), KeyFormat::Bitstring)
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let e = &job.result.unwrap().executions[0];
    assert_eq!(e.statevector, None);
    let sparse = e.sparse_statevector.clone().unwrap();
    let h = std::f64::consts::FRAC_1_SQRT_2;
    assert_eq!(sparse.len(), 2, "{sparse:?}");
    assert!((sparse["00000010"][0] - h).abs() < 1e-12, "{sparse:?}");
    assert!((sparse["10000010"][0] - h).abs() < 1e-12, "{sparse:?}");
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_reports_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(config(dir.path())).await.unwrap();
    let tenant = service.authenticate(None).await.unwrap();
    let mut req = request(&slow_program());
    req.result_types = Some(vec![ResultType::Statevector]);
    let id = service.submit(&tenant, req, None).await.unwrap().job.id;
    wait_for(&service, &tenant, &id, JobStatus::Running).await;
    // Published every quarter of a second: two readings, the later further.
    let mut seen = Vec::new();
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let v = service
            .get(&tenant, &id, KeyFormat::Bitstring)
            .await
            .unwrap();
        if v.status != JobStatus::Running {
            break;
        }
        if let Some(p) = v.progress {
            seen.push(p);
        }
        if seen.len() >= 2 && seen[seen.len() - 1].fraction > seen[0].fraction {
            break;
        }
    }
    assert!(seen.len() >= 2, "{seen:?}");
    let (first, last) = (seen[0], seen[seen.len() - 1]);
    assert!(
        0.0 < first.fraction && last.fraction > first.fraction && last.fraction < 1.0,
        "{seen:?}"
    );
    assert!(last.seconds_left.is_some_and(|s| s > 0.0), "{seen:?}");
    service.cancel(&tenant, &id).await.unwrap();
    let ended = service
        .wait(&tenant, &id, Duration::from_secs(20), KeyFormat::Bitstring)
        .await
        .unwrap();
    assert_eq!(ended.progress, None, "no progress once it has ended");
    service.shutdown(Duration::from_secs(1)).await;
}

/// A program whose inputs each set one gate's angle, so that the
/// parameter-shift rule `(E(x+π/2) − E(x−π/2))/2` is exact for each.
const GRADIENT_PROGRAM: &str = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\n\
    input float[64] a;\ninput angle b;\ninput float[64] c;\nqubit[3] q;\nbit[3] m;\n\
    h q[0];\nrx(a) q[0];\ncx q[0], q[1];\nry(b) q[1];\ncrz(c) q[1], q[2];\nh q[2];\nm = measure q;\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adjoint_gradients_match_the_parameter_shift_rule() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(config(dir.path())).await.unwrap();
    let tenant = service.authenticate(None).await.unwrap();
    let observables = ["Z0 Z1 + 0.5*X2", "Y0 Z2 - 0.25*X1"];
    let run_program = |source: &str, inputs: serde_json::Value, types: serde_json::Value| {
        let req: JobRequest = serde_json::from_value(serde_json::json!({
            "program": {"format": "qasm3", "source": source},
            "inputs": inputs, "result_types": types
        }))
        .unwrap();
        let service = &service;
        let tenant = &tenant;
        async move {
            let sub = service.submit(tenant, req, None).await.unwrap();
            let job = service
                .wait(
                    tenant,
                    &sub.job.id,
                    Duration::from_secs(20),
                    KeyFormat::Bitstring,
                )
                .await
                .unwrap();
            assert_eq!(job.status, JobStatus::Completed, "{job:?}");
            job.result.unwrap()
        }
    };
    let run = |inputs, types| run_program(GRADIENT_PROGRAM, inputs, types);
    let point = [("a", 0.37), ("b", -1.21), ("c", 2.05)];
    let inputs: serde_json::Map<String, serde_json::Value> = point
        .iter()
        .map(|(k, v)| (k.to_string(), (*v).into()))
        .collect();
    // The gradient by every input, next to counts (two phases of one run).
    let result = run(
        inputs.clone().into(),
        serde_json::json!(["counts", {"adjoint_gradient": {"observables": observables}}]),
    )
    .await;
    let e = &result.executions[0];
    assert!(e.counts.is_some());
    assert_eq!(e.gradients.len(), 2);
    // Parameter shift: one sweep of 2 × 3 executions, expectations only.
    let mut sweep = serde_json::Map::new();
    for (k, (name, _)) in point.iter().enumerate() {
        let values: Vec<f64> = (0..6)
            .map(|j| {
                let shift = if j / 2 == k {
                    if j % 2 == 0 {
                        std::f64::consts::FRAC_PI_2
                    } else {
                        -std::f64::consts::FRAC_PI_2
                    }
                } else {
                    0.0
                };
                point[k].1 + shift
            })
            .collect();
        sweep.insert(name.to_string(), values.into());
    }
    let shifted = run(
        sweep.into(),
        serde_json::json!([{"expectation": observables}]),
    )
    .await;
    for (o, g) in e.gradients.iter().enumerate() {
        assert_eq!(g.observable, observables[o]);
        let plain = run(
            inputs.clone().into(),
            serde_json::json!([{"expectation": [observables[o]]}]),
        )
        .await;
        assert!((g.value - plain.executions[0].expectations[0].value).abs() < 1e-14);
        assert_eq!(g.gradient.len(), 3);
        for (k, (name, _)) in point.iter().enumerate() {
            let up = shifted.executions[2 * k].expectations[o].value;
            let down = shifted.executions[2 * k + 1].expectations[o].value;
            let want = (up - down) / 2.0;
            let got = g.gradient[*name];
            assert!(
                (got - want).abs() < 1e-10,
                "∂{}/∂{name}: {got} vs {want}",
                g.observable
            );
        }
    }
    // One parameter, and an input that enters two gates through
    // expressions: the chain rule against a 4th-order difference.
    let chained = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput float[64] a;\nqubit[2] q;\n\
        ry(2*a + 0.1) q[0];\ncx q[0], q[1];\nrz(-a/3) q[1];\nrx(a) q[1];\n";
    let result = run_program(
        chained,
        serde_json::json!({"a": [0.4, 0.4 + 2e-3, 0.4 + 1e-3, 0.4 - 1e-3, 0.4 - 2e-3]}),
        serde_json::json!([{"adjoint_gradient": {"observables": ["X1 + Z0"], "parameters": ["a"]}}]),
    )
    .await;
    let ex = &result.executions;
    let v = |i: usize| ex[i].gradients[0].value;
    let h = 1e-3;
    let fd = (-v(1) + 8.0 * v(2) - 8.0 * v(3) + v(4)) / (12.0 * h);
    let got = ex[0].gradients[0].gradient["a"];
    assert!((got - fd).abs() < 1e-9, "{got} vs {fd}");
}

#[test]
fn adjoint_gradient_requests_are_checked_at_admission() {
    let admit = |source: &str, format: &str, types: serde_json::Value| {
        let declared = |name: &str| source.contains(&format!(" {name};"));
        let inputs: serde_json::Map<String, serde_json::Value> =
            [("a", 0.1), ("b", 0.2), ("k", 3.0)]
                .into_iter()
                .filter(|(name, _)| format == "qasm3" && declared(name))
                .map(|(name, v)| (name.to_string(), v.into()))
                .collect();
        let req: JobRequest = serde_json::from_value(serde_json::json!({
            "program": {"format": format, "source": source},
            "inputs": inputs,
            "result_types": types
        }))
        .unwrap();
        check_request(&req, &TenantLimits::default(), 1 << 30, 20)
    };
    let src = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput float a;\ninput angle b;\ninput int k;\nqubit[2] q;\nrx(a) q[0];\nry(b*k) q[1];\n";
    let ok = admit(
        src,
        "qasm3",
        serde_json::json!([{"adjoint_gradient": {"observables": ["Z0", "X1"]}}]),
    )
    .unwrap();
    match &ok.result_types[0] {
        ResultType::AdjointGradient(g) => {
            assert_eq!(
                g.parameters.as_deref(),
                Some(&["a".to_string(), "b".to_string()][..])
            )
        }
        other => panic!("{other:?}"),
    }
    // Three states: the run's and one per observable (a 2-qubit state
    // still takes one whole block).
    assert_eq!(
        u128::from(ok.memory_bytes),
        3 * kettle_core::StateVector::<f64>::bytes_for(2)
    );
    for (source, format, types, says) in [
        (
            src,
            "qasm3",
            serde_json::json!([{"adjoint_gradient": {"observables": ["Z0"], "parameters": ["k"]}}]),
            "`k` is not an `input float`",
        ),
        (
            src,
            "qasm3",
            serde_json::json!([{"adjoint_gradient": {"observables": ["Z0"], "parameters": ["a", "a"]}}]),
            "listed twice",
        ),
        (
            src,
            "qasm3",
            serde_json::json!([{"adjoint_gradient": {"observables": []}}]),
            "at least one observable",
        ),
        (
            src,
            "qasm3",
            serde_json::json!([{"adjoint_gradient": {"observables": ["Z7"]}}]),
            "qubit 7",
        ),
        (
            src,
            "qasm3",
            serde_json::json!([{"adjoint_gradient": {"observables": ["Z0"]}}, {"adjoint_gradient": {"observables": ["Z1"]}}]),
            "one adjoint_gradient",
        ),
        (
            BELL,
            "qasm2",
            serde_json::json!([{"adjoint_gradient": {"observables": ["Z0"]}}]),
            "only OpenQASM 3",
        ),
        (
            "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit q;\nbit c;\nh q;\n",
            "qasm3",
            serde_json::json!([{"adjoint_gradient": {"observables": ["Z0"]}}]),
            "no `input float`",
        ),
        (
            "OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput float a;\nqubit q;\nbit c;\nrx(a) q;\nc = measure q;\nrx(a) q;\n",
            "qasm3",
            serde_json::json!([{"adjoint_gradient": {"observables": ["Z0"]}}]),
            "need every measurement to be final",
        ),
    ] {
        let err = admit(source, format, types).unwrap_err().to_string();
        assert!(err.contains(says), "{err} lacks {says:?}");
    }
}

/// A service whose budget holds 12 qubits at f64 and whose "ranks" are a
/// shell script: it checks the job it is handed (13 qubits), then prints a
/// result of its own (`run_seconds` 0.125) or, for a job named `slow`,
/// starts a process in the background (its pid in `dir/pidfile`) and waits.
#[cfg(unix)]
fn across_config(dir: &std::path::Path) -> ServiceConfig {
    with_fake_ranks(config(dir), dir)
}

/// `c` with the budget and fake ranks of [`across_config`].
#[cfg(unix)]
pub(crate) fn with_fake_ranks(mut c: ServiceConfig, dir: &std::path::Path) -> ServiceConfig {
    c.memory_budget = 1 << 16;
    let pidfile = dir.join("pidfile");
    let script = format!(
        "[ \"$2 $3 $4\" = 'job-run --ranks 2' ] || exit 3; input=$(cat); \
         case \"$input\" in *'\"qubits\":13'*) ;; *) echo 'not the job' >&2; exit 4;; esac; \
         case \"$input\" in *'\"name\":\"slow\"'*) sleep 60 & echo $! > '{}'; wait;; \
         *) echo '{{\"executions\":[],\"run_seconds\":0.125}}';; esac",
        pidfile.display()
    );
    c.ranks = Some(RankLaunch {
        ranks: 2,
        launcher: vec!["sh".into(), "-c".into(), script, "launcher".into()],
        program: "kettle".into(),
        memory_per_rank: 1 << 16,
        threads_per_rank: 1,
    });
    c
}

/// A measured job of `qubits` qubits, named `name`.
#[cfg(unix)]
pub(crate) fn wide(qubits: usize, name: Option<&str>) -> JobRequest {
    let program = dense_program(qubits, 4).replace(
        &format!("qreg q[{qubits}];\n"),
        &format!("qreg q[{qubits}];\ncreg c[{qubits}];\n"),
    );
    let mut req = request(&format!("{program}measure q -> c;\n"));
    req.name = name.map(str::to_owned);
    req
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_larger_than_the_node_is_admitted_for_the_ranks_and_run_by_the_launch() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(across_config(dir.path())).await.unwrap();
    let tenant = service.authenticate(None).await.unwrap();
    let backend = service.backend(&tenant);
    let across = backend.across_ranks.clone().unwrap();
    assert_eq!((across.ranks, across.memory_budget_bytes), (2, 1 << 17));
    assert_eq!((backend.max_qubits.f64, across.max_qubits.f64), (12, 13));
    // Twice the node: refused, with what the ranks hold.
    match service.submit(&tenant, wide(14, None), None).await {
        Err(ServiceError::TooLarge {
            allowed, message, ..
        }) => {
            assert_eq!(allowed, 1 << 17);
            assert!(message.contains("across ranks"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // What a split state cannot run yet is refused, with the reason.
    let mut noisy: JobRequest = serde_json::from_value(serde_json::json!({
        "program": {"format": "qasm3", "source": "OPENQASM 3.0;\nqubit[13] q;\nbit c;\nU(1, 0, 0) q[0];\n#pragma braket noise bit_flip(0.1) q[0]\nc = measure q[0];\n"},
        "shots": 10,
    }))
    .unwrap();
    match service.submit(&tenant, noisy.clone(), None).await {
        Err(ServiceError::TooLarge { message, .. }) => {
            assert!(
                message.contains("noise is not supported across ranks"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    noisy.program.source = noisy.program.source.replace("qubit[13]", "qubit[11]");
    assert!(service.submit(&tenant, noisy, None).await.is_ok());
    // A job on this node and one across the ranks, side by side.
    let small = service.submit(&tenant, request(BELL), None).await.unwrap();
    let big = service.submit(&tenant, wide(13, None), None).await.unwrap();
    let wait = |id: String| {
        let service = &service;
        let tenant = &tenant;
        async move {
            (service.wait(tenant, &id, Duration::from_secs(20), KeyFormat::Bitstring))
                .await
                .unwrap()
        }
    };
    let big = wait(big.job.id).await;
    assert_eq!(big.status, JobStatus::Completed, "{big:?}");
    assert_eq!(big.result.unwrap().run_seconds, 0.125);
    let small = wait(small.job.id).await;
    assert_eq!(small.status, JobStatus::Completed, "{small:?}");
    assert_eq!(small.result.unwrap().executions[0].seed, 11);
}

/// Waits for the background process of a `slow` launch to be gone.
#[cfg(unix)]
async fn launch_gone(dir: &std::path::Path) {
    let pid = std::fs::read_to_string(dir.join("pidfile")).unwrap();
    for _ in 0..250 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
        if stat.is_err() || stat.is_ok_and(|s| s.contains(") Z ")) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the ranks' process {pid} outlived the job");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_or_the_run_time_limit_ends_the_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(across_config(dir.path())).await.unwrap();
    let tenant = service.authenticate(None).await.unwrap();
    let sub = service
        .submit(&tenant, wide(13, Some("slow")), None)
        .await
        .unwrap();
    wait_for(&service, &tenant, &sub.job.id, JobStatus::Running).await;
    for _ in 0..250 {
        if dir.path().join("pidfile").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    service.cancel(&tenant, &sub.job.id).await.unwrap();
    let job = wait_for(&service, &tenant, &sub.job.id, JobStatus::Cancelled).await;
    assert!(started.elapsed() < Duration::from_secs(4), "{job:?}");
    launch_gone(dir.path()).await;
    drop(service);

    let dir = tempfile::tempdir().unwrap();
    let mut config = across_config(dir.path());
    config.max_run_time = Duration::from_secs(1);
    let service = Service::start(config).await.unwrap();
    let sub = service
        .submit(&tenant, wide(13, Some("slow")), None)
        .await
        .unwrap();
    let job = service
        .wait(
            &tenant,
            &sub.job.id,
            Duration::from_secs(20),
            KeyFormat::Bitstring,
        )
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Failed, "{job:?}");
    assert_eq!(job.error.unwrap().code, "run-time-exceeded");
    launch_gone(dir.path()).await;
}
