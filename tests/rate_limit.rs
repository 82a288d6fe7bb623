//! The fleet-wide rate budget: the GCRA script itself, and two worker processes sharing it.

mod harness;

use std::time::Duration;

use cxrelay_queue::{BudgetConfig, FleetLimits};
use cxrelay_sim::{FaultUpdate, ForceStatus, SimConfig};
use harness::TestEnv;

/// A configured (not discovered) budget.
fn fixed(rate: f64, burst: u32, adaptive: bool) -> BudgetConfig {
    BudgetConfig { rate, burst, adaptive, discover: false, initial: rate }
}

/// The acquire/throttle scripts follow `cxrelay_core::ratelimit`: a burst goes at once, then
/// slots are spaced by the interval; far slots are not reserved; a 429 pauses and cuts the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_script_semantics() {
    let env = TestEnv::start(SimConfig::default()).await;
    let conn = env.store().await.conn();
    let tenant = |t: &str| FleetLimits::new(conn.clone(), env.keys(), t);
    let limits = tenant("t");
    let max_wait = Duration::from_secs(1);
    let mut waits = Vec::new();
    for _ in 0..8 {
        // Burst 10: half of it is spent at once, half kept as slack for jitter.
        let r = limits.acquire(None, &fixed(50.0, 10, false), max_wait).await.unwrap();
        assert!(r.reserved && !r.paused);
        waits.push(r.wait.as_millis() as i64);
    }
    // Calls take a little time, so each wait is at most the ideal and within a few ms of it.
    for (got, ideal) in waits.iter().zip([0, 0, 0, 0, 0, 20, 40, 60]) {
        assert!(*got <= ideal && *got >= ideal - 10, "waits {waits:?}");
    }
    // 50 more slots are 1 s+ away: beyond max_wait, so not reserved, and the budget is unchanged.
    for _ in 0..50 {
        limits.acquire(None, &fixed(50.0, 10, false), Duration::from_secs(10)).await.unwrap();
    }
    let far = limits.acquire(None, &fixed(50.0, 10, false), max_wait).await.unwrap();
    assert!(!far.reserved && far.wait > max_wait, "{far:?}");
    let again = limits.acquire(None, &fixed(50.0, 10, false), max_wait).await.unwrap();
    assert!(!again.reserved && again.wait.abs_diff(far.wait) < Duration::from_millis(20), "nothing was reserved: {again:?}");

    // An action's sub-limit and another tenant have budgets of their own.
    assert!(limits.acquire(Some("b"), &fixed(50.0, 5, false), max_wait).await.unwrap().wait.is_zero());
    assert!(tenant("t2").acquire(None, &fixed(50.0, 5, false), max_wait).await.unwrap().wait.is_zero());

    // A 429: the fleet pauses for the Retry-After and the adaptive rate is cut by 10%.
    let c = tenant("c");
    let first = c.acquire(None, &fixed(100.0, 10, true), max_wait).await.unwrap();
    assert_eq!(first.rate_milli, 100_000);
    let paused = c.throttle(Duration::from_millis(800), &fixed(100.0, 10, true)).await.unwrap();
    assert!(paused > Duration::from_millis(700), "{paused:?}");
    let during = c.acquire(None, &fixed(100.0, 10, true), max_wait).await.unwrap();
    assert!(during.paused && !during.reserved && during.wait > Duration::from_millis(600), "{during:?}");
    assert_eq!(during.rate_milli, 90_000, "cut once, and no recovery while paused");
    assert!(c.pause_remaining().await.unwrap() > Duration::from_millis(600));
    // A second 429 within the same pause window does not cut again.
    c.throttle(Duration::from_millis(800), &fixed(100.0, 10, true)).await.unwrap();
    let rate = c.acquire(None, &fixed(100.0, 10, true), max_wait).await.unwrap().rate_milli;
    assert_eq!(rate, 90_000, "one cut per pause window");
    // Without adaptive mode the rate stays as configured.
    let d = tenant("d");
    d.throttle(Duration::from_millis(100), &fixed(100.0, 10, false)).await.unwrap();
    assert!(d.pause_remaining().await.unwrap() > Duration::ZERO);
}

