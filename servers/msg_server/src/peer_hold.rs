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
use std::collections::{HashMap, HashSet, VecDeque};
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

/// The read-only requests in flight on each db_proxy link.
///
/// Each goes out under a seq of msg_server's own, a tag unique among what
/// is in flight on its link, instead of the client's: two clients (or one
/// client twice) may use the same seq for the same command on one link,
/// and the reply (db_proxy echoes the seq) must clear the request it
/// answers and no other, or the wrong one is sent again when the link
/// dies. The reply gets the client's seq back ([`InFlight::answered`])
/// before it is handled. Every request of a read-only command is tagged,
/// those that are not sent again too (so no reply of such a command on the
/// link can be mistaken for another's); past [`IN_FLIGHT_MAX`] a request
/// goes untagged, with its own seq, and is not remembered.
#[derive(Debug, Default)]
pub struct InFlight {
    links: HashMap<ConnId, LinkInFlight>,
    count: usize,
}

/// One link's requests in flight, oldest first, and its next tag.
#[derive(Debug, Default)]
struct LinkInFlight {
    next_tag: u16,
    /// (when sent, tag, the request with the client's seq).
    sent: VecDeque<(u64, u16, DbRequest)>,
    /// The tags in `sent`.
    tags: HashSet<u16>,
}

impl LinkInFlight {
    /// A tag no request in flight here has (there are fewer than 65,536).
    fn new_tag(&mut self) -> u16 {
        loop {
            let tag = self.next_tag;
            self.next_tag = self.next_tag.wrapping_add(1);
            if self.tags.insert(tag) {
                return tag;
            }
        }
    }
}

impl InFlight {
    /// `req` (a read-only command) goes on `link` at `now`: the seq it
    /// goes under, or `None` past the bound (it goes as it is and is not
    /// remembered).
    pub fn sent(&mut self, link: ConnId, now: u64, req: DbRequest) -> Option<u16> {
        if self.count >= IN_FLIGHT_MAX {
            return None;
        }
        let l = self.links.entry(link).or_default();
        let tag = l.new_tag();
        l.sent.push_back((now, tag, req));
        self.count += 1;
        Some(tag)
    }

    /// A reply `reply_command` under seq `tag` came on `link`: the request
    /// it answers (the command before it, under that tag) is forgotten,
    /// and the client's seq for the reply returned; `None` when it answers
    /// nothing remembered (its seq is the request's own).
    pub fn answered(&mut self, link: ConnId, reply_command: u16, tag: u16) -> Option<u16> {
        let l = self.links.get_mut(&link)?;
        let request = reply_command.wrapping_sub(1);
        let i = l
            .sent
            .iter()
            .position(|(_, t, r)| *t == tag && r.pdu.command_id() == request)?;
        let (_, _, req) = l.sent.remove(i)?;
        l.tags.remove(&tag);
        self.count -= 1;
        if l.sent.is_empty() {
            self.links.remove(&link);
        }
        Some(req.pdu.seq_num())
    }

    /// `link` died: what was in flight on it to be sent again, oldest
    /// first, each with the client's seq.
    pub fn lost(&mut self, link: ConnId) -> Vec<DbRequest> {
        let l = self.links.remove(&link).unwrap_or_default();
        self.count -= l.sent.len();
        l.sent
            .into_iter()
            .map(|(_, _, r)| r)
            .filter(|r| r.resend)
            .collect()
    }

