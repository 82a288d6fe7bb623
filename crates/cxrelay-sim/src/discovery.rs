//! CXone discovery documents: `GET /.well-known/openid-configuration` (where the token endpoint is)
//! and `GET /.well-known/cxone-configuration?tenantId=…` (where a tenant's APIs are). Every endpoint
//! they name is the simulator itself, so a client that follows discovery stays on it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri};
use serde::{Deserialize, Serialize};

use crate::reply;
use crate::reqlog::RequestRoute;
use crate::state::SimState;

#[derive(Serialize)]
struct OpenIdConfiguration {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    userinfo_endpoint: String,
    grant_types_supported: [&'static str; 2],
    response_types_supported: [&'static str; 2],
    token_endpoint_auth_methods_supported: [&'static str; 2],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: [&'static str; 1],
    scopes_supported: [&'static str; 2],
}

#[derive(Serialize)]
struct CxoneConfiguration<'a> {
    api_endpoint: &'a str,
    ui_endpoint: &'a str,
    auth_endpoint: &'a str,
    area: &'static str,
    #[serde(rename = "tenantId")]
    tenant_id: &'a str,
}

#[derive(Deserialize)]
struct TenantQuery {
    #[serde(rename = "tenantId")]
    tenant_id: Option<String>,
}

/// `GET /.well-known/openid-configuration`.
pub(crate) async fn openid(State(sim): State<Arc<SimState>>, method: Method, uri: Uri, headers: HeaderMap) -> Response<Body> {
    let capture = sim.requests.capture(RequestRoute::OpenidConfiguration, &method, &uri, &headers, sim.clock.millis_now());
    let base = &sim.base_url;
    let doc = OpenIdConfiguration {
        issuer: base.clone(),
        authorization_endpoint: format!("{base}/auth/authorize"),
        token_endpoint: format!("{base}/auth/token"),
        jwks_uri: format!("{base}/.well-known/jwks"),
        userinfo_endpoint: format!("{base}/auth/userinfo"),
        grant_types_supported: ["password", "client_credentials"],
        response_types_supported: ["code", "token"],
        token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["HS256"],
        scopes_supported: ["openid", "offline_access"],
    };
    let res = reply::json(StatusCode::OK, &doc);
    if let Some(capture) = capture {
        sim.requests.push(capture, None, res.status().as_u16());
    }
    res
}

/// `GET /.well-known/cxone-configuration?tenantId=…`: 400 without a tenant id, 404 for another tenant.
pub(crate) async fn cxone(State(sim): State<Arc<SimState>>, method: Method, uri: Uri, headers: HeaderMap) -> Response<Body> {
    let capture = sim.requests.capture(RequestRoute::CxoneConfiguration, &method, &uri, &headers, sim.clock.millis_now());
    let res = cxone_answer(&sim, uri.query());
    if let Some(capture) = capture {
        sim.requests.push(capture, None, res.status().as_u16());
    }
    res
}

fn cxone_answer(sim: &SimState, query: Option<&str>) -> Response<Body> {
    let tenant = serde_urlencoded::from_str::<TenantQuery>(query.unwrap_or("")).ok().and_then(|q| q.tenant_id).filter(|t| !t.trim().is_empty());
    let Some(tenant) = tenant else {
        return reply::bad_field("invalid_request", "tenantId", "the tenantId query parameter is required");
    };
    if !tenant.trim().eq_ignore_ascii_case(&sim.config.tenant_id) {
        return reply::static_json(StatusCode::NOT_FOUND, r#"{"error":"tenant_not_found","message":"no tenant with this tenantId"}"#);
    }
    let base = &sim.base_url;
    reply::json(
        StatusCode::OK,
        &CxoneConfiguration { api_endpoint: base, ui_endpoint: base, auth_endpoint: base, area: "sim1", tenant_id: &sim.config.tenant_id },
    )
}
