//! Links to db_proxy_server: the C++ `DBServConn.cpp` (`CDBServConn`,
//! `init_db_serv_conn`, `get_db_serv_conn_for_login`, `get_db_serv_conn`,
//! the `_Handle*Response` replies).
//!
//! `ConcurrentDBConnCnt` links go to each configured db_proxy. The first
//! half of the db_proxies (rounded down) serve logins and other reads a
//! client waits for (`get_db_serv_conn_for_login`), the rest everything
//! else (`get_db_serv_conn`); each falls back on the other half, and picks
//! a random open link in its range, as the C++ does.
//!
//! A reply names its client through the attach data of the request; a
//! reply whose client has gone is dropped with a debug line.

use crate::attach_data::{AttachData, Attached};
use crate::file_handler;
use crate::group_chat;
use crate::msg_conn;
use crate::push_serv_conn;
use crate::route_serv_conn;
use crate::state::{send_all, MsgState};
use base::msg_type::is_group_msg;
use base::pdu::PduError;
use base::tick::unix_time;
use base::ImPdu;
use netlib::{ConnId, Ctx, Heartbeat, ImConn, Reactor};
use netlib::{PeerLink, PeerList};
use rand::Rng;
use tt_proto::IM::BaseDefine::{ResultType, SessionType, UserInfo};
use tt_proto::IM::Buddy::{
    IMAllUserRsp, IMChangeAvatarRsp, IMChangeSignInfoRsp, IMDepartmentRsp,
    IMRecentContactSessionRsp, IMRemoveSessionRsp, IMSignInfoChangedNotify, IMUsersInfoRsp,
};
use tt_proto::IM::Login::{IMDeviceTokenRsp, IMLoginRes, IMPushShieldRsp, IMQueryPushShieldRsp};
use tt_proto::IM::Message::{
    IMGetLatestMsgIdRsp, IMGetMsgByIdRsp, IMGetMsgListRsp, IMMsgData, IMMsgDataAck,
    IMUnreadMsgCntRsp,
};
use tt_proto::IM::Server::{IMGetDeviceTokenReq, IMValidateRsp};
use tt_proto::{cid, Command};

/// `DEFAULT_CONCURRENT_DB_CONN_CNT`: links per db_proxy when
/// `ConcurrentDBConnCnt` is absent.
pub const DEFAULT_CONCURRENT_DB_CONN_CNT: usize = 10;

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
}

fn random_of(links: &[ConnId]) -> Option<ConnId> {
    match links.len() {
        0 => None,
        n => Some(links[rand::thread_rng().gen_range(0..n)]),
    }
}

/// Stamps a client's request with its user id (and, when `attach`, attach
/// data naming connection `client`) and sends it to a db_proxy link of the
/// `pick` half. With no link open it is dropped, as in the C++.
pub fn forward<M: Attached>(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    client: ConnId,
    user_id: u32,
    mut pdu: ImPdu,
    pick: DbPick,
    attach: bool,
) -> Result<(), PduError> {
    let mut msg: M = pdu.msg()?;
    let Some(link) = state.db.pick(pick) else {
        log::warn!(
            "no db_proxy: command {:#06x} of user {user_id} dropped",
            pdu.command_id()
        );
        return Ok(());
    };
    msg.set_user_id(user_id);
    if attach {
        msg.set_attach(Some(AttachData::handle(client).encode()));
    }
    pdu.set_msg(&msg)?;
    let _ = net.send_pdu(link, &pdu);
    Ok(())
}

