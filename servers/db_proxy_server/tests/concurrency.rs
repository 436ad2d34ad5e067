//! db_proxy under concurrent member changes, a member hash rebuilt with
//! one cache connection, and a group message whose row cannot be written.

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use common::*;
use mysql::prelude::Queryable;
use tt_proto::IM::BaseDefine::{GroupCmdID, GroupType, SessionType};
use tt_proto::IM::Group::{IMGroupCreateReq, IMGroupCreateRsp};
use tt_proto::IM::Message::IMMsgData;

fn create(c: &mut PduClient, user: u32, members: &[u32]) -> u32 {
    let req = IMGroupCreateReq {
        user_id: user,
        group_type: GroupType::GROUP_TYPE_NORMAL,
        group_name: "g".into(),
        group_avatar: "".into(),
        member_id_list: members.to_vec(),
        attach_data: None,
    };
    let rsp: IMGroupCreateRsp = ask(
        c,
        SID_GROUP,
        GroupCmdID::CID_GROUP_CREATE_REQUEST as u16,
        1,
        &req,
        GroupCmdID::CID_GROUP_CREATE_RESPONSE as u16,
    );
    rsp.group_id.unwrap()
}
use tt_rs::{PduClient, RedisServer, TestDb};

/// A failed group insert gives back both the group's count and the
/// sender's read count, so the sender's next unread message still counts.
#[test]
fn a_failed_group_store_gives_back_the_senders_read_count_too() {
    let (db, _redis, _p, mut c) = fresh(1, 2);
    let g = create(&mut c, 1, &[1, 2, 3]);
    let now = unix_now();
    let ok: IMMsgData = send(&mut c, 2, &group_text(2, g, b"first", now));
    assert!(ok.msg_id > 0);
    let table = shard("IMGroupMessage", g);
    let mut conn = db.conn();
    conn.query_drop(format!("RENAME TABLE {table} TO {table}_x"))
        .unwrap();
    let failed = send(&mut c, 3, &group_text(2, g, b"lost", now));
    assert_eq!(failed.msg_id, 0, "insert failed: id 0");
    conn.query_drop(format!("RENAME TABLE {table}_x TO {table}"))
        .unwrap();
    let ok = send(&mut c, 4, &group_text(3, g, b"from three", now));
    assert!(ok.msg_id > 0);
    let u = unread(&mut c, 2);
    let cnt: u32 = u
        .unreadinfo_list
        .iter()
        .filter(|i| i.session_type == SessionType::SESSION_TYPE_GROUP && i.session_id == g)
        .map(|i| i.unread_cnt)
        .sum();
    assert_eq!(cnt, 1, "user 2 has one unread message (from user 3)");
}

/// A group loaded by SQL (no member hash yet) served with one connection
/// per pool: rebuilding the hash must not wait for a second connection.
#[test]
fn filling_a_member_hash_with_one_cache_connection_does_not_deadlock() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    tt_rs::add_group(&db, 12, "demo", 5, 10, &[(1, 0), (2, 0)]);
    let p = start(&db, &redis, 1, 1);
    let mut c = PduClient::connect(p.port);
    // Answered at all (a wait for a second connection ends in no reply).
    let i = group_info(&mut c, 1, &[(12, 0)]);
    assert_eq!(i.group_info_list.len(), 1);
}

/// Two concurrent adds of the same user to each of many groups: one member
/// row each (IMGroupMember has no unique key, so the changes of a group must
/// run one after another), and every request answered (no deadlock).
#[test]
fn concurrent_adds_of_one_user_make_one_member_row_and_all_answer() {
    use tt_proto::IM::BaseDefine::GroupModifyType;
    use tt_proto::IM::Group::{IMGroupChangeMemberReq, IMGroupChangeMemberRsp};
    let (db, _redis, p, mut c) = fresh(8, 8);
    let mut links: Vec<PduClient> = (0..2).map(|_| PduClient::connect(p.port)).collect();
    let mut groups = Vec::new();
    let mut unanswered = Vec::new();
    for _ in 0..30 {
        groups.push(create(&mut c, 1, &[1, 2]));
    }
    for &g in &groups {
        let req = IMGroupChangeMemberReq {
            user_id: 1,
            change_type: GroupModifyType::GROUP_MODIFY_TYPE_ADD,
            group_id: g,
            member_id_list: vec![9],
            attach_data: None,
        };
        for l in links.iter_mut() {
            l.send_msg(
                SID_GROUP,
                GroupCmdID::CID_GROUP_CHANGE_MEMBER_REQUEST as u16,
                5,
                &req,
            );
        }
        for l in links.iter_mut() {
            match l.try_recv(std::time::Duration::from_secs(3)) {
                Some(pdu) => {
                    let _ = pdu.msg::<IMGroupChangeMemberRsp>();
                }
                None => unanswered.push(g),
            }
        }
    }
    let dup: Vec<(u32, u32)> = rows(
        &db,
        "SELECT groupId, COUNT(*) FROM IMGroupMember WHERE userId = 9 \
         GROUP BY groupId HAVING COUNT(*) > 1",
    );
    assert!(
        dup.is_empty() && unanswered.is_empty(),
        "duplicate member rows: {dup:?}; change requests never answered (groups): {unanswered:?}"
    );
    let _ = normal_list(&mut c, 9);
}
