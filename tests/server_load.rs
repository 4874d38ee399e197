//! The load benchmark (ignored: run on demand with
//! `cargo test --release --test integration server_load -- --ignored --nocapture`).
//! Bounded and loopback-only: Bell-state jobs with 1000 shots submitted with
//! `?wait=30` to a server with the durable store, from 1 and from 64
//! concurrent clients, for a fixed count of requests each; then the same
//! load against a trivial actix-web handler in the same process, for the
//! ratio. Figures go to stderr. `LOAD_ONLY=kettle64` (target and client
//! count) runs one scenario alone, for a profiler.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

use crate::server_util::*;

/// (requests per second, p50, p99) of `total` POSTs from `clients` tasks.
async fn load(
    url: &str,
    body: &serde_json::Value,
    clients: usize,
    total: usize,
) -> (f64, Duration, Duration) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let per = total / clients;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, body) = (http.clone(), url.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                let r = http.post(&url).json(&body).send().await.unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                let v: serde_json::Value = r.json().await.unwrap();
                assert!(v["status"] == "completed" || v["ok"] == true, "{v}");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    (all.len() as f64 / secs, pct(0.50), pct(0.99))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run on demand"]
async fn load_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let server = in_process(test_config(dir.path()));
    let kettle_url = format!("{}/v1/jobs?wait=30", server.base);
    let bell = job(BELL, json!({"shots": 1000}));

    let trivial = HttpServer::new(|| {
        App::new().route(
            "/",
            web::post().to(|_: web::Bytes| async { HttpResponse::Ok().json(json!({"ok": true})) }),
        )
    })
    .bind("127.0.0.1:0")
    .unwrap();
    let trivial_addr = trivial.addrs()[0];
    let trivial = trivial.run();
    let handle = trivial.handle();
    tokio::spawn(trivial);
    let trivial_url = format!("http://{trivial_addr}/");

    let mut out = std::io::stderr();
    let _ = writeln!(out, "clients  target   req/s    p50      p99");
    let results = Arc::new(std::sync::Mutex::new(Vec::new()));
    for clients in [1usize, 64] {
        // Enough requests for steady figures on a shared machine, still
        // bounded (a few seconds).
        let total = if clients == 1 { 1000 } else { 6400 };
        for (name, url, body) in [
            ("kettle", &kettle_url, &bell),
            ("trivial", &trivial_url, &bell),
        ] {
            if std::env::var("LOAD_ONLY").is_ok_and(|o| o != format!("{name}{clients}")) {
                continue;
            }
            // Warm-up (connections, caches), then the measured run.
            load(url, body, clients, clients * 2).await;
            let (rps, p50, p99) = load(url, body, clients, total).await;
            let _ = writeln!(
                out,
                "{clients:>7}  {name:<7} {rps:>7.0}  {p50:>7.2?}  {p99:>7.2?}"
            );
            results.lock().unwrap().push((clients, name, rps, p99));
        }
    }
    for clients in [1usize, 64] {
        if std::env::var("LOAD_ONLY").is_ok() {
            break;
        }
        let r = results.lock().unwrap();
        let k = r
            .iter()
            .find(|x| x.0 == clients && x.1 == "kettle")
            .unwrap();
        let t = r
            .iter()
            .find(|x| x.0 == clients && x.1 == "trivial")
            .unwrap();
        let _ = writeln!(
            out,
            "{clients} clients: kettle/trivial throughput = {:.1}%",
            100.0 * k.2 / t.2
        );
    }
    handle.stop(true).await;
    server.server.unwrap().stop().unwrap();
}
