//! A batch of `CID_MSG_DATA` requests of one lane (see `message_lanes`):
//! the C++ `MessageContent.cpp` `sendMessage` and `MessageModel.cpp`
//! `sendMessage` for many one-to-one text messages at once (not in the
//! C++, which stores each alone).
//!
//! For the batch's text messages, in arrival order: the pairs' relations
//! and sessions (from the pair cache, else looked up or created as for one
//! message); the ids and the receivers' unread counts in one Redis script
//! for the whole batch (`INCRBY msg_id_<relation> n` and `HINCRBY
//! unread_<receiver> <sender> k`, the C++ keys; a pair gets consecutive ids
//! in arrival order); then every row in one multi-row `INSERT` per message
//! table and the sessions' update, in one transaction (a single statement
//! alone autocommits). Each message is answered with its own id.
//!
//! When the batch's write fails, each of its messages is written again on
//! its own, with the id it got, by an insert that does nothing when the
//! row is already there (a commit cut off by a MariaDB restart may have
//! happened): a message that fails alone is answered with id 0 and its
//! unread count taken back, exactly as a single message; the others are
//! stored and acked. Every other message (audio, refused, to oneself,
//! empty) takes the single-message path, in its place in the order.

use super::message_batch_rows::{write_each, write_rows};
use super::message_model::{self, Pair};
use super::pair_model::{self, pair_of};
use super::{
    message_content, relation_model, reply, with_named_lock, HandlerError, HandlerResult,
    LOCK_TIMEOUT_SECS,
};
use crate::cache_keys;
use crate::cache_pool::pools;
use crate::db_pool::{DbConn, MASTER};
use crate::services::Services;
use base::pdu::ImPdu;
use std::collections::HashMap;
use std::sync::LazyLock;
use tt_proto::IM::BaseDefine::MsgType;
use tt_proto::IM::Message::IMMsgData;

/// Stores the batch `requests` and answers each (same order): the reply a
/// single `CID_MSG_DATA` would get.
pub fn send_messages(services: &Services, requests: Vec<(ImPdu, IMMsgData)>) -> Vec<HandlerResult> {
    let now = base::tick::unix_time();
    let mut out: Vec<Option<HandlerResult>> = (0..requests.len()).map(|_| None).collect();
    let mut run: Vec<usize> = Vec::new();
    for (i, (pdu, msg)) in requests.iter().enumerate() {
        if batchable(msg) {
            run.push(i);
            continue;
        }
        flush(services, &requests, &mut run, &mut out, now);
        out[i] = Some(message_content::send_message(services, pdu));
    }
    flush(services, &requests, &mut run, &mut out, now);
    out.into_iter().map(|r| r.unwrap_or(Ok(None))).collect()
}

/// The answers of `requests` not stored (id 0, as a single message that
/// fails): for messages whose pair could not be made.
pub fn not_stored(requests: Vec<(ImPdu, IMMsgData)>) -> Vec<HandlerResult> {
    requests
        .into_iter()
        .map(|(pdu, mut msg)| {
            log::error!(
                "message {} -> {} not stored: its pair could not be made",
                msg.from_user_id,
                msg.to_session_id
            );
            msg.msg_id = 0;
            reply(&pdu, &msg)
        })
        .collect()
}

/// What [`make_pairs`] did with one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairMade {
    /// Its relation and sessions are there, and cached.
    Made,
    /// Not made (a database or Redis error).
    Failed,
    /// Its named lock was held elsewhere beyond the wait asked.
    LockBusy,
}

