//! The lexer: turns source text into tokens with 1-based line and column
//! positions (columns counted in characters), one token at a time.

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
            Kind::Eof => "the end of the file".into(),
        }
    }
}

/// A token and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) pos: Pos,
}

/// A lazy tokenizer over a source string.
#[derive(Debug)]
pub(crate) struct Lexer<'a> {
    src: &'a str,
    offset: usize,
    line: u32,
    column: u32,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Lexer {
            src,
            offset: 0,
            line: 1,
            column: 1,
        }
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    fn peek(&self) -> Option<char> {
        self.src[self.offset..].chars().next()
    }

    fn peek2(&self) -> Option<char> {
        let mut it = self.src[self.offset..].chars();
        it.next();
        it.next()
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
                    let mut it = self.src[self.offset..].chars();
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
        let text = &self.src[start..self.offset];
        if self.peek().is_some_and(|c| c.is_alphabetic() || c == '_') {
            return Err(pos.error(format!(
                "malformed number `{text}`: a name cannot start with a digit"
            )));
        }
        let float: f64 = text
            .parse()
            .map_err(|_| pos.error(format!("malformed number `{text}`")))?;
        if !float.is_finite() {
            return Err(pos.error("number is too large"));
        }
        if real {
            Ok(Kind::Real(float))
        } else {
            Ok(Kind::Int(text.parse().ok(), float))
        }
    }

    /// The next token (an [`Kind::Eof`] token at the end, again and again).
    pub(crate) fn next_token(&mut self) -> Result<Token, Diagnostic> {
        self.skip_trivia()?;
        let pos = self.pos();
        let Some(c) = self.peek() else {
            return Ok(Token {
                kind: Kind::Eof,
                pos,
            });
        };
        let kind = match c {
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = self.offset;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.bump();
                }
                Kind::Ident(self.src[start..self.offset].to_string())
            }
            c if c.is_ascii_digit() || c == '.' => self.number(pos)?,
            '"' => {
                self.bump();
                let start = self.offset;
                loop {
                    match self.peek() {
                        None | Some('\n') => {
                            return Err(pos.error("unterminated string: missing closing `\"`"));
                        }
                        Some('"') => break,
                        Some(_) => {
                            self.bump();
                        }
                    }
                }
                let s = self.src[start..self.offset].to_string();
                self.bump();
                Kind::Str(s)
            }
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
        Ok(Token { kind, pos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Kind> {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token().unwrap();
            if t.kind == Kind::Eof {
                return out;
            }
            out.push(t.kind);
        }
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
