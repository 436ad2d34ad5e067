//! A one-to-one pair's relation and sessions as the message path needs
//! them: the relation and session steps of the C++ `DB_PROXY::sendMessage`
//! (`MessageContent.cpp`, calling `CRelationModel::addRelation` and
//! `CSessionModel::addSession`), and the cache of pairs seen lately.
//!
//! Differences from the C++, which looks each row up and creates it with
//! its own statements and no lock (two racing first messages can make two
//! relations): a missing pair is made under its MySQL named lock; the
//! locks of several pairs are taken in one statement and released in
//! another; under them, one statement per pair finds its relation and
//! both sessions (active or not), and all the pairs' missing rows are
//! inserted (or revived) in one transaction, with the new relations'
//! message-id counters set in one Redis pipeline. A new pair costs about
//! seven round trips instead of thirteen, and a batch of them shares the
//! lock, transaction and counter round trips.

use super::message_batch_rows::chunk_sizes;
use super::{relation_model, session_model, HandlerError, LOCK_TIMEOUT_SECS};
use crate::cache_keys;
use crate::cache_pool::pools;
use crate::db_pool::DbConn;
use crate::services::Services;
use mysql::prelude::Queryable;
use mysql::Row;
use std::collections::HashMap;
use tt_proto::IM::BaseDefine::SessionType;

/// The columns of [`PAIR_LOOKUP`]: the pair's relation and both users'
/// active sessions with their update times (a literal, so that the
/// single and the batched lookup are built from it at compile time).
macro_rules! pair_lookup_columns {
    () => {
        "\
    (SELECT id FROM IMRelationShip WHERE smallId = ? AND bigId = ? AND status = 0 \
     ORDER BY id DESC LIMIT 1), \
    (SELECT id FROM IMRecentSession WHERE userId = ? AND peerId = ? AND type = ? AND status = 0 \
     ORDER BY id DESC LIMIT 1), \
    (SELECT updated FROM IMRecentSession WHERE userId = ? AND peerId = ? AND type = ? \
     AND status = 0 ORDER BY id DESC LIMIT 1), \
    (SELECT id FROM IMRecentSession WHERE userId = ? AND peerId = ? AND type = ? AND status = 0 \
     ORDER BY id DESC LIMIT 1), \
    (SELECT updated FROM IMRecentSession WHERE userId = ? AND peerId = ? AND type = ? \
     AND status = 0 ORDER BY id DESC LIMIT 1)"
    };
}

/// The pair's relation and both users' active sessions with their update
/// times, in one statement.
const PAIR_LOOKUP: &str = concat!("SELECT ", pair_lookup_columns!());

/// One pair's row of the batched lookup ([`find_pairs`]): [`PAIR_LOOKUP`]
/// tagged with the pair's place in its batch.
const PAIR_LOOKUP_TAGGED: &str = concat!("SELECT ? AS k, ", pair_lookup_columns!());

type PairIds = (
    Option<u32>,
    Option<u32>,
    Option<u32>,
    Option<u32>,
    Option<u32>,
);

/// Under the pair lock: the rows a pair is made of, active or not, one row
/// each (`kind` 0 the relation, 1 the sender's session, 2 the receiver's):
/// the newest active one, else the newest (to revive, as `addRelation` and
/// `addSession` do). Binds small, big, from, to, type, to, from, type.
const PAIR_ROWS: &str = "\
    (SELECT 0 AS kind, id, COALESCE(status, 1), updated FROM IMRelationShip \
     WHERE smallId = ? AND bigId = ? ORDER BY status = 0 DESC, id DESC LIMIT 1) \
    UNION ALL \
    (SELECT 1, id, COALESCE(status, 1), updated FROM IMRecentSession \
     WHERE userId = ? AND peerId = ? AND type = ? ORDER BY status = 0 DESC, id DESC LIMIT 1) \
    UNION ALL \
    (SELECT 2, id, COALESCE(status, 1), updated FROM IMRecentSession \
     WHERE userId = ? AND peerId = ? AND type = ? ORDER BY status = 0 DESC, id DESC LIMIT 1)";

