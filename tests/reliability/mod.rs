//! Reliability tests (issue 6): crashes, resource exhaustion and security,
//! against real server processes on 127.0.0.1. Each is bounded in count and
//! time; the figures they print with `--nocapture` are the ones in
//! `README.md` beside this file, which also covers the fuzzers and the
//! schemathesis run.

mod crash;
mod exhaustion;
mod security;

/// A small seeded generator (SplitMix64): the tests print their seed, so a
/// failing schedule can be replayed with `RELIABILITY_SEED`.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// From `RELIABILITY_SEED`, else from the clock.
    pub(crate) fn from_env() -> (Rng, u64) {
        let seed = std::env::var("RELIABILITY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        (Rng(seed), seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
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
