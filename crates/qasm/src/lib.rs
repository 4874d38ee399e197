//! Kettle's circuit front ends: OpenQASM 2.0 and OpenQASM 3 (both
//! hand-written) and Kettle's JSON format, lowered to [`kettle_ir::Circuit`].
//!
//! # Brief overview
//!
//! One entry point takes any format: [`parse_program`] checks the size and
//! the UTF-8 of the bytes (reporting the first bad byte's position) and hands
//! the text to the front end of the [`SourceFormat`] given — which
//! [`detect_format`] can guess from the content and the file name. Every
//! front end takes [`ParseOptions`]: the [`Limits`], an optional
//! [`IncludeResolver`] (the front ends never read files themselves: the CLI
//! resolves includes next to the source, the HTTP service allows none), and
//! the values of OpenQASM 3 `input` parameters ([`qasm3_inputs`] lists
//! them). Errors are a [`Diagnostic`] (line, column, file if inside an
//! include, one-line message) or, for JSON, a [`JsonError`] with the JSON
//! path; [`ProgramError`] is either.
//!
//! # OpenQASM 2
//!
//! [`parse_qasm2`] reads an OpenQASM 2.0 program with the meaning Qiskit's
//! `qasm2.load` gives it and returns a validated [`Circuit`];
//! [`parse_qasm2_with`] also reads includes through the resolver and
//! [`parse_qasm2_bytes`] takes bytes.
//!
//! The pipeline follows Qiskit's `crates/qasm2`: a lazy lexer, a
//! recursive-descent parser, and parameter expressions constant-folded to
//! `f64` as they are parsed. There is no separate AST: statements are lowered
//! as they are read.
//!
//! - `include "qelib1.inc";` is built in (never read, never passed to the
//!   resolver); other includes go through the resolver, with a depth limit
//!   and cycle detection, their bytes counted in the source size. Its gates
//!   map to [`StandardGate`]s (`u1`→`p`, `cu1`→`cp`, `u3`→`u`,
//!   `u0`→identity); `c3x`, `c4x` and `c3sqrtx` become `x`/`sx` with extra
//!   [`Control`](kettle_ir::Control)s; `rccx` and `rc3x` are inlined from
//!   their `qelib1.inc` bodies. `U` and `CX` are always defined.
//! - `gate` definitions are inlined at every call (a gate can only call gates
//!   defined before it, so recursion is impossible); using an `opaque` gate
//!   is an error.
//! - Whole registers broadcast (`h q;`, `cx a, b;`, `measure q -> c;`).
//!   Qubits of several `qreg`s are numbered in declaration order, and so are
//!   classical bits; each `creg` becomes a named classical register.
//! - `if (c == n) op;` becomes an [`Operation::IfElse`](kettle_ir::Operation)
//!   per broadcast instance.
//!
//! ```
//! use kettle_qasm::{Limits, parse_qasm2};
//! let src = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\n\
//!            h q[0];\ncx q[0], q[1];\nmeasure q -> c;\n";
//! let circuit = parse_qasm2(src, &Limits::default()).unwrap();
//! assert_eq!((circuit.num_qubits(), circuit.ops().len()), (2, 4));
//!
//! let err = parse_qasm2("OPENQASM 2.0;\nqreg q[1];\nfoo q;", &Limits::default()).unwrap_err();
//! assert_eq!(err.to_string(), "3:1: undefined gate `foo`");
//! ```
//!
//! # OpenQASM 3
//!
//! [`parse_qasm3`] reads "the part of OpenQASM 3 a simulator can run", with
//! the meaning of the specification and of Qiskit's `qasm3.loads`. It is
//! hand-written too: the only Rust OpenQASM 3 crate, `oq3_semantics` 0.7,
//! panicked on subroutine calls and `&&`, misread `ctrl @` arity and
//! brace-less `if`s, and evaluates nothing (the `qasm3` module's source
//! documents the trial). The front end shares the lexer, the float
//! arithmetic and the gate catalogue with the OpenQASM 2 one; it parses to a
//! syntax tree, then lowers it like an interpreter that knows every value
//! but measurement results:
//!
//! - `stdgates.inc` built in (every gate exactly its [`StandardGate`],
//!   global phase included; `u2`/`u3` keep the library's extra phase), `U`
//!   and `gphase` always; `gate` definitions; modifiers `ctrl(n) @`,
//!   `negctrl(n) @`, `inv @`, `pow(k) @` on any gate (a `gphase` under
//!   controls becomes a phase gate on them; non-integer powers of rotations
//!   scale the angle, others take the principal matrix power);
//! - qubit and bit registers (`qubit[n]`, `bit[n]`, `qreg`, `creg`,
//!   physical `$n`), indices, ranges, sets, `let` aliases, broadcasting;
//!   `measure` in every spelling, `reset`, `barrier`;
//! - classical variables and constants of every scalar type with all
//!   operators, casts and built-in functions; `input` parameters; `for` and
//!   known `while` loops (unrolled); `def` subroutines (inlined); `if` on
//!   known values (folded) and on measured bits (`c[0]`, `c == 3`, `!`,
//!   `&&`, `||`: nested `IfElse`), `switch`;
//! - timing, pulse-level, `extern`, arrays, `opaque` and `while`
//!   on measured bits are refused by name with their position.
//!
//! ```
//! use kettle_qasm::{ParseOptions, parse_qasm3};
//! let src = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput float theta;\n\
//!            qubit[2] q;\nbit[2] c;\nfor int i in [0:1] { rx(theta * i) q[i]; }\n\
//!            ctrl @ gphase(theta) q[0];\nc = measure q;\nif (c == 3) x q[0];\n";
//! let options = ParseOptions { inputs: [("theta".into(), 0.5)].into(), ..Default::default() };
//! let circuit = parse_qasm3(src, &options).unwrap();
//! assert_eq!(circuit.ops().len(), 6);
//! ```
//!
//! # Limits
//!
//! [`Limits`] bound the source size (included files counted), the qubits,
//! the operations after inlining, unrolling and broadcasting (checked as
//! they are produced), loop iterations, inlined calls, expression, block,
//! call and include nesting, and the classical work of an OpenQASM 3
//! program (statements and expressions evaluated), so hostile input fails
//! fast with a message; no input makes a front end panic or recurse without
//! bound. [`ParseOptions::deadline`] and [`ParseOptions::stop`] end a parse
//! from outside (a server's admission deadline, a client that hung up).
//!
//! # JSON
//!
//! [`parse_json`] reads Kettle's own JSON circuit format (`kettle.circuit`,
//! version 1: qubits, classical registers and an `ops` list of gates,
//! unitaries, measurements, resets, barriers and `if` blocks; documented in
//! the `json` module source and in `circuit.schema.json`, a JSON Schema
//! draft 2020-12) under the same [`Limits`], reporting a [`JsonError`] with
//! the JSON path of the offending value; [`to_json`] writes it.

