//! Tests of the OpenQASM 3 front end: every supported construct against a
//! circuit built by hand (compared by state vector on the reference
//! simulator, or by structure), every refused construct by message and
//! position, and hostile inputs.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::f64::consts::PI;

use kettle_ir::{
    Channel, Circuit, Complex64, Condition, Control, Gate, GateMatrix, Operation, StandardGate,
};

use crate::{
    Diagnostic, IncludeResolver, InputParameter, Limits, ParseOptions, ProgramError, SourceFormat,
    detect_format, parse_program, parse_qasm2_with, parse_qasm3, qasm3_inputs,
};

const STD: &str = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\n";

fn parse_with(src: &str, options: &ParseOptions) -> Circuit {
    match parse_qasm3(src, options) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error {e} in:\n{src}"),
    }
}

fn parse(src: &str) -> Circuit {
    parse_with(src, &ParseOptions::default())
}

/// `STD` + `body`.
fn body(body: &str) -> Circuit {
    parse(&format!("{STD}{body}"))
}

fn err_with(src: &str, options: &ParseOptions) -> Diagnostic {
    match parse_qasm3(src, options) {
        Ok(c) => panic!("expected an error for:\n{src}\ngot {:?}", c.ops()),
        Err(e) => e,
    }
}

fn err(src: &str) -> Diagnostic {
    err_with(src, &ParseOptions::default())
}

/// Error in `STD` + `body`: (line within the body, column, message).
fn body_err(b: &str) -> (u32, u32, String) {
    let e = err(&format!("{STD}{b}"));
    assert!(e.line > 2, "error in the header: {e}");
    (e.line - 2, e.column, e.message)
}

fn state(c: &Circuit) -> Vec<kettle_ir::Complex64> {
    kettle_reference::statevector(c)
}

/// The two circuits give the same state, global phase included.
fn same_state(a: &Circuit, b: &Circuit) {
    assert_eq!(a.num_qubits(), b.num_qubits(), "qubit counts differ");
    let d = kettle_reference::max_abs_diff(&state(a), &state(b));
    assert!(
        d < 1e-9,
        "states differ by {d}:\n{:?}\n{:?}",
        a.ops(),
        b.ops()
    );
}

fn std_op(g: StandardGate, params: &[f64], qubits: &[u32]) -> Operation {
    Operation::gate(Gate::standard(g, params), qubits.to_vec())
}

/// A state preparation that makes every amplitude differ.
fn prep(n: u32) -> String {
    let mut s = String::new();
    for q in 0..n {
        s.push_str(&format!(
            "ry({}) q[{q}];\nrz({}) q[{q}];\n",
            0.3 + 0.4 * f64::from(q),
            0.5 + 0.7 * f64::from(q)
        ));
    }
    for q in 1..n {
        s.push_str(&format!("cx q[{}], q[{q}];\n", q - 1));
    }
    s
}

fn prep_circuit(n: u32) -> Circuit {
    let mut c = Circuit::new(n);
    for q in 0..n {
        c = c
            .ry(0.3 + 0.4 * f64::from(q), q)
            .rz(0.5 + 0.7 * f64::from(q), q);
    }
    for q in 1..n {
        c = c.cx(q - 1, q);
    }
    c
}

/// Resolves includes from a map, recording every name asked for.
#[derive(Default)]
struct MapResolver {
    files: HashMap<String, String>,
    asked: RefCell<Vec<String>>,
}

impl MapResolver {
    fn new(files: &[(&str, &str)]) -> Self {
        MapResolver {
            files: files
                .iter()
                .map(|(n, t)| ((*n).to_string(), (*t).to_string()))
                .collect(),
            asked: RefCell::new(Vec::new()),
        }
    }
}

impl IncludeResolver for MapResolver {
    fn resolve(&self, name: &str) -> Result<String, String> {
        self.asked.borrow_mut().push(name.to_string());
        self.files
            .get(name)
            .cloned()
            .ok_or_else(|| "no such file".to_string())
    }
}

#[test]
fn bell_and_measure_forms() {
    let c = body("qubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nc = measure q;\n");
    let expect = Circuit::new(2)
        .creg("c", 2)
        .h(0)
        .cx(0, 1)
        .measure(0, 0)
        .measure(1, 1);
    assert_eq!(c, expect);
    let forms = [
        "c[0] = measure q[0];\nc[1] = measure q[1];",
        "measure q -> c;",
        "measure q[0] -> c[0];\nmeasure q[1] -> c[1];",
        "c = measure q;",
        "c[0:1] = measure q[0:1];",
    ];
    for f in forms {
        let c = body(&format!("qubit[2] q;\nbit[2] c;\n{f}\n"));
        assert_eq!(
            c,
            Circuit::new(2).creg("c", 2).measure(0, 0).measure(1, 1),
            "{f}"
        );
    }
    // Declaration with a measurement, and legacy registers.
    let c = body("qreg q[2];\ncreg c[2];\nbit b = measure q[1];\n");
    assert_eq!(c, Circuit::new(2).creg("c", 2).creg("b", 1).measure(1, 2));
    // A result not stored goes to one `discarded` bit.
    let c = body("qubit[2] q;\nbit discarded;\nmeasure q;\nmeasure q[0];\n");
    assert_eq!(
        c,
        Circuit::new(2)
            .creg("discarded", 1)
            .creg("discarded1", 1)
            .measure(0, 1)
            .measure(1, 1)
            .measure(0, 1)
    );
}

#[test]
fn header_is_optional_and_checked() {
    // The specification's `U(π, 0, π)` is `iX`: Qiskit's UGate and a phase.
    let c = parse("qubit q;\nU(pi, 0, pi) q;\n");
    assert_eq!(c, Circuit::new(1).gphase(PI / 2.0).u(PI, 0.0, PI, 0));
    parse("OPENQASM 3;\nqubit q;\n");
    let e = err("OPENQASM 2.0;\nqubit q;");
    assert_eq!((e.line, e.column), (1, 1));
    assert!(e.message.contains("OpenQASM 2"), "{e}");
    let e = err("qubit q;\nOPENQASM 3;");
    assert_eq!((e.line, e.column), (2, 1));
}

#[test]
fn stdgates_need_the_include() {
    let e = err("OPENQASM 3;\nqubit q;\nh q;\n");
    assert_eq!((e.line, e.column), (3, 1));
    assert!(e.message.contains("include \"stdgates.inc\""), "{e}");
    // U and gphase are always there.
    parse("qubit q;\nU(0.1, 0.2, 0.3) q;\ngphase(0.5);\n");
}

/// `examples/stdgates.inc` of the OpenQASM repository (commit 45977e1, the
/// 2022 definitions: `U` 2π-periodic, `gphase` where it differs from the
/// gate), with one line changed: the file defines `CX` as `ctrl @ U(π, 0,
/// π)`, a leftover of the earlier `U` that is CNOT with an `S` on the
/// control, while the specification's standard library says `CX` is "a
/// convenience alias for `cx`" (and Qiskit reads it as `CXGate`).
const SPEC_STDGATES: &str = "// OpenQASM 3.0 standard gate library
gate p(λ) a { ctrl @ gphase(λ) a; }
gate x a { U(π, 0, π) a; gphase(-π/2);}
gate y a { U(π, π/2, π/2) a; gphase(-π/2);}
gate z a { p(π) a; }
gate h a { U(π/2, 0, π) a; gphase(-π/4);}
gate s a { pow(0.5) @ z a; }
gate sdg a { inv @ pow(0.5) @ z a; }
gate t a { pow(0.5) @ s a; }
gate tdg a { inv @ pow(0.5) @ s a; }
gate sx a { pow(0.5) @ x a; }
gate rx(θ) a { U(θ, -π/2, π/2) a; gphase(-θ/2);}
gate ry(θ) a { U(θ, 0, 0) a; gphase(-θ/2);}
gate rz(λ) a { gphase(-λ/2); U(0, 0, λ) a; }
gate cx a, b { ctrl @ x a, b; }
gate cy a, b { ctrl @ y a, b; }
gate cz a, b { ctrl @ z a, b; }
gate cp(λ) a, b { ctrl @ p(λ) a, b; }
gate crx(θ) a, b { ctrl @ rx(θ) a, b; }
gate cry(θ) a, b { ctrl @ ry(θ) a, b; }
gate crz(θ) a, b { ctrl @ rz(θ) a, b; }
gate ch a, b { ctrl @ h a, b; }
gate swap a, b { cx a, b; cx b, a; cx a, b; }
gate ccx a, b, c { ctrl @ ctrl @ x a, b, c; }
gate cswap a, b, c { ctrl @ swap a, b, c; }
gate cu(θ, φ, λ, γ) a, b { p(γ-θ/2) a; ctrl @ U(θ, φ, λ) a, b; }
gate CX a, b { ctrl @ x a, b; }
gate phase(λ) q { U(0, 0, λ) q; }
gate cphase(λ) a, b { ctrl @ phase(λ) a, b; }
gate id a { U(0, 0, 0) a; }
gate u1(λ) q { U(0, 0, λ) q; }
gate u2(φ, λ) q { gphase(-(φ+λ+π/2)/2); U(π/2, φ, λ) q; }
gate u3(θ, φ, λ) q { gphase(-(φ+λ+θ)/2); U(θ, φ, λ) q; }
";

/// The built-in library and the specification's definitions agree exactly
/// (global phase included) under every modifier, so controlled and powered
/// gates mean what the specification says.
#[test]
fn builtin_library_matches_the_specification_under_modifiers() {
    let resolver = MapResolver::new(&[("spec.inc", SPEC_STDGATES)]);
    let spec_options = ParseOptions {
        includes: Some(&resolver),
        ..ParseOptions::default()
    };
    let angles = ["0.7", "-0.4", "1.3", "0.25"];
    let modifiers = [
        "",
        "ctrl @ ",
        "negctrl @ ",
        "inv @ ",
        "pow(2) @ ",
        "pow(-3) @ ",
        "pow(0.5) @ ",
        "ctrl @ inv @ ",
        "negctrl(2) @ pow(0.3) @ ",
        "inv @ ctrl @ pow(1.5) @ ",
    ];
    for &(name, gate, _) in super::gates::STDGATES {
        let params = angles[..gate.num_params()].join(", ");
        let call = if params.is_empty() {
            name.to_string()
        } else {
            format!("{name}({params})")
        };
        for m in modifiers {
            let controls = m.matches("ctrl @").count() + 2 * m.matches("ctrl(2)").count();
            let n = controls + gate.num_qubits() as usize;
            let args: Vec<String> = (0..n).map(|i| format!("q[{}]", (i + 1) % 5)).collect();
            let program = |lib: &str| {
                format!(
                    "OPENQASM 3.0;\ninclude \"{lib}\";\nqubit[5] q;\n{}{m}{call} {};\n",
                    prep(5),
                    args.join(", ")
                )
            };
            let ours = parse(&program("stdgates.inc"));
            let spec = parse_with(&program("spec.inc"), &spec_options);
            let d = kettle_reference::max_abs_diff(&state(&ours), &state(&spec));
            assert!(d < 1e-9, "`{m}{call}` differs from its definition by {d}");
        }
    }
}

/// The specification's `U(θ, φ, λ)` (gates.rst, since its 2022 revision),
/// written out: `½[[1+e^{iθ}, -ie^{iλ}(1-e^{iθ})], [ie^{iφ}(1-e^{iθ}),
/// e^{i(φ+λ)}(1+e^{iθ})]]`.
fn spec_u(theta: f64, phi: f64, lambda: f64) -> Gate {
    use kettle_ir::Complex64 as C;
    let e = |a: f64| C::from_polar(1.0, a);
    let i = C::new(0.0, 1.0);
    let one = C::new(1.0, 0.0);
    let half = C::new(0.5, 0.0);
    let m = vec![
        half * (one + e(theta)),
        half * -i * e(lambda) * (one - e(theta)),
        half * i * e(phi) * (one - e(theta)),
        half * e(phi + lambda) * (one + e(theta)),
    ];
    Gate::Unitary(kettle_ir::UnitaryMatrix::new(kettle_ir::GateMatrix::new(1, m).unwrap()).unwrap())
}

/// `U` is the specification's matrix, global phase included, so that a
/// control turns that phase into the relative phase the specification
/// gives; `pragma kettle U pre-2022` selects the earlier `U` (Qiskit's
/// `UGate`), which a Qiskit export without `stdgates.inc` needs.
#[test]
fn builtin_u_is_the_2022_definition() {
    for (t, p, l) in [
        (0.7, -0.4, 1.3),
        (PI, 0.0, PI),
        (-2.1, 0.25, 0.9),
        (0.0, 0.0, 0.5),
    ] {
        let call = format!("U({t:?}, {p:?}, {l:?})");
        let c = body(&format!("qubit[2] q;\n{}{call} q[1];\n", prep(2)));
        same_state(
            &c,
            &prep_circuit(2).op(Operation::gate(spec_u(t, p, l), vec![1])),
        );
        for (m, on) in [("ctrl @ ", true), ("negctrl @ ", false)] {
            let c = body(&format!("qubit[2] q;\n{}{m}{call} q[0], q[1];\n", prep(2)));
            let expect = prep_circuit(2).op(Operation::Gate {
                gate: spec_u(t, p, l),
                qubits: vec![1],
                controls: vec![Control { qubit: 0, on }],
            });
            same_state(&c, &expect);
            // The pre-2022 `U` is Qiskit's UGate, under the control too.
            let c = body(&format!(
                "pragma kettle U pre-2022\nqubit[2] q;\n{}{m}{call} q[0], q[1];\n",
                prep(2)
            ));
            let expect = prep_circuit(2).controlled(
                Gate::standard(StandardGate::U, &[t, p, l]),
                &[1],
                vec![Control { qubit: 0, on }],
            );
            same_state(&c, &expect);
        }
    }
    // 2π-periodic in θ, as the specification says (Qiskit's UGate is 4π).
    let a = body(&format!(
        "qubit[2] q;\n{}ctrl @ U(0.3, 0.1, 0.2) q[0], q[1];\n",
        prep(2)
    ));
    let b = body(&format!(
        "qubit[2] q;\n{}ctrl @ U(0.3 + 2 * π, 0.1, 0.2) q[0], q[1];\n",
        prep(2)
    ));
    same_state(&a, &b);

    // `qiskit.qasm3.dumps(circuit, includes=[])` defines `cx` from the
    // pre-2022 `U`: with the pragma it is CNOT; without, the specification
    // makes it CNOT with an `S` on the control.
    let export = "OPENQASM 3.0;\ngate h _gate_q_0 {\n  U(pi/2, 0, pi) _gate_q_0;\n}\n\
                  gate cx c, t {\n  ctrl @ U(pi, 0, pi) c, t;\n}\nqubit[2] q;\nh q[0];\ncx q[0], q[1];\n";
    let legacy = parse(&format!("pragma kettle U pre-2022\n{export}"));
    let bell = Circuit::new(2).h(0).cx(0, 1);
    let f = kettle_reference::fidelity(&state(&legacy), &state(&bell));
    assert!((f - 1.0).abs() < 1e-12, "{f}");
    let spec = parse(export);
    let f = kettle_reference::fidelity(&state(&spec), &state(&bell.clone().s(0)));
    assert!((f - 1.0).abs() < 1e-12, "{f}");
    // `#pragma` works too; other pragmas are ignored; an unknown Kettle
    // pragma is refused where it is.
    let legacy2 = parse(&format!(
        "#pragma kettle U pre-2022\npragma qiskit x\n{export}"
    ));
    assert_eq!(legacy2.ops(), legacy.ops());
    let (line, col, msg) = body_err("qubit q;\n  pragma kettle U 2021\n");
    assert_eq!((line, col), (2, 3), "{msg}");
    assert!(
        msg.contains("unknown Kettle pragma `kettle U 2021`"),
        "{msg}"
    );
}

