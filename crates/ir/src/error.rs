//! Errors a circuit can have: everything a user can get wrong when building one.

use thiserror::Error;

/// What is wrong with one operation.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum OperationError {
    /// A qubit index is not below the circuit's qubit count.
    #[error("qubit {qubit} is out of range: the circuit has {num_qubits} qubits")]
    QubitOutOfRange {
        /// The index used.
        qubit: u32,
        /// The circuit's qubit count.
        num_qubits: u32,
    },
    /// A classical bit index is not below the circuit's bit count.
    #[error("classical bit {clbit} is out of range: the circuit has {num_clbits} classical bits")]
    ClbitOutOfRange {
        /// The index used.
        clbit: u32,
        /// The circuit's classical bit count.
        num_clbits: u32,
    },
    /// One qubit appears twice among a gate's targets and controls.
    #[error("qubit {qubit} is used twice in one gate")]
    DuplicateQubit {
        /// The repeated qubit.
        qubit: u32,
    },
    /// A gate got the wrong number of target qubits.
    #[error("`{gate}` acts on {expected} qubits but was given {got}")]
    WrongQubitCount {
        /// Gate name.
        gate: &'static str,
        /// Qubits it needs.
        expected: u32,
        /// Qubits given.
        got: usize,
    },
    /// A gate got the wrong number of parameters.
    #[error("gate `{gate}` takes {expected} parameters but was given {got}")]
    WrongParamCount {
        /// Gate name.
        gate: &'static str,
        /// Parameters it needs.
        expected: usize,
        /// Parameters given.
        got: usize,
    },
    /// A parameter is NaN or infinite.
    #[error("gate `{gate}` has a parameter that is not a finite number ({value})")]
    NonFiniteParam {
        /// Gate name.
        gate: &'static str,
        /// The value.
        value: f64,
    },
    /// A matrix's entry count is not `4^qubits`.
    #[error("a matrix on {qubits} qubits needs {} entries, got {len}", 1u64 << (2 * qubits))]
    MatrixShape {
        /// Entries given.
        len: usize,
        /// Qubits claimed.
        qubits: u32,
    },
    /// A matrix acts on more qubits than allowed.
    #[error("a matrix on {qubits} qubits is too large (at most {max})")]
    MatrixTooLarge {
        /// Qubits asked for.
        qubits: u32,
        /// The limit.
        max: u32,
    },
    /// A matrix is not unitary within the tolerance.
    #[error("matrix is not unitary: |U†U − I| reaches {deviation:.3e}, tolerance {tolerance:.1e}")]
    NotUnitary {
        /// Largest entry of `U†U − I`.
        deviation: f64,
        /// The tolerance applied.
        tolerance: f64,
    },
    /// `if` blocks are nested deeper than allowed.
    #[error("conditional blocks are nested more than {max} deep")]
    NestingTooDeep {
        /// The limit.
        max: usize,
    },
}

/// What is wrong with a circuit.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum IrError {
    /// An operation is invalid; `index` is its position in the circuit's
    /// top-level operation list (an `if` block reports the `if`'s position).
    #[error("operation {index}: {error}")]
    Operation {
        /// Position of the top-level operation.
        index: usize,
        /// What is wrong with it.
        error: OperationError,
    },
    /// Two classical registers share a name.
    #[error("classical register `{name}` is declared twice")]
    DuplicateRegister {
        /// The name.
        name: String,
    },
    /// A classical register reaches past the circuit's classical bits.
    #[error(
        "classical register `{name}` does not fit in the circuit's {num_clbits} classical bits"
    )]
    RegisterOutOfRange {
        /// The name.
        name: String,
        /// The circuit's classical bit count.
        num_clbits: u32,
    },
    /// More classical bits than [`MAX_CLBITS`](crate::MAX_CLBITS).
    #[error("the circuit has {num_clbits} classical bits, more than the {max} allowed")]
    TooManyClbits {
        /// Bits declared.
        num_clbits: u32,
        /// The limit.
        max: u32,
    },
    /// A name was looked up that no register has.
    #[error("there is no classical register named `{name}`")]
    UnknownRegister {
        /// The name.
        name: String,
    },
}
