//! Recursive-descent parser that lowers OpenQASM 2.0 straight to
//! [`kettle_ir::Circuit`] in one pass: declarations fill symbol tables, gate
//! definitions are stored as bodies over their arguments, and every gate call
//! is broadcast over registers and inlined down to standard gates.

use std::borrow::Cow;
use std::collections::HashSet;

// Names are hashed on every use; foldhash is several times faster than
// SipHash and still seeded per process.
use foldhash::{HashMap, HashMapExt};
use std::f64::consts::PI;

use kettle_ir::{
    Circuit, Clbit, Condition, Control, Gate, MAX_CLBITS, Operation, Qubit, StandardGate,
};

use crate::expr::{BinOp, Expr, Func};
use crate::lexer::{Kind, Lexer, Pos, Token, missing_semicolon};
use crate::{Diagnostic, IncludeResolver, Limits};

/// Words that cannot name a register, gate or parameter.
const RESERVED: &[&str] = &[
    "OPENQASM", "include", "qreg", "creg", "gate", "opaque", "measure", "reset", "barrier", "if",
    "pi", "sin", "cos", "tan", "exp", "ln", "sqrt", "asin", "acos", "atan",
];

/// The gates of `qelib1.inc` that map to one standard gate (possibly with
/// extra controls): name, base gate, number of leading control qubits.
const QELIB1_STANDARD: &[(&str, StandardGate, u32)] = {
    use StandardGate::*;
    &[
        ("u3", U, 0),
        ("u2", U2, 0),
        ("u1", P, 0),
        ("cx", Cx, 0),
        ("id", Id, 0),
        ("u", U, 0),
        ("p", P, 0),
        ("x", X, 0),
        ("y", Y, 0),
        ("z", Z, 0),
        ("h", H, 0),
        ("s", S, 0),
        ("sdg", Sdg, 0),
        ("t", T, 0),
        ("tdg", Tdg, 0),
        ("rx", Rx, 0),
        ("ry", Ry, 0),
        ("rz", Rz, 0),
        ("sx", Sx, 0),
        ("sxdg", Sxdg, 0),
        ("cz", Cz, 0),
        ("cy", Cy, 0),
        ("swap", Swap, 0),
        ("ch", Ch, 0),
        ("ccx", Ccx, 0),
        ("cswap", Cswap, 0),
        ("crx", Crx, 0),
        ("cry", Cry, 0),
        ("crz", Crz, 0),
        ("cu1", Cp, 0),
        ("cp", Cp, 0),
        ("cu3", Cu3, 0),
        ("csx", Csx, 0),
        ("cu", Cu, 0),
        ("rxx", Rxx, 0),
        ("rzz", Rzz, 0),
        ("c3x", X, 3),
        ("c3sqrtx", Sx, 3),
        ("c4x", X, 4),
    ]
};

/// Every gate name `qelib1.inc` defines (for the "forgot the include" hint).
fn is_qelib1_name(name: &str) -> bool {
    name == "u0"
        || name == "rccx"
        || name == "rc3x"
        || QELIB1_STANDARD.iter().any(|(n, _, _)| *n == name)
}

/// A register: its first index and size.
#[derive(Clone, Copy, Debug)]
struct Reg {
    start: u32,
    size: u32,
}

/// One statement of a gate body.
#[derive(Clone, Debug)]
enum BodyOp {
    /// A call of gate `gate` (an index into the gate table) on the body's
    /// qubit arguments `args`.
    Call {
        gate: usize,
        params: Vec<Expr>,
        args: Vec<usize>,
    },
    /// A barrier on the body's qubit arguments.
    Barrier { args: Vec<usize> },
}

#[derive(Clone, Debug)]
enum GateKind {
    /// A standard gate whose first `controls` qubits are extra |1⟩-controls;
    /// `drop_params` for `u0`, whose parameter has no effect.
    Builtin {
        base: StandardGate,
        controls: u32,
        drop_params: bool,
    },
    /// A `gate` definition.
    Custom { body: Vec<BodyOp> },
    /// An `opaque` declaration.
    Opaque,
}

#[derive(Clone, Debug)]
struct GateDef {
    /// Borrowed for the built-in gates: `qelib1.inc` defines some forty
    /// gates in every program that includes it, and each would be an
    /// allocation (twice, with the index) in a parse that is often all a
    /// small job costs.
    name: Cow<'static, str>,
    num_params: usize,
    num_qubits: usize,
    /// Operations one call expands to (saturating).
    size: u64,
    /// Calls of defined (not built-in) gates one call inlines, itself
    /// included (saturating): 0 for built-in and opaque gates.
    calls: u64,
    kind: GateKind,
}

/// A quantum or classical argument after resolution.
#[derive(Debug)]
struct Arg {
    /// The register's name.
    name: String,
    /// First bit of the range the argument covers.
    start: u32,
    /// Index within the register of that first bit.
    first_index: u32,
    /// Number of bits it covers (1 for an indexed argument).
    len: u32,
    /// Whether it names a whole register (it broadcasts).
    whole: bool,
    pos: Pos,
}

