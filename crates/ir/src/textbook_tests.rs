//! Every standard gate against its textbook matrix.
//!
//! The matrices below are typed entry by entry from Qiskit's documentation of
//! each gate class (little-endian: bit `i` of a row/column index is the gate's
//! qubit `i`, so the first qubit, usually the control, is the *low* bit), with
//! concrete angles. They deliberately do not reuse anything from `gate.rs`:
//! no `controlled`, no shared helpers, just the literal rows.

use std::collections::HashSet;
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_PI_4};

use num_complex::Complex64;

use crate::{MatrixKind, StandardGate};

const THETA: f64 = 0.3;
const PHI: f64 = -1.1;
const LAMBDA: f64 = 2.5;
const GAMMA: f64 = 0.7;

/// Compact complex literal.
fn c(re: f64, im: f64) -> Complex64 {
    Complex64::new(re, im)
}

/// e^{ix}.
fn e(x: f64) -> Complex64 {
    Complex64::new(x.cos(), x.sin())
}

/// The identity matrix of side `dim`.
fn eye(dim: usize) -> Vec<Vec<Complex64>> {
    (0..dim)
        .map(|r| {
            (0..dim)
                .map(|col| c(f64::from(u8::from(r == col)), 0.0))
                .collect()
        })
        .collect()
}

/// A diagonal matrix.
fn diag(d: &[Complex64]) -> Vec<Vec<Complex64>> {
    let mut m = eye(d.len());
    for (i, &x) in d.iter().enumerate() {
        m[i][i] = x;
    }
    m
}

/// Rows of a fixed-size literal.
fn rows<const N: usize>(m: [[Complex64; N]; N]) -> Vec<Vec<Complex64>> {
    m.iter().map(|r| r.to_vec()).collect()
}