/// Largest number of arrivals in any 1 s window starting at an arrival.
/// The scripts mirror `Adaptive`'s confirmation rule: a 429 at a rate within 3% of the known
/// ceiling confirms it (probing 4x slower, cruising at 99.5% of it); a moved ceiling does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_ceiling_slows_probing_in_the_scripts() {
    use cxrelay_core::ratelimit::{Adaptive, CONFIRMED_CRUISE};
    let env = TestEnv::start(SimConfig::default()).await;
    let mut conn = env.store().await.conn();
    let limits = FleetLimits::new(conn.clone(), env.keys(), "t");
    let key = env.keys().budget("t", None);
    let reader = conn.clone();
    let field = |name: &'static str| {
        let (key, mut conn) = (key.clone(), reader.clone());
        async move { redis::cmd("HGET").arg(&key).arg(name).query_async::<Option<f64>>(&mut conn).await.unwrap() }
    };
    // A fleet that learned a 100/s ceiling and has probed up to 102/s meets a 429 (no sends to
    // estimate from, so the rate itself becomes the ceiling: 102, within 3% of 100).
    let _: () =
        redis::cmd("HSET").arg(&key).arg("ceiling").arg(100.0).arg("rate").arg(102.0).arg("probe").arg(1.0).query_async(&mut conn).await.unwrap();
    limits.throttle(Duration::from_millis(1), &fixed(200.0, 10, true)).await.unwrap();
    let model = Adaptive { rate: 102.0, ceiling: Some(100.0), probe: 1.0 }.on_throttle(200.0, None);
    assert_eq!(field("probe").await, Some(model.probe));
    assert_eq!(model.probe, 0.25);
    assert!((field("rate").await.unwrap() - model.rate).abs() < 1e-6);
    assert!((model.cruise(200.0) - 102.0 * CONFIRMED_CRUISE).abs() < 1e-9);
    // Recovery after the cut runs fast up to the confirmed cruise level, as in the model.
    let _: () = redis::cmd("HSET").arg(&key).arg("adjusted").arg(0).arg("cut_at").arg(0).query_async(&mut conn).await.unwrap();
    let r = limits.acquire(None, &fixed(200.0, 10, true), Duration::from_secs(1)).await.unwrap();
    assert_eq!(r.rate_milli, (102.0 * CONFIRMED_CRUISE * 1000.0) as u64);
    // The limit moved (a 429 at 60/s against a 102/s ceiling): probing is fast again.
    let _: () = redis::cmd("HSET").arg(&key).arg("rate").arg(60.0).arg("cut_at").arg(0).query_async(&mut conn).await.unwrap();
    limits.throttle(Duration::from_millis(1), &fixed(200.0, 10, true)).await.unwrap();
    assert_eq!(field("probe").await, Some(1.0));
    assert_eq!(field("ceiling").await, Some(60.0));
}

