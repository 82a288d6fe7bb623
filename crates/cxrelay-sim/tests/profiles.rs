//! End-to-end tests of the real targets' shapes over HTTP: CXone discovery, the access-key password
//! grant and its JWT, the flat-body CXone and Genesys execute routes, and the request log.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cxrelay_core::Secret;
use cxrelay_sim::{Ledger, RequestRecord, RequestRoute, SimConfig, SimServer};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

/// An access key secret with the characters form encoding must escape (`+`, `/`, `=`).
const ACCESS_SECRET: &str = "k+y/s3cr3t-value==";
const CLIENT_SECRET: &str = "client-s3cret";
const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

fn config() -> SimConfig {
    SimConfig {
        access_key_id: "AKID-1".to_owned(),
        access_key_secret: Secret::new(ACCESS_SECRET),
        client_secret: Secret::new(CLIENT_SECRET),
        tenant_id: TENANT.to_owned(),
        ..SimConfig::default()
    }
}

async fn start(config: SimConfig) -> SimServer {
    SimServer::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// A CXone access token through the password grant, client credentials as HTTP Basic.
async fn cxone_token(c: &Client, sim: &SimServer) -> String {
    let res = c
        .post(format!("{}/auth/token", sim.base_url()))
        .basic_auth("sim-client", Some(CLIENT_SECRET))
        .form(&[("grant_type", "password"), ("username", "AKID-1"), ("password", ACCESS_SECRET)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

/// The decoded header and payload of a JWT.
fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let decode = |s: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    assert!(!parts[2].is_empty() && !token.contains('='));
    (decode(parts[0]), decode(parts[1]))
}

#[tokio::test]
async fn discovery_documents_point_at_the_simulator() {
    let sim = start(config()).await;
    let c = client();
    let base = sim.base_url();
    let res = c.get(format!("{base}/.well-known/openid-configuration")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["issuer"], base);
    assert_eq!(doc["token_endpoint"], format!("{base}/auth/token"));
    assert!(doc["authorization_endpoint"].as_str().unwrap().starts_with(&base));
    assert!(doc["jwks_uri"].as_str().unwrap().starts_with(&base));
    assert_eq!(doc["grant_types_supported"], json!(["password", "client_credentials"]));

    let url = format!("{base}/.well-known/cxone-configuration");
    let res = c.get(&url).query(&[("tenantId", TENANT)]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc, json!({"api_endpoint": base, "ui_endpoint": base, "auth_endpoint": base, "area": "sim1", "tenantId": TENANT}));
    let res = c.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "tenantId");
    let res = c.get(&url).query(&[("tenantId", "someone-else")]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "tenant_not_found");
}

#[tokio::test]
async fn password_grant_with_an_access_key_issues_a_jwt_with_the_tenant() {
    let sim = start(config()).await;
    let c = client();
    let url = format!("{}/auth/token", sim.base_url());
    // Encoded by hand, as a careful client does: `+`, `/` and `=` escaped.
    let body = "grant_type=password&username=AKID-1&password=k%2By%2Fs3cr3t-value%3D%3D";
    let res = c
        .post(&url)
        .basic_auth("sim-client", Some(CLIENT_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let answer: Value = res.json().await.unwrap();
    assert_eq!((answer["token_type"].as_str(), answer["expires_in"].as_u64()), (Some("Bearer"), Some(3600)));
    let token = answer["access_token"].as_str().unwrap();
    let (header, payload) = jwt_parts(token);
    assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
    assert_eq!((payload["tenantId"].as_str(), payload["iss"].as_str()), (Some(TENANT), Some(sim.base_url().as_str())));
    assert!(payload["sub"].is_string());
    assert_eq!(payload["exp"].as_u64().unwrap() - payload["iat"].as_u64().unwrap(), 3600);
    assert!(sim.issued_tokens().contains(&token.to_owned()));

    // Client credentials in the body instead of Basic.
    let res = c
        .post(&url)
        .form(&[
            ("grant_type", "password"),
            ("username", "AKID-1"),
            ("password", ACCESS_SECRET),
            ("client_id", "sim-client"),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let second = res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second, token, "every token is unique");
    assert_eq!(sim.stats().tokens_issued, 2);
}

#[tokio::test]
async fn wrong_key_grant_or_client_is_refused() {
    let sim = start(config()).await;
    let c = client();
    let url = format!("{}/auth/token", sim.base_url());
    let post = |form: Vec<(&'static str, &'static str)>, secret: &'static str| c.post(&url).basic_auth("sim-client", Some(secret)).form(&form).send();
    // (form, client secret, status, error)
    type Case = (Vec<(&'static str, &'static str)>, &'static str, StatusCode, &'static str);
    let cases: Vec<Case> = vec![
        (
            vec![("grant_type", "password"), ("username", "AKID-1"), ("password", "k+y/s3cr3t-value=")],
            CLIENT_SECRET,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (
            vec![("grant_type", "password"), ("username", "other"), ("password", ACCESS_SECRET)],
            CLIENT_SECRET,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
        (vec![("grant_type", "password"), ("username", "AKID-1")], CLIENT_SECRET, StatusCode::BAD_REQUEST, "invalid_grant"),
        (vec![("grant_type", "authorization_code"), ("code", "x")], CLIENT_SECRET, StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        (vec![("grant_type", "password"), ("username", "AKID-1"), ("password", ACCESS_SECRET)], "wrong", StatusCode::UNAUTHORIZED, "invalid_client"),
    ];
    for (form, secret, status, error) in cases {
        let res = post(form.clone(), secret).await.unwrap();
        assert_eq!(res.status(), status, "{form:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], error, "{form:?}");
        assert!(!body.to_string().contains(ACCESS_SECRET) && !body.to_string().contains(CLIENT_SECRET));
    }
    // Without any client credentials.
    let res = c.post(&url).form(&[("grant_type", "password"), ("username", "AKID-1"), ("password", ACCESS_SECRET)]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.stats().tokens_issued, 0);
}

fn cxone_url(sim: &SimServer, action: &str) -> String {
    format!("{}/incontactapi/services/v33.0/data-actions/{action}/execute", sim.base_url())
}

#[tokio::test]
async fn cxone_execute_needs_accept_json_takes_a_flat_body_and_uses_the_ledger() {
    let sim = start(config()).await;
    let c = client();
    let token = cxone_token(&c, &sim).await;
    let url = cxone_url(&sim, "act-1");
    let item = json!({"name": "Ada", "id": 7});

    // reqwest sends `Accept: */*` unless told otherwise: not enough.
    let res = c.post(&url).bearer_auth(&token).header("Idempotency-Key", "k1").json(&item).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_ACCEPTABLE);
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["error"].as_str(), body["header"].as_str()), (Some("not_acceptable"), Some("Accept")));
    assert_eq!(sim.ledger().applied, 0);

    let send = |key: &'static str, body: Value| {
        c.post(&url).bearer_auth(&token).header("accept", "application/json").header("Idempotency-Key", key).json(&body).send()
    };
    let res = send("k1", item.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"executionId": "k1", "status": "completed", "duplicate": false}));
    let res = send("k1", item.clone()).await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["duplicate"], true);
    let res = send("k2", json!([item])).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.json::<Value>().await.unwrap()["field"], "body");

    let ledger: Ledger = c.get(format!("{}/_sim/ledger", sim.base_url())).send().await.unwrap().json().await.unwrap();
    assert_eq!((ledger.applied, ledger.duplicates, ledger.entries[0].key.as_str(), ledger.entries[0].count), (1, 1, "k1", 2));
    assert_eq!(ledger, sim.ledger());

    // Token checks are the seed's.
    let res = c.post(&url).bearer_auth("nope").header("accept", "application/json").json(&item).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Without a key the item is applied but nothing goes to the ledger.
    let res = c.post(&url).bearer_auth(&token).header("accept", "application/json").json(&item).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "completed", "duplicate": false}));
    assert_eq!((sim.stats().applied, sim.ledger().applied), (2, 1));
}

