//! `CID_OTHER_VALIDATE_REQ`: the C++ `business/Login.cpp` (`doLogin`, the
//! failure limit) and `business/InterLogin.cpp` (`CInterLoginStrategy`, the
//! query and the password check).
//!
//! Differences from the C++, on purpose: the user is looked up with a bound
//! parameter (the C++ splices the name into the SQL, so `' OR '1'='1` or a
//! `UNION SELECT` with a forged hash logs in); a database failure answers
//! result 2 ("server internal error") instead of counting as a wrong
//! password; and the failure table has a fixed size (the C++ map only
//! grows): an LRU of [`FAILURE_TABLE_SIZE`] names, so a spray of distinct
//! names costs O(1) per failure and bounded memory; names that differ only
//! in trailing spaces (which MariaDB's collation ignores, so they log in
//! as the same user) share one limit. Validations that
//! queue up are looked up together ([`validate_batch`], one `IN (...)`
//! query per batch instead of one query each; see [`crate::login_lane`]),
//! each still answered as it would be alone.

use super::user_model::{user_from_row, USER_COLUMNS};
use super::{col_str, reply, HandlerResult};
use crate::db_pool::{DbError, SLAVE};
use crate::services::Services;
use base::md5::md5_hex;
use base::pdu::ImPdu;
use lru::LruCache;
use mysql::Row;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::num::NonZeroUsize;
use tt_proto::IM::BaseDefine::UserInfo;
use tt_proto::IM::Server::{IMValidateReq, IMValidateRsp};

/// Failures remembered for this long (30 minutes).
const FAILURE_WINDOW_SECS: u32 = 30 * 60;
/// More failures than this within the window refuse the login.
const MAX_FAILURES: usize = 10;
/// Most names the failure table holds. When full, a new name first
/// drops the least recently seen names whose failures are all out of the
/// window, then (if none is) the least recently seen name. A spray of more
/// distinct names than this only buys one more round of
/// [`MAX_FAILURES`] guesses per name after every this many requests.
pub const FAILURE_TABLE_SIZE: usize = 10_000;

/// Result strings the C++ sends (clients show them).
const OK_TEXT: &str = "成功";
const WRONG_TEXT: &str = "用户名/密码错误";
const TOO_MANY_TEXT: &str = "用户名/密码错误次数太多";
const INTERNAL_TEXT: &str = "服务端内部错误";

/// Recent login failures per user name (`g_hmLimits`), newest first.
pub struct LoginLimiter {
    failures: Mutex<LruCache<String, VecDeque<u32>>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::with_capacity(FAILURE_TABLE_SIZE)
    }
}

/// The name a failure counts against: as the lookup matches it, trailing
/// spaces ignored, so `"bob "` and `"bob"` share bob's limit.
fn limit_key(name: &str) -> &str {
    name.trim_end_matches(' ')
}

/// True when every failure of `list` (newest first) is out of the window.
fn all_expired(list: &VecDeque<u32>, now: u32) -> bool {
    list.front()
        .is_none_or(|&t| now.saturating_sub(t) > FAILURE_WINDOW_SECS)
}

impl LoginLimiter {
    /// A table of at most `names` names (at least 1).
    pub fn with_capacity(names: usize) -> LoginLimiter {
        let cap = NonZeroUsize::new(names).unwrap_or(NonZeroUsize::MIN);
        LoginLimiter {
            failures: Mutex::new(LruCache::new(cap)),
        }
    }

    /// Drops failures older than the window; true when the name has more
    /// than [`MAX_FAILURES`] left, the newest within the window. A name
    /// asked about counts as recently seen.
    fn is_locked(&self, name: &str, now: u32) -> bool {
        let name = limit_key(name);
        let mut map = self.failures.lock();
        let Some(list) = map.get_mut(name) else {
            return false;
        };
        if let Some(cut) = list
            .iter()
            .position(|&t| now.saturating_sub(t) > FAILURE_WINDOW_SECS)
        {
            list.truncate(cut);
        }
        if list.is_empty() {
            map.pop(name);
            return false;
        }
        list.len() > MAX_FAILURES && !all_expired(list, now)
    }

    fn record_failure(&self, name: &str, now: u32) {
        let name = limit_key(name);
        let mut map = self.failures.lock();
        if !map.contains(name) && map.len() >= map.cap().get() {
            // Names tried once and never again go first: each leaves once,
            // so this is O(1) per failure over time.
            while map.peek_lru().is_some_and(|(_, l)| all_expired(l, now)) {
                map.pop_lru();
            }
        }
        // Still full: the least recently seen name makes room (`push`).
        let list = map.get_or_insert_mut(name.to_string(), VecDeque::new);
        list.push_front(now);
        // Only the newest MAX_FAILURES + 1 matter for the lock.
        list.truncate(MAX_FAILURES + 1);
    }

    fn clear(&self, name: &str) {
        self.failures.lock().pop(limit_key(name));
    }
}

/// Most names one lookup asks for; a longer batch is looked up in parts.
pub const MAX_NAMES_PER_LOOKUP: usize = 64;

