//! The links to the peer servers, one set per kind, and sending on them:
//! the server lists and send helpers of the C++ `DBServConn.cpp`
//! (`g_db_server_list`, `get_db_serv_conn_for_login`, `get_db_serv_conn`),
//! `RouteServConn.cpp` (`get_route_serv_conn`,
//! `update_master_route_serv_conn`, `send_to_all_route_server`),
//! `PushServConn.cpp` (`get_push_serv_conn`) and `FileServConn.cpp`
//! (`get_random_file_serv_conn`); the login_server links are
//! [`crate::login_servers`].
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
//!
//! Differences from the C++ (see [`crate::peer_hold`]): with no usable
//! db_proxy link, or no route_server master, what would go to it waits
//! (bounded) and goes out in order when one is back, instead of being
//! dropped; past the bound the C++ "no db_proxy" answer goes out. The
//! read-only requests in flight on a db_proxy link that dies go to
//! another; the message stores in flight are counted (for a graceful
//! stop), never sent twice.

use crate::attach_data::{AttachData, Attached};
use crate::peer_hold::{
    is_read_only, DbRequest, Fallback, HoldQueue, InFlight, HOLD_MAX, HOLD_MAX_AGE_MS,
};
use base::pdu::PduError;
use base::ImPdu;
use netlib::{ConnId, PeerList, Reactor};
use rand::Rng;
use std::collections::HashMap;
use tt_proto::IM::BaseDefine::{ClientType, IpAddr, KickReasonType, UserStatType};
use tt_proto::IM::Server::{IMPushToUserReq, IMRoleSet, IMServerKickUser, IMUserStatusUpdate};
use tt_proto::{Command, ProtoMessage};

/// `DEFAULT_CONCURRENT_DB_CONN_CNT`: links per db_proxy when
/// `ConcurrentDBConnCnt` is absent.
pub const DEFAULT_CONCURRENT_DB_CONN_CNT: usize = 10;

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

/// The db_proxy links (`g_db_server_list`, `g_db_server_login_count`),
/// what waits for one, and the read-only requests in flight on each.
#[derive(Debug, Default)]
pub struct DbServers {
    /// One entry per link: `ConcurrentDBConnCnt` per configured db_proxy.
    pub peers: PeerList,
    /// Links `[0, login_count)` serve logins.
    pub login_count: usize,
    /// Requests waiting for a usable link, in order (not in the C++).
    held: HoldQueue<DbRequest>,
    /// Read-only requests sent and not answered yet, by link.
    in_flight: InFlight,
    /// Message stores sent and not answered yet, by link (what a
    /// graceful stop waits for).
    stores: HashMap<ConnId, u32>,
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
        DbServers {
            peers,
            login_count,
            held: HoldQueue::default(),
            in_flight: InFlight::default(),
            stores: HashMap::new(),
        }
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

    /// A request can go now or be held: what a login checks instead of
    /// the C++ "is a db_proxy link open".
    pub fn can_take(&self) -> bool {
        self.pick(DbPick::Other).is_some() || self.held.len() < HOLD_MAX
    }

    /// How many requests wait for a link, and how many read-only ones
    /// are in flight (for the statistics line).
    pub fn held_count(&self) -> (usize, usize) {
        (self.held.len(), self.in_flight.len())
    }

