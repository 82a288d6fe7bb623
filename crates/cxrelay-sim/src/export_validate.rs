//! Validation of a CSV export submission body by the seed's rules, in the seed's order: `datasetId`
//! non-empty; `export.delimiter` one of `,` `|` `;` tab; `export.quoteCharacter` and
//! `export.escapeCharacter` exactly one character; 1 ≤ `export.maxRows` ≤ 5,000,000; with
//! sanitisation on (`sanitize` or `sanitization`, at the top or inside `export`) the delimiter equal
//! to neither. Also: a `dataActionId` in the body must equal the path's, `export.format` (when given)
//! is `csv`, `export.columnAlignment` (when given) a boolean and `callbackUrl` (when given) an http(s)
//! URL. Each refusal names its field (as a JSON path) in `field` and in the message.

use serde_json::{Map, Value};

/// The most rows an export may ask for.
pub(crate) const MAX_ROWS: u64 = 5_000_000;

/// Delimiters the seed allows.
const DELIMITERS: [&str; 4] = [",", "|", ";", "\t"];

/// A submission that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Submission {
    pub dataset_id: String,
    pub max_rows: u64,
    pub callback_url: Option<String>,
    /// The `export` object as sent.
    pub export: Value,
}

/// Why a submission was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl std::fmt::Display) -> Invalid {
    Invalid { field, message: format!("{field} {message}") }
}

/// Checks a submission addressed to the data action `path_action`.
pub(crate) fn validate(body: &[u8], path_action: &str) -> Result<Submission, Invalid> {
    let top: Map<String, Value> = serde_json::from_slice(body).map_err(|_| invalid("body", "must be a JSON object"))?;
    match top.get("dataActionId") {
        None | Some(Value::Null) => {}
        Some(Value::String(id)) if id == path_action => {}
        Some(_) => return Err(invalid("dataActionId", "must equal the data action id in the path")),
    }
    let dataset_id = match top.get("datasetId") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
        _ => return Err(invalid("datasetId", "must be a non-empty string")),
    };
    let Some(Value::Object(export)) = top.get("export") else {
        return Err(invalid("export", "must be an object with the CSV format settings"));
    };
    match export.get("format") {
        None => {}
        Some(Value::String(f)) if f.eq_ignore_ascii_case("csv") => {}
        Some(_) => return Err(invalid("export.format", "must be \"csv\"")),
    }
    let delimiter = match export.get("delimiter") {
        Some(Value::String(d)) if DELIMITERS.contains(&d.as_str()) => d.as_str(),
        _ => return Err(invalid("export.delimiter", "must be one of \",\" \"|\" \";\" or a tab")),
    };
    let quote = one_char(export, "quoteCharacter", "export.quoteCharacter")?;
    let escape = one_char(export, "escapeCharacter", "export.escapeCharacter")?;
    let max_rows = match export.get("maxRows").and_then(Value::as_u64) {
        Some(n) if (1..=MAX_ROWS).contains(&n) => n,
        _ => return Err(invalid("export.maxRows", format_args!("must be an integer from 1 to {MAX_ROWS}"))),
    };
    if !matches!(export.get("columnAlignment"), None | Some(Value::Bool(_))) {
        return Err(invalid("export.columnAlignment", "must be a boolean"));
    }
    if sanitize(&top, export)? && (delimiter == quote || delimiter == escape) {
        return Err(invalid("export.delimiter", "must differ from the quote and escape characters when sanitization is on"));
    }
    let callback_url = match top.get("callbackUrl") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) if url.starts_with("http://") || url.starts_with("https://") => Some(url.clone()),
        Some(_) => return Err(invalid("callbackUrl", "must be an http(s) URL")),
    };
    Ok(Submission { dataset_id, max_rows, callback_url, export: Value::Object(export.clone()) })
}

/// The one-character string `obj[key]`.
fn one_char<'a>(obj: &'a Map<String, Value>, key: &str, field: &'static str) -> Result<&'a str, Invalid> {
    match obj.get(key) {
        Some(Value::String(s)) if s.chars().count() == 1 => Ok(s),
        _ => Err(invalid(field, "must be exactly one character")),
    }
}

