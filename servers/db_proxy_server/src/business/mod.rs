//! The request handlers and the data models behind them: the C++
//! `db_proxy_server/business/` directory, one module per C++ file pair
//! (`*Action.cpp` handlers decode, call `*Model.cpp` queries, encode).

pub mod audio_model;
pub mod depart_action;
pub mod depart_model;
pub mod file_action;
pub mod file_model;
pub mod group_action;
pub mod group_message_model;
pub mod group_model;
pub mod login;
pub mod message_batch;
mod message_batch_rows;
pub mod message_content;
pub mod message_counter;
pub mod message_model;
pub mod pair_model;
pub mod recent_session;
pub mod relation_model;
pub mod session_model;
pub mod user_action;
pub mod user_model;

use crate::cache_pool::{CacheConn, CacheError};
use crate::db_pool::{DbConn, DbError, SLAVE};
use crate::services::Services;
use audio_model::UploadedAudio;
use base::pdu::{ImPdu, PduError};
use mysql::prelude::Queryable;
use mysql::Row;
use std::sync::LazyLock;
use thiserror::Error;
use tt_proto::Command;
use tt_proto::IM::BaseDefine::{MsgType, SessionType, UnreadInfo};
use tt_proto::IM::Message::IMMsgData;

/// Why a handler produced no reply. Every variant is logged by the worker;
/// none of them stops it.
#[derive(Debug, Error)]
pub enum HandlerError {
    /// MySQL failed (the C++ would answer with empty data; we answer nothing
    /// rather than claim there is none).
    #[error(transparent)]
    Db(#[from] DbError),
    /// Redis failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The request body does not decode (the C++ logs "parse pb failed"
    /// and answers nothing).
    #[error(transparent)]
    Pdu(#[from] PduError),
    /// A statement inside a transaction failed (the transaction is rolled back).
    #[error("mysql: {0}")]
    Sql(#[from] mysql::Error),
    /// An auto-increment id does not fit the protocol's 32 bits.
    #[error("auto-increment id {0} out of range")]
    IdRange(u64),
    /// A message-id counter vanished while being set.
    #[error("message id counter {0} absent")]
    Counter(String),
    /// A MySQL named lock could not be taken in time.
    #[error("named lock {0} not granted")]
    Lock(String),
}

/// What a handler returns: the reply PDU, if the C++ sends one.
pub type HandlerResult = Result<Option<ImPdu>, HandlerError>;

/// For a request whose reply carries a result code: a storage failure
/// (MySQL, Redis, a lock) becomes `failed`, so the client gets result 1, as
/// the C++ answers when its model call returns false; it is logged. A body
/// that does not decode still goes up (no reply, as in the C++).
pub fn or_failed<T>(what: &str, r: Result<T, HandlerError>, failed: T) -> Result<T, HandlerError> {
    match r {
        Err(HandlerError::Pdu(e)) => Err(HandlerError::Pdu(e)),
        Err(e) => {
            log::warn!("{what}: {e}; answered as failed");
            Ok(failed)
        }
        ok => ok,
    }
}

/// Builds the reply to `req`: same seq, under the command `msg`'s type is
/// carried by ([`Command`]).
pub fn reply<M: Command>(req: &ImPdu, msg: &M) -> HandlerResult {
    Ok(Some(ImPdu::for_msg(req.seq_num(), msg)?))
}

/// A text column, `""` for NULL (the C++ `CResultSet::GetString`).
pub fn col_str(row: &Row, name: &str) -> String {
    row.get_opt::<Option<String>, _>(name)
        .and_then(Result::ok)
        .flatten()
        .unwrap_or_default()
}

/// An integer column, 0 for NULL or out of range (the C++ `GetInt` uses `atoi`).
pub fn col_u32(row: &Row, name: &str) -> u32 {
    row.get_opt::<Option<i64>, _>(name)
        .and_then(Result::ok)
        .flatten()
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(0)
}

/// `?,?,?` with `n` placeholders, for `IN (...)` lists: the values are
/// always bound, never spliced into the statement.
fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 2);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push('?');
    }
    s
}

/// `head`, `n` placeholders, `tail`: a statement with an `IN (...)` list
/// whose values are bound (`with_in_list("... IN (", n, ")")`).
pub fn with_in_list(head: &str, n: usize, tail: &str) -> String {
    [head, &placeholders(n), tail].concat()
}

/// Most ids bound in one `IN (...)` statement.
pub const IN_CHUNK: usize = 1000;

/// `<prefix>_<id % 8>`: the shard tables of messages (`IMMessage_3`,
/// `IMGroupMessage_5`). The only part of any statement that is not bound
/// as a parameter, and it is made of a fixed prefix and a digit.
pub fn shard_table(prefix: &str, id: u32) -> String {
    let mut name = String::with_capacity(prefix.len() + 2);
    name.push_str(prefix);
    name.push('_');
    name.push(char::from(b'0' + (id % 8) as u8));
    name
}

