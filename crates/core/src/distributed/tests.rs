//! Distributed runs (ranks as threads) against single-process runs.

use kettle_ir::{Circuit, Control, Gate, Operation, StandardGate};
use kettle_reference as reference;

use super::ThreadGroup;
use crate::error::SimError;
use crate::fusion::FusionConfig;
use crate::par::Parallelism;
use crate::simulator::{RunOptions, Simulator};
use crate::{CacheBlocking, Float};

/// Options that keep the final state and draw no shots.
fn keep_state() -> RunOptions {
    RunOptions {
        keep_state: true,
        seed: Some(0),
        ..RunOptions::default()
    }
}

/// The state of `circuit` run over `ranks` ranks, gathered on rank 0, and
/// the amplitudes each rank sent.
fn distributed<F: Float>(
    sim: &Simulator,
    circuit: &Circuit,
    ranks: usize,
) -> (Vec<num_complex::Complex64>, u64, u64) {
    let out = ThreadGroup::run(ranks, |comm| {
        let run = sim
            .run_distributed::<F>(circuit, &keep_state(), comm)
            .unwrap();
        (
            run.state.unwrap().gather(),
            run.exchanged.amplitudes_sent,
            run.per_gate.amplitudes_sent,
        )
    });
    let sent = out[0].1;
    assert!(out.iter().all(|o| o.1 == sent), "every rank sends as much");
    let per_gate = out[0].2;
    (out.into_iter().next().unwrap().0.unwrap(), sent, per_gate)
}

/// The peer benchmark's qft: a product-state preparation, the transform,
/// and the swaps that reverse the qubits.
fn qft(n: u32) -> Circuit {
    let mut c = Circuit::new(n);
    for q in 0..n {
        c = c.ry(0.3 + f64::from(q), q).rz(0.1 * f64::from(q), q);
    }
    for j in (0..n).rev() {
        c = c.h(j);
        for k in (0..j).rev() {
            c.push(Operation::Gate {
                gate: Gate::standard(
                    StandardGate::Cp,
                    &[std::f64::consts::PI / f64::from(1 << (j - k))],
                ),
                qubits: vec![k, j],
                controls: vec![],
            });
        }
    }
    for q in 0..n / 2 {
        c = c.swap(q, n - 1 - q);
    }
    c
}

#[test]
fn distributed_runs_equal_the_single_process_to_1e_12() {
    let plain = Simulator::new();
    let blocked = Simulator::new()
        .with_parallelism(Parallelism::threads(2).unwrap())
        .with_fusion(FusionConfig {
            blocking: CacheBlocking::Chunks {
                chunk_qubits: 5,
                low_qubits: 3,
            },
            ..FusionConfig::default()
        });
    for (n, seed) in [(7u32, 1u64), (10, 2), (12, 3)] {
        let c = reference::random_circuit(n, 250, seed);
        let expect = plain.statevector::<f64>(&c).unwrap().to_vec_f64();
        for ranks in [2, 4, 8] {
            for sim in [&plain, &blocked] {
                let (got, _, _) = distributed::<f64>(sim, &c, ranks);
                let diff = reference::max_abs_diff(&got, &expect);
                assert!(diff < 1e-12, "n={n} ranks={ranks}: {diff:e}");
            }
            let (got, _, _) = distributed::<f32>(&plain, &c, ranks);
            assert!(reference::max_abs_diff(&got, &expect) < 1e-4, "f32 n={n}");
        }
    }
}

