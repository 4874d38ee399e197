//! Gates as the OpenQASM 3 lowering sees them: the built-in library
//! (`U`, `gphase`, and `stdgates.inc` mapped to [`StandardGate`]s), and the
//! modifiers applied to a lowered gate body — adding controls, inverting,
//! raising to a power (by repetition, by scaling a rotation angle, or by the
//! principal power of the body's matrix).
//!
//! The built-in `U(θ, φ, λ)` is the specification's (since its 2022
//! revision, in the released 3.0.0 and 3.1.0): the matrix
//! `½[[1+e^{iθ}, -ie^{iλ}(1-e^{iθ})], [ie^{iφ}(1-e^{iθ}), e^{i(φ+λ)}(1+e^{iθ})]]`,
//! which is `e^{iθ/2}` times Qiskit's `UGate` ([`StandardGate::U`]); it is
//! lowered to that gate and a `gphase(θ/2)` beside it, so that `ctrl @ U(…)`
//! gets the relative phase the specification gives it. `pragma kettle U
//! pre-2022` selects the earlier definition (Qiskit's `UGate`, without the
//! phase), for programs written against it.
//!
//! Every `stdgates.inc` gate equals its [`StandardGate`] exactly, global
//! phase included, except `u2` and `u3`, which the library defines with an
//! extra `gphase(-(φ+λ)/2)` relative to Qiskit's `U2Gate`/`U3Gate`; that
//! phase is emitted beside them, so that `ctrl @ u3(…)` means what the
//! specification says (a relative phase on the control). Qiskit's importer
//! maps `u3` to its `U3Gate` without the phase; the two agree on every
//! uncontrolled use up to global phase. None of this depends on which `U`
//! is selected: the library gates are not lowered through `U`.

use kettle_ir::{
    Complex64, Control, Gate, GateMatrix, Operation, Qubit, StandardGate, UnitaryMatrix,
};

/// The most qubits a non-integer power of a gate may act on (its matrix is
/// computed and decomposed).
pub(crate) const MAX_POWER_QUBITS: usize = 6;

/// An extra global phase a library gate carries beyond its standard gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PhaseFix {
    None,
    /// The built-in `U(θ, φ, λ)` of the specification: `gphase(θ/2)`.
    U,
    /// `u2(φ, λ)`: `gphase(-(φ+λ)/2)`.
    U2,
    /// `u3(θ, φ, λ)`: `gphase(-(φ+λ)/2)`.
    U3,
}

/// A gate of the built-in library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Builtin {
    pub(crate) gate: StandardGate,
    pub(crate) phase: PhaseFix,
}

/// Always defined, without any include.
pub(crate) const ALWAYS: &[(&str, StandardGate, PhaseFix)] = &[
    ("U", StandardGate::U, PhaseFix::U),
    ("gphase", StandardGate::GlobalPhase, PhaseFix::None),
];

/// The built-in `U` as the specification defined it before its 2022
/// revision (Qiskit's `UGate`), selected by `pragma kettle U pre-2022`.
pub(crate) const U_PRE_2022: Builtin = Builtin {
    gate: StandardGate::U,
    phase: PhaseFix::None,
};

/// The gates of `stdgates.inc`.
pub(crate) const STDGATES: &[(&str, StandardGate, PhaseFix)] = {
    use PhaseFix::{None as N, U2 as P2, U3 as P3};
    use StandardGate::*;
    &[
        ("p", P, N),
        ("x", X, N),
        ("y", Y, N),
        ("z", Z, N),
        ("h", H, N),
        ("s", S, N),
        ("sdg", Sdg, N),
        ("t", T, N),
        ("tdg", Tdg, N),
        ("sx", Sx, N),
        ("rx", Rx, N),
        ("ry", Ry, N),
        ("rz", Rz, N),
        ("cx", Cx, N),
        ("cy", Cy, N),
        ("cz", Cz, N),
        ("cp", Cp, N),
        ("crx", Crx, N),
        ("cry", Cry, N),
        ("crz", Crz, N),
        ("ch", Ch, N),
        ("swap", Swap, N),
        ("ccx", Ccx, N),
        ("cswap", Cswap, N),
        ("cu", Cu, N),
        ("CX", Cx, N),
        ("phase", P, N),
        ("cphase", Cp, N),
        ("id", Id, N),
        ("u1", P, N),
        ("u2", U2, P2),
        ("u3", U, P3),
    ]
};

