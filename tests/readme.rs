//! The README's "Many nodes on one PostgreSQL" commands, run as written
//! against a throwaway PostgreSQL: `db` becomes its address, and the three
//! nodes listen on loopback ports of this machine. The nodes then answer
//! for each other's jobs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kettle_service::store::test_postgres::{own_server, skip_without_postgres};
use serde_json::json;

use crate::server_util::{Api, job};

/// The `sh` block of the README section `heading`, one command a line.
pub(crate) fn readme_block(heading: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md is readable");
    let section = readme
        .split(&format!("\n## {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("README.md has no section `{heading}`"));
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_else(|| panic!("the section `{heading}` has no sh block"));
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// A `PATH` with the `kettle` under test and PostgreSQL's programs first.
fn path_with_tools(bin: &Path) -> String {
    let mut dirs = vec![bin.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = entries.map_while(Result::ok).map(|e| e.path()).collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev().map(|v| v.join("bin")));
    }
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs)
        .expect("paths join")
        .into_string()
        .expect("a UTF-8 PATH")
}

fn sh(line: &str, cwd: &Path, path: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(line)
        .current_dir(cwd)
        .env("PATH", path)
        // The test's own variables are not the README reader's.
        .env_remove("KETTLE_TEST_POSTGRES")
        .env_remove("KETTLE_REQUIRE_POSTGRES");
    c
}

/// A node started by the README's `kettle serve` line, and its address.
struct Node {
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(line: &str, cwd: &Path, path: &str) -> Node {
    let mut child = sh(&format!("exec {line}"), cwd, path)
        .env("KETTLE_SIM_THREADS", "1")
        .env("KETTLE_WORKERS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the README's node never listened: {line}"));
    Node {
        child,
        base: format!("http://{addr}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_commands_for_many_nodes_run() {
    let server = match own_server() {
        Ok(server) => server,
        Err(why) => return skip_without_postgres(&why),
    };
    let port = server.port();
    let lines = readme_block("Many nodes on one PostgreSQL");
    assert_eq!(lines.len(), 4, "the README's block changed: {lines:?}");
    let at_db = |line: &str| {
        line.replace("-h db", &format!("-h 127.0.0.1 -p {port}"))
            .replace("@db/", &format!("@127.0.0.1:{port}/"))
    };
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kettle"), bin.join("kettle")).unwrap();
    let path = path_with_tools(&bin);
    // The installation the README moves: one key in an SQLite folder.
    let made = sh(
        "kettle keys create bob --data-dir ./kettle-data",
        dir.path(),
        &path,
    )
    .output()
    .unwrap();
    assert!(made.status.success(), "{made:?}");
    let bob = String::from_utf8_lossy(&made.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("kt_"))
        .expect("a key is printed")
        .to_owned();
    // The three one-off commands, in order.
    let mut alice = None;
    for line in &lines[..3] {
        let out = sh(&at_db(line), dir.path(), &path).output().unwrap();
        assert!(
            out.status.success(),
            "`{line}` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if line.contains("keys create alice") {
            alice = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .find(|w| w.starts_with("kt_"))
                .map(str::to_owned);
        }
    }
    let alice = alice.expect("`kettle keys create alice` prints the key");
    // The node line, on each of three "machines".
    let serve = at_db(&lines[3]).replace("0.0.0.0:8080", "127.0.0.1:0");
    let nodes: Vec<Node> = (0..3)
        .map(|_| start_node(&serve, dir.path(), &path))
        .collect();
    // A job accepted by one node is answered by every other; the key
    // copied from SQLite works on all of them.
    for (key, first) in [(&alice, 0), (&bob, 1)] {
        let submitted = Api::new(nodes[first].base.clone(), Some(key))
            .post_job(job(crate::server_util::BELL, json!({"shots": 50})), "")
            .await;
        assert_eq!(submitted.status, 201, "{:?}", submitted.body);
        let id = submitted.body["id"].as_str().unwrap().to_owned();
        for node in &nodes {
            let api = Api::new(node.base.clone(), Some(key));
            let done = api.get_job(&id, "?wait=30").await;
            assert_eq!(done.body["status"], "completed", "{:?}", done.body);
        }
    }
}
