//! Pragma lines: Braket's noise pragmas become statements where they
//! stand; every other pragma goes to [`Includes::pragmas`](super::Includes)
//! (`pragma kettle …` is read there; the rest are ignored).
//!
//! A noise pragma is written as Braket's SDK writes it,
//! `#pragma braket noise name(args) targets`, with no `;`:
//! `bit_flip(p)`, `phase_flip(p)`, `pauli_channel(px, py, pz)`,
//! `depolarizing(p)`, `two_qubit_depolarizing(p)`, `two_qubit_dephasing(p)`,
//! `amplitude_damping(gamma)`, `generalized_amplitude_damping(gamma, p)`,
//! `phase_damping(gamma)`, and `kraus([[a, b], [c, d]], …)` whose entries
//! are Braket's complex literals (`0.5`, `-0.3im`, `1 + 2im`). Parameters
//! are expressions (Braket writes plain numbers), lowered like a gate's
//! angles; targets are gate operands (`q[0]`, `$0`, a whole register).
//!
//! The lexer skips pragma lines as trivia while it reads ahead, so when the
//! parser stands before a statement (or a block's `}`, or the end), the
//! pragmas it has collected are exactly those written before that token.

use kettle_ir::{Complex64, MAX_CHANNEL_QUBITS};

use super::{Kind, Parser, Pos, Result, Stmt, StmtKind, Token};
use crate::qasm3::ast::{Loc, Noise, NoiseArgs};
use crate::qasm3::noise::{channel_names, named_channel};

/// Whether a pragma's text (after `pragma`) is a Braket noise pragma.
fn is_braket_noise(text: &str) -> bool {
    let mut words = text.split_whitespace();
    words.next() == Some("braket") && words.next() == Some("noise")
}

impl<'s> Parser<'s, '_, '_> {
    /// Appends the noise pragmas read since the last call to `stmts`, and
    /// passes the other pragmas on.
    pub(super) fn pragmas(&mut self, stmts: &mut Vec<Stmt>) -> Result<()> {
        for (pos, text) in std::mem::take(&mut self.lexer.pragmas) {
            let loc = self.loc_of(pos);
            if is_braket_noise(&text) {
                stmts.push(self.noise_pragma(pos, loc)?);
            } else {
                self.includes.pragmas.push((loc, text));
            }
        }
        Ok(())
    }

