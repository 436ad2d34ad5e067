//! Group message storage and counters: the C++
//! `business/GroupMessageModel.cpp` (`CGroupMessageModel`).
//!
//! Layout, as the C++: rows in `IMGroupMessage_<group % 8>`; the group's
//! next message id from `INCR group_msg_id_<group>`; its message count in
//! the hash `<group>_im_group_msg` (field `count`) and, per member, how
//! many of them the member has read in `<user>_<group>_im_user_group`
//! (same field). Unread = count − read.

use super::group_model::{self, Membership};
use super::{
    lower_counter,
    message_model::{get_by_ids, rows_to_msgs},
    next_msg_id, session_model, shard_table, store_message, upload_audio, HandlerError, LastMsg,
};
use crate::cache_keys;
use crate::cache_pool::pools;
use crate::db_pool::{MASTER, SLAVE};
use crate::services::Services;
use mysql::prelude::Queryable;
use mysql::Row;
use std::sync::LazyLock;
use tt_proto::IM::BaseDefine::{MsgInfo, MsgType, SessionType, UnreadInfo};
use tt_proto::IM::Message::IMMsgData;

/// `IMGroupMessage_<group % 8>`.
pub fn table_name(group_id: u32) -> String {
    shard_table("IMGroupMessage", group_id)
}

/// `getMsgId` + `incMessageCount` + `clearMessageCount` in one atomic
/// step, when the id counter exists: the group's id counter and message
/// count go up and the sender has read them all.
static COUNT_MESSAGE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local id = redis.call('INCR', KEYS[1])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local all = redis.call('HGETALL', KEYS[2])
redis.call('HMSET', KEYS[3], unpack(all))
return id",
    )
});

/// The sender's group session with its update time, and the group's
/// `lastChated`, in one statement.
const GROUP_LOOKUP: &str = "SELECT \
    (SELECT id FROM IMRecentSession WHERE userId = ? AND peerId = ? AND type = ? AND status = 0 \
     ORDER BY id DESC LIMIT 1), \
    (SELECT updated FROM IMRecentSession WHERE userId = ? AND peerId = ? AND type = ? \
     AND status = 0 ORDER BY id DESC LIMIT 1), \
    (SELECT lastChated FROM IMGroup WHERE id = ?)";

/// What became of a group message: the C++ answers a stored message with
/// its id, a refused one with id 0, and a message to an unknown group or
/// from a non-member not at all.
pub enum GroupSend {
    /// Stored with this id.
    Stored(u32),
    /// Not stored; answer with id 0.
    Refused,
    /// Unknown group or sender not a member: the C++ sends no reply.
    NoReply,
}

