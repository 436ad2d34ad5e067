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

use netlib::ConnId;
use std::collections::HashMap;
use tt_proto::IM::Message::IMMsgData;

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

/// A member list being asked of db_proxy.
#[derive(Debug, Default)]
struct Fetch {
    /// When it was asked for (monotonic ms).
    since: u64,
    /// Every message waiting for the list, in arrival order, the one the
    /// request carries included (so a lost request loses none of them).
    queue: Vec<WaitingMsg>,
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
/// [`MEMBER_LIST_MAX_AGE_MS`] is asked for again.
#[derive(Debug, Default)]
pub struct GroupCache {
    groups: HashMap<u32, CachedGroup>,
    fetching: HashMap<u32, Fetch>,
}

impl GroupCache {
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
                self.groups.insert(group_id, g);
            }
        }
    }

    /// A reply seen on its way to a client says `group_id` is at `version`
    /// (with its `members` when the reply lists them): a cached list of an
    /// older version is replaced, or dropped when no members came with it.
    /// An unknown group stays unknown (the reply may predate a change
    /// announced since).
    pub fn observe(&mut self, group_id: u32, version: u32, members: Option<&[u32]>, now: u64) {
        let Some(g) = self.groups.get_mut(&group_id) else {
            return;
        };
        if g.version >= version {
            return;
        }
        match members {
            Some(m) => {
                g.version = version;
                g.members = m.to_vec();
                g.since = now;
            }
            None => {
                self.groups.remove(&group_id);
            }
        }
    }

    /// Forgets `group_id` (its membership changed); a list being fetched
    /// will not be kept.
    pub fn invalidate(&mut self, group_id: u32) {
        self.groups.remove(&group_id);
        if let Some(f) = self.fetching.get_mut(&group_id) {
            f.stale = true;
        }
    }

    /// Forgets every group; no list being fetched will be kept.
    pub fn clear(&mut self) {
        self.groups.clear();
        for f in self.fetching.values_mut() {
            f.stale = true;
        }
    }

    /// A message for `group_id`, whose list is not known, at `now`: it is
    /// queued; true when a fetch is under way, false when the caller must
    /// ask db_proxy (a fetch is then recorded, or a lost one retried).
    pub fn wait_for_fetch(&mut self, group_id: u32, waiting: WaitingMsg, now: u64) -> bool {
        let f = self.fetching.entry(group_id).or_insert_with(|| Fetch {
            since: now,
            ..Fetch::default()
        });
        let under_way = !f.queue.is_empty() && now < f.since + FETCH_RETRY_MS;
        f.queue.push(waiting);
        if !under_way {
            f.since = now;
        }
        under_way
    }

    /// The member list of `group_id` arrived: every message waiting for it
    /// in arrival order (none when an earlier answer already took them),
    /// and whether the list may be kept (no change since it was asked).
    pub fn fetched(&mut self, group_id: u32) -> (Vec<WaitingMsg>, bool) {
        match self.fetching.remove(&group_id) {
            Some(f) => (f.queue, !f.stale),
            None => (Vec::new(), true),
        }
    }

    /// The fetches under way, each with its oldest waiting message, marked
    /// as asked again at `now` (their db_proxy link closed: the requests
    /// and the replies may be lost).
    pub fn refetch_all(&mut self, now: u64) -> Vec<WaitingMsg> {
        self.fetching
            .values_mut()
            .filter_map(|f| {
                f.since = now;
                f.queue.first().cloned()
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
}
