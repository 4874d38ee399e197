//! The single writer: one thread that owns every job write to the store.
//!
//! Callers (submissions, workers, cancellations) queue a [`WriteOp`]; the
//! writer takes everything pending at once and hands it to
//! [`JobStore::write_batch`] as one transaction, so under concurrency one
//! commit, one fsync, serves many jobs (group commit). A caller is answered
//! only after the commit of its batch: a submission that waits is on disk
//! when it returns. A batch is committed durably when any write in it asks
//! for that; claims alone do not (a claim lost in a power cut only means
//! the job runs again, with its stored seed), and the next durable commit
//! makes them durable too. Such writes also wait up to a few milliseconds
//! for a durable one to share its transaction.
//!
//! The writer also deletes finished jobs past the retention time, every
//! `purge_interval`, in bounded chunks between batches.
//!
//! A failed write of an accepted job (its claim, end, requeue or
//! cancellation) is retried alone, with back-off, until it succeeds: a full
//! disk or an I/O error that passes leaves no job `running` or `queued` for
//! ever, and the writes behind it wait in order. Meanwhile the writer says
//! it is failing ([`Writer::healthy`], which `/readyz` reads) and turns
//! down inserts of new submissions at once instead of making them wait. A
//! write the store will never accept ([`ServiceError::is_transient`] is
//! false) is not retried, except a job's end with a result too large to
//! store, which is retried as the job's failure.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::ServiceError;
use crate::model::{JobError, JobStatus};
use crate::store::{JobStore, Outcome, StoreResult, WriteOp, Written};
use crate::time::now_ms;

/// Most writes in one transaction.
const MAX_BATCH: usize = 512;
/// How long writes that need no fsync wait for one that does.
const LINGER: Duration = Duration::from_millis(5);
/// Most jobs one purge step deletes.
const PURGE_CHUNK: u32 = 1000;
/// The first wait before a failed write is tried again; it doubles up to
/// [`RETRY_MAX_WAIT`].
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(50);
/// The longest wait between two tries of a failing write: how late, at
/// most, a write goes through after the store can write again.
const RETRY_MAX_WAIT: Duration = Duration::from_secs(1);

/// What runs on the writer thread once a write is committed (or has
/// failed): its outcome and the write itself, handed back.
pub(crate) type Then = Box<dyn FnOnce(StoreResult<Written>, WriteOp) + Send>;

enum Reply {
    Send(oneshot::Sender<StoreResult<Written>>),
    Then(Then),
}

struct Pending {
    /// `None`: a barrier, answered once everything before it is committed.
    op: Option<WriteOp>,
    durable: bool,
    /// Someone waits for this commit: the batch does not linger.
    at_once: bool,
    reply: Reply,
}

/// When finished jobs are deleted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PurgePolicy {
    pub(crate) retention: Duration,
    pub(crate) interval: Duration,
}

/// The handle to the writer thread; the thread ends when every handle is
/// dropped, after committing what was queued.
#[derive(Debug)]
pub(crate) struct Writer {
    tx: mpsc::UnboundedSender<Pending>,
    /// Set while a failed write is being retried.
    failing: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer thread on `store`.
    pub(crate) fn start(
        store: Arc<dyn JobStore>,
        purge: PurgePolicy,
    ) -> std::io::Result<(Writer, JoinHandle<()>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        // With I/O: a store may open network connections from here.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let failing = Arc::new(AtomicBool::new(false));
        let queue = Queue {
            rx,
            backlog: VecDeque::new(),
            failing: failing.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("kettle-writer".into())
            .spawn(move || rt.block_on(run(store, queue, purge)))?;
        Ok((Writer { tx, failing }, handle))
    }

    /// Whether the writer's last write went through: false while it
    /// retries one the store did not take.
    pub(crate) fn healthy(&self) -> bool {
        !self.failing.load(Ordering::Relaxed)
    }

    fn push(&self, op: Option<WriteOp>, durable: bool, reply: Reply) -> Result<(), Reply> {
        self.tx
            .send(Pending {
                op,
                durable,
                at_once: false,
                reply,
            })
            .map_err(|e| e.0.reply)
    }

    /// Queues `op` now, in the order of this call (under a caller's lock,
    /// say); the future resolves once its batch is committed.
    pub(crate) fn write(
        &self,
        op: WriteOp,
        durable: bool,
    ) -> impl Future<Output = StoreResult<Written>> + use<> {
        let (tx, rx) = oneshot::channel();
        let queued = self.push(Some(op), durable, Reply::Send(tx)).is_ok();
        async move {
            if !queued {
                return Err(stopped());
            }
            rx.await.unwrap_or_else(|_| Err(stopped()))
        }
    }

    /// Queues `op`; `then` runs on the writer thread after the commit.
    pub(crate) fn write_then(&self, op: WriteOp, durable: bool, then: Then) {
        if self.push(Some(op), durable, Reply::Then(then)).is_err() {
            // The writer stops only once no handle is left, so this cannot
            // happen through a handle; report it all the same.
            tracing::error!("the store writer has stopped; a write was dropped");
        }
    }

    /// Queues `op`, not durably, to be committed without lingering (a
    /// caller waits for it); `then` runs on the writer thread after the
    /// commit.
    pub(crate) fn write_at_once_then(&self, op: WriteOp, then: Then) {
        let pending = Pending {
            op: Some(op),
            durable: false,
            at_once: true,
            reply: Reply::Then(then),
        };
        if self.tx.send(pending).is_err() {
            tracing::error!("the store writer has stopped; a write was dropped");
        }
    }

    /// Resolves once every write queued before it is committed.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.push(None, false, Reply::Send(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn stopped() -> ServiceError {
    ServiceError::Store("the store writer has stopped".into())
}

fn answer(reply: Reply, result: StoreResult<Written>, op: Option<WriteOp>) {
    match reply {
        Reply::Send(tx) => {
            let _ = tx.send(result);
        }
        Reply::Then(then) => match op {
            Some(op) => then(result, op),
            None => tracing::error!("a write callback lost its write"),
        },
    }
}

/// What the writer has to do: the channel, and the writes that arrived
/// while a failing one was retried (in their order).
struct Queue {
    rx: mpsc::UnboundedReceiver<Pending>,
    backlog: VecDeque<Pending>,
    failing: Arc<AtomicBool>,
}

impl Queue {
    fn try_next(&mut self) -> Option<Pending> {
        self.backlog.pop_front().or_else(|| self.rx.try_recv().ok())
    }

