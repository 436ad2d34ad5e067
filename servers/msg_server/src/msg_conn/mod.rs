//! One client connection: the C++ `MsgConn.cpp` (`CMsgConn`,
//! `msg_conn_timer_callback`, `HandlePdu` and its `_Handle*` client
//! commands).
//!
//! [`MsgConn`] is the handler that dispatches the client's PDUs; what a
//! connection did so far lives in [`ClientConn`] ([`conn`]) in the server
//! state, so replies arriving on other links can reach it. The checks a
//! command passes first are pure functions in [`checks`]; logins, logouts
//! and kicks are in [`login`], the message and session commands in
//! [`commands`]. Each submodule lists its differences from the C++; the
//! handler's own: a body that does not decode closes the connection (the
//! C++ logs and ignores it), and a client PDU is at most 1 MiB.

pub mod checks;
pub mod commands;
pub mod conn;
pub mod login;

pub use conn::ClientConn;

use crate::file_handler;
use crate::group_chat;
use crate::im_user::is_mobile;
use crate::peers::DbPick;
use crate::state::MsgState;
use base::pdu::PduError;
use base::tick::{monotonic_ms, unix_time};
use base::ImPdu;
use checks::{check_before_login, BeforeLogin};
use conn::{TIMEOUT_WAITING_MSG_DATA_ACK, TIMEOUT_WAIT_LOGIN_RESPONSE};
use netlib::{Ctx, Heartbeat, ImConn};
use tt_proto::cid;
use tt_proto::IM::BaseDefine::UserStatType;
use tt_proto::IM::Buddy::{
    IMAllUserReq, IMChangeAvatarReq, IMChangeSignInfoReq, IMDepartmentReq,
    IMRecentContactSessionReq, IMUsersInfoReq,
};
use tt_proto::IM::Login::{IMPushShieldReq, IMQueryPushShieldReq};
use tt_proto::IM::Message::{
    IMClientTimeRsp, IMGetLatestMsgIdReq, IMGetMsgByIdReq, IMGetMsgListReq, IMUnreadMsgCntReq,
};

/// When `on_timer` next has something to do for `conn` besides its
/// timeout: the end of the login wait, the first unacknowledged message's
/// expiry, or the next tick while this second's message budget is in use.
fn next_due(conn: &ClientConn) -> Option<u64> {
    let login = (!conn.open).then(|| conn.login_time + TIMEOUT_WAIT_LOGIN_RESPONSE + 1);
    let ack = conn
        .send_list
        .front()
        .map(|m| m.timestamp + TIMEOUT_WAITING_MSG_DATA_ACK);
    let budget = (conn.msg_cnt_per_sec > 0).then_some(0);
    [login, ack, budget].into_iter().flatten().min()
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
            return;
        }
        // This second's message budget is reset by the next tick.
        if cx
            .state
            .conns
            .get(&cx.id)
            .is_some_and(|c| c.msg_cnt_per_sec > 0)
        {
            let now = cx.now_ms();
            cx.timer_at(now);
        }
    }

    /// `OnTimer`: the per-second message budget, client timeouts, the
    /// 15 s login wait and the unacknowledged-message expiry. Unlike the
    /// C++ (every connection every second), it asks for its next call only
    /// when one of those is due: an idle client costs the tick nothing
    /// until its timeout (a message it sends, or one delivered to it,
    /// asks for the next tick again: see `on_pdu` and `deliver_msg`).
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
        if !cx.keep_alive_until_due(rule, now) {
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
        if let Some(due) = next_due(conn) {
            cx.timer_at(due);
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
        // A kicked connection was counted out at the kick.
        if conn.open && cx.state.users.remove_conn(conn.user_id, cx.id) {
            login::send_user_status_update(
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
            state
                .db
                .forward::<_, $msg>(net, id, user_id, pdu, $pick, $with_attach)
        };
    }
    use DbPick::{Login as ForLogin, Other};
    match pdu.command_id() {
        cid::OTHER_HEARTBEAT => {
            // `_HandleHeartBeat`: echoed.
            let _ = net.send_pdu(id, &pdu);
            Ok(())
        }
        cid::LOGIN_REQ_USERLOGIN => login::handle_login_request(net, state, id, &pdu),
        cid::LOGIN_REQ_LOGINOUT => login::handle_logout(net, state, id, &pdu),
        cid::LOGIN_REQ_DEVICETOKEN => login::handle_device_token(net, state, id, pdu),
        cid::LOGIN_REQ_KICKPCCLIENT => login::handle_kick_pc_client(net, state, id, &pdu),
        cid::LOGIN_REQ_PUSH_SHIELD => to_db!(IMPushShieldReq, Other, true),
        cid::LOGIN_REQ_QUERY_PUSH_SHIELD => to_db!(IMQueryPushShieldReq, Other, true),
        cid::MSG_DATA => commands::handle_msg_data(net, state, id, pdu),
        cid::MSG_DATA_ACK => commands::handle_msg_data_ack(state, id, &pdu),
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
        cid::MSG_READ_ACK => commands::handle_msg_read_ack(net, state, id, pdu),
        cid::MSG_GET_LATEST_MSG_ID_REQ => to_db!(IMGetLatestMsgIdReq, Other, true),
        cid::SWITCH_P2P_CMD => commands::handle_p2p_cmd(net, state, id, &pdu),
        cid::BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST => {
            to_db!(IMRecentContactSessionReq, ForLogin, true)
        }
        cid::BUDDY_LIST_USER_INFO_REQUEST => to_db!(IMUsersInfoReq, ForLogin, true),
        cid::BUDDY_LIST_REMOVE_SESSION_REQ => commands::handle_remove_session(net, state, id, pdu),
        cid::BUDDY_LIST_ALL_USER_REQUEST => to_db!(IMAllUserReq, Other, true),
        // `_HandleChangeAvatarRequest`. Neither the C++ db_proxy_server nor
        // ours has a handler for it, so no reply ever comes: the client
        // sees nothing, as with the C++ cluster.
        cid::BUDDY_LIST_CHANGE_AVATAR_REQUEST => to_db!(IMChangeAvatarReq, Other, false),
        cid::BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST => to_db!(IMChangeSignInfoReq, Other, true),
        cid::BUDDY_LIST_USERS_STATUS_REQUEST => {
            commands::handle_users_status_request(net, state, id, user_id, pdu)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_due_names_the_earliest_thing_on_timer_has_to_do() {
        let mut c = ClientConn::new(1_000);
        assert_eq!(next_due(&c), Some(1_000 + TIMEOUT_WAIT_LOGIN_RESPONSE + 1));
        c.open = true;
        assert_eq!(next_due(&c), None, "an idle client: only its timeout");
        c.add_to_send_list(1, 2, 5_000);
        c.add_to_send_list(3, 2, 6_000);
        assert_eq!(next_due(&c), Some(5_000 + TIMEOUT_WAITING_MSG_DATA_ACK));
        c.msg_cnt_per_sec = 1;
        assert_eq!(next_due(&c), Some(0), "the next tick resets the budget");
    }
}
