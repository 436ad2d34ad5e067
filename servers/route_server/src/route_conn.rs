//! One msg_server link and the presence table all links share: the C++
//! `route_server/RouteConn.cpp` (`CRouteConn`, its globals
//! `g_route_conn_map` and `g_user_map`, `_UpdateUserStatus`,
//! `_BroadcastMsg`).
//!
//! Every msg_server connects here. route_server keeps which users are
//! logged in through which msg_server with which client types, answers
//! presence queries, tells every msg_server about presence changes, and
//! relays the PDUs that must reach users on other msg_servers (by
//! broadcast: like the C++, it never routes by user).

use crate::user_info::{is_pc_client, UserInfo};
use base::pdu::PduError;
use base::tick::monotonic_ms;
use base::ImPdu;
use netlib::{ConnId, Ctx, Heartbeat, ImConn, Reactor};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use tt_proto::IM::BaseDefine::{UserStat, UserStatType};
use tt_proto::IM::Buddy::{IMUserStatNotify, IMUsersStatReq, IMUsersStatRsp};
use tt_proto::IM::Server::{
    IMOnlineUserInfo, IMRoleSet, IMServerPCLoginStatusNotify, IMUserStatusUpdate,
};
use tt_proto::{cid, Command};

/// `IM_PC_LOGIN_STATUS_ON` in `IMServerPCLoginStatusNotify.login_status`.
const PC_LOGIN_STATUS_ON: u32 = 1;
/// `IM_PC_LOGIN_STATUS_OFF`.
const PC_LOGIN_STATUS_OFF: u32 = 0;
/// `USER_STATUS_OFFLINE` as `IMUserStatusUpdate.user_status` carries it.
const STATUS_OFFLINE: u32 = UserStatType::USER_STATUS_OFFLINE as u32;
/// `USER_STATUS_ONLINE`.
const STATUS_ONLINE: u32 = UserStatType::USER_STATUS_ONLINE as u32;

/// How long a user announced offline because its msg_server link was lost
/// is remembered: if a msg_server (re)connecting within this window reports
/// that user in its `CID_OTHER_ONLINE_USER_INFO`, the user is announced
/// online again. Covers a msg_server's reconnect back-off with room to spare.
pub const REANNOUNCE_WINDOW_MS: u64 = 5 * 60 * 1000;

/// The server state (`S` of the reactor): the C++ globals of `RouteConn.cpp`.
#[derive(Debug, Default)]
pub struct RouteState {
    /// Every open msg_server link (`g_route_conn_map`), with the users it
    /// reports. The C++ has no such index and scans every user when a link
    /// closes.
    links: BTreeMap<ConnId, HashSet<u32>>,
    /// `g_user_map`: every user some link reports a client of.
    users: HashMap<u32, UserInfo>,
    /// Users announced offline because their link was lost, with when
    /// (monotonic ms); see [`REANNOUNCE_WINDOW_MS`]. The C++ announces
    /// nothing on a lost link.
    dropped: HashMap<u32, u64>,
}

impl RouteState {
    /// `GetUserInfo`.
    pub fn user(&self, user_id: u32) -> Option<&UserInfo> {
        self.users.get(&user_id)
    }

    /// Number of users in the table.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Number of open msg_server links.
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// Every open link, in a stable order (`g_route_conn_map`).
    pub fn links(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.links.keys().copied()
    }

    /// `OnConnect`: a msg_server link is open.
    pub fn add_link(&mut self, link: ConnId) {
        self.links.entry(link).or_default();
    }

    /// `_UpdateUserStatus`: one client of `user_id` of `client_type` went
    /// to `status` through `link`. Any status but offline (online, leave)
    /// counts as logged in. An offline for a client `link` never reported
    /// is ignored.
    pub fn update_user_status(
        &mut self,
        link: ConnId,
        user_id: u32,
        status: u32,
        client_type: u32,
    ) {
        let Some(link_users) = self.links.get_mut(&link) else {
            // Only an open link reports users; anything else would leak.
            log::warn!("status of user {user_id} from unknown link {link} ignored");
            return;
        };
        if status == STATUS_OFFLINE {
            let Some(user) = self.users.get_mut(&user_id) else {
                return;
            };
            user.remove_client(link, client_type);
            if !user.has_link(link) {
                link_users.remove(&user_id);
            }
            if user.is_empty() {
                self.users.remove(&user_id);
            }
        } else {
            self.users
                .entry(user_id)
                .or_default()
                .add_client(link, client_type);
            link_users.insert(user_id);
        }
    }