/// Makes the pairs `(from, to)` not in the cache yet and caches them:
/// those whose relation and sessions all exist are found in one lookup
/// (`pair_model::find_pairs`, no lock); the rest are created
/// (`pair_model::create_pairs`, waiting at most `lock_wait` seconds for
/// each pair's named lock). What
/// became of each is answered from what was made, not from the cache
/// afterwards: the cache may have dropped a pair just put (it is bounded),
/// and the lane looks such a pair up again.
pub fn make_pairs(
    services: &Services,
    pairs: &[(u32, u32)],
    now: u32,
    lock_wait: u32,
) -> Vec<PairMade> {
    let mut made: Vec<PairMade> = pairs
        .iter()
        .map(|&(a, b)| {
            let (small, big) = relation_model::ordered(a, b);
            match services.pairs.get(small, big) {
                Some(_) => PairMade::Made,
                None => PairMade::Failed,
            }
        })
        .collect();
    let todo: Vec<usize> = (0..pairs.len())
        .filter(|&i| made[i] != PairMade::Made)
        .collect();
    if todo.is_empty() {
        return made;
    }
    let mut conn = match services.db.get(MASTER) {
        Ok(conn) => conn,
        Err(e) => {
            log::error!("{} new pairs not made: {e}", todo.len());
            return made;
        }
    };
    let asked: Vec<(u32, u32)> = todo.iter().map(|&i| pairs[i]).collect();
    let todo: Vec<usize> = match pair_model::find_pairs(&mut conn, &asked) {
        Ok(found) => {
            let mut missing = Vec::new();
            for (&i, rows) in todo.iter().zip(found) {
                match rows {
                    Some(rows) => {
                        let (from, to) = pairs[i];
                        let (small, big) = relation_model::ordered(from, to);
                        services.pairs.put(small, big, pair_of(from, to, rows, now));
                        made[i] = PairMade::Made;
                    }
                    None => missing.push(i),
                }
            }
            missing
        }
        Err(e) => {
            log::warn!("looking up {} pairs: {e}; making them", todo.len());
            todo
        }
    };
    if todo.is_empty() {
        return made;
    }
    let asked: Vec<(u32, u32)> = todo.iter().map(|&i| pairs[i]).collect();
    let rows = pair_model::create_pairs(services, &mut conn, &asked, now, lock_wait);
    match rows {
        Ok(rows) => {
            for (&i, rows) in todo.iter().zip(rows) {
                let (from, to) = pairs[i];
                made[i] = match rows {
                    Some(rows) => {
                        let (small, big) = relation_model::ordered(from, to);
                        services.pairs.put(small, big, pair_of(from, to, rows, now));
                        PairMade::Made
                    }
                    None => PairMade::LockBusy,
                };
            }
        }
        Err(e) => log::error!("{} new pairs not made: {e}", asked.len()),
    }
    made
}

/// A text the single path would store (not refused, not to oneself):
/// also what makes the loop have a new pair made before it goes on.
pub fn batchable(msg: &IMMsgData) -> bool {
    msg.msg_type == MsgType::MSG_TYPE_SINGLE_TEXT
        && !msg.msg_data.is_empty()
        && msg.from_user_id != 0
        && msg.to_session_id != 0
        && msg.from_user_id != msg.to_session_id
        && message_content::text_refused(&msg.msg_data).is_none()
}

/// Stores the texts listed in `run` and answers them.
fn flush(
    services: &Services,
    requests: &[(ImPdu, IMMsgData)],
    run: &mut Vec<usize>,
    out: &mut [Option<HandlerResult>],
    now: u32,
) {
    if run.is_empty() {
        return;
    }
    let msgs: Vec<&IMMsgData> = run.iter().map(|&i| &requests[i].1).collect();
    let ids = store_texts(services, &msgs, now);
    for (&i, id) in run.iter().zip(ids) {
        let (pdu, msg) = &requests[i];
        log::info!(
            "message {} -> {} type {:?}: msg id {id}",
            msg.from_user_id,
            msg.to_session_id,
            msg.msg_type
        );
        let mut answer = msg.clone();
        answer.msg_id = id;
        out[i] = Some(reply(pdu, &answer));
    }
    run.clear();
}

/// One text of the batch and where it goes.
pub(super) struct Item<'a> {
    /// The message.
    pub(super) msg: &'a IMMsgData,
    /// Its pair's relation and sessions.
    pub(super) pair: Pair,
    /// The pair's sessions are to be set active (first message this second).
    pub(super) touch: bool,
    /// The sender's session, then the receiver's.
    pub(super) sessions: (u32, u32),
    /// Its id; 0 until given, and for a message not stored.
    pub(super) id: u32,
}

/// Ids and unread counts for `groups` (relation, messages of it in the
/// batch, and the unread increments `(receiver, sender, n)` of them): one
/// `INCRBY` per relation whose counter exists, and for those the
/// `HINCRBY`s; the last id of each relation, 0 where the counter is
/// absent (nothing raised for it).
static ALLOCATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local g = tonumber(ARGV[1])
local ids = {}
for i = 1, g do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    ids[i] = redis.call('INCRBY', KEYS[i], tonumber(ARGV[1 + i]))
  else
    ids[i] = 0
  end
