//! Running a job across MPI ranks from a node: the operator's launch
//! command ([`RankLaunch`]) starts `kettle job-run` under `mpirun` or
//! `srun` as a process group of its own; the job goes to rank 0 on
//! standard input, its result comes back as one JSON line on standard
//! output. The node stays the only writer of the job's end (its claim, its
//! lease and its fencing unchanged), and a stop (cancel, the run-time
//! limit, shutdown, a lost claim) ends the whole group: SIGTERM, which the
//! launcher passes on to every rank, then SIGKILL after [`GRACE`].
//!
//! Unix only: a process group and its signals are how a launcher's ranks
//! are stopped together. On Linux the launcher also gets SIGTERM when the
//! server dies, so no job runs on without a server to record it.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::across::{PROGRESS_PREFIX, RankJob};
use crate::config::RankLaunch;
use crate::execute::RunFailure;
use crate::model::JobResult;

/// How often a running launch is looked at (for its end, or a stop).
const POLL: Duration = Duration::from_millis(20);
/// How long the ranks get to end after SIGTERM before SIGKILL.
pub(crate) const GRACE: Duration = Duration::from_secs(5);
/// The most of the ranks' standard error kept for the job's error and the
/// log.
const STDERR_TAIL: usize = 16 << 10;
/// Bytes of JSON beyond the result's own bound that its line may have
/// (the bound is of the result's JSON as the service writes it; the line
/// adds its newline).
const RESULT_SLACK: u64 = 4096;

/// Runs `job` across the ranks `launch` starts, until it ends or
/// `should_stop` says so (asked every few milliseconds). `max_result_bytes`
/// bounds what is read of the result.
///
/// # Errors
/// [`RunFailure::Stopped`] when stopped (every process of the group is gone
/// by then); [`RunFailure::Error`] with the reason when the launcher cannot
/// start, the ranks fail (with the last line they wrote to standard
/// error), or their output is not a result.
pub(crate) fn run_across_ranks(
    launch: &RankLaunch,
    job: &RankJob,
    max_result_bytes: u64,
    should_stop: &dyn Fn() -> bool,
    progress: &dyn Fn(f64),
) -> Result<JobResult, RunFailure> {
    let input = serde_json::to_vec(job)
        .map_err(|e| RunFailure::Error(format!("the job does not serialise: {e}")))?;
    let line = launch.command_line();
    let (program, args) = line
        .split_first()
        .ok_or_else(|| RunFailure::Error("the launch command for ranks is empty".to_string()))?;
    let mut child = spawn(program, args).map_err(|e| {
        RunFailure::Error(format!(
            "cannot start the launch command for ranks (`{program}`): {e}"
        ))
    })?;
    let group = Group::of(&child);
    // Each pipe on a thread of its own: a launcher blocked on a full pipe
    // must never block the others, nor this loop.
    let stdin = child.stdin.take().map(|mut pipe| {
        std::thread::spawn(move || {
            use std::io::Write;
            // The ranks may end (or fail) before reading it all.
            let _ = pipe.write_all(&input);
        })
    });
    let limit = max_result_bytes.saturating_add(RESULT_SLACK);
    let overflow = Arc::new(AtomicBool::new(false));
    let stdout = child.stdout.take().map(|pipe| {
        let overflow = Arc::clone(&overflow);
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let read = pipe.take(limit + 1).read_to_end(&mut bytes);
            if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
                overflow.store(true, Ordering::Relaxed);
            }
            read.map(|_| bytes)
        })
    });
    // Rank 0's last progress line (f64 bits; none yet: NaN's).
    let reported = Arc::new(AtomicU64::new(f64::NAN.to_bits()));
    let stderr = child.stderr.take().map(|pipe| {
        let reported = Arc::clone(&reported);
        std::thread::spawn(move || tail(pipe, &reported))
    });
    let mut published = f64::NAN;
    // Past the bound the output is not read further: the ranks are stopped.
    let ended = watch(&mut child, &group, should_stop, || {
        let fraction = f64::from_bits(reported.load(Ordering::Relaxed));
        if !fraction.is_nan() && fraction != published {
            published = fraction;
            progress(fraction);
        }
        overflow.load(Ordering::Relaxed)
    });
    // The group is gone (ended, or killed): the pipes close.
    joined(stdin);
    let output = joined(stdout);
    let errors = joined(stderr).unwrap_or_default();
    if !errors.trim().is_empty() {
        tracing::debug!(
            ranks = launch.ranks,
            "the ranks wrote to standard error:\n{errors}"
        );
    }
    if overflow.load(Ordering::Relaxed) {
        return Err(RunFailure::Error(format!(
            "the ranks' output is larger than the result's bound of {max_result_bytes} bytes"
        )));
    }
    let status = match ended {
        Ended::Stopped => return Err(RunFailure::Stopped),
        Ended::Exited(status) => status,
    };
    let output = match output {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) => {
            return Err(RunFailure::Error(format!(
                "cannot read the ranks' output: {e}"
            )));
        }
        None => Vec::new(),
    };
    if !status.success() {
        let last = errors.lines().rev().find(|l| !l.trim().is_empty());
        return Err(RunFailure::Error(format!(
            "the run across {} ranks failed ({status}){}",
            launch.ranks,
            last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
        )));
    }
    let text = String::from_utf8_lossy(&output);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(line).map_err(|e| {
        RunFailure::Error(format!(
            "the ranks ended without a result on standard output ({e})"
        ))
    })
}

