//! What an on-call engineer types, parsed and checked without I/O: which failed items
//! (`--status`, `--reason`, `--since`), which indexes (`--index 3,7,10-20`), and CSV cells that
//! are safe to open in a spreadsheet.

use std::time::Duration;

/// Why an on-call argument is unusable; the message names the value and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {expected}")]
pub struct ArgError {
    /// Which argument (`--status`, `--index`, …).
    pub what: &'static str,
    /// The value given.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

fn arg_error(what: &'static str, value: &str, expected: impl Into<String>) -> ArgError {
    ArgError { what, value: value.to_owned(), expected: expected.into() }
}

/// Failure classes a filter may name (see `classify::FailureClass`).
pub const CLASSES: [&str; 9] = ["4xx", "5xx", "429", "transport", "auth", "permission", "poison", "local", "deferred"];

/// `--status`: a failure class or one HTTP status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusFilter {
    /// A class: `4xx`, `5xx`, `429`, `transport`, `auth`, `permission`, `poison`, `local`.
    Class(String),
    /// One HTTP status, e.g. `503`.
    Code(u16),
}

impl StatusFilter {
    /// Parses `5xx`, `transport`, `422`, …
    pub fn parse(s: &str) -> Result<Self, ArgError> {
        let t = s.trim().to_ascii_lowercase();
        if CLASSES.contains(&t.as_str()) {
            return Ok(Self::Class(t));
        }
        match t.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(Self::Code(code)),
            _ => Err(arg_error("--status", s, format!("expected a class ({}) or an HTTP status code such as 503", CLASSES.join(", ")))),
        }
    }

    /// Does a failure of `class` with last HTTP `status` match? (`429` names the class and the code.)
    pub fn matches(&self, class: &str, status: Option<u16>) -> bool {
        match self {
            Self::Class(c) => c == class,
            Self::Code(code) => status == Some(*code),
        }
    }
}

/// Which failed items an operation is about: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedFilter {
    /// Class or status code.
    pub status: Option<StatusFilter>,
    /// Case-insensitive text the reason must contain.
    pub reason: Option<String>,
    /// Failed at or after this time (ms since the epoch).
    pub since_ms: Option<u64>,
}

impl FailedFilter {
    /// Does a failed item (class, last status, reason, failure time) match?
    pub fn matches(&self, class: &str, status: Option<u16>, reason: &str, at_ms: u64) -> bool {
        self.status.as_ref().is_none_or(|f| f.matches(class, status))
            && self.reason.as_ref().is_none_or(|r| reason.to_lowercase().contains(&r.to_lowercase()))
            && self.since_ms.is_none_or(|since| at_ms >= since)
    }

    /// True when no condition is set.
    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.reason.is_none() && self.since_ms.is_none()
    }

    /// The filter as an operator would type it, for audit records.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match &self.status {
            Some(StatusFilter::Class(c)) => parts.push(format!("--status {c}")),
            Some(StatusFilter::Code(c)) => parts.push(format!("--status {c}")),
            None => {}
        }
        if let Some(r) = &self.reason {
            parts.push(format!("--reason {r:?}"));
        }
        if let Some(s) = self.since_ms {
            parts.push(format!("--since {}", rfc3339(s)));
        }
        parts.join(" ")
    }
}

/// `ms` since the epoch as RFC 3339 in UTC, with milliseconds (`2026-12-05T08:00:00.123Z`).
pub fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms as i64);
    let t = t.replace_nanosecond((ms % 1000) as u32 * 1_000_000).unwrap_or(t);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second(), t.millisecond())
}

/// Parses an RFC 3339 time into ms since the epoch (`None` if it is not one, or before 1970).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Largest index list `--index` may expand to (a typo like `0-99999999999` is refused, not run).
pub const MAX_INDEXES: u64 = 10_000_000;

/// Parses `3,7,10-20` into sorted, de-duplicated indexes.
pub fn parse_indexes(s: &str) -> Result<Vec<u64>, ArgError> {
    let expected = "expected indexes and ranges such as 3,7,10-20";
    let mut out = Vec::new();
    if s.trim().is_empty() {
        return Err(arg_error("--index", s, expected));
    }
    for part in s.split(',') {
        let part = part.trim();
        let num = |t: &str| t.trim().parse::<u64>().map_err(|_| arg_error("--index", s, format!("{expected} ({part:?} is not one)")));
        if part.is_empty() {
            return Err(arg_error("--index", s, format!("{expected} (an empty entry)")));
        }
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(arg_error("--index", s, format!("{expected} (range {part} goes backwards)")));
                }
                if (b - a) + out.len() as u64 >= MAX_INDEXES {
                    return Err(arg_error("--index", s, format!("at most {MAX_INDEXES} indexes")));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Parses `--since`: an RFC 3339 time or a duration back from `now_ms` (`90s`, `30m`, `2h`, `7d`).
pub fn parse_since(s: &str, now_ms: u64) -> Result<u64, ArgError> {
    let t = s.trim();
    if let Some(ms) = parse_rfc3339(t) {
        return Ok(ms);
    }
    let err = || arg_error("--since", s, "expected an RFC 3339 time (2026-12-05T08:00:00Z) or a duration back from now (90s, 30m, 2h, 7d)");
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| err())?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(err()),
    };
    Ok(now_ms.saturating_sub(Duration::from_secs(secs).as_millis() as u64))
}

