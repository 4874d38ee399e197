//! Numeric tests of the whole simulator against `kettle-reference`, the plain
//! dense simulator.
//!
//! Like qsim's typed fixtures, one macro stamps the same test bodies for
//! every configuration: precision × {sequential, parallel} × {fusion on,
//! off}. A bug in one path (say, only the parallel f32 one) fails there.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use kettle_ir::{Circuit, Complex64, Condition, Control, Gate, StandardGate, UnitaryMatrix};
use kettle_reference as reference;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::{
    CacheBlocking, Float, FusionConfig, Parallelism, PauliSum, RunOptions, Simulator, StateVector,
};

/// A two-thread pool shared by the parallel configurations.
fn pool() -> Parallelism {
    static POOL: OnceLock<Arc<rayon::ThreadPool>> = OnceLock::new();
    Parallelism::Pool(
        POOL.get_or_init(|| {
            Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(2)
                    .build()
                    .unwrap(),
            )
        })
        .clone(),
    )
}

/// Largest entry-wise difference allowed against the reference: f64 must
/// agree to 1e-12; f32 carries about 1e-7 relative error per operation.
fn tolerance<F: Float>() -> f64 {
    if F::NAME == "f64" { 1e-12 } else { 2e-5 }
}

fn random_state(n: u32, seed: u64) -> Vec<Complex64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let v: Vec<Complex64> = (0..1usize << n)
        .map(|_| Complex64::new(rng.random::<f64>() - 0.5, rng.random::<f64>() - 0.5))
        .collect();
    let norm = v.iter().map(|a| a.norm_sqr()).sum::<f64>().sqrt();
    v.into_iter().map(|a| a / norm).collect()
}

fn random_unitary(k: u32, seed: u64) -> UnitaryMatrix {
    let c = reference::random_circuit(k, 12, seed);
    let u = reference::unitary_by_kron(&c);
    UnitaryMatrix::from_entries(k, u.into_iter().flatten().collect()).unwrap()
}

/// The qubits `0..n` in an order drawn from `rng` (Fisher–Yates).
fn shuffled_qubits(n: u32, rng: &mut Xoshiro256PlusPlus) -> Vec<u32> {
    let mut qubits: Vec<u32> = (0..n).collect();
    for i in (1..qubits.len()).rev() {
        qubits.swap(i, rng.random_range(0..=i));
    }
    qubits
}

/// Applies `g` to `start` with the kernels (on `par`) and with the
/// reference, and checks that they agree to [`tolerance`]; `what` names the
/// case in a failure.
fn assert_gate_matches_reference<F: Float>(
    start: &[Complex64],
    g: &Gate,
    targets: &[u32],
    controls: &[Control],
    par: &Parallelism,
    what: &str,
) {
    let mut expect = start.to_vec();
    reference::apply_gate(&mut expect, &g.matrix(), targets, controls);
    let mut state = StateVector::<F>::from_amplitudes(start).unwrap();
    state.apply_gate(g, targets, controls, par).unwrap();
    let diff = reference::max_abs_diff(&state.to_vec_f64(), &expect);
    assert!(
        diff < tolerance::<F>(),
        "{what} on {targets:?} ctrl {controls:?}: off by {diff:e}"
    );
}

/// Every SIMD level this CPU runs gives the portable kernels' state to
/// 1e-12 (f64) for every gate and explicit unitaries of 1 to 7 qubits (every
/// kernel: diagonal, moves, weighted terms, dense unrolled and general), in
/// one process whatever `KETTLE_SIMD` says, sequential and parallel.
fn every_level_agrees<F: Float>(par: &Parallelism) {
    use crate::cpu::SimdLevel;
    let levels: Vec<SimdLevel> = SimdLevel::ALL
        .into_iter()
        .filter(|&l| l <= SimdLevel::detected())
        .collect();
    let n = 10;
    let start = random_state(n, 19);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(19);
    let mut cases: Vec<(Gate, Vec<u32>, Vec<Control>)> = Vec::new();
    for gate in StandardGate::ALL {
        for trial in 0..6 {
            let qubits = shuffled_qubits(n, &mut rng);
            let k = gate.num_qubits() as usize;
            let controls = qubits[k..k + trial % 3]
                .iter()
                .map(|&q| Control {
                    qubit: q,
                    on: rng.random(),
                })
                .collect();
            let params: Vec<f64> = (0..gate.num_params())
                .map(|_| rng.random_range(-7.0..7.0))
                .collect();
            cases.push((
                Gate::standard(gate, &params),
                qubits[..k].to_vec(),
                controls,
            ));
        }
    }
    for k in 1..=7u32 {
        let targets: Vec<u32> = (0..k).map(|i| (i * 3 + 1) % n).collect();
        cases.push((
            Gate::Unitary(random_unitary(k, u64::from(k))),
            targets,
            Vec::new(),
        ));
    }
    let mut states: Vec<StateVector<F>> = levels
        .iter()
        .map(|_| StateVector::<F>::from_amplitudes(&start).unwrap())
        .collect();
    for (gate, targets, controls) in &cases {
        for (state, &level) in states.iter_mut().zip(&levels) {
            state.apply_gate_at_level(level, gate, targets, controls, par);
        }
        let portable = states[0].to_vec_f64();
        for (state, level) in states.iter().zip(&levels).skip(1) {
            let diff = reference::max_abs_diff(&state.to_vec_f64(), &portable);
            assert!(
                diff < tolerance::<F>(),
                "{} on {targets:?} ctrl {controls:?} at {level}: off by {diff:e}",
                gate.name()
            );
        }
    }
}

