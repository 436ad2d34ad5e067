//! One client connection: the C++ `MsgConn.cpp` (`CMsgConn`,
//! `msg_conn_timer_callback`, the `_Handle*` client commands).
//!
//! What a connection did so far (its login, user, client type, messages
//! awaiting acknowledgement) lives in [`ClientConn`] in the server state,
//! so replies arriving on other links can reach it; [`MsgConn`] is the
//! handler that dispatches the client's PDUs.
//!
//! Differences from the C++, on purpose:
//! - Until its login succeeds, a connection gets answers to nothing but
//!   login and heartbeat; any other command is ignored the first time and
//!   closes the connection the second time. (The C++ runs every command
//!   for user id 0.)
//! - A kicked connection (duplicate login) is closed once the kick notice
//!   is written; the C++ leaves it open, still receiving the user's
//!   messages, until the client goes.
//! - The "message to yourself" check compares the receiver with the
//!   logged-in user, not with the `from_user_id` the client wrote.
//! - `CID_LOGIN_RES_DEVICETOKEN` carries the user id (the C++ leaves this
//!   required field unset).

use crate::attach_data::AttachData;
use crate::db_serv_conn::{self, DbPick};
use crate::file_handler;
use crate::group_chat;
use crate::im_user::{is_mobile, UserConn};
use crate::state::{send_to_user, MsgState};
use crate::{login_serv_conn, route_serv_conn};
use base::pdu::PduError;
use base::tick::{monotonic_ms, unix_time};
use base::ImPdu;
use netlib::{ConnId, Ctx, Heartbeat, ImConn, Reactor};
use std::collections::VecDeque;
use tt_proto::IM::BaseDefine::{
    ClientType, KickReasonType, MsgType, ResultType, SessionType, UserStatType,
};
use tt_proto::IM::Buddy::{
    IMAllUserReq, IMChangeAvatarReq, IMChangeSignInfoReq, IMDepartmentReq,
    IMRecentContactSessionReq, IMRemoveSessionNotify, IMRemoveSessionReq, IMUsersInfoReq,
    IMUsersStatReq,
};
use tt_proto::IM::Login::{
    IMDeviceTokenReq, IMDeviceTokenRsp, IMKickPCClientReq, IMKickPCClientRsp, IMKickUser,
    IMLoginReq, IMLoginRes, IMLogoutRsp, IMPushShieldReq, IMQueryPushShieldReq,
};
use tt_proto::IM::Message::{
    IMClientTimeRsp, IMGetLatestMsgIdReq, IMGetMsgByIdReq, IMGetMsgListReq, IMMsgData,
    IMMsgDataAck, IMMsgDataReadAck, IMMsgDataReadNotify, IMUnreadMsgCntReq,
};
use tt_proto::IM::Server::IMValidateReq;
use tt_proto::IM::SwitchService::IMP2PCmdMsg;
use tt_proto::{cid, Command};

/// `TIMEOUT_WATI_LOGIN_RESPONSE`: a connection not logged in after 15 s is closed.
pub const TIMEOUT_WAIT_LOGIN_RESPONSE: u64 = 15_000;
/// `TIMEOUT_WAITING_MSG_DATA_ACK`: a delivered message not acknowledged in
/// 15 s counts as missed.
pub const TIMEOUT_WAITING_MSG_DATA_ACK: u64 = 15_000;
/// `MAX_MSG_CNT_PER_SECOND`: a user sends at most 20 messages per second
/// per connection; the rest are dropped.
pub const MAX_MSG_CNT_PER_SECOND: u32 = 20;
/// Commands before login tolerated: the next one closes the connection.
pub const MAX_VIOLATIONS_BEFORE_LOGIN: u32 = 1;
/// The C++ `result_string` for a login refused because a peer is missing.
pub const SERVER_ERROR_STRING: &str = "服务端异常";