/// How long ago `since_ms` was at `now_ms`, as a person reads it: `42s`, `5m`, `3h`, `2d`.
pub fn age(since_ms: u64, now_ms: u64) -> String {
    let s = now_ms.saturating_sub(since_ms) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// A CSV cell that a spreadsheet will not run as a formula: text starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return gets a leading `'` (OWASP's advice for CSV injection).
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(StatusFilter::parse("5XX").unwrap(), StatusFilter::Class("5xx".into()));
        assert_eq!(StatusFilter::parse("503").unwrap(), StatusFilter::Code(503));
        assert_eq!(StatusFilter::parse("transport").unwrap(), StatusFilter::Class("transport".into()));
        for bad in ["6xx", "99", "600", "", "timeout"] {
            let e = StatusFilter::parse(bad).unwrap_err().to_string();
            assert!(e.contains("--status") && e.contains(&format!("{bad:?}")), "{e}");
        }
        assert!(StatusFilter::parse("429").unwrap().matches("429", Some(429)));
        assert!(StatusFilter::Code(503).matches("5xx", Some(503)));
        assert!(!StatusFilter::Code(503).matches("5xx", Some(502)));
        assert!(StatusFilter::parse("5xx").unwrap().matches("5xx", Some(502)));
    }

    #[test]
    fn filters_combine() {
        let f = FailedFilter { status: Some(StatusFilter::Class("4xx".into())), reason: Some("Invalid".into()), since_ms: Some(100) };
        assert!(f.matches("4xx", Some(400), "HTTP 400: invalid customer id", 100));
        assert!(!f.matches("5xx", Some(503), "HTTP 503: invalid", 200));
        assert!(!f.matches("4xx", Some(400), "HTTP 400: missing field", 200));
        assert!(!f.matches("4xx", Some(400), "HTTP 400: invalid", 99));
        assert!(FailedFilter::default().matches("x", None, "", 0));
        assert_eq!(f.describe(), "--status 4xx --reason \"Invalid\" --since 1970-01-01T00:00:00.100Z");
    }

    #[test]
    fn index_lists() {
        assert_eq!(parse_indexes("3,7,10-12, 7").unwrap(), vec![3, 7, 10, 11, 12]);
        assert_eq!(parse_indexes("0").unwrap(), vec![0]);
        for bad in ["3,,x", "", "a", "5-3", "1-", "-1", "1,2,", "0-99999999999"] {
            let e = parse_indexes(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid --index"), "{bad}: {e}");
        }
    }

    #[test]
    fn since() {
        let now = 10_000_000;
        assert_eq!(parse_since("90s", now).unwrap(), now - 90_000);
        assert_eq!(parse_since("2h", now).unwrap(), now.saturating_sub(7_200_000));
        assert_eq!(parse_since("1970-01-01T00:00:01Z", now).unwrap(), 1000);
        assert_eq!(parse_since("1970-01-01T01:00:00+01:00", now).unwrap(), 0);
        for bad in ["yesterday", "5w", "", "h", "2026-13-01T00:00:00Z"] {
            assert!(parse_since(bad, now).unwrap_err().to_string().contains("--since"), "{bad}");
        }
    }

    #[test]
    fn ages() {
        assert_eq!(age(1_000, 43_000), "42s");
        assert_eq!(age(0, 300_000), "5m");
        assert_eq!(age(0, 3 * 3_600_000), "3h");
        assert_eq!(age(0, 2 * 86_400_000), "2d");
        assert_eq!(age(5_000, 1_000), "0s", "a clock behind is not negative");
    }

    #[test]
    fn csv_cells_cannot_become_formulas() {
        for risky in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(spreadsheet_safe(risky).starts_with('\''), "{risky}");
        }
        assert_eq!(spreadsheet_safe("HTTP 400: bad"), "HTTP 400: bad");
    }
}
