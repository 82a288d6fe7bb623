//! Authentication profiles ([`AuthConfig`]), the token endpoint exchange and its errors
//! ([`AuthError`]).
//!
//! This module owns *how one token is obtained*: building the token request for a profile,
//! sending it, and turning the answer into a token value and lifetime. Caching, refresh timing
//! and single-flight live in [`crate::token`].
//!
//! Errors never carry a secret: token endpoint bodies and transport errors are scrubbed (the
//! client secret, and anything shaped like a credential, see [`cxrelay_core::redact`]) and cut
//! to 300 characters; configured URLs are shown redacted; a 2xx body that cannot be parsed is
//! never quoted (it may hold a token).

use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, ACCEPT};
use reqwest::Url;
use serde::Deserialize;

use crate::client::{classify, TransportError};
use crate::text;
use crate::token::Clock;
use cxrelay_core::redact::redact;
use cxrelay_core::Secret;

/// Lifetime assumed when a token response has no `expires_in` (CXone tokens live 3600 s).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Longest lifetime believed from `expires_in`; larger values are clamped to it.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Largest token response body read.
const MAX_TOKEN_BODY: usize = 64 * 1024;

/// Where a token URL comes from, for messages about a bad one.
const TOKEN_URL_SOURCE: &str = "set by CXRELAY_TOKEN_URL or target.token_url; unset, it is {api_base}/oauth/token";

/// The remedy for an empty setting: the environment variable and the settings-file key of
/// `cxrelay`, which is where a person sets them (this crate reads neither).
fn how_to_set(var: &str, key: &str) -> String {
    format!("set {var} (or {key} in the settings file)")
}

/// How the client authenticates against the target API.
#[derive(Clone, Debug)]
pub enum AuthConfig {
    /// OAuth2 client credentials, `client_secret_basic`: form body
    /// `grant_type=client_credentials&scope=…`, client id and secret as HTTP Basic.
    ClientCredentialsForm {
        /// Token endpoint, e.g. `https://auth.example.com/oauth/token`.
        token_url: String,
        /// OAuth client id (sent as the Basic user name).
        client_id: String,
        /// OAuth client secret (sent as the Basic password).
        client_secret: Secret,
        /// Space-separated scopes; omitted from the request when empty.
        scope: String,
    },
    /// OAuth2 client credentials with a JSON body
    /// `{grant_type: "client_credentials", client_id, client_secret, scope}`.
    ClientCredentialsJson {
        /// Token endpoint.
        token_url: String,
        /// OAuth client id.
        client_id: String,
        /// OAuth client secret.
        client_secret: Secret,
        /// Space-separated scopes; omitted from the body when empty.
        scope: String,
    },
    /// A fixed bearer token (no token endpoint; it cannot be refreshed, so a 401 is final).
    StaticBearer {
        /// The bearer token.
        token: Secret,
    },
    // Room for the real CXone profile: OAuth2 *password grant with an access
    // key*, `POST {issuer}/auth/token` with form body
    // `grant_type=password&username=<accessKeyId>&password=<accessKeySecret>` (URL-encoded: keys
    // end in `=`), client id/secret as Basic; issuer found through
    // `/.well-known/openid-configuration`, then the tenant's `api_endpoint` through
    // `/.well-known/cxone-configuration?tenantId=…` (tenantId from the JWT claims). It would be
    // a variant like `CxoneAccessKey { issuer, client_id, client_secret: Secret,
    // access_key_id, access_key_secret: Secret }` plus a discovery step in `TargetClient::new`.
}

impl AuthConfig {
    /// The token endpoint, or `None` for a static bearer token.
    pub fn token_url(&self) -> Option<&str> {
        match self {
            AuthConfig::ClientCredentialsForm { token_url, .. } | AuthConfig::ClientCredentialsJson { token_url, .. } => Some(token_url),
            AuthConfig::StaticBearer { .. } => None,
        }
    }

