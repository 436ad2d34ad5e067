//! Logins, logouts and kicks of client connections: the C++ `MsgConn.cpp`
//! (`_HandleLoginRequest`, the success half of
//! `CDBServConn::_HandleValidateResponse`, `_HandleLoginOutRequest`,
//! `_HandleClientDeviceToken`, `_HandleKickPCClient`, `SendUserStatusUpdate`)
//! and `ImUser.cpp` (`KickOutSameClientType`).
//!
//! Differences from the C++, on purpose:
//! - While the server stops (SIGTERM) a login is refused with
//!   `REFUSE_REASON_MSG_SERVER_FULL`, so the client asks login_server
//!   again.
//! - With no usable db_proxy link a login waits for one (bounded, see
//!   [`crate::peer_hold`]) instead of being refused at once.
//! - A kicked connection (duplicate login, mobile kick) is closed once the
//!   kick notice is written, and counted out (login_servers, route_servers)
//!   at the kick; the C++ leaves it open, still receiving the user's
//!   messages and counted, until the client goes.
//! - `CID_LOGIN_RES_DEVICETOKEN` carries the user id (the C++ leaves this
//!   required field unset).

use super::checks::{is_full, login_refusal};
use super::Handled;
use crate::attach_data::AttachData;
use crate::im_user::{is_mobile, UserConn};
use crate::peer_hold::Fallback;
use crate::peers::DbPick;
use crate::state::MsgState;
use base::tick::unix_time;
use base::ImPdu;
use netlib::{ConnId, Reactor};
use tt_proto::IM::BaseDefine::{ClientType, KickReasonType, ResultType, UserStatType};
use tt_proto::IM::Login::{
    IMDeviceTokenReq, IMDeviceTokenRsp, IMKickPCClientReq, IMKickPCClientRsp, IMKickUser,
    IMLoginReq, IMLoginRes, IMLogoutRsp,
};
use tt_proto::IM::Server::IMValidateReq;

/// The C++ `result_string` for a login refused because a peer is missing.
pub const SERVER_ERROR_STRING: &str = "服务端异常";

/// The `result_string` of a login refused at `MaxConnCnt`: login_server's
/// text for "all msg_servers full".
pub const SERVER_FULL_STRING: &str = "负载过高";

/// `IMLoginRes` refusing a login with `code`, written fully before the
/// connection is closed.
fn refuse_login(net: &mut Reactor<MsgState>, id: ConnId, seq: u16, code: ResultType, text: &str) {
    let res = IMLoginRes {
        server_time: unix_time(),
        result_code: code,
        result_string: Some(text.to_string()),
        online_status: None,
        user_info: None,
    };
    let _ = net.send_msg(id, seq, &res);
    net.close_after_flush(id);
}

/// Not in the C++: `MaxConnCnt` connections are logged in here, so a
/// login (asked for, or just validated by db_proxy) is refused.
pub fn refuse_if_full(net: &mut Reactor<MsgState>, state: &MsgState, id: ConnId, seq: u16) -> bool {
    if !is_full(state.users.conn_count(), state.me.max_conn_cnt) {
        return false;
    }
    log::warn!(
        "client {id}: login refused: {} connections logged in, MaxConnCnt={}",
        state.users.conn_count(),
        state.me.max_conn_cnt
    );
    refuse_login(
        net,
        id,
        seq,
        ResultType::REFUSE_REASON_MSG_SERVER_FULL,
        SERVER_FULL_STRING,
    );
    true
}

