//! Outgoing links to peer servers: the C++ `ServInfo.h` (`serv_info_t`,
//! `serv_init`, `serv_check_reconnect`, `serv_reset`).
//!
//! msg_server keeps one of these lists per peer kind (db_proxy, login,
//! route, push, file). A link that closes is reconnected after an idle
//! count of timer ticks that starts at [`MIN_RECONNECT_CNT`] and doubles on
//! every failure up to [`MAX_RECONNECT_CNT`], then starts over, exactly as
//! `serv_reset` does.
//!
//! Differences from the C++: each peer's name is resolved once, when the
//! list is made from the conf ([`ServList::new`]), not by a blocking
//! `gethostbyname` on the loop at every reconnect try. A name that does not
//! resolve then is logged and tried again at each connect until it does
//! (then kept), so a peer whose DNS entry appears later is still reached.

use crate::imconn::ImConn;
use crate::reactor::{resolve, ConnId, Reactor};
use base::config::ServerAddr;
use std::net::SocketAddr;

/// `MIN_RECONNECT_CNT`: ticks before the first reconnect after a failure.
pub const MIN_RECONNECT_CNT: u32 = 4;
/// `MAX_RECONNECT_CNT`: the back-off's ceiling, in ticks.
pub const MAX_RECONNECT_CNT: u32 = 64;

/// One peer server and our link to it (`serv_info_t`).
#[derive(Debug, Clone)]
pub struct ServInfo {
    /// Where the peer listens, as the conf says.
    pub addr: ServerAddr,
    /// `addr` resolved (when the list was made, or at the first connect
    /// that could resolve it); `None` until a resolution succeeds.
    pub resolved: Option<SocketAddr>,
    /// The open (or connecting) link, if any.
    pub conn: Option<ConnId>,
    /// Ticks since the link was lost.
    pub idle_cnt: u32,
    /// Ticks to wait before the next try.
    pub reconnect_cnt: u32,
    /// Connects started to this peer (the first and every reconnect), for
    /// metrics.
    pub connects: u64,
}

/// The list of peers of one kind.
#[derive(Debug, Clone, Default)]
pub struct ServList {
    /// The peers, in configuration order (index = the C++ `serv_idx`).
    pub servers: Vec<ServInfo>,
}

impl ServList {
    /// A list for the configured addresses, each resolved now (blocking,
    /// once, while the conf is read); nothing is connected yet.
    pub fn new(addrs: Vec<ServerAddr>) -> ServList {
        ServList {
            servers: addrs
                .into_iter()
                .map(|addr| {
                    let resolved = match resolve(&addr.ip, addr.port) {
                        Ok(a) => Some(a),
                        Err(e) => {
                            log::warn!("{e}; resolving it again at each connect try");
                            None
                        }
                    };
                    ServInfo {
                        addr,
                        resolved,
                        conn: None,
                        idle_cnt: 0,
                        reconnect_cnt: MIN_RECONNECT_CNT / 2,
                        connects: 0,
                    }
                })
                .collect(),
        }
    }

