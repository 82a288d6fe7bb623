//! Test harness: each test gets its own `redis-server` (on a unix socket in a temp dir, so no
//! port races and no state shared with the machine's Redis), an in-process simulator, and real
//! `cxrelay` worker processes it can SIGTERM or kill -9.
//!
//! `CXRELAY_TEST_REDIS=cluster` makes each test start a 3-master Redis Cluster instead, and
//! `CXRELAY_TEST_REDIS=tls` a TLS Redis with an ACL user (self-signed CA), so the same tests
//! prove the Cluster and TLS paths (`make test` runs the named ones that way).
//! A `REDIS_URL` in the environment is ignored: tests never touch a Redis they did not start.
//! `CXRELAY_TEST_REDIS_URL` makes them use that Redis instead (the `testcontainers` feature
//! starts one in Docker), each test under a fresh namespace; tests that restart Redis always
//! use a private one. No `CXRELAY_*` variable of the caller reaches the processes a test starts.
#![allow(dead_code)]
pub mod servers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cxrelay_core::report::{RunReport, RunStatus};
use cxrelay_core::RunId;
use cxrelay_queue::store::StoreOptions;
use cxrelay_queue::{Keyspace, RedisConn, RedisTarget, Store};
use cxrelay_sim::{SimConfig, SimServer};

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

fn rand_suffix() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0) % 100_000
}

/// A private `redis-server`, killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    pub url: String,
    socket: PathBuf,
    dir: PathBuf,
    aof: bool,
}

impl RedisServer {
    /// Starts a server in `dir`; with `aof`, every write is appended to disk so a restart keeps it.
    pub fn start(dir: &Path, aof: bool) -> Self {
        let socket = dir.join("redis.sock");
        let mut server = Self { child: None, url: format!("unix://{}", socket.display()), socket, dir: dir.to_owned(), aof };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&self.socket)
            .args(["--unixsocketperm", "700", "--save", "", "--appendonly", if self.aof { "yes" } else { "no" }])
            .args(["--appendfsync", "everysec", "--dir"])
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (make test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let ok = Command::new("redis-cli").arg("-s").arg(&self.socket).arg("PING").output().map(|o| o.stdout.starts_with(b"PONG"));
            if ok.unwrap_or(false) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start; see {}", self.dir.join("redis.log").display());
    }

    /// Kills the server with SIGKILL (no shutdown save), then starts it again on the same files.
    pub fn kill_and_restart(&mut self, down_for: Duration) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(down_for);
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// With the `testcontainers` feature (machines with Docker): Redis in a container.
#[cfg(feature = "testcontainers")]
async fn start_container() -> (Option<testcontainers::ContainerAsync<testcontainers::GenericImage>>, Option<String>) {
    use testcontainers::core::{IntoContainerPort, WaitFor};
    use testcontainers::runners::AsyncRunner;
    let container = testcontainers::GenericImage::new("redis", "7.2")
        .with_exposed_port(6379.tcp())
        .with_wait_for(WaitFor::message_on_stdout("Ready to accept connections"))
        .start()
        .await
        .expect("start redis in docker (feature testcontainers needs a Docker engine)");
    let port = container.get_host_port_ipv4(6379).await.expect("mapped redis port");
    (Some(container), Some(format!("redis://127.0.0.1:{port}")))
}

/// A `cxrelay worker` process.
pub struct WorkerProc {
    pub child: Child,
    pub log: PathBuf,
}

impl WorkerProc {
    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "worker did not exit within {within:?}; log {}", self.log.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test's world: Redis, simulator, worker processes, a temp dir.
pub struct TestEnv {
    pub dir: PathBuf,
    pub redis: Option<RedisServer>,
    /// A private Redis Cluster (`CXRELAY_TEST_REDIS=cluster`).
    pub cluster: Option<servers::RedisCluster>,
    /// A private TLS Redis (`CXRELAY_TEST_REDIS=tls`).
    pub tls: Option<servers::TlsRedis>,
    /// Redis in Docker (feature `testcontainers`), kept alive for the test's duration.
    #[cfg(feature = "testcontainers")]
    container: Option<testcontainers::ContainerAsync<testcontainers::GenericImage>>,
    pub redis_url: String,
    /// The namespace every key of this test lives under.
    pub namespace: String,
    pub sim: SimServer,
    pub env: HashMap<String, String>,
    workers_started: u32,
}

impl TestEnv {
    /// Starts Redis (unless `REDIS_URL` is set) and the simulator with `sim`.
    pub async fn start(sim: SimConfig) -> Self {
        Self::start_with(sim, false).await
    }

