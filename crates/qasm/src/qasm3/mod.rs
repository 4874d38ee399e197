//! The OpenQASM 3 front end: "the part a simulator can run", with the
//! meaning the OpenQASM 3 specification and Qiskit's `qasm3.loads` give it,
//! lowered to a validated [`Circuit`].
//!
//! # Why hand-written
//!
//! The only Rust OpenQASM 3 front end is Qiskit's `oq3_semantics`. Version
//! 0.7.0 (the last release; rustc 1.95) was tried in a scratch crate on the
//! snippets this front end must read, each after `OPENQASM 3.0; include
//! "stdgates.inc"; qubit[3] q; bit[3] c;`:
//!
//! | snippet | `oq3_semantics` 0.7.0 |
//! |---|---|
//! | `def f(float a) -> float { return a * 2 + 1; }` then `rx(f(0.3)) q[0];` | **panics**: "Expression not supported CallExpr" |
//! | `def g(qubit a) { h a; }` then `g(q[0]);` | **panics** (same) |
//! | `def h2(bit a) -> bit { return a && a; }` | **panics**: "Binary logic operators unsupported" |
//! | `ctrl @ x q[0], q[1];`, `ctrl(2) @ x …`, `negctrl @ x …` | false semantic error (the modifier's qubits are not counted) |
//! | `c = measure q; if (c == 3) x q[0];` | syntax error (a brace-less `if` body) |
//! | `int n = 2 ** 3;` | syntax error |
//! | `pow(2) @ t q[0];`, `input float theta; rx(theta) q[0];`, garbage | parsed |
//!
//! It also evaluates nothing (expressions, loops and calls come back as a
//! tree to interpret), reads non-built-in includes from disk, and earlier
//! fuzzing (`shared/research/rust-ecosystem.md` §1.2) found more panics and a
//! hang. Wrapping it would mean a panic-catching worker plus every piece of
//! the interpretation below anyway; this front end instead shares the lexer,
//! the float expression arithmetic and the gate catalogue with the
//! OpenQASM 2 one, and never panics, never hangs, and bounds its memory.
//!
//! # Pipeline
//!
//! [`parser`] reads the tokens of the shared lexer into the syntax tree of
//! [`ast`] (included files through the [`IncludeResolver`]); [`lower`] walks
//! it like an interpreter that knows every classical value except
//! measurement results, unrolling loops and inlining gates and subroutines
//! ([`values`] holds the classical arithmetic, [`gates`] the gate library and
//! the modifiers, [`conditions`] the tests of measured bits).
//!
//! # What is supported
//!
//! - `OPENQASM 3;` / `OPENQASM 3.0;` (optional); `include "stdgates.inc";`
//!   built in; `U` and `gphase` always defined; other includes through the
//!   resolver (depth- and cycle-checked, counted in the source size).
//! - `U(θ, φ, λ)` is the specification's since its 2022 revision (released
//!   in 3.0.0 and 3.1.0): `½[[1+e^{iθ}, -ie^{iλ}(1-e^{iθ})], [ie^{iφ}(1-e^{iθ}),
//!   e^{i(φ+λ)}(1+e^{iθ})]]`, 2π-periodic, which is `e^{iθ/2}` times
//!   Qiskit's `UGate` (the earlier definition). The difference is a global
//!   phase alone, except under `ctrl @`/`negctrl @` (or in a gate that is
//!   controlled), where it is a relative phase. The `stdgates.inc` gates
//!   keep their meaning either way (they are Qiskit's gates, `u2`/`u3`
//!   with the phase the library gives them, see [`gates`]). A line `pragma
//!   kettle U pre-2022` selects the earlier `U`, which Qiskit's importer
//!   still reads and its exporter still writes: `qiskit.qasm3.dumps(c,
//!   includes=[])` defines `cx` as `ctrl @ U(pi, 0, pi)`, which is CNOT
//!   only with the earlier `U` (with the default includes Qiskit's export
//!   never controls `U`, and means the same under both). Any other `pragma
//!   kettle …` line is refused.
//! - `qubit`, `qubit[n]`, `qreg`, physical qubits `$n`; `bit`, `bit[n]`,
//!   `creg`; indices (negative from the end), ranges `[a:b]`, `[a:s:b]`
//!   (inclusive), sets `[{0, 2}]`; `let` aliases with `++`; broadcasting.
//! - `measure` in all four spellings (a result not stored goes to a
//!   one-bit register named `discarded`), `reset`, `barrier` (empty: all).
//! - `gate` definitions; modifiers `ctrl`, `ctrl(n)`, `negctrl`,
//!   `negctrl(n)`, `inv`, `pow(k)` on any gate; `gphase`, which under
//!   controls becomes a phase gate on them.
//! - `const` and ordinary `int`/`uint`/`float`/`angle`/`bool`/`bit`
//!   variables, all operators, casts, built-in functions and constants
//!   (`π`, `τ`, `ℇ`); `input` parameters bound from
//!   [`ParseOptions::inputs`]; `output` accepted (the qualifier is ignored).
//! - `for` over ranges, sets and bits; `while` with known conditions;
//!   `break`/`continue`; `if`/`else` on known values (folded) and on
//!   measured bits (`c[0]`, `!c[0]`, `c == 3`, `c != 2`, `&&`, `||`),
//!   lowered to nested [`Operation::IfElse`](kettle_ir::Operation);
//!   `switch` on known values or measured bits (an `if`/`else if` chain).
//! - `def` subroutines with qubit and classical arguments and return values,
//!   inlined; recursion is refused. A subroutine may `return measure q;`:
//!   the result is measured into the bit it is assigned to, or, tested
//!   directly (`if (m(q)) …`), into the one-bit `discarded` register, which
//!   then holds it until the `if` reads it (two such results in one
//!   condition are refused).
//! - Measurement results in variables of any scope. Bit variables declared
//!   at the top level are the circuit's registers, and a measurement goes
//!   into their own bits. Any other bit variable (declared in a block, a
//!   loop body or a subroutine, or a subroutine's bit parameter) and every
//!   `angle[n]` keeps its measured bits in scratch bits: each measurement
//!   into one takes a new bit of the circuit's last register, `scratch`
//!   (the same bit again when the variable is measured again and nothing
//!   else holds its old value). Copying measured bits into such a variable,
//!   or passing them to a subroutine, shares those bits (nothing runs). A
//!   top-level register can take the bits a subroutine returns (`syn =
//!   f(q);`, as in the OpenQASM examples `qec.qasm` and `rus.qasm`): the
//!   subroutine's measurements are then made straight into the register's
//!   bits. The circuit writes bits only by measuring, so other copies into
//!   a register (`r = b;` from a variable measured earlier, `r2 = r;`), a
//!   measurement into a register bit whose old value a copy still holds, and
//!   storing `&&`/`||` of measured bits are refused.
//! - `angle[n]` variables have `n` bits (values rounded to a multiple of
//!   `2π/2ⁿ`, ties to even, as the specification says); `a[i]` reads bit
//!   `i` (bit `n-1` is π), measurements can be stored into bits, `<<=` and
//!   `>>=` move bits (measured ones too). An angle holding measured bits can
//!   be the angle of `p`, `phase`, `u1`, `rx`, `ry`, `rz`, `cp`, `cphase`,
//!   `crx`, `cry`, `crz` or `gphase` (under `ctrl`, `negctrl`, `inv` and
//!   integer `pow`): these satisfy `g(a + b) = g(a)·g(b)` exactly, so the
//!   gate is applied for the known bits and once more for each measured
//!   bit, in an `if` on it (the OpenQASM example `ipe.qasm`); any other use
//!   of its value is refused.
//! - Amazon Braket's noise pragmas, as its SDK writes them (issue 18):
//!   `#pragma braket noise bit_flip(0.1) q[0]`, `phase_flip`,
//!   `pauli_channel(px, py, pz)`, `depolarizing`, `two_qubit_depolarizing`,
//!   `two_qubit_dephasing`, `amplitude_damping`,
//!   `generalized_amplitude_damping(gamma, p)`, `phase_damping`, and
//!   `kraus([[…], […]], …)` with complex entries (`0.5im`, `1 + 2im`) in
//!   Braket's qubit order (the first target the most significant bit),
//!   converted to Kettle's. Each is an [`kettle_ir::Operation::Channel`]
//!   where it stands; parameters are expressions (constants, inputs),
//!   targets are gate operands (`q[0]`, `$0`, a register). See
//!   `parser/pragma.rs`.
//! - Other pragmas (but `pragma kettle …`), annotations and comments are
//!   ignored.
//!
//! - Timing, as an ideal simulator has none: `delay[…]` is the identity (as
//!   in Aer), `box` runs its body, a gate's duration (`h[100ns] q;`) is
//!   ignored, and `duration`/`stretch` declarations are read past (their
//!   names may appear only in designators).
//!
//! Timing values elsewhere (`100ns` in an expression, `durationof`),
//! pulse-level constructs (`defcal`, `cal`, `defcalgrammar`, `port`,
//! `frame`, `waveform`), `extern`, `opaque`, arrays, `complex`, `end`, and
//! `while` on measured bits are refused by name, at their position. A
//! `while` on measured bits (the repeat-until-success loop of `rus.qasm`)
//! needs a loop in the circuit, which [`Circuit`] does not have (its only
//! control flow is [`Operation::IfElse`](kettle_ir::Operation)); unrolling
//! it a fixed number of times would be exact only for loops that certainly
//! end within that many turns, which a loop on measurements in general does
//! not (`rus.qasm` repeats each turn with probability 3/8, forever with
//! probability 0 but after any bound with probability above 0).

