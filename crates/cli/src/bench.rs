//! `kettle bench FILE`: simulate without sampling, `--repeat` times, and
//! print one JSON line for the peer benchmark (`../shared/bench-peers`,
//! its `--ours` contract): `seconds` is the best repeat's simulation time,
//! from the parsed circuit to the final state in memory, allocation and
//! fusion planning included, parsing and output excluded. `--method` and
//! `--noise-model` apply as in `kettle run`: a noisy circuit is timed along
//! one noise trajectory (no shots), or on its density matrix.

use std::path::Path;
use std::time::Instant;

use kettle_core::{Float, RunOptions, Simulator};
use kettle_ir::Circuit;
use serde_json::json;

use crate::failure::Failure;
use crate::progress::ProgressMonitor;
use crate::ranks::Ranks;
use crate::run::{at_precision, write_state};
use crate::{BenchArgs, PrecisionArg};

pub(crate) fn bench(args: &BenchArgs, ranks: Option<&Ranks>) -> Result<(), Failure> {
    if args.repeat == 0 {
        return Err(Failure::input("kettle: --repeat must be at least 1"));
    }
    let loaded = args.sim.load(&args.file)?;
    if let Some(count) = args.plan_ranks {
        return plan_only(&loaded.circuit, count);
    }
    let (sim, threads) = args.sim.simulator()?;
    if let Some(ranks) = ranks {
        return match args.sim.precision {
            PrecisionArg::F64 => time_over::<f64>(&sim, &loaded.circuit, args, threads, ranks),
            PrecisionArg::F32 => time_over::<f32>(&sim, &loaded.circuit, args, threads, ranks),
        };
    }
    // An empty --state-out is how the peer benchmark says "not this time".
    let state_out = args
        .state_out
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(Path::new);
    let runs = match args.sim.precision {
        PrecisionArg::F64 => time_runs::<f64>(&sim, &loaded.circuit, args, state_out)?,
        PrecisionArg::F32 => time_runs::<f32>(&sim, &loaded.circuit, args, state_out)?,
    };
    let best = runs.seconds.iter().copied().fold(f64::INFINITY, f64::min);
    let line = json!({
        "seconds": best,
        "runs": runs.seconds,
        "threads": threads,
        "precision": if args.sim.precision == PrecisionArg::F64 { "complex128" } else { "complex64" },
        "qubits": loaded.circuit.num_qubits(),
        "gates": runs.gates,
        "applied_ops": runs.applied_ops,
        "passes": runs.passes,
        "parse_seconds": loaded.parse_time.as_secs_f64(),
        "method": runs.method,
        "noisy": loaded.circuit.is_noisy(),
    });
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    Ok(())
}

/// `--plan-ranks`: the exchanges a run over `ranks` ranks would make.
fn plan_only(circuit: &Circuit, ranks: usize) -> Result<(), Failure> {
    let (planned, per_gate) = kettle_core::distributed::planned_exchanges(circuit, ranks)?;
    let n = circuit.num_qubits();
    let line = json!({
        "qubits": n,
        "ranks": ranks,
        "exchanges": planned.exchanges,
        "slices_sent_per_rank": planned.slices_sent(n, ranks),
        "per_gate_exchanges": per_gate.exchanges,
        "per_gate_slices_sent_per_rank": per_gate.slices_sent(n, ranks),
    });
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(())
}

/// Times runs split over `ranks` (every rank runs this; rank 0 prints the
/// slowest rank's time of each repeat).
fn time_over<F: Float>(
    sim: &Simulator,
    circuit: &Circuit,
    args: &BenchArgs,
    threads: usize,
    ranks: &Ranks,
) -> Result<(), Failure> {
    let comm = ranks.comm();
    // As one process's bench: the final state, no shots.
    let keep_state = RunOptions {
        keep_state: true,
        seed: Some(0),
        ..RunOptions::default()
    };
    let mut seconds = Vec::with_capacity(args.repeat);
    let mut last = None;
    for _ in 0..args.repeat {
        let started = Instant::now();
        let run = sim.run_distributed::<F>(circuit, &keep_state, comm)?;
        // The slowest rank's time is the run's.
        let mut elapsed = vec![0.0; comm.size()];
        elapsed[comm.rank()] = started.elapsed().as_secs_f64();
        comm.sum(&mut elapsed);
        seconds.push(elapsed.iter().copied().fold(0.0, f64::max));
        last = Some(run);
    }
    let run = last.expect("at least one repeat");
    let state_out = args.state_out.as_deref().filter(|p| !p.is_empty());
    let gathered = state_out.and_then(|_| run.state.as_ref()?.gather());
    if !ranks.prints() {
        return Ok(());
    }
    if let (Some(path), Some(state)) = (state_out, gathered) {
        write_state(Path::new(path), &at_precision::<F>(&state))?;
    }
    let (n, ranks) = (circuit.num_qubits(), comm.size());
    let line = json!({
        "seconds": seconds.iter().copied().fold(f64::INFINITY, f64::min),
        "runs": seconds,
        "threads": threads,
        "ranks": ranks,
        "precision": if args.sim.precision == PrecisionArg::F64 { "complex128" } else { "complex64" },
        "qubits": n,
        "exchanges": run.exchanged.exchanges,
        "slices_sent_per_rank": run.exchanged.slices_sent(n, ranks),
        // Rank 0's: the part of what it sent that crossed as zero flags.
        "slices_sent_as_zero": run.sent_as_zero as f64 / (1u64 << (n - ranks.trailing_zeros())) as f64,
        "per_gate_slices_sent_per_rank": run.per_gate.slices_sent(n, ranks),
        "method": "statevector",
        "noisy": false,
    });
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}")?;
    Ok(())
}

/// Simulation times of every repeat and what the run applied.
struct Runs {
    seconds: Vec<f64>,
    gates: usize,
    applied_ops: usize,
    passes: usize,
    method: &'static str,
}

fn time_runs<F: Float>(
    sim: &Simulator,
    circuit: &Circuit,
    args: &BenchArgs,
    state_out: Option<&Path>,
) -> Result<Runs, Failure> {
    let options = RunOptions {
        shots: 0,
        seed: Some(0),
        keep_state: true,
        method: args.sim.method.into(),
        ..Default::default()
    };
    let mut runs = Runs {
        seconds: Vec::with_capacity(args.repeat),
        gates: 0,
        applied_ops: 0,
        passes: 0,
        method: "",
    };
    for repeat in 0..args.repeat {
        let progress = ProgressMonitor::new(args.sim.quiet);
        let started = Instant::now();
        let result = sim.run_monitored::<F>(circuit, &options, &progress);
        let elapsed = started.elapsed().as_secs_f64();
        progress.finish();
        let result = result?;
        runs.seconds.push(elapsed);
        runs.gates = result.stats.gates;
        runs.applied_ops = result.stats.applied_ops;
        runs.passes = result.stats.passes;
        runs.method = result.method.name();
        if repeat + 1 == args.repeat
            && let (Some(path), Some(state)) = (state_out, result.state.as_ref())
        {
            write_state(path, &state.to_vec())?;
        }
    }
    Ok(runs)
}
