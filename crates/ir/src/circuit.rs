//! Circuits: qubits, classical bits in named registers, and an ordered list
//! of operations, with validation and a fluent builder.

use std::collections::{HashMap, HashSet};

use smallvec::SmallVec;

use crate::channel::{Channel, ReadoutError};
use crate::error::{IrError, OperationError};
use crate::gate::{Gate, StandardGate};
use crate::matrix::UnitaryMatrix;

/// Index of a qubit. Qubit 0 is the least significant bit of a basis-state index.
pub type Qubit = u32;
/// Index of a classical bit. In a bitstring, bit 0 is the rightmost character.
pub type Clbit = u32;

/// How deep `if` blocks may nest; deeper circuits are refused by
/// [`Circuit::validate`] so that nothing recursing over them can overflow.
pub const MAX_NESTING: usize = 64;

/// The most classical bits a circuit may have. Every shot carries a copy of
/// all of them, so the bound keeps a short circuit text from asking for
/// gigabytes.
pub const MAX_CLBITS: u32 = 1 << 16;

/// A control qubit and the state it must be in for the gate to act.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Control {
    /// The control qubit.
    pub qubit: Qubit,
    /// `true`: acts when the qubit is |1⟩ (`ctrl @`); `false`: when it is |0⟩ (`negctrl @`).
    pub on: bool,
}

impl Control {
    /// A control that fires on |1⟩.
    pub fn one(qubit: Qubit) -> Control {
        Control { qubit, on: true }
    }

    /// A control that fires on |0⟩.
    pub fn zero(qubit: Qubit) -> Control {
        Control { qubit, on: false }
    }
}

/// A test on classical bits: `bits`, read as a little-endian integer
/// (`clbits[0]` is bit 0), equals `value`.
///
/// OpenQASM 2's `if (c == 5)` is the register's bits with value 5;
/// OpenQASM 3's `if (c[0])` is one bit with value 1 and `if (!c[0])` value 0.
/// Bits from position 64 on must be 0 for the test to hold.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Condition {
    /// The bits compared, least significant first.
    pub clbits: Vec<Clbit>,
    /// The value they must hold.
    pub value: u64,
}

impl Condition {
    /// One bit must be `value`.
    pub fn bit(clbit: Clbit, value: bool) -> Condition {
        Condition {
            clbits: vec![clbit],
            value: u64::from(value),
        }
    }

    /// The bits, read as an integer, must equal `value`.
    pub fn equals(clbits: Vec<Clbit>, value: u64) -> Condition {
        Condition { clbits, value }
    }

    /// Evaluates the test, reading bits through `bit`.
    pub fn holds(&self, bit: impl Fn(Clbit) -> bool) -> bool {
        self.clbits.iter().enumerate().all(|(i, &c)| {
            let want = i < 64 && (self.value >> i) & 1 == 1;
            bit(c) == want
        }) && (self.clbits.len() >= 64 || self.value >> self.clbits.len() == 0)
    }
}

/// One step of a circuit.
#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    /// A unitary gate on `qubits` (in the gate's own qubit order), acting only
    /// where every control holds.
    Gate {
        /// The unitary.
        gate: Gate,
        /// Its qubits, as many as [`Gate::num_qubits`].
        qubits: Vec<Qubit>,
        /// Extra controls (beyond those built into gates like `cx`).
        controls: Vec<Control>,
    },
    /// Measure `qubit` in the Z basis into `clbit`.
    Measure {
        /// Qubit measured.
        qubit: Qubit,
        /// Bit written.
        clbit: Clbit,
    },
    /// Reset `qubit` to |0⟩.
    Reset {
        /// Qubit reset.
        qubit: Qubit,
    },
    /// A compiler barrier; no effect on the state.
    Barrier {
        /// Qubits it spans.
        qubits: Vec<Qubit>,
    },
    /// A noise channel on `qubits` (as many as [`Channel::num_qubits`], in
    /// the channel's own qubit order).
    Channel {
        /// The channel.
        channel: Channel,
        /// Its qubits.
        qubits: Vec<Qubit>,
    },
    /// Reads `clbit` back with a classical error: flips it with the
    /// probability the error gives for its value. Noise models put one
    /// after each measurement of a qubit with a readout error.
    ReadoutError {
        /// The bit read.
        clbit: Clbit,
        /// Its error.
        error: ReadoutError,
    },
    /// Runs `then_ops` if `condition` holds, else `else_ops`.
    IfElse {
        /// The test, evaluated when the operation is reached.
        condition: Condition,
        /// Operations run when it holds.
        then_ops: Vec<Operation>,
        /// Operations run otherwise.
        else_ops: Vec<Operation>,
    },
}

