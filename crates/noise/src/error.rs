//! The one error type of this crate: what is wrong with a noise model, and
//! where in its JSON (a JSONPath such as `$.errors[3].instructions[0][1]`).

use thiserror::Error;

/// Why a noise model could not be read or applied.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum NoiseModelError {
    /// The JSON document is not a noise model Kettle can use.
    #[error("{path}: {message}")]
    Invalid {
        /// Where: a JSONPath into the document (`$.errors[0].probabilities`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An error acts on more qubits than the operation it is attached to
    /// (Aer refuses the same at run time).
    #[error(
        "a {error_qubits}-qubit error is attached to `{operation}` on qubits {qubits:?}, which has fewer qubits"
    )]
    ErrorWiderThanOperation {
        /// The operation's name.
        operation: String,
        /// Its qubits.
        qubits: Vec<u32>,
        /// How many qubits the error acts on.
        error_qubits: u32,
    },
    /// `if` blocks nested deeper than [`kettle_ir::MAX_NESTING`].
    #[error("the circuit nests if blocks deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
}
