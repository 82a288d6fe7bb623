//! Redis killed (SIGKILL) and restarted from its AOF mid-run: every process reconnects and the
//! run completes with nothing lost.

mod harness;

use std::collections::HashSet;
use std::time::Duration;

use cxrelay_sim::SimConfig;
use harness::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_survives_a_redis_restart() {
    const N: usize = 3000;
    let mut env = TestEnv::start_with(SimConfig { latency: Duration::from_millis(5), ..SimConfig::default() }, true).await;
    env.set("CXRELAY_LEASE_MS", 3000);
    env.enqueue_generated("restart", N);
    let mut w1 = env.spawn_worker(16);
    let mut w2 = env.spawn_worker(16);
    env.wait_report("restart", Duration::from_secs(60), |r| r.succeeded >= 500).await;
    env.redis.as_mut().expect("private redis").kill_and_restart(Duration::from_secs(1));

    let report = env.wait_finished("restart", Duration::from_secs(120)).await;
    assert_eq!((report.succeeded, report.failed, report.pending), (N as u64, 0, 0), "0 lost");
    let ledger = env.sim.ledger();
    let keys: HashSet<String> = ledger.entries.iter().map(|e| e.key.clone()).collect();
    assert_eq!(keys.len(), N);
    assert_eq!(ledger.applied, N as u64);
    // Both workers lived through it and still stop cleanly.
    for w in [&mut w1, &mut w2] {
        assert!(w.child.try_wait().unwrap().is_none(), "a worker died\n{}", env.logs());
        assert!(w.terminate(Duration::from_secs(30)).success());
    }
}
