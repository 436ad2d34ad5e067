//! Who is logged in here, through which connections: the C++ `ImUser.cpp`
//! (`CImUser`, `CImUserManager`).
//!
//! One [`ImUser`] per user with at least one validated connection on this
//! msg_server, keyed by user id. Each connection is kept with its client
//! type and online status, so broadcasts that filter PC or mobile clients
//! and the lists sent to route_server need no second table.
//!
//! Difference from the C++: it also files users by login name while their
//! login is being validated (`AddUnValidateMsgConn`). We do not: the
//! validate reply names its connection through the attach data, and the
//! connection itself remembers the login name it asked for
//! ([`crate::msg_conn::ClientConn::login_name`]), which is all the C++ checks.

use netlib::ConnId;
use std::collections::{HashMap, HashSet};

/// `CLIENT_TYPE_FLAG_PC`.
pub const CLIENT_TYPE_FLAG_PC: u32 = 0x01;
/// `CLIENT_TYPE_FLAG_MOBILE`.
pub const CLIENT_TYPE_FLAG_MOBILE: u32 = 0x02;
/// `CLIENT_TYPE_FLAG_BOTH`.
pub const CLIENT_TYPE_FLAG_BOTH: u32 = 0x03;

/// `IM_PC_LOGIN_STATUS_ON`.
pub const PC_LOGIN_STATUS_ON: u32 = 1;

pub use base::client_type::{is_mobile, is_pc, same_class};

/// One validated connection of a user, as the user table needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserConn {
    /// `GetClientType`.
    pub client_type: u32,
    /// `GetOnlineStatus` (online, leave).
    pub online_status: u32,
}

/// `CImUser`: a user logged in here.
#[derive(Debug, Clone)]
pub struct ImUser {
    /// `m_user_id`.
    pub user_id: u32,
    /// `m_login_name` as the user typed it at its first login here.
    pub login_name: String,
    /// `m_nick_name`, for push texts.
    pub nick_name: String,
    /// `m_pc_login_status`: whether route_server says a PC client of this
    /// user is on somewhere (silent pushes to its mobile then).
    pub pc_login_status: u32,
    /// `m_conn_map`: the validated connections, sorted by id. A user has
    /// one or a few, and a sorted `Vec` of them costs 16 bytes each where
    /// a `BTreeMap`'s first node costs about 190 (measured per client in
    /// the README).
    conns: Vec<(ConnId, UserConn)>,
}

impl ImUser {
    /// A user with no connection yet.
    pub fn new(user_id: u32, login_name: &str, nick_name: &str) -> ImUser {
        ImUser {
            user_id,
            login_name: login_name.to_string(),
            nick_name: nick_name.to_string(),
            pc_login_status: 0,
            conns: Vec::with_capacity(1),
        }
    }

    /// `GetMsgConn`: is `conn` one of this user's connections?
    pub fn has_conn(&self, conn: ConnId) -> bool {
        self.position(conn).is_ok()
    }

    /// Where `conn` is in [`Self::conns`], or where it would go.
    fn position(&self, conn: ConnId) -> Result<usize, usize> {
        self.conns.binary_search_by_key(&conn, |&(id, _)| id)
    }

    /// Adds `conn` (or updates it); true when it is new.
    fn insert_conn(&mut self, conn: ConnId, info: UserConn) -> bool {
        match self.position(conn) {
            Ok(i) => {
                self.conns[i].1 = info;
                false
            }
            Err(i) => {
                self.conns.insert(i, (conn, info));
                true
            }
        }
    }

    /// Removes `conn`; true when it was there.
    fn remove_conn(&mut self, conn: ConnId) -> bool {
        match self.position(conn) {
            Ok(i) => {
                self.conns.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// `BroadcastPdu` targets: every connection but `except`.
    pub fn targets(&self, except: Option<ConnId>) -> Vec<ConnId> {
        self.targets_where(except, |_| true)
    }

    /// `BroadcastPduWithOutMobile` targets: the PC connections but `except`.
    pub fn pc_targets(&self, except: Option<ConnId>) -> Vec<ConnId> {
        self.targets_where(except, |c| is_pc(c.client_type))
    }

    /// `BroadcastPduToMobile` targets: the mobile connections but `except`.
    pub fn mobile_targets(&self, except: Option<ConnId>) -> Vec<ConnId> {
        self.targets_where(except, |c| is_mobile(c.client_type))
    }

    fn targets_where(
        &self,
        except: Option<ConnId>,
        keep: impl Fn(&UserConn) -> bool,
    ) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(id, c)| Some(*id) != except && keep(c))
            .map(|&(id, _)| id)
            .collect()
    }

    /// `KickOutSameClientType` targets: connections of the same class of
    /// client as `client_type`, but `except`.
    pub fn same_class_targets(&self, client_type: u32, except: Option<ConnId>) -> Vec<ConnId> {
        self.targets_where(except, |c| same_class(c.client_type, client_type))
    }
}

/// `CImUserManager`: the users logged in here.
#[derive(Debug, Default)]
pub struct ImUserManager {
    users: HashMap<u32, ImUser>,
    /// Validated connections over all users, kept so that the `MaxConnCnt`
    /// check of every login costs O(1).
    conn_total: usize,
    /// The users with a PC connection: every status change anywhere is
    /// sent to the PC clients here, and this keeps that O(PC users), not
    /// O(users) (at 19,000 mobile clients a process, a login elsewhere
    /// cost each msg_server a walk of all of them).
    pc_users: HashSet<u32>,
}

impl ImUserManager {
    /// `GetImUserById`.
    pub fn get(&self, user_id: u32) -> Option<&ImUser> {
        self.users.get(&user_id)
    }

