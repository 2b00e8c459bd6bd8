//! Failed credentials, counted per client address: an API key or a bearer token that is not
//! valid, or a token request whose client assertion is refused. Each costs the proxy a hash
//! or a signature verification (RSA or ECDSA), and each is one guess: past
//! `auth.failed_attempts_per_minute` from one address, every request carrying credentials from
//! it is refused with 429 and `Retry-After`, before any check is made, until its budget has
//! refilled. Requests without credentials are not counted (they cost nothing to refuse).
//!
//! The counting is governor's GCRA (a budget that refills evenly over the minute); the addresses
//! held back are kept in a bounded cache that forgets each when its wait is over. The address is
//! the connection's peer: behind a load balancer that does not preserve it, the balancer's
//! address is what is counted (see README).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// At most this many addresses are remembered as held back (an attacker spreading over more
/// only loses its own memory).
const MAX_HELD_BACK: u64 = 100_000;
/// Failures between two clean-ups of the counters of addresses that have gone quiet.
const RETAIN_EVERY: u64 = 1024;

/// The counters of failed credentials.
pub struct FailureLimit {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    held_back: moka::sync::Cache<IpAddr, Instant>,
    failures: std::sync::atomic::AtomicU64,
}

impl FailureLimit {
    /// A limit of `per_minute` failures per address (`None`: no limit).
    pub fn new(per_minute: Option<NonZeroU32>) -> FailureLimit {
        FailureLimit {
            limiter: per_minute.map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_minute(n))),
            held_back: moka::sync::Cache::builder()
                .max_capacity(MAX_HELD_BACK)
                // No wait is longer than the minute a budget takes to refill.
                .time_to_live(Duration::from_secs(61))
                .build(),
            failures: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether credentials from `address` may be checked now.
    ///
    /// # Errors
    /// The seconds to wait (at least 1) while the address is held back.
    pub fn admit(&self, address: IpAddr) -> Result<(), u64> {
        match self.held_back.get(&address) {
            Some(until) => match until.checked_duration_since(Instant::now()) {
                Some(wait) if !wait.is_zero() => {
                    Err(wait.as_secs().max(1) + u64::from(wait.subsec_nanos() > 0))
                }
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Counts a failed attempt from `address`; past the budget the address is held back.
    pub fn failed(&self, address: IpAddr) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        if let Err(not_until) = limiter.check_key(&address) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            self.held_back.insert(address, Instant::now() + wait);
            tracing::warn!(
                wait_secs = wait.as_secs(),
                "too many failed credentials from one address: its requests are refused for a while"
            );
        }
        let n = self
            .failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % RETAIN_EVERY == RETAIN_EVERY - 1 {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_held_back_past_its_budget_and_others_are_not() {
        let limit = FailureLimit::new(NonZeroU32::new(3));
        let guesser: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limit.admit(guesser), Ok(()));
            limit.failed(guesser);
        }
        assert_eq!(
            limit.admit(guesser),
            Ok(()),
            "three failures are the budget"
        );
        limit.failed(guesser);
        let wait = limit.admit(guesser).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(limit.admit(other), Ok(()));
    }

    #[test]
    fn without_a_limit_nothing_is_held_back() {
        let limit = FailureLimit::new(None);
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..100 {
            limit.failed(address);
        }
        assert_eq!(limit.admit(address), Ok(()));
    }
}
