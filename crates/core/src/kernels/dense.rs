//! Dense matrices: each output block is a sum of coefficient × (lane-permuted)
//! input block over every input block of the group and every low-target flip.
//!
//! The coefficients are expanded once per application into per-lane blocks
//! (qsim's "expanded matrix"), so the inner loop is pure vertical FMAs. Group
//! sizes up to 64 blocks get a copy of the loop with the size as a constant.
//!
//! In cache the multiply-adds are the whole cost, so each term's coefficient
//! block is classified once ([`Part`]): a zero term costs nothing, a real or
//! purely imaginary one two multiply-adds instead of four. Rotations about X
//! and Y, Hadamards, CZ and CX and their tensor products are such matrices;
//! rqc's fused blocks then cost half.

use num_complex::Complex64;

use super::{BlockPtr, Lanes, Reg, Split, cmul_add, coefficient_block, for_each_run_at, xor_lanes};
use crate::float::Float;
use crate::par::Parallelism;
use crate::state::Block;

/// Runs the loop unrolled for the group size and the number of lane flips
/// where there is one (every block of up to 4 dense qubits has one).
pub(super) fn run<F: Float, V: Lanes<F>>(
    ptr: BlockPtr<F>,
    split: &Split,
    c: &Coefficients<F>,
    par: &Parallelism,
) {
    if let Some(parts) = &c.parts {
        return run_parts::<F, V>(ptr, split, &c.coef, parts, par);
    }
    let coef = &c.coef;
    match (split.nb(), split.perms.len()) {
        (1, 1) => run_nb::<F, V, 1, 1, false>(ptr, split, coef, &[], par),
        (1, 2) => run_nb::<F, V, 1, 2, false>(ptr, split, coef, &[], par),
        (1, 4) => run_nb::<F, V, 1, 4, false>(ptr, split, coef, &[], par),
        (1, 8) => run_nb::<F, V, 1, 8, false>(ptr, split, coef, &[], par),
        (1, 16) => run_nb::<F, V, 1, 16, false>(ptr, split, coef, &[], par),
        (2, 1) => run_nb::<F, V, 2, 1, false>(ptr, split, coef, &[], par),
        (2, 2) => run_nb::<F, V, 2, 2, false>(ptr, split, coef, &[], par),
        (2, 4) => run_nb::<F, V, 2, 4, false>(ptr, split, coef, &[], par),
        (2, 8) => run_nb::<F, V, 2, 8, false>(ptr, split, coef, &[], par),
        (4, 1) => run_nb::<F, V, 4, 1, false>(ptr, split, coef, &[], par),
        (4, 2) => run_nb::<F, V, 4, 2, false>(ptr, split, coef, &[], par),
        (4, 4) => run_nb::<F, V, 4, 4, false>(ptr, split, coef, &[], par),
        (8, 1) => run_nb::<F, V, 8, 1, false>(ptr, split, coef, &[], par),
        (8, 2) => run_nb::<F, V, 8, 2, false>(ptr, split, coef, &[], par),
        (16, 1) => run_nb::<F, V, 16, 1, false>(ptr, split, coef, &[], par),
        (32, 1) => run_nb::<F, V, 32, 1, false>(ptr, split, coef, &[], par),
        (64, 1) => run_nb::<F, V, 64, 1, false>(ptr, split, coef, &[], par),
        _ => run_any::<F, V>(ptr, split, coef, par),
    }
}

/// Which parts of a term's coefficient block are non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    /// Every lane zero: the term adds nothing.
    Zero,
    /// Every lane real.
    Real,
    /// Every lane purely imaginary.
    Imag,
    /// Anything else.
    Complex,
}

/// A dense operation's terms: `coef[(j·nb + h)·np + p]` is what input block
/// `h`, lanes flipped by `perms[p]`, contributes to output block `j`, and
/// `parts[i]` which parts of `coef[i]` are non-zero, or `None` when every
/// term is complex (or the group too large for the per-term loop).
pub(super) struct Coefficients<F: Float> {
    pub(super) coef: Vec<Block<F>>,
    pub(super) parts: Option<Vec<Part>>,
}

