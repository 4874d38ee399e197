//! The in-memory dispatch view of the queue: which queued job starts next,
//! and whether its state fits the memory left.
//!
//! Order: round-robin over tenants that have queued work (so one tenant's
//! flood cannot starve another), then priority within a tenant, then FIFO.
//! Admission: a job starts only when its state fits what the running jobs
//! leave of the budget, so the running total never exceeds it; a smaller
//! job of another tenant may start past one that does not fit, until that
//! one has waited `reserve_after`, after which nothing else starts until it
//! fits (no starvation of large jobs). A job larger than the whole budget
//! (one that runs across MPI ranks) counts as the whole budget.
//!
//! Workers: `workers` regular worker threads take any job in that order,
//! so one tenant alone uses every one of them. One more, the fair-share
//! worker, starts a job only while every regular worker is busy, and only
//! a job of a tenant with none running: when one tenant's long jobs hold
//! every regular worker, another tenant's job starts at once instead of
//! waiting for one of them to end (up to the run-time limit, an hour by
//! default). Work-conserving either way: nothing waits while a worker it
//! may use is idle. The store stays the truth: this view
//! is rebuilt from it at start, and a job that was cancelled in the store
//! meanwhile is simply not claimed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kettle_ir::Circuit;

use crate::model::JobSpec;

/// No stop requested.
pub(crate) const RUN: u8 = 0;
/// The client cancelled the job.
pub(crate) const STOP_CANCEL: u8 = 1;
/// The server is shutting down: the job returns to the queue.
pub(crate) const STOP_SHUTDOWN: u8 = 2;
/// On a shared store, this node's claim on the job is gone (its lease
/// ended and another node took the job): the run stops and writes nothing.
pub(crate) const STOP_LOST: u8 = 3;

/// A queued job as the scheduler sees it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) id: String,
    pub(crate) tenant: String,
    /// Arrival order: FIFO among equals.
    pub(crate) seq: i64,
    pub(crate) spec: Arc<JobSpec>,
    /// The executions' circuits, when the submission kept them.
    pub(crate) circuits: Option<Arc<[Circuit]>>,
    /// On a shared store, the attempt this node claimed the job under (the
    /// claim is in the store already); `None` for a job the worker claims.
    pub(crate) claimed: Option<u32>,
}

impl Entry {
    fn key(&self) -> QueueKey {
        (Reverse(self.spec.priority), self.seq)
    }
    /// The bytes of this node's budget the job holds while it runs: its
    /// state, or the whole budget for a job larger than it, which runs
    /// across ranks (started from this node, perhaps on this machine) and
    /// so waits until nothing else runs here.
    fn memory(&self, budget: u64) -> u64 {
        self.spec.memory_bytes.min(budget)
    }
}

/// How soon a node on a shared store expects to start the jobs it claims
/// ahead of its free workers ([`Scheduler::room`]).
const HOLD: Duration = Duration::from_millis(500);
/// Most jobs a node holds claimed ahead, per regular worker.
const MAX_AHEAD_PER_WORKER: usize = 64;
/// How long a job a node claimed may wait there to start before it goes
/// back to the store's queue ([`Scheduler::overdue_claims`]).
pub(crate) const CLAIM_AHEAD_WAIT: Duration = Duration::from_secs(1);

/// What a node on a shared store may claim now ([`Scheduler::room`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Room {
    /// How many jobs.
    pub(crate) jobs: usize,
    /// The bytes of state they may hold together.
    pub(crate) memory_bytes: u64,
}

/// A job a worker may start: its entry and its stop flag.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) entry: Arc<Entry>,
    pub(crate) stop: Arc<AtomicU8>,
}

/// Order within a tenant's queue: higher priority first, then FIFO.
type QueueKey = (Reverse<i32>, i64);

#[derive(Debug)]
struct Running {
    tenant: String,
    memory: u64,
    stop: Arc<AtomicU8>,
    /// Started by the fair-share worker.
    fair_share: bool,
    started: Instant,
}

