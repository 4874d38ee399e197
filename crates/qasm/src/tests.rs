//! Tests of the whole front end: lowering, expressions, broadcasting, errors.

use std::f64::consts::PI;

use kettle_ir::{Circuit, Condition, Control, Gate, Operation, StandardGate};

use crate::{Diagnostic, Limits, parse_qasm2, parse_qasm2_bytes};

const HEADER: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\n";

fn parse(src: &str) -> Circuit {
    match parse_qasm2(src, &Limits::default()) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error {e} in:\n{src}"),
    }
}

fn parse_body(body: &str) -> Circuit {
    parse(&format!("{HEADER}{body}"))
}

fn err(src: &str) -> Diagnostic {
    err_with(src, &Limits::default())
}

fn err_with(src: &str, limits: &Limits) -> Diagnostic {
    match parse_qasm2(src, limits) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e,
    }
}

/// Error in `HEADER` + `body`, with its line counted from the body's first line.
fn body_err(body: &str) -> (u32, u32, String) {
    let e = err(&format!("{HEADER}{body}"));
    (e.line - 2, e.column, e.message)
}

fn std_op(g: StandardGate, params: &[f64], qubits: &[u32]) -> Operation {
    Operation::gate(Gate::standard(g, params), qubits.to_vec())
}

fn assert_close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

