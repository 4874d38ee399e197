//! Kettle's reference simulator: a deliberately plain dense state-vector
//! simulator that `kettle-core`'s tests compare against.
//!
//! Nothing here is fast and nothing is clever: every gate is applied by an
//! index loop over [`Complex64`] amplitudes (no SIMD, no threads, no
//! special-casing of matrix kinds), so that the code is obviously correct.
//! [`unitary_by_kron`] builds a circuit's unitary a second, independent way
//! (Kronecker products and a qubit permutation) and this crate's own tests
//! check [`statevector`] against it.
//!
//! Bit order is Qiskit's, as in `kettle-ir`: qubit 0 is the least significant
//! bit of a basis index, and in a bitstring classical bit 0 is the rightmost
//! character.
//!
//! Besides simulation the crate offers what tests need around it: exact
//! outcome distributions of circuits with mid-circuit measurement and noise
//! ([`exact_distribution`], [`density_matrix`]), Pauli expectations, circuit inversion, seeded
//! random circuits ([`random_circuit`]) and a chi-square goodness-of-fit test
//! for sampled counts ([`chi_square_p_value`]).
//!
//! Everything panics, with a message, on misuse: it is test code.

use std::collections::BTreeMap;

use kettle_ir::{
    Circuit, Clbit, Condition, Control, Gate, GateMatrix, Operation, Qubit, UnitaryMatrix,
};
use num_complex::Complex64;

mod random;
mod stats;

pub use random::{random_circuit, random_dynamic_circuit};
pub use stats::chi_square_p_value;

const ZERO: Complex64 = Complex64::new(0.0, 0.0);
const ONE: Complex64 = Complex64::new(1.0, 0.0);

/// Branches of [`exact_distribution`] less likely than this are dropped.
pub const PRUNE_PROBABILITY: f64 = 1e-15;

/// The largest circuit [`unitary_by_kron`] accepts.
pub const MAX_KRON_QUBITS: u32 = 8;

/// Applies `matrix` to the amplitudes of `qubits` (bit `i` of a matrix index
/// is `qubits[i]`), on the basis states where every control holds
/// (`on == true`: the control qubit is 1; `false`: it is 0).
///
/// For each basis index whose target bits are all 0 and whose controls hold,
/// it gathers the `2^k` amplitudes the matrix mixes, multiplies, and scatters
/// them back. A 0-qubit matrix (a global phase) multiplies every amplitude
/// where the controls hold.
///
/// # Panics
/// If the matrix size does not match `qubits`, or a qubit is out of range or repeated.
pub fn apply_gate(
    amps: &mut [Complex64],
    matrix: &GateMatrix,
    qubits: &[u32],
    controls: &[Control],
) {
    let k = qubits.len();
    assert_eq!(
        matrix.num_qubits() as usize,
        k,
        "matrix size does not match its qubits"
    );
    assert!(
        amps.len().is_power_of_two(),
        "state length must be a power of two"
    );
    let num_qubits = amps.len().trailing_zeros();
    let all: Vec<u32> = qubits
        .iter()
        .copied()
        .chain(controls.iter().map(|c| c.qubit))
        .collect();
    for (n, &q) in all.iter().enumerate() {
        assert!(
            q < num_qubits,
            "qubit {q} out of range for {num_qubits} qubits"
        );
        assert!(!all[..n].contains(&q), "qubit {q} used twice by one gate");
    }
    let dim = 1usize << k;
    let target_mask: usize = qubits.iter().map(|&q| 1usize << q).sum();
    let mut indices = vec![0usize; dim];
    let mut gathered = vec![ZERO; dim];
    for base in 0..amps.len() {
        if base & target_mask != 0 {
            continue;
        }
        if !controls
            .iter()
            .all(|c| ((base >> c.qubit) & 1 == 1) == c.on)
        {
            continue;
        }
        for (j, index) in indices.iter_mut().enumerate() {
            *index = base;
            for (i, &q) in qubits.iter().enumerate() {
                if (j >> i) & 1 == 1 {
                    *index |= 1 << q;
                }
            }
        }
        for j in 0..dim {
            gathered[j] = amps[indices[j]];
        }
        for row in 0..dim {
            let mut sum = ZERO;
            for col in 0..dim {
                sum += matrix.get(row, col) * gathered[col];
            }
            amps[indices[row]] = sum;
        }
    }
}

