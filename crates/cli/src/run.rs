//! `kettle run FILE`: read, parse, simulate, and hand the results to
//! `render`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use kettle_core::{Float, PauliSum, RunOptions, SimError, Simulator, final_measurements};
use kettle_ir::Circuit;

use crate::failure::Failure;
use crate::progress::ProgressMonitor;
use crate::render::{self, Report};
use crate::{PrecisionArg, RunArgs};

/// Largest state or distribution printed inline; beyond it, `--state-out`.
const MAX_LISTED: u32 = 20;

pub(crate) fn run(args: &RunArgs) -> Result<(), Failure> {
    let loaded = args.sim.load(&args.file)?;
    let (sim, threads) = args.sim.simulator()?;
    let report = match args.sim.precision {
        PrecisionArg::F64 => simulate::<f64>(&sim, &loaded.circuit, args, threads)?,
        PrecisionArg::F32 => simulate::<f32>(&sim, &loaded.circuit, args, threads)?,
    };
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

fn simulate<F: Float>(
    sim: &Simulator,
    circuit: &Circuit,
    args: &RunArgs,
    threads: usize,
) -> Result<Report, Failure> {
    let observables: Vec<PauliSum> = args
        .expect
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|e: SimError| Failure::input(format!("kettle: --expect: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let measures = circuit.measures_anything();
    let finals = final_measurements(circuit);
    let deterministic = finals.is_some();
    let unitary = !measures && deterministic;
    let mut notes = Vec::new();
    // An empty --state-out is how the peer benchmark says "not this time".
    let state_out = args
        .state_out
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(Path::new);
    let wants_state =
        args.statevector || args.probabilities || !observables.is_empty() || state_out.is_some();
    // A circuit that measures nothing is still simulated (one trajectory if
    // it resets): its state is the result, even when nobody prints it.
    let keep_state = !measures || (wants_state && deterministic);
    if wants_state && !deterministic {
        notes.push(
            "--statevector, --probabilities, --expect and --state-out need a circuit whose \
             measurements are all final (no reset or classical control); omitted"
                .to_string(),
        );
    }
    let shots = if measures { args.shots } else { 0 };
    let started = Instant::now();
    let progress = ProgressMonitor::new(args.sim.quiet);
    let result = sim.run_monitored::<F>(
        circuit,
        &RunOptions {
            shots,
            seed: args.seed,
            keep_state,
        },
        &progress,
    );
    progress.finish();
    let result = result?;
    let sim_time: Duration = started.elapsed();
    let n = circuit.num_qubits();
    let mut report = Report {
        qubits: n,
        clbits: circuit.num_clbits(),
        operations: circuit.ops().len(),
        shots,
        seed: result.seed,
        precision: F::NAME,
        threads,
        counts: (shots > 0).then(|| result.counts.to_bitstrings()),
        probabilities: None,
        statevector: None,
        expectations: Vec::new(),
        parse_time: Duration::ZERO,
        sim_time,
        stats: result.stats.clone(),
        notes: Vec::new(),
    };
    // Only a deterministic run's state stands for the circuit; a trajectory does not.
    if let Some(state) = result.state.as_ref().filter(|_| deterministic) {
        let par = sim.parallelism();
        if args.probabilities {
            let finals = finals.as_deref().unwrap_or(&[]);
            let measured: BTreeSet<u32> = finals.iter().map(|&(q, _)| q).collect();
            if measured.len() as u32 > MAX_LISTED {
                notes.push(format!(
                    "--probabilities: {} measured qubits are too many outcomes to list; omitted",
                    measured.len()
                ));
            } else {
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
            report
                .expectations
                .push((text.clone(), state.expectation(obs, par)?));
        }
        if let Some(out) = state_out {
            write_state(out, &state.to_vec())?;
        }
    }
    report.notes = notes;
    Ok(report)
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