fn single_param(src: &str) -> f64 {
    let c = parse_body(&format!("qreg q[1];\nrz({src}) q[0];\n"));
    match &c.ops()[0] {
        Operation::Gate {
            gate: Gate::Standard { params, .. },
            ..
        } => params[0],
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_qelib1_gate_lowers_to_its_standard_gate() {
    use StandardGate::*;
    let cases: &[(&str, StandardGate, usize, usize)] = &[
        ("u3", U, 3, 1),
        ("u2", U2, 2, 1),
        ("u1", P, 1, 1),
        ("cx", Cx, 0, 2),
        ("id", Id, 0, 1),
        ("u", U, 3, 1),
        ("p", P, 1, 1),
        ("x", X, 0, 1),
        ("y", Y, 0, 1),
        ("z", Z, 0, 1),
        ("h", H, 0, 1),
        ("s", S, 0, 1),
        ("sdg", Sdg, 0, 1),
        ("t", T, 0, 1),
        ("tdg", Tdg, 0, 1),
        ("rx", Rx, 1, 1),
        ("ry", Ry, 1, 1),
        ("rz", Rz, 1, 1),
        ("sx", Sx, 0, 1),
        ("sxdg", Sxdg, 0, 1),
        ("cz", Cz, 0, 2),
        ("cy", Cy, 0, 2),
        ("swap", Swap, 0, 2),
        ("ch", Ch, 0, 2),
        ("ccx", Ccx, 0, 3),
        ("cswap", Cswap, 0, 3),
        ("crx", Crx, 1, 2),
        ("cry", Cry, 1, 2),
        ("crz", Crz, 1, 2),
        ("cu1", Cp, 1, 2),
        ("cp", Cp, 1, 2),
        ("cu3", Cu3, 3, 2),
        ("csx", Csx, 0, 2),
        ("cu", Cu, 4, 2),
        ("rxx", Rxx, 1, 2),
        ("rzz", Rzz, 1, 2),
        ("U", U, 3, 1),
        ("CX", Cx, 0, 2),
    ];
    for &(name, gate, np, nq) in cases {
        let params: Vec<f64> = (0..np).map(|i| 0.25 * (i + 1) as f64).collect();
        let ptext: Vec<String> = params.iter().map(|p| p.to_string()).collect();
        let qubits: Vec<u32> = (0..nq as u32).rev().collect();
        let qtext: Vec<String> = qubits.iter().map(|q| format!("q[{q}]")).collect();
        let src = format!(
            "qreg q[5];\n{name}({}) {};\n",
            ptext.join(", "),
            qtext.join(", ")
        );
        let c = parse_body(&src);
        assert_eq!(c.ops(), &[std_op(gate, &params, &qubits)], "gate {name}");
    }
    // u0 takes a parameter and is the identity.
    let c = parse_body("qreg q[1];\nu0(3) q[0];\n");
    assert_eq!(c.ops(), &[std_op(Id, &[], &[0])]);
    // Multi-controlled forms.
    let c = parse_body(
        "qreg q[5];\nc3x q[0],q[1],q[2],q[3];\nc4x q[4],q[3],q[2],q[1],q[0];\nc3sqrtx q[0],q[1],q[2],q[3];\n",
    );
    let ctl = |qs: &[u32]| qs.iter().map(|&q| Control::one(q)).collect::<Vec<_>>();
    assert_eq!(
        c.ops(),
        &[
            Operation::Gate {
                gate: Gate::standard(X, &[]),
                qubits: vec![3],
                controls: ctl(&[0, 1, 2])
            },
            Operation::Gate {
                gate: Gate::standard(X, &[]),
                qubits: vec![0],
                controls: ctl(&[4, 3, 2, 1])
            },
            Operation::Gate {
                gate: Gate::standard(Sx, &[]),
                qubits: vec![3],
                controls: ctl(&[0, 1, 2])
            },
        ]
    );
    // rccx and rc3x are inlined from their qelib1.inc bodies.
    let c = parse_body("qreg q[4];\nrccx q[0],q[1],q[2];\nrc3x q[0],q[1],q[2],q[3];\n");
    assert_eq!(c.ops().len(), 9 + 18);
    assert_eq!(c.ops()[2], std_op(Cx, &[], &[1, 2]));
    assert_eq!(c.ops()[0], std_op(U2, &[0.0, PI], &[2]));
}

#[test]
fn qelib1_gates_need_the_include() {
    let e = err("OPENQASM 2.0;\nqreg q[1];\nh q[0];\n");
    assert_eq!((e.line, e.column), (3, 1));
    assert!(e.message.starts_with("undefined gate `h`"), "{}", e.message);
    assert!(e.message.contains("qelib1.inc"));
    // U and CX are always there.
    let c = parse("OPENQASM 2.0;\nqreg q[2];\nU(pi,0,pi) q[0];\nCX q[0],q[1];\n");
    assert_eq!(c.ops().len(), 2);
}

#[test]
fn expressions_fold_to_f64() {
    assert_close(single_param("pi/2"), PI / 2.0);
    assert_close(single_param("-pi"), -PI);
    assert_close(single_param("2^3^2"), 512.0);
    assert_close(single_param("-2^2"), -4.0);
    assert_close(single_param("sin(pi/2)"), 1.0);
    assert_close(
        single_param("cos(0) + tan(0) + exp(0) + ln(1) + sqrt(4)"),
        4.0,
    );
    assert_close(single_param("asin(1) + acos(1) + atan(0)"), PI / 2.0);
    assert_eq!(single_param("1e-10"), 1e-10);
    assert_eq!(single_param(".5"), 0.5);
    assert_eq!(single_param("5."), 5.0);
    assert_eq!(single_param("0.123456789012345"), 0.123456789012345);
    assert_close(single_param("((((1+2))*((3))))"), 9.0);
    assert_close(single_param("1 - 2 - 3"), -4.0);
    assert_close(single_param("8 / 2 / 2"), 2.0);
    assert_close(single_param("2 * 3 + 4 * 5"), 26.0);
    assert_close(single_param("-(1+2)*-3"), 9.0);
}

#[test]
fn expression_errors_have_positions() {
    assert_eq!(
        body_err("qreg q[1];\nrz(1/0) q[0];\n"),
        (2, 5, "division by zero".into())
    );
    let (l, c, m) = body_err("qreg q[1];\nrz(ln(0)) q[0];\n");
    assert_eq!((l, c), (2, 4));
    assert!(m.contains("not a finite number"), "{m}");
    let (l, c, m) = body_err("qreg q[1];\nrz(10^400) q[0];\n");
    assert_eq!((l, c), (2, 6));
    assert!(m.contains("not a finite number"), "{m}");
    let (l, c, m) = body_err("qreg q[1];\nrz(theta) q[0];\n");
    assert_eq!((l, c), (2, 4));
    assert!(m.contains("`theta`"), "{m}");
    // Division by zero found only when a definition is used.
    let (l, c, m) = body_err("qreg q[1];\ngate g(a) x { rz(1/a) x; }\ng(0) q[0];\n");
    assert_eq!((l, c), (3, 1));
    assert!(m.contains("division by zero") && m.contains("`g`"), "{m}");
}

#[test]
fn deep_nesting_fails_fast() {
    let deep = format!(
        "qreg q[1];\nrz({}1{}) q[0];\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let (l, c, m) = body_err(&deep);
    assert_eq!((l, c), (2, 4 + 64));
    assert!(m.contains("nested too deeply"), "{m}");
    let minus = format!("qreg q[1];\nrz({}1) q[0];\n", "-".repeat(10_000));
    assert!(body_err(&minus).2.contains("nested too deeply"));
    let pow = format!("qreg q[1];\nrz(1{}) q[0];\n", "^1".repeat(10_000));
    assert!(body_err(&pow).2.contains("nested too deeply"));
    // A long flat sum of constants folds and is fine.
    let flat = format!("qreg q[1];\nrz(0{}) q[0];\n", "+1".repeat(10_000));
    assert_eq!(parse_body(&flat).ops().len(), 1);
    // ... but not of parameters, whose tree would be too tall.
    let tall = format!(
        "qreg q[1];\ngate g(a) x {{ rz(a{}) x; }}\n",
        "+a".repeat(10_000)
    );
    assert!(body_err(&tall).2.contains("nested too deeply"));
}

#[test]
fn broadcasting_and_register_numbering() {
    let c = parse_body(
        "qreg a[2];\nqreg b[2];\ncreg c[2];\ncreg d[2];\nh a;\ncx a, b;\ncx a[0], b;\nmeasure b -> d;\nreset a;\nbarrier a, b[1];\nmeasure a[1] -> c[0];\n",
    );
    assert_eq!(c.num_qubits(), 4);
    assert_eq!(c.num_clbits(), 4);
    assert_eq!(c.register("c").unwrap().clbits(), vec![0, 1]);
    assert_eq!(c.register("d").unwrap().clbits(), vec![2, 3]);
    use StandardGate::*;
    let expected = vec![
        std_op(H, &[], &[0]),
        std_op(H, &[], &[1]),
        std_op(Cx, &[], &[0, 2]),
        std_op(Cx, &[], &[1, 3]),
        std_op(Cx, &[], &[0, 2]),
        std_op(Cx, &[], &[0, 3]),
        Operation::Measure { qubit: 2, clbit: 2 },
        Operation::Measure { qubit: 3, clbit: 3 },
        Operation::Reset { qubit: 0 },
        Operation::Reset { qubit: 1 },
        Operation::Barrier {
            qubits: vec![0, 1, 3],
        },
        Operation::Measure { qubit: 1, clbit: 0 },
    ];
    assert_eq!(c.ops(), expected.as_slice());
}

#[test]
fn teleportation_with_if() {
    let c = parse_body(
        "qreg q[3];\ncreg c0[1];\ncreg c1[1];\nu3(0.3,0.2,0.1) q[0];\nh q[1];\ncx q[1],q[2];\nbarrier q;\ncx q[0],q[1];\nh q[0];\nmeasure q[0] -> c0[0];\nmeasure q[1] -> c1[0];\nif(c0==1) z q[2];\nif(c1==1) x q[2];\n",
    );
    assert_eq!(c.ops().len(), 10);
    assert_eq!(
        c.ops()[8],
        Operation::IfElse {
            condition: Condition::equals(vec![0], 1),
            then_ops: vec![std_op(StandardGate::Z, &[], &[2])],
            else_ops: vec![],
        }
    );
    assert_eq!(
        c.ops()[9],
        Operation::IfElse {
            condition: Condition::equals(vec![1], 1),
            then_ops: vec![std_op(StandardGate::X, &[], &[2])],
            else_ops: vec![],
        }
    );
    // A conditioned custom gate: one IfElse per broadcast instance, holding the inlined body.
    let c = parse_body("qreg q[2];\ncreg c[2];\ngate hh a { h a; h a; }\nif (c == 3) hh q;\n");
    assert_eq!(c.ops().len(), 2);
    let Operation::IfElse {
        condition,
        then_ops,
        ..
    } = &c.ops()[1]
    else {
        panic!("not an if");
    };
    assert_eq!(condition, &Condition::equals(vec![0, 1], 3));
    assert_eq!(then_ops.len(), 2);
}

fn strip_measurements(c: &Circuit) -> Circuit {
    let mut out = Circuit::new(c.num_qubits());
    for op in c.ops() {
        if op.is_unitary() {
            out.push(op.clone());
        }
    }
    out
}

fn same_state(a: &Circuit, b: &Circuit) {
    let sa = kettle_reference::statevector(a);
    let sb = kettle_reference::statevector(b);
    let d = kettle_reference::max_abs_diff(&sa, &sb);
    assert!(d < 1e-10, "states differ by {d}");
}

#[test]
fn gate_definitions_match_the_builder() {
    let c = parse_body(
        "qreg q[3];\ncreg c[3];\n\
         gate bell a, b { h a; cx a, b; }\n\
         gate rot(theta, phi) a { rz(phi/2) a; ry(theta*2 - pi) a; u1(-phi) a; }\n\
         gate both(t) a, b, c { bell a, b; rot(t, t^2) c; barrier a, c; crz(sin(t)) c, a; }\n\
         both(0.7) q[2], q[0], q[1];\nrccx q[0], q[1], q[2];\nmeasure q -> c;\n",
    );
    let t: f64 = 0.7;
    let expected = Circuit::new(3)
        .h(2)
        .cx(2, 0)
        .rz(t * t / 2.0, 1)
        .ry(t * 2.0 - PI, 1)
        .p(-t * t, 1)
        .barrier(&[2, 1])
        .crz(t.sin(), 1, 2)
        .u2(0.0, PI, 2)
        .p(PI / 4.0, 2)
        .cx(1, 2)
        .p(-PI / 4.0, 2)
        .cx(0, 2)
        .p(PI / 4.0, 2)
        .cx(1, 2)
        .p(-PI / 4.0, 2)
        .u2(0.0, PI, 2);
    let stripped = strip_measurements(&c);
    assert_eq!(stripped.ops().len(), expected.ops().len());
    for (a, b) in stripped.ops().iter().zip(expected.ops()) {
        match (a, b) {
            (
                Operation::Gate {
                    gate:
                        Gate::Standard {
                            gate: ga,
                            params: pa,
                        },
                    qubits: qa,
                    ..
                },
                Operation::Gate {
                    gate:
                        Gate::Standard {
                            gate: gb,
                            params: pb,
                        },
                    qubits: qb,
                    ..
                },
            ) => {
                assert_eq!((ga, qa), (gb, qb));
                for (x, y) in pa.iter().zip(pb) {
                    assert_close(*x, *y);
                }
            }
            _ => assert_eq!(a, b),
        }
    }
    same_state(&stripped, &expected);
}

#[test]
fn multi_controlled_gates_match_their_definitions() {
    // c3x on |111x> flips x; compare with the builder's mcx.
    let c = parse_body(
        "qreg q[4];\nh q;\nc3x q[0], q[1], q[2], q[3];\nc3sqrtx q[3], q[2], q[1], q[0];\n",
    );
    let expected = Circuit::new(4)
        .h(0)
        .h(1)
        .h(2)
        .h(3)
        .mcx(&[0, 1, 2], 3)
        .controlled(
            Gate::standard(StandardGate::Sx, &[]),
            &[0],
            vec![Control::one(3), Control::one(2), Control::one(1)],
        );
    same_state(&c, &expected);
}

#[test]
fn errors_point_at_the_offending_token() {
    let cases: &[(&str, (u32, u32), &str)] = &[
        (
            "qreg q[2];\nh q[0]\nh q[1];\n",
            (2, 7),
            "expected `;` at the end of this line (the next line starts with `h`)",
        ),
        // On the same line, the token found instead is the place.
        (
            "qreg q[2];\nh q[0] h q[1];\n",
            (2, 8),
            "expected `;`, found `h`",
        ),
        ("qreg q[2];\nfoo q[0];\n", (2, 1), "undefined gate `foo`"),
        (
            "qreg q[2];\ncx q[0];\n",
            (2, 1),
            "gate `cx` takes 2 qubit arguments, got 1",
        ),
        (
            "qreg q[2];\nh q[0], q[1];\n",
            (2, 1),
            "gate `h` takes 1 qubit argument, got 2",
        ),
        (
            "qreg q[2];\nrx q[0];\n",
            (2, 1),
            "gate `rx` takes 1 parameter, got 0",
        ),
        (
            "qreg q[2];\n  u3(1, 2) q[0];\n",
            (2, 3),
            "gate `u3` takes 3 parameters, got 2",
        ),
        (
            "qreg q[2];\nh q[5];\n",
            (2, 5),
            "qubit index 5 is out of range for register `q` of size 2",
        ),
        (
            "qreg q[2];\ncreg c[1];\nmeasure q[0] -> c[1];\n",
            (3, 19),
            "bit index 1 is out of range for register `c` of size 1",
        ),
        (
            "qreg a[2];\nqreg b[3];\ncx a, b;\n",
            (3, 7),
            "register `b` has size 3, but `a` has size 2: registers in one operation must have the same size",
        ),
        (
            "qreg q[2];\ncx q[1], q[1];\n",
            (2, 10),
            "qubit `q[1]` is used twice in this call to `cx`",
        ),
        (
            "qreg q[2];\nopaque magic(a) x, y;\nmagic(1) q[0], q[1];\n",
            (3, 1),
            "gate `magic` is opaque (declared without a body), so it cannot be simulated",
        ),
        (
            "qreg q[1];\nh r;\n",
            (2, 3),
            "undefined quantum register `r`",
        ),
        (
            "qreg q[1];\ncreg c[1];\nh c;\n",
            (3, 3),
            "`c` is a classical register, but a quantum register is needed here",
        ),
        (
            "qreg q[1];\nqreg q[2];\n",
            (2, 6),
            "`q` is already defined as a register",
        ),
        (
            "qreg q[0];\n",
            (1, 8),
            "register `q` must have at least one qubit",
        ),
        (
            "qreg q[41];\n",
            (1, 8),
            "register `q[41]` would make 41 qubits in all, more than the limit of 40",
        ),
        (
            "qreg q[100000];\n",
            (1, 8),
            "register `q[100000]` would make 100000 qubits in all, more than the limit of 40",
        ),
        (
            "qreg q[99999999999999999999999];\n",
            (1, 8),
            "integer is too large",
        ),
        (
            "qreg q[2];\ncreg c[2];\nmeasure q -> c[0];\n",
            (3, 14),
            "cannot measure 2 qubit(s) of `q` into 1 bit(s) of `c`: both sides must be single bits or registers of the same size",
        ),
        (
            "gate g a { h b; }\n",
            (1, 14),
            "`b` is not a qubit argument of this gate definition",
        ),
        ("gate g a { g a; }\n", (1, 12), "undefined gate `g`"),
        (
            "gate g a { measure a; }\n",
            (1, 12),
            "`measure` is not allowed in a gate body: only gate calls and `barrier`",
        ),
        (
            "gate h a { x a; }\n",
            (1, 6),
            "`h` is already defined as a gate",
        ),
        (
            "qreg q[1];\ncreg c[1];\nif (q == 1) x q;\n",
            (3, 5),
            "`q` is a quantum register, but a classical register is needed here",
        ),
        (
            "qreg q[1];\ncreg c[1];\nif (c == 1) barrier q;\n",
            (3, 13),
            "`barrier` cannot be conditioned",
        ),
        (
            "qreg q[1];\n/* open\n",
            (2, 1),
            "unterminated comment: `/*` without `*/`",
        ),
        (
            "qreg q[1];\nh q[0]; @\n",
            (2, 9),
            "unexpected character `@`",
        ),
    ];
    for &(body, (line, column), message) in cases {
        let (l, c, m) = body_err(body);
        assert_eq!((l, c, m.as_str()), (line, column, message), "for:\n{body}");
    }
}

#[test]
fn header_and_include_are_checked() {
    // Without its version line, as Qiskit's loader reads it.
    let c = parse("include \"qelib1.inc\";\nqreg q[2];\nh q[0];\ncx q[0],q[1];");
    assert_eq!((c.num_qubits(), c.ops().len()), (2, 2));
    let e = err("OPENQASM 3.0;");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (1, 10, "only OpenQASM 2.0 is supported here, not version 3")
    );
    // A missing `;` is reported where it belongs, not on the next line.
    let e = err("OPENQASM 2.0\nqreg q[1];");
    assert_eq!((e.line, e.column), (1, 13));
    let e = err("OPENQASM 2.0;\n  include \"stdgates.inc\";\n");
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (
            2,
            11,
            "cannot include \"stdgates.inc\": only qelib1.inc is available here (stdgates.inc is the OpenQASM 3 library)"
        )
    );
    let e = err("x q;");
    assert_eq!((e.line, e.column), (1, 1), "{e}");
    assert!(e.message.starts_with("undefined gate `x`"), "{e}");
    // Including twice is harmless; comments are skipped.
    let c = parse(
        "// a comment\nOPENQASM 2.0; /* x */\ninclude \"qelib1.inc\";\ninclude \"qelib1.inc\";\nqreg q[1];\nx q;",
    );
    assert_eq!(c.ops().len(), 1);
}

#[test]
fn limits_are_enforced() {
    // Exponential blow-up through nested definitions fails quickly.
    let mut src = format!("{HEADER}qreg q[1];\ngate g0 a {{ x a; }}\n");
    for k in 0..40 {
        src.push_str(&format!("gate g{} a {{ g{k} a; g{k} a; }}\n", k + 1));
    }
    src.push_str("g40 q[0];\n");
    let start = std::time::Instant::now();
    let e = err(&src);
    assert!(start.elapsed().as_secs() < 1);
    assert_eq!((e.line, e.column), (45, 1));
    assert_eq!(
        e.message,
        "the program expands to more than 1000000 operations (the limit)"
    );
    // A small operation limit counts broadcast operations.
    let limits = Limits {
        max_operations: 3,
        ..Limits::default()
    };
    assert!(parse_qasm2(&format!("{HEADER}qreg q[3];\nh q;\n"), &limits).is_ok());
    let e = err_with(&format!("{HEADER}qreg q[4];\nh q;\n"), &limits);
    assert_eq!((e.line, e.column), (4, 1));
    // Source size.
    let limits = Limits {
        max_source_bytes: 10,
        ..Limits::default()
    };
    let e = err_with(HEADER, &limits);
    assert_eq!((e.line, e.column), (1, 1));
    assert!(
        e.message.contains("more than the limit of 10 bytes"),
        "{}",
        e.message
    );
    let e = parse_qasm2_bytes(HEADER.as_bytes(), &limits).unwrap_err();
    assert_eq!((e.line, e.column), (1, 1));
    // A gate with more arguments than qubits could ever exist.
    let args: Vec<String> = (0..41).map(|i| format!("a{i}")).collect();
    let e = err(&format!("{HEADER}gate g {} {{ }}\n", args.join(", ")));
    assert_eq!((e.line, e.column), (3, 8 + 4 * 10 + 5 * 30));
    assert!(e.message.contains("more qubit arguments"), "{}", e.message);
    // Qubit limit across registers.
    let limits = Limits {
        max_qubits: 3,
        ..Limits::default()
    };
    let e = err_with(&format!("{HEADER}qreg a[2];\nqreg b[2];\n"), &limits);
    assert_eq!((e.line, e.column), (4, 8));
}

#[test]
fn non_utf8_bytes_are_located() {
    let mut bytes = format!("{HEADER}qreg q[1];\nh é").into_bytes();
    bytes.push(0xff);
    bytes.extend_from_slice(b" q;\n");
    let e = parse_qasm2_bytes(&bytes, &Limits::default()).unwrap_err();
    assert_eq!((e.line, e.column), (4, 4));
    assert!(e.message.contains("UTF-8"), "{}", e.message);
    let ok = parse_qasm2_bytes(
        format!("{HEADER}qreg q[1];\nh q;").as_bytes(),
        &Limits::default(),
    );
    assert_eq!(ok.unwrap().ops().len(), 1);
}

#[test]
fn diagnostics_display_line_and_column() {
    let d = Diagnostic {
        message: "expected `;`".into(),
        line: 3,
        column: 7,
        file: None,
        limit: None,
    };
    assert_eq!(d.to_string(), "3:7: expected `;`");
    let _: &dyn std::error::Error = &d;
}

/// A valid program that touches most of the grammar, for the fuzz test.
const SAMPLE: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\n// sample\nqreg q[3];\nqreg r[2];\ncreg c[3];\n\
gate maj(t) a, b, c { cx c, b; cx c, a; ccx a, b, c; rz(-t/2 + sin(t)^2) a; barrier a, b; }\n\
opaque o(x) a;\n/* block\ncomment */\nh q;\nmaj(pi/4) q[0], q[1], r[1];\ncx q[0], r;\nu3(1e-3, .5, 5.) r[0];\n\
rccx q[0], q[1], q[2];\nbarrier q, r[0];\nmeasure q -> c;\nif (c == 5) x q;\nreset r;\n";

/// xorshift64*: enough randomness for fuzzing without a dependency (the
/// OpenQASM 3 tests use it too).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn sample_program_parses() {
    let c = parse(SAMPLE);
    assert_eq!(c.num_qubits(), 5);
    assert_eq!(c.num_clbits(), 3);
    // 3 h, maj = 3 + 1 rz + 1 barrier, 2 cx, 1 u3, 9 rccx, 1 barrier, 3 measure, 3 if, 2 reset.
    assert_eq!(c.ops().len(), 3 + 5 + 2 + 1 + 9 + 1 + 3 + 3 + 2);
}

