//! End to end: items become exactly-once POSTs through several worker processes.

mod harness;

use std::collections::HashSet;
use std::time::Duration;

use cxrelay_sim::SimConfig;
use harness::TestEnv;

/// 2,000 items through 2 worker processes: the ledger holds exactly the 2,000 keys, none
/// applied twice, and the report says 100% and agrees with the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_deliver_each_item_exactly_once() {
    let mut env = TestEnv::start(SimConfig { latency: Duration::from_millis(2), ..SimConfig::default() }).await;
    env.enqueue_generated("two-workers", 2000);
    let mut w1 = env.spawn_worker(32);
    let mut w2 = env.spawn_worker(32);
    let report = env.wait_finished("two-workers", Duration::from_secs(60)).await;

    let ledger = env.sim.ledger();
    let stats = env.sim.stats();
    let keys: HashSet<String> = ledger.entries.iter().map(|e| e.key.clone()).collect();
    let expected: HashSet<String> = (0..2000).map(|i| format!("two-workers:{i}")).collect();
    assert_eq!(keys, expected, "ledger keys must be exactly the run's items");
    assert_eq!(ledger.applied, 2000);
    assert_eq!(ledger.duplicates, 0, "no item may be sent twice");
    assert!(ledger.entries.iter().all(|e| e.count == 1));
    assert_eq!(report.succeeded, 2000);
    assert_eq!(report.succeeded, ledger.applied);
    assert_eq!((report.failed, report.pending, report.validation_failures), (0, 0, 0));
    assert_eq!(report.completion_rate, 1.0);
    assert_eq!(report.high_water, 2000);
    assert_eq!(stats.status_401, 0);

    // Both processes took part, and SIGTERM ends each one cleanly.
    for w in [&mut w1, &mut w2] {
        let status = w.terminate(Duration::from_secs(20));
        assert!(status.success(), "worker exit status {status:?}");
    }
    let logs = env.logs();
    assert_eq!(logs.matches("worker started").count(), 2, "{logs}");
}

/// Re-running the producer with the same run id enqueues nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_run_id_does_not_duplicate_items() {
    let env = TestEnv::start(SimConfig::default()).await;
    env.enqueue_generated("again", 300);
    let out = env.enqueue("action-1", "again", &env.dir.join("again.json"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["accepted"], 0);
    assert_eq!(summary["already_enqueued"], 300);

    // Same id, other action: refused, the run untouched.
    let out = env.enqueue("other-action", "again", &env.dir.join("again.json"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists for action"), "{}", String::from_utf8_lossy(&out.stderr));

    let mut env = env;
    let _w = env.spawn_worker(16);
    let report = env.wait_finished("again", Duration::from_secs(60)).await;
    assert_eq!((report.total, report.succeeded), (300, 300));
    assert_eq!(env.sim.ledger().applied, 300);
    assert_eq!(env.sim.ledger().duplicates, 0);
}

/// `--max-items` is the seed's max-iterations break: later items are not enqueued and the run says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_items_breaks_and_is_recorded() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let items: Vec<serde_json::Value> = (0..50).map(|i| serde_json::json!({"n": i})).collect();
    let file = env.write_items("max.json", &items);
    let out = env.cxrelay().args(["enqueue", "--json", "--action", "a", "--run-id", "maxed", "--max-items", "20"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((summary["accepted"].as_u64(), summary["beyond_max"].as_u64()), (Some(20), Some(30)));
    let _w = env.spawn_worker(8);
    let report = env.wait_finished("maxed", Duration::from_secs(30)).await;
    assert_eq!(report.succeeded, 20);
    assert_eq!(report.skipped_beyond_max, 30);
    assert!(report.break_condition.as_deref().unwrap_or("").contains("maximum iteration count (20)"));
    assert_eq!(env.sim.ledger().applied, 20);
}
