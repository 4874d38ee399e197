//! The drawer's tests: what is drawn (counted in the SVG by class), the
//! layering and folding, escaping, and the bounds on a hostile circuit.

use std::f64::consts::PI;

use kettle_ir::{
    Channel, Circuit, Condition, Control, Gate, Operation, ReadoutError, StandardGate,
};

use crate::layout::{Kind, lay_out};
use crate::{Options, draw, escape, format_angle, format_number};

fn count(svg: &str, needle: &str) -> usize {
    svg.matches(needle).count()
}

/// Number of `<g class="op KIND"` groups.
fn ops(svg: &str, kind: &str) -> usize {
    count(svg, &format!("<g class=\"op {kind}\""))
}

/// A well-formedness check without an XML parser: tags balance, and
/// every `&` starts an entity.
fn well_formed(svg: &str) {
    assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
    let mut stack: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        let end = rest[i..].find('>').expect("a tag ends") + i;
        let tag = &rest[i + 1..end];
        assert!(!tag.contains('<'), "a `<` inside a tag: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name), "unbalanced </{name}>");
        } else if !tag.ends_with('/') {
            stack.push(tag.split([' ', '>']).next().unwrap());
        }
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    for (i, _) in svg.match_indices('&') {
        let entity = &svg[i..svg.len().min(i + 6)];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                .iter()
                .any(|e| entity.starts_with(e)),
            "a bare & at {i}: {entity}"
        );
    }
}

#[test]
fn bell_draws_a_box_a_cnot_and_two_measurements() {
    let bell = Circuit::new(2)
        .creg("c", 2)
        .h(0)
        .cx(0, 1)
        .measure(0, 0)
        .measure(1, 1);
    let d = draw(&bell, &Options::default());
    well_formed(&d.svg);
    assert_eq!((d.operations, d.drawn, d.rows), (4, 4, 1));
    assert_eq!(ops(&d.svg, "gate"), 2);
    assert_eq!(ops(&d.svg, "measure"), 2);
    assert_eq!(count(&d.svg, "data-name=\"h\""), 1);
    assert_eq!(count(&d.svg, "data-name=\"cx\""), 1);
    // H is a box, CX a control dot joined to ⊕.
    assert_eq!(count(&d.svg, "class=\"oplus\""), 1);
    assert_eq!(count(&d.svg, "class=\"ctrl\""), 1);
    assert_eq!(count(&d.svg, "class=\"link\""), 1);
    assert!(d.svg.contains(">H</text>"));
    // Two qubit wires, one classical register (a double line) named c.
    assert_eq!(count(&d.svg, "class=\"wire\""), 2);
    assert_eq!(count(&d.svg, "class=\"cwire\""), 3);
    assert!(d.svg.contains(">q0</text>") && d.svg.contains(">q1</text>"));
    assert!(d.svg.contains(">c</text>"));
    assert!(
        d.svg
            .contains("data-operations=\"4\" data-drawn=\"4\" data-rows=\"1\"")
    );
    assert!(!d.svg.contains("more operation"));
}

#[test]
fn layers_pack_left_to_right_like_qiskit() {
    // h q0 and x q2 share layer 0; cx 0,1 goes after h; z q2 after x but
    // beside cx? No: cx spans q0..q1 only, so z on q2 shares its layer.
    let c = Circuit::new(3).h(0).x(2).cx(0, 1).z(2).cx(0, 2);
    let laid = lay_out(&c, &Options::default());
    let names: Vec<Vec<&str>> = laid
        .layers
        .iter()
        .map(|l| {
            l.items
                .iter()
                .map(|i| match &i.kind {
                    Kind::Gate(g) => g.name,
                    _ => "?",
                })
                .collect()
        })
        .collect();
    assert_eq!(names, vec![vec!["h", "x"], vec!["cx", "z"], vec!["cx"]]);
    // A gate between two others' qubits waits for both; a CX over q0..q2
    // blocks q1 (its line crosses it).
    let c = Circuit::new(3).cx(0, 2).x(1);
    assert_eq!(lay_out(&c, &Options::default()).layers.len(), 2);
    // A measurement's arrow crosses every wire down to its classical line.
    let c = Circuit::new(2).creg("c", 2).measure(0, 0).h(1);
    assert_eq!(lay_out(&c, &Options::default()).layers.len(), 2);
    let c = Circuit::new(2).creg("c", 2).measure(1, 1).h(0);
    assert_eq!(lay_out(&c, &Options::default()).layers.len(), 1);
}

