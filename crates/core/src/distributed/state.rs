//! A state vector split over the ranks of a [`Communicator`]: each rank
//! holds one slice as an ordinary [`StateVector`] and runs the steps of a
//! [`layout`](super::layout) plan on it, the operations with the core's own
//! fusion, cache blocking and kernels, the exchanges through bounded
//! buffers.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};
use std::rc::Rc;

use kettle_ir::{Circuit, Clbit, Operation, Qubit};
use num_complex::Complex64;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp1};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::comm::Communicator;
use super::layout::{
    ExchangeVolume, Layout, Step, lay_out_fresh, local_op, per_gate_volume, plan, volume,
};
use crate::backend::{Backend, projector};
use crate::blocking::{ChunkShape, mask};
use crate::counts::Counts;
use crate::engine::Shots;
use crate::error::SimError;
use crate::float::Float;
use crate::fusion::{FusionConfig, fold_conjugated_diagonals};
use crate::kernels::all_zero_bytes;
use crate::kernels::reduce::{PIECE_BLOCKS, piece_norms, qubit_probabilities};
use crate::op::KernelOp;
use crate::par::Parallelism;
use crate::program::{Instr, Program};
use crate::sample::{NormSqrF64, Pieces, Sweep, sample_indices};
use crate::simulator::{Estimate, MAX_SHOTS, Monitor, Progress, RunOptions, RunStats, Simulator};
use crate::state::{StateVector, check_budget};

/// Bytes of one message of an exchange: what a rank holds beyond its slice
/// while exchanging (twice this, sent and received).
#[cfg(not(test))]
const MESSAGE_BYTES: usize = 4 << 20;
/// Small in tests, so that test-sized slices cross in many messages.
#[cfg(test)]
pub(super) const MESSAGE_BYTES: usize = 4 << 10;

/// Bytes per amplitude on the wire (two f64s at either precision), and
/// per sampled outcome (an index and a count).
const WIRE_BYTES: usize = 16;

/// Two 64-bit words as the wire's 16 bytes (little-endian).
fn words_bytes(words: [u64; 2]) -> [u8; WIRE_BYTES] {
    let mut b = [0u8; WIRE_BYTES];
    b[..8].copy_from_slice(&words[0].to_le_bytes());
    b[8..].copy_from_slice(&words[1].to_le_bytes());
    b
}

/// The two 64-bit words of 16 bytes of the wire.
fn bytes_words(b: &[u8]) -> [u64; 2] {
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    [word(&b[..8]), word(&b[8..WIRE_BYTES])]
}

/// Sends one message of an exchange to `partner` and receives the
/// partner's counterpart into `recv`, both `recv.len()` bytes long, except
/// that a message of zero bytes only crosses as a one-byte flag: early in a
/// circuit most of a slice is still zero (GHZ's whole exchange is two
/// amplitudes), and writing received zeros onto pages never touched would
/// make the kernel zero them first. `send` is not read when `mine_zero`.
/// Returns whether the partner's message was zero (then `recv` is not
/// written).
fn exchange_message(
    comm: &dyn Communicator,
    partner: usize,
    send: &[u8],
    mine_zero: bool,
    recv: &mut [u8],
) -> bool {
    let mut flag = [0u8];
    comm.exchange(partner, &[u8::from(mine_zero)], &mut flag);
    let theirs_zero = flag[0] == 1;
    if !(mine_zero && theirs_zero) {
        let send = if mine_zero { &[][..] } else { send };
        let recv = if theirs_zero { &mut [][..] } else { recv };
        comm.exchange(partner, send, recv);
    }
    theirs_zero
}

/// `mask` with its bits `a` and `b` swapped.
fn swap_bits(mask: u64, a: Qubit, b: Qubit) -> u64 {
    let (x, y) = ((mask >> a) & 1, (mask >> b) & 1);
    mask & !(1 << a | 1 << b) | x << b | y << a
}

/// What a run's states have moved, and what a per-gate scheme would have
/// moved for the same runs of gates.
#[derive(Clone, Copy, Debug, Default)]
struct Traffic {
    made: ExchangeVolume,
    /// Of `made`'s amplitudes, those sent as a zero message's flag.
    sent_as_zero: u64,
    per_gate: ExchangeVolume,
}

/// One rank's part of a distributed state.
pub struct DistributedState<'c, F: Float> {
    slice: StateVector<F>,
    layout: Layout,
    comm: &'c dyn Communicator,
    /// What this state and every state copied from it or beside it in the
    /// same run have exchanged.
    traffic: Rc<Cell<Traffic>>,
    /// Positions, local and global, along which the state may be spread:
    /// every amplitude with a 1 at another position is zero. Stages skip
    /// the chunks still zero, a rank whose label has a 1 at an untouched
    /// position holds zeros only, and an exchange knows which of its
    /// messages are zero without reading them.
    touched: u64,
    /// The whole state is still |0…0⟩ in the identity layout, so a run's
    /// leading single-qubit gates on global qubits may make a product
    /// start instead.
    at_zero: bool,
    fusion: FusionConfig,
    chunk: Option<ChunkShape>,
}

/// What a distributed run gives on every rank: as [`RunResult`] where it
/// can, and what the run moved beside what a per-gate scheme would have.
///
/// [`RunResult`]: crate::RunResult
pub struct DistributedRun<'c, F: Float> {
    /// The counts of the shots, on rank 0 (`None` on the others): those
    /// [`Simulator::run`] gives for the same circuit and seed.
    pub counts: Option<Counts>,
    /// This rank's part of the final state, when
    /// [`RunOptions::keep_state`] asked for it (for mid-circuit
    /// measurement, the state of one trajectory, as for one process).
    pub state: Option<DistributedState<'c, F>>,
    /// The estimates of the options' observables, the same on every rank.
    pub expectations: Vec<Estimate>,
    /// The seed the shots were drawn with (rank 0's when none was given).
    pub seed: u64,
    /// Figures about the run (passes are not counted: each rank plans its
    /// runs of gates as it goes).
    pub stats: RunStats,
    /// Exchanges made and amplitudes sent per rank, over every branch.
    pub exchanged: ExchangeVolume,
    /// Of the amplitudes this rank sent, those in messages that were all
    /// zero, which crossed as a one-byte flag each (a sparse state's).
    pub sent_as_zero: u64,
    /// What a per-gate scheme (a whole slice per gate on a global qubit,
    /// as QuEST does) would have sent for the same gates, over every
    /// branch.
    pub per_gate: ExchangeVolume,
}

