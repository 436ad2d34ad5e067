//! How loudly a failed outgoing connect is logged (not in the C++, whose
//! `CBaseSocket` logs nothing and whose servers log each reconnect try).
//!
//! A peer server that is down is retried with back-off for as long as it
//! stays down (`serv_info`), so logging every failed try at `warn` fills an
//! operator's log with one line per try per peer. Here the first failure
//! to an address since it last connected is a `warn`, each further one a
//! `debug`, and the connect that ends such a run says how many tries
//! failed before it, at `info`.

use std::collections::HashMap;
use std::net::SocketAddr;

/// Most addresses remembered as failing: outgoing connects go to the
/// configured peer servers, a handful; past this the table starts over
/// (the next failures are loud again, nothing else changes).
const MAX_FAILING: usize = 1024;

/// The addresses whose last connect failed, with how many in a row.
#[derive(Default)]
pub(super) struct ConnectLog {
    failing: HashMap<SocketAddr, u32>,
}

impl ConnectLog {
    /// A connect to `addr` failed: true when it is the first failure since
    /// `addr` last connected (log it at `warn`; the rest at `debug`).
    pub fn failed(&mut self, addr: Option<SocketAddr>) -> bool {
        let Some(addr) = addr else {
            return true;
        };
        if self.failing.len() >= MAX_FAILING && !self.failing.contains_key(&addr) {
            self.failing.clear();
        }
        let n = self.failing.entry(addr).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// A connect to `addr` succeeded: how many tries had failed right
    /// before it (0 when none).
    pub fn connected(&mut self, addr: Option<SocketAddr>) -> u32 {
        addr.and_then(|a| self.failing.remove(&a)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn only_the_first_failure_of_a_run_is_loud() {
        let mut log = ConnectLog::default();
        assert!(log.failed(addr(1)));
        assert!(!log.failed(addr(1)));
        assert!(!log.failed(addr(1)));
        assert!(log.failed(addr(2)), "another peer's first failure");
        assert_eq!(log.connected(addr(1)), 3);
        assert_eq!(log.connected(addr(1)), 0, "the run is over");
        assert!(log.failed(addr(1)), "a new run is loud again");
        assert!(log.failed(None), "an unknown address is always loud");
        assert_eq!(log.connected(None), 0);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut log = ConnectLog::default();
        for port in 0..(MAX_FAILING as u16 * 2) {
            log.failed(addr(port));
            assert!(log.failing.len() <= MAX_FAILING);
        }
    }
}
