//! Listening, connecting and accepting: the C++ `netlib_listen`,
//! `netlib_connect` (`netlib.cpp`) and `CBaseSocket::Listen`, `Connect`,
//! `_AcceptNewSocket` (`BaseSocket.cpp`).
//!
//! Differences from the C++:
//! - One `listen` call takes a `;` list of addresses, as the conf keys
//!   `ListenIP=a;b` allow (the C++ servers loop over the list themselves).
//! - A name resolves preferring IPv4, as `gethostbyname` does; a connect
//!   to an address already resolved ([`Reactor::connect_addr`]) does not
//!   resolve again (the C++ calls `gethostbyname`, blocking the loop, on
//!   every reconnect try).
//! - One listener accepts at most [`MAX_ACCEPTS_PER_TURN`] (256)
//!   connections per turn, the rest on the next turns, so a connection
//!   storm cannot hold the loop's timers and heartbeats (the C++ accepts
//!   until the queue is empty).
//! - Listeners ask for an accept queue of [`LISTEN_BACKLOG`] (1,024; the
//!   kernel caps it at `net.core.somaxconn`) where the C++ asks for 64: a
//!   storm's connections then wait in the kernel between turns instead of
//!   having their SYNs dropped and retried a second later.
//! - [`Reactor::connect_from`] binds its source address with
//!   `IP_BIND_ADDRESS_NO_PORT` ([`bind_source`]), so the port is picked
//!   at connect time.
//! - A connection accepted while [`Reactor::set_conn_limit`] connections
//!   are open (by default the file limit less up to [`FD_RESERVE`]) is closed at
//!   once, and counted (the C++ accepts until `EMFILE`, after which its
//!   peer reconnects and file opens fail as well).
//! - An accepted connection is registered for readable events only, and
//!   for writable ones once it has a backlog (the C++ asks for both at
//!   once, and a new socket's first writable event is a turn for
//!   nothing); on Linux its `TCP_NODELAY` comes from the listener, set
//!   once, not per connection.
//! - Listeners of clients that always speak first (msg_server's client
//!   port, login_server's client and HTTP ports: [`Reactor::listen_clients`])
//!   ask the kernel to hand over a connection only once its first bytes
//!   are in (`TCP_DEFER_ACCEPT`), and read them in the turn that accepts
//!   it: accepting a login and reading it cost one wake-up, not two. A
//!   connection that stays silent is handed over after about
//!   [`FIRST_BYTES_WITHIN_SECS`] all the same.
//! - A connection that cannot be registered does not leave its id to the
//!   next one; `EMFILE` is retried on the connection tick, since an
//!   edge-triggered listener is not woken again for what is queued.

use super::ids::{conn_token, listener_token};
use super::out_buf::OutBuf;
use super::{Conn, ConnId, Listener, NetError, Reactor};
use crate::imconn::ImConn;
use mio::net::{TcpListener, TcpStream};
use mio::Interest;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, ToSocketAddrs};

/// Whether an accepted socket has the listener's `TCP_NODELAY` (Linux
/// copies it from the listener): then the listener sets it once instead
/// of a system call per accepted connection.
const NODELAY_INHERITED: bool = cfg!(target_os = "linux");

/// Most file descriptors a reactor leaves free of accepted connections by
/// default (see [`Reactor::set_conn_limit`]): for the peer links it
/// connects, its listeners, logs and the files a server opens (msfs,
/// file_server). A sixteenth of a smaller limit (64 of 1,024).
pub const FD_RESERVE: usize = 128;

/// The default connection limit: the soft file limit less its reserve
/// ([`FD_RESERVE`], or a sixteenth of it, at least 16); no limit when it
/// cannot be read or is unlimited.
pub(super) fn default_conn_limit() -> usize {
    let limit = crate::metrics::process::max_fds()
        .filter(|&l| l != libc::RLIM_INFINITY)
        .and_then(|l| usize::try_from(l).ok());
    match limit {
        Some(l) => l.saturating_sub((l / 16).clamp(16, FD_RESERVE)).max(1),
        None => usize::MAX,
    }
}

/// At most this many connections are accepted on one listener per loop
/// turn; the rest wait in the kernel's accept queue for the next turns.
/// Each accept makes a handler and runs its `on_connect`, so a storm of
/// thousands of connects at once would otherwise hold every timer and
/// heartbeat of the loop for as long as they all take.
pub const MAX_ACCEPTS_PER_TURN: usize = 256;

/// The accept queue each listener asks the kernel for (`listen(2)`'s
/// backlog; the C++ asks for 64, mio's `bind` for 128).
pub const LISTEN_BACKLOG: i32 = 1024;

/// A listener of [`Reactor::listen_clients`] is handed a connection that
/// has sent nothing after about this long anyway (the kernel rounds it up
/// to its next SYN-ACK retry: 7 s).
pub const FIRST_BYTES_WITHIN_SECS: i32 = 5;