    /// Forgets requests older than the age bound at `now`.
    pub fn expire(&mut self, now: u64) {
        let mut dropped = 0;
        self.links.retain(|_, l| {
            while let Some((at, _, _)) = l.sent.front() {
                if now.saturating_sub(*at) <= IN_FLIGHT_MAX_AGE_MS {
                    break;
                }
                if let Some((_, tag, _)) = l.sent.pop_front() {
                    l.tags.remove(&tag);
                }
                dropped += 1;
            }
            !l.sent.is_empty()
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

    fn answer(f: &mut InFlight, link: ConnId, request: u16, tag: u16) -> Option<u16> {
        f.answered(link, request + 1, tag)
    }

    #[test]
    fn replies_clear_what_they_answer_and_a_lost_link_gives_back_the_rest() {
        let mut f = InFlight::default();
        let t1 = f.sent(link(1), 0, req(cid::MSG_LIST_REQUEST, 7)).unwrap();
        let t2 = f
            .sent(link(1), 0, req(cid::MSG_UNREAD_CNT_REQUEST, 7))
            .unwrap();
        let t3 = f.sent(link(1), 0, req(cid::MSG_LIST_REQUEST, 8)).unwrap();
        let t4 = f.sent(link(2), 0, req(cid::MSG_LIST_REQUEST, 7)).unwrap();
        assert!(t1 != t2 && t2 != t3 && t1 != t3, "unique on a link");
        assert_eq!(answer(&mut f, link(1), cid::MSG_LIST_REQUEST, t1), Some(7));
        assert_eq!(
            answer(&mut f, link(1), cid::MSG_LIST_REQUEST, t2),
            None,
            "t2 is another command's"
        );
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
        let _ = (t3, t4);
        f.expire(IN_FLIGHT_MAX_AGE_MS + 1);
        assert_eq!(f.len(), 0);
        assert!(f.lost(link(2)).is_empty());
    }

    #[test]
    fn two_clients_with_one_seq_on_one_link_are_told_apart() {
        // Client A and client B both ask for a message list under seq 7 on
        // one link; B's reply comes first. The link then dies: A's request
        // (unanswered) is sent again, B's (answered) is not.
        let mut f = InFlight::default();
        let mut a = req(cid::MSG_LIST_REQUEST, 7);
        a.pdu
            .set_msg(&tt_proto::IM::Message::IMGetMsgListReq {
                user_id: 1,
                ..Default::default()
            })
            .unwrap();
        let mut b = req(cid::MSG_LIST_REQUEST, 7);
        b.pdu
            .set_msg(&tt_proto::IM::Message::IMGetMsgListReq {
                user_id: 2,
                ..Default::default()
            })
            .unwrap();
        let ta = f.sent(link(1), 0, a).unwrap();
        let tb = f.sent(link(1), 0, b).unwrap();
        assert_ne!(ta, tb);
        assert_eq!(
            answer(&mut f, link(1), cid::MSG_LIST_REQUEST, tb),
            Some(7),
            "B's reply gets B's seq back"
        );
        let again = f.lost(link(1));
        assert_eq!(again.len(), 1);
        let msg: tt_proto::IM::Message::IMGetMsgListReq = again[0].pdu.msg().unwrap();
        assert_eq!(msg.user_id, 1, "A's request is the one sent again");
        assert_eq!(again[0].pdu.seq_num(), 7, "under A's own seq");
    }

    #[test]
    fn tags_skip_those_in_flight_and_past_the_bound_nothing_is_tagged() {
        let mut f = InFlight::default();
        let first = f.sent(link(1), 0, req(cid::MSG_LIST_REQUEST, 1)).unwrap();
        // Wrap the counter all the way round: the tag in flight is skipped.
        for _ in 0..u16::MAX {
            let t = f.sent(link(1), 0, req(cid::GROUP_INFO_REQUEST, 1)).unwrap();
            assert_ne!(t, first);
            answer(&mut f, link(1), cid::GROUP_INFO_REQUEST, t).unwrap();
        }
        assert_eq!(f.len(), 1);
        for i in 1..IN_FLIGHT_MAX {
            assert!(f
                .sent(link(2), 0, req(cid::MSG_LIST_REQUEST, i as u16))
                .is_some());
        }
        assert_eq!(f.sent(link(3), 0, req(cid::MSG_LIST_REQUEST, 1)), None);
    }

    #[test]
    fn requests_not_to_be_sent_again_are_tagged_but_not_given_back() {
        let mut f = InFlight::default();
        let mut r = req(cid::GROUP_INFO_REQUEST, 0);
        r.resend = false;
        let t = f.sent(link(1), 0, r).unwrap();
        assert_eq!(f.len(), 1);
        assert!(f.lost(link(1)).is_empty());
        assert_eq!(answer(&mut f, link(1), cid::GROUP_INFO_REQUEST, t), None);
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
