//! Messages, unread counters and recent sessions through the real binary:
//! a fake msg_server sends requests; the rows and keys they leave are
//! checked field by field.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::type_complexity)] // rows compared as tuples

mod common;

use common::*;
use mysql::prelude::Queryable;
use std::collections::BTreeSet;
use std::time::Duration;
use tt_proto::IM::BaseDefine::{
    BuddyListCmdID, MessageCmdID, MsgType, SessionStatusType, SessionType,
};
use tt_proto::IM::Buddy::{
    IMRecentContactSessionReq, IMRecentContactSessionRsp, IMRemoveSessionReq, IMRemoveSessionRsp,
};
use tt_proto::IM::Message::{
    IMGetLatestMsgIdReq, IMGetLatestMsgIdRsp, IMGetMsgListRsp, IMMsgDataReadAck,
};
use tt_rs::{PduClient, RedisServer, TestDb};

const SINGLE: SessionType = SessionType::SESSION_TYPE_SINGLE;

fn list(c: &mut PduClient, user: u32, peer: u32, begin: u32, cnt: u32) -> IMGetMsgListRsp {
    msg_list(c, user, SINGLE, peer, begin, cnt)
}

fn latest(c: &mut PduClient, user: u32, peer: u32, t: SessionType) -> u32 {
    let req = IMGetLatestMsgIdReq {
        user_id: user,
        session_type: t,
        session_id: peer,
        attach_data: None,
    };
    let rsp: IMGetLatestMsgIdRsp = ask(
        c,
        SID_MSG,
        MessageCmdID::CID_MSG_GET_LATEST_MSG_ID_REQ as u16,
        9,
        &req,
        MessageCmdID::CID_MSG_GET_LATEST_MSG_ID_RSP as u16,
    );
    assert_eq!((rsp.user_id, rsp.session_id), (user, peer));
    rsp.latest_msg_id
}

fn relation_of(db: &TestDb, small: u32, big: u32) -> u32 {
    let ids: Vec<u32> = db
        .conn()
        .exec(
            "SELECT id FROM IMRelationShip WHERE smallId = ? AND bigId = ? AND status = 0",
            (small, big),
        )
        .unwrap();
    assert_eq!(ids.len(), 1, "one relation for ({small}, {big})");
    ids[0]
}

/// `(msgId, content)` of the pair's stored messages, ordered by `order_by`.
fn stored_texts(db: &TestDb, small: u32, big: u32, order_by: &str) -> Vec<(u32, String)> {
    let table = shard("IMMessage", relation_of(db, small, big));
    rows(
        db,
        &[
            "SELECT msgId, content FROM ",
            &table,
            " ORDER BY ",
            order_by,
        ]
        .concat(),
    )
}

/// The pair's message-id counter and `to`'s unread count from `from`.
fn pair_counters(
    unread_db: &mut redis::Connection,
    rel: u32,
    from: u32,
    to: u32,
) -> (Option<String>, Option<String>) {
    (
        get(unread_db, &format!("msg_id_{rel}")),
        hfield(unread_db, &format!("unread_{to}"), &from.to_string()),
    )
}

