//! The sync center: its two times in the `unread` cache, and the group-chat
//! sync that folds recent group messages into members' recent sessions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mysql::prelude::Queryable;
use std::time::{Duration, Instant};
use tt_proto::IM::BaseDefine::BuddyListCmdID;
use tt_proto::IM::Buddy::{IMAllUserReq, IMAllUserRsp};
use tt_rs::{PduClient, RedisServer, TestDb};

fn now() -> u32 {
    base::tick::unix_time()
}

#[test]
fn group_chats_become_members_recent_sessions() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let chatted = now() - 10;
    let mut unread = redis_db(&redis, DB_UNREAD);
    redis::cmd("SET")
        .arg("last_update_group")
        .arg(chatted - 100)
        .query::<()>(&mut unread)
        .unwrap();
    db.conn()
        .exec_drop(
            "INSERT INTO IMGroup (id, name, creator, type, userCnt, status, version, lastChated, \
             created, updated) VALUES (7, 'g', 1, 1, 3, 0, 1, ?, 1, 1), (8, 'quiet', 1, 1, 1, 0, 1, 5, 1, 1)",
            (chatted,),
        )
        .unwrap();
    db.conn()
        .query_drop(
            "INSERT INTO IMGroupMember (groupId, userId, status, created, updated) VALUES \
             (7, 1, 0, 1, 1), (7, 2, 0, 1, 1), (7, 3, 0, 1, 1), (8, 4, 0, 1, 1)",
        )
        .unwrap();
    db.conn()
        .query_drop(
            "INSERT INTO IMRecentSession (userId, peerId, type, status, created, updated) \
             VALUES (1, 7, 2, 0, 1, 5)",
        )
        .unwrap();
    let _p = start(&db, &redis, 2, 4);
    let deadline = Instant::now() + tt_rs::WAIT;
    loop {
        let sessions: Vec<(u32, u32)> = rows(
            &db,
            "SELECT userId, updated FROM IMRecentSession WHERE peerId = 7 AND type = 2 ORDER BY userId",
        );
        if sessions.len() == 3 && sessions[0].1 == chatted {
            assert_eq!(
                sessions.iter().map(|s| s.0).collect::<Vec<_>>(),
                vec![1, 2, 3]
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sessions never synced: {sessions:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let quiet: Vec<u32> = rows(&db, "SELECT userId FROM IMRecentSession WHERE peerId = 8");
    assert!(
        quiet.is_empty(),
        "a group not chatted in since the last sync is left alone"
    );
    let stored: u32 = get(&mut unread, "last_update_group")
        .unwrap()
        .parse()
        .unwrap();
    assert!(stored >= chatted, "the sync time moves on");
}

#[test]
fn a_stored_total_user_updated_is_honoured_and_set_when_absent() {
    // Absent: set to now at start.
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let before = now();
    let p = start(&db, &redis, 2, 4);
    let mut unread = redis_db(&redis, DB_UNREAD);
    let stored: u32 = get(&mut unread, "total_user_updated")
        .unwrap()
        .parse()
        .unwrap();
    assert!(stored >= before);
    assert_eq!(
        get(&mut unread, "total_user_update").as_deref(),
        Some(stored.to_string().as_str())
    );
    drop(p);

    // Present: an old value means "nothing changed since", so a client that
    // synced after it gets no users even though a row says otherwise (the
    // C++ reads the wrong key and would use "now").
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    add_user(&db, 5, "five", "p", 500);
    let mut unread = redis_db(&redis, DB_UNREAD);
    redis::cmd("SET")
        .arg("total_user_updated")
        .arg(100)
        .query::<()>(&mut unread)
        .unwrap();
    let p = start(&db, &redis, 2, 4);
    let mut c = PduClient::connect(p.port);
    let ask = |c: &mut PduClient, since: u32| {
        let req = IMAllUserReq {
            user_id: 5,
            latest_update_time: since,
            attach_data: None,
        };
        ask::<IMAllUserRsp>(
            c,
            SID_BUDDY,
            BuddyListCmdID::CID_BUDDY_LIST_ALL_USER_REQUEST as u16,
            1,
            &req,
            BuddyListCmdID::CID_BUDDY_LIST_ALL_USER_RESPONSE as u16,
        )
    };
    assert!(ask(&mut c, 200).user_list.is_empty());
    assert_eq!(ask(&mut c, 50).user_list.len(), 1);
}
