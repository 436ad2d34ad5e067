//! The server state every handler reaches through its `Ctx`: what the C++
//! keeps in the globals of each of its files (`g_msg_conn_map`,
//! `CImUserManager`, `g_db_server_list`, `g_master_rs_conn`...), gathered in
//! one struct owned by the event loop, with the sends that need more of it
//! than one link set: to a user's connections, back to the client a reply
//! names (`CImUserManager::GetMsgConnByHandle`), a stored message to its
//! receivers (`CImUser::BroadcastClientMsgData`).
//!
//! It depends only on the leaf modules (links in [`crate::peers`], users,
//! group cache, attach data, a client connection's fields); every handler
//! calls down into it.

use crate::attach_data::{AttachData, Attached};
use crate::group_cache::GroupCache;
use crate::im_user::ImUserManager;
use crate::login_servers::LoginServers;
use crate::metrics::MsgMetrics;
use crate::msg_conn::conn::{ClientConn, TIMEOUT_WAITING_MSG_DATA_ACK};
use crate::peers::{DbServers, FileServers, PushServers, RouteServers};
use base::aes::Aes;
use base::pdu::PduError;
use base::tick::monotonic_ms;
use base::ImPdu;
use netlib::{ConnId, ConnTable, Reactor};
use tt_proto::IM::BaseDefine::SessionType;
use tt_proto::IM::Message::{IMMsgData, IMMsgDataAck};

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
    pub conns: ConnTable<ClientConn>,
    /// `CImUserManager`: validated users and their connections.
    pub users: ImUserManager,
    /// Links to db_proxy_server.
    pub db: DbServers,
    /// Links to login_server.
    pub login: LoginServers,
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
    /// Logins and messages by type, for `GET /metrics`.
    pub metrics: MsgMetrics,
    /// `g_log_msg_toggle`: log every message (SIGUSR2 flips it).
    pub log_msg: bool,
    /// Set by SIGTERM: the graceful stop under way.
    pub shutdown: Option<crate::shutdown::Shutdown>,
}

/// Sends `pdu` to each of `targets`. A target whose send fails is being
/// closed by the reactor; its `on_close` cleans up.
pub fn send_all(net: &mut Reactor<MsgState>, targets: &[ConnId], pdu: &ImPdu) {
    for &t in targets {
        let _ = net.send_pdu(t, pdu);
    }
}

impl MsgState {
    /// Sends `pdu` to each connection of `user_id` here but `except` (none
    /// when the user has no connection here).
    pub fn send_to_user(
        &self,
        net: &mut Reactor<MsgState>,
        user_id: u32,
        except: Option<ConnId>,
        pdu: &ImPdu,
    ) {
        if let Some(user) = self.users.get(user_id) {
            send_all(net, &user.targets(except), pdu);
        }
    }

    /// The client connection named by a reply's user id and attach data
    /// (`GetMsgConnByHandle`), if it is still a connection of that user.
    pub fn client_of(&self, user_id: u32, attach: Option<&[u8]>) -> Option<ConnId> {
        let attach = match AttachData::decode(attach.unwrap_or_default()) {
            Ok(a) => a,
            Err(e) => {
                log::warn!("reply for user {user_id} with unusable attach data dropped: {e}");
                return None;
            }
        };
        self.users.conn_of(user_id, attach.handle)
    }

    /// The common reply path: the reply goes, without its attach data, to the
    /// client connection that asked; dropped when that client has gone.
    pub fn relay_to_client<M: Attached>(
        &self,
        net: &mut Reactor<MsgState>,
        mut pdu: ImPdu,
    ) -> Result<M, PduError> {
        let mut msg: M = pdu.msg()?;
        let Some(conn) = self.client_of(msg.user_id(), msg.attach()) else {
            log::debug!(
                "reply {:#06x} for user {}: client gone, dropped",
                pdu.command_id(),
                msg.user_id()
            );
            return Ok(msg);
        };
        msg.set_attach(None);
        pdu.set_msg(&msg)?;
        let _ = net.send_pdu(conn, &pdu);
        Ok(msg)
    }

    /// `CImUser::BroadcastClientMsgData`: sends a stored message to each of
    /// `user_id`'s connections but `except`, each awaiting its ack. Returns
    /// how many connections it went to.
    pub fn deliver_msg(
        &mut self,
        net: &mut Reactor<MsgState>,
        user_id: u32,
        pdu: &ImPdu,
        msg_id: u32,
        except: Option<ConnId>,
        from_id: u32,
    ) -> u64 {
        let Some(user) = self.users.get(user_id) else {
            return 0;
        };
        let now = monotonic_ms();
        let targets = user.targets(except);
        for &t in &targets {
            let _ = net.send_pdu(t, pdu);
            if let Some(c) = self.conns.get_mut(&t) {
                c.add_to_send_list(msg_id, from_id, now);
                // Its on_timer expires the entry (it may be asleep till its timeout).
                net.timer_at(t, now + TIMEOUT_WAITING_MSG_DATA_ACK);
            }
            self.stats.down_total += 1;
        }
        targets.len() as u64
    }

    /// What `_HandleMsgData` and `HandleGroupMessage` do first with a message
    /// db_proxy stored: the sender's connection named by the attach data gets
    /// its ack (with the request's seq), and the message, without attach data
    /// and with seq 0, goes to the master route_server for the other
    /// msg_servers. Returns the sender's connection here, if still there;
    /// `msg` and `pdu` are left as routed.
    pub fn ack_and_route_stored(
        &mut self,
        net: &mut Reactor<MsgState>,
        pdu: &mut ImPdu,
        msg: &mut IMMsgData,
        session_type: SessionType,
    ) -> Result<Option<ConnId>, PduError> {
        let from_conn = self.client_of(msg.from_user_id, msg.attach_data.as_deref());
        if let Some(sender) = from_conn {
            let ack = IMMsgDataAck {
                user_id: msg.from_user_id,
                session_id: msg.to_session_id,
                msg_id: msg.msg_id,
                session_type,
            };
            let _ = net.send_msg(sender, pdu.seq_num(), &ack);
        }
        msg.attach_data = None;
        pdu.set_msg(msg)?;
        pdu.set_seq_num(0);
        self.route.to_master(net, pdu);
        Ok(from_conn)
    }
}
