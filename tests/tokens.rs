//! Token handling against the simulator: refresh ahead of expiry, single-flight refresh.

mod harness;

use std::time::Duration;

use cxrelay_sim::SimConfig;
use harness::TestEnv;

/// Tokens live 3 s; the run lasts several lifetimes: tokens are refreshed ahead of expiry and
/// no 401 ever reaches an item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_refreshed_before_expiry() {
    let mut env =
        TestEnv::start(SimConfig { token_lifetime: Duration::from_secs(3), latency: Duration::from_millis(40), ..SimConfig::default() }).await;
    env.enqueue_generated("tokens", 800);
    let _w = env.spawn_worker(4);
    let report = env.wait_finished("tokens", Duration::from_secs(90)).await;
    let stats = env.sim.stats();
    assert!(report.elapsed_s > 6.0, "the run must outlast two token lifetimes ({} s)", report.elapsed_s);
    assert!(stats.tokens_issued >= 3, "tokens issued: {}", stats.tokens_issued);
    assert_eq!(report.succeeded, 800);
    assert_eq!(report.failed, 0, "no 401 may reach an item outcome");
    assert_eq!(stats.status_401, 0, "tokens are refreshed before they expire");
}

/// 100 items start at once on a cold token cache: exactly one token request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_first_requests_share_one_token_request() {
    let mut env = TestEnv::start(SimConfig { latency: Duration::from_millis(300), ..SimConfig::default() }).await;
    env.enqueue_generated("cold", 100);
    let _w = env.spawn_worker(100);
    let report = env.wait_finished("cold", Duration::from_secs(60)).await;
    let stats = env.sim.stats();
    assert_eq!(report.succeeded, 100);
    assert!(stats.max_concurrent >= 50, "requests must really overlap (peak {})", stats.max_concurrent);
    assert_eq!(stats.token_requests, 1, "single-flight refresh");
}