mod expr;
mod jacobian;
mod json;
mod lexer;
mod options;
mod parser;
mod qasm3;

#[cfg(test)]
mod tests;

use std::fmt;

pub use jacobian::{InputColumn, JacobianError, angle_jacobian, chain_rule, moved_angles};
pub use json::{JsonError, parse_json, to_json};
pub use options::{
    IncludeResolver, InputParameter, ParseOptions, ProgramError, SourceFormat, detect_format,
};
pub use qasm3::noise::noise_channel_names;

use kettle_ir::Circuit;
#[cfg(doc)]
use kettle_ir::StandardGate;

/// An error in a program: what is wrong and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// One-line description.
    pub message: String,
    /// 1-based line of the offending token.
    pub line: u32,
    /// 1-based column of the offending token, counted in characters.
    pub column: u32,
    /// The included file the position is in, as the program named it in its
    /// `include` statement; `None` for the main source.
    pub file: Option<String>,
    /// The bound the program ran into, when that is the error: a [`Limits`]
    /// field's name (so far only `max_classical_steps`), `deadline` when
    /// [`ParseOptions::deadline`] passed, or `stopped` when
    /// [`ParseOptions::stop`] was raised; `None` for every other error.
    pub limit: Option<&'static str>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{file}:{}:{}: {}", self.line, self.column, self.message),
            None => write!(f, "{}:{}: {}", self.line, self.column, self.message),
        }
    }
}