    /// `GetImUserById`, to change it.
    pub fn get_mut(&mut self, user_id: u32) -> Option<&mut ImUser> {
        self.users.get_mut(&user_id)
    }

    /// Number of users logged in here.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// `ValidateMsgConn` (and `AddImUserById` for a first connection):
    /// `conn` of `client_type` is now a validated connection of `user_id`.
    pub fn add_conn(
        &mut self,
        user_id: u32,
        login_name: &str,
        nick_name: &str,
        conn: ConnId,
        info: UserConn,
    ) {
        let user = self
            .users
            .entry(user_id)
            .or_insert_with(|| ImUser::new(user_id, login_name, nick_name));
        user.nick_name = nick_name.to_string();
        if user.insert_conn(conn, info) {
            self.conn_total += 1;
        }
        self.refile_pc(user_id);
    }

    /// Files `user_id` in [`Self::pc_users`] or out of it, after its
    /// connections changed.
    fn refile_pc(&mut self, user_id: u32) {
        let has_pc = self
            .users
            .get(&user_id)
            .is_some_and(|u| u.conns.iter().any(|(_, c)| is_pc(c.client_type)));
        if has_pc {
            self.pc_users.insert(user_id);
        } else {
            self.pc_users.remove(&user_id);
        }
    }

    /// `DelMsgConn`, then `RemoveImUser` when it was the user's last
    /// connection. True when `conn` was one of the user's.
    pub fn remove_conn(&mut self, user_id: u32, conn: ConnId) -> bool {
        let Some(user) = self.users.get_mut(&user_id) else {
            return false;
        };
        let had = user.remove_conn(conn);
        if had {
            self.conn_total -= 1;
        }
        if user.conns.is_empty() {
            self.users.remove(&user_id);
        }
        self.refile_pc(user_id);
        had
    }

    /// `GetMsgConnByHandle`: the connection named by `handle` (from attach
    /// data) if it is one of `user_id`'s validated connections.
    pub fn conn_of(&self, user_id: u32, handle: u64) -> Option<ConnId> {
        let conn = ConnId::from_u64(handle);
        self.get(user_id).filter(|u| u.has_conn(conn)).map(|_| conn)
    }

    /// `GetOnlineUserInfo`: (user id, client type, online status) of every
    /// validated connection, for route_server.
    pub fn online_user_info(&self) -> Vec<(u32, UserConn)> {
        let mut out: Vec<(u32, UserConn)> = self
            .users
            .values()
            .flat_map(|u| u.conns.iter().map(move |&(_, c)| (u.user_id, c)))
            .collect();
        out.sort_by_key(|(uid, _)| *uid);
        out
    }

    /// `GetUserConnCnt`'s total: validated connections, for login_server.
    pub fn conn_count(&self) -> usize {
        self.conn_total
    }

