//! The event loop: the C++ `EventDispatch.cpp` (`CEventDispatch`),
//! `BaseSocket.cpp` (`CBaseSocket`) and the `netlib.cpp` functions, on mio,
//! as one [`Reactor`].
//!
//! The rooms, each with its own C++ counterpart and differences:
//! - `ids`: connection and timer ids, and the tokens that carry them;
//! - `out_buf`: a connection's out-buffer, its cap and compaction;
//! - `conn`: sending, flushing and closing one connection (`CImConn::Send`,
//!   `CBaseSocket::Send`/`Close`, `netlib_send`, `netlib_close`);
//! - `read`: reading and framing, and the per-turn budgets (`CImConn::OnRead`);
//! - `timers`: timers, loop callbacks and the connection tick
//!   (`netlib_register_timer`, `netlib_add_loop`, `_CheckTimer`, `_CheckLoop`);
//! - `accept`: listen, connect and accept (`netlib_listen`,
//!   `netlib_connect`, `CBaseSocket::Listen`/`Connect`/`_AcceptNewSocket`);
//! - `stats`: what it counts for metrics (connections by kind, bytes and
//!   PDUs in and out, out-buffers), rendered by `write_metrics`;
//! - `wheel`: when each connection's `on_timer` is next due (no C++
//!   counterpart: the C++ walks every connection every second);
//! - `turn`: one turn of the loop (`StartDispatch`, `netlib_eventloop`):
//!   poll, events, the cross-thread inbox, timers, reaping closed connections;
//! - `connect_log`: how loudly a failed outgoing connect is logged (the
//!   first of a run of failures to a peer at `warn`, the rest at `debug`).
//!
//! What holds throughout:
//! - mio is edge-triggered, as the C++ epoll set-up (`EPOLLET`), so what a
//!   turn's budget leaves unread or unaccepted is remembered and taken up on
//!   the next turn, not waited for as a new event.
//! - Listeners get `SO_REUSEADDR` (mio's `TcpListener::bind` sets it) and
//!   every connection `TCP_NODELAY`, as `CBaseSocket` sets them.
//! - Time comes from the reactor's [`Clock`] (the monotonic clock, or a
//!   [`ManualClock`](crate::ManualClock) a test drives), never from the wall
//!   clock the C++ reads, so a clock step never drops every connection.

mod accept;
mod conn;
mod connect_log;
mod ids;
mod out_buf;
mod read;
mod stats;
#[cfg(test)]
mod tests;
mod timers;
mod turn;
mod wheel;

pub use accept::{
    bind_source, FD_RESERVE, FIRST_BYTES_WITHIN_SECS, LISTEN_BACKLOG, MAX_ACCEPTS_PER_TURN,
};
pub use ids::{ConnId, TimerId};
pub use out_buf::{DEFAULT_OUT_BUF_CAP, NETLIB_MAX_SOCKET_BUF_SIZE};
pub use read::{MAX_PDUS_PER_EVENT, MAX_READ_PER_EVENT};
pub use stats::NetMetrics;
pub use timers::CONN_TICK_MS;

pub(crate) use accept::resolve;

use crate::clock::{Clock, SystemClock};
use crate::imconn::ImConn;
use crate::remote::{Inbox, InboxShared, InboxStats};
use crossbeam_channel::{unbounded, Receiver, Sender};
use ids::WAKER_TOKEN;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Poll, Waker};
use out_buf::OutBuf;
use slab::Slab;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use thiserror::Error;

