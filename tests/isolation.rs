//! Isolation and identity: a worker delivers only its own tenant's runs in its own namespace,
//! and Idempotency-Keys never repeat across incarnations of a run id.

mod harness;

use std::collections::HashSet;
use std::time::Duration;

use cxrelay_sim::SimConfig;
use harness::TestEnv;
use serde_json::{json, Value};

fn items(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"customer_id": format!("c{i}"), "seq": i})).collect()
}

/// Ledger keys that belong to run `run`.
fn keys_of(env: &TestEnv, run: &str) -> HashSet<String> {
    env.sim.ledger().entries.into_iter().map(|e| e.key).filter(|k| k.starts_with(&format!("{run}:"))).collect()
}

/// A tenant-b worker next to a tenant-a run sends nothing of it (it delivers a tenant-b run
/// meanwhile, which proves it was looking); then a tenant-a worker delivers it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_delivers_only_its_own_tenants_runs() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.enqueue_items("run-a", &items(50), &["--tenant", "a"]);
    env.enqueue_items("run-b", &items(30), &["--tenant", "b"]);
    env.set("CXRELAY_TENANT", "b");
    let mut wb = env.spawn_worker(8);
    let report_b = env.wait_finished("run-b", Duration::from_secs(30)).await;
    assert_eq!((report_b.succeeded, report_b.tenant.as_str()), (30, "b"));
    // Run a was listed before run b, so the worker that finished run b had looked at the runs
    // it can see more than once: none of tenant a's items went out.
    let store = env.store().await;
    let run_a = cxrelay_core::RunId::parse("run-a").unwrap();
    assert!(keys_of(&env, "run-a").is_empty(), "a tenant-b worker sent tenant-a items");
    assert_eq!(store.report(&run_a).await.unwrap().pending, 50);
    assert!(wb.terminate(Duration::from_secs(20)).success());

    env.set("CXRELAY_TENANT", "a");
    let _wa = env.spawn_worker(8);
    let report_a = env.wait_finished("run-a", Duration::from_secs(30)).await;
    assert_eq!((report_a.succeeded, report_a.tenant.as_str()), (50, "a"));
    assert_eq!(keys_of(&env, "run-a").len(), 50);
    assert_eq!(env.sim.stats().requests, 80);

    // A run id belongs to one tenant.
    let file = env.write_items("again.json", &items(1));
    let out = env.cxrelay().args(["enqueue", "--action", "action-1", "--run-id", "run-a", "--tenant", "b"]).arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists for tenant"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Two deployments sharing one Redis under different namespaces never see each other's runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_do_not_see_each_other() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let home = env.namespace.clone();
    env.enqueue_items("mine", &items(20), &[]);
    env.set("CXRELAY_NAMESPACE", format!("{home}-other"));
    env.enqueue_items("theirs", &items(10), &[]);
    let mut other = env.spawn_worker(4);
    // Their worker delivers their run (the report is read in their namespace)…
    let conn = env.redis().await;
    let state = format!("{home}-other:{{run:theirs}}:state");
    env.eventually("their run to finish", Duration::from_secs(30), || {
        let (mut conn, state) = (conn.clone(), state.clone());
        async move { redis::cmd("HGET").arg(state).arg("status").query_async::<Option<String>>(&mut conn).await.unwrap().as_deref() == Some("finished") }
    })
    .await;
    assert!(keys_of(&env, "mine").is_empty(), "a worker of another namespace sent our items");
    assert!(other.terminate(Duration::from_secs(20)).success());
    // …and ours delivers ours.
    env.set("CXRELAY_NAMESPACE", home);
    let _w = env.spawn_worker(4);
    assert_eq!(env.wait_finished("mine", Duration::from_secs(30)).await.succeeded, 20);
    assert_eq!(env.sim.stats().requests, 30);
}

/// A run id reused after its data expired gets new Idempotency-Keys, so the target applies every
/// item again; within one incarnation an item keeps its key across retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_run_id_gets_new_idempotency_keys() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_BACKOFF_BASE_MS", 20);
    // Item 3 fails twice, then succeeds: the simulator counts failures per Idempotency-Key, so
    // it only succeeds if all three attempts carried the same key.
    let mut list = items(20);
    list[3] = json!({"customer_id": "c3", "seq": 3, "_sim": {"status": 503, "fail_times": 2}});
    env.enqueue_items("reused", &list, &[]);
    let _w = env.spawn_worker(4);
    let first = env.wait_finished("reused", Duration::from_secs(30)).await;
    assert_eq!((first.succeeded, first.failed), (20, 0));
    let first_keys = keys_of(&env, "reused");
    assert_eq!(first_keys.len(), 20, "one key per item, the retried one included");

    // The run's data is gone (as after its retention), and the same id is used again at once,
    // while the worker that delivered the first incarnation still runs.
    let keys = env.run_keys("reused");
    let _: () = redis::cmd("DEL").arg(&keys.all()[..]).query_async(&mut env.redis().await).await.unwrap();
    env.enqueue_items("reused", &items(20), &[]);
    let second = env.wait_finished("reused", Duration::from_secs(30)).await;
    assert_eq!(second.succeeded, 20);
    let ledger = env.sim.ledger();
    assert_eq!((ledger.applied, ledger.duplicates), (40, 0), "the target applied every item again");
    let all_keys = keys_of(&env, "reused");
    assert_eq!(all_keys.len(), 40, "the second incarnation used 20 new keys");
}

/// `--idempotency-field` keys items on a field: the same record in two runs has one key, so the
/// target de-duplicates it; items without the field are rejected at enqueue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_field_deduplicates_across_runs() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.enqueue_items("first", &items(10), &["--idempotency-field", "customer_id"]);
    env.enqueue_items("second", &items(10), &["--idempotency-field", "customer_id"]);
    let _w = env.spawn_worker(4);
    env.wait_finished("first", Duration::from_secs(30)).await;
    env.wait_finished("second", Duration::from_secs(30)).await;
    let ledger = env.sim.ledger();
    assert_eq!((ledger.applied, ledger.duplicates), (10, 10), "the second run's records were recognised");
    assert!(ledger.entries.iter().all(|e| e.key.starts_with("action-1:c")), "{:?}", ledger.entries.first());

    let file = env.write_items("missing.json", &[json!({"customer_id": "x"}), json!({"other": 1})]);
    let out = env.cxrelay().args(["enqueue", "--action", "action-1", "--idempotency-field", "customer_id"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("idempotency field \"customer_id\""), "{}", String::from_utf8_lossy(&out.stderr));
}
