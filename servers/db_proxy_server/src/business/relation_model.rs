//! Pairs of users who have exchanged messages (`IMRelationShip`): the C++
//! `business/RelationModel.cpp` (`CRelationModel`). A relation's id picks
//! the message shard (`IMMessage_<id % 8>`) and names its message-id
//! counter (`msg_id_<id>`).

use super::HandlerError;
use crate::cache_keys;
use crate::cache_pool::{pools, CacheManager};
use crate::db_pool::{DbConn, DbError, DbManager, SLAVE};
use mysql::prelude::Queryable;

/// `(small, big)`: the order the table stores a pair in.
pub fn ordered(a: u32, b: u32) -> (u32, u32) {
    if a > b {
        (b, a)
    } else {
        (a, b)
    }
}

/// `getRelationId(a, b, false)`: the active relation of the pair, if any.
/// The C++ keeps the last row it reads; so do we (highest id).
pub fn get_relation_id(db: &DbManager, a: u32, b: u32) -> Result<Option<u32>, DbError> {
    if a == 0 || b == 0 {
        log::info!("invalid user id {a} -> {b}");
        return Ok(None);
    }
    let (small, big) = ordered(a, b);
    let mut conn = db.get(SLAVE)?;
    conn.run(|c| {
        c.exec_first(
            "SELECT id FROM IMRelationShip WHERE smallId = ? AND bigId = ? AND status = 0 \
             ORDER BY id DESC LIMIT 1",
            (small, big),
        )
    })
}

/// The named lock that serialises creating a pair's relation and sessions.
pub fn pair_lock_name(a: u32, b: u32) -> String {
    let (small, big) = ordered(a, b);
    format!("teamtalk.pair.{small}.{big}")
}

/// `addRelation`: revive the pair's relation (any status) or create it;
/// a new relation's message counter starts at 0 (`resetMsgId`). Call it
/// holding [`pair_lock_name`] so two racing first messages make one row.
pub fn add_relation(
    conn: &mut DbConn<'_>,
    cache: &CacheManager,
    a: u32,
    b: u32,
    now: u32,
) -> Result<u32, HandlerError> {
    let (small, big) = ordered(a, b);
    let existing: Option<u32> = conn.run(|c| {
        c.exec_first(
            "SELECT id FROM IMRelationShip WHERE smallId = ? AND bigId = ? \
             ORDER BY id DESC LIMIT 1",
            (small, big),
        )
    })?;
    if let Some(id) = existing {
        conn.run(|c| {
            c.exec_drop(
                "UPDATE IMRelationShip SET status = 0, updated = ? WHERE id = ?",
                (now, id),
            )
        })?;
        log::info!("relation {id} ({small}, {big}) revived");
        return Ok(id);
    }
    conn.run(|c| {
        c.exec_drop(
            "INSERT INTO IMRelationShip (smallId, bigId, status, created, updated) \
             VALUES (?, ?, 0, ?, ?)",
            (small, big, now, now),
        )
    })?;
    let id = u32::try_from(conn.last_insert_id())
        .map_err(|_| HandlerError::IdRange(conn.last_insert_id()))?;
    let mut redis = cache.get(pools::UNREAD)?;
    redis.run(|c| {
        redis::cmd("SET")
            .arg(cache_keys::pair_msg_id(id))
            .arg(0)
            .query::<()>(c)
    })?;
    log::info!("relation {id} ({small}, {big}) created");
    Ok(id)
}
