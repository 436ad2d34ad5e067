//! The links to the peer servers, one set per kind, and sending on them:
//! the server lists and send helpers of the C++ `DBServConn.cpp`
//! (`g_db_server_list`, `get_db_serv_conn_for_login`, `get_db_serv_conn`),
//! `LoginServConn.cpp` (`send_to_all_login_server`), `RouteServConn.cpp`
//! (`get_route_serv_conn`, `update_master_route_serv_conn`,
//! `send_to_all_route_server`), `PushServConn.cpp` (`get_push_serv_conn`)
//! and `FileServConn.cpp` (`get_random_file_serv_conn`).
//!
//! Every module that sends to a peer calls a method here
//! (`state.route.to_master(net, &pdu)`, `state.db.forward(...)`), so no
//! handler reaches into another link's module to send. The handlers of the
//! links themselves (`ImConn`: confirm, close, replies) are the
//! `*_serv_conn` modules. Nothing here knows the server state: the methods
//! take the reactor of any state.
//!
//! db_proxy: `ConcurrentDBConnCnt` links go to each configured db_proxy.
//! The first half of the db_proxies (rounded down) serve logins and other
//! reads a client waits for (`get_db_serv_conn_for_login`), the rest
//! everything else (`get_db_serv_conn`); each falls back on the other half,
//! and picks a random open link in its range, as the C++ does.

use crate::attach_data::{AttachData, Attached};
use base::pdu::PduError;
use base::ImPdu;
use netlib::{ConnId, PeerList, Reactor};
use rand::Rng;
use std::collections::HashMap;
use tt_proto::IM::BaseDefine::{ClientType, IpAddr, KickReasonType, UserStatType};
use tt_proto::IM::Server::{
    IMPushToUserReq, IMRoleSet, IMServerKickUser, IMUserCntUpdate, IMUserStatusUpdate,
};
use tt_proto::{Command, ProtoMessage};

/// `DEFAULT_CONCURRENT_DB_CONN_CNT`: links per db_proxy when
/// `ConcurrentDBConnCnt` is absent.
pub const DEFAULT_CONCURRENT_DB_CONN_CNT: usize = 10;
/// `USER_CNT_INC`.
pub const USER_CNT_INC: u32 = 1;
/// `USER_CNT_DEC`.
pub const USER_CNT_DEC: u32 = 2;

/// Sends `pdu` on each of `links`. A link whose send fails is being closed
/// by the reactor; its `on_close` cleans up.
fn send_each<S: 'static>(net: &mut Reactor<S>, links: &[ConnId], pdu: &ImPdu) {
    for &link in links {
        let _ = net.send_pdu(link, pdu);
    }
}

/// `msg` under its command, seq 0, to each of `links` (encoded once).
/// Encoding fails only for a body over the PDU size limit; that is logged
/// and nothing sent.
fn send_msg_each<S: 'static, M: Command>(net: &mut Reactor<S>, links: &[ConnId], msg: &M) {
    match ImPdu::for_msg(0, msg) {
        Ok(pdu) => send_each(net, links, &pdu),
        Err(e) => log::error!("command {:#06x} not sent to peers: {e}", M::CID),
    }
}

/// Which half of the db_proxy links a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbPick {
    /// `get_db_serv_conn_for_login`: the login half first.
    Login,
    /// `get_db_serv_conn`: the other half first.
    Other,
}

/// The db_proxy links (`g_db_server_list`, `g_db_server_login_count`).
#[derive(Debug, Default)]
pub struct DbServers {
    /// One entry per link: `ConcurrentDBConnCnt` per configured db_proxy.
    pub peers: PeerList,
    /// Links `[0, login_count)` serve logins.
    pub login_count: usize,
}

impl DbServers {
    /// `init_db_serv_conn`'s split for `peers` holding
    /// `concurrent` links to each db_proxy.
    pub fn new(peers: PeerList, concurrent: usize) -> DbServers {
        let instances = peers.peer_count() / concurrent.max(1);
        let login_count = (instances / 2) * concurrent;
        log::info!(
            "db_proxy links for login: [0, {login_count}), for the rest: [{login_count}, {})",
            peers.peer_count()
        );
        DbServers { peers, login_count }
    }

    /// A random open link of the `pick` half, else of the other half.
    pub fn pick(&self, pick: DbPick) -> Option<ConnId> {
        let (login, other) = (
            0..self.login_count,
            self.login_count..self.peers.peer_count(),
        );
        let (first, second) = match pick {
            DbPick::Login => (login, other),
            DbPick::Other => (other, login),
        };
        random_of(&self.peers.open_in(first)).or_else(|| random_of(&self.peers.open_in(second)))
    }

