//! Reliability tests (issue 6): crashes, resource exhaustion and security,
//! against real server processes on 127.0.0.1. Each is bounded in count and
//! time; the figures they print with `--nocapture` are the ones in
//! `README.md` beside this file, which also covers the fuzzers and the
//! schemathesis run.

mod admission;
pub(crate) mod cluster;
mod crash;
mod exhaustion;
mod fairness;
mod protocol;
mod results;
mod security;
mod store;

use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// A seeded generator from `RELIABILITY_SEED`, else from the clock, and
/// its seed: the tests print it, so that a failing schedule can be
/// replayed.
pub(crate) fn seeded_rng() -> (Xoshiro256PlusPlus, u64) {
    let seed = std::env::var("RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    (Xoshiro256PlusPlus::seed_from_u64(seed), seed)
}

/// Writes a line of figures to stderr (shown with `--nocapture`).
pub(crate) fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The peak and current resident memory of process `pid`, in bytes
/// (`VmHWM` and `VmRSS` of `/proc/PID/status`).
pub(crate) fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Bell jobs of 100 shots submitted with `?wait={wait_s}`, one after
/// another, for `duration` (and at least ten): their latencies, sorted.
pub(crate) async fn bell_latencies(
    api: &crate::server_util::Api,
    duration: std::time::Duration,
    wait_s: u32,
) -> Vec<std::time::Duration> {
    use crate::server_util::{BELL, job};
    let mut latencies = Vec::new();
    let end = std::time::Instant::now() + duration;
    while std::time::Instant::now() < end || latencies.len() < 10 {
        let t = std::time::Instant::now();
        let r = api
            .post_job(
                job(BELL, serde_json::json!({"shots": 100})),
                &format!("?wait={wait_s}"),
            )
            .await;
        assert_eq!(r.body["status"], "completed", "{}", r.body);
        latencies.push(t.elapsed());
    }
    latencies.sort();
    latencies
}

/// The `p` quantile (0 to 1) of sorted, non-empty latencies.
pub(crate) fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}
