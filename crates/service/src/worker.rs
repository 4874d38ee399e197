//! The worker pool: dedicated OS threads (never async executor threads)
//! that take admitted jobs from the scheduler, claim them (in memory at
//! once, and committed in the store before the run starts), run them under
//! a monitor (cancellation, the run-time limit, shutdown), and hand the
//! outcome to the writer as a conditional write. A job started
//! [`MAX_ATTEMPTS`] times without an outcome (a poison job that crashes the
//! server) fails instead of running again.

use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kettle_core::{Monitor, Progress};

use crate::across::RankJob;
use crate::config::TenantLimits;
use crate::execute::{RunFailure, fraction_done, run_job};
use crate::launch::run_across_ranks;
use crate::model::{JobError, JobProgress, JobResult, JobSpec, JobStatus};
use crate::scheduler::{Admitted, RUN, STOP_CANCEL, STOP_LOST, STOP_SHUTDOWN, WorkerKind};
use crate::service::Inner;
use crate::store::{Inserted, JobState, Outcome, StoreResult, WriteOp, Written};
use crate::time::now_ms;

/// How often a running job's progress is published to its readers.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Stops a run at the next gate when the job is cancelled, the server shuts
/// down, or the run-time limit passes; publishes its progress in the live
/// job every [`PROGRESS_EVERY`].
struct JobMonitor<'a> {
    stop: &'a AtomicU8,
    deadline: Instant,
    timed_out: AtomicBool,
    inner: &'a Inner,
    id: &'a str,
    started: Instant,
    /// Milliseconds after `started` of the last publication.
    published_ms: AtomicU64,
}

impl JobMonitor<'_> {
    /// Publishes in the live job that `fraction` of it is done after
    /// `elapsed`, with the time left at that pace.
    fn publish(&self, fraction: f64, elapsed: Duration) {
        let seconds_left =
            (fraction > 0.0).then(|| elapsed.as_secs_f64() * (1.0 - fraction) / fraction);
        self.inner.live_update(self.id, |j| {
            j.progress = Some(JobProgress {
                fraction,
                seconds_left,
            });
        });
    }

    /// Whether the run must stop now: a stop was asked for, or the
    /// run-time limit passed (recorded in `timed_out`).
    fn must_stop(&self, now: Instant) -> bool {
        if self.stop.load(Ordering::Relaxed) != RUN {
            return true;
        }
        if now >= self.deadline {
            self.timed_out.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }
}

impl Monitor for JobMonitor<'_> {
    fn on_progress(&self, progress: Progress) -> ControlFlow<()> {
        let now = Instant::now();
        if self.must_stop(now) {
            return ControlFlow::Break(());
        }
        let elapsed = now.duration_since(self.started);
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if ms.saturating_sub(self.published_ms.load(Ordering::Relaxed))
            >= PROGRESS_EVERY.as_millis() as u64
        {
            self.published_ms.store(ms, Ordering::Relaxed);
            self.publish(fraction_done(progress), elapsed);
        }
        ControlFlow::Continue(())
    }
}

/// Most times a job is started: a job whose runs all ended without an
/// outcome this often (each crashed the server) fails with
/// `too-many-attempts` when it is dispatched again. A run that a graceful
/// shutdown stopped and queued again is not counted.
pub(crate) const MAX_ATTEMPTS: u32 = 3;

/// What to write when a run ends.
enum Ending {
    Finish(Outcome),
    Requeue,
    /// Nothing: this node's claim is gone (shared store), so is any say
    /// in how the job ends.
    Abandon,
}

/// A worker thread's body: runs the jobs a worker of `kind` may start
/// until the scheduler closes.
pub(crate) fn worker_loop(inner: Arc<Inner>, kind: WorkerKind) {
    while let Some(admitted) = inner.sched.next(kind) {
        run_admitted(&inner, &admitted);
    }
}

