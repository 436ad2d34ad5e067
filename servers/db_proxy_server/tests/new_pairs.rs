//! New pairs made off the message lanes (`new_pairs`,
//! `business/pair_model`): many new pairs at once through two db_proxy
//! processes get one relation and two sessions each and gap-free ordered
//! ids; a pair that cannot be made (its named lock held elsewhere) has its
//! messages answered as not stored while the other new pairs' messages are
//! stored and answered first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mysql::prelude::Queryable;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tt_proto::IM::BaseDefine::MessageCmdID;
use tt_proto::IM::Message::IMMsgData;
use tt_rs::{PduClient, RedisServer, TestDb};

const CID_MSG_DATA: u16 = MessageCmdID::CID_MSG_DATA as u16;

/// One acked message as the test compares it with its stored row.
type AckedRow = (u32, u32, String);

/// Two proxies on one database and Redis, two links each; 48 pairs none of
/// which exists, every pair's messages sent through both proxies (both
/// directions), so both race to make every pair. Every message is acked
/// with an id; per pair the ids are exactly 1..n and each row holds what
/// was acked with its id; a link's ids to one peer rise in its sending
/// order; each pair has one relation and two sessions.
#[test]
fn new_pairs_raced_by_two_proxies_are_made_once_with_gap_free_ordered_ids() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let proxies = [start(&db, &redis, 4, 8), start(&db, &redis, 4, 8)];
    const PAIRS: u32 = 48;
    const PER_LINK_AND_PAIR: u32 = 5;
    let pair = |p: u32| (3000 + 2 * p, 3001 + 2 * p);
    // Link k (proxy k / 2) sends on every pair, the direction by k.
    let threads: Vec<_> = (0..4u32)
        .map(|k| {
            let port = proxies[(k / 2) as usize].port;
            std::thread::spawn(move || {
                let mut c = PduClient::connect(port);
                let mut msgs = Vec::new();
                for i in 0..PER_LINK_AND_PAIR {
                    for p in 0..PAIRS {
                        let (a, b) = pair(p);
                        let (from, to) = if k % 2 == 0 { (a, b) } else { (b, a) };
                        let body = format!("link{k}-{from}-{to}-{i}");
                        msgs.push(text_msg(from, to, body.as_bytes(), 1_700_000_000 + i));
                    }
                }
                let answers = pump(&mut c, 1, &msgs, 64);
                (k, msgs, answers)
            })
        })
        .collect();
    let mut acked: HashMap<(u32, u32), Vec<AckedRow>> = HashMap::new();
    for t in threads {
        let (k, msgs, answers) = t.join().unwrap();
        let mut last: HashMap<u32, u32> = HashMap::new();
        for (n, m) in msgs.iter().enumerate() {
            let a = &answers[&(1 + n as u16)];
            assert_ne!(a.msg_id, 0, "link {k}: message {n} not stored");
            let prev = last.insert(m.to_session_id, a.msg_id).unwrap_or(0);
            assert!(a.msg_id > prev, "link {k}: id {} after {prev}", a.msg_id);
            let (from, to) = (m.from_user_id, m.to_session_id);
            let body = String::from_utf8(m.msg_data.clone()).unwrap();
            acked
                .entry((from.min(to), from.max(to)))
                .or_default()
                .push((a.msg_id, from, body));
        }
    }
    assert_eq!(acked.len(), PAIRS as usize);
    for ((small, big), mut list) in acked {
        list.sort();
        let n = list.len() as u32;
        assert_eq!(n, 4 * PER_LINK_AND_PAIR);
        let ids: Vec<u32> = list.iter().map(|l| l.0).collect();
        assert_eq!(ids, (1..=n).collect::<Vec<_>>(), "pair {small}-{big}: 1..n");
        let rows = rows_of(&db, relation_id(&db, small, big));
        let expected: std::collections::BTreeMap<u32, (u32, String)> =
            list.into_iter().map(|(id, f, b)| (id, (f, b))).collect();
        assert_eq!(rows, expected, "pair {small}-{big}: rows as acked");
    }
    let per_pair: Vec<(u32, u32, u64)> = db
        .conn()
        .query(
            "SELECT smallId, bigId, COUNT(*) FROM IMRelationShip GROUP BY smallId, bigId \
             HAVING COUNT(*) <> 1",
        )
        .unwrap();
    assert_eq!(per_pair, vec![], "one relation a pair");
    let counts: Vec<(u64, u64)> = db
        .conn()
        .query(
            "SELECT (SELECT COUNT(*) FROM IMRelationShip), \
             (SELECT COUNT(DISTINCT userId, peerId) FROM IMRecentSession)",
        )
        .unwrap();
    assert_eq!(counts, vec![(u64::from(PAIRS), 2 * u64::from(PAIRS))]);
    let sessions: Vec<u64> = db
        .conn()
        .query("SELECT COUNT(*) FROM IMRecentSession")
        .unwrap();
    assert_eq!(sessions, vec![2 * u64::from(PAIRS)], "two sessions a pair");
}

