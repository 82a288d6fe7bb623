//! `/metrics` of `serve` and of a worker (`--metrics-addr`): Prometheus text that `promtool
//! check metrics` accepts, with the histograms' explicit buckets; and the worker's probes.

mod harness;

use std::time::Duration;

use cxrelay_sim::SimConfig;
use harness::TestEnv;

/// `promtool check metrics` on `text` (promtool comes with Debian's `prometheus` package, which
/// `make test` installs through scripts/ensure-deps).
fn promtool_accepts(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool not found: run scripts/ensure-deps (it installs Debian's prometheus package)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "promtool: {}{}\n{text}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The bucket bounds of the first series of histogram `name` in `text`.
fn buckets(text: &str, name: &str) -> Vec<String> {
    let prefix = format!("{name}_bucket{{");
    let mut les = Vec::new();
    for le in text.lines().filter(|l| l.starts_with(&prefix)).filter_map(|l| l.split("le=\"").nth(1)).map(|r| r.split('"').next().unwrap().to_owned())
    {
        let last = le == "+Inf";
        les.push(le);
        if last {
            break;
        }
    }
    les
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_and_serve_metrics_pass_promtool_with_explicit_buckets() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let metrics_addr = format!("127.0.0.1:{}", TestEnv::free_port());
    env.enqueue_generated("measured", 200);
    let _w = env.spawn_cxrelay(&["worker", "--concurrency", "8", "--metrics-addr", &metrics_addr]);
    env.wait_finished("measured", Duration::from_secs(60)).await;
    env.wait_http_ok(&format!("http://{metrics_addr}/readyz")).await;
    assert_eq!(get(&format!("http://{metrics_addr}/healthz")).await.0, 200);
    let (code, text) = get(&format!("http://{metrics_addr}/metrics")).await;
    assert_eq!(code, 200);
    promtool_accepts(&text);
    assert!(text.contains("cxrelay_items_total{outcome=\"succeeded\",class=\"none\"} 200"), "{text}");
    assert!(text.contains("cxrelay_attempts_total{status_class=\"2xx\"} 200"), "{text}");
    let les = buckets(&text, "cxrelay_attempt_duration_seconds");
    assert_eq!(les.first().map(String::as_str), Some("0.001"), "{les:?}");
    assert_eq!(les.last().map(String::as_str), Some("+Inf"), "{les:?}");
    assert_eq!(les.len(), cxrelay_core::metric::BUCKETS.len() + 1);
    assert!(
        text.lines().filter(|l| l.contains("measured")).all(|l| l.starts_with("cxrelay_run_completion_ratio{")),
        "a run id labels only the run-level completion series: {text}"
    );

    env.set("CXRELAY_API_TOKENS", "reader-token-1:read");
    let addr = format!("127.0.0.1:{}", TestEnv::free_port());
    let _serve = env.spawn_cxrelay(&["serve", "--addr", &addr]);
    env.wait_http_ok(&format!("http://{addr}/healthz")).await;
    let client = reqwest::Client::new();
    client.get(format!("http://{addr}/v1/runs/measured")).bearer_auth("reader-token-1").send().await.unwrap();
    client.get(format!("http://{addr}/v1/runs")).send().await.unwrap();
    let (code, text) = get(&format!("http://{addr}/metrics")).await;
    assert_eq!(code, 200);
    promtool_accepts(&text);
    assert!(text.contains("route=\"/v1/runs/{id}\""), "{text}");
    assert!(
        text.lines().filter(|l| l.contains("measured")).all(|l| l.starts_with("cxrelay_run_completion_ratio{")),
        "routes, not run ids (only the run-level completion series, which serve samples too, names a run): {text}"
    );
    assert!(text.contains("cxrelay_api_auth_failures_total 1"), "{text}");
    assert_eq!(buckets(&text, "cxrelay_http_request_duration_seconds").len(), cxrelay_core::metric::BUCKETS.len() + 1, "{text}");
}

/// A metrics address that cannot be bound stops the worker at start (exit 2, naming the flag)
/// instead of leaving it running without probes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbindable_metrics_address_stops_the_worker() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut w = env.spawn_cxrelay(&["worker", "--metrics-addr", &addr]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "the worker kept running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(2));
    let log = std::fs::read_to_string(&w.log).unwrap();
    assert!(log.contains("--metrics-addr") && log.contains(&addr), "{log}");
}

/// The value of the series `name{tenant="default"}` in `text`.
fn tenant_gauge(text: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{tenant=\"default\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

/// `cxrelay serve` reports the tenant's backlog and the workers it can use while no worker runs
/// (what scales workers up from zero); once a worker measures the latency, the figure is the
/// budget × latency over concurrency, and it falls to 0 with the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usable_workers_follow_budget_latency_and_backlog() {
    let mut env = TestEnv::start(SimConfig { latency: Duration::from_millis(50), ..SimConfig::default() }).await;
    // 100/s × ~0.05 s = ~5 in flight: two processes of 4 (one would hold only 4).
    env.set("CXRELAY_RATE", 100).set("CXRELAY_BURST", 5).set("CXRELAY_CONCURRENCY", 4);
    env.enqueue_generated("scaled", 1500);
    let addr = format!("127.0.0.1:{}", TestEnv::free_port());
    let _serve = env.spawn_cxrelay(&["serve", "--addr", &addr]);
    env.wait_http_ok(&format!("http://{addr}/healthz")).await;
    let metrics = format!("http://{addr}/metrics");
    let wait_for = |want: [(&'static str, f64); 3]| {
        let metrics = metrics.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let text = get(&metrics).await.1;
                if want.iter().all(|(name, v)| tenant_gauge(&text, name) == Some(*v)) {
                    return text;
                }
                assert!(std::time::Instant::now() < deadline, "never saw {want:?}:\n{text}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    // No worker: the backlog is there, nobody serves it, and one worker is wanted to start.
    let text = wait_for([("cxrelay_items_pending", 1500.0), ("cxrelay_workers_alive", 0.0), ("cxrelay_workers_usable", 1.0)]).await;
    promtool_accepts(&text);
    let _w = env.spawn_worker(4);
    wait_for([("cxrelay_workers_alive", 1.0), ("cxrelay_workers_usable", 2.0), ("cxrelay_rate_limit_rate", 100.0)]).await;
    env.wait_finished("scaled", Duration::from_secs(60)).await;
    wait_for([("cxrelay_items_pending", 0.0), ("cxrelay_workers_alive", 1.0), ("cxrelay_workers_usable", 0.0)]).await;
}