mod ast;
mod conditions;
mod gates;
mod lower;
pub(crate) mod noise;
mod parser;
mod values;

#[cfg(test)]
mod tests;

use kettle_ir::Circuit;

use crate::{Diagnostic, IncludeResolver, InputParameter, Limits, ParseOptions};

use ast::StmtKind;
use parser::{Includes, Parser};

fn includes<'r>(
    resolver: Option<&'r dyn IncludeResolver>,
    read: bool,
    source: &str,
) -> Includes<'r> {
    Includes {
        resolver,
        read,
        files: vec![String::new()],
        stack: Vec::new(),
        bytes: source.len(),
        pragmas: Vec::new(),
    }
}

/// Reads the `pragma kettle …` lines (other pragmas are ignored): whether
/// `pragma kettle U pre-2022` selects the earlier definition of `U`.
fn u_pre_2022(inc: &Includes<'_>) -> Result<bool, Diagnostic> {
    let mut pre_2022 = false;
    for (loc, text) in &inc.pragmas {
        let mut words = text.split_whitespace();
        if words.next() != Some("kettle") {
            continue;
        }
        match words.collect::<Vec<_>>()[..] {
            ["U", "pre-2022"] => pre_2022 = true,
            _ => {
                return Err(inc.error(
                    *loc,
                    format!(
                        "unknown Kettle pragma `{text}`: the only one is `pragma kettle U pre-2022`"
                    ),
                ));
            }
        }
    }
    Ok(pre_2022)
}