#[test]
fn every_stdgate_lowers_to_its_standard_gate() {
    for &(name, gate, _) in super::gates::STDGATES {
        let params: Vec<f64> = [0.1, 0.2, 0.3, 0.4][..gate.num_params()].to_vec();
        let list: Vec<String> = params.iter().map(f64::to_string).collect();
        let call = if list.is_empty() {
            name.to_string()
        } else {
            format!("{name}({})", list.join(", "))
        };
        let args: Vec<String> = (0..gate.num_qubits()).map(|i| format!("q[{i}]")).collect();
        let c = body(&format!("qubit[3] q;\n{call} {};\n", args.join(", ")));
        let expect = std_op(gate, &params, &(0..gate.num_qubits()).collect::<Vec<_>>());
        let first = c.ops().iter().find(|op| {
            !matches!(
                op,
                Operation::Gate {
                    gate: Gate::Standard {
                        gate: StandardGate::GlobalPhase,
                        ..
                    },
                    ..
                }
            )
        });
        assert_eq!(first, Some(&expect), "{name}");
    }
}

#[test]
fn controlled_user_gate_with_a_global_phase() {
    let def = "gate g a { gphase(0.3); x a; }\nqubit[2] q;\n";
    let c = body(&format!("{def}{}ctrl @ g q[0], q[1];\n", prep(2)));
    same_state(&c, &prep_circuit(2).cx(0, 1).p(0.3, 0));
    let c = body(&format!("{def}{}negctrl @ g q[0], q[1];\n", prep(2)));
    let expect = prep_circuit(2)
        .controlled(
            Gate::standard(StandardGate::X, &[]),
            &[1],
            vec![Control::zero(0)],
        )
        .gphase(0.3)
        .p(-0.3, 0);
    same_state(&c, &expect);
    // Uncontrolled, the phase is global: gathered into one gphase first.
    let c = body(&format!("{def}g q[1];\ng q[0];\n"));
    assert_eq!(c.ops(), Circuit::new(2).gphase(0.6).x(1).x(0).ops());
    // `ctrl @ gphase` directly, and with two controls.
    let c = body(&format!(
        "qubit[3] q;\n{}ctrl @ gphase(0.4) q[2];\nctrl(2) @ gphase(0.5) q[0], q[1];\n",
        prep(3)
    ));
    let expect = prep_circuit(3).p(0.4, 2).controlled(
        Gate::standard(StandardGate::P, &[0.5]),
        &[1],
        vec![Control::one(0)],
    );
    same_state(&c, &expect);
}

#[test]
fn inverse_and_power_of_user_gates() {
    let def = "gate g(t) a, b { rx(t) a; cx a, b; gphase(0.2); s b; }\nqubit[2] q;\n";
    let c = body(&format!("{def}{}inv @ g(0.4) q[0], q[1];\n", prep(2)));
    let expect = prep_circuit(2).sdg(1).gphase(-0.2).cx(0, 1).rx(-0.4, 0);
    same_state(&c, &expect);
    let c = body(&format!("{def}{}pow(2) @ g(0.4) q[0], q[1];\n", prep(2)));
    let once = |c: Circuit| c.rx(0.4, 0).cx(0, 1).gphase(0.2).s(1);
    same_state(&c, &once(once(prep_circuit(2))));
    let c = body(&format!("{def}{}pow(-1) @ g(0.4) q[0], q[1];\n", prep(2)));
    same_state(&c, &expect);
    let c = body(&format!("{def}pow(0) @ g(0.4) q[0], q[1];\n"));
    assert!(c.ops().is_empty());
    // A non-integer power of a user gate is the principal power of its matrix.
    let c = body(&format!(
        "gate myx a {{ U(pi, 0, pi) a; gphase(-pi/2); }}\nqubit q;\n{}pow(0.5) @ myx q;\n",
        "h q;\n"
    ));
    same_state(&c, &Circuit::new(1).h(0).sx(0));
    // `inv @` and `ctrl @` compose in either order.
    let three = "gate g(t) a, b { rx(t) a; cx a, b; gphase(0.2); s b; }\nqubit[3] q;\n";
    let a = body(&format!(
        "{three}{}inv @ ctrl @ g(0.4) q[2], q[0], q[1];\n",
        prep(3)
    ));
    let b = body(&format!(
        "{three}{}ctrl @ inv @ g(0.4) q[2], q[0], q[1];\n",
        prep(3)
    ));
    same_state(&a, &b);
    let expect = prep_circuit(3)
        .controlled(
            Gate::standard(StandardGate::Sdg, &[]),
            &[1],
            vec![Control::one(2)],
        )
        .p(-0.2, 2)
        .controlled(
            Gate::standard(StandardGate::Cx, &[]),
            &[0, 1],
            vec![Control::one(2)],
        )
        .crx(-0.4, 2, 0);
    same_state(&a, &expect);
}

#[test]
fn modifiers_on_standard_gates() {
    let c = body(
        "qubit[3] q;\nctrl @ x q[0], q[1];\nnegctrl @ x q[0], q[1];\nctrl(2) @ x q[0], q[1], q[2];\nctrl @ negctrl @ h q[2], q[0], q[1];\n",
    );
    let x = Gate::standard(StandardGate::X, &[]);
    let h = Gate::standard(StandardGate::H, &[]);
    let expect = Circuit::new(3)
        .controlled(x.clone(), &[1], vec![Control::one(0)])
        .controlled(x.clone(), &[1], vec![Control::zero(0)])
        .controlled(x, &[2], vec![Control::one(0), Control::one(1)])
        .controlled(h, &[1], vec![Control::zero(0), Control::one(2)]);
    same_state(&c, &expect);
    assert_eq!(c.ops().len(), 4);
    // Rotations scale their angle under pow; inv negates it.
    let c = body(
        "qubit q;\npow(0.5) @ rz(0.8) q;\npow(3) @ rx(0.1) q;\ninv @ ry(0.2) q;\ninv @ pow(2) @ p(0.3) q;\n",
    );
    let expect = Circuit::new(1)
        .rz(0.4, 0)
        .rx(0.30000000000000004, 0)
        .ry(-0.2, 0)
        .p(-0.6, 0);
    assert_eq!(c.ops(), expect.ops());
    // Other integer powers repeat; non-integer ones take the matrix root.
    let c = body("qubit q;\npow(2) @ h q;\npow(-2) @ s q;\n");
    assert_eq!(c.ops(), Circuit::new(1).h(0).h(0).sdg(0).sdg(0).ops());
    let c = body("qubit q;\nh q;\npow(1/2) @ x q;\npow(0.5) @ s q;\n");
    same_state(&c, &Circuit::new(1).h(0).sx(0).t(0));
    // u2/u3 carry stdgates.inc's phase, visible under ctrl.
    let c = body("qubit[2] q;\nh q[0];\nctrl @ u3(0.5, 0.2, 0.4) q[0], q[1];\n");
    let expect = Circuit::new(2).h(0).cu3(0.5, 0.2, 0.4, 0, 1).p(-0.3, 0);
    same_state(&c, &expect);
    // A huge repetition fails on the operation limit, not on memory.
    let (line, col, msg) = body_err("qubit q;\npow(1000000000) @ h q;\n");
    assert_eq!((line, col), (2, 1));
    assert!(msg.contains("operations"), "{msg}");
    // A huge power of a rotation is one gate.
    let c = body("qubit q;\npow(10000000000) @ rz(1e-10) q;\n");
    assert_eq!(c.ops().len(), 1);
}

#[test]
fn registers_indices_slices_and_broadcasting() {
    let c = body(
        "qubit[4] q;\nqubit r;\nh q;\nx q[-1];\ncx q[0:1], q[2:3];\ny q[{0, 2}];\nz q[0:2:3];\nswap q[3:-1:2], q[0:1];\ncx r, q[1:2];\n",
    );
    let expect = Circuit::new(5)
        .h(0)
        .h(1)
        .h(2)
        .h(3)
        .x(3)
        .cx(0, 2)
        .cx(1, 3)
        .y(0)
        .y(2)
        .z(0)
        .z(2)
        .swap(3, 0)
        .swap(2, 1)
        .cx(4, 1)
        .cx(4, 2);
    assert_eq!(c.ops(), expect.ops());
    let c = body("qubit[3] q;\nlet pair = q[0:1];\nlet all = pair ++ q[2];\nx pair[1];\nh all;\n");
    assert_eq!(c.ops(), Circuit::new(3).x(1).h(0).h(1).h(2).ops());
    assert_eq!(
        body_err("qubit[2] q;\nqubit[3] r;\ncx q, r;\n"),
        (3, 7, "this register has 3 qubits, but an earlier one has 2: registers in one gate call must have the same size".into())
    );
    let (l, c, m) = body_err("qubit[2] q;\nx q[2];\n");
    assert_eq!((l, c), (2, 5));
    assert!(m.contains("out of range"), "{m}");
    let (l, c, m) = body_err("qubit[2] q;\ncx q[0], q[0];\n");
    assert_eq!((l, c), (2, 10));
    assert!(m.contains("twice"), "{m}");
    // Physical qubits.
    let c = parse(&format!("{STD}h $0;\ncx $0, $2;\n"));
    assert_eq!(c, Circuit::new(3).h(0).cx(0, 2));
    let (l, _, m) = body_err("qubit q;\nh $1;\n");
    assert_eq!(l, 2);
    assert!(m.contains("physical"), "{m}");
}

#[test]
fn gate_call_arity_is_checked() {
    assert_eq!(
        body_err("qubit[2] q;\ncx q[0];\n"),
        (2, 1, "gate `cx` acts on 2 qubits, but 1 was given".into())
    );
    assert_eq!(
        body_err("qubit[2] q;\nctrl @ cx q[0], q[1];\n"),
        (
            2,
            1,
            "gate `cx` with 1 control acts on 3 qubits, but 2 were given".into()
        )
    );
    assert_eq!(
        body_err("qubit q;\nrx q;\n"),
        (2, 1, "gate `rx` takes 1 parameter, but 0 were given".into())
    );
    assert_eq!(
        body_err("qubit q;\nfoo q;\n"),
        (2, 1, "undefined gate `foo`".into())
    );
}

#[test]
fn classical_values_fold() {
    let c = body(
        "qubit q;\n\
         const int n = 2 ** 3;\n\
         const float a = π / 4;\n\
         int m = n % 3;\n\
         m += 1;\n\
         float b = sin(a) ** 2 + cos(a) ** 2;\n\
         angle ang = tau / 8;\n\
         bool ok = (n > 4) && !(m == 0);\n\
         int k = (5 & 3) | (1 << 3) ^ 2;\n\
         uint u = int(2.7);\n\
         float yy = float(7) / 2;\n\
         float e = euler;\n\
         rz(n) q;\nrz(a) q;\nrz(m) q;\nrz(b) q;\nrz(ang) q;\nrz(k) q;\nrz(u) q;\nrz(yy) q;\nrz(-2**2) q;\n\
         rz(log(e)) q;\nrz(arccos(1) + sqrt(4) + floor(2.5) + mod(7, 4)) q;\n\
         if (ok) x q;\nif (!ok) y q;\n",
    );
    let params: Vec<f64> = c
        .ops()
        .iter()
        .map(|op| match op {
            Operation::Gate {
                gate: Gate::Standard { params, .. },
                ..
            } => params.first().copied().unwrap_or(f64::NAN),
            _ => f64::NAN,
        })
        .collect();
    let want = [
        8.0,
        PI / 4.0,
        3.0,
        1.0,
        PI / 4.0,
        11.0,
        2.0,
        3.5,
        -4.0,
        1.0,
        7.0,
    ];
    for (i, (got, want)) in params.iter().zip(want).enumerate() {
        assert!((got - want).abs() < 1e-12, "parameter {i}: {got} != {want}");
    }
    assert_eq!(c.ops().len(), want.len() + 1);
    assert_eq!(c.ops().last(), Some(&std_op(StandardGate::X, &[], &[0])));
    // Errors in constant arithmetic have positions.
    assert_eq!(
        body_err("int x = 1 / 0;\n"),
        (1, 11, "division by zero".into())
    );
    let (l, _, m) = body_err("int big = 9223372036854775807;\nbig += 1;\n");
    assert_eq!(l, 2);
    assert!(m.contains("overflow"), "{m}");
    assert_eq!(
        body_err("const int n = 1;\nn = 2;\n"),
        (
            2,
            1,
            "`n` is a constant (or an input) and cannot be assigned".into()
        )
    );
    assert_eq!(body_err("v = 1;\n"), (1, 1, "`v` is not defined".into()));
    assert_eq!(
        body_err("x = 1;\n"),
        (1, 1, "`x` is a gate, not a value".into())
    );
    assert_eq!(
        body_err("int x = 2.5;\n"),
        (
            1,
            9,
            "expected an integer, found the float 2.5 (convert it with `int(…)`)".into()
        )
    );
}

