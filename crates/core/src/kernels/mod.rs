//! Kernels: free functions that update a buffer of blocks in place. The one
//! place in Kettle where cleverness is welcome; everything here is tested
//! against the plain reference simulator (`kettle-reference`).
//!
//! Every kernel works on *groups*: for an operation with targets `T` and
//! controls `C`, the qubits split into *high* ones (≥ `log2(LANES)`, which
//! select whole blocks) and *low* ones (which select lanes inside a block).
//! A group is the `2^|T_high|` blocks that differ only in the high target
//! bits, with the high control bits fixed to their required values, so only
//! the controlled subspace is visited. Low targets become lane permutations
//! (`xor_lanes`), and low controls are folded into per-lane coefficients
//! (identity in the lanes where they do not hold). Groups are disjoint, so
//! ranges of them run in parallel without synchronisation.
//!
//! Three kernels, one per matrix shape: `diagonal` (phase multiplications),
//! `monomial` (moves, with phases where needed) and `dense` (matrix–vector
//! products, unrolled for up to 6 high targets). Each is split into a
//! `prepare` step (the group layout and per-lane coefficients, computed once)
//! and a run over the groups, so that a [`Prepared`] operation can be applied
//! to many cache-sized chunks (`chunks`) without preparing it again.
//!
//! Each kernel is generic over the vector it computes with ([`Lanes`]) and
//! is instantiated once per SIMD level; preparing an operation picks the
//! instantiation of the process's level ([`crate::cpu::simd_level`]), so
//! applying it is one indirect call, not a branch per block. Inside, each
//! range of groups runs through [`Lanes::vectorize`], compiled with the
//! level's instructions.

#![allow(unsafe_code)]

mod chunks;
mod dense;
mod diagonal;
mod lanes;
mod monomial;
pub(crate) mod reduce;
mod split;

use crate::cpu::SimdLevel;
use crate::float::Float;
use crate::op::{KernelOp, OpMatrix};
use crate::par::Parallelism;
use crate::state::{Block, block_address};

pub(crate) use chunks::{ChunkScratch, apply_stage};
#[cfg(target_arch = "x86_64")]
pub(crate) use lanes::x86;
pub(crate) use lanes::{Lanes, at_level, lane_sum, to_storage};
pub(crate) use split::Split;

/// Applies `op` to the state held in `blocks` (`n` qubits).
pub(crate) fn apply<F: Float>(blocks: &mut [Block<F>], n: u32, op: &KernelOp, par: &Parallelism) {
    if op.is_identity() {
        return;
    }
    Prepared::<F>::new(n, op).apply(blocks, par);
}

/// An operation ready to run on a state of a given size: where its groups
/// lie, what each kernel multiplies by, and the kernels of the SIMD level
/// to run it with.
pub(crate) struct Prepared<F: Float> {
    split: Split,
    kind: Kind<F>,
    run: Runner<F>,
}

/// [`run`] instantiated for one precision and SIMD level.
type Runner<F> = fn(&Split, &Kind<F>, BlockPtr<F>, &Parallelism);

/// The kernels of `level`.
fn runner<F: Float>(level: SimdLevel) -> Runner<F> {
    at_level!(level, run::<F>)
}

/// Runs a prepared operation with the vectors `V`.
fn run<F: Float, V: Lanes<F>>(split: &Split, kind: &Kind<F>, ptr: BlockPtr<F>, par: &Parallelism) {
    match kind {
        Kind::Identity => {}
        Kind::Diagonal(coef) => diagonal::run::<F, V>(ptr, split, coef, par),
        Kind::Dense(coef) => dense::run::<F, V>(ptr, split, coef, par),
        Kind::Moves(moves) => monomial::run_moves::<F, V>(ptr, split, moves, par),
        Kind::Terms(terms) => monomial::run_terms::<F, V>(ptr, split, terms, par),
    }
}

/// What a prepared operation runs.
enum Kind<F: Float> {
    /// Changes nothing.
    Identity,
    /// Per high pattern, the factor of each lane.
    Diagonal(Vec<Block<F>>),
    /// Expanded coefficients, classified (see `dense::prepare`).
    Dense(dense::Coefficients<F>),
    /// Monomials that only move blocks and lanes.
    Moves(Vec<(usize, usize)>),
    /// Monomials whose outputs combine weighted sources.
    Terms(Vec<monomial::Terms<F>>),
}

