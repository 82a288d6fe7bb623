//! End-to-end tests of the simulator over real HTTP with reqwest.

use std::time::Duration;

use cxrelay_sim::{Arrivals, FaultUpdate, ForceStatus, Ledger, SimConfig, SimServer, SimStats};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const ACTION: &str = "act-42";

async fn start(config: SimConfig) -> SimServer {
    SimServer::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

async fn token_with_scope(c: &Client, sim: &SimServer, scope: Option<&str>) -> String {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let res = c.post(format!("{}/oauth/token", sim.base_url())).basic_auth("sim-client", Some("sim-secret")).form(&form).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

async fn token(c: &Client, sim: &SimServer) -> String {
    token_with_scope(c, sim, None).await
}

fn envelope(index: u64) -> Value {
    json!({"index": index, "action": ACTION, "inputs": {"name": "x"}, "metadata": {"source": "test"}})
}

fn execute_url(sim: &SimServer) -> String {
    format!("{}/api/v1/datapoint/actions/{ACTION}/execute", sim.base_url())
}

async fn execute(c: &Client, sim: &SimServer, token: &str, key: &str, body: &Value) -> reqwest::Response {
    c.post(execute_url(sim)).bearer_auth(token).header("Idempotency-Key", key).json(body).send().await.unwrap()
}

async fn get_json<T: serde::de::DeserializeOwned>(c: &Client, sim: &SimServer, path: &str) -> T {
    c.get(format!("{}{path}", sim.base_url())).send().await.unwrap().json().await.unwrap()
}

async fn post_faults(c: &Client, sim: &SimServer, body: Value) -> reqwest::Response {
    c.post(format!("{}/_sim/faults", sim.base_url())).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn token_via_form_and_basic() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let res = c
        .post(format!("{}/oauth/token", sim.base_url()))
        .basic_auth("sim-client", Some("sim-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "datapoint:actions:execute datapoint:actions:read")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let tok = body["access_token"].as_str().unwrap();
    assert!(tok.len() >= 32);
    assert_eq!(execute(&c, &sim, tok, "k1", &envelope(0)).await.status(), StatusCode::OK);
    let stats = sim.stats();
    assert_eq!((stats.tokens_issued, stats.token_requests), (1, 1));
}

#[tokio::test]
async fn token_via_json_body_gets_default_scopes() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let res = c
        .post(format!("{}/oauth/token", sim.base_url()))
        .json(&json!({"grant_type": "client_credentials", "client_id": "sim-client", "client_secret": "sim-secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scope"], cxrelay_sim::DEFAULT_SCOPES);
    let tok = body["access_token"].as_str().unwrap();
    assert_eq!(execute(&c, &sim, tok, "k1", &envelope(0)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_credentials_and_grant_type() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let url = format!("{}/oauth/token", sim.base_url());
    let res = c.post(&url).basic_auth("sim-client", Some("wrong")).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"error": "invalid_client"}));

    let res = c.post(&url).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "missing credentials");

    let res =
        c.post(&url).json(&json!({"grant_type": "client_credentials", "client_id": "other", "client_secret": "sim-secret"})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let res = c.post(&url).basic_auth("sim-client", Some("sim-secret")).form(&[("grant_type", "password")]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let stats = sim.stats();
    assert_eq!((stats.token_requests, stats.tokens_issued), (4, 0));
}

#[tokio::test]
async fn unknown_and_missing_tokens_are_401() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    assert_eq!(execute(&c, &sim, "nope", "k", &envelope(0)).await.status(), StatusCode::UNAUTHORIZED);
    let res = c.post(execute_url(&sim)).header("Idempotency-Key", "k").json(&envelope(0)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.stats().status_401, 2);
}

#[tokio::test]
async fn expired_token_is_401() {
    let sim = start(SimConfig { token_lifetime: Duration::from_secs(1), ..SimConfig::default() }).await;
    let c = client();
    let tok = token(&c, &sim).await;
    assert_eq!(execute(&c, &sim, &tok, "k1", &envelope(0)).await.status(), StatusCode::OK);
    // Expiry is the behaviour under test, so waiting for it is the test.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = execute(&c, &sim, &tok, "k2", &envelope(1)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "token_expired");
}

#[tokio::test]
async fn token_without_execute_scope_is_403() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tok = token_with_scope(&c, &sim, Some("datapoint:actions:read")).await;
    assert_eq!(execute(&c, &sim, &tok, "k1", &envelope(0)).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(sim.stats().status_403, 1);
    assert_eq!(sim.ledger().applied, 0);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let body = json!({"index": 0, "action": ACTION, "inputs": {"blob": "x".repeat(300 * 1024)}});
    let res = execute(&c, &sim, &tok, "big", &body).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(sim.stats().status_413, 1);
    // The connection stays usable for the next request.
    assert_eq!(execute(&c, &sim, &tok, "small", &envelope(1)).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_envelope_is_400_naming_the_field() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let cases = [
        (json!({"action": ACTION, "inputs": {}}), "index"),
        (json!({"index": -3, "action": ACTION, "inputs": {}}), "index"),
        (json!({"index": 1, "action": "other", "inputs": {}}), "action"),
        (json!({"index": 1, "action": ACTION, "inputs": [1]}), "inputs"),
        (json!({"index": 1, "action": ACTION, "inputs": {}, "metadata": 5}), "metadata"),
        (json!([1, 2, 3]), "body"),
    ];
    for (i, (body, field)) in cases.iter().enumerate() {
        let res = execute(&c, &sim, &tok, &format!("k{i}"), body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(res.json::<Value>().await.unwrap()["field"], *field);
    }
    let res = c.post(execute_url(&sim)).bearer_auth(&tok).json(&envelope(0)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "Idempotency-Key");
    let stats = sim.stats();
    assert_eq!((stats.status_400, stats.applied), (cases.len() as u64 + 1, 0));
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let sim = start(SimConfig { rate_per_second: 1, burst: 1, ..SimConfig::default() }).await;
    let c = client();
    let tok = token(&c, &sim).await;
    assert_eq!(execute(&c, &sim, &tok, "a", &envelope(0)).await.status(), StatusCode::OK);
    let res = execute(&c, &sim, &tok, "b", &envelope(1)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "1");

    sim.set_faults(FaultUpdate { retry_after: Some(false), ..Default::default() });
    let res = execute(&c, &sim, &tok, "c", &envelope(2)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_none());

    // Lifting the limit at runtime lets requests through at once.
    let res = post_faults(&c, &sim, json!({"rate_per_second": 0})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<FaultUpdate>().await.unwrap().rate_per_second, Some(0));
    assert_eq!(execute(&c, &sim, &tok, "d", &envelope(3)).await.status(), StatusCode::OK);
    let stats = sim.stats();
    assert_eq!((stats.ok, stats.status_429, stats.applied), (2, 2, 2));
}

#[tokio::test]
async fn duplicate_key_is_counted_not_applied() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let first: Value = execute(&c, &sim, &tok, "key-1", &envelope(0)).await.json().await.unwrap();
    assert_eq!(first, json!({"executionId": "key-1", "status": "completed", "duplicate": false}));
    let res = execute(&c, &sim, &tok, "key-1", &envelope(0)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["duplicate"], true);
    assert_eq!(execute(&c, &sim, &tok, "key-2", &envelope(1)).await.status(), StatusCode::OK);

    let ledger: Ledger = get_json(&c, &sim, "/_sim/ledger").await;
    assert_eq!((ledger.applied, ledger.duplicates), (2, 1));
    let e1 = ledger.entries.iter().find(|e| e.key == "key-1").unwrap();
    assert_eq!(e1.count, 2);
    assert_eq!(ledger, sim.ledger());
    let stats: SimStats = get_json(&c, &sim, "/_sim/stats").await;
    assert_eq!((stats.ok, stats.applied, stats.duplicates), (3, 2, 1));
}

#[tokio::test]
async fn force_status_window() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let res = post_faults(&c, &sim, json!({"force_status": {"status": 429, "for_ms": 60_000, "retry_after_secs": 7}})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let effective: FaultUpdate = res.json().await.unwrap();
    assert_eq!(effective.force_status.as_ref().map(|f| f.status), Some(429));
    for i in 0..3 {
        let res = execute(&c, &sim, &tok, &format!("k{i}"), &envelope(i)).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()["retry-after"], "7");
    }
    // for_ms 0 ends the window at once.
    sim.set_faults(FaultUpdate { force_status: Some(ForceStatus { status: 429, for_ms: 0, retry_after_secs: None }), ..Default::default() });
    assert_eq!(execute(&c, &sim, &tok, "k9", &envelope(9)).await.status(), StatusCode::OK);

    // A short 503 window ends by itself; its end is time, so the test waits for it.
    sim.set_faults(FaultUpdate { force_status: Some(ForceStatus { status: 503, for_ms: 200, retry_after_secs: None }), ..Default::default() });
    let res = execute(&c, &sim, &tok, "w1", &envelope(10)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_none());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(execute(&c, &sim, &tok, "w2", &envelope(11)).await.status(), StatusCode::OK);
    let stats = sim.stats();
    assert_eq!((stats.status_429, stats.status_5xx, stats.ok, stats.applied), (3, 1, 2, 2));
}

#[tokio::test]
async fn invalid_fault_update_is_400() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let res = post_faults(&c, &sim, json!({"error_rate": 2.0})).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "error_rate");
    let res = post_faults(&c, &sim, json!({"eror_rate": 0.5})).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "unknown fields are refused");
    let res = post_faults(&c, &sim, json!({"force_status": {"status": 200, "for_ms": 10}})).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sim.faults().error_rate, Some(0.0));
}

