//! The engine that runs a compiled program's shots, branching them at
//! measurements and noise.
//!
//! A circuit whose measurements are all terminal is simulated once and its
//! shots are sampled from the final state. Otherwise shots are *branched*:
//! all shots share one state until a measurement (or reset) splits them
//! binomially between its two outcomes; each outcome group continues on its
//! own collapsed state, and groups that meet the terminal measurements are
//! sampled. This is exactly per-shot trajectories in distribution, but the
//! unitary prefix is simulated once and identical branches once. Noise
//! branches the same way: a channel with non-unitary Kraus operators splits
//! shots among them, a readout error between its two readings, and a run of
//! gates with unitary-mixture noise among its distinct sampled trajectories
//! ([`crate::trajectory`]). A branch state is copied only if the memory
//! budget allows it; otherwise the branch is later replayed from |0…0⟩ with
//! its choices forced.
//!
//! The engine runs on any [`Backend`]: a state vector, the density matrix
//! of the density-matrix [`Method`] (a doubled vector where only
//! measurements branch), or a state split over ranks, where every rank runs
//! the same engine with the same seed and so the same branches.

use std::ops::ControlFlow;

use kettle_ir::{Clbit, Qubit, ReadoutError};
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, Distribution};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::backend::Backend;
use crate::counts::{ClassicalValue, Counts};
use crate::error::SimError;
use crate::observable::PauliSum;
use crate::par::Parallelism;
use crate::program::{Instr, Program};
use crate::sample::binomial;
use crate::simulator::{Estimate, Monitor, Progress, RunOptions, RunStats, Simulator};
use crate::state::{StateVector, check_budget};
use crate::trajectory::{Choices, KrausStep, Segment};

/// Up to this many qubits, trajectories run whole on one thread each, a
/// few at once, rather than one at a time with each pass spread over the
/// threads (a 2^17-amplitude state is 2 MiB at f64: on the reference
/// machine a 14-qubit trajectory took twice as long with its passes
/// spread over 2 threads as on one).
const PARALLEL_TRAJECTORY_QUBITS: u32 = 17;

/// The estimates from the leaves' `(shots, values)`: the weighted mean and
/// the standard error of a per-shot mean.
fn estimates(leaves: &[(u64, Vec<f64>)], count: usize) -> Vec<Estimate> {
    let total: u64 = leaves.iter().map(|(w, _)| w).sum();
    (0..count)
        .map(|k| {
            if total == 0 {
                return Estimate {
                    value: 0.0,
                    std_error: 0.0,
                };
            }
            let w = total as f64;
            let mean = leaves.iter().map(|(s, v)| *s as f64 * v[k]).sum::<f64>() / w;
            let spread: f64 = leaves
                .iter()
                .map(|(s, v)| *s as f64 * (v[k] - mean).powi(2))
                .sum();
            // One leaf is one exact value (its spread is only rounding).
            let std_error = if total > 1 && leaves.len() > 1 {
                (spread / w / (w - 1.0)).sqrt()
            } else {
                0.0
            };
            Estimate {
                value: mean,
                std_error,
            }
        })
        .collect()
}

/// A random choice a branch made, recorded so that a branch whose state
/// could not be copied can be rebuilt from |0…0⟩.
#[derive(Clone, Debug)]
enum Choice {
    /// A measurement's or reset's outcome.
    Outcome(bool),
    /// Which Kraus operator of a channel.
    Kraus(u16),
    /// Whether a readout error flipped its bit.
    Flip(bool),
    /// The unitaries a noisy run of gates chose.
    Trajectory(Choices),
}

/// A group of shots waiting to continue from `pc`.
struct Branch<S> {
    pc: usize,
    shots: u64,
    clbits: ClassicalValue,
    /// `None`: rebuild by replaying `path`.
    state: Option<S>,
    /// Every choice so far.
    path: Vec<Choice>,
    /// The seed of its own random stream for the tail, for a trajectory
    /// that goes straight from its segment to the tail: trajectories then
    /// sample independently of each other's order, so that they can run
    /// in parallel with the same counts.
    tail_seed: Option<u64>,
}