#[test]
fn loops_unroll() {
    let c = body(
        "qubit[4] q;\nconst int n = 4;\n\
         for int i in [0:3] { rx(0.5 * i) q[i]; }\n\
         for int i in [0:2:3] { x q[i]; }\n\
         for int i in [3:-1:2] { y q[i]; }\n\
         for i in {1, 3} { z q[i]; }\n\
         for uint i in [0:n-1] { if (i == 2) continue; if (i == 3) break; h q[i]; }\n\
         for bit b in \"10\" { if (b) s q[0]; else t q[0]; }\n\
         int k = 0;\nwhile (k < 2) { sx q[k]; k += 1; }\n",
    );
    let expect = Circuit::new(4)
        .rx(0.0, 0)
        .rx(0.5, 1)
        .rx(1.0, 2)
        .rx(1.5, 3)
        .x(0)
        .x(2)
        .y(3)
        .y(2)
        .z(1)
        .z(3)
        .h(0)
        .h(1)
        .t(0)
        .s(0)
        .sx(0)
        .sx(1);
    assert_eq!(c.ops(), expect.ops());
    // Loops inside gate bodies.
    let c = body(
        "gate ladder a, b, c { for int i in [1:3] { rz(i * 0.1) a; } }\nqubit[3] q;\nladder q[0], q[1], q[2];\n",
    );
    assert_eq!(c.ops().len(), 3);
    let (l, c, m) = body_err("qubit q;\nfor int i in [0:1000000000] { x q; }\n");
    assert_eq!((l, c), (2, 1));
    assert!(m.contains("1000000001 times"), "{m}");
    let (l, _, m) = body_err("qubit q;\nint i = 0;\nwhile (true) { i += 1; }\n");
    assert_eq!(l, 3);
    assert!(m.contains("iterations"), "{m}");
    assert_eq!(
        body_err("qubit q;\nbit c;\nc = measure q;\nwhile (c) { x q; }\n"),
        (
            4,
            1,
            "while loops that depend on measurement results are not supported".into()
        )
    );
    let (l, c, m) = body_err("for int i in [0:0:3] { }\n");
    assert_eq!((l, c), (1, 17));
    assert!(m.contains("step"), "{m}");
    assert_eq!(
        body_err("break;\n"),
        (1, 1, "`break` and `continue` must be inside a loop".into())
    );
}

#[test]
fn ifs_on_measured_bits_become_if_else() {
    let c = body(
        "qubit[2] q;\nbit[2] c;\nc[0] = measure q[0];\nif (c[0]) { x q[1]; } else { z q[1]; }\n",
    );
    assert_eq!(
        c.ops().last(),
        Some(&Operation::IfElse {
            condition: Condition::bit(0, true),
            then_ops: vec![std_op(StandardGate::X, &[], &[1])],
            else_ops: vec![std_op(StandardGate::Z, &[], &[1])],
        })
    );
    let x1 = || vec![std_op(StandardGate::X, &[], &[1])];
    let cases: &[(&str, Operation)] = &[
        (
            "if (c == 3) x q[1];",
            Operation::IfElse {
                condition: Condition::equals(vec![0, 1], 3),
                then_ops: x1(),
                else_ops: vec![],
            },
        ),
        (
            "if (c[0] == 1) x q[1];",
            Operation::IfElse {
                condition: Condition::equals(vec![0], 1),
                then_ops: x1(),
                else_ops: vec![],
            },
        ),
        (
            "if (!c[1]) x q[1];",
            Operation::IfElse {
                condition: Condition::equals(vec![1], 0),
                then_ops: x1(),
                else_ops: vec![],
            },
        ),
        (
            "if (c != 2) x q[1];",
            Operation::IfElse {
                condition: Condition::equals(vec![0, 1], 2),
                then_ops: vec![],
                else_ops: x1(),
            },
        ),
        (
            "if (c[0] && c[1]) x q[1];",
            Operation::IfElse {
                condition: Condition::bit(0, true),
                then_ops: vec![Operation::IfElse {
                    condition: Condition::bit(1, true),
                    then_ops: x1(),
                    else_ops: vec![],
                }],
                else_ops: vec![],
            },
        ),
        (
            "if (c[0] || c[1]) x q[1];",
            Operation::IfElse {
                condition: Condition::bit(0, true),
                then_ops: x1(),
                else_ops: vec![Operation::IfElse {
                    condition: Condition::bit(1, true),
                    then_ops: x1(),
                    else_ops: vec![],
                }],
            },
        ),
        (
            "if (c[0] & c[1]) x q[1];",
            Operation::IfElse {
                condition: Condition::bit(0, true),
                then_ops: vec![Operation::IfElse {
                    condition: Condition::bit(1, true),
                    then_ops: x1(),
                    else_ops: vec![],
                }],
                else_ops: vec![],
            },
        ),
        (
            "if (int(c) == 1 && true) x q[1];",
            Operation::IfElse {
                condition: Condition::equals(vec![0, 1], 1),
                then_ops: x1(),
                else_ops: vec![],
            },
        ),
    ];
    for (src, want) in cases {
        let c = body(&format!("qubit[2] q;\nbit[2] c;\nc = measure q;\n{src}\n"));
        assert_eq!(c.ops().last(), Some(want), "{src}");
    }
    // Two measured bits compared: both set or both clear.
    let c = body("qubit[2] q;\nbit[2] c;\nc = measure q;\nif (c[0] == c[1]) x q[1];\n");
    let Some(Operation::IfElse { condition, .. }) = c.ops().last() else {
        panic!("expected an if");
    };
    assert_eq!(condition, &Condition::bit(0, true));
    let dist = kettle_reference::exact_distribution(&body(
        "qubit[3] q;\nbit[2] c;\nbit r;\nh q[0];\nh q[1];\nc = measure q[0:1];\nif (c[0] != c[1]) x q[2];\nr = measure q[2];\n",
    ));
    for (k, p) in &dist {
        let differ = k.chars().nth(1) != k.chars().nth(2);
        assert_eq!(k.starts_with('1'), differ, "{k}: {p}");
    }
    // Bits never measured are known: the `if` folds.
    let c = body("qubit q;\nbit[2] d;\nif (d == 0) x q;\nif (d[1]) y q;\n");
    assert_eq!(c.ops(), Circuit::new(1).x(0).ops());
    // Only some bits measured: the known ones fold into the test.
    let c = body("qubit q;\nbit[2] d;\nd[1] = measure q;\nif (d == 2) x q;\nif (d == 1) y q;\n");
    assert_eq!(
        c.ops().last(),
        Some(&Operation::IfElse {
            condition: Condition::equals(vec![1], 1),
            then_ops: vec![std_op(StandardGate::X, &[], &[0])],
            else_ops: vec![],
        })
    );
    // Measurements inside branches, and nesting.
    let c = body(
        "qubit[2] q;\nbit[2] c;\nc[0] = measure q[0];\nif (c[0]) { c[1] = measure q[1]; if (c[1]) x q[0]; }\n",
    );
    let Some(Operation::IfElse { then_ops, .. }) = c.ops().last() else {
        panic!("expected an if");
    };
    assert_eq!(then_ops.len(), 2);
    assert_eq!(
        body_err("qubit q;\nbit c;\nint k = 0;\nc = measure q;\nif (c) k = 1;\n"),
        (
            5,
            8,
            "assigning to `k` inside an `if` that tests measured bits is not supported".into()
        )
    );
    let (l, c, m) = body_err("qubit[3] q;\nbit[2] c;\nc = measure q;\n");
    assert_eq!((l, c), (3, 1), "{m}");
    assert!(m.contains("cannot measure 3 qubits into 2 bits"), "{m}");
    let (l, c, m) = body_err("qubit[2] q;\nbit[2] c;\nc = measure q;\nif (c < 2) x q[0];\n");
    assert_eq!((l, c), (4, 7));
    assert!(m.contains("`<`"), "{m}");
    let (l, _, m) = body_err("qubit[2] q;\nbit[2] c;\nc = measure q;\nc[0] = 1;\n");
    assert_eq!(l, 4);
    assert!(m.contains("measurement result"), "{m}");
    let (l, _, m) = body_err("qubit q;\nbit b = 1;\n");
    assert_eq!(l, 2);
    assert!(m.contains("set to 1"), "{m}");
}

#[test]
fn if_else_runs_on_the_reference_simulator() {
    // Teleportation with classically controlled corrections.
    let src = format!(
        "{STD}qubit[3] q;\nbit[3] c;\nry(0.7) q[0];\nh q[1];\ncx q[1], q[2];\ncx q[0], q[1];\nh q[0];\n\
         c[0] = measure q[0];\nc[1] = measure q[1];\nif (c[1]) x q[2];\nif (c[0] == 1) z q[2];\nc[2] = measure q[2];\n"
    );
    let dist = kettle_reference::exact_distribution(&parse(&src));
    let p1: f64 = dist
        .iter()
        .filter(|(k, _)| k.starts_with('1'))
        .map(|(_, v)| v)
        .sum();
    let want = (0.35f64).sin().powi(2);
    assert!((p1 - want).abs() < 1e-12, "{p1} != {want}");
}

#[test]
fn subroutines_inline() {
    let c = body(
        "qubit[4] q;\nbit[4] c;\n\
         def twice(float a) -> float { return a * 2 + 1; }\n\
         def bell(qubit a, qubit b) { h a; cx a, b; }\n\
         def flip(qubit[2] r) { x r; }\n\
         def xmeasure(qubit a) -> bit { h a; return measure a; }\n\
         def count(int n) -> int { int s = 0; for int i in [1:n] { s += i; } return s; }\n\
         rx(twice(0.3)) q[0];\nbell(q[1], q[2]);\nflip(q[2:3]);\nc[0] = xmeasure(q[3]);\n\
         rz(count(4)) q[0];\nxmeasure(q[1]);\nbit r = xmeasure(q[2]);\n",
    );
    let expect = Circuit::new(4)
        .creg("c", 4)
        .creg("discarded", 1)
        .creg("r", 1)
        .rx(1.6, 0)
        .h(1)
        .cx(1, 2)
        .x(2)
        .x(3)
        .h(3)
        .measure(3, 0)
        .rz(10.0, 0)
        .h(1)
        .measure(1, 4)
        .h(2)
        .measure(2, 5);
    assert_eq!(c, expect);
    let (l, _, m) = body_err("def f(int n) -> int { return f(n - 1); }\nint x = f(3);\n");
    assert_eq!(l, 1);
    assert!(m.contains("recursion"), "{m}");
    let (l, _, m) = body_err(
        "def a(int n) -> int { return b(n); }\ndef b(int n) -> int { return a(n); }\nint x = a(1);\n",
    );
    assert_eq!(l, 2);
    assert!(m.contains("recursion"), "{m}");
    // A measurement returned by a subroutine, tested directly.
    let c = body(
        "qubit[2] q;\ndef m(qubit a) -> bit { h a; return measure a; }\nif (m(q[0])) x q[1];\nif (!m(q[1]) && true) { measure q[0]; }\n",
    );
    let x1 = vec![std_op(StandardGate::X, &[], &[1])];
    assert_eq!(
        c,
        Circuit::new(2)
            .creg("discarded", 1)
            .h(0)
            .measure(0, 0)
            .op(Operation::IfElse {
                condition: Condition::bit(0, true),
                then_ops: x1,
                else_ops: vec![]
            })
            .h(1)
            .measure(1, 0)
            .op(Operation::IfElse {
                condition: Condition::bit(0, false),
                then_ops: vec![Operation::Measure { qubit: 0, clbit: 0 }],
                else_ops: vec![],
            })
    );
    let (l, c, m) = body_err(
        "qubit[2] q;\ndef m(qubit a) -> bit { return measure a; }\nif (m(q[0]) && m(q[1])) x q;\n",
    );
    assert_eq!((l, c), (3, 16));
    assert!(m.contains("store measurement results in bits"), "{m}");
    let (l, c, m) = body_err(
        "qubit[2] q;\ndef m(qubit[2] a) -> bit[2] { return measure a; }\nif (m(q) == 1) x q;\n",
    );
    assert_eq!((l, c), (3, 5));
    assert!(m.contains("several qubits"), "{m}");
    // A subroutine's local bit holds a measurement: it gets a scratch bit.
    let c = body("qubit q;\ndef m(qubit a) { bit b; b = measure a; }\nm(q);\n");
    assert_eq!(c.ops(), [Operation::Measure { qubit: 0, clbit: 0 }]);
    assert_eq!(c.register("scratch").map(|r| r.size), Some(1));
    assert_eq!(
        body_err("int g = 1;\ndef f() -> int { return g; }\nint x = f();\n"),
        (2, 25, "`g` is declared outside a subroutine, and only constants declared outside are visible inside one".into())
    );
    // A subroutine's bit result used in an `if` after storing it.
    let c = body(
        "qubit[2] q;\nbit b;\ndef m(qubit a) -> bit { return measure a; }\nb = m(q[0]);\nif (b) x q[1];\n",
    );
    assert!(matches!(c.ops().last(), Some(Operation::IfElse { .. })));
}