#[test]
fn no_input_makes_the_parser_panic() {
    let limits = Limits::default();
    let start = std::time::Instant::now();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Every prefix of a valid program (by character).
    for (i, _) in SAMPLE.char_indices() {
        let _ = parse_qasm2(&SAMPLE[..i], &limits);
    }
    let alphabet: &[&str] = &[
        "OPENQASM",
        " 2.0",
        ";",
        "include",
        "\"qelib1.inc\"",
        "qreg",
        "creg",
        "q",
        "c",
        "[",
        "]",
        "2",
        "0",
        "99999999999999999999",
        "(",
        ")",
        "{",
        "}",
        ",",
        "->",
        "==",
        "gate",
        "opaque",
        "g",
        "a",
        "b",
        "h",
        "cx",
        "u3",
        "rccx",
        "c4x",
        "measure",
        "reset",
        "barrier",
        "if",
        "pi",
        "+",
        "-",
        "*",
        "/",
        "^",
        "sin",
        "1e-10",
        ".5",
        "5.",
        "//",
        "/*",
        "*/",
        "\n",
        " ",
        "é",
        "\"",
        "@",
    ];
    while start.elapsed().as_millis() < 700 {
        match rng.below(3) {
            // Random bytes, possibly not UTF-8.
            0 => {
                let n = rng.below(64);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                let _ = parse_qasm2_bytes(&bytes, &limits);
            }
            // Random token soup after a valid header.
            1 => {
                let mut s = String::from(HEADER);
                for _ in 0..rng.below(40) {
                    s.push_str(alphabet[rng.below(alphabet.len())]);
                    if rng.below(2) == 0 {
                        s.push(' ');
                    }
                }
                let _ = parse_qasm2(&s, &limits);
            }
            // The sample with a few characters deleted, duplicated or replaced.
            _ => {
                let mut chars: Vec<char> = SAMPLE.chars().collect();
                for _ in 0..1 + rng.below(3) {
                    let i = rng.below(chars.len());
                    match rng.below(3) {
                        0 => {
                            chars.remove(i);
                        }
                        1 => {
                            let c = chars[i];
                            chars.insert(i, c);
                        }
                        _ => {
                            let j = rng.below(chars.len());
                            chars[i] = chars[j];
                        }
                    }
                }
                let s: String = chars.into_iter().collect();
                let _ = parse_qasm2(&s, &limits);
            }
        }
    }
}

