//! The dashboard at `/`: server-rendered HTML (maud), its stylesheet embedded, no JavaScript
//! (a meta refresh keeps the lists live). Runs list, run page (status breakdown, latency,
//! failures by status and reason, failed items, replay with a confirmation step, pause / resume
//! / cancel), item history, workers and webhooks. Sign-in with an API token (`read` or
//! `operate`) into a signed session cookie ([`session`](crate::session)); every form that
//! changes something carries a CSRF token; a `read` session sees no action buttons.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use cxrelay_app::{AppError, Control, FailedFilter, Replay, ReplayOutcome, RunsFilter, Selection, StatusFilter};
use cxrelay_core::oncall::{parse_indexes, rfc3339};
use cxrelay_core::report::{RunReport, RunStatus};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::auth::Role;
use crate::session::{Session, COOKIE, LIFETIME_SECS};
use crate::Shared;

const STYLE: &str = include_str!("dashboard.css");

fn now_secs() -> u64 {
    cxrelay_core::now_ms() / 1000
}

fn page(title: &str, session: Option<&Session>, refresh: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh { meta http-equiv="refresh" content="5"; }
                title { (title) " · cxrelay" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/" { "cxrelay" }
                    @if let Some(s) = session {
                        nav {
                            a href="/" { "Runs" }
                            a href="/workers" { "Workers" }
                            a href="/exports" { "Exports" }
                            a href="/webhooks" { "Webhooks" }
                        }
                        form.logout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            span.role { (s.role.as_str()) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], markup.into_string()).into_response()
}

fn error_page(session: Option<&Session>, status: StatusCode, message: &str) -> Response {
    html_response(
        status,
        page(
            "Error",
            session,
            false,
            html! { h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) } p.error { (message) } p { a href="/" { "Back to the runs" } } },
        ),
    )
}

fn app_error(session: &Session, e: AppError) -> Response {
    let message = e.to_string();
    error_page(Some(session), crate::error::ApiError::from(e).status(), &message)
}

/// The signed-in session, or the answer to give instead (sign in first).
fn session(s: &Shared, headers: &HeaderMap) -> Result<Session, Box<Response>> {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned());
    cookie.and_then(|c| s.signer.check(&c, now_secs())).ok_or_else(|| Box::new(Redirect::to("/login").into_response()))
}

