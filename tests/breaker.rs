//! The fleet-wide circuit breaker under a 5xx storm.

mod harness;

use std::time::{Duration, Instant};

use cxrelay_sim::{FaultUpdate, SimConfig};
use harness::TestEnv;
use redis::AsyncCommands;

async fn events(env: &TestEnv) -> Vec<String> {
    let mut conn = env.redis().await;
    let reply: redis::streams::StreamRangeReply = conn.xrange_all("cxr:{brk:default}:events").await.unwrap();
    reply
        .ids
        .iter()
        .filter_map(|e| e.map.get("type").and_then(|v| redis::from_redis_value::<String>(v.clone()).ok()))
        .collect()
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
    let opened = Instant::now();
    // Sends stop: after in-flight requests land, nothing arrives until the cooldown ends.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = env.sim.stats().requests;
    tokio::time::sleep((opened + Duration::from_millis(COOLDOWN_MS - 200)).saturating_duration_since(Instant::now())).await;
    let after = env.sim.stats().requests;
    assert_eq!(after, before, "requests were sent while the breaker was open");

    // The target recovers: a half-open probe succeeds, the breaker closes, everything succeeds.
    env.sim.set_faults(FaultUpdate { error_rate: Some(0.0), ..FaultUpdate::default() });
    let report = env.wait_finished("storm", Duration::from_secs(60)).await;
    assert_eq!((report.succeeded, report.failed), (400, 0), "items are delayed, never failed, while the breaker is open");
    let kinds = events(&env).await;
    assert!(kinds.iter().any(|e| e == "breaker.closed"), "{kinds:?}");
    assert!(env.logs().contains("breaker.opened"), "structured log event");
    let ledger = env.sim.ledger();
    assert_eq!(ledger.applied, 400);
}
