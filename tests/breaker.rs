//! The fleet-wide circuit breaker: it opens on a storm and closes when the target heals, never
//! trips on a healthy target's random errors, and never wedges a run whose own items fail.

mod harness;

use std::time::{Duration, Instant};

use cxrelay_sim::{FaultUpdate, SimConfig};
use harness::TestEnv;
use redis::AsyncCommands;

/// The breaker events of the default tenant: (type, failures in the window when it happened).
async fn breaker_events(env: &TestEnv) -> Vec<(String, u64)> {
    let mut conn = env.redis().await;
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(env.keys().breaker_events("default")).await.unwrap();
    let field = |e: &redis::streams::StreamId, k: &str| e.map.get(k).and_then(|v| redis::from_redis_value::<String>(v.clone()).ok());
    reply.ids.iter().map(|e| (field(e, "type").unwrap_or_default(), field(e, "failures").and_then(|f| f.parse().ok()).unwrap_or(0))).collect()
}

async fn events(env: &TestEnv) -> Vec<String> {
    breaker_events(env).await.into_iter().map(|(kind, _)| kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_opens_the_breaker_and_a_probe_closes_it() {
    const COOLDOWN_MS: u64 = 2000;
    let mut env = TestEnv::start(SimConfig { error_rate: 1.0, ..SimConfig::default() }).await;
    env.set("CXRELAY_BREAKER_COOLDOWN_MS", COOLDOWN_MS).set("CXRELAY_MAX_ATTEMPTS", 50).set("CXRELAY_BACKOFF_BASE_MS", 50);
    env.enqueue_generated("storm", 400);
    let _w1 = env.spawn_worker(8);
    let _w2 = env.spawn_worker(8);

    // The storm opens the breaker and the event is recorded.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !events(&env).await.iter().any(|e| e == "breaker.opened") {
        assert!(Instant::now() < deadline, "breaker never opened\n{}", env.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The target recovers: a half-open probe succeeds, the breaker closes, everything succeeds.
    env.sim.set_faults(FaultUpdate { error_rate: Some(0.0), ..FaultUpdate::default() });
    let report = env.wait_finished("storm", Duration::from_secs(60)).await;
    assert_eq!((report.succeeded, report.failed), (400, 0), "items are delayed, never failed, while the breaker is open");
    let kinds = events(&env).await;
    assert!(kinds.iter().any(|e| e == "breaker.closed"), "{kinds:?}");
    assert!(env.logs().contains("breaker.opened"), "structured log event");
    let ledger = env.sim.ledger();
    assert_eq!(ledger.applied, 400);
    // Sends stopped while it was open: in the arrivals, the failures that opened it are followed
    // by a silence of (almost) the whole cooldown before the half-open probe.
    let mut times: Vec<u64> = env.sim.arrivals().iter().map(|a| a.t_us).collect();
    times.sort_unstable();
    let gap = times.windows(2).position(|w| w[1] - w[0] >= (COOLDOWN_MS - 300) * 1000);
    let before = gap.expect("no silence of the cooldown's length: requests were sent while the breaker was open") + 1;
    assert!(before <= 6 + 16, "{before} requests before the breaker stopped sends");
    // It opened as soon as the configured count was exceeded (more than 5 failures in the
    // window), give or take the requests already in flight from the two workers.
    let (_, failures) = breaker_events(&env).await.into_iter().find(|(k, _)| k == "breaker.opened").unwrap();
    assert!((6..=6 + 16).contains(&failures), "opened at {failures} failures");
    // Deferrals are recorded in the items' histories as such, and cost no attempt.
    let store = env.store().await;
    let run = cxrelay_core::RunId::parse("storm").unwrap();
    let mut deferred = 0;
    for index in 0..400 {
        deferred +=
            store.history(&run, index).await.unwrap().iter().filter(|h| h.outcome == "deferred" && h.class.as_deref() == Some("deferred")).count();
    }
    assert!(deferred > 0, "breaker deferrals are in the attempt histories");
}

/// 5% of the items always answer 503 (a Data Action that crashes on certain input): the run
/// finishes with exactly those items failed, each after its full attempt budget, whether or not
/// the breaker opens on the run's tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_that_always_fail_do_not_wedge_the_run() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_MAX_ATTEMPTS", 4).set("CXRELAY_BACKOFF_BASE_MS", 50);
    let items: Vec<serde_json::Value> = (0..400)
        .map(|i| {
            if i % 20 == 7 {
                serde_json::json!({"customer_id": format!("c{i}"), "_sim": {"status": 503}})
            } else {
                serde_json::json!({"customer_id": format!("c{i}")})
            }
        })
        .collect();
    env.enqueue_items("crashy", &items, &[]);
    let _w1 = env.spawn_worker(8);
    let _w2 = env.spawn_worker(8);
    let report = env.wait_finished("crashy", Duration::from_secs(90)).await;
    assert_eq!((report.succeeded, report.failed), (380, 20), "{report:#?}");
    let failed = env.failed_items("crashy").await;
    assert!(failed.iter().all(|(i, s, _, _)| i % 20 == 7 && s.attempts == 4 && s.class == "5xx"), "{failed:?}");
    assert_eq!(env.sim.stats().requests, 380 + 20 * 4, "probes are real attempts of their items: no extra sends");
}

/// A healthy target with 5% random 5xx over 20,000+ requests from 3 workers: the breaker never
/// opens (every answer is counted, none approximately).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_errors_never_open_the_breaker() {
    let mut env = TestEnv::start(SimConfig { error_rate: 0.05, ..SimConfig::default() }).await;
    env.set("CXRELAY_BACKOFF_BASE_MS", 20);
    env.enqueue_generated("noisy", 20_000);
    let _w1 = env.spawn_worker(32);
    let _w2 = env.spawn_worker(32);
    let _w3 = env.spawn_worker(32);
    let report = env.wait_finished("noisy", Duration::from_secs(180)).await;
    assert_eq!((report.succeeded, report.failed), (20_000, 0));
    let stats = env.sim.stats();
    assert!(stats.requests >= 20_000 && stats.status_5xx >= 500, "{stats:?}");
    assert_eq!(events(&env).await, Vec::<String>::new(), "the breaker opened on random noise");
}
