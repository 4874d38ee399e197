//! The lexer shared by both OpenQASM front ends: turns source text into
//! tokens with 1-based line and column positions (columns counted in
//! characters), one token at a time.
//!
//! [`Dialect::Qasm2`] knows only the OpenQASM 2.0 tokens (ASCII names, `^`
//! as power). [`Dialect::Qasm3`] adds the OpenQASM 3 operators, Unicode
//! names (`π`, `θ`), `_` in numbers, hexadecimal/octal/binary integers,
//! single-quoted strings, physical qubits (`$0`), timing literals (`100ns`,
//! lexed so that the parser can reject them by name) and skips `#pragma` /
//! `pragma` lines and `@annotation` lines as it skips comments.

use crate::Diagnostic;

/// A position in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) line: u32,
    pub(crate) column: u32,
}

impl Pos {
    /// A diagnostic at this position.
    pub(crate) fn error(self, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            line: self.line,
            column: self.column,
            file: None,
            limit: None,
        }
    }
}

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    /// A name or keyword (`qreg`, `h`, `pi`, `U`).
    Ident(String),
    /// An integer literal: its value if it fits in `u64`, and as a float.
    Int(Option<u64>, f64),
    /// A real literal.
    Real(f64),
    /// A string literal (without the quotes).
    Str(String),
    /// A timing literal such as `100ns` (OpenQASM 3 only; always rejected).
    Duration(String),
    /// An imaginary literal such as `1.5im` (OpenQASM 3 only; always rejected).
    Imaginary,
    /// A physical qubit `$n` (OpenQASM 3 only): `n` if it fits in `u64`.
    Physical(Option<u64>),
    Semicolon,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Arrow,
    EqEq,
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    /// OpenQASM 3 only from here on.
    Assign,
    /// `+=`, `-=`, … : the operator's spelling without the `=`.
    CompoundAssign(&'static str),
    NotEq,
    Less,
    LessEq,
    Greater,
    GreaterEq,
    Bang,
    Tilde,
    AndAnd,
    OrOr,
    Amp,
    Pipe,
    Percent,
    StarStar,
    ShiftLeft,
    ShiftRight,
    At,
    Colon,
    PlusPlus,
    Eof,
}

impl Kind {
    /// How the token is named in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Kind::Ident(name) => format!("`{name}`"),
            Kind::Int(..) => "an integer".into(),
            Kind::Real(_) => "a real number".into(),
            Kind::Str(_) => "a string".into(),
            Kind::Duration(text) => format!("the timing literal `{text}`"),
            Kind::Imaginary => "an imaginary number".into(),
            Kind::Physical(_) => "a physical qubit".into(),
            Kind::Semicolon => "`;`".into(),
            Kind::Comma => "`,`".into(),
            Kind::LParen => "`(`".into(),
            Kind::RParen => "`)`".into(),
            Kind::LBracket => "`[`".into(),
            Kind::RBracket => "`]`".into(),
            Kind::LBrace => "`{`".into(),
            Kind::RBrace => "`}`".into(),
            Kind::Arrow => "`->`".into(),
            Kind::EqEq => "`==`".into(),
            Kind::Plus => "`+`".into(),
            Kind::Minus => "`-`".into(),
            Kind::Star => "`*`".into(),
            Kind::Slash => "`/`".into(),
            Kind::Caret => "`^`".into(),
            Kind::Assign => "`=`".into(),
            Kind::CompoundAssign(op) => format!("`{op}=`"),
            Kind::NotEq => "`!=`".into(),
            Kind::Less => "`<`".into(),
            Kind::LessEq => "`<=`".into(),
            Kind::Greater => "`>`".into(),
            Kind::GreaterEq => "`>=`".into(),
            Kind::Bang => "`!`".into(),
            Kind::Tilde => "`~`".into(),
            Kind::AndAnd => "`&&`".into(),
            Kind::OrOr => "`||`".into(),
            Kind::Amp => "`&`".into(),
            Kind::Pipe => "`|`".into(),
            Kind::Percent => "`%`".into(),
            Kind::StarStar => "`**`".into(),
            Kind::ShiftLeft => "`<<`".into(),
            Kind::ShiftRight => "`>>`".into(),
            Kind::At => "`@`".into(),
            Kind::Colon => "`:`".into(),
            Kind::PlusPlus => "`++`".into(),
            Kind::Eof => "the end of the file".into(),
        }
    }
}

