//! CSV export executions end to end: `cxrelay export` → a worker submits it to the simulator →
//! the simulator calls `cxrelay serve` back (signed) → completed, with rows and latency recorded;
//! a repeated callback changes nothing; forged, unsigned and stale callbacks are 401 and bad
//! bodies 4xx, changing nothing; the cxone profile completes by polling report jobs; an execution
//! that never completes becomes overdue (and a late completion still lands, here through the
//! opt-in secret callback path); two exports for one data action are spaced; bad parameters are
//! refused naming the field; a submission the target refuses, or accepts without an execution id,
//! fails the export with the reason recorded; callbacks without a configured secret are 401.

mod harness;

use std::time::Duration;

use cxrelay_core::webhook::{sign, signing_key};
use cxrelay_core::Secret;
use cxrelay_sim::{ExportCompletion, FaultUpdate, ForceStatus, SimConfig};
use harness::TestEnv;
use serde_json::{json, Value};

/// The secret the simulator signs export callbacks with and `serve` verifies them with.
const CALLBACK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The secret of the webhook endpoint (the simulator's receiver) that gets export events.
const WEBHOOK_SECRET: &str = "whsec_c2VjcmV0LWZvci1leHBvcnQtZXZlbnRz";
const TOKEN: &str = "op-token-123";
const INGEST: &str = "ingest-token-456";

struct Serve {
    _proc: harness::WorkerProc,
    base: String,
}

/// Starts `serve` (callback receiver, API) and sets the settings every export test shares.
async fn serve(env: &mut TestEnv) -> Serve {
    let addr = format!("127.0.0.1:{}", TestEnv::free_port());
    let base = format!("http://{addr}");
    let webhook_url = env.sim.webhook_url();
    env.set("CXRELAY_API_TOKENS", format!("{TOKEN},{INGEST}:ingest"))
        .set("CXRELAY_EXPORT_CALLBACK_SECRET", CALLBACK_SECRET)
        .set("CXRELAY_EXPORT_CALLBACK_URL", format!("{base}/v1/callbacks/export"))
        .set("CXRELAY_WEBHOOK_URL", webhook_url)
        .set("CXRELAY_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .set("CXRELAY_WEBHOOK_EVENTS", "export.completed,export.overdue");
    let proc = env.spawn_cxrelay(&["serve", "--addr", &addr]);
    env.wait_http_ok(&format!("{base}/readyz")).await;
    Serve { _proc: proc, base }
}

fn sim_config(completion: ExportCompletion) -> SimConfig {
    SimConfig {
        export_completion: completion,
        export_duration: Duration::from_millis(300),
        export_rows: 1234,
        export_callback_secret: Some(Secret::new(CALLBACK_SECRET)),
        webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
        ..SimConfig::default()
    }
}

/// `cxrelay export ARGS --json` → the export's id.
fn export(env: &TestEnv, args: &[&str]) -> String {
    let out = env.cxrelay().arg("export").args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
    let row: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(row["state"], "queued", "{row}");
    row["id"].as_str().unwrap().to_owned()
}

/// The export as `cxrelay exports --json` lists it.
fn listed(env: &TestEnv, id: &str) -> Value {
    let out = env.cxrelay().args(["exports", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter().find(|r| r["id"] == id).unwrap_or(Value::Null)
}

async fn wait_state(env: &TestEnv, id: &str, state: &str) -> Value {
    env.eventually(&format!("export {id} {state}"), Duration::from_secs(30), || {
        let ok = listed(env, id)["state"] == state;
        async move { ok }
    })
    .await;
    listed(env, id)
}

/// A callback delivery: `signature` none = unsigned; `ts` Unix seconds.
async fn callback(base: &str, body: &str, ts: u64, signature: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("{base}/v1/callbacks/export")).header("content-type", "application/json").body(body.to_owned());
    if let Some(sig) = signature {
        req = req.header("webhook-id", "msg_test").header("webhook-timestamp", ts.to_string()).header("webhook-signature", sig);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn signed(secret: &str, ts: u64, body: &str) -> String {
    sign(&signing_key(&Secret::new(secret)).unwrap(), "msg_test", ts, body.as_bytes())
}

fn now_secs() -> u64 {
    cxrelay_core::now_ms() / 1000
}

async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_callback_completes_an_export_once() {
    let mut env = TestEnv::start(sim_config(ExportCompletion::Callback)).await;
    let s = serve(&mut env).await;
    let _w = env.spawn_worker(4);
    let id = export(&env, &["--data-action", "da-1", "--dataset", "ds-9", "--max-rows", "1000", "--delimiter", "pipe"]);
    let row = wait_state(&env, &id, "completed").await;
    assert_eq!(row["rows"], 1000, "min(max rows, the dataset's rows): {row}");
    assert_eq!(row["latency_ms"], 300, "endTime - startTime: {row}");
    assert_eq!(row["completion_source"], "callback");
    let execution = row["execution_id"].as_str().expect("execution id recorded").to_owned();

    // What the simulator was sent: the seed's execution payload at the seed's path.
    let submits: Vec<_> = env.sim.requests().into_iter().filter(|r| r.route == cxrelay_sim::RequestRoute::ExportSubmit).collect();
    assert_eq!(submits.len(), 1);
    assert_eq!(submits[0].path, "/api/v2/dataprep/dataactions/da-1/executions");
    assert!(submits[0].headers.idempotency_key.is_some());
    assert_eq!(
        submits[0].body,
        json!({"dataActionId": "da-1", "datasetId": "ds-9", "callbackUrl": format!("{}/v1/callbacks/export", s.base),
            "export": {"format": "csv", "delimiter": "|", "quoteCharacter": "\"", "escapeCharacter": "\"", "maxRows": 1000, "columnAlignment": false}})
    );
    assert!(metrics(&s.base).await.contains("cxrelay_exports_total{state=\"completed\"} 1"));

    // The simulator sends the same callback again: answered, nothing changes.
    let resend = reqwest::Client::new().post(format!("{}/_sim/exports/{execution}/callback", env.sim.base_url())).send().await.unwrap();
    assert_eq!(resend.status().as_u16(), 200, "{:?}", resend.text().await);
    let again = format!(r#"{{"executionId":"{execution}","status":"completed","rowsExported":5}}"#);
    let ts = now_secs();
    let (status, dup) = callback(&s.base, &again, ts, Some(&signed(CALLBACK_SECRET, ts, &again))).await;
    assert_eq!((status, dup["duplicate"].clone()), (200, json!(true)), "{dup}");

    // Refused: forged, unsigned, stale (401); malformed, unknown, bad status, bad times (4xx).
    let good = format!(r#"{{"executionId":"{execution}","status":"failed","rowsExported":1}}"#);
    let now = now_secs();
    let forged = signed("whsec_Zm9yZ2VkLWtleS1ub3QtdGhlLXJpZ2h0LW9uZQ==", now, &good);
    assert_eq!(callback(&s.base, &good, now, Some(&forged)).await.0, 401, "forged");
    assert_eq!(callback(&s.base, &good, now, None).await.0, 401, "unsigned");
    let old = now - 3600;
    let (status, stale) = callback(&s.base, &good, old, Some(&signed(CALLBACK_SECRET, old, &good))).await;
    assert_eq!(status, 401, "stale");
    assert!(stale["error"]["message"].as_str().unwrap().contains("stale"), "{stale}");
    for (body, want, words) in [
        ("{not json".to_owned(), 400, "not JSON"),
        (r#"{"executionId":"nope","status":"completed"}"#.to_owned(), 404, "unknown execution id"),
        (format!(r#"{{"executionId":"{execution}","status":"exploded"}}"#), 400, "not a known final state"),
        (
            format!(r#"{{"executionId":"{execution}","status":"completed","startTime":"2026-12-05T10:00:05Z","endTime":"2026-12-05T10:00:00Z"}}"#),
            400,
            "before",
        ),
        (format!(r#"{{"executionId":"{execution}","status":"completed","startTime":"soon"}}"#), 400, "RFC 3339"),
    ] {
        let (status, answer) = callback(&s.base, &body, now, Some(&signed(CALLBACK_SECRET, now, &body))).await;
        assert_eq!(status, want, "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap_or("").contains(words), "{body}: {answer}");
    }
    let after = listed(&env, &id);
    assert_eq!(
        (after["state"].clone(), after["rows"].clone(), after["latency_ms"].clone()),
        (json!("completed"), json!(1000), json!(300)),
        "unchanged"
    );
    assert!(metrics(&s.base).await.contains("cxrelay_exports_total{state=\"completed\"} 1"), "counted once");

    // The audit trail and the webhook event.
    let audit: Value =
        reqwest::Client::new().get(format!("{}/v1/runs/{id}/audit", s.base)).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    let kinds: Vec<&str> = audit["events"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(kinds.contains(&"export.submitted") && kinds.contains(&"export.completed"), "{kinds:?}");
    env.eventually("the export.completed webhook", Duration::from_secs(20), || {
        let got = env.sim.webhooks().received.iter().any(|w| w.event_type == "export.completed" && w.verified && w.data["execution_id"] == execution);
        async move { got }
    })
    .await;
    assert_eq!(env.sim.webhooks().received.iter().filter(|w| w.event_type == "export.completed").count(), 1, "one event, not one per callback");

    // The dashboard lists it with state, rows and latency.
    let page = dashboard_page(&s.base, "/exports").await;
    assert!(page.contains(&id) && page.contains(&execution) && page.contains("completed") && page.contains("0.3 s"), "{page}");
}

/// Signs in to the dashboard with the operate token and returns the page at `path`.
async fn dashboard_page(base: &str, path: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed_in = client.post(format!("{base}/login")).form(&[("token", TOKEN)]).send().await.unwrap();
    let cookie = signed_in.headers().get("set-cookie").expect("a session cookie").to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = client.get(format!("{base}{path}")).header("cookie", cookie).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    page.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cxone_profile_completes_report_jobs_by_polling() {
    let mut env = TestEnv::start(sim_config(ExportCompletion::Poll)).await;
    env.cxone_profile().set("CXRELAY_EXPORT_POLL_INTERVAL_MS", "200");
    let _w = env.spawn_worker(2);
    let id = export(&env, &["--data-action", "report-7", "--dataset", "ds-1", "--max-rows", "50"]);
    let row = wait_state(&env, &id, "completed").await;
    assert_eq!((row["completion"].clone(), row["completion_source"].clone()), (json!("poll"), json!("poll")), "{row}");
    assert_eq!(row["rows"], 1234, "read at /jobResult/rowsExported (a report job knows no row limit): {row}");
    let job = row["execution_id"].as_str().unwrap().to_owned();
    let reqs = env.sim.requests();
    let submit: Vec<_> = reqs.iter().filter(|r| r.route == cxrelay_sim::RequestRoute::ReportJobSubmit).collect();
    assert_eq!(submit.len(), 1);
    assert_eq!(submit[0].path, "/incontactapi/services/v33.0/report-jobs/report-7");
    assert_eq!(submit[0].headers.accept.as_deref(), Some("application/json"));
    let polls: Vec<_> = reqs.iter().filter(|r| r.route == cxrelay_sim::RequestRoute::ReportJobStatus).collect();
    assert!(!polls.is_empty() && polls.iter().all(|r| r.path == format!("/incontactapi/services/v33.0/report-jobs/{job}")), "{polls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_execution_becomes_overdue_and_a_late_completion_still_lands() {
    let mut env = TestEnv::start(sim_config(ExportCompletion::Never)).await;
    let path_secret = "p4th-s3cret-0123456789";
    env.set("CXRELAY_EXPORT_DEADLINE_SECS", "1").set("CXRELAY_EXPORT_CALLBACK_PATH_SECRET", path_secret);
    let s = serve(&mut env).await;
    let _w = env.spawn_worker(2);
    let id = export(&env, &["--data-action", "da-late", "--dataset", "ds-1"]);
    let row = wait_state(&env, &id, "overdue").await;
    let execution = row["execution_id"].as_str().unwrap().to_owned();
    env.eventually("the export.overdue webhook", Duration::from_secs(20), || {
        let got = env.sim.webhooks().received.iter().any(|w| w.event_type == "export.overdue" && w.data["execution_id"] == execution);
        async move { got }
    })
    .await;

    // The opt-in secret path: a wrong secret is refused, the right one lands the late completion.
    let body = format!(
        r#"{{"executionId":"{execution}","status":"completed","rowsExported":7,"startTime":"2026-12-05T10:00:00Z","endTime":"2026-12-05T10:01:00Z"}}"#
    );
    let post = |secret: &str| reqwest::Client::new().post(format!("{}/v1/callbacks/export/{secret}", s.base)).body(body.clone()).send();
    assert_eq!(post("wrong-secret-0123456789").await.unwrap().status().as_u16(), 401);
    assert_eq!(post(path_secret).await.unwrap().status().as_u16(), 200);
    let row = listed(&env, &id);
    assert_eq!((row["state"].clone(), row["rows"].clone(), row["latency_ms"].clone()), (json!("completed"), json!(7), json!(60_000)), "{row}");
    assert!(!env.logs().contains(path_secret), "the secret path is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_for_one_data_action_are_spaced() {
    let mut env = TestEnv::start(sim_config(ExportCompletion::Callback)).await;
    let _s = serve(&mut env).await;
    let ids: Vec<String> = (0..3).map(|i| export(&env, &["--data-action", "da-s", "--dataset", &format!("ds-{i}")])).collect();
    let _w1 = env.spawn_worker(4);
    let _w2 = env.spawn_worker(4);
    for id in &ids {
        wait_state(&env, id, "completed").await;
    }
    let exports = env.sim.exports();
    let mut at: Vec<u64> = exports.executions.iter().filter(|e| e.data_action_id == "da-s").map(|e| e.submitted_at_ms).collect();
    at.sort();
    assert_eq!(at.len(), 3);
    for pair in at.windows(2) {
        assert!(pair[1] - pair[0] >= 2000, "submissions {} ms apart: {at:?}", pair[1] - pair[0]);
    }
    assert_eq!(exports.spacing_violations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_export_parameters_are_refused_naming_the_field() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let s = serve(&mut env).await;
    for (args, words) in [
        (vec!["--data-action", "da", "--dataset", " "], "invalid dataset"),
        (vec!["--data-action", "da", "--dataset", "d", "--delimiter", "#"], "allowed: comma (,), pipe (|), semicolon (;), tab"),
        (vec!["--data-action", "da", "--dataset", "d", "--quote", "''"], "invalid quote"),
        (vec!["--data-action", "da", "--dataset", "d", "--max-rows", "5000001"], "invalid max-rows"),
        (
            vec!["--data-action", "da", "--dataset", "d", "--sanitize", "--delimiter", ",", "--escape", ","],
            "must differ from the quote and the escape",
        ),
    ] {
        let out = env.cxrelay().arg("export").args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
    }
    let (status, body) = {
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/exports", s.base))
            .bearer_auth(INGEST)
            .json(&json!({"data_action": "da", "dataset": "d", "max_rows": 0}))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (body["error"]["code"].clone(), body["error"]["details"]["parameter"].clone()),
        (json!("invalid_export"), json!("max-rows")),
        "{body}"
    );
    let out = env.cxrelay().args(["exports", "--json"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]", "nothing was queued: {}", String::from_utf8_lossy(&out.stderr));
}

/// The reason `cxrelay failed` gives for the export's one item.
fn failure_reason(env: &TestEnv, id: &str) -> String {
    let out = env.cxrelay().args(["failed", id, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0]["reason"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_unreadable_submission_fails_the_export_with_its_reason() {
    let mut env = TestEnv::start(sim_config(ExportCompletion::Never)).await;
    env.set("CXRELAY_EXPORT_EXECUTION_ID_FIELD", "/jobId").set("CXRELAY_MAX_ATTEMPTS", "1");
    let _w = env.spawn_worker(2);
    // The seed's answer has no /jobId: accepted, but nothing could ever complete it.
    let id = export(&env, &["--data-action", "da-noid", "--dataset", "ds"]);
    wait_state(&env, &id, "failed").await;
    let reason = failure_reason(&env, &id);
    assert!(reason.contains("accepted the export (HTTP 201) but its answer has no execution id at /jobId"), "{reason}");

    // The target refuses the submission.
    env.sim.set_faults(FaultUpdate {
        force_status: Some(ForceStatus { status: 400, for_ms: 60_000, retry_after_secs: None }),
        ..FaultUpdate::default()
    });
    let id = export(&env, &["--data-action", "da-400", "--dataset", "ds"]);
    let row = wait_state(&env, &id, "failed").await;
    assert_eq!(row["execution_id"], Value::Null, "{row}");
    let reason = failure_reason(&env, &id);
    assert!(reason.starts_with("HTTP 400"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_without_a_configured_secret_are_refused() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let s = serve(&mut env).await;
    env.unset("CXRELAY_EXPORT_CALLBACK_SECRET");
    let addr = format!("127.0.0.1:{}", TestEnv::free_port());
    let _bare = env.spawn_cxrelay(&["serve", "--addr", &addr]);
    env.wait_http_ok(&format!("http://{addr}/readyz")).await;
    let body = r#"{"executionId":"e","status":"completed"}"#;
    let now = now_secs();
    let (status, answer) = callback(&format!("http://{addr}"), body, now, Some(&signed(CALLBACK_SECRET, now, body))).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("set CXRELAY_EXPORT_CALLBACK_SECRET"), "{answer}");
    // Nor does the secret path exist unless opted in.
    let resp = reqwest::Client::new().post(format!("{}/v1/callbacks/export/0123456789abcdef0123", s.base)).body(body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

/// `GET /v1/exports` pages with a cursor: every export once, newest first, and exports created
/// between pages do not shift the later pages; a forged cursor is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_listed_a_page_at_a_time() {
    let mut env = TestEnv::start(sim_config(ExportCompletion::Never)).await;
    let s = serve(&mut env).await;
    let mut created: Vec<String> = (0..5).map(|i| export(&env, &["--data-action", &format!("da-{i}"), "--dataset", "ds"])).collect();
    let page = |cursor: Option<String>| {
        let base = s.base.clone();
        async move {
            let mut req = reqwest::Client::new().get(format!("{base}/v1/exports?limit=2")).bearer_auth(TOKEN);
            if let Some(c) = cursor {
                req = req.query(&[("cursor", c)]);
            }
            let body: Value = req.send().await.unwrap().json().await.unwrap();
            let ids: Vec<String> = body["exports"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
            (ids, body["next_cursor"].as_str().map(str::to_owned))
        }
    };
    let (first, cursor) = page(None).await;
    assert_eq!(first.len(), 2);
    // A newer export arrives while the client pages through the older ones.
    created.push(export(&env, &["--data-action", "da-late", "--dataset", "ds"]));
    let mut seen = first.clone();
    let mut cursor = cursor;
    while let Some(c) = cursor {
        let (ids, next) = page(Some(c)).await;
        seen.extend(ids);
        cursor = next;
    }
    let mut oldest_first = created[..5].to_vec();
    oldest_first.reverse();
    assert_eq!(seen, oldest_first, "each of the first five once, newest first");
    let (code, body) = {
        let resp = reqwest::Client::new().get(format!("{}/v1/exports?cursor=bm9wZQ", s.base)).bearer_auth(TOKEN).send().await.unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    assert_eq!((code, body["error"]["code"].as_str()), (400, Some("invalid_cursor")), "{body}");
}
