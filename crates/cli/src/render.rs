//! What `kettle` prints: a histogram and timings for a person, or one JSON
//! object for a script.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use kettle_core::{Precision, cpu};
use kettle_ir::Complex64;
use serde_json::{Map, Value, json};

/// Everything one run produced.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) qubits: u32,
    pub(crate) clbits: u32,
    pub(crate) operations: usize,
    pub(crate) shots: u64,
    pub(crate) seed: u64,
    pub(crate) precision: &'static str,
    pub(crate) threads: usize,
    /// The method that ran: `statevector` or `density_matrix`.
    pub(crate) method: &'static str,
    /// Whether the circuit (after `--noise-model`) has noise.
    pub(crate) noisy: bool,
    pub(crate) counts: Option<BTreeMap<String, u64>>,
    pub(crate) probabilities: Option<BTreeMap<String, f64>>,
    pub(crate) statevector: Option<Vec<Complex64>>,
    /// `--expect`: each observable's value and its standard error (0 when
    /// exact).
    pub(crate) expectations: Vec<(String, kettle_core::Estimate)>,
    /// `--gradient`: one per observable.
    pub(crate) gradients: Vec<GradientLine>,
    /// Time the gradients took, when asked for.
    pub(crate) gradient_time: Option<Duration>,
    pub(crate) parse_time: Duration,
    /// Reading `--noise-model` and writing its noise into the circuit.
    pub(crate) noise_time: Option<Duration>,
    pub(crate) sim_time: Duration,
    /// Gates, operations applied after fusion, and trajectory branches.
    pub(crate) stats: kettle_core::RunStats,
    /// Things asked for but omitted, and why (printed on stderr).
    pub(crate) notes: Vec<String>,
}

/// An expectation value and its derivatives by the program's inputs.
#[derive(Debug)]
pub(crate) struct GradientLine {
    pub(crate) observable: String,
    pub(crate) value: f64,
    pub(crate) gradient: Vec<(String, f64)>,
}

impl Report {
    /// The distinct noise trajectories simulated, for a noisy run that
    /// followed them (on a density matrix there are none).
    pub(crate) fn trajectories(&self) -> Option<usize> {
        (self.noisy && self.method == kettle_core::Method::Statevector.name())
            .then_some(self.stats.branches)
    }
}

/// Rows of the histogram shown before "… more outcomes".
const MAX_ROWS: usize = 32;
/// Width of the longest bar.
const BAR: usize = 40;

pub(crate) fn human(out: &mut impl Write, path: &Path, r: &Report) -> io::Result<()> {
    write!(
        out,
        "{}: {} qubits, {} classical bits, {} operations{}; {} precision, {} thread{}, method {}",
        path.display(),
        r.qubits,
        r.clbits,
        r.operations,
        if r.noisy { " with noise" } else { "" },
        r.precision,
        r.threads,
        if r.threads == 1 { "" } else { "s" },
        r.method,
    )?;
    match r.trajectories() {
        Some(1) => writeln!(out, " (1 distinct noise trajectory)")?,
        Some(t) => writeln!(out, " ({t} distinct noise trajectories)")?,
        None => writeln!(out)?,
    }
    if let Some(counts) = &r.counts {
        writeln!(out, "\ncounts ({} shots, seed {}):", r.shots, r.seed)?;
        let mut rows: Vec<(&String, &u64)> = counts.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top = rows.first().map_or(1, |r| *r.1).max(1);
        for &(key, &n) in rows.iter().take(MAX_ROWS) {
            let width = (n as usize * BAR).div_ceil(top as usize);
            let pct = 100.0 * n as f64 / r.shots as f64;
            writeln!(
                out,
                "  {key}  {:<BAR$}  {n:>8}  {pct:5.1}%",
                "█".repeat(width)
            )?;
        }
        if rows.len() > MAX_ROWS {
            writeln!(out, "  … {} more outcomes", rows.len() - MAX_ROWS)?;
        }
    } else if r.shots == 0 {
        writeln!(out, "\nthe circuit measures nothing: no counts")?;
    }
    if let Some(probs) = &r.probabilities {
        writeln!(out, "\nexact probabilities of the classical bits:")?;
        for (k, p) in probs {
            writeln!(out, "  {k}  {p:.6}")?;
        }
    }
    if let Some(state) = &r.statevector {
        writeln!(out, "\nstate vector (qubit 0 is the rightmost bit):")?;
        let width = r.qubits as usize;
        for (i, a) in state.iter().enumerate() {
            if a.norm_sqr() > 0.0 {
                writeln!(out, "  |{i:0width$b}⟩  {:+.6} {:+.6}i", a.re, a.im)?;
            }
        }
    }
    for (text, e) in &r.expectations {
        if e.std_error > 0.0 {
            writeln!(out, "\n⟨{text}⟩ = {:.10} ± {:.2e}", e.value, e.std_error)?;
        } else {
            writeln!(out, "\n⟨{text}⟩ = {:.10}", e.value)?;
        }
    }
    for g in &r.gradients {
        writeln!(out, "\ngradient of ⟨{}⟩:", g.observable)?;
        for (name, d) in &g.gradient {
            writeln!(out, "  ∂/∂{name} = {d:+.10}")?;
        }
    }
    write!(out, "\nparse {:.2} ms", r.parse_time.as_secs_f64() * 1e3)?;
    if let Some(t) = r.noise_time {
        write!(out, ", noise model {:.2} ms", t.as_secs_f64() * 1e3)?;
    }
    write!(out, ", simulate {:.2} ms", r.sim_time.as_secs_f64() * 1e3)?;
    match r.gradient_time {
        Some(t) => writeln!(out, ", gradient {:.2} ms", t.as_secs_f64() * 1e3),
        None => writeln!(out),
    }
}

