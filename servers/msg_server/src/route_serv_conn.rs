//! Links to route_server: the C++ `RouteServConn.cpp` (`CRouteServConn`,
//! its `HandlePdu` and `_HandleUsersStatusResponse`); the master and the
//! sends to route_server are [`crate::peers::RouteServers`].
//!
//! route_server knows which users are logged in on which msg_server and
//! relays what must reach users elsewhere. Logins and logouts go to every
//! route_server; everything else goes to the master, the link that
//! connected first, which is told so by `CID_OTHER_ROLE_SET`. On connect we
//! list our users (`CID_OTHER_ONLINE_USER_INFO`). What route_server relays
//! from other msg_servers is delivered here.

use crate::attach_data::{AttachData, AttachType};
use crate::file_handler;
use crate::group_chat;
use crate::im_user::{CLIENT_TYPE_FLAG_BOTH, CLIENT_TYPE_FLAG_PC, PC_LOGIN_STATUS_ON};
use crate::msg_conn;
use crate::push_serv_conn;
use crate::state::{send_all, MsgState};
use base::msg_type::is_group_msg;
use base::pdu::PduError;
use base::ImPdu;
use netlib::PeerLink;
use netlib::{Ctx, Heartbeat, ImConn, Reactor};
use tt_proto::cid;
use tt_proto::IM::BaseDefine::{ClientType, KickReasonType, ServerUserStat, UserStatType};
use tt_proto::IM::Buddy::{
    IMPCLoginStatusNotify, IMRemoveSessionNotify, IMSignInfoChangedNotify, IMUserStatNotify,
    IMUsersStatRsp,
};
use tt_proto::IM::Message::{IMMsgData, IMMsgDataReadNotify};
use tt_proto::IM::Server::{IMOnlineUserInfo, IMServerKickUser, IMServerPCLoginStatusNotify};
use tt_proto::IM::SwitchService::IMP2PCmdMsg;

/// The `IMOnlineUserInfo` of `OnConfirm`: every validated connection here.
pub fn online_user_info(state: &MsgState) -> IMOnlineUserInfo {
    IMOnlineUserInfo {
        user_stat_list: state
            .users
            .online_user_info()
            .into_iter()
            .map(|(user_id, c)| ServerUserStat {
                user_id,
                status: UserStatType::from(c.online_status as i32),
                client_type: ClientType::from(c.client_type as i32),
            })
            .collect(),
    }
}

/// `CRouteServConn`: the handler of the link to route_server `idx`.
#[derive(Debug)]
pub struct RouteServConn {
    link: PeerLink,
}

impl RouteServConn {
    /// The handler for peer `idx`.
    pub fn new(idx: usize) -> RouteServConn {
        RouteServConn {
            link: PeerLink::new("route_server", idx),
        }
    }
}

impl ImConn<MsgState> for RouteServConn {
    /// `OnConfirm`: maybe the master; lists our users.
    fn on_confirm(&mut self, cx: &mut Ctx<'_, MsgState>) {
        let addr = cx.peer_addr();
        self.link.confirm(&mut cx.state.route.peers, cx.id, addr);
        // Membership changes may have been missed while no link was open.
        cx.state.groups.clear();
        if cx.state.route.master.is_none() {
            cx.state.route.update_master(cx.net);
        }
        let info = online_user_info(cx.state);
        cx.send_msg(0, &info);
        // What waited for a master goes now, after our users.
        cx.state.route.tick(cx.net);
    }

    /// `OnClose`: another link becomes master if this one was.
    fn on_close(&mut self, cx: &mut Ctx<'_, MsgState>) {
        let addr = cx.peer_addr();
        self.link.closed(&mut cx.state.route.peers, cx.id, addr);
        if cx.state.route.master == Some(cx.id) {
            cx.state.route.update_master(cx.net);
        }
    }

    /// `OnTimer`: heartbeat after 5 s of quiet, close after 30 s of silence.
    fn on_timer(&mut self, cx: &mut Ctx<'_, MsgState>, now: u64) {
        cx.keep_alive(Heartbeat::SERVER, now);
    }

    /// `HandlePdu`: a body that does not decode is logged and dropped, as
    /// the C++ does (route_server relays what other msg_servers' clients
    /// sent, so one bad body must not cut this link).
    fn on_pdu(&mut self, cx: &mut Ctx<'_, MsgState>, pdu: ImPdu) {
        if let Err(e) = handle_relayed(cx.net, cx.state, pdu) {
            log::warn!("route_server link {}: PDU dropped: {e}", cx.id);
        }
    }
}