/// Whether `name` is defined by `stdgates.inc` (for the "forgot the
/// include" hint).
pub(crate) fn is_stdgate(name: &str) -> bool {
    STDGATES.iter().any(|(n, _, _)| *n == name)
}

/// The operations of one call of a built-in gate (its phase fix included).
pub(crate) fn builtin_ops(b: Builtin, params: &[f64], qubits: &[Qubit]) -> Vec<Operation> {
    let mut ops = vec![Operation::gate(
        Gate::standard(b.gate, params),
        qubits.to_vec(),
    )];
    let phase = match (b.phase, params) {
        (PhaseFix::U, [theta, _, _]) => theta / 2.0,
        (PhaseFix::U2, [phi, lambda]) | (PhaseFix::U3, [_, phi, lambda]) => -(phi + lambda) / 2.0,
        _ => 0.0,
    };
    if phase != 0.0 {
        ops.push(global_phase(phase));
    }
    ops
}

/// An uncontrolled global phase `e^{iθ}`.
pub(crate) fn global_phase(theta: f64) -> Operation {
    Operation::gate(
        Gate::standard(StandardGate::GlobalPhase, &[theta]),
        Vec::new(),
    )
}

fn c(re: f64, im: f64) -> Complex64 {
    Complex64::new(re, im)
}

/// A phase `e^{iθ}` applied where every control holds: a phase gate on one
/// of the controls (`P(θ)` on a |1⟩-control, `diag(e^{iθ}, 1)` on a
/// |0⟩-control), controlled by the others. This is how a global phase
/// becomes observable under `ctrl @`.
fn controlled_phase(theta: f64, mut controls: Vec<Control>) -> Result<Operation, String> {
    let pick = controls
        .iter()
        .rposition(|ctl| ctl.on)
        .unwrap_or(controls.len().saturating_sub(1));
    if pick >= controls.len() {
        return Ok(global_phase(theta));
    }
    let target = controls.remove(pick);
    let gate = if target.on {
        Gate::standard(StandardGate::P, &[theta])
    } else {
        let m = GateMatrix::new(
            1,
            vec![
                Complex64::from_polar(1.0, theta),
                c(0.0, 0.0),
                c(0.0, 0.0),
                c(1.0, 0.0),
            ],
        )
        .map_err(|e| e.to_string())?;
        Gate::Unitary(UnitaryMatrix::new(m).map_err(|e| e.to_string())?)
    };
    Ok(Operation::Gate {
        gate,
        qubits: vec![target.qubit],
        controls,
    })
}

/// Adds `controls` to every operation of a gate body (`ctrl @` / `negctrl @`).
pub(crate) fn add_controls(ops: &mut [Operation], controls: &[Control]) -> Result<(), String> {
    for op in ops.iter_mut() {
        if let Operation::Gate {
            gate,
            qubits,
            controls: existing,
        } = op
        {
            existing.extend_from_slice(controls);
            if qubits.is_empty()
                && let Gate::Standard {
                    gate: StandardGate::GlobalPhase,
                    params,
                } = gate
            {
                let theta = params.first().copied().unwrap_or(0.0);
                *op = controlled_phase(theta, std::mem::take(existing))?;
            }
        }
    }
    Ok(())
}

