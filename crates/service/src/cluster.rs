//! A node's part in a shared store ([`JobStore::shared`]): the database is
//! the queue, and this node's memory holds only the jobs it has claimed.
//!
//! One thread, `kettle-cluster`, with a runtime of its own (the caller's
//! may be an HTTP worker's, which stops before the service does):
//! - claims work while the node has room: a free regular worker, or,
//!   while its jobs are short, as many as it expects to start within half
//!   a second ([`Scheduler::room`]), several in one statement, with the
//!   memory the budget has left as the claim's filter, so a big node takes
//!   the jobs a small one cannot. A node that holds nothing and has a
//!   launch command for ranks ([`ServiceConfig::ranks`]) claims one job
//!   first with the ranks' memory as the filter, so the jobs larger than
//!   any node are taken too. While every regular worker is busy and
//!   nothing waits here, the idle fair-share worker claims a job of a
//!   tenant with none running anywhere, as on a single node. It looks when
//!   the store says a job was queued, when a local run ends (unless its
//!   last claim found the queue empty: such a claim costs the store a
//!   transaction), and every `claim_poll` (notifications are lost while a
//!   connection is down, and a dead node's expired lease sends none);
//! - returns to the store's queue a job claimed here that has waited a
//!   second without starting (claimed ahead behind a run that turned out
//!   long), for a node with room;
//! - renews the leases of the jobs it holds every third of the lease; a
//!   job whose lease was lost (another node took it after this one could
//!   not reach the database for a whole lease) is stopped and writes
//!   nothing, since its end would be refused anyway;
//! - turns another node's cancellation of a job running here into a stop
//!   at the next gate, as soon as the notification arrives (the heartbeat
//!   reads `cancel_requested` too, as the backstop);
//! - tells the requests waiting here for a job another node ran that it
//!   ended (they poll too, as the backstop).
//!
//! [`JobStore::shared`]: crate::store::JobStore::shared
//! [`Scheduler::room`]: crate::scheduler::Scheduler::room
//! [`ServiceConfig::ranks`]: crate::ServiceConfig::ranks

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::scheduler::{CLAIM_AHEAD_WAIT, STOP_CANCEL, STOP_LOST};
use crate::service::Inner;
use crate::store::{Capacity, JobRow, StoreEvent, WriteOp};
use crate::time::now_ms;

/// Starts the node's thread; it ends when `stop` is set or the service is
/// dropped.
pub(crate) fn start(
    inner: &Arc<Inner>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let events = inner.store.events();
    let weak = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name("kettle-cluster".into())
        .spawn(move || rt.block_on(run(weak, events, stop)))
}

