//! Messages and logs a person reads: a worker that cannot authenticate refuses to start and
//! says which variable to set; input errors speak JSON and name bad UTF-8; a byte order mark is
//! accepted; logs are JSON lines with `--log-format json` and free of colour codes in a file.

mod harness;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use cxrelay_sim::SimConfig;
use harness::{TestEnv, WorkerProc};

/// How long a worker may take to refuse to start or to log its first line.
const PROMPTLY: Duration = Duration::from_secs(10);

/// Waits for the worker to exit by itself; panics with its log after `within`.
fn wait_exit(worker: &mut WorkerProc, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = worker.child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "worker still running after {within:?}: {}", read(&worker.log));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Runs `enqueue` on `bytes` written to `name`; returns (exit code, stdout, stderr).
fn enqueue_file(env: &TestEnv, name: &str, bytes: &[u8]) -> (i32, Output) {
    let file = env.write_file(name, bytes);
    let run = name.split('.').next().unwrap();
    let out = env.enqueue("act", run, &file);
    (out.status.code().unwrap_or(-1), out)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every non-empty line parses as a JSON object; returns them.
fn json_lines(text: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let lines: Vec<_> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(serde_json::Value::Object(o)) => o,
            other => panic!("not a JSON object line: {l:?} ({other:?})\n{text}"),
        })
        .collect();
    assert!(!lines.is_empty(), "no log lines at all");
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_client_id_refuses_to_start_and_says_what_to_set() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.enqueue_generated("waiting", 3);
    for empty in [None, Some("")] {
        match empty {
            None => env.unset("CXRELAY_CLIENT_ID"),
            Some(v) => env.set("CXRELAY_CLIENT_ID", v),
        };
        let mut worker = env.spawn_worker(2);
        let status = wait_exit(&mut worker, PROMPTLY);
        let log = read(&worker.log);
        assert_eq!(status.code(), Some(2), "unusable settings are exit 2: {log}");
        assert_eq!(log.matches("CXRELAY_CLIENT_ID").count(), 1, "said once: {log}");
        assert!(log.contains("setting target.client_id: required by profile seed"), "{log}");
        assert!(!log.contains("worker started"), "{log}");
    }
    // Nothing was taken, so nothing was burnt: the items still wait for a working worker.
    let report = env.wait_report("waiting", Duration::from_secs(5), |_| true).await;
    assert_eq!((report.succeeded, report.failed, report.pending), (0, 0, 3), "{report:?}");
    assert!(env.sim.ledger().entries.is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_messages_speak_json_and_accept_a_byte_order_mark() {
    let env = TestEnv::start(SimConfig::default()).await;

    // A UTF-8 byte order mark (spreadsheet exports write one) is skipped.
    for (name, bytes) in [("bom.json", &b"\xEF\xBB\xBF[{\"a\": 1}, {\"a\": 2}]"[..]), ("bomnd.ndjson", b"\xEF\xBB\xBF{\"a\": 1}\n{\"a\": 2}\n")] {
        let (code, out) = enqueue_file(&env, name, bytes);
        assert_eq!(code, 0, "{name}: {}", stderr(&out));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("enqueue --json output");
        assert_eq!(summary["accepted"], 2, "{name}: {summary}");
    }

    // An object where an array belongs is called an object, not a map.
    let (code, out) = enqueue_file(&env, "object.json", b"{\"a\": 1}");
    let err = stderr(&out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("found an object") && err.contains("JSON array"), "{err}");
    assert!(!err.contains("map"), "{err}");

    // Bytes that are not UTF-8 are called that, with where they are.
    let (code, out) = enqueue_file(&env, "latin1.json", b"[{\"name\": \"Ren\xE9\"}]");
    let err = stderr(&out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid UTF-8") && err.contains("line 1, column 15") && err.contains("offset 14"), "{err}");
    let (code, out) = enqueue_file(&env, "utf16.json", b"\xFF\xFE[\x00]\x00");
    let err = stderr(&out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("UTF-8") && err.contains("UTF-16"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let mut env = TestEnv::start(SimConfig::default()).await;

    // A command's final error is a JSON line too.
    let out = env.cxrelay().args(["--log-format", "json", "report", "NOSUCHRUN"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown run is an unusable request");
    let lines = json_lines(&stderr(&out));
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{last:?}");
    assert!(last["message"].as_str().unwrap().contains("NOSUCHRUN"), "{last:?}");

    // A worker's log, from the environment variable.
    env.set("CXRELAY_LOG_FORMAT", "json");
    let mut worker = env.spawn_worker(2);
    let log = worker.log.clone();
    env.eventually("the worker's first log line", PROMPTLY, || {
        let log = log.clone();
        async move { read(&log).contains("worker started") }
    })
    .await;
    assert!(worker.terminate(PROMPTLY).success());
    let lines = json_lines(&read(&worker.log));
    assert!(lines.iter().any(|l| l["message"] == "worker started" && l["level"] == "INFO"), "{lines:?}");

    // Refusing to start is an ERROR line in JSON mode.
    env.unset("CXRELAY_CLIENT_ID");
    let mut worker = env.spawn_worker(1);
    assert_eq!(wait_exit(&mut worker, PROMPTLY).code(), Some(2));
    let lines = json_lines(&read(&worker.log));
    assert!(lines.iter().any(|l| l["level"] == "ERROR" && l["message"].as_str().unwrap_or("").contains("CXRELAY_CLIENT_ID")), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_in_a_file_have_no_colour_codes() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let mut worker = env.spawn_worker(2);
    let log = worker.log.clone();
    env.eventually("the worker's first log line", PROMPTLY, || {
        let log = log.clone();
        async move { read(&log).contains("worker started") }
    })
    .await;
    assert!(worker.terminate(PROMPTLY).success());
    let text = read(&worker.log);
    assert!(text.contains("INFO") && text.contains("worker stopped"), "{text}");
    assert!(!text.contains("\x1b["), "escape codes in a file: {text:?}");

    // The same for a command's error.
    let out = env.cxrelay().args(["--log-format", "text", "report", "NOSUCHRUN"]).output().unwrap();
    let err = stderr(&out);
    assert!(err.contains("error: run NOSUCHRUN not found") && !err.contains("\x1b["), "{err:?}");
}
