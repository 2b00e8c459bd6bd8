//! Load management for one Salesforce org: the back-off after Salesforce throttles, the bound on
//! requests in flight, and the org's API usage as Salesforce last reported it.
//!
//! Salesforce's limits are org-wide (a rolling 24-hour allocation, and 25 long-running requests at
//! once, `salesforce-api.md` §4.4), so all of this lives with the org's [`super::SalesforceClient`]
//! and is shared by every clone of it and every worker.
//!
//! - **Back-off.** After Salesforce throttles (403 `REQUEST_LIMIT_EXCEEDED`, or 429/503 from a
//!   Connect resource) the org is left alone for a while: every request fails at once with the
//!   remaining time as its `Retry-After`, without a byte sent, so a throttled org does not get a
//!   storm of requests it will refuse anyway. The wait is Salesforce's own `Retry-After` when it
//!   sends one, else `salesforce.throttle_retry_after_secs`, doubled for each further throttle with
//!   no other answer between them, and never more than `salesforce.throttle_max_backoff_secs`.
//! - **Concurrency.** At most `salesforce.max_concurrent_requests` calls are in flight; a request
//!   past that waits up to `salesforce.queue_timeout_ms` for a place, then is refused.
//! - **Usage.** `Sforce-Limit-Info: api-usage=USED/LIMIT` is read from every REST/Connect answer
//!   and the latest kept, for `GET /status`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::SalesforceError;
use crate::config::SalesforceSettings;

/// The response header carrying the org's API usage.
pub const LIMIT_INFO_HEADER: &str = "sforce-limit-info";

/// The org's daily API usage, from the last `Sforce-Limit-Info` header seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiUsage {
    /// Calls counted against the org in the rolling 24 hours.
    pub used: u64,
    /// The org's allocation for those 24 hours.
    pub limit: u64,
    /// When the proxy read this.
    pub seen_at: DateTime<Utc>,
}

/// What [`OrgLimits`] knows now: a snapshot for the status endpoint (no secrets, no PHI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitsSnapshot {
    /// The latest API usage Salesforce reported, if any answer carried it yet.
    pub api_usage: Option<ApiUsage>,
    /// Whether requests are being refused without calling Salesforce because it throttled.
    pub backing_off: bool,
    /// Until when, if backing off.
    pub backing_off_until: Option<DateTime<Utc>>,
    /// Throttles in a row with no other answer between them (what the back-off doubles with).
    pub consecutive_throttles: u32,
    /// Calls to Salesforce in flight now.
    pub in_flight: usize,
    /// Requests waiting for a place among them.
    pub queued: usize,
    /// The bound on calls in flight (`salesforce.max_concurrent_requests`).
    pub max_concurrent_requests: usize,
}

/// Back-off, concurrency bound and API usage of one org. Cloning shares them.
#[derive(Clone)]
pub struct OrgLimits {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Arc<Semaphore>,
    max_concurrent: usize,
    queue_timeout: Duration,
    first_backoff: Duration,
    max_backoff: Duration,
    queued: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    api_usage: Option<ApiUsage>,
    backoff_until: Option<(Instant, SystemTime)>,
    consecutive_throttles: u32,
}

/// A place among the calls in flight; the place is given back when it is dropped.
#[derive(Debug)]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

