//! Target profiles: what `target.profile = "seed" | "cxone" | "genesys" | "custom"` means.
//!
//! A profile is a set of defaults for the settings that differ between the APIs people run
//! (see `API-NOTES.md`): auth method, token endpoint, API base, execute path, body shape, extra
//! headers, payload limit, rate limit, which statuses' `Retry-After` is believed, and how CSV
//! export executions are submitted and completed. Every default is overridable; [`resolve`]
//! turns the settings into one [`Target`] with nothing left open, or names the missing setting
//! and its environment variable. Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{AuthMode, ConfigError, Settings};
use crate::payload::{BodyShape, MAX_PAYLOAD_BYTES};
use crate::secret::Secret;

/// Which API the target speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// The tutorials' shape (the bundled simulator's): client credentials, envelope bodies.
    #[default]
    Seed,
    /// Real NICE CXone: access-key password grant, discovered token endpoint and API base.
    Cxone,
    /// Genesys Cloud Data Actions: client credentials, flat bodies, ~300 requests/minute.
    Genesys,
    /// Anything else: API base and execute path must be given.
    Custom,
}

impl Profile {
    /// The profile's name as settings spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Seed => "seed",
            Profile::Cxone => "cxone",
            Profile::Genesys => "genesys",
            Profile::Custom => "custom",
        }
    }

    /// The body shape this profile sends unless configured otherwise.
    pub fn body(self) -> BodyShape {
        defaults(self).body
    }

    /// The payload limit of this profile unless configured otherwise.
    pub fn max_payload_bytes(self) -> usize {
        defaults(self).max_payload_bytes
    }
}

/// How an export execution's completion is learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportCompletion {
    /// The target calls `POST /v1/callbacks/export` (signed) when it is done.
    Callback,
    /// Workers poll the status endpoint until a terminal state.
    Poll,
}

impl ExportCompletion {
    /// The mode's name as settings spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportCompletion::Callback => "callback",
            ExportCompletion::Poll => "poll",
        }
    }
}

/// A list setting written either as a TOML array or as comma-separated text (which is how an
/// environment variable gives it); stored as text so both layer the same way.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CommaList(pub Vec<String>);

impl CommaList {
    /// A list of the given words.
    pub fn of(words: &[&str]) -> Self {
        CommaList(words.iter().map(|w| (*w).to_owned()).collect())
    }
}

impl fmt::Display for CommaList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

impl Serialize for CommaList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for CommaList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            Items(Vec<toml::Value>),
        }
        let words: Vec<String> = match Form::deserialize(d)? {
            Form::Text(t) => t.split(',').map(str::to_owned).collect(),
            Form::Items(items) => items.into_iter().map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())).collect(),
        };
        Ok(CommaList(words.into_iter().map(|w| w.trim().to_owned()).filter(|w| !w.is_empty()).collect()))
    }
}

/// The CXone issuer used when none is configured (commercial cloud).
pub const CXONE_ISSUER: &str = "https://cxone.niceincontact.com";
/// Where CXone's versioned REST APIs live under the tenant's API endpoint.
pub const CXONE_SERVICES: &str = "/incontactapi/services/v33.0";

/// The defaults one profile gives; `None` where the profile has no sensible default.
struct Defaults {
    auth: AuthMode,
    api_base: Option<&'static str>,
    issuer: Option<&'static str>,
    scope: &'static str,
    execute_path: Option<&'static str>,
    body: BodyShape,
    headers: &'static [(&'static str, &'static str)],
    max_payload_bytes: usize,
    rate: Option<f64>,
    retry_after_statuses: &'static [u16],
    export: ExportDefaults,
}

struct ExportDefaults {
    submit_path: &'static str,
    completion: ExportCompletion,
    status_path: &'static str,
    execution_id_field: &'static str,
    status_field: &'static str,
    rows_field: &'static str,
    start_field: &'static str,
    end_field: &'static str,
    completed_states: &'static [&'static str],
    failed_states: &'static [&'static str],
}