/// Applies every operation of a unitary circuit to `amps` in order
/// (barriers do nothing). [`statevector`] is this applied to |0…0⟩.
///
/// # Panics
/// On a measurement, reset or `if` (use [`exact_distribution`]), or if
/// `amps` does not have `2^num_qubits` entries.
pub fn evolve(amps: &mut [Complex64], circuit: &Circuit) {
    assert_eq!(
        amps.len(),
        1usize << circuit.num_qubits(),
        "state size does not match the circuit"
    );
    for op in circuit.ops() {
        match op {
            Operation::Gate {
                gate,
                qubits,
                controls,
            } => apply_gate(amps, &gate.matrix(), qubits, controls),
            Operation::Barrier { .. } => {}
            other => panic!(
                "reference statevector: non-unitary operation {other:?}; use exact_distribution"
            ),
        }
    }
}

/// The final state of a unitary circuit started from |0…0⟩.
///
/// # Panics
/// If the circuit does not validate, or holds a measurement, reset or `if`.
pub fn statevector(circuit: &Circuit) -> Vec<Complex64> {
    circuit
        .validate()
        .expect("reference statevector: invalid circuit");
    let mut amps = vec![ZERO; 1usize << circuit.num_qubits()];
    amps[0] = ONE;
    evolve(&mut amps, circuit);
    amps
}

/// Dense square matrix as rows.
type Dense = Vec<Vec<Complex64>>;

fn identity(dim: usize) -> Dense {
    (0..dim)
        .map(|r| (0..dim).map(|c| if r == c { ONE } else { ZERO }).collect())
        .collect()
}

/// `a ⊗ b`: `b` acts on the low bits of the index.
fn kron(a: &Dense, b: &Dense) -> Dense {
    let (na, nb) = (a.len(), b.len());
    let mut out = vec![vec![ZERO; na * nb]; na * nb];
    for ra in 0..na {
        for ca in 0..na {
            for rb in 0..nb {
                for cb in 0..nb {
                    out[ra * nb + rb][ca * nb + cb] = a[ra][ca] * b[rb][cb];
                }
            }
        }
    }
    out
}

fn matmul(a: &Dense, b: &Dense) -> Dense {
    let n = a.len();
    let mut out = vec![vec![ZERO; n]; n];
    for r in 0..n {
        for k in 0..n {
            for c in 0..n {
                out[r][c] += a[r][k] * b[k][c];
            }
        }
    }
    out
}

/// The full `2^n × 2^n` matrix of one gate with its controls.
///
/// On the qubit order `[targets…, controls…, the rest ascending]` the gate is
/// `I_rest ⊗ (P_ok ⊗ M + (I − P_ok) ⊗ I)`, where `P_ok` projects the controls
/// onto the pattern that fires; a permutation of index bits then maps that
/// order back to the circuit's.
fn embed(num_qubits: u32, matrix: &GateMatrix, qubits: &[Qubit], controls: &[Control]) -> Dense {
    let m: Dense = (0..matrix.dim())
        .map(|r| (0..matrix.dim()).map(|c| matrix.get(r, c)).collect())
        .collect();
    let pattern: usize = controls
        .iter()
        .enumerate()
        .map(|(j, c)| usize::from(c.on) << j)
        .sum();
    let cdim = 1usize << controls.len();
    let mut p_ok = vec![vec![ZERO; cdim]; cdim];
    p_ok[pattern][pattern] = ONE;
    let mut p_fail = identity(cdim);
    p_fail[pattern][pattern] = ZERO;
    let on = kron(&p_ok, &m);
    let off = kron(&p_fail, &identity(m.len()));
    let local: Dense = on
        .iter()
        .zip(&off)
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x + y).collect())
        .collect();
    let mut order: Vec<Qubit> = qubits
        .iter()
        .copied()
        .chain(controls.iter().map(|c| c.qubit))
        .collect();
    let rest: Vec<Qubit> = (0..num_qubits).filter(|q| !order.contains(q)).collect();
    order.extend(&rest);
    let big = kron(&identity(1 << rest.len()), &local);
    // Bit j of the permuted index is bit order[j] of the circuit's index.
    let permute = |x: usize| -> usize {
        order
            .iter()
            .enumerate()
            .map(|(j, &q)| ((x >> q) & 1) << j)
            .sum()
    };
    let dim = 1usize << num_qubits;
    let perm: Vec<usize> = (0..dim).map(permute).collect();
    (0..dim)
        .map(|r| (0..dim).map(|c| big[perm[r]][perm[c]]).collect())
        .collect()
}

