//! The links of one kind to peer servers (db_proxy, login, route, push,
//! file): the `serv_info_t` list of each C++ `*ServConn.cpp` plus what each
//! `C*ServConn` keeps about itself (`m_bOpen`, `m_connect_time`).
//!
//! [`ServList`] connects and reconnects with back-off; this adds
//! which links are confirmed open, so "is a peer available" and "pick a
//! link" only ever consider links that completed their connect.

use crate::{ConnId, ImConn, Reactor, ServList};
use base::tick::monotonic_ms;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// What each `C*ServConn` handler keeps about its own link: the peer's
/// index in its [`PeerList`], and whether the connect completed
/// (`m_bOpen`), which makes its end a loss worth a warning.
#[derive(Debug)]
pub struct PeerLink {
    /// What the peer is, for the log (`db_proxy`, `route_server`...).
    kind: &'static str,
    /// The peer's index in its list.
    pub idx: usize,
    confirmed: bool,
}

impl PeerLink {
    /// The link to peer `idx` of `kind`, not connected yet.
    pub fn new(kind: &'static str, idx: usize) -> PeerLink {
        PeerLink {
            kind,
            idx,
            confirmed: false,
        }
    }

    /// `OnConfirm`: the link `conn` (to `addr`) is open in `peers`.
    pub fn confirm(&mut self, peers: &mut PeerList, conn: ConnId, addr: Option<SocketAddr>) {
        self.confirmed = true;
        log::info!("connected to {} {addr:?} (link {})", self.kind, self.idx);
        peers.confirm(self.idx, conn, monotonic_ms());
    }

    /// `OnClose`: the link `conn` (to `addr`) is closed in `peers`; it is
    /// reconnected after the back-off.
    pub fn closed(&self, peers: &mut PeerList, conn: ConnId, addr: Option<SocketAddr>) {
        if self.confirmed {
            log::warn!("lost {} {addr:?} (link {})", self.kind, self.idx);
        } else {
            log::debug!("no link to {} {addr:?} yet", self.kind);
        }
        peers.closed(self.idx, conn);
    }
}

/// One peer kind's links.
#[derive(Debug, Default)]
pub struct PeerList {
    /// The peers and the back-off (`g_*_server_list`).
    pub list: ServList,
    /// Confirmed links by peer index, with when they connected (monotonic
    /// ms): `m_bOpen` and `m_connect_time`.
    open: BTreeMap<usize, (ConnId, u64)>,
}

impl PeerList {
    /// The list for these peers; nothing is connected yet.
    pub fn new(list: ServList) -> PeerList {
        PeerList {
            list,
            open: BTreeMap::new(),
        }
    }

    /// `serv_init`: connects to every peer.
    pub fn init<S: 'static>(
        &mut self,
        net: &mut Reactor<S>,
        make: impl FnMut(usize) -> Box<dyn ImConn<S>>,
    ) {
        self.list.serv_init(net, make);
    }

    /// `serv_check_reconnect`: call every
    /// [`RECONNECT_CHECK_MS`](crate::serv_info::RECONNECT_CHECK_MS).
    pub fn check_reconnect<S: 'static>(
        &mut self,
        net: &mut Reactor<S>,
        make: impl FnMut(usize) -> Box<dyn ImConn<S>>,
    ) {
        self.list.check_reconnect(net, make);
    }

    /// `OnConfirm`: the link `conn` to peer `idx` is open; the back-off
    /// starts over ([`ServList::confirmed`]: its next loss is retried
    /// fast).
    pub fn confirm(&mut self, idx: usize, conn: ConnId, now: u64) {
        self.list.confirmed(idx);
        self.open.insert(idx, (conn, now));
    }

    /// `_HandleStopReceivePacket`: the link stays up but takes no more
    /// requests (db_proxy is shutting down).
    pub fn stop_using(&mut self, conn: ConnId) {
        self.open.retain(|_, (c, _)| *c != conn);
    }

    /// `Close`: the link `conn` to peer `idx` ended (`serv_reset`). A stale
    /// link (already replaced) changes nothing.
    pub fn closed(&mut self, idx: usize, conn: ConnId) {
        self.open.retain(|_, (c, _)| *c != conn);
        if self.list.servers.get(idx).and_then(|s| s.conn) == Some(conn) {
            self.list.reset(idx);
        }
    }

    /// `IsOpen` of link `conn`.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.open.values().any(|(c, _)| *c == conn)
    }

    /// `is_*_server_available`: some link is open.
    pub fn any_open(&self) -> bool {
        !self.open.is_empty()
    }

    /// The open links, in peer order (`send_to_all_*_server`).
    pub fn open_links(&self) -> Vec<ConnId> {
        self.open.values().map(|(c, _)| *c).collect()
    }

    /// The open links among peer indexes `range`.
    pub fn open_in(&self, range: std::ops::Range<usize>) -> Vec<ConnId> {
        self.open.range(range).map(|(_, (c, _))| *c).collect()
    }

    /// The open link that connected first (`update_master_route_serv_conn`).
    pub fn oldest_open(&self) -> Option<ConnId> {
        self.open
            .values()
            .min_by_key(|(_, at)| *at)
            .map(|(c, _)| *c)
    }

    /// Number of configured peers (`g_*_server_count`).
    pub fn peer_count(&self) -> usize {
        self.list.servers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base::config::ServerAddr;

    fn list(n: u16) -> PeerList {
        PeerList::new(ServList::new(
            (0..n)
                .map(|i| ServerAddr {
                    ip: "127.0.0.1".into(),
                    port: 1 + i,
                })
                .collect(),
        ))
    }

    fn c(n: u64) -> ConnId {
        ConnId::from_u64((1 << 32) | n)
    }

    #[test]
    fn tracks_open_links() {
        let mut p = list(3);
        assert!(!p.any_open());
        p.list.servers[0].conn = Some(c(10));
        p.list.servers[2].conn = Some(c(12));
        p.confirm(2, c(12), 50);
        p.confirm(0, c(10), 100);
        assert_eq!(p.open_links(), vec![c(10), c(12)]);
        assert_eq!(p.oldest_open(), Some(c(12)));
        assert_eq!(p.open_in(0..2), vec![c(10)]);
        p.stop_using(c(12));
        assert!(!p.is_open(c(12)));
        assert!(p.list.servers[2].conn.is_some(), "stop keeps the link");
        p.closed(0, c(10));
        assert!(p.list.servers[0].conn.is_none());
        assert!(!p.any_open());
        p.list.servers[0].conn = Some(c(20));
        p.closed(0, c(10));
        assert_eq!(p.list.servers[0].conn, Some(c(20)), "stale close ignored");
    }
}