/// Which kind of worker asks for a job (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WorkerKind {
    /// One of the `workers` threads: takes any job.
    Regular,
    /// The extra thread: only while every regular worker is busy, only a
    /// job of a tenant with none running.
    FairShare,
}

#[derive(Debug, Default)]
struct State {
    /// Each tenant's queued jobs in (priority, FIFO) order.
    queues: HashMap<String, BTreeMap<QueueKey, Arc<Entry>>>,
    /// Tenants with queued jobs, in turn order.
    ring: VecDeque<String>,
    /// Queued job id → (tenant, key, when it was queued).
    index: HashMap<String, (String, QueueKey, Instant)>,
    running: HashMap<String, Running>,
    /// Per tenant: queued + running + reserved (being inserted).
    active: HashMap<String, usize>,
    /// Bytes of state held by running jobs.
    used: u64,
    /// A moving average of how long this node's regular runs take, in
    /// seconds (`None` before the first ends).
    mean_run: Option<f64>,
    /// The job that first failed to fit, and since when.
    blocked: Option<(String, Instant)>,
    /// No more dispatch: workers exit.
    closed: bool,
}

/// The scheduler: shared by the submit path and the worker threads.
#[derive(Debug)]
pub(crate) struct Scheduler {
    state: Mutex<State>,
    wake: Condvar,
    budget: u64,
    reserve_after: Duration,
    /// Regular worker threads.
    workers: usize,
}

impl State {
    fn dec_active(&mut self, tenant: &str) {
        if let Some(n) = self.active.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.active.remove(tenant);
            }
        }
    }

    fn remove_queued(&mut self, id: &str) -> Option<Arc<Entry>> {
        let (tenant, key, _) = self.index.remove(id)?;
        let queue = self.queues.get_mut(&tenant)?;
        let entry = queue.remove(&key);
        if queue.is_empty() {
            self.queues.remove(&tenant);
            self.ring.retain(|t| *t != tenant);
        }
        entry
    }

    fn head(&self, tenant: &str) -> Option<&Arc<Entry>> {
        self.queues.get(tenant).and_then(|q| q.values().next())
    }
}

