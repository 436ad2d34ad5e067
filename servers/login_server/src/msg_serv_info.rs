//! The table of registered msg_servers and the least-loaded choice: the C++
//! `LoginConn.h` (`msg_serv_info_t`) and the `g_msg_serv_info` map with the
//! choice loop that `LoginConn.cpp` and `HttpConn.cpp` each repeat in their
//! `_HandleMsgServRequest`.
//!
//! One difference, on purpose: the C++ ranks msg_servers by the counts they
//! report, which only move when a user actually logs in, so a reconnect
//! storm of a thousand clients in one second all get the same msg_server.
//! We also count each hand-out as provisional load on the chosen msg_server
//! until its next report (`CID_OTHER_USER_CNT_UPDATE` or
//! `CID_OTHER_MSG_SERV_INFO`), which then carries the clients that arrived.
//! "Full" is still decided by the reported count alone, as in the C++, so a
//! hand-out whose client never shows up cannot make a msg_server refuse.

use netlib::metrics::LabeledCounter;
use netlib::ConnId;
use std::collections::BTreeMap;

/// `msg_serv_info_t`: what one msg_server reported about itself
/// (`IMMsgServInfo`), plus our provisional hand-outs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgServInfo {
    /// `ip1`: the telecom address (the prior one for IPv4 clients).
    pub ip_addr1: String,
    /// `ip2`: the unicom address.
    pub ip_addr2: String,
    /// Port clients connect to.
    pub port: u16,
    /// Most users it accepts.
    pub max_conn_cnt: u32,
    /// Users logged in on it, as it last reported.
    pub cur_conn_cnt: u32,
    /// Its host name, for logs.
    pub hostname: String,
    /// Clients sent to it since its last report.
    pub handed_out: u32,
}

impl MsgServInfo {
    /// Reported users plus hand-outs not yet reported: what ranks it.
    pub fn load(&self) -> u64 {
        u64::from(self.cur_conn_cnt) + u64::from(self.handed_out)
    }

    /// The C++ test `cur_conn_cnt < max_conn_cnt`, inverted.
    pub fn is_full(&self) -> bool {
        self.cur_conn_cnt >= self.max_conn_cnt
    }
}

/// `USER_CNT_INC` / `USER_CNT_DEC` of the C++ `public_define.h`: the
/// `user_action` of `IMUserCntUpdate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCntAction {
    /// A user logged in on the msg_server (`USER_CNT_INC = 1`).
    Inc,
    /// A user logged out (`USER_CNT_DEC = 2`).
    Dec,
}

impl UserCntAction {
    /// Reads the wire value; `None` for anything but 1 or 2.
    pub fn from_wire(action: u32) -> Option<UserCntAction> {
        match action {
            1 => Some(UserCntAction::Inc),
            2 => Some(UserCntAction::Dec),
            _ => None,
        }
    }
}

/// The answer to "which msg_server should this client use?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// No msg_server is registered (`REFUSE_REASON_NO_MSG_SERVER`, HTTP code 1).
    NoMsgServer,
    /// Every msg_server is full (`REFUSE_REASON_MSG_SERVER_FULL`, HTTP code 2).
    AllFull,
    /// This one, already counted as a hand-out.
    Chosen(MsgServInfo),
}

/// `g_msg_serv_info`: the registered msg_servers, keyed by their connection
/// to us (as the C++ keys them by socket handle), so a msg_server leaves the
/// table when its connection closes.
#[derive(Debug, Default)]
pub struct MsgServTable {
    servers: BTreeMap<ConnId, MsgServInfo>,
    /// Answers to "which msg_server", by result, for metrics.
    handouts: LabeledCounter,
}

impl MsgServTable {
    /// Records (or replaces) what the msg_server on `conn` reported
    /// (`_HandleMsgServInfo`); its provisional hand-outs start again at 0.
    /// Returns the entry it replaced.
    pub fn register(&mut self, conn: ConnId, mut info: MsgServInfo) -> Option<MsgServInfo> {
        info.handed_out = 0;
        self.servers.insert(conn, info)
    }

    /// Applies one `IMUserCntUpdate` (`_HandleUserCntUpdate`). A report
    /// clears the provisional hand-outs. Returns the entry, or `None` when
    /// `conn` has not registered (then the update is ignored, as in the C++).
    pub fn update_user_cnt(&mut self, conn: ConnId, action: UserCntAction) -> Option<&MsgServInfo> {
        let info = self.servers.get_mut(&conn)?;
        info.cur_conn_cnt = match action {
            UserCntAction::Inc => info.cur_conn_cnt.saturating_add(1),
            UserCntAction::Dec => info.cur_conn_cnt.saturating_sub(1),
        };
        info.handed_out = 0;
        Some(info)
    }

    /// Forgets the msg_server on `conn` (its connection closed).
    pub fn remove(&mut self, conn: ConnId) -> Option<MsgServInfo> {
        self.servers.remove(&conn)
    }

    /// Picks the least-loaded msg_server that is not full, counting the
    /// hand-out. Ties go to the earliest connection slot, as the C++ map
    /// ordered by socket handle gives them to the lowest handle.
    pub fn choose(&mut self) -> Choice {
        if self.servers.is_empty() {
            self.handouts.inc("no_msg_server");
            return Choice::NoMsgServer;
        }
        let best = self
            .servers
            .values_mut()
            .filter(|s| !s.is_full())
            .min_by_key(|s| s.load());
        match best {
            Some(info) => {
                info.handed_out = info.handed_out.saturating_add(1);
                self.handouts.inc("chosen");
                Choice::Chosen(info.clone())
            }
            None => {
                self.handouts.inc("all_full");
                Choice::AllFull
            }
        }
    }

