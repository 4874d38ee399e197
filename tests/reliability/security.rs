//! Security: tenant isolation on every route, keys hashed at rest, no file
//! opened for a request, and local (no-key) mode kept on loopback.

use std::path::Path;
use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::server_util::*;

const SECRET_NAME: &str = "alice-secret-job-name";
const SECRET_TAG: &str = "alice-secret-tag-value";

/// A 404 problem with every mention of `id` blanked, to compare answers
/// about another tenant's job with answers about no job at all.
fn shape(r: &Reply, id: &str) -> (u16, String) {
    (r.status, r.body.to_string().replace(id, "ID"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_shows_or_touches_another_tenants_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let alice_key = kettle_server::keys_create(dir.path(), "alice").unwrap();
    let bob_key = kettle_server::keys_create(dir.path(), "bob").unwrap();
    let mut config = test_config(dir.path());
    config.workers = Some(1);
    // Alice's own limits must not show in Bob's backend description.
    config
        .tenants
        .insert("alice".into(), kettle_service::TenantLimits::default());
    let server = in_process(config);
    let alice = Api::new(server.base.clone(), Some(&alice_key.key));
    let bob = Api::new(server.base.clone(), Some(&bob_key.key));

    let tagged = json!({"shots": 10, "name": SECRET_NAME, "tags": {"project": SECRET_TAG}});
    let done = alice
        .post_job(job(BELL, tagged.clone()), "?wait=30")
        .await
        .body;
    let done_id = done["id"].as_str().unwrap().to_owned();
    // One job running and one queued behind it (one worker).
    let (running_id, queued) = alice.one_running_rest_queued(20_000, [1]).await;
    let queued_id = queued[0].0.clone();
    let keyed = alice
        .send(
            Method::POST,
            "/v1/jobs",
            "/v1/jobs",
            Some(RawBody::Json(job(BELL, tagged.clone()))),
            &[("Idempotency-Key", "shared-key")],
        )
        .await;
    assert_eq!(keyed.status, 201);

    let nobody = bob
        .get_job("0190f0f0-0000-7000-8000-000000000000", "")
        .await;
    for id in [&done_id, &running_id, &queued_id] {
        // Reads, with and without a wait, look exactly as for no job.
        for query in ["", "?wait=1", "?keys=hex"] {
            let r = bob.get_job(id, query).await;
            assert_eq!(
                shape(&r, id),
                shape(&nobody, "0190f0f0-0000-7000-8000-000000000000")
            );
        }
        // Both ways to cancel.
        let path = format!("/v1/jobs/{id}");
        let r = bob
            .send(Method::DELETE, "/v1/jobs/{id}", &path, None, &[])
            .await;
        assert_eq!(r.status, 404, "{}", r.body);
        let path = format!("/v1/jobs/{id}/cancel");
        let r = bob
            .send(Method::POST, "/v1/jobs/{id}/cancel", &path, None, &[])
            .await;
        assert_eq!(r.status, 404, "{}", r.body);
    }
    // Bob's cancels did nothing.
    for id in [&running_id, &queued_id] {
        let status = alice.get_job(id, "").await.body["status"].clone();
        assert!(status == "running" || status == "queued", "{status}");
    }
    // Lists: every status filter, and Alice's own cursor.
    let alice_page = alice
        .send(Method::GET, "/v1/jobs", "/v1/jobs?limit=1", None, &[])
        .await
        .body;
    let cursor = alice_page["next_cursor"].as_str().unwrap().to_owned();
    for query in [
        "".to_owned(),
        "?status=completed".into(),
        "?status=running".into(),
        "?status=queued".into(),
        format!("?limit=1&cursor={cursor}"),
    ] {
        let path = format!("/v1/jobs{query}");
        let r = bob.send(Method::GET, "/v1/jobs", &path, None, &[]).await;
        assert!(
            r.status == 400 || r.body["jobs"] == json!([]),
            "{path}: {}",
            r.body
        );
    }
    // The same idempotency key is Bob's own: a new job, not Alice's.
    let bobs = bob
        .send(
            Method::POST,
            "/v1/jobs",
            "/v1/jobs",
            Some(RawBody::Json(job(BELL, json!({"shots": 5})))),
            &[("Idempotency-Key", "shared-key")],
        )
        .await;
    assert_eq!(bobs.status, 201, "{}", bobs.body);
    assert_ne!(bobs.body["id"], keyed.body["id"]);
    // Nothing Bob can read names Alice, her jobs, names or tags.
    let backend = bob
        .send(Method::GET, "/v1/backend", "/v1/backend", None, &[])
        .await;
    let anonymous = Api::new(server.base.clone(), None);
    let metrics = anonymous
        .send(Method::GET, "/metrics", "/metrics", None, &[])
        .await;
    assert_eq!(metrics.status, 200);
    let bob_list = bob
        .send(Method::GET, "/v1/jobs", "/v1/jobs", None, &[])
        .await;
    for (what, text) in [
        ("backend", backend.body.to_string()),
        ("metrics", metrics.body.to_string()),
        ("list", bob_list.body.to_string()),
    ] {
        for secret in [
            SECRET_NAME,
            SECRET_TAG,
            "alice",
            &done_id,
            &running_id,
            &queued_id,
        ] {
            assert!(!text.contains(secret), "{what} shows `{secret}`");
        }
    }
    let cancel = alice
        .send(
            Method::DELETE,
            "/v1/jobs/{id}",
            &format!("/v1/jobs/{running_id}"),
            None,
            &[],
        )
        .await;
    assert!(cancel.status == 200 || cancel.status == 202);
    server.server.unwrap().stop().unwrap();
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap_or_default());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_stored_only_as_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let created = kettle_server::keys_create(dir.path(), "carol").unwrap();
    let server = in_process(test_config(dir.path()));
    let api = Api::new(server.base.clone(), Some(&created.key));
    let r = api.post_job(job(BELL, json!({})), "?wait=30").await;
    assert_eq!(r.status, 201);
    server.server.unwrap().stop().unwrap();
    let secret = created.key.rsplit('_').next().unwrap();
    assert!(secret.len() >= 64, "{}", created.key);
    let bytes = all_bytes(dir.path());
    assert!(!bytes.is_empty());
    assert!(
        !contains(&bytes, created.key.as_bytes()),
        "the key is stored"
    );
    assert!(!contains(&bytes, secret.as_bytes()), "the secret is stored");
    assert!(
        !contains(&bytes, &secret.as_bytes()[..16]),
        "part of the secret is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn includes_never_read_files_from_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    // A file that would make the program valid if the server read it.
    let inc = files.path().join("evil.inc");
    std::fs::write(&inc, "gate evil a { x a; }\n").unwrap();
    let inc = inc.to_str().unwrap();
    let server = in_process(test_config(dir.path()));
    let api = Api::new(server.base.clone(), None);
    let cases = [
        (
            "qasm2",
            format!("OPENQASM 2.0;\ninclude \"{inc}\";\nqreg q[1];\nevil q[0];\n"),
        ),
        (
            "qasm2",
            "OPENQASM 2.0;\ninclude \"evil.inc\";\nqreg q[1];\n".to_owned(),
        ),
        (
            "qasm2",
            "OPENQASM 2.0;\ninclude \"/etc/passwd\";\nqreg q[1];\n".to_owned(),
        ),
        (
            "qasm2",
            "OPENQASM 2.0;\ninclude \"../../../../etc/passwd\";\nqreg q[1];\n".to_owned(),
        ),
        (
            "qasm3",
            format!("OPENQASM 3.0;\ninclude \"{inc}\";\nqubit q;\nevil q;\n"),
        ),
        (
            "qasm3",
            "OPENQASM 3.0;\ninclude \"/etc/passwd\";\nqubit q;\n".to_owned(),
        ),
    ];
    for (format, source) in cases {
        let body = json!({"program": {"format": format, "source": source}});
        let r = api.post_job(body, "").await;
        assert_eq!(r.status, 422, "{source}: {}", r.body);
        assert_eq!(r.body["type"], "urn:kettle:problem:invalid-program");
        assert_eq!(r.body["line"], 2, "{}", r.body);
        assert!(r.body["column"].as_u64().is_some(), "{}", r.body);
        let text = r.body.to_string();
        assert!(
            !text.contains("root:") && !text.contains("gate evil"),
            "{text}"
        );
    }
    server.server.unwrap().stop().unwrap();
}

/// `kettle serve` without keys on a public address, as a user types it.
fn serve_without_keys(addr: &str, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args(["serve", "--addr", addr, "--data-dir"])
        .arg(dir.path())
        .args(extra)
        .env("KETTLE_SHUTDOWN_GRACE_SECONDS", "1")
        .output()
        .unwrap()
}

#[test]
fn local_mode_stays_on_loopback_unless_forced() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let out = serve_without_keys(addr, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{addr}: {stderr}");
        assert!(stderr.contains("--insecure-no-auth"), "{addr}: {stderr}");
    }
    // The flag is the only way round.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kettle"))
        .args([
            "serve",
            "--addr",
            "0.0.0.0:0",
            "--insecure-no-auth",
            "--data-dir",
        ])
        .arg(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("listening on") {
        use std::io::Read;
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "the forced server exited: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("LOCAL MODE"), "{seen}");
    child.kill().unwrap();
    child.wait().unwrap();
}
