//! One-to-one message storage and counters: the C++
//! `business/MessageModel.cpp` (`CMessageModel`).
//!
//! Layout, as the C++: rows in `IMMessage_<relation % 8>`; the pair's next
//! message id from `INCR msg_id_<relation>` (pool `unread`); the receiver's
//! unread count per sender in the hash `unread_<receiver>`.

use super::pair_model::lookup_pair;
pub use super::pair_model::{Pair, PairCache};
use super::{
    audio_model, col_bytes, col_u32, lower_counter, msg_type_of, next_msg_id, relation_model,
    shard_table, store_message, upload_audio, with_in_list, HandlerError, LastMsg, IN_CHUNK,
};
use crate::cache_keys;
use crate::cache_pool::{pools, CacheError, CacheManager};
use crate::db_pool::{MASTER, SLAVE};
use crate::services::Services;
use mysql::prelude::Queryable;
use mysql::Row;
use std::collections::HashMap;
use std::sync::LazyLock;
use tt_proto::IM::BaseDefine::{MsgInfo, MsgType, SessionType, UnreadInfo};
use tt_proto::IM::Message::IMMsgData;

/// Most characters the `content` column holds (`varchar(4096)`): a longer
/// text would fail the insert under strict SQL mode or be cut without it.
pub const MAX_CONTENT_CHARS: usize = 4096;
/// Most messages one by-id request returns (the C++ `limit 100`).
const BY_ID_LIMIT: u32 = 100;

/// `IMMessage_<relation % 8>`.
pub fn table_name(relate_id: u32) -> String {
    shard_table("IMMessage", relate_id)
}

/// A stored row as the protocol's `MsgInfo`; rows of an unknown type are
/// skipped, as in the C++.
pub fn row_to_msg(row: &Row, from_column: &str) -> Option<MsgInfo> {
    let msg_id = col_u32(row, "msgId");
    let Some(msg_type) = msg_type_of(col_u32(row, "type")) else {
        log::info!("message {msg_id} has an invalid type, skipped");
        return None;
    };
    Some(MsgInfo {
        msg_id,
        from_session_id: col_u32(row, from_column),
        create_time: col_u32(row, "created"),
        msg_type,
        msg_data: col_bytes(row, "content"),
    })
}

/// Stored rows as `MsgInfo`s (sender in `from_column`), audio rebuilt from
/// `IMAudio` and msfs: what every message listing answers with.
pub fn rows_to_msgs(
    services: &Services,
    rows: &[Row],
    from_column: &str,
) -> Result<Vec<MsgInfo>, HandlerError> {
    let mut list: Vec<MsgInfo> = rows
        .iter()
        .filter_map(|r| row_to_msg(r, from_column))
        .collect();
    audio_model::read_audios(&services.db, &mut list)?;
    Ok(list)
}

/// A by-id listing (`getMsgByMsgId`): `head`, one `?` per id, then `tail`,
/// bound to `owner`, the first `IN_CHUNK` of `ids`, `tail_args` and the
/// C++ `limit 100`; the rows as `MsgInfo`s (sender in `from_column`).
pub fn get_by_ids(
    services: &Services,
    head: &str,
    tail: &str,
    owner: u32,
    ids: &[u32],
    tail_args: &[u32],
    from_column: &str,
) -> Result<Vec<MsgInfo>, HandlerError> {
    let ids = &ids[..ids.len().min(IN_CHUNK)];
    let sql = with_in_list(head, ids.len(), tail);
    let params: Vec<mysql::Value> = std::iter::once(owner)
        .chain(ids.iter().copied())
        .chain(tail_args.iter().copied())
        .chain(std::iter::once(BY_ID_LIMIT))
        .map(mysql::Value::from)
        .collect();
    let rows: Vec<Row> = services
        .db
        .get(SLAVE)?
        .run(|c| crate::db_rows::exec(c, &sql, params))?;
    rows_to_msgs(services, &rows, from_column)
}