/// Where a `;` that `expected` is missing belongs, and the message: just
/// after the previous token, when the token found instead starts a later
/// line (a statement that forgot its `;`). Pointing at the next line's first
/// token, as a plain "expected" error does, sends people to the wrong line.
pub(crate) fn missing_semicolon(
    expected: &Kind,
    prev_end: Option<Pos>,
    found: &Token,
) -> Option<(Pos, String)> {
    let end = prev_end?;
    (*expected == Kind::Semicolon && found.pos.line > end.line).then(|| {
        let message = format!(
            "expected `;` at the end of this line (the next line starts with {})",
            found.kind.describe()
        );
        (end, message)
    })
}

/// A token, where it starts, and where the text after it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) pos: Pos,
    /// Just past its last character: where a missing `;` after it belongs.
    pub(crate) end: Pos,
}

/// Which language's tokens to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Qasm2,
    Qasm3,
}

/// A lazy tokenizer over a source string (its own copy, so that a parser
/// can keep the lexers of several files, as `include` needs).
#[derive(Debug)]
pub(crate) struct Lexer {
    src: String,
    offset: usize,
    line: u32,
    column: u32,
    dialect: Dialect,
    /// The OpenQASM 3 pragma lines skipped so far: where each began and its
    /// text after `pragma` / `#pragma`, trimmed.
    pub(crate) pragmas: Vec<(Pos, String)>,
}

impl Lexer {
    /// An OpenQASM 2.0 lexer.
    pub(crate) fn new(src: &str) -> Self {
        Self::with_dialect(src, Dialect::Qasm2)
    }

    pub(crate) fn with_dialect(src: &str, dialect: Dialect) -> Self {
        Lexer {
            src: src.to_owned(),
            offset: 0,
            line: 1,
            column: 1,
            dialect,
            pragmas: Vec::new(),
        }
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    fn rest(&self) -> &str {
        self.src.get(self.offset..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.rest().chars();
        it.next();
        it.next()
    }

    /// Whether only blanks precede the current position on its line.
    fn at_line_start(&self) -> bool {
        let before = self.src.get(..self.offset).unwrap_or("");
        let line = before.rsplit('\n').next().unwrap_or("");
        line.chars().all(|c| c == ' ' || c == '\t' || c == '\r')
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    /// OpenQASM 3 lines the simulator ignores: `#pragma …`, `pragma …` and
    /// `@annotation …` (the latter two only at the start of a line).
    fn at_ignored_line(&self) -> bool {
        if self.dialect != Dialect::Qasm3 {
            return false;
        }
        let rest = self.rest();
        if rest.starts_with("#pragma") {
            return true;
        }
        if !(rest.starts_with('p') || rest.starts_with('@')) || !self.at_line_start() {
            return false;
        }
        if let Some(after) = rest.strip_prefix("pragma") {
            return after.starts_with(|c: char| c.is_whitespace()) || after.is_empty();
        }
        rest.strip_prefix('@')
            .is_some_and(|after| after.starts_with(|c: char| c.is_alphabetic() || c == '_'))
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.offset += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.column = 1;
        } else {
            self.column = self.column.saturating_add(1);
        }
        Some(c)
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) -> Result<(), Diagnostic> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some(_) if self.at_ignored_line() => {
                    let pos = self.pos();
                    let start = self.offset;
                    self.skip_line();
                    let line = self.src.get(start..self.offset).unwrap_or("");
                    if let Some(text) = line
                        .strip_prefix("#pragma")
                        .or_else(|| line.strip_prefix("pragma"))
                    {
                        self.pragmas.push((pos, text.trim().to_string()));
                    }
                }
                Some('/') if self.peek2() == Some('/') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('/') if self.peek2() == Some('*') => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                return Err(start.error("unterminated comment: `/*` without `*/`"));
                            }
                            Some('*') if self.peek() == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn eat_digits(&mut self) -> usize {
        let mut n = 0;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            n += 1;
        }
        n
    }

