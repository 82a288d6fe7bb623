//! CSV export executions (the second seed) without I/O: the request an operator gives, its
//! validation exactly as the seed's rules (each message names the field and the allowed
//! values), and the execution payload submitted to the target.

use serde::{Deserialize, Serialize};

/// The most rows one export may ask for (the target caps exports there).
pub const MAX_ROWS: u64 = 5_000_000;

/// Delimiters an export may use, by name: comma, pipe, semicolon, tab.
pub const DELIMITERS: [(&str, &str); 4] = [(",", "comma"), ("|", "pipe"), (";", "semicolon"), ("\t", "tab")];

/// An export as asked for (`cxrelay export`, `POST /v1/exports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The data action that runs the export.
    pub data_action: String,
    /// The dataset to export.
    pub dataset: String,
    /// Field delimiter: `,` `|` `;` or a tab (names `comma`, `pipe`, `semicolon`, `tab` accepted).
    pub delimiter: String,
    /// Quote character (exactly one).
    pub quote: String,
    /// Escape character (exactly one).
    pub escape: String,
    /// Rows at most, 1 to [`MAX_ROWS`].
    pub max_rows: u64,
    /// Align columns.
    pub column_alignment: bool,
    /// Sanitize special characters (then the delimiter must differ from quote and escape).
    pub sanitize: bool,
    /// Where the target calls back on completion, if it can.
    pub callback_url: Option<String>,
}

/// Why an export request is refused: the field and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct ExportError {
    /// The offending field (as the CLI flag names it).
    pub field: &'static str,
    /// What is wrong and what is allowed.
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> ExportError {
    ExportError { field, message: message.into() }
}

impl ExportRequest {
    /// An export of `dataset` by `data_action` with the defaults: comma, `"` as quote and
    /// escape, the most rows allowed, no alignment, no sanitization, no callback URL.
    pub fn new(data_action: impl Into<String>, dataset: impl Into<String>) -> Self {
        Self {
            data_action: data_action.into(),
            dataset: dataset.into(),
            delimiter: ",".into(),
            quote: "\"".into(),
            escape: "\"".into(),
            max_rows: MAX_ROWS,
            column_alignment: false,
            sanitize: false,
            callback_url: None,
        }
    }

    /// The request with its delimiter name (`tab`, `pipe`…) resolved to the character, checked
    /// by the seed's rules in the seed's order.
    pub fn validated(mut self) -> Result<Self, ExportError> {
        if self.data_action.trim().is_empty() {
            return Err(refuse("data-action", "the data action id must not be empty"));
        }
        if self.dataset.trim().is_empty() {
            return Err(refuse("dataset", "the dataset id must not be empty"));
        }
        let delimiter = DELIMITERS.iter().find(|(c, name)| self.delimiter == *c || self.delimiter.eq_ignore_ascii_case(name)).map(|(c, _)| *c);
        match delimiter {
            Some(c) => self.delimiter = c.to_owned(),
            None => {
                return Err(refuse("delimiter", format!("{:?} is not supported; allowed: comma (,), pipe (|), semicolon (;), tab", self.delimiter)));
            }
        }
        for (field, value) in [("quote", &self.quote), ("escape", &self.escape)] {
            if value.chars().count() != 1 {
                return Err(refuse(field, format!("{value:?} must be exactly one character")));
            }
        }
        if !(1..=MAX_ROWS).contains(&self.max_rows) {
            return Err(refuse("max-rows", format!("{} is out of range; allowed: 1 to {MAX_ROWS}", self.max_rows)));
        }
        if self.sanitize && (self.delimiter == self.quote || self.delimiter == self.escape) {
            return Err(refuse("delimiter", "with sanitization on, the delimiter must differ from the quote and the escape character"));
        }
        if let Some(url) = &self.callback_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(refuse("callback-url", format!("{:?} is not an http(s) URL", crate::webhook::display_url(url))));
            }
        }
        Ok(self)
    }

    /// The execution payload the seed submits (`dataActionId`, `datasetId`, `export`, `callbackUrl`).
    pub fn payload(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "dataActionId": self.data_action,
            "datasetId": self.dataset,
            "export": {
                "format": "csv",
                "delimiter": self.delimiter,
                "quoteCharacter": self.quote,
                "escapeCharacter": self.escape,
                "maxRows": self.max_rows,
                "columnAlignment": self.column_alignment,
            },
        });
        if let Some(url) = &self.callback_url {
            body["callbackUrl"] = serde_json::Value::String(url.clone());
        }
        body
    }
}

/// Where an export execution stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportState {
    /// Waiting in the queue to be submitted (or for a retry of its submission).
    Queued,
    /// Submitted; the target is running it.
    Submitted,
    /// The target reports it done.
    Completed,
    /// The target reports it failed, or its submission failed for good.
    Failed,
    /// Not completed by its deadline (a late completion still lands).
    Overdue,
}

