//! Reading JSON request bodies: a nesting-depth limit checked before serde
//! sees the bytes (deep nesting is a cheap way to burn a parser's stack),
//! and serde's errors turned into problems with line and column.

use serde::de::DeserializeOwned;
use serde_json::json;

use crate::problem::Problem;

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

/// Parses a JSON body into `T`.
///
/// # Errors
/// `400` for bodies nested deeper than `max_depth`, malformed JSON, or
/// fields of the wrong type or name, with the line and column serde reports.
pub(crate) fn parse_json<T: DeserializeOwned>(
    bytes: &[u8],
    max_depth: usize,
) -> Result<T, Problem> {
    if depth_exceeds(bytes, max_depth) {
        return Err(Problem::bad_request(format!(
            "the JSON body is nested more than {max_depth} levels deep"
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "the request does not match the job schema",
            serde_json::error::Category::Eof => "the JSON body ends too early",
            _ => "the body is not valid JSON",
        };
        Problem::bad_request(format!("{what}: {e}"))
            .with("line", json!(e.line()))
            .with("column", json!(e.column()))
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

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse_json::<serde_json::Value>(b"{\n  \"a\": }", 10).unwrap_err();
        let text = format!("{err}");
        assert!(text.contains("line 2"), "{text}");
    }
}
