//! The presence table every msg_server link shares: the globals of the
//! C++ `route_server/RouteConn.cpp` (`g_route_conn_map`, `g_user_map`,
//! `_UpdateUserStatus`, `_BroadcastMsg`), owned by the event loop as the
//! reactor's state.
//!
//! Differences from the C++, on purpose: a lost link takes exactly the
//! clients it reported with it (each user's tally is per link); users left without a PC client that
//! way are remembered for [`REANNOUNCE_WINDOW_MS`] so that a msg_server
//! reconnecting with them announces them online again. A duplicate-login
//! kick goes only to the links that hold the user or are logging it in
//! (see [`RouteState::kick_targets`]); the C++ sends it to every link.

use crate::user_info::UserInfo;
use base::ImPdu;
use netlib::{ConnId, Reactor};
use std::collections::{BTreeSet, HashMap};
use tt_proto::Command;
use tt_proto::IM::BaseDefine::UserStatType;

/// `USER_STATUS_OFFLINE` as `IMUserStatusUpdate.user_status` carries it.
pub const STATUS_OFFLINE: u32 = UserStatType::USER_STATUS_OFFLINE as u32;
/// `USER_STATUS_ONLINE`.
pub const STATUS_ONLINE: u32 = UserStatType::USER_STATUS_ONLINE as u32;

/// How long a user announced offline because its msg_server link was lost
/// is remembered: if a msg_server (re)connecting within this window reports
/// that user in its `CID_OTHER_ONLINE_USER_INFO`, the user is announced
/// online again. Covers a msg_server's reconnect back-off with room to spare.
pub const REANNOUNCE_WINDOW_MS: u64 = 5 * 60 * 1000;

/// How long a `CID_OTHER_SERVER_KICK_USER` marks its sender as logging the
/// user in. A msg_server sends the kick just before the status update of
/// the same login, on the same link, so the mark normally lives for one
/// link's queue; this only bounds marks whose status update never came.
pub const PENDING_LOGIN_MS: u64 = 10_000;

/// Most users marked as being logged in at once. Past it, kicks go to
/// every link (as in the C++) until the marks have aged out.
pub const MAX_PENDING_LOGINS: usize = 65_536;

/// The server state (`S` of the reactor): the C++ globals of `RouteConn.cpp`.
#[derive(Debug, Default)]
pub struct RouteState {
    /// Every open msg_server link (`g_route_conn_map`).
    links: BTreeSet<ConnId>,
    /// `g_user_map`: every user some link reports a client of, each a
    /// flat [`UserInfo`] (no heap of its own for one client on one link).
    /// Which users a link reports is found by scanning it when the link
    /// closes, as the C++ does (a per-link index cost ~10 bytes a user).
    users: HashMap<u32, UserInfo>,
    /// Users announced offline because their link was lost, with when
    /// (monotonic ms); see [`REANNOUNCE_WINDOW_MS`]. The C++ announces
    /// nothing on a lost link.
    dropped: HashMap<u32, u64>,
    /// Links that sent a kick for a user and have not yet reported that
    /// user online (the status update follows the kick), with when
    /// (monotonic ms). A kick from another link reaches them too, so two
    /// logins on different msg_servers at once still kick one of them.
    /// At most [`MAX_PENDING_LOGINS`] users; not in the C++.
    pending_logins: HashMap<u32, Vec<(ConnId, u64)>>,
    /// Until when (monotonic ms) kicks are broadcast because
    /// `pending_logins` was full and a mark could not be kept.
    broadcast_kicks_until: u64,
    /// What was relayed just after start, for the msg_servers that link a
    /// little later (not in the C++).
    pub start_replay: crate::start_replay::StartReplay,
}

impl RouteState {
    /// `GetUserInfo`.
    pub fn user(&self, user_id: u32) -> Option<&UserInfo> {
        self.users.get(&user_id)
    }

    /// Number of users in the table.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Number of open msg_server links.
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// Every open link, in a stable order (`g_route_conn_map`).
    pub fn links(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.links.iter().copied()
    }