const SEED_EXPORT: ExportDefaults = ExportDefaults {
    submit_path: "/api/v2/dataprep/dataactions/{dataAction}/executions",
    completion: ExportCompletion::Callback,
    status_path: "/api/v2/dataprep/dataactions/{dataAction}/executions/{execution}",
    execution_id_field: "/executionId",
    status_field: "/status",
    rows_field: "/rowsExported",
    start_field: "/startTime",
    end_field: "/endTime",
    completed_states: &["completed"],
    failed_states: &["failed", "cancelled", "canceled", "error"],
};

fn defaults(profile: Profile) -> Defaults {
    let seed = Defaults {
        auth: AuthMode::ClientCredentialsForm,
        api_base: Some("http://127.0.0.1:8089"),
        issuer: None,
        scope: "datapoint:actions:execute datapoint:actions:read",
        execute_path: Some("/api/v1/datapoint/actions/{action}/execute"),
        body: BodyShape::Envelope,
        headers: &[],
        max_payload_bytes: MAX_PAYLOAD_BYTES,
        rate: None,
        retry_after_statuses: &[429, 503],
        export: SEED_EXPORT,
    };
    match profile {
        Profile::Seed => seed,
        Profile::Cxone => Defaults {
            auth: AuthMode::CxoneAccessKey,
            // Discovered per tenant from the token's tenantId claim.
            api_base: None,
            issuer: Some(CXONE_ISSUER),
            scope: "",
            execute_path: Some("/incontactapi/services/v33.0/data-actions/{action}/execute"),
            body: BodyShape::Flat,
            headers: &[("Accept", "application/json")],
            max_payload_bytes: MAX_PAYLOAD_BYTES,
            rate: None,
            // CXone may send Retry-After on a 429; it is not counted on (pause_ms covers it).
            retry_after_statuses: &[429],
            export: ExportDefaults {
                submit_path: "/incontactapi/services/v33.0/report-jobs/{dataAction}",
                completion: ExportCompletion::Poll,
                status_path: "/incontactapi/services/v33.0/report-jobs/{execution}",
                execution_id_field: "/jobId",
                status_field: "/jobResult/state",
                rows_field: "/jobResult/rowsExported",
                start_field: "/jobResult/startTime",
                end_field: "/jobResult/endTime",
                completed_states: &["finished", "completed"],
                failed_states: &["failed", "cancelled", "canceled"],
            },
        },
        Profile::Genesys => Defaults {
            auth: AuthMode::ClientCredentialsForm,
            api_base: None,
            issuer: None,
            scope: "",
            execute_path: Some("/api/v2/integrations/actions/{action}/execute"),
            body: BodyShape::Flat,
            headers: &[],
            max_payload_bytes: MAX_PAYLOAD_BYTES,
            // About 300 requests per minute per token.
            rate: Some(5.0),
            retry_after_statuses: &[429],
            export: SEED_EXPORT,
        },
        Profile::Custom => Defaults { api_base: None, execute_path: None, ..seed },
    }
}

/// Everything the client needs to reach the target, profile defaults applied.
#[derive(Clone, Debug)]
pub struct Target {
    /// The profile these values came from.
    pub profile: Profile,
    /// API base; `None` when it is discovered from the token (CXone).
    pub api_base: Option<String>,
    /// Token endpoint; `None` when discovered (CXone) or not used (static bearer).
    pub token_url: Option<String>,
    /// OpenID issuer (CXone access keys).
    pub issuer: Option<String>,
    /// How the bearer token is obtained.
    pub auth: AuthMode,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: Secret,
    /// CXone access key id.
    pub access_key_id: String,
    /// CXone access key secret.
    pub access_key_secret: Secret,
    /// Static bearer token.
    pub token: Secret,
    /// Scopes requested.
    pub scope: String,
    /// Execute path template with `{action}`.
    pub execute_path: String,
    /// How the body wraps an item.
    pub body: BodyShape,
    /// Extra headers sent with every API request.
    pub headers: Vec<(String, String)>,
    /// Largest request body, bytes.
    pub max_payload_bytes: usize,
    /// Statuses whose `Retry-After` header is believed.
    pub retry_after_statuses: Vec<u16>,
    /// Per-request timeout, ms.
    pub request_timeout_ms: u64,
    /// The tenant's rate when `rate_limit.rate` is not set (`None`: discover it).
    pub default_rate: Option<f64>,
    /// How export executions are submitted and completed.
    pub exports: ExportTarget,
}