/// Stores one group message: membership from the member hash (one round
/// trip), the sender's group session and the group's `lastChated` (one
/// lookup), the id and the counters (one atomic script), then the insert:
/// alone when the session and `lastChated` already carry this second, else
/// in one transaction with their updates. The counters go up before the
/// row is written; a failed write takes the group count back and the
/// sender gets id 0.
pub fn send_message(
    services: &Services,
    msg: &IMMsgData,
    now: u32,
) -> Result<GroupSend, HandlerError> {
    let (from_id, group_id) = (msg.from_user_id, msg.to_session_id);
    match group_model::membership(services, from_id, group_id)? {
        Membership::Member(_) => {}
        other => {
            log::info!("group message {from_id} -> {group_id} refused: {other:?}");
            return Ok(GroupSend::NoReply);
        }
    }
    let Ok(audio) = upload_audio(
        services,
        msg,
        MsgType::MSG_TYPE_GROUP_AUDIO,
        &format!("group {group_id}"),
    ) else {
        return Ok(GroupSend::Refused);
    };
    let group_session = SessionType::SESSION_TYPE_GROUP as u32;
    let mut conn = services.db.get(MASTER)?;
    let params = (
        from_id,
        group_id,
        group_session,
        from_id,
        group_id,
        group_session,
        group_id,
    );
    let found: Option<(Option<u32>, Option<u32>, Option<u32>)> =
        conn.run(|c| crate::db_rows::exec_first(c, GROUP_LOOKUP, params))?;
    let (found_session, session_updated, last_chated) = found.unwrap_or_default();
    let (session_id, session_updated) = match found_session {
        Some(id) => (id, session_updated),
        None => {
            let id = session_model::add_session_locked(
                &mut conn,
                from_id,
                group_id,
                group_session,
                now,
            )?;
            (id, Some(now))
        }
    };
    let mut redis = services.cache.get(pools::UNREAD)?;
    let table = table_name(group_id);
    let max_sql = ["SELECT MAX(msgId) FROM ", &table, " WHERE groupId = ?"].concat();
    let id_key = cache_keys::group_msg_id(group_id);
    let total_key = cache_keys::group_msg_count(group_id);
    let sender_key = cache_keys::user_group_read_count(from_id, group_id);
    let msg_id = next_msg_id(
        &mut conn,
        &mut redis,
        |c| {
            COUNT_MESSAGE
                .key(&id_key)
                .key(&total_key)
                .key(&sender_key)
                .arg(cache_keys::GROUP_COUNTER_FIELD)
                .invoke(c)
        },
        &id_key,
        &format!("teamtalk.group.{group_id}"),
        &max_sql,
        group_id,
    )?;
    // From here on the group's count is one ahead until the row is
    // written; any failure takes it back.
    let insert = [
        "INSERT INTO ",
        &table,
        " (groupId, userId, msgId, content, type, status, updated, created) \
         VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
    ]
    .concat();
    let created = msg.create_time;
    let msg_type = msg.msg_type as u32;
    // Times are in seconds: nothing to touch when both are this second's.
    let touch = session_updated != Some(now) || last_chated != Some(now);
    let stored = store_message(
        &mut conn,
        msg,
        audio.as_ref(),
        &insert,
        |content| {
            (
                group_id, from_id, msg_id, content, msg_type, created, created,
            )
                .into()
        },
        touch,
        // `updateGroupChat`, then `updateSession`.
        |tx| {
            tx.exec_drop(
                "UPDATE IMGroup SET lastChated = ? WHERE id = ?",
                (now, group_id),
            )?;
            tx.exec_drop(
                "UPDATE IMRecentSession SET updated = ? WHERE id = ?",
                (now, session_id),
            )
        },
    );
    if let Err(e) = stored {
        lower_counter(
            &mut redis,
            &total_key,
            cache_keys::GROUP_COUNTER_FIELD,
            Some(&sender_key),
        );
        return Err(e);
    }
    Ok(GroupSend::Stored(msg_id))
}

/// `getMessage`: up to `count` of the group's messages sent since the user
/// joined, newest first, from `msg_id` down (0: from the newest).
pub fn get_message(
    services: &Services,
    user_id: u32,
    group_id: u32,
    msg_id: u32,
    count: u32,
) -> Result<Vec<MsgInfo>, HandlerError> {
    let joined = match group_model::membership(services, user_id, group_id)? {
        Membership::Member(t) => t,
        _ => 0,
    };
    let table = table_name(group_id);
    let mut conn = services.db.get(SLAVE)?;
    let rows: Vec<Row> = if msg_id == 0 {
        let sql = [
            "SELECT msgId, userId, created, type, content FROM ",
            &table,
            " WHERE groupId = ? AND status = 0 AND created >= ? \
             ORDER BY msgId DESC, id DESC LIMIT ?",
        ]
        .concat();
        conn.run(|c| crate::db_rows::exec(c, &sql, (group_id, joined, count)))?
    } else {
        let sql = [
            "SELECT msgId, userId, created, type, content FROM ",
            &table,
            " WHERE groupId = ? AND msgId <= ? AND status = 0 AND created >= ? \
             ORDER BY msgId DESC, id DESC LIMIT ?",
        ]
        .concat();
        conn.run(|c| crate::db_rows::exec(c, &sql, (group_id, msg_id, joined, count)))?
    };
    drop(conn);
    rows_to_msgs(services, &rows, "userId")
}

/// `getLastMsg`: the group's newest message; audio shows as the encrypted
/// "\[语音\]".
pub fn get_last_msg(services: &Services, group_id: u32) -> Result<Option<LastMsg>, HandlerError> {
    let sql = [
        "SELECT msgId, type, userId, content FROM ",
        &table_name(group_id),
        " WHERE groupId = ? AND status = 0 ORDER BY msgId DESC, id DESC LIMIT 1",
    ]
    .concat();
    LastMsg::newest(
        services,
        &sql,
        group_id,
        "userId",
        MsgType::MSG_TYPE_GROUP_AUDIO,
    )
}

