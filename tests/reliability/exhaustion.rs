//! Resource exhaustion against a `kettle serve` process: a job larger than
//! the memory budget, a flood of large jobs, huge and deep bodies, clients
//! that trickle bytes, and thousands of idle connections, all at once,
//! while another tenant's small jobs are timed. Each attack must end in
//! bounded time with a clear status; the server's peak resident memory
//! must stay within the budget plus a fixed allowance; the small jobs must
//! still complete.
//!
//! Bounded: about 15 s; 12 large jobs; at most 2000 connections (fewer
//! when the open-file limit is low; `RELIABILITY_CONNECTIONS` sets it).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{bell_latencies, memory_of, percentile, report};
use crate::server_util::*;

const MIB: u64 = 1 << 20;
/// The memory budget of the server under test: two 22-qubit f64 states
/// (64 MiB each) fit, a third does not.
const BUDGET: u64 = 160 * MIB;
const LARGE_JOBS: usize = 12;
/// Seconds of the header and body timeouts under test.
const TIMEOUT_S: u64 = 2;

/// A 22-qubit job of dense layers: 64 MiB of state at f64.
fn large_job() -> Value {
    job(
        &slow_program(22, 120),
        json!({"result_types": [{"expectation": ["Z0"]}]}),
    )
}

/// The status of the first answer on a raw connection, and when it came
/// (`None`: closed without an answer).
async fn read_status(stream: &mut (impl AsyncReadExt + Unpin), limit: Duration) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.windows(2).any(|w| w == b"\r\n") {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(limit, read).await;
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace().nth(1).and_then(|s| s.parse().ok())
}

/// What one attack saw: its answer and how long it took.
#[derive(Debug)]
struct Seen {
    what: &'static str,
    status: Option<u16>,
    took: Duration,
}

