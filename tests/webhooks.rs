//! Monitoring webhooks end to end, against the simulator's Standard Webhooks receiver (which
//! verifies every signature): a receiver that is down for a while gets every event once it is
//! up, once per `webhook-id`, in order per run; a kill -9 of the dispatching worker loses none.

mod harness;

use std::collections::HashSet;
use std::time::Duration;

use cxrelay_core::Secret;
use cxrelay_sim::SimConfig;
use harness::TestEnv;
use serde_json::{json, Value};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn env_with_receiver() -> TestEnv {
    let mut env = TestEnv::start(SimConfig { webhook_secret: Some(Secret::new(SECRET)), ..SimConfig::default() }).await;
    let url = env.sim.webhook_url();
    env.set("CXRELAY_WEBHOOK_URL", url).set("CXRELAY_WEBHOOK_SECRET", SECRET).set("CXRELAY_LEASE_MS", 1500);
    env
}

fn items(n: usize, failing: &[usize]) -> Vec<Value> {
    (0..n).map(|i| if failing.contains(&i) { json!({"n": i, "_sim": {"status": 400}}) } else { json!({"n": i}) }).collect()
}

/// The event types received for `run`, in arrival order.
fn received_for(env: &TestEnv, run: &str) -> Vec<(String, Value)> {
    env.sim.webhooks().received.into_iter().filter(|w| w.data["run_id"] == json!(run)).map(|w| (w.event_type, w.data)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_was_down_gets_every_event_once_and_in_order() {
    let mut env = env_with_receiver().await;
    env.sim.set_webhooks_down(true);
    env.enqueue_items("hooked", &items(20, &[3, 7, 11]), &[]);
    let mut first = env.spawn_worker(4);
    let report = env.wait_finished("hooked", Duration::from_secs(60)).await;
    assert_eq!(report.failed, 3);

    // Down: the events wait in the outbox, and the endpoint is reported failing.
    env.eventually("a refused delivery", Duration::from_secs(10), || async { env.sim.webhooks().refused_while_down > 0 }).await;
    let out = env.cxrelay().args(["webhooks", "status", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(status[0]["failing_since"].is_string() && status[0]["pending"].as_u64().unwrap() >= 5, "{status}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));

    // The dispatching worker dies while the receiver is down; another one delivers everything.
    first.kill9();
    env.sim.set_webhooks_down(false);
    let _second = env.spawn_worker(4);
    env.eventually("every event delivered", Duration::from_secs(30), || async {
        received_for(&env, "hooked").iter().any(|(kind, _)| kind == "run.completed")
    })
    .await;
    let log = env.sim.webhooks();
    assert_eq!(log.rejected, 0, "every signature verified");
    assert!(log.received.iter().all(|w| w.verified));
    let ids: HashSet<&str> = log.received.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids.len(), log.received.len(), "the receiver recorded each webhook-id once");

    let events = received_for(&env, "hooked");
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run.started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"run.completed"), "in order per run: {kinds:?}");
    let failed: Vec<u64> = events.iter().filter(|(k, _)| k == "item.failed").map(|(_, d)| d["index"].as_u64().unwrap()).collect();
    let mut sorted = failed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![3, 7, 11], "{events:?}");
    let completed = &events.last().unwrap().1;
    assert_eq!((completed["succeeded"].as_u64(), completed["failed"].as_u64()), (Some(17), Some(3)), "{completed}");
    assert!((completed["completion_rate"].as_f64().unwrap() - 0.85).abs() < 1e-9, "{completed}");
    let failed_event = events.iter().find(|(k, _)| k == "item.failed").unwrap();
    assert_eq!(failed_event.1["status"], json!(400), "{failed_event:?}");

    // Operator actions reach the receiver too.
    let out = env.cxrelay().args(["replay", "hooked", "--all-failed", "--reason", "fixed upstream", "--by", "carol"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    env.eventually("replay.started delivered", Duration::from_secs(30), || async {
        received_for(&env, "hooked").iter().any(|(k, d)| k == "replay.started" && d["by"] == json!("carol"))
    })
    .await;
}

/// An outbox that outgrows its cap (`CXRELAY_OUTBOX_LEN`) while the receiver is down loses its
/// oldest events, but says how many: what was delivered plus what was trimmed is every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_counts_what_it_trimmed() {
    let mut env = env_with_receiver().await;
    env.set("CXRELAY_OUTBOX_LEN", 100).set("CXRELAY_WEBHOOK_EVENTS", "item.failed,run.completed");
    env.sim.set_webhooks_down(true);
    let all: Vec<usize> = (0..400).collect();
    env.enqueue_items("flood", &items(400, &all), &[]);
    let metrics_addr = format!("127.0.0.1:{}", TestEnv::free_port());
    let _w = env.spawn_cxrelay(&["worker", "--concurrency", "16", "--metrics-addr", &metrics_addr]);
    env.wait_finished("flood", Duration::from_secs(60)).await;
    env.sim.set_webhooks_down(false);
    env.eventually("run.completed delivered", Duration::from_secs(30), || async {
        received_for(&env, "flood").iter().any(|(kind, _)| kind == "run.completed")
    })
    .await;
    let received = received_for(&env, "flood").len() as u64;
    let out = env.cxrelay().args(["webhooks", "status", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let trimmed = status[0]["trimmed"].as_u64().unwrap_or_else(|| panic!("{status}"));
    assert!(trimmed >= 200, "400 failures and a cap of about 100: {status}");
    assert_eq!(received + trimmed, 401, "every event delivered or counted as trimmed ({received} received): {status}");
    let text = reqwest::get(format!("http://{metrics_addr}/metrics")).await.unwrap().text().await.unwrap();
    assert!(text.contains(&format!("cxrelay_webhook_outbox_trimmed_total {trimmed}")), "{text}");
    let out = env.cxrelay().args(["webhooks", "status"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("trimmed {trimmed}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_settings_and_the_test_command() {
    let env = env_with_receiver().await;
    let out = env.cxrelay().args(["webhooks", "test", &env.sim.webhook_url()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = env.sim.webhooks();
    assert_eq!(log.received.len(), 1);
    assert_eq!((log.received[0].event_type.as_str(), log.received[0].verified), ("webhook.test", true));

    for (var, value, says) in [
        ("CXRELAY_WEBHOOK_URL", "ftp://example.com/x", "not an http(s) URL"),
        ("CXRELAY_WEBHOOK_SECRET", "not-a-secret", "whsec_"),
        ("CXRELAY_WEBHOOK_EVENTS", "run.exploded", "unknown event \"run.exploded\""),
    ] {
        let out = env.cxrelay().args(["runs"]).env(var, value).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {err}");
        assert!(err.contains(says), "{var}: {err}");
        assert!(!err.contains(SECRET), "{err}");
    }
}

/// The seed's "more than 5 consecutive 5xx: break and alert" is the breaker, and its alert is a
/// webhook: `breaker.opened` then `breaker.closed` reach the receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_alerts_through_its_webhook() {
    let mut env = env_with_receiver().await;
    env.sim.set_faults(cxrelay_sim::FaultUpdate { error_rate: Some(1.0), ..cxrelay_sim::FaultUpdate::default() });
    env.set("CXRELAY_BREAKER_COOLDOWN_MS", 500).set("CXRELAY_MAX_ATTEMPTS", 50).set("CXRELAY_BACKOFF_BASE_MS", 50);
    env.enqueue_generated("storm", 100);
    let _w = env.spawn_worker(8);
    let kinds = || env.sim.webhooks().received.into_iter().map(|w| (w.event_type, w.data)).collect::<Vec<_>>();
    env.eventually("breaker.opened delivered", Duration::from_secs(30), || async { kinds().iter().any(|(k, _)| k == "breaker.opened") }).await;
    let (_, data) = kinds().into_iter().find(|(k, _)| k == "breaker.opened").unwrap();
    assert_eq!(data["tenant"], json!("default"), "{data}");
    env.sim.set_faults(cxrelay_sim::FaultUpdate { error_rate: Some(0.0), ..cxrelay_sim::FaultUpdate::default() });
    env.wait_finished("storm", Duration::from_secs(60)).await;
    env.eventually("breaker.closed delivered", Duration::from_secs(30), || async { kinds().iter().any(|(k, _)| k == "breaker.closed") }).await;
}
