//! Grover search: find one marked basis state among 2^n with about
//! (π/4)·√(2^n) oracle calls, and watch the success probability.
//!
//! `cargo run --release --example grover -- 10 613` (qubits, marked state)

use std::f64::consts::PI;

use kettle::{Circuit, Control, Gate, Parallelism, RunOptions, Simulator, StandardGate};

/// A phase flip of |marked⟩: Z on qubit 0, controlled by every other qubit
/// in the state `marked` asks for.
fn flip(c: Circuit, n: u32, marked: u64) -> Circuit {
    let controls = (1..n)
        .map(|q| Control {
            qubit: q,
            on: (marked >> q) & 1 == 1,
        })
        .collect();
    let c = if marked & 1 == 0 { c.x(0) } else { c };
    let c = c.controlled(Gate::standard(StandardGate::Z, &[]), &[0], controls);
    if marked & 1 == 0 { c.x(0) } else { c }
}

fn grover(n: u32, marked: u64, iterations: u32) -> Circuit {
    let mut c = (0..n).fold(Circuit::new(n), |c, q| c.h(q));
    for _ in 0..iterations {
        c = flip(c, n, marked);
        // Diffusion: reflect about the uniform superposition.
        c = (0..n).fold(c, |c, q| c.h(q));
        c = flip(c, n, 0);
        c = (0..n).fold(c, |c, q| c.h(q));
    }
    c.measure_all()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().map_or(Ok(8), |a| a.parse())?;
    let marked: u64 = args
        .next()
        .map_or(Ok(0b1010_0101 % (1 << n)), |a| a.parse())?;
    if !(2..=24).contains(&n) || marked >= 1 << n {
        return Err("usage: grover [qubits 2..=24] [marked < 2^qubits]".into());
    }
    let theta = (1.0 / f64::from(1u32 << n).sqrt()).asin();
    let best = (PI / (4.0 * theta) - 0.5).round() as u32;
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let sim = Simulator::new().with_parallelism(Parallelism::threads(threads)?);
    let mut report = format!(
        "searching {} states for {marked} ({marked:0n$b})\n",
        1u64 << n,
        n = n as usize
    );
    for k in [best / 2, best, best + best / 2] {
        let out = sim.run::<f64>(
            &grover(n, marked, k),
            &RunOptions {
                shots: 1000,
                seed: Some(1),
                ..Default::default()
            },
        )?;
        let key = format!("{marked:0n$b}", n = n as usize);
        let hits = out.counts.get(&key);
        let theory = ((2 * k + 1) as f64 * theta).sin().powi(2);
        report.push_str(&format!(
            "{k:>4} iterations: {hits:>4}/1000 shots found it (theory {:.1}%)\n",
            100.0 * theory
        ));
    }
    std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes())?;
    Ok(())
}