#[tokio::test]
async fn reset_rate_one_drops_the_connection() {
    let sim = start(SimConfig { reset_rate: 1.0, ..SimConfig::default() }).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let err = c
        .post(execute_url(&sim))
        .bearer_auth(&tok)
        .header("Idempotency-Key", "k1")
        .json(&envelope(0))
        .send()
        .await
        .expect_err("connection must be dropped");
    assert!(!err.is_timeout(), "{err:?}");
    assert!(is_connection_reset(&err), "expected an RST, got {err:?}");
    assert!(err.status().is_none());
    let stats = sim.stats();
    assert_eq!((stats.requests, stats.resets, stats.ok, stats.applied), (1, 1, 0, 0));
    let arrivals: Arrivals = get_json(&c, &sim, "/_sim/arrivals").await;
    assert_eq!(arrivals.arrivals.len(), 1);
    assert_eq!(arrivals.arrivals[0].status, 0);
}

/// Whether an `io::ErrorKind::ConnectionReset` is somewhere in the error's source chain.
fn is_connection_reset(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset) {
            return true;
        }
        cur = e.source();
    }
    false
}

#[tokio::test]
async fn error_rate_one_answers_5xx() {
    let sim = start(SimConfig { error_rate: 1.0, ..SimConfig::default() }).await;
    let c = client();
    let tok = token(&c, &sim).await;
    for i in 0..10 {
        let status = execute(&c, &sim, &tok, &format!("k{i}"), &envelope(i)).await.status();
        assert!([500, 502, 503].contains(&status.as_u16()), "{status}");
    }
    let stats = sim.stats();
    assert_eq!((stats.status_5xx, stats.applied), (10, 0));
}

