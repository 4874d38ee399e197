//! The state vector: one contiguous, aligned buffer of `2^n` amplitudes in
//! blocks of `LANES` real parts followed by `LANES` imaginary parts.
//!
//! Amplitude `i` lives in logical block `i / LANES`, lane `i % LANES`; after
//! every 128 MiB of blocks the buffer leaves a 64 KiB gap (see
//! [`block_address`]). A state of
//! fewer than `log2(LANES)` qubits still occupies one block; the lanes past
//! `2^n` stay zero. Memory is `16·2^n` bytes at f64 and `8·2^n` at f32; it is
//! checked against the caller's budget before anything is allocated, and the
//! allocation itself is fallible, so asking for too much is an error, never an
//! abort.

use kettle_ir::{Control, Gate, GateMatrix, Qubit};
use num_complex::{Complex, Complex64};

use crate::blocking::Stage;
use crate::buffer::Buffer;
use crate::error::SimError;
use crate::float::Float;
use crate::kernels;
use crate::op::KernelOp;
use crate::par::Parallelism;

/// `LANES` real parts then `LANES` imaginary parts: the unit kernels load.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Block<F: Float> {
    pub(crate) re: F::V,
    pub(crate) im: F::V,
}

// Kernels load whole blocks; one block must start on a cache line.
const _: () = assert!(std::mem::align_of::<Block<f64>>() == 64);
const _: () = assert!(std::mem::align_of::<Block<f32>>() == 64);

impl<F: Float> Block<F> {
    pub(crate) fn zero() -> Self {
        let z = F::splat(F::from_f64(0.0));
        Block { re: z, im: z }
    }
}

/// Bytes of state between two gaps in the buffer.
const SEGMENT_BYTES: usize = 1 << 27;
/// Bytes of each gap.
const GAP_BYTES: usize = 1 << 16;

/// Logical blocks between two gaps: runs of consecutive blocks aligned to
/// this many (or a divisor of it) are consecutive in the buffer too.
pub(crate) const fn segment_blocks<F: Float>() -> usize {
    SEGMENT_BYTES / std::mem::size_of::<Block<F>>()
}

/// Where logical block `b` lives in the buffer: after every 128 MiB of
/// blocks comes a 64 KiB gap that is never used.
///
/// Why: a gate on a high qubit pairs blocks a power of two apart. On the
/// reference machine, reading and writing two streams exactly 2^28 bytes or
/// more apart ran at half the bandwidth of any nearer pair (DRAM bank
/// conflicts: a plain C loop took 1.76–2.3 passes instead of 0.91), while the
/// same distance plus 8 KiB to 4 MiB ran at full speed (0.93–1.0 passes).
/// The gaps make every such distance a power of two plus a multiple of
/// 64 KiB, for 0.05% more memory.
#[inline(always)]
pub(crate) fn block_address<F: Float>(b: usize) -> usize {
    let block = std::mem::size_of::<Block<F>>();
    let shift = (SEGMENT_BYTES / block).trailing_zeros();
    b + (b >> shift) * (GAP_BYTES / block)
}

/// The precision of a state, for callers that choose it at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Single precision: 8 bytes per amplitude.
    F32,
    /// Double precision: 16 bytes per amplitude.
    #[default]
    F64,
}

impl Precision {
    /// Bytes a state of `num_qubits` qubits occupies at this precision.
    pub fn state_bytes(self, num_qubits: u32) -> u128 {
        match self {
            Precision::F32 => StateVector::<f32>::bytes_for(num_qubits),
            Precision::F64 => StateVector::<f64>::bytes_for(num_qubits),
        }
    }

    /// `"f32"` or `"f64"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }
}

/// The largest qubit count a state may have on a 64-bit machine; the memory
/// budget is usually the tighter limit.
pub const MAX_QUBITS: u32 = 50;

/// A pure state of `n` qubits at precision `F`.
#[derive(Debug)]
pub struct StateVector<F: Float> {
    num_qubits: u32,
    blocks: Buffer<Block<F>>,
    /// Chunk buffers for cache blocking, mapped on first use.
    scratch: kernels::ChunkScratch<F>,
}

impl<F: Float> Clone for StateVector<F> {
    fn clone(&self) -> Self {
        StateVector {
            num_qubits: self.num_qubits,
            blocks: self.blocks.clone(),
            scratch: kernels::ChunkScratch::default(),
        }
    }
}