#[test]
fn a_text_message_is_stored_counted_listed_and_read() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    add_user(&db, 1, "alice", "pw", 100);
    add_user(&db, 2, "bob", "pw", 100);
    // One worker: a read-ack (no reply) is done before the next request.
    let p = start(&db, &redis, 1, 4);
    let mut c = PduClient::connect(p.port);
    let mut unread_db = redis_db(&redis, DB_UNREAD);

    let m1 = text_msg(1, 2, b"hello", 1_000);
    let r1 = send(&mut c, 11, &m1);
    assert_eq!(r1.msg_id, 1);
    assert_eq!(
        (r1.from_user_id, r1.to_session_id, r1.create_time),
        (1, 2, 1_000)
    );
    assert_eq!(r1.msg_data, b"hello");
    assert_eq!(r1.attach_data, m1.attach_data, "attach data echoed");

    let rel = relation_of(&db, 1, 2);
    let rel_rows: Vec<(u32, u32, u32)> =
        rows(&db, "SELECT smallId, bigId, status FROM IMRelationShip");
    assert_eq!(rel_rows, vec![(1, 2, 0)]);
    let table = shard("IMMessage", rel);
    let stored: Vec<(u32, u32, u32, u32, String, u32, u32, u32, u32)> = rows(
        &db,
        &[
            "SELECT relateId, fromId, toId, msgId, content, status, type, created, updated FROM ",
            &table,
        ]
        .concat(),
    );
    assert_eq!(
        stored,
        vec![(rel, 1, 2, 1, "hello".into(), 0, 1, 1_000, 1_000)]
    );
    let sessions: Vec<(u32, u32, u32, u32)> = rows(
        &db,
        "SELECT userId, peerId, type, status FROM IMRecentSession ORDER BY userId",
    );
    assert_eq!(sessions, vec![(1, 2, 1, 0), (2, 1, 1, 0)]);
    assert_eq!(
        pair_counters(&mut unread_db, rel, 1, 2),
        (Some("1".into()), Some("1".into())),
        "the pair's id counter, 2's unread count from 1"
    );
    assert!(hgetall(&mut unread_db, "unread_1").is_empty());

    let r2 = send(&mut c, 12, &text_msg(1, 2, b"again", 1_001));
    assert_eq!(r2.msg_id, 2);
    let r3 = send(&mut c, 13, &text_msg(2, 1, b"hi alice", 1_002));
    assert_eq!(r3.msg_id, 3, "one counter per pair, both directions");
    assert_eq!(
        hfield(&mut unread_db, "unread_2", "1").as_deref(),
        Some("2")
    );
    assert_eq!(
        hfield(&mut unread_db, "unread_1", "2").as_deref(),
        Some("1")
    );

    // List, newest first, from the newest or from an id down.
    let l = list(&mut c, 2, 1, 0, 10);
    assert_eq!(
        l.msg_list.iter().map(|m| m.msg_id).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    let first = &l.msg_list[2];
    assert_eq!(
        (first.from_session_id, first.create_time, first.msg_type),
        (1, 1_000, MsgType::MSG_TYPE_SINGLE_TEXT)
    );
    assert_eq!(first.msg_data, b"hello");
    let l = list(&mut c, 1, 2, 2, 1);
    assert_eq!(
        l.msg_list.iter().map(|m| m.msg_id).collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(l.msg_id_begin, 2);

    // By id.
    let by_id = msgs_by_id(&mut c, 2, SINGLE, 1, &[1, 3, 99]);
    assert_eq!(
        by_id.msg_list.iter().map(|m| m.msg_id).collect::<Vec<_>>(),
        vec![3, 1]
    );
    assert_eq!(latest(&mut c, 2, 1, SINGLE), 3);
    assert_eq!(latest(&mut c, 2, 9, SINGLE), 0, "no relation, no message");

    // Unread counts with the latest message.
    let u = unread(&mut c, 2);
    assert_eq!(u.total_cnt, 2);
    assert_eq!(u.unreadinfo_list.len(), 1);
    let info = &u.unreadinfo_list[0];
    assert_eq!(
        (info.session_id, info.session_type, info.unread_cnt),
        (1, SINGLE, 2)
    );
    assert_eq!(info.latest_msg_id, 3);
    assert_eq!(info.latest_msg_data, b"hi alice");
    assert_eq!(info.latest_msg_type, MsgType::MSG_TYPE_SINGLE_TEXT);
    assert_eq!(info.latest_msg_from_user_id, 2);

    // Read ack clears the counter (no reply).
    let ack = IMMsgDataReadAck {
        user_id: 2,
        session_id: 1,
        msg_id: 3,
        session_type: SINGLE,
    };
    c.send_msg(SID_MSG, MessageCmdID::CID_MSG_READ_ACK as u16, 15, &ack);
    let u = unread(&mut c, 2);
    assert_eq!(u.total_cnt, 0);
    assert!(u.unreadinfo_list.is_empty());
    assert!(hgetall(&mut unread_db, "unread_2").is_empty());

    // Recent sessions, then removing one.
    let req = IMRecentContactSessionReq {
        user_id: 2,
        latest_update_time: 0,
        attach_data: Some(b"r".to_vec()),
    };
    let rs = ask::<IMRecentContactSessionRsp>(
        &mut c,
        SID_BUDDY,
        BuddyListCmdID::CID_BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST as u16,
        16,
        &req,
        BuddyListCmdID::CID_BUDDY_LIST_RECENT_CONTACT_SESSION_RESPONSE as u16,
    );
    assert_eq!(rs.contact_session_list.len(), 1);
    let s = &rs.contact_session_list[0];
    assert_eq!(
        (s.session_id, s.session_type, s.session_status),
        (1, SINGLE, SessionStatusType::SESSION_STATUS_OK)
    );
    assert_eq!((s.latest_msg_id, s.latest_msg_from_user_id), (3, 2));
    assert_eq!(s.latest_msg_data, b"hi alice");
    assert!(s.updated_time > 0);

    let remove = |c: &mut PduClient| {
        let req = IMRemoveSessionReq {
            user_id: 2,
            session_type: SINGLE,
            session_id: 1,
            attach_data: None,
        };
        ask::<IMRemoveSessionRsp>(
            c,
            SID_BUDDY,
            BuddyListCmdID::CID_BUDDY_LIST_REMOVE_SESSION_REQ as u16,
            17,
            &req,
            BuddyListCmdID::CID_BUDDY_LIST_REMOVE_SESSION_RES as u16,
        )
    };
    assert_eq!(remove(&mut c).result_code, 0);
    let st: Vec<u32> = rows(
        &db,
        "SELECT status FROM IMRecentSession WHERE userId = 2 AND peerId = 1",
    );
    assert_eq!(st, vec![1]);
    assert_eq!(remove(&mut c).result_code, 1, "nothing left to remove");
    // A new message revives the removed session instead of adding a row.
    send(&mut c, 18, &text_msg(1, 2, b"back", 1_003));
    let sessions: Vec<(u32, u32)> = rows(
        &db,
        "SELECT userId, status FROM IMRecentSession ORDER BY userId",
    );
    assert_eq!(sessions, vec![(1, 0), (2, 0)]);
}

#[test]
fn bad_messages_get_the_cpp_answer_and_write_nothing() {
    // One worker: replies come back in request order, so a later request's
    // reply proves an earlier one got none.
    let (db, redis, _p, mut c) = fresh(1, 2);
    let mut unread_db = redis_db(&redis, DB_UNREAD);

    // Empty: no answer.
    send_unanswered(&mut c, 1, &text_msg(1, 2, b"", 5));
    // To oneself: id 0.
    let r = send(&mut c, 2, &text_msg(1, 1, b"me", 5));
    assert_eq!(r.msg_id, 0);
    // Longer than the content column: id 0.
    let long = vec![b'x'; 4097];
    let r = send(&mut c, 3, &text_msg(1, 2, &long, 5));
    assert_eq!(r.msg_id, 0);
    // 4096 characters fit.
    let fits = "é".repeat(4096);
    let r = send(&mut c, 4, &text_msg(1, 2, fits.as_bytes(), 5));
    assert_eq!(r.msg_id, 1);
    // Audio without sound: id 0.
    let r = send(
        &mut c,
        5,
        &msg_data(1, 2, MsgType::MSG_TYPE_SINGLE_AUDIO, &[0, 0, 0, 1], 5),
    );
    assert_eq!(r.msg_id, 0);
    // Unknown group, user 0: no answer; the next answer is the barrier's.
    send_unanswered(&mut c, 6, &group_text(1, 777, b"x", 5));
    let r = send(&mut c, 7, &text_msg(0, 2, b"x", 5));
    assert_eq!(r.msg_id, 0, "user 0 is refused");
    // Nothing but the message that fits was written.
    let rel = relation_of(&db, 1, 2);
    let n: Vec<u32> = rows(
        &db,
        &["SELECT msgId FROM ", &shard("IMMessage", rel)].concat(),
    );
    assert_eq!(n, vec![1], "only the message that fits was stored");
    assert_eq!(
        pair_counters(&mut unread_db, rel, 1, 2),
        (Some("1".into()), Some("1".into())),
        "the pair's id counter, 2's unread count from 1"
    );
    let audio: Vec<u32> = rows(&db, "SELECT id FROM IMAudio");
    assert!(audio.is_empty());
    assert!(c.try_recv(Duration::from_millis(200)).is_none());
}

#[test]
fn a_failed_insert_is_not_acknowledged_and_leaves_no_counter() {
    let (db, redis, _p, mut c) = fresh(2, 4);
    let mut unread_db = redis_db(&redis, DB_UNREAD);
    let r = send(&mut c, 1, &text_msg(3, 4, b"one", 5));
    assert_eq!(r.msg_id, 1);
    let rel = relation_of(&db, 3, 4);
    let table = shard("IMMessage", rel);
    db.conn()
        .query_drop(format!("RENAME TABLE {table} TO {table}_away"))
        .unwrap();
    let r = send(&mut c, 2, &text_msg(3, 4, b"lost", 6));
    assert_eq!(r.msg_id, 0, "not stored: no id for the client");
    assert_eq!(
        hfield(&mut unread_db, "unread_4", "3").as_deref(),
        Some("1"),
        "the counter did not move"
    );
    db.conn()
        .query_drop(format!("RENAME TABLE {table}_away TO {table}"))
        .unwrap();
    let r = send(&mut c, 3, &text_msg(3, 4, b"two", 7));
    assert_eq!(r.msg_id, 3, "the failed message's id stays unused");
    let stored = stored_texts(&db, 3, 4, "id");
    assert_eq!(stored, vec![(1, "one".into()), (3, "two".into())]);
    assert_eq!(
        hfield(&mut unread_db, "unread_4", "3").as_deref(),
        Some("2")
    );
}

#[test]
fn thousand_messages_from_eight_links_get_ids_one_to_n() {
    const LINKS: u32 = 8;
    const PER_LINK: u32 = 125;
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let p = start(&db, &redis, 4, 8);
    let port = p.port;
    let links = (0..LINKS)
        .map(|link| {
            // Even links write 1 -> 2, odd ones 2 -> 1.
            let (from, to) = if link % 2 == 0 { (1, 2) } else { (2, 1) };
            (0..PER_LINK)
                .map(|i| {
                    let text = format!("m{link}-{i}");
                    text_msg(from, to, text.as_bytes(), 50)
                })
                .collect()
        })
        .collect();
    let mut acked = Vec::new();
    for r in send_from_links(port, links).into_iter().flatten() {
        assert_ne!(r.msg_id, 0, "stored");
        acked.push((r.msg_id, String::from_utf8(r.msg_data).unwrap()));
    }
    let n = LINKS * PER_LINK;
    let mut ids: Vec<u32> = acked.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=n).collect::<Vec<_>>(), "no gap, no repeat");

    let stored = stored_texts(&db, 1, 2, "msgId");
    assert_eq!(stored.len(), n as usize);
    let mut acked_sorted = acked.clone();
    acked_sorted.sort();
    assert_eq!(stored, acked_sorted, "each acked id holds its own text");
    let sessions: Vec<(u32, u32)> = rows(
        &db,
        "SELECT userId, peerId FROM IMRecentSession ORDER BY userId",
    );
    assert_eq!(
        sessions,
        vec![(1, 2), (2, 1)],
        "one session each, no duplicates"
    );

    let mut c = PduClient::connect(port);
    let all = list(&mut c, 1, 2, 0, n);
    assert_eq!(
        all.msg_list.iter().map(|m| m.msg_id).collect::<Vec<_>>(),
        (1..=n).rev().collect::<Vec<_>>(),
        "listed newest first"
    );
    let page = list(&mut c, 2, 1, 500, 100);
    assert_eq!(
        page.msg_list.iter().map(|m| m.msg_id).collect::<Vec<_>>(),
        (401..=500).rev().collect::<Vec<_>>()
    );
    let mut unread_db = redis_db(&redis, DB_UNREAD);
    let to2: u32 = hgetall(&mut unread_db, "unread_2")["1"].parse().unwrap();
    let to1: u32 = hgetall(&mut unread_db, "unread_1")["2"].parse().unwrap();
    assert_eq!((to2, to1), (n / 2, n / 2));
    let distinct: BTreeSet<u32> = ids.into_iter().collect();
    assert_eq!(distinct.len(), n as usize);
}