    /// `OnConnect`: a msg_server link is open.
    pub fn add_link(&mut self, link: ConnId) {
        self.links.insert(link);
    }

    /// `_UpdateUserStatus`: one client of `user_id` of `client_type` went
    /// to `status` through `link`. Any status but offline (online, leave)
    /// counts as logged in. An offline for a client `link` never reported
    /// is ignored.
    pub fn update_user_status(
        &mut self,
        link: ConnId,
        user_id: u32,
        status: u32,
        client_type: u32,
    ) {
        if !self.links.contains(&link) {
            // Only an open link reports users; anything else would leak.
            log::warn!("status of user {user_id} from unknown link {link} ignored");
            return;
        };
        if status == STATUS_OFFLINE {
            let Some(user) = self.users.get_mut(&user_id) else {
                return;
            };
            user.remove_client(link, client_type);
            if user.is_empty() {
                self.users.remove(&user_id);
            }
        } else {
            self.users
                .entry(user_id)
                .or_default()
                .add_client(link, client_type);
            self.clear_pending_login(user_id, link);
        }
    }

    /// Where a `CID_OTHER_SERVER_KICK_USER` for `user_id` from `from` at
    /// `now` must go: every other link that holds a client of the user or
    /// is logging it in. `None` means every other link (the C++ way), when
    /// the table of logins in progress overflowed. Marks `from` as logging
    /// the user in, until its status update for the user arrives.
    ///
    /// Not in the C++, which sends every kick to every other link; a
    /// msg_server acts on a kick only for users it holds, so the links left
    /// out would have done nothing with it.
    pub fn kick_targets(&mut self, from: ConnId, user_id: u32, now: u64) -> Option<Vec<ConnId>> {
        let marked = self.mark_pending_login(user_id, from, now);
        if !marked {
            self.broadcast_kicks_until = now.saturating_add(PENDING_LOGIN_MS);
        }
        if now < self.broadcast_kicks_until {
            return None;
        }
        let mut targets: Vec<ConnId> = self
            .users
            .get(&user_id)
            .map(|u| u.links().filter(|l| *l != from).collect())
            .unwrap_or_default();
        if let Some(pending) = self.pending_logins.get(&user_id) {
            for &(link, _) in pending {
                if link != from && self.links.contains(&link) && !targets.contains(&link) {
                    targets.push(link);
                }
            }
        }
        Some(targets)
    }

    /// Where a relayed one-to-one message from `sender` to `receiver` goes:
    /// every link but `from` that holds a client of one of them or is
    /// logging one in (the receiver's clients, and the sender's other ones,
    /// which a msg_server delivers to). Not in the C++, which relays every
    /// message to every other msg_server: with K of them each message cost
    /// K-1 sends and K-1 msg_servers a PDU to drop.
    ///
    /// `None` when no link holds or is logging in the receiver: the message
    /// then goes to every other link, as in the C++. Its msg_server may have
    /// answered the receiver's login before its status update got here
    /// (links are read in whatever order the kernel makes them readable,
    /// and under load one link's bytes can wait behind another's), and that
    /// msg_server holds the user already; an offline receiver costs the
    /// C++'s broadcast.
    pub fn message_targets(&self, from: ConnId, sender: u32, receiver: u32) -> Option<Vec<ConnId>> {
        let mut targets: Vec<ConnId> = Vec::new();
        let mut receiver_known = false;
        for user_id in [receiver, sender] {
            let held = self.users.get(&user_id).into_iter().flat_map(|u| u.links());
            let logging_in = self
                .pending_logins
                .get(&user_id)
                .into_iter()
                .flatten()
                .map(|&(link, _)| link)
                .filter(|link| self.links.contains(link));
            for link in held.chain(logging_in) {
                if user_id == receiver {
                    receiver_known = true;
                }
                if link != from && !targets.contains(&link) {
                    targets.push(link);
                }
            }
        }
        receiver_known.then_some(targets)
    }