impl Simulator {
    /// Runs `circuit` with its state split over the ranks of `comm` (a
    /// power of two of them; every rank calls this with the same circuit
    /// and options). The same engine as [`Simulator::run`] drives it, so
    /// mid-circuit measurement, reset and classical control branch the
    /// shots alike, and the counts for a seed are the single process's.
    ///
    /// # Errors
    /// [`SimError::Distributed`] for a noisy circuit, a group size that is
    /// not a power of two, or slices too small for the circuit's gates;
    /// otherwise as [`Simulator::run`], for a slice's budget.
    pub fn run_distributed<'c, F: Float>(
        &self,
        circuit: &Circuit,
        options: &RunOptions,
        comm: &'c dyn Communicator,
    ) -> Result<DistributedRun<'c, F>, SimError> {
        self.run_distributed_reporting(circuit, options, comm, &|_| {})
    }

    /// [`run_distributed`](Self::run_distributed), telling `progress` on
    /// this rank how far the run is, as a [`Monitor`](crate::Monitor) is
    /// told. It cannot stop the run: a stop on one rank alone would leave
    /// the others waiting in their next exchange (stop every rank's
    /// process instead, as `mpirun` does on a signal).
    ///
    /// # Errors
    /// As [`run_distributed`](Self::run_distributed).
    pub fn run_distributed_reporting<'c, F: Float>(
        &self,
        circuit: &Circuit,
        options: &RunOptions,
        comm: &'c dyn Communicator,
        progress: &(dyn Fn(crate::Progress) + Sync),
    ) -> Result<DistributedRun<'c, F>, SimError> {
        crate::cpu::check()?;
        check_distributed(circuit, comm.size())?;
        if options.shots > MAX_SHOTS {
            return Err(SimError::TooManyShots {
                shots: options.shots,
                max: MAX_SHOTS,
            });
        }
        let n = circuit.num_qubits();
        for o in &options.observables {
            o.check_qubits(n)?;
        }
        let global = comm.size().trailing_zeros();
        check_budget::<F>(n - global, 1, self.memory_budget())?;
        let program = Program::compile_unplanned(circuit);
        // Every rank must draw the same shares of the shots: rank 0's seed.
        let mut seed = options
            .seed
            .unwrap_or_else(|| RandomState::new().hash_one(0x6b65_7474_6c65_u64))
            .to_le_bytes()
            .to_vec();
        comm.broadcast(&mut seed);
        let seed = u64::from_le_bytes(seed.try_into().expect("8 bytes"));
        let stats = RunStats {
            gates: program.gates,
            applied_ops: (program.instrs.iter())
                .map(|i| match i {
                    Instr::Run(ops) => ops.len(),
                    _ => 0,
                })
                .sum(),
            ..RunStats::default()
        };
        let traffic = Rc::new(Cell::new(Traffic::default()));
        let chunk = self
            .fusion()
            .blocking
            .shape::<F>(self.parallelism().num_threads());
        let budget = self.memory_budget();
        let zero = || DistributedState::zero(n, comm, budget, &traffic, *self.fusion(), chunk);
        let shots = Shots {
            program: &program,
            sim: self,
            monitor: &Reporting(progress),
            seed,
            stats,
            num_clbits: circuit.num_clbits(),
            options,
        };
        let (finished, state) = shots.run(&zero)?;
        Ok(DistributedRun {
            counts: (comm.rank() == 0).then_some(finished.counts),
            state,
            expectations: finished.expectations,
            seed,
            stats: finished.stats,
            exchanged: traffic.get().made,
            sent_as_zero: traffic.get().sent_as_zero,
            per_gate: traffic.get().per_gate,
        })
    }
}

/// How far one run of gates over the ranks is, for
/// [`Backend::apply_reporting`]: its planned operations (on positions)
/// taken so far and applied so far, scaled to the run's gates.
struct RunProgress<'a> {
    /// Gates in the run (what the engine counts for it).
    run_ops: u64,
    /// Planned operations in the run (at least 1).
    planned: u64,
    /// Planned operations handed to the slice's programs so far.
    flushed: u64,
    /// Planned operations the steps so far hold.
    taken: u64,
    applied: &'a mut dyn FnMut(u64),
}

impl RunProgress<'_> {
    /// Tells of `done` planned operations applied, as gates of the run.
    fn report(&mut self, done: u64) {
        (self.applied)(self.run_ops * done.min(self.planned) / self.planned);
    }
}

/// A monitor that reports and never stops (see
/// [`Simulator::run_distributed_reporting`]).
struct Reporting<'a>(&'a (dyn Fn(Progress) + Sync));

impl Monitor for Reporting<'_> {
    fn on_progress(&self, progress: Progress) -> std::ops::ControlFlow<()> {
        (self.0)(progress);
        std::ops::ControlFlow::Continue(())
    }
}

impl<F: Float> std::fmt::Debug for DistributedState<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedState")
            .field("rank", &self.comm.rank())
            .field("layout", &self.layout)
            .field("traffic", &self.traffic.get())
            .finish_non_exhaustive()
    }
}

impl<F: Float> std::fmt::Debug for DistributedRun<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DistributedRun")
            .field("counts", &self.counts)
            .field("exchanged", &self.exchanged)
            .field("per_gate", &self.per_gate)
            .finish_non_exhaustive()
    }
}

