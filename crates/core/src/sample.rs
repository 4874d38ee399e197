//! Sampling basis states from a state's distribution, exact probabilities
//! marginalised onto any qubits, and the exact distribution of the
//! classical bits that final measurements would record.
//!
//! Sampling costs O(2^n + shots): the shots' uniforms are generated already
//! sorted (as normalised partial sums of exponential variates), and one sweep
//! over the cumulative distribution assigns them. The sweep skips whole
//! pieces using per-piece norms summed in a fixed order, so a seed gives the
//! same outcomes whatever the thread count. When there are at least as many
//! shots as amplitudes, the counts are drawn instead as one multinomial, a
//! binomial per amplitude: O(2^n) whatever the shot count (a 2-qubit state
//! and 10^6 shots costs four draws).

use std::collections::BTreeMap;

use kettle_ir::{Clbit, Qubit};
use rand::Rng;
use rand_distr::{Binomial, Distribution, Exp1};

use crate::counts::ClassicalValue;
use crate::error::SimError;
use crate::float::Float;
use crate::kernels::reduce::{PIECE_BLOCKS, piece_norms};
use crate::par::Parallelism;
use crate::program::measured_qubits;
use crate::state::StateVector;

/// Draws `shots` basis states; returns `(index, occurrences)` in increasing
/// index order.
pub(crate) fn sample_indices<F: Float, R: Rng + Clone>(
    state: &StateVector<F>,
    shots: u64,
    rng: &mut R,
    par: &Parallelism,
) -> Vec<(u64, u64)> {
    if shots == 0 {
        return Vec::new();
    }
    let norms = piece_norms(state, par);
    let total: f64 = norms.iter().sum();
    let piece_len = PIECE_BLOCKS * F::LANES;
    let len = state.len();
    let prob = |i: usize| state.amp(i).norm_sqr_f64();
    // Where rounding leaves uniforms past the last amplitude, they belong to
    // the last state of non-zero probability.
    let last_nonzero = (0..len).rev().find(|&i| prob(i) > 0.0).unwrap_or(0) as u64;
    if len as u64 <= shots {
        return multinomial(shots, total, len, last_nonzero, prob, rng);
    }

    // Two passes over the same exponential variates: their sum, then the
    // running sums that make the sorted uniforms.
    let mut replay = rng.clone();
    let sum: f64 = (0..=shots).map(|_| -> f64 { Exp1.sample(rng) }).sum();
    let scale = total / sum;
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut record = |index: u64| match out.last_mut() {
        Some((i, n)) if *i == index => *n += 1,
        _ => out.push((index, 1)),
    };
    let mut sweep = Sweep::default();
    let pieces = Pieces {
        len: piece_len,
        norms: &norms,
    };
    sweep.run(
        &mut replay,
        scale,
        shots,
        0..len,
        &pieces,
        prob,
        Some(last_nonzero),
        &mut record,
    );
    out
}

/// Pieces of the state and their norms (summed per piece, in order).
pub(crate) struct Pieces<'a> {
    /// Amplitudes per piece.
    pub(crate) len: usize,
    /// Norm of piece `k` of the whole state.
    pub(crate) norms: &'a [f64],
}

/// Where a sweep of sorted uniforms over the cumulative distribution
/// stands: a sweep over the whole state, or one rank's part of it that the
/// next rank continues (`crate::distributed`), with the same arithmetic in
/// the same order, so both give the same outcomes for a seed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Sweep {
    /// The running sum of the exponential variates drawn so far.
    pub(crate) partial: f64,
    /// Cumulative probability before the next amplitude.
    pub(crate) cum: f64,
    /// Shots recorded.
    pub(crate) done: u64,
    /// Whether the variate of the shot after those is in `partial`.
    pub(crate) drawn: bool,
}

