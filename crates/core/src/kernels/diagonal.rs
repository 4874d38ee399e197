//! Diagonal matrices (rz, p, cz, cp, rzz, fused phase runs, collapse after a
//! measurement): one complex multiplication per amplitude, no data movement
//! between blocks.

use num_complex::Complex64;

use super::{BlockPtr, Lanes, Reg, Split, cmul, coefficient_block, for_each_run_at};
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

pub(super) fn run<F: Float, V: Lanes<F>>(
    ptr: BlockPtr<F>,
    split: &Split,
    coef: &[Block<F>],
    par: &Parallelism,
) {
    for_each_run_at::<F, V>(
        split,
        par,
        #[inline(always)]
        |base, len| {
            for (c, &o) in coef.iter().zip(&split.offsets) {
                let c = Reg::<V>::load(c);
                let at = ptr.at(base + o);
                for i in 0..len {
                    // SAFETY: the run's blocks belong to this range of
                    // groups only, and `at + i` stays inside the run's
                    // window of the buffer (see `Split::for_each_run`).
                    let b = unsafe { &mut *at.add(i) };
                    cmul(&c, &Reg::load(b)).store(b);
                }
            }
        },
    );
}
