//! Decoding a request from the JSON bytes a client sent ([`decode_json`]):
//! a nesting-depth limit checked before serde sees the bytes (deep nesting
//! is a cheap way to burn a parser's stack), integral floats accepted as
//! integers, and serde's errors kept with their line and column. The HTTP
//! server and the `job_request` fuzz target both decode through it.

use serde::de::DeserializeOwned;
use serde_json::{Number, Value};

/// Why a JSON body could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// One line saying what is wrong.
    pub message: String,
    /// Where, when serde could say (1-based line, column).
    pub position: Option<(usize, usize)>,
}

/// The deepest `[`/`{` nesting in `bytes`, ignoring brackets inside strings;
/// stops counting once `limit` is passed.
fn depth_exceeds(bytes: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Rewrites every float in `value` that has no fraction and fits an `i64`
/// or a `u64` (`562.0`, `-3.0`, `1e3`) as that integer; whether any was.
fn integral_floats_to_integers(value: &mut Value) -> bool {
    /// 2^64 and 2^63 as floats: exact, unlike `u64::MAX as f64`.
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 || !f.is_finite() {
                return false;
            }
            // In range, the casts are exact.
            let int = if (0.0..TWO_64).contains(&f) {
                Number::from(f as u64)
            } else if (-TWO_63..0.0).contains(&f) {
                Number::from(f as i64)
            } else {
                return false;
            };
            *n = int;
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |any, v| integral_floats_to_integers(v) | any),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |any, v| integral_floats_to_integers(v) | any),
        _ => false,
    }
}

/// Decodes a JSON body into `T`.
///
/// # Errors
/// Bodies nested deeper than `max_depth`, malformed JSON, or fields of the
/// wrong type or name, with the line and column serde reports. A float with
/// no fraction is accepted where an integer is expected.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8], max_depth: usize) -> Result<T, DecodeError> {
    if depth_exceeds(bytes, max_depth) {
        return Err(DecodeError {
            message: format!("the JSON body is nested more than {max_depth} levels deep"),
            position: None,
        });
    }
    let first = match serde_json::from_slice(bytes) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    // JSON (and the JSON Schema of `openapi.yaml`) has one number type:
    // `562.0` is an integer there, but not to serde's integer types. Retry
    // with integral floats written as integers; a fraction stays an error.
    if first.classify() == serde_json::error::Category::Data
        && let Ok(mut value) = serde_json::from_slice::<Value>(bytes)
        && integral_floats_to_integers(&mut value)
        && let Ok(v) = serde_json::from_value(value)
    {
        return Ok(v);
    }
    let what = match first.classify() {
        serde_json::error::Category::Data => "the request does not match the job schema",
        serde_json::error::Category::Eof => "the JSON body ends too early",
        // serde reports a value of the wrong kind for an enum (`"precision":
        // null`) as a syntax error, though the JSON is fine.
        _ if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
            "the request does not match the job schema"
        }
        _ => "the body is not valid JSON",
    };
    Err(DecodeError {
        message: format!("{what}: {first}"),
        position: Some((first.line(), first.column())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert!(!depth_exceeds(br#"{"a": "[[[[[[[[", "b": "\"[[["}"#, 2));
        assert!(depth_exceeds(b"[[[", 2));
        assert!(!depth_exceeds(b"[[]][[]]", 2));
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ints {
        shots: u64,
        priority: i32,
        #[serde(default)]
        seed: Option<u64>,
        #[serde(default)]
        angles: Vec<f64>,
    }

    #[test]
    fn integral_floats_are_integers() {
        // What schemathesis sends for `type: integer` (JSON Schema counts
        // `562.0` as an integer); found by tests/reliability/schemathesis.sh.
        let v: Ints = decode_json(
            br#"{"shots": 562.0, "priority": -3.0, "seed": 1e19, "angles": [1.0, 0.5]}"#,
            10,
        )
        .unwrap();
        assert_eq!(
            (v.shots, v.priority, v.seed),
            (562, -3, Some(10_000_000_000_000_000_000))
        );
        assert_eq!(v.angles, [1.0, 0.5]);
        // A fraction, or a value past the type, is still refused, with the
        // position of the first error.
        for body in [
            &br#"{"shots": 562.5, "priority": 0}"#[..],
            br#"{"shots": 1, "priority": 3e9}"#,
            br#"{"shots": 1.8446744073709552e19, "priority": 0}"#,
            br#"{"shots": -1.0, "priority": 0}"#,
        ] {
            let err = decode_json::<Ints>(body, 10).unwrap_err();
            assert!(format!("{err}").contains("line 1"), "{err}");
        }
    }

    #[test]
    fn a_wrong_kind_of_value_is_not_called_invalid_json() {
        #[derive(Debug, serde::Deserialize)]
        enum Precision {
            F64,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Req {
            precision: Precision,
        }
        for body in [&br#"{"precision": null}"#[..], br#"{"precision": 5}"#] {
            let text = format!("{}", decode_json::<Req>(body, 10).unwrap_err());
            assert!(text.contains("does not match the job schema"), "{text}");
            assert!(text.contains("column"), "{text}");
        }
        let text = format!(
            "{}",
            decode_json::<Req>(br#"{"precision": nul}"#, 10).unwrap_err()
        );
        assert!(text.contains("not valid JSON"), "{text}");
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = decode_json::<serde_json::Value>(b"{\n  \"a\": }", 10).unwrap_err();
        let text = format!("{err}");
        assert!(text.contains("line 2"), "{text}");
    }
}