/// `msg_ack_t`: a message delivered to this connection, awaiting its ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgAck {
    /// `msg_id`.
    pub msg_id: u32,
    /// `from_id`: the sender (the session, seen from the receiver).
    pub from_id: u32,
    /// When it was sent (monotonic ms).
    pub timestamp: u64,
}

/// `CMsgConn`'s fields: one client connection's state.
#[derive(Debug, Clone, Default)]
pub struct ClientConn {
    /// `m_login_name`: set by the login request (empty before).
    pub login_name: String,
    /// `m_user_id`: set when the login is validated (0 before).
    pub user_id: u32,
    /// `m_bOpen`: the login was validated.
    pub open: bool,
    /// `m_bKickOff`: a newer login of the same client class kicked it.
    pub kicked: bool,
    /// `m_login_time`: when the connection arrived (monotonic ms).
    pub login_time: u64,
    /// `m_client_type` (`ClientType` value; 0 before login).
    pub client_type: u32,
    /// `m_client_version`.
    pub client_version: String,
    /// `m_online_status`.
    pub online_status: u32,
    /// `m_send_msg_list`: delivered messages awaiting acknowledgement, oldest first.
    pub send_list: VecDeque<MsgAck>,
    /// `m_msg_cnt_per_sec`: messages sent in the current second.
    pub msg_cnt_per_sec: u32,
    /// Commands received before login (other than login and heartbeat).
    pub violations: u32,
}

impl ClientConn {
    /// A connection that just arrived at `now`.
    pub fn new(now: u64) -> ClientConn {
        ClientConn {
            login_time: now,
            online_status: UserStatType::USER_STATUS_OFFLINE as u32,
            ..ClientConn::default()
        }
    }

    /// `AddToSendList`.
    pub fn add_to_send_list(&mut self, msg_id: u32, from_id: u32, now: u64) {
        self.send_list.push_back(MsgAck {
            msg_id,
            from_id,
            timestamp: now,
        });
    }

    /// `DelFromSendList`: the first entry for this message is acknowledged.
    pub fn del_from_send_list(&mut self, msg_id: u32, from_id: u32) {
        if let Some(pos) = self
            .send_list
            .iter()
            .position(|m| m.msg_id == msg_id && m.from_id == from_id)
        {
            self.send_list.remove(pos);
        }
    }

    /// The expiry loop of `OnTimer`: drops and returns the messages not
    /// acknowledged within [`TIMEOUT_WAITING_MSG_DATA_ACK`] of `now`.
    pub fn expire_send_list(&mut self, now: u64) -> Vec<MsgAck> {
        let mut missed = Vec::new();
        while let Some(front) = self.send_list.front() {
            if now >= front.timestamp + TIMEOUT_WAITING_MSG_DATA_ACK {
                missed.extend(self.send_list.pop_front());
            } else {
                break;
            }
        }
        missed
    }
}

/// What a client sent before its login counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeforeLogin {
    /// Login or heartbeat: handled.
    Allowed,
    /// Anything else, tolerated once: ignored.
    Ignored,
    /// Anything else again: the connection is closed.
    Close,
}

/// Whether `command_id` may run on a connection whose login is not
/// validated, counting the violation in `conn`.
pub fn check_before_login(conn: &mut ClientConn, command_id: u16) -> BeforeLogin {
    if conn.open || matches!(command_id, cid::LOGIN_REQ_USERLOGIN | cid::OTHER_HEARTBEAT) {
        return BeforeLogin::Allowed;
    }
    conn.violations += 1;
    if conn.violations > MAX_VIOLATIONS_BEFORE_LOGIN {
        BeforeLogin::Close
    } else {
        BeforeLogin::Ignored
    }
}

/// Why a login is refused before asking db_proxy (`_HandleLoginRequest`):
/// no db_proxy, no login_server or no route_server link.
pub fn login_refusal(has_db: bool, has_login: bool, has_route: bool) -> Option<ResultType> {
    if !has_db {
        Some(ResultType::REFUSE_REASON_NO_DB_SERVER)
    } else if !has_login {
        Some(ResultType::REFUSE_REASON_NO_LOGIN_SERVER)
    } else if !has_route {
        Some(ResultType::REFUSE_REASON_NO_ROUTE_SERVER)
    } else {
        None
    }
}

