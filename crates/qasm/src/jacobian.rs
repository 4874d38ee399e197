//! How a program's gate angles move with its `input` parameters: the
//! Jacobian `∂θ/∂x` that turns the core's gradient with respect to each
//! angle ([`kettle_core`-style `AngleRef`s: operation and parameter index])
//! into a gradient with respect to each input.
//!
//! # Why by re-lowering
//!
//! Gate angles are whatever the program computes from its inputs: an
//! expression (`rx(2*t)`), a variable assigned from one, a gate definition's
//! parameter, a modifier that rewrites the angle (`inv @ u3(t, …)`
//! permutes and negates angles, `u2` adds a global phase of `−(φ+λ)/2`).
//! Carrying a derivative through every one of those paths of the lowering
//! would double it; instead the program is lowered again with one input
//! moved by `±h` and the angles compared (central differences, step `h`
//! relative to the input's size). When the forward and backward slopes
//! agree, the angles are locally affine in that input (the overwhelmingly
//! common case: Qiskit's exporter and the PennyLane device write affine
//! angles) and the central difference is exact up to rounding, about
//! `1e−13·|θ|`; otherwise two more lowerings at `±h/2` give Richardson's
//! extrapolation, whose error is `O(h⁴)`, about `1e−12`. Everything that is
//! not an angle must come out identical at every point; an input that
//! changes the circuit otherwise (the number of gates, a matrix built by
//! `pow(t) @`, a branch) has no gradient here and is refused by name.

use std::collections::BTreeMap;

use kettle_ir::{Circuit, Gate, Operation};

/// Relative step of the central differences.
const STEP: f64 = 1e-3;

/// `∂θ/∂x` of one input: every angle that moves with it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputColumn {
    /// `(operation index in [`Circuit::ops`], parameter index, ∂θ/∂x)`,
    /// for every angle whose derivative is not zero.
    pub angles: Vec<(usize, usize, f64)>,
}

impl InputColumn {
    /// The derivative by this column's input, from the derivative by each
    /// angle (`by_angle(op, param)`): the chain rule.
    pub fn chain(&self, by_angle: impl Fn(usize, usize) -> f64) -> f64 {
        self.angles
            .iter()
            .map(|&(op, param, slope)| slope * by_angle(op, param))
            .sum()
    }
}

/// Every angle that some column moves, as `(operation, parameter)`, sorted
/// and each once: the angles to differentiate by.
pub fn moved_angles(columns: &[InputColumn]) -> Vec<(usize, usize)> {
    let mut angles: Vec<(usize, usize)> = columns
        .iter()
        .flat_map(|c| c.angles.iter().map(|&(op, param, _)| (op, param)))
        .collect();
    angles.sort_unstable();
    angles.dedup();
    angles
}

