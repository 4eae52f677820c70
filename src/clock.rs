//! The wall clock, injected: refreshers, the cache file and the transport read it through
//! [`Clock`] so tests can step time (a day of refreshes, a key's backoff, a full re-read coming
//! due, a rate-limit window running out) without sleeping.
//!
//! Wall-clock facts go through it (Unix times written into readings and compared with them,
//! `X-RateLimit-Reset`), and so do the waits measured against them: the transport's pacer
//! holds requests until a `Retry-After` or a rate-limit window has passed with
//! [`Clock::sleep_until`]. Other waiting (refresh intervals, deadlines, the jittered backoff of
//! a failed request) uses tokio's timer, which tests pause and advance on their own.

use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;

/// A source of "now", and a way to wait for a moment of it.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> SystemTime;

    /// Now, in whole Unix seconds (the unit of every timestamp in a reading).
    fn unix_now(&self) -> i64 {
        unix_seconds(self.now())
    }

    /// Resolves once this clock has reached `deadline` (at once if it has already).
    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()>;
}

/// Whole Unix seconds of `t` (0 before 1970).
pub fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix seconds of `t` with their fraction (0 before 1970), as exposition values are.
pub fn unix_seconds_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    /// Sleeps on tokio's timer for what is left until `deadline` now.
    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ManualClock;

    #[tokio::test]
    async fn a_wait_on_a_manual_clock_moves_it_to_the_deadline_and_never_back() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = ManualClock::at(t0);
        clock.sleep_until(t0 + Duration::from_secs(2)).await;
        assert_eq!(clock.now(), t0 + Duration::from_secs(2));
        // A deadline already passed: no move.
        clock.sleep_until(t0 + Duration::from_secs(1)).await;
        assert_eq!(clock.now(), t0 + Duration::from_secs(2));
        assert_eq!(clock.waited(), Duration::from_secs(2));
        // Moving it by hand is not a wait.
        clock.advance(Duration::from_secs(60));
        assert_eq!(clock.waited(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn the_system_clock_sleeps_on_tokios_timer_for_what_is_left() {
        let start = tokio::time::Instant::now();
        SystemClock
            .sleep_until(SystemTime::now() + Duration::from_secs(30))
            .await;
        assert!(
            start.elapsed() >= Duration::from_secs(29),
            "{:?}",
            start.elapsed()
        );
        let start = tokio::time::Instant::now();
        SystemClock
            .sleep_until(SystemTime::now() - Duration::from_secs(30))
            .await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
