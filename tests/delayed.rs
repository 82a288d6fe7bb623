//! 50,000 retries falling due at the same moment are promoted in slices and all delivered.

mod harness;

use std::time::Duration;

use cxrelay_core::{ItemOutcome, OutcomeKind, RunId};
use cxrelay_queue::Checkpoint;
use cxrelay_sim::SimConfig;
use harness::TestEnv;
use redis::AsyncCommands;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_due_retries_do_not_break_fetching() {
    const N: usize = 50_000;
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.enqueue_generated("due", N);

    // Deliver every item to a stand-in consumer and record each as a retry due right now.
    let store = env.store().await;
    let meta = std::sync::Arc::new(store.run_meta(&RunId::parse("due").unwrap()).await.unwrap().unwrap());
    let mut parked = 0;
    loop {
        let fetched = store.fetch(&meta, "stand-in", 1000).await.unwrap();
        if fetched.deliveries.is_empty() {
            break;
        }
        let batch: Vec<Checkpoint> = fetched
            .deliveries
            .into_iter()
            .map(|d| {
                let job = d.into_job(&meta);
                let outcome = ItemOutcome {
                    kind: OutcomeKind::Retry { delay_ms: 3_600_000 },
                    attempts: 1,
                    throttled: 0,
                    status: Some(503),
                    class: Some(cxrelay_core::classify::FailureClass::Server),
                    latency_us: 1000,
                    error: Some("HTTP 503".into()),
                };
                Checkpoint::of(&job, outcome)
            })
            .collect();
        parked += store.checkpoint(&meta, &batch, "stand-in").await.unwrap().requeued;
    }
    assert_eq!(parked, N as u64);
    // Parked an hour ahead (so the stand-in's own fetches do not promote them); now make every
    // one of them due at the same instant: score 0.
    let mut conn = env.redis().await;
    let delayed = env.run_keys("due").delayed;
    let _: u64 = redis::cmd("ZUNIONSTORE").arg(&delayed).arg(1).arg(&delayed).arg("WEIGHTS").arg(0).query_async(&mut conn).await.unwrap();
    let due: u64 = conn.zcount(&delayed, 0, 0).await.unwrap();
    assert_eq!(due, N as u64, "all retries are due at once");

    let _w = env.spawn_worker(64);
    let report = env.wait_finished("due", Duration::from_secs(240)).await;
    assert_eq!(report.succeeded, N as u64);
    assert_eq!(report.retries, N as u64);
    let ledger = env.sim.ledger();
    assert_eq!((ledger.applied, ledger.duplicates), (N as u64, 0));
    assert!(!env.logs().contains("fetch failed"), "{}", env.logs());
}

/// One fetch promotes due retries by bytes as well as by count: 30 due retries of ~200 KB each
/// are moved a few MB at a time, never all at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_is_bounded_by_bytes() {
    const N: usize = 30;
    let env = TestEnv::start(SimConfig::default()).await;
    let items: Vec<serde_json::Value> = (0..N).map(|i| serde_json::json!({"seq": i, "blob": "x".repeat(200 * 1024)})).collect();
    env.enqueue_items("big", &items, &[]);
    let store = env.store().await;
    let meta = std::sync::Arc::new(store.run_meta(&RunId::parse("big").unwrap()).await.unwrap().unwrap());
    let fetched = store.fetch(&meta, "stand-in", N).await.unwrap();
    assert_eq!(fetched.deliveries.len(), N);
    let batch: Vec<Checkpoint> = fetched
        .deliveries
        .into_iter()
        .map(|d| {
            let job = d.into_job(&meta);
            let outcome = ItemOutcome {
                kind: OutcomeKind::Retry { delay_ms: 3_600_000 },
                attempts: 1,
                throttled: 0,
                status: Some(503),
                class: Some(cxrelay_core::classify::FailureClass::Server),
                latency_us: 1000,
                error: Some("HTTP 503".into()),
            };
            Checkpoint::of(&job, outcome)
        })
        .collect();
    assert_eq!(store.checkpoint(&meta, &batch, "stand-in").await.unwrap().requeued, N as u64);
    let mut conn = env.redis().await;
    let keys = env.run_keys("big");
    let _: u64 = redis::cmd("ZUNIONSTORE").arg(&keys.delayed).arg(1).arg(&keys.delayed).arg("WEIGHTS").arg(0).query_async(&mut conn).await.unwrap();

    store.fetch(&meta, "stand-in", 1).await.unwrap();
    let left: usize = conn.zcard(&keys.delayed).await.unwrap();
    let promoted = N - left;
    let per_item = 200 * 1024;
    let bound = cxrelay_queue::store::PROMOTE_BYTES / per_item + 1;
    assert!(promoted > 0 && promoted <= bound, "{promoted} promoted in one fetch (at most {bound} by bytes)");
    assert!(left > 0, "not everything at once");
}
