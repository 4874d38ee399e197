//! Kernel benches: the time of ONE gate applied to a state vector kept
//! across iterations, per kernel kind, plus a plain memory pass of the same
//! bytes to compare with in the same run.
//!
//! Groups (benchmark ids are `<group>/<precision>/n<N>/<what>/t<threads>/<simd>`,
//! e.g. `dense1q/f64/n24/q22/t1/avx512`, `diagonal/f64/n24/cp_q2_23/t1/avx2`):
//!
//! - `dense1q`: `u(θ, φ, λ)` on qubit 1 (inside a SIMD block) and on qubit
//!   n−2; f64 and f32, n = 20, 24, 26.
//! - `dense2q`: a dense 4×4 unitary on (3, n−1); `dense4q`: a dense 16×16
//!   unitary on (0, 3, n−3, n−1).
//! - `diagonal`: `rz` on n−2, `cp` on (2, n−1), `rzz` on (1, n−1).
//! - `permutation`: `x` on n−2, `cx` (1, n−1), `swap` (0, n−1), `ccx` (0, 5, n−1).
//! - `controlled`: `ch` (control n−1, target 4), and `cu` (control n−2, target
//!   4) with two extra negative controls (0 and n−1).
//! - `in_cache`: the same kinds of kernels on a 256 KiB state (n = 14 at
//!   f64, 15 at f32) that stays in the L2 cache: the cost of one operation
//!   inside a stage of cache blocking, with `rxry2q` (rx ⊗ ry, terms real or
//!   imaginary) beside `dense2q`. One thread.
//! - `memory_pass`: `x = x·s + 1e-300` over a `Vec<f64>` of `16·2^n` bytes
//!   (the f64 state's size), split over the threads with scoped threads.
//!
//! Every kernel runs at each SIMD level in `KETTLE_BENCH_SIMD` (a comma
//! list such as `avx512,avx2,portable`; default: every level this CPU runs),
//! as the last part of its id, in one run of one binary.
//!
//! Everything except `dense1q` and `memory_pass` runs at f64, n = 20 and 24.
//! Thread counts come from `KETTLE_BENCH_THREADS` (default `1`), e.g.
//! `KETTLE_BENCH_THREADS=1,2`. Throughput is in amplitudes (elements) per
//! second. See `benches/README.md`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::SplitMix64;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use kettle_core::{Float, Parallelism, StateVector, cpu};
use kettle_ir::{Control, Gate, MatrixKind, Qubit, StandardGate, UnitaryMatrix};

/// Sizes of every group but `dense1q` and `memory_pass`.
const SIZES: [u32; 2] = [20, 24];
/// Sizes of `dense1q` and `memory_pass`.
const SIZES_1Q: [u32; 3] = [20, 24, 26];

/// One gate application: what to apply, where, and its id fragment.
struct Case {
    what: String,
    gate: Gate,
    targets: Vec<Qubit>,
    controls: Vec<Control>,
}

impl Case {
    fn new(what: String, gate: Gate, targets: &[Qubit]) -> Case {
        Case {
            what,
            gate,
            targets: targets.to_vec(),
            controls: Vec::new(),
        }
    }

    fn std(gate: StandardGate, params: &[f64], targets: &[Qubit]) -> Case {
        let q: Vec<String> = targets.iter().map(u32::to_string).collect();
        let what = format!("{}_q{}", gate.name(), q.join("_"));
        Case::new(what, Gate::standard(gate, params), targets)
    }
}

/// The thread counts to run and a parallelism for each (pools built once).
fn pools() -> Vec<(usize, Parallelism)> {
    common::thread_counts()
        .into_iter()
        .map(|t| (t, common::parallelism(t)))
        .collect()
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

/// Benchmarks `case` applied over and over to one `n`-qubit state at
/// precision `F`. The state is allocated (and its pages touched) only if the
/// benchmark is selected by the filter, and lives across iterations.
fn bench_case<F: Float>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    n: u32,
    case: &Case,
    pools: &[(usize, Parallelism)],
) {
    group.throughput(Throughput::Elements(1u64 << n));
    let mut state: Option<StateVector<F>> = None;
    for (t, par) in pools {
        for level in common::simd_levels() {
            let id = format!("{}/n{n}/{}/t{t}/{level}", F::NAME, case.what);
            group.bench_function(id, |b| {
                cpu::set_simd_level(Some(level)).expect("a level this CPU runs");
                let state = state.get_or_insert_with(|| {
                    let mut s = StateVector::<F>::new(n).expect("state fits in memory");
                    // One dense pass maps every page of the lazily zeroed buffer.
                    s.apply_gate(&Gate::standard(StandardGate::H, &[]), &[n - 1], &[], par)
                        .expect("valid gate");
                    s
                });
                b.iter(|| {
                    state
                        .apply_gate(&case.gate, &case.targets, &case.controls, par)
                        .expect("valid gate");
                });
            });
        }
    }
}

