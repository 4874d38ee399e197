//! The job model: what a client submits ([`JobRequest`]), what is stored
//! ([`JobSpec`]: the request made definite — seed chosen, defaults filled),
//! what a client reads back ([`JobView`], [`JobResult`]).
//!
//! These types are plain serde data: the HTTP layer sends them as JSON, the
//! store keeps them as JSON text. Field names are the API's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A job's life: `queued` → `running` → `completed` | `failed` | `cancelled`
/// (a queued job may also be cancelled directly).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker and for memory.
    Queued,
    /// Being simulated.
    Running,
    /// Finished with a result.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobStatus {
    /// Every status, in life order.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the job has ended (no further change).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// Program source formats, as named in the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgramFormat {
    /// OpenQASM 2.0.
    Qasm2,
    /// OpenQASM 3.
    Qasm3,
    /// Kettle's JSON circuit format (`kettle.circuit` v1).
    Json,
}

impl ProgramFormat {
    pub(crate) fn to_source_format(self) -> kettle_qasm::SourceFormat {
        match self {
            ProgramFormat::Qasm2 => kettle_qasm::SourceFormat::Qasm2,
            ProgramFormat::Qasm3 => kettle_qasm::SourceFormat::Qasm3,
            ProgramFormat::Json => kettle_qasm::SourceFormat::Json,
        }
    }
}

/// The program of a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Program {
    /// Its format.
    pub format: ProgramFormat,
    /// Its text.
    pub source: String,
}

/// Precision of the state vector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Double precision: 16 bytes per amplitude.
    #[default]
    F64,
    /// Single precision: 8 bytes per amplitude.
    F32,
}

impl Precision {
    /// The core's precision.
    pub fn to_core(self) -> kettle_core::Precision {
        match self {
            Precision::F64 => kettle_core::Precision::F64,
            Precision::F32 => kettle_core::Precision::F32,
        }
    }
}

/// How a job simulates noise (the core's [`kettle_core::Method`], as named
/// in the API).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The density matrix for a noisy circuit that is small enough and
    /// cheaper than its shots' trajectories, else the state vector.
    #[default]
    Automatic,
    /// A state vector: each shot follows one sampled noise trajectory.
    Statevector,
    /// A density matrix: exact.
    DensityMatrix,
}

impl Method {
    /// The core's method.
    pub fn to_core(self) -> kettle_core::Method {
        match self {
            Method::Automatic => kettle_core::Method::Automatic,
            Method::Statevector => kettle_core::Method::Statevector,
            Method::DensityMatrix => kettle_core::Method::DensityMatrix,
        }
    }

    /// The API's name of the core's method.
    pub fn from_core(m: kettle_core::Method) -> Method {
        match m {
            kettle_core::Method::Automatic => Method::Automatic,
            kettle_core::Method::Statevector => Method::Statevector,
            kettle_core::Method::DensityMatrix => Method::DensityMatrix,
        }
    }
}

/// What a job should return.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultType {
    /// Shot counts keyed by bitstring (classical bit 0 rightmost).
    Counts,
    /// Every shot's outcome, in shot order (Qiskit's `memory`).
    Memory,
    /// The exact distribution of the classical bits (every measurement final).
    Probabilities,
    /// The state vector before the final measurements, as `[re, im]` pairs.
    Statevector,
    /// Expectation values of Pauli sums such as `"0.5*Z0 Z1 + X2"`.
    Expectation(Vec<String>),
    /// Expectation values and their exact derivatives with respect to the
    /// program's `input float`/`input angle` parameters, by the adjoint
    /// method. Opt-in: it costs a backward pass and one state per
    /// observable.
    #[serde(rename = "adjoint_gradient")]
    AdjointGradient(GradientRequest),
}

/// What an `adjoint_gradient` result differentiates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradientRequest {
    /// Pauli sums, as for `expectation`.
    pub observables: Vec<String>,
    /// The inputs to differentiate by, each an `input float` or `input
    /// angle` of the program; all of those when absent (a stored job lists
    /// them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<String>>,
}

/// The value of one `input` parameter: one number, or one per execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InputValue {
    /// The same value for every execution.
    One(f64),
    /// One value per execution; every list in a request has the same length.
    Sweep(Vec<f64>),
}