/// The scripts run `Discovery`'s rules: growing while saturated, cutting on the first 429,
/// climbing, then at the second 429 a ceiling solved from both windows (or the rate at the 429
/// when they do not solve); a stated limit skips the search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_in_the_scripts_follows_the_model() {
    use cxrelay_core::ratelimit::{solve_limit, Discovery, Phase, Window, CLIMB, CONFIRMED_CRUISE, PROBE_SLOWDOWN, SLOW_START};
    let env = TestEnv::start(SimConfig::default()).await;
    let mut conn = env.store().await.conn();
    let limits = FleetLimits::new(conn.clone(), env.keys(), "t");
    let key = env.keys().budget("t", None);
    let budget = BudgetConfig { rate: 100_000.0, burst: 1, adaptive: true, discover: true, initial: 50.0 };
    let reader = conn.clone();
    let field = |name: &'static str| {
        let (key, mut conn) = (key.clone(), reader.clone());
        async move { redis::cmd("HGET").arg(&key).arg(name).query_async::<Option<String>>(&mut conn).await.unwrap() }
    };
    // Make the last adjustment one second ago on the Redis clock, with every slot used; returns
    // the time set, so the growth is modelled over the time the script saw pass (a loaded machine
    // adds milliseconds between this and the acquire, and 8^0.005 is already half a percent).
    let age_one_second = |mut conn: cxrelay_queue::RedisConn| {
        let key = key.clone();
        async move {
            let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
            let now = secs * 1_000_000 + micros;
            let _: () = redis::cmd("HSET")
                .arg(&key)
                .arg("adjusted")
                .arg(now - 1_000_000)
                .arg("tat")
                .arg(now + 10_000_000)
                .query_async(&mut conn)
                .await
                .unwrap();
            now - 1_000_000
        }
    };
    let first = limits.acquire(None, &budget, Duration::from_secs(60)).await.unwrap();
    assert_eq!(first.rate_milli, 50_000, "starts at the initial rate");
    let mut model = Discovery::new(50.0);
    for _ in 0..3 {
        let aged = age_one_second(conn.clone()).await;
        let r = limits.acquire(None, &budget, Duration::from_secs(60)).await.unwrap();
        let grown_at = field("adjusted").await.unwrap().parse::<f64>().unwrap() as u64;
        let secs = (grown_at - aged) as f64 / 1e6;
        assert!((1.0..1.5).contains(&secs), "the script grew over {secs} s");
        model = model.grow(secs, true, budget.rate);
        let got = r.rate_milli as f64 / 1000.0;
        assert!((got / model.rate - 1.0).abs() < 0.01, "slow start: {got} vs {}", model.rate);
    }
    let rate = |v: Option<String>| v.unwrap().parse::<f64>().unwrap();
    let before = rate(field("rate").await);
    limits.throttle(Duration::from_millis(1), &budget).await.unwrap();
    // The slow start's window as the script saw it: it began at the first reservation, at the
    // initial rate, and ended at the rate in force (grown a moment more since the last acquire).
    let first = Window {
        start_rate: rate(field("w1_start").await),
        end_rate: rate(field("w1_end").await),
        growth: SLOW_START,
        secs: rate(field("w1_secs").await),
    };
    assert_eq!(first.start_rate, 50.0);
    assert!(first.end_rate >= before && first.end_rate < before * 1.05, "{first:?} vs {before}");
    model = Discovery { rate: before, ..model }.on_throttle(first);
    assert_eq!(field("phase").await.as_deref(), Some("ca"));
    assert!((rate(field("rate").await) - model.rate).abs() < 1e-6);

    // The climb's 429: windows like those of a 200/s target with a burst of 20 (the slow start
    // of scripts/bench-ratelimit d, then a climb from 178/s to 228/s) solve for the limit.
    let w1 = Window { start_rate: 50.0, end_rate: 355.66, growth: SLOW_START, secs: 0.9435 };
    let w2 = Window { start_rate: 177.83, end_rate: 228.0, growth: CLIMB, secs: (228.0f64 / 177.83).ln() / CLIMB.ln() };
    let want = solve_limit(w1, w2).expect("these windows solve");
    assert!((want / 200.0 - 1.0).abs() < 0.02, "{want}");
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let now = secs * 1_000_000 + micros;
    let set = |pairs: Vec<(&'static str, String)>| {
        let (key, mut conn) = (key.clone(), conn.clone());
        async move {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(&key);
            for (k, v) in pairs {
                cmd.arg(k).arg(v);
            }
            let _: () = cmd.query_async(&mut conn).await.unwrap();
        }
    };
    let climb = vec![
        ("cut_at", "0".to_owned()),
        ("pause_until", "0".to_owned()),
        ("w1_start", w1.start_rate.to_string()),
        ("w1_end", w1.end_rate.to_string()),
        ("w1_secs", w1.secs.to_string()),
        ("epoch_rate", w2.start_rate.to_string()),
        ("epoch_at", (now - (w2.secs * 1e6) as u64).to_string()),
        ("rate", w2.end_rate.to_string()),
        // Grown just now: the rate at the 429 is `rate` itself.
        ("adjusted", (now + 60_000_000).to_string()),
    ];
    set(climb.clone()).await;
    limits.throttle(Duration::from_millis(1), &budget).await.unwrap();
    let model = Discovery { rate: w2.end_rate, phase: Phase::Climb, first: Some(w1), ..Discovery::new(50.0) }.on_throttle(w2);
    assert_eq!((field("phase").await.as_deref(), model.phase), (Some("cruise"), Phase::Cruise));
    // The climb's excess depends on its end rate only (it began below the limit), so the
    // script's slightly longer window (its clock moved on) solves to the same limit.
    assert!((rate(field("ceiling").await) - want).abs() < 1e-6, "{:?} vs {want}", field("ceiling").await);
    assert!((rate(field("rate").await) - want * CONFIRMED_CRUISE).abs() < 1e-6);
    assert_eq!((rate(field("probe").await), model.probe), (1.0 / PROBE_SLOWDOWN, 1.0 / PROBE_SLOWDOWN));
    assert!(!limits.hint(300.0, &budget).await.unwrap(), "a cruising budget keeps its ceiling");
    // Windows that do not solve (the climb as long as the slow start): the rate at the 429 is the
    // ceiling, unconfirmed, as in the model.
    let mut same = climb;
    same.extend([("phase", "ca".to_owned()), ("epoch_rate", w1.end_rate.to_string()), ("rate", w1.end_rate.to_string())]);
    same.retain(|(k, _)| *k != "epoch_at");
    same.push(("epoch_at", (now - (w1.secs * 1e6) as u64).to_string()));
    set(same).await;
    limits.throttle(Duration::from_millis(1), &budget).await.unwrap();
    let steady = Window { start_rate: w1.end_rate, end_rate: w1.end_rate, growth: CLIMB, secs: w1.secs };
    let model = Discovery { rate: w1.end_rate, phase: Phase::Climb, first: Some(w1), ..Discovery::new(50.0) }.on_throttle(steady);
    assert_eq!(model.ceiling, Some(w1.end_rate));
    assert!((rate(field("ceiling").await) - w1.end_rate).abs() < 1e-6);
    assert_eq!(rate(field("probe").await), 1.0);
    let _: () = redis::cmd("HSET").arg(&key).arg("probe").arg(1.0).query_async(&mut conn).await.unwrap();

    // In cruise, a 429 after an observation of a different length than the last one refines the
    // ceiling with both (no bias from the target's unknown burst), as the model does.
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg(&[
            "cut_at",
            "0",
            "cut_sent",
            "620",
            "cut_secs",
            "3.0",
            "sent",
            "1320",
            "epoch_sent",
            "1000",
            "tat",
            "0",
            "rate",
            "230",
            "ceiling",
            "240",
        ])
        .query_async(&mut conn)
        .await
        .unwrap();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let _: () = redis::cmd("HSET").arg(&key).arg("epoch_at").arg(secs * 1_000_000 + micros - 1_500_000).query_async(&mut conn).await.unwrap();
    limits.throttle(Duration::from_millis(1), &budget).await.unwrap();
    let ceiling = rate(field("ceiling").await);
    let secs = rate(field("cut_secs").await);
    let one = cxrelay_core::ratelimit::estimate_limit(320.0, 1, secs).unwrap();
    let want = cxrelay_core::ratelimit::refine_estimate(one, (620.0, 3.0), (320.0, secs));
    assert!((ceiling - want).abs() < 1e-6 && ceiling < one, "ceiling {ceiling}, model {want}, one-point {one}");

    let fresh = FleetLimits::new(conn.clone(), env.keys(), "u");
    assert!(fresh.hint(200.0, &budget).await.unwrap());
    let hinted = Discovery::new(50.0).on_hint(200.0, budget.rate);
    let r = fresh.acquire(None, &budget, Duration::from_secs(1)).await.unwrap();
    assert!((r.rate_milli as f64 / 1000.0 - hinted.rate).abs() < 0.01, "{r:?} vs {hinted:?}");
}

