//! The per-connection handler: the C++ `imconn.h` / `imconn.cpp` (`CImConn`).
//!
//! A server implements [`ImConn`] once per kind of link (client, db_proxy,
//! route...), as the C++ subclasses `CImConn`. The reactor owns the socket,
//! its in- and out-buffers and its last-send/last-recv ticks; it frames PDUs
//! from the in-buffer with `base::pdu` and calls the handler. The handler
//! gets a [`Ctx`]: the reactor (to send to this or any other connection,
//! start timers...) and the server state.

use crate::reactor::{ConnId, Reactor};
use base::ImPdu;
use std::net::SocketAddr;

/// `SERVER_HEARTBEAT_INTERVAL`: servers send a heartbeat after 5 s of not sending.
pub const SERVER_HEARTBEAT_INTERVAL: u64 = 5_000;
/// `SERVER_TIMEOUT`: a server link silent for 30 s is closed.
pub const SERVER_TIMEOUT: u64 = 30_000;
/// `CLIENT_HEARTBEAT_INTERVAL`: clients heartbeat every 30 s.
pub const CLIENT_HEARTBEAT_INTERVAL: u64 = 30_000;
/// `CLIENT_TIMEOUT`: a PC client silent for 120 s is closed.
pub const CLIENT_TIMEOUT: u64 = 120_000;
/// `MOBILE_CLIENT_TIMEOUT`: a mobile client silent for 300 s is closed.
pub const MOBILE_CLIENT_TIMEOUT: u64 = 300_000;

/// `IM.BaseDefine.ServiceID::SID_OTHER`.
pub const SID_OTHER: u16 = 0x0007;
/// `IM.BaseDefine.OtherCmdID::CID_OTHER_HEARTBEAT`.
pub const CID_OTHER_HEARTBEAT: u16 = 0x0701;

/// The heartbeat PDU every link exchanges (`IMHeartBeat`, an empty body).
pub fn heartbeat_pdu() -> ImPdu {
    ImPdu::new(SID_OTHER, CID_OTHER_HEARTBEAT)
}

/// The heartbeat/timeout rule of one kind of link, as each C++ `OnTimer` codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Send a heartbeat when nothing was sent for this long (`None`: never,
    /// as a server never heartbeats its clients).
    pub send_after_ms: Option<u64>,
    /// Close the link when nothing was received for this long.
    pub timeout_ms: u64,
}

impl Heartbeat {
    /// Server-to-server links: heartbeat every 5 s, drop after 30 s of silence.
    pub const SERVER: Heartbeat = Heartbeat {
        send_after_ms: Some(SERVER_HEARTBEAT_INTERVAL),
        timeout_ms: SERVER_TIMEOUT,
    };
    /// A PC client link seen from the server: no heartbeats from us, 120 s timeout.
    pub const CLIENT: Heartbeat = Heartbeat {
        send_after_ms: None,
        timeout_ms: CLIENT_TIMEOUT,
    };
    /// A mobile client link seen from the server: 300 s timeout.
    pub const MOBILE_CLIENT: Heartbeat = Heartbeat {
        send_after_ms: None,
        timeout_ms: MOBILE_CLIENT_TIMEOUT,
    };

    /// The first ms at which [`Ctx::keep_alive`] with this rule has
    /// something to do for a link that last sent at `last_send` and last
    /// received at `last_recv`: a heartbeat, or closing it. Sending or
    /// receiving since only moves that later.
    pub fn next_due(self, last_send: u64, last_recv: u64) -> u64 {
        let close = last_recv.saturating_add(self.timeout_ms).saturating_add(1);
        match self.send_after_ms {
            Some(after) => close.min(last_send.saturating_add(after).saturating_add(1)),
            None => close,
        }
    }
}

/// What a handler reaches during a callback: the reactor, the server state
/// and the id of its own connection.
pub struct Ctx<'a, S> {
    /// The event loop: send to any connection, timers, connect, listen.
    pub net: &'a mut Reactor<S>,
    /// The server's own state.
    pub state: &'a mut S,
    /// This connection.
    pub id: ConnId,
}

impl<S: 'static> Ctx<'_, S> {
    /// `CImConn::SendPdu` on this connection. A failure means the connection
    /// is gone or being closed; it is logged by the reactor, and the caller
    /// may ignore it as the C++ does.
    pub fn send_pdu(&mut self, pdu: &ImPdu) -> bool {
        self.net.send_pdu(self.id, pdu).is_ok()
    }

    /// [`Reactor::send_msg`] on this connection: `msg` under the command its
    /// type is carried by, with `seq`.
    pub fn send_msg<M: tt_proto::Command>(&mut self, seq: u16, msg: &M) -> bool {
        self.net.send_msg(self.id, seq, msg).is_ok()
    }

    /// Closes this connection now; `on_close` follows after this callback.
    pub fn close(&mut self) {
        self.net.close(self.id);
    }

    /// Closes this connection once what is queued has been written
    /// (login_server closes a client right after its answer).
    pub fn close_after_flush(&mut self) {
        self.net.close_after_flush(self.id);
    }

    /// The reactor's time in ms (see [`Reactor::now_ms`]).
    pub fn now_ms(&self) -> u64 {
        self.net.now_ms()
    }