/// `CMsgConn`: the handler of one client connection.
#[derive(Debug, Default)]
pub struct MsgConn;

type Handled = Result<(), PduError>;

impl ImConn<MsgState> for MsgConn {
    /// A client may send at most [`CLIENT_MAX_PDU_LEN`](base::pdu::CLIENT_MAX_PDU_LEN)
    /// bytes in one PDU (the C++ takes up to 4 GiB and decodes, forwards
    /// and answers whatever arrives).
    fn max_pdu_len(&self) -> u32 {
        base::pdu::CLIENT_MAX_PDU_LEN
    }

    /// `OnConnect`: the connection joins `g_msg_conn_map`.
    fn on_connect(&mut self, cx: &mut Ctx<'_, MsgState>) {
        log::debug!("client {} connected from {:?}", cx.id, cx.peer_addr());
        cx.state
            .conns
            .insert(cx.id, ClientConn::new(monotonic_ms()));
    }

    /// `HandlePdu`. A body that does not decode (or lacks a required
    /// field) closes the connection, with a log line; the C++ logs and
    /// ignores such a PDU (`CHECK_PB_PARSE_MSG`) and keeps the client.
    fn on_pdu(&mut self, cx: &mut Ctx<'_, MsgState>, pdu: ImPdu) {
        let command = pdu.command_id();
        let Some(conn) = cx.state.conns.get_mut(&cx.id) else {
            return;
        };
        match check_before_login(conn, command) {
            BeforeLogin::Allowed => {}
            BeforeLogin::Ignored => {
                log::warn!(
                    "client {}: command {command:#06x} before login ignored",
                    cx.id
                );
                return;
            }
            BeforeLogin::Close => {
                log::warn!(
                    "client {}: command {command:#06x} before login again, closing",
                    cx.id
                );
                cx.close();
                return;
            }
        }
        if let Err(e) = dispatch(cx, pdu) {
            log::warn!("client {} sent a bad PDU, closing it: {e}", cx.id);
            cx.close();
        }
    }

    /// `OnTimer`: the per-second message budget, client timeouts, the
    /// 15 s login wait and the unacknowledged-message expiry.
    fn on_timer(&mut self, cx: &mut Ctx<'_, MsgState>, now: u64) {
        let Some(conn) = cx.state.conns.get_mut(&cx.id) else {
            return;
        };
        conn.msg_cnt_per_sec = 0;
        let (open, login_time, user_id) = (conn.open, conn.login_time, conn.user_id);
        let rule = if is_mobile(conn.client_type) {
            Heartbeat::MOBILE_CLIENT
        } else {
            Heartbeat::CLIENT
        };
        if !cx.keep_alive(rule, now) {
            return;
        }
        if !open && now > login_time + TIMEOUT_WAIT_LOGIN_RESPONSE {
            log::info!("client {}: login timeout, closing", cx.id);
            cx.close();
            return;
        }
        let Some(conn) = cx.state.conns.get_mut(&cx.id) else {
            return;
        };
        for m in conn.expire_send_list(now) {
            log::warn!(
                "a message missed, msg_id={}, {}->{user_id}",
                m.msg_id,
                m.from_id
            );
            cx.state.stats.down_miss += 1;
        }
    }

    /// `OnClose`/`Close`: the connection leaves every table; a validated
    /// one is reported offline to login_server and route_server.
    fn on_close(&mut self, cx: &mut Ctx<'_, MsgState>) {
        let Some(conn) = cx.state.conns.remove(&cx.id) else {
            return;
        };
        log::info!(
            "client {} closed, user_id={}, login_name={:?}",
            cx.id,
            conn.user_id,
            conn.login_name
        );
        if conn.open {
            cx.state.users.remove_conn(conn.user_id, cx.id);
            send_user_status_update(
                cx.net,
                cx.state,
                conn.user_id,
                conn.client_type,
                UserStatType::USER_STATUS_OFFLINE,
            );
        }
    }
}