/// The export side of a [`Target`].
#[derive(Clone, Debug)]
pub struct ExportTarget {
    /// Submit path template with `{dataAction}`.
    pub submit_path: String,
    /// Callback or polling.
    pub completion: ExportCompletion,
    /// Status path template with `{execution}` (and optionally `{dataAction}`).
    pub status_path: String,
    /// JSON pointer to the execution id in the submit answer.
    pub execution_id_field: String,
    /// JSON pointer to the state in a status answer.
    pub status_field: String,
    /// JSON pointer to the exported rows in a status answer.
    pub rows_field: String,
    /// JSON pointer to the start time (RFC 3339) in a status answer.
    pub start_field: String,
    /// JSON pointer to the end time (RFC 3339) in a status answer.
    pub end_field: String,
    /// States meaning done and successful (compared case-insensitively).
    pub completed_states: Vec<String>,
    /// States meaning done and failed (compared case-insensitively).
    pub failed_states: Vec<String>,
}

impl ExportTarget {
    /// Whether `state` is terminal, and if so whether it succeeded.
    pub fn terminal(&self, state: &str) -> Option<bool> {
        let is = |list: &[String]| list.iter().any(|s| s.eq_ignore_ascii_case(state.trim()));
        if is(&self.completed_states) {
            Some(true)
        } else if is(&self.failed_states) {
            Some(false)
        } else {
            None
        }
    }
}

/// How the reason of a missing required setting starts (settings validation skips those:
/// only commands that talk to the target need them).
pub const REQUIRED: &str = "required by profile";

/// The error for a setting the profile needs and nobody gave: its key and variable.
fn missing(profile: Profile, key: &'static str, why: &str) -> ConfigError {
    let var = crate::config::env_vars().iter().find(|v| v.key == key).map_or("", |v| v.name);
    ConfigError::Invalid { key, reason: format!("{REQUIRED} {}: {why}; set {var} (or {key} in the settings file)", profile.as_str()) }
}

/// Checks a path template: starts with `/`, each named placeholder present exactly once.
fn check_template(key: &'static str, template: &str, required: &[&str]) -> Result<(), ConfigError> {
    let bad = |reason: String| ConfigError::Invalid { key, reason };
    if !template.starts_with('/') {
        return Err(bad(format!("{template:?} must start with /")));
    }
    for name in required {
        let placeholder = format!("{{{name}}}");
        match template.matches(&placeholder).count() {
            1 => {}
            0 => return Err(bad(format!("{template:?} must contain the {placeholder} placeholder"))),
            _ => return Err(bad(format!("{template:?} must contain {placeholder} only once"))),
        }
    }
    Ok(())
}

/// Checks a JSON pointer setting (`""` or `/a/b`).
fn check_pointer(key: &'static str, pointer: &str) -> Result<(), ConfigError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(ConfigError::Invalid { key, reason: format!("{pointer:?} is not a JSON pointer (write it as /field or /outer/field)") })
    }
}

/// The host part of an http(s) URL, if it has one (enough to derive Genesys' login host).
fn host_of(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// Header names and values as HTTP allows them (visible ASCII, no CR/LF).
fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, value) in headers {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            return Err(ConfigError::Invalid { key: "target.headers", reason: format!("{name:?} is not a valid header name") });
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ConfigError::Invalid { key: "target.headers", reason: format!("the value of {name} contains a control character") });
        }
        if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("idempotency-key") {
            return Err(ConfigError::Invalid { key: "target.headers", reason: format!("{name} is set by cxrelay itself") });
        }
    }
    Ok(())
}