/// `CRouteServConn::HandlePdu`'s switch.
fn handle_relayed(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    pdu: ImPdu,
) -> Result<(), PduError> {
    match pdu.command_id() {
        cid::OTHER_HEARTBEAT => {}
        cid::OTHER_SERVER_KICK_USER => {
            let msg: IMServerKickUser = pdu.msg()?;
            log::info!(
                "kick from route_server, user_id={}, client_type={:?}, reason={}",
                msg.user_id,
                msg.client_type,
                msg.reason
            );
            let reason = if msg.reason == KickReasonType::KICK_REASON_MOBILE_KICK as u32 {
                KickReasonType::KICK_REASON_MOBILE_KICK
            } else {
                KickReasonType::KICK_REASON_DUPLICATE_USER
            };
            msg_conn::login::kick_same_client_class(
                net,
                state,
                msg.user_id,
                msg.client_type as u32,
                reason,
                None,
            );
        }
        cid::BUDDY_LIST_STATUS_NOTIFY => {
            let msg: IMUserStatNotify = pdu.msg()?;
            log::debug!(
                "status notify, user_id={}, status={:?}",
                msg.user_stat.user_id,
                msg.user_stat.status
            );
            send_all(net, &state.users.all_targets(CLIENT_TYPE_FLAG_PC), &pdu);
        }
        cid::BUDDY_LIST_USERS_STATUS_RESPONSE => handle_users_status_response(net, state, pdu)?,
        cid::MSG_READ_NOTIFY => {
            let msg: IMMsgDataReadNotify = pdu.msg()?;
            state.send_to_user(net, msg.user_id, None, &pdu);
        }
        cid::MSG_DATA => {
            let msg: IMMsgData = pdu.msg()?;
            if is_group_msg(msg.msg_type) {
                group_chat::handle_group_message_broadcast(net, state, msg)?;
            } else {
                let (from, to, id) = (msg.from_user_id, msg.to_session_id, msg.msg_id);
                log::debug!("relayed message {from}->{to}, msg_id={id}");
                let n = state.deliver_msg(net, from, &pdu, id, None, from)
                    + state.deliver_msg(net, to, &pdu, id, None, from);
                let label = crate::metrics::msg_type_label(msg.msg_type);
                state.metrics.msgs_out.add(label, n);
            }
        }
        cid::SWITCH_P2P_CMD => {
            let msg: IMP2PCmdMsg = pdu.msg()?;
            for uid in [msg.from_user_id, msg.to_user_id] {
                state.send_to_user(net, uid, None, &pdu);
            }
        }
        cid::OTHER_LOGIN_STATUS_NOTIFY => {
            let msg: IMServerPCLoginStatusNotify = pdu.msg()?;
            log::debug!(
                "PC login status of user {}: {}",
                msg.user_id,
                msg.login_status
            );
            if let Some(user) = state.users.get_mut(msg.user_id) {
                user.pc_login_status = msg.login_status;
                let notify = IMPCLoginStatusNotify {
                    user_id: msg.user_id,
                    login_stat: if msg.login_status == PC_LOGIN_STATUS_ON {
                        UserStatType::USER_STATUS_ONLINE
                    } else {
                        UserStatType::USER_STATUS_OFFLINE
                    },
                };
                let targets = user.mobile_targets(None);
                send_all(net, &targets, &ImPdu::for_msg(0, &notify)?);
            }
        }
        cid::BUDDY_LIST_REMOVE_SESSION_NOTIFY => {
            let msg: IMRemoveSessionNotify = pdu.msg()?;
            state.send_to_user(net, msg.user_id, None, &pdu);
        }
        cid::BUDDY_LIST_SIGN_INFO_CHANGED_NOTIFY => {
            let msg: IMSignInfoChangedNotify = pdu.msg()?;
            log::debug!("sign info of user {} changed", msg.changed_user_id);
            send_all(net, &state.users.all_targets(CLIENT_TYPE_FLAG_BOTH), &pdu);
        }
        cid::GROUP_CHANGE_MEMBER_NOTIFY => {
            group_chat::handle_change_member_broadcast(net, state, &pdu)?
        }
        cid::FILE_NOTIFY => file_handler::handle_file_notify(net, state, &pdu)?,
        other => log::warn!("route_server: unexpected command {other:#06x} ignored"),
    }
    Ok(())
}

/// `_HandleUsersStatusResponse`: by the attach data's type, the answer
/// of a client's question, the status deciding a push's kind, or the
/// status deciding a file transfer's mode.
fn handle_users_status_response(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    mut pdu: ImPdu,
) -> Result<(), PduError> {
    let mut rsp: IMUsersStatRsp = pdu.msg()?;
    let attach = match AttachData::decode(rsp.attach_data.as_deref().unwrap_or_default()) {
        Ok(a) => a,
        Err(e) => {
            log::warn!("users status response with unusable attach data dropped: {e}");
            return Ok(());
        }
    };
    match attach.kind {
        AttachType::Handle => {
            if let Some(conn) = state.users.conn_of(rsp.user_id, attach.handle) {
                rsp.attach_data = None;
                pdu.set_msg(&rsp)?;
                let _ = net.send_pdu(conn, &pdu);
            } else {
                log::debug!("users status for user {}: client gone", rsp.user_id);
            }
        }
        AttachType::PduForPush => {
            let Some(stat) = rsp.user_stat_list.first() else {
                return Ok(());
            };
            push_serv_conn::push_after_status(net, state, stat.status, &attach.pdu)?;
        }
        AttachType::HandleAndPduForFile => {
            let Some(stat) = rsp.user_stat_list.first() else {
                return Ok(());
            };
            file_handler::transfer_after_status(net, state, stat.status, &attach, pdu.seq_num())?;
        }
        other => log::warn!("users status response with attach type {other:?} ignored"),
    }
    Ok(())
}
