//! The `kettle` command line: `kettle run FILE` for students and quick
//! checks, `kettle bench FILE` for timing beside other simulators,
//! `kettle serve` for the HTTP job API and `kettle keys` for its API keys,
//! `kettle info` for what a build can do.
//!
//! # Brief overview
//!
//! [`main`] checks the CPU, parses arguments with clap ([`Cli`]) and
//! dispatches. `source` reads a circuit file (format detection, includes
//! from the file's own folder, `input` values); `run` simulates it with
//! `kettle-core` and `render` prints either a histogram for a person or one
//! JSON object for a script; `bench` times the simulation alone; `progress`
//! draws a bar on stderr for long runs; `serve` hands over to
//! `kettle-server`; `ranks` joins MPI ranks for `run` and `bench`, and
//! `job_run` runs one job of the service across them (the hidden
//! `kettle job-run`). Everything a user gets wrong ends in
//! a message on stderr and exit code 2 (internal failures: 1, a CPU this
//! build cannot use: 3), never a panic.

mod bench;
mod failure;
mod job_run;
mod progress;
mod ranks;
mod render;
mod run;
mod serve;
mod source;
#[cfg(test)]
mod tests;

pub use serve::{KeysAction, KeysArgs, ServeArgs, StoreAction, StoreArgs, WhichStore};

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kettle_core::{Precision, cpu};

/// Kettle: an exact, fast state-vector quantum circuit emulator.
#[derive(Debug, Parser)]
#[command(name = "kettle", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate a circuit file and print its results.
    Run(RunArgs),
    /// Time the simulation of a circuit file (no sampling); one JSON line.
    Bench(BenchArgs),
    /// Serve the HTTP job API (durable queue in --store or --data-dir).
    Serve(ServeArgs),
    /// Create, list or revoke the API keys of `kettle serve`.
    Keys(KeysArgs),
    /// Maintain the store of `kettle serve` (backups, copies to another store).
    Store(StoreArgs),
    /// Show the SIMD level of this build, the threads, and memory per qubit count.
    Info,
    /// Run one job of `kettle serve` split over MPI ranks: rank 0 reads the
    /// job as JSON on standard input and prints its result as JSON.
    #[command(name = "job-run", hide = true)]
    JobRun(JobRunArgs),
}

/// Options of `kettle job-run`.
#[derive(Debug, clap::Args)]
pub struct JobRunArgs {
    /// Worker threads per rank, at least 1 (default: all available).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub threads: Option<usize>,
    /// The rank count the job was planned for: any other count is refused
    /// (a launcher that started a different number of ranks).
    #[arg(long)]
    pub ranks: Option<u32>,
}

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// OpenQASM 2.0.
    Qasm2,
    /// OpenQASM 3.
    Qasm3,
    /// Kettle's JSON circuit format (see kettle-qasm's `circuit.schema.json`).
    Json,
}

/// Precision of the simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// Double precision (complex128).
    F64,
    /// Single precision (complex64): half the memory.
    F32,
}

/// Options of `kettle run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The circuit file.
    pub file: PathBuf,
    /// Shots to sample when the circuit measures something.
    #[arg(long, default_value_t = 1024)]
    pub shots: u64,
    /// Seed of the random stream (printed when not given).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the final state (circuits that measure nothing).
    #[arg(long)]
    pub statevector: bool,
    /// Print the exact distribution of the classical bits (when every
    /// measurement is final).
    #[arg(long)]
    pub probabilities: bool,
    /// Print the expectation of an observable such as "0.5*Z0 Z1 + X2"
    /// (repeatable).
    #[arg(long = "expect", value_name = "OBSERVABLE")]
    pub expect: Vec<String>,
    /// With --expect: also print each expectation's exact derivatives by
    /// every `input float` and `input angle` of an OpenQASM 3 program
    /// (adjoint method).
    #[arg(long, requires = "expect")]
    pub gradient: bool,
    /// How to read and simulate the file.
    #[command(flatten)]
    pub sim: SimArgs,
    /// Print one JSON object instead of a histogram.
    #[arg(long)]
    pub json: bool,
    /// Write the final state as raw little-endian complex numbers (complex128
    /// at f64, complex64 at f32), for other tools; an empty path writes
    /// nothing (the peer benchmark passes one when it wants no state).
    #[arg(long, value_name = "PATH")]
    pub state_out: Option<String>,
}

/// How a run simulates noise (`kettle_core::Method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// The density matrix for a small noisy circuit whose shots would take
    /// more distinct trajectories than it has amplitudes, else the state
    /// vector.
    Automatic,
    /// A state vector; each shot follows one sampled noise trajectory.
    Statevector,
    /// A density matrix: exact, 4^n entries (at most 15 qubits).
    #[value(name = "density_matrix", alias = "density-matrix")]
    DensityMatrix,
}

impl From<MethodArg> for kettle_core::Method {
    fn from(m: MethodArg) -> kettle_core::Method {
        match m {
            MethodArg::Automatic => kettle_core::Method::Automatic,
            MethodArg::Statevector => kettle_core::Method::Statevector,
            MethodArg::DensityMatrix => kettle_core::Method::DensityMatrix,
        }
    }
}