/// `HandlePdu`'s switch.
fn dispatch(cx: &mut Ctx<'_, MsgState>, pdu: ImPdu) -> Handled {
    let user_id = cx.state.conns.get(&cx.id).map_or(0, |c| c.user_id);
    let (net, state, id) = (&mut *cx.net, &mut *cx.state, cx.id);
    // A request db_proxy answers by attach data (`with_attach`) or not.
    macro_rules! to_db {
        ($msg:ty, $pick:expr, $with_attach:expr) => {
            db_serv_conn::forward::<$msg>(net, state, id, user_id, pdu, $pick, $with_attach)
        };
    }
    use DbPick::{Login as ForLogin, Other};
    match pdu.command_id() {
        cid::OTHER_HEARTBEAT => {
            // `_HandleHeartBeat`: echoed.
            let _ = net.send_pdu(id, &pdu);
            Ok(())
        }
        cid::LOGIN_REQ_USERLOGIN => handle_login_request(net, state, id, &pdu),
        cid::LOGIN_REQ_LOGINOUT => handle_logout(net, state, id, &pdu),
        cid::LOGIN_REQ_DEVICETOKEN => handle_device_token(net, state, id, pdu),
        cid::LOGIN_REQ_KICKPCCLIENT => handle_kick_pc_client(net, state, id, &pdu),
        cid::LOGIN_REQ_PUSH_SHIELD => to_db!(IMPushShieldReq, Other, true),
        cid::LOGIN_REQ_QUERY_PUSH_SHIELD => to_db!(IMQueryPushShieldReq, Other, true),
        cid::MSG_DATA => handle_msg_data(net, state, id, pdu),
        cid::MSG_DATA_ACK => handle_msg_data_ack(state, id, &pdu),
        cid::MSG_TIME_REQUEST => {
            // `_HandleClientTimeRequest`.
            let rsp = IMClientTimeRsp {
                server_time: unix_time(),
            };
            let _ = net.send_msg(id, pdu.seq_num(), &rsp);
            Ok(())
        }
        cid::MSG_LIST_REQUEST => to_db!(IMGetMsgListReq, ForLogin, true),
        cid::MSG_GET_BY_MSG_ID_REQ => to_db!(IMGetMsgByIdReq, ForLogin, true),
        cid::MSG_UNREAD_CNT_REQUEST => to_db!(IMUnreadMsgCntReq, ForLogin, true),
        cid::MSG_READ_ACK => handle_msg_read_ack(net, state, id, pdu),
        cid::MSG_GET_LATEST_MSG_ID_REQ => to_db!(IMGetLatestMsgIdReq, Other, true),
        cid::SWITCH_P2P_CMD => handle_p2p_cmd(net, state, id, &pdu),
        cid::BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST => {
            to_db!(IMRecentContactSessionReq, ForLogin, true)
        }
        cid::BUDDY_LIST_USER_INFO_REQUEST => to_db!(IMUsersInfoReq, ForLogin, true),
        cid::BUDDY_LIST_REMOVE_SESSION_REQ => handle_remove_session(net, state, id, pdu),
        cid::BUDDY_LIST_ALL_USER_REQUEST => to_db!(IMAllUserReq, Other, true),
        // `_HandleChangeAvatarRequest`. Neither the C++ db_proxy_server nor
        // ours has a handler for it, so no reply ever comes: the client
        // sees nothing, as with the C++ cluster.
        cid::BUDDY_LIST_CHANGE_AVATAR_REQUEST => to_db!(IMChangeAvatarReq, Other, false),
        cid::BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST => to_db!(IMChangeSignInfoReq, Other, true),
        cid::BUDDY_LIST_USERS_STATUS_REQUEST => {
            handle_users_status_request(net, state, id, user_id, pdu)
        }
        cid::BUDDY_LIST_DEPARTMENT_REQUEST => to_db!(IMDepartmentReq, Other, true),
        cid::GROUP_NORMAL_LIST_REQUEST..=cid::GROUP_CHANGE_MEMBER_NOTIFY => {
            group_chat::handle_client_request(net, state, id, user_id, pdu)
        }
        cid::FILE_LOGIN_REQ..=cid::FILE_DEL_OFFLINE_REQ => {
            file_handler::handle_client_request(net, state, id, user_id, pdu)
        }
        other => {
            log::warn!("wrong msg, cmd id={other:#06x}, user id={user_id}");
            Ok(())
        }
    }
}

