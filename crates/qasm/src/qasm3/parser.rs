//! Recursive-descent parser from OpenQASM 3 tokens to the syntax tree in
//! [`ast`](super::ast), including the text of `include`d files (read through
//! the [`IncludeResolver`], never from disk).
//!
//! Depth is bounded everywhere the grammar nests: expressions by
//! [`Limits::max_expression_depth`], blocks and brace-less bodies by
//! [`Limits::max_block_depth`], includes by [`Limits::max_include_depth`]; so
//! no input can overflow the stack. Constructs a simulator cannot run are
//! rejected here, by name and position, when their keyword is read.

use std::rc::Rc;

use crate::lexer::{Dialect, Kind, Lexer, Pos, Token, missing_semicolon};
use crate::{Diagnostic, IncludeResolver, Limits};

use super::ast::{
    BinOp, Expr, ExprKind, GateDef, Index, Iterable, LValue, Loc, Modifier, Range, Stmt, StmtKind,
    SubDef, SubParam, Type, UnOp,
};

mod pragma;

/// The built-in standard library: never read, never passed to the resolver.
pub(crate) const STDGATES: &str = "stdgates.inc";
/// The OpenQASM 2 library, named in OpenQASM 3 only to say so.
const QELIB1: &str = "qelib1.inc";

/// Keywords of constructs that are recognised and refused, with the reason.
fn unsupported_keyword(word: &str) -> Option<String> {
    let timing = |w: &str| format!("`{w}` (timing) is not supported by this simulator");
    let pulse =
        |w: &str| format!("`{w}` (pulse-level calibration) is not supported by this simulator");
    Some(match word {
        "durationof" => timing(word),
        "defcal" | "cal" | "defcalgrammar" | "port" | "frame" | "waveform" => pulse(word),
        "extern" => "`extern` functions are not supported by this simulator".into(),
        "opaque" => "`opaque` gates have no body, so this simulator cannot run them".into(),
        "array" | "readonly" | "mutable" | "sizeof" => {
            format!("`{word}` (arrays) is not supported by this simulator")
        }
        "complex" => "`complex` numbers are not supported by this simulator".into(),
        "end" => "`end` is not supported by this simulator".into(),
        _ => return None,
    })
}

/// Names that cannot be declared.
const RESERVED: &[&str] = &[
    "OPENQASM", "include", "qubit", "qreg", "creg", "bit", "int", "uint", "float", "angle", "bool",
    "const", "input", "output", "let", "gate", "def", "measure", "reset", "barrier", "if", "else",
    "for", "in", "while", "break", "continue", "return", "inv", "pow", "ctrl", "negctrl", "gphase",
    "true", "false", "pi", "π", "tau", "τ", "euler", "ℇ", "U", "switch", "case", "default",
    "delay", "box", "duration", "stretch",
];

/// Include bookkeeping shared by the parser of the main source and those of
/// the files it includes.
pub(crate) struct Includes<'r> {
    /// `None`: only the built-in library may be included.
    pub(crate) resolver: Option<&'r dyn IncludeResolver>,
    /// `false`: includes are recorded, not read ([`crate::qasm3_inputs`]).
    pub(crate) read: bool,
    /// File names; index 0 is the main source.
    pub(crate) files: Vec<String>,
    /// The chain of files being included, innermost last.
    pub(crate) stack: Vec<String>,
    /// Bytes of source read so far, the main source included.
    pub(crate) bytes: usize,
    /// The pragma lines of every file read (see [`crate::lexer::Lexer`]).
    pub(crate) pragmas: Vec<(Loc, String)>,
}

impl Includes<'_> {
    /// A diagnostic at `loc`, naming its file.
    pub(crate) fn error(&self, loc: Loc, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            line: loc.line,
            column: loc.column,
            file: file_name(&self.files, loc.file),
            limit: None,
        }
    }
}

/// The name of file `index`, `None` for the main source.
pub(crate) fn file_name(files: &[String], index: u32) -> Option<String> {
    if index == 0 {
        None
    } else {
        files.get(index as usize).cloned()
    }
}

/// The parser of one file.
pub(crate) struct Parser<'s, 'i, 'r> {
    lexer: Lexer,
    tok: Token,
    /// Where the token before `tok` ended.
    prev_end: Option<Pos>,
    file: u32,
    limits: &'s Limits,
    includes: &'i mut Includes<'r>,
    block_depth: usize,
    /// The text read (a file, or a pragma's text after `pragma`).
    src: &'s str,
    /// Where `src` starts in its file: (1, 1) for a file, the pragma's text
    /// for a pragma, so that positions in a pragma are those of its file.
    origin: Pos,
    /// The last line [`Parser::source_line`] found and where it starts.
    line_cursor: (u32, usize),
}

impl std::fmt::Debug for Parser<'_, '_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser")
            .field("tok", &self.tok)
            .finish_non_exhaustive()
    }
}

type Result<T> = std::result::Result<T, Diagnostic>;

impl<'s, 'i, 'r> Parser<'s, 'i, 'r> {
    pub(crate) fn new(
        src: &'s str,
        file: u32,
        limits: &'s Limits,
        includes: &'i mut Includes<'r>,
    ) -> Result<Self> {
        Self::with_origin(src, Pos { line: 1, column: 1 }, file, limits, includes)
    }

