//! The CXone token endpoint `POST /auth/token`: the OAuth2 password grant with an API user's access
//! key (`username` = access key id, `password` = access key secret, URL-encoded since real secrets end
//! in `=`), the client authenticated by HTTP Basic or by `client_id`/`client_secret` fields (form or
//! JSON body). `client_credentials` is accepted too, as the discovery document advertises it.
//!
//! Tokens are HS256 JWTs carrying `iss`, `sub`, `iat`, `exp` and `tenantId` (see [`crate::jwt`]),
//! registered in the same token store as the seed's tokens so every execute route accepts them;
//! they carry the execute permission (on CXone permissions come from the user's roles, not scopes).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::auth::{basic_credentials, ct_eq};
use crate::jwt::Claims;
use crate::reply;
use crate::reqlog::RequestRoute;
use crate::state::SimState;

/// Fields of a token request, from either a form or a JSON body.
#[derive(Debug, Default, Deserialize)]
struct PasswordRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    /// Where the tenant's APIs live (older CXone token answers carry it).
    resource_server_base_uri: String,
}

/// `POST /auth/token`; with the `echo_headers` fault on, error answers echo the request headers.
pub(crate) async fn token(State(sim): State<Arc<SimState>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response<Body> {
    crate::auth::logged_token_request(&sim, RequestRoute::CxoneToken, (&method, &uri, &headers, &body), answer).await
}

/// The answer to one token request.
fn answer(sim: &SimState, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    sim.counters.token_requests.fetch_add(1, Relaxed);
    let is_json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
    let parsed: Result<PasswordRequest, ()> =
        if is_json { serde_json::from_slice(body).map_err(|_| ()) } else { serde_urlencoded::from_bytes(body).map_err(|_| ()) };
    let Ok(req) = parsed else {
        return reply::static_json(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request","error_description":"malformed token request body"}"#);
    };

    let basic = basic_credentials(headers);
    let (id, secret) = match &basic {
        Some((id, secret)) => (Some(id.as_str()), Some(secret.as_str())),
        None => (req.client_id.as_deref(), req.client_secret.as_deref()),
    };
    let client_ok = matches!((id, secret), (Some(id), Some(secret))
        if ct_eq(id, &sim.config.client_id) & ct_eq(secret, sim.config.client_secret.expose()));
    if !client_ok {
        let mut res = reply::static_json(StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#);
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="cxrelay-sim""#));
        return res;
    }
    let subject = match req.grant_type.as_deref() {
        Some("password") => {
            let key_ok = matches!((req.username.as_deref(), req.password.as_deref()), (Some(user), Some(pass))
                if ct_eq(user, &sim.config.access_key_id) & ct_eq(pass, sim.config.access_key_secret.expose()));
            if !key_ok {
                return reply::static_json(
                    StatusCode::BAD_REQUEST,
                    r#"{"error":"invalid_grant","error_description":"unknown access key or wrong access key secret"}"#,
                );
            }
            format!("user:{}", sim.config.access_key_id)
        }
        Some("client_credentials") => format!("client:{}", sim.config.client_id),
        None => return reply::static_json(StatusCode::BAD_REQUEST, r#"{"error":"invalid_request","error_description":"grant_type is required"}"#),
        Some(_) => return reply::static_json(StatusCode::BAD_REQUEST, r#"{"error":"unsupported_grant_type"}"#),
    };

    let lifetime = sim.config.token_lifetime;
    let expires_in = lifetime.as_secs().max(1);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let jti = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
    let access_token = sim.jwt.mint(&Claims {
        iss: &sim.base_url,
        sub: &subject,
        aud: "cxrelay-sim",
        iat: now,
        nbf: now,
        exp: now.saturating_add(expires_in),
        jti: &jti,
        tenant_id: &sim.config.tenant_id,
        token_type: if subject.starts_with("user:") { "user" } else { "client" },
    });
    sim.tokens.register(access_token.clone(), lifetime, true);
    sim.counters.tokens_issued.fetch_add(1, Relaxed);
    let res = TokenResponse { access_token: &access_token, token_type: "Bearer", expires_in, resource_server_base_uri: format!("{}/", sim.base_url) };
    reply::json(StatusCode::OK, &res)
}
