//! The OpenQASM 3 front end (work in progress).

use kettle_ir::Circuit;

use crate::{Diagnostic, InputParameter, Limits, ParseOptions};

/// Parses and lowers an OpenQASM 3 program.
pub(crate) fn parse(_source: &str, _options: &ParseOptions) -> Result<Circuit, Diagnostic> {
    Err(Diagnostic {
        message: "OpenQASM 3 is not supported yet".into(),
        line: 1,
        column: 1,
        file: None,
    })
}

/// The `input` declarations of a program.
pub(crate) fn inputs(_source: &str, _limits: &Limits) -> Result<Vec<InputParameter>, Diagnostic> {
    Ok(Vec::new())
}