fn dense1q(c: &mut Criterion) {
    let pools = pools();
    let mut group = c.benchmark_group("dense1q");
    configure(&mut group);
    let gate = Gate::standard(StandardGate::U, &[0.7, 1.3, -0.4]);
    for n in SIZES_1Q {
        for q in [1, n - 2] {
            let case = Case::new(format!("q{q}"), gate.clone(), &[q]);
            bench_case::<f64>(&mut group, n, &case, &pools);
        }
    }
    for n in SIZES_1Q {
        for q in [1, n - 2] {
            let case = Case::new(format!("q{q}"), gate.clone(), &[q]);
            bench_case::<f32>(&mut group, n, &case, &pools);
        }
    }
    group.finish();
}

/// `rx(0.3) ⊗ ry(0.5)`: a dense 4×4 whose entries are each real or purely
/// imaginary, which the dense kernel runs with half the multiply-adds of
/// `dense2q` (rqc's fused blocks look like this).
fn structured_2q() -> Gate {
    let rx = Gate::standard(StandardGate::Rx, &[0.3]).matrix();
    let ry = Gate::standard(StandardGate::Ry, &[0.5]).matrix();
    let m = ry.kron(&rx);
    assert_eq!(m.kind(), MatrixKind::Dense);
    Gate::Unitary(UnitaryMatrix::new(m).expect("a product of unitaries is unitary"))
}

/// A `Gate::Unitary` from a dense `k`-qubit matrix (checked to be dense, so
/// the dense kernel is what gets measured).
fn dense_gate(k: u32, seed: u64) -> Gate {
    let m = common::dense_unitary(k, seed);
    assert_eq!(m.kind(), MatrixKind::Dense);
    assert!(
        m.data().iter().all(|z| z.norm() > 0.0),
        "the {k}-qubit bench matrix has zero entries"
    );
    Gate::Unitary(UnitaryMatrix::new(m).expect("a product of unitaries is unitary"))
}

fn dense_multi(c: &mut Criterion) {
    let pools = pools();
    let mut group = c.benchmark_group("dense2q");
    configure(&mut group);
    let g2 = dense_gate(2, 2);
    for n in SIZES {
        let case = Case::new(format!("q3_{}", n - 1), g2.clone(), &[3, n - 1]);
        bench_case::<f64>(&mut group, n, &case, &pools);
    }
    group.finish();

    let mut group = c.benchmark_group("dense4q");
    configure(&mut group);
    let g4 = dense_gate(4, 4);
    for n in SIZES {
        let qubits = [0, 3, n - 3, n - 1];
        let case = Case::new(format!("q0_3_{}_{}", n - 3, n - 1), g4.clone(), &qubits);
        bench_case::<f64>(&mut group, n, &case, &pools);
    }
    group.finish();
}

fn diagonal(c: &mut Criterion) {
    let pools = pools();
    let mut group = c.benchmark_group("diagonal");
    configure(&mut group);
    for n in SIZES {
        let cases = [
            Case::std(StandardGate::Rz, &[0.37], &[n - 2]),
            Case::std(StandardGate::Cp, &[0.37], &[2, n - 1]),
            Case::std(StandardGate::Rzz, &[0.37], &[1, n - 1]),
        ];
        for case in &cases {
            bench_case::<f64>(&mut group, n, case, &pools);
        }
    }
    group.finish();
}

fn permutation(c: &mut Criterion) {
    let pools = pools();
    let mut group = c.benchmark_group("permutation");
    configure(&mut group);
    for n in SIZES {
        let cases = [
            Case::std(StandardGate::X, &[], &[n - 2]),
            Case::std(StandardGate::Cx, &[], &[1, n - 1]),
            Case::std(StandardGate::Swap, &[], &[0, n - 1]),
            Case::std(StandardGate::Ccx, &[], &[0, 5, n - 1]),
        ];
        for case in &cases {
            bench_case::<f64>(&mut group, n, case, &pools);
        }
    }
    group.finish();
}