impl Operation {
    /// A gate without extra controls.
    pub fn gate(gate: Gate, qubits: Vec<Qubit>) -> Operation {
        Operation::Gate {
            gate,
            qubits,
            controls: Vec::new(),
        }
    }

    /// Whether the operation is a unitary gate (no measurement, reset,
    /// noise or branch).
    pub fn is_unitary(&self) -> bool {
        matches!(self, Operation::Gate { .. } | Operation::Barrier { .. })
    }

    /// Whether the operation is noise: a channel or a readout error.
    pub fn is_noise(&self) -> bool {
        matches!(
            self,
            Operation::Channel { .. } | Operation::ReadoutError { .. }
        )
    }
}

/// A named group of consecutive classical bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassicalRegister {
    /// Its name (`c`, `meas`, …).
    pub name: String,
    /// First bit.
    pub start: Clbit,
    /// Number of bits.
    pub size: u32,
}

impl ClassicalRegister {
    /// The register's bits, least significant first.
    pub fn clbits(&self) -> Vec<Clbit> {
        (self.start..self.start + self.size).collect()
    }
}

/// A quantum circuit.
///
/// Build one with the fluent methods (`Circuit::new(2).h(0).cx(0, 1)`) or
/// [`push`](Circuit::push); nothing is checked while building, and
/// [`validate`](Circuit::validate) (which every simulator calls) reports the
/// first problem as a typed [`IrError`].
#[derive(Clone, Default, PartialEq)]
pub struct Circuit {
    num_qubits: u32,
    num_clbits: u32,
    registers: Vec<ClassicalRegister>,
    /// Where the first register of each name is in `registers`.
    register_index: RegisterIndex,
    ops: Vec<Operation>,
}

impl std::fmt::Debug for Circuit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Circuit")
            .field("num_qubits", &self.num_qubits)
            .field("num_clbits", &self.num_clbits)
            .field("registers", &self.registers)
            .field("ops", &self.ops)
            .finish()
    }
}

/// Register names → the position of the first register of that name, so
/// looking a register up (and refusing a duplicate) does not scan them all:
/// a JSON or OpenQASM program may declare tens of thousands of registers,
/// and scanning made reading it quadratic. Derived from `registers` alone, so
/// it takes no part in equality.
#[derive(Clone, Default)]
struct RegisterIndex(HashMap<String, usize>);

impl PartialEq for RegisterIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

