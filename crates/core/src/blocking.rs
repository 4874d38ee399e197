//! Cache blocking: cuts a run of operations into *stages* whose qubits fit
//! in one cache-sized chunk of the state, so that a whole stage costs one
//! pass over memory instead of one pass per operation.
//!
//! A chunk is the set of amplitudes that agree on every qubit outside the
//! stage's qubits. The lowest `low` qubits are in every chunk (they make its
//! contiguous segments, long enough to stream from memory at full speed);
//! the rest of a stage's qubits can be any others. The kernels copy each
//! chunk into a small buffer (`kernels::apply_stage`), apply every operation
//! of the stage to it there, and copy it back; a chunk made of the lowest
//! qubits only is updated in place.
//!
//! The planner is greedy in circuit order, and follows each qubit's time line
//! the way the fuser does: an operation joins the stage if its qubits fit in
//! the chunk and no earlier operation on any of them was left for a later
//! stage, unless both act diagonally on every qubit they share (as a
//! diagonal does on all of its qubits and a controlled gate on its
//! controls: such operations commute); otherwise it is left, and its qubits
//! are closed for this stage. Operations left behind keep their order, and
//! an operation taken commutes with every earlier one left behind, so the
//! stages apply the same unitary as the run. Within a stage, gates are
//! fused into smaller blocks than between passes
//! (`FusionConfig::stage_max_qubits`): in cache, a fused block's arithmetic
//! is the whole cost.

use std::collections::VecDeque;

use kettle_ir::{Control, Qubit};
use smallvec::SmallVec;

use crate::cpu::Caches;
use crate::float::Float;
use crate::fusion::{Bound, FusionConfig, fold_conjugated_diagonals, fuse};
use crate::op::{KernelOp, LeftBehind};
use crate::program::Instr;
use crate::state::segment_blocks;

/// How the state is cut into chunks for cache blocking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheBlocking {
    /// No stages: every operation is one pass over the state.
    Off,
    /// Chunks sized by the CPU's caches and the thread count
    /// ([`auto_chunk_bytes`]), segments of at least [`SEGMENT_BYTES`] (the
    /// default).
    Auto,
    /// Chunks of `2^chunk_qubits` amplitudes whose lowest `low_qubits`
    /// qubits are in every chunk (raised to one SIMD block where needed;
    /// chunks are at most 128 MiB).
    Chunks {
        /// Qubits per chunk.
        chunk_qubits: u32,
        /// Qubits every chunk holds contiguously.
        low_qubits: u32,
    },
}

/// Bytes of one chunk with [`CacheBlocking::Auto`] on `threads` threads:
/// half of the last-level cache's share per thread (the other half holds
/// the state's lines on their way to and from memory), between half of one
/// core's L2 and [`MAX_CHUNK_BYTES`], rounded down to a power of two.
///
/// Larger chunks take more operations per stage, so fewer passes over
/// memory, and a chunk in L3 still serves the kernels fast enough: on the
/// reference machine (Zen 4, 1 MiB of L2 per core, 32 MiB of L3), 8 MiB
/// chunks ran rqc, qaoa and qft at 24 and 26 qubits 1.1–2.3× faster than
/// 512 KiB ones (rqc_26 f32: 31 passes down to 4), with 16 MiB slower
/// again (`benches/RESULTS.md`).
pub fn auto_chunk_bytes(threads: usize) -> usize {
    let caches = Caches::detected();
    let low = caches.l2 / 2;
    let bytes = (caches.l3 / (2 * threads.max(1))).clamp(low, MAX_CHUNK_BYTES.max(low));
    1 << bytes.ilog2()
}

/// The largest chunk [`auto_chunk_bytes`] gives.
pub const MAX_CHUNK_BYTES: usize = 8 << 20;

/// Bytes of the shortest contiguous segment of a chunk with
/// [`CacheBlocking::Auto`]. Shorter segments leave the planner more choice
/// of qubits (fewer passes) but stream from memory more slowly; 512 B to
/// 2 KiB ran alike in 8 MiB chunks.
pub const SEGMENT_BYTES: usize = 1 << 10;