    /// Sends `pdu` on a link of the `pick` half; false when no link is open
    /// (the caller logs or counts the drop, as the C++ does).
    pub fn send_pdu<S: 'static>(&self, net: &mut Reactor<S>, pick: DbPick, pdu: &ImPdu) -> bool {
        let link = self.pick(pick);
        link.map(|link| net.send_pdu(link, pdu)).is_some()
    }

    /// Sends `msg` (a request we originate) with `seq` on a link of the
    /// `pick` half; false when no link is open.
    pub fn send_msg<S: 'static, M: Command>(
        &self,
        net: &mut Reactor<S>,
        pick: DbPick,
        seq: u16,
        msg: &M,
    ) -> bool {
        let link = self.pick(pick);
        link.map(|link| net.send_msg(link, seq, msg)).is_some()
    }

    /// A client's request `pdu` with its body replaced by `msg` (the
    /// request as msg_server stamped it) to a link of the `pick` half;
    /// false when no link is open (then nothing is encoded).
    pub fn send_as<S: 'static, M: ProtoMessage>(
        &self,
        net: &mut Reactor<S>,
        pick: DbPick,
        mut pdu: ImPdu,
        msg: &M,
    ) -> Result<bool, PduError> {
        let Some(link) = self.pick(pick) else {
            return Ok(false);
        };
        pdu.set_msg(msg)?;
        let _ = net.send_pdu(link, &pdu);
        Ok(true)
    }

    /// Stamps a client's request with its user id (and, when `attach`,
    /// attach data naming connection `client`) and sends it to a link of
    /// the `pick` half. With no link open it is dropped, as in the C++.
    pub fn forward<S: 'static, M: Attached>(
        &self,
        net: &mut Reactor<S>,
        client: ConnId,
        user_id: u32,
        pdu: ImPdu,
        pick: DbPick,
        attach: bool,
    ) -> Result<(), PduError> {
        let mut msg: M = pdu.msg()?;
        msg.set_user_id(user_id);
        if attach {
            msg.set_attach(Some(AttachData::handle(client).encode()));
        }
        let command = pdu.command_id();
        if !self.send_as(net, pick, pdu, &msg)? {
            log::warn!("no db_proxy: command {command:#06x} of user {user_id} dropped");
        }
        Ok(())
    }

    /// [`forward`](Self::forward) with attach data to a link of the other
    /// half when one is open; else the client's request is answered at
    /// once, with its seq, by the reply `answer` makes of it (the C++ "no
    /// db_proxy" replies).
    pub fn forward_or_answer<S: 'static, Req: Attached, Rsp: Command>(
        &self,
        net: &mut Reactor<S>,
        client: ConnId,
        user_id: u32,
        pdu: ImPdu,
        answer: impl FnOnce(Req) -> Rsp,
    ) -> Result<(), PduError> {
        if self.pick(DbPick::Other).is_some() {
            return self.forward::<S, Req>(net, client, user_id, pdu, DbPick::Other, true);
        }
        let rsp = answer(pdu.msg()?);
        log::warn!(
            "no db_proxy: command {:#06x} of user {user_id} answered with {:#06x}",
            pdu.command_id(),
            Rsp::CID
        );
        let _ = net.send_msg(client, pdu.seq_num(), &rsp);
        Ok(())
    }
}

fn random_of(links: &[ConnId]) -> Option<ConnId> {
    match links.len() {
        0 => None,
        n => Some(links[rand::thread_rng().gen_range(0..n)]),
    }
}

/// The login_server links.
#[derive(Debug, Default)]
pub struct LoginServers {
    /// The links.
    pub peers: PeerList,
}

impl LoginServers {
    /// `send_to_all_login_server(CID_OTHER_USER_CNT_UPDATE)`: one user more
    /// (`online`) or less on this msg_server.
    pub fn user_cnt_update<S: 'static>(&self, net: &mut Reactor<S>, user_id: u32, online: bool) {
        let msg = IMUserCntUpdate {
            user_action: if online { USER_CNT_INC } else { USER_CNT_DEC },
            user_id,
        };
        send_msg_each(net, &self.peers.open_links(), &msg);
    }
}

/// The route_server links and which one is the master (`g_master_rs_conn`).
#[derive(Debug, Default)]
pub struct RouteServers {
    /// The links.
    pub peers: PeerList,
    /// `get_route_serv_conn`: where everything but status updates goes.
    pub master: Option<ConnId>,
}