    /// Lexes a number starting at the current position.
    fn number(&mut self, pos: Pos) -> Result<Kind, Diagnostic> {
        let start = self.offset;
        let int_digits = self.eat_digits();
        let mut real = false;
        if self.peek() == Some('.') {
            real = true;
            self.bump();
            let frac = self.eat_digits();
            if int_digits == 0 && frac == 0 {
                return Err(pos.error("expected a digit after `.`"));
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let next = self.peek2();
            let has_exp = match next {
                Some(c) if c.is_ascii_digit() => true,
                Some('+' | '-') => {
                    let mut it = self.rest().chars();
                    it.next();
                    it.next();
                    it.next().is_some_and(|c| c.is_ascii_digit())
                }
                _ => false,
            };
            if has_exp {
                real = true;
                self.bump();
                if matches!(self.peek(), Some('+' | '-')) {
                    self.bump();
                }
                self.eat_digits();
            }
        }
        let text = self.src.get(start..self.offset).unwrap_or("");
        if self.peek().is_some_and(|c| c.is_alphabetic() || c == '_') {
            return Err(pos.error(format!(
                "malformed number `{text}`: a name cannot start with a digit"
            )));
        }
        number_token(text, text, real, pos)
    }

    /// The next token (an [`Kind::Eof`] token at the end, again and again).
    pub(crate) fn next_token(&mut self) -> Result<Token, Diagnostic> {
        self.skip_trivia()?;
        let pos = self.pos();
        let Some(c) = self.peek() else {
            return Ok(Token {
                kind: Kind::Eof,
                pos,
                end: pos,
            });
        };
        let kind = match c {
            c if c.is_ascii_alphabetic()
                || c == '_'
                || (self.dialect == Dialect::Qasm3 && c.is_alphabetic()) =>
            {
                let start = self.offset;
                let unicode = self.dialect == Dialect::Qasm3;
                while self.peek().is_some_and(|c| {
                    c.is_ascii_alphanumeric() || c == '_' || (unicode && c.is_alphanumeric())
                }) {
                    self.bump();
                }
                Kind::Ident(self.src.get(start..self.offset).unwrap_or("").to_string())
            }
            c if (c.is_ascii_digit() || c == '.') && self.dialect == Dialect::Qasm3 => {
                self.number3(pos)?
            }
            c if c.is_ascii_digit() || c == '.' => self.number(pos)?,
            '"' => self.string(pos, '"')?,
            '\'' if self.dialect == Dialect::Qasm3 => self.string(pos, '\'')?,
            '$' if self.dialect == Dialect::Qasm3 => {
                self.bump();
                let start = self.offset;
                if self.eat_digits() == 0 {
                    return Err(pos.error("expected a qubit number after `$`"));
                }
                Kind::Physical(
                    self.src
                        .get(start..self.offset)
                        .and_then(|t| t.parse().ok()),
                )
            }
            _ if self.dialect == Dialect::Qasm3 => self.punctuation3(pos, c)?,
            _ => {
                self.bump();
                match c {
                    ';' => Kind::Semicolon,
                    ',' => Kind::Comma,
                    '(' => Kind::LParen,
                    ')' => Kind::RParen,
                    '[' => Kind::LBracket,
                    ']' => Kind::RBracket,
                    '{' => Kind::LBrace,
                    '}' => Kind::RBrace,
                    '+' => Kind::Plus,
                    '*' => Kind::Star,
                    '/' => Kind::Slash,
                    '^' => Kind::Caret,
                    '-' if self.peek() == Some('>') => {
                        self.bump();
                        Kind::Arrow
                    }
                    '-' => Kind::Minus,
                    '=' if self.peek() == Some('=') => {
                        self.bump();
                        Kind::EqEq
                    }
                    '=' => return Err(pos.error("unexpected `=`: comparisons use `==`")),
                    other => {
                        return Err(
                            pos.error(format!("unexpected character `{}`", other.escape_default()))
                        );
                    }
                }
            }
        };
        Ok(Token {
            kind,
            pos,
            end: self.pos(),
        })
    }

    /// A string literal delimited by `quote`.
    fn string(&mut self, pos: Pos, quote: char) -> Result<Kind, Diagnostic> {
        self.bump();
        let start = self.offset;
        loop {
            match self.peek() {
                None | Some('\n') => {
                    return Err(
                        pos.error(format!("unterminated string: missing closing `{quote}`"))
                    );
                }
                Some(c) if c == quote => break,
                Some(_) => {
                    self.bump();
                }
            }
        }
        let s = self.src.get(start..self.offset).unwrap_or("").to_string();
        self.bump();
        Ok(Kind::Str(s))
    }

    /// Digits of `radix` and `_` separators; the digits without separators.
    fn eat_radix_digits(&mut self, radix: u32) -> String {
        let mut digits = String::new();
        while let Some(c) = self.peek() {
            if c.is_digit(radix) {
                digits.push(c);
            } else if c != '_' {
                break;
            }
            self.bump();
        }
        digits
    }

    /// An OpenQASM 3 number: `_` separators, `0x`/`0o`/`0b` integers, and
    /// timing or imaginary suffixes.
    fn number3(&mut self, pos: Pos) -> Result<Kind, Diagnostic> {
        let start = self.offset;
        if self.peek() == Some('0') {
            let radix = match self.peek2() {
                Some('x' | 'X') => Some(16),
                Some('o' | 'O') => Some(8),
                Some('b' | 'B') => Some(2),
                _ => None,
            };
            if let Some(radix) = radix {
                self.bump();
                self.bump();
                let digits = self.eat_radix_digits(radix);
                let text = self.src.get(start..self.offset).unwrap_or("");
                if digits.is_empty() || self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_')
                {
                    return Err(pos.error(format!("malformed number `{text}`")));
                }
                let value = u64::from_str_radix(&digits, radix).ok();
                #[allow(clippy::cast_precision_loss)]
                let float = value.map_or(f64::INFINITY, |v| v as f64);
                return Ok(Kind::Int(value, float));
            }
        }
        let mut text = self.eat_radix_digits(10);
        let int_digits = text.len();
        let mut real = false;
        if self.peek() == Some('.') {
            real = true;
            self.bump();
            text.push('.');
            let frac = self.eat_radix_digits(10);
            if int_digits == 0 && frac.is_empty() {
                return Err(pos.error("expected a digit after `.`"));
            }
            text.push_str(&frac);
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let mut it = self.rest().chars();
            it.next();
            let next = it.next();
            let has_exp = match next {
                Some(c) if c.is_ascii_digit() => true,
                Some('+' | '-') => it.next().is_some_and(|c| c.is_ascii_digit()),
                _ => false,
            };
            if has_exp {
                real = true;
                text.push('e');
                self.bump();
                if let Some(sign @ ('+' | '-')) = self.peek() {
                    text.push(sign);
                    self.bump();
                }
                text.push_str(&self.eat_radix_digits(10));
            }
        }
        // A suffix: a timing unit, `im`, or a mistake.
        let suffix_start = self.offset;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.bump();
        }
        let suffix = self.src.get(suffix_start..self.offset).unwrap_or("");
        let literal = self.src.get(start..self.offset).unwrap_or("");
        match suffix {
            "" => {}
            "ns" | "us" | "µs" | "μs" | "ms" | "s" | "dt" => {
                return Ok(Kind::Duration(literal.to_string()));
            }
            "im" => return Ok(Kind::Imaginary),
            _ => {
                return Err(pos.error(format!(
                    "malformed number `{literal}`: a name cannot start with a digit"
                )));
            }
        }
        number_token(&text, literal, real, pos)
    }