/// Waits until a statement starting with `prefix` is running in MariaDB.
fn wait_running(db: &TestDb, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: Option<u64> = db
            .conn()
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ?",
                (format!("{prefix}%"),),
            )
            .unwrap();
        if n.unwrap_or(0) >= 1 {
            return;
        }
        assert!(Instant::now() < deadline, "no `{prefix}` ever ran");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Another process holds the named lock of the new pair (1, 2) past the
/// lock timeout: its three messages are answered with id 0 and no row;
/// the messages of eight other new pairs sent after them are stored and
/// all answered before those three; once the lock is free the pair is made
/// and its first message gets id 1 (the failed ones used no id).
#[test]
fn a_pair_that_cannot_be_made_fails_alone_and_holds_up_no_other_pair() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let p = start(&db, &redis, 4, 8);
    let mut holder = db.conn();
    let got: Option<i64> = holder
        .query_first("SELECT GET_LOCK('teamtalk.pair.1.2', 0)")
        .unwrap();
    assert_eq!(got, Some(1));
    let mut c = PduClient::connect(p.port);
    let locked: Vec<IMMsgData> = (0..3)
        .map(|i| text_msg(1 + i % 2, 2 - i % 2, b"blocked", 1_700_000_000))
        .collect();
    for (i, m) in locked.iter().enumerate() {
        send_unanswered(&mut c, 1 + i as u16, m);
    }
    wait_running(&db, "SELECT GET_LOCK");
    let others: Vec<IMMsgData> = (0..8u32)
        .flat_map(|k| {
            let (a, b) = (100 + 2 * k, 101 + 2 * k);
            [
                text_msg(a, b, b"other", 1_700_000_000),
                text_msg(b, a, b"other", 1_700_000_000),
            ]
        })
        .collect();
    for (i, m) in others.iter().enumerate() {
        send_unanswered(&mut c, 10 + i as u16, m);
    }
    let mut order = Vec::new();
    let mut answers: HashMap<u16, IMMsgData> = HashMap::new();
    while answers.len() < locked.len() + others.len() {
        let (pdu, rsp) = c.recv_cmd::<IMMsgData>(CID_MSG_DATA);
        order.push(pdu.seq_num());
        answers.insert(pdu.seq_num(), rsp);
    }
    for seq in 1..=3u16 {
        assert_eq!(answers[&seq].msg_id, 0, "seq {seq}: answered as not stored");
    }
    for (i, m) in others.iter().enumerate() {
        let a = &answers[&(10 + i as u16)];
        // Each pair's two messages: ids 1 then 2.
        assert_eq!(a.msg_id, 1 + (i % 2) as u32, "{m:?}");
    }
    let first_failed = order.iter().position(|&s| s <= 3).unwrap();
    assert_eq!(
        first_failed,
        others.len(),
        "every other pair answered before the held one: {order:?}"
    );
    let relations: Vec<u64> = db
        .conn()
        .query("SELECT COUNT(*) FROM IMRelationShip WHERE smallId = 1 AND bigId = 2")
        .unwrap();
    assert_eq!(relations, vec![0]);
    holder
        .query_drop("DO RELEASE_LOCK('teamtalk.pair.1.2')")
        .unwrap();
    let after = send(&mut c, 50, &text_msg(2, 1, b"after", 1_700_000_001));
    assert_eq!(after.msg_id, 1);
    let rows = rows_of(&db, relation_id(&db, 1, 2));
    assert_eq!(rows.len(), 1);
}