fn run_admitted(inner: &Arc<Inner>, admitted: &Admitted) {
    let entry = &admitted.entry;
    let id = entry.id.clone();
    let (attempt, cancelled) = match entry.claimed {
        // Claimed in the shared store already, under its lease.
        Some(attempt) => {
            let Some(job) = inner.live_job(&id) else {
                // Let go meanwhile (its lease was lost): nothing to run,
                // and room for another claim.
                inner.sched.finish(&id);
                inner.room.notify_one();
                return;
            };
            (attempt, job.cancel_requested)
        }
        None => match claim(inner, &id) {
            Some(attempt) => (attempt, false),
            None => return,
        },
    };
    inner.publish_depth();
    let spec = &entry.spec;
    let limits = inner.config.limits_for(&entry.tenant).clone();
    let monitor = JobMonitor {
        stop: &admitted.stop,
        deadline: Instant::now() + inner.config.max_run_time,
        timed_out: AtomicBool::new(false),
        inner,
        id: &id,
        started: Instant::now(),
        published_ms: AtomicU64::new(0),
    };
    let error = |code: &str, message: String| JobError {
        code: code.to_owned(),
        message,
    };
    let started = Instant::now();
    // A job whose earlier runs all ended without an outcome (each crashed
    // the server, or the server stopped during it) is not run again: a
    // poison job would otherwise crash the server at every start.
    if cancelled {
        let ending = Ending::Finish(Outcome::Cancelled(error(
            "cancelled",
            "cancelled before it ran".into(),
        )));
        return end_run(inner, &id, attempt, ending);
    }
    let run = (attempt <= MAX_ATTEMPTS).then(|| {
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            if spec.memory_bytes > inner.config.memory_budget {
                return run_across(inner, spec, limits.clone(), &monitor);
            }
            run_job(
                &inner.sim,
                spec,
                entry.circuits.as_deref(),
                &limits,
                inner.config.max_listed_qubits,
                &monitor,
            )
        }))
    });
    let seconds = started.elapsed().as_secs_f64();
    metrics::histogram!("kettle_simulation_seconds").record(seconds);
    let Some(run) = run else {
        let ending = Ending::Finish(Outcome::Failed(error(
            "too-many-attempts",
            format!(
                "the job was started {} times and none of its runs ended (the server crashed or stopped during each); it is not run again",
                attempt - 1
            ),
        )));
        return end_run(inner, &id, attempt, ending);
    };
    let ending = match run {
        Ok(Ok(result)) => Ending::Finish(Outcome::Completed(result)),
        Ok(Err(RunFailure::Stopped)) => match admitted.stop.load(Ordering::Relaxed) {
            STOP_CANCEL => Ending::Finish(Outcome::Cancelled(error(
                "cancelled",
                "cancelled while running".into(),
            ))),
            STOP_SHUTDOWN => Ending::Requeue,
            STOP_LOST => Ending::Abandon,
            _ if monitor.timed_out.load(Ordering::Relaxed) => {
                Ending::Finish(Outcome::Failed(error(
                    "run-time-exceeded",
                    format!(
                        "the job ran longer than this server's maximum run time of {} s and was stopped",
                        inner.config.max_run_time.as_secs_f64()
                    ),
                )))
            }
            _ => Ending::Finish(Outcome::Failed(error(
                "stopped",
                "the run was stopped".into(),
            ))),
        },
        Ok(Err(RunFailure::Error(message))) => {
            Ending::Finish(Outcome::Failed(error("simulation-error", message)))
        }
        Err(_) => Ending::Finish(Outcome::Failed(error(
            "internal-error",
            "the simulator failed unexpectedly on this job".into(),
        ))),
    };
    end_run(inner, &id, attempt, ending);
}

/// Runs a job larger than this node's memory budget across the ranks its
/// launch command starts; fails it where this node has none (the job was
/// admitted under another configuration).
fn run_across(
    inner: &Inner,
    spec: &JobSpec,
    limits: TenantLimits,
    monitor: &JobMonitor<'_>,
) -> Result<JobResult, RunFailure> {
    let Some(launch) = &inner.config.ranks else {
        return Err(RunFailure::Error(format!(
            "the job needs {} bytes of state, more than this node's memory budget of {} bytes, \
             and this node has no launch command for ranks",
            spec.memory_bytes, inner.config.memory_budget
        )));
    };
    let job = RankJob {
        spec: spec.clone(),
        limits,
        max_listed_qubits: inner.config.max_listed_qubits,
    };
    let started = Instant::now();
    let result = run_across_ranks(
        launch,
        &job,
        spec.result_bytes,
        &|| monitor.must_stop(Instant::now()),
        &|fraction| monitor.publish(fraction, started.elapsed()),
    );
    tracing::info!(
        ranks = launch.ranks,
        seconds = started.elapsed().as_secs_f64(),
        ok = result.is_ok(),
        "a job ran across ranks"
    );
    result
}

/// Claims job `id` for a run, in memory at once (readers see `running`)
/// and committed in the store before the run starts, so that a run that
/// kills the process still counts as an attempt ([`MAX_ATTEMPTS`]). Not
/// durably: a claim lost in a power cut only means one more run, with the
/// stored seed. A claim is always written before the same job's end (one
/// writer, in order), so the conditional end still decides. A job not
/// stored yet needs no claim: it is inserted as it stands when it must be.
/// The attempt, or `None` if the job is not held.
fn claim(inner: &Arc<Inner>, id: &str) -> Option<u32> {
    let started_ms = now_ms();
    let Some(job) = inner.live_update(id, |j| {
        j.status = JobStatus::Running;
        j.attempt += 1;
        j.started_ms = Some(started_ms);
    }) else {
        tracing::error!(job = %id, "a dispatched job is not held in memory; it stays queued");
        inner.sched.finish(id);
        return None;
    };
    let attempt = job.attempt;
    if job.stored {
        let (tx, rx) = std::sync::mpsc::channel();
        inner.writer.write_at_once_then(
            WriteOp::Claim {
                id: id.to_owned(),
                now_ms: started_ms,
            },
            Box::new(move |written, _| {
                let _ = tx.send(written);
            }),
        );
        match rx.recv() {
            Ok(Ok(Written::Claimed(Some(a)))) if a == attempt => {}
            other => {
                tracing::warn!(job = %id, "the store did not record the claim as attempt {attempt}: {other:?}")
            }
        }
    }
    Some(attempt)
}