    /// OpenQASM 3 operators and punctuation, longest match first.
    fn punctuation3(&mut self, pos: Pos, c: char) -> Result<Kind, Diagnostic> {
        let second = self.peek2();
        let third = {
            let mut it = self.rest().chars();
            it.next();
            it.next();
            it.next()
        };
        let (kind, len) = match (c, second, third) {
            ('<', Some('<'), Some('=')) => (Kind::CompoundAssign("<<"), 3),
            ('>', Some('>'), Some('=')) => (Kind::CompoundAssign(">>"), 3),
            ('*', Some('*'), Some('=')) => (Kind::CompoundAssign("**"), 3),
            ('*', Some('*'), _) => (Kind::StarStar, 2),
            ('<', Some('<'), _) => (Kind::ShiftLeft, 2),
            ('>', Some('>'), _) => (Kind::ShiftRight, 2),
            ('<', Some('='), _) => (Kind::LessEq, 2),
            ('>', Some('='), _) => (Kind::GreaterEq, 2),
            ('=', Some('='), _) => (Kind::EqEq, 2),
            ('!', Some('='), _) => (Kind::NotEq, 2),
            ('&', Some('&'), _) => (Kind::AndAnd, 2),
            ('|', Some('|'), _) => (Kind::OrOr, 2),
            ('-', Some('>'), _) => (Kind::Arrow, 2),
            ('+', Some('+'), _) => (Kind::PlusPlus, 2),
            ('+', Some('='), _) => (Kind::CompoundAssign("+"), 2),
            ('-', Some('='), _) => (Kind::CompoundAssign("-"), 2),
            ('*', Some('='), _) => (Kind::CompoundAssign("*"), 2),
            ('/', Some('='), _) => (Kind::CompoundAssign("/"), 2),
            ('%', Some('='), _) => (Kind::CompoundAssign("%"), 2),
            ('&', Some('='), _) => (Kind::CompoundAssign("&"), 2),
            ('|', Some('='), _) => (Kind::CompoundAssign("|"), 2),
            ('^', Some('='), _) => (Kind::CompoundAssign("^"), 2),
            ('~', Some('='), _) => (Kind::CompoundAssign("~"), 2),
            (';', _, _) => (Kind::Semicolon, 1),
            (',', _, _) => (Kind::Comma, 1),
            ('(', _, _) => (Kind::LParen, 1),
            (')', _, _) => (Kind::RParen, 1),
            ('[', _, _) => (Kind::LBracket, 1),
            (']', _, _) => (Kind::RBracket, 1),
            ('{', _, _) => (Kind::LBrace, 1),
            ('}', _, _) => (Kind::RBrace, 1),
            ('+', _, _) => (Kind::Plus, 1),
            ('-', _, _) => (Kind::Minus, 1),
            ('*', _, _) => (Kind::Star, 1),
            ('/', _, _) => (Kind::Slash, 1),
            ('^', _, _) => (Kind::Caret, 1),
            ('=', _, _) => (Kind::Assign, 1),
            ('<', _, _) => (Kind::Less, 1),
            ('>', _, _) => (Kind::Greater, 1),
            ('!', _, _) => (Kind::Bang, 1),
            ('~', _, _) => (Kind::Tilde, 1),
            ('&', _, _) => (Kind::Amp, 1),
            ('|', _, _) => (Kind::Pipe, 1),
            ('%', _, _) => (Kind::Percent, 1),
            ('@', _, _) => (Kind::At, 1),
            (':', _, _) => (Kind::Colon, 1),
            _ => {
                return Err(pos.error(format!("unexpected character `{}`", c.escape_default())));
            }
        };
        for _ in 0..len {
            self.bump();
        }
        Ok(kind)
    }
}