/// While discovery grows the rate, a slot reserved ahead is spaced at the rate of its own send
/// time (`projected_rate`), not at the rate when it is reserved, so the sends follow the growth
/// curve however far ahead the fleet's slots run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_reserved_ahead_follow_the_growth() {
    use cxrelay_core::ratelimit::{interval_us, projected_rate, SLOW_START};
    let env = TestEnv::start(SimConfig::default()).await;
    let mut conn = env.store().await.conn();
    let limits = FleetLimits::new(conn.clone(), env.keys(), "t");
    let key = env.keys().budget("t", None);
    let budget = BudgetConfig { rate: 100_000.0, burst: 1, adaptive: true, discover: true, initial: 100.0 };
    limits.acquire(None, &budget, Duration::from_secs(60)).await.unwrap();
    // The fleet's slots already run one second ahead.
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let tat = secs * 1_000_000 + micros + 1_000_000;
    let _: () = redis::cmd("HSET").arg(&key).arg("tat").arg(tat).query_async(&mut conn).await.unwrap();
    let r = limits.acquire(None, &budget, Duration::from_secs(60)).await.unwrap();
    assert!(r.reserved && r.wait > Duration::from_millis(900), "{r:?}");
    let next: u64 = redis::cmd("HGET").arg(&key).arg("tat").query_async(&mut conn).await.unwrap();
    let rate = r.rate_milli as f64 / 1000.0;
    let want = interval_us(projected_rate(rate, SLOW_START, r.wait.as_secs_f64(), budget.rate)) as f64;
    let got = (next - tat) as f64;
    assert!((got / want - 1.0).abs() < 0.01, "slot spaced {got} us, want {want} us (at {rate}/s, {:?} ahead)", r.wait);
    assert!(got < interval_us(rate) as f64 / 4.0, "spaced at the rate of its send time, not of now");
}

