//! Links to db_proxy_server: the C++ `DBServConn.cpp` (`CDBServConn`, the
//! `_Handle*Response` replies).
//!
//! The links themselves (`ConcurrentDBConnCnt` per db_proxy, a login half
//! and the rest) and sending on them are [`crate::peers::DbServers`].
//!
//! A reply names its client through the attach data of the request; a
//! reply whose client has gone is dropped with a debug line.
//!
//! Differences from the C++: a link that confirms sends what was held
//! while no link was usable, and one that closes sends its read-only
//! requests in flight again on another (see [`crate::peer_hold`]); a
//! stored one-to-one message asks for the receiver's push tokens only while
//! a push_server is linked (the C++ always asks, and drops the push).

use crate::attach_data::AttachData;
use crate::file_handler;
use crate::group_chat;
use crate::msg_conn;
use crate::push_serv_conn;
use crate::state::{send_all, MsgState};
use base::msg_type::is_group_msg;
use base::pdu::PduError;
use base::tick::unix_time;
use base::ImPdu;
use netlib::PeerLink;
use netlib::{ConnId, Ctx, Heartbeat, ImConn, Reactor};
use tt_proto::cid;
use tt_proto::IM::BaseDefine::{ResultType, SessionType, UserInfo};
use tt_proto::IM::Buddy::{
    IMAllUserRsp, IMChangeAvatarRsp, IMChangeSignInfoRsp, IMDepartmentRsp,
    IMRecentContactSessionRsp, IMRemoveSessionRsp, IMSignInfoChangedNotify, IMUsersInfoRsp,
};
use tt_proto::IM::Login::{IMDeviceTokenRsp, IMLoginRes, IMPushShieldRsp, IMQueryPushShieldRsp};
use tt_proto::IM::Message::{
    IMGetLatestMsgIdRsp, IMGetMsgByIdRsp, IMGetMsgListRsp, IMMsgData, IMUnreadMsgCntRsp,
};
use tt_proto::IM::Server::{IMGetDeviceTokenReq, IMValidateRsp};

/// `CDBServConn`: the handler of link `idx` of the db_proxy list.
#[derive(Debug)]
pub struct DbServConn {
    link: PeerLink,
}

impl DbServConn {
    /// The handler for link `idx`.
    pub fn new(idx: usize) -> DbServConn {
        DbServConn {
            link: PeerLink::new("db_proxy", idx),
        }
    }
}

impl ImConn<MsgState> for DbServConn {
    /// `OnConfirm`.
    fn on_confirm(&mut self, cx: &mut Ctx<'_, MsgState>) {
        let addr = cx.peer_addr();
        self.link.confirm(&mut cx.state.db.peers, cx.id, addr);
        // Requests held while no link was usable go out now, in order.
        cx.state.db.flush(cx.net);
    }

    /// `OnClose`: the link is reconnected after the back-off.
    fn on_close(&mut self, cx: &mut Ctx<'_, MsgState>) {
        let addr = cx.peer_addr();
        self.link.closed(&mut cx.state.db.peers, cx.id, addr);
        // Read-only requests in flight on it go to another link (or wait).
        cx.state.db.link_lost(cx.net, cx.id);
        // Group member lists asked on this link may never come back.
        group_chat::refetch_pending(cx.net, cx.state);
    }

    /// `OnTimer`: heartbeat after 5 s of quiet, close after 30 s of silence.
    fn on_timer(&mut self, cx: &mut Ctx<'_, MsgState>, now: u64) {
        cx.keep_alive(Heartbeat::SERVER, now);
    }

    /// `HandlePdu`: a reply that does not decode is logged and dropped, as
    /// the C++ does; the link and the other replies on it carry on.
    fn on_pdu(&mut self, cx: &mut Ctx<'_, MsgState>, mut pdu: ImPdu) {
        cx.state.db.answered(cx.id, &mut pdu);
        if let Err(e) = handle_reply(cx.net, cx.state, cx.id, pdu) {
            log::warn!("db_proxy link {}: reply dropped: {e}", cx.id);
        }
    }
}