#[test]
fn zero_messages_cross_as_flags_and_clear_what_they_replace() {
    // GHZ: every slice is zero but for at most two amplitudes, so most
    // messages of its exchanges are zero; a rank whose amplitude leaves
    // receives zeros in its place. (The Hadamard's product state makes
    // qubit 0 global, and the last cx needs it local; with every other
    // qubit flipped, both amplitudes move whatever it trades with.) Then a
    // layer of `h` makes the state dense, and the next exchanges send every
    // amplitude.
    let sim = Simulator::new();
    for (n, ranks) in [(12u32, 2usize), (13, 4), (14, 8), (14, 2)] {
        let mut c = Circuit::new(n).h(0);
        for q in 1..n {
            c = c.cx(q - 1, q);
        }
        for q in 1..n {
            c = c.x(q);
        }
        c = c.cx(n - 1, 0);
        let sparse = c.clone();
        for q in 0..n {
            c = c.h(q).cx(q, (q + 1) % n);
        }
        for (circuit, dense) in [(&sparse, false), (&c, true)] {
            let expect = sim.statevector::<f64>(circuit).unwrap().to_vec_f64();
            let out = ThreadGroup::run(ranks, |comm| {
                let run = sim
                    .run_distributed::<f64>(circuit, &keep_state(), comm)
                    .unwrap();
                let f32_state = sim
                    .run_distributed::<f32>(circuit, &keep_state(), comm)
                    .unwrap()
                    .state
                    .unwrap()
                    .gather();
                let state = run.state.unwrap().gather();
                (
                    state,
                    f32_state,
                    run.exchanged.amplitudes_sent,
                    run.sent_as_zero,
                )
            });
            let (got, got_f32) = (out[0].0.as_ref().unwrap(), out[0].1.as_ref().unwrap());
            let diff = reference::max_abs_diff(got, &expect);
            assert!(diff < 1e-12, "n={n} ranks={ranks} dense={dense}: {diff:e}");
            assert!(
                reference::max_abs_diff(got_f32, &expect) < 1e-5,
                "f32 n={n}"
            );
            let sent: u64 = out.iter().map(|o| o.2).sum();
            let zero: u64 = out.iter().map(|o| o.3).sum();
            assert!(sent > 0, "n={n} ranks={ranks}: no exchange");
            // Zero messages of the GHZ part are all but the one message per
            // rank that holds its amplitude.
            let per_message = (super::state::MESSAGE_BYTES / 16) as u64;
            assert!(
                zero >= sent - ranks as u64 * per_message || dense,
                "n={n} ranks={ranks}: {zero} of {sent} as zero"
            );
            assert!(zero < sent, "n={n} ranks={ranks}: every message zero");
        }
    }
    // `rxx` on local 4 and global 5 of 6 qubits: the one position left to
    // trade is inside a SIMD block at f32, so the exchange goes amplitude
    // by amplitude; rank 0's amplitudes leave, and rank 1's zeros take
    // their places. (The ring of cx needs qubits 0–3 local before the
    // `rxx`, so 5 stays global from the start.)
    let mut c = Circuit::new(6).x(4);
    for q in 0..4 {
        c = c.h(q);
    }
    for q in 0..4 {
        c = c.cx(q, (q + 1) % 4);
    }
    gate(&mut c, StandardGate::Rxx, &[0.4], &[4, 5], vec![]);
    let expect = sim.statevector::<f64>(&c).unwrap().to_vec_f64();
    let out = ThreadGroup::run(2, |comm| {
        let run = sim.run_distributed::<f32>(&c, &keep_state(), comm).unwrap();
        (run.state.unwrap().gather(), run.sent_as_zero)
    });
    let got = out[0].0.as_ref().unwrap();
    assert!(reference::max_abs_diff(got, &expect) < 1e-5);
    assert_eq!((out[0].1, out[1].1), (0, 16), "rank 1 sends zeros only");
}

#[test]
fn a_permutation_onto_untouched_global_qubits_moves_the_work_with_it() {
    // X on global 5 where global 4 reads 0: the state, until now on the
    // ranks labelled 00 alone, now sits on those labelled 10, whose bit 5
    // no operation had touched; the h after it must run there.
    let sim = Simulator::new();
    let mut c = Circuit::new(6).h(0);
    gate(&mut c, StandardGate::X, &[], &[5], vec![Control::zero(4)]);
    let c = c.h(1).cx(1, 2);
    let expect = sim.statevector::<f64>(&c).unwrap().to_vec_f64();
    for ranks in [4, 8] {
        let (got, sent, _) = distributed::<f64>(&sim, &c, ranks);
        assert_eq!(sent, 0);
        assert!(
            reference::max_abs_diff(&got, &expect) < 1e-12,
            "{ranks} ranks"
        );
    }
}

