//! Monomial matrices (x, y, cx, swap, ccx, cswap, iswap, fused permutation
//! runs): every output amplitude is one input amplitude, possibly with a
//! phase. Whole blocks move when only high qubits are involved; low targets
//! become lane shuffles; multiplications happen only where a phase or a lane
//! selection requires them.

use num_complex::Complex64;
use smallvec::SmallVec;

use super::{BlockPtr, Split, cmul_add, coefficient_block, xor_lanes};
use crate::float::Float;
use crate::par::Parallelism;
use crate::state::Block;

/// Where (part of) one output block comes from.
enum Term<F: Float> {
    /// Every lane is lane-permuted input block `h`, unchanged.
    Copy { h: usize, pm: usize },
    /// Some lanes come from permuted block `h`, weighted by `coef`
    /// (zero in the lanes other terms provide).
    Weighted { h: usize, pm: usize, coef: Block<F> },
}

pub(super) fn apply<F: Float>(
    blocks: &mut [Block<F>],
    split: &Split,
    src: &[usize],
    phase: &[Complex64],
    par: &Parallelism,
) {
    let nb = split.nb();
    let terms: Vec<SmallVec<[Term<F>; 2]>> =
        (0..nb).map(|j| terms_for(split, src, phase, j)).collect();
    let ptr = BlockPtr::new(blocks);
    par.for_each_range(split.num_groups, nb * F::LANES, |groups| {
        let mut input: SmallVec<[Block<F>; 16]> = SmallVec::from_elem(Block::zero(), nb);
        for g in groups {
            let base = split.group_base(g);
            for h in 0..nb {
                // SAFETY: each group's blocks belong to it alone, and each
                // range of groups to one thread.
                input[h] = unsafe { ptr.load(base + split.offsets[h]) };
            }
            for (j, terms) in terms.iter().enumerate() {
                let mut out = Block::zero();
                for t in terms {
                    match t {
                        Term::Copy { h, pm } => out = xor_lanes(&input[*h], *pm),
                        Term::Weighted { h, pm, coef } => {
                            cmul_add(coef, &xor_lanes(&input[*h], *pm), &mut out)
                        }
                    }
                }
                // SAFETY: as for the loads.
                unsafe { ptr.store(base + split.offsets[j], out) };
            }
        }
    });
}

/// The sources of output block `j`, grouped by (input block, lane flip).
fn terms_for<F: Float>(
    split: &Split,
    src: &[usize],
    phase: &[Complex64],
    j: usize,
) -> SmallVec<[Term<F>; 2]> {
    // Source (h, pm) and factor of every lane of output block j.
    let lanes: Vec<((usize, usize), Complex64)> = (0..F::LANES)
        .map(|l| {
            if !split.lane_controls_hold(l) {
                return ((j, 0), Complex64::new(1.0, 0.0));
            }
            let r = split.row(j, l);
            let (h, low_bits) = split.unrow(src[r]);
            let from_lane = (l & !split.low_mask) | low_bits;
            ((h, l ^ from_lane), phase[r])
        })
        .collect();
    let mut sources: SmallVec<[(usize, usize); 2]> = SmallVec::new();
    for (s, _) in &lanes {
        if !sources.contains(s) {
            sources.push(*s);
        }
    }
    let one = Complex64::new(1.0, 0.0);
    if let [(h, pm)] = sources[..]
        && lanes.iter().all(|(_, f)| *f == one)
    {
        return SmallVec::from_elem(Term::Copy { h, pm }, 1);
    }
    sources
        .into_iter()
        .map(|(h, pm)| Term::Weighted {
            h,
            pm,
            coef: coefficient_block::<F>(|l| {
                if lanes[l].0 == (h, pm) {
                    lanes[l].1
                } else {
                    Complex64::new(0.0, 0.0)
                }
            }),
        })
        .collect()
}

impl<F: Float> Clone for Term<F> {
    fn clone(&self) -> Self {
        match self {
            Term::Copy { h, pm } => Term::Copy { h: *h, pm: *pm },
            Term::Weighted { h, pm, coef } => Term::Weighted {
                h: *h,
                pm: *pm,
                coef: *coef,
            },
        }
    }
}
