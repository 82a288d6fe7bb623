//! The loopback Redis servers of `harness::servers`: a three-master Cluster that routes keys
//! between nodes, and a TLS server with and without ACL credentials.
mod harness;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use harness::servers::*;

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A fresh temp dir, removed when dropped unless the test is failing (its logs are kept).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cxrelay-servers-{name}-{}-{}", std::process::id(), NEXT_DIR.fetch_add(1, Ordering::SeqCst)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs `cmd` and returns (trimmed stdout, stderr).
fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("run redis-cli");
    (String::from_utf8_lossy(&out.stdout).trim().to_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// redis-cli against cluster node `port`, following MOVED redirects.
fn cluster_cli(port: u16) -> Command {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-c", "-p", &port.to_string()]);
    cmd
}

#[test]
fn cluster_routes_keys_between_nodes() {
    let dir = TempDir::new("cluster");
    let started = Instant::now();
    let cluster = RedisCluster::start(&dir.0);
    eprintln!("cluster started in {:?}", started.elapsed());

    assert_eq!(cluster.nodes.len(), 3);
    let expected: Vec<String> = cluster.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect();
    assert_eq!(cluster.nodes, expected);
    assert_eq!(cluster.url(), expected.join(","));

    for &port in &cluster.ports {
        let (info, _) = run(cluster_cli(port).args(["CLUSTER", "INFO"]));
        assert!(info.lines().any(|l| l.trim() == "cluster_state:ok"), "node {port}: {info}");
        assert!(info.lines().any(|l| l.trim() == "cluster_known_nodes:3"), "node {port}: {info}");
    }

    // {a} hashes to slot 15495, the third master's: both commands below are redirected.
    let (slot, _) = run(cluster_cli(cluster.ports[0]).args(["CLUSTER", "KEYSLOT", "{a}k"]));
    assert_eq!(slot, "15495");
    let (moved, _) = run(Command::new("redis-cli").args(["-p", &cluster.ports[0].to_string(), "GET", "{a}k"]));
    assert!(moved.contains("MOVED 15495"), "node 0 should not own {{a}}: {moved}");

    let (set, err) = run(cluster_cli(cluster.ports[0]).args(["SET", "{a}k", "v"]));
    assert_eq!(set, "OK", "SET through node 0: {err}");
    let (get, err) = run(cluster_cli(cluster.ports[1]).args(["GET", "{a}k"]));
    assert_eq!(get, "v", "GET through node 1: {err}");
}

#[test]
fn tls_without_acl_answers_ping() {
    let dir = TempDir::new("tls");
    let server = TlsRedis::start(&dir.0, None);
    assert_eq!(server.url, format!("rediss://127.0.0.1:{}", server.port));
    assert!(server.ca.is_file());

    let (pong, err) = run(server.cli().arg("PING"));
    assert_eq!(pong, "PONG", "{err}");
    // The certificate is valid for localhost as well as 127.0.0.1.
    let (pong, err) =
        run(Command::new("redis-cli").arg("--tls").arg("--cacert").arg(&server.ca).args(["-h", "localhost", "-p", &server.port.to_string(), "PING"]));
    assert_eq!(pong, "PONG", "{err}");
    // Plain TCP on the TLS port gets no answer.
    let (plain, _) = run(Command::new("redis-cli").args(["-p", &server.port.to_string(), "PING"]));
    assert_ne!(plain, "PONG");
}

#[test]
fn tls_with_acl_requires_the_password() {
    let dir = TempDir::new("tls-acl");
    let server = TlsRedis::start(&dir.0, Some(("relay", "p@ss:w/rd")));
    assert_eq!(server.url, format!("rediss://relay:p%40ss%3Aw%2Frd@127.0.0.1:{}", server.port));

    let (pong, err) = run(server.cli().arg("PING"));
    assert_eq!(pong, "PONG", "{err}");
    let (acl, err) = run(server.cli().args(["ACL", "WHOAMI"]));
    assert_eq!(acl, "relay", "{err}");

    let tls_cli = || {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--tls").arg("--cacert").arg(&server.ca).args(["-p", &server.port.to_string(), "--no-auth-warning"]);
        cmd
    };
    // The default user is off: no credentials, no PONG.
    let (out, _) = run(tls_cli().arg("PING"));
    assert!(out.contains("NOAUTH"), "without credentials: {out}");
    // redis-cli exits 0 after a failed AUTH, so look at what it printed.
    let (out, err) = run(tls_cli().args(["--user", "relay", "--pass", "wrong", "PING"]));
    assert_ne!(out, "PONG");
    assert!(err.contains("WRONGPASS"), "wrong password: stdout {out:?}, stderr {err:?}");
    let (out, err) = run(tls_cli().args(["--user", "default", "--pass", "p@ss:w/rd", "PING"]));
    assert_ne!(out, "PONG");
    assert!(err.contains("WRONGPASS"), "default user: stdout {out:?}, stderr {err:?}");
}

/// `CXRELAY_REDIS_CLUSTER=true` with one seed node reaches the whole Cluster: a run is
/// enqueued and reported, its keys spread over the nodes by hash tag.
#[test]
fn one_seed_node_with_the_cluster_flag_reaches_the_whole_cluster() {
    let dir = std::env::temp_dir().join(format!("cxrelay-seed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = RedisCluster::start(&dir);
    let input = dir.join("items.json");
    std::fs::write(&input, br#"[{"a": 1}, {"a": 2}]"#).unwrap();
    let cxrelay = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cxrelay"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CXRELAY_") || k == "REDIS_URL") {
            cmd.env_remove(k);
        }
        cmd.env("REDIS_URL", &cluster.nodes[0]).env("CXRELAY_REDIS_CLUSTER", "true");
        cmd
    };
    for run in ["seed-a", "seed-b", "seed-c", "seed-d"] {
        let out = cxrelay().args(["enqueue", "--action", "act", "--run-id", run]).arg(&input).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = cxrelay().args(["report", run, "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["accepted"], 2);
    }
    // The runs' keys live on more than one node (so routing, not luck, found them).
    let holding = cluster
        .ports
        .iter()
        .filter(|p| {
            let out = std::process::Command::new("redis-cli").args(["-p", &p.to_string(), "KEYS", "cxr:{run:seed-*"]).output().unwrap();
            !String::from_utf8_lossy(&out.stdout).trim().is_empty()
        })
        .count();
    assert!(holding >= 2, "the runs' keys sit on {holding} node(s)");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