/// The shape of a chunk: its qubits in all, and how many of them are the
/// state's lowest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkShape {
    pub(crate) qubits: u32,
    pub(crate) low: u32,
}

impl CacheBlocking {
    /// The chunk shape at precision `F` for a run on `threads` threads,
    /// `None` when blocking is off.
    pub(crate) fn shape<F: Float>(self, threads: usize) -> Option<ChunkShape> {
        let amp = 2 * std::mem::size_of::<F>();
        let (qubits, low) = match self {
            CacheBlocking::Off => return None,
            CacheBlocking::Auto => (
                (auto_chunk_bytes(threads) / amp).trailing_zeros(),
                (SEGMENT_BYTES / amp).trailing_zeros(),
            ),
            CacheBlocking::Chunks {
                chunk_qubits,
                low_qubits,
            } => (chunk_qubits, low_qubits),
        };
        // A chunk must lie between two of the buffer's gaps, so that its
        // blocks are contiguous (see `state::block_address`).
        let qubits = qubits.min((segment_blocks::<F>() * F::LANES).trailing_zeros());
        let low = low.max(F::LOG_LANES);
        (qubits > low).then_some(ChunkShape { qubits, low })
    }
}

/// Operations on the qubits of one chunk.
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    /// State qubits `0..low` are chunk qubits `0..low`.
    pub(crate) low: u32,
    /// Chunk qubit `low + i` is state qubit `high[i]` (ascending, none
    /// below `low`, the first not equal to `low`).
    pub(crate) high: SmallVec<[Qubit; 16]>,
    /// The state qubits that index the chunks the stage visits (ascending):
    /// every qubit outside the stage, except those still |0⟩ in every
    /// amplitude (at the start of a circuit), whose other chunks hold zeros
    /// only and are left alone.
    pub(crate) spread: Vec<Qubit>,
    /// The chunk's segments still all zero when the stage begins: segment
    /// `s` of every chunk is zero if `s & untouched_high != 0` (bit `i` is
    /// set when `high[i]` is still |0⟩ in every amplitude), so the stage
    /// neither reads nor writes it unless an operation fills it.
    pub(crate) untouched_high: usize,
    /// The operations, on chunk qubits.
    pub(crate) ops: Vec<KernelOp>,
}

impl Stage {
    /// Qubits per chunk.
    pub(crate) fn qubits(&self) -> u32 {
        self.low + self.high.len() as u32
    }
}

/// Compiles a straight run of unitary operations on `n` qubits into
/// instructions: stages where a chunk shape is given and the state is larger
/// than a chunk; operations fused as in a stage where the whole state fits
/// in one chunk; operations fused for passes over memory otherwise.
/// `touched`: the qubits along which the state may already be spread (every
/// amplitude with a 1 on another qubit is zero: none for |0…0⟩, all when
/// nothing is known), so that stages skip the chunks still all zero.
pub(crate) fn plan(
    ops: Vec<KernelOp>,
    n: u32,
    shape: Option<ChunkShape>,
    fusion: &FusionConfig,
    touched: u64,
) -> Vec<Instr> {
    let ops = if fusion.enabled {
        fold_conjugated_diagonals(ops)
    } else {
        ops
    };
    let Some(shape) = shape.filter(|_| fusion.enabled) else {
        return applied(ops, fusion, Bound::Memory).collect();
    };
    let in_stage = FusionConfig {
        max_qubits: fusion.stage_max_qubits,
        ..*fusion
    };
    if n <= shape.qubits {
        // The whole state is one chunk and stays in cache: fuse as in a stage
        // (f32, n = 16: 0.51 ns per gate and amplitude with 4-qubit blocks).
        return applied(ops, &in_stage, Bound::Arithmetic).collect();
    }
    let mut out = Vec::new();
    // Operations that each need a pass of their own, fused together.
    let mut single: Vec<KernelOp> = Vec::new();
    // In place: a program may have a million operations.
    let mut ops = ops;
    ops.retain(|op| !op.is_identity());
    let mut remaining = VecDeque::from(ops);
    while !remaining.is_empty() {
        let (qubits, taken) = take_stage(&mut remaining, shape);
        if taken.is_empty() {
            // The first operation fits in no chunk.
            single.extend(remaining.pop_front());
            continue;
        }
        let mut fused = fuse(taken, &in_stage, Bound::Arithmetic);
        if fused.len() == 1 {
            single.append(&mut fused);
            continue;
        }
        out.extend(applied(std::mem::take(&mut single), fusion, Bound::Memory));
        out.push(Instr::Stage(Stage::new(&qubits, shape.low, fused)));
    }
    out.extend(applied(single, fusion, Bound::Memory));
    // Qubits that may be 1 in some amplitude with a non-zero value: an
    // operation can only spread the state along its own qubits.
    let mut touched = touched;
    for instr in &mut out {
        match instr {
            Instr::Apply(op) => touched |= mask(op.qubits()),
            Instr::Stage(stage) => {
                let local = mask(0..stage.low) | mask(stage.high.iter().copied());
                stage.spread = (0..n)
                    .filter(|&q| local >> q & 1 == 0 && touched >> q & 1 == 1)
                    .collect();
                stage.untouched_high = stage
                    .high
                    .iter()
                    .enumerate()
                    .filter(|&(_, &q)| touched >> q & 1 == 0)
                    .fold(0, |m, (i, _)| m | 1 << i);
                touched |= local;
            }
            _ => {}
        }
    }
    out
}

