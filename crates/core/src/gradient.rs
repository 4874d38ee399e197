//! Exact gradients of expectation values by the adjoint method (Jones and
//! Gacon, arXiv:2009.02823): one forward run, then one backward walk over
//! the circuit, whatever the number of angles.
//!
//! With `ψ = U_N ⋯ U_1 |0⟩`, `φ_j = U_j ⋯ U_1 |0⟩` and
//! `λ_j = U_{j+1}† ⋯ U_N† H ψ`,
//! `∂⟨ψ|H|ψ⟩/∂θ = 2 Re ⟨λ_j| ∂U_j/∂θ |φ_{j−1}⟩` for an angle θ of gate `j`.
//! The walk starts from `φ = ψ` and `λ = Hψ` and undoes the gates on both,
//! in layers of gates on disjoint qubits whose terms are taken together,
//! everything between them fused as a forward run is. Unlike PennyLane
//! Lightning, which copies `φ` and applies the gate's generator to the copy
//! before taking each inner product, the matrix elements are computed by
//! reading both states, a layer's at once ([`matrix_elements`]), so the
//! memory is one state plus one per observable, and any gate of the
//! catalogue (several angles, controls) has a derivative (see
//! [`derivative`]).

use std::f64::consts::PI;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};

use kettle_ir::{Circuit, Control, Gate, GateMatrix, Operation, Qubit, StandardGate};
use num_complex::Complex64;

use crate::error::SimError;
use crate::float::Float;
use crate::kernels::{Lanes, at_level, lane_sum};
use crate::observable::PauliSum;
use crate::op::{KernelOp, split_controls};
use crate::par::Parallelism;
use crate::program::{Program, final_measurements};
use crate::simulator::{Monitor, Progress, RunOptions, Simulator, Unwatched};
use crate::state::{StateVector, check_budget};

/// One angle of a circuit: parameter `param` (in the order OpenQASM lists
/// them) of the top-level operation `op` of [`Circuit::ops`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AngleRef {
    /// Index in [`Circuit::ops`]; the operation is a standard gate.
    pub op: usize,
    /// Which of its parameters.
    pub param: usize,
}

/// An expectation value and its derivatives.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradient {
    /// `⟨ψ|H|ψ⟩`.
    pub value: f64,
    /// `∂⟨ψ|H|ψ⟩/∂θ` for each angle asked for, in the order asked.
    pub angles: Vec<f64>,
}

impl Simulator {
    /// `⟨H⟩` and its derivative with respect to each of `angles`, for every
    /// observable `H`, by the adjoint method. The circuit may end in
    /// measurements (ignored, as for [`Simulator::statevector`]) but has no
    /// mid-circuit measurement, reset or classical control. It needs one
    /// state per observable on top of the run's own.
    ///
    /// # Errors
    /// [`SimError::Gradient`] for a circuit that is not unitary up to its
    /// final measurements or an angle that does not exist, those of
    /// [`Simulator::run`], and [`SimError::QubitOutOfRange`] for an
    /// observable on a qubit the circuit lacks.
    pub fn adjoint_gradient<F: Float>(
        &self,
        circuit: &Circuit,
        observables: &[PauliSum],
        angles: &[AngleRef],
    ) -> Result<Vec<Gradient>, SimError> {
        self.adjoint_gradient_monitored::<F>(circuit, observables, angles, &Unwatched)
    }

