//! What route_server relayed in its first moments, for the msg_servers
//! that link a little later (not in the C++, which has no such thing).
//!
//! After a route_server restart every msg_server links again on its own
//! fast-retry schedule (`netlib::serv_info`: within about 0.25 s of the
//! restart). What the first one to link relays in the meantime (held
//! messages, new ones) is broadcast to the links open at that moment, as
//! the C++ does, so the msg_servers that link a few hundred ms later would
//! never see it live (only in history). So, for [`REPLAY_WINDOW_MS`] after
//! route_server starts, every relayed PDU is also kept here (at most
//! [`REPLAY_MAX`]), and a msg_server that lists its users
//! (`CID_OTHER_ONLINE_USER_INFO`, the first thing every msg_server sends
//! on a new link) within the window is sent what was kept and did not
//! reach its link yet, in order. msg_server then sends to route_server as
//! soon as its link is up, instead of waiting for the others to link
//! first.
//!
//! Never twice: a kept PDU names the links it reached (its sender among
//! them); when a msg_server's link among them closes, the PDU is
//! forgotten, since that msg_server may link again as a new link and must
//! not get it a second time. A connection that never lists users (a port
//! probe, a health check) is not a msg_server: it gets nothing from here,
//! and its close forgets nothing. After the window nothing is kept.
//!
//! Pure: the time is passed in; [`crate::route_conn`] sends.

use base::ImPdu;
use netlib::ConnId;
use std::collections::{HashSet, VecDeque};

/// How long after route_server starts relayed PDUs are kept for links that
/// open later (ms): several of msg_server's fast-retry periods (190-250
/// ms), with room for a loaded machine.
pub const REPLAY_WINDOW_MS: u64 = 2_000;
/// Most PDUs kept; past it, new ones are relayed only to the open links,
/// as in the C++.
pub const REPLAY_MAX: usize = 10_000;

/// The PDUs relayed since start, while in the window.
#[derive(Debug, Default)]
pub struct StartReplay {
    /// When route_server started (monotonic ms).
    started_at: u64,
    /// Each kept PDU with the links it reached.
    kept: VecDeque<(ImPdu, Vec<ConnId>)>,
    /// The open links that listed their users: msg_servers.
    msg_servers: HashSet<ConnId>,
}

impl StartReplay {
    /// Keeps for [`REPLAY_WINDOW_MS`] from `now`.
    pub fn new(now: u64) -> StartReplay {
        StartReplay {
            started_at: now,
            kept: VecDeque::new(),
            msg_servers: HashSet::new(),
        }
    }

    fn in_window(&self, now: u64) -> bool {
        now.saturating_sub(self.started_at) < REPLAY_WINDOW_MS
    }

    /// `pdu` was relayed at `now` to `reached` (its sender included).
    pub fn relayed(&mut self, now: u64, pdu: &ImPdu, reached: Vec<ConnId>) {
        if !self.in_window(now) {
            self.kept.clear();
            return;
        }
        if self.kept.len() < REPLAY_MAX {
            self.kept.push_back((pdu.clone(), reached));
        }
    }

    /// A one-to-one message relayed at `now` only to `targets` (its sender
    /// included), the links holding its users: the msg_servers that
    /// listed their users and are not among them hold neither user, so
    /// they count as reached; a link that has not listed its users yet
    /// (linking after a restart) is sent it when it does.
    pub fn relayed_targeted(&mut self, now: u64, pdu: &ImPdu, mut targets: Vec<ConnId>) {
        if !self.in_window(now) {
            self.kept.clear();
            return;
        }
        for link in &self.msg_servers {
            if !targets.contains(link) {
                targets.push(*link);
            }
        }
        self.relayed(now, pdu, targets);
    }

    /// `link` listed its users at `now` (it is a msg_server): what it is
    /// to be sent, in order (what was kept and did not reach it; nothing
    /// after the window).
    pub fn listed_users(&mut self, now: u64, link: ConnId) -> Vec<ImPdu> {
        if !self.in_window(now) {
            self.kept.clear();
            self.msg_servers.clear();
            return Vec::new();
        }
        self.msg_servers.insert(link);
        self.kept
            .iter_mut()
            .filter(|(_, reached)| !reached.contains(&link))
            .map(|(pdu, reached)| {
                reached.push(link);
                pdu.clone()
            })
            .collect()
    }

    /// `link` closed: if it was a msg_server's, what reached it is
    /// forgotten.
    pub fn closed(&mut self, link: ConnId) {
        if self.msg_servers.remove(&link) {
            self.kept.retain(|(_, reached)| !reached.contains(&link));
        }
    }

