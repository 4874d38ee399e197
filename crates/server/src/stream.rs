//! Response bodies that hold job results: the memory they hold counts
//! against a byte budget ([`ResponseBudget`]), and they are sent in chunks
//! from that memory (never copied whole again) under a write timeout
//! ([`TimedBody`]).
//!
//! Why: a completed job's result can be tens of MB of JSON. Each response
//! holds it until the client has read it, so clients that ask and never
//! read could otherwise hold any amount of memory for as long as they keep
//! the connection open.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most bytes handed to actix at once.
const CHUNK_BYTES: usize = 64 << 10;

/// Bytes of responses held at once, counted in KiB (a semaphore's
/// permits), so that a response waits for, or is refused, memory it would
/// hold beyond the budget.
#[derive(Debug)]
pub(crate) struct ResponseBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl ResponseBudget {
    /// A budget of `bytes` (at least 1 KiB).
    pub(crate) fn new(bytes: u64) -> ResponseBudget {
        let total_kib = u32::try_from(bytes / 1024).unwrap_or(u32::MAX).max(1);
        ResponseBudget {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// A share of `bytes` (all of the budget at most: a response larger than
    /// the budget is sent alone), waiting up to `wait` for it; `None` when
    /// it did not come.
    pub(crate) async fn take(&self, bytes: u64, wait: Duration) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(self.total_kib);
        let acquire = Arc::clone(&self.kib).acquire_many_owned(kib);
        match tokio::time::timeout(wait, acquire).await {
            Ok(Ok(permit)) => Some(permit),
            _ => None,
        }
    }

    /// Bytes not held by any response now.
    #[cfg(test)]
    pub(crate) fn available_bytes(&self) -> u64 {
        self.kib.available_permits() as u64 * 1024
    }
}

/// What a [`TimedBody`] has still to send, and its share of the budget.
#[derive(Debug)]
struct Held {
    parts: VecDeque<Bytes>,
    _share: Option<OwnedSemaphorePermit>,
}

/// A body of known length, sent in chunks of at most 64 KiB from `parts`.
/// When `timeout` passes before a body of more than one chunk is sent, a timer drops what it holds
/// (and its share of the budget) even if actix no longer polls it (a
/// client that does not read leaves the connection's buffers full), and
/// the next poll ends the body with an error, on which actix closes the
/// connection.
#[derive(Debug)]
pub(crate) struct TimedBody {
    held: Arc<Mutex<Option<Held>>>,
    size: u64,
    sent_all: bool,
}

impl TimedBody {
    /// A body of `parts`, holding `share` until it is sent, dropped or
    /// timed out. Must be called inside actix's runtime (the timer is a
    /// task).
    pub(crate) fn new(
        parts: Vec<Bytes>,
        share: Option<OwnedSemaphorePermit>,
        timeout: Duration,
    ) -> TimedBody {
        let size = parts.iter().map(|p| p.len() as u64).sum();
        let held = Arc::new(Mutex::new(Some(Held {
            parts: parts.into(),
            _share: share,
        })));
        let weak: Weak<Mutex<Option<Held>>> = Arc::downgrade(&held);
        // A body this small goes to the kernel's socket buffer at once:
        // no client can make the server hold it, so it needs no timer.
        if size <= CHUNK_BYTES as u64 {
            return TimedBody {
                held,
                size,
                sent_all: false,
            };
        }
        actix_web::rt::spawn(async move {
            actix_web::rt::time::sleep(timeout).await;
            if let Some(held) = weak.upgrade() {
                let dropped = lock(&held).take();
                if dropped.is_some() {
                    tracing::info!(
                        "a response was not read within the write timeout of {} s; its data is let go and the connection closed",
                        timeout.as_secs_f64()
                    );
                }
            }
        });
        TimedBody {
            held,
            size,
            sent_all: false,
        }
    }
}

fn lock(held: &Mutex<Option<Held>>) -> std::sync::MutexGuard<'_, Option<Held>> {
    held.lock().unwrap_or_else(|p| p.into_inner())
}

impl MessageBody for TimedBody {
    type Error = std::io::Error;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.size)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.sent_all {
            return Poll::Ready(None);
        }
        let mut slot = lock(&this.held);
        let Some(held) = slot.as_mut() else {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the response was not read within the write timeout",
            ))));
        };
        while let Some(part) = held.parts.front_mut() {
            if part.is_empty() {
                held.parts.pop_front();
                continue;
            }
            let chunk = if part.len() > CHUNK_BYTES {
                part.split_to(CHUNK_BYTES)
            } else {
                held.parts.pop_front().unwrap_or_default()
            };
            if held.parts.is_empty() {
                // The last chunk: the rest of the memory and the share go.
                slot.take();
                this.sent_all = true;
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        slot.take();
        this.sent_all = true;
        Poll::Ready(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_body_is_sent_in_chunks_and_lets_go_of_its_share() {
        let budget = ResponseBudget::new(1 << 20);
        let share = budget.take(300 << 10, Duration::from_secs(1)).await;
        assert!(share.is_some());
        assert_eq!(budget.available_bytes(), (1 << 20) - (300 << 10));
        let text = vec![b'x'; 200 << 10];
        let body = TimedBody::new(
            vec![
                Bytes::from_static(b"{"),
                Bytes::from(text),
                Bytes::from_static(b"}"),
            ],
            share,
            Duration::from_secs(60),
        );
        assert_eq!(body.size(), BodySize::Sized((200 << 10) + 2));
        let sent = actix_web::body::to_bytes(body).await.unwrap();
        assert_eq!(sent.len(), (200 << 10) + 2);
        assert_eq!(budget.available_bytes(), 1 << 20);
        // More than the whole budget waits for all of it, and gets it.
        let all = budget.take(10 << 20, Duration::from_secs(1)).await;
        assert!(all.is_some());
        assert!(budget.take(1, Duration::from_millis(50)).await.is_none());
    }

    #[actix_web::test]
    async fn a_body_not_sent_in_time_drops_its_data_and_ends_with_an_error() {
        let budget = ResponseBudget::new(1 << 20);
        let share = budget.take(1 << 20, Duration::from_secs(1)).await;
        let mut body = TimedBody::new(
            vec![Bytes::from(vec![b'x'; 256 << 10])],
            share,
            Duration::from_millis(100),
        );
        let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await;
        assert_eq!(first.unwrap().unwrap().len(), CHUNK_BYTES);
        assert_eq!(budget.available_bytes(), 0);
        // Not polled while the client does not read; the timer lets go.
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(budget.available_bytes(), 1 << 20);
        let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await;
        assert!(matches!(next, Some(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut));
    }
}