macro_rules! fixed_gates {
    ($($(#[$doc:meta])* $method:ident => $gate:ident ($($q:ident),*);)*) => {$(
        $(#[$doc])*
        pub fn $method(self, $($q: Qubit),*) -> Self {
            self.standard(StandardGate::$gate, &[], &[$($q),*])
        }
    )*};
}

macro_rules! param_gates {
    ($($(#[$doc:meta])* $method:ident => $gate:ident ($($p:ident),*; $($q:ident),*);)*) => {$(
        $(#[$doc])*
        pub fn $method(self, $($p: f64,)* $($q: Qubit),*) -> Self {
            self.standard(StandardGate::$gate, &[$($p),*], &[$($q),*])
        }
    )*};
}

impl Circuit {
    /// An empty circuit on `num_qubits` qubits, with no classical bits.
    pub fn new(num_qubits: u32) -> Circuit {
        Circuit {
            num_qubits,
            ..Circuit::default()
        }
    }

    /// Number of qubits.
    pub fn num_qubits(&self) -> u32 {
        self.num_qubits
    }

    /// Number of classical bits.
    pub fn num_clbits(&self) -> u32 {
        self.num_clbits
    }

    /// Whether any operation, at any nesting, is noise (a channel or a
    /// readout error).
    pub fn is_noisy(&self) -> bool {
        fn any_noise(ops: &[Operation]) -> bool {
            ops.iter().any(|op| match op {
                Operation::IfElse {
                    then_ops, else_ops, ..
                } => any_noise(then_ops) || any_noise(else_ops),
                op => op.is_noise(),
            })
        }
        any_noise(&self.ops)
    }

    /// Whether any operation, at any nesting, measures a qubit.
    pub fn measures_anything(&self) -> bool {
        fn any_measure(ops: &[Operation]) -> bool {
            ops.iter().any(|op| match op {
                Operation::Measure { .. } => true,
                Operation::IfElse {
                    then_ops, else_ops, ..
                } => any_measure(then_ops) || any_measure(else_ops),
                _ => false,
            })
        }
        any_measure(&self.ops)
    }

    /// Classical registers, in declaration order.
    pub fn registers(&self) -> &[ClassicalRegister] {
        &self.registers
    }

    /// The register called `name`.
    pub fn register(&self, name: &str) -> Option<&ClassicalRegister> {
        self.register_index
            .0
            .get(name)
            .and_then(|&i| self.registers.get(i))
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }

    /// Appends an operation (checked later by [`validate`](Circuit::validate)).
    pub fn push(&mut self, op: Operation) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// Appends `ops` (checked later by [`validate`](Circuit::validate)).
    ///
    /// Parsers build a program's operations in a vector of their own: when
    /// the circuit has none yet, that vector becomes the circuit's, trimmed
    /// to its length. Pushing one by one would hold two copies of a
    /// million-operation program at the peak, each with its growth slack.
    pub fn append_ops(&mut self, mut ops: Vec<Operation>) -> &mut Self {
        if self.ops.is_empty() {
            ops.shrink_to_fit();
            self.ops = ops;
        } else {
            self.ops.append(&mut ops);
        }
        self
    }

    /// Declares a classical register of `size` new bits after the existing ones
    /// and returns it.
    ///
    /// # Errors
    /// [`IrError::DuplicateRegister`] if the name is taken.
    pub fn add_register(&mut self, name: &str, size: u32) -> Result<&ClassicalRegister, IrError> {
        if self.register(name).is_some() {
            return Err(IrError::DuplicateRegister { name: name.into() });
        }
        let start = self.num_clbits;
        self.num_clbits = start.saturating_add(size);
        self.register_index
            .0
            .insert(name.into(), self.registers.len());
        self.registers.push(ClassicalRegister {
            name: name.into(),
            start,
            size,
        });
        Ok(self.registers.last().expect("just pushed"))
    }

    /// Fluent [`add_register`](Circuit::add_register). A duplicate name is
    /// recorded anyway and reported by [`validate`](Circuit::validate).
    pub fn creg(mut self, name: &str, size: u32) -> Self {
        if self.add_register(name, size).is_err() {
            let start = self.num_clbits;
            self.num_clbits = start.saturating_add(size);
            self.registers.push(ClassicalRegister {
                name: name.into(),
                start,
                size,
            });
        }
        self
    }

    /// Appends a standard gate on `qubits` with `params`.
    pub fn standard(self, gate: StandardGate, params: &[f64], qubits: &[Qubit]) -> Self {
        self.op(Operation::gate(
            Gate::standard(gate, params),
            qubits.to_vec(),
        ))
    }

    /// Appends any operation.
    pub fn op(mut self, op: Operation) -> Self {
        self.ops.push(op);
        self
    }

    fixed_gates! {
        /// Identity.
        id => Id(q);
        /// Pauli X.
        x => X(q);
        /// Pauli Y.
        y => Y(q);
        /// Pauli Z.
        z => Z(q);
        /// Hadamard.
        h => H(q);
        /// S = √Z.
        s => S(q);
        /// S†.
        sdg => Sdg(q);
        /// T = ⁴√Z.
        t => T(q);
        /// T†.
        tdg => Tdg(q);
        /// √X.
        sx => Sx(q);
        /// √X†.
        sxdg => Sxdg(q);
        /// Controlled X (CNOT).
        cx => Cx(control, target);
        /// Controlled Y.
        cy => Cy(control, target);
        /// Controlled Z.
        cz => Cz(control, target);
        /// Controlled Hadamard.
        ch => Ch(control, target);
        /// Controlled √X.
        csx => Csx(control, target);
        /// Swap.
        swap => Swap(a, b);
        /// Toffoli.
        ccx => Ccx(c0, c1, target);
        /// Fredkin (controlled swap).
        cswap => Cswap(control, a, b);
        /// Echoed cross-resonance.
        ecr => Ecr(a, b);
        /// iSWAP.
        iswap => ISwap(a, b);
    }

    param_gates! {
        /// X rotation by `theta`.
        rx => Rx(theta; q);
        /// Y rotation by `theta`.
        ry => Ry(theta; q);
        /// Z rotation by `phi`: diag(e^{−iφ/2}, e^{iφ/2}).
        rz => Rz(phi; q);
        /// Phase: diag(1, e^{iλ}).
        p => P(lambda; q);
        /// Same as [`p`](Circuit::p) (OpenQASM 2's `u1`).
        u1 => P(lambda; q);
        /// `u2(φ, λ) = u(π/2, φ, λ)`.
        u2 => U2(phi, lambda; q);
        /// The general single-qubit gate `u(θ, φ, λ)` (also `u3`, `U`).
        u => U(theta, phi, lambda; q);
        /// Same as [`u`](Circuit::u).
        u3 => U(theta, phi, lambda; q);
        /// Controlled phase.
        cp => Cp(lambda; control, target);
        /// Same as [`cp`](Circuit::cp) (OpenQASM 2's `cu1`).
        cu1 => Cp(lambda; control, target);
        /// Controlled X rotation.
        crx => Crx(theta; control, target);
        /// Controlled Y rotation.
        cry => Cry(theta; control, target);
        /// Controlled Z rotation.
        crz => Crz(theta; control, target);
        /// Controlled `u3`.
        cu3 => Cu3(theta, phi, lambda; control, target);
        /// Controlled `e^{iγ}·u(θ, φ, λ)`.
        cu => Cu(theta, phi, lambda, gamma; control, target);
        /// exp(−iθ/2 X⊗X).
        rxx => Rxx(theta; a, b);
        /// exp(−iθ/2 Y⊗Y).
        ryy => Ryy(theta; a, b);
        /// exp(−iθ/2 Z⊗Z).
        rzz => Rzz(theta; a, b);
        /// exp(−iθ/2 X⊗Z): Z on `a`, X on `b`.
        rzx => Rzx(theta; a, b);
    }

    /// Multiplies the whole state by e^{iθ}.
    pub fn gphase(self, theta: f64) -> Self {
        self.standard(StandardGate::GlobalPhase, &[theta], &[])
    }

    /// Multi-controlled X on `target`.
    pub fn mcx(self, controls: &[Qubit], target: Qubit) -> Self {
        let controls = controls.iter().map(|&q| Control::one(q)).collect();
        self.controlled(Gate::standard(StandardGate::X, &[]), &[target], controls)
    }

    /// `gate` on `qubits`, acting only where every control holds.
    pub fn controlled(self, gate: Gate, qubits: &[Qubit], controls: Vec<Control>) -> Self {
        self.op(Operation::Gate {
            gate,
            qubits: qubits.to_vec(),
            controls,
        })
    }

    /// An arbitrary unitary on `qubits` (bit `i` of its index is `qubits[i]`).
    pub fn unitary(self, matrix: UnitaryMatrix, qubits: &[Qubit]) -> Self {
        self.op(Operation::gate(Gate::Unitary(matrix), qubits.to_vec()))
    }

    /// Measures `qubit` into `clbit`.
    pub fn measure(self, qubit: Qubit, clbit: Clbit) -> Self {
        self.op(Operation::Measure { qubit, clbit })
    }

    /// Adds a register `meas` with one bit per qubit and measures qubit `i`
    /// into `meas[i]`, as Qiskit's `measure_all` does.
    pub fn measure_all(self) -> Self {
        let start = self.num_clbits;
        let n = self.num_qubits;
        let mut c = self.creg("meas", n);
        for q in 0..n {
            c = c.measure(q, start + q);
        }
        c
    }

    /// Resets `qubit` to |0⟩.
    pub fn reset(self, qubit: Qubit) -> Self {
        self.op(Operation::Reset { qubit })
    }

    /// Appends `channel` on `qubits`.
    pub fn channel(self, channel: Channel, qubits: &[Qubit]) -> Self {
        self.op(Operation::Channel {
            channel,
            qubits: qubits.to_vec(),
        })
    }

    /// Appends a readout error on `clbit`.
    pub fn readout_error(self, clbit: Clbit, error: ReadoutError) -> Self {
        self.op(Operation::ReadoutError { clbit, error })
    }

    /// A barrier on `qubits`.
    pub fn barrier(self, qubits: &[Qubit]) -> Self {
        self.op(Operation::Barrier {
            qubits: qubits.to_vec(),
        })
    }

    /// Runs the operations `then` adds when `condition` holds.
    ///
    /// ```
    /// # use kettle_ir::{Circuit, Condition};
    /// let c = Circuit::new(2).creg("c", 1).h(0).measure(0, 0)
    ///     .if_then(Condition::bit(0, true), |b| b.x(1));
    /// assert_eq!(c.ops().len(), 3);
    /// ```
    pub fn if_then(self, condition: Condition, then: impl FnOnce(Circuit) -> Circuit) -> Self {
        self.if_else(condition, then, |b| b)
    }

    /// Runs what `then` adds when `condition` holds, what `otherwise` adds if not.
    pub fn if_else(
        self,
        condition: Condition,
        then: impl FnOnce(Circuit) -> Circuit,
        otherwise: impl FnOnce(Circuit) -> Circuit,
    ) -> Self {
        let block = || Circuit {
            num_qubits: self.num_qubits,
            num_clbits: self.num_clbits,
            registers: Vec::new(),
            register_index: RegisterIndex::default(),
            ops: Vec::new(),
        };
        let then_ops = then(block()).ops;
        let else_ops = otherwise(block()).ops;
        self.op(Operation::IfElse {
            condition,
            then_ops,
            else_ops,
        })
    }

    /// Checks every operation and register; simulators call this first.
    ///
    /// # Errors
    /// The first problem found, as an [`IrError`].
    pub fn validate(&self) -> Result<(), IrError> {
        if self.num_clbits > MAX_CLBITS {
            return Err(IrError::TooManyClbits {
                num_clbits: self.num_clbits,
                max: MAX_CLBITS,
            });
        }
        let mut names: HashSet<&str> = HashSet::with_capacity(self.registers.len());
        for r in &self.registers {
            if !names.insert(&r.name) {
                return Err(IrError::DuplicateRegister {
                    name: r.name.clone(),
                });
            }
            if u64::from(r.start) + u64::from(r.size) > u64::from(self.num_clbits) {
                return Err(IrError::RegisterOutOfRange {
                    name: r.name.clone(),
                    num_clbits: self.num_clbits,
                });
            }
        }
        for (index, op) in self.ops.iter().enumerate() {
            self.check_op(op, 0)
                .map_err(|error| IrError::Operation { index, error })?;
        }
        Ok(())
    }

    fn check_qubit(&self, qubit: Qubit) -> Result<(), OperationError> {
        check_qubit(self.num_qubits, qubit)
    }

    fn check_clbit(&self, clbit: Clbit) -> Result<(), OperationError> {
        if clbit >= self.num_clbits {
            return Err(OperationError::ClbitOutOfRange {
                clbit,
                num_clbits: self.num_clbits,
            });
        }
        Ok(())
    }

    fn check_op(&self, op: &Operation, depth: usize) -> Result<(), OperationError> {
        match op {
            Operation::Gate {
                gate,
                qubits,
                controls,
            } => check_gate(self.num_qubits, gate, qubits, controls)?,
            Operation::Measure { qubit, clbit } => {
                self.check_qubit(*qubit)?;
                self.check_clbit(*clbit)?;
            }
            Operation::Reset { qubit } => self.check_qubit(*qubit)?,
            Operation::Channel { channel, qubits } => {
                if qubits.len() != channel.num_qubits() as usize {
                    return Err(OperationError::WrongQubitCount {
                        gate: channel.name(),
                        expected: channel.num_qubits(),
                        got: qubits.len(),
                    });
                }
                for (i, &q) in qubits.iter().enumerate() {
                    self.check_qubit(q)?;
                    if qubits[..i].contains(&q) {
                        return Err(OperationError::DuplicateQubit { qubit: q });
                    }
                }
            }
            Operation::ReadoutError { clbit, .. } => self.check_clbit(*clbit)?,
            Operation::Barrier { qubits } => {
                for &q in qubits {
                    self.check_qubit(q)?;
                }
            }
            Operation::IfElse {
                condition,
                then_ops,
                else_ops,
            } => {
                if depth >= MAX_NESTING {
                    return Err(OperationError::NestingTooDeep { max: MAX_NESTING });
                }
                for &c in &condition.clbits {
                    self.check_clbit(c)?;
                }
                for op in then_ops.iter().chain(else_ops) {
                    self.check_op(op, depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

fn check_qubit(num_qubits: u32, qubit: Qubit) -> Result<(), OperationError> {
    if qubit >= num_qubits {
        return Err(OperationError::QubitOutOfRange { qubit, num_qubits });
    }
    Ok(())
}

/// Checks one gate application on a register of `num_qubits` qubits: arity,
/// parameters, and that every target and control is in range and distinct.
///
/// # Errors
/// The first problem found.
pub fn check_gate(
    num_qubits: u32,
    gate: &Gate,
    qubits: &[Qubit],
    controls: &[Control],
) -> Result<(), OperationError> {
    if qubits.len() != gate.num_qubits() as usize {
        return Err(OperationError::WrongQubitCount {
            gate: gate.name(),
            expected: gate.num_qubits(),
            got: qubits.len(),
        });
    }
    if let Gate::Standard { gate, params } = gate {
        if params.len() != gate.num_params() {
            return Err(OperationError::WrongParamCount {
                gate: gate.name(),
                expected: gate.num_params(),
                got: params.len(),
            });
        }
        if let Some(&value) = params.iter().find(|p| !p.is_finite()) {
            return Err(OperationError::NonFiniteParam {
                gate: gate.name(),
                value,
            });
        }
    }
    let all: SmallVec<[Qubit; 8]> = qubits
        .iter()
        .copied()
        .chain(controls.iter().map(|c| c.qubit))
        .collect();
    for (i, &q) in all.iter().enumerate() {
        if q >= num_qubits {
            return Err(OperationError::QubitOutOfRange {
                qubit: q,
                num_qubits,
            });
        }
        if all[..i].contains(&q) {
            return Err(OperationError::DuplicateQubit { qubit: q });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_operations_follow_the_existing_ones() {
        let built = Circuit::new(2).h(0).x(1).cx(0, 1);
        let mut ops = Vec::with_capacity(100);
        ops.extend(built.ops()[1..].iter().cloned());
        let mut c = Circuit::new(2);
        c.append_ops(ops);
        // The vector became the circuit's, without its spare capacity.
        assert_eq!(c.ops.capacity(), 2);
        let mut first = Circuit::new(2).h(0);
        first.append_ops(c.ops().to_vec());
        assert_eq!(first, built);
    }

    #[test]
    fn registers_are_found_by_name_and_duplicates_refused_among_many() {
        let mut c = Circuit::new(1);
        for i in 0..50_000 {
            c.add_register(&format!("r{i}"), 1).unwrap();
        }
        assert_eq!(c.register("r49999").map(|r| r.start), Some(49_999));
        assert!(c.register("r50000").is_none());
        assert!(matches!(
            c.add_register("r7", 1),
            Err(IrError::DuplicateRegister { name }) if name == "r7"
        ));
        assert!(c.validate().is_ok());
        // The fluent `creg` records a duplicate; lookups find the first one,
        // and validation reports it.
        let c = Circuit::new(1).creg("a", 1).creg("b", 2).creg("a", 3);
        assert_eq!(c.register("a").map(|r| (r.start, r.size)), Some((0, 1)));
        assert_eq!(c.register("b").map(|r| (r.start, r.size)), Some((1, 2)));
        assert!(matches!(c.validate(), Err(IrError::DuplicateRegister { name }) if name == "a"));
        // Equality and Debug see only the registers, not the index.
        assert_eq!(Circuit::new(1).creg("a", 1), Circuit::new(1).creg("a", 1));
        assert!(!format!("{c:?}").contains("register_index"));
    }

    #[test]
    fn builder_records_ops_in_order() {
        let c = Circuit::new(3).h(0).cx(0, 1).rz(0.5, 2).measure_all();
        assert_eq!(c.ops().len(), 6);
        assert_eq!(c.num_clbits(), 3);
        assert_eq!(c.register("meas").unwrap().clbits(), vec![0, 1, 2]);
        c.validate().unwrap();
    }

    #[test]
    fn validation_reports_typed_errors() {
        let bad = Circuit::new(2).h(0).cx(0, 2);
        assert_eq!(
            bad.validate(),
            Err(IrError::Operation {
                index: 1,
                error: OperationError::QubitOutOfRange {
                    qubit: 2,
                    num_qubits: 2
                }
            })
        );
        let dup = Circuit::new(2).cx(1, 1);
        assert!(matches!(
            dup.validate(),
            Err(IrError::Operation {
                error: OperationError::DuplicateQubit { qubit: 1 },
                ..
            })
        ));
        // Channels and readout errors are checked like gates and bits.
        let dep2 = crate::Channel::two_qubit_depolarizing(0.1).unwrap();
        let flip = crate::Channel::bit_flip(0.1).unwrap();
        let readout = crate::ReadoutError::new([[0.9, 0.1], [0.1, 0.9]]).unwrap();
        assert!(
            Circuit::new(2)
                .channel(dep2.clone(), &[0, 1])
                .validate()
                .is_ok()
        );
        for (c, want) in [
            (
                Circuit::new(2).channel(dep2.clone(), &[0]),
                "acts on 2 qubits but was given 1",
            ),
            (Circuit::new(2).channel(dep2, &[1, 1]), "used twice"),
            (Circuit::new(1).channel(flip, &[1]), "out of range"),
            (
                Circuit::new(1).creg("c", 1).readout_error(1, readout),
                "classical bit 1",
            ),
        ] {
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
            assert!(c.is_noisy());
        }
        let ctrl_dup = Circuit::new(2).controlled(
            Gate::standard(StandardGate::X, &[]),
            &[0],
            vec![Control::one(0)],
        );
        assert!(ctrl_dup.validate().is_err());
        let nan = Circuit::new(1).rx(f64::NAN, 0);
        assert!(matches!(
            nan.validate(),
            Err(IrError::Operation {
                error: OperationError::NonFiniteParam { .. },
                ..
            })
        ));
        let params = Circuit::new(1).op(Operation::gate(
            Gate::standard(StandardGate::Rx, &[]),
            vec![0],
        ));
        assert!(matches!(
            params.validate(),
            Err(IrError::Operation {
                error: OperationError::WrongParamCount {
                    expected: 1,
                    got: 0,
                    ..
                },
                ..
            })
        ));
        let clbit = Circuit::new(1).measure(0, 0);
        assert!(clbit.validate().is_err());
        let huge = Circuit::new(1).creg("c", u32::MAX);
        assert!(matches!(
            huge.validate(),
            Err(IrError::TooManyClbits { .. })
        ));
        let dup_reg = Circuit::new(1).creg("c", 1).creg("c", 2);
        assert_eq!(
            dup_reg.validate(),
            Err(IrError::DuplicateRegister { name: "c".into() })
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut op = Operation::Barrier { qubits: vec![] };
        for _ in 0..=MAX_NESTING {
            op = Operation::IfElse {
                condition: Condition::bit(0, true),
                then_ops: vec![op],
                else_ops: vec![],
            };
        }
        let c = Circuit::new(1).creg("c", 1).op(op);
        assert!(matches!(
            c.validate(),
            Err(IrError::Operation {
                error: OperationError::NestingTooDeep { .. },
                ..
            })
        ));
    }

    #[test]
    fn conditions_read_little_endian() {
        let cond = Condition::equals(vec![3, 5], 0b10);
        let bits = |c: Clbit| c == 5;
        assert!(cond.holds(bits));
        assert!(!cond.holds(|c| c == 3));
        // A value wider than the bits can never hold.
        assert!(!Condition::equals(vec![0], 2).holds(|_| true));
    }
}
