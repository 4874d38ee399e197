//! Helpers for the HTTP tests: a server on 127.0.0.1 (in-process on a free
//! port, or a child process that can be killed), a client that checks every
//! response against `openapi.yaml`, and the programs the tests submit.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use kettle_server::{ServerConfig, ServerThread};
use reqwest::Method;
use serde_json::{Value, json};

pub(crate) const BELL: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0], q[1];\nmeasure q -> c;\n";

/// A program that runs for a while: dense gates on `qubits` qubits.
pub(crate) fn slow_program(qubits: u32, layers: u32) -> String {
    let mut s = format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{qubits}];\n");
    for i in 0..layers {
        let q = i % qubits;
        s.push_str(&format!(
            "u3(0.1,0.2,{}) q[{q}];\ncx q[{q}], q[{}];\n",
            i % 7,
            (q + 1) % qubits
        ));
    }
    s
}

/// A job body.
pub(crate) fn job(source: &str, extra: Value) -> Value {
    let mut body = json!({"program": {"format": "qasm2", "source": source}});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

/// The test configuration: a fresh data folder, a free port, small pools.
pub(crate) fn test_config(dir: &Path) -> ServerConfig {
    ServerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        workers: Some(2),
        sim_threads: Some(1),
        shutdown_grace_seconds: 1,
        ..ServerConfig::default()
    }
}

/// The OpenAPI document as JSON.
fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
            .expect("openapi.yaml is readable");
        serde_norway::from_str(&text).expect("openapi.yaml is YAML")
    })
}

/// Resolves a local `$ref` in the document.
fn deref(v: &Value) -> &Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            spec()
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"))
        }
        None => v,
    }
}

/// (method, path) pairs the document declares.
pub(crate) fn spec_routes() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in spec()["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                out.push((method.to_owned(), path.clone()));
            }
        }
    }
    out.sort();
    out
}

/// Checks that `status` with `body` (of `content_type`) is a response the
/// document declares for `method` on `template`, and that the body matches
/// its schema.
pub(crate) fn check_against_spec(
    method: &str,
    template: &str,
    status: u16,
    content_type: &str,
    body: &Value,
) {
    let op = &spec()["paths"][template][method];
    assert!(op.is_object(), "openapi.yaml has no {method} {template}");
    let declared = op["responses"].get(status.to_string()).unwrap_or_else(|| {
        panic!("openapi.yaml declares no {status} for {method} {template}: {body}")
    });
    let declared = deref(declared);
    let media = content_type.split(';').next().unwrap_or("").trim();
    let Some(content) = declared.get("content") else {
        return;
    };
    let schema = content
        .get(media)
        .unwrap_or_else(|| panic!("{method} {template} {status}: undeclared content type {media}"))
        .get("schema")
        .cloned()
        .unwrap_or(Value::Bool(true));
    if media == "text/plain" {
        return;
    }
    // Validate with the whole document as the root, so `$ref`s resolve.
    let mut root = spec().clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    if let Value::Object(map) = &schema {
        for (k, v) in map {
            root[k] = v.clone();
        }
    }
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .expect("the response schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {status}: the body does not match openapi.yaml: {errors:?}\n{body}"
    );
}

/// A response, already checked against the document.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) headers: reqwest::header::HeaderMap,
}

/// A client for one server, optionally with a key.
#[derive(Clone, Debug)]
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) key: Option<String>,
    pub(crate) http: reqwest::Client,
}

