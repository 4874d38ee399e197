//! The worker pool: dedicated OS threads (never async executor threads)
//! that take admitted jobs from the scheduler, claim them in the store, run
//! them under a monitor (cancellation, the run-time limit, shutdown), and
//! record the outcome with a conditional write.

use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use kettle_core::{Monitor, Progress};

use crate::execute::{RunFailure, run_job};
use crate::model::JobError;
use crate::scheduler::{Admitted, RUN, STOP_CANCEL, STOP_SHUTDOWN};
use crate::service::Inner;
use crate::store::Outcome;
use crate::time::now_ms;

/// Stops a run at the next gate when the job is cancelled, the server shuts
/// down, or the run-time limit passes.
struct JobMonitor<'a> {
    stop: &'a AtomicU8,
    deadline: Instant,
    timed_out: AtomicBool,
}

impl Monitor for JobMonitor<'_> {
    fn on_progress(&self, _: Progress) -> ControlFlow<()> {
        if self.stop.load(Ordering::Relaxed) != RUN {
            return ControlFlow::Break(());
        }
        if Instant::now() >= self.deadline {
            self.timed_out.store(true, Ordering::Relaxed);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// What to write when a run ends.
enum Ending {
    Finish(Outcome),
    Requeue,
}

/// A worker thread's body: runs jobs until the scheduler closes.
pub(crate) fn worker_loop(inner: Arc<Inner>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("a worker could not start its runtime: {e}");
            return;
        }
    };
    while let Some(admitted) = inner.sched.next() {
        run_admitted(&inner, &rt, &admitted);
        inner.sched.finish(&admitted.entry.id);
        inner.publish_depth();
        inner.notify_done(&admitted.entry.id);
    }
}

fn run_admitted(inner: &Inner, rt: &tokio::runtime::Runtime, admitted: &Admitted) {
    let entry = &admitted.entry;
    let attempt = match rt.block_on(inner.store.claim(&entry.id, now_ms())) {
        Ok(Some(a)) => a,
        // Cancelled (or claimed elsewhere) since it was queued.
        Ok(None) => return,
        Err(e) => {
            tracing::error!(job = %entry.id, "could not claim the job: {e}; it stays queued until restart");
            return;
        }
    };
    inner.publish_depth();
    let spec = &entry.spec;
    let limits = inner.config.limits_for(&entry.tenant).clone();
    let monitor = JobMonitor {
        stop: &admitted.stop,
        deadline: Instant::now() + inner.config.max_run_time,
        timed_out: AtomicBool::new(false),
    };
    let started = Instant::now();
    let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
        run_job(&inner.sim, spec, &limits, &monitor)
    }));
    let seconds = started.elapsed().as_secs_f64();
    metrics::histogram!("kettle_simulation_seconds").record(seconds);
    let error = |code: &str, message: String| JobError {
        code: code.to_owned(),
        message,
    };
    let ending = match run {
        Ok(Ok(result)) => Ending::Finish(Outcome::Completed(result)),
        Ok(Err(RunFailure::Stopped)) => match admitted.stop.load(Ordering::Relaxed) {
            STOP_CANCEL => Ending::Finish(Outcome::Cancelled(error(
                "cancelled",
                "cancelled while running".into(),
            ))),
            STOP_SHUTDOWN => Ending::Requeue,
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
    // A failed write is retried: the result is in hand, and losing it to a
    // momentary busy database would re-run the job after a restart.
    for wait in [0u64, 50, 200, 1000, 5000] {
        std::thread::sleep(Duration::from_millis(wait));
        let written = match &ending {
            Ending::Finish(outcome) => {
                let status = match outcome {
                    Outcome::Completed(_) => "completed",
                    Outcome::Failed(_) => "failed",
                    Outcome::Cancelled(_) => "cancelled",
                };
                let done = rt.block_on(inner.store.finish(&entry.id, attempt, outcome, now_ms()));
                if matches!(done, Ok(true)) {
                    metrics::counter!("kettle_jobs_finished_total", "status" => status)
                        .increment(1);
                }
                done
            }
            Ending::Requeue => rt.block_on(inner.store.requeue(&entry.id, attempt)),
        };
        match written {
            Ok(_) => return,
            Err(e) => tracing::warn!(job = %entry.id, "could not record the job's end: {e}"),
        }
    }
    tracing::error!(job = %entry.id, "gave up recording the job's end; it will run again after a restart");
}
