//! Running circuits: the [`Simulator`], its options ([`RunOptions`], the
//! noise [`Method`]) and results ([`RunResult`], [`Estimate`]), and how
//! [`Method::Automatic`] decides. The shots themselves are simulated by
//! the engine ([`crate::engine`]).

use std::hash::{BuildHasher, RandomState};
use std::ops::ControlFlow;

use kettle_ir::{ChannelForm, Circuit, Operation};

use crate::counts::Counts;
use crate::cpu;
use crate::density::{DensityMatrix, MAX_DENSITY_QUBITS};
use crate::engine::Shots;
use crate::error::SimError;
use crate::float::Float;
use crate::fusion::FusionConfig;
use crate::observable::PauliSum;
use crate::par::Parallelism;
use crate::program::{Instr, Program, Representation};
use crate::state::{StateVector, check_budget};

/// The largest noisy circuit that [`Method::Automatic`] simulates with a
/// density matrix (one of 14 qubits is a vector of 28: 4 GiB at f64).
pub const AUTOMATIC_DENSITY_QUBITS: u32 = 14;

/// How a run simulates noise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Method {
    /// The density matrix for a noisy circuit small enough and cheaper than
    /// its shots' distinct trajectories (as Aer decides), else the state
    /// vector.
    #[default]
    Automatic,
    /// A state vector; each shot follows one sampled noise trajectory.
    Statevector,
    /// A density matrix: exact, with `4^n` entries.
    DensityMatrix,
}

impl Method {
    /// Its name in the API: `automatic`, `statevector`, `density_matrix`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Automatic => "automatic",
            Method::Statevector => "statevector",
            Method::DensityMatrix => "density_matrix",
        }
    }

    /// Every method, in the API's order.
    pub const ALL: [Method; 3] = [
        Method::Automatic,
        Method::Statevector,
        Method::DensityMatrix,
    ];
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Method, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("unknown method `{s}`; one of automatic, statevector, density_matrix")
            })
    }
}

/// An estimate of an expectation value: the mean over the shots'
/// trajectories and its standard error (0 for an exact value: a noiseless
/// state, a density matrix without mid-circuit measurement, or a single
/// trajectory).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// The value.
    pub value: f64,
    /// Its standard error.
    pub std_error: f64,
}

/// The most shots one run may ask for (2^32); sampling costs time in
/// proportion to the shots, so more would run for hours.
pub const MAX_SHOTS: u64 = 1 << 32;

