//! What one client connection did so far: the fields of the C++ `CMsgConn`
//! (`MsgConn.h`: `m_login_name`, `m_user_id`, `m_bOpen`, `m_send_msg_list`...)
//! and its send list (`AddToSendList`, `DelFromSendList`, the expiry loop
//! of `OnTimer`).
//!
//! It lives in the server state (`MsgState::conns`), not in the handler, so
//! replies arriving on other links can reach it. Nothing here sends.

use std::collections::VecDeque;
use tt_proto::IM::BaseDefine::UserStatType;

/// `TIMEOUT_WATI_LOGIN_RESPONSE`: a connection not logged in after 15 s is closed.
pub const TIMEOUT_WAIT_LOGIN_RESPONSE: u64 = 15_000;

/// `TIMEOUT_WAITING_MSG_DATA_ACK`: a delivered message not acknowledged in
/// 15 s counts as missed.
pub const TIMEOUT_WAITING_MSG_DATA_ACK: u64 = 15_000;

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

#[cfg(test)]
mod tests {
    use super::*;

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
