//! A state vector distributed over ranks: `2^p` ranks each hold a slice of
//! `2^(n-p)` amplitudes, `p` qubits global (at the start, those the run
//! never needs local, else the top `p`). Gates on local qubits run on each
//! slice with the core's kernels; diagonal gates and controls on global
//! qubits need no communication; other gates on global qubits are reached
//! by swapping them with local ones, lazily and several at a time, in one
//! exchange ([`layout`](self::Layout)). The ranks talk through a
//! [`Communicator`]; the `kettle` binary provides one over MPI.

mod comm;
mod layout;
mod state;

pub use comm::{Communicator, ThreadGroup, ThreadRank};
pub use layout::{ExchangeVolume, Layout};
pub use state::{DistributedRun, DistributedState, planned_exchanges};

#[cfg(test)]
mod tests;
