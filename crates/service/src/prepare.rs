//! Admission checks: a [`JobRequest`] is validated, its program parsed for
//! every execution, and its memory need computed before it is accepted, so
//! every error a client can fix is reported at submission, with its place.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kettle_core::{PauliSum, RunOptions, Simulator, final_measurements};
use kettle_ir::{Circuit, Operation};
use kettle_noise::{NoiseModel, NoiseModelError};
use kettle_qasm::{Limits, ParseOptions, ProgramError, parse_program};

use crate::config::{DEFAULT_MAX_RESULT_BYTES, TenantLimits};
use crate::error::{ProgramLocation, ServiceError};
use crate::model::{
    InputValue, JobRequest, JobSpec, Method, Precision, Program, ProgramFormat, ResultType,
};
use crate::result_bound::{RESULT_ENVELOPE_BOUND, execution_result_bound};

/// Shots when a request asks for counts without saying how many.
pub const DEFAULT_SHOTS: u64 = 1024;
/// Longest job name.
const MAX_NAME_CHARS: usize = 256;
/// Most tags, and the longest tag key and value.
const MAX_TAGS: usize = 32;
const MAX_TAG_KEY_CHARS: usize = 64;
const MAX_TAG_VALUE_CHARS: usize = 512;
/// Priorities run from −10 to 10.
const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -10..=10;
/// Most operations (after unrolling and inlining, nested ones counted) over
/// all the executions of a sweep: twice what one program may have. Admission
/// parses every execution, about a microsecond per operation, so without a
/// bound a 100-byte program that unrolls to a million operations, swept over
/// a thousand inputs, would hold admission for many minutes.
pub(crate) const MAX_SWEEP_OPERATIONS: usize = 2_000_000;
/// Most shots whose outcomes a job lists one by one (`memory`), over all
/// its executions: counts are bounded by the outcomes, memory grows with
/// the shots, and a 1000-execution sweep of a million shots each would be
/// tens of gigabytes of JSON.
pub(crate) const MAX_MEMORY_SHOTS: u64 = 1_000_000;

/// What admission needs besides the request.
#[derive(Clone, Debug)]
pub(crate) struct Admission<'a> {
    pub(crate) limits: &'a TenantLimits,
    pub(crate) memory_budget: u64,
    /// The most a job whose state can be split over ranks may need
    /// ([`ServiceConfig::split_memory_budget`]): the memory budget where
    /// no ranks are configured.
    ///
    /// [`ServiceConfig::split_memory_budget`]: crate::ServiceConfig::split_memory_budget
    pub(crate) split_memory_budget: u64,
    pub(crate) max_listed_qubits: u32,
    /// Largest result, in bytes of JSON, as [`crate::result_bound`] bounds
    /// it (the service caps it at the ceiling when it starts).
    pub(crate) max_result_bytes: u64,
}

/// What may end an admission before it is through: its deadline (and the
/// time it was allowed, for the message), and the flag raised when the
/// client that submitted it is gone. The default ends nothing (a worker's
/// parse of an admitted job, [`check_request`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Interrupt<'a> {
    pub(crate) deadline: Option<(Instant, Duration)>,
    pub(crate) stop: Option<&'a AtomicBool>,
}

impl Interrupt<'_> {
    /// Between two parses: the error that ends the admission, if it must end.
    fn check(&self) -> Result<(), ServiceError> {
        let stopped = self.stop.is_some_and(|f| f.load(Ordering::Relaxed));
        let late = self.deadline.is_some_and(|(d, _)| Instant::now() >= d);
        if stopped || late {
            return Err(self.error());
        }
        Ok(())
    }

    /// The error of an admission ended by its deadline or its client.
    fn error(&self) -> ServiceError {
        if self.stop.is_some_and(|f| f.load(Ordering::Relaxed)) {
            // Nobody reads it: the client is gone.
            return ServiceError::InvalidRequest {
                message: "the submission was abandoned by its client".into(),
                field: None,
            };
        }
        let allowed = self.deadline.map_or(0.0, |(_, a)| a.as_secs_f64());
        ServiceError::LimitExceeded {
            limit: "max_admission_seconds",
            message: format!(
                "the program was still being checked after {allowed} s, the longest an admission may take (max_admission_seconds)"
            ),
        }
    }
}

/// The parser's limits for a tenant. The qubit bound is the core's, not the
/// tenant's: a program over the tenant's limit then gets a limit error with
/// the numbers rather than a parse error.
fn parse_limits(limits: &TenantLimits) -> Limits {
    Limits {
        max_source_bytes: limits.max_request_bytes,
        max_qubits: kettle_core::MAX_QUBITS,
        ..Limits::default()
    }
}

/// Parses execution `index` of `program` with its input values.
pub(crate) fn parse_execution(
    program: &Program,
    inputs: &BTreeMap<String, f64>,
    limits: &TenantLimits,
) -> Result<Circuit, ProgramError> {
    parse_execution_within(program, inputs, limits, Interrupt::default())
}

/// The options a job's program is parsed with, for these input values.
pub(crate) fn parse_options(
    limits: &TenantLimits,
    inputs: &BTreeMap<String, f64>,
) -> ParseOptions<'static> {
    ParseOptions {
        limits: parse_limits(limits),
        includes: None,
        inputs: inputs.clone(),
        ..ParseOptions::default()
    }
}

/// [`parse_execution`] that `interrupt` may end.
fn parse_execution_within(
    program: &Program,
    inputs: &BTreeMap<String, f64>,
    limits: &TenantLimits,
    interrupt: Interrupt<'_>,
) -> Result<Circuit, ProgramError> {
    let options = ParseOptions {
        deadline: interrupt.deadline.map(|(d, _)| d),
        stop: interrupt.stop,
        ..parse_options(limits, inputs)
    };
    parse_program(
        program.source.as_bytes(),
        program.format.to_source_format(),
        &options,
    )
}