/// `(gate, params, Qiskit's documented matrix)` for every gate of the catalogue.
fn textbook() -> Vec<(StandardGate, Vec<f64>, Vec<Vec<Complex64>>)> {
    use StandardGate::*;
    let o = c(0.0, 0.0);
    let l = c(1.0, 0.0);
    let i = c(0.0, 1.0);
    let r = c(FRAC_1_SQRT_2, 0.0);
    // Half-angle cosine and sine of THETA, used by every rotation.
    let ch = c((THETA / 2.0).cos(), 0.0);
    let sh = (THETA / 2.0).sin();
    let mis = c(0.0, -sh); // −i·sin(θ/2)
    let pis = c(0.0, sh); // +i·sin(θ/2)
    vec![
        (Id, vec![], rows([[l, o], [o, l]])),
        (X, vec![], rows([[o, l], [l, o]])),
        (Y, vec![], rows([[o, -i], [i, o]])),
        (Z, vec![], rows([[l, o], [o, -l]])),
        (H, vec![], rows([[r, r], [r, -r]])),
        (S, vec![], rows([[l, o], [o, i]])),
        (Sdg, vec![], rows([[l, o], [o, -i]])),
        (T, vec![], rows([[l, o], [o, e(FRAC_PI_4)]])),
        (Tdg, vec![], rows([[l, o], [o, e(-FRAC_PI_4)]])),
        // SX = ½[[1+i, 1−i], [1−i, 1+i]]
        (
            Sx,
            vec![],
            rows([[c(0.5, 0.5), c(0.5, -0.5)], [c(0.5, -0.5), c(0.5, 0.5)]]),
        ),
        // SX† = ½[[1−i, 1+i], [1+i, 1−i]]
        (
            Sxdg,
            vec![],
            rows([[c(0.5, -0.5), c(0.5, 0.5)], [c(0.5, 0.5), c(0.5, -0.5)]]),
        ),
        (Rx, vec![THETA], rows([[ch, mis], [mis, ch]])),
        (Ry, vec![THETA], rows([[ch, c(-sh, 0.0)], [c(sh, 0.0), ch]])),
        // RZ(φ) = diag(e^{−iφ/2}, e^{iφ/2})
        (Rz, vec![PHI], rows([[e(-PHI / 2.0), o], [o, e(PHI / 2.0)]])),
        (P, vec![LAMBDA], rows([[l, o], [o, e(LAMBDA)]])),
        // U2(φ, λ) = 1/√2 [[1, −e^{iλ}], [e^{iφ}, e^{i(φ+λ)}]]
        (
            U2,
            vec![PHI, LAMBDA],
            rows([
                [r, -e(LAMBDA) * FRAC_1_SQRT_2],
                [e(PHI) * FRAC_1_SQRT_2, e(PHI + LAMBDA) * FRAC_1_SQRT_2],
            ]),
        ),
        // U(θ, φ, λ) = [[cos, −e^{iλ} sin], [e^{iφ} sin, e^{i(φ+λ)} cos]]
        (
            U,
            vec![THETA, PHI, LAMBDA],
            rows([[ch, -e(LAMBDA) * sh], [e(PHI) * sh, e(PHI + LAMBDA) * ch]]),
        ),
        (
            Cx,
            vec![],
            rows([[l, o, o, o], [o, o, o, l], [o, o, l, o], [o, l, o, o]]),
        ),
        (
            Cy,
            vec![],
            rows([[l, o, o, o], [o, o, o, -i], [o, o, l, o], [o, i, o, o]]),
        ),
        (Cz, vec![], diag(&[l, l, l, -l])),
        (
            Ch,
            vec![],
            rows([[l, o, o, o], [o, r, o, r], [o, o, l, o], [o, r, o, -r]]),
        ),
        (
            Csx,
            vec![],
            rows([
                [l, o, o, o],
                [o, c(0.5, 0.5), o, c(0.5, -0.5)],
                [o, o, l, o],
                [o, c(0.5, -0.5), o, c(0.5, 0.5)],
            ]),
        ),
        (Cp, vec![LAMBDA], diag(&[l, l, l, e(LAMBDA)])),
        (
            Crx,
            vec![THETA],
            rows([[l, o, o, o], [o, ch, o, mis], [o, o, l, o], [o, mis, o, ch]]),
        ),
        (
            Cry,
            vec![THETA],
            rows([
                [l, o, o, o],
                [o, ch, o, c(-sh, 0.0)],
                [o, o, l, o],
                [o, c(sh, 0.0), o, ch],
            ]),
        ),
        (
            Crz,
            vec![THETA],
            diag(&[l, e(-THETA / 2.0), l, e(THETA / 2.0)]),
        ),
        (
            Cu3,
            vec![THETA, PHI, LAMBDA],
            rows([
                [l, o, o, o],
                [o, ch, o, -e(LAMBDA) * sh],
                [o, o, l, o],
                [o, e(PHI) * sh, o, e(PHI + LAMBDA) * ch],
            ]),
        ),
        // CU(θ, φ, λ, γ): the U block times e^{iγ}, only where the control is 1.
        (
            Cu,
            vec![THETA, PHI, LAMBDA, GAMMA],
            rows([
                [l, o, o, o],
                [o, e(GAMMA) * ch, o, -e(GAMMA + LAMBDA) * sh],
                [o, o, l, o],
                [o, e(GAMMA + PHI) * sh, o, e(GAMMA + PHI + LAMBDA) * ch],
            ]),
        ),
        (
            Swap,
            vec![],
            rows([[l, o, o, o], [o, o, l, o], [o, l, o, o], [o, o, o, l]]),
        ),
        // Toffoli, controls on gate qubits 0 and 1: |011⟩ ↔ |111⟩.
        (
            Ccx,
            vec![],
            rows([
                [l, o, o, o, o, o, o, o],
                [o, l, o, o, o, o, o, o],
                [o, o, l, o, o, o, o, o],
                [o, o, o, o, o, o, o, l],
                [o, o, o, o, l, o, o, o],
                [o, o, o, o, o, l, o, o],
                [o, o, o, o, o, o, l, o],
                [o, o, o, l, o, o, o, o],
            ]),
        ),
        // Fredkin, control on gate qubit 0: |011⟩ ↔ |101⟩.
        (
            Cswap,
            vec![],
            rows([
                [l, o, o, o, o, o, o, o],
                [o, l, o, o, o, o, o, o],
                [o, o, l, o, o, o, o, o],
                [o, o, o, o, o, l, o, o],
                [o, o, o, o, l, o, o, o],
                [o, o, o, l, o, o, o, o],
                [o, o, o, o, o, o, l, o],
                [o, o, o, o, o, o, o, l],
            ]),
        ),
        (
            Rxx,
            vec![THETA],
            rows([
                [ch, o, o, mis],
                [o, ch, mis, o],
                [o, mis, ch, o],
                [mis, o, o, ch],
            ]),
        ),
        (
            Ryy,
            vec![THETA],
            rows([
                [ch, o, o, pis],
                [o, ch, mis, o],
                [o, mis, ch, o],
                [pis, o, o, ch],
            ]),
        ),
        (
            Rzz,
            vec![THETA],
            diag(&[
                e(-THETA / 2.0),
                e(THETA / 2.0),
                e(THETA / 2.0),
                e(-THETA / 2.0),
            ]),
        ),
        // RZX(θ) = exp(−iθ/2 X⊗Z), Z on gate qubit 0 (Qiskit's RZXGate docs).
        (
            Rzx,
            vec![THETA],
            rows([
                [ch, o, mis, o],
                [o, ch, o, pis],
                [mis, o, ch, o],
                [o, pis, o, ch],
            ]),
        ),
        // ECR = 1/√2 [[0, 1, 0, i], [1, 0, −i, 0], [0, i, 0, 1], [−i, 0, 1, 0]]
        (
            Ecr,
            vec![],
            rows([
                [o, r, o, r * i],
                [r, o, -r * i, o],
                [o, r * i, o, r],
                [-r * i, o, r, o],
            ]),
        ),
        (
            ISwap,
            vec![],
            rows([[l, o, o, o], [o, o, i, o], [o, i, o, o], [o, o, o, l]]),
        ),
        (GlobalPhase, vec![THETA], vec![vec![e(THETA)]]),
    ]
}