async fn run(
    weak: Weak<Inner>,
    mut events: broadcast::Receiver<StoreEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let Some((lease, poll, room)) = weak.upgrade().map(|i| {
        (
            i.config.lease.max(Duration::from_millis(300)),
            i.config.claim_poll.max(Duration::from_millis(10)),
            i.room.clone(),
        )
    }) else {
        return;
    };
    let beat = lease / 3;
    let mut next_beat = Instant::now() + beat;
    let mut next_claim = Instant::now();
    let mut next_release = Instant::now() + CLAIM_AHEAD_WAIT / 2;
    let mut want_claim = true;
    let mut claims = Claims::default();
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let now = Instant::now();
        if want_claim || now >= next_claim {
            want_claim = false;
            next_claim = now + poll;
            claim_while_room(&inner, lease, &mut claims).await;
            if let Some(at) = claims.fair_share_at {
                next_claim = next_claim.min(at);
            }
        }
        if now >= next_beat {
            next_beat = now + beat;
            renew(&inner, lease).await;
        }
        if now >= next_release {
            next_release = now + CLAIM_AHEAD_WAIT / 2;
            release_overdue(&inner);
        }
        drop(inner);
        tokio::select! {
            event = events.recv() => match event {
                Ok(StoreEvent::Queued) => {
                    want_claim = true;
                    if let Some(inner) = weak.upgrade() {
                        inner.queue_seen_empty.store(false, Ordering::Relaxed);
                    }
                }
                Ok(StoreEvent::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    want_claim = true;
                    if let Some(inner) = weak.upgrade() {
                        inner.queue_seen_empty.store(false, Ordering::Relaxed);
                        inner.jobs_may_have_ended();
                    }
                }
                Ok(StoreEvent::CancelRequested(id)) => {
                    if let Some(inner) = weak.upgrade() {
                        cancel_here(&inner, &id);
                    }
                }
                Ok(StoreEvent::Ended(id)) => {
                    if let Some(inner) = weak.upgrade() {
                        inner.job_ended(&id);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    tokio::time::sleep_until(next_claim.min(next_beat).min(next_release)).await;
                }
            },
            // Room here, for the queue's jobs if it has any: a claim that
            // finds the queue empty costs the store a transaction.
            () = room.notified() => {
                want_claim = weak
                    .upgrade()
                    .is_some_and(|i| !i.queue_seen_empty.load(Ordering::Relaxed));
            }
            () = tokio::time::sleep_until(next_claim.min(next_beat).min(next_release)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How the node's claims have gone lately.
#[derive(Default)]
struct Claims {
    /// The store failed the last claim (a warning was logged).
    failing: bool,
    /// When a fair-share claim last found nothing.
    fair_share_found_nothing: Option<Instant>,
    /// A fair-share claim was put off: when to make it.
    fair_share_at: Option<Instant>,
    /// When a claim for the ranks last took a job that only a bigger node
    /// can run (it went back to the queue).
    across_gave_back: Option<Instant>,
}

/// How long after a claim for the ranks took a job that it gave back (one
/// larger than this node that cannot be split, left to a bigger node) the
/// next such claim waits: long enough for that node to claim it.
const ACROSS_BACKOFF: Duration = Duration::from_secs(5);

/// How long after a fair-share claim that found nothing the next one
/// waits. A full node is woken by every job queued anywhere; most of those
/// jobs are of tenants that run something already, and a query per
/// wake-up would cost the store more than these milliseconds are worth to
/// the job the fair-share worker is for.
const FAIR_SHARE_BACKOFF: Duration = Duration::from_millis(50);

/// Most jobs one claim takes (a node with room for more claims again).
const MOST_AT_ONCE: usize = 32;

/// Claims jobs until the node is full or the queue has none that fits.
async fn claim_while_room(inner: &Arc<Inner>, lease: Duration, claims: &mut Claims) {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    claims.fair_share_at = None;
    while inner.accepts_claims() {
        let fair_share_due = claims
            .fair_share_found_nothing
            .is_none_or(|at| at.elapsed() >= FAIR_SHARE_BACKOFF);
        let across = (inner.config.ranks.as_ref())
            .filter(|_| (claims.across_gave_back).is_none_or(|at| at.elapsed() >= ACROSS_BACKOFF))
            .map_or(0, |r| r.memory_budget());
        let (capacity, jobs) = match (inner.sched.room(), inner.sched.fair_share_room()) {
            // Nothing here: room for one job across the ranks too.
            (Some(room), _)
                if room.memory_bytes >= inner.sched.budget() && across > room.memory_bytes =>
            {
                (
                    Capacity {
                        memory_bytes: across,
                        idle_tenants_only: false,
                    },
                    1,
                )
            }
            (Some(room), _) => (
                Capacity {
                    memory_bytes: room.memory_bytes,
                    idle_tenants_only: false,
                },
                room.jobs.min(MOST_AT_ONCE),
            ),
            (None, Some(memory_bytes)) if fair_share_due => (
                Capacity {
                    memory_bytes,
                    idle_tenants_only: true,
                },
                1,
            ),
            (None, Some(_)) => {
                claims.fair_share_at = claims
                    .fair_share_found_nothing
                    .map(|at| at + FAIR_SHARE_BACKOFF);
                return;
            }
            (None, None) => return,
        };
        match inner
            .store
            .claim_several(&capacity, jobs, now_ms(), lease_ms)
            .await
        {
            Ok(rows) if !rows.is_empty() => {
                claims.failing = false;
                if capacity.idle_tenants_only {
                    claims.fair_share_found_nothing = None;
                }
                let all = rows.len() == jobs;
                for row in rows {
                    if !runs_here(inner, &row) {
                        claims.across_gave_back = Some(Instant::now());
                        drop(inner.writer.write(
                            WriteOp::Requeue {
                                id: row.id.clone(),
                                attempt: row.attempt,
                            },
                            true,
                        ));
                        continue;
                    }
                    tracing::debug!(job = %row.id, attempt = row.attempt, "claimed");
                    inner.admit(row, None, false);
                }
                inner.publish_depth();
                if !all {
                    // Fewer than asked for: the queue holds no more that
                    // fit (events that arrive from now on say otherwise).
                    inner.queue_seen_empty.store(true, Ordering::Relaxed);
                    return;
                }
            }
            Ok(_) => {
                claims.failing = false;
                if capacity.idle_tenants_only {
                    claims.fair_share_found_nothing = Some(Instant::now());
                } else {
                    // Events that arrive from now on say otherwise.
                    inner.queue_seen_empty.store(true, Ordering::Relaxed);
                }
                return;
            }
            Err(e) => {
                // Once per outage, not once per poll.
                if !std::mem::replace(&mut claims.failing, true) {
                    tracing::warn!("cannot claim jobs from the store: {e}; trying again");
                }
                return;
            }
        }
    }
}

/// Whether this node can run `row`: within its memory budget, or split
/// over its ranks. A claim for the ranks may take a job larger than this
/// node that cannot be split (noise, say), admitted for a bigger node.
fn runs_here(inner: &Inner, row: &JobRow) -> bool {
    row.spec.memory_bytes <= inner.sched.budget()
        || crate::across::why_not_split(&row.spec, inner.config.max_listed_qubits).is_none()
}

/// Returns to the store's queue the jobs claimed here that have waited
/// too long to start (a job claimed ahead behind one that turned out
/// long): another node may have room for them.
fn release_overdue(inner: &Arc<Inner>) {
    let overdue = inner.sched.overdue_claims(CLAIM_AHEAD_WAIT);
    if overdue.is_empty() {
        return;
    }
    tracing::debug!(
        jobs = overdue.len(),
        "returned to the queue: they waited here too long"
    );
    inner.give_back(overdue);
    inner.publish_depth();
}

/// Renews the leases of every job this node holds.
async fn renew(inner: &Arc<Inner>, lease: Duration) {
    let held = inner.claimed_jobs();
    if held.is_empty() {
        return;
    }
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let states = match inner.store.renew_leases(&held, now_ms(), lease_ms).await {
        Ok(states) => states,
        Err(e) => {
            // The jobs keep running: if the database comes back before
            // another node takes them, the next renewal holds them again;
            // if not, their ends are refused and this node lets them go.
            tracing::warn!("cannot renew this node's leases: {e}");
            return;
        }
    };
    for ((id, _), state) in held.iter().zip(states) {
        match state {
            Some(true) => cancel_here(inner, id),
            Some(false) => {}
            None => {
                // Stopped at its next gate if it runs; let go if it waits
                // here; if it is ending, its end's write decides.
                if !inner.sched.stop_running(id, STOP_LOST) && inner.sched.remove_queued(id) {
                    inner.live_forget(id);
                }
            }
        }
    }
}

/// Another node asked to cancel job `id`: stopped here if it runs here.
fn cancel_here(inner: &Inner, id: &str) {
    if inner
        .live_update(id, |j| j.cancel_requested = true)
        .is_some()
    {
        inner.sched.stop_running(id, STOP_CANCEL);
    }
}
