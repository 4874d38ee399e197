//! `kettle run FILE`: read, parse, simulate, and hand the results to
//! `render`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use kettle_core::{
    ClassicalValue, Float, FusionConfig, Parallelism, PauliSum, RunOptions, SimError, Simulator,
    final_measurements,
};
use kettle_ir::{Circuit, Operation};
use kettle_qasm::{Diagnostic, Limits, parse_json, parse_qasm2_bytes};

use crate::render::{self, Report};
use crate::{Format, PrecisionArg, RunArgs};

/// Largest state or distribution printed inline; beyond it, `--state-out`.
const MAX_LISTED: u32 = 20;

/// Why `kettle run` stopped: one line (or a few, for source errors) for stderr.
#[derive(Debug)]
pub(crate) struct Failure(String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure(format!("kettle: {e}"))
    }
}

impl From<SimError> for Failure {
    fn from(e: SimError) -> Self {
        Failure(format!("kettle: {e}"))
    }
}

pub(crate) fn run(args: &RunArgs) -> Result<(), Failure> {
    let limits = Limits::default();
    let path = &args.file;
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| Failure(format!("kettle: cannot read {shown}: {e}")))?
        .len();
    if size > limits.max_source_bytes as u64 {
        return Err(Failure(format!(
            "kettle: {shown} is {size} bytes, more than the {} a circuit file may have",
            limits.max_source_bytes
        )));
    }
    let bytes =
        std::fs::read(path).map_err(|e| Failure(format!("kettle: cannot read {shown}: {e}")))?;
    let format = args.format.unwrap_or_else(|| detect_format(&bytes));
    if format == Format::Qasm3 {
        return Err(Failure(format!(
            "kettle: {shown} is OpenQASM 3, which this version cannot run yet (OpenQASM 2.0 works)"
        )));
    }
    let started = Instant::now();
    let circuit = match format {
        Format::Json => {
            let text = std::str::from_utf8(&bytes)
                .map_err(|e| Failure(format!("error: {shown}: not UTF-8 text ({e})")))?;
            parse_json(text, &limits).map_err(|e| Failure(format!("error: {shown}: {e}")))?
        }
        Format::Qasm2 | Format::Qasm3 => parse_qasm2_bytes(&bytes, &limits)
            .map_err(|d| Failure(source_error(path, &bytes, &d)))?,
    };
    let parse_time = started.elapsed();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let fusion = if args.no_fusion {
        FusionConfig::disabled()
    } else {
        FusionConfig::default()
    };
    let sim = Simulator::new()
        .with_parallelism(Parallelism::threads(threads)?)
        .with_fusion(fusion);
    let report = match args.precision {
        PrecisionArg::F64 => simulate::<f64>(&sim, &circuit, args, threads)?,
        PrecisionArg::F32 => simulate::<f32>(&sim, &circuit, args, threads)?,
    };
    let report = Report {
        parse_time,
        ..report
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        render::json(&mut out, &report)?;
    } else {
        render::human(&mut out, path, &report)?;
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

/// JSON if the file starts with `{`, OpenQASM 3 if the header says so, else
/// OpenQASM 2.
fn detect_format(bytes: &[u8]) -> Format {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        return Format::Json;
    }
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]);
    let code = head
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("//"))
        .unwrap_or("");
    if code.starts_with("OPENQASM 3") {
        Format::Qasm3
    } else {
        Format::Qasm2
    }
}

/// `file:line:col: message`, the line, and a caret under the column.
fn source_error(path: &Path, bytes: &[u8], d: &Diagnostic) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut msg = format!(
        "error: {}:{}:{}: {}",
        path.display(),
        d.line,
        d.column,
        d.message
    );
    if let Some(line) = text.lines().nth(d.line.saturating_sub(1) as usize) {
        let line: String = line.chars().take(200).collect();
        let pad: String = line
            .chars()
            .take(d.column.saturating_sub(1) as usize)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        msg.push_str(&format!("\n  | {line}\n  | {pad}^"));
    }
    msg
}

fn measures_anything(ops: &[Operation]) -> bool {
    ops.iter().any(|op| match op {
        Operation::Measure { .. } => true,
        Operation::IfElse {
            then_ops, else_ops, ..
        } => measures_anything(then_ops) || measures_anything(else_ops),
        _ => false,
    })
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
                .map_err(|e: SimError| Failure(format!("kettle: --expect: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let measures = measures_anything(circuit.ops());
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
    let result = sim.run::<F>(
        circuit,
        &RunOptions {
            shots,
            seed: args.seed,
            keep_state,
        },
    )?;
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
            let mut qubits: Vec<u32> = Vec::new();
            for &(q, _) in finals {
                if !qubits.contains(&q) {
                    qubits.push(q);
                }
            }
            if qubits.len() as u32 > MAX_LISTED {
                notes.push(format!(
                    "--probabilities: {} measured qubits are too many outcomes to list; omitted",
                    qubits.len()
                ));
            } else {
                let probs = state.probabilities(&qubits, par)?;
                let mut dist: BTreeMap<String, f64> = BTreeMap::new();
                for (k, p) in probs.into_iter().enumerate() {
                    if p == 0.0 {
                        continue;
                    }
                    let mut value = ClassicalValue::zeros(circuit.num_clbits());
                    for &(q, c) in finals {
                        let pos = qubits.iter().position(|&x| x == q).expect("listed");
                        value.set(c, (k >> pos) & 1 == 1);
                    }
                    *dist
                        .entry(value.to_bitstring(circuit.num_clbits()))
                        .or_insert(0.0) += p;
                }
                report.probabilities = Some(dist);
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
fn write_state<F: Float>(path: &Path, amps: &[num_complex::Complex<F>]) -> Result<(), Failure> {
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
        .map_err(|e| Failure(format!("kettle: cannot write {}: {e}", path.display())))
}
