//! Noisy circuits against `kettle-reference`, which follows every Kraus
//! operator and readout exactly: the density matrix to 1e-10, trajectories
//! by a chi-square test and by their standard errors, and the properties a
//! seeded run must keep (the same counts for any thread count, fused or
//! not, with copies or replays).

use std::collections::BTreeMap;

use kettle_ir::{Channel, Circuit, Condition, GateMatrix, Operation, ReadoutError};
use kettle_reference as reference;
use num_complex::Complex64;

use crate::{
    CacheBlocking, Float, FusionConfig, Method, Parallelism, Pauli, PauliSum, RunOptions,
    RunResult, Simulator,
};

fn pool() -> Parallelism {
    Parallelism::Pool(std::sync::Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap(),
    ))
}

/// One channel of every kind, cycling.
fn channel(k: usize) -> (Channel, u32) {
    let c = Complex64::new;
    match k % 11 {
        0 => (Channel::depolarizing(0.1).unwrap(), 1),
        1 => (Channel::amplitude_damping(0.3).unwrap(), 1),
        2 => (Channel::two_qubit_depolarizing(0.2).unwrap(), 2),
        3 => (Channel::phase_damping(0.4).unwrap(), 1),
        4 => (Channel::pauli_channel(0.05, 0.1, 0.15).unwrap(), 1),
        5 => (Channel::generalized_amplitude_damping(0.2, 0.7).unwrap(), 1),
        6 => (Channel::two_qubit_dephasing(0.3).unwrap(), 2),
        7 => (
            Channel::thermal_relaxation(50.0, 40.0, 10.0, 0.1).unwrap(),
            1,
        ),
        8 => (Channel::reset_error(0.1, 0.05).unwrap(), 1),
        9 => (Channel::bit_flip(0.2).unwrap(), 1),
        _ => {
            // A general Kraus map that is no mixture: K0 = √0.7·I and a
            // non-unitary K1 with K1†K1 = 0.3·I rotated (√0.3 times an
            // isometry of a non-symmetric 2×2).
            let (a, b) = (0.3f64.sqrt() * 0.6, 0.3f64.sqrt() * 0.8);
            let k0 = GateMatrix::new(
                1,
                vec![
                    c(0.7f64.sqrt(), 0.),
                    c(0., 0.),
                    c(0., 0.),
                    c(0.7f64.sqrt(), 0.),
                ],
            )
            .unwrap();
            let k1 = GateMatrix::new(1, vec![c(a, 0.), c(0., -b), c(0., b), c(-a, 0.)]).unwrap();
            let k2 = GateMatrix::new(1, vec![c(0., 0.), c(0., 0.), c(0., 0.), c(0., 0.)]).unwrap();
            (Channel::kraus(vec![k0, k1, k2]).unwrap(), 1)
        }
    }
}

/// A random circuit of `gates` gates on `n` qubits with a channel after
/// every `every`-th gate, cycling through every kind.
fn noisy_circuit(n: u32, gates: usize, every: usize, seed: u64) -> Circuit {
    let base = reference::random_circuit(n, gates, seed);
    let mut c = Circuit::new(n);
    for (i, op) in base.ops().iter().enumerate() {
        c.push(op.clone());
        if i % every == 0 {
            let (ch, k) = channel(i / every);
            let q0 = (i as u32 * 7 + seed as u32) % n;
            let qubits: Vec<u32> = (0..k).map(|j| (q0 + j) % n).collect();
            c.push(Operation::Channel {
                channel: ch,
                qubits,
            });
        }
    }
    c
}

fn measured(c: Circuit) -> Circuit {
    c.creg("c", 0).measure_all()
}

fn run<F: Float>(
    sim: &Simulator,
    c: &Circuit,
    shots: u64,
    method: Method,
    observables: Vec<PauliSum>,
) -> RunResult<F> {
    sim.run::<F>(
        c,
        &RunOptions {
            shots,
            seed: Some(11),
            keep_state: true,
            method,
            observables,
        },
    )
    .unwrap()
}

