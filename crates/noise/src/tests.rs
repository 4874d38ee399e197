//! Tests: every fixture written by `fixtures.py` parses and each of its
//! errors is the channel Qiskit computes for it (superoperators compared
//! entry by entry, and their action on random density matrices); noise lands
//! where Aer puts it; malformed documents give errors with their JSONPath,
//! and never a panic.

use std::path::PathBuf;

use kettle_ir::{
    Channel, Circuit, Complex64, Condition, Control, GateMatrix, Operation, StandardGate,
};
use serde_json::{Value, json};

use crate::linalg::embed;
use crate::{NoiseModel, NoiseModelError};

const ZERO: Complex64 = Complex64::new(0.0, 0.0);

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures_dir().join(name)).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

fn all_fixtures() -> Vec<(String, Value)> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| (n.clone(), fixture(&n)))
        .collect()
}

/// A row-major complex matrix from `[re, im]` rows.
fn complex_rows(v: &Value) -> (usize, Vec<Complex64>) {
    let rows = v.as_array().unwrap();
    let data = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|z| Complex64::new(z[0].as_f64().unwrap(), z[1].as_f64().unwrap()))
        .collect();
    (rows.len(), data)
}

/// Qiskit's superoperator of Kraus operators `ops` (column-stacking:
/// `S = Σ conj(K) ⊗ K`, row `a·d + b`, column `c·d + e`).
fn superop(ops: &[GateMatrix]) -> Vec<Complex64> {
    let d = ops[0].dim();
    let m = d * d;
    let mut s = vec![ZERO; m * m];
    for k in ops {
        for a in 0..d {
            for b in 0..d {
                for c in 0..d {
                    for e in 0..d {
                        s[(a * d + b) * m + c * d + e] += k.get(a, c).conj() * k.get(b, e);
                    }
                }
            }
        }
    }
    s
}

/// The Kraus operators of a built error on `n` qubits (its channel
/// embedded on the first qubits; the identity when it has none).
fn kraus_on(model: &NoiseModel, index: usize, n: u32) -> Vec<GateMatrix> {
    let error = &model.errors[index];
    match &error.channel {
        None => vec![GateMatrix::identity(n)],
        Some(ch) => {
            let qubits: Vec<u32> = (0..error.num_qubits).collect();
            ch.kraus_operators()
                .iter()
                .map(|k| embed(k, &qubits, n))
                .collect()
        }
    }
}

fn max_diff(a: &[Complex64], b: &[Complex64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).norm())
        .fold(0.0, f64::max)
}

/// A deterministic full-rank density matrix on `d` levels.
fn random_rho(d: usize, seed: u64) -> Vec<Complex64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let a: Vec<Complex64> = (0..d * d).map(|_| Complex64::new(next(), next())).collect();
    let mut rho = vec![ZERO; d * d];
    for r in 0..d {
        for c in 0..d {
            rho[r * d + c] = (0..d).map(|k| a[r * d + k] * a[c * d + k].conj()).sum();
        }
    }
    let trace: Complex64 = (0..d).map(|i| rho[i * d + i]).sum();
    rho.iter().map(|z| z / trace).collect()
}

/// `Σ K ρ K†`.
fn apply_kraus(ops: &[GateMatrix], rho: &[Complex64]) -> Vec<Complex64> {
    let n = ops[0].num_qubits();
    let rho = GateMatrix::new(n, rho.to_vec()).unwrap();
    let mut out = vec![ZERO; rho.data().len()];
    for k in ops {
        let t = k.matmul(&rho).matmul(&k.adjoint());
        for (o, x) in out.iter_mut().zip(t.data()) {
            *o += x;
        }
    }
    out
}

/// `S · vec(ρ)` with Qiskit's column-stacking `vec`.
fn apply_superop(s: &[Complex64], rho: &[Complex64], d: usize) -> Vec<Complex64> {
    let m = d * d;
    let vec_rho: Vec<Complex64> = (0..m).map(|i| rho[(i % d) * d + i / d]).collect();
    let mut out = vec![ZERO; m];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (0..m).map(|j| s[i * m + j] * vec_rho[j]).sum();
    }
    (0..m).map(|i| out[(i % d) * d + i / d]).collect()
}

