//! The job API over real HTTP on 127.0.0.1: submit / wait / poll / list /
//! cancel, every result type against the core, auth and tenant isolation,
//! idempotency, each limit, bad programs and malformed JSON. Every response
//! is checked against `openapi.yaml` (status declared, body matches its
//! schema), and the server's route table must equal the document's.

use reqwest::Method;
use serde_json::{Value, json};

use crate::server_util::*;

#[test]
fn routes_match_the_openapi_document() {
    let mut served: Vec<(String, String)> = kettle_server::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    served.sort();
    assert_eq!(served, spec_routes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_poll_list_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let server = in_process(test_config(dir.path()));
    let api = Api::new(server.base.clone(), None);

    // One round trip for a small job.
    let r = api
        .post_job(job(BELL, json!({"shots": 1000, "seed": 7})), "?wait=30")
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.headers["location"], format!("/v1/jobs/{id}").as_str());
    assert_eq!(r.body["status"], "completed");
    assert_eq!(
        r.body["result"]["executions"][0]["counts"],
        core_counts(BELL, 1000, 7)
    );
    assert_eq!(r.body["seed"], 7);
    assert_eq!(r.body["attempts"], 1);

    // Without a seed one is chosen, stored and reported.
    let r = api.post_job(job(BELL, json!({"shots": 100})), "").await;
    assert_eq!(r.status, 201);
    let id2 = r.body["id"].as_str().unwrap().to_owned();
    let done = api.get_job(&id2, "?wait=30").await.body;
    assert_eq!(done["status"], "completed");
    let seed = done["seed"].as_u64().unwrap();
    assert_eq!(
        done["result"]["executions"][0]["counts"],
        core_counts(BELL, 100, seed)
    );
    let hex = api.get_job(&id2, "?keys=hex").await.body;
    let keys: Vec<&String> = hex["result"]["executions"][0]["counts"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert!(keys.iter().all(|k| *k == "0x0" || *k == "0x3"), "{keys:?}");

    // A long job: running, then cancelled at the next gate.
    let slow = job(
        &slow_program(20, 40_000),
        json!({"result_types": ["statevector"]}),
    );
    let slow_id = api.post_job(slow, "").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.until(&slow_id, "running").await;
    let r = api
        .send(
            Method::DELETE,
            "/v1/jobs/{id}",
            &format!("/v1/jobs/{slow_id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.body["cancel_requested"], true);
    let r = api.get_job(&slow_id, "?wait=30").await;
    assert_eq!(r.body["status"], "cancelled", "{}", r.body);
    // A finished job cannot be cancelled.
    let r = api
        .send(
            Method::POST,
            "/v1/jobs/{id}/cancel",
            &format!("/v1/jobs/{slow_id}/cancel"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["type"], "urn:kettle:problem:already-finished");

    // List, newest first, by pages.
    let r = api
        .send(Method::GET, "/v1/jobs", "/v1/jobs?limit=2", None, &[])
        .await;
    let ids: Vec<&str> = r.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [slow_id.as_str(), id2.as_str()]);
    let cursor = r.body["next_cursor"].as_str().unwrap();
    let r = api
        .send(
            Method::GET,
            "/v1/jobs",
            &format!("/v1/jobs?limit=2&cursor={cursor}"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.body["jobs"][0]["id"], id.as_str());
    assert!(r.body.get("next_cursor").is_none());
    let r = api
        .send(
            Method::GET,
            "/v1/jobs",
            "/v1/jobs?status=cancelled",
            None,
            &[],
        )
        .await;
    assert_eq!(r.body["jobs"].as_array().unwrap().len(), 1);
    let r = api
        .send(Method::GET, "/v1/jobs", "/v1/jobs?status=nope", None, &[])
        .await;
    assert_eq!(r.status, 400);

    // Health, readiness, backend, metrics.
    assert_eq!(
        api.send(Method::GET, "/healthz", "/healthz", None, &[])
            .await
            .status,
        200
    );
    assert_eq!(
        api.send(Method::GET, "/readyz", "/readyz", None, &[])
            .await
            .status,
        200
    );
    let b = api
        .send(Method::GET, "/v1/backend", "/v1/backend", None, &[])
        .await
        .body;
    assert_eq!(b["local_mode"], true);
    assert_eq!(b["simd"], kettle_core::cpu::simd_level().name());
    assert!(b["max_qubits"]["f32"].as_u64() > b["max_qubits"]["f64"].as_u64());
    let m = api
        .send(Method::GET, "/metrics", "/metrics", None, &[])
        .await
        .body;
    let m = m.as_str().unwrap();
    for name in [
        "kettle_queue_depth",
        "kettle_jobs{status=\"completed\"}",
        "kettle_simulation_seconds_bucket",
        "kettle_http_requests_total",
    ] {
        assert!(m.contains(name), "/metrics lacks {name}:\n{m}");
    }
    server.server.unwrap().stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_result_type_agrees_with_the_core() {
    let dir = tempfile::tempdir().unwrap();
    let server = in_process(test_config(dir.path()));
    let api = Api::new(server.base.clone(), None);
    let ghz = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[3];\ncreg c[3];\nh q[0];\ncx q[0], q[1];\nry(0.7) q[2];\nmeasure q -> c;\n";
    let circuit = kettle::qasm::parse_qasm2(ghz, &Default::default()).unwrap();
    let state = kettle::Simulator::new()
        .run::<f64>(
            &circuit,
            &kettle::RunOptions {
                shots: 0,
                seed: Some(1),
                keep_state: true,
                ..Default::default()
            },
        )
        .unwrap()
        .state
        .unwrap();
    let zz: kettle::PauliSum = "Z0 Z1 + 0.5*Z2".parse().unwrap();
    let expect = state
        .expectation(&zz, &kettle::Parallelism::Sequential)
        .unwrap();
    for precision in ["f64", "f32"] {
        let tol = if precision == "f64" { 1e-12 } else { 1e-6 };
        let body = job(
            ghz,
            json!({"shots": 300, "seed": 3, "precision": precision,
                   "result_types": ["counts", "memory", "probabilities", "statevector", {"expectation": ["Z0 Z1 + 0.5*Z2"]}]}),
        );
        let r = api.post_job(body, "?wait=30").await;
        assert_eq!(r.body["status"], "completed", "{}", r.body);
        let e = &r.body["result"]["executions"][0];
        if precision == "f64" {
            assert_eq!(e["counts"], core_counts(ghz, 300, 3));
        }
        // Memory: one outcome per shot, which tally to the counts.
        let memory = e["memory"].as_array().unwrap();
        assert_eq!(memory.len(), 300);
        let mut tally = serde_json::Map::new();
        for shot in memory {
            let n = tally.entry(shot.as_str().unwrap()).or_insert(json!(0));
            *n = json!(n.as_u64().unwrap() + 1);
        }
        assert_eq!(Value::Object(tally), e["counts"]);
        let id = r.body["id"].as_str().unwrap();
        let hex = api.get_job(id, "?keys=hex").await.body;
        let hex_memory = hex["result"]["executions"][0]["memory"].as_array().unwrap();
        for (bits, hex) in memory.iter().zip(hex_memory) {
            let value = u64::from_str_radix(bits.as_str().unwrap(), 2).unwrap();
            assert_eq!(hex.as_str().unwrap(), format!("{value:#x}"));
        }
        let sv = e["statevector"].as_array().unwrap();
        for (i, amp) in state.to_vec_f64().iter().enumerate() {
            assert!((sv[i][0].as_f64().unwrap() - amp.re).abs() < tol);
            assert!((sv[i][1].as_f64().unwrap() - amp.im).abs() < tol);
        }
        let probs = e["probabilities"].as_object().unwrap();
        let (c, s) = (0.35f64.cos().powi(2) / 2.0, 0.35f64.sin().powi(2) / 2.0);
        for (k, p) in [("000", c), ("011", c), ("100", s), ("111", s)] {
            assert!(
                (probs[k].as_f64().unwrap() - p).abs() < tol,
                "{k}: {probs:?}"
            );
        }
        assert!((e["expectations"][0]["value"].as_f64().unwrap() - expect).abs() < tol);
    }
    // Kettle's JSON circuit format.
    let json_circuit = kettle::qasm::to_json(&circuit);
    let r = api
        .post_job(
            json!({"program": {"format": "json", "source": json_circuit}, "shots": 50, "seed": 9}),
            "?wait=30",
        )
        .await;
    assert_eq!(
        r.body["result"]["executions"][0]["counts"],
        core_counts(ghz, 50, 9)
    );
    // Exact gradients (opt-in), in both precisions, against the core's.
    let source = "OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput float[64] a;\ninput angle b;\n\
        qubit[2] q;\nbit[2] c;\nry(2*a) q[0];\ncx q[0], q[1];\nrz(b - a) q[1];\nh q[1];\nc = measure q;\n";
    let circuit = kettle::qasm::parse_qasm3(
        source,
        &kettle::qasm::ParseOptions {
            inputs: [("a".to_string(), 0.3), ("b".to_string(), 1.1)].into(),
            ..Default::default()
        },
    )
    .unwrap();
    let observable: kettle::PauliSum = "X1 + 0.5*Z0 Z1".parse().unwrap();
    let angles: Vec<kettle::AngleRef> = [0, 2]
        .into_iter()
        .map(|op| kettle::AngleRef { op, param: 0 })
        .collect();
    let core = kettle::Simulator::new()
        .adjoint_gradient::<f64>(&circuit, std::slice::from_ref(&observable), &angles)
        .unwrap();
    // ∂/∂a = 2·∂/∂θ_ry − ∂/∂θ_rz; ∂/∂b = ∂/∂θ_rz.
    let (da, db) = (
        2.0 * core[0].angles[0] - core[0].angles[1],
        core[0].angles[1],
    );
    for precision in ["f64", "f32"] {
        let tol = if precision == "f64" { 1e-10 } else { 1e-5 };
        let r = api
            .post_job(
                json!({"program": {"format": "qasm3", "source": source},
                       "inputs": {"a": 0.3, "b": 1.1}, "precision": precision,
                       "result_types": [{"adjoint_gradient": {"observables": ["X1 + 0.5*Z0 Z1"]}}]}),
                "?wait=30",
            )
            .await;
        assert_eq!(r.body["status"], "completed", "{}", r.body);
        let g = &r.body["result"]["executions"][0]["gradients"][0];
        assert_eq!(g["observable"], "X1 + 0.5*Z0 Z1");
        assert!(
            (g["value"].as_f64().unwrap() - core[0].value).abs() < tol,
            "{g}"
        );
        assert!(
            (g["gradient"]["a"].as_f64().unwrap() - da).abs() < tol,
            "{g}"
        );
        assert!(
            (g["gradient"]["b"].as_f64().unwrap() - db).abs() < tol,
            "{g}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_authenticate_and_tenants_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let alice = kettle_server::keys_create(dir.path(), "alice").unwrap();
    let bob = kettle_server::keys_create(dir.path(), "bob").unwrap();
    assert!(kettle_server::keys_create(dir.path(), "no spaces").is_err());
    let server = in_process(test_config(dir.path()));
    assert!(!server.server.as_ref().unwrap().local_mode());
    let anon = Api::new(server.base.clone(), None);
    let r = anon.post_job(job(BELL, json!({})), "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let forged = Api::new(server.base.clone(), Some(&format!("{}x", alice.key)));
    assert_eq!(forged.post_job(job(BELL, json!({})), "").await.status, 401);
    let a = Api::new(server.base.clone(), Some(&alice.key));
    let b = Api::new(server.base.clone(), Some(&bob.key));
    let id = a.post_job(job(BELL, json!({})), "?wait=30").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = b.get_job(&id, "").await;
    assert_eq!(r.status, 404, "another tenant's job is not found");
    let r = b
        .send(
            Method::DELETE,
            "/v1/jobs/{id}",
            &format!("/v1/jobs/{id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 404);
    let r = b.send(Method::GET, "/v1/jobs", "/v1/jobs", None, &[]).await;
    assert_eq!(r.body["jobs"], json!([]));
    assert_eq!(a.get_job(&id, "").await.status, 200);
    let keys = kettle_server::keys_list(dir.path()).unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .all(|k| !alice.key.contains(&format!("_{}", k.tenant)))
    );
    // Revocation takes effect on the running server.
    assert!(kettle_server::keys_revoke(dir.path(), &alice.id).unwrap());
    assert_eq!(a.get_job(&id, "").await.status, 401);
    server.server.unwrap().stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_make_retries_safe() {
    let dir = tempfile::tempdir().unwrap();
    let server = in_process(test_config(dir.path()));
    let api = Api::new(server.base.clone(), None);
    let body = job(BELL, json!({"shots": 10}));
    let send = |b: Value| {
        let api = api.clone();
        async move {
            api.send(
                Method::POST,
                "/v1/jobs",
                "/v1/jobs",
                Some(RawBody::Json(b)),
                &[("Idempotency-Key", "retry-1")],
            )
            .await
        }
    };
    let first = send(body.clone()).await;
    let again = send(body.clone()).await;
    assert_eq!((first.status, again.status), (201, 200));
    assert_eq!(first.body["id"], again.body["id"]);
    assert_eq!(
        first.body["seed"], again.body["seed"],
        "the chosen seed is the job's"
    );
    let other = send(job(BELL, json!({"shots": 11}))).await;
    assert_eq!(other.status, 409);
    assert_eq!(
        other.body["type"],
        "urn:kettle:problem:idempotency-conflict"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_bad_input_get_clear_4xx_problems() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.workers = Some(1);
    config.memory_budget = bytesize_mib(64);
    config.limits.max_qubits = 24;
    config.limits.max_shots = 5000;
    config.limits.max_active_jobs = 2;
    config.limits.max_request_bytes = 4 << 20;
    config.max_json_depth = 8;
    let server = in_process(config);
    let api = Api::new(server.base.clone(), None);
    let problem = |r: &Reply, status: u16, code: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(
            r.body["type"],
            format!("urn:kettle:problem:{code}"),
            "{}",
            r.body
        );
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/problem+json")
        );
    };
    // Programs: line and column, or a JSON path.
    let r = api
        .post_job(job("OPENQASM 2.0;\nqreg q[1];\nfoo q[0];\n", json!({})), "")
        .await;
    problem(&r, 422, "invalid-program");
    assert_eq!(
        (r.body["line"].as_u64(), r.body["column"].as_u64()),
        (Some(3), Some(1))
    );
    let r = api
        .post_job(json!({"program": {"format": "json", "source": "{\"format\": \"kettle.circuit\", \"version\": 1, \"qubits\": -1, \"ops\": []}"}}), "")
        .await;
    problem(&r, 422, "invalid-program");
    assert!(
        r.body["path"].as_str().unwrap().starts_with('$'),
        "{}",
        r.body
    );
    // A body sent as anything but JSON is refused (a browser sends text/plain
    // or a form across sites without asking); one with no type is taken.
    let body = job(BELL, json!({"shots": 10})).to_string();
    for media in [
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
    ] {
        let resp = (api.http.post(format!("{}/v1/jobs", api.base)))
            .header("content-type", media)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415, "{media}");
        let text = resp.text().await.unwrap();
        assert!(
            text.contains("unsupported-media-type") && text.contains(media),
            "{text}"
        );
    }
    // (Waited for: with at most 2 active jobs, a later part of this test
    // needs both slots.)
    let resp = (api.http.post(format!("{}/v1/jobs?wait=30", api.base)))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let done: Value = resp.json().await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    // Local mode on loopback answers only requests addressed to localhost
    // or an IP: a page's own name pointed at 127.0.0.1 (DNS rebinding) is
    // refused before it can submit or read anything.
    for (host, status) in [
        ("evil.example:8080", 403),
        ("localhost:8080", 200),
        ("127.0.0.1", 200),
    ] {
        let resp = (api.http.get(format!("{}/v1/jobs", api.base)))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{host}");
        let text = resp.text().await.unwrap();
        if status == 403 {
            assert!(
                text.contains("host-not-allowed") && text.contains("evil.example"),
                "{text}"
            );
        }
    }
    // In local mode, requests that change jobs must come from no browser
    // page or from the server's own: a page elsewhere can make a browser
    // POST a Blob body (no Content-Type, no preflight) or DELETE.
    let own = api.base.clone();
    let small = job(BELL, json!({"shots": 10})).to_string();
    for (method, path, origin, status) in [
        ("POST", "/v1/jobs?wait=30", "http://evil.example", 403),
        ("POST", "/v1/jobs?wait=30", "null", 403),
        ("DELETE", "/v1/jobs/nope", "http://evil.example", 403),
        ("POST", "/v1/jobs/nope/cancel", "https://127.0.0.1", 403),
        ("GET", "/v1/jobs", "http://evil.example", 200),
        ("POST", "/v1/jobs?wait=30", own.as_str(), 201),
    ] {
        let url = format!("{}{path}", api.base);
        let req = match method {
            "POST" => api.http.post(url).body(small.clone()),
            "DELETE" => api.http.delete(url),
            _ => api.http.get(url),
        };
        let resp = req.header("origin", origin).send().await.unwrap();
        assert_eq!(resp.status(), status, "{method} {path} from {origin}");
        let text = resp.text().await.unwrap();
        if status == 403 {
            assert!(text.contains("origin-not-allowed"), "{text}");
        }
    }
    // A compressed body is refused, not read as JSON: this server decodes
    // no content coding.
    let resp = (api.http.post(format!("{}/v1/jobs", api.base)))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(small.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert_eq!(
        resp.headers()
            .get("accept-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("identity")
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("unsupported-content-encoding") && text.contains("gzip"),
        "{text}"
    );
    // Malformed JSON, wrong fields, too deep.
    let raw = |b: &str| RawBody::Bytes(b.as_bytes().to_vec());
    let r = api
        .send(
            Method::POST,
            "/v1/jobs",
            "/v1/jobs",
            Some(raw("{\n \"program\": ")),
            &[],
        )
        .await;
    problem(&r, 400, "malformed-request");
    assert_eq!(r.body["line"], 2);
    let r = api
        .send(
            Method::POST,
            "/v1/jobs",
            "/v1/jobs",
            Some(raw(
                "{\"program\": {\"format\": \"qasm2\", \"source\": \"\"}, \"shotz\": 1}",
            )),
            &[],
        )
        .await;
    problem(&r, 400, "malformed-request");
    assert!(r.body["detail"].as_str().unwrap().contains("shotz"));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = api
        .send(Method::POST, "/v1/jobs", "/v1/jobs", Some(raw(&deep)), &[])
        .await;
    problem(&r, 400, "malformed-request");
    let r = api
        .send(
            Method::POST,
            "/v1/jobs",
            "/v1/jobs",
            Some(RawBody::Bytes(vec![0xff, 0xfe])),
            &[],
        )
        .await;
    problem(&r, 400, "malformed-request");
    // Limits, with the numbers.
    let r = api
        .post_job(
            job(
                "OPENQASM 2.0;\nqreg q[25];\n",
                json!({"result_types": [{"expectation": ["Z0"]}]}),
            ),
            "",
        )
        .await;
    problem(&r, 422, "limit-exceeded");
    assert_eq!(r.body["limit"], "max_qubits");
    let r = api.post_job(job(BELL, json!({"shots": 5001})), "").await;
    problem(&r, 422, "limit-exceeded");
    let r = api
        .post_job(
            job(
                "OPENQASM 2.0;\nqreg q[23];\n",
                json!({"result_types": [{"expectation": ["Z0"]}]}),
            ),
            "",
        )
        .await;
    problem(&r, 413, "too-large");
    assert!(r.body["needed"].as_str().unwrap().parse::<u64>().unwrap() > 64 << 20);
    let r = api
        .post_job(
            job(BELL, json!({"result_types": ["statevector"], "shots": 0})),
            "",
        )
        .await;
    assert_eq!(
        r.status, 201,
        "statevector before final measurements: {}",
        r.body
    );
    let big = "x".repeat(5 << 20);
    let r = api.post_job(job(&big, json!({})), "").await;
    problem(&r, 413, "request-too-large");
    let r = api
        .post_job(job(BELL, json!({"result_types": []})), "")
        .await;
    problem(&r, 422, "invalid-request");
    let r = api
        .post_job(
            job(BELL, json!({"shots": 10, "inputs": {"theta": [0.1, 0.2]}})),
            "",
        )
        .await;
    problem(&r, 422, "invalid-program");
    // Too many active jobs: 429 with Retry-After.
    let slow = job(
        &slow_program(18, 60_000),
        json!({"result_types": ["statevector"]}),
    );
    let s1 = api.post_job(slow.clone(), "").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let s2 = api.post_job(slow.clone(), "").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api.post_job(slow, "").await;
    problem(&r, 429, "too-many-jobs");
    assert!(r.headers.contains_key("retry-after"));
    for id in [&s1, &s2] {
        let r = api
            .send(
                Method::POST,
                "/v1/jobs/{id}/cancel",
                &format!("/v1/jobs/{id}/cancel"),
                None,
                &[],
            )
            .await;
        assert!(r.status == 200 || r.status == 202, "{}", r.body);
    }
    // Routes, methods and query parameters.
    let r = api.send(Method::GET, "", "/v2/nothing", None, &[]).await;
    problem(&r, 404, "no-such-route");
    let r = api.send(Method::PUT, "", "/v1/jobs", None, &[]).await;
    problem(&r, 405, "method-not-allowed");
    let r = api.get_job("no-such-job", "").await;
    problem(&r, 404, "not-found");
    let r = api.get_job(&s1, "?wait=-1").await;
    problem(&r, 400, "malformed-request");
    let r = api.get_job(&s1, "?wait=abc").await;
    problem(&r, 400, "malformed-request");
    server.server.unwrap().stop().unwrap();
}

/// What tests/reliability/schemathesis.sh found, kept fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_findings_stay_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let server = in_process(test_config(dir.path()));
    let api = Api::new(server.base.clone(), None);

    // An integer written as a float with no fraction (JSON Schema's
    // `integer` includes `100.0`) is that integer; a fraction is not.
    let r = api
        .post_job(
            job(BELL, json!({"shots": 100.0, "seed": 7.0, "priority": -1.0})),
            "?wait=30",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        (&r.body["shots"], &r.body["seed"]),
        (&json!(100), &json!(7))
    );
    assert_eq!(r.body["priority"], -1);
    assert_eq!(
        r.body["result"]["executions"][0]["counts"],
        core_counts(BELL, 100, 7)
    );
    let r = api.post_job(job(BELL, json!({"shots": 100.5})), "").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["line"], 1);

    // `null` is the same as absent where openapi.yaml says so; elsewhere it
    // is a 400 that does not call the JSON invalid.
    let r = api
        .post_job(
            job(
                BELL,
                json!({"shots": null, "seed": null, "name": null, "result_types": null}),
            ),
            "",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["shots"], 1024);
    let r = api
        .post_job(job(BELL, json!({"precision": null})), "")
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains("does not match the job schema"), "{detail}");

    // `?status=` (empty) is not a status.
    let r = api
        .send(Method::GET, "/v1/jobs", "/v1/jobs?status=", None, &[])
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // A method a resource does not serve is a 405 problem whose `Allow`
    // lists the methods of ROUTES (which equal openapi.yaml's) for its path,
    // and HEAD where there is GET.
    let id = "00000000-0000-0000-0000-000000000000";
    let mut paths: Vec<&str> = kettle_server::ROUTES.iter().map(|(_, p)| *p).collect();
    paths.sort_unstable();
    paths.dedup();
    for template in paths {
        let path = template.replace("{id}", id);
        let mut want: Vec<String> = (kettle_server::ROUTES.iter())
            .filter(|(_, p)| *p == template)
            .map(|(m, _)| m.to_uppercase())
            .collect();
        if want.iter().any(|m| m == "GET") {
            // Every GET answers HEAD too (RFC 9110): same status and
            // headers, no body.
            want.push("HEAD".into());
            let url = format!("{}{path}", api.base);
            let auth = |r: reqwest::RequestBuilder| match &api.key {
                Some(k) => r.bearer_auth(k),
                None => r,
            };
            let get = auth(api.http.get(&url)).send().await.unwrap();
            let (get_status, get_type) = (get.status(), get.headers()["content-type"].clone());
            let get_body = get.bytes().await.unwrap();
            let head = auth(api.http.head(&url)).send().await.unwrap();
            assert_eq!(head.status(), get_status, "HEAD {path}");
            assert_eq!(head.headers()["content-type"], get_type, "HEAD {path}");
            if !["/metrics", "/v1/jobs"].contains(&template) {
                // (Metrics change with every request, and the job list as
                // the test's earlier jobs run.)
                assert_eq!(
                    head.headers()["content-length"].to_str().unwrap(),
                    get_body.len().to_string(),
                    "HEAD {path}"
                );
            }
            assert!(head.bytes().await.unwrap().is_empty(), "HEAD {path}");
        }
        want.sort();
        let r = api.send(Method::PATCH, "", &path, None, &[]).await;
        assert_eq!(r.status, 405, "PATCH {path}: {}", r.body);
        let mut allow: Vec<String> = r.headers["allow"]
            .to_str()
            .unwrap()
            .split(", ")
            .map(str::to_owned)
            .collect();
        allow.sort();
        assert_eq!(allow, want, "PATCH {path}");
        assert_eq!(r.headers["content-type"], "application/problem+json");
        assert_eq!(r.body["type"], "urn:kettle:problem:method-not-allowed");
    }
    server.server.unwrap().stop().unwrap();
}

fn bytesize_mib(n: u64) -> bytesize::ByteSize {
    bytesize::ByteSize::mib(n)
}

#[test]
fn local_mode_refuses_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.addr = "0.0.0.0:0".parse().unwrap();
    let err = kettle_server::spawn(config.clone()).unwrap_err();
    assert!(
        matches!(err, kettle_server::ServerError::Insecure(_)),
        "{err}"
    );
    config.insecure_no_auth = true;
    kettle_server::spawn(config).unwrap().stop().unwrap();
}