/// A state-changing form: an `operate` session and its CSRF token, or the refusal.
fn operator(s: &Shared, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<Session, Box<Response>> {
    let session = session(s, headers)?;
    if !form.get("csrf").is_some_and(|t| s.signer.csrf_ok(&session, t)) {
        return Err(Box::new(error_page(
            Some(&session),
            StatusCode::FORBIDDEN,
            "The form's CSRF token is missing or wrong: reload the page and try again.",
        )));
    }
    if session.role != Role::Operate {
        return Err(Box::new(error_page(Some(&session), StatusCode::FORBIDDEN, "Signed in with a read token: actions need an operate token.")));
    }
    Ok(session)
}

/// `GET /login`.
pub async fn login_form() -> Response {
    login_page(None, StatusCode::OK)
}

fn login_page(error: Option<&str>, status: StatusCode) -> Response {
    html_response(
        status,
        page(
            "Sign in",
            None,
            false,
            html! {
                section.card.narrow {
                    h1 { "Sign in" }
                    p { "With an API token of role " code { "read" } " or " code { "operate" } "." }
                    @if let Some(e) = error { p.error { (e) } }
                    form method="post" action="/login" {
                        label for="token" { "API token" }
                        input #token type="password" name="token" autocomplete="current-password" required;
                        button type="submit" { "Sign in" }
                    }
                }
            },
        ),
    )
}

/// `POST /login`.
pub async fn login(State(s): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let role = form.get("token").and_then(|t| s.tokens.role_of(t.trim()));
    let role = match role {
        Some(r @ (Role::Read | Role::Operate)) => r,
        Some(Role::Ingest) => return login_page(Some("An ingest token cannot sign in: use a read or operate token."), StatusCode::FORBIDDEN),
        None => {
            metrics::counter!(cxrelay_core::metric::AUTH_FAILURES).increment(1);
            return login_page(Some("That token is not valid."), StatusCode::UNAUTHORIZED);
        }
    };
    let session = s.signer.start(role, now_secs());
    let cookie = format!("{COOKIE}={}; {}; Max-Age={LIFETIME_SECS}", s.signer.cookie(&session), s.cookie_attributes);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

/// `POST /logout` (with the session's CSRF token, so another site cannot sign an operator out).
pub async fn logout(State(s): State<Shared>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Ok(session) = session(&s, &headers) {
        if !form.get("csrf").is_some_and(|t| s.signer.csrf_ok(&session, t)) {
            return error_page(Some(&session), StatusCode::FORBIDDEN, "The form's CSRF token is missing or wrong: reload the page and try again.");
        }
    }
    ([(header::SET_COOKIE, format!("{COOKIE}=; {}; Max-Age=0", s.cookie_attributes))], Redirect::to("/login")).into_response()
}

fn progress(r: &RunReport) -> Markup {
    let total = r.total.max(1) as f64;
    let pct = |n: u64| n as f64 * 100.0 / total;
    html! {
        svg.bar viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-label={ (format!("{} of {} finished", r.succeeded + r.failed + r.validation_failures, r.total)) } {
            rect x="0" y="0" width="100" height="6" class="todo" {}
            rect x="0" y="0" width=(format!("{:.3}", pct(r.succeeded))) height="6" class="ok" {}
            rect x=(format!("{:.3}", pct(r.succeeded))) y="0" width=(format!("{:.3}", pct(r.failed + r.validation_failures))) height="6" class="bad" {}
        }
    }
}

fn age(ms: u64) -> String {
    cxrelay_core::oncall::age(ms, cxrelay_core::now_ms())
}

/// `GET /?status=…`: the runs.
pub async fn runs(State(s): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let session = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let status = q.get("status").and_then(|v| RunStatus::parse(v));
    let runs = match s.app.runs(&RunsFilter { status, tenant: q.get("tenant").cloned() }).await {
        Ok(r) => r,
        Err(e) => return app_error(&session, e),
    };
    let filters = ["active", "paused", "finished", "cancelled", "loading"];
    html_response(
        StatusCode::OK,
        page(
            "Runs",
            Some(&session),
            true,
            html! {
                h1 { "Runs" }
                nav.filters {
                    a.current[status.is_none()] href="/" { "all" }
                    @for f in filters { a.current[status.is_some_and(|x| x.as_str() == f)] href={ "/?status=" (f) } { (f) } }
                }
                @if runs.is_empty() { p.muted { "No runs." } }
                @else {
                    table.runs {
                        thead { tr { th { "run" } th { "status" } th.wide { "progress" } th.num { "completion" } th.num { "failed" } th.num { "items/s" } th.num { "age" } } }
                        tbody {
                            @for r in &runs {
                                tr {
                                    td { a href={ "/runs/" (r.run_id) } { (r.run_id) } div.muted { (r.action) } }
                                    td { span class={ "status " (r.status.as_str()) } { (r.status.as_str()) } }
                                    td.wide { (progress(r)) div.muted { (r.succeeded + r.failed + r.validation_failures) " / " (r.total) } }
                                    td.num { (format!("{:.1}%", r.completion_rate * 100.0)) }
                                    td.num { @if r.failed > 0 { span.badtext { (r.failed) } } @else { "0" } }
                                    td.num { (format!("{:.0}", r.throughput_per_s)) }
                                    td.num { (age(r.created_ms)) }
                                }
                                @if let Some(w) = &r.warning { tr.warning { td colspan="7" { "⚠ " (w) } } }
                            }
                        }
                    }
                }
            },
        ),
    )
}

/// `GET /runs/{id}`: one run.
pub async fn run(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let session = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let report = match s.app.report(&id).await {
        Ok(r) => r,
        Err(e) => return app_error(&session, e),
    };
    let groups = s.app.failed_summary(&id, FailedFilter::default()).await.unwrap_or_default();
    let mut failed = Vec::new();
    if let Ok(mut pages) = s.app.failed(&id, FailedFilter::default(), Some(50), None).await {
        while let Ok(Some(rows)) = pages.next_page().await {
            failed.extend(rows);
        }
    }
    let series = s.app.series(&id, 120).await.unwrap_or_default();
    let csrf = s.signer.csrf(&session);
    let operate = session.role == Role::Operate;
    let eta = report.eta_s.map(|e| format!("{e:.0} s")).unwrap_or_else(|| "—".into());
    let ms = |v: Option<f64>| v.map(|x| format!("{x:.1} ms")).unwrap_or_else(|| "—".into());
    let max_latency = report.latency_p99_ms.unwrap_or(1.0).max(0.001);
    html_response(
        StatusCode::OK,
        page(
            &format!("Run {id}"),
            Some(&session),
            matches!(report.status, RunStatus::Active | RunStatus::Loading),
            html! {
                @if let Some(flash) = q.get("done") { p.flash { (flash) } }
                h1 { "Run " (report.run_id) " " span class={ "status " (report.status.as_str()) } { (report.status.as_str()) } }
                p.muted { "tenant " (report.tenant) " · action " (report.action) " · source " (report.source) }
                @if let Some(why) = &report.status_reason { p.warning { (report.status.as_str()) ": " (why) } }
                @if let Some(w) = &report.warning { p.warning { "⚠ " (w) } }
                (progress(&report))
                section.cards {
                    div.card { h3 { "Succeeded" } p.big.oktext { (report.succeeded) } }
                    div.card { h3 { "Failed" } p.big.badtext { (report.failed) } }
                    div.card { h3 { "Pending" } p.big { (report.pending) } }
                    div.card { h3 { "Validation failures" } p.big { (report.validation_failures) } }
                    @if report.cancelled > 0 { div.card { h3 { "Cancelled" } p.big { (report.cancelled) } } }
                    div.card { h3 { "Completion" } p.big { (format!("{:.1}%", report.completion_rate * 100.0)) } }
                    div.card { h3 { "Throughput" } p.big { (format!("{:.0}/s", report.throughput_per_s)) } p.muted { "ETA " (eta) } }
                    div.card {
                        h3 { "Latency" }
                        svg.latency viewBox="0 0 120 36" role="img" aria-label="latency percentiles" {
                            @for (i, (label, v)) in [("p50", report.latency_p50_ms), ("p95", report.latency_p95_ms), ("p99", report.latency_p99_ms)].iter().enumerate() {
                                text x="0" y=(i * 12 + 9) { (label) }
                                rect x="22" y=(i * 12 + 2) height="8" width=(format!("{:.2}", v.unwrap_or(0.0) / max_latency * 96.0)) {}
                            }
                        }
                        p.muted { "p50 " (ms(report.latency_p50_ms)) " · p99 " (ms(report.latency_p99_ms)) }
                    }
                }
                @if series.len() > 1 {
                    section.charts {
                        div.card { h3 { "Throughput, items/s" } (chart(&series.iter().map(|p| (p.0, Some(p.1))).collect::<Vec<_>>(), "throughput over time")) }
                        div.card { h3 { "Mean latency, ms" } (chart(&series.iter().map(|p| (p.0, p.2)).collect::<Vec<_>>(), "latency over time")) }
                    }
                }
                @if operate {
                    section.actions {
                        @for (action, label, show) in [("pause", "Pause", report.status == RunStatus::Active), ("resume", "Resume", report.status == RunStatus::Paused), ("cancel", "Cancel", matches!(report.status, RunStatus::Active | RunStatus::Paused | RunStatus::Loading))] {
                            @if show {
                                form method="post" action={ "/runs/" (id) "/control" } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="action" value=(action);
                                    button.danger[action == "cancel"] type="submit" { (label) }
                                }
                            }
                        }
                    }
                }
                @if report.failed > 0 {
                    h2 { "Failures" }
                    table {
                        thead { tr { th { "status" } th { "reason" } th.num { "items" } @if operate { th {} } } }
                        tbody {
                            @for g in &groups {
                                tr {
                                    td { (g.status) } td { (g.reason) } td.num { (g.count) }
                                    @if operate {
                                        td { (replay_form(&id, &csrf, "status", &g.status, &format!("Replay the {} {} items", g.count, g.status))) }
                                    }
                                }
                            }
                        }
                    }
                    @if operate { p { (replay_form(&id, &csrf, "all", "", "Replay all failed items")) } }
                    h2 { "Failed items" }
                    table.items {
                        thead { tr { th.num { "index" } th { "status" } th.num { "attempts" } th { "last attempt" } th { "reason" } @if operate { th {} } } }
                        tbody {
                            @for f in &failed {
                                tr {
                                    td.num { a href={ "/runs/" (id) "/items/" (f.index) } { (f.index) } }
                                    td { (f.status) } td.num { (f.attempts) } td { (f.last_attempt_at) } td.reason { (f.reason) }
                                    @if operate { td { (replay_form(&id, &csrf, "index", &f.index.to_string(), "Replay")) } }
                                }
                            }
                        }
                    }
                    @if report.failed as usize > failed.len() { p.muted { "The first " (failed.len()) " of " (report.failed) "; " code { "cxrelay failed " (id) } " lists them all." } }
                }
            },
        ),
    )
}

/// A line chart of `(time ms, value)` as inline SVG, with its peak and time span as labels.
fn chart(points: &[(u64, Option<f64>)], label: &str) -> Markup {
    let values: Vec<(u64, f64)> = points.iter().filter_map(|(t, v)| v.map(|v| (*t, v))).collect();
    let (Some(first), Some(last)) = (values.first(), values.last()) else { return html! { p.muted { "—" } } };
    let span = (last.0 - first.0).max(1) as f64;
    let peak = values.iter().map(|p| p.1).fold(0.0_f64, f64::max).max(f64::MIN_POSITIVE);
    let path: Vec<String> =
        values.iter().map(|(t, v)| format!("{:.1},{:.1}", (*t - first.0) as f64 / span * 300.0, 78.0 - v / peak * 72.0)).collect();
    html! {
        svg.chart viewBox="0 0 300 80" preserveAspectRatio="none" role="img" aria-label=(label) {
            polyline points=(path.join(" ")) {}
        }
        p.muted { "peak " (format!("{peak:.1}")) " · " (rfc3339(first.0)) " → " (rfc3339(last.0)) }
    }
}

fn replay_form(id: &str, csrf: &str, kind: &str, value: &str, label: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/runs/" (id) "/replay" } {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="kind" value=(kind);
            input type="hidden" name="value" value=(value);
            button type="submit" { (label) }
        }
    }
}