fn controlled(c: &mut Criterion) {
    let pools = pools();
    let mut group = c.benchmark_group("controlled");
    configure(&mut group);
    let mut rng = SplitMix64::new(5);
    let cu_params = [
        rng.uniform(0.2, 3.0),
        rng.uniform(0.0, 6.0),
        rng.uniform(0.0, 6.0),
        rng.uniform(0.0, 6.0),
    ];
    for n in SIZES {
        let ch = Case::std(StandardGate::Ch, &[], &[n - 1, 4]);
        let mut cu = Case::new(
            format!("cu_q{}_4_neg0_{}", n - 2, n - 1),
            Gate::standard(StandardGate::Cu, &cu_params),
            &[n - 2, 4],
        );
        cu.controls = vec![Control::zero(0), Control::zero(n - 1)];
        for case in [&ch, &cu] {
            bench_case::<f64>(&mut group, n, case, &pools);
        }
    }
    group.finish();
}

/// One read+write pass: `x = x·s + 1e-300` over `v`.
fn pass(v: &mut [f64], s: f64) {
    for x in v.iter_mut() {
        *x = *x * s + 1e-300;
    }
}

/// [`pass`] split into `threads` contiguous chunks on scoped threads (the
/// calling thread takes one; spawning costs some tens of microseconds).
fn pass_threads(v: &mut [f64], s: f64, threads: usize) {
    if threads <= 1 {
        pass(v, s);
        return;
    }
    let chunk = v.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut chunks = v.chunks_mut(chunk);
        let first = chunks.next();
        for c in chunks {
            scope.spawn(move || pass(c, s));
        }
        if let Some(c) = first {
            pass(c, s);
        }
    });
}

fn memory_pass(c: &mut Criterion) {
    let threads = common::thread_counts();
    let mut group = c.benchmark_group("memory_pass");
    configure(&mut group);
    for n in SIZES_1Q {
        // A complex128 state of n qubits: 2^n amplitudes of two f64.
        let len = 2usize << n;
        group.throughput(Throughput::Elements(1u64 << n));
        for &t in &threads {
            let mut v: Option<Vec<f64>> = None;
            group.bench_function(format!("f64/n{n}/pass/t{t}"), |b| {
                // `vec![1.0; len]` writes, so every page is mapped up front.
                let v = v.get_or_insert_with(|| vec![1.0; len]);
                let s = black_box(1.000_000_001);
                b.iter(|| {
                    pass_threads(black_box(v.as_mut_slice()), s, t);
                });
                black_box(v[len / 3]);
            });
        }
    }
    group.finish();
}

/// Kernels on a state the size of one chunk of cache blocking (256 KiB:
/// 2^14 amplitudes at f64, 2^15 at f32), which stays in the L2 cache:
/// what each operation inside a stage costs. One thread.
fn in_cache(c: &mut Criterion) {
    let pools = [(1, Parallelism::Sequential)];
    let mut group = c.benchmark_group("in_cache");
    configure(&mut group);
    group.measurement_time(Duration::from_secs(2));
    let cases = |n: u32| {
        vec![
            Case::new(
                "u_q1".into(),
                Gate::standard(StandardGate::U, &[0.7, 1.3, -0.4]),
                &[1],
            ),
            Case::new(
                format!("u_q{}", n - 2),
                Gate::standard(StandardGate::U, &[0.7, 1.3, -0.4]),
                &[n - 2],
            ),
            Case::std(StandardGate::Rx, &[0.3], &[n - 3]),
            Case::new(
                format!("dense2q_q3_{}", n - 1),
                dense_gate(2, 2),
                &[3, n - 1],
            ),
            Case::new(format!("rxry2q_q3_{}", n - 1), structured_2q(), &[3, n - 1]),
            Case::new(
                format!("dense3q_q2_7_{}", n - 1),
                dense_gate(3, 3),
                &[2, 7, n - 1],
            ),
            Case::std(StandardGate::Rz, &[0.3], &[n - 2]),
            Case::std(StandardGate::Cz, &[], &[2, n - 1]),
            Case::std(StandardGate::Cx, &[], &[1, n - 1]),
        ]
    };
    for case in cases(14) {
        bench_case::<f64>(&mut group, 14, &case, &pools);
    }
    for case in cases(15) {
        bench_case::<f32>(&mut group, 15, &case, &pools);
    }
    group.finish();
}

criterion::criterion_group!(
    benches,
    in_cache,
    dense1q,
    dense_multi,
    diagonal,
    permutation,
    controlled,
    memory_pass
);
criterion::criterion_main!(benches);