/// `CDBServConn::HandlePdu`'s switch.
fn handle_reply(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    link: ConnId,
    pdu: ImPdu,
) -> Result<(), PduError> {
    match pdu.command_id() {
        cid::OTHER_HEARTBEAT => {}
        cid::OTHER_VALIDATE_RSP => handle_validate_response(net, state, &pdu)?,
        cid::LOGIN_RES_DEVICETOKEN => {
            let rsp: IMDeviceTokenRsp = pdu.msg()?;
            log::debug!("device token stored, user_id={}", rsp.user_id);
        }
        cid::LOGIN_RES_PUSH_SHIELD => {
            state.relay_to_client::<IMPushShieldRsp>(net, pdu)?;
        }
        cid::LOGIN_RES_QUERY_PUSH_SHIELD => {
            state.relay_to_client::<IMQueryPushShieldRsp>(net, pdu)?;
        }
        cid::MSG_UNREAD_CNT_RESPONSE => {
            state.relay_to_client::<IMUnreadMsgCntRsp>(net, pdu)?;
        }
        cid::MSG_LIST_RESPONSE => {
            state.relay_to_client::<IMGetMsgListRsp>(net, pdu)?;
        }
        cid::MSG_GET_BY_MSG_ID_RES => {
            state.relay_to_client::<IMGetMsgByIdRsp>(net, pdu)?;
        }
        cid::MSG_DATA => handle_msg_data(net, state, link, pdu)?,
        cid::MSG_GET_LATEST_MSG_ID_RSP => {
            state.relay_to_client::<IMGetLatestMsgIdRsp>(net, pdu)?;
        }
        cid::BUDDY_LIST_RECENT_CONTACT_SESSION_RESPONSE => {
            state.relay_to_client::<IMRecentContactSessionRsp>(net, pdu)?;
        }
        cid::BUDDY_LIST_ALL_USER_RESPONSE => {
            state.relay_to_client::<IMAllUserRsp>(net, pdu)?;
        }
        cid::BUDDY_LIST_USER_INFO_RESPONSE => {
            state.relay_to_client::<IMUsersInfoRsp>(net, pdu)?;
        }
        cid::BUDDY_LIST_REMOVE_SESSION_RES => {
            state.relay_to_client::<IMRemoveSessionRsp>(net, pdu)?;
        }
        cid::BUDDY_LIST_CHANGE_AVATAR_RESPONSE => handle_change_avatar_response(net, state, pdu)?,
        cid::BUDDY_LIST_CHANGE_SIGN_INFO_RESPONSE => {
            handle_change_sign_info_response(net, state, pdu)?
        }
        cid::BUDDY_LIST_DEPARTMENT_RESPONSE => {
            state.relay_to_client::<IMDepartmentRsp>(net, pdu)?;
        }
        cid::OTHER_GET_DEVICE_TOKEN_RSP => push_serv_conn::handle_device_tokens(net, state, &pdu)?,
        cid::OTHER_GET_SHIELD_RSP => group_chat::handle_get_shield_response(net, state, &pdu)?,
        cid::OTHER_STOP_RECV_PACKET => {
            log::warn!("db_proxy link {link} stops receiving: no more requests on it");
            state.db.peers.stop_using(link);
        }
        cid::GROUP_NORMAL_LIST_RESPONSE..=cid::GROUP_CHANGE_MEMBER_NOTIFY => {
            group_chat::handle_db_reply(net, state, pdu)?
        }
        cid::FILE_HAS_OFFLINE_RES => file_handler::handle_has_offline_response(net, state, pdu)?,
        other => log::warn!("db_proxy: unexpected command {other:#06x} ignored"),
    }
    Ok(())
}

/// The `IMLoginRes` of a validated login: the user info db_proxy found.
pub fn login_success(
    result_string: Option<String>,
    online_status: u32,
    info: UserInfo,
) -> IMLoginRes {
    IMLoginRes {
        server_time: unix_time(),
        result_code: ResultType::REFUSE_REASON_NONE,
        result_string,
        online_status: Some((online_status as i32).into()),
        user_info: Some(info),
    }
}