/// The whole unitary of a circuit (rows of a `2^n × 2^n` matrix), built from
/// Kronecker products and a qubit permutation per gate, independently of
/// [`apply_gate`]. Column `j` is the image of basis state `j`.
///
/// # Panics
/// If the circuit does not validate, has more than [`MAX_KRON_QUBITS`]
/// qubits, or holds a non-unitary operation.
pub fn unitary_by_kron(circuit: &Circuit) -> Vec<Vec<Complex64>> {
    circuit
        .validate()
        .expect("reference unitary: invalid circuit");
    let n = circuit.num_qubits();
    assert!(
        n <= MAX_KRON_QUBITS,
        "reference unitary: {n} qubits is too many"
    );
    let mut u = identity(1 << n);
    for op in circuit.ops() {
        match op {
            Operation::Gate {
                gate,
                qubits,
                controls,
            } => {
                u = matmul(&embed(n, &gate.matrix(), qubits, controls), &u);
            }
            Operation::Barrier { .. } => {}
            other => panic!("reference unitary: non-unitary operation {other:?}"),
        }
    }
    u
}

/// `|a_i|²` for every amplitude.
pub fn probabilities(amps: &[Complex64]) -> Vec<f64> {
    amps.iter().map(|a| a.norm_sqr()).collect()
}

/// One line of history in [`exact_distribution`]: a classical record and
/// the density matrix (row-major, `dim × dim`) that goes with it, whose
/// trace is the record's probability.
#[derive(Clone)]
struct Branch {
    rho: Vec<Complex64>,
    bits: Vec<bool>,
}

impl Branch {
    fn dim(&self) -> usize {
        (self.rho.len() as f64).sqrt() as usize
    }

    fn prob(&self) -> f64 {
        let dim = self.dim();
        (0..dim).map(|i| self.rho[i * dim + i].re).sum()
    }
}

/// `M ρ M†` for a matrix `M` on `qubits` (not necessarily unitary): `M` on
/// every column, then `M̄` on every row.
fn conjugate_by(
    rho: &mut [Complex64],
    dim: usize,
    m: &GateMatrix,
    qubits: &[u32],
    controls: &[Control],
) {
    let mut v = vec![ZERO; dim];
    for c in 0..dim {
        for r in 0..dim {
            v[r] = rho[r * dim + c];
        }
        apply_gate(&mut v, m, qubits, controls);
        for r in 0..dim {
            rho[r * dim + c] = v[r];
        }
    }
    let conj = GateMatrix::new(m.num_qubits(), m.data().iter().map(|z| z.conj()).collect())
        .expect("same shape");
    for r in 0..dim {
        apply_gate(&mut rho[r * dim..(r + 1) * dim], &conj, qubits, controls);
    }
}

/// `Σ K ρ K†`.
fn apply_kraus(
    rho: &[Complex64],
    dim: usize,
    kraus: &[GateMatrix],
    qubits: &[u32],
) -> Vec<Complex64> {
    let mut out = vec![ZERO; rho.len()];
    for k in kraus {
        let mut term = rho.to_vec();
        conjugate_by(&mut term, dim, k, qubits, &[]);
        for (o, t) in out.iter_mut().zip(term) {
            *o += t;
        }
    }
    out
}

/// The reset channel's Kraus operators, `|0⟩⟨0|` and `|0⟩⟨1|`.
fn reset_kraus() -> [GateMatrix; 2] {
    [
        GateMatrix::new(1, vec![ONE, ZERO, ZERO, ZERO]).expect("2x2"),
        GateMatrix::new(1, vec![ZERO, ONE, ZERO, ZERO]).expect("2x2"),
    ]
}

