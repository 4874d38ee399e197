//! Reading JSON request bodies: [`kettle_service::decode_json`] (depth
//! limit, integral floats, positions) with its errors as `400` problems.

use kettle_service::decode_json;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::problem::Problem;

/// Parses a JSON body into `T`.
///
/// # Errors
/// `400` for what [`decode_json`] refuses, with `line` and `column` when
/// known.
pub(crate) fn parse_json<T: DeserializeOwned>(
    bytes: &[u8],
    max_depth: usize,
) -> Result<T, Problem> {
    decode_json(bytes, max_depth).map_err(|e| {
        let problem = Problem::bad_request(e.message);
        match e.position {
            Some((line, column)) => problem
                .with("line", json!(line))
                .with("column", json!(column)),
            None => problem,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_problems_with_a_position() {
        let err = parse_json::<serde_json::Value>(b"{\n  \"a\": }", 10).unwrap_err();
        let text = format!("{err}");
        assert!(text.contains("line 2"), "{text}");
        assert!(parse_json::<serde_json::Value>(b"[[[", 2).is_err());
    }
}
