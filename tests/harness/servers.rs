//! Redis servers on loopback TCP for tests that need more than the harness's private unix-socket
//! server: a local three-master Redis Cluster ([`RedisCluster`]) and a TLS Redis with optional ACL
//! credentials ([`TlsRedis`]). This module owns those processes (each is SIGKILLed when its value
//! is dropped) and the files they keep under the directory they are started in: per-node
//! subdirectories with `nodes.conf` and a log, the TLS key and certificate, and every log file.
//!
//! Ports come from [`free_port`]; a server that loses its port to another process before it binds
//! is retried on fresh ports. Startup is polled with a deadline, never waited for with a fixed
//! sleep, and a failure panics naming the log file to read.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a single server may take to answer its first PING.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long a created cluster may take to report every slot assigned and `cluster_state:ok`.
const CLUSTER_DEADLINE: Duration = Duration::from_secs(20);
/// How often startup conditions are polled.
const POLL: Duration = Duration::from_millis(25);
/// Attempts on fresh ports when a server exits before it is ready (its port was taken).
const ATTEMPTS: u32 = 3;

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read back, released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr of 127.0.0.1:0").port()
}

/// A file opened for appending, for a child's stdout/stderr (redis-server appends its own log to it too).
fn append(log: &Path) -> File {
    OpenOptions::new().create(true).append(true).open(log).unwrap_or_else(|e| panic!("open {}: {e}", log.display()))
}

/// Spawns `cmd` with stdout and stderr appended to `log`, then polls `ready` until it holds.
/// Returns `None` when the process exits first (typically: its port was taken meanwhile);
/// panics after [`START_DEADLINE`].
fn spawn_ready(mut cmd: Command, what: &str, log: &Path, ready: impl Fn() -> bool) -> Option<Child> {
    let out = append(log);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup log file"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what} (redis-server must be installed; scripts/ensure-deps installs it): {e}"));
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if ready() {
            return Some(child);
        }
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not answer PING within {START_DEADLINE:?}; see {}", log.display());
        }
        std::thread::sleep(POLL);
    }
}

