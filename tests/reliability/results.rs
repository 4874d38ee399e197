//! Results against a `kettle serve` process: a result's size is bounded
//! at submission (`max_result_bytes`, `413`); a poison job (one whose runs
//! kill the server) fails after a bounded number of attempts instead of
//! crash-looping the server; clients that ask for a 20-qubit state vector
//! and never read hold a bounded amount of the server's memory, which comes
//! back after the write timeout; list pages carry summaries, not results.
//!
//! Bounded: three kill cycles of a few seconds; 20 raw connections for at
//! most about 15 s.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::{memory_of, report};
use crate::server_util::*;

const MIB: f64 = (1 << 20) as f64;
/// The write timeout of the server under test, in seconds.
const WRITE_TIMEOUT_S: u64 = 3;
/// Clients that ask for a large result and never read.
const NON_READERS: usize = 20;
/// How close to its resident memory before the clients came the server
/// must get once their write timeouts have passed.
const RETURNED_WITHIN: u64 = 100 << 20;

/// A `qubits`-qubit program with an arbitrary angle on each qubit, so that
/// amplitudes print with many digits, as real results do.
fn spread(qubits: u32) -> String {
    let mut s = format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{qubits}];\n");
    for q in 0..qubits {
        s.push_str(&format!(
            "u3({}, {}, 0.3) q[{q}];\n",
            0.1 + 0.37 * f64::from(q),
            0.2 * f64::from(q)
        ));
    }
    s
}

/// A 20-qubit sweep as OpenQASM 3: one state vector per value of `theta`.
fn sweep_body(executions: usize) -> Value {
    json!({
        "program": {"format": "qasm3", "source": "OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput float theta;\nqubit[20] q;\nrx(theta) q[0];\nh q[1];\n"},
        "result_types": ["statevector"],
        "inputs": {"theta": vec![0.5; executions]},
    })
}

/// What a raw client that sent a GET and read nothing got in the end: the
/// status, the declared length and the bytes that arrived.
struct Received {
    status: Option<u16>,
    declared: Option<usize>,
    body: usize,
}