impl<F: Float> StateVector<F> {
    /// Bytes a state of `num_qubits` qubits occupies: `2·size_of::<F>()·2^n`
    /// (at least one block). Exact, never overflows.
    pub fn bytes_for(num_qubits: u32) -> u128 {
        let block = std::mem::size_of::<Block<F>>() as u128;
        let blocks = 1u128
            .checked_shl(num_qubits)
            .unwrap_or(u128::MAX)
            .max(F::LANES as u128)
            / F::LANES as u128;
        let gaps = (blocks - 1) / (SEGMENT_BYTES as u128 / block);
        blocks
            .saturating_add(gaps.saturating_mul(GAP_BYTES as u128 / block))
            .saturating_mul(block)
    }

    /// |0…0⟩ on `num_qubits` qubits, with no memory budget.
    ///
    /// # Errors
    /// [`SimError::MemoryBudget`] above [`MAX_QUBITS`],
    /// [`SimError::OutOfMemory`] if the allocation fails.
    pub fn new(num_qubits: u32) -> Result<Self, SimError> {
        Self::with_budget(num_qubits, None)
    }

    /// |0…0⟩ on `num_qubits` qubits, refused before allocating if it would
    /// take more than `budget` bytes.
    ///
    /// # Errors
    /// [`SimError::MemoryBudget`] if it does not fit (or exceeds
    /// [`MAX_QUBITS`]), [`SimError::OutOfMemory`] if the allocation fails.
    pub fn with_budget(num_qubits: u32, budget: Option<u64>) -> Result<Self, SimError> {
        check_budget::<F>(num_qubits, 1, budget)?;
        let mut state = StateVector {
            num_qubits,
            blocks: alloc_zeroed_blocks::<F>(Self::buffer_len(num_qubits))?,
            scratch: kernels::ChunkScratch::default(),
        };
        state.set_amplitude_unchecked(0, Complex::new(F::from_f64(1.0), F::from_f64(0.0)));
        Ok(state)
    }

    /// A state holding `amplitudes` (index order as everywhere: qubit 0 is
    /// the least significant bit). Not renormalised.
    ///
    /// # Errors
    /// [`SimError::BadAmplitudeCount`] unless the length is a power of two.
    pub fn from_amplitudes(amplitudes: &[Complex64]) -> Result<Self, SimError> {
        let len = amplitudes.len();
        if !len.is_power_of_two() {
            return Err(SimError::BadAmplitudeCount { len });
        }
        let num_qubits = len.trailing_zeros();
        let mut state = StateVector {
            num_qubits,
            blocks: alloc_zeroed_blocks::<F>(Self::buffer_len(num_qubits))?,
            scratch: kernels::ChunkScratch::default(),
        };
        for (i, a) in amplitudes.iter().enumerate() {
            state.set_amplitude_unchecked(i, Complex::new(F::from_f64(a.re), F::from_f64(a.im)));
        }
        Ok(state)
    }

    /// A state whose amplitude `i` is `amplitude(i)` (not renormalised),
    /// refused before allocating if the budget cannot hold it beside one
    /// other state (the one `amplitude` usually reads).
    ///
    /// # Errors
    /// As [`with_budget`](Self::with_budget).
    pub(crate) fn from_fn(
        num_qubits: u32,
        budget: Option<u64>,
        amplitude: impl Fn(usize) -> Complex64,
    ) -> Result<Self, SimError> {
        check_budget::<F>(num_qubits, 2, budget)?;
        let mut blocks = alloc_zeroed_blocks::<F>(Self::buffer_len(num_qubits))?;
        let len = 1usize << num_qubits;
        // At most 16 lanes (f32 on AVX-512).
        let mut values = [Complex64::new(0.0, 0.0); 16];
        for b in 0..Self::logical_blocks(num_qubits) {
            for (l, v) in values.iter_mut().take(F::LANES).enumerate() {
                let i = b * F::LANES + l;
                *v = if i < len {
                    amplitude(i)
                } else {
                    Complex64::new(0.0, 0.0)
                };
            }
            blocks[block_address::<F>(b)] = Block {
                re: F::from_fn(|l| F::from_f64(values[l].re)),
                im: F::from_fn(|l| F::from_f64(values[l].im)),
            };
        }
        Ok(StateVector {
            num_qubits,
            blocks,
            scratch: kernels::ChunkScratch::default(),
        })
    }