/// The shots a request asks for (the default when it leaves them out),
/// checked against the tenant's limit.
fn asked_shots(req: &JobRequest, limits: &TenantLimits) -> Result<u64, ServiceError> {
    let max = limits.max_shots.min(kettle_core::MAX_SHOTS);
    // A default the tenant may not ask for would refuse every request
    // that leaves shots out.
    let shots = req.shots.unwrap_or(DEFAULT_SHOTS.min(max).max(1));
    if shots == 0 {
        return Err(ServiceError::invalid(
            "$.shots",
            "counts, memory and expectation values under noise trajectories need at least one shot",
        ));
    }
    if shots > max {
        return Err(ServiceError::LimitExceeded {
            limit: "max_shots",
            message: format!("{shots} shots asked for; at most {max} per execution"),
        });
    }
    Ok(shots)
}

/// The request's noise model, read (errors at their JSON path under
/// `$.noise_model`); `None` without one.
pub(crate) fn read_noise_model(
    json: Option<&serde_json::Value>,
) -> Result<Option<NoiseModel>, ServiceError> {
    let Some(json) = json else {
        return Ok(None);
    };
    NoiseModel::from_aer_json(json)
        .map(Some)
        .map_err(|e| noise_error(&e))
}

/// A noise model's error as a service error at its path.
fn noise_error(e: &NoiseModelError) -> ServiceError {
    match e {
        NoiseModelError::Invalid { path, message } => ServiceError::invalid(
            &format!("$.noise_model{}", path.strip_prefix('$').unwrap_or(path)),
            message.clone(),
        ),
        other => ServiceError::invalid("$.noise_model", other.to_string()),
    }
}

/// `circuit` with `noise` applied, if any.
pub(crate) fn with_noise(
    noise: Option<&NoiseModel>,
    circuit: Circuit,
) -> Result<Circuit, ServiceError> {
    match noise {
        Some(model) => model.apply(&circuit).map_err(|e| noise_error(&e)),
        None => Ok(circuit),
    }
}

/// A parse error as a service error. The parser's work budget is a limit
/// (`limit-exceeded` naming it, the position in the message).
pub(crate) fn program_error(e: ProgramError, execution: Option<usize>) -> ServiceError {
    match e {
        ProgramError::Source(d) if d.limit == Some("max_classical_steps") => {
            ServiceError::LimitExceeded {
                limit: "max_classical_steps",
                message: match execution {
                    Some(i) => format!("execution {i}: {d}"),
                    None => d.to_string(),
                },
            }
        }
        ProgramError::Source(d) => ServiceError::InvalidProgram {
            message: d.message,
            location: ProgramLocation {
                line: Some(d.line),
                column: Some(d.column),
                path: None,
                file: d.file,
            },
            execution,
        },
        ProgramError::Json(j) => ServiceError::InvalidProgram {
            message: j.message,
            location: ProgramLocation {
                line: None,
                column: None,
                path: Some(j.path),
                file: None,
            },
            execution,
        },
    }
}

/// One map of input values per execution: single values repeat, lists are
/// indexed; all lists must have the same length.
fn executions(
    inputs: &BTreeMap<String, InputValue>,
    max: usize,
) -> Result<Vec<BTreeMap<String, f64>>, ServiceError> {
    let mut len: Option<(usize, &str)> = None;
    for (name, value) in inputs {
        let values: &[f64] = match value {
            InputValue::One(v) => std::slice::from_ref(v),
            InputValue::Sweep(list) => {
                if list.is_empty() {
                    return Err(ServiceError::invalid(
                        &format!("$.inputs.{name}"),
                        format!(
                            "input `{name}` is an empty list; a sweep needs at least one value"
                        ),
                    ));
                }
                match len {
                    Some((n, other)) if n != list.len() => {
                        return Err(ServiceError::invalid(
                            &format!("$.inputs.{name}"),
                            format!(
                                "input `{name}` has {} values but `{other}` has {n}; every list in a sweep has the same length",
                                list.len()
                            ),
                        ));
                    }
                    _ => len = Some((list.len(), name)),
                }
                list
            }
        };
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(ServiceError::invalid(
                &format!("$.inputs.{name}"),
                format!("input `{name}` has the non-finite value {v}"),
            ));
        }
    }
    let count = len.map_or(1, |(n, _)| n);
    if count > max {
        return Err(ServiceError::LimitExceeded {
            limit: "max_executions",
            message: format!("the sweep has {count} executions; at most {max} are allowed"),
        });
    }
    Ok((0..count)
        .map(|i| {
            inputs
                .iter()
                .map(|(name, value)| {
                    let v = match value {
                        InputValue::One(v) => *v,
                        InputValue::Sweep(list) => list.get(i).copied().unwrap_or(f64::NAN),
                    };
                    (name.clone(), v)
                })
                .collect()
        })
        .collect())
}