impl std::error::Error for Diagnostic {}

/// Bounds on what a program may ask for, checked while parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted source, in bytes (default 8 MiB); included files
    /// count towards it.
    pub max_source_bytes: usize,
    /// Most qubits over all registers (default 40), checked at each declaration.
    pub max_qubits: u32,
    /// Most operations after inlining gate definitions and subroutines,
    /// unrolling loops and broadcasting (default 1,000,000); a conditioned
    /// operation counts its `if` too.
    pub max_operations: usize,
    /// Deepest nesting of an expression (default 64).
    pub max_expression_depth: usize,
    /// Deepest nesting of blocks (`{ … }` of loops, `if`s, definitions) in an
    /// OpenQASM 3 program (default 64).
    pub max_block_depth: usize,
    /// Most loop iterations an OpenQASM 3 program may run while it is
    /// unrolled, over all loops together (default 1,000,000).
    pub max_loop_iterations: u64,
    /// Deepest chain of gate and subroutine calls being inlined (default 64).
    pub max_call_depth: usize,
    /// Most calls of defined gates and subroutines inlined over the whole
    /// program (default 1,000,000): calls that produce few or no operations
    /// (an empty gate, a classical subroutine) still cost time, and a chain
    /// of definitions each calling the previous twice makes 2^n of them.
    pub max_calls: u64,
    /// Deepest chain of `include`s (default 8).
    pub max_include_depth: usize,
    /// Most classical work an OpenQASM 3 program may do while it is lowered
    /// (default 25,000,000 steps): every statement executed and every
    /// expression evaluated costs a step, loop bodies and inlined calls at
    /// each pass. Loop iterations and calls are bounded separately, but a
    /// loop body of a thousand assignments makes each iteration cost a
    /// thousand; at the default, the slowest program parses in a few seconds.
    pub max_classical_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_source_bytes: 8 << 20,
            max_qubits: 40,
            max_operations: 1_000_000,
            max_expression_depth: 64,
            max_block_depth: 64,
            max_loop_iterations: 1_000_000,
            max_call_depth: 64,
            max_calls: 1_000_000,
            max_include_depth: 8,
            max_classical_steps: 25_000_000,
        }
    }
}

/// Refuses a source longer than the limit, before anything reads it.
fn check_size(len: usize, limits: &Limits) -> Result<(), Diagnostic> {
    if len > limits.max_source_bytes {
        return Err(Diagnostic {
            message: format!(
                "the program is {len} bytes long, more than the limit of {} bytes",
                limits.max_source_bytes
            ),
            line: 1,
            column: 1,
            file: None,
            limit: None,
        });
    }
    Ok(())
}

/// Parses an OpenQASM 2.0 program into a validated circuit. Only the
/// built-in `qelib1.inc` may be included; see [`parse_qasm2_with`].
///
/// # Errors
/// The first problem found, with its position.
pub fn parse_qasm2(source: &str, limits: &Limits) -> Result<Circuit, Diagnostic> {
    parse_qasm2_with(
        source,
        &ParseOptions {
            limits: limits.clone(),
            ..ParseOptions::default()
        },
    )
}

/// Parses an OpenQASM 2.0 program, reading `include`d files other than the
/// built-in `qelib1.inc` through [`ParseOptions::includes`].
///
/// # Errors
/// The first problem found, with its position (and file, inside an include);
/// any [`ParseOptions::inputs`] (OpenQASM 2 has no input parameters).
pub fn parse_qasm2_with(source: &str, options: &ParseOptions) -> Result<Circuit, Diagnostic> {
    check_size(source.len(), &options.limits)?;
    if let Some(name) = options.inputs.keys().next() {
        return Err(Diagnostic {
            message: format!(
                "a value was given for input `{name}`, but OpenQASM 2 programs have no inputs"
            ),
            line: 1,
            column: 1,
            file: None,
            limit: None,
        });
    }
    parser::Parser::new(source, &options.limits, options.includes)?.parse_program()
}