#[tokio::test]
async fn genesys_execute_takes_a_flat_body_and_429_always_says_when_to_retry() {
    // Retry-After is off for the seed shape: Genesys sends it anyway, CXone never does.
    let sim = start(SimConfig { rate_per_second: 1, burst: 1, retry_after: false, ..config() }).await;
    let c = client();
    let token = cxone_token(&c, &sim).await;
    let url = format!("{}/api/v2/integrations/actions/act-1/execute", sim.base_url());
    let res = c.post(&url).bearer_auth(&token).header("Idempotency-Key", "g1").json(&json!({"a": 1})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = c.post(&url).bearer_auth(&token).header("Idempotency-Key", "g2").json(&json!({"a": 2})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&secs), "{secs}");
    let res = c.post(cxone_url(&sim, "act-1")).bearer_auth(&token).header("accept", "application/json").json(&json!({"a": 3})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_none());

    sim.set_faults(cxrelay_sim::FaultUpdate { rate_per_second: Some(0), ..Default::default() });
    let res = c.post(&url).bearer_auth(&token).header("Idempotency-Key", "g3").json(&json!("not an object")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = c.post(&url).bearer_auth(&token).header("Idempotency-Key", "g1").json(&json!({"a": 1})).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["duplicate"], true);
    let stats = sim.stats();
    assert_eq!((stats.applied, stats.duplicates, stats.status_429), (1, 1, 2));
}