/// `_HandleLoginRequest`: checks the peers, then asks db_proxy to validate
/// the user with attach data naming this connection.
pub(super) fn handle_login_request(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    pdu: &ImPdu,
) -> Handled {
    let Some(conn) = state.conns.get(&id) else {
        return Ok(());
    };
    if !conn.login_name.is_empty() {
        log::warn!("client {id}: duplicate login request on the same connection ignored");
        return Ok(());
    }
    // Stopping (SIGTERM): clients go to another msg_server.
    let stopping = state
        .shutdown
        .is_some()
        .then_some(ResultType::REFUSE_REASON_MSG_SERVER_FULL);
    if let Some(reason) = stopping.or_else(|| {
        login_refusal(
            state.db.can_take(),
            state.login.peers.any_open(),
            state.route.peers.any_open(),
        )
    }) {
        log::warn!("client {id}: login refused: {reason:?}");
        state.metrics.logins.inc("refused_no_peer");
        refuse_login(net, id, pdu.seq_num(), reason, SERVER_ERROR_STRING);
        return Ok(());
    }
    if refuse_if_full(net, state, id, pdu.seq_num()) {
        return Ok(());
    }
    let req: IMLoginReq = pdu.msg()?;
    let mut online_status = req.online_status as u32;
    if !(UserStatType::USER_STATUS_ONLINE as u32..=UserStatType::USER_STATUS_LEAVE as u32)
        .contains(&online_status)
    {
        log::warn!("login: online status {online_status} wrong, taken as online");
        online_status = UserStatType::USER_STATUS_ONLINE as u32;
    }
    let Some(conn) = state.conns.get_mut(&id) else {
        return Ok(());
    };
    conn.login_name = req.user_name.clone();
    conn.client_version = req.client_version.clone().unwrap_or_default();
    conn.client_type = req.client_type as u32;
    conn.online_status = online_status;
    log::info!(
        "login request on {id}: user_name={}, status={online_status}, client_type={}, client={}",
        conn.login_name,
        conn.client_type,
        conn.client_version
    );
    let validate = IMValidateReq {
        user_name: req.user_name,
        password: req.password,
        attach_data: Some(AttachData::handle(id).encode()),
    };
    // With no usable db_proxy link the validation waits (bounded); past
    // the bound the login is refused as the C++ refuses it at once.
    let refused = IMLoginRes {
        server_time: unix_time(),
        result_code: ResultType::REFUSE_REASON_NO_DB_SERVER,
        result_string: Some(SERVER_ERROR_STRING.to_string()),
        online_status: None,
        user_info: None,
    };
    let refused = ImPdu::for_msg(pdu.seq_num(), &refused)?;
    let fallback = Fallback::Reply {
        client: id,
        pdu: refused,
        close: true,
    };
    state
        .db
        .send_or_answer(net, DbPick::Login, pdu.seq_num(), &validate, fallback)
}

/// The success half of `_HandleValidateResponse`, once db_proxy accepted
/// the login on `id`: kicks older connections of the same client class
/// (here and, through route_server, on other msg_servers), files the
/// connection under its user and reports it online.
pub fn login_validated(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    user_id: u32,
    nick_name: &str,
) {
    let Some(conn) = state.conns.get(&id) else {
        return;
    };
    let (client_type, online_status, login_name) = (
        conn.client_type,
        conn.online_status,
        conn.login_name.clone(),
    );
    kick_same_client_class(
        net,
        state,
        user_id,
        client_type,
        KickReasonType::KICK_REASON_DUPLICATE_USER,
        Some(id),
    );
    state.route.kick_user(
        net,
        user_id,
        ClientType::from(client_type as i32),
        KickReasonType::KICK_REASON_DUPLICATE_USER,
    );
    log::info!("user_name: {login_name}, uid: {user_id} logged in on {id}");
    if let Some(conn) = state.conns.get_mut(&id) {
        conn.user_id = user_id;
        conn.open = true;
    }
    state.users.add_conn(
        user_id,
        &login_name,
        nick_name,
        id,
        UserConn {
            client_type,
            online_status,
        },
    );
    send_user_status_update(
        net,
        state,
        user_id,
        client_type,
        UserStatType::USER_STATUS_ONLINE,
    );
}

/// `CImUser::KickOutSameClientType` + `HandleKickUser`: tells each
/// connection of `user_id` of the same client class as `client_type` (but
/// `except`) that it is kicked, and closes it once that is written.
pub fn kick_same_client_class(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    user_id: u32,
    client_type: u32,
    reason: KickReasonType,
    except: Option<ConnId>,
) {
    let Some(user) = state.users.get(user_id) else {
        return;
    };
    let targets = user.same_class_targets(client_type, except);
    let login_name = user.login_name.clone();
    let kick = IMKickUser {
        user_id,
        kick_reason: reason,
    };
    let out = match ImPdu::for_msg(0, &kick) {
        Ok(out) => out,
        Err(e) => {
            log::error!("kick of user {user_id} not sent: {e}");
            return;
        }
    };
    for t in targets {
        log::info!("kick user {user_id} ({login_name}) on {t}: {reason:?}");
        let _ = net.send_pdu(t, &out);
        let kicked_type = match state.conns.get_mut(&t) {
            Some(c) => {
                c.kicked = true;
                c.client_type
            }
            None => client_type,
        };
        // Counted out with its connection, now (as the C++ `Close` does):
        // a login_server that links before the socket closes is then told
        // of it once, by its `IMMsgServInfo`.
        if state.users.remove_conn(user_id, t) {
            send_user_status_update(
                net,
                state,
                user_id,
                kicked_type,
                UserStatType::USER_STATUS_OFFLINE,
            );
        }
        net.close_after_flush(t);
    }
}