#[tokio::test]
async fn stats_arrivals_concurrency_and_reset() {
    let sim = start(SimConfig { latency: Duration::from_millis(400), ..SimConfig::default() }).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let futures = (0..4).map(|i| {
        let (c, tok, sim) = (&c, &tok, &sim);
        async move { execute(c, sim, tok, &format!("k{i}"), &envelope(i)).await.status() }
    });
    for status in futures::future::join_all(futures).await {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(execute(&c, &sim, "bad", "x", &envelope(9)).await.status(), StatusCode::UNAUTHORIZED);

    let stats: SimStats = get_json(&c, &sim, "/_sim/stats").await;
    assert_eq!(stats.requests, 5);
    assert_eq!(stats.ok, 4);
    assert_eq!(stats.status_401, 1);
    assert_eq!(stats.applied, 4);
    assert_eq!(stats.max_concurrent, 4);
    assert_eq!(stats.tokens_issued, 1);

    let arrivals = sim.arrivals();
    assert_eq!(arrivals.len(), 5);
    assert!(arrivals.windows(2).all(|w| w[0].t_us <= w[1].t_us));
    assert_eq!(arrivals.iter().filter(|a| a.status == 200).count(), 4);
    assert_eq!(arrivals.last().unwrap().status, 401);

    let res = c.post(format!("{}/_sim/reset", sim.base_url())).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(sim.stats(), SimStats::default());
    assert_eq!(sim.ledger(), Ledger::default());
    assert!(sim.arrivals().is_empty());
    // Tokens survive a reset.
    assert_eq!(execute(&c, &sim, &tok, "k0", &envelope(0)).await.status(), StatusCode::OK);
    assert_eq!(sim.ledger().applied, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_releases_the_port() {
    let sim = start(SimConfig::default()).await;
    let addr = sim.addr();
    assert_eq!(sim.base_url(), format!("http://127.0.0.1:{}", addr.port()));
    sim.shutdown().await;
    let again = SimServer::start(SimConfig::default(), addr).await.unwrap();
    assert_eq!(again.addr(), addr);
}

fn with_item(index: u64, item: Value) -> Value {
    json!({"index": index, "action": ACTION, "inputs": item, "metadata": {"source": "test"}})
}

#[tokio::test]
async fn poison_item_always_fails_and_is_never_applied() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let poison = with_item(0, json!({"name": "x", "_sim": {"status": 503}}));
    for key in ["p1", "p1", "p1", "p2"] {
        let res = execute(&c, &sim, &tok, key, &poison).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.headers().get("retry-after").is_none());
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"error": "item_directive", "status": 503}));
    }
    // Other statuses, each counted in its own stats field; a 429 can carry Retry-After.
    let res = execute(&c, &sim, &tok, "q", &with_item(1, json!({"_sim": {"status": 429, "retry_after_secs": 4}}))).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "4");
    for (i, status) in [404u16, 422].into_iter().enumerate() {
        let item = with_item(2 + i as u64, json!({"_sim": {"status": status}}));
        let res = execute(&c, &sim, &tok, &format!("s{status}"), &item).await;
        assert_eq!(res.status().as_u16(), status);
    }
    // An ordinary item next to them is applied.
    assert_eq!(execute(&c, &sim, &tok, "ok", &envelope(9)).await.status(), StatusCode::OK);
    let stats = sim.stats();
    assert_eq!((stats.status_5xx, stats.status_429, stats.status_404, stats.status_422), (4, 1, 1, 1));
    assert_eq!((stats.ok, stats.applied), (1, 1));
    let ledger = sim.ledger();
    assert_eq!(ledger.applied, 1);
    assert_eq!(ledger.entries[0].key, "ok");
    assert_eq!(sim.arrivals().iter().filter(|a| a.status == 503).count(), 4);
}