impl Sweep {
    /// Goes on over the amplitudes `range` (of `prob`, state indices) until
    /// `shots` are recorded or the range ends; `last_nonzero` is given when
    /// the range ends the state, and takes the uniforms that rounding puts
    /// past it. `replay` draws the variates (its stream must stand after the
    /// `done` ones, and the drawn one).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run<R: Rng>(
        &mut self,
        replay: &mut R,
        scale: f64,
        shots: u64,
        range: std::ops::Range<usize>,
        pieces: &Pieces<'_>,
        prob: impl Fn(usize) -> f64,
        last_nonzero: Option<u64>,
        record: &mut impl FnMut(u64),
    ) {
        let (mut next, end) = (range.start, range.end);
        while self.done < shots {
            if !self.drawn {
                let e: f64 = Exp1.sample(replay);
                self.partial += e;
                self.drawn = true;
            }
            let u = self.partial * scale;
            // At a piece boundary, skip whole pieces the uniform lies beyond.
            while next < end && next.is_multiple_of(pieces.len) {
                let k = next / pieces.len;
                if u < self.cum + pieces.norms[k] {
                    break;
                }
                self.cum += pieces.norms[k];
                next = (next + pieces.len).min(end);
            }
            loop {
                if next >= end {
                    let Some(last) = last_nonzero else {
                        // The next part of the state takes this shot.
                        return;
                    };
                    record(last);
                    break;
                }
                let p = prob(next);
                if u < self.cum + p {
                    record(next as u64);
                    break;
                }
                self.cum += p;
                next += 1;
            }
            self.done += 1;
            self.drawn = false;
        }
    }
}

/// The resolution at which a probability is drawn from: 2^-40.
const DRAW_RESOLUTION: f64 = 1.0 / (1u64 << 40) as f64;

/// How many of `n` trials succeed with probability `p`, drawn with `p`
/// rounded to [`DRAW_RESOLUTION`] (a NaN counts as 0).
///
/// Why round: the same state computed two ways (fused differently, or
/// split over ranks) gives probabilities a few ulps apart, and rand's
/// binomial is not continuous in `p` at 0, 1/2 and 1 (it draws nothing
/// at 0 and mirrors the draw above 1/2), where the probabilities of
/// circuits sit most often. Rounded, those land on the same value and the
/// draws agree. The bias, at most 2^-41 in `p`, is below 0.002 of a shot
/// at [`MAX_SHOTS`](crate::MAX_SHOTS).
pub(crate) fn binomial<R: Rng>(n: u64, p: f64, rng: &mut R) -> u64 {
    let p = (p.clamp(0.0, 1.0) / DRAW_RESOLUTION).round() * DRAW_RESOLUTION;
    // `new` fails only for a probability outside [0, 1] or NaN.
    Binomial::new(n, p).map_or(0, |b| b.sample(rng))
}

/// `shots` draws from the distribution `prob` over `0..len` (of sum `total`)
/// as counts: each amplitude in turn takes a binomial share of the shots
/// left, with its probability relative to the mass not yet visited; the
/// last outcome of non-zero probability takes what remains, so rounding
/// never loses a shot.
pub(crate) fn multinomial<R: Rng>(
    shots: u64,
    total: f64,
    len: usize,
    last_nonzero: u64,
    prob: impl Fn(usize) -> f64,
    rng: &mut R,
) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut left = shots;
    let mut rest = total;
    for i in 0..len as u64 {
        if left == 0 {
            break;
        }
        let p = prob(i as usize);
        if p <= 0.0 && i != last_nonzero {
            continue;
        }
        let share = if i >= last_nonzero || p >= rest {
            left
        } else {
            binomial(left, p / rest, rng)
        };
        rest -= p;
        if share > 0 {
            out.push((i, share));
            left -= share;
        }
    }
    out
}

