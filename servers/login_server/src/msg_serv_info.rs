//! The table of registered msg_servers and the least-loaded choice: the C++
//! `LoginConn.h` (`msg_serv_info_t`) and the `g_msg_serv_info` map with the
//! choice loop that `LoginConn.cpp` and `HttpConn.cpp` each repeat in their
//! `_HandleMsgServRequest`.
//!
//! One difference, on purpose: the C++ ranks msg_servers by the counts they
//! report, which only move when a user actually logs in, so a reconnect
//! storm of a thousand clients in one second all get the same msg_server.
//! We also count each hand-out as provisional load on the chosen msg_server
//! ([`HandOuts`]): each `USER_CNT_INC` the msg_server reports (one per
//! login) is taken as the arrival of its oldest outstanding hand-out, and
//! hand-outs whose client has not arrived within [`HAND_OUT_TTL_MS`] are
//! dropped. A report therefore never wipes hand-outs still on their way
//! (which made the reporter look least loaded and take the next burst).
//! "Full" is still decided by the reported count alone, as in the C++, so a
//! hand-out whose client never shows up cannot make a msg_server refuse.

use netlib::metrics::LabeledCounter;
use netlib::ConnId;
use std::collections::{BTreeMap, VecDeque};

/// How long a hand-out counts as provisional load if its client never
/// logs in: far above the HTTP answer, connect and validate round trips of
/// a login, even under a storm.
pub const HAND_OUT_TTL_MS: u64 = 10_000;

/// Hand-outs are counted in buckets of this many ms, so one msg_server's
/// provisional load takes at most `HAND_OUT_TTL_MS / HAND_OUT_BUCKET_MS + 1`
/// buckets however fast clients come.
pub const HAND_OUT_BUCKET_MS: u64 = 100;

/// `msg_serv_info_t`: what one msg_server reported about itself
/// (`IMMsgServInfo`).
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
}

impl MsgServInfo {
    /// The C++ test `cur_conn_cnt < max_conn_cnt`, inverted.
    pub fn is_full(&self) -> bool {
        self.cur_conn_cnt >= self.max_conn_cnt
    }
}

/// The clients sent to one msg_server that it has not reported yet, by
/// when they were sent (buckets of [`HAND_OUT_BUCKET_MS`], oldest first).
/// Not in the C++.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandOuts {
    /// (bucket start in monotonic ms, hand-outs in it); no zero counts.
    buckets: VecDeque<(u64, u32)>,
    /// Sum of the bucket counts.
    total: u64,
}

impl HandOuts {
    /// Outstanding hand-outs (as of the last `expire`).
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Drops the hand-outs older than [`HAND_OUT_TTL_MS`] at `now`: their
    /// clients are not coming.
    pub fn expire(&mut self, now: u64) {
        while let Some(&(at, n)) = self.buckets.front() {
            if now.saturating_sub(at) < HAND_OUT_TTL_MS {
                break;
            }
            self.total -= u64::from(n);
            self.buckets.pop_front();
        }
    }

    /// One client sent to the msg_server at `now`.
    pub fn add(&mut self, now: u64) {
        self.expire(now);
        let bucket = now - now % HAND_OUT_BUCKET_MS;
        match self.buckets.back_mut() {
            // Also a clock that stepped back: count it with the newest.
            Some((at, n)) if *at >= bucket => *n = n.saturating_add(1),
            _ => self.buckets.push_back((bucket, 1)),
        }
        self.total += 1;
    }

    /// The msg_server reported one login at `now`: the oldest outstanding
    /// hand-out has arrived (a login nobody handed out, e.g. a client that
    /// kept its address, takes one too; the newer hand-outs then expire).
    pub fn arrived(&mut self, now: u64) {
        self.expire(now);
        if let Some((_, n)) = self.buckets.front_mut() {
            *n -= 1;
            self.total -= 1;
            if *n == 0 {
                self.buckets.pop_front();
            }
        }
    }
}

/// One row of the table: the report and our hand-outs since.
#[derive(Debug, Clone)]
struct MsgServEntry {
    info: MsgServInfo,
    hand_outs: HandOuts,
}

impl MsgServEntry {
    /// Reported users plus hand-outs not yet reported: what ranks it.
    fn load(&self) -> u64 {
        u64::from(self.info.cur_conn_cnt) + self.hand_outs.count()
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
    servers: BTreeMap<ConnId, MsgServEntry>,
    /// Answers to "which msg_server", by result, for metrics.
    handouts: LabeledCounter,
}

impl MsgServTable {
    /// Records (or replaces) what the msg_server on `conn` reported
    /// (`_HandleMsgServInfo`); a new registration starts with no
    /// hand-outs. Returns the entry it replaced.
    pub fn register(&mut self, conn: ConnId, info: MsgServInfo) -> Option<MsgServInfo> {
        let entry = MsgServEntry {
            info,
            hand_outs: HandOuts::default(),
        };
        self.servers.insert(conn, entry).map(|old| old.info)
    }

