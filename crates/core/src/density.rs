//! The density-matrix method: the mixed state `ρ` of `n` qubits held as a
//! state vector of `2n` qubits, so that the kernels, fusion and cache
//! blocking of pure states serve it unchanged.
//!
//! Entry `ρ[r][c]` is amplitude `r + (c << n)`: the low `n` qubits index
//! rows, the high `n` columns. `U ρ U†` is `U` on the row qubits and `Ū` on
//! the column qubits (two operations that fusion merges); a channel with
//! Kraus operators `K_i` is the superoperator `Σ K_i ⊗ K̄_i` on both copies
//! of its qubits; a reset is the channel `|0⟩⟨0|, |0⟩⟨1|`. Starting from
//! `|0…0⟩` of `2n` qubits is starting from `ρ = |0⟩⟨0|`. Probabilities are
//! the diagonal `ρ[i][i]`, and `Tr(ρP)` of a Pauli string needs one entry
//! per row.

use std::collections::BTreeMap;

use kettle_ir::{Circuit, Clbit, Complex64, Control, GateMatrix, Operation, Qubit};
use num_complex::Complex;
use rand::Rng;

use crate::error::SimError;
use crate::float::Float;
use crate::observable::{PauliSum, pauli_trace};
use crate::op::KernelOp;
use crate::par::Parallelism;
use crate::program::{measured_qubits, measurements_after};
use crate::sample::{check_distinct_qubits, multinomial, outcome_distribution};
use crate::state::StateVector;

/// The most qubits a density matrix may have: its vector has twice as many,
/// and state vectors stop at [`MAX_QUBITS`](crate::MAX_QUBITS).
pub const MAX_DENSITY_QUBITS: u32 = crate::state::MAX_QUBITS / 2;

/// A density matrix of `n` qubits (see the module documentation for its
/// layout).
#[derive(Clone, Debug)]
pub struct DensityMatrix<F: Float> {
    vec: StateVector<F>,
}

impl<F: Float> DensityMatrix<F> {
    /// Wraps the `2n`-qubit vector a density-matrix run ends with.
    pub(crate) fn from_vector(vec: StateVector<F>) -> Self {
        debug_assert_eq!(vec.num_qubits() % 2, 0);
        DensityMatrix { vec }
    }

    /// Qubits of the state (half those of its vector).
    pub fn num_qubits(&self) -> u32 {
        self.vec.num_qubits() / 2
    }

    /// `ρ[row][col]`.
    ///
    /// # Errors
    /// [`SimError::IndexOutOfRange`] for an index past `2^n`.
    pub fn entry(&self, row: u64, col: u64) -> Result<Complex<F>, SimError> {
        let n = self.num_qubits();
        if row >> n != 0 || col >> n != 0 {
            return Err(SimError::IndexOutOfRange {
                index: row.max(col),
                num_qubits: n,
            });
        }
        self.vec.amplitude(row | (col << n))
    }

    /// `ρ[i][i]` for every basis state `i`, clamped at 0 against rounding.
    pub(crate) fn diagonal(&self) -> Vec<f64> {
        diagonal(&self.vec)
    }

    /// `Tr ρ` (1 up to rounding).
    pub fn trace(&self) -> f64 {
        self.diagonal().iter().sum()
    }

    /// Probabilities of the outcomes of measuring `qubits`: entry `k` is
    /// the probability that `qubits[i]` reads bit `i` of `k`.
    ///
    /// # Errors
    /// [`SimError::QubitOutOfRange`] or [`SimError::DuplicateQubit`].
    pub fn probabilities(&self, qubits: &[Qubit]) -> Result<Vec<f64>, SimError> {
        check_distinct_qubits(qubits, self.num_qubits())?;
        let mut out = vec![0.0; 1usize << qubits.len()];
        for (i, p) in self.diagonal().into_iter().enumerate() {
            let k = qubits
                .iter()
                .enumerate()
                .fold(0usize, |k, (pos, &q)| k | (((i >> q) & 1) << pos));
            out[k] += p;
        }
        Ok(out)
    }

    /// The exact distribution of the classical bits that `circuit`'s final
    /// measurements record from this state, its readout errors included,
    /// keyed by bitstring (classical bit 0 rightmost); `None` when the
    /// circuit's measurements are not all final (resets may come before
    /// them).
    ///
    /// # Errors
    /// As [`probabilities`](Self::probabilities).
    pub fn classical_distribution(
        &self,
        circuit: &Circuit,
    ) -> Result<Option<BTreeMap<String, f64>>, SimError> {
        let Some(finals) = measurements_after(circuit, true) else {
            return Ok(None);
        };
        let qubits = measured_qubits(&finals);
        let probabilities = self.probabilities(&qubits)?;
        let outcomes = (0u64..).zip(probabilities).filter(|&(_, p)| p != 0.0);
        let mut dist = outcome_distribution(outcomes, &qubits, &finals, circuit.num_clbits());
        let width = circuit.num_clbits() as usize;
        for op in circuit.ops() {
            if let Operation::ReadoutError { clbit, error } = op {
                dist = with_readout_error(dist, *clbit, width, |v| error.flip_probability(v));
            }
        }
        Ok(Some(dist))
    }

    /// `Tr(ρO)` for a Hermitian `O`.
    ///
    /// # Errors
    /// [`SimError::QubitOutOfRange`] if a term names a qubit the state lacks.
    pub fn expectation(&self, observable: &PauliSum, par: &Parallelism) -> Result<f64, SimError> {
        expectation(&self.vec, observable, par)
    }

    /// The vector it is held in.
    pub fn as_vector(&self) -> &StateVector<F> {
        &self.vec
    }

