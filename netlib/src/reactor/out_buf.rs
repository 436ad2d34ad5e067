//! A connection's out-buffer: the C++ `CImConn::m_out_buf` and the write
//! half of `CImConn::Send` / `OnWrite` (`imconn.cpp`, over
//! `CBaseSocket::Send` in `BaseSocket.cpp`).
//!
//! Differences from the C++:
//! - It is capped ([`DEFAULT_OUT_BUF_CAP`], 64 MiB): a push that would take
//!   the unsent bytes past the cap is refused and the reactor closes the
//!   connection (the C++ buffers for a peer that never reads, forever).
//! - Written bytes are dropped once they are at least [`KEPT_CAPACITY`] and
//!   half of the buffer, so memory follows the backlog even when the peer
//!   keeps up only just and the buffer never empties (the C++ `CSimpleBuffer`
//!   moves its tail down on every read of it).
//! - Once drained, the buffer keeps at most [`KEPT_CAPACITY`] (64 KiB) of
//!   capacity: every send passes through it, so thousands of idle
//!   connections must not each hold the biggest reply they were ever sent;
//!   one of at most [`SMALL_CAPACITY`] (4 KiB) is freed, so an idle client
//!   holds no buffer at all between replies (a few hundred bytes each,
//!   times a million clients), and a busy link keeps its buffer.
//!
//! It knows nothing of sockets: [`OutBuf::write_to`] takes any
//! [`Write`], so the rules above are unit-tested on a fake writer.

use std::io::{self, ErrorKind, Write};

/// `NETLIB_MAX_SOCKET_BUF_SIZE`: the most one `write` call is given (128 KiB).
pub const NETLIB_MAX_SOCKET_BUF_SIZE: usize = 128 * 1024;
/// Default cap of one connection's out-buffer (64 MiB): past it the peer is
/// not reading, and the connection is closed.
pub const DEFAULT_OUT_BUF_CAP: usize = 64 * 1024 * 1024;
/// What a drained buffer keeps of its capacity, and how much written prefix
/// it tolerates before compacting (64 KiB).
pub const KEPT_CAPACITY: usize = 64 * 1024;
/// A drained buffer of at most this capacity is freed (4 KiB): cheap to
/// allocate again, and what every idle connection would otherwise hold.
pub const SMALL_CAPACITY: usize = 4 * 1024;

/// A push would take the backlog past the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverCap {
    /// The cap that was hit.
    pub cap: usize,
}

/// Bytes owed to one peer, in order, with the part already written.
#[derive(Debug)]
pub(crate) struct OutBuf {
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    pos: usize,
    cap: usize,
}

impl OutBuf {
    /// An empty buffer that holds at most `cap` unsent bytes.
    pub fn new(cap: usize) -> OutBuf {
        OutBuf {
            buf: Vec::new(),
            pos: 0,
            cap,
        }
    }

    /// Bytes queued that the writer has not taken yet.
    pub fn backlog(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Bytes the buffer holds, written ones not yet dropped included.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// Capacity of the underlying allocation.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Changes the cap; what is queued stays.
    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
    }