/// Resolves the target settings with their profile's defaults; fails naming the first setting
/// the profile needs and does not have (with its environment variable).
pub fn resolve(settings: &Settings) -> Result<Target, ConfigError> {
    let t = &settings.target;
    let profile = t.profile;
    let d = defaults(profile);
    let auth = t.auth.unwrap_or(d.auth);
    let api_base = t.api_base.clone().filter(|b| !b.trim().is_empty()).or_else(|| d.api_base.map(str::to_owned)).or_else(|| match profile {
        Profile::Genesys => t.region.as_deref().map(|r| format!("https://api.{}", r.trim())),
        _ => None,
    });
    let discovers_base = auth == AuthMode::CxoneAccessKey;
    if api_base.is_none() && !discovers_base {
        let why = match profile {
            Profile::Genesys => "the API base, or the region it is derived from (target.region, e.g. mypurecloud.com)",
            _ => "the base URL of the API",
        };
        return Err(missing(profile, "target.api_base", why));
    }
    let execute_path = t.execute_path.clone().or_else(|| d.execute_path.map(str::to_owned));
    let Some(execute_path) = execute_path else {
        return Err(missing(profile, "target.execute_path", "the execute path template, with {action}"));
    };
    check_template("target.execute_path", &execute_path, &["action"])?;
    let issuer = t.issuer.clone().or_else(|| d.issuer.map(str::to_owned));
    let token_url = match (&t.token_url, auth) {
        (Some(url), _) => Some(url.clone()),
        (None, AuthMode::StaticBearer) => None,
        // Discovered through {issuer}/.well-known/openid-configuration.
        (None, AuthMode::CxoneAccessKey) => None,
        (None, _) => {
            let base = api_base.as_deref().unwrap_or_default().trim_end_matches('/');
            // Genesys' token endpoint lives on the region's login host: login.{region}, the
            // region given or read from an api.{region} base.
            let region = match profile {
                Profile::Genesys => t.region.as_deref().map(str::trim).or_else(|| host_of(base).and_then(|h| h.strip_prefix("api."))),
                _ => None,
            };
            Some(match region {
                Some(region) => format!("https://login.{region}/oauth/token"),
                None => format!("{base}/oauth/token"),
            })
        }
    };
    match auth {
        AuthMode::StaticBearer if t.token.is_empty() => return Err(missing(profile, "target.token", "static_bearer auth needs a token")),
        AuthMode::ClientCredentialsForm | AuthMode::ClientCredentialsJson | AuthMode::CxoneAccessKey if t.client_id.trim().is_empty() => {
            return Err(missing(profile, "target.client_id", "the OAuth client id"));
        }
        // Client credentials without a secret are not refused: some token endpoints expect none.
        AuthMode::CxoneAccessKey if t.client_secret.is_empty() => {
            return Err(missing(profile, "target.client_secret", "the OAuth client secret of the CXone application"));
        }
        AuthMode::CxoneAccessKey if t.access_key_id.trim().is_empty() => {
            return Err(missing(profile, "target.access_key_id", "the access key id of the API user"));
        }
        AuthMode::CxoneAccessKey if t.access_key_secret.is_empty() => {
            return Err(missing(profile, "target.access_key_secret", "the access key secret of the API user"));
        }
        AuthMode::CxoneAccessKey if issuer.as_deref().is_none_or(|i| i.trim().is_empty()) => {
            return Err(missing(profile, "target.issuer", "the CXone issuer, e.g. https://cxone.niceincontact.com"));
        }
        _ => {}
    }
    let mut headers: BTreeMap<String, String> = d.headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    // A configured header replaces the profile's of the same name, whatever its case.
    for (k, v) in &t.headers {
        headers.retain(|name, _| !name.eq_ignore_ascii_case(k));
        headers.insert(k.clone(), v.clone());
    }
    check_headers(&headers)?;
    let max_payload_bytes = t.max_payload_bytes.unwrap_or(d.max_payload_bytes);
    if max_payload_bytes < 64 {
        return Err(ConfigError::Invalid { key: "target.max_payload_bytes", reason: "must be at least 64 bytes".into() });
    }
    let retry_after_statuses = match &t.retry_after_statuses {
        None => d.retry_after_statuses.to_vec(),
        Some(list) => {
            list.0.iter().map(|s| s.parse::<u16>().ok().filter(|n| (100..=599).contains(n))).collect::<Option<Vec<u16>>>().ok_or_else(|| {
                ConfigError::Invalid { key: "target.retry_after_statuses", reason: format!("{list:?} is not a list of HTTP statuses, e.g. 429,503") }
            })?
        }
    };
    let exports = resolve_exports(settings, &d.export)?;
    Ok(Target {
        profile,
        api_base,
        token_url,
        issuer,
        auth,
        client_id: t.client_id.clone(),
        client_secret: t.client_secret.clone(),
        access_key_id: t.access_key_id.clone(),
        access_key_secret: t.access_key_secret.clone(),
        token: t.token.clone(),
        scope: t.scope.clone().unwrap_or_else(|| d.scope.to_owned()),
        execute_path,
        body: t.body.unwrap_or(d.body),
        headers: headers.into_iter().collect(),
        max_payload_bytes,
        retry_after_statuses,
        request_timeout_ms: t.request_timeout_ms,
        default_rate: d.rate,
        exports,
    })
}

