//! Gates lowered to what a kernel applies: a matrix of known shape on target
//! qubits, acting where every control holds.
//!
//! Built-in controls are split off (`ccx` becomes X on one target with two
//! controls), so that a kernel touches only the controlled subspace, and the
//! matrix's exact-zero structure picks the kernel: diagonal (phase
//! multiplications), monomial (moves, with phases) or dense.

use kettle_ir::{Control, Gate, GateMatrix, MatrixKind, Qubit};
use num_complex::Complex64;
use smallvec::SmallVec;

/// A gate as its base matrix, the targets it acts on, and every control:
/// the extra ones, then the gate's built-in |1⟩-controls (`ccx` is X on its
/// last qubit under two controls).
pub(crate) fn split_controls<'q>(
    gate: &Gate,
    qubits: &'q [Qubit],
    controls: &[Control],
) -> (GateMatrix, &'q [Qubit], SmallVec<[Control; 4]>) {
    let (builtin, base) = gate.controlled_base();
    let builtin = builtin as usize;
    let mut all_controls: SmallVec<[Control; 4]> = controls.iter().copied().collect();
    all_controls.extend(qubits[..builtin].iter().map(|&q| Control::one(q)));
    (base, &qubits[builtin..], all_controls)
}

/// The matrix of a lowered operation, on `2^k` basis states of its targets.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum OpMatrix {
    /// `out[r] = diag[r] · in[r]`.
    Diagonal(Vec<Complex64>),
    /// `out[r] = phase[r] · in[src[r]]`.
    Monomial {
        src: Vec<usize>,
        phase: Vec<Complex64>,
    },
    /// `out[r] = Σ_c m[r·dim + c] · in[c]`, row-major.
    Dense(Vec<Complex64>),
}

/// A matrix on `targets` (bit `i` of its index is `targets[i]`), applied
/// only on basis states where every control holds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct KernelOp {
    pub(crate) targets: SmallVec<[Qubit; 4]>,
    pub(crate) controls: SmallVec<[Control; 4]>,
    pub(crate) matrix: OpMatrix,
}

impl KernelOp {
    /// Lowers a validated gate.
    pub(crate) fn from_gate(gate: &Gate, qubits: &[Qubit], controls: &[Control]) -> KernelOp {
        let (base, targets, all_controls) = split_controls(gate, qubits, controls);
        KernelOp::from_matrix(&base, targets, &all_controls)
    }

    /// Wraps a matrix, choosing its representation from its exact zeros.
    pub(crate) fn from_matrix(m: &GateMatrix, targets: &[Qubit], controls: &[Control]) -> KernelOp {
        let dim = m.dim();
        let matrix = match m.kind() {
            MatrixKind::Diagonal => OpMatrix::Diagonal(m.diag()),
            MatrixKind::Monomial => {
                let zero = Complex64::new(0.0, 0.0);
                let src: Vec<usize> = (0..dim)
                    .map(|r| {
                        (0..dim)
                            .find(|&c| m.get(r, c) != zero)
                            .expect("monomial row")
                    })
                    .collect();
                let phase = (0..dim).map(|r| m.get(r, src[r])).collect();
                OpMatrix::Monomial { src, phase }
            }
            MatrixKind::Dense => OpMatrix::Dense(m.data().to_vec()),
        };
        KernelOp {
            targets: targets.into(),
            controls: controls.into(),
            matrix,
        }
    }

    /// Every qubit the operation reads: targets, then controls.
    pub(crate) fn qubits(&self) -> impl Iterator<Item = Qubit> + '_ {
        self.targets
            .iter()
            .copied()
            .chain(self.controls.iter().map(|c| c.qubit))
    }

    /// The qubits on which the operation does not act diagonally: its
    /// targets, none for a diagonal. Two operations commute when each acts
    /// diagonally on every qubit they share (both are then block-diagonal
    /// in those qubits' basis states, with blocks on disjoint qubits).
    pub(crate) fn dense_qubits(&self) -> &[Qubit] {
        match self.matrix {
            OpMatrix::Diagonal(_) => &[],
            _ => &self.targets,
        }
    }

    /// True when the operation cannot change any state (a diagonal of exact ones).
    pub(crate) fn is_identity(&self) -> bool {
        matches!(&self.matrix, OpMatrix::Diagonal(d) if d.iter().all(|&x| x == Complex64::new(1.0, 0.0)))
    }

    /// The required control states as bits, control `i` at bit `i`.
    fn control_values(&self) -> usize {
        self.controls
            .iter()
            .enumerate()
            .map(|(i, c)| usize::from(c.on) << i)
            .sum()
    }

    /// The matrix on `targets ++ control qubits`, controls folded in, as a
    /// full matrix (what the fusion planner multiplies).
    pub(crate) fn full_matrix(&self) -> (Vec<Qubit>, GateMatrix) {
        let k = self.targets.len();
        let qubits: Vec<Qubit> = self.qubits().collect();
        let dim_t = 1usize << k;
        let full = 1usize << qubits.len();
        let want = self.control_values();
        let mut data = vec![Complex64::new(0.0, 0.0); full * full];
        for r in 0..full {
            if r >> k != want {
                data[r * full + r] = Complex64::new(1.0, 0.0);
                continue;
            }
            let high = r & !(dim_t - 1);
            for ct in 0..dim_t {
                data[r * full + (high | ct)] = self.entry(r & (dim_t - 1), ct);
            }
        }
        let m = GateMatrix::new(qubits.len() as u32, data).expect("shape is consistent");
        (qubits, m)
    }

    /// The diagonal of [`full_matrix`](Self::full_matrix), without building
    /// the matrix (diagonal operations only).
    pub(crate) fn full_diagonal(&self) -> Vec<Complex64> {
        let OpMatrix::Diagonal(d) = &self.matrix else {
            panic!("full_diagonal of a non-diagonal operation");
        };
        let k = self.targets.len();
        let want = self.control_values();
        (0..1usize << (k + self.controls.len()))
            .map(|r| {
                if r >> k == want {
                    d[r & ((1 << k) - 1)]
                } else {
                    Complex64::new(1.0, 0.0)
                }
            })
            .collect()
    }

    /// Entry `(r, c)` of the target matrix.
    pub(crate) fn entry(&self, r: usize, c: usize) -> Complex64 {
        let zero = Complex64::new(0.0, 0.0);
        match &self.matrix {
            OpMatrix::Diagonal(d) => {
                if r == c {
                    d[r]
                } else {
                    zero
                }
            }
            OpMatrix::Monomial { src, phase } => {
                if src[r] == c {
                    phase[r]
                } else {
                    zero
                }
            }
            OpMatrix::Dense(m) => m[r * (1 << self.targets.len()) + c],
        }
    }
}

