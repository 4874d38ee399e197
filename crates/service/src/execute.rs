//! Running a job: each execution of a [`JobSpec`] is simulated under a
//! [`Monitor`] and turned into an [`ExecutionResult`]. The circuits come
//! from the submission when it kept them; otherwise (a job read back from
//! the store, a large program) the source is parsed again, which is
//! deterministic. Synchronous: called on a worker thread.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Instant;

use kettle_core::{
    AngleRef, Counts, Estimate, Float, Monitor, PauliSum, Progress, RunOptions, SimError,
    Simulator, final_measurements, measured_qubits,
};
use kettle_ir::Circuit;
use kettle_noise::NoiseModel;
use kettle_qasm::{
    InputColumn, JacobianError, Qasm3Program, angle_jacobian, chain_rule, moved_angles,
};

use crate::config::TenantLimits;
use crate::model::{
    ExecutionResult, Expectation, Gradient, GradientRequest, JobResult, JobSpec, Method, Precision,
    ResultType,
};
use crate::prepare::{parse_execution, parse_options, read_noise_model, with_noise};

/// Mixed into an execution's seed for the order of its shots ("memory").
const MEMORY_STREAM: u64 = 0x6d65_6d6f_7279;

/// Why a run did not produce a result.
#[derive(Debug)]
pub(crate) enum RunFailure {
    /// The monitor stopped it (cancellation, deadline, shutdown).
    Stopped,
    /// Anything else, as a message for the job's error.
    Error(String),
}

impl From<SimError> for RunFailure {
    fn from(e: SimError) -> Self {
        match e {
            SimError::Stopped => RunFailure::Stopped,
            other => RunFailure::Error(other.to_string()),
        }
    }
}

/// One execution's progress as the whole sweep's: execution `done` of
/// `of`, each counted as one run of the same length.
struct SweepMonitor<'a> {
    outer: &'a dyn Monitor,
    done: u64,
    of: u64,
}

impl Monitor for SweepMonitor<'_> {
    fn on_progress(&self, p: Progress) -> std::ops::ControlFlow<()> {
        self.outer
            .on_progress(sweep_progress(p, self.done, self.of))
    }
}

/// Progress `p` of execution `done` of `of` as the whole sweep's, each
/// execution counted as one run of the same length.
pub(crate) fn sweep_progress(p: Progress, done: u64, of: u64) -> Progress {
    Progress {
        applied: done
            .saturating_mul(p.planned)
            .saturating_add(p.applied.min(p.planned)),
        planned: of.saturating_mul(p.planned),
    }
}

/// The fraction of a run that `p` says is done, in `0..=1` (0 before
/// anything is planned).
pub(crate) fn fraction_done(p: Progress) -> f64 {
    if p.planned == 0 {
        0.0
    } else {
        (p.applied as f64 / p.planned as f64).min(1.0)
    }
}

/// Basis state `index` of `n` qubits as a bitstring, qubit 0 rightmost.
pub(crate) fn basis_bitstring(index: u64, n: u32) -> String {
    format!("{index:0width$b}", width = n as usize)
}

/// Most entries a listed result (probabilities, a sparse state) may have:
/// 2^`max_listed_qubits`.
pub(crate) fn listed_entries(max_listed_qubits: u32) -> usize {
    1usize.checked_shl(max_listed_qubits).unwrap_or(usize::MAX)
}

