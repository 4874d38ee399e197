//! The `kettle` command: see the `kettle-cli` crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    kettle_cli::main()
}