/// The inverse of one gate application.
fn inverse_op(op: &Operation) -> Result<Operation, String> {
    let Operation::Gate {
        gate,
        qubits,
        controls,
    } = op
    else {
        return match op {
            Operation::Barrier { .. } => Ok(op.clone()),
            _ => Err("only gates can be inverted".into()),
        };
    };
    use StandardGate::*;
    let with = |g: StandardGate, params: &[f64]| Operation::Gate {
        gate: Gate::standard(g, params),
        qubits: qubits.clone(),
        controls: controls.clone(),
    };
    let (g, p) = match gate {
        Gate::Standard { gate, params } => (*gate, params.as_slice()),
        Gate::Unitary(u) => {
            let inv = UnitaryMatrix::new(u.matrix().adjoint()).map_err(|e| e.to_string())?;
            return Ok(Operation::Gate {
                gate: Gate::Unitary(inv),
                qubits: qubits.clone(),
                controls: controls.clone(),
            });
        }
    };
    let neg: Vec<f64> = p.iter().map(|x| -x).collect();
    Ok(match (g, p) {
        (Id | X | Y | Z | H | Cx | Cy | Cz | Ch | Swap | Ccx | Cswap | Ecr, _) => op.clone(),
        (S, _) => with(Sdg, &[]),
        (Sdg, _) => with(S, &[]),
        (T, _) => with(Tdg, &[]),
        (Tdg, _) => with(T, &[]),
        (Sx, _) => with(Sxdg, &[]),
        (Sxdg, _) => with(Sx, &[]),
        (Rx | Ry | Rz | P | Cp | Crx | Cry | Crz | Rxx | Ryy | Rzz | Rzx | GlobalPhase, _) => {
            with(g, &neg)
        }
        (U, [theta, phi, lambda]) => with(U, &[-theta, -lambda, -phi]),
        (U2, [phi, lambda]) => with(U, &[-std::f64::consts::FRAC_PI_2, -lambda, -phi]),
        (Cu3, [theta, phi, lambda]) => with(Cu3, &[-theta, -lambda, -phi]),
        (Cu, [theta, phi, lambda, gamma]) => with(Cu, &[-theta, -lambda, -phi, -gamma]),
        (Csx, _) => {
            // Controlled √X†: the built-in control becomes an extra control.
            let (Some(&ctl), Some(&target)) = (qubits.first(), qubits.get(1)) else {
                return Err("malformed csx".into());
            };
            let mut all = controls.clone();
            all.push(Control::one(ctl));
            Operation::Gate {
                gate: Gate::standard(Sxdg, &[]),
                qubits: vec![target],
                controls: all,
            }
        }
        _ => {
            let inv = UnitaryMatrix::new(gate.matrix().adjoint()).map_err(|e| e.to_string())?;
            Operation::Gate {
                gate: Gate::Unitary(inv),
                qubits: qubits.clone(),
                controls: controls.clone(),
            }
        }
    })
}

/// Inverts a gate body in place: reversed, each gate inverted (`inv @`).
pub(crate) fn invert(ops: &mut [Operation]) -> Result<(), String> {
    ops.reverse();
    for op in ops.iter_mut() {
        *op = inverse_op(op)?;
    }
    Ok(())
}

/// Gates whose powers are rotations by a multiple of their angle, as Qiskit
/// computes `power` for them.
fn scalable(gate: StandardGate) -> bool {
    use StandardGate::*;
    matches!(
        gate,
        Rx | Ry | Rz | P | Cp | Crx | Cry | Crz | Rxx | Ryy | Rzz | Rzx | GlobalPhase
    )
}

/// `ops` if it is a single gate whose power is a scaled angle.
fn single_scalable(ops: &mut [Operation]) -> Option<&mut f64> {
    match ops {
        [
            Operation::Gate {
                gate: Gate::Standard { gate, params },
                ..
            },
        ] if scalable(*gate) => params.first_mut(),
        _ => None,
    }
}

/// `k` as an integer, if it is one.
pub(crate) fn as_integer(k: f64) -> Option<i64> {
    if k.fract() == 0.0 && k.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)]
        Some(k as i64)
    } else {
        None
    }
}

/// How a body is raised to a power.
#[derive(Debug)]
pub(crate) enum Power {
    /// Done in place (angle scaled, or the power was 1).
    Done,
    /// Repeat the (possibly inverted) body this many times.
    Repeat(u64),
    /// Replace the body by this one operation (principal matrix power).
    Matrix(Operation),
}

