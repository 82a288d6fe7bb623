//! End-to-end tests of CSV export executions (submission, validation, idempotency, signed callbacks to
//! a receiver run here, polling, spacing and concurrency statistics) and of CXone report jobs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cxrelay_core::oncall::parse_rfc3339;
use cxrelay_core::Secret;
use cxrelay_sim::{ExecutionState, ExportCompletion, ExportSettingsUpdate, ExportStatus, Exports, FaultUpdate, SimConfig, SimServer};
use hmac::{Hmac, Mac};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

/// The callback signing key; the configured secret is `whsec_` + its base64.
const KEY: &[u8] = b"export callback key, 32 bytes ok";
const ACTION: &str = "da-1";

fn secret() -> Secret {
    Secret::new(format!("whsec_{}", STANDARD.encode(KEY)))
}

async fn start(config: SimConfig) -> SimServer {
    SimServer::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

async fn token(c: &Client, sim: &SimServer) -> String {
    let res = c
        .post(format!("{}/oauth/token", sim.base_url()))
        .basic_auth("sim-client", Some("sim-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

fn payload(callback: Option<&str>) -> Value {
    let mut body = json!({
        "dataActionId": ACTION,
        "datasetId": "ds-9",
        "export": {"format": "csv", "delimiter": ",", "quoteCharacter": "\"", "escapeCharacter": "\"", "maxRows": 1000, "columnAlignment": true},
    });
    if let Some(url) = callback {
        body["callbackUrl"] = json!(url);
    }
    body
}

fn submit_url(sim: &SimServer, action: &str) -> String {
    format!("{}/api/v2/dataprep/dataactions/{action}/executions", sim.base_url())
}

async fn submit(c: &Client, sim: &SimServer, tok: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = c.post(submit_url(sim, ACTION)).bearer_auth(tok).json(body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    req.send().await.unwrap()
}

async fn submit_ok(c: &Client, sim: &SimServer, tok: &str, body: &Value) -> String {
    let res = submit(c, sim, tok, None, body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.unwrap()["executionId"].as_str().unwrap().to_owned()
}

async fn status(c: &Client, sim: &SimServer, tok: &str, id: &str) -> Value {
    let res = c.get(format!("{}/{id}", submit_url(sim, ACTION))).bearer_auth(tok).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// Waits (up to 5 s) until `done` holds.
async fn eventually(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "condition not reached in 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One delivery the test receiver got.
#[derive(Clone, Debug)]
struct Delivery {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A callback receiver: records every delivery; answers the queued statuses first, then 204.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    answers: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start(self) -> String {
        async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: axum::body::Bytes) -> AxumStatus {
            r.got.lock().unwrap().push(Delivery { headers, body: body.to_vec() });
            let next = { r.answers.lock().unwrap().pop() };
            AxumStatus::from_u16(next.unwrap_or(204)).unwrap()
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/export", listener.local_addr().unwrap());
        let app = Router::new().route("/hooks/export", post(receive)).with_state(self);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }
}

/// Verifies a Standard Webhooks signature independently of the simulator's signer.
fn verify(d: &Delivery) -> (String, u64) {
    let header = |name: &str| d.headers.get(name).unwrap_or_else(|| panic!("{name} missing")).to_str().unwrap().to_owned();
    let (id, ts, sig) = (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&d.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(sig, expected, "signature of {id}");
    (id, ts.parse().unwrap())
}

#[tokio::test]
async fn submissions_are_validated_like_the_seed() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tok = token(&c, &sim).await;
    type Edit = fn(&mut Value);
    let cases: Vec<(Edit, &str)> = vec![
        (|b| b["datasetId"] = json!(""), "datasetId"),
        (|b| drop(b.as_object_mut().unwrap().remove("datasetId")), "datasetId"),
        (|b| b["export"]["delimiter"] = json!(":"), "export.delimiter"),
        (|b| b["export"]["quoteCharacter"] = json!("\"\""), "export.quoteCharacter"),
        (|b| b["export"]["escapeCharacter"] = json!(""), "export.escapeCharacter"),
        (|b| b["export"]["maxRows"] = json!(0), "export.maxRows"),
        (|b| b["export"]["maxRows"] = json!(5_000_001), "export.maxRows"),
        (|b| b["dataActionId"] = json!("da-2"), "dataActionId"),
        (|b| b["export"]["format"] = json!("json"), "export.format"),
        (|b| b["callbackUrl"] = json!("not a url"), "callbackUrl"),
        (
            |b| {
                b["sanitize"] = json!(true);
                b["export"]["quoteCharacter"] = json!(",");
            },
            "export.delimiter",
        ),
    ];
    for (edit, field) in cases {
        let mut body = payload(None);
        edit(&mut body);
        let res = submit(&c, &sim, &tok, None, &body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{field}: {body}");
        let answer: Value = res.json().await.unwrap();
        assert_eq!(answer["field"], field, "{answer}");
        assert!(answer["message"].as_str().unwrap().contains(field), "{answer}");
    }
    // The bounds themselves and a tab are fine.
    for (rows, delimiter) in [(1, "\t"), (5_000_000, "|")] {
        let mut body = payload(None);
        body["export"]["maxRows"] = json!(rows);
        body["export"]["delimiter"] = json!(delimiter);
        assert_eq!(submit(&c, &sim, &tok, None, &body).await.status(), StatusCode::CREATED);
    }
    let res = c.post(submit_url(&sim, ACTION)).json(&payload(None)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.exports().executions.len(), 2);
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_same_execution() {
    let sim = start(SimConfig { export_completion: ExportCompletion::Poll, ..SimConfig::default() }).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let first: Value = submit(&c, &sim, &tok, Some("exp-1"), &payload(None)).await.json().await.unwrap();
    assert_eq!(first["status"], "submitted");
    assert!(first["executionId"].as_str().unwrap().starts_with("exec-"));
    assert!(parse_rfc3339(first["createdAt"].as_str().unwrap()).is_some());
    let res = submit(&c, &sim, &tok, Some("exp-1"), &payload(None)).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.json::<Value>().await.unwrap(), first);
    let other: Value = submit(&c, &sim, &tok, Some("exp-2"), &payload(None)).await.json().await.unwrap();
    assert_ne!(other["executionId"], first["executionId"]);
    let exports = sim.exports();
    assert_eq!(exports.executions.len(), 2);
    assert_eq!(exports.executions[0].idempotency_key.as_deref(), Some("exp-1"));
}

#[tokio::test]
async fn signed_callback_is_delivered_and_a_resend_repeats_its_webhook_id() {
    let config =
        SimConfig { export_callback_secret: Some(secret()), export_duration: Duration::from_millis(150), export_rows: 700, ..SimConfig::default() };
    let sim = start(config).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let receiver = Receiver::default();
    let url = receiver.clone().start().await;
    let submitted = Instant::now();
    let id = submit_ok(&c, &sim, &tok, &payload(Some(&url))).await;
    assert_eq!(status(&c, &sim, &tok, &id).await["status"], "running");

    eventually(|| !receiver.deliveries().is_empty()).await;
    assert!(submitted.elapsed() >= Duration::from_millis(150));
    let first = &receiver.deliveries()[0];
    let (webhook_id, ts) = verify(first);
    assert!(ts.abs_diff(cxrelay_core::now_ms() / 1000) <= 5);
    let body: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(
        (body["executionId"].as_str(), body["status"].as_str(), body["rowsExported"].as_u64()),
        (Some(id.as_str()), Some("completed"), Some(700))
    );
    let start = parse_rfc3339(body["startTime"].as_str().unwrap()).unwrap();
    let end = parse_rfc3339(body["endTime"].as_str().unwrap()).unwrap();
    assert_eq!(end - start, 150);
    assert!(body["endTime"].as_str().unwrap().ends_with('Z'));

    let polled = status(&c, &sim, &tok, &id).await;
    assert_eq!((polled["status"].as_str(), polled["rowsExported"].as_u64()), (Some("completed"), Some(700)));
    assert_eq!(polled["endTime"], body["endTime"]);

    // A duplicate delivery: same id, same body, freshly signed.
    let res = c.post(format!("{}/_sim/exports/{id}/callback", sim.base_url())).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(verify(&deliveries[1]).0, webhook_id);
    assert_eq!(deliveries[1].body, first.body);

    let exports: Exports = c.get(format!("{}/_sim/exports", sim.base_url())).send().await.unwrap().json().await.unwrap();
    let e = &exports.executions[0];
    assert_eq!((e.callbacks_sent, e.callback_statuses.as_slice(), e.webhook_id.as_deref()), (2, &[204, 204][..], Some(webhook_id.as_str())));
    assert_eq!((e.state, e.rows_exported, e.max_rows, e.dataset_id.as_str()), (ExecutionState::Completed, Some(700), 1000, "ds-9"));
    assert_eq!(exports, sim.exports());
}

#[tokio::test]
async fn failed_deliveries_are_retried_and_failures_reported() {
    let config = SimConfig { export_duration: Duration::from_millis(10), export_status: ExportStatus::Failed, ..SimConfig::default() };
    let sim = start(config).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let receiver = Receiver::default();
    // Popped from the end: 500, then 503, then the default 204.
    *receiver.answers.lock().unwrap() = vec![503, 500];
    let url = receiver.clone().start().await;
    let id = submit_ok(&c, &sim, &tok, &payload(Some(&url))).await;
    eventually(|| sim.exports().executions[0].callback_statuses.len() == 3).await;
    let deliveries = receiver.deliveries();
    let ids: Vec<_> = deliveries.iter().map(|d| d.headers["webhook-id"].clone()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "retries keep the webhook-id");
    // Unsigned without a secret.
    assert!(deliveries[0].headers.get("webhook-signature").is_none());
    let body: Value = serde_json::from_slice(&deliveries[0].body).unwrap();
    assert_eq!((body["status"].as_str(), body["rowsExported"].as_u64()), (Some("failed"), Some(0)));
    let e = &sim.exports().executions[0];
    assert_eq!((e.state, e.callback_statuses.as_slice()), (ExecutionState::Failed, &[500, 503, 204][..]));
    assert_eq!(status(&c, &sim, &tok, &id).await["status"], "failed");
    // Every attempt fails: the retries stop after four attempts.
    *receiver.answers.lock().unwrap() = vec![500; 10];
    submit_ok(&c, &sim, &tok, &payload(Some(&url))).await;
    eventually(|| sim.exports().executions[1].callback_statuses.len() == 4).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(sim.exports().executions[1].callbacks_sent, 4);
}

#[tokio::test]
async fn poll_mode_completes_without_a_callback_and_never_mode_stays_running() {
    let config = SimConfig { export_completion: ExportCompletion::Poll, export_duration: Duration::from_millis(100), ..SimConfig::default() };
    let sim = start(config).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let receiver = Receiver::default();
    let url = receiver.clone().start().await;
    let id = submit_ok(&c, &sim, &tok, &payload(Some(&url))).await;
    let first = status(&c, &sim, &tok, &id).await;
    assert_eq!(first["status"], "running");
    assert!(first.get("rowsExported").is_none() && first.get("endTime").is_none() && first["startTime"].is_string());
    let deadline = Instant::now() + Duration::from_secs(5);
    let done = loop {
        let s = status(&c, &sim, &tok, &id).await;
        if s["status"] != "running" {
            break s;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!((done["status"].as_str(), done["rowsExported"].as_u64()), (Some("completed"), Some(1000)));
    let res = c.post(format!("{}/_sim/exports/{id}/callback", sim.base_url())).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);

    // Switched at runtime: later submissions never finish.
    let res = c.post(format!("{}/_sim/exports/settings", sim.base_url())).json(&json!({"completion": "never"})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["completion"], "never");
    let stuck = submit_ok(&c, &sim, &tok, &payload(Some(&url))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&c, &sim, &tok, &stuck).await["status"], "running");
    assert!(receiver.deliveries().is_empty());
    let res = c.get(format!("{}/api/v2/dataprep/dataactions/{ACTION}/executions/exec-nope", sim.base_url())).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = c.post(format!("{}/_sim/exports/settings", sim.base_url())).json(&json!({"duration_ms": 1u64 << 60})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn spacing_violations_and_concurrent_submits_are_counted_per_data_action() {
    let sim =
        start(SimConfig { export_completion: ExportCompletion::Poll, export_min_spacing: Duration::from_millis(300), ..SimConfig::default() }).await;
    let c = client();
    let tok = token(&c, &sim).await;
    submit_ok(&c, &sim, &tok, &payload(None)).await;
    submit_ok(&c, &sim, &tok, &payload(None)).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    submit_ok(&c, &sim, &tok, &payload(None)).await;
    let mut other = payload(None);
    other["dataActionId"] = json!("da-2");
    let res = c.post(submit_url(&sim, "da-2")).bearer_auth(&tok).json(&other).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let exports = sim.exports();
    assert_eq!(exports.spacing_violations, 1);
    assert_eq!((exports.spacing_violations_per_action[ACTION], exports.spacing_violations_per_action["da-2"]), (1, 0));
    let times: Vec<u64> = exports.executions.iter().map(|e| e.submitted_at_ms).collect();
    assert!(times[2] - times[1] >= 300, "{times:?}");
    assert!(exports.executions.iter().all(|e| parse_rfc3339(&e.submitted_at).is_some()));

    // Submits take the latency fault, so concurrent ones overlap.
    sim.set_faults(FaultUpdate { latency_ms: Some(200), ..Default::default() });
    let body = payload(None);
    let sends = (0..3).map(|_| submit(&c, &sim, &tok, None, &body));
    let answers = futures::future::join_all(sends).await;
    assert!(answers.iter().all(|r| r.status() == StatusCode::CREATED));
    let exports = sim.exports();
    assert_eq!((exports.peak_concurrent_per_action[ACTION], exports.peak_concurrent_per_action["da-2"]), (3, 1));
    // Each of the three came within 300 ms of the one before it.
    assert_eq!(exports.spacing_violations, 4);
}

#[tokio::test]
async fn report_jobs_are_submitted_and_polled_until_finished() {
    let sim = start(SimConfig { export_duration: Duration::from_millis(100), export_rows: 42, ..SimConfig::default() }).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let base = format!("{}/incontactapi/services/v33.0/report-jobs", sim.base_url());
    let res = c.post(format!("{base}/1234")).bearer_auth(&tok).json(&json!({"fileType": "CSV"})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_ACCEPTABLE);
    let res = c.post(format!("{base}/1234")).bearer_auth(&tok).header("accept", "application/json").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let job = res.json::<Value>().await.unwrap()["jobId"].as_str().unwrap().to_owned();

    let poll = || async {
        c.get(format!("{base}/{job}")).bearer_auth(&tok).header("accept", "application/json").send().await.unwrap().json::<Value>().await.unwrap()
    };
    let first = poll().await;
    assert_eq!((first["jobResult"]["state"].as_str(), first["jobResult"]["jobId"].as_str()), (Some("Running"), Some(job.as_str())));
    assert!(first["jobResult"]["endTime"].is_null());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let done = poll().await["jobResult"].clone();
    assert_eq!((done["state"].as_str(), done["rowsExported"].as_u64()), (Some("Finished"), Some(42)));
    let (start, end) = (parse_rfc3339(done["startTime"].as_str().unwrap()).unwrap(), parse_rfc3339(done["endTime"].as_str().unwrap()).unwrap());
    assert_eq!(end - start, 100);
    let file = c.get(done["resultFileURL"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
    assert_eq!(file.lines().count(), 43);

    let res = c.get(format!("{base}/999")).bearer_auth(&tok).header("accept", "application/json").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = c.get(format!("{base}/{job}")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    sim.set_export_settings(ExportSettingsUpdate { completion: Some(ExportCompletion::Never), ..Default::default() }).unwrap();
    let res = c.post(format!("{base}/1234")).bearer_auth(&tok).header("accept", "application/json").json(&json!({})).send().await.unwrap();
    let stuck = res.json::<Value>().await.unwrap()["jobId"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let res = c.get(format!("{base}/{stuck}")).bearer_auth(&tok).header("accept", "application/json").send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["jobResult"]["state"], "Running");
}

#[tokio::test]
async fn reset_forgets_executions_and_cancels_pending_callbacks() {
    let sim = start(SimConfig { export_duration: Duration::from_millis(150), ..SimConfig::default() }).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let receiver = Receiver::default();
    let url = receiver.clone().start().await;
    submit_ok(&c, &sim, &tok, &payload(Some(&url))).await;
    c.post(format!("{}/_sim/reset", sim.base_url())).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.deliveries().is_empty());
    let exports = sim.exports();
    assert!(exports.executions.is_empty() && exports.spacing_violations == 0);
    assert!(sim.requests().is_empty());
}