/// Runs `cmd` to completion and returns its stdout as text (empty if it could not run).
fn stdout_of(cmd: &mut Command) -> String {
    cmd.stdin(Stdio::null()).stderr(Stdio::null()).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

/// SIGKILLs `child` and reaps it.
fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Percent-encodes `s` for the userinfo part of a URL (everything but RFC 3986 unreserved characters).
fn userinfo_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A local Redis Cluster of three masters (no replicas) on 127.0.0.1, killed when dropped.
pub struct RedisCluster {
    /// One `redis://127.0.0.1:P` URL per node, in node order.
    pub nodes: Vec<String>,
    /// The nodes' client ports, in node order.
    pub ports: Vec<u16>,
    /// The nodes' directories (`cluster-node-N` under the start directory), each with `redis.log`.
    pub dirs: Vec<PathBuf>,
    children: Vec<Child>,
}

impl RedisCluster {
    /// Starts three cluster-enabled masters under `dir`, joins them with `redis-cli --cluster create`
    /// (all 16384 slots split between them) and waits until every node reports `cluster_state:ok`.
    pub fn start(dir: &Path) -> Self {
        // Filled in as nodes come up, so a panic part-way still kills the started ones on drop.
        let mut cluster = Self { nodes: Vec::new(), ports: Vec::new(), dirs: Vec::new(), children: Vec::new() };
        for i in 0..3 {
            let node_dir = dir.join(format!("cluster-node-{i}"));
            std::fs::create_dir_all(&node_dir).unwrap_or_else(|e| panic!("create {}: {e}", node_dir.display()));
            let log = node_dir.join("redis.log");
            let (port, child) = (0..ATTEMPTS)
                .find_map(|_| {
                    // The bus port is explicit: the default (port + 10000) overflows for ports above 55535.
                    let (port, bus) = (free_port(), free_port());
                    let _ = std::fs::remove_file(node_dir.join("nodes.conf"));
                    let mut cmd = Command::new("redis-server");
                    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                        .args(["--cluster-port", &bus.to_string(), "--cluster-config-file"])
                        .arg(node_dir.join("nodes.conf"))
                        .args(["--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no", "--dir"])
                        .arg(&node_dir)
                        .arg("--logfile")
                        .arg(&log);
                    let ping = || stdout_of(Command::new("redis-cli").args(["-p", &port.to_string(), "PING"])).starts_with("PONG");
                    spawn_ready(cmd, &format!("cluster node {i} (port {port})"), &log, ping).map(|c| (port, c))
                })
                .unwrap_or_else(|| panic!("cluster node {i} exited before answering PING, {ATTEMPTS} times; see {}", log.display()));
            cluster.children.push(child);
            cluster.ports.push(port);
            cluster.nodes.push(format!("redis://127.0.0.1:{port}"));
            cluster.dirs.push(node_dir);
        }

        let create_log = dir.join("cluster-create.log");
        let out = append(&create_log);
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log file"))
            .stderr(out)
            .status()
            .expect("run redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create failed ({status}); see {}", create_log.display());

        let deadline = Instant::now() + CLUSTER_DEADLINE;
        for (i, port) in cluster.ports.iter().enumerate() {
            loop {
                let info = stdout_of(Command::new("redis-cli").args(["-p", &port.to_string(), "CLUSTER", "INFO"]));
                let has = |line: &str| info.lines().any(|l| l.trim_end() == line);
                if has("cluster_state:ok") && has("cluster_slots_assigned:16384") {
                    break;
                }
                if Instant::now() > deadline {
                    panic!(
                        "cluster node {i} (port {port}) not ok with all slots within {CLUSTER_DEADLINE:?}; last CLUSTER INFO:\n{info}\nsee {} and {}",
                        cluster.dirs[i].join("redis.log").display(),
                        create_log.display()
                    );
                }
                std::thread::sleep(POLL);
            }
        }
        cluster
    }

    /// The three node URLs joined by commas: `redis://127.0.0.1:P1,redis://127.0.0.1:P2,redis://127.0.0.1:P3`.
    pub fn url(&self) -> String {
        self.nodes.join(",")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.children.drain(..) {
            kill(child);
        }
    }
}

/// A `redis-server` serving only TLS on 127.0.0.1 with a self-signed certificate, killed when dropped.
pub struct TlsRedis {
    /// `rediss://127.0.0.1:P`, or `rediss://USER:PASSWORD@127.0.0.1:P` (percent-encoded) with ACL credentials.
    pub url: String,
    /// The self-signed certificate (for `localhost` and `127.0.0.1`) to trust as the CA.
    pub ca: PathBuf,
    /// The TLS port.
    pub port: u16,
    /// The ACL user and password the server was started with, if any.
    pub acl: Option<(String, String)>,
    /// The server's log file.
    pub log: PathBuf,
    child: Option<Child>,
}

impl TlsRedis {
    /// Generates a certificate under `dir/tls-redis` and starts a TLS-only server; with
    /// `acl = Some((user, password))` the default user is disabled and only that user (full rights) may log in.
    pub fn start(dir: &Path, acl: Option<(&str, &str)>) -> Self {
        if let Some((user, password)) = acl {
            assert!(
                !user.is_empty() && !password.is_empty() && !user.contains(char::is_whitespace) && !password.contains(char::is_whitespace),
                "ACL user and password must be non-empty and without whitespace"
            );
        }
        let dir = dir.join("tls-redis");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let (ca, cert, key, log) = (dir.join("ca.pem"), dir.join("c.pem"), dir.join("k.pem"), dir.join("redis.log"));
        // A CA and a server certificate it signed: rustls (the client) refuses a CA certificate
        // used as the server's own, so one self-signed certificate is not enough.
        let openssl_log = dir.join("openssl.log");
        let ext = dir.join("server.ext");
        std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").expect("write server.ext");
        let ca_key = dir.join("ca-k.pem");
        let csr = dir.join("server.csr");
        let steps: [Vec<std::ffi::OsString>; 3] = [
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=cxrelay-test-ca", "-keyout"]
                .map(Into::into)
                .into_iter()
                .chain([ca_key.clone().into(), "-out".into(), ca.clone().into()])
                .collect(),
            ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout"]
                .map(Into::into)
                .into_iter()
                .chain([key.clone().into(), "-out".into(), csr.clone().into()])
                .collect(),
            ["x509", "-req", "-days", "2", "-set_serial", "1", "-in"]
                .map(Into::into)
                .into_iter()
                .chain([
                    csr.into(),
                    "-CA".into(),
                    ca.clone().into(),
                    "-CAkey".into(),
                    ca_key.into(),
                    "-extfile".into(),
                    ext.into(),
                    "-out".into(),
                    cert.clone().into(),
                ])
                .collect(),
        ];
        for args in steps {
            let out = append(&openssl_log);
            let status = Command::new("openssl")
                .args(&args)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup log file"))
                .stderr(out)
                .status()
                .unwrap_or_else(|e| panic!("run openssl (scripts/ensure-deps installs it): {e}"));
            assert!(status.success(), "openssl {args:?} failed ({status}); see {}", openssl_log.display());
        }

        let mut server = Self { url: String::new(), ca, port: 0, acl: acl.map(|(u, p)| (u.to_owned(), p.to_owned())), log, child: None };
        for _ in 0..ATTEMPTS {
            let port = free_port();
            let mut cmd = Command::new("redis-server");
            cmd.args(["--port", "0", "--bind", "127.0.0.1", "--tls-port", &port.to_string(), "--tls-cert-file"])
                .arg(&cert)
                .arg("--tls-key-file")
                .arg(&key)
                .arg("--tls-ca-cert-file")
                .arg(&server.ca)
                .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir"])
                .arg(&dir)
                .arg("--logfile")
                .arg(&server.log);
            if let Some((user, password)) = acl {
                // Command-line `user` directives work on redis-server 7.0 (checked on 7.0.15).
                cmd.args(["--user", "default", "off", "--user", user, "on", &format!(">{password}"), "~*", "&*", "+@all"]);
            }
            server.port = port;
            let ping = || stdout_of(server.cli().arg("PING")).starts_with("PONG");
            if let Some(child) = spawn_ready(cmd, &format!("TLS redis-server (port {port})"), &server.log, ping) {
                server.child = Some(child);
                break;
            }
        }
        assert!(server.child.is_some(), "TLS redis-server exited before answering PING, {ATTEMPTS} times; see {}", server.log.display());
        server.url = match acl {
            Some((user, password)) => format!("rediss://{}:{}@127.0.0.1:{}", userinfo_encode(user), userinfo_encode(password), server.port),
            None => format!("rediss://127.0.0.1:{}", server.port),
        };
        server
    }

    /// A `redis-cli` command connected to this server over TLS (trusting [`ca`](Self::ca)), logged in
    /// with the ACL credentials if any; append the command to run.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--tls").arg("--cacert").arg(&self.ca).args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some((user, password)) = &self.acl {
            cmd.args(["--user", user, "--pass", password, "--no-auth-warning"]);
        }
        cmd
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill(child);
        }
    }
}