/// Parses and lowers an OpenQASM 3 program.
pub(crate) fn parse(source: &str, options: &ParseOptions) -> Result<Circuit, Diagnostic> {
    read(source, options)?.lower(options)
}

/// A program parsed (its includes read), to be lowered with any input
/// values: what lowering the same program many times needs (a gradient's
/// Jacobian of angles) without reading it again each time.
pub(crate) struct Parsed {
    program: Vec<ast::Stmt>,
    end: ast::Loc,
    files: Vec<String>,
    pre_2022: bool,
}

/// Parses an OpenQASM 3 program without lowering it.
pub(crate) fn read(source: &str, options: &ParseOptions) -> Result<Parsed, Diagnostic> {
    let mut inc = includes(options.includes, true, source);
    let (program, end) = Parser::new(source, 0, &options.limits, &mut inc)?.program()?;
    let pre_2022 = u_pre_2022(&inc)?;
    Ok(Parsed {
        program,
        end,
        files: inc.files,
        pre_2022,
    })
}

impl Parsed {
    /// Lowers the program with `options`' inputs, limits and interruptions
    /// (its includes were read by [`read`]).
    pub(crate) fn lower(&self, options: &ParseOptions) -> Result<Circuit, Diagnostic> {
        let mut lowerer = lower::Lowerer::new(options, self.files.clone());
        if self.pre_2022 {
            lowerer.use_u_pre_2022();
        }
        lowerer.run(&self.program, self.end)
    }
}

/// The `input` declarations of a program, without reading its includes.
pub(crate) fn inputs(source: &str, limits: &Limits) -> Result<Vec<InputParameter>, Diagnostic> {
    let mut inc = includes(None, false, source);
    let (program, _) = Parser::new(source, 0, limits, &mut inc)?.program()?;
    Ok(program
        .iter()
        .filter_map(|stmt| match &stmt.kind {
            StmtKind::ClassicalDecl {
                ty,
                name,
                input: true,
                ..
            } => Some(InputParameter {
                name: name.clone(),
                kind: ty.keyword().to_string(),
            }),
            _ => None,
        })
        .collect())
}
