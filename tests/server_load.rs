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
//!
//! [`store_benchmark`] (issue 16, also ignored) sets the stores side by
//! side in one run: one SQLite node, one PostgreSQL node and three
//! PostgreSQL nodes, each `kettle serve` processes, with PostgreSQL's own
//! counts of commits and statements per job:
//! `cargo test --release --test integration store_benchmark -- --ignored --nocapture`.

use std::io::Write;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::json;

use crate::reliability::cluster::Node;
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

/// POSTs from `clients` tasks for `duration` (at most `max` in all),
/// client `i` to `urls[i % urls.len()]` with `keys[i % keys.len()]` as
/// bearer token (none when `keys` is empty).
async fn load(
    urls: &[String],
    keys: &[String],
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
    for i in 0..clients {
        let (http, url, body) = (http.clone(), urls[i % urls.len()].clone(), body.clone());
        let key = (!keys.is_empty()).then(|| keys[i % keys.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while lat.len() < per_client && Instant::now() < deadline {
                let t = Instant::now();
                let mut req = http.post(&url).json(&body);
                if let Some(key) = &key {
                    req = req.bearer_auth(key);
                }
                let r = req.send().await.unwrap();
                let status = r.status();
                let v: serde_json::Value = r.json().await.unwrap();
                assert!(status.is_success(), "{status}: {v}");
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
            load(
                &[(*url).clone()],
                &[],
                &bell,
                clients,
                RUN / 4,
                MAX_REQUESTS,
            )
            .await;
        }
        let mut ratios = Vec::new();
        let mut kettle_p99 = Vec::new();
        for round in 1..=ROUNDS {
            let mut rate = Vec::new();
            for (name, url) in &targets {
                let f = load(&[(*url).clone()], &[], &bell, clients, RUN, MAX_REQUESTS).await;
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

/// Clients of the store benchmark.
const STORE_CLIENTS: usize = 64;
/// Length of one measured run of the store benchmark.
const STORE_RUN: Duration = Duration::from_secs(2);
/// Clients of the store benchmark's light-load pass: the latency of one
/// job through each store when requests seldom queue behind each other.
const STORE_LIGHT_CLIENTS: usize = 4;

/// One installation under load in the store benchmark.
struct Deployment {
    name: &'static str,
    nodes: Vec<Node>,
    /// One key per tenant; clients take them in turn.
    keys: Vec<String>,
    db: Db,
}

/// The jobs' database of a deployment, read from outside Kettle.
enum Db {
    Sqlite(sqlx::SqlitePool),
    /// The pool and the database's name (`pg_stat_*` count per database).
    Pg(sqlx::PgPool, String),
}

impl Db {
    /// Milliseconds from acceptance to start (`started_ms - created_ms`) of
    /// the jobs created since `since_ms`.
    async fn claim_latencies(&self, since_ms: i64) -> Vec<i64> {
        const Q: &str = "SELECT started_ms - created_ms FROM jobs \
                         WHERE created_ms >= $1 AND started_ms IS NOT NULL";
        match self {
            Db::Sqlite(p) => sqlx::query_scalar(Q).bind(since_ms).fetch_all(p).await,
            Db::Pg(p, _) => sqlx::query_scalar(Q).bind(since_ms).fetch_all(p).await,
        }
        .unwrap_or_default()
    }

    async fn jobs(&self) -> i64 {
        const Q: &str = "SELECT count(*) FROM jobs";
        match self {
            Db::Sqlite(p) => sqlx::query_scalar(Q).fetch_one(p).await,
            Db::Pg(p, _) => sqlx::query_scalar(Q).fetch_one(p).await,
        }
        .unwrap_or(0)
    }
}

/// What PostgreSQL has counted for one database: commits, rollbacks and
/// deadlocks, and statements with pg_stat_statements (when it is loaded).
#[derive(Clone, Copy, Debug, Default)]
struct PgCounts {
    commits: i64,
    rollbacks: i64,
    deadlocks: i64,
    statements: Option<i64>,
}

async fn pg_counts(admin: &sqlx::PgPool, datname: &str, statements: bool) -> PgCounts {
    let (commits, rollbacks, deadlocks) = sqlx::query_as(
        "SELECT xact_commit, xact_rollback, deadlocks FROM pg_stat_database WHERE datname = $1",
    )
    .bind(datname)
    .fetch_one(admin)
    .await
    .unwrap();
    let statements = if statements {
        sqlx::query_scalar(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)",
        )
        .bind(datname)
        .fetch_one(admin)
        .await
        .ok()
    } else {
        None
    };
    PgCounts {
        commits,
        rollbacks,
        deadlocks,
        statements,
    }
}

/// CPU ticks of the PostgreSQL server whose postmaster is `postmaster`:
/// its own, its ended children's, and its live children's.
fn pg_cpu_ticks(postmaster: u32) -> u64 {
    let stat = |pid: &str| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    let fields = |text: &str| -> Vec<u64> {
        text.rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect()
    };
    // From field 3 on: ppid is [1], utime [11], stime [12], cutime [13],
    // cstime [14].
    let mut ticks = stat(&postmaster.to_string())
        .map(|t| fields(&t))
        .map_or(0, |f| f[11] + f[12] + f[13] + f[14]);
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some(f) = stat(pid).map(|t| fields(&t))
            && f.len() > 12
            && f[1] == u64::from(postmaster)
        {
            ticks += f[11] + f[12];
        }
    }
    ticks
}

/// Clock ticks per second (`getconf CLK_TCK`, else 100).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Store benchmark (issue 16), ignored: one SQLite node, one PostgreSQL
/// node and three PostgreSQL nodes (clients spread over them), all
/// `kettle serve` processes of this build with keys required, measured in
/// the same run, rounds alternating. Bell jobs of 100 shots with `?wait`
/// from 64 clients: jobs/s, p50/p99; acceptance-to-start latency from the
/// store; PostgreSQL's commits and statements (pg_stat_statements) per
/// job and the CPU per job of PostgreSQL and of the nodes; then the
/// latency at light load (4 clients). PostgreSQL is a
/// server of its own, durable (fsync, full_page_writes, synchronous_commit
/// on) like the SQLite store's `synchronous = FULL`.
/// `cargo test --release --test integration store_benchmark -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run on demand"]
async fn store_benchmark() {
    use crate::reliability::cluster::{Node, cpu_ticks, create_key};
    use kettle_service::store::test_postgres::{own_server, skip_without_postgres};
    // A server of its own, made durable for the comparison, and with
    // pg_stat_statements to count statements.
    let server = match tokio::task::block_in_place(own_server) {
        Ok(server) => server,
        Err(why) => {
            skip_without_postgres(&why);
            return;
        }
    };
    tokio::task::block_in_place(|| {
        server.stop()?;
        server.start_with(&[
            "fsync=on",
            "full_page_writes=on",
            "synchronous_commit=on",
            "shared_preload_libraries=pg_stat_statements",
        ])
    })
    .unwrap();
    let (url1, url3) = (server.database().await, server.database().await);
    let mut out = std::io::stderr();
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&server.admin_url())
        .await
        .unwrap();
    let statements = sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&admin)
        .await
        .is_ok()
        && sqlx::raw_sql("SELECT pg_stat_statements_reset()")
            .execute(&admin)
            .await
            .is_ok();
    let mut settings = Vec::new();
    for name in [
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "server_version",
    ] {
        let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {name}")))
            .fetch_one(&admin)
            .await
            .unwrap();
        settings.push(format!("{name}={value}"));
    }
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&admin)
        .await
        .unwrap();
    let postmaster = std::fs::read_to_string(format!("/proc/{backend}/stat"))
        .ok()
        .and_then(|t| {
            t.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
        })
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "PostgreSQL: {}; pg_stat_statements {}",
        settings.join(", "),
        if statements {
            "loaded"
        } else {
            "not available"
        }
    );

    // The three installations.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().display());
    let env: [(&str, &str); 0] = [];
    let mut deployments = Vec::new();
    {
        let keys = vec![create_key(&sqlite, "bench")];
        let node = tokio::task::block_in_place(|| Node::start("sqlite", &sqlite, &env));
        let db = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(dir.path().join("kettle.db"))
                    .read_only(true),
            )
            .await
            .unwrap();
        deployments.push(Deployment {
            name: "sqlite×1",
            nodes: vec![node],
            keys,
            db: Db::Sqlite(db),
        });
    }
    // The last: three nodes again, with the clients spread over 8
    // tenants, since a submission counts its tenant's active jobs under a
    // lock of that tenant's.
    let url8 = server.database().await;
    for (name, url, count, tenants) in [
        ("pg×1", &url1, 1, 1),
        ("pg×3", &url3, 3, 1),
        ("pg×3 8t", &url8, 3, 8),
    ] {
        let url = url.clone();
        let keys = (0..tenants)
            .map(|t| create_key(&url, &format!("bench{t}")))
            .collect();
        let nodes = (0..count)
            .map(|i| {
                tokio::task::block_in_place(|| Node::start(&format!("{name}-{i}"), &url, &env))
            })
            .collect();
        let datname = url
            .rsplit_once('/')
            .map(|(_, d)| d.split('?').next().unwrap_or(d).to_owned())
            .unwrap();
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        deployments.push(Deployment {
            name,
            nodes,
            keys,
            db: Db::Pg(db, datname),
        });
    }
    let bell = job(BELL, json!({"shots": 100}));
    let urls = |d: &Deployment| -> Vec<String> {
        d.nodes
            .iter()
            .map(|n| format!("{}/v1/jobs?wait=30", n.base))
            .collect()
    };
    // `STORE_ONLY=pg×3` (names, comma-separated): those deployments alone,
    // for a profiler; the SQLite node is always kept, for the ratio.
    if let Ok(only) = std::env::var("STORE_ONLY") {
        let names: Vec<&str> = only.split(',').map(str::trim).collect();
        deployments.retain(|d| d.name == "sqlite×1" || names.contains(&d.name));
    }
    for d in &deployments {
        load(
            &urls(d),
            &d.keys,
            &bell,
            STORE_CLIENTS,
            RUN / 2,
            MAX_REQUESTS,
        )
        .await;
    }
    // Backends report their commits to pg_stat_database within seconds of
    // going idle (the statements' counts are current).
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut before = Vec::new();
    for d in &deployments {
        before.push(match &d.db {
            Db::Pg(_, datname) => Some(pg_counts(&admin, datname, statements).await),
            Db::Sqlite(_) => None,
        });
    }
    let jobs_before: Vec<i64> = {
        let mut v = Vec::new();
        for d in &deployments {
            v.push(d.db.jobs().await);
        }
        v
    };

    let tick_ms = 1000.0 / clock_ticks();
    let _ = writeln!(
        out,
        "{STORE_CLIENTS} clients, Bell 100 shots ?wait, keys required\n\
         round  deployment   jobs/s      p50      p99   node CPU ms/job   PG CPU ms/job"
    );
    let mut rows: Vec<Vec<(Figures, f64, f64)>> = vec![Vec::new(); deployments.len()];
    let mut claims: Vec<Vec<i64>> = vec![Vec::new(); deployments.len()];
    for round in 1..=ROUNDS {
        for (i, d) in deployments.iter().enumerate() {
            let pids: Vec<u32> = d.nodes.iter().filter_map(Node::pid).collect();
            let node_cpu = || pids.iter().map(|p| cpu_ticks(*p)).sum::<u64>();
            let (n0, p0) = (node_cpu(), pg_cpu_ticks(postmaster));
            let since = kettle_service::now_ms();
            let f = load(
                &urls(d),
                &d.keys,
                &bell,
                STORE_CLIENTS,
                STORE_RUN,
                MAX_REQUESTS,
            )
            .await;
            let jobs = f.per_second * STORE_RUN.as_secs_f64();
            let node_ms = (node_cpu() - n0) as f64 * tick_ms / jobs;
            let pg_ms = (pg_cpu_ticks(postmaster) - p0) as f64 * tick_ms / jobs;
            claims[i].extend(d.db.claim_latencies(since).await);
            let _ = writeln!(
                out,
                "{round:>5}  {:<10} {:>8.0}  {:>7.2?}  {:>7.2?}   {node_ms:>15.2}   {pg_ms:>13.2}",
                d.name, f.per_second, f.p50, f.p99
            );
            rows[i].push((f, node_ms, pg_ms));
        }
    }
    tokio::time::sleep(Duration::from_secs(11)).await;

    let _ = writeln!(
        out,
        "\nmedians of {ROUNDS} rounds:\n\
         deployment   jobs/s  vs sqlite    p50      p99   start p50/p99 ms   commits/job   statements/job   node CPU ms/job   PG CPU ms/job"
    );
    let mut notes = Vec::new();
    let sqlite_rate = median(rows[0].iter().map(|r| r.0.per_second).collect());
    for (i, d) in deployments.iter().enumerate() {
        let rate = median(rows[i].iter().map(|r| r.0.per_second).collect());
        let p50 = median(
            rows[i]
                .iter()
                .map(|r| r.0.p50.as_secs_f64() * 1e3)
                .collect(),
        );
        let p99 = median(
            rows[i]
                .iter()
                .map(|r| r.0.p99.as_secs_f64() * 1e3)
                .collect(),
        );
        let node_ms = median(rows[i].iter().map(|r| r.1).collect());
        let pg_ms = median(rows[i].iter().map(|r| r.2).collect());
        let c = &mut claims[i];
        c.sort_unstable();
        let start = if c.is_empty() {
            "n/a".to_owned()
        } else {
            format!(
                "{}/{}",
                c[c.len() / 2],
                c[(c.len() * 99 / 100).min(c.len() - 1)]
            )
        };
        let jobs = (d.db.jobs().await - jobs_before[i]).max(1) as f64;
        let (commits, stmts) = match (&d.db, before[i]) {
            (Db::Pg(_, datname), Some(b)) => {
                let a = pg_counts(&admin, datname, statements).await;
                notes.push(format!(
                    "{}: {} rollbacks, {} deadlocks in the measured rounds",
                    d.name,
                    a.rollbacks - b.rollbacks,
                    a.deadlocks - b.deadlocks
                ));
                (
                    format!("{:.2}", (a.commits - b.commits) as f64 / jobs),
                    a.statements
                        .zip(b.statements)
                        .map_or("n/a".to_owned(), |(a, b)| {
                            format!("{:.2}", (a - b) as f64 / jobs)
                        }),
                )
            }
            _ => ("-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(
            out,
            "{:<10} {rate:>8.0}  {:>8.0}%  {p50:>5.2}  {p99:>7.2}   {start:>16}   {commits:>11}   {stmts:>14}   {node_ms:>15.2}   {}",
            d.name,
            100.0 * rate / sqlite_rate,
            if matches!(d.db, Db::Pg(..)) {
                format!("{pg_ms:>13.2}")
            } else {
                format!("{:>13}", "-")
            }
        );
    }
    for note in notes {
        let _ = writeln!(out, "{note}");
    }
    // Light load: latency rather than throughput (at 64 clients the
    // latency is mostly the queue: 64 / jobs per second).
    let _ = writeln!(
        out,
        "\n{STORE_LIGHT_CLIENTS} clients (light load), medians of {ROUNDS} rounds:\n\
         deployment   jobs/s      p50      p99"
    );
    let mut light: Vec<Vec<Figures>> = vec![Vec::new(); deployments.len()];
    for _ in 0..ROUNDS {
        for (i, d) in deployments.iter().enumerate() {
            light[i].push(
                load(
                    &urls(d),
                    &d.keys,
                    &bell,
                    STORE_LIGHT_CLIENTS,
                    STORE_RUN,
                    MAX_REQUESTS,
                )
                .await,
            );
        }
    }
    for (i, d) in deployments.iter().enumerate() {
        let f = &light[i];
        let ms = |pick: fn(&Figures) -> Duration| {
            median(f.iter().map(|r| pick(r).as_secs_f64() * 1e3).collect())
        };
        let _ = writeln!(
            out,
            "{:<10} {:>8.0}  {:>5.2}  {:>7.2}",
            d.name,
            median(f.iter().map(|r| r.per_second).collect()),
            ms(|r| r.p50),
            ms(|r| r.p99)
        );
    }
    if statements {
        // What the statements are, per job, for each PostgreSQL deployment.
        for d in &deployments {
            let Db::Pg(_, datname) = &d.db else {
                continue;
            };
            let jobs = d.db.jobs().await.max(1) as f64;
            let top: Vec<(String, i64, f64)> = sqlx::query_as(
                "SELECT regexp_replace(left(query, 90), '\\s+', ' ', 'g'), calls::bigint, \
                 mean_exec_time FROM pg_stat_statements \
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) \
                 ORDER BY calls DESC LIMIT 12",
            )
            .bind(datname)
            .fetch_all(&admin)
            .await
            .unwrap_or_default();
            let _ = writeln!(
                out,
                "\n{} statements (all its jobs, warm-up included): calls/job, mean ms, statement",
                d.name
            );
            for (query, calls, mean) in top {
                let _ = writeln!(out, "{:>6.2}  {mean:>6.3}  {query}", calls as f64 / jobs);
            }
        }
    }
    drop(deployments);
}
