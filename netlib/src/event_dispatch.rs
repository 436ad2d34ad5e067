//! The event loop: the C++ `EventDispatch.cpp` (`CEventDispatch`),
//! `BaseSocket.cpp` (`CBaseSocket`) and the `netlib.cpp` functions, on mio.
//!
//! - mio is edge-triggered, as the C++ epoll set-up (`EPOLLET`): on every
//!   readable event we read until `WouldBlock`, so no byte is left behind;
//!   but one connection gets at most 1 MiB read and 64 PDUs handled per
//!   turn, the rest in the next turns (the C++ has no bound, so one peer's
//!   burst holds every timer and heartbeat).
//! - Sends follow `CImConn::Send`, written in chunks of at most
//!   [`NETLIB_MAX_SOCKET_BUF_SIZE`], but once per destination after the
//!   event that made them (the C++ writes each PDU at once): a status
//!   notify fanned out to thousands of clients, 64 per event, costs one
//!   write per client. What the kernel does not take waits in the
//!   connection's out-buffer, in order, and is written on the next
//!   writable event. Unlike the C++, the out-buffer is capped
//!   ([`Reactor::set_out_buf_cap`]): a peer that never reads gets its
//!   connection closed instead of growing our memory without bound.
//! - Listeners get `SO_REUSEADDR` (mio's `TcpListener::bind` sets it) and
//!   every connection `TCP_NODELAY`, as `CBaseSocket` sets them.
//! - [`Reactor::run`] polls, dispatches, then runs timers and loop
//!   callbacks, like `StartDispatch`; messages from other threads
//!   ([`crate::Remote`]) wake the poll at once.

use crate::imconn::{Ctx, ImConn};
use crate::remote::{Inbox, Remote};
use base::pdu::{is_pdu_available_within, ImPdu};
use base::tick::monotonic_ms;
use crossbeam_channel::{unbounded, Receiver};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// `NETLIB_MAX_SOCKET_BUF_SIZE`: the most one `write` call is given (128 KiB).
pub const NETLIB_MAX_SOCKET_BUF_SIZE: usize = 128 * 1024;
/// Default cap of one connection's out-buffer (64 MiB): past it the peer is
/// not reading, and the connection is closed.
pub const DEFAULT_OUT_BUF_CAP: usize = 64 * 1024 * 1024;
/// How much one `read` call asks for.
const READ_CHUNK: usize = 64 * 1024;
/// Most bytes read from one connection per turn before the others get
/// theirs (the rest is read on the next loop iteration).
const MAX_READ_PER_EVENT: usize = 1024 * 1024;

/// At most this many PDUs of one connection are handled per loop turn; the
/// rest wait in its in-buffer for the next turn. Bytes alone do not bound a
/// turn: one status notify from route_server fans out to every PC client,
/// so a login storm's notifies, read in one go, would hold the loop (and
/// every heartbeat and timer) for as long as millions of sends take.
const MAX_PDUS_PER_EVENT: usize = 64;

/// How a dispatch of buffered PDUs ended.
enum Dispatch {
    /// Every whole PDU was handled; the connection is open.
    Done,
    /// The turn's budget ran out with whole PDUs still buffered.
    BudgetSpent,
    /// The connection closed meanwhile.
    Closed,
}
/// Interval of the connection tick that calls `ImConn::on_timer`.
pub const CONN_TICK_MS: u64 = 1_000;

const WAKER_TOKEN: Token = Token(usize::MAX);
/// Listener tokens have this bit set.
const LISTENER_BIT: usize = 1 << (usize::BITS - 2);
/// Connection tokens: the slab key in the low 32 bits and the low bits of
/// the connection's serial above them, so an event left over from a closed
/// connection never reaches a new one in the same slot.
const TOKEN_SERIAL_MASK: u32 = (1 << 28) - 1;

fn conn_token(key: usize, serial: u32) -> Token {
    Token(key | ((serial & TOKEN_SERIAL_MASK) as usize) << 32)
}

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

/// A connection, as handed to handlers and kept in tables (the C++ uses
/// the socket handle). The serial makes an id stale once its connection
/// has closed, even if the slot is reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    key: u32,
    serial: u32,
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
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}.{}", self.key, self.serial)
    }
}

/// A registered timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    key: usize,
    /// Makes an id stale once its timer is deleted, even if the slot is reused.
    serial: u64,
}

