//! Kettle: an exact, fast state-vector quantum circuit emulator.
//!
//! This facade re-exports the pieces a library user needs: the circuit IR
//! ([`kettle_ir`]: [`Circuit`], gates, conditions), the simulator
//! ([`kettle_core`]: [`Simulator`], [`StateVector`], observables) and the
//! front ends ([`qasm`]: OpenQASM 2 today). Depend on the member crates
//! directly for a smaller build.
//!
//! ```
//! use kettle::{Circuit, RunOptions, Simulator};
//!
//! let ghz = Circuit::new(3).h(0).cx(0, 1).cx(1, 2).measure_all();
//! let result = Simulator::new()
//!     .run::<f64>(&ghz, &RunOptions { shots: 100, seed: Some(1), ..Default::default() })
//!     .unwrap();
//! assert_eq!(result.counts.get("000") + result.counts.get("111"), 100);
//! ```

pub use kettle_core::{
    AngleRef, ClassicalValue, Counts, DensityMatrix, Estimate, Float, FusionConfig, Gradient,
    MAX_QUBITS, MAX_SHOTS, Method, Parallelism, Pauli, PauliSum, PauliTerm, Precision, RunOptions,
    RunResult, RunStats, SimError, Simulator, StateVector, cpu, distributed,
};
pub use kettle_noise as noise;
pub use kettle_qasm as qasm;

pub use kettle_ir::{
    Channel, ChannelError, Circuit, ClassicalRegister, Clbit, Complex64, Condition, Control, Gate,
    GateMatrix, IrError, MAX_CLBITS, MatrixKind, Operation, OperationError, Qubit, ReadoutError,
    StandardGate, UnitaryMatrix,
};
