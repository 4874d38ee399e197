//! Small dense complex matrices: gate matrices, their structure, and
//! user-supplied unitaries checked for unitarity.
//!
//! Index convention (Qiskit's): a matrix acting on qubits `[q0, q1, …]` has
//! row and column indices whose bit `i` is the state of `qubits[i]`.

use num_complex::Complex64;
use std::sync::Arc;

use crate::error::OperationError;

/// The largest number of qubits an explicit matrix may act on.
///
/// A 10-qubit matrix already holds 2^20 complex entries (16 MiB); larger
/// ones are refused before anything is allocated.
pub const MAX_MATRIX_QUBITS: u32 = 10;

/// Default tolerance of the unitarity check: the largest entry of `U†U − I`
/// in absolute value. It is the absolute tolerance Qiskit uses for the same
/// check, so matrices exported from Qiskit pass.
pub const UNITARY_TOLERANCE: f64 = 1e-8;

/// How a matrix is shaped, which decides the kernel that applies it.
///
/// The classification looks at exact zeros only, so it never changes a
/// result: a matrix is applied by the cheapest kernel that is exact for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatrixKind {
    /// Only the diagonal is non-zero: applied as phase multiplications.
    Diagonal,
    /// Exactly one non-zero per row and column (a permutation with phases):
    /// applied as moves of amplitudes.
    Monomial,
    /// Anything else: a dense matrix–vector product.
    Dense,
}

/// A square complex matrix of size `2^k × 2^k`, stored row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct GateMatrix {
    num_qubits: u32,
    data: Vec<Complex64>,
}

impl GateMatrix {
    /// Builds a matrix on `num_qubits` qubits from `4^num_qubits` row-major entries.
    ///
    /// # Errors
    /// [`OperationError::MatrixShape`] when the length is not `4^num_qubits`,
    /// [`OperationError::MatrixTooLarge`] above [`MAX_MATRIX_QUBITS`].
    pub fn new(num_qubits: u32, data: Vec<Complex64>) -> Result<Self, OperationError> {
        if num_qubits > MAX_MATRIX_QUBITS {
            return Err(OperationError::MatrixTooLarge {
                qubits: num_qubits,
                max: MAX_MATRIX_QUBITS,
            });
        }
        let dim = 1usize << num_qubits;
        if data.len() != dim * dim {
            return Err(OperationError::MatrixShape {
                len: data.len(),
                qubits: num_qubits,
            });
        }
        Ok(GateMatrix { num_qubits, data })
    }

    /// Builds a matrix whose size is known to be right (internal use).
    pub(crate) fn from_rows<const N: usize>(rows: [[Complex64; N]; N]) -> Self {
        let num_qubits = N.trailing_zeros();
        debug_assert_eq!(1 << num_qubits, N);
        GateMatrix {
            num_qubits,
            data: rows.into_iter().flatten().collect(),
        }
    }

    /// A diagonal matrix from its diagonal.
    pub(crate) fn diagonal(diag: &[Complex64]) -> Self {
        let dim = diag.len();
        let mut data = vec![Complex64::new(0.0, 0.0); dim * dim];
        for (i, d) in diag.iter().enumerate() {
            data[i * dim + i] = *d;
        }
        GateMatrix {
            num_qubits: dim.trailing_zeros(),
            data,
        }
    }

    /// The identity on `num_qubits` qubits.
    pub fn identity(num_qubits: u32) -> Self {
        GateMatrix::diagonal(&vec![Complex64::new(1.0, 0.0); 1 << num_qubits])
    }

    /// Number of qubits the matrix acts on.
    pub fn num_qubits(&self) -> u32 {
        self.num_qubits
    }

    /// Side length, `2^num_qubits`.
    pub fn dim(&self) -> usize {
        1 << self.num_qubits
    }

    /// Row-major entries.
    pub fn data(&self) -> &[Complex64] {
        &self.data
    }

    /// Entry at `(row, col)`.
    pub fn get(&self, row: usize, col: usize) -> Complex64 {
        self.data[row * self.dim() + col]
    }

    /// The diagonal.
    pub fn diag(&self) -> Vec<Complex64> {
        (0..self.dim()).map(|i| self.get(i, i)).collect()
    }