/// A callback run on the loop thread with the reactor and the server state.
pub type LoopFn<S> = Box<dyn FnMut(&mut Reactor<S>, &mut S)>;
/// Runs on the loop thread when a registered signal arrives.
pub type SignalFn<S> = Box<dyn FnMut(&mut Reactor<S>, &mut S, i32)>;
/// Makes the handler for a connection accepted on a listener.
pub type AcceptFn<S> = Box<dyn FnMut(&mut S, ConnId) -> Box<dyn ImConn<S>>>;

struct Conn<S> {
    stream: TcpStream,
    serial: u32,
    /// `None` while the handler is running (it is taken out of the table).
    handler: Option<Box<dyn ImConn<S>>>,
    peer: Option<SocketAddr>,
    in_buf: Vec<u8>,
    out_buf: Vec<u8>,
    /// Bytes of `out_buf` already written.
    out_pos: usize,
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
    close_after_flush: bool,
    /// Set by `Reactor::notify_when_drained`: call `on_write` once the
    /// out-buffer is empty.
    drain_notify: bool,
    /// Set by `close`: no more I/O; `on_close` and removal follow.
    closed: bool,
    last_send: u64,
    last_recv: u64,
}

impl<S> Conn<S> {
    fn backlog(&self) -> usize {
        self.out_buf.len() - self.out_pos
    }
}

struct Listener {
    listener: TcpListener,
    /// Index into `Reactor::acceptors` (one per `listen` call, shared by its addresses).
    acceptor: usize,
}

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
    /// Connections with bytes queued by `send` this turn, written at its end.
    to_flush: Vec<ConnId>,
    next_serial: u32,
    next_conn_tick: u64,
    conn_tick_ms: u64,
    out_buf_cap: usize,
    read_buf: Vec<u8>,
    waker: Arc<Waker>,
    inbox_tx: crossbeam_channel::Sender<Inbox<S>>,
    inbox: Receiver<Inbox<S>>,
    signal_handler: Option<SignalFn<S>>,
    running: bool,
}

