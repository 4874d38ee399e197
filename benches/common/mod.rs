//! Shared by the `kernels` and `circuits` benches: seeded circuit generators,
//! a few matrices, and the thread counts to run with.
//!
//! Each bench compiles this module on its own and uses only part of it.
#![allow(dead_code)] // reason: each bench target uses a different subset

use std::f64::consts::PI;

use kettle_core::Parallelism;
use kettle_core::cpu::SimdLevel;
use kettle_ir::{Circuit, Complex64, GateMatrix, StandardGate};

/// splitmix64: a tiny deterministic generator, enough for bench angles.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }
}

/// The textbook QFT on `n` qubits (`h`, then `cp(π/2^(k−j))` with control
/// `k` and target `j` for every `k > j`, then the final swaps), preceded by
/// a seeded product state (`ry`, `rz` on every qubit) so the output is not
/// trivial. Same structure as `qft_N` of `bench-peers/gen_circuits.py`
/// (other angles: a different generator).
pub(crate) fn qft(n: u32) -> Circuit {
    let mut rng = SplitMix64::new(0x7166_7400 + u64::from(n));
    let mut c = Circuit::new(n);
    for q in 0..n {
        c = c
            .ry(rng.uniform(0.0, PI), q)
            .rz(rng.uniform(0.0, 2.0 * PI), q);
    }
    for j in 0..n {
        c = c.h(j);
        for k in j + 1..n {
            c = c.cp(PI / f64::from(1u32 << (k - j).min(31)), k, j);
        }
    }
    for i in 0..n / 2 {
        c = c.swap(i, n - 1 - i);
    }
    c
}

/// Brick-work layers in the shape of `rqc_N` of
/// `bench-peers/gen_circuits.py` (which uses 20 layers): in each layer a
/// random `rx|ry|rz` with a uniform angle on every qubit, then `cz` (even
/// layers) or `cx` (odd layers) on the pairs `(i, i+1)` for
/// `i = layer % 2, layer % 2 + 2, …`.
pub(crate) fn brickwork(n: u32, layers: u32, seed: u64) -> Circuit {
    let mut rng = SplitMix64::new(seed ^ (u64::from(n) << 32));
    let mut c = Circuit::new(n);
    for layer in 0..layers {
        for q in 0..n {
            let theta = rng.uniform(0.0, 2.0 * PI);
            c = match rng.next_u64() % 3 {
                0 => c.rx(theta, q),
                1 => c.ry(theta, q),
                _ => c.rz(theta, q),
            };
        }
        let mut i = layer % 2;
        while i + 1 < n {
            c = if layer % 2 == 0 {
                c.cz(i, i + 1)
            } else {
                c.cx(i, i + 1)
            };
            i += 2;
        }
    }
    c
}

/// Layers of [`brickwork`] the benches use (as `rqc_N` in bench-peers).
pub(crate) const BRICKWORK_LAYERS: u32 = 20;

/// Seed of the benches' [`brickwork`] circuits.
pub(crate) const BRICKWORK_SEED: u64 = 20_261_122;

/// Thread counts from `KETTLE_BENCH_THREADS` (a comma list such as `1,2`;
/// default `1`). Panics on a malformed list: a bench should not silently
/// measure something else.
pub(crate) fn thread_counts() -> Vec<usize> {
    let raw = std::env::var("KETTLE_BENCH_THREADS").unwrap_or_else(|_| "1".into());
    let counts: Vec<usize> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse::<usize>() {
            Ok(t) if t >= 1 => t,
            _ => panic!("KETTLE_BENCH_THREADS: {s:?} is not a thread count >= 1 (list: {raw:?})"),
        })
        .collect();
    assert!(!counts.is_empty(), "KETTLE_BENCH_THREADS is empty");
    counts
}

/// SIMD levels from `KETTLE_BENCH_SIMD` (a comma list such as
/// `avx512,avx2`; default: every level this CPU runs, widest first). Panics
/// on a name that is no level or a level the CPU cannot run.
pub(crate) fn simd_levels() -> Vec<SimdLevel> {
    let Ok(raw) = std::env::var("KETTLE_BENCH_SIMD") else {
        let mut all: Vec<SimdLevel> = SimdLevel::ALL
            .into_iter()
            .filter(|&l| l <= SimdLevel::detected())
            .collect();
        all.reverse();
        return all;
    };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match SimdLevel::from_name(s) {
            Some(l) if l <= SimdLevel::detected() => l,
            _ => panic!("KETTLE_BENCH_SIMD: {s:?} is not a level this CPU runs (list: {raw:?})"),
        })
        .collect()
}

/// A [`Parallelism`] of `threads` threads (1: sequential).
pub(crate) fn parallelism(threads: usize) -> Parallelism {
    Parallelism::threads(threads).expect("could not start the bench thread pool")
}

/// `a ⊗ b`: `a` acts on the high bits of the index, `b` on the low ones
/// (so on a gate's qubit list, `b` takes the first qubits).
pub(crate) fn kron(a: &GateMatrix, b: &GateMatrix) -> GateMatrix {
    let (da, db) = (a.dim(), b.dim());
    let dim = da * db;
    let mut data = vec![Complex64::new(0.0, 0.0); dim * dim];
    for ra in 0..da {
        for ca in 0..da {
            let x = a.get(ra, ca);
            for rb in 0..db {
                for cb in 0..db {
                    data[(ra * db + rb) * dim + ca * db + cb] = x * b.get(rb, cb);
                }
            }
        }
    }
    GateMatrix::new(a.num_qubits() + b.num_qubits(), data).expect("kron of square matrices")
}

/// `u(θ, φ, λ)` with seeded generic angles: a dense 2×2 unitary.
pub(crate) fn random_u(rng: &mut SplitMix64) -> GateMatrix {
    let theta = rng.uniform(0.2, PI - 0.2);
    let phi = rng.uniform(0.0, 2.0 * PI);
    let lambda = rng.uniform(0.0, 2.0 * PI);
    StandardGate::U.matrix(&[theta, phi, lambda])
}

/// A fully dense, entangling unitary on `k` qubits: `rxx` on qubits
/// (0, 1) after a Kronecker product of `k` seeded `u` gates.
pub(crate) fn dense_unitary(k: u32, seed: u64) -> GateMatrix {
    assert!(k >= 1);
    let mut rng = SplitMix64::new(seed);
    let mut m = random_u(&mut rng);
    for _ in 1..k {
        m = kron(&random_u(&mut rng), &m);
    }
    if k >= 2 {
        let mut rxx = StandardGate::Rxx.matrix(&[0.3]);
        for _ in 2..k {
            rxx = kron(&GateMatrix::identity(1), &rxx);
        }
        m = rxx.matmul(&m);
    }
    m
}
