//! A state split over 4 ranks: here the ranks are threads of this process
//! (`ThreadGroup`); under `mpirun`, the `kettle` binary built with
//! `--features mpi` passes MPI's ranks through the same `Communicator`.
//! The counts equal a single process's for the same seed.
//!
//! `cargo run --release --example distributed`

use kettle::distributed::{Communicator, ThreadGroup};
use kettle::{Circuit, RunOptions, Simulator};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 16 qubits: a GHZ chain, then a layer of rotations on every qubit.
    let n = 16;
    let mut circuit = Circuit::new(n).h(0);
    for q in 1..n {
        circuit = circuit.cx(q - 1, q);
    }
    for q in 0..n {
        circuit = circuit.ry(0.1 * f64::from(q + 1), q);
    }
    let circuit = circuit.measure_all();
    let sim = Simulator::new();
    let (shots, seed) = (2000, 11);
    let alone = sim.run::<f64>(
        &circuit,
        &RunOptions {
            shots,
            seed: Some(seed),
            ..Default::default()
        },
    )?;
    let options = RunOptions {
        shots,
        seed: Some(seed),
        ..Default::default()
    };
    let per_rank = ThreadGroup::run(4, |comm| {
        let run = sim.run_distributed::<f64>(&circuit, &options, comm)?;
        Ok::<_, kettle::SimError>((comm.rank(), run.exchanged, run.per_gate, run.counts))
    });
    for result in per_rank {
        let (rank, exchanged, per_gate, counts) = result?;
        if let Some(counts) = counts {
            assert_eq!(counts, alone.counts, "the same counts as one process");
            let report = format!(
                "rank {rank}: {} outcomes, the same counts as one process; {} exchange(s), \
                 {} amplitudes sent per rank (a slice per gate on a global qubit: {})\n",
                counts.to_bitstrings().len(),
                exchanged.exchanges,
                exchanged.amplitudes_sent,
                per_gate.amplitudes_sent,
            );
            std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes())?;
        }
    }
    Ok(())
}