/// What a run of `circuit` over `ranks` ranks would exchange, and what a
/// per-gate scheme would (see [`DistributedRun`]), without running it:
/// the circuit's gates in order, as if every classical condition held,
/// with fusion on (the default).
///
/// # Errors
/// As [`Simulator::run_distributed`] for a circuit or rank count it cannot take.
pub fn planned_exchanges(
    circuit: &Circuit,
    ranks: usize,
) -> Result<(ExchangeVolume, ExchangeVolume), SimError> {
    let ops = check_distributed(circuit, ranks)?;
    let mut layout = Layout::identity(circuit.num_qubits(), ranks.trailing_zeros());
    let per_gate = per_gate_volume(&ops, &layout);
    let mut ops = fold_conjugated_diagonals(ops);
    lay_out_fresh(&mut ops, &mut layout);
    let steps = plan(&ops, &mut layout);
    Ok((volume(&steps, layout.local_qubits()), per_gate))
}

/// Every gate of `ops`, both arms of a condition included, lowered.
fn gates_of(ops: &[Operation], out: &mut Vec<KernelOp>) {
    for op in ops {
        match op {
            Operation::Gate {
                gate,
                qubits,
                controls,
            } => out.push(KernelOp::from_gate(gate, qubits, controls)),
            Operation::IfElse {
                then_ops, else_ops, ..
            } => {
                gates_of(then_ops, out);
                gates_of(else_ops, out);
            }
            _ => {}
        }
    }
}

/// Refuses what a run over `ranks` ranks cannot take: an invalid or noisy
/// circuit, a rank count that is not a power of two, slices narrower than
/// the widest gate. Returns the circuit's gates, lowered (see [`gates_of`]).
fn check_distributed(circuit: &Circuit, ranks: usize) -> Result<Vec<KernelOp>, SimError> {
    circuit.validate()?;
    if circuit.is_noisy() {
        return Err(SimError::Distributed(
            "noise channels and readout errors are not supported yet".into(),
        ));
    }
    if !ranks.is_power_of_two() {
        return Err(SimError::Distributed(format!(
            "{ranks} ranks: the state splits over a power of two of them"
        )));
    }
    let n = circuit.num_qubits();
    let global = ranks.trailing_zeros();
    let mut ops = Vec::new();
    gates_of(circuit.ops(), &mut ops);
    let widest = ops
        .iter()
        .map(|o| o.targets.len() as u32)
        .max()
        .unwrap_or(0);
    if n < global + widest.max(1) {
        return Err(SimError::Distributed(format!(
            "{n} qubits over {ranks} ranks leave {} per slice; the widest gate needs {}",
            n.saturating_sub(global),
            widest.max(1)
        )));
    }
    Ok(ops)
}

impl<'c, F: Float> DistributedState<'c, F> {
    /// |0…0⟩ split over `comm`'s ranks, its exchanges counted in
    /// `traffic`, its runs of gates planned with `fusion` and `chunk`.
    fn zero(
        num_qubits: u32,
        comm: &'c dyn Communicator,
        budget: Option<u64>,
        traffic: &Rc<Cell<Traffic>>,
        fusion: FusionConfig,
        chunk: Option<ChunkShape>,
    ) -> Result<Self, SimError> {
        let global = comm.size().trailing_zeros();
        let mut slice = StateVector::zeros(num_qubits - global, budget)?;
        if comm.rank() == 0 {
            slice.numbers_mut()[0] = F::from_f64(1.0);
        }
        Ok(DistributedState {
            slice,
            layout: Layout::identity(num_qubits, global),
            comm,
            traffic: Rc::clone(traffic),
            touched: 0,
            at_zero: true,
            fusion,
            chunk,
        })
    }

    /// Makes each rank's slice |0…0⟩ times its global bits' amplitudes in
    /// `global` (per global position): the product state of gates on
    /// global qubits alone, from |0…0⟩.
    fn start_product(&mut self, global: &[[Complex64; 2]]) {
        let rank = self.label();
        let scale = global
            .iter()
            .enumerate()
            .fold(Complex64::new(1.0, 0.0), |acc, (j, s)| {
                acc * s[(rank >> j) & 1]
            });
        let numbers = self.slice.numbers_mut();
        numbers[0] = F::from_f64(scale.re);
        numbers[F::LANES] = F::from_f64(scale.im);
        let local = self.local_qubits();
        for (j, s) in global.iter().enumerate() {
            if s[1] != Complex64::new(0.0, 0.0) {
                self.touched |= 1 << (local + j as u32);
            }
        }
    }

    /// Applies a run of gates (on qubits): planned against the current
    /// layout into operations on each slice and exchanges. `applied` hears
    /// after each pass and each exchange about how many of the run's gates
    /// are done, estimated from the planned operations behind it.
    fn apply_run(&mut self, ops: &[KernelOp], par: &Parallelism, applied: &mut dyn FnMut(u64)) {
        let mut traffic = self.traffic.get();
        let qubits = Layout::identity(self.layout.num_qubits(), self.global_qubits());
        traffic.per_gate = traffic.per_gate + per_gate_volume(ops, &qubits);
        self.traffic.set(traffic);
        let run_ops = ops.len() as u64;
        let mut ops = ops.to_vec();
        if self.fusion.enabled {
            // `cx · rz · cx` as one diagonal: no exchange for its target.
            ops = fold_conjugated_diagonals(ops);
        }
        if std::mem::take(&mut self.at_zero) {
            let prefix = lay_out_fresh(&mut ops, &mut self.layout);
            self.start_product(&prefix);
        }
        let mut after = self.layout.clone();
        let steps = plan(&ops, &mut after);
        let planned: usize = (steps.iter())
            .map(|s| match s {
                Step::Ops(ops) => ops.len(),
                _ => 0,
            })
            .sum();
        let mut progress = RunProgress {
            run_ops,
            planned: planned.max(1) as u64,
            flushed: 0,
            taken: 0,
            applied,
        };
        // Each rank's operations between two exchanges, read through its
        // label as it is at each, applied as one program.
        let mut mine = Vec::new();
        let local = self.local_qubits();
        // What was touched when the operations in `mine` began.
        let mut before = self.touched;
        for step in steps {
            match step {
                Step::Ops(ops) => {
                    let label = self.label();
                    progress.taken += ops.len() as u64;
                    mine.extend(ops.iter().filter_map(|op| local_op(op, local, label)));
                    self.touched |= ops.iter().fold(0, |m, op| m | mask(op.qubits()));
                }
                Step::Exchange(swaps) => {
                    self.apply_local(std::mem::take(&mut mine), par, &mut progress, before);
                    self.exchange(&swaps);
                    before = self.touched;
                    progress.report(progress.taken);
                }
                // A swap gate: the layout changes, the amplitudes stay.
                Step::Relabel(a, b) => self.layout.swap_positions(a, b),
                Step::Permute(op) => {
                    self.layout.permute_labels(&op);
                    self.touched |= mask(op.qubits());
                }
            }
        }
        self.apply_local(mine, par, &mut progress, before);
        debug_assert_eq!(self.layout, after);
    }

