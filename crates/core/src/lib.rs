//! Kettle's state-vector simulator: the crate library users link, and what
//! the CLI and the job server call.
//!
//! # Brief overview
//!
//! A [`Simulator`] runs a [`kettle_ir::Circuit`] with [`RunOptions`] (shots,
//! seed, whether to keep the state) and returns a [`RunResult`]: [`Counts`]
//! of classical register values and, if asked, the final [`StateVector`].
//! States come in two precisions ([`Float`]: `f64` and `f32`), live in one
//! aligned buffer of blocks (`LANES` real parts, then `LANES` imaginary
//! parts), and answer queries in place: [`StateVector::probabilities`]
//! marginalised onto any qubits, [`StateVector::sample`],
//! [`StateVector::expectation`] of a [`PauliSum`], single amplitudes.
//!
//! Before running, a circuit is compiled: gates are lowered to operations
//! whose matrix shape (diagonal, monomial, dense) picks the kernel, with
//! built-in controls split off so kernels touch only the controlled subspace;
//! runs of gates are fused ([`FusionConfig`]); `if` blocks become jumps; and
//! terminal measurements are sampled from the final state instead of being
//! simulated. Mid-circuit measurements branch the shots (the engine).
//!
//! Noise (channels and readout errors of the IR) runs by one of two
//! [`Method`]s: trajectories on the state vector, where each shot follows
//! one sampled branch of every channel and equal trajectories are simulated
//! once, or the [`DensityMatrix`] held as a vector of twice the qubits, so
//! that the same kernels, fusion and blocking serve both;
//! [`Method::Automatic`] picks the cheaper. [`RunOptions::observables`]
//! gives [`Estimate`]s with their standard errors.
//!
//! Parallelism is always passed in ([`Parallelism`]), never read from a
//! global; results do not depend on the thread count. Memory is checked
//! against an optional budget before anything is allocated
//! ([`StateVector::bytes_for`]). Kernels run at the widest SIMD level the
//! CPU has (AVX-512, AVX2 + FMA or portable), chosen once per process;
//! [`cpu`] says which, and lets `KETTLE_SIMD` lower it.
//!
//! ```
//! use kettle_core::{Parallelism, PauliSum, Simulator};
//! use kettle_ir::Circuit;
//!
//! let state = Simulator::new().statevector::<f64>(&Circuit::new(2).h(0).cx(0, 1)).unwrap();
//! let zz: PauliSum = "Z0 Z1".parse().unwrap();
//! assert!((state.expectation(&zz, &Parallelism::Sequential).unwrap() - 1.0).abs() < 1e-12);
//! ```
//!
//! This crate does no I/O and knows nothing of files, HTTP or async.

mod backend;
mod blocking;
mod buffer;
mod counts;
pub mod cpu;
mod density;
pub mod distributed;
mod engine;
mod error;
mod float;
mod fusion;
mod gradient;
mod kernels;
mod observable;
mod op;
mod par;
mod program;
mod sample;
mod simulator;
mod state;
mod trajectory;

pub use blocking::{CacheBlocking, MAX_CHUNK_BYTES, SEGMENT_BYTES, auto_chunk_bytes};
pub use counts::{ClassicalValue, Counts};
pub use density::{DensityMatrix, MAX_DENSITY_QUBITS, density_noise_bytes};
pub use error::SimError;
pub use float::Float;
pub use fusion::FusionConfig;
pub use gradient::{AngleRef, Gradient};
pub use observable::{Pauli, PauliSum, PauliTerm};
pub use par::{PARALLEL_THRESHOLD, Parallelism};
pub use program::{final_measurements, measured_qubits};
pub use simulator::{
    AUTOMATIC_DENSITY_QUBITS, Estimate, MAX_SHOTS, Method, Monitor, Progress, RunOptions,
    RunResult, RunStats, Simulator,
};
pub use state::{MAX_QUBITS, Precision, StateVector};

#[cfg(test)]
mod noise_tests;
#[cfg(test)]
mod tests;