/// `ops` fused by `config`, each applied in a pass of its own.
fn applied(ops: Vec<KernelOp>, config: &FusionConfig, bound: Bound) -> impl Iterator<Item = Instr> {
    fuse(ops, config, bound).into_iter().map(Instr::Apply)
}

/// A set of qubits as a bit mask (states have at most 50 qubits).
pub(crate) fn mask(qubits: impl Iterator<Item = Qubit>) -> u64 {
    qubits.fold(0, |m, q| m | 1 << q)
}

/// Operations one stage may pass over and leave for later before it stops
/// looking further. Without a bound, a run of a million gates that each
/// close a stage would cost a million scans of a million gates; with it,
/// planning is linear. Stages of the benchmark circuits leave fewer than
/// this before every qubit is closed.
const SCAN_LIMIT: usize = 512;

/// Most operations one stage takes. A stage's operations are held twice
/// while it is planned (taken here, and fused), so a million gates that
/// all fit one chunk would double the planner's memory; past this, the next
/// stage goes on where this one stopped, for one more pass over memory
/// every few thousand gates. The benchmark circuits have under a thousand
/// gates in all.
const MAX_STAGE_OPS: usize = 4096;

/// One greedy stage, taken from the front of `ops`: its qubits (ascending,
/// the low ones included) and the operations it takes, in order. The
/// operations it leaves stay in `ops`, in order.
fn take_stage(ops: &mut VecDeque<KernelOp>, shape: ChunkShape) -> (Vec<Qubit>, Vec<KernelOp>) {
    // Qubit sets as bit masks: states have at most 50 qubits.
    let mut local: u64 = (1 << shape.low) - 1;
    let mut closed = LeftBehind::default();
    let (mut taken, mut left) = (Vec::new(), Vec::new());
    while left.len() < SCAN_LIMIT && taken.len() < MAX_STAGE_OPS {
        let Some(op) = ops.pop_front() else { break };
        let qubits = mask(op.qubits());
        let fits = (local | qubits).count_ones() <= shape.qubits;
        if fits && closed.lets_pass(&op) {
            local |= qubits;
            taken.push(op);
        } else {
            closed.leave(&op);
            left.push(op);
        }
    }
    for op in left.into_iter().rev() {
        ops.push_front(op);
    }
    let local = (0..64).filter(|q| local >> q & 1 == 1).collect();
    (local, taken)
}