    /// Appends `bytes` after what is queued, unless the backlog would then
    /// pass the cap (only unsent bytes count).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), OverCap> {
        if self.backlog() + bytes.len() > self.cap {
            return Err(OverCap { cap: self.cap });
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Writes the backlog to `w` as far as it takes it (until `WouldBlock`),
    /// at most [`NETLIB_MAX_SOCKET_BUF_SIZE`] per call. `Ok(true)` when all
    /// of it is written: the buffer is then empty and keeps at most
    /// [`KEPT_CAPACITY`] of capacity, none if it had [`SMALL_CAPACITY`] or less.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<bool> {
        if self.backlog() > 0 {
            self.pos += write_chunks(w, &self.buf[self.pos..])?;
            // A reader that keeps up only just never empties the buffer:
            // drop what is written once it is half of it, so memory follows
            // the backlog (which the cap bounds), not everything ever sent.
            if self.pos >= KEPT_CAPACITY && self.pos * 2 >= self.buf.len() {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            if self.backlog() > 0 {
                return Ok(false);
            }
        }
        self.buf.clear();
        self.pos = 0;
        let capacity = self.buf.capacity();
        if capacity > KEPT_CAPACITY || capacity <= SMALL_CAPACITY {
            self.buf = Vec::new();
        }
        Ok(true)
    }
}

/// Writes as much of `bytes` as `w` takes, at most
/// [`NETLIB_MAX_SOCKET_BUF_SIZE`] per call; returns how much was written.
/// `WouldBlock` ends it with what was written so far; other errors fail it.
fn write_chunks<W: Write>(w: &mut W, bytes: &[u8]) -> io::Result<usize> {
    let mut offset = 0;
    while offset < bytes.len() {
        let end = bytes.len().min(offset + NETLIB_MAX_SOCKET_BUF_SIZE);
        match w.write(&bytes[offset..end]) {
            Ok(0) => return Err(io::Error::from(ErrorKind::WriteZero)),
            Ok(n) => offset += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket stand-in: takes at most `room` bytes, then `WouldBlock`
    /// until the test makes room again (the peer read some).
    #[derive(Default)]
    struct Peer {
        room: usize,
        got: Vec<u8>,
        biggest_call: usize,
        fail: Option<ErrorKind>,
    }

    impl Write for Peer {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if let Some(kind) = self.fail {
                return Err(kind.into());
            }
            self.biggest_call = self.biggest_call.max(b.len());
            let n = b.len().min(self.room);
            if n == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            self.room -= n;
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_add(seed)).collect()
    }

    #[test]
    fn partial_writes_keep_every_byte_in_order() {
        let mut out = OutBuf::new(DEFAULT_OUT_BUF_CAP);
        let mut peer = Peer {
            room: 10,
            ..Peer::default()
        };
        let mut sent = Vec::new();
        for (n, seed) in [(25, 1), (300_000, 2), (7, 3)] {
            let b = bytes(n, seed);
            out.push(&b).unwrap();
            sent.extend_from_slice(&b);
            assert!(!out.write_to(&mut peer).unwrap(), "the peer took only part");
            peer.room = 1_000;
        }
        assert_eq!(out.backlog(), sent.len() - peer.got.len());
        peer.room = usize::MAX;
        assert!(out.write_to(&mut peer).unwrap());
        assert_eq!(peer.got, sent);
        assert_eq!(out.backlog(), 0);
        assert!(
            peer.biggest_call <= NETLIB_MAX_SOCKET_BUF_SIZE,
            "one write was given {} bytes",
            peer.biggest_call
        );
    }

    #[test]
    fn the_cap_counts_only_unsent_bytes() {
        let mut out = OutBuf::new(100);
        out.push(&[1; 60]).unwrap();
        assert_eq!(out.push(&[2; 41]), Err(OverCap { cap: 100 }));
        assert_eq!(out.backlog(), 60, "a refused push adds nothing");
        out.push(&[2; 40]).unwrap(); // exactly at the cap
        let mut peer = Peer {
            room: 50,
            ..Peer::default()
        };
        assert!(!out.write_to(&mut peer).unwrap());
        // 50 unsent left: 50 more fit, 51 do not.
        assert!(out.push(&[3; 51]).is_err());
        out.push(&[3; 50]).unwrap();
        out.set_cap(10);
        assert!(out.push(&[4; 1]).is_err(), "a lowered cap holds at once");
        assert_eq!(out.backlog(), 100);
    }

    /// One of the two recent fixes (39e275b): the written prefix was freed only when
    /// the backlog reached exactly 0, so a peer that reads steadily but
    /// never quite catches up grew the buffer without bound.
    #[test]
    fn memory_follows_the_backlog_with_a_slow_steady_reader() {
        let cap = 1 << 20;
        let mut out = OutBuf::new(cap);
        let mut peer = Peer::default();
        let chunk = vec![7u8; 64 * 1024];
        // The peer reads nothing until we hold a backlog of 256 KiB...
        for _ in 0..4 {
            out.push(&chunk).unwrap();
            assert!(!out.write_to(&mut peer).unwrap());
        }
        // ...then exactly as fast as we send, for 25 MiB.
        let mut most = 0;
        for _ in 0..400 {
            out.push(&chunk).unwrap();
            peer.room = chunk.len();
            assert!(!out.write_to(&mut peer).unwrap());
            assert_eq!(out.backlog(), 256 * 1024);
            most = most.max(out.held());
        }
        assert!(most <= 2 * cap, "holds {most} bytes for a 256 KiB backlog");
    }

    /// The other fix (0e3f866): every send passes through the buffer, so a
    /// drained one must not keep the capacity of the biggest reply it held.
    #[test]
    fn a_drained_buffer_keeps_at_most_64_kib() {
        let mut out = OutBuf::new(DEFAULT_OUT_BUF_CAP);
        let mut peer = Peer {
            room: usize::MAX,
            ..Peer::default()
        };
        out.push(&bytes(4 << 20, 0)).unwrap();
        assert!(out.write_to(&mut peer).unwrap());
        assert!(out.capacity() <= KEPT_CAPACITY, "{}", out.capacity());
        // A busy link's capacity is kept for the next reply.
        out.push(&bytes(10_000, 1)).unwrap();
        assert!(out.write_to(&mut peer).unwrap());
        let kept = out.capacity();
        assert!((10_000..=KEPT_CAPACITY).contains(&kept), "{kept}");
        out.push(&bytes(10_000, 2)).unwrap();
        assert_eq!(out.capacity(), kept, "no new allocation for the next reply");
        assert_eq!(peer.got.len(), (4 << 20) + 10_000);
    }

    /// An idle client holds no buffer between its (small) replies.
    #[test]
    fn a_drained_small_buffer_is_freed() {
        let mut out = OutBuf::new(DEFAULT_OUT_BUF_CAP);
        let mut peer = Peer {
            room: usize::MAX,
            ..Peer::default()
        };
        out.push(&bytes(16, 0)).unwrap();
        out.push(&bytes(300, 1)).unwrap();
        assert!(out.capacity() >= 316);
        assert!(out.write_to(&mut peer).unwrap());
        assert_eq!(out.capacity(), 0, "a drained small buffer is freed");
        assert_eq!(peer.got.len(), 316);
        // Half written: the backlog keeps its buffer until it is out.
        out.push(&bytes(100, 2)).unwrap();
        peer.room = 40;
        assert!(!out.write_to(&mut peer).unwrap());
        assert!(out.capacity() >= 100);
        peer.room = usize::MAX;
        assert!(out.write_to(&mut peer).unwrap());
        assert_eq!(out.capacity(), 0);
        assert_eq!(peer.got.len(), 416);
    }

    #[test]
    fn write_errors_are_reported_not_retried() {
        let mut out = OutBuf::new(DEFAULT_OUT_BUF_CAP);
        out.push(&[1; 10]).unwrap();
        let mut peer = Peer {
            fail: Some(ErrorKind::BrokenPipe),
            ..Peer::default()
        };
        assert_eq!(
            out.write_to(&mut peer).unwrap_err().kind(),
            ErrorKind::BrokenPipe
        );
        struct Zero;
        impl Write for Zero {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert_eq!(
            out.write_to(&mut Zero).unwrap_err().kind(),
            ErrorKind::WriteZero
        );
        assert_eq!(out.backlog(), 10);
    }
}
