//! A Bell pair: sample it, read its state, and measure ⟨Z0 Z1⟩.
//!
//! `cargo run --release --example bell`

use kettle::{Circuit, Parallelism, PauliSum, RunOptions, Simulator};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bell = Circuit::new(2).h(0).cx(0, 1).measure_all();
    let sim = Simulator::new();
    let out = sim.run::<f64>(
        &bell,
        &RunOptions {
            shots: 1000,
            seed: Some(7),
            keep_state: true,
            ..Default::default()
        },
    )?;
    let state = out.state.expect("asked for the state");
    let zz: PauliSum = "Z0 Z1".parse()?;
    let report = format!(
        "counts: {:?}\nstate: {:?}\n<Z0 Z1> = {}\nseed: {}\n",
        out.counts.to_bitstrings(),
        state.to_vec_f64(),
        state.expectation(&zz, &Parallelism::Sequential)?,
        out.seed
    );
    std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes())?;
    Ok(())
}
