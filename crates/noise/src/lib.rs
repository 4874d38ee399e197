//! Kettle's noise models: Qiskit Aer's serialised `NoiseModel` read into
//! kettle-ir [`Channel`](kettle_ir::Channel)s and
//! [`ReadoutError`](kettle_ir::ReadoutError)s, and applied to a circuit.
//!
//! The format is the dict Aer hands its own C++ core,
//! `NoiseModel.to_dict(serializable=True)`:
//! `{"errors": [{"type": "qerror" | "plerror" | "roerror", "operations",
//! "gate_qubits", "instructions", "probabilities" | "rates"}, …]}`. Because
//! Aer depends on it internally it is, in effect, stable. The semantics
//! follow Aer's loader (`src/noise/noise_model.hpp`, `quantum_error.hpp`,
//! `readout_error.hpp`):
//!
//! - each quantum error is built once, at parse time, into one channel on
//!   its qubits (the mixture of its circuits, each the composition of its
//!   instructions);
//! - an error with `gate_qubits` applies to an operation on exactly those
//!   qubits, in that order; one without applies to every operation of its
//!   name, unless a local error exists for that operation's qubits;
//! - errors on `measure` act before the measurement, all others after;
//! - readout errors are read after each measurement of their qubit.
//!
//! ```
//! use kettle_ir::Circuit;
//! use kettle_noise::NoiseModel;
//! let json = serde_json::json!({"errors": [{
//!     "type": "qerror", "operations": ["x"],
//!     "instructions": [[{"name": "id", "qubits": [0]}], [{"name": "z", "qubits": [0]}]],
//!     "probabilities": [0.9, 0.1]}]});
//! let model = NoiseModel::from_aer_json(&json).unwrap();
//! let noisy = model.apply(&Circuit::new(1).x(0)).unwrap();
//! assert_eq!(noisy.ops().len(), 2);
//! ```

mod error;
mod json;
mod linalg;
mod model;
mod quantum_error;

pub use error::NoiseModelError;
pub use model::NoiseModel;

#[cfg(test)]
mod tests;