/// `SendUserStatusUpdate`: a login or logout is counted by every
/// login_server and reported to every route_server.
pub fn send_user_status_update(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    user_id: u32,
    client_type: u32,
    status: UserStatType,
) {
    let online = status == UserStatType::USER_STATUS_ONLINE;
    if let Some(ms) = state.login.user_cnt_update(net, user_id, online) {
        let timer = net.register_timer(ms, |net, state: &mut MsgState| {
            state.login.flush_cnt(net);
        });
        state.login.armed(timer);
    }
    state
        .route
        .user_status_update(net, user_id, client_type, status);
}

/// `_HandleLoginOutRequest`: clears the device token, answers and closes.
pub(super) fn handle_logout(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    pdu: &ImPdu,
) -> Handled {
    let (user_id, client_type) = state
        .conns
        .get(&id)
        .map_or((0, 0), |c| (c.user_id, c.client_type));
    log::info!("logout, user_id={user_id}, client_type={client_type}");
    let req = IMDeviceTokenReq {
        user_id,
        device_token: String::new(),
        client_type: None,
        attach_data: None,
    };
    state.db.send_msg(net, DbPick::Other, pdu.seq_num(), &req);
    let rsp = IMLogoutRsp { result_code: 0 };
    let _ = net.send_msg(id, pdu.seq_num(), &rsp);
    net.close_after_flush(id);
    Ok(())
}

/// `_HandleClientDeviceToken`: mobile clients only; answered at once, then
/// stored by db_proxy.
pub(super) fn handle_device_token(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    pdu: ImPdu,
) -> Handled {
    let Some(conn) = state.conns.get(&id) else {
        return Ok(());
    };
    let (user_id, client_type) = (conn.user_id, conn.client_type);
    if !is_mobile(client_type) {
        log::info!("device token from user {user_id}: not a mobile client, ignored");
        return Ok(());
    }
    let mut req: IMDeviceTokenReq = pdu.msg()?;
    log::info!(
        "device token, user_id={user_id}, token={}",
        req.device_token
    );
    let rsp = IMDeviceTokenRsp {
        user_id,
        attach_data: None,
    };
    let _ = net.send_msg(id, pdu.seq_num(), &rsp);
    req.user_id = user_id;
    req.client_type = Some(ClientType::from(client_type as i32));
    state.db.send_as(net, DbPick::Other, pdu, &req)?;
    Ok(())
}

/// `_HandleKickPCClient`: a mobile client logs its user's PC clients out,
/// here and on other msg_servers.
pub(super) fn handle_kick_pc_client(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    pdu: &ImPdu,
) -> Handled {
    let _req: IMKickPCClientReq = pdu.msg()?;
    let Some(conn) = state.conns.get(&id) else {
        return Ok(());
    };
    let (user_id, client_type) = (conn.user_id, conn.client_type);
    if !is_mobile(client_type) {
        log::warn!("kick PC client from user {user_id}: must come from a mobile client");
        return Ok(());
    }
    log::info!("kick PC client, user_id={user_id}");
    let mac = ClientType::CLIENT_TYPE_MAC;
    kick_same_client_class(
        net,
        state,
        user_id,
        mac as u32,
        KickReasonType::KICK_REASON_MOBILE_KICK,
        Some(id),
    );
    state
        .route
        .kick_user(net, user_id, mac, KickReasonType::KICK_REASON_MOBILE_KICK);
    let rsp = IMKickPCClientRsp {
        user_id,
        result_code: 0,
    };
    let _ = net.send_msg(id, pdu.seq_num(), &rsp);
    Ok(())
}
