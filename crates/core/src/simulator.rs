//! Running circuits: the [`Simulator`], its options and results, and the
//! trajectory engine for circuits with mid-circuit measurement.
//!
//! A circuit whose measurements are all terminal is simulated once and its
//! shots are sampled from the final state. Otherwise shots are *branched*:
//! all shots share one state until a measurement (or reset) splits them
//! binomially between its two outcomes; each outcome group continues on its
//! own collapsed state, and groups that meet the terminal measurements are
//! sampled. This is exactly per-shot trajectories in distribution, but the
//! unitary prefix is simulated once and identical branches once. A branch
//! state is copied only if the memory budget allows it; otherwise the branch
//! is later replayed from |0…0⟩ with its outcomes forced.

use std::hash::{BuildHasher, RandomState};
use std::ops::ControlFlow;

use kettle_ir::{Circuit, Complex64, GateMatrix, Qubit};
use rand::SeedableRng;
use rand_distr::{Binomial, Distribution};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::counts::{ClassicalValue, Counts};
use crate::cpu;
use crate::error::SimError;
use crate::float::Float;
use crate::fusion::FusionConfig;
use crate::kernels::reduce::qubit_probabilities;
use crate::par::Parallelism;
use crate::program::{Instr, Program};
use crate::sample::sample_indices;
use crate::state::{StateVector, check_budget};

/// The most shots one run may ask for (2^32); sampling costs time in
/// proportion to the shots, so more would run for hours.
pub const MAX_SHOTS: u64 = 1 << 32;

/// What to compute in one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Shots to sample (0: none; at most [`MAX_SHOTS`]).
    pub shots: u64,
    /// Seed of the random stream; `None` draws one (reported in the result).
    pub seed: Option<u64>,
    /// Keep the final state in the result. For circuits with mid-circuit
    /// measurement it is the state of one trajectory (drawn with the seed);
    /// terminal measurements are sampled, never applied to it.
    pub keep_state: bool,
}

/// Figures about a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Gates in the circuit.
    pub gates: usize,
    /// Operations applied after lowering and fusion (per branch).
    pub applied_ops: usize,
    /// Sweeps over the whole state (per branch): one per operation outside
    /// a stage, one per stage of cache blocking.
    pub passes: usize,
    /// Branches simulated (1 for a circuit without mid-circuit measurement).
    pub branches: usize,
    /// Branches rebuilt from |0…0⟩ because the budget allowed no copy.
    pub replays: usize,
}

/// How far a run has got, as told to a [`Monitor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Operations applied so far, over every branch and replay.
    pub applied: u64,
    /// Operations in one pass through the circuit; a run with mid-circuit
    /// measurements applies more (one pass per branch), so `applied` may
    /// exceed it.
    pub planned: u64,
}

/// Watches a run from the thread that simulates it: told of progress after
/// every operation (or stage of operations), and able to stop the run there. Progress bars,
/// cancellation and deadlines are monitors.
pub trait Monitor: Sync {
    /// Called after each operation, or after each stage of cache blocking
    /// with all its operations counted; `Break` stops the run with
    /// [`SimError::Stopped`] before the next one.
    fn on_progress(&self, progress: Progress) -> ControlFlow<()>;
}

/// The monitor of [`Simulator::run`] and
/// [`Simulator::adjoint_gradient`]: never stops anything.
pub(crate) struct Unwatched;

impl Monitor for Unwatched {
    fn on_progress(&self, _: Progress) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
}

/// The outcome of [`Simulator::run`].
#[derive(Debug)]
pub struct RunResult<F: Float> {
    /// Classical register values and their counts.
    pub counts: Counts,
    /// The final state, when asked for.
    pub state: Option<StateVector<F>>,
    /// The seed used.
    pub seed: u64,
    /// Figures about the run.
    pub stats: RunStats,
}

/// Runs circuits on state vectors.
///
/// ```
/// use kettle_core::{RunOptions, Simulator};
/// use kettle_ir::Circuit;
///
/// let bell = Circuit::new(2).h(0).cx(0, 1).measure_all();
/// let sim = Simulator::new();
/// let out = sim.run::<f64>(&bell, &RunOptions { shots: 1000, seed: Some(7), ..Default::default() }).unwrap();
/// assert_eq!(out.counts.get("00") + out.counts.get("11"), 1000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Simulator {
    par: Parallelism,
    fusion: FusionConfig,
    memory_budget: Option<u64>,
}