    /// Marks `link` as logging `user_id` in at `now`; false when the table
    /// is full.
    fn mark_pending_login(&mut self, user_id: u32, link: ConnId, now: u64) -> bool {
        if !self.pending_logins.contains_key(&user_id)
            && self.pending_logins.len() >= MAX_PENDING_LOGINS
        {
            return false;
        }
        let marks = self.pending_logins.entry(user_id).or_default();
        match marks.iter_mut().find(|(l, _)| *l == link) {
            Some(mark) => mark.1 = now,
            None => marks.push((link, now)),
        }
        true
    }

    /// `link` reported `user_id` online: its login is no longer pending.
    fn clear_pending_login(&mut self, user_id: u32, link: ConnId) {
        if let Some(marks) = self.pending_logins.get_mut(&user_id) {
            marks.retain(|(l, _)| *l != link);
            if marks.is_empty() {
                self.pending_logins.remove(&user_id);
            }
        }
    }

    /// Forgets the login marks older than [`PENDING_LOGIN_MS`] before `now`
    /// and those of closed links.
    pub fn forget_pending_logins(&mut self, now: u64) {
        let links = &self.links;
        self.pending_logins.retain(|_, marks| {
            marks.retain(|(link, at)| {
                links.contains(link) && now.saturating_sub(*at) < PENDING_LOGIN_MS
            });
            !marks.is_empty()
        });
    }

    /// `Close` (the user-table part): forgets `link` and every client it
    /// reported. Returns the users it had a PC client of: their presence
    /// may have changed. Those left with no PC client are remembered as
    /// dropped at `now`.
    pub fn remove_link(&mut self, link: ConnId, now: u64) -> Vec<u32> {
        if !self.links.remove(&link) {
            return Vec::new();
        }
        let mut had_pc = Vec::new();
        let dropped = &mut self.dropped;
        self.users.retain(|&user_id, user| {
            let Some(lost_pc) = user.remove_link(link) else {
                return true;
            };
            if lost_pc {
                had_pc.push(user_id);
                if !user.is_pc_client_login() {
                    dropped.insert(user_id, now);
                }
            }
            !user.is_empty()
        });
        had_pc.sort_unstable();
        had_pc
    }

    /// Forgets the users dropped longer than [`REANNOUNCE_WINDOW_MS`] before `now`.
    pub fn forget_dropped(&mut self, now: u64) {
        self.dropped
            .retain(|_, at| now.saturating_sub(*at) < REANNOUNCE_WINDOW_MS);
    }

    /// A msg_server (re)connecting lists `user_id`: true when the user was
    /// announced offline with a lost link and now has a PC client again,
    /// so it must be announced online (it is then no longer remembered).
    pub fn take_reannounce(&mut self, user_id: u32) -> bool {
        if !self.dropped.contains_key(&user_id) {
            return false;
        }
        if !self.user(user_id).is_some_and(UserInfo::is_pc_client_login) {
            return false;
        }
        self.dropped.remove(&user_id);
        true
    }

    /// A status update of `user_id` supersedes its being dropped with a link.
    pub fn clear_dropped(&mut self, user_id: u32) {
        self.dropped.remove(&user_id);
    }

    /// `_BroadcastMsg`: sends `pdu` to every open link but `except`. A link
    /// whose send fails is being closed by the reactor; the others still
    /// get it.
    pub fn broadcast(&self, net: &mut Reactor<RouteState>, pdu: &ImPdu, except: Option<ConnId>) {
        for link in self.links() {
            if Some(link) != except {
                // A failure means that link is closing; its on_close cleans up.
                let _ = net.send_pdu(link, pdu);
            }
        }
    }