    /// A parser of `src`, which starts at `origin` in file `file`.
    fn with_origin(
        src: &'s str,
        origin: Pos,
        file: u32,
        limits: &'s Limits,
        includes: &'i mut Includes<'r>,
    ) -> Result<Self> {
        let mut parser = Parser {
            lexer: Lexer::with_dialect(src, Dialect::Qasm3),
            tok: Token {
                kind: Kind::Eof,
                pos: origin,
                end: origin,
            },
            prev_end: None,
            file,
            limits,
            includes,
            block_depth: 0,
            src,
            origin,
            line_cursor: (1, 0),
        };
        parser.advance()?;
        parser.prev_end = None;
        Ok(parser)
    }

    // ----- tokens ---------------------------------------------------------

    fn loc_of(&self, pos: Pos) -> Loc {
        let pos = self.file_pos(pos);
        Loc {
            line: pos.line,
            column: pos.column,
            file: self.file,
        }
    }

    /// Where a position in `src` is in its file.
    fn file_pos(&self, pos: Pos) -> Pos {
        if pos.line <= 1 {
            Pos {
                line: self.origin.line,
                column: self
                    .origin
                    .column
                    .saturating_add(pos.column.saturating_sub(1)),
            }
        } else {
            Pos {
                line: self.origin.line.saturating_add(pos.line - 1),
                column: pos.column,
            }
        }
    }

    /// A lexer's diagnostic, placed in the file.
    fn lexed(&self, mut d: Diagnostic) -> Diagnostic {
        let pos = self.file_pos(Pos {
            line: d.line,
            column: d.column,
        });
        (d.line, d.column) = (pos.line, pos.column);
        in_file(d, self.includes, self.file)
    }

    fn loc(&self) -> Loc {
        self.loc_of(self.tok.pos)
    }

    fn error(&self, loc: Loc, message: impl Into<String>) -> Diagnostic {
        self.includes.error(loc, message)
    }

    fn advance(&mut self) -> Result<Token> {
        let next = match self.lexer.next_token() {
            Ok(t) => t,
            Err(d) => return Err(self.lexed(d)),
        };
        let t = std::mem::replace(&mut self.tok, next);
        self.prev_end = Some(t.end);
        Ok(t)
    }

    fn unexpected(&self, expected: &str) -> Diagnostic {
        self.error(
            self.loc(),
            format!("expected {expected}, found {}", self.tok.kind.describe()),
        )
    }

    fn expect(&mut self, kind: Kind) -> Result<Loc> {
        if self.tok.kind == kind {
            let t = self.advance()?;
            Ok(self.loc_of(t.pos))
        } else if let Some((end, message)) = missing_semicolon(&kind, self.prev_end, &self.tok) {
            Err(self.error(self.loc_of(end), message))
        } else {
            Err(self.unexpected(&kind.describe()))
        }
    }