#[test]
fn every_simd_level_agrees_with_the_portable_kernels() {
    every_level_agrees::<f64>(&Parallelism::Sequential);
    every_level_agrees::<f32>(&Parallelism::Sequential);
    every_level_agrees::<f64>(&pool());
}

/// Every gate, on every kind of qubit placement (low and high qubits,
/// ascending and not, with positive and negative extra controls).
fn every_gate_matches_reference<F: Float>(par: &Parallelism) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    for n in [1u32, 2, 3, 5, 7, 9] {
        let start = random_state(n, u64::from(n));
        for gate in StandardGate::ALL {
            let k = gate.num_qubits();
            if k > n {
                continue;
            }
            for trial in 0..12 {
                let qubits = shuffled_qubits(n, &mut rng);
                let extra = if trial < 4 { 0 } else { (n - k).min(trial % 3) };
                let controls: Vec<Control> = qubits[k as usize..(k + extra) as usize]
                    .iter()
                    .map(|&q| Control {
                        qubit: q,
                        on: rng.random(),
                    })
                    .collect();
                let targets = &qubits[..k as usize];
                let params: Vec<f64> = (0..gate.num_params())
                    .map(|_| rng.random_range(-7.0..7.0))
                    .collect();
                let g = Gate::standard(gate, &params);
                let what = format!("{} (n={n})", gate.name());
                assert_gate_matches_reference::<F>(&start, &g, targets, &controls, par, &what);
            }
        }
        // Explicit unitaries on 1 to 4 qubits (dense kernels of every group size).
        for k in 1..=n.min(4) {
            let u = random_unitary(k, u64::from(10 * n + k));
            let targets: Vec<u32> = (0..k).map(|i| (i * 2 + 1) % n).collect::<Vec<_>>();
            let mut uniq = targets.clone();
            uniq.sort_unstable();
            uniq.dedup();
            if uniq.len() != targets.len() {
                continue;
            }
            let g = Gate::Unitary(u);
            let what = format!("a {k}-qubit unitary (n={n})");
            assert_gate_matches_reference::<F>(&start, &g, &targets, &[], par, &what);
        }
    }
}

/// Products of one-qubit rotations about X and Y, Hadamards and Paulis,
/// with rows signed and permuted as CZ and CX do: matrices whose terms are
/// real or imaginary, which the dense kernel runs with half the
/// multiply-adds (`kernels::dense::Part`), on every placement of 1 to 4
/// targets (low and high, every group shape), with and without a control.
fn structured_unitaries_match_reference<F: Float>(par: &Parallelism) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(23);
    let one_qubit = |rng: &mut Xoshiro256PlusPlus| -> [Complex64; 4] {
        let t: f64 = rng.random_range(-3.0..3.0);
        let (c, s) = ((t / 2.0).cos(), (t / 2.0).sin());
        let r = |x: f64| Complex64::new(x, 0.0);
        let i = |x: f64| Complex64::new(0.0, x);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        match rng.random_range(0..5) {
            0 => [r(c), i(-s), i(-s), r(c)],
            1 => [r(c), r(-s), r(s), r(c)],
            2 => [r(h), r(h), r(h), r(-h)],
            3 => [r(0.0), i(-1.0), i(1.0), r(0.0)],
            _ => [r(1.0), r(0.0), r(0.0), r(-1.0)],
        }
    };
    for n in [3u32, 5, 7, 9] {
        let start = random_state(n, u64::from(n) + 100);
        for k in 1..=4u32.min(n) {
            for trial in 0..10 {
                let dim = 1usize << k;
                // Kronecker product, target 0 the least significant bit.
                let mut m = vec![Complex64::new(1.0, 0.0)];
                for _ in 0..k {
                    let g = one_qubit(&mut rng);
                    let d = (m.len() as f64).sqrt() as usize;
                    let mut next = vec![Complex64::new(0.0, 0.0); 4 * d * d];
                    for (r, c) in (0..2 * d).flat_map(|r| (0..2 * d).map(move |c| (r, c))) {
                        next[r * 2 * d + c] = g[(r / d) * 2 + c / d] * m[(r % d) * d + c % d];
                    }
                    m = next;
                }
                // Sign rows as a CZ would and swap two rows as a CX would.
                let sign = rng.random_range(0..dim);
                for c in 0..dim {
                    m[sign * dim + c] = -m[sign * dim + c];
                }
                let (r0, r1) = (rng.random_range(0..dim), rng.random_range(0..dim));
                for c in 0..dim {
                    m.swap(r0 * dim + c, r1 * dim + c);
                }
                let qubits = shuffled_qubits(n, &mut rng);
                let targets = &qubits[..k as usize];
                let controls: Vec<Control> = if trial % 3 == 2 && k < n {
                    vec![Control::one(qubits[k as usize])]
                } else {
                    Vec::new()
                };
                let g = Gate::Unitary(UnitaryMatrix::from_entries(k, m).unwrap());
                let what = format!("structured {k}-qubit matrix (n={n})");
                assert_gate_matches_reference::<F>(&start, &g, targets, &controls, par, &what);
            }
        }
    }
}