#[test]
fn audio_goes_to_msfs_and_comes_back() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let msfs = FakeMsfs::start();
    let port = tt_rs::free_port();
    let p = start_with(
        tt_rs::db_proxy_conf(&db, redis.port(), port, 2, 4, &msfs.site()),
        port,
    );
    let mut c = PduClient::connect(p.port);
    let mut body = 7u32.to_be_bytes().to_vec();
    body.extend_from_slice(b"OGG-sound-bytes");
    let r = send(
        &mut c,
        1,
        &msg_data(5, 6, MsgType::MSG_TYPE_SINGLE_AUDIO, &body, 77),
    );
    assert_eq!(r.msg_id, 1);
    assert_eq!(r.msg_data, body, "the answer echoes the message");
    let audio: Vec<(u32, u32, u32, String, u32, u32, u32)> = rows(
        &db,
        "SELECT id, fromId, toId, path, size, duration, created FROM IMAudio",
    );
    assert_eq!(audio.len(), 1);
    let (audio_id, from, to, path, size, duration, created) = audio[0].clone();
    assert_eq!((from, to, size, duration, created), (5, 6, 15, 7, 77));
    assert!(path.starts_with(&format!("http://127.0.0.1:{}/g0/", msfs.port)));
    let rel = relation_of(&db, 5, 6);
    let content: Vec<(String, u32)> = rows(
        &db,
        &["SELECT content, type FROM ", &shard("IMMessage", rel)].concat(),
    );
    assert_eq!(content, vec![(audio_id.to_string(), 2)]);

    let l = list(&mut c, 6, 5, 0, 5);
    assert_eq!(l.msg_list.len(), 1);
    assert_eq!(l.msg_list[0].msg_data, body, "duration and sound rebuilt");
    let u = unread(&mut c, 6);
    let expected = base::aes::Aes::new(AES_KEY.as_bytes())
        .unwrap()
        .encrypt("[语音]".as_bytes())
        .unwrap();
    assert_eq!(u.unreadinfo_list[0].latest_msg_data, expected.as_bytes());
    assert_eq!(
        u.unreadinfo_list[0].latest_msg_type,
        MsgType::MSG_TYPE_SINGLE_AUDIO
    );
}

