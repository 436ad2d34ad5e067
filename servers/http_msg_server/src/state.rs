//! The server's state: what the C++ keeps in globals (`g_db_server_list`,
//! `g_route_server_list`, `g_master_rs_conn`, `g_http_conn_map`), in one
//! value the reactor hands to every handler.
//!
//! [`PendingQueries`] is the part of `g_http_conn_map` that matters: the
//! HTTP connections waiting for db_proxy, with the link each request went
//! on and when. Differences from the C++: it is bounded
//! ([`MAX_PENDING`]); a request whose db_proxy link closes, or that gets
//! no reply within [`DB_REPLY_TIMEOUT_MS`], is answered 10 "服务器异常"
//! (the C++ leaves the client waiting until its 60 s idle close).

use crate::db_serv_conn::DbServers;
use crate::http_query::QueryKind;
use crate::metrics::HttpMsgMetrics;
use crate::route_serv_conn::RouteServers;
use netlib::ConnId;
use std::collections::{BTreeSet, HashMap};

/// Requests waiting for db_proxy at most; past it a request is answered
/// 10 at once.
pub const MAX_PENDING: usize = 10_000;
/// A request db_proxy has not answered after this long (ms) is answered
/// 10; shorter than the 60 s idle close of the HTTP connection.
pub const DB_REPLY_TIMEOUT_MS: u64 = 30_000;

/// The state of one http_msg_server.
#[derive(Debug, Default)]
pub struct HttpMsgState {
    /// The db_proxy links.
    pub db: DbServers,
    /// The route_server links and the master.
    pub route: RouteServers,
    /// HTTP connections waiting for db_proxy.
    pub pending: PendingQueries,
    /// `AppKeys` (not in the C++): the app keys accepted; `None` accepts
    /// every key, as the C++ does.
    pub app_keys: Option<BTreeSet<String>>,
    /// Requests and answers, for `GET /metrics`.
    pub metrics: HttpMsgMetrics,
}

impl HttpMsgState {
    /// The state for these links; nothing is connected or waiting yet.
    pub fn new(
        db: DbServers,
        route: RouteServers,
        app_keys: Option<BTreeSet<String>>,
    ) -> HttpMsgState {
        HttpMsgState {
            db,
            route,
            pending: PendingQueries::default(),
            app_keys,
            metrics: HttpMsgMetrics::default(),
        }
    }
}

/// One HTTP connection waiting for db_proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// What it asked.
    pub kind: QueryKind,
    /// The db_proxy link the request went on.
    pub link: ConnId,
    /// When it was sent (monotonic ms).
    pub since: u64,
}

/// The HTTP connections waiting for db_proxy, by connection.
#[derive(Debug, Default)]
pub struct PendingQueries {
    by_conn: HashMap<ConnId, Pending>,
}

impl PendingQueries {
    /// No room for one more.
    pub fn is_full(&self) -> bool {
        self.by_conn.len() >= MAX_PENDING
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.by_conn.len()
    }

    /// Connection `conn` waits for the reply to `kind`, sent on `link` at `now`.
    pub fn insert(&mut self, conn: ConnId, kind: QueryKind, link: ConnId, now: u64) {
        self.by_conn.insert(
            conn,
            Pending {
                kind,
                link,
                since: now,
            },
        );
    }

    /// The reply to `kind` for `conn` came: `conn` stops waiting. `None`
    /// when it was not waiting for that (gone, answered, or another kind).
    pub fn take(&mut self, conn: ConnId, kind: QueryKind) -> Option<Pending> {
        match self.by_conn.get(&conn) {
            Some(p) if p.kind == kind => self.by_conn.remove(&conn),
            _ => None,
        }
    }

    /// The HTTP connection closed.
    pub fn forget(&mut self, conn: ConnId) {
        self.by_conn.remove(&conn);
    }

    /// Everything sent on `link`, which closed: those replies never come.
    pub fn take_on_link(&mut self, link: ConnId) -> Vec<ConnId> {
        self.take_where(|p| p.link == link)
    }

    /// Everything waiting since before `now - timeout_ms`.
    pub fn take_expired(&mut self, now: u64, timeout_ms: u64) -> Vec<ConnId> {
        self.take_where(|p| now.saturating_sub(p.since) >= timeout_ms)
    }

    fn take_where(&mut self, pick: impl Fn(&Pending) -> bool) -> Vec<ConnId> {
        let mut out: Vec<ConnId> = self
            .by_conn
            .iter()
            .filter(|(_, p)| pick(p))
            .map(|(c, _)| *c)
            .collect();
        out.sort_by_key(|c| c.to_u64());
        for c in &out {
            self.by_conn.remove(c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u64) -> ConnId {
        ConnId::from_u64((1 << 32) | n)
    }

    #[test]
    fn a_reply_is_taken_once_and_only_for_its_kind() {
        let mut p = PendingQueries::default();
        p.insert(c(1), QueryKind::CreateGroup, c(100), 0);
        assert_eq!(p.take(c(1), QueryKind::ChangeMembers), None);
        assert!(p.take(c(1), QueryKind::CreateGroup).is_some());
        assert_eq!(p.take(c(1), QueryKind::CreateGroup), None, "answered once");
        p.insert(c(2), QueryKind::CreateGroup, c(100), 0);
        p.forget(c(2));
        assert_eq!(p.take(c(2), QueryKind::CreateGroup), None, "gone");
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn a_closed_link_and_the_timeout_release_their_requests() {
        let mut p = PendingQueries::default();
        p.insert(c(1), QueryKind::CreateGroup, c(100), 0);
        p.insert(c(2), QueryKind::ChangeMembers, c(101), 10);
        p.insert(c(3), QueryKind::ChangeMembers, c(100), 20);
        assert_eq!(p.take_on_link(c(100)), vec![c(1), c(3)]);
        assert_eq!(p.take_expired(1_000, DB_REPLY_TIMEOUT_MS), vec![]);
        assert_eq!(
            p.take_expired(10 + DB_REPLY_TIMEOUT_MS, DB_REPLY_TIMEOUT_MS),
            vec![c(2)]
        );
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut p = PendingQueries::default();
        for i in 0..MAX_PENDING as u64 {
            assert!(!p.is_full());
            p.insert(c(i), QueryKind::CreateGroup, c(0), 0);
        }
        assert!(p.is_full());
    }
}
