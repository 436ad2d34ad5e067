//! The checks the C++ `MsgConn.cpp` makes before a client's command runs
//! (`HandlePdu`'s login test, `_HandleLoginRequest`'s peer tests,
//! `_HandleClientMsgData`'s message tests), as pure functions of the
//! connection's state.
//!
//! Differences from the C++, on purpose:
//! - Until its login succeeds, a connection gets answers to nothing but
//!   login and heartbeat; any other command is ignored the first time and
//!   closes the connection the second time. (The C++ runs every command
//!   for user id 0.)
//! - A login is refused with `REFUSE_REASON_MSG_SERVER_FULL` (the code
//!   login_server answers when every msg_server is full) once `MaxConnCnt`
//!   connections are logged in ([`is_full`]); the C++ msg_server has no
//!   such check.
//! - The "message to yourself" check compares the receiver with the
//!   logged-in user, not with the `from_user_id` the client wrote.

use super::conn::ClientConn;
use tt_proto::cid;
use tt_proto::IM::BaseDefine::{MsgType, ResultType};
use tt_proto::IM::Message::IMMsgData;

/// `MAX_MSG_CNT_PER_SECOND`: a user sends at most 20 messages per second
/// per connection; the rest are dropped.
pub const MAX_MSG_CNT_PER_SECOND: u32 = 20;

/// Commands before login tolerated: the next one closes the connection.
pub const MAX_VIOLATIONS_BEFORE_LOGIN: u32 = 1;

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

/// `MaxConnCnt` reached: `validated` connections are logged in and the
/// conf allows `max_conn_cnt`. Not in the C++ msg_server, which only tells
/// login_server its limit (login_server then sends nobody there) and
/// accepts every client that connects to it directly.
pub fn is_full(validated: usize, max_conn_cnt: u32) -> bool {
    u64::try_from(validated).unwrap_or(u64::MAX) >= u64::from(max_conn_cnt)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_at_max_conn_cnt() {
        assert!(!is_full(1, 2));
        assert!(is_full(2, 2));
        assert!(is_full(3, 2));
        assert!(
            is_full(0, 0),
            "MaxConnCnt=0 takes nobody, as login_server reads it"
        );
    }

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
}