/// Projects `b` on both values of `qubit` and records the value in `clbit`.
fn split(b: Branch, qubit: Qubit, clbit: Clbit) -> Vec<Branch> {
    let bit = 1usize << qubit;
    let dim = b.dim();
    let mut out = Vec::new();
    for value in [false, true] {
        let mut rho = b.rho.clone();
        for r in 0..dim {
            for c in 0..dim {
                if (r & bit != 0) != value || (c & bit != 0) != value {
                    rho[r * dim + c] = ZERO;
                }
            }
        }
        let mut bits = b.bits.clone();
        bits[clbit as usize] = value;
        let branch = Branch { rho, bits };
        if branch.prob() >= PRUNE_PROBABILITY {
            out.push(branch);
        }
    }
    out
}

fn run_branches(ops: &[Operation], mut branches: Vec<Branch>) -> Vec<Branch> {
    for op in ops {
        branches = branches
            .into_iter()
            .flat_map(|mut b| {
                let dim = b.dim();
                match op {
                    Operation::Gate {
                        gate,
                        qubits,
                        controls,
                    } => {
                        conjugate_by(&mut b.rho, dim, &gate.matrix(), qubits, controls);
                        vec![b]
                    }
                    Operation::Barrier { .. } => vec![b],
                    Operation::Measure { qubit, clbit } => split(b, *qubit, *clbit),
                    Operation::Reset { qubit } => {
                        b.rho = apply_kraus(&b.rho, dim, &reset_kraus(), &[*qubit]);
                        vec![b]
                    }
                    Operation::Channel { channel, qubits } => {
                        b.rho = apply_kraus(&b.rho, dim, &channel.kraus_operators(), qubits);
                        vec![b]
                    }
                    Operation::ReadoutError { clbit, error } => {
                        let value = b.bits[*clbit as usize];
                        let flip = error.flip_probability(value);
                        let mut flipped = b.clone();
                        flipped.bits[*clbit as usize] = !value;
                        flipped.rho.iter_mut().for_each(|z| *z *= flip);
                        b.rho.iter_mut().for_each(|z| *z *= 1.0 - flip);
                        [b, flipped]
                            .into_iter()
                            .filter(|x| x.prob() >= PRUNE_PROBABILITY)
                            .collect()
                    }
                    Operation::IfElse {
                        condition,
                        then_ops,
                        else_ops,
                    } => {
                        let taken = if condition.holds(|c| b.bits[c as usize]) {
                            then_ops
                        } else {
                            else_ops
                        };
                        run_branches(taken, vec![b])
                    }
                }
            })
            .collect();
    }
    branches
}

fn start(circuit: &Circuit) -> Branch {
    let dim = 1usize << circuit.num_qubits();
    let mut rho = vec![ZERO; dim * dim];
    rho[0] = ONE;
    Branch {
        rho,
        bits: vec![false; circuit.num_clbits() as usize],
    }
}

/// The final density matrix (row-major, `2^n × 2^n`) of any circuit:
/// measurements, resets, channels and classical control followed exactly,
/// every classical record's part added up.
///
/// # Panics
/// If the circuit does not validate.
pub fn density_matrix(circuit: &Circuit) -> Vec<Complex64> {
    circuit
        .validate()
        .expect("reference density_matrix: invalid circuit");
    let mut total = start(circuit).rho;
    total[0] = ZERO;
    for b in run_branches(circuit.ops(), vec![start(circuit)]) {
        for (t, x) in total.iter_mut().zip(b.rho) {
            *t += x;
        }
    }
    total
}

