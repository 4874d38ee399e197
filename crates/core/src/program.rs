//! A circuit compiled for execution: a flat list of instructions where
//! straight runs of gates are lowered and fused, `if` blocks are jumps, and
//! terminal measurements are moved to the end so they can be sampled
//! instead of simulated.
//!
//! Noise compiles one of two ways. For trajectories (the state vector),
//! runs of gates with unitary mixtures become [`Segment`]s, other channels
//! [`KrausStep`]s. For the density matrix ([`crate::density`]), every gate,
//! channel and reset becomes an operation on the doubled vector, fused like
//! any other; only measurements branch.

use kettle_ir::{Circuit, Clbit, Condition, Operation, Qubit, ReadoutError};
use std::borrow::Cow;

use crate::blocking::{ChunkShape, Stage, plan};
use crate::density::{lift_unitary, superoperator};
use crate::fusion::FusionConfig;
use crate::op::KernelOp;
use crate::trajectory::{Item, KrausStep, Mixture, Segment};

/// One step of a compiled circuit.
#[derive(Clone, Debug)]
pub(crate) enum Instr {
    /// Apply a (possibly fused) unitary.
    Apply(KernelOp),
    /// Apply a stage of unitaries chunk by chunk (cache blocking).
    Stage(Stage),
    /// Apply a run of gates that the state plans itself (a state split
    /// over ranks, whose qubits move between ranks as it goes).
    Run(Vec<KernelOp>),
    /// Measure `qubit` into `clbit`.
    Measure { qubit: Qubit, clbit: Clbit },
    /// Reset `qubit` to |0⟩.
    Reset { qubit: Qubit },
    /// Continue at `target` unless `condition` holds.
    JumpUnless { condition: Condition, target: usize },
    /// Continue at `target`.
    Jump { target: usize },
    /// A run of gates with unitary-mixture noise (trajectories).
    Noisy(Box<Segment>),
    /// A channel with non-unitary Kraus operators (trajectories).
    Kraus(Box<KrausStep>),
    /// A readout error on `clbit`.
    Readout { clbit: Clbit, error: ReadoutError },
}

/// How a state is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Representation {
    /// A state vector of the circuit's qubits; noise by trajectories.
    StateVector,
    /// A density matrix, as a vector of twice the qubits.
    DensityMatrix,
}

/// The compiled circuit.
#[derive(Debug)]
pub(crate) struct Program {
    pub(crate) instrs: Vec<Instr>,
    /// From this index on, every instruction is a measurement or a
    /// readout error: the tail that is sampled from the final state instead
    /// of being simulated.
    pub(crate) tail: usize,
    /// Gates in the source circuit (barriers excluded).
    pub(crate) gates: usize,
    /// Qubits of the vector (twice the circuit's for a density matrix).
    num_qubits: u32,
    chunk: Option<ChunkShape>,
    pub(crate) representation: Representation,
    /// Runs of gates stay [`Instr::Run`]s, for a state that plans them.
    unplanned: bool,
}

impl Program {
    /// Compiles a validated circuit, cutting runs of gates into stages for
    /// chunks of `chunk`'s shape where one is given.
    pub(crate) fn compile(
        circuit: &Circuit,
        fusion: &FusionConfig,
        chunk: Option<ChunkShape>,
        representation: Representation,
    ) -> Program {
        Self::compile_with(circuit, fusion, chunk, representation, false)
    }

    /// Compiles a noiseless validated circuit for a state that plans its
    /// runs of gates itself (a state split over ranks): each run stays one
    /// [`Instr::Run`] of lowered, unfused gates.
    pub(crate) fn compile_unplanned(circuit: &Circuit) -> Program {
        debug_assert!(!circuit.is_noisy(), "noise is refused before");
        let fusion = FusionConfig::default();
        Self::compile_with(circuit, &fusion, None, Representation::StateVector, true)
    }

