//! Recent sessions (`IMRecentSession`): the C++ `business/SessionModel.cpp`
//! (`CSessionModel`).

use super::{col_u32, group_message_model, message_model, with_named_lock, HandlerError};
use crate::db_pool::{DbConn, DbError, DbManager, SLAVE};
use crate::services::Services;
use mysql::prelude::Queryable;
use mysql::Row;
use tt_proto::IM::BaseDefine::{ContactSessionInfo, SessionStatusType, SessionType};

/// Most sessions one recent-session reply lists (the C++ `limit 100`).
const RECENT_LIMIT: u32 = 100;

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
            crate::db_rows::exec(
                c,
                "SELECT id FROM IMRecentSession WHERE userId = ? AND peerId = ? AND type = ?",
                (user_id, peer_id, session_type),
            )
        })?
    } else {
        conn.run(|c| {
            crate::db_rows::exec(
                c,
                "SELECT id FROM IMRecentSession WHERE userId = ? AND peerId = ? AND type = ? \
                 AND status = 0",
                (user_id, peer_id, session_type),
            )
        })?
    };
    // The C++ keeps the last row it reads.
    Ok(ids.last().copied())
}

/// Sets a session, removed or not, active again: binds `(updated, id)`.
const REVIVE_SESSION: &str = "UPDATE IMRecentSession SET status = 0, updated = ? WHERE id = ?";

/// Creates an active session: binds `(userId, peerId, type, created, updated)`.
const INSERT_SESSION: &str = "INSERT INTO IMRecentSession \
    (userId, peerId, type, status, created, updated) VALUES (?, ?, ?, 0, ?, ?)";

/// `updateSession`: touch a session's update time.
pub fn update_session(db: &DbManager, session_id: u32, updated: u32) -> Result<bool, DbError> {
    db.execute_update(
        "UPDATE IMRecentSession SET updated = ? WHERE id = ?",
        (updated, session_id),
    )
}

/// `addSession` for a session that was not found active: under the
/// session's named lock, look again (another worker or db_proxy_server may
/// have created it meanwhile), else revive or create it; returns its id.
/// IMRecentSession has no unique key, so without the lock two creators
/// would each insert a row (the C++ takes no lock and can).
pub fn add_session_locked(
    conn: &mut DbConn<'_>,
    user_id: u32,
    peer_id: u32,
    session_type: u32,
    now: u32,
) -> Result<u32, HandlerError> {
    let lock = format!("teamtalk.session.{user_id}.{peer_id}.{session_type}");
    with_named_lock(conn, &lock, |conn| {
        let again: Option<u32> = conn.run(|c| {
            crate::db_rows::exec_first(
                c,
                "SELECT id FROM IMRecentSession WHERE userId = ? AND peerId = ? \
                 AND type = ? AND status = 0 ORDER BY id DESC LIMIT 1",
                (user_id, peer_id, session_type),
            )
        })?;
        match again {
            Some(id) => Ok(id),
            None => add_session_on(conn, user_id, peer_id, session_type, now),
        }
    })
}

/// `addSession` on a connection the caller holds (the message path, under
/// the pair lock): revive the session (any status) or create it.
pub fn add_session_on(
    conn: &mut DbConn<'_>,
    user_id: u32,
    peer_id: u32,
    session_type: u32,
    now: u32,
) -> Result<u32, HandlerError> {
    let existing: Option<u32> = conn.run(|c| {
        crate::db_rows::exec_first(
            c,
            "SELECT id FROM IMRecentSession WHERE userId = ? AND peerId = ? AND type = ? \
             ORDER BY id DESC LIMIT 1",
            (user_id, peer_id, session_type),
        )
    })?;
    if let Some(id) = existing {
        revive_session(conn, id, now)?;
        return Ok(id);
    }
    insert_session(conn, user_id, peer_id, session_type, now)
}

/// `addSession`'s revival: session `id` active again, updated `now`.
pub fn revive_session(conn: &mut DbConn<'_>, id: u32, now: u32) -> Result<(), HandlerError> {
    Ok(conn.run(|c| c.exec_drop(REVIVE_SESSION, (now, id)))?)
}

/// `addSession`'s insert: a new active session, its id (the caller holds
/// the lock that keeps it single).
pub fn insert_session(
    conn: &mut DbConn<'_>,
    user_id: u32,
    peer_id: u32,
    session_type: u32,
    now: u32,
) -> Result<u32, HandlerError> {
    conn.run(|c| c.exec_drop(INSERT_SESSION, (user_id, peer_id, session_type, now, now)))?;
    u32::try_from(conn.last_insert_id()).map_err(|_| HandlerError::IdRange(conn.last_insert_id()))
}

/// `removeSession`: mark a session removed (status 1).
pub fn remove_session(db: &DbManager, session_id: u32, now: u32) -> Result<bool, DbError> {
    db.execute_update(
        "UPDATE IMRecentSession SET status = 1, updated = ? WHERE id = ?",
        (now, session_id),
    )
}

/// `getRecentSession`: the user's active sessions updated after
/// `last_time`, newest first, at most 100, each with its latest message
/// (`fillSessionMsg`); a session without any message is left out, as the
/// C++ does.
pub fn get_recent_session(
    services: &Services,
    user_id: u32,
    last_time: u32,
) -> Result<Vec<ContactSessionInfo>, HandlerError> {
    let rows: Vec<Row> = services.db.get(SLAVE)?.run(|c| {
        crate::db_rows::exec(
            c,
            "SELECT peerId, type, status, updated FROM IMRecentSession \
             WHERE userId = ? AND status = 0 AND updated > ? ORDER BY updated DESC LIMIT ?",
            (user_id, last_time, RECENT_LIMIT),
        )
    })?;
    let mut list = Vec::with_capacity(rows.len());
    for row in &rows {
        let peer_id = col_u32(row, "peerId");
        let session_type = match col_u32(row, "type") {
            1 => SessionType::SESSION_TYPE_SINGLE,
            2 => SessionType::SESSION_TYPE_GROUP,
            other => {
                log::info!("invalid session type {other}: user {user_id}, peer {peer_id}");
                continue;
            }
        };
        let last = match session_type {
            SessionType::SESSION_TYPE_SINGLE => {
                message_model::get_last_msg(services, peer_id, user_id)?
            }
            SessionType::SESSION_TYPE_GROUP => {
                group_message_model::get_last_msg(services, peer_id)?
            }
        };
        let Some(last) = last else { continue };
        list.push(ContactSessionInfo {
            session_id: peer_id,
            session_type,
            session_status: if col_u32(row, "status") == 1 {
                SessionStatusType::SESSION_STATUS_DELETE
            } else {
                SessionStatusType::SESSION_STATUS_OK
            },
            updated_time: col_u32(row, "updated"),
            latest_msg_id: last.msg_id,
            latest_msg_data: last.data,
            latest_msg_type: last.msg_type,
            latest_msg_from_user_id: last.from_id,
        });
    }
    Ok(list)
}