/// Whether sanitisation is on; any of its four spellings must be a boolean when present.
fn sanitize(top: &Map<String, Value>, export: &Map<String, Value>) -> Result<bool, Invalid> {
    let mut on = false;
    for (obj, key, field) in [
        (top, "sanitize", "sanitize"),
        (top, "sanitization", "sanitization"),
        (export, "sanitize", "export.sanitize"),
        (export, "sanitization", "export.sanitization"),
    ] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => on |= *b,
            Some(_) => return Err(invalid(field, "must be a boolean")),
        }
    }
    Ok(on)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body() -> Value {
        json!({
            "dataActionId": "da-1",
            "datasetId": "ds-1",
            "export": {"format": "csv", "delimiter": ",", "quoteCharacter": "\"", "escapeCharacter": "\\", "maxRows": 10, "columnAlignment": true},
            "callbackUrl": "http://127.0.0.1:9/cb"
        })
    }

    fn field(edit: impl FnOnce(&mut Value)) -> Option<&'static str> {
        let mut b = body();
        edit(&mut b);
        validate(&serde_json::to_vec(&b).unwrap(), "da-1").err().map(|e| {
            assert!(e.message.starts_with(e.field), "{e:?}");
            e.field
        })
    }

    #[test]
    fn accepts_the_seed_payload() {
        let s = validate(&serde_json::to_vec(&body()).unwrap(), "da-1").unwrap();
        assert_eq!((s.dataset_id.as_str(), s.max_rows, s.callback_url.as_deref()), ("ds-1", 10, Some("http://127.0.0.1:9/cb")));
        assert_eq!(field(|b| b["export"]["delimiter"] = json!("\t")), None);
        assert_eq!(field(|b| b["export"]["maxRows"] = json!(MAX_ROWS)), None);
        assert_eq!(field(|b| drop(b.as_object_mut().unwrap().remove("dataActionId"))), None);
        assert_eq!(field(|b| b["export"]["quoteCharacter"] = json!("é")), None);
    }

    #[test]
    fn names_the_bad_field() {
        assert_eq!(validate(b"[1]", "da-1").unwrap_err().field, "body");
        assert_eq!(field(|b| b["dataActionId"] = json!("other")), Some("dataActionId"));
        assert_eq!(field(|b| b["datasetId"] = json!(" ")), Some("datasetId"));
        assert_eq!(field(|b| b["export"] = json!("csv")), Some("export"));
        assert_eq!(field(|b| b["export"]["format"] = json!("xlsx")), Some("export.format"));
        assert_eq!(field(|b| b["export"]["delimiter"] = json!(":")), Some("export.delimiter"));
        assert_eq!(field(|b| b["export"]["quoteCharacter"] = json!("''")), Some("export.quoteCharacter"));
        assert_eq!(field(|b| b["export"]["escapeCharacter"] = json!("")), Some("export.escapeCharacter"));
        assert_eq!(field(|b| b["export"]["maxRows"] = json!(0)), Some("export.maxRows"));
        assert_eq!(field(|b| b["export"]["maxRows"] = json!(MAX_ROWS + 1)), Some("export.maxRows"));
        assert_eq!(field(|b| b["export"]["maxRows"] = json!(1.5)), Some("export.maxRows"));
        assert_eq!(field(|b| b["export"]["columnAlignment"] = json!("yes")), Some("export.columnAlignment"));
        assert_eq!(field(|b| b["sanitize"] = json!("yes")), Some("sanitize"));
        assert_eq!(field(|b| b["callbackUrl"] = json!("ftp://x")), Some("callbackUrl"));
        let clash = |b: &mut Value| {
            b["sanitization"] = json!(true);
            b["export"]["escapeCharacter"] = json!(",");
        };
        assert_eq!(field(clash), Some("export.delimiter"));
    }
}