#[test]
fn structured_matrices_match_reference() {
    structured_unitaries_match_reference::<f64>(&Parallelism::Sequential);
    structured_unitaries_match_reference::<f32>(&Parallelism::Sequential);
    structured_unitaries_match_reference::<f64>(&pool());
}

fn random_circuits_match_reference<F: Float>(sim: &Simulator) {
    for (n, gates, seeds) in [
        (3u32, 40usize, 0..6u64),
        (6, 80, 6..10),
        (10, 120, 10..12),
        (16, 60, 12..13),
    ] {
        for seed in seeds {
            let c = reference::random_circuit(n, gates, seed);
            let expect = reference::statevector(&c);
            let state = sim.statevector::<F>(&c).unwrap();
            let got = state.to_vec_f64();
            let diff = reference::max_abs_diff(&got, &expect);
            assert!(
                diff < tolerance::<F>(),
                "n={n} seed={seed}: off by {diff:e}"
            );
            let norm = state.norm_sqr(sim.parallelism());
            assert!((norm - 1.0).abs() < 1e3 * tolerance::<F>(), "norm {norm}");
        }
    }
}

fn large_circuit_matches_reference<F: Float>(sim: &Simulator) {
    // 18 qubits: every kernel's parallel path engages.
    let c = reference::random_circuit(18, 40, 99);
    let expect = reference::statevector(&c);
    let got = sim.statevector::<F>(&c).unwrap().to_vec_f64();
    let diff = reference::max_abs_diff(&got, &expect);
    assert!(diff < tolerance::<F>(), "off by {diff:e}");
}

fn inverse_returns_to_zero<F: Float>(sim: &Simulator) {
    for (n, seed) in [(5u32, 3u64), (12, 4)] {
        let c = reference::random_circuit(n, 80, seed);
        let mut both = c.clone();
        for op in reference::inverse(&c).ops() {
            both.push(op.clone());
        }
        let state = sim.statevector::<F>(&both).unwrap();
        let a0 = state.amplitude(0).unwrap();
        assert!((a0.re.to_f64() - 1.0).abs() < 100.0 * tolerance::<F>());
        assert!(a0.im.to_f64().abs() < 100.0 * tolerance::<F>());
    }
}

fn expectations_match_reference<F: Float>(sim: &Simulator) {
    let c = reference::random_circuit(7, 60, 5);
    let amps = reference::statevector(&c);
    let state = sim.statevector::<F>(&c).unwrap();
    for (text, terms) in [
        ("Z0", vec![(0u32, 'Z')]),
        ("X3", vec![(3, 'X')]),
        ("Y6", vec![(6, 'Y')]),
        ("X0 Y2 Z5", vec![(0, 'X'), (2, 'Y'), (5, 'Z')]),
        ("Y1 Y4", vec![(1, 'Y'), (4, 'Y')]),
        (
            "X1 Y2 Y3 Y5 Z6",
            vec![(1, 'X'), (2, 'Y'), (3, 'Y'), (5, 'Y'), (6, 'Z')],
        ),
    ] {
        let want = reference::pauli_expectation(&amps, &terms);
        let obs: PauliSum = text.parse().unwrap();
        let got = state.expectation(&obs, sim.parallelism()).unwrap();
        assert!(
            (got - want).abs() < 10.0 * tolerance::<F>(),
            "{text}: {got} vs {want}"
        );
    }
    let sum: PauliSum = "0.5*Z0 Z1 - 2 X3 + 1.5".parse().unwrap();
    let want = 0.5 * reference::pauli_expectation(&amps, &[(0, 'Z'), (1, 'Z')])
        - 2.0 * reference::pauli_expectation(&amps, &[(3, 'X')])
        + 1.5;
    let got = state.expectation(&sum, sim.parallelism()).unwrap();
    assert!((got - want).abs() < 10.0 * tolerance::<F>());
}

fn marginals_match_reference<F: Float>(sim: &Simulator) {
    let c = reference::random_circuit(8, 60, 6);
    let probs = reference::probabilities(&reference::statevector(&c));
    let state = sim.statevector::<F>(&c).unwrap();
    let all: Vec<u32> = (0..8).collect();
    let got = state.probabilities(&all, sim.parallelism()).unwrap();
    for (a, b) in got.iter().zip(&probs) {
        assert!((a - b).abs() < 10.0 * tolerance::<F>());
    }
    let sub = [5u32, 0, 3];
    let got = state.probabilities(&sub, sim.parallelism()).unwrap();
    let mut want = vec![0.0; 8];
    for (i, p) in probs.iter().enumerate() {
        let k = sub
            .iter()
            .enumerate()
            .map(|(b, &q)| ((i >> q) & 1) << b)
            .sum::<usize>();
        want[k] += p;
    }
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 10.0 * tolerance::<F>());
    }
    assert!(state.probabilities(&[8], sim.parallelism()).is_err());
    assert!(state.probabilities(&[1, 1], sim.parallelism()).is_err());
}

