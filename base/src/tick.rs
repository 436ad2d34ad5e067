//! Millisecond clocks: the C++ `util.cpp::get_tick_count`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch, what the C++ `get_tick_count`
/// returns (it reads `gettimeofday`). Used where ticks are compared with
/// values from other processes or stored.
pub fn get_tick_count() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Wall-clock seconds since the Unix epoch (the C++ `time(NULL)`), as the
/// protocol's `created`/`update_time` fields carry.
pub fn unix_time() -> u32 {
    (get_tick_count() / 1000) as u32
}

/// Milliseconds on a monotonic clock since the first call in this process.
/// Heartbeat and timeout checks use this so a wall-clock step never drops
/// every connection at once (the C++ uses the wall clock there too).
pub fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_move_forward() {
        let a = monotonic_ms();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(monotonic_ms() > a);
        // 2020-01-01 in ms: the wall clock is plausible.
        assert!(get_tick_count() > 1_577_836_800_000);
        assert!(unix_time() > 1_577_836_800);
    }
}
