//! Connection and timer ids, and the mio tokens that carry them: what the
//! C++ `netlib.cpp` hands out as `net_handle_t` (the socket's fd) and
//! `EventDispatch.cpp` keys its timer list by (the callback pointer).
//!
//! Differences from the C++: an fd is reused by the kernel as soon as it is
//! closed, so a late reply or a stale epoll event can reach the next
//! connection on that fd. Here a [`ConnId`] is a slab slot plus a serial
//! number that is never reused while the process lives (it wraps after
//! four billion connections, skipping 0), a token carries the serial's low
//! 28 bits so an event left over from a closed connection is dropped, and
//! a [`TimerId`] likewise goes stale once its timer is deleted.

use mio::Token;

/// A connection, as handed to handlers and kept in tables (the C++ uses
/// the socket handle). The serial makes an id stale once its connection
/// has closed, even if the slot is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(super) key: u32,
    pub(super) serial: u32,
}

impl ConnId {
    /// The id as one number, for attach data carried through other servers.
    pub fn to_u64(self) -> u64 {
        (u64::from(self.serial) << 32) | u64::from(self.key)
    }

    /// The inverse of [`to_u64`](Self::to_u64).
    pub fn from_u64(v: u64) -> ConnId {
        ConnId {
            key: v as u32,
            serial: (v >> 32) as u32,
        }
    }

    /// The slab slot of the connection.
    pub(crate) fn slot(self) -> usize {
        self.key as usize
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}.{}", self.key, self.serial)
    }
}

/// A registered timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    pub(super) key: usize,
    /// Makes an id stale once its timer is deleted, even if the slot is reused.
    pub(super) serial: u64,
}

/// The token of the cross-thread waker ([`crate::Remote`]).
pub(super) const WAKER_TOKEN: Token = Token(usize::MAX);
/// Listener tokens have this bit set.
const LISTENER_BIT: usize = 1 << (usize::BITS - 2);
/// Connection tokens: the slab key in the low 32 bits and the low bits of
/// the connection's serial above them, so an event left over from a closed
/// connection never reaches a new one in the same slot.
pub(super) const TOKEN_SERIAL_MASK: u32 = (1 << 28) - 1;

/// The token a connection in slot `key` with `serial` is registered under.
pub(super) fn conn_token(key: usize, serial: u32) -> Token {
    Token(key | ((serial & TOKEN_SERIAL_MASK) as usize) << 32)
}

/// The token of the listener in slot `key`.
pub(super) fn listener_token(key: usize) -> Token {
    Token(key | LISTENER_BIT)
}

/// What a polled token names.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Target {
    /// The cross-thread waker.
    Waker,
    /// The listener in this slot.
    Listener(usize),
    /// The connection in slot `key` whose serial's low bits are `serial_bits`.
    Conn { key: usize, serial_bits: u32 },
}

/// Decodes a token made by [`conn_token`], [`listener_token`] or [`WAKER_TOKEN`].
pub(super) fn target(token: Token) -> Target {
    if token == WAKER_TOKEN {
        Target::Waker
    } else if token.0 & LISTENER_BIT != 0 {
        Target::Listener(token.0 & !LISTENER_BIT)
    } else {
        Target::Conn {
            key: token.0 & 0xffff_ffff,
            serial_bits: ((token.0 >> 32) as u32) & TOKEN_SERIAL_MASK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        assert_eq!(target(WAKER_TOKEN), Target::Waker);
        assert_eq!(target(listener_token(7)), Target::Listener(7));
        let serial = TOKEN_SERIAL_MASK + 5; // high bits are cut off
        assert_eq!(
            target(conn_token(42, serial)),
            Target::Conn {
                key: 42,
                serial_bits: 4
            }
        );
    }

    #[test]
    fn conn_id_survives_u64() {
        let id = ConnId { key: 3, serial: 9 };
        assert_eq!(ConnId::from_u64(id.to_u64()), id);
        assert_eq!(id.to_string(), "#3.9");
    }
}