/// Runs `c` for `shots` shots with `seed`: every shot is counted, and the
/// counts pass a chi-square test against the exact distribution.
fn assert_counts_follow_exact<F: Float>(sim: &Simulator, c: &Circuit, shots: u64, seed: u64) {
    let expect = reference::exact_distribution(c);
    let out = sim
        .run::<F>(
            c,
            &RunOptions {
                shots,
                seed: Some(seed),
                keep_state: false,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(out.counts.shots(), shots);
    let p = reference::chi_square_p_value(&out.counts.to_bitstrings(), &expect, shots);
    assert!(p > 1e-4, "{shots} shots, seed {seed}: chi-square p = {p}");
}

fn counts_pass_chi_square<F: Float>(sim: &Simulator) {
    let c = reference::random_circuit(5, 50, 7).measure_all();
    assert_counts_follow_exact::<F>(sim, &c, 20_000, 11);
}

/// Mid-circuit measurement, reset and register conditions together.
pub(crate) fn feedback_circuit() -> Circuit {
    Circuit::new(3)
        .creg("c", 3)
        .h(0)
        .ry(1.1, 1)
        .cx(0, 2)
        .measure(0, 0)
        .reset(0)
        .rx(0.4, 0)
        .measure(1, 1)
        .if_else(
            Condition::equals(vec![0, 1], 0b11),
            |b| b.h(2),
            |b| b.ry(0.3, 2).x(0),
        )
        .cx(2, 1)
        .measure(2, 2)
        .measure(1, 1)
        .measure(0, 0)
}

fn trajectories_follow_the_exact_distribution<F: Float>(sim: &Simulator) {
    for (c, seed) in [(reference::teleportation(), 1u64), (feedback_circuit(), 2)] {
        assert_counts_follow_exact::<F>(sim, &c, 20_000, seed);
    }
    // The teleported qubit reads 1 with probability sin²(0.35).
    let out = sim
        .run::<F>(
            &reference::teleportation(),
            &RunOptions {
                shots: 40_000,
                seed: Some(3),
                keep_state: false,
                ..Default::default()
            },
        )
        .unwrap();
    let ones: u64 = out
        .counts
        .to_bitstrings()
        .iter()
        .filter(|(k, _)| k.starts_with('1'))
        .map(|(_, n)| n)
        .sum();
    let p = ones as f64 / 40_000.0;
    assert!((p - 0.35f64.sin().powi(2)).abs() < 0.01, "{p}");
}

macro_rules! numeric_suite {
    ($($name:ident: $float:ty, $par:expr, $fusion:expr;)*) => {$(
        mod $name {
            use super::*;

            fn sim() -> Simulator {
                Simulator::new().with_parallelism($par).with_fusion($fusion)
            }

            #[test]
            fn every_gate() { every_gate_matches_reference::<$float>(sim().parallelism()); }
            #[test]
            fn random_circuits() { random_circuits_match_reference::<$float>(&sim()); }
            #[test]
            fn large_circuit() { large_circuit_matches_reference::<$float>(&sim()); }
            #[test]
            fn inverse() { inverse_returns_to_zero::<$float>(&sim()); }
            #[test]
            fn expectations() { expectations_match_reference::<$float>(&sim()); }
            #[test]
            fn marginals() { marginals_match_reference::<$float>(&sim()); }
            #[test]
            fn counts() { counts_pass_chi_square::<$float>(&sim()); }
            #[test]
            fn trajectories() { trajectories_follow_the_exact_distribution::<$float>(&sim()); }
        }
    )*};
}

numeric_suite! {
    f64_seq_fused: f64, Parallelism::Sequential, FusionConfig::default();
    f64_seq_plain: f64, Parallelism::Sequential, FusionConfig::disabled();
    f64_par_fused: f64, pool(), FusionConfig::default();
    f64_par_plain: f64, pool(), FusionConfig::disabled();
    f32_seq_fused: f32, Parallelism::Sequential, FusionConfig::default();
    f32_seq_plain: f32, Parallelism::Sequential, FusionConfig::disabled();
    f32_par_fused: f32, pool(), FusionConfig::default();
    f32_par_plain: f32, pool(), FusionConfig::disabled();
    f64_seq_blocked: f64, Parallelism::Sequential, small_chunks();
    f64_par_blocked: f64, pool(), small_chunks();
    f32_seq_blocked: f32, Parallelism::Sequential, small_chunks();
    f32_par_blocked: f32, pool(), small_chunks();
}

/// Cache blocking with chunks of 2^6 amplitudes, so that even small test
/// circuits run in stages (and segments are one SIMD block long).
fn small_chunks() -> FusionConfig {
    FusionConfig {
        blocking: CacheBlocking::Chunks {
            chunk_qubits: 6,
            low_qubits: 0,
        },
        ..FusionConfig::default()
    }
}

#[test]
fn blocked_and_plain_runs_agree_to_1e_12() {
    let plain = Simulator::new().with_fusion(FusionConfig::disabled());
    for (n, seed) in [(9u32, 31u64), (13, 32), (17, 33)] {
        let c = reference::random_circuit(n, 200, seed);
        let a = plain.statevector::<f64>(&c).unwrap().to_vec_f64();
        // 15 qubits: a stage on a fresh state visits one chunk, large
        // enough that two threads share out each operation's sweep of it.
        for (chunk_qubits, low_qubits) in [(4, 2), (6, 3), (8, 3), (8, 6), (12, 9), (15, 9)] {
            for par in [Parallelism::Sequential, pool()] {
                let blocked = Simulator::new()
                    .with_parallelism(par)
                    .with_fusion(FusionConfig {
                        blocking: CacheBlocking::Chunks {
                            chunk_qubits,
                            low_qubits,
                        },
                        ..FusionConfig::default()
                    });
                let out = blocked
                    .run::<f64>(
                        &c,
                        &RunOptions {
                            keep_state: true,
                            ..RunOptions::default()
                        },
                    )
                    .unwrap();
                if n > chunk_qubits.max(<f64 as Float>::LOG_LANES + 1) {
                    assert!(out.stats.passes < out.stats.applied_ops, "n={n}: no stage");
                }
                let b = out.state.unwrap().to_vec_f64();
                let diff = reference::max_abs_diff(&a, &b);
                assert!(
                    diff < 1e-12,
                    "n={n} chunks {chunk_qubits}/{low_qubits}: {diff:e}"
                );
            }
        }
    }
}

/// Sparse states (GHZ chains, swaps, Toffolis after few Hadamards) leave
/// most chunks and most permuted blocks zero, which the stage and
/// permutation kernels skip: those skips must change nothing.
#[test]
fn sparse_states_skip_only_zero_work() {
    for n in [9u32, 13, 16] {
        let mut c = Circuit::new(n).h(0).h(n - 1);
        for q in 1..n {
            c = c.cx(q - 1, q);
        }
        for q in 0..n / 2 {
            c = c
                .swap(q, n - 1 - q)
                .ccx(q, (q + 3) % n, (q + 5) % n)
                .x((q * 7) % n);
        }
        c = c.rz(0.3, n / 2).cx(n - 1, 0).h(n / 3).cx(n / 3, n - 2);
        let expect = reference::statevector(&c);
        for blocking in [
            CacheBlocking::Off,
            CacheBlocking::Chunks {
                chunk_qubits: 6,
                low_qubits: 3,
            },
        ] {
            for par in [Parallelism::Sequential, pool()] {
                let sim = Simulator::new()
                    .with_parallelism(par)
                    .with_fusion(FusionConfig {
                        blocking,
                        ..FusionConfig::default()
                    });
                let got = sim.statevector::<f64>(&c).unwrap().to_vec_f64();
                let diff = reference::max_abs_diff(&got, &expect);
                assert!(diff < 1e-12, "n={n} {blocking:?}: {diff:e}");
                let unfused = Simulator::new().with_fusion(FusionConfig::disabled());
                let got = unfused.statevector::<f32>(&c).unwrap().to_vec_f64();
                assert!(reference::max_abs_diff(&got, &expect) < 1e-5, "n={n} f32");
            }
        }
    }
}

/// A stage neither reads nor writes the segments of its chunks along a
/// qubit nothing has touched yet: here they hold NaN, which any read
/// would spread, and the result must still equal the plain run on zeros.
#[test]
fn stages_leave_segments_along_untouched_qubits_unread() {
    use crate::op::KernelOp;
    use crate::program::{Instr, Program};
    let n = 11u32;
    let untouched = n - 1;
    // Gates on the other qubits, then on all of them: the first stage that
    // holds the untouched qubit starts with half its segments zero.
    let mut ops = Vec::new();
    for c in [
        reference::random_circuit(n - 1, 120, 41),
        reference::random_circuit(n, 80, 42),
    ] {
        for op in c.ops() {
            if let kettle_ir::Operation::Gate {
                gate,
                qubits,
                controls,
            } = op
            {
                ops.push(KernelOp::from_gate(gate, qubits, controls));
            }
        }
    }
    let amplitude = |i: usize| Complex64::new((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos());
    let plain = Program::compile_gates(ops.clone(), n, &FusionConfig::disabled(), None);
    let mut expect = StateVector::<f64>::from_fn(n, None, |i| {
        if i >> untouched & 1 == 1 {
            Complex64::new(0.0, 0.0)
        } else {
            amplitude(i)
        }
    })
    .unwrap();
    expect.apply_program(&plain, &Parallelism::Sequential);
    let expect = expect.to_vec_f64();
    let shape = CacheBlocking::Chunks {
        chunk_qubits: 7,
        low_qubits: 3,
    }
    .shape::<f64>(2);
    let fusion = FusionConfig::default();
    let staged = Program::compile_gates_on(ops, n, &fusion, shape, !(1 << untouched));
    assert!(
        staged
            .instrs
            .iter()
            .any(|i| matches!(i, Instr::Stage(s) if s.untouched_high != 0)),
        "no stage starts with the untouched qubit inside"
    );
    for par in [Parallelism::Sequential, pool()] {
        let mut state = StateVector::<f64>::from_fn(n, None, |i| {
            if i >> untouched & 1 == 1 {
                Complex64::new(f64::NAN, f64::NAN)
            } else {
                amplitude(i)
            }
        })
        .unwrap();
        state.apply_program(&staged, &par);
        let got = state.to_vec_f64();
        assert!(
            got.iter().all(|a| a.re.is_finite() && a.im.is_finite()),
            "a NaN was read"
        );
        let diff = reference::max_abs_diff(&got, &expect);
        assert!(diff < 1e-12, "{diff:e}");
    }
}

#[test]
fn fusion_on_and_off_agree_to_1e_12() {
    for (n, seed) in [(6u32, 21u64), (12, 22), (17, 23)] {
        let c = reference::random_circuit(n, 150, seed);
        let plain = Simulator::new().with_fusion(FusionConfig::disabled());
        let a = plain.statevector::<f64>(&c).unwrap().to_vec_f64();
        for max_qubits in 2..=5 {
            let fused = Simulator::new().with_fusion(FusionConfig {
                max_qubits,
                ..FusionConfig::default()
            });
            let b = fused.statevector::<f64>(&c).unwrap().to_vec_f64();
            let diff = reference::max_abs_diff(&a, &b);
            assert!(diff < 1e-12, "n={n} max_qubits={max_qubits}: {diff:e}");
        }
    }
}

#[test]
fn same_seed_same_counts_whatever_the_threads() {
    let c = reference::random_circuit(16, 60, 8).measure_all();
    let run = |par: Parallelism, seed: u64| {
        Simulator::new()
            .with_parallelism(par)
            .run::<f64>(
                &c,
                &RunOptions {
                    shots: 5000,
                    seed: Some(seed),
                    keep_state: false,
                    ..Default::default()
                },
            )
            .unwrap()
            .counts
            .to_bitstrings()
    };
    let seq = run(Parallelism::Sequential, 5);
    assert_eq!(seq, run(pool(), 5));
    assert_eq!(seq, run(Parallelism::threads(3).unwrap(), 5));
    assert_ne!(seq, run(Parallelism::Sequential, 6));
    let traj = |par: Parallelism| {
        Simulator::new()
            .with_parallelism(par)
            .run::<f64>(
                &feedback_circuit(),
                &RunOptions {
                    shots: 3000,
                    seed: Some(9),
                    keep_state: false,
                    ..Default::default()
                },
            )
            .unwrap()
            .counts
    };
    assert_eq!(traj(Parallelism::Sequential), traj(pool()));
}

#[test]
fn a_tight_budget_replays_branches_with_the_same_result() {
    let c = feedback_circuit();
    let opts = RunOptions {
        shots: 4000,
        seed: Some(4),
        keep_state: false,
        ..Default::default()
    };
    let roomy = Simulator::new().run::<f64>(&c, &opts).unwrap();
    let one_state = StateVector::<f64>::bytes_for(3) as u64;
    let tight = Simulator::new()
        .with_memory_budget(Some(one_state))
        .run::<f64>(&c, &opts)
        .unwrap();
    assert_eq!(roomy.counts, tight.counts);
    assert_eq!(roomy.stats.replays, 0);
    assert!(tight.stats.replays > 0);
    let err = Simulator::new()
        .with_memory_budget(Some(one_state - 1))
        .run::<f64>(&c, &opts);
    assert!(matches!(err, Err(crate::SimError::MemoryBudget { .. })));
}

#[test]
fn terminal_measurements_are_sampled_not_branched() {
    let c = reference::random_circuit(10, 60, 9).measure_all();
    let out = Simulator::new()
        .run::<f64>(
            &c,
            &RunOptions {
                shots: 1000,
                seed: Some(1),
                keep_state: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(out.stats.branches, 1);
    // The kept state is the pre-measurement state.
    let expect = reference::statevector(&reference::random_circuit(10, 60, 9));
    assert!(reference::max_abs_diff(&out.state.unwrap().to_vec_f64(), &expect) < 1e-12);
}

#[test]
fn invalid_input_is_a_typed_error() {
    let sim = Simulator::new();
    assert!(matches!(
        sim.run::<f64>(&Circuit::new(2).cx(0, 5), &RunOptions::default()),
        Err(crate::SimError::Circuit(_))
    ));
    let big = Circuit::new(45).h(0);
    assert!(matches!(
        sim.with_memory_budget(Some(1 << 30))
            .statevector::<f64>(&big),
        Err(crate::SimError::MemoryBudget { qubits: 45, .. })
    ));
    let mut state = StateVector::<f64>::new(2).unwrap();
    let err = state.apply_gate(
        &Gate::standard(StandardGate::H, &[]),
        &[2],
        &[],
        &Parallelism::Sequential,
    );
    assert!(err.is_err());
    let too_many = RunOptions {
        shots: u64::MAX,
        seed: None,
        keep_state: false,
        ..Default::default()
    };
    assert!(matches!(
        Simulator::new().run::<f64>(&Circuit::new(1).h(0).measure_all(), &too_many),
        Err(crate::SimError::TooManyShots { .. })
    ));
    let bad: Result<PauliSum, _> = "Z9".parse();
    assert!(
        state
            .expectation(&bad.unwrap(), &Parallelism::Sequential)
            .is_err()
    );
}

#[test]
fn both_sampling_methods_follow_the_exact_distribution() {
    // Eight outcomes among 2^10 amplitudes: 1000 shots sweep the sorted
    // uniforms, 5000 draw a multinomial (at least as many shots as
    // amplitudes). Both must match the distribution and count every shot.
    let mut c = Circuit::new(10);
    for op in reference::random_circuit(3, 40, 5).ops() {
        c.push(op.clone());
    }
    let c = c.measure_all();
    for (shots, seed) in [(1000, 4u64), (5000, 5), (1024, 6), (1023, 7)] {
        assert_counts_follow_exact::<f64>(&Simulator::new(), &c, shots, seed);
    }
}

#[test]
fn sampling_skips_zero_probability_states() {
    // |000⟩ + |111⟩ across 12 qubits: nothing else may ever appear.
    let c = Circuit::new(12).h(0).cx(0, 11).measure_all();
    let out = Simulator::new()
        .run::<f64>(
            &c,
            &RunOptions {
                shots: 10_000,
                seed: Some(2),
                keep_state: false,
                ..Default::default()
            },
        )
        .unwrap();
    let keys: BTreeMap<String, u64> = out.counts.to_bitstrings();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains_key("100000000001") && keys.contains_key("000000000000"));
}

/// Permutations with phases on up to 5 qubits spanning low and high qubits:
/// every branch of the monomial kernel (moves, lane selection, weighted terms).
fn monomial_unitaries_match_reference<F: Float>() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(77);
    let n = 9;
    let start = random_state(n, 5);
    for trial in 0..40 {
        let k = 1 + trial % 5;
        let dim = 1usize << k;
        let mut perm: Vec<usize> = (0..dim).collect();
        for i in (1..dim).rev() {
            perm.swap(i, rng.random_range(0..=i));
        }
        let plain = trial % 2 == 0;
        let mut data = vec![Complex64::new(0.0, 0.0); dim * dim];
        for (r, &c) in perm.iter().enumerate() {
            data[r * dim + c] = if plain {
                Complex64::new(1.0, 0.0)
            } else {
                Complex64::from_polar(1.0, rng.random_range(-3.0..3.0))
            };
        }
        let u = UnitaryMatrix::from_entries(k as u32, data).unwrap();
        let qubits = shuffled_qubits(n, &mut rng);
        let targets = &qubits[..k];
        let controls: Vec<Control> = if trial % 3 == 0 {
            vec![Control {
                qubit: qubits[k],
                on: rng.random(),
            }]
        } else {
            vec![]
        };
        let g = Gate::Unitary(u);
        let what = format!("a {k}-qubit monomial");
        let par = Parallelism::Sequential;
        assert_gate_matches_reference::<F>(&start, &g, targets, &controls, &par, &what);
    }
}

#[test]
fn monomial_unitaries() {
    monomial_unitaries_match_reference::<f64>();
    monomial_unitaries_match_reference::<f32>();
}

/// A state larger than one 128 MiB segment of the buffer (f64, 24 qubits),
/// so that blocks on both sides of a gap meet in every kernel and query.
#[test]
fn states_spanning_buffer_gaps_match_reference() {
    let n = 24;
    let c = Circuit::new(n)
        .h(23)
        .h(0)
        .u(0.3, 0.2, 0.1, 22)
        .cx(23, 1)
        .ccx(22, 23, 4)
        .cp(0.7, 2, 23)
        .swap(3, 23)
        .rzz(0.4, 0, 22)
        .controlled(
            Gate::standard(StandardGate::Ry, &[0.9]),
            &[23],
            vec![Control::zero(21)],
        );
    let expect = reference::statevector(&c);
    for par in [Parallelism::Sequential, pool()] {
        let sim = Simulator::new()
            .with_parallelism(par.clone())
            .with_fusion(FusionConfig::disabled());
        let state = sim.statevector::<f64>(&c).unwrap();
        let got = state.to_vec_f64();
        assert!(reference::max_abs_diff(&got, &expect) < 1e-12);
        let p = state.probabilities(&[23, 3], &par).unwrap();
        let mut want = [0.0; 4];
        for (i, a) in expect.iter().enumerate() {
            want[((i >> 23) & 1) | (((i >> 3) & 1) << 1)] += a.norm_sqr();
        }
        for (a, b) in p.iter().zip(want) {
            assert!((a - b).abs() < 1e-12);
        }
        let z: PauliSum = "Z23 X0".parse().unwrap();
        let want = reference::pauli_expectation(&expect, &[(23, 'Z'), (0, 'X')]);
        assert!((state.expectation(&z, &par).unwrap() - want).abs() < 1e-12);
        assert!((state.norm_sqr(&par) - 1.0).abs() < 1e-12);
    }
    let measured = Circuit::new(n).creg("c", 1);
    let measured = c
        .ops()
        .iter()
        .fold(measured, |m, op| m.op(op.clone()))
        .measure(23, 0);
    let out = Simulator::new()
        .run::<f64>(
            &measured,
            &RunOptions {
                shots: 4000,
                seed: Some(1),
                keep_state: false,
                ..Default::default()
            },
        )
        .unwrap();
    let p1: f64 = expect
        .iter()
        .enumerate()
        .filter(|(i, _)| (i >> 23) & 1 == 1)
        .map(|(_, a)| a.norm_sqr())
        .sum();
    let mut probs = BTreeMap::new();
    probs.insert("0".to_string(), 1.0 - p1);
    probs.insert("1".to_string(), p1);
    assert!(reference::chi_square_p_value(&out.counts.to_bitstrings(), &probs, 4000) > 1e-4);
}

/// Counts what it is told and stops after `stop_after` operations.
struct CountingMonitor {
    seen: std::sync::Mutex<Vec<crate::Progress>>,
    stop_after: u64,
}

impl crate::Monitor for CountingMonitor {
    fn on_progress(&self, progress: crate::Progress) -> std::ops::ControlFlow<()> {
        self.seen.lock().unwrap().push(progress);
        if progress.applied >= self.stop_after {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    }
}

#[test]
fn a_monitor_sees_every_operation_and_can_stop_the_run() {
    let sim = Simulator::new().with_fusion(FusionConfig::disabled());
    let circuit = Circuit::new(3)
        .h(0)
        .cx(0, 1)
        .cx(1, 2)
        .rz(0.3, 2)
        .measure_all();
    let options = RunOptions {
        shots: 10,
        seed: Some(1),
        keep_state: false,
        ..Default::default()
    };
    let watcher = CountingMonitor {
        seen: Default::default(),
        stop_after: u64::MAX,
    };
    let out = sim
        .run_monitored::<f64>(&circuit, &options, &watcher)
        .unwrap();
    let seen = watcher.seen.into_inner().unwrap();
    assert_eq!(seen.len(), out.stats.applied_ops);
    assert!(
        seen.iter()
            .enumerate()
            .all(|(i, p)| p.applied == i as u64 + 1 && p.planned == out.stats.applied_ops as u64)
    );

    let stopper = CountingMonitor {
        seen: Default::default(),
        stop_after: 2,
    };
    let err = sim
        .run_monitored::<f64>(&circuit, &options, &stopper)
        .unwrap_err();
    assert!(matches!(err, crate::SimError::Stopped), "{err}");
    assert_eq!(stopper.seen.into_inner().unwrap().len(), 2);

    // With mid-circuit measurements every branch's operations count.
    let counter = CountingMonitor {
        seen: Default::default(),
        stop_after: u64::MAX,
    };
    let options = RunOptions {
        shots: 1000,
        seed: Some(3),
        keep_state: false,
        ..Default::default()
    };
    let out = sim
        .run_monitored::<f64>(&reference::teleportation(), &options, &counter)
        .unwrap();
    assert!(out.stats.branches > 1);
    assert!(counter.seen.into_inner().unwrap().len() > out.stats.applied_ops);
}

#[test]
fn classical_distribution_follows_the_measurement_map() {
    // q0 is |1⟩ and goes to clbit 2; q1 is |+⟩ and goes to clbits 0 and 1.
    let circuit = Circuit::new(2)
        .creg("c", 3)
        .x(0)
        .h(1)
        .measure(0, 2)
        .measure(1, 0)
        .measure(1, 1);
    let finals = crate::final_measurements(&circuit).unwrap();
    let state = Simulator::new().statevector::<f64>(&circuit).unwrap();
    let dist = state
        .classical_distribution(&finals, 3, &Parallelism::Sequential)
        .unwrap();
    assert_eq!(dist.keys().collect::<Vec<_>>(), ["100", "111"]);
    assert!(dist.values().all(|p| (p - 0.5).abs() < 1e-12), "{dist:?}");
    // The sparse form gives the same, within its cap, and nothing past it.
    assert_eq!(
        state.sparse_classical_distribution(&finals, 3, 2).unwrap(),
        Some(dist)
    );
    assert_eq!(
        state.sparse_classical_distribution(&finals, 3, 1).unwrap(),
        None
    );
    // A measured qubit that is not there is an error.
    assert!(
        state
            .sparse_classical_distribution(&[(5, 0)], 3, 2)
            .is_err()
    );
}
