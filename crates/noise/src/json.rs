//! Reading JSON values with their path: every value the parser looks at
//! carries the JSONPath that leads to it, so that each error says where it
//! is (`$.errors[3].instructions[0][1].params`). Paths are a chain of
//! borrowed segments and are only turned into text when an error is made.

use std::fmt;

use kettle_ir::{Complex64, GateMatrix};
use serde_json::{Map, Value};

use crate::error::NoiseModelError;

/// A JSONPath, as a chain of segments borrowed from the caller's stack.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment,
}

#[derive(Clone, Copy, Debug)]
enum Segment {
    Root,
    Key(&'static str),
    Index(usize),
}

impl Path<'static> {
    /// `$`, the document itself.
    pub(crate) const ROOT: Path<'static> = Path {
        parent: None,
        segment: Segment::Root,
    };
}

impl<'a> Path<'a> {
    /// `self.key`.
    pub(crate) fn key(&'a self, key: &'static str) -> Path<'a> {
        Path {
            parent: Some(self),
            segment: Segment::Key(key),
        }
    }

    /// `self[index]`.
    pub(crate) fn index(&'a self, index: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            segment: Segment::Index(index),
        }
    }

    /// An error at this path.
    pub(crate) fn error(&self, message: impl Into<String>) -> NoiseModelError {
        NoiseModelError::Invalid {
            path: self.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths are at most a handful of segments deep (the parser's own
        // nesting), so recursion is bounded.
        if let Some(parent) = self.parent {
            parent.fmt(f)?;
        }
        match self.segment {
            Segment::Root => f.write_str("$"),
            Segment::Key(k) => write!(f, ".{k}"),
            Segment::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// What a value is, for messages ("a string", "null").
pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expected(path: &Path<'_>, what: &str, v: &Value) -> NoiseModelError {
    path.error(format!("expected {what}, found {}", describe(v)))
}

/// `v` as an array.
pub(crate) fn array<'v>(v: &'v Value, path: &Path<'_>) -> Result<&'v [Value], NoiseModelError> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| expected(path, "an array", v))
}

/// `v` as an object.
pub(crate) fn object<'v>(
    v: &'v Value,
    path: &Path<'_>,
) -> Result<&'v Map<String, Value>, NoiseModelError> {
    v.as_object().ok_or_else(|| expected(path, "an object", v))
}

/// `v` as a string.
pub(crate) fn string<'v>(v: &'v Value, path: &Path<'_>) -> Result<&'v str, NoiseModelError> {
    v.as_str().ok_or_else(|| expected(path, "a string", v))
}

/// `v` as a finite number.
pub(crate) fn number(v: &Value, path: &Path<'_>) -> Result<f64, NoiseModelError> {
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(expected(path, "a finite number", v)),
    }
}

/// `v` as a qubit index.
pub(crate) fn qubit(v: &Value, path: &Path<'_>) -> Result<u32, NoiseModelError> {
    v.as_u64()
        .and_then(|q| u32::try_from(q).ok())
        .ok_or_else(|| expected(path, "a qubit index (an integer from 0 to 2^32 − 1)", v))
}

/// `v` as a list of qubit indices.
pub(crate) fn qubits(v: &Value, path: &Path<'_>) -> Result<Vec<u32>, NoiseModelError> {
    array(v, path)?
        .iter()
        .enumerate()
        .map(|(i, q)| qubit(q, &path.index(i)))
        .collect()
}

/// The member `key` of `obj`; `null` counts as absent, as in Aer's reader.
pub(crate) fn get<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// The member `key` of `obj`, which must be there.
pub(crate) fn required<'v>(
    obj: &'v Map<String, Value>,
    key: &'static str,
    path: &Path<'_>,
) -> Result<&'v Value, NoiseModelError> {
    get(obj, key).ok_or_else(|| path.error(format!("missing `{key}`")))
}

/// A complex number: `[re, im]` (how Aer's serialiser writes one) or a plain
/// real number.
pub(crate) fn complex(v: &Value, path: &Path<'_>) -> Result<Complex64, NoiseModelError> {
    if let Some(pair) = v.as_array() {
        if let [re, im] = pair.as_slice() {
            return Ok(Complex64::new(
                number(re, &path.index(0))?,
                number(im, &path.index(1))?,
            ));
        }
        return Err(path.error(format!(
            "expected a complex number [re, im], found an array of {} elements",
            pair.len()
        )));
    }
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(Complex64::new(x, 0.0)),
        _ => Err(expected(path, "a complex number [re, im]", v)),
    }
}

/// A `2^num_qubits × 2^num_qubits` matrix given as a list of rows. The size
/// is checked before any entry is read, so a huge array costs nothing.
pub(crate) fn matrix(
    v: &Value,
    num_qubits: u32,
    path: &Path<'_>,
) -> Result<GateMatrix, NoiseModelError> {
    let dim = 1usize << num_qubits;
    let rows = array(v, path)?;
    if rows.len() != dim {
        return Err(path.error(format!(
            "expected a {dim}×{dim} matrix (for {num_qubits} qubit(s)), found {} rows",
            rows.len()
        )));
    }
    let mut data = Vec::with_capacity(dim * dim);
    for (r, row) in rows.iter().enumerate() {
        let row_path = path.index(r);
        let entries = array(row, &row_path)?;
        if entries.len() != dim {
            return Err(row_path.error(format!(
                "expected a row of {dim} entries, found {}",
                entries.len()
            )));
        }
        for (c, z) in entries.iter().enumerate() {
            data.push(complex(z, &row_path.index(c))?);
        }
    }
    GateMatrix::new(num_qubits, data).map_err(|e| path.error(e.to_string()))
}