#[test]
fn wide_circuits_fold_into_rows() {
    let mut c = Circuit::new(2);
    for _ in 0..45 {
        c = c.h(0);
    }
    let d = draw(
        &c,
        &Options {
            fold: 10,
            ..Options::default()
        },
    );
    well_formed(&d.svg);
    assert_eq!((d.drawn, d.rows), (45, 5));
    assert_eq!(count(&d.svg, "<g class=\"row\""), 5);
    // Each folded row ends in » on each wire; the last does not.
    assert_eq!(count(&d.svg, ">»</text>"), 4 * 2);
    // The picture is as wide as a row of 10, not of 45.
    let narrow = width(&d.svg);
    let wide = width(&draw(&c, &Options::default()).svg);
    assert!(
        narrow < wide && narrow < 10.0 * 40.0 + 100.0,
        "{narrow} {wide}"
    );
}

fn width(svg: &str) -> f64 {
    let at = svg.find("width=\"").unwrap() + 7;
    svg[at..at + svg[at..].find('"').unwrap()].parse().unwrap()
}

#[test]
fn controls_open_dots_swaps_and_multi_qubit_boxes() {
    let c = Circuit::new(4)
        .controlled(
            Gate::standard(StandardGate::H, &[]),
            &[3],
            vec![Control::one(0), Control::zero(1)],
        )
        .ccx(0, 1, 2)
        .cz(1, 3)
        .swap(0, 3)
        .cswap(1, 0, 2)
        .rzz(PI / 2.0, 0, 2)
        .cp(PI / 4.0, 0, 1)
        .mcx(&[0, 1, 2], 3);
    let d = draw(&c, &Options::default());
    well_formed(&d.svg);
    assert_eq!(ops(&d.svg, "gate"), 8);
    assert_eq!(count(&d.svg, "class=\"ctrl open\""), 1);
    // ctrl-H: 1 dot; ccx: 2; cz: 2 (the target too); cswap: 1; cp: 1; mcx: 3.
    assert_eq!(count(&d.svg, "class=\"ctrl\""), 1 + 2 + 2 + 1 + 1 + 3);
    assert_eq!(count(&d.svg, "class=\"oplus\""), 2);
    assert_eq!(count(&d.svg, "class=\"swap\""), 4);
    assert!(d.svg.contains(">Rzz(π/2)</text>"));
    assert!(d.svg.contains(">P(π/4)</text>"));
    // The two-qubit box numbers its qubits.
    assert!(d.svg.contains("class=\"small\"") && d.svg.contains(">0</text>"));
}

#[test]
fn angles_are_short() {
    assert_eq!(format_angle(PI / 2.0), "π/2");
    assert_eq!(format_angle(-3.0 * PI / 4.0), "-3π/4");
    assert_eq!(format_angle(PI), "π");
    assert_eq!(format_angle(-PI), "-π");
    assert_eq!(format_angle(2.0 * PI), "2π");
    assert_eq!(format_angle(PI / 3.0), "π/3");
    assert_eq!(format_angle(0.0), "0");
    assert_eq!(format_angle(0.3), "0.3");
    assert_eq!(format_angle(1.23456), "1.235");
    assert_eq!(format_angle(-0.5), "-0.5");
    assert_eq!(format_angle(1e300), "1.00e300");
    assert_eq!(format_angle(1e-9), "1.00e-9");
    let c = Circuit::new(1).u(PI / 2.0, 0.0, -PI / 8.0, 0).rx(0.3, 0);
    let d = draw(&c, &Options::default());
    assert!(d.svg.contains(">U(π/2,0,-π/8)</text>"), "{}", d.svg);
    assert!(d.svg.contains(">Rx(0.3)</text>"));
}

#[test]
fn measure_reset_barrier_and_global_phase() {
    let c = Circuit::new(3)
        .creg("meas", 3)
        .gphase(PI / 4.0)
        .reset(1)
        .barrier(&[0, 1, 2])
        .barrier(&[0, 2])
        .measure(2, 1);
    let d = draw(&c, &Options::default());
    well_formed(&d.svg);
    assert_eq!((d.operations, d.drawn), (5, 5));
    assert_eq!(ops(&d.svg, "reset"), 1);
    assert_eq!(ops(&d.svg, "barrier"), 2);
    assert_eq!(ops(&d.svg, "measure"), 1);
    assert!(d.svg.contains("global phase: π/4"));
    // The bit measured into is numbered on its register's line.
    assert!(d.svg.contains("data-bit=\"1\""));
    // A barrier over q0 and q2 only is two shaded runs.
    assert_eq!(count(&d.svg, "class=\"shade\""), 1 + 2);
}

