//! The `kettle` command as a user runs it.

use crate::util::{kettle, stdout};

#[test]
fn version_and_help() {
    let v = kettle(&["--version"]);
    assert!(v.status.success());
    assert_eq!(
        stdout(&v).trim(),
        format!("kettle {}", env!("CARGO_PKG_VERSION"))
    );
    let h = kettle(&["--help"]);
    assert!(h.status.success());
    assert!(stdout(&h).contains("info"));
}

#[test]
fn info_reports_simd_and_memory() {
    let o = kettle(&["info"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.contains("simd: "), "{text}");
    // 30 qubits at f64 take 16 GiB, at f32 8 GiB.
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("30 "))
        .expect("row for 30 qubits");
    assert!(row.contains("16 GiB") && row.contains("8 GiB"), "{row}");
}

#[test]
fn unknown_command_fails_with_usage() {
    let o = kettle(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown command `frobnicate`") && err.contains("usage:"));
}
