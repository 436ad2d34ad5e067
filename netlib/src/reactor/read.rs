//! Reading and framing: the C++ `CImConn::OnRead` (`imconn.cpp`) over
//! `CBaseSocket::OnRead`/`Recv` (`BaseSocket.cpp`), with per-turn budgets.
//!
//! Differences from the C++:
//! - On every readable event we read until `WouldBlock` or a short read
//!   (edge-triggered, as the C++ `EPOLLET`, which always reads until
//!   `EAGAIN`: one more system call per event), but one connection gets at most
//!   [`MAX_READ_PER_EVENT`] (1 MiB) read and [`MAX_PDUS_PER_EVENT`] (64)
//!   PDUs handled per turn, the rest in the next turns (the C++ has no
//!   bound, so one peer's burst holds every timer and heartbeat).
//! - A PDU header announcing more than the connection's
//!   [`ImConn::max_pdu_len`](crate::ImConn::max_pdu_len) closes it before
//!   the body is buffered; a PDU that does not frame closes only that
//!   connection, with a log line.
//! - A peer that half-closes still gets what is queued for it.
//! - Raw connections (HTTP ports) get their bytes, not PDUs.
//! - A server can stop reading one connection ([`Reactor::pause_reading`])
//!   while the work it sent is over a bound, and take it up again: TCP
//!   then pushes back on the peer (the C++ reads and queues everything).

use super::{ConnId, Reactor};
use base::pdu::{is_pdu_available_within, ImPdu};
use std::io::{ErrorKind, Read};

/// How much one `read` call asks for.
pub(super) const READ_CHUNK: usize = 64 * 1024;
/// Most bytes read from one connection per turn before the others get
/// theirs (the rest is read on the next loop iteration).
pub const MAX_READ_PER_EVENT: usize = 1024 * 1024;

/// An empty in-buffer of up to this many bytes is freed: an idle client
/// holds no buffer between its PDUs (a few hundred bytes each, times a
/// million clients), and so small a buffer is cheap to allocate again.
pub(super) const SMALL_BUF: usize = 4 * 1024;

/// Whether an empty in-buffer of `capacity` bytes is kept for the next
/// read: a busy link's (between [`SMALL_BUF`] and 1 MiB) is, so it does not
/// grow again on every read; a small one is freed (idle clients), and so
/// is one that a single big PDU grew past 1 MiB.
pub(super) fn keeps_in_buf(capacity: usize) -> bool {
    capacity > SMALL_BUF && capacity <= 1 << 20
}

/// Whether an in-buffer holding exactly one PDU may become that PDU's
/// frame as it is: only when it is about the PDU's size (at most a quarter
/// more), as when it was allocated for the one read. A busy link's big
/// buffer is copied from instead: a handler may keep a PDU a while (queued
/// for a worker), and a small PDU must not pin 64 KiB.
fn fits_frame(len: usize, capacity: usize) -> bool {
    capacity <= len + len / 4
}

/// At most this many PDUs of one connection are handled per loop turn; the
/// rest wait in its in-buffer for the next turn. Bytes alone do not bound a
/// turn: one status notify from route_server fans out to every PC client,
/// so a login storm's notifies, read in one go, would hold the loop (and
/// every heartbeat and timer) for as long as millions of sends take.
pub const MAX_PDUS_PER_EVENT: usize = 64;

/// How a dispatch of buffered PDUs ended.
enum Dispatch {
    /// The handler paused the connection; the rest stays buffered.
    Paused,
    /// Every whole PDU was handled; the connection is open.
    Done,
    /// The turn's budget ran out with whole PDUs still buffered.
    BudgetSpent,
    /// The connection closed meanwhile.
    Closed,
}