/// Why a socket operation failed.
#[derive(Debug, Error)]
pub enum NetError {
    /// The connection id names no open connection.
    #[error("connection {0} is not open")]
    NotConnected(ConnId),
    /// An address could not be resolved or bound.
    #[error("cannot use address {addr}: {source}")]
    Address {
        /// What was asked for.
        addr: String,
        /// Why it failed.
        source: io::Error,
    },
    /// A message could not be encoded into a PDU (over the size limit).
    #[error("cannot encode command {service_id:#06x}/{command_id:#06x}: {source}")]
    Encode {
        /// Service of the PDU.
        service_id: u16,
        /// Command of the PDU.
        command_id: u16,
        /// Why.
        source: base::PduError,
    },
    /// Any other socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A callback run on the loop thread with the reactor and the server state.
pub type LoopFn<S> = Box<dyn FnMut(&mut Reactor<S>, &mut S)>;
/// Runs on the loop thread when a registered signal arrives.
pub type SignalFn<S> = Box<dyn FnMut(&mut Reactor<S>, &mut S, i32)>;
/// Makes the handler for a connection accepted on a listener.
pub type AcceptFn<S> = Box<dyn FnMut(&mut S, ConnId) -> Box<dyn ImConn<S>>>;

/// One socket and what the reactor keeps about it (`CBaseSocket` plus the
/// buffers and ticks of `CImConn`).
struct Conn<S> {
    stream: TcpStream,
    serial: u32,
    /// `None` while the handler is running (it is taken out of the table).
    handler: Option<Box<dyn ImConn<S>>>,
    peer: Option<SocketAddr>,
    in_buf: Vec<u8>,
    out: OutBuf,
    connecting: bool,
    /// The peer shut its sending side down; what we owe it is still written.
    read_closed: bool,
    /// Raw-bytes connection (`ImConn::raw_bytes`): no PDU framing.
    raw: bool,
    /// In `Reactor::to_flush`: its backlog is written at the end of the turn.
    flush_queued: bool,
    /// In `Reactor::still_readable`: its next turn reads and handles it;
    /// events for it wait for that (at most one budget per turn).
    readable_queued: bool,
    /// `ImConn::max_pdu_len`.
    max_pdu_len: u32,
    /// Index of its `ImConn::kind` in `Reactor::stats`.
    kind: usize,
    close_after_flush: bool,
    /// Set by `Reactor::pause_reading`: nothing is read or handled until
    /// `resume_reading` (the kernel's buffer fills and TCP pushes back on
    /// the peer); the peer does not count as silent meanwhile.
    paused: bool,
    /// Set by `Reactor::notify_when_drained`: call `on_write` once the
    /// out-buffer is empty.
    drain_notify: bool,
    /// Set by `close`: no more I/O; `on_close` and removal follow.
    closed: bool,
    /// Registered for writable events too: from the start for a connect
    /// (its completion is one), else from its first backlog on (an
    /// accepted socket is writable at once, and that event would cost
    /// every accepted connection one turn for nothing).
    write_interest: bool,
    last_send: u64,
    last_recv: u64,
    /// The wheel bucket of its next `on_timer` (0: none, while it runs).
    timer_bucket: u64,
    /// Earliest `Reactor::timer_at` asked while its `on_timer` ran
    /// (`u64::MAX`: none, the next tick).
    timer_asked: u64,
}

/// A listening socket of one `listen` call.
struct Listener {
    listener: TcpListener,
    /// Index into `Reactor::acceptors` (one per `listen` call, shared by its addresses).
    acceptor: usize,
    /// In `Reactor::still_acceptable`: its next turn accepts what is queued;
    /// events for it wait for that (at most one budget per turn).
    accept_queued: bool,
    /// Listened with [`Reactor::listen_clients`]: a connection is handed
    /// over with its first bytes in, and read at once.
    clients_speak_first: bool,
}

/// A registered timer.
struct Timer<S> {
    serial: u64,
    interval: u64,
    next: u64,
    callback: Option<LoopFn<S>>,
}

/// The event loop with every socket, timer and loop callback of one server.
pub struct Reactor<S> {
    poll: Poll,
    events: Events,
    conns: Slab<Conn<S>>,
    listeners: Slab<Listener>,
    acceptors: Vec<Option<AcceptFn<S>>>,
    timers: Slab<Timer<S>>,
    next_timer_serial: u64,
    loops: Vec<Option<LoopFn<S>>>,
    pending_close: Vec<usize>,
    /// Connections that had more to read when their turn ended.
    still_readable: Vec<ConnId>,
    /// Listeners whose accept budget ran out with connections still queued.
    still_acceptable: Vec<usize>,
    /// Connections with bytes queued by `send` this turn, written at its end.
    to_flush: Vec<ConnId>,
    next_serial: u32,
    next_conn_tick: u64,
    conn_tick_ms: u64,
    /// When each connection's `on_timer` is next due.
    wheel: wheel::Wheel,
    /// The due entries of one tick (kept for its capacity).
    due_scratch: Vec<(u64, ConnId)>,
    out_buf_cap: usize,
    read_buf: Vec<u8>,
    /// The waker and the inbox's bound and counters, shared with every `Remote`.
    inbox_shared: Arc<InboxShared>,
    inbox_tx: Sender<Inbox<S>>,
    inbox: Receiver<Inbox<S>>,
    signal_handler: Option<SignalFn<S>>,
    running: bool,
    /// Where every tick, timer and `on_timer` time comes from.
    clock: Box<dyn Clock>,
    /// What the loop counts for metrics.
    stats: NetMetrics,
    /// Which peers' connects are failing, so each run of failures is
    /// logged loudly once.
    connect_log: connect_log::ConnectLog,
    /// Most open connections before an accepted one is closed at once
    /// (see [`Reactor::set_conn_limit`]).
    conn_limit: usize,
    /// An accept was refused since the table last had room (logged once).
    refusing: bool,
}

impl<S: 'static> Reactor<S> {
    /// `netlib_init`: a reactor with no sockets, on the monotonic clock.
    pub fn new() -> io::Result<Reactor<S>> {
        Reactor::with_clock(SystemClock)
    }

