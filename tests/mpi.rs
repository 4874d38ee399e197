//! `kettle run` under a real `mpirun` (Open MPI), the state split over 2, 4
//! and 8 ranks (`--oversubscribe`: this may be a 2-core machine), against
//! the same binary run alone. Needs the binary built with `--features mpi`
//! and `mpirun` on the PATH; without either these tests say so in one line
//! and pass, unless `KETTLE_REQUIRE_MPI=1` (CI), where that is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::kettle;

/// Why MPI runs cannot be tested here, if they cannot.
fn unavailable() -> Option<String> {
    if !cfg!(feature = "mpi") {
        return Some("the kettle binary was built without --features mpi".into());
    }
    let found = Command::new("mpirun").arg("--version").output();
    match found {
        Ok(o) if o.status.success() => None,
        _ => Some("no mpirun on the PATH (Debian: apt install openmpi-bin libopenmpi-dev)".into()),
    }
}

/// Whether to go on; prints the one-line skip (or fails under CI).
fn mpi_available() -> bool {
    let Some(why) = unavailable() else {
        return true;
    };
    if std::env::var("KETTLE_REQUIRE_MPI").is_ok_and(|v| v == "1") {
        panic!("MPI tests cannot run ({why}) and KETTLE_REQUIRE_MPI=1");
    }
    // The one line a skipped test prints: the point is that it is seen.
    #[allow(clippy::print_stderr)]
    {
        eprintln!("skipped: no MPI ({why})");
    }
    false
}

/// `mpirun -np ranks kettle args…`.
fn mpirun(ranks: usize, args: &[&str]) -> Output {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "-np", &ranks.to_string()]);
    // Open MPI refuses root unless told; CI containers run as root.
    cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    // One thread per rank: the ranks share this machine's cores.
    cmd.arg(env!("CARGO_BIN_EXE_kettle"))
        .args(&args[..1])
        .arg("--threads=1")
        .args(&args[1..])
        .output()
        .expect("mpirun runs")
}

/// A state written by `--state-out` (f64).
fn read_state(path: &Path) -> Vec<(f64, f64)> {
    let bytes = std::fs::read(path).expect("state file");
    bytes
        .chunks_exact(16)
        .map(|c| {
            let f = |b: &[u8]| f64::from_le_bytes(b.try_into().expect("8 bytes"));
            (f(&c[..8]), f(&c[8..]))
        })
        .collect()
}

fn max_diff(a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x.0 - y.0).hypot(x.1 - y.1))
        .fold(0.0, f64::max)
}

/// A seeded random circuit on `n` qubits with final measurements.
fn random_qasm(n: u32, gates: usize, seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut s = format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\ncreg c[{n}];\n");
    for _ in 0..gates {
        let a = next(u64::from(n));
        let b = (a + 1 + next(u64::from(n) - 1)) % u64::from(n);
        let c = (0..u64::from(n))
            .find(|&c| c != a && c != b)
            .expect("n > 2");
        let angle = next(6283) as f64 / 1000.0;
        let line = match next(10) {
            0 => format!("h q[{a}];"),
            1 => format!("rx({angle}) q[{a}];"),
            2 => format!("ry({angle}) q[{a}];"),
            3 => format!("rz({angle}) q[{a}];"),
            4 => format!("cx q[{a}],q[{b}];"),
            5 => format!("cz q[{a}],q[{b}];"),
            6 => format!("swap q[{a}],q[{b}];"),
            7 => format!("cu1({angle}) q[{a}],q[{b}];"),
            8 => format!("ccx q[{a}],q[{b}],q[{c}];"),
            _ => format!("u3({angle},0.3,0.7) q[{a}];"),
        };
        s.push_str(&line);
        s.push('\n');
    }
    s.push_str("measure q -> c;\n");
    s
}

/// The repository's example programs (`circuits/qasm2`, `circuits/qasm3`).
fn example_circuits() -> Vec<PathBuf> {
    ["circuits/qasm2", "circuits/qasm3"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(d)
                .expect("circuits")
                .map(|e| e.expect("entry").path())
        })
        .filter(|p| p.extension().is_some_and(|e| e == "qasm"))
        .collect()
}

