//! Kettle's circuit IR: the bottom of the workspace.
//!
//! # Brief overview
//!
//! A [`Circuit`] has qubits, classical bits grouped in named
//! [`ClassicalRegister`]s, and a list of [`Operation`]s: unitary gates,
//! measurements, resets, barriers and [`Condition`]al blocks. A gate is a
//! [`Gate`]: a [`StandardGate`] of the catalogue with its angles, or an
//! explicit [`UnitaryMatrix`] (checked to be unitary when built); any gate can
//! carry extra positive or negative [`Control`]s. Every gate has its
//! [`GateMatrix`], whose [`MatrixKind`] (diagonal, monomial, dense) tells the
//! simulator which kernel applies it.
//!
//! Bit order is Qiskit's everywhere: qubit 0 is the least significant bit of a
//! basis-state index, and for a gate on qubits `[q0, q1, …]` bit `i` of its
//! matrix index is `qubits[i]`.
//!
//! ```
//! use kettle_ir::Circuit;
//! let bell = Circuit::new(2).h(0).cx(0, 1).measure_all();
//! bell.validate().unwrap();
//! ```
//!
//! This crate does no I/O and knows nothing of files, HTTP or async.

mod channel;
mod circuit;
mod error;
mod gate;
mod matrix;

pub use channel::{
    CHANNEL_TOLERANCE, Channel, ChannelError, ChannelForm, MAX_CHANNEL_QUBITS, ReadoutError,
};
pub use circuit::{
    Circuit, ClassicalRegister, Clbit, Condition, Control, MAX_CLBITS, MAX_NESTING, Operation,
    Qubit, check_gate,
};
pub use error::{IrError, OperationError};
pub use gate::{Gate, StandardGate};
pub use matrix::{GateMatrix, MAX_MATRIX_QUBITS, MatrixKind, UNITARY_TOLERANCE, UnitaryMatrix};
pub use num_complex::Complex64;

#[cfg(test)]
mod textbook_tests;
