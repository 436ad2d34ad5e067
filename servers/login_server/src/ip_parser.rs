//! Which of a msg_server's two addresses an HTTP client gets first: the C++
//! `ipparser.cpp` (`IpParser::isTelcome`).
//!
//! The C++ never looks the address up in a carrier table: it calls a peer
//! "telecom" when its text splits into four parts at `.`, that is every
//! IPv4 peer (and an IPv4-mapped IPv6 one). We keep exactly that rule.

use std::net::IpAddr;

/// `IpParser::isTelcome`: true when the peer's address, as text, has four
/// `.`-separated parts (counting every separator, as `CStrExplode` does).
/// `None` (no known peer) is not telecom, as the C++ says for `NULL`.
pub fn is_telecom(peer: Option<IpAddr>) -> bool {
    peer.is_some_and(|ip| ip.to_string().split('.').count() == 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn ipv4_is_telecom_ipv6_is_not() {
        assert!(is_telecom(ip("127.0.0.1")));
        assert!(is_telecom(ip("10.20.30.40")));
        assert!(is_telecom(ip("::ffff:1.2.3.4")));
        assert!(!is_telecom(ip("::1")));
        assert!(!is_telecom(ip("2001:db8::7")));
        assert!(!is_telecom(None));
    }
}