    /// `CImUserManager::BroadcastPdu` targets: every connection of the
    /// class(es) in `client_type_flag`.
    pub fn all_targets(&self, client_type_flag: u32) -> Vec<ConnId> {
        let keep: fn(u32) -> bool = match client_type_flag {
            CLIENT_TYPE_FLAG_PC => is_pc,
            CLIENT_TYPE_FLAG_MOBILE => is_mobile,
            CLIENT_TYPE_FLAG_BOTH => |_| true,
            _ => return Vec::new(),
        };
        // PC clients are found from the users filed as having one.
        let users: Box<dyn Iterator<Item = &ImUser>> = if client_type_flag == CLIENT_TYPE_FLAG_PC {
            Box::new(self.pc_users.iter().filter_map(|u| self.users.get(u)))
        } else {
            Box::new(self.users.values())
        };
        users
            .flat_map(|u| u.conns.iter())
            .filter(|(_, c)| keep(c.client_type))
            .map(|&(id, _)| id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOWS: u32 = 0x01;
    const MAC: u32 = 0x02;
    const IOS: u32 = 0x11;
    const ANDROID: u32 = 0x12;

    fn conn(n: u64) -> ConnId {
        ConnId::from_u64((1 << 32) | n)
    }

    fn uc(client_type: u32) -> UserConn {
        UserConn {
            client_type,
            online_status: 1,
        }
    }

    #[test]
    fn client_classes() {
        assert!(is_pc(WINDOWS) && is_pc(MAC) && is_mobile(IOS) && is_mobile(ANDROID));
        assert!(same_class(WINDOWS, MAC));
        assert!(same_class(IOS, ANDROID));
        assert!(!same_class(WINDOWS, IOS));
    }

    #[test]
    fn table_follows_connections() {
        let mut m = ImUserManager::default();
        m.add_conn(7, "alice", "Al", conn(1), uc(WINDOWS));
        m.add_conn(7, "alice", "Al", conn(2), uc(IOS));
        assert_eq!(m.user_count(), 1);
        assert_eq!(m.conn_count(), 2);
        let u = m.get(7).unwrap();
        assert_eq!(u.targets(Some(conn(1))), vec![conn(2)]);
        assert_eq!(u.pc_targets(None), vec![conn(1)]);
        assert_eq!(u.mobile_targets(None), vec![conn(2)]);
        assert_eq!(u.same_class_targets(MAC, None), vec![conn(1)]);
        assert_eq!(u.same_class_targets(ANDROID, Some(conn(2))), vec![]);
        assert_eq!(m.conn_of(7, conn(2).to_u64()), Some(conn(2)));
        assert_eq!(m.conn_of(8, conn(2).to_u64()), None, "wrong user");
        assert_eq!(m.conn_of(7, conn(3).to_u64()), None, "not its connection");
        assert_eq!(m.all_targets(CLIENT_TYPE_FLAG_PC), vec![conn(1)]);
        assert_eq!(m.online_user_info().len(), 2);

        // A connection added again is updated, not doubled; the order is
        // by id whatever the order of arrival.
        m.add_conn(7, "alice", "Al", conn(1), uc(MAC));
        assert_eq!(m.conn_count(), 2);
        m.add_conn(7, "alice", "Al", conn(0), uc(ANDROID));
        assert_eq!(
            m.get(7).unwrap().targets(None),
            vec![conn(0), conn(1), conn(2)]
        );
        assert!(m.remove_conn(7, conn(0)));
        assert_eq!(m.online_user_info()[0].1, uc(MAC));
        assert_eq!(m.all_targets(CLIENT_TYPE_FLAG_PC), vec![conn(1)]);

        assert!(m.remove_conn(7, conn(1)));
        assert!(!m.remove_conn(7, conn(1)), "second removal is a no-op");
        assert_eq!(m.user_count(), 1);
        assert!(m.remove_conn(7, conn(2)));
        assert_eq!(m.user_count(), 0, "user removed with its last connection");
    }

    #[test]
    fn status_notifies_reach_exactly_the_pc_connections() {
        let mut m = ImUserManager::default();
        for uid in 1..=1000 {
            m.add_conn(uid, "u", "u", conn(u64::from(uid)), uc(ANDROID));
        }
        assert!(m.all_targets(CLIENT_TYPE_FLAG_PC).is_empty());
        assert!(m.pc_users.is_empty(), "mobile users are not filed");
        m.add_conn(5, "u", "u", conn(5000), uc(WINDOWS));
        m.add_conn(9, "u", "u", conn(9000), uc(MAC));
        let mut pc = m.all_targets(CLIENT_TYPE_FLAG_PC);
        pc.sort();
        assert_eq!(pc, vec![conn(5000), conn(9000)]);
        assert_eq!(m.all_targets(CLIENT_TYPE_FLAG_BOTH).len(), 1002);
        // A connection updated from PC to mobile, and one removed.
        m.add_conn(5, "u", "u", conn(5000), uc(IOS));
        assert!(m.remove_conn(9, conn(9000)));
        assert!(m.all_targets(CLIENT_TYPE_FLAG_PC).is_empty());
        assert!(m.pc_users.is_empty());
        // A PC user's last connection gone: unfiled with the user.
        m.add_conn(2000, "p", "p", conn(2000), uc(WINDOWS));
        assert!(m.remove_conn(2000, conn(2000)));
        assert!(m.pc_users.is_empty());
    }
}
