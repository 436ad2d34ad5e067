//! db_proxy while MySQL stalls: the message tables are locked from the
//! test (`LOCK TABLES ... WRITE` on the scratch database), so every
//! worker that stores a message waits. The bounded work queue holds a
//! link's next request and pauses its reads (TCP holds the rest back);
//! the loop goes on heartbeating; once the lock
//! goes every request is answered, in order, and none is lost. SIGTERM in
//! the middle of such a stall drains the same way.

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use mysql::prelude::Queryable;
use std::time::Duration;
use tt_proto::cid;
use tt_proto::IM::Message::IMMsgData;
use tt_proto::IM::Server::IMStopReceivePacket;
use tt_rs::{free_port, PduClient, RedisServer, TestDb};

/// Longer than db_proxy's 5 s heartbeat interval plus its 1 s tick.
const HEARTBEAT_WAIT: Duration = Duration::from_secs(12);

/// A proxy with two workers and these extra (not in the C++) keys, and
/// two links whose pairs (1→2, 3→4) each stored a first message, so that
/// their relations and sessions exist before a stall.
fn two_primed_links(extra: &str) -> (TestDb, RedisServer, Proxy, PduClient, PduClient, u32) {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let port = free_port();
    let p = start_with(conf(&db, redis.port(), port, 2, 2) + extra, port);
    let mut a = PduClient::connect(p.port);
    let mut b = PduClient::connect(p.port);
    let now = unix_now();
    assert!(send(&mut a, 1, &text_msg(1, 2, b"first", now)).msg_id > 0);
    assert!(send(&mut b, 1, &text_msg(3, 4, b"first", now)).msg_id > 0);
    (db, redis, p, a, b, now)
}

/// Locks every one-to-one message table until the connection is dropped
/// (or `UNLOCK TABLES`): inserts from db_proxy wait.
fn lock_message_tables(db: &TestDb) -> mysql::Conn {
    let mut conn = db.conn();
    let tables: Vec<String> = (0..8).map(|i| format!("IMMessage_{i} WRITE")).collect();
    conn.query_drop(format!("LOCK TABLES {}", tables.join(", ")))
        .unwrap();
    conn
}

/// The next PDU is db_proxy's own heartbeat: the loop is running while
/// the workers wait (nothing else can arrive during the stall).
fn expect_heartbeat(c: &mut PduClient, what: &str) {
    let pdu = c
        .try_recv(HEARTBEAT_WAIT)
        .unwrap_or_else(|| panic!("{what}: no heartbeat from db_proxy"));
    assert_eq!(pdu.command_id(), cid::OTHER_HEARTBEAT, "{what}");
}

/// What a msg_server sends every 5 s.
fn heartbeat(c: &mut PduClient) {
    c.send(&netlib::imconn::heartbeat_pdu());
}

/// The `n` message replies of one link, in the order they came.
fn replies(c: &mut PduClient, n: usize) -> Vec<(u16, IMMsgData)> {
    (0..n)
        .map(|_| {
            let (pdu, msg) = c.recv_cmd::<IMMsgData>(cid::MSG_DATA);
            (pdu.seq_num(), msg)
        })
        .collect()
}

fn count(db: &TestDb, from: u32, to: u32) -> u64 {
    let mut n = 0;
    for i in 0..8 {
        let c: Option<u64> = db
            .conn()
            .exec_first(
                format!("SELECT COUNT(*) FROM IMMessage_{i} WHERE fromId = ? AND toId = ?"),
                (from, to),
            )
            .unwrap();
        n += c.unwrap_or(0);
    }
    n
}

#[test]
fn a_burst_during_a_mysql_stall_is_held_heartbeats_go_on_and_nothing_is_lost() {
    let (db, _redis, p, mut a, mut b, now) =
        two_primed_links("WorkerQueueSize=2\nLinkQueueSize=1\n");

    let lock = lock_message_tables(&db);
    const BURST: u16 = 40;
    for seq in 100..100 + BURST {
        send_unanswered(
            &mut a,
            seq,
            &text_msg(1, 2, format!("a{seq}").as_bytes(), now),
        );
        send_unanswered(
            &mut b,
            seq,
            &text_msg(3, 4, format!("b{seq}").as_bytes(), now),
        );
    }
    heartbeat(&mut a);
    heartbeat(&mut b);
    // The loop is free: db_proxy's heartbeats keep both links alive.
    expect_heartbeat(&mut a, "link a during the stall");
    expect_heartbeat(&mut b, "link b during the stall");
    p.server.wait_log("backpressure engaged");

    drop(lock);
    for (c, from, to) in [(&mut a, 1, 2), (&mut b, 3, 4)] {
        let got = replies(c, BURST as usize);
        let seqs: Vec<u16> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            seqs,
            (100..100 + BURST).collect::<Vec<_>>(),
            "every request of {from} answered once, in order"
        );
        let ids: Vec<u32> = got.iter().map(|(_, m)| m.msg_id).collect();
        assert!(ids[0] > 1, "stored, after the first message");
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "consecutive ids: {ids:?}"
        );
        for (seq, m) in &got {
            assert_eq!(
                m.msg_data,
                format!("{}{seq}", if from == 1 { "a" } else { "b" }).into_bytes()
            );
        }
        assert_eq!(count(&db, from, to), 1 + BURST as u64, "every row stored");
    }
}

