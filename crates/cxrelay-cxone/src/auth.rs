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
    /// NICE CXone: OAuth2 password grant with an API user's access key. Form body
    /// `grant_type=password&username=<accessKeyId>&password=<accessKeySecret>` (URL-encoded:
    /// keys end in `=`), client id and secret as HTTP Basic. The token endpoint comes from
    /// `{issuer}/.well-known/openid-configuration` unless given; with `discover_api_base`, the
    /// tenant's API base comes from `{issuer}/.well-known/cxone-configuration?tenantId=…`, the
    /// tenant id read from the token's JWT claims, and is refreshed with every token.
    CxoneAccessKey {
        /// OpenID issuer, e.g. `https://cxone.niceincontact.com`.
        issuer: String,
        /// Token endpoint; `None` = discovered from the issuer.
        token_url: Option<String>,
        /// OAuth client id (Basic user name).
        client_id: String,
        /// OAuth client secret (Basic password).
        client_secret: Secret,
        /// The API user's access key id (`username`).
        access_key_id: String,
        /// The API user's access key secret (`password`).
        access_key_secret: Secret,
        /// Discover the tenant's API base with each token.
        discover_api_base: bool,
    },
}

impl AuthConfig {
    /// The token endpoint, or `None` for a static bearer token.
    pub fn token_url(&self) -> Option<&str> {
        match self {
            AuthConfig::ClientCredentialsForm { token_url, .. } | AuthConfig::ClientCredentialsJson { token_url, .. } => Some(token_url),
            AuthConfig::StaticBearer { .. } => None,
            AuthConfig::CxoneAccessKey { token_url, .. } => token_url.as_deref(),
        }
    }

    /// True when the API base comes with the token (CXone discovery).
    pub fn discovers_api_base(&self) -> bool {
        matches!(self, AuthConfig::CxoneAccessKey { discover_api_base: true, .. })
    }

    /// The secret values of this profile, for redaction.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        match self {
            AuthConfig::ClientCredentialsForm { client_secret, .. } | AuthConfig::ClientCredentialsJson { client_secret, .. } => {
                vec![client_secret.expose()]
            }
            AuthConfig::StaticBearer { token } => vec![token.expose()],
            AuthConfig::CxoneAccessKey { client_secret, access_key_secret, .. } => vec![client_secret.expose(), access_key_secret.expose()],
        }
    }

    /// Checks the profile and parses its token URL (`None` for a static bearer token; the
    /// issuer for CXone without a configured token URL, discovery starts there).
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
            AuthConfig::CxoneAccessKey { issuer, token_url, client_id, access_key_id, .. } => {
                if client_id.is_empty() {
                    return Err(AuthError::Config(format!("client_id is empty: {}", how_to_set("CXRELAY_CLIENT_ID", "target.client_id"))));
                }
                if access_key_id.is_empty() {
                    return Err(AuthError::Config(format!(
                        "access_key_id is empty: {}",
                        how_to_set("CXRELAY_ACCESS_KEY_ID", "target.access_key_id")
                    )));
                }
                let (value, source) = match token_url {
                    Some(t) => (t, TOKEN_URL_SOURCE),
                    None => (issuer, "set by CXRELAY_ISSUER or target.issuer"),
                };
                let url = Url::parse(value).map_err(|e| AuthError::Config(format!("{:?} is not a URL: {e} ({source})", redact(value))))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(AuthError::Config(format!("{:?} is not http(s) ({source})", redact(value))));
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
    /// A discovery document (OpenID, CXone tenant configuration) could not be read.
    #[error("{what} discovery failed: {detail}")]
    Discovery {
        /// Which document.
        what: &'static str,
        /// What went wrong (≤ 300 chars, never quoting a token).
        detail: String,
    },
}

