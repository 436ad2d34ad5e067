//! The member lists of the groups messages went to, and the group messages
//! waiting for one: state the C++ `GroupChat.cpp` does not keep (it asks
//! db_proxy for the member list on every group message, on every
//! msg_server).
//!
//! Differences from the C++, on purpose (who gets a message stays the same):
//! - Member lists are kept with the group version db_proxy read them at and
//!   asked for only for a group we do not know; a list is dropped when its
//!   membership changes (`CID_GROUP_CHANGE_MEMBER_NOTIFY`, from here or
//!   through route_server), replaced or dropped when a group info or normal
//!   group list reply for a client shows a newer version, dropped when a
//!   route_server link opens (a change may have been missed), and asked for
//!   again after [`MEMBER_LIST_MAX_AGE_MS`].
//! - Every message waiting for a list is kept with its fetch, in order, so
//!   a lost request or reply loses none of them (the C++ loses the message
//!   riding on a lost request).
//! - Both are bounded (the C++ keeps neither, but its db_proxy requests
//!   carry every waiting message): at most [`MAX_CACHED_GROUPS`] lists,
//!   the oldest-read evicted first, and lists past
//!   [`MEMBER_LIST_MAX_AGE_MS`] are swept out; at most
//!   [`MAX_WAITING_MSGS`] messages wait, the oldest dropped first, and
//!   none longer than [`MAX_WAIT_MS`]. A message dropped so is what a C++
//!   msg_server does with a group message whose member list request
//!   db_proxy never answers: its sender already has the ack (sent when
//!   db_proxy stored it), the members here get nothing pushed and find it
//!   in their unread counts and history. Each drop is logged and counted
//!   ([`GroupCacheCounters`]).

use netlib::ConnId;
use std::collections::{BTreeSet, HashMap, VecDeque};
use tt_proto::IM::Message::IMMsgData;

/// Most member lists kept at once: past it the list read longest ago is
/// evicted (it is the next to expire anyway). A list is a few KiB for a
/// big group.
pub const MAX_CACHED_GROUPS: usize = 4_096;
/// Most group messages waiting for member lists at once, all groups
/// together: past it the one waiting longest is dropped. A group message
/// is at most a client PDU (1 MiB), mostly a few hundred bytes.
pub const MAX_WAITING_MSGS: usize = 4_096;
/// Longest a message waits for its group's member list: three asks
/// ([`FETCH_RETRY_MS`] apart) with no answer, then it is dropped.
pub const MAX_WAIT_MS: u64 = 3 * FETCH_RETRY_MS;

/// How long messages wait for a member list asked of db_proxy before the
/// next message of that group asks again (the reply may be lost with its
/// link).
pub const FETCH_RETRY_MS: u64 = 10_000;

/// A group message waiting for its group's member list.
#[derive(Debug, Clone)]
pub struct WaitingMsg {
    /// The stored message.
    pub msg: IMMsgData,
    /// The sender's connection here, if sent here.
    pub from_conn: Option<ConnId>,
    /// Sent here (pushes are asked for) rather than relayed.
    pub origin: bool,
}

/// How long a cached member list is used before it is asked for again:
/// bounds how long a membership changed without a notify (in the database
/// directly, say) goes unseen.
pub const MEMBER_LIST_MAX_AGE_MS: u64 = 60_000;

/// A member list, the group version it was read at, and when (monotonic ms).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CachedGroup {
    version: u32,
    members: Vec<u32>,
    since: u64,
}

/// A waiting message and when it arrived (monotonic ms).
#[derive(Debug)]
struct Queued {
    at: u64,
    waiting: WaitingMsg,
}

/// A member list being asked of db_proxy.
#[derive(Debug, Default)]
struct Fetch {
    /// When it was asked for (monotonic ms).
    since: u64,
    /// Every message waiting for the list, in arrival order, the one the
    /// request carries included (so a lost request loses none of them).
    queue: VecDeque<Queued>,
    /// The membership changed since it was asked: the answer may predate
    /// the change, so it serves the waiting messages but is not kept.
    stale: bool,
}

