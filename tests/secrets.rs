//! Secrets never leak: a delivery with failures against a target that echoes every request
//! header back (bearer token, Basic credentials) leaves no client secret and no token in any
//! Redis key, any log or any command output.

mod harness;

use std::time::Duration;

use base64::Engine;
use cxrelay_core::Secret;
use cxrelay_sim::SimConfig;
use harness::TestEnv;
use serde_json::json;

const CLIENT_SECRET: &str = "cs-leak-canary-4242";
const WRONG_SECRET: &str = "wrong-canary-secret-777";
/// A webhook signing secret (whsec_ + base64 of "webhook-canary-key-1234").
const WEBHOOK_SECRET: &str = "whsec_d2ViaG9vay1jYW5hcnkta2V5LTEyMzQ=";

/// Every value stored under this test's namespace, as text.
async fn redis_dump(env: &TestEnv) -> String {
    let mut conn = env.redis().await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap();
    let mut out = String::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
        let value: redis::Value = match kind.as_str() {
            "string" => redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap(),
            "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await.unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(&key).query_async(&mut conn).await.unwrap(),
            "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).query_async(&mut conn).await.unwrap(),
            "stream" => redis::cmd("XRANGE").arg(&key).arg("-").arg("+").query_async(&mut conn).await.unwrap(),
            "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query_async(&mut conn).await.unwrap(),
            other => panic!("unexpected key type {other} for {key}"),
        };
        out.push_str(&format!("{key} {value:?}\n"));
    }
    out
}

fn outputs(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_token_reaches_redis_logs_or_output() {
    let mut env = TestEnv::start(SimConfig {
        client_secret: Secret::new(CLIENT_SECRET),
        echo_headers: true,
        webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
        ..SimConfig::default()
    })
    .await;
    // Webhooks on, every event: the outboxes are dumped with every other key.
    let hooks = env.sim.webhook_url();
    env.set("CXRELAY_WEBHOOK_URL", hooks).set("CXRELAY_WEBHOOK_SECRET", WEBHOOK_SECRET).set("CXRELAY_WEBHOOK_EVENTS", "*");
    env.set("CXRELAY_CLIENT_SECRET", CLIENT_SECRET).set("CXRELAY_MAX_ATTEMPTS", 2).set("CXRELAY_BACKOFF_BASE_MS", 20);
    // The per-attempt audit log is read below with the other *.log files.
    let audit = env.dir.join("audit.log");
    env.set("CXRELAY_AUDIT_LOG", audit.display());
    let items: Vec<serde_json::Value> = (0..12)
        .map(|i| match i % 4 {
            0 => json!({"n": i, "_sim": {"status": 400}}),
            1 => json!({"n": i, "_sim": {"status": 503}}),
            _ => json!({"n": i}),
        })
        .collect();
    let file = env.write_items("leaky.json", &items);
    let mut seen = String::new();
    let out = env.cxrelay().args(["enqueue", "--action", "action-1", "--run-id", "leaky"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", outputs(&out));
    seen.push_str(&outputs(&out));
    let mut w = env.spawn_worker(4);
    let report = env.wait_finished("leaky", Duration::from_secs(60)).await;
    assert_eq!((report.succeeded, report.failed), (6, 6));
    assert!(w.terminate(Duration::from_secs(20)).success());

    // The same with a wrong secret: the token endpoint echoes the Basic credentials back.
    env.set("CXRELAY_CLIENT_SECRET", WRONG_SECRET);
    let out = env.cxrelay().args(["enqueue", "--action", "action-1", "--run-id", "denied"]).arg(&file).output().unwrap();
    seen.push_str(&outputs(&out));
    let _w = env.spawn_worker(4);
    let report = env.wait_finished("denied", Duration::from_secs(60)).await;
    assert_eq!(report.failed, 12);
    assert_eq!(report.failures.by_class.get("auth"), Some(&12), "{:?}", report.failures);

    for run in ["leaky", "denied"] {
        for args in [
            vec!["report", run],
            vec!["report", run, "--json"],
            vec!["failed", run, "--json"],
            vec!["failed", run, "--csv"],
            vec!["failed", run, "--summary"],
            vec!["item", run, "0", "--json"],
            vec!["item", run, "1"],
            vec!["audit", run, "--json"],
        ] {
            seen.push_str(&outputs(&env.cxrelay().args(&args).output().unwrap()));
        }
    }
    // A password in REDIS_URL is masked in what the user reads.
    let out = env.cxrelay().args(["report", "leaky"]).env("REDIS_URL", "redis://:pw-canary-99@127.0.0.1:1/0").output().unwrap();
    assert!(!out.status.success());
    assert!(outputs(&out).contains("redis://:****@127.0.0.1:1/0"), "{}", outputs(&out));
    seen.push_str(&outputs(&out));

    let dump = redis_dump(&env).await;
    assert!(std::fs::read_to_string(&audit).unwrap().contains("\"target\":\"cxrelay_audit\""), "the audit log was written");
    let logs: String = std::fs::read_dir(&env.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(dump.contains("request_headers") || dump.contains("[redacted]"), "the target's echo reached the failure records:\n{dump}");
    let tokens = env.sim.issued_tokens();
    assert!(!tokens.is_empty());
    let b64 = base64::engine::general_purpose::STANDARD;
    assert!(dump.contains("item.failed"), "the outbox was written and dumped");
    env.eventually("signed webhooks delivered", Duration::from_secs(20), || async { env.sim.webhooks().received.iter().any(|w| w.verified) }).await;
    for args in [vec!["webhooks", "status", "--json"], vec!["webhooks", "status"]] {
        seen.push_str(&outputs(&env.cxrelay().args(&args).output().unwrap()));
    }
    let mut canaries: Vec<String> = vec![
        CLIENT_SECRET.into(),
        WRONG_SECRET.into(),
        "pw-canary-99".into(),
        WEBHOOK_SECRET.into(),
        "d2ViaG9vay1jYW5hcnkta2V5LTEyMzQ".into(),
        "webhook-canary-key-1234".into(),
    ];
    canaries.push(b64.encode(format!("sim-client:{CLIENT_SECRET}")));
    canaries.push(b64.encode(format!("sim-client:{WRONG_SECRET}")));
    canaries.extend(tokens);
    for (place, text) in [("redis", &dump), ("logs", &logs), ("command output", &seen)] {
        for canary in &canaries {
            assert!(!text.contains(canary.as_str()), "{canary:?} leaked into {place}");
        }
    }
}
