//! What bounds the admission parses of submissions: the permits they take
//! (shared fairly between tenants), and the flag that stops a parse whose
//! client has gone.
//!
//! Parsing is CPU work that a small program can make long (a loop unrolls
//! to a million operations, classical work up to
//! `kettle_qasm::Limits::max_classical_steps`), so parses run off the async
//! threads, at most one per core (and at least two) at once. One tenant may hold
//! all but one of them: however many slow programs it sends, another
//! tenant's submission finds a permit free at once. A submission waiting
//! for a permit whose client hangs up leaves the queue (its future is
//! dropped), and one parsing stops within milliseconds ([`StopOnDrop`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The parse permits of all tenants.
#[derive(Debug)]
pub(crate) struct AdmissionPermits {
    all: Arc<Semaphore>,
    per_tenant: usize,
    /// Each tenant's share, created at its first submission. A few bytes
    /// per tenant, and tenants are the API keys' owners, so it is not pruned.
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A parse's right to run: a tenant's permit and one of all of them.
#[derive(Debug)]
pub(crate) struct AdmissionPermit {
    _tenant: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

impl AdmissionPermits {
    /// `total` permits (at least 2, so that one tenant never holds them
    /// all), of which one tenant may hold `total − 1`.
    pub(crate) fn new(total: usize) -> AdmissionPermits {
        let total = total.max(2);
        AdmissionPermits {
            all: Arc::new(Semaphore::new(total)),
            per_tenant: total - 1,
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// One per core, and at least 2: parsing is CPU work, so more at once
    /// than cores would not be faster (and each may hold a large circuit).
    pub(crate) fn for_this_machine() -> AdmissionPermits {
        AdmissionPermits::new(
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        )
    }

    /// Parses that may run at once, over all tenants.
    #[cfg(test)]
    pub(crate) fn total(&self) -> usize {
        self.per_tenant + 1
    }

    /// Permits free now, over all tenants.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.all.available_permits()
    }

    /// Waits for a permit for `tenant`: first its own share, then one of
    /// all, so a tenant's waiting submissions never queue ahead of another
    /// tenant's for the last permits. Dropping the future leaves the queue.
    /// `None` once the permits are closed.
    pub(crate) async fn acquire(&self, tenant: &str) -> Option<AdmissionPermit> {
        let share = {
            let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                tenants
                    .entry(tenant.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant))),
            )
        };
        let own = share.acquire_owned().await.ok()?;
        let all = Arc::clone(&self.all).acquire_owned().await.ok()?;
        Some(AdmissionPermit {
            _tenant: own,
            _all: all,
        })
    }
}

/// Raises its flag when dropped: held by a submission's future, so that the
/// parse it started on a blocking thread stops when the future is dropped
/// (the client hung up) instead of running on with its permit.
#[derive(Debug)]
pub(crate) struct StopOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_tenant_never_holds_every_permit() {
        let permits = Arc::new(AdmissionPermits::new(3));
        let a1 = permits.acquire("a").await.unwrap();
        let a2 = permits.acquire("a").await.unwrap();
        // A third of tenant A's waits, and does not take the last permit.
        let a3 = tokio::spawn({
            let permits = Arc::clone(&permits);
            async move { permits.acquire("a").await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert!(!a3.is_finished());
        assert_eq!(permits.available(), 1);
        let b = tokio::time::timeout(std::time::Duration::from_secs(5), permits.acquire("b"))
            .await
            .expect("tenant B gets the permit A may not take")
            .unwrap();
        drop((a1, b));
        a3.await.unwrap().unwrap();
        drop(a2);
        assert_eq!(permits.available(), 3);
    }

    #[tokio::test]
    async fn a_single_core_still_has_two_permits() {
        let permits = AdmissionPermits::new(1);
        assert_eq!(permits.total(), 2);
        let a = permits.acquire("a").await.unwrap();
        let b = permits.acquire("b").await.unwrap();
        drop((a, b));
    }

    #[tokio::test]
    async fn a_dropped_wait_leaves_the_queue() {
        let permits = AdmissionPermits::new(2);
        let held = permits.acquire("a").await.unwrap();
        // A's second submission waits for A's share; its client hangs up.
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), permits.acquire("a")).await;
        assert!(waiting.is_err());
        drop(held);
        assert_eq!(permits.available(), 2);
        let again = permits.acquire("a").await.unwrap();
        drop(again);
    }
}
