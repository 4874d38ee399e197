//! Reading JSON request bodies: the media type they must be sent as, and
//! [`kettle_service::decode_json`] (depth limit, integral floats, positions)
//! with its errors as `400` problems.

use actix_web::http::StatusCode;
use kettle_service::decode_json;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::problem::Problem;

/// Checks a request body's `Content-Type`: JSON (`application/json`, any
/// parameters, or an `application/…+json` type), or none at all.
///
/// Why refuse the others: a web page on any site can make its visitor's
/// browser POST `text/plain` or a form to `127.0.0.1:8080` without asking
/// first, and a server in local mode has no key to stop it. A JSON body is
/// one the browser must ask about first (CORS preflight), which this server
/// never approves. A request without the header cannot come from a browser.
///
/// # Errors
/// `415` naming the type it got.
pub(crate) fn check_json_media_type(content_type: Option<&[u8]>) -> Result<(), Problem> {
    let Some(raw) = content_type else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(raw);
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Unsupported media type",
        format!(
            "the body is sent as `{text}`; send it as JSON, with `Content-Type: application/json`"
        ),
    ))
}

/// Checks a request body's `Content-Encoding`: none, or `identity`.
///
/// Why: this server decodes no content coding, and a gzip body read as
/// JSON fails with a confusing syntax error at its first byte (or, for a
/// coding that happens to look like text, is taken as something it is
/// not). RFC 9110 (15.5.16) answers an unsupported coding with `415` and
/// an `Accept-Encoding` naming what is accepted.
///
/// # Errors
/// `415 unsupported-content-encoding` naming the coding it got.
pub(crate) fn check_content_encoding(encoding: Option<&[u8]>) -> Result<(), Problem> {
    let Some(raw) = encoding else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(raw);
    if text
        .split(',')
        .all(|c| c.trim().eq_ignore_ascii_case("identity"))
    {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-content-encoding",
        "Unsupported content encoding",
        format!(
            "the body is sent with `Content-Encoding: {text}`; this server reads bodies only as sent, without a content coding"
        ),
    )
    .with_header(actix_web::http::header::ACCEPT_ENCODING, "identity"))
}

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
    fn only_json_media_types_or_none_are_taken() {
        for ok in [
            None,
            Some("application/json"),
            Some("Application/JSON; charset=utf-8"),
            Some("application/problem+json"),
        ] {
            assert!(
                check_json_media_type(ok.map(str::as_bytes)).is_ok(),
                "{ok:?}"
            );
        }
        for refused in [
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
            "json",
            "text/json+",
        ] {
            let err = check_json_media_type(Some(refused.as_bytes())).unwrap_err();
            assert!(
                format!("{err}").contains("Content-Type: application/json"),
                "{err}"
            );
        }
    }

    #[test]
    fn only_bodies_without_a_content_coding_are_taken() {
        for ok in [None, Some("identity"), Some(" Identity ")] {
            assert!(
                check_content_encoding(ok.map(str::as_bytes)).is_ok(),
                "{ok:?}"
            );
        }
        for refused in ["gzip", "br", "identity, gzip", "deflate", ""] {
            let err = check_content_encoding(Some(refused.as_bytes())).unwrap_err();
            let text = format!("{err}");
            assert!(
                text.starts_with("415 unsupported-content-encoding") && text.contains(refused),
                "{text}"
            );
        }
    }

    #[test]
    fn errors_are_problems_with_a_position() {
        let err = parse_json::<serde_json::Value>(b"{\n  \"a\": }", 10).unwrap_err();
        let text = format!("{err}");
        assert!(text.contains("line 2"), "{text}");
        assert!(parse_json::<serde_json::Value>(b"[[[", 2).is_err());
    }
}