/// How the tenant's rate is set: the settings' rate, else the profile's (needs no credentials).
pub fn rate_mode(settings: &Settings) -> crate::config::RateMode {
    settings.rate_limit.mode(defaults(settings.target.profile).rate)
}

/// The export side of the target alone (needs no credentials: the callback receiver uses it).
pub fn export_target(settings: &Settings) -> Result<ExportTarget, ConfigError> {
    resolve_exports(settings, &defaults(settings.target.profile).export)
}

fn resolve_exports(settings: &Settings, d: &ExportDefaults) -> Result<ExportTarget, ConfigError> {
    let e = &settings.exports;
    let text = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_owned());
    let list = |v: &Option<CommaList>, default: &[&str]| v.clone().unwrap_or_else(|| CommaList::of(default)).0;
    let out = ExportTarget {
        submit_path: text(&e.submit_path, d.submit_path),
        completion: e.completion.unwrap_or(d.completion),
        status_path: text(&e.status_path, d.status_path),
        execution_id_field: text(&e.execution_id_field, d.execution_id_field),
        status_field: text(&e.status_field, d.status_field),
        rows_field: text(&e.rows_field, d.rows_field),
        start_field: text(&e.start_field, d.start_field),
        end_field: text(&e.end_field, d.end_field),
        completed_states: list(&e.completed_states, d.completed_states),
        failed_states: list(&e.failed_states, d.failed_states),
    };
    check_template("exports.submit_path", &out.submit_path, &["dataAction"])?;
    check_template("exports.status_path", &out.status_path, &["execution"])?;
    for (key, pointer) in [
        ("exports.execution_id_field", &out.execution_id_field),
        ("exports.status_field", &out.status_field),
        ("exports.rows_field", &out.rows_field),
        ("exports.start_field", &out.start_field),
        ("exports.end_field", &out.end_field),
    ] {
        check_pointer(key, pointer)?;
    }
    if out.execution_id_field.is_empty() {
        return Err(ConfigError::Invalid { key: "exports.execution_id_field", reason: "must point at the execution id, e.g. /executionId".into() });
    }
    if out.completed_states.is_empty() {
        return Err(ConfigError::Invalid { key: "exports.completed_states", reason: "must name at least one state".into() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(toml: &str, env: &[(&str, &str)]) -> Result<Target, ConfigError> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let s = Settings::from_toml(toml)?.with_env(|k| env.get(k).cloned())?;
        resolve(&s)
    }

    const CREDS: &[(&str, &str)] = &[("CXRELAY_CLIENT_ID", "id"), ("CXRELAY_CLIENT_SECRET", "s")];

    #[test]
    fn seed_is_the_default() {
        let t = settings("", CREDS).unwrap();
        assert_eq!(t.profile, Profile::Seed);
        assert_eq!(t.api_base.as_deref(), Some("http://127.0.0.1:8089"));
        assert_eq!(t.token_url.as_deref(), Some("http://127.0.0.1:8089/oauth/token"));
        assert_eq!((t.auth, t.body), (AuthMode::ClientCredentialsForm, BodyShape::Envelope));
        assert_eq!(t.execute_path, "/api/v1/datapoint/actions/{action}/execute");
        assert_eq!(t.scope, "datapoint:actions:execute datapoint:actions:read");
        assert_eq!((t.max_payload_bytes, t.retry_after_statuses.as_slice()), (256 * 1024, &[429u16, 503][..]));
        assert_eq!(t.exports.completion, ExportCompletion::Callback);
        assert_eq!(t.exports.terminal("Completed"), Some(true));
        assert_eq!(t.exports.terminal("failed"), Some(false));
        assert_eq!(t.exports.terminal("running"), None);
    }

    #[test]
    fn cxone_needs_access_keys_and_discovers_the_rest() {
        let e = settings("[target]\nprofile = \"cxone\"\n", CREDS).unwrap_err().to_string();
        assert!(e.contains("target.access_key_id") && e.contains("CXRELAY_ACCESS_KEY_ID") && e.contains("cxone"), "{e}");
        let env = [CREDS, &[("CXRELAY_ACCESS_KEY_ID", "AK"), ("CXRELAY_ACCESS_KEY_SECRET", "sec==")]].concat();
        let t = settings("[target]\nprofile = \"cxone\"\n", &env).unwrap();
        assert_eq!((t.auth, t.body), (AuthMode::CxoneAccessKey, BodyShape::Flat));
        assert_eq!((t.api_base, t.token_url), (None, None));
        assert_eq!(t.issuer.as_deref(), Some(CXONE_ISSUER));
        assert_eq!(t.headers, vec![("Accept".to_owned(), "application/json".to_owned())]);
        assert_eq!(t.exports.completion, ExportCompletion::Poll);
        assert_eq!(t.exports.terminal("Finished"), Some(true));
        // Every default is overridable.
        let t = settings(
            "[target]\nprofile = \"cxone\"\napi_base = \"https://api-na1.example\"\nbody = \"envelope\"\n[exports]\ncompletion = \"callback\"\n",
            &env,
        )
        .unwrap();
        assert_eq!(
            (t.api_base.as_deref(), t.body, t.exports.completion),
            (Some("https://api-na1.example"), BodyShape::Envelope, ExportCompletion::Callback)
        );
    }

    #[test]
    fn genesys_derives_hosts_from_the_region() {
        let e = settings("[target]\nprofile = \"genesys\"\n", CREDS).unwrap_err().to_string();
        assert!(e.contains("target.api_base") && e.contains("CXRELAY_API_BASE") && e.contains("region"), "{e}");
        let t = settings("[target]\nprofile = \"genesys\"\nregion = \"mypurecloud.de\"\n", CREDS).unwrap();
        assert_eq!(t.api_base.as_deref(), Some("https://api.mypurecloud.de"));
        assert_eq!(t.token_url.as_deref(), Some("https://login.mypurecloud.de/oauth/token"));
        assert_eq!((t.body, t.default_rate), (BodyShape::Flat, Some(5.0)));
        assert_eq!(t.execute_path, "/api/v2/integrations/actions/{action}/execute");
        let t = settings("[target]\nprofile = \"genesys\"\napi_base = \"https://api.usw2.pure.cloud\"\n", CREDS).unwrap();
        assert_eq!(t.token_url.as_deref(), Some("https://login.usw2.pure.cloud/oauth/token"));
        let t = settings("[target]\nprofile = \"genesys\"\napi_base = \"http://127.0.0.1:9\"\n", CREDS).unwrap();
        assert_eq!(t.token_url.as_deref(), Some("http://127.0.0.1:9/oauth/token"));
    }

    #[test]
    fn custom_needs_base_and_path() {
        let e = settings("[target]\nprofile = \"custom\"\n", CREDS).unwrap_err().to_string();
        assert!(e.contains("target.api_base") && e.contains("CXRELAY_API_BASE"), "{e}");
        let e = settings("[target]\nprofile = \"custom\"\napi_base = \"http://x\"\n", CREDS).unwrap_err().to_string();
        assert!(e.contains("target.execute_path") && e.contains("CXRELAY_EXECUTE_PATH"), "{e}");
        let t = settings(
            "",
            &[CREDS, &[("CXRELAY_PROFILE", "custom"), ("CXRELAY_API_BASE", "http://x"), ("CXRELAY_EXECUTE_PATH", "/run/{action}")]].concat(),
        )
        .unwrap();
        assert_eq!(t.execute_path, "/run/{action}");
    }

    #[test]
    fn missing_credentials_name_their_variable() {
        let e = settings("", &[]).unwrap_err().to_string();
        assert!(e.contains("target.client_id") && e.contains("CXRELAY_CLIENT_ID"), "{e}");
        let e = settings("[target]\nprofile = \"cxone\"\n", &[("CXRELAY_CLIENT_ID", "x")]).unwrap_err().to_string();
        assert!(e.contains("target.client_secret") && e.contains("CXRELAY_CLIENT_SECRET"), "{e}");
        let e = settings("", &[("CXRELAY_AUTH", "static_bearer")]).unwrap_err().to_string();
        assert!(e.contains("target.token") && e.contains("CXRELAY_TOKEN"), "{e}");
        assert!(settings("", &[("CXRELAY_AUTH", "static_bearer"), ("CXRELAY_TOKEN", "t")]).is_ok());
    }

    #[test]
    fn overrides_and_their_checks() {
        let t = settings(
            "[target]\nretry_after_statuses = [429]\nmax_payload_bytes = 1024\n[target.headers]\nX-Team = \"a\"\n[exports]\ncompleted_states = \"done, ok\"\n",
            &[CREDS, &[("CXRELAY_RETRY_AFTER_STATUSES", "429,502")]].concat(),
        )
        .unwrap();
        assert_eq!(t.retry_after_statuses, vec![429, 502]);
        assert_eq!(t.max_payload_bytes, 1024);
        assert_eq!(t.headers, vec![("X-Team".to_owned(), "a".to_owned())]);
        assert_eq!(t.exports.completed_states, vec!["done".to_owned(), "ok".to_owned()]);
        for (toml, key) in [
            ("[target]\nretry_after_statuses = \"429,abc\"\n", "target.retry_after_statuses"),
            ("[target.headers]\n\"Bad Name\" = \"x\"\n", "target.headers"),
            ("[target.headers]\nAuthorization = \"x\"\n", "target.headers"),
            ("[target]\nexecute_path = \"/no/placeholder\"\n", "target.execute_path"),
            ("[exports]\nsubmit_path = \"/exports\"\n", "exports.submit_path"),
            ("[exports]\nstatus_path = \"/x/{execution}/{execution}\"\n", "exports.status_path"),
            ("[exports]\nstatus_field = \"status\"\n", "exports.status_field"),
        ] {
            let e = settings(toml, CREDS).unwrap_err().to_string();
            assert!(e.contains(key), "{toml}: {e}");
        }
    }
}