/// `_HandleLoginRequest`: checks the peers, then asks db_proxy to validate
/// the user with attach data naming this connection.
fn handle_login_request(
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
    let db_link = state.db.pick(DbPick::Login);
    if let Some(reason) = login_refusal(
        db_link.is_some(),
        state.login.any_open(),
        state.route.peers.any_open(),
    ) {
        log::warn!("client {id}: login refused: {reason:?}");
        let res = IMLoginRes {
            server_time: unix_time(),
            result_code: reason,
            result_string: Some(SERVER_ERROR_STRING.to_string()),
            online_status: None,
            user_info: None,
        };
        let _ = net.send_msg(id, pdu.seq_num(), &res);
        net.close_after_flush(id);
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
    if let Some(link) = db_link {
        let _ = net.send_msg(link, pdu.seq_num(), &validate);
    }
    Ok(())
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
    route_serv_conn::send_kick_user(
        net,
        state,
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
        if let Some(c) = state.conns.get_mut(&t) {
            c.kicked = true;
        }
        state.users.remove_conn(user_id, t);
        net.close_after_flush(t);
    }
}

/// `SendUserStatusUpdate`: a login or logout is counted by every
/// login_server and reported to every route_server.
pub fn send_user_status_update(
    net: &mut Reactor<MsgState>,
    state: &MsgState,
    user_id: u32,
    client_type: u32,
    status: UserStatType,
) {
    let online = status == UserStatType::USER_STATUS_ONLINE;
    login_serv_conn::send_user_cnt_update(net, state, user_id, online);
    route_serv_conn::send_user_status_update(net, state, user_id, client_type, status);
}

/// `_HandleLoginOutRequest`: clears the device token, answers and closes.
fn handle_logout(
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
    if let Some(link) = state.db.pick(DbPick::Other) {
        let req = IMDeviceTokenReq {
            user_id,
            device_token: String::new(),
            client_type: None,
            attach_data: None,
        };
        let _ = net.send_msg(link, pdu.seq_num(), &req);
    }
    let rsp = IMLogoutRsp { result_code: 0 };
    let _ = net.send_msg(id, pdu.seq_num(), &rsp);
    net.close_after_flush(id);
    Ok(())
}

/// `_HandleClientDeviceToken`: mobile clients only; answered at once, then
/// stored by db_proxy.
fn handle_device_token(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    mut pdu: ImPdu,
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
    if let Some(link) = state.db.pick(DbPick::Other) {
        req.user_id = user_id;
        req.client_type = Some(ClientType::from(client_type as i32));
        pdu.set_msg(&req)?;
        let _ = net.send_pdu(link, &pdu);
    }
    Ok(())
}

/// `_HandleKickPCClient`: a mobile client logs its user's PC clients out,
/// here and on other msg_servers.
fn handle_kick_pc_client(
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
    route_serv_conn::send_kick_user(
        net,
        state,
        user_id,
        mac,
        KickReasonType::KICK_REASON_MOBILE_KICK,
    );
    let rsp = IMKickPCClientRsp {
        user_id,
        result_code: 0,
    };
    let _ = net.send_msg(id, pdu.seq_num(), &rsp);
    Ok(())
}

/// `CHECK_MSG_TYPE_SINGLE`.
pub fn is_single_msg(t: MsgType) -> bool {
    matches!(
        t,
        MsgType::MSG_TYPE_SINGLE_TEXT | MsgType::MSG_TYPE_SINGLE_AUDIO
    )
}

/// Why `_HandleClientMsgData` drops a message before storing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgRefusal {
    /// `msg_data` is empty.
    Empty,
    /// Over [`MAX_MSG_CNT_PER_SECOND`] this second.
    TooMany,
    /// A one-to-one message to oneself.
    ToSelf,
}

