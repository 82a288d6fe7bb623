//! Nothing grows without bound: a run whose producer died mid-load expires, and the run id is
//! printed before loading starts.

mod harness;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use futures::FutureExt;

use cxrelay_sim::SimConfig;
use harness::TestEnv;

/// A producer killed mid-load has printed the run id first; its `loading` run expires after
/// `queue.loading_ttl_secs`, and workers drop it from their tenant's active set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_producer_died_mid_load_expires() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_LOADING_TTL_SECS", 2);
    let _worker = env.spawn_worker(4);
    let mut producer = env.cxrelay().args(["enqueue", "--action", "action-1", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(producer.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let run = line.trim().to_owned();
    assert!(cxrelay_core::RunId::parse(&run).is_ok(), "the first line is the run id: {line:?}");

    // More than one chunk goes in, then the producer dies with the array still open.
    let mut stdin = producer.stdin.take().unwrap();
    stdin.write_all(b"[").unwrap();
    for i in 0..1500 {
        stdin.write_all(format!("{}{{\"seq\": {i}}}\n", if i > 0 { "," } else { "" }).as_bytes()).unwrap();
    }
    stdin.flush().unwrap();
    let keys = env.run_keys(&run);
    let conn = env.redis().await;
    let state = keys.state.clone();
    env.eventually("the first chunk to be written", Duration::from_secs(20), || {
        let (mut conn, state) = (conn.clone(), state.clone());
        async move { redis::cmd("HGET").arg(state).arg("accepted").query_async::<Option<u64>>(&mut conn).await.unwrap().unwrap_or(0) >= 1000 }
    })
    .await;
    producer.kill().unwrap();
    producer.wait().unwrap();
    let status: String = redis::cmd("HGET").arg(&keys.state).arg("status").query_async(&mut env.redis().await).await.unwrap();
    assert_eq!(status, "loading");

    let active = env.keys().active_runs("default");
    env.eventually("the unsealed run to expire and leave the active set", Duration::from_secs(20), || {
        let (mut conn, keys, active, run) = (conn.clone(), keys.clone(), active.clone(), run.clone());
        async move {
            let left: u64 = redis::cmd("EXISTS").arg(&keys.all()[..]).query_async(&mut conn).await.unwrap();
            let listed: bool = redis::cmd("SISMEMBER").arg(&active).arg(&run).query_async(&mut conn).await.unwrap();
            left == 0 && !listed
        }
    })
    .await;
    assert_eq!(env.sim.stats().requests, 0, "nothing of an unsealed run is ever sent");
}

/// The consumers of killed workers leave the run's group once they hold nothing; live ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_of_dead_workers_are_removed() {
    let mut env = TestEnv::start(SimConfig { latency: Duration::from_millis(20), ..SimConfig::default() }).await;
    env.set("CXRELAY_LEASE_MS", 1000);
    env.enqueue_generated("long", 3000);
    let mut first = env.spawn_worker(8);
    let items = env.run_keys("long").items;
    let conn = env.redis().await;
    let consumers = |conn: cxrelay_queue::RedisConn, items: String| async move {
        let mut conn = conn;
        let list: Vec<redis::Value> = redis::cmd("XINFO").arg("CONSUMERS").arg(&items).arg("workers").query_async(&mut conn).await.unwrap();
        list.len()
    };
    env.wait_report("long", Duration::from_secs(30), |r| r.succeeded >= 100).await;
    first.kill9();
    let _second = env.spawn_worker(8);
    env.wait_report("long", Duration::from_secs(30), |r| r.succeeded >= 400).await;
    assert_eq!(consumers(conn.clone(), items.clone()).await, 2, "the dead worker's consumer is still there at first");
    env.eventually("the dead worker's consumer to be removed", Duration::from_secs(30), || consumers(conn.clone(), items.clone()).map(|n| n == 1))
        .await;
    let report = env.wait_report("long", Duration::from_secs(5), |_| true).await;
    assert_eq!(report.status, cxrelay_core::report::RunStatus::Active, "removed while the run was still being delivered");
    assert_eq!(env.wait_finished("long", Duration::from_secs(60)).await.succeeded, 3000);
}