    /// `Close` (the user-table part): forgets `link` and every client it
    /// reported. Returns the users it had a PC client of: their presence
    /// may have changed. Those left with no PC client are remembered as
    /// dropped at `now`.
    pub fn remove_link(&mut self, link: ConnId, now: u64) -> Vec<u32> {
        let Some(link_users) = self.links.remove(&link) else {
            return Vec::new();
        };
        let mut had_pc = Vec::new();
        for user_id in link_users {
            let Some(user) = self.users.get_mut(&user_id) else {
                continue;
            };
            let lost_pc = user
                .remove_link(link)
                .is_some_and(|tally| tally.keys().any(|&t| is_pc_client(t)));
            let pc_left = user.is_pc_client_login();
            if user.is_empty() {
                self.users.remove(&user_id);
            }
            if lost_pc {
                had_pc.push(user_id);
                if !pc_left {
                    self.dropped.insert(user_id, now);
                }
            }
        }
        had_pc.sort_unstable();
        had_pc
    }

    /// Forgets the users dropped longer than [`REANNOUNCE_WINDOW_MS`] before `now`.
    pub fn forget_dropped(&mut self, now: u64) {
        self.dropped
            .retain(|_, at| now.saturating_sub(*at) < REANNOUNCE_WINDOW_MS);
    }

    /// Number of users remembered as dropped.
    #[cfg(test)]
    pub fn dropped_count(&self) -> usize {
        self.dropped.len()
    }
}

/// `_BroadcastMsg`: sends `pdu` to every open link but `except`. A link
/// whose send fails is being closed by the reactor; the others still get it.
fn broadcast(
    net: &mut Reactor<RouteState>,
    state: &RouteState,
    pdu: &ImPdu,
    except: Option<ConnId>,
) {
    for link in state.links() {
        if Some(link) != except {
            // A failure means that link is closing; its on_close cleans up.
            let _ = net.send_pdu(link, pdu);
        }
    }
}

/// `_BroadcastMsg` of a notify we originate: `msg` under its command, seq
/// 0, to every open link. Encoding fails only for a body over the PDU
/// limit; that is logged and nothing sent.
fn broadcast_msg<M: Command>(net: &mut Reactor<RouteState>, state: &RouteState, msg: &M) {
    match ImPdu::for_msg(0, msg) {
        Ok(pdu) => broadcast(net, state, &pdu, None),
        Err(e) => log::error!("cannot encode command {:#06x}: {e}", M::CID),
    }
}

/// The presence notifications of `_HandleUserStatusUpdate`, sent after the
/// table was updated for one client of `user_id` (a PC client when
/// `client_is_pc`) going to `status`:
/// - `CID_OTHER_LOGIN_STATUS_NOTIFY` to every link, so msg_servers tell the
///   user's mobile clients whether a PC client is on: when a PC client went
///   offline and none is left, or when anything went online while a PC
///   client is on; only while the user is still in the table.
/// - `CID_BUDDY_LIST_STATUS_NOTIFY` to every link when a PC client changed,
///   except a PC client going offline while another PC client remains.
fn notify_presence(
    net: &mut Reactor<RouteState>,
    state: &RouteState,
    user_id: u32,
    status: u32,
    client_is_pc: bool,
) {
    let offline = status == STATUS_OFFLINE;
    let pc_login = state.user(user_id).map(UserInfo::is_pc_client_login);
    if let Some(pc_login) = pc_login {
        let tell = if offline {
            client_is_pc && !pc_login
        } else {
            pc_login
        };
        if tell {
            let msg = IMServerPCLoginStatusNotify {
                user_id,
                login_status: if offline {
                    PC_LOGIN_STATUS_OFF
                } else {
                    PC_LOGIN_STATUS_ON
                },
            };
            broadcast_msg(net, state, &msg);
        }
    }
    if client_is_pc && !(offline && pc_login == Some(true)) {
        let msg = IMUserStatNotify {
            user_stat: UserStat {
                user_id,
                status: UserStatType::from(status as i32),
            },
        };
        broadcast_msg(net, state, &msg);
    }
}