impl Simulator {
    /// Sequential, fusion on, no memory budget.
    pub fn new() -> Simulator {
        Simulator::default()
    }

    /// Uses `par` for passes over the state.
    pub fn with_parallelism(mut self, par: Parallelism) -> Self {
        self.par = par;
        self
    }

    /// Uses this fusion configuration.
    pub fn with_fusion(mut self, fusion: FusionConfig) -> Self {
        self.fusion = fusion;
        self
    }

    /// Refuses runs whose states would take more than `bytes`.
    pub fn with_memory_budget(mut self, bytes: Option<u64>) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// The parallelism passes use.
    pub fn parallelism(&self) -> &Parallelism {
        &self.par
    }

    /// The fusion configuration.
    pub(crate) fn fusion(&self) -> &FusionConfig {
        &self.fusion
    }

    /// The memory budget, if any.
    pub fn memory_budget(&self) -> Option<u64> {
        self.memory_budget
    }

    /// Runs `circuit` at precision `F`.
    ///
    /// # Errors
    /// [`SimError::Circuit`] for an invalid circuit, [`SimError::MemoryBudget`]
    /// when the state does not fit, [`SimError::UnsupportedCpu`] when this
    /// build cannot run here.
    pub fn run<F: Float>(
        &self,
        circuit: &Circuit,
        options: &RunOptions,
    ) -> Result<RunResult<F>, SimError> {
        self.run_monitored(circuit, options, &Unwatched)
    }

    /// Like [`run`](Self::run), telling `monitor` of progress after every
    /// operation and stopping when it says so.
    ///
    /// # Errors
    /// As [`run`](Self::run), and [`SimError::Stopped`] when the monitor
    /// stopped the run.
    pub fn run_monitored<F: Float>(
        &self,
        circuit: &Circuit,
        options: &RunOptions,
        monitor: &dyn Monitor,
    ) -> Result<RunResult<F>, SimError> {
        cpu::check()?;
        circuit.validate()?;
        if options.shots > MAX_SHOTS {
            return Err(SimError::TooManyShots {
                shots: options.shots,
                max: MAX_SHOTS,
            });
        }
        let n = circuit.num_qubits();
        check_budget::<F>(n, 1, self.memory_budget)?;
        let program = Program::compile(circuit, &self.fusion, self.fusion.blocking.shape::<F>());
        let seed = options
            .seed
            .unwrap_or_else(|| RandomState::new().hash_one(0x6b65_7474_6c65_u64));
        let (applied_ops, passes) =
            program
                .instrs
                .iter()
                .fold((0, 0), |(ops, passes), i| match i {
                    Instr::Apply(_) => (ops + 1, passes + 1),
                    Instr::Stage(s) => (ops + s.ops.len(), passes + 1),
                    _ => (ops, passes),
                });
        let mut engine = Engine {
            program: &program,
            par: &self.par,
            monitor,
            progress: Progress {
                applied: 0,
                planned: applied_ops as u64,
            },
            budget: self.memory_budget,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            counts: Counts::new(circuit.num_clbits()),
            stats: RunStats {
                gates: program.gates,
                applied_ops,
                passes,
                ..RunStats::default()
            },
            num_qubits: n,
            num_clbits: circuit.num_clbits(),
        };
        let state = engine.run(options)?;
        Ok(RunResult {
            counts: engine.counts,
            state,
            seed,
            stats: engine.stats,
        })
    }

    /// The final state of a circuit (terminal measurements are ignored; a
    /// circuit with mid-circuit measurement gives one trajectory, seed 0).
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn statevector<F: Float>(&self, circuit: &Circuit) -> Result<StateVector<F>, SimError> {
        let options = RunOptions {
            shots: 0,
            seed: Some(0),
            keep_state: true,
        };
        Ok(self
            .run::<F>(circuit, &options)?
            .state
            .expect("state was asked for"))
    }
}