/// [`forward`] with attach data to a link of the other half when one is
/// open; else the client's request is answered at once, with its seq, by
/// the reply `answer` makes of it (the C++ "no db_proxy" replies).
pub fn forward_or_answer<Req: Attached, Rsp: Command>(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    client: ConnId,
    user_id: u32,
    pdu: ImPdu,
    answer: impl FnOnce(Req) -> Rsp,
) -> Result<(), PduError> {
    if state.db.pick(DbPick::Other).is_some() {
        return forward::<Req>(net, state, client, user_id, pdu, DbPick::Other, true);
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

/// The client connection named by a reply's user id and attach data
/// (`GetMsgConnByHandle`), if it is still a connection of that user.
pub fn client_of(state: &MsgState, user_id: u32, attach: Option<&[u8]>) -> Option<ConnId> {
    let attach = match AttachData::decode(attach.unwrap_or_default()) {
        Ok(a) => a,
        Err(e) => {
            log::warn!("reply for user {user_id} with unusable attach data dropped: {e}");
            return None;
        }
    };
    state.users.conn_of(user_id, attach.handle)
}

/// The common reply path: the reply goes, without its attach data, to the
/// client connection that asked; dropped when that client has gone.
pub fn relay_to_client<M: Attached>(
    net: &mut Reactor<MsgState>,
    state: &MsgState,
    mut pdu: ImPdu,
) -> Result<M, PduError> {
    let mut msg: M = pdu.msg()?;
    let Some(conn) = client_of(state, msg.user_id(), msg.attach()) else {
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

/// What `_HandleMsgData` and `HandleGroupMessage` do first with a message
/// db_proxy stored: the sender's connection named by the attach data gets
/// its ack (with the request's seq), and the message, without attach data
/// and with seq 0, goes to the master route_server for the other
/// msg_servers. Returns the sender's connection here, if still there;
/// `msg` and `pdu` are left as routed.
pub fn ack_and_route_stored(
    net: &mut Reactor<MsgState>,
    state: &MsgState,
    pdu: &mut ImPdu,
    msg: &mut IMMsgData,
    session_type: SessionType,
) -> Result<Option<ConnId>, PduError> {
    let from_conn = client_of(state, msg.from_user_id, msg.attach_data.as_deref());
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
    route_serv_conn::send_to_master(net, state, pdu);
    Ok(from_conn)
}

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
    }

    /// `OnClose`: the link is reconnected after the back-off.
    fn on_close(&mut self, cx: &mut Ctx<'_, MsgState>) {
        let addr = cx.peer_addr();
        self.link.closed(&mut cx.state.db.peers, cx.id, addr);
        // Group member lists asked on this link may never come back.
        crate::group_chat::refetch_pending(cx.net, cx.state);
    }

    /// `OnTimer`: heartbeat after 5 s of quiet, close after 30 s of silence.
    fn on_timer(&mut self, cx: &mut Ctx<'_, MsgState>, now: u64) {
        cx.keep_alive(Heartbeat::SERVER, now);
    }

    /// `HandlePdu`: a reply that does not decode is logged and dropped, as
    /// the C++ does; the link and the other replies on it carry on.
    fn on_pdu(&mut self, cx: &mut Ctx<'_, MsgState>, pdu: ImPdu) {
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
            relay_to_client::<IMPushShieldRsp>(net, state, pdu)?;
        }
        cid::LOGIN_RES_QUERY_PUSH_SHIELD => {
            relay_to_client::<IMQueryPushShieldRsp>(net, state, pdu)?;
        }
        cid::MSG_UNREAD_CNT_RESPONSE => {
            relay_to_client::<IMUnreadMsgCntRsp>(net, state, pdu)?;
        }
        cid::MSG_LIST_RESPONSE => {
            relay_to_client::<IMGetMsgListRsp>(net, state, pdu)?;
        }
        cid::MSG_GET_BY_MSG_ID_RES => {
            relay_to_client::<IMGetMsgByIdRsp>(net, state, pdu)?;
        }
        cid::MSG_DATA => handle_msg_data(net, state, link, pdu)?,
        cid::MSG_GET_LATEST_MSG_ID_RSP => {
            relay_to_client::<IMGetLatestMsgIdRsp>(net, state, pdu)?;
        }
        cid::BUDDY_LIST_RECENT_CONTACT_SESSION_RESPONSE => {
            relay_to_client::<IMRecentContactSessionRsp>(net, state, pdu)?;
        }
        cid::BUDDY_LIST_ALL_USER_RESPONSE => {
            relay_to_client::<IMAllUserRsp>(net, state, pdu)?;
        }
        cid::BUDDY_LIST_USER_INFO_RESPONSE => {
            relay_to_client::<IMUsersInfoRsp>(net, state, pdu)?;
        }
        cid::BUDDY_LIST_REMOVE_SESSION_RES => {
            relay_to_client::<IMRemoveSessionRsp>(net, state, pdu)?;
        }
        cid::BUDDY_LIST_CHANGE_AVATAR_RESPONSE => handle_change_avatar_response(net, state, pdu)?,
        cid::BUDDY_LIST_CHANGE_SIGN_INFO_RESPONSE => {
            handle_change_sign_info_response(net, state, pdu)?
        }
        cid::BUDDY_LIST_DEPARTMENT_RESPONSE => {
            relay_to_client::<IMDepartmentRsp>(net, state, pdu)?;
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
            msg_conn::login_validated(net, state, conn, info.user_id, &info.user_nick_name);
            let res = login_success(rsp.result_string, online_status, info);
            let _ = net.send_msg(conn, pdu.seq_num(), &res);
        }
        (code, _) => {
            log::info!("login of {} refused by db_proxy ({code})", rsp.user_name);
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
    let from_conn = ack_and_route_stored(
        net,
        state,
        &mut pdu,
        &mut msg,
        SessionType::SESSION_TYPE_SINGLE,
    )?;
    msg_conn::broadcast_client_msg_data(net, state, from, &pdu, msg_id, from_conn, from);
    msg_conn::broadcast_client_msg_data(net, state, to, &pdu, msg_id, None, from);
    let req = IMGetDeviceTokenReq {
        user_id: vec![to],
        attach_data: Some(pdu.body().to_vec()),
    };
    let _ = net.send_msg(link, 0, &req);
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
    let rsp = relay_to_client::<IMChangeSignInfoRsp>(net, state, pdu)?;
    if rsp.result_code == 0 {
        let notify = IMSignInfoChangedNotify {
            changed_user_id: rsp.user_id,
            sign_info: rsp.sign_info.unwrap_or_default(),
        };
        route_serv_conn::msg_to_master(net, state, &notify);
    }
    Ok(())
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
