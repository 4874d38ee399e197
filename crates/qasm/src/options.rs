//! What every front end shares besides the source: the [`SourceFormat`] and
//! its detection, the [`ParseOptions`] (limits, include resolver, input
//! values, deadline and stop flag), the [`IncludeResolver`] seam, and
//! [`ProgramError`], the error of [`parse_program`](crate::parse_program).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::{Diagnostic, JsonError, Limits};

/// Circuit source formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    /// OpenQASM 2.0.
    Qasm2,
    /// OpenQASM 3.
    Qasm3,
    /// Kettle's JSON circuit format.
    Json,
}

impl SourceFormat {
    /// `"qasm2"`, `"qasm3"` or `"json"`.
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Qasm2 => "qasm2",
            SourceFormat::Qasm3 => "qasm3",
            SourceFormat::Json => "json",
        }
    }
}

/// Decides the format of a program.
///
/// The content decides first: after blanks and comments, `{` means JSON and
/// `OPENQASM 2…` / `OPENQASM 3…` the version it names. Otherwise the file
/// name's extension decides: `.json`, `.qasm2`, `.qasm3`. A program that
/// still is undecided but has some content is OpenQASM 2 when it begins
/// with `include "qelib1.inc";` or a `qreg`/`creg` declaration (a file
/// whose version line was left out), else OpenQASM 3 (a plain `.qasm` file
/// included). `None` for a blank or comment-only source with no telling
/// name.
///
/// ```
/// use kettle_qasm::{SourceFormat, detect_format};
/// assert_eq!(detect_format(b"// hi\nOPENQASM 2.0;", None), Some(SourceFormat::Qasm2));
/// assert_eq!(detect_format(b"OPENQASM 3;", Some("a.qasm")), Some(SourceFormat::Qasm3));
/// assert_eq!(detect_format(b" {\"qubits\": 1}", None), Some(SourceFormat::Json));
/// assert_eq!(detect_format(b"qubit q;", Some("a.qasm")), Some(SourceFormat::Qasm3));
/// assert_eq!(
///     detect_format(b"include \"qelib1.inc\";\nqreg q[2];", Some("a.qasm")),
///     Some(SourceFormat::Qasm2)
/// );
/// assert_eq!(detect_format(b"", Some("a.qasm2")), Some(SourceFormat::Qasm2));
/// assert_eq!(detect_format(b"  // nothing", None), None);
/// ```
pub fn detect_format(source: &[u8], file_name: Option<&str>) -> Option<SourceFormat> {
    let code = skip_blanks_and_comments(source);
    if code.first() == Some(&b'{') {
        return Some(SourceFormat::Json);
    }
    if let Some(rest) = code.strip_prefix(b"OPENQASM") {
        let version = skip_blanks_and_comments(rest);
        if rest.len() != version.len() {
            match version.first() {
                Some(b'2') => return Some(SourceFormat::Qasm2),
                Some(b'3') => return Some(SourceFormat::Qasm3),
                _ => {}
            }
        }
    }
    let extension = file_name
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension.as_deref() {
        Some("json") => return Some(SourceFormat::Json),
        Some("qasm2") => return Some(SourceFormat::Qasm2),
        Some("qasm3") => return Some(SourceFormat::Qasm3),
        _ => {}
    }
    if code.is_empty() {
        None
    } else if looks_like_qasm2(code) {
        Some(SourceFormat::Qasm2)
    } else {
        Some(SourceFormat::Qasm3)
    }
}

/// A program without its version line that reads as OpenQASM 2 (as
/// Qiskit's loader reads it): it includes `qelib1.inc`, or begins with a
/// `qreg` or `creg` declaration. (OpenQASM 3 accepts those declarations
/// too, but its programs declare `qubit`s and include `stdgates.inc`.)
fn looks_like_qasm2(code: &[u8]) -> bool {
    let word = |w: &[u8]| {
        code.strip_prefix(w)
            .is_some_and(|rest| rest.first().is_some_and(u8::is_ascii_whitespace))
    };
    if word(b"qreg") || word(b"creg") {
        return true;
    }
    code.strip_prefix(b"include")
        .map(skip_blanks_and_comments)
        .is_some_and(|rest| rest.starts_with(b"\"qelib1.inc\""))
}