/// A group of shots waiting to continue from `pc`.
struct Branch<F: Float> {
    pc: usize,
    shots: u64,
    clbits: ClassicalValue,
    /// `None`: rebuild by replaying `path`.
    state: Option<StateVector<F>>,
    /// Outcome of every measurement and reset so far.
    path: Vec<bool>,
}

struct Engine<'a> {
    program: &'a Program,
    par: &'a Parallelism,
    monitor: &'a dyn Monitor,
    progress: Progress,
    budget: Option<u64>,
    rng: Xoshiro256PlusPlus,
    counts: Counts,
    stats: RunStats,
    num_qubits: u32,
    num_clbits: u32,
}

impl Engine<'_> {
    /// Counts applied operations and asks the monitor whether to go on.
    fn applied(&mut self, ops: usize) -> Result<(), SimError> {
        self.progress.applied += ops as u64;
        match self.monitor.on_progress(self.progress) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(SimError::Stopped),
        }
    }

    fn run<F: Float>(&mut self, options: &RunOptions) -> Result<Option<StateVector<F>>, SimError> {
        // With no shots, one trajectory still runs if the state is wanted.
        let shots = if options.shots == 0 {
            u64::from(options.keep_state)
        } else {
            options.shots
        };
        if shots == 0 {
            return Ok(None);
        }
        let record = options.shots > 0;
        let mut kept = None;
        let mut stack = vec![Branch {
            pc: 0,
            shots,
            clbits: ClassicalValue::zeros(self.num_clbits),
            state: Some(StateVector::<F>::with_budget(self.num_qubits, self.budget)?),
            path: Vec::new(),
        }];
        while let Some(mut branch) = stack.pop() {
            self.stats.branches += 1;
            let mut state = match branch.state.take() {
                Some(s) => s,
                None => self.replay(&branch)?,
            };
            loop {
                if branch.pc >= self.program.tail {
                    if record {
                        self.sample_tail(&state, &branch);
                    }
                    if options.keep_state && kept.is_none() {
                        kept = Some(state);
                    }
                    break;
                }
                match &self.program.instrs[branch.pc] {
                    Instr::Apply(op) => {
                        state.apply(op, self.par);
                        self.applied(1)?;
                    }
                    Instr::Stage(stage) => {
                        state.apply_stage(stage, self.par);
                        self.applied(stage.ops.len())?;
                    }
                    Instr::Measure { qubit, .. } | Instr::Reset { qubit } => {
                        let live = 1 + stack.iter().filter(|b| b.state.is_some()).count() as u32;
                        if let Some(other) = self.split(&mut state, &mut branch, *qubit, live)? {
                            stack.push(other);
                        }
                    }
                    Instr::JumpUnless { condition, target } => {
                        if !condition.holds(|c| branch.clbits.get(c)) {
                            branch.pc = *target;
                            continue;
                        }
                    }
                    Instr::Jump { target } => {
                        branch.pc = *target;
                        continue;
                    }
                }
                branch.pc += 1;
            }
        }
        Ok(kept)
    }

    /// Splits `branch`'s shots at the measurement or reset at `branch.pc`:
    /// `branch` and `state` continue with one outcome; the other outcome's
    /// shots, if any, are returned as a new branch.
    fn split<F: Float>(
        &mut self,
        state: &mut StateVector<F>,
        branch: &mut Branch<F>,
        qubit: Qubit,
        live_states: u32,
    ) -> Result<Option<Branch<F>>, SimError> {
        let [p0, p1] = qubit_probabilities(state, qubit, self.par);
        // Normalise against rounding; a degenerate state (never produced by
        // unitary gates) must not reach the binomial as NaN.
        let p = (p1 / (p0 + p1)).clamp(0.0, 1.0);
        let p = if p.is_finite() { p } else { 0.0 };
        let ones = Binomial::new(branch.shots, p)
            .expect("p is a probability")
            .sample(&mut self.rng);
        let zeros = branch.shots - ones;
        let instr = &self.program.instrs[branch.pc];
        let mut other = None;
        if ones > 0 && zeros > 0 {
            let copy = match state.try_clone(live_states, self.budget) {
                Ok(mut s) => {
                    collapse(&mut s, instr, true, p1, self.par);
                    Some(s)
                }
                Err(SimError::MemoryBudget { .. } | SimError::OutOfMemory { .. }) => None,
                Err(e) => return Err(e),
            };
            let mut clbits = branch.clbits.clone();
            record_outcome(instr, &mut clbits, true);
            let mut path = branch.path.clone();
            path.push(true);
            other = Some(Branch {
                pc: branch.pc + 1,
                shots: ones,
                clbits,
                state: copy,
                path,
            });
        }
        let outcome = zeros == 0;
        collapse(
            state,
            instr,
            outcome,
            if outcome { p1 } else { p0 },
            self.par,
        );
        record_outcome(instr, &mut branch.clbits, outcome);
        branch.path.push(outcome);
        branch.shots = if outcome { ones } else { zeros };
        Ok(other)
    }

    /// Rebuilds a branch's state from |0…0⟩, forcing its recorded outcomes.
    fn replay<F: Float>(&mut self, branch: &Branch<F>) -> Result<StateVector<F>, SimError> {
        self.stats.replays += 1;
        let mut state = StateVector::<F>::with_budget(self.num_qubits, self.budget)?;
        let mut clbits = ClassicalValue::zeros(self.num_clbits);
        let (mut pc, mut k) = (0, 0);
        while !(pc == branch.pc && k == branch.path.len()) {
            let instr = &self.program.instrs[pc];
            match instr {
                Instr::Apply(op) => {
                    state.apply(op, self.par);
                    self.applied(1)?;
                }
                Instr::Stage(stage) => {
                    state.apply_stage(stage, self.par);
                    self.applied(stage.ops.len())?;
                }
                Instr::Measure { qubit, .. } | Instr::Reset { qubit } => {
                    let outcome = branch.path[k];
                    k += 1;
                    let [p0, p1] = qubit_probabilities(&state, *qubit, self.par);
                    collapse(
                        &mut state,
                        instr,
                        outcome,
                        if outcome { p1 } else { p0 },
                        self.par,
                    );
                    record_outcome(instr, &mut clbits, outcome);
                }
                Instr::JumpUnless { condition, target } => {
                    if !condition.holds(|c| clbits.get(c)) {
                        pc = *target;
                        continue;
                    }
                }
                Instr::Jump { target } => {
                    pc = *target;
                    continue;
                }
            }
            pc += 1;
        }
        debug_assert_eq!(clbits, branch.clbits);
        Ok(state)
    }

    /// Samples the branch's shots from `state` through the terminal
    /// measurements `instrs[branch.pc..]`.
    fn sample_tail<F: Float>(&mut self, state: &StateVector<F>, branch: &Branch<F>) {
        let tail = &self.program.instrs[branch.pc..];
        if tail.is_empty() {
            self.counts.add(branch.clbits.clone(), branch.shots);
            return;
        }
        for (index, count) in sample_indices(state, branch.shots, &mut self.rng, self.par) {
            let mut value = branch.clbits.clone();
            for instr in tail {
                if let Instr::Measure { qubit, clbit } = instr {
                    value.set(*clbit, (index >> qubit) & 1 == 1);
                }
            }
            self.counts.add(value, count);
        }
    }
}

fn record_outcome(instr: &Instr, clbits: &mut ClassicalValue, outcome: bool) {
    if let Instr::Measure { clbit, .. } = instr {
        clbits.set(*clbit, outcome);
    }
}

/// Projects `state` onto `outcome` of the measured qubit and renormalises by
/// the outcome's probability `p`; a reset then moves |1⟩ to |0⟩ in the same pass.
fn collapse<F: Float>(
    state: &mut StateVector<F>,
    instr: &Instr,
    outcome: bool,
    p: f64,
    par: &Parallelism,
) {
    let (qubit, reset) = match instr {
        Instr::Measure { qubit, .. } => (*qubit, false),
        Instr::Reset { qubit } => (*qubit, true),
        _ => unreachable!("only measurements and resets collapse"),
    };
    let s = Complex64::new(1.0 / p.sqrt(), 0.0);
    let o = Complex64::new(0.0, 0.0);
    let data = match (outcome, reset) {
        (false, _) => vec![s, o, o, o],
        (true, false) => vec![o, o, o, s],
        (true, true) => vec![o, s, o, o],
    };
    state.apply_matrix(&GateMatrix::new(1, data).expect("2x2"), &[qubit], par);
}