fn observables() -> Vec<PauliSum> {
    ["Z0", "X0 X1 + 0.5*Y1 Z2", "Z0 Z1 Z2 - X2", "Y0 Y1"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

fn letter(p: Pauli) -> char {
    match p {
        Pauli::I => 'I',
        Pauli::X => 'X',
        Pauli::Y => 'Y',
        Pauli::Z => 'Z',
    }
}

/// `Tr(ρO)` of the reference's density matrix.
fn exact_expectation(c: &Circuit, o: &PauliSum) -> f64 {
    let rho = reference::density_matrix(c);
    o.terms
        .iter()
        .map(|t| {
            let term: Vec<(u32, char)> = t.factors.iter().map(|&(q, p)| (q, letter(p))).collect();
            t.coefficient * reference::density_expectation(&rho, &term)
        })
        .sum()
}

fn density_matches_reference<F: Float>(par: Parallelism, fusion: FusionConfig, tol: f64) {
    let sim = Simulator::new().with_parallelism(par).with_fusion(fusion);
    for seed in 0..4 {
        let c = noisy_circuit(3, 24, 2, seed).reset(1).h(1);
        let c = c.channel(Channel::amplitude_damping(0.5).unwrap(), &[1]);
        let out = run::<F>(&sim, &c, 0, Method::DensityMatrix, observables());
        assert_eq!(out.method, Method::DensityMatrix);
        let rho = out.density_matrix.expect("kept");
        assert!((rho.trace() - 1.0).abs() < tol);
        for (o, e) in observables().iter().zip(&out.expectations) {
            let want = exact_expectation(&c, o);
            assert!(
                (e.value - want).abs() < tol,
                "seed {seed}: {} vs {want}",
                e.value
            );
            assert_eq!(e.std_error, 0.0);
        }
        let m = measured(c.clone())
            .readout_error(1, ReadoutError::new([[0.9, 0.1], [0.2, 0.8]]).unwrap());
        let want = reference::exact_distribution(&m);
        let got = rho.classical_distribution(&m).unwrap().expect("final");
        assert_eq!(got.len(), want.len());
        for (k, p) in &want {
            assert!(
                (got[k] - p).abs() < tol,
                "seed {seed} {k}: {} vs {p}",
                got[k]
            );
        }
    }
}

#[test]
fn the_density_matrix_is_exact_f64() {
    density_matches_reference::<f64>(Parallelism::Sequential, FusionConfig::default(), 1e-10);
    density_matches_reference::<f64>(pool(), FusionConfig::disabled(), 1e-10);
}

#[test]
fn the_density_matrix_is_exact_f32() {
    density_matches_reference::<f32>(pool(), FusionConfig::default(), 2e-5);
}

/// Counts against the exact distribution, by chi-square.
fn assert_fits(counts: &BTreeMap<String, u64>, c: &Circuit, shots: u64) {
    let want = reference::exact_distribution(c);
    let p = reference::chi_square_p_value(counts, &want, shots);
    assert!(p > 1e-4, "chi-square p = {p}: {counts:?} vs {want:?}");
}

#[test]
fn trajectories_sample_the_exact_distribution() {
    let shots = 20_000;
    let sim = Simulator::new();
    for seed in 0..3 {
        let c = measured(noisy_circuit(3, 30, 2, seed))
            .readout_error(0, ReadoutError::new([[0.95, 0.05], [0.1, 0.9]]).unwrap());
        let out = run::<f64>(&sim, &c, shots, Method::Statevector, Vec::new());
        assert_eq!(out.method, Method::Statevector);
        assert!(out.stats.branches > 1);
        assert_fits(&out.counts.to_bitstrings(), &c, shots);
        // The density matrix samples the same distribution.
        let out = run::<f64>(&sim, &c, shots, Method::DensityMatrix, Vec::new());
        assert_fits(&out.counts.to_bitstrings(), &c, shots);
    }
}

#[test]
fn noise_works_with_mid_circuit_measurement_reset_and_control() {
    let shots = 20_000;
    let c = Circuit::new(3)
        .creg("c", 3)
        .h(0)
        .channel(Channel::depolarizing(0.2).unwrap(), &[0])
        .cx(0, 1)
        .channel(Channel::amplitude_damping(0.3).unwrap(), &[1])
        .measure(0, 0)
        .readout_error(0, ReadoutError::new([[0.9, 0.1], [0.3, 0.7]]).unwrap())
        .if_then(Condition::bit(0, true), |b| {
            b.x(2).channel(Channel::bit_flip(0.25).unwrap(), &[2])
        })
        .reset(0)
        .channel(Channel::reset_error(0.0, 0.2).unwrap(), &[0])
        .ry(0.7, 0)
        .measure(1, 1)
        .measure(2, 2)
        .measure(0, 0);
    for method in [Method::Statevector, Method::DensityMatrix] {
        for par in [Parallelism::Sequential, pool()] {
            let sim = Simulator::new().with_parallelism(par);
            let out = run::<f64>(&sim, &c, shots, method, Vec::new());
            assert_fits(&out.counts.to_bitstrings(), &c, shots);
        }
    }
}

#[test]
fn a_seed_gives_the_same_counts_for_any_threads_fusion_blocking_or_memory() {
    let c = measured(noisy_circuit(10, 80, 2, 5));
    let one = |sim: Simulator| run::<f64>(&sim, &c, 2_000, Method::Statevector, Vec::new());
    let base = one(Simulator::new());
    assert!(base.stats.branches > 10, "{:?}", base.stats);
    let parallel = one(Simulator::new().with_parallelism(pool()));
    assert_eq!(base.counts, parallel.counts);
    let unfused = one(Simulator::new().with_fusion(FusionConfig::disabled()));
    assert_eq!(base.counts, unfused.counts);
    // Stages of cache blocking inside the segments' windows.
    let blocked = one(Simulator::new().with_fusion(FusionConfig {
        blocking: CacheBlocking::Chunks {
            chunk_qubits: 6,
            low_qubits: 3,
        },
        ..FusionConfig::default()
    }));
    assert_eq!(base.counts, blocked.counts);
    // Room for one state only: every other branch is replayed.
    let bytes = crate::StateVector::<f64>::bytes_for(10) as u64;
    let tight = one(Simulator::new().with_memory_budget(Some(bytes)));
    assert!(tight.stats.replays > 0);
    assert_eq!(base.counts, tight.counts);
    // And the counts fit the exact distribution.
    let small = measured(noisy_circuit(4, 40, 1, 3));
    let out = run::<f64>(
        &Simulator::new().with_memory_budget(Some(crate::StateVector::<f64>::bytes_for(4) as u64)),
        &small,
        20_000,
        Method::Statevector,
        Vec::new(),
    );
    assert!(out.stats.replays > 0);
    assert_fits(&out.counts.to_bitstrings(), &small, 20_000);
}

#[test]
fn trajectory_expectations_come_with_their_standard_error() {
    let c = noisy_circuit(3, 30, 2, 7);
    let sim = Simulator::new();
    let out = run::<f64>(&sim, &c, 4_000, Method::Statevector, observables());
    for (o, e) in observables().iter().zip(&out.expectations) {
        let want = exact_expectation(&c, o);
        assert!(e.std_error > 0.0);
        assert!(
            (e.value - want).abs() < 5.0 * e.std_error,
            "{} ± {} vs {want}",
            e.value,
            e.std_error
        );
    }
    // A noiseless circuit's value is exact.
    let ideal = reference::random_circuit(3, 20, 1);
    let out = run::<f64>(&sim, &ideal, 100, Method::Statevector, observables());
    assert!(out.expectations.iter().all(|e| e.std_error == 0.0));
}

#[test]
fn automatic_picks_the_cheaper_method() {
    let sim = Simulator::new();
    let ideal = measured(reference::random_circuit(4, 20, 1));
    assert_eq!(
        run::<f64>(&sim, &ideal, 1000, Method::Automatic, vec![]).method,
        Method::Statevector
    );
    let noisy = measured(noisy_circuit(4, 20, 1, 1));
    // Many shots, small state: the density matrix.
    assert_eq!(
        run::<f64>(&sim, &noisy, 1000, Method::Automatic, vec![]).method,
        Method::DensityMatrix
    );
    // Rare noise on more qubits: few distinct trajectories.
    let rare = measured(
        Circuit::new(12)
            .h(0)
            .channel(Channel::depolarizing(1e-4).unwrap(), &[0]),
    );
    assert_eq!(
        run::<f64>(&sim, &rare, 100, Method::Automatic, vec![]).method,
        Method::Statevector
    );
    // Too large for a density matrix at all.
    let big = Circuit::new(crate::MAX_DENSITY_QUBITS + 1);
    let err = sim
        .run::<f64>(
            &big,
            &RunOptions {
                method: Method::DensityMatrix,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("density matrix"), "{err}");
}