#[test]
fn many_seeded_circuits_with_controls_agree() {
    let sim = Simulator::new();
    for seed in 0..40u64 {
        let n = 6 + (seed % 5) as u32;
        let mut c = reference::random_circuit(n, 60, 100 + seed);
        // Extra controls on the top qubits, which are global.
        c.push(Operation::Gate {
            gate: Gate::standard(StandardGate::Ry, &[0.3 + seed as f64]),
            qubits: vec![0],
            controls: vec![Control::one(n - 1), Control::zero(n - 2)],
        });
        c.push(Operation::Gate {
            gate: Gate::standard(StandardGate::Rz, &[0.7]),
            qubits: vec![n - 1],
            controls: vec![Control::one(1)],
        });
        let expect = sim.statevector::<f64>(&c).unwrap().to_vec_f64();
        let ranks = 1 << (1 + seed % 3);
        let (got, _, _) = distributed::<f64>(&sim, &c, ranks);
        let diff = reference::max_abs_diff(&got, &expect);
        assert!(diff < 1e-12, "seed {seed} ranks {ranks}: {diff:e}");
    }
}

#[test]
fn a_run_over_ranks_reports_progress_between_passes_and_exchanges() {
    let sim = Simulator::new().with_fusion(FusionConfig {
        blocking: CacheBlocking::Chunks {
            chunk_qubits: 5,
            low_qubits: 3,
        },
        ..FusionConfig::default()
    });
    let c = reference::random_circuit(10, 200, 7);
    let out = ThreadGroup::run(4, |comm| {
        let seen = std::sync::Mutex::new(Vec::new());
        let run = sim
            .run_distributed_reporting::<f64>(&c, &keep_state(), comm, &|p| {
                seen.lock().unwrap().push(p);
            })
            .unwrap();
        (run.exchanged.exchanges, seen.into_inner().unwrap())
    });
    let (exchanges, reports) = &out[0];
    assert!(*exchanges >= 2, "{exchanges}");
    let planned = reports[0].planned;
    assert!(reports.iter().all(|p| p.planned == planned));
    assert!(
        reports.windows(2).all(|w| w[0].applied <= w[1].applied),
        "{reports:?}"
    );
    // Reports inside the one run of gates: after its passes and exchanges.
    let inside = reports
        .iter()
        .filter(|p| p.applied > 0 && p.applied < planned)
        .count() as u64;
    assert!(inside > *exchanges, "{exchanges} exchanges: {reports:?}");
    assert_eq!(reports.last().unwrap().applied, planned);
}

#[test]
fn lazy_batched_exchanges_move_less_than_a_slice_per_gate() {
    let sim = Simulator::new();
    let c = qft(12);
    let expect = sim.statevector::<f64>(&c).unwrap().to_vec_f64();
    for ranks in [2, 4, 8] {
        let (got, sent, per_gate) = distributed::<f64>(&sim, &c, ranks);
        assert!(reference::max_abs_diff(&got, &expect) < 1e-12);
        // Every h on a global qubit needs one swap here, so the gain is
        // half a slice per gate and what batching saves on top.
        assert!(
            sent * 2 <= per_gate,
            "ranks {ranks}: {sent} against {per_gate}"
        );
    }
}

#[test]
fn counts_equal_the_single_process_for_a_seed() {
    let sim = Simulator::new();
    // Large enough for the sweep across ranks (slices of several pieces),
    // and small ones that are gathered.
    for (n, shots, seed) in [(16u32, 3000u64, 7u64), (15, 20_000, 8), (6, 500, 9)] {
        let c = reference::random_circuit(n, 150, seed).measure_all();
        let options = RunOptions {
            shots,
            seed: Some(seed),
            ..RunOptions::default()
        };
        let single = sim.run::<f64>(&c, &options).unwrap().counts;
        assert_eq!(single.shots(), shots);
        for ranks in [2, 4, 8] {
            let got = ThreadGroup::run(ranks, |comm| {
                let run = sim.run_distributed::<f64>(&c, &options, comm).unwrap();
                assert_eq!(run.seed, seed);
                run.counts
            });
            assert!(got[1..].iter().all(Option::is_none));
            assert_eq!(got[0].as_ref().unwrap(), &single, "n={n} ranks={ranks}");
        }
    }
}

#[test]
fn what_it_cannot_run_is_an_error() {
    let sim = Simulator::new();
    let options = RunOptions {
        shots: 10,
        ..RunOptions::default()
    };
    let refused = |ranks: usize, c: &Circuit| {
        let errors = ThreadGroup::run(ranks, |comm| {
            sim.run_distributed::<f64>(c, &options, comm).err()
        });
        assert!(
            errors
                .iter()
                .all(|e| matches!(e, Some(SimError::Distributed(_)))),
            "{errors:?}"
        );
    };
    let noisy = Circuit::new(6)
        .h(0)
        .channel(kettle_ir::Channel::depolarizing(0.1).unwrap(), &[5])
        .measure_all();
    refused(2, &noisy);
    refused(3, &Circuit::new(6).h(0));
    refused(8, &Circuit::new(4).swap(0, 3));
    let too_many = RunOptions {
        shots: crate::MAX_SHOTS + 1,
        ..RunOptions::default()
    };
    let errors = ThreadGroup::run(2, |comm| {
        sim.run_distributed::<f64>(&Circuit::new(6).h(0), &too_many, comm)
            .err()
    });
    assert!(matches!(errors[0], Some(SimError::TooManyShots { .. })));
}