/// `Tr(ρP)` for the Pauli string `term` (as for [`pauli_expectation`]) and a
/// density matrix as [`density_matrix`] gives it.
///
/// # Panics
/// As [`pauli_expectation`].
pub fn density_expectation(rho: &[Complex64], term: &[(u32, char)]) -> f64 {
    let dim = (rho.len() as f64).sqrt() as usize;
    // Tr(ρP) = Σ_c ⟨c|ρ P|c⟩, with P|c⟩ found by applying P to |c⟩.
    let mut total = ZERO;
    for c in 0..dim {
        let mut v = vec![ZERO; dim];
        v[c] = ONE;
        let i = Complex64::new(0.0, 1.0);
        for &(q, p) in term {
            let entries = match p {
                'I' => continue,
                'X' => vec![ZERO, ONE, ONE, ZERO],
                'Y' => vec![ZERO, -i, i, ZERO],
                'Z' => vec![ONE, ZERO, ZERO, -ONE],
                other => panic!("unknown Pauli {other:?}"),
            };
            apply_gate(
                &mut v,
                &GateMatrix::new(1, entries).expect("2x2"),
                &[q],
                &[],
            );
        }
        for (r, a) in v.iter().enumerate() {
            total += rho[c * dim + r] * a;
        }
    }
    total.re
}

/// The exact probability of every final classical register value, for any
/// circuit (mid-circuit measurement, reset, `if`, channels and readout
/// errors included), by following both outcomes of every measurement and
/// both readings of a bit with a readout error, each with its density
/// matrix. Keys are bitstrings of `num_clbits` characters with clbit 0
/// rightmost; bits never written stay 0. Branches less likely than
/// [`PRUNE_PROBABILITY`] are dropped, so only outcomes that can happen
/// appear.
///
/// Cost doubles with each measurement: keep test circuits small.
///
/// # Panics
/// If the circuit does not validate.
pub fn exact_distribution(circuit: &Circuit) -> BTreeMap<String, f64> {
    circuit
        .validate()
        .expect("reference exact_distribution: invalid circuit");
    let mut dist = BTreeMap::new();
    for b in run_branches(circuit.ops(), vec![start(circuit)]) {
        let key: String = b
            .bits
            .iter()
            .rev()
            .map(|&x| if x { '1' } else { '0' })
            .collect();
        *dist.entry(key).or_insert(0.0) += b.prob();
    }
    dist
}

/// `⟨ψ|P|ψ⟩` for the Pauli string `term` (`(qubit, 'I' | 'X' | 'Y' | 'Z')`
/// pairs on distinct qubits), by applying each Pauli matrix to a copy of the
/// state and taking the inner product.
///
/// # Panics
/// On another letter, a repeated qubit, or a qubit out of range.
pub fn pauli_expectation(amps: &[Complex64], term: &[(u32, char)]) -> f64 {
    let i = Complex64::new(0.0, 1.0);
    let mut phi = amps.to_vec();
    for (n, &(q, p)) in term.iter().enumerate() {
        assert!(
            term[..n].iter().all(|&(r, _)| r != q),
            "qubit {q} repeated in Pauli term"
        );
        let entries = match p {
            'I' => continue,
            'X' => vec![ZERO, ONE, ONE, ZERO],
            'Y' => vec![ZERO, -i, i, ZERO],
            'Z' => vec![ONE, ZERO, ZERO, -ONE],
            other => panic!("unknown Pauli {other:?}"),
        };
        let m = GateMatrix::new(1, entries).expect("2x2");
        apply_gate(&mut phi, &m, &[q], &[]);
    }
    amps.iter()
        .zip(&phi)
        .map(|(a, b)| a.conj() * b)
        .sum::<Complex64>()
        .re
}

/// The inverse of a unitary circuit: its operations in reverse order, each
/// gate replaced by `Gate::Unitary` of its adjoint on the same qubits with
/// the same controls; barriers are kept. Registers are copied.
///
/// # Panics
/// On a measurement, reset or `if`.
pub fn inverse(circuit: &Circuit) -> Circuit {
    let mut out = Circuit::new(circuit.num_qubits());
    for r in circuit.registers() {
        out.add_register(&r.name, r.size)
            .expect("registers of a circuit are distinct");
    }
    for op in circuit.ops().iter().rev() {
        let inv = match op {
            Operation::Gate {
                gate,
                qubits,
                controls,
            } => Operation::Gate {
                gate: Gate::Unitary(
                    UnitaryMatrix::new(gate.matrix().adjoint()).expect("adjoint of a unitary"),
                ),
                qubits: qubits.clone(),
                controls: controls.clone(),
            },
            Operation::Barrier { .. } => op.clone(),
            other => panic!("reference inverse: non-unitary operation {other:?}"),
        };
        out.push(inv);
    }
    out
}