impl<F: Float> Prepared<F> {
    /// Prepares `op` for states of `n` qubits, at the process's SIMD level.
    pub(crate) fn new(n: u32, op: &KernelOp) -> Self {
        Self::at_level(crate::cpu::simd_level(), n, op)
    }

    /// Prepares `op` for states of `n` qubits, to run at `level` (which the
    /// CPU must have: the vectors' instructions are not checked again).
    pub(crate) fn at_level(level: SimdLevel, n: u32, op: &KernelOp) -> Self {
        debug_assert!(level <= SimdLevel::detected());
        let split = Split::new::<F>(n, &op.targets, &op.controls);
        let kind = if op.is_identity() {
            Kind::Identity
        } else {
            match &op.matrix {
                OpMatrix::Diagonal(d) => Kind::Diagonal(diagonal::coefficients(&split, d)),
                OpMatrix::Monomial { src, phase } => monomial::prepare(&split, src, phase),
                OpMatrix::Dense(m) => Kind::Dense(dense::prepare(&split, m)),
            }
        };
        Prepared {
            split,
            kind,
            run: runner::<F>(level.min(SimdLevel::detected())),
        }
    }

    /// Applies the operation to `blocks`, a state of the size it was prepared for.
    pub(crate) fn apply(&self, blocks: &mut [Block<F>], par: &Parallelism) {
        let split = &self.split;
        debug_assert_eq!(
            blocks.len(),
            block_address::<F>(split.block_count() - 1) + 1
        );
        (self.run)(split, &self.kind, BlockPtr::new(blocks), par);
    }
}

/// Calls `f(base, len)` for every run of groups of `split` (see
/// [`Split::for_each_run`]), the groups shared out over `par`'s threads and
/// each thread's share run inside [`Lanes::vectorize`]. `f` must be an
/// `#[inline(always)]` closure, so that it is compiled into that code.
#[inline(always)]
fn for_each_run_at<F: Float, V: Lanes<F>>(
    split: &Split,
    par: &Parallelism,
    f: impl Fn(usize, usize) + Sync,
) {
    par.for_each_range(split.num_groups, split.nb() * F::LANES, |groups| {
        V::vectorize(
            #[inline(always)]
            || {
                // Not `&f`: `&F`'s `FnMut` is a std shim, not always inlined,
                // and the body would then be compiled outside the level.
                #[allow(clippy::redundant_closure)]
                split.for_each_run(
                    groups,
                    #[inline(always)]
                    |base, len| f(base, len),
                )
            },
        )
    });
}

/// A raw pointer to the state's blocks that worker threads may share.
///
/// Kernels write through it from several threads at once; this is sound
/// because each thread handles a disjoint range of groups and distinct
/// groups address distinct blocks (see [`Split::group_base`]).
#[derive(Clone, Copy)]
struct BlockPtr<F: Float>(*mut Block<F>, usize);

// SAFETY: the pointer is only dereferenced at indices below its length, and
// concurrent users touch disjoint blocks (see the type's documentation).
unsafe impl<F: Float> Send for BlockPtr<F> {}
// SAFETY: as above.
unsafe impl<F: Float> Sync for BlockPtr<F> {}

impl<F: Float> BlockPtr<F> {
    fn new(blocks: &mut [Block<F>]) -> Self {
        BlockPtr(blocks.as_mut_ptr(), blocks.len())
    }

    /// Reads logical block `i`.
    ///
    /// # Safety
    /// No other thread may be writing block `i`.
    #[inline(always)]
    unsafe fn load<V: Lanes<F>>(self, i: usize) -> Reg<V> {
        let a = block_address::<F>(i);
        debug_assert!(a < self.1);
        // SAFETY: `a` is in bounds (the group arithmetic guarantees it, and
        // debug builds check it); exclusivity is the caller's contract.
        Reg::load(unsafe { &*self.0.add(a) })
    }

    /// Where logical block `i` lives: the start of a run of blocks (see
    /// [`Split::for_each_run`]).
    #[inline(always)]
    fn at(self, i: usize) -> *mut Block<F> {
        let a = block_address::<F>(i);
        debug_assert!(a < self.1);
        self.0.wrapping_add(a)
    }

    /// The `len` blocks of the buffer from physical position `start`.
    ///
    /// # Safety
    /// No other thread may use any of them while the slice lives, and
    /// `start + len` may not exceed the buffer's length.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [Block<F>] {
        assert!(start + len <= self.1, "slice past the end of the state");
        // SAFETY: in bounds (checked); exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }

