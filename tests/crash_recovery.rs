//! Durability with real processes: a worker killed with kill -9 loses nothing.

mod harness;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use cxrelay_sim::SimConfig;
use harness::TestEnv;
use redis::AsyncCommands;

/// Pending entries of the consumer whose name carries `pid`, from `XINFO CONSUMERS`.
async fn pending_of(conn: &mut cxrelay_queue::RedisConn, stream: &str, pid: u32) -> Option<u64> {
    let consumers: Vec<HashMap<String, redis::Value>> =
        redis::cmd("XINFO").arg("CONSUMERS").arg(stream).arg("workers").query_async(conn).await.ok()?;
    let needle = format!("-{pid}-");
    consumers.iter().find_map(|c| {
        let name: String = redis::from_redis_value(c.get("name")?.clone()).ok()?;
        if !name.contains(&needle) {
            return None;
        }
        redis::from_redis_value(c.get("pending")?.clone()).ok()
    })
}

use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_items_are_rerun_within_the_default_lease() {
    const N: usize = 1500;
    // The default lease (no CXRELAY_LEASE_MS): a killed pod's items must run again within 3 s.
    const LEASE_MS: u64 = cxrelay_core::config::DEFAULT_LEASE_MS;
    let mut env = TestEnv::start(SimConfig { latency: Duration::from_millis(100), ..SimConfig::default() }).await;
    env.enqueue_generated("crash", N);
    let mut victim = env.spawn_worker(50);
    // The survivor runs beside it from the start, as the other pods of a fleet do.
    let _survivor = env.spawn_worker(50);

    // Let them get going, then kill the victim while it holds items.
    env.wait_report("crash", Duration::from_secs(30), |r| r.succeeded >= 200).await;
    let mut conn = env.redis().await;
    let stream = env.run_keys("crash").items;
    let stream = stream.as_str();
    let held = pending_of(&mut conn, stream, victim.pid()).await.expect("victim's consumer");
    assert!(held > 0, "the victim must hold in-flight items when killed");
    let pid = victim.pid();
    victim.kill9();
    let killed_at = Instant::now();

    // Its items are taken over by the survivor within the lease (plus one reclaim period).
    loop {
        let left = pending_of(&mut conn, stream, pid).await.unwrap_or(0);
        if left == 0 {
            break;
        }
        assert!(killed_at.elapsed() < Duration::from_millis(LEASE_MS * 3), "{left} items still held by the dead worker");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let takeover = killed_at.elapsed();
    const { assert!(LEASE_MS + LEASE_MS / 4 + 500 <= 3000, "the default lease must allow recovery within 3 s") };
    assert!(takeover <= Duration::from_millis(3000), "take-over took {takeover:?} with the default {LEASE_MS} ms lease");

    let report = env.wait_finished("crash", Duration::from_secs(90)).await;
    assert_eq!(report.succeeded, N as u64, "0 items lost");
    assert_eq!((report.failed, report.pending), (0, 0));
    let ledger = env.sim.ledger();
    let keys: HashSet<String> = ledger.entries.iter().map(|e| e.key.clone()).collect();
    assert_eq!(keys.len(), N);
    let indexes: HashSet<&str> = keys.iter().filter_map(|k| k.rsplit(':').next()).collect();
    assert!((0..N).all(|i| indexes.contains(i.to_string().as_str())));
    assert_eq!(ledger.applied, N as u64, "every key applied exactly once");
    // Only items the victim had sent but not checkpointed may arrive twice (acknowledged by
    // their idempotency key, not applied again).
    assert!(ledger.duplicates <= held, "{} duplicates > {held} held", ledger.duplicates);
    let stream_len: u64 = conn.xlen(stream).await.unwrap_or(0);
    assert_eq!(stream_len, 0, "every entry acknowledged and deleted");
}
