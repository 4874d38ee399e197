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

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::error::ServiceError;
use crate::store::{JobStore, StoreResult, WriteOp, Written};
use crate::time::now_ms;

/// Most writes in one transaction.
const MAX_BATCH: usize = 512;
/// How long writes that need no fsync wait for one that does.
const LINGER: Duration = Duration::from_millis(5);
/// Most jobs one purge step deletes.
const PURGE_CHUNK: u32 = 1000;
/// Waits before each try of a write whose batch failed, alone.
const RETRY_WAITS_MS: [u64; 4] = [0, 50, 500, 2000];

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
}

impl Writer {
    /// Starts the writer thread on `store`.
    pub(crate) fn start(
        store: Arc<dyn JobStore>,
        purge: PurgePolicy,
    ) -> std::io::Result<(Writer, JoinHandle<()>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let handle = std::thread::Builder::new()
            .name("kettle-writer".into())
            .spawn(move || rt.block_on(run(store, rx, purge)))?;
        Ok((Writer { tx }, handle))
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

async fn run(
    store: Arc<dyn JobStore>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    purge: PurgePolicy,
) {
    let interval = purge.interval.max(Duration::from_millis(10));
    let mut next_purge = Instant::now() + interval;
    loop {
        let first = tokio::select! {
            biased;
            p = rx.recv() => match p {
                Some(p) => p,
                None => return,
            },
            () = tokio::time::sleep_until(next_purge) => {
                let more = purge_step(store.as_ref(), purge.retention).await;
                next_purge = Instant::now() + if more { Duration::ZERO } else { interval };
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
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
            match tokio::time::timeout_at(linger_until, rx.recv()).await {
                Ok(Some(p)) => batch.push(p),
                Ok(None) | Err(_) => break,
            }
        }
        commit(store.as_ref(), batch).await;
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

async fn commit(store: &dyn JobStore, batch: Vec<Pending>) {
    let durable = batch.iter().any(|p| p.durable && p.op.is_some());
    let mut ops = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    for p in batch {
        replies.push((p.op.is_some(), p.reply));
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
            let mut results = results.into_iter();
            let mut ops = ops.into_iter();
            for (has_op, reply) in replies {
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
            // One failing write must not sink the others: each alone, with
            // a few retries (a momentarily busy database).
            let mut ops = ops.into_iter();
            for (has_op, reply) in replies {
                if !has_op {
                    answer(reply, Ok(Written::Changed(false)), None);
                    continue;
                }
                let Some(op) = ops.next() else { break };
                let mut last = Err(stopped());
                for wait in RETRY_WAITS_MS {
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    last = store
                        .write_batch(std::slice::from_ref(&op), true)
                        .await
                        .and_then(|mut w| {
                            w.pop().ok_or_else(|| {
                                ServiceError::Store("a write answered nothing".into())
                            })
                        });
                    if last.is_ok() {
                        break;
                    }
                }
                answer(reply, last, Some(op));
            }
        }
    }
}