    /// The answers [`choose`](Self::choose) gave, by result (`chosen`,
    /// `no_msg_server`, `all_full`).
    pub fn handouts(&self) -> &LabeledCounter {
        &self.handouts
    }

    /// Every registered msg_server.
    pub fn servers(&self) -> impl Iterator<Item = &MsgServInfo> {
        self.servers.values()
    }

    /// `g_total_online_user_cnt`: users on every msg_server, as reported.
    pub fn total_users(&self) -> u64 {
        self.servers
            .values()
            .map(|s| u64::from(s.cur_conn_cnt))
            .sum()
    }

    /// Number of registered msg_servers.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// True when no msg_server is registered.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(host: &str, cur: u32, max: u32) -> MsgServInfo {
        MsgServInfo {
            ip_addr1: format!("{host}-telecom"),
            ip_addr2: format!("{host}-unicom"),
            port: 8000,
            max_conn_cnt: max,
            cur_conn_cnt: cur,
            hostname: host.to_string(),
            handed_out: 0,
        }
    }

    fn conn(n: u64) -> ConnId {
        ConnId::from_u64((1 << 32) | n)
    }

    fn chosen_host(t: &mut MsgServTable) -> String {
        match t.choose() {
            Choice::Chosen(i) => i.hostname,
            other => panic!("expected a msg_server, got {other:?}"),
        }
    }

    #[test]
    fn empty_table_has_no_msg_server() {
        assert_eq!(MsgServTable::default().choose(), Choice::NoMsgServer);
    }

    #[test]
    fn least_loaded_not_full_wins() {
        let mut t = MsgServTable::default();
        t.register(conn(1), info("a", 10, 100));
        t.register(conn(2), info("b", 5, 100));
        t.register(conn(3), info("c", 1, 1));
        assert_eq!(chosen_host(&mut t), "b");
        assert_eq!(t.total_users(), 16);
    }

    #[test]
    fn all_full_is_refused_and_full_means_reported_count_at_max() {
        let mut t = MsgServTable::default();
        t.register(conn(1), info("a", 100, 100));
        t.register(conn(2), info("b", 7, 0));
        assert_eq!(t.choose(), Choice::AllFull);

        let mut t = MsgServTable::default();
        t.register(conn(1), info("a", 99, 100));
        // Hand-outs rank but never make a msg_server full.
        for _ in 0..5 {
            assert_eq!(chosen_host(&mut t), "a");
        }
        t.update_user_cnt(conn(1), UserCntAction::Inc);
        assert_eq!(t.choose(), Choice::AllFull);
    }

    #[test]
    fn hand_outs_spread_a_storm_until_the_next_report() {
        let mut t = MsgServTable::default();
        for n in 1..=4 {
            t.register(conn(n), info(&format!("m{n}"), 0, 10_000));
        }
        let mut counts = BTreeMap::new();
        for _ in 0..1000 {
            *counts.entry(chosen_host(&mut t)).or_insert(0) += 1;
        }
        assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![250; 4]);
        // A report replaces the provisional load with the real count.
        t.update_user_cnt(conn(1), UserCntAction::Inc);
        assert_eq!(t.servers[&conn(1)].handed_out, 0);
        assert_eq!(t.servers[&conn(1)].cur_conn_cnt, 1);
        assert_eq!(chosen_host(&mut t), "m1");
    }

    #[test]
    fn user_counts_move_and_never_wrap() {
        let mut t = MsgServTable::default();
        t.register(conn(1), info("a", 0, 10));
        t.update_user_cnt(conn(1), UserCntAction::Dec);
        assert_eq!(t.servers[&conn(1)].cur_conn_cnt, 0);
        t.update_user_cnt(conn(1), UserCntAction::Inc);
        t.update_user_cnt(conn(1), UserCntAction::Inc);
        assert_eq!(t.servers[&conn(1)].cur_conn_cnt, 2);
        assert!(t.update_user_cnt(conn(9), UserCntAction::Inc).is_none());
    }

    #[test]
    fn re_registration_replaces_and_removal_forgets() {
        let mut t = MsgServTable::default();
        t.register(conn(1), info("a", 3, 10));
        t.choose();
        let old = t.register(conn(1), info("a2", 4, 10)).unwrap();
        assert_eq!(old.hostname, "a");
        assert_eq!(t.len(), 1);
        assert_eq!(t.servers[&conn(1)].handed_out, 0);
        assert_eq!(t.remove(conn(1)).unwrap().hostname, "a2");
        assert!(t.is_empty());
        assert_eq!(t.choose(), Choice::NoMsgServer);
    }

    #[test]
    fn ties_go_to_the_earliest_connection() {
        let mut t = MsgServTable::default();
        t.register(conn(7), info("late", 5, 10));
        t.register(conn(2), info("early", 5, 10));
        assert_eq!(chosen_host(&mut t), "early");
    }

    #[test]
    fn user_cnt_action_reads_only_1_and_2() {
        assert_eq!(UserCntAction::from_wire(1), Some(UserCntAction::Inc));
        assert_eq!(UserCntAction::from_wire(2), Some(UserCntAction::Dec));
        assert_eq!(UserCntAction::from_wire(0), None);
        assert_eq!(UserCntAction::from_wire(3), None);
    }
}