/// The token for the digits `text` of a number written `shown` in the
/// source: a real, or an integer (exact when it fits in a `u64`) that also
/// carries its `f64` value.
fn number_token(text: &str, shown: &str, real: bool, pos: Pos) -> Result<Kind, Diagnostic> {
    let float: f64 = text
        .parse()
        .map_err(|_| pos.error(format!("malformed number `{shown}`")))?;
    if !float.is_finite() {
        return Err(pos.error("number is too large"));
    }
    if real {
        Ok(Kind::Real(float))
    } else {
        Ok(Kind::Int(text.parse().ok(), float))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds_in(src: &str, dialect: Dialect) -> Vec<Kind> {
        let mut lx = Lexer::with_dialect(src, dialect);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token().unwrap();
            if t.kind == Kind::Eof {
                return out;
            }
            out.push(t.kind);
        }
    }

    fn kinds(src: &str) -> Vec<Kind> {
        kinds_in(src, Dialect::Qasm2)
    }

    fn kinds3(src: &str) -> Vec<Kind> {
        kinds_in(src, Dialect::Qasm3)
    }

    #[test]
    fn lexes_qasm3_tokens() {
        let id = |s: &str| Kind::Ident(s.into());
        assert_eq!(
            kinds3("a <<= b ** c != d && e || f ++ g @ h : $3 >= ~ ^= -> % < !"),
            vec![
                id("a"),
                Kind::CompoundAssign("<<"),
                id("b"),
                Kind::StarStar,
                id("c"),
                Kind::NotEq,
                id("d"),
                Kind::AndAnd,
                id("e"),
                Kind::OrOr,
                id("f"),
                Kind::PlusPlus,
                id("g"),
                Kind::At,
                id("h"),
                Kind::Colon,
                Kind::Physical(Some(3)),
                Kind::GreaterEq,
                Kind::Tilde,
                Kind::CompoundAssign("^"),
                Kind::Arrow,
                Kind::Percent,
                Kind::Less,
                Kind::Bang,
            ]
        );
        assert_eq!(
            kinds3("1_000 0x1F 0o17 0b101 1.5e3 100ns 2.5us 2im π θ_1 'ab'"),
            vec![
                Kind::Int(Some(1000), 1000.0),
                Kind::Int(Some(31), 31.0),
                Kind::Int(Some(15), 15.0),
                Kind::Int(Some(5), 5.0),
                Kind::Real(1500.0),
                Kind::Duration("100ns".into()),
                Kind::Duration("2.5us".into()),
                Kind::Imaginary,
                id("π"),
                id("θ_1"),
                Kind::Str("ab".into()),
            ]
        );
        assert!(
            Lexer::with_dialect("0x", Dialect::Qasm3)
                .next_token()
                .is_err()
        );
        assert!(
            Lexer::with_dialect("12abc", Dialect::Qasm3)
                .next_token()
                .is_err()
        );
        assert!(
            Lexer::with_dialect("$", Dialect::Qasm3)
                .next_token()
                .is_err()
        );
    }

    #[test]
    fn skips_pragmas_and_annotations_in_qasm3_only() {
        assert_eq!(
            kinds3("#pragma a b\n  pragma c d\n@ann x\nq @ r; x = y; pragmatic"),
            vec![
                Kind::Ident("q".into()),
                Kind::At,
                Kind::Ident("r".into()),
                Kind::Semicolon,
                Kind::Ident("x".into()),
                Kind::Assign,
                Kind::Ident("y".into()),
                Kind::Semicolon,
                Kind::Ident("pragmatic".into()),
            ]
        );
        // OpenQASM 2 keeps refusing these characters.
        assert!(Lexer::new("@ann").next_token().is_err());
        assert!(Lexer::new("=").next_token().is_err());
        assert!(Lexer::new("π").next_token().is_err());
    }

    #[test]
    fn lexes_numbers() {
        assert_eq!(
            kinds("1 1.5 .5 5. 1e-10 2E3 1.0e+2 7"),
            vec![
                Kind::Int(Some(1), 1.0),
                Kind::Real(1.5),
                Kind::Real(0.5),
                Kind::Real(5.0),
                Kind::Real(1e-10),
                Kind::Real(2000.0),
                Kind::Real(100.0),
                Kind::Int(Some(7), 7.0),
            ]
        );
        assert!(matches!(
            kinds("99999999999999999999999")[0],
            Kind::Int(None, _)
        ));
    }

    #[test]
    fn tracks_positions_and_comments() {
        let mut lx = Lexer::new("// hi\n  /* a\n b */ qreg\tq;");
        let t = lx.next_token().unwrap();
        assert_eq!(t.kind, Kind::Ident("qreg".into()));
        assert_eq!(t.pos, Pos { line: 3, column: 7 });
        let t = lx.next_token().unwrap();
        assert_eq!(
            t.pos,
            Pos {
                line: 3,
                column: 12
            }
        );
        assert_eq!(lx.next_token().unwrap().kind, Kind::Semicolon);
        assert_eq!(lx.next_token().unwrap().kind, Kind::Eof);
        assert_eq!(lx.next_token().unwrap().kind, Kind::Eof);
    }

    #[test]
    fn columns_count_characters() {
        let mut lx = Lexer::new("// é\n\"é\" ->");
        let t = lx.next_token().unwrap();
        assert_eq!(t.kind, Kind::Str("é".into()));
        let t = lx.next_token().unwrap();
        assert_eq!((t.kind, t.pos), (Kind::Arrow, Pos { line: 2, column: 5 }));
    }

    #[test]
    fn reports_bad_input() {
        let e = Lexer::new("\n  /* never closed").next_token().unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        let e = Lexer::new("  @").next_token().unwrap_err();
        assert_eq!((e.line, e.column), (1, 3));
        assert!(Lexer::new("\"abc").next_token().is_err());
        assert!(Lexer::new("12abc").next_token().is_err());
    }
}
