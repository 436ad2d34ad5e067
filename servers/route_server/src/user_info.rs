//! One user's presence as route_server sees it: the C++
//! `route_server/UserInfo.cpp` (`CUserInfo`).
//!
//! The C++ keeps one set of msg_server links and one tally of client types
//! per user, shared by all links. We keep the tally per link instead, so
//! that when a link is lost exactly the clients it reported go with it (the
//! C++ leaves them in the tally: a user whose PC was on a lost link stays
//! "online" for as long as another link reports any client of that user).
//!
//! It is flat, for a million users in one table: the tally is a list of
//! (link, client type, count) rows whose first row is held inline, so the
//! usual user (one client on one link) takes 24 bytes in the table and no
//! heap of its own (the C++ `CUserInfo` holds a `set` and a `map`; ours
//! held two hash maps, 356–383 bytes per user).

use netlib::ConnId;
use std::num::NonZeroU32;
use tt_proto::IM::BaseDefine::UserStatType;

pub use base::client_type::is_pc as is_pc_client;

/// `count` clients of `client_type` logged in through `link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    link: ConnId,
    client_type: u32,
    /// Never zero, so an absent `head` costs no tag.
    count: NonZeroU32,
}

/// `CUserInfo`: which msg_server links report this user, and how many
/// clients of each type on each.
///
/// Invariant: a user with no rows has no clients and is removed from the table; the first row is `head` (`None`
/// only when there is no row), the others are in `rest`.
#[derive(Debug, Default, Clone)]
pub struct UserInfo {
    head: Option<Row>,
    // Boxed on purpose: 8 bytes inline for the rare user with more rows,
    // where a bare Vec would cost every user 24.
    #[allow(clippy::box_collection)]
    rest: Option<Box<Vec<Row>>>,
}

