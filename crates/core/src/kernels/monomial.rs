//! Monomial matrices (x, y, cx, swap, ccx, cswap, iswap, fused permutation
//! runs): every output amplitude is one input amplitude, possibly with a
//! phase. Whole blocks move when only high qubits are involved; low targets
//! become lane shuffles; multiplications happen only where a phase or a lane
//! selection requires them.

use num_complex::Complex64;
use smallvec::SmallVec;

use super::{
    BlockPtr, Kind, Lanes, Reg, Split, all_zero, cmul_add, coefficient_block, for_each_run_at,
    xor_lanes,
};
use crate::float::Float;
use crate::par::Parallelism;
use crate::state::Block;

/// Where (part of) one output block comes from.
pub(super) enum Term<F: Float> {
    /// Every lane is lane-permuted input block `h`, unchanged.
    Copy { h: usize, pm: usize },
    /// Some lanes come from permuted block `h`, weighted by `coef`
    /// (zero in the lanes other terms provide).
    Weighted { h: usize, pm: usize, coef: Block<F> },
}

/// The sources of one output block.
pub(super) type Terms<F> = SmallVec<[Term<F>; 2]>;

/// Chooses how to run a monomial: pure moves, weighted terms, or (small
/// groups with lanes from several sources) the dense kernel.
pub(super) fn prepare<F: Float>(split: &Split, src: &[usize], phase: &[Complex64]) -> Kind<F> {
    let nb = split.nb();
    let terms: Vec<Terms<F>> = (0..nb).map(|j| terms_for(split, src, phase, j)).collect();
    let moves: Option<Vec<(usize, usize)>> = terms
        .iter()
        .map(|t| match t[..] {
            [Term::Copy { h, pm }] => Some((h, pm)),
            _ => None,
        })
        .collect();
    match moves {
        // Pure moves: no arithmetic at all.
        Some(moves) if nb <= 8 => Kind::Moves(moves),
        None if nb <= 8 => {
            // Lanes from several sources (a low control, say): for small
            // groups the dense kernel's unrolled loop does the same
            // multiply-adds faster.
            let dim = src.len();
            let mut dense = vec![Complex64::new(0.0, 0.0); dim * dim];
            for (r, (&c, &p)) in src.iter().zip(phase).enumerate() {
                dense[r * dim + c] = p;
            }
            Kind::Dense(super::dense::prepare(split, &dense))
        }
        _ => Kind::Terms(terms),
    }
}

/// Runs pure moves, unrolled for the group size.
pub(super) fn run_moves<F: Float, V: Lanes<F>>(
    ptr: BlockPtr<F>,
    split: &Split,
    moves: &[(usize, usize)],
    par: &Parallelism,
) {
    match split.nb() {
        1 => run_moves_nb::<F, V, 1>(ptr, split, moves, par),
        2 => run_moves_nb::<F, V, 2>(ptr, split, moves, par),
        4 => run_moves_nb::<F, V, 4>(ptr, split, moves, par),
        _ => run_moves_nb::<F, V, 8>(ptr, split, moves, par),
    }
}

/// Output block `j` is input block `moves[j].0` with lanes flipped by `moves[j].1`.
///
/// Blocks that stay where they are (`moves[j] == (j, 0)`: half of them for
/// a cx) are neither loaded nor stored. The moved blocks are a permutation
/// of themselves (a unitary permutation maps the moved set onto itself), so
/// when all of them read zero their places already hold zero and nothing is
/// stored: writing zeros would only make the kernel zero fresh pages, which
/// dominated sparse states such as GHZ.
fn run_moves_nb<F: Float, V: Lanes<F>, const NB: usize>(
    ptr: BlockPtr<F>,
    split: &Split,
    moves: &[(usize, usize)],
    par: &Parallelism,
) {
    let offsets: [usize; NB] = std::array::from_fn(|j| split.offsets[j]);
    // Load each output's source by address: indexing an array of loaded
    // blocks with a run-time index would force them through the stack.
    let sources: [usize; NB] = std::array::from_fn(|j| split.offsets[moves[j].0]);
    let flips: [usize; NB] = std::array::from_fn(|j| moves[j].1);
    let moved_here: [bool; NB] = std::array::from_fn(|j| moves[j] != (j, 0));
    if !moved_here.contains(&true) {
        return;
    }
    for_each_run_at::<F, V>(
        split,
        par,
        #[inline(always)]
        |base, len| {
            let mut from = [std::ptr::null_mut::<Block<F>>(); NB];
            let mut to = [std::ptr::null_mut::<Block<F>>(); NB];
            for j in 0..NB {
                from[j] = ptr.at(base + sources[j]);
                to[j] = ptr.at(base + offsets[j]);
            }
            for i in 0..len {
                let mut moved = [Block::<F>::zero(); NB];
                for j in 0..NB {
                    if moved_here[j] {
                        // SAFETY: the run's blocks belong to this range of
                        // groups only, and `from[j] + i` stays inside the
                        // run's window of the buffer (see
                        // `Split::for_each_run`); all loads precede the stores.
                        moved[j] = unsafe { *from[j].add(i) };
                    }
                }
                if all_zero(&moved[..]) {
                    continue;
                }
                for j in 0..NB {
                    if !moved_here[j] {
                        continue;
                    }
                    // SAFETY: as for the loads.
                    let to = unsafe { &mut *to[j].add(i) };
                    if flips[j] == 0 {
                        *to = moved[j];
                    } else {
                        xor_lanes(&Reg::<V>::load(&moved[j]), flips[j]).store(to);
                    }
                }
            }
        },
    );
}

/// The general case: every output block a sum of weighted, lane-flipped inputs.
pub(super) fn run_terms<F: Float, V: Lanes<F>>(
    ptr: BlockPtr<F>,
    split: &Split,
    terms: &[Terms<F>],
    par: &Parallelism,
) {
    let nb = split.nb();
    par.for_each_range(split.num_groups, nb * F::LANES, |groups| {
        V::vectorize(
            #[inline(always)]
            || {
                let mut input: SmallVec<[Reg<V>; 16]> = SmallVec::from_elem(Reg::zero(), nb);
                for g in groups {
                    let base = split.group_base(g);
                    for h in 0..nb {
                        // SAFETY: each group's blocks belong to it alone, and each
                        // range of groups to one thread.
                        input[h] = unsafe { ptr.load(base + split.offsets[h]) };
                    }
                    for (j, terms) in terms.iter().enumerate() {
                        let mut out = Reg::zero();
                        for t in terms {
                            match t {
                                Term::Copy { h, pm } => out = xor_lanes(&input[*h], *pm),
                                Term::Weighted { h, pm, coef } => cmul_add(
                                    &Reg::load(coef),
                                    &xor_lanes(&input[*h], *pm),
                                    &mut out,
                                ),
                            }
                        }
                        // SAFETY: as for the loads.
                        unsafe { ptr.store(base + split.offsets[j], out) };
                    }
                }
            },
        );
    });
}

/// The sources of output block `j`, grouped by (input block, lane flip).
fn terms_for<F: Float>(split: &Split, src: &[usize], phase: &[Complex64], j: usize) -> Terms<F> {
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
