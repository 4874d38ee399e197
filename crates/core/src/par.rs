//! How much parallelism a simulation may use: passed in by the caller, never
//! read from a global.
//!
//! Work is split into a fixed number of pieces that does not depend on the
//! thread count wherever a result could depend on the order of additions
//! (reductions), so that results are the same whatever the thread count.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::SimError;

/// Below this many amplitudes of work a pass runs on the calling thread:
/// thread hand-off would cost more than it saves (a 2^14-amplitude f64 state
/// is 256 KiB, an L2's worth).
pub const PARALLEL_THRESHOLD: usize = 1 << 14;

/// Where passes over the state run.
#[derive(Clone, Default)]
pub enum Parallelism {
    /// On the calling thread only.
    #[default]
    Sequential,
    /// On this rayon pool (the calling thread waits).
    Pool(Arc<rayon::ThreadPool>),
}

impl fmt::Debug for Parallelism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parallelism::Sequential => f.write_str("Sequential"),
            Parallelism::Pool(p) => write!(f, "Pool({} threads)", p.current_num_threads()),
        }
    }
}

impl Parallelism {
    /// A private pool of `threads` threads (`threads <= 1` means sequential).
    ///
    /// # Errors
    /// [`SimError::ThreadPool`] if the system cannot start the threads.
    pub fn threads(threads: usize) -> Result<Parallelism, SimError> {
        if threads <= 1 {
            return Ok(Parallelism::Sequential);
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kettle-sim-{i}"))
            .build()
            .map(|p| Parallelism::Pool(Arc::new(p)))
            .map_err(|e| SimError::ThreadPool {
                threads,
                message: e.to_string(),
            })
    }

    /// Number of threads passes may use.
    pub fn num_threads(&self) -> usize {
        match self {
            Parallelism::Sequential => 1,
            Parallelism::Pool(p) => p.current_num_threads(),
        }
    }

    /// Calls `f` on sub-ranges covering `0..items`, in parallel when
    /// `items * amplitudes_per_item` reaches [`PARALLEL_THRESHOLD`].
    /// The ranges are disjoint; their number and order are unspecified.
    pub(crate) fn for_each_range(
        &self,
        items: usize,
        amplitudes_per_item: usize,
        f: impl Fn(Range<usize>) + Sync,
    ) {
        match self {
            Parallelism::Pool(pool)
                if pool.current_num_threads() > 1
                    && items > 1
                    && items.saturating_mul(amplitudes_per_item) >= PARALLEL_THRESHOLD =>
            {
                // A few pieces per thread smooth out a thread that starts late.
                let pieces = (pool.current_num_threads() * 4).min(items);
                pool.install(|| {
                    (0..pieces).into_par_iter().for_each(|k| {
                        f(k * items / pieces..(k + 1) * items / pieces);
                    })
                });
            }
            _ => f(0..items),
        }
    }

    /// Maps fixed pieces of `0..items` (each `piece` long, the last shorter)
    /// and returns the results in piece order. The pieces do not depend on
    /// the thread count, so neither does anything computed from the results.
    pub(crate) fn map_pieces<T: Send>(
        &self,
        items: usize,
        piece: usize,
        amplitudes_per_item: usize,
        f: impl Fn(Range<usize>) -> T + Sync,
    ) -> Vec<T> {
        let piece = piece.max(1);
        let count = items.div_ceil(piece);
        let range = |k: usize| k * piece..((k + 1) * piece).min(items);
        match self {
            Parallelism::Pool(pool)
                if pool.current_num_threads() > 1
                    && count > 1
                    && items.saturating_mul(amplitudes_per_item) >= PARALLEL_THRESHOLD =>
            {
                pool.install(|| (0..count).into_par_iter().map(|k| f(range(k))).collect())
            }
            _ => (0..count).map(|k| f(range(k))).collect(),
        }
    }
}