fn spawn(program: &str, args: &[String]) -> std::io::Result<Child> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // A group of its own: a stop reaches the launcher and every rank
        // it started here, and nothing of the server's.
        command.process_group(0);
    }
    #[cfg(target_os = "linux")]
    end_with_the_server(&mut command);
    command.spawn()
}

/// Has the launcher sent SIGTERM when the server dies (killed, crashed),
/// which `mpirun` and `srun` pass on to every rank: a job the server can
/// no longer finish does not run on beside its next attempt.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn end_with_the_server(command: &mut Command) {
    use std::os::unix::process::CommandExt;

    use rustix::process::{Signal, getpid, getppid, set_parent_process_death_signal};
    let server = getpid();
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: it makes two raw system calls
    // (prctl, getppid) and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::TERM))?;
            // The server died before the signal was set: nothing would come.
            if getppid() != Some(server) {
                return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
            }
            Ok(())
        });
    }
}

/// What a pipe's thread gave; `None` if it panicked.
fn joined<T>(thread: Option<JoinHandle<T>>) -> Option<T> {
    thread.and_then(|t| t.join().ok())
}

/// How a launch ended.
enum Ended {
    Exited(ExitStatus),
    /// Stopped, and every process of its group is gone.
    Stopped,
}

/// Waits for `child` to exit; on `should_stop` (or `overflowing`) ends its
/// whole group: SIGTERM, then SIGKILL after [`GRACE`].
fn watch(
    child: &mut Child,
    group: &Group,
    should_stop: &dyn Fn() -> bool,
    mut overflowing: impl FnMut() -> bool,
) -> Ended {
    let mut killing: Option<Instant> = None;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if killing.is_none() => {
                // Ranks of the group that outlive the launcher (it should
                // not happen) are not left running.
                group.signal(Signal::Kill);
                return Ended::Exited(status);
            }
            Ok(Some(_)) => {
                group.signal(Signal::Kill);
                return Ended::Stopped;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("cannot wait for the ranks' launcher: {e}; stopping it");
                group.signal(Signal::Kill);
                let _ = child.wait();
                return Ended::Stopped;
            }
        }
        match killing {
            None if should_stop() || overflowing() => {
                group.signal(Signal::Term);
                killing = Some(Instant::now());
            }
            Some(since) if since.elapsed() >= GRACE => {
                group.signal(Signal::Kill);
                let _ = child.wait();
                return Ended::Stopped;
            }
            _ => {}
        }
        std::thread::sleep(POLL);
    }
}

/// A signal for a launch's process group.
#[derive(Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

/// The process group of a launch (its id is the launcher's pid).
struct Group {
    #[cfg(unix)]
    pid: Option<rustix::process::Pid>,
    #[cfg(not(unix))]
    id: u32,
}