impl<S: 'static> Reactor<S> {
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
        self.listen_with(ips, port, false, accept)
    }

    /// [`listen`](Self::listen) for clients that always send first (a
    /// TeamTalk client's login, an HTTP request): the kernel hands a
    /// connection over once its first bytes are in (`TCP_DEFER_ACCEPT`),
    /// and they are read in the turn that accepts it, so accepting and
    /// reading cost one wake-up, not two. Not for peer links, whose
    /// connecting side may stay quiet until it has something to ask.
    pub fn listen_clients(
        &mut self,
        ips: &str,
        port: u16,
        accept: impl FnMut(&mut S, ConnId) -> Box<dyn ImConn<S>> + 'static,
    ) -> Result<Vec<SocketAddr>, NetError> {
        self.listen_with(ips, port, true, accept)
    }

    fn listen_with(
        &mut self,
        ips: &str,
        port: u16,
        clients_speak_first: bool,
        accept: impl FnMut(&mut S, ConnId) -> Box<dyn ImConn<S>> + 'static,
    ) -> Result<Vec<SocketAddr>, NetError> {
        let acceptor = self.acceptors.len();
        self.acceptors.push(Some(Box::new(accept)));
        let mut bound = Vec::new();
        for ip in base::config::explode(ips, ';') {
            let addr = resolve(&ip, port)?;
            let mut listener =
                bind(addr, clients_speak_first).map_err(|source| NetError::Address {
                    addr: format!("{ip}:{port}"),
                    source,
                })?;
            let local = listener.local_addr()?;
            let entry = self.listeners.vacant_entry();
            self.poll.registry().register(
                &mut listener,
                listener_token(entry.key()),
                Interest::READABLE,
            )?;
            entry.insert(Listener {
                listener,
                acceptor,
                accept_queued: false,
                clients_speak_first,
            });
            log::info!("listening on {local}");
            bound.push(local);
        }
        Ok(bound)
    }

    /// `netlib_connect`: starts a non-blocking connect to `ip:port` (a name
    /// is resolved here, blocking; see [`connect_addr`](Self::connect_addr));
    /// `handler.on_confirm` runs when it succeeds, `handler.on_close` when
    /// it fails.
    pub fn connect(
        &mut self,
        ip: &str,
        port: u16,
        handler: Box<dyn ImConn<S>>,
    ) -> Result<ConnId, NetError> {
        let addr = resolve(ip, port)?;
        self.connect_addr(addr, handler)
    }

    /// [`connect`](Self::connect) to an address resolved beforehand, so the
    /// loop never waits for a name server (peer links resolve once, when
    /// the conf is read: [`crate::ServList::new`]).
    pub fn connect_addr(
        &mut self,
        addr: SocketAddr,
        handler: Box<dyn ImConn<S>>,
    ) -> Result<ConnId, NetError> {
        let stream = TcpStream::connect(addr).map_err(|source| NetError::Address {
            addr: addr.to_string(),
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
        bind_source(&socket, source).map_err(fail)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(fail(e)),
        }
        let stream = TcpStream::from_std(socket.into());
        log::info!("connecting to {addr} from {source}");
        self.insert_conn(stream, Some(addr), true, handler)
    }

    /// Registers `stream` and puts it in the table under a fresh id.
    fn insert_conn(
        &mut self,
        mut stream: TcpStream,
        peer: Option<SocketAddr>,
        connecting: bool,
        handler: Box<dyn ImConn<S>>,
    ) -> Result<ConnId, NetError> {
        let now = self.now_ms();
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let serial = self.next_serial;
        let interest = if connecting {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        self.poll
            .registry()
            .register(&mut stream, conn_token(key, serial), interest)?;
        if !connecting && !NODELAY_INHERITED {
            // A failure here only costs latency; the C++ ignores it too.
            let _ = stream.set_nodelay(true);
        }
        self.next_serial = self.next_serial.wrapping_add(1).max(1);
        let raw = handler.raw_bytes();
        let max_pdu_len = handler.max_pdu_len();
        let kind = self.stats.kind_index(handler.kind());
        let k = &mut self.stats.kinds[kind];
        k.open += 1;
        k.opened += 1;
        entry.insert(Conn {
            stream,
            serial,
            handler: Some(handler),
            peer,
            in_buf: Vec::new(),
            out: OutBuf::new(self.out_buf_cap),
            connecting,
            read_closed: false,
            raw,
            flush_queued: false,
            readable_queued: false,
            max_pdu_len,
            kind,
            close_after_flush: false,
            paused: false,
            drain_notify: false,
            closed: false,
            write_interest: connecting,
            last_send: now,
            last_recv: now,
            timer_bucket: 0,
            timer_asked: u64::MAX,
        });
        let id = ConnId {
            key: key as u32,
            serial,
        };
        self.schedule_next_tick(id);
        Ok(id)
    }

    /// Remembers that listener `lkey` has connections queued beyond its
    /// turn's budget (edge-triggered: no new event will say so), once.
    fn queue_acceptable(&mut self, lkey: usize) {
        if let Some(l) = self.listeners.get_mut(lkey) {
            if !l.accept_queued {
                l.accept_queued = true;
                self.still_acceptable.push(lkey);
            }
        }
    }

    /// An event or the tick for listener `lkey`: accepts now, unless it is
    /// already queued for its next turn's budget.
    pub(super) fn on_acceptable(&mut self, state: &mut S, lkey: usize) {
        if self.listeners.get(lkey).is_some_and(|l| !l.accept_queued) {
            self.on_accept(state, lkey);
        }
    }

    /// `pending`, the listeners the last turn's budget left with
    /// connections queued: this turn's budget for each.
    pub(super) fn accept_left_over(&mut self, state: &mut S, pending: Vec<usize>) {
        for lkey in pending {
            match self.listeners.get_mut(lkey) {
                Some(l) => l.accept_queued = false,
                None => continue,
            }
            self.on_accept(state, lkey);
            self.reap(state);
            self.flush(state);
        }
    }

    /// `_AcceptNewSocket`: accepts what is queued on listener `lkey`, at
    /// most [`MAX_ACCEPTS_PER_TURN`], making each connection's handler and
    /// calling its `on_connect`.
    pub(super) fn on_accept(&mut self, state: &mut S, lkey: usize) {
        let mut accepted = 0;
        loop {
            if accepted >= MAX_ACCEPTS_PER_TURN {
                self.queue_acceptable(lkey);
                return;
            }
            let Some(l) = self.listeners.get_mut(lkey) else {
                return;
            };
            match l.listener.accept() {
                Ok((stream, peer)) if self.conns.len() >= self.conn_limit => {
                    // Dropping it closes it: the client sees the close
                    // and may try another server.
                    accepted += 1;
                    drop(stream);
                    self.stats.over_conn_limit_closes += 1;
                    if !self.refusing {
                        self.refusing = true;
                        log::warn!(
                            "{} connections open, the limit: closing new ones (from {peer}) until one ends",
                            self.conns.len()
                        );
                    }
                }
                Ok((stream, peer)) => {
                    if self.refusing {
                        self.refusing = false;
                        log::warn!("connections below the limit again: accepting");
                    }
                    accepted += 1;
                    let key = self.conns.vacant_key();
                    let id = ConnId {
                        key: key as u32,
                        serial: self.next_serial,
                    };
                    let (acceptor, read_now) = (l.acceptor, l.clients_speak_first);
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
                            if read_now {
                                // Its first bytes are in (TCP_DEFER_ACCEPT).
                                // Registered before this read, so whatever
                                // comes after a short read raises an edge.
                                self.on_readable(state, id, true);
                            }
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
}

/// A non-blocking listener on `addr` with `SO_REUSEADDR` (as mio's and the
/// C++ `bind` set it) and an accept queue of [`LISTEN_BACKLOG`];
/// `defer_accept`: with `TCP_DEFER_ACCEPT` (see [`Reactor::listen_clients`]).
fn bind(addr: SocketAddr, defer_accept: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    if NODELAY_INHERITED {
        // Every accepted connection gets it (the C++ sets it on each).
        socket.set_nodelay(true)?;
    }
    if defer_accept {
        set_defer_accept(&socket, FIRST_BYTES_WITHIN_SECS)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// `TCP_DEFER_ACCEPT` of `secs` on a listening socket.
fn set_defer_accept(socket: &socket2::Socket, secs: i32) -> io::Result<()> {
    set_int_option(socket, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, secs)
}

/// `setsockopt` of one `int` option that socket2 does not offer.
fn set_int_option(
    socket: &socket2::Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads one c_int through a valid pointer, on a
    // socket this function borrows.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Resolves `ip:port`, preferring an IPv4 address as the C++
/// `gethostbyname` does (`localhost` is then 127.0.0.1, which the
/// `0.0.0.0` listeners of the shipped confs accept). Blocking: a name
/// asks the system resolver.
pub fn resolve(ip: &str, port: u16) -> Result<SocketAddr, NetError> {
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

/// Binds `socket` to `source` before a connect, leaving the port to the
/// kernel at connect time (`IP_BIND_ADDRESS_NO_PORT` for IPv4): a plain
/// `bind(ip, 0)` picks a port at once and must find one free for every
/// destination, which gets slow, and then fails, with tens of thousands
/// of connections from one address (load tools, many peer links).
pub fn bind_source(socket: &socket2::Socket, source: std::net::IpAddr) -> io::Result<()> {
    if source.is_ipv4() {
        set_int_option(socket, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)?;
    }
    socket.bind(&SocketAddr::new(source, 0).into())
}