#[test]
fn audio_goes_through_a_real_msfs() {
    // The same path as above, against the msfs binary: db_proxy uploads
    // the sound with upload_byte_file and reads it back for the list.
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let msfs_port = tt_rs::free_port();
    let msfs_conf = format!(
        "ListenIP=127.0.0.1\nListenPort={msfs_port}\nBaseDir=./tmp\nFileCnt=0\n\
         FilesPerDir=30000\nGetThreadCount=2\nPostThreadCount=1\n"
    );
    let mut msfs = tt_rs::ServerProcess::start(
        &tt_rs::built_binary("msfs").to_string_lossy(),
        "msfs.conf",
        &msfs_conf,
    );
    msfs.wait_listening(msfs_port);
    let site = format!("http://127.0.0.1:{msfs_port}/");
    let port = tt_rs::free_port();
    let p = start_with(
        tt_rs::db_proxy_conf(&db, redis.port(), port, 2, 4, &site),
        port,
    );
    let mut c = PduClient::connect(p.port);
    let mut body = 3u32.to_be_bytes().to_vec();
    body.extend_from_slice(b"AMR-sound-bytes-from-a-phone");
    let r = send(
        &mut c,
        1,
        &msg_data(5, 6, MsgType::MSG_TYPE_SINGLE_AUDIO, &body, 77),
    );
    assert_eq!(r.msg_id, 1);
    let paths: Vec<String> = rows(&db, "SELECT path FROM IMAudio");
    assert_eq!(paths.len(), 1);
    let prefix = format!("http://127.0.0.1:{msfs_port}/g0/000/000/");
    let name = paths[0].strip_prefix(&prefix).expect("an msfs URL");
    assert!(name.ends_with(".audio"), "{name}");
    let stored = std::fs::read(msfs.dir().join("tmp/000/000").join(name)).unwrap();
    assert_eq!(stored, b"AMR-sound-bytes-from-a-phone");
    let l = list(&mut c, 6, 5, 0, 5);
    assert_eq!(l.msg_list.len(), 1);
    assert_eq!(
        l.msg_list[0].msg_data, body,
        "the sound comes back from msfs"
    );
}

