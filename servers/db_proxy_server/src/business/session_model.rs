//! Recent sessions (`IMRecentSession`): the C++ `business/SessionModel.cpp`
//! (`CSessionModel`). This issue needs what the group-chat sync uses; the
//! session handlers extend it.

use crate::db_pool::{DbError, DbManager, MASTER, SLAVE};
use mysql::prelude::Queryable;

/// `getSessionId`: the session of `user_id` with `peer_id` of `session_type`;
/// with `include_removed` also a removed one (status 1).
pub fn get_session_id(
    db: &DbManager,
    user_id: u32,
    peer_id: u32,
    session_type: u32,
    include_removed: bool,
) -> Result<Option<u32>, DbError> {
    let mut conn = db.get(SLAVE)?;
    let ids: Vec<u32> = if include_removed {
        conn.run(|c| {
            c.exec(
                "SELECT id FROM IMRecentSession WHERE userId = ? AND peerId = ? AND type = ?",
                (user_id, peer_id, session_type),
            )
        })?
    } else {
        conn.run(|c| {
            c.exec(
                "SELECT id FROM IMRecentSession WHERE userId = ? AND peerId = ? AND type = ? \
                 AND status = 0",
                (user_id, peer_id, session_type),
            )
        })?
    };
    // The C++ keeps the last row it reads.
    Ok(ids.last().copied())
}

/// `updateSession`: touch a session's update time.
pub fn update_session(db: &DbManager, session_id: u32, updated: u32) -> Result<bool, DbError> {
    let mut conn = db.get(MASTER)?;
    conn.run(|c| {
        c.exec_drop(
            "UPDATE IMRecentSession SET updated = ? WHERE id = ?",
            (updated, session_id),
        )
    })?;
    Ok(conn.affected_rows() > 0)
}

/// `addSession`: revive the session if it exists (status 0, touched), else
/// create it; returns its id.
pub fn add_session(
    db: &DbManager,
    user_id: u32,
    peer_id: u32,
    session_type: u32,
    now: u32,
) -> Result<Option<u32>, DbError> {
    let existing = get_session_id(db, user_id, peer_id, session_type, true)?;
    let mut conn = db.get(MASTER)?;
    match existing {
        Some(id) => {
            conn.run(|c| {
                c.exec_drop(
                    "UPDATE IMRecentSession SET status = 0, updated = ? WHERE id = ?",
                    (now, id),
                )
            })?;
            Ok((conn.affected_rows() > 0).then_some(id))
        }
        None => {
            conn.run(|c| {
                c.exec_drop(
                    "INSERT INTO IMRecentSession (userId, peerId, type, status, created, updated) \
                     VALUES (?, ?, ?, 0, ?, ?)",
                    (user_id, peer_id, session_type, now, now),
                )
            })?;
            Ok(u32::try_from(conn.last_insert_id()).ok())
        }
    }
}