impl Api {
    pub(crate) fn new(base: String, key: Option<&str>) -> Api {
        Api {
            base,
            key: key.map(str::to_owned),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    /// Sends a request; `template` names the documented route it targets.
    pub(crate) async fn send(
        &self,
        method: Method,
        template: &str,
        path: &str,
        body: Option<RawBody>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        for (h, v) in headers {
            req = req.header(*h, *v);
        }
        match body {
            Some(RawBody::Json(v)) => req = req.json(&v),
            Some(RawBody::Bytes(b)) => {
                req = req.header("content-type", "application/json").body(b);
            }
            None => {}
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = resp.text().await.unwrap();
        assert!(
            status < 500 || status == 503,
            "{method} {path} gave {status}: {text}"
        );
        let body = if content_type.contains("json") {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"))
        } else {
            Value::String(text)
        };
        if content_type.contains("problem+json") {
            assert_eq!(body["status"], json!(status), "problem status: {body}");
        }
        if !template.is_empty() {
            check_against_spec(
                &method.as_str().to_lowercase(),
                template,
                status,
                &content_type,
                &body,
            );
        }
        Reply {
            status,
            body,
            headers,
        }
    }

    pub(crate) async fn post_job(&self, body: Value, query: &str) -> Reply {
        self.send(
            Method::POST,
            "/v1/jobs",
            &format!("/v1/jobs{query}"),
            Some(RawBody::Json(body)),
            &[],
        )
        .await
    }

    pub(crate) async fn get_job(&self, id: &str, query: &str) -> Reply {
        self.send(
            Method::GET,
            "/v1/jobs/{id}",
            &format!("/v1/jobs/{id}{query}"),
            None,
            &[],
        )
        .await
    }

    /// Polls until the job has `status` (or panics after a minute).
    pub(crate) async fn until(&self, id: &str, status: &str) -> Value {
        for _ in 0..600 {
            let r = self.get_job(id, "").await;
            if r.body["status"] == status {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("job {id} never became {status}");
    }

    /// Submits a slow job (`slow_program(18, layers)`, ⟨Z0⟩ only), then a
    /// Bell job of 100 shots for each seed, and waits until the slow one
    /// runs: its id, and each Bell job's id with its seed.
    pub(crate) async fn one_running_rest_queued(
        &self,
        layers: u32,
        seeds: impl IntoIterator<Item = u64>,
    ) -> (String, Vec<(String, u64)>) {
        let slow = self
            .post_job(
                job(
                    &slow_program(18, layers),
                    json!({"result_types": [{"expectation": ["Z0"]}]}),
                ),
                "",
            )
            .await;
        assert_eq!(slow.status, 201, "{}", slow.body);
        let slow_id = slow.body["id"].as_str().unwrap().to_owned();
        let mut queued = Vec::new();
        for seed in seeds {
            let r = self
                .post_job(job(BELL, json!({"shots": 100, "seed": seed})), "")
                .await;
            assert_eq!(r.status, 201, "{}", r.body);
            queued.push((r.body["id"].as_str().unwrap().to_owned(), seed));
        }
        self.until(&slow_id, "running").await;
        (slow_id, queued)
    }
}

/// A request body: JSON, or raw bytes (malformed on purpose).
#[derive(Debug)]
pub(crate) enum RawBody {
    Json(Value),
    Bytes(Vec<u8>),
}

/// A server running in this process.
#[derive(Debug)]
pub(crate) struct InProcess {
    pub(crate) server: Option<ServerThread>,
    pub(crate) base: String,
}

pub(crate) fn in_process(config: ServerConfig) -> InProcess {
    let server = kettle_server::spawn(config).expect("the server starts");
    let base = format!("http://{}", server.addr());
    InProcess {
        server: Some(server),
        base,
    }
}

/// `kettle serve` in a child process, as a user starts it, which a test can
/// SIGKILL.
#[derive(Debug)]
pub(crate) struct ChildServer {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl ChildServer {
    pub(crate) fn start(dir: &Path) -> ChildServer {
        ChildServer::start_with(dir, &[("KETTLE_WORKERS", "1")])
    }

    /// Starts with `KETTLE_*` settings in `env` (a configuration as an
    /// operator gives it).
    pub(crate) fn start_with(dir: &Path, env: &[(&str, &str)]) -> ChildServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kettle"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .envs(env.iter().copied())
            .env("KETTLE_SIM_THREADS", "1")
            .env("KETTLE_SHUTDOWN_GRACE_SECONDS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the test binary starts as a server");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // What the server said before it listened: the reason it did not.
        let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let heard = std::sync::Arc::clone(&said);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                } else if tx.is_some() {
                    heard.lock().unwrap().push(line);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| {
                panic!(
                    "the child server did not say where it listens ({e}); it said:\n{}",
                    said.lock().unwrap().join("\n")
                )
            });
        ChildServer {
            child,
            base: format!("http://{addr}"),
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The counts the core gives for `source` with this seed and shots.
pub(crate) fn core_counts(source: &str, shots: u64, seed: u64) -> Value {
    let circuit = kettle::qasm::parse_qasm2(source, &Default::default()).unwrap();
    let out = kettle::Simulator::new()
        .run::<f64>(
            &circuit,
            &kettle::RunOptions {
                shots,
                seed: Some(seed),
                keep_state: false,
                ..Default::default()
            },
        )
        .unwrap();
    serde_json::to_value(out.counts.to_bitstrings()).unwrap()
}
