//! `kettle run` with noise: `--noise-model`, `--method`, and what the
//! reports show (the method, the distinct trajectories, standard errors).

use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::Value;

use crate::failure::EXIT_INPUT;
use crate::{Cli, Command, MethodArg, RunArgs};

/// A folder of its own under the system's temporary folder, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("kettle-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_args(args: &[&str]) -> RunArgs {
    let mut argv = vec!["kettle", "run"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Run(args) => args,
        other => panic!("not run: {other:?}"),
    }
}

/// Simulates as `kettle run` does and renders both outputs.
fn run(args: &RunArgs) -> Result<(String, Value), crate::failure::Failure> {
    let loaded = args.sim.load(&args.file)?;
    let (sim, threads) = args.sim.simulator()?;
    let report = crate::run::simulate::<f64>(&sim, &loaded, args, threads)?;
    let mut human = Vec::new();
    crate::render::human(&mut human, Path::new("c.qasm"), &report).unwrap();
    let mut json = Vec::new();
    crate::render::json(&mut json, &report).unwrap();
    Ok((
        String::from_utf8(human).unwrap(),
        serde_json::from_slice(&json).unwrap(),
    ))
}

const BELL: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\n\
                    h q[0];\ncx q[0],q[1];\nmeasure q -> c;\n";

/// Aer's `NoiseModel` with `depolarizing_error(p, 2)` on every `cx`, as
/// `to_dict(serializable=True)` writes it (Pauli terms as instructions).
fn depolarizing_cx(p: f64) -> String {
    let paulis = ["I", "X", "Y", "Z"];
    let mut instructions = Vec::new();
    let mut probabilities = Vec::new();
    for a in paulis {
        for b in paulis {
            let label = format!("{a}{b}");
            instructions.push(format!(
                r#"[{{"name": "pauli", "qubits": [0, 1], "params": ["{label}"]}}]"#
            ));
            probabilities.push(if label == "II" {
                1.0 - 15.0 * p / 16.0
            } else {
                p / 16.0
            });
        }
    }
    format!(
        r#"{{"errors": [{{"type": "qerror", "operations": ["cx"], "instructions": [{}], "probabilities": {:?}}}]}}"#,
        instructions.join(", "),
        probabilities
    )
}

#[test]
fn method_flag_takes_the_api_names() {
    for (name, want) in [
        ("automatic", MethodArg::Automatic),
        ("statevector", MethodArg::Statevector),
        ("density_matrix", MethodArg::DensityMatrix),
        ("density-matrix", MethodArg::DensityMatrix),
    ] {
        assert_eq!(run_args(&["c.qasm", "--method", name]).sim.method, want);
    }
    assert_eq!(run_args(&["c.qasm"]).sim.method, MethodArg::Automatic);
    assert!(Cli::try_parse_from(["kettle", "run", "c.qasm", "--method", "mps"]).is_err());
    assert_eq!(
        kettle_core::Method::from(MethodArg::DensityMatrix),
        "density_matrix".parse().unwrap()
    );
}

#[test]
fn a_noise_model_runs_as_trajectories_and_says_how_many() {
    let dir = Scratch::new("traj");
    let circuit = dir.write("bell.qasm", BELL);
    let model = dir.write("model.json", &depolarizing_cx(0.2));
    let file = circuit.to_str().unwrap();
    let model = model.to_str().unwrap();
    let args = run_args(&[
        file,
        "--noise-model",
        model,
        "--method",
        "statevector",
        "--shots",
        "2000",
        "--seed",
        "5",
        "--expect",
        "Z0 Z1",
        "--quiet",
    ]);
    let (human, json) = run(&args).unwrap();
    assert_eq!(json["method"], "statevector");
    assert_eq!(json["noisy"], true);
    let trajectories = json["trajectories"].as_u64().unwrap();
    assert!((2..=17).contains(&trajectories), "{json}");
    assert_eq!(json["stats"]["branches"].as_u64(), Some(trajectories));
    assert!(human.contains("with noise"), "{human}");
    assert!(
        human.contains(&format!(
            "method statevector ({trajectories} distinct noise trajectories)"
        )),
        "{human}"
    );
    // Depolarizing noise on cx turns some 00/11 into 01/10.
    let counts = json["counts"].as_object().unwrap();
    let odd = counts.get("01").and_then(Value::as_u64).unwrap_or(0)
        + counts.get("10").and_then(Value::as_u64).unwrap_or(0);
    assert!(odd > 50 && odd < 600, "{counts:?}");
    // ⟨Z0 Z1⟩ = 1 − p = 0.8, estimated over trajectories: a value ± an error.
    let e = &json["expectation"][0];
    let (value, err) = (
        e["value"].as_f64().unwrap(),
        e["std_error"].as_f64().unwrap(),
    );
    assert!(err > 0.0 && value < 1.0 && value > 0.6, "{e}");
    assert!(
        human.contains("⟨Z0 Z1⟩ = ") && human.contains(" ± "),
        "{human}"
    );
    assert!(json["timing"]["noise_model_seconds"].as_f64().is_some());
}

