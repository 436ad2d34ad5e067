//! The batched store of one-to-one messages (`message_lanes`,
//! `business/message_batch`): ids unique, gap-free and in order per pair
//! under concurrent senders; one message that cannot be stored fails alone
//! inside a batch; a MariaDB restart in the middle of a batch loses no
//! acked message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mysql::prelude::Queryable;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tt_proto::IM::BaseDefine::MessageCmdID;
use tt_proto::IM::Message::IMMsgData;
use tt_rs::metrics::scrape;
use tt_rs::{free_port, MariaDbServer, PduClient, RedisServer, TestDb};

const CID_MSG_DATA: u16 = MessageCmdID::CID_MSG_DATA as u16;

/// An acked message: its id, its sender, its body.
type Acked = (u32, u32, String);

/// A proxy with its metrics port open, so a test can see the batches.
fn start_with_metrics(db: &TestDb, redis: &RedisServer, threads: usize) -> Proxy {
    let port = free_port();
    let text = conf(db, redis.port(), port, threads, 8)
        + &format!("MetricsListenIP=127.0.0.1\nMetricsPort={}\n", free_port());
    start_with(text, port)
}

fn unread_count(redis: &RedisServer, to: u32, from: u32) -> u32 {
    let mut c = redis_db(redis, DB_UNREAD);
    hfield(&mut c, &format!("unread_{to}"), &from.to_string())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Eight links send at once to 32 pairs (both directions on some), each
/// pair's messages interleaved with the others': every message is acked
/// with an id; per pair the ids are exactly 1..n, each row holds what was
/// acked with its id, a link's messages to one pair got rising ids in the
/// order it sent them, and the unread counts match what was sent.
#[test]
fn concurrent_senders_on_many_pairs_get_unique_gap_free_ordered_ids() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let p = start_with_metrics(&db, &redis, 4);
    const LINKS: u32 = 8;
    const PAIRS_PER_LINK: u32 = 4;
    const PER_PAIR: u32 = 60;
    // Link k talks on pairs (1000 + 10 p, 1001 + 10 p) for p in its four;
    // odd links send the other way on the pairs of the even link before them.
    let pair_of = |k: u32, j: u32| {
        let p = (k / 2) * PAIRS_PER_LINK + j;
        let (a, b) = (1000 + 10 * p, 1001 + 10 * p);
        if k.is_multiple_of(2) {
            (a, b)
        } else {
            (b, a)
        }
    };
    let threads: Vec<_> = (0..LINKS)
        .map(|k| {
            let port = p.port;
            std::thread::spawn(move || {
                let mut c = PduClient::connect(port);
                let mut msgs = Vec::new();
                for i in 0..PER_PAIR {
                    for j in 0..PAIRS_PER_LINK {
                        let (from, to) = pair_of(k, j);
                        let body = format!("link{k}-to{to}-{i:04}");
                        msgs.push(text_msg(from, to, body.as_bytes(), 1_700_000_000 + i));
                    }
                }
                let answers = pump(&mut c, 1, &msgs, 48);
                (k, msgs, answers)
            })
        })
        .collect();
    // (small, big) → every (id, sender, body) acked.
    let mut acked: HashMap<(u32, u32), Vec<Acked>> = HashMap::new();
    let mut sent_by_direction: HashMap<(u32, u32), u32> = HashMap::new();
    for t in threads {
        let (k, msgs, answers) = t.join().unwrap();
        // Per pair, this link's ids rise in its sending order.
        let mut last: HashMap<u32, u32> = HashMap::new();
        for (n, m) in msgs.iter().enumerate() {
            let a = &answers[&(1 + n as u16)];
            assert_ne!(a.msg_id, 0, "link {k}: message {n} not stored");
            assert_eq!(a.msg_data, m.msg_data, "the answer is the message");
            let prev = last.insert(m.to_session_id, a.msg_id).unwrap_or(0);
            assert!(
                a.msg_id > prev,
                "link {k} to {}: id {} after {prev}",
                m.to_session_id,
                a.msg_id
            );
            let (from, to) = (m.from_user_id, m.to_session_id);
            let key = (from.min(to), from.max(to));
            let body = String::from_utf8(m.msg_data.clone()).unwrap();
            acked.entry(key).or_default().push((a.msg_id, from, body));
            *sent_by_direction.entry((from, to)).or_default() += 1;
        }
    }
    assert_eq!(acked.len(), (LINKS / 2 * PAIRS_PER_LINK) as usize);
    for ((small, big), mut list) in acked {
        list.sort();
        let n = list.len() as u32;
        assert_eq!(n, 2 * PER_PAIR, "pair {small}-{big}: both directions");
        let ids: Vec<u32> = list.iter().map(|l| l.0).collect();
        assert_eq!(ids, (1..=n).collect::<Vec<_>>(), "pair {small}-{big}: 1..n");
        let rows = rows_of(&db, relation_id(&db, small, big));
        let expected: BTreeMap<u32, (u32, String)> =
            list.into_iter().map(|(id, f, b)| (id, (f, b))).collect();
        assert_eq!(
            rows, expected,
            "pair {small}-{big}: each row is what was acked"
        );
    }
    // The pairs were made together in the first batches: once each.
    let counts: Vec<(u64, u64)> = db
        .conn()
        .query(
            "SELECT (SELECT COUNT(*) FROM IMRelationShip), (SELECT COUNT(*) FROM IMRecentSession)",
        )
        .unwrap();
    let pairs = u64::from(LINKS / 2 * PAIRS_PER_LINK);
    assert_eq!(
        counts,
        vec![(pairs, 2 * pairs)],
        "one relation and two sessions a pair"
    );
    for ((from, to), n) in sent_by_direction {
        assert_eq!(unread_count(&redis, to, from), n, "unread_{to}[{from}]");
    }
    let s = scrape(&p.server);
    let total = f64::from(LINKS * PAIRS_PER_LINK * PER_PAIR);
    assert_eq!(s.value("tt_db_message_batched_total", &[]), total);
    let batches = s.value("tt_db_message_batches_total", &[]);
    assert!(batches >= 1.0 && batches <= total);
    // 384 messages in flight are more than one lane takes: the load
    // spilled onto the second lane, and the pairs' ids above kept their
    // order all the same; nothing is left in flight.
    let lane = |l: &str| s.value("tt_db_lane_batches_total", &[("lane", l)]);
    assert!(lane("1") >= 1.0, "no batch on the second lane");
    assert_eq!(lane("0") + lane("1"), batches);
    assert_eq!(s.value("tt_db_lane_pairs_in_flight", &[]), 0.0);
    assert!(s.has("tt_db_lane_messages"));
    assert_eq!(s.value("tt_db_lane_messages", &[("lane", "0")]), 0.0);
    eprintln!(
        "{total} messages in {batches} batches ({:.1} a batch)",
        total / batches
    );
}