fn selection(form: &HashMap<String, String>) -> Result<Selection, String> {
    let value = form.get("value").map(String::as_str).unwrap_or("");
    match form.get("kind").map(String::as_str) {
        Some("index") => parse_indexes(value).map(Selection::Indexes).map_err(|e| e.to_string()),
        Some("status") => StatusFilter::parse(value)
            .map(|f| Selection::Failed(FailedFilter { status: Some(f), ..FailedFilter::default() }))
            .map_err(|e| e.to_string()),
        Some("all") => Ok(Selection::Failed(FailedFilter::default())),
        _ => Err("say which items to replay".into()),
    }
}

/// The operator and the selection of a replay form, or the answer to give instead.
fn replay_form_request(s: &Shared, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<(Session, Selection), Box<Response>> {
    let session = operator(s, headers, form)?;
    match selection(form) {
        Ok(sel) => Ok((session, sel)),
        Err(e) => Err(Box::new(error_page(Some(&session), StatusCode::BAD_REQUEST, &e))),
    }
}

/// `POST /runs/{id}/replay`: the confirmation step (a dry run shows what would happen).
pub async fn replay_confirm(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (session, sel) = match replay_form_request(&s, &headers, &form) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let dry = Replay { selection: sel, limit: None, by: "dashboard".into(), reason: "dry run".into(), new_idempotency_key: false, dry_run: true };
    let outcome: ReplayOutcome = match s.app.replay(&id, dry).await {
        Ok(o) => o,
        Err(e) => return app_error(&session, e),
    };
    let csrf = s.signer.csrf(&session);
    html_response(
        StatusCode::OK,
        page(
            "Confirm replay",
            Some(&session),
            false,
            html! {
                section.card.narrow {
                    h1 { "Replay " (outcome.replayed.len()) " item(s) of run " (id) "?" }
                    @if !outcome.replayed.is_empty() { p { "Items: " (outcome.replayed.iter().take(50).map(u64::to_string).collect::<Vec<_>>().join(", ")) @if outcome.replayed.len() > 50 { " …" } } }
                    @if !outcome.refused.is_empty() {
                        p.warning { (outcome.refused.len()) " refused:" }
                        ul { @for r in outcome.refused.iter().take(20) { li { (r.index) ": " (r.why) } } }
                    }
                    form method="post" action={ "/runs/" (id) "/replay/confirm" } {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="kind" value=(form.get("kind").cloned().unwrap_or_default());
                        input type="hidden" name="value" value=(form.get("value").cloned().unwrap_or_default());
                        label for="reason" { "Why (recorded)" }
                        input #reason type="text" name="reason" required;
                        button #confirm type="submit" disabled[outcome.replayed.is_empty()] { "Confirm replay" }
                        " " a href={ "/runs/" (id) } { "Cancel" }
                    }
                }
            },
        ),
    )
}

/// `POST /runs/{id}/replay/confirm`: the replay itself.
pub async fn replay_do(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let (session, sel) = match replay_form_request(&s, &headers, &form) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let reason = form.get("reason").map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()).unwrap_or_else(|| "replayed from the dashboard".into());
    let replay = Replay { selection: sel, limit: None, by: "dashboard".into(), reason, new_idempotency_key: false, dry_run: false };
    match s.app.replay(&id, replay).await {
        Ok(o) => Redirect::to(&format!("/runs/{id}?done=Replayed+{}+item(s)", o.replayed.len())).into_response(),
        Err(e) => app_error(&session, e),
    }
}

