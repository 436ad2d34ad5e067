//! Pairs of users who have exchanged messages (`IMRelationShip`): the C++
//! `business/RelationModel.cpp` (`CRelationModel`). A relation's id picks
//! the message shard (`IMMessage_<id % 8>`) and names its message-id
//! counter (`msg_id_<id>`).

use super::HandlerError;
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
        crate::db_rows::exec_first(
            c,
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

/// `addRelation`'s revival: the pair's relation `id` (removed) is active
/// again. Call it holding [`pair_lock_name`].
pub fn revive_relation(
    conn: &mut DbConn<'_>,
    id: u32,
    small: u32,
    big: u32,
    now: u32,
) -> Result<u32, HandlerError> {
    conn.run(|c| {
        c.exec_drop(
            "UPDATE IMRelationShip SET status = 0, updated = ? WHERE id = ?",
            (now, id),
        )
    })?;
    log::info!("relation {id} ({small}, {big}) revived");
    Ok(id)
}

/// `addRelation`'s insert: a new relation of `(small, big)`, its id. Call
/// it holding [`pair_lock_name`] so two racing first messages make one row;
/// its message counter is the caller's to start at 0 (`resetMsgId`).
pub fn insert_relation(
    conn: &mut DbConn<'_>,
    small: u32,
    big: u32,
    now: u32,
) -> Result<u32, HandlerError> {
    conn.run(|c| {
        c.exec_drop(
            "INSERT INTO IMRelationShip (smallId, bigId, status, created, updated) \
             VALUES (?, ?, 0, ?, ?)",
            (small, big, now, now),
        )
    })?;
    let id = u32::try_from(conn.last_insert_id())
        .map_err(|_| HandlerError::IdRange(conn.last_insert_id()))?;
    log::info!("relation {id} ({small}, {big}) created");
    Ok(id)
}