    /// The secret values of this profile, for redaction.
    pub(crate) fn secrets(&self) -> [&str; 1] {
        match self {
            AuthConfig::ClientCredentialsForm { client_secret, .. } | AuthConfig::ClientCredentialsJson { client_secret, .. } => {
                [client_secret.expose()]
            }
            AuthConfig::StaticBearer { token } => [token.expose()],
        }
    }

    /// Checks the profile and parses its token URL (`None` for a static bearer token).
    pub(crate) fn validate(&self) -> Result<Option<Url>, AuthError> {
        match self {
            AuthConfig::StaticBearer { token } => {
                if token.is_empty() {
                    return Err(AuthError::Config(format!("static bearer token is empty: {}", how_to_set("CXRELAY_TOKEN", "target.token"))));
                }
                bearer_header(token.expose()).map_err(|_| {
                    AuthError::Config(
                        "static bearer token contains characters not allowed in a header (look \
                         for a stray newline in CXRELAY_TOKEN or target.token)"
                            .into(),
                    )
                })?;
                Ok(None)
            }
            AuthConfig::ClientCredentialsForm { token_url, client_id, .. } | AuthConfig::ClientCredentialsJson { token_url, client_id, .. } => {
                if client_id.is_empty() {
                    return Err(AuthError::Config(format!("client_id is empty: {}", how_to_set("CXRELAY_CLIENT_ID", "target.client_id"))));
                }
                // The URL may carry credentials (userinfo, `?client_secret=`): show it redacted.
                let url = Url::parse(token_url)
                    .map_err(|e| AuthError::Config(format!("token_url {:?} is not a URL: {e} ({})", redact(token_url), TOKEN_URL_SOURCE)))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(AuthError::Config(format!("token_url {:?} is not http(s) ({})", redact(token_url), TOKEN_URL_SOURCE)));
                }
                Ok(Some(url))
            }
        }
    }
}

/// Why a token could not be obtained. Never contains a secret; body excerpts are ≤ 300 chars.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint answered with a non-2xx status.
    #[error("token endpoint answered HTTP {status}: {body}")]
    Rejected {
        /// HTTP status of the token endpoint.
        status: u16,
        /// Excerpt of the response body (≤ 300 chars, client secret and credentials redacted).
        body: String,
    },
    /// The token endpoint could not be reached or did not answer in time.
    #[error("token endpoint unreachable ({kind}): {detail}")]
    Transport {
        /// Classification of the transport failure.
        kind: TransportError,
        /// Description of the cause (≤ 300 chars, credentials redacted).
        detail: String,
    },
    /// The token endpoint answered 2xx but the body was not a usable token response.
    #[error("unusable token response (HTTP {status}): {detail}")]
    InvalidResponse {
        /// HTTP status of the token endpoint.
        status: u16,
        /// What was wrong (never quotes the body).
        detail: String,
    },
    /// The auth configuration is invalid (found at construction).
    #[error("invalid auth configuration: {0}")]
    Config(String),
}