/// The checks of `_HandleClientMsgData`, in the C++ order; counts the
/// message against this second's budget when it passes.
pub fn check_msg_data(conn: &mut ClientConn, msg: &IMMsgData) -> Result<(), MsgRefusal> {
    if msg.msg_data.is_empty() {
        return Err(MsgRefusal::Empty);
    }
    if conn.msg_cnt_per_sec >= MAX_MSG_CNT_PER_SECOND {
        return Err(MsgRefusal::TooMany);
    }
    if conn.user_id == msg.to_session_id && is_single_msg(msg.msg_type) {
        return Err(MsgRefusal::ToSelf);
    }
    conn.msg_cnt_per_sec += 1;
    Ok(())
}

/// `_HandleClientMsgData`: stamps sender, time and attach data and sends
/// the message to db_proxy to be stored; delivery follows its reply.
fn handle_msg_data(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    mut pdu: ImPdu,
) -> Handled {
    let mut msg: IMMsgData = pdu.msg()?;
    let Some(conn) = state.conns.get_mut(&id) else {
        return Ok(());
    };
    if let Err(why) = check_msg_data(conn, &msg) {
        log::warn!(
            "message from user {} to {} dropped: {why:?}",
            conn.user_id,
            msg.to_session_id
        );
        return Ok(());
    }
    let user_id = conn.user_id;
    state.stats.up_total += 1;
    if state.log_msg {
        log::info!(
            "HandleClientMsgData, {user_id}->{}, msg_type={:?}, msg_id={}",
            msg.to_session_id,
            msg.msg_type,
            msg.msg_id
        );
    }
    msg.from_user_id = user_id;
    msg.create_time = unix_time();
    msg.attach_data = Some(AttachData::handle(id).encode());
    pdu.set_msg(&msg)?;
    match state.db.pick(DbPick::Other) {
        Some(link) => {
            let _ = net.send_pdu(link, &pdu);
        }
        None => {
            state.stats.up_miss += 1;
            log::warn!("no db_proxy: message from user {user_id} dropped");
        }
    }
    Ok(())
}

/// A one-to-one message delivered to connection `id` was received (by
/// ack or read ack): it no longer awaits its ack. Group messages are not
/// tracked.
fn acknowledged(
    state: &mut MsgState,
    id: ConnId,
    session_type: SessionType,
    msg_id: u32,
    session_id: u32,
) {
    if session_type == SessionType::SESSION_TYPE_SINGLE {
        if let Some(conn) = state.conns.get_mut(&id) {
            conn.del_from_send_list(msg_id, session_id);
        }
    }
}

/// A notify about what `user_id` did on connection `id`: to the user's
/// other connections here, and through route_server to those elsewhere.
fn tell_other_devices<M: Command>(
    net: &mut Reactor<MsgState>,
    state: &MsgState,
    user_id: u32,
    id: ConnId,
    notify: &M,
) {
    match ImPdu::for_msg(0, notify) {
        Ok(out) => {
            send_to_user(net, state, user_id, Some(id), &out);
            route_serv_conn::send_to_master(net, state, &out);
        }
        Err(e) => log::error!("notify {:#06x} of user {user_id} not sent: {e}", M::CID),
    }
}

/// `_HandleClientMsgDataAck`: a delivered one-to-one message was received.
fn handle_msg_data_ack(state: &mut MsgState, id: ConnId, pdu: &ImPdu) -> Handled {
    let ack: IMMsgDataAck = pdu.msg()?;
    acknowledged(state, id, ack.session_type, ack.msg_id, ack.session_id);
    Ok(())
}

