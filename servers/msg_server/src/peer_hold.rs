//! What msg_server holds while a peer is briefly gone (not in the C++,
//! which drops it): requests for db_proxy while no db_proxy link is usable
//! (none connected, or all sent `STOP_RECV_PACKET`), and PDUs for
//! route_server while no master link is up; and, per db_proxy link, the
//! read-only requests in flight on it, so they can be sent again on
//! another link when it dies.
//!
//! Each is a pure structure with the time passed in; [`crate::peers`]
//! owns them and does the sending.
//!
//! Bounds: at most [`HOLD_MAX`] PDUs per peer kind, none kept longer than
//! [`HOLD_MAX_AGE_MS`]; what falls out is answered as the C++ answers for
//! a missing peer (see [`Fallback`]). In flight: at most
//! [`IN_FLIGHT_MAX`] requests over all links, each forgotten after
//! [`IN_FLIGHT_MAX_AGE_MS`] without a reply.

use base::ImPdu;
use netlib::ConnId;
use std::collections::{HashMap, VecDeque};
use tt_proto::cid;

/// Most PDUs held per peer kind.
pub const HOLD_MAX: usize = 10_000;
/// Longest a PDU is held (ms): past it the C++ "no peer" answer goes out.
/// It covers db_proxy's SIGTERM (4 s of `STOP_RECV_PACKET` before it
/// drains and exits) plus a restart of a few seconds.
pub const HOLD_MAX_AGE_MS: u64 = 8_000;
/// Most read-only requests remembered in flight, over all db_proxy links.
pub const IN_FLIGHT_MAX: usize = 10_000;
/// A request in flight with no reply for this long is forgotten (ms).
pub const IN_FLIGHT_MAX_AGE_MS: u64 = 30_000;

/// What goes out for a held request that could not be sent in time: what
/// the C++ does for a missing db_proxy.
#[derive(Debug, Clone, PartialEq)]
pub enum Fallback {
    /// Nothing (the C++ drops it); `message` says it was a client's
    /// message (counted as `up_miss_cnt`).
    Drop {
        /// A client's `CID_MSG_DATA`.
        message: bool,
    },
    /// `pdu` to the client connection `client` (the C++ "no db_proxy"
    /// reply), then, when `close`, the connection is closed (a login
    /// refused).
    Reply {
        /// The client that asked.
        client: ConnId,
        /// The answer.
        pdu: ImPdu,
        /// Close the client after it.
        close: bool,
    },
}

/// A request for db_proxy: which half it goes to, the PDU, and what to do
/// if it cannot be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct DbRequest {
    /// The login half or the other (`crate::peers::DbPick`).
    pub pick: crate::peers::DbPick,
    /// The request, ready to send.
    pub pdu: ImPdu,
    /// What goes out if it is never sent.
    pub fallback: Fallback,
    /// Read-only: sent again on another link if its link dies before the
    /// reply ([`is_read_only`]).
    pub resend: bool,
}

/// A bounded FIFO of items with the time each was put in.
#[derive(Debug)]
pub struct HoldQueue<T> {
    items: VecDeque<(u64, T)>,
    max: usize,
    max_age_ms: u64,
}

impl<T> Default for HoldQueue<T> {
    fn default() -> Self {
        HoldQueue::new(HOLD_MAX, HOLD_MAX_AGE_MS)
    }
}

impl<T> HoldQueue<T> {
    /// A queue of at most `max` items, each at most `max_age_ms` old.
    pub fn new(max: usize, max_age_ms: u64) -> HoldQueue<T> {
        HoldQueue {
            items: VecDeque::new(),
            max,
            max_age_ms,
        }
    }

    /// Holds `item` from `now`; a full queue gives it back.
    pub fn push(&mut self, now: u64, item: T) -> Result<(), T> {
        if self.items.len() >= self.max {
            return Err(item);
        }
        self.items.push_back((now, item));
        Ok(())
    }