/// A job as submitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// The program.
    pub program: Program,
    /// Shots per execution (default 1024; 0 when no counts are asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shots: Option<u64>,
    /// Seed of the random stream; chosen and stored at submission if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// What to return (default `["counts"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_types: Option<Vec<ResultType>>,
    /// Input parameter values; lists make a sweep.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, InputValue>,
    /// Precision of the state.
    #[serde(default)]
    pub precision: Precision,
    /// A noise model applied to every execution: Qiskit Aer's
    /// `NoiseModel.to_dict(serializable=True)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_model: Option<serde_json::Value>,
    /// How to simulate noise.
    #[serde(default)]
    pub method: Method,
    /// A name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Higher runs first among the tenant's own jobs (−10 … 10, default 0).
    #[serde(default)]
    pub priority: i32,
}

/// A job made definite: what the store keeps and a worker runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The program.
    pub program: Program,
    /// Shots per execution.
    pub shots: u64,
    /// The job's seed; execution `i` uses `seed + i` (wrapping).
    pub seed: u64,
    /// What to return.
    pub result_types: Vec<ResultType>,
    /// One map of input values per execution.
    pub executions: Vec<BTreeMap<String, f64>>,
    /// Precision of the state.
    pub precision: Precision,
    /// The noise model of the request, applied at each execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_model: Option<serde_json::Value>,
    /// The method the job runs with, decided at admission (never
    /// `automatic` in a job admitted with noise support).
    #[serde(default)]
    pub method: Method,
    /// Whether its circuits have noise (channels or a noise model).
    #[serde(default)]
    pub noisy: bool,
    /// Qubits of the circuit.
    pub qubits: u32,
    /// Bytes of state the job needs while it runs.
    pub memory_bytes: u64,
    /// An upper bound of the bytes of its result as JSON, from admission
    /// (0 in jobs stored before it was recorded).
    #[serde(default)]
    pub result_bytes: u64,
    /// A name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Priority among the tenant's own jobs.
    pub priority: i32,
}

/// An expectation value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Expectation {
    /// The observable as submitted.
    pub observable: String,
    /// ⟨ψ|O|ψ⟩, or `Tr(ρO)`; under trajectories, their mean over the
    /// shots' trajectories.
    pub value: f64,
    /// The standard error of `value`: 0 when it is exact.
    #[serde(default)]
    pub std_error: f64,
}

/// An expectation value and its gradient.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gradient {
    /// The observable as submitted.
    pub observable: String,
    /// ⟨ψ|O|ψ⟩.
    pub value: f64,
    /// ∂⟨ψ|O|ψ⟩/∂x for each parameter x asked for.
    pub gradient: BTreeMap<String, f64>,
}

/// The results of one execution (one index of a sweep).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionResult {
    /// The input values of this execution.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, f64>,
    /// The seed this execution used.
    pub seed: u64,
    /// Shots sampled (or trajectories run, for expectation values under
    /// trajectories).
    pub shots: u64,
    /// The method that ran: `statevector` or `density_matrix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// Counts keyed by bitstring, classical bit 0 rightmost (or by hex value
    /// when asked at read time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<BTreeMap<String, u64>>,
    /// One outcome per shot, in shot order, keyed like `counts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Vec<String>>,
    /// Exact probabilities of the classical outcomes (non-zero ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<BTreeMap<String, f64>>,
    /// Amplitudes as `[re, im]`, index bit `q` = qubit `q`: every one, for
    /// a state of at most `max_listed_qubits` qubits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statevector: Option<Vec<[f64; 2]>>,
    /// The non-zero amplitudes of a larger state, as `[re, im]` keyed by
    /// the basis state's bitstring (qubit 0 rightmost, as Qiskit's
    /// `Statevector.to_dict()`); at most 2^`max_listed_qubits` of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_statevector: Option<BTreeMap<String, [f64; 2]>>,
    /// Expectation values, in request order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expectations: Vec<Expectation>,
    /// Gradients (`adjoint_gradient`), one per observable in request order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gradients: Vec<Gradient>,
}

/// The result of a completed job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// One entry per execution, in sweep order.
    pub executions: Vec<ExecutionResult>,
    /// Seconds spent simulating (all executions).
    pub run_seconds: f64,
}

/// Why a job failed, or was cancelled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// Stable code: `run-time-exceeded`, `simulation-error`, `cancelled`, ….
    pub code: String,
    /// One line for people.
    pub message: String,
}