    /// How many PDUs are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.kept.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(n: u64) -> ConnId {
        ConnId::from_u64((1 << 32) | n)
    }

    fn pdu(seq: u16) -> ImPdu {
        let mut p = ImPdu::new(0, tt_proto::cid::MSG_DATA);
        p.set_seq_num(seq);
        p
    }

    fn seqs(pdus: &[ImPdu]) -> Vec<u16> {
        pdus.iter().map(ImPdu::seq_num).collect()
    }

    #[test]
    fn a_link_that_opens_in_the_window_gets_what_was_relayed_before_in_order() {
        let mut r = StartReplay::new(1_000);
        r.relayed(1_100, &pdu(1), vec![link(1)]);
        r.relayed(1_200, &pdu(2), vec![link(1)]);
        assert_eq!(seqs(&r.listed_users(1_300, link(2))), vec![1, 2]);
        r.relayed(1_400, &pdu(3), vec![link(1), link(2)]);
        assert_eq!(seqs(&r.listed_users(1_500, link(3))), vec![1, 2, 3]);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn nothing_is_kept_or_replayed_after_the_window() {
        let mut r = StartReplay::new(0);
        r.relayed(10, &pdu(1), vec![link(1)]);
        assert!(r.listed_users(REPLAY_WINDOW_MS, link(2)).is_empty());
        assert_eq!(r.len(), 0);
        r.relayed(REPLAY_WINDOW_MS + 1, &pdu(2), vec![link(1)]);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn what_reached_a_link_that_closed_is_never_sent_again() {
        let mut r = StartReplay::new(0);
        r.relayed(10, &pdu(1), vec![link(1)]);
        r.relayed(20, &pdu(2), vec![link(2), link(1)]);
        r.relayed(30, &pdu(3), vec![link(2)]);
        for l in [1, 2] {
            r.listed_users(5, link(l));
        }
        // Link 3 got 1, 2, 3; then it goes and its msg_server links again.
        assert_eq!(seqs(&r.listed_users(40, link(3))), vec![1, 2, 3]);
        r.closed(link(3));
        assert!(r.listed_users(50, link(4)).is_empty());
        // The sender of 1 going forgets 1 only.
        r.relayed(60, &pdu(4), vec![link(2)]);
        r.relayed(70, &pdu(5), vec![link(1)]);
        r.closed(link(1));
        assert_eq!(seqs(&r.listed_users(80, link(5))), vec![4]);
    }

    #[test]
    fn a_probe_gets_nothing_and_its_close_forgets_nothing() {
        let mut r = StartReplay::new(0);
        r.listed_users(1, link(1));
        r.relayed(10, &pdu(1), vec![link(1)]);
        // A health check connects (open while 2 is relayed) and goes.
        r.relayed(20, &pdu(2), vec![link(1), link(9)]);
        r.closed(link(9));
        assert_eq!(seqs(&r.listed_users(30, link(2))), vec![1, 2]);
    }

    #[test]
    fn what_reached_a_link_before_it_listed_its_users_is_not_sent_again() {
        let mut r = StartReplay::new(0);
        r.relayed(10, &pdu(1), vec![link(1)]);
        // Link 2 is open (not listed yet) when 2 is relayed.
        r.relayed(20, &pdu(2), vec![link(1), link(2)]);
        assert_eq!(seqs(&r.listed_users(30, link(2))), vec![1]);
    }

    #[test]
    fn a_targeted_message_reaches_later_linked_msg_servers_only() {
        let mut r = StartReplay::new(0);
        // 1 and 2 listed their users; 3 is open but has not yet.
        r.listed_users(1, link(1));
        r.listed_users(2, link(2));
        // Sent by 1 to 2 only (the receiver is there): 3 is not reached.
        r.relayed_targeted(10, &pdu(1), vec![link(2), link(1)]);
        assert_eq!(seqs(&r.listed_users(20, link(3))), vec![1]);
        // A listed msg_server holding neither user counts as reached.
        assert!(r.listed_users(30, link(2)).is_empty());
        r.relayed_targeted(REPLAY_WINDOW_MS, &pdu(2), vec![link(1)]);
        assert_eq!(r.len(), 0, "nothing kept after the window");
    }

    #[test]
    fn the_kept_pdus_are_bounded() {
        let mut r = StartReplay::new(0);
        for i in 0..REPLAY_MAX + 5 {
            r.relayed(1, &pdu(i as u16), vec![link(1)]);
        }
        assert_eq!(r.len(), REPLAY_MAX);
    }
}