    fn compile_with(
        circuit: &Circuit,
        fusion: &FusionConfig,
        chunk: Option<ChunkShape>,
        representation: Representation,
        unplanned: bool,
    ) -> Program {
        let ops = drop_idle_resets(circuit.ops());
        let ops = move_terminal_measurements(&ops);
        let n = circuit.num_qubits();
        let mut p = Program {
            instrs: Vec::new(),
            tail: 0,
            gates: 0,
            num_qubits: match representation {
                Representation::StateVector => n,
                Representation::DensityMatrix => 2 * n,
            },
            chunk,
            representation,
            unplanned,
        };
        let mut pending = Vec::new();
        p.compile_ops(&ops, &mut pending, fusion);
        p.flush(&mut pending, fusion);
        p.tail = p.instrs.len()
            - p.instrs
                .iter()
                .rev()
                .take_while(|i| matches!(i, Instr::Measure { .. } | Instr::Readout { .. }))
                .count();
        p
    }

    /// Qubits of the vector it runs on (twice the circuit's for a density
    /// matrix).
    pub(crate) fn vector_qubits(&self) -> u32 {
        self.num_qubits
    }

    /// Qubits of the circuit (half the vector's for a density matrix).
    fn circuit_qubits(&self) -> u32 {
        match self.representation {
            Representation::StateVector => self.num_qubits,
            Representation::DensityMatrix => self.num_qubits / 2,
        }
    }

    /// Compiles a run of gates to apply to any state (not only |0…0⟩, so
    /// no stage skips chunks that would be zero there).
    pub(crate) fn compile_gates(
        ops: Vec<KernelOp>,
        num_qubits: u32,
        fusion: &FusionConfig,
        chunk: Option<ChunkShape>,
    ) -> Program {
        Self::compile_gates_on(ops, num_qubits, fusion, chunk, u64::MAX)
    }

    /// [`compile_gates`](Self::compile_gates) for a state whose amplitudes
    /// are zero wherever a qubit outside `touched` is 1, whose stages then
    /// skip the chunks still zero (see [`plan`]).
    pub(crate) fn compile_gates_on(
        ops: Vec<KernelOp>,
        num_qubits: u32,
        fusion: &FusionConfig,
        chunk: Option<ChunkShape>,
        touched: u64,
    ) -> Program {
        let gates = ops.len();
        let instrs = if ops.is_empty() {
            Vec::new()
        } else {
            plan(ops, num_qubits, chunk, fusion, touched)
        };
        Program {
            tail: instrs.len(),
            instrs,
            gates,
            num_qubits,
            chunk,
            representation: Representation::StateVector,
            unplanned: false,
        }
    }

    /// Whether every shot follows the same path until the sampled tail (no
    /// measurement, reset or branch before it).
    #[cfg(test)]
    pub(crate) fn is_deterministic_prefix(&self) -> bool {
        self.instrs[..self.tail]
            .iter()
            .all(|i| matches!(i, Instr::Apply(_) | Instr::Stage(_)))
    }

    fn flush(&mut self, pending: &mut Vec<Item>, fusion: &FusionConfig) {
        if pending.is_empty() {
            return;
        }
        let run = std::mem::take(pending);
        // Only the program's first run starts from |0…0⟩: nothing jumps
        // back to instruction 0, and replays start there afresh.
        let fresh = self.instrs.is_empty();
        if run.iter().any(|i| matches!(i, Item::Mixture(_))) {
            let segment = Segment::new(run, self.num_qubits, self.chunk, fusion, fresh);
            self.instrs.push(Instr::Noisy(Box::new(segment)));
            return;
        }
        let ops = run
            .into_iter()
            .map(|i| match i {
                Item::Gate(op) => op,
                Item::Mixture(_) => unreachable!("runs with mixtures are segments"),
            })
            .collect();
        if self.unplanned {
            self.instrs.push(Instr::Run(ops));
            return;
        }
        self.instrs.extend(plan(
            ops,
            self.num_qubits,
            self.chunk,
            fusion,
            untouched_if(fresh),
        ));
    }

    /// Queues a unitary operation on the circuit's qubits.
    fn push_unitary(&self, pending: &mut Vec<Item>, op: KernelOp) {
        match self.representation {
            Representation::StateVector => pending.push(Item::Gate(op)),
            Representation::DensityMatrix => {
                pending.extend(lift_unitary(op, self.circuit_qubits()).map(Item::Gate));
            }
        }
    }