/// A seeded random dynamic circuit on `n` qubits: `random_qasm`'s gates,
/// with mid-circuit measurements into a 2-bit register `m`, resets, and
/// gates conditioned on `m`, then every qubit measured into `c`.
fn random_dynamic_qasm(n: u32, gates: usize, seed: u64) -> String {
    let plain = random_qasm(n, gates, seed);
    let mut x = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut s = String::new();
    for line in plain.lines() {
        if line.starts_with("measure") {
            continue;
        }
        s.push_str(line);
        s.push('\n');
        if line.starts_with("creg") {
            s.push_str("creg m[2];\n");
        }
        if !line.ends_with(';') || line.starts_with("OPENQASM") || line.contains("reg") {
            continue;
        }
        let a = next(u64::from(n));
        let b = (a + 1 + next(u64::from(n) - 1)) % u64::from(n);
        match next(12) {
            0 => s.push_str(&format!("measure q[{a}] -> m[{}];\n", next(2))),
            1 => s.push_str(&format!("reset q[{a}];\n")),
            2 => s.push_str(&format!("if(m=={}) x q[{a}];\n", next(4))),
            3 => s.push_str(&format!("if(m=={}) cx q[{a}],q[{b}];\n", next(4))),
            _ => {}
        }
    }
    s.push_str("measure q -> c;\n");
    s
}

/// Circuits with mid-circuit measurement, reset and classical control (the
/// repository's and seeded random ones) give the single process's counts
/// for a seed across ranks.
#[test]
fn dynamic_circuits_count_as_the_single_process() {
    if !mpi_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files: Vec<PathBuf> = example_circuits()
        .into_iter()
        .filter(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            text.contains("reset") || text.contains("if")
        })
        .collect();
    for (i, (n, seed)) in [(8u32, 1u64), (9, 2), (10, 3), (11, 4)]
        .into_iter()
        .enumerate()
    {
        let path = dir.path().join(format!("dynamic{i}.qasm"));
        std::fs::write(&path, random_dynamic_qasm(n, 120, seed)).expect("write");
        files.push(path);
    }
    files.sort();
    let counts = |out: &Output| -> serde_json::Value {
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        json["counts"].clone()
    };
    let mut compared = 0;
    for file in &files {
        let file = file.to_str().expect("utf-8 path");
        let args = ["run", file, "--json", "--shots", "3000", "--seed", "9"];
        let alone = kettle(&args);
        assert!(alone.status.success(), "{file}: {alone:?}");
        for ranks in [2, 4, 8] {
            let out = mpirun(ranks, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("per slice; the widest gate needs") {
                continue;
            }
            assert!(out.status.success(), "{file} on {ranks} ranks: {stderr}");
            assert_eq!(counts(&out), counts(&alone), "{file} on {ranks} ranks");
            compared += 1;
        }
    }
    assert!(compared >= 14, "only {compared} distributed runs compared");
}

