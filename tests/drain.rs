//! Volume: more due items than apalis-redis 1.0.0 survives (its fetch breaks at ~8,000).

mod harness;

use std::time::Duration;

use cxrelay_sim::SimConfig;
use harness::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_items_drain() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.enqueue_generated("bulk", 20_000);
    let _w = env.spawn_worker(64);
    let report = env.wait_finished("bulk", Duration::from_secs(180)).await;
    assert_eq!(report.succeeded, 20_000);
    assert_eq!(report.high_water, 20_000);
    let ledger = env.sim.ledger();
    assert_eq!((ledger.applied, ledger.duplicates), (20_000, 0));
}