    fn eat(&mut self, kind: &Kind) -> Result<bool> {
        if &self.tok.kind == kind {
            self.advance()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(&self.tok.kind, Kind::Ident(w) if w == word)
    }

    fn ident(&mut self, what: &str) -> Result<(String, Loc)> {
        if let Kind::Ident(_) = self.tok.kind {
            let t = self.advance()?;
            if let Kind::Ident(name) = t.kind {
                return Ok((name, self.loc_of(t.pos)));
            }
        }
        Err(self.unexpected(what))
    }

    /// A name being declared: not a keyword or reserved word.
    fn new_name(&mut self, what: &str) -> Result<(String, Loc)> {
        let loc = self.loc();
        let (name, loc) = self.ident(what).map_err(|e| {
            if let Kind::Ident(_) = self.tok.kind {
                e
            } else {
                self.error(
                    loc,
                    format!("expected {what}, found {}", self.tok.kind.describe()),
                )
            }
        })?;
        if RESERVED.contains(&name.as_str()) || unsupported_keyword(&name).is_some() {
            return Err(self.error(
                loc,
                format!("`{name}` is a reserved word and cannot be used as a name"),
            ));
        }
        Ok((name, loc))
    }

    // ----- program --------------------------------------------------------

    /// The whole file: an optional version header, then statements; and
    /// where the file ends.
    pub(crate) fn program(mut self) -> Result<(Vec<Stmt>, Loc)> {
        if self.is_word("OPENQASM") {
            let loc = self.loc();
            self.advance()?;
            let version = match self.tok.kind {
                Kind::Int(_, v) | Kind::Real(v) => v,
                _ => return Err(self.unexpected("a version number such as `3.0`")),
            };
            if !(3.0..4.0).contains(&version) {
                let hint = if version == 2.0 {
                    ": this is an OpenQASM 2 program, read it as such"
                } else {
                    ""
                };
                return Err(self.error(
                    loc,
                    format!("only OpenQASM 3 is supported here, not version {version}{hint}"),
                ));
            }
            self.advance()?;
            self.expect(Kind::Semicolon)?;
        }
        let mut stmts = Vec::new();
        self.pragmas(&mut stmts)?;
        while self.tok.kind != Kind::Eof {
            stmts.push(self.statement()?);
            self.pragmas(&mut stmts)?;
        }
        Ok((stmts, self.loc()))
    }

    fn enter_block(&mut self, loc: Loc) -> Result<()> {
        self.block_depth += 1;
        if self.block_depth > self.limits.max_block_depth {
            return Err(self.error(
                loc,
                format!(
                    "blocks are nested too deeply (more than {} levels)",
                    self.limits.max_block_depth
                ),
            ));
        }
        Ok(())
    }

    /// `{ statements }`.
    fn block(&mut self) -> Result<Vec<Stmt>> {
        let open = self.expect(Kind::LBrace)?;
        self.enter_block(open)?;
        let mut stmts = Vec::new();
        loop {
            self.pragmas(&mut stmts)?;
            match self.tok.kind {
                Kind::RBrace => break,
                Kind::Eof => return Err(self.error(open, "this `{` is never closed")),
                _ => stmts.push(self.statement()?),
            }
        }
        self.advance()?;
        self.block_depth -= 1;
        Ok(stmts)
    }

    /// The body of `if`, `else`, `for`, `while`: a block or one statement.
    fn body(&mut self) -> Result<Vec<Stmt>> {
        if self.tok.kind == Kind::LBrace {
            return self.block();
        }
        let loc = self.loc();
        self.enter_block(loc)?;
        let stmt = self.statement()?;
        self.block_depth -= 1;
        Ok(vec![stmt])
    }

    fn statement(&mut self) -> Result<Stmt> {
        let loc = self.loc();
        let kind = match &self.tok.kind {
            Kind::LBrace => StmtKind::Block(self.block()?),
            Kind::Ident(word) => {
                if let Some(message) = unsupported_keyword(word) {
                    return Err(self.error(loc, message));
                }
                match word.as_str() {
                    "OPENQASM" => {
                        return Err(self.error(
                            loc,
                            "`OPENQASM` may appear only once, at the start of the program",
                        ));
                    }
                    "include" => self.include()?,
                    "qubit" | "qreg" => self.qubit_declaration()?,
                    "const" => {
                        self.advance()?;
                        self.classical_declaration(true, false)?
                    }
                    "input" => {
                        self.advance()?;
                        self.classical_declaration(false, true)?
                    }
                    "output" => {
                        // The output qualifier changes nothing in a simulation.
                        self.advance()?;
                        self.classical_declaration(false, false)?
                    }
                    "bit" | "int" | "uint" | "float" | "angle" | "bool" | "creg" => {
                        self.classical_declaration(false, false)?
                    }
                    "let" => self.alias()?,
                    "gate" => self.gate_definition()?,
                    "def" => self.subroutine()?,
                    "measure" => self.measure_statement()?,
                    "reset" => {
                        self.advance()?;
                        let q = self.expression()?;
                        self.expect(Kind::Semicolon)?;
                        StmtKind::Reset(q)
                    }
                    "barrier" => {
                        self.advance()?;
                        StmtKind::Barrier(self.comma_list(Kind::Semicolon, Self::expression)?)
                    }
                    "if" => self.if_statement()?,
                    "else" => return Err(self.error(loc, "`else` without a matching `if`")),
                    "for" => self.for_statement()?,
                    "while" => {
                        self.advance()?;
                        self.expect(Kind::LParen)?;
                        let condition = self.expression()?;
                        self.expect(Kind::RParen)?;
                        let body = self.body()?;
                        StmtKind::While { condition, body }
                    }
                    "switch" => self.switch()?,
                    // Timing: an ideal simulator has no time, so a delay is
                    // the identity (Aer runs it so), a box is its body, and
                    // durations and stretches only name times.
                    "delay" => {
                        self.advance()?;
                        self.skip_designator()?;
                        // No-ops on the state, like a barrier: `delay[t];`
                        // with no operands covers every qubit, as `barrier;`.
                        StmtKind::Barrier(self.comma_list(Kind::Semicolon, Self::expression)?)
                    }
                    "box" => {
                        self.advance()?;
                        if self.tok.kind == Kind::LBracket {
                            self.skip_designator()?;
                        }
                        StmtKind::Block(self.block()?)
                    }
                    "duration" | "stretch" => {
                        self.advance()?;
                        self.skip_to_semicolon()?;
                        StmtKind::Block(Vec::new())
                    }
                    "case" | "default" => {
                        return Err(self.error(loc, format!("`{word}` outside a `switch`")));
                    }
                    "break" | "continue" => {
                        let brk = word == "break";
                        self.advance()?;
                        self.expect(Kind::Semicolon)?;
                        if brk {
                            StmtKind::Break
                        } else {
                            StmtKind::Continue
                        }
                    }
                    "return" => {
                        self.advance()?;
                        let value = if self.tok.kind == Kind::Semicolon {
                            None
                        } else {
                            Some(self.rhs()?)
                        };
                        self.expect(Kind::Semicolon)?;
                        StmtKind::Return(value)
                    }
                    "inv" | "pow" | "ctrl" | "negctrl" | "gphase" => self.gate_call(Vec::new())?,
                    _ => self.identifier_statement()?,
                }
            }
            Kind::Duration(text) => {
                return Err(self.error(
                    loc,
                    format!("timing literals such as `{text}` are not supported by this simulator"),
                ));
            }
            _ => return Err(self.unexpected("a statement")),
        };
        Ok(Stmt { kind, loc })
    }

    fn include(&mut self) -> Result<StmtKind> {
        self.advance()?;
        let loc = self.loc();
        let Kind::Str(name) = &self.tok.kind else {
            return Err(self.unexpected("a file name in quotes"));
        };
        let name = name.clone();
        self.advance()?;
        self.expect(Kind::Semicolon)?;
        if self.block_depth > 0 {
            return Err(self.error(loc, "`include` is allowed only at the top level"));
        }
        if name == STDGATES {
            return Ok(StmtKind::IncludeStdgates);
        }
        if name == QELIB1 {
            return Err(self.error(
                loc,
                format!(
                    "\"{QELIB1}\" is the OpenQASM 2 library: this program reads as OpenQASM 3; \
                     for OpenQASM 2 start it with `OPENQASM 2.0;` (or give the format qasm2), \
                     for OpenQASM 3 include \"{STDGATES}\""
                ),
            ));
        }
        if !self.includes.read {
            return Ok(StmtKind::IncludeUnread);
        }
        let Some(resolver) = self.includes.resolver else {
            return Err(self.error(
                loc,
                format!("cannot include \"{name}\": only \"{STDGATES}\" is available here"),
            ));
        };
        if self.includes.stack.contains(&name) {
            let mut chain = self.includes.stack.clone();
            chain.push(name.clone());
            return Err(self.error(loc, format!("include cycle: {}", chain.join(" includes "))));
        }
        if self.includes.stack.len() >= self.limits.max_include_depth {
            return Err(self.error(
                loc,
                format!(
                    "includes are nested too deeply (more than {} levels)",
                    self.limits.max_include_depth
                ),
            ));
        }
        let text = resolver
            .resolve(&name)
            .map_err(|why| self.error(loc, format!("cannot include \"{name}\": {why}")))?;
        let total = self.includes.bytes.saturating_add(text.len());
        if total > self.limits.max_source_bytes {
            return Err(self.error(
                loc,
                format!(
                    "with \"{name}\" the program is {total} bytes long, more than the limit of {} bytes",
                    self.limits.max_source_bytes
                ),
            ));
        }
        self.includes.bytes = total;
        let file = u32::try_from(self.includes.files.len())
            .map_err(|_| self.error(loc, "too many included files"))?;
        self.includes.files.push(name.clone());
        self.includes.stack.push(name);
        let (stmts, _) = Parser::new(&text, file, self.limits, self.includes)?.program()?;
        self.includes.stack.pop();
        Ok(StmtKind::Included(stmts))
    }

    /// `qubit q;`, `qubit[n] q;`, `qreg q;`, `qreg q[n];`.
    fn qubit_declaration(&mut self) -> Result<StmtKind> {
        let (size, name, _) = self.sized_qubit_name("a register name")?;
        self.expect(Kind::Semicolon)?;
        Ok(StmtKind::QubitDecl { name, size })
    }

    /// At `qubit` or `qreg`: the name and the optional size in either
    /// spelling, `qubit[n] q` or `qreg q[n]`.
    fn sized_qubit_name(&mut self, what: &str) -> Result<(Option<Expr>, String, Loc)> {
        let legacy = self.is_word("qreg");
        self.advance()?;
        let mut size = None;
        if !legacy && self.eat(&Kind::LBracket)? {
            size = Some(self.expression()?);
            self.expect(Kind::RBracket)?;
        }
        let (name, loc) = self.new_name(what)?;
        if legacy && self.eat(&Kind::LBracket)? {
            size = Some(self.expression()?);
            self.expect(Kind::RBracket)?;
        }
        Ok((size, name, loc))
    }

    /// A classical type: `bit`, `bit[n]`, `int[32]`, `float`, …
    fn classical_type(&mut self) -> Result<Type> {
        let loc = self.loc();
        let (word, _) = self.ident("a type")?;
        if let Some(message) = unsupported_keyword(&word) {
            return Err(self.error(loc, message));
        }
        let ty = match word.as_str() {
            "bit" => Type::Bit(None),
            "int" => Type::Int,
            "uint" => Type::Uint,
            "float" => Type::Float,
            "angle" => Type::Angle(None),
            "bool" => return Ok(Type::Bool),
            _ => {
                return Err(self.error(
                    loc,
                    format!("expected a classical type (bit, int, uint, float, angle, bool), found `{word}`"),
                ));
            }
        };
        if self.eat(&Kind::LBracket)? {
            let size = self.expression()?;
            self.expect(Kind::RBracket)?;
            if ty == Type::Bit(None) {
                return Ok(Type::Bit(Some(Box::new(size))));
            }
            if ty == Type::Angle(None) {
                return Ok(Type::Angle(Some(Box::new(size))));
            }
            // Widths of numbers do not change a simulation's result here:
            // integers are 64-bit, floats double precision.
        }
        Ok(ty)
    }

    fn classical_declaration(&mut self, constant: bool, input: bool) -> Result<StmtKind> {
        let (ty, name) = if self.is_word("creg") {
            self.advance()?;
            let (name, _) = self.new_name("a register name")?;
            let mut size = None;
            if self.eat(&Kind::LBracket)? {
                size = Some(Box::new(self.expression()?));
                self.expect(Kind::RBracket)?;
            }
            (Type::Bit(size), name)
        } else {
            let ty = self.classical_type()?;
            let (name, _) = self.new_name("a variable name")?;
            (ty, name)
        };
        let init = if !input && self.eat(&Kind::Assign)? {
            Some(self.rhs()?)
        } else {
            None
        };
        if constant && init.is_none() {
            return Err(self.unexpected("`=` and the constant's value"));
        }
        self.expect(Kind::Semicolon)?;
        Ok(StmtKind::ClassicalDecl {
            ty,
            name,
            init,
            constant,
            input,
        })
    }

    fn alias(&mut self) -> Result<StmtKind> {
        self.advance()?;
        let (name, _) = self.new_name("an alias name")?;
        self.expect(Kind::Assign)?;
        let value = self.expression()?;
        self.expect(Kind::Semicolon)?;
        Ok(StmtKind::Alias { name, value })
    }

    fn gate_definition(&mut self) -> Result<StmtKind> {
        let loc = self.loc();
        self.advance()?;
        let (name, _) = self.new_name("a gate name")?;
        let mut params = Vec::new();
        if self.eat(&Kind::LParen)? {
            params = self.comma_list(Kind::RParen, |p| Ok(p.new_name("a parameter name")?.0))?;
        }
        let mut qubits = Vec::new();
        while self.tok.kind != Kind::LBrace {
            qubits.push(self.new_name("a qubit argument name")?.0);
            if !self.eat(&Kind::Comma)? {
                break;
            }
        }
        if qubits.is_empty() {
            return Err(self.unexpected("the gate's qubit arguments"));
        }
        let body = self.block()?;
        Ok(StmtKind::Gate(Rc::new(GateDef {
            name,
            params,
            qubits,
            body,
            loc,
        })))
    }

    fn subroutine(&mut self) -> Result<StmtKind> {
        let loc = self.loc();
        self.advance()?;
        let (name, _) = self.new_name("a subroutine name")?;
        self.expect(Kind::LParen)?;
        let params = self.comma_list(Kind::RParen, Self::sub_param)?;
        let ret = if self.eat(&Kind::Arrow)? {
            Some(self.classical_type()?)
        } else {
            None
        };
        let body = self.block()?;
        Ok(StmtKind::Def(Rc::new(SubDef {
            name,
            params,
            ret,
            body,
            loc,
        })))
    }

    fn sub_param(&mut self) -> Result<SubParam> {
        if self.is_word("qubit") || self.is_word("qreg") {
            let (size, name, loc) = self.sized_qubit_name("a parameter name")?;
            return Ok(SubParam::Qubit { size, name, loc });
        }
        if self.is_word("const") {
            self.advance()?;
        }
        let ty = self.classical_type()?;
        let (name, loc) = self.new_name("a parameter name")?;
        Ok(SubParam::Classical { ty, name, loc })
    }

    fn measure_statement(&mut self) -> Result<StmtKind> {
        self.advance()?;
        let qubits = self.expression()?;
        let target = if self.eat(&Kind::Arrow)? {
            Some(self.lvalue()?)
        } else {
            None
        };
        self.expect(Kind::Semicolon)?;
        Ok(StmtKind::Measure { qubits, target })
    }

    fn lvalue(&mut self) -> Result<LValue> {
        let (name, loc) = self.ident("a variable")?;
        let index = if self.eat(&Kind::LBracket)? {
            let i = self.index_inside(0)?;
            self.expect(Kind::RBracket)?;
            Some(i)
        } else {
            None
        };
        if self.tok.kind == Kind::LBracket {
            return Err(self.error(
                self.loc(),
                "multi-dimensional indexing (arrays) is not supported by this simulator",
            ));
        }
        Ok(LValue { name, index, loc })
    }

    fn if_statement(&mut self) -> Result<StmtKind> {
        self.advance()?;
        self.expect(Kind::LParen)?;
        let condition = self.expression()?;
        self.expect(Kind::RParen)?;
        let then_body = self.body()?;
        let else_body = if self.is_word("else") {
            self.advance()?;
            Some(self.body()?)
        } else {
            None
        };
        Ok(StmtKind::If {
            condition,
            then_body,
            else_body,
        })
    }

    fn for_statement(&mut self) -> Result<StmtKind> {
        self.advance()?;
        let ty = if matches!(&self.tok.kind, Kind::Ident(w) if ["bit", "int", "uint", "float", "angle", "bool"].contains(&w.as_str()) || unsupported_keyword(w).is_some())
        {
            Some(self.classical_type()?)
        } else {
            None
        };
        let (var, _) = self.new_name("a loop variable")?;
        if !self.is_word("in") {
            return Err(self.unexpected("`in`"));
        }
        self.advance()?;
        let iterable = match self.tok.kind {
            Kind::LBracket => {
                let open = self.loc();
                self.advance()?;
                let index = self.index_inside(0)?;
                self.expect(Kind::RBracket)?;
                match index {
                    Index::Range(r) => Iterable::Range(r),
                    _ => {
                        return Err(
                            self.error(open, "expected a range such as `[0:3]` or `[0:2:10]`")
                        );
                    }
                }
            }
            Kind::LBrace => Iterable::Set(self.set_literal(0)?),
            _ => Iterable::Value(self.expression()?),
        };
        let body = self.body()?;
        Ok(StmtKind::For {
            ty,
            var,
            iterable,
            body,
        })
    }

    fn switch(&mut self) -> Result<StmtKind> {
        self.advance()?;
        self.expect(Kind::LParen)?;
        let target = self.expression()?;
        self.expect(Kind::RParen)?;
        let open = self.expect(Kind::LBrace)?;
        self.enter_block(open)?;
        let mut cases = Vec::new();
        let mut default = None;
        loop {
            let loc = self.loc();
            if self.eat(&Kind::RBrace)? {
                break;
            }
            if self.is_word("case") && default.is_none() {
                self.advance()?;
                let values = self.expression_list()?;
                cases.push((values, self.block()?));
            } else if self.is_word("default") && default.is_none() {
                self.advance()?;
                default = Some(self.block()?);
            } else if self.tok.kind == Kind::Eof {
                return Err(self.error(open, "this `{` is never closed"));
            } else if default.is_some() && (self.is_word("case") || self.is_word("default")) {
                return Err(self.error(loc, "`default` must be the last part of a `switch`"));
            } else {
                return Err(self.unexpected("`case`, `default` or `}`"));
            }
        }
        self.block_depth -= 1;
        Ok(StmtKind::Switch {
            target,
            cases,
            default,
        })
    }

    /// A gate call, after the modifiers already read (if any).
    fn gate_call(&mut self, mut modifiers: Vec<(Modifier, Loc)>) -> Result<StmtKind> {
        loop {
            let loc = self.loc();
            let modifier = match &self.tok.kind {
                Kind::Ident(w) if w == "inv" => {
                    self.advance()?;
                    Modifier::Inv
                }
                Kind::Ident(w) if w == "pow" => {
                    self.advance()?;
                    self.expect(Kind::LParen)?;
                    let k = self.expression()?;
                    self.expect(Kind::RParen)?;
                    Modifier::Pow(k)
                }
                Kind::Ident(w) if w == "ctrl" || w == "negctrl" => {
                    let on = w == "ctrl";
                    self.advance()?;
                    let count = if self.eat(&Kind::LParen)? {
                        let n = self.expression()?;
                        self.expect(Kind::RParen)?;
                        Some(n)
                    } else {
                        None
                    };
                    Modifier::Ctrl { on, count }
                }
                _ => break,
            };
            self.expect(Kind::At)?;
            modifiers.push((modifier, loc));
        }
        let (name, _) = self.ident("a gate name")?;
        let params = if self.eat(&Kind::LParen)? {
            self.comma_list(Kind::RParen, Self::expression)?
        } else {
            Vec::new()
        };
        self.gate_call_rest(modifiers, name, params)
    }

    /// Passes over a timing designator, `[` to its matching `]`: times
    /// mean nothing to an ideal simulator, so what is inside is not read.
    fn skip_designator(&mut self) -> Result<()> {
        let open = self.expect(Kind::LBracket)?;
        self.skip_designator_after(open)
    }

    /// [`skip_designator`](Self::skip_designator) once its `[` (at `open`)
    /// is read.
    fn skip_designator_after(&mut self, open: Loc) -> Result<()> {
        let mut depth = 1usize;
        loop {
            match self.tok.kind {
                Kind::LBracket => depth += 1,
                Kind::RBracket => {
                    depth -= 1;
                    if depth == 0 {
                        self.advance()?;
                        return Ok(());
                    }
                }
                Kind::Semicolon | Kind::Eof => {
                    return Err(self.error(open, "this `[` is never closed"));
                }
                _ => {}
            }
            self.advance()?;
        }
    }

    /// Passes over the rest of a timing declaration, to its `;`.
    fn skip_to_semicolon(&mut self) -> Result<()> {
        let start = self.loc();
        while self.tok.kind != Kind::Semicolon {
            // `durationof(…)` and the like are refused by name.
            if let Kind::Ident(word) = &self.tok.kind
                && let Some(message) = unsupported_keyword(word)
            {
                return Err(self.error(self.loc(), message));
            }
            if matches!(self.tok.kind, Kind::Eof | Kind::LBrace | Kind::RBrace) {
                return Err(self.error(start, "a `;` is missing at the end of this declaration"));
            }
            self.advance()?;
        }
        self.advance()?;
        Ok(())
    }

    /// The operands and `;` of a gate call.
    fn gate_call_rest(
        &mut self,
        modifiers: Vec<(Modifier, Loc)>,
        name: String,
        params: Vec<Expr>,
    ) -> Result<StmtKind> {
        // A gate's duration (`h[100ns] q;`) changes nothing here.
        if self.tok.kind == Kind::LBracket {
            self.skip_designator()?;
        }
        let args = self.comma_list(Kind::Semicolon, Self::expression)?;
        Ok(StmtKind::GateCall {
            modifiers,
            name,
            params,
            args,
        })
    }

    /// A statement that starts with a name: an assignment, a gate call or a
    /// subroutine call.
    fn identifier_statement(&mut self) -> Result<StmtKind> {
        let (name, loc) = self.ident("a statement")?;
        match &self.tok.kind {
            Kind::LBracket | Kind::Assign | Kind::CompoundAssign(_) => {
                let open = self.loc();
                let index = if self.eat(&Kind::LBracket)? {
                    if matches!(self.tok.kind, Kind::Duration(_)) {
                        // `h[100ns] q;`: a gate's duration, not an index.
                        self.skip_designator_after(open)?;
                        return self.gate_call_rest(Vec::new(), name, Vec::new());
                    }
                    let i = self.index_inside(0)?;
                    self.expect(Kind::RBracket)?;
                    Some(i)
                } else {
                    None
                };
                let op = match &self.tok.kind {
                    Kind::Assign => None,
                    Kind::CompoundAssign(op) => match BinOp::from_compound(op) {
                        Some(op) => Some(op),
                        None => {
                            return Err(self.error(
                                self.loc(),
                                format!("`{op}=` is not an assignment operator"),
                            ));
                        }
                    },
                    Kind::LBracket => {
                        return Err(self.error(
                            self.loc(),
                            "multi-dimensional indexing (arrays) is not supported by this simulator",
                        ));
                    }
                    _ => return Err(self.unexpected("`=`")),
                };
                self.advance()?;
                let value = self.rhs()?;
                self.expect(Kind::Semicolon)?;
                Ok(StmtKind::Assign {
                    target: LValue { name, index, loc },
                    op,
                    value,
                })
            }
            Kind::LParen => {
                self.advance()?;
                let args = self.comma_list(Kind::RParen, Self::expression)?;
                if self.tok.kind == Kind::Semicolon {
                    self.advance()?;
                    return Ok(StmtKind::Expr(self.mk(ExprKind::Call(name, args), loc)?));
                }
                self.gate_call_rest(Vec::new(), name, args)
            }
            _ => self.gate_call_rest(Vec::new(), name, Vec::new()),
        }
    }

    // ----- expressions ----------------------------------------------------

    /// Zero or more `item`s separated by commas, then `close` (consumed):
    /// the inside of `(a, b)` or `{a, b}` after its opening token.
    fn comma_list<T>(
        &mut self,
        close: Kind,
        mut item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        if self.tok.kind != close {
            loop {
                out.push(item(self)?);
                if !self.eat(&Kind::Comma)? {
                    break;
                }
            }
        }
        self.expect(close)?;
        Ok(out)
    }

    fn expression_list(&mut self) -> Result<Vec<Expr>> {
        let mut out = Vec::new();
        loop {
            out.push(self.expression()?);
            if !self.eat(&Kind::Comma)? {
                return Ok(out);
            }
        }
    }

    /// The right side of an assignment, initialiser or `return`: an
    /// expression or `measure operand`.
    fn rhs(&mut self) -> Result<Expr> {
        if self.is_word("measure") {
            let loc = self.loc();
            self.advance()?;
            let q = self.expression()?;
            return self.mk(ExprKind::Measure(Box::new(q)), loc);
        }
        self.expression()
    }

    pub(crate) fn expression(&mut self) -> Result<Expr> {
        self.binary(0, 0)
    }

    fn check_depth(&self, depth: usize) -> Result<()> {
        if depth > self.limits.max_expression_depth {
            return Err(self.error(
                self.loc(),
                format!(
                    "expression is nested too deeply (more than {} levels)",
                    self.limits.max_expression_depth
                ),
            ));
        }
        Ok(())
    }

    /// Pratt parser over the OpenQASM 3 precedence table (lowest first):
    /// `++`, `||`, `&&`, `|`, `^`, `&`, `== !=`, `< <= > >=`, `<< >>`,
    /// `+ -`, `* / %`, unary `- ! ~`, `**` (right-associative).
    fn binary(&mut self, min_bp: u8, depth: usize) -> Result<Expr> {
        self.check_depth(depth)?;
        let mut lhs = self.unary(depth + 1)?;
        loop {
            let (op, lbp, rbp) = match self.tok.kind {
                Kind::PlusPlus => (None, 1, 2),
                Kind::OrOr => (Some(BinOp::Or), 3, 4),
                Kind::AndAnd => (Some(BinOp::And), 5, 6),
                Kind::Pipe => (Some(BinOp::BitOr), 7, 8),
                Kind::Caret => (Some(BinOp::BitXor), 9, 10),
                Kind::Amp => (Some(BinOp::BitAnd), 11, 12),
                Kind::EqEq => (Some(BinOp::Eq), 13, 14),
                Kind::NotEq => (Some(BinOp::Ne), 13, 14),
                Kind::Less => (Some(BinOp::Lt), 15, 16),
                Kind::LessEq => (Some(BinOp::Le), 15, 16),
                Kind::Greater => (Some(BinOp::Gt), 15, 16),
                Kind::GreaterEq => (Some(BinOp::Ge), 15, 16),
                Kind::ShiftLeft => (Some(BinOp::Shl), 17, 18),
                Kind::ShiftRight => (Some(BinOp::Shr), 17, 18),
                Kind::Plus => (Some(BinOp::Add), 19, 20),
                Kind::Minus => (Some(BinOp::Sub), 19, 20),
                Kind::Star => (Some(BinOp::Mul), 21, 22),
                Kind::Slash => (Some(BinOp::Div), 21, 22),
                Kind::Percent => (Some(BinOp::Rem), 21, 22),
                Kind::StarStar => (Some(BinOp::Pow), 25, 24),
                _ => break,
            };
            if lbp < min_bp {
                break;
            }
            let loc = self.loc();
            self.advance()?;
            let rhs = self.binary(rbp, depth + 1)?;
            let kind = match op {
                Some(op) => ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                None => ExprKind::Concat(Box::new(lhs), Box::new(rhs)),
            };
            lhs = self.mk(kind, loc)?;
        }
        Ok(lhs)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr> {
        self.check_depth(depth)?;
        let loc = self.loc();
        let op = match self.tok.kind {
            Kind::Minus => UnOp::Neg,
            Kind::Bang => UnOp::Not,
            Kind::Tilde => UnOp::BitNot,
            Kind::Plus => {
                self.advance()?;
                return self.unary(depth + 1);
            }
            _ => {
                let primary = self.postfix(depth)?;
                // `**` binds tighter than a unary operator on its left.
                return self.power_tail(primary, depth);
            }
        };
        self.advance()?;
        let operand = self.binary(23, depth + 1)?;
        self.mk(ExprKind::Unary(op, Box::new(operand)), loc)
    }

    /// `primary ** rhs`, handled by [`binary`](Self::binary) above unary level.
    fn power_tail(&mut self, lhs: Expr, depth: usize) -> Result<Expr> {
        if self.tok.kind != Kind::StarStar {
            return Ok(lhs);
        }
        let loc = self.loc();
        self.advance()?;
        let rhs = self.binary(24, depth + 1)?;
        self.mk(
            ExprKind::Binary(BinOp::Pow, Box::new(lhs), Box::new(rhs)),
            loc,
        )
    }

    /// A primary expression followed by any `[index]`es.
    fn postfix(&mut self, depth: usize) -> Result<Expr> {
        let mut e = self.primary(depth)?;
        while self.tok.kind == Kind::LBracket {
            // An indexed operand is located where its name starts.
            let loc = e.loc;
            self.advance()?;
            let index = self.index_inside(depth + 1)?;
            self.expect(Kind::RBracket)?;
            e = self.mk(ExprKind::Index(Box::new(e), Box::new(index)), loc)?;
        }
        Ok(e)
    }

    /// What is between `[` and `]`: an index, a range or a set.
    fn index_inside(&mut self, depth: usize) -> Result<Index> {
        self.check_depth(depth)?;
        if self.tok.kind == Kind::LBrace {
            return Ok(Index::Set(self.set_literal(depth + 1)?));
        }
        let first = if self.tok.kind == Kind::Colon {
            None
        } else {
            Some(Box::new(self.binary(0, depth + 1)?))
        };
        if !self.eat(&Kind::Colon)? {
            if self.tok.kind == Kind::Comma {
                return Err(self.error(
                    self.loc(),
                    "multi-dimensional indexing (arrays) is not supported by this simulator",
                ));
            }
            return match first {
                Some(e) => Ok(Index::Single(*e)),
                None => Err(self.unexpected("an index")),
            };
        }
        let optional = |p: &mut Self| -> Result<Option<Box<Expr>>> {
            if matches!(p.tok.kind, Kind::Colon | Kind::RBracket) {
                Ok(None)
            } else {
                Ok(Some(Box::new(p.binary(0, depth + 1)?)))
            }
        };
        let second = optional(self)?;
        if self.eat(&Kind::Colon)? {
            let third = optional(self)?;
            return Ok(Index::Range(Range {
                start: first,
                step: second,
                end: third,
            }));
        }
        Ok(Index::Range(Range {
            start: first,
            step: None,
            end: second,
        }))
    }

    /// `{a, b, c}`.
    fn set_literal(&mut self, depth: usize) -> Result<Vec<Expr>> {
        self.check_depth(depth)?;
        self.expect(Kind::LBrace)?;
        self.comma_list(Kind::RBrace, |p| p.binary(0, depth + 1))
    }

    fn primary(&mut self, depth: usize) -> Result<Expr> {
        let loc = self.loc();
        let kind = match &self.tok.kind {
            Kind::Int(v, _) => {
                let v = *v;
                self.advance()?;
                ExprKind::Int(v)
            }
            Kind::Real(v) => {
                let v = *v;
                self.advance()?;
                ExprKind::Float(v)
            }
            Kind::Str(s) => {
                if !s.chars().all(|c| c == '0' || c == '1' || c == '_') || s.is_empty() {
                    return Err(
                        self.error(loc, "a string here must be a bit string such as \"0101\"")
                    );
                }
                let bits: String = s.chars().filter(|&c| c != '_').collect();
                self.advance()?;
                ExprKind::BitString(bits)
            }
            Kind::Physical(n) => {
                let Some(n) = *n else {
                    return Err(self.error(loc, "physical qubit number is too large"));
                };
                self.advance()?;
                ExprKind::Physical(n)
            }
            Kind::Duration(text) => {
                return Err(self.error(
                    loc,
                    format!("timing literals such as `{text}` are not supported by this simulator"),
                ));
            }
            Kind::Imaginary => {
                return Err(self.error(
                    loc,
                    "complex numbers (`im`) are not supported by this simulator",
                ));
            }
            Kind::LParen => {
                self.advance()?;
                let e = self.binary(0, depth + 1)?;
                self.expect(Kind::RParen)?;
                return Ok(e);
            }
            Kind::Ident(word) => {
                let word = word.clone();
                if let Some(message) = unsupported_keyword(&word) {
                    return Err(self.error(loc, message));
                }
                match word.as_str() {
                    "true" | "false" => {
                        self.advance()?;
                        ExprKind::Bool(word == "true")
                    }
                    "measure" => {
                        return Err(self.error(
                            loc,
                            "`measure` can only be the whole right-hand side of an assignment or `return`",
                        ));
                    }
                    "bit" | "int" | "uint" | "float" | "angle" | "bool" => {
                        let ty = self.classical_type()?;
                        self.expect(Kind::LParen)?;
                        let e = self.binary(0, depth + 1)?;
                        self.expect(Kind::RParen)?;
                        ExprKind::Cast(ty, Box::new(e))
                    }
                    _ => {
                        self.advance()?;
                        if self.tok.kind == Kind::LParen {
                            self.advance()?;
                            let args = self.comma_list(Kind::RParen, |p| p.binary(0, depth + 1))?;
                            ExprKind::Call(word, args)
                        } else {
                            ExprKind::Ident(word)
                        }
                    }
                }
            }
            _ => return Err(self.unexpected("an expression")),
        };
        self.mk(kind, loc)
    }

    /// An expression node, refused when the tree grows taller than the limit.
    fn mk(&self, kind: ExprKind, loc: Loc) -> Result<Expr> {
        let height = kind.child_height() + 1;
        if height > self.limits.max_expression_depth {
            return Err(self.error(
                loc,
                format!(
                    "expression is nested too deeply (more than {} levels)",
                    self.limits.max_expression_depth
                ),
            ));
        }
        Ok(Expr { kind, loc, height })
    }
}

/// `d`, naming `file` if it is an included one.
fn in_file(mut d: Diagnostic, includes: &Includes<'_>, file: u32) -> Diagnostic {
    if d.file.is_none() {
        d.file = file_name(&includes.files, file);
    }
    d
}
