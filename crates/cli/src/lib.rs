//! The `kettle` command line: `kettle run FILE` for students and quick
//! checks, `kettle info` for what a build can do.
//!
//! # Brief overview
//!
//! [`main`] checks the CPU, parses arguments with clap ([`Cli`]) and
//! dispatches: `run` ([`run`]) reads a circuit file, simulates it with
//! `kettle-core` and prints either a histogram for a person or one JSON
//! object for a script ([`render`]). Everything a user gets wrong ends in a
//! one-line message on stderr and a non-zero exit code, never a panic.

mod render;
mod run;

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
    /// Show the SIMD level of this build, the threads, and memory per qubit count.
    Info,
}

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// OpenQASM 2.0.
    Qasm2,
    /// OpenQASM 3 (not supported yet: refused with a message).
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
    /// Precision of the state.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F64)]
    pub precision: PrecisionArg,
    /// Worker threads (default: all available).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Apply every gate on its own.
    #[arg(long)]
    pub no_fusion: bool,
    /// Input format (default: from the file's first statement).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Print one JSON object instead of a histogram.
    #[arg(long)]
    pub json: bool,
    /// Write the final state as raw little-endian complex numbers (complex128
    /// at f64, complex64 at f32), for other tools; an empty path writes
    /// nothing (the peer benchmark passes one when it wants no state).
    #[arg(long, value_name = "PATH")]
    pub state_out: Option<String>,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::F64 => Precision::F64,
            PrecisionArg::F32 => Precision::F32,
        }
    }
}

/// Runs the command line; the process's exit code.
pub fn main() -> ExitCode {
    if let Err(e) = cpu::check() {
        let _ = writeln!(std::io::stderr(), "kettle: {e}");
        return ExitCode::from(3);
    }
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Info => render::info(&mut std::io::stdout().lock()).map_err(run::Failure::from),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let _ = writeln!(std::io::stderr(), "{failure}");
            ExitCode::from(1)
        }
    }
}
