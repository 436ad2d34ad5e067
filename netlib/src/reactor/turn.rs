//! One turn of the loop: the C++ `CEventDispatch::StartDispatch`
//! (`EventDispatch.cpp`) and `netlib_eventloop`/`netlib_stop_event`
//! (`netlib.cpp`), with the socket events of `CBaseSocket::OnRead`,
//! `OnWrite`, `OnClose` (`BaseSocket.cpp`) and the cross-thread inbox.
//!
//! A turn: write what was sent outside the loop; poll (no longer than the
//! next due timer, not at all when work is left over); handle each event,
//! each followed by reaping what closed and flushing what it sent; give
//! connections left over from the last turn their budget; drain the inbox;
//! run due timers, the connection tick and loop callbacks.
//!
//! Differences from the C++:
//! - Messages from other threads ([`crate::Remote`]) wake the poll at once
//!   (the C++ db_proxy's replies wait for its next 10 ms loop callback),
//!   and their inbox is bounded (the C++ list is not).
//! - Every connection closed during a turn gets its `on_close` once, after
//!   the callback that closed it, then leaves the table (the C++ calls
//!   `OnClose` from wherever the close happened, sometimes twice).
//! - Signals are forwarded to the loop thread and handled there.

use super::ids::{self, Target, TOKEN_SERIAL_MASK};
use super::{ConnId, Reactor};
use crate::imconn::Ctx;
use crate::remote::{Inbox, Remote};
use std::io::{self, ErrorKind};
use std::time::Duration;