/// What the message path knows of a pair: its relation, both sessions
/// (`[small → big, big → small]`) and the second they were last set active
/// and touched by this process.
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    /// `IMRelationShip.id`.
    pub relate_id: u32,
    /// `IMRecentSession.id` of each side.
    pub sessions: [u32; 2],
    /// When both sessions were last updated (status 0, `updated`).
    pub touched: u32,
}

/// Most pairs remembered before the cache starts over.
const PAIR_CACHE_MAX: usize = 100_000;

/// The pairs messages went between lately, so that the usual message costs
/// no lookup: a relation is never removed once made, and a session's id
/// stays its own (the C++ revives a removed session instead of adding
/// one); each second's first message of a pair sets both sessions active
/// again, which also revives one removed meanwhile.
#[derive(Default)]
pub struct PairCache {
    map: parking_lot::Mutex<HashMap<(u32, u32), Pair>>,
}

impl PairCache {
    /// The pair `(small, big)`, if seen.
    pub fn get(&self, small: u32, big: u32) -> Option<Pair> {
        self.map.lock().get(&(small, big)).copied()
    }

    /// Remembers a pair.
    pub fn put(&self, small: u32, big: u32, pair: Pair) {
        let mut map = self.map.lock();
        if map.len() >= PAIR_CACHE_MAX {
            map.clear();
        }
        map.insert((small, big), pair);
    }

    /// Forgets a pair (one of its sessions was removed here).
    pub fn forget(&self, a: u32, b: u32) {
        self.map.lock().remove(&relation_model::ordered(a, b));
    }
}

/// Relation id, then each session's id and update time.
pub type PairRows = (u32, u32, Option<u32>, u32, Option<u32>);

/// The bound values of [`PAIR_LOOKUP`] for `from_id` → `to_id`.
fn pair_values(from_id: u32, to_id: u32) -> impl Iterator<Item = mysql::Value> {
    let single = SessionType::SESSION_TYPE_SINGLE as u32;
    let (small, big) = relation_model::ordered(from_id, to_id);
    [
        small, big, from_id, to_id, single, from_id, to_id, single, to_id, from_id, single, to_id,
        from_id, single,
    ]
    .into_iter()
    .map(mysql::Value::from)
}

/// [`find_pair`] of each of `pairs` (`(from, to)`), answered in the same
/// order, a few pairs to a statement (each row tagged with its pair's
/// place, as `UNION ALL` keeps no order): the pairs the loop did not find
/// in its cache mostly exist (after a restart, or once the cache started
/// over), and are then found in one round trip, with no named lock.
pub fn find_pairs(
    conn: &mut DbConn<'_>,
    pairs: &[(u32, u32)],
) -> Result<Vec<Option<PairRows>>, HandlerError> {
    let mut out = Vec::with_capacity(pairs.len());
    let mut rest = pairs;
    for size in chunk_sizes(pairs.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let sql = vec![PAIR_LOOKUP_TAGGED; size].join(" UNION ALL ");
        let mut values = Vec::with_capacity(size * 15);
        for (k, &(from, to)) in chunk.iter().enumerate() {
            values.push(mysql::Value::from(k as u32));
            values.extend(pair_values(from, to));
        }
        let rows: Vec<Row> =
            conn.run(|c| crate::db_rows::exec(c, &sql, mysql::Params::Positional(values)))?;
        let mut found: Vec<Option<PairRows>> = vec![None; size];
        for row in rows {
            let col = |i: usize| -> Option<u32> { row.get_opt(i)?.ok().flatten() };
            let Some(k) = col(0).map(|k| k as usize).filter(|&k| k < size) else {
                continue;
            };
            if let (Some(r), Some(s), Some(p)) = (col(1), col(2), col(4)) {
                found[k] = Some((r, s, col(3), p, col(5)));
            }
        }
        out.extend(found);
    }
    Ok(out)
}

/// The pair's relation and sessions (ids and update times) when all three
/// exist, in one statement.
pub fn find_pair(
    conn: &mut DbConn<'_>,
    from_id: u32,
    to_id: u32,
) -> Result<Option<PairRows>, HandlerError> {
    let found: Option<PairIds> = conn.run(|c| {
        crate::db_rows::exec_first(
            c,
            PAIR_LOOKUP,
            mysql::Params::Positional(pair_values(from_id, to_id).collect()),
        )
    })?;
    Ok(match found {
        Some((Some(r), Some(s), su, Some(p), pu)) => Some((r, s, su, p, pu)),
        _ => None,
    })
}