impl OrgLimits {
    /// Limits as the settings configure them.
    pub fn new(settings: &SalesforceSettings) -> Self {
        // A bound of 0 would refuse everything; configuration refuses it, this guards the rest.
        let max_concurrent = settings.max_concurrent_requests.max(1);
        OrgLimits {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(max_concurrent)),
                max_concurrent,
                queue_timeout: settings.queue_timeout,
                first_backoff: settings.throttle_retry_after,
                max_backoff: settings.throttle_max_backoff,
                queued: AtomicUsize::new(0),
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is plain data, consistent after every statement: usable after a panic.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses while the org is backed off.
    ///
    /// # Errors
    /// [`SalesforceError::BackingOff`] with the remaining time, rounded up to whole seconds.
    pub fn check_backoff(&self) -> Result<(), SalesforceError> {
        let now = Instant::now();
        match self.lock().backoff_until {
            Some((until, _)) if until > now => Err(SalesforceError::BackingOff {
                retry_after_secs: ceil_secs(until - now),
            }),
            _ => Ok(()),
        }
    }

    /// Waits for a place among the calls in flight, at most the queue timeout.
    ///
    /// # Errors
    /// [`SalesforceError::Busy`] when no place came free in time.
    pub async fn admit(&self) -> Result<Admission, SalesforceError> {
        let permits = self.inner.permits.clone();
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            return Ok(Admission { _permit: permit });
        }
        let busy = SalesforceError::Busy {
            max_in_flight: self.inner.max_concurrent,
            // Long enough for a call in flight to end; a whole second at least, as the header
            // counts in seconds.
            retry_after_secs: ceil_secs(self.inner.queue_timeout).max(1),
        };
        if self.inner.queue_timeout.is_zero() {
            return Err(busy);
        }
        self.inner.queued.fetch_add(1, Ordering::Relaxed);
        let waited = tokio::time::timeout(self.inner.queue_timeout, permits.acquire_owned()).await;
        self.inner.queued.fetch_sub(1, Ordering::Relaxed);
        match waited {
            Ok(Ok(permit)) => Ok(Admission { _permit: permit }),
            // Timed out, or the semaphore was closed (it never is).
            _ => Err(busy),
        }
    }

    /// Records a throttle and starts (or lengthens) the back-off; returns its length in seconds,
    /// the `Retry-After` for the throttled request.
    ///
    /// `salesforce_retry_after` is Salesforce's own `Retry-After`, when it sent one.
    pub fn throttled(&self, salesforce_retry_after: Option<Duration>) -> u64 {
        let mut state = self.lock();
        state.consecutive_throttles = state.consecutive_throttles.saturating_add(1);
        let wait = salesforce_retry_after
            .unwrap_or_else(|| {
                // Doubling per throttle in a row: 2^(n-1), the exponent capped so it cannot
                // overflow before the cap applies.
                let doublings = (state.consecutive_throttles - 1).min(20);
                self.inner.first_backoff.saturating_mul(1 << doublings)
            })
            .min(self.inner.max_backoff);
        let now = Instant::now();
        let until = now + wait;
        // A throttle answered to a call sent before the back-off began must not shorten it.
        let until = match state.backoff_until {
            Some((current, wall)) if current > until => (current, wall),
            _ => (until, SystemTime::now() + wait),
        };
        state.backoff_until = Some(until);
        ceil_secs(until.0 - now)
    }

    /// Records an answer that was not a throttle: the next throttle starts the back-off afresh.
    pub fn answered(&self) {
        self.lock().consecutive_throttles = 0;
    }

    /// Records the `Sforce-Limit-Info` header's value; one without `api-usage` is ignored.
    pub fn record_limit_info(&self, value: &str) {
        if let Some((used, limit)) = parse_api_usage(value) {
            self.lock().api_usage = Some(ApiUsage {
                used,
                limit,
                seen_at: Utc::now(),
            });
        }
    }

    /// The latest API usage Salesforce reported.
    pub fn api_usage(&self) -> Option<ApiUsage> {
        self.lock().api_usage.clone()
    }

    /// Everything known now.
    pub fn snapshot(&self) -> LimitsSnapshot {
        let now = Instant::now();
        let state = self.lock();
        let until = state
            .backoff_until
            .filter(|(until, _)| *until > now)
            .map(|(_, wall)| DateTime::<Utc>::from(wall));
        LimitsSnapshot {
            api_usage: state.api_usage.clone(),
            backing_off: until.is_some(),
            backing_off_until: until,
            consecutive_throttles: state.consecutive_throttles,
            in_flight: self
                .inner
                .max_concurrent
                .saturating_sub(self.inner.permits.available_permits()),
            queued: self.inner.queued.load(Ordering::Relaxed),
            max_concurrent_requests: self.inner.max_concurrent,
        }
    }
}

/// Whole seconds, rounded up: a client told to wait 0 seconds would come back too early.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `api-usage=USED/LIMIT` from a `Sforce-Limit-Info` value, which may hold other entries too
/// (`api-usage=25/5000; per-app-api-usage=17/250(appName=app)`).
pub fn parse_api_usage(value: &str) -> Option<(u64, u64)> {
    value.split([';', ',']).find_map(|entry| {
        let (used, limit) = entry.trim().strip_prefix("api-usage=")?.split_once('/')?;
        Some((used.trim().parse().ok()?, limit.trim().parse().ok()?))
    })
}