/// `_HandleClientMsgReadAck`: stored by db_proxy; the reader's other
/// devices (here and elsewhere) are told the session was read.
fn handle_msg_read_ack(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    mut pdu: ImPdu,
) -> Handled {
    let mut ack: IMMsgDataReadAck = pdu.msg()?;
    let user_id = state.conns.get(&id).map_or(0, |c| c.user_id);
    log::debug!(
        "read ack, user_id={user_id}, session_id={}, msg_id={}, session_type={:?}",
        ack.session_id,
        ack.msg_id,
        ack.session_type
    );
    if let Some(link) = state.db.pick(DbPick::Other) {
        ack.user_id = user_id;
        pdu.set_msg(&ack)?;
        let _ = net.send_pdu(link, &pdu);
    }
    let notify = IMMsgDataReadNotify {
        user_id,
        session_id: ack.session_id,
        msg_id: ack.msg_id,
        session_type: ack.session_type,
    };
    tell_other_devices(net, state, user_id, id, &notify);
    acknowledged(state, id, ack.session_type, ack.msg_id, ack.session_id);
    Ok(())
}

/// `_HandleClientP2PCmdMsg`: relayed to the sender's other devices, the
/// receiver's devices here, and route_server.
fn handle_p2p_cmd(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    pdu: &ImPdu,
) -> Handled {
    let msg: IMP2PCmdMsg = pdu.msg()?;
    let user_id = state.conns.get(&id).map_or(0, |c| c.user_id);
    log::debug!("p2p cmd, {}->{}", msg.from_user_id, msg.to_user_id);
    send_to_user(net, state, user_id, Some(id), pdu);
    send_to_user(net, state, msg.to_user_id, None, pdu);
    route_serv_conn::send_to_master(net, state, pdu);
    Ok(())
}

/// `_HandleClientRemoveSessionRequest`: db_proxy removes it; for a
/// one-to-one session the user's other devices are told.
fn handle_remove_session(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    pdu: ImPdu,
) -> Handled {
    let req: IMRemoveSessionReq = pdu.msg()?;
    let user_id = state.conns.get(&id).map_or(0, |c| c.user_id);
    db_serv_conn::forward::<IMRemoveSessionReq>(net, state, id, user_id, pdu, DbPick::Other, true)?;
    if req.session_type == SessionType::SESSION_TYPE_SINGLE {
        let notify = IMRemoveSessionNotify {
            user_id,
            session_type: req.session_type,
            session_id: req.session_id,
        };
        tell_other_devices(net, state, user_id, id, &notify);
    }
    Ok(())
}

/// `_HandleClientUsersStatusRequest`: asked of route_server, which knows
/// every msg_server's users; the reply finds us by attach data.
fn handle_users_status_request(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    user_id: u32,
    mut pdu: ImPdu,
) -> Handled {
    let mut req: IMUsersStatReq = pdu.msg()?;
    if let Some(master) = state.route.master {
        req.user_id = user_id;
        req.attach_data = Some(AttachData::handle(id).encode());
        pdu.set_msg(&req)?;
        let _ = net.send_pdu(master, &pdu);
    }
    Ok(())
}

