//! Retries that are safe.
//!
//! A request is retried only when repeating it cannot apply a change twice: its method is
//! idempotent (GET, HEAD, PUT, DELETE, OPTIONS), or it carries an `Idempotency-Key` that the
//! server uses to recognise the repeat. Between attempts the client waits with exponential backoff
//! and full jitter, or exactly as long as the server asked with `Retry-After`. The number of
//! attempts and the total time are both bounded.
//!
//! Everything here is pure: the pipeline supplies the clock reading and the random number.

use std::time::{Duration, SystemTime};

use crate::RetryClass;

/// How a client retries failed requests.
///
/// The default makes up to 3 attempts, waits between 0 and 200 ms before the second and between 0
/// and 400 ms before the third (doubling up to 10 s), and gives up once 30 s have passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_delay: Duration,
    max_delay: Duration,
    max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries: every request is attempted once.
    pub fn never() -> RetryPolicy {
        RetryPolicy::default().max_attempts(1)
    }

    /// Sets how many attempts a request gets in all, the first included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> RetryPolicy {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the upper bound of the wait before the second attempt; it doubles for each attempt
    /// after that.
    pub fn initial_delay(mut self, delay: Duration) -> RetryPolicy {
        self.initial_delay = delay;
        self
    }

    /// Sets the longest the client waits between two attempts. A `Retry-After` longer than this
    /// ends the retries, leaving the decision to the app.
    pub fn max_delay(mut self, delay: Duration) -> RetryPolicy {
        self.max_delay = delay;
        self
    }

    /// Sets the total time after which no further attempt is started.
    pub fn max_elapsed(mut self, elapsed: Duration) -> RetryPolicy {
        self.max_elapsed = elapsed;
        self
    }

    /// How many attempts a request gets in all.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Decides whether a failed attempt is followed by another, and after what wait.
    ///
    /// `attempt` is the number of the attempt that just failed (1 for the first), `elapsed` the
    /// time since the first attempt started, and `jitter` a random number in `[0, 1)`.
    /// Returns `None` when the request must not be retried.
    pub(crate) fn delay_after(
        &self,
        attempt: u32,
        class: RetryClass,
        elapsed: Duration,
        jitter: f64,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }

        let delay = match class {
            RetryClass::Never => return None,
            RetryClass::After(wait) if wait > self.max_delay => return None,
            RetryClass::After(wait) => wait,
            RetryClass::Now => {
                let doublings = attempt.saturating_sub(1).min(31);
                let ceiling = self
                    .initial_delay
                    .saturating_mul(1 << doublings)
                    .min(self.max_delay);
                ceiling.mul_f64(jitter.clamp(0.0, 1.0))
            }
        };

        (elapsed.saturating_add(delay) < self.max_elapsed).then_some(delay)
    }
}

/// Whether a request may be retried without risking a change being applied twice.
pub(crate) fn is_retry_safe(method: crate::Method, has_idempotency_key: bool) -> bool {
    method.is_idempotent() || has_idempotency_key
}

/// Reads a `Retry-After` value: either a number of seconds or an HTTP date.
///
/// A date in the past means no wait. Anything unreadable is ignored.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }

    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Method;

    const NOW: RetryClass = RetryClass::Now;

    #[test]
    fn test_backoff_doubles_up_to_the_cap_with_full_jitter() {
        let policy = RetryPolicy::default()
            .max_attempts(10)
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(500))
            .max_elapsed(Duration::from_secs(60));

        let ceilings: Vec<_> = (1..=5)
            .map(|attempt| {
                policy
                    .delay_after(attempt, NOW, Duration::ZERO, 0.999_999)
                    .unwrap()
            })
            .map(|delay| delay.as_millis())
            .collect();

        assert_eq!(ceilings, [99, 199, 399, 499, 499]);
        assert_eq!(
            policy.delay_after(3, NOW, Duration::ZERO, 0.0),
            Some(Duration::ZERO)
        );
        assert_eq!(
            policy.delay_after(2, NOW, Duration::ZERO, 0.5),
            Some(Duration::from_millis(100))
        );
    }

    #[test]
    fn test_attempts_are_bounded() {
        let policy = RetryPolicy::default().max_attempts(3);

        assert!(policy.delay_after(1, NOW, Duration::ZERO, 0.5).is_some());
        assert!(policy.delay_after(2, NOW, Duration::ZERO, 0.5).is_some());
        assert!(policy.delay_after(3, NOW, Duration::ZERO, 0.5).is_none());
        assert!(
            RetryPolicy::never()
                .delay_after(1, NOW, Duration::ZERO, 0.5)
                .is_none()
        );
    }

    #[test]
    fn test_total_time_is_bounded() {
        let policy = RetryPolicy::default().max_elapsed(Duration::from_secs(5));
        let wait = RetryClass::After(Duration::from_secs(2));

        assert_eq!(
            policy.delay_after(1, wait, Duration::from_secs(2), 0.5),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            policy.delay_after(1, wait, Duration::from_secs(3), 0.5),
            None
        );
    }

    #[test]
    fn test_retry_after_is_used_exactly_and_a_long_one_ends_retries() {
        let policy = RetryPolicy::default().max_delay(Duration::from_secs(10));

        assert_eq!(
            policy.delay_after(
                1,
                RetryClass::After(Duration::from_secs(3)),
                Duration::ZERO,
                0.1
            ),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            policy.delay_after(
                1,
                RetryClass::After(Duration::from_secs(11)),
                Duration::ZERO,
                0.1
            ),
            None
        );
    }

    #[test]
    fn test_never_is_never_retried() {
        let policy = RetryPolicy::default();

        assert_eq!(
            policy.delay_after(1, RetryClass::Never, Duration::ZERO, 0.5),
            None
        );
    }

    #[test]
    fn test_only_idempotent_or_keyed_requests_are_retry_safe() {
        for method in [
            Method::Get,
            Method::Head,
            Method::Put,
            Method::Delete,
            Method::Options,
        ] {
            assert!(is_retry_safe(method, false), "{method:?}");
        }
        assert!(!is_retry_safe(Method::Post, false));
        assert!(!is_retry_safe(Method::Patch, false));
        assert!(is_retry_safe(Method::Post, true));
        assert!(is_retry_safe(Method::Patch, true));
    }

    #[test]
    fn test_retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();

        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
