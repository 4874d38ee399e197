//! Dense matrices: each output block is a sum of coefficient × (lane-permuted)
//! input block over every input block of the group and every low-target flip.
//!
//! The coefficients are expanded once per application into per-lane blocks
//! (qsim's "expanded matrix"), so the inner loop is pure vertical FMAs. Group
//! sizes up to 64 blocks get a copy of the loop with the size as a constant.

use num_complex::Complex64;

use super::{BlockPtr, Split, cmul_add, coefficient_block, xor_lanes};
use crate::float::Float;
use crate::par::Parallelism;
use crate::state::Block;

pub(super) fn apply<F: Float>(
    blocks: &mut [Block<F>],
    split: &Split,
    matrix: &[Complex64],
    par: &Parallelism,
) {
    let coef = coefficients::<F>(split, matrix);
    let ptr = BlockPtr::new(blocks);
    match split.nb() {
        1 => run::<F, 1>(ptr, split, &coef, par),
        2 => run::<F, 2>(ptr, split, &coef, par),
        4 => run::<F, 4>(ptr, split, &coef, par),
        8 => run::<F, 8>(ptr, split, &coef, par),
        16 => run::<F, 16>(ptr, split, &coef, par),
        32 => run::<F, 32>(ptr, split, &coef, par),
        64 => run::<F, 64>(ptr, split, &coef, par),
        _ => run_any(ptr, split, &coef, par),
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

fn run<F: Float, const NB: usize>(
    ptr: BlockPtr<F>,
    split: &Split,
    coef: &[Block<F>],
    par: &Parallelism,
) {
    let perms = &split.perms[..];
    let np = perms.len();
    let offsets: [usize; NB] = std::array::from_fn(|h| split.offsets[h]);
    par.for_each_range(split.num_groups, NB * F::LANES, |groups| {
        for g in groups {
            let base = split.group_base(g);
            // SAFETY: group `g` belongs to this range only, and its blocks
            // `base + offsets[h]` belong to no other group.
            let input: [Block<F>; NB] =
                std::array::from_fn(|h| unsafe { ptr.load(base + offsets[h]) });
            let mut out = [Block::<F>::zero(); NB];
            for h in 0..NB {
                for (p, &pm) in perms.iter().enumerate() {
                    let x = if pm == 0 {
                        input[h]
                    } else {
                        xor_lanes(&input[h], pm)
                    };
                    for j in 0..NB {
                        cmul_add(&coef[(j * NB + h) * np + p], &x, &mut out[j]);
                    }
                }
            }
            for j in 0..NB {
                // SAFETY: as for the loads.
                unsafe { ptr.store(base + offsets[j], out[j]) };
            }
        }
    });
}

/// The same loop for groups of more than 64 blocks (explicit matrices on 7
/// or more high qubits), with scratch space per range instead of arrays.
fn run_any<F: Float>(ptr: BlockPtr<F>, split: &Split, coef: &[Block<F>], par: &Parallelism) {
    let nb = split.nb();
    let np = split.perms.len();
    par.for_each_range(split.num_groups, nb * F::LANES, |groups| {
        let mut input = vec![Block::<F>::zero(); nb];
        let mut out = vec![Block::<F>::zero(); nb];
        for g in groups {
            let base = split.group_base(g);
            for h in 0..nb {
                // SAFETY: as in `run`.
                input[h] = unsafe { ptr.load(base + split.offsets[h]) };
            }
            out.fill(Block::zero());
            for h in 0..nb {
                for (p, &pm) in split.perms.iter().enumerate() {
                    let x = if pm == 0 {
                        input[h]
                    } else {
                        xor_lanes(&input[h], pm)
                    };
                    for j in 0..nb {
                        cmul_add(&coef[(j * nb + h) * np + p], &x, &mut out[j]);
                    }
                }
            }
            for j in 0..nb {
                // SAFETY: as in `run`.
                unsafe { ptr.store(base + split.offsets[j], out[j]) };
            }
        }
    });
}
