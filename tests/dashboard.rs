//! The dashboard in headless Chromium (Debian's chromium and chromium-driver, which
//! scripts/ensure-deps installs), driven through WebDriver with fantoccini: sign in, open a run
//! with a failed item, replay it with the confirmation step, see it re-queued and then
//! succeeded; a form without its CSRF token is refused; a read session sees no action buttons.
//! Screenshots of the runs list and the run page go to target/screenshots/.

mod harness;

use std::time::Duration;

use cxrelay_core::report::RunStatus;
use cxrelay_sim::SimConfig;
use fantoccini::{Client, ClientBuilder, Locator};
use harness::TestEnv;
use serde_json::json;

const OPERATE: &str = "dash-operate-token";
const READ: &str = "dash-read-token";

async fn browser(env: &mut TestEnv) -> (Client, harness::WorkerProc) {
    let port = TestEnv::free_port();
    let mut cmd = std::process::Command::new("chromedriver");
    cmd.arg(format!("--port={port}")).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let driver =
        harness::WorkerProc { child: cmd.spawn().expect("chromedriver not found: run scripts/ensure-deps"), log: env.dir.join("chromedriver.log") };
    env.wait_http_ok(&format!("http://127.0.0.1:{port}/status")).await;
    let profile = env.dir.join("chromium-profile");
    let caps = json!({"goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,900",
        format!("--user-data-dir={}", profile.display())]}});
    let caps = caps.as_object().unwrap().clone().into_iter().collect();
    // Plain HTTP to the local chromedriver: no TLS stack needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client =
        ClientBuilder::new(connector).capabilities(caps).connect(&format!("http://127.0.0.1:{port}")).await.expect("connect to chromedriver");
    (client, driver)
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Css("#token")).await.unwrap().send_keys(token).await.unwrap();
    c.find(Locator::Css("form[action='/login'] button")).await.unwrap().click().await.unwrap();
}

async fn screenshot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), c.screenshot().await.unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_replay_a_failed_item_and_csrf() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_MAX_ATTEMPTS", 2).set("CXRELAY_BACKOFF_BASE_MS", 20).set("CXRELAY_BREAKER_THRESHOLD", 1000);
    let items: Vec<_> = (0..12).map(|i| if i == 3 { json!({"n": i, "_sim": {"status": 503, "fail_times": 2}}) } else { json!({"n": i}) }).collect();
    env.enqueue_items("dash", &items, &[]);
    let _w = env.spawn_worker(4);
    let report = env.wait_finished("dash", Duration::from_secs(60)).await;
    assert_eq!(report.failed, 1);
    env.set("CXRELAY_API_TOKENS", format!("{OPERATE},{READ}:read"));
    let addr = format!("127.0.0.1:{}", TestEnv::free_port());
    let _serve = env.spawn_cxrelay(&["serve", "--addr", &addr]);
    let base = format!("http://{addr}");
    env.wait_http_ok(&format!("{base}/healthz")).await;
    let (c, _driver) = browser(&mut env).await;

    // Without a session, the dashboard asks to sign in.
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(c.current_url().await.unwrap().as_str().ends_with("/login"));
    sign_in(&c, &base, OPERATE).await;
    c.wait().for_element(Locator::LinkText("dash")).await.unwrap();
    screenshot(&c, "runs.png").await;
    c.find(Locator::LinkText("dash")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("table.items")).await.unwrap();
    screenshot(&c, "run.png").await;
    let source = c.source().await.unwrap();
    assert!(source.contains("gave up after 2 attempts"), "the failed item and its reason are shown");

    // Replay the one failed item: a confirmation step, then re-queued, then succeeded.
    c.find(Locator::Css("table.items form button")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("#confirm")).await.unwrap();
    assert!(c.source().await.unwrap().contains("Replay 1 item(s) of run dash?"));
    c.find(Locator::Css("#reason")).await.unwrap().send_keys("the target recovered").await.unwrap();
    c.find(Locator::Css("#confirm")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("p.flash")).await.unwrap();
    assert!(c.source().await.unwrap().contains("Replayed 1 item(s)"));
    let report = env.wait_report("dash", Duration::from_secs(60), |r| r.status == RunStatus::Finished && r.pending == 0).await;
    assert_eq!((report.succeeded, report.failed), (12, 0));
    c.refresh().await.unwrap();
    assert!(c.source().await.unwrap().contains("status finished"), "the page shows it finished");
    let audit = env.cxrelay().args(["audit", "dash", "--json"]).output().unwrap();
    assert!(String::from_utf8_lossy(&audit.stdout).contains("the target recovered"));

    // Forms without their CSRF token (or with another session's) are refused, even with a valid
    // session cookie: the replay form and the run controls.
    let cookie = c.get_named_cookie("cxr_session").await.unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (path, form) in [
        ("/runs/dash/replay/confirm", vec![("kind", "all"), ("reason", "forged")]),
        ("/runs/dash/replay/confirm", vec![("kind", "all"), ("reason", "forged"), ("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]),
        ("/runs/dash/control", vec![("action", "cancel")]),
    ] {
        let resp = http.post(format!("{base}{path}")).header("cookie", format!("cxr_session={}", cookie.value())).form(&form).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{path}");
        assert!(resp.text().await.unwrap().contains("CSRF"));
    }
    assert_eq!(env.wait_report("dash", Duration::from_secs(5), |_| true).await.status, RunStatus::Finished, "nothing changed");

    // A read session sees the run but no action buttons.
    c.find(Locator::Css("form.logout button")).await.unwrap().click().await.unwrap();
    sign_in(&c, &base, READ).await;
    c.wait().for_element(Locator::LinkText("dash")).await.unwrap();
    c.goto(&format!("{base}/runs/dash")).await.unwrap();
    let source = c.source().await.unwrap();
    assert!(source.contains("Run dash") && !source.contains("<button type=\"submit\">Replay") && !source.contains("/control"), "{source}");
    c.close().await.unwrap();
}