/// Is `command_id` one of the PDUs relayed to every other msg_server?
fn is_relayed_to_others(command_id: u16) -> bool {
    matches!(
        command_id,
        cid::MSG_DATA
            | cid::SWITCH_P2P_CMD
            | cid::MSG_READ_NOTIFY
            | cid::OTHER_SERVER_KICK_USER
            | cid::GROUP_CHANGE_MEMBER_NOTIFY
            | cid::FILE_NOTIFY
            | cid::BUDDY_LIST_REMOVE_SESSION_NOTIFY
    )
}

/// `CRouteConn`: the handler of one msg_server link.
#[derive(Debug, Default)]
pub struct RouteConn {
    /// `m_bMaster`: this msg_server chose us as its master route server
    /// (`CID_OTHER_ROLE_SET`). Kept, as in the C++, though nothing reads it.
    master: bool,
    /// The msg_server's address, kept for the log line when the link goes.
    peer: Option<SocketAddr>,
}

impl RouteConn {
    /// A handler for a freshly accepted link.
    pub fn new() -> RouteConn {
        RouteConn::default()
    }

    /// `_HandleOnlineUserInfo`: a msg_server lists every client logged in
    /// through it (it sends this when it connects).
    fn handle_online_user_info(
        &mut self,
        cx: &mut Ctx<'_, RouteState>,
        pdu: &ImPdu,
    ) -> Result<(), PduError> {
        let msg: IMOnlineUserInfo = pdu.msg()?;
        log::info!(
            "online user info from {}: {} clients",
            cx.id,
            msg.user_stat_list.len()
        );
        for stat in &msg.user_stat_list {
            cx.state.update_user_status(
                cx.id,
                stat.user_id,
                stat.status as u32,
                stat.client_type as u32,
            );
        }
        // Not in the C++: users we announced offline when their link was
        // lost, and that this msg_server reports with a PC client again,
        // are announced online again.
        for stat in &msg.user_stat_list {
            let user_id = stat.user_id;
            if !cx.state.dropped.contains_key(&user_id) {
                continue;
            }
            if cx
                .state
                .user(user_id)
                .is_some_and(UserInfo::is_pc_client_login)
            {
                cx.state.dropped.remove(&user_id);
                log::info!("user {user_id} reported again after its link was lost: online");
                notify_presence(cx.net, cx.state, user_id, STATUS_ONLINE, true);
            }
        }
        Ok(())
    }

    /// `_HandleUserStatusUpdate`: one client logged in or out through
    /// this msg_server.
    fn handle_user_status_update(
        &mut self,
        cx: &mut Ctx<'_, RouteState>,
        pdu: &ImPdu,
    ) -> Result<(), PduError> {
        let msg: IMUserStatusUpdate = pdu.msg()?;
        let (user_id, status, client_type) = (msg.user_id, msg.user_status, msg.client_type as u32);
        log::info!(
            "user status update from {}: uid={user_id} status={status} client_type={client_type}",
            cx.id
        );
        cx.state.dropped.remove(&user_id);
        cx.state
            .update_user_status(cx.id, user_id, status, client_type);
        notify_presence(cx.net, cx.state, user_id, status, is_pc_client(client_type));
        Ok(())
    }

    /// `_HandleRoleSet`: the msg_server says whether we are its master.
    fn handle_role_set(
        &mut self,
        cx: &mut Ctx<'_, RouteState>,
        pdu: &ImPdu,
    ) -> Result<(), PduError> {
        let msg: IMRoleSet = pdu.msg()?;
        self.master = msg.master == 1;
        log::info!("role set from {}: master={}", cx.id, self.master);
        Ok(())
    }