#[test]
fn a_density_matrix_gives_exact_values_and_probabilities() {
    let dir = Scratch::new("dm");
    let circuit = dir.write("bell.qasm", BELL);
    let model = dir.write("model.json", &depolarizing_cx(0.2));
    let args = run_args(&[
        circuit.to_str().unwrap(),
        "--noise-model",
        model.to_str().unwrap(),
        "--method",
        "density_matrix",
        "--probabilities",
        "--expect",
        "Z0 Z1",
        "--quiet",
    ]);
    let (human, json) = run(&args).unwrap();
    assert_eq!(json["method"], "density_matrix");
    assert!(json.get("trajectories").is_none(), "{json}");
    // 8 of the 16 two-qubit Paulis, each of probability p/16, anticommute
    // with ZZ: ⟨ZZ⟩ = 1 − 2·8·p/16.
    let want = 1.0 - 2.0 * 8.0 * 0.2 / 16.0;
    let e = &json["expectation"][0];
    assert!((e["value"].as_f64().unwrap() - want).abs() < 1e-12, "{e}");
    assert_eq!(e["std_error"].as_f64(), Some(0.0));
    assert!(!human.contains(" ± "), "{human}");
    let p = &json["probabilities"];
    assert!(
        (p["01"].as_f64().unwrap() - 0.2 * 4.0 / 16.0).abs() < 1e-12,
        "{p}"
    );
    assert!(human.contains("method density_matrix\n"), "{human}");
}

#[test]
fn a_noiseless_run_names_its_method_and_refuses_nothing_new() {
    let dir = Scratch::new("ideal");
    let circuit = dir.write("bell.qasm", BELL);
    let args = run_args(&[circuit.to_str().unwrap(), "--shots", "100", "--quiet"]);
    let (human, json) = run(&args).unwrap();
    assert_eq!(json["method"], "statevector");
    assert_eq!(json["noisy"], false);
    assert!(json.get("trajectories").is_none());
    assert!(human.contains("method statevector\n"), "{human}");
}

#[test]
fn braket_pragmas_are_noise_without_a_model() {
    let dir = Scratch::new("pragma");
    let circuit = dir.write(
        "noisy.qasm",
        "OPENQASM 3;\ninclude \"stdgates.inc\";\nqubit[1] q;\nbit[1] c;\nx q[0];\n#pragma braket noise bit_flip(0.5) q[0]\nc = measure q;\n",
    );
    let args = run_args(&[
        circuit.to_str().unwrap(),
        "--shots",
        "400",
        "--seed",
        "1",
        "--quiet",
    ]);
    let (_, json) = run(&args).unwrap();
    assert_eq!(json["noisy"], true);
    let zeros = json["counts"]["0"].as_u64().unwrap_or(0);
    assert!(zeros > 120 && zeros < 280, "{json}");
    // No gradient of a noisy circuit.
    let args = run_args(&[
        circuit.to_str().unwrap(),
        "--expect",
        "Z0",
        "--gradient",
        "--quiet",
    ]);
    let err = run(&args).unwrap_err();
    assert_eq!(err.exit_code(), EXIT_INPUT, "{err}");
    assert!(err.to_string().contains("noiseless"), "{err}");
}

#[test]
fn noise_model_errors_name_the_file_and_the_place() {
    let dir = Scratch::new("bad");
    let circuit = dir.write("bell.qasm", BELL);
    let file = circuit.to_str().unwrap();
    let check = |model: &Path, wants: &[&str]| {
        let args = run_args(&[file, "--noise-model", model.to_str().unwrap(), "--quiet"]);
        let err = run(&args).unwrap_err();
        assert_eq!(err.exit_code(), EXIT_INPUT, "{err}");
        let text = err.to_string();
        for w in wants {
            assert!(text.contains(w), "{w:?} not in {text}");
        }
    };
    check(
        &dir.0.join("missing.json"),
        &["--noise-model", "missing.json", "cannot read"],
    );
    let syntax = dir.write("syntax.json", "{\"errors\": [\n  {,}]}");
    check(&syntax, &["syntax.json:2:4:", "not JSON"]);
    let bad = dir.write(
        "bad.json",
        r#"{"errors": [{"type": "qerror", "operations": ["x"],
            "instructions": [[{"name": "id", "qubits": [0]}]], "probabilities": [0.5]}]}"#,
    );
    check(
        &bad,
        &["bad.json: $.errors[0]", "to_dict(serializable=True)"],
    );
    let wide = dir.write(
        "wide.json",
        &depolarizing_cx(0.1).replace("\"cx\"", "\"h\""),
    );
    check(&wide, &["wide.json", "cannot apply it to", "bell.qasm"]);
}