    /// Writes logical block `i`.
    ///
    /// # Safety
    /// No other thread may be reading or writing block `i`.
    #[inline(always)]
    unsafe fn store<V: Lanes<F>>(self, i: usize, b: Reg<V>) {
        let a = block_address::<F>(i);
        debug_assert!(a < self.1);
        // SAFETY: as in `load`.
        b.store(unsafe { &mut *self.0.add(a) });
    }
}

/// A block in the registers of one SIMD level: `V` is [`Lanes`].
#[derive(Clone, Copy)]
struct Reg<V> {
    re: V,
    im: V,
}

impl<V> Reg<V> {
    /// Loads a block of the state (or of prepared coefficients).
    #[inline(always)]
    fn load<F: Float>(b: &Block<F>) -> Self
    where
        V: Lanes<F>,
    {
        Reg {
            re: V::load(&b.re),
            im: V::load(&b.im),
        }
    }

    /// Stores into a block of the state.
    #[inline(always)]
    fn store<F: Float>(self, to: &mut Block<F>)
    where
        V: Lanes<F>,
    {
        self.re.store(&mut to.re);
        self.im.store(&mut to.im);
    }

    #[inline(always)]
    fn zero<F: Float>() -> Self
    where
        V: Lanes<F>,
    {
        let z = V::splat(F::from_f64(0.0));
        Reg { re: z, im: z }
    }
}

/// `acc += c · x` on complex blocks (four fused multiply-adds).
#[inline(always)]
fn cmul_add<F: Float, V: Lanes<F>>(c: &Reg<V>, x: &Reg<V>, acc: &mut Reg<V>) {
    acc.re = c.re.mul_add(x.re, acc.re);
    acc.re = c.im.mul_neg_add(x.im, acc.re);
    acc.im = c.re.mul_add(x.im, acc.im);
    acc.im = c.im.mul_add(x.re, acc.im);
}

/// `c · x` on complex blocks.
#[inline(always)]
fn cmul<F: Float, V: Lanes<F>>(c: &Reg<V>, x: &Reg<V>) -> Reg<V> {
    Reg {
        re: c.im.mul_neg_add(x.im, c.re * x.re),
        im: c.im.mul_add(x.re, c.re * x.im),
    }
}

/// Permutes the lanes of both halves of a block: lane `i` takes lane `i ^ mask`.
#[inline(always)]
fn xor_lanes<F: Float, V: Lanes<F>>(b: &Reg<V>, mask: usize) -> Reg<V> {
    Reg {
        re: b.re.xor_lanes(mask),
        im: b.im.xor_lanes(mask),
    }
}

/// A block whose lane `l` is `f(l)`, converted to precision `F`.
fn coefficient_block<F: Float>(mut f: impl FnMut(usize) -> num_complex::Complex64) -> Block<F> {
    let values: Vec<_> = (0..F::LANES).map(&mut f).collect();
    Block {
        re: F::from_fn(|l| F::from_f64(values[l].re)),
        im: F::from_fn(|l| F::from_f64(values[l].im)),
    }
}

/// Whether every amplitude of `blocks` is +0 (bit for bit: a -0.0 counts
/// as non-zero, which only means its work is done). Stops at the first
/// non-zero cache line, so dense data costs one line. Zero work is what the
/// stage and permutation kernels skip (see `chunks`, `monomial`).
#[inline(always)]
pub(super) fn all_zero<F: Float>(blocks: &[Block<F>]) -> bool {
    // SAFETY: `Block<F>` is plain f32/f64 data without padding, so every
    // byte is initialised; the slice borrows `blocks` for no longer than
    // this call.
    all_zero_bytes(unsafe {
        std::slice::from_raw_parts(blocks.as_ptr().cast::<u8>(), std::mem::size_of_val(blocks))
    })
}

/// Whether every byte of `bytes` is zero, read as u64 words a cache line at
/// a time (blocks are 64-byte aligned, so theirs have no ragged ends).
#[inline(always)]
pub(crate) fn all_zero_bytes(bytes: &[u8]) -> bool {
    const WORDS: usize = 64 / std::mem::size_of::<u64>();
    // SAFETY: every bit pattern is a valid u64.
    let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
    head.iter().chain(tail).all(|&b| b == 0)
        && words
            .chunks(WORDS)
            .all(|line| line.iter().fold(0, |acc, w| acc | w) == 0)
}
