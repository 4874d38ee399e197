//! Reductions over the state (norms and probabilities), summed in fixed
//! pieces so that the result does not depend on the thread count.

use crate::float::Float;
use crate::par::Parallelism;
use crate::state::StateVector;

/// Blocks per piece of a reduction: small enough that single-precision
/// partial sums stay accurate, large enough that pieces are cheap to combine.
pub(crate) const PIECE_BLOCKS: usize = 256;

/// `Σ |a|²` over each piece of [`PIECE_BLOCKS`] blocks, in order.
pub(crate) fn piece_norms<F: Float>(state: &StateVector<F>, par: &Parallelism) -> Vec<f64> {
    par.map_pieces(state.block_count(), PIECE_BLOCKS, F::LANES, |range| {
        let mut acc = F::splat(F::from_f64(0.0));
        for b in range.map(|b| state.block(b)) {
            acc = F::mul_add(b.re, b.re, F::mul_add(b.im, b.im, acc));
        }
        (0..F::LANES).map(|l| F::lane(&acc, l).to_f64()).sum()
    })
}

/// Probabilities `(p0, p1)` of measuring `qubit` as 0 and as 1.
pub(crate) fn qubit_probabilities<F: Float>(
    state: &StateVector<F>,
    qubit: u32,
    par: &Parallelism,
) -> [f64; 2] {
    let pieces = par.map_pieces(state.block_count(), PIECE_BLOCKS, F::LANES, |range| {
        let zero = F::splat(F::from_f64(0.0));
        let mut acc = [zero; 2];
        for b in range {
            let blk = state.block(b);
            let v = F::mul_add(blk.re, blk.re, blk.im * blk.im);
            // High qubits select whole blocks; for low ones split lanes below.
            let side = if qubit >= F::LOG_LANES {
                (b >> (qubit - F::LOG_LANES)) & 1
            } else {
                0
            };
            acc[side] = acc[side] + v;
        }
        let mut p = [0.0f64; 2];
        for (side, a) in acc.iter().enumerate() {
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
    });
    pieces
        .iter()
        .fold([0.0, 0.0], |acc, p| [acc[0] + p[0], acc[1] + p[1]])
}