    /// `_BroadcastMsg` of a notify we originate: `msg` under its command,
    /// seq 0, to every open link. Encoding fails only for a body over the
    /// PDU limit; that is logged and nothing sent.
    pub fn broadcast_msg<M: Command>(&self, net: &mut Reactor<RouteState>, msg: &M) {
        match ImPdu::for_msg(0, msg) {
            Ok(pdu) => self.broadcast(net, &pdu, None),
            Err(e) => log::error!("cannot encode command {:#06x}: {e}", M::CID),
        }
    }

    /// Number of users with a login mark.
    #[cfg(test)]
    pub fn pending_login_count(&self) -> usize {
        self.pending_logins.len()
    }

    /// Number of users remembered as dropped (tests, metrics).
    pub fn dropped_count(&self) -> usize {
        self.dropped.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOWS: u32 = 0x01;
    const ANDROID: u32 = 0x12;

    fn link(n: u64) -> ConnId {
        ConnId::from_u64(n)
    }

    fn state_with_links(n: u64) -> RouteState {
        let mut s = RouteState::default();
        for i in 1..=n {
            s.add_link(link(i));
        }
        s
    }

    #[test]
    fn online_then_offline_empties_the_table() {
        let mut s = state_with_links(1);
        s.update_user_status(link(1), 7, STATUS_ONLINE, WINDOWS);
        assert_eq!(
            s.user(7).unwrap().status(),
            UserStatType::USER_STATUS_ONLINE
        );
        s.update_user_status(link(1), 7, STATUS_OFFLINE, WINDOWS);
        assert_eq!(s.user_count(), 0);
        assert!(s.links.contains(&link(1)), "the link stays");
    }

    #[test]
    fn offline_from_a_link_that_never_reported_is_ignored() {
        let mut s = state_with_links(2);
        s.update_user_status(link(1), 7, STATUS_ONLINE, WINDOWS);
        s.update_user_status(link(2), 7, STATUS_OFFLINE, WINDOWS);
        assert!(s.user(7).unwrap().is_pc_client_login());
        s.update_user_status(link(2), 8, STATUS_OFFLINE, WINDOWS);
        assert!(s.user(8).is_none());
    }

    #[test]
    fn leave_counts_as_logged_in() {
        let mut s = state_with_links(1);
        s.update_user_status(link(1), 7, UserStatType::USER_STATUS_LEAVE as u32, WINDOWS);
        assert_eq!(
            s.user(7).unwrap().status(),
            UserStatType::USER_STATUS_ONLINE
        );
    }

    #[test]
    fn unknown_link_adds_nothing() {
        let mut s = state_with_links(1);
        s.update_user_status(link(9), 7, STATUS_ONLINE, WINDOWS);
        assert_eq!(s.user_count(), 0);
    }

    #[test]
    fn a_kick_goes_only_where_the_user_is() {
        let mut s = state_with_links(3);
        s.update_user_status(link(2), 7, STATUS_ONLINE, ANDROID);
        // Link 1 logs user 7 in: only link 2 holds it.
        assert_eq!(s.kick_targets(link(1), 7, 0), Some(vec![link(2)]));
        // A user nobody holds: the kick goes nowhere.
        assert_eq!(s.kick_targets(link(1), 8, 0), Some(vec![]));
        // Link 1's login of user 7 is marked until its status update.
        assert_eq!(s.kick_targets(link(3), 7, 1), Some(vec![link(2), link(1)]));
        s.update_user_status(link(1), 7, STATUS_ONLINE, ANDROID);
        s.update_user_status(link(2), 7, STATUS_OFFLINE, ANDROID);
        assert_eq!(s.kick_targets(link(3), 7, 2), Some(vec![link(1)]));
        s.forget_pending_logins(PENDING_LOGIN_MS - 1);
        assert_eq!(
            s.pending_login_count(),
            2,
            "users 7 (link 3) and 8 (link 1)"
        );
        s.forget_pending_logins(2 + PENDING_LOGIN_MS);
        assert_eq!(s.pending_login_count(), 0);
    }

    #[test]
    fn a_message_goes_to_the_links_of_either_user() {
        let mut s = state_with_links(4);
        s.update_user_status(link(2), 7, STATUS_ONLINE, ANDROID);
        s.update_user_status(link(1), 8, STATUS_ONLINE, ANDROID);
        s.update_user_status(link(3), 8, STATUS_ONLINE, WINDOWS);
        // From link 1 (user 8's phone) to user 7: 7's link and 8's PC.
        assert_eq!(
            s.message_targets(link(1), 8, 7),
            Some(vec![link(2), link(3)])
        );
        // From 7 to 8: 8's phone and PC.
        assert_eq!(
            s.message_targets(link(2), 7, 8),
            Some(vec![link(1), link(3)])
        );
        // A receiver held only by the sending link: nothing to relay.
        s.update_user_status(link(2), 6, STATUS_ONLINE, ANDROID);
        assert_eq!(s.message_targets(link(2), 7, 6), Some(vec![]));
        // User 9 is nowhere we know of: every other link, as in the C++
        // (its login may be answered already, its status on the way).
        assert_eq!(s.message_targets(link(2), 7, 9), None);
        // Link 4 is logging user 9 in: it gets 9's messages.
        s.kick_targets(link(4), 9, 0);
        assert_eq!(
            s.message_targets(link(1), 8, 9),
            Some(vec![link(4), link(3)])
        );
        // Once 9 is gone again, the broadcast is back.
        s.update_user_status(link(4), 9, STATUS_ONLINE, ANDROID);
        s.update_user_status(link(4), 9, STATUS_OFFLINE, ANDROID);
        assert_eq!(s.message_targets(link(1), 8, 9), None);
    }

    #[test]
    fn a_full_login_table_falls_back_to_every_link() {
        let mut s = state_with_links(2);
        for user in 0..MAX_PENDING_LOGINS as u32 {
            assert!(s.kick_targets(link(1), user, 0).is_some());
        }
        assert_eq!(s.kick_targets(link(1), u32::MAX, 5), None);
        assert_eq!(s.kick_targets(link(2), 1, 6), None, "while marks are lost");
        s.forget_pending_logins(PENDING_LOGIN_MS);
        assert_eq!(
            s.kick_targets(link(2), 1, 5 + PENDING_LOGIN_MS),
            Some(vec![])
        );
    }

    #[test]
    fn losing_a_link_reports_pc_users_and_keeps_others() {
        let mut s = state_with_links(2);
        s.update_user_status(link(1), 1, STATUS_ONLINE, WINDOWS);
        s.update_user_status(link(1), 2, STATUS_ONLINE, WINDOWS);
        s.update_user_status(link(2), 2, STATUS_ONLINE, ANDROID);
        s.update_user_status(link(1), 3, STATUS_ONLINE, ANDROID);
        s.update_user_status(link(2), 4, STATUS_ONLINE, WINDOWS);
        s.update_user_status(link(1), 4, STATUS_ONLINE, WINDOWS);
        let had_pc = s.remove_link(link(1), 1000);
        assert_eq!(had_pc, vec![1, 2, 4]);
        assert!(s.user(1).is_none() && s.user(3).is_none());
        assert_eq!(
            s.user(2).unwrap().status(),
            UserStatType::USER_STATUS_OFFLINE
        );
        assert_eq!(
            s.user(4).unwrap().status(),
            UserStatType::USER_STATUS_ONLINE
        );
        assert_eq!(s.link_count(), 1);
        // Users 1 and 2 lost their last PC client; user 4 still has one.
        assert_eq!(s.dropped_count(), 2);
        s.forget_dropped(1000 + REANNOUNCE_WINDOW_MS - 1);
        assert_eq!(s.dropped_count(), 2);
        s.forget_dropped(1000 + REANNOUNCE_WINDOW_MS);
        assert_eq!(s.dropped_count(), 0);
        assert!(
            s.remove_link(link(1), 0).is_empty(),
            "a second close is a no-op"
        );
        s.remove_link(link(2), 0);
        assert_eq!(s.user_count(), 0);
    }
}