/// How a hostile client sends after its head.
#[derive(Clone, Copy, Debug)]
enum Sending {
    /// `len` bytes of `[` in 64 KiB writes, stopping when the server stops
    /// reading.
    Bulk(usize),
    /// These bytes, over and over, one every 300 ms.
    Trickle(&'static [u8]),
}

/// Sends `head` and then `rest` on a raw connection, and reads the answer
/// (for at most 20 s after a bulk body, 30 s while trickling).
async fn attack(addr: &str, what: &'static str, head: String, rest: Sending) -> Seen {
    let limit = Duration::from_secs(match rest {
        Sending::Bulk(_) => 20,
        Sending::Trickle(_) => 30,
    });
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        match rest {
            Sending::Bulk(len) => {
                let chunk = vec![b'['; 64 << 10];
                let mut sent = 0;
                while sent < len {
                    let n = chunk.len().min(len - sent);
                    let write =
                        tokio::time::timeout(Duration::from_secs(5), wr.write_all(&chunk[..n]));
                    if !matches!(write.await, Ok(Ok(()))) {
                        return;
                    }
                    sent += n;
                }
            }
            Sending::Trickle(bytes) => {
                for b in bytes.iter().cycle() {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if wr.write_all(&[*b]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let status = read_status(&mut rd, limit).await;
    writer.abort();
    Seen {
        what,
        status,
        took: started.elapsed(),
    }
}

/// The soft limit on open files of this process (the server inherits it).
fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// Opens `n` connections that never send a byte; how many the server had
/// closed `wait` later.
async fn idle_connections(addr: &str, n: usize, wait: Duration) -> (usize, usize) {
    let mut open = Vec::new();
    for _ in 0..n {
        match TcpStream::connect(addr).await {
            Ok(s) => open.push(s),
            Err(_) => break,
        }
    }
    let opened = open.len();
    tokio::time::sleep(wait).await;
    let mut closed = 0;
    for mut s in open {
        let mut b = [0u8; 256];
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(50), s.read(&mut b)).await {
            // An answer (408) or end of stream: the server let go.
            closed += 1;
        }
    }
    (opened, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_stay_within_memory_and_time_and_small_jobs_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let small_key = kettle_server::keys_create(dir.path(), "small").unwrap().key;
    let big_key = kettle_server::keys_create(dir.path(), "big").unwrap().key;
    let budget = format!("{}MiB", BUDGET / MIB);
    let timeout = TIMEOUT_S.to_string();
    let server = ChildServer::start_with(
        dir.path(),
        &[
            ("KETTLE_WORKERS", "4"),
            ("KETTLE_MEMORY_BUDGET", &budget),
            ("KETTLE_LIMITS__MAX_QUBITS", "30"),
            ("KETTLE_LIMITS__MAX_REQUEST_BYTES", "1048576"),
            ("KETTLE_HEADER_TIMEOUT_SECONDS", &timeout),
            ("KETTLE_BODY_TIMEOUT_SECONDS", &timeout),
        ],
    );
    let pid = server.child.id();
    let addr = server.base.trim_start_matches("http://").to_owned();
    let small = Api::new(server.base.clone(), Some(&small_key));
    let big = Api::new(server.base.clone(), Some(&big_key));

    // Before: warm, then the small jobs' normal latency.
    bell_latencies(&small, Duration::from_millis(300), 30).await;
    let before = bell_latencies(&small, Duration::from_secs(2), 30).await;
    let (_, rss_before) = memory_of(pid);

    // A job that can never fit is refused before any allocation.
    let r = big
        .post_job(
            job(
                &slow_program(26, 4),
                json!({"result_types": [{"expectation": ["Z0"]}]}),
            ),
            "",
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.body["type"], "urn:kettle:problem:too-large");
    let (hwm, _) = memory_of(pid);
    assert!(
        hwm < rss_before + 64 * MIB,
        "the refused job allocated: {hwm}"
    );

    // Everything at once.
    let mut large_ids = Vec::new();
    for _ in 0..LARGE_JOBS {
        let r = big.post_job(large_job(), "").await;
        assert_eq!(r.status, 201, "{}", r.body);
        large_ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let connections = std::env::var("RELIABILITY_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
        .min(open_file_limit() / 3);
    let auth = big_key.clone();
    let post = move |len: usize| {
        format!(
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    let chunked = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {big_key}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    use Sending::{Bulk, Trickle};
    let attacks = tokio::spawn({
        let addr = addr.clone();
        async move {
            let huge = attack(&addr, "64 MiB body", post(64 << 20), Bulk(64 << 20));
            let deep = attack(&addr, "1 MiB of `[`", post(1 << 20), Bulk(1 << 20));
            let slow_head = attack(
                &addr,
                "trickled headers",
                "POST /v1/jobs HTTP/1.1\r\nHost: x\r\n".into(),
                Trickle(b"X-Slow: 1\r\n"),
            );
            let slow_body = attack(&addr, "trickled body", post(1000), Trickle(b"["));
            let idle = idle_connections(&addr, connections, Duration::from_secs(TIMEOUT_S + 3));
            // A chunked body with no length: the tenant's byte limit still
            // stops it (the chunk framing is left out: the server must
            // answer before it could matter).
            let no_length = attack(&addr, "chunked trickle", chunked, Trickle(b"1\r\n[\r\n"));
            let (a, b, c, d, e, f) =
                tokio::join!(huge, deep, slow_head, slow_body, idle, no_length);
            (vec![a, b, c, d, f], e)
        }
    });
    // The scheduler's own account of state memory, sampled from /metrics.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (url, done) = (format!("{}/metrics", server.base), done.clone());
        async move {
            let mut most = 0f64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(r) = reqwest::get(&url).await
                    && let Ok(text) = r.text().await
                {
                    let in_use = text
                        .lines()
                        .find_map(|l| l.strip_prefix("kettle_memory_in_use_bytes "))
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .unwrap_or(0.0);
                    most = most.max(in_use);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            most
        }
    });
    let during = bell_latencies(&small, Duration::from_secs(6), 30).await;
    let (seen, (opened, closed)) = attacks.await.unwrap();
    for id in &large_ids {
        let done = big.get_job(id, "?wait=120").await.body;
        assert_eq!(done["status"], "completed", "{done}");
    }
    let (hwm, rss_after) = memory_of(pid);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let most_in_use = sampler.await.unwrap() as u64;
    assert!(
        most_in_use <= BUDGET,
        "{most_in_use} bytes of state at once"
    );
    assert!(
        most_in_use >= 2 * (64 * MIB),
        "two large jobs never ran together"
    );

    for s in &seen {
        report(&format!(
            "  {:<17} -> {:?} after {:.1?}",
            s.what, s.status, s.took
        ));
    }
    let expect = |what: &str, statuses: &[u16], within: Duration| {
        let s = seen.iter().find(|s| s.what == what).unwrap();
        assert!(
            s.status.is_none_or(|c| statuses.contains(&c)) && s.took <= within,
            "{s:?}"
        );
        assert!(s.status.is_some(), "{what}: closed without an answer");
    };
    let bound = Duration::from_secs(TIMEOUT_S + 3);
    expect("64 MiB body", &[413], Duration::from_secs(5));
    expect("1 MiB of `[`", &[400, 413], Duration::from_secs(5));
    expect("trickled headers", &[408], bound);
    expect("trickled body", &[408], bound);
    expect("chunked trickle", &[408], bound);
    assert!(
        opened >= connections / 2,
        "only {opened} of {connections} connections opened"
    );
    assert_eq!(
        closed, opened,
        "idle connections outlived the header timeout"
    );

    let grew = hwm.saturating_sub(rss_before);
    report(&format!(
        "exhaustion: budget {} MiB, at most {} MiB of states at once; server RSS before {} MiB, peak {} MiB (+{} MiB), after {} MiB; \
         {LARGE_JOBS} large jobs of 64 MiB completed; {opened} idle connections, all closed",
        BUDGET / MIB,
        most_in_use / MIB,
        rss_before / MIB,
        hwm / MIB,
        grew / MIB,
        rss_after / MIB
    ));
    report(&format!(
        "small jobs (Bell, 100 shots, ?wait): before {} jobs p50 {:.1?} p99 {:.1?}; during the floods {} jobs p50 {:.1?} p99 {:.1?}",
        before.len(),
        percentile(&before, 0.5),
        percentile(&before, 0.99),
        during.len(),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
    ));
    // The budget plus an allowance for the connections' buffers (about
    // 15 KiB each: 30 MiB for 2000) and the runtime. States are mapped from
    // the kernel and returned when dropped (kettle-core's `buffer`), so the
    // allocator's reuse delay does not add finished jobs' states.
    assert!(grew <= BUDGET + 64 * MIB, "peak grew by {} MiB", grew / MIB);
    assert!(
        percentile(&during, 0.99) < Duration::from_secs(2),
        "{during:?}"
    );
}