#[tokio::test]
async fn directive_comes_after_auth_and_rate_limit_and_is_validated() {
    let sim = start(SimConfig { rate_per_second: 1, burst: 1, ..SimConfig::default() }).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let poison = with_item(0, json!({"_sim": {"status": 500}}));
    assert_eq!(execute(&c, &sim, "nope", "k", &poison).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(execute(&c, &sim, &tok, "k", &poison).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
    // The limiter's single token is spent: the 429 wins over the directive.
    assert_eq!(execute(&c, &sim, &tok, "k", &poison).await.status(), StatusCode::TOO_MANY_REQUESTS);
    sim.set_faults(FaultUpdate { rate_per_second: Some(0), ..Default::default() });
    let res = execute(&c, &sim, &tok, "bad", &with_item(1, json!({"_sim": {"status": 200}}))).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert_eq!((&body["error"], &body["field"]), (&json!("invalid_directive"), &json!("_sim.status")));
    // `_sim` with a non-object value is ordinary data.
    assert_eq!(execute(&c, &sim, &tok, "d", &with_item(2, json!({"_sim": "x"}))).await.status(), StatusCode::OK);
    assert_eq!(sim.ledger().applied, 1);
}

#[tokio::test]
async fn fail_times_fails_then_applies_per_key() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let flaky = with_item(0, json!({"name": "x", "_sim": {"status": 503, "fail_times": 2}}));
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(execute(&c, &sim, &tok, "k1", &flaky).await.status().as_u16());
    }
    assert_eq!(seen, [503, 503, 200]);
    let res = execute(&c, &sim, &tok, "k1", &flaky).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["duplicate"], true);
    // The count is per idempotency key.
    assert_eq!(execute(&c, &sim, &tok, "k2", &flaky).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    let stats = sim.stats();
    assert_eq!((stats.status_5xx, stats.ok, stats.applied, stats.duplicates), (3, 2, 1, 1));
    // A reset forgets the counts along with the ledger.
    sim.reset();
    assert_eq!(execute(&c, &sim, &tok, "k1", &flaky).await.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn delay_directive_delays_the_answer_and_shows_in_flight() {
    let sim = start(SimConfig::default()).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let slow = with_item(0, json!({"_sim": {"delay_ms": 800}}));
    let started = std::time::Instant::now();
    let request = execute(&c, &sim, &tok, "slow", &slow);
    let watch = async {
        // The request is held for 800 ms; it must show up as in flight meanwhile.
        while sim.stats().in_flight == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sim.stats().in_flight
    };
    let (res, in_flight) = tokio::join!(request, watch);
    assert_eq!(res.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(in_flight, 1);
    assert_eq!((sim.stats().in_flight, sim.ledger().applied), (0, 1));

    // With a status, the failure comes after the delay.
    let started = std::time::Instant::now();
    let slow_fail = with_item(1, json!({"_sim": {"delay_ms": 200, "status": 502}}));
    assert_eq!(execute(&c, &sim, &tok, "slow-fail", &slow_fail).await.status(), StatusCode::BAD_GATEWAY);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(sim.ledger().applied, 1);
}

#[tokio::test]
async fn echo_headers_returns_request_headers_in_error_bodies() {
    let sim = start(SimConfig { echo_headers: true, ..SimConfig::default() }).await;
    let c = client();
    let tok = token(&c, &sim).await;

    let res = execute(&c, &sim, "leaked-token", "k", &envelope(0)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(body["request_headers"]["authorization"], "Bearer leaked-token");
    assert_eq!(body["request_headers"]["idempotency-key"], "k");

    // A 4xx after a valid token echoes that token.
    let res = execute(&c, &sim, &tok, "k", &with_item(0, json!({"_sim": {"status": 422}}))).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "item_directive");
    assert_eq!(body["request_headers"]["authorization"], format!("Bearer {tok}"));

    // 2xx answers are never decorated.
    let res = execute(&c, &sim, &tok, "ok", &envelope(1)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.json::<Value>().await.unwrap().get("request_headers").is_none());

    // The token endpoint's 401 echoes the Basic credentials.
    let res = c
        .post(format!("{}/oauth/token", sim.base_url()))
        .basic_auth("sim-client", Some("wrong-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("www-authenticate"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    // base64("sim-client:wrong-secret")
    assert_eq!(body["request_headers"]["authorization"], "Basic c2ltLWNsaWVudDp3cm9uZy1zZWNyZXQ=");

    // Switched off at runtime, bodies are back to normal.
    let res = post_faults(&c, &sim, json!({"echo_headers": false})).await;
    assert_eq!(res.json::<FaultUpdate>().await.unwrap().echo_headers, Some(false));
    let res = execute(&c, &sim, "leaked-token", "k", &envelope(0)).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"error": "invalid_token"}));
}

#[tokio::test]
async fn rate_limit_headers_on_2xx_and_429() {
    let sim = start(SimConfig { rate_per_second: 1, burst: 1, rate_limit_headers: true, ..SimConfig::default() }).await;
    let c = client();
    let tok = token(&c, &sim).await;
    let assert_headers = |res: &reqwest::Response| {
        let h = res.headers();
        assert_eq!(h["x-ratelimit-limit"], "1");
        assert_eq!(h["ratelimit-limit"], "1");
        assert_eq!(h["ratelimit-policy"], "1;w=1");
    };
    let res = execute(&c, &sim, &tok, "a", &envelope(0)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_headers(&res);
    let res = execute(&c, &sim, &tok, "b", &envelope(1)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_headers(&res);
    assert_eq!(sim.faults().rate_limit_headers, Some(true));

    // A new rate is advertised at once; no rate limit means no headers.
    let effective = sim.try_set_faults(FaultUpdate { rate_per_second: Some(500), ..Default::default() }).unwrap();
    assert_eq!(effective.rate_limit_headers, Some(true));
    let res = execute(&c, &sim, &tok, "c", &envelope(2)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["ratelimit-policy"], "500;w=1");
    sim.set_faults(FaultUpdate { rate_per_second: Some(0), ..Default::default() });
    let res = execute(&c, &sim, &tok, "d", &envelope(3)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("ratelimit-limit").is_none());

    // Off by default.
    let plain = start(SimConfig { rate_per_second: 1, ..SimConfig::default() }).await;
    let tok = token(&c, &plain).await;
    let res = execute(&c, &plain, &tok, "a", &envelope(0)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("x-ratelimit-limit").is_none());
}