/// Member lists of the groups messages went to lately, by group id, each
/// with the group version db_proxy read it at, and the messages waiting for
/// a list being fetched.
///
/// db_proxy bumps a group's version on every membership change. A list is
/// dropped when a change is announced (`CID_GROUP_CHANGE_MEMBER_NOTIFY`,
/// which carries no version) and replaced or dropped whenever a reply
/// passing through shows a newer version than the cached one (a client's
/// group info or normal group list); a fetched list never replaces a newer
/// one, and a fetch overtaken by a change is not kept. A list older than
/// [`MEMBER_LIST_MAX_AGE_MS`] is asked for again. The bounds are in the
/// module doc.
#[derive(Debug, Default)]
pub struct GroupCache {
    groups: HashMap<u32, CachedGroup>,
    /// `(since, group_id)` of every cached list: the order of eviction.
    by_age: BTreeSet<(u64, u32)>,
    fetching: HashMap<u32, Fetch>,
    /// Messages waiting, in all fetches together.
    waiting: usize,
    counters: GroupCacheCounters,
}

/// How often the cache's bounds struck since start, for logs and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroupCacheCounters {
    /// Member lists evicted to make room (over [`MAX_CACHED_GROUPS`]).
    pub lists_evicted: u64,
    /// Member lists swept out past [`MEMBER_LIST_MAX_AGE_MS`].
    pub lists_expired: u64,
    /// Waiting messages dropped to make room (over [`MAX_WAITING_MSGS`]).
    pub waits_dropped: u64,
    /// Waiting messages dropped after [`MAX_WAIT_MS`] without their list.
    pub waits_expired: u64,
    /// Group messages whose member list was cached and fresh.
    pub hits: u64,
    /// Group messages whose member list had to be asked for.
    pub misses: u64,
}

impl GroupCache {
    /// How often the bounds struck so far.
    pub fn counters(&self) -> GroupCacheCounters {
        self.counters
    }

    /// Counts one lookup of a group message's member list ([`Self::members`]).
    pub fn count_lookup(&mut self, hit: bool) {
        if hit {
            self.counters.hits += 1;
        } else {
            self.counters.misses += 1;
        }
    }

    /// Number of member lists kept.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Number of messages waiting for member lists.
    pub fn waiting_count(&self) -> usize {
        self.waiting
    }

    /// Keeps `g` as `group_id`'s list, replacing any; evicts the list read
    /// longest ago when a new group would pass [`MAX_CACHED_GROUPS`].
    fn put_group(&mut self, group_id: u32, g: CachedGroup) {
        if let Some(old) = self.groups.get(&group_id) {
            self.by_age.remove(&(old.since, group_id));
        } else if self.groups.len() >= MAX_CACHED_GROUPS {
            if let Some((_, oldest)) = self.by_age.pop_first() {
                self.groups.remove(&oldest);
                self.counters.lists_evicted += 1;
                log::debug!("group {oldest}: member list evicted to make room");
            }
        }
        self.by_age.insert((g.since, group_id));
        self.groups.insert(group_id, g);
    }

    /// Forgets `group_id`'s list.
    fn drop_group(&mut self, group_id: u32) {
        if let Some(g) = self.groups.remove(&group_id) {
            self.by_age.remove(&(g.since, group_id));
        }
    }

    /// The members of `group_id` at `now`, if known and fresh enough.
    pub fn members(&self, group_id: u32, now: u64) -> Option<&[u32]> {
        self.groups
            .get(&group_id)
            .filter(|g| now < g.since + MEMBER_LIST_MAX_AGE_MS)
            .map(|g| g.members.as_slice())
    }

    /// The version of the cached list of `group_id`, if known.
    #[cfg(test)]
    pub fn version(&self, group_id: u32) -> Option<u32> {
        self.groups.get(&group_id).map(|g| g.version)
    }

