//! Requests malformed at the HTTP level, sent as raw bytes: what the
//! server answers, and that the connection is closed and the server stays
//! up. Two kinds of refusal exist. actix-http's parser refuses a request
//! head it cannot frame (conflicting lengths, too many or too large
//! headers) before any of Kettle's code runs, with an empty `400` or `431`
//! and `Connection: close`; it has no hook for a body. Everything that
//! reaches a handler (a malformed chunked body, say) is a problem document.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::server_util::*;

/// Sends `raw` on a fresh connection; the whole answer, up to the close.
fn exchange(addr: &str, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // A server may close before it has read everything (it refused the
    // head): a failed write is part of the answer, not an error.
    let _ = stream.write_all(raw);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

#[test]
fn requests_malformed_at_the_http_level_are_refused_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = in_process(test_config(dir.path()));
    let addr = server.base.trim_start_matches("http://").to_owned();
    let body = br#"{"program": {"format": "qasm3", "source": "qubit q;"}}"#;
    let head = |extra: &str| {
        let mut raw = format!("POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n").into_bytes();
        raw.extend_from_slice(body);
        raw
    };
    let many_headers: String = (0..200).map(|i| format!("X-Filler-{i}: a\r\n")).collect();
    for (what, raw, status) in [
        (
            "two different Content-Lengths",
            head(&format!(
                "Content-Length: {}\r\nContent-Length: 5\r\n",
                body.len()
            )),
            400,
        ),
        (
            "Content-Length and chunked",
            head(&format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                body.len()
            )),
            400,
        ),
        (
            "200 headers",
            format!("GET /v1/jobs HTTP/1.1\r\nHost: {addr}\r\n{many_headers}\r\n").into_bytes(),
            431,
        ),
        (
            "a 1 MB header",
            format!(
                "GET /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nX-Big: {}\r\n\r\n",
                "a".repeat(1 << 20)
            )
            .into_bytes(),
            431,
        ),
    ] {
        let answer = exchange(&addr, &raw);
        assert_eq!(status_of(&answer), status, "{what}: {answer:?}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{what}: {answer:?}"
        );
    }
    // A body that cannot be read reaches the handler: a problem.
    let answer = exchange(
        &addr,
        format!("POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n")
            .as_bytes(),
    );
    assert_eq!(status_of(&answer), 400, "{answer:?}");
    assert!(
        answer.contains("application/problem+json") && answer.contains("malformed-request"),
        "{answer:?}"
    );
    // And the server still answers.
    let answer = exchange(
        &addr,
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(status_of(&answer), 200, "{answer:?}");
}
