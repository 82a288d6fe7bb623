//! The process-wide access token cache ([`TokenCache`]) and the token handle ([`AccessToken`]).
//!
//! This module owns *when* a token is requested; [`crate::auth`] owns *how*. One cache is shared
//! by every concurrent request of a process (it is `Clone`, with an `Arc` inside).
//!
//! - Hot path: a read lock, a clock read and an `Arc` clone; no allocation.
//! - A token is used until `refresh_margin` (default 30 s) before it expires. When the endpoint
//!   grants a lifetime no longer than the margin, the token is used for half its lifetime instead
//!   of being refreshed on every call.
//! - Refresh is single-flight: a `tokio::sync::Mutex` guards the token request. Callers that
//!   waited while a request was in flight take *its* result (token or error) instead of starting
//!   another, so 100 callers on a cold cache cause one request, and a failing endpoint is not
//!   hammered by a queue of waiters.
//! - While a refresh is in flight, callers whose cached token has not yet expired keep using it
//!   instead of waiting (the margin exists exactly for this).
//! - After a failed request, callers within [`FAILURE_COOLDOWN`] get that error (or the old
//!   token, while it is still valid) without a new request.
//! - [`TokenCache::invalidate`] drops the cached token only if it is still the one that failed,
//!   so 50 concurrent 401s on the same token cause one refresh.
//! - Every time reading goes through a [`Clock`]: the system clock, or a [`ManualClock`] that
//!   tests advance instead of sleeping while a token ages.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use reqwest::Url;

use crate::auth::{bearer_header, request_token, AuthConfig, AuthError};
use cxrelay_core::Secret;

/// Default time before expiry at which a token is refreshed.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// After a failed token request, how long callers get that failure without a new request.
pub const FAILURE_COOLDOWN: Duration = Duration::from_secs(1);

/// Where the token cache reads the time. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The monotonic system clock ([`Instant::now`]).
    #[default]
    System,
    /// A clock that moves only when [`ManualClock::advance`] is called (for tests).
    Manual(Arc<ManualClock>),
}

impl Clock {
    /// A manual clock starting now, and the handle that advances it.
    pub fn manual() -> (Clock, Arc<ManualClock>) {
        let manual = Arc::new(ManualClock::new());
        (Clock::Manual(manual.clone()), manual)
    }

    /// The current time of this clock.
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Manual(manual) => manual.now(),
        }
    }
}

/// A clock that stands still until advanced; shared through an `Arc`.
#[derive(Debug)]
pub struct ManualClock {
    /// The real time the clock was created at (an `Instant` cannot be built from nothing).
    start: Instant,
    /// How far the clock has been advanced, in nanoseconds (an atomic, so that `now` takes no
    /// lock on the cache's hot path).
    advanced_ns: AtomicU64,
}

impl ManualClock {
    /// A manual clock reading the current system time until advanced.
    pub fn new() -> Self {
        ManualClock { start: Instant::now(), advanced_ns: AtomicU64::new(0) }
    }

    /// The current time of this clock.
    pub fn now(&self) -> Instant {
        self.start + Duration::from_nanos(self.advanced_ns.load(Ordering::Acquire))
    }

    /// Moves the clock forward by `by` (saturating at about 584 years).
    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // `fetch_add` would wrap around and move the clock backwards.
        let _ = self.advanced_ns.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| Some(t.saturating_add(ns)));
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

/// A bearer token handed out by [`TokenCache::token`]; cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct AccessToken(Arc<TokenInner>);

struct TokenInner {
    /// Unique per token obtained by this cache (0 for a static token).
    id: u64,
    value: Secret,
    header: HeaderValue,
    /// `None` for a static token.
    expires_at: Option<Instant>,
    /// `None` for a static token.
    refresh_at: Option<Instant>,
    /// The cache's clock, so that `Debug` shows the time left by the same clock.
    clock: Clock,
    /// The API base discovered with this token (CXone), if any.
    api_base: Option<Arc<str>>,
}

impl AccessToken {
    /// Identifier of this token within its cache (increasing with each token obtained).
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// The token value.
    pub fn secret(&self) -> &Secret {
        &self.0.value
    }

    /// The `Authorization: Bearer …` header value (marked sensitive, so not printed by `Debug`).
    pub fn authorization(&self) -> &HeaderValue {
        &self.0.header
    }

    /// When the token expires (`None` for a static token).
    pub fn expires_at(&self) -> Option<Instant> {
        self.0.expires_at
    }

    /// When the cache starts refreshing this token (`None` for a static token).
    pub fn refresh_at(&self) -> Option<Instant> {
        self.0.refresh_at
    }

    /// The API base discovered together with this token (CXone tenants), if any.
    pub fn api_base(&self) -> Option<&str> {
        self.0.api_base.as_deref()
    }

    fn is_fresh(&self, now: Instant) -> bool {
        self.0.refresh_at.is_none_or(|t| now < t)
    }

