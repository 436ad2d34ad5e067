//! How a worker waits for MySQL or Redis to come back (not in the C++,
//! whose Redis pool tries a lost connection at most once per 4 s and whose
//! MySQL pool fails the request at once).
//!
//! A request that needs a store whose connection is lost tries to connect
//! again at once, then after 50 ms, 100 ms, 250 ms and every 500 ms, for
//! at most [`STORE_WAIT`]; then it fails as in the C++ (the handler's
//! failure answer, never an ack for what was not stored). So a store
//! restart of a second or two costs latency, and a longer outage a
//! bounded wait per request, never a hang.
//!
//! [`next_wait`] is the pure decision; [`with_retries`] does the sleeping.

use std::time::{Duration, Instant};

/// Longest a request waits for its store to come back.
pub const STORE_WAIT: Duration = Duration::from_millis(2_500);
/// The waits before the second, third... try (then the last one again).
const RETRY_DELAYS_MS: [u64; 4] = [50, 100, 250, 500];

/// After `failed` failed tries, `elapsed` into the wait: how long to sleep
/// before the next try, or `None` when the wait is over (the next try
/// would start past `budget`).
pub fn next_wait(failed: u32, elapsed: Duration, budget: Duration) -> Option<Duration> {
    let i = (failed.max(1) as usize - 1).min(RETRY_DELAYS_MS.len() - 1);
    let delay = Duration::from_millis(RETRY_DELAYS_MS[i]);
    (elapsed + delay <= budget).then_some(delay)
}

/// Runs `try_once` until it succeeds or `budget` is spent, sleeping
/// [`next_wait`] between tries; the last error when it never succeeded.
pub fn with_retries<T, E>(
    budget: Duration,
    mut try_once: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let start = Instant::now();
    let mut failed = 0;
    loop {
        match try_once() {
            Ok(v) => return Ok(v),
            Err(e) => {
                failed += 1;
                match next_wait(failed, start.elapsed(), budget) {
                    Some(d) => std::thread::sleep(d),
                    None => return Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_then_hold_and_stop_at_the_budget() {
        let ms = Duration::from_millis;
        let budget = STORE_WAIT;
        let waits: Vec<Option<Duration>> = (1..=6).map(|n| next_wait(n, ms(0), budget)).collect();
        assert_eq!(
            waits,
            vec![
                Some(ms(50)),
                Some(ms(100)),
                Some(ms(250)),
                Some(ms(500)),
                Some(ms(500)),
                Some(ms(500))
            ]
        );
        assert_eq!(next_wait(5, ms(2_000), budget), Some(ms(500)));
        assert_eq!(next_wait(5, ms(2_001), budget), None);
        assert_eq!(next_wait(1, ms(2_500), budget), None);
    }

    #[test]
    fn with_retries_returns_the_first_success_or_the_last_error() {
        let mut calls = 0;
        let got: Result<u32, String> = with_retries(STORE_WAIT, || {
            calls += 1;
            if calls < 3 {
                Err(format!("down {calls}"))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(got, Ok(3));
        let mut calls = 0;
        let got: Result<(), String> = with_retries(Duration::from_millis(120), || {
            calls += 1;
            Err(format!("down {calls}"))
        });
        // Tries at 0 and 50 ms; the next would start at 150 ms > 120 ms.
        assert_eq!(got, Err("down 2".to_string()));
    }
}
