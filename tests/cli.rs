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
fn kettle_simd_lowers_the_level_and_a_bad_value_stops_the_binary() {
    let with = |value: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kettle"))
            .arg("info")
            .env("KETTLE_SIMD", value)
            .output()
            .unwrap()
    };
    let portable = with("portable");
    assert!(portable.status.success());
    assert!(
        stdout(&portable).contains("simd: portable (forced by KETTLE_SIMD; this CPU runs "),
        "{}",
        stdout(&portable)
    );
    // The portable kernels give the distribution the widest ones give.
    let probabilities = |value: &str| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_kettle"))
            .args([
                "run",
                &sample("qaoa_maxcut.qasm"),
                "--json",
                "--probabilities",
            ])
            .env("KETTLE_SIMD", value)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["probabilities"].as_object().unwrap().clone()
    };
    let (portable, widest) = (probabilities("portable"), probabilities(""));
    assert_eq!(portable.len(), widest.len());
    for (k, p) in &portable {
        let (p, q) = (p.as_f64().unwrap(), widest[k].as_f64().unwrap());
        assert!((p - q).abs() < 1e-12, "{k}: {p} vs {q}");
    }
    for bad in ["sse9", "AVX2"] {
        let o = with(bad);
        assert_eq!(o.status.code(), Some(3));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("KETTLE_SIMD") && err.contains(bad), "{err}");
    }
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
    // The service's command for a job across MPI ranks, started alone.
    let alone = kettle(&["job-run"]);
    assert_eq!(alone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&alone.stderr).contains("under mpirun"));
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
    std::fs::write(&v3, "OPENQASM 3.0;\nqubit q;\ndefcal x $0 { }\n").unwrap();
    let o = kettle(&["run", v3.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("v3.qasm:3:1:") && err.contains("defcal"),
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
fn run_gradient_gives_exact_derivatives_by_every_input() {
    let ansatz = format!(
        "{}/circuits/qasm3/vqe_ansatz.qasm",
        env!("CARGO_MANIFEST_DIR")
    );
    let args = [
        "run",
        &ansatz,
        "--input",
        "theta=0.3",
        "--input",
        "phi=1.1",
        "--expect",
        "Z0 Z1",
        "--expect",
        "X0 X1",
        "--gradient",
    ];
    let v = json(&kettle(&[&args[..], &["--json"]].concat()));
    // ⟨Z0 Z1⟩ = cos φ and ⟨X0 X1⟩ = sin θ.
    let g = |i: usize, name: &str| v["gradients"][i]["gradient"][name].as_f64().unwrap();
    assert!((g(0, "phi") + 1.1f64.sin()).abs() < 1e-10, "{v}");
    assert!(g(0, "theta").abs() < 1e-10, "{v}");
    assert!((g(1, "theta") - 0.3f64.cos()).abs() < 1e-10, "{v}");
    assert!(g(1, "phi").abs() < 1e-10, "{v}");
    assert!((v["gradients"][0]["value"].as_f64().unwrap() - 1.1f64.cos()).abs() < 1e-12);
    assert!(v["timing"]["gradient_seconds"].as_f64().is_some(), "{v}");
    let human = stdout(&kettle(&args));
    assert!(
        human.contains("gradient of ⟨Z0 Z1⟩:") && human.contains("∂/∂phi = "),
        "{human}"
    );
    // Refused, with the reason: without --expect, and for OpenQASM 2.
    let alone = kettle(&[
        "run",
        &ansatz,
        "--input",
        "theta=0.3",
        "--input",
        "phi=1.1",
        "--gradient",
    ]);
    assert_eq!(alone.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&alone.stderr).contains("--expect"));
    let qasm2 = kettle(&["run", &sample("bell.qasm"), "--expect", "Z0", "--gradient"]);
    assert_eq!(qasm2.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&qasm2.stderr).contains("only OpenQASM 3"),
        "{qasm2:?}"
    );
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
        // Said once, and in words rather than as an OS error.
        assert_eq!(err.matches("cannot include").count(), 1, "{err}");
        assert!(!err.contains("os error"), "{err}");
        assert!(err.contains("files in the program's own folder"), "{err}");
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
fn openqasm2_without_its_version_line_runs_as_qiskit_reads_it() {
    let dir = scratch("headerless");
    let file = dir.join("bell.qasm");
    std::fs::write(
        &file,
        "// from a benchmark suite\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\n\
         h q[0];\ncx q[0],q[1];\nmeasure q -> c;\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    for args in [
        vec!["run", path, "--json"],
        vec!["run", path, "--json", "--format", "qasm2"],
    ] {
        let v = json(&kettle(&args));
        let counts = v["counts"].as_object().unwrap();
        let mut keys: Vec<&String> = counts.keys().collect();
        keys.sort();
        assert_eq!(keys, ["00", "11"], "{args:?}: {v}");
    }
    // Read as OpenQASM 3, its library is named for what it is.
    let o = kettle(&["run", path, "--format", "qasm3"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bell.qasm:2:") && err.contains("the OpenQASM 2 library"),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
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

// --- The store: `--store URL`, `kettle keys`, `kettle store copy` ---------

/// `kettle serve ARGS` as a child process on a free loopback port, with
/// every line it logs kept; `Err` with those lines if it exits before
/// listening.
struct Serving {
    child: std::process::Child,
    base: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Serving {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Result<Serving, String> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kettle"))
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .env("KETTLE_WORKERS", "1")
            .env("KETTLE_SIM_THREADS", "1")
            .env("KETTLE_SHUTDOWN_GRACE_SECONDS", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kettle serve starts");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let addr = line
                    .split("listening on http://")
                    .nth(1)
                    .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned());
                lines.lock().unwrap().push(line);
                if let Some(addr) = addr
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
            }
            // The sender goes with the thread: a server that exits before
            // listening ends the wait at once.
        });
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(addr) => Ok(Serving {
                child,
                base: format!("http://{addr}"),
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(log.lock().unwrap().join("\n"))
            }
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `kettle ARGS` with `env` added.
fn kettle_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the kettle binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_its_store_as_a_url_flag_or_variable() {
    use crate::server_util::{Api, BELL, job};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = format!("sqlite:{}", data.display());
    let server = Serving::start(&["--store", &store], &[]).unwrap();
    let log = server.log();
    assert!(log.contains(&format!("(store {store},")), "{log}");
    let api = Api::new(server.base.clone(), None);
    let r = api
        .post_job(job(BELL, serde_json::json!({"shots": 10})), "?wait=30")
        .await;
    assert_eq!(r.body["status"], "completed", "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    drop(server);
    assert!(data.join("kettle.db").is_file());
    // The same folder through KETTLE_STORE, and through --data-dir.
    for (args, env) in [
        (vec![], vec![("KETTLE_STORE", store.as_str())]),
        (vec!["--data-dir", data.to_str().unwrap()], vec![]),
    ] {
        let server = Serving::start(&args, &env).unwrap();
        assert!(server.log().contains(&format!("(store {store},")));
        let api = Api::new(server.base.clone(), None);
        assert_eq!(api.get_job(&id, "").await.body["status"], "completed");
    }
    // A flag overrides the configuration file's store.
    let toml = dir.path().join("kettle.toml");
    std::fs::write(&toml, "store = \"sqlite:/nonexistent/elsewhere\"\n").unwrap();
    let server = Serving::start(
        &[
            "--config",
            toml.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    )
    .unwrap();
    assert!(server.log().contains(&format!("(store {store},")));
}

#[test]
fn store_and_data_dir_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let store = format!("sqlite:{d}");
    for args in [
        vec!["serve", "--store", &store, "--data-dir", d],
        vec!["keys", "list", "--store", &store, "--data-dir", d],
        vec![
            "store",
            "backup",
            "x.db",
            "--data-dir",
            d,
            "--store",
            &store,
        ],
    ] {
        let o = kettle(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("--store") && err.contains("--data-dir"),
            "{err}"
        );
    }
    // Both in the configuration (file or environment).
    let both = [("KETTLE_STORE", store.as_str()), ("KETTLE_DATA_DIR", d)];
    for args in [vec!["serve"], vec!["keys", "list"]] {
        let o = kettle_env(&args, &both);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("`store`") && err.contains("`data_dir`"),
            "{err}"
        );
    }
    // `store copy` takes its source once.
    let o = kettle(&[
        "store", "copy", "--from", &store, "--to", "sqlite:x", "--store", &store,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--from"), "{}", stderr(&o));
}

#[test]
fn an_unknown_store_scheme_is_refused() {
    for args in [
        vec!["serve", "--store", "mysql://kettle@db/kettle"],
        vec!["keys", "list", "--store", "mysql://kettle@db/kettle"],
        vec![
            "store",
            "copy",
            "--from",
            "mysql://kettle@db/kettle",
            "--to",
            "sqlite:x",
        ],
    ] {
        let o = kettle(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("unknown store `mysql://`") && err.contains("postgres://"),
            "{err}"
        );
    }
    let o = kettle_env(&["serve"], &[("KETTLE_STORE", "mysql://kettle@db/kettle")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("mysql://"), "{}", stderr(&o));
    let o = kettle(&["serve", "--store", "sqlite:"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// A password no message may show.
const CANARY: &str = "Canary-s3cret";

/// `url` with [`CANARY`] as its password (replacing any it has).
fn with_canary(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (user, host) = authority
        .rsplit_once('@')
        .unwrap_or(("postgres", authority));
    let user = user.split(':').next().unwrap();
    format!("{scheme}://{user}:{CANARY}@{host}{path}")
}

/// The password in `url`, if it has one.
fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, pw)| pw.to_owned())
}

#[test]
fn a_store_password_is_never_shown() {
    // Nothing listens on port 1: every command fails, and says why without
    // the password.
    let url = with_canary("postgres://kettle@127.0.0.1:1/kettle");
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("b.db");
    let to = format!("sqlite:{}", dir.path().join("copy").display());
    for args in [
        vec!["serve", "--addr", "127.0.0.1:0", "--store", &url],
        vec!["keys", "list", "--store", &url],
        vec!["keys", "create", "team", "--store", &url],
        vec!["store", "backup", backup.to_str().unwrap(), "--store", &url],
        vec!["store", "copy", "--from", &url, "--to", &to],
    ] {
        let o = kettle(&args);
        assert!(!o.status.success(), "{args:?}");
        let err = stderr(&o);
        assert!(!err.contains(CANARY), "{args:?}: {err}");
        assert!(!stdout(&o).contains(CANARY), "{args:?}");
    }
    let o = kettle(&["store", "backup", backup.to_str().unwrap(), "--store", &url]);
    assert!(
        stderr(&o).contains("pg_dump") && stderr(&o).contains("kettle:***@127.0.0.1:1"),
        "{}",
        stderr(&o)
    );
    // The start-up line names the store, without the password, on a real
    // PostgreSQL (a throwaway one, or the one KETTLE_TEST_POSTGRES names).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(pg) = rt.block_on(kettle_service::store::test_postgres::test_postgres()) else {
        return;
    };
    let server = pg.url().to_owned();
    // A server that trusts its clients ignores a password; one that checks
    // it was given its own.
    let (url, secret) = match password_of(&server) {
        Some(password) => (server.clone(), password),
        None => (with_canary(&server), CANARY.to_owned()),
    };
    let running = Serving::start(&["--store", &url], &[]).unwrap_or_else(|log| panic!("{log}"));
    let log = running.log();
    assert!(log.contains("(store postgres"), "{log}");
    assert!(log.contains(":***@"), "{log}");
    assert!(!log.contains(&secret), "the password is in the log");
}

/// Stops a server as an operator does (SIGTERM) and waits for it.
fn terminate(mut server: Serving) {
    let pid = server.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_moves_jobs_results_and_keys_and_checks_the_counts() {
    use crate::server_util::{Api, BELL, RawBody, job};
    use reqwest::Method;
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let from = format!("sqlite:{}", dir.path().join("from").display());
    let to = format!("sqlite:{}", dir.path().join("to").display());
    let create = |tenant: &str| {
        let o = kettle(&["keys", "create", tenant, "--store", &from]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_owned()
    };
    let alice = create("alice");
    let bob = create("bob");
    let bob_id = bob.trim_start_matches("kt_").split('_').next().unwrap();
    assert!(
        kettle(&["keys", "revoke", bob_id, "--store", &from])
            .status
            .success()
    );

    // Jobs with results, one of them with an idempotency key.
    let server = Serving::start(&["--store", &from], &[]).unwrap();
    let api = Api::new(server.base.clone(), Some(&alice));
    let mut done = Vec::new();
    for seed in 1..=3 {
        let r = api
            .post_job(job(BELL, json!({"shots": 50, "seed": seed})), "?wait=30")
            .await;
        assert_eq!(r.body["status"], "completed", "{}", r.body);
        done.push(r.body.clone());
    }
    let keyed_body = job(BELL, json!({"shots": 20, "seed": 9}));
    let keyed = |api: Api, body: serde_json::Value| async move {
        api.send(
            Method::POST,
            "/v1/jobs",
            "/v1/jobs?wait=30",
            Some(RawBody::Json(body)),
            &[("Idempotency-Key", "copy-1")],
        )
        .await
    };
    let first = keyed(api.clone(), keyed_body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["status"], "completed", "{}", first.body);
    done.push(first.body.clone());

    // Not while a server runs on the source folder.
    let busy = kettle(&["store", "copy", "--from", &from, "--to", &to]);
    assert_eq!(busy.status.code(), Some(2), "{}", stderr(&busy));
    let err = stderr(&busy);
    assert!(
        err.contains("source") && err.contains(&format!("PID {}", server.child.id())),
        "{err}"
    );
    terminate(server);

    let copy = kettle(&["store", "copy", "--from", &from, "--to", &to]);
    assert!(copy.status.success(), "{}", stderr(&copy));
    assert_eq!(
        stdout(&copy),
        "jobs: 4 in the source, 4 copied, 0 already in the destination\n\
         API keys: 2 in the source, 2 copied, 0 already in the destination\n"
    );
    // Again (the source given as the store the command works on): nothing
    // new.
    let again = kettle(&["store", "copy", "--to", &to, "--store", &from]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        stdout(&again),
        "jobs: 4 in the source, 0 copied, 4 already in the destination\n\
         API keys: 2 in the source, 0 copied, 2 already in the destination\n"
    );

    // The copy serves what the original did: results, the idempotency key,
    // the keys (the revoked one still revoked).
    let server = Serving::start(&["--store", &to], &[]).unwrap();
    let api = Api::new(server.base.clone(), Some(&alice));
    for original in &done {
        let id = original["id"].as_str().unwrap();
        let r = api.get_job(id, "").await;
        assert_eq!(r.body["status"], "completed", "{id}: {}", r.body);
        assert_eq!(r.body["result"], original["result"], "{id}");
    }
    let retried = keyed(api.clone(), keyed_body).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.body["id"], first.body["id"]);
    let revoked = Api::new(server.base.clone(), Some(&bob));
    assert_eq!(revoked.get_job("x", "").await.status, 401);
    drop(server);
    let list = kettle(&["keys", "list", "--store", &to]);
    let listed = stdout(&list);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.contains("bob") && l.contains("revoked")),
        "{listed}"
    );
}