/// Options of `kettle bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The circuit file.
    pub file: PathBuf,
    /// Timed repeats; the best is reported as `seconds`.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// How to read and simulate the file.
    #[command(flatten)]
    pub sim: SimArgs,
    /// Write the last repeat's final state as raw little-endian complex
    /// numbers; an empty path writes nothing.
    #[arg(long, value_name = "PATH")]
    pub state_out: Option<String>,
    /// Simulate nothing: print what a run split over this many MPI ranks
    /// would exchange, beside a scheme that exchanges a whole slice per
    /// gate on a global qubit.
    #[arg(long, value_name = "RANKS", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=1 << 20))]
    pub plan_ranks: Option<usize>,
}

/// Options `kettle run` and `kettle bench` share: reading the file and
/// configuring the simulator.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Precision of the state.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F64)]
    pub precision: PrecisionArg,
    /// Worker threads, at least 1 (default: all available).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub threads: Option<usize>,
    /// Apply every gate on its own.
    #[arg(long)]
    pub no_fusion: bool,
    /// Largest fused block between passes over the state, in qubits (1–6).
    #[arg(long, value_name = "QUBITS", value_parser = clap::value_parser!(u32).range(1..=6))]
    pub fusion_qubits: Option<u32>,
    /// Cache blocking: `off`, `auto`, or the chunk size in qubits (2–30),
    /// optionally with the number of lowest qubits every chunk holds (`16:10`).
    #[arg(long, value_name = "off|auto|QUBITS[:LOW]", value_parser = parse_blocking)]
    pub blocking: Option<kettle_core::CacheBlocking>,
    /// Largest fused block inside a stage of cache blocking, in qubits (1–6).
    #[arg(long, value_name = "QUBITS", value_parser = clap::value_parser!(u32).range(1..=6))]
    pub stage_fusion_qubits: Option<u32>,
    /// Input format (default: from the file's header, else its extension).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Value of an OpenQASM 3 `input` parameter, as name=value (repeatable).
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub input: Vec<String>,
    /// Values of OpenQASM 3 `input` parameters as a JSON object, like
    /// '{"theta": 0.3}'.
    #[arg(long, value_name = "JSON")]
    pub inputs: Option<String>,
    /// A noise model: Qiskit Aer's `NoiseModel.to_dict(serializable=True)`
    /// saved as JSON, applied to the circuit after parsing.
    #[arg(long, value_name = "FILE.json")]
    pub noise_model: Option<PathBuf>,
    /// How to simulate noise: trajectories on a state vector, a density
    /// matrix, or whichever is cheaper (a noiseless circuit always runs on
    /// a state vector with `automatic`).
    #[arg(long, value_enum, default_value_t = MethodArg::Automatic)]
    pub method: MethodArg,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `--blocking`: `off`, `auto`, a chunk size in qubits, or `QUBITS:LOW`
/// (chunk size, and how many of the lowest qubits every chunk holds;
/// default half the chunk, at most 9).
fn parse_blocking(s: &str) -> Result<kettle_core::CacheBlocking, String> {
    use kettle_core::CacheBlocking;
    let bad =
        || format!("expected off, auto, QUBITS or QUBITS:LOW (QUBITS from 2 to 30), not {s:?}");
    match s {
        "off" => Ok(CacheBlocking::Off),
        "auto" => Ok(CacheBlocking::Auto),
        _ => {
            let (chunk, low) = s.split_once(':').map_or((s, None), |(c, l)| (c, Some(l)));
            let chunk_qubits: u32 = chunk.parse().map_err(|_| bad())?;
            let low_qubits = match low {
                Some(l) => l.parse().map_err(|_| bad())?,
                None => (chunk_qubits / 2).min(9),
            };
            if !(2..=30).contains(&chunk_qubits) || low_qubits >= chunk_qubits {
                return Err(bad());
            }
            Ok(CacheBlocking::Chunks {
                chunk_qubits,
                low_qubits,
            })
        }
    }
}

impl From<Format> for kettle_qasm::SourceFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Qasm2 => kettle_qasm::SourceFormat::Qasm2,
            Format::Qasm3 => kettle_qasm::SourceFormat::Qasm3,
            Format::Json => kettle_qasm::SourceFormat::Json,
        }
    }
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::F64 => Precision::F64,
            PrecisionArg::F32 => Precision::F32,
        }
    }
}

/// Runs `f` on the MPI ranks that started this process, if any; a failure
/// on one rank ends them all (see [`ranks::Ranks::fail`]).
fn across_ranks(
    f: impl FnOnce(Option<&ranks::Ranks>) -> Result<(), failure::Failure>,
) -> Result<(), failure::Failure> {
    let ranks = ranks::Ranks::join()?;
    let outcome = f(ranks.as_ref());
    if let (Err(failure), Some(ranks)) = (&outcome, &ranks) {
        ranks.fail(failure);
    }
    outcome
}

/// Runs the command line; the process's exit code.
pub fn main() -> ExitCode {
    if let Err(e) = cpu::check() {
        let _ = writeln!(std::io::stderr(), "kettle: {e}");
        return ExitCode::from(3);
    }
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => across_ranks(|r| run::run(&args, r)),
        Command::Bench(args) => across_ranks(|r| bench::bench(&args, r)),
        Command::JobRun(args) => across_ranks(|r| job_run::job_run(&args, r)),
        Command::Serve(args) => serve::serve(&args),
        Command::Keys(args) => serve::keys(&args),
        Command::Store(args) => serve::store(&args),
        Command::Info => {
            render::info(&mut std::io::stdout().lock()).map_err(failure::Failure::from)
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let _ = writeln!(std::io::stderr(), "{failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
