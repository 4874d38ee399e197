//! The seam between the engine ([`crate::engine`]) and the state it runs
//! shots on: the few things the engine asks of a state, so that one engine
//! (branching at measurements, classical control, replays, sampling,
//! expectation values) drives a [`StateVector`], a [`DensityMatrix`] and a
//! state split over ranks ([`crate::distributed::DistributedState`]), and
//! later a GPU state, without a copy of its logic.
//!
//! The contract every implementation keeps:
//! - every operation is deterministic given the state, so that the shots'
//!   random draws (made by the engine from the returned probabilities)
//!   follow the same stream wherever the state lives;
//! - a distributed state's methods are collective: every rank calls them in
//!   the same order, and they return the same value on every rank
//!   (probabilities, expectation values, whether a copy was made), except
//!   sampled outcomes, which only [`reports`](Backend::reports) ranks get;
//! - sampling consumes the generator exactly as [`StateVector`]'s sampling
//!   does on the whole state, on every rank, so a run's later draws and its
//!   counts are those of a single process with the same seed.
//!
//! The engine's own tests cover the state vector and the density matrix;
//! `distributed::tests` runs the same circuits over ranks and holds them
//! to the single process's counts and states.

use kettle_ir::{Complex64, GateMatrix, Qubit};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::density::{DensityMatrix, sample_diagonal};
use crate::error::SimError;
use crate::float::Float;
use crate::kernels::reduce::qubit_probabilities;
use crate::observable::PauliSum;
use crate::par::Parallelism;
use crate::program::Instr;
use crate::sample::sample_indices;
use crate::state::StateVector;

/// A state the engine runs on (see the module documentation).
pub(crate) trait Backend: Sized {
    /// Its precision.
    type Scalar: Float;

    /// Applies a unitary instruction: [`Instr::Apply`], [`Instr::Stage`]
    /// or [`Instr::Run`].
    fn apply(&mut self, instr: &Instr, par: &Parallelism);

    /// [`apply`](Self::apply), telling `applied` along the way how many of
    /// the instruction's operations are done (an estimate, rising), for
    /// instructions long enough to report inside: a distributed state's
    /// runs, which span many passes and exchanges. The engine counts the
    /// whole instruction when it returns.
    fn apply_reporting(&mut self, instr: &Instr, par: &Parallelism, applied: &mut dyn FnMut(u64)) {
        let _ = applied;
        self.apply(instr, par);
    }

    /// A copy, if the budget holds one more state besides `live`; `None`
    /// when it does not (on every rank alike).
    ///
    /// # Errors
    /// Anything but a refused budget or allocation.
    fn try_copy(&self, live: u32, budget: Option<u64>) -> Result<Option<Self>, SimError>;

    /// The probabilities of reading `qubit` as 0 and as 1.
    fn outcome_probabilities(&self, qubit: Qubit, par: &Parallelism) -> [f64; 2];

    /// Projects onto `outcome` of `qubit` and renormalises by that
    /// outcome's probability `p`; a `reset` then moves |1⟩ to |0⟩.
    fn collapse(&mut self, qubit: Qubit, outcome: bool, reset: bool, p: f64, par: &Parallelism);

    /// The expectation value of `observable`.
    ///
    /// # Errors
    /// [`SimError::QubitOutOfRange`] for a qubit the state lacks.
    fn expectation(&self, observable: &PauliSum, par: &Parallelism) -> Result<f64, SimError>;

    /// Draws `shots` basis states (`(index, occurrences)` in increasing
    /// index order), `None` where this rank does not report.
    fn sample(
        &mut self,
        shots: u64,
        rng: &mut Xoshiro256PlusPlus,
        par: &Parallelism,
    ) -> Option<Vec<(u64, u64)>>;

    /// Whether this state's counts are the run's (every rank draws, rank 0
    /// reports).
    fn reports(&self) -> bool {
        true
    }

    /// The whole state vector in this process, which noise by trajectories
    /// needs; `None` for any other state.
    fn vector(&mut self) -> Option<&mut StateVector<Self::Scalar>> {
        None
    }

    /// This state as a whole state vector in this process, or itself back.
    fn into_vector(self) -> Result<StateVector<Self::Scalar>, Self> {
        Err(self)
    }
}

/// The projector onto `outcome` of one qubit scaled by `scale`, moving
/// |1⟩ to |0⟩ for a `reset`.
pub(crate) fn projector(outcome: bool, reset: bool, scale: f64) -> GateMatrix {
    let o = Complex64::new(0.0, 0.0);
    let s = Complex64::new(scale, 0.0);
    let data = match (outcome, reset) {
        (false, _) => vec![s, o, o, o],
        (true, false) => vec![o, o, o, s],
        (true, true) => vec![o, s, o, o],
    };
    GateMatrix::new(1, data).expect("2x2")
}