    /// A copy, refused if the budget cannot hold `live_states + 1` states.
    ///
    /// # Errors
    /// As [`with_budget`](Self::with_budget).
    pub fn try_clone(&self, live_states: u32, budget: Option<u64>) -> Result<Self, SimError> {
        check_budget::<F>(self.num_qubits, live_states + 1, budget)?;
        Ok(StateVector {
            num_qubits: self.num_qubits,
            blocks: self.blocks.try_clone()?,
            scratch: kernels::ChunkScratch::default(),
        })
    }

    /// Logical blocks of a state of `num_qubits` qubits.
    fn logical_blocks(num_qubits: u32) -> usize {
        (1usize << num_qubits).div_ceil(F::LANES)
    }

    /// Blocks in the buffer, gaps included.
    pub(crate) fn buffer_len(num_qubits: u32) -> usize {
        block_address::<F>(Self::logical_blocks(num_qubits) - 1) + 1
    }

    /// Number of logical blocks.
    pub(crate) fn block_count(&self) -> usize {
        Self::logical_blocks(self.num_qubits)
    }

    /// Logical block `b`.
    #[inline(always)]
    pub(crate) fn block(&self, b: usize) -> &Block<F> {
        &self.blocks[block_address::<F>(b)]
    }

    /// Number of qubits.
    pub fn num_qubits(&self) -> u32 {
        self.num_qubits
    }

    /// Number of amplitudes, `2^n`.
    pub fn len(&self) -> usize {
        1 << self.num_qubits
    }

    /// Never true: a state has at least one amplitude.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Amplitude of basis state `index`.
    ///
    /// # Errors
    /// [`SimError::IndexOutOfRange`] if `index >= 2^n`.
    pub fn amplitude(&self, index: u64) -> Result<Complex<F>, SimError> {
        if index >= self.len() as u64 {
            return Err(SimError::IndexOutOfRange {
                index,
                num_qubits: self.num_qubits,
            });
        }
        Ok(self.amp(index as usize))
    }

    #[inline]
    pub(crate) fn amp(&self, index: usize) -> Complex<F> {
        let b = self.block(index / F::LANES);
        let l = index % F::LANES;
        Complex::new(F::lane(&b.re, l), F::lane(&b.im, l))
    }

    fn set_amplitude_unchecked(&mut self, index: usize, value: Complex<F>) {
        let b = &mut self.blocks[block_address::<F>(index / F::LANES)];
        let l = index % F::LANES;
        let set = |v: &mut F::V, x: F| {
            let old = *v;
            *v = F::from_fn(|i| if i == l { x } else { F::lane(&old, i) });
        };
        set(&mut b.re, value.re);
        set(&mut b.im, value.im);
    }

    /// All amplitudes at this precision, in basis-state order.
    pub fn to_vec(&self) -> Vec<Complex<F>> {
        (0..self.len()).map(|i| self.amp(i)).collect()
    }

    /// All amplitudes widened to f64, in basis-state order.
    pub fn to_vec_f64(&self) -> Vec<Complex64> {
        (0..self.len())
            .map(|i| {
                let a = self.amp(i);
                Complex64::new(a.re.to_f64(), a.im.to_f64())
            })
            .collect()
    }

    /// `⟨ψ|ψ⟩`, summed in a fixed order (the same for any thread count).
    pub fn norm_sqr(&self, par: &Parallelism) -> f64 {
        kernels::reduce::piece_norms(self, par).iter().sum()
    }

    /// Applies `gate` to `qubits` where every control holds.
    ///
    /// # Errors
    /// [`SimError::Gate`] for an invalid gate (qubit out of range,
    /// duplicates, wrong arity or parameters).
    pub fn apply_gate(
        &mut self,
        gate: &Gate,
        qubits: &[Qubit],
        controls: &[Control],
        par: &Parallelism,
    ) -> Result<(), SimError> {
        kettle_ir::check_gate(self.num_qubits, gate, qubits, controls)?;
        self.apply(&KernelOp::from_gate(gate, qubits, controls), par);
        Ok(())
    }

    /// Applies an arbitrary (not necessarily unitary) matrix to `qubits`.
    /// Used for collapse and by tests; the caller guarantees the qubits are
    /// valid and distinct.
    pub(crate) fn apply_matrix(
        &mut self,
        matrix: &GateMatrix,
        qubits: &[Qubit],
        par: &Parallelism,
    ) {
        self.apply(&KernelOp::from_matrix(matrix, qubits, &[]), par);
    }

    /// Applies a lowered operation (qubits already validated).
    pub(crate) fn apply(&mut self, op: &KernelOp, par: &Parallelism) {
        kernels::apply(&mut self.blocks, self.num_qubits, op, par);
    }

