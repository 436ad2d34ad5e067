//! Links to route_server: the C++ `RouteServConn.cpp` (`CRouteServConn`,
//! `init_route_serv_conn`, `get_route_serv_conn`,
//! `update_master_route_serv_conn`).
//!
//! The link that connected first is the master and is told so with
//! `CID_OTHER_ROLE_SET`; member-change notifies go to it, and route_server
//! relays them to every msg_server, which tells the online members.
//! Heartbeat every 5 s, closed after 30 s of silence, reconnected with
//! netlib's back-off. route_server treats the link as a msg_server's and
//! relays other servers' traffic to it too; as in the C++ (an empty
//! `HandlePdu`), all of it is ignored.

use crate::state::HttpMsgState;
use base::ImPdu;
use netlib::{ConnId, Ctx, Heartbeat, ImConn, PeerLink, PeerList, Reactor};
use tt_proto::IM::Server::IMRoleSet;

/// The route_server links and which one is the master (`g_master_rs_conn`).
#[derive(Debug, Default)]
pub struct RouteServers {
    /// The links.
    pub peers: PeerList,
    /// `get_route_serv_conn`: where notifies go.
    pub master: Option<ConnId>,
}

impl RouteServers {
    /// Can a member change be announced now: the master link is open, or
    /// no route_server is configured at all (then nobody is told, as the
    /// C++ without one).
    pub fn can_notify(&self) -> bool {
        self.master.is_some() || self.peers.peer_count() == 0
    }
}

/// `get_route_serv_conn()->SendPdu`: `msg` to the master route_server; with
/// no master it is dropped with a warning.
pub fn send_to_master<M: tt_proto::Command>(
    net: &mut Reactor<HttpMsgState>,
    state: &HttpMsgState,
    msg: &M,
) {
    match state.route.master {
        Some(master) => {
            let _ = net.send_msg(master, 0, msg);
        }
        None => log::warn!("no route_server link: command {:#06x} not sent", M::CID),
    }
}

/// `update_master_route_serv_conn`: the oldest open link becomes master
/// and is told so.
fn update_master(net: &mut Reactor<HttpMsgState>, state: &mut HttpMsgState) {
    state.route.master = state.route.peers.oldest_open();
    match state.route.master {
        Some(master) => {
            log::info!("route_server link {master} is the master");
            let _ = net.send_msg(master, 0, &IMRoleSet { master: 1 });
        }
        None => log::warn!("no route_server link open"),
    }
}

/// `CRouteServConn`: the handler of route_server link `idx`.
#[derive(Debug)]
pub struct RouteServConn {
    link: PeerLink,
}

impl RouteServConn {
    /// The handler for link `idx`.
    pub fn new(idx: usize) -> RouteServConn {
        RouteServConn {
            link: PeerLink::new("route_server", idx),
        }
    }
}

impl ImConn<HttpMsgState> for RouteServConn {
    /// `OnConfirm`: the master when there is none.
    fn on_confirm(&mut self, cx: &mut Ctx<'_, HttpMsgState>) {
        let addr = cx.peer_addr();
        self.link.confirm(&mut cx.state.route.peers, cx.id, addr);
        if cx.state.route.master.is_none() {
            update_master(cx.net, cx.state);
        }
    }

    /// `OnClose`: another link becomes master if this one was.
    fn on_close(&mut self, cx: &mut Ctx<'_, HttpMsgState>) {
        let addr = cx.peer_addr();
        self.link.closed(&mut cx.state.route.peers, cx.id, addr);
        if cx.state.route.master == Some(cx.id) {
            update_master(cx.net, cx.state);
        }
    }

    /// `OnTimer`: heartbeat after 5 s of quiet, close after 30 s of silence.
    fn on_timer(&mut self, cx: &mut Ctx<'_, HttpMsgState>, now: u64) {
        cx.keep_alive(Heartbeat::SERVER, now);
    }

    /// `HandlePdu`: nothing route_server sends is for us.
    fn on_pdu(&mut self, cx: &mut Ctx<'_, HttpMsgState>, pdu: ImPdu) {
        log::trace!(
            "route_server link {}: command {:#06x} ignored",
            cx.id,
            pdu.command_id()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base::config::ServerAddr;
    use netlib::ServList;

    #[test]
    fn notifies_need_the_master_unless_no_route_server_is_configured() {
        let none = RouteServers::default();
        assert!(none.can_notify());
        let mut one = RouteServers {
            peers: PeerList::new(ServList::new(vec![ServerAddr {
                ip: "127.0.0.1".into(),
                port: 1,
            }])),
            master: None,
        };
        assert!(!one.can_notify());
        one.master = Some(ConnId::from_u64((1 << 32) | 1));
        assert!(one.can_notify());
    }
}