    /// Like [`adjoint_gradient`](Self::adjoint_gradient), telling `monitor`
    /// of progress (the forward run's operations, then one per operation
    /// undone) and stopping when it says so.
    ///
    /// # Errors
    /// As [`adjoint_gradient`](Self::adjoint_gradient), and
    /// [`SimError::Stopped`] when the monitor stopped it.
    pub fn adjoint_gradient_monitored<F: Float>(
        &self,
        circuit: &Circuit,
        observables: &[PauliSum],
        angles: &[AngleRef],
        monitor: &dyn Monitor,
    ) -> Result<Vec<Gradient>, SimError> {
        circuit.validate()?;
        if final_measurements(circuit).is_none() {
            return Err(SimError::Gradient(
                "the adjoint gradient needs a circuit without mid-circuit measurement, reset or classical control".into(),
            ));
        }
        let ops = circuit.ops();
        for a in angles {
            match ops.get(a.op) {
                Some(Operation::Gate {
                    gate: Gate::Standard { params, .. },
                    ..
                }) if a.param < params.len() => {}
                _ => {
                    return Err(SimError::Gradient(format!(
                        "operation {} has no angle {}",
                        a.op, a.param
                    )));
                }
            }
        }
        let n = circuit.num_qubits();
        for h in observables {
            h.check_qubits(n)?;
        }
        let budget = self.memory_budget();
        check_budget::<F>(n, 1 + observables.len() as u32, budget)?;

        // The angles of each operation, and where the walk can stop.
        let mut wanted: Vec<Vec<(usize, usize)>> = vec![Vec::new(); ops.len()];
        for (i, a) in angles.iter().enumerate() {
            wanted[a.op].push((i, a.param));
        }
        let first = angles.iter().map(|a| a.op).min().unwrap_or(ops.len());
        let backward = (ops.len() - first) as u64;

        let forward_planned = AtomicU64::new(0);
        let forward = Forward {
            inner: monitor,
            backward,
            planned: &forward_planned,
        };
        let options = RunOptions {
            shots: 0,
            seed: Some(0),
            keep_state: true,
            ..Default::default()
        };
        let mut phi = self
            .run_monitored::<F>(circuit, &options, &forward)?
            .state
            .expect("state was asked for");
        let par = self.parallelism();
        let mut results = Vec::with_capacity(observables.len());
        let mut lambdas = Vec::with_capacity(observables.len());
        for h in observables {
            results.push(Gradient {
                value: phi.expectation(h, par)?,
                angles: vec![0.0; angles.len()],
            });
            lambdas.push(apply_observable(&phi, h, budget)?);
        }

        let done = forward_planned.load(Ordering::Relaxed);
        let report = |cursor: usize| {
            let progress = Progress {
                applied: done + (ops.len() - cursor) as u64,
                planned: done + backward,
            };
            if monitor.on_progress(progress).is_break() {
                Err(SimError::Stopped)
            } else {
                Ok(())
            }
        };
        // The walk goes down in layers of operations on disjoint qubits.
        // Within a layer, gate j commutes with the others, so its term
        // ⟨λ_j| ∂U_j |φ_{j−1}⟩ equals ⟨λ|(∂U_j U_j†)|φ⟩ with φ and λ
        // standing anywhere in the layer: at its top. Then no gate is
        // undone on its own: everything between two layers with angles is
        // undone as one fused, cache-blocked program, as a forward run
        // applies it. `at`: φ and every λ stand after operation `at − 1`.
        let mut at = ops.len();
        let mut top = ops.len();
        let mut used = vec![false; n as usize];
        while top > first {
            used.iter_mut().for_each(|u| *u = false);
            let mut bottom = top;
            while bottom > first {
                if let Operation::Gate {
                    qubits, controls, ..
                } = &ops[bottom - 1]
                {
                    let touched = qubits.iter().chain(controls.iter().map(|c| &c.qubit));
                    if touched.clone().any(|&q| used[q as usize]) {
                        break;
                    }
                    touched.for_each(|&q| used[q as usize] = true);
                }
                bottom -= 1;
            }
            if wanted[bottom..top].iter().any(|w| !w.is_empty()) {
                let segment = self.inverse_program::<F>(n, &ops[top..at]);
                phi.apply_program(&segment, par);
                for lambda in &mut lambdas {
                    lambda.apply_program(&segment, par);
                }
                at = top;
                // Every angle's term of the layer, in one sweep per λ.
                let mut found = Vec::new();
                for (j, op) in ops.iter().enumerate().take(top).skip(bottom) {
                    let Operation::Gate {
                        gate:
                            gate @ Gate::Standard {
                                gate: standard,
                                params,
                            },
                        qubits,
                        controls,
                    } = op
                    else {
                        continue;
                    };
                    let (base, targets, all_controls) = split_controls(gate, qubits, controls);
                    let inverse = base.adjoint();
                    for &(slot, param) in &wanted[j] {
                        let m = derivative(*standard, params, param).matmul(&inverse);
                        found.push((slot, targets, all_controls.clone(), m));
                    }
                }
                let terms: Vec<Term<'_>> = found
                    .iter()
                    .map(|(_, targets, controls, m)| Term {
                        targets,
                        controls,
                        m,
                    })
                    .collect();
                for (lambda, result) in lambdas.iter().zip(&mut results) {
                    let values = matrix_elements(lambda, &phi, &terms, par);
                    for ((slot, ..), g) in found.iter().zip(values) {
                        result.angles[*slot] = 2.0 * g.re;
                    }
                }
            }
            top = bottom;
            report(top)?;
        }
        Ok(results)
    }
}