/// `_HandleValidateResponse`: finishes the login of the connection named
/// by the attach data, if it is still waiting for it.
fn handle_validate_response(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    pdu: &ImPdu,
) -> Result<(), PduError> {
    let rsp: IMValidateRsp = pdu.msg()?;
    log::info!(
        "validate response, user_name={}, result={}",
        rsp.user_name,
        rsp.result_code
    );
    let conn = match AttachData::decode(rsp.attach_data.as_deref().unwrap_or_default()) {
        Ok(a) => ConnId::from_u64(a.handle),
        Err(e) => {
            log::warn!("validate response with unusable attach data dropped: {e}");
            return Ok(());
        }
    };
    let Some(client) = state.conns.get(&conn) else {
        log::info!("validate response for {}: client gone", rsp.user_name);
        return Ok(());
    };
    if client.open || client.login_name != rsp.user_name {
        log::warn!(
            "no such connection waiting for validation, user_name={}",
            rsp.user_name
        );
        return Ok(());
    }
    let online_status = client.online_status;
    match (rsp.result_code, rsp.user_info) {
        (0, Some(info)) => {
            // Logins validated at once may pass the check made when they
            // were asked for; this one decides.
            if msg_conn::login::refuse_if_full(net, state, conn, pdu.seq_num()) {
                return Ok(());
            }
            state.metrics.logins.inc("ok");
            msg_conn::login::login_validated(net, state, conn, info.user_id, &info.user_nick_name);
            let res = login_success(rsp.result_string, online_status, info);
            let _ = net.send_msg(conn, pdu.seq_num(), &res);
        }
        (code, _) => {
            log::info!("login of {} refused by db_proxy ({code})", rsp.user_name);
            state.metrics.logins.inc("refused_by_db");
            let res = IMLoginRes {
                server_time: unix_time(),
                result_code: ResultType::REFUSE_REASON_DB_VALIDATE_FAILED,
                result_string: rsp.result_string,
                online_status: None,
                user_info: None,
            };
            let _ = net.send_msg(conn, pdu.seq_num(), &res);
            net.close_after_flush(conn);
        }
    }
    Ok(())
}

/// `_HandleMsgData`: a one-to-one message was stored (or not: msg id 0).
/// Acknowledged to its sender, sent to route_server for the other
/// msg_servers, delivered to both users' connections here, and the
/// receiver's device tokens are asked for a push.
fn handle_msg_data(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    link: ConnId,
    mut pdu: ImPdu,
) -> Result<(), PduError> {
    let mut msg: IMMsgData = pdu.msg()?;
    if is_group_msg(msg.msg_type) {
        return group_chat::handle_group_message(net, state, pdu, msg);
    }
    let (from, to, msg_id) = (msg.from_user_id, msg.to_session_id, msg.msg_id);
    if msg_id == 0 {
        log::warn!("message {from}->{to}: storing failed, dropped");
        return Ok(());
    }
    log::debug!("message stored, {from}->{to}, msg_id={msg_id}");
    let from_conn =
        state.ack_and_route_stored(net, &mut pdu, &mut msg, SessionType::SESSION_TYPE_SINGLE)?;
    let n = state.deliver_msg(net, from, &pdu, msg_id, from_conn, from)
        + state.deliver_msg(net, to, &pdu, msg_id, None, from);
    let label = crate::metrics::msg_type_label(msg.msg_type);
    state.metrics.msgs_out.add(label, n);
    // The receiver's push tokens, for a push: asked only while a
    // push_server is linked (the C++ always asks; without a link the push
    // would be dropped anyway, and the ask is a db_proxy request and a
    // Redis round trip per message).
    if state.push.master.is_some() {
        let req = IMGetDeviceTokenReq {
            user_id: vec![to],
            attach_data: Some(pdu.body().to_vec()),
        };
        let _ = net.send_msg(link, 0, &req);
    }
    Ok(())
}

/// `_HandleChangeAvatarResponse`: to every connection of the user.
fn handle_change_avatar_response(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    mut pdu: ImPdu,
) -> Result<(), PduError> {
    let mut rsp: IMChangeAvatarRsp = pdu.msg()?;
    log::info!(
        "change avatar response, user_id={}, result={}",
        rsp.user_id,
        rsp.result_code
    );
    if let Some(user) = state.users.get(rsp.user_id) {
        rsp.attach_data = None;
        pdu.set_msg(&rsp)?;
        send_all(net, &user.targets(None), &pdu);
    }
    Ok(())
}

/// `_HandleChangeSignInfoResponse`: to the client that asked; on success
/// every msg_server (this one too, through route_server) tells its users.
fn handle_change_sign_info_response(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    pdu: ImPdu,
) -> Result<(), PduError> {
    let rsp = state.relay_to_client::<IMChangeSignInfoRsp>(net, pdu)?;
    if rsp.result_code == 0 {
        let notify = IMSignInfoChangedNotify {
            changed_user_id: rsp.user_id,
            sign_info: rsp.sign_info.unwrap_or_default(),
        };
        state.route.msg_to_master(net, 0, &notify);
    }
    Ok(())
}
