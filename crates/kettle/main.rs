//! The `kettle` command.
//!
//! This first version answers `--version`, `--help` and `info` (what this
//! build and this machine can do); `kettle run` and `kettle serve` arrive
//! with the front ends and the job server. The CPU check runs before
//! anything else, so a build for a newer CPU stops with a message instead of
//! crashing on an illegal instruction.

use std::io::Write;
use std::process::ExitCode;

use kettle::{Precision, cpu};

const USAGE: &str = "\
usage: kettle <command>

commands:
  info        what this build and this machine can do (SIMD, threads, memory per qubit count)
  --version   print the version
  --help      print this help
";

fn main() -> ExitCode {
    if let Err(e) = cpu::check() {
        let _ = writeln!(std::io::stderr(), "kettle: {e}");
        return ExitCode::from(3);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();
    let written = match args.first().map(String::as_str) {
        Some("--version" | "-V") => writeln!(out, "kettle {}", env!("CARGO_PKG_VERSION")),
        Some("--help" | "-h" | "help") | None => write!(out, "{USAGE}"),
        Some("info") => info(&mut out),
        Some(other) => {
            let _ = write!(
                std::io::stderr(),
                "kettle: unknown command `{other}`\n\n{USAGE}"
            );
            return ExitCode::from(2);
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`kettle info | head`) is not an error worth a panic.
        Err(_) => ExitCode::from(1),
    }
}

fn info(out: &mut impl Write) -> std::io::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    writeln!(out, "kettle {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(
        out,
        "simd: {} (checked against this CPU: ok)",
        cpu::simd_level()
    )?;
    writeln!(out, "threads available: {threads}")?;
    writeln!(out, "state memory:")?;
    writeln!(out, "  qubits        f64         f32")?;
    for n in (20..=36).step_by(2) {
        writeln!(
            out,
            "  {n:>6} {:>11} {:>11}",
            human(Precision::F64.state_bytes(n)),
            human(Precision::F32.state_bytes(n))
        )?;
    }
    Ok(())
}

fn human(bytes: u128) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.0} {}", units[u])
}