fn check_metadata(req: &JobRequest) -> Result<(), ServiceError> {
    if !PRIORITY_RANGE.contains(&req.priority) {
        return Err(ServiceError::invalid(
            "$.priority",
            format!(
                "priority {} is outside {}..={}",
                req.priority,
                PRIORITY_RANGE.start(),
                PRIORITY_RANGE.end()
            ),
        ));
    }
    if req
        .name
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NAME_CHARS)
    {
        return Err(ServiceError::invalid(
            "$.name",
            format!("the name is longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if req.tags.len() > MAX_TAGS {
        return Err(ServiceError::invalid(
            "$.tags",
            format!("{} tags; at most {MAX_TAGS} are allowed", req.tags.len()),
        ));
    }
    for (k, v) in &req.tags {
        if k.chars().count() > MAX_TAG_KEY_CHARS || v.chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(ServiceError::invalid(
                "$.tags",
                format!(
                    "tag `{}` is too long (keys up to {MAX_TAG_KEY_CHARS} characters, values up to {MAX_TAG_VALUE_CHARS})",
                    k.chars().take(MAX_TAG_KEY_CHARS).collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

/// Most parameters one `adjoint_gradient` may differentiate by: the angles'
/// Jacobian costs `2⌈log₂ P⌉ + 4` lowerings of the program, but four per
/// parameter when an angle depends on several (`kettle_qasm::angle_jacobian`).
pub(crate) const MAX_GRADIENT_PARAMETERS: usize = 1024;

/// Result types with duplicates removed, and the observables of
/// expectations and of the gradient parsed (all of them, for the qubit
/// check; the gradient's alone, for its memory).
struct AskedResults {
    types: Vec<ResultType>,
    observables: Vec<PauliSum>,
    gradient_observables: usize,
}

fn parse_observables(list: &[String], path: &str) -> Result<Vec<PauliSum>, ServiceError> {
    list.iter()
        .enumerate()
        .map(|(j, text)| {
            text.parse().map_err(|e: kettle_core::SimError| {
                ServiceError::invalid(&format!("{path}[{j}]"), e.to_string())
            })
        })
        .collect()
}

fn result_types(req: &JobRequest) -> Result<AskedResults, ServiceError> {
    let asked = req
        .result_types
        .clone()
        .unwrap_or_else(|| vec![ResultType::Counts]);
    if asked.is_empty() {
        return Err(ServiceError::invalid(
            "$.result_types",
            "result_types is empty; ask for at least one of counts, memory, probabilities, statevector, expectation, adjoint_gradient",
        ));
    }
    let mut types: Vec<ResultType> = Vec::new();
    let mut observables = Vec::new();
    let mut gradient_observables = None;
    for (i, t) in asked.into_iter().enumerate() {
        match &t {
            ResultType::Expectation(list) => {
                let path = format!("$.result_types[{i}].expectation");
                if list.is_empty() {
                    return Err(ServiceError::invalid(
                        &path,
                        "an expectation result needs at least one observable",
                    ));
                }
                observables.extend(parse_observables(list, &path)?);
            }
            ResultType::AdjointGradient(g) => {
                let path = format!("$.result_types[{i}].adjoint_gradient");
                if gradient_observables.is_some() {
                    return Err(ServiceError::invalid(
                        &path,
                        "ask for one adjoint_gradient, with every observable in it",
                    ));
                }
                if g.observables.is_empty() {
                    return Err(ServiceError::invalid(
                        &format!("{path}.observables"),
                        "a gradient needs at least one observable",
                    ));
                }
                observables.extend(parse_observables(
                    &g.observables,
                    &format!("{path}.observables"),
                )?);
                gradient_observables = Some(g.observables.len());
            }
            _ => {}
        }
        if !types.contains(&t) {
            types.push(t);
        }
    }
    Ok(AskedResults {
        types,
        observables,
        gradient_observables: gradient_observables.unwrap_or(0),
    })
}

/// The gradient's parameters made explicit: those asked for, each an
/// `input float` or `input angle` of the program, or all of them.
fn resolve_gradient_parameters(
    req: &JobRequest,
    types: &mut [ResultType],
    limits: &TenantLimits,
) -> Result<(), ServiceError> {
    let Some((i, g)) = types.iter_mut().enumerate().find_map(|(i, t)| match t {
        ResultType::AdjointGradient(g) => Some((i, g)),
        _ => None,
    }) else {
        return Ok(());
    };
    let path = format!("$.result_types[{i}].adjoint_gradient");
    if req.program.format != ProgramFormat::Qasm3 {
        return Err(ServiceError::invalid(
            &path,
            "a gradient is taken with respect to `input float` or `input angle` parameters, which only OpenQASM 3 programs have",
        ));
    }
    let declared = kettle_qasm::qasm3_inputs(&req.program.source, &parse_limits(limits))
        .map_err(|d| program_error(ProgramError::Source(d), None))?;
    let real: Vec<String> = declared
        .into_iter()
        .filter(|p| p.kind == "float" || p.kind == "angle")
        .map(|p| p.name)
        .collect();
    let parameters = match &g.parameters {
        None => real,
        Some(list) => {
            for (j, name) in list.iter().enumerate() {
                if !real.contains(name) {
                    return Err(ServiceError::invalid(
                        &format!("{path}.parameters[{j}]"),
                        format!("`{name}` is not an `input float` or `input angle` of the program"),
                    ));
                }
                if list[..j].contains(name) {
                    return Err(ServiceError::invalid(
                        &format!("{path}.parameters[{j}]"),
                        format!("`{name}` is listed twice"),
                    ));
                }
            }
            list.clone()
        }
    };
    if parameters.is_empty() {
        return Err(ServiceError::invalid(
            &path,
            "the program declares no `input float` or `input angle` to differentiate by",
        ));
    }
    if parameters.len() > MAX_GRADIENT_PARAMETERS {
        return Err(ServiceError::LimitExceeded {
            limit: "max_gradient_parameters",
            message: format!(
                "a gradient by {} parameters was asked for; at most {MAX_GRADIENT_PARAMETERS}",
                parameters.len()
            ),
        });
    }
    g.parameters = Some(parameters);
    Ok(())
}

/// Validates `req`, parses every execution and computes the memory need;
/// `seed` is used when the request has none.
///
/// # Errors
/// The first problem found: request fields, the program (with its place),
/// limits, or a state that can never fit the memory budget.
/// Most operations, over all executions, of circuits a prepared job keeps
/// for its run: beyond, the worker parses the program again (a large
/// program's parse is small next to its run, and queued jobs should not
/// hold unrolled circuits in memory).
const MAX_KEPT_OPS: usize = 10_000;

/// A checked job: its spec, and the circuits of its executions when they
/// are small enough to keep until it runs.
pub(crate) struct Prepared {
    pub(crate) spec: JobSpec,
    pub(crate) circuits: Option<Arc<[Circuit]>>,
}

pub(crate) fn prepare(
    req: &JobRequest,
    admission: &Admission<'_>,
    seed: u64,
) -> Result<Prepared, ServiceError> {
    prepare_within(req, admission, seed, Interrupt::default())
}

/// [`prepare`] that `interrupt` may end: between executions of a sweep, and
/// inside an OpenQASM 3 parse every few thousand steps.
pub(crate) fn prepare_within(
    req: &JobRequest,
    admission: &Admission<'_>,
    seed: u64,
    interrupt: Interrupt<'_>,
) -> Result<Prepared, ServiceError> {
    let limits = admission.limits;
    check_metadata(req)?;
    let AskedResults {
        mut types,
        observables,
        gradient_observables,
    } = result_types(req)?;
    resolve_gradient_parameters(req, &mut types, limits)?;
    let noise = read_noise_model(req.noise_model.as_ref())?;
    let wants_memory = types.contains(&ResultType::Memory);
    let wants_shots = wants_memory || types.contains(&ResultType::Counts);
    let mut shots = if wants_shots {
        asked_shots(req, limits)?
    } else {
        0
    };
    let runs = executions(&req.inputs, limits.max_executions)?;
    let memory_shots = shots.saturating_mul(runs.len() as u64);
    if wants_memory && memory_shots > MAX_MEMORY_SHOTS {
        return Err(ServiceError::LimitExceeded {
            limit: "max_memory_shots",
            message: format!(
                "memory lists every shot: {shots} shots × {} executions is {memory_shots}; at most {MAX_MEMORY_SHOTS} per job (ask for counts, or fewer shots)",
                runs.len()
            ),
        });
    }
    let sweep = runs.len() > 1;
    let mut method = None;
    let mut noisy = false;
    let mut noise_bytes = 0u128;
    let mut qubits = 0;
    let mut kept = Vec::new();
    let mut kept_ops = 0;
    let mut swept_ops = 0usize;
    let mut result_bytes = RESULT_ENVELOPE_BOUND;
    for (i, inputs) in runs.iter().enumerate() {
        interrupt.check()?;
        let circuit = parse_execution_within(&req.program, inputs, limits, interrupt).map_err(
            |e| match &e {
                ProgramError::Source(d) if matches!(d.limit, Some("deadline" | "stopped")) => {
                    interrupt.error()
                }
                _ => program_error(e, sweep.then_some(i)),
            },
        )?;
        let circuit = with_noise(noise.as_ref(), circuit)?;
        swept_ops = swept_ops.saturating_add(count_operations(circuit.ops()));
        if sweep && swept_ops > MAX_SWEEP_OPERATIONS {
            return Err(ServiceError::LimitExceeded {
                limit: "max_sweep_operations",
                message: format!(
                    "the first {} of the sweep's {} executions already have {swept_ops} operations; a sweep has at most {MAX_SWEEP_OPERATIONS} over all its executions",
                    i + 1,
                    runs.len()
                ),
            });
        }
        let n = circuit.num_qubits();
        qubits = qubits.max(n);
        if n > limits.max_qubits {
            return Err(ServiceError::LimitExceeded {
                limit: "max_qubits",
                message: format!(
                    "the program uses {n} qubits; at most {} are allowed",
                    limits.max_qubits
                ),
            });
        }
        if circuit.is_noisy() {
            // A density matrix's channels are superoperators of 16^k
            // entries each: a noisy program of a million gates holds them.
            noise_bytes = noise_bytes.max(kettle_core::density_noise_bytes(&circuit));
        }
        // The executions of a sweep differ in angles only: the first
        // decides the method for all.
        noisy |= circuit.is_noisy();
        let chosen = match method {
            Some(m) => m,
            None => {
                let m = choose_method(req, &circuit, &types, shots, admission)?;
                method = Some(m);
                m
            }
        };
        check_result_types(&circuit, &types, &observables, chosen)?;
        result_bytes = result_bytes.saturating_add(execution_result_bound(
            &circuit,
            &types,
            shots,
            inputs,
            admission.max_listed_qubits,
        ));
        let allowed = admission.max_result_bytes;
        if result_bytes > u128::from(allowed) {
            return Err(ServiceError::TooLarge {
                limit: "max_result_bytes",
                needed: result_bytes,
                allowed: u128::from(allowed),
                message: format!(
                    "the result of {} could be up to {result_bytes} bytes of JSON, more than this server's max_result_bytes of {allowed} (ask for fewer executions, shots or listed outcomes)",
                    if sweep {
                        format!(
                            "the first {} of the sweep's {} executions",
                            i + 1,
                            runs.len()
                        )
                    } else {
                        "the job".to_owned()
                    }
                ),
            });
        }
        // Later executions of a sweep differ only in angles; one check of
        // the structure would do, but parsing each catches inputs that make
        // a program invalid (a value out of a declared range).
        kept_ops += circuit.ops().len();
        if kept_ops <= MAX_KEPT_OPS {
            kept.push(circuit);
        }
    }
    let method = method.unwrap_or(Method::Statevector);
    // A gradient holds one more state per observable
    // (`Simulator::adjoint_gradient`); noise trajectories one more, the
    // shared prefix they start from (without it each replays from |0…0⟩).
    let trajectories = noisy && method == Method::Statevector;
    let states = 1 + gradient_observables as u128 + u128::from(trajectories);
    // Expectation values under trajectories are means over the shots'.
    if noisy
        && method == Method::Statevector
        && shots == 0
        && types
            .iter()
            .any(|t| matches!(t, ResultType::Expectation(_)))
    {
        shots = asked_shots(req, limits)?;
    }
    let vector_qubits = match method {
        Method::DensityMatrix => 2 * qubits,
        _ => qubits,
    };
    let needed = req
        .precision
        .to_core()
        .state_bytes(vector_qubits)
        .saturating_mul(states)
        .saturating_add(if method == Method::DensityMatrix {
            noise_bytes
        } else {
            0
        });
    let spec = JobSpec {
        program: req.program.clone(),
        shots,
        seed: req.seed.unwrap_or(seed),
        result_types: types,
        executions: runs,
        precision: req.precision,
        noise_model: req.noise_model.clone(),
        method,
        noisy,
        qubits,
        // At most a budget (checked below), a u64.
        memory_bytes: u64::try_from(needed).unwrap_or(u64::MAX),
        // At most `max_result_bytes`, a u64.
        result_bytes: u64::try_from(result_bytes).unwrap_or(u64::MAX),
        name: req.name.clone(),
        tags: req.tags.clone(),
        priority: req.priority,
    };
    let budget = u128::from(admission.memory_budget);
    // Larger than one node: a job a state split over ranks can run is
    // admitted up to what the ranks hold together.
    let split = u128::from(admission.split_memory_budget);
    let why_not_split = (needed > budget && split > budget)
        .then(|| crate::across::why_not_split(&spec, admission.max_listed_qubits))
        .flatten();
    if needed > budget && (split <= budget || why_not_split.is_some() || needed > split) {
        let (allowed, across) = match &why_not_split {
            Some(why) => (budget, format!(" (and cannot run across ranks: {why})")),
            None if split > budget => (split, format!(" and of its {split} bytes across ranks")),
            None => (budget, String::new()),
        };
        return Err(ServiceError::TooLarge {
            limit: "memory_budget",
            needed,
            allowed,
            message: format!(
                "{qubits} qubits at {} need {needed} bytes of {}{}, more than this server's memory budget of {budget} bytes{across}",
                req.precision.to_core().name(),
                if method == Method::DensityMatrix {
                    "density matrix"
                } else {
                    "state"
                },
                if method == Method::DensityMatrix && noise_bytes > 0 {
                    format!(" and of its channels' superoperators ({noise_bytes} bytes)")
                } else if trajectories {
                    format!(" ({states} states: noise trajectories and their shared prefix)")
                } else if states > 1 {
                    format!(" ({states} states: the run's and one per observable of the gradient)")
                } else {
                    String::new()
                }
            ),
        });
    }
    Ok(Prepared {
        circuits: (kept_ops <= MAX_KEPT_OPS).then(|| kept.into()),
        spec,
    })
}

/// Checks a job request as submission does, without submitting it: the
/// request's fields, its program parsed for every execution of its sweep
/// (errors carry line and column, or a JSON path), the tenant's `limits`,
/// and whether its state fits `memory_budget` bytes; `max_listed_qubits` is
/// the largest qubit count whose state vector may be returned, and
/// 2^`max_listed_qubits` the most non-zero probabilities (the service's
/// [`ServiceConfig::max_listed_qubits`]). Results
/// are bounded by the default [`ServiceConfig::max_result_bytes`]. The
/// executions of a sweep together have at most 2,000,000 operations after
/// unrolling (limit `max_sweep_operations`). The returned spec has the request's seed, or 0 when it has none (submission
/// chooses a random one). Synchronous and free of I/O: for clients that want
/// to validate a job before sending it, and for the fuzz targets.
///
/// ```
/// use kettle_service::{JobRequest, ServiceError, TenantLimits, check_request};
/// let req: JobRequest = serde_json::from_str(
///     r#"{"program": {"format": "qasm3", "source": "qubit q; bit c; U(1, 0, 0) q; c = measure q;"}, "shots": 10}"#,
/// ).unwrap();
/// let spec = check_request(&req, &TenantLimits::default(), 1 << 30, 20).unwrap();
/// assert_eq!((spec.qubits, spec.shots, spec.seed), (1, 10, 0));
///
/// let bad: JobRequest = serde_json::from_str(
///     r#"{"program": {"format": "qasm3", "source": "qubit q;\nh q;"}}"#,
/// ).unwrap();
/// let err = check_request(&bad, &TenantLimits::default(), 1 << 30, 20).unwrap_err();
/// assert!(matches!(err, ServiceError::InvalidProgram { location, .. }
///     if (location.line, location.column) == (Some(2), Some(1))));
/// ```
///
/// # Errors
/// The first problem found, as [`Service::submit`] reports it.
///
/// [`ServiceConfig::max_listed_qubits`]: crate::ServiceConfig::max_listed_qubits
/// [`ServiceConfig::max_result_bytes`]: crate::ServiceConfig::max_result_bytes
/// [`Service::submit`]: crate::Service::submit
pub fn check_request(
    req: &JobRequest,
    limits: &TenantLimits,
    memory_budget: u64,
    max_listed_qubits: u32,
) -> Result<JobSpec, ServiceError> {
    let admission = Admission {
        limits,
        memory_budget,
        split_memory_budget: memory_budget,
        max_listed_qubits,
        max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
    };
    prepare(req, &admission, 0).map(|p| p.spec)
}

/// Operations in `ops`, those inside `if` blocks counted too.
fn count_operations(ops: &[Operation]) -> usize {
    ops.iter()
        .map(|op| match op {
            Operation::IfElse {
                then_ops, else_ops, ..
            } => 1 + count_operations(then_ops) + count_operations(else_ops),
            _ => 1,
        })
        .sum()
}

/// The method a job runs with: the request's, with `automatic` decided
/// here as the core decides it for this circuit, shots and memory budget;
/// probabilities of a noisy circuit need the density matrix, which
/// `automatic` then picks.
fn choose_method(
    req: &JobRequest,
    circuit: &Circuit,
    types: &[ResultType],
    shots: u64,
    admission: &Admission<'_>,
) -> Result<Method, ServiceError> {
    let noisy = circuit.is_noisy();
    let wants_probabilities = types.contains(&ResultType::Probabilities);
    let asked = match req.method {
        Method::Automatic if noisy && wants_probabilities => Method::DensityMatrix,
        m => m,
    };
    let sim = Simulator::new().with_memory_budget(Some(admission.memory_budget));
    let options = RunOptions {
        shots,
        method: asked.to_core(),
        ..RunOptions::default()
    };
    let chosen = match req.precision {
        Precision::F64 => sim.method_for::<f64>(circuit, &options),
        Precision::F32 => sim.method_for::<f32>(circuit, &options),
    };
    chosen
        .map(Method::from_core)
        .map_err(|e| ServiceError::invalid("$.method", e.to_string()))
}

fn check_result_types(
    circuit: &Circuit,
    types: &[ResultType],
    observables: &[PauliSum],
    method: Method,
) -> Result<(), ServiceError> {
    let n = circuit.num_qubits();
    let finals = final_measurements(circuit);
    let noisy = circuit.is_noisy();
    for t in types {
        let field = "$.result_types";
        match t {
            ResultType::Statevector if noisy => {
                return Err(ServiceError::invalid(
                    field,
                    "a noisy circuit has no state vector; ask for probabilities or expectation (with the density_matrix method), or counts",
                ));
            }
            ResultType::AdjointGradient(_) if noisy => {
                return Err(ServiceError::invalid(
                    field,
                    "adjoint_gradient needs a noiseless circuit",
                ));
            }
            ResultType::Probabilities if noisy && method != Method::DensityMatrix => {
                return Err(ServiceError::invalid(
                    "$.method",
                    "probabilities of a noisy circuit need the density_matrix method (automatic picks it when the density matrix fits)",
                ));
            }
            ResultType::Counts | ResultType::Memory => {
                if !circuit.measures_anything() {
                    return Err(ServiceError::invalid(
                        field,
                        "counts and memory need a program that measures; ask for statevector, probabilities or expectation instead",
                    ));
                }
            }
            ResultType::Probabilities => {
                // Any number of measured qubits: the run lists the
                // non-zero outcomes, at most 2^max_listed_qubits of them
                // (`execute::listed_entries`).
                if finals.is_none() {
                    return Err(ServiceError::invalid(
                        field,
                        "probabilities need every measurement to be final (no reset, mid-circuit measurement or classical control)",
                    ));
                }
            }
            ResultType::Statevector
            | ResultType::Expectation(_)
            | ResultType::AdjointGradient(_) => {
                if finals.is_none() {
                    return Err(ServiceError::invalid(
                        field,
                        "statevector, expectation and adjoint_gradient need every measurement to be final (no reset, mid-circuit measurement or classical control)",
                    ));
                }
                // A state of more than max_listed qubits comes back
                // sparse: its non-zero amplitudes, at most
                // 2^max_listed of them (`execute::listed_entries`).
            }
        }
    }
    for obs in observables {
        for term in &obs.terms {
            if let Some(&(q, _)) = term.factors.iter().find(|(q, _)| *q >= n) {
                return Err(ServiceError::invalid(
                    "$.result_types",
                    format!("observable `{obs}` acts on qubit {q}, but the program has {n} qubits"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Precision, ProgramFormat};

    const BELL: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0], q[1];\nmeasure q -> c;\n";

    fn request(source: &str) -> JobRequest {
        serde_json::from_value(serde_json::json!({
            "program": {"format": "qasm2", "source": source}
        }))
        .unwrap()
    }

    fn admit(req: &JobRequest) -> Result<JobSpec, ServiceError> {
        let limits = TenantLimits::default();
        prepare(
            req,
            &Admission {
                limits: &limits,
                memory_budget: 1 << 30,
                split_memory_budget: 1 << 30,
                max_listed_qubits: 20,
                max_result_bytes: crate::config::DEFAULT_MAX_RESULT_BYTES,
            },
            99,
        )
        .map(|p| p.spec)
    }

    #[test]
    fn memory_needs_shots_and_is_bounded_over_the_sweep() {
        let mut req = request(BELL);
        req.result_types = Some(vec![ResultType::Memory]);
        assert_eq!(admit(&req).unwrap().shots, DEFAULT_SHOTS);
        req.shots = Some(0);
        assert!(admit(&req).is_err());
        let mut sweep = request(
            "OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput float theta;\nqubit q;\nbit c;\nrx(theta) q;\nc = measure q;\n",
        );
        sweep.result_types = Some(vec![ResultType::Counts, ResultType::Memory]);
        sweep.program.format = ProgramFormat::Qasm3;
        sweep.shots = Some(MAX_MEMORY_SHOTS / 4 + 1);
        sweep.inputs = [(
            "theta".to_owned(),
            InputValue::Sweep(vec![0.1, 0.2, 0.3, 0.4]),
        )]
        .into();
        match admit(&sweep) {
            Err(ServiceError::LimitExceeded { limit, .. }) => assert_eq!(limit, "max_memory_shots"),
            other => panic!("{other:?}"),
        }
        sweep.shots = Some(MAX_MEMORY_SHOTS / 4);
        assert_eq!(admit(&sweep).unwrap().executions.len(), 4);
    }

    #[test]
    fn the_default_shots_fit_the_tenants_limit() {
        let limits = TenantLimits {
            max_shots: 100,
            ..TenantLimits::default()
        };
        let admission = Admission {
            limits: &limits,
            memory_budget: 1 << 30,
            split_memory_budget: 1 << 30,
            max_listed_qubits: 20,
            max_result_bytes: crate::config::DEFAULT_MAX_RESULT_BYTES,
        };
        let spec = prepare(&request(BELL), &admission, 1).unwrap().spec;
        assert_eq!(spec.shots, 100);
        let mut asked = request(BELL);
        asked.shots = Some(101);
        assert!(matches!(
            prepare(&asked, &admission, 1).map(|p| p.spec),
            Err(ServiceError::LimitExceeded {
                limit: "max_shots",
                ..
            })
        ));
        assert_eq!(admit(&request(BELL)).unwrap().shots, DEFAULT_SHOTS);
    }

    #[test]
    fn small_circuits_are_kept_for_the_run_and_large_ones_are_not() {
        let limits = TenantLimits::default();
        let admission = Admission {
            limits: &limits,
            memory_budget: 1 << 30,
            split_memory_budget: 1 << 30,
            max_listed_qubits: 20,
            max_result_bytes: crate::config::DEFAULT_MAX_RESULT_BYTES,
        };
        let kept = prepare(&request(BELL), &admission, 1).unwrap();
        assert_eq!(kept.circuits.map(|c| c.len()), Some(1));
        let mut big = String::from("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\n");
        big.push_str(&"x q[0];\n".repeat(MAX_KEPT_OPS + 1));
        let req = request(&big);
        let mut req = req;
        req.result_types = Some(vec![ResultType::Probabilities]);
        assert!(prepare(&req, &admission, 1).unwrap().circuits.is_none());
    }

    #[test]
    fn defaults_are_filled_and_the_seed_chosen() {
        let spec = admit(&request(BELL)).unwrap();
        assert_eq!(spec.shots, DEFAULT_SHOTS);
        assert_eq!(spec.seed, 99);
        assert_eq!(spec.qubits, 2);
        assert_eq!(spec.result_types, vec![ResultType::Counts]);
        assert_eq!(spec.executions.len(), 1);
        assert_eq!(
            spec.memory_bytes as u128,
            Precision::F64.to_core().state_bytes(2)
        );
        assert_eq!(spec.program.format, ProgramFormat::Qasm2);
    }

    #[test]
    fn program_errors_have_line_and_column() {
        let err = admit(&request("OPENQASM 2.0;\nqreg q[1];\nfoo q;")).unwrap_err();
        match err {
            ServiceError::InvalidProgram { location, .. } => {
                assert_eq!((location.line, location.column), (Some(3), Some(1)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits_and_budget_refuse_with_numbers() {
        let big = "OPENQASM 2.0;\nqreg q[40];\n";
        let err = admit(&request(big)).unwrap_err();
        assert!(
            matches!(
                err,
                ServiceError::LimitExceeded {
                    limit: "max_qubits",
                    ..
                }
            ),
            "{err:?}"
        );
        let mut req = request("OPENQASM 2.0;\nqreg q[30];\ncreg c[1];\nmeasure q[0] -> c[0];\n");
        let err = admit(&req).unwrap_err();
        assert!(
            matches!(err, ServiceError::TooLarge { needed, allowed, .. } if needed > allowed),
            "{err:?}"
        );
        req = request(BELL);
        req.shots = Some(10_000_000);
        assert!(matches!(
            admit(&req).unwrap_err(),
            ServiceError::LimitExceeded {
                limit: "max_shots",
                ..
            }
        ));
    }

    #[test]
    fn result_types_are_checked_against_the_circuit() {
        let mut req = request("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nh q[0];\n");
        assert!(admit(&req).is_err(), "counts without measurement");
        req.result_types = Some(vec![
            ResultType::Statevector,
            ResultType::Expectation(vec!["Z0 Z1".into()]),
        ]);
        assert_eq!(admit(&req).unwrap().shots, 0);
        req.result_types = Some(vec![ResultType::Expectation(vec!["Z5".into()])]);
        assert!(admit(&req).is_err(), "observable beyond the circuit");
        let mut mid = request(
            "OPENQASM 2.0;\nqreg q[1];\ncreg c[1];\nmeasure q[0] -> c[0];\nh q[0];\nmeasure q[0] -> c[0];\n",
        );
        mid.result_types = Some(vec![ResultType::Probabilities]);
        assert!(
            admit(&mid).is_err(),
            "probabilities need final measurements"
        );
    }

    /// Fuzz finding (job_request): a 150-byte program that unrolls to
    /// nearly a million operations, swept over 1,000 input values, made
    /// admission parse a billion operations (half an hour of CPU) before
    /// answering. The sweep's operations are now bounded as a whole, and
    /// admission stops at the first execution past the bound.
    #[test]
    fn a_sweep_of_huge_unrolled_programs_is_refused_early() {
        let source = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput float a;\nqubit q;\nbit c;\n\
                      c = measure q;\nif (c) { for int i in [0:699999] { rx(a) q; } }\n";
        let mut req: JobRequest = serde_json::from_value(serde_json::json!({
            "program": {"format": "qasm3", "source": source}
        }))
        .unwrap();
        req.inputs
            .insert("a".into(), InputValue::Sweep(vec![0.5; 1000]));
        let started = std::time::Instant::now();
        match admit(&req).unwrap_err() {
            ServiceError::LimitExceeded { limit, message } => {
                assert_eq!(limit, "max_sweep_operations");
                // 700,002 operations each (the `if` and the measurement
                // counted): the third execution passes 2,000,000.
                assert!(
                    message.contains(
                        "the first 3 of the sweep's 1000 executions already have 2100006 operations"
                    ),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        // One execution of the same program is fine, and so is a sweep
        // under the bound.
        req.inputs
            .insert("a".into(), InputValue::Sweep(vec![0.5, 1.5]));
        assert_eq!(admit(&req).unwrap().executions.len(), 2);
    }

    #[test]
    fn sweeps_need_equal_lengths_and_inputs_need_a_format_that_has_them() {
        let mut req = request(BELL);
        req.inputs
            .insert("a".into(), InputValue::Sweep(vec![1.0, 2.0]));
        req.inputs.insert("b".into(), InputValue::Sweep(vec![1.0]));
        assert!(matches!(
            admit(&req).unwrap_err(),
            ServiceError::InvalidRequest { .. }
        ));
        req.inputs.remove("b");
        // OpenQASM 2 has no inputs: the front end says so, for execution 0.
        assert!(matches!(
            admit(&req).unwrap_err(),
            ServiceError::InvalidProgram {
                execution: Some(0),
                ..
            }
        ));
        let runs = executions(
            &[
                ("a".to_string(), InputValue::Sweep(vec![1.0, 2.0])),
                ("b".to_string(), InputValue::One(5.0)),
            ]
            .into_iter()
            .collect(),
            10,
        )
        .unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[1]["a"], runs[1]["b"]), (2.0, 5.0));
    }

    /// Runs `req` as a worker does; the result's JSON with bitstring and
    /// with hex keys, and the admission's bound.
    fn real_sizes(req: &JobRequest) -> (usize, usize, u64) {
        struct Never;
        impl kettle_core::Monitor for Never {
            fn on_progress(&self, _: kettle_core::Progress) -> std::ops::ControlFlow<()> {
                std::ops::ControlFlow::Continue(())
            }
        }
        let spec = admit(req).unwrap();
        let result = crate::execute::run_job(
            &kettle_core::Simulator::new(),
            &spec,
            None,
            &TenantLimits::default(),
            20,
            &Never,
        )
        .unwrap();
        let bits = serde_json::to_vec(&result).unwrap().len();
        let hex = serde_json::to_vec(&result.with_keys(crate::model::KeyFormat::Hex))
            .unwrap()
            .len();
        (bits, hex, spec.result_bytes)
    }

    fn qasm3(source: &str, extra: serde_json::Value) -> JobRequest {
        let mut body = serde_json::json!({"program": {"format": "qasm3", "source": source}});
        if let (Some(b), serde_json::Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn the_result_bound_is_never_below_the_real_json() {
        let header = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\n";
        // Arbitrary angles: amplitudes and probabilities with long digits.
        let mut random = format!("{header}qubit[10] q;\nbit[10] c;\n");
        for i in 0..40 {
            random.push_str(&format!(
                "U({}, {}, {}) q[{}];\ncx q[{}], q[{}];\n",
                0.1 + f64::from(i) * 0.37,
                1.3 * f64::from(i),
                -0.7 * f64::from(i),
                i % 10,
                i % 10,
                (i + 3) % 10
            ));
        }
        random.push_str("c = measure q;\n");
        let everything = serde_json::json!({
            "shots": 5000,
            "result_types": ["counts", "memory", "probabilities", "statevector",
                {"expectation": ["Z0", "0.5*X1 Y2 + Z9", "-1.25*Z0 Z1 Z2 Z3 Z4 Z5 Z6 Z7 Z8 Z9"]}],
        });
        let cases = [
            (
                "random 10 qubits, every result type",
                qasm3(&random, everything),
            ),
            (
                "1 clbit (hex keys are longer than bits)",
                qasm3(
                    &format!("{header}qubit q;\nbit c;\nh q;\nc = measure q;\n"),
                    serde_json::json!({"shots": 1000, "result_types": ["counts", "memory", "probabilities"]}),
                ),
            ),
            (
                "a sweep with inputs",
                qasm3(
                    &format!(
                        "{header}input float theta;\ninput float phi;\nqubit[3] q;\nbit[3] c;\nrx(theta) q[0];\nry(phi) q[1];\ncx q[1], q[2];\nc = measure q;\n"
                    ),
                    serde_json::json!({"shots": 300, "result_types": ["counts", "memory", "statevector"],
                        "inputs": {"theta": [0.1, 0.2, 1e-300, -3.5], "phi": 2.5}}),
                ),
            ),
            (
                "mid-circuit measurements over many clbits",
                qasm3(
                    &format!(
                        "{header}qubit[2] q;\nbit[40] c;\nh q[0];\nc[0] = measure q[0];\nreset q[0];\nh q[0];\nc[39] = measure q[0];\ncx q[0], q[1];\nc[20] = measure q[1];\n"
                    ),
                    serde_json::json!({"shots": 2000, "result_types": ["counts", "memory"]}),
                ),
            ),
        ];
        for (what, req) in cases {
            let (bits, hex, bound) = real_sizes(&req);
            assert!(
                bits as u64 <= bound && hex as u64 <= bound,
                "{what}: {bits} bytes (hex keys {hex}) over the bound of {bound}"
            );
            // A bound, not a guess: but within a small factor of the truth.
            assert!(
                bound < 8 * bits.max(hex) as u64 + 512,
                "{what}: {bound} vs {bits}"
            );
        }
    }

    #[test]
    fn noisy_jobs_count_the_memory_of_their_method() {
        // 20,000 two-qubit channels: their superoperators (8 KiB each)
        // are what a density matrix of 2 qubits costs.
        let source = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[2] q;\nbit[2] c;\n\
            for int i in [1:20000] {\n  cx q[0], q[1];\n  #pragma braket noise two_qubit_depolarizing(0.01) q[0], q[1]\n}\nc = measure q;\n";
        let limits = TenantLimits::default();
        let dm = qasm3(source, serde_json::json!({"method": "density_matrix"}));
        let err = check_request(&dm, &limits, 100 << 20, 20).unwrap_err();
        assert!(
            matches!(&err, ServiceError::TooLarge { limit: "memory_budget", message, .. }
                if message.contains("superoperators")),
            "{err}"
        );
        let spec = check_request(&dm, &limits, 1 << 30, 20).unwrap();
        assert_eq!(spec.method, Method::DensityMatrix);
        assert!(spec.memory_bytes > 20_000 * 8192, "{}", spec.memory_bytes);
        // Trajectories hold two states (the shared prefix and a copy).
        let sv = qasm3(source, serde_json::json!({"method": "statevector"}));
        let spec = check_request(&sv, &limits, 100 << 20, 20).unwrap();
        assert_eq!(spec.method, Method::Statevector);
        assert!(spec.noisy);
        assert_eq!(
            u128::from(spec.memory_bytes),
            2 * kettle_core::Precision::F64.state_bytes(2)
        );
    }

    #[test]
    fn a_result_over_max_result_bytes_is_refused_with_the_numbers() {
        let mut source = String::from(
            "OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput float theta;\nqubit[20] q;\nrx(theta) q[0];\n",
        );
        source.push_str("h q[1];\n");
        let one = qasm3(
            &source,
            serde_json::json!({"result_types": ["statevector"], "inputs": {"theta": 0.5}}),
        );
        // One 20-qubit state vector fits the default.
        let spec = admit(&one).unwrap();
        assert!(spec.result_bytes > 50_000_000, "{}", spec.result_bytes);
        assert!(spec.result_bytes <= crate::config::DEFAULT_MAX_RESULT_BYTES);
        let sweep = qasm3(
            &source,
            serde_json::json!({"result_types": ["statevector"], "inputs": {"theta": [0.1, 0.2, 0.3, 0.4]}}),
        );
        match admit(&sweep) {
            Err(ServiceError::TooLarge {
                limit: "max_result_bytes",
                needed,
                allowed,
                message,
            }) => {
                assert_eq!(allowed, u128::from(crate::config::DEFAULT_MAX_RESULT_BYTES));
                assert!(needed > allowed, "{message}");
                assert!(message.contains("max_result_bytes"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // A long sweep of probabilities is refused at the execution that
        // passes the bound, without parsing the rest.
        let probabilities = qasm3(
            "OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput float theta;\nqubit[16] q;\nbit[16] c;\nrx(theta) q[0];\nc = measure q;\n",
            serde_json::json!({"result_types": ["probabilities"], "inputs": {"theta": vec![0.5; 1000]}}),
        );
        match admit(&probabilities) {
            Err(ServiceError::TooLarge {
                limit: "max_result_bytes",
                message,
                ..
            }) => assert!(
                message.contains("of the sweep's 1000 executions"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
    }
}
