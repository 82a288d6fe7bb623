//! On-call tooling end to end: failed items listed exactly, replayed exactly (never a success
//! twice), refusals, dry runs, audit records, run controls, the failure-rate guard and live
//! workers — each through the `cxrelay` binary, as an operator would.

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use cxrelay_core::report::RunStatus;
use cxrelay_sim::SimConfig;
use harness::TestEnv;
use serde_json::{json, Value};

fn item(i: usize, sim: Option<Value>) -> Value {
    match sim {
        Some(d) => json!({"customer_id": format!("c{i}"), "seq": i, "_sim": d}),
        None => json!({"customer_id": format!("c{i}"), "seq": i}),
    }
}

/// Runs `cxrelay ARGS…` and returns (exit code, stdout, stderr).
fn cli(env: &TestEnv, args: &[&str]) -> (i32, String, String) {
    let out = env.cxrelay().args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn json_of(env: &TestEnv, args: &[&str]) -> Value {
    let (code, out, err) = cli(env, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Waits until no delivery of `run` is held by a worker (running, or fetched and not started):
/// what was handed out before a pause or a cancel is sent and recorded; nothing after.
async fn wait_nothing_held(env: &TestEnv, run: &str) {
    let items = env.run_keys(run).items;
    env.eventually("held deliveries to finish", Duration::from_secs(10), || {
        let items = items.clone();
        async move {
            let summary: redis::Value = redis::cmd("XPENDING").arg(&items).arg("workers").query_async(&mut env.redis().await).await.unwrap();
            let held: u64 = match summary {
                redis::Value::Array(v) => v.first().and_then(|c| redis::from_redis_value::<u64>(c.clone()).ok()).unwrap_or(0),
                _ => 0,
            };
            held == 0 && env.sim.stats().in_flight == 0
        }
    })
    .await;
}

fn indexes(v: &Value, field: &str) -> Vec<u64> {
    v[field].as_array().unwrap().iter().map(|i| i.as_u64().unwrap()).collect()
}

/// A run where the target rejects a known subset: 400 for some items, 503 until the attempt
/// budget for others. `failed` lists exactly that subset with the right reasons, `--summary`
/// counts it; once the target recovers, `replay --status 5xx` re-sends only the 503 items, no
/// success is sent twice, and the audit stream shows the replay with who and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_items_are_listed_exactly_and_replayed_exactly() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_MAX_ATTEMPTS", 3).set("CXRELAY_BACKOFF_BASE_MS", 20).set("CXRELAY_BREAKER_THRESHOLD", 1000);
    // The 503 items fail exactly their budget (3 tries) and succeed on the next request: the
    // target "recovers" for them.
    let items: Vec<Value> = (0..40)
        .map(|i| match i % 10 {
            1 => item(i, Some(json!({"status": 400}))),
            2 => item(i, Some(json!({"status": 503, "fail_times": 3}))),
            _ => item(i, None),
        })
        .collect();
    env.enqueue_items("subset", &items, &[]);
    let mut worker = env.spawn_worker(4);
    let report = env.wait_finished("subset", Duration::from_secs(60)).await;
    assert_eq!((report.succeeded, report.failed), (32, 8), "{report:#?}");

    let failed = json_of(&env, &["failed", "subset", "--json"]);
    let rows = failed.as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["index"].as_u64().unwrap()).collect::<Vec<_>>(), vec![1, 2, 11, 12, 21, 22, 31, 32]);
    for r in rows {
        let index = r["index"].as_u64().unwrap();
        let (status, attempts, reason) =
            if index % 10 == 1 { ("400", 1, "HTTP 400") } else { ("503", 3, "gave up after 3 attempts; last: HTTP 503") };
        assert_eq!((r["status"].as_str().unwrap(), r["attempts"].as_u64().unwrap()), (status, attempts), "{r}");
        assert!(r["reason"].as_str().unwrap().starts_with(reason), "{r}");
        assert!(r["last_attempt_at"].as_str().unwrap().ends_with('Z'), "{r}");
    }
    let summary = json_of(&env, &["failed", "subset", "--summary", "--json"]);
    let counts: BTreeMap<String, u64> =
        summary.as_array().unwrap().iter().map(|g| (g["status"].as_str().unwrap().to_owned(), g["count"].as_u64().unwrap())).collect();
    assert_eq!(counts, BTreeMap::from([("400".to_owned(), 4), ("503".to_owned(), 4)]));
    let (_, csv, _) = cli(&env, &["failed", "subset", "--status", "5xx", "--csv"]);
    assert_eq!(csv.lines().count(), 5, "header and the four 503 items: {csv}");
    assert!(csv.starts_with("index,status,class,reason,attempts,first_attempt_at,last_attempt_at"), "{csv}");

    // A dry run says what would happen and changes nothing.
    let requests_before = env.sim.stats().requests;
    let dry = json_of(&env, &["replay", "subset", "--status", "5xx", "--dry-run", "--reason", "try", "--json"]);
    assert_eq!(indexes(&dry, "replayed"), vec![2, 12, 22, 32]);
    assert_eq!(dry["dry_run"], json!(true));
    assert_eq!(json_of(&env, &["failed", "subset", "--json"]), failed, "a dry run changes nothing");
    let after_dry = env.wait_report("subset", Duration::from_secs(5), |_| true).await;
    assert_eq!((after_dry.status, after_dry.failed), (RunStatus::Finished, 8));

    let replayed = json_of(&env, &["replay", "subset", "--status", "5xx", "--reason", "target recovered", "--by", "alice", "--json"]);
    assert_eq!(indexes(&replayed, "replayed"), vec![2, 12, 22, 32]);
    assert_eq!(replayed["refused"], json!([]));
    let report = env.wait_report("subset", Duration::from_secs(60), |r| r.status == RunStatus::Finished && r.pending == 0).await;
    assert_eq!((report.succeeded, report.failed, report.replayed), (36, 4, 4), "{report:#?}");
    assert_eq!(report.failures.by_status, BTreeMap::from([("400".to_owned(), 4)]), "the replayed items' failures are no longer counted");
    assert_eq!(env.sim.stats().requests - requests_before, 4, "only the replayed items were sent");
    let ledger = env.sim.ledger();
    assert_eq!((ledger.applied, ledger.duplicates), (36, 0), "no success sent twice");
    assert!(ledger.entries.iter().all(|e| e.count == 1));

    // Throughput over time counts every finish: 32 + 8 first, then the 4 replayed successes.
    let series = env.store().await.series(&cxrelay_core::RunId::parse("subset").unwrap()).await.unwrap();
    assert_eq!(series.iter().map(|p| p.1).sum::<u64>(), 44, "{series:?}");
    assert!(series.iter().any(|p| p.2.is_some()), "latency over time: {series:?}");

    // The replayed item keeps its history: three failures, then the success.
    let item2 = json_of(&env, &["item", "subset", "2", "--json"]);
    assert_eq!(item2["state"], json!("succeeded"));
    let outcomes: Vec<&str> = item2["history"].as_array().unwrap().iter().map(|h| h["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o != "deferred").copied().collect::<Vec<_>>(), ["retry", "retry", "failed", "succeeded"]);

    let audit: Vec<Value> = {
        let (code, out, err) = cli(&env, &["audit", "subset", "--json"]);
        assert_eq!(code, 0, "{err}");
        out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let replay = audit.iter().find(|e| e["type"] == "replay").expect("the replay is audited");
    assert_eq!((replay["fields"]["by"].as_str(), replay["fields"]["reason"].as_str()), (Some("alice"), Some("target recovered")));
    assert_eq!(replay["fields"]["count"], json!("4"));
    assert_eq!(replay["fields"]["selection"], json!("--status 5xx"));
    assert!(audit.iter().any(|e| e["type"] == "attempt" && e["fields"]["index"] == "1"), "non-success attempts are audited");
    assert!(audit.iter().filter(|e| e["type"] == "run.finished").count() >= 2, "finished, and finished again after the replay");
    assert!(worker.terminate(Duration::from_secs(20)).success());
}

/// Replay refuses what did not fail (succeeded, pending, out of range) with why; bad input is
/// exit 2 with nothing changed; a replayed item that fails again is back in `failed` with its
/// whole history and a fresh attempt count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_refuses_what_did_not_fail_and_a_new_failure_keeps_the_history() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let items: Vec<Value> = (0..10).map(|i| if i == 3 { item(i, Some(json!({"status": 422}))) } else { item(i, None) }).collect();
    env.enqueue_items("refusals", &items, &[]);
    env.enqueue_items("waiting", &items, &["--tenant", "nobody"]);
    let _w = env.spawn_worker(4);
    env.wait_finished("refusals", Duration::from_secs(60)).await;

    // An index the run never had: exit 2, nothing replayed (3 is still failed below).
    let (code, _, err) = cli(&env, &["replay", "refusals", "--index", "3,10", "--reason", "check"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid --index \"10\": run refusals has 10 items (indexes 0 to 9)"), "{err}");
    let out = json_of(&env, &["replay", "refusals", "--index", "0,3", "--reason", "check", "--json"]);
    assert_eq!(indexes(&out, "replayed"), vec![3]);
    let refused: BTreeMap<u64, String> =
        out["refused"].as_array().unwrap().iter().map(|r| (r["index"].as_u64().unwrap(), r["why"].as_str().unwrap().to_owned())).collect();
    assert!(refused[&0].contains("succeeded"), "{refused:?}");
    // Item 3 fails again: back in `failed`, one attempt of its fresh budget, both failures kept.
    let report = env.wait_report("refusals", Duration::from_secs(60), |r| r.status == RunStatus::Finished && r.pending == 0).await;
    assert_eq!((report.succeeded, report.failed), (9, 1));
    let item3 = json_of(&env, &["item", "refusals", "3", "--json"]);
    assert_eq!(item3["state"], json!("failed"));
    assert_eq!(item3["failure"]["attempts"], json!(1));
    assert_eq!(item3["payload"], items[3]);
    let failures = item3["history"].as_array().unwrap().iter().filter(|h| h["outcome"] == "failed").count();
    assert_eq!(failures, 2, "{item3}");

    let pending = json_of(&env, &["replay", "waiting", "--index", "1", "--reason", "check", "--json"]);
    assert!(pending["refused"][0]["why"].as_str().unwrap().contains("pending"), "{pending}");

    for (args, says) in [
        (vec!["replay", "refusals", "--index", "3,,x", "--reason", "r"], "invalid --index \"3,,x\""),
        (vec!["replay", "refusals", "--status", "6xx", "--reason", "r"], "invalid --status \"6xx\""),
        (vec!["replay", "refusals", "--all-failed", "--since", "yesterday", "--reason", "r"], "invalid --since \"yesterday\""),
        (vec!["replay", "nosuch", "--all-failed", "--reason", "r"], "run nosuch not found; `cxrelay runs` lists runs"),
        (vec!["failed", "nosuch"], "run nosuch not found"),
        (vec!["item", "refusals", "99"], "invalid index \"99\""),
        (vec!["report", "nosuch"], "run nosuch not found"),
    ] {
        let (code, _, err) = cli(&env, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let (code, _, err) = cli(&env, &["replay", "refusals", "--all-failed"]);
    assert_eq!(code, 2, "a replay without --reason is refused by clap: {err}");
    assert_eq!(env.wait_report("refusals", Duration::from_secs(5), |_| true).await.replayed, 1, "nothing changed");
}

/// Pause stops sending (in-flight items finish), resume sends again, cancel stops for good and
/// reports the rest as cancelled (not failed); purge needs --yes and a finished or cancelled run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_cancel_and_purge() {
    let mut env = TestEnv::start(SimConfig { latency: Duration::from_millis(20), ..SimConfig::default() }).await;
    env.enqueue_generated("ctl", 2000);
    let _w = env.spawn_worker(4);
    env.wait_report("ctl", Duration::from_secs(30), |r| r.succeeded >= 20).await;

    let (code, out, err) = cli(&env, &["pause", "ctl", "--reason", "target maintenance", "--by", "bob"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("paused"), "{out}");
    // In-flight items finish; then nothing more is sent.
    wait_nothing_held(&env, "ctl").await;
    let settled = env.wait_report("ctl", Duration::from_secs(10), |r| r.status == RunStatus::Paused).await;
    let sent = env.sim.stats().requests;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(env.sim.stats().requests, sent, "a paused run sends nothing");
    assert!(settled.status_reason.as_deref().unwrap().contains("target maintenance (by bob)"));
    let (code, _, err) = cli(&env, &["pause", "ctl"]);
    assert_eq!(code, 2, "pausing a paused run: {err}");
    assert!(err.contains("cannot pause a run that is paused"), "{err}");

    assert_eq!(cli(&env, &["resume", "ctl"]).0, 0);
    let before = env.sim.stats().requests;
    env.eventually("sending again", Duration::from_secs(10), || async { env.sim.stats().requests > before + 10 }).await;

    let (code, _, err) = cli(&env, &["purge", "ctl", "--yes"]);
    assert_eq!(code, 2, "an active run is not purged: {err}");
    assert!(err.contains("cancel"), "{err}");
    assert_eq!(cli(&env, &["cancel", "ctl", "--reason", "wrong file"]).0, 0);
    wait_nothing_held(&env, "ctl").await;
    let sent = env.sim.stats().requests;
    let report = env.wait_report("ctl", Duration::from_secs(5), |r| r.status == RunStatus::Cancelled).await;
    assert_eq!(report.failed, 0, "cancelled items are not failures");
    assert_eq!(report.pending, 0);
    assert_eq!(report.cancelled, 2000 - report.succeeded);
    assert!(report.cancelled > 0);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(env.sim.stats().requests, sent, "a cancelled run sends nothing");
    assert_eq!(cli(&env, &["report", "ctl", "--watch"]).0, 4, "a cancelled run is not a success");
    let (code, out, _) = cli(&env, &["runs", "--status", "cancelled", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"run_id\":\"ctl\""), "{out}");

    let (code, _, err) = cli(&env, &["purge", "ctl"]);
    assert_eq!(code, 2, "purge asks for --yes: {err}");
    assert_eq!(cli(&env, &["purge", "ctl", "--yes"]).0, 0);
    assert_eq!(cli(&env, &["report", "ctl"]).0, 2, "purged");
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}*{{run:ctl}}*", env.keys().namespace())).query_async(&mut env.redis().await).await.unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

/// More than 20% of the last 20 finished items failed: the run pauses itself and says why, in
/// its report and its audit stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_rate_guard_pauses_the_run() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let items: Vec<Value> = (0..400).map(|i| if i >= 30 { item(i, Some(json!({"status": 400}))) } else { item(i, None) }).collect();
    env.enqueue_items("guarded", &items, &["--pause-on-failure-rate", "20%", "--window", "20"]);
    let _w = env.spawn_worker(2);
    let report = env.wait_report("guarded", Duration::from_secs(60), |r| r.status == RunStatus::Paused).await;
    assert!(report.status_reason.as_deref().unwrap().starts_with("failure-rate guard:"), "{report:#?}");
    assert!(report.pending > 300, "it stopped early: {report:#?}");
    let (_, out, _) = cli(&env, &["audit", "guarded", "--json"]);
    assert!(out.lines().any(|l| l.contains("\"run.paused\"") && l.contains("failure-rate guard")), "{out}");
    let (code, _, err) = cli(&env, &["enqueue", "--action", "a", "--pause-on-failure-rate", "150%", "-"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--pause-on-failure-rate"), "{err}");
}

/// `workers` lists a started worker and drops a killed one once its heartbeat expires; a run
/// with pending items and no live worker says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_listed_while_alive() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_LEASE_MS", 1500);
    let mut w = env.spawn_worker(3);
    let pid = w.pid();
    env.eventually("the worker to be listed", Duration::from_secs(10), || async {
        let (_, out, _) = cli(&env, &["workers", "--json"]);
        serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .is_some_and(|a| a.iter().any(|x| x["pid"] == json!(pid) && x["concurrency"] == json!(3)))
    })
    .await;
    w.kill9();
    env.eventually("the killed worker to drop off", Duration::from_secs(10), || async {
        let (_, out, _) = cli(&env, &["workers", "--json"]);
        out.trim() == "[]"
    })
    .await;
    env.enqueue_generated("unserved", 5);
    let (_, out, _) = cli(&env, &["report", "unserved"]);
    assert!(out.contains("no worker is serving tenant default"), "{out}");
}

/// `worker.audit_log`: one JSON line per attempt (as many as the target saw), none on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_has_one_line_per_attempt() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let log = env.dir.join("audit.jsonl");
    env.set("CXRELAY_AUDIT_LOG", log.display()).set("CXRELAY_BACKOFF_BASE_MS", 20);
    let items: Vec<Value> = (0..10)
        .map(|i| match i {
            2 | 5 => item(i, Some(json!({"status": 503, "fail_times": 1}))),
            7 => item(i, Some(json!({"status": 400}))),
            _ => item(i, None),
        })
        .collect();
    env.enqueue_items("audited", &items, &[]);
    let mut w = env.spawn_worker(2);
    env.wait_finished("audited", Duration::from_secs(60)).await;
    assert!(w.terminate(Duration::from_secs(20)).success());
    let lines: Vec<Value> = std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len() as u64, env.sim.stats().requests, "{lines:#?}");
    assert_eq!(lines.len(), 12);
    assert!(lines.iter().all(|l| l["run"] == json!("audited") && l["target"] == json!("cxrelay_audit")), "{lines:#?}");
    let of = |i: u64| lines.iter().filter(|l| l["index"] == json!(i)).map(|l| l["outcome"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(of(2), ["retry", "succeeded"]);
    assert_eq!(of(7), ["failed"]);
    assert!(lines.iter().any(|l| l["index"] == json!(7) && l["status"] == json!(400)));
    assert!(!std::fs::read_to_string(&w.log).unwrap().contains("cxrelay_audit"), "audit events stay out of the log");
}

/// Items that finished while their run was paused: resuming finishes the run (nothing would
/// otherwise ever finish it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_run_drained_while_paused_finishes_it() {
    let mut env = TestEnv::start(SimConfig { latency: Duration::from_millis(400), ..SimConfig::default() }).await;
    env.enqueue_generated("drained", 4);
    let _w = env.spawn_worker(4);
    env.eventually("all four in flight", Duration::from_secs(10), || async { env.sim.stats().in_flight == 4 }).await;
    assert_eq!(cli(&env, &["pause", "drained"]).0, 0);
    wait_nothing_held(&env, "drained").await;
    let paused = env.wait_report("drained", Duration::from_secs(5), |_| true).await;
    assert_eq!((paused.status, paused.pending, paused.succeeded), (RunStatus::Paused, 0, 4));
    let (code, out, err) = cli(&env, &["resume", "drained"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("finished"), "{out}");
    assert_eq!(env.wait_report("drained", Duration::from_secs(5), |_| true).await.status, RunStatus::Finished);
    assert_eq!(cli(&env, &["report", "drained", "--watch"]).0, 0, "a waiting pipeline is released");
}

/// The high-water index stops at the first unfinished item while later ones finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_high_water_mark_waits_for_retries() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_BACKOFF_BASE_MS", 400).set("CXRELAY_MAX_ATTEMPTS", 10).set("CXRELAY_BREAKER_THRESHOLD", 1000);
    let items: Vec<Value> = (0..12).map(|i| if i >= 8 { item(i, Some(json!({"status": 503, "fail_times": 3}))) } else { item(i, None) }).collect();
    env.enqueue_items("hw", &items, &[]);
    let _w = env.spawn_worker(4);
    let mid = env.wait_report("hw", Duration::from_secs(30), |r| r.succeeded == 8 && r.retries > 4).await;
    if mid.pending > 0 {
        assert_eq!(mid.high_water, 8, "{mid:#?}");
    }
    let done = env.wait_finished("hw", Duration::from_secs(60)).await;
    assert_eq!((done.succeeded, done.high_water), (12, 12));
}

/// An active run missing from its tenant's active list (a replay or resume whose process died
/// between its script and listing the run) is listed again by a worker and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_run_missing_from_the_list_is_found_again() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.enqueue_generated("unlisted", 5);
    let _: () = redis::cmd("SREM").arg(env.keys().active_runs("default")).arg("unlisted").query_async(&mut env.redis().await).await.unwrap();
    let _w = env.spawn_worker(2);
    let report = env.wait_finished("unlisted", Duration::from_secs(30)).await;
    assert_eq!(report.succeeded, 5);
}

/// A replay prepared from a failure that has since been replaced (another replay ran the item
/// and it failed again) refuses the item instead of taking counts from the wrong reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_prepared_from_an_old_failure_refuses_the_item() {
    use cxrelay_queue::oncall::{ReplayCandidate, ReplayRequest};
    use redis::AsyncCommands;
    let mut env = TestEnv::start(SimConfig::default()).await;
    let items: Vec<Value> = (0..4).map(|i| if i == 2 { item(i, Some(json!({"status": 422}))) } else { item(i, None) }).collect();
    env.enqueue_items("stale", &items, &[]);
    let _w = env.spawn_worker(4);
    env.wait_finished("stale", Duration::from_secs(60)).await;
    let store = env.store().await;
    let run = cxrelay_core::RunId::parse("stale").unwrap();
    let (_, first) = store.failed_summaries(&run, &[2]).await.unwrap().pop().expect("item 2 failed");
    // Another operator replays it; it fails again with a new failure record.
    let (code, _, err) = cli(&env, &["replay", "stale", "--index", "2", "--reason", "first"]);
    assert_eq!(code, 0, "{err}");
    env.wait_report("stale", Duration::from_secs(60), |r| r.status == RunStatus::Finished && r.replayed == 1 && r.failed == 1).await;
    let (_, second) = store.failed_summaries(&run, &[2]).await.unwrap().pop().expect("failed again");
    assert_ne!(first.at_ms, second.at_ms);
    let mut conn = env.redis().await;
    let stats_key = env.run_keys("stale").failstats;
    let before: BTreeMap<String, i64> = conn.hgetall(&stats_key).await.unwrap();
    let stale = ReplayCandidate {
        index: 2,
        class: first.class.clone(),
        status_key: "422".into(),
        reason_key: "stale reason".into(),
        failed_at_ms: first.at_ms,
    };
    let req =
        ReplayRequest { by: "test", reason: "late", selection: "index 2", new_idempotency_key: false, dry_run: false, announce: false, requested: 1 };
    let batch = store.replay_batch(&run, &[stale], &req).await.unwrap();
    assert!(batch.replayed.is_empty(), "{batch:?}");
    assert!(batch.refused[0].1.contains("failed again while this replay was prepared"), "{batch:?}");
    let after: BTreeMap<String, i64> = conn.hgetall(&stats_key).await.unwrap();
    assert_eq!(before, after, "no counter changed");
    assert_eq!(env.wait_report("stale", Duration::from_secs(5), |_| true).await.replayed, 1);
}