    /// Remembers `group_id`'s members at `version`, read at `now`, unless
    /// a newer version is known (and still fresh).
    pub fn insert(&mut self, group_id: u32, version: u32, members: Vec<u32>, now: u64) {
        match self.groups.get(&group_id) {
            Some(g) if g.version > version && now < g.since + MEMBER_LIST_MAX_AGE_MS => {}
            _ => {
                let g = CachedGroup {
                    version,
                    members,
                    since: now,
                };
                self.put_group(group_id, g);
            }
        }
    }

    /// A reply seen on its way to a client says `group_id` is at `version`
    /// (with its `members` when the reply lists them): a cached list of an
    /// older version is replaced, or dropped when no members came with it.
    /// An unknown group stays unknown (the reply may predate a change
    /// announced since).
    pub fn observe(&mut self, group_id: u32, version: u32, members: Option<&[u32]>, now: u64) {
        let Some(g) = self.groups.get(&group_id) else {
            return;
        };
        if g.version >= version {
            return;
        }
        match members {
            Some(m) => {
                let g = CachedGroup {
                    version,
                    members: m.to_vec(),
                    since: now,
                };
                self.put_group(group_id, g);
            }
            None => self.drop_group(group_id),
        }
    }

    /// Forgets `group_id` (its membership changed); a list being fetched
    /// will not be kept.
    pub fn invalidate(&mut self, group_id: u32) {
        self.drop_group(group_id);
        if let Some(f) = self.fetching.get_mut(&group_id) {
            f.stale = true;
        }
    }

    /// Forgets every group; no list being fetched will be kept.
    pub fn clear(&mut self) {
        self.groups.clear();
        self.by_age.clear();
        for f in self.fetching.values_mut() {
            f.stale = true;
        }
    }

    /// A message for `group_id`, whose list is not known, at `now`: it is
    /// queued; true when a fetch is under way, false when the caller must
    /// ask db_proxy (a fetch is then recorded, or a lost one retried). With
    /// [`MAX_WAITING_MSGS`] already waiting, the one waiting longest (of
    /// any group) is dropped first, with a log line.
    pub fn wait_for_fetch(&mut self, group_id: u32, waiting: WaitingMsg, now: u64) -> bool {
        if self.waiting >= MAX_WAITING_MSGS {
            self.drop_longest_waiting();
        }
        let f = self.fetching.entry(group_id).or_insert_with(|| Fetch {
            since: now,
            ..Fetch::default()
        });
        let under_way = !f.queue.is_empty() && now < f.since + FETCH_RETRY_MS;
        f.queue.push_back(Queued { at: now, waiting });
        self.waiting += 1;
        if !under_way {
            f.since = now;
        }
        under_way
    }

    /// Drops the message waiting longest, over the bound.
    fn drop_longest_waiting(&mut self) {
        let Some(group_id) = self
            .fetching
            .iter()
            .filter_map(|(g, f)| f.queue.front().map(|q| (q.at, *g)))
            .min()
            .map(|(_, g)| g)
        else {
            return;
        };
        let Some(f) = self.fetching.get_mut(&group_id) else {
            return;
        };
        if let Some(q) = f.queue.pop_front() {
            self.waiting -= 1;
            self.counters.waits_dropped += 1;
            log::warn!(
                "group message {}->{group_id} (msg_id {}) dropped: {MAX_WAITING_MSGS} messages wait for member lists",
                q.waiting.msg.from_user_id,
                q.waiting.msg.msg_id
            );
        }
        if f.queue.is_empty() {
            self.fetching.remove(&group_id);
        }
    }

    /// The member list of `group_id` arrived: every message waiting for it
    /// in arrival order (none when an earlier answer already took them),
    /// and whether the list may be kept (no change since it was asked).
    pub fn fetched(&mut self, group_id: u32) -> (Vec<WaitingMsg>, bool) {
        match self.fetching.remove(&group_id) {
            Some(f) => {
                self.waiting -= f.queue.len();
                (f.queue.into_iter().map(|q| q.waiting).collect(), !f.stale)
            }
            None => (Vec::new(), true),
        }
    }

