//! The web page at `/`: one self-contained HTML file (`web/index.html`,
//! its styles and script inline) embedded in the binary, with the example
//! programs of `circuits/` written into it. The page talks to the server
//! only through the public `/v1` API, like any other client.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use actix_web::http::header;

include!(concat!(env!("OUT_DIR"), "/examples.rs"));

/// The page's source; `PLACEHOLDER` occurs in it once.
const PAGE: &str = include_str!("../web/index.html");

/// Where the examples go, as a JavaScript expression.
const PLACEHOLDER: &str = "/*KETTLE_CIRCUITS*/null";

/// The page forbids everything it does not use: no other origin, no
/// framing, no plugins; it only calls this server's API.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The page with the examples in it, built once.
fn page() -> &'static str {
    static PAGE_WITH_EXAMPLES: OnceLock<String> = OnceLock::new();
    PAGE_WITH_EXAMPLES.get_or_init(|| PAGE.replacen(PLACEHOLDER, &examples_json(), 1))
}

/// The examples as a JSON array that is safe inside a `<script>` element:
/// `<` is written `\u003c`, so no source can close the element.
fn examples_json() -> String {
    let list: Vec<serde_json::Value> = EXAMPLES
        .iter()
        .map(|(path, format, source)| {
            serde_json::json!({"path": path, "format": format, "source": source})
        })
        .collect();
    serde_json::Value::Array(list)
        .to_string()
        .replace('<', "\\u003c")
}

/// `GET /`.
pub(crate) async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(page())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_every_example_and_no_placeholder() {
        assert_eq!(PAGE.matches(PLACEHOLDER).count(), 1);
        assert!(!page().contains(PLACEHOLDER));
        assert!(EXAMPLES.iter().any(|(p, _, _)| *p == "qasm3/bell.qasm"));
        let json = examples_json();
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), EXAMPLES.len());
        assert!(!json.contains('<'));
        assert!(page().contains(&json));
    }
}