impl<S: 'static> Reactor<S> {
    /// `netlib_init`: a reactor with no sockets.
    pub fn new() -> io::Result<Reactor<S>> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
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
            to_flush: Vec::new(),
            next_serial: 1,
            next_conn_tick: monotonic_ms() + CONN_TICK_MS,
            conn_tick_ms: CONN_TICK_MS,
            out_buf_cap: DEFAULT_OUT_BUF_CAP,
            read_buf: vec![0; READ_CHUNK],
            waker,
            inbox_tx,
            inbox,
            signal_handler: None,
            running: false,
        })
    }

    /// Sets the interval of the connection tick that calls
    /// `ImConn::on_timer` (default [`CONN_TICK_MS`]).
    pub fn set_conn_tick_ms(&mut self, ms: u64) {
        self.conn_tick_ms = ms.max(1);
        self.next_conn_tick = monotonic_ms() + self.conn_tick_ms;
    }

    /// Sets the out-buffer cap for every connection (see [`DEFAULT_OUT_BUF_CAP`]).
    pub fn set_out_buf_cap(&mut self, bytes: usize) {
        self.out_buf_cap = bytes;
    }

    /// `netlib_listen`: listens on `port` on every address of the `;` list
    /// `ips` (as the C++ conf keys `ListenIP=a;b` allow). `accept` makes the
    /// handler of each accepted connection. Returns the bound addresses
    /// (useful with port 0).
    pub fn listen(
        &mut self,
        ips: &str,
        port: u16,
        accept: impl FnMut(&mut S, ConnId) -> Box<dyn ImConn<S>> + 'static,
    ) -> Result<Vec<SocketAddr>, NetError> {
        let acceptor = self.acceptors.len();
        self.acceptors.push(Some(Box::new(accept)));
        let mut bound = Vec::new();
        for ip in base::config::explode(ips, ';') {
            let addr = resolve(&ip, port)?;
            let mut listener = TcpListener::bind(addr).map_err(|source| NetError::Address {
                addr: format!("{ip}:{port}"),
                source,
            })?;
            let local = listener.local_addr()?;
            let entry = self.listeners.vacant_entry();
            let token = Token(entry.key() | LISTENER_BIT);
            self.poll
                .registry()
                .register(&mut listener, token, Interest::READABLE)?;
            entry.insert(Listener { listener, acceptor });
            log::info!("listening on {local}");
            bound.push(local);
        }
        Ok(bound)
    }

    /// `netlib_connect`: starts a non-blocking connect to `ip:port`;
    /// `handler.on_confirm` runs when it succeeds, `handler.on_close` when
    /// it fails.
    pub fn connect(
        &mut self,
        ip: &str,
        port: u16,
        handler: Box<dyn ImConn<S>>,
    ) -> Result<ConnId, NetError> {
        let addr = resolve(ip, port)?;
        let stream = TcpStream::connect(addr).map_err(|source| NetError::Address {
            addr: format!("{ip}:{port}"),
            source,
        })?;
        log::info!("connecting to {addr}");
        self.insert_conn(stream, Some(addr), true, handler)
    }

    /// `connect` from a chosen local address (a load generator spreading
    /// its connections over several 127.0.0.x addresses).
    pub fn connect_from(
        &mut self,
        ip: &str,
        port: u16,
        source: std::net::IpAddr,
        handler: Box<dyn ImConn<S>>,
    ) -> Result<ConnId, NetError> {
        use socket2::{Domain, Protocol, Socket, Type};
        let addr = resolve(ip, port)?;
        let fail = |source: io::Error| NetError::Address {
            addr: format!("{ip}:{port}"),
            source,
        };
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(fail)?;
        socket.set_nonblocking(true).map_err(fail)?;
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .map_err(fail)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(fail(e)),
        }
        let stream = TcpStream::from_std(socket.into());
        log::info!("connecting to {addr} from {source}");
        self.insert_conn(stream, Some(addr), true, handler)
    }

    fn insert_conn(
        &mut self,
        mut stream: TcpStream,
        peer: Option<SocketAddr>,
        connecting: bool,
        handler: Box<dyn ImConn<S>>,
    ) -> Result<ConnId, NetError> {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let serial = self.next_serial;
        self.poll.registry().register(
            &mut stream,
            conn_token(key, serial),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        if !connecting {
            // A failure here only costs latency; the C++ ignores it too.
            let _ = stream.set_nodelay(true);
        }
        self.next_serial = self.next_serial.wrapping_add(1).max(1);
        let now = monotonic_ms();
        let raw = handler.raw_bytes();
        let max_pdu_len = handler.max_pdu_len();
        entry.insert(Conn {
            stream,
            serial,
            handler: Some(handler),
            peer,
            in_buf: Vec::new(),
            out_buf: Vec::new(),
            out_pos: 0,
            connecting,
            read_closed: false,
            raw,
            flush_queued: false,
            readable_queued: false,
            max_pdu_len,
            close_after_flush: false,
            drain_notify: false,
            closed: false,
            last_send: now,
            last_recv: now,
        });
        Ok(ConnId {
            key: key as u32,
            serial,
        })
    }

    fn conn(&self, id: ConnId) -> Option<&Conn<S>> {
        self.conns
            .get(id.key as usize)
            .filter(|c| c.serial == id.serial && !c.closed)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn<S>> {
        self.conns
            .get_mut(id.key as usize)
            .filter(|c| c.serial == id.serial && !c.closed)
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
            .get(id.key as usize)
            .filter(|c| c.serial == id.serial)
            .and_then(|c| c.peer)
    }

    /// Last send and last receive ticks of `id` (monotonic ms).
    pub fn conn_ticks(&self, id: ConnId) -> Option<(u64, u64)> {
        self.conn(id).map(|c| (c.last_send, c.last_recv))
    }

    /// Bytes queued on `id` that the kernel has not taken yet.
    pub fn backlog(&self, id: ConnId) -> usize {
        self.conn(id).map_or(0, Conn::backlog)
    }

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
        let cap = self.out_buf_cap;
        let conn = self.conn_mut(id).ok_or(NetError::NotConnected(id))?;
        conn.last_send = monotonic_ms();
        if conn.backlog() + bytes.len() > cap {
            log::warn!(
                "connection {id} ({:?}): peer is not reading, out-buffer over {cap} bytes; closing",
                conn.peer
            );
            self.close(id);
            return Err(NetError::NotConnected(id));
        }
        if conn.out_pos > 0 && conn.out_pos == conn.out_buf.len() {
            conn.out_buf.clear();
            conn.out_pos = 0;
        }
        // A backlog already there waits for the socket to be writable (or
        // for this turn's flush); only an idle connection joins the flush.
        let idle = conn.backlog() == 0;
        conn.out_buf.extend_from_slice(bytes);
        if idle && !conn.connecting && !conn.flush_queued {
            conn.flush_queued = true;
            self.to_flush.push(id);
        }
        Ok(())
    }

    /// Writes what `send` queued this turn, as the C++ `Send` would have
    /// written it at once; what the kernel does not take waits for the
    /// socket to be writable.
    fn flush(&mut self, state: &mut S) {
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

    /// Calls `on_write` for `id` if [`Self::notify_when_drained`] asked for it.
    fn notify_drained(&mut self, state: &mut S, id: ConnId) -> bool {
        match self.conn_mut(id) {
            Some(c) if c.drain_notify => c.drain_notify = false,
            _ => return false,
        }
        self.with_handler(state, id.key as usize, |h, cx| h.on_write(cx));
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
    /// all of it is written: the buffer then keeps at most [`READ_CHUNK`] of
    /// capacity (every send passes through it, so thousands of idle
    /// connections must not each hold their biggest reply), and a connection
    /// marked close-after-flush is closed (`None`, as when it fails).
    fn write_backlog(&mut self, id: ConnId) -> Option<bool> {
        let conn = self.conn_mut(id)?;
        if conn.backlog() > 0 {
            match write_chunks(&mut conn.stream, &conn.out_buf[conn.out_pos..]) {
                Ok(n) => conn.out_pos += n,
                Err(e) => {
                    log::info!("connection {id} ({:?}): write failed: {e}", conn.peer);
                    self.close(id);
                    return None;
                }
            }
            // A reader that keeps up only just never empties the buffer:
            // drop what is written once it is half of it, so memory follows
            // the backlog (which the cap bounds), not everything ever sent.
            if conn.out_pos >= READ_CHUNK && conn.out_pos * 2 >= conn.out_buf.len() {
                conn.out_buf.drain(..conn.out_pos);
                conn.out_pos = 0;
            }
            if conn.backlog() > 0 {
                return Some(false);
            }
        }
        conn.out_buf.clear();
        conn.out_pos = 0;
        if conn.out_buf.capacity() > READ_CHUNK {
            conn.out_buf = Vec::new();
        }
        if conn.close_after_flush {
            self.close(id);
            return None;
        }
        Some(true)
    }

    /// `netlib_close`: closes `id` now (unsent bytes are dropped, as in the
    /// C++); its handler's `on_close` runs after the current callback.
    pub fn close(&mut self, id: ConnId) {
        let Some(conn) = self
            .conns
            .get_mut(id.key as usize)
            .filter(|c| c.serial == id.serial && !c.closed)
        else {
            return;
        };
        if conn.flush_queued {
            // Queued this turn: the C++ would have written it already.
            conn.flush_queued = false;
            let _ = write_chunks(&mut conn.stream, &conn.out_buf[conn.out_pos..]);
        }
        conn.closed = true;
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.pending_close.push(id.key as usize);
    }

    /// Closes `id` once its out-buffer is written (at once if it is empty).
    pub fn close_after_flush(&mut self, id: ConnId) {
        match self.conn_mut(id) {
            Some(c) if c.backlog() > 0 || c.connecting => c.close_after_flush = true,
            Some(_) => self.close(id),
            None => {}
        }
    }

    /// `netlib_register_timer`: calls `callback` every `interval_ms`.
    pub fn register_timer(
        &mut self,
        interval_ms: u64,
        callback: impl FnMut(&mut Reactor<S>, &mut S) + 'static,
    ) -> TimerId {
        let interval = interval_ms.max(1);
        self.next_timer_serial += 1;
        let serial = self.next_timer_serial;
        let key = self.timers.insert(Timer {
            serial,
            interval,
            next: monotonic_ms() + interval,
            callback: Some(Box::new(callback)),
        });
        TimerId { key, serial }
    }

    /// `netlib_delete_timer`.
    pub fn delete_timer(&mut self, id: TimerId) {
        if self
            .timers
            .get(id.key)
            .is_some_and(|t| t.serial == id.serial)
        {
            self.timers.remove(id.key);
        }
    }

    /// `netlib_add_loop`: calls `callback` once per loop iteration.
    pub fn add_loop(&mut self, callback: impl FnMut(&mut Reactor<S>, &mut S) + 'static) {
        self.loops.push(Some(Box::new(callback)));
    }

    /// A handle other threads use to run code on this loop, waking it at once.
    pub fn remote(&self) -> Remote<S> {
        Remote::new(self.inbox_tx.clone(), self.waker.clone())
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
        crate::remote::forward_signals(signals, self.inbox_tx.clone(), self.waker.clone())
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
        let now = monotonic_ms();
        let next_due = self
            .timers
            .iter()
            .map(|(_, t)| t.next)
            .chain(std::iter::once(self.next_conn_tick))
            .min()
            .unwrap_or(u64::MAX);
        let wait = wait_timeout_ms.min(next_due.saturating_sub(now));
        let timeout = if self.pending_close.is_empty() && self.still_readable.is_empty() {
            Duration::from_millis(wait)
        } else {
            Duration::ZERO
        };
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        // Connections left over from the last turn get this turn's budget
        // after the events; ones that spend it during this turn's events
        // wait for the next turn.
        let pending_readable = std::mem::take(&mut self.still_readable);
        let ready: Vec<(Token, bool, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                let closed = e.is_error() || e.is_read_closed() || e.is_write_closed();
                (e.token(), e.is_readable(), e.is_writable(), closed)
            })
            .collect();
        for (token, readable, writable, hup) in ready {
            if token == WAKER_TOKEN {
                continue;
            } else if token.0 & LISTENER_BIT != 0 {
                self.on_accept(state, token.0 & !LISTENER_BIT);
            } else {
                let key = token.0 & 0xffff_ffff;
                let serial_bits = ((token.0 >> 32) as u32) & TOKEN_SERIAL_MASK;
                self.on_conn_event(state, key, serial_bits, readable, writable, hup);
            }
            self.reap(state);
            // What this event made us send goes out now, one write per
            // destination: peers start on it while we handle the next event.
            self.flush(state);
        }
        for id in pending_readable {
            // Whole PDUs it sent wait in its buffer: the peer is not silent.
            match self.conn_mut(id) {
                Some(c) => {
                    c.readable_queued = false;
                    c.last_recv = monotonic_ms();
                }
                None => continue,
            }
            self.on_readable(state, id);
            self.reap(state);
            self.flush(state);
        }
        self.drain_inbox(state);
        self.run_timers(state);
        self.run_loops(state);
        self.reap(state);
        self.flush(state);
        Ok(())
    }

    fn drain_inbox(&mut self, state: &mut S) {
        // Only what is there now: a closure that queues another must not
        // keep the loop from polling.
        for _ in 0..self.inbox.len() {
            let Ok(msg) = self.inbox.try_recv() else {
                break;
            };
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

    fn run_timers(&mut self, state: &mut S) {
        let now = monotonic_ms();
        let due: Vec<usize> = self
            .timers
            .iter()
            .filter(|(_, t)| t.next <= now)
            .map(|(k, _)| k)
            .collect();
        for key in due {
            // Still due: an earlier callback may have deleted this timer and
            // registered another in its slot.
            let Some(mut cb) = self
                .timers
                .get_mut(key)
                .filter(|t| t.next <= now)
                .and_then(|t| {
                    t.next = now + t.interval;
                    t.callback.take()
                })
            else {
                continue;
            };
            cb(self, state);
            if let Some(t) = self.timers.get_mut(key) {
                if t.callback.is_none() {
                    t.callback = Some(cb);
                }
            }
            self.reap(state);
        }
        if now >= self.next_conn_tick {
            self.next_conn_tick = now + self.conn_tick_ms;
            // Edge-triggered listeners that hit EMFILE are not woken again
            // for connections already queued: retry them on the tick.
            let listeners: Vec<usize> = self.listeners.iter().map(|(k, _)| k).collect();
            for lkey in listeners {
                self.on_accept(state, lkey);
            }
            let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
            for key in keys {
                self.with_handler(state, key, |h, cx| h.on_timer(cx, now));
            }
            self.reap(state);
        }
    }

    fn run_loops(&mut self, state: &mut S) {
        for i in 0..self.loops.len() {
            if let Some(mut cb) = self.loops[i].take() {
                cb(self, state);
                self.loops[i] = Some(cb);
            }
        }
    }

    fn on_accept(&mut self, state: &mut S, lkey: usize) {
        loop {
            let Some(l) = self.listeners.get_mut(lkey) else {
                return;
            };
            match l.listener.accept() {
                Ok((stream, peer)) => {
                    let key = self.conns.vacant_key();
                    let id = ConnId {
                        key: key as u32,
                        serial: self.next_serial,
                    };
                    let acceptor = l.acceptor;
                    let Some(mut accept) = self.acceptors.get_mut(acceptor).and_then(Option::take)
                    else {
                        return;
                    };
                    let handler = accept(state, id);
                    self.acceptors[acceptor] = Some(accept);
                    match self.insert_conn(stream, Some(peer), false, handler) {
                        Ok(id) => {
                            log::debug!("accepted {peer} as {id}");
                            self.with_handler(state, key, |h, cx| h.on_connect(cx));
                        }
                        Err(e) => {
                            // The handler never ran: its id must not be reused.
                            self.next_serial = self.next_serial.wrapping_add(1).max(1);
                            log::warn!("cannot register connection from {peer}: {e}");
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and the like: log and retry on the next event.
                    log::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

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
                    log::warn!("connect to {:?} failed: {e}", conn.peer);
                    self.close(id);
                    return;
                }
                None => {
                    conn.connecting = false;
                    let _ = conn.stream.set_nodelay(true);
                    log::info!("connected to {:?}", conn.peer);
                    self.with_handler(state, key, |h, cx| h.on_confirm(cx));
                }
            }
        }
        if writable {
            self.on_writable(state, id);
        }
        let queued = self.conn_mut(id).is_some_and(|c| c.readable_queued);
        if (readable || hup) && !queued {
            self.on_readable(state, id);
        }
    }

    /// Remembers that `id` has more to read or handle than its turn allowed
    /// (edge-triggered: no new event will say so), once.
    fn queue_readable(&mut self, id: ConnId) {
        if let Some(c) = self.conn_mut(id) {
            if !c.readable_queued {
                c.readable_queued = true;
                self.still_readable.push(id);
            }
        }
    }

    fn on_writable(&mut self, state: &mut S, id: ConnId) {
        let had_backlog = self.conn_mut(id).is_some_and(|c| c.backlog() > 0);
        if self.write_backlog(id) == Some(true) && !self.notify_drained(state, id) && had_backlog {
            self.with_handler(state, id.key as usize, |h, cx| h.on_write(cx));
        }
    }

    /// `CImConn::OnRead`: reads until `WouldBlock`, handing every whole PDU
    /// to the handler as it arrives (so the in-buffer never holds more than
    /// one partial PDU plus one read).
    fn on_readable(&mut self, state: &mut S, id: ConnId) {
        let key = id.key as usize;
        let mut taken = 0;
        let mut budget = MAX_PDUS_PER_EVENT;
        // PDUs an earlier turn's budget left in the buffer go first, before
        // anything newer (and before an end of stream) is read.
        let leftover = self.conns.get(key).is_some_and(|c| {
            c.serial == id.serial
                && !c.closed
                && !c.close_after_flush
                && !c.raw
                && !c.in_buf.is_empty()
        });
        if leftover {
            match self.dispatch_pdus(state, id, &mut budget) {
                Dispatch::Done => {}
                Dispatch::BudgetSpent => {
                    self.queue_readable(id);
                    return;
                }
                Dispatch::Closed => return,
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
            if conn.read_closed || conn.close_after_flush {
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
                    if conn.backlog() > 0 {
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
                    conn.last_recv = monotonic_ms();
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
                        Dispatch::Done => {}
                        Dispatch::BudgetSpent => {
                            // The edge will not fire for what is buffered.
                            self.queue_readable(id);
                            return;
                        }
                        Dispatch::Closed => return,
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
        let key = id.key as usize;
        let (mut in_buf, limit) = match self.conns.get_mut(key) {
            Some(c) => (std::mem::take(&mut c.in_buf), c.max_pdu_len),
            None => return Dispatch::Closed,
        };
        let mut pos = 0;
        let mut open = true;
        let mut spent = false;
        loop {
            match is_pdu_available_within(&in_buf[pos..], limit) {
                Ok(Some(_)) if *budget == 0 => {
                    spent = true;
                    break;
                }
                Ok(Some(len)) => {
                    *budget -= 1;
                    let frame = in_buf[pos..pos + len].to_vec();
                    pos += len;
                    let pdu = match ImPdu::from_frame(frame) {
                        Ok(p) => p,
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
            in_buf.drain(..pos);
            // One big PDU must not pin its buffer for the connection's life.
            if in_buf.is_empty() && in_buf.capacity() > 1 << 20 {
                in_buf = Vec::new();
            }
            if let Some(c) = self.conns.get_mut(key) {
                c.in_buf = in_buf;
            }
        }
        match (open, spent) {
            (false, _) => Dispatch::Closed,
            (true, true) => Dispatch::BudgetSpent,
            (true, false) => Dispatch::Done,
        }
    }

    /// Hands the in-buffer of a raw connection to its handler. Returns
    /// false when the connection closed meanwhile.
    fn dispatch_raw(&mut self, state: &mut S, id: ConnId) -> bool {
        let key = id.key as usize;
        let mut in_buf = match self.conns.get_mut(key) {
            Some(c) => std::mem::take(&mut c.in_buf),
            None => return false,
        };
        self.with_handler(state, key, |h, cx| h.on_bytes(cx, &mut in_buf));
        match self.conns.get_mut(key) {
            Some(c) if c.serial == id.serial && !c.closed => {
                c.in_buf = in_buf;
                true
            }
            _ => false,
        }
    }

    fn close_bad_input(&mut self, id: ConnId, e: &dyn std::fmt::Display) {
        log::warn!(
            "connection {id} ({:?}) sent a bad PDU, closing it: {e}",
            self.peer_addr(id)
        );
        self.close(id);
    }

    /// Calls `f` on the handler of connection slot `key`, with a [`Ctx`].
    /// The handler is taken out of the table for the call, so it may use
    /// the reactor freely (send to others, close itself...).
    fn with_handler(
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

    /// Runs `on_close` for, and removes, every connection closed since the
    /// last call.
    fn reap(&mut self, state: &mut S) {
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
                log::debug!("connection {id} ({:?}) removed", conn.peer);
            }
        }
    }
}

/// Writes as much of `bytes` as the kernel takes, at most
/// [`NETLIB_MAX_SOCKET_BUF_SIZE`] per call; returns how much was written.
fn write_chunks(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut offset = 0;
    while offset < bytes.len() {
        let end = bytes.len().min(offset + NETLIB_MAX_SOCKET_BUF_SIZE);
        match stream.write(&bytes[offset..end]) {
            Ok(0) => return Err(io::Error::from(ErrorKind::WriteZero)),
            Ok(n) => offset += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(offset)
}

/// Resolves `ip:port`, preferring an IPv4 address as the C++
/// `gethostbyname` does (`localhost` is then 127.0.0.1, which the
/// `0.0.0.0` listeners of the shipped confs accept).
fn resolve(ip: &str, port: u16) -> Result<SocketAddr, NetError> {
    (ip, port)
        .to_socket_addrs()
        .and_then(|it| {
            let all: Vec<SocketAddr> = it.collect();
            all.iter()
                .find(|a| a.is_ipv4())
                .or_else(|| all.first())
                .copied()
                .ok_or_else(|| io::Error::new(ErrorKind::NotFound, "no address"))
        })
        .map_err(|source| NetError::Address {
            addr: format!("{ip}:{port}"),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imconn::{Ctx, ImConn};
    use std::io::Read;

    struct Nop;
    impl ImConn<Vec<ConnId>> for Nop {
        fn on_pdu(&mut self, _cx: &mut Ctx<'_, Vec<ConnId>>, _pdu: ImPdu) {}
    }

    /// The cap counts only unsent bytes, but the already-written prefix of
    /// out_buf is only freed when the backlog reaches exactly 0: a peer that
    /// reads steadily but never quite catches up grows out_buf without bound.
    #[test]
    fn out_buf_memory_follows_the_backlog_with_a_slow_steady_reader() {
        let mut net = Reactor::<Vec<ConnId>>::new().unwrap();
        net.set_out_buf_cap(1 << 20); // 1 MiB
        let addr = net
            .listen("127.0.0.1", 0, |s: &mut Vec<ConnId>, id| {
                s.push(id);
                Box::new(Nop) as Box<dyn ImConn<Vec<ConnId>>>
            })
            .unwrap()[0];
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client.set_nonblocking(true).unwrap();
        let mut state = Vec::new();
        while state.is_empty() {
            net.run_once(&mut state, 10).unwrap();
        }
        let id = state[0];
        {
            let c = net.conns.get(id.key as usize).unwrap();
            socket2::SockRef::from(&c.stream)
                .set_send_buffer_size(16 * 1024)
                .unwrap();
            socket2::SockRef::from(&client)
                .set_recv_buffer_size(16 * 1024)
                .unwrap();
        }
        let chunk = vec![7u8; 64 * 1024];
        let mut buf = vec![0u8; 64 * 1024];
        // phase 1: the peer does not read until we hold a backlog
        while net.backlog(id) < 256 * 1024 {
            net.send(id, &chunk).unwrap();
            net.run_once(&mut state, 0).unwrap();
        }
        // phase 2: the peer reads exactly as fast as we send
        let mut max_len = 0;
        for _ in 0..400 {
            net.send(id, &chunk).unwrap();
            let mut got = 0;
            while got < buf.len() {
                match client.read(&mut buf[..64 * 1024 - got]) {
                    Ok(n) if n > 0 => got += n,
                    _ => net.run_once(&mut state, 1).unwrap(),
                }
            }
            net.run_once(&mut state, 0).unwrap();
            let c = net.conn(id).expect("still open");
            max_len = max_len.max(c.out_buf.len());
            assert!(c.backlog() <= 1 << 20);
        }
        assert!(
            max_len <= 2 << 20,
            "out_buf holds {max_len} bytes with a 1 MiB cap"
        );
    }

    #[derive(Default)]
    struct St {
        ids: Vec<ConnId>,
        blackhole: Option<SocketAddr>,
        out: Option<ConnId>,
        out_closed: bool,
    }
    struct Role(usize);
    struct Out;
    impl ImConn<St> for Out {
        fn on_pdu(&mut self, _cx: &mut Ctx<'_, St>, _pdu: ImPdu) {}
        fn on_close(&mut self, cx: &mut Ctx<'_, St>) {
            cx.state.out_closed = true;
        }
    }
    impl ImConn<St> for Role {
        fn on_pdu(&mut self, cx: &mut Ctx<'_, St>, _pdu: ImPdu) {
            match self.0 {
                1 => {
                    let a = cx.state.ids[0];
                    cx.net.close(a); // e.g. a duplicate login kicks A
                }
                2 => {
                    let bh = cx.state.blackhole.unwrap();
                    let id = cx
                        .net
                        .connect(&bh.ip().to_string(), bh.port(), Box::new(Out))
                        .unwrap();
                    cx.state.out = Some(id);
                }
                _ => {}
            }
        }
    }

    /// A stale event of a connection reaped earlier in the same poll batch
    /// is dispatched to whatever new connection took its slab slot.
    #[test]
    fn a_stale_event_never_reaches_a_new_connection_in_the_same_slot() {
        use std::io::Write;
        // a listener whose accept queue is full: connects to it stay in progress
        let bh = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        bh.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        bh.listen(0).unwrap();
        let bh_addr = bh.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..3 {
            if let Ok(s) =
                std::net::TcpStream::connect_timeout(&bh_addr, Duration::from_millis(200))
            {
                fillers.push(s);
            }
        }
        let mut net = Reactor::<St>::new().unwrap();
        let addr = net
            .listen("127.0.0.1", 0, |s: &mut St, id| {
                s.ids.push(id);
                Box::new(Role(s.ids.len() - 1)) as Box<dyn ImConn<St>>
            })
            .unwrap()[0];
        let mut st = St {
            blackhole: Some(bh_addr),
            ..Default::default()
        };
        let ca = std::net::TcpStream::connect(addr).unwrap();
        let mut cx = std::net::TcpStream::connect(addr).unwrap();
        let mut cy = std::net::TcpStream::connect(addr).unwrap();
        while st.ids.len() < 3 {
            net.run_once(&mut st, 10).unwrap();
        }
        for _ in 0..5 {
            net.run_once(&mut st, 10).unwrap();
        }
        let p = ImPdu::new(1, 1);
        cx.write_all(p.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        cy.write_all(p.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(ca);
        std::thread::sleep(Duration::from_millis(50));
        net.run_once(&mut st, 10).unwrap();
        let out = st.out.expect("Y connected");
        assert_eq!(out.key, st.ids[0].key, "the new link took A's slot");
        assert!(
            !st.out_closed && net.is_open(out),
            "in-progress connect was closed by A's stale hang-up event"
        );
    }
}

#[cfg(test)]
mod timer_tests {
    use super::*;
    /// Timer A (due) deletes timer B (also due) and registers C, which takes
    /// B's slot: C runs at once in this same pass, before its interval.
    #[test]
    fn a_timer_registered_in_a_freed_due_slot_waits_its_interval() {
        let mut net = Reactor::<Vec<&'static str>>::new().unwrap();
        let b = std::rc::Rc::new(std::cell::Cell::new(None));
        let b2 = b.clone();
        net.register_timer(1, move |net, _s| {
            if let Some(id) = b2.take() {
                net.delete_timer(id);
                net.register_timer(60_000, |_, s: &mut Vec<&'static str>| s.push("C ran"));
            }
        });
        b.set(Some(net.register_timer(1, |_, _| {})));
        std::thread::sleep(Duration::from_millis(5));
        let mut s = Vec::new();
        net.run_timers(&mut s);
        assert!(
            s.is_empty(),
            "a 60 s timer ran right after registration: {s:?}"
        );
    }
}