/// `POST /runs/{id}/control`: pause, resume or cancel.
pub async fn control(State(s): State<Shared>, headers: HeaderMap, Path(id): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let session = match operator(&s, &headers, &form) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let action = match form.get("action").map(String::as_str) {
        Some("pause") => Control::Pause,
        Some("resume") => Control::Resume,
        Some("cancel") => Control::Cancel,
        _ => return error_page(Some(&session), StatusCode::BAD_REQUEST, "unknown action"),
    };
    match s.app.control(&id, action, "dashboard", "from the dashboard").await {
        Ok((_, to)) => Redirect::to(&format!("/runs/{id}?done=Run+is+now+{to}")).into_response(),
        Err(e) => app_error(&session, e),
    }
}

/// `GET /runs/{id}/items/{index}`: one item's history.
pub async fn item(State(s): State<Shared>, headers: HeaderMap, Path((id, index)): Path<(String, u64)>) -> Response {
    let session = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let item = match s.app.item(&id, index).await {
        Ok(i) => i,
        Err(e) => return app_error(&session, e),
    };
    let state = serde_json::to_value(item.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    html_response(
        StatusCode::OK,
        page(
            &format!("Item {index}"),
            Some(&session),
            false,
            html! {
                p { a href={ "/runs/" (id) } { "← run " (id) } }
                h1 { "Item " (index) " " span class={ "status " (state) } { (state) } }
                @if let Some(f) = &item.failure { p.warning { (f.class) " after " (f.attempts) " attempt(s): " (f.reason) } }
                @if let Some(p) = &item.payload { h2 { "Payload" } pre { (serde_json::to_string_pretty(p).unwrap_or_default()) } }
                h2 { "History" }
                @if item.history.is_empty() { p.muted { "None kept: an item that succeeded at once keeps no history." } }
                @else {
                    table {
                        thead { tr { th { "time" } th.num { "attempt" } th { "outcome" } th { "status" } th.num { "latency" } th { "worker" } th { "error" } } }
                        tbody {
                            @for h in &item.history {
                                tr {
                                    td { (rfc3339(h.at_ms)) } td.num { (h.attempt) } td { (h.outcome) }
                                    td { (h.status.map(|s| s.to_string()).or_else(|| h.class.clone()).unwrap_or_default()) }
                                    td.num { (format!("{:.1} ms", h.latency_us as f64 / 1000.0)) } td { (h.worker) } td.reason { (h.error.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            },
        ),
    )
}

/// `GET /workers`.
pub async fn workers(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let session = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let workers = match s.app.workers(None).await {
        Ok(w) => w,
        Err(e) => return app_error(&session, e),
    };
    html_response(
        StatusCode::OK,
        page(
            "Workers",
            Some(&session),
            true,
            html! {
                h1 { "Workers" }
                @if workers.is_empty() { p.warning { "No live worker: nothing is being delivered." } }
                table {
                    thead { tr { th { "consumer" } th { "host" } th.num { "pid" } th { "tenant" } th.num { "in flight" } th.num { "concurrency" } th.num { "started" } th.num { "last seen" } } }
                    tbody { @for w in &workers { tr { td { (w.consumer) } td { (w.host) } td.num { (w.pid) } td { (w.tenant) } td.num { (w.in_flight) } td.num { (w.concurrency) } td.num { (age(w.started_ms)) } td.num { (age(w.last_seen_ms)) } } } }
                }
            },
        ),
    )
}

/// `GET /exports`: the tenant's CSV export executions with state, rows and latency.
pub async fn exports(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let session = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let rows = match s.app.exports(200).await {
        Ok(r) => r,
        Err(e) => return app_error(&session, e),
    };
    let dash = || "-".to_owned();
    html_response(
        StatusCode::OK,
        page(
            "Exports",
            Some(&session),
            true,
            html! {
                h1 { "Exports" }
                @if rows.is_empty() { p { "No export executions yet (cxrelay export, POST /v1/exports)." } }
                table {
                    thead { tr { th { "export" } th { "state" } th { "data action" } th { "dataset" } th { "execution" } th.num { "rows" } th.num { "latency" } th.num { "age" } th { "completion" } } }
                    tbody {
                        @for r in &rows {
                            tr class=(format!("state-{}", r.state.as_str())) {
                                td { (r.id) }
                                td { (r.state.as_str()) }
                                td { (r.data_action) }
                                td { (r.dataset) }
                                td { (r.execution_id.clone().unwrap_or_else(dash)) }
                                td.num { (r.rows.map_or_else(dash, |n| n.to_string())) }
                                td.num { (r.latency_ms.map_or_else(dash, |ms| format!("{:.1} s", ms as f64 / 1000.0))) }
                                td.num { (r.created_ms.map_or_else(dash, age)) }
                                td { (r.completion_source.clone().or_else(|| r.completion.clone()).unwrap_or_else(dash)) }
                            }
                        }
                    }
                }
            },
        ),
    )
}

/// `GET /webhooks`.
pub async fn webhooks(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let session = match session(&s, &headers) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let hooks = match s.app.webhooks_status().await {
        Ok(w) => w,
        Err(e) => return app_error(&session, e),
    };
    html_response(
        StatusCode::OK,
        page(
            "Webhooks",
            Some(&session),
            true,
            html! {
                h1 { "Webhooks" }
                @if hooks.is_empty() { p.muted { "No endpoint configured." } }
                table {
                    thead { tr { th { "endpoint" } th.num { "pending" } th.num { "delivered" } th.num { "dropped" } th.num { "trimmed" } th { "health" } } }
                    tbody {
                        @for h in &hooks {
                            tr {
                                td { (h.url) div.muted { (h.events.join(", ")) } }
                                td.num { (h.pending) } td.num { (h.delivered) } td.num { (h.dropped) } td.num { (h.trimmed) }
                                td { @match &h.failing_since { Some(since) => { span.badtext { "failing since " (since) } div.muted { (h.last_error.as_deref().unwrap_or("")) } }, None => { span.oktext { "ok" } } } }
                            }
                        }
                    }
                }
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_plot_every_point_scaled_to_the_peak() {
        let svg = chart(&[(0, Some(1.0)), (10_000, None), (20_000, Some(4.0)), (30_000, Some(2.0))], "t").into_string();
        assert!(svg.contains(r#"points="0.0,60.0 200.0,6.0 300.0,42.0""#), "{svg}");
        assert!(svg.contains("peak 4.0"), "{svg}");
        assert!(chart(&[], "t").into_string().contains("—"));
    }
}
