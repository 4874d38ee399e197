//! Stages of cache blocking (see `crate::blocking`): every operation of a
//! stage applied to one cache-sized chunk of the state after another.
//!
//! A chunk whose qubits are the state's lowest is a contiguous run of blocks
//! and is updated in place. Any other chunk is `2^|high|` segments of
//! `2^low` amplitudes spread over the state: they are copied into a buffer
//! of the thread's own, updated there as a small state, and copied back.
//! Either way each amplitude crosses the memory bus once per stage.
//!
//! A chunk that reads all zeros is left alone: every operation is linear,
//! so it stays zero, and nothing is written. Beyond the work, this saves the
//! kernel's zeroing of fresh pages (a fresh state's untouched pages read as
//! the shared zero page), which dominated sparse circuits such as GHZ: 57%
//! of ghz_26 at f32 was `clear_page` before. Segments along qubits that
//! nothing has touched yet (`Stage::untouched_high`) are known zero without
//! being read at all.

use std::sync::Mutex;

use kettle_ir::Qubit;

use super::{BlockPtr, Prepared, all_zero};
use crate::blocking::Stage;
use crate::buffer::Buffer;
use crate::float::Float;
use crate::par::Parallelism;
use crate::state::{Block, block_address, segment_blocks};

/// Applies every operation of `stage` to the state held in `blocks` (`n` qubits).
pub(crate) fn apply_stage<F: Float>(
    blocks: &mut [Block<F>],
    n: u32,
    stage: &Stage,
    par: &Parallelism,
    scratch: &ChunkScratch<F>,
) {
    let k = stage.qubits();
    debug_assert!(k <= n && stage.low >= F::LOG_LANES);
    // Chunks are contiguous only inside one segment of the buffer, and the
    // kernels address a chunk as a whole state without gaps.
    assert!(
        (1usize << k) <= segment_blocks::<F>() * F::LANES,
        "chunk of {k} qubits is larger than a segment of the buffer"
    );
    let prepared: Vec<Prepared<F>> = stage.ops.iter().map(|op| Prepared::new(k, op)).collect();
    let chunk_blocks = (1usize << k) / F::LANES;
    let segment_blocks = (1usize << stage.low) / F::LANES;
    // Block offset of each segment from its chunk's first block.
    let segments: Vec<usize> = (0..1usize << stage.high.len())
        .map(|s| deposit(s, &stage.high) / F::LANES)
        .collect();
    let ptr = BlockPtr::new(blocks);
    let chunk_count = 1usize << stage.spread.len();
    // Threads share out the chunks; where there are fewer chunks than
    // threads (the first stage of a fresh state visits one), they share
    // out each operation's sweep of the chunk instead.
    let sequential = Parallelism::Sequential;
    let (across, within) = if chunk_count < par.num_threads() {
        (&sequential, par)
    } else {
        (par, &sequential)
    };
    debug_assert!(stage.spread.iter().all(|&q| q < n));
    across.for_each_range(chunk_count, 1usize << k, |chunks| {
        if stage.high.is_empty() {
            for c in chunks {
                // Chunks lie inside one segment of the buffer (they are far
                // smaller than the 128 MiB between gaps, and aligned), so
                // their blocks are contiguous.
                let start = block_address::<F>(chunk_base(c, stage) / F::LANES);
                // SAFETY: chunk `c`'s blocks belong to this range of chunks
                // alone, and the slice ends inside the buffer.
                let chunk = unsafe { ptr.slice(start, chunk_blocks) };
                if all_zero(chunk) {
                    continue;
                }
                for op in &prepared {
                    op.apply(chunk, within);
                }
            }
            return;
        }
        let mut buffer = scratch.take(chunk_blocks);
        // Which segments read all zero.
        let mut was_zero = vec![false; segments.len()];
        for c in chunks {
            let base = chunk_base(c, stage) / F::LANES;
            // Checked in place, before any copy: zero chunks are most of a
            // sparse state, and a dense segment fails at its first line.
            // Segments along qubits nothing has touched yet are zero
            // without a look: reading them would fault in a page each.
            for (s, (zero, &offset)) in was_zero.iter_mut().zip(&segments).enumerate() {
                let start = block_address::<F>(base + offset);
                // SAFETY: as below.
                *zero = s & stage.untouched_high != 0
                    || all_zero(unsafe { ptr.slice(start, segment_blocks) });
            }
            if was_zero.iter().all(|&zero| zero) {
                continue;
            }
            for (s, &offset) in segments.iter().enumerate() {
                let copy = &mut buffer[s * segment_blocks..][..segment_blocks];
                if was_zero[s] {
                    copy.fill(Block::zero());
                    continue;
                }
                prefetch_segment(ptr, base, &segments, s + PREFETCH_AHEAD, segment_blocks);
                let start = block_address::<F>(base + offset);
                // SAFETY: as above; segments are contiguous for the same reason.
                let segment = unsafe { ptr.slice(start, segment_blocks) };
                copy.copy_from_slice(segment);
            }
            for op in &prepared {
                op.apply(&mut buffer, within);
            }
            for (s, &offset) in segments.iter().enumerate() {
                let result = &buffer[s * segment_blocks..][..segment_blocks];
                if was_zero[s] && all_zero(result) {
                    // Zeros over zeros: a sparse state's segments lie on
                    // pages never written, which read as the shared zero
                    // page; writing them would make the kernel clear a
                    // page for each (71% of ghz_28 at one thread).
                    continue;
                }
                prefetch_segment(ptr, base, &segments, s + PREFETCH_AHEAD, segment_blocks);
                let start = block_address::<F>(base + offset);
                // SAFETY: as above.
                let segment = unsafe { ptr.slice(start, segment_blocks) };
                segment.copy_from_slice(result);
            }
        }
        scratch.give_back(buffer);
    });
}