    /// The shape that decides which kernel applies this matrix.
    pub fn kind(&self) -> MatrixKind {
        let dim = self.dim();
        let zero = Complex64::new(0.0, 0.0);
        let mut diagonal = true;
        let mut col_used = vec![false; dim];
        let mut monomial = true;
        for r in 0..dim {
            let mut nonzeros = 0;
            for c in 0..dim {
                if self.get(r, c) != zero {
                    nonzeros += 1;
                    if r != c {
                        diagonal = false;
                    }
                    if col_used[c] {
                        monomial = false;
                    }
                    col_used[c] = true;
                }
            }
            if nonzeros != 1 {
                monomial = false;
            }
        }
        if diagonal && monomial {
            MatrixKind::Diagonal
        } else if monomial {
            MatrixKind::Monomial
        } else {
            MatrixKind::Dense
        }
    }

    /// `w` times this matrix.
    pub fn scaled(&self, w: f64) -> GateMatrix {
        GateMatrix {
            num_qubits: self.num_qubits,
            data: self.data.iter().map(|z| z * w).collect(),
        }
    }

    /// `self ⊗ low`: `low` on the low bits of an index (the first qubits),
    /// `self` on the high ones.
    pub fn kron(&self, low: &GateMatrix) -> GateMatrix {
        let (da, db) = (self.dim(), low.dim());
        let dim = da * db;
        let mut data = vec![Complex64::new(0.0, 0.0); dim * dim];
        for r in 0..dim {
            for c in 0..dim {
                data[r * dim + c] = self.get(r / db, c / db) * low.get(r % db, c % db);
            }
        }
        GateMatrix {
            num_qubits: self.num_qubits + low.num_qubits,
            data,
        }
    }

    /// Whether it is the identity times a phase (exactly: entries equal
    /// to the first, zeros elsewhere).
    pub fn is_phase_times_identity(&self) -> bool {
        let d = self.get(0, 0);
        let dim = self.dim();
        (0..dim).all(|r| {
            (0..dim).all(|c| self.get(r, c) == if r == c { d } else { Complex64::new(0.0, 0.0) })
        })
    }

    /// The conjugate transpose.
    pub fn adjoint(&self) -> GateMatrix {
        let dim = self.dim();
        let mut data = Vec::with_capacity(dim * dim);
        for r in 0..dim {
            for c in 0..dim {
                data.push(self.get(c, r).conj());
            }
        }
        GateMatrix {
            num_qubits: self.num_qubits,
            data,
        }
    }

    /// `self · other` (apply `other` first).
    pub fn matmul(&self, other: &GateMatrix) -> GateMatrix {
        assert_eq!(self.num_qubits, other.num_qubits, "matrix sizes differ");
        let dim = self.dim();
        let mut data = vec![Complex64::new(0.0, 0.0); dim * dim];
        for r in 0..dim {
            for k in 0..dim {
                let a = self.get(r, k);
                if a == Complex64::new(0.0, 0.0) {
                    continue;
                }
                for c in 0..dim {
                    data[r * dim + c] += a * other.get(k, c);
                }
            }
        }
        GateMatrix {
            num_qubits: self.num_qubits,
            data,
        }
    }

    /// The matrix with `num_controls` extra control qubits in front: on the
    /// gate's qubit list `[c0 … c_{m−1}, t0 …]` it applies `self` to the
    /// targets when every control is |1⟩ and the identity otherwise.
    pub fn controlled(&self, num_controls: u32) -> GateMatrix {
        let dim = self.dim();
        let total = self.num_qubits + num_controls;
        let full = 1usize << total;
        let cmask = (1usize << num_controls) - 1;
        let mut data = vec![Complex64::new(0.0, 0.0); full * full];
        for r in 0..full {
            if r & cmask != cmask {
                data[r * full + r] = Complex64::new(1.0, 0.0);
                continue;
            }
            for ct in 0..dim {
                let c = (ct << num_controls) | cmask;
                data[r * full + c] = self.get(r >> num_controls, ct);
            }
        }
        GateMatrix {
            num_qubits: total,
            data,
        }
    }

    /// Largest `|(U†U − I)_{ij}|`: zero for an exactly unitary matrix.
    pub fn unitarity_deviation(&self) -> f64 {
        let dim = self.dim();
        let mut worst: f64 = 0.0;
        for r in 0..dim {
            for c in 0..dim {
                let mut sum = Complex64::new(0.0, 0.0);
                for k in 0..dim {
                    sum += self.get(k, r).conj() * self.get(k, c);
                }
                if r == c {
                    sum -= 1.0;
                }
                let dev = sum.norm();
                // A NaN entry must count as "not unitary", so compare this way round.
                if dev.is_nan() || dev > worst {
                    worst = if dev.is_nan() { f64::INFINITY } else { dev };
                }
            }
        }
        worst
    }
}