/// A copy if the budget and the allocator allow it.
fn copy_vector<F: Float>(
    state: &StateVector<F>,
    live: u32,
    budget: Option<u64>,
) -> Result<Option<StateVector<F>>, SimError> {
    match state.try_clone(live, budget) {
        Ok(s) => Ok(Some(s)),
        Err(SimError::MemoryBudget { .. } | SimError::OutOfMemory { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl<F: Float> Backend for StateVector<F> {
    type Scalar = F;

    fn apply(&mut self, instr: &Instr, par: &Parallelism) {
        match instr {
            Instr::Apply(op) => StateVector::apply(self, op, par),
            Instr::Stage(stage) => self.apply_stage(stage, par),
            Instr::Run(ops) => {
                // Runs are left unplanned only for states that plan them
                // themselves; a whole vector plans this one as a program.
                let program = crate::program::Program::compile_gates(
                    ops.clone(),
                    self.num_qubits(),
                    &crate::fusion::FusionConfig::default(),
                    None,
                );
                self.apply_program(&program, par);
            }
            other => unreachable!("not a unitary instruction: {other:?}"),
        }
    }

    fn try_copy(&self, live: u32, budget: Option<u64>) -> Result<Option<Self>, SimError> {
        copy_vector(self, live, budget)
    }

    fn outcome_probabilities(&self, qubit: Qubit, par: &Parallelism) -> [f64; 2] {
        qubit_probabilities(self, qubit, par)
    }

    fn collapse(&mut self, qubit: Qubit, outcome: bool, reset: bool, p: f64, par: &Parallelism) {
        self.apply_matrix(&projector(outcome, reset, 1.0 / p.sqrt()), &[qubit], par);
    }

    fn expectation(&self, observable: &PauliSum, par: &Parallelism) -> Result<f64, SimError> {
        StateVector::expectation(self, observable, par)
    }

    fn sample(
        &mut self,
        shots: u64,
        rng: &mut Xoshiro256PlusPlus,
        par: &Parallelism,
    ) -> Option<Vec<(u64, u64)>> {
        Some(sample_indices(self, shots, rng, par))
    }

    fn vector(&mut self) -> Option<&mut StateVector<F>> {
        Some(self)
    }

    fn into_vector(self) -> Result<StateVector<F>, Self> {
        Ok(self)
    }
}

/// A density matrix of `n` qubits is a vector of `2n` (see
/// [`crate::density`]): gates and channels are operations on it like any
/// other, and only measurements branch (resets and noise are channels).
impl<F: Float> Backend for DensityMatrix<F> {
    type Scalar = F;

    fn apply(&mut self, instr: &Instr, par: &Parallelism) {
        Backend::apply(self.vector_mut(), instr, par);
    }

    fn try_copy(&self, live: u32, budget: Option<u64>) -> Result<Option<Self>, SimError> {
        Ok(copy_vector(self.as_vector(), live, budget)?.map(DensityMatrix::from_vector))
    }

    fn outcome_probabilities(&self, qubit: Qubit, _par: &Parallelism) -> [f64; 2] {
        let mut p = [0.0; 2];
        for (i, d) in self.diagonal().into_iter().enumerate() {
            p[(i >> qubit) & 1] += d;
        }
        p
    }

    fn collapse(&mut self, qubit: Qubit, outcome: bool, reset: bool, p: f64, par: &Parallelism) {
        // Resets are channels on a density matrix, never collapses.
        debug_assert!(!reset);
        let n = self.num_qubits();
        let o = Complex64::new(0.0, 0.0);
        let mut data = vec![o; 16];
        let at = if outcome { 3 } else { 0 };
        data[at * 4 + at] = Complex64::new(1.0 / p, 0.0);
        let m = GateMatrix::new(2, data).expect("4x4");
        self.vector_mut().apply_matrix(&m, &[qubit, qubit + n], par);
    }

    fn expectation(&self, observable: &PauliSum, par: &Parallelism) -> Result<f64, SimError> {
        DensityMatrix::expectation(self, observable, par)
    }

    fn sample(
        &mut self,
        shots: u64,
        rng: &mut Xoshiro256PlusPlus,
        _par: &Parallelism,
    ) -> Option<Vec<(u64, u64)>> {
        Some(sample_diagonal(self.as_vector(), shots, rng))
    }
}
