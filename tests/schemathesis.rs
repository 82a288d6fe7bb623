//! schemathesis (from PyPI; scripts/ensure-deps installs it) against `/openapi.json` on a live
//! `cxrelay serve`: no 5xx, no response that violates the document (status codes, bodies,
//! content types), for every operation. (Its "schema-valid request rejected" check is left out:
//! the document cannot say every cross-field rule, such as a replay naming its items.)

mod harness;

use cxrelay_sim::SimConfig;
use harness::TestEnv;

fn schemathesis(base: &str, token: &str, operations: &[&str]) -> std::process::Output {
    std::process::Command::new("schemathesis")
        .args(["run", &format!("{base}/openapi.json"), "-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance", "--max-examples", "25", "--seed", "1"])
        .args(operations)
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis not found: run scripts/ensure-deps (it installs it from PyPI)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_to_its_openapi_document() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_API_TOKENS", "schema-operate-1,schema-ingest-1:ingest");
    let addr = format!("127.0.0.1:{}", TestEnv::free_port());
    let _serve = env.spawn_cxrelay(&["serve", "--addr", &addr]);
    let base = format!("http://{addr}");
    env.wait_http_ok(&format!("{base}/readyz")).await;
    let doc: serde_json::Value = reqwest::get(format!("{base}/openapi.json")).await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], serde_json::json!("3.1.0"));
    for path in
        ["/v1/runs", "/v1/runs/{id}", "/v1/runs/{id}/failed", "/v1/runs/{id}/items/{index}", "/v1/runs/{id}/replay", "/v1/workers", "/v1/webhooks"]
    {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    // One token, one role: the ingest operation with an ingest token, the rest with an operate one.
    for (token, ops) in
        [("schema-operate-1", ["--exclude-operation-id", "create_run"]), ("schema-ingest-1", ["--include-operation-id", "create_run"])]
    {
        let out = schemathesis(&base, token, &ops);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "schemathesis {ops:?}:\n{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("passed"), "{text}");
    }
}
