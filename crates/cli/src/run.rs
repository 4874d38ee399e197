//! `kettle run FILE`: read, parse, simulate, and hand the results to
//! `render`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use kettle_core::distributed::Communicator;
use kettle_core::{
    AngleRef, Estimate, Float, Method, PauliSum, RunOptions, RunResult, SimError, Simulator,
    final_measurements,
};
use kettle_ir::Circuit;
use kettle_qasm::{
    JacobianError, Limits, SourceFormat, angle_jacobian, chain_rule, moved_angles, qasm3_inputs,
};

use crate::failure::Failure;
use crate::progress::ProgressMonitor;
use crate::ranks::Ranks;
use crate::render::{self, GradientLine, Report};
use crate::source::Loaded;
use crate::{PrecisionArg, RunArgs};

/// Largest state or distribution printed inline; beyond it, `--state-out`.
const MAX_LISTED: u32 = 20;

pub(crate) fn run(args: &RunArgs, ranks: Option<&Ranks>) -> Result<(), Failure> {
    let loaded = args.sim.load(&args.file)?;
    let (sim, threads) = args.sim.simulator()?;
    let report = match (ranks, args.sim.precision) {
        (Some(ranks), PrecisionArg::F64) => {
            simulate_over::<f64>(&sim, &loaded, args, threads, ranks.comm())?
        }
        (Some(ranks), PrecisionArg::F32) => {
            simulate_over::<f32>(&sim, &loaded, args, threads, ranks.comm())?
        }
        (None, PrecisionArg::F64) => simulate::<f64>(&sim, &loaded, args, threads)?,
        (None, PrecisionArg::F32) => simulate::<f32>(&sim, &loaded, args, threads)?,
    };
    if ranks.is_some_and(|r| !r.prints()) {
        return Ok(());
    }
    let report = Report {
        parse_time: loaded.parse_time,
        ..report
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        render::json(&mut out, &report)?;
    } else {
        render::human(&mut out, &args.file, &report)?;
    }
    for note in &report.notes {
        eprintln_note(note);
    }
    Ok(())
}

fn eprintln_note(note: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "note: {note}");
}

pub(crate) fn simulate<F: Float>(
    sim: &Simulator,
    loaded: &Loaded,
    args: &RunArgs,
    threads: usize,
) -> Result<Report, Failure> {
    let circuit = &loaded.circuit;
    let observables = parse_observables(args)?;
    let method: Method = args.sim.method.into();
    if circuit.is_noisy() || method == Method::DensityMatrix {
        return simulate_mixed::<F>(sim, loaded, args, threads, &observables, method);
    }
    let mut notes = Vec::new();
    let Outputs {
        measures,
        finals,
        state_out,
        keep_state,
    } = outputs(circuit, args, &observables, &mut notes);
    let deterministic = finals.is_some();
    let unitary = !measures && deterministic;
    let shots = if measures { args.shots } else { 0 };
    let (result, sim_time) = run_with_progress::<F>(
        sim,
        circuit,
        &RunOptions {
            shots,
            seed: args.seed,
            keep_state,
            method,
            ..Default::default()
        },
        args.sim.quiet,
    )?;
    let n = circuit.num_qubits();
    let mut report = base_report::<F>(circuit, &result, shots, threads, sim_time);
    report.noise_time = loaded.noise_time;
    // Only a deterministic run's state stands for the circuit; a trajectory does not.
    if let Some(state) = result.state.as_ref().filter(|_| deterministic) {
        let par = sim.parallelism();
        if args.probabilities {
            let finals = finals.as_deref().unwrap_or(&[]);
            if listable(finals, &mut notes) {
                report.probabilities =
                    Some(state.classical_distribution(finals, circuit.num_clbits(), par)?);
            }
        }
        if args.statevector {
            if !unitary {
                notes.push("--statevector: the circuit measures qubits; omitted".into());
            } else if n > MAX_LISTED {
                notes.push(format!(
                    "--statevector: 2^{n} amplitudes are too many to print; use --state-out"
                ));
            } else {
                report.statevector = Some(state.to_vec_f64());
            }
        }
        for (text, obs) in args.expect.iter().zip(&observables) {
            let value = state.expectation(obs, par)?;
            report.expectations.push((
                text.clone(),
                Estimate {
                    value,
                    std_error: 0.0,
                },
            ));
        }
        if let Some(out) = state_out {
            write_state(out, &state.to_vec())?;
        }
    }
    if args.gradient && deterministic {
        let started = Instant::now();
        report.gradients = gradients::<F>(sim, loaded, &args.expect, &observables, args)?;
        report.gradient_time = Some(started.elapsed());
    }
    report.notes = notes;
    Ok(report)
}

