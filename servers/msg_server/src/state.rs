//! The server state every handler reaches through its `Ctx`: what the C++
//! keeps in the globals of each of its files (`g_msg_conn_map`,
//! `CImUserManager`, `g_db_server_list`, `g_master_rs_conn`...), gathered in
//! one struct owned by the event loop.

use crate::db_serv_conn::DbServers;
use crate::file_serv_conn::FileServers;
use crate::group_chat::GroupCache;
use crate::im_user::ImUserManager;
use crate::msg_conn::ClientConn;
use crate::push_serv_conn::PushServers;
use crate::route_serv_conn::RouteServers;
use base::aes::Aes;
use base::ImPdu;
use netlib::PeerList;
use netlib::{ConnId, Reactor};
use std::collections::HashMap;

/// What this msg_server tells login_server about itself (`MSG_SERV_INFO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// `IpAddr1`: the address clients are sent to.
    pub ip1: String,
    /// `IpAddr2` (`IpAddr1` when absent).
    pub ip2: String,
    /// `ListenPort`.
    pub port: u16,
    /// `MaxConnCnt`.
    pub max_conn_cnt: u32,
    /// `gethostname`.
    pub host_name: String,
}

/// The C++ message statistics (`g_up_msg_total_cnt`...), logged every
/// 5 minutes and reset by SIGUSR1.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MsgStats {
    /// Messages clients sent us.
    pub up_total: u32,
    /// Of those, dropped for lack of a db_proxy link (the C++ never counts it).
    pub up_miss: u32,
    /// Messages we delivered to clients.
    pub down_total: u32,
    /// Of those, never acknowledged within 15 s.
    pub down_miss: u32,
}

/// The msg_server's state (`S` of the reactor).
pub struct MsgState {
    /// Who we are, for login_server.
    pub me: ServerIdentity,
    /// `pAes`: decrypts message text for push notifications.
    pub aes: Aes,
    /// `g_msg_conn_map`: every client connection and what it did so far.
    pub conns: HashMap<ConnId, ClientConn>,
    /// `CImUserManager`: validated users and their connections.
    pub users: ImUserManager,
    /// Links to db_proxy_server.
    pub db: DbServers,
    /// Links to login_server.
    pub login: PeerList,
    /// Links to route_server.
    pub route: RouteServers,
    /// Links to push_server.
    pub push: PushServers,
    /// Links to file_server.
    pub file: FileServers,
    /// Group member lists for group-message fan-out.
    pub groups: GroupCache,
    /// Message counters.
    pub stats: MsgStats,
    /// `g_log_msg_toggle`: log every message (SIGUSR2 flips it).
    pub log_msg: bool,
}

/// Sends `pdu` to each of `targets`. A target whose send fails is being
/// closed by the reactor; its `on_close` cleans up.
pub fn send_all(net: &mut Reactor<MsgState>, targets: &[ConnId], pdu: &ImPdu) {
    for &t in targets {
        let _ = net.send_pdu(t, pdu);
    }
}

/// Sends `pdu` to each connection of `user_id` here but `except` (none
/// when the user has no connection here).
pub fn send_to_user(
    net: &mut Reactor<MsgState>,
    state: &MsgState,
    user_id: u32,
    except: Option<ConnId>,
    pdu: &ImPdu,
) {
    if let Some(user) = state.users.get(user_id) {
        send_all(net, &user.targets(except), pdu);
    }
}