/// A job as a client sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// The job's id.
    pub id: String,
    /// Where it is in its life.
    pub status: JobStatus,
    /// A name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Priority among the tenant's jobs.
    pub priority: i32,
    /// Program format.
    pub format: ProgramFormat,
    /// Qubits of the circuit.
    pub qubits: u32,
    /// Shots per execution.
    pub shots: u64,
    /// Executions (sweep length).
    pub executions: usize,
    /// Precision of the state.
    pub precision: Precision,
    /// The method it runs with (decided at submission).
    pub method: Method,
    /// Whether its circuits have noise: channels in the program, or a
    /// noise model.
    pub noisy: bool,
    /// The seed the job uses (chosen at submission if not given).
    pub seed: u64,
    /// Bytes of state the job needs.
    pub memory_bytes: u64,
    /// When it was accepted (RFC 3339).
    pub created_at: String,
    /// When it last started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// 1-based place in the dispatch order, while queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u64>,
    /// How far its run has got, while it runs on the node answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<JobProgress>,
    /// Times a worker has started it (more than 1 after a restart).
    pub attempts: u32,
    /// A cancellation was asked for while it ran.
    pub cancel_requested: bool,
    /// The result, when completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    /// Why it failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// An upper bound of the bytes of its result as JSON (0 when unknown):
    /// what serving the result may hold in memory. Not sent.
    #[serde(skip)]
    pub result_bytes: u64,
}

/// How far a running job has got: the fraction of its operations applied
/// (over all its executions) and, once some are, an estimate of the
/// seconds left at the rate so far.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    /// In 0..=1.
    pub fraction: f64,
    /// At the rate so far; absent until something was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_left: Option<f64>,
}

/// Key format of counts and probabilities at read time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyFormat {
    /// Bitstrings, classical bit 0 rightmost.
    #[default]
    Bitstring,
    /// `0x…` hexadecimal values.
    Hex,
}

/// `"0101"` (bit 0 rightmost) as `"0x5"`; `None` for a string that is not
/// binary.
pub fn bitstring_to_hex(bits: &str) -> Option<String> {
    if !bits.bytes().all(|b| b == b'0' || b == b'1') {
        return None;
    }
    let bytes = bits.as_bytes();
    let mut digits = Vec::with_capacity(bytes.len() / 4 + 1);
    for chunk in bytes.rchunks(4) {
        let v = chunk
            .iter()
            .fold(0u32, |acc, &b| (acc << 1) | u32::from(b - b'0'));
        digits.push(char::from_digit(v, 16).unwrap_or('0'));
    }
    while digits.len() > 1 && digits.last() == Some(&'0') {
        digits.pop();
    }
    if digits.is_empty() {
        digits.push('0');
    }
    Some(format!("0x{}", digits.iter().rev().collect::<String>()))
}

impl JobResult {
    /// The same result with counts, memory and probabilities keyed as
    /// `format` says.
    pub fn with_keys(mut self, format: KeyFormat) -> JobResult {
        if format == KeyFormat::Hex {
            for e in &mut self.executions {
                for shot in e.memory.iter_mut().flatten() {
                    if let Some(hex) = bitstring_to_hex(shot) {
                        *shot = hex;
                    }
                }
                if let Some(c) = e.counts.take() {
                    e.counts = Some(
                        c.into_iter()
                            .map(|(k, v)| (bitstring_to_hex(&k).unwrap_or(k), v))
                            .collect(),
                    );
                }
                if let Some(p) = e.probabilities.take() {
                    e.probabilities = Some(
                        p.into_iter()
                            .map(|(k, v)| (bitstring_to_hex(&k).unwrap_or(k), v))
                            .collect(),
                    );
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_keys() {
        assert_eq!(bitstring_to_hex("0101").as_deref(), Some("0x5"));
        assert_eq!(bitstring_to_hex("10000").as_deref(), Some("0x10"));
        assert_eq!(bitstring_to_hex("000").as_deref(), Some("0x0"));
        assert_eq!(bitstring_to_hex("").as_deref(), Some("0x0"));
        assert_eq!(bitstring_to_hex("12"), None);
    }

    #[test]
    fn result_types_read_both_shapes() {
        let r: Vec<ResultType> =
            serde_json::from_str(r#"["counts", {"expectation": ["Z0"]}, "statevector"]"#).unwrap();
        assert_eq!(
            r,
            vec![
                ResultType::Counts,
                ResultType::Expectation(vec!["Z0".into()]),
                ResultType::Statevector
            ]
        );
        let i: BTreeMap<String, InputValue> =
            serde_json::from_str(r#"{"a": 0.5, "b": [1, 2]}"#).unwrap();
        assert_eq!(i["a"], InputValue::One(0.5));
        assert_eq!(i["b"], InputValue::Sweep(vec![1.0, 2.0]));
    }
}