    /// Where each qubit sits now.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// This rank's slice: amplitude `i` is the state's amplitude at physical
    /// index `label · 2^local + i`, the label this rank's
    /// [`Layout::label`] (see [`Layout::logical_index`]).
    pub fn slice(&self) -> &StateVector<F> {
        &self.slice
    }

    /// Exchanges made so far by this run's states (every branch), and
    /// amplitudes this rank sent.
    pub fn exchanged(&self) -> ExchangeVolume {
        self.traffic.get().made
    }

    fn local_qubits(&self) -> u32 {
        self.layout.local_qubits()
    }

    /// The global bits of the amplitudes this rank holds.
    fn label(&self) -> usize {
        self.layout.label(self.comm.rank())
    }

    fn global_qubits(&self) -> u32 {
        self.layout.num_qubits() - self.layout.local_qubits()
    }

    /// Whether this rank's slice is certainly all zero, `touched` being the
    /// touched positions: its label has a 1 at an untouched one.
    fn holds_zeros(&self, touched: u64) -> bool {
        (self.label() << self.local_qubits()) as u64 & !touched != 0
    }

    /// Applies operations on this rank's slice: the planned ones since the
    /// last exchange (see [`RunProgress`]), as one program, a pass at a
    /// time, on a state touched at `touched` when they began.
    fn apply_local(
        &mut self,
        ops: Vec<KernelOp>,
        par: &Parallelism,
        progress: &mut RunProgress<'_>,
        touched: u64,
    ) {
        let (from, to) = (progress.flushed, progress.taken);
        progress.flushed = to;
        // Zeros stay zeros under linear maps. (Positions that permutations
        // have relabelled since the operations began are touched now.)
        if ops.is_empty() || self.holds_zeros(self.touched) {
            progress.report(to);
            return;
        }
        let local_mask = (1u64 << self.local_qubits()) - 1;
        let program = Program::compile_gates_on(
            ops,
            self.local_qubits(),
            &self.fusion,
            self.chunk,
            touched & local_mask,
        );
        let passes = program.instrs.len() as u64;
        for (i, pass) in (1..).zip(&program.instrs) {
            self.slice.apply_passes(std::slice::from_ref(pass), par);
            progress.report(from + (to - from) * i / passes);
        }
    }

    /// Swaps the qubits at each `(global, local)` position pair, in one
    /// exchange among the ranks that differ in those global bits.
    ///
    /// With `k` pairs, a rank's global bits there form a pattern `G`; for
    /// every other pattern `G ^ d`, the amplitudes whose local bits (at the
    /// pairs' local positions) read `G ^ d` go to the rank whose global
    /// bits read `G ^ d`, which sends back its own amplitudes of local
    /// pattern `G` into the same places. Both sides list those amplitudes by
    /// their remaining bits in increasing order, so the places match.
    fn exchange(&mut self, swaps: &[(Qubit, Qubit)]) {
        let local = self.local_qubits();
        let label = self.label();
        let k = swaps.len();
        let rank_bit = |g: Qubit| (g - local) as usize;
        let pattern: usize = swaps
            .iter()
            .enumerate()
            .map(|(j, &(g, _))| ((label >> rank_bit(g)) & 1) << j)
            .sum();
        let swapped: u64 = swaps.iter().map(|&(_, l)| 1u64 << l).sum();
        let free: Vec<Qubit> = (0..local).filter(|&q| swapped >> q & 1 == 0).collect();
        let count = 1usize << free.len();
        let mut sent_as_zero = 0;
        let slice_zero = self.holds_zeros(self.touched);
        for d in 1..1usize << k {
            let partner = self.layout.rank_of(
                swaps
                    .iter()
                    .enumerate()
                    .fold(label, |l, (j, &(g, _))| l ^ (((d >> j) & 1) << rank_bit(g))),
            );
            let target = pattern ^ d;
            let fixed: usize = swaps
                .iter()
                .enumerate()
                .map(|(j, &(_, l))| ((target >> j) & 1) << l)
                .sum();
            let index = |c: usize| -> usize {
                free.iter()
                    .enumerate()
                    .fold(fixed, |acc, (b, &q)| acc | ((c >> b) & 1) << q)
            };
            // What goes to this partner has a 1 at every local position
            // where `fixed` has one: zero if one of those is untouched.
            let known_zero = slice_zero || fixed as u64 & !self.touched != 0;
            let lowest = swaps.iter().map(|&(_, l)| l).min().unwrap_or(0);
            sent_as_zero += if lowest >= F::LOG_LANES {
                self.exchange_blocks(partner, fixed, &free, count, known_zero)
            } else {
                self.exchange_amplitudes(partner, &index, count, known_zero)
            };
        }
        for &(g, l) in swaps {
            self.layout.swap_positions(g, l);
            self.touched = swap_bits(self.touched, g, l);
        }
        self.at_zero = false;
        let mut traffic = self.traffic.get();
        traffic.made = traffic.made
            + ExchangeVolume {
                exchanges: 1,
                amplitudes_sent: ((1usize << k) - 1) as u64 * count as u64,
            };
        traffic.sent_as_zero += sent_as_zero as u64;
        self.traffic.set(traffic);
    }