    /// The sweep at `now` (once a second): member lists past
    /// [`MEMBER_LIST_MAX_AGE_MS`] are forgotten, and the messages that
    /// waited [`MAX_WAIT_MS`] for theirs are dropped and returned, with
    /// their group, for the caller to log. A fetch left with no message is
    /// forgotten; its answer, if it still comes, delivers nothing.
    pub fn expire(&mut self, now: u64) -> Vec<(u32, WaitingMsg)> {
        while let Some(&(since, group_id)) = self.by_age.first() {
            if now < since + MEMBER_LIST_MAX_AGE_MS {
                break;
            }
            self.by_age.pop_first();
            self.groups.remove(&group_id);
            self.counters.lists_expired += 1;
        }
        let mut expired = Vec::new();
        self.fetching.retain(|&group_id, f| {
            while f.queue.front().is_some_and(|q| now >= q.at + MAX_WAIT_MS) {
                expired.extend(f.queue.pop_front().map(|q| (group_id, q.waiting)));
            }
            !f.queue.is_empty()
        });
        self.waiting -= expired.len();
        self.counters.waits_expired += expired.len() as u64;
        expired
    }

    /// The fetches under way, each with its oldest waiting message, marked
    /// as asked again at `now` (their db_proxy link closed: the requests
    /// and the replies may be lost).
    pub fn refetch_all(&mut self, now: u64) -> Vec<WaitingMsg> {
        self.fetching
            .values_mut()
            .filter_map(|f| {
                f.since = now;
                f.queue.front().map(|q| q.waiting.clone())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_follows_changes() {
        let mut c = GroupCache::default();
        c.insert(9, 1, vec![1, 2], 0);
        assert_eq!(c.members(9, 0), Some(&[1, 2][..]));
        c.invalidate(9);
        assert_eq!(c.members(9, 0), None);
        c.insert(9, 2, vec![1], 0);
        c.clear();
        assert_eq!(c.members(9, 0), None);
    }

    #[test]
    fn one_fetch_at_a_time_per_group() {
        let mut c = GroupCache::default();
        let w = |id| WaitingMsg {
            msg: IMMsgData {
                msg_id: id,
                ..IMMsgData::default()
            },
            from_conn: None,
            origin: false,
        };
        assert!(!c.wait_for_fetch(9, w(1), 0), "first message fetches");
        assert!(c.wait_for_fetch(9, w(2), 10), "later ones wait");
        assert!(c.wait_for_fetch(9, w(3), 20));
        assert!(!c.wait_for_fetch(7, w(4), 20), "other groups fetch");
        let (queued, keep) = c.fetched(9);
        let ids: Vec<u32> = queued.iter().map(|w| w.msg.msg_id).collect();
        assert_eq!(ids, vec![1, 2, 3], "every waiting message, in order");
        assert!(keep);
        assert!(
            c.fetched(9).0.is_empty(),
            "a second answer delivers nothing"
        );
        assert!(
            !c.wait_for_fetch(7, w(5), 20 + FETCH_RETRY_MS),
            "a lost reply is asked again"
        );
        let ids: Vec<u32> = c.fetched(7).0.iter().map(|w| w.msg.msg_id).collect();
        assert_eq!(ids, vec![4, 5], "nothing waiting is lost with the reply");
        assert!(!c.wait_for_fetch(6, w(6), 0));
        assert!(c.wait_for_fetch(6, w(7), 1));
        let again: Vec<u32> = c.refetch_all(2).iter().map(|w| w.msg.msg_id).collect();
        assert_eq!(again, vec![6], "a closed link asks again for the oldest");
        assert_eq!(c.fetched(6).0.len(), 2);
    }

    #[test]
    fn versions_decide_which_list_is_kept() {
        let mut c = GroupCache::default();
        c.insert(9, 3, vec![1, 2], 0);
        c.insert(9, 2, vec![1], 0);
        assert_eq!(
            c.members(9, 0),
            Some(&[1, 2][..]),
            "an older fetch never wins"
        );
        c.observe(9, 3, Some(&[7]), 0);
        assert_eq!(c.members(9, 0), Some(&[1, 2][..]), "same version: kept");
        c.observe(9, 4, Some(&[1, 2, 3]), 0);
        assert_eq!(
            (c.version(9), c.members(9, 0)),
            (Some(4), Some(&[1, 2, 3][..]))
        );
        c.observe(9, 5, None, 0);
        assert_eq!(
            c.members(9, 0),
            None,
            "a newer version without members drops it"
        );
        c.observe(9, 6, Some(&[1]), 0);
        assert_eq!(c.members(9, 0), None, "an unknown group stays unknown");
        c.insert(8, 1, vec![1], 0);
        c.observe(8, 1, None, 0);
        assert_eq!(c.members(8, 0), Some(&[1][..]));
    }

    #[test]
    fn old_lists_are_asked_for_again() {
        let mut c = GroupCache::default();
        c.insert(9, 1, vec![1, 2], 1000);
        assert!(c.members(9, 1000 + MEMBER_LIST_MAX_AGE_MS - 1).is_some());
        assert!(c.members(9, 1000 + MEMBER_LIST_MAX_AGE_MS).is_none());
        c.insert(9, 1, vec![1, 2], 1000 + MEMBER_LIST_MAX_AGE_MS);
        assert!(
            c.members(9, 1000 + MEMBER_LIST_MAX_AGE_MS).is_some(),
            "refetched"
        );
        let later = 1000 + 2 * MEMBER_LIST_MAX_AGE_MS;
        c.insert(9, 0, vec![5], later);
        assert_eq!(
            c.members(9, later),
            Some(&[5][..]),
            "an expired list gives way even to a lower version (a recreated group)"
        );
    }

    #[test]
    fn a_fetch_overtaken_by_a_change_is_not_kept() {
        let mut c = GroupCache::default();
        let w = WaitingMsg {
            msg: IMMsgData::default(),
            from_conn: None,
            origin: false,
        };
        assert!(!c.wait_for_fetch(9, w.clone(), 0));
        c.invalidate(9);
        assert!(!c.fetched(9).1, "changed since asked");
        assert!(!c.wait_for_fetch(9, w.clone(), 0));
        assert!(c.fetched(9).1, "a new fetch is fresh");
        assert!(!c.wait_for_fetch(9, w, 0));
        c.clear();
        assert!(
            !c.fetched(9).1,
            "a route_server reconnect counts as a change"
        );
    }

    fn waiting(id: u32) -> WaitingMsg {
        WaitingMsg {
            msg: IMMsgData {
                msg_id: id,
                ..IMMsgData::default()
            },
            from_conn: None,
            origin: true,
        }
    }

    fn ids(v: &[WaitingMsg]) -> Vec<u32> {
        v.iter().map(|w| w.msg.msg_id).collect()
    }

    #[test]
    fn waits_expire_after_max_wait() {
        let mut c = GroupCache::default();
        assert!(!c.wait_for_fetch(9, waiting(1), 0));
        assert!(!c.wait_for_fetch(9, waiting(2), FETCH_RETRY_MS), "retried");
        assert!(c.expire(MAX_WAIT_MS - 1).is_empty(), "not yet");
        let gone = c.expire(MAX_WAIT_MS);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].0, gone[0].1.msg.msg_id), (9, 1));
        assert_eq!(c.waiting_count(), 1);
        assert_eq!(c.counters().waits_expired, 1);
        let gone = c.expire(FETCH_RETRY_MS + MAX_WAIT_MS);
        assert_eq!(
            gone.iter()
                .map(|(g, w)| (*g, w.msg.msg_id))
                .collect::<Vec<_>>(),
            vec![(9, 2)]
        );
        assert_eq!(c.waiting_count(), 0);
        assert!(c.fetched(9).0.is_empty(), "a late answer delivers nothing");
        assert!(
            !c.wait_for_fetch(9, waiting(3), FETCH_RETRY_MS + MAX_WAIT_MS),
            "the next message asks afresh"
        );
        assert_eq!(c.counters().waits_expired, 2);
    }