    /// Applies one `IMUserCntUpdate` (`_HandleUserCntUpdate`) received at
    /// `now`. A login takes the place of one outstanding hand-out. Returns
    /// the entry, or `None` when `conn` has not registered (then the update
    /// is ignored, as in the C++).
    pub fn update_user_cnt(
        &mut self,
        conn: ConnId,
        action: UserCntAction,
        now: u64,
    ) -> Option<&MsgServInfo> {
        let entry = self.servers.get_mut(&conn)?;
        let info = &mut entry.info;
        match action {
            UserCntAction::Inc => {
                info.cur_conn_cnt = info.cur_conn_cnt.saturating_add(1);
                entry.hand_outs.arrived(now);
            }
            UserCntAction::Dec => info.cur_conn_cnt = info.cur_conn_cnt.saturating_sub(1),
        }
        Some(&entry.info)
    }

    /// Forgets the msg_server on `conn` (its connection closed).
    pub fn remove(&mut self, conn: ConnId) -> Option<MsgServInfo> {
        self.servers.remove(&conn).map(|e| e.info)
    }

    /// Picks the least-loaded msg_server that is not full at `now`,
    /// counting the hand-out. Ties go to the earliest connection slot, as
    /// the C++ map ordered by socket handle gives them to the lowest handle.
    pub fn choose(&mut self, now: u64) -> Choice {
        if self.servers.is_empty() {
            self.handouts.inc("no_msg_server");
            return Choice::NoMsgServer;
        }
        for entry in self.servers.values_mut() {
            entry.hand_outs.expire(now);
        }
        let best = self
            .servers
            .values_mut()
            .filter(|s| !s.info.is_full())
            .min_by_key(|s| s.load());
        match best {
            Some(entry) => {
                entry.hand_outs.add(now);
                self.handouts.inc("chosen");
                Choice::Chosen(entry.info.clone())
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

    /// Every registered msg_server, with its hand-outs not yet reported.
    pub fn servers(&self) -> impl Iterator<Item = (&MsgServInfo, u64)> {
        self.servers
            .values()
            .map(|e| (&e.info, e.hand_outs.count()))
    }

    /// `g_total_online_user_cnt`: users on every msg_server, as reported.
    pub fn total_users(&self) -> u64 {
        self.servers
            .values()
            .map(|s| u64::from(s.info.cur_conn_cnt))
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
        }
    }

    fn conn(n: u64) -> ConnId {
        ConnId::from_u64((1 << 32) | n)
    }

    fn chosen_host(t: &mut MsgServTable) -> String {
        chosen_at(t, 0)
    }

    fn chosen_at(t: &mut MsgServTable, now: u64) -> String {
        match t.choose(now) {
            Choice::Chosen(i) => i.hostname,
            other => panic!("expected a msg_server, got {other:?}"),
        }
    }

    #[test]
    fn empty_table_has_no_msg_server() {
        assert_eq!(MsgServTable::default().choose(0), Choice::NoMsgServer);
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
        assert_eq!(t.choose(0), Choice::AllFull);

        let mut t = MsgServTable::default();
        t.register(conn(1), info("a", 99, 100));
        // Hand-outs rank but never make a msg_server full.
        for _ in 0..5 {
            assert_eq!(chosen_host(&mut t), "a");
        }
        t.update_user_cnt(conn(1), UserCntAction::Inc, 0);
        assert_eq!(t.choose(0), Choice::AllFull);
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
        t.update_user_cnt(conn(1), UserCntAction::Inc, 0);
        assert_eq!(t.servers[&conn(1)].hand_outs.count(), 249);
        assert_eq!(t.servers[&conn(1)].info.cur_conn_cnt, 1);
        assert_eq!(
            t.servers[&conn(1)].load(),
            250,
            "one arrived: load unchanged"
        );
        assert_eq!(chosen_host(&mut t), "m1", "the tie goes to the first");
        assert_eq!(chosen_host(&mut t), "m2", "then the others, in turn");
    }

    #[test]
    fn hand_outs_that_never_arrive_expire() {
        let mut t = MsgServTable::default();
        t.register(conn(1), info("a", 0, 100));
        t.register(conn(2), info("b", 3, 100));
        for _ in 0..5 {
            chosen_at(&mut t, 1_000);
        }
        // a: 0 + 4 provisional, b: 3 + 1; nobody arrived.
        assert_eq!(chosen_at(&mut t, 1_000 + HAND_OUT_TTL_MS - 1), "a");
        // The first five expire; the sixth (just now) stays.
        assert_eq!(chosen_at(&mut t, 1_000 + HAND_OUT_TTL_MS), "a");
        assert_eq!(t.servers[&conn(2)].hand_outs.count(), 0);
        assert_eq!(t.servers[&conn(1)].hand_outs.count(), 2);
    }

    #[test]
    fn hand_outs_take_a_bounded_number_of_buckets() {
        let mut h = HandOuts::default();
        for ms in 0..3 * HAND_OUT_TTL_MS {
            h.add(ms);
            h.add(ms);
        }
        assert!(h.buckets.len() as u64 <= HAND_OUT_TTL_MS / HAND_OUT_BUCKET_MS + 1);
        assert_eq!(h.count(), 2 * HAND_OUT_TTL_MS);
        h.expire(10 * HAND_OUT_TTL_MS);
        assert_eq!((h.count(), h.buckets.len()), (0, 0));
        h.arrived(0);
        assert_eq!(h.count(), 0, "an arrival with nothing outstanding");
    }

    /// A login storm at 3,000/s over 5 msg_servers for 3 s. Each client's
    /// login is reported by its msg_server (`USER_CNT_INC`) 5-300 ms after
    /// the hand-out, the later the slower that msg_server, so reports
    /// interleave with the hand-outs as they do under load. Every 100 ms
    /// window gives each msg_server its share (60 of 300) within 10%.
    #[test]
    fn a_3k_per_second_storm_with_reports_interleaved_does_not_herd() {
        const SERVERS: u64 = 5;
        const PER_MS: u64 = 3;
        const MS: u64 = 3_000;
        let mut t = MsgServTable::default();
        for n in 0..SERVERS {
            t.register(conn(n), info(&n.to_string(), 1_000, 100_000));
        }
        // Reports due: (when, msg_server).
        let mut due: BTreeMap<(u64, u64), u64> = BTreeMap::new();
        let mut windows: BTreeMap<u64, [u32; SERVERS as usize]> = BTreeMap::new();
        let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
        let mut seq = 0;
        for now in 0..MS {
            while let Some((&(at, s), &server)) = due.iter().next() {
                if at > now {
                    break;
                }
                due.remove(&(at, s));
                t.update_user_cnt(conn(server), UserCntAction::Inc, at);
            }
            for _ in 0..PER_MS {
                let server: u64 = chosen_at(&mut t, now).parse().unwrap();
                windows.entry(now / 100).or_default()[server as usize] += 1;
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let delay = 5 + rng % (50 + 60 * server);
                seq += 1;
                due.insert((now + delay, seq), server);
            }
        }
        let share = (PER_MS * 100 / SERVERS) as f64;
        for (w, counts) in &windows {
            for (server, &n) in counts.iter().enumerate() {
                assert!(
                    (f64::from(n) - share).abs() <= share * 0.1,
                    "window {w}: msg_server {server} got {n} of {}: {counts:?}",
                    PER_MS * 100
                );
            }
        }
    }

    #[test]
    fn user_counts_move_and_never_wrap() {
        let mut t = MsgServTable::default();
        t.register(conn(1), info("a", 0, 10));
        t.update_user_cnt(conn(1), UserCntAction::Dec, 0);
        assert_eq!(t.servers[&conn(1)].info.cur_conn_cnt, 0);
        t.update_user_cnt(conn(1), UserCntAction::Inc, 0);
        t.update_user_cnt(conn(1), UserCntAction::Inc, 0);
        assert_eq!(t.servers[&conn(1)].info.cur_conn_cnt, 2);
        assert!(t.update_user_cnt(conn(9), UserCntAction::Inc, 0).is_none());
    }

    #[test]
    fn re_registration_replaces_and_removal_forgets() {
        let mut t = MsgServTable::default();
        t.register(conn(1), info("a", 3, 10));
        t.choose(0);
        let old = t.register(conn(1), info("a2", 4, 10)).unwrap();
        assert_eq!(old.hostname, "a");
        assert_eq!(t.len(), 1);
        assert_eq!(t.servers[&conn(1)].hand_outs.count(), 0);
        assert_eq!(t.remove(conn(1)).unwrap().hostname, "a2");
        assert!(t.is_empty());
        assert_eq!(t.choose(0), Choice::NoMsgServer);
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