/// [`simulate`] with the state split over the ranks of `comm` (see
/// `crate::ranks`): the same engine, counts and notes, the state gathered
/// on rank 0 where it is asked for, and the exchanges made; every rank
/// returns a report, rank 0's is printed.
fn simulate_over<F: Float>(
    sim: &Simulator,
    loaded: &Loaded,
    args: &RunArgs,
    threads: usize,
    comm: &dyn Communicator,
) -> Result<Report, Failure> {
    let circuit = &loaded.circuit;
    if args.gradient {
        return Err(Failure::input(
            "kettle: --gradient is not supported across MPI ranks yet".to_string(),
        ));
    }
    let observables = parse_observables(args)?;
    let mut notes = Vec::new();
    let Outputs {
        measures,
        finals,
        state_out,
        keep_state,
    } = outputs(circuit, args, &observables, &mut notes);
    let deterministic = finals.is_some();
    let shots = if measures { args.shots } else { 0 };
    let options = RunOptions {
        shots,
        seed: args.seed,
        keep_state,
        method: Method::Statevector,
        ..Default::default()
    };
    let started = Instant::now();
    let run = sim.run_distributed::<F>(circuit, &options, comm)?;
    let sim_time = started.elapsed();
    let n = circuit.num_qubits();
    notes.insert(
        0,
        format!(
            "{} ranks: {} exchanges, {:.2} slices sent per rank (a whole slice per gate on a \
             global qubit would be {:.2})",
            comm.size(),
            run.exchanged.exchanges,
            run.exchanged.slices_sent(n, comm.size()),
            run.per_gate.slices_sent(n, comm.size()),
        ),
    );
    let mut report = Report {
        qubits: n,
        clbits: circuit.num_clbits(),
        operations: circuit.ops().len(),
        shots,
        seed: run.seed,
        precision: F::NAME,
        threads,
        method: Method::Statevector.name(),
        noisy: false,
        counts: run
            .counts
            .as_ref()
            .filter(|_| shots > 0)
            .map(|c| c.to_bitstrings()),
        probabilities: None,
        statevector: None,
        expectations: Vec::new(),
        gradients: Vec::new(),
        gradient_time: None,
        parse_time: Duration::ZERO,
        noise_time: loaded.noise_time,
        sim_time,
        stats: run.stats.clone(),
        notes: Vec::new(),
    };
    // Only a deterministic run's state stands for the circuit; a trajectory does not.
    if let Some(state) = run.state.as_ref().filter(|_| deterministic) {
        let unitary = !measures;
        let listed = args.statevector && unitary && n <= MAX_LISTED;
        let gathered = if listed || state_out.is_some() {
            state.gather()
        } else {
            None
        };
        if args.statevector && !unitary {
            notes.push("--statevector: the circuit measures qubits; omitted".into());
        } else if args.statevector && n > MAX_LISTED {
            notes.push(format!(
                "--statevector: 2^{n} amplitudes are too many to print; use --state-out"
            ));
        }
        if args.probabilities {
            let finals = finals.as_deref().unwrap_or(&[]);
            if listable(finals, &mut notes) {
                report.probabilities =
                    state.classical_distribution(finals, circuit.num_clbits())?;
            }
        }
        for (text, obs) in args.expect.iter().zip(&observables) {
            let value = state.expectation(obs)?;
            report.expectations.push((
                text.clone(),
                Estimate {
                    value,
                    std_error: 0.0,
                },
            ));
        }
        if let (Some(out), Some(whole)) = (state_out, &gathered) {
            write_state(out, &at_precision::<F>(whole))?;
        }
        report.statevector = gathered.filter(|_| listed);
    }
    report.notes = notes;
    Ok(report)
}

/// What a run keeps for the outputs asked of it, by one rule in one process
/// and across ranks.
struct Outputs<'a> {
    /// The circuit measures some qubit (it is sampled, not listed whole).
    measures: bool,
    /// Its measurements, when every one is final.
    finals: Option<Vec<(u32, u32)>>,
    /// `--state-out`, unless empty.
    state_out: Option<&'a Path>,
    /// Keep the final state.
    keep_state: bool,
}