/// The columns of the Jacobian of `base`'s angles with respect to each of
/// `names` (inputs of `values`), where `lower` turns input values into the
/// circuit (`base` is `lower(values)`). Lowerings go through `lower`, so
/// they keep its limits, deadline and stop flag.
///
/// # Errors
/// The first error of `lower` at a moved point, or a message naming the
/// input whose moves change more than angles.
pub fn angle_jacobian<E>(
    base: &Circuit,
    values: &BTreeMap<String, f64>,
    names: &[String],
    mut lower: impl FnMut(&BTreeMap<String, f64>) -> Result<Circuit, E>,
) -> Result<Vec<InputColumn>, JacobianError<E>> {
    let base_angles = angles(base.ops());
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let Some(&x) = values.get(name) else {
            return Err(JacobianError::Shape(format!(
                "no value was given for input `{name}`"
            )));
        };
        let h = STEP * x.abs().max(1.0);
        let mut at = |shift: f64| -> Result<Vec<f64>, JacobianError<E>> {
            let mut moved = values.clone();
            moved.insert(name.clone(), x + shift);
            let circuit = lower(&moved).map_err(JacobianError::Lower)?;
            if !same_shape(base.ops(), circuit.ops()) || circuit.num_qubits() != base.num_qubits() {
                return Err(JacobianError::Shape(format!(
                    "moving input `{name}` changes more than gate angles (the gates, their qubits, a matrix or a branch), so it has no gradient here; a gradient needs `{name}` to enter only as gate angles"
                )));
            }
            Ok(angles(circuit.ops()).into_iter().map(|a| a.2).collect())
        };
        let (up, down) = (at(h)?, at(-h)?);
        let (up2, down2) = (at(h / 2.0)?, at(-h / 2.0)?);
        let mut column = InputColumn::default();
        for (k, &(op, param, theta)) in base_angles.iter().enumerate() {
            if [up[k], down[k], up2[k], down2[k]]
                .iter()
                .all(|&v| v == theta)
            {
                continue;
            }
            let coarse = (up[k] - down[k]) / (2.0 * h);
            let fine = (up2[k] - down2[k]) / h;
            column.angles.push((op, param, (4.0 * fine - coarse) / 3.0));
        }
        column.angles.retain(|a| a.2 != 0.0);
        columns.push(column);
    }
    Ok(columns)
}

/// Why [`angle_jacobian`] failed.
#[derive(Clone, Debug, PartialEq)]
pub enum JacobianError<E> {
    /// Lowering at a moved point failed.
    Lower(E),
    /// An input changes more than angles, or has no value.
    Shape(String),
}

/// Every angle of the top-level standard gates, with where it sits.
fn angles(ops: &[Operation]) -> Vec<(usize, usize, f64)> {
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if let Operation::Gate {
            gate: Gate::Standard { params, .. },
            ..
        } = op
        {
            out.extend(params.iter().enumerate().map(|(p, &v)| (i, p, v)));
        }
    }
    out
}