#[test]
fn every_gate_matches_its_textbook_matrix() {
    for (gate, params, want) in textbook() {
        assert_eq!(params.len(), gate.num_params(), "{}", gate.name());
        let got = gate.matrix(&params);
        assert_eq!(got.dim(), want.len(), "{} size", gate.name());
        for (row, want_row) in want.iter().enumerate() {
            assert_eq!(
                want_row.len(),
                want.len(),
                "{} literal not square",
                gate.name()
            );
            for (col, &w) in want_row.iter().enumerate() {
                let g = got.get(row, col);
                assert!(
                    (g - w).norm() < 1e-14,
                    "{}: entry ({row}, {col}) is {g}, textbook says {w}",
                    gate.name()
                );
            }
        }
    }
}

#[test]
fn textbook_covers_every_gate_once() {
    let listed: Vec<StandardGate> = textbook().into_iter().map(|(g, _, _)| g).collect();
    let unique: HashSet<StandardGate> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a gate is listed twice");
    let all: HashSet<StandardGate> = StandardGate::ALL.into_iter().collect();
    assert_eq!(all.len(), StandardGate::ALL.len(), "ALL repeats a gate");
    assert_eq!(unique, all, "textbook list and StandardGate::ALL differ");
}

#[test]
fn matrix_kinds() {
    use StandardGate::*;
    let kind = |g: StandardGate| {
        let params = [THETA, PHI, LAMBDA, GAMMA];
        g.matrix(&params[..g.num_params()]).kind()
    };
    for g in [Rz, Cz, Cp, Rzz, GlobalPhase] {
        assert_eq!(kind(g), MatrixKind::Diagonal, "{}", g.name());
    }
    for g in [X, Cx, Swap, Ccx, ISwap, Y] {
        assert_eq!(kind(g), MatrixKind::Monomial, "{}", g.name());
    }
    for g in [H, Rx, Ecr] {
        assert_eq!(kind(g), MatrixKind::Dense, "{}", g.name());
    }
}