/// `CImUser::BroadcastClientMsgData`: sends a stored message to each of
/// `user_id`'s connections but `except`, each awaiting its ack.
pub fn broadcast_client_msg_data(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    user_id: u32,
    pdu: &ImPdu,
    msg_id: u32,
    except: Option<ConnId>,
    from_id: u32,
) {
    let Some(user) = state.users.get(user_id) else {
        return;
    };
    let now = monotonic_ms();
    for t in user.targets(except) {
        let _ = net.send_pdu(t, pdu);
        if let Some(c) = state.conns.get_mut(&t) {
            c.add_to_send_list(msg_id, from_id, now);
        }
        state.stats.down_total += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(from: u32, to: u32, t: MsgType, data: &[u8]) -> IMMsgData {
        IMMsgData {
            from_user_id: from,
            to_session_id: to,
            msg_id: 0,
            create_time: 0,
            msg_type: t,
            msg_data: data.to_vec(),
            attach_data: None,
        }
    }

    #[test]
    fn only_login_and_heartbeat_before_login() {
        let mut c = ClientConn::new(0);
        let (login, hb, data) = (
            cid::LOGIN_REQ_USERLOGIN,
            cid::OTHER_HEARTBEAT,
            cid::MSG_DATA,
        );
        assert_eq!(check_before_login(&mut c, hb), BeforeLogin::Allowed);
        assert_eq!(check_before_login(&mut c, login), BeforeLogin::Allowed);
        assert_eq!(check_before_login(&mut c, data), BeforeLogin::Ignored);
        assert_eq!(check_before_login(&mut c, hb), BeforeLogin::Allowed);
        assert_eq!(check_before_login(&mut c, data), BeforeLogin::Close);
        let mut open = ClientConn::new(0);
        open.open = true;
        for _ in 0..5 {
            assert_eq!(check_before_login(&mut open, data), BeforeLogin::Allowed);
        }
    }

    #[test]
    fn refusal_order_follows_the_cpp() {
        use ResultType::*;
        assert_eq!(
            login_refusal(false, false, false),
            Some(REFUSE_REASON_NO_DB_SERVER)
        );
        assert_eq!(
            login_refusal(true, false, false),
            Some(REFUSE_REASON_NO_LOGIN_SERVER)
        );
        assert_eq!(
            login_refusal(true, true, false),
            Some(REFUSE_REASON_NO_ROUTE_SERVER)
        );
        assert_eq!(login_refusal(true, true, true), None);
    }

    #[test]
    fn message_checks_and_rate_limit() {
        let mut c = ClientConn::new(0);
        c.user_id = 5;
        let text = MsgType::MSG_TYPE_SINGLE_TEXT;
        assert_eq!(
            check_msg_data(&mut c, &msg(5, 6, text, b"")),
            Err(MsgRefusal::Empty)
        );
        assert_eq!(
            check_msg_data(&mut c, &msg(5, 5, text, b"x")),
            Err(MsgRefusal::ToSelf)
        );
        assert_eq!(
            check_msg_data(&mut c, &msg(9, 5, text, b"x")),
            Err(MsgRefusal::ToSelf),
            "the logged-in user counts, not the from field"
        );
        assert!(
            check_msg_data(&mut c, &msg(5, 5, MsgType::MSG_TYPE_GROUP_TEXT, b"x")).is_ok(),
            "group 5 is not user 5"
        );
        for _ in 1..MAX_MSG_CNT_PER_SECOND {
            assert!(check_msg_data(&mut c, &msg(5, 6, text, b"x")).is_ok());
        }
        assert_eq!(
            check_msg_data(&mut c, &msg(5, 6, text, b"x")),
            Err(MsgRefusal::TooMany)
        );
        c.msg_cnt_per_sec = 0; // the next second
        assert!(check_msg_data(&mut c, &msg(5, 6, text, b"x")).is_ok());
    }

    #[test]
    fn send_list_acks_and_expiry() {
        let mut c = ClientConn::new(0);
        c.add_to_send_list(1, 7, 1000);
        c.add_to_send_list(2, 7, 2000);
        c.add_to_send_list(3, 8, 3000);
        c.del_from_send_list(2, 7);
        c.del_from_send_list(3, 7); // wrong sender: kept
        assert_eq!(c.send_list.len(), 2);
        assert!(c
            .expire_send_list(1000 + TIMEOUT_WAITING_MSG_DATA_ACK - 1)
            .is_empty());
        let missed = c.expire_send_list(3000 + TIMEOUT_WAITING_MSG_DATA_ACK);
        assert_eq!(
            missed.iter().map(|m| m.msg_id).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert!(c.send_list.is_empty());
    }
}