#[test]
fn redis_down_means_id_zero_and_no_row() {
    let (db, mut redis, _p, mut c) = fresh(2, 4);
    let r = send(&mut c, 1, &text_msg(1, 2, b"before", 5));
    assert_eq!(r.msg_id, 1);
    redis.stop();
    let r = send(&mut c, 2, &text_msg(1, 2, b"during", 6));
    assert_eq!(r.msg_id, 0, "no counter, no row, no id");
    redis.restart();
    // The pool retries a lost connection at most every 4 s: retry until stored.
    let mut stored = 0;
    for seq in 3..200u16 {
        let r = send(&mut c, seq, &text_msg(1, 2, b"after", 7));
        if r.msg_id != 0 {
            stored = r.msg_id;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The restarted Redis lost the counter: it continues from the table.
    assert_eq!(stored, 2);
    let texts = stored_texts(&db, 1, 2, "id");
    assert_eq!(texts, vec![(1, "before".into()), (2, "after".into())]);
}

#[test]
fn a_session_removed_elsewhere_is_revived_by_a_later_message() {
    let (db, _redis, _p, mut c) = fresh(1, 4);
    send(&mut c, 1, &text_msg(1, 2, b"a", 5));
    // Another db_proxy_server (or an admin) removes bob's session.
    db.conn()
        .query_drop("UPDATE IMRecentSession SET status = 1 WHERE userId = 2")
        .unwrap();
    // Sessions are touched once per second per pair: wait for the next second.
    let second = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let start_second = second();
    for _ in 0..40 {
        if second() > start_second {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    send(&mut c, 2, &text_msg(1, 2, b"b", 6));
    let st: Vec<u32> = rows(&db, "SELECT status FROM IMRecentSession WHERE userId = 2");
    assert_eq!(st, vec![0]);
}