impl Stage {
    /// A stage on `qubits` (ascending, `0..low` among them), its operations
    /// renumbered onto chunk qubits.
    fn new(qubits: &[Qubit], low: u32, ops: Vec<KernelOp>) -> Stage {
        // Qubits just above the low ones are as good as low: the segments grow.
        let low = qubits
            .iter()
            .enumerate()
            .take_while(|&(i, &q)| q == i as Qubit)
            .count()
            .max(low as usize) as u32;
        let high: SmallVec<[Qubit; 16]> = qubits.iter().copied().filter(|&q| q >= low).collect();
        let chunk_qubit = |q: Qubit| -> Qubit {
            if q < low {
                q
            } else {
                low + high.iter().position(|&h| h == q).expect("qubit in stage") as Qubit
            }
        };
        let ops = ops
            .into_iter()
            .map(|op| KernelOp {
                targets: op.targets.iter().map(|&q| chunk_qubit(q)).collect(),
                controls: op
                    .controls
                    .iter()
                    .map(|c| Control {
                        qubit: chunk_qubit(c.qubit),
                        on: c.on,
                    })
                    .collect(),
                matrix: op.matrix,
            })
            .collect();
        Stage {
            low,
            high,
            spread: Vec::new(),
            untouched_high: 0,
            ops,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kettle_ir::{Gate, StandardGate};

    fn op(g: StandardGate, qubits: &[Qubit]) -> KernelOp {
        KernelOp::from_gate(&Gate::standard(g, &[0.3]), qubits, &[])
    }

    fn stages(instrs: &[Instr]) -> Vec<&Stage> {
        instrs
            .iter()
            .filter_map(|i| match i {
                Instr::Stage(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_run_on_few_qubits_is_one_stage() {
        use StandardGate::*;
        // 12 qubits, chunks of 6 with 3 low: gates on 0, 1, 9, 10 fit in one chunk.
        let ops = vec![
            op(H, &[0]),
            op(Cx, &[0, 9]),
            op(Ry, &[10]),
            op(Cz, &[1, 10]),
        ];
        let shape = ChunkShape { qubits: 6, low: 3 };
        let instrs = plan(ops, 12, Some(shape), &FusionConfig::default(), u64::MAX);
        let st = stages(&instrs);
        assert_eq!(instrs.len(), 1);
        assert_eq!(st[0].low, 3);
        assert_eq!(st[0].high.as_slice(), &[9, 10]);
        // Every operation is on chunk qubits.
        assert!(st[0].ops.iter().all(|o| o.qubits().all(|q| q < 5)));
    }

    #[test]
    fn a_gate_that_does_not_fit_closes_its_qubits() {
        use StandardGate::*;
        // Chunks of 5 with 3 low: two free slots.
        let ops = vec![
            op(Cx, &[3, 4]), // takes both slots
            op(Cx, &[4, 5]), // 5 does not fit: 4 and 5 close
            op(H, &[4]),     // closed: waits
            op(Rx, &[3]),    // still open
            op(Ry, &[0]),    // low: always fits
        ];
        let shape = ChunkShape { qubits: 5, low: 3 };
        let mut ops: VecDeque<KernelOp> = ops.into();
        let (qubits, taken) = take_stage(&mut ops, shape);
        assert_eq!(qubits, vec![0, 1, 2, 3, 4]);
        assert_eq!(taken.len(), 3);
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].targets.as_slice(), &[5]);
    }

    #[test]
    fn a_diagonal_passes_a_diagonal_left_behind_and_nothing_else_does() {
        use StandardGate::*;
        // Chunks of 5 with 3 low: two free slots.
        let ops = vec![
            op(Rzz, &[3, 4]), // takes both slots
            op(Cz, &[4, 5]),  // 5 does not fit: left, a diagonal
            op(Rzz, &[3, 4]), // a diagonal on 4 as well: commutes, taken
            op(H, &[4]),      // not a diagonal: waits, and closes 4
            op(Rz, &[4]),     // behind h: waits
            op(Rz, &[3]),     // open
        ];
        let shape = ChunkShape { qubits: 5, low: 3 };
        let mut ops: VecDeque<KernelOp> = ops.into();
        let (_, taken) = take_stage(&mut ops, shape);
        assert_eq!(taken.len(), 3);
        let left: Vec<&[Qubit]> = ops.iter().map(|o| o.targets.as_slice()).collect();
        assert_eq!(left, [&[5][..], &[4], &[4]]);
    }

    #[test]
    fn a_control_passes_a_diagonal_left_on_it_and_a_target_does_not() {
        use StandardGate::*;
        // Chunks of 5 with 3 low: two free slots.
        let ops = vec![
            op(Cx, &[3, 4]), // takes both slots
            op(Cz, &[4, 5]), // 5 does not fit: left, a diagonal on 4
            op(Cx, &[4, 3]), // 4 a control: commutes with cz, taken
            op(Cx, &[3, 4]), // 4 a target: waits; closes 4, and 3 but to diagonals
            op(Rz, &[3]),    // diagonal where that cx has its control: taken
            op(H, &[3]),     // not: waits
        ];
        let shape = ChunkShape { qubits: 5, low: 3 };
        let mut ops: VecDeque<KernelOp> = ops.into();
        let (_, taken) = take_stage(&mut ops, shape);
        let taken: Vec<&[Qubit]> = taken.iter().map(|o| o.targets.as_slice()).collect();
        assert_eq!(taken, [&[4][..], &[3], &[3]]);
        let left: Vec<&[Qubit]> = ops.iter().map(|o| o.targets.as_slice()).collect();
        assert_eq!(left, [&[5][..], &[4], &[3]]);
    }

    #[test]
    fn a_stage_takes_at_most_max_stage_ops() {
        use StandardGate::*;
        let ops: Vec<KernelOp> = (0..MAX_STAGE_OPS + 10)
            .map(|i| op(if i % 2 == 0 { Rx } else { Ry }, &[4]))
            .collect();
        let shape = ChunkShape { qubits: 5, low: 3 };
        let mut ops: VecDeque<KernelOp> = ops.into();
        let (_, taken) = take_stage(&mut ops, shape);
        assert_eq!((taken.len(), ops.len()), (MAX_STAGE_OPS, 10));
    }

    #[test]
    fn long_runs_of_scattered_gates_plan_in_linear_time() {
        // 50,000 cx on pseudo-random pairs of 40 qubits, chunks with 3 free
        // slots: most stages take few gates and leave the rest. Without the
        // scan bound this is 50,000 scans of up to 50,000 gates.
        let mut x = 12345u64;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m) as Qubit
        };
        let ops: Vec<KernelOp> = (0..50_000)
            .map(|_| {
                let a = next(40);
                let b = (a + 1 + next(39)) % 40;
                op(StandardGate::Cx, &[a, b])
            })
            .collect();
        let fusion = FusionConfig {
            max_qubits: 1,
            stage_max_qubits: 1,
            ..FusionConfig::default()
        };
        let shape = ChunkShape { qubits: 6, low: 3 };
        let instrs = plan(ops, 40, Some(shape), &fusion, u64::MAX);
        let applied: usize = instrs
            .iter()
            .map(|i| match i {
                Instr::Stage(s) => s.ops.len(),
                _ => 1,
            })
            .sum();
        assert_eq!(applied, 50_000);
    }

    #[test]
    fn small_states_and_huge_gates_are_not_staged() {
        use StandardGate::*;
        let shape = ChunkShape { qubits: 6, low: 3 };
        let ops = vec![op(H, &[0]), op(Cx, &[0, 1])];
        assert!(
            stages(&plan(
                ops.clone(),
                6,
                Some(shape),
                &FusionConfig::default(),
                u64::MAX
            ))
            .is_empty()
        );
        assert!(stages(&plan(ops, 12, None, &FusionConfig::default(), u64::MAX)).is_empty());
        // Three high qubits and a control cannot share a chunk of 6 with 3 low ones.
        let wide = KernelOp::from_gate(&Gate::standard(Ccx, &[]), &[7, 8, 9], &[Control::one(10)]);
        let ops = vec![op(H, &[0]), wide, op(Cx, &[1, 2])];
        let instrs = plan(ops, 12, Some(shape), &FusionConfig::default(), u64::MAX);
        assert_eq!(instrs.len(), 2);
        assert!(matches!(&instrs[0], Instr::Stage(s) if s.ops.len() == 2));
        assert!(matches!(&instrs[1], Instr::Apply(o) if o.qubits().count() == 4));
    }
}