/// `getMessage`: up to `count` messages of the pair, newest first, from
/// `msg_id` down (0: from the newest).
pub fn get_message(
    services: &Services,
    user_id: u32,
    peer_id: u32,
    msg_id: u32,
    count: u32,
) -> Result<Vec<MsgInfo>, HandlerError> {
    let Some(relate_id) = relation_model::get_relation_id(&services.db, user_id, peer_id)? else {
        log::info!("no relation between {user_id} and {peer_id}");
        return Ok(Vec::new());
    };
    let table = table_name(relate_id);
    let mut conn = services.db.get(SLAVE)?;
    let rows: Vec<Row> = if msg_id == 0 {
        let sql = [
            "SELECT msgId, fromId, created, type, content FROM ",
            &table,
            " WHERE relateId = ? AND status = 0 ORDER BY msgId DESC, id DESC LIMIT ?",
        ]
        .concat();
        conn.run(|c| crate::db_rows::exec(c, &sql, (relate_id, count)))?
    } else {
        let sql = [
            "SELECT msgId, fromId, created, type, content FROM ",
            &table,
            " WHERE relateId = ? AND status = 0 AND msgId <= ? \
             ORDER BY msgId DESC, id DESC LIMIT ?",
        ]
        .concat();
        conn.run(|c| crate::db_rows::exec(c, &sql, (relate_id, msg_id, count)))?
    };
    drop(conn);
    rows_to_msgs(services, &rows, "fromId")
}

/// `getLastMsg`: the pair's newest message; audio shows as the encrypted
/// "\[语音\]".
pub fn get_last_msg(
    services: &Services,
    from_id: u32,
    to_id: u32,
) -> Result<Option<LastMsg>, HandlerError> {
    let Some(relate_id) = relation_model::get_relation_id(&services.db, from_id, to_id)? else {
        return Ok(None);
    };
    let sql = [
        "SELECT msgId, fromId, type, content FROM ",
        &table_name(relate_id),
        " WHERE relateId = ? AND status = 0 ORDER BY msgId DESC, id DESC LIMIT 1",
    ]
    .concat();
    LastMsg::newest(
        services,
        &sql,
        relate_id,
        "fromId",
        MsgType::MSG_TYPE_SINGLE_AUDIO,
    )
}

/// `getMsgByMsgId`: the listed messages of the pair, newest first, at most 100.
pub fn get_msg_by_msg_id(
    services: &Services,
    user_id: u32,
    peer_id: u32,
    msg_ids: &[u32],
) -> Result<Vec<MsgInfo>, HandlerError> {
    if msg_ids.is_empty() {
        return Ok(Vec::new());
    }
    let Some(relate_id) = relation_model::get_relation_id(&services.db, user_id, peer_id)? else {
        log::info!("invalid relation between {user_id} and {peer_id}");
        return Ok(Vec::new());
    };
    let head = [
        "SELECT msgId, fromId, created, type, content FROM ",
        &table_name(relate_id),
        " WHERE relateId = ? AND status = 0 AND msgId IN (",
    ]
    .concat();
    get_by_ids(
        services,
        &head,
        ") ORDER BY msgId DESC, id DESC LIMIT ?",
        relate_id,
        msg_ids,
        &[],
        "fromId",
    )
}

/// `getUnreadMsgCount`: the user's unread one-to-one messages by peer, each
/// with the pair's newest message; adds them to `total`.
pub fn get_unread_msg_count(
    services: &Services,
    user_id: u32,
    total: &mut u32,
    list: &mut Vec<UnreadInfo>,
) -> Result<(), HandlerError> {
    let counts: HashMap<String, String> = services.cache.get(pools::UNREAD)?.run(|c| {
        redis::cmd("HGETALL")
            .arg(cache_keys::unread(user_id))
            .query(c)
    })?;
    let mut counts: Vec<(u32, u32)> = counts
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v.parse().unwrap_or(0))))
        .collect();
    counts.sort_unstable();
    for (peer_id, unread_cnt) in counts {
        let Some(last) = get_last_msg(services, peer_id, user_id)? else {
            log::info!("user {user_id}: unread from {peer_id} but no message");
            continue;
        };
        *total = total.saturating_add(unread_cnt);
        list.push(last.into_unread(peer_id, SessionType::SESSION_TYPE_SINGLE, unread_cnt));
    }
    Ok(())
}

/// `getUnReadCntAll`: the user's unread one-to-one messages, all peers.
pub fn get_unread_cnt_all(cache: &CacheManager, user_id: u32) -> Result<u32, CacheError> {
    let mut conn = cache.get(pools::UNREAD)?;
    let counts: HashMap<String, String> = conn.run(|c| {
        redis::cmd("HGETALL")
            .arg(cache_keys::unread(user_id))
            .query(c)
    })?;
    Ok(counts
        .values()
        .map(|v| v.parse::<u32>().unwrap_or(0))
        .fold(0u32, u32::saturating_add))
}