/// How long a worker waits for a named lock.
pub const LOCK_TIMEOUT_SECS: u32 = 10;

/// Runs `f` holding the MySQL named lock `name` (`GET_LOCK`), so that rows
/// the schema has no unique key for (relations, sessions) are created once
/// even when two workers, or two db_proxy_servers, race to create them.
pub fn with_named_lock<T>(
    conn: &mut DbConn<'_>,
    name: &str,
    f: impl FnOnce(&mut DbConn<'_>) -> Result<T, HandlerError>,
) -> Result<T, HandlerError> {
    let got: Option<Option<i64>> = conn.run(|c| {
        crate::db_rows::exec_first(c, "SELECT GET_LOCK(?, ?)", (name, LOCK_TIMEOUT_SECS))
    })?;
    if got.flatten() != Some(1) {
        return Err(HandlerError::Lock(name.to_string()));
    }
    let result = f(conn);
    if let Err(e) = conn.run(|c| c.exec_drop("DO RELEASE_LOCK(?)", (name,))) {
        log::warn!("releasing named lock {name}: {e}");
    }
    result
}

/// The message types the C++ accepts (`MsgType_IsValid`), from a column.
pub fn msg_type_of(v: u32) -> Option<MsgType> {
    match v {
        1 => Some(MsgType::MSG_TYPE_SINGLE_TEXT),
        2 => Some(MsgType::MSG_TYPE_SINGLE_AUDIO),
        17 => Some(MsgType::MSG_TYPE_GROUP_TEXT),
        18 => Some(MsgType::MSG_TYPE_GROUP_AUDIO),
        _ => None,
    }
}

/// A binary-safe text column (message content), empty for NULL.
pub fn col_bytes(row: &Row, name: &str) -> Vec<u8> {
    row.get_opt::<Option<Vec<u8>>, _>(name)
        .and_then(Result::ok)
        .flatten()
        .unwrap_or_default()
}

/// The last message of a session, for unread counts and recent sessions.
#[derive(Debug, Clone)]
pub struct LastMsg {
    /// `msgId`.
    pub msg_id: u32,
    /// `type`.
    pub msg_type: MsgType,
    /// `content`, or the encrypted "\[语音\]" for audio.
    pub data: Vec<u8>,
    /// Sender.
    pub from_id: u32,
}

impl LastMsg {
    /// A session's newest message: `sql` selects at most one row (`msgId`,
    /// `type`, `content`, the sender in `from_column`) with `owner` bound; a
    /// message of `audio_type` shows as the encrypted "\[语音\]". `None` when
    /// there is no row or it is of an unknown type.
    pub fn newest(
        services: &Services,
        sql: &str,
        owner: u32,
        from_column: &str,
        audio_type: MsgType,
    ) -> Result<Option<LastMsg>, HandlerError> {
        let row: Option<Row> = services
            .db
            .get(SLAVE)?
            .run(|c| crate::db_rows::exec_first(c, sql, (owner,)))?;
        Ok(row.and_then(|row| {
            let msg_type = msg_type_of(col_u32(&row, "type"))?;
            let data = if msg_type == audio_type {
                services.audio.latest_text().to_vec()
            } else {
                col_bytes(&row, "content")
            };
            Some(LastMsg {
                msg_id: col_u32(&row, "msgId"),
                msg_type,
                data,
                from_id: col_u32(&row, from_column),
            })
        }))
    }

    /// The unread-count entry of the session this is the newest message of.
    pub fn into_unread(
        self,
        session_id: u32,
        session_type: SessionType,
        unread_cnt: u32,
    ) -> UnreadInfo {
        UnreadInfo {
            session_id,
            session_type,
            unread_cnt,
            latest_msg_id: self.msg_id,
            latest_msg_data: self.data,
            latest_msg_type: self.msg_type,
            latest_msg_from_user_id: self.from_id,
        }
    }
}

/// An audio message whose sound could not be stored: it is refused, and
/// nothing is written.
#[derive(Debug)]
pub struct AudioRefused;

/// Uploads the sound of `msg` to msfs when it is of `audio_type` (`None`
/// for any other type), before any id or row is taken. `to` names the
/// receiver in the log line of a refusal.
pub fn upload_audio(
    services: &Services,
    msg: &IMMsgData,
    audio_type: MsgType,
    to: &str,
) -> Result<Option<UploadedAudio>, AudioRefused> {
    if msg.msg_type != audio_type {
        return Ok(None);
    }
    let from_id = msg.from_user_id;
    match services.audio.upload(&msg.msg_data) {
        Ok(Some(a)) => Ok(Some(a)),
        Ok(None) => {
            log::info!("audio message {from_id} -> {to} without sound, refused");
            Err(AudioRefused)
        }
        Err(e) => {
            log::warn!("audio message {from_id} -> {to}: upload failed: {e}");
            Err(AudioRefused)
        }
    }
}

/// Writes the row of `msg` once its id and counters are taken: `insert`
/// bound with `params(content)`. Alone (autocommit, one round trip) when
/// there is no sound to record and no `touch` to do; else in one
/// transaction that records the sound in `IMAudio` (the row's content is
/// then the audio id), inserts the row and, last (so that the rows it
/// updates stay locked for the commit only), runs `update`.
pub fn store_message(
    conn: &mut DbConn<'_>,
    msg: &IMMsgData,
    audio: Option<&UploadedAudio>,
    insert: &str,
    params: impl Fn(&[u8]) -> mysql::Params,
    touch: bool,
    update: impl FnOnce(&mut mysql::Transaction<'_>) -> Result<(), mysql::Error>,
) -> Result<(), HandlerError> {
    if audio.is_none() && !touch {
        return Ok(conn.run(|c| c.exec_drop(insert, params(&msg.msg_data)))?);
    }
    conn.transaction(|tx| {
        let content: Vec<u8> = match audio {
            Some(a) => {
                let audio_id = audio_model::insert_audio(
                    tx,
                    msg.from_user_id,
                    msg.to_session_id,
                    msg.create_time,
                    a,
                )?
                .ok_or(HandlerError::IdRange(0))?;
                audio_id.to_string().into_bytes()
            }
            None => msg.msg_data.clone(),
        };
        tx.exec_drop(insert, params(&content))?;
        update(tx)?;
        Ok(())
    })
}

/// Takes back one count `next_msg_id` raised, when the message's row
/// could not be written: `key[field]` goes down by one, never below 0
/// (an unread field that reaches 0 is removed, as a read ack does), and
/// `reader_key[field]` (the sender's read count of a group) is brought
/// back to the new total. One script, so a concurrent read ack cannot
/// leave a negative or stale count.
pub fn lower_counter(redis: &mut CacheConn<'_>, key: &str, field: &str, reader_key: Option<&str>) {
    static LOWER: LazyLock<redis::Script> = LazyLock::new(|| {
        redis::Script::new(
            r"
local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') or 0
local t = v - 1
if t < 0 then t = 0 end
if t == 0 and ARGV[2] == 'drop' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], t)
end
if KEYS[2] then
  local r = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') or 0
  if r > t then redis.call('HSET', KEYS[2], ARGV[1], t) end
end
return t",
        )
    });
    let mut call = LOWER.key(key);
    if let Some(reader) = reader_key {
        call.key(reader);
    }
    call.arg(field)
        .arg(if reader_key.is_none() { "drop" } else { "keep" });
    if let Err(e) = redis.run(|c| call.invoke::<i64>(c)) {
        log::error!("{key}[{field}] is one too high: {e}");
    }
}