/// [`Outputs`] of `circuit` for `args`; a note when the state's outputs
/// (`--statevector`, `--probabilities`, `--expect`, `--state-out`) are
/// omitted because the circuit's measurements are not all final.
fn outputs<'a>(
    circuit: &Circuit,
    args: &'a RunArgs,
    observables: &[PauliSum],
    notes: &mut Vec<String>,
) -> Outputs<'a> {
    let measures = circuit.measures_anything();
    let finals = final_measurements(circuit);
    // An empty --state-out is how the peer benchmark says "not this time".
    let state_out = state_out(args);
    let wants_state =
        args.statevector || args.probabilities || !observables.is_empty() || state_out.is_some();
    if wants_state && finals.is_none() {
        notes.push(
            "--statevector, --probabilities, --expect and --state-out need a circuit whose \
             measurements are all final (no reset or classical control); omitted"
                .to_string(),
        );
    }
    // A circuit that measures nothing is still simulated (one trajectory if
    // it resets): its state is the result, even when nobody prints it.
    let keep_state = !measures || (wants_state && finals.is_some());
    Outputs {
        measures,
        finals,
        state_out,
        keep_state,
    }
}

/// Whether `--probabilities` can list the outcomes of the measurements
/// `finals`; if not, a note says why.
fn listable(finals: &[(u32, u32)], notes: &mut Vec<String>) -> bool {
    let measured: BTreeSet<u32> = finals.iter().map(|&(q, _)| q).collect();
    if measured.len() as u32 > MAX_LISTED {
        notes.push(format!(
            "--probabilities: {} measured qubits are too many outcomes to list; omitted",
            measured.len()
        ));
        return false;
    }
    true
}

/// `--expect`'s observables.
fn parse_observables(args: &RunArgs) -> Result<Vec<PauliSum>, Failure> {
    args.expect
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|e: SimError| Failure::input(format!("kettle: --expect: {e}")))
        })
        .collect()
}

/// A gathered state (f64) at the run's precision, for `--state-out`.
pub(crate) fn at_precision<F: Float>(
    state: &[num_complex::Complex64],
) -> Vec<num_complex::Complex<F>> {
    state
        .iter()
        .map(|a| num_complex::Complex::new(F::from_f64(a.re), F::from_f64(a.im)))
        .collect()
}

/// `--state-out`, unless empty.
fn state_out(args: &RunArgs) -> Option<&Path> {
    args.state_out
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(Path::new)
}

/// What every run reports, before the extras asked for.
fn base_report<F: Float>(
    circuit: &Circuit,
    result: &RunResult<F>,
    shots: u64,
    threads: usize,
    sim_time: Duration,
) -> Report {
    Report {
        qubits: circuit.num_qubits(),
        clbits: circuit.num_clbits(),
        operations: circuit.ops().len(),
        shots,
        seed: result.seed,
        precision: F::NAME,
        threads,
        method: result.method.name(),
        noisy: circuit.is_noisy(),
        counts: (shots > 0 && circuit.measures_anything()).then(|| result.counts.to_bitstrings()),
        probabilities: None,
        statevector: None,
        expectations: Vec::new(),
        gradients: Vec::new(),
        gradient_time: None,
        parse_time: Duration::ZERO,
        noise_time: None,
        sim_time,
        stats: result.stats.clone(),
        notes: Vec::new(),
    }
}

/// Runs `circuit` under the progress bar (none when `quiet`); the result
/// and the time it took.
fn run_with_progress<F: Float>(
    sim: &Simulator,
    circuit: &Circuit,
    options: &RunOptions,
    quiet: bool,
) -> Result<(RunResult<F>, Duration), SimError> {
    let started = Instant::now();
    let progress = ProgressMonitor::new(quiet);
    let result = sim.run_monitored::<F>(circuit, options, &progress);
    progress.finish();
    Ok((result?, started.elapsed()))
}