impl Simulator {
    /// The inverses of the gates of `ops`, last first, compiled (fused and
    /// cache-blocked) as a forward run would be. Barriers, final
    /// measurements and resets of untouched qubits change nothing here.
    fn inverse_program<F: Float>(&self, num_qubits: u32, ops: &[Operation]) -> Program {
        let inverses = ops
            .iter()
            .rev()
            .filter_map(|op| match op {
                Operation::Gate {
                    gate,
                    qubits,
                    controls,
                } => Some(undo(gate, qubits, controls)),
                _ => None,
            })
            .collect();
        Program::compile_gates(
            inverses,
            num_qubits,
            self.fusion(),
            self.fusion()
                .blocking
                .shape::<F>(self.parallelism().num_threads()),
        )
    }
}

/// The inverse of one gate as a kernel operation.
fn undo(gate: &Gate, qubits: &[Qubit], controls: &[Control]) -> KernelOp {
    let (base, targets, all_controls) = split_controls(gate, qubits, controls);
    KernelOp::from_matrix(&base.adjoint(), targets, &all_controls)
}

/// Passes the forward run's progress on with the backward walk's
/// operations added to the plan, and keeps the forward plan's size.
struct Forward<'a> {
    inner: &'a dyn Monitor,
    backward: u64,
    planned: &'a AtomicU64,
}

impl Monitor for Forward<'_> {
    fn on_progress(&self, progress: Progress) -> ControlFlow<()> {
        self.planned.store(progress.planned, Ordering::Relaxed);
        self.inner.on_progress(Progress {
            applied: progress.applied,
            planned: progress.planned + self.backward,
        })
    }
}

/// `H|ψ⟩` as a new state (not normalised): for a Pauli string with X-or-Y
/// mask `f`, Z-or-Y mask `z` and `y` factors of Y,
/// `(Pψ)[i] = i^y (−1)^{|(i⊕f) ∧ z|} ψ[i⊕f]`.
fn apply_observable<F: Float>(
    state: &StateVector<F>,
    h: &PauliSum,
    budget: Option<u64>,
) -> Result<StateVector<F>, SimError> {
    let masks: Vec<(usize, usize, Complex64)> = h
        .terms
        .iter()
        .map(|t| {
            let (flip, z, ys) = t.masks();
            let phase = [
                Complex64::new(1.0, 0.0),
                Complex64::new(0.0, 1.0),
                Complex64::new(-1.0, 0.0),
                Complex64::new(0.0, -1.0),
            ][ys as usize % 4];
            (flip, z, phase * t.coefficient)
        })
        .collect();
    StateVector::from_fn(state.num_qubits(), budget, |i| {
        let mut out = Complex64::new(0.0, 0.0);
        for &(flip, z, w) in &masks {
            let src = i ^ flip;
            let a = state.amp(src);
            let v = w * Complex64::new(a.re.to_f64(), a.im.to_f64());
            if (src & z).count_ones() % 2 == 1 {
                out -= v;
            } else {
                out += v;
            }
        }
        out
    })
}

/// The layout of a matrix element's sum: the fixed qubits (targets and
/// controls) in increasing order, the index bits the controls require, and
/// the index offset of each of the matrix's columns, all in units of
/// `1 << shift` (amplitudes: 0; blocks: `LOG_LANES`).
struct Layout {
    fixed: Vec<u32>,
    want: usize,
    offsets: Vec<usize>,
    items: usize,
}

impl Layout {
    fn new(n: u32, targets: &[Qubit], controls: &[Control], shift: u32) -> Layout {
        let mut fixed: Vec<u32> = targets
            .iter()
            .copied()
            .chain(controls.iter().map(|c| c.qubit))
            .map(|q| q - shift)
            .collect();
        fixed.sort_unstable();
        let want = controls
            .iter()
            .filter(|c| c.on)
            .map(|c| 1usize << (c.qubit - shift))
            .sum();
        let offsets = (0..1usize << targets.len())
            .map(|r| {
                targets
                    .iter()
                    .enumerate()
                    .filter(|(b, _)| r >> b & 1 == 1)
                    .map(|(_, &q)| 1usize << (q - shift))
                    .sum()
            })
            .collect();
        let items = 1usize << ((n - shift) as usize - fixed.len());
        Layout {
            fixed,
            want,
            offsets,
            items,
        }
    }

    /// The index (in units) of the `j`-th basis state of the sum with every
    /// target bit 0: the free bits of `j` spread around the fixed ones.
    #[inline(always)]
    fn base(&self, j: usize) -> usize {
        let mut base = j;
        for &p in &self.fixed {
            base = (base & ((1 << p) - 1)) | ((base >> p) << (p + 1));
        }
        base | self.want
    }
}