/// A matrix checked to be unitary: the payload of an arbitrary k-qubit gate.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitaryMatrix(Arc<GateMatrix>);

impl UnitaryMatrix {
    /// Checks `matrix` for unitarity within [`UNITARY_TOLERANCE`].
    ///
    /// # Errors
    /// [`OperationError::NotUnitary`] with the deviation found.
    pub fn new(matrix: GateMatrix) -> Result<Self, OperationError> {
        Self::with_tolerance(matrix, UNITARY_TOLERANCE)
    }

    /// Checks `matrix` for unitarity within `tolerance` (largest entry of `U†U − I`).
    ///
    /// # Errors
    /// [`OperationError::NotUnitary`] with the deviation found.
    pub fn with_tolerance(matrix: GateMatrix, tolerance: f64) -> Result<Self, OperationError> {
        let deviation = matrix.unitarity_deviation();
        // `deviation` is never NaN (NaN entries count as infinite); a NaN
        // tolerance must reject, not accept.
        if tolerance.is_nan() || deviation > tolerance {
            return Err(OperationError::NotUnitary {
                deviation,
                tolerance,
            });
        }
        Ok(UnitaryMatrix(Arc::new(matrix)))
    }

    /// Builds from `4^num_qubits` row-major entries and checks unitarity.
    ///
    /// # Errors
    /// As [`GateMatrix::new`] and [`UnitaryMatrix::new`].
    pub fn from_entries(num_qubits: u32, data: Vec<Complex64>) -> Result<Self, OperationError> {
        Self::new(GateMatrix::new(num_qubits, data)?)
    }

    /// The matrix.
    pub fn matrix(&self) -> &GateMatrix {
        &self.0
    }

    /// Number of qubits it acts on.
    pub fn num_qubits(&self) -> u32 {
        self.0.num_qubits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(re: f64, im: f64) -> Complex64 {
        Complex64::new(re, im)
    }

    #[test]
    fn classifies_by_exact_zeros() {
        let x = GateMatrix::from_rows([[c(0., 0.), c(1., 0.)], [c(1., 0.), c(0., 0.)]]);
        assert_eq!(x.kind(), MatrixKind::Monomial);
        let z = GateMatrix::diagonal(&[c(1., 0.), c(-1., 0.)]);
        assert_eq!(z.kind(), MatrixKind::Diagonal);
        let h = GateMatrix::from_rows([[c(1., 0.), c(1., 0.)], [c(1., 0.), c(-1., 0.)]]);
        assert_eq!(h.kind(), MatrixKind::Dense);
        let singular = GateMatrix::from_rows([[c(1., 0.), c(1., 0.)], [c(0., 0.), c(0., 0.)]]);
        assert_eq!(singular.kind(), MatrixKind::Dense);
    }

    #[test]
    fn rejects_non_unitary_and_nan() {
        let m = GateMatrix::new(1, vec![c(1., 0.), c(1., 0.), c(0., 0.), c(1., 0.)]).unwrap();
        let err = UnitaryMatrix::new(m).unwrap_err();
        assert!(matches!(err, OperationError::NotUnitary { deviation, .. } if deviation >= 1.0));
        let nan =
            GateMatrix::new(1, vec![c(f64::NAN, 0.), c(0., 0.), c(0., 0.), c(1., 0.)]).unwrap();
        assert!(UnitaryMatrix::new(nan).is_err());
    }

    #[test]
    fn rejects_bad_shapes_before_allocating() {
        assert!(matches!(
            GateMatrix::new(1, vec![c(1., 0.); 3]),
            Err(OperationError::MatrixShape { len: 3, qubits: 1 })
        ));
        assert!(matches!(
            GateMatrix::new(40, vec![]),
            Err(OperationError::MatrixTooLarge { qubits: 40, .. })
        ));
    }

    #[test]
    fn controlled_puts_controls_on_low_bits() {
        let x = GateMatrix::from_rows([[c(0., 0.), c(1., 0.)], [c(1., 0.), c(0., 0.)]]);
        let cx = x.controlled(1);
        // Qiskit's CXGate matrix (control = qubit 0 of the gate).
        let expect = [
            [1., 0., 0., 0.],
            [0., 0., 0., 1.],
            [0., 0., 1., 0.],
            [0., 1., 0., 0.],
        ];
        for r in 0..4 {
            for col in 0..4 {
                assert_eq!(cx.get(r, col), c(expect[r][col], 0.));
            }
        }
    }
}