    /// The items held longer than the age bound at `now`, oldest first.
    pub fn expired(&mut self, now: u64) -> Vec<T> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.items.front() {
            if now.saturating_sub(*at) <= self.max_age_ms {
                break;
            }
            if let Some((_, item)) = self.items.pop_front() {
                out.push(item);
            }
        }
        out
    }

    /// Every item, oldest first; the queue is empty after.
    pub fn take_all(&mut self) -> Vec<T> {
        self.items.drain(..).map(|(_, item)| item).collect()
    }

    /// Nothing is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

/// Requests the client waits for whose repetition stores nothing: sent
/// again on another link when theirs dies before the reply. (A message
/// store is not idempotent: the protocol has no client message id, so it
/// is never sent twice.)
pub fn is_read_only(command_id: u16) -> bool {
    matches!(
        command_id,
        cid::OTHER_VALIDATE_REQ
            | cid::MSG_LIST_REQUEST
            | cid::MSG_GET_BY_MSG_ID_REQ
            | cid::MSG_UNREAD_CNT_REQUEST
            | cid::MSG_GET_LATEST_MSG_ID_REQ
            | cid::BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST
            | cid::BUDDY_LIST_USER_INFO_REQUEST
            | cid::BUDDY_LIST_ALL_USER_REQUEST
            | cid::BUDDY_LIST_DEPARTMENT_REQUEST
            | cid::LOGIN_REQ_QUERY_PUSH_SHIELD
            | cid::GROUP_NORMAL_LIST_REQUEST
            | cid::GROUP_INFO_REQUEST
            | cid::FILE_HAS_OFFLINE_REQ
    )
}

/// The read-only requests in flight on each db_proxy link, matched to
/// replies by the request's command (the reply's minus one, as for every
/// request here) and seq.
#[derive(Debug, Default)]
pub struct InFlight {
    links: HashMap<ConnId, VecDeque<(u64, DbRequest)>>,
    count: usize,
}

impl InFlight {
    /// `req` was sent on `link` at `now`; not remembered past the bound.
    pub fn sent(&mut self, link: ConnId, now: u64, req: DbRequest) {
        if self.count >= IN_FLIGHT_MAX {
            return;
        }
        self.links.entry(link).or_default().push_back((now, req));
        self.count += 1;
    }

    /// A reply `reply_command` with `seq` came on `link`: the first
    /// request it answers is forgotten.
    pub fn answered(&mut self, link: ConnId, reply_command: u16, seq: u16) {
        let Some(q) = self.links.get_mut(&link) else {
            return;
        };
        let request = reply_command.wrapping_sub(1);
        if let Some(i) = q
            .iter()
            .position(|(_, r)| r.pdu.command_id() == request && r.pdu.seq_num() == seq)
        {
            q.remove(i);
            self.count -= 1;
        }
        if q.is_empty() {
            self.links.remove(&link);
        }
    }

    /// `link` died: what was in flight on it, oldest first.
    pub fn lost(&mut self, link: ConnId) -> Vec<DbRequest> {
        let q = self.links.remove(&link).unwrap_or_default();
        self.count -= q.len();
        q.into_iter().map(|(_, r)| r).collect()
    }

    /// Forgets requests older than the age bound at `now`.
    pub fn expire(&mut self, now: u64) {
        let mut dropped = 0;
        self.links.retain(|_, q| {
            while let Some((at, _)) = q.front() {
                if now.saturating_sub(*at) <= IN_FLIGHT_MAX_AGE_MS {
                    break;
                }
                q.pop_front();
                dropped += 1;
            }
            !q.is_empty()
        });
        self.count -= dropped;
    }

    /// How many are remembered.
    pub fn len(&self) -> usize {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::DbPick;

    #[test]
    fn a_hold_is_bounded_by_count_and_age_and_keeps_order() {
        let mut q = HoldQueue::new(3, 100);
        for (t, x) in [(0, 'a'), (10, 'b'), (20, 'c')] {
            q.push(t, x).unwrap();
        }
        assert_eq!(q.push(30, 'd'), Err('d'), "full");
        assert_eq!(q.expired(100), Vec::<char>::new(), "a is 100 ms old: kept");
        assert_eq!(q.expired(111), vec!['a', 'b']);
        q.push(115, 'e').unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q.take_all(), vec!['c', 'e']);
        assert!(q.is_empty());
    }