#[test]
fn a_flooding_link_is_paused_not_closed_and_the_other_links_carry_on() {
    // Far more than LinkHoldSize requests: the link is paused after its
    // first held one (TCP holds the rest back), so the hold cap is never
    // reached, the link stays up, and everything is answered in order.
    let (db, _redis, p, mut flood, mut calm, now) =
        two_primed_links("LinkQueueSize=1\nLinkHoldSize=5\n");

    let lock = lock_message_tables(&db);
    for seq in 10..30 {
        send_unanswered(&mut flood, seq, &text_msg(1, 2, b"flood", now));
    }
    heartbeat(&mut flood);
    expect_heartbeat(&mut flood, "a paused link is kept up");
    for seq in 10..13 {
        send_unanswered(&mut calm, seq, &text_msg(3, 4, b"calm", now));
    }
    drop(lock);
    let got = replies(&mut calm, 3);
    assert_eq!(
        got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![10, 11, 12]
    );
    assert!(got.iter().all(|(_, m)| m.msg_id > 0));
    let flooded = replies(&mut flood, 20);
    assert_eq!(
        flooded.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (10..30).collect::<Vec<_>>(),
        "the paused link's requests, all answered in order"
    );
    assert!(flooded.iter().all(|(_, m)| m.msg_id > 0));
    assert_eq!(count(&db, 3, 4), 4);
    assert_eq!(count(&db, 1, 2), 21);
    assert!(!p.server.log().contains("closing it"), "no link was closed");
}

/// A proxy whose pair 1 -> 2 stored a first message, then the message
/// tables locked (`lock`), message `text` sent as seq 7 (its insert waits),
/// SIGTERM, and the proxy's STOP_RECV_PACKET read; the drain then starts
/// with that one request queued.
/// (Fields drop in this order: the database last, after the lock.)
struct StalledSigterm {
    c: PduClient,
    p: Proxy,
    lock: mysql::Conn,
    _redis: RedisServer,
    db: TestDb,
}

fn sigterm_during_a_stall(text: &[u8]) -> StalledSigterm {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let p = start(&db, &redis, 2, 2);
    let mut c = PduClient::connect(p.port);
    let now = unix_now();
    assert!(send(&mut c, 1, &text_msg(1, 2, b"first", now)).msg_id > 0);

    let lock = lock_message_tables(&db);
    send_unanswered(&mut c, 7, &text_msg(1, 2, text, now));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &p.server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (_, stop) = c.recv_cmd::<IMStopReceivePacket>(cid::OTHER_STOP_RECV_PACKET);
    assert_eq!(stop.result, 0);
    StalledSigterm {
        db,
        _redis: redis,
        p,
        c,
        lock,
    }
}

#[test]
fn sigterm_during_a_stall_keeps_heartbeating_then_finishes_the_work_and_exits_zero() {
    let mut s = sigterm_during_a_stall(b"during the stall");
    // Once the links are quiet (250 ms) the drain waits for the locked
    // insert...
    s.p.server.wait_log("exiting: finishing 1 queued");
    heartbeat(&mut s.c);
    // ... and db_proxy's next heartbeat (5 s after its STOP_RECV_PACKET,
    // so sent while draining) still comes: the loop is not blocked.
    expect_heartbeat(&mut s.c, "while draining");

    drop(s.lock);
    let (pdu, msg) = s.c.recv_cmd::<IMMsgData>(cid::MSG_DATA);
    assert_eq!(pdu.seq_num(), 7);
    assert!(
        msg.msg_id > 1,
        "the stalled message is stored and acknowledged"
    );
    assert_eq!(s.p.server.wait_exit(), Some(0));
    assert_eq!(count(&s.db, 1, 2), 2);
}

#[test]
fn the_bounds_are_optional_but_a_bad_one_exits_naming_it() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let good = conf(&db, redis.port(), free_port(), 2, 2);
    for (key, line) in [
        ("WorkerQueueSize", "WorkerQueueSize=0\n"),
        ("LinkQueueSize", "LinkQueueSize=many\n"),
        ("LinkHoldSize", "LinkHoldSize=-1\n"),
    ] {
        let (code, out) =
            tt_rs::run_to_exit(BIN, "dbproxyserver.conf", &(good.clone() + line), &[]);
        assert_eq!(code, Some(1), "{key}");
        assert!(out.contains(key), "{key} not named in:\n{out}");
    }
}

#[test]
fn a_drain_stuck_on_a_hung_mysql_is_given_up_and_exits_non_zero_unacknowledged() {
    // The lock is held past the drain's limit: the worker's insert never
    // returns.
    let mut s = sigterm_during_a_stall(b"into a hung MySQL");
    s.p.server.wait_log("exiting: finishing 1 queued");
    assert_eq!(s.p.server.wait_exit(), Some(1), "{}", s.p.server.log());
    assert!(
        s.p.server
            .log()
            .contains("exiting with 1 requests unanswered"),
        "{}",
        s.p.server.log()
    );
    // Nothing but heartbeats came before the link closed: the message
    // was never acknowledged.
    while let Some(pdu) = s.c.try_recv(Duration::from_secs(2)) {
        assert_eq!(pdu.command_id(), cid::OTHER_HEARTBEAT);
    }
    drop(s.lock);
}