/// Runs every execution of `spec`; `max_listed_qubits` bounds the entries
/// of its probabilities (see [`listed_entries`]).
pub(crate) fn run_job(
    sim: &Simulator,
    spec: &JobSpec,
    circuits: Option<&[Circuit]>,
    limits: &TenantLimits,
    max_listed_qubits: u32,
    monitor: &dyn Monitor,
) -> Result<JobResult, RunFailure> {
    let started = Instant::now();
    // The job was admitted for one state of its size: branches of
    // mid-circuit measurements replay rather than copy beyond it.
    let sim = sim.clone().with_memory_budget(Some(spec.memory_bytes));
    let noise = read_noise_model(spec.noise_model.as_ref())
        .map_err(|e| RunFailure::Error(format!("the noise model no longer reads: {e}")))?;
    let mut executions = Vec::with_capacity(spec.executions.len());
    for (i, inputs) in spec.executions.iter().enumerate() {
        let circuit = match circuits.and_then(|c| c.get(i)) {
            Some(circuit) => Cow::Borrowed(circuit),
            None => Cow::Owned(execution_circuit(spec, inputs, limits, noise.as_ref())?),
        };
        let circuit = circuit.as_ref();
        let seed = spec.seed.wrapping_add(i as u64);
        let monitor = &SweepMonitor {
            outer: monitor,
            done: i as u64,
            of: spec.executions.len() as u64,
        };
        let gradient = gradient_plan(spec, circuit, inputs, limits, monitor)?;
        let run = match spec.precision {
            Precision::F64 => run_one::<f64>,
            Precision::F32 => run_one::<f32>,
        };
        let mut result = run(
            &sim,
            circuit,
            spec,
            seed,
            max_listed_qubits,
            gradient.as_ref(),
            monitor,
        )?;
        result.inputs = inputs.clone();
        executions.push(result);
    }
    Ok(JobResult {
        executions,
        run_seconds: started.elapsed().as_secs_f64(),
    })
}

/// The circuit of the execution with `inputs`, parsed again from the job's
/// program, with the job's noise model.
pub(crate) fn execution_circuit(
    spec: &JobSpec,
    inputs: &BTreeMap<String, f64>,
    limits: &TenantLimits,
    noise: Option<&NoiseModel>,
) -> Result<Circuit, RunFailure> {
    let plain = parse_execution(&spec.program, inputs, limits)
        .map_err(|e| RunFailure::Error(format!("the program no longer parses: {e}")))?;
    with_noise(noise, plain)
        .map_err(|e| RunFailure::Error(format!("the noise model no longer applies: {e}")))
}

/// What an execution asks of its run, from the job's result types.
pub(crate) struct Wanted<'s> {
    pub(crate) counts: bool,
    pub(crate) memory: bool,
    /// The final state (for `statevector` or `probabilities`).
    pub(crate) state: bool,
    /// The `expectation` result types' observables, as written and parsed.
    pub(crate) expectations: Vec<&'s String>,
    pub(crate) observables: Vec<PauliSum>,
}

impl<'s> Wanted<'s> {
    pub(crate) fn of(spec: &'s JobSpec) -> Result<Self, RunFailure> {
        let expectations: Vec<&String> = spec
            .result_types
            .iter()
            .filter_map(|t| match t {
                ResultType::Expectation(list) => Some(list),
                _ => None,
            })
            .flatten()
            .collect();
        let observables = expectations
            .iter()
            .map(|text| text.parse())
            .collect::<Result<Vec<PauliSum>, SimError>>()?;
        Ok(Wanted {
            counts: spec.result_types.contains(&ResultType::Counts),
            memory: spec.result_types.contains(&ResultType::Memory),
            state: spec
                .result_types
                .iter()
                .any(|t| matches!(t, ResultType::Statevector | ResultType::Probabilities)),
            expectations,
            observables,
        })
    }

    /// Whether anything needs a run besides a gradient: shots (admission
    /// set them for counts, memory and trajectory estimates only), the
    /// state, or expectation values.
    pub(crate) fn runs(&self, shots: u64) -> bool {
        shots > 0 || self.state || !self.observables.is_empty()
    }

    /// The options of an execution's run: the state kept when it is asked
    /// for and stands for the circuit (every measurement final).
    pub(crate) fn run_options(
        &self,
        shots: u64,
        seed: u64,
        all_final: bool,
        method: kettle_core::Method,
    ) -> RunOptions {
        RunOptions {
            shots,
            seed: Some(seed),
            keep_state: self.state && all_final,
            method,
            observables: self.observables.clone(),
        }
    }

    /// An execution's result before its run: its seed, shots and gradients.
    pub(crate) fn empty_result(seed: u64, shots: u64, gradients: Vec<Gradient>) -> ExecutionResult {
        ExecutionResult {
            inputs: BTreeMap::new(),
            seed,
            shots,
            method: Some(Method::Statevector),
            counts: None,
            memory: None,
            probabilities: None,
            statevector: None,
            sparse_statevector: None,
            expectations: Vec::new(),
            gradients,
        }
    }

