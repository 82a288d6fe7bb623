//! Bad input: each case gets a clear message naming the problem and its position, a non-zero
//! exit, and leaves nothing ambiguous in Redis.

mod harness;

use std::time::Duration;

use cxrelay_sim::SimConfig;
use harness::TestEnv;
use redis::AsyncCommands;

/// Runs `enqueue` on `bytes`; returns (exit code, stderr).
fn enqueue_bytes(env: &TestEnv, run: &str, bytes: &[u8]) -> (i32, String) {
    let file = env.write_file(&format!("{run}.json"), bytes);
    let out = env.enqueue("act", run, &file);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// No key of the run exists and it is not listed as active.
async fn assert_nothing_left(env: &TestEnv, run: &str) {
    let mut conn = env.redis().await;
    let keys: Vec<String> = conn.keys(format!("{}:{{run:{run}}}:*", env.namespace)).await.unwrap();
    assert!(keys.is_empty(), "run {run} left keys behind: {keys:?}");
    let listed: bool = conn.sismember(env.keys().active_runs("default"), run).await.unwrap();
    assert!(!listed, "run {run} still listed as active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_inputs_are_rejected_whole_with_positions() {
    let env = TestEnv::start(SimConfig::default()).await;
    let cases: &[(&str, &[u8], &[&str])] = &[
        ("not-array", b"{\"a\": 1}", &["must be a JSON array", "line 1, column"]),
        ("truncated", b"[{\"a\": 1},\n {\"b\": ", &["malformed input at line 2", "EOF"]),
        ("bad-utf8", b"[{\"a\": \"ok\"},\n {\"b\": \"\xff\xfe\"}]", &["malformed input at line 2", "column"]),
        ("empty", b"[]", &["no items"]),
        ("garbage-after", b"[{\"a\":1}] trailing", &["malformed input at line 1", "trailing"]),
    ];
    for (run, bytes, needles) in cases {
        let (code, stderr) = enqueue_bytes(&env, run, bytes);
        assert_eq!(code, 2, "{run}: exit code; stderr: {stderr}");
        for needle in *needles {
            assert!(stderr.contains(needle), "{run}: stderr lacks {needle:?}: {stderr}");
        }
        assert!(stderr.contains("nothing was enqueued"), "{run}: {stderr}");
        assert_nothing_left(&env, run).await;
    }
    let out = env.cxrelay().args(["enqueue", "--action", "a", "/no/such/file.json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_items_are_recorded_and_never_sent() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let big = format!("{{\"blob\": \"{}\"}}", "x".repeat(300 * 1024));
    let input = format!("[{{\"a\": 1}},\n 42,\n \"text\",\n {big},\n {{\"b\": 2}}]");
    let (code, stderr) = enqueue_bytes(&env, "mixed", input.as_bytes());
    assert_eq!(code, 3, "some items rejected → exit 3; {stderr}");
    assert!(stderr.contains("item 1 (ending at line 2") && stderr.contains("must be a JSON object, found a number"), "{stderr}");
    assert!(stderr.contains("item 2 (ending at line 3") && stderr.contains("found a string"), "{stderr}");
    assert!(stderr.contains("item 3 (ending at line 4") && stderr.contains("256 KB"), "{stderr}");

    let store = env.store().await;
    let run = cxrelay_core::RunId::parse("mixed").unwrap();
    let invalid = store.invalid_items(&run, 10).await.unwrap();
    assert_eq!(invalid.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(invalid[2].1.contains("over the 262144-byte"), "{}", invalid[2].1);

    let _w = env.spawn_worker(4);
    let report = env.wait_finished("mixed", Duration::from_secs(30)).await;
    assert_eq!((report.total, report.succeeded, report.validation_failures), (5, 2, 3));
    assert_eq!(report.high_water, 5, "validation failures count as finished indexes");
    assert!((report.completion_rate - 0.4).abs() < 1e-9);
    // Keys are `{run}:{nonce}:{index}`: only indexes 0 and 4 were sent.
    let mut indexes: Vec<String> = env.sim.ledger().entries.into_iter().filter_map(|e| e.key.rsplit(':').next().map(str::to_owned)).collect();
    indexes.sort();
    assert_eq!(indexes, vec!["0", "4"], "invalid items are never sent");
}

/// A bad argument is exit 2, names the value, and leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_refused_before_anything_is_enqueued() {
    let env = TestEnv::start(SimConfig::default()).await;
    let file = env.write_file("ok.json", b"[{\"a\": 1}]");
    let cases: [(&[&str], &str); 4] = [
        (&["--action", "act", "--run-id", "x{y"], "invalid --run-id \"x{y\""),
        (&["--action", "act", "--run-id", "args", "--tenant", "a b"], "invalid --tenant \"a b\""),
        (&["--action", "act", "--run-id", "args", "--idempotency-field", " "], "invalid --idempotency-field \" \": must name a field"),
        (&["--run-id", "args", "--action", " "], "invalid --action \" \": must not be empty"),
    ];
    for (args, message) in cases {
        let out = env.cxrelay().arg("enqueue").args(args).arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message) && stderr.contains("nothing was enqueued"), "{args:?}: {stderr}");
    }
    assert_nothing_left(&env, "args").await;
}

/// With Redis down, a malformed input is still exit 2 (read to the end to tell), and a good one
/// is exit 1 naming the Redis URL once, its password masked, and the cause once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_still_tells_bad_input_from_a_redis_failure() {
    let env = TestEnv::start(SimConfig::default()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("redis://:pw-down-1@{closed}");
    let run = |name: &str, bytes: &[u8]| {
        let file = env.write_file(name, bytes);
        let out = env.cxrelay().args(["enqueue", "--action", "act"]).arg(&file).env("REDIS_URL", &url).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = run("bad.json", b"[{\"a\": 1}, oops");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("line 1, column 12") || stderr.contains("line 1, column 11"), "{stderr}");
    let (code, stderr) = run("good.json", b"[{\"a\": 1}]");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.matches("connecting to redis at redis://:****@").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("refused").count(), 1, "the cause once: {stderr}");
    assert!(!stderr.contains("pw-down-1"), "{stderr}");
}
