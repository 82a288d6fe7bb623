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
    fn breaker_counts_5xx_and_transport_only() {
        assert!(is_breaker_failure(None));
        assert!(is_breaker_failure(Some(503)));
        assert!(!is_breaker_failure(Some(429)));
        assert!(!is_breaker_failure(Some(400)));
        assert!(!is_breaker_failure(Some(200)));
    }
}