    /// Puts the run's counts, the order of its shots and its expectation
    /// values into `result`, as asked.
    pub(crate) fn record(
        &self,
        result: &mut ExecutionResult,
        counts: &Counts,
        estimates: &[Estimate],
    ) {
        result.counts = self.counts.then(|| counts.to_bitstrings());
        // Its own stream: the order of the shots is independent of which
        // outcomes were drawn.
        result.memory = self.memory.then(|| {
            let clbits = counts.num_clbits();
            (counts.to_memory(result.seed ^ MEMORY_STREAM).iter())
                .map(|v| v.to_bitstring(clbits))
                .collect()
        });
        result.expectations = self
            .expectations
            .iter()
            .zip(estimates)
            .map(|(text, e)| Expectation {
                observable: (*text).clone(),
                value: e.value,
                std_error: e.std_error,
            })
            .collect();
    }
}

/// An execution's `adjoint_gradient`: the observables, and how the
/// circuit's angles move with each parameter.
struct GradientPlan<'a> {
    request: &'a GradientRequest,
    observables: Vec<PauliSum>,
    columns: Vec<InputColumn>,
}

/// The gradient plan of one execution, if its job asks for a gradient:
/// the program lowered again around its inputs
/// ([`kettle_qasm::angle_jacobian`]), the monitor asked before each
/// lowering so that a cancel stops it.
fn gradient_plan<'a>(
    spec: &'a JobSpec,
    circuit: &Circuit,
    inputs: &BTreeMap<String, f64>,
    limits: &TenantLimits,
    monitor: &dyn Monitor,
) -> Result<Option<GradientPlan<'a>>, RunFailure> {
    let Some(request) = spec.result_types.iter().find_map(|t| match t {
        ResultType::AdjointGradient(g) => Some(g),
        _ => None,
    }) else {
        return Ok(None);
    };
    let observables = request
        .observables
        .iter()
        .map(|text| text.parse())
        .collect::<Result<Vec<PauliSum>, SimError>>()?;
    let names = request.parameters.clone().unwrap_or_default();
    // Parsed once, lowered at each moved point.
    let parsed = Qasm3Program::parse(&spec.program.source, &parse_options(limits, inputs))
        .map_err(|e| RunFailure::Error(format!("the program no longer parses: {e}")))?;
    let lower = |moved: &BTreeMap<String, f64>| {
        let start = Progress {
            applied: 0,
            planned: 1,
        };
        if monitor.on_progress(start).is_break() {
            return Err(RunFailure::Stopped);
        }
        parsed
            .lower(&parse_options(limits, moved))
            .map_err(|e| RunFailure::Error(format!("the program no longer parses: {e}")))
    };
    let columns = angle_jacobian(circuit, inputs, &names, lower).map_err(|e| match e {
        JacobianError::Lower(failure) => failure,
        JacobianError::Shape(message) => RunFailure::Error(format!("adjoint_gradient: {message}")),
    })?;
    Ok(Some(GradientPlan {
        request,
        observables,
        columns,
    }))
}

/// Runs the gradient of `plan` and turns the derivatives by angle into
/// derivatives by parameter.
fn gradients<F: Float>(
    sim: &Simulator,
    circuit: &Circuit,
    plan: &GradientPlan<'_>,
    monitor: &dyn Monitor,
) -> Result<Vec<Gradient>, RunFailure> {
    let moved = moved_angles(&plan.columns);
    let angles: Vec<AngleRef> = moved
        .iter()
        .map(|&(op, param)| AngleRef { op, param })
        .collect();
    let by_angle =
        sim.adjoint_gradient_monitored::<F>(circuit, &plan.observables, &angles, monitor)?;
    let names = plan.request.parameters.as_deref().unwrap_or_default();
    Ok(plan
        .request
        .observables
        .iter()
        .zip(by_angle)
        .map(|(text, g)| Gradient {
            observable: text.clone(),
            value: g.value,
            gradient: names
                .iter()
                .cloned()
                .zip(chain_rule(&plan.columns, &moved, &g.angles))
                .collect(),
        })
        .collect())
}