impl Arg {
    fn bit(&self, i: u32) -> u32 {
        if self.whole {
            self.start + i
        } else {
            self.start
        }
    }

    fn label(&self, i: u32) -> String {
        let index = if self.whole { i } else { self.first_index };
        format!("{}[{index}]", self.name)
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A file being read because of an `include`: the lexer of the file that
/// included it, and the token to resume that file with.
#[derive(Debug)]
struct IncludeFrame {
    outer: Lexer,
    resume: Token,
    name: String,
}

/// The parser and lowering state.
pub(crate) struct Parser<'a> {
    lexer: Lexer,
    tok: Token,
    /// Where the token before `tok` ended, when it is in `tok`'s file.
    prev_end: Option<Pos>,
    limits: &'a Limits,
    resolver: Option<&'a dyn IncludeResolver>,
    /// Files being included, innermost last.
    includes: Vec<IncludeFrame>,
    /// Bytes of source read, included files counted.
    source_bytes: usize,
    qregs: HashMap<String, Reg>,
    cregs: HashMap<String, Reg>,
    creg_order: Vec<String>,
    gates: Vec<GateDef>,
    gate_index: HashMap<Cow<'static, str>, usize>,
    /// Parameter names of the gate definition being parsed.
    scope: HashMap<String, usize>,
    num_qubits: u32,
    num_clbits: u32,
    ops: Vec<Operation>,
    op_count: u64,
    /// Calls of defined gates inlined so far (see [`Limits::max_calls`]).
    call_count: u64,
    qelib1: bool,
}

impl std::fmt::Debug for Parser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser")
            .field("tok", &self.tok)
            .finish_non_exhaustive()
    }
}

impl<'a> Parser<'a> {
    pub(crate) fn new(
        src: &str,
        limits: &'a Limits,
        resolver: Option<&'a dyn IncludeResolver>,
    ) -> Result<Self, Diagnostic> {
        let mut lexer = Lexer::new(src);
        let tok = lexer.next_token()?;
        let mut p = Parser {
            lexer,
            tok,
            prev_end: None,
            limits,
            resolver,
            includes: Vec::new(),
            source_bytes: src.len(),
            qregs: HashMap::new(),
            cregs: HashMap::new(),
            creg_order: Vec::new(),
            gates: Vec::new(),
            gate_index: HashMap::with_capacity(64),
            scope: HashMap::new(),
            num_qubits: 0,
            num_clbits: 0,
            ops: Vec::new(),
            op_count: 0,
            call_count: 0,
            qelib1: false,
        };
        p.add_builtin("U", StandardGate::U, 0, false);
        p.add_builtin("CX", StandardGate::Cx, 0, false);
        Ok(p)
    }

    fn add_gate(&mut self, def: GateDef) -> usize {
        let i = self.gates.len();
        self.gate_index.insert(def.name.clone(), i);
        self.gates.push(def);
        i
    }

    fn add_builtin(
        &mut self,
        name: &'static str,
        base: StandardGate,
        controls: u32,
        drop_params: bool,
    ) {
        let num_params = if drop_params { 1 } else { base.num_params() };
        self.add_gate(GateDef {
            name: Cow::Borrowed(name),
            num_params,
            num_qubits: (base.num_qubits() + controls) as usize,
            size: 1,
            calls: 0,
            kind: GateKind::Builtin {
                base,
                controls,
                drop_params,
            },
        });
    }

    /// Defines the gates of `qelib1.inc`; an error names the first gate
    /// already defined by the program.
    fn load_qelib1(&mut self, pos: Pos) -> Result<(), Diagnostic> {
        if self.qelib1 {
            return Ok(());
        }
        self.qelib1 = true;
        for &(name, base, controls) in QELIB1_STANDARD {
            self.check_new_name(name, pos)?;
            self.add_builtin(name, base, controls, false);
        }
        self.check_new_name("u0", pos)?;
        self.add_builtin("u0", StandardGate::Id, 0, true);
        let u2 = self.gate_index["u2"];
        let u1 = self.gate_index["u1"];
        let cx = self.gate_index["cx"];
        let h = || BodyOp::Call {
            gate: u2,
            params: vec![Expr::Const(0.0), Expr::Const(PI)],
            args: vec![0],
        };
        let t = |sign: f64| BodyOp::Call {
            gate: u1,
            params: vec![Expr::Const(sign * PI / 4.0)],
            args: vec![0],
        };
        let cx_ = |c: usize, t: usize| BodyOp::Call {
            gate: cx,
            params: vec![],
            args: vec![c, t],
        };
        // Bodies of qelib1.inc, with the target argument renumbered: each
        // 1-qubit call acts on arg 0 here and is patched below.
        let retarget = |op: BodyOp, target: usize| match op {
            BodyOp::Call { gate, params, args } if args.len() == 1 => BodyOp::Call {
                gate,
                params,
                args: vec![target],
            },
            other => other,
        };
        let rccx = vec![
            retarget(h(), 2),
            retarget(t(1.0), 2),
            cx_(1, 2),
            retarget(t(-1.0), 2),
            cx_(0, 2),
            retarget(t(1.0), 2),
            cx_(1, 2),
            retarget(t(-1.0), 2),
            retarget(h(), 2),
        ];
        let rc3x = vec![
            retarget(h(), 3),
            retarget(t(1.0), 3),
            cx_(2, 3),
            retarget(t(-1.0), 3),
            retarget(h(), 3),
            cx_(0, 3),
            retarget(t(1.0), 3),
            cx_(1, 3),
            retarget(t(-1.0), 3),
            cx_(0, 3),
            retarget(t(1.0), 3),
            cx_(1, 3),
            retarget(t(-1.0), 3),
            retarget(h(), 3),
            retarget(t(1.0), 3),
            cx_(2, 3),
            retarget(t(-1.0), 3),
            retarget(h(), 3),
        ];
        for (name, body, n) in [("rccx", rccx, 3), ("rc3x", rc3x, 4)] {
            self.check_new_name(name, pos)?;
            let size = body.len() as u64;
            self.add_gate(GateDef {
                name: Cow::Borrowed(name),
                num_params: 0,
                num_qubits: n,
                size,
                calls: 1,
                kind: GateKind::Custom { body },
            });
        }
        Ok(())
    }

