//! Sending on, flushing and closing one connection: the write half of the
//! C++ `CImConn::Send` (`imconn.cpp`), `CBaseSocket::Send`/`Close`
//! (`BaseSocket.cpp`), `netlib_send` and `netlib_close` (`netlib.cpp`).
//!
//! Differences from the C++:
//! - What one event sends is written once per destination after the event
//!   (the C++ writes each PDU at once): a status notify fanned out to
//!   thousands of clients, 64 per event, costs one write per client. What
//!   the kernel does not take waits in the connection's [`OutBuf`], in
//!   order, and is written on the next writable event.
//! - The out-buffer is capped ([`Reactor::set_out_buf_cap`]): a peer that
//!   never reads gets its connection closed instead of growing our memory.
//! - A handler runs with its connection's entry taken out of the table, so
//!   it may use the reactor freely (send to others, close itself...); its
//!   `on_close` runs exactly once, after the callback that closed it.
//!
//! [`OutBuf`]: super::out_buf::OutBuf

use super::ids::conn_token;
use super::{ConnId, NetError, Reactor};
use crate::imconn::{Ctx, ImConn};
use base::pdu::ImPdu;
use mio::Interest;

impl<S: 'static> Reactor<S> {
    /// Sends a whole PDU on `id`.
    pub fn send_pdu(&mut self, id: ConnId, pdu: &ImPdu) -> Result<(), NetError> {
        self.send(id, pdu.as_bytes())
    }

    /// Sends `msg` on `id` under the command its type is carried by, with
    /// `seq`: one call for what servers otherwise write as "build the PDU,
    /// log if it does not encode, send it". An encode failure is logged
    /// here too, so callers may ignore the result as the C++ does.
    pub fn send_msg<M: tt_proto::Command>(
        &mut self,
        id: ConnId,
        seq: u16,
        msg: &M,
    ) -> Result<(), NetError> {
        match ImPdu::for_msg(seq, msg) {
            Ok(pdu) => self.send_pdu(id, &pdu),
            Err(source) => {
                let e = NetError::Encode {
                    service_id: M::SID,
                    command_id: M::CID,
                    source,
                };
                log::error!("connection {id}: {e}");
                Err(e)
            }
        }
    }

    /// `CImConn::Send`: queues `bytes`, in order, to be written once the
    /// current event (or, outside events, the current turn) is handled, as
    /// far as the kernel takes them; the rest when the socket is writable
    /// again. Everything one event sends to a connection goes out in one
    /// write (the C++ writes each PDU at once). Fails only when the
    /// connection is not open; the out-buffer cap closes the connection.
    pub fn send(&mut self, id: ConnId, bytes: &[u8]) -> Result<(), NetError> {
        let now = self.now_ms();
        // The table's entry, not `conn_mut`: the counters beside it are
        // bumped while it is borrowed.
        let conn = self
            .conns
            .get_mut(id.slot())
            .filter(|c| c.serial == id.serial && !c.closed)
            .ok_or(NetError::NotConnected(id))?;
        conn.last_send = now;
        // A backlog already there waits for the socket to be writable (or
        // for this turn's flush); only an idle connection joins the flush.
        let idle = conn.out.backlog() == 0;
        if let Err(full) = conn.out.push(bytes) {
            self.stats.out_buf_full_closes += 1;
            log::warn!(
                "connection {id} ({:?}): peer is not reading, out-buffer over {} bytes; closing",
                conn.peer,
                full.cap
            );
            self.close(id);
            return Err(NetError::NotConnected(id));
        }
        if let Some(k) = self.stats.kinds.get_mut(conn.kind) {
            k.bytes_out += bytes.len() as u64;
        }
        if !conn.raw {
            self.stats.count_sent_pdus(bytes);
        }
        if idle && !conn.connecting && !conn.flush_queued {
            conn.flush_queued = true;
            self.to_flush.push(id);
        }
        Ok(())
    }

    /// Writes what `send` queued this turn, as the C++ `Send` would have
    /// written it at once; what the kernel does not take waits for the
    /// socket to be writable.
    pub(super) fn flush(&mut self, state: &mut S) {
        while !self.to_flush.is_empty() {
            for id in std::mem::take(&mut self.to_flush) {
                self.flush_one(state, id);
            }
            self.reap(state);
        }
    }

    fn flush_one(&mut self, state: &mut S, id: ConnId) {
        match self.conn_mut(id) {
            Some(c) if c.flush_queued => c.flush_queued = false,
            _ => return,
        }
        if self.write_backlog(id) == Some(true) {
            self.notify_drained(state, id);
        }
    }

    /// Calls `on_write` for `id` if [`Self::notify_when_drained`] asked for
    /// it; true when it did.
    pub(super) fn notify_drained(&mut self, state: &mut S, id: ConnId) -> bool {
        match self.conn_mut(id) {
            Some(c) if c.drain_notify => c.drain_notify = false,
            _ => return false,
        }
        self.with_handler(state, id.slot(), |h, cx| h.on_write(cx));
        true
    }

    /// Asks for `ImConn::on_write` on `id` once its out-buffer is empty:
    /// after this turn's write when the kernel takes everything queued,
    /// else when the socket has drained it. Without this, `on_write` only
    /// follows a backlog that waited for the socket, so a sender that feeds
    /// the next part of a long body on `on_write` (msfs downloads) would
    /// stall whenever a part went out at once. Once per call.
    pub fn notify_when_drained(&mut self, id: ConnId) {
        if let Some(c) = self.conn_mut(id) {
            c.drain_notify = true;
            if !c.flush_queued && !c.connecting {
                c.flush_queued = true;
                self.to_flush.push(id);
            }
        }
    }

    /// Writes `id`'s backlog as far as the kernel takes it. `Some(true)` when
    /// all of it is written; a connection marked close-after-flush is then
    /// closed (`None`, as when the write fails).
    pub(super) fn write_backlog(&mut self, id: ConnId) -> Option<bool> {
        // The table's entry, not `conn_mut`: the registry beside it is used
        // while it is borrowed.
        let conn = self
            .conns
            .get_mut(id.slot())
            .filter(|c| c.serial == id.serial && !c.closed)?;
        match conn.out.write_to(&mut conn.stream) {
            Ok(false) if conn.write_interest => Some(false),
            Ok(false) => {
                // The first backlog: from now on writable events are
                // wanted (one that came meanwhile is reported on the
                // change).
                conn.write_interest = true;
                let token = conn_token(id.slot(), conn.serial);
                let both = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = self
                    .poll
                    .registry()
                    .reregister(&mut conn.stream, token, both)
                {
                    log::info!(
                        "connection {id} ({:?}): cannot wait to write: {e}",
                        conn.peer
                    );
                    self.close(id);
                    return None;
                }
                Some(false)
            }
            Ok(true) if conn.close_after_flush => {
                self.close(id);
                None
            }
            Ok(true) => Some(true),
            Err(e) => {
                log::info!("connection {id} ({:?}): write failed: {e}", conn.peer);
                self.close(id);
                None
            }
        }
    }

    /// `netlib_close`: closes `id` now (unsent bytes are dropped, as in the
    /// C++); its handler's `on_close` runs after the current callback.
    pub fn close(&mut self, id: ConnId) {
        let Some(conn) = self
            .conns
            .get_mut(id.slot())
            .filter(|c| c.serial == id.serial && !c.closed)
        else {
            return;
        };
        if conn.flush_queued {
            // Queued this turn: the C++ would have written it already.
            conn.flush_queued = false;
            let _ = conn.out.write_to(&mut conn.stream);
        }
        conn.closed = true;
        // The FIN goes now. No `epoll_ctl(DEL)`: the socket is closed when
        // `reap` drops it, before the next poll but for a close called
        // between turns, and closing takes it out of epoll (it is never
        // duplicated); an event for it meanwhile finds it closed.
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        self.pending_close.push(id.slot());
    }

    /// Closes `id` once its out-buffer is written (at once if it is empty).
    pub fn close_after_flush(&mut self, id: ConnId) {
        match self.conn_mut(id) {
            Some(c) if c.out.backlog() > 0 || c.connecting => c.close_after_flush = true,
            Some(_) => self.close(id),
            None => {}
        }
    }

    /// Closes `id` for input that is not a PDU, saying why.
    pub(super) fn close_bad_input(&mut self, id: ConnId, e: &dyn std::fmt::Display) {
        self.stats.bad_input_closes += 1;
        log::warn!(
            "connection {id} ({:?}) sent a bad PDU, closing it: {e}",
            self.peer_addr(id)
        );
        self.close(id);
    }

    /// Calls `f` on the handler of connection slot `key`, with a [`Ctx`].
    /// The handler is taken out of the table for the call, so it may use
    /// the reactor freely (send to others, close itself...).
    pub(super) fn with_handler(
        &mut self,
        state: &mut S,
        key: usize,
        f: impl FnOnce(&mut dyn ImConn<S>, &mut Ctx<'_, S>),
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.closed {
            return;
        }
        let serial = conn.serial;
        let Some(mut handler) = conn.handler.take() else {
            return;
        };
        let id = ConnId {
            key: key as u32,
            serial,
        };
        f(
            handler.as_mut(),
            &mut Ctx {
                net: self,
                state,
                id,
            },
        );
        if let Some(conn) = self.conns.get_mut(key).filter(|c| c.serial == serial) {
            conn.handler = Some(handler);
        }
    }
}