    fn compile_ops(&mut self, ops: &[&Operation], pending: &mut Vec<Item>, fusion: &FusionConfig) {
        let density = self.representation == Representation::DensityMatrix;
        for op in ops {
            match op {
                Operation::Gate {
                    gate,
                    qubits,
                    controls,
                } => {
                    self.gates += 1;
                    self.push_unitary(pending, KernelOp::from_gate(gate, qubits, controls));
                }
                Operation::Barrier { .. } => {}
                Operation::Channel { channel, qubits } if density => {
                    if !channel.is_identity() {
                        let n = self.circuit_qubits();
                        let op = superoperator(&channel.kraus_operators(), qubits, n);
                        pending.push(Item::Gate(op));
                    }
                }
                Operation::Channel { channel, qubits } => match Mixture::new(channel, qubits) {
                    Some(m) if m.is_identity() => {}
                    Some(m) => match m.as_gate() {
                        Some(op) => pending.push(Item::Gate(op)),
                        None => pending.push(Item::Mixture(m)),
                    },
                    None => {
                        self.flush(pending, fusion);
                        self.instrs
                            .push(Instr::Kraus(Box::new(KrausStep::new(channel, qubits))));
                    }
                },
                Operation::ReadoutError { clbit, error } => {
                    self.flush(pending, fusion);
                    self.instrs.push(Instr::Readout {
                        clbit: *clbit,
                        error: *error,
                    });
                }
                Operation::Measure { qubit, clbit } => {
                    self.flush(pending, fusion);
                    self.instrs.push(Instr::Measure {
                        qubit: *qubit,
                        clbit: *clbit,
                    });
                }
                Operation::Reset { qubit } if density => {
                    let reset = kettle_ir::Channel::reset_error(1.0, 0.0).expect("valid");
                    let n = self.circuit_qubits();
                    pending.push(Item::Gate(superoperator(
                        &reset.kraus_operators(),
                        &[*qubit],
                        n,
                    )));
                }
                Operation::Reset { qubit } => {
                    self.flush(pending, fusion);
                    self.instrs.push(Instr::Reset { qubit: *qubit });
                }
                Operation::IfElse {
                    condition,
                    then_ops,
                    else_ops,
                } => {
                    self.flush(pending, fusion);
                    let branch = self.instrs.len();
                    self.instrs.push(Instr::JumpUnless {
                        condition: condition.clone(),
                        target: 0,
                    });
                    self.compile_ops(&then_ops.iter().collect::<Vec<_>>(), pending, fusion);
                    self.flush(pending, fusion);
                    let mut end_jump = None;
                    if !else_ops.is_empty() {
                        end_jump = Some(self.instrs.len());
                        self.instrs.push(Instr::Jump { target: 0 });
                    }
                    let else_start = self.instrs.len();
                    self.compile_ops(&else_ops.iter().collect::<Vec<_>>(), pending, fusion);
                    self.flush(pending, fusion);
                    let end = self.instrs.len();
                    if let Instr::JumpUnless { target, .. } = &mut self.instrs[branch] {
                        *target = else_start;
                    }
                    if let Some(j) = end_jump {
                        self.instrs[j] = Instr::Jump { target: end };
                    }
                }
            }
        }
    }
}

/// `ops` without the resets of qubits that nothing has touched yet: they
/// are in |0⟩ already, so such a reset changes nothing (Qiskit's
/// `Initialize` begins with one on every qubit), and keeping it would make
/// the circuit look non-unitary. Only the top level before any branch is
/// looked at.
fn drop_idle_resets(ops: &[Operation]) -> Cow<'_, [Operation]> {
    let mut touched = std::collections::HashSet::new();
    let mut idle = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Operation::Reset { qubit } if !touched.contains(qubit) => idle.push(i),
            Operation::Reset { .. }
            | Operation::Barrier { .. }
            | Operation::ReadoutError { .. } => {}
            Operation::Gate {
                qubits, controls, ..
            } => {
                touched.extend(qubits.iter().copied());
                touched.extend(controls.iter().map(|c| c.qubit));
            }
            Operation::Channel { qubits, .. } => touched.extend(qubits.iter().copied()),
            Operation::Measure { qubit, .. } => {
                touched.insert(*qubit);
            }
            Operation::IfElse { .. } => break,
        }
    }
    if idle.is_empty() {
        return Cow::Borrowed(ops);
    }
    let mut idle = idle.into_iter().peekable();
    Cow::Owned(
        ops.iter()
            .enumerate()
            .filter(|(i, _)| idle.next_if_eq(i).is_none())
            .map(|(_, op)| op.clone())
            .collect(),
    )
}

