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
//! would double it; instead the program is lowered again with inputs moved
//! and the angles compared. Everything that is not an angle must come out
//! identical at every point; an input that changes the circuit otherwise
//! (the number of gates, a matrix built by `pow(t) @`, a branch) has no
//! gradient here and is refused by name.
//!
//! # The derivatives
//!
//! Each input `x_k` moves by `t·h_k`, with `h_k` = 10⁻³ of its size (at
//! least 10⁻³), and Richardson's extrapolation of the central differences
//! at `t = ±1` and `t = ±½`, `(4·D(½) − D(1))/3`, is exact for angles
//! polynomial of degree ≤ 4 in the input (which covers the affine angles
//! Qiskit's exporter and the PennyLane device write) up to rounding, about
//! `1e−12·|θ|`, and within `O(h⁴)` otherwise (`1e−11` for `sin`, `exp` at
//! ordinary sizes).
//!
//! # Few lowerings
//!
//! Four lowerings per input would cost more than the simulation for small
//! circuits with many parameters. Most angles depend on one input, so the
//! inputs are first told apart by their index's bits: for each bit `b`,
//! one lowering moves the inputs whose bit `b` is 1 and one those whose
//! bit is 0. An angle that depends on input `k` alone moves in exactly one
//! lowering of each pair, which spells `k`. Then four lowerings move every
//! input at once (`t = ±1, ±½`), and each angle's extrapolated change is
//! its own input's alone: `2⌈log₂ P⌉ + 4` lowerings for `P` inputs. An
//! angle that moves in both lowerings of a pair, or in neither while it
//! moves in others, depends on several inputs: then every input is moved
//! on its own, four lowerings each.

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

/// The derivative by each column's input, from the derivatives by the
/// angles of [`moved_angles`] (`by_angle[i]` is by `angles[i]`, as a
/// simulator's gradient returns them): the chain rule for every input.
pub fn chain_rule(
    columns: &[InputColumn],
    angles: &[(usize, usize)],
    by_angle: &[f64],
) -> Vec<f64> {
    columns
        .iter()
        .map(|column| {
            column.chain(|op, param| {
                let i = angles
                    .binary_search(&(op, param))
                    .expect("moved_angles lists every angle a column moves");
                by_angle[i]
            })
        })
        .collect()
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
    let mut points = Vec::with_capacity(names.len());
    for name in names {
        let Some(&x) = values.get(name) else {
            return Err(JacobianError::Shape(format!(
                "no value was given for input `{name}`"
            )));
        };
        points.push((x, STEP * x.abs().max(1.0)));
    }
    let mut probe = Probe {
        base,
        base_angles: angles(base.ops()).into_iter().map(|a| a.2).collect(),
        values,
        names,
        points: &points,
        lower: &mut lower,
    };
    if names.len() > 1
        && let Some(columns) = probe.by_bits()?
    {
        return Ok(columns);
    }
    (0..names.len()).map(|k| probe.one_input(k)).collect()
}

/// The lowerings of [`angle_jacobian`].
struct Probe<'a, L> {
    base: &'a Circuit,
    base_angles: Vec<f64>,
    values: &'a BTreeMap<String, f64>,
    names: &'a [String],
    /// Each input's value and step.
    points: &'a [(f64, f64)],
    lower: &'a mut L,
}

impl<L, E> Probe<'_, L>
where
    L: FnMut(&BTreeMap<String, f64>) -> Result<Circuit, E>,
{
    /// The angles with input `k` moved by `t·h_k` for every `(k, t)`, or
    /// `None` when more than angles changed.
    fn at(&mut self, moves: impl Iterator<Item = (usize, f64)>) -> Result<Option<Vec<f64>>, E> {
        let mut moved = self.values.clone();
        for (k, t) in moves {
            let (x, h) = self.points[k];
            moved.insert(self.names[k].clone(), x + t * h);
        }
        let circuit = (self.lower)(&moved)?;
        if circuit.num_qubits() != self.base.num_qubits()
            || !same_shape(self.base.ops(), circuit.ops())
        {
            return Ok(None);
        }
        Ok(Some(
            angles(circuit.ops()).into_iter().map(|a| a.2).collect(),
        ))
    }

    /// The column of input `k` from four lowerings that move it alone.
    fn one_input(&mut self, k: usize) -> Result<InputColumn, JacobianError<E>> {
        let mut series = Vec::with_capacity(4);
        for t in [1.0, -1.0, 0.5, -0.5] {
            let Some(a) = self
                .at(std::iter::once((k, t)))
                .map_err(JacobianError::Lower)?
            else {
                let name = &self.names[k];
                return Err(JacobianError::Shape(format!(
                    "moving input `{name}` changes more than gate angles (the gates, their qubits, a matrix or a branch), so it has no gradient here; a gradient needs `{name}` to enter only as gate angles"
                )));
            };
            series.push(a);
        }
        let h = self.points[k].1;
        let ops = angles(self.base.ops());
        let mut column = InputColumn::default();
        for (j, &(op, param, theta)) in ops.iter().enumerate() {
            if series.iter().all(|a| a[j] == theta) {
                continue;
            }
            let d = extrapolated(&series, j) / h;
            if d != 0.0 {
                column.angles.push((op, param, d));
            }
        }
        Ok(column)
    }

    /// Every column from `2⌈log₂ P⌉ + 4` lowerings, when each angle depends
    /// on at most one input; `None` otherwise (or when a move changed more
    /// than angles: moving the inputs one at a time then says which).
    fn by_bits(&mut self) -> Result<Option<Vec<InputColumn>>, JacobianError<E>> {
        let p = self.names.len();
        let bits = usize::BITS - (p - 1).leading_zeros();
        let count = self.base_angles.len();
        // For each angle: the input it depends on, as far as read, and
        // whether it moved at all.
        let mut code = vec![0usize; count];
        let mut moved = vec![None::<bool>; count];
        for b in 0..bits {
            let mut pair = Vec::with_capacity(2);
            for side in [1, 0] {
                let moves = (0..p).filter(|k| (k >> b) & 1 == side).map(|k| (k, 1.0));
                let Some(a) = self.at(moves).map_err(JacobianError::Lower)? else {
                    return Ok(None);
                };
                pair.push(a);
            }
            for j in 0..count {
                let theta = self.base_angles[j];
                let here = match (pair[0][j] != theta, pair[1][j] != theta) {
                    (true, true) => return Ok(None),
                    (true, false) => {
                        code[j] |= 1 << b;
                        true
                    }
                    (false, true) => true,
                    (false, false) => false,
                };
                match moved[j] {
                    Some(before) if before != here => return Ok(None),
                    _ => moved[j] = Some(here),
                }
            }
        }
        if (0..count).any(|j| moved[j] == Some(true) && code[j] >= p) {
            return Ok(None);
        }
        let mut series = Vec::with_capacity(4);
        for t in [1.0, -1.0, 0.5, -0.5] {
            let Some(a) = self
                .at((0..p).map(|k| (k, t)))
                .map_err(JacobianError::Lower)?
            else {
                return Ok(None);
            };
            series.push(a);
        }
        let ops = angles(self.base.ops());
        let mut columns = vec![InputColumn::default(); p];
        for (j, &(op, param, _)) in ops.iter().enumerate() {
            if moved[j] != Some(true) {
                continue;
            }
            let k = code[j];
            let d = extrapolated(&series, j) / self.points[k].1;
            if d != 0.0 {
                columns[k].angles.push((op, param, d));
            }
        }
        Ok(Some(columns))
    }
}