/// Exact probabilities of the outcomes of measuring `qubits`: entry `k` is
/// the probability that qubit `qubits[i]` reads bit `i` of `k`.
/// Probabilities of outcomes over `qubits` (bit `i` of an outcome is
/// qubit `qubits[i]`) as the distribution of the classical bits `finals`
/// writes them to, keyed by bitstring over `num_clbits` bits.
pub(crate) fn outcome_distribution(
    outcomes: impl IntoIterator<Item = (u64, f64)>,
    qubits: &[Qubit],
    finals: &[(Qubit, Clbit)],
    num_clbits: u32,
) -> BTreeMap<String, f64> {
    let mut dist = BTreeMap::new();
    for (k, p) in outcomes {
        let mut value = ClassicalValue::zeros(num_clbits);
        for &(q, c) in finals {
            if let Some(pos) = qubits.iter().position(|&x| x == q) {
                value.set(c, (k >> pos) & 1 == 1);
            }
        }
        *dist.entry(value.to_bitstring(num_clbits)).or_insert(0.0) += p;
    }
    dist
}

/// Fails unless `qubits` are distinct qubits of a state of `n`.
pub(crate) fn check_distinct_qubits(qubits: &[Qubit], n: u32) -> Result<(), SimError> {
    for (i, &q) in qubits.iter().enumerate() {
        if q >= n {
            return Err(SimError::QubitOutOfRange {
                qubit: q,
                num_qubits: n,
            });
        }
        if qubits[..i].contains(&q) {
            return Err(SimError::DuplicateQubit { qubit: q });
        }
    }
    Ok(())
}

pub(crate) fn marginal_probabilities<F: Float>(
    state: &StateVector<F>,
    qubits: &[Qubit],
    par: &Parallelism,
) -> Result<Vec<f64>, SimError> {
    let n = state.num_qubits();
    check_distinct_qubits(qubits, n)?;
    let k = qubits.len();
    let size = 1usize << k;
    let mut probs = Vec::new();
    probs
        .try_reserve_exact(size)
        .map_err(|_| SimError::OutOfMemory {
            bytes: (size as u128) * 8,
        })?;
    let identity = qubits.iter().enumerate().all(|(i, &q)| i as u32 == q) && k == n as usize;
    let len = state.len();
    if identity {
        // The whole distribution, in parallel: each entry is independent.
        let pieces = par.map_pieces(len, PIECE_BLOCKS * F::LANES, 1, |r| {
            r.map(|i| state.amp(i).norm_sqr_f64()).collect::<Vec<_>>()
        });
        probs.extend(pieces.into_iter().flatten());
        return Ok(probs);
    }
    probs.resize(size, 0.0);
    let gather = |i: usize| -> usize {
        qubits
            .iter()
            .enumerate()
            .map(|(b, &q)| ((i >> q) & 1) << b)
            .sum()
    };
    if size <= 1 << 12 {
        // Small outputs: one histogram per fixed piece, added in order.
        let piece = (1usize << 16).max(len / 1024);
        let parts = par.map_pieces(len, piece, 1, |r| {
            let mut h = vec![0.0; size];
            for i in r {
                h[gather(i)] += state.amp(i).norm_sqr_f64();
            }
            h
        });
        for part in parts {
            for (p, x) in probs.iter_mut().zip(part) {
                *p += x;
            }
        }
    } else {
        for i in 0..len {
            probs[gather(i)] += state.amp(i).norm_sqr_f64();
        }
    }
    Ok(probs)
}

/// `|z|²` in f64 for either precision.
pub(crate) trait NormSqrF64 {
    fn norm_sqr_f64(&self) -> f64;
}

impl<F: Float> NormSqrF64 for num_complex::Complex<F> {
    #[inline]
    fn norm_sqr_f64(&self) -> f64 {
        let (re, im) = (self.re.to_f64(), self.im.to_f64());
        re * re + im * im
    }
}

impl<F: Float> StateVector<F> {
    /// Exact probabilities of measuring `qubits`: entry `k` is the probability
    /// that `qubits[i]` reads bit `i` of `k` for every `i`. With all qubits in
    /// order this is the whole distribution.
    ///
    /// # Errors
    /// [`SimError::QubitOutOfRange`], [`SimError::DuplicateQubit`], or
    /// [`SimError::OutOfMemory`] if the result cannot be allocated.
    pub fn probabilities(&self, qubits: &[Qubit], par: &Parallelism) -> Result<Vec<f64>, SimError> {
        marginal_probabilities(self, qubits, par)
    }