impl RouteServers {
    /// `get_route_serv_conn()->SendPdu`: sends `pdu` to the master
    /// route_server, if any link is open.
    pub fn to_master<S: 'static>(&self, net: &mut Reactor<S>, pdu: &ImPdu) {
        if let Some(master) = self.master {
            let _ = net.send_pdu(master, pdu);
        }
    }

    /// `msg` (a request or notify we originate) with `seq` to the master
    /// route_server, if any link is open.
    pub fn msg_to_master<S: 'static, M: Command>(&self, net: &mut Reactor<S>, seq: u16, msg: &M) {
        if let Some(master) = self.master {
            let _ = net.send_msg(master, seq, msg);
        }
    }

    /// `CID_OTHER_SERVER_KICK_USER` to the master route_server: the other
    /// msg_servers kick `user_id`'s connections of `client_type`'s class.
    pub fn kick_user<S: 'static>(
        &self,
        net: &mut Reactor<S>,
        user_id: u32,
        client_type: ClientType,
        reason: KickReasonType,
    ) {
        let kick = IMServerKickUser {
            user_id,
            client_type,
            reason: reason as u32,
        };
        self.msg_to_master(net, 0, &kick);
    }

    /// `send_to_all_route_server(CID_OTHER_USER_STATUS_UPDATE)`: a client
    /// of `user_id` logged in or out.
    pub fn user_status_update<S: 'static>(
        &self,
        net: &mut Reactor<S>,
        user_id: u32,
        client_type: u32,
        status: UserStatType,
    ) {
        let msg = IMUserStatusUpdate {
            user_status: status as u32,
            user_id,
            client_type: ClientType::from(client_type as i32),
        };
        send_msg_each(net, &self.peers.open_links(), &msg);
    }

    /// `update_master_route_serv_conn`: the oldest open link becomes master
    /// and is told so.
    pub fn update_master<S: 'static>(&mut self, net: &mut Reactor<S>) {
        self.master = self.peers.oldest_open();
        if let Some(master) = self.master {
            log::info!("route_server link {master} is the master");
            let _ = net.send_msg(master, 0, &IMRoleSet { master: 1 });
        } else {
            log::warn!("no route_server link open");
        }
    }
}

/// The push_server links and the one in use (`g_master_push_conn`).
#[derive(Debug, Default)]
pub struct PushServers {
    /// The links.
    pub peers: PeerList,
    /// The link pushes go to: the last one that connected.
    pub master: Option<ConnId>,
}

impl PushServers {
    /// `get_push_serv_conn()->SendPdu(CID_OTHER_PUSH_TO_USER_REQ)`.
    pub fn push<S: 'static>(&self, net: &mut Reactor<S>, push: &IMPushToUserReq) {
        let Some(link) = self.master else {
            log::debug!("no push_server: push dropped");
            return;
        };
        let _ = net.send_msg(link, 0, push);
    }
}

/// The file_server links and the client addresses each reported.
#[derive(Debug, Default)]
pub struct FileServers {
    /// The links.
    pub peers: PeerList,
    /// `m_ip_list` of each link.
    pub ip_lists: HashMap<ConnId, Vec<IpAddr>>,
}

impl FileServers {
    /// `get_random_file_serv_conn`: a random peer's link if open, else the
    /// next open one after it.
    pub fn pick(&self) -> Option<ConnId> {
        let n = self.peers.peer_count();
        if n == 0 {
            return None;
        }
        let start = rand::thread_rng().gen_range(0..n);
        (0..n)
            .map(|i| (start + i) % n)
            .filter_map(|idx| self.peers.list.servers[idx].conn)
            .find(|&c| self.peers.is_open(c))
    }

    /// `GetFileServerIPList` of `link`.
    pub fn ip_list(&self, link: ConnId) -> Vec<IpAddr> {
        self.ip_lists.get(&link).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base::config::ServerAddr;
    use netlib::ServList;

    fn servers(n: usize, concurrent: usize) -> DbServers {
        let addrs = (0..n)
            .map(|i| ServerAddr {
                ip: "127.0.0.1".into(),
                port: 1 + (i / concurrent) as u16,
            })
            .collect();
        DbServers::new(PeerList::new(ServList::new(addrs)), concurrent)
    }

    fn c(n: u64) -> ConnId {
        ConnId::from_u64((1 << 32) | n)
    }

    #[test]
    fn login_half_and_fallback() {
        // Two db_proxies, two links each: links 0-1 for login, 2-3 for the rest.
        let mut db = servers(4, 2);
        assert_eq!(db.login_count, 2);
        assert_eq!(db.pick(DbPick::Login), None);
        db.peers.confirm(3, c(3), 0);
        assert_eq!(
            db.pick(DbPick::Login),
            Some(c(3)),
            "falls back on the other half"
        );
        assert_eq!(db.pick(DbPick::Other), Some(c(3)));
        db.peers.confirm(0, c(0), 0);
        for _ in 0..20 {
            assert_eq!(db.pick(DbPick::Login), Some(c(0)));
            assert_eq!(db.pick(DbPick::Other), Some(c(3)));
        }
        db.peers.confirm(1, c(1), 0);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(db.pick(DbPick::Login));
        }
        assert_eq!(seen.len(), 2, "random among the open links of the half");
    }

    #[test]
    fn one_db_proxy_has_no_login_half() {
        let db = servers(3, 3);
        assert_eq!(db.login_count, 0);
    }
}