/// The number of `?` of the lookup for `n` names: the next power of two
/// (at most [`MAX_NAMES_PER_LOOKUP`]), the list padded
/// with its last name, so a connection's statement cache holds a handful
/// of statements whatever the batch sizes.
pub fn lookup_size(n: usize) -> usize {
    n.max(1).next_power_of_two().min(MAX_NAMES_PER_LOOKUP)
}

/// True when MariaDB's `utf8mb4_bin` (a PAD SPACE collation) takes the
/// names as equal, as `name = ?` does: trailing spaces do not count.
fn same_name(stored: &str, asked: &str) -> bool {
    limit_key(stored) == limit_key(asked)
}

/// `CInterLoginStrategy::doLogin` for several names at once (not in the
/// C++, which reads one user per query): the active users named `names`
/// with their password hash and salt. Where rows share a name (`idx_name`
/// is not unique), the first returned is checked, as `name = ?` checked
/// its first row.
fn lookup_users(services: &Services, names: &[&str]) -> Result<Vec<Row>, DbError> {
    let mut rows = Vec::new();
    let mut conn = services.db.get(SLAVE)?;
    for part in names.chunks(MAX_NAMES_PER_LOOKUP) {
        let size = lookup_size(part.len());
        let mut sql = String::from("SELECT ");
        sql.push_str(USER_COLUMNS);
        sql.push_str(", password, salt FROM IMUser WHERE name IN (?");
        sql.push_str(&", ?".repeat(size - 1));
        sql.push_str(") AND status = 0");
        let last = part.last().copied().unwrap_or_default();
        let params: Vec<mysql::Value> = (0..size)
            .map(|i| part.get(i).copied().unwrap_or(last).into())
            .collect();
        let found: Vec<Row> = conn.run(|c| crate::db_rows::exec(c, &sql, params.clone()))?;
        rows.extend(found);
    }
    Ok(rows)
}

/// The user of `row` if `password` (the MD5 hex the client sends) salted
/// matches the stored hash.
fn password_matches(row: &Row, password: &str) -> Option<UserInfo> {
    let salted = format!("{password}{}", col_str(row, "salt"));
    (md5_hex(salted.as_bytes()) == col_str(row, "password")).then(|| user_from_row(row))
}