impl<S: 'static> Reactor<S> {
    /// A handle other threads use to run code on this loop, waking it at once.
    pub fn remote(&self) -> Remote<S> {
        Remote::new(self.inbox_tx.clone(), self.inbox_shared.clone())
    }

    /// Runs `handler` on the loop thread when one of `signals` (SIGTERM,
    /// SIGHUP, SIGUSR1, SIGUSR2...) arrives.
    pub fn handle_signals(
        &mut self,
        signals: &[i32],
        handler: impl FnMut(&mut Reactor<S>, &mut S, i32) + 'static,
    ) -> io::Result<()> {
        if self.signal_handler.is_some() {
            return Err(io::Error::new(
                ErrorKind::AlreadyExists,
                "handle_signals may be called once per reactor",
            ));
        }
        self.signal_handler = Some(Box::new(handler));
        crate::remote::forward_signals(signals, self.remote())
    }

    /// `netlib_stop_event`: makes [`run`](Self::run) return after this iteration.
    pub fn stop(&mut self) {
        self.running = false;
    }

    /// `netlib_eventloop`: runs until [`stop`](Self::stop); each iteration
    /// waits at most `wait_timeout_ms` (less when a timer is due).
    pub fn run(&mut self, state: &mut S, wait_timeout_ms: u64) -> io::Result<()> {
        self.running = true;
        while self.running {
            self.run_once(state, wait_timeout_ms)?;
        }
        Ok(())
    }

    /// One iteration: poll, dispatch socket events, messages from other
    /// threads, due timers, the connection tick, loop callbacks, closes.
    pub fn run_once(&mut self, state: &mut S, wait_timeout_ms: u64) -> io::Result<()> {
        // Sends made outside the loop (before `run`, between `run_once`
        // calls) go out before the wait.
        self.flush(state);
        let wait = wait_timeout_ms.min(self.next_due().saturating_sub(self.now_ms()));
        let idle = self.pending_close.is_empty()
            && self.still_readable.is_empty()
            && self.still_acceptable.is_empty();
        let timeout = if idle {
            Duration::from_millis(wait)
        } else {
            Duration::ZERO
        };
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        // Connections and listeners left over from the last turn get this
        // turn's budget after the events; ones that spend it during this
        // turn's events wait for the next turn.
        let pending_readable = std::mem::take(&mut self.still_readable);
        let pending_accepts = std::mem::take(&mut self.still_acceptable);
        let ready: Vec<(mio::Token, bool, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                let closed = e.is_error() || e.is_read_closed() || e.is_write_closed();
                (e.token(), e.is_readable(), e.is_writable(), closed)
            })
            .collect();
        for (token, readable, writable, hup) in ready {
            match ids::target(token) {
                Target::Waker => continue,
                Target::Listener(lkey) => self.on_acceptable(state, lkey),
                Target::Conn { key, serial_bits } => {
                    self.on_conn_event(state, key, serial_bits, readable, writable, hup)
                }
            }
            self.reap(state);
            // What this event made us send goes out now, one write per
            // destination: peers start on it while we handle the next event.
            self.flush(state);
        }
        for id in pending_readable {
            // Whole PDUs it sent wait in its buffer: the peer is not silent.
            let now = self.now_ms();
            match self.conn_mut(id) {
                Some(c) => {
                    c.readable_queued = false;
                    c.last_recv = now;
                }
                None => continue,
            }
            // No event: nothing says the socket is drained.
            self.on_readable(state, id, false);
            self.reap(state);
            self.flush(state);
        }
        self.accept_left_over(state, pending_accepts);
        self.drain_inbox(state);
        self.run_timers(state);
        self.run_loops(state);
        self.reap(state);
        self.flush(state);
        Ok(())
    }

    /// Runs what other threads handed in, only what is there now: a closure
    /// that queues another must not keep the loop from polling. Each
    /// message taken makes room for a sender waiting on a full inbox.
    fn drain_inbox(&mut self, state: &mut S) {
        for _ in 0..self.inbox.len() {
            let Ok(msg) = self.inbox.try_recv() else {
                break;
            };
            self.inbox_shared.taken(1);
            match msg {
                Inbox::Run(f) => f(self, state),
                Inbox::Send(id, bytes) => {
                    // The connection may have gone meanwhile: then the reply is
                    // dropped, as the C++ drops a reply whose handle is gone.
                    if let Err(e) = self.send(id, &bytes) {
                        log::debug!("reply dropped: {e}");
                    }
                }
                Inbox::Signal(sig) => {
                    if let Some(mut h) = self.signal_handler.take() {
                        h(self, state, sig);
                        if self.signal_handler.is_none() {
                            self.signal_handler = Some(h);
                        }
                    }
                }
            }
            self.reap(state);
        }
    }

    /// `CBaseSocket::OnRead`/`OnWrite`/`OnClose` for one event of the
    /// connection in slot `key`, if it is still the one the event was for.
    fn on_conn_event(
        &mut self,
        state: &mut S,
        key: usize,
        serial_bits: u32,
        readable: bool,
        writable: bool,
        hup: bool,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        // Closed, or a new connection in the slot of the one the event was for.
        if conn.closed || conn.serial & TOKEN_SERIAL_MASK != serial_bits {
            return;
        }
        let id = ConnId {
            key: key as u32,
            serial: conn.serial,
        };
        if conn.connecting {
            if !(writable || hup) {
                return;
            }
            let failed = match conn.stream.take_error() {
                Ok(Some(e)) | Err(e) => Some(e),
                Ok(None) => conn.stream.peer_addr().err(),
            };
            match failed {
                Some(e) if e.kind() == ErrorKind::NotConnected && !hup => return,
                Some(e) => {
                    if self.connect_log.failed(conn.peer) {
                        log::warn!(
                            "connect to {:?} failed: {e} (further failures to it are logged at debug)",
                            conn.peer
                        );
                    } else {
                        log::debug!("connect to {:?} failed again: {e}", conn.peer);
                    }
                    self.close(id);
                    return;
                }
                None => {
                    conn.connecting = false;
                    let _ = conn.stream.set_nodelay(true);
                    match self.connect_log.connected(conn.peer) {
                        0 => log::info!("connected to {:?}", conn.peer),
                        n => log::info!("connected to {:?} after {n} failed tries", conn.peer),
                    }
                    self.with_handler(state, key, |h, cx| h.on_confirm(cx));
                }
            }
        }
        if writable {
            self.on_writable(state, id);
        }
        let queued = self.conn_mut(id).is_some_and(|c| c.readable_queued);
        if (readable || hup) && !queued {
            self.on_readable(state, id, readable && !hup);
        }
    }

    /// `CImConn::OnWrite`: writes the backlog; `on_write` when it drained.
    fn on_writable(&mut self, state: &mut S, id: ConnId) {
        let had_backlog = self.conn_mut(id).is_some_and(|c| c.out.backlog() > 0);
        if self.write_backlog(id) == Some(true) && !self.notify_drained(state, id) && had_backlog {
            self.with_handler(state, id.slot(), |h, cx| h.on_write(cx));
        }
    }

    /// Runs `on_close` for, and removes, every connection closed since the
    /// last call.
    pub(super) fn reap(&mut self, state: &mut S) {
        while let Some(key) = self.pending_close.pop() {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let id = ConnId {
                key: key as u32,
                serial: conn.serial,
            };
            if let Some(mut handler) = conn.handler.take() {
                handler.on_close(&mut Ctx {
                    net: self,
                    state,
                    id,
                });
            }
            if self.conns.get(key).is_some_and(|c| c.serial == id.serial) {
                let conn = self.conns.remove(key);
                if let Some(k) = self.stats.kinds.get_mut(conn.kind) {
                    k.open -= 1;
                }
                log::debug!("connection {id} ({:?}) removed", conn.peer);
            }
        }
    }
}
