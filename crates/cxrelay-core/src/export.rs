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
}