#[test]
fn conditions_are_framed_and_joined_to_their_bits() {
    let c = Circuit::new(2)
        .creg("c", 1)
        .creg("flags", 2)
        .h(0)
        .measure(0, 0)
        .if_then(Condition::bit(0, true), |b| b.x(1))
        .if_else(
            Condition::equals(vec![1, 2], 2),
            |b| b.z(0).z(1),
            |b| b.h(1),
        )
        .if_then(Condition::bit(2, false), |b| {
            b.if_then(Condition::bit(0, true), |b| b.y(0))
        });
    let d = draw(&c, &Options::default());
    well_formed(&d.svg);
    assert_eq!(d.operations, 2 + 1 + 1 + 1 + 2 + 1 + 1 + 1 + 1);
    assert_eq!(d.drawn, d.operations);
    assert_eq!(ops(&d.svg, "if"), 4);
    assert!(d.svg.contains("data-condition=\"c==1\""));
    assert!(d.svg.contains("data-condition=\"flags==2\""));
    assert!(d.svg.contains("data-condition=\"flags[1]==0\""));
    assert!(d.svg.contains(">if c==1</text>"));
    assert!(d.svg.contains(">else</text>"));
    assert_eq!(count(&d.svg, "class=\"frame\""), 4);
    // Each block's double line ends in a dot on each line it reads.
    assert_eq!(count(&d.svg, "class=\"cdot\""), 4);
    // Gates inside the frames are drawn as gates.
    assert_eq!(ops(&d.svg, "gate"), 1 + 1 + 2 + 1 + 1);
    // The block comes after the measurement it reads.
    let laid = lay_out(&c, &Options::default());
    assert!(matches!(laid.layers[2].items[0].kind, Kind::Block(_)));
    // Bits of no single register are listed.
    let c = Circuit::new(1)
        .creg("a", 1)
        .creg("b", 1)
        .if_then(Condition::equals(vec![1, 0], 1), |b| b.x(0));
    assert!(draw(&c, &Options::default()).svg.contains("bits[1,0]==1"));
}