/// Largest `|a_i − b_i|`.
///
/// # Panics
/// If the lengths differ.
pub fn max_abs_diff(a: &[Complex64], b: &[Complex64]) -> f64 {
    assert_eq!(a.len(), b.len(), "states of different sizes");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).norm())
        .fold(0.0, f64::max)
}

/// `|⟨a|b⟩|² / (⟨a|a⟩⟨b|b⟩)`: 1 for states equal up to a global phase.
///
/// # Panics
/// If the lengths differ.
pub fn fidelity(a: &[Complex64], b: &[Complex64]) -> f64 {
    assert_eq!(a.len(), b.len(), "states of different sizes");
    let overlap: Complex64 = a.iter().zip(b).map(|(x, y)| x.conj() * y).sum();
    let na: f64 = probabilities(a).iter().sum();
    let nb: f64 = probabilities(b).iter().sum();
    overlap.norm_sqr() / (na * nb)
}

/// Teleportation of `ry(0.7)|0⟩` from qubit 0 to qubit 2: mid-circuit
/// measurement into registers `m` (bits 0, 1) and classical corrections,
/// then qubit 2 measured into `out` (bit 2), which reads 1 with probability
/// sin²(0.35). A fixture for tests of trajectories.
pub fn teleportation() -> Circuit {
    Circuit::new(3)
        .creg("m", 2)
        .creg("out", 1)
        .ry(0.7, 0)
        .h(1)
        .cx(1, 2)
        .cx(0, 1)
        .h(0)
        .measure(0, 0)
        .measure(1, 1)
        .if_then(Condition::bit(1, true), |b| b.x(2))
        .if_then(Condition::bit(0, true), |b| b.z(2))
        .measure(2, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kettle_ir::{Condition, StandardGate};

    fn c(re: f64, im: f64) -> Complex64 {
        Complex64::new(re, im)
    }

    #[test]
    fn apply_gate_matches_kron_on_every_basis_state() {
        for n in 0..=6 {
            for seed in 0..8 {
                let circuit = random_circuit(n, 30, seed);
                let u = unitary_by_kron(&circuit);
                for j in 0..1usize << n {
                    let mut amps = vec![ZERO; 1 << n];
                    amps[j] = ONE;
                    evolve(&mut amps, &circuit);
                    let column: Vec<Complex64> = u.iter().map(|row| row[j]).collect();
                    let d = max_abs_diff(&amps, &column);
                    assert!(d < 1e-12, "n={n} seed={seed} column {j}: {d}");
                }
                let d = max_abs_diff(
                    &statevector(&circuit),
                    &u.iter().map(|r| r[0]).collect::<Vec<_>>(),
                );
                assert!(d < 1e-12);
            }
        }
    }

    #[test]
    fn kron_order_matches_qiskit_cx() {
        let (o, l) = (ZERO, ONE);
        // Control on q0: Qiskit's CXGate matrix.
        let want = [[l, o, o, o], [o, o, o, l], [o, o, l, o], [o, l, o, o]];
        assert_eq!(
            unitary_by_kron(&Circuit::new(2).cx(0, 1)),
            want.map(|r| r.to_vec()).to_vec()
        );
        // Control on q1.
        let want = [[l, o, o, o], [o, l, o, o], [o, o, o, l], [o, o, l, o]];
        assert_eq!(
            unitary_by_kron(&Circuit::new(2).cx(1, 0)),
            want.map(|r| r.to_vec()).to_vec()
        );
        // X on q1 when q0 is |0⟩: |00⟩ ↔ |10⟩.
        let neg = Circuit::new(2).controlled(
            Gate::standard(StandardGate::X, &[]),
            &[1],
            vec![Control::zero(0)],
        );
        let want = [[o, o, l, o], [o, l, o, o], [l, o, o, o], [o, o, o, l]];
        assert_eq!(unitary_by_kron(&neg), want.map(|r| r.to_vec()).to_vec());
        assert_eq!(statevector(&neg), vec![o, o, l, o]);
    }

    #[test]
    fn bell_state() {
        let amps = statevector(&Circuit::new(2).h(0).cx(0, 1));
        let r = std::f64::consts::FRAC_1_SQRT_2;
        assert!(max_abs_diff(&amps, &[c(r, 0.), ZERO, ZERO, c(r, 0.)]) < 1e-15);
        let probs = probabilities(&amps);
        assert!((probs[0] - 0.5).abs() < 1e-15 && (probs[3] - 0.5).abs() < 1e-15);
        assert!((pauli_expectation(&amps, &[(0, 'Z'), (1, 'Z')]) - 1.0).abs() < 1e-14);
        assert!((pauli_expectation(&amps, &[(0, 'X'), (1, 'X')]) - 1.0).abs() < 1e-14);
        assert!((pauli_expectation(&amps, &[(0, 'Y'), (1, 'Y')]) + 1.0).abs() < 1e-14);
        assert!(pauli_expectation(&amps, &[(0, 'Z'), (1, 'I')]).abs() < 1e-14);
        let phased: Vec<Complex64> = amps
            .iter()
            .map(|a| a * Complex64::from_polar(1.0, 0.3))
            .collect();
        assert!((fidelity(&amps, &phased) - 1.0).abs() < 1e-14);
        assert!(max_abs_diff(&amps, &phased) > 0.1);
        assert_eq!(fidelity(&[ONE, ZERO], &[ZERO, ONE]), 0.0);
        let dist = exact_distribution(&Circuit::new(2).h(0).cx(0, 1).measure_all());
        assert_eq!(dist.keys().collect::<Vec<_>>(), ["00", "11"]);
    }

    #[test]
    fn teleportation() {
        let dist = exact_distribution(&super::teleportation());
        let p1 = 0.35f64.sin().powi(2);
        assert_eq!(dist.len(), 8);
        for (key, p) in &dist {
            let want = 0.25 * if key.starts_with('1') { p1 } else { 1.0 - p1 };
            assert!((p - want).abs() < 1e-14, "{key}: {p} vs {want}");
        }
    }

    #[test]
    fn reset_and_unwritten_bits() {
        let reset = Circuit::new(1).creg("c", 1).h(0).reset(0).measure(0, 0);
        let dist = exact_distribution(&reset);
        assert_eq!(dist.len(), 1);
        assert!((dist["0"] - 1.0).abs() < 1e-15);
        let partial = Circuit::new(1).creg("c", 3).x(0).measure(0, 1);
        assert_eq!(
            exact_distribution(&partial),
            BTreeMap::from([("010".to_string(), 1.0)])
        );
        // An else branch, and a condition on a multi-bit value.
        let cond = Circuit::new(2)
            .creg("c", 2)
            .x(0)
            .measure(0, 0)
            .if_else(Condition::equals(vec![0, 1], 1), |b| b.x(1), |b| b.h(1))
            .measure(1, 1);
        assert_eq!(
            exact_distribution(&cond),
            BTreeMap::from([("11".to_string(), 1.0)])
        );
    }

    #[test]
    fn exact_distribution_of_unitary_circuit_is_probabilities() {
        for seed in 0..5 {
            let circuit = random_circuit(4, 40, seed);
            let probs = probabilities(&statevector(&circuit));
            let dist = exact_distribution(&circuit.clone().measure_all());
            let total: f64 = dist.values().sum();
            assert!((total - 1.0).abs() < 1e-12);
            for (key, p) in dist {
                let index = usize::from_str_radix(&key, 2).unwrap();
                assert!((p - probs[index]).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn inverse_undoes_the_circuit() {
        for seed in 0..10 {
            let circuit = random_circuit(5, 60, seed);
            let mut both = circuit.clone();
            for op in inverse(&circuit).ops() {
                both.push(op.clone());
            }
            let amps = statevector(&both);
            let mut zero = vec![ZERO; 32];
            zero[0] = ONE;
            assert!(max_abs_diff(&amps, &zero) < 1e-12, "seed {seed}");
        }
    }
}