/// Raises the pair's id counter and the receiver's unread count in one
/// step, when the id counter exists (`getMsgId` + `incMsgCount`).
static COUNT_MESSAGE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local id = redis.call('INCR', KEYS[1])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return id",
    )
});

/// `sendMessage` / `sendAudioMessage` with the session and relation steps
/// of the C++ `DB_PROXY::sendMessage`: stores one message and returns the
/// id it got, or `None` when it is refused (nothing written, no id used).
///
/// Round trips on the usual path (relation and sessions exist): one lookup,
/// one Redis script (`INCR` of the id and `HINCRBY` of the receiver's
/// unread count, atomically), then the insert: alone (autocommit) when
/// both sessions were already touched this second, else in one transaction
/// with the session update. The counter goes up before the row is written
/// so that no stored message is ever left uncounted; if the write fails the
/// counter is lowered again and the sender gets id 0.
pub fn send_message(
    services: &Services,
    msg: &IMMsgData,
    now: u32,
) -> Result<Option<u32>, HandlerError> {
    let (from_id, to_id) = (msg.from_user_id, msg.to_session_id);
    if from_id == 0 || to_id == 0 {
        log::info!("invalid user id {from_id} -> {to_id}");
        return Ok(None);
    }
    let Ok(audio) = upload_audio(
        services,
        msg,
        MsgType::MSG_TYPE_SINGLE_AUDIO,
        &to_id.to_string(),
    ) else {
        return Ok(None);
    };
    let (small, big) = relation_model::ordered(from_id, to_id);
    let mut conn = services.db.get(MASTER)?;
    let cached = services.pairs.get(small, big);
    let (relate_id, session_id, peer_session_id, touch) = match cached {
        Some(p) => {
            let (s, peer) = if from_id == small {
                (p.sessions[0], p.sessions[1])
            } else {
                (p.sessions[1], p.sessions[0])
            };
            (p.relate_id, s, peer, p.touched != now)
        }
        None => {
            let (r, s, su, p, pu) = lookup_pair(services, &mut conn, from_id, to_id, now)?;
            (r, s, p, su != Some(now) || pu != Some(now))
        }
    };
    let mut redis = services.cache.get(pools::UNREAD)?;
    let table = table_name(relate_id);
    let max_sql = ["SELECT MAX(msgId) FROM ", &table, " WHERE relateId = ?"].concat();
    let id_key = cache_keys::pair_msg_id(relate_id);
    let unread = cache_keys::unread(to_id);
    let msg_id = next_msg_id(
        &mut conn,
        &mut redis,
        |c| {
            COUNT_MESSAGE
                .key(&id_key)
                .key(&unread)
                .arg(from_id)
                .invoke(c)
        },
        &id_key,
        &relation_model::pair_lock_name(from_id, to_id),
        &max_sql,
        relate_id,
    )?;
    // From here on the unread count is one ahead until the row is written;
    // any failure takes it back.
    let insert = [
        "INSERT INTO ",
        &table,
        " (relateId, fromId, toId, msgId, content, status, type, created, updated) \
         VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
    ]
    .concat();
    let created = msg.create_time;
    let msg_type = msg.msg_type as u32;
    // `updateSession` sets the time in seconds: nothing to do when both
    // sessions were already touched this second. `status = 0` revives a
    // session removed since it was cached, as the C++ `addSession` does.
    let stored = store_message(
        &mut conn,
        msg,
        audio.as_ref(),
        &insert,
        |content| {
            (
                relate_id, from_id, to_id, msg_id, content, msg_type, created, created,
            )
                .into()
        },
        touch,
        |tx| {
            tx.exec_drop(
                "UPDATE IMRecentSession SET status = 0, updated = ? WHERE id IN (?, ?)",
                (now, session_id, peer_session_id),
            )
        },
    );
    if let Err(e) = stored {
        lower_counter(&mut redis, &unread, &from_id.to_string(), None);
        return Err(e);
    }
    let sessions = if from_id == small {
        [session_id, peer_session_id]
    } else {
        [peer_session_id, session_id]
    };
    services.pairs.put(
        small,
        big,
        Pair {
            relate_id,
            sessions,
            touched: if touch {
                now
            } else {
                cached.map_or(now, |p| p.touched)
            },
        },
    );
    Ok(Some(msg_id))
}