/// Reorders top-level operations so that measurements nothing depends on
/// come last: a measurement moves to the end when no later gate, reset or
/// branch touches its qubit, no branch anywhere reads classical bits, and no
/// measurement left in place writes the same bit after it.
fn move_terminal_measurements(ops: &[Operation]) -> Vec<&Operation> {
    let Some(terminal) = terminal_flags(ops) else {
        return ops.iter().collect();
    };
    let (moved, kept): (Vec<_>, Vec<_>) = ops.iter().enumerate().partition(|(i, _)| terminal[*i]);
    kept.into_iter().chain(moved).map(|(_, op)| op).collect()
}

/// For each top-level operation, whether it is a measurement that can be
/// sampled at the end; `None` when the circuit branches on classical bits.
fn terminal_flags(ops: &[Operation]) -> Option<Vec<bool>> {
    if ops.iter().any(|o| matches!(o, Operation::IfElse { .. })) {
        return None;
    }
    // Walk backwards: `touched` holds qubits that a later gate or reset uses.
    let mut terminal = vec![false; ops.len()];
    let mut touched = std::collections::HashSet::new();
    for (i, op) in ops.iter().enumerate().rev() {
        match op {
            Operation::Measure { qubit, .. } => terminal[i] = !touched.contains(qubit),
            Operation::Gate {
                qubits, controls, ..
            } => {
                touched.extend(qubits.iter().copied());
                touched.extend(controls.iter().map(|c| c.qubit));
            }
            Operation::Channel { qubits, .. } => touched.extend(qubits.iter().copied()),
            Operation::Reset { qubit } => {
                touched.insert(*qubit);
            }
            Operation::Barrier { .. }
            | Operation::IfElse { .. }
            | Operation::ReadoutError { .. } => {}
        }
    }
    // A terminal measurement must not overtake a kept one writing its bit.
    let mut later_kept_writes = std::collections::HashSet::new();
    for (i, op) in ops.iter().enumerate().rev() {
        if let Operation::Measure { clbit, .. } = op {
            if terminal[i] && later_kept_writes.contains(clbit) {
                terminal[i] = false;
            }
            if !terminal[i] {
                later_kept_writes.insert(*clbit);
            }
        }
    }
    // A readout error goes with the measurement that wrote its bit last.
    let mut last_write = std::collections::HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Operation::Measure { clbit, .. } => {
                last_write.insert(*clbit, i);
            }
            Operation::ReadoutError { clbit, .. } => {
                terminal[i] = last_write.get(clbit).is_some_and(|&m| terminal[m]);
            }
            _ => {}
        }
    }
    Some(terminal)
}

/// The distinct qubits of `finals` (as [`final_measurements`] gives them),
/// in the order they are first measured: bit `i` of an outcome of
/// [`StateVector::classical_distribution`](crate::StateVector::classical_distribution)'s
/// probabilities is the `i`-th of them.
pub fn measured_qubits(finals: &[(Qubit, Clbit)]) -> Vec<Qubit> {
    let mut qubits: Vec<Qubit> = Vec::new();
    for &(q, _) in finals {
        if !qubits.contains(&q) {
            qubits.push(q);
        }
    }
    qubits
}

/// The circuit's measurements as `(qubit, clbit)` pairs in order, if every
/// one of them is final (nothing after it touches its qubit) and the circuit
/// has no reset (but those of qubits nothing has touched yet, which change
/// nothing) or classical control: then the classical bits' distribution
/// follows exactly from the final state. `None` otherwise.
pub fn final_measurements(circuit: &Circuit) -> Option<Vec<(Qubit, Clbit)>> {
    measurements_after(circuit, false)
}

