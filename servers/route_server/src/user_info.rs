//! One user's presence as route_server sees it: the C++
//! `route_server/UserInfo.cpp` (`CUserInfo`).
//!
//! The C++ keeps one set of msg_server links and one tally of client types
//! per user, shared by all links. We keep the tally per link instead, so
//! that when a link is lost exactly the clients it reported go with it (the
//! C++ leaves them in the tally: a user whose PC was on a lost link stays
//! "online" for as long as another link reports any client of that user).

use netlib::ConnId;
use std::collections::{BTreeMap, HashMap};
use tt_proto::IM::BaseDefine::UserStatType;

pub use base::client_type::is_pc as is_pc_client;

/// Number of logged-in clients per client type, on one link.
pub type ClientTally = BTreeMap<u32, u32>;

/// `CUserInfo`: which msg_server links report this user, and how many
/// clients of each type on each.
///
/// Invariant: no link has an empty tally, and no tally holds a zero count;
/// so a user with no links has no clients and is removed from the table.
#[derive(Debug, Default, Clone)]
pub struct UserInfo {
    links: HashMap<ConnId, ClientTally>,
}

impl UserInfo {
    /// `FindRouteConn`: does `link` report a client of this user?
    pub fn has_link(&self, link: ConnId) -> bool {
        self.links.contains_key(&link)
    }

    /// `GetRouteConnCount`.
    #[cfg(test)]
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// `AddRouteConn` + `AddClientType`: one more client of `client_type`
    /// logged in through `link`.
    pub fn add_client(&mut self, link: ConnId, client_type: u32) {
        *self
            .links
            .entry(link)
            .or_default()
            .entry(client_type)
            .or_insert(0) += 1;
    }

    /// `RemoveClientType`, then `RemoveRouteConn` when that was the link's
    /// last client: one client of `client_type` logged out through `link`.
    /// A type the link never reported is ignored, as the C++ ignores it.
    pub fn remove_client(&mut self, link: ConnId, client_type: u32) {
        let Some(tally) = self.links.get_mut(&link) else {
            return;
        };
        if let Some(count) = tally.get_mut(&client_type) {
            *count -= 1;
            if *count == 0 {
                tally.remove(&client_type);
            }
        }
        if tally.is_empty() {
            self.links.remove(&link);
        }
    }

    /// `RemoveRouteConn` for a lost link: forgets every client it reported
    /// and returns them.
    pub fn remove_link(&mut self, link: ConnId) -> Option<ClientTally> {
        self.links.remove(&link)
    }

    /// No link reports any client: the user leaves the table.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    fn client_types(&self) -> impl Iterator<Item = u32> + '_ {
        self.links.values().flat_map(|tally| tally.keys().copied())
    }

    /// `IsPCClientLogin`: is any PC client of this user logged in?
    pub fn is_pc_client_login(&self) -> bool {
        self.client_types().any(is_pc_client)
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
        let gone = u.remove_link(link(1)).unwrap();
        assert_eq!(gone.get(&WINDOWS), Some(&1));
        assert_eq!(u.status(), UserStatType::USER_STATUS_OFFLINE);
        assert_eq!(u.link_count(), 1);
        assert!(u.remove_link(link(1)).is_none());
        u.remove_link(link(2));
        assert!(u.is_empty());
    }
}