    /// Like [`start`](Self::start), with AOF persistence so Redis can be killed and restarted.
    pub async fn start_with(sim: SimConfig, aof: bool) -> Self {
        let dir = std::env::temp_dir().join(format!("cxrelay-test-{}-{}", std::process::id(), NEXT_DIR.fetch_add(1, Ordering::SeqCst)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        #[cfg(feature = "testcontainers")]
        let (container, container_url) = if aof { (None, None) } else { start_container().await };
        #[cfg(not(feature = "testcontainers"))]
        let container_url: Option<String> = None;
        let shared = std::env::var("CXRELAY_TEST_REDIS_URL").ok().filter(|u| !u.is_empty()).or(container_url);
        let kind = std::env::var("CXRELAY_TEST_REDIS").unwrap_or_default();
        let (mut redis, mut cluster, mut tls) = (None, None, None);
        let redis_url = match shared {
            Some(url) if !aof => url,
            _ if kind == "cluster" && !aof => {
                let c = servers::RedisCluster::start(&dir);
                let url = c.url();
                cluster = Some(c);
                url
            }
            _ if kind == "tls" && !aof => {
                let t = servers::TlsRedis::start(&dir, Some(("cxrelay", "test-pass-1")));
                let url = t.url.clone();
                tls = Some(t);
                url
            }
            _ => {
                let r = RedisServer::start(&dir, aof);
                let url = r.url.clone();
                redis = Some(r);
                url
            }
        };
        // A fresh namespace per test, so tests sharing one Redis never see each other.
        let namespace = format!("t{}x{}x{}", std::process::id(), NEXT_DIR.load(Ordering::SeqCst), rand_suffix());
        let sim = SimServer::start(sim, "127.0.0.1:0".parse().unwrap()).await.expect("simulator");
        let mut env = HashMap::new();
        env.insert("REDIS_URL".to_owned(), redis_url.clone());
        if let Some(t) = &tls {
            env.insert("CXRELAY_REDIS_CA_CERT".to_owned(), t.ca.display().to_string());
        }
        env.insert("CXRELAY_NAMESPACE".to_owned(), namespace.clone());
        // Tests of other subjects run without a rate budget; rate tests set or unset it.
        env.insert("CXRELAY_RATE".to_owned(), "0".to_owned());
        env.insert("CXRELAY_API_BASE".to_owned(), sim.base_url());
        env.insert("CXRELAY_CLIENT_ID".to_owned(), "sim-client".to_owned());
        env.insert("CXRELAY_CLIENT_SECRET".to_owned(), "sim-secret".to_owned());
        Self {
            dir,
            redis,
            cluster,
            tls,
            #[cfg(feature = "testcontainers")]
            container,
            redis_url,
            namespace,
            sim,
            env,
            workers_started: 0,
        }
    }

    /// This test's key layout.
    pub fn keys(&self) -> Keyspace {
        Keyspace::new(&self.namespace)
    }

    /// The keys of run `run` in this test's namespace.
    pub fn run_keys(&self, run: &str) -> cxrelay_queue::keys::RunKeys {
        self.keys().run(&RunId::parse(run).unwrap())
    }

    /// Sets an environment variable for the processes started from now on.
    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        self.env.insert(key.to_owned(), value.to_string());
        self
    }

    /// Points the processes started from now on at the simulator as a CXone tenant: the cxone
    /// profile, the simulator as the OpenID issuer (token endpoint and API base discovered, no
    /// `CXRELAY_API_BASE`) and its access key (the simulator's defaults).
    pub fn cxone_profile(&mut self) -> &mut Self {
        let sim = SimConfig::default();
        let issuer = self.sim.base_url();
        self.unset("CXRELAY_API_BASE")
            .set("CXRELAY_PROFILE", "cxone")
            .set("CXRELAY_ISSUER", issuer)
            .set("CXRELAY_ACCESS_KEY_ID", sim.access_key_id)
            .set("CXRELAY_ACCESS_KEY_SECRET", sim.access_key_secret.expose())
    }

    /// Removes an environment variable for the processes started from now on.
    pub fn unset(&mut self, key: &str) -> &mut Self {
        self.env.remove(key);
        self
    }

    /// A `cxrelay` command with this environment.
    pub fn cxrelay(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cxrelay"));
        for (k, _) in std::env::vars() {
            if k.starts_with("CXRELAY_") || k == "REDIS_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.envs(&self.env).env("RUST_LOG", "info");
        cmd
    }

    /// Starts a worker process with `concurrency` items in flight.
    pub fn spawn_worker(&mut self, concurrency: usize) -> WorkerProc {
        self.spawn_cxrelay(&["worker", "--concurrency", &concurrency.to_string()])
    }

    /// Starts `cxrelay ARGS…` in the background, its output in a log file of its own.
    pub fn spawn_cxrelay(&mut self, args: &[&str]) -> WorkerProc {
        self.workers_started += 1;
        let log = self.dir.join(format!("{}-{}.log", args[0], self.workers_started));
        let file = std::fs::File::create(&log).expect("log file");
        let child = self.cxrelay().args(args).stdout(file.try_clone().unwrap()).stderr(file).spawn().expect("spawn cxrelay");
        WorkerProc { child, log }
    }

    /// A TCP port free on 127.0.0.1 right now.
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// Waits until `url` answers 200.
    pub async fn wait_http_ok(&self, url: &str) {
        let client = reqwest::Client::new();
        self.eventually(url, Duration::from_secs(20), || {
            let req = client.get(url);
            async move { req.send().await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
    }

    /// Writes `items` as a JSON array file and returns its path.
    pub fn write_items(&self, name: &str, items: &[serde_json::Value]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, serde_json::to_vec(items).unwrap()).unwrap();
        path
    }

    /// Writes raw bytes as a file and returns its path.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Runs `cxrelay enqueue --json` and returns the output.
    pub fn enqueue(&self, action: &str, run_id: &str, file: &Path) -> Output {
        self.cxrelay().args(["enqueue", "--json", "--action", action, "--run-id", run_id]).arg(file).output().expect("run cxrelay enqueue")
    }

    /// Enqueues `items` under `run_id` (with extra `args`), asserting success.
    pub fn enqueue_items(&self, run_id: &str, items: &[serde_json::Value], args: &[&str]) {
        let file = self.write_items(&format!("{run_id}.json"), items);
        let out = self
            .cxrelay()
            .args(["enqueue", "--json", "--action", "action-1", "--run-id", run_id])
            .args(args)
            .arg(&file)
            .output()
            .expect("run cxrelay enqueue");
        assert!(out.status.success(), "enqueue failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Enqueues `n` generated items under `run_id`, asserting success.
    pub fn enqueue_generated(&self, run_id: &str, n: usize) {
        let items: Vec<serde_json::Value> = (0..n).map(|i| serde_json::json!({"customer_id": format!("c{i}"), "seq": i})).collect();
        let file = self.write_items(&format!("{run_id}.json"), &items);
        let out = self.enqueue("action-1", run_id, &file);
        assert!(out.status.success(), "enqueue failed: {}", String::from_utf8_lossy(&out.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("enqueue --json output");
        assert_eq!(summary["accepted"], n as u64);
    }

    /// Store options of this test (its namespace).
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions { keys: self.keys(), retention_secs: 3600, ..StoreOptions::default() }
    }

    /// A store on this test's Redis.
    pub async fn store(&self) -> Store {
        Store::connect(&self.redis_target(), self.store_options()).await.expect("connect to redis")
    }

    /// Polls the run's report until `done` holds, or panics after `timeout`.
    pub async fn wait_report(&self, run: &str, timeout: Duration, done: impl Fn(&RunReport) -> bool) -> RunReport {
        let run = RunId::parse(run).unwrap();
        let deadline = Instant::now() + timeout;
        let mut store = self.store().await;
        loop {
            match store.report(&run).await {
                Ok(r) if done(&r) => return r,
                Ok(r) if Instant::now() > deadline => panic!("timed out after {timeout:?}; last report: {r:#?}\n{}", self.logs()),
                Err(e) if Instant::now() > deadline => panic!("timed out; last error {e}\n{}", self.logs()),
                // Redis may be restarting: reconnect.
                Err(_) => {
                    if let Ok(s) = Store::connect(&self.redis_target(), self.store_options()).await {
                        store = s;
                    }
                }
                Ok(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `check` until it holds, or panics naming `what` after `timeout`.
    pub async fn eventually<F, Fut>(&self, what: &str, timeout: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        while !check().await {
            assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The run's failed items: index → (summary, payload, history), read through the store.
    pub async fn failed_items(
        &self,
        run: &str,
    ) -> Vec<(u64, cxrelay_queue::store::FailedItem, Option<String>, Vec<cxrelay_core::outcome::AttemptRecord>)> {
        let store = self.store().await;
        let run = RunId::parse(run).unwrap();
        let mut out = Vec::new();
        for (index, _) in store.failed_items(&run, usize::MAX).await.unwrap() {
            let (summary, payload, history) = store.failed_item(&run, index).await.unwrap().expect("listed as failed");
            out.push((index, summary, payload, history));
        }
        out
    }

    /// Waits until the run is finished.
    pub async fn wait_finished(&self, run: &str, timeout: Duration) -> RunReport {
        self.wait_report(run, timeout, |r| r.status == RunStatus::Finished).await
    }

    /// The tail of every worker log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for k in 1..=self.workers_started {
            let p = self.dir.join(format!("worker-{k}.log"));
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- {}\n", p.display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Where this test's Redis is.
    pub fn redis_target(&self) -> RedisTarget {
        RedisTarget { ca_cert: self.tls.as_ref().map(|t| t.ca.clone()), ..RedisTarget::new(self.redis_url.clone()) }
    }

    /// A raw redis connection to this test's Redis (a Cluster connection when it is one).
    pub async fn redis(&self) -> RedisConn {
        cxrelay_queue::connect(&self.redis_target(), Duration::from_secs(10)).await.expect("connect to redis")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