    /// The exact distribution of the classical bits that the measurements
    /// `finals` (as [`final_measurements`](crate::final_measurements) gives
    /// them) would record from this state, keyed by bitstring over
    /// `num_clbits` bits (classical bit 0 rightmost); outcomes of probability
    /// 0 are left out. It has up to 2^k entries for k distinct measured
    /// qubits: callers bound k.
    ///
    /// # Errors
    /// As [`probabilities`](Self::probabilities).
    pub fn classical_distribution(
        &self,
        finals: &[(Qubit, Clbit)],
        num_clbits: u32,
        par: &Parallelism,
    ) -> Result<BTreeMap<String, f64>, SimError> {
        let qubits = measured_qubits(finals);
        let probabilities = self.probabilities(&qubits, par)?;
        let outcomes = (0u64..).zip(probabilities).filter(|&(_, p)| p != 0.0);
        Ok(outcome_distribution(outcomes, &qubits, finals, num_clbits))
    }

    /// [`classical_distribution`](Self::classical_distribution) for any
    /// number of measured qubits, in memory for at most `max_entries`
    /// outcomes of non-zero probability: `Ok(None)` as soon as there are
    /// more. One pass over the amplitudes, in basis-state order, on one
    /// thread (the dense form's table of 2^k probabilities is what a large
    /// k cannot afford).
    ///
    /// # Errors
    /// [`SimError::QubitOutOfRange`] for a measured qubit the state lacks.
    pub fn sparse_classical_distribution(
        &self,
        finals: &[(Qubit, Clbit)],
        num_clbits: u32,
        max_entries: usize,
    ) -> Result<Option<BTreeMap<String, f64>>, SimError> {
        let n = self.num_qubits();
        if let Some(&(q, _)) = finals.iter().find(|&&(q, _)| q >= n) {
            return Err(SimError::QubitOutOfRange {
                qubit: q,
                num_qubits: n,
            });
        }
        let qubits = measured_qubits(finals);
        // Ordered, so that outcomes sharing a bitstring add up in one order.
        let mut outcomes: BTreeMap<u64, f64> = BTreeMap::new();
        for i in 0..self.len() {
            let p = self.amp(i).norm_sqr_f64();
            if p == 0.0 {
                continue;
            }
            let k = qubits
                .iter()
                .enumerate()
                .fold(0u64, |k, (pos, &q)| k | (((i as u64 >> q) & 1) << pos));
            *outcomes.entry(k).or_insert(0.0) += p;
            if outcomes.len() > max_entries {
                return Ok(None);
            }
        }
        Ok(Some(outcome_distribution(
            outcomes, &qubits, finals, num_clbits,
        )))
    }

    /// The non-zero amplitudes, widened to f64, by basis-state index in
    /// increasing order, if there are at most `max_entries` of them (`None`
    /// as soon as there are more). One pass, on one thread.
    pub fn sparse_amplitudes(
        &self,
        max_entries: usize,
    ) -> Option<Vec<(u64, num_complex::Complex64)>> {
        let mut out = Vec::new();
        for i in 0..self.len() {
            let a = self.amp(i);
            let a = num_complex::Complex64::new(a.re.to_f64(), a.im.to_f64());
            if a.re == 0.0 && a.im == 0.0 {
                continue;
            }
            if out.len() == max_entries {
                return None;
            }
            out.push((i as u64, a));
        }
        Some(out)
    }

    /// Draws `shots` basis states with a seeded generator; returns
    /// `(basis index, occurrences)` in increasing index order. The same seed
    /// gives the same result whatever the parallelism.
    pub fn sample(&self, shots: u64, seed: u64, par: &Parallelism) -> Vec<(u64, u64)> {
        use rand::SeedableRng;
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        sample_indices(self, shots, &mut rng, par)
    }
}