/// The shots of a branch that reached a noisy run of gates, handing out
/// their distinct trajectories one at a time (see [`crate::trajectory`]).
struct Trajectories<S> {
    pc: usize,
    clbits: ClassicalValue,
    path: Vec<Choice>,
    /// The state after the noiseless windows before `window`.
    cursor: Option<S>,
    window: usize,
    /// Drawn and not yet handed out, the next last.
    groups: Vec<(Choices, u64)>,
    /// Shots not yet drawn.
    undrawn: u64,
    /// All shots were drawn in one batch, so the first errors of the
    /// groups only go forwards and the cursor may advance.
    one_batch: bool,
    /// The tail seeds' base for this batch, and the next group's index.
    seed_base: u64,
    index: u64,
}

/// States alive while a branch runs: its own, and those waiting on the
/// stack (counted where a copy is considered, not at every instruction).
fn live<S>(stack: &[Task<S>]) -> u32 {
    1 + stack.iter().filter(|t| t.holds_state()).count() as u32
}

enum Task<S> {
    Branch(Branch<S>),
    Trajectories(Trajectories<S>),
}

impl<S> Task<S> {
    fn holds_state(&self) -> bool {
        match self {
            Task::Branch(b) => b.state.is_some(),
            Task::Trajectories(t) => t.cursor.is_some(),
        }
    }
}

/// What a run of the engine gives.
pub(crate) struct Finished {
    pub(crate) counts: Counts,
    pub(crate) stats: RunStats,
    /// The estimates of the run's observables, in order.
    pub(crate) expectations: Vec<Estimate>,
}

/// One run's shots: the compiled program and everything the engine needs
/// besides the states it runs on, which [`Shots::run`] is given a way to
/// make (so the same run takes a state vector, a density matrix or a state
/// split over ranks).
pub(crate) struct Shots<'a> {
    pub(crate) program: &'a Program,
    pub(crate) sim: &'a Simulator,
    pub(crate) monitor: &'a dyn Monitor,
    pub(crate) seed: u64,
    /// The program's figures (its `applied_ops` are the progress a pass
    /// through it makes).
    pub(crate) stats: RunStats,
    pub(crate) num_clbits: u32,
    pub(crate) options: &'a RunOptions,
}

impl Shots<'_> {
    /// Runs the shots on states that start as `zero` makes them.
    ///
    /// # Errors
    /// Budget, allocation and monitor errors, and those of the states.
    pub(crate) fn run<S: Backend>(
        &self,
        zero: &dyn Fn() -> Result<S, SimError>,
    ) -> Result<(Finished, Option<S>), SimError> {
        Engine {
            program: self.program,
            zero,
            par: self.sim.parallelism(),
            monitor: self.monitor,
            progress: Progress {
                applied: 0,
                planned: self.stats.applied_ops as u64,
            },
            budget: self.sim.memory_budget(),
            rng: Xoshiro256PlusPlus::seed_from_u64(self.seed),
            counts: Counts::new(self.num_clbits),
            stats: self.stats.clone(),
            num_qubits: self.program.vector_qubits(),
            num_clbits: self.num_clbits,
            observables: &self.options.observables,
            leaves: Vec::new(),
        }
        .finish_run(self.options)
    }
}

/// Runs a compiled program's shots (see the module documentation).
pub(crate) struct Engine<'a, S: Backend> {
    program: &'a Program,
    /// Makes the |0…0⟩ a run or a replay starts from.
    zero: &'a dyn Fn() -> Result<S, SimError>,
    par: &'a Parallelism,
    monitor: &'a dyn Monitor,
    progress: Progress,
    budget: Option<u64>,
    rng: Xoshiro256PlusPlus,
    counts: Counts,
    stats: RunStats,
    /// Qubits of the vector (twice the circuit's for a density matrix).
    num_qubits: u32,
    num_clbits: u32,
    observables: &'a [PauliSum],
    /// Shots and observable values of every finished branch.
    leaves: Vec<(u64, Vec<f64>)>,
}

impl<'a, S: Backend> Engine<'a, S> {
    /// Runs the shots of `options`; with them, the state kept (see
    /// [`RunOptions::keep_state`]).
    fn finish_run(mut self, options: &RunOptions) -> Result<(Finished, Option<S>), SimError> {
        let kept = self.run(options)?;
        let finished = Finished {
            expectations: estimates(&self.leaves, self.observables.len()),
            counts: self.counts,
            stats: self.stats,
        };
        Ok((finished, kept))
    }