fn max_per_second(times_us: &[u64]) -> usize {
    let mut t = times_us.to_vec();
    t.sort_unstable();
    (0..t.len()).map(|i| t[i..].iter().take_while(|&&u| u < t[i] + 1_000_000).count()).max().unwrap_or(0)
}

/// Two processes share one budget: together they never exceed the target's limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_budget() {
    let mut env = TestEnv::start(SimConfig { rate_per_second: 50, burst: 5, ..SimConfig::default() }).await;
    env.set("CXRELAY_RATE", 50).set("CXRELAY_BURST", 5);
    env.enqueue_generated("budget", 500);
    let _w1 = env.spawn_worker(16);
    let _w2 = env.spawn_worker(16);
    let report = env.wait_finished("budget", Duration::from_secs(60)).await;
    assert_eq!(report.succeeded, 500);
    let arrivals = env.sim.arrivals();
    let times: Vec<u64> = arrivals.iter().map(|a| a.t_us).collect();
    let peak = max_per_second(&times);
    assert!(peak <= 50 + 5, "{peak} requests in one second (limit 50/s, burst 5)");
    let throttled = arrivals.iter().filter(|a| a.status == 429).count();
    assert!(throttled * 100 <= arrivals.len(), "{throttled} 429s of {} requests", arrivals.len());
    // And the budget was used: 500 items at 50/s take about 10 s, not much more.
    assert!(report.elapsed_s < 13.0, "took {} s", report.elapsed_s);
}

