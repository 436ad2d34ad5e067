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

/// At most this many connections are accepted on one listener per loop
/// turn; the rest wait in the kernel's accept queue for the next turns.
/// Each accept makes a handler and runs its `on_connect`, so a storm of
/// thousands of connects at once would otherwise hold every timer and
/// heartbeat of the loop for as long as they all take.
pub const MAX_ACCEPTS_PER_TURN: usize = 256;

/// The accept queue each listener asks the kernel for (`listen(2)`'s
/// backlog; the C++ asks for 64, mio's `bind` for 128).
pub const LISTEN_BACKLOG: i32 = 1024;

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
        let acceptor = self.acceptors.len();
        self.acceptors.push(Some(Box::new(accept)));
        let mut bound = Vec::new();
        for ip in base::config::explode(ips, ';') {
            let addr = resolve(&ip, port)?;
            let mut listener = bind(addr).map_err(|source| NetError::Address {
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
                Ok((stream, peer)) => {
                    accepted += 1;
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
}

/// A non-blocking listener on `addr` with `SO_REUSEADDR` (as mio's and the
/// C++ `bind` set it) and an accept queue of [`LISTEN_BACKLOG`].
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
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
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads one c_int through a valid pointer, on a
        // socket this function borrows.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    socket.bind(&SocketAddr::new(source, 0).into())
}