/// The group shapes `(blocks, lane flips)` that have a loop looking at each
/// term's parts: those of up to 64 terms (`blocks² · flips`; larger ones
/// have too many to unroll three ways). `run_parts` has an arm for each.
const PART_SHAPES: [(usize, usize); 13] = [
    (1, 1),
    (1, 2),
    (1, 4),
    (1, 8),
    (1, 16),
    (2, 1),
    (2, 2),
    (2, 4),
    (2, 8),
    (4, 1),
    (4, 2),
    (4, 4),
    (8, 1),
];

/// Expands `m` for `split`, and classifies its terms.
pub(super) fn prepare<F: Float>(split: &Split, m: &[Complex64]) -> Coefficients<F> {
    let coef = coefficients::<F>(split, m);
    let parts: Vec<Part> = coef.iter().map(part).collect();
    let shape = (split.nb(), split.perms.len());
    let worth = PART_SHAPES.contains(&shape) && parts.iter().any(|&p| p != Part::Complex);
    Coefficients {
        coef,
        parts: worth.then_some(parts),
    }
}

fn part<F: Float>(b: &Block<F>) -> Part {
    let zero = |v: &F::V| (0..F::LANES).all(|l| F::lane(v, l).to_f64() == 0.0);
    match (zero(&b.re), zero(&b.im)) {
        (true, true) => Part::Zero,
        (false, true) => Part::Real,
        (true, false) => Part::Imag,
        (false, false) => Part::Complex,
    }
}

/// `coef[(j·nb + h)·np + p]`: what input block `h`, lanes flipped by
/// `perms[p]`, contributes to output block `j`.
fn coefficients<F: Float>(split: &Split, m: &[Complex64]) -> Vec<Block<F>> {
    let nb = split.nb();
    let dim = (m.len() as f64).sqrt() as usize;
    let mut coef = Vec::with_capacity(nb * nb * split.perms.len());
    for j in 0..nb {
        for h in 0..nb {
            for &pm in &split.perms {
                coef.push(coefficient_block::<F>(|l| {
                    if split.lane_controls_hold(l) {
                        m[split.row(j, l) * dim + split.row(h, l ^ pm)]
                    } else if j == h && pm == 0 {
                        Complex64::new(1.0, 0.0)
                    } else {
                        Complex64::new(0.0, 0.0)
                    }
                }));
            }
        }
    }
    coef
}

/// [`run`] for matrices with real, imaginary or zero terms, in the shapes
/// of [`PART_SHAPES`].
fn run_parts<F: Float, V: Lanes<F>>(
    ptr: BlockPtr<F>,
    split: &Split,
    coef: &[Block<F>],
    parts: &[Part],
    par: &Parallelism,
) {
    match (split.nb(), split.perms.len()) {
        (1, 1) => run_nb::<F, V, 1, 1, true>(ptr, split, coef, parts, par),
        (1, 2) => run_nb::<F, V, 1, 2, true>(ptr, split, coef, parts, par),
        (1, 4) => run_nb::<F, V, 1, 4, true>(ptr, split, coef, parts, par),
        (1, 8) => run_nb::<F, V, 1, 8, true>(ptr, split, coef, parts, par),
        (1, 16) => run_nb::<F, V, 1, 16, true>(ptr, split, coef, parts, par),
        (2, 1) => run_nb::<F, V, 2, 1, true>(ptr, split, coef, parts, par),
        (2, 2) => run_nb::<F, V, 2, 2, true>(ptr, split, coef, parts, par),
        (2, 4) => run_nb::<F, V, 2, 4, true>(ptr, split, coef, parts, par),
        (2, 8) => run_nb::<F, V, 2, 8, true>(ptr, split, coef, parts, par),
        (4, 1) => run_nb::<F, V, 4, 1, true>(ptr, split, coef, parts, par),
        (4, 2) => run_nb::<F, V, 4, 2, true>(ptr, split, coef, parts, par),
        (4, 4) => run_nb::<F, V, 4, 4, true>(ptr, split, coef, parts, par),
        (8, 1) => run_nb::<F, V, 8, 1, true>(ptr, split, coef, parts, par),
        // `prepare` gives parts to the shapes above only.
        _ => unreachable!("no per-term loop for this shape"),
    }
}