/// `⟨bra| (C ⊗ M) |ket⟩`, where `M` acts on `targets` (bit `i` of its index
/// is `targets[i]`) and `C` projects onto the basis states where every
/// control holds, amplitude by amplitude, in fixed pieces (the same sum for
/// any thread count): the plain form, and the reference of
/// [`matrix_elements`]' sweep.
pub(crate) fn matrix_element_amplitudes<F: Float>(
    bra: &StateVector<F>,
    ket: &StateVector<F>,
    targets: &[Qubit],
    controls: &[Control],
    m: &GateMatrix,
    par: &Parallelism,
) -> Complex64 {
    let (dim, data) = (m.dim(), m.data());
    let layout = Layout::new(ket.num_qubits(), targets, controls, 0);
    let amp = |s: &StateVector<F>, i: usize| {
        let a = s.amp(i);
        Complex64::new(a.re.to_f64(), a.im.to_f64())
    };
    let pieces = par.map_pieces(layout.items, 1 << 12, dim, |range| {
        let mut acc = Complex64::new(0.0, 0.0);
        let mut column = vec![Complex64::new(0.0, 0.0); dim];
        for j in range {
            let base = layout.base(j);
            for (c, v) in column.iter_mut().enumerate() {
                *v = amp(ket, base | layout.offsets[c]);
            }
            for r in 0..dim {
                let row = &data[r * dim..(r + 1) * dim];
                let mv: Complex64 = row.iter().zip(&column).map(|(x, v)| x * v).sum();
                acc += amp(bra, base | layout.offsets[r]).conj() * mv;
            }
        }
        acc
    });
    pieces.into_iter().sum()
}

/// One term of [`matrix_elements`]: `⟨bra| (C ⊗ M) |ket⟩` as in
/// [`matrix_element_amplitudes`].
pub(crate) struct Term<'a> {
    pub(crate) targets: &'a [Qubit],
    pub(crate) controls: &'a [Control],
    pub(crate) m: &'a GateMatrix,
}

/// [`matrix_element_amplitudes`] of every term, with one sweep over the two states
/// among the terms whose qubits are all at or above `LOG_LANES`: each block
/// is read once for all of them, and a term's partner blocks (a power of
/// two apart) are mostly still in cache when the sweep reaches them, where
/// one sweep per term would stream both states from memory for each. The
/// others go one at a time, amplitude by amplitude.
pub(crate) fn matrix_elements<F: Float>(
    bra: &StateVector<F>,
    ket: &StateVector<F>,
    terms: &[Term<'_>],
    par: &Parallelism,
) -> Vec<Complex64> {
    let n = ket.num_qubits();
    let block_level = |t: &Term<'_>| {
        n >= F::LOG_LANES
            && t.targets
                .iter()
                .chain(t.controls.iter().map(|c| &c.qubit))
                .all(|&q| q >= F::LOG_LANES)
    };
    let mut out = vec![Complex64::new(0.0, 0.0); terms.len()];
    let mut swept = Vec::new();
    for (k, t) in terms.iter().enumerate() {
        if block_level(t) {
            swept.push(k);
        } else {
            out[k] = matrix_element_amplitudes(bra, ket, t.targets, t.controls, t.m, par);
        }
    }
    if swept.is_empty() {
        return out;
    }
    let splat = |x: f64| F::splat(F::from_f64(x));
    let shift = F::LOG_LANES;
    let prepared: Vec<SweptTerm<F>> = swept
        .iter()
        .map(|&k| {
            let t = &terms[k];
            let layout = Layout::new(n, t.targets, t.controls, shift);
            SweptTerm {
                targets: t.targets.iter().map(|&q| 1usize << (q - shift)).sum(),
                controls: t.controls.iter().map(|c| 1usize << (c.qubit - shift)).sum(),
                want: layout.want,
                offsets: layout.offsets,
                entries: t
                    .m
                    .data()
                    .iter()
                    .map(|z| (splat(z.re), splat(z.im)))
                    .collect(),
            }
        })
        .collect();
    let pieces = at_level!(crate::cpu::simd_level(), sweep::<F>)(bra, ket, &prepared, par);
    for piece in pieces {
        for (&k, v) in swept.iter().zip(piece) {
            out[k] += v;
        }
    }
    out
}

/// A term of [`matrix_elements`]' sweep: which blocks it reads (block-index
/// masks of its targets and controls, the controls' required bits, the
/// partner offsets) and its matrix, each entry splat over a block half.
struct SweptTerm<F: Float> {
    targets: usize,
    controls: usize,
    want: usize,
    offsets: Vec<usize>,
    entries: Vec<(F::V, F::V)>,
}