    fn req(command: u16, seq: u16) -> DbRequest {
        let mut pdu = ImPdu::new(0, command);
        pdu.set_seq_num(seq);
        DbRequest {
            pick: DbPick::Other,
            pdu,
            fallback: Fallback::Drop { message: false },
            resend: true,
        }
    }

    fn link(n: u64) -> ConnId {
        ConnId::from_u64((1 << 32) | n)
    }

    #[test]
    fn replies_clear_what_they_answer_and_a_lost_link_gives_back_the_rest() {
        let mut f = InFlight::default();
        f.sent(link(1), 0, req(cid::MSG_LIST_REQUEST, 7));
        f.sent(link(1), 0, req(cid::MSG_UNREAD_CNT_REQUEST, 7));
        f.sent(link(1), 0, req(cid::MSG_LIST_REQUEST, 8));
        f.sent(link(2), 0, req(cid::MSG_LIST_REQUEST, 7));
        f.answered(link(1), cid::MSG_LIST_RESPONSE, 7);
        f.answered(link(1), cid::MSG_LIST_RESPONSE, 99);
        assert_eq!(f.len(), 3);
        let lost: Vec<(u16, u16)> = f
            .lost(link(1))
            .iter()
            .map(|r| (r.pdu.command_id(), r.pdu.seq_num()))
            .collect();
        assert_eq!(
            lost,
            vec![(cid::MSG_UNREAD_CNT_REQUEST, 7), (cid::MSG_LIST_REQUEST, 8)]
        );
        assert_eq!(f.len(), 1, "link 2's stays");
        f.expire(IN_FLIGHT_MAX_AGE_MS + 1);
        assert_eq!(f.len(), 0);
        assert!(f.lost(link(2)).is_empty());
    }

    #[test]
    fn every_read_only_request_is_answered_by_the_next_command() {
        for (req, rsp) in [
            (cid::OTHER_VALIDATE_REQ, cid::OTHER_VALIDATE_RSP),
            (cid::MSG_LIST_REQUEST, cid::MSG_LIST_RESPONSE),
            (cid::MSG_GET_BY_MSG_ID_REQ, cid::MSG_GET_BY_MSG_ID_RES),
            (cid::MSG_UNREAD_CNT_REQUEST, cid::MSG_UNREAD_CNT_RESPONSE),
            (
                cid::MSG_GET_LATEST_MSG_ID_REQ,
                cid::MSG_GET_LATEST_MSG_ID_RSP,
            ),
            (
                cid::BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST,
                cid::BUDDY_LIST_RECENT_CONTACT_SESSION_RESPONSE,
            ),
            (
                cid::BUDDY_LIST_USER_INFO_REQUEST,
                cid::BUDDY_LIST_USER_INFO_RESPONSE,
            ),
            (
                cid::BUDDY_LIST_ALL_USER_REQUEST,
                cid::BUDDY_LIST_ALL_USER_RESPONSE,
            ),
            (
                cid::BUDDY_LIST_DEPARTMENT_REQUEST,
                cid::BUDDY_LIST_DEPARTMENT_RESPONSE,
            ),
            (
                cid::LOGIN_REQ_QUERY_PUSH_SHIELD,
                cid::LOGIN_RES_QUERY_PUSH_SHIELD,
            ),
            (
                cid::GROUP_NORMAL_LIST_REQUEST,
                cid::GROUP_NORMAL_LIST_RESPONSE,
            ),
            (cid::GROUP_INFO_REQUEST, cid::GROUP_INFO_RESPONSE),
            (cid::FILE_HAS_OFFLINE_REQ, cid::FILE_HAS_OFFLINE_RES),
        ] {
            assert!(is_read_only(req));
            assert_eq!(rsp, req + 1, "{req:#06x}");
        }
        assert!(!is_read_only(cid::MSG_DATA), "a store is never sent twice");
        assert!(!is_read_only(cid::MSG_READ_ACK));
    }
}
