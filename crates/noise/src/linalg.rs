//! The small linear algebra that building an error needs: embedding an
//! instruction's matrix into the error's qubits, and keeping a composed
//! channel small (merging equal branches of a mixture, and reducing a
//! Kraus map to at most `4^n` operators through its Choi matrix), so that
//! composing many instructions never grows exponentially.

use std::collections::HashMap;

use kettle_ir::{Channel, ChannelError, ChannelForm, Complex64, GateMatrix};

/// The most branches a mixture keeps before it is turned into a Kraus map:
/// products of mixtures multiply their branch counts, and this caps the
/// product at `64²` before it is cut down again.
pub(crate) const MAX_MIXTURE_BRANCHES: usize = 64;

/// Pivots of the Choi matrix below this are dropped (its trace is `2^n`,
/// at most 4; the trace-preservation check allows 1e-8).
const CHOI_TOLERANCE: f64 = 1e-13;

const ZERO: Complex64 = Complex64::new(0.0, 0.0);

/// `m`, whose bit `i` is `qubits[i]`, as a matrix on `n` qubits (identity
/// on the others). `qubits` are distinct and below `n`.
pub(crate) fn embed(m: &GateMatrix, qubits: &[u32], n: u32) -> GateMatrix {
    let dim = 1usize << n;
    let mask: usize = qubits.iter().map(|&q| 1usize << q).sum();
    // Bit `i` of the small index is bit `qubits[i]` of the large one.
    let sub = |x: usize| -> usize {
        qubits
            .iter()
            .enumerate()
            .map(|(i, &q)| ((x >> q) & 1) << i)
            .sum()
    };
    let mut data = vec![ZERO; dim * dim];
    for r in 0..dim {
        for c in 0..dim {
            if r & !mask == c & !mask {
                data[r * dim + c] = m.get(sub(r), sub(c));
            }
        }
    }
    GateMatrix::new(n, data).expect("a 2^n × 2^n matrix")
}

/// The channel that does nothing on `n` qubits.
pub(crate) fn identity_channel(n: u32) -> Result<Channel, ChannelError> {
    Channel::from_unitary(GateMatrix::identity(n))
}

/// `channel`, with equal mixture branches merged and, when it has more
/// operators than worth keeping, reduced through its Choi matrix.
pub(crate) fn compact(channel: Channel) -> Result<Channel, ChannelError> {
    let n = channel.num_qubits();
    let max_kraus = 1usize << (2 * n);
    match channel.form() {
        ChannelForm::Mixture(branches) => {
            let merged = merge_branches(branches);
            if merged.len() > MAX_MIXTURE_BRANCHES {
                let ops = merged
                    .iter()
                    .map(|(p, u)| u.scaled(p.sqrt()))
                    .collect::<Vec<_>>();
                Channel::kraus(reduce_kraus(&ops, n))
            } else if merged.len() < branches.len() {
                Channel::mixture(merged)
            } else {
                Ok(channel)
            }
        }
        ChannelForm::Kraus(ops) if ops.len() > max_kraus => Channel::kraus(reduce_kraus(ops, n)),
        ChannelForm::Kraus(_) => Ok(channel),
    }
}

/// Branches whose unitaries are equal up to a global phase, merged (their
/// probabilities added). Matrices are compared through a rounded key: two
/// that differ by rounding noise across a grid line stay apart, which costs
/// a branch, never correctness.
fn merge_branches(branches: &[(f64, GateMatrix)]) -> Vec<(f64, GateMatrix)> {
    let mut merged: Vec<(f64, GateMatrix)> = Vec::with_capacity(branches.len());
    let mut seen: HashMap<Vec<i64>, usize> = HashMap::with_capacity(branches.len());
    for (p, u) in branches {
        match seen.entry(phase_free_key(u)) {
            std::collections::hash_map::Entry::Occupied(e) => {
                // Rounding must not push a sum of probabilities past 1.
                let q = &mut merged[*e.get()].0;
                *q = (*q + p).min(1.0);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(merged.len());
                merged.push((*p, u.clone()));
            }
        }
    }
    merged
}

/// `u` with its global phase removed (the first entry of modulus above 1/4
/// made real and positive; a unitary of dimension ≤ 4 has one in each
/// row), rounded to a grid of 1e-9.
fn phase_free_key(u: &GateMatrix) -> Vec<i64> {
    let phase = u
        .data()
        .iter()
        .find(|z| z.norm() > 0.25)
        .map_or(Complex64::new(1.0, 0.0), |z| z.conj() / z.norm());
    let grid = |x: f64| (x * 1e9).round() as i64;
    u.data()
        .iter()
        .flat_map(|z| {
            let w = z * phase;
            [grid(w.re), grid(w.im)]
        })
        .collect()
}

/// Kraus operators of the same map as `ops` (on `n` qubits), at most `4^n`
/// of them: the map depends on the `ops` only through the Choi-like matrix
/// `C = Σ vec(K) vec(K)†`, and a pivoted Cholesky factorisation
/// `C = Σ w w†` gives one operator per column `w`.
pub(crate) fn reduce_kraus(ops: &[GateMatrix], n: u32) -> Vec<GateMatrix> {
    let m = 1usize << (2 * n);
    let mut choi = vec![ZERO; m * m];
    for k in ops {
        let v = k.data();
        for a in 0..m {
            for b in 0..m {
                choi[a * m + b] += v[a] * v[b].conj();
            }
        }
    }
    pivoted_cholesky(&mut choi, m)
        .into_iter()
        .map(|w| GateMatrix::new(n, w).expect("4^n entries"))
        .collect()
}

/// Columns `w_j` with `A ≈ Σ w_j w_j†` for a Hermitian positive
/// semi-definite `m × m` matrix `A` (destroyed), stopping when the largest
/// remaining diagonal entry is negligible. At most `m` columns.
fn pivoted_cholesky(a: &mut [Complex64], m: usize) -> Vec<Vec<Complex64>> {
    let mut columns = Vec::new();
    for _ in 0..m {
        let (pivot, d) =
            (0..m)
                .map(|i| (i, a[i * m + i].re))
                .fold(
                    (0, f64::NEG_INFINITY),
                    |best, x| if x.1 > best.1 { x } else { best },
                );
        if d.is_nan() || d <= CHOI_TOLERANCE {
            break;
        }
        let s = d.sqrt();
        let w: Vec<Complex64> = (0..m).map(|i| a[i * m + pivot] / s).collect();
        for i in 0..m {
            for j in 0..m {
                a[i * m + j] -= w[i] * w[j].conj();
            }
        }
        columns.push(w);
    }
    columns
}
