//! Throughput smoke check of the execute hot path (ignored by default; run it with
//! `cargo test --release -p cxrelay-sim --test throughput -- --ignored --nocapture`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cxrelay_sim::{SimConfig, SimServer};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures throughput; run explicitly in release mode"]
async fn execute_throughput() {
    let sim = SimServer::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let tok: Value = client
        .post(format!("{}/oauth/token", sim.base_url()))
        .basic_auth("sim-client", Some("sim-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tok = Arc::new(tok["access_token"].as_str().unwrap().to_owned());
    let url = Arc::new(format!("{}/api/v1/datapoint/actions/a1/execute", sim.base_url()));
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(3);
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (client, tok, url, next) = (client.clone(), tok.clone(), url.clone(), next.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let body = json!({"index": i, "action": "a1", "inputs": {"id": i, "name": "someone"}});
                    let res = client
                        .post(url.as_str())
                        .bearer_auth(tok.as_str())
                        .header("Idempotency-Key", format!("k-{i}"))
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert!(res.status().is_success());
                    res.bytes().await.unwrap();
                }
            })
        })
        .collect();
    let started = Instant::now();
    for w in workers {
        w.await.unwrap();
    }
    let stats = sim.stats();
    let rate = stats.ok as f64 / started.elapsed().as_secs_f64();
    println!("execute throughput: {rate:.0} req/s ({} ok, peak concurrency {})", stats.ok, stats.max_concurrent);
    assert_eq!(stats.applied, stats.ok);
}