impl AuthError {
    /// The token endpoint's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            AuthError::Rejected { status, .. } | AuthError::InvalidResponse { status, .. } => Some(*status),
            AuthError::Transport { .. } | AuthError::Config(_) => None,
        }
    }

    /// The transport failure class, when the token endpoint was not reached.
    pub fn transport(&self) -> Option<TransportError> {
        match self {
            AuthError::Transport { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// The token endpoint's answer: `{access_token, token_type, expires_in}`.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<Lifetime>,
}

/// `expires_in` as a number of seconds, tolerating floats and numeric strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Lifetime {
    Int(u64),
    Float(f64),
    Text(String),
}

impl Lifetime {
    fn seconds(&self) -> Option<Duration> {
        let secs = match self {
            Lifetime::Int(n) => *n as f64,
            Lifetime::Float(f) => *f,
            Lifetime::Text(s) => s.trim().parse::<f64>().ok()?,
        };
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        Some(Duration::from_secs_f64(secs.min(MAX_TOKEN_LIFETIME.as_secs_f64())))
    }
}

/// A token fresh from the endpoint.
pub(crate) struct IssuedToken {
    /// The access token.
    pub value: Secret,
    /// `Authorization: Bearer …` header value, marked sensitive.
    pub header: HeaderValue,
    /// When the request was sent (the lifetime counts from here, conservatively).
    pub requested_at: Instant,
    /// The lifetime the endpoint granted.
    pub lifetime: Duration,
}

/// Builds the sensitive `Bearer …` header value for a token.
pub(crate) fn bearer_header(token: &str) -> Result<HeaderValue, ()> {
    let mut value = String::with_capacity(7 + token.len());
    value.push_str("Bearer ");
    value.push_str(token);
    let mut header = HeaderValue::from_str(&value).map_err(|_| ())?;
    header.set_sensitive(true);
    Ok(header)
}

/// Requests one token for a client-credentials profile from `url`; `clock` dates the request
/// (the token's lifetime counts from it).
pub(crate) async fn request_token(http: &reqwest::Client, url: &Url, auth: &AuthConfig, clock: &Clock) -> Result<IssuedToken, AuthError> {
    let request = match auth {
        AuthConfig::ClientCredentialsForm { client_id, client_secret, scope, .. } => {
            let builder = http.post(url.clone()).basic_auth(client_id, Some(client_secret.expose()));
            if scope.is_empty() {
                builder.form(&[("grant_type", "client_credentials")])
            } else {
                builder.form(&[("grant_type", "client_credentials"), ("scope", scope)])
            }
        }
        AuthConfig::ClientCredentialsJson { client_id, client_secret, scope, .. } => {
            let mut body = serde_json::Map::with_capacity(4);
            body.insert("grant_type".into(), "client_credentials".into());
            body.insert("client_id".into(), client_id.as_str().into());
            body.insert("client_secret".into(), client_secret.expose().into());
            if !scope.is_empty() {
                body.insert("scope".into(), scope.as_str().into());
            }
            http.post(url.clone()).json(&body)
        }
        AuthConfig::StaticBearer { .. } => return Err(AuthError::Config("a static bearer token has no token endpoint".into())),
    };
    let secrets = auth.secrets();
    let requested_at = clock.now();
    let resp = request
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .send()
        .await
        .map_err(|e| AuthError::Transport { kind: classify(&e), detail: text::excerpt(&text::scrub(&text::describe(&e), &secrets)) })?;
    let status = resp.status();
    if !status.is_success() {
        let body = text::read_prefix(resp, 4 * 1024).await;
        // Scrubbed before the cut, so a secret straddling the 300th character is still seen.
        let body = text::scrub(&String::from_utf8_lossy(&body), &secrets);
        let body = if body.trim().is_empty() { status.canonical_reason().unwrap_or("no body").to_owned() } else { text::excerpt(&body) };
        return Err(AuthError::Rejected { status: status.as_u16(), body });
    }
    let status = status.as_u16();
    let body = text::read_prefix(resp, MAX_TOKEN_BODY + 1).await;
    if body.len() > MAX_TOKEN_BODY {
        return Err(AuthError::InvalidResponse { status, detail: format!("body larger than {MAX_TOKEN_BODY} bytes") });
    }
    let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
        // serde_json messages can quote values; only the shape of the problem is reported.
        let detail = if e.to_string().starts_with("missing field") {
            e.to_string()
        } else {
            format!("not the expected JSON ({:?} error at line {} column {})", e.classify(), e.line(), e.column())
        };
        AuthError::InvalidResponse { status, detail }
    })?;
    if parsed.access_token.is_empty() {
        return Err(AuthError::InvalidResponse { status, detail: "access_token is empty".into() });
    }
    if let Some(kind) = parsed.token_type.as_deref() {
        if !kind.eq_ignore_ascii_case("bearer") {
            tracing::debug!(token_type = kind, "token endpoint issued a non-Bearer token type; sending it as Bearer");
        }
    }
    let lifetime = match &parsed.expires_in {
        None => DEFAULT_TOKEN_LIFETIME,
        Some(l) => {
            l.seconds().ok_or_else(|| AuthError::InvalidResponse { status, detail: "expires_in is not a non-negative number of seconds".into() })?
        }
    };
    let header = bearer_header(parsed.access_token.expose())
        .map_err(|_| AuthError::InvalidResponse { status, detail: "access_token contains characters not allowed in an HTTP header".into() })?;
    Ok(IssuedToken { value: parsed.access_token, header, requested_at, lifetime })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetime_parsing() {
        let l: Lifetime = serde_json::from_str("3600").unwrap();
        assert_eq!(l.seconds(), Some(Duration::from_secs(3600)));
        let l: Lifetime = serde_json::from_str("\"120\"").unwrap();
        assert_eq!(l.seconds(), Some(Duration::from_secs(120)));
        let l: Lifetime = serde_json::from_str("1.5").unwrap();
        assert_eq!(l.seconds(), Some(Duration::from_millis(1500)));
        let l: Lifetime = serde_json::from_str("-3").unwrap();
        assert_eq!(l.seconds(), None);
        let l: Lifetime = serde_json::from_str("99999999999999").unwrap();
        assert_eq!(l.seconds(), Some(MAX_TOKEN_LIFETIME));
    }

    #[test]
    fn validate_rejects_bad_urls_without_leaking() {
        let auth = AuthConfig::ClientCredentialsForm {
            token_url: "not a url".into(),
            client_id: "id".into(),
            client_secret: Secret::new("topsecret"),
            scope: String::new(),
        };
        let err = auth.validate().unwrap_err();
        assert!(!err.to_string().contains("topsecret"));
        // Credentials in the URL itself are not shown either.
        for token_url in ["ftp://id:url-pw@auth.example.com/token", "https://auth example.com/token?client_secret=url-pw"] {
            let auth = AuthConfig::ClientCredentialsJson {
                token_url: token_url.into(),
                client_id: "id".into(),
                client_secret: Secret::new("topsecret"),
                scope: String::new(),
            };
            let err = auth.validate().unwrap_err().to_string();
            assert!(!err.contains("url-pw"), "{err}");
            assert!(err.contains("[redacted]"), "{err}");
        }
        let auth = AuthConfig::StaticBearer { token: Secret::new("bad\ntoken") };
        let err = auth.validate().unwrap_err();
        assert!(!err.to_string().contains("bad\ntoken"));
    }

    #[test]
    fn empty_credentials_say_how_to_set_them() {
        for auth in [
            AuthConfig::ClientCredentialsForm {
                token_url: "http://127.0.0.1:1/oauth/token".into(),
                client_id: String::new(),
                client_secret: Secret::new("s"),
                scope: String::new(),
            },
            AuthConfig::ClientCredentialsJson {
                token_url: "http://127.0.0.1:1/oauth/token".into(),
                client_id: String::new(),
                client_secret: Secret::new("s"),
                scope: String::new(),
            },
        ] {
            let err = auth.validate().unwrap_err().to_string();
            assert!(err.contains("client_id is empty") && err.contains("CXRELAY_CLIENT_ID") && err.contains("target.client_id"), "{err}");
        }
        let auth = AuthConfig::StaticBearer { token: Secret::default() };
        let err = auth.validate().unwrap_err().to_string();
        assert!(err.contains("token is empty") && err.contains("CXRELAY_TOKEN") && err.contains("target.token"), "{err}");
        let auth = AuthConfig::ClientCredentialsForm {
            token_url: "ftp://auth.example.com/token".into(),
            client_id: "id".into(),
            client_secret: Secret::new("s"),
            scope: String::new(),
        };
        let err = auth.validate().unwrap_err().to_string();
        assert!(err.contains("CXRELAY_TOKEN_URL"), "{err}");
    }

    #[test]
    fn bearer_header_is_sensitive() {
        let h = bearer_header("abc").unwrap();
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().unwrap(), "Bearer abc");
        assert!(!format!("{h:?}").contains("abc"));
    }
}
