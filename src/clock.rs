//! The wall clock, injected: refreshers read it through [`Clock`] so tests can step time
//! (a day of refreshes, a key's backoff, a full re-read coming due) without sleeping.
//!
//! Only wall-clock facts go through it (Unix times written into readings and compared with
//! them). Waiting (refresh intervals, deadlines, backoff sleeps) uses tokio's timer, which
//! tests pause and advance on their own.

use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of "now".
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> SystemTime;

    /// Now, in whole Unix seconds (the unit of every timestamp in a reading).
    fn unix_now(&self) -> i64 {
        unix_seconds(self.now())
    }
}

/// Whole Unix seconds of `t` (0 before 1970).
pub fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    pub fn at(t: SystemTime) -> Self {
        ManualClock(Mutex::new(t))
    }

    /// Starting at this very moment of the system clock.
    pub fn starting_now() -> Self {
        Self::at(SystemTime::now())
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    pub fn set(&self, t: SystemTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
