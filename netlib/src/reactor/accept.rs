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
            let mut listener = TcpListener::bind(addr).map_err(|source| NetError::Address {
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
            entry.insert(Listener { listener, acceptor });
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
            close_after_flush: false,
            closed: false,
            last_send: now,
            last_recv: now,
        });
        Ok(ConnId {
            key: key as u32,
            serial,
        })
    }

    /// `_AcceptNewSocket`: accepts what is queued on listener `lkey`, making
    /// each connection's handler and calling its `on_connect`.
    pub(super) fn on_accept(&mut self, state: &mut S, lkey: usize) {
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
