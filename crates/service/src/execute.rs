//! Running a job: each execution of a [`JobSpec`] is simulated under a
//! [`Monitor`] and turned into an [`ExecutionResult`]. The circuits come
//! from the submission when it kept them; otherwise (a job read back from
//! the store, a large program) the source is parsed again, which is
//! deterministic. Synchronous: called on a worker thread.

use std::collections::BTreeMap;
use std::time::Instant;

use kettle_core::{
    Float, Monitor, PauliSum, Progress, RunOptions, SimError, Simulator, final_measurements,
    measured_qubits,
};
use kettle_ir::Circuit;

use crate::config::TenantLimits;
use crate::model::{ExecutionResult, Expectation, JobResult, JobSpec, Precision, ResultType};
use crate::prepare::parse_execution;

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
        self.outer.on_progress(Progress {
            applied: self
                .done
                .saturating_mul(p.planned)
                .saturating_add(p.applied.min(p.planned)),
            planned: self.of.saturating_mul(p.planned),
        })
    }
}

/// Basis state `index` of `n` qubits as a bitstring, qubit 0 rightmost.
fn basis_bitstring(index: u64, n: u32) -> String {
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
    let mut executions = Vec::with_capacity(spec.executions.len());
    for (i, inputs) in spec.executions.iter().enumerate() {
        let parsed;
        let circuit = match circuits.and_then(|c| c.get(i)) {
            Some(circuit) => circuit,
            None => {
                parsed = parse_execution(&spec.program, inputs, limits)
                    .map_err(|e| RunFailure::Error(format!("the program no longer parses: {e}")))?;
                &parsed
            }
        };
        let seed = spec.seed.wrapping_add(i as u64);
        let monitor = &SweepMonitor {
            outer: monitor,
            done: i as u64,
            of: spec.executions.len() as u64,
        };
        let mut result = match spec.precision {
            Precision::F64 => {
                run_one::<f64>(&sim, circuit, spec, seed, max_listed_qubits, monitor)?
            }
            Precision::F32 => {
                run_one::<f32>(&sim, circuit, spec, seed, max_listed_qubits, monitor)?
            }
        };
        result.inputs = inputs.clone();
        executions.push(result);
    }
    Ok(JobResult {
        executions,
        run_seconds: started.elapsed().as_secs_f64(),
    })
}

fn run_one<F: Float>(
    sim: &Simulator,
    circuit: &Circuit,
    spec: &JobSpec,
    seed: u64,
    max_listed_qubits: u32,
    monitor: &dyn Monitor,
) -> Result<ExecutionResult, RunFailure> {
    let wants_counts = spec.result_types.contains(&ResultType::Counts);
    let wants_memory = spec.result_types.contains(&ResultType::Memory);
    let wants_state = spec
        .result_types
        .iter()
        .any(|t| !matches!(t, ResultType::Counts | ResultType::Memory));
    let finals = final_measurements(circuit);
    let shots = if wants_counts || wants_memory {
        spec.shots
    } else {
        0
    };
    let out = sim.run_monitored::<F>(
        circuit,
        &RunOptions {
            shots,
            seed: Some(seed),
            keep_state: wants_state && finals.is_some(),
        },
        monitor,
    )?;
    let mut result = ExecutionResult {
        inputs: BTreeMap::new(),
        seed: out.seed,
        shots,
        counts: wants_counts.then(|| out.counts.to_bitstrings()),
        // Its own stream: the order of the shots is independent of which
        // outcomes were drawn.
        memory: wants_memory.then(|| {
            let clbits = out.counts.num_clbits();
            (out.counts.to_memory(seed ^ MEMORY_STREAM).iter())
                .map(|v| v.to_bitstring(clbits))
                .collect()
        }),
        probabilities: None,
        statevector: None,
        sparse_statevector: None,
        expectations: Vec::new(),
    };
    let Some(state) = out.state.as_ref() else {
        return Ok(result);
    };
    let par = sim.parallelism();
    for t in &spec.result_types {
        match t {
            ResultType::Counts | ResultType::Memory => {}
            ResultType::Probabilities => {
                let finals = finals.as_deref().unwrap_or(&[]);
                let measured = measured_qubits(finals);
                // Admitted for any number of measured qubits: the non-zero
                // outcomes are what is bounded. Up to max_listed_qubits
                // measured, all of them fit (the dense, parallel form).
                result.probabilities = Some(if measured.len() as u32 <= max_listed_qubits {
                    state.classical_distribution(finals, circuit.num_clbits(), par)?
                } else {
                    let most = listed_entries(max_listed_qubits);
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
                let most = listed_entries(max_listed_qubits);
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
            ResultType::Expectation(list) => {
                for text in list {
                    let obs: PauliSum = text.parse()?;
                    result.expectations.push(Expectation {
                        observable: text.clone(),
                        value: state.expectation(&obs, par)?,
                    });
                }
            }
        }
    }
    Ok(result)
}