    /// Sends `req` on a link of its half, after whatever is held; with no
    /// usable link it is held. False when it was neither sent nor held
    /// (the hold is full): its fallback has gone out.
    pub fn submit<S: 'static>(&mut self, net: &mut Reactor<S>, req: DbRequest) -> bool {
        if !self.held.is_empty() {
            self.flush(net);
        }
        if self.held.is_empty() {
            if let Some(link) = self.pick(req.pick) {
                self.send_on(net, link, req);
                return true;
            }
        }
        match self.held.push(net.now_ms(), req) {
            Ok(()) => true,
            Err(req) => {
                log::warn!(
                    "no db_proxy and {HOLD_MAX} requests held: command {:#06x} not held",
                    req.pdu.command_id()
                );
                give_up(net, req);
                false
            }
        }
    }

    fn send_on<S: 'static>(&mut self, net: &mut Reactor<S>, link: ConnId, req: DbRequest) {
        let command = req.pdu.command_id();
        if command == tt_proto::cid::MSG_DATA {
            *self.stores.entry(link).or_default() += 1;
        }
        if !is_read_only(command) {
            let _ = net.send_pdu(link, &req.pdu);
            return;
        }
        // Under a tag of ours, so its reply clears it and no other.
        let mut wire = req.pdu.clone();
        if let Some(tag) = self.in_flight.sent(link, net.now_ms(), req) {
            wire.set_seq_num(tag);
        }
        let _ = net.send_pdu(link, &wire);
    }

    /// A link is usable again (confirmed): what was held goes out, in
    /// order.
    pub fn flush<S: 'static>(&mut self, net: &mut Reactor<S>) {
        if self.held.is_empty() || self.pick(DbPick::Other).is_none() {
            return;
        }
        let held = self.held.take_all();
        log::info!(
            "db_proxy usable again: sending {} held requests",
            held.len()
        );
        for req in held {
            match self.pick(req.pick) {
                Some(link) => self.send_on(net, link, req),
                None => {
                    give_up(net, req);
                }
            }
        }
    }

    /// Held requests past the age bound get their fallback (the C++ "no
    /// db_proxy" answer); requests in flight too long are forgotten.
    /// Returns how many client messages were dropped (`up_miss_cnt`).
    pub fn expire<S: 'static>(&mut self, net: &mut Reactor<S>) -> u32 {
        let now = net.now_ms();
        self.in_flight.expire(now);
        let expired = self.held.expired(now);
        if !expired.is_empty() {
            log::warn!(
                "no db_proxy for {HOLD_MAX_AGE_MS} ms: {} held requests answered as without one",
                expired.len()
            );
        }
        expired
            .into_iter()
            .map(|req| u32::from(give_up(net, req)))
            .sum()
    }

    /// A reply `pdu` came on `link`: what it answers is forgotten, and a
    /// reply to a read-only request gets the seq of the client's request
    /// back (it went under a tag of ours).
    pub fn answered(&mut self, link: ConnId, pdu: &mut ImPdu) {
        let command = pdu.command_id();
        if command == tt_proto::cid::MSG_DATA {
            if let Some(n) = self.stores.get_mut(&link) {
                *n = n.saturating_sub(1);
            }
            return;
        }
        if let Some(seq) = self.in_flight.answered(link, command, pdu.seq_num()) {
            pdu.set_seq_num(seq);
        }
    }

    /// Message stores sent and not answered yet.
    pub fn stores_in_flight(&self) -> u32 {
        self.stores.values().sum()
    }

    /// `link` closed: the read-only requests in flight on it go to another
    /// link (or are held). A message store in flight is not sent again: it
    /// may have been stored.
    pub fn link_lost<S: 'static>(&mut self, net: &mut Reactor<S>, link: ConnId) {
        self.stores.remove(&link);
        let lost = self.in_flight.lost(link);
        if !lost.is_empty() {
            log::info!(
                "db_proxy link {link} lost with {} read-only requests in flight: sending them again",
                lost.len()
            );
        }
        for req in lost {
            self.submit(net, req);
        }
    }

    /// Sends `pdu` on a link of the `pick` half, or holds it; false when
    /// it was dropped (the caller logs or counts the drop, as the C++
    /// does with no link).
    pub fn send_pdu<S: 'static>(
        &mut self,
        net: &mut Reactor<S>,
        pick: DbPick,
        pdu: &ImPdu,
    ) -> bool {
        let message = pdu.command_id() == tt_proto::cid::MSG_DATA;
        self.submit(
            net,
            DbRequest {
                pick,
                pdu: pdu.clone(),
                fallback: Fallback::Drop { message },
                resend: false,
            },
        )
    }

    /// Sends `msg` (a request we originate) with `seq` on a link of the
    /// `pick` half, or holds it; false when dropped.
    pub fn send_msg<S: 'static, M: Command>(
        &mut self,
        net: &mut Reactor<S>,
        pick: DbPick,
        seq: u16,
        msg: &M,
    ) -> bool {
        match ImPdu::for_msg(seq, msg) {
            Ok(pdu) => self.send_pdu(net, pick, &pdu),
            Err(e) => {
                log::error!("command {:#06x} not sent to db_proxy: {e}", M::CID);
                false
            }
        }
    }

    /// A client's request `pdu` with its body replaced by `msg` (the
    /// request as msg_server stamped it) to a link of the `pick` half, or
    /// held; false when dropped.
    pub fn send_as<S: 'static, M: ProtoMessage>(
        &mut self,
        net: &mut Reactor<S>,
        pick: DbPick,
        mut pdu: ImPdu,
        msg: &M,
    ) -> Result<bool, PduError> {
        pdu.set_msg(msg)?;
        Ok(self.send_pdu(net, pick, &pdu))
    }

    /// `msg` with `seq`, or `fallback` (for a client: its answer) if it
    /// cannot be sent in time; sent again on another link if its link
    /// dies, when read-only.
    pub fn send_or_answer<S: 'static, M: Command>(
        &mut self,
        net: &mut Reactor<S>,
        pick: DbPick,
        seq: u16,
        msg: &M,
        fallback: Fallback,
    ) -> Result<(), PduError> {
        let pdu = ImPdu::for_msg(seq, msg)?;
        let resend = is_read_only(M::CID);
        self.submit(
            net,
            DbRequest {
                pick,
                pdu,
                fallback,
                resend,
            },
        );
        Ok(())
    }

    /// Stamps a client's request with its user id (and, when `attach`,
    /// attach data naming connection `client`) and sends it to a link of
    /// the `pick` half, or holds it; past the hold's bound it is dropped,
    /// as in the C++ with no link.
    pub fn forward<S: 'static, M: Attached>(
        &mut self,
        net: &mut Reactor<S>,
        client: ConnId,
        user_id: u32,
        mut pdu: ImPdu,
        pick: DbPick,
        attach: bool,
    ) -> Result<(), PduError> {
        let mut msg: M = pdu.msg()?;
        msg.set_user_id(user_id);
        if attach {
            msg.set_attach(Some(AttachData::handle(client).encode()));
        }
        pdu.set_msg(&msg)?;
        let resend = is_read_only(pdu.command_id());
        let command = pdu.command_id();
        let req = DbRequest {
            pick,
            pdu,
            fallback: Fallback::Drop { message: false },
            resend,
        };
        if !self.submit(net, req) {
            log::warn!("no db_proxy: command {command:#06x} of user {user_id} dropped");
        }
        Ok(())
    }

    /// [`forward`](Self::forward) with attach data to a link of the other
    /// half, held while none is usable; past the hold's bound the client's
    /// request is answered, with its seq, by the reply `answer` makes of
    /// it (the C++ "no db_proxy" replies).
    pub fn forward_or_answer<S: 'static, Req: Attached, Rsp: Command>(
        &mut self,
        net: &mut Reactor<S>,
        client: ConnId,
        user_id: u32,
        mut pdu: ImPdu,
        answer: impl FnOnce(Req) -> Rsp,
    ) -> Result<(), PduError> {
        let rsp = ImPdu::for_msg(pdu.seq_num(), &answer(pdu.msg()?))?;
        let mut msg: Req = pdu.msg()?;
        msg.set_user_id(user_id);
        msg.set_attach(Some(AttachData::handle(client).encode()));
        pdu.set_msg(&msg)?;
        let resend = is_read_only(pdu.command_id());
        let req = DbRequest {
            pick: DbPick::Other,
            pdu,
            fallback: Fallback::Reply {
                client,
                pdu: rsp,
                close: false,
            },
            resend,
        };
        self.submit(net, req);
        Ok(())
    }
}