/// A noisy circuit, or any circuit on a density matrix: the counts, the
/// estimates of `--expect` over the shots' trajectories (exact on a density
/// matrix), and the exact distribution from a density matrix. No single
/// state stands for such a run, so `--statevector`, `--state-out` and
/// `--gradient` are refused or omitted.
fn simulate_mixed<F: Float>(
    sim: &Simulator,
    loaded: &Loaded,
    args: &RunArgs,
    threads: usize,
    observables: &[PauliSum],
    method: Method,
) -> Result<Report, Failure> {
    let circuit = &loaded.circuit;
    if args.gradient {
        return Err(Failure::input(if circuit.is_noisy() {
            "kettle: --gradient: the adjoint method needs a noiseless circuit, and this one has noise"
        } else {
            "kettle: --gradient needs --method statevector or automatic"
        }));
    }
    let mut notes = Vec::new();
    if args.statevector || state_out(args).is_some() {
        notes.push(format!(
            "--statevector and --state-out: a {} run has no single state vector; omitted",
            if circuit.is_noisy() {
                "noisy"
            } else {
                "density-matrix"
            }
        ));
    }
    let measures = circuit.measures_anything();
    // Shots are also the trajectories that estimate the expectation values.
    let shots = if measures || !observables.is_empty() {
        args.shots
    } else {
        0
    };
    let (result, sim_time) = run_with_progress::<F>(
        sim,
        circuit,
        &RunOptions {
            shots,
            seed: args.seed,
            // The density matrix, for --probabilities (a trajectory's state is
            // of no use).
            keep_state: args.probabilities && method != Method::Statevector,
            method,
            observables: observables.to_vec(),
        },
        args.sim.quiet,
    )?;
    let mut report = base_report::<F>(circuit, &result, shots, threads, sim_time);
    report.noise_time = loaded.noise_time;
    report.expectations = args
        .expect
        .iter()
        .cloned()
        .zip(result.expectations)
        .collect();
    if args.probabilities {
        match &result.density_matrix {
            Some(rho) => {
                let measured = final_measurements(circuit).map_or(0, |f| {
                    f.iter().map(|&(q, _)| q).collect::<BTreeSet<_>>().len()
                });
                if measured as u32 > MAX_LISTED {
                    notes.push(format!(
                        "--probabilities: {measured} measured qubits are too many outcomes to list; omitted"
                    ));
                } else {
                    match rho.classical_distribution(circuit)? {
                        Some(dist) => report.probabilities = Some(dist),
                        None => notes.push(
                            "--probabilities needs a circuit whose measurements are all final \
                             (no classical control); omitted"
                                .into(),
                        ),
                    }
                }
            }
            None => notes.push(
                "--probabilities: a noisy circuit's exact distribution needs --method \
                 density_matrix (this run followed trajectories); omitted"
                    .into(),
            ),
        }
    }
    report.notes = notes;
    Ok(report)
}

/// `--gradient`: each observable's derivatives by every `input float` and
/// `input angle`, by the adjoint method, through the program's angles.
fn gradients<F: Float>(
    sim: &Simulator,
    loaded: &Loaded,
    texts: &[String],
    observables: &[PauliSum],
    args: &RunArgs,
) -> Result<Vec<GradientLine>, Failure> {
    let refuse = |why: &str| Failure::input(format!("kettle: --gradient: {why}"));
    if loaded.format != SourceFormat::Qasm3 {
        return Err(refuse(
            "a gradient is taken by `input float` and `input angle` parameters, which only OpenQASM 3 programs have",
        ));
    }
    let text = std::str::from_utf8(loaded.bytes()).map_err(|_| refuse("the file is not UTF-8"))?;
    let names: Vec<String> = qasm3_inputs(text, &Limits::default())
        .map_err(|d| refuse(&d.to_string()))?
        .into_iter()
        .filter(|p| p.kind == "float" || p.kind == "angle")
        .map(|p| p.name)
        .collect();
    if names.is_empty() {
        return Err(refuse(
            "the program declares no `input float` or `input angle` to differentiate by",
        ));
    }
    let columns = angle_jacobian(&loaded.circuit, &loaded.inputs, &names, loaded.lowerer()?)
        .map_err(|e| match e {
            JacobianError::Lower(failure) => failure,
            JacobianError::Shape(why) => refuse(&why),
        })?;
    let moved = moved_angles(&columns);
    let angles: Vec<AngleRef> = moved
        .iter()
        .map(|&(op, param)| AngleRef { op, param })
        .collect();
    let progress = ProgressMonitor::new(args.sim.quiet);
    let by_angle =
        sim.adjoint_gradient_monitored::<F>(&loaded.circuit, observables, &angles, &progress);
    progress.finish();
    Ok(texts
        .iter()
        .zip(by_angle?)
        .map(|(text, g)| GradientLine {
            observable: text.clone(),
            value: g.value,
            gradient: names
                .iter()
                .cloned()
                .zip(chain_rule(&columns, &moved, &g.angles))
                .collect(),
        })
        .collect())
}

/// Raw little-endian re, im pairs at the state's precision.
pub(crate) fn write_state<F: Float>(
    path: &Path,
    amps: &[num_complex::Complex<F>],
) -> Result<(), Failure> {
    let mut bytes = Vec::with_capacity(amps.len() * 2 * std::mem::size_of::<F>());
    for a in amps {
        for x in [a.re, a.im] {
            if std::mem::size_of::<F>() == 8 {
                bytes.extend_from_slice(&x.to_f64().to_le_bytes());
            } else {
                bytes.extend_from_slice(&(x.to_f64() as f32).to_le_bytes());
            }
        }
    }
    std::fs::write(path, bytes)
        .map_err(|e| Failure::input(format!("kettle: cannot write {}: {e}", path.display())))
}