/// The repository's example circuits and seeded random ones: the state
/// after a distributed run equals the single process's to 1e-12.
#[test]
fn distributed_states_equal_the_single_process() {
    if !mpi_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = example_circuits();
    for (i, (n, seed)) in [(9u32, 1u64), (12, 2), (14, 3)].into_iter().enumerate() {
        let path = dir.path().join(format!("random{i}.qasm"));
        std::fs::write(&path, random_qasm(n, 300, seed)).expect("write");
        files.push(path);
    }
    files.sort();
    let mut compared = 0;
    for file in &files {
        let file = file.to_str().expect("utf-8 path");
        let alone = dir.path().join("alone.bin");
        let out = kettle(&[
            "run",
            file,
            "--state-out",
            alone.to_str().unwrap(),
            "--seed",
            "5",
        ]);
        if String::from_utf8_lossy(&out.stderr).contains("no value was given for input") {
            // A parameterised program (vqe_ansatz): covered elsewhere.
            continue;
        }
        assert!(out.status.success(), "{file}: {out:?}");
        if !alone.exists() {
            // Mid-circuit measurement: no single state to compare.
            continue;
        }
        let expect = read_state(&alone);
        for ranks in [2, 4, 8] {
            let split = dir.path().join(format!("split{ranks}.bin"));
            let out = mpirun(
                ranks,
                &[
                    "run",
                    file,
                    "--state-out",
                    split.to_str().unwrap(),
                    "--seed",
                    "5",
                ],
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("per slice; the widest gate needs") {
                // Too few qubits for this many ranks: a clear error.
                assert_eq!(out.status.code(), Some(2), "{file} {ranks}: {stderr}");
                continue;
            }
            assert!(out.status.success(), "{file} on {ranks} ranks: {stderr}");
            let diff = max_diff(&read_state(&split), &expect);
            assert!(diff < 1e-12, "{file} on {ranks} ranks: {diff:e}");
            std::fs::remove_file(&split).expect("remove");
            compared += 1;
        }
        std::fs::remove_file(&alone).expect("remove");
    }
    assert!(compared >= 20, "only {compared} distributed runs compared");
}

/// Counts are printed once, by rank 0, and equal a single process's for
/// the same seed.
#[test]
fn counts_are_printed_once_and_follow_the_seed() {
    if !mpi_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ghz.qasm");
    let mut src =
        String::from("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[12];\ncreg c[12];\nh q[0];\n");
    for q in 1..12 {
        src.push_str(&format!("cx q[{}],q[{q}];\n", q - 1));
    }
    src.push_str("measure q -> c;\n");
    std::fs::write(&path, src).expect("write");
    let file = path.to_str().unwrap();
    let run = || {
        let out = mpirun(
            4,
            &["run", file, "--json", "--shots", "2000", "--seed", "11"],
        );
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(text.lines().count(), 1, "one JSON line from rank 0: {text}");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        json["counts"].clone()
    };
    let first = run();
    let counts = first.as_object().expect("counts");
    assert_eq!(counts.len(), 2, "{counts:?}");
    let total: u64 = counts.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, 2000);
    for key in ["000000000000", "111111111111"] {
        let k = counts[key].as_u64().unwrap();
        assert!((850..1150).contains(&k), "{key}: {k}");
    }
    assert_eq!(run(), first, "same seed, same counts");
    // The same counts as one process with the same seed (the ranks sweep
    // their slices in turn with the single process's sorted uniforms).
    let random = dir.path().join("random.qasm");
    std::fs::write(&random, random_qasm(14, 250, 21)).expect("write");
    let random = random.to_str().unwrap();
    let counts = |out: Output| {
        assert!(out.status.success(), "{out:?}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        json["counts"].clone()
    };
    let args = ["run", random, "--json", "--shots", "5000", "--seed", "3"];
    let alone = counts(kettle(&args));
    for ranks in [2, 4, 8] {
        assert_eq!(counts(mpirun(ranks, &args)), alone, "{ranks} ranks");
    }
    // Three ranks cannot split a state.
    let out = mpirun(3, &["run", file]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("power of two"));
}

/// The README's MPI commands, as written, with this build's `kettle` first
/// on the PATH.
#[test]
fn the_readme_commands_for_mpi_run() {
    if !mpi_available() {
        return;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_kettle"))
        .parent()
        .expect("bin dir");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for line in crate::readme::readme_block("Past one machine: MPI ranks") {
        let out = Command::new("sh")
            .args(["-c", &line])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PATH", &path)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .output()
            .expect("sh runs");
        assert!(out.status.success(), "{line}: {out:?}");
        assert!(!out.stdout.is_empty(), "{line}: no output");
    }
}

/// `--probabilities` and `--expect` across ranks equal the single process's.
#[test]
fn probabilities_and_expectations_equal_the_single_process() {
    if !mpi_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("random.qasm");
    std::fs::write(&path, random_qasm(11, 200, 9)).expect("write");
    let file = path.to_str().unwrap();
    let args = [
        "run",
        file,
        "--json",
        "--shots",
        "0",
        "--probabilities",
        "--expect",
        "Z0 Z10",
        "--expect",
        "X10",
        "--expect",
        "0.5 * Y9 X1 + 0.2 * Z3",
    ];
    let values = |out: Output| {
        assert!(out.status.success(), "{out:?}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        (json["probabilities"].clone(), json["expectation"].clone())
    };
    let (p1, e1) = values(kettle(&args));
    assert!(p1.as_object().is_some_and(|p| !p.is_empty()), "{p1}");
    for ranks in [2, 4, 8] {
        let (p, e) = values(mpirun(ranks, &args));
        let p1 = p1.as_object().unwrap();
        let p = p.as_object().expect("probabilities");
        assert_eq!(p.len(), p1.len());
        for (k, v) in p1 {
            let d = (v.as_f64().unwrap() - p[k].as_f64().unwrap()).abs();
            assert!(d < 1e-12, "{ranks} ranks, {k}: {d:e}");
        }
        for (a, b) in e1.as_array().unwrap().iter().zip(e.as_array().unwrap()) {
            let d = (a["value"].as_f64().unwrap() - b["value"].as_f64().unwrap()).abs();
            assert!(d < 1e-12, "{ranks} ranks, {}: {d:e}", a["observable"]);
        }
    }
}

/// `mpirun -np ranks kettle job-run --threads=1` with `job` on its
/// standard input (rank 0's).
fn job_run(ranks: usize, job: &[u8]) -> Output {
    job_run_with(ranks, job, &[])
}

/// `job_run` with more arguments of `kettle job-run`.
fn job_run_with(ranks: usize, job: &[u8], args: &[&str]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new("mpirun")
        .args(["--oversubscribe", "-np", &ranks.to_string()])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .arg(env!("CARGO_BIN_EXE_kettle"))
        .args(["job-run", "--threads=1"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun starts");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(job).expect("job written");
    drop(stdin);
    child.wait_with_output().expect("mpirun ends")
}

/// A `kettle job-run` input: the service's job for `request`, admitted
/// under the default limits, as JSON.
fn rank_job(request: serde_json::Value) -> Vec<u8> {
    let request: kettle_service::JobRequest = serde_json::from_value(request).expect("request");
    let limits = kettle_service::TenantLimits::default();
    let job = kettle_service::RankJob {
        spec: kettle_service::check_request(&request, &limits, 1 << 30, 20).expect("admitted"),
        limits,
        max_listed_qubits: 20,
    };
    serde_json::to_vec(&job).expect("json")
}

/// A job of the service run by `kettle job-run` across ranks: its counts
/// are those of `kettle run` with the execution's seed, printed once; a
/// job that does not read fails on every rank with one message.
#[test]
fn a_service_job_runs_across_ranks() {
    if !mpi_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let source = random_dynamic_qasm(9, 80, 7);
    let path = dir.path().join("job.qasm");
    std::fs::write(&path, &source).expect("write");
    let job = rank_job(serde_json::json!({
        "program": {"format": "qasm2", "source": source},
        "shots": 2000,
        "seed": 41,
        "result_types": ["counts", "memory"],
    }));
    let alone = kettle(&[
        "run",
        path.to_str().unwrap(),
        "--json",
        "--shots",
        "2000",
        "--seed",
        "41",
    ]);
    assert!(alone.status.success(), "{alone:?}");
    let alone: serde_json::Value = serde_json::from_slice(&alone.stdout).expect("json");
    for ranks in [2, 4] {
        let out = job_run(ranks, &job);
        assert!(out.status.success(), "{ranks} ranks: {out:?}");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        assert_eq!(text.lines().count(), 1, "one line, from rank 0: {text}");
        let result: kettle_service::JobResult = serde_json::from_str(&text).expect("a result");
        let execution = &result.executions[0];
        assert_eq!(execution.seed, 41);
        assert_eq!(
            serde_json::to_value(&execution.counts).unwrap(),
            alone["counts"],
            "{ranks} ranks"
        );
        assert_eq!(execution.memory.as_ref().map(Vec::len), Some(2000));
    }
    let out = job_run(2, b"{\"spec\": 1}");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("does not read").count(), 1, "{stderr}");
    // A launcher that starts another number of ranks than the job was
    // planned for: refused, once, before anything runs.
    let out = job_run_with(2, &job, &["--ranks", "4"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("planned for 4").count(), 1, "{stderr}");
    assert!(job_run_with(2, &job, &["--ranks", "2"]).status.success());
    // A sweep long enough to report: rank 0's progress lines on standard
    // error, rising, the result still one line on standard output.
    let sweep = rank_job(serde_json::json!({
        "program": {"format": "qasm3", "source": "OPENQASM 3.0;\ninclude \"stdgates.inc\";\n\
            input float theta;\nqubit[16] q;\nbit[16] c;\n\
            for int i in [0:3999] { rx(theta) q[i % 16]; cx q[i % 16], q[(i + 1) % 16]; }\n\
            c = measure q;\n"},
        "shots": 100, "seed": 3,
        "inputs": {"theta": (1..=8).map(|k| 0.1 * f64::from(k)).collect::<Vec<_>>()},
    }));
    let out = job_run(2, &sweep);
    assert!(out.status.success(), "{out:?}");
    let result: kettle_service::JobResult =
        serde_json::from_slice(&out.stdout).expect("one result");
    assert_eq!(result.executions.len(), 8);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let fractions: Vec<f64> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix(kettle_service::PROGRESS_PREFIX))
        .map(|f| f.parse().expect("a fraction"))
        .collect();
    assert!(!fractions.is_empty(), "{stderr}");
    assert!(fractions.windows(2).all(|w| w[0] <= w[1]) && fractions.iter().all(|&f| f <= 1.0));
}

/// Processes whose environment holds `KETTLE_TEST_MARK=mark`: the launcher
/// and the ranks of one test's server.
fn marked(mark: &str) -> Vec<String> {
    let needle = format!("KETTLE_TEST_MARK={mark}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            // A zombie has an empty environment.
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// A server whose budget holds 15 qubits at f64 and that runs larger jobs
/// (up to 16 qubits) across 2 ranks of a real `mpirun`, its processes
/// marked with `mark`.
fn ranks_server(
    dir: &Path,
    mark: &str,
    max_run_time_seconds: u64,
) -> crate::server_util::InProcess {
    let mut config = crate::server_util::test_config(dir);
    config.memory_budget = bytesize::ByteSize::kib(512);
    config.max_run_time_seconds = max_run_time_seconds;
    let launcher = [
        "env",
        // Open MPI refuses root unless told; CI containers run as root.
        "OMPI_ALLOW_RUN_AS_ROOT=1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
        &format!("KETTLE_TEST_MARK={mark}"),
        "mpirun",
        "--oversubscribe",
        "-np",
        "{ranks}",
        "-x",
        "KETTLE_TEST_MARK",
    ];
    config.ranks = Some(kettle_server::RanksConfig {
        ranks: 2,
        launcher: launcher.map(str::to_owned).to_vec(),
        program: Some(PathBuf::from(env!("CARGO_BIN_EXE_kettle"))),
        memory_per_rank: Some(bytesize::ByteSize::kib(512)),
        threads_per_rank: Some(1),
    });
    crate::server_util::in_process(config)
}

/// Nine hundred thousand gates on 16 qubits: minutes.
fn slow_job() -> serde_json::Value {
    serde_json::json!({
        "program": {"format": "qasm3", "source": "OPENQASM 3.0;\ninclude \"stdgates.inc\";\nqubit[16] q;\n\
            for int i in [0:29999] { for int j in [0:14] { rx(0.1) q[j]; cx q[j], q[j + 1]; } }\n"},
        "result_types": [{"expectation": ["Z0"]}],
    })
}

/// Waits until `mark` has the launcher and both ranks running (or panics
/// after 10 s).
async fn ranks_running(mark: &str) {
    for _ in 0..200 {
        if marked(mark).len() >= 3 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the launcher and 2 ranks do not run: {:?}", marked(mark));
}

/// Waits until no process of `mark` is left (or panics after 15 s).
async fn all_ranks_gone(mark: &str) {
    for _ in 0..150 {
        if marked(mark).is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "processes of the launch outlived the job: {:?}",
        marked(mark)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_larger_than_the_server_runs_across_mpi_ranks_over_http() {
    use crate::server_util::{Api, in_process, job, test_config};
    use serde_json::json;
    if !mpi_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mark = format!("{}-{}", std::process::id(), "result");
    let server = ranks_server(&dir.path().join("ranks"), &mark, 600);
    let api = Api::new(server.base.clone(), None);
    let backend = api
        .send(
            reqwest::Method::GET,
            "/v1/backend",
            "/v1/backend",
            None,
            &[],
        )
        .await;
    assert_eq!(backend.body["max_qubits"]["f64"], 15, "{}", backend.body);
    assert_eq!(backend.body["across_ranks"]["ranks"], 2);
    assert_eq!(backend.body["across_ranks"]["max_qubits"]["f64"], 16);
    // The same job on a server it fits, alone.
    let alone = in_process(test_config(&dir.path().join("alone")));
    let alone = Api::new(alone.base.clone(), None);
    let body = job(
        &random_qasm(16, 300, 29),
        json!({"shots": 3000, "seed": 8, "result_types": ["counts", "memory", "probabilities", "statevector", {"expectation": ["Z0 Z15", "X3"]}]}),
    );
    let mut results = Vec::new();
    for api in [&api, &alone] {
        let posted = api.post_job(body.clone(), "").await;
        assert_eq!(posted.status, 201, "{}", posted.body);
        let id = posted.body["id"].as_str().expect("an id").to_owned();
        results.push(api.until(&id, "completed").await);
    }
    let (split, one) = (
        &results[0]["result"]["executions"][0],
        &results[1]["result"]["executions"][0],
    );
    assert_eq!(split["counts"], one["counts"]);
    assert_eq!(split["memory"], one["memory"]);
    let close = |a: &serde_json::Value, b: &serde_json::Value| {
        (a.as_f64().expect("a number") - b.as_f64().expect("a number")).abs() < 1e-12
    };
    let (sv, sv1) = (
        split["statevector"].as_array().unwrap(),
        one["statevector"].as_array().unwrap(),
    );
    assert_eq!(sv.len(), 1 << 16);
    assert!(
        sv.iter()
            .zip(sv1)
            .all(|(a, b)| close(&a[0], &b[0]) && close(&a[1], &b[1]))
    );
    let probabilities = split["probabilities"].as_object().unwrap();
    assert_eq!(
        probabilities.len(),
        one["probabilities"].as_object().unwrap().len()
    );
    assert!(
        probabilities
            .iter()
            .all(|(k, p)| close(p, &one["probabilities"][k]))
    );
    for i in 0..2 {
        assert!(close(
            &split["expectations"][i]["value"],
            &one["expectations"][i]["value"]
        ));
    }
    all_ranks_gone(&mark).await;

    // A cancel ends every rank.
    let slow = slow_job();
    let posted = api.post_job(slow.clone(), "").await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    let id = posted.body["id"].as_str().unwrap().to_owned();
    api.until(&id, "running").await;
    ranks_running(&mark).await;
    let cancelled = api
        .send(
            reqwest::Method::POST,
            "/v1/jobs/{id}/cancel",
            &format!("/v1/jobs/{id}/cancel"),
            None,
            &[],
        )
        .await;
    assert!(cancelled.status < 300, "{}", cancelled.body);
    api.until(&id, "cancelled").await;
    all_ranks_gone(&mark).await;

    // So does the run-time limit.
    let mark = format!("{}-{}", std::process::id(), "deadline");
    let server = ranks_server(&dir.path().join("deadline"), &mark, 2);
    let api = Api::new(server.base.clone(), None);
    let posted = api.post_job(slow, "").await;
    let id = posted.body["id"].as_str().unwrap().to_owned();
    let failed = api.until(&id, "failed").await;
    assert_eq!(failed["error"]["code"], "run-time-exceeded", "{failed}");
    all_ranks_gone(&mark).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ranks_of_a_killed_server_end_with_it() {
    use crate::server_util::{Api, ChildServer};
    if !mpi_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mark = format!("{}-killed", std::process::id());
    // The launch as an operator configures it, in the environment.
    let launcher = format!(
        "[\"env\", \"OMPI_ALLOW_RUN_AS_ROOT=1\", \"OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1\", \
         \"KETTLE_TEST_MARK={mark}\", \"mpirun\", \"--oversubscribe\", \"-np\", \"{{ranks}}\", \
         \"-x\", \"KETTLE_TEST_MARK\"]"
    );
    let server = ChildServer::start_with(
        dir.path(),
        &[
            ("KETTLE_WORKERS", "1"),
            ("KETTLE_MEMORY_BUDGET", "512KiB"),
            ("KETTLE_RANKS__RANKS", "2"),
            ("KETTLE_RANKS__LAUNCHER", &launcher),
            ("KETTLE_RANKS__THREADS_PER_RANK", "1"),
        ],
    );
    let api = Api::new(server.base.clone(), None);
    let posted = api.post_job(slow_job(), "").await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    ranks_running(&mark).await;
    // SIGKILL: no shutdown code runs; the launcher gets SIGTERM from the
    // kernel and ends its ranks.
    server.kill();
    all_ranks_gone(&mark).await;
}