    /// [`StateVector::apply_gate`] with the kernels of `level` (which the
    /// CPU must run), whatever the process's level: tests compare levels.
    #[cfg(test)]
    pub(crate) fn apply_gate_at_level(
        &mut self,
        level: crate::cpu::SimdLevel,
        gate: &Gate,
        qubits: &[Qubit],
        controls: &[Control],
        par: &Parallelism,
    ) {
        let op = KernelOp::from_gate(gate, qubits, controls);
        kernels::Prepared::<F>::at_level(level, self.num_qubits, &op).apply(&mut self.blocks, par);
    }

    /// Applies a compiled program of gates only (no measurement, reset or
    /// branch: its instructions are passes and stages).
    pub(crate) fn apply_program(&mut self, program: &crate::program::Program, par: &Parallelism) {
        self.apply_passes(&program.instrs, par);
    }

    /// Applies passes and stages (instructions of nothing else).
    pub(crate) fn apply_passes(&mut self, instrs: &[crate::program::Instr], par: &Parallelism) {
        for instr in instrs {
            match instr {
                crate::program::Instr::Apply(op) => self.apply(op, par),
                crate::program::Instr::Stage(stage) => self.apply_stage(stage, par),
                other => unreachable!("passes only, not {other:?}"),
            }
        }
    }

    /// |0…0⟩'s shape with every amplitude zero: a slice of a distributed
    /// state on any rank but the first.
    pub(crate) fn zeros(num_qubits: u32, budget: Option<u64>) -> Result<Self, SimError> {
        check_budget::<F>(num_qubits, 1, budget)?;
        Ok(StateVector {
            num_qubits,
            blocks: alloc_zeroed_blocks::<F>(Self::buffer_len(num_qubits))?,
            scratch: kernels::ChunkScratch::default(),
        })
    }

    /// Where amplitude `index`'s real part lies in [`numbers_mut`]
    /// (its imaginary part lies `F::LANES` further).
    pub(crate) fn number_position(index: usize) -> usize {
        block_address::<F>(index / F::LANES) * 2 * F::LANES + index % F::LANES
    }

    /// The buffer as plain numbers: per block, the real parts of its lanes,
    /// then the imaginary parts (see [`number_position`]).
    #[allow(unsafe_code)]
    pub(crate) fn numbers_mut(&mut self) -> &mut [F] {
        const { assert!(std::mem::size_of::<Block<F>>() == 2 * F::LANES * std::mem::size_of::<F>()) };
        let len = self.blocks.len() * 2 * F::LANES;
        // SAFETY: a block is two vectors of `F::LANES` numbers each, with
        // no padding (checked above), so the buffer is `len` valid `F`s;
        // the slice borrows `self` mutably.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<F>(), len) }
    }

    /// The buffer's bytes: block `b` (of [`block_address`]) is the
    /// `size_of::<Block<F>>()` bytes from `block_address(b)` times that.
    #[allow(unsafe_code)]
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        let len = std::mem::size_of_val::<[Block<F>]>(&self.blocks);
        // SAFETY: blocks are plain f32/f64 data without padding (see
        // `numbers_mut`), so every byte is initialised and any bytes written
        // make valid numbers; the slice borrows `self` mutably.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<u8>(), len) }
    }

    /// Applies a stage of cache blocking, chunk by chunk.
    pub(crate) fn apply_stage(&mut self, stage: &Stage, par: &Parallelism) {
        kernels::apply_stage(&mut self.blocks, self.num_qubits, stage, par, &self.scratch);
    }

    #[cfg(test)]
    pub(crate) fn blocks(&self) -> &[Block<F>] {
        &self.blocks
    }
}

/// Fails unless `copies` states of `num_qubits` qubits fit in `budget`.
pub(crate) fn check_budget<F: Float>(
    num_qubits: u32,
    copies: u32,
    budget: Option<u64>,
) -> Result<(), SimError> {
    let needed = StateVector::<F>::bytes_for(num_qubits).saturating_mul(u128::from(copies));
    let over_budget = budget.is_some_and(|b| needed > u128::from(b));
    if over_budget || num_qubits > MAX_QUBITS {
        return Err(SimError::MemoryBudget {
            qubits: num_qubits,
            precision: F::NAME,
            needed,
            budget: budget.unwrap_or(StateVector::<F>::bytes_for(MAX_QUBITS) as u64),
        });
    }
    Ok(())
}

