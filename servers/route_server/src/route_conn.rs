//! One msg_server link: the C++ `route_server/RouteConn.cpp` (`CRouteConn`,
//! its `_Handle*` commands); the table the links share is in
//! [`crate::state`].
//!
//! Every msg_server connects here. route_server keeps which users are
//! logged in through which msg_server with which client types, answers
//! presence queries, tells every msg_server about presence changes, and
//! relays the PDUs that must reach users on other msg_servers (by
//! broadcast, like the C++), except `CID_OTHER_SERVER_KICK_USER`.
//!
//! Differences from the C++: what is relayed in the first seconds after
//! start also goes to the msg_servers that link a little later
//! ([`crate::start_replay`]); a duplicate-login kick goes only to the
//! msg_servers that hold the user or are logging it in (the C++ sends it to
//! every other msg_server, so each login costs every msg_server a PDU); a
//! kick whose body does not decode closes the link (the C++ relays it
//! unread).

use crate::state::{RouteState, STATUS_OFFLINE, STATUS_ONLINE};
use crate::user_info::{is_pc_client, UserInfo};
use base::pdu::PduError;
use base::tick::monotonic_ms;
use base::ImPdu;
use netlib::{Ctx, Heartbeat, ImConn, Reactor};
use std::net::SocketAddr;
use tt_proto::cid;
use tt_proto::IM::BaseDefine::{MsgType, UserStat, UserStatType};
use tt_proto::IM::Buddy::{IMUserStatNotify, IMUsersStatReq, IMUsersStatRsp};
use tt_proto::IM::Message::IMMsgData;
use tt_proto::IM::Server::{
    IMOnlineUserInfo, IMRoleSet, IMServerKickUser, IMServerPCLoginStatusNotify, IMUserStatusUpdate,
};

/// `IM_PC_LOGIN_STATUS_ON` in `IMServerPCLoginStatusNotify.login_status`.
const PC_LOGIN_STATUS_ON: u32 = 1;
/// `IM_PC_LOGIN_STATUS_OFF`.
const PC_LOGIN_STATUS_OFF: u32 = 0;

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
            state.broadcast_msg(net, &msg);
        }
    }
    if client_is_pc && !(offline && pc_login == Some(true)) {
        let msg = IMUserStatNotify {
            user_stat: UserStat {
                user_id,
                status: UserStatType::from(status as i32),
            },
        };
        state.broadcast_msg(net, &msg);
    }
}

/// `CHECK_MSG_TYPE_SINGLE`: a one-to-one message.
fn is_single_msg(t: MsgType) -> bool {
    matches!(
        t,
        MsgType::MSG_TYPE_SINGLE_TEXT | MsgType::MSG_TYPE_SINGLE_AUDIO
    )
}

/// Is `command_id` one of the PDUs relayed to every other msg_server
/// (`MSG_DATA`'s one-to-one messages go only where their users are)?
fn is_relayed_to_others(command_id: u16) -> bool {
    matches!(
        command_id,
        cid::MSG_DATA
            | cid::SWITCH_P2P_CMD
            | cid::MSG_READ_NOTIFY
            | cid::GROUP_CHANGE_MEMBER_NOTIFY
            | cid::FILE_NOTIFY
            | cid::BUDDY_LIST_REMOVE_SESSION_NOTIFY
    )
}