    /// One partner's part of an exchange where every swapped local position
    /// selects whole blocks: `count` amplitudes, whose block indices are
    /// `fixed`'s plus the block bits of `free` positions, sent and received
    /// a block at a time as raw bytes (both sides hold the same precision).
    /// Returns how many of them went as zero messages (all of them, unread,
    /// when `known_zero`).
    fn exchange_blocks(
        &mut self,
        partner: usize,
        fixed: usize,
        free: &[Qubit],
        count: usize,
        known_zero: bool,
    ) -> usize {
        let block = std::mem::size_of::<crate::state::Block<F>>();
        // Free positions inside a block are its lanes; those above pick blocks.
        let free_blocks: Vec<u32> = free
            .iter()
            .filter(|&&q| q >= F::LOG_LANES)
            .map(|&q| q - F::LOG_LANES)
            .collect();
        // The lowest free block bits that are the lowest bits: runs of
        // consecutive blocks.
        let run_bits = free_blocks
            .iter()
            .enumerate()
            .take_while(|&(i, &q)| q == i as u32)
            .count();
        let run = 1usize << run_bits;
        let fixed_block = fixed >> F::LOG_LANES;
        let blocks = count / F::LANES;
        let per_message = (MESSAGE_BYTES / block).max(1).min(blocks);
        let mut send = vec![0u8; per_message * block];
        let mut recv = vec![0u8; per_message * block];
        let first_block = |c: usize| -> usize {
            free_blocks[run_bits..]
                .iter()
                .enumerate()
                .fold(fixed_block, |acc, (b, &q)| acc | ((c >> b) & 1) << q)
        };
        let bytes = self.slice.bytes_mut();
        let at = |b: usize| crate::state::block_address::<F>(b) * block;
        // Blocks `i..i + len` of the list as pieces that are contiguous in
        // the buffer: inside one run, and inside one of its segments.
        let per_segment = crate::state::segment_blocks::<F>();
        let pieces = |start: usize, len: usize| {
            let mut i = start;
            std::iter::from_fn(move || {
                if i >= start + len {
                    return None;
                }
                let b = first_block(i / run) + i % run;
                let n = (run - i % run)
                    .min(start + len - i)
                    .min(per_segment - b % per_segment);
                let piece = (i - start, b, n);
                i += n;
                Some(piece)
            })
        };
        let (mut start, mut zero_blocks) = (0, 0);
        while start < blocks {
            let len = per_message.min(blocks - start);
            let mine_zero = known_zero
                || pieces(start, len).all(|(_, b, n)| all_zero_bytes(&bytes[at(b)..][..n * block]));
            if !mine_zero {
                for (offset, b, n) in pieces(start, len) {
                    send[offset * block..][..n * block]
                        .copy_from_slice(&bytes[at(b)..][..n * block]);
                }
            }
            let theirs_zero = exchange_message(
                self.comm,
                partner,
                &send[..len * block],
                mine_zero,
                &mut recv[..len * block],
            );
            for (offset, b, n) in pieces(start, len) {
                let place = &mut bytes[at(b)..][..n * block];
                if !theirs_zero {
                    place.copy_from_slice(&recv[offset * block..][..n * block]);
                } else if !mine_zero {
                    place.fill(0);
                }
            }
            zero_blocks += if mine_zero { len } else { 0 };
            start += len;
        }
        zero_blocks * F::LANES
    }

    /// One partner's part of an exchange, amplitude by amplitude (a swapped
    /// local position selects lanes inside blocks): amplitude `index(c)`
    /// for `c` in `0..count`. Returns how many of them went as zero
    /// messages (all of them, unread, when `known_zero`).
    fn exchange_amplitudes(
        &mut self,
        partner: usize,
        index: &dyn Fn(usize) -> usize,
        count: usize,
        known_zero: bool,
    ) -> usize {
        let per_message = (MESSAGE_BYTES / WIRE_BYTES).min(count);
        let mut send = vec![0u8; per_message * WIRE_BYTES];
        let mut recv = vec![0u8; per_message * WIRE_BYTES];
        let numbers = self.slice.numbers_mut();
        let (mut start, mut zero) = (0, 0);
        while start < count {
            let len = per_message.min(count - start);
            if !known_zero {
                for (c, out) in (start..start + len).zip(send.chunks_exact_mut(WIRE_BYTES)) {
                    let at = StateVector::<F>::number_position(index(c));
                    out.copy_from_slice(&words_bytes([
                        numbers[at].to_f64().to_bits(),
                        numbers[at + F::LANES].to_f64().to_bits(),
                    ]));
                }
            }
            let bytes = len * WIRE_BYTES;
            let mine_zero = known_zero || all_zero_bytes(&send[..bytes]);
            let theirs_zero = exchange_message(
                self.comm,
                partner,
                &send[..bytes],
                mine_zero,
                &mut recv[..bytes],
            );
            if !theirs_zero {
                for (c, got) in (start..start + len).zip(recv.chunks_exact(WIRE_BYTES)) {
                    let at = StateVector::<F>::number_position(index(c));
                    let [re, im] = bytes_words(got);
                    numbers[at] = F::from_f64(f64::from_bits(re));
                    numbers[at + F::LANES] = F::from_f64(f64::from_bits(im));
                }
            } else if !mine_zero {
                for c in start..start + len {
                    let at = StateVector::<F>::number_position(index(c));
                    numbers[at] = F::from_f64(0.0);
                    numbers[at + F::LANES] = F::from_f64(0.0);
                }
            }
            zero += if mine_zero { len } else { 0 };
            start += len;
        }
        zero
    }

    /// [`gather`](Self::gather) on every rank: for a state no larger than
    /// a sample's outcomes or a few pieces.
    fn gather_everywhere(&self) -> Vec<Complex64> {
        let whole = self.gather();
        let mut bytes: Vec<u8> = whole
            .iter()
            .flatten()
            .flat_map(|a| words_bytes([a.re.to_bits(), a.im.to_bits()]))
            .collect();
        self.comm.broadcast(&mut bytes);
        bytes
            .chunks_exact(WIRE_BYTES)
            .map(|b| {
                let [re, im] = bytes_words(b);
                Complex64::new(f64::from_bits(re), f64::from_bits(im))
            })
            .collect()
    }