pub(crate) fn json(out: &mut impl Write, r: &Report) -> io::Result<()> {
    let mut obj = Map::new();
    obj.insert("qubits".into(), json!(r.qubits));
    obj.insert("clbits".into(), json!(r.clbits));
    obj.insert("shots".into(), json!(r.shots));
    obj.insert("seed".into(), json!(r.seed));
    obj.insert(
        "precision".into(),
        json!(if r.precision == "f64" {
            "complex128"
        } else {
            "complex64"
        }),
    );
    obj.insert("threads".into(), json!(r.threads));
    obj.insert("method".into(), json!(r.method));
    obj.insert("noisy".into(), json!(r.noisy));
    if let Some(t) = r.trajectories() {
        obj.insert("trajectories".into(), json!(t));
    }
    if let Some(c) = &r.counts {
        obj.insert("counts".into(), json!(c));
    }
    if let Some(p) = &r.probabilities {
        obj.insert("probabilities".into(), json!(p));
    }
    if let Some(s) = &r.statevector {
        let pairs: Vec<[f64; 2]> = s.iter().map(|a| [a.re, a.im]).collect();
        obj.insert("statevector".into(), json!(pairs));
    }
    if !r.expectations.is_empty() {
        let e: Vec<Value> = r
            .expectations
            .iter()
            .map(|(o, e)| json!({"observable": o, "value": e.value, "std_error": e.std_error}))
            .collect();
        obj.insert("expectation".into(), Value::Array(e));
    }
    if !r.gradients.is_empty() {
        let g: Vec<Value> = r
            .gradients
            .iter()
            .map(|g| {
                let by: Map<String, Value> = g
                    .gradient
                    .iter()
                    .map(|(k, d)| (k.clone(), json!(d)))
                    .collect();
                json!({"observable": g.observable, "value": g.value, "gradient": by})
            })
            .collect();
        obj.insert("gradients".into(), Value::Array(g));
    }
    let mut timing = json!({"parse_seconds": r.parse_time.as_secs_f64(), "simulate_seconds": r.sim_time.as_secs_f64()});
    if let Some(t) = r.noise_time {
        timing["noise_model_seconds"] = json!(t.as_secs_f64());
    }
    if let Some(t) = r.gradient_time {
        timing["gradient_seconds"] = json!(t.as_secs_f64());
    }
    obj.insert("timing".into(), timing);
    obj.insert(
        "stats".into(),
        json!({"gates": r.stats.gates, "applied_ops": r.stats.applied_ops, "passes": r.stats.passes, "branches": r.stats.branches, "replays": r.stats.replays}),
    );
    // Top-level `seconds`: the simulation time, as the peer benchmark reads it.
    obj.insert("seconds".into(), json!(r.sim_time.as_secs_f64()));
    if !r.notes.is_empty() {
        obj.insert("notes".into(), json!(r.notes));
    }
    serde_json::to_writer(&mut *out, &Value::Object(obj))?;
    writeln!(out)
}

pub(crate) fn info(out: &mut impl Write) -> io::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    writeln!(out, "kettle {}", env!("CARGO_PKG_VERSION"))?;
    let (level, widest) = (cpu::simd_level(), cpu::SimdLevel::detected());
    if level == widest {
        writeln!(out, "simd: {level} (the widest this CPU runs)")?;
    } else {
        writeln!(
            out,
            "simd: {level} (forced by {}; this CPU runs {widest})",
            cpu::SIMD_ENV
        )?;
    }
    writeln!(out, "threads available: {threads}")?;
    writeln!(out, "state memory:")?;
    writeln!(out, "  qubits        f64         f32")?;
    for n in (20..=36).step_by(2) {
        writeln!(
            out,
            "  {n:>6} {:>11} {:>11}",
            human_bytes(Precision::F64.state_bytes(n)),
            human_bytes(Precision::F32.state_bytes(n))
        )?;
    }
    Ok(())
}

fn human_bytes(bytes: u128) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.0} {}", units[u])
}