#[test]
fn inputs_are_bound() {
    let src = format!(
        "{STD}input float theta;\ninput angle[32] phi;\ninput int n;\nqubit q;\nrx(theta) q;\nrz(phi * n) q;\n"
    );
    assert_eq!(
        qasm3_inputs(&src, &Limits::default()).unwrap(),
        vec![
            InputParameter {
                name: "theta".into(),
                kind: "float".into()
            },
            InputParameter {
                name: "phi".into(),
                kind: "angle".into()
            },
            InputParameter {
                name: "n".into(),
                kind: "int".into()
            },
        ]
    );
    let inputs: BTreeMap<String, f64> = [
        ("theta".to_string(), 0.5),
        ("phi".to_string(), 0.25),
        ("n".to_string(), 2.0),
    ]
    .into();
    let options = ParseOptions {
        inputs: inputs.clone(),
        ..ParseOptions::default()
    };
    let c = parse_with(&src, &options);
    assert_eq!(c.ops(), Circuit::new(1).rx(0.5, 0).rz(0.5, 0).ops());
    let mut missing = inputs.clone();
    missing.remove("phi");
    let e = err_with(
        &src,
        &ParseOptions {
            inputs: missing,
            ..ParseOptions::default()
        },
    );
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (4, 1, "no value was given for input `phi` (angle)")
    );
    let mut extra = inputs.clone();
    extra.insert("gamma".into(), 1.0);
    let e = err_with(
        &src,
        &ParseOptions {
            inputs: extra,
            ..ParseOptions::default()
        },
    );
    assert!(e.message.contains("`gamma`"), "{e}");
    let mut bad = inputs;
    bad.insert("n".into(), 1.5);
    let e = err_with(
        &src,
        &ParseOptions {
            inputs: bad,
            ..ParseOptions::default()
        },
    );
    assert_eq!(e.line, 5, "{e}");
    // Inputs are read-only and visible in gates.
    let e = err_with(
        &format!("{STD}input float w;\nw = 1;\n"),
        &ParseOptions {
            inputs: [("w".to_string(), 0.0)].into(),
            ..ParseOptions::default()
        },
    );
    assert_eq!(e.line, 4, "{e}");
    let c = parse_with(
        &format!("{STD}input float w;\ngate g a {{ rz(w) a; }}\nqubit q;\ng q;\n"),
        &ParseOptions {
            inputs: [("w".to_string(), 0.25)].into(),
            ..ParseOptions::default()
        },
    );
    assert_eq!(c.ops(), Circuit::new(1).rz(0.25, 0).ops());
    // Other formats take no inputs.
    let e = parse_qasm2_with(
        "OPENQASM 2.0;\n",
        &ParseOptions {
            inputs: [("t".to_string(), 0.0)].into(),
            ..ParseOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        e.message.contains("OpenQASM 2 programs have no inputs"),
        "{e}"
    );
}

#[test]
fn ignored_lines_and_comments() {
    let c = parse(
        "// comment\n#pragma qiskit something\nOPENQASM 3.0;\n/* block\n comment */\ninclude \"stdgates.inc\";\n\
         pragma braket verbatim\n@annotation(1) with text\nqubit q;\noutput bit b;\n@bind x\nh q;\nb = measure q;\n",
    );
    assert_eq!(c, Circuit::new(1).creg("b", 1).h(0).measure(0, 0));
}

#[test]
fn unsupported_constructs_are_named() {
    let cases: &[(&str, (u32, u32), &str)] = &[
        ("extern f(int) -> int;", (1, 1), "`extern`"),
        (
            "defcalgrammar \"openpulse\";",
            (1, 1),
            "`defcalgrammar` (pulse-level",
        ),
        ("cal { }", (1, 1), "`cal` (pulse-level"),
        ("defcal x $0 { }", (1, 1), "`defcal` (pulse-level"),
        ("port p;", (1, 1), "`port` (pulse-level"),
        ("frame f;", (1, 1), "`frame` (pulse-level"),
        ("waveform w;", (1, 1), "`waveform` (pulse-level"),
        ("opaque g q;", (1, 1), "`opaque`"),
        ("array[int, 3] a;", (1, 1), "`array` (arrays)"),
        ("complex[float] z;", (1, 1), "`complex`"),
        ("end;", (1, 1), "`end`"),
        (
            "float t = 3 * 100ns;",
            (1, 15),
            "timing literals such as `100ns`",
        ),
        ("float z = 2im;", (1, 11), "complex numbers"),
        ("int x = durationof({});", (1, 9), "`durationof` (timing)"),
        ("int x = sizeof(a);", (1, 9), "`sizeof` (arrays)"),
        (
            "def f(readonly array[int, 2] a) { }",
            (1, 7),
            "`readonly` (arrays)",
        ),
    ];
    for (src, (line, col), text) in cases {
        let (l, c, m) = body_err(&format!("{src}\n"));
        assert!(m.contains(text), "{src}: {m}");
        assert!(
            m.contains("not supported") || m.contains("cannot run"),
            "{src}: {m}"
        );
        assert_eq!((l, c), (*line, *col), "{src}: {m}");
    }
}

#[test]
fn syntax_errors_have_positions() {
    let cases: &[(&str, (u32, u32), &str)] = &[
        (
            "qubit q\nh q;",
            (1, 8),
            "expected `;` at the end of this line (the next line starts with `h`)",
        ),
        ("qubit q h q;", (1, 9), "expected `;`, found `h`"),
        ("qubit[2] q;\nh q[0;", (2, 6), "expected `]`, found `;`"),
        ("gate g a { h a;", (1, 10), "this `{` is never closed"),
        (
            "qubit q;\nif (true) { x q; } else",
            (3, 1),
            "expected a statement",
        ),
        ("int int = 3;", (1, 5), "`int` is a reserved word"),
        (
            "qubit q;\nx q; }",
            (2, 6),
            "expected a statement, found `}`",
        ),
        ("else x q;", (1, 1), "`else` without a matching `if`"),
        ("bit c = \"012\";", (1, 9), "bit string"),
        (
            "include \"other.inc\";",
            (1, 9),
            "cannot include \"other.inc\"",
        ),
        (
            "qubit q;\n{ include \"stdgates.inc\"; }",
            (2, 11),
            "only at the top level",
        ),
    ];
    for (src, (line, col), text) in cases {
        let (l, c, m) = body_err(&format!("{src}\n"));
        assert!(m.contains(text), "{src}: {m}");
        assert_eq!((l, c), (*line, *col), "{src}: {m}");
    }
}