impl Group {
    #[cfg(unix)]
    fn of(child: &Child) -> Group {
        Group {
            pid: rustix::process::Pid::from_raw(child.id().try_into().unwrap_or(0)),
        }
    }

    #[cfg(not(unix))]
    fn of(child: &Child) -> Group {
        Group { id: child.id() }
    }

    /// Sends `signal` to every process of the group; one already gone is
    /// no error.
    #[cfg(unix)]
    fn signal(&self, signal: Signal) {
        use rustix::process::{Signal as Sig, kill_process_group};
        let Some(pid) = self.pid else { return };
        let sig = match signal {
            Signal::Term => Sig::TERM,
            Signal::Kill => Sig::KILL,
        };
        let _ = kill_process_group(pid, sig);
    }

    #[cfg(not(unix))]
    fn signal(&self, _: Signal) {
        tracing::warn!(
            pid = self.id,
            "stopping the ranks of a launch needs Unix process groups"
        );
    }
}

/// The last [`STDERR_TAIL`] bytes of `pipe`, read to its end, without the
/// progress lines, whose last fraction goes to `reported` as it comes.
fn tail(pipe: impl Read, reported: &AtomicU64) -> String {
    use std::io::BufRead;
    let mut kept: Vec<u8> = Vec::new();
    let mut line = Vec::new();
    // Lines longer than the tail are cut: the pipe is read to its end
    // however much the ranks write.
    let mut reader = std::io::BufReader::new(pipe);
    loop {
        line.clear();
        let read = (&mut reader)
            .take(STDERR_TAIL as u64)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let fraction = std::str::from_utf8(&line)
            .ok()
            .and_then(|l| l.trim_end().strip_prefix(PROGRESS_PREFIX))
            .and_then(|f| f.parse::<f64>().ok())
            .filter(|f| (0.0..=1.0).contains(f));
        if let Some(fraction) = fraction {
            reported.store(fraction.to_bits(), Ordering::Relaxed);
            continue;
        }
        kept.extend_from_slice(&line);
        if kept.len() > 2 * STDERR_TAIL {
            kept.drain(..kept.len() - STDERR_TAIL);
        }
    }
    if kept.len() > STDERR_TAIL {
        kept.drain(..kept.len() - STDERR_TAIL);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::config::TenantLimits;
    use crate::model::JobRequest;
    use crate::prepare::check_request;

    /// A launcher that is `sh -c script`: the program and its arguments
    /// follow as `$1`, `$2`, ….
    fn sh(script: &str) -> RankLaunch {
        RankLaunch {
            ranks: 2,
            launcher: vec!["sh".into(), "-c".into(), script.into(), "launcher".into()],
            program: "kettle".into(),
            memory_per_rank: 1 << 20,
            threads_per_rank: 1,
        }
    }

    fn job() -> RankJob {
        let request: JobRequest = serde_json::from_value(serde_json::json!({
            "program": {"format": "qasm3", "source": "qubit[2] q; bit[2] c; U(1, 0, 0) q[0]; c = measure q;"},
            "shots": 10,
        }))
        .unwrap();
        let limits = TenantLimits::default();
        RankJob {
            spec: check_request(&request, &limits, 1 << 30, 20).unwrap(),
            limits,
            max_listed_qubits: 20,
        }
    }

    fn never() -> bool {
        false
    }

    /// [`run_across_ranks`] without progress.
    fn launched(
        launch: &RankLaunch,
        job: &RankJob,
        max_result_bytes: u64,
        should_stop: &dyn Fn() -> bool,
    ) -> Result<JobResult, RunFailure> {
        run_across_ranks(launch, job, max_result_bytes, should_stop, &|_| {})
    }

    #[test]
    fn progress_lines_are_reported_and_kept_out_of_the_error() {
        let seen = std::sync::Mutex::new(Vec::new());
        let message = match run_across_ranks(
            &sh(
                "cat > /dev/null; echo 'kettle-progress 0.25' >&2; sleep 0.2; \
                 echo 'kettle-progress 0.5' >&2; echo 'kettle-progress 7' >&2; sleep 0.2; \
                 echo 'rank 0: gave up' >&2; exit 1",
            ),
            &job(),
            1 << 20,
            &never,
            &|f| seen.lock().unwrap().push(f),
        ) {
            Err(RunFailure::Error(message)) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            *seen.lock().unwrap(),
            [0.25, 0.5],
            "a fraction past 1 is no progress"
        );
        assert!(message.ends_with("rank 0: gave up"), "{message}");
    }

    fn failure(result: Result<JobResult, RunFailure>) -> String {
        match result {
            Err(RunFailure::Error(message)) => message,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn the_job_goes_in_on_stdin_and_the_result_comes_back_on_stdout() {
        let result = JobResult {
            executions: Vec::new(),
            run_seconds: 0.25,
        };
        let line = serde_json::to_string(&result).unwrap();
        // The launcher gets the program, `job-run`, the rank and thread
        // counts, and the job on standard input.
        let script = format!(
            "[ \"$1 $2 $3 $4 $5 $6\" = 'kettle job-run --ranks 2 --threads 1' ] || exit 3; \
             grep -q max_listed_qubits || exit 4; \
             echo 'a rank says hello' >&2; echo; echo '{line}'"
        );
        let got = launched(&sh(&script), &job(), 1 << 20, &never).unwrap();
        assert_eq!(got, result);
    }

    #[test]
    fn a_failed_run_fails_with_the_last_line_the_ranks_wrote() {
        let message = failure(launched(
            &sh("cat > /dev/null; echo 'rank 1: out of memory' >&2; echo >&2; exit 7"),
            &job(),
            1 << 20,
            &never,
        ));
        assert!(message.contains("rank 1: out of memory"), "{message}");
        assert!(
            message.contains("2 ranks") && message.contains('7'),
            "{message}"
        );
    }

    #[test]
    fn a_launcher_that_cannot_start_or_prints_no_result_fails_clearly() {
        let mut missing = sh("");
        missing.launcher = vec!["/nonexistent/mpirun".into()];
        let message = failure(launched(&missing, &job(), 1 << 20, &never));
        assert!(message.contains("/nonexistent/mpirun"), "{message}");
        let message = failure(launched(
            &sh("cat > /dev/null; echo not json"),
            &job(),
            1 << 20,
            &never,
        ));
        assert!(message.contains("without a result"), "{message}");
    }

    #[test]
    fn output_past_the_result_bound_stops_the_ranks() {
        let started = Instant::now();
        let message = failure(launched(&sh("exec yes"), &job(), 1000, &never));
        assert!(
            message.contains("larger than the result's bound"),
            "{message}"
        );
        assert!(started.elapsed() < GRACE, "{:?}", started.elapsed());
    }

    /// Whether process `pid` still runs (a zombie does not).
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    }

    /// Starts `script` (which writes the pid of a process it started in
    /// the background to `$PIDFILE`), stops it after 200 ms, and checks
    /// that the run reports a stop and that the background process is gone.
    fn stopped(script: &str) -> Duration {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("PIDFILE='{}'; {script}", pidfile.display());
        let started = Instant::now();
        let stop = || started.elapsed() > Duration::from_millis(200);
        let outcome = launched(&sh(&script), &job(), 1 << 20, &stop);
        let took = started.elapsed();
        assert!(matches!(outcome, Err(RunFailure::Stopped)), "{outcome:?}");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        // Reaped by init once its parent is gone: give it a moment.
        let gone = Instant::now();
        while alive(pid.trim()) && gone.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid.trim()), "the rank {pid} outlived the stop");
        took
    }

    #[test]
    fn a_stop_ends_every_process_of_the_group() {
        let took = stopped("sleep 30 & echo $! > \"$PIDFILE\"; wait");
        assert!(took < GRACE, "{took:?}");
    }

    #[test]
    fn ranks_that_ignore_sigterm_are_killed_after_the_grace() {
        let took = stopped("trap '' TERM; sleep 30 & echo $! > \"$PIDFILE\"; wait; wait");
        assert!(
            took >= GRACE && took < GRACE + Duration::from_secs(3),
            "{took:?}"
        );
    }
}