    // ----- token helpers -------------------------------------------------

    fn advance(&mut self) -> Result<Token, Diagnostic> {
        let next = self.lexer.next_token()?;
        let t = std::mem::replace(&mut self.tok, next);
        self.prev_end = Some(t.end);
        Ok(t)
    }

    fn unexpected(&self, expected: &str) -> Diagnostic {
        self.tok.pos.error(format!(
            "expected {expected}, found {}",
            self.tok.kind.describe()
        ))
    }

    fn expect(&mut self, kind: Kind) -> Result<Pos, Diagnostic> {
        if self.tok.kind == kind {
            Ok(self.advance()?.pos)
        } else if let Some((end, message)) = missing_semicolon(&kind, self.prev_end, &self.tok) {
            Err(end.error(message))
        } else {
            Err(self.unexpected(&kind.describe()))
        }
    }

    fn eat(&mut self, kind: &Kind) -> Result<bool, Diagnostic> {
        if &self.tok.kind == kind {
            self.advance()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn ident(&mut self, what: &str) -> Result<(String, Pos), Diagnostic> {
        if let Kind::Ident(_) = self.tok.kind {
            let t = self.advance()?;
            if let Kind::Ident(name) = t.kind {
                return Ok((name, t.pos));
            }
        }
        Err(self.unexpected(what))
    }

    fn uint(&mut self, what: &str) -> Result<(u64, Pos), Diagnostic> {
        match self.tok.kind {
            Kind::Int(Some(v), _) => Ok((v, self.advance()?.pos)),
            Kind::Int(None, _) => Err(self.tok.pos.error("integer is too large")),
            _ => Err(self.unexpected(what)),
        }
    }

    fn check_new_name(&self, name: &str, pos: Pos) -> Result<(), Diagnostic> {
        if RESERVED.contains(&name) {
            return Err(pos.error(format!(
                "`{name}` is a reserved word and cannot be used as a name"
            )));
        }
        if self.qregs.contains_key(name) || self.cregs.contains_key(name) {
            return Err(pos.error(format!("`{name}` is already defined as a register")));
        }
        if self.gate_index.contains_key(name) {
            return Err(pos.error(format!("`{name}` is already defined as a gate")));
        }
        Ok(())
    }

    // ----- program -------------------------------------------------------

    pub(crate) fn parse_program(mut self) -> Result<Circuit, Diagnostic> {
        // The version line is optional, as Qiskit's loader has it: files
        // of published benchmark suites leave it out.
        if matches!(&self.tok.kind, Kind::Ident(w) if w == "OPENQASM") {
            self.advance()?;
            match self.tok.kind {
                Kind::Real(v) | Kind::Int(_, v) if v == 2.0 => {
                    self.advance()?;
                }
                Kind::Real(v) | Kind::Int(_, v) => {
                    return Err(self.tok.pos.error(format!(
                        "only OpenQASM 2.0 is supported here, not version {v}"
                    )));
                }
                _ => return Err(self.unexpected("a version number such as `2.0`")),
            }
            self.expect(Kind::Semicolon)?;
        }
        loop {
            if self.tok.kind == Kind::Eof {
                // The end of an included file resumes the file that included it.
                match self.includes.pop() {
                    Some(frame) => {
                        self.lexer = frame.outer;
                        self.tok = frame.resume;
                        self.prev_end = None;
                        continue;
                    }
                    None => break,
                }
            }
            if let Err(mut d) = self.statement() {
                if d.file.is_none() {
                    d.file = self.includes.last().map(|f| f.name.clone());
                }
                return Err(d);
            }
        }
        self.finish()
    }

    fn finish(self) -> Result<Circuit, Diagnostic> {
        let end = self.tok.pos;
        let mut circuit = Circuit::new(self.num_qubits);
        for name in &self.creg_order {
            let size = self.cregs[name].size;
            circuit
                .add_register(name, size)
                .map_err(|e| end.error(format!("internal error: {e}")))?;
        }
        circuit.append_ops(self.ops);
        circuit
            .validate()
            .map_err(|e| end.error(format!("internal error: {e}")))?;
        Ok(circuit)
    }

    fn statement(&mut self) -> Result<(), Diagnostic> {
        let Kind::Ident(word) = &self.tok.kind else {
            return Err(self.unexpected("a statement"));
        };
        match word.as_str() {
            "include" => self.include(),
            "qreg" => self.declaration(true),
            "creg" => self.declaration(false),
            "gate" => self.gate_definition(),
            "opaque" => self.opaque(),
            "if" => self.if_statement(),
            "OPENQASM" => Err(self
                .tok
                .pos
                .error("`OPENQASM` may appear only once, at the start")),
            _ => self.quantum_op(None),
        }
    }

    fn include(&mut self) -> Result<(), Diagnostic> {
        self.advance()?;
        let pos = self.tok.pos;
        let Kind::Str(file) = &self.tok.kind else {
            return Err(self.unexpected("a file name in quotes"));
        };
        let name = file.clone();
        self.advance()?;
        self.expect(Kind::Semicolon)?;
        if name == "qelib1.inc" {
            return self.load_qelib1(pos);
        }
        let Some(resolver) = self.resolver else {
            let hint = if name == "stdgates.inc" {
                " (stdgates.inc is the OpenQASM 3 library)"
            } else {
                ""
            };
            return Err(pos.error(format!(
                "cannot include \"{name}\": only qelib1.inc is available here{hint}"
            )));
        };
        if self.includes.iter().any(|f| f.name == name) {
            let chain: Vec<&str> = self.includes.iter().map(|f| f.name.as_str()).collect();
            return Err(pos.error(format!(
                "include cycle: {} includes {name}",
                chain.join(" includes ")
            )));
        }
        if self.includes.len() >= self.limits.max_include_depth {
            return Err(pos.error(format!(
                "includes are nested too deeply (more than {} levels)",
                self.limits.max_include_depth
            )));
        }
        let text = resolver
            .resolve(&name)
            .map_err(|why| pos.error(format!("cannot include \"{name}\": {why}")))?;
        let total = self.source_bytes.saturating_add(text.len());
        if total > self.limits.max_source_bytes {
            return Err(pos.error(format!(
                "with \"{name}\" the program is {total} bytes long, more than the limit of {} bytes",
                self.limits.max_source_bytes
            )));
        }
        self.source_bytes = total;
        let mut lexer = Lexer::new(&text);
        let first = lexer.next_token().map_err(|mut d| {
            d.file = Some(name.clone());
            d
        })?;
        let outer = std::mem::replace(&mut self.lexer, lexer);
        let resume = std::mem::replace(&mut self.tok, first);
        self.prev_end = None;
        self.includes.push(IncludeFrame {
            outer,
            resume,
            name,
        });
        Ok(())
    }

    fn declaration(&mut self, quantum: bool) -> Result<(), Diagnostic> {
        self.advance()?;
        let (name, name_pos) = self.ident("a register name")?;
        self.check_new_name(&name, name_pos)?;
        self.expect(Kind::LBracket)?;
        let (size, size_pos) = self.uint("the register size (an integer)")?;
        let what = if quantum { "qubits" } else { "bits" };
        if size == 0 {
            return Err(size_pos.error(format!(
                "register `{name}` must have at least one {}",
                if quantum { "qubit" } else { "bit" }
            )));
        }
        let (total, max) = if quantum {
            (
                u64::from(self.num_qubits) + size,
                u64::from(self.limits.max_qubits),
            )
        } else {
            (u64::from(self.num_clbits) + size, u64::from(MAX_CLBITS))
        };
        if total > max {
            return Err(size_pos.error(format!(
                "register `{name}[{size}]` would make {total} {what} in all, more than the limit of {max}"
            )));
        }
        self.expect(Kind::RBracket)?;
        self.expect(Kind::Semicolon)?;
        // `total <= max <= u32::MAX`, so these fit.
        let size = size as u32;
        if quantum {
            self.qregs.insert(
                name,
                Reg {
                    start: self.num_qubits,
                    size,
                },
            );
            self.num_qubits = total as u32;
        } else {
            self.cregs.insert(
                name.clone(),
                Reg {
                    start: self.num_clbits,
                    size,
                },
            );
            self.creg_order.push(name);
            self.num_clbits = total as u32;
        }
        Ok(())
    }

    /// `name(params) args` of a `gate` or `opaque` declaration.
    fn gate_signature(&mut self) -> Result<(String, Pos, Vec<String>, Vec<String>), Diagnostic> {
        self.advance()?;
        let (name, pos) = self.ident("a gate name")?;
        self.check_new_name(&name, pos)?;
        let mut params: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        if self.eat(&Kind::LParen)? && !self.eat(&Kind::RParen)? {
            loop {
                let (p, ppos) = self.ident("a parameter name")?;
                if RESERVED.contains(&p.as_str()) {
                    return Err(ppos.error(format!(
                        "`{p}` is a reserved word and cannot be used as a name"
                    )));
                }
                if !seen.insert(p.clone()) {
                    return Err(ppos.error(format!("parameter `{p}` is listed twice")));
                }
                params.push(p);
                if !self.eat(&Kind::Comma)? {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
        }
        let mut args: Vec<String> = Vec::new();
        loop {
            let (a, apos) = self.ident("a qubit argument name")?;
            if RESERVED.contains(&a.as_str()) {
                return Err(apos.error(format!(
                    "`{a}` is a reserved word and cannot be used as a name"
                )));
            }
            if !seen.insert(a.clone()) {
                return Err(apos.error(format!("argument `{a}` is listed twice")));
            }
            if args.len() >= self.limits.max_qubits as usize {
                return Err(apos.error(format!(
                    "gate `{name}` has more qubit arguments than the limit of {} qubits",
                    self.limits.max_qubits
                )));
            }
            args.push(a);
            if !self.eat(&Kind::Comma)? {
                break;
            }
        }
        Ok((name, pos, params, args))
    }

    fn opaque(&mut self) -> Result<(), Diagnostic> {
        let (name, _, params, args) = self.gate_signature()?;
        self.expect(Kind::Semicolon)?;
        self.add_gate(GateDef {
            name: Cow::Owned(name),
            num_params: params.len(),
            num_qubits: args.len(),
            size: 1,
            calls: 0,
            kind: GateKind::Opaque,
        });
        Ok(())
    }

    fn gate_definition(&mut self) -> Result<(), Diagnostic> {
        let (name, _, params, args) = self.gate_signature()?;
        self.expect(Kind::LBrace)?;
        self.scope = params
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i))
            .collect();
        let result = self.gate_body(&args);
        self.scope.clear();
        let (body, size, calls) = result?;
        self.add_gate(GateDef {
            name: Cow::Owned(name),
            num_params: params.len(),
            num_qubits: args.len(),
            size,
            calls,
            kind: GateKind::Custom { body },
        });
        Ok(())
    }

    fn body_args(&mut self, args: &[String]) -> Result<Vec<usize>, Diagnostic> {
        let mut out: Vec<usize> = Vec::new();
        loop {
            let (a, pos) = self.ident("a qubit argument")?;
            let Some(i) = args.iter().position(|x| *x == a) else {
                return Err(pos.error(format!(
                    "`{a}` is not a qubit argument of this gate definition"
                )));
            };
            if self.tok.kind == Kind::LBracket {
                return Err(self
                    .tok
                    .pos
                    .error("a gate body cannot index its qubit arguments"));
            }
            if out.contains(&i) {
                return Err(pos.error(format!("qubit argument `{a}` is used twice in one call")));
            }
            out.push(i);
            if !self.eat(&Kind::Comma)? {
                return Ok(out);
            }
        }
    }

    /// A gate's body, the operations one call expands to, and the calls of
    /// defined gates it inlines (itself included).
    fn gate_body(&mut self, args: &[String]) -> Result<(Vec<BodyOp>, u64, u64), Diagnostic> {
        let mut body = Vec::new();
        let mut size: u64 = 0;
        let mut calls: u64 = 1;
        loop {
            if self.eat(&Kind::RBrace)? {
                return Ok((body, size, calls));
            }
            let (name, pos) = self.ident("a gate call or `}`")?;
            if name == "barrier" {
                let bargs = self.body_args(args)?;
                self.expect(Kind::Semicolon)?;
                body.push(BodyOp::Barrier { args: bargs });
                size = size.saturating_add(1);
                continue;
            }
            if matches!(
                name.as_str(),
                "measure" | "reset" | "if" | "gate" | "opaque" | "qreg" | "creg" | "include"
            ) {
                return Err(pos.error(format!(
                    "`{name}` is not allowed in a gate body: only gate calls and `barrier`"
                )));
            }
            let gate = self.lookup_gate(&name, pos)?;
            let params = self.call_params()?;
            let qargs = self.body_args(args)?;
            self.expect(Kind::Semicolon)?;
            self.check_counts(gate, params.len(), qargs.len(), pos)?;
            size = size.saturating_add(self.gates[gate].size);
            calls = calls.saturating_add(self.gates[gate].calls);
            body.push(BodyOp::Call {
                gate,
                params: params.into_iter().map(|(e, _)| e).collect(),
                args: qargs,
            });
        }
    }

    fn lookup_gate(&self, name: &str, pos: Pos) -> Result<usize, Diagnostic> {
        if let Some(&i) = self.gate_index.get(name) {
            return Ok(i);
        }
        let hint = if !self.qelib1 && is_qelib1_name(name) {
            " (it is defined in qelib1.inc: add `include \"qelib1.inc\";` after the header)"
        } else {
            ""
        };
        Err(pos.error(format!("undefined gate `{name}`{hint}")))
    }

    fn check_counts(
        &self,
        gate: usize,
        nparams: usize,
        nargs: usize,
        pos: Pos,
    ) -> Result<(), Diagnostic> {
        let def = &self.gates[gate];
        if nparams != def.num_params {
            return Err(pos.error(format!(
                "gate `{}` takes {}, got {nparams}",
                def.name,
                plural(def.num_params, "parameter", "parameters")
            )));
        }
        if nargs != def.num_qubits {
            return Err(pos.error(format!(
                "gate `{}` takes {}, got {nargs}",
                def.name,
                plural(def.num_qubits, "qubit argument", "qubit arguments")
            )));
        }
        Ok(())
    }

    /// An optional parenthesised parameter list.
    fn call_params(&mut self) -> Result<Vec<(Expr, Pos)>, Diagnostic> {
        let mut out = Vec::new();
        if self.eat(&Kind::LParen)? && !self.eat(&Kind::RParen)? {
            loop {
                let pos = self.tok.pos;
                out.push((self.expression(0, 1)?, pos));
                if !self.eat(&Kind::Comma)? {
                    break;
                }
            }
            self.expect(Kind::RParen)?;
        }
        Ok(out)
    }

    // ----- expressions ---------------------------------------------------

    fn limit_height(&self, e: Expr, pos: Pos) -> Result<Expr, Diagnostic> {
        if e.height() > self.limits.max_expression_depth {
            return Err(self.too_deep(pos));
        }
        Ok(e)
    }

    fn too_deep(&self, pos: Pos) -> Diagnostic {
        pos.error(format!(
            "expression is nested too deeply (more than {} levels)",
            self.limits.max_expression_depth
        ))
    }

    /// Pratt parser: `+ -` < `* /` < unary `-` < `^` (right-associative).
    fn expression(&mut self, min_bp: u8, depth: usize) -> Result<Expr, Diagnostic> {
        if depth > self.limits.max_expression_depth {
            return Err(self.too_deep(self.tok.pos));
        }
        let start = self.tok.pos;
        let mut lhs = match &self.tok.kind {
            Kind::Minus => {
                self.advance()?;
                let x = self.expression(5, depth + 1)?;
                self.limit_height(Expr::neg(x), start)?
            }
            Kind::LParen => {
                self.advance()?;
                let e = self.expression(0, depth + 1)?;
                self.expect(Kind::RParen)?;
                e
            }
            Kind::Int(_, v) | Kind::Real(v) => {
                let v = *v;
                self.advance()?;
                Expr::Const(v)
            }
            Kind::Ident(name) if name == "pi" => {
                self.advance()?;
                Expr::Const(PI)
            }
            Kind::Ident(name) => {
                if let Some(f) = Func::from_name(name) {
                    self.advance()?;
                    self.expect(Kind::LParen)?;
                    let x = self.expression(0, depth + 1)?;
                    self.expect(Kind::RParen)?;
                    let e = Expr::call(f, x).map_err(|m| start.error(m))?;
                    self.limit_height(e, start)?
                } else if let Some(i) = self.scope.get(name).copied() {
                    self.advance()?;
                    Expr::Param(i)
                } else if self.scope.is_empty() {
                    return Err(start.error(format!(
                        "`{name}` is not a number: only gate definitions have named parameters"
                    )));
                } else {
                    return Err(start.error(format!("unknown parameter `{name}`")));
                }
            }
            _ => return Err(self.unexpected("an expression")),
        };
        loop {
            let (op, lbp, rbp) = match self.tok.kind {
                Kind::Plus => (BinOp::Add, 1, 2),
                Kind::Minus => (BinOp::Sub, 1, 2),
                Kind::Star => (BinOp::Mul, 3, 4),
                Kind::Slash => (BinOp::Div, 3, 4),
                Kind::Caret => (BinOp::Pow, 7, 6),
                _ => break,
            };
            if lbp < min_bp {
                break;
            }
            let op_pos = self.advance()?.pos;
            let rhs = self.expression(rbp, depth + 1)?;
            let e = Expr::bin(op, lhs, rhs).map_err(|m| op_pos.error(m))?;
            lhs = self.limit_height(e, op_pos)?;
        }
        Ok(lhs)
    }

    // ----- quantum operations ----------------------------------------------

    /// One argument: `name` or `name[index]`, a quantum or classical register.
    fn argument(&mut self, quantum: bool) -> Result<Arg, Diagnostic> {
        let (name, pos) = self.ident(if quantum {
            "a quantum register"
        } else {
            "a classical register"
        })?;
        let (table, other, kind) = if quantum {
            (&self.qregs, &self.cregs, "quantum")
        } else {
            (&self.cregs, &self.qregs, "classical")
        };
        let Some(&reg) = table.get(&name) else {
            if other.contains_key(&name) {
                let other_kind = if quantum { "classical" } else { "quantum" };
                return Err(pos.error(format!(
                    "`{name}` is a {other_kind} register, but a {kind} register is needed here"
                )));
            }
            return Err(pos.error(format!("undefined {kind} register `{name}`")));
        };
        if self.eat(&Kind::LBracket)? {
            let (index, ipos) = self.uint("an index (an integer)")?;
            if index >= u64::from(reg.size) {
                let what = if quantum { "qubit" } else { "bit" };
                return Err(ipos.error(format!(
                    "{what} index {index} is out of range for register `{name}` of size {}",
                    reg.size
                )));
            }
            self.expect(Kind::RBracket)?;
            let index = index as u32;
            Ok(Arg {
                name,
                start: reg.start + index,
                first_index: index,
                len: 1,
                whole: false,
                pos,
            })
        } else {
            Ok(Arg {
                name,
                start: reg.start,
                first_index: 0,
                len: reg.size,
                whole: true,
                pos,
            })
        }
    }

    fn arguments(&mut self) -> Result<Vec<Arg>, Diagnostic> {
        let mut out = Vec::new();
        loop {
            out.push(self.argument(true)?);
            if !self.eat(&Kind::Comma)? {
                return Ok(out);
            }
        }
    }

    /// The common size of the whole-register arguments (1 if none).
    fn broadcast_size(args: &[&Arg]) -> Result<u32, Diagnostic> {
        let mut size: Option<&Arg> = None;
        for a in args.iter().filter(|a| a.whole) {
            match size {
                None => size = Some(a),
                Some(first) if first.len != a.len => {
                    return Err(a.pos.error(format!(
                        "register `{}` has size {}, but `{}` has size {}: registers in one operation must have the same size",
                        a.name, a.len, first.name, first.len
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(size.map_or(1, |a| a.len))
    }

    fn reserve(&mut self, count: u64, pos: Pos) -> Result<(), Diagnostic> {
        let max = self.limits.max_operations as u64;
        let total = self.op_count.saturating_add(count);
        if total > max {
            return Err(pos.error(format!(
                "the program expands to more than {max} operations (the limit)"
            )));
        }
        self.op_count = total;
        Ok(())
    }

    /// Counts calls of defined gates about to be inlined against
    /// [`Limits::max_calls`]: gates that expand to few or no operations can
    /// still call each other 2^n times.
    fn reserve_calls(&mut self, count: u64, pos: Pos) -> Result<(), Diagnostic> {
        let max = self.limits.max_calls;
        let total = self.call_count.saturating_add(count);
        if total > max {
            return Err(pos.error(format!(
                "the program's gate calls inline more than {max} calls of defined gates (the limit)"
            )));
        }
        self.call_count = total;
        Ok(())
    }

    fn emit(&mut self, condition: Option<&Condition>, ops: Vec<Operation>) {
        match condition {
            None => self.ops.extend(ops),
            Some(c) => self.ops.push(Operation::IfElse {
                condition: c.clone(),
                then_ops: ops,
                else_ops: Vec::new(),
            }),
        }
    }

    fn if_statement(&mut self) -> Result<(), Diagnostic> {
        self.advance()?;
        self.expect(Kind::LParen)?;
        let arg = self.argument(false)?;
        if !arg.whole {
            return Err(arg.pos.error(
                "OpenQASM 2 conditions test a whole classical register, as in `if (c == 1)`",
            ));
        }
        self.expect(Kind::EqEq)?;
        let (value, _) = self.uint("a non-negative integer")?;
        self.expect(Kind::RParen)?;
        let condition = Condition::equals((arg.start..arg.start + arg.len).collect(), value);
        match &self.tok.kind {
            Kind::Ident(w) if w == "barrier" => {
                Err(self.tok.pos.error("`barrier` cannot be conditioned"))
            }
            Kind::Ident(w)
                if matches!(
                    w.as_str(),
                    "if" | "qreg" | "creg" | "gate" | "opaque" | "include" | "OPENQASM"
                ) =>
            {
                Err(self.tok.pos.error(format!(
                    "`{w}` cannot follow `if`: only a gate call, `measure` or `reset`"
                )))
            }
            Kind::Ident(_) => self.quantum_op(Some(condition)),
            _ => Err(self.unexpected("a gate call, `measure` or `reset`")),
        }
    }

    /// A gate call, `measure`, `reset` or `barrier`, possibly conditioned.
    fn quantum_op(&mut self, condition: Option<Condition>) -> Result<(), Diagnostic> {
        let (word, pos) = self.ident("a statement")?;
        let extra = u64::from(condition.is_some());
        match word.as_str() {
            "measure" => {
                let q = self.argument(true)?;
                self.expect(Kind::Arrow)?;
                let c = self.argument(false)?;
                self.expect(Kind::Semicolon)?;
                if q.whole != c.whole || q.len != c.len {
                    return Err(c.pos.error(format!(
                        "cannot measure {} qubit(s) of `{}` into {} bit(s) of `{}`: both sides must be single bits or registers of the same size",
                        q.len, q.name, c.len, c.name
                    )));
                }
                self.reserve(u64::from(q.len) * (1 + extra), pos)?;
                for i in 0..q.len {
                    let op = Operation::Measure {
                        qubit: q.bit(i),
                        clbit: c.bit(i) as Clbit,
                    };
                    self.emit(condition.as_ref(), vec![op]);
                }
                Ok(())
            }
            "reset" => {
                let q = self.argument(true)?;
                self.expect(Kind::Semicolon)?;
                self.reserve(u64::from(q.len) * (1 + extra), pos)?;
                for i in 0..q.len {
                    self.emit(
                        condition.as_ref(),
                        vec![Operation::Reset { qubit: q.bit(i) }],
                    );
                }
                Ok(())
            }
            "barrier" => {
                let args = self.arguments()?;
                self.expect(Kind::Semicolon)?;
                self.reserve(1, pos)?;
                let mut qubits: Vec<Qubit> = Vec::new();
                for a in &args {
                    for i in 0..a.len {
                        let q = a.bit(i);
                        if !qubits.contains(&q) {
                            qubits.push(q);
                        }
                    }
                }
                self.ops.push(Operation::Barrier { qubits });
                Ok(())
            }
            _ => self.gate_call(&word, pos, condition),
        }
    }

    fn gate_call(
        &mut self,
        name: &str,
        pos: Pos,
        condition: Option<Condition>,
    ) -> Result<(), Diagnostic> {
        let gate = self.lookup_gate(name, pos)?;
        let params = self.call_params()?;
        let args = self.arguments()?;
        self.expect(Kind::Semicolon)?;
        self.check_counts(gate, params.len(), args.len(), pos)?;
        if let GateKind::Opaque = self.gates[gate].kind {
            return Err(pos.error(format!(
                "gate `{name}` is opaque (declared without a body), so it cannot be simulated"
            )));
        }
        let values = params
            .iter()
            .map(|(e, p)| e.eval(&[]).map_err(|m| p.error(m)))
            .collect::<Result<Vec<f64>, _>>()?;
        let refs: Vec<&Arg> = args.iter().collect();
        let n = Self::broadcast_size(&refs)?;
        let per_call = self.gates[gate]
            .size
            .saturating_add(u64::from(condition.is_some()));
        self.reserve(per_call.saturating_mul(u64::from(n)), pos)?;
        self.reserve_calls(self.gates[gate].calls.saturating_mul(u64::from(n)), pos)?;
        for i in 0..n {
            let qubits: Vec<Qubit> = args.iter().map(|a| a.bit(i)).collect();
            for (j, q) in qubits.iter().enumerate() {
                if qubits[..j].contains(q) {
                    return Err(args[j].pos.error(format!(
                        "qubit `{}` is used twice in this call to `{name}`",
                        args[j].label(i)
                    )));
                }
            }
            let mut out = Vec::new();
            self.expand(gate, values.clone(), qubits, &mut out, pos)?;
            self.emit(condition.as_ref(), out);
        }
        Ok(())
    }

    fn builtin_op(
        base: StandardGate,
        controls: u32,
        drop_params: bool,
        params: &[f64],
        qubits: &[Qubit],
    ) -> Operation {
        let split = (controls as usize).min(qubits.len());
        Operation::Gate {
            gate: Gate::standard(base, if drop_params { &[] } else { params }),
            qubits: qubits[split..].to_vec(),
            controls: qubits[..split].iter().map(|&q| Control::one(q)).collect(),
        }
    }

    /// Inlines one call of `gate` into `out`, without recursion.
    fn expand(
        &self,
        gate: usize,
        params: Vec<f64>,
        qubits: Vec<Qubit>,
        out: &mut Vec<Operation>,
        pos: Pos,
    ) -> Result<(), Diagnostic> {
        struct Frame {
            gate: usize,
            params: Vec<f64>,
            qubits: Vec<Qubit>,
            next: usize,
        }
        let mut stack = vec![Frame {
            gate,
            params,
            qubits,
            next: 0,
        }];
        while let Some(frame) = stack.last_mut() {
            let def = &self.gates[frame.gate];
            let body = match &def.kind {
                GateKind::Builtin {
                    base,
                    controls,
                    drop_params,
                } => {
                    out.push(Self::builtin_op(
                        *base,
                        *controls,
                        *drop_params,
                        &frame.params,
                        &frame.qubits,
                    ));
                    stack.pop();
                    continue;
                }
                GateKind::Opaque => {
                    return Err(pos.error(format!(
                        "gate `{}` is opaque (declared without a body), so it cannot be simulated",
                        def.name
                    )));
                }
                GateKind::Custom { body } => body,
            };
            let Some(op) = body.get(frame.next) else {
                stack.pop();
                continue;
            };
            frame.next += 1;
            match op {
                BodyOp::Barrier { args } => out.push(Operation::Barrier {
                    qubits: args.iter().map(|&a| frame.qubits[a]).collect(),
                }),
                BodyOp::Call { gate, params, args } => {
                    let values = params
                        .iter()
                        .map(|e| e.eval(&frame.params))
                        .collect::<Result<Vec<f64>, String>>()
                        .map_err(|m| {
                            pos.error(format!("in the body of gate `{}`: {m}", def.name))
                        })?;
                    let qubits = args.iter().map(|&a| frame.qubits[a]).collect();
                    stack.push(Frame {
                        gate: *gate,
                        params: values,
                        qubits,
                        next: 0,
                    });
                }
            }
        }
        Ok(())
    }
}