/// Waits until `p`'s work queue holds `n` requests.
fn wait_in_flight(p: &Proxy, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = scrape(&p.server).value("tt_db_work_in_flight", &[]);
        if v == n {
            return;
        }
        assert!(Instant::now() < deadline, "{v} requests in flight, not {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// With the message table locked, the first message holds the lane's
/// worker and the next ones gather in the lane: they are stored as one
/// batch, in which one message is refused by the database (a trigger
/// stands for any row MariaDB will not take). That one is answered with id
/// 0 and its unread count taken back; every other is stored and acked.
#[test]
fn a_message_that_cannot_be_stored_fails_alone_in_its_batch() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let p = start_with_metrics(&db, &redis, 2);
    let mut c = PduClient::connect(p.port);
    let (a, b) = (7, 8);
    // The pair exists: relation, sessions, counter.
    assert_eq!(
        send(&mut c, 1, &text_msg(a, b, b"first", 1_700_000_000)).msg_id,
        1
    );
    let table = format!("IMMessage_{}", relation_id(&db, a, b) % 8);
    let mut admin = db.conn();
    admin
        .query_drop(format!(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON {table} FOR EACH ROW \
             IF NEW.content = 'poison' THEN \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF"
        ))
        .unwrap();
    admin
        .query_drop(format!("LOCK TABLES {table} WRITE"))
        .unwrap();
    // One message holds the lane's worker on the lock...
    send_unanswered(&mut c, 2, &text_msg(a, b, b"held", 1_700_000_001));
    wait_in_flight(&p, 1.0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: Option<u64> = admin
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE 'INSERT INTO IMMessage%'",
            )
            .unwrap();
        if waiting.unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the insert never waited on the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // (The held message's batch is counted already.)
    let before = scrape(&p.server);
    // ...while ten more gather behind it, the sixth one poisoned.
    let bodies: Vec<String> = (0..10)
        .map(|i| {
            if i == 5 {
                "poison".to_string()
            } else {
                format!("batched-{i}")
            }
        })
        .collect();
    for (i, body) in bodies.iter().enumerate() {
        let (from, to) = if i % 3 == 0 { (b, a) } else { (a, b) };
        send_unanswered(
            &mut c,
            3 + i as u16,
            &text_msg(from, to, body.as_bytes(), 1_700_000_002),
        );
    }
    wait_in_flight(&p, 11.0);
    admin.query_drop("UNLOCK TABLES").unwrap();
    let mut answers: HashMap<u16, IMMsgData> = HashMap::new();
    while answers.len() < 11 {
        let (pdu, rsp) = c.recv_cmd::<IMMsgData>(CID_MSG_DATA);
        answers.insert(pdu.seq_num(), rsp);
    }
    let after = scrape(&p.server);
    let delta = |name: &str| after.value(name, &[]) - before.value(name, &[]);
    assert_eq!(
        delta("tt_db_message_batches_total"),
        1.0,
        "the ten in one batch"
    );
    assert_eq!(delta("tt_db_message_batched_total"), 10.0);
    assert_eq!(answers[&2].msg_id, 2);
    let poisoned = &answers[&(3 + 5)];
    assert_eq!(
        poisoned.msg_id, 0,
        "the refused message is answered as not stored"
    );
    let mut rows = rows_of(&db, relation_id(&db, a, b));
    for (i, body) in bodies.iter().enumerate() {
        let ans = &answers[&(3 + i as u16)];
        if i == 5 {
            continue;
        }
        // Ids in arrival order, the refused one's id left unused.
        let expected = 3 + i as u32;
        assert_eq!(ans.msg_id, expected, "message {i}");
        let (_, content) = rows.remove(&expected).expect("acked, so stored");
        assert_eq!(&content, body);
    }
    let left: Vec<u32> = rows.keys().copied().collect();
    assert_eq!(left, vec![1, 2], "nothing else stored; the poison nowhere");
    // Unread: a→b got first, held and 6 of the batched (the poison taken
    // back); b→a 4 batched.
    assert_eq!(unread_count(&redis, b, a), 2 + 5);
    assert_eq!(unread_count(&redis, a, b), 4);
}

/// MariaDB is killed (-9) while a batch is inside its transaction (its
/// rows inserted, the sessions' update waiting on a row lock) and more
/// messages wait in the lane behind it; it restarts on the same data.
/// Every message acked with an id is stored exactly once, and the pairs
/// take messages again afterwards.
#[test]
fn a_mariadb_restart_mid_batch_loses_no_acked_message() {
    let mut server = MariaDbServer::start();
    let db = TestDb::with_schema_on(&server.url());
    let redis = RedisServer::start();
    // One worker, so one lane: the batch in the transaction holds it.
    let p = start_with_metrics(&db, &redis, 1);
    let mut c = PduClient::connect(p.port);
    let pairs: Vec<(u32, u32)> = (0..5).map(|k| (50 + 2 * k, 51 + 2 * k)).collect();
    let setup = unix_now();
    for (n, &(a, b)) in pairs.iter().enumerate() {
        let first = format!("setup-{n}");
        assert_ne!(
            send(
                &mut c,
                1 + n as u16,
                &text_msg(a, b, first.as_bytes(), setup)
            )
            .msg_id,
            0
        );
    }
    // Row locks on every session of the pairs, held by an open transaction.
    let mut admin = db.conn();
    admin.query_drop("START TRANSACTION").unwrap();
    let ids: Vec<u32> = admin
        .query("SELECT id FROM IMRecentSession FOR UPDATE")
        .unwrap();
    assert_eq!(ids.len(), 2 * pairs.len());
    // The next second after the pairs were made (which may have taken
    // into the next one): each pair's sessions are to be touched again,
    // last in the batch's transaction.
    let made = unix_now();
    while unix_now() <= made {
        std::thread::sleep(Duration::from_millis(20));
    }
    let msgs: Vec<IMMsgData> = (0..31)
        .map(|i| {
            let (a, b) = pairs[i % pairs.len()];
            let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
            text_msg(from, to, format!("restart-{i:02}").as_bytes(), setup + 1)
        })
        .collect();
    for (i, m) in msgs.iter().enumerate() {
        send_unanswered(&mut c, 100 + i as u16, m);
    }
    wait_in_flight(&p, msgs.len() as f64);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: Option<u64> = db
            .conn()
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE 'UPDATE IMRecentSession%'",
            )
            .unwrap();
        if waiting.unwrap_or(0) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no batch waited on the sessions");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    drop(admin);
    server.restart();
    let mut answers: HashMap<u16, IMMsgData> = HashMap::new();
    while answers.len() < msgs.len() {
        let (pdu, rsp) = c.recv_cmd::<IMMsgData>(CID_MSG_DATA);
        answers.insert(pdu.seq_num(), rsp);
    }
    // Afterwards every pair takes a message again.
    for (n, &(a, b)) in pairs.iter().enumerate() {
        let after = send(
            &mut c,
            200 + n as u16,
            &text_msg(a, b, b"after", unix_now()),
        );
        assert_ne!(after.msg_id, 0, "pair {a}-{b} after the restart");
        answers.insert(200 + n as u16, after);
    }
    let mut acked = 0;
    for &(a, b) in &pairs {
        let rows = rows_of(&db, relation_id(&db, a, b));
        for (seq, ans) in &answers {
            let (from, to) = (ans.from_user_id, ans.to_session_id);
            if (from.min(to), from.max(to)) != (a.min(b), a.max(b)) || ans.msg_id == 0 {
                continue;
            }
            acked += 1;
            let (stored_from, content) = rows
                .get(&ans.msg_id)
                .unwrap_or_else(|| panic!("seq {seq}: acked id {} not stored", ans.msg_id));
            assert_eq!(*stored_from, from);
            assert_eq!(content.as_bytes(), ans.msg_data.as_slice());
        }
    }
    assert!(
        p.server.log().contains("writing each alone"),
        "the batch in the transaction failed with the server and was written again"
    );
    eprintln!(
        "{acked} of {} messages acked across the restart",
        answers.len()
    );
}