    #[test]
    fn waits_are_bounded_oldest_first() {
        let mut c = GroupCache::default();
        for i in 0..MAX_WAITING_MSGS as u32 {
            // Two groups, interleaved; group 8 holds the oldest message.
            c.wait_for_fetch(8 + (i % 2), waiting(i), u64::from(i));
        }
        assert_eq!(c.waiting_count(), MAX_WAITING_MSGS);
        let now = MAX_WAITING_MSGS as u64;
        c.wait_for_fetch(9, waiting(u32::MAX), now);
        assert_eq!(c.waiting_count(), MAX_WAITING_MSGS, "still at the bound");
        assert_eq!(c.counters().waits_dropped, 1);
        let eights = c.fetched(8).0;
        assert_eq!(
            eights.first().map(|w| w.msg.msg_id),
            Some(2),
            "message 0 went"
        );
        let nines = c.fetched(9).0;
        assert_eq!(
            nines.last().map(|w| w.msg.msg_id),
            Some(u32::MAX),
            "the new one waits"
        );
        assert_eq!(eights.len() + nines.len(), MAX_WAITING_MSGS);
        assert_eq!(c.waiting_count(), 0);
    }

    #[test]
    fn one_group_over_the_bound_keeps_its_newest() {
        let mut c = GroupCache::default();
        for i in 0..=MAX_WAITING_MSGS as u32 {
            c.wait_for_fetch(9, waiting(i), 0);
        }
        let (queued, _) = c.fetched(9);
        assert_eq!(queued.len(), MAX_WAITING_MSGS);
        assert_eq!(ids(&queued[..2]), vec![1, 2], "the oldest went, order kept");
    }