/// Records how attempt `attempt` of job `id` ended.
fn end_run(inner: &Arc<Inner>, id: &str, attempt: u32, ending: Ending) {
    let id = id.to_owned();
    // The state's memory is free now; the end is recorded by the writer
    // (durably, retried there), and only then published: a reader never
    // sees an end the store could still lose. The worker goes on to the
    // next job meanwhile.
    inner.sched.finish(&id);
    inner.publish_depth();
    inner.room.notify_one();
    if let Ending::Abandon = ending {
        tracing::warn!(job = %id, "this node lost its claim on the job (its lease ended); another node runs it");
        return inner.live_forget(&id);
    }
    let ended_ms = now_ms();
    let then_inner = inner.clone();
    let then_id = id.clone();
    // Under the live lock: a job not stored yet is inserted as it ends
    // (or, stopped by a shutdown, as queued again).
    let queued = inner.with_live(&id, |job| {
        let stored = std::mem::replace(&mut job.stored, true);
        match ending {
            Ending::Finish(outcome) => {
                job.ending = true;
                let op = if stored {
                    WriteOp::Finish {
                        id: id.clone(),
                        attempt,
                        outcome,
                        now_ms: ended_ms,
                    }
                } else {
                    let mut state = job.state();
                    ended(&mut state, outcome, ended_ms);
                    job.to_insert(state)
                };
                let then = move |written, op| recorded(&then_inner, &then_id, written, op);
                inner.writer.write_then(op, true, Box::new(then));
            }
            Ending::Requeue => {
                let op = if stored {
                    WriteOp::Requeue {
                        id: id.clone(),
                        attempt,
                    }
                } else {
                    let mut state = job.state();
                    state.status = JobStatus::Queued;
                    state.started_ms = None;
                    state.attempt = state.attempt.saturating_sub(1);
                    job.to_insert(state)
                };
                let then = move |written, _| requeued(&then_inner, &then_id, written);
                inner.writer.write_then(op, true, Box::new(then));
            }
            Ending::Abandon => {}
        }
    });
    if queued.is_none() {
        tracing::error!(job = %id, "a running job is not held in memory; its end is not recorded");
    }
}

/// Writes `outcome` into `state`.
fn ended(state: &mut JobState, outcome: Outcome, ended_ms: i64) {
    state.ended_ms = Some(ended_ms);
    match outcome {
        Outcome::Completed(r) => {
            state.status = JobStatus::Completed;
            state.result = Some(r);
        }
        Outcome::Failed(e) => {
            state.status = JobStatus::Failed;
            state.error = Some(e);
        }
        Outcome::Cancelled(e) => {
            state.status = JobStatus::Cancelled;
            state.error = Some(e);
        }
    }
}

/// A job's end reached the store (or not): published if it did.
fn recorded(inner: &Inner, id: &str, written: StoreResult<Written>, op: WriteOp) {
    let state = match (written, op) {
        (
            Ok(Written::Changed(true)),
            WriteOp::Finish {
                outcome, now_ms, ..
            },
        ) => {
            let mut state = JobState::queued();
            ended(&mut state, outcome, now_ms);
            state
        }
        (Ok(Written::Inserted(i)), WriteOp::Insert(job)) if matches!(*i, Inserted::Created(_)) => {
            job.state
        }
        (Err(e), _) => {
            tracing::error!(job = %id, "gave up recording the job's end ({e}); it will run again after a restart");
            return inner.live_forget(id);
        }
        // The store says this attempt no longer owns the job: whatever it
        // holds is the truth.
        _ => return inner.live_forget(id),
    };
    metrics::counter!("kettle_jobs_finished_total", "status" => state.status.as_str()).increment(1);
    inner.live_end(id, move |j| {
        j.status = state.status;
        j.ended_ms = state.ended_ms;
        j.result = state.result.map(Arc::new);
        j.error = state.error;
    });
}

/// A job stopped by a shutdown is queued again.
fn requeued(inner: &Inner, id: &str, written: StoreResult<Written>) {
    if let Err(e) = written {
        tracing::warn!(job = %id, "could not return the job to the queue: {e}; a restart does");
    }
    inner.live_update(id, |j| {
        j.status = JobStatus::Queued;
        j.started_ms = None;
        // Not counted, as in the store's requeue.
        j.attempt = j.attempt.saturating_sub(1);
    });
}