/// A 429 with `Retry-After: 2` pauses every worker: nothing is sent during the pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_pauses_the_whole_fleet() {
    let mut env = TestEnv::start(SimConfig::default()).await;
    env.set("CXRELAY_RATE", 200).set("CXRELAY_BURST", 10).set("CXRELAY_ADAPTIVE", "false");
    env.enqueue_generated("pause", 1500);
    let _w1 = env.spawn_worker(16);
    let _w2 = env.spawn_worker(16);
    env.wait_report("pause", Duration::from_secs(30), |r| r.succeeded >= 200).await;
    env.sim.set_faults(FaultUpdate {
        force_status: Some(ForceStatus { status: 429, for_ms: 300, retry_after_secs: Some(2) }),
        ..FaultUpdate::default()
    });
    let report = env.wait_finished("pause", Duration::from_secs(60)).await;
    assert_eq!((report.succeeded, report.failed), (1500, 0));

    let arrivals = env.sim.arrivals();
    let first_429 = arrivals.iter().find(|a| a.status == 429).expect("a 429 was served").t_us;
    // Requests already on the wire when the first 429 came back may still arrive; after that
    // grace, nothing until the 2 s pause is over.
    let during: Vec<u64> = arrivals.iter().map(|a| a.t_us).filter(|&t| t > first_429 + 150_000 && t < first_429 + 1_950_000).collect();
    assert!(during.is_empty(), "{} requests sent during the pause (first at +{} ms)", during.len(), (during[0] - first_429) / 1000);
    let throttled = arrivals.iter().filter(|a| a.status == 429).count();
    assert!(throttled <= 40, "{throttled} requests hit the 429 window");
}

/// With no rate configured (the default), the fleet discovers a limited target's limit: the run
/// finishes with no item failed, and 429s stay rare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_rate_configured_the_limit_is_discovered() {
    let mut env = TestEnv::start(SimConfig { rate_per_second: 200, burst: 20, ..SimConfig::default() }).await;
    env.unset("CXRELAY_RATE");
    env.enqueue_generated("discover", 3000);
    let _w1 = env.spawn_worker(32);
    let _w2 = env.spawn_worker(32);
    let report = env.wait_finished("discover", Duration::from_secs(90)).await;
    assert_eq!((report.succeeded, report.failed), (3000, 0), "{report:#?}");
    let stats = env.sim.stats();
    assert!(stats.status_429 * 100 <= stats.requests * 5, "{} 429s of {} requests", stats.status_429, stats.requests);
    let mut conn = env.redis().await;
    let rate: f64 = redis::cmd("HGET").arg(env.keys().budget("default", None)).arg("rate").query_async(&mut conn).await.unwrap();
    assert!((120.0..=230.0).contains(&rate), "settled at {rate}/s against a 200/s limit");
}

/// Two actions of one tenant share the tenant's budget: together they stay within the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_actions_of_one_tenant_share_one_budget() {
    let mut env = TestEnv::start(SimConfig { rate_per_second: 100, burst: 10, ..SimConfig::default() }).await;
    env.set("CXRELAY_RATE", 100).set("CXRELAY_BURST", 10);
    for (run, action) in [("one", "action-1"), ("two", "action-2")] {
        let items: Vec<serde_json::Value> = (0..400).map(|i| serde_json::json!({"seq": i})).collect();
        let file = env.write_items(&format!("{run}.json"), &items);
        let out = env.cxrelay().args(["enqueue", "--action", action, "--run-id", run]).arg(&file).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let _w1 = env.spawn_worker(16);
    let _w2 = env.spawn_worker(16);
    for run in ["one", "two"] {
        let report = env.wait_finished(run, Duration::from_secs(60)).await;
        assert_eq!((report.succeeded, report.failed), (400, 0));
    }
    let arrivals = env.sim.arrivals();
    let times: Vec<u64> = arrivals.iter().map(|a| a.t_us).collect();
    let peak = max_per_second(&times);
    assert!(peak <= 100 + 10, "{peak} requests in one second across both actions (tenant limit 100/s, burst 10)");
    let throttled = arrivals.iter().filter(|a| a.status == 429).count();
    assert!(throttled * 100 <= arrivals.len(), "{throttled} 429s of {} requests", arrivals.len());
}