    fn is_unexpired(&self, now: Instant) -> bool {
        self.0.expires_at.is_none_or(|t| now < t)
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = self.0.clock.now();
        let left = |t: Option<Instant>| t.map(|t| t.saturating_duration_since(now));
        f.debug_struct("AccessToken")
            .field("id", &self.0.id)
            .field("token", &self.0.value)
            .field("expires_in", &left(self.0.expires_at))
            .field("refresh_in", &left(self.0.refresh_at))
            .finish()
    }
}

/// How long a token is used before refreshing: `lifetime - margin`, or half the lifetime when
/// the lifetime is not longer than the margin.
pub(crate) fn usable_for(lifetime: Duration, margin: Duration) -> Duration {
    if lifetime > margin {
        lifetime - margin
    } else {
        lifetime / 2
    }
}

/// A failed refresh still yields the previous token while that token has not expired.
fn or_still_valid(result: Result<AccessToken, AuthError>, previous: Option<AccessToken>, now: Instant) -> Result<AccessToken, AuthError> {
    match result {
        Err(e) => previous.filter(|t| t.is_unexpired(now)).ok_or(e),
        ok => ok,
    }
}

/// Shared, single-flight cache of the access token for one [`AuthConfig`].
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    margin: Duration,
    /// Every time reading of the cache goes through here.
    clock: Clock,
    /// The current token (absent before the first request and after an invalidation).
    current: RwLock<Option<AccessToken>>,
    /// Held while a token request is in flight; remembers the last flight's result.
    flight: tokio::sync::Mutex<LastFlight>,
    /// Completed token requests (read before waiting for `flight`, to detect a flight that
    /// finished while we waited).
    completed: AtomicU64,
    /// Token requests started (for tests and metrics).
    requests: AtomicU64,
}

#[derive(Default)]
struct LastFlight {
    result: Option<Result<AccessToken, AuthError>>,
    failed_at: Option<Instant>,
}

enum Source {
    Static(AccessToken),
    /// Boxed: the auth configuration is large and the cache holds one of these for life.
    Endpoint {
        http: reqwest::Client,
        url: Url,
        auth: Box<AuthConfig>,
    },
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.inner.current.read().unwrap_or_else(PoisonError::into_inner).clone();
        f.debug_struct("TokenCache")
            .field("static", &matches!(self.inner.source, Source::Static(_)))
            .field("refresh_margin", &self.inner.margin)
            .field("current", &current)
            .field("token_requests", &self.token_requests())
            .finish()
    }
}

impl TokenCache {
    /// Creates a cache that obtains tokens for `auth` through `http` (a shared client).
    pub fn new(http: reqwest::Client, auth: AuthConfig, refresh_margin: Duration) -> Result<Self, AuthError> {
        Self::with_clock(http, auth, refresh_margin, Clock::System)
    }