/// An absent message id counter `key` is set (if still absent) to the
/// highest stored id (`max_sql`, one `?` bound to `owner`); the caller holds
/// the session's named lock. So new messages never repeat stored ids after
/// a flushed cache (the C++ starts again at 1).
pub fn seed_msg_id(
    conn: &mut DbConn<'_>,
    redis: &mut CacheConn<'_>,
    key: &str,
    max_sql: &str,
    owner: u32,
) -> Result<(), HandlerError> {
    // MAX() of no row is NULL.
    let max: Option<Option<u32>> =
        conn.run(|c| crate::db_rows::exec_first(c, max_sql, (owner,)))?;
    let max = max.flatten().unwrap_or(0);
    redis.run(|c| {
        redis::cmd("SET")
            .arg(key)
            .arg(max)
            .arg("NX")
            .query::<Option<String>>(c)
    })?;
    if max > 0 {
        log::warn!("{key} was absent: continued from the stored id {max}");
    }
    Ok(())
}

/// The next message id of a session, with its unread counters raised in
/// the same step. `attempt` runs a script that, only when the id counter
/// `key` exists, does `INCR key` (the C++ `getMsgId`) and raises the
/// counters, returning the id; it returns `None` when the counter is
/// absent. The C++ then starts again at 1, so new messages repeat stored
/// ids (a flushed cache, rows loaded by SQL); here the counter is first
/// set, under the named lock `lock`, to the highest stored id (`max_sql`,
/// one `?` bound to `owner`), and the attempt is made again.
pub fn next_msg_id(
    conn: &mut DbConn<'_>,
    redis: &mut CacheConn<'_>,
    attempt: impl Fn(&mut redis::Connection) -> redis::RedisResult<Option<u32>>,
    key: &str,
    lock: &str,
    max_sql: &str,
    owner: u32,
) -> Result<u32, HandlerError> {
    if let Some(id) = redis.run(&attempt)? {
        return Ok(id);
    }
    with_named_lock(conn, lock, |conn| {
        seed_msg_id(conn, redis, key, max_sql, owner)?;
        redis
            .run(&attempt)?
            .ok_or_else(|| HandlerError::Counter(key.to_string()))
    })
}
