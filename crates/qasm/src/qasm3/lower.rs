//! The lowering: walks the syntax tree like an interpreter that knows every
//! classical value except measurement results, and writes the circuit.
//!
//! - Classical declarations, assignments and expressions are evaluated as
//!   they are met ([`Value`]); loops are unrolled, `if`s on known values
//!   pick their branch, gate and subroutine calls are inlined.
//! - A measured bit has no value until the circuit runs: reading it gives a
//!   [`Truth::Runtime`] condition, which only `if` may use; it becomes an
//!   [`Operation::IfElse`]. Each cell of a bit variable is a known bit or
//!   the clbit that holds it at run time ([`BitCell`]): a top-level bit
//!   variable's own, or a scratch clbit (locals, subroutine parameters,
//!   `angle[n]` bits), which copies share; scratch clbits become the
//!   circuit's last register. How many cells hold each clbit is counted, so
//!   that no measurement overwrites a value a copy still needs.
//! - Gate calls are lowered to their body's operations, then the modifiers
//!   are applied to that list from the innermost out (see [`gates`]).
//! - Every operation produced counts against [`Limits::max_operations`] as
//!   it is produced, every loop iteration against
//!   [`Limits::max_loop_iterations`], every inlined call against
//!   [`Limits::max_calls`] and [`Limits::max_call_depth`], every statement
//!   executed and expression evaluated against [`Limits::max_classical_steps`]
//!   (and every few thousand steps, the [`ParseOptions`] deadline and stop
//!   flag are looked at); recursion through blocks, calls and expressions
//!   together is bounded too, so no input exhausts the stack.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use kettle_ir::{
    Channel, Circuit, Clbit, Condition, Control, MAX_CLBITS, MAX_NESTING, Operation, Qubit,
    StandardGate,
};

use crate::{Diagnostic, Limits, ParseOptions};

use super::ast::{
    BinOp, Expr, ExprKind, GateDef, Index, Iterable, LValue, Loc, Modifier, Noise, NoiseArgs,
    Range, Stmt, StmtKind, SubDef, SubParam, Type, UnOp,
};
use super::conditions::{self, BitRef, Cond, Truth};
use super::gates::{self, Builtin, Power};
use super::noise;
use super::parser::file_name;
use super::values::{self, Value, VarType};

type Result<T> = std::result::Result<T, Diagnostic>;

/// Classical steps between two looks at the deadline and the stop flag: a
/// step is well under a microsecond, so a stop is seen within milliseconds,
/// and the clock read is lost in the work between.
const STEPS_BETWEEN_STOP_CHECKS: u64 = 4096;

/// A gate the program can call.
#[derive(Clone, Debug)]
enum GateEntry {
    Builtin(Builtin),
    User(Rc<GateDef>),
}

impl GateEntry {
    fn num_params(&self) -> usize {
        match self {
            GateEntry::Builtin(b) => b.gate.num_params(),
            GateEntry::User(def) => def.params.len(),
        }
    }

    fn num_qubits(&self) -> usize {
        match self {
            GateEntry::Builtin(b) => b.gate.num_qubits() as usize,
            GateEntry::User(def) => def.qubits.len(),
        }
    }
}

/// One bit of a bit variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BitCell {
    Known(bool),
    /// A measurement result: read at run time from this clbit (the cell's
    /// own, for a circuit register; a scratch clbit otherwise, which other
    /// cells may share when the value was copied).
    Clbit(Clbit),
}

/// An angle with measured bits: its known part, and each measured bit's
/// clbit with the angle the bit stands for.
type RuntimeAngle = (f64, Vec<(Clbit, f64)>);

/// The first of the scratch clbits while lowering: the bits of values that
/// live in no circuit register (see [`Lowerer::scratch_clbit`]). They are
/// numbered from here and moved after the circuit's registers at the end.
const SCRATCH_BASE: Clbit = MAX_CLBITS;

/// The `n` bits of the angle nearest `x` (the specification's
/// `angle[n]`: `2π·bits/2ⁿ`, ties to even, modulo 2π).
fn angle_bits(x: f64, n: usize) -> Vec<bool> {
    let n = n.min(64);
    let scale = 2f64.powi(i32::try_from(n).unwrap_or(64));
    let units = if x.is_finite() {
        (x / std::f64::consts::TAU * scale)
            .round_ties_even()
            .rem_euclid(scale)
    } else {
        0.0
    };
    // `units` is a whole number in [0, 2ⁿ) (2ⁿ itself after rounding at the
    // top, which is 0 modulo 2ⁿ).
    let u = if units >= scale { 0 } else { units as u64 };
    (0..n).map(|k| (u >> k) & 1 == 1).collect()
}

/// The angle the bits of an `angle[n]` stand for.
fn angle_value(bits: &[bool]) -> f64 {
    bits.iter()
        .enumerate()
        .filter(|(_, b)| **b)
        .map(|(k, _)| angle_weight(bits.len(), k))
        .sum()
}

/// The angle bit `k` of an `angle[n]` stands for: `2π·2ᵏ/2ⁿ`.
fn angle_weight(n: usize, k: usize) -> f64 {
    let shift = i32::try_from(k).unwrap_or(0) - i32::try_from(n).unwrap_or(0);
    std::f64::consts::TAU * 2f64.powi(shift)
}

/// Whether `ops` measure into or test any of `clbits`.
fn uses_clbits(ops: &[Operation], clbits: &HashSet<Clbit>) -> bool {
    ops.iter().any(|op| match op {
        Operation::Measure { clbit, .. } => clbits.contains(clbit),
        Operation::IfElse {
            condition,
            then_ops,
            else_ops,
        } => {
            condition.clbits.iter().any(|c| clbits.contains(c))
                || uses_clbits(then_ops, clbits)
                || uses_clbits(else_ops, clbits)
        }
        _ => false,
    })
}

/// Points the clbits of `ops` named in `renames` elsewhere.
fn rename_clbits(ops: &mut [Operation], renames: &HashMap<Clbit, Clbit>) {
    if renames.is_empty() {
        return;
    }
    for op in ops {
        match op {
            Operation::Measure { clbit, .. } => {
                if let Some(&to) = renames.get(clbit) {
                    *clbit = to;
                }
            }
            Operation::IfElse {
                condition,
                then_ops,
                else_ops,
            } => {
                for c in &mut condition.clbits {
                    if let Some(&to) = renames.get(c) {
                        *c = to;
                    }
                }
                rename_clbits(then_ops, renames);
                rename_clbits(else_ops, renames);
            }
            _ => {}
        }
    }
}

/// A bit variable (`bit`, `bit[n]`, `creg`), or an `angle[n]` variable,
/// whose bits can be measured into and read like a register's.
#[derive(Debug)]
struct BitReg {
    name: String,
    cells: Vec<BitCell>,
    /// Declared `bit` (one element, indexed by nothing).
    scalar: bool,
    /// Declared `angle[n]`: read whole, it is the angle `2π·bits/2ⁿ`.
    angle: bool,
    /// First clbit: the bit variables declared at the top level are circuit
    /// registers, whose measured bits stay in their own clbits; the bits of
    /// the others live in scratch clbits.
    start: Option<Clbit>,
    /// How many `if`s on measured bits enclose the declaration.
    runtime_depth: usize,
    loc: Loc,
}

/// What a name stands for.
#[derive(Clone, Debug)]
enum Symbol {
    Qubits {
        qubits: Rc<Vec<Qubit>>,
        scalar: bool,
    },
    Var {
        ty: VarType,
        value: Value,
        constant: bool,
        runtime_depth: usize,
    },
    /// Index into the lowering's bit variables.
    Bits(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrameKind {
    Global,
    Gate,
    Def,
}

/// The scopes of the program or of one inlined gate or subroutine call.
#[derive(Debug)]
struct Frame {
    kind: FrameKind,
    scopes: Vec<HashMap<String, Symbol>>,
}

/// The result of evaluating an expression.
#[derive(Clone, Debug)]
enum Val {
    Known(Value),
    /// Bits of which at least one is measured.
    Bits(Vec<BitRef>),
    /// A boolean known at run time.
    Cond(Cond),
    Qubits(Rc<Vec<Qubit>>, bool),
    /// `measure q` not yet stored anywhere (the value of `return measure q;`).
    Measure(Vec<Qubit>, bool, Loc),
}

/// How a statement ended.
#[derive(Debug)]
enum Flow {
    Normal,
    Break(Loc),
    Continue(Loc),
    Return(Option<Val>, Loc),
}

/// A modifier with its arguments evaluated.
#[derive(Clone, Copy, Debug)]
enum Mod {
    Inv,
    Pow(f64),
    Ctrl { on: bool, count: usize },
}

/// An entry of the circuit's classical registers, in clbit order.
#[derive(Debug)]
enum RegisterSlot {
    /// A bit variable (index into `bit_regs`).
    Variable(usize),
    /// The clbit of measurements whose result is not stored.
    Discard,
}

/// The lowering state.
pub(crate) struct Lowerer<'a> {
    limits: &'a Limits,
    options: &'a ParseOptions<'a>,
    inputs: &'a BTreeMap<String, f64>,
    used_inputs: HashSet<String>,
    files: Vec<String>,
    num_qubits: u32,
    declared_qubits: bool,
    physical_qubits: bool,
    bit_regs: Vec<BitReg>,
    num_clbits: u32,
    /// Scratch clbits taken (numbered from [`SCRATCH_BASE`]).
    num_scratch: u32,
    /// How many cells of live variables hold each clbit.
    holders: HashMap<Clbit, u32>,
    register_order: Vec<RegisterSlot>,
    discard: Option<Clbit>,
    /// The discard bit holds a measurement an `if` condition being
    /// evaluated will test: nothing may measure into it until then.
    discard_held: bool,
    gates: HashMap<String, GateEntry>,
    subs: HashMap<String, Rc<SubDef>>,
    stdgates: bool,
    /// The program's own scopes.
    global: Frame,
    /// The gate and subroutine calls being inlined, innermost last.
    calls: Vec<Frame>,
    call_stack: Vec<String>,
    /// Gate bodies being inlined (they may not measure or reset).
    gate_body_depth: usize,
    /// `if`s on measured bits around the statement being lowered.
    runtime_depth: usize,
    op_count: u64,
    iterations: u64,
    /// Gate and subroutine calls inlined so far (see [`Limits::max_calls`]).
    call_count: u64,
    /// Statements executed and expressions evaluated so far (see
    /// [`Limits::max_classical_steps`]).
    steps: u64,
    /// Classical bits read, written or declared so far (loops counted).
    bit_work: u64,
    /// `bit_regs.len()` when each open scope began: bit variables local to
    /// a scope are dropped with it.
    scope_marks: Vec<usize>,
    depth: usize,
    max_depth: usize,
}

impl std::fmt::Debug for Lowerer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lowerer")
            .field("num_qubits", &self.num_qubits)
            .field("op_count", &self.op_count)
            .finish_non_exhaustive()
    }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

impl<'a> Lowerer<'a> {
    pub(crate) fn new(options: &'a ParseOptions<'a>, files: Vec<String>) -> Self {
        let limits = &options.limits;
        let mut gates = HashMap::new();
        for &(name, gate, phase) in gates::ALWAYS {
            gates.insert(
                name.to_string(),
                GateEntry::Builtin(Builtin { gate, phase }),
            );
        }
        Lowerer {
            limits,
            options,
            inputs: &options.inputs,
            used_inputs: HashSet::new(),
            files,
            num_qubits: 0,
            declared_qubits: false,
            physical_qubits: false,
            bit_regs: Vec::new(),
            num_clbits: 0,
            num_scratch: 0,
            holders: HashMap::new(),
            register_order: Vec::new(),
            discard: None,
            discard_held: false,
            gates,
            subs: HashMap::new(),
            stdgates: false,
            global: Frame {
                kind: FrameKind::Global,
                scopes: vec![HashMap::new()],
            },
            calls: Vec::new(),
            call_stack: Vec::new(),
            gate_body_depth: 0,
            runtime_depth: 0,
            op_count: 0,
            iterations: 0,
            call_count: 0,
            steps: 0,
            bit_work: 0,
            scope_marks: Vec::new(),
            depth: 0,
            max_depth: limits
                .max_block_depth
                .saturating_add(limits.max_call_depth)
                .saturating_add(limits.max_expression_depth.saturating_mul(2)),
        }
    }

    /// Gives the built-in `U` its pre-2022 definition (`pragma kettle U
    /// pre-2022`; see [`gates`]).
    pub(crate) fn use_u_pre_2022(&mut self) {
        self.gates
            .insert("U".to_string(), GateEntry::Builtin(gates::U_PRE_2022));
    }