impl Scheduler {
    /// A scheduler for `workers` regular workers (and the fair-share one).
    pub(crate) fn new(budget: u64, reserve_after: Duration, workers: usize) -> Scheduler {
        Scheduler {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            budget,
            reserve_after,
            workers: workers.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every
        // update is a few map operations); keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more active job for `tenant` if it has fewer than `max`;
    /// the caller then pushes the job or calls [`unreserve`](Self::unreserve).
    pub(crate) fn try_reserve(&self, tenant: &str, max: usize) -> Result<(), usize> {
        let mut s = self.lock();
        let n = s.active.entry(tenant.to_owned()).or_insert(0);
        if *n >= max {
            let current = *n;
            if current == 0 {
                s.active.remove(tenant);
            }
            return Err(current);
        }
        *n += 1;
        Ok(())
    }

    /// Undoes a [`try_reserve`](Self::try_reserve).
    pub(crate) fn unreserve(&self, tenant: &str) {
        self.lock().dec_active(tenant);
    }

    /// Queues a job; `reserved` says whether [`try_reserve`] counted it.
    pub(crate) fn push(&self, entry: Entry, reserved: bool) {
        let mut s = self.lock();
        if s.index.contains_key(&entry.id) || s.running.contains_key(&entry.id) {
            if reserved {
                s.dec_active(&entry.tenant);
            }
            return;
        }
        if !reserved {
            *s.active.entry(entry.tenant.clone()).or_insert(0) += 1;
        }
        let key = entry.key();
        let tenant = entry.tenant.clone();
        s.index
            .insert(entry.id.clone(), (tenant.clone(), key, Instant::now()));
        let queue = s.queues.entry(tenant.clone()).or_default();
        let was_empty = queue.is_empty();
        queue.insert(key, Arc::new(entry));
        if was_empty {
            s.ring.push_back(tenant);
        }
        drop(s);
        // All: the fair-share worker may be the only one that may take it.
        self.wake.notify_all();
    }

    /// Takes the next job a worker of `kind` may start, waiting for one;
    /// `None` once closed.
    pub(crate) fn next(&self, kind: WorkerKind) -> Option<Admitted> {
        let mut s = self.lock();
        loop {
            if s.closed {
                return None;
            }
            if let Some(admitted) = self.pick(&mut s, kind) {
                if kind == WorkerKind::Regular && !s.index.is_empty() {
                    // The regular workers may all be busy now: the
                    // fair-share worker looks again.
                    drop(s);
                    self.wake.notify_all();
                }
                return Some(admitted);
            }
            // With a job blocked on memory, wake up in time to reserve for it.
            let wait = if s.blocked.is_some() {
                self.reserve_after.max(Duration::from_millis(10))
            } else {
                Duration::from_secs(3600)
            };
            s = self
                .wake
                .wait_timeout(s, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn admit(&self, s: &mut State, tenant: &str, kind: WorkerKind) -> Option<Admitted> {
        let entry = s.head(tenant)?.clone();
        s.remove_queued(&entry.id);
        // The tenant goes to the back of the turn order if it has more.
        if s.queues.contains_key(tenant) {
            s.ring.retain(|t| t != tenant);
            s.ring.push_back(tenant.to_owned());
        }
        if s.blocked.as_ref().is_some_and(|(id, _)| *id == entry.id) {
            s.blocked = None;
        }
        s.used = s.used.saturating_add(entry.memory(self.budget));
        let stop = Arc::new(AtomicU8::new(RUN));
        s.running.insert(
            entry.id.clone(),
            Running {
                tenant: entry.tenant.clone(),
                memory: entry.memory(self.budget),
                stop: stop.clone(),
                fair_share: kind == WorkerKind::FairShare,
                started: Instant::now(),
            },
        );
        Some(Admitted { entry, stop })
    }

    fn pick(&self, s: &mut State, kind: WorkerKind) -> Option<Admitted> {
        let fair_share = kind == WorkerKind::FairShare;
        if fair_share {
            let regular = s.running.values().filter(|r| !r.fair_share).count();
            if regular < self.workers {
                return None;
            }
        }
        // The fair-share worker serves only tenants with nothing running.
        let may_start = |s: &State, tenant: &str| {
            !fair_share || !s.running.values().any(|r| r.tenant == tenant)
        };
        let free = self.budget.saturating_sub(s.used);
        // A blocked job that has waited long enough holds the door.
        if let Some((id, since)) = s.blocked.clone() {
            match s.index.get(&id).map(|(t, _, _)| t.clone()) {
                None => s.blocked = None,
                Some(tenant) if since.elapsed() >= self.reserve_after => {
                    let fits = s
                        .head(&tenant)
                        .is_some_and(|e| e.id == id && e.memory(self.budget) <= free);
                    return if fits && may_start(s, &tenant) {
                        self.admit(s, &tenant, kind)
                    } else {
                        None
                    };
                }
                Some(_) => {}
            }
        }
        let tenants: Vec<String> = s.ring.iter().cloned().collect();
        for tenant in tenants {
            if !may_start(s, &tenant) {
                continue;
            }
            let Some(head) = s.head(&tenant) else {
                continue;
            };
            if head.memory(self.budget) <= free {
                return self.admit(s, &tenant, kind);
            }
            let head_id = head.id.clone();
            let since = match &s.blocked {
                Some((id, since)) if *id == head_id => *since,
                Some(_) => continue,
                None => {
                    let now = Instant::now();
                    s.blocked = Some((head_id, now));
                    now
                }
            };
            if since.elapsed() >= self.reserve_after {
                return None;
            }
        }
        None
    }

    /// A running job ended: its memory returns to the budget.
    pub(crate) fn finish(&self, id: &str) {
        let mut s = self.lock();
        if let Some(r) = s.running.remove(id) {
            s.used = s.used.saturating_sub(r.memory);
            s.dec_active(&r.tenant);
            if !r.fair_share {
                let took = r.started.elapsed().as_secs_f64();
                s.mean_run = Some(s.mean_run.map_or(took, |m| 0.9 * m + 0.1 * took));
            }
        }
        drop(s);
        self.wake.notify_all();
    }

    /// Removes a queued job (cancelled); whether it was queued here.
    pub(crate) fn remove_queued(&self, id: &str) -> bool {
        let mut s = self.lock();
        match s.remove_queued(id) {
            Some(e) => {
                s.dec_active(&e.tenant);
                true
            }
            None => false,
        }
    }

    /// Asks a running job to stop at its next gate; whether it is running.
    pub(crate) fn stop_running(&self, id: &str, reason: u8) -> bool {
        let s = self.lock();
        match s.running.get(id) {
            Some(r) => {
                r.stop.store(reason, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Stops dispatching: [`next`](Self::next) returns `None` from now on.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }

    /// Asks every running job to stop with `reason`.
    pub(crate) fn stop_all(&self, reason: u8) {
        for r in self.lock().running.values() {
            r.stop.store(reason, Ordering::Relaxed);
        }
    }

    /// (queued, running) job counts.
    pub(crate) fn depth(&self) -> (usize, usize) {
        let s = self.lock();
        (s.index.len(), s.running.len())
    }

    /// The node's memory budget, in bytes of state.
    pub(crate) fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes of state held by running jobs.
    pub(crate) fn memory_in_use(&self) -> u64 {
        self.lock().used
    }

    /// On a shared store: how many more jobs this node may claim, and the
    /// bytes of state they may hold together; `None` when it is full or
    /// closed. A node claims what its free regular workers can start at
    /// once and, while its runs are short, as many more as it expects to
    /// start within [`HOLD`] (from how long its recent runs took): the next
    /// job is at hand when one ends, and several are claimed in one round
    /// trip. None ahead while a regular run has lasted [`HOLD`] already.
    /// What waits here beyond [`CLAIM_AHEAD_WAIT`] anyway goes back to the
    /// store for another node ([`overdue_claims`]).
    ///
    /// [`overdue_claims`]: Self::overdue_claims
    pub(crate) fn room(&self) -> Option<Room> {
        let s = self.lock();
        if s.closed {
            return None;
        }
        let mut regular = 0;
        let mut short = true;
        for r in s.running.values().filter(|r| !r.fair_share) {
            regular += 1;
            short &= r.started.elapsed() < HOLD;
        }
        let ahead = if short {
            // Before any run has ended here, as if each took a tenth of HOLD.
            let mean = s.mean_run.unwrap_or(HOLD.as_secs_f64() / 10.0);
            let per_worker = (HOLD.as_secs_f64() / mean.max(1e-6)).floor();
            // In 0..=MAX_AHEAD_PER_WORKER, so the cast is exact.
            let per_worker = per_worker.min(MAX_AHEAD_PER_WORKER as f64) as usize;
            per_worker * self.workers
        } else {
            0
        };
        let jobs = (self.workers + ahead).saturating_sub(regular + s.index.len());
        if jobs == 0 {
            return None;
        }
        let waiting: u64 = s
            .queues
            .values()
            .flat_map(BTreeMap::values)
            .map(|e| e.memory(self.budget))
            .sum();
        Some(Room {
            jobs,
            memory_bytes: self.budget.saturating_sub(s.used).saturating_sub(waiting),
        })
    }

    /// Takes out the claimed jobs that have waited here longer than
    /// `waited` without starting (on a shared store they go back to the
    /// store's queue, where another node may start them sooner).
    pub(crate) fn overdue_claims(&self, waited: Duration) -> Vec<Arc<Entry>> {
        let mut s = self.lock();
        let overdue: Vec<String> = s
            .index
            .iter()
            .filter(|(_, (tenant, key, since))| {
                since.elapsed() > waited
                    && s.queues
                        .get(tenant)
                        .and_then(|q| q.get(key))
                        .is_some_and(|e| e.claimed.is_some())
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Vec::with_capacity(overdue.len());
        for id in overdue {
            if let Some(e) = s.remove_queued(&id) {
                s.dec_active(&e.tenant);
                out.push(e);
            }
        }
        out
    }

    /// On a shared store: the bytes of state a job for the fair-share
    /// worker may hold, when every regular worker is busy, the fair-share
    /// worker is idle and nothing waits here; such a claim takes only a
    /// job of a tenant with none running ([`Capacity::idle_tenants_only`]).
    ///
    /// [`Capacity::idle_tenants_only`]: crate::store::Capacity::idle_tenants_only
    pub(crate) fn fair_share_room(&self) -> Option<u64> {
        let s = self.lock();
        let regular = s.running.values().filter(|r| !r.fair_share).count();
        let fair_busy = s.running.values().any(|r| r.fair_share);
        (!s.closed && s.index.is_empty() && regular >= self.workers && !fair_busy)
            .then(|| self.budget.saturating_sub(s.used))
    }

    /// Takes every queued job out (a shutdown on a shared store returns
    /// them to the store's queue).
    pub(crate) fn drain_queued(&self) -> Vec<Arc<Entry>> {
        let mut s = self.lock();
        let ids: Vec<String> = s.index.keys().cloned().collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(e) = s.remove_queued(&id) {
                s.dec_active(&e.tenant);
                out.push(e);
            }
        }
        out
    }

    /// 1-based place of a queued job in the dispatch order (ignoring
    /// memory): every tenant ahead in the turn order gets one more turn.
    pub(crate) fn position(&self, id: &str) -> Option<u64> {
        let s = self.lock();
        let (tenant, key, _) = s.index.get(id)?;
        let rank = s.queues.get(tenant)?.range(..*key).count();
        let mut ahead = 0usize;
        let mut before_in_ring = true;
        for t in &s.ring {
            if t == tenant {
                before_in_ring = false;
                continue;
            }
            let len = s.queues.get(t).map_or(0, BTreeMap::len);
            ahead += len.min(rank + usize::from(before_in_ring));
        }
        Some((ahead + rank + 1) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Precision, Program, ProgramFormat};

    fn entry(id: &str, tenant: &str, seq: i64, priority: i32, memory: u64) -> Entry {
        Entry {
            id: id.into(),
            tenant: tenant.into(),
            seq,
            circuits: None,
            claimed: None,
            spec: Arc::new(JobSpec {
                program: Program {
                    format: ProgramFormat::Qasm2,
                    source: String::new(),
                },
                shots: 1,
                seed: 0,
                result_types: vec![],
                executions: vec![],
                precision: Precision::F64,
                noise_model: None,
                method: Default::default(),
                noisy: false,
                qubits: 1,
                memory_bytes: memory,
                result_bytes: 0,
                name: None,
                tags: Default::default(),
                priority,
            }),
        }
    }

    fn order(s: &Scheduler, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let a = s.next(WorkerKind::Regular).unwrap();
                s.finish(&a.entry.id);
                a.entry.id.clone()
            })
            .collect()
    }

    #[test]
    fn round_robin_over_tenants_then_priority_then_fifo() {
        let s = Scheduler::new(100, Duration::from_secs(30), 4);
        for i in 0..4 {
            s.push(entry(&format!("a{i}"), "alice", i, 0, 1), false);
        }
        s.push(entry("b0", "bob", 10, 0, 1), false);
        s.push(entry("b1", "bob", 11, 5, 1), false);
        s.push(entry("c0", "carol", 12, 0, 1), false);
        assert_eq!(s.position("a0"), Some(1));
        assert_eq!(
            s.position("b1"),
            Some(2),
            "bob's high-priority job is his first"
        );
        assert_eq!(s.position("c0"), Some(3));
        assert_eq!(s.position("a1"), Some(4));
        assert_eq!(s.position("b0"), Some(5));
        assert_eq!(s.position("a3"), Some(7));
        assert_eq!(order(&s, 7), ["a0", "b1", "c0", "a1", "b0", "a2", "a3"]);
    }

    #[test]
    fn admission_never_exceeds_the_budget() {
        let s = Scheduler::new(100, Duration::from_secs(30), 4);
        s.push(entry("big1", "a", 1, 0, 60), false);
        s.push(entry("big2", "b", 2, 0, 60), false);
        s.push(entry("small", "c", 3, 0, 40), false);
        let first = s.next(WorkerKind::Regular).unwrap();
        assert_eq!(first.entry.id, "big1");
        // big2 does not fit next to big1; the small job may pass it.
        let second = s.next(WorkerKind::Regular).unwrap();
        assert_eq!(second.entry.id, "small");
        assert_eq!(s.memory_in_use(), 100);
        s.finish("big1");
        s.finish("small");
        assert_eq!(s.next(WorkerKind::Regular).unwrap().entry.id, "big2");
    }

    #[test]
    fn a_large_job_blocked_too_long_holds_the_door() {
        let s = Scheduler::new(100, Duration::ZERO, 4);
        s.push(entry("running", "a", 1, 0, 50), false);
        let r = s.next(WorkerKind::Regular).unwrap();
        s.push(entry("big", "b", 2, 0, 100), false);
        s.push(entry("small", "c", 3, 0, 10), false);
        // `big` is blocked; with no grace it reserves the memory at once.
        let picked = std::thread::scope(|scope| {
            let h = scope.spawn(|| s.next(WorkerKind::Regular).unwrap().entry.id.clone());
            std::thread::sleep(Duration::from_millis(50));
            s.finish(&r.entry.id);
            h.join().unwrap()
        });
        assert_eq!(picked, "big");
    }

    /// Issue 15, finding 8: one tenant's long jobs held every worker, and
    /// another tenant's small job waited for one of them to end (up to an
    /// hour). The fair-share worker starts it at once.
    #[test]
    fn another_tenant_starts_at_once_while_one_holds_every_worker() {
        let s = Scheduler::new(100, Duration::from_secs(30), 2);
        for i in 0..5 {
            s.push(entry(&format!("a{i}"), "a", i, 0, 1), false);
        }
        s.push(entry("b0", "b", 10, 0, 1), false);
        let a0 = s.next(WorkerKind::Regular).unwrap();
        assert_eq!(a0.entry.id, "a0");
        // With a regular worker idle, the fair-share worker takes nothing.
        assert!(s.pick(&mut s.lock(), WorkerKind::FairShare).is_none());
        let second = s.next(WorkerKind::Regular).unwrap();
        assert_eq!(second.entry.id, "b0", "round robin");
        s.finish("b0");
        let a1 = s.next(WorkerKind::Regular).unwrap();
        assert_eq!(a1.entry.id, "a1");
        s.push(entry("b1", "b", 11, 0, 1), false);
        // Both regular workers run A's jobs: B's next job starts on the
        // fair-share worker, and only one of B's at a time.
        let fair = std::thread::scope(|scope| {
            let worker = scope.spawn(|| s.next(WorkerKind::FairShare).unwrap());
            worker.join().unwrap()
        });
        assert_eq!(fair.entry.id, "b1");
        s.push(entry("b2", "b", 12, 0, 1), false);
        assert!(s.pick(&mut s.lock(), WorkerKind::FairShare).is_none());
        // A's jobs never go to the fair-share worker while A runs any.
        s.finish("b1");
        assert_eq!(
            s.next(WorkerKind::FairShare).unwrap().entry.id,
            "b2",
            "a tenant with nothing running again"
        );
        s.finish("b2");
        assert!(s.pick(&mut s.lock(), WorkerKind::FairShare).is_none());
        // The fair-share worker wakes when the regular workers fill up.
        s.finish(&a1.entry.id);
        s.push(entry("c0", "c", 20, 0, 1), false);
        let waiting = std::thread::scope(|scope| {
            let worker = scope.spawn(|| s.next(WorkerKind::FairShare).unwrap());
            std::thread::sleep(Duration::from_millis(50));
            // A regular worker takes A's job (A is first in turn): now
            // both are busy, and C has nothing running.
            let regular = s.next(WorkerKind::Regular).unwrap();
            assert_eq!(regular.entry.id, "a2");
            worker.join().unwrap()
        });
        assert_eq!(waiting.entry.id, "c0");
        drop(a0);
    }

    /// A single tenant uses exactly the regular workers: the fair-share
    /// worker never takes its jobs.
    #[test]
    fn a_single_tenant_uses_every_regular_worker_and_no_more() {
        let s = Scheduler::new(100, Duration::from_secs(30), 3);
        for i in 0..6 {
            s.push(entry(&format!("a{i}"), "a", i, 0, 1), false);
        }
        for _ in 0..3 {
            s.next(WorkerKind::Regular).unwrap();
        }
        assert_eq!(s.depth(), (3, 3));
        assert!(s.pick(&mut s.lock(), WorkerKind::FairShare).is_none());
    }

    #[test]
    fn active_counts_limit_tenants_and_cancel_frees_them() {
        let s = Scheduler::new(100, Duration::from_secs(30), 4);
        assert!(s.try_reserve("a", 2).is_ok());
        s.push(entry("x", "a", 1, 0, 1), true);
        assert!(s.try_reserve("a", 2).is_ok());
        s.push(entry("y", "a", 2, 0, 1), true);
        assert_eq!(s.try_reserve("a", 2), Err(2));
        assert!(s.remove_queued("y"));
        assert!(s.try_reserve("a", 2).is_ok());
        s.unreserve("a");
        let x = s.next(WorkerKind::Regular).unwrap();
        assert!(s.stop_running("x", STOP_CANCEL));
        assert_eq!(x.stop.load(Ordering::Relaxed), STOP_CANCEL);
        s.finish("x");
        assert_eq!(s.depth(), (0, 0));
        s.close();
        assert!(s.next(WorkerKind::Regular).is_none());
    }

    fn claimed(id: &str, seq: i64, memory: u64) -> Entry {
        Entry {
            claimed: Some(1),
            ..entry(id, "t", seq, 0, memory)
        }
    }

    #[test]
    fn a_node_claims_ahead_what_it_expects_to_start_soon_and_gives_back_what_waits() {
        let s = Scheduler::new(10_000, Duration::from_secs(60), 2);
        // Before any run has ended: as if each took a tenth of HOLD, so
        // ten per worker ahead, besides the two free workers.
        assert_eq!(
            s.room(),
            Some(Room {
                jobs: 22,
                memory_bytes: 10_000
            })
        );
        for i in 0..3 {
            s.push(claimed(&format!("c{i}"), i, 1000), false);
        }
        // Three wait: three fewer, and their memory is spoken for.
        assert_eq!(
            s.room(),
            Some(Room {
                jobs: 19,
                memory_bytes: 7000
            })
        );
        // Runs that end at once: the most ahead, 64 per worker.
        for _ in 0..3 {
            let a = s.next(WorkerKind::Regular).unwrap();
            s.finish(&a.entry.id);
        }
        assert_eq!(s.room().unwrap().jobs, 2 + 128);
        // A run that has lasted HOLD: nothing ahead, only its free worker.
        s.push(claimed("long", 3, 1000), false);
        let long = s.next(WorkerKind::Regular).unwrap();
        std::thread::sleep(HOLD + Duration::from_millis(20));
        assert_eq!(
            s.room(),
            Some(Room {
                jobs: 1,
                memory_bytes: 9000
            })
        );
        // What waits past its time goes back; a job not claimed stays.
        s.push(claimed("waits", 4, 1000), false);
        s.push(entry("mine", "t", 9, 0, 1000), false);
        assert!(s.overdue_claims(Duration::from_secs(5)).is_empty());
        let back: Vec<String> = s
            .overdue_claims(Duration::ZERO)
            .iter()
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(back, ["waits"]);
        assert_eq!(s.depth(), (1, 1));
        s.finish(&long.entry.id);
        s.close();
        assert_eq!(s.room(), None);
    }
}