    /// The whole state in index order (qubit `q` at bit `q`), on rank 0;
    /// `None` on the others.
    pub fn gather(&self) -> Option<Vec<Complex64>> {
        let local = self.local_qubits();
        let mine: Vec<u8> = (0..1usize << local)
            .flat_map(|i| {
                let a = self.slice.amp(i);
                words_bytes([a.re.to_f64().to_bits(), a.im.to_f64().to_bits()])
            })
            .collect();
        let parts = self.comm.gather(&mine)?;
        let mut out = vec![Complex64::new(0.0, 0.0); parts.len() << local];
        for (rank, part) in parts.iter().enumerate() {
            let label = self.layout.label(rank) as u64;
            for (i, b) in part.chunks_exact(WIRE_BYTES).enumerate() {
                let physical = (label << local) | i as u64;
                let [re, im] = bytes_words(b);
                out[self.layout.logical_index(physical) as usize] =
                    Complex64::new(f64::from_bits(re), f64::from_bits(im));
            }
        }
        Some(out)
    }

    /// Draws `shots` basis states (indices with qubit `q` at bit `q`) with
    /// a seeded generator: `(index, occurrences)` in increasing index order
    /// on rank 0, `None` on the others; the same outcomes as
    /// [`StateVector::sample`] on the whole state with the same seed.
    ///
    /// The qubits are first put back in order (one exchange at most, and
    /// swaps of local qubits); then every rank knows every piece's norm,
    /// replays the same sorted uniforms, and the ranks sweep their slices
    /// one after another in index order, each handing the sweep's position
    /// to the next. A state smaller than the shots, or whose slices are
    /// shorter than a piece, is gathered and sampled on rank 0.
    pub fn sample(&mut self, shots: u64, seed: u64, par: &Parallelism) -> Option<Vec<(u64, u64)>> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        self.sample_with(shots, &mut rng, par)
    }

    /// [`sample`](Self::sample) with the caller's generator.
    pub(crate) fn sample_with<R: Rng + Clone>(
        &mut self,
        shots: u64,
        rng: &mut R,
        par: &Parallelism,
    ) -> Option<Vec<(u64, u64)>> {
        if shots == 0 {
            // Every rank knows: nothing to put in order, gather or draw.
            return (self.comm.rank() == 0).then(Vec::new);
        }
        self.restore_order(par);
        let local = self.local_qubits();
        let ranks = self.comm.size();
        let n = self.layout.num_qubits();
        let piece_len = PIECE_BLOCKS * F::LANES;
        if (1u64 << n) <= shots || (1usize << local) < piece_len {
            // Every rank draws from the whole state, so that every rank's
            // generator moves on alike (the draws depend on the state).
            let whole = self.gather_everywhere();
            let state = StateVector::<F>::from_amplitudes(&whole).expect("a power of two");
            let drawn = sample_indices(&state, shots, rng, par);
            return (self.comm.rank() == 0).then_some(drawn);
        }
        // The rank that holds each block of 2^local indices, and this one's.
        let block_of = |r: usize| -> usize {
            let label = self.layout.label(r);
            (0..ranks.trailing_zeros())
                .map(|j| {
                    let q = self.layout.qubit_at(local + j);
                    ((label >> j) & 1) << (q - local)
                })
                .sum()
        };
        let mut rank_of = vec![0; ranks];
        for r in 0..ranks {
            rank_of[block_of(r)] = r;
        }
        let mine = block_of(self.comm.rank());
        let per_rank = (1usize << local) / piece_len;
        let mut norms = vec![0.0; ranks * per_rank];
        let own = piece_norms(&self.slice, par);
        norms[mine * per_rank..][..per_rank].copy_from_slice(&own);
        self.comm.sum(&mut norms);
        let total: f64 = norms.iter().sum();
        let len = self.slice.len();
        let prob = |i: usize| self.slice.amp(i).norm_sqr_f64();
        // The last index of non-zero probability, over every rank.
        let mut last = vec![0.0; ranks];
        last[mine] = (0..len)
            .rev()
            .find(|&i| prob(i) > 0.0)
            .map_or(-1.0, |i| ((mine * len + i) as u64) as f64);
        self.comm.sum(&mut last);
        let last_nonzero = last
            .iter()
            .rev()
            .find(|&&x| x >= 0.0)
            .map_or(0, |&x| x as u64);
        // As `sample_indices`: the variates' sum, then the sweep.
        let mut replay = rng.clone();
        let sum: f64 = (0..=shots).map(|_| -> f64 { Exp1.sample(rng) }).sum();
        let scale = total / sum;
        let mut sweep = Sweep::default();
        const STATE_BYTES: usize = 25;
        let encode = |s: &Sweep| {
            let mut b = [0u8; STATE_BYTES];
            b[..8].copy_from_slice(&s.partial.to_le_bytes());
            b[8..16].copy_from_slice(&s.cum.to_le_bytes());
            b[16..24].copy_from_slice(&s.done.to_le_bytes());
            b[24] = u8::from(s.drawn);
            b
        };
        if mine > 0 {
            let mut got = [0u8; STATE_BYTES];
            self.comm
                .exchange(rank_of[mine - 1], &[0; STATE_BYTES], &mut got);
            let word = |i: usize| u64::from_le_bytes(got[i..i + 8].try_into().expect("8"));
            sweep = Sweep {
                partial: f64::from_bits(word(0)),
                cum: f64::from_bits(word(8)),
                done: word(16),
                drawn: got[24] == 1,
            };
            for _ in 0..sweep.done + u64::from(sweep.drawn) {
                let _: f64 = Exp1.sample(&mut replay);
            }
        }
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut record = |index: u64| match out.last_mut() {
            Some((i, n)) if *i == index => *n += 1,
            _ => out.push((index, 1)),
        };
        let base = mine * len;
        let pieces = Pieces {
            len: piece_len,
            norms: &norms,
        };
        let global_prob = |i: usize| prob(i - base);
        let is_last = mine + 1 == ranks;
        sweep.run(
            &mut replay,
            scale,
            shots,
            base..base + len,
            &pieces,
            global_prob,
            is_last.then_some(last_nonzero),
            &mut record,
        );
        if !is_last {
            let mut ignored = [0u8; STATE_BYTES];
            self.comm
                .exchange(rank_of[mine + 1], &encode(&sweep), &mut ignored);
        }
        let bytes: Vec<u8> = out.iter().flat_map(|&(i, n)| words_bytes([i, n])).collect();
        let parts = self.comm.gather(&bytes)?;
        let mut all: Vec<(u64, u64)> = parts
            .iter()
            .flat_map(|p| {
                p.chunks_exact(WIRE_BYTES).map(|b| {
                    let [i, n] = bytes_words(b);
                    (i, n)
                })
            })
            .collect();
        all.sort_unstable();
        Some(all)
    }

    /// Puts every qubit back at its own position: one exchange swaps the
    /// qubits that belong on the other side of the local/global line, local
    /// swaps order the local ones; the global ones may stay permuted (the
    /// ranks' blocks are then read in another order, see `sample_with`).
    fn restore_order(&mut self, par: &Parallelism) {
        let local = self.local_qubits();
        let n = self.layout.num_qubits();
        let outside: Vec<Qubit> = (local..n)
            .filter(|&p| self.layout.qubit_at(p) < local)
            .collect();
        let inside: Vec<Qubit> = (0..local)
            .filter(|&p| self.layout.qubit_at(p) >= local)
            .collect();
        let pairs: Vec<(Qubit, Qubit)> = outside.into_iter().zip(inside).collect();
        if !pairs.is_empty() {
            self.exchange(&pairs);
        }
        for p in 0..local {
            // Each swap puts one qubit home; a cycle takes several.
            while self.layout.qubit_at(p) != p {
                let q = self.layout.qubit_at(p);
                // Qubit q belongs at position q: swap the two positions' bits.
                let swap = KernelOp::from_gate(
                    &kettle_ir::Gate::standard(kettle_ir::StandardGate::Swap, &[]),
                    &[p, q],
                    &[],
                );
                self.slice.apply(&swap, par);
                self.layout.swap_positions(p, q);
                self.touched = swap_bits(self.touched, p, q);
            }
        }
    }
}

