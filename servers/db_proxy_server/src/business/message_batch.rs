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

use super::message_model::{self, Pair};
use super::{
    lower_counter, message_content, relation_model, reply, store_message, with_named_lock,
    HandlerError, HandlerResult,
};
use crate::cache_keys;
use crate::cache_pool::pools;
use crate::db_pool::{DbConn, MASTER};
use crate::services::Services;
use base::pdu::ImPdu;
use mysql::prelude::Queryable;
use mysql::Value;
use std::collections::HashMap;
use std::sync::LazyLock;
use tt_proto::IM::BaseDefine::MsgType;
use tt_proto::IM::Message::IMMsgData;

/// Most rows (and session pairs) in one statement: the statement sizes are
/// powers of two up to this, so each connection prepares a few statements
/// per table and reuses them.
const MAX_ROWS_PER_STATEMENT: usize = 32;

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

/// A text the single path would store (not refused, not to oneself).
fn batchable(msg: &IMMsgData) -> bool {
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
struct Item<'a> {
    msg: &'a IMMsgData,
    pair: Pair,
    /// The pair's sessions are to be set active (first message this second).
    touch: bool,
    /// The sender's session, then the receiver's.
    sessions: (u32, u32),
    /// Its id; 0 until given, and for a message not stored.
    id: u32,
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
/// `message_model::create_pairs`). `None` for a message whose pair could
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
        match message_model::find_pair(conn, from, to) {
            Ok(Some(rows)) => {
                known.insert(key, pair_of(from, to, rows, now));
            }
            Ok(None) => missing.push((from, to)),
            Err(e) => log::error!("message {from} -> {to}: pair lookup failed: {e}"),
        }
    }
    if !missing.is_empty() {
        match message_model::create_pairs(services, conn, &missing, now) {
            Ok(rows) => {
                for (&(from, to), rows) in missing.iter().zip(rows) {
                    known.insert(
                        relation_model::ordered(from, to),
                        pair_of(from, to, rows, now),
                    );
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

/// A pair from its rows as looked up for `from` → `to`: touched now only
/// when both sessions were updated this second already.
fn pair_of(from: u32, to: u32, rows: message_model::PairRows, now: u32) -> Pair {
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
            // MAX() of no row is NULL.
            let max: Option<Option<u32>> = conn.run(|c| c.exec_first(&max_sql, (g.relate_id,)))?;
            let max = max.flatten().unwrap_or(0);
            redis.run(|c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(max)
                    .arg("NX")
                    .query::<Option<String>>(c)
            })?;
            if max > 0 {
                log::warn!("{key} was absent: continued from the stored id {max}");
            }
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

/// `n` split into statement sizes: powers of two, largest first, none
/// above [`MAX_ROWS_PER_STATEMENT`].
fn chunk_sizes(mut n: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    while n > 0 {
        let mut s = MAX_ROWS_PER_STATEMENT;
        while s > n {
            s /= 2;
        }
        sizes.push(s);
        n -= s;
    }
    sizes
}

/// `INSERT INTO <table> (...) VALUES (...), ...` for `rows` rows.
fn insert_sql(table: &str, rows: usize) -> String {
    const ROW: &str = "(?, ?, ?, ?, ?, 0, ?, ?, ?)";
    let mut sql = String::with_capacity(120 + rows * (ROW.len() + 2));
    sql.push_str("INSERT INTO ");
    sql.push_str(table);
    sql.push_str(
        " (relateId, fromId, toId, msgId, content, status, type, created, updated) VALUES ",
    );
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(ROW);
    }
    sql
}

/// The bound values of one row of [`insert_sql`].
fn row_values(it: &Item<'_>, out: &mut Vec<Value>) {
    let m = it.msg;
    out.extend([
        Value::from(it.pair.relate_id),
        Value::from(m.from_user_id),
        Value::from(m.to_session_id),
        Value::from(it.id),
        Value::from(m.msg_data.as_slice()),
        Value::from(m.msg_type as u32),
        Value::from(m.create_time),
        Value::from(m.create_time),
    ]);
}

/// Every statement of the batch's write: the inserts per table, then the
/// sessions' update (last, so its rows stay locked for the commit only).
fn statements(items: &[&Item<'_>], now: u32) -> Vec<(String, Vec<Value>)> {
    let mut by_table: [Vec<&Item<'_>>; 8] = Default::default();
    for it in items {
        by_table[(it.pair.relate_id % 8) as usize].push(it);
    }
    let mut out = Vec::new();
    for rows in by_table.iter().filter(|r| !r.is_empty()) {
        let table = message_model::table_name(rows[0].pair.relate_id);
        let mut rest: &[&Item<'_>] = rows;
        for size in chunk_sizes(rows.len()) {
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut values = Vec::with_capacity(size * 8);
            for it in chunk {
                row_values(it, &mut values);
            }
            out.push((insert_sql(&table, size), values));
        }
    }
    // Each pair's sessions once.
    let mut touched: Vec<u32> = Vec::new();
    let mut pairs: Vec<u32> = Vec::new();
    for it in items.iter().filter(|it| it.touch) {
        if !pairs.contains(&it.pair.relate_id) {
            pairs.push(it.pair.relate_id);
            touched.extend(it.pair.sessions);
        }
    }
    let mut rest: &[u32] = &touched;
    for size in chunk_sizes(touched.len() / 2) {
        let (chunk, tail) = rest.split_at(size * 2);
        rest = tail;
        let sql = super::with_in_list(
            "UPDATE IMRecentSession SET status = 0, updated = ? WHERE id IN (",
            size * 2,
            ")",
        );
        let values = std::iter::once(now)
            .chain(chunk.iter().copied())
            .map(Value::from)
            .collect();
        out.push((sql, values));
    }
    out
}

/// Writes the rows of `items` and the sessions' update: one statement
/// alone autocommits, several go in one transaction.
fn write_rows(conn: &mut DbConn<'_>, items: &[&Item<'_>], now: u32) -> Result<(), HandlerError> {
    let mut stmts = statements(items, now);
    match stmts.len() {
        0 => Ok(()),
        1 => {
            let (sql, values) = stmts.remove(0);
            Ok(conn.run(|c| c.exec_drop(&sql, mysql::Params::Positional(values)))?)
        }
        _ => conn.transaction(|tx| {
            for (sql, values) in stmts {
                tx.exec_drop(&sql, mysql::Params::Positional(values))?;
            }
            Ok::<(), HandlerError>(())
        }),
    }
}

/// After a failed batch write: each message of `with_id` written alone,
/// unless its row is there already; one that fails gets id 0 and its
/// unread count back.
fn write_each(services: &Services, items: &mut [Option<Item<'_>>], with_id: &[usize], now: u32) {
    let mut conn: Option<DbConn<'_>> = None;
    for &i in with_id {
        let Some(it) = items[i].as_mut() else {
            continue;
        };
        // A broken connection is given back (closed) and another taken.
        let usable = match conn.take().filter(|c| !c.is_broken()) {
            Some(c) => Ok(c),
            None => services.db.get(MASTER).map_err(HandlerError::from),
        };
        let stored = usable.and_then(|mut c| {
            let r = write_one(&mut c, it, now);
            conn = Some(c);
            r
        });
        if let Err(e) = stored {
            let (from, to) = (it.msg.from_user_id, it.msg.to_session_id);
            log::error!("message {from} -> {to} (id {}) not stored: {e}", it.id);
            it.id = 0;
            match services.cache.get(pools::UNREAD) {
                Ok(mut redis) => {
                    lower_counter(&mut redis, &cache_keys::unread(to), &from.to_string(), None)
                }
                Err(e) => log::error!("unread_{to}[{from}] is one too high: {e}"),
            }
        }
    }
}

/// One message's row, written only if absent (the batch's commit may have
/// happened before its connection broke), with its sessions' update.
fn write_one(conn: &mut DbConn<'_>, it: &Item<'_>, now: u32) -> Result<(), HandlerError> {
    let table = message_model::table_name(it.pair.relate_id);
    let insert = [
        "INSERT INTO ",
        &table,
        " (relateId, fromId, toId, msgId, content, status, type, created, updated) \
         SELECT ?, ?, ?, ?, ?, 0, ?, ?, ? FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM ",
        &table,
        " WHERE relateId = ? AND status IN (0, 1) AND msgId = ?)",
    ]
    .concat();
    let (session, peer) = it.sessions;
    store_message(
        conn,
        it.msg,
        None,
        &insert,
        |_| {
            let mut v = Vec::with_capacity(10);
            row_values(it, &mut v);
            v.push(Value::from(it.pair.relate_id));
            v.push(Value::from(it.id));
            mysql::Params::Positional(v)
        },
        it.touch,
        |tx| {
            tx.exec_drop(
                "UPDATE IMRecentSession SET status = 0, updated = ? WHERE id IN (?, ?)",
                (now, session, peer),
            )
        },
    )
}

/// A stored message's pair goes (back) into the cache, touched now when
/// its sessions were updated.
fn remember(services: &Services, it: &Item<'_>, now: u32) {
    let (small, big) = relation_model::ordered(it.msg.from_user_id, it.msg.to_session_id);
    let touched = if it.touch { now } else { it.pair.touched };
    services.pairs.put(small, big, Pair { touched, ..it.pair });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_sizes_are_few_powers_of_two() {
        assert_eq!(chunk_sizes(0), Vec::<usize>::new());
        assert_eq!(chunk_sizes(1), vec![1]);
        assert_eq!(chunk_sizes(13), vec![8, 4, 1]);
        assert_eq!(chunk_sizes(64), vec![32, 32]);
        assert_eq!(chunk_sizes(45), vec![32, 8, 4, 1]);
        for n in 0..200 {
            assert_eq!(chunk_sizes(n).iter().sum::<usize>(), n);
        }
    }

    #[test]
    fn the_insert_binds_eight_values_a_row() {
        let sql = insert_sql("IMMessage_3", 2);
        assert!(sql.starts_with("INSERT INTO IMMessage_3 ("));
        assert_eq!(sql.matches('?').count(), 16);
    }
}