/// Decides how `pow(k) @` applies to `ops`, doing it if it is cheap.
/// Rotations scale their angle (`pow(k) @ rz(θ)` is `rz(kθ)`); other
/// integer powers repeat the body (inverted first for `k < 0`); other
/// non-integer powers take the principal power of the body's matrix.
pub(crate) fn power(ops: &mut [Operation], k: f64) -> Result<Power, String> {
    if let Some(angle) = single_scalable(ops) {
        *angle *= k;
        return Ok(Power::Done);
    }
    if let Some(n) = as_integer(k) {
        if n < 0 {
            invert(ops)?;
        }
        return Ok(match n.unsigned_abs() {
            0 => Power::Repeat(0),
            1 => Power::Done,
            n => Power::Repeat(n),
        });
    }
    let mut qubits: Vec<Qubit> = Vec::new();
    for op in ops.iter() {
        match op {
            Operation::Gate {
                qubits: q,
                controls,
                ..
            } => {
                for &x in q.iter().chain(controls.iter().map(|ctl| &ctl.qubit)) {
                    if !qubits.contains(&x) {
                        qubits.push(x);
                    }
                }
            }
            Operation::Barrier { .. } => {}
            _ => return Err("only gates can be raised to a power".into()),
        }
    }
    if qubits.len() > MAX_POWER_QUBITS {
        return Err(format!(
            "a non-integer power of a gate on {} qubits is not supported (at most {MAX_POWER_QUBITS})",
            qubits.len()
        ));
    }
    if qubits.is_empty() {
        // Only barriers: nothing to raise to a power.
        return Ok(Power::Done);
    }
    qubits.sort_unstable();
    let m = matrix_of(ops, &qubits)?;
    let powered = principal_power(&m, k)?;
    let u = UnitaryMatrix::new(powered).map_err(|e| e.to_string())?;
    Ok(Power::Matrix(Operation::gate(Gate::Unitary(u), qubits)))
}

/// The unitary of a gate body on `qubits` (bit `i` of an index is `qubits[i]`).
fn matrix_of(ops: &[Operation], qubits: &[Qubit]) -> Result<GateMatrix, String> {
    let n = qubits.len();
    let dim = 1usize << n;
    // Column-major: column j is the image of basis state j.
    let mut cols: Vec<Vec<Complex64>> = (0..dim)
        .map(|j| {
            let mut v = vec![c(0.0, 0.0); dim];
            if let Some(x) = v.get_mut(j) {
                *x = c(1.0, 0.0);
            }
            v
        })
        .collect();
    let local = |q: Qubit| {
        qubits
            .iter()
            .position(|&x| x == q)
            .ok_or_else(|| "internal error: qubit outside the gate".to_string())
    };
    for op in ops {
        let Operation::Gate {
            gate,
            qubits: targets,
            controls,
        } = op
        else {
            continue;
        };
        let m = gate.matrix();
        let t: Vec<usize> = targets
            .iter()
            .map(|&q| local(q))
            .collect::<Result<_, _>>()?;
        let ctl: Vec<(usize, bool)> = controls
            .iter()
            .map(|x| local(x.qubit).map(|i| (i, x.on)))
            .collect::<Result<_, _>>()?;
        for col in &mut cols {
            apply(col, &m, &t, &ctl);
        }
    }
    let mut data = vec![c(0.0, 0.0); dim * dim];
    for (j, col) in cols.iter().enumerate() {
        for (i, &x) in col.iter().enumerate() {
            if let Some(slot) = data.get_mut(i * dim + j) {
                *slot = x;
            }
        }
    }
    GateMatrix::new(n as u32, data).map_err(|e| e.to_string())
}

/// Applies `m` on local qubits `targets` where the controls hold.
fn apply(amps: &mut [Complex64], m: &GateMatrix, targets: &[usize], controls: &[(usize, bool)]) {
    let k = targets.len();
    let dim = 1usize << k;
    let mask: usize = targets.iter().map(|&q| 1usize << q).sum();
    let mut idx = vec![0usize; dim];
    let mut gathered = vec![c(0.0, 0.0); dim];
    for base in 0..amps.len() {
        if base & mask != 0 || !controls.iter().all(|&(q, on)| ((base >> q) & 1 == 1) == on) {
            continue;
        }
        for (j, slot) in idx.iter_mut().enumerate() {
            *slot = base;
            for (i, &q) in targets.iter().enumerate() {
                if (j >> i) & 1 == 1 {
                    *slot |= 1 << q;
                }
            }
        }
        for j in 0..dim {
            gathered[j] = amps.get(idx[j]).copied().unwrap_or_default();
        }
        for row in 0..dim {
            let sum = (0..dim).map(|col| m.get(row, col) * gathered[col]).sum();
            if let Some(a) = amps.get_mut(idx[row]) {
                *a = sum;
            }
        }
    }
}