/// A target that states its limit (`RateLimit-Policy: 200;w=1`) spares the search: the budget
/// cruises just under the stated limit and 429s are next to none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stated_limit_replaces_the_search() {
    let mut env = TestEnv::start(SimConfig { rate_per_second: 200, burst: 20, rate_limit_headers: true, ..SimConfig::default() }).await;
    env.unset("CXRELAY_RATE");
    env.enqueue_generated("stated", 1500);
    let _w1 = env.spawn_worker(32);
    let _w2 = env.spawn_worker(32);
    let report = env.wait_finished("stated", Duration::from_secs(60)).await;
    assert_eq!((report.succeeded, report.failed), (1500, 0));
    let mut conn = env.redis().await;
    let key = env.keys().budget("default", None);
    let (ceiling, phase): (Option<f64>, Option<String>) =
        redis::cmd("HMGET").arg(&key).arg("ceiling").arg("phase").query_async(&mut conn).await.unwrap();
    // Cruising under the stated 200/s (a later 429 may refine the ceiling a little).
    assert_eq!(phase.as_deref(), Some("cruise"));
    assert!((180.0..=200.0).contains(&ceiling.unwrap()), "ceiling {ceiling:?}");
    let stats = env.sim.stats();
    assert!(stats.status_429 * 100 <= stats.requests, "{} 429s of {} requests", stats.status_429, stats.requests);
    assert!(env.logs().contains("ratelimit.hint"), "{}", env.logs());
}

/// Property: the scripts and the Rust model (`Adaptive`) agree on random sequences of 429s and
/// recoveries, for random configured rates. The seed is printed on failure (`RATE_SEED` replays).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripts_and_the_model_agree_on_random_sequences() {
    use cxrelay_core::ratelimit::Adaptive;
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("RATE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let env = TestEnv::start(SimConfig::default()).await;
    let mut conn = env.store().await.conn();
    let field = |conn: cxrelay_queue::RedisConn, key: String, name: &'static str| async move {
        let mut conn = conn;
        redis::cmd("HGET").arg(&key).arg(name).query_async::<Option<f64>>(&mut conn).await.unwrap()
    };
    for case in 0..40 {
        let conf: f64 = rng.random_range(20.0..2000.0);
        let budget = fixed(conf, 10, true);
        let tenant = format!("prop{case}");
        let limits = FleetLimits::new(conn.clone(), env.keys(), &tenant);
        let key = env.keys().budget(&tenant, None);
        limits.acquire(None, &budget, Duration::from_secs(3600)).await.unwrap();
        let mut model = Adaptive::new(conf);
        for step in 0..15 {
            let what;
            if rng.random_bool(0.4) {
                // A 429 with nothing to estimate from: the rate in force becomes the ceiling.
                let _: () = redis::cmd("HSET").arg(&key).arg(&["cut_at", "0", "epoch_at", "0"]).query_async(&mut conn).await.unwrap();
                limits.throttle(Duration::from_micros(1), &budget).await.unwrap();
                model = model.on_throttle(conf, None);
                what = "throttle".to_owned();
            } else {
                let dt: u64 = rng.random_range(1_000..5_000_000);
                let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
                let now = secs * 1_000_000 + micros;
                let _: () =
                    redis::cmd("HSET").arg(&key).arg("adjusted").arg(now - dt).arg("pause_until").arg(0).query_async(&mut conn).await.unwrap();
                limits.acquire(None, &budget, Duration::from_secs(3600)).await.unwrap();
                model = model.recover(conf, dt);
                what = format!("recover {dt} us");
            }
            let rate = field(conn.clone(), key.clone(), "rate").await.unwrap_or(conf);
            let ctx = format!("seed {seed}, case {case} (configured {conf:.3}/s), step {step} ({what}): script {rate}, model {model:?}");
            // The script's clock moved on a little between our TIME and its own.
            assert!((rate - model.rate).abs() <= model.rate * 1e-3 + conf * 0.05 * 0.01, "{ctx}");
            if let Some(ceiling) = model.ceiling {
                let got = field(conn.clone(), key.clone(), "ceiling").await.unwrap();
                assert!((got - ceiling).abs() <= ceiling * 1e-3 + conf * 0.05 * 0.01, "ceiling {got}: {ctx}");
                assert_eq!(field(conn.clone(), key.clone(), "probe").await, Some(model.probe), "{ctx}");
            }
            // Keep the model on the script's exact value, so small clock drifts do not add up.
            model.rate = rate;
        }
    }
}