/// What to compute in one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunOptions {
    /// Shots to sample (0: none; at most [`MAX_SHOTS`]).
    pub shots: u64,
    /// Seed of the random stream; `None` draws one (reported in the result).
    pub seed: Option<u64>,
    /// Keep the final state in the result. For circuits with mid-circuit
    /// measurement it is the state of one trajectory (drawn with the seed);
    /// terminal measurements are sampled, never applied to it.
    pub keep_state: bool,
    /// How to simulate noise.
    pub method: Method,
    /// Observables whose expectation values to estimate from the final
    /// states of the shots' trajectories (at least one trajectory runs).
    pub observables: Vec<PauliSum>,
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
    /// Branches simulated (1 for a circuit without mid-circuit measurement
    /// or noise; with noise, the distinct trajectories).
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
    /// The final state, when asked for (state-vector method).
    pub state: Option<StateVector<F>>,
    /// The final density matrix, when asked for (density-matrix method).
    pub density_matrix: Option<DensityMatrix<F>>,
    /// The estimates of [`RunOptions::observables`], in order.
    pub expectations: Vec<Estimate>,
    /// The method that ran: [`Method::Statevector`] or
    /// [`Method::DensityMatrix`].
    pub method: Method,
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
        for o in &options.observables {
            o.check_qubits(n)?;
        }
        let method = self.method_for::<F>(circuit, options)?;
        let representation = match method {
            Method::DensityMatrix => Representation::DensityMatrix,
            _ => Representation::StateVector,
        };
        let vector_qubits = match representation {
            Representation::StateVector => n,
            Representation::DensityMatrix => 2 * n,
        };
        check_budget::<F>(vector_qubits, 1, self.memory_budget)?;
        let program = Program::compile(
            circuit,
            &self.fusion,
            self.fusion.blocking.shape::<F>(self.par.num_threads()),
            representation,
        );
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
                    Instr::Noisy(s) => (ops + s.planned_ops(), passes + s.windows()),
                    _ => (ops, passes),
                });
        let gates = program.gates
            + program
                .instrs
                .iter()
                .map(|i| match i {
                    Instr::Noisy(s) => s.gates(),
                    _ => 0,
                })
                .sum::<usize>();
        let stats = RunStats {
            gates,
            applied_ops,
            passes,
            ..RunStats::default()
        };
        let shots = Shots {
            program: &program,
            sim: self,
            monitor,
            seed,
            stats,
            num_clbits: circuit.num_clbits(),
            options,
        };
        let budget = self.memory_budget;
        let (run, state, density_matrix) = match representation {
            Representation::StateVector => {
                let zero = || StateVector::<F>::with_budget(vector_qubits, budget);
                let (run, kept) = shots.run(&zero)?;
                (run, kept, None)
            }
            Representation::DensityMatrix => {
                let zero = || {
                    StateVector::<F>::with_budget(vector_qubits, budget)
                        .map(DensityMatrix::from_vector)
                };
                let (run, kept) = shots.run(&zero)?;
                (run, None, kept)
            }
        };
        Ok(RunResult {
            counts: run.counts,
            state,
            density_matrix,
            expectations: run.expectations,
            method,
            seed,
            stats: run.stats,
        })
    }

    /// The method a run of `circuit` with `options` uses at precision `F`:
    /// [`Method::Statevector`] or [`Method::DensityMatrix`] (see
    /// [`Method::Automatic`] for how it decides).
    ///
    /// # Errors
    /// [`SimError::DensityTooLarge`] when a density matrix is asked for a
    /// circuit too large for one.
    pub fn method_for<F: Float>(
        &self,
        circuit: &Circuit,
        options: &RunOptions,
    ) -> Result<Method, SimError> {
        let n = circuit.num_qubits();
        let density_fits =
            |limit: u32| n <= limit && check_budget::<F>(2 * n, 1, self.memory_budget).is_ok();
        match options.method {
            Method::Statevector => Ok(Method::Statevector),
            Method::DensityMatrix if n > MAX_DENSITY_QUBITS => Err(SimError::DensityTooLarge {
                num_qubits: n,
                max: MAX_DENSITY_QUBITS,
            }),
            Method::DensityMatrix => Ok(Method::DensityMatrix),
            Method::Automatic if !circuit.is_noisy() => Ok(Method::Statevector),
            Method::Automatic => {
                if !density_fits(AUTOMATIC_DENSITY_QUBITS) {
                    return Ok(Method::Statevector);
                }
                // One trajectory costs about what 2^-n of the density
                // matrix's run does.
                let trajectories = expected_trajectories(circuit, options.shots.max(1));
                Ok(
                    if trajectories >= (1u64 << n) as f64 || options.shots <= 1 {
                        Method::DensityMatrix
                    } else {
                        Method::Statevector
                    },
                )
            }
        }
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
            method: Method::Statevector,
            ..RunOptions::default()
        };
        Ok(self
            .run::<F>(circuit, &options)?
            .state
            .expect("state was asked for"))
    }
}

/// The expected number of distinct trajectories of `shots` shots: every
/// shot that takes a non-identity branch somewhere may be distinct (Kraus
/// channels and mid-circuit measurements count as always branching).
fn expected_trajectories(circuit: &Circuit, shots: u64) -> f64 {
    fn clean(ops: &[Operation]) -> f64 {
        ops.iter()
            .map(|op| match op {
                Operation::Channel { channel, .. } => match channel.form() {
                    ChannelForm::Mixture(b) => b
                        .iter()
                        .filter(|(_, u)| u.is_phase_times_identity())
                        .map(|(p, _)| p)
                        .sum(),
                    ChannelForm::Kraus(_) => 0.0,
                },
                Operation::IfElse {
                    then_ops, else_ops, ..
                } => clean(then_ops).min(clean(else_ops)),
                _ => 1.0,
            })
            .product()
    }
    1.0 + shots as f64 * (1.0 - clean(circuit.ops()))
}