end
local a = 2 + g
for j = g + 1, #KEYS do
  local gi = tonumber(ARGV[a])
  if ids[gi] ~= 0 then
    redis.call('HINCRBY', KEYS[j], ARGV[a + 1], tonumber(ARGV[a + 2]))
  end
  a = a + 3
end
return ids",
    )
});

/// The messages of one relation in the batch.
struct Group {
    relate_id: u32,
    /// Indexes into the items, in arrival order.
    items: Vec<usize>,
    /// `(receiver, sender, n)`: the unread increments of those messages.
    unread: Vec<(u32, u32, u32)>,
}

/// Runs [`ALLOCATE`] for `groups`: the last id of each (0: counter absent).
fn allocate(redis: &mut redis::Connection, groups: &[&Group]) -> redis::RedisResult<Vec<u32>> {
    let mut call = ALLOCATE.prepare_invoke();
    call.arg(groups.len());
    for g in groups {
        call.key(cache_keys::pair_msg_id(g.relate_id));
        call.arg(g.items.len());
    }
    for (gi, g) in groups.iter().enumerate() {
        for &(to, from, n) in &g.unread {
            call.key(cache_keys::unread(to));
            call.arg(gi + 1).arg(from).arg(n);
        }
    }
    let ids: Vec<i64> = call.invoke(redis)?;
    Ok(ids
        .into_iter()
        .map(|v| u32::try_from(v).unwrap_or(0))
        .collect())
}

/// Stores `msgs` (all [`batchable`]) and returns the id of each, 0 for one
/// not stored.
fn store_texts(services: &Services, msgs: &[&IMMsgData], now: u32) -> Vec<u32> {
    let mut conn = match services.db.get(MASTER) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{} messages not stored: {e}", msgs.len());
            return vec![0; msgs.len()];
        }
    };
    let mut items = resolve_pairs(services, &mut conn, msgs, now);
    if let Err(e) = give_ids(services, &mut conn, &mut items) {
        log::error!("{} messages not stored: {e}", items.len());
        return vec![0; msgs.len()];
    }
    // From here on the unread counts of the messages with an id are ahead
    // until their rows are written; any failure takes its share back.
    let with_id: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].as_ref().is_some_and(|it| it.id != 0))
        .collect();
    let written: Vec<&Item> = with_id.iter().filter_map(|&i| items[i].as_ref()).collect();
    if let Err(e) = write_rows(&mut conn, &written, now) {
        log::warn!(
            "a batch of {} messages failed ({e}); writing each alone",
            written.len()
        );
        drop(conn);
        write_each(services, &mut items, &with_id, now);
    } else {
        drop(conn);
    }
    let mut ids = Vec::with_capacity(items.len());
    for item in &items {
        let Some(it) = item else {
            ids.push(0);
            continue;
        };
        if it.id != 0 {
            remember(services, it, now);
        }
        ids.push(it.id);
    }
    ids
}

/// Each message's pair, from the cache or looked up; the pairs still
/// missing are made together (one transaction, see
/// `pair_model::create_pairs`). `None` for a message whose pair could
/// not be had.
fn resolve_pairs<'a>(
    services: &Services,
    conn: &mut DbConn<'_>,
    msgs: &[&'a IMMsgData],
    now: u32,
) -> Vec<Option<Item<'a>>> {
    let mut known: HashMap<(u32, u32), Pair> = HashMap::new();
    // Pairs neither cached nor found, each with the direction it is made in.
    let mut missing: Vec<(u32, u32)> = Vec::new();
    for msg in msgs {
        let (from, to) = (msg.from_user_id, msg.to_session_id);
        let key = relation_model::ordered(from, to);
        if known.contains_key(&key)
            || missing
                .iter()
                .any(|&(a, b)| relation_model::ordered(a, b) == key)
        {
            continue;
        }
        if let Some(p) = services.pairs.get(key.0, key.1) {
            known.insert(key, p);
            continue;
        }
        match pair_model::find_pair(conn, from, to) {
            Ok(Some(rows)) => {
                known.insert(key, pair_of(from, to, rows, now));
            }
            Ok(None) => missing.push((from, to)),
            Err(e) => log::error!("message {from} -> {to}: pair lookup failed: {e}"),
        }
    }
    if !missing.is_empty() {
        match pair_model::create_pairs(services, conn, &missing, now, LOCK_TIMEOUT_SECS) {
            Ok(rows) => {
                for (&(from, to), rows) in missing.iter().zip(rows) {
                    if let Some(rows) = rows {
                        known.insert(
                            relation_model::ordered(from, to),
                            pair_of(from, to, rows, now),
                        );
                    }
                }
            }
            Err(e) => log::error!("{} new pairs not made: {e}", missing.len()),
        }
    }
    msgs.iter()
        .map(|&msg| {
            let (from, to) = (msg.from_user_id, msg.to_session_id);
            let (small, _) = relation_model::ordered(from, to);
            let Some(&pair) = known.get(&relation_model::ordered(from, to)) else {
                log::error!("message {from} -> {to} not stored: its pair is not there");
                return None;
            };
            let sessions = if from == small {
                (pair.sessions[0], pair.sessions[1])
            } else {
                (pair.sessions[1], pair.sessions[0])
            };
            Some(Item {
                msg,
                pair,
                touch: pair.touched != now,
                sessions,
                id: 0,
            })
        })
        .collect()
}

