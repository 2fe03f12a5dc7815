//! When to reconnect: a pure state machine, with no I/O and no clock of its own.
//!
//! The driver tells it what happened (a connection opened, an attempt failed or a connection
//! ended, the network went away or came back) together with the time and a random number, and
//! it answers what to do next. The rules:
//!
//! - After the *n*-th failure in a row, wait a uniformly random time between zero and
//!   `min(max_delay, initial_delay × 2^(n-1))`: exponential backoff with full jitter, as for
//!   request retries, so that many clients cut off together do not come back together.
//! - A connection that stayed up for `stable_after` resets the count; one that broke sooner
//!   counts as another failure, so a server that accepts and drops at once is not hammered.
//! - A server that asked for a wait (`Retry-After`) gets at least that wait.
//! - A failure that will not change by retrying ([`RetryClass::Never`]) stops for good.
//! - While the device is offline nothing is attempted; when it is back, the count is reset and
//!   the next attempt starts at once.

use std::time::{Duration, Instant};

use crate::RetryClass;

/// The pacing of reconnects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReconnectPolicy {
    pub(crate) initial_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) stable_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            stable_after: Duration::from_secs(30),
        }
    }
}

/// What the driver does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Connect now. `attempt` is 0 for a first connection and the number of the retry otherwise.
    Connect { attempt: u32 },
    /// Wait `delay`, then make retry number `attempt`.
    Wait { attempt: u32, delay: Duration },
    /// The device is offline: attempt nothing until it is back.
    Pause,
    /// Stop for good.
    Stop,
}

#[derive(Debug)]
pub(crate) struct Reconnect {
    policy: ReconnectPolicy,
    /// Failures since the last stable connection (or since the network came back).
    failures: u32,
    connected_at: Option<Instant>,
    online: bool,
    stopped: bool,
}

impl Reconnect {
    pub(crate) fn new(policy: ReconnectPolicy, online: bool) -> Reconnect {
        Reconnect {
            policy,
            failures: 0,
            connected_at: None,
            online,
            stopped: false,
        }
    }

    /// The first step after the channel is opened.
    pub(crate) fn start(&self) -> Next {
        self.resume()
    }

    /// A connection opened at `now`.
    pub(crate) fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// An attempt failed, or an open connection ended, at `now`. `class` says whether the cause
    /// may go away; `jitter` is a random number in `[0, 1)`.
    pub(crate) fn failed(&mut self, now: Instant, class: RetryClass, jitter: f64) -> Next {
        if let Some(since) = self.connected_at.take()
            && now.saturating_duration_since(since) >= self.policy.stable_after
        {
            self.failures = 0;
        }
        if class == RetryClass::Never {
            self.stopped = true;
        }
        if self.stopped {
            return Next::Stop;
        }

        self.failures = self.failures.saturating_add(1);
        if !self.online {
            return Next::Pause;
        }

        let doublings = (self.failures - 1).min(31);
        let ceiling = self
            .policy
            .initial_delay
            .saturating_mul(1 << doublings)
            .min(self.policy.max_delay);
        let mut delay = ceiling.mul_f64(jitter.clamp(0.0, 1.0));
        if let RetryClass::After(wait) = class {
            delay = delay.max(wait);
        }
        Next::Wait {
            attempt: self.failures,
            delay,
        }
    }

    /// The app reported the network gone or back. Returns the new step, if it changes.
    pub(crate) fn network(&mut self, online: bool) -> Option<Next> {
        if self.stopped || online == self.online {
            return None;
        }

        self.online = online;
        if online {
            // The failures happened on another network: start over, at once.
            self.failures = 0;
        }
        self.connected_at = None;
        Some(self.resume())
    }

    /// The app closed the channel.
    pub(crate) fn stop(&mut self) -> Next {
        self.stopped = true;
        Next::Stop
    }

    pub(crate) fn is_online(&self) -> bool {
        self.online
    }