#[test]
fn hostile_inputs_fail_fast() {
    let (l, c, m) = body_err("qubit[100000] q;\n");
    assert_eq!((l, c), (1, 7));
    assert!(m.contains("100000 qubits"), "{m}");
    let (_, _, m) = body_err("qubit[9999999999999999999999] q;\n");
    assert!(m.contains("too large"), "{m}");
    let (_, _, m) = body_err("bit[100000000] c;\n");
    assert!(m.contains("bits"), "{m}");
    // 10,000 nested parentheses and braces.
    let deep = format!(
        "qubit q;\nrz({}1{}) q;\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let (l, _, m) = body_err(&deep);
    assert_eq!(l, 2);
    assert!(m.contains("nested too deeply"), "{m}");
    let braces = format!("{}{}", "{".repeat(10_000), "}".repeat(10_000));
    let (l, _, m) = body_err(&braces);
    assert_eq!(l, 1);
    assert!(m.contains("nested too deeply"), "{m}");
    let ifs = format!("qubit q;\n{}x q;\n", "if (true) ".repeat(10_000));
    let (_, _, m) = body_err(&ifs);
    assert!(m.contains("nested too deeply"), "{m}");
    // A long flat expression is as tall as it is long.
    let flat = format!("qubit q;\nrz({}) q;\n", vec!["1"; 10_000].join(" + "));
    let (_, _, m) = body_err(&flat);
    assert!(m.contains("nested too deeply"), "{m}");
    let unary = format!("qubit q;\nrz({}1) q;\n", "-".repeat(10_000));
    let (_, _, m) = body_err(&unary);
    assert!(m.contains("nested too deeply"), "{m}");
    // Too many operations after unrolling, found while unrolling.
    let limits = Limits {
        max_operations: 1000,
        ..Limits::default()
    };
    let e = err_with(
        &format!("{STD}qubit q;\nfor int i in [0:100000] {{ x q; }}\n"),
        &ParseOptions {
            limits,
            ..ParseOptions::default()
        },
    );
    assert!(e.message.contains("more than 1000 operations"), "{e}");
    // Nested loops share one iteration budget.
    let (_, _, m) =
        body_err("for int i in [0:999] { for int j in [0:999] { for int k in [0:9] { } } }\n");
    assert!(m.contains("iterations"), "{m}");
    // Deep call chains stop at the call depth.
    let mut chain = String::from("gate g0 a { x a; }\n");
    for i in 1..100 {
        chain.push_str(&format!("gate g{i} a {{ g{} a; }}\n", i - 1));
    }
    chain.push_str("qubit q;\ng99 q;\n");
    let (_, _, m) = body_err(&chain);
    assert!(m.contains("nested more than"), "{m}");
    // ... and many levels of blocks inside many calls stay within the stack.
    let mut defs = String::new();
    for i in 0..60 {
        let inner = if i == 0 {
            "x a;".to_string()
        } else {
            format!("f{}(a);", i - 1)
        };
        defs.push_str(&format!(
            "def f{i}(qubit a) {{ {}{inner}{} }}\n",
            "{ if (true) { ".repeat(20),
            " } }".repeat(20)
        ));
    }
    defs.push_str("qubit q;\nf59(q);\n");
    let (_, _, m) = body_err(&defs);
    assert!(m.contains("nested more than"), "{m}");
    // Size limit, before anything is read.
    let big = "// padding\n".repeat(50 << 20 >> 4).into_bytes();
    assert!(big.len() > 8 << 20);
    let e = parse_program(&big, SourceFormat::Qasm3, &ParseOptions::default()).unwrap_err();
    assert!(e.to_string().contains("more than the limit"), "{e}");
    // Bytes that are not UTF-8.
    let mut bytes = format!("{STD}qubit q;\nh é").into_bytes();
    bytes.push(0xff);
    let e = parse_program(&bytes, SourceFormat::Qasm3, &ParseOptions::default()).unwrap_err();
    let ProgramError::Source(d) = e else {
        panic!("expected a source error");
    };
    assert_eq!((d.line, d.column), (4, 4));
    assert!(d.message.contains("UTF-8"), "{d}");
}

#[test]
fn includes_go_through_the_resolver() {
    let resolver = MapResolver::new(&[
        (
            "lib.inc",
            "include \"stdgates.inc\";\ngate bell a, b { h a; cx a, b; }\n",
        ),
        ("a.inc", "include \"b.inc\";\n"),
        ("b.inc", "include \"a.inc\";\n"),
        ("bad.inc", "gate g a {\n  h a;\n  foo a;\n}\n"),
        ("../up.inc", "const int k = 1;\n"),
    ]);
    let options = ParseOptions {
        includes: Some(&resolver),
        ..ParseOptions::default()
    };
    let c = parse_with(
        "include \"lib.inc\";\nqubit[2] q;\nbell q[0], q[1];\n",
        &options,
    );
    assert_eq!(c, Circuit::new(2).h(0).cx(0, 1));
    let e = err_with("include \"a.inc\";\n", &options);
    assert_eq!(
        e.message,
        "include cycle: a.inc includes b.inc includes a.inc"
    );
    assert_eq!(e.file.as_deref(), Some("b.inc"));
    let e = err_with("OPENQASM 3;\ninclude \"missing.inc\";\n", &options);
    assert_eq!(
        e.to_string(),
        "2:9: cannot include \"missing.inc\": no such file"
    );
    let e = err_with(
        "include \"stdgates.inc\";\ninclude \"bad.inc\";\n",
        &options,
    );
    assert_eq!(e.to_string(), "bad.inc:3:3: undefined gate `foo`");
    // The name reaches the resolver untouched; the resolver decides.
    parse_with("include \"../up.inc\";\nqubit q;\n", &options);
    assert!(resolver.asked.borrow().contains(&"../up.inc".to_string()));
    // stdgates.inc never reaches the resolver.
    assert!(
        !resolver
            .asked
            .borrow()
            .contains(&"stdgates.inc".to_string())
    );
    // Included text counts towards the size limit.
    let big = MapResolver::new(&[("big.inc", &"// pad\n".repeat(200))]);
    let limits = Limits {
        max_source_bytes: 1000,
        ..Limits::default()
    };
    let e = err_with(
        "include \"big.inc\";\n",
        &ParseOptions {
            limits,
            includes: Some(&big),
            ..ParseOptions::default()
        },
    );
    assert!(
        e.message.contains("more than the limit of 1000 bytes"),
        "{e}"
    );
    // Without a resolver only stdgates.inc exists.
    let e = err("include \"lib.inc\";\n");
    assert_eq!(
        e.message,
        "cannot include \"lib.inc\": only \"stdgates.inc\" is available here"
    );
}

#[test]
fn qasm2_includes_go_through_the_resolver() {
    let resolver = MapResolver::new(&[
        ("lib.inc", "gate bell a, b { h a; cx a, b; }\n"),
        ("a.inc", "include \"b.inc\";\n"),
        ("b.inc", "include \"a.inc\";\n"),
        ("bad.inc", "gate g a {\n  h a;\n  foo a;\n}\n"),
    ]);
    let options = ParseOptions {
        includes: Some(&resolver),
        ..ParseOptions::default()
    };
    let c = parse_qasm2_with(
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\ninclude \"lib.inc\";\nqreg q[2];\nbell q[0], q[1];\n",
        &options,
    )
    .unwrap();
    assert_eq!(c, Circuit::new(2).h(0).cx(0, 1));
    let e = parse_qasm2_with("OPENQASM 2.0;\ninclude \"a.inc\";\n", &options).unwrap_err();
    assert_eq!(
        e.to_string(),
        "b.inc:1:9: include cycle: a.inc includes b.inc includes a.inc"
    );
    let e = parse_qasm2_with(
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\ninclude \"bad.inc\";\n",
        &options,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "bad.inc:3:3: undefined gate `foo`");
    let e = parse_qasm2_with("OPENQASM 2.0;\ninclude \"nope.inc\";\n", &options).unwrap_err();
    assert_eq!(
        e.to_string(),
        "2:9: cannot include \"nope.inc\": no such file"
    );
    assert!(!resolver.asked.borrow().contains(&"qelib1.inc".to_string()));
}

/// What `qiskit.qasm3.dumps` writes for a circuit with gates outside
/// stdgates.inc (as Qiskit 1.x/2.x exports them: definitions with
/// `_gate_p_`/`_gate_q_` names), an input parameter and measurements.
const QISKIT_DUMPS: &str = "OPENQASM 3.0;
include \"stdgates.inc\";
input float[64] theta;
gate rzx(_gate_p_0) _gate_q_0, _gate_q_1 {
  h _gate_q_1;
  cx _gate_q_0, _gate_q_1;
  rz(_gate_p_0) _gate_q_1;
  cx _gate_q_0, _gate_q_1;
  h _gate_q_1;
}
gate ecr _gate_q_0, _gate_q_1 {
  rzx(pi/4) _gate_q_0, _gate_q_1;
  x _gate_q_0;
  rzx(-pi/4) _gate_q_0, _gate_q_1;
}
gate rzz(_gate_p_0) _gate_q_0, _gate_q_1 {
  cx _gate_q_0, _gate_q_1;
  rz(_gate_p_0) _gate_q_1;
  cx _gate_q_0, _gate_q_1;
}
gate rxx(_gate_p_0) _gate_q_0, _gate_q_1 {
  h _gate_q_0;
  h _gate_q_1;
  cx _gate_q_0, _gate_q_1;
  rz(_gate_p_0) _gate_q_1;
  cx _gate_q_0, _gate_q_1;
  h _gate_q_1;
  h _gate_q_0;
}
gate ryy(_gate_p_0) _gate_q_0, _gate_q_1 {
  rx(pi/2) _gate_q_0;
  rx(pi/2) _gate_q_1;
  cx _gate_q_0, _gate_q_1;
  rz(_gate_p_0) _gate_q_1;
  cx _gate_q_0, _gate_q_1;
  rx(-pi/2) _gate_q_0;
  rx(-pi/2) _gate_q_1;
}
gate sxdg _gate_q_0 {
  s _gate_q_0;
  h _gate_q_0;
  s _gate_q_0;
}
gate iswap _gate_q_0, _gate_q_1 {
  s _gate_q_0;
  s _gate_q_1;
  h _gate_q_0;
  cx _gate_q_0, _gate_q_1;
  cx _gate_q_1, _gate_q_0;
  h _gate_q_1;
}
gate dcx _gate_q_0, _gate_q_1 {
  cx _gate_q_0, _gate_q_1;
  cx _gate_q_1, _gate_q_0;
}
bit[3] c;
qubit[3] q;
h q[0];
rzx(theta) q[0], q[1];
ecr q[1], q[2];
rzz(0.3) q[0], q[2];
rxx(theta/2) q[1], q[0];
ryy(-0.7) q[2], q[1];
sxdg q[0];
iswap q[0], q[2];
dcx q[2], q[1];
barrier q[0], q[1], q[2];
c[0] = measure q[0];
c[1] = measure q[1];
c[2] = measure q[2];
";

#[test]
fn qiskit_exports_parse() {
    let options = ParseOptions {
        inputs: [("theta".to_string(), 0.9)].into(),
        ..ParseOptions::default()
    };
    let c = parse_with(QISKIT_DUMPS, &options);
    assert_eq!(c.num_clbits(), 3);
    let unitary = |c: &Circuit| {
        let mut out = Circuit::new(c.num_qubits());
        for op in c.ops() {
            if !matches!(op, Operation::Measure { .. }) {
                out.push(op.clone());
            }
        }
        out
    };
    let expect = Circuit::new(3)
        .h(0)
        .rzx(0.9, 0, 1)
        .ecr(1, 2)
        .rzz(0.3, 0, 2)
        .rxx(0.45, 1, 0)
        .standard(StandardGate::Ryy, &[-0.7], &[2, 1])
        .sxdg(0)
        .iswap(0, 2)
        .cx(2, 1)
        .cx(1, 2);
    let f = kettle_reference::fidelity(&state(&unitary(&c)), &state(&expect));
    assert!((f - 1.0).abs() < 1e-12, "fidelity {f}");
}

#[test]
fn detect_format_reads_content_then_name() {
    use SourceFormat::*;
    let cases: &[(&[u8], Option<&str>, Option<SourceFormat>)] = &[
        (b"OPENQASM 3.0;", None, Some(Qasm3)),
        (b"/* c */ // d\n  OPENQASM 3;", Some("x.qasm2"), Some(Qasm3)),
        (b"OPENQASM 2.0;", Some("x.qasm3"), Some(Qasm2)),
        (b"\xef\xbb\xbf{}", None, Some(Json)),
        (b"qubit q;", Some("x.json"), Some(Json)),
        (b"qubit q;", Some("x.QASM2"), Some(Qasm2)),
        (b"qubit q;", Some("x.qasm"), Some(Qasm3)),
        (b"qubit q;", None, Some(Qasm3)),
        (b"", Some("x.qasm"), None),
        (b"   ", None, None),
        (b"/* never closed", None, None),
        (b"OPENQASM", None, Some(Qasm3)),
    ];
    for (src, name, want) in cases {
        assert_eq!(
            detect_format(src, *name),
            *want,
            "{:?} {name:?}",
            String::from_utf8_lossy(src)
        );
    }
    assert_eq!(Qasm3.name(), "qasm3");
    assert_eq!(Qasm2.name(), "qasm2");
    assert_eq!(Json.name(), "json");
}

#[test]
fn parse_program_dispatches_and_displays_errors() {
    let options = ParseOptions::default();
    let c = parse_program(
        b"OPENQASM 2.0;\nqreg q[1];\nU(0,0,0) q[0];\n",
        SourceFormat::Qasm2,
        &options,
    )
    .unwrap();
    assert_eq!(c.ops().len(), 1);
    let c = parse_program(b"qubit q;\nU(0,0,0) q;\n", SourceFormat::Qasm3, &options).unwrap();
    assert_eq!(c.ops().len(), 1);
    let c = parse_program(br#"{"qubits": 1, "ops": []}"#, SourceFormat::Json, &options).unwrap();
    assert_eq!(c.num_qubits(), 1);
    let e = parse_program(br#"{"qubits": "x"}"#, SourceFormat::Json, &options).unwrap_err();
    assert!(matches!(e, ProgramError::Json(_)));
    assert!(e.to_string().starts_with("$.qubits: "), "{e}");
    let e = parse_program(b"qubit q;\nfoo q;", SourceFormat::Qasm3, &options).unwrap_err();
    assert_eq!(e.to_string(), "2:1: undefined gate `foo`");
    let _: &dyn std::error::Error = &e;
    let d = Diagnostic {
        message: "m".into(),
        line: 1,
        column: 2,
        file: Some("lib.inc".into()),
        limit: None,
    };
    assert_eq!(d.to_string(), "lib.inc:1:2: m");
}

/// A valid program touching most of the grammar, for the fuzz test.
const SAMPLE: &str = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\n// sample\n\
const int n = 3;\ninput float theta;\nqubit[n] q;\nbit[n] c;\n\
gate g(a) x, y { ctrl @ rz(a) x, y; gphase(a / 2); inv @ s y; }\n\
def f(qubit r, float t) -> bit { rx(t ** 2) r; return measure r; }\n\
for int i in [0:n-1] { h q[i]; }\nfor i in {0, 2} { pow(0.5) @ x q[i]; }\n\
g(theta) q[0], q[1];\nnegctrl(2) @ z q[0], q[1], q[2];\nc[0] = f(q[2], 0.3);\n\
if (c[0] == 1 && !c[1]) { x q[1]; } else y q[1];\nswitch (c) { case 1, 2 { x q[0]; } default { z q[1]; } }\nlet a = q[0:1] ++ q[2];\nbarrier a;\n\
int k = 0;\nwhile (k < 2) { k += 1; }\nc = measure q;\n";

#[test]
fn sample_program_parses() {
    let options = ParseOptions {
        inputs: [("theta".to_string(), 0.4)].into(),
        ..ParseOptions::default()
    };
    let c = parse_with(SAMPLE, &options);
    assert_eq!((c.num_qubits(), c.num_clbits()), (3, 3));
}

#[test]
fn no_input_makes_the_parser_panic() {
    let options = ParseOptions {
        inputs: [("theta".to_string(), 0.4)].into(),
        limits: Limits {
            max_operations: 10_000,
            max_loop_iterations: 10_000,
            ..Limits::default()
        },
        ..ParseOptions::default()
    };
    let fragments = [
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        ";",
        ",",
        ":",
        "@",
        "**",
        "==",
        "!",
        "&&",
        "||",
        "->",
        "=",
        "+=",
        "ctrl",
        "negctrl",
        "inv",
        "pow",
        "gate",
        "def",
        "for",
        "while",
        "if",
        "else",
        "measure",
        "return",
        "break",
        "qubit",
        "bit",
        "int",
        "float",
        "const",
        "input",
        "let",
        "$0",
        "q",
        "c",
        "0",
        "-1",
        "1e400",
        "π",
        "\"01\"",
        "100ns",
        "// x\n",
        "/*",
        "#pragma x\n",
        "gphase",
        "\n@ann\n",
        "9999999999999999999999",
        "[0:2:10]",
        "{0, 1}",
        "++",
        "switch",
        "case",
        "default",
    ];
    let mut rng = crate::tests::Rng(0x9E37_79B9_7F4A_7C15);
    let chars: Vec<char> = SAMPLE.chars().collect();
    for _ in 0..3000 {
        let mut s: Vec<char> = chars.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(s.len() + 1);
            match rng.below(4) {
                0 if !s.is_empty() => {
                    let end = (at + rng.below(8)).min(s.len());
                    let at = at.min(end);
                    s.drain(at..end);
                }
                1 => {
                    let f = fragments[rng.below(fragments.len())];
                    for (k, ch) in f.chars().enumerate() {
                        s.insert((at + k).min(s.len()), ch);
                    }
                }
                2 if !s.is_empty() => {
                    let from = rng.below(s.len());
                    let end = (from + rng.below(30)).min(s.len());
                    let piece: Vec<char> = s[from..end].to_vec();
                    for (k, ch) in piece.into_iter().enumerate() {
                        s.insert((at + k).min(s.len()), ch);
                    }
                }
                _ => s.truncate(at),
            }
        }
        let src: String = s.into_iter().collect();
        let _ = parse_qasm3(&src, &options);
        let _ = qasm3_inputs(&src, &options.limits);
    }
}

#[test]
#[ignore = "timing, run by hand"]
fn timing_of_large_programs() {
    let mut src = format!("{STD}qubit[20] q;\nbit[20] c;\n");
    for i in 0..200_000 {
        src.push_str(&format!(
            "cx q[{}], q[{}];\nrz({}) q[{}];\n",
            i % 20,
            (i + 1) % 20,
            i,
            i % 20
        ));
    }
    let t = std::time::Instant::now();
    let c = parse(&src);
    let straight = t.elapsed();
    let looped = format!(
        "{STD}qubit[20] q;\nfor int i in [0:199999] {{ cx q[i % 20], q[(i + 1) % 20]; rz(i) q[i % 20]; }}\n"
    );
    let t = std::time::Instant::now();
    let d = parse(&looped);
    let unrolled = t.elapsed();
    assert_eq!(c.ops().len(), d.ops().len());
    let q2: String = src
        .replace(STD, "OPENQASM 2.0;\ninclude \"qelib1.inc\";\n")
        .replace("qubit[20] q;", "qreg q[20];")
        .replace("bit[20] c;", "creg c[20];");
    let t = std::time::Instant::now();
    crate::parse_qasm2(&q2, &Limits::default()).unwrap();
    let qasm2 = t.elapsed();
    panic!("400k ops: qasm3 {straight:?}, loop {unrolled:?}, qasm2 {qasm2:?}");
}

#[test]
fn scoping_and_definition_errors() {
    let cases: &[(&str, (u32, u32), &str)] = &[
        ("gate g a { g a; }", (1, 12), "calls itself"),
        ("gate g a, a { }", (1, 1), "declared twice"),
        ("gate g(t, t) a { }", (1, 1), "declared twice"),
        (
            "gate h a { }",
            (1, 1),
            "already defined as a gate (by stdgates.inc)",
        ),
        (
            "gate g a { measure a; }",
            (1, 12),
            "`measure` cannot appear in a gate",
        ),
        (
            "gate g a { reset a; }",
            (1, 12),
            "`reset` cannot appear in a gate",
        ),
        ("gate g a { qubit b; }", (1, 12), "cannot declare qubits"),
        (
            "qubit q;\nint k = 1;\ngate g a { rz(k) a; }\ng q;",
            (3, 15),
            "only constants declared outside",
        ),
        (
            "qubit q;\ngate g a { x q; }\ng q;",
            (2, 14),
            "only constants declared outside",
        ),
        ("{ qubit q; }", (1, 3), "only at the top level"),
        ("{ gate g a { } }", (1, 3), "only at the top level"),
        ("{ def f() { } }", (1, 3), "only at the top level"),
        (
            "if (true) { input float t; }",
            (1, 13),
            "only at the top level",
        ),
        ("return;", (1, 1), "`return` must be inside a subroutine"),
        ("def f() { break; }\nf();", (1, 11), "inside a loop"),
        (
            "def f() -> int { }\nint k = f();",
            (2, 9),
            "must return a value",
        ),
        (
            "def f() { return 1; }\nf();",
            (1, 11),
            "declares no return type",
        ),
        (
            "def f(int a) { }\nf(1, 2);",
            (2, 1),
            "takes 1 argument, but 2 were given",
        ),
        (
            "qubit[2] q;\ndef f(qubit a) { }\nf(q);",
            (3, 3),
            "takes 1 qubit, but 2 qubits given",
        ),
        ("int k;\nint k;", (2, 1), "already declared"),
        ("qubit q;\nbit q;", (2, 1), "already declared"),
        (
            "def f() { }\nint f;",
            (2, 1),
            "already defined as a gate or subroutine",
        ),
        ("qubit[2] q;\nlet a = q ++ q[0];", (2, 11), "twice"),
        (
            "qubit q;\nf(q);",
            (2, 1),
            "`f` is not a function or subroutine",
        ),
        ("qubit q;\nint k = h;", (2, 9), "`h` is a gate, not a value"),
        (
            "qubit q;\nint k = q;",
            (2, 9),
            "must be a value, not qubits",
        ),
        ("int k = 1;\nx k;", (2, 3), "expected qubits"),
    ];
    for (src, (line, col), text) in cases {
        let (l, c, m) = body_err(&format!("{src}\n"));
        assert!(m.contains(text), "{src}: {m}");
        assert_eq!((l, c), (*line, *col), "{src}: {m}");
    }
    // Block-local variables end with their block; shadowing works.
    let c = body(
        "qubit q;\nint k = 1;\n{ int k = 2; rz(k) q; }\nrz(k) q;\nfor int k in [5:5] { rz(k) q; }\nrz(k) q;\n",
    );
    let ks: Vec<f64> = c
        .ops()
        .iter()
        .map(|op| match op {
            Operation::Gate {
                gate: Gate::Standard { params, .. },
                ..
            } => params[0],
            _ => f64::NAN,
        })
        .collect();
    assert_eq!(ks, vec![2.0, 1.0, 5.0, 1.0]);
    // Bits local to a subroutine hold known values.
    let c = body(
        "qubit q;\ndef f(bit b, bit[2] m) -> int { bit[2] z = m; z[0] = b; return int(z); }\nrz(f(1, \"10\")) q;\n",
    );
    assert_eq!(c.ops(), Circuit::new(1).rz(3.0, 0).ops());
}

#[test]
fn classical_work_is_bounded() {
    // Wide local registers in a long loop: bounded time and memory.
    let (_, _, m) = body_err("for int i in [0:999999] { bit[65536] b; }\n");
    assert!(m.contains("classical bits"), "{m}");
    let (_, _, m) = body_err("bit[65536] c;\nfor int i in [0:999999] { if (c == 0) { } }\n");
    assert!(m.contains("classical bits"), "{m}");
    // Bits local to a loop body do not accumulate.
    let c = body("qubit q;\nfor int i in [0:9999] { bit[4] b = i % 16; if (b[0]) x q; }\n");
    assert_eq!(c.ops().len(), 5000);
}

#[test]
fn switch_free_control_flow_corners() {
    // `if` on a known value inside a loop, `while` with `break`, nested loops.
    let c = body(
        "qubit[2] q;\nint n = 0;\nwhile (true) { n += 1; if (n > 3) break; x q[0]; }\n\
         for int i in [0:1] { for int j in [0:1] { if (i == j) continue; cx q[i], q[j]; } }\n",
    );
    assert_eq!(
        c.ops(),
        Circuit::new(2).x(0).x(0).x(0).cx(0, 1).cx(1, 0).ops()
    );
    // An empty range runs zero times; a negative step counts down.
    let c = body("qubit q;\nfor int i in [3:1] { x q; }\nfor int i in [2:-2:-2] { rz(i) q; }\n");
    assert_eq!(
        c.ops(),
        Circuit::new(1).rz(2.0, 0).rz(0.0, 0).rz(-2.0, 0).ops()
    );
}

#[test]
fn switch_statements() {
    // Known target: the case is chosen now.
    let c = body(
        "qubit q;\nint i = 2;\n\
         switch (i) { case 1 { x q; } case 2, 3 { y q; } default { z q; } }\n\
         switch (i + 5) { case 1 { x q; } default { z q; } }\nswitch (0) { case 1 { x q; } }\n",
    );
    assert_eq!(c.ops(), Circuit::new(1).y(0).z(0).ops());
    // Measured target: an if/else-if chain.
    let c = body(
        "qubit[2] q;\nbit[2] c;\nc = measure q;\nswitch (c) {\n  case 0 { x q[0]; }\n  case 1, 2 { y q[0]; }\n  default { z q[0]; }\n}\n",
    );
    let g = |s: StandardGate| vec![std_op(s, &[], &[0])];
    let test = |v| Condition::equals(vec![0, 1], v);
    let want = Operation::IfElse {
        condition: test(0),
        then_ops: g(StandardGate::X),
        else_ops: vec![Operation::IfElse {
            condition: test(1),
            then_ops: g(StandardGate::Y),
            else_ops: vec![Operation::IfElse {
                condition: test(2),
                then_ops: g(StandardGate::Y),
                else_ops: g(StandardGate::Z),
            }],
        }],
    };
    assert_eq!(c.ops().last(), Some(&want));
    let dist = kettle_reference::exact_distribution(&body(
        "qubit[3] q;\nbit[2] c;\nbit r;\nh q[0];\nh q[1];\nc = measure q[0:1];\n\
         switch (c) { case 3 { x q[2]; } default { } }\nr = measure q[2];\n",
    ));
    for (k, p) in &dist {
        assert_eq!(k.starts_with('1'), k.ends_with("11"), "{k}: {p}");
    }
    let cases: &[(&str, (u32, u32), &str)] = &[
        (
            "int i = 1;\nswitch (i) { case 1 { } case 1 { } }",
            (2, 30),
            "appears twice",
        ),
        (
            "int i = 1;\nswitch (i) { default { } case 1 { } }",
            (2, 26),
            "`default` must be the last",
        ),
        ("case 1 { }", (1, 1), "`case` outside a `switch`"),
        (
            "int i = 1;\nswitch (i) { x; }",
            (2, 14),
            "expected `case`, `default` or `}`",
        ),
        ("qubit q;\nswitch (q) { }", (2, 9), "integer or bits"),
    ];
    for (src, (line, col), text) in cases {
        let (l, c, m) = body_err(&format!("{src}\n"));
        assert!(m.contains(text), "{src}: {m}");
        assert_eq!((l, c), (*line, *col), "{src}: {m}");
    }
}

/// Fuzz-campaign findings (qasm3): definitions that each call the one before
/// twice, but produce no operations (empty gates, empty or classical
/// subroutines, functions returning integers), were never stopped by the
/// operation limit, and a 2 KB program made 2^40 calls (a hang). Every
/// inlined call now counts against `Limits::max_calls`.
#[test]
fn doubling_chains_of_calls_are_refused() {
    let chain = |def0: &str, def: &dyn Fn(usize) -> String, call: &str| {
        let mut src = String::from("OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit q;\n");
        src.push_str(def0);
        for i in 1..40 {
            src.push_str(&def(i));
        }
        src.push_str(call);
        src
    };
    let gates = chain(
        "gate g0 a { }\n",
        &|i| format!("gate g{i} a {{ g{} a; g{} a; }}\n", i - 1, i - 1),
        "g39 q;\n",
    );
    let subroutines = chain(
        "def g0(qubit a) { int x = 1; }\n",
        &|i| format!("def g{i}(qubit a) {{ g{}(a); g{}(a); }}\n", i - 1, i - 1),
        "g39(q);\n",
    );
    let functions = chain(
        "def f0() -> int { return 1; }\n",
        &|i| {
            format!(
                "def f{i}() -> int {{ return f{}() + f{}(); }}\n",
                i - 1,
                i - 1
            )
        },
        "int x = f39();\n",
    );
    let limit = "the program makes more than 1000000 gate and subroutine calls in all (the limit)";
    for (src, at) in [(gates, "5:13"), (subroutines, "5:19"), (functions, "5:26")] {
        let started = std::time::Instant::now();
        assert_eq!(err(&src).to_string(), format!("{at}: {limit}"));
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }
    // A loop of calls counts each one.
    let src = "qubit q;\ndef f() { }\nfor int i in [0:9] { f(); }\n";
    assert!(parse(src).ops().is_empty());
    let options = ParseOptions {
        limits: Limits {
            max_calls: 9,
            ..Limits::default()
        },
        ..ParseOptions::default()
    };
    assert_eq!(
        err_with(src, &options).to_string(),
        "3:22: the program makes more than 9 gate and subroutine calls in all (the limit)"
    );
}

/// Issue 15, finding 1: a loop of a thousand assignments run a million times
/// stayed within every limit (iterations were counted, not the statements in
/// them) and parsed for minutes. Every statement and expression now costs a
/// step of `Limits::max_classical_steps`; the error has its position and
/// names the limit.
#[test]
fn classical_work_counts_against_a_budget() {
    let assignments: String = (0..1000).map(|i| format!("x = {i}; ")).collect();
    let attack = format!("int x = 0;\nfor int i in [0:999999] {{ {assignments}}}\n");
    let e = err(&attack);
    assert_eq!(e.limit, Some("max_classical_steps"), "{e}");
    assert_eq!(e.line, 2, "{e}");
    assert!(e.message.contains("more than 25000000 steps"), "{e}");

    // Statements, expressions and iterations each cost one step: `x = i + 1;`
    // is a statement and three expressions, and the loop runs 4 times.
    let src = "int x = 0;\nfor int i in [0:3] { x = i + 1; }\n";
    let with_budget = |steps| ParseOptions {
        limits: Limits {
            max_classical_steps: steps,
            ..Limits::default()
        },
        ..ParseOptions::default()
    };
    // 2 (declaration and its value) + 3 (the loop and its range bounds) +
    // 4 × (1 iteration + 1 statement + 3 expressions).
    parse_with(src, &with_budget(25));
    let e = err_with(src, &with_budget(24));
    assert_eq!(
        e.to_string(),
        "2:30: the program does more than 24 steps of classical work (statements executed and expressions evaluated, loops counted at every iteration; the limit `max_classical_steps`)"
    );
    assert_eq!(e.limit, Some("max_classical_steps"));
    // Other errors name no limit.
    assert_eq!(err("int x = y;\n").limit, None);
}

/// A parse ends soon after its deadline or its stop flag, whatever its
/// budgets still allow, and says which ended it.
#[test]
fn a_deadline_or_a_stop_flag_ends_a_parse() {
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};
    let endless = "int x = 0;\nwhile (true) { x = x + 1; }\n";
    let unbounded = Limits {
        max_classical_steps: u64::MAX,
        max_loop_iterations: u64::MAX,
        ..Limits::default()
    };
    let options = ParseOptions {
        limits: unbounded.clone(),
        deadline: Some(Instant::now() + Duration::from_millis(50)),
        ..ParseOptions::default()
    };
    let e = err_with(endless, &options);
    assert_eq!(e.limit, Some("deadline"), "{e}");
    assert_eq!(e.line, 2, "{e}");

    let stop = AtomicBool::new(false);
    let options = || ParseOptions {
        limits: unbounded.clone(),
        stop: Some(&stop),
        ..ParseOptions::default()
    };
    let e = std::thread::scope(|s| {
        let parse = s.spawn(|| err_with(endless, &options()));
        std::thread::sleep(Duration::from_millis(20));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        parse
            .join()
            .unwrap_or_else(|_| panic!("the parse panicked"))
    });
    assert_eq!(e.limit, Some("stopped"), "{e}");
    // A raised flag stops a parse that has not begun.
    let e = err_with(endless, &options());
    assert_eq!(e.limit, Some("stopped"), "{e}");
}

#[test]
fn timing_is_the_identity_on_an_ideal_simulator() {
    let c = parse(&format!(
        "{STD}qubit[2] q;\nbit[2] c;\nstretch s;\nduration d = 2 * 100ns;\n\
         h q[0];\ndelay[d] q[0];\ndelay[s] q;\ndelay[50ns];\n\
         box [1us] {{\n  cx[200ns] q[0], q[1];\n}}\nbox {{ x q[1]; }}\nc = measure q;\n"
    ));
    let plain = parse(&format!(
        "{STD}qubit[2] q;\nbit[2] c;\nh q[0];\ncx q[0], q[1];\nx q[1];\nc = measure q;\n"
    ));
    let gates = |c: &Circuit| -> Vec<Operation> {
        c.ops()
            .iter()
            .filter(|op| !matches!(op, Operation::Barrier { .. }))
            .cloned()
            .collect()
    };
    assert_eq!(gates(&c), gates(&plain));
    // Timing values outside designators stay refused, by name.
    let e = err(&format!("{STD}qubit q;\nfloat t = 3 * 100ns;\n"));
    assert!(e.message.contains("timing literals"), "{e}");
    let e = err(&format!("{STD}qubit q;\ndelay[100ns q;\n"));
    assert!(e.message.contains("never closed"), "{e}");
}

/// One of the OpenQASM project's example programs (`tests/openqasm-examples`).
fn example(name: &str) -> &'static str {
    match name {
        "adder" => include_str!("../../tests/openqasm-examples/adder.qasm"),
        "alignment" => include_str!("../../tests/openqasm-examples/alignment.qasm"),
        "arrays" => include_str!("../../tests/openqasm-examples/arrays.qasm"),
        "cphase" => include_str!("../../tests/openqasm-examples/cphase.qasm"),
        "dd" => include_str!("../../tests/openqasm-examples/dd.qasm"),
        "defcal" => include_str!("../../tests/openqasm-examples/defcal.qasm"),
        "gateteleport" => include_str!("../../tests/openqasm-examples/gateteleport.qasm"),
        "inverseqft1" => include_str!("../../tests/openqasm-examples/inverseqft1.qasm"),
        "inverseqft2" => include_str!("../../tests/openqasm-examples/inverseqft2.qasm"),
        "ipe" => include_str!("../../tests/openqasm-examples/ipe.qasm"),
        "msd" => include_str!("../../tests/openqasm-examples/msd.qasm"),
        "qec" => include_str!("../../tests/openqasm-examples/qec.qasm"),
        "qft" => include_str!("../../tests/openqasm-examples/qft.qasm"),
        "qpt" => include_str!("../../tests/openqasm-examples/qpt.qasm"),
        "rb" => include_str!("../../tests/openqasm-examples/rb.qasm"),
        "rus" => include_str!("../../tests/openqasm-examples/rus.qasm"),
        "scqec" => include_str!("../../tests/openqasm-examples/scqec.qasm"),
        "t1" => include_str!("../../tests/openqasm-examples/t1.qasm"),
        "teleport" => include_str!("../../tests/openqasm-examples/teleport.qasm"),
        "varteleport" => include_str!("../../tests/openqasm-examples/varteleport.qasm"),
        "vqe" => include_str!("../../tests/openqasm-examples/vqe.qasm"),
        _ => panic!("no example {name}"),
    }
}