/// A `Retry-After` value: delta-seconds, or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&Utc) - Utc::now();
    // A date already past means "now"; the back-off then lasts no time.
    Some(wait.to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn limits(first: Duration, max: Duration, concurrent: usize, queue: Duration) -> OrgLimits {
        let mut s = SalesforceSettings::with_defaults(
            "http://127.0.0.1:1/services/oauth2/token".parse().unwrap(),
            "c",
            SecretString::from("s"),
        );
        s.throttle_retry_after = first;
        s.throttle_max_backoff = max;
        s.max_concurrent_requests = concurrent;
        s.queue_timeout = queue;
        OrgLimits::new(&s)
    }

    #[test]
    fn reads_api_usage_among_other_entries() {
        assert_eq!(
            parse_api_usage("api-usage=10018/100000"),
            Some((10018, 100000))
        );
        assert_eq!(
            parse_api_usage("per-app-api-usage=17/250(appName=x); api-usage=25/5000"),
            Some((25, 5000))
        );
        assert_eq!(parse_api_usage("per-app-api-usage=17/250"), None);
        assert_eq!(parse_api_usage("api-usage=lots/5000"), None);
    }

    #[test]
    fn reads_retry_after_in_both_forms() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_doubles_per_throttle_in_a_row_up_to_the_cap_and_salesforce_wins() {
        let l = limits(
            Duration::from_secs(10),
            Duration::from_secs(35),
            5,
            Duration::ZERO,
        );
        assert!(l.check_backoff().is_ok());
        assert_eq!(l.throttled(None), 10);
        assert!(matches!(
            l.check_backoff(),
            Err(SalesforceError::BackingOff { retry_after_secs }) if retry_after_secs <= 10 && retry_after_secs > 8
        ));
        assert_eq!(l.throttled(None), 20);
        assert_eq!(l.throttled(None), 35);
        assert_eq!(l.snapshot().consecutive_throttles, 3);
        assert!(l.snapshot().backing_off);
        // An answer between throttles starts the doubling again, but never shortens a back-off.
        l.answered();
        assert_eq!(l.throttled(None), 35);
        assert_eq!(l.snapshot().consecutive_throttles, 1);
        let fresh = limits(
            Duration::from_secs(10),
            Duration::from_secs(35),
            5,
            Duration::ZERO,
        );
        assert_eq!(fresh.throttled(Some(Duration::from_secs(3))), 3);
        assert_eq!(fresh.throttled(Some(Duration::from_secs(3600))), 35);
    }

    #[test]
    fn a_zero_backoff_does_not_hold_requests() {
        let l = limits(Duration::ZERO, Duration::ZERO, 5, Duration::ZERO);
        assert_eq!(l.throttled(None), 0);
        assert!(l.check_backoff().is_ok());
        assert!(!l.snapshot().backing_off);
    }

    #[tokio::test]
    async fn past_the_bound_a_request_waits_then_is_refused() {
        let l = limits(
            Duration::from_secs(1),
            Duration::from_secs(1),
            2,
            Duration::from_millis(20),
        );
        let a = l.admit().await.unwrap();
        let _b = l.admit().await.unwrap();
        assert_eq!(l.snapshot().in_flight, 2);
        assert!(matches!(
            l.admit().await,
            Err(SalesforceError::Busy {
                max_in_flight: 2,
                retry_after_secs: 1
            })
        ));
        drop(a);
        assert_eq!(l.snapshot().in_flight, 1);
        assert!(l.admit().await.is_ok());
        assert_eq!(l.snapshot().queued, 0);
    }

    #[test]
    fn the_snapshot_serializes_without_surprises() {
        let l = limits(
            Duration::from_secs(1),
            Duration::from_secs(1),
            3,
            Duration::ZERO,
        );
        l.record_limit_info("api-usage=7/15000");
        let json = serde_json::to_value(l.snapshot()).unwrap();
        assert_eq!(json["api_usage"]["used"], 7);
        assert_eq!(json["api_usage"]["limit"], 15000);
        assert!(json["api_usage"]["seen_at"].is_string());
        assert_eq!(json["backing_off"], false);
        assert_eq!(json["backing_off_until"], serde_json::Value::Null);
        assert_eq!(json["max_concurrent_requests"], 3);
    }
}