/// `_BroadcastMsg` of a relayed PDU: to every link but its sender, and
/// kept for the msg_servers that link within the start window.
fn relay_to_others(cx: &mut Ctx<'_, RouteState>, pdu: &ImPdu) {
    cx.state.broadcast(cx.net, pdu, Some(cx.id));
    let reached = cx.state.links().collect();
    cx.state.start_replay.relayed(monotonic_ms(), pdu, reached);
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
            if cx.state.take_reannounce(user_id) {
                log::info!("user {user_id} reported again after its link was lost: online");
                notify_presence(cx.net, cx.state, user_id, STATUS_ONLINE, true);
            }
        }
        // Just after our start: what the msg_servers that linked first
        // relayed before this one could get it.
        let missed = cx.state.start_replay.listed_users(monotonic_ms(), cx.id);
        if !missed.is_empty() {
            log::info!(
                "sending {} PDUs relayed since start to {}",
                missed.len(),
                cx.id
            );
        }
        for pdu in missed {
            let _ = cx.send_pdu(&pdu);
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
        cx.state.clear_dropped(user_id);
        cx.state
            .update_user_status(cx.id, user_id, status, client_type);
        notify_presence(cx.net, cx.state, user_id, status, is_pc_client(client_type));
        Ok(())
    }

    /// `CID_OTHER_SERVER_KICK_USER` (relayed by `_BroadcastMsg` in the
    /// C++): a client of the user logged in through this msg_server, so
    /// the same class of client elsewhere is kicked. Forwarded byte for
    /// byte, only to the links that hold the user or are logging it in.
    fn handle_server_kick_user(
        &mut self,
        cx: &mut Ctx<'_, RouteState>,
        pdu: &ImPdu,
    ) -> Result<(), PduError> {
        let msg: IMServerKickUser = pdu.msg()?;
        match cx.state.kick_targets(cx.id, msg.user_id, monotonic_ms()) {
            Some(targets) => {
                log::debug!(
                    "kick of user {} from {} to {} links",
                    msg.user_id,
                    cx.id,
                    targets.len()
                );
                for link in targets {
                    // A failure means that link is closing.
                    let _ = cx.net.send_pdu(link, pdu);
                }
            }
            None => cx.state.broadcast(cx.net, pdu, Some(cx.id)),
        }
        Ok(())
    }

    /// A message relayed from one msg_server: a one-to-one message goes
    /// only to the links that hold (or are logging in) its sender or its
    /// receiver ([`RouteState::message_targets`]); a group message, a
    /// body that does not decode, or a receiver no link is known to hold,
    /// to every other link as in the C++.
    fn relay_msg_data(&mut self, cx: &mut Ctx<'_, RouteState>, pdu: &ImPdu) {
        let single = pdu
            .msg::<IMMsgData>()
            .ok()
            .filter(|m| is_single_msg(m.msg_type));
        let targets = single.and_then(|msg| {
            cx.state
                .message_targets(cx.id, msg.from_user_id, msg.to_session_id)
        });
        let Some(mut targets) = targets else {
            relay_to_others(cx, pdu);
            return;
        };
        for &link in &targets {
            // A failure means that link is closing.
            let _ = cx.net.send_pdu(link, pdu);
        }
        // Kept for a msg_server that links within the start window.
        targets.push(cx.id);
        cx.state
            .start_replay
            .relayed_targeted(monotonic_ms(), pdu, targets);
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
            cid::OTHER_SERVER_KICK_USER => self.handle_server_kick_user(cx, &pdu),
            cid::BUDDY_LIST_USERS_STATUS_REQUEST => self.handle_users_status_request(cx, &pdu),
            cid::MSG_DATA => {
                self.relay_msg_data(cx, &pdu);
                Ok(())
            }
            c if is_relayed_to_others(c) => {
                relay_to_others(cx, &pdu);
                Ok(())
            }
            cid::BUDDY_LIST_SIGN_INFO_CHANGED_NOTIFY => {
                // To every link, the sender included, as the C++ does.
                cx.state.broadcast(cx.net, &pdu, None);
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
        cx.state.start_replay.closed(cx.id);
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

    /// `OnTimer`: heartbeat after 5 s of quiet, close after 30 s of
    /// silence; called only when one of those is due.
    fn on_timer(&mut self, cx: &mut Ctx<'_, RouteState>, now: u64) {
        cx.keep_alive_until_due(Heartbeat::SERVER, now);
    }
}

fn display_peer(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "?".to_string(), |p| p.to_string())
}
