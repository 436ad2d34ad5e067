//! The rows of a batch of one-to-one messages (see `message_batch`): the
//! statements that write them (one multi-row `INSERT` per message table,
//! in a few fixed sizes, then the sessions' update), and the message by
//! message retry after a failed batch. Not in the C++, which writes each
//! message alone (`MessageModel.cpp`).

use super::message_batch::Item;
use super::{lower_counter, message_model, store_message, HandlerError};
use crate::cache_keys;
use crate::cache_pool::pools;
use crate::db_pool::{DbConn, MASTER};
use crate::services::Services;
use mysql::prelude::Queryable;
use mysql::Value;

/// Most rows (and session pairs) in one statement: above
/// [`EXACT_ROWS_UP_TO`] the statement sizes are powers of two up to this,
/// so each connection prepares a few statements per table and reuses them.
const MAX_ROWS_PER_STATEMENT: usize = 32;

/// Up to this many rows go in one statement of exactly that size: below
/// saturation a table gets 1 to 4 rows of a batch, and a power-of-two split
/// of 3 rows cost two round trips. With the powers of two above it, a
/// connection prepares at most 8 + 2 statements per table (the statement
/// cache holds `db_pool::STMT_CACHE_SIZE`).
const EXACT_ROWS_UP_TO: usize = 8;

/// `n` split into statement sizes: a remainder of at most
/// [`EXACT_ROWS_UP_TO`] in one statement, larger counts by powers of two,
/// largest first, none above [`MAX_ROWS_PER_STATEMENT`].
pub(super) fn chunk_sizes(mut n: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    while n > 0 {
        if n <= EXACT_ROWS_UP_TO {
            sizes.push(n);
            break;
        }
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
    // Each pair's sessions once, in ascending id order over all the
    // statements: every lane's transaction then locks its session rows in
    // the same order (one statement's `IN` list is scanned in order; the
    // statements of a big batch were in arrival order, and two lanes could
    // each hold a row the other wanted: InnoDB's ERROR 1213).
    let mut touched: Vec<u32> = Vec::new();
    let mut pairs: Vec<u32> = Vec::new();
    for it in items.iter().filter(|it| it.touch) {
        if !pairs.contains(&it.pair.relate_id) {
            pairs.push(it.pair.relate_id);
            touched.extend(it.pair.sessions);
        }
    }
    touched.sort_unstable();
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
pub(super) fn write_rows(
    conn: &mut DbConn<'_>,
    items: &[&Item<'_>],
    now: u32,
) -> Result<(), HandlerError> {
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
pub(super) fn write_each(
    services: &Services,
    items: &mut [Option<Item<'_>>],
    with_id: &[usize],
    now: u32,
) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_sizes_are_few_and_cover_the_rows() {
        assert_eq!(chunk_sizes(0), Vec::<usize>::new());
        assert_eq!(chunk_sizes(1), vec![1]);
        assert_eq!(chunk_sizes(3), vec![3]);
        assert_eq!(chunk_sizes(7), vec![7]);
        assert_eq!(chunk_sizes(13), vec![8, 5]);
        assert_eq!(chunk_sizes(64), vec![32, 32]);
        assert_eq!(chunk_sizes(45), vec![32, 8, 5]);
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..200 {
            let sizes = chunk_sizes(n);
            assert_eq!(sizes.iter().sum::<usize>(), n);
            // One statement for any count a table gets below saturation.
            if n <= EXACT_ROWS_UP_TO {
                assert!(sizes.len() <= 1, "{n}: {sizes:?}");
            }
            shapes.extend(sizes);
        }
        // So few shapes that every table's fit in the statement cache.
        assert_eq!(shapes.len(), EXACT_ROWS_UP_TO + 2);
    }

    #[test]
    fn a_batch_locks_its_sessions_in_ascending_order_over_all_statements() {
        use super::super::message_model::Pair;
        use tt_proto::IM::Message::IMMsgData;
        // 20 pairs (two UPDATE statements), their sessions in falling order.
        let msgs: Vec<IMMsgData> = (0..20u32)
            .map(|i| IMMsgData {
                from_user_id: 100 + i,
                to_session_id: 200 + i,
                msg_id: 0,
                create_time: 1,
                msg_type: tt_proto::IM::BaseDefine::MsgType::MSG_TYPE_SINGLE_TEXT,
                msg_data: b"hi".to_vec(),
                attach_data: None,
            })
            .collect();
        let items: Vec<Item<'_>> = msgs
            .iter()
            .enumerate()
            .map(|(i, msg)| {
                let i = i as u32;
                Item {
                    msg,
                    pair: Pair {
                        relate_id: 1 + i,
                        sessions: [1000 - 2 * i, 999 - 2 * i],
                        touched: 0,
                    },
                    touch: true,
                    sessions: (1000 - 2 * i, 999 - 2 * i),
                    id: 1,
                }
            })
            .collect();
        let refs: Vec<&Item<'_>> = items.iter().collect();
        let updates: Vec<Vec<Value>> = statements(&refs, 7)
            .into_iter()
            .filter(|(sql, _)| sql.starts_with("UPDATE IMRecentSession"))
            .map(|(_, values)| values)
            .collect();
        assert!(updates.len() >= 2, "{} statements", updates.len());
        let ids: Vec<u32> = updates
            .iter()
            .flat_map(|v| v[1..].iter().map(|x| mysql::from_value::<u32>(x.clone())))
            .collect();
        assert_eq!(ids.len(), 40);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        assert!(updates.iter().all(|v| v[0] == Value::from(7u32)));
    }

    #[test]
    fn the_insert_binds_eight_values_a_row() {
        let sql = insert_sql("IMMessage_3", 2);
        assert!(sql.starts_with("INSERT INTO IMMessage_3 ("));
        assert_eq!(sql.matches('?').count(), 16);
    }
}