    #[test]
    fn cache_is_bounded_oldest_first() {
        let mut c = GroupCache::default();
        for g in 0..MAX_CACHED_GROUPS as u32 {
            c.insert(g, 1, vec![1], u64::from(g));
        }
        assert_eq!(c.group_count(), MAX_CACHED_GROUPS);
        c.insert(0, 2, vec![1, 2], 10_000);
        assert_eq!(c.counters().lists_evicted, 0, "a refresh takes no room");
        let new = MAX_CACHED_GROUPS as u32;
        c.insert(new, 1, vec![3], 10_001);
        assert_eq!(c.group_count(), MAX_CACHED_GROUPS);
        assert_eq!(c.counters().lists_evicted, 1);
        assert_eq!(c.members(1, 10_001), None, "the one read longest ago went");
        assert_eq!(c.members(0, 10_001), Some(&[1, 2][..]), "refreshed: kept");
        assert_eq!(c.members(new, 10_001), Some(&[3][..]));
        c.invalidate(2);
        c.insert(new + 1, 1, vec![4], 10_002);
        assert_eq!(c.counters().lists_evicted, 1, "a dropped list made room");
        assert_eq!(c.members(3, 10_002), Some(&[1][..]));
    }

    #[test]
    fn old_lists_are_swept() {
        let mut c = GroupCache::default();
        c.insert(9, 1, vec![1], 1000);
        c.insert(8, 1, vec![2], 5000);
        c.observe(9, 2, Some(&[1, 3]), 2000);
        c.expire(1000 + MEMBER_LIST_MAX_AGE_MS);
        assert_eq!(c.group_count(), 2, "9 was refreshed at 2000");
        c.expire(2000 + MEMBER_LIST_MAX_AGE_MS);
        assert_eq!(c.group_count(), 1);
        assert_eq!(c.members(8, 2000 + MEMBER_LIST_MAX_AGE_MS), Some(&[2][..]));
        c.expire(5000 + MEMBER_LIST_MAX_AGE_MS);
        assert_eq!(c.group_count(), 0);
        assert_eq!(c.counters().lists_expired, 2);
    }
}