    /// The text of line `line` of `src`, searched from the line found last
    /// (pragmas come in order, so a file's search is linear overall).
    fn source_line(&mut self, line: u32) -> &'s str {
        let (mut at, mut offset) = self.line_cursor;
        if line < at {
            (at, offset) = (1, 0);
        }
        while at < line {
            match self.src.get(offset..).and_then(|rest| rest.find('\n')) {
                Some(i) => offset += i + 1,
                None => break,
            }
            at += 1;
        }
        self.line_cursor = (at, offset);
        let rest = self.src.get(offset..).unwrap_or("");
        rest.split('\n').next().unwrap_or("")
    }

    /// The noise pragma whose `#pragma` / `pragma` is at `pos` (`loc` in
    /// the file), parsed from its line so that its positions are exact.
    fn noise_pragma(&mut self, pos: Pos, loc: Loc) -> Result<Stmt> {
        let line = self.source_line(pos.line);
        let start: usize = line
            .char_indices()
            .nth(pos.column.saturating_sub(1) as usize)
            .map_or(line.len(), |(i, _)| i);
        let from_pragma = &line[start..];
        let after = from_pragma
            .strip_prefix("#pragma")
            .or_else(|| from_pragma.strip_prefix("pragma"))
            .unwrap_or(from_pragma);
        let skipped = from_pragma.len() - after.trim_start().len();
        let text = after.trim_start().to_owned();
        let column = pos.column + from_pragma[..skipped].chars().count() as u32;
        let origin = self.file_pos(Pos {
            line: pos.line,
            column,
        });
        let mut sub = Parser::with_origin(&text, origin, self.file, self.limits, self.includes)?;
        let noise = sub.noise()?;
        Ok(Stmt {
            kind: StmtKind::Noise(noise),
            loc,
        })
    }

    /// `braket noise name(args) targets` (the whole of this parser's text).
    fn noise(&mut self) -> Result<Noise> {
        self.advance()?; // `braket`
        self.advance()?; // `noise`
        let (name, name_loc) = self.ident("a noise channel's name")?;
        let open = self.expect(Kind::LParen)?;
        let args = if name == "kraus" {
            NoiseArgs::Kraus(self.kraus_matrices(open)?)
        } else {
            NoiseArgs::Params(self.noise_params(&name, name_loc)?)
        };
        let targets = self.expression_list()?;
        // Braket writes no `;`; one is harmless.
        self.eat(&Kind::Semicolon)?;
        if self.tok.kind != Kind::Eof {
            return Err(self.unexpected("the end of the noise pragma"));
        }
        Ok(Noise {
            name,
            name_loc,
            args,
            targets,
        })
    }

    /// A named channel's parameters, after its `(`: as many as it takes.
    fn noise_params(&mut self, name: &str, name_loc: Loc) -> Result<Vec<super::Expr>> {
        let Some(channel) = named_channel(name).filter(|c| c.braket) else {
            return Err(self.error(
                name_loc,
                format!(
                    "unknown noise channel `{name}`: Braket's are {}, `kraus`",
                    channel_names(|c| c.braket)
                ),
            ));
        };
        let params = self.comma_list(Kind::RParen, Self::expression)?;
        let want = channel.params.len();
        if params.len() != want {
            let at = params.get(want).map_or(name_loc, |e| e.loc);
            return Err(self.error(
                at,
                format!(
                    "`{name}` takes {want} parameter{} ({}), got {}",
                    if want == 1 { "" } else { "s" },
                    channel.params.join(", "),
                    params.len()
                ),
            ));
        }
        Ok(params)
    }

    /// `kraus`'s matrices after its `(` at `open`: at least one, all of the
    /// same size, on one or two qubits.
    fn kraus_matrices(&mut self, open: Loc) -> Result<Vec<(Vec<Complex64>, Loc)>> {
        let matrices = self.comma_list(Kind::RParen, Self::kraus_matrix)?;
        let Some((first, _)) = matrices.first() else {
            return Err(self.error(open, "`kraus` needs at least one matrix"));
        };
        let size = first.len();
        if let Some((m, at)) = matrices.iter().find(|(m, _)| m.len() != size) {
            return Err(self.error(
                *at,
                format!(
                    "the Kraus matrices differ in size: {} rows here, {} in the first",
                    m.len().isqrt(),
                    size.isqrt()
                ),
            ));
        }
        Ok(matrices)
    }

    /// One square matrix, `[[a, b], [c, d]]`, row-major.
    fn kraus_matrix(&mut self) -> Result<(Vec<Complex64>, Loc)> {
        let loc = self.expect(Kind::LBracket)?;
        let rows = self.comma_list(Kind::RBracket, |p| {
            let at = p.expect(Kind::LBracket)?;
            Ok((p.comma_list(Kind::RBracket, Self::complex)?, at))
        })?;
        let dim = rows.len();
        let max = 1usize << MAX_CHANNEL_QUBITS;
        if !dim.is_power_of_two() || dim < 2 || dim > max {
            return Err(self.error(
                loc,
                format!(
                    "a Kraus matrix needs 2 or {max} rows (1 or {MAX_CHANNEL_QUBITS} qubits), got {dim}"
                ),
            ));
        }
        let mut data = Vec::with_capacity(dim * dim);
        for (row, at) in rows {
            if row.len() != dim {
                return Err(self.error(
                    at,
                    format!(
                        "a {dim}×{dim} matrix needs {dim} entries per row, got {}",
                        row.len()
                    ),
                ));
            }
            data.extend(row);
        }
        Ok((data, loc))
    }

    /// A complex number as Braket writes one: real and imaginary literals
    /// joined by `+` and `-` (`0.5`, `-0.3im`, `1 + 2im`, `0 - -0.7im`).
    fn complex(&mut self) -> Result<Complex64> {
        let mut z = self.signed_term()?;
        loop {
            match self.tok.kind {
                Kind::Plus => {
                    self.advance()?;
                    z += self.signed_term()?;
                }
                Kind::Minus => {
                    self.advance()?;
                    z -= self.signed_term()?;
                }
                _ => return Ok(z),
            }
        }
    }

    /// A real or imaginary literal after any signs.
    fn signed_term(&mut self) -> Result<Complex64> {
        let mut sign = 1.0;
        while matches!(self.tok.kind, Kind::Plus | Kind::Minus) {
            if self.tok.kind == Kind::Minus {
                sign = -sign;
            }
            self.advance()?;
        }
        let z = match self.tok.kind {
            Kind::Int(_, x) | Kind::Real(x) => {
                self.advance()?;
                // `1.5 im`: the specification allows blanks before `im`.
                if self.is_word("im") {
                    self.advance()?;
                    Complex64::new(0.0, x)
                } else {
                    Complex64::new(x, 0.0)
                }
            }
            Kind::Imaginary => {
                let t = self.advance()?;
                Complex64::new(0.0, self.imaginary(&t)?)
            }
            _ => return Err(self.unexpected("a number (a Kraus matrix entry)")),
        };
        Ok(z * sign)
    }

    /// The value of an imaginary literal such as `0.5im` (the lexer keeps
    /// no value for one, so it is read back from the text).
    fn imaginary(&self, t: &Token) -> Result<f64> {
        let literal: String = self
            .source_text_line(t.pos.line)
            .chars()
            .skip(t.pos.column.saturating_sub(1) as usize)
            .take(t.end.column.saturating_sub(t.pos.column) as usize)
            .filter(|&c| c != '_')
            .collect();
        literal
            .strip_suffix("im")
            .and_then(|x| x.parse::<f64>().ok())
            .ok_or_else(|| {
                self.error(
                    self.loc_of(t.pos),
                    format!("malformed imaginary number `{literal}`"),
                )
            })
    }

    /// Line `line` of `src`, without moving the cursor (a pragma's text is
    /// one line, so this is quick where it is used).
    fn source_text_line(&self, line: u32) -> &'s str {
        self.src
            .split('\n')
            .nth(line.saturating_sub(1) as usize)
            .unwrap_or("")
    }
}