/// `NB` blocks per group, `NP` lane flips: every group's inputs (flipped
/// copies included) are loaded once, then each output block is one chain of
/// multiply-adds, stored as soon as it is done (row by row, so that only one
/// accumulator is live beside the inputs). With `PARTS`, each term's
/// multiply-adds are chosen by its [`Part`] in `parts`.
fn run_nb<F: Float, V: Lanes<F>, const NB: usize, const NP: usize, const PARTS: bool>(
    ptr: BlockPtr<F>,
    split: &Split,
    coef: &[Block<F>],
    parts: &[Part],
    par: &Parallelism,
) {
    let perms: [usize; NP] = std::array::from_fn(|p| split.perms[p]);
    let offsets: [usize; NB] = std::array::from_fn(|h| split.offsets[h]);
    let coef = &coef[..NB * NB * NP];
    let parts = if PARTS { &parts[..NB * NB * NP] } else { &[] };
    for_each_run_at::<F, V>(
        split,
        par,
        #[inline(always)]
        |base, len| {
            let mut at = [std::ptr::null_mut::<Block<F>>(); NB];
            for h in 0..NB {
                at[h] = ptr.at(base + offsets[h]);
            }
            for i in 0..len {
                // Plain loops, not `array::from_fn`: its closures are not
                // always inlined, and then every block goes through memory.
                let mut x = [[Reg::<V>::zero(); NP]; NB];
                for h in 0..NB {
                    // SAFETY: the run's blocks belong to this range of
                    // groups only, and `at[h] + i` stays inside the run's
                    // window of the buffer (see `Split::for_each_run`).
                    let b = Reg::load(unsafe { &*at[h].add(i) });
                    x[h][0] = b;
                    for p in 1..NP {
                        x[h][p] = xor_lanes(&b, perms[p]);
                    }
                }
                for j in 0..NB {
                    let row = &coef[j * NB * NP..][..NB * NP];
                    let mut acc = Reg::<V>::zero();
                    for h in 0..NB {
                        for p in 0..NP {
                            let c = &row[h * NP + p];
                            let x = &x[h][p];
                            if !PARTS {
                                cmul_add(&Reg::load(c), x, &mut acc);
                                continue;
                            }
                            // The branches go the same way for every group,
                            // so they cost next to nothing beside the
                            // multiply-adds they save.
                            match parts[(j * NB + h) * NP + p] {
                                Part::Zero => {}
                                Part::Real => {
                                    let re = V::load(&c.re);
                                    acc.re = re.mul_add(x.re, acc.re);
                                    acc.im = re.mul_add(x.im, acc.im);
                                }
                                Part::Imag => {
                                    let im = V::load(&c.im);
                                    acc.re = im.mul_neg_add(x.im, acc.re);
                                    acc.im = im.mul_add(x.re, acc.im);
                                }
                                Part::Complex => cmul_add(&Reg::load(c), x, &mut acc),
                            }
                        }
                    }
                    // SAFETY: as for the loads; every input is already loaded.
                    acc.store(unsafe { &mut *at[j].add(i) });
                }
            }
        },
    );
}

/// The same loop for groups of more than 64 blocks (explicit matrices on 7
/// or more high qubits), with scratch space per range instead of arrays.
fn run_any<F: Float, V: Lanes<F>>(
    ptr: BlockPtr<F>,
    split: &Split,
    coef: &[Block<F>],
    par: &Parallelism,
) {
    let nb = split.nb();
    let np = split.perms.len();
    par.for_each_range(split.num_groups, nb * F::LANES, |groups| {
        V::vectorize(
            #[inline(always)]
            || {
                let mut input = vec![Reg::<V>::zero(); nb];
                let mut out = vec![Reg::<V>::zero(); nb];
                for g in groups {
                    let base = split.group_base(g);
                    for h in 0..nb {
                        // SAFETY: as in `run`.
                        input[h] = unsafe { ptr.load(base + split.offsets[h]) };
                    }
                    out.fill(Reg::zero());
                    for h in 0..nb {
                        for (p, &pm) in split.perms.iter().enumerate() {
                            let x = if pm == 0 {
                                input[h]
                            } else {
                                xor_lanes(&input[h], pm)
                            };
                            for j in 0..nb {
                                cmul_add(&Reg::load(&coef[(j * nb + h) * np + p]), &x, &mut out[j]);
                            }
                        }
                    }
                    for j in 0..nb {
                        // SAFETY: as in `run`.
                        unsafe { ptr.store(base + split.offsets[j], out[j]) };
                    }
                }
            },
        );
    });
}