impl UserInfo {
    fn rows(&self) -> impl Iterator<Item = &Row> + '_ {
        self.head
            .iter()
            .chain(self.rest.iter().flat_map(|r| r.iter()))
    }

    /// Keeps only the rows `keep` accepts, the first of the rest moving up
    /// into `head` when it goes.
    fn retain(&mut self, mut keep: impl FnMut(&Row) -> bool) {
        if let Some(rest) = &mut self.rest {
            rest.retain(&mut keep);
        }
        if self.head.as_ref().is_some_and(|h| !keep(h)) {
            self.head = self.rest.as_mut().and_then(|r| r.pop());
        }
        if self.rest.as_ref().is_some_and(|r| r.is_empty()) {
            self.rest = None;
        }
    }

    /// `FindRouteConn`: does `link` report a client of this user?
    #[cfg(test)]
    pub fn has_link(&self, link: ConnId) -> bool {
        self.rows().any(|r| r.link == link)
    }

    /// `GetRouteConnCount`.
    #[cfg(test)]
    pub fn link_count(&self) -> usize {
        let mut links: Vec<ConnId> = self.rows().map(|r| r.link).collect();
        links.sort();
        links.dedup();
        links.len()
    }

    /// The links that report a client of this user, each once.
    pub fn links(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.rows()
            .enumerate()
            .filter(|(i, r)| !self.rows().take(*i).any(|o| o.link == r.link))
            .map(|(_, r)| r.link)
    }

    /// `AddRouteConn` + `AddClientType`: one more client of `client_type`
    /// logged in through `link`.
    pub fn add_client(&mut self, link: ConnId, client_type: u32) {
        let same = |r: &Row| r.link == link && r.client_type == client_type;
        if let Some(h) = self.head.as_mut().filter(|h| same(h)) {
            h.count = h.count.saturating_add(1);
            return;
        }
        if let Some(r) = self
            .rest
            .as_mut()
            .and_then(|rest| rest.iter_mut().find(|r| same(r)))
        {
            r.count = r.count.saturating_add(1);
            return;
        }
        let row = Row {
            link,
            client_type,
            count: NonZeroU32::MIN,
        };
        if self.head.is_none() {
            self.head = Some(row);
        } else {
            self.rest.get_or_insert_with(Default::default).push(row);
        }
    }

    /// `RemoveClientType`, then `RemoveRouteConn` when that was the link's
    /// last client: one client of `client_type` logged out through `link`.
    /// A type the link never reported is ignored, as the C++ ignores it.
    pub fn remove_client(&mut self, link: ConnId, client_type: u32) {
        let same = |r: &Row| r.link == link && r.client_type == client_type;
        let row = match self.head.as_mut().filter(|h| same(h)) {
            Some(h) => Some(h),
            None => self
                .rest
                .as_mut()
                .and_then(|rest| rest.iter_mut().find(|r| same(r))),
        };
        if let Some(r) = row {
            match NonZeroU32::new(r.count.get() - 1) {
                Some(left) => r.count = left,
                None => self.retain(|r| !same(r)),
            }
        }
    }

    /// `RemoveRouteConn` for a lost link: forgets every client it reported.
    /// Returns `None` when it reported none, else whether one was a PC client.
    pub fn remove_link(&mut self, link: ConnId) -> Option<bool> {
        let mut found = None;
        for r in self.rows().filter(|r| r.link == link) {
            let pc = found.unwrap_or(false) || is_pc_client(r.client_type);
            found = Some(pc);
        }
        if found.is_some() {
            self.retain(|r| r.link != link);
        }
        found
    }

    /// No link reports any client: the user leaves the table.
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// `IsPCClientLogin`: is any PC client of this user logged in?
    pub fn is_pc_client_login(&self) -> bool {
        self.rows().any(|r| is_pc_client(r.client_type))
    }

    /// `GetStatus`: online only while a PC client is logged in; a user on
    /// mobile clients only counts as offline.
    pub fn status(&self) -> UserStatType {
        if self.is_pc_client_login() {
            UserStatType::USER_STATUS_ONLINE
        } else {
            UserStatType::USER_STATUS_OFFLINE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOWS: u32 = 0x01;
    const MAC: u32 = 0x02;
    const IOS: u32 = 0x11;
    const ANDROID: u32 = 0x12;

    fn link(n: u64) -> ConnId {
        ConnId::from_u64(n)
    }

    #[test]
    fn client_type_classes() {
        assert!(is_pc_client(WINDOWS) && is_pc_client(MAC));
        assert!(!is_pc_client(IOS) && !is_pc_client(ANDROID));
    }

    #[test]
    fn status_follows_pc_clients_only() {
        let mut u = UserInfo::default();
        u.add_client(link(1), ANDROID);
        assert_eq!(u.status(), UserStatType::USER_STATUS_OFFLINE);
        assert!(!u.is_pc_client_login() && !u.is_empty());
        u.add_client(link(2), MAC);
        assert_eq!(u.status(), UserStatType::USER_STATUS_ONLINE);
        u.remove_client(link(2), MAC);
        assert_eq!(u.status(), UserStatType::USER_STATUS_OFFLINE);
        assert!(
            !u.has_link(link(2)),
            "a link with no clients left is dropped"
        );
        assert!(u.has_link(link(1)));
    }

    #[test]
    fn counts_per_type_and_link() {
        let mut u = UserInfo::default();
        u.add_client(link(1), WINDOWS);
        u.add_client(link(1), WINDOWS);
        u.remove_client(link(1), WINDOWS);
        assert!(u.is_pc_client_login(), "one of two Windows clients remains");
        // An offline for a type this link never reported changes nothing.
        u.remove_client(link(1), MAC);
        u.remove_client(link(9), WINDOWS);
        assert!(u.is_pc_client_login());
        u.remove_client(link(1), WINDOWS);
        assert!(u.is_empty());
    }

    #[test]
    fn losing_a_link_takes_only_its_clients() {
        let mut u = UserInfo::default();
        u.add_client(link(1), WINDOWS);
        u.add_client(link(2), IOS);
        assert_eq!(u.remove_link(link(1)), Some(true), "a PC client went");
        assert_eq!(u.status(), UserStatType::USER_STATUS_OFFLINE);
        assert_eq!(u.link_count(), 1);
        assert!(u.remove_link(link(1)).is_none());
        assert_eq!(u.remove_link(link(2)), Some(false));
        assert!(u.is_empty());
    }

    #[test]
    fn many_rows_keep_their_counts_as_the_first_goes() {
        let mut u = UserInfo::default();
        u.add_client(link(1), ANDROID);
        u.add_client(link(2), WINDOWS);
        u.add_client(link(2), WINDOWS);
        u.add_client(link(3), IOS);
        u.add_client(link(2), MAC);
        assert_eq!(u.link_count(), 3);
        assert_eq!(
            u.links().collect::<Vec<_>>(),
            vec![link(1), link(2), link(3)]
        );
        u.remove_client(link(1), ANDROID); // the inline row goes
        assert!(!u.has_link(link(1)) && u.has_link(link(2)) && u.has_link(link(3)));
        u.remove_client(link(2), WINDOWS);
        assert!(u.is_pc_client_login());
        assert_eq!(u.remove_link(link(2)), Some(true));
        assert!(!u.is_pc_client_login() && !u.is_empty());
        assert_eq!(u.link_count(), 1);
        u.remove_client(link(3), IOS);
        assert!(u.is_empty());
        assert!(u.rest.is_none(), "no heap left behind");
    }

    #[test]
    fn the_usual_user_is_small_and_inline() {
        let mut u = UserInfo::default();
        u.add_client(link(1), ANDROID);
        assert!(u.rest.is_none());
        assert!(std::mem::size_of::<UserInfo>() <= 24);
    }
}