    fn err(&self, loc: Loc, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            line: loc.line,
            column: loc.column,
            file: file_name(&self.files, loc.file),
            limit: None,
        }
    }

    /// Lowers a whole program.
    pub(crate) fn run(mut self, program: &[Stmt], end: Loc) -> Result<Circuit> {
        let mut ops = Vec::new();
        match self.stmts(program, &mut ops)? {
            Flow::Normal => {}
            Flow::Break(loc) | Flow::Continue(loc) => {
                return Err(self.err(loc, "`break` and `continue` must be inside a loop"));
            }
            Flow::Return(_, loc) => {
                return Err(self.err(loc, "`return` must be inside a subroutine"));
            }
        }
        self.finish(ops, end)
    }

    // ----- budgets ----------------------------------------------------------

    fn reserve(&mut self, count: u64, loc: Loc) -> Result<()> {
        let max = self.limits.max_operations as u64;
        let total = self.op_count.saturating_add(count);
        if total > max {
            return Err(self.err(
                loc,
                format!("the program expands to more than {max} operations (the limit)"),
            ));
        }
        self.op_count = total;
        Ok(())
    }

    fn iteration(&mut self, loc: Loc) -> Result<()> {
        self.iterations = self.iterations.saturating_add(1);
        if self.iterations > self.limits.max_loop_iterations {
            return Err(self.err(
                loc,
                format!(
                    "loops run more than {} iterations in all (the limit)",
                    self.limits.max_loop_iterations
                ),
            ));
        }
        Ok(())
    }

    /// Counts one step of classical work: a statement executed, an
    /// expression evaluated, a loop iteration begun. Every few thousand
    /// steps, also ends the lowering if its deadline passed or it was told
    /// to stop.
    fn step(&mut self, loc: Loc) -> Result<()> {
        self.steps = self.steps.saturating_add(1);
        if self.steps > self.limits.max_classical_steps {
            let mut e = self.err(
                loc,
                format!(
                    "the program does more than {} steps of classical work (statements executed and expressions evaluated, loops counted at every iteration; the limit `max_classical_steps`)",
                    self.limits.max_classical_steps
                ),
            );
            e.limit = Some("max_classical_steps");
            return Err(e);
        }
        if self.steps.is_multiple_of(STEPS_BETWEEN_STOP_CHECKS)
            && let Some(why) = self.options.interrupted()
        {
            let message = if why == "deadline" {
                "the program was still being read when its deadline passed"
            } else {
                "reading the program was stopped"
            };
            let mut e = self.err(loc, message);
            e.limit = Some(why);
            return Err(e);
        }
        Ok(())
    }

    /// Enters one level of recursion (block, call or expression).
    fn enter(&mut self, loc: Loc) -> Result<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(self.err(
                loc,
                format!(
                    "blocks, calls and expressions are nested more than {} levels deep",
                    self.max_depth
                ),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // ----- scopes -----------------------------------------------------------

    fn frame(&self) -> &Frame {
        // There is always the global frame.
        self.calls.last().unwrap_or(&self.global)
    }

    fn frame_mut(&mut self) -> &mut Frame {
        match self.calls.last_mut() {
            Some(frame) => frame,
            None => &mut self.global,
        }
    }

    fn at_top_level(&self) -> bool {
        self.calls.is_empty() && self.global.scopes.len() == 1
    }

    fn push_scope(&mut self) {
        self.scope_marks.push(self.bit_regs.len());
        self.frame_mut().scopes.push(HashMap::new());
    }

    /// Closes the innermost scope, dropping the bit variables declared in it
    /// (they are local, so none is a circuit register).
    fn pop_scope(&mut self) {
        self.frame_mut().scopes.pop();
        if let Some(mark) = self.scope_marks.pop() {
            self.drop_local_bits(mark);
        }
    }

    fn drop_local_bits(&mut self, mark: usize) {
        while self.bit_regs.len() > mark && self.bit_regs.last().is_some_and(|r| r.start.is_none())
        {
            if let Some(reg) = self.bit_regs.pop() {
                for cell in reg.cells {
                    self.release(cell);
                }
            }
        }
    }

    /// One cell fewer holds `cell`'s clbit.
    fn release(&mut self, cell: BitCell) {
        if let BitCell::Clbit(c) = cell
            && let Some(n) = self.holders.get_mut(&c)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.holders.remove(&c);
            }
        }
    }

    /// Writes one cell of bit variable `id`, keeping [`Self::holders`].
    fn set_cell(&mut self, id: usize, cell: usize, value: BitCell) {
        let Some(old) = self
            .bit_regs
            .get(id)
            .and_then(|r| r.cells.get(cell))
            .copied()
        else {
            return;
        };
        self.release(old);
        if let BitCell::Clbit(c) = value {
            *self.holders.entry(c).or_insert(0) += 1;
        }
        if let Some(slot) = self
            .bit_regs
            .get_mut(id)
            .and_then(|r| r.cells.get_mut(cell))
        {
            *slot = value;
        }
    }

    /// How many live cells other than `cell` of variable `id` hold clbit `c`.
    fn other_holders(&self, c: Clbit, id: usize, cell: usize) -> u32 {
        let own = self.bit_regs.get(id).and_then(|r| r.cells.get(cell)) == Some(&BitCell::Clbit(c));
        self.holders
            .get(&c)
            .copied()
            .unwrap_or(0)
            .saturating_sub(u32::from(own))
    }

    /// `name` or `name[cell]`, for messages.
    fn cell_name(&self, id: usize, cell: usize) -> String {
        match self.bit_regs.get(id) {
            Some(r) if r.scalar => r.name.clone(),
            Some(r) => format!("{}[{cell}]", r.name),
            None => String::new(),
        }
    }

    /// A new scratch clbit: the bit of a measurement stored in a variable
    /// that is not a circuit register (one declared in a block or a
    /// subroutine, or an `angle`). Scratch clbits become the circuit's last
    /// register, `scratch`, in the order they were taken.
    fn scratch_clbit(&mut self, loc: Loc) -> Result<Clbit> {
        let total = self.num_clbits.saturating_add(self.num_scratch);
        if total >= MAX_CLBITS {
            return Err(self.err(
                loc,
                format!(
                    "this measurement brings the program to more than {MAX_CLBITS} classical bits (the limit; every measurement into a variable declared in a block or subroutine, or into an angle, takes a bit of its own)"
                ),
            ));
        }
        let c = SCRATCH_BASE + self.num_scratch;
        self.num_scratch += 1;
        Ok(c)
    }

    /// Counts classical bits handled against a budget, so that loops over
    /// wide registers cannot take unbounded time or memory.
    fn charge_bits(&mut self, count: usize, loc: Loc) -> Result<()> {
        let max = (self.limits.max_operations as u64).saturating_mul(16);
        self.bit_work = self.bit_work.saturating_add(count as u64);
        if self.bit_work > max {
            return Err(self.err(
                loc,
                format!(
                    "the program handles more than {max} classical bits in all (the limit; loops count every iteration)"
                ),
            ));
        }
        Ok(())
    }

    fn global_scope(&self) -> Option<&HashMap<String, Symbol>> {
        self.global.scopes.first()
    }

    /// The symbol `name` names here, with the visibility rules of gate and
    /// subroutine bodies: only global constants (and, in subroutines,
    /// global qubits) are visible from outside.
    fn lookup(&self, name: &str, loc: Loc) -> Result<Option<&Symbol>> {
        let frame = self.frame();
        for scope in frame.scopes.iter().rev() {
            if let Some(s) = scope.get(name) {
                return Ok(Some(s));
            }
        }
        if frame.kind == FrameKind::Global {
            return Ok(None);
        }
        let Some(symbol) = self.global_scope().and_then(|g| g.get(name)) else {
            return Ok(None);
        };
        let what = if frame.kind == FrameKind::Gate {
            "a gate"
        } else {
            "a subroutine"
        };
        match symbol {
            Symbol::Var { constant: true, .. } => Ok(Some(symbol)),
            Symbol::Qubits { .. } if frame.kind == FrameKind::Def => Ok(Some(symbol)),
            _ => Err(self.err(
                loc,
                format!(
                    "`{name}` is declared outside {what}, and only constants declared outside are visible inside one"
                ),
            )),
        }
    }

    /// Declares `name` in the innermost scope.
    fn declare(&mut self, name: &str, symbol: Symbol, loc: Loc) -> Result<()> {
        let top = self.at_top_level();
        if self
            .frame()
            .scopes
            .last()
            .is_some_and(|s| s.contains_key(name))
        {
            return Err(self.err(loc, format!("`{name}` is already declared")));
        }
        if top && (self.gates.contains_key(name) || self.subs.contains_key(name)) {
            return Err(self.err(
                loc,
                format!("`{name}` is already defined as a gate or subroutine"),
            ));
        }
        if let Some(scope) = self.frame_mut().scopes.last_mut() {
            scope.insert(name.to_string(), symbol);
        }
        Ok(())
    }

    /// Checks that a gate or subroutine name is free.
    fn check_definition_name(&self, name: &str, loc: Loc) -> Result<()> {
        if self.gates.contains_key(name) {
            let hint = if gates::is_stdgate(name) && self.stdgates {
                " (by stdgates.inc)"
            } else {
                ""
            };
            return Err(self.err(loc, format!("`{name}` is already defined as a gate{hint}")));
        }
        if self.subs.contains_key(name) {
            return Err(self.err(loc, format!("`{name}` is already defined as a subroutine")));
        }
        if self.global_scope().is_some_and(|g| g.contains_key(name)) {
            return Err(self.err(loc, format!("`{name}` is already declared as a variable")));
        }
        Ok(())
    }

    // ----- statements -------------------------------------------------------

    /// Statements in a new scope.
    fn block(&mut self, stmts: &[Stmt], out: &mut Vec<Operation>, loc: Loc) -> Result<Flow> {
        self.enter(loc)?;
        self.push_scope();
        let flow = self.stmts(stmts, out)?;
        self.pop_scope();
        self.leave();
        Ok(flow)
    }

    fn stmts(&mut self, stmts: &[Stmt], out: &mut Vec<Operation>) -> Result<Flow> {
        for stmt in stmts {
            let flow = self.stmt(stmt, out)?;
            if !matches!(flow, Flow::Normal) {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn top_level_only(&self, loc: Loc, what: &str) -> Result<()> {
        if self.at_top_level() {
            Ok(())
        } else {
            Err(self.err(
                loc,
                format!("{what} is allowed only at the top level of the program"),
            ))
        }
    }

    fn no_gate_body(&self, loc: Loc, what: &str) -> Result<()> {
        if self.gate_body_depth > 0 {
            return Err(self.err(
                loc,
                format!("{what} cannot appear in a gate: gates are unitary"),
            ));
        }
        Ok(())
    }

    fn stmt(&mut self, stmt: &Stmt, out: &mut Vec<Operation>) -> Result<Flow> {
        let loc = stmt.loc;
        self.step(loc)?;
        match &stmt.kind {
            StmtKind::IncludeStdgates => {
                self.top_level_only(loc, "`include`")?;
                self.include_stdgates(loc)?;
            }
            StmtKind::IncludeUnread => {}
            StmtKind::Included(stmts) => {
                self.top_level_only(loc, "`include`")?;
                return self.stmts(stmts, out);
            }
            StmtKind::QubitDecl { name, size } => {
                self.qubit_declaration(name, size.as_ref(), loc, out)?
            }
            StmtKind::ClassicalDecl {
                ty,
                name,
                init,
                constant,
                input,
            } => {
                self.classical_declaration(ty, name, init.as_ref(), *constant, *input, loc, out)?
            }
            StmtKind::Alias { name, value } => {
                let (qubits, scalar) = self.qubits(value, out)?;
                self.declare(
                    name,
                    Symbol::Qubits {
                        qubits: Rc::new(qubits),
                        scalar,
                    },
                    loc,
                )?;
            }
            StmtKind::Assign { target, op, value } => self.assign(target, *op, value, out)?,
            StmtKind::Gate(def) => self.gate_definition(def)?,
            StmtKind::Def(def) => {
                self.top_level_only(loc, "a subroutine definition")?;
                self.check_definition_name(&def.name, loc)?;
                self.subs.insert(def.name.clone(), Rc::clone(def));
            }
            StmtKind::GateCall {
                modifiers,
                name,
                params,
                args,
            } => self.gate_call(modifiers, name, params, args, loc, out)?,
            StmtKind::Measure { qubits, target } => {
                let (qubits, scalar) = self.qubits(qubits, out)?;
                self.measure_into(&qubits, scalar, target.as_ref(), loc, out)?;
            }
            StmtKind::Reset(q) => {
                self.no_gate_body(loc, "`reset`")?;
                let (qubits, _) = self.qubits(q, out)?;
                self.reserve(qubits.len() as u64, loc)?;
                out.extend(qubits.iter().map(|&qubit| Operation::Reset { qubit }));
            }
            StmtKind::Barrier(args) => {
                let mut qubits: Vec<Qubit> = Vec::new();
                if args.is_empty() {
                    qubits.extend(0..self.num_qubits);
                }
                for a in args {
                    for q in self.qubits(a, out)?.0 {
                        if !qubits.contains(&q) {
                            qubits.push(q);
                        }
                    }
                }
                self.reserve(1, loc)?;
                out.push(Operation::Barrier { qubits });
            }
            StmtKind::If {
                condition,
                then_body,
                else_body,
            } => return self.if_statement(condition, then_body, else_body.as_deref(), loc, out),
            StmtKind::For {
                ty,
                var,
                iterable,
                body,
            } => return self.for_loop(ty.as_ref(), var, iterable, body, loc, out),
            StmtKind::While { condition, body } => {
                return self.while_loop(condition, body, loc, out);
            }
            StmtKind::Switch {
                target,
                cases,
                default,
            } => return self.switch(target, cases, default.as_deref(), loc, out),
            StmtKind::Break => return Ok(Flow::Break(loc)),
            StmtKind::Continue => return Ok(Flow::Continue(loc)),
            StmtKind::Return(value) => {
                if self.frame().kind != FrameKind::Def {
                    return Err(self.err(loc, "`return` must be inside a subroutine"));
                }
                let v = match value {
                    Some(e) => Some(self.eval(e, out)?),
                    None => None,
                };
                return Ok(Flow::Return(v, loc));
            }
            StmtKind::Expr(e) => self.expression_statement(e, out)?,
            StmtKind::Block(stmts) => return self.block(stmts, out, loc),
            StmtKind::Noise(noise) => {
                self.no_gate_body(loc, "a noise pragma")?;
                self.noise(noise, loc, out)?;
            }
        }
        Ok(Flow::Normal)
    }

    fn include_stdgates(&mut self, loc: Loc) -> Result<()> {
        if self.stdgates {
            return Ok(());
        }
        for &(name, gate, phase) in gates::STDGATES {
            if self.gates.contains_key(name)
                || self.subs.contains_key(name)
                || self.global_scope().is_some_and(|g| g.contains_key(name))
            {
                return Err(self.err(
                    loc,
                    format!("stdgates.inc defines `{name}`, which the program already defines"),
                ));
            }
            self.gates.insert(
                name.to_string(),
                GateEntry::Builtin(Builtin { gate, phase }),
            );
        }
        self.stdgates = true;
        Ok(())
    }

    fn qubit_declaration(
        &mut self,
        name: &str,
        size: Option<&Expr>,
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<()> {
        self.top_level_only(loc, "a qubit declaration")?;
        if self.physical_qubits {
            return Err(self.err(
                loc,
                "a program that uses physical qubits (`$0`) cannot also declare qubits",
            ));
        }
        let (n, size_loc) = match size {
            Some(e) => (self.int(e, "a register size", out)?, e.loc),
            None => (1, loc),
        };
        if n < 1 {
            return Err(self.err(
                size_loc,
                format!("register `{name}` must have at least one qubit"),
            ));
        }
        let total = i64::from(self.num_qubits).saturating_add(n);
        let max = i64::from(self.limits.max_qubits);
        if total > max {
            return Err(self.err(
                size_loc,
                format!(
                    "`{name}` brings the program to {total} qubits, more than the limit of {max}"
                ),
            ));
        }
        let start = self.num_qubits;
        // `total` is at most `max_qubits`, a u32.
        let end = u32::try_from(total).unwrap_or(u32::MAX);
        self.num_qubits = end;
        self.declared_qubits = true;
        self.declare(
            name,
            Symbol::Qubits {
                qubits: Rc::new((start..end).collect()),
                scalar: size.is_none(),
            },
            loc,
        )
    }

    fn physical_qubit(&mut self, n: u64, loc: Loc) -> Result<Qubit> {
        if self.declared_qubits {
            return Err(self.err(
                loc,
                "a program that declares qubits cannot also use physical qubits (`$0`)",
            ));
        }
        if n >= u64::from(self.limits.max_qubits) {
            return Err(self.err(
                loc,
                format!(
                    "physical qubit ${n} needs {} qubits, more than the limit of {}",
                    n.saturating_add(1),
                    self.limits.max_qubits
                ),
            ));
        }
        let q = u32::try_from(n).unwrap_or(u32::MAX);
        self.physical_qubits = true;
        self.num_qubits = self.num_qubits.max(q + 1);
        Ok(q)
    }

    fn var_type(&mut self, ty: &Type, out: &mut Vec<Operation>) -> Result<VarType> {
        Ok(match ty {
            Type::Bool => VarType::Bool,
            Type::Int => VarType::Int,
            Type::Uint => VarType::Uint,
            Type::Float => VarType::Float,
            Type::Angle(_) => VarType::Angle,
            Type::Bit(None) => VarType::Bit(None),
            Type::Bit(Some(size)) => {
                let n = self.int(size, "a register size", out)?;
                let max = i64::from(MAX_CLBITS);
                if !(1..=max).contains(&n) {
                    return Err(self.err(
                        size.loc,
                        format!("a bit register has between 1 and {max} bits, not {n}"),
                    ));
                }
                VarType::Bit(Some(u32::try_from(n).unwrap_or(MAX_CLBITS)))
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn classical_declaration(
        &mut self,
        ty: &Type,
        name: &str,
        init: Option<&Expr>,
        constant: bool,
        input: bool,
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<()> {
        let vt = self.var_type(ty, out)?;
        if input {
            return self.input_declaration(vt, name, loc);
        }
        if let VarType::Bit(width) = vt {
            return self.bit_declaration(name, width, init, loc, out);
        }
        if let Type::Angle(Some(size)) = ty
            && !constant
        {
            return self.angle_declaration(name, size, init, loc, out);
        }
        let value = match init {
            None => vt.zero(),
            Some(e) => {
                let what = format!("the value of `{name}`");
                let v = self.known(e, &what, out)?;
                v.convert(vt).map_err(|m| self.err(e.loc, m))?
            }
        };
        self.declare(
            name,
            Symbol::Var {
                ty: vt,
                value,
                constant,
                runtime_depth: self.runtime_depth,
            },
            loc,
        )
    }

    /// `angle[n] name = init;`: a variable of `n` bits, which measurements
    /// can write and `name[i]` can read (its value is `2π·bits/2ⁿ`).
    fn angle_declaration(
        &mut self,
        name: &str,
        size: &Expr,
        init: Option<&Expr>,
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<()> {
        let n = self.int(size, "the size of an angle", out)?;
        if !(1..=64).contains(&n) {
            return Err(self.err(
                size.loc,
                format!("an angle has between 1 and 64 bits here, not {n}"),
            ));
        }
        let n = usize::try_from(n).unwrap_or(64);
        self.charge_bits(n, loc)?;
        let id = self.bit_regs.len();
        self.declare(name, Symbol::Bits(id), loc)?;
        self.bit_regs.push(BitReg {
            name: name.to_string(),
            cells: vec![BitCell::Known(false); n],
            scalar: false,
            angle: true,
            start: None,
            runtime_depth: self.runtime_depth,
            loc,
        });
        if let Some(e) = init {
            let cells: Vec<usize> = (0..n).collect();
            self.store_bits(id, &cells, false, e, loc, out)?;
        }
        Ok(())
    }

    fn input_declaration(&mut self, vt: VarType, name: &str, loc: Loc) -> Result<()> {
        self.top_level_only(loc, "an `input` declaration")?;
        let kind = vt.keyword();
        let Some(&given) = self.inputs.get(name) else {
            return Err(self.err(
                loc,
                format!("no value was given for input `{name}` ({kind})"),
            ));
        };
        let value = match vt {
            VarType::Float | VarType::Angle if given.is_finite() => Value::Float(given),
            VarType::Int | VarType::Uint => match gates::as_integer(given) {
                Some(i) if vt == VarType::Int || i >= 0 => Value::Int(i),
                _ => {
                    return Err(self.err(
                        loc,
                        format!("input `{name}` is {kind}, but was given {given}"),
                    ));
                }
            },
            VarType::Bool if given == 0.0 || given == 1.0 => Value::Bool(given == 1.0),
            VarType::Bit(_) => {
                return Err(self.err(loc, "`input` bits are not supported by this simulator"));
            }
            _ => {
                return Err(self.err(
                    loc,
                    format!("input `{name}` is {kind}, but was given {given}"),
                ));
            }
        };
        self.used_inputs.insert(name.to_string());
        // Inputs are read-only here, which also makes them visible in gates
        // and subroutines.
        self.declare(
            name,
            Symbol::Var {
                ty: vt,
                value,
                constant: true,
                runtime_depth: 0,
            },
            loc,
        )
    }

    fn bit_declaration(
        &mut self,
        name: &str,
        width: Option<u32>,
        init: Option<&Expr>,
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<()> {
        let n = width.unwrap_or(1);
        self.charge_bits(n as usize, loc)?;
        let start = if self.at_top_level() {
            let total = self
                .num_clbits
                .saturating_add(self.num_scratch)
                .saturating_add(n);
            if total > MAX_CLBITS {
                return Err(self.err(
                    loc,
                    format!(
                        "`{name}` brings the program to {total} classical bits, more than the limit of {MAX_CLBITS}"
                    ),
                ));
            }
            let start = self.num_clbits;
            self.num_clbits = total;
            Some(start)
        } else {
            None
        };
        let id = self.bit_regs.len();
        self.declare(name, Symbol::Bits(id), loc)?;
        if start.is_some() {
            self.register_order.push(RegisterSlot::Variable(id));
        }
        self.bit_regs.push(BitReg {
            name: name.to_string(),
            cells: vec![BitCell::Known(false); n as usize],
            scalar: width.is_none(),
            angle: false,
            start,
            runtime_depth: self.runtime_depth,
            loc,
        });
        if let Some(e) = init {
            let cells: Vec<usize> = (0..n as usize).collect();
            self.store_bits(id, &cells, width.is_none(), e, loc, out)?;
        }
        Ok(())
    }

    /// Stores the value of `value` into cells of bit variable `id`.
    fn store_bits(
        &mut self,
        id: usize,
        cells: &[usize],
        scalar: bool,
        value: &Expr,
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<()> {
        // The value's operations go to `ops` first: a value a subroutine
        // measured into its own variables is measured straight into a
        // circuit register it is stored in (see `store_measured_bits`).
        let scratch_mark = self.num_scratch;
        let mut ops = Vec::new();
        let v = self.eval(value, &mut ops)?;
        let name = self
            .bit_regs
            .get(id)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        let stored = match v {
            Val::Measure(qubits, q_scalar, _) => {
                out.append(&mut ops);
                return self.measure_cells(&qubits, q_scalar, id, cells, scalar, loc, out);
            }
            Val::Known(v) => self.store_known_bits(id, cells, scalar, v, value.loc, loc),
            Val::Bits(bits) => {
                self.store_measured_bits(id, cells, &bits, scratch_mark, &mut ops, value.loc, loc)
            }
            Val::Cond(_) => Err(self.err(
                value.loc,
                format!(
                    "storing a combination of measured bits in `{name}` is not supported: store the bits themselves"
                ),
            )),
            Val::Qubits(..) => Err(self.err(
                value.loc,
                "qubits cannot be stored in bits (did you mean `measure`?)",
            )),
        };
        out.append(&mut ops);
        stored
    }

    /// Stores bits of which some are measured (`b = c;`, `syn = f(q);`)
    /// into cells of bit variable `id`. A variable that is not a circuit
    /// register takes the value's clbits as its own (nothing runs). A
    /// circuit register holds its bits in its own clbits, and the circuit
    /// writes a clbit only by measuring, so a register takes only values
    /// measured by the expression just evaluated into scratch clbits that
    /// nothing else holds (a subroutine's result): those measurements, in
    /// `ops`, are redirected to the register's clbits.
    #[allow(clippy::too_many_arguments)]
    fn store_measured_bits(
        &mut self,
        id: usize,
        cells: &[usize],
        bits: &[BitRef],
        scratch_mark: u32,
        ops: &mut [Operation],
        value_loc: Loc,
        loc: Loc,
    ) -> Result<()> {
        let Some(reg) = self.bit_regs.get(id) else {
            return Ok(());
        };
        let (name, start, reg_depth) = (reg.name.clone(), reg.start, reg.runtime_depth);
        if bits.len() != cells.len() {
            return Err(self.err(
                value_loc,
                format!(
                    "cannot store {} in {} of `{name}`: both sides must have the same size",
                    plural(bits.len(), "bit"),
                    plural(cells.len(), "bit")
                ),
            ));
        }
        let Some(start) = start else {
            if self.runtime_depth > reg_depth {
                return Err(self.err(
                    loc,
                    format!(
                        "assigning to `{name}` inside an `if` that tests measured bits is not supported"
                    ),
                ));
            }
            for (&cell, bit) in cells.iter().zip(bits) {
                let value = match *bit {
                    BitRef::Known(b) => BitCell::Known(b),
                    BitRef::Clbit(c) => BitCell::Clbit(c),
                };
                self.set_cell(id, cell, value);
            }
            return Ok(());
        };
        // A circuit register: check every bit before changing anything.
        let mut renames: HashMap<Clbit, Clbit> = HashMap::new();
        for (&cell, bit) in cells.iter().zip(bits) {
            let home = start.saturating_add(u32::try_from(cell).unwrap_or(u32::MAX));
            let current = self
                .bit_regs
                .get(id)
                .and_then(|r| r.cells.get(cell))
                .copied();
            match *bit {
                BitRef::Known(_) => {
                    if matches!(current, Some(BitCell::Clbit(_))) {
                        return Err(self.err(
                            loc,
                            format!(
                                "`{}` holds a measurement result; this simulator writes classical bits only by `measure`, so it cannot be assigned",
                                self.cell_name(id, cell)
                            ),
                        ));
                    }
                }
                BitRef::Clbit(c) => {
                    let fresh = c >= SCRATCH_BASE.saturating_add(scratch_mark)
                        && !self.holders.contains_key(&c)
                        && !renames.contains_key(&c);
                    if !fresh {
                        return Err(self.err(
                            value_loc,
                            format!(
                                "copying measured bits into `{name}` is not supported: `{name}` is a register of the circuit, whose bits are written only by `measure`; measure into it directly, or assign it the result of a subroutine call that measures (`{name} = f(q);`)"
                            ),
                        ));
                    }
                    self.check_overwrite(id, cell, home, loc)?;
                    renames.insert(c, home);
                }
            }
        }
        let known: Vec<(usize, bool)> = cells
            .iter()
            .zip(bits)
            .filter_map(|(&cell, bit)| match bit {
                BitRef::Known(b) => Some((cell, *b)),
                BitRef::Clbit(_) => None,
            })
            .collect();
        if !known.is_empty() && self.runtime_depth > reg_depth {
            return Err(self.err(
                loc,
                format!(
                    "assigning to `{name}` inside an `if` that tests measured bits is not supported"
                ),
            ));
        }
        // The register's old value must not be read (or written) by what the
        // expression ran, which now measures into it earlier.
        let homes: HashSet<Clbit> = renames.values().copied().collect();
        if uses_clbits(ops, &homes) {
            return Err(self.err(
                value_loc,
                format!(
                    "`{name}` cannot take this value: computing it reads `{name}`, and the circuit writes its bits only by `measure`, so they would change before they are read"
                ),
            ));
        }
        rename_clbits(ops, &renames);
        for (&cell, bit) in cells.iter().zip(bits) {
            let value = match *bit {
                BitRef::Known(b) => BitCell::Known(b),
                BitRef::Clbit(c) => BitCell::Clbit(renames.get(&c).copied().unwrap_or(c)),
            };
            self.set_cell(id, cell, value);
        }
        // Scratch clbits left unused at the end are given back.
        while self.num_scratch > scratch_mark
            && renames.contains_key(&(SCRATCH_BASE + self.num_scratch - 1))
        {
            self.num_scratch -= 1;
        }
        Ok(())
    }

    /// Checks that measuring into `home`, the clbit of cell `cell` of
    /// circuit register `id`, overwrites no value another variable still
    /// holds, nor (inside an `if` on measured bits) a 1 set by an
    /// assignment, which the circuit could not restore when the `if` does
    /// not run.
    fn check_overwrite(&self, id: usize, cell: usize, home: Clbit, loc: Loc) -> Result<()> {
        let Some(reg) = self.bit_regs.get(id) else {
            return Ok(());
        };
        if self.runtime_depth > reg.runtime_depth
            && reg.cells.get(cell) == Some(&BitCell::Known(true))
        {
            return Err(self.err(
                loc,
                format!(
                    "`{}` was set to 1 by an assignment and is measured inside an `if` on measured bits: not supported",
                    self.cell_name(id, cell)
                ),
            ));
        }
        if self.other_holders(home, id, cell) > 0 {
            let holder = self
                .bit_regs
                .iter()
                .enumerate()
                .find_map(|(j, r)| {
                    r.cells.iter().enumerate().find_map(|(k, c)| {
                        (*c == BitCell::Clbit(home) && (j, k) != (id, cell))
                            .then(|| self.cell_name(j, k))
                    })
                })
                .unwrap_or_default();
            return Err(self.err(
                loc,
                format!(
                    "this would overwrite the measurement in `{}` that `{holder}` still holds (it was copied there): not supported",
                    self.cell_name(id, cell)
                ),
            ));
        }
        Ok(())
    }

    /// `measure qubits -> cells of bit variable id`.
    #[allow(clippy::too_many_arguments)]
    fn measure_cells(
        &mut self,
        qubits: &[Qubit],
        q_scalar: bool,
        id: usize,
        cells: &[usize],
        c_scalar: bool,
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<()> {
        self.no_gate_body(loc, "`measure`")?;
        let runtime_depth = self.runtime_depth;
        let Some(reg) = self.bit_regs.get(id) else {
            return Ok(());
        };
        let name = reg.name.clone();
        if qubits.len() != cells.len() || (q_scalar != c_scalar && qubits.len() != 1) {
            return Err(self.err(
                loc,
                format!(
                    "cannot measure {} into {} of `{name}`: both sides must have the same size",
                    plural(qubits.len(), "qubit"),
                    plural(cells.len(), "bit")
                ),
            ));
        }
        let (start, reg_depth) = (reg.start, reg.runtime_depth);
        // Where each result goes: a circuit register's own clbit; for other
        // variables the scratch clbit the cell already holds if nothing else
        // holds it, else a new one.
        let mut targets = Vec::with_capacity(cells.len());
        for &cell in cells {
            let current = self
                .bit_regs
                .get(id)
                .and_then(|r| r.cells.get(cell))
                .copied();
            let target = match (start, current) {
                (Some(start), _) => {
                    let home = start.saturating_add(u32::try_from(cell).unwrap_or(u32::MAX));
                    self.check_overwrite(id, cell, home, loc)?;
                    home
                }
                (None, Some(BitCell::Clbit(c)))
                    if c >= SCRATCH_BASE
                        && self.other_holders(c, id, cell) == 0
                        && !targets.contains(&c) =>
                {
                    c
                }
                (None, current) => {
                    if runtime_depth > reg_depth && current != Some(BitCell::Known(false)) {
                        return Err(self.err(
                            loc,
                            format!(
                                "`{}` is measured inside an `if` on measured bits, but keeps its earlier value when the `if` does not run, which is held elsewhere: not supported (declare it inside the `if`, or measure it outside)",
                                self.cell_name(id, cell)
                            ),
                        ));
                    }
                    self.scratch_clbit(loc)?
                }
            };
            targets.push(target);
        }
        self.reserve(qubits.len() as u64, loc)?;
        for (&qubit, &clbit) in qubits.iter().zip(&targets) {
            out.push(Operation::Measure { qubit, clbit });
        }
        for (&cell, &clbit) in cells.iter().zip(&targets) {
            self.set_cell(id, cell, BitCell::Clbit(clbit));
        }
        Ok(())
    }

    /// The clbit measurements that are not stored go to.
    fn discard_clbit(&mut self, loc: Loc) -> Result<Clbit> {
        if self.discard_held {
            return Err(self.err(
                loc,
                "this measurement would overwrite another that an `if` condition tests: store measurement results in bits first",
            ));
        }
        if let Some(c) = self.discard {
            return Ok(c);
        }
        if self.num_clbits.saturating_add(self.num_scratch) >= MAX_CLBITS {
            return Err(self.err(loc, "too many classical bits"));
        }
        let c = self.num_clbits;
        self.num_clbits += 1;
        self.discard = Some(c);
        self.register_order.push(RegisterSlot::Discard);
        Ok(c)
    }

    fn measure_into(
        &mut self,
        qubits: &[Qubit],
        scalar: bool,
        target: Option<&LValue>,
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<()> {
        self.no_gate_body(loc, "`measure`")?;
        let Some(target) = target else {
            let clbit = self.discard_clbit(loc)?;
            self.reserve(qubits.len() as u64, loc)?;
            out.extend(
                qubits
                    .iter()
                    .map(|&qubit| Operation::Measure { qubit, clbit }),
            );
            return Ok(());
        };
        let (id, cells, c_scalar) = self.bit_target(target, out)?;
        self.measure_cells(qubits, scalar, id, &cells, c_scalar, loc, out)
    }

    /// The bit variable and cells an assignment target names.
    fn bit_target(
        &mut self,
        target: &LValue,
        out: &mut Vec<Operation>,
    ) -> Result<(usize, Vec<usize>, bool)> {
        let id = match self.lookup(&target.name, target.loc)? {
            Some(Symbol::Bits(id)) => *id,
            Some(Symbol::Var { ty, .. }) => {
                return Err(self.err(
                    target.loc,
                    format!(
                        "`{}` is {}, but measurement results can only be stored in bits",
                        target.name,
                        ty.keyword()
                    ),
                ));
            }
            Some(Symbol::Qubits { .. }) => {
                return Err(self.err(
                    target.loc,
                    format!("`{}` is a qubit register, not a bit", target.name),
                ));
            }
            None => return Err(self.undefined(&target.name, target.loc)),
        };
        let (len, scalar) = match self.bit_regs.get(id) {
            Some(r) => (r.cells.len(), r.scalar),
            None => (0, true),
        };
        match &target.index {
            None => Ok((id, (0..len).collect(), scalar)),
            Some(index) => {
                if scalar {
                    return Err(self.err(
                        target.loc,
                        format!("`{}` is a single bit and cannot be indexed", target.name),
                    ));
                }
                let (cells, single) = self.indices(index, len, &target.name, target.loc, out)?;
                Ok((id, cells, single))
            }
        }
    }

    fn assign(
        &mut self,
        target: &LValue,
        op: Option<BinOp>,
        value: &Expr,
        out: &mut Vec<Operation>,
    ) -> Result<()> {
        let loc = target.loc;
        let symbol = self.lookup(&target.name, loc)?.cloned();
        match symbol {
            None => Err(self.undefined(&target.name, loc)),
            Some(Symbol::Qubits { .. }) => Err(self.err(
                loc,
                format!(
                    "`{}` is a qubit register and cannot be assigned",
                    target.name
                ),
            )),
            Some(Symbol::Bits(_)) => {
                let (id, cells, scalar) = self.bit_target(target, out)?;
                match op {
                    None => self.store_bits(id, &cells, scalar, value, loc, out),
                    Some(op @ (BinOp::Shl | BinOp::Shr))
                        if target.index.is_none() && self.shifts_cells(id) =>
                    {
                        let k = self.int(value, "the shift", out)?;
                        self.shift_cells(id, op == BinOp::Shl, k, value.loc, loc)
                    }
                    Some(op) => {
                        let whole = self.bit_regs.get(id).is_some_and(|r| r.angle)
                            && target.index.is_none();
                        let old = if whole {
                            self.read_whole(id, loc)?
                        } else {
                            self.read_bits(id, &cells, loc)?
                        };
                        let Val::Known(old) = old else {
                            return Err(self.err(
                                loc,
                                format!("`{}` holds measurement results, which cannot be updated with `{}=`", target.name, op.symbol()),
                            ));
                        };
                        let rhs = self.known(value, "the right-hand side", out)?;
                        let new =
                            values::binary(op, &old, &rhs).map_err(|m| self.err(value.loc, m))?;
                        self.store_known_bits(id, &cells, scalar, new, value.loc, loc)
                    }
                }
            }
            Some(Symbol::Var {
                ty,
                value: old,
                constant,
                runtime_depth,
            }) => {
                if constant {
                    return Err(self.err(
                        loc,
                        format!(
                            "`{}` is a constant (or an input) and cannot be assigned",
                            target.name
                        ),
                    ));
                }
                if target.index.is_some() {
                    return Err(self.err(
                        loc,
                        format!("assigning to bits of `{}` is not supported", target.name),
                    ));
                }
                if self.runtime_depth > runtime_depth {
                    return Err(self.err(
                        loc,
                        format!(
                            "assigning to `{}` inside an `if` that tests measured bits is not supported",
                            target.name
                        ),
                    ));
                }
                let what = format!("the value assigned to `{}`", target.name);
                let rhs = self.known(value, &what, out)?;
                let new = match op {
                    None => rhs,
                    Some(op) => {
                        values::binary(op, &old, &rhs).map_err(|m| self.err(value.loc, m))?
                    }
                };
                let new = new.convert(ty).map_err(|m| self.err(value.loc, m))?;
                let name = target.name.clone();
                let frame = self.frame_mut();
                for scope in frame.scopes.iter_mut().rev() {
                    if let Some(Symbol::Var { value, .. }) = scope.get_mut(&name) {
                        *value = new;
                        break;
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether `<<=` and `>>=` on bit variable `id` move its cells (an angle,
    /// or a variable holding measured bits) rather than compute on its
    /// value.
    fn shifts_cells(&self, id: usize) -> bool {
        self.bit_regs
            .get(id)
            .is_some_and(|r| r.angle || r.cells.iter().any(|c| matches!(c, BitCell::Clbit(_))))
    }

    /// `name <<= k` (`left`) or `name >>= k` on bit variable `id`: its bits
    /// move up (or down) by `k` places, zeros come in, those pushed out are
    /// lost. Measured bits move with their clbits, which only a variable
    /// that is not a circuit register can do.
    fn shift_cells(
        &mut self,
        id: usize,
        left: bool,
        k: i64,
        value_loc: Loc,
        loc: Loc,
    ) -> Result<()> {
        let Some(reg) = self.bit_regs.get(id) else {
            return Ok(());
        };
        let name = reg.name.clone();
        if k < 0 {
            return Err(self.err(
                value_loc,
                format!("cannot shift by a negative amount ({k})"),
            ));
        }
        if reg.start.is_some() {
            return Err(self.err(
                loc,
                format!(
                    "shifting `{name}` is not supported: it holds measurement results in a register of the circuit, whose bits are written only by `measure`"
                ),
            ));
        }
        if self.runtime_depth > reg.runtime_depth {
            return Err(self.err(
                loc,
                format!(
                    "assigning to `{name}` inside an `if` that tests measured bits is not supported"
                ),
            ));
        }
        let old = reg.cells.clone();
        let n = old.len();
        self.charge_bits(n, loc)?;
        let k = usize::try_from(k).unwrap_or(usize::MAX);
        for i in 0..n {
            let from = if left {
                i.checked_sub(k)
            } else {
                i.checked_add(k).filter(|&j| j < n)
            };
            let value = from
                .and_then(|j| old.get(j).copied())
                .unwrap_or(BitCell::Known(false));
            self.set_cell(id, i, value);
        }
        Ok(())
    }

    /// Writes a known value into cells of bit variable `id`.
    fn store_known_bits(
        &mut self,
        id: usize,
        cells: &[usize],
        scalar: bool,
        value: Value,
        value_loc: Loc,
        loc: Loc,
    ) -> Result<()> {
        let width = u32::try_from(cells.len()).unwrap_or(u32::MAX);
        let ty = VarType::Bit(if scalar && width == 1 {
            None
        } else {
            Some(width)
        });
        let whole_angle = self
            .bit_regs
            .get(id)
            .is_some_and(|r| r.angle && r.cells.len() == cells.len());
        let bits = match value {
            Value::Float(_) | Value::Int(_) if whole_angle => {
                let x = value.as_f64().map_err(|m| self.err(value_loc, m))?;
                angle_bits(x, cells.len())
            }
            value => {
                let Value::Bits(bits) = value.convert(ty).map_err(|m| self.err(value_loc, m))?
                else {
                    return Err(self.err(value_loc, "internal error: bits expected"));
                };
                bits
            }
        };
        let runtime_depth = self.runtime_depth;
        let Some(reg) = self.bit_regs.get(id) else {
            return Ok(());
        };
        let name = reg.name.clone();
        if runtime_depth > reg.runtime_depth {
            return Err(self.err(
                loc,
                format!(
                    "assigning to `{name}` inside an `if` that tests measured bits is not supported"
                ),
            ));
        }
        // A circuit register's measured bit cannot be overwritten; another
        // variable just forgets the clbit that held it.
        if let Some(&cell) = cells
            .iter()
            .find(|&&c| reg.start.is_some() && matches!(reg.cells.get(c), Some(BitCell::Clbit(_))))
        {
            return Err(self.err(
                loc,
                format!(
                    "`{}` holds a measurement result; this simulator writes classical bits only by `measure`, so it cannot be assigned",
                    self.cell_name(id, cell)
                ),
            ));
        }
        for (&cell, &b) in cells.iter().zip(&bits) {
            self.set_cell(id, cell, BitCell::Known(b));
        }
        Ok(())
    }

    fn gate_definition(&mut self, def: &Rc<GateDef>) -> Result<()> {
        let loc = def.loc;
        self.top_level_only(loc, "a gate definition")?;
        self.check_definition_name(&def.name, loc)?;
        let mut seen = HashSet::new();
        for name in def.params.iter().chain(&def.qubits) {
            if !seen.insert(name.as_str()) {
                return Err(self.err(
                    loc,
                    format!(
                        "`{name}` is declared twice in the definition of gate `{}`",
                        def.name
                    ),
                ));
            }
        }
        self.check_gate_body(&def.name, &def.body)?;
        self.gates
            .insert(def.name.clone(), GateEntry::User(Rc::clone(def)));
        Ok(())
    }

    /// Every gate a body calls must be defined already (so gates cannot
    /// recurse), checked when the gate is defined.
    fn check_gate_body(&self, gate: &str, body: &[Stmt]) -> Result<()> {
        for stmt in body {
            match &stmt.kind {
                StmtKind::GateCall { name, .. } => {
                    if name == gate {
                        return Err(self.err(
                            stmt.loc,
                            format!("gate `{gate}` calls itself: gates cannot be recursive"),
                        ));
                    }
                    if !self.gates.contains_key(name) {
                        return Err(self.undefined_gate(name, stmt.loc));
                    }
                }
                StmtKind::If {
                    then_body,
                    else_body,
                    ..
                } => {
                    self.check_gate_body(gate, then_body)?;
                    if let Some(e) = else_body {
                        self.check_gate_body(gate, e)?;
                    }
                }
                StmtKind::For { body, .. }
                | StmtKind::While { body, .. }
                | StmtKind::Block(body) => self.check_gate_body(gate, body)?,
                StmtKind::Measure { .. } => {
                    return Err(self.err(
                        stmt.loc,
                        "`measure` cannot appear in a gate: gates are unitary",
                    ));
                }
                StmtKind::Reset(_) => {
                    return Err(self.err(
                        stmt.loc,
                        "`reset` cannot appear in a gate: gates are unitary",
                    ));
                }
                StmtKind::QubitDecl { .. } => {
                    return Err(self.err(stmt.loc, "a gate cannot declare qubits"));
                }
                StmtKind::Return(_) => {
                    return Err(self.err(stmt.loc, "`return` cannot appear in a gate"));
                }
                StmtKind::Noise(_) => {
                    return Err(self.err(
                        stmt.loc,
                        "a noise pragma cannot appear in a gate: gates are unitary",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A Braket noise pragma: its channel on its targets (a register
    /// target gives all its qubits, as Braket's `qs` does).
    fn noise(&mut self, noise: &Noise, loc: Loc, out: &mut Vec<Operation>) -> Result<()> {
        let mut qubits: Vec<Qubit> = Vec::new();
        for t in &noise.targets {
            for q in self.qubits(t, out)?.0 {
                if qubits.contains(&q) {
                    return Err(self.err(t.loc, format!("qubit {q} is used twice in one channel")));
                }
                qubits.push(q);
            }
        }
        let targets_loc = noise.targets.first().map_or(loc, |t| t.loc);
        let channel = match &noise.args {
            NoiseArgs::Params(params) => self.named_noise(noise, params, qubits.len(), out)?,
            NoiseArgs::Kraus(matrices) => {
                let num_qubits = matrices[0].0.len().trailing_zeros() / 2;
                let ops = matrices
                    .iter()
                    .map(|(m, _)| noise::from_big_endian(num_qubits, m))
                    .collect();
                Channel::kraus(ops).map_err(|e| self.err(matrices[0].1, e.to_string()))?
            }
        };
        if channel.num_qubits() as usize != qubits.len() {
            return Err(self.err(
                targets_loc,
                format!(
                    "`{}` acts on {}, but {} given",
                    noise.name,
                    plural(channel.num_qubits() as usize, "qubit"),
                    if qubits.len() == 1 {
                        "1 was".to_string()
                    } else {
                        format!("{} were", qubits.len())
                    }
                ),
            ));
        }
        self.reserve(1, loc)?;
        out.push(Operation::Channel { channel, qubits });
        Ok(())
    }

    /// A named channel of a noise pragma, its parameters evaluated; an
    /// out-of-range one is reported where it is written.
    fn named_noise(
        &mut self,
        noise: &Noise,
        params: &[Expr],
        num_qubits: usize,
        out: &mut Vec<Operation>,
    ) -> Result<Channel> {
        let mut values = Vec::with_capacity(params.len());
        for p in params {
            values.push(self.real(p, "a noise parameter", out)?);
        }
        let named = noise::named_channel(&noise.name).expect("checked by the parser");
        let size = u32::try_from(num_qubits).unwrap_or(u32::MAX);
        named.build(&values, size).map_err(|e| {
            let at = noise::offending_param(&e, &values).map_or(noise.name_loc, |i| params[i].loc);
            self.err(at, format!("`{}`: {e}", noise.name))
        })
    }

    fn undefined_gate(&self, name: &str, loc: Loc) -> Diagnostic {
        if self.subs.contains_key(name) {
            return self.err(
                loc,
                format!("`{name}` is a subroutine, not a gate: call it as `{name}(…);`"),
            );
        }
        if gates::is_stdgate(name) && !self.stdgates {
            return self.err(
                loc,
                format!("undefined gate `{name}` (it is in stdgates.inc: add `include \"stdgates.inc\";`)"),
            );
        }
        self.err(loc, format!("undefined gate `{name}`"))
    }

    fn undefined(&self, name: &str, loc: Loc) -> Diagnostic {
        if self.gates.contains_key(name) {
            return self.err(loc, format!("`{name}` is a gate, not a value"));
        }
        if self.subs.contains_key(name) {
            return self.err(
                loc,
                format!("`{name}` is a subroutine: call it as `{name}(…)`"),
            );
        }
        self.err(loc, format!("`{name}` is not defined"))
    }

    // ----- gate calls -------------------------------------------------------

    fn gate_call(
        &mut self,
        modifiers: &[(Modifier, Loc)],
        name: &str,
        params: &[Expr],
        args: &[Expr],
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<()> {
        let Some(entry) = self.gates.get(name).cloned() else {
            return Err(self.undefined_gate(name, loc));
        };
        if params.len() != entry.num_params() {
            return Err(self.err(
                loc,
                format!(
                    "gate `{name}` takes {}, but {} given",
                    plural(entry.num_params(), "parameter"),
                    if params.len() == 1 {
                        "1 was".to_string()
                    } else {
                        format!("{} were", params.len())
                    }
                ),
            ));
        }
        let mut values = Vec::with_capacity(params.len());
        // An angle parameter with measured bits: its known part, and the
        // measured bits with the angle each stands for.
        let mut runtime: Option<Vec<(Clbit, f64)>> = None;
        for p in params {
            if let Some((known, bits)) = self.runtime_angle(p)? {
                self.check_runtime_angle_gate(&entry, name, p, params.len())?;
                values.push(known);
                runtime = Some(bits);
                continue;
            }
            values.push(self.real(p, "a gate parameter", out)?);
        }
        let mut mods = Vec::with_capacity(modifiers.len());
        let mut num_controls: usize = 0;
        for (m, mloc) in modifiers {
            let m = match m {
                Modifier::Inv => Mod::Inv,
                Modifier::Pow(k) => Mod::Pow(self.real(k, "the power", out)?),
                Modifier::Ctrl { on, count } => {
                    let n = match count {
                        Some(e) => self.int(e, "the number of controls", out)?,
                        None => 1,
                    };
                    if n < 1 || n > i64::from(self.limits.max_qubits) {
                        return Err(self.err(*mloc, format!("cannot have {n} controls")));
                    }
                    let count = usize::try_from(n).unwrap_or(usize::MAX);
                    num_controls = num_controls.saturating_add(count);
                    Mod::Ctrl { on: *on, count }
                }
            };
            if let (Mod::Pow(k), Some(_)) = (m, &runtime)
                && k.fract() != 0.0
            {
                return Err(self.err(
                    *mloc,
                    "a non-integer power of a gate whose angle holds measured bits is not supported",
                ));
            }
            mods.push(m);
        }
        let expected = num_controls.saturating_add(entry.num_qubits());
        if args.len() != expected {
            let with = if num_controls > 0 {
                format!(" with {}", plural(num_controls, "control"))
            } else {
                String::new()
            };
            return Err(self.err(
                loc,
                format!(
                    "gate `{name}`{with} acts on {}, but {} given",
                    plural(expected, "qubit"),
                    if args.len() == 1 {
                        "1 was".to_string()
                    } else {
                        format!("{} were", args.len())
                    }
                ),
            ));
        }
        let mut operands = Vec::with_capacity(args.len());
        for a in args {
            let (qubits, scalar) = self.qubits(a, out)?;
            operands.push((qubits, scalar, a.loc));
        }
        // Broadcast over the registers among the operands.
        let mut width: Option<(usize, Loc)> = None;
        for (qubits, scalar, aloc) in &operands {
            if *scalar {
                continue;
            }
            match width {
                None => width = Some((qubits.len(), *aloc)),
                Some((w, _)) if w != qubits.len() => {
                    return Err(self.err(
                        *aloc,
                        format!(
                            "this register has {}, but an earlier one has {w}: registers in one gate call must have the same size",
                            plural(qubits.len(), "qubit")
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let n = width.map_or(1, |(w, _)| w);
        for i in 0..n {
            let qubits: Vec<Qubit> = operands
                .iter()
                .map(|(q, scalar, _)| {
                    let j = if *scalar { 0 } else { i };
                    q.get(j).copied().unwrap_or_default()
                })
                .collect();
            for (j, q) in qubits.iter().enumerate() {
                if qubits.get(..j).is_some_and(|before| before.contains(q)) {
                    let aloc = operands.get(j).map_or(loc, |o| o.2);
                    return Err(self.err(
                        aloc,
                        format!("qubit {q} is used twice in this call to `{name}`"),
                    ));
                }
            }
            let ops = self.apply_gate(&entry, name, &values, &qubits, &mods, loc)?;
            let Some(bits) = &runtime else {
                out.extend(ops);
                continue;
            };
            // g(a + b) = g(a) g(b) for these gates: the known part, then the
            // angle of each measured bit where it is 1.
            if values.first().is_some_and(|&v| v != 0.0) {
                out.extend(ops);
            }
            for &(clbit, weight) in bits {
                let then_ops = self.apply_gate(&entry, name, &[weight], &qubits, &mods, loc)?;
                self.reserve(1, loc)?;
                out.push(Operation::IfElse {
                    condition: Condition::bit(clbit, true),
                    then_ops,
                    else_ops: Vec::new(),
                });
            }
        }
        Ok(())
    }

    /// The known part and the measured bits (each with the angle it stands
    /// for) of a gate parameter that is an `angle[n]` variable holding
    /// measured bits; `None` for any other parameter.
    fn runtime_angle(&mut self, p: &Expr) -> Result<Option<RuntimeAngle>> {
        let ExprKind::Ident(name) = &p.kind else {
            return Ok(None);
        };
        let Some(Symbol::Bits(id)) = self.lookup(name, p.loc)? else {
            return Ok(None);
        };
        let Some(reg) = self.bit_regs.get(*id) else {
            return Ok(None);
        };
        if !reg.angle || !reg.cells.iter().any(|c| matches!(c, BitCell::Clbit(_))) {
            return Ok(None);
        }
        let n = reg.cells.len();
        let mut known = 0.0;
        let mut bits = Vec::new();
        for (k, cell) in reg.cells.iter().enumerate() {
            match *cell {
                BitCell::Known(true) => known += angle_weight(n, k),
                BitCell::Known(false) => {}
                BitCell::Clbit(c) => bits.push((c, angle_weight(n, k))),
            }
        }
        self.charge_bits(n, p.loc)?;
        Ok(Some((known, bits)))
    }

    /// A gate may take an angle holding measured bits only if it is a
    /// one-parameter group (`g(a + b) = g(a) g(b)`, exactly, phase included):
    /// then it is applied once for the known part and once per measured bit,
    /// in an `if` on that bit.
    fn check_runtime_angle_gate(
        &self,
        entry: &GateEntry,
        name: &str,
        p: &Expr,
        num_params: usize,
    ) -> Result<()> {
        use StandardGate::{Cp, Crx, Cry, Crz, GlobalPhase, P, Rx, Ry, Rz};
        let additive = matches!(
            entry,
            GateEntry::Builtin(Builtin {
                gate: P | Rx | Ry | Rz | Cp | Crx | Cry | Crz | GlobalPhase,
                phase: gates::PhaseFix::None,
            })
        );
        if additive && num_params == 1 {
            return Ok(());
        }
        let label = match &p.kind {
            ExprKind::Ident(v) => v.as_str(),
            _ => "this angle",
        };
        Err(self.err(
            p.loc,
            format!(
                "`{label}` holds measured bits, so it can be the angle of `p`, `phase`, `u1`, `rx`, `ry`, `rz`, `cp`, `cphase`, `crx`, `cry`, `crz` or `gphase` (each applied once per measured bit, in an `if` on it), but not of `{name}`"
            ),
        ))
    }

    /// One gate application: the body on the targets, then the modifiers
    /// from the innermost (rightmost) out.
    fn apply_gate(
        &mut self,
        entry: &GateEntry,
        name: &str,
        params: &[f64],
        qubits: &[Qubit],
        mods: &[Mod],
        loc: Loc,
    ) -> Result<Vec<Operation>> {
        let mut rest = qubits;
        let mut controls: Vec<Vec<Control>> = Vec::with_capacity(mods.len());
        for m in mods {
            let mut these = Vec::new();
            if let Mod::Ctrl { on, count } = *m {
                let (head, tail) = rest.split_at(count.min(rest.len()));
                these = head.iter().map(|&q| Control { qubit: q, on }).collect();
                rest = tail;
            }
            controls.push(these);
        }
        let mut ops = self.expand(entry, name, params, rest, loc)?;
        for (m, these) in mods.iter().zip(&controls).rev() {
            match *m {
                Mod::Ctrl { .. } => {
                    gates::add_controls(&mut ops, these).map_err(|e| self.err(loc, e))?;
                }
                Mod::Inv => gates::invert(&mut ops).map_err(|e| self.err(loc, e))?,
                Mod::Pow(k) => match gates::power(&mut ops, k).map_err(|e| self.err(loc, e))? {
                    Power::Done => {}
                    Power::Matrix(op) => ops = vec![op],
                    Power::Repeat(times) => {
                        if ops.is_empty() || times == 0 {
                            ops.clear();
                            continue;
                        }
                        let len = ops.len() as u64;
                        self.reserve(len.saturating_mul(times.saturating_sub(1)), loc)?;
                        let once = std::mem::take(&mut ops);
                        let total =
                            usize::try_from(len.saturating_mul(times)).unwrap_or(usize::MAX);
                        ops.reserve(total);
                        for _ in 0..times {
                            ops.extend(once.iter().cloned());
                        }
                    }
                },
            }
        }
        Ok(ops)
    }

    /// The operations of one unmodified gate call.
    fn expand(
        &mut self,
        entry: &GateEntry,
        name: &str,
        params: &[f64],
        qubits: &[Qubit],
        loc: Loc,
    ) -> Result<Vec<Operation>> {
        match entry {
            GateEntry::Builtin(b) => {
                let ops = gates::builtin_ops(*b, params, qubits);
                self.reserve(ops.len() as u64, loc)?;
                Ok(ops)
            }
            GateEntry::User(def) => {
                self.enter_call(name, loc)?;
                let mut scope = HashMap::new();
                for (p, &v) in def.params.iter().zip(params) {
                    scope.insert(
                        p.clone(),
                        Symbol::Var {
                            ty: VarType::Angle,
                            value: Value::Float(v),
                            constant: true,
                            runtime_depth: self.runtime_depth,
                        },
                    );
                }
                for (a, &q) in def.qubits.iter().zip(qubits) {
                    scope.insert(
                        a.clone(),
                        Symbol::Qubits {
                            qubits: Rc::new(vec![q]),
                            scalar: true,
                        },
                    );
                }
                self.calls.push(Frame {
                    kind: FrameKind::Gate,
                    scopes: vec![scope],
                });
                self.gate_body_depth += 1;
                let mark = self.bit_regs.len();
                let mut ops = Vec::new();
                let flow = self.stmts(&def.body, &mut ops)?;
                self.gate_body_depth -= 1;
                self.calls.pop();
                self.drop_local_bits(mark);
                self.leave_call();
                match flow {
                    Flow::Normal => Ok(ops),
                    Flow::Break(l) | Flow::Continue(l) => {
                        Err(self.err(l, "`break` and `continue` must be inside a loop"))
                    }
                    Flow::Return(_, l) => Err(self.err(l, "`return` cannot appear in a gate")),
                }
            }
        }
    }

    fn enter_call(&mut self, name: &str, loc: Loc) -> Result<()> {
        if self.call_stack.iter().any(|n| n == name) {
            return Err(self.err(
                loc,
                format!(
                    "`{name}` calls itself (through {}): recursion is not supported",
                    self.call_stack.join(" → ")
                ),
            ));
        }
        if self.call_stack.len() >= self.limits.max_call_depth {
            return Err(self.err(
                loc,
                format!(
                    "calls are nested more than {} deep (the limit)",
                    self.limits.max_call_depth
                ),
            ));
        }
        self.call_count = self.call_count.saturating_add(1);
        if self.call_count > self.limits.max_calls {
            return Err(self.err(
                loc,
                format!(
                    "the program makes more than {} gate and subroutine calls in all (the limit)",
                    self.limits.max_calls
                ),
            ));
        }
        self.enter(loc)?;
        self.call_stack.push(name.to_string());
        Ok(())
    }

    fn leave_call(&mut self) {
        self.call_stack.pop();
        self.leave();
    }

    // ----- control flow -----------------------------------------------------

    fn if_statement(
        &mut self,
        condition: &Expr,
        then_body: &[Stmt],
        else_body: Option<&[Stmt]>,
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<Flow> {
        let held = self.discard_held;
        let v = self.eval(condition, out)?;
        let v = self.measured(v, condition.loc, out)?;
        let truth = self.truth(v, condition.loc)?;
        // The `if` tests the condition before its branches run.
        self.discard_held = held;
        match truth {
            Truth::Known(true) => self.block(then_body, out, loc),
            Truth::Known(false) => match else_body {
                Some(body) => self.block(body, out, loc),
                None => Ok(Flow::Normal),
            },
            Truth::Runtime(cond) => {
                self.no_gate_body(loc, "an `if` on measured bits")?;
                self.charge_bits(conditions::clbit_count(&cond), loc)?;
                self.runtime_depth += 1;
                let mut then_ops = Vec::new();
                let flow = self.block(then_body, &mut then_ops, loc)?;
                self.runtime_branch_flow(flow)?;
                let mut else_ops = Vec::new();
                if let Some(body) = else_body {
                    let flow = self.block(body, &mut else_ops, loc)?;
                    self.runtime_branch_flow(flow)?;
                }
                self.runtime_depth -= 1;
                let (t, e) = (
                    conditions::count_ops(&then_ops),
                    conditions::count_ops(&else_ops),
                );
                let total = conditions::total_ops(&cond, t, e);
                self.reserve(total.saturating_sub(t).saturating_sub(e), loc)?;
                let op = conditions::branch(&cond, then_ops, else_ops);
                if conditions::nesting(std::slice::from_ref(&op)) > MAX_NESTING {
                    return Err(self.err(
                        loc,
                        format!("`if` statements on measured bits are nested more than {MAX_NESTING} deep"),
                    ));
                }
                out.push(op);
                Ok(Flow::Normal)
            }
        }
    }

    fn switch(
        &mut self,
        target: &Expr,
        cases: &[(Vec<Expr>, Vec<Stmt>)],
        default: Option<&[Stmt]>,
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<Flow> {
        let v = self.eval(target, out)?;
        let v = self.measured(v, target.loc, out)?;
        if !matches!(v, Val::Known(_) | Val::Bits(_)) {
            return Err(self.err(target.loc, "a `switch` needs an integer or bits to test"));
        }
        let mut seen = HashSet::new();
        let mut tests: Vec<(Truth, &[Stmt])> = Vec::with_capacity(cases.len());
        for (values, body) in cases {
            let mut truth = Truth::Known(false);
            for e in values {
                let k = self.int(e, "a `case` value", out)?;
                if !seen.insert(k) {
                    return Err(
                        self.err(e.loc, format!("`case {k}` appears twice in this `switch`"))
                    );
                }
                let t = match &v {
                    Val::Known(x) => {
                        let x = x.as_i64().map_err(|m| self.err(target.loc, m))?;
                        Truth::Known(x == k)
                    }
                    Val::Bits(bits) => conditions::equals(bits, k),
                    _ => Truth::Known(false),
                };
                truth = truth.or(t);
            }
            tests.push((truth, body.as_slice()));
        }
        if let Val::Known(_) = v {
            // A known value picks its case now.
            let body = tests
                .iter()
                .find(|(t, _)| *t == Truth::Known(true))
                .map(|(_, b)| *b)
                .or(default);
            return match body {
                Some(b) => self.block(b, out, loc),
                None => Ok(Flow::Normal),
            };
        }
        self.no_gate_body(loc, "a `switch` on measured bits")?;
        self.runtime_depth += 1;
        let mut chain = Vec::new();
        if let Some(body) = default {
            let flow = self.block(body, &mut chain, loc)?;
            self.runtime_branch_flow(flow)?;
        }
        let mut bodies = Vec::with_capacity(tests.len());
        for (truth, body) in &tests {
            let mut ops = Vec::new();
            if *truth != Truth::Known(false) {
                let flow = self.block(body, &mut ops, loc)?;
                self.runtime_branch_flow(flow)?;
            }
            bodies.push(ops);
        }
        self.runtime_depth -= 1;
        // `if (case 1) … else if (case 2) … else default`, built from the end.
        for ((truth, _), ops) in tests.into_iter().zip(bodies).rev() {
            chain = match truth {
                Truth::Known(true) => ops,
                Truth::Known(false) => chain,
                Truth::Runtime(cond) => {
                    self.charge_bits(conditions::clbit_count(&cond), loc)?;
                    let (t, e) = (conditions::count_ops(&ops), conditions::count_ops(&chain));
                    let total = conditions::total_ops(&cond, t, e);
                    self.reserve(total.saturating_sub(t).saturating_sub(e), loc)?;
                    vec![conditions::branch(&cond, ops, chain)]
                }
            };
        }
        if conditions::nesting(&chain) > MAX_NESTING {
            return Err(self.err(
                loc,
                format!("`if` statements on measured bits are nested more than {MAX_NESTING} deep"),
            ));
        }
        out.extend(chain);
        Ok(Flow::Normal)
    }

    fn runtime_branch_flow(&self, flow: Flow) -> Result<()> {
        match flow {
            Flow::Normal => Ok(()),
            Flow::Break(l) | Flow::Continue(l) => Err(self.err(
                l,
                "`break` and `continue` inside an `if` on measured bits are not supported",
            )),
            Flow::Return(_, l) => Err(self.err(
                l,
                "`return` inside an `if` on measured bits is not supported",
            )),
        }
    }

    fn loop_body(
        &mut self,
        var: Option<(&str, VarType, Value, Loc)>,
        body: &[Stmt],
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<Option<Flow>> {
        self.iteration(loc)?;
        self.step(loc)?;
        self.enter(loc)?;
        self.push_scope();
        if let Some((name, ty, value, vloc)) = var {
            let value = value.convert(ty).map_err(|m| self.err(vloc, m))?;
            self.declare(
                name,
                Symbol::Var {
                    ty,
                    value,
                    constant: false,
                    runtime_depth: self.runtime_depth,
                },
                vloc,
            )?;
        }
        let flow = self.stmts(body, out)?;
        self.pop_scope();
        self.leave();
        Ok(match flow {
            Flow::Break(_) => Some(Flow::Normal),
            Flow::Return(..) => Some(flow),
            Flow::Normal | Flow::Continue(_) => None,
        })
    }

    fn for_loop(
        &mut self,
        ty: Option<&Type>,
        var: &str,
        iterable: &Iterable,
        body: &[Stmt],
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<Flow> {
        let vt = match ty {
            Some(t) => self.var_type(t, out)?,
            None => VarType::Int,
        };
        match iterable {
            Iterable::Range(range) => {
                let (start, step, count) = self.loop_range(range, loc, out)?;
                let left = self
                    .limits
                    .max_loop_iterations
                    .saturating_sub(self.iterations);
                if count > u128::from(left) {
                    return Err(self.err(
                        loc,
                        format!(
                            "this loop runs {count} times, more than the {left} loop iterations left (the limit is {})",
                            self.limits.max_loop_iterations
                        ),
                    ));
                }
                let mut i = i128::from(start);
                for _ in 0..count {
                    let value = Value::Int(i64::try_from(i).unwrap_or_default());
                    if let Some(flow) =
                        self.loop_body(Some((var, vt, value, loc)), body, loc, out)?
                    {
                        return Ok(flow);
                    }
                    i += i128::from(step);
                }
            }
            Iterable::Set(items) => {
                let mut values = Vec::with_capacity(items.len());
                for e in items {
                    values.push(self.known(e, "a loop value", out)?);
                }
                for value in values {
                    if let Some(flow) =
                        self.loop_body(Some((var, vt, value, loc)), body, loc, out)?
                    {
                        return Ok(flow);
                    }
                }
            }
            Iterable::Value(e) => {
                let v = self.eval(e, out)?;
                let bits = match v {
                    Val::Known(Value::Bits(bits)) => bits,
                    Val::Bits(_) | Val::Cond(_) => {
                        return Err(self.err(
                            e.loc,
                            "a loop over measured bits is not supported: its length would be known, its values not",
                        ));
                    }
                    _ => {
                        return Err(self.err(
                            e.loc,
                            "a `for` loop runs over a range `[a:b]`, a set `{a, b}` or bits",
                        ));
                    }
                };
                let vt = if ty.is_none() { VarType::Bit(None) } else { vt };
                for b in bits {
                    if let Some(flow) =
                        self.loop_body(Some((var, vt, Value::Bits(vec![b]), loc)), body, loc, out)?
                    {
                        return Ok(flow);
                    }
                }
            }
        }
        Ok(Flow::Normal)
    }

    /// Start, step and iteration count of a loop range (inclusive end).
    fn loop_range(
        &mut self,
        range: &Range,
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<(i64, i64, u128)> {
        let (Some(start), Some(end)) = (&range.start, &range.end) else {
            return Err(self.err(loc, "a loop range needs a start and an end, as in `[0:3]`"));
        };
        let a = self.int(start, "the start of the range", out)?;
        let b = self.int(end, "the end of the range", out)?;
        let s = match &range.step {
            Some(e) => self.int(e, "the step of the range", out)?,
            None => 1,
        };
        if s == 0 {
            let at = range.step.as_ref().map_or(loc, |e| e.loc);
            return Err(self.err(at, "the step of a range cannot be 0"));
        }
        let (a128, b128, s128) = (i128::from(a), i128::from(b), i128::from(s));
        let count = if (s > 0 && a > b) || (s < 0 && a < b) {
            0
        } else {
            ((b128 - a128) / s128 + 1).unsigned_abs()
        };
        Ok((a, s, count))
    }

    fn while_loop(
        &mut self,
        condition: &Expr,
        body: &[Stmt],
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<Flow> {
        loop {
            let v = self.eval(condition, out)?;
            let v = self.measured(v, condition.loc, out)?;
            match self.truth(v, condition.loc)? {
                Truth::Known(false) => return Ok(Flow::Normal),
                Truth::Known(true) => {}
                Truth::Runtime(_) => {
                    return Err(self.err(
                        loc,
                        "while loops that depend on measurement results are not supported",
                    ));
                }
            }
            if let Some(flow) = self.loop_body(None, body, loc, out)? {
                return Ok(flow);
            }
        }
    }

    // ----- subroutines ------------------------------------------------------

    fn expression_statement(&mut self, e: &Expr, out: &mut Vec<Operation>) -> Result<()> {
        if let ExprKind::Call(name, args) = &e.kind {
            if self.gates.contains_key(name) && !self.subs.contains_key(name) {
                // `g(…);` with no qubits: a gate call missing its operands.
                return self.gate_call(&[], name, args, &[], e.loc, out);
            }
            if let Some(def) = self.subs.get(name).cloned() {
                if let Some(Val::Measure(qubits, scalar, loc)) =
                    self.call(&def, args, e.loc, out)?
                {
                    self.measure_into(&qubits, scalar, None, loc, out)?;
                }
                return Ok(());
            }
        }
        self.eval(e, out).map(|_| ())
    }

    /// Inlines a subroutine call; its value, if it returns one.
    fn call(
        &mut self,
        def: &Rc<SubDef>,
        args: &[Expr],
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<Option<Val>> {
        if args.len() != def.params.len() {
            return Err(self.err(
                loc,
                format!(
                    "subroutine `{}` takes {}, but {} given",
                    def.name,
                    plural(def.params.len(), "argument"),
                    if args.len() == 1 {
                        "1 was".to_string()
                    } else {
                        format!("{} were", args.len())
                    }
                ),
            ));
        }
        let mut scope = HashMap::new();
        let mut bit_params = Vec::new();
        for (param, arg) in def.params.iter().zip(args) {
            match param {
                SubParam::Qubit { size, name, .. } => {
                    let (qubits, _) = self.qubits(arg, out)?;
                    let expected = match size {
                        Some(e) => self.int(e, "a register size", out)?,
                        None => 1,
                    };
                    if i64::try_from(qubits.len()).ok() != Some(expected) {
                        return Err(self.err(
                            arg.loc,
                            format!(
                                "`{name}` of `{}` takes {}, but {} given",
                                def.name,
                                plural(usize::try_from(expected).unwrap_or(0), "qubit"),
                                plural(qubits.len(), "qubit")
                            ),
                        ));
                    }
                    scope.insert(
                        name.clone(),
                        Symbol::Qubits {
                            qubits: Rc::new(qubits),
                            scalar: size.is_none(),
                        },
                    );
                }
                SubParam::Classical {
                    ty,
                    name,
                    loc: ploc,
                } => {
                    let vt = self.var_type(ty, out)?;
                    let what = format!("argument `{name}` of `{}`", def.name);
                    if let VarType::Bit(width) = vt {
                        // Bits, measured or not, are passed by value: the
                        // parameter holds the same clbits.
                        let refs = match self.eval(arg, out)? {
                            Val::Bits(refs) => refs,
                            other => {
                                let v = self.expect_known(other, arg.loc, &what)?;
                                let v = v.convert(vt).map_err(|m| self.err(arg.loc, m))?;
                                let Value::Bits(bits) = v else {
                                    return Err(self.err(arg.loc, "internal error: bits expected"));
                                };
                                bits.into_iter().map(BitRef::Known).collect()
                            }
                        };
                        let n = width.map_or(1, |w| w as usize);
                        if refs.len() != n {
                            return Err(self.err(
                                arg.loc,
                                format!(
                                    "`{name}` of `{}` takes {}, but {} given",
                                    def.name,
                                    plural(n, "bit"),
                                    plural(refs.len(), "bit")
                                ),
                            ));
                        }
                        bit_params.push((name.clone(), width.is_none(), refs, *ploc));
                        continue;
                    }
                    let v = self.known(arg, &what, out)?;
                    let v = v.convert(vt).map_err(|m| self.err(arg.loc, m))?;
                    {
                        scope.insert(
                            name.clone(),
                            Symbol::Var {
                                ty: vt,
                                value: v,
                                constant: false,
                                runtime_depth: self.runtime_depth,
                            },
                        );
                    }
                }
            }
        }
        let mark = self.bit_regs.len();
        for (name, scalar, refs, ploc) in bit_params {
            let id = self.bit_regs.len();
            self.bit_regs.push(BitReg {
                name: name.clone(),
                cells: vec![BitCell::Known(false); refs.len()],
                scalar,
                angle: false,
                start: None,
                runtime_depth: self.runtime_depth,
                loc: ploc,
            });
            for (cell, r) in refs.into_iter().enumerate() {
                let value = match r {
                    BitRef::Known(b) => BitCell::Known(b),
                    BitRef::Clbit(c) => BitCell::Clbit(c),
                };
                self.set_cell(id, cell, value);
            }
            scope.insert(name, Symbol::Bits(id));
        }
        self.enter_call(&def.name, loc)?;
        self.calls.push(Frame {
            kind: FrameKind::Def,
            scopes: vec![scope],
        });
        let flow = self.stmts(&def.body, out)?;
        self.calls.pop();
        self.drop_local_bits(mark);
        self.leave_call();
        let (value, rloc) = match flow {
            Flow::Normal => (None, loc),
            Flow::Return(v, rloc) => (v, rloc),
            Flow::Break(l) | Flow::Continue(l) => {
                return Err(self.err(l, "`break` and `continue` must be inside a loop"));
            }
        };
        match (&def.ret, value) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(self.err(
                rloc,
                format!("subroutine `{}` declares no return type, but returns a value", def.name),
            )),
            (Some(_), None) => Err(self.err(
                rloc,
                format!("subroutine `{}` must return a value", def.name),
            )),
            (Some(ty), Some(Val::Known(v))) => {
                let vt = self.var_type(ty, out)?;
                let v = v.convert(vt).map_err(|m| self.err(rloc, m))?;
                Ok(Some(Val::Known(v)))
            }
            (Some(Type::Bit(_)), Some(m @ Val::Measure(..))) => Ok(Some(m)),
            (Some(ty), Some(Val::Measure(..))) => Err(self.err(
                rloc,
                format!(
                    "subroutine `{}` returns a measurement, so its return type must be bits, not {}",
                    def.name,
                    ty.keyword()
                ),
            )),
            (Some(_), Some(other)) => Ok(Some(other)),
        }
    }

    // ----- expressions ------------------------------------------------------

    /// A value known at compile time, or an error naming `what`.
    fn known(&mut self, e: &Expr, what: &str, out: &mut Vec<Operation>) -> Result<Value> {
        let v = self.eval(e, out)?;
        self.expect_known(v, e.loc, what)
    }

    /// The value `v` of the expression at `loc`, which must be known.
    fn expect_known(&self, v: Val, loc: Loc, what: &str) -> Result<Value> {
        match v {
            Val::Known(v) => Ok(v),
            Val::Bits(_) | Val::Cond(_) => Err(self.err(
                loc,
                format!(
                    "{what} depends on measurement results; only `if` conditions can test them"
                ),
            )),
            Val::Measure(..) => Err(self.err(
                loc,
                "a measurement result must be stored in a bit first (`b = measure q;`)",
            )),
            Val::Qubits(..) => Err(self.err(loc, format!("{what} must be a value, not qubits"))),
        }
    }

    fn real(&mut self, e: &Expr, what: &str, out: &mut Vec<Operation>) -> Result<f64> {
        let v = self.known(e, what, out)?;
        v.as_f64().map_err(|m| self.err(e.loc, m))
    }

    fn int(&mut self, e: &Expr, what: &str, out: &mut Vec<Operation>) -> Result<i64> {
        let v = self.known(e, what, out)?;
        v.as_i64()
            .map_err(|m| self.err(e.loc, format!("{what}: {m}")))
    }

    /// The qubits an operand names, and whether it is a single qubit.
    fn qubits(&mut self, e: &Expr, out: &mut Vec<Operation>) -> Result<(Vec<Qubit>, bool)> {
        match self.eval(e, out)? {
            Val::Qubits(q, scalar) => Ok((Rc::unwrap_or_clone(q), scalar)),
            _ => Err(self.err(e.loc, "expected qubits here")),
        }
    }

    /// A measurement used as a value (`if (m(q))` with `m` returning
    /// `measure a`): measured into the discard bit, which then holds the
    /// result until the `if` tests it.
    fn measured(&mut self, v: Val, loc: Loc, out: &mut Vec<Operation>) -> Result<Val> {
        let Val::Measure(qubits, _, _) = v else {
            return Ok(v);
        };
        let [qubit] = qubits[..] else {
            return Err(self.err(
                loc,
                "a measurement of several qubits must be stored in bits before it is used",
            ));
        };
        self.no_gate_body(loc, "`measure`")?;
        let clbit = self.discard_clbit(loc)?;
        self.reserve(1, loc)?;
        out.push(Operation::Measure { qubit, clbit });
        self.discard_held = true;
        Ok(Val::Bits(vec![BitRef::Clbit(clbit)]))
    }

    /// A value as a condition.
    fn truth(&self, v: Val, loc: Loc) -> Result<Truth> {
        match v {
            Val::Known(v) => Ok(Truth::Known(v.truthy())),
            Val::Bits(bits) => Ok(conditions::nonzero(&bits)),
            Val::Cond(c) => Ok(Truth::Runtime(c)),
            Val::Measure(..) => Err(self.err(
                loc,
                "a measurement result must be stored in a bit before it is tested (`b = measure q; if (b) …`)",
            )),
            Val::Qubits(..) => Err(self.err(loc, "qubits cannot be used as a condition")),
        }
    }

    fn truth_val(t: Truth) -> Val {
        match t {
            Truth::Known(b) => Val::Known(Value::Bool(b)),
            Truth::Runtime(c) => Val::Cond(c),
        }
    }

    /// The value of a whole bit variable: an angle's is its angle when no
    /// bit of it is measured (and its bits otherwise).
    fn read_whole(&mut self, id: usize, loc: Loc) -> Result<Val> {
        let (len, angle) = self
            .bit_regs
            .get(id)
            .map_or((0, false), |r| (r.cells.len(), r.angle));
        let cells: Vec<usize> = (0..len).collect();
        Ok(match self.read_bits(id, &cells, loc)? {
            Val::Known(Value::Bits(bits)) if angle => Val::Known(Value::Float(angle_value(&bits))),
            v => v,
        })
    }

    /// Reads cells of a bit variable.
    fn read_bits(&mut self, id: usize, cells: &[usize], loc: Loc) -> Result<Val> {
        self.charge_bits(cells.len(), loc)?;
        let Some(reg) = self.bit_regs.get(id) else {
            return Ok(Val::Known(Value::Bits(Vec::new())));
        };
        let refs: Vec<BitRef> = cells
            .iter()
            .map(|&i| match reg.cells.get(i) {
                Some(BitCell::Clbit(c)) => BitRef::Clbit(*c),
                Some(BitCell::Known(b)) => BitRef::Known(*b),
                None => BitRef::Known(false),
            })
            .collect();
        if refs.iter().all(|r| matches!(r, BitRef::Known(_))) {
            Ok(Val::Known(Value::Bits(
                refs.iter()
                    .map(|r| matches!(r, BitRef::Known(true)))
                    .collect(),
            )))
        } else {
            Ok(Val::Bits(refs))
        }
    }

    /// Positions selected by an index into something of length `len`, and
    /// whether the index was a single one.
    fn indices(
        &mut self,
        index: &Index,
        len: usize,
        name: &str,
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<(Vec<usize>, bool)> {
        let size = i64::try_from(len).unwrap_or(i64::MAX);
        let resolve = |this: &mut Self, e: &Expr, out: &mut Vec<Operation>| -> Result<usize> {
            let i = this.int(e, "an index", out)?;
            let j = if i < 0 { i.saturating_add(size) } else { i };
            if !(0..size).contains(&j) {
                return Err(this.err(
                    e.loc,
                    format!("index {i} is out of range for `{name}` of size {len}"),
                ));
            }
            Ok(usize::try_from(j).unwrap_or_default())
        };
        match index {
            Index::Single(e) => Ok((vec![resolve(self, e, out)?], true)),
            Index::Set(items) => {
                let mut v = Vec::with_capacity(items.len());
                for e in items {
                    v.push(resolve(self, e, out)?);
                }
                Ok((v, false))
            }
            Index::Range(r) => {
                let step = match &r.step {
                    Some(e) => self.int(e, "the step of a range", out)?,
                    None => 1,
                };
                if step == 0 {
                    return Err(self.err(loc, "the step of a range cannot be 0"));
                }
                let last = len.saturating_sub(1);
                let start = match &r.start {
                    Some(e) => resolve(self, e, out)?,
                    None if step < 0 => last,
                    None => 0,
                };
                let end = match &r.end {
                    Some(e) => resolve(self, e, out)?,
                    None if step < 0 => 0,
                    None => last,
                };
                let mut v = Vec::new();
                let (mut i, end, step) = (
                    i128::try_from(start).unwrap_or_default(),
                    i128::try_from(end).unwrap_or_default(),
                    i128::from(step),
                );
                while (step > 0 && i <= end) || (step < 0 && i >= end) {
                    v.push(usize::try_from(i).unwrap_or_default());
                    i += step;
                }
                Ok((v, false))
            }
        }
    }

    fn eval(&mut self, e: &Expr, out: &mut Vec<Operation>) -> Result<Val> {
        self.step(e.loc)?;
        self.enter(e.loc)?;
        let v = self.eval_inner(e, out)?;
        self.leave();
        Ok(v)
    }

    fn eval_inner(&mut self, e: &Expr, out: &mut Vec<Operation>) -> Result<Val> {
        let loc = e.loc;
        Ok(match &e.kind {
            ExprKind::Int(Some(v)) => match i64::try_from(*v) {
                Ok(v) => Val::Known(Value::Int(v)),
                Err(_) => return Err(self.err(loc, "integer is too large")),
            },
            ExprKind::Int(None) => return Err(self.err(loc, "integer is too large")),
            ExprKind::Float(v) => Val::Known(Value::Float(*v)),
            ExprKind::Bool(b) => Val::Known(Value::Bool(*b)),
            ExprKind::BitString(s) => {
                self.charge_bits(s.len(), loc)?;
                Val::Known(Value::Bits(s.chars().rev().map(|c| c == '1').collect()))
            }
            ExprKind::Ident(name) => {
                if let Some(v) = values::constant(name) {
                    return Ok(Val::Known(Value::Float(v)));
                }
                match self.lookup(name, loc)? {
                    Some(Symbol::Var { value, .. }) => Val::Known(value.clone()),
                    Some(Symbol::Qubits { qubits, scalar }) => {
                        Val::Qubits(Rc::clone(qubits), *scalar)
                    }
                    Some(Symbol::Bits(id)) => {
                        let id = *id;
                        self.read_whole(id, loc)?
                    }
                    None => {
                        if self.inputs.contains_key(name) {
                            return Err(self.err(loc, format!("`{name}` is not defined (declare it with `input float {name};`)")));
                        }
                        return Err(self.undefined(name, loc));
                    }
                }
            }
            ExprKind::Physical(n) => {
                let q = self.physical_qubit(*n, loc)?;
                Val::Qubits(Rc::new(vec![q]), true)
            }
            ExprKind::Index(base, index) => {
                // A bit variable indexed directly: read only the cells asked for.
                if let ExprKind::Ident(name) = &base.kind
                    && let Some(Symbol::Bits(id)) = self.lookup(name, base.loc)?
                {
                    let id = *id;
                    let (len, scalar) = self
                        .bit_regs
                        .get(id)
                        .map_or((0, true), |r| (r.cells.len(), r.scalar));
                    if scalar {
                        return Err(self.err(
                            loc,
                            format!("`{name}` is a single bit and cannot be indexed"),
                        ));
                    }
                    let (cells, _) = self.indices(index, len, name, loc, out)?;
                    return self.read_bits(id, &cells, loc);
                }
                let label = match &base.kind {
                    ExprKind::Ident(name) => name.clone(),
                    _ => "this value".to_string(),
                };
                match self.eval(base, out)? {
                    Val::Qubits(q, scalar) => {
                        if scalar {
                            return Err(self.err(
                                loc,
                                format!("`{label}` is a single qubit and cannot be indexed"),
                            ));
                        }
                        let (idx, single) = self.indices(index, q.len(), &label, loc, out)?;
                        let picked = idx.iter().filter_map(|&i| q.get(i).copied()).collect();
                        Val::Qubits(Rc::new(picked), single)
                    }
                    Val::Bits(bits) => {
                        let (idx, _) = self.indices(index, bits.len(), &label, loc, out)?;
                        Val::Bits(idx.iter().filter_map(|&i| bits.get(i).copied()).collect())
                    }
                    Val::Known(Value::Bits(bits)) => {
                        let (idx, _) = self.indices(index, bits.len(), &label, loc, out)?;
                        Val::Known(Value::Bits(
                            idx.iter().filter_map(|&i| bits.get(i).copied()).collect(),
                        ))
                    }
                    Val::Known(Value::Int(v)) => {
                        let (idx, _) = self.indices(index, 64, &label, loc, out)?;
                        Val::Known(Value::Bits(
                            idx.iter().map(|&i| (v >> i) & 1 == 1).collect(),
                        ))
                    }
                    _ => return Err(self.err(loc, format!("`{label}` cannot be indexed"))),
                }
            }
            ExprKind::Unary(op, x) => {
                let v = self.eval(x, out)?;
                let v = self.measured(v, x.loc, out)?;
                match (op, v) {
                    (_, Val::Known(v)) => {
                        Val::Known(values::unary(*op, &v).map_err(|m| self.err(loc, m))?)
                    }
                    (UnOp::Not, v) => Self::truth_val(self.truth(v, x.loc)?.not()),
                    (UnOp::BitNot, Val::Bits(bits)) if bits.len() == 1 => {
                        Self::truth_val(conditions::nonzero(&bits).not())
                    }
                    _ => {
                        return Err(
                            self.runtime_op_error(loc, if *op == UnOp::Neg { "-" } else { "~" })
                        );
                    }
                }
            }
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b, loc, out)?,
            ExprKind::Call(name, args) => {
                if let Some(def) = self.subs.get(name).cloned() {
                    return match self.call(&def, args, loc, out)? {
                        Some(v) => Ok(v),
                        None => Err(self.err(loc, format!("subroutine `{name}` returns no value"))),
                    };
                }
                if values::is_builtin_function(name) {
                    let mut vals = Vec::with_capacity(args.len());
                    for a in args {
                        vals.push(self.known(a, &format!("the argument of `{name}`"), out)?);
                    }
                    return values::call_builtin(name, &vals)
                        .map(Val::Known)
                        .map_err(|m| self.err(loc, m));
                }
                if self.gates.contains_key(name) {
                    return Err(self.err(
                        loc,
                        format!("`{name}` is a gate: call it as `{name}(…) qubits;`"),
                    ));
                }
                return Err(self.err(loc, format!("`{name}` is not a function or subroutine")));
            }
            ExprKind::Cast(ty, x) => {
                let vt = self.var_type(ty, out)?;
                match self.eval(x, out)? {
                    Val::Known(v) => {
                        if let VarType::Bit(Some(w)) = vt {
                            self.charge_bits(w as usize, loc)?;
                        }
                        Val::Known(v.cast(vt).map_err(|m| self.err(loc, m))?)
                    }
                    Val::Bits(bits) => match vt {
                        VarType::Bool => Self::truth_val(conditions::nonzero(&bits)),
                        VarType::Int | VarType::Uint => Val::Bits(bits),
                        VarType::Bit(w) if w.map_or(1, |w| w as usize) == bits.len() => {
                            Val::Bits(bits)
                        }
                        _ => return Err(self.runtime_op_error(loc, vt.keyword())),
                    },
                    Val::Cond(c) => match vt {
                        VarType::Bool => Val::Cond(c),
                        _ => return Err(self.runtime_op_error(loc, vt.keyword())),
                    },
                    _ => {
                        return Err(
                            self.err(loc, format!("cannot convert this to {}", vt.keyword()))
                        );
                    }
                }
            }
            ExprKind::Concat(a, b) => {
                let (mut qa, _) = self.qubits(a, out)?;
                let (qb, _) = self.qubits(b, out)?;
                qa.extend(qb);
                // No qubit twice: this also bounds the length by the qubit count.
                let mut seen = HashSet::new();
                if let Some(q) = qa.iter().find(|&&q| !seen.insert(q)) {
                    return Err(self.err(loc, format!("`++` would list qubit {q} twice")));
                }
                Val::Qubits(Rc::new(qa), false)
            }
            ExprKind::Measure(q) => {
                let (qubits, scalar) = self.qubits(q, out)?;
                Val::Measure(qubits, scalar, loc)
            }
        })
    }

    /// A value that is one bit (or a boolean) known at run time or not.
    fn single_bit(v: &Val) -> bool {
        match v {
            Val::Bits(bits) => bits.len() == 1,
            Val::Cond(_) | Val::Known(Value::Bool(_)) => true,
            Val::Known(Value::Bits(bits)) => bits.len() == 1,
            _ => false,
        }
    }

    fn runtime_op_error(&self, loc: Loc, op: &str) -> Diagnostic {
        self.err(
            loc,
            format!(
                "`{op}` cannot be applied to measured bits: only `==`, `!=`, `!`, `&&` and `||` can test them"
            ),
        )
    }

    fn binary(
        &mut self,
        op: BinOp,
        a: &Expr,
        b: &Expr,
        loc: Loc,
        out: &mut Vec<Operation>,
    ) -> Result<Val> {
        let left = self.eval(a, out)?;
        let left = self.measured(left, a.loc, out)?;
        if matches!(op, BinOp::And | BinOp::Or) {
            let lt = self.truth(left, a.loc)?;
            // Short-circuit on a known left side, as the language does.
            match (op, &lt) {
                (BinOp::And, Truth::Known(false)) => return Ok(Val::Known(Value::Bool(false))),
                (BinOp::Or, Truth::Known(true)) => return Ok(Val::Known(Value::Bool(true))),
                _ => {}
            }
            let right = self.eval(b, out)?;
            let right = self.measured(right, b.loc, out)?;
            let rt = self.truth(right, b.loc)?;
            return Ok(Self::truth_val(if op == BinOp::And {
                lt.and(rt)
            } else {
                lt.or(rt)
            }));
        }
        let right = self.eval(b, out)?;
        let right = self.measured(right, b.loc, out)?;
        match (left, right) {
            (Val::Known(x), Val::Known(y)) => Ok(Val::Known(
                values::binary(op, &x, &y).map_err(|m| self.err(loc, m))?,
            )),
            (Val::Bits(bits), Val::Known(v)) | (Val::Known(v), Val::Bits(bits))
                if matches!(op, BinOp::Eq | BinOp::Ne) =>
            {
                let target = v.as_i64().map_err(|m| self.err(loc, m))?;
                let t = conditions::equals(&bits, target);
                Ok(Self::truth_val(if op == BinOp::Eq { t } else { t.not() }))
            }
            (Val::Cond(c), Val::Known(v)) | (Val::Known(v), Val::Cond(c))
                if matches!(op, BinOp::Eq | BinOp::Ne) =>
            {
                let t = Truth::Runtime(c);
                let same = v.truthy() == (op == BinOp::Eq);
                Ok(Self::truth_val(if same { t } else { t.not() }))
            }
            (Val::Qubits(..), _) | (_, Val::Qubits(..)) => Err(self.err(
                loc,
                format!("`{}` cannot be applied to qubits", op.symbol()),
            )),
            (x, y)
                if matches!(
                    op,
                    BinOp::Eq | BinOp::Ne | BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor
                ) && Self::single_bit(&x)
                    && Self::single_bit(&y) =>
            {
                // On single bits these are boolean operations.
                let (p, q) = (self.truth(x, a.loc)?, self.truth(y, b.loc)?);
                Ok(Self::truth_val(match op {
                    BinOp::Eq => p.equal(q),
                    BinOp::BitAnd => p.and(q),
                    BinOp::BitOr => p.or(q),
                    _ => p.equal(q).not(),
                }))
            }
            (Val::Bits(_) | Val::Cond(_), Val::Bits(_) | Val::Cond(_))
                if matches!(op, BinOp::Eq | BinOp::Ne) =>
            {
                Err(self.err(
                    loc,
                    "comparing two measured registers is not supported: compare each with a number",
                ))
            }
            (Val::Measure(..), _) | (_, Val::Measure(..)) => Err(self.err(
                loc,
                "a measurement result must be stored in a bit before it is used",
            )),
            _ => Err(self.runtime_op_error(loc, op.symbol())),
        }
    }

    // ----- the circuit ------------------------------------------------------

    fn finish(self, mut ops: Vec<Operation>, end: Loc) -> Result<Circuit> {
        if let Some(name) = self
            .inputs
            .keys()
            .find(|name| !self.used_inputs.contains(*name))
        {
            return Err(self.err(
                Loc {
                    line: 1,
                    column: 1,
                    file: 0,
                },
                format!(
                    "a value was given for `{name}`, but the program declares no input of that name"
                ),
            ));
        }
        for reg in &self.bit_regs {
            if reg.start.is_none() {
                continue;
            }
            if let Some(i) = reg.cells.iter().position(|c| *c == BitCell::Known(true)) {
                let bit = if reg.scalar {
                    reg.name.clone()
                } else {
                    format!("{}[{i}]", reg.name)
                };
                return Err(self.err(
                    reg.loc,
                    format!(
                        "`{bit}` ends the program set to 1 by an assignment, but this simulator records only measured bits"
                    ),
                ));
            }
        }
        // A global phase commutes with everything: gather the top-level ones
        // into one operation at the start.
        let mut phase = 0.0;
        ops.retain(|op| match op {
            Operation::Gate {
                gate:
                    kettle_ir::Gate::Standard {
                        gate: kettle_ir::StandardGate::GlobalPhase,
                        params,
                    },
                controls,
                ..
            } if controls.is_empty() => {
                phase += params.first().copied().unwrap_or(0.0);
                false
            }
            _ => true,
        });
        let phase = phase.rem_euclid(std::f64::consts::TAU);
        if phase.is_finite() && phase > 1e-15 && (std::f64::consts::TAU - phase) > 1e-15 {
            ops.insert(0, gates::global_phase(phase));
        }
        // The scratch clbits follow the registers.
        if self.num_scratch > 0 {
            let renames: HashMap<Clbit, Clbit> = (0..self.num_scratch)
                .map(|i| (SCRATCH_BASE + i, self.num_clbits + i))
                .collect();
            rename_clbits(&mut ops, &renames);
        }
        let mut circuit = Circuit::new(self.num_qubits);
        let user_names: HashSet<&str> = self.bit_regs.iter().map(|r| r.name.as_str()).collect();
        let free_name = |base: &str| {
            let mut name = base.to_string();
            let mut k = 1;
            while user_names.contains(name.as_str()) {
                name = format!("{base}{k}");
                k += 1;
            }
            name
        };
        let discard_name = free_name("discarded");
        for slot in &self.register_order {
            let (name, size) = match slot {
                RegisterSlot::Variable(id) => match self.bit_regs.get(*id) {
                    Some(r) => (r.name.as_str(), u32::try_from(r.cells.len()).unwrap_or(0)),
                    None => continue,
                },
                RegisterSlot::Discard => (discard_name.as_str(), 1),
            };
            circuit
                .add_register(name, size)
                .map_err(|e| self.err(end, format!("internal error: {e}")))?;
        }
        if self.num_scratch > 0 {
            circuit
                .add_register(&free_name("scratch"), self.num_scratch)
                .map_err(|e| self.err(end, format!("internal error: {e}")))?;
        }
        circuit.append_ops(ops);
        circuit
            .validate()
            .map_err(|e| self.err(end, format!("internal error: {e}")))?;
        Ok(circuit)
    }
}