    /// The peer's address (`NETLIB_OPT_GET_REMOTE_IP/PORT`).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.net.peer_addr(self.id)
    }

    /// Applies `rule` at time `now` (from [`ImConn::on_timer`]): sends a
    /// heartbeat when we have been quiet, closes the link when the peer
    /// has. Returns false when it closed the link.
    pub fn keep_alive(&mut self, rule: Heartbeat, now: u64) -> bool {
        let Some((last_send, last_recv)) = self.net.conn_ticks(self.id) else {
            return false;
        };
        if let Some(after) = rule.send_after_ms {
            if now > last_send + after {
                self.send_pdu(&heartbeat_pdu());
            }
        }
        if now > last_recv + rule.timeout_ms {
            log::warn!(
                "connection {} ({:?}) silent for {} ms, closing",
                self.id,
                self.peer_addr(),
                now - last_recv
            );
            self.close();
            return false;
        }
        true
    }
}

impl<S: 'static> Ctx<'_, S> {
    /// [`Reactor::timer_at`] for this connection: its next `on_timer` at
    /// the first tick at or after `when_ms`.
    pub fn timer_at(&mut self, when_ms: u64) {
        self.net.timer_at(self.id, when_ms);
    }

    /// [`keep_alive`](Self::keep_alive), then asks for the next `on_timer`
    /// only when the rule next has something to do
    /// ([`Heartbeat::next_due`]) instead of every tick: a handler whose
    /// `on_timer` does nothing else costs a tick nothing until then. One
    /// with more to do asks for that too ([`timer_at`](Self::timer_at):
    /// the earliest ask wins).
    pub fn keep_alive_until_due(&mut self, rule: Heartbeat, now: u64) -> bool {
        if !self.keep_alive(rule, now) {
            return false;
        }
        if let Some((last_send, last_recv)) = self.net.conn_ticks(self.id) {
            self.timer_at(rule.next_due(last_send, last_recv));
        }
        true
    }
}

/// A connection handler (`CImConn`'s virtual methods).
///
/// Differences from the C++, on purpose: `on_close` is called exactly once
/// for every connection however it ends (peer close, error, timeout, or our
/// own `close`), so cleanup lives in one place; and `on_write` is called
/// when a backlog in the out-buffer has been fully written.
pub trait ImConn<S> {
    /// An accepted connection is ready (`OnConnect`).
    fn on_connect(&mut self, _cx: &mut Ctx<'_, S>) {}
    /// An outgoing connection succeeded (`OnConfirm`).
    fn on_confirm(&mut self, _cx: &mut Ctx<'_, S>) {}
    /// One whole PDU arrived (`HandlePdu`).
    fn on_pdu(&mut self, cx: &mut Ctx<'_, S>, pdu: ImPdu);
    /// True for a connection that is not PDU-framed (the HTTP ports of
    /// login_server, msfs, http_msg_server): its input goes to
    /// [`on_bytes`](Self::on_bytes) instead of `on_pdu`. Asked once, when
    /// the connection is registered.
    fn raw_bytes(&self) -> bool {
        false
    }
    /// The longest PDU this connection may send us; a header announcing more
    /// closes it before the body is buffered. Servers' links keep
    /// [`MAX_PDU_LEN`](base::pdu::MAX_PDU_LEN); client connections answer
    /// [`CLIENT_MAX_PDU_LEN`](base::pdu::CLIENT_MAX_PDU_LEN). Asked once,
    /// when the connection is registered.
    fn max_pdu_len(&self) -> u32 {
        base::pdu::MAX_PDU_LEN
    }
    /// What kind of connection this is, for the metrics' `kind` label
    /// (connections, bytes, out-buffers by kind): by default the handler's
    /// type name (`MsgConn`, `DbServConn`); override it when one type
    /// serves several kinds. Asked once, when the connection is registered.
    fn kind(&self) -> &'static str {
        crate::metrics::short_type_name::<Self>()
    }
    /// Raw mode only: new bytes arrived; `in_buf` holds everything received
    /// and not consumed yet. Drain what was handled; the rest stays for the
    /// next call. The handler bounds its own buffer (e.g. close over 1 KiB).
    fn on_bytes(&mut self, _cx: &mut Ctx<'_, S>, _in_buf: &mut Vec<u8>) {}
    /// The out-buffer drained after being busy (`OnWriteCompelete`), or,
    /// after [`Reactor::notify_when_drained`], once it is empty however it
    /// emptied: where a long body's next part is queued.
    fn on_write(&mut self, _cx: &mut Ctx<'_, S>) {}
    /// The connection ended, or an outgoing one failed (`OnClose`).
    fn on_close(&mut self, _cx: &mut Ctx<'_, S>) {}
    /// Called for every connection once per connection tick (1 s, as the
    /// C++ conn timers), with the reactor's time in ms
    /// ([`Reactor::now_ms`], monotonic unless a test drives it): heartbeats and
    /// timeouts go here (`OnTimer`), usually via [`Ctx::keep_alive`]. A
    /// handler that asks for its next call ([`Ctx::timer_at`],
    /// [`Ctx::keep_alive_until_due`]) is called only when it asked.
    fn on_timer(&mut self, _cx: &mut Ctx<'_, S>, _now: u64) {}
}