/// `src` with `from` (which must occur) replaced by `to`.
fn edited(src: &str, from: &str, to: &str) -> String {
    assert!(src.contains(from), "`{from}` is not in the program");
    src.replacen(from, to, 1)
}

/// The exact distribution of the classical bits (keys with bit 0 on the
/// right), checked against `want`: every outcome of either with probability
/// above 1e-12 in both, within 1e-9.
fn assert_distribution(c: &Circuit, want: &BTreeMap<String, f64>) {
    let got = kettle_reference::exact_distribution(c);
    for key in got.keys().chain(want.keys()) {
        let (g, w) = (
            got.get(key).copied().unwrap_or(0.0),
            want.get(key).copied().unwrap_or(0.0),
        );
        assert!((g - w).abs() < 1e-9, "P({key}) = {g}, expected {w}");
    }
}

fn certain(key: &str) -> BTreeMap<String, f64> {
    [(key.to_string(), 1.0)].into()
}

/// The examples an ideal simulator can run give what they should, worked out
/// by hand; the others are refused by name, where the construct is.
#[test]
fn openqasm_examples_run_with_their_results() {
    // 1 + 15 with the Cuccaro adder: ans = 16.
    assert_distribution(&parse(example("adder")), &certain("10000"));
    // The QFT of |0101⟩ measured: every outcome equally likely.
    let uniform: BTreeMap<String, f64> =
        (0..16).map(|k| (format!("{k:04b}"), 1.0 / 16.0)).collect();
    assert_distribution(&parse(example("qft")), &uniform);
    // H between empty tomography gates: a fair coin.
    assert_distribution(
        &parse(example("qpt")),
        &[("0".into(), 0.5), ("1".into(), 0.5)].into(),
    );
    // The randomized-benchmarking sequence is the identity.
    assert_distribution(&parse(example("rb")), &certain("00"));
    // Timing only: a state, no bits.
    assert_eq!(parse(example("alignment")).num_clbits(), 0);
    // Teleporting U(0.3, 0.2, 0.1)|0⟩: c2 is 1 with probability sin²(0.15),
    // c0 and c1 are fair coins.
    let c = parse(example("teleport"));
    let mut want = BTreeMap::new();
    for c01 in 0..4 {
        let p1 = 0.15f64.sin().powi(2);
        want.insert(format!("0{c01:02b}"), (1.0 - p1) / 4.0);
        want.insert(format!("1{c01:02b}"), p1 / 4.0);
    }
    assert_distribution(&c, &want);

    // Repetition-code syndrome measured in a subroutine's own `bit[2] b`,
    // returned, stored in `syn` and tested: every single error is found and
    // corrected (c = 000), and `syn` (bits 3, 4) says which.
    let qec = example("qec");
    let c = parse(qec);
    assert_eq!(
        c.registers()
            .iter()
            .map(|r| (r.name.as_str(), r.size))
            .collect::<Vec<_>>(),
        [("c", 3), ("syn", 2)],
        "the syndrome is measured straight into `syn`, no scratch bits"
    );
    assert_distribution(&c, &certain("01000"));
    for (error, syn) in [("", "00"), ("x q[1];", "11"), ("x q[2];", "10")] {
        let src = edited(qec, "x q[0]; // insert an error", error);
        assert_distribution(&parse(&src), &certain(&format!("{syn}000")));
    }

    // The semi-classical inverse QFT (corrections conditioned on the
    // measured register, or on each bit) reads k from the Fourier state
    // ⊗_j (|0⟩ + e^{-2πi·k·2^{3-j}/16}|1⟩) exactly; the example's own input
    // is k = 0.
    for name in ["inverseqft1", "inverseqft2"] {
        let src = example(name);
        assert_distribution(&parse(src), &certain("0000"));
        for k in 0..16 {
            let prep: String = (0..4)
                .map(|j| {
                    format!(
                        "h q[{j}];\np(-2 * pi * {k} * {} / 16) q[{j}];\n",
                        1 << (3 - j)
                    )
                })
                .collect();
            let src = edited(src, "h q;\nbarrier q;", &format!("{prep}barrier q;"));
            assert_distribution(&parse(&src), &certain(&format!("{k:04b}")));
        }
    }

    // Repeat-until-success: the `while` on measured bits is refused by name.
    // One pass of its body (a subroutine measuring into its own `bit[2] b`
    // and returning it into `flags`) succeeds (flags = 00) with probability
    // 5/8, as the example says, and then the output is 0 for certain: the
    // 00 branch applies diag(3+i, -(1+3i))/4, a Z-rotation by π + arccos(3/5)
    // that the final rz undoes.
    let rus = example("rus");
    let e = err(rus);
    assert_eq!((e.line, e.column), (34, 1), "{e}");
    assert!(
        e.message
            .contains("while loops that depend on measurement results"),
        "{e}"
    );
    let once = parse(&edited(rus, "while(int[2](flags) != 0) {", "{"));
    let dist = kettle_reference::exact_distribution(&once);
    let p = |key: &str| dist.get(key).copied().unwrap_or(0.0);
    assert!((p("000") - 5.0 / 8.0).abs() < 1e-12, "{dist:?}");
    assert!(p("100") < 1e-12, "{dist:?}");
}