/// `DB_PROXY::doLogin` for a batch of validations (all `CID_OTHER_VALIDATE_REQ`):
/// one lookup for every name, then each request answered as `doLogin`
/// answers it alone, in the batch's order (a name locked out, also by
/// failures earlier in the batch, is refused without looking at its row).
/// A lookup that fails answers every request it was for with result 2.
pub fn validate_batch(services: &Services, reqs: &[ImPdu]) -> Vec<HandlerResult> {
    let now = base::tick::unix_time();
    let asked: Vec<Result<IMValidateReq, _>> =
        reqs.iter().map(|req| req.msg::<IMValidateReq>()).collect();
    let mut names: Vec<&str> = asked
        .iter()
        .filter_map(|a| a.as_ref().ok().map(|m| m.user_name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let rows = if names.is_empty() {
        Ok(Vec::new())
    } else {
        lookup_users(services, &names)
    };
    // Each row's name, read once for the whole batch.
    let rows: Result<Vec<(String, Row)>, DbError> =
        rows.map(|rows| rows.into_iter().map(|r| (col_str(&r, "name"), r)).collect());
    reqs.iter()
        .zip(asked)
        .map(|(req, a)| {
            let msg = match a {
                Ok(msg) => msg,
                Err(e) => {
                    log::warn!("validate request does not decode: {e}");
                    let rsp = IMValidateRsp {
                        result_code: 2,
                        result_string: Some(INTERNAL_TEXT.into()),
                        ..IMValidateRsp::default()
                    };
                    return reply(req, &rsp);
                }
            };
            let mut rsp = IMValidateRsp {
                user_name: msg.user_name.clone(),
                attach_data: msg.attach_data,
                ..IMValidateRsp::default()
            };
            // Failures earlier in this batch count, as they would one
            // request after the other.
            if services.login_limiter.is_locked(&msg.user_name, now) {
                log::info!("{:?}: too many failed logins", msg.user_name);
                rsp.result_code = 6;
                rsp.result_string = Some(TOO_MANY_TEXT.into());
                return reply(req, &rsp);
            }
            log::info!("{:?} requests login", msg.user_name);
            let row = rows.as_ref().map(|rows| {
                rows.iter()
                    .find(|(name, _)| same_name(name, &msg.user_name))
                    .map(|(_, r)| r)
            });
            match row.map(|r| r.and_then(|r| password_matches(r, &msg.password))) {
                Ok(Some(mut user)) => {
                    user.status = 0;
                    rsp.user_info = Some(user);
                    rsp.result_code = 0;
                    rsp.result_string = Some(OK_TEXT.into());
                    services.login_limiter.clear(&msg.user_name);
                }
                Ok(None) => {
                    services.login_limiter.record_failure(&msg.user_name, now);
                    rsp.result_code = 1;
                    rsp.result_string = Some(WRONG_TEXT.into());
                }
                Err(e) => {
                    log::error!("login of {:?}: {e}", msg.user_name);
                    rsp.result_code = 2;
                    rsp.result_string = Some(INTERNAL_TEXT.into());
                }
            }
            reply(req, &rsp)
        })
        .collect()
}

/// `DB_PROXY::doLogin`: one validation (the handler map's entry; the loop
/// sends validations through [`crate::login_lane`] in batches).
pub fn do_login(services: &Services, req: &ImPdu) -> HandlerResult {
    validate_batch(services, std::slice::from_ref(req))
        .pop()
        .unwrap_or(Ok(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_come_in_a_few_sizes() {
        let sizes: Vec<usize> = [0, 1, 2, 3, 4, 5, 8, 9, 33, 64, 65, 500]
            .iter()
            .map(|&n| lookup_size(n))
            .collect();
        assert_eq!(sizes, [1, 1, 2, 4, 4, 8, 8, 16, 64, 64, 64, 64]);
    }

    #[test]
    fn trailing_spaces_do_not_buy_more_guesses() {
        let l = LoginLimiter::default();
        for i in 0..=MAX_FAILURES {
            l.record_failure(&format!("bob{}", " ".repeat(i)), 1_000);
        }
        assert!(l.is_locked("bob", 1_000));
        assert!(l.is_locked("bob   ", 1_000));
        l.clear("bob ");
        assert!(!l.is_locked("bob", 1_000));
    }

    #[test]
    fn names_compare_as_the_pad_space_collation_does() {
        assert!(same_name("alice", "alice"));
        assert!(same_name("alice", "alice  "));
        assert!(same_name("alice ", "alice"));
        assert!(!same_name("alice", " alice"));
        assert!(!same_name("alice", "Alice"));
        assert!(!same_name("alice", "alice\t"));
    }

    #[test]
    fn limiter_follows_the_cpp_counts() {
        let l = LoginLimiter::default();
        let now = 1_000_000;
        for i in 0..11 {
            assert!(!l.is_locked("bob", now), "attempt {i} allowed");
            l.record_failure("bob", now);
        }
        assert!(l.is_locked("bob", now), "more than 10 failures lock");
        assert!(
            !l.is_locked("bob", now + FAILURE_WINDOW_SECS + 1),
            "old failures expire"
        );
        assert!(l.failures.lock().is_empty(), "expired names are forgotten");
        l.record_failure("carol", now);
        l.clear("carol");
        assert!(!l.is_locked("carol", now));
    }

    #[test]
    fn limiter_memory_is_bounded() {
        let l = LoginLimiter::default();
        for i in 0..FAILURE_TABLE_SIZE as u32 {
            l.record_failure(&format!("spray{i}"), 1_000);
        }
        for _ in 0..50 {
            l.record_failure("dave", 1_000);
        }
        assert_eq!(
            l.failures.lock().peek("dave").map(VecDeque::len),
            Some(MAX_FAILURES + 1)
        );
        l.record_failure("late", 1_000 + FAILURE_WINDOW_SECS + 1);
        let map = l.failures.lock();
        assert_eq!(map.len(), 1, "old names forgotten past the bound");
        assert!(map.contains("late"));
    }

    #[test]
    fn a_spray_of_fresh_names_keeps_the_table_at_its_size() {
        let l = LoginLimiter::with_capacity(100);
        for i in 0..1_000u32 {
            l.record_failure(&format!("spray{i}"), 1_000);
        }
        let map = l.failures.lock();
        assert_eq!(map.len(), 100);
        assert!(map.contains("spray999") && map.contains("spray900"));
        assert!(!map.contains("spray899"), "the least recent went first");
    }

    #[test]
    fn a_locked_name_asked_about_outlives_a_spray_smaller_than_the_table() {
        let l = LoginLimiter::with_capacity(100);
        for _ in 0..=MAX_FAILURES {
            l.record_failure("bob", 1_000);
        }
        for round in 0..5u32 {
            // Each login attempt of bob refreshes his entry.
            assert!(l.is_locked("bob", 1_000), "round {round}");
            for i in 0..99u32 {
                l.record_failure(&format!("spray{round}-{i}"), 1_000);
            }
        }
        assert!(l.is_locked("bob", 1_000));
        // Past the table size between two of his attempts, he is forgotten.
        for i in 0..100u32 {
            l.record_failure(&format!("flood{i}"), 1_000);
        }
        assert!(!l.is_locked("bob", 1_000));
    }

    #[test]
    fn when_full_names_with_only_old_failures_go_before_recent_ones() {
        let l = LoginLimiter::with_capacity(3);
        let later = 1_000 + FAILURE_WINDOW_SECS + 1;
        l.record_failure("old", 1_000);
        l.record_failure("a", later);
        l.record_failure("b", later);
        l.record_failure("c", later);
        {
            let map = l.failures.lock();
            assert!(!map.contains("old"));
            assert!(map.contains("a") && map.contains("b") && map.contains("c"));
        }
        // All recent: the least recently seen makes room ("a" was just asked about).
        assert!(!l.is_locked("a", later));
        l.record_failure("d", later);
        let map = l.failures.lock();
        assert!(map.contains("a") && !map.contains("b"));
        assert_eq!(map.len(), 3);
    }
}
