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
    assert!(err.contains("frobnicate") && err.contains("Usage"), "{err}");
    let zero = kettle(&["run", &sample("bell.qasm"), "--threads", "0"]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--threads"));
}

fn sample(name: &str) -> String {
    format!("{}/circuits/qasm2/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

#[test]
fn run_prints_a_histogram() {
    let o = kettle(&["run", &sample("bell.qasm"), "--seed", "3", "--shots", "200"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.contains("counts (200 shots, seed 3)"), "{text}");
    assert!(
        text.contains("  00  █") && text.contains("  11  █"),
        "{text}"
    );
}

#[test]
fn run_json_gives_counts_probabilities_and_expectations() {
    let o = kettle(&[
        "run",
        &sample("ghz.qasm"),
        "--json",
        "--seed",
        "1",
        "--shots",
        "300",
        "--probabilities",
        "--expect",
        "Z0 Z4",
        "--precision",
        "f32",
        "--threads",
        "1",
    ]);
    let v = json(&o);
    let counts = v["counts"].as_object().unwrap();
    assert_eq!(counts.len(), 2);
    assert_eq!(
        counts["00000"].as_u64().unwrap() + counts["11111"].as_u64().unwrap(),
        300
    );
    assert!((v["probabilities"]["11111"].as_f64().unwrap() - 0.5).abs() < 1e-6);
    assert!((v["expectation"][0]["value"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    assert_eq!(v["precision"], "complex64");
    assert_eq!(v["seed"], 1);
    assert!(v["seconds"].as_f64().unwrap() >= 0.0);
}

#[test]
fn run_writes_the_state_of_a_unitary_circuit() {
    let dir = std::env::temp_dir().join(format!("kettle-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("h.qasm");
    std::fs::write(
        &src,
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nh q[0];\nx q[1];\n",
    )
    .unwrap();
    let raw = dir.join("state.bin");
    let o = kettle(&[
        "run",
        src.to_str().unwrap(),
        "--json",
        "--statevector",
        "--state-out",
        raw.to_str().unwrap(),
    ]);
    let v = json(&o);
    assert!(v.get("counts").is_none());
    assert_eq!(
        v["stats"]["branches"], 1,
        "a circuit that measures nothing is still simulated"
    );
    let r = std::f64::consts::FRAC_1_SQRT_2;
    let amps: Vec<[f64; 2]> = serde_json::from_value(v["statevector"].clone()).unwrap();
    assert_eq!(amps, vec![[0.0, 0.0], [0.0, 0.0], [r, 0.0], [r, 0.0]]);
    let bytes = std::fs::read(&raw).unwrap();
    assert_eq!(bytes.len(), 4 * 16);
    assert_eq!(f64::from_le_bytes(bytes[32..40].try_into().unwrap()), r);
    // The peer harness passes an empty path when it wants no state.
    assert!(
        kettle(&["run", src.to_str().unwrap(), "--json", "--state-out", ""])
            .status
            .success()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_reads_json_circuits() {
    let dir = std::env::temp_dir().join(format!("kettle-cli-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("bell.json");
    std::fs::write(
        &src,
        r#"{"qubits": 2, "clbits": 2, "ops": [{"gate": "h", "qubits": [0]}, {"gate": "cx", "qubits": [0, 1]},
            {"measure": 0, "clbit": 0}, {"measure": 1, "clbit": 1}]}"#,
    )
    .unwrap();
    let v = json(&kettle(&[
        "run",
        src.to_str().unwrap(),
        "--json",
        "--shots",
        "100",
        "--seed",
        "2",
    ]));
    let counts = v["counts"].as_object().unwrap();
    assert_eq!(
        counts["00"].as_u64().unwrap() + counts["11"].as_u64().unwrap(),
        100
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_reports_source_errors_with_line_and_column() {
    let dir = std::env::temp_dir().join(format!("kettle-cli-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("bad.qasm");
    std::fs::write(
        &src,
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nh q[0]\ncx q[0], q[1];\n",
    )
    .unwrap();
    let o = kettle(&["run", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    // The `;` missing at the end of line 4 is reported there.
    assert!(err.contains("bad.qasm:4:7: expected `;`"), "{err}");
    let v3 = dir.join("v3.qasm");
    std::fs::write(&v3, "OPENQASM 3.0;\nqubit q;\ndelay[100ns] q;\n").unwrap();
    let o = kettle(&["run", v3.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("v3.qasm:3:1:") && err.contains("delay"),
        "{err}"
    );
    let bad_json = dir.join("bad.json");
    std::fs::write(
        &bad_json,
        r#"{"qubits": 2, "ops": [{"gate": "h", "qubits": [0]}, {"gate": "foo", "qubits": [1]}]}"#,
    )
    .unwrap();
    let o = kettle(&["run", bad_json.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("$.ops[1].gate: unknown gate"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let reset_only = dir.join("reset.qasm");
    std::fs::write(
        &reset_only,
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\nh q[0];\nreset q[0];\n",
    )
    .unwrap();
    let v = json(&kettle(&["run", reset_only.to_str().unwrap(), "--json"]));
    assert_eq!(
        v["stats"]["branches"], 1,
        "a circuit with reset and no measurement still runs"
    );
    let missing = kettle(&["run", dir.join("nope.qasm").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A fresh folder for one test's files.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kettle-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn bench_prints_one_json_line_and_the_state() {
    let dir = scratch("bench");
    let raw = dir.join("state.bin");
    let o = kettle(&[
        "bench",
        &sample("qft4.qasm"),
        "--repeat",
        "3",
        "--threads",
        "1",
        "--precision",
        "f32",
        "--state-out",
        raw.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let best = runs
        .iter()
        .map(|r| r.as_f64().unwrap())
        .fold(f64::MAX, f64::min);
    assert_eq!(v["seconds"].as_f64().unwrap(), best);
    assert_eq!(
        (v["threads"].as_u64(), v["precision"].as_str()),
        (Some(1), Some("complex64"))
    );
    assert!(v["gates"].as_u64().unwrap() > 0);
    // complex64 amplitudes of a 4-qubit state, normalised.
    let bytes = std::fs::read(&raw).unwrap();
    assert_eq!(bytes.len(), 16 * 8);
    let norm: f32 = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()).powi(2))
        .sum();
    assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    let o = kettle(&["bench", &sample("qft4.qasm"), "--repeat", "0"]);
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn includes_are_read_from_the_source_folder_only() {
    let dir = scratch("include");
    let inner = dir.join("inner");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(inner.join("flip.inc"), "gate flip a { x a; }\n").unwrap();
    std::fs::write(dir.join("outside.inc"), "gate flip a { x a; }\n").unwrap();
    let program = |include: &str| {
        format!(
            "OPENQASM 2.0;\ninclude \"qelib1.inc\";\ninclude \"{include}\";\nqreg q[1];\nflip q[0];\n"
        )
    };
    let good = inner.join("good.qasm");
    std::fs::write(&good, program("flip.inc")).unwrap();
    let v = json(&kettle(&[
        "run",
        good.to_str().unwrap(),
        "--json",
        "--statevector",
    ]));
    assert_eq!(v["statevector"][1][0], 1.0);
    for include in ["../outside.inc", "/etc/hostname", "missing.inc"] {
        let bad = inner.join("bad.qasm");
        std::fs::write(&bad, program(include)).unwrap();
        let o = kettle(&["run", bad.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{include}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("bad.qasm:3:") && err.contains(include),
            "{err}"
        );
    }
    // An error inside the included file names that file.
    std::fs::write(inner.join("broken.inc"), "gate flip a { nope a; }\n").unwrap();
    let uses_broken = inner.join("uses_broken.qasm");
    std::fs::write(&uses_broken, program("broken.inc")).unwrap();
    let o = kettle(&["run", uses_broken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("broken.inc:1:15"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn openqasm3_inputs_come_from_the_command_line() {
    let ansatz = format!(
        "{}/circuits/qasm3/vqe_ansatz.qasm",
        env!("CARGO_MANIFEST_DIR")
    );
    let v = json(&kettle(&[
        "run",
        &ansatz,
        "--json",
        "--input",
        "theta=0.3",
        "--inputs",
        r#"{"phi": 1.1}"#,
        "--expect",
        "Z0 Z1",
        "--expect",
        "X0 X1",
    ]));
    let value = |i: usize| v["expectation"][i]["value"].as_f64().unwrap();
    assert!((value(0) - 1.1f64.cos()).abs() < 1e-12, "{v}");
    assert!((value(1) - 0.3f64.sin()).abs() < 1e-12, "{v}");
    let missing = kettle(&["run", &ansatz, "--input", "theta=0.3"]);
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("vqe_ansatz.qasm:") && err.contains("phi"),
        "{err}"
    );
    let extra = kettle(&[
        "run",
        &ansatz,
        "--inputs",
        r#"{"theta": 1, "phi": 2, "psi": 3}"#,
    ]);
    assert_eq!(extra.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&extra.stderr).contains("psi"));
}