    /// Waits `wait` before a failed write is tried again. Inserts that
    /// arrive meanwhile are turned down at once (a new submission gets
    /// `503` rather than waiting for the disk); other writes wait their
    /// turn. Whether anybody can still send writes.
    async fn pause(&mut self, wait: Duration, error: &ServiceError) -> bool {
        let until = Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(until, self.rx.recv()).await {
                Ok(Some(p)) => defer(&mut self.backlog, p, error),
                Ok(None) => {
                    tokio::time::sleep_until(until).await;
                    return false;
                }
                Err(_) => return true,
            }
        }
    }
}

fn cannot_write_now(error: &ServiceError) -> ServiceError {
    ServiceError::Store(format!(
        "the store cannot write now ({error}); earlier writes are being retried"
    ))
}

async fn run(store: Arc<dyn JobStore>, mut queue: Queue, purge: PurgePolicy) {
    let interval = purge.interval.max(Duration::from_millis(10));
    let mut next_purge = Instant::now() + interval;
    loop {
        let first = match queue.backlog.pop_front() {
            Some(p) => p,
            None => tokio::select! {
                biased;
                p = queue.rx.recv() => match p {
                    Some(p) => p,
                    None => return,
                },
                () = tokio::time::sleep_until(next_purge) => {
                    let more = purge_step(store.as_ref(), purge.retention).await;
                    next_purge = Instant::now() + if more { Duration::ZERO } else { interval };
                    continue;
                }
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_next() {
                Some(p) => batch.push(p),
                None => break,
            }
        }
        // Writes that need no fsync (claims) linger a little for one that
        // does (typically the same job's end), so that both share its
        // transaction instead of costing one of their own.
        let linger_until = Instant::now() + LINGER;
        while batch.len() < MAX_BATCH
            && !batch
                .iter()
                .any(|p| p.durable || p.at_once || p.op.is_none())
        {
            match tokio::time::timeout_at(linger_until, queue.rx.recv()).await {
                Ok(Some(p)) => batch.push(p),
                Ok(None) | Err(_) => break,
            }
        }
        commit(store.as_ref(), batch, &mut queue).await;
    }
}

/// Deletes one chunk of expired jobs; whether there may be more.
async fn purge_step(store: &dyn JobStore, retention: Duration) -> bool {
    let keep = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let op = WriteOp::Purge {
        before_ms: now_ms().saturating_sub(keep),
        limit: PURGE_CHUNK,
    };
    match store.write_batch(std::slice::from_ref(&op), false).await {
        Ok(w) => match w.first() {
            Some(Written::Deleted(n)) => {
                if *n > 0 {
                    tracing::info!("deleted {n} jobs past the retention time");
                }
                *n >= u64::from(PURGE_CHUNK)
            }
            _ => false,
        },
        Err(e) => {
            tracing::warn!("could not delete expired jobs: {e}");
            false
        }
    }
}

async fn commit(store: &dyn JobStore, batch: Vec<Pending>, queue: &mut Queue) {
    let durable = batch.iter().any(|p| p.durable && p.op.is_some());
    let mut ops = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    for p in batch {
        replies.push((p.op.is_some(), p.durable, p.at_once, p.reply));
        if let Some(op) = p.op {
            ops.push(op);
        }
    }
    let results = if ops.is_empty() {
        Ok(Vec::new())
    } else {
        store.write_batch(&ops, durable).await
    };
    match results {
        Ok(results) if results.len() == ops.len() => {
            queue.failing.store(false, Ordering::Relaxed);
            let mut results = results.into_iter();
            let mut ops = ops.into_iter();
            for (has_op, _, _, reply) in replies {
                if has_op {
                    let (Some(r), Some(op)) = (results.next(), ops.next()) else {
                        break;
                    };
                    answer(reply, Ok(r), Some(op));
                } else {
                    answer(reply, Ok(Written::Changed(false)), None);
                }
            }
        }
        other => {
            if let Err(e) = other {
                tracing::warn!(
                    "a batch of {} store writes failed: {e}; retrying one by one",
                    ops.len()
                );
            }
            // One failing write must not sink the others: each alone.
            let mut ops = ops.into_iter();
            let mut batch: VecDeque<Pending> = replies
                .into_iter()
                .map(|(has_op, durable, at_once, reply)| Pending {
                    op: if has_op { ops.next() } else { None },
                    durable,
                    at_once,
                    reply,
                })
                .collect();
            while let Some(p) = batch.pop_front() {
                let Some(op) = p.op else {
                    answer(p.reply, Ok(Written::Changed(false)), None);
                    continue;
                };
                let (result, op) = write_until_done(store, op, &mut batch, queue).await;
                answer(p.reply, result, Some(op));
            }
        }
    }
}

/// Writes `op` alone: an insert once, any other write until the store
/// takes it (or nobody is left to send writes). The outcome, and the write
/// as it was made (a job's end may have lost its result).
async fn write_until_done(
    store: &dyn JobStore,
    mut op: WriteOp,
    rest: &mut VecDeque<Pending>,
    queue: &mut Queue,
) -> (StoreResult<Written>, WriteOp) {
    let mut wait = RETRY_FIRST_WAIT;
    let mut tries = 0u32;
    let started = Instant::now();
    loop {
        tries += 1;
        let result = store
            .write_batch(std::slice::from_ref(&op), true)
            .await
            .and_then(|mut w| {
                w.pop()
                    .ok_or_else(|| ServiceError::Store("a write answered nothing".into()))
            });
        let error = match result {
            Ok(w) => {
                if tries > 1 {
                    tracing::info!(
                        "a store write went through after {tries} tries ({:.1} s)",
                        started.elapsed().as_secs_f64()
                    );
                }
                queue.failing.store(false, Ordering::Relaxed);
                return (Ok(w), op);
            }
            Err(e) => e,
        };
        if !error.is_transient() {
            if let Some(failed) = without_result(&op, &error) {
                tracing::error!("a job's result cannot be stored ({error}); the job fails instead");
                op = failed;
                continue;
            }
            tracing::error!("the store refused a write for good: {error}");
            return (Err(error), op);
        }
        // A new submission is turned down rather than kept waiting.
        if matches!(op, WriteOp::Insert(_)) {
            return (Err(error), op);
        }
        if !queue.failing.swap(true, Ordering::Relaxed) || tries.is_multiple_of(30) {
            tracing::warn!("a store write failed ({error}); retrying until it succeeds");
        }
        // The submissions behind it in this batch are not kept waiting.
        let waiting = std::mem::take(rest);
        for p in waiting {
            defer(rest, p, &error);
        }
        if !queue.pause(wait, &error).await {
            tracing::error!(
                "the service stopped while a store write was failing ({error}); a restart recovers the job"
            );
            return (Err(error), op);
        }
        wait = (wait * 2).min(RETRY_MAX_WAIT);
    }
}

/// A write that arrives (or waits in the batch) while a failing one is
/// retried: an insert of a new submission is turned down at once (`503`
/// rather than waiting for the disk); any other write joins `queue`, to
/// follow in its turn.
fn defer(queue: &mut VecDeque<Pending>, p: Pending, error: &ServiceError) {
    if matches!(p.op, Some(WriteOp::Insert(_))) {
        answer(p.reply, Err(cannot_write_now(error)), p.op);
    } else {
        queue.push_back(p);
    }
}

/// A job's end without its result, as the job's failure: what is written
/// when the result itself can never be stored. `None` for other writes.
fn without_result(op: &WriteOp, error: &ServiceError) -> Option<WriteOp> {
    let failure = || JobError {
        code: "result-not-stored".into(),
        message: format!("the job completed, but its result could not be stored: {error}"),
    };
    match op {
        WriteOp::Finish {
            id,
            attempt,
            outcome: Outcome::Completed(_),
            now_ms,
        } => Some(WriteOp::Finish {
            id: id.clone(),
            attempt: *attempt,
            outcome: Outcome::Failed(failure()),
            now_ms: *now_ms,
        }),
        WriteOp::Insert(job) if job.state.result.is_some() => {
            let mut job = job.clone();
            job.state.status = JobStatus::Failed;
            job.state.result = None;
            job.state.error = Some(failure());
            Some(WriteOp::Insert(job))
        }
        _ => None,
    }
}
