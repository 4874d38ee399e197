//! The quantum Fourier transform of a basis state, checked against the
//! formula: QFT|x⟩ = 2^{-n/2} Σ_k e^{2πi·x·k/2^n} |k⟩.
//!
//! `cargo run --release --example qft -- 20` (qubit count, default 12)

use std::f64::consts::PI;

use kettle::{Circuit, Parallelism, Simulator};

fn qft(n: u32, x: u64) -> Circuit {
    let mut c = Circuit::new(n);
    for q in 0..n {
        if (x >> q) & 1 == 1 {
            c = c.x(q);
        }
    }
    for j in (0..n).rev() {
        c = c.h(j);
        for k in (0..j).rev() {
            c = c.cp(PI / f64::from(1u32 << (j - k)), k, j);
        }
    }
    for q in 0..n / 2 {
        c = c.swap(q, n - 1 - q);
    }
    c
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = std::env::args().nth(1).map_or(Ok(12), |a| a.parse())?;
    let x = 0b1011 % (1 << n);
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let sim = Simulator::new().with_parallelism(Parallelism::threads(threads)?);
    let start = std::time::Instant::now();
    let state = sim.statevector::<f64>(&qft(n, x))?;
    let elapsed = start.elapsed();
    let dim = (1u64 << n) as f64;
    let worst = (0..1u64 << n)
        .map(|k| {
            let phase = 2.0 * PI * (x as f64) * (k as f64) / dim;
            let want = kettle::Complex64::from_polar(dim.sqrt().recip(), phase);
            (state.amplitude(k).expect("in range") - want).norm()
        })
        .fold(0.0, f64::max);
    let report = format!("QFT on {n} qubits: {elapsed:.2?}, largest error {worst:.1e}\n");
    std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes())?;
    Ok(())
}