/// The pair's relation and sessions (ids and update times) from the
/// database, each created under the pair lock when absent.
pub fn lookup_pair(
    services: &Services,
    conn: &mut DbConn<'_>,
    from_id: u32,
    to_id: u32,
    now: u32,
) -> Result<PairRows, HandlerError> {
    if let Some(rows) = find_pair(conn, from_id, to_id)? {
        return Ok(rows);
    }
    create_pairs(services, conn, &[(from_id, to_id)], now, LOCK_TIMEOUT_SECS)?
        .pop()
        .flatten()
        .ok_or_else(|| HandlerError::Lock(relation_model::pair_lock_name(from_id, to_id)))
}

/// A pair from its rows as looked up for `from` → `to`: touched now only
/// when both sessions were updated this second already.
pub fn pair_of(from: u32, to: u32, rows: PairRows, now: u32) -> Pair {
    let (r, s, su, p, pu) = rows;
    let (small, _) = relation_model::ordered(from, to);
    let sessions = if from == small { [s, p] } else { [p, s] };
    let touched = if su == Some(now) && pu == Some(now) {
        now
    } else {
        0
    };
    Pair {
        relate_id: r,
        sessions,
        touched,
    }
}

/// Makes the relations and sessions still missing of `pairs` (each
/// `(from, to)`; no pair twice), answering their rows in the same order,
/// `None` for a pair whose named lock was not granted within `lock_wait`
/// seconds (the others are made). The locks are taken in the order of
/// their names, so two db_proxies never wait on each other, a few to a
/// statement; the rows go in one transaction (one log flush for all of
/// them).
pub fn create_pairs(
    services: &Services,
    conn: &mut DbConn<'_>,
    pairs: &[(u32, u32)],
    now: u32,
    lock_wait: u32,
) -> Result<Vec<Option<PairRows>>, HandlerError> {
    let mut names: Vec<String> = pairs
        .iter()
        .map(|&(a, b)| relation_model::pair_lock_name(a, b))
        .collect();
    names.sort();
    names.dedup();
    let granted = take_locks(conn, &names, lock_wait)?;
    let todo: Vec<(u32, u32)> = pairs
        .iter()
        .copied()
        .filter(|&(a, b)| granted.contains(&relation_model::pair_lock_name(a, b)))
        .collect();
    let made = if todo.is_empty() {
        Ok(Vec::new())
    } else {
        create_in_transaction(services, conn, &todo, now)
    };
    release_locks(conn, &granted);
    let rows = made?;
    let mut by_pair: HashMap<(u32, u32), PairRows> = todo.into_iter().zip(rows).collect();
    Ok(pairs.iter().map(|p| by_pair.remove(p)).collect())
}

/// `GET_LOCK` of each of `names` (sorted), waiting at most `wait` seconds
/// for each, a few to a statement; the names granted. On an error every
/// lock asked so far is released (a statement cut off may have taken some
/// of its own: releasing one not held does nothing) before the error is
/// answered.
fn take_locks(
    conn: &mut DbConn<'_>,
    names: &[String],
    wait: u32,
) -> Result<Vec<String>, HandlerError> {
    let mut granted = Vec::with_capacity(names.len());
    let mut rest = names;
    for size in chunk_sizes(names.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let sql = ["SELECT ", &vec!["GET_LOCK(?, ?)"; size].join(", ")].concat();
        let params: Vec<mysql::Value> = chunk
            .iter()
            .flat_map(|n| [mysql::Value::from(n.as_str()), wait.into()])
            .collect();
        let row: Result<Option<Row>, _> = conn.run(|c| crate::db_rows::exec_first(c, &sql, params));
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                let asked = names.len() - rest.len();
                release_locks(conn, &names[..asked]);
                return Err(e.into());
            }
        };
        for (i, name) in chunk.iter().enumerate() {
            let got: Option<i64> = row.as_ref().and_then(|r| r.get_opt(i)?.ok()).flatten();
            if got == Some(1) {
                granted.push(name.clone());
            } else if wait > 0 {
                log::error!("named lock {name} not granted in {wait} s");
            } else {
                log::debug!("named lock {name} busy");
            }
        }
    }
    Ok(granted)
}