fn run_one<F: Float>(
    sim: &Simulator,
    circuit: &Circuit,
    spec: &JobSpec,
    seed: u64,
    max_listed_qubits: u32,
    gradient: Option<&GradientPlan<'_>>,
    monitor: &dyn Monitor,
) -> Result<ExecutionResult, RunFailure> {
    let wanted = Wanted::of(spec)?;
    let finals = final_measurements(circuit);
    let shots = spec.shots;
    let runs = wanted.runs(shots);
    // The run and the gradient's own forward and backward passes are two
    // phases of the execution's progress.
    let phases = (u64::from(gradient.is_some()) + u64::from(runs)).max(1);
    let gradients = match gradient {
        Some(plan) => {
            let phase = SweepMonitor {
                outer: monitor,
                done: 0,
                of: phases,
            };
            gradients::<F>(sim, circuit, plan, &phase)?
        }
        None => Vec::new(),
    };
    let mut result = Wanted::empty_result(seed, shots, gradients);
    if !runs {
        return Ok(result);
    }
    let phase = SweepMonitor {
        outer: monitor,
        done: phases - 1,
        of: phases,
    };
    let options = wanted.run_options(shots, seed, finals.is_some(), spec.method.to_core());
    let out = sim.run_monitored::<F>(circuit, &options, &phase)?;
    result.seed = out.seed;
    result.method = Some(Method::from_core(out.method));
    wanted.record(&mut result, &out.counts, &out.expectations);
    let most = listed_entries(max_listed_qubits);
    if let Some(rho) = out.density_matrix.as_ref() {
        if spec.result_types.contains(&ResultType::Probabilities) {
            let dist = rho.classical_distribution(circuit)?.ok_or_else(|| {
                RunFailure::Error("probabilities need every measurement to be final".into())
            })?;
            if dist.len() > most {
                return Err(RunFailure::Error(format!(
                    "the probabilities have more than the {most} non-zero outcomes a result may list (2^max_listed_qubits); ask for counts instead"
                )));
            }
            result.probabilities = Some(dist);
        }
        return Ok(result);
    }
    let Some(state) = out.state.as_ref() else {
        return Ok(result);
    };
    let par = sim.parallelism();
    for t in &spec.result_types {
        match t {
            ResultType::Probabilities => {
                let finals = finals.as_deref().unwrap_or(&[]);
                let measured = measured_qubits(finals);
                // Admitted for any number of measured qubits: the non-zero
                // outcomes are what is bounded. Up to max_listed_qubits
                // measured, all of them fit (the dense, parallel form).
                result.probabilities = Some(if measured.len() as u32 <= max_listed_qubits {
                    state.classical_distribution(finals, circuit.num_clbits(), par)?
                } else {
                    state
                        .sparse_classical_distribution(finals, circuit.num_clbits(), most)?
                        .ok_or_else(|| {
                            RunFailure::Error(format!(
                                "the probabilities over {} measured qubits have more than the {most} non-zero outcomes a result may list (2^max_listed_qubits); ask for counts instead",
                                measured.len()
                            ))
                        })?
                });
            }
            ResultType::Statevector if circuit.num_qubits() <= max_listed_qubits => {
                result.statevector = Some(
                    state
                        .to_vec_f64()
                        .into_iter()
                        .map(|a| [a.re, a.im])
                        .collect(),
                );
            }
            ResultType::Statevector => {
                let n = circuit.num_qubits();
                let amplitudes = state.sparse_amplitudes(most).ok_or_else(|| {
                    RunFailure::Error(format!(
                        "the state of {n} qubits has more than the {most} non-zero amplitudes a result may list (2^max_listed_qubits)"
                    ))
                })?;
                result.sparse_statevector = Some(
                    amplitudes
                        .into_iter()
                        .map(|(index, a)| (basis_bitstring(index, n), [a.re, a.im]))
                        .collect(),
                );
            }
            _ => {}
        }
    }
    Ok(result)
}
