//! The `/_sim/*` control endpoints: stats, ledger, arrivals, the request log, runtime faults and
//! reset (the export controls are in [`crate::exports`]).

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Response, StatusCode};

use crate::config::FaultUpdate;
use crate::reply;
use crate::state::SimState;
use crate::stats::Arrivals;

/// `GET /_sim/stats`.
pub(crate) async fn stats(State(sim): State<Arc<SimState>>) -> Response<Body> {
    reply::json(StatusCode::OK, &sim.counters.snapshot())
}

/// `GET /_sim/ledger`.
pub(crate) async fn ledger(State(sim): State<Arc<SimState>>) -> Response<Body> {
    reply::json(StatusCode::OK, &sim.ledger.snapshot())
}

/// `GET /_sim/arrivals`.
pub(crate) async fn arrivals(State(sim): State<Arc<SimState>>) -> Response<Body> {
    reply::json(StatusCode::OK, &Arrivals { arrivals: sim.arrivals.snapshot() })
}

/// `GET /_sim/requests`: the request log, oldest first.
pub(crate) async fn requests(State(sim): State<Arc<SimState>>) -> Response<Body> {
    reply::json(StatusCode::OK, &sim.requests.snapshot())
}

/// `GET /_sim/faults`: the effective fault settings.
pub(crate) async fn get_faults(State(sim): State<Arc<SimState>>) -> Response<Body> {
    reply::json(StatusCode::OK, &sim.faults().effective(Instant::now()))
}

/// `POST /_sim/faults`: applies a [`FaultUpdate`] and answers the effective settings.
pub(crate) async fn set_faults(State(sim): State<Arc<SimState>>, body: Bytes) -> Response<Body> {
    let update: FaultUpdate = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => return reply::bad_field("invalid_fault_update", "body", &e.to_string()),
    };
    match sim.try_update_faults(&update) {
        Ok(effective) => {
            tracing::info!(?effective, "faults updated");
            reply::json(StatusCode::OK, &effective)
        }
        Err(crate::SimError::InvalidSetting { field, reason }) => reply::bad_field("invalid_fault_update", field, &reason),
        Err(e) => reply::bad_field("invalid_fault_update", "body", &e.to_string()),
    }
}

/// `POST /_sim/reset`: clears stats, ledger, arrivals, `_sim.fail_times` counts, received webhooks,
/// the request log, export executions and report jobs.
pub(crate) async fn reset(State(sim): State<Arc<SimState>>) -> Response<Body> {
    sim.reset();
    reply::static_json(StatusCode::OK, r#"{"reset":true}"#)
}