impl<F: Float> DistributedState<'_, F> {
    /// The position of qubit `q` split into a local bit mask and a rank
    /// bit mask (one of them zero).
    fn masks(&self, q: Qubit) -> (usize, usize) {
        let p = self.layout.position(q);
        let local = self.local_qubits();
        if p < local {
            (1 << p, 0)
        } else {
            (0, 1 << (p - local))
        }
    }

    /// The exact distribution of the classical bits that the final
    /// measurements `finals` would record (as
    /// [`StateVector::classical_distribution`]), on rank 0; `None` on the
    /// others. Callers bound the number of measured qubits: every rank holds
    /// a table of 2^k probabilities.
    ///
    /// # Errors
    /// [`SimError::QubitOutOfRange`] for a measured qubit the state lacks.
    pub fn classical_distribution(
        &self,
        finals: &[(Qubit, Clbit)],
        num_clbits: u32,
    ) -> Result<Option<std::collections::BTreeMap<String, f64>>, SimError> {
        let n = self.layout.num_qubits();
        if let Some(&(q, _)) = finals.iter().find(|&&(q, _)| q >= n) {
            return Err(SimError::QubitOutOfRange {
                qubit: q,
                num_qubits: n,
            });
        }
        let qubits = crate::program::measured_qubits(finals);
        let rank = self.comm.rank();
        let label = self.label();
        let masks: Vec<(usize, usize)> = qubits.iter().map(|&q| self.masks(q)).collect();
        // The outcome bits that this rank's global bits fix.
        let fixed: usize = masks
            .iter()
            .enumerate()
            .map(|(j, &(_, g))| usize::from(label & g != 0) << j)
            .sum();
        let mut probabilities = vec![0.0; 1 << qubits.len()];
        for i in 0..self.slice.len() {
            let p = self.slice.amp(i).norm_sqr_f64();
            if p == 0.0 {
                continue;
            }
            let k = masks
                .iter()
                .enumerate()
                .fold(fixed, |k, (j, &(l, _))| k | usize::from(i & l != 0) << j);
            probabilities[k] += p;
        }
        self.comm.sum(&mut probabilities);
        if rank != 0 {
            return Ok(None);
        }
        let outcomes = (0u64..).zip(probabilities).filter(|&(_, p)| p != 0.0);
        Ok(Some(crate::sample::outcome_distribution(
            outcomes, &qubits, finals, num_clbits,
        )))
    }

    /// `⟨ψ|O|ψ⟩`, the same on every rank. A term that flips a global qubit
    /// (X or Y on it) pairs each rank with the rank across those bits,
    /// whose slice streams past in bounded messages; the others are sums
    /// over each slice alone. One reduction for the whole observable.
    ///
    /// # Errors
    /// [`SimError::QubitOutOfRange`] if a term names a qubit the state lacks.
    pub fn expectation(&self, observable: &crate::observable::PauliSum) -> Result<f64, SimError> {
        use crate::observable::Pauli;
        let n = self.layout.num_qubits();
        let mut total = 0.0;
        for term in &observable.terms {
            let (mut flip_l, mut flip_g, mut sign_l, mut sign_g, mut ys) = (0, 0, 0, 0, 0u32);
            for &(q, pauli) in &term.factors {
                if q >= n {
                    return Err(SimError::QubitOutOfRange {
                        qubit: q,
                        num_qubits: n,
                    });
                }
                let (l, g) = self.masks(q);
                if matches!(pauli, Pauli::X | Pauli::Y) {
                    flip_l |= l;
                    flip_g |= g;
                }
                if matches!(pauli, Pauli::Z | Pauli::Y) {
                    sign_l |= l;
                    sign_g |= g;
                }
                ys += u32::from(pauli == Pauli::Y);
            }
            // ⟨ψ|P|ψ⟩ = c Σ_j conj(ψ_{j^f}) (−1)^{|j & s|} ψ_j, c = i^#Y; this
            // rank holds the j of its slice, and ψ_{j^f} lies on the rank
            // across the flipped global bits.
            let c = [
                Complex64::new(1.0, 0.0),
                Complex64::new(0.0, 1.0),
                Complex64::new(-1.0, 0.0),
                Complex64::new(0.0, -1.0),
            ][(ys % 4) as usize];
            let rank_sign = if (self.label() & sign_g).count_ones() % 2 == 1 {
                -1.0
            } else {
                1.0
            };
            let amp = |i: usize| {
                let a = self.slice.amp(i);
                Complex64::new(a.re.to_f64(), a.im.to_f64())
            };
            let sign = |j: usize| {
                if (j & sign_l).count_ones() % 2 == 1 {
                    -rank_sign
                } else {
                    rank_sign
                }
            };
            let mut sum = Complex64::new(0.0, 0.0);
            if flip_g == 0 {
                for j in 0..self.slice.len() {
                    sum += amp(j ^ flip_l).conj() * amp(j) * sign(j);
                }
            } else {
                // The partner's amplitudes k, in order; pair k with j = k ^ f_l.
                let partner = self.layout.rank_of(self.label() ^ flip_g);
                let len = self.slice.len();
                let per_message = (MESSAGE_BYTES / WIRE_BYTES).min(len);
                let mut send = vec![0u8; per_message * WIRE_BYTES];
                let mut recv = vec![0u8; per_message * WIRE_BYTES];
                let mut start = 0;
                while start < len {
                    let count = per_message.min(len - start);
                    for (k, out) in (start..start + count).zip(send.chunks_exact_mut(WIRE_BYTES)) {
                        let a = amp(k);
                        out.copy_from_slice(&words_bytes([a.re.to_bits(), a.im.to_bits()]));
                    }
                    let bytes = count * WIRE_BYTES;
                    self.comm
                        .exchange(partner, &send[..bytes], &mut recv[..bytes]);
                    for (k, got) in (start..start + count).zip(recv.chunks_exact(WIRE_BYTES)) {
                        let [re, im] = bytes_words(got);
                        let theirs = Complex64::new(f64::from_bits(re), f64::from_bits(im));
                        let j = k ^ flip_l;
                        sum += theirs.conj() * amp(j) * sign(j);
                    }
                    start += count;
                }
            }
            total += term.coefficient * (c * sum).re;
        }
        let mut all = [total];
        self.comm.sum(&mut all);
        Ok(all[0])
    }
}