/// The fallback of a request that could not be sent: true for a client's
/// message dropped (`up_miss_cnt`).
fn give_up<S: 'static>(net: &mut Reactor<S>, req: DbRequest) -> bool {
    match req.fallback {
        Fallback::Drop { message } => {
            log::warn!("no db_proxy: command {:#06x} dropped", req.pdu.command_id());
            message
        }
        Fallback::Reply { client, pdu, close } => {
            log::warn!(
                "no db_proxy: command {:#06x} of client {client} answered with {:#06x}",
                req.pdu.command_id(),
                pdu.command_id()
            );
            let _ = net.send_pdu(client, &pdu);
            if close {
                net.close_after_flush(client);
            }
            false
        }
    }
}

fn random_of(links: &[ConnId]) -> Option<ConnId> {
    match links.len() {
        0 => None,
        n => Some(links[rand::thread_rng().gen_range(0..n)]),
    }
}

/// The route_server links, which one is the master (`g_master_rs_conn`),
/// and what waits for one.
#[derive(Debug, Default)]
pub struct RouteServers {
    /// The links.
    pub peers: PeerList,
    /// `get_route_serv_conn`: where everything but status updates goes.
    pub master: Option<ConnId>,
    /// PDUs for the master while there is none, in order (not in the
    /// C++, which drops them). They go as soon as a master is up: a
    /// route_server that restarted sends what it relays in its first
    /// seconds to the msg_servers that link after us too
    /// (route_server's `start_replay`).
    held: HoldQueue<ImPdu>,
}