    /// The vector it is held in, for the engine to run operations on.
    pub(crate) fn vector_mut(&mut self) -> &mut StateVector<F> {
        &mut self.vec
    }
}

/// `Tr(ρO)` of the density matrix held in `vec`, for a Hermitian `O`.
pub(crate) fn expectation<F: Float>(
    vec: &StateVector<F>,
    observable: &PauliSum,
    par: &Parallelism,
) -> Result<f64, SimError> {
    let n = vec.num_qubits() / 2;
    observable.check_qubits(n)?;
    // ⟨i|ρ|i ⊕ f⟩ = ρ[i][i ⊕ f].
    Ok(pauli_trace(observable, 1usize << n, par, |i, flip| {
        let a = vec.amp(i | ((i ^ flip) << n));
        Complex64::new(a.re.to_f64(), a.im.to_f64())
    }))
}

/// `dist` after a readout error on `clbit` (of `width` bits) that flips a
/// bit holding `v` with probability `flip(v)`.
fn with_readout_error(
    dist: BTreeMap<String, f64>,
    clbit: Clbit,
    width: usize,
    flip: impl Fn(bool) -> f64,
) -> BTreeMap<String, f64> {
    let at = width - 1 - clbit as usize;
    let mut out = BTreeMap::new();
    for (bits, p) in dist {
        let value = bits.as_bytes()[at] == b'1';
        let f = flip(value);
        let mut flipped = bits.clone().into_bytes();
        flipped[at] = if value { b'0' } else { b'1' };
        let flipped = String::from_utf8(flipped).expect("ASCII bits");
        for (key, q) in [(bits, p * (1.0 - f)), (flipped, p * f)] {
            if q > 0.0 {
                *out.entry(key).or_insert(0.0) += q;
            }
        }
    }
    out
}

/// The diagonal of the density matrix held in `vec`, clamped at 0.
fn diagonal<F: Float>(vec: &StateVector<F>) -> Vec<f64> {
    let n = vec.num_qubits() / 2;
    (0..1usize << n)
        .map(|i| vec.amp(i | (i << n)).re.to_f64().max(0.0))
        .collect()
}

/// Draws `shots` basis states from the diagonal of the density matrix held
/// in `vec`: `(index, occurrences)` in increasing index order.
pub(crate) fn sample_diagonal<F: Float, R: Rng>(
    vec: &StateVector<F>,
    shots: u64,
    rng: &mut R,
) -> Vec<(u64, u64)> {
    let diag = diagonal(vec);
    let total: f64 = diag.iter().sum();
    let last_nonzero = diag.iter().rposition(|&p| p > 0.0).unwrap_or(0) as u64;
    multinomial(shots, total, diag.len(), last_nonzero, |i| diag[i], rng)
}

/// Bytes a run of `circuit` by the density matrix holds for its channels
/// beyond its gates: each channel on `k` qubits is a superoperator of
/// `16^k` complex entries, held twice while its run is planned and fused.
/// (Trajectories hold a shared reference per channel: no more than a
/// gate.) What a job's admission counts besides its states.
pub fn density_noise_bytes(circuit: &Circuit) -> u128 {
    fn bytes(ops: &[Operation]) -> u128 {
        ops.iter()
            .map(|op| match op {
                Operation::Channel { channel, .. } => 2 * 16 * 16u128.pow(channel.num_qubits()),
                Operation::IfElse {
                    then_ops, else_ops, ..
                } => bytes(then_ops) + bytes(else_ops),
                _ => 0,
            })
            .sum()
    }
    bytes(circuit.ops())
}

/// `U` on the row qubits and `Ū` on the column qubits of a `2n`-qubit
/// density vector: `ρ ↦ U ρ U†`. Controls stay split off on both copies.
pub(crate) fn lift_unitary(op: KernelOp, n: u32) -> [KernelOp; 2] {
    let dim = 1usize << op.targets.len();
    let conj: Vec<Complex64> = (0..dim * dim)
        .map(|i| op.entry(i / dim, i % dim).conj())
        .collect();
    let base = GateMatrix::new(op.targets.len() as u32, conj).expect("square");
    let targets: Vec<Qubit> = op.targets.iter().map(|q| q + n).collect();
    let controls: Vec<Control> = op
        .controls
        .iter()
        .map(|c| Control {
            qubit: c.qubit + n,
            on: c.on,
        })
        .collect();
    let lifted = KernelOp::from_matrix(&base, &targets, &controls);
    [op, lifted]
}

/// The superoperator `Σ K ⊗ K̄` of Kraus operators on `qubits`, as an
/// operation on `qubits ++ (qubits + n)`.
pub(crate) fn superoperator(kraus: &[GateMatrix], qubits: &[Qubit], n: u32) -> KernelOp {
    let k = qubits.len();
    let dim = 1usize << k;
    let big = dim * dim;
    let mut data = vec![Complex64::new(0.0, 0.0); big * big];
    for m in kraus {
        // Index (r, c) ↦ r + c·dim; entry ((r', c'), (r, c)) = K[r'][r]·K̄[c'][c].
        for rp in 0..dim {
            for cp in 0..dim {
                for r in 0..dim {
                    for c in 0..dim {
                        data[(rp + cp * dim) * big + (r + c * dim)] +=
                            m.get(rp, r) * m.get(cp, c).conj();
                    }
                }
            }
        }
    }
    let targets: Vec<Qubit> = qubits
        .iter()
        .copied()
        .chain(qubits.iter().map(|q| q + n))
        .collect();
    let matrix = GateMatrix::new(2 * k as u32, data).expect("square");
    KernelOp::from_matrix(&matrix, &targets, &[])
}