/// The principal `k`-th power of a unitary: eigenvalues `e^{iφ}` with
/// `φ ∈ (−π, π]` become `e^{ikφ}` (so `pow(1/2) @ z` is `s`).
pub(crate) fn principal_power(m: &GateMatrix, k: f64) -> Result<GateMatrix, String> {
    use nalgebra::DMatrix;
    let dim = m.dim();
    let a = DMatrix::from_fn(dim, dim, |r, col| m.get(r, col));
    let schur = nalgebra::Schur::try_new(a, 1e-14, 10_000)
        .ok_or_else(|| "could not diagonalise the gate's matrix".to_string())?;
    let (q, t) = schur.unpack();
    let mut d = DMatrix::<Complex64>::zeros(dim, dim);
    for i in 0..dim {
        let lambda = t[(i, i)];
        let mut phase = lambda.arg();
        // The principal branch is (−π, π]: −π (from a −0 imaginary part) is π.
        if phase <= -std::f64::consts::PI + 1e-12 {
            phase = std::f64::consts::PI;
        }
        d[(i, i)] = Complex64::from_polar(1.0, k * phase);
    }
    let r = &q * d * q.adjoint();
    let data = (0..dim * dim).map(|i| r[(i / dim, i % dim)]).collect();
    GateMatrix::new(m.num_qubits(), data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &GateMatrix, b: &GateMatrix) -> bool {
        a.data()
            .iter()
            .zip(b.data())
            .all(|(x, y)| (x - y).norm() < 1e-12)
    }

    #[test]
    fn principal_roots_follow_the_library() {
        let z = StandardGate::Z.matrix(&[]);
        assert!(close(
            &principal_power(&z, 0.5).unwrap(),
            &StandardGate::S.matrix(&[])
        ));
        let s = StandardGate::S.matrix(&[]);
        assert!(close(
            &principal_power(&s, 0.5).unwrap(),
            &StandardGate::T.matrix(&[])
        ));
        let x = StandardGate::X.matrix(&[]);
        assert!(close(
            &principal_power(&x, 0.5).unwrap(),
            &StandardGate::Sx.matrix(&[])
        ));
        let sw = StandardGate::Swap.matrix(&[]);
        let root = principal_power(&sw, 0.5).unwrap();
        assert!(close(&root.matmul(&root), &sw));
    }

    #[test]
    fn inverses_are_inverses() {
        let angles = [0.3, -1.1, 2.5, 0.7];
        for g in StandardGate::ALL {
            let n = g.num_qubits();
            let qubits: Vec<Qubit> = (0..n).collect();
            let op = Operation::gate(Gate::standard(g, &angles[..g.num_params()]), qubits.clone());
            let inv = inverse_op(&op).unwrap();
            let m = matrix_of(&[op, inv], &qubits).unwrap();
            assert!(close(&m, &GateMatrix::identity(n)), "{}", g.name());
        }
    }

    #[test]
    fn controlled_global_phase_is_a_phase_on_the_controls() {
        let mut ops = vec![global_phase(0.4)];
        add_controls(&mut ops, &[Control::zero(1), Control::one(0)]).unwrap();
        let m = matrix_of(&ops, &[0, 1]).unwrap();
        let e = Complex64::from_polar(1.0, 0.4);
        let one = c(1.0, 0.0);
        assert_eq!(m.diag(), vec![one, e, one, one]);
        let mut neg = vec![global_phase(0.4)];
        add_controls(&mut neg, &[Control::zero(0)]).unwrap();
        let m = matrix_of(&neg, &[0]).unwrap();
        assert_eq!(m.diag(), vec![e, one]);
    }
}