    /// `serv_init`: connects to every peer; `make(idx)` builds the handler
    /// for the link to peer `idx`.
    pub fn serv_init<S: 'static>(
        &mut self,
        net: &mut Reactor<S>,
        mut make: impl FnMut(usize) -> Box<dyn ImConn<S>>,
    ) {
        for idx in 0..self.servers.len() {
            self.servers[idx].idle_cnt = 0;
            self.servers[idx].reconnect_cnt = MIN_RECONNECT_CNT / 2;
            self.connect(net, idx, &mut make);
        }
    }

    /// `serv_check_reconnect`: call once per tick (the C++ uses its 1 s
    /// timers); reconnects each lost link whose back-off has run out.
    pub fn check_reconnect<S: 'static>(
        &mut self,
        net: &mut Reactor<S>,
        mut make: impl FnMut(usize) -> Box<dyn ImConn<S>>,
    ) {
        for idx in 0..self.servers.len() {
            let s = &mut self.servers[idx];
            if s.conn.is_some() {
                continue;
            }
            s.idle_cnt += 1;
            if s.idle_cnt >= s.reconnect_cnt {
                self.connect(net, idx, &mut make);
            }
        }
    }

    fn connect<S: 'static>(
        &mut self,
        net: &mut Reactor<S>,
        idx: usize,
        make: &mut impl FnMut(usize) -> Box<dyn ImConn<S>>,
    ) {
        let s = &mut self.servers[idx];
        s.connects += 1;
        let started = match s.resolved {
            Some(addr) => net.connect_addr(addr, make(idx)),
            None => net.connect(&s.addr.ip, s.addr.port, make(idx)),
        };
        match started {
            Ok(id) => {
                if s.resolved.is_none() {
                    s.resolved = net.peer_addr(id);
                    log::info!("{}:{} resolved to {:?}", s.addr.ip, s.addr.port, s.resolved);
                }
                s.conn = Some(id);
            }
            Err(e) => {
                log::warn!("cannot connect to {}:{}: {e}", s.addr.ip, s.addr.port);
                s.conn = None;
                Self::back_off(s);
            }
        }
    }

    /// `serv_reset`: the link to peer `idx` closed; wait longer before the
    /// next try. Call it from the link's `on_close`.
    pub fn reset(&mut self, idx: usize) {
        if let Some(s) = self.servers.get_mut(idx) {
            s.conn = None;
            Self::back_off(s);
        }
    }

    fn back_off(s: &mut ServInfo) {
        s.idle_cnt = 0;
        s.reconnect_cnt *= 2;
        if s.reconnect_cnt > MAX_RECONNECT_CNT {
            s.reconnect_cnt = MIN_RECONNECT_CNT;
        }
    }

    /// The peer whose link is `id`, if any.
    pub fn index_of(&self, id: ConnId) -> Option<usize> {
        self.servers.iter().position(|s| s.conn == Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_then_wraps() {
        let mut list = ServList::new(vec![ServerAddr {
            ip: "127.0.0.1".into(),
            port: 1,
        }]);
        let mut seen = Vec::new();
        for _ in 0..7 {
            list.reset(0);
            seen.push(list.servers[0].reconnect_cnt);
        }
        assert_eq!(seen, vec![4, 8, 16, 32, 64, 4, 8]);
    }

    fn addr(ip: &str, port: u16) -> ServerAddr {
        ServerAddr {
            ip: ip.into(),
            port,
        }
    }

    #[test]
    fn names_are_resolved_when_the_list_is_made() {
        let list = ServList::new(vec![
            addr("127.0.0.1", 10600),
            addr("localhost", 10601),
            addr("no-such-peer.invalid", 10602),
        ]);
        let got: Vec<Option<SocketAddr>> = list.servers.iter().map(|s| s.resolved).collect();
        assert_eq!(
            got,
            vec![
                Some("127.0.0.1:10600".parse().unwrap()),
                Some("127.0.0.1:10601".parse().unwrap()),
                None
            ]
        );
    }

    struct Link;
    impl ImConn<()> for Link {
        fn on_pdu(&mut self, _cx: &mut crate::Ctx<'_, ()>, _pdu: base::ImPdu) {}
    }

    #[test]
    fn links_connect_to_the_resolved_address_and_an_unresolved_name_backs_off() {
        let mut net = Reactor::<()>::new().unwrap();
        let port = net
            .listen("127.0.0.1", 0, |_, _| Box::new(Link) as Box<dyn ImConn<()>>)
            .unwrap()[0]
            .port();
        let mut list = ServList::new(vec![
            addr("localhost", port),
            addr("no-such-peer.invalid", port),
        ]);
        list.serv_init(&mut net, |_| Box::new(Link));
        let link = list.servers[0].conn.expect("connecting");
        assert_eq!(net.peer_addr(link), list.servers[0].resolved);
        assert_eq!(list.servers[1].conn, None);
        assert_eq!(list.servers[1].reconnect_cnt, MIN_RECONNECT_CNT);
        assert_eq!(
            list.servers[1].resolved, None,
            "still tried at each connect"
        );
    }
}