/// Iterative phase estimation: measurements into the bits of `angle[10] c`,
/// `c <<= 1`, and `inv @ phase(c)` on a `c` holding measured bits (a phase
/// per measured bit, in an `if` on it). The results are the scratch bits
/// (bit j = the j-th measurement), compared with the distribution worked out
/// by hand: with r = |0⟩ (probability ½) every phase is 0 and every bit 0;
/// with r = |1⟩, iteration k (power 2^k) measures 1 with probability
/// sin²(α/2), α = 2^k·3π/8 − 2π·c/2^10, c = Σ_{j<k} m_j·2^{k−j}.
#[test]
fn openqasm_example_ipe_runs_with_its_distribution() {
    let c = parse(example("ipe"));
    assert_eq!(
        c.registers()
            .iter()
            .map(|r| (r.name.as_str(), r.size))
            .collect::<Vec<_>>(),
        [("scratch", 10)]
    );
    fn walk(k: u32, ms: &mut Vec<bool>, p: f64, want: &mut BTreeMap<String, f64>) {
        if p < 1e-300 {
            return;
        }
        if k == 10 {
            let key: String = ms
                .iter()
                .rev()
                .map(|&m| if m { '1' } else { '0' })
                .collect();
            *want.entry(key).or_insert(0.0) += p;
            return;
        }
        let units: u32 = ms
            .iter()
            .enumerate()
            .filter(|(_, m)| **m)
            .map(|(j, _)| 1u32 << (k as usize - j))
            .sum::<u32>()
            % 1024;
        let alpha = f64::from(1u32 << k) * 3.0 * PI / 8.0 - 2.0 * PI * f64::from(units) / 1024.0;
        let p1 = (alpha / 2.0).sin().powi(2);
        for (m, pm) in [(false, 1.0 - p1), (true, p1)] {
            ms.push(m);
            walk(k + 1, ms, p * pm, want);
            ms.pop();
        }
    }
    let mut want = BTreeMap::new();
    walk(0, &mut Vec::new(), 0.5, &mut want);
    *want.entry("0".repeat(10)).or_insert(0.0) += 0.5;
    want.retain(|_, p| *p > 1e-13);
    assert_distribution(&c, &want);
}

/// The examples that cannot run here are refused by name, at the construct.
#[test]
fn openqasm_examples_refused_by_name() {
    for (name, line, column, words) in [
        ("arrays", 9, 1, "`array` (arrays) is not supported"),
        ("dd", 8, 33, "`durationof` (timing) is not supported"),
        (
            "defcal",
            1,
            1,
            "`defcalgrammar` (pulse-level calibration) is not supported",
        ),
        ("gateteleport", 6, 1, "`extern` functions are not supported"),
        ("scqec", 16, 1, "`extern` functions are not supported"),
        ("t1", 13, 1, "`extern` functions are not supported"),
        ("vqe", 17, 1, "`extern` functions are not supported"),
        ("msd", 147, 7, "more than the limit of 40"),
        (
            "rus",
            34,
            1,
            "while loops that depend on measurement results",
        ),
        // Not valid OpenQASM 3: `CX` without the include, `q` undeclared.
        ("cphase", 4, 3, "undefined gate `CX`"),
        // Not valid OpenQASM 3: a subroutine called like a gate.
        (
            "varteleport",
            31,
            3,
            "`bellprep` is a subroutine, not a gate",
        ),
    ] {
        let e = err(example(name));
        assert_eq!((e.line, e.column), (line, column), "{name}: {e}");
        assert!(e.message.contains(words), "{name}: {e}");
    }
}

/// Bit variables declared in blocks and subroutines hold measurements (in
/// scratch bits); copies of measured bits share their clbits; a circuit
/// register takes a subroutine's measured result directly; what the circuit
/// cannot express is refused by name.
#[test]
fn scoped_variables_hold_measurements() {
    let m = |qubit, clbit| Operation::Measure { qubit, clbit };
    let if1 = |clbit, then_ops| Operation::IfElse {
        condition: Condition::bit(clbit, true),
        then_ops,
        else_ops: vec![],
    };
    // In a block, and in a loop (a bit per iteration), after the registers.
    let c = body(
        "qubit[2] q;\nbit r;\n{ bit b; b = measure q[0]; if (b) x q[1]; }\n\
         for int i in [0:1] { bit[2] t = measure q; if (t == 3) z q[0]; }\nr = measure q[1];\n",
    );
    let x1 = std_op(StandardGate::X, &[], &[1]);
    let z0 = std_op(StandardGate::Z, &[], &[0]);
    let test3 = |a, b| Operation::IfElse {
        condition: Condition::equals(vec![a, b], 3),
        then_ops: vec![z0.clone()],
        else_ops: vec![],
    };
    assert_eq!(
        c.ops(),
        [
            m(0, 1),
            if1(1, vec![x1]),
            m(0, 2),
            m(1, 3),
            test3(2, 3),
            m(0, 4),
            m(1, 5),
            test3(4, 5),
            m(1, 0),
        ]
    );
    assert_eq!(
        c.registers()
            .iter()
            .map(|r| (r.name.as_str(), r.start, r.size))
            .collect::<Vec<_>>(),
        [("r", 0, 1), ("scratch", 1, 5)]
    );
    // A local copy of a measured register bit, and bits passed to a
    // subroutine, are the same clbits; a value returned from a subroutine
    // is tested later.
    let c = body(
        "qubit[3] q;\nbit[2] c;\nc = measure q[0:1];\n\
         def flip(bit f, qubit t) { if (f) x t; }\n\
         def pair(qubit[2] a) -> bit[2] { bit[2] b = measure a; return b; }\n\
         { bit k = c[1]; flip(k, q[2]); }\n\
         if (pair(q[0:1]) == 2) x q[2];\n",
    );
    let x2 = std_op(StandardGate::X, &[], &[2]);
    assert_eq!(
        c.ops(),
        [
            m(0, 0),
            m(1, 1),
            if1(1, vec![x2.clone()]),
            m(0, 2),
            m(1, 3),
            Operation::IfElse {
                condition: Condition::equals(vec![2, 3], 2),
                then_ops: vec![x2],
                else_ops: vec![],
            },
        ]
    );
    // `syn = f(q)` measures into `syn` itself; in an `if` on measured bits
    // too (the register keeps its value when the `if` does not run).
    let c = body(
        "qubit[2] q;\nbit g;\nbit[2] syn;\ndef f(qubit[2] a) -> bit[2] { bit[2] b; b = measure a; return b; }\n\
         g = measure q[0];\nif (g) syn = f(q);\n",
    );
    assert_eq!(c.ops(), [m(0, 0), if1(0, vec![m(0, 1), m(1, 2)])]);
    assert_eq!(c.num_clbits(), 3);
    // A local measured again inside an `if` keeps its bit: the old value
    // stays there when the `if` does not run.
    let c = body(
        "qubit[2] q;\nbit g = measure q[0];\n{ bit b = measure q[1]; if (g) b = measure q[0]; if (b) x q[1]; }\n",
    );
    assert_eq!(
        c.ops(),
        [
            m(0, 0),
            m(1, 1),
            if1(0, vec![m(0, 1)]),
            if1(1, vec![std_op(StandardGate::X, &[], &[1])])
        ]
    );

    // Refused, by name and place.
    let refused = [
        // A register's bits are written only by `measure`.
        (
            "qubit q;\nbit r;\nbit b2;\n{ bit b; b = measure q; r = b; }\n",
            (4, 29),
            "copying measured bits into `r` is not supported",
        ),
        (
            "qubit[2] q;\nbit[2] r;\nbit[2] w;\nr = measure q;\nw = r;\n",
            (5, 5),
            "copying measured bits into `w` is not supported",
        ),
        // A result measured into a register that computing it reads.
        (
            "qubit[2] q;\nbit[2] r = measure q;\n\
             def f(bit x, qubit[2] a) -> bit[2] { bit[2] b = measure a; if (x) z a[0]; return b; }\n\
             r = f(r[0], q);\n",
            (4, 5),
            "`r` cannot take this value: computing it reads `r`",
        ),
        // Measuring again into a bit whose old value a copy still holds.
        (
            "qubit q;\nbit r;\nr = measure q;\n{ bit k = r; r = measure q; if (k) x q; }\n",
            (4, 14),
            "overwrite the measurement in `r` that `k` still holds",
        ),
        // A local measured inside an `if` that keeps its old value otherwise.
        (
            "qubit[2] q;\nbit g = measure q[0];\n{ bit b = measure q[1]; bit k = b; if (g) b = measure q[0]; if (k) x q; }\n",
            (3, 43),
            "`b` is measured inside an `if` on measured bits",
        ),
        (
            "qubit q;\nbit g = measure q;\n{ bit b; if (g) { bit t = measure q; b = t; } }\n",
            (3, 38),
            "assigning to `b` inside an `if` that tests measured bits",
        ),
        // Shifting a circuit register that holds measurements.
        (
            "qubit q;\nbit[2] r;\nr[0] = measure q;\nr <<= 1;\n",
            (4, 1),
            "shifting `r` is not supported",
        ),
        // A combination of measured bits is not bits.
        (
            "qubit[2] q;\nbit[2] r = measure q;\n{ bit b = r[0] && r[1]; }\n",
            (3, 16),
            "storing a combination of measured bits in `b` is not supported",
        ),
    ];
    for (src, at, words) in refused {
        let (l, c, msg) = body_err(src);
        assert_eq!((l, c), at, "{msg}\nin:\n{src}");
        assert!(msg.contains(words), "{msg}\nin:\n{src}");
    }
}