/// The sweep of [`matrix_elements`] with the vectors `V`: per piece of
/// blocks, the sum of every term's `⟨bra|(C ⊗ M)|ket⟩` over it.
fn sweep<F: Float, V: Lanes<F>>(
    bra: &StateVector<F>,
    ket: &StateVector<F>,
    prepared: &[SweptTerm<F>],
    par: &Parallelism,
) -> Vec<Vec<Complex64>> {
    let most = prepared.iter().map(|p| p.offsets.len()).max().unwrap_or(1);
    par.map_pieces(ket.block_count(), 256, F::LANES * prepared.len(), |range| {
        V::vectorize(
            #[inline(always)]
            || {
                let zero = V::splat(F::from_f64(0.0));
                let mut acc = vec![(zero, zero); prepared.len()];
                let mut column = vec![(zero, zero); most];
                for b in range {
                    for (p, (acc_re, acc_im)) in prepared.iter().zip(acc.iter_mut()) {
                        if b & p.targets != 0 || b & p.controls != p.want {
                            continue;
                        }
                        let dim = p.offsets.len();
                        for (c, v) in column[..dim].iter_mut().enumerate() {
                            let k = ket.block(b | p.offsets[c]);
                            *v = (V::load(&k.re), V::load(&k.im));
                        }
                        for r in 0..dim {
                            let (mut re, mut im) = (zero, zero);
                            for ((mre, mim), &(vre, vim)) in
                                p.entries[r * dim..(r + 1) * dim].iter().zip(&column[..dim])
                            {
                                let (mre, mim) = (V::load(mre), V::load(mim));
                                re = mre.mul_add(vre, mim.mul_neg_add(vim, re));
                                im = mre.mul_add(vim, mim.mul_add(vre, im));
                            }
                            let w = bra.block(b | p.offsets[r]);
                            let (wre, wim) = (V::load(&w.re), V::load(&w.im));
                            *acc_re = wre.mul_add(re, wim.mul_add(im, *acc_re));
                            *acc_im = wre.mul_add(im, wim.mul_neg_add(re, *acc_im));
                        }
                    }
                }
                // A loop, not `map`: a closure here would be compiled
                // without the level's instructions (see `kernels::lanes`).
                let mut sums = Vec::with_capacity(acc.len());
                for &(re, im) in &acc {
                    sums.push(Complex64::new(lane_sum::<F, V>(re), lane_sum::<F, V>(im)));
                }
                sums
            },
        )
    })
}