fn read_all(mut stream: TcpStream) -> Received {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let head = String::from_utf8_lossy(&buf[..end.unwrap_or(buf.len().min(4096))]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let declared = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())
            .flatten()
    });
    Received {
        status,
        declared,
        body: end.map_or(0, |e| buf.len() - e - 4),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_results_are_refused_at_submission_and_served_within_a_memory_bound() {
    let dir = tempfile::tempdir().unwrap();
    let timeout = WRITE_TIMEOUT_S.to_string();
    let server = ChildServer::start_with(
        dir.path(),
        &[
            ("KETTLE_WORKERS", "1"),
            ("KETTLE_WRITE_TIMEOUT_SECONDS", &timeout),
        ],
    );
    let pid = server.child.id();
    let api = Api::new(server.base.clone(), None);
    let backend = api
        .send(Method::GET, "/v1/backend", "/v1/backend", None, &[])
        .await
        .body;
    let limit = backend["max_result_bytes"].as_u64().unwrap();
    assert_eq!(limit, kettle_service::DEFAULT_MAX_RESULT_BYTES);

    // Four 20-qubit state vectors could be ~200 MB of JSON: refused at
    // once, naming the limit; one is accepted.
    let refused = api.post_job(sweep_body(4), "").await;
    assert_eq!(refused.status, 413, "{}", refused.body);
    assert_eq!(refused.body["type"], "urn:kettle:problem:too-large");
    assert_eq!(refused.body["limit"], "max_result_bytes");
    report(&format!(
        "results: a sweep of 4 × 20-qubit state vectors: 413 {}",
        refused.body
    ));

    let one = api
        .post_job(
            job(&spread(20), json!({"result_types": ["statevector"]})),
            "?wait=120",
        )
        .await;
    assert_eq!(one.status, 201, "{}", one.body);
    assert_eq!(one.body["status"], "completed");
    let id = one.body["id"].as_str().unwrap().to_owned();
    let full = api
        .http
        .get(format!("{}/v1/jobs/{id}", server.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let parsed: Value = serde_json::from_slice(&full).unwrap();
    assert_eq!(
        parsed["result"]["executions"][0]["statevector"]
            .as_array()
            .unwrap()
            .len(),
        1 << 20
    );
    let result_bytes = full.len();
    drop((full, parsed));

    // Twenty clients that ask for it and never read.
    let (_, rss_before) = memory_of(pid);
    let started = Instant::now();
    let streams: Vec<TcpStream> = (0..NON_READERS)
        .map(|_| {
            let addr = server.base.trim_start_matches("http://");
            let mut s = TcpStream::connect(addr).unwrap();
            write!(
                s,
                "GET /v1/jobs/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            s
        })
        .collect();
    let mut rss_during = 0;
    while started.elapsed() < Duration::from_secs(WRITE_TIMEOUT_S * 2 + 3) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_during = rss_during.max(memory_of(pid).1);
    }
    // Past the write timeouts of every round, the memory is let go: how
    // long it takes to come back (a loaded machine takes longer to serve
    // each round).
    let returned = loop {
        let rss = memory_of(pid).1;
        if rss < rss_before + RETURNED_WITHIN || started.elapsed() > Duration::from_secs(40) {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (peak, rss_after) = memory_of(pid);
    let got: Vec<Received> = streams.into_iter().map(read_all).collect();
    let served = got.iter().filter(|r| r.status == Some(200)).count();
    let busy = got.iter().filter(|r| r.status == Some(503)).count();
    let cut = got
        .iter()
        .filter(|r| r.status == Some(200) && r.declared.is_some_and(|d| r.body < d))
        .count();
    report(&format!(
        "results: {NON_READERS} clients that never read a 20-qubit state vector ({:.1} MiB of JSON): \
         RSS {:.0} MiB before, {:.0} MiB at most while they held it (peak VmHWM {:.0} MiB), \
         {:.0} MiB {:.1} s after they asked (write timeout {WRITE_TIMEOUT_S} s); {served} answered 200 \
         ({cut} of them cut off by the write timeout), {busy} answered 503",
        result_bytes as f64 / MIB,
        rss_before as f64 / MIB,
        rss_during as f64 / MIB,
        peak as f64 / MIB,
        rss_after as f64 / MIB,
        returned.as_secs_f64(),
    ));
    assert!(
        rss_during < rss_before + 512 * (1 << 20),
        "{NON_READERS} non-reading clients raised RSS from {rss_before} to {rss_during}"
    );
    assert!(
        rss_after < rss_before + RETURNED_WITHIN,
        "the memory did not come back: {rss_before} before, {rss_after} after"
    );
    assert_eq!(served + busy, NON_READERS, "every client got 200 or 503");
    assert!(
        served >= 1 && cut == served,
        "{served} served, {cut} cut off"
    );

    // The server still answers in full.
    let again = api.get_job(&id, "").await;
    assert_eq!(again.status, 200);

    // A page of eight completed jobs carries summaries only.
    let mut embedded = result_bytes;
    for q in 0..7 {
        let r = api
            .post_job(
                job(
                    &spread(14 + q % 3),
                    json!({"result_types": ["statevector"]}),
                ),
                "?wait=60",
            )
            .await;
        assert_eq!(r.body["status"], "completed", "{}", r.body);
        embedded += serde_json::to_vec(&r.body["result"]).unwrap().len();
    }
    let page = api
        .http
        .get(format!("{}/v1/jobs?limit=8", server.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let listed: Value = serde_json::from_slice(&page).unwrap();
    let jobs = listed["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 8);
    assert!(jobs.iter().all(|j| j.get("result").is_none()), "{listed}");
    check_against_spec("get", "/v1/jobs", 200, "application/json", &listed);
    report(&format!(
        "results: GET /v1/jobs?limit=8 over 8 completed state-vector jobs: {} bytes \
         (the results it used to embed: {:.1} MiB)",
        page.len(),
        embedded as f64 / MIB
    ));
    assert!(page.len() < 64 << 10, "{} bytes", page.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kills_the_server_fails_after_three_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("KETTLE_WORKERS", "1")];
    let mut server = ChildServer::start_with(dir.path(), &env);
    let api = Api::new(server.base.clone(), None);
    // Runs far longer than a cycle: each run ends only by the kill.
    let poison = api
        .post_job(
            job(
                &slow_program(20, 20_000),
                json!({"result_types": [{"expectation": ["Z0"]}]}),
            ),
            "",
        )
        .await;
    assert_eq!(poison.status, 201, "{}", poison.body);
    let id = poison.body["id"].as_str().unwrap().to_owned();
    for kill in 1..=3 {
        let api = Api::new(server.base.clone(), None);
        let running = api.until(&id, "running").await;
        assert_eq!(running["attempts"], kill, "{running}");
        // A short run: the claim was committed before it started.
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.kill();
        server = ChildServer::start_with(dir.path(), &env);
    }
    let api = Api::new(server.base.clone(), None);
    let ended = api.until(&id, "failed").await;
    report(&format!(
        "results: a job killed with its server 3 times: {} after attempt {}: {}",
        ended["status"], ended["attempts"], ended["error"]
    ));
    assert_eq!(ended["error"]["code"], "too-many-attempts", "{ended}");
    assert!(
        ended["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3 times"),
        "{ended}"
    );
    // The server is serving others meanwhile.
    let bell = api.post_job(job(BELL, json!({})), "?wait=30").await;
    assert_eq!(bell.body["status"], "completed", "{}", bell.body);
}