#[test]
fn every_fixture_parses_and_every_error_is_qiskits_channel() {
    let fixtures = all_fixtures();
    assert!(fixtures.len() >= 4, "run fixtures.py with both venvs");
    for (name, fx) in fixtures {
        let model =
            NoiseModel::from_aer_json(&fx["model"]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let entries = fx["model"]["errors"].as_array().unwrap();
        let expected = fx["expected"].as_array().unwrap();
        let mut q = 0;
        for (i, (entry, want)) in entries.iter().zip(expected).enumerate() {
            if entry["type"] == "roerror" {
                check_readout(&model, entry, want, &name);
                continue;
            }
            let (rows, s_want) = complex_rows(&want["superop"]);
            let d = (rows as f64).sqrt().round() as usize;
            let n = d.trailing_zeros();
            let ops = kraus_on(&model, q, n);
            let diff = max_diff(&superop(&ops), &s_want);
            assert!(
                diff < 1e-9,
                "{name}: error {i} differs from Qiskit's by {diff:e}"
            );
            for seed in 0..3 {
                let rho = random_rho(d, seed + 17 * i as u64);
                let diff = max_diff(&apply_kraus(&ops, &rho), &apply_superop(&s_want, &rho, d));
                assert!(diff < 1e-9, "{name}: error {i} on ρ differs by {diff:e}");
            }
            // Kraus maps are kept small: at most 4^n operators.
            if let Some(ch) = &model.errors[q].channel
                && let kettle_ir::ChannelForm::Kraus(k) = ch.form()
            {
                assert!(k.len() <= 1 << (2 * ch.num_qubits()), "{name}: error {i}");
            }
            q += 1;
        }
        assert_eq!(q, model.errors.len(), "{name}");
    }
}

fn check_readout(model: &NoiseModel, entry: &Value, want: &Value, name: &str) {
    let a = &want["assignment"];
    let row = |i: usize| [a[i][0].as_f64().unwrap(), a[i][1].as_f64().unwrap()];
    let error = kettle_ir::ReadoutError::new([row(0), row(1)]).unwrap();
    let found = match entry.get("gate_qubits") {
        None => &model.readout.default,
        Some(qs) => &model.readout.local[&(qs[0][0].as_u64().unwrap() as u32)],
    };
    assert!(found.contains(&error), "{name}: readout error {entry}");
}

#[test]
fn a_non_symmetric_two_qubit_error_keeps_qiskits_bit_order() {
    // Amplitude damping on qubit 1, a bit flip on qubit 0 (`ad.tensor(flip)`),
    // local to cx on [0, 1]: swapping the qubits would change the superop,
    // which the fixture test compares; check here that it would.
    let fx = fixture("handbuilt_aer018.json");
    let model = NoiseModel::from_aer_json(&fx["model"]).unwrap();
    let ops = kraus_on(&model, 14, 2);
    let swap = StandardGate::Swap.matrix(&[]);
    let swapped: Vec<GateMatrix> = ops.iter().map(|k| swap.matmul(k).matmul(&swap)).collect();
    let (_, want) = complex_rows(&fx["expected"][14]["superop"]);
    assert!(max_diff(&superop(&ops), &want) < 1e-9);
    assert!(max_diff(&superop(&swapped), &want) > 1e-3);
    // |00⟩ goes to |01⟩ (qubit 0 flipped) with probability 0.2.
    let mut rho = vec![ZERO; 16];
    rho[0] = Complex64::new(1.0, 0.0);
    let out = apply_kraus(&ops, &rho);
    assert!((out[5].re - 0.2).abs() < 1e-12, "{out:?}");
}

/// The kinds of a circuit's operations, for comparing placements.
#[derive(Debug, PartialEq)]
enum Step {
    Gate(&'static str, Vec<u32>),
    /// The position of the error in the model, and the qubits.
    Channel(usize, Vec<u32>),
    Measure(u32),
    Reset(u32),
    Readout(u32, [[f64; 2]; 2]),
    Barrier,
    If(Vec<Step>),
}

fn steps(model: &NoiseModel, ops: &[Operation]) -> Vec<Step> {
    ops.iter()
        .map(|op| match op {
            Operation::Gate { gate, qubits, .. } => Step::Gate(gate.name(), qubits.clone()),
            Operation::Channel { channel, qubits } => Step::Channel(
                model
                    .errors
                    .iter()
                    .position(|e| e.channel.as_ref() == Some(channel))
                    .expect("a channel of the model"),
                qubits.clone(),
            ),
            Operation::Measure { qubit, .. } => Step::Measure(*qubit),
            Operation::Reset { qubit } => Step::Reset(*qubit),
            Operation::ReadoutError { clbit, error } => Step::Readout(*clbit, error.assignment()),
            Operation::Barrier { .. } => Step::Barrier,
            Operation::IfElse { then_ops, .. } => Step::If(steps(model, then_ops)),
        })
        .collect()
}

#[test]
fn noise_lands_where_aer_puts_it() {
    let fx = fixture("handbuilt_aer018.json");
    let model = NoiseModel::from_aer_json(&fx["model"]).unwrap();
    // Positions of the quantum errors, in the document's order.
    let (x, sx, u3, u1, cx, measure, reset) = (0, 1, 3, 4, 6, 10, 11);
    let (x1, sx2, cx01, cx10, cz02, swap12, rzz01) = (12, 13, 14, 15, 16, 17, 18);
    let ctrl_x = Operation::Gate {
        gate: kettle_ir::Gate::standard(StandardGate::X, &[]),
        qubits: vec![0],
        controls: vec![Control::one(1)],
    };
    let circuit = Circuit::new(3)
        .creg("c", 3)
        .x(0)
        .x(1)
        .sx(0)
        .sx(2)
        .u3(0.1, 0.2, 0.3, 0)
        .u1(0.4, 1)
        .cx(0, 1)
        .cx(1, 0)
        .cx(1, 2)
        .cz(0, 2)
        .cz(2, 0)
        .swap(1, 2)
        .rzz(0.3, 0, 1)
        .t(0)
        .op(ctrl_x)
        .barrier(&[0, 1, 2])
        .reset(1)
        .measure(2, 2)
        .measure(0, 0)
        .if_then(Condition::bit(0, true), |b| b.x(1));
    let noisy = model.apply(&circuit).unwrap();
    assert_eq!(noisy.num_qubits(), 3);
    assert_eq!(noisy.registers(), circuit.registers());
    let ro_default = [[0.95, 0.05], [0.1, 0.9]];
    let ro_2 = [[0.8, 0.2], [0.25, 0.75]];
    use Step::*;
    let g = |n, q: &[u32]| Gate(n, q.to_vec());
    // Equal errors (x and sx share one) are named by the first of them.
    let first = |i: usize| {
        let channel = &model.errors[i].channel;
        model
            .errors
            .iter()
            .position(|e| &e.channel == channel)
            .unwrap()
    };
    let c = |i, q: &[u32]| Channel(first(i), q.to_vec());
    let want = vec![
        g("x", &[0]),
        c(x, &[0]),
        g("x", &[1]),
        c(x1, &[1]),
        g("sx", &[0]),
        c(sx, &[0]),
        g("sx", &[2]),
        c(sx2, &[2]),
        g("u", &[0]),
        c(u3, &[0]),
        g("p", &[1]),
        c(u1, &[1]),
        g("cx", &[0, 1]),
        c(cx01, &[0, 1]),
        g("cx", &[1, 0]),
        c(cx10, &[1, 0]),
        g("cx", &[1, 2]),
        c(cx, &[1, 2]),
        g("cz", &[0, 2]),
        c(cz02, &[0, 2]),
        g("cz", &[2, 0]),
        g("swap", &[1, 2]),
        c(swap12, &[1, 2]),
        g("rzz", &[0, 1]),
        c(rzz01, &[0, 1]),
        g("t", &[0]),
        g("x", &[0]),
        Barrier,
        Reset(1),
        c(reset, &[1]),
        c(measure, &[2]),
        Measure(2),
        Readout(2, ro_2),
        c(measure, &[0]),
        Measure(0),
        Readout(0, ro_default),
        If(vec![g("x", &[1]), c(x1, &[1])]),
    ];
    let got = steps(&model, noisy.ops());
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert_eq!(a, b, "step {i}");
    }
    assert_eq!(got.len(), want.len());
    noisy.validate().unwrap();
    assert!(noisy.is_noisy());
    assert_eq!(
        model.noisy_operations(),
        [
            "cx", "cz", "ecr", "h", "measure", "p", "reset", "rz", "rzz", "swap", "sx", "u", "x",
            "y", "z"
        ]
    );
    assert!(model.has_readout_errors() && !model.is_ideal());
}

fn qerror(operations: Value, instructions: Value, probabilities: Value) -> Value {
    json!({"errors": [{"type": "qerror", "operations": operations,
        "instructions": instructions, "probabilities": probabilities}]})
}

#[test]
fn identity_errors_are_left_out_but_still_shadow_defaults() {
    let doc = json!({"errors": [
        {"type": "qerror", "operations": ["x"], "instructions": [[{"name": "x", "qubits": [0]}]], "probabilities": [1.0]},
        {"type": "qerror", "operations": ["x"], "gate_qubits": [[1]],
         "instructions": [[{"name": "pauli", "qubits": [0], "params": ["I"]}]], "probabilities": [1.0]},
        {"type": "qerror", "operations": ["h"], "instructions": [[]], "probabilities": [1.0]},
    ]});
    let model = NoiseModel::from_aer_json(&doc).unwrap();
    let noisy = model.apply(&Circuit::new(2).x(0).x(1).h(0)).unwrap();
    assert_eq!(noisy.ops().len(), 4, "{noisy:?}");
    assert!(matches!(&noisy.ops()[1], Operation::Channel { qubits, .. } if qubits == &[0]));
    // The empty model, and an ideal one.
    for empty in [Value::Null, json!({}), json!({"errors": []})] {
        let m = NoiseModel::from_aer_json(&empty).unwrap();
        assert!(m.is_ideal());
        let c = Circuit::new(1).h(0).measure_all();
        assert_eq!(m.apply(&c).unwrap(), c);
    }
}

#[test]
fn an_error_on_a_wider_gate_acts_on_its_first_qubits_and_a_narrower_gate_is_refused() {
    // Aer attaches a one-qubit error to the first qubit of a two-qubit gate…
    let flip = json!([[{"name": "x", "qubits": [0]}], [{"name": "id", "qubits": [0]}]]);
    let model = NoiseModel::from_aer_json(&qerror(json!(["cx"]), flip, json!([0.1, 0.9]))).unwrap();
    let noisy = model.apply(&Circuit::new(2).cx(1, 0)).unwrap();
    assert!(matches!(&noisy.ops()[1], Operation::Channel { qubits, .. } if qubits == &[1]));
    // …and refuses a two-qubit error on a one-qubit gate.
    let two = json!([[{"name": "pauli", "qubits": [0, 1], "params": ["XX"]}], [{"name": "id", "qubits": [0]}]]);
    let model = NoiseModel::from_aer_json(&qerror(json!(["x"]), two, json!([0.1, 0.9]))).unwrap();
    let err = model.apply(&Circuit::new(2).x(0)).unwrap_err();
    assert!(
        matches!(
            err,
            NoiseModelError::ErrorWiderThanOperation {
                error_qubits: 2,
                ..
            }
        ),
        "{err}"
    );
    // Deep nesting is refused, not overflowed.
    let mut deep = Circuit::new(1).creg("c", 1).x(0);
    for _ in 0..70 {
        deep = Circuit::new(1)
            .creg("c", 1)
            .if_then(Condition::bit(0, true), |_| deep.clone());
    }
    assert!(matches!(
        model.apply(&deep),
        Err(NoiseModelError::TooDeep { .. })
    ));
}

#[test]
fn long_error_circuits_stay_small() {
    // Twenty amplitude dampings on each of two qubits: 3^40 products of
    // Kraus operators unless reduced; the result is amplitude damping with
    // γ = 1 − (1 − 0.1)^20 on each.
    let ad = json!([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.9f64.sqrt(), 0.0]]]);
    let ad1 = json!([[[0.0, 0.0], [0.1f64.sqrt(), 0.0]], [[0.0, 0.0], [0.0, 0.0]]]);
    let mut circuit = Vec::new();
    for _ in 0..20 {
        for q in 0..2 {
            circuit.push(json!({"name": "kraus", "qubits": [q], "params": [ad, ad1]}));
        }
    }
    let model =
        NoiseModel::from_aer_json(&qerror(json!(["cx"]), json!([circuit]), json!([1.0]))).unwrap();
    let ch = model.errors[0].channel.as_ref().unwrap();
    assert!(ch.kraus_operators().len() <= 16);
    let g = 1.0 - 0.9f64.powi(20);
    let one = Channel::amplitude_damping(g).unwrap().kraus_operators();
    let want: Vec<GateMatrix> = one
        .iter()
        .flat_map(|a| one.iter().map(move |b| a.kron(b)))
        .collect();
    assert!(max_diff(&superop(&ch.kraus_operators()), &superop(&want)) < 1e-9);

    // Forty unitary mixtures that do not commute: 2^40 branches unless
    // merged or reduced; compared with the superoperators multiplied out.
    let rx = |t: f64| StandardGate::Rx.matrix(&[t]);
    let rz = |t: f64| StandardGate::Rz.matrix(&[t]);
    let rows = |m: &GateMatrix| -> Value {
        json!(
            (0..2)
                .map(|r| (0..2)
                    .map(|c| json!([m.get(r, c).re, m.get(r, c).im]))
                    .collect::<Vec<_>>())
                .collect::<Vec<_>>()
        )
    };
    let mut circuit = Vec::new();
    let mut s_want: Option<Vec<Complex64>> = None;
    for i in 0..40 {
        let u = if i % 2 == 0 {
            rx(0.3 + 0.01 * i as f64)
        } else {
            rz(0.7)
        };
        let (a, b) = (
            GateMatrix::identity(1).scaled(0.8f64.sqrt()),
            u.scaled(0.2f64.sqrt()),
        );
        circuit.push(json!({"name": "kraus", "qubits": [0], "params": [rows(&a), rows(&b)]}));
        let s = superop(&[a, b]);
        s_want = Some(match s_want {
            None => s,
            Some(prev) => matmul4(&s, &prev),
        });
    }
    let model =
        NoiseModel::from_aer_json(&qerror(json!(["x"]), json!([circuit]), json!([1.0]))).unwrap();
    let ch = model.errors[0].channel.as_ref().unwrap();
    assert!(ch.kraus_operators().len() <= crate::linalg::MAX_MIXTURE_BRANCHES);
    assert!(max_diff(&superop(&ch.kraus_operators()), &s_want.unwrap()) < 1e-9);
}