    /// Like [`new`](Self::new), reading the time from `clock` (a [`Clock::Manual`] in tests).
    pub fn with_clock(http: reqwest::Client, auth: AuthConfig, refresh_margin: Duration, clock: Clock) -> Result<Self, AuthError> {
        let source = match auth.validate()? {
            None => {
                let AuthConfig::StaticBearer { token } = auth else { unreachable!("validate returns no URL only for a static token") };
                let header = bearer_header(token.expose()).map_err(|_| AuthError::Config("invalid static bearer token".into()))?;
                Source::Static(AccessToken(Arc::new(TokenInner {
                    id: 0,
                    value: token,
                    header,
                    expires_at: None,
                    refresh_at: None,
                    clock: clock.clone(),
                    api_base: None,
                })))
            }
            Some(url) => Source::Endpoint { http, url, auth: Box::new(auth) },
        };
        Ok(TokenCache {
            inner: Arc::new(Inner {
                source,
                margin: refresh_margin,
                clock,
                current: RwLock::new(None),
                flight: tokio::sync::Mutex::new(LastFlight::default()),
                completed: AtomicU64::new(0),
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// Returns a usable token: the cached one unless it is within the refresh margin of expiry,
    /// otherwise a fresh one (one token request however many callers ask at once).
    pub async fn token(&self) -> Result<AccessToken, AuthError> {
        let inner = &*self.inner;
        let (http, url, auth) = match &inner.source {
            Source::Static(token) => return Ok(token.clone()),
            Source::Endpoint { http, url, auth } => (http, url, auth),
        };
        let now = inner.clock.now();
        let cached = {
            let current = inner.current.read().unwrap_or_else(PoisonError::into_inner);
            match &*current {
                Some(t) if t.is_fresh(now) => return Ok(t.clone()),
                other => other.clone(),
            }
        };
        // Slow path: missing or due for refresh.
        let seen = inner.completed.load(Ordering::Acquire);
        let mut flight = match inner.flight.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // A refresh is in flight: keep using a still-valid token instead of waiting.
                if let Some(t) = cached.filter(|t| t.is_unexpired(now)) {
                    return Ok(t);
                }
                inner.flight.lock().await
            }
        };
        let now = inner.clock.now();
        let cached = inner.current.read().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(t) = &cached {
            if t.is_fresh(now) {
                return Ok(t.clone());
            }
        }
        let completed_meanwhile = inner.completed.load(Ordering::Acquire) != seen;
        let cooling_down = flight.failed_at.is_some_and(|t| now.duration_since(t) < FAILURE_COOLDOWN);
        if completed_meanwhile || cooling_down {
            // A request completed while we waited for the lock, or failed a moment ago:
            // share its outcome instead of sending another (unless the token it brought has
            // been invalidated by a 401 since).
            match &flight.result {
                Some(Ok(_)) if cached.is_none() => {}
                Some(result) => return or_still_valid(result.clone(), cached, now),
                None => {}
            }
        }

        let number = inner.requests.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(request = number, "requesting access token");
        let result = request_token(http, url, auth, &inner.clock).await.map(|issued| {
            let usable = usable_for(issued.lifetime, inner.margin);
            let token = AccessToken(Arc::new(TokenInner {
                id: number,
                value: issued.value,
                header: issued.header,
                expires_at: issued.requested_at.checked_add(issued.lifetime),
                refresh_at: issued.requested_at.checked_add(usable),
                clock: inner.clock.clone(),
                api_base: issued.api_base.map(Arc::from),
            }));
            tracing::debug!(token = number, lifetime_s = issued.lifetime.as_secs_f64(), refresh_in_s = usable.as_secs_f64(), "access token obtained");
            token
        });
        match &result {
            Ok(token) => {
                *inner.current.write().unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
                flight.failed_at = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "token request failed");
                flight.failed_at = Some(inner.clock.now());
            }
        }
        flight.result = Some(result.clone());
        inner.completed.fetch_add(1, Ordering::Release);
        or_still_valid(result, cached, inner.clock.now())
    }

    /// Drops the cached token if it is still `failed` (the target answered 401 to it), so the
    /// next [`token`](Self::token) call fetches a new one. No effect on a static token.
    pub fn invalidate(&self, failed: &AccessToken) {
        if matches!(self.inner.source, Source::Static(_)) {
            return;
        }
        let mut current = self.inner.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|t| t.id() == failed.id()) {
            tracing::debug!(token = failed.id(), "access token invalidated");
            *current = None;
        }
    }

    /// Number of token requests sent so far.
    pub fn token_requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The clock this cache reads the time from.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The configured refresh margin.
    pub fn refresh_margin(&self) -> Duration {
        self.inner.margin
    }

    /// False for a static bearer token (invalidating and refreshing cannot help).
    pub fn can_refresh(&self) -> bool {
        !matches!(self.inner.source, Source::Static(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_lifetime() {
        let m = Duration::from_secs(30);
        assert_eq!(usable_for(Duration::from_secs(3600), m), Duration::from_secs(3570));
        assert_eq!(usable_for(Duration::from_secs(31), m), Duration::from_secs(1));
        assert_eq!(usable_for(Duration::from_secs(30), m), Duration::from_secs(15));
        assert_eq!(usable_for(Duration::from_secs(10), m), Duration::from_secs(5));
        assert_eq!(usable_for(Duration::ZERO, m), Duration::ZERO);
    }

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let (clock, manual) = Clock::manual();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0, "it does not follow real time");
        manual.advance(Duration::from_millis(1500));
        assert_eq!(clock.now(), t0 + Duration::from_millis(1500));
        assert_eq!(manual.now(), clock.now());
        let system = Clock::default();
        assert!(matches!(system, Clock::System));
        assert!(system.now() >= t0);
    }

    #[test]
    fn token_debug_reads_the_cache_clock() {
        let (clock, manual) = Clock::manual();
        let now = clock.now();
        let token = AccessToken(Arc::new(TokenInner {
            id: 1,
            value: Secret::new("tok"),
            header: bearer_header("tok").unwrap(),
            expires_at: Some(now + Duration::from_secs(60)),
            refresh_at: Some(now + Duration::from_secs(30)),
            clock,
            api_base: None,
        }));
        assert!(token.is_fresh(now) && token.is_unexpired(now));
        manual.advance(Duration::from_secs(45));
        let shown = format!("{token:?}");
        assert!(shown.contains("expires_in: Some(15s)"), "{shown}");
        assert!(shown.contains("refresh_in: Some(0ns)"), "{shown}");
        assert!(!shown.contains("\"tok\""), "{shown}");
    }

    #[tokio::test]
    async fn static_token_needs_no_requests() {
        let cache =
            TokenCache::new(reqwest::Client::new(), AuthConfig::StaticBearer { token: Secret::new("static-tok") }, DEFAULT_REFRESH_MARGIN).unwrap();
        let t = cache.token().await.unwrap();
        assert_eq!(t.secret().expose(), "static-tok");
        cache.invalidate(&t);
        assert_eq!(cache.token().await.unwrap(), t);
        assert_eq!(cache.token_requests(), 0);
        assert!(!cache.can_refresh());
        assert!(!format!("{cache:?} {t:?}").contains("static-tok"));
    }
}
