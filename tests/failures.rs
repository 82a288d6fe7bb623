//! Every way an item can fail, end to end: the exact counts, the recorded reason and class, the
//! kept payload and the attempt history — and the run always finishes.
//!
//! Items carry a `_sim` directive the simulator obeys (`{"status": 503}` always answers 503;
//! `fail_times` only the first N requests of the item's key; `delay_ms` answers late).

mod harness;

use std::time::Duration;

use cxrelay_sim::{FaultUpdate, ForceStatus, SimConfig};
use harness::TestEnv;
use serde_json::{json, Value};

fn item(i: usize, sim: Option<Value>) -> Value {
    match sim {
        Some(d) => json!({"customer_id": format!("c{i}"), "seq": i, "_sim": d}),
        None => json!({"customer_id": format!("c{i}"), "seq": i}),
    }
}

/// 400 and 422 (and 413 from the target) fail at once: one request each, reason and payload kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_answers_fail_at_once_with_their_reason() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let items: Vec<Value> = (0..30)
        .map(|i| match i % 10 {
            1 => item(i, Some(json!({"status": 400}))),
            2 => item(i, Some(json!({"status": 422}))),
            3 => item(i, Some(json!({"status": 413}))),
            _ => item(i, None),
        })
        .collect();
    env.enqueue_items("perm", &items, &[]);
    let _w = env.spawn_worker(4);
    let report = env.wait_finished("perm", Duration::from_secs(60)).await;
    assert_eq!((report.succeeded, report.failed, report.pending), (21, 9, 0));
    assert_eq!(env.sim.stats().requests, 30, "a permanent answer is never retried");
    assert_eq!(report.failures.by_class.get("4xx"), Some(&9));
    for code in ["400", "422", "413"] {
        assert_eq!(report.failures.by_status.get(code), Some(&3), "{:?}", report.failures);
    }
    assert!(!report.failures.top_reasons.is_empty());

    let failed = env.failed_items("perm").await;
    assert_eq!(failed.iter().map(|f| f.0).collect::<Vec<_>>(), vec![1, 2, 3, 11, 12, 13, 21, 22, 23]);
    for (index, summary, payload, history) in failed {
        let want = [400, 422, 413][(index % 10 - 1) as usize];
        assert_eq!((summary.class.as_str(), summary.status, summary.attempts), ("4xx", Some(want), 1), "item {index}");
        assert!(summary.reason.starts_with(&format!("HTTP {want}")), "{}", summary.reason);
        let kept: Value = serde_json::from_str(&payload.expect("payload kept")).unwrap();
        assert_eq!(kept, items[index as usize], "the failed item's payload is kept as enqueued");
        assert_eq!(history.len(), 1);
        assert_eq!((history[0].outcome.as_str(), history[0].status), ("failed", Some(want)));
        assert!(!history[0].worker.is_empty(), "the history names the worker");
    }

    // A pipeline waiting on the run learns of the failures from the exit code.
    let out = env.cxrelay().args(["report", "perm", "--watch"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("failed by status: 400 3, 413 3, 422 3"), "{text}");
}

/// 5xx until the attempt budget: failed with every attempt in the history; an item that fails
/// twice and then succeeds keeps its history too; first-try successes keep none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_retry_until_the_budget_then_fail() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_MAX_ATTEMPTS", 4).set("CXRELAY_BACKOFF_BASE_MS", 20).set("CXRELAY_BREAKER_COOLDOWN_MS", 500);
    let items: Vec<Value> = (0..40)
        .map(|i| match i % 10 {
            0 => item(i, Some(json!({"status": 503}))),
            5 => item(i, Some(json!({"status": 500, "fail_times": 2}))),
            _ => item(i, None),
        })
        .collect();
    env.enqueue_items("fivexx", &items, &[]);
    let _w = env.spawn_worker(4);
    let report = env.wait_finished("fivexx", Duration::from_secs(60)).await;
    assert_eq!((report.succeeded, report.failed), (36, 4), "{report:#?}");
    assert_eq!(report.failures.by_status.get("503"), Some(&4));
    assert_eq!(env.sim.stats().requests, 36 - 4 + 4 * 4 + 4 * 3, "4 tries of each 503 item, 3 of each flaky one");

    for (index, summary, _, history) in env.failed_items("fivexx").await {
        assert_eq!(index % 10, 0);
        assert_eq!((summary.class.as_str(), summary.attempts), ("5xx", 4));
        assert!(summary.reason.starts_with("gave up after 4 attempts; last: HTTP 503"), "{}", summary.reason);
        let outcomes: Vec<&str> = history.iter().filter(|h| h.outcome != "deferred").map(|h| h.outcome.as_str()).collect();
        assert_eq!(outcomes, ["retry", "retry", "retry", "failed"], "every attempt is in the history: {history:?}");
        let numbers: Vec<u32> = history.iter().filter(|h| h.outcome != "deferred").map(|h| h.attempt).collect();
        assert_eq!(numbers, [1, 2, 3, 4]);
    }
    let store = env.store().await;
    let run = cxrelay_core::RunId::parse("fivexx").unwrap();
    let flaky = store.history(&run, 5).await.unwrap();
    let outcomes: Vec<&str> = flaky.iter().filter(|h| h.outcome != "deferred").map(|h| h.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "retry", "succeeded"]);
    assert!(store.history(&run, 1).await.unwrap().is_empty(), "a first-try success writes no history");
}

