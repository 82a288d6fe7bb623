//! The names of cxrelay's Prometheus metrics and the histogram buckets, in one place (the code
//! that records them uses these names; nothing here does I/O). Conventions: `_total` counters,
//! `_seconds` in base units, bounded label sets — never a run id or an item as a label.

/// Items by outcome (`succeeded`, `failed`, `retry`, `deferred`) and failure class.
pub const ITEMS: &str = "cxrelay_items_total";
/// Requests sent to the target, by status class (`2xx`, `4xx`, `5xx`, `429`, `transport`, `auth`).
pub const ATTEMPTS: &str = "cxrelay_attempts_total";
/// Latency of requests to the target.
pub const ATTEMPT_DURATION: &str = "cxrelay_attempt_duration_seconds";
/// Answers of 429 from the target.
pub const RATE_LIMITED: &str = "cxrelay_rate_limited_total";
/// Time an item waited for a send slot of the rate budget.
pub const LIMITER_WAIT: &str = "cxrelay_limiter_wait_seconds";
/// Items this worker process holds (running or buffered), by tenant.
pub const IN_FLIGHT: &str = "cxrelay_items_in_flight";
/// Items pending in the tenant's active runs (queued, waiting for a retry or in flight).
pub const PENDING: &str = "cxrelay_items_pending";
/// Items waiting for a retry (or deferred) in the tenant's active runs.
pub const DELAYED: &str = "cxrelay_items_delayed";
/// Worker processes with a live heartbeat, by tenant.
pub const WORKERS_ALIVE: &str = "cxrelay_workers_alive";
/// Worker processes the tenant can keep busy: its rate budget × latency over per-process
/// concurrency, capped by the backlog ([`crate::capacity`]). What an autoscaler aims for.
pub const WORKERS_USABLE: &str = "cxrelay_workers_usable";
/// Webhook events the outbox's length cap removed before every endpoint had them.
pub const WEBHOOK_TRIMMED: &str = "cxrelay_webhook_outbox_trimmed_total";
/// The tenant's current send rate (requests/s) of its fleet-wide budget, when one applies.
pub const RATE: &str = "cxrelay_rate_limit_rate";
/// The tenant's learned rate ceiling (requests/s, adaptive mode), once a 429 set one.
pub const CEILING: &str = "cxrelay_rate_limit_ceiling";
/// Completion of each active run (succeeded / total, 0 to 1): one series per active run.
pub const RUN_COMPLETION: &str = "cxrelay_run_completion_ratio";
/// 1 while this process sees the tenant's circuit breaker open.
pub const BREAKER_OPEN: &str = "cxrelay_breaker_open";
/// Token requests made to the token endpoint.
pub const TOKEN_REFRESHES: &str = "cxrelay_token_refreshes_total";
/// Webhook deliveries by result (`delivered`, `failed`, `dropped`).
pub const WEBHOOK_DELIVERIES: &str = "cxrelay_webhook_deliveries_total";
/// Webhook events waiting for an endpoint (the outbox depth as one dispatcher last saw it), by
/// endpoint id (a hash of its URL).
pub const WEBHOOK_PENDING: &str = "cxrelay_webhook_pending";
/// HTTP requests served by `cxrelay serve`, by method, route and status.
pub const HTTP_REQUESTS: &str = "cxrelay_http_requests_total";
/// Latency of the HTTP requests served.
pub const HTTP_DURATION: &str = "cxrelay_http_request_duration_seconds";
/// Requests refused for a missing or invalid API token.
pub const AUTH_FAILURES: &str = "cxrelay_api_auth_failures_total";

/// Export executions that ended, by state (completed, failed, overdue).
pub const EXPORTS: &str = "cxrelay_exports_total";
/// Rows exported by completed export executions.
pub const EXPORT_ROWS: &str = "cxrelay_export_rows_total";
/// Start-to-end time of export executions on the target, seconds.
pub const EXPORT_LATENCY: &str = "cxrelay_export_latency_seconds";
/// Completed over ended (completed + failed) export executions seen by this process, 0 to 1.
pub const EXPORT_COMPLETION: &str = "cxrelay_export_completion_ratio";

/// Buckets of every histogram, in seconds: explicit, so series from many pods aggregate.
pub const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// What a metric is, for its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in the buckets.
    Histogram,
}

/// Every metric with its kind and `# HELP` text.
pub const ALL: [(&str, Kind, &str); 25] = [
    (WEBHOOK_PENDING, Kind::Gauge, "Webhook events waiting for an endpoint, by endpoint id."),
    (DELAYED, Kind::Gauge, "Items waiting for a retry or deferred in the tenant's active runs."),
    (RATE, Kind::Gauge, "Current send rate of the tenant's fleet-wide budget, requests per second."),
    (CEILING, Kind::Gauge, "Learned rate ceiling of the tenant (adaptive mode), requests per second."),
    (RUN_COMPLETION, Kind::Gauge, "Completion of each active run: succeeded over total, 0 to 1."),
    (ITEMS, Kind::Counter, "Items by outcome (succeeded, failed, retry, deferred) and failure class."),
    (ATTEMPTS, Kind::Counter, "Requests sent to the target, by status class."),
    (ATTEMPT_DURATION, Kind::Histogram, "Latency of requests to the target, seconds."),
    (RATE_LIMITED, Kind::Counter, "429 answers from the target."),
    (LIMITER_WAIT, Kind::Histogram, "Time items waited for a send slot of the rate budget, seconds."),
    (IN_FLIGHT, Kind::Gauge, "Items this worker process holds, running or buffered."),
    (PENDING, Kind::Gauge, "Items pending in the tenant's active runs."),
    (WORKERS_ALIVE, Kind::Gauge, "Worker processes with a live heartbeat."),
    (WORKERS_USABLE, Kind::Gauge, "Worker processes the tenant can keep busy: rate budget times latency over concurrency, capped by backlog."),
    (WEBHOOK_TRIMMED, Kind::Counter, "Webhook events removed by the outbox length cap before every endpoint had them."),
    (BREAKER_OPEN, Kind::Gauge, "1 while this process sees the tenant's circuit breaker open."),
    (TOKEN_REFRESHES, Kind::Counter, "Requests to the token endpoint."),
    (WEBHOOK_DELIVERIES, Kind::Counter, "Webhook deliveries by result (delivered, failed, dropped)."),
    (HTTP_REQUESTS, Kind::Counter, "HTTP requests served, by method, route and status."),
    (HTTP_DURATION, Kind::Histogram, "Latency of HTTP requests served, seconds."),
    (AUTH_FAILURES, Kind::Counter, "Requests refused for a missing or invalid API token."),
    (EXPORTS, Kind::Counter, "Export executions that ended, by state (completed, failed, overdue)."),
    (EXPORT_ROWS, Kind::Counter, "Rows exported by completed export executions."),
    (EXPORT_LATENCY, Kind::Histogram, "Start-to-end time of export executions on the target, seconds."),
    (EXPORT_COMPLETION, Kind::Gauge, "Completed over ended export executions seen by this process, 0 to 1."),
];