/// Each rank runs the same engine on its slice (see [`crate::backend`]):
/// runs of gates are planned as they come, measurements and resets reduce
/// over the ranks, and every value the engine draws from is the same on
/// every rank.
impl<F: Float> Backend for DistributedState<'_, F> {
    type Scalar = F;

    fn apply(&mut self, instr: &Instr, par: &Parallelism) {
        self.apply_reporting(instr, par, &mut |_| {});
    }

    fn apply_reporting(&mut self, instr: &Instr, par: &Parallelism, applied: &mut dyn FnMut(u64)) {
        match instr {
            Instr::Run(ops) => self.apply_run(ops, par, applied),
            Instr::Apply(op) => self.apply_run(std::slice::from_ref(op), par, applied),
            other => unreachable!("a distributed program has runs of gates, not {other:?}"),
        }
    }

    fn try_copy(&self, live: u32, budget: Option<u64>) -> Result<Option<Self>, SimError> {
        let copy = match self.slice.try_clone(live, budget) {
            Ok(slice) => Some(slice),
            Err(SimError::MemoryBudget { .. } | SimError::OutOfMemory { .. }) => None,
            Err(e) => return Err(e),
        };
        // A copy on some ranks only would split the ranks' branches.
        let mut missing = [f64::from(u8::from(copy.is_none()))];
        self.comm.sum(&mut missing);
        if missing[0] > 0.0 {
            return Ok(None);
        }
        Ok(copy.map(|slice| DistributedState {
            slice,
            layout: self.layout.clone(),
            comm: self.comm,
            traffic: Rc::clone(&self.traffic),
            touched: self.touched,
            at_zero: self.at_zero,
            fusion: self.fusion,
            chunk: self.chunk,
        }))
    }

    fn outcome_probabilities(&self, qubit: Qubit, par: &Parallelism) -> [f64; 2] {
        let (local, global) = self.masks(qubit);
        let mut p = if global == 0 {
            qubit_probabilities(&self.slice, local.trailing_zeros(), par)
        } else {
            let norm = piece_norms(&self.slice, par).iter().sum();
            if self.label() & global == 0 {
                [norm, 0.0]
            } else {
                [0.0, norm]
            }
        };
        self.comm.sum(&mut p);
        p
    }

    fn collapse(&mut self, qubit: Qubit, outcome: bool, reset: bool, p: f64, par: &Parallelism) {
        self.at_zero = false;
        self.touched = u64::MAX;
        let (local, global) = self.masks(qubit);
        let scale = 1.0 / p.sqrt();
        if global == 0 {
            let projector = projector(outcome, reset, scale);
            self.slice
                .apply_matrix(&projector, &[local.trailing_zeros()], par);
            return;
        }
        // The rank's bit is the qubit's: its slice is kept or dropped whole.
        let keep = (self.label() & global != 0) == outcome;
        let s = Complex64::new(if keep { scale } else { 0.0 }, 0.0);
        let o = Complex64::new(0.0, 0.0);
        let m = kettle_ir::GateMatrix::new(1, vec![s, o, o, s]).expect("2x2");
        self.slice.apply_matrix(&m, &[0], par);
        if reset && outcome {
            // |1⟩ to |0⟩ on a global qubit: an X, which flips the labels.
            let x = KernelOp::from_gate(
                &kettle_ir::Gate::standard(kettle_ir::StandardGate::X, &[]),
                &[qubit],
                &[],
            );
            self.apply_run(&[x], par, &mut |_| {});
        }
    }

    fn expectation(
        &self,
        observable: &crate::observable::PauliSum,
        _par: &Parallelism,
    ) -> Result<f64, SimError> {
        DistributedState::expectation(self, observable)
    }

    fn sample(
        &mut self,
        shots: u64,
        rng: &mut Xoshiro256PlusPlus,
        par: &Parallelism,
    ) -> Option<Vec<(u64, u64)>> {
        self.sample_with(shots, rng, par)
    }

    fn reports(&self) -> bool {
        self.comm.rank() == 0
    }
}