    /// A reactor with no sockets whose time comes from `clock` (a test's
    /// [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(clock: impl Clock + 'static) -> io::Result<Reactor<S>> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
        let (inbox_tx, inbox) = unbounded();
        Ok(Reactor {
            poll,
            events: Events::with_capacity(1024),
            conns: Slab::new(),
            listeners: Slab::new(),
            acceptors: Vec::new(),
            timers: Slab::new(),
            next_timer_serial: 0,
            loops: Vec::new(),
            pending_close: Vec::new(),
            still_readable: Vec::new(),
            still_acceptable: Vec::new(),
            to_flush: Vec::new(),
            next_serial: 1,
            next_conn_tick: clock.now_ms() + CONN_TICK_MS,
            conn_tick_ms: CONN_TICK_MS,
            wheel: wheel::Wheel::new(CONN_TICK_MS, clock.now_ms()),
            due_scratch: Vec::new(),
            out_buf_cap: DEFAULT_OUT_BUF_CAP,
            read_buf: vec![0; read::READ_CHUNK],
            inbox_shared: Arc::new(InboxShared::new(waker)),
            inbox_tx,
            inbox,
            signal_handler: None,
            running: false,
            clock: Box::new(clock),
            stats: NetMetrics::default(),
            connect_log: connect_log::ConnectLog::default(),
            conn_limit: accept::default_conn_limit(),
            refusing: false,
        })
    }

    /// Sets the most open connections (accepted and outgoing) before a
    /// newly accepted one is closed at once. The default keeps up to
    /// [`FD_RESERVE`] of the process's file limit free, so that a
    /// flood of clients cannot take the descriptors of peer links, log
    /// and data files (the C++ accepts until `accept` fails with
    /// `EMFILE`, and then its reconnects and file opens fail too).
    pub fn set_conn_limit(&mut self, conns: usize) {
        self.conn_limit = conns;
    }

    /// Sets the out-buffer cap for every connection, open ones included
    /// (see [`DEFAULT_OUT_BUF_CAP`]).
    pub fn set_out_buf_cap(&mut self, bytes: usize) {
        self.out_buf_cap = bytes;
        for (_, c) in self.conns.iter_mut() {
            c.out.set_cap(bytes);
        }
    }

    /// Sets how many messages the inbox of [`Remote`](crate::Remote)s holds
    /// (default [`DEFAULT_INBOX_BOUND`](crate::remote::DEFAULT_INBOX_BOUND));
    /// what is queued stays.
    pub fn set_inbox_bound(&mut self, messages: usize) {
        self.inbox_shared.set_bound(messages);
    }

    /// The inbox's counters: what waits, the bound, how often it was full.
    pub fn inbox_stats(&self) -> InboxStats {
        self.inbox_shared.stats()
    }

    /// Is `id` an open connection?
    pub fn is_open(&self, id: ConnId) -> bool {
        self.conn(id).is_some()
    }

    /// Number of connections in the table (open or about to be reaped).
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// The peer address of `id` (still readable in `on_close`).
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.conns
            .get(id.slot())
            .filter(|c| c.serial == id.serial)
            .and_then(|c| c.peer)
    }

    /// Last send and last receive ticks of `id` (the reactor's ms, [`Reactor::now_ms`]).
    pub fn conn_ticks(&self, id: ConnId) -> Option<(u64, u64)> {
        // A paused connection is not read: what the peer sent waits in the
        // kernel, so it has not been silent.
        let now = self.now_ms();
        self.conn(id)
            .map(|c| (c.last_send, if c.paused { now } else { c.last_recv }))
    }

    /// Bytes queued on `id` that the kernel has not taken yet.
    pub fn backlog(&self, id: ConnId) -> usize {
        self.conn(id).map_or(0, |c| c.out.backlog())
    }

    /// The open connection `id`.
    fn conn(&self, id: ConnId) -> Option<&Conn<S>> {
        self.conns
            .get(id.slot())
            .filter(|c| c.serial == id.serial && !c.closed)
    }

    /// The open connection `id`, to change.
    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn<S>> {
        self.conns
            .get_mut(id.slot())
            .filter(|c| c.serial == id.serial && !c.closed)
    }
}