/// Counts, the state kept and expectation values of a dynamic circuit run
/// by `sim` over `ranks` ranks against one process, for the same seed.
fn assert_dynamic_run_agrees(sim: &Simulator, c: &Circuit, shots: u64, seed: u64, ranks: usize) {
    use crate::observable::PauliSum;
    let n = c.num_qubits();
    let observables: Vec<PauliSum> = [format!("Z0 X{}", n - 1), format!("Y{}", n - 2)]
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    let options = RunOptions {
        shots,
        seed: Some(seed),
        keep_state: true,
        observables,
        ..RunOptions::default()
    };
    let single = Simulator::new().run::<f64>(c, &options).unwrap();
    let expect = single.state.as_ref().unwrap().to_vec_f64();
    let out = ThreadGroup::run(ranks, |comm| {
        let run = sim.run_distributed::<f64>(c, &options, comm).unwrap();
        let state = run.state.as_ref().unwrap().gather();
        let stats = run.stats;
        (
            run.counts,
            state,
            run.expectations,
            stats.branches,
            stats.replays,
        )
    });
    let (counts, state, expectations, branches, replays) = &out[0];
    assert_eq!(
        *branches, single.stats.branches,
        "ranks {ranks} seed {seed}"
    );
    let diff = reference::max_abs_diff(state.as_ref().unwrap(), &expect);
    assert!(diff < 1e-12, "ranks {ranks} seed {seed}: state {diff:e}");
    assert_eq!(
        counts.as_ref().unwrap(),
        &single.counts,
        "ranks {ranks} seed {seed}"
    );
    if sim.memory_budget().is_some() && *branches > 1 {
        assert!(*replays > 0, "the budget held no copy");
    }
    for rank in &out {
        for (got, want) in rank.2.iter().zip(&single.expectations) {
            assert!((got.value - want.value).abs() < 1e-12, "ranks {ranks}");
            assert!((got.std_error - want.std_error).abs() < 1e-12);
        }
    }
    assert_eq!(expectations.len(), 2);
    assert!(out[1..].iter().all(|o| o.0.is_none() && o.1.is_none()));
}

#[test]
fn mid_circuit_measurement_reset_and_classical_control_agree() {
    let sim = Simulator::new();
    // 300 circuits of 6-9 qubits: 3 global qubits of 6 at 8 ranks, so
    // measurements, resets and conditions land on global qubits often.
    for seed in 0..300u64 {
        let n = 6 + (seed % 4) as u32;
        let c = reference::random_dynamic_circuit(n, 6, 500 + seed);
        let ranks = 1 << (1 + seed % 3);
        assert_dynamic_run_agrees(&sim, &c, 200, seed, ranks);
    }
    // The textbook ones (3 qubits: two ranks at most for their cx).
    for c in [reference::teleportation(), crate::tests::feedback_circuit()] {
        assert_dynamic_run_agrees(&sim, &c, 1000, 4, 2);
    }
}

#[test]
fn dynamic_circuits_with_slices_of_many_pieces_agree() {
    // Slices long enough for the sampling sweep across ranks, with copies
    // of slices at every branch, and with a budget that allows none (every
    // branch replayed).
    let c = reference::random_dynamic_circuit(15, 5, 77);
    let sim = Simulator::new();
    for ranks in [2, 4] {
        assert_dynamic_run_agrees(&sim, &c, 3000, 5, ranks);
    }
    // One slice of 14 qubits per rank fits, a copy does not.
    let tight =
        Simulator::new().with_memory_budget(Some(crate::StateVector::<f64>::bytes_for(14) as u64));
    assert_dynamic_run_agrees(&tight, &c, 3000, 5, 2);
}