impl ExportState {
    /// The state's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportState::Queued => "queued",
            ExportState::Submitted => "submitted",
            ExportState::Completed => "completed",
            ExportState::Failed => "failed",
            ExportState::Overdue => "overdue",
        }
    }

    /// Parses a stored state name.
    pub fn parse(s: &str) -> Option<Self> {
        [ExportState::Queued, ExportState::Submitted, ExportState::Completed, ExportState::Failed, ExportState::Overdue]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// A completion as the target reports it (callback body or a status answer), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The target's execution id.
    pub execution_id: String,
    /// The target's status word, as sent.
    pub status: String,
    /// True when the status means success.
    pub succeeded: bool,
    /// Rows exported, if reported.
    pub rows: Option<u64>,
    /// Start time, ms since the epoch, if reported.
    pub start_ms: Option<u64>,
    /// End time, ms since the epoch, if reported.
    pub end_ms: Option<u64>,
}

impl Completion {
    /// Milliseconds from start to end, when both are known.
    pub fn latency_ms(&self) -> Option<u64> {
        Some(self.end_ms? - self.start_ms?)
    }
}

/// Why a completion report is refused (the HTTP API answers 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CompletionError(pub String);

/// Reads and checks a completion from `doc` at the given JSON pointers: execution id (non-empty
/// text), status (one of `terminal`'s states: `Some(true)` success, `Some(false)` failure, `None`
/// unknown → refused), rows (a whole number ≥ 0, optional), start and end (RFC 3339, optional,
/// end not before start). `execution_id` overrides the pointer when the caller already knows it.
pub fn read_completion(
    doc: &serde_json::Value,
    pointers: [&str; 5],
    execution_id: Option<&str>,
    terminal: impl Fn(&str) -> Option<bool>,
) -> Result<Completion, CompletionError> {
    let [id_at, status_at, rows_at, start_at, end_at] = pointers;
    let bad = |m: String| CompletionError(m);
    let field = |at: &str| if at.is_empty() { None } else { doc.pointer(at).filter(|v| !v.is_null()) };
    let name = |at: &str| at.rsplit('/').next().unwrap_or(at).to_owned();
    if !doc.is_object() {
        return Err(bad("the body must be a JSON object".into()));
    }
    let execution_id = match execution_id {
        Some(id) => id.to_owned(),
        None => match field(id_at) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(_) => return Err(bad(format!("{} must be a non-empty string", name(id_at)))),
            None => return Err(bad(format!("{} is missing", name(id_at)))),
        },
    };
    let status = match field(status_at) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(bad(format!("{} must be a string", name(status_at)))),
        None => return Err(bad(format!("{} is missing", name(status_at)))),
    };
    let succeeded = terminal(&status).ok_or_else(|| bad(format!("{} {status:?} is not a known final state", name(status_at))))?;
    let rows = match field(rows_at) {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| bad(format!("{} must be a whole number ≥ 0", name(rows_at))))?),
    };
    let time = |at: &str| -> Result<Option<u64>, CompletionError> {
        match field(at) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) => {
                crate::oncall::parse_rfc3339(s).map(Some).ok_or_else(|| bad(format!("{} {s:?} is not an RFC 3339 time", name(at))))
            }
            Some(_) => Err(bad(format!("{} must be an RFC 3339 time string", name(at)))),
        }
    };
    let (start_ms, end_ms) = (time(start_at)?, time(end_at)?);
    if let (Some(s), Some(e)) = (start_ms, end_ms) {
        if e < s {
            return Err(bad(format!("{} is before {}", name(end_at), name(start_at))));
        }
    }
    Ok(Completion { execution_id, status, succeeded, rows, start_ms, end_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> ExportRequest {
        ExportRequest {
            data_action: "da-1".into(),
            dataset: "ds-9".into(),
            delimiter: ",".into(),
            quote: "\"".into(),
            escape: "\"".into(),
            max_rows: 1000,
            column_alignment: true,
            sanitize: false,
            callback_url: None,
        }
    }

    /// Every rule of the seed, with the field its message names.
    #[test]
    fn the_validation_table() {
        type Case = (fn(&mut ExportRequest), Option<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            (|_| {}, None),
            (|r| r.dataset = " ".into(), Some(("dataset", "must not be empty"))),
            (|r| r.data_action = String::new(), Some(("data-action", "must not be empty"))),
            (|r| r.delimiter = ":".into(), Some(("delimiter", "allowed: comma (,), pipe (|), semicolon (;), tab"))),
            (|r| r.delimiter = "tab".into(), None),
            (|r| r.delimiter = "PIPE".into(), None),
            (|r| r.quote = "''".into(), Some(("quote", "exactly one character"))),
            (|r| r.escape = String::new(), Some(("escape", "exactly one character"))),
            (|r| r.max_rows = 0, Some(("max-rows", "allowed: 1 to 5000000"))),
            (|r| r.max_rows = MAX_ROWS + 1, Some(("max-rows", "allowed: 1 to 5000000"))),
            (|r| r.max_rows = MAX_ROWS, None),
            (
                |r| {
                    r.sanitize = true;
                    r.delimiter = "|".into();
                    r.quote = "|".into();
                },
                Some(("delimiter", "differ from the quote")),
            ),
            (
                |r| {
                    r.sanitize = false;
                    r.delimiter = "|".into();
                    r.quote = "|".into();
                },
                None,
            ),
            (|r| r.callback_url = Some("ftp://x".into()), Some(("callback-url", "not an http(s) URL"))),
        ];
        for (i, (change, want)) in cases.into_iter().enumerate() {
            let mut r = ok();
            change(&mut r);
            match (r.validated(), want) {
                (Ok(_), None) => {}
                (Err(e), Some((field, says))) => {
                    assert_eq!(e.field, field, "case {i}: {e}");
                    assert!(e.to_string().contains(says), "case {i}: {e}");
                }
                (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn the_payload_has_the_seeds_shape() {
        let r = ExportRequest { delimiter: "tab".into(), callback_url: Some("https://h/cb".into()), ..ok() }.validated().unwrap();
        let p = r.payload();
        assert_eq!(p["export"]["delimiter"], "\t");
        assert_eq!(p["export"]["maxRows"], 1000);
        assert_eq!(
            (p["dataActionId"].as_str(), p["datasetId"].as_str(), p["callbackUrl"].as_str()),
            (Some("da-1"), Some("ds-9"), Some("https://h/cb"))
        );
    }

    fn terminal(s: &str) -> Option<bool> {
        match s {
            "completed" => Some(true),
            "failed" => Some(false),
            _ => None,
        }
    }

    const SEED: [&str; 5] = ["/executionId", "/status", "/rowsExported", "/startTime", "/endTime"];

    #[test]
    fn a_callback_reads_with_its_latency() {
        let doc = serde_json::json!({"executionId": "e-1", "status": "completed", "rowsExported": 1234,
            "startTime": "2026-12-05T10:00:00Z", "endTime": "2026-12-05T10:00:02.500Z"});
        let c = read_completion(&doc, SEED, None, terminal).unwrap();
        assert_eq!((c.execution_id.as_str(), c.succeeded, c.rows, c.latency_ms()), ("e-1", true, Some(1234), Some(2500)));
        let doc = serde_json::json!({"jobResult": {"state": "failed"}});
        let c = read_completion(&doc, ["/jobId", "/jobResult/state", "/jobResult/rows", "", ""], Some("j-9"), terminal).unwrap();
        assert_eq!((c.execution_id.as_str(), c.succeeded, c.rows, c.latency_ms()), ("j-9", false, None, None));
    }

    /// Every way a callback body is refused, with the words its message must hold.
    #[test]
    fn bad_callbacks_are_refused_by_name() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (serde_json::json!([1]), "JSON object"),
            (serde_json::json!({"status": "completed"}), "executionId is missing"),
            (serde_json::json!({"executionId": "", "status": "completed"}), "executionId must be a non-empty string"),
            (serde_json::json!({"executionId": 5, "status": "completed"}), "executionId must be"),
            (serde_json::json!({"executionId": "e"}), "status is missing"),
            (serde_json::json!({"executionId": "e", "status": "exploded"}), "status \"exploded\" is not a known final state"),
            (serde_json::json!({"executionId": "e", "status": "completed", "rowsExported": -1}), "rowsExported must be a whole number"),
            (serde_json::json!({"executionId": "e", "status": "completed", "rowsExported": "12"}), "rowsExported must be a whole number"),
            (
                serde_json::json!({"executionId": "e", "status": "completed", "startTime": "yesterday"}),
                "startTime \"yesterday\" is not an RFC 3339 time",
            ),
            (serde_json::json!({"executionId": "e", "status": "completed", "endTime": 17}), "endTime must be an RFC 3339"),
            (
                serde_json::json!({"executionId": "e", "status": "completed", "startTime": "2026-12-05T10:00:05Z", "endTime": "2026-12-05T10:00:00Z"}),
                "endTime is before startTime",
            ),
        ];
        for (doc, want) in cases {
            let e = read_completion(&doc, SEED, None, terminal).unwrap_err().to_string();
            assert!(e.contains(want), "{doc}: {e}");
        }
    }

    #[test]
    fn states_round_trip() {
        for s in ["queued", "submitted", "completed", "failed", "overdue"] {
            assert_eq!(ExportState::parse(s).unwrap().as_str(), s);
        }
        assert_eq!(ExportState::parse("x"), None);
    }
}