/// Like [`parse_qasm2`], for bytes that should be UTF-8.
///
/// # Errors
/// A source over the size limit, the position of the first byte that is not
/// UTF-8, or any error [`parse_qasm2`] reports.
pub fn parse_qasm2_bytes(source: &[u8], limits: &Limits) -> Result<Circuit, Diagnostic> {
    check_size(source.len(), limits)?;
    parse_qasm2(utf8(source)?, limits)
}

/// Parses an OpenQASM 3 program into a validated circuit, binding its
/// `input` parameters from [`ParseOptions::inputs`].
///
/// # Errors
/// The first problem found, with its position (and file, inside an include).
pub fn parse_qasm3(source: &str, options: &ParseOptions) -> Result<Circuit, Diagnostic> {
    check_size(source.len(), &options.limits)?;
    qasm3::parse(source, options)
}

/// An OpenQASM 3 program parsed once (its includes read), to be lowered
/// as often as needed with other input values, as a gradient's
/// [`angle_jacobian`] does.
pub struct Qasm3Program(qasm3::Parsed);

impl fmt::Debug for Qasm3Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Qasm3Program").finish_non_exhaustive()
    }
}

impl Qasm3Program {
    /// Parses `source` without lowering it.
    ///
    /// # Errors
    /// A syntax error or an include that cannot be had, with its position.
    pub fn parse(source: &str, options: &ParseOptions) -> Result<Qasm3Program, Diagnostic> {
        check_size(source.len(), &options.limits)?;
        qasm3::read(source, options).map(Qasm3Program)
    }

    /// The program lowered with `options`' inputs: what [`parse_qasm3`]
    /// gives for the same source and options.
    ///
    /// # Errors
    /// As [`parse_qasm3`], past the parse.
    pub fn lower(&self, options: &ParseOptions) -> Result<Circuit, Diagnostic> {
        self.0.lower(options)
    }
}

/// The `input` declarations of an OpenQASM 3 program (name and type), in
/// order, without binding them. Included files are not read: an input
/// declared in an include is not listed.
///
/// # Errors
/// A syntax error, with its position.
pub fn qasm3_inputs(source: &str, limits: &Limits) -> Result<Vec<InputParameter>, Diagnostic> {
    check_size(source.len(), limits)?;
    qasm3::inputs(source, limits)
}

/// Parses a program in any format from bytes: checks the size and UTF-8 (the
/// error gives the position of the first bad byte), then hands the text to
/// [`parse_qasm2_with`], [`parse_qasm3`] or [`parse_json`].
///
/// # Errors
/// A [`ProgramError`] from the front end of `format`.
pub fn parse_program(
    source: &[u8],
    format: SourceFormat,
    options: &ParseOptions,
) -> Result<Circuit, ProgramError> {
    check_size(source.len(), &options.limits)?;
    let text = utf8(source)?;
    match format {
        SourceFormat::Qasm2 => Ok(parse_qasm2_with(text, options)?),
        SourceFormat::Qasm3 => Ok(parse_qasm3(text, options)?),
        SourceFormat::Json => {
            if let Some(name) = options.inputs.keys().next() {
                return Err(ProgramError::Json(JsonError {
                    message: format!(
                        "a value was given for input `{name}`, but JSON circuits have no inputs"
                    ),
                    path: "$".into(),
                }));
            }
            Ok(parse_json(text, &options.limits)?)
        }
    }
}

/// The text of `source`, or the position of its first byte that is not UTF-8.
fn utf8(source: &[u8]) -> Result<&str, Diagnostic> {
    match std::str::from_utf8(source) {
        Ok(text) => Ok(text),
        Err(e) => {
            let valid = e.valid_up_to();
            // The prefix is valid UTF-8 by definition of `valid_up_to`.
            let prefix = source
                .get(..valid)
                .and_then(|p| std::str::from_utf8(p).ok())
                .unwrap_or("");
            let mut line: u32 = 1;
            let mut column: u32 = 1;
            for c in prefix.chars() {
                if c == '\n' {
                    line = line.saturating_add(1);
                    column = 1;
                } else {
                    column = column.saturating_add(1);
                }
            }
            Err(Diagnostic {
                message: format!(
                    "the program is not valid UTF-8 text (byte 0x{:02x})",
                    source.get(valid).copied().unwrap_or(0)
                ),
                line,
                column,
                file: None,
                limit: None,
            })
        }
    }
}