#[tokio::test]
async fn request_log_records_paths_headers_and_bodies_without_secrets() {
    let sim = start(config()).await;
    let c = client();
    let base = sim.base_url();
    let token = cxone_token(&c, &sim).await;
    c.get(format!("{base}/.well-known/cxone-configuration?tenantId={TENANT}")).send().await.unwrap();
    // `%2F` stays encoded in the logged path.
    let res = c
        .post(format!("{base}/api/v2/integrations/actions/act%2F1/execute?trace=1"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "g-1")
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seed_token = c
        .post(format!("{base}/oauth/token"))
        .json(&json!({"grant_type": "client_credentials", "client_id": "sim-client", "client_secret": CLIENT_SECRET}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let envelope = json!({"index": 0, "action": "a", "inputs": {"x": 1}});
    let res = c
        .post(format!("{base}/api/v1/datapoint/actions/a/execute"))
        .bearer_auth(&seed_token)
        .header("Idempotency-Key", "s-1")
        .json(&envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let over_http: Vec<RequestRecord> = c.get(format!("{base}/_sim/requests")).send().await.unwrap().json().await.unwrap();
    let log = sim.requests();
    assert_eq!(over_http, log);
    let routes: Vec<RequestRoute> = log.iter().map(|r| r.route).collect();
    assert_eq!(
        routes,
        [
            RequestRoute::CxoneToken,
            RequestRoute::CxoneConfiguration,
            RequestRoute::GenesysExecute,
            RequestRoute::SeedToken,
            RequestRoute::SeedExecute
        ]
    );

    let token_req = &log[0];
    assert_eq!((token_req.method.as_str(), token_req.path.as_str(), token_req.status), ("POST", "/auth/token", 200));
    assert_eq!(token_req.headers.authorization_scheme.as_deref(), Some("Basic"));
    assert_eq!(token_req.body, json!({"grant_type": "password", "username": "AKID-1", "password": "[redacted]"}));
    assert_eq!(log[1].query.as_deref(), Some(format!("tenantId={TENANT}").as_str()));
    let exec = &log[2];
    assert_eq!((exec.path.as_str(), exec.query.as_deref()), ("/api/v2/integrations/actions/act%2F1/execute", Some("trace=1")));
    assert_eq!(exec.headers.idempotency_key.as_deref(), Some("g-1"));
    assert_eq!(exec.headers.authorization_scheme.as_deref(), Some("Bearer"));
    assert_eq!(exec.headers.content_type.as_deref(), Some("application/json"));
    assert_eq!(exec.body, json!({"name": "Ada"}));
    assert_eq!(log[3].body["client_secret"], "[redacted]");
    assert_eq!(log[4].body, envelope);

    let text = serde_json::to_string(&log).unwrap();
    for secret in [ACCESS_SECRET, "k%2By", CLIENT_SECRET, &token, &seed_token] {
        assert!(!text.contains(secret), "{secret} leaked into the request log");
    }
    c.post(format!("{base}/_sim/reset")).send().await.unwrap();
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn seed_executes_can_be_left_out_of_the_request_log() {
    let sim = start(SimConfig { log_requests: false, ..config() }).await;
    let c = client();
    let token = cxone_token(&c, &sim).await;
    let envelope = json!({"index": 0, "action": "a", "inputs": {}});
    let res = c
        .post(format!("{}/api/v1/datapoint/actions/a/execute", sim.base_url()))
        .bearer_auth(&token)
        .header("Idempotency-Key", "s")
        .json(&envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let routes: Vec<RequestRoute> = sim.requests().iter().map(|r| r.route).collect();
    assert_eq!(routes, [RequestRoute::CxoneToken]);
}