    /// `_HandleUsersStatusRequest`: the status of each listed user, with
    /// the request's user id, attach data and seq.
    fn handle_users_status_request(
        &mut self,
        cx: &mut Ctx<'_, RouteState>,
        pdu: &ImPdu,
    ) -> Result<(), PduError> {
        let req: IMUsersStatReq = pdu.msg()?;
        log::debug!(
            "users status request from {}: req_id={} query_count={}",
            cx.id,
            req.user_id,
            req.user_id_list.len()
        );
        let user_stat_list = req
            .user_id_list
            .iter()
            .map(|&user_id| UserStat {
                user_id,
                status: cx
                    .state
                    .user(user_id)
                    .map_or(UserStatType::USER_STATUS_OFFLINE, UserInfo::status),
            })
            .collect();
        let rsp = IMUsersStatRsp {
            user_id: req.user_id,
            user_stat_list,
            // The C++ always sets it, empty when the request had none.
            attach_data: Some(req.attach_data.unwrap_or_default()),
        };
        cx.send_msg(pdu.seq_num(), &rsp);
        Ok(())
    }
}

impl ImConn<RouteState> for RouteConn {
    /// `OnConnect`: the link joins `g_route_conn_map`.
    fn on_connect(&mut self, cx: &mut Ctx<'_, RouteState>) {
        self.peer = cx.peer_addr();
        cx.state.add_link(cx.id);
        log::info!(
            "msg_server {} connected as {} ({} links)",
            display_peer(self.peer),
            cx.id,
            cx.state.link_count()
        );
    }

    /// `HandlePdu`. Relayed PDUs are forwarded byte for byte without
    /// decoding their bodies, as the C++ does; a body we must read that
    /// does not decode closes the link.
    fn on_pdu(&mut self, cx: &mut Ctx<'_, RouteState>, pdu: ImPdu) {
        let handled = match pdu.command_id() {
            cid::OTHER_HEARTBEAT => Ok(()),
            cid::OTHER_ONLINE_USER_INFO => self.handle_online_user_info(cx, &pdu),
            cid::OTHER_USER_STATUS_UPDATE => self.handle_user_status_update(cx, &pdu),
            cid::OTHER_ROLE_SET => self.handle_role_set(cx, &pdu),
            cid::BUDDY_LIST_USERS_STATUS_REQUEST => self.handle_users_status_request(cx, &pdu),
            c if is_relayed_to_others(c) => {
                broadcast(cx.net, cx.state, &pdu, Some(cx.id));
                Ok(())
            }
            cid::BUDDY_LIST_SIGN_INFO_CHANGED_NOTIFY => {
                // To every link, the sender included, as the C++ does.
                broadcast(cx.net, cx.state, &pdu, None);
                Ok(())
            }
            other => {
                log::warn!(
                    "unknown command {other:#x} from msg_server {}, ignored",
                    cx.id
                );
                Ok(())
            }
        };
        if let Err(e) = handled {
            log::warn!(
                "msg_server {} ({}) sent a bad PDU, closing the link: {e}",
                display_peer(self.peer),
                cx.id
            );
            cx.close();
        }
    }

    /// `OnClose`/`Close`: the link leaves the table with every client it
    /// reported. Not in the C++: the users who thereby have no PC client
    /// left are announced offline to the other links, as if the msg_server
    /// had reported each of its PC clients offline.
    fn on_close(&mut self, cx: &mut Ctx<'_, RouteState>) {
        let had_pc = cx.state.remove_link(cx.id, monotonic_ms());
        for &user_id in &had_pc {
            notify_presence(cx.net, cx.state, user_id, STATUS_OFFLINE, true);
        }
        log::info!(
            "msg_server {} ({}) lost: {} users with a PC client on it; {} links and {} users left",
            display_peer(self.peer),
            cx.id,
            had_pc.len(),
            cx.state.link_count(),
            cx.state.user_count()
        );
    }