/// A legacy pair whose relation and sessions have a NULL `status` (the
/// schema lets it: `DEFAULT '0'` without `NOT NULL`): such a row is not an
/// active one, so the pair's first message revives all three rows and is
/// stored with id 1. (Read as a number it made the pair's task panic, and
/// the pair's messages went unanswered.)
#[test]
fn a_pair_whose_rows_have_a_null_status_is_revived() {
    let (db, _redis, _p, mut c) = fresh(4, 8);
    let mut conn = db.conn();
    conn.query_drop(
        "INSERT INTO IMRelationShip (smallId, bigId, status, created, updated) \
         VALUES (300, 301, NULL, 1, 1)",
    )
    .unwrap();
    conn.query_drop(
        "INSERT INTO IMRecentSession (userId, peerId, type, status, created, updated) \
         VALUES (300, 301, 1, NULL, 1, 1), (301, 300, 1, NULL, 1, 1)",
    )
    .unwrap();
    let first = send(
        &mut c,
        1,
        &text_msg(300, 301, b"hello again", 1_700_000_000),
    );
    assert_eq!(first.msg_id, 1, "stored, with the pair's first id");
    let second = send(&mut c, 2, &text_msg(301, 300, b"back", 1_700_000_000));
    assert_eq!(second.msg_id, 2);
    let relations: Vec<(u32, u32)> = db
        .conn()
        .query("SELECT COUNT(*), SUM(status = 0) FROM IMRelationShip WHERE smallId = 300")
        .unwrap();
    assert_eq!(relations, vec![(1, 1)], "the one relation, active again");
    let sessions: Vec<(u32, u32)> = db
        .conn()
        .query("SELECT COUNT(*), SUM(status = 0) FROM IMRecentSession WHERE userId IN (300, 301)")
        .unwrap();
    assert_eq!(sessions, vec![(2, 2)], "both sessions, active again");
    assert_eq!(rows_of(&db, relation_id(&db, 300, 301)).len(), 2);
}

/// After a restart db_proxy's pair cache is empty, but a pair that exists
/// is only looked up, with no named lock: with the pair's lock held by
/// another process all along, the restarted proxy still stores the pair's
/// next message at once, with the next id. (Had it made the pair again,
/// it would have waited for the lock and answered id 0.)
#[test]
fn an_existing_pair_after_a_restart_needs_no_lock() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    {
        let p = start(&db, &redis, 4, 8);
        let mut c = PduClient::connect(p.port);
        let first = send(&mut c, 1, &text_msg(400, 401, b"before", 1_700_000_000));
        assert_eq!(first.msg_id, 1);
    }
    let mut holder = db.conn();
    let got: Option<i64> = holder
        .query_first("SELECT GET_LOCK('teamtalk.pair.400.401', 0)")
        .unwrap();
    assert_eq!(got, Some(1));
    let p = start(&db, &redis, 4, 8);
    let mut c = PduClient::connect(p.port);
    let next = send(&mut c, 2, &text_msg(401, 400, b"after", 1_700_000_001));
    assert_eq!(
        next.msg_id, 2,
        "stored with the pair's next id, no lock needed"
    );
    let rows = rows_of(&db, relation_id(&db, 400, 401));
    assert_eq!(rows.len(), 2);
    holder
        .query_drop("DO RELEASE_LOCK('teamtalk.pair.400.401')")
        .unwrap();
}
