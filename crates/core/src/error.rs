//! Errors of simulation: everything a caller can ask for that cannot be done.

use kettle_ir::{IrError, OperationError};
use thiserror::Error;

/// Why a simulation or a query on a state failed.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum SimError {
    /// The circuit is invalid.
    #[error(transparent)]
    Circuit(#[from] IrError),
    /// A gate applied directly to a state is invalid.
    #[error("invalid gate: {0}")]
    Gate(#[from] OperationError),
    /// The state would not fit in the memory budget; nothing was allocated.
    #[error(
        "{qubits} qubits at {precision} need {needed} bytes, more than the memory budget of {budget} bytes"
    )]
    MemoryBudget {
        /// Qubits asked for.
        qubits: u32,
        /// Precision asked for.
        precision: &'static str,
        /// Bytes the state (and any copies the run needs) would take.
        needed: u128,
        /// The budget.
        budget: u64,
    },
    /// The allocator refused the memory.
    #[error("could not allocate {bytes} bytes for the state vector")]
    OutOfMemory {
        /// Bytes asked for.
        bytes: u128,
    },
    /// A [`Monitor`](crate::Monitor) stopped the run between operations.
    #[error("the run was stopped before it finished")]
    Stopped,
    /// A density matrix larger than a state vector may be.
    #[error(
        "a density matrix of {num_qubits} qubits is too large: at most {max} qubits (its vector has twice as many)"
    )]
    DensityTooLarge {
        /// Qubits of the circuit.
        num_qubits: u32,
        /// The most a density matrix may have.
        max: u32,
    },
    /// More shots than a run may take.
    #[error("{shots} shots asked for; at most {max} per run")]
    TooManyShots {
        /// Shots asked for.
        shots: u64,
        /// The limit.
        max: u64,
    },
    /// A qubit index outside the state.
    #[error("qubit {qubit} is out of range: the state has {num_qubits} qubits")]
    QubitOutOfRange {
        /// The index used.
        qubit: u32,
        /// The state's qubit count.
        num_qubits: u32,
    },
    /// A qubit listed twice where each may appear once.
    #[error("qubit {qubit} is listed twice")]
    DuplicateQubit {
        /// The repeated qubit.
        qubit: u32,
    },
    /// A basis-state index outside the state.
    #[error("basis state {index} is out of range for {num_qubits} qubits")]
    IndexOutOfRange {
        /// The index used.
        index: u64,
        /// The state's qubit count.
        num_qubits: u32,
    },
    /// A gradient that cannot be computed (a circuit that is not unitary up
    /// to its final measurements, an angle that does not exist).
    #[error("cannot compute the gradient: {0}")]
    Gradient(String),
    /// An observable that cannot be read (bad syntax, non-finite weight).
    #[error("invalid observable: {0}")]
    Observable(String),
    /// The CPU lacks instructions this build was compiled to use.
    #[error(
        "this build of Kettle uses {missing}, which this CPU does not have; rebuild without `-C target-cpu` (or with x86-64-v2)"
    )]
    UnsupportedCpu {
        /// The missing feature, e.g. `"avx2"`.
        missing: &'static str,
    },
    /// `KETTLE_SIMD` names no level, or one this CPU cannot run.
    #[error("{0}")]
    SimdSetting(String),
    /// The thread pool could not be created.
    #[error("could not start {threads} worker threads: {message}")]
    ThreadPool {
        /// Threads asked for.
        threads: usize,
        /// The system's reason.
        message: String,
    },
    /// A circuit or group of ranks that a distributed run cannot take.
    #[error("distributed run: {0}")]
    Distributed(String),
    /// Amplitudes given to build a state do not fit the qubit count.
    #[error("{len} amplitudes do not make a state: a state has a power-of-two length")]
    BadAmplitudeCount {
        /// Amplitudes given.
        len: usize,
    },
}