/// How far a qubit is closed by operations a planner left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    Open,
    /// Operations left act on it diagonally only.
    ToDense,
    /// An operation left acts on it other than diagonally.
    All,
}

/// The qubits that operations left behind close to later ones, for the
/// planners that take operations out of circuit order (cache blocking's
/// stages, a distributed run's rounds): a later operation may be taken
/// before them when it commutes with each, which holds when it shares no
/// qubit with it or both act diagonally on every qubit they share (see
/// [`KernelOp::dense_qubits`]).
#[derive(Debug, Default)]
pub(crate) struct LeftBehind {
    /// Per qubit (qubits past its end are open).
    qubits: Vec<Closed>,
    /// Qubits at [`Closed::All`].
    closed: usize,
}

impl LeftBehind {
    fn state(&self, q: Qubit) -> Closed {
        self.qubits.get(q as usize).copied().unwrap_or(Closed::Open)
    }

    /// Whether `op` commutes with every operation left so far.
    pub(crate) fn lets_pass(&self, op: &KernelOp) -> bool {
        let dense = op.dense_qubits();
        op.qubits().all(|q| match self.state(q) {
            Closed::Open => true,
            Closed::ToDense => !dense.contains(&q),
            Closed::All => false,
        })
    }

    /// Leaves `op` behind: its qubits close to what does not commute with it.
    pub(crate) fn leave(&mut self, op: &KernelOp) {
        let dense = op.dense_qubits();
        for q in op.qubits() {
            let q = q as usize;
            if q >= self.qubits.len() {
                self.qubits.resize(q + 1, Closed::Open);
            }
            let state = &mut self.qubits[q];
            if dense.contains(&(q as Qubit)) {
                self.closed += usize::from(*state != Closed::All);
                *state = Closed::All;
            } else if *state == Closed::Open {
                *state = Closed::ToDense;
            }
        }
    }

    /// Qubits closed to every later operation on them.
    pub(crate) fn closed(&self) -> usize {
        self.closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kettle_ir::StandardGate;

    #[test]
    fn builtin_controls_are_split_off() {
        let op = KernelOp::from_gate(&Gate::standard(StandardGate::Ccx, &[]), &[4, 2, 7], &[]);
        assert_eq!(op.targets.as_slice(), &[7]);
        assert_eq!(op.controls.as_slice(), &[Control::one(4), Control::one(2)]);
        assert!(matches!(op.matrix, OpMatrix::Monomial { .. }));
        let cp = KernelOp::from_gate(&Gate::standard(StandardGate::Cp, &[0.3]), &[0, 1], &[]);
        assert!(matches!(cp.matrix, OpMatrix::Diagonal(_)));
        let h = KernelOp::from_gate(&Gate::standard(StandardGate::H, &[]), &[0], &[]);
        assert!(matches!(h.matrix, OpMatrix::Dense(_)));
    }

    #[test]
    fn full_matrix_folds_controls() {
        let gate = Gate::standard(StandardGate::Cx, &[]);
        let op = KernelOp::from_gate(&gate, &[0, 1], &[]);
        let (qubits, m) = op.full_matrix();
        assert_eq!(qubits, vec![1, 0]);
        // On [target, control] the matrix flips bit 0 when bit 1 is set.
        assert_eq!(m.get(3, 2), Complex64::new(1.0, 0.0));
        assert_eq!(m.get(1, 1), Complex64::new(1.0, 0.0));
        let neg = KernelOp::from_gate(
            &Gate::standard(StandardGate::X, &[]),
            &[0],
            &[Control::zero(1)],
        );
        let (_, m) = neg.full_matrix();
        assert_eq!(m.get(1, 0), Complex64::new(1.0, 0.0));
        assert_eq!(m.get(3, 3), Complex64::new(1.0, 0.0));
        let ccp = KernelOp::from_gate(
            &Gate::standard(StandardGate::Cp, &[0.4]),
            &[2, 0],
            &[Control::zero(1)],
        );
        let (_, m) = ccp.full_matrix();
        assert_eq!(ccp.full_diagonal(), m.diag());
    }
}