    /// `OnTimer`: heartbeat after 5 s of quiet, close after 30 s of silence.
    fn on_timer(&mut self, cx: &mut Ctx<'_, RouteState>, now: u64) {
        cx.keep_alive(Heartbeat::SERVER, now);
    }
}

fn display_peer(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "?".to_string(), |p| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOWS: u32 = 0x01;
    const ANDROID: u32 = 0x12;

    fn link(n: u64) -> ConnId {
        ConnId::from_u64(n)
    }

    fn state_with_links(n: u64) -> RouteState {
        let mut s = RouteState::default();
        for i in 1..=n {
            s.add_link(link(i));
        }
        s
    }

    #[test]
    fn online_then_offline_empties_the_table() {
        let mut s = state_with_links(1);
        s.update_user_status(link(1), 7, STATUS_ONLINE, WINDOWS);
        assert_eq!(
            s.user(7).unwrap().status(),
            UserStatType::USER_STATUS_ONLINE
        );
        s.update_user_status(link(1), 7, STATUS_OFFLINE, WINDOWS);
        assert_eq!(s.user_count(), 0);
        assert!(
            s.links[&link(1)].is_empty(),
            "the link index forgets the user"
        );
    }

    #[test]
    fn offline_from_a_link_that_never_reported_is_ignored() {
        let mut s = state_with_links(2);
        s.update_user_status(link(1), 7, STATUS_ONLINE, WINDOWS);
        s.update_user_status(link(2), 7, STATUS_OFFLINE, WINDOWS);
        assert!(s.user(7).unwrap().is_pc_client_login());
        s.update_user_status(link(2), 8, STATUS_OFFLINE, WINDOWS);
        assert!(s.user(8).is_none());
    }

    #[test]
    fn leave_counts_as_logged_in() {
        let mut s = state_with_links(1);
        s.update_user_status(link(1), 7, UserStatType::USER_STATUS_LEAVE as u32, WINDOWS);
        assert_eq!(
            s.user(7).unwrap().status(),
            UserStatType::USER_STATUS_ONLINE
        );
    }

    #[test]
    fn unknown_link_adds_nothing() {
        let mut s = state_with_links(1);
        s.update_user_status(link(9), 7, STATUS_ONLINE, WINDOWS);
        assert_eq!(s.user_count(), 0);
    }

    #[test]
    fn losing_a_link_reports_pc_users_and_keeps_others() {
        let mut s = state_with_links(2);
        s.update_user_status(link(1), 1, STATUS_ONLINE, WINDOWS);
        s.update_user_status(link(1), 2, STATUS_ONLINE, WINDOWS);
        s.update_user_status(link(2), 2, STATUS_ONLINE, ANDROID);
        s.update_user_status(link(1), 3, STATUS_ONLINE, ANDROID);
        s.update_user_status(link(2), 4, STATUS_ONLINE, WINDOWS);
        s.update_user_status(link(1), 4, STATUS_ONLINE, WINDOWS);
        let had_pc = s.remove_link(link(1), 1000);
        assert_eq!(had_pc, vec![1, 2, 4]);
        assert!(s.user(1).is_none() && s.user(3).is_none());
        assert_eq!(
            s.user(2).unwrap().status(),
            UserStatType::USER_STATUS_OFFLINE
        );
        assert_eq!(
            s.user(4).unwrap().status(),
            UserStatType::USER_STATUS_ONLINE
        );
        assert_eq!(s.link_count(), 1);
        // Users 1 and 2 lost their last PC client; user 4 still has one.
        assert_eq!(s.dropped_count(), 2);
        s.forget_dropped(1000 + REANNOUNCE_WINDOW_MS - 1);
        assert_eq!(s.dropped_count(), 2);
        s.forget_dropped(1000 + REANNOUNCE_WINDOW_MS);
        assert_eq!(s.dropped_count(), 0);
        assert!(
            s.remove_link(link(1), 0).is_empty(),
            "a second close is a no-op"
        );
        s.remove_link(link(2), 0);
        assert_eq!(s.user_count(), 0);
    }
}
