//! `GET /v1/jobs/{id}/circuit.svg` over real HTTP on 127.0.0.1: the
//! drawing of the circuit a job runs, from the same parse (a sweep's first
//! execution), for the job's own tenant only, folded and bounded as
//! `openapi.yaml` says; every response is checked against the document.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::server_util::*;

const TEMPLATE: &str = "/v1/jobs/{id}/circuit.svg";

async fn drawing(api: &Api, id: &str, query: &str) -> Reply {
    api.send(
        Method::GET,
        TEMPLATE,
        &format!("/v1/jobs/{id}/circuit.svg{query}"),
        None,
        &[],
    )
    .await
}

/// The SVG of a 200 answer, with its headers checked.
fn svg(r: &Reply) -> &str {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["content-type"], "image/svg+xml; charset=utf-8");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let svg = r.body.as_str().unwrap();
    assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
    svg
}

fn ops(svg: &str, kind: &str) -> usize {
    svg.matches(&format!("<g class=\"op {kind}\"")).count()
}

fn submitted(r: Reply) -> String {
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_circuit_is_drawn_for_its_own_tenant_only() {
    let dir = tempfile::tempdir().unwrap();
    let alice = kettle_server::keys_create(dir.path(), "alice").unwrap();
    let bob = kettle_server::keys_create(dir.path(), "bob").unwrap();
    let server = in_process(test_config(dir.path()));
    let a = Api::new(server.base.clone(), Some(&alice.key));
    let b = Api::new(server.base.clone(), Some(&bob.key));
    let anon = Api::new(server.base.clone(), None);

    // Bell (OpenQASM 2): H, CX and two measurements into `c`.
    let id = submitted(
        a.post_job(job(BELL, json!({"shots": 10})), "?wait=30")
            .await,
    );
    let r = drawing(&a, &id, "").await;
    let bell = svg(&r);
    assert!(bell.contains("data-operations=\"4\" data-drawn=\"4\" data-rows=\"1\""));
    assert_eq!(ops(bell, "gate"), 2);
    assert_eq!(ops(bell, "measure"), 2);
    assert!(bell.contains("data-name=\"h\"") && bell.contains("data-name=\"cx\""));
    assert!(bell.contains(">c</text>") && bell.contains(">q1</text>"));

    // Another tenant's job is not found, as GET /v1/jobs/{id}; no key is 401.
    let r = drawing(&b, &id, "").await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.body["type"], "urn:kettle:problem:not-found");
    let r = drawing(&anon, &id, "").await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = drawing(&a, "00000000-0000-0000-0000-000000000000", "").await;
    assert_eq!(r.status, 404, "{}", r.body);
    // Bad queries are 400.
    for query in ["?fold=0", "?fold=101", "?fold=x", "?size=3"] {
        let r = drawing(&a, &id, query).await;
        assert_eq!(r.status, 400, "{query}: {}", r.body);
    }

    // A job is drawn whatever its status (this one is queued or running):
    // the drawing needs no result.
    let slow = submitted(
        a.post_job(
            job(
                &slow_program(18, 4000),
                json!({"result_types": [{"expectation": ["Z0"]}]}),
            ),
            "",
        )
        .await,
    );
    let r = drawing(&a, &slow, "?fold=10").await;
    let slow_svg = svg(&r);
    // 8000 operations: drawn up to the bound, the rest in the note.
    assert!(slow_svg.contains("data-operations=\"8000\""), "{slow_svg}");
    assert!(slow_svg.contains("more operations not drawn"));
    assert!(slow_svg.len() < 1 << 20, "{} bytes", slow_svg.len());
    let r = a
        .send(
            Method::DELETE,
            "/v1/jobs/{id}",
            &format!("/v1/jobs/{slow}"),
            None,
            &[],
        )
        .await;
    assert!([200, 202].contains(&r.status), "{}", r.body);
    server.server.unwrap().stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drawing_is_the_ir_the_job_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = in_process(test_config(dir.path()));
    let api = Api::new(server.base.clone(), None);

    // A sweep is drawn with its first execution's inputs; a gate defined in
    // the program is drawn as the gates it runs (the IR has no others).
    let source = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput float theta;\n\
                  gate pair a, b { h a; cx a, b; }\n\
                  qubit[3] q;\nbit[1] flag;\nbit[2] out;\n\
                  rx(theta) q[0];\npair q[1], q[2];\nreset q[2];\nbarrier q;\n\
                  flag[0] = measure q[0];\n\
                  if (flag[0]) { x q[1]; } else { z q[1]; }\n\
                  ctrl @ negctrl @ x q[0], q[1], q[2];\nswap q[0], q[2];\n\
                  out[0] = measure q[1];\nout[1] = measure q[2];\n";
    let body = json!({
        "program": {"format": "qasm3", "source": source},
        "inputs": {"theta": [std::f64::consts::FRAC_PI_2, 0.3]},
        "shots": 10,
    });
    let id = submitted(api.post_job(body, "?wait=30").await);
    let r = drawing(&api, &id, "").await;
    let s = svg(&r);
    assert!(s.contains(">Rx(π/2)</text>"), "{s}");
    assert!(!s.contains("Rx(0.3)"));
    // rx, h, cx, x, z, the controlled x, swap; three measurements; a reset,
    // a barrier; the if/else with its condition on `flag`.
    assert_eq!(ops(s, "gate"), 7, "{s}");
    assert_eq!(ops(s, "measure"), 3);
    assert_eq!(ops(s, "reset"), 1);
    assert_eq!(ops(s, "barrier"), 1);
    assert_eq!(ops(s, "if"), 1);
    assert!(s.contains("data-condition=\"flag==1\""), "{s}");
    assert!(s.contains(">else</text>"));
    assert!(s.contains("class=\"ctrl open\""));
    assert!(s.contains(">flag</text>") && s.contains(">out</text>"));
    assert!(
        s.contains("data-operations=\"13\" data-drawn=\"13\""),
        "{s}"
    );

    // Folding: 60 layers on one qubit in rows of 10, or of the default 20.
    let mut wide = String::from("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\n");
    for i in 0..60 {
        wide.push_str(&format!("rz({i}) q[0];\n"));
    }
    let id = submitted(
        api.post_job(
            job(&wide, json!({"result_types": ["statevector"]})),
            "?wait=30",
        )
        .await,
    );
    let r = drawing(&api, &id, "?fold=10").await;
    assert!(svg(&r).contains("data-rows=\"6\""));
    let r = drawing(&api, &id, "").await;
    assert!(svg(&r).contains("data-rows=\"3\""));

    // A program that unrolls to 600 000 operations is drawn quickly up to
    // the bound.
    let big = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[2] q;\n\
               for int i in [1:300000] { h q[0]; cx q[0], q[1]; }\n";
    let body =
        json!({"program": {"format": "qasm3", "source": big}, "result_types": ["statevector"]});
    let id = submitted(api.post_job(body, "").await);
    let started = Instant::now();
    let r = drawing(&api, &id, "").await;
    let s = svg(&r);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        s.contains("data-operations=\"600000\" data-drawn=\"500\""),
        "{}",
        s.chars().take(400).collect::<String>()
    );
    assert!(s.contains("… 599500 more operations not drawn"));
    assert!(s.len() < 1 << 20, "{} bytes", s.len());
    server.server.unwrap().stop().unwrap();
}