/// Gives every resolved message its id (and raises its unread count): one
/// script for the batch; a relation whose counter is absent has it set
/// from its highest stored id first, under the pair lock, as for a single
/// message (`next_msg_id`). A relation that still gets none keeps id 0.
fn give_ids(
    services: &Services,
    conn: &mut DbConn<'_>,
    items: &mut [Option<Item<'_>>],
) -> Result<(), HandlerError> {
    let mut groups: Vec<Group> = Vec::new();
    let mut by_relation: HashMap<u32, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let Some(it) = item else { continue };
        let gi = *by_relation.entry(it.pair.relate_id).or_insert_with(|| {
            groups.push(Group {
                relate_id: it.pair.relate_id,
                items: Vec::new(),
                unread: Vec::new(),
            });
            groups.len() - 1
        });
        let g = &mut groups[gi];
        g.items.push(i);
        let (from, to) = (it.msg.from_user_id, it.msg.to_session_id);
        match g.unread.iter_mut().find(|u| u.0 == to && u.1 == from) {
            Some(u) => u.2 += 1,
            None => g.unread.push((to, from, 1)),
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    let mut redis = services.cache.get(pools::UNREAD)?;
    let all: Vec<&Group> = groups.iter().collect();
    let mut last = redis.run(|c| allocate(c, &all))?;
    let absent: Vec<usize> = (0..groups.len()).filter(|&g| last[g] == 0).collect();
    for &gi in &absent {
        let g = &groups[gi];
        let Some(first) = g.items.first().and_then(|&i| items[i].as_ref()) else {
            continue;
        };
        let (from, to) = (first.msg.from_user_id, first.msg.to_session_id);
        let key = cache_keys::pair_msg_id(g.relate_id);
        let max_sql = [
            "SELECT MAX(msgId) FROM ",
            &message_model::table_name(g.relate_id),
            " WHERE relateId = ?",
        ]
        .concat();
        let got = with_named_lock(conn, &relation_model::pair_lock_name(from, to), |conn| {
            super::seed_msg_id(conn, &mut redis, &key, &max_sql, g.relate_id)?;
            Ok(redis.run(|c| allocate(c, &[g]))?)
        });
        match got {
            Ok(v) => last[gi] = v.first().copied().unwrap_or(0),
            Err(e) => log::error!("{key}: {e}; its messages are not stored"),
        }
    }
    for (g, &last) in groups.iter().zip(&last) {
        if last == 0 {
            continue;
        }
        let n = g.items.len() as u32;
        let first = last.saturating_sub(n) + 1;
        for (k, &i) in g.items.iter().enumerate() {
            if let Some(it) = items[i].as_mut() {
                it.id = first + k as u32;
            }
        }
    }
    Ok(())
}

/// A stored message's pair goes (back) into the cache, touched now when
/// its sessions were updated.
fn remember(services: &Services, it: &Item<'_>, now: u32) {
    let (small, big) = relation_model::ordered(it.msg.from_user_id, it.msg.to_session_id);
    let touched = if it.touch { now } else { it.pair.touched };
    services.pairs.put(small, big, Pair { touched, ..it.pair });
}