/// `source` without its leading whitespace, `//` and `/* */` comments (and
/// a UTF-8 byte-order mark).
fn skip_blanks_and_comments(source: &[u8]) -> &[u8] {
    let mut rest = source.strip_prefix(b"\xef\xbb\xbf").unwrap_or(source);
    loop {
        let trimmed = rest.trim_ascii_start();
        if let Some(after) = trimmed.strip_prefix(b"//") {
            rest = match after.iter().position(|&b| b == b'\n') {
                Some(i) => after.get(i..).unwrap_or_default(),
                None => &[],
            };
        } else if let Some(after) = trimmed.strip_prefix(b"/*") {
            rest = match after.windows(2).position(|w| w == b"*/") {
                Some(i) => after.get(i + 2..).unwrap_or_default(),
                None => &[],
            };
        } else {
            return trimmed;
        }
    }
}

/// Supplies the text of `include "name";` files other than the built-in
/// libraries (`qelib1.inc`, `stdgates.inc`, which never reach it).
///
/// The CLI implements it for files next to the source file; the HTTP
/// service passes none. The front ends never touch the file system
/// themselves, and pass `name` through exactly as the program wrote it
/// (`"../x.inc"` included): deciding which names are allowed — for instance
/// refusing to leave the source's folder — is the resolver's job.
pub trait IncludeResolver {
    /// The text of the file the program calls `name`, or a one-line reason
    /// why it cannot be had (it becomes the error's message).
    ///
    /// # Errors
    /// Why the file cannot be read.
    fn resolve(&self, name: &str) -> Result<String, String>;
}

/// Everything a front end needs besides the source.
#[derive(Clone, Default)]
pub struct ParseOptions<'a> {
    /// Bounds on sizes and counts.
    pub limits: Limits,
    /// `None`: only the built-in libraries may be included (any other
    /// include is an error naming the file).
    pub includes: Option<&'a dyn IncludeResolver>,
    /// Values of OpenQASM 3 `input` parameters (name → value).
    pub inputs: BTreeMap<String, f64>,
    /// When set, a parse still running at this instant ends with an error
    /// whose [`Diagnostic::limit`](crate::Diagnostic) is `deadline`.
    pub deadline: Option<Instant>,
    /// When set, a parse ends soon after the flag is raised, with an error
    /// whose [`Diagnostic::limit`](crate::Diagnostic) is `stopped` (a
    /// server raises it when the client that asked for the parse is gone).
    pub stop: Option<&'a AtomicBool>,
}

impl ParseOptions<'_> {
    /// Why the parse must end now, if it must: `deadline` or `stopped`.
    /// Costs a clock read, so the front ends ask every few thousand steps.
    pub(crate) fn interrupted(&self) -> Option<&'static str> {
        if self.stop.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            Some("stopped")
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some("deadline")
        } else {
            None
        }
    }
}

impl fmt::Debug for ParseOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParseOptions")
            .field("limits", &self.limits)
            .field("includes", &self.includes.map(|_| "resolver"))
            .field("inputs", &self.inputs)
            .field("deadline", &self.deadline)
            .field("stop", &self.stop)
            .finish()
    }
}

/// An OpenQASM 3 `input` declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputParameter {
    /// The parameter's name.
    pub name: String,
    /// Its type as declared, without a width: `"float"`, `"angle"`, `"int"`,
    /// `"uint"`, `"bool"`, `"bit"`.
    pub kind: String,
}

/// Why [`parse_program`](crate::parse_program) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgramError {
    /// An error in OpenQASM source (or in bytes that are not UTF-8), with its
    /// line and column.
    Source(Diagnostic),
    /// An error in a JSON circuit, with its JSON path.
    Json(JsonError),
}

impl fmt::Display for ProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramError::Source(d) => d.fmt(f),
            ProgramError::Json(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ProgramError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProgramError::Source(d) => Some(d),
            ProgramError::Json(e) => Some(e),
        }
    }
}

impl From<Diagnostic> for ProgramError {
    fn from(d: Diagnostic) -> Self {
        ProgramError::Source(d)
    }
}

impl From<JsonError> for ProgramError {
    fn from(e: JsonError) -> Self {
        ProgramError::Json(e)
    }
}