/// `ghz_20.qasm` from the bench suite, as generated.
const GHZ_20: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\n// ghz_20: generated by gen_circuits.py (seed 20261122); 20 gates\nqreg q[20];\nh q[0];\ncx q[0],q[1];\ncx q[1],q[2];\ncx q[2],q[3];\ncx q[3],q[4];\ncx q[4],q[5];\ncx q[5],q[6];\ncx q[6],q[7];\ncx q[7],q[8];\ncx q[8],q[9];\ncx q[9],q[10];\ncx q[10],q[11];\ncx q[11],q[12];\ncx q[12],q[13];\ncx q[13],q[14];\ncx q[14],q[15];\ncx q[15],q[16];\ncx q[16],q[17];\ncx q[17],q[18];\ncx q[18],q[19];\n";

#[test]
fn bench_circuits_parse() {
    let c = parse(GHZ_20);
    assert_eq!((c.num_qubits(), c.ops().len()), (20, 20));
    let mut expected = Circuit::new(20).h(0);
    for i in 0..19 {
        expected = expected.cx(i, i + 1);
    }
    assert_eq!(c.ops(), expected.ops());
    // The other generated files, when this machine has them; each states its
    // gate count in its comment line.
    let dir = std::path::Path::new("/work/shared/bench-peers/circuits");
    for name in ["ghz_20", "qft_20", "rqc_20", "qaoa_20"] {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.qasm"))) else {
            continue;
        };
        let c = parse(&text);
        let count: usize = text
            .lines()
            .find_map(|l| l.strip_suffix(" gates"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("gate count in the comment");
        assert_eq!(c.ops().len(), count, "{name}");
        assert_eq!(c.num_qubits(), 20);
    }
}

#[test]
fn relative_phase_toffolis_act_like_toffolis_on_basis_states() {
    // rccx and rc3x differ from ccx / c3x only by phases on basis states.
    for input in 0u32..16 {
        let xs: String = (0..4)
            .filter(|b| input >> b & 1 == 1)
            .map(|b| format!("x q[{b}];\n"))
            .collect();
        let c = parse_body(&format!(
            "qreg q[4];\n{xs}rccx q[0], q[1], q[2];\nrc3x q[0], q[1], q[2], q[3];\n"
        ));
        let mut after = input;
        if after & 0b11 == 0b11 {
            after ^= 0b100;
        }
        if after & 0b111 == 0b111 {
            after ^= 0b1000;
        }
        let state = kettle_reference::statevector(&c);
        assert!(
            (state[after as usize].norm() - 1.0).abs() < 1e-10,
            "input {input:04b}"
        );
    }
}

#[test]
fn corner_cases_of_definitions_and_conditions() {
    // An empty gate expands to nothing; `()` with no parameters is accepted.
    let c = parse_body("qreg q[2];\ngate nop a, b { }\nnop q[0], q[1];\nh() q[0];\n");
    assert_eq!(c.ops(), &[std_op(StandardGate::H, &[], &[0])]);
    // A gate whose body uses an opaque gate can be defined but not used.
    let src = "qreg q[1];\nopaque o a;\ngate g a { o a; }\n  g q[0];\n";
    let (l, c, m) = body_err(src);
    assert_eq!((l, c), (4, 3));
    assert!(m.contains("`o` is opaque"), "{m}");
    // Conditioned measure and reset broadcast one IfElse per bit.
    let c = parse_body(
        "qreg q[2];\ncreg c[2];\nif (c == 0) measure q -> c;\nif (c == 2) reset q[1];\n",
    );
    assert_eq!(c.ops().len(), 3);
    assert_eq!(
        c.ops()[1],
        Operation::IfElse {
            condition: Condition::equals(vec![0, 1], 0),
            then_ops: vec![Operation::Measure { qubit: 1, clbit: 1 }],
            else_ops: vec![],
        }
    );
    // Conditions test whole registers only.
    let (l, c, _) = body_err("qreg q[1];\ncreg c[2];\nif (c[0] == 1) x q;\n");
    assert_eq!((l, c), (3, 5));
}

/// Fuzz-campaign finding (qasm2): gates with empty bodies, each calling the
/// one before twice, expand to no operations, so the operation limit never
/// stopped them, and a 2 KB program made 2^40 calls (a hang). Calls of
/// defined gates are now counted, before anything is inlined.
#[test]
fn doubling_chains_of_empty_gates_are_refused_before_inlining() {
    let mut src =
        String::from("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\ngate g0 a { }\n");
    for i in 1..40 {
        src.push_str(&format!("gate g{i} a {{ g{} a; g{} a; }}\n", i - 1, i - 1));
    }
    src.push_str("g39 q[0];\n");
    let started = std::time::Instant::now();
    let e = err(&src);
    assert_eq!(
        e.to_string(),
        "44:1: the program's gate calls inline more than 1000000 calls of defined gates (the limit)"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The count is of calls: a chain short enough is inlined, and a lower
    // limit refuses it, at the call.
    let short = "OPENQASM 2.0;\nqreg q[1];\ngate g0 a { }\ngate g1 a { g0 a; g0 a; }\ngate g2 a { g1 a; g1 a; }\ng2 q[0];\ng2 q[0];\n";
    assert!(parse(short).ops().is_empty());
    let limits = Limits {
        max_calls: 13,
        ..Limits::default()
    };
    assert_eq!(
        err_with(short, &limits).to_string(),
        "7:1: the program's gate calls inline more than 13 calls of defined gates (the limit)"
    );
}