/// `dθ/dt` at 0 of angle `j`, from its values at `t = 1, −1, ½, −½`:
/// Richardson's extrapolation of the two central differences.
fn extrapolated(series: &[Vec<f64>], j: usize) -> f64 {
    let coarse = (series[0][j] - series[1][j]) / 2.0;
    let fine = series[2][j] - series[3][j];
    (4.0 * fine - coarse) / 3.0
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

    /// One input per angle (as the PennyLane device writes programs):
    /// `2⌈log₂ P⌉ + 4` lowerings, the same columns as one input at a time.
    #[test]
    fn inputs_told_apart_by_their_bits() {
        let mut src = String::from("OPENQASM 3.0; include \"stdgates.inc\"; qubit[3] q;\n");
        let count = 11;
        for k in 0..count {
            src.push_str(&format!("input float[64] p{k};\n"));
        }
        for k in 0..count {
            let gate = ["rx", "ry", "rz", "u3", "inv @ crx", "pow(2) @ rz"][k % 6];
            let call = match k % 6 {
                3 => format!("u3(p{k}, 0.2, -0.4) q[{}];", k % 3),
                4 => format!("{gate}(2*p{k} + 1) q[{}], q[{}];", k % 3, (k + 1) % 3),
                _ => format!("{gate}(sin(p{k})) q[{}];", k % 3),
            };
            src.push_str(&call);
            src.push_str("\ncx q[0], q[2];\n");
        }
        let values: BTreeMap<String, f64> = (0..count)
            .map(|k| (format!("p{k}"), 0.1 + 0.3 * k as f64))
            .collect();
        let names: Vec<String> = values.keys().cloned().collect();
        let base = lower(&src)(&values).unwrap();
        let mut lowerings = 0;
        let mut counted = lower(&src);
        let fast = angle_jacobian(&base, &values, &names, |v: &BTreeMap<String, f64>| {
            lowerings += 1;
            counted(v)
        })
        .unwrap();
        assert_eq!(lowerings, 2 * 4 + 4, "11 inputs take 4 bits");
        let slow: Vec<InputColumn> = {
            let mut l = lower(&src);
            let mut probe = Probe {
                base: &base,
                base_angles: angles(base.ops()).into_iter().map(|a| a.2).collect(),
                values: &values,
                names: &names,
                points: &names
                    .iter()
                    .map(|n| (values[n], STEP * values[n].abs().max(1.0)))
                    .collect::<Vec<_>>(),
                lower: &mut l,
            };
            (0..count).map(|k| probe.one_input(k).unwrap()).collect()
        };
        for (f, s) in fast.iter().zip(&slow) {
            assert_eq!(f.angles.len(), s.angles.len(), "{f:?} vs {s:?}");
            assert!(!f.angles.is_empty());
            for (a, b) in f.angles.iter().zip(&s.angles) {
                assert_eq!((a.0, a.1), (b.0, b.1));
                assert!((a.2 - b.2).abs() < 1e-10, "{a:?} vs {b:?}");
            }
        }
        // An angle of two inputs sends every input through on its own.
        let mixed = src.replace("ry(sin(p1))", "ry(p1 - p2)");
        let base = lower(&mixed)(&values).unwrap();
        let mut lowerings = 0;
        let mut counted = lower(&mixed);
        let cols = angle_jacobian(&base, &values, &names, |v: &BTreeMap<String, f64>| {
            lowerings += 1;
            counted(v)
        })
        .unwrap();
        assert!(lowerings > 4 * count, "{lowerings}");
        let p2 = names.iter().position(|n| n == "p2").unwrap();
        assert!(
            cols[p2].angles.iter().any(|a| (a.2 + 1.0).abs() < 1e-11),
            "{:?}",
            cols[p2]
        );
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
