//! Test support: what the unit and integration tests and the benchmarks use to drive the
//! exporter, and nothing the exporter itself runs on. A clock that moves only when told to
//! ([`ManualClock`]), and the exposition of a fixed snapshot at a fixed moment
//! ([`encode_snapshot_at`], the golden file's).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;

use crate::clock::Clock;
use crate::metrics::{snapshot_only, Format};
use crate::snapshot::{FoundationSnapshot, Snapshot, Store};

/// A clock that moves only when told to, or when something waits on it: a wait moves it to
/// the waiter's deadline at once (virtual time, as tokio's paused clock advances itself), so a
/// test's `Retry-After` costs no real time. [`ManualClock::waited`] says how far waits moved it.
#[derive(Debug)]
pub struct ManualClock(Mutex<Manual>);

#[derive(Debug)]
struct Manual {
    now: SystemTime,
    /// How far waits have moved the clock, in all.
    waited: Duration,
}

impl ManualClock {
    pub fn at(t: SystemTime) -> Self {
        ManualClock(Mutex::new(Manual {
            now: t,
            waited: Duration::ZERO,
        }))
    }

    /// Starting at this very moment of the system clock.
    pub fn starting_now() -> Self {
        Self::at(SystemTime::now())
    }

    pub fn advance(&self, by: Duration) {
        self.lock().now += by;
    }

    pub fn set(&self, t: SystemTime) {
        self.lock().now = t;
    }

    /// How far waits ([`Clock::sleep_until`]) have moved this clock so far.
    pub fn waited(&self) -> Duration {
        self.lock().waited
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Manual> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.lock().now
    }

    /// Moves the clock to `deadline` if it is behind it, then yields once (a wait is still a
    /// point where other tasks run).
    fn sleep_until(&self, deadline: SystemTime) -> BoxFuture<'static, ()> {
        {
            let mut manual = self.lock();
            if let Ok(ahead) = deadline.duration_since(manual.now) {
                manual.now = deadline;
                manual.waited += ahead;
            }
        }
        Box::pin(tokio::task::yield_now())
    }
}

/// Renders one snapshot alone at a fixed clock, as Prometheus asks for it (OpenMetrics; golden
/// tests and benchmarks).
pub fn encode_snapshot_at(snapshot: Snapshot, now: SystemTime) -> String {
    let store = Arc::new(Store::new());
    for (name, f) in snapshot.foundations {
        store.publish(&name, FoundationSnapshot::clone(&f));
    }
    snapshot_only(store, Arc::new(ManualClock::at(now))).encode(Format::OpenMetrics)
}
