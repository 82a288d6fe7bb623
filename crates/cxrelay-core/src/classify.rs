//! The one table that says what an HTTP answer (or its absence) means for an item.

/// What to do with an item after one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// 2xx: the item is done.
    Success,
    /// 401: refresh the token and retry once; a second 401 is permanent.
    Unauthorized,
    /// Will never succeed as sent: fail the item with its reason.
    Permanent,
    /// Transient: retry later (backoff, `Retry-After`), up to the attempt budget.
    Retryable,
}

/// Classifies an attempt by HTTP status; `None` means no response (connection error, timeout).
///
/// 400/403/404/409/413/422 are permanent; 408/425/429/500/502/503/504 and transport failures are
/// retryable. Other 4xx are permanent (the request itself is wrong); other 5xx are retryable.
pub fn classify(status: Option<u16>) -> Disposition {
    match status {
        None => Disposition::Retryable,
        Some(s) if (200..300).contains(&s) => Disposition::Success,
        Some(401) => Disposition::Unauthorized,
        Some(408 | 425 | 429) => Disposition::Retryable,
        Some(s) if (500..600).contains(&s) => Disposition::Retryable,
        Some(_) => Disposition::Permanent,
    }
}

/// What kind of failure an outcome was: the groups a run's failures are counted and filtered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum FailureClass {
    /// A 4xx answer other than 401, 403 and 429: the request as sent is wrong.
    #[serde(rename = "4xx")]
    Client,
    /// A 5xx answer.
    #[serde(rename = "5xx")]
    Server,
    /// A 429 answer.
    #[serde(rename = "429")]
    RateLimited,
    /// No answer: connection refused or reset, timeout, TLS or DNS failure.
    #[serde(rename = "transport")]
    Transport,
    /// 401 after a token refresh, or no token could be obtained.
    #[serde(rename = "auth")]
    Auth,
    /// 403: the credentials lack a scope or permission.
    #[serde(rename = "permission")]
    Permission,
    /// Taken over from dead or stalled workers too many times.
    #[serde(rename = "poison")]
    Poison,
    /// Refused before sending (payload too large, malformed queue entry, no idempotency key).
    #[serde(rename = "local")]
    Local,
    /// Not sent: breaker open, fleet paused or rate budget exhausted.
    #[serde(rename = "deferred")]
    Deferred,
}

impl FailureClass {
    /// Every class, in display order.
    pub const ALL: [FailureClass; 9] = [
        FailureClass::Client,
        FailureClass::Server,
        FailureClass::RateLimited,
        FailureClass::Transport,
        FailureClass::Auth,
        FailureClass::Permission,
        FailureClass::Poison,
        FailureClass::Local,
        FailureClass::Deferred,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Client => "4xx",
            FailureClass::Server => "5xx",
            FailureClass::RateLimited => "429",
            FailureClass::Transport => "transport",
            FailureClass::Auth => "auth",
            FailureClass::Permission => "permission",
            FailureClass::Poison => "poison",
            FailureClass::Local => "local",
            FailureClass::Deferred => "deferred",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The class of an HTTP answer (`Some(status)`) or of no answer (`None`).
    pub fn of_status(status: Option<u16>) -> Self {
        match status {
            None => FailureClass::Transport,
            Some(401) => FailureClass::Auth,
            Some(403) => FailureClass::Permission,
            Some(429) => FailureClass::RateLimited,
            Some(s) if s >= 500 => FailureClass::Server,
            Some(_) => FailureClass::Client,
        }
    }
}

/// True for answers that count towards the circuit breaker: 5xx and no response at all.
///
/// 429 does not: it has its own fleet-wide pause, and it means the target is healthy but busy.
pub fn is_breaker_failure(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(s) => (500..600).contains(&s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Disposition::*;

    #[test]
    fn the_table() {
        let table: &[(Option<u16>, Disposition)] = &[
            (Some(200), Success),
            (Some(201), Success),
            (Some(204), Success),
            (Some(401), Unauthorized),
            (Some(400), Permanent),
            (Some(403), Permanent),
            (Some(404), Permanent),
            (Some(409), Permanent),
            (Some(413), Permanent),
            (Some(422), Permanent),
            (Some(418), Permanent),
            (Some(408), Retryable),
            (Some(425), Retryable),
            (Some(429), Retryable),
            (Some(500), Retryable),
            (Some(502), Retryable),
            (Some(503), Retryable),
            (Some(504), Retryable),
            (Some(599), Retryable),
            (None, Retryable),
        ];
        for (status, want) in table {
            assert_eq!(classify(*status), *want, "status {status:?}");
        }
    }

    #[test]
    fn failure_classes() {
        let table: &[(Option<u16>, FailureClass)] = &[
            (None, FailureClass::Transport),
            (Some(400), FailureClass::Client),
            (Some(413), FailureClass::Client),
            (Some(422), FailureClass::Client),
            (Some(401), FailureClass::Auth),
            (Some(403), FailureClass::Permission),
            (Some(429), FailureClass::RateLimited),
            (Some(500), FailureClass::Server),
            (Some(503), FailureClass::Server),
        ];
        for (status, want) in table {
            assert_eq!(FailureClass::of_status(*status), *want, "{status:?}");
        }
        for c in FailureClass::ALL {
            assert_eq!(FailureClass::parse(c.as_str()), Some(c));
        }
    }

    #[test]
    fn breaker_counts_5xx_and_transport_only() {
        assert!(is_breaker_failure(None));
        assert!(is_breaker_failure(Some(503)));
        assert!(!is_breaker_failure(Some(429)));
        assert!(!is_breaker_failure(Some(400)));
        assert!(!is_breaker_failure(Some(200)));
    }
}