/// `a · b` for 4×4 row-major matrices.
fn matmul4(a: &[Complex64], b: &[Complex64]) -> Vec<Complex64> {
    let mut out = vec![ZERO; 16];
    for r in 0..4 {
        for c in 0..4 {
            out[r * 4 + c] = (0..4).map(|k| a[r * 4 + k] * b[k * 4 + c]).sum();
        }
    }
    out
}

#[test]
fn malformed_documents_are_refused_with_their_path() {
    let x = json!([[{"name": "x", "qubits": [0]}]]);
    let with_inst = |inst: Value| qerror(json!(["x"]), json!([[inst]]), json!([1.0]));
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!([]), "$", "expected an object, found an array"),
        (json!({"errors": {}}), "$.errors", "expected an array"),
        (json!({"errors": [5]}), "$.errors[0]", "expected an object"),
        (
            json!({"errors": [{"operations": ["x"]}]}),
            "$.errors[0]",
            "missing `type`",
        ),
        (
            json!({"errors": [{"type": 5}]}),
            "$.errors[0].type",
            "expected a string",
        ),
        (
            json!({"errors": [{"type": "xerror"}]}),
            "$.errors[0].type",
            "unknown error type `xerror`",
        ),
        (
            qerror(json!("x"), x.clone(), json!([1.0])),
            "$.errors[0].operations",
            "expected an array",
        ),
        (
            qerror(json!([1]), x.clone(), json!([1.0])),
            "$.errors[0].operations[0]",
            "expected a string",
        ),
        (
            qerror(json!(["x"]), x.clone(), json!("abc")),
            "$.errors[0].probabilities",
            "expected an array",
        ),
        (
            qerror(json!(["x"]), x.clone(), json!([0.5])),
            "$.errors[0].probabilities",
            "add up to 0.5",
        ),
        (
            qerror(json!(["x"]), x.clone(), json!([1.0, 0.0])),
            "$.errors[0].probabilities",
            "2 probabilities for 1 circuits",
        ),
        (
            qerror(json!(["x"]), x.clone(), json!([1.5])),
            "$.errors[0].probabilities[0]",
            "between 0 and 1",
        ),
        (
            qerror(json!(["x"]), x.clone(), json!([true])),
            "$.errors[0].probabilities[0]",
            "expected a finite number",
        ),
        (
            qerror(json!(["x"]), json!([{}]), json!([1.0])),
            "$.errors[0].instructions[0]",
            "expected an array",
        ),
        (
            with_inst(json!({"name": "foo", "qubits": [0]})),
            "$.errors[0].instructions[0][0].name",
            "unknown instruction `foo`",
        ),
        (
            with_inst(json!({"name": "measure", "qubits": [0]})),
            "$.errors[0].instructions[0][0].name",
            "unknown instruction `measure`",
        ),
        (
            with_inst(json!({"qubits": [0]})),
            "$.errors[0].instructions[0][0]",
            "missing `name`",
        ),
        (
            with_inst(json!({"name": "x", "qubits": [-1]})),
            "$.errors[0].instructions[0][0].qubits[0]",
            "expected a qubit index",
        ),
        (
            with_inst(json!({"name": "x", "qubits": [2]})),
            "$.errors[0].instructions[0][0].qubits",
            "an error on 3 qubits",
        ),
        (
            with_inst(json!({"name": "ccx", "qubits": [0, 1, 2]})),
            "$.errors[0].instructions[0][0].qubits",
            "an instruction on 3 qubits",
        ),
        (
            with_inst(json!({"name": "cx", "qubits": [1, 1]})),
            "$.errors[0].instructions[0][0].qubits",
            "appears twice",
        ),
        (
            with_inst(json!({"name": "cx", "qubits": [0]})),
            "$.errors[0].instructions[0][0].qubits",
            "acts on 2 qubit(s), not 1",
        ),
        (
            with_inst(json!({"name": "rx", "qubits": [0]})),
            "$.errors[0].instructions[0][0].params",
            "takes 1 parameter(s), not 0",
        ),
        (
            with_inst(json!({"name": "rx", "qubits": [0], "params": ["a"]})),
            "$.errors[0].instructions[0][0].params[0]",
            "expected a finite number",
        ),
        (
            with_inst(
                json!({"name": "kraus", "qubits": [0], "params": [[[[1, 0], [0, 0]], [[0, 0], [0.5, 0]]]]}),
            ),
            "$.errors[0].instructions[0][0].params",
            "not trace-preserving",
        ),
        (
            with_inst(json!({"name": "kraus", "qubits": [0], "params": [[[[1, 0], [0, 0]]]]})),
            "$.errors[0].instructions[0][0].params[0]",
            "expected a 2×2 matrix",
        ),
        (
            with_inst(
                json!({"name": "kraus", "qubits": [0], "params": [[[[1, 0, 3], [0, 0]], [[0, 0], [1, 0]]]]}),
            ),
            "$.errors[0].instructions[0][0].params[0][0][0]",
            "[re, im]",
        ),
        (
            with_inst(json!({"name": "unitary", "qubits": [0], "params": [[[1, 1], [0, 1]]]})),
            "$.errors[0].instructions[0][0].params[0]",
            "not unitary",
        ),
        (
            with_inst(json!({"name": "pauli", "qubits": [0, 1], "params": ["X"]})),
            "$.errors[0].instructions[0][0].params[0]",
            "1 letters for 2 qubits",
        ),
        (
            with_inst(json!({"name": "pauli", "qubits": [0], "params": ["Q"]})),
            "$.errors[0].instructions[0][0].params[0]",
            "`Q` is not one of I, X, Y, Z",
        ),
        (
            with_inst(json!({"name": "superop", "qubits": [0], "params": []})),
            "$.errors[0].instructions[0][0].name",
            "not supported",
        ),
        (
            with_inst(json!({"name": "x", "qubits": [0], "condition": [0, 1]})),
            "$.errors[0].instructions[0][0].condition",
            "not supported",
        ),
        (
            json!({"errors": [{"type": "qerror", "operations": ["x"], "instructions": x, "probabilities": [1.0], "noise_qubits": [[2]], "gate_qubits": [[0]]}]}),
            "$.errors[0].noise_qubits",
            "nonlocal",
        ),
        (
            json!({"errors": [{"type": "qerror", "operations": ["x"], "instructions": x, "probabilities": [1.0], "gate_qubits": [0]}]}),
            "$.errors[0].gate_qubits[0]",
            "expected an array",
        ),
        (
            json!({"errors": [{"type": "plerror", "operations": ["x"], "instructions": x, "rates": [-0.1]}]}),
            "$.errors[0].rates[0]",
            "must not be negative",
        ),
        (
            json!({"errors": [{"type": "plerror", "operations": ["x"], "instructions": [[{"name": "h", "qubits": [0]}]], "rates": [0.1]}]}),
            "$.errors[0].instructions[0][0].name",
            "only Pauli instructions",
        ),
        (
            json!({"errors": [{"type": "roerror", "operations": ["measure"], "probabilities": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}]}),
            "$.errors[0].probabilities",
            "single-qubit readout errors",
        ),
        (
            json!({"errors": [{"type": "roerror", "operations": ["measure"], "probabilities": [[0.9, 0.2], [0.0, 1.0]]}]}),
            "$.errors[0].probabilities[0]",
            "adds up to 1.1",
        ),
        (
            json!({"errors": [{"type": "roerror", "operations": ["measure"], "probabilities": [[1, 0], [0, 1]], "gate_qubits": [[0, 1]]}]}),
            "$.errors[0].gate_qubits[0]",
            "a readout error on 2 qubits",
        ),
    ];
    for (doc, path, message) in cases {
        match NoiseModel::from_aer_json(&doc) {
            Err(NoiseModelError::Invalid {
                path: p,
                message: m,
            }) => {
                assert_eq!(p, path, "{doc}: {m}");
                assert!(m.contains(message), "{doc}: `{m}` lacks `{message}`");
            }
            other => panic!("{doc}: {other:?}"),
        }
    }
}