#[test]
fn probabilities_and_expectations_equal_the_single_process() {
    use crate::observable::PauliSum;
    let sim = Simulator::new();
    let labels = [
        "Z0",
        "X0",
        "Y1",
        "Z9",
        "X9",
        "Y8 Z9",
        "X9 X8",
        "Y9 Y0",
        "X3 Y7 Z9",
        "0.5 * Z0 Z1 + 0.25 * X9 Y2",
    ];
    let observables: Vec<PauliSum> = labels.iter().map(|l| l.parse().unwrap()).collect();
    for seed in 0..6u64 {
        let c = reference::random_circuit(10, 120, 300 + seed).measure_all();
        let single = sim.statevector::<f64>(&c).unwrap();
        let finals = crate::final_measurements(&c).unwrap();
        // A few measured qubits, mapped to clbits out of order.
        let some: Vec<_> = finals
            .iter()
            .copied()
            .filter(|&(q, _)| q % 3 != 1)
            .collect();
        let expect = single
            .classical_distribution(&some, c.num_clbits(), &Parallelism::Sequential)
            .unwrap();
        let values: Vec<f64> = observables
            .iter()
            .map(|o| single.expectation(o, &Parallelism::Sequential).unwrap())
            .collect();
        for ranks in [2, 4, 8] {
            let out = ThreadGroup::run(ranks, |comm| {
                let run = sim.run_distributed::<f64>(&c, &keep_state(), comm).unwrap();
                let state = run.state.unwrap();
                let dist = state.classical_distribution(&some, c.num_clbits()).unwrap();
                let e: Vec<f64> = observables
                    .iter()
                    .map(|o| state.expectation(o).unwrap())
                    .collect();
                (dist, e)
            });
            let dist = out[0].0.as_ref().unwrap();
            assert_eq!(
                dist.keys().collect::<Vec<_>>(),
                expect.keys().collect::<Vec<_>>()
            );
            for (k, p) in &expect {
                assert!((dist[k] - p).abs() < 1e-12, "seed {seed} ranks {ranks} {k}");
            }
            assert!(out[1..].iter().all(|o| o.0.is_none()));
            for (rank, (_, e)) in out.iter().enumerate() {
                for ((got, want), label) in e.iter().zip(&values).zip(labels) {
                    assert!(
                        (got - want).abs() < 1e-12,
                        "seed {seed} ranks {ranks} rank {rank} {label}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn exchange_figures_count_every_branch() {
    // h on the global qubit, measured, h again: the first run once, the
    // second on each outcome's branch.
    let c = Circuit::new(6)
        .creg("c", 2)
        .h(5)
        .measure(5, 0)
        .h(5)
        .measure(5, 1);
    let options = RunOptions {
        shots: 100,
        seed: Some(1),
        ..RunOptions::default()
    };
    let sim = Simulator::new();
    let out = ThreadGroup::run(2, |comm| {
        let run = sim.run_distributed::<f64>(&c, &options, comm).unwrap();
        (run.stats.branches, run.per_gate, run.exchanged)
    });
    let (branches, per_gate, made) = out[0];
    assert_eq!(branches, 2);
    assert_eq!(per_gate.exchanges, 3, "{per_gate:?}");
    // The first h starts each rank's product state; each branch swaps the
    // qubit in for its h and back in order for sampling.
    assert_eq!(made.exchanges, 4, "{made:?}");
    assert!(out.iter().all(|o| o.1 == per_gate && o.2 == made));
}

/// A gate of `circuit`'s standard set on `qubits` with `controls`.
fn gate(c: &mut Circuit, g: StandardGate, params: &[f64], qubits: &[u32], controls: Vec<Control>) {
    c.push(Operation::Gate {
        gate: Gate::standard(g, params),
        qubits: qubits.to_vec(),
        controls,
    });
}

#[test]
fn permutations_on_global_qubits_relabel_ranks_and_move_no_amplitude() {
    let sim = Simulator::new();
    for seed in 0..60u64 {
        // Some with slices of many pieces: sampled by the sweep across
        // ranks, in label order.
        let n = if seed % 10 == 0 {
            15
        } else {
            7 + (seed % 3) as u32
        };
        let ranks = 1usize << (1 + seed % 3);
        let global: Vec<u32> = (n - ranks.trailing_zeros()..n).collect();
        // Every other circuit starts sparse: its global qubits untouched
        // until a permutation or a controlled gate spreads the state there,
        // which ranks and exchanges must notice (`DistributedState::touched`).
        let mut c = Circuit::new(n);
        for q in 0..if seed % 2 == 0 { n } else { 2 } {
            c = c.h(q);
        }
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m) as u32
        };
        for _ in 0..80 {
            let g = global[next(global.len() as u64) as usize];
            let l = next(u64::from(n - ranks.trailing_zeros()));
            let l2 = (l + 1) % (n - ranks.trailing_zeros());
            let angle = f64::from(next(628)) / 100.0;
            // Another global qubit and a third, where there are.
            let g2 = global[(global.iter().position(|&q| q == g).unwrap() + 1) % global.len()];
            let g3 = global[(global.iter().position(|&q| q == g).unwrap() + 2) % global.len()];
            let on = next(2) == 1;
            match next(16) {
                9 if g2 != g => gate(
                    &mut c,
                    StandardGate::X,
                    &[],
                    &[g2],
                    vec![Control { qubit: g, on }],
                ),
                10 if g2 != g => gate(
                    &mut c,
                    StandardGate::Y,
                    &[],
                    &[g],
                    vec![Control { qubit: g2, on }],
                ),
                11 if g3 != g => gate(&mut c, StandardGate::Ccx, &[], &[g, g2, g3], vec![]),
                12 if g3 != g => gate(
                    &mut c,
                    StandardGate::Swap,
                    &[],
                    &[g, g2],
                    vec![Control { qubit: g3, on }],
                ),
                13 if g2 != g => gate(&mut c, StandardGate::Rzz, &[angle], &[g, g2], vec![]),
                14 if g3 != g => gate(&mut c, StandardGate::Cswap, &[], &[g2, g3, g], vec![]),
                15 if g2 != g => {
                    // Not its own inverse: a cycle of the four basis
                    // states, with phases.
                    let mut m = vec![num_complex::Complex64::new(0.0, 0.0); 16];
                    for r in 0..4 {
                        m[r * 4 + (r + 3) % 4] =
                            num_complex::Complex64::from_polar(1.0, angle * r as f64);
                    }
                    let u =
                        kettle_ir::UnitaryMatrix::new(kettle_ir::GateMatrix::new(2, m).unwrap())
                            .unwrap();
                    c.push(Operation::Gate {
                        gate: Gate::Unitary(u),
                        qubits: vec![g, g2],
                        controls: vec![],
                    });
                }
                0 => gate(&mut c, StandardGate::X, &[], &[g], vec![]),
                1 => gate(&mut c, StandardGate::Y, &[], &[g], vec![]),
                2 => gate(&mut c, StandardGate::Cz, &[], &[g, l], vec![]),
                3 => gate(&mut c, StandardGate::Rz, &[angle], &[g], vec![]),
                4 => gate(
                    &mut c,
                    StandardGate::Ry,
                    &[angle],
                    &[l],
                    vec![Control::one(g)],
                ),
                5 => {
                    let other = if g == global[0] { l } else { global[0] };
                    gate(&mut c, StandardGate::Cp, &[angle], &[g, other], vec![]);
                }
                6 => gate(&mut c, StandardGate::X, &[], &[l2], vec![Control::zero(g)]),
                7 => gate(&mut c, StandardGate::U, &[angle, 0.3, 0.2], &[l], vec![]),
                _ => gate(&mut c, StandardGate::Cx, &[], &[l, l2], vec![]),
            }
        }
        let expect = sim.statevector::<f64>(&c).unwrap().to_vec_f64();
        let (got, sent, per_gate) = distributed::<f64>(&sim, &c, ranks);
        let diff = reference::max_abs_diff(&got, &expect);
        assert!(diff < 1e-12, "seed {seed} ranks {ranks}: {diff:e}");
        assert_eq!(
            sent, 0,
            "seed {seed}: permutations on global qubits exchange nothing"
        );
        assert!(per_gate > 0, "seed {seed}: the per-gate scheme would have");
        // Measured, sampled and read through the flipped labels alike.
        let mut measured = c.clone();
        measured.push(Operation::Measure {
            qubit: global[0],
            clbit: 0,
        });
        gate(&mut measured, StandardGate::X, &[], &[global[0]], vec![]);
        measured.push(Operation::Reset { qubit: global[0] });
        gate(&mut measured, StandardGate::H, &[], &[global[0]], vec![]);
        measured = measured.measure_all();
        assert_dynamic_run_agrees(&sim, &measured, 300, seed, ranks);
    }
}