/// `angle[n]` variables are n-bit angles: their values are rounded to a
/// multiple of 2π/2ⁿ, their bits read and measured into, and shifted; a
/// rotation by an angle holding measured bits is one rotation per bit.
#[test]
fn angle_registers_hold_measured_bits() {
    // Rounded to n bits (π/2 is exact in 3; 1.0 rounds to π/2 in 2).
    let c = body("qubit q;\nangle[3] a = pi / 2;\nangle[2] b = 1.0;\nrz(a) q;\nrz(b) q;\n");
    assert_eq!(
        c.ops(),
        [
            std_op(StandardGate::Rz, &[PI / 2.0], &[0]),
            std_op(StandardGate::Rz, &[PI / 2.0], &[0])
        ]
    );
    // Bits: bit n-1 is π; known bits fold; arithmetic on a known angle.
    let c = body(
        "qubit q;\nangle[4] a = pi;\nif (a[3]) x q;\nif (a[0]) y q;\na += pi / 4;\na <<= 1;\nrz(a) q;\n",
    );
    assert_eq!(
        c.ops(),
        [
            std_op(StandardGate::X, &[], &[0]),
            std_op(StandardGate::Rz, &[PI / 2.0], &[0])
        ]
    );
    // Measured bits: `p(c)` is p(known part) and p(2π·2ᵏ/2ⁿ) where bit k is 1.
    let c = body(
        "qubit[2] q;\nangle[3] c = pi / 4;\nmeasure q[0] -> c[1];\nc <<= 1;\nctrl @ inv @ p(c) q[0], q[1];\n",
    );
    let expect = Circuit::new(2)
        .measure(0, 0)
        .controlled(
            Gate::standard(StandardGate::P, &[-PI / 2.0]),
            &[1],
            vec![Control::one(0)],
        )
        .if_then(Condition::bit(0, true), |c| {
            c.controlled(
                Gate::standard(StandardGate::P, &[-PI]),
                &[1],
                vec![Control::one(0)],
            )
        });
    assert_eq!(c.ops(), expect.ops());
    assert_eq!(c.register("scratch").map(|r| r.size), Some(1));

    let refused = [
        (
            "qubit q;\nangle[2] c;\nmeasure q -> c[0];\nu3(c, 0, 0) q;\n",
            (4, 4),
            "`c` holds measured bits, so it can be the angle of `p`",
        ),
        (
            "qubit q;\nangle[2] c;\nmeasure q -> c[0];\npow(0.5) @ rz(c) q;\n",
            (4, 1),
            "a non-integer power",
        ),
        (
            "qubit q;\nangle[2] c;\nmeasure q -> c[0];\nc += 1;\n",
            (4, 1),
            "`c` holds measurement results, which cannot be updated with `+=`",
        ),
        (
            "qubit q;\nangle[2] c;\nmeasure q -> c[0];\nrz(2 * c) q;\n",
            (4, 6),
            "`*` cannot be applied to measured bits",
        ),
        ("qubit q;\nangle[65] c;\n", (2, 7), "between 1 and 64 bits"),
    ];
    for (src, at, words) in refused {
        let (l, c, msg) = body_err(src);
        assert_eq!((l, c), at, "{msg}\nin:\n{src}");
        assert!(msg.contains(words), "{msg}\nin:\n{src}");
    }
}

// ----- Braket noise pragmas (issue 18) ---------------------------------------

fn channel_op(channel: Result<Channel, kettle_ir::ChannelError>, qubits: &[u32]) -> Operation {
    Operation::Channel {
        channel: channel.unwrap(),
        qubits: qubits.to_vec(),
    }
}

fn cx(re: f64, im: f64) -> Complex64 {
    Complex64::new(re, im)
}

/// A real matrix on `n` qubits from its rows.
fn real_matrix(n: u32, rows: &[&[f64]]) -> GateMatrix {
    let data = rows
        .iter()
        .flat_map(|r| r.iter().map(|&x| cx(x, 0.0)))
        .collect();
    GateMatrix::new(n, data).unwrap()
}

#[test]
fn braket_noise_pragmas_are_their_channels_where_they_stand() {
    // As Braket's SDK writes them (`Circuit.to_ir(IRType.OPENQASM)`).
    let c = parse(&format!(
        "{STD}qubit[2] q;\nh q[0];\n\
         #pragma braket noise bit_flip(0.1) q[0]\n\
         #pragma braket noise phase_flip(0.2) q[1]\n\
         #pragma braket noise pauli_channel(0.1, 0.2, 0.3) q[0]\n\
         #pragma braket noise depolarizing(0.05) q[1]\n\
         #pragma braket noise two_qubit_depolarizing(0.1) q[0], q[1]\n\
         #pragma braket noise two_qubit_dephasing(0.2) q[1], q[0]\n\
         #pragma braket noise amplitude_damping(0.3) q[0]\n\
         #pragma braket noise generalized_amplitude_damping(0.2, 0.3)  q[1]\n\
         #pragma braket noise phase_damping(.4) q[0]\n\
         x q[1];\n"
    ));
    let h = std_op(StandardGate::H, &[], &[0]);
    let x = std_op(StandardGate::X, &[], &[1]);
    let want = vec![
        h,
        channel_op(Channel::bit_flip(0.1), &[0]),
        channel_op(Channel::phase_flip(0.2), &[1]),
        channel_op(Channel::pauli_channel(0.1, 0.2, 0.3), &[0]),
        channel_op(Channel::depolarizing(0.05), &[1]),
        channel_op(Channel::two_qubit_depolarizing(0.1), &[0, 1]),
        channel_op(Channel::two_qubit_dephasing(0.2), &[1, 0]),
        channel_op(Channel::amplitude_damping(0.3), &[0]),
        channel_op(Channel::generalized_amplitude_damping(0.2, 0.3), &[1]),
        channel_op(Channel::phase_damping(0.4), &[0]),
        x,
    ];
    assert_eq!(c.ops(), want.as_slice());
}

#[test]
fn noise_pragma_operands_and_parameters() {
    // Physical qubits, a whole register (Braket's `qs`), a trailing `;`,
    // `pragma` without `#`, parameters that are constant expressions and
    // inputs, pragmas in loops and blocks, other Braket pragmas ignored.
    let c = parse(
        "OPENQASM 3.0;\n#pragma braket verbatim\n#pragma braket result probability\n\
                   #pragma braket noise bit_flip(0.5 / 5) $1\n",
    );
    assert_eq!(c.ops(), [channel_op(Channel::bit_flip(0.1), &[1])]);
    let src = "OPENQASM 3.0;\ninput float p;\nconst float g = 0.25;\nqubit[2] qs;\n\
               pragma braket noise two_qubit_depolarizing(p) qs;\n\
               for int i in [0:1] {\n  #pragma braket noise amplitude_damping(g * 2) qs[i]\n}\n\
               #pragma braket noise two_qubit_dephasing(p) qs[{1, 0}]\n";
    let options = ParseOptions {
        inputs: [("p".to_string(), 0.125)].into(),
        ..ParseOptions::default()
    };
    let c = parse_with(src, &options);
    assert_eq!(
        c.ops(),
        [
            channel_op(Channel::two_qubit_depolarizing(0.125), &[0, 1]),
            channel_op(Channel::amplitude_damping(0.5), &[0]),
            channel_op(Channel::amplitude_damping(0.5), &[1]),
            channel_op(Channel::two_qubit_dephasing(0.125), &[1, 0]),
        ]
    );
}

#[test]
fn kraus_pragma_reads_braket_complex_literals() {
    let (a, b) = (0.9f64.sqrt(), 0.1f64.sqrt());
    // Braket's own test program, and its serialiser's forms of complex numbers.
    let c = parse(&format!(
        "OPENQASM 3.0;\nqubit q;\n\
         #pragma braket noise kraus([[{a}im, 0], [0, {a}im]], [[0, {b}], [{b}, 0]]) q\n\
         #pragma braket noise kraus([[0.6, 0 + 0.8im], [-0 - -0.8 im, 6e-1]]) q\n"
    ));
    let i = real_matrix(1, &[&[1.0, 0.0], &[0.0, 1.0]]);
    let scaled = |m: &GateMatrix, z: Complex64| {
        GateMatrix::new(1, m.data().iter().map(|x| x * z).collect()).unwrap()
    };
    let x = real_matrix(1, &[&[0.0, 1.0], &[1.0, 0.0]]);
    let u = GateMatrix::new(
        1,
        vec![cx(0.6, 0.0), cx(0.0, 0.8), cx(0.0, 0.8), cx(0.6, 0.0)],
    )
    .unwrap();
    assert_eq!(
        c.ops(),
        [
            channel_op(
                Channel::kraus(vec![scaled(&i, cx(0.0, a)), scaled(&x, cx(b, 0.0))]),
                &[0]
            ),
            channel_op(Channel::kraus(vec![u]), &[0]),
        ]
    );
}

/// Braket writes a Kraus matrix with its first target the most significant
/// bit; Kettle's IR has `qubits[0]` as bit 0: the matrix is converted, and
/// the qubits stay in the order written.
#[test]
fn kraus_pragma_converts_braket_qubit_order() {
    // CNOT with the first listed qubit as control, in Braket's order.
    let c = parse(
        "OPENQASM 3.0;\nqubit[3] q;\n\
         #pragma braket noise kraus([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]) q[2], q[0]\n",
    );
    // In Kettle's order, control bit 0 (q[2]): |01> <-> |11>.
    let kettle_cnot = real_matrix(
        2,
        &[
            &[1.0, 0.0, 0.0, 0.0],
            &[0.0, 0.0, 0.0, 1.0],
            &[0.0, 0.0, 1.0, 0.0],
            &[0.0, 1.0, 0.0, 0.0],
        ],
    );
    assert_eq!(
        c.ops(),
        [channel_op(Channel::kraus(vec![kettle_cnot]), &[2, 0])]
    );
    // Amplitude damping on the first listed qubit, identity on the second:
    // Braket's A ⊗ I is Kettle's I ⊗ A on qubits [first, second].
    let g: f64 = 0.36;
    let (k, s) = ((1.0 - g).sqrt(), g.sqrt());
    let c = parse(&format!(
        "OPENQASM 3.0;\nqubit[2] q;\n\
         #pragma braket noise kraus([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, {k}, 0], [0, 0, 0, {k}]], \
         [[0, 0, {s}, 0], [0, 0, 0, {s}], [0, 0, 0, 0], [0, 0, 0, 0]]) q[0], q[1]\n"
    ));
    let k0 = real_matrix(
        2,
        &[
            &[1.0, 0.0, 0.0, 0.0],
            &[0.0, k, 0.0, 0.0],
            &[0.0, 0.0, 1.0, 0.0],
            &[0.0, 0.0, 0.0, k],
        ],
    );
    let k1 = real_matrix(
        2,
        &[
            &[0.0, s, 0.0, 0.0],
            &[0.0, 0.0, 0.0, 0.0],
            &[0.0, 0.0, 0.0, s],
            &[0.0, 0.0, 0.0, 0.0],
        ],
    );
    assert_eq!(c.ops(), [channel_op(Channel::kraus(vec![k0, k1]), &[0, 1])]);
}

#[test]
fn noise_pragma_errors_have_positions() {
    let cases: &[(&str, u32, u32, &str)] = &[
        (
            "qubit[2] q;\n#pragma braket noise bit_flip(1.5) q[0]\n",
            2,
            31,
            "`bit_flip`: ",
        ),
        (
            "qubit[2] q;\n  #pragma   braket noise  pauli_channel(0.1, 0.2, -0.3) q[0]\n",
            2,
            51,
            "`pauli_channel`: ",
        ),
        (
            "qubit[2] q;\n#pragma braket noise pauli_channel(0.5, 0.5, 0.5) q[0]\n",
            2,
            22,
            "`pauli_channel`: ",
        ),
        (
            "qubit[2] q;\n#pragma braket noise depolarize(0.1) q[0]\n",
            2,
            22,
            "unknown noise channel `depolarize`: Braket's are `bit_flip`",
        ),
        (
            "qubit[2] q;\n#pragma braket noise depolarizing_error(0.1) q[0]\n",
            2,
            22,
            "unknown noise channel `depolarizing_error`",
        ),
        (
            "qubit[2] q;\n#pragma braket noise bit_flip(0.1, 0.2) q[0]\n",
            2,
            36,
            "`bit_flip` takes 1 parameter (probability), got 2",
        ),
        (
            "qubit[2] q;\n#pragma braket noise generalized_amplitude_damping(0.1) q[0]\n",
            2,
            22,
            "`generalized_amplitude_damping` takes 2 parameters (gamma, probability), got 1",
        ),
        (
            "qubit[2] q;\n#pragma braket noise two_qubit_dephasing(0.1) q[1]\n",
            2,
            47,
            "`two_qubit_dephasing` acts on 2 qubits, but 1 was given",
        ),
        (
            "qubit[2] q;\n#pragma braket noise depolarizing(0.1) q\n",
            2,
            40,
            "`depolarizing` acts on 1 qubit, but 2 were given",
        ),
        (
            "qubit[2] q;\n#pragma braket noise two_qubit_depolarizing(0.1) q[1], q[1]\n",
            2,
            56,
            "qubit 1 is used twice in one channel",
        ),
        (
            "qubit[2] q;\n#pragma braket noise kraus([[1, 0], [0, 1]], [[1, 0], [0, 0]]) q[0]\n",
            2,
            28,
            "not trace-preserving",
        ),
        (
            "qubit[2] q;\n#pragma braket noise kraus([[1, 0], [0, 1]], [[1, 0, 0, 0]]) q[0]\n",
            2,
            46,
            "a Kraus matrix needs 2 or 4 rows",
        ),
        (
            "qubit[2] q;\n#pragma braket noise kraus([[1, 0], [0]]) q[0]\n",
            2,
            37,
            "a 2×2 matrix needs 2 entries per row, got 1",
        ),
        (
            "qubit[2] q;\n#pragma braket noise kraus([[1, 0], [0, 1]]) q[0], q[1]\n",
            2,
            46,
            "`kraus` acts on 1 qubit, but 2 were given",
        ),
        (
            "qubit[2] q;\n#pragma braket noise kraus([[1, 0], [0, x]]) q[0]\n",
            2,
            41,
            "expected a number (a Kraus matrix entry), found `x`",
        ),
        (
            "qubit[2] q;\n#pragma braket noise bit_flip(0.1) q[0] q[1]\n",
            2,
            41,
            "expected the end of the noise pragma, found `q`",
        ),
        (
            "qubit[2] q;\n#pragma braket noise bit_flip(0.1) q[5]\n",
            2,
            38,
            "out of range",
        ),
        (
            "qubit[2] q;\n#pragma braket noise bit_flip(0.1x) q[0]\n",
            2,
            31,
            "malformed number",
        ),
        (
            "qubit[2] q;\ngate g a {\n  h a;\n  #pragma braket noise bit_flip(0.1) a\n}\n",
            4,
            3,
            "a noise pragma cannot appear in a gate",
        ),
    ];
    for &(src, line, column, message) in cases {
        let (l, c, m) = body_err(src);
        assert!(
            (l, c) == (line, column) && m.contains(message),
            "for {src:?}: got {l}:{c}: {m}; want {line}:{column}: …{message}…"
        );
    }
}