/// 401 after the refresh fails as auth; 403 fails as a permission problem; neither is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_and_forbidden_fail_with_their_class() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.sim.set_faults(FaultUpdate {
        force_status: Some(ForceStatus { status: 401, for_ms: 600_000, retry_after_secs: None }),
        ..FaultUpdate::default()
    });
    env.enqueue_items("unauth", &(0..3).map(|i| item(i, None)).collect::<Vec<_>>(), &[]);
    let mut w = env.spawn_worker(1);
    let report = env.wait_finished("unauth", Duration::from_secs(30)).await;
    assert_eq!((report.succeeded, report.failed), (0, 3));
    assert_eq!(report.failures.by_class.get("auth"), Some(&3), "{:?}", report.failures);
    let stats = env.sim.stats();
    assert_eq!(stats.requests, 6, "each item: one request, one refresh, one retry");
    assert_eq!(stats.token_requests, 4, "the first token, then one refresh per item");
    for (_, summary, _, _) in env.failed_items("unauth").await {
        assert_eq!((summary.class.as_str(), summary.status, summary.attempts), ("auth", Some(401), 1));
    }
    assert!(w.terminate(Duration::from_secs(20)).success());

    env.sim.set_faults(FaultUpdate {
        force_status: Some(ForceStatus { status: 403, for_ms: 600_000, retry_after_secs: None }),
        ..FaultUpdate::default()
    });
    env.enqueue_items("forbidden", &(0..3).map(|i| item(i, None)).collect::<Vec<_>>(), &[]);
    let _w = env.spawn_worker(1);
    let report = env.wait_finished("forbidden", Duration::from_secs(30)).await;
    assert_eq!((report.succeeded, report.failed), (0, 3));
    for (_, summary, _, _) in env.failed_items("forbidden").await {
        assert_eq!((summary.class.as_str(), summary.status, summary.attempts), ("permission", Some(403), 1));
        assert!(summary.reason.contains("permission"), "{}", summary.reason);
    }
}

/// No answer at all — connection refused, or a timeout — is retried, then failed as transport.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_and_timeouts_retry_then_fail() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_MAX_ATTEMPTS", 3).set("CXRELAY_BACKOFF_BASE_MS", 20).set("CXRELAY_BREAKER_COOLDOWN_MS", 300);
    // A port nothing listens on (bound, then released), with a static token: no token endpoint.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let sim_base = env.sim.base_url();
    env.set("CXRELAY_API_BASE", format!("http://{closed}")).set("CXRELAY_AUTH", "static_bearer").set("CXRELAY_TOKEN", "fixed-token");
    env.enqueue_items("refused", &(0..4).map(|i| item(i, None)).collect::<Vec<_>>(), &[]);
    let mut w = env.spawn_worker(2);
    let report = env.wait_finished("refused", Duration::from_secs(60)).await;
    assert_eq!((report.succeeded, report.failed), (0, 4));
    for (_, summary, _, history) in env.failed_items("refused").await {
        assert_eq!((summary.class.as_str(), summary.status, summary.attempts), ("transport", None, 3));
        assert!(summary.reason.contains("connect"), "{}", summary.reason);
        assert_eq!(history.iter().filter(|h| h.outcome != "deferred").count(), 3);
    }
    assert!(w.terminate(Duration::from_secs(20)).success());

    env.set("CXRELAY_API_BASE", sim_base).set("CXRELAY_AUTH", "client_credentials_form").set("CXRELAY_REQUEST_TIMEOUT_MS", 300);
    let items: Vec<Value> = (0..6).map(|i| if i < 2 { item(i, Some(json!({"delay_ms": 5000}))) } else { item(i, None) }).collect();
    env.enqueue_items("slow", &items, &[]);
    let _w = env.spawn_worker(4);
    let report = env.wait_finished("slow", Duration::from_secs(60)).await;
    assert_eq!((report.succeeded, report.failed), (4, 2));
    for (index, summary, _, _) in env.failed_items("slow").await {
        assert!(index < 2);
        assert_eq!((summary.class.as_str(), summary.attempts), ("transport", 3));
        assert!(summary.reason.contains("timeout"), "{}", summary.reason);
    }
}

/// An item whose workers keep dying while they send it is failed as poison once it was taken
/// over more than `max_redeliveries` times — instead of killing workers forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_item_fails_after_max_redeliveries() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_MAX_REDELIVERIES", 1).set("CXRELAY_LEASE_MS", 1000);
    let items: Vec<Value> = (0..5).map(|i| if i == 0 { item(i, Some(json!({"delay_ms": 600_000}))) } else { item(i, None) }).collect();
    env.enqueue_items("poison", &items, &[]);
    // Each worker takes the item, hangs in its request, and is killed; the next takes it over.
    let mut first = env.spawn_worker(2);
    env.wait_report("poison", Duration::from_secs(30), |r| r.succeeded == 4).await;
    env.eventually("the first send of item 0", Duration::from_secs(10), || async { env.sim.stats().requests >= 5 }).await;
    first.kill9();
    let mut second = env.spawn_worker(2);
    env.eventually("item 0 re-sent after the take-over", Duration::from_secs(20), || async { env.sim.stats().requests >= 6 }).await;
    second.kill9();
    let _third = env.spawn_worker(2);
    let report = env.wait_finished("poison", Duration::from_secs(30)).await;
    assert_eq!((report.succeeded, report.failed), (4, 1));
    assert_eq!(env.sim.stats().requests, 6, "the poison item is not sent a third time");
    let failed = env.failed_items("poison").await;
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].0, failed[0].1.class.as_str()), (0, "poison"));
    assert!(failed[0].1.reason.contains("poison item"), "{}", failed[0].1.reason);
}