    fn resume(&self) -> Next {
        match (self.stopped, self.online) {
            (true, _) => Next::Stop,
            (false, false) => Next::Pause,
            (false, true) => Next::Connect {
                attempt: self.failures,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: RetryClass = RetryClass::Now;
    const ALMOST_ONE: f64 = 0.999_999;

    fn policy() -> ReconnectPolicy {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1_000),
            stable_after: Duration::from_secs(10),
        }
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn delay(next: Next) -> Duration {
        match next {
            Next::Wait { delay, .. } => delay,
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn test_first_step_connects_or_pauses_by_network() {
        assert_eq!(
            Reconnect::new(policy(), true).start(),
            Next::Connect { attempt: 0 }
        );
        assert_eq!(Reconnect::new(policy(), false).start(), Next::Pause);
    }

    #[test]
    fn test_backoff_doubles_to_the_cap_with_full_jitter() {
        let t0 = Instant::now();
        let mut machine = Reconnect::new(policy(), true);

        let ceilings: Vec<_> = (0..6)
            .map(|_| delay(machine.failed(t0, NOW, ALMOST_ONE)).as_millis())
            .collect();

        assert_eq!(ceilings, [99, 199, 399, 799, 999, 999]);
        assert_eq!(
            machine.failed(t0, NOW, 0.0),
            Next::Wait {
                attempt: 7,
                delay: Duration::ZERO
            }
        );
        assert_eq!(delay(machine.failed(t0, NOW, 0.5)), ms(500));
    }

    #[test]
    fn test_attempts_count_up_and_a_retry_connects_with_its_number() {
        let t0 = Instant::now();
        let mut machine = Reconnect::new(policy(), true);

        assert_eq!(
            machine.failed(t0, NOW, 0.5),
            Next::Wait {
                attempt: 1,
                delay: ms(50)
            }
        );
        assert_eq!(
            machine.failed(t0, NOW, 0.5),
            Next::Wait {
                attempt: 2,
                delay: ms(100)
            }
        );
    }

    #[test]
    fn test_a_stable_connection_resets_the_backoff() {
        let t0 = Instant::now();
        let mut machine = Reconnect::new(policy(), true);
        for _ in 0..5 {
            machine.failed(t0, NOW, ALMOST_ONE);
        }

        machine.connected(t0);
        let after_stable = machine.failed(t0 + Duration::from_secs(10), NOW, 0.5);

        assert_eq!(
            after_stable,
            Next::Wait {
                attempt: 1,
                delay: ms(50)
            }
        );
    }

    #[test]
    fn test_a_short_lived_connection_keeps_backing_off() {
        let t0 = Instant::now();
        let mut machine = Reconnect::new(policy(), true);
        machine.failed(t0, NOW, ALMOST_ONE);
        machine.failed(t0, NOW, ALMOST_ONE);

        machine.connected(t0);
        let after_flap = machine.failed(t0 + ms(9_999), NOW, 0.5);

        assert_eq!(
            after_flap,
            Next::Wait {
                attempt: 3,
                delay: ms(200)
            }
        );
    }

    #[test]
    fn test_a_server_requested_wait_is_honoured() {
        let t0 = Instant::now();
        let mut machine = Reconnect::new(policy(), true);

        let next = machine.failed(t0, RetryClass::After(Duration::from_secs(5)), 0.1);

        assert_eq!(delay(next), Duration::from_secs(5));
    }

    #[test]
    fn test_a_permanent_failure_stops_for_good() {
        let t0 = Instant::now();
        let mut machine = Reconnect::new(policy(), true);

        assert_eq!(machine.failed(t0, RetryClass::Never, 0.5), Next::Stop);
        assert_eq!(machine.failed(t0, NOW, 0.5), Next::Stop);
        assert_eq!(machine.network(false), None);
        assert_eq!(machine.start(), Next::Stop);
    }

    #[test]
    fn test_offline_pauses_and_the_network_coming_back_connects_at_once() {
        let t0 = Instant::now();
        let mut machine = Reconnect::new(policy(), true);
        for _ in 0..4 {
            machine.failed(t0, NOW, 0.5);
        }

        assert_eq!(machine.network(false), Some(Next::Pause));
        assert_eq!(machine.failed(t0, NOW, 0.5), Next::Pause);
        assert_eq!(machine.network(false), None);
        assert_eq!(machine.network(true), Some(Next::Connect { attempt: 0 }));
        assert_eq!(delay(machine.failed(t0, NOW, 0.5)), ms(50));
    }

    #[test]
    fn test_stop_wins_over_everything() {
        let t0 = Instant::now();
        let mut machine = Reconnect::new(policy(), false);

        assert_eq!(machine.stop(), Next::Stop);
        assert_eq!(machine.network(true), None);
        assert_eq!(machine.failed(t0, NOW, 0.5), Next::Stop);
    }

    /// Against a server that refuses every attempt, the attempts within a window stay few: the
    /// waits add up to the window long before the attempts pile up.
    #[test]
    fn test_refused_attempts_in_a_window_stay_within_the_backoff_bound() {
        let mut rng = fastrand::Rng::with_seed(7);
        let window = Duration::from_secs(60);
        let mut machine = Reconnect::new(policy(), true);
        let t0 = Instant::now();

        let mut elapsed = Duration::ZERO;
        let mut attempts = 1;
        while let Next::Wait { delay, .. } = machine.failed(t0 + elapsed, NOW, rng.f64()) {
            elapsed += delay;
            if elapsed > window {
                break;
            }
            attempts += 1;
        }

        // Once at the cap the mean wait is max_delay / 2, so about 120 attempts fit in a minute.
        assert!((60..=180).contains(&attempts), "{attempts} attempts");
    }
}