impl AuthError {
    /// The token endpoint's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            AuthError::Rejected { status, .. } | AuthError::InvalidResponse { status, .. } => Some(*status),
            AuthError::Transport { .. } | AuthError::Config(_) | AuthError::Discovery { .. } => None,
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
    /// The tenant's API base, when the auth method discovers it.
    pub api_base: Option<String>,
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

/// Requests one token from `url` (for CXone without a token URL, `url` is the issuer and the
/// endpoint is discovered first); `clock` dates the request (the lifetime counts from it).
pub(crate) async fn request_token(http: &reqwest::Client, url: &Url, auth: &AuthConfig, clock: &Clock) -> Result<IssuedToken, AuthError> {
    let mut issued = token_exchange(http, url, auth, clock).await?;
    if let AuthConfig::CxoneAccessKey { discover_api_base: true, issuer, .. } = auth {
        let tenant = jwt_claim(issued.value.expose(), &["tenantId", "tenant_id", "tenant"]).ok_or_else(|| AuthError::Discovery {
            what: "tenant",
            detail: "the access token is not a JWT with a tenantId claim; set target.api_base (CXRELAY_API_BASE) instead".into(),
        })?;
        issued.api_base = Some(discover_api_base(http, issuer, &tenant).await?);
    }
    Ok(issued)
}

/// One GET of a discovery document (JSON, ≤ 64 KB).
async fn discovery_document(http: &reqwest::Client, what: &'static str, url: Url) -> Result<serde_json::Value, AuthError> {
    let fail = |detail: String| AuthError::Discovery { what, detail: text::excerpt(&text::scrub(&detail, &[])) };
    let shown = redact(url.as_str()).into_owned();
    let resp = http
        .get(url)
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .send()
        .await
        .map_err(|e| fail(format!("{shown}: {}", text::describe(&e))))?;
    let status = resp.status();
    let body = text::read_prefix(resp, MAX_TOKEN_BODY).await;
    if !status.is_success() {
        return Err(fail(format!("{shown} answered HTTP {status}: {}", String::from_utf8_lossy(&body))));
    }
    serde_json::from_slice(&body).map_err(|e| fail(format!("{shown} is not JSON: {e}")))
}

/// `{issuer}/.well-known/{name}`, keeping a path the issuer may have.
fn well_known(issuer: &str, name: &str) -> Result<Url, AuthError> {
    Url::parse(&format!("{}/.well-known/{name}", issuer.trim_end_matches('/')))
        .map_err(|e| AuthError::Config(format!("issuer {:?} is not a URL: {e}", redact(issuer))))
}

/// The token endpoint named by the issuer's OpenID configuration.
async fn discover_token_endpoint(http: &reqwest::Client, issuer: &str) -> Result<Url, AuthError> {
    let doc = discovery_document(http, "OpenID configuration", well_known(issuer, "openid-configuration")?).await?;
    let endpoint = doc
        .get("token_endpoint")
        .and_then(|v| v.as_str())
        .ok_or_else(|| AuthError::Discovery { what: "OpenID configuration", detail: "no token_endpoint in the document".into() })?;
    Url::parse(endpoint).map_err(|e| AuthError::Discovery { what: "OpenID configuration", detail: format!("token_endpoint is not a URL: {e}") })
}

/// The tenant's API base from `{issuer}/.well-known/cxone-configuration?tenantId=…`.
async fn discover_api_base(http: &reqwest::Client, issuer: &str, tenant: &str) -> Result<String, AuthError> {
    let mut url = well_known(issuer, "cxone-configuration")?;
    url.query_pairs_mut().append_pair("tenantId", tenant);
    let doc = discovery_document(http, "CXone tenant configuration", url).await?;
    let base = doc
        .get("api_endpoint")
        .and_then(|v| v.as_str())
        .ok_or_else(|| AuthError::Discovery { what: "CXone tenant configuration", detail: "no api_endpoint in the document".into() })?;
    match Url::parse(base) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(base.trim_end_matches('/').to_owned()),
        _ => Err(AuthError::Discovery { what: "CXone tenant configuration", detail: "api_endpoint is not an http(s) URL".into() }),
    }
}

/// The first of `names` found as a string claim in a JWT's payload (not verified: the token
/// came from the issuer over the connection we chose; only routing depends on it).
pub(crate) fn jwt_claim(token: &str, names: &[&str]) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    names.iter().find_map(|n| match claims.get(*n)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The token request proper.
async fn token_exchange(http: &reqwest::Client, url: &Url, auth: &AuthConfig, clock: &Clock) -> Result<IssuedToken, AuthError> {
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
        AuthConfig::CxoneAccessKey { token_url, client_id, client_secret, access_key_id, access_key_secret, issuer, .. } => {
            let endpoint = match token_url {
                Some(_) => url.clone(),
                None => discover_token_endpoint(http, issuer).await?,
            };
            http.post(endpoint).basic_auth(client_id, Some(client_secret.expose())).form(&[
                ("grant_type", "password"),
                ("username", access_key_id.as_str()),
                ("password", access_key_secret.expose()),
            ])
        }
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
    Ok(IssuedToken { value: parsed.access_token, header, requested_at, lifetime, api_base: None })
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
    fn tenant_claim_from_a_jwt() {
        use base64::Engine as _;
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let jwt = format!("{}.{}.sig", enc(r#"{"alg":"HS256"}"#), enc(r#"{"tenantId":"t-1","exp":1}"#));
        assert_eq!(jwt_claim(&jwt, &["tenantId"]).as_deref(), Some("t-1"));
        assert_eq!(jwt_claim(&jwt, &["nope"]), None);
        assert_eq!(jwt_claim("opaque-token", &["tenantId"]), None);
        assert_eq!(jwt_claim("a.!!!.c", &["tenantId"]), None);
    }

    #[test]
    fn bearer_header_is_sensitive() {
        let h = bearer_header("abc").unwrap();
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().unwrap(), "Bearer abc");
        assert!(!format!("{h:?}").contains("abc"));
    }
}
