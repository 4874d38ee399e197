//! Circuit benches: whole-circuit simulation to the final f64 state, as the
//! peer harness (`../shared/bench-peers`) times it: each iteration builds a
//! `Simulator`, allocates the state and runs every gate
//! (`Simulator::statevector::<f64>`).
//!
//! Groups `qft` and `brickwork` (the shapes of `qft_N` and `rqc_N` in
//! bench-peers, 20 brick-work layers), ids `<fusion>/n<N>/t<threads>`:
//! `fused` (`FusionConfig::default()`) at n = 20, 24, 26 and `unfused`
//! (`FusionConfig::disabled()`) at n = 20, 24. Thread counts come from
//! `KETTLE_BENCH_THREADS` (default `1`). Before its first measurement each
//! benchmark prints one line: gates in the circuit and operations applied
//! after fusion. Group `planner` times compilation alone (lowering, fusion,
//! cache blocking) of the same shapes at n = 26 and 30, throughput in gates.
//! See `benches/README.md`.

// The one-line summaries go to stdout next to criterion's own output.
#![allow(clippy::print_stdout)]

mod common;

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput};
use kettle_core::{FusionConfig, RunOptions, Simulator};
use kettle_ir::Circuit;

/// Sizes with fusion on; fusion off runs the first two only.
const SIZES: [u32; 3] = [20, 24, 26];
const UNFUSED_SIZES: [u32; 2] = [20, 24];

fn bench_family(c: &mut Criterion, family: &str, make: fn(u32) -> Circuit) {
    let threads = common::thread_counts();
    let mut group = c.benchmark_group(family);
    // Runs take from milliseconds (n = 20) to seconds (n = 26, or n = 24
    // without fusion): 10 flat samples of at least one run each. Criterion
    // warns when 10 runs do not fit in the measurement time; that is expected.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let configs = [
        ("fused", FusionConfig::default(), &SIZES[..]),
        ("unfused", FusionConfig::disabled(), &UNFUSED_SIZES[..]),
    ];
    for (label, fusion, sizes) in configs {
        for &n in sizes {
            let circuit = make(n);
            circuit.validate().expect("generated circuits are valid");
            group.throughput(Throughput::Elements(1u64 << n));
            for &t in &threads {
                let sim = Simulator::new()
                    .with_parallelism(common::parallelism(t))
                    .with_fusion(fusion);
                let id = format!("{label}/n{n}/t{t}");
                let mut announced = false;
                group.bench_function(&id, |b| {
                    if !announced {
                        announced = true;
                        // No shots and no state wanted: compiles, runs nothing.
                        let stats = sim
                            .run::<f64>(&circuit, &RunOptions::default())
                            .expect("circuit compiles")
                            .stats;
                        println!(
                            "{family}/{id}: {} gates, {} ops applied in {} passes",
                            stats.gates, stats.applied_ops, stats.passes
                        );
                    }
                    b.iter(|| sim.statevector::<f64>(&circuit).expect("simulation runs"));
                });
            }
        }
    }
    group.finish();
}

fn qft(c: &mut Criterion) {
    bench_family(c, "qft", common::qft);
}

fn brickwork(c: &mut Criterion) {
    bench_family(c, "brickwork", |n| {
        common::brickwork(n, common::BRICKWORK_LAYERS, common::BRICKWORK_SEED)
    });
}

/// The planner alone: lowering, fusion and cache blocking of a whole
/// circuit, no state (a run with no shots and no state wanted compiles the
/// circuit and stops). Ids `<family>/n<N>`, f64 chunk shapes.
fn planner(c: &mut Criterion) {
    let mut group = c.benchmark_group("planner");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let sim = Simulator::new();
    for n in [26, 30] {
        let circuits = [
            ("qft", common::qft(n)),
            (
                "brickwork",
                common::brickwork(n, common::BRICKWORK_LAYERS, common::BRICKWORK_SEED),
            ),
        ];
        for (family, circuit) in circuits {
            group.throughput(Throughput::Elements(circuit.ops().len() as u64));
            group.bench_function(format!("{family}/n{n}"), |b| {
                b.iter(|| {
                    sim.run::<f64>(&circuit, &RunOptions::default())
                        .expect("circuit compiles")
                        .stats
                })
            });
        }
    }
    group.finish();
}

criterion::criterion_group!(benches, planner, qft, brickwork);
criterion::criterion_main!(benches);