/// Chunk buffers, kept with the state they serve and handed from one piece
/// of a stage's work to the next, so that a run maps at most one buffer per
/// thread (a stage's work comes in a few pieces per thread, and a circuit
/// has several stages). Mapped from the kernel and returned with the state
/// (see `crate::buffer`): a chunk is megabytes, and an allocator that kept
/// them for reuse would hold them beyond a server's memory budget.
#[derive(Debug, Default)]
pub(crate) struct ChunkScratch<F: Float>(Mutex<Vec<Buffer<Block<F>>>>);

impl<F: Float> ChunkScratch<F> {
    /// A buffer of `len` blocks (its contents are stale or zero).
    fn take(&self, len: usize) -> Buffer<Block<F>> {
        let free = {
            let mut free = self.0.lock().unwrap_or_else(|e| e.into_inner());
            // Buffers of another chunk size (a stage planned for other
            // threads) are dropped.
            free.retain(|b| b.len() == len);
            free.pop()
        };
        free.unwrap_or_else(|| {
            // SAFETY: all-zero bytes are a valid block.
            unsafe { Buffer::<Block<F>>::zeroed(len) }.unwrap_or_else(|_| {
                std::alloc::handle_alloc_error(
                    std::alloc::Layout::array::<Block<F>>(len).expect("a chunk's size fits"),
                )
            })
        })
    }

    fn give_back(&self, buffer: Buffer<Block<F>>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buffer);
    }
}

/// How many segments ahead of the one being copied the copies ask for.
/// A chunk's segments lie far apart (1 KiB each by default, on pages of
/// their own), so the hardware prefetchers, which stop at page boundaries,
/// cannot see the next one coming, and each segment would start with a full
/// miss.
const PREFETCH_AHEAD: usize = 4;

/// Asks the cache for the lines of segment `s` of the chunk at block
/// `base`, if there is one.
#[inline(always)]
fn prefetch_segment<F: Float>(
    ptr: BlockPtr<F>,
    base: usize,
    segments: &[usize],
    s: usize,
    segment_blocks: usize,
) {
    let Some(&offset) = segments.get(s) else {
        return;
    };
    let start = ptr.at(base + offset).cast::<u8>();
    let bytes = segment_blocks * std::mem::size_of::<Block<F>>();
    for line in (0..bytes).step_by(64) {
        prefetch(start.wrapping_add(line));
    }
}

/// A hint to bring the line at `p` into the cache; never faults.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch does not access memory architecturally: any
    // address is allowed, and SSE is part of x86-64's baseline.
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The first amplitude of chunk `c`: `c`'s bits on the qubits that index
/// chunks (`stage.spread`), zeros elsewhere.
fn chunk_base(c: usize, stage: &Stage) -> usize {
    deposit(c, &stage.spread)
}

/// The amplitude index whose bit `qubits[i]` is bit `i` of `bits`, zeros
/// elsewhere.
fn deposit(bits: usize, qubits: &[Qubit]) -> usize {
    qubits
        .iter()
        .enumerate()
        .map(|(i, &q)| ((bits >> i) & 1) << q)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_chunks_are_recognised_bit_for_bit() {
        let mut blocks = vec![Block::<f64>::zero(); 8];
        assert!(all_zero(&blocks));
        blocks[7] = Block {
            re: <f64 as Float>::splat(-0.0),
            im: <f64 as Float>::splat(0.0),
        };
        assert!(!all_zero(&blocks), "-0.0 is not skipped");
        blocks[7] = Block::zero();
        blocks[3].im = <f64 as Float>::splat(1e-300);
        assert!(!all_zero(&blocks));
    }

    #[test]
    fn chunks_partition_the_state() {
        // 9 qubits, chunk qubits 0..3 and 4, 7: 16 chunks of 4 segments.
        let stage = Stage {
            low: 3,
            high: [4, 7].into_iter().collect(),
            spread: vec![3, 5, 6, 8],
            untouched_high: 0,
            ops: Vec::new(),
        };
        let mut seen = std::collections::BTreeSet::new();
        for c in 0..16 {
            let base = chunk_base(c, &stage);
            for s in 0..4usize {
                let seg = base + ((s & 1) << 4) + ((s >> 1) << 7);
                for a in seg..seg + 8 {
                    assert!(a < 512);
                    assert!(seen.insert(a), "amplitude {a} in two chunks");
                }
            }
        }
        assert_eq!(seen.len(), 512);
    }
}