/// `RELEASE_LOCK` of each of `names`, a few to a statement. On a failure
/// the connection is closed instead of going back to the pool, and its
/// locks with it.
fn release_locks(conn: &mut DbConn<'_>, names: &[String]) {
    let mut rest = names;
    for size in chunk_sizes(names.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let sql = ["DO ", &vec!["RELEASE_LOCK(?)"; size].join(", ")].concat();
        let params: Vec<mysql::Value> = chunk.iter().map(|n| n.as_str().into()).collect();
        if let Err(e) = conn.run(|c| c.exec_drop(&sql, params)) {
            log::warn!("releasing named locks {chunk:?}: {e}; closing the connection");
            conn.mark_broken();
        }
    }
}

/// [`create_pair`] for each of `pairs`, in one transaction; the counters of
/// the relations made start at 0 (`resetMsgId`), set in one pipeline
/// before the commit.
fn create_in_transaction(
    services: &Services,
    conn: &mut DbConn<'_>,
    pairs: &[(u32, u32)],
    now: u32,
) -> Result<Vec<PairRows>, HandlerError> {
    conn.run(|c| c.query_drop("START TRANSACTION"))?;
    let mut new_relations = Vec::new();
    let made: Result<Vec<PairRows>, HandlerError> = pairs
        .iter()
        .map(|&(a, b)| create_pair(conn, a, b, now, &mut new_relations))
        .collect();
    let made = made.and_then(|rows| {
        if !new_relations.is_empty() {
            let mut pipe = redis::pipe();
            for &id in &new_relations {
                pipe.cmd("SET")
                    .arg(cache_keys::pair_msg_id(id))
                    .arg(0)
                    .ignore();
            }
            services
                .cache
                .get(pools::UNREAD)?
                .run(|c| pipe.query::<()>(c))?;
        }
        Ok(rows)
    });
    match made {
        Ok(rows) => {
            conn.run(|c| c.query_drop("COMMIT"))?;
            Ok(rows)
        }
        Err(e) => {
            if let Err(r) = conn.run(|c| c.query_drop("ROLLBACK")) {
                // Not back to the pool with a transaction open.
                log::warn!("rollback after a failed pair creation: {r}; closing the connection");
                conn.mark_broken();
            }
            Err(e)
        }
    }
}

/// A row of [`PAIR_ROWS`]: id, status, updated.
type Found = (u32, u32, u32);

/// Under the pair lock, inside a transaction: the pair's relation and
/// sessions, each revived or created when not active; the id of a relation
/// created is pushed on `new_relations`.
fn create_pair(
    conn: &mut DbConn<'_>,
    from_id: u32,
    to_id: u32,
    now: u32,
    new_relations: &mut Vec<u32>,
) -> Result<PairRows, HandlerError> {
    let single = SessionType::SESSION_TYPE_SINGLE as u32;
    let (small, big) = relation_model::ordered(from_id, to_id);
    let rows: Vec<(u32, u32, u32, u32)> = conn.run(|c| {
        crate::db_rows::exec(
            c,
            PAIR_ROWS,
            (small, big, from_id, to_id, single, to_id, from_id, single),
        )
    })?;
    let found = |kind: u32| -> Option<Found> {
        rows.iter()
            .find(|r| r.0 == kind)
            .map(|&(_, id, status, updated)| (id, status, updated))
    };
    let r = match found(0) {
        Some((id, 0, _)) => id,
        Some((id, _, _)) => relation_model::revive_relation(conn, id, small, big, now)?,
        None => {
            let id = relation_model::insert_relation(conn, small, big, now)?;
            new_relations.push(id);
            id
        }
    };
    let mut session = |found: Option<Found>, user: u32, peer: u32| match found {
        Some((id, 0, updated)) => Ok((id, Some(updated))),
        Some((id, _, _)) => {
            session_model::revive_session(conn, id, now)?;
            Ok::<_, HandlerError>((id, Some(now)))
        }
        None => Ok((
            session_model::insert_session(conn, user, peer, single, now)?,
            Some(now),
        )),
    };
    let (s, su) = session(found(1), from_id, to_id)?;
    let (p, pu) = session(found(2), to_id, from_id)?;
    Ok((r, s, su, p, pu))
}
