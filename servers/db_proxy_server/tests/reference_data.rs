//! A database made from the reference `ttopen.sql`, with rows written the
//! way the C++ servers (or demo SQL) write them and an empty Redis: our
//! db_proxy_server serves them and continues their message ids.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mysql::prelude::Queryable;
use tt_proto::IM::BaseDefine::{BuddyListCmdID, SessionType};
use tt_proto::IM::Buddy::{IMRecentContactSessionReq, IMRecentContactSessionRsp};
use tt_rs::{PduClient, RedisServer};

fn list(c: &mut PduClient, user: u32, peer: u32, t: SessionType) -> Vec<(u32, u32, Vec<u8>)> {
    let rsp = msg_list(c, user, t, peer, 0, 20);
    rsp.msg_list
        .into_iter()
        .map(|m| (m.msg_id, m.from_session_id, m.msg_data))
        .collect()
}

#[test]
fn rows_written_by_the_cpp_are_served_and_continued() {
    let Some(db) = reference_db() else { return };
    let mut conn = db.conn();
    conn.query_drop("DELETE FROM IMUser").unwrap();
    add_user(&db, 1, "ann", "pw", 10);
    add_user(&db, 2, "ben", "pw", 10);
    conn.query_drop(
        "INSERT INTO IMRelationShip (id, smallId, bigId, status, created, updated) \
         VALUES (9, 1, 2, 0, 100, 100)",
    )
    .unwrap();
    conn.query_drop(
        "INSERT INTO IMMessage_1 (relateId, fromId, toId, msgId, content, status, type, \
         created, updated) VALUES (9, 1, 2, 1, 'one', 0, 1, 100, 100), \
         (9, 2, 1, 2, 'two', 0, 1, 101, 101), (9, 1, 2, 3, 'three', 0, 1, 102, 102)",
    )
    .unwrap();
    conn.query_drop(
        "INSERT INTO IMRecentSession (userId, peerId, type, status, created, updated) VALUES \
         (1, 2, 1, 0, 100, 102), (2, 1, 1, 0, 100, 102), (1, 20, 2, 0, 100, 103)",
    )
    .unwrap();
    conn.query_drop(
        "INSERT INTO IMGroup (id, name, avatar, creator, type, userCnt, status, version, \
         lastChated, updated, created) VALUES (20, 'ref group', '', 1, 1, 2, 0, 2, 103, 50, 50)",
    )
    .unwrap();
    conn.query_drop(
        "INSERT INTO IMGroupMember (groupId, userId, status, created, updated) VALUES \
         (20, 1, 0, 50, 50), (20, 2, 0, 50, 50)",
    )
    .unwrap();
    conn.query_drop(
        "INSERT INTO IMGroupMessage_4 (groupId, userId, msgId, content, type, status, \
         updated, created) VALUES (20, 1, 1, 'g1', 17, 0, 100, 100), \
         (20, 2, 2, 'g2', 17, 0, 103, 103)",
    )
    .unwrap();

    let redis = RedisServer::start();
    let p = start(&db, &redis, 1, 4);
    let mut c = PduClient::connect(p.port);

    assert_eq!(
        list(&mut c, 2, 1, SessionType::SESSION_TYPE_SINGLE),
        vec![
            (3, 1, b"three".to_vec()),
            (2, 2, b"two".to_vec()),
            (1, 1, b"one".to_vec())
        ]
    );
    assert_eq!(
        list(&mut c, 1, 20, SessionType::SESSION_TYPE_GROUP),
        vec![(2, 2, b"g2".to_vec()), (1, 1, b"g1".to_vec())]
    );

    let req = IMRecentContactSessionReq {
        user_id: 1,
        latest_update_time: 0,
        attach_data: None,
    };
    let rs = ask::<IMRecentContactSessionRsp>(
        &mut c,
        SID_BUDDY,
        BuddyListCmdID::CID_BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST as u16,
        2,
        &req,
        BuddyListCmdID::CID_BUDDY_LIST_RECENT_CONTACT_SESSION_RESPONSE as u16,
    );
    let sessions: Vec<(u32, SessionType, u32, u32, Vec<u8>)> = rs
        .contact_session_list
        .into_iter()
        .map(|s| {
            (
                s.session_id,
                s.session_type,
                s.updated_time,
                s.latest_msg_id,
                s.latest_msg_data,
            )
        })
        .collect();
    assert_eq!(
        sessions,
        vec![
            (20, SessionType::SESSION_TYPE_GROUP, 103, 2, b"g2".to_vec()),
            (
                2,
                SessionType::SESSION_TYPE_SINGLE,
                102,
                3,
                b"three".to_vec()
            )
        ]
    );

    let groups = normal_list(&mut c, 2);
    assert_eq!(groups, vec![(20, 2)]);
    let gi = group_info(&mut c, 2, &groups);
    assert!(gi.group_info_list.is_empty(), "the client has version 2");
    let gi = group_info(&mut c, 2, &[(20, 0)]);
    assert_eq!(gi.group_info_list[0].group_name, "ref group");
    assert_eq!(gi.group_info_list[0].group_member_list, vec![1, 2]);

    // New messages continue the stored ids although Redis had no counter.
    let r = send(&mut c, 6, &text_msg(1, 2, b"four", 200));
    assert_eq!(r.msg_id, 4);
    let r = send(&mut c, 7, &group_text(2, 20, b"g3", 200));
    assert_eq!(r.msg_id, 3);
    let stored: Vec<(u32, String)> = db
        .conn()
        .query("SELECT msgId, content FROM IMMessage_1 ORDER BY msgId")
        .unwrap();
    assert_eq!(stored.last(), Some(&(4, "four".to_string())));
    let mut unread_db = redis_db(&redis, DB_UNREAD);
    assert_eq!(get(&mut unread_db, "msg_id_9").as_deref(), Some("4"));
    assert_eq!(get(&mut unread_db, "group_msg_id_20").as_deref(), Some("3"));
}
