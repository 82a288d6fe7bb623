//! Every target profile end to end against the simulator: items delivered, tokens obtained (and
//! refreshed), and the exact paths, headers and bodies the simulator observed.
//!
//! - seed, client credentials as a Basic form (the default) and as a JSON body;
//! - cxone: access-key password grant, token endpoint from OpenID discovery, the tenant's API base
//!   from `/.well-known/cxone-configuration?tenantId=` (the id read from the token's JWT), flat
//!   bodies, `Accept: application/json`;
//! - genesys: client credentials, flat bodies at the Genesys path, the profile's 5 requests/s;
//! - a profile missing a required setting stops the worker at start, naming setting and variable.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use cxrelay_sim::{RequestRecord, RequestRoute, SimConfig};
use harness::TestEnv;
use serde_json::{json, Value};

fn items(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"customer_id": format!("c{i}"), "seq": i, "note": "a \"quoted\" name"})).collect()
}

fn of(reqs: &[RequestRecord], route: RequestRoute) -> Vec<&RequestRecord> {
    reqs.iter().filter(|r| r.route == route).collect()
}

/// The executes the simulator answered 2xx: one per item, each with its own Idempotency-Key.
fn applied(reqs: &[RequestRecord], route: RequestRoute, n: usize) -> Vec<&RequestRecord> {
    let ok: Vec<&RequestRecord> = of(reqs, route).into_iter().filter(|r| (200..300).contains(&r.status)).collect();
    let keys: BTreeSet<&str> = ok.iter().filter_map(|r| r.headers.idempotency_key.as_deref()).collect();
    assert_eq!(keys.len(), n, "one applied request per item, each with its Idempotency-Key");
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_profile_with_a_basic_form_token_request() {
    // 2 s tokens (used for 1 s: the 30 s margin is longer than the lifetime) over a ~2 s run.
    let mut env = TestEnv::start(SimConfig { token_lifetime: Duration::from_secs(2), ..SimConfig::default() }).await;
    env.set("CXRELAY_RATE", "40");
    let input = items(80);
    env.enqueue_items("seed-form", &input, &[]);
    let _w = env.spawn_worker(4);
    let report = env.wait_finished("seed-form", Duration::from_secs(60)).await;
    assert_eq!((report.succeeded, report.failed), (80, 0));

    let reqs = env.sim.requests();
    let tokens = of(&reqs, RequestRoute::SeedToken);
    assert!(tokens.len() >= 2, "the token was refreshed during the run: {} token requests", tokens.len());
    for t in &tokens {
        assert_eq!((t.method.as_str(), t.path.as_str()), ("POST", "/oauth/token"));
        assert_eq!(t.headers.authorization_scheme.as_deref(), Some("Basic"));
        assert!(t.headers.content_type.as_deref().unwrap_or("").starts_with("application/x-www-form-urlencoded"), "{t:?}");
        assert_eq!(t.body["grant_type"], "client_credentials");
        assert_eq!(t.body["scope"], "datapoint:actions:execute datapoint:actions:read");
    }
    assert!(of(&reqs, RequestRoute::SeedExecute).iter().all(|r| r.status != 401), "tokens were refreshed before they expired");
    let mut seen = BTreeSet::new();
    for r in applied(&reqs, RequestRoute::SeedExecute, 80) {
        assert_eq!(r.path, "/api/v1/datapoint/actions/action-1/execute");
        assert_eq!(r.headers.accept.as_deref(), Some("application/json"));
        assert_eq!(r.headers.content_type.as_deref(), Some("application/json"));
        assert_eq!(r.headers.authorization_scheme.as_deref(), Some("Bearer"));
        let index = r.body["index"].as_u64().expect("envelope index") as usize;
        assert_eq!(r.body["action"], "action-1");
        assert_eq!(r.body["inputs"], input[index], "the item is the envelope's inputs");
        assert_eq!(r.body["metadata"]["batch"], "seed-form");
        seen.insert(index);
    }
    assert_eq!(seen.len(), 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_profile_with_a_json_token_request() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_AUTH", "client_credentials_json").set("CXRELAY_SCOPE", "datapoint:actions:execute");
    env.enqueue_items("seed-json", &items(10), &[]);
    let _w = env.spawn_worker(4);
    assert_eq!(env.wait_finished("seed-json", Duration::from_secs(60)).await.succeeded, 10);

    let reqs = env.sim.requests();
    let tokens = of(&reqs, RequestRoute::SeedToken);
    assert_eq!(tokens.len(), 1, "one token for the whole run");
    let t = tokens[0];
    assert_eq!(t.headers.content_type.as_deref(), Some("application/json"));
    assert_eq!(t.headers.authorization_scheme, None, "credentials in the body, not as Basic");
    assert_eq!(t.body["grant_type"], "client_credentials");
    assert_eq!(t.body["client_id"], "sim-client");
    assert_eq!(t.body["client_secret"], "[redacted]", "the secret was sent (the simulator logs it redacted)");
    assert_eq!(t.body["scope"], "datapoint:actions:execute");
    applied(&reqs, RequestRoute::SeedExecute, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cxone_profile_with_an_access_key_and_discovery() {
    let sim = SimConfig { token_lifetime: Duration::from_secs(2), ..SimConfig::default() };
    let (key_id, tenant_id) = (sim.access_key_id.clone(), sim.tenant_id.clone());
    assert!(sim.access_key_secret.expose().ends_with('='), "the simulator's key ends in '=' like real ones, so URL-encoding is exercised");
    let mut env = TestEnv::start(sim).await;
    env.cxone_profile().set("CXRELAY_RATE", "40");
    let input = items(60);
    env.enqueue_items("cxone", &input, &[]);
    let _w = env.spawn_worker(4);
    let report = env.wait_finished("cxone", Duration::from_secs(60)).await;
    assert_eq!((report.succeeded, report.failed), (60, 0), "{}", env.logs());

    let reqs = env.sim.requests();
    assert!(!of(&reqs, RequestRoute::OpenidConfiguration).is_empty(), "the token endpoint was discovered");
    let tokens = of(&reqs, RequestRoute::CxoneToken);
    assert!(tokens.len() >= 2, "the token was refreshed: {}", tokens.len());
    for t in &tokens {
        assert_eq!((t.path.as_str(), t.status), ("/auth/token", 200));
        assert_eq!(t.headers.authorization_scheme.as_deref(), Some("Basic"), "client id and secret as Basic");
        assert_eq!(t.body["grant_type"], "password");
        assert_eq!(t.body["username"], key_id.as_str());
        assert_eq!(t.body["password"], "[redacted]");
    }
    let configs = of(&reqs, RequestRoute::CxoneConfiguration);
    assert!(configs.len() >= tokens.len(), "the API base is looked up again with every token");
    for c in &configs {
        assert_eq!(c.query.as_deref(), Some(format!("tenantId={tenant_id}").as_str()), "the tenant id from the token's claims");
    }
    assert!(of(&reqs, RequestRoute::SeedToken).is_empty() && of(&reqs, RequestRoute::SeedExecute).is_empty());
    let mut bodies = Vec::new();
    for r in applied(&reqs, RequestRoute::CxoneExecute, 60) {
        assert_eq!(r.path, "/incontactapi/services/v33.0/data-actions/action-1/execute");
        assert_eq!(r.headers.accept.as_deref(), Some("application/json"));
        assert_eq!(r.headers.authorization_scheme.as_deref(), Some("Bearer"));
        bodies.push(r.body.clone());
    }
    bodies.sort_by_key(|b| b["seq"].as_u64());
    assert_eq!(bodies, input, "flat bodies: each item as it was given");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesys_profile_with_flat_bodies_at_its_rate() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    // No CXRELAY_RATE: the profile's ~300 requests/minute (5/s) applies.
    env.set("CXRELAY_PROFILE", "genesys").unset("CXRELAY_RATE");
    let input = items(12);
    env.enqueue_items("genesys", &input, &[]);
    let _w = env.spawn_worker(4);
    let report = env.wait_finished("genesys", Duration::from_secs(60)).await;
    assert_eq!((report.succeeded, report.failed), (12, 0));

    let reqs = env.sim.requests();
    let tokens = of(&reqs, RequestRoute::SeedToken);
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].headers.authorization_scheme.as_deref(), Some("Basic"));
    assert_eq!(tokens[0].body["grant_type"], "client_credentials");
    assert!(tokens[0].body.get("scope").is_none(), "no scope unless configured: {:?}", tokens[0].body);
    let sent = applied(&reqs, RequestRoute::GenesysExecute, 12);
    let mut bodies: Vec<Value> = sent.iter().map(|r| r.body.clone()).collect();
    bodies.sort_by_key(|b| b["seq"].as_u64());
    assert_eq!(bodies, input, "flat bodies");
    assert!(sent.iter().all(|r| r.path == "/api/v2/integrations/actions/action-1/execute"));
    // 12 requests at 5/s with a burst of 1 take at least 11/5 = 2.2 s; allow for clock grain.
    let (first, last) = (sent.iter().map(|r| r.at_ms).min().unwrap(), sent.iter().map(|r| r.at_ms).max().unwrap());
    assert!(last - first >= 1_900, "the profile's rate spaced the requests: {} ms", last - first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_required_setting_stops_the_worker_at_start() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_PROFILE", "cxone").unset("CXRELAY_API_BASE");
    let out = env.cxrelay().args(["worker"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("target.access_key_id") && err.contains("CXRELAY_ACCESS_KEY_ID") && err.contains("cxone"), "{err}");
    env.set("CXRELAY_PROFILE", "custom").set("CXRELAY_API_BASE", "http://127.0.0.1:9");
    let out = env.cxrelay().args(["worker"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("target.execute_path") && err.contains("CXRELAY_EXECUTE_PATH"), "{err}");
    // Commands that do not talk to the target do not need it.
    assert_eq!(env.cxrelay().args(["runs", "--json"]).output().unwrap().status.code(), Some(0));
}
