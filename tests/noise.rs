//! Noise over HTTP (issue 18): Braket's noise pragmas and Qiskit Aer's
//! serialised noise models, by both methods, against `kettle-reference`,
//! which follows every Kraus operator on a density matrix; every response
//! checked against `openapi.yaml`.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_util::*;

/// Braket's pragmas after the gates they follow, every kind of channel.
const PRAGMAS: &str = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[3] q;\nbit[3] c;\n\
    h q[0];\n#pragma braket noise depolarizing(0.05) q[0]\n\
    cx q[0], q[1];\n#pragma braket noise two_qubit_depolarizing(0.1) q[0], q[1]\n\
    ry(0.7) q[2];\n#pragma braket noise amplitude_damping(0.2) q[2]\n\
    #pragma braket noise kraus([[0.9486832980505138, 0], [0, 0.9486832980505138]], [[0, 0.31622776601683794], [0.31622776601683794, 0]]) q[1]\n\
    cx q[1], q[2];\n#pragma braket noise phase_damping(0.3) q[1]\n\
    #pragma braket noise generalized_amplitude_damping(0.1, 0.8) q[0]\n\
    c = measure q;\n";

fn reference_circuit(source: &str) -> kettle::Circuit {
    kettle::qasm::parse_qasm3(source, &Default::default()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// `Tr(ρP)` of the reference's density matrix before the final
/// measurements, for a Pauli term.
fn exact(source: &str, term: &[(u32, char)]) -> f64 {
    let unmeasured = reference_circuit(&source.replace("c = measure q;", ""));
    kettle_reference::density_expectation(&kettle_reference::density_matrix(&unmeasured), term)
}

fn counts(v: &Value) -> BTreeMap<String, u64> {
    serde_json::from_value(v.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noisy_jobs_run_by_both_methods() {
    let dir = tempfile::tempdir().unwrap();
    let server = in_process(test_config(dir.path()));
    let api = Api::new(server.base.clone(), None);
    let circuit = reference_circuit(PRAGMAS);
    let want = kettle_reference::exact_distribution(&circuit);

    // Exact probabilities and expectations: automatic picks the density
    // matrix for them.
    let r = api
        .post_job(
            json!({"program": {"format": "qasm3", "source": PRAGMAS},
                   "result_types": ["probabilities", {"expectation": ["Z0", "X0 X1", "Y1 Z2"]}]}),
            "?wait=30",
        )
        .await;
    assert_eq!(r.body["status"], "completed", "{}", r.body);
    assert_eq!(r.body["method"], "density_matrix");
    assert_eq!(r.body["noisy"], true);
    let ex = &r.body["result"]["executions"][0];
    assert_eq!(ex["method"], "density_matrix");
    let probabilities: BTreeMap<String, f64> =
        serde_json::from_value(ex["probabilities"].clone()).unwrap();
    assert_eq!(probabilities.len(), want.len());
    for (k, p) in &want {
        assert!(
            (probabilities[k] - p).abs() < 1e-10,
            "{k}: {} vs {p}",
            probabilities[k]
        );
    }
    let terms: [&[(u32, char)]; 3] = [&[(0, 'Z')], &[(0, 'X'), (1, 'X')], &[(1, 'Y'), (2, 'Z')]];
    for (e, term) in ex["expectations"].as_array().unwrap().iter().zip(terms) {
        assert!((f(&e["value"]) - exact(PRAGMAS, term)).abs() < 1e-10, "{e}");
        assert_eq!(f(&e["std_error"]), 0.0);
    }

    // Trajectories: counts by chi-square, expectations within their error.
    let shots = 20_000;
    let r = api
        .post_job(
            json!({"program": {"format": "qasm3", "source": PRAGMAS}, "shots": shots, "seed": 5,
                   "method": "statevector",
                   "result_types": ["counts", {"expectation": ["Z0", "X0 X1"]}]}),
            "?wait=60",
        )
        .await;
    assert_eq!(r.body["status"], "completed", "{}", r.body);
    let ex = &r.body["result"]["executions"][0];
    assert_eq!(ex["method"], "statevector");
    let p = kettle_reference::chi_square_p_value(&counts(&ex["counts"]), &want, shots);
    assert!(p > 1e-4, "chi-square p = {p}");
    for (e, term) in ex["expectations"].as_array().unwrap().iter().zip(terms) {
        let se = f(&e["std_error"]);
        assert!(se > 0.0, "{e}");
        assert!(
            (f(&e["value"]) - exact(PRAGMAS, term)).abs() < 5.0 * se,
            "{e}"
        );
    }

    // Expectations alone under trajectories run the default shots.
    let r = api
        .post_job(
            json!({"program": {"format": "qasm3", "source": PRAGMAS}, "method": "statevector",
                   "result_types": [{"expectation": ["Z0"]}]}),
            "?wait=60",
        )
        .await;
    let ex = &r.body["result"]["executions"][0];
    assert_eq!(ex["shots"], 1024, "{}", r.body);
    assert!(ex.get("counts").is_none());
    assert!(f(&ex["expectations"][0]["std_error"]) > 0.0, "{ex}");

    // A noiseless program's job says so.
    let r = api
        .post_job(job(BELL_QASM2, json!({"shots": 10})), "?wait=30")
        .await;
    assert_eq!(r.body["noisy"], false);
    assert_eq!(r.body["result"]["executions"][0]["method"], "statevector");

    // The backend lists methods and channels.
    let r = api
        .send(Method::GET, "/v1/backend", "/v1/backend", None, &[])
        .await;
    assert_eq!(
        r.body["methods"],
        json!(["automatic", "statevector", "density_matrix"])
    );
    let channels = r.body["channels"].as_array().unwrap();
    for name in [
        "depolarizing",
        "kraus",
        "thermal_relaxation_error",
        "amplitude_damping",
    ] {
        assert!(channels.contains(&json!(name)), "{name} in {channels:?}");
    }
}

const BELL_QASM2: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0], q[1];\nmeasure q -> c;\n";

/// A device's noise model as Aer serialises it (Qiskit's
/// `GenericBackendV2(3, seed=1234)`, `NoiseModel.from_backend`): thermal
/// relaxation and depolarizing errors on every gate, readout errors.
fn device_model() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/noise/tests/fixtures/backend_aer018.json"
    ))
    .unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    fixture["model"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aer_noise_model_runs_as_aer_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = in_process(test_config(dir.path()));
    let api = Api::new(server.base.clone(), None);
    let model = device_model();
    let source = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[3] q;\nbit[3] c;\n\
        sx q[0];\nrz(0.4) q[0];\nsx q[0];\ncx q[0], q[1];\nx q[2];\ncx q[1], q[2];\nc = measure q;\n";
    let noisy = kettle::noise::NoiseModel::from_aer_json(&model)
        .unwrap()
        .apply(&reference_circuit(source))
        .unwrap();
    let want = kettle_reference::exact_distribution(&noisy);
    let r = api
        .post_job(
            json!({"program": {"format": "qasm3", "source": source}, "noise_model": model,
                   "result_types": ["probabilities"]}),
            "?wait=30",
        )
        .await;
    assert_eq!(r.body["status"], "completed", "{}", r.body);
    let got: BTreeMap<String, f64> =
        serde_json::from_value(r.body["result"]["executions"][0]["probabilities"].clone()).unwrap();
    for (k, p) in &want {
        assert!((got[k] - p).abs() < 1e-10, "{k}: {} vs {p}", got[k]);
    }
    let shots = 20_000;
    for method in ["statevector", "density_matrix"] {
        let r = api
            .post_job(
                json!({"program": {"format": "qasm3", "source": source}, "noise_model": model,
                       "method": method, "shots": shots, "seed": 3}),
                "?wait=60",
            )
            .await;
        assert_eq!(r.body["status"], "completed", "{}", r.body);
        let ex = &r.body["result"]["executions"][0];
        assert_eq!(ex["method"], method);
        let p = kettle_reference::chi_square_p_value(&counts(&ex["counts"]), &want, shots);
        assert!(p > 1e-4, "{method}: chi-square p = {p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noisy_jobs_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let server = in_process(test_config(dir.path()));
    let api = Api::new(server.base.clone(), None);
    let refused = |body: &Value, field: &str, words: &str| {
        assert_eq!(body["status"], 422, "{body}");
        assert_eq!(body["field"], field, "{body}");
        assert!(body["detail"].as_str().unwrap().contains(words), "{body}");
    };
    let noisy = |extra: Value| {
        let mut b = json!({"program": {"format": "qasm3", "source": PRAGMAS}});
        if let (Value::Object(b), Value::Object(e)) = (&mut b, extra) {
            b.extend(e);
        }
        b
    };
    let r = api
        .post_job(noisy(json!({"result_types": ["statevector"]})), "")
        .await;
    refused(&r.body, "$.result_types", "no state vector");
    let r = api
        .post_job(
            noisy(json!({"method": "statevector", "result_types": ["probabilities"]})),
            "",
        )
        .await;
    refused(&r.body, "$.method", "density_matrix");
    let r = api
        .post_job(
            job(
                BELL_QASM2,
                json!({"noise_model": {"errors": [{"type": "qerror", "operations": ["cx"],
                "instructions": [[{"name": "x", "qubits": [0]}]], "probabilities": [0.5]}]}}),
            ),
            "",
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body["field"]
            .as_str()
            .unwrap()
            .starts_with("$.noise_model.errors[0]"),
        "{}",
        r.body
    );
    let r = api
        .post_job(job(BELL_QASM2, json!({"method": "trajectories"})), "")
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A density matrix of 26 qubits does not exist.
    let wide = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[26];\ncreg c[26];\nh q[0];\nmeasure q -> c;\n";
    let r = api
        .post_job(job(wide, json!({"method": "density_matrix"})), "")
        .await;
    refused(&r.body, "$.method", "density matrix");
}

#[test]
fn kettle_run_takes_a_noise_model_and_a_method() {
    let dir = std::env::temp_dir().join(format!("kettle-noise-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[3] q;\nbit[3] c;\n\
        sx q[0];\ncx q[0], q[1];\nx q[2];\ncx q[1], q[2];\nc = measure q;\n";
    let program = dir.join("device.qasm");
    std::fs::write(&program, source).unwrap();
    let model_file = dir.join("model.json");
    std::fs::write(&model_file, device_model().to_string()).unwrap();
    let noisy = kettle::noise::NoiseModel::from_aer_json(&device_model())
        .unwrap()
        .apply(&reference_circuit(source))
        .unwrap();
    let want = kettle_reference::exact_distribution(&noisy);
    let (p, m) = (program.to_str().unwrap(), model_file.to_str().unwrap());
    let out = crate::util::kettle(&[
        "run",
        p,
        "--noise-model",
        m,
        "--method",
        "density_matrix",
        "--probabilities",
        "--expect",
        "Z0 Z1",
        "--json",
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "density_matrix");
    let got: BTreeMap<String, f64> = serde_json::from_value(v["probabilities"].clone()).unwrap();
    for (k, p) in &want {
        assert!((got[k] - p).abs() < 1e-10, "{k}: {} vs {p}", got[k]);
    }
    // Trajectories: counts by chi-square, the distinct trajectories said.
    let shots = 20_000;
    let out = crate::util::kettle(&[
        "run",
        p,
        "--noise-model",
        m,
        "--method",
        "statevector",
        "--shots",
        "20000",
        "--seed",
        "4",
        "--json",
        "--quiet",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "statevector");
    assert!(v["trajectories"].as_u64().unwrap() > 1, "{v}");
    let p_value = kettle_reference::chi_square_p_value(&counts(&v["counts"]), &want, shots);
    assert!(p_value > 1e-4, "chi-square p = {p_value}");
    // A model that is not one names its fault's path.
    std::fs::write(&model_file, r#"{"errors": [{"type": "qerror"}]}"#).unwrap();
    let bad = crate::util::kettle(&["run", p, "--noise-model", m]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("$.errors[0]"),
        "{bad:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