/// `∂B/∂θ_a` for the base matrix `B` of `gate` (see
/// [`Gate::controlled_base`]; the controls are not differentiated).
///
/// Every entry of every gate of the catalogue, as a function of one angle
/// `θ`, is a trigonometric polynomial of degree at most 2 in `θ/2`
/// (frequencies 0, ½ and 1: rotations, phases, `U`'s three angles, `cu`'s
/// phase). For such functions the general parameter-shift rule (Wierichs,
/// Izaac, Wang and Lin, Quantum 6, 677 (2022), eq. 9 with R = 2) is exact:
/// `f'(x) = Σ_μ (−1)^{μ−1} f(x + x_μ) / (8 sin²(x_μ/2))` with
/// `x_μ = (2μ−1)π/4` in `x = θ/2`. Four matrices of the catalogue give the
/// derivative of any gate without a formula per gate.
pub(crate) fn derivative(gate: StandardGate, params: &[f64], a: usize) -> GateMatrix {
    let mut data: Vec<Complex64> = Vec::new();
    let mut shifted: Vec<f64> = params.to_vec();
    for mu in 1..=4 {
        let x_mu = (2 * mu - 1) as f64 * PI / 4.0;
        let sign = if mu % 2 == 1 { 1.0 } else { -1.0 };
        // d/dθ = ½ d/dx.
        let weight = 0.5 * sign / (8.0 * (x_mu / 2.0).sin().powi(2));
        shifted[a] = params[a] + 2.0 * x_mu;
        let (_, m) = gate.controlled_base(&shifted);
        if data.is_empty() {
            data = vec![Complex64::new(0.0, 0.0); m.data().len()];
        }
        for (d, x) in data.iter_mut().zip(m.data()) {
            *d += x * weight;
        }
    }
    let qubits = data.len().trailing_zeros() / 2;
    GateMatrix::new(qubits, data).expect("the shape of a catalogue matrix")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kettle_ir::Circuit;

    fn close(a: Complex64, b: Complex64, tol: f64) -> bool {
        (a - b).norm() <= tol
    }

    #[test]
    fn derivative_matches_central_differences_for_every_gate() {
        let angles = [0.3, -1.1, 2.5, 0.7];
        let h = 1e-5;
        for g in StandardGate::ALL {
            let p = &angles[..g.num_params()];
            for a in 0..p.len() {
                let d = derivative(g, p, a);
                let (mut up, mut down) = (p.to_vec(), p.to_vec());
                up[a] += h;
                down[a] -= h;
                let (_, mu) = g.controlled_base(&up);
                let (_, md) = g.controlled_base(&down);
                for (i, x) in d.data().iter().enumerate() {
                    let fd = (mu.data()[i] - md.data()[i]) / (2.0 * h);
                    assert!(close(*x, fd, 1e-9), "{} angle {a}: {x} vs {fd}", g.name());
                }
            }
        }
        // And exactly, where the derivative is known: ∂Rx/∂θ = −i/2 X Rx.
        let d = derivative(StandardGate::Rx, &[0.4], 0);
        let (s, c) = 0.2f64.sin_cos();
        let want = [
            Complex64::new(-s / 2.0, 0.0),
            Complex64::new(0.0, -c / 2.0),
            Complex64::new(0.0, -c / 2.0),
            Complex64::new(-s / 2.0, 0.0),
        ];
        for (x, w) in d.data().iter().zip(want) {
            assert!(close(*x, w, 1e-15), "{x} vs {w}");
        }
    }

    #[test]
    fn matrix_element_matches_a_dense_reference() {
        let n = 5;
        let circuit = Circuit::new(n)
            .h(0)
            .ry(0.7, 1)
            .cx(0, 2)
            .rx(1.3, 3)
            .cx(3, 4)
            .rz(0.4, 4);
        let ket: StateVector<f64> = Simulator::new().statevector(&circuit).unwrap();
        let bra: StateVector<f64> = Simulator::new()
            .statevector(&Circuit::new(n).h(4).ry(-0.3, 2).cx(4, 1))
            .unwrap();
        let m = derivative(StandardGate::U, &[0.3, 0.2, -0.9], 0);
        let targets = [3];
        let controls = [Control::one(1), Control::zero(4)];
        for par in [Parallelism::Sequential, Parallelism::threads(3).unwrap()] {
            let term = Term {
                targets: &targets,
                controls: &controls,
                m: &m,
            };
            let got = matrix_elements(&bra, &ket, &[term], &par)[0];
            // Reference: build (C ⊗ M)|ket⟩ amplitude by amplitude.
            let (b, k) = (bra.to_vec_f64(), ket.to_vec_f64());
            let mut want = Complex64::new(0.0, 0.0);
            for (i, bi) in b.iter().enumerate() {
                if i >> 1 & 1 != 1 || i >> 4 & 1 != 0 {
                    continue;
                }
                let r = i >> 3 & 1;
                for c in 0..2 {
                    let j = (i & !(1 << 3)) | (c << 3);
                    want += bi.conj() * m.get(r, c) * k[j];
                }
            }
            assert!(close(got, want, 1e-14), "{got} vs {want}");
        }
    }

    /// A product of distinct rotations entangled by a CNOT ladder: every
    /// amplitude differs, so a term misread shows.
    fn entangled(n: u32) -> Circuit {
        let mut c = Circuit::new(n);
        for q in 0..n {
            c = c.ry(0.3 + 0.7 * f64::from(q), q).rz(0.2 * f64::from(q), q);
        }
        for q in 0..n - 1 {
            c = c.cx(q, q + 1);
        }
        c
    }

    /// The block path (every fixed qubit above the lanes) against the plain
    /// one, in both precisions, with and without threads.
    fn blocks_match_amplitudes<F: Float>(tol: f64) {
        // Fixed qubits from 4 up: above the lanes of every build (AVX-512 f32 has 16).
        let c = entangled(10);
        let ket: StateVector<F> = Simulator::new().statevector(&c).unwrap();
        let bra: StateVector<F> = Simulator::new()
            .statevector(&c.clone().h(5).rx(0.9, 9))
            .unwrap();
        let cases: [(&[Qubit], &[Control], GateMatrix); 3] = [
            (
                &[4],
                &[Control::one(5)],
                derivative(StandardGate::U, &[0.3, 0.2, -0.9], 1),
            ),
            (
                &[9, 4],
                &[Control::zero(6)],
                derivative(StandardGate::Rzx, &[0.8], 0),
            ),
            (&[7], &[], derivative(StandardGate::Rx, &[1.1], 0)),
        ];
        for (targets, controls, m) in &cases {
            let plain = matrix_element_amplitudes(
                &bra,
                &ket,
                targets,
                controls,
                m,
                &Parallelism::Sequential,
            );
            for par in [Parallelism::Sequential, Parallelism::threads(2).unwrap()] {
                let term = Term {
                    targets,
                    controls,
                    m,
                };
                let fast = matrix_elements(&bra, &ket, &[term], &par)[0];
                assert!(close(fast, plain, tol), "{targets:?}: {fast} vs {plain}");
            }
        }
    }

    #[test]
    fn matrix_elements_in_one_sweep_match_one_at_a_time() {
        let c = entangled(11);
        let ket: StateVector<f64> = Simulator::new().statevector(&c).unwrap();
        let bra: StateVector<f64> = Simulator::new().statevector(&c.clone().h(6)).unwrap();
        let ms = [
            derivative(StandardGate::Rx, &[0.4], 0),
            derivative(StandardGate::U, &[0.3, 0.2, -0.9], 2),
            derivative(StandardGate::Rzz, &[1.2], 0),
            derivative(StandardGate::Ry, &[-0.6], 0),
        ];
        let cases: [(&[Qubit], &[Control]); 4] = [
            (&[0], &[]),
            (&[5], &[Control::zero(9), Control::one(4)]),
            (&[10, 6], &[]),
            (&[8], &[Control::one(1)]),
        ];
        let terms: Vec<Term<'_>> = cases
            .iter()
            .zip(&ms)
            .map(|((targets, controls), m)| Term {
                targets,
                controls,
                m,
            })
            .collect();
        for par in [Parallelism::Sequential, Parallelism::threads(2).unwrap()] {
            let together = matrix_elements(&bra, &ket, &terms, &par);
            for (t, got) in terms.iter().zip(together) {
                let alone = matrix_element_amplitudes(&bra, &ket, t.targets, t.controls, t.m, &par);
                assert!(
                    close(got, alone, 1e-14),
                    "{:?}: {got} vs {alone}",
                    t.targets
                );
            }
        }
    }

    #[test]
    fn matrix_element_blocks_match_amplitudes() {
        blocks_match_amplitudes::<f64>(1e-14);
        blocks_match_amplitudes::<f32>(1e-6);
    }

    /// ⟨H⟩ of `circuit` with angle `a` moved by `shift`.
    fn shifted_value(circuit: &Circuit, a: AngleRef, shift: f64, h: &PauliSum) -> f64 {
        let mut ops = circuit.ops().to_vec();
        if let Operation::Gate {
            gate: Gate::Standard { params, .. },
            ..
        } = &mut ops[a.op]
        {
            params[a.param] += shift;
        }
        let mut c = Circuit::new(circuit.num_qubits()).creg("c", circuit.num_clbits());
        c.append_ops(ops);
        let s: StateVector<f64> = Simulator::new().statevector(&c).unwrap();
        s.expectation(h, &Parallelism::Sequential).unwrap()
    }

    #[test]
    fn gradients_match_finite_differences_on_a_mixed_circuit() {
        use kettle_ir::{Gate as G, StandardGate as S};
        let g = |s: S, p: &[f64], q: &[Qubit], c: &[Control]| Operation::Gate {
            gate: G::standard(s, p),
            qubits: q.to_vec(),
            controls: c.to_vec(),
        };
        let mut circuit = Circuit::new(4).creg("c", 1);
        for op in [
            g(S::H, &[], &[0], &[]),
            g(S::Ry, &[0.4], &[1], &[]),
            g(S::U, &[0.3, -0.8, 1.9], &[2], &[]),
            g(S::Crx, &[1.1], &[0, 3], &[]),
            g(S::Rzz, &[0.6], &[1, 2], &[]),
            g(S::Cu, &[0.5, 0.2, -0.4, 0.9], &[3, 1], &[]),
            g(S::P, &[0.7], &[2], &[Control::zero(0)]),
            g(S::Rx, &[-1.2], &[3], &[Control::one(2), Control::one(1)]),
            g(S::GlobalPhase, &[0.3], &[], &[Control::one(0)]),
            g(S::GlobalPhase, &[0.8], &[], &[]),
            Operation::Measure { qubit: 0, clbit: 0 },
        ] {
            circuit.push(op);
        }
        let observables: Vec<PauliSum> = ["Z0 Z1 + 0.5*X2", "Y3 X0 - 0.25*Z2 + 2"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut angles = Vec::new();
        for (op, o) in circuit.ops().iter().enumerate() {
            if let Operation::Gate {
                gate: G::Standard { params, .. },
                ..
            } = o
            {
                angles.extend((0..params.len()).map(|param| AngleRef { op, param }));
            }
        }
        for par in [Parallelism::Sequential, Parallelism::threads(2).unwrap()] {
            let sim = Simulator::new().with_parallelism(par);
            let got = sim
                .adjoint_gradient::<f64>(&circuit, &observables, &angles)
                .unwrap();
            for (h, r) in observables.iter().zip(&got) {
                assert!((r.value - shifted_value(&circuit, angles[0], 0.0, h)).abs() < 1e-12);
                for (a, g) in angles.iter().zip(&r.angles) {
                    let e = 1e-5;
                    let fd = (shifted_value(&circuit, *a, e, h)
                        - shifted_value(&circuit, *a, -e, h))
                        / (2.0 * e);
                    assert!((g - fd).abs() < 1e-8, "{a:?} of {h}: {g} vs {fd}");
                }
            }
        }
        // The uncontrolled global phase changes no expectation value.
        let last = angles.last().unwrap();
        assert_eq!(circuit.ops()[last.op], g(S::GlobalPhase, &[0.8], &[], &[]));
        let f32_result = Simulator::new()
            .adjoint_gradient::<f32>(&circuit, &observables, &angles)
            .unwrap();
        assert!(f32_result[0].angles.last().unwrap().abs() < 1e-6);
    }

    /// Long runs of plain gates between the angles are undone as fused,
    /// cache-blocked programs: on a state larger than one chunk, from any
    /// state (not |0…0⟩).
    #[test]
    fn fused_segments_on_a_state_larger_than_a_chunk() {
        let n = 16;
        let mut circuit = Circuit::new(n);
        let mut angles = Vec::new();
        for layer in 0..3u32 {
            for q in 0..n {
                circuit = circuit.h(q);
            }
            for q in 0..n - 1 {
                circuit = circuit.cx(q, q + 1);
            }
            for q in [0, 7, n - 1] {
                angles.push(AngleRef {
                    op: circuit.ops().len(),
                    param: 0,
                });
                circuit = circuit.ry(0.3 + f64::from(layer + q) * 0.41, q);
            }
            circuit = circuit.cz(2, n - 2).t(5);
        }
        let h: PauliSum = "Z0 X15 + 0.5*Y7 Z8".parse().unwrap();
        let got = Simulator::new()
            .with_parallelism(Parallelism::threads(2).unwrap())
            .adjoint_gradient::<f64>(&circuit, std::slice::from_ref(&h), &angles)
            .unwrap();
        for (a, g) in angles.iter().zip(&got[0].angles) {
            let e = 1e-5;
            let fd = (shifted_value(&circuit, *a, e, &h) - shifted_value(&circuit, *a, -e, &h))
                / (2.0 * e);
            assert!((g - fd).abs() < 1e-8, "{a:?}: {g} vs {fd}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_differentiate() {
        let z: PauliSum = "Z0".parse().unwrap();
        let sim = Simulator::new();
        let mid = Circuit::new(1)
            .creg("c", 1)
            .rx(0.3, 0)
            .measure(0, 0)
            .rx(0.2, 0);
        let err = sim
            .adjoint_gradient::<f64>(
                &mid,
                std::slice::from_ref(&z),
                &[AngleRef { op: 0, param: 0 }],
            )
            .unwrap_err();
        assert!(matches!(err, SimError::Gradient(_)), "{err}");
        let c = Circuit::new(1).h(0).rx(0.3, 0);
        for bad in [
            AngleRef { op: 0, param: 0 },
            AngleRef { op: 1, param: 1 },
            AngleRef { op: 9, param: 0 },
        ] {
            assert!(matches!(
                sim.adjoint_gradient::<f64>(&c, std::slice::from_ref(&z), &[bad]),
                Err(SimError::Gradient(_))
            ));
        }
        let far: PauliSum = "Z3".parse().unwrap();
        assert!(matches!(
            sim.adjoint_gradient::<f64>(&c, &[far], &[]),
            Err(SimError::QubitOutOfRange { .. })
        ));
        let tight =
            Simulator::new().with_memory_budget(Some(2 * StateVector::<f64>::bytes_for(1) as u64));
        assert!(matches!(
            tight.adjoint_gradient::<f64>(&c, &[z.clone(), z], &[]),
            Err(SimError::MemoryBudget { .. })
        ));
    }
}