impl<S: 'static> Reactor<S> {
    /// Remembers that `id` has more to read or handle than its turn allowed
    /// (edge-triggered: no new event will say so), once.
    pub(super) fn queue_readable(&mut self, id: ConnId) {
        if let Some(c) = self.conn_mut(id) {
            if !c.readable_queued {
                c.readable_queued = true;
                self.still_readable.push(id);
            }
        }
    }

    /// Stops reading and handling `id`: its PDUs stay in its buffer and in
    /// the kernel (whose window then fills and holds the peer back) until
    /// [`resume_reading`](Self::resume_reading). Heartbeats and timers go
    /// on, and the peer does not count as silent meanwhile (see
    /// [`conn_ticks`](Self::conn_ticks)). db_proxy pauses a msg_server
    /// link whose requests with the workers are over its bound. A no-op on
    /// a closed id.
    pub fn pause_reading(&mut self, id: ConnId) {
        if let Some(c) = self.conn_mut(id) {
            c.paused = true;
        }
    }

    /// Reads and handles `id` again: what it buffered first, then the
    /// socket (on the next turn; no event would say there is data).
    pub fn resume_reading(&mut self, id: ConnId) {
        let now = self.now_ms();
        match self.conn_mut(id) {
            Some(c) if c.paused => {
                c.paused = false;
                c.last_recv = now;
            }
            _ => return,
        }
        self.queue_readable(id);
    }

    /// True while `id` is paused by [`pause_reading`](Self::pause_reading).
    pub fn is_paused(&self, id: ConnId) -> bool {
        self.conn(id).is_some_and(|c| c.paused)
    }

    /// `CImConn::OnRead`: reads until `WouldBlock` (or a short read, below),
    /// handing every whole PDU to the handler as it arrives (so the
    /// in-buffer never holds more than one partial PDU plus one read).
    ///
    /// With `short_read_drains` (a readable event that reported no hang-up)
    /// a read that returns less than it asked for ends the turn: the
    /// socket's queue was empty then, and whatever arrives after it, data
    /// or the peer's FIN, raises a new edge. That saves the `read` that
    /// would only return `WouldBlock`, one system call per event (nginx
    /// does the same). A FIN that came before the event was reported is in
    /// its flags (`EPOLLRDHUP`), and then we read on to the end of stream.
    /// (A read also stops short at TCP urgent data; no TeamTalk peer sends
    /// any, and a peer that does stalls only its own connection.)
    pub(super) fn on_readable(&mut self, state: &mut S, id: ConnId, short_read_drains: bool) {
        let key = id.slot();
        if self.is_paused(id) {
            // Taken up again by resume_reading.
            return;
        }
        let mut taken = 0;
        let mut budget = MAX_PDUS_PER_EVENT;
        // PDUs an earlier turn's budget left in the buffer go first, before
        // anything newer (and before an end of stream) is read.
        let leftover = self
            .conn(id)
            .is_some_and(|c| !c.close_after_flush && !c.raw && !c.in_buf.is_empty());
        if leftover {
            match self.dispatch_pdus(state, id, &mut budget) {
                Dispatch::Done => {}
                Dispatch::BudgetSpent => {
                    self.queue_readable(id);
                    return;
                }
                Dispatch::Closed | Dispatch::Paused => return,
            }
        }
        loop {
            let Some(conn) = self
                .conns
                .get_mut(key)
                .filter(|c| c.serial == id.serial && !c.closed)
            else {
                return;
            };
            // Half-closed, or closing once its reply is written (the C++
            // closed at once and handled nothing more).
            if conn.read_closed || conn.close_after_flush || conn.paused {
                return;
            }
            if taken >= MAX_READ_PER_EVENT {
                // Fairness: one flooding peer must not hold the loop. The
                // edge will not fire again for what is left, so remember it.
                self.queue_readable(id);
                return;
            }
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    log::debug!("connection {id} ({:?}) closed by peer", conn.peer);
                    if conn.out.backlog() > 0 {
                        // Half-closed: the peer may still read what we owe it.
                        conn.read_closed = true;
                        conn.close_after_flush = true;
                    } else {
                        self.close(id);
                    }
                    return;
                }
                Ok(n) => {
                    taken += n;
                    if let Some(k) = self.stats.kinds.get_mut(conn.kind) {
                        k.bytes_in += n as u64;
                    }
                    conn.last_recv = self.clock.now_ms();
                    conn.in_buf.extend_from_slice(&self.read_buf[..n]);
                    let dispatched = if conn.raw {
                        if self.dispatch_raw(state, id) {
                            Dispatch::Done
                        } else {
                            Dispatch::Closed
                        }
                    } else {
                        self.dispatch_pdus(state, id, &mut budget)
                    };
                    match dispatched {
                        Dispatch::Done if short_read_drains && n < READ_CHUNK => return,
                        Dispatch::Done => {}
                        Dispatch::BudgetSpent => {
                            // The edge will not fire for what is buffered.
                            self.queue_readable(id);
                            return;
                        }
                        Dispatch::Closed | Dispatch::Paused => return,
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::info!("connection {id} ({:?}): read failed: {e}", conn.peer);
                    self.close(id);
                    return;
                }
            }
        }
    }

    /// Frames and dispatches the whole PDUs in `id`'s in-buffer, at most
    /// `budget` of them (which it lowers).
    fn dispatch_pdus(&mut self, state: &mut S, id: ConnId, budget: &mut usize) -> Dispatch {
        let key = id.slot();
        let (mut in_buf, limit) = match self.conns.get_mut(key) {
            Some(c) => (std::mem::take(&mut c.in_buf), c.max_pdu_len),
            None => return Dispatch::Closed,
        };
        let mut pos = 0;
        let mut open = true;
        let mut spent = false;
        let mut paused = false;
        loop {
            if self.conns.get(key).is_some_and(|c| c.paused) {
                paused = true;
                break;
            }
            match is_pdu_available_within(&in_buf[pos..], limit) {
                Ok(Some(_)) if *budget == 0 => {
                    spent = true;
                    break;
                }
                Ok(Some(len)) => {
                    *budget -= 1;
                    let frame =
                        if pos == 0 && len == in_buf.len() && fits_frame(len, in_buf.capacity()) {
                            // The one whole PDU read (a client's usual turn):
                            // the buffer becomes the frame, with no copy, and
                            // the idle connection keeps no buffer.
                            std::mem::take(&mut in_buf)
                        } else {
                            pos += len;
                            in_buf[pos - len..pos].to_vec()
                        };
                    let pdu = match ImPdu::from_frame(frame) {
                        Ok(p) => {
                            self.stats.pdus_in.count(p.service_id(), p.command_id());
                            p
                        }
                        Err(e) => {
                            self.close_bad_input(id, &e);
                            open = false;
                            break;
                        }
                    };
                    self.with_handler(state, key, |h, cx| h.on_pdu(cx, pdu));
                    // Closed, or closing once its reply is written: what it
                    // sent after is dropped, as when the C++ closed at once.
                    let closing = self.conns.get(key).is_some_and(|c| c.close_after_flush);
                    if !self.is_open(id) || closing {
                        open = false;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.close_bad_input(id, &e);
                    open = false;
                    break;
                }
            }
        }
        if open {
            if pos >= in_buf.len() {
                in_buf.clear();
            } else {
                in_buf.drain(..pos);
            }
            if in_buf.is_empty() && !keeps_in_buf(in_buf.capacity()) {
                in_buf = Vec::new();
            }
            if let Some(c) = self.conns.get_mut(key) {
                c.in_buf = in_buf;
            }
        }
        match (open, paused, spent) {
            (false, _, _) => Dispatch::Closed,
            (true, true, _) => Dispatch::Paused,
            (true, false, true) => Dispatch::BudgetSpent,
            (true, false, false) => Dispatch::Done,
        }
    }

    /// Hands the in-buffer of a raw connection to its handler. Returns
    /// false when the connection closed meanwhile.
    fn dispatch_raw(&mut self, state: &mut S, id: ConnId) -> bool {
        let key = id.slot();
        let mut in_buf = match self.conns.get_mut(key) {
            Some(c) => std::mem::take(&mut c.in_buf),
            None => return false,
        };
        self.with_handler(state, key, |h, cx| h.on_bytes(cx, &mut in_buf));
        match self.conn_mut(id) {
            Some(c) => {
                c.in_buf = in_buf;
                true
            }
            None => false,
        }
    }
}
