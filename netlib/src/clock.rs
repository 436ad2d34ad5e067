//! Where a reactor reads the time: the C++ `get_tick_count` (`util.cpp`),
//! which every `OnTimer`, heartbeat and timer of the C++ reads directly.
//!
//! Differences from the C++: the C++ reads the wall clock, so a clock step
//! can time out every connection at once; [`SystemClock`] is monotonic.
//! And the time is the reactor's, not a global: a test gives it a
//! [`ManualClock`] and moves time on with [`ManualClock::advance`], so a
//! 30 s timeout is checked in a few milliseconds, to the millisecond.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A source of milliseconds for a [`Reactor`](crate::Reactor): connection
/// ticks (`conn_ticks`, `keep_alive`, the `now` of `on_timer`), timers and
/// so the reconnect back-off of [`ServList`](crate::ServList), which counts
/// timer ticks.
pub trait Clock {
    /// Milliseconds since some fixed start; never goes back.
    fn now_ms(&self) -> u64;
}

/// The process's monotonic clock ([`base::tick::monotonic_ms`]), what every
/// server runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        base::tick::monotonic_ms()
    }
}

/// A clock that moves only when told; clones share one time, so a test
/// keeps a clone to drive a reactor running on another thread.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock showing `start_ms`.
    pub fn new(start_ms: u64) -> ManualClock {
        ManualClock {
            ms: Arc::new(AtomicU64::new(start_ms)),
        }
    }

    /// Moves the time on by `ms`.
    pub fn advance(&self, ms: u64) {
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = ManualClock::new(1_000);
        let shared = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        shared.advance(250);
        assert_eq!(clock.now_ms(), 1_250);
        let a = SystemClock.now_ms();
        assert!(SystemClock.now_ms() >= a);
    }
}