#[allow(unsafe_code)]
fn alloc_zeroed_blocks<F: Float>(count: usize) -> Result<Buffer<Block<F>>, SimError> {
    // SAFETY: all-zero bytes are a valid `Block<F>` (plain arrays of
    // f32/f64 whose zero is 0.0). Zeroed pages are mapped lazily, so a
    // fresh state costs no pass.
    let mut blocks = unsafe { Buffer::<Block<F>>::zeroed(count) }?;
    let bytes = std::mem::size_of_val(&*blocks);
    ask_for_huge_pages(blocks.as_mut_ptr().cast(), bytes);
    Ok(blocks)
}

/// Asks Linux to back a large buffer with transparent huge pages, before
/// anything touches it.
///
/// Why: the first write to each page of a fresh state faults, and under a
/// hypervisor each 4 KiB fault is expensive: zeroing a 128 MiB state on
/// first touch took 0.36 s of a 2.6 s run (rqc_24, f32) on the reference
/// machine. Huge pages fault 512 times less often. Where THP is disabled
/// (or another OS runs this) the hint is ignored and nothing changes.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn ask_for_huge_pages(ptr: *mut u8, len: usize) {
    const HUGE: usize = 1 << 21;
    if len < 4 * HUGE {
        return;
    }
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize + len) / HUGE * HUGE;
    if end > start {
        // SAFETY: the range lies inside our own fresh allocation and is
        // page-aligned; MADV_HUGEPAGE changes no contents, only how pages
        // are backed. A failure (THP unsupported) is harmless and ignored.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn ask_for_huge_pages(_: *mut u8, _: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_formula() {
        // 256 MiB of f64 state: one 64 KiB gap after the first 128 MiB.
        assert_eq!(StateVector::<f64>::bytes_for(24), (16 << 24) + (1 << 16));
        assert_eq!(StateVector::<f32>::bytes_for(24), 8 << 24);
        assert_eq!(StateVector::<f64>::bytes_for(22), 16 << 22);
        assert_eq!(
            StateVector::<f64>::bytes_for(30),
            (16 << 30) + 127 * (1 << 16)
        );
        assert_eq!(StateVector::<f64>::bytes_for(0), 16 * f64::LANES as u128);
        assert_eq!(StateVector::<f64>::bytes_for(200), u128::MAX);
        assert_eq!(Precision::F32.state_bytes(30), (8 << 30) + 63 * (1 << 16));
    }

    #[test]
    fn budget_is_checked_before_allocating() {
        let err = StateVector::<f64>::with_budget(40, Some(1 << 30)).unwrap_err();
        assert!(matches!(err, SimError::MemoryBudget { qubits: 40, .. }));
        // Far beyond any machine: refused without trying to allocate.
        assert!(StateVector::<f64>::new(60).is_err());
        let ok = StateVector::<f64>::with_budget(10, Some(16 << 10)).unwrap();
        assert_eq!(ok.amplitude(0).unwrap().re, 1.0);
        assert!(StateVector::<f64>::with_budget(10, Some((16 << 10) - 1)).is_err());
    }

    #[test]
    fn gaps_leave_blocks_in_order_and_amplitudes_in_place() {
        let per_segment = SEGMENT_BYTES / std::mem::size_of::<Block<f64>>();
        assert_eq!(block_address::<f64>(per_segment - 1), per_segment - 1);
        assert_eq!(
            block_address::<f64>(per_segment),
            per_segment + GAP_BYTES / std::mem::size_of::<Block<f64>>()
        );
        let len = StateVector::<f64>::buffer_len(24);
        assert_eq!(
            len * std::mem::size_of::<Block<f64>>(),
            StateVector::<f64>::bytes_for(24) as usize
        );
    }

    #[test]
    fn buffer_is_cache_line_aligned() {
        let s = StateVector::<f32>::new(12).unwrap();
        assert_eq!(s.blocks().as_ptr() as usize % 64, 0);
    }

    #[test]
    fn small_states_pad_one_block() {
        let s = StateVector::<f32>::new(1).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.to_vec().len(), 2);
        assert!(s.amplitude(2).is_err());
        let amps = [Complex64::new(0.6, 0.0), Complex64::new(0.0, 0.8)];
        let t = StateVector::<f64>::from_amplitudes(&amps).unwrap();
        assert_eq!(t.to_vec_f64(), amps);
        assert!(StateVector::<f64>::from_amplitudes(&amps[..1]).is_ok());
        assert!(StateVector::<f64>::from_amplitudes(&[amps[0]; 3]).is_err());
    }
}
