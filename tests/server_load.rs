//! The load benchmark (ignored: run on demand with
//! `cargo test --release --test integration server_load -- --ignored --nocapture`).
//! Bounded and loopback-only: Bell-state jobs with 1000 shots submitted with
//! `?wait=30` to a server with the durable store, from 1 and from 64
//! concurrent clients; and the same load against a trivial actix-web handler
//! in the same process, for the ratio. The machine is shared and noisy, so
//! the two targets alternate, three rounds of about a second each (and at
//! most 50,000 requests), and the ratio of each round is reported with the
//! median. Figures go to stderr. `LOAD_ONLY=kettle64` (target and client
//! count) runs that scenario alone, for a profiler.

use std::io::Write;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

use crate::server_util::*;

/// Length of one measured run.
const RUN: Duration = Duration::from_secs(1);
/// Most requests of one run.
const MAX_REQUESTS: usize = 50_000;
/// Measured rounds per client count.
const ROUNDS: usize = 3;

/// One run's figures.
#[derive(Clone, Copy, Debug)]
struct Figures {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

/// POSTs from `clients` tasks for `duration` (at most `max` in all).
async fn load(
    url: &str,
    body: &serde_json::Value,
    clients: usize,
    duration: Duration,
    max: usize,
) -> Figures {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let per_client = max.div_ceil(clients);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, body) = (http.clone(), url.to_owned(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while lat.len() < per_client && Instant::now() < deadline {
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
    Figures {
        per_second: all.len() as f64 / secs,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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

    let only = std::env::var("LOAD_ONLY").ok();
    let mut out = std::io::stderr();
    let _ = writeln!(out, "clients  round  target     req/s       p50       p99");
    for clients in [1usize, 64] {
        let targets = [("kettle", &kettle_url), ("trivial", &trivial_url)];
        let targets: Vec<_> = targets
            .into_iter()
            .filter(|(name, _)| {
                only.as_ref()
                    .is_none_or(|o| *o == format!("{name}{clients}"))
            })
            .collect();
        if targets.is_empty() {
            continue;
        }
        // Warm-up: connections, caches, the database file.
        for (_, url) in &targets {
            load(url, &bell, clients, RUN / 4, MAX_REQUESTS).await;
        }
        let mut ratios = Vec::new();
        let mut kettle_p99 = Vec::new();
        for round in 1..=ROUNDS {
            let mut rate = Vec::new();
            for (name, url) in &targets {
                let f = load(url, &bell, clients, RUN, MAX_REQUESTS).await;
                let _ = writeln!(
                    out,
                    "{clients:>7}  {round:>5}  {name:<7} {:>8.0}  {:>8.2?}  {:>8.2?}",
                    f.per_second, f.p50, f.p99
                );
                if *name == "kettle" {
                    kettle_p99.push(f.p99.as_secs_f64() * 1e3);
                }
                rate.push(f.per_second);
            }
            if let [kettle, trivial] = rate[..] {
                ratios.push(kettle / trivial);
            }
        }
        if !ratios.is_empty() {
            let _ = writeln!(
                out,
                "{clients} clients: kettle/trivial throughput per round {}; median {:.1}%; kettle p99 median {:.1} ms",
                ratios
                    .iter()
                    .map(|r| format!("{:.1}%", 100.0 * r))
                    .collect::<Vec<_>>()
                    .join(", "),
                100.0 * median(ratios.clone()),
                median(kettle_p99),
            );
        }
    }
    handle.stop(true).await;
    server.server.unwrap().stop().unwrap();
}
