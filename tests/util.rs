//! Helpers: running the real `kettle` binary.

use std::process::{Command, Output};

/// Runs the `kettle` binary built for these tests with `args`.
pub(crate) fn kettle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args(args)
        .output()
        .expect("the kettle binary runs")
}

/// Standard output as text.
pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