/// Each group's unread count for the user (the group's count less what the
/// user has read, as the C++ reads them; `None` for a group without a
/// count): both `HGET`s of every group in one pipeline per
/// [`super::IN_CHUNK`] groups (the C++ asks twice per group).
fn unread_counts(
    services: &Services,
    user_id: u32,
    group_ids: &[u32],
) -> Result<Vec<Option<u32>>, HandlerError> {
    let mut out = Vec::with_capacity(group_ids.len());
    if group_ids.is_empty() {
        return Ok(out);
    }
    let mut conn = services.cache.get(pools::UNREAD)?;
    for chunk in group_ids.chunks(super::IN_CHUNK) {
        let values: Vec<Option<String>> = conn.run(|c| {
            let mut pipe = redis::pipe();
            for &group_id in chunk {
                pipe.cmd("HGET")
                    .arg(cache_keys::group_msg_count(group_id))
                    .arg(cache_keys::GROUP_COUNTER_FIELD)
                    .cmd("HGET")
                    .arg(cache_keys::user_group_read_count(user_id, group_id))
                    .arg(cache_keys::GROUP_COUNTER_FIELD);
            }
            pipe.query(c)
        })?;
        for pair in values.chunks(2) {
            let group_cnt = pair
                .first()
                .cloned()
                .flatten()
                .and_then(|v| v.parse::<u32>().ok());
            let user_cnt = pair
                .get(1)
                .cloned()
                .flatten()
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0);
            out.push(group_cnt.map(|g| g.saturating_sub(user_cnt)));
        }
    }
    Ok(out)
}

/// `getUnreadMsgCount`: the user's groups with unread messages, each with
/// its newest message; adds them to `total`.
pub fn get_unread_msg_count(
    services: &Services,
    user_id: u32,
    total: &mut u32,
    list: &mut Vec<UnreadInfo>,
) -> Result<(), HandlerError> {
    let groups = group_model::get_user_group_ids(&services.db, user_id, 0)?;
    let counts = unread_counts(services, user_id, &groups)?;
    for (group_id, unread) in groups.into_iter().zip(counts) {
        let Some(unread) = unread else {
            continue;
        };
        if unread == 0 {
            continue;
        }
        *total = total.saturating_add(unread);
        let Some(last) = get_last_msg(services, group_id)? else {
            log::info!("user {user_id}: unread in group {group_id} but no message");
            continue;
        };
        list.push(last.into_unread(group_id, SessionType::SESSION_TYPE_GROUP, unread));
    }
    Ok(())
}

/// `getUnReadCntAll`: unread group messages over all the user's groups.
pub fn get_unread_cnt_all(services: &Services, user_id: u32) -> Result<u32, HandlerError> {
    let groups = group_model::get_user_group_ids(&services.db, user_id, 0)?;
    Ok(unread_counts(services, user_id, &groups)?
        .into_iter()
        .flatten()
        .fold(0u32, u32::saturating_add))
}

/// `getMsgByMsgId`: the listed group messages a member may see (sent since
/// joining), newest first, at most 100.
pub fn get_msg_by_msg_id(
    services: &Services,
    user_id: u32,
    group_id: u32,
    msg_ids: &[u32],
) -> Result<Vec<MsgInfo>, HandlerError> {
    if msg_ids.is_empty() {
        return Ok(Vec::new());
    }
    let Membership::Member(joined) = group_model::membership(services, user_id, group_id)? else {
        log::info!("{user_id} is not in group {group_id}");
        return Ok(Vec::new());
    };
    let head = [
        "SELECT msgId, userId, created, type, content FROM ",
        &table_name(group_id),
        " WHERE groupId = ? AND msgId IN (",
    ]
    .concat();
    get_by_ids(
        services,
        &head,
        ") AND status = 0 AND created >= ? ORDER BY msgId DESC, id DESC LIMIT ?",
        group_id,
        msg_ids,
        &[joined],
        "userId",
    )
}