impl RouteServers {
    /// The links to these route_servers; none is up yet.
    pub fn new(peers: PeerList) -> RouteServers {
        RouteServers {
            peers,
            ..RouteServers::default()
        }
    }

    // The name is the C++'s (`get_route_serv_conn`), kept by every caller.
    #[allow(clippy::wrong_self_convention)]
    /// `get_route_serv_conn()->SendPdu`: sends `pdu` to the master
    /// route_server; while there is none `pdu` is held, in order, up to the hold's bound (past it, dropped: the
    /// C++ drops it at once).
    pub fn to_master<S: 'static>(&mut self, net: &mut Reactor<S>, pdu: &ImPdu) {
        let now = net.now_ms();
        if let Some(master) = self.master {
            self.flush(net);
            let _ = net.send_pdu(master, pdu);
            return;
        }
        if self.held.push(now, pdu.clone()).is_err() {
            log::warn!(
                "no route_server and {HOLD_MAX} PDUs held: command {:#06x} dropped",
                pdu.command_id()
            );
        }
    }

    /// `msg` (a request or notify we originate) with `seq` to the master
    /// route_server, or held as [`to_master`](Self::to_master) does.
    pub fn msg_to_master<S: 'static, M: Command>(
        &mut self,
        net: &mut Reactor<S>,
        seq: u16,
        msg: &M,
    ) {
        match ImPdu::for_msg(seq, msg) {
            Ok(pdu) => self.to_master(net, &pdu),
            Err(e) => log::error!("command {:#06x} not sent to route_server: {e}", M::CID),
        }
    }

    /// What was held goes to the master if one is up; what was held past
    /// the age bound is dropped. Call it from a short timer and when a
    /// master is up.
    pub fn tick<S: 'static>(&mut self, net: &mut Reactor<S>) {
        let now = net.now_ms();
        if self.master.is_some() {
            self.flush(net);
            return;
        }
        let expired = self.held.expired(now);
        if !expired.is_empty() {
            log::warn!(
                "no route_server for {HOLD_MAX_AGE_MS} ms: {} held PDUs dropped",
                expired.len()
            );
        }
    }

    /// How many PDUs wait for a master.
    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    fn flush<S: 'static>(&mut self, net: &mut Reactor<S>) {
        let Some(master) = self.master else {
            return;
        };
        if self.held.is_empty() {
            return;
        }
        let held = self.held.take_all();
        log::info!("route_server master up: sending {} held PDUs", held.len());
        for pdu in held {
            let _ = net.send_pdu(master, &pdu);
        }
    }

    /// `CID_OTHER_SERVER_KICK_USER` to the master route_server: the other
    /// msg_servers kick `user_id`'s connections of `client_type`'s class.
    pub fn kick_user<S: 'static>(
        &mut self,
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
