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
    // One worker on the default single-threaded runtime, one on a multi-threaded one.
    env.set("CXRELAY_WORKER_THREADS", 2);
    let mut w2 = env.spawn_worker(32);
    let report = env.wait_finished("two-workers", Duration::from_secs(60)).await;

    let ledger = env.sim.ledger();
    let stats = env.sim.stats();
    let keys: HashSet<String> = ledger.entries.iter().map(|e| e.key.clone()).collect();
    let nonce: String = redis::cmd("HGET").arg(env.run_keys("two-workers").state).arg("nonce").query_async(&mut env.redis().await).await.unwrap();
    let expected: HashSet<String> = (0..2000).map(|i| format!("two-workers:{nonce}:{i}")).collect();
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

/// SIGTERM mid-run: the worker stops fetching, finishes and checkpoints what it holds, hands
/// back what it fetched but did not start, and exits 0; another worker finishes the run with
/// no item lost and none sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_items_and_loses_nothing() {
    const N: usize = 600;
    let mut env = TestEnv::start(SimConfig { latency: Duration::from_millis(150), ..SimConfig::default() }).await;
    env.set("CXRELAY_LEASE_MS", 30_000);
    env.enqueue_generated("graceful", N);
    let mut first = env.spawn_worker(40);
    env.wait_report("graceful", Duration::from_secs(30), |r| r.succeeded >= 100).await;
    let status = first.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}\n{}", env.logs());
    let after_stop = env.wait_report("graceful", Duration::from_secs(5), |_| true).await;

    // With a 30 s lease, anything the stopped worker still held would stall the rest of the run.
    let started = std::time::Instant::now();
    let _second = env.spawn_worker(40);
    let report = env.wait_finished("graceful", Duration::from_secs(60)).await;
    assert!(started.elapsed() < Duration::from_secs(20), "items were stranded until the lease expired");
    assert_eq!(report.succeeded, N as u64);
    assert!(after_stop.succeeded >= 100 && after_stop.succeeded < N as u64);
    let ledger = env.sim.ledger();
    assert_eq!((ledger.applied, ledger.duplicates), (N as u64, 0), "in-flight items were checkpointed, not re-sent");
}

/// A stream entry for an index already recorded as succeeded is acknowledged without a POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_success_is_never_posted_again() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.enqueue_generated("once", 20);
    let mut w = env.spawn_worker(4);
    env.wait_finished("once", Duration::from_secs(30)).await;
    assert!(w.terminate(Duration::from_secs(10)).success());

    // Re-open the run and put a second entry for index 3 in its stream (as a replay tool would).
    let mut conn = env.redis().await;
    let keys = env.run_keys("once");
    let _: () = redis::cmd("HSET").arg(&keys.state).arg("status").arg("active").query_async(&mut conn).await.unwrap();
    let _: () = redis::cmd("SADD").arg(env.keys().active_runs("default")).arg("once").query_async(&mut conn).await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&keys.items)
        .arg("*")
        .arg(&["i", "3", "a", "0", "d", "{\"customer_id\":\"c3\"}"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let _w2 = env.spawn_worker(4);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let len: u64 = redis::cmd("XLEN").arg(&keys.items).query_async(&mut conn).await.unwrap();
        if len == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "entry never consumed\n{}", env.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ledger = env.sim.ledger();
    assert_eq!((ledger.applied, ledger.duplicates), (20, 0), "index 3 was not sent again");
    assert_eq!(env.wait_report("once", Duration::from_secs(5), |_| true).await.succeeded, 20);
}

/// A finished run's per-item data expires after the retention period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_runs_expire_after_retention() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_RETENTION_SECS", 120);
    env.enqueue_generated("kept", 10);
    let _w = env.spawn_worker(4);
    env.wait_finished("kept", Duration::from_secs(30)).await;
    let mut conn = env.redis().await;
    let keys = env.run_keys("kept");
    for key in [&keys.latency, &keys.done, &keys.finished, &keys.state] {
        let ttl: i64 = redis::cmd("TTL").arg(key).query_async(&mut conn).await.unwrap();
        assert!(ttl > 0 && ttl <= 120, "{key}: ttl {ttl}");
    }
}