    /// Counts applied operations and asks the monitor whether to go on.
    fn applied(&mut self, ops: usize) -> Result<(), SimError> {
        self.progress.applied += ops as u64;
        match self.monitor.on_progress(self.progress) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(SimError::Stopped),
        }
    }

    fn run(&mut self, options: &RunOptions) -> Result<Option<S>, SimError> {
        // With no shots, one trajectory still runs if the state or an
        // expectation value is wanted.
        let shots = if options.shots == 0 {
            u64::from(options.keep_state || !options.observables.is_empty())
        } else {
            options.shots
        };
        if shots == 0 {
            return Ok(None);
        }
        let record = options.shots > 0;
        let mut kept = None;
        let mut stack = vec![Task::Branch(Branch {
            pc: 0,
            shots,
            clbits: ClassicalValue::zeros(self.num_clbits),
            state: Some((self.zero)()?),
            path: Vec::new(),
            tail_seed: None,
        })];
        'tasks: while let Some(task) = stack.pop() {
            let mut branch = match task {
                Task::Branch(b) => b,
                Task::Trajectories(t) => match self.next_trajectory(t, &mut stack)? {
                    Some(b) => b,
                    None => continue,
                },
            };
            self.stats.branches += 1;
            let mut state = match branch.state.take() {
                Some(s) => s,
                None => self.replay(&branch)?,
            };
            loop {
                if branch.pc >= self.program.tail {
                    self.finish(&mut state, &branch, record)?;
                    if options.keep_state && kept.is_none() {
                        kept = Some(state);
                    }
                    break;
                }
                match &self.program.instrs[branch.pc] {
                    instr @ (Instr::Apply(_) | Instr::Stage(_) | Instr::Run(_)) => {
                        // Reports inside the instruction cannot stop it
                        // (a distributed state's ranks would part ways);
                        // the count after it can.
                        let (monitor, before) = (self.monitor, self.progress);
                        state.apply_reporting(instr, self.par, &mut |done| {
                            let _ = monitor.on_progress(Progress {
                                applied: before.applied + done,
                                ..before
                            });
                        });
                        self.applied(unitary_ops(instr))?;
                    }
                    Instr::Measure { qubit, .. } | Instr::Reset { qubit } => {
                        if let Some(other) =
                            self.split(&mut state, &mut branch, *qubit, live(&stack))?
                        {
                            stack.push(Task::Branch(other));
                        }
                    }
                    Instr::Kraus(step) => {
                        for other in
                            self.split_kraus(&mut state, &mut branch, step, live(&stack))?
                        {
                            stack.push(Task::Branch(other));
                        }
                    }
                    Instr::Readout { clbit, error } => {
                        if let Some(other) =
                            self.split_readout(&state, &mut branch, *clbit, error, live(&stack))?
                        {
                            stack.push(Task::Branch(other));
                        }
                    }
                    Instr::Noisy(segment) => {
                        if branch.pc + 1 == self.program.tail
                            && !options.keep_state
                            && self.parallel_trajectories(live(&stack))
                        {
                            match state.into_vector() {
                                Ok(vector) => {
                                    self.trajectories_to_tail(vector, &branch, segment, record)?;
                                    continue 'tasks;
                                }
                                Err(other) => state = other,
                            }
                        }
                        let one_batch = branch.shots <= segment.batch_shots();
                        stack.push(Task::Trajectories(Trajectories {
                            pc: branch.pc,
                            clbits: branch.clbits,
                            path: branch.path,
                            cursor: Some(state),
                            window: 0,
                            groups: Vec::new(),
                            undrawn: branch.shots,
                            one_batch,
                            seed_base: 0,
                            index: 0,
                        }));
                        continue 'tasks;
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

    /// Whether trajectories that go straight to the tail run a few at a
    /// time, each whole on one thread ([`trajectories_to_tail`]): there
    /// are threads, the state is small enough that a pass over it costs
    /// less than handing it to the pool, and the budget holds a copy per
    /// thread besides the shared prefix and the `live` states.
    ///
    /// [`trajectories_to_tail`]: Engine::trajectories_to_tail
    fn parallel_trajectories(&self, live: u32) -> bool {
        let threads = self.par.num_threads() as u32;
        threads > 1
            && self.num_qubits <= PARALLEL_TRAJECTORY_QUBITS
            && check_budget::<S::Scalar>(self.num_qubits, live + threads, self.budget).is_ok()
    }

    /// Runs every trajectory of `branch`'s shots through `segment` and
    /// samples its tail, a few trajectories per thread at once, each whole
    /// on one thread (Aer's parallel shots). The draws, the groups, the
    /// shared prefix and the tail seeds are those of [`next_trajectory`]
    /// taking one trajectory at a time, so the counts are the same.
    ///
    /// [`next_trajectory`]: Engine::next_trajectory
    fn trajectories_to_tail(
        &mut self,
        mut cursor: StateVector<S::Scalar>,
        branch: &Branch<S>,
        segment: &Segment,
        record: bool,
    ) -> Result<(), SimError> {
        let tail = &self.program.instrs[branch.pc + 1..];
        let one_batch = branch.shots <= segment.batch_shots();
        let per_round = self.par.num_threads() * 4;
        let alone = Parallelism::Sequential;
        let clbits = &branch.clbits;
        let mut window = 0;
        let mut undrawn = branch.shots;
        while undrawn > 0 {
            let batch = undrawn.min(segment.batch_shots());
            undrawn -= batch;
            let groups = segment.sample(batch, &mut self.rng);
            let base = self.rng.next_u64();
            for (round, chunk) in groups.chunks(per_round).enumerate() {
                let start = segment.first_window(&chunk[0].0);
                if one_batch && window < start {
                    let ops = segment.apply(&mut cursor, window, start, &[], &alone);
                    self.applied(ops)?;
                    window = start;
                }
                let observables = self.observables;
                let cursor = &cursor;
                let done = self
                    .par
                    .map_pieces(chunk.len(), 1, 1 << self.num_qubits, |r| {
                        let (choices, shots) = &chunk[r.start];
                        let mut state = cursor.clone();
                        let ops =
                            segment.apply(&mut state, window, segment.windows(), choices, &alone);
                        let index = (round * per_round + r.start) as u64;
                        let mut rng = Xoshiro256PlusPlus::seed_from_u64(tail_seed(base, index));
                        let values = if record {
                            sample_through(&mut state, *shots, clbits, tail, &mut rng, &alone)
                                .unwrap_or_default()
                        } else {
                            Vec::new()
                        };
                        let measured = observables
                            .iter()
                            .map(|o| state.expectation(o, &alone))
                            .collect::<Result<Vec<f64>, SimError>>();
                        (ops, values, measured, *shots)
                    });
                for (ops, values, measured, shots) in done {
                    self.stats.branches += 1;
                    self.applied(ops)?;
                    for (v, n) in values {
                        self.counts.add(v, n);
                    }
                    if !observables.is_empty() {
                        self.leaves.push((shots, measured?));
                    }
                }
            }
        }
        Ok(())
    }

    /// The next distinct trajectory of `t` as a branch past its segment,
    /// with `t` pushed back while it has more; `None` when it has none.
    fn next_trajectory(
        &mut self,
        mut t: Trajectories<S>,
        stack: &mut Vec<Task<S>>,
    ) -> Result<Option<Branch<S>>, SimError> {
        let Instr::Noisy(segment) = &self.program.instrs[t.pc] else {
            unreachable!("trajectories start at a segment")
        };
        if t.groups.is_empty() {
            if t.undrawn == 0 {
                return Ok(None);
            }
            let batch = t.undrawn.min(segment.batch_shots());
            t.undrawn -= batch;
            t.groups = segment.sample(batch, &mut self.rng);
            t.groups.reverse();
            t.seed_base = self.rng.next_u64();
            t.index = 0;
        }
        let (choices, shots) = t.groups.pop().expect("drawn above");
        let last = t.groups.is_empty() && t.undrawn == 0;
        let start = segment.first_window(&choices);
        let mut cursor = t.cursor.take().expect("kept until the last trajectory");
        if t.one_batch && t.window < start {
            let ops = segment.apply(
                trajectory_vector(&mut cursor)?,
                t.window,
                start,
                &[],
                self.par,
            );
            self.applied(ops)?;
            t.window = start;
        }
        let from = t.window;
        let state = if last {
            Some(cursor)
        } else {
            // The cursor, and the states waiting on the stack.
            let copy = cursor.try_copy(live(stack), self.budget)?;
            t.cursor = Some(cursor);
            copy
        };
        let state = match state {
            Some(mut s) => {
                let v = trajectory_vector(&mut s)?;
                let ops = segment.apply(v, from, segment.windows(), &choices, self.par);
                self.applied(ops)?;
                Some(s)
            }
            None => None,
        };
        let mut path = t.path.clone();
        path.push(Choice::Trajectory(choices));
        let tail_seed = (t.pc + 1 == self.program.tail).then(|| tail_seed(t.seed_base, t.index));
        t.index += 1;
        let branch = Branch {
            pc: t.pc + 1,
            shots,
            clbits: t.clbits.clone(),
            state,
            path,
            tail_seed,
        };
        if !last {
            stack.push(Task::Trajectories(t));
        }
        Ok(Some(branch))
    }

    /// Splits `branch`'s shots at the measurement or reset at `branch.pc`:
    /// `branch` and `state` continue with one outcome; the other outcome's
    /// shots, if any, are returned as a new branch.
    fn split(
        &mut self,
        state: &mut S,
        branch: &mut Branch<S>,
        qubit: Qubit,
        live_states: u32,
    ) -> Result<Option<Branch<S>>, SimError> {
        let [p0, p1] = state.outcome_probabilities(qubit, self.par);
        // Normalised against rounding; a degenerate state (never produced by
        // unitary gates) gives NaN, which draws no ones.
        let ones = binomial(branch.shots, p1 / (p0 + p1), &mut self.rng);
        let zeros = branch.shots - ones;
        let instr = &self.program.instrs[branch.pc];
        let mut other = None;
        if ones > 0 && zeros > 0 {
            let copy = match state.try_copy(live_states, self.budget)? {
                Some(mut s) => {
                    self.collapse(&mut s, instr, true, p1);
                    Some(s)
                }
                None => None,
            };
            let mut clbits = branch.clbits.clone();
            record_outcome(instr, &mut clbits, true);
            let mut path = branch.path.clone();
            path.push(Choice::Outcome(true));
            other = Some(Branch {
                pc: branch.pc + 1,
                shots: ones,
                clbits,
                state: copy,
                path,
                tail_seed: branch.tail_seed,
            });
        }
        let outcome = zeros == 0;
        self.collapse(state, instr, outcome, if outcome { p1 } else { p0 });
        record_outcome(instr, &mut branch.clbits, outcome);
        branch.path.push(Choice::Outcome(outcome));
        branch.shots = if outcome { ones } else { zeros };
        Ok(other)
    }

    /// Splits `branch`'s shots among the Kraus operators of `step`: the
    /// last operator drawn continues in `state`, the others are returned.
    fn split_kraus(
        &mut self,
        state: &mut S,
        branch: &mut Branch<S>,
        step: &KrausStep,
        live_states: u32,
    ) -> Result<Vec<Branch<S>>, SimError> {
        let probabilities = step.probabilities(trajectory_vector(state)?, self.par);
        let total: f64 = probabilities.iter().sum();
        let shares = KrausStep::split(&probabilities, branch.shots, &mut self.rng);
        let kept = shares.iter().rposition(|&s| s > 0).unwrap_or(0);
        let mut others = Vec::new();
        for (i, &shots) in shares.iter().enumerate() {
            if shots == 0 || i == kept {
                continue;
            }
            let live = live_states + others.len() as u32;
            let copy = match state.try_copy(live, self.budget)? {
                Some(mut s) => {
                    step.apply(
                        trajectory_vector(&mut s)?,
                        i,
                        probabilities[i] / total,
                        self.par,
                    );
                    Some(s)
                }
                None => None,
            };
            let mut path = branch.path.clone();
            path.push(Choice::Kraus(i as u16));
            others.push(Branch {
                pc: branch.pc + 1,
                shots,
                clbits: branch.clbits.clone(),
                state: copy,
                path,
                tail_seed: branch.tail_seed,
            });
        }
        step.apply(
            trajectory_vector(state)?,
            kept,
            probabilities[kept] / total,
            self.par,
        );
        self.applied(1)?;
        branch.path.push(Choice::Kraus(kept as u16));
        branch.shots = shares[kept];
        Ok(others)
    }

    /// Splits `branch`'s shots between the two readings of `clbit`; the
    /// flipped ones are returned when some shots read each way.
    fn split_readout(
        &mut self,
        state: &S,
        branch: &mut Branch<S>,
        clbit: Clbit,
        error: &ReadoutError,
        live_states: u32,
    ) -> Result<Option<Branch<S>>, SimError> {
        let value = branch.clbits.get(clbit);
        let flips = Binomial::new(branch.shots, error.flip_probability(value))
            .expect("a probability")
            .sample(&mut self.rng);
        if flips == branch.shots {
            branch.clbits.set(clbit, !value);
            branch.path.push(Choice::Flip(true));
            return Ok(None);
        }
        branch.path.push(Choice::Flip(false));
        if flips == 0 {
            return Ok(None);
        }
        branch.shots -= flips;
        let mut clbits = branch.clbits.clone();
        clbits.set(clbit, !value);
        let mut path = branch.path.clone();
        *path.last_mut().expect("pushed above") = Choice::Flip(true);
        Ok(Some(Branch {
            pc: branch.pc + 1,
            shots: flips,
            clbits,
            state: state.try_copy(live_states, self.budget)?,
            path,
            tail_seed: branch.tail_seed,
        }))
    }

    /// Rebuilds a branch's state from |0…0⟩, forcing its recorded choices.
    fn replay(&mut self, branch: &Branch<S>) -> Result<S, SimError> {
        self.stats.replays += 1;
        let mut state = (self.zero)()?;
        let mut clbits = ClassicalValue::zeros(self.num_clbits);
        let (mut pc, mut k) = (0, 0);
        while !(pc == branch.pc && k == branch.path.len()) {
            let instr = &self.program.instrs[pc];
            match (instr, branch.path.get(k)) {
                (unitary @ (Instr::Apply(_) | Instr::Stage(_) | Instr::Run(_)), _) => {
                    state.apply(unitary, self.par);
                    self.applied(unitary_ops(unitary))?;
                }
                (
                    Instr::Measure { qubit, .. } | Instr::Reset { qubit },
                    Some(Choice::Outcome(o)),
                ) => {
                    k += 1;
                    let [p0, p1] = state.outcome_probabilities(*qubit, self.par);
                    self.collapse(&mut state, instr, *o, if *o { p1 } else { p0 });
                    record_outcome(instr, &mut clbits, *o);
                }
                (Instr::Kraus(step), Some(Choice::Kraus(i))) => {
                    k += 1;
                    let vector = trajectory_vector(&mut state)?;
                    let probabilities = step.probabilities(vector, self.par);
                    let total: f64 = probabilities.iter().sum();
                    let i = usize::from(*i);
                    step.apply(vector, i, probabilities[i] / total, self.par);
                    self.applied(1)?;
                }
                (Instr::Readout { clbit, .. }, Some(Choice::Flip(f))) => {
                    k += 1;
                    if *f {
                        clbits.set(*clbit, !clbits.get(*clbit));
                    }
                }
                (Instr::Noisy(segment), Some(Choice::Trajectory(choices))) => {
                    k += 1;
                    let vector = trajectory_vector(&mut state)?;
                    let ops = segment.apply(vector, 0, segment.windows(), choices, self.par);
                    self.applied(ops)?;
                }
                (Instr::JumpUnless { condition, target }, _) => {
                    if !condition.holds(|c| clbits.get(c)) {
                        pc = *target;
                        continue;
                    }
                }
                (Instr::Jump { target }, _) => {
                    pc = *target;
                    continue;
                }
                (other, choice) => unreachable!("replaying {other:?} with {choice:?}"),
            }
            pc += 1;
        }
        debug_assert_eq!(clbits, branch.clbits);
        Ok(state)
    }

    /// A branch that reached the tail: samples its shots through the
    /// terminal measurements and readout errors (if shots are recorded)
    /// and takes its observables' values.
    fn finish(&mut self, state: &mut S, branch: &Branch<S>, record: bool) -> Result<(), SimError> {
        if !self.observables.is_empty() {
            let values = self
                .observables
                .iter()
                .map(|o| state.expectation(o, self.par))
                .collect::<Result<Vec<f64>, SimError>>()?;
            self.leaves.push((branch.shots, values));
        }
        if record {
            self.sample_tail(state, branch);
        }
        Ok(())
    }

    /// Samples the branch's shots from `state` through the terminal
    /// measurements and readout errors `instrs[branch.pc..]`.
    fn sample_tail(&mut self, state: &mut S, branch: &Branch<S>) {
        let tail = &self.program.instrs[branch.pc..];
        if !tail.iter().any(|i| matches!(i, Instr::Measure { .. })) {
            if !state.reports() {
                return;
            }
            let mut values = vec![(branch.clbits.clone(), branch.shots)];
            read_out(tail, &mut values, &mut self.rng);
            for (v, n) in values {
                self.counts.add(v, n);
            }
            return;
        }
        let mut seeded;
        let rng = match branch.tail_seed {
            Some(seed) => {
                seeded = Xoshiro256PlusPlus::seed_from_u64(seed);
                &mut seeded
            }
            None => &mut self.rng,
        };
        let values = sample_through(state, branch.shots, &branch.clbits, tail, rng, self.par);
        for (v, n) in values.into_iter().flatten() {
            self.counts.add(v, n);
        }
    }

    /// Projects `state` onto `outcome` of the measured qubit and
    /// renormalises by the outcome's probability `p`; a reset then moves
    /// |1⟩ to |0⟩ in the same pass. On a density matrix both copies of the
    /// qubit are projected and the scale is `1/p`.
    fn collapse(&self, state: &mut S, instr: &Instr, outcome: bool, p: f64) {
        let (qubit, reset) = match instr {
            Instr::Measure { qubit, .. } => (*qubit, false),
            Instr::Reset { qubit } => (*qubit, true),
            _ => unreachable!("only measurements and resets collapse"),
        };
        state.collapse(qubit, outcome, reset, p, self.par);
    }
}

/// Applies the tail's readout errors to sampled `(value, shots)` pairs,
/// splitting them between the readings. The measurements wrote their bits
/// already: a readout error acts on the value of its bit, and no
/// measurement in the tail writes a bit after a readout error on it.
fn read_out<R: Rng>(tail: &[Instr], values: &mut Vec<(ClassicalValue, u64)>, rng: &mut R) {
    for instr in tail {
        let Instr::Readout { clbit, error } = instr else {
            continue;
        };
        let mut next = Vec::with_capacity(values.len() * 2);
        for (v, n) in values.drain(..) {
            let bit = v.get(*clbit);
            let flips = Binomial::new(n, error.flip_probability(bit))
                .expect("a probability")
                .sample(rng);
            if flips > 0 {
                let mut f = v.clone();
                f.set(*clbit, !bit);
                next.push((f, flips));
            }
            if flips < n {
                next.push((v, n - flips));
            }
        }
        *values = next;
    }
}

/// The classical values of sampled basis states through the tail's
/// measurements and readout errors, from the branch's `clbits`.
fn read_through<R: Rng>(
    indices: Vec<(u64, u64)>,
    clbits: &ClassicalValue,
    tail: &[Instr],
    rng: &mut R,
) -> Vec<(ClassicalValue, u64)> {
    let mut out = Vec::new();
    for (index, count) in indices {
        let mut base = clbits.clone();
        for instr in tail {
            if let Instr::Measure { qubit, clbit } = instr {
                base.set(*clbit, (index >> qubit) & 1 == 1);
            }
        }
        let mut values = vec![(base, count)];
        read_out(tail, &mut values, rng);
        out.extend(values);
    }
    out
}

/// Samples a branch's `shots` from `state` through the tail; `None` where
/// the state does not report (see [`Backend::reports`]).
fn sample_through<S: Backend>(
    state: &mut S,
    shots: u64,
    clbits: &ClassicalValue,
    tail: &[Instr],
    rng: &mut Xoshiro256PlusPlus,
    par: &Parallelism,
) -> Option<Vec<(ClassicalValue, u64)>> {
    let indices = state.sample(shots, rng, par)?;
    Some(read_through(indices, clbits, tail, rng))
}

/// Operations a unitary instruction counts as for progress.
fn unitary_ops(instr: &Instr) -> usize {
    match instr {
        Instr::Apply(_) => 1,
        Instr::Stage(stage) => stage.ops.len(),
        Instr::Run(ops) => ops.len(),
        _ => 0,
    }
}

/// The whole state vector that noise by trajectories runs on; an error for
/// a state that is not one (a noisy program is refused before it reaches
/// such a state, so this is a second line).
fn trajectory_vector<S: Backend>(state: &mut S) -> Result<&mut StateVector<S::Scalar>, SimError> {
    state.vector().ok_or_else(|| {
        SimError::Distributed(
            "noise by trajectories needs the whole state vector in one process".into(),
        )
    })
}

/// The seed of trajectory `index`'s tail in a batch whose base is `base`
/// (SplitMix64's mixing, so neighbouring indices give unrelated streams).
fn tail_seed(base: u64, index: u64) -> u64 {
    let mut z = base.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn record_outcome(instr: &Instr, clbits: &mut ClassicalValue, outcome: bool) {
    if let Instr::Measure { clbit, .. } = instr {
        clbits.set(*clbit, outcome);
    }
}
