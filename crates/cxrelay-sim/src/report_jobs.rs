//! CXone report jobs, the real API's polled exports:
//!
//! - `POST /incontactapi/services/{version}/report-jobs/{reportId}` (bearer, `Accept: application/json`,
//!   any JSON body or none) → `202 {"jobId"}`;
//! - `GET /incontactapi/services/{version}/report-jobs/{jobId}` → `200 {"jobResult": {jobId, reportId,
//!   state: Running|Finished|Failed, rowsExported, startTime, endTime, resultFileURL}}`, 404 for an
//!   unknown job;
//! - `GET /_sim/report-jobs/{jobId}/file`: the finished job's CSV (what `resultFileURL` points to).
//!
//! A job finishes like an export execution (see [`crate::export_settings`]): after the export
//! duration, with the configured outcome and rows, or never; no callback is ever sent.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use cxrelay_core::oncall::rfc3339;
use serde::Serialize;

use crate::execute::token_rejection;
use crate::export_settings::{ExportCompletion, ExportSettings, ExportStatus};
use crate::reply;
use crate::reqlog::RequestRoute;
use crate::shape::{is_json_object, Shape};
use crate::state::SimState;

/// Most rows a result file lists (the reported `rowsExported` may be larger).
const MAX_FILE_ROWS: u64 = 100_000;

/// A submitted job.
struct Job {
    report_id: String,
    submitted: Instant,
    submitted_wall_ms: u64,
    settings: ExportSettings,
}

impl Job {
    /// `Running`, `Finished` or `Failed` at `now`.
    fn state(&self, now: Instant) -> &'static str {
        let done = self.settings.completion != ExportCompletion::Never && now >= self.submitted + self.settings.duration();
        match (done, self.settings.status) {
            (false, _) => "Running",
            (true, ExportStatus::Completed) => "Finished",
            (true, ExportStatus::Failed) => "Failed",
        }
    }

    fn rows(&self) -> u64 {
        match self.settings.status {
            ExportStatus::Completed => self.settings.rows,
            ExportStatus::Failed => 0,
        }
    }
}

/// Submitted report jobs by id.
#[derive(Default)]
pub(crate) struct ReportJobs {
    jobs: Mutex<HashMap<String, Job>>,
}

impl ReportJobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every job.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[derive(Serialize)]
struct Submitted {
    #[serde(rename = "jobId")]
    job_id: String,
}

#[derive(Serialize)]
struct JobStatus {
    #[serde(rename = "jobResult")]
    job_result: JobResult,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobResult {
    job_id: String,
    report_id: String,
    state: &'static str,
    rows_exported: u64,
    start_time: Option<String>,
    end_time: Option<String>,
    #[serde(rename = "resultFileURL")]
    result_file_url: Option<String>,
}

/// `POST /incontactapi/services/{version}/report-jobs/{reportId}`.
pub(crate) async fn submit(
    State(sim): State<Arc<SimState>>,
    Path((_version, report_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let now = Instant::now();
    let capture = sim.requests.capture(RequestRoute::ReportJobSubmit, &method, &uri, &headers, sim.clock.micros_at(now) / 1000);
    let res = submit_answer(&sim, report_id, &headers, &body, now);
    if let Some(capture) = capture {
        sim.requests.push(capture, Some(&body), res.status().as_u16());
    }
    res
}

fn submit_answer(sim: &SimState, report_id: String, headers: &HeaderMap, body: &[u8], now: Instant) -> Response<Body> {
    if let Some(res) = token_rejection(sim, headers, now).or_else(|| Shape::Cxone.accept_rejection(headers)) {
        return res;
    }
    if !body.iter().all(u8::is_ascii_whitespace) && !is_json_object(body) {
        return reply::bad_field("invalid_body", "body", "body must be empty or a JSON object");
    }
    let job_id = format!("{}", rand::random_range(100_000_000u64..1_000_000_000));
    let job = Job { report_id, submitted: now, submitted_wall_ms: cxrelay_core::now_ms(), settings: sim.exports.settings() };
    sim.report_jobs.lock().insert(job_id.clone(), job);
    reply::json(StatusCode::ACCEPTED, &Submitted { job_id })
}

/// `GET /incontactapi/services/{version}/report-jobs/{jobId}`.
pub(crate) async fn status(
    State(sim): State<Arc<SimState>>,
    Path((_version, job_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let now = Instant::now();
    let capture = sim.requests.capture(RequestRoute::ReportJobStatus, &method, &uri, &headers, sim.clock.micros_at(now) / 1000);
    let res = match token_rejection(&sim, &headers, now).or_else(|| Shape::Cxone.accept_rejection(&headers)) {
        Some(res) => res,
        None => status_answer(&sim, job_id, now),
    };
    if let Some(capture) = capture {
        sim.requests.push(capture, None, res.status().as_u16());
    }
    res
}

fn status_answer(sim: &SimState, job_id: String, now: Instant) -> Response<Body> {
    let jobs = sim.report_jobs.lock();
    let Some(job) = jobs.get(&job_id) else {
        return reply::static_json(StatusCode::NOT_FOUND, r#"{"error":"job_not_found"}"#);
    };
    let state = job.state(now);
    let done = state != "Running";
    let result = JobResult {
        report_id: job.report_id.clone(),
        state,
        rows_exported: if state == "Finished" { job.rows() } else { 0 },
        start_time: done.then(|| rfc3339(job.submitted_wall_ms)),
        end_time: done.then(|| rfc3339(job.submitted_wall_ms.saturating_add(job.settings.duration_ms))),
        result_file_url: (state == "Finished").then(|| format!("{}/_sim/report-jobs/{job_id}/file", sim.base_url)),
        job_id,
    };
    drop(jobs);
    reply::json(StatusCode::OK, &JobStatus { job_result: result })
}

/// `GET /_sim/report-jobs/{jobId}/file`: `id,value` and one line per row (at most 100,000).
pub(crate) async fn file(State(sim): State<Arc<SimState>>, Path(job_id): Path<String>) -> Response<Body> {
    let rows = {
        let jobs = sim.report_jobs.lock();
        match jobs.get(&job_id) {
            Some(job) if job.state(Instant::now()) == "Finished" => job.rows().min(MAX_FILE_ROWS),
            Some(_) => return reply::static_json(StatusCode::CONFLICT, r#"{"error":"job_not_finished"}"#),
            None => return reply::static_json(StatusCode::NOT_FOUND, r#"{"error":"job_not_found"}"#),
        }
    };
    let mut csv = String::from("id,value\n");
    for i in 1..=rows {
        let _ = writeln!(csv, "{i},row-{i}");
    }
    let mut res = Response::new(Body::from(csv));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    res
}