/// [`final_measurements`], where `resets_allowed` lets resets anywhere
/// before them (a density matrix takes a reset as a channel, not a branch).
pub(crate) fn measurements_after(
    circuit: &Circuit,
    resets_allowed: bool,
) -> Option<Vec<(Qubit, Clbit)>> {
    let ops = drop_idle_resets(circuit.ops());
    if !resets_allowed && ops.iter().any(|o| matches!(o, Operation::Reset { .. })) {
        return None;
    }
    let terminal = terminal_flags(&ops)?;
    let mut out = Vec::new();
    for (op, t) in ops.iter().zip(terminal) {
        match op {
            Operation::Measure { qubit, clbit } => {
                if !t {
                    return None;
                }
                out.push((*qubit, *clbit));
            }
            Operation::ReadoutError { .. } if !t => return None,
            _ => {}
        }
    }
    Some(out)
}

/// The touched qubits (see [`plan`]) of a state that is |0…0⟩ when
/// `fresh` and anything otherwise.
pub(crate) fn untouched_if(fresh: bool) -> u64 {
    if fresh { 0 } else { u64::MAX }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_measurements_move_to_the_tail() {
        let c = Circuit::new(2)
            .creg("c", 2)
            .h(0)
            .measure(0, 0)
            .h(1)
            .measure(1, 1);
        let p = Program::compile(
            &c,
            &FusionConfig::disabled(),
            None,
            Representation::StateVector,
        );
        assert_eq!(p.tail, 2);
        assert!(p.is_deterministic_prefix());
        let mid = Circuit::new(1)
            .creg("c", 2)
            .h(0)
            .measure(0, 0)
            .h(0)
            .measure(0, 1);
        let p = Program::compile(
            &mid,
            &FusionConfig::disabled(),
            None,
            Representation::StateVector,
        );
        assert!(!p.is_deterministic_prefix());
    }

    #[test]
    fn final_measurements_are_recognised() {
        let c = Circuit::new(2)
            .creg("c", 2)
            .h(0)
            .measure(0, 1)
            .x(1)
            .measure(1, 0);
        assert_eq!(final_measurements(&c), Some(vec![(0, 1), (1, 0)]));
        let mid = Circuit::new(1).creg("c", 1).measure(0, 0).h(0);
        assert_eq!(final_measurements(&mid), None);
        let reset = Circuit::new(1).creg("c", 1).h(0).reset(0).measure(0, 0);
        assert_eq!(final_measurements(&reset), None);
    }

    #[test]
    fn a_reset_of_a_qubit_nothing_touched_changes_nothing() {
        // As Qiskit's `Initialize` begins: a reset of every qubit, then gates.
        let init = Circuit::new(2)
            .creg("c", 2)
            .reset(0)
            .reset(1)
            .reset(0)
            .h(0)
            .cx(0, 1)
            .measure(0, 0)
            .measure(1, 1);
        assert_eq!(final_measurements(&init), Some(vec![(0, 0), (1, 1)]));
        let p = Program::compile(
            &init,
            &FusionConfig::default(),
            None,
            Representation::StateVector,
        );
        assert!(p.is_deterministic_prefix());
        assert!(!p.instrs.iter().any(|i| matches!(i, Instr::Reset { .. })));
        // Once a qubit has been touched, its reset is a reset.
        let late = Circuit::new(2).reset(0).h(1).reset(1);
        assert_eq!(final_measurements(&late), None);
        assert_eq!(
            drop_idle_resets(late.ops()).as_ref(),
            Circuit::new(2).h(1).reset(1).ops()
        );
    }

    #[test]
    fn if_else_becomes_jumps() {
        let c = Circuit::new(2).creg("c", 1).h(0).measure(0, 0).if_else(
            Condition::bit(0, true),
            |b| b.x(1),
            |b| b.z(1),
        );
        let p = Program::compile(
            &c,
            &FusionConfig::disabled(),
            None,
            Representation::StateVector,
        );
        assert!(matches!(p.instrs[2], Instr::JumpUnless { target: 5, .. }));
        assert!(matches!(p.instrs[4], Instr::Jump { target: 6 }));
    }
}