#[test]
fn user_names_are_escaped() {
    let hostile = "<script>alert('x')</script>&\"\u{1}";
    let c = Circuit::new(1)
        .creg(hostile, 1)
        .measure(0, 0)
        .if_then(Condition::bit(0, true), |b| b.x(0));
    let d = draw(&c, &Options::default());
    well_formed(&d.svg);
    assert!(!d.svg.contains("<script"));
    assert!(!d.svg.contains('\u{1}'));
    assert!(d.svg.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/scr…"));
    assert_eq!(
        escape("a<b>&\"'\n\u{0}"),
        "a&lt;b&gt;&amp;&quot;&#39; \u{fffd}"
    );
    // Long names are cut.
    let long = "r".repeat(1000);
    let d = draw(
        &Circuit::new(1).creg(&long, 1).measure(0, 0),
        &Options::default(),
    );
    assert!(!d.svg.contains(&"r".repeat(30)));
    assert!(d.svg.contains(&format!("{}…", "r".repeat(23))));
}

#[test]
fn a_hostile_circuit_gives_a_bounded_drawing() {
    // A million wide gates on 50 qubits, nested blocks, 20 000 registers.
    let n = 50;
    let mut c = Circuit::new(n);
    for i in 0..20_000 {
        c.add_register(&format!("r{i}"), 1).unwrap();
    }
    let controls: Vec<u32> = (1..n).collect();
    let mut ops = Vec::with_capacity(1_000_000);
    for i in 0..1_000_000u32 {
        ops.push(match i % 3 {
            0 => Operation::Gate {
                gate: Gate::standard(StandardGate::X, &[]),
                qubits: vec![0],
                controls: controls.iter().map(|&q| Control::one(q)).collect(),
            },
            1 => Operation::Measure {
                qubit: i % n,
                clbit: i % 20_000,
            },
            _ => Operation::gate(
                Gate::standard(StandardGate::Rx, &[f64::from(i)]),
                vec![i % n],
            ),
        });
    }
    c.append_ops(ops);
    let d = draw(&c, &Options::default());
    well_formed(&d.svg);
    assert_eq!(d.operations, 1_000_000);
    assert!(d.drawn > 0 && d.drawn <= 500, "{}", d.drawn);
    assert!(d.svg.len() < 1 << 20, "{} bytes", d.svg.len());
    assert!(
        d.svg.contains(&format!(
            "… {} more operations not drawn",
            1_000_000 - d.drawn
        )),
        "the note says how many were left out"
    );
    // The 20 000 registers share one line.
    assert_eq!(count(&d.svg, ">clbits</text>"), d.rows);

    // Narrow gates: at most max_operations, and at most MAX_ROWS rows
    // however small the fold.
    let mut c = Circuit::new(n);
    for i in 0..1_000_000u32 {
        c = c.h(i % n);
        if i > 3000 {
            break;
        }
    }
    let d = draw(
        &c,
        &Options {
            fold: 1,
            max_operations: 100_000,
        },
    );
    assert_eq!(d.rows, crate::MAX_ROWS);
    assert!(d.svg.len() < 1 << 20, "{} bytes", d.svg.len());
    let d = draw(&c, &Options::default());
    assert_eq!(d.drawn, 500);
    assert!(d.svg.len() < 1 << 20, "{} bytes", d.svg.len());

    // Deep nesting is drawn down to a bound, without recursing further.
    let mut op = Operation::gate(Gate::standard(StandardGate::X, &[]), vec![0]);
    for _ in 0..10_000 {
        op = Operation::IfElse {
            condition: Condition::bit(0, true),
            then_ops: vec![op],
            else_ops: vec![],
        };
    }
    let c = Circuit::new(1).creg("c", 1).op(op);
    let d = draw(&c, &Options::default());
    well_formed(&d.svg);
    assert_eq!(d.operations, 10_001);
    assert_eq!(d.drawn, crate::MAX_DRAWN_NESTING);
    // (Dropping a 10 000-deep operation recurses; let it leak.)
    std::mem::forget(c);
}

#[test]
fn too_many_qubits_or_none_is_a_note() {
    let d = draw(&Circuit::new(65).h(0), &Options::default());
    well_formed(&d.svg);
    assert_eq!((d.drawn, d.rows), (0, 0));
    assert!(d.svg.contains("65 qubits: too many to draw"));
    let d = draw(&Circuit::new(0), &Options::default());
    well_formed(&d.svg);
    assert!(d.svg.contains("empty circuit"));
    // Only classical bits: a drawing of one line.
    let d = draw(&Circuit::new(0).creg("c", 2), &Options::default());
    well_formed(&d.svg);
    assert_eq!(count(&d.svg, "class=\"cwire\""), 3);
}

#[test]
fn invalid_operations_are_left_out() {
    let c = Circuit::new(1).h(0).h(5).measure(0, 3);
    let d = draw(&c, &Options::default());
    well_formed(&d.svg);
    assert_eq!((d.operations, d.drawn), (3, 1));
    assert!(d.svg.contains("2 more operations not drawn"));
}

#[test]
fn rows_leave_room_only_for_the_frames_that_reach_above_them() {
    // The first wire's y in the first row.
    fn first_wire_y(svg: &str) -> f64 {
        let at = svg.find("<line class=\"wire\"").unwrap();
        let y1 = svg[at..].find("y1=\"").unwrap() + at + 4;
        svg[y1..y1 + svg[y1..].find('"').unwrap()].parse().unwrap()
    }
    let plain = Circuit::new(3).creg("c", 1).measure(2, 0).x(2);
    let low = Circuit::new(3)
        .creg("c", 1)
        .measure(2, 0)
        .if_then(Condition::bit(0, true), |b| b.x(2));
    let high = Circuit::new(3)
        .creg("c", 1)
        .measure(2, 0)
        .if_then(Condition::bit(0, true), |b| {
            b.if_then(Condition::bit(0, true), |b| b.x(0))
        });
    let y = |c: &Circuit| first_wire_y(&draw(c, &Options::default()).svg);
    assert_eq!(y(&low), y(&plain), "a frame on q2 needs no room above q0");
    assert!(y(&high) > y(&plain) + 20.0, "two frames on q0 need room");
}

#[test]
fn channels_are_dashed_boxes_with_their_parameters() {
    let c = Circuit::new(3)
        .creg("c", 2)
        .h(0)
        .channel(Channel::depolarizing(0.01).unwrap(), &[0])
        .channel(Channel::pauli_channel(0.1, 0.2, 0.25).unwrap(), &[1])
        .channel(Channel::two_qubit_dephasing(0.05).unwrap(), &[2, 0])
        .channel(
            Channel::thermal_relaxation(50.0, 70.0, 0.5, 0.0).unwrap(),
            &[1],
        )
        .channel(
            Channel::kraus(vec![kettle_ir::GateMatrix::identity(1)]).unwrap(),
            &[2],
        );
    let d = draw(&c, &Options::default());
    well_formed(&d.svg);
    assert_eq!((d.operations, d.drawn), (6, 6));
    assert_eq!(ops(&d.svg, "gate"), 1);
    assert_eq!(ops(&d.svg, "noise"), 5);
    assert!(d.svg.contains("data-name=\"depolarizing\""));
    for label in [
        ">depolarizing(0.01)<",
        ">pauli_channel(0.1,0.2,0.25)<",
        ">two_qubit_dephasing(0.05)<",
        ">thermal_relaxation_error(50,70,0.5,0)<",
        ">kraus<",
    ] {
        assert!(d.svg.contains(label), "no {label} in {}", d.svg);
    }
    // Probabilities are numbers, never multiples of π.
    assert_eq!(format_number(PI / 4.0), "0.785");
    // Noise boxes are styled apart from gate boxes (dashed, red).
    assert!(d.svg.contains(".noise .box,"));
    assert!(d.svg.contains("stroke-dasharray:4 2"));
    // A two-qubit channel spans its qubits with numbered pins, in its order.
    let two = &d.svg[d.svg.find("data-name=\"two_qubit_dephasing\"").unwrap()..];
    let two = &two[..two.find("</g>").unwrap()];
    assert_eq!(count(two, "class=\"small\""), 2);
    // The channel on q1 shares H's layer, the one on q0 waits for H; a
    // two-qubit channel takes the wires between its qubits, as a gate does.
    let laid = lay_out(&c, &Options::default());
    let kinds: Vec<Vec<&str>> = laid
        .layers
        .iter()
        .map(|l| {
            l.items
                .iter()
                .map(|i| match &i.kind {
                    Kind::Gate(_) => "gate",
                    Kind::Channel(_) => "channel",
                    _ => "other",
                })
                .collect()
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            vec!["gate", "channel"],
            vec!["channel"],
            vec!["channel"],
            vec!["channel", "channel"]
        ]
    );
}

#[test]
fn readout_errors_mark_their_classical_line() {
    let c = Circuit::new(2)
        .creg("a", 1)
        .creg("b", 2)
        .measure(0, 0)
        .measure(1, 2)
        .readout_error(2, ReadoutError::new([[0.9, 0.1], [0.25, 0.75]]).unwrap());
    let d = draw(&c, &Options::default());
    well_formed(&d.svg);
    assert_eq!((d.operations, d.drawn), (3, 3));
    assert_eq!(ops(&d.svg, "readout"), 1);
    assert!(
        d.svg.contains(
            "data-bit=\"1\"><title>readout error on bit 1: P(1|0)=0.1, P(0|1)=0.25</title>"
        )
    );
    assert!(d.svg.contains(">ro</text>"));
    // On register b's line (wire 3), after the measurement that writes it
    // (layer 2: that measurement's arrow crosses line a, so it waits in
    // layer 1 for the first one).
    let laid = lay_out(&c, &Options::default());
    let readout = laid
        .layers
        .iter()
        .enumerate()
        .flat_map(|(n, l)| l.items.iter().map(move |i| (n, i)))
        .find_map(|(n, i)| match i.kind {
            Kind::Readout { line, bit, .. } => Some((n, line, bit, i.lo, i.hi)),
            _ => None,
        });
    assert_eq!(readout, Some((2, 3, 1, 3, 3)));
    // A readout error on a bit the circuit lacks is left out.
    let bad =
        Circuit::new(1).readout_error(5, ReadoutError::new([[1.0, 0.0], [0.0, 1.0]]).unwrap());
    assert_eq!(draw(&bad, &Options::default()).drawn, 0);
}
