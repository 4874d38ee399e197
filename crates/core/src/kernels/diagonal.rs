//! Diagonal matrices (rz, p, cz, cp, rzz, fused phase runs, collapse after a
//! measurement): one complex multiplication per amplitude, no data movement
//! between blocks.

use num_complex::Complex64;

use super::{BlockPtr, Split, cmul, coefficient_block};
use crate::float::Float;
use crate::par::Parallelism;
use crate::state::Block;

/// Per high pattern, the factor of each lane (1 where low controls fail).
pub(super) fn coefficients<F: Float>(split: &Split, diag: &[Complex64]) -> Vec<Block<F>> {
    (0..split.nb())
        .map(|j| {
            coefficient_block::<F>(|l| {
                if split.lane_controls_hold(l) {
                    diag[split.row(j, l)]
                } else {
                    Complex64::new(1.0, 0.0)
                }
            })
        })
        .collect()
}

pub(super) fn run<F: Float>(ptr: BlockPtr<F>, split: &Split, coef: &[Block<F>], par: &Parallelism) {
    par.for_each_range(split.num_groups, split.nb() * F::LANES, |groups| {
        for g in groups {
            let base = split.group_base(g);
            for (c, &o) in coef.iter().zip(&split.offsets) {
                // SAFETY: each group's blocks belong to it alone, and each
                // range of groups to one thread.
                unsafe { ptr.store(base + o, cmul(c, &ptr.load(base + o))) };
            }
        }
    });
}