/// Whether two operation lists differ at most in standard gates' angles
/// (branches must be identical: angles inside them are not differentiated).
fn same_shape(a: &[Operation], b: &[Operation]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|pair| match pair {
            (
                Operation::Gate {
                    gate:
                        Gate::Standard {
                            gate: g1,
                            params: p1,
                        },
                    qubits: q1,
                    controls: c1,
                },
                Operation::Gate {
                    gate:
                        Gate::Standard {
                            gate: g2,
                            params: p2,
                        },
                    qubits: q2,
                    controls: c2,
                },
            ) => g1 == g2 && p1.len() == p2.len() && q1 == q2 && c1 == c2,
            (x, y) => x == y,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ParseOptions, parse_qasm3};

    fn lower(src: &str) -> impl FnMut(&BTreeMap<String, f64>) -> Result<Circuit, String> + '_ {
        move |inputs| {
            let options = ParseOptions {
                inputs: inputs.clone(),
                ..ParseOptions::default()
            };
            parse_qasm3(src, &options).map_err(|d| d.to_string())
        }
    }

    fn jacobian(
        src: &str,
        values: &[(&str, f64)],
    ) -> Result<Vec<InputColumn>, JacobianError<String>> {
        let values: BTreeMap<String, f64> =
            values.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let names: Vec<String> = values.keys().cloned().collect();
        let base = lower(src)(&values).unwrap();
        angle_jacobian(&base, &values, &names, lower(src))
    }

    #[test]
    fn affine_angles_through_expressions_variables_gates_and_modifiers() {
        let src = "OPENQASM 3.0; include \"stdgates.inc\";
            input float[64] a; input angle b; qubit[2] q;
            rx(2*a) q[0];
            float c = a - 3*b; ry(c) q[1];
            gate g(w) x { rz(w/2) x; }
            g(b) q[0];
            inv @ u3(a, b, 0.5) q[1];
            u2(a, b) q[0];
            ctrl @ rx(-a) q[0], q[1];
            h q[0];";
        let cols = jacobian(src, &[("a", 0.3), ("b", -1.7)]).unwrap();
        // Where the lowering puts each gate (u3 and u2 add global phases)
        // is its own business: find the gates by name.
        let ops = {
            let values: BTreeMap<String, f64> =
                [("a".to_string(), 0.3), ("b".to_string(), -1.7)].into();
            lower(src)(&values).unwrap()
        };
        let find = |name: &str| {
            ops.ops()
                .iter()
                .enumerate()
                .filter(|(_, o)| matches!(o, Operation::Gate { gate, .. } if gate.name() == name))
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        };
        let (rx, ry, rz, u) = (find("rx"), find("ry"), find("rz"), find("u"));
        let a_col = &cols[0].angles;
        let b_col = &cols[1].angles;
        assert!(
            a_col
                .iter()
                .any(|&(o, p, v)| o == rx[0] && p == 0 && (v - 2.0).abs() < 1e-11)
        );
        assert!(
            a_col
                .iter()
                .any(|&(o, p, v)| o == ry[0] && p == 0 && (v - 1.0).abs() < 1e-12)
        );
        assert!(
            b_col
                .iter()
                .any(|&(o, p, v)| o == ry[0] && p == 0 && (v + 3.0).abs() < 1e-12)
        );
        assert!(
            b_col
                .iter()
                .any(|&(o, p, v)| o == rz[0] && p == 0 && (v - 0.5).abs() < 1e-12)
        );
        // inv @ u3(a, b, λ) = u3(−a, −λ, −b): a moves angle 0 by −1.
        assert!(
            a_col
                .iter()
                .any(|&(o, p, v)| o == u[0] && p == 0 && (v + 1.0).abs() < 1e-12)
        );
        assert!(
            b_col
                .iter()
                .any(|&(o, p, v)| o == u[0] && p == 2 && (v + 1.0).abs() < 1e-12)
        );
        assert!(
            a_col
                .iter()
                .any(|&(o, p, v)| o == rx[1] && p == 0 && (v + 1.0).abs() < 1e-12)
        );
        // No angle is listed twice, none is zero.
        for col in [a_col, b_col] {
            assert!(col.iter().all(|a| a.2 != 0.0));
        }
    }

    #[test]
    fn curved_angles_are_extrapolated() {
        let src = "OPENQASM 3.0; include \"stdgates.inc\"; input float th; qubit q;
            rx(sin(th) * exp(th)) q; ry(th**3) q;";
        for t in [0.4, -2.5, 3.0] {
            let cols = jacobian(src, &[("th", t)]).unwrap();
            let want = [t.cos() * t.exp() + t.sin() * t.exp(), 3.0 * t * t];
            for (k, w) in want.iter().enumerate() {
                let got = cols[0].angles[k].2;
                assert!(
                    (got - w).abs() <= 1e-10 * w.abs().max(1.0),
                    "t = {t}: {got} vs {w}"
                );
            }
        }
    }

    #[test]
    fn inputs_that_change_more_than_angles_are_refused_by_name() {
        let branch = "OPENQASM 3.0; include \"stdgates.inc\"; input float th; qubit q;
            if (th > 0.5) { x q; } rx(th) q;";
        let err = jacobian(branch, &[("th", 0.5)]).unwrap_err();
        assert!(
            matches!(&err, JacobianError::Shape(m) if m.contains("`th`")),
            "{err:?}"
        );
        let power = "OPENQASM 3.0; include \"stdgates.inc\"; input float th; qubit q;
            pow(th) @ h q;";
        assert!(matches!(
            jacobian(power, &[("th", 0.3)]),
            Err(JacobianError::Shape(_))
        ));
        // An input that moves nothing has an empty column.
        let unused = "OPENQASM 3.0; include \"stdgates.inc\"; input float th; qubit q; h q;";
        assert_eq!(
            jacobian(unused, &[("th", 0.3)]).unwrap(),
            vec![InputColumn::default()]
        );
    }
}