#[test]
fn circuits_aer_drops_are_not_held_to_the_qubit_bound() {
    // A circuit of probability 0 may name qubit 5: Aer ignores it.
    let doc = qerror(
        json!(["x"]),
        json!([[{"name": "x", "qubits": [0]}], [{"name": "x", "qubits": [5]}]]),
        json!([1.0, 0.0]),
    );
    let model = NoiseModel::from_aer_json(&doc).unwrap();
    assert_eq!(model.errors[0].num_qubits, 1);
}

/// Replaces the value at a pseudo-random position of `v` by `with`.
fn mutate(v: &mut Value, mut pick: u64, with: &Value) {
    let mut at = v;
    loop {
        let len = match at {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            _ => 0,
        };
        if len == 0 || pick.is_multiple_of(4) {
            *at = with.clone();
            return;
        }
        let i = (pick / 4) as usize % len;
        pick /= 4 * len as u64 + 1;
        at = match at {
            Value::Array(a) => &mut a[i],
            Value::Object(o) => o.values_mut().nth(i).expect("in range"),
            _ => unreachable!(),
        };
    }
}

#[test]
fn mutated_documents_never_panic() {
    let fx = fixture("handbuilt_aer018.json");
    let replacements = [
        Value::Null,
        json!(-1),
        json!(1e308),
        json!("x"),
        json!([]),
        json!({}),
        json!([[1, 2]]),
        json!([[[0, 0]]]),
        json!(["XYZ"]),
        json!([[0, 1, 2]]),
    ];
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for round in 0..600 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut doc = fx["model"].clone();
        mutate(&mut doc, seed, &replacements[round % replacements.len()]);
        if let Ok(model) = NoiseModel::from_aer_json(&doc) {
            let c = Circuit::new(3)
                .creg("c", 3)
                .x(0)
                .cx(0, 1)
                .rzz(0.1, 0, 1)
                .measure(2, 2);
            let _ = model.apply(&c);
        }
    }
}
