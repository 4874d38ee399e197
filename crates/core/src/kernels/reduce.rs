//! Reductions over the state (norms and probabilities), summed in fixed
//! pieces so that the result does not depend on the thread count, with the
//! vectors of the process's SIMD level.

use super::{Lanes, at_level, lane_sum, to_storage};
use crate::float::Float;
use crate::par::Parallelism;
use crate::state::StateVector;

/// Blocks per piece of a reduction: small enough that single-precision
/// partial sums stay accurate, large enough that pieces are cheap to combine.
pub(crate) const PIECE_BLOCKS: usize = 256;

/// `Σ |a|²` over each piece of [`PIECE_BLOCKS`] blocks, in order.
pub(crate) fn piece_norms<F: Float>(state: &StateVector<F>, par: &Parallelism) -> Vec<f64> {
    at_level!(crate::cpu::simd_level(), piece_norms_with::<F>)(state, par)
}

fn piece_norms_with<F: Float, V: Lanes<F>>(state: &StateVector<F>, par: &Parallelism) -> Vec<f64> {
    par.map_pieces(state.block_count(), PIECE_BLOCKS, F::LANES, |range| {
        V::vectorize(
            #[inline(always)]
            || {
                let mut acc = V::splat(F::from_f64(0.0));
                for b in range {
                    let b = state.block(b);
                    let (re, im) = (V::load(&b.re), V::load(&b.im));
                    acc = re.mul_add(re, im.mul_add(im, acc));
                }
                lane_sum::<F, V>(acc)
            },
        )
    })
}

/// Probabilities `(p0, p1)` of measuring `qubit` as 0 and as 1.
pub(crate) fn qubit_probabilities<F: Float>(
    state: &StateVector<F>,
    qubit: u32,
    par: &Parallelism,
) -> [f64; 2] {
    at_level!(crate::cpu::simd_level(), qubit_probabilities_with::<F>)(state, qubit, par)
}

fn qubit_probabilities_with<F: Float, V: Lanes<F>>(
    state: &StateVector<F>,
    qubit: u32,
    par: &Parallelism,
) -> [f64; 2] {
    let pieces = par.map_pieces(state.block_count(), PIECE_BLOCKS, F::LANES, |range| {
        V::vectorize(
            #[inline(always)]
            || {
                let zero = V::splat(F::from_f64(0.0));
                let mut acc = [zero; 2];
                for b in range {
                    let blk = state.block(b);
                    let (re, im) = (V::load(&blk.re), V::load(&blk.im));
                    let v = re.mul_add(re, im * im);
                    // High qubits select whole blocks; for low ones split lanes below.
                    let side = if qubit >= F::LOG_LANES {
                        (b >> (qubit - F::LOG_LANES)) & 1
                    } else {
                        0
                    };
                    acc[side] = acc[side] + v;
                }
                let mut p = [0.0f64; 2];
                for (side, a) in acc.into_iter().enumerate() {
                    let a = &to_storage::<F, V>(a);
                    for l in 0..F::LANES {
                        let s = if qubit >= F::LOG_LANES {
                            side
                        } else {
                            (l >> qubit) & 1
                        };
                        p[s] += F::lane(a, l).to_f64();
                    }
                }
                p
            },
        )
    });
    pieces
        .iter()
        .fold([0.0, 0.0], |acc, p| [acc[0] + p[0], acc[1] + p[1]])
}
