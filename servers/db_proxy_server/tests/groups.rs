//! Groups, group messages, group unread counters and push shields through
//! the real binary, checked against the rows and keys they leave.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::type_complexity)] // rows compared as tuples

mod common;

use common::*;
use std::time::Duration;
use tt_proto::IM::BaseDefine::{
    GroupCmdID, GroupModifyType, GroupType, MessageCmdID, OtherCmdID, SessionType,
};
use tt_proto::IM::Group::{
    IMGroupChangeMemberReq, IMGroupChangeMemberRsp, IMGroupCreateReq, IMGroupCreateRsp,
    IMGroupShieldReq, IMGroupShieldRsp,
};
use tt_proto::IM::Message::IMMsgDataReadAck;
use tt_proto::IM::Server::{IMGroupGetShieldReq, IMGroupGetShieldRsp};
use tt_rs::{PduClient, RedisServer, TestDb};

const GROUP: SessionType = SessionType::SESSION_TYPE_GROUP;

fn create(
    c: &mut PduClient,
    user: u32,
    name: &str,
    t: GroupType,
    members: &[u32],
) -> IMGroupCreateRsp {
    let req = IMGroupCreateReq {
        user_id: user,
        group_type: t,
        group_name: name.into(),
        group_avatar: "http://a/g.png".into(),
        member_id_list: members.to_vec(),
        attach_data: Some(b"c".to_vec()),
    };
    let rsp = ask::<IMGroupCreateRsp>(
        c,
        SID_GROUP,
        GroupCmdID::CID_GROUP_CREATE_REQUEST as u16,
        1,
        &req,
        GroupCmdID::CID_GROUP_CREATE_RESPONSE as u16,
    );
    assert_eq!(rsp.attach_data.as_deref(), Some(&b"c"[..]));
    rsp
}

fn change(
    c: &mut PduClient,
    user: u32,
    group: u32,
    t: GroupModifyType,
    members: &[u32],
) -> IMGroupChangeMemberRsp {
    let req = IMGroupChangeMemberReq {
        user_id: user,
        change_type: t,
        group_id: group,
        member_id_list: members.to_vec(),
        attach_data: None,
    };
    ask::<IMGroupChangeMemberRsp>(
        c,
        SID_GROUP,
        GroupCmdID::CID_GROUP_CHANGE_MEMBER_REQUEST as u16,
        2,
        &req,
        GroupCmdID::CID_GROUP_CHANGE_MEMBER_RESPONSE as u16,
    )
}

fn members_in_cache(redis: &RedisServer, group: u32) -> Vec<u32> {
    let mut m: Vec<u32> = hgetall(
        &mut redis_db(redis, DB_GROUP_MEMBER),
        &format!("group_member_{group}"),
    )
    .keys()
    .map(|k| k.parse().unwrap())
    .collect();
    m.sort_unstable();
    m
}

#[test]
fn create_then_change_members_then_list() {
    let (db, redis, _p, mut c) = fresh(1, 4);

    let r = create(
        &mut c,
        1,
        "team",
        GroupType::GROUP_TYPE_NORMAL,
        &[3, 1, 2, 3],
    );
    assert_eq!(r.result_code, 0);
    let g = r.group_id.expect("group id");
    assert_eq!(r.group_name, "team");
    assert_eq!(r.user_id_list, vec![1, 2, 3], "the member set, sorted");
    let row: Vec<(String, String, u32, u32, u32, u32, u32, u32)> = rows(
        &db,
        "SELECT name, avatar, creator, type, userCnt, status, version, lastChated FROM IMGroup",
    );
    assert_eq!(
        row,
        vec![("team".into(), "http://a/g.png".into(), 1, 1, 3, 0, 1, 0)]
    );
    let members: Vec<(u32, u32, u32)> = rows(
        &db,
        "SELECT groupId, userId, status FROM IMGroupMember ORDER BY userId",
    );
    assert_eq!(members, vec![(g, 1, 0), (g, 2, 0), (g, 3, 0)]);
    assert_eq!(members_in_cache(&redis, g), vec![1, 2, 3]);
    assert_eq!(
        get(
            &mut redis_db(&redis, DB_UNREAD),
            &format!("group_msg_id_{g}")
        )
        .as_deref(),
        Some("0")
    );

    // Refused creations: no name, no member.
    assert_eq!(
        create(&mut c, 1, "", GroupType::GROUP_TYPE_NORMAL, &[1]).result_code,
        1
    );
    let empty = create(&mut c, 1, "x", GroupType::GROUP_TYPE_NORMAL, &[]);
    assert_eq!((empty.result_code, empty.group_id), (1, None));

    // Add two, one already in: only the new ones change.
    let r = change(
        &mut c,
        1,
        g,
        GroupModifyType::GROUP_MODIFY_TYPE_ADD,
        &[2, 4, 5],
    );
    assert_eq!(r.result_code, 0);
    assert_eq!(r.chg_user_id_list, vec![4, 5]);
    assert_eq!(r.cur_user_id_list, vec![1, 2, 3, 4, 5]);
    assert_eq!(members_in_cache(&redis, g), vec![1, 2, 3, 4, 5]);
    // Remove one.
    let r = change(&mut c, 1, g, GroupModifyType::GROUP_MODIFY_TYPE_DEL, &[2]);
    assert_eq!(r.result_code, 0);
    assert_eq!(r.chg_user_id_list, vec![2]);
    assert_eq!(r.cur_user_id_list, vec![1, 3, 4, 5]);
    let members: Vec<(u32, u32)> = rows(
        &db,
        "SELECT userId, status FROM IMGroupMember ORDER BY userId",
    );
    assert_eq!(members, vec![(1, 0), (2, 1), (3, 0), (4, 0), (5, 0)]);
    let row: Vec<(u32, u32)> = rows(&db, "SELECT userCnt, version FROM IMGroup");
    assert_eq!(row, vec![(4, 3)]);
    assert_eq!(members_in_cache(&redis, g), vec![1, 3, 4, 5]);
    // Re-adding a removed member revives the row.
    let r = change(&mut c, 1, g, GroupModifyType::GROUP_MODIFY_TYPE_ADD, &[2]);
    assert_eq!((r.result_code, r.chg_user_id_list), (0, vec![2]));
    let n: Vec<u32> = rows(&db, "SELECT COUNT(*) FROM IMGroupMember WHERE userId = 2");
    assert_eq!(n, vec![1]);
    // Refusals: not the creator; nobody new to add.
    let r = change(&mut c, 3, g, GroupModifyType::GROUP_MODIFY_TYPE_DEL, &[4]);
    assert_eq!(r.result_code, 1);
    assert!(r.cur_user_id_list.is_empty());
    assert_eq!(
        change(
            &mut c,
            1,
            g,
            GroupModifyType::GROUP_MODIFY_TYPE_ADD,
            &[1, 3]
        )
        .result_code,
        1
    );
    // Unknown group: result 1 (the C++ sends no answer), nothing listed.
    let unknown = change(
        &mut c,
        0,
        9999,
        GroupModifyType::GROUP_MODIFY_TYPE_ADD,
        &[1],
    );
    assert_eq!(
        (unknown.result_code, unknown.group_id),
        (1, 9999),
        "an unknown group is answered"
    );
    assert!(unknown.cur_user_id_list.is_empty() && unknown.chg_user_id_list.is_empty());

    // Lists and versions.
    let version = 4;
    assert_eq!(normal_list(&mut c, 4), vec![(g, version)]);
    assert_eq!(normal_list(&mut c, 99), vec![]);
    let i = group_info(&mut c, 4, &[(g, 0), (9999, 0)]);
    assert_eq!(i.group_info_list.len(), 1);
    let gi = &i.group_info_list[0];
    assert_eq!(
        (gi.group_id, gi.version, gi.group_creator_id, gi.group_type),
        (g, version, 1, GroupType::GROUP_TYPE_NORMAL)
    );
    assert_eq!(
        (gi.group_name.as_str(), gi.group_avatar.as_str()),
        ("team", "http://a/g.png")
    );
    assert_eq!(gi.group_member_list, vec![1, 2, 3, 4, 5]);
    assert!(group_info(&mut c, 4, &[(g, version)])
        .group_info_list
        .is_empty());

    // A temporary group: anyone adds, only the creator removes.
    let t = create(&mut c, 7, "tmp", GroupType::GROUP_TYPE_TMP, &[7, 8]);
    let tg = t.group_id.unwrap();
    assert_eq!(
        change(&mut c, 8, tg, GroupModifyType::GROUP_MODIFY_TYPE_ADD, &[9]).result_code,
        0
    );
    assert_eq!(
        change(&mut c, 8, tg, GroupModifyType::GROUP_MODIFY_TYPE_DEL, &[9]).result_code,
        1
    );
    assert_eq!(
        normal_list(&mut c, 8),
        vec![],
        "temporary groups are not listed"
    );
    assert!(c.try_recv(Duration::from_millis(200)).is_none());
}

#[test]
fn shields_are_set_by_members_and_read_per_user() {
    let (_db, redis, _p, mut c) = fresh(1, 4);
    let g = create(&mut c, 1, "s", GroupType::GROUP_TYPE_NORMAL, &[1, 2, 3])
        .group_id
        .unwrap();
    let shield = |c: &mut PduClient, user: u32, status: u32| {
        let req = IMGroupShieldReq {
            user_id: user,
            group_id: g,
            shield_status: status,
            attach_data: None,
        };
        ask::<IMGroupShieldRsp>(
            c,
            SID_GROUP,
            GroupCmdID::CID_GROUP_SHIELD_GROUP_REQUEST as u16,
            1,
            &req,
            GroupCmdID::CID_GROUP_SHIELD_GROUP_RESPONSE as u16,
        )
    };
    assert_eq!(shield(&mut c, 3, 1).result_code, 0);
    assert_eq!(shield(&mut c, 42, 1).result_code, 1, "not a member");
    let set = hgetall(
        &mut redis_db(&redis, DB_GROUP_SET),
        &format!("group_set_{g}"),
    );
    assert_eq!(set.len(), 1);
    assert_eq!(set.get("3_1").map(String::as_str), Some("1"));
    let req = IMGroupGetShieldReq {
        group_id: g,
        user_id: vec![3, 2],
        attach_data: Some(b"s".to_vec()),
    };
    let rsp = ask::<IMGroupGetShieldRsp>(
        &mut c,
        SID_OTHER,
        OtherCmdID::CID_OTHER_GET_SHIELD_REQ as u16,
        2,
        &req,
        OtherCmdID::CID_OTHER_GET_SHIELD_RSP as u16,
    );
    let got: Vec<(u32, u32, u32)> = rsp
        .shield_status_list
        .iter()
        .map(|s| (s.user_id, s.group_id, s.shield_status))
        .collect();
    assert_eq!(got, vec![(3, g, 1), (2, g, 0)]);
    assert_eq!(rsp.attach_data.as_deref(), Some(&b"s"[..]));
}

#[test]
fn a_message_to_a_group_of_fifty_raises_forty_nine_counters() {
    // One worker: a read-ack (no reply) is done before the next request.
    let (db, redis, _p, mut c) = fresh(1, 4);
    let members: Vec<u32> = (1..=50).collect();
    let g = create(&mut c, 1, "fifty", GroupType::GROUP_TYPE_NORMAL, &members)
        .group_id
        .unwrap();

    // As a msg_server stamps them: now (a member sees messages sent since joining).
    let now = unix_now();
    let r = send(&mut c, 10, &group_text(1, g, b"hi all", now));
    assert_eq!(r.msg_id, 1);
    let table = shard("IMGroupMessage", g);
    let stored: Vec<(u32, u32, u32, String, u32, u32, u32, u32)> = rows(
        &db,
        &[
            "SELECT groupId, userId, msgId, content, type, status, updated, created FROM ",
            &table,
        ]
        .concat(),
    );
    assert_eq!(stored, vec![(g, 1, 1, "hi all".into(), 17, 0, now, now)]);
    let last_chated: Vec<u32> = rows(&db, "SELECT lastChated FROM IMGroup");
    assert!(last_chated[0] > 0);
    let sessions: Vec<(u32, u32, u32)> = rows(
        &db,
        "SELECT userId, peerId, type FROM IMRecentSession WHERE status = 0",
    );
    assert_eq!(sessions, vec![(1, g, 2)], "the sender's group session");
    let mut unread_db = redis_db(&redis, DB_UNREAD);
    assert_eq!(
        hfield(&mut unread_db, &format!("{g}_im_group_msg"), "count").as_deref(),
        Some("1")
    );
    assert_eq!(
        hfield(&mut unread_db, &format!("1_{g}_im_user_group"), "count").as_deref(),
        Some("1"),
        "the sender has read his own message"
    );
    assert_eq!(
        get(&mut unread_db, &format!("group_msg_id_{g}")).as_deref(),
        Some("1")
    );

    let mut raised = 0;
    for user in 1..=50 {
        let u = unread(&mut c, user);
        if user == 1 {
            assert_eq!(u.total_cnt, 0);
            assert!(u.unreadinfo_list.is_empty());
            continue;
        }
        assert_eq!(u.total_cnt, 1, "user {user}");
        let info = &u.unreadinfo_list[0];
        assert_eq!(
            (info.session_id, info.session_type, info.unread_cnt),
            (g, GROUP, 1)
        );
        assert_eq!((info.latest_msg_id, info.latest_msg_from_user_id), (1, 1));
        assert_eq!(info.latest_msg_data, b"hi all");
        raised += 1;
    }
    assert_eq!(raised, 49);

    // Read ack by user 2 clears user 2 only.
    let ack = IMMsgDataReadAck {
        user_id: 2,
        session_id: g,
        msg_id: 1,
        session_type: GROUP,
    };
    c.send_msg(SID_MSG, MessageCmdID::CID_MSG_READ_ACK as u16, 11, &ack);
    assert_eq!(unread(&mut c, 2).total_cnt, 0);
    assert_eq!(unread(&mut c, 3).total_cnt, 1);
    assert_eq!(
        hfield(&mut unread_db, &format!("2_{g}_im_user_group"), "count").as_deref(),
        Some("1")
    );

    // Listing and by-id for a member; nothing for an outsider.
    let l = msg_list(&mut c, 3, GROUP, g, 0, 10);
    assert_eq!(l.msg_list.len(), 1);
    assert_eq!(
        (l.msg_list[0].msg_id, l.msg_list[0].from_session_id),
        (1, 1)
    );
    let b = msgs_by_id(&mut c, 3, GROUP, g, &[1, 99]);
    assert_eq!(
        b.msg_list
            .iter()
            .map(|m| (m.msg_id, m.from_session_id))
            .collect::<Vec<_>>(),
        vec![(1, 1)],
        "a member gets the listed message there is"
    );
    let b = msgs_by_id(&mut c, 77, GROUP, g, &[1]);
    assert!(b.msg_list.is_empty(), "not a member");

    // A non-member's message gets no answer; the next answer is a member's.
    send_unanswered(&mut c, 14, &group_text(77, g, b"intruder", now));
    let r = send(&mut c, 15, &group_text(5, g, b"second", now));
    assert_eq!(r.msg_id, 2);
    assert_eq!(unread(&mut c, 2).total_cnt, 1);
    assert_eq!(unread(&mut c, 3).total_cnt, 2);
    assert_eq!(unread(&mut c, 5).total_cnt, 0, "sending reads all");
}

#[test]
fn groups_written_by_sql_are_served_after_filling_the_cache() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    tt_rs::add_group(&db, 12, "demo", 5, 10, &[(1, 0), (2, 0), (3, 1)]);
    let p = start(&db, &redis, 1, 4);
    let mut c = PduClient::connect(p.port);
    assert!(members_in_cache(&redis, 12).is_empty());
    let r = send(&mut c, 1, &group_text(2, 12, b"from sql", 20));
    assert_eq!(r.msg_id, 1, "the C++ would answer nothing here");
    assert_eq!(members_in_cache(&redis, 12), vec![1, 2]);
    let joined = hgetall(&mut redis_db(&redis, DB_GROUP_MEMBER), "group_member_12");
    assert_eq!(joined.get("1").map(String::as_str), Some("10"));
    let i = group_info(&mut c, 1, &[(12, 0)]);
    assert_eq!(i.group_info_list[0].group_member_list, vec![1, 2]);
    assert_eq!(i.group_info_list[0].version, 5);
    // The removed member is not in.
    send_unanswered(&mut c, 2, &group_text(3, 12, b"x", 21));
    assert_eq!(normal_list(&mut c, 1), vec![(12, 5)]);
}

/// A group info request naming groups with and without a member hash,
/// unknown groups and repeats: each known group once (its cache filled),
/// unknown ones left out, answered in one reply.
#[test]
fn group_info_for_many_groups_known_and_unknown_answers_each_known_once() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    tt_rs::add_group(&db, 12, "by sql", 5, 10, &[(1, 0), (2, 0)]);
    tt_rs::add_group(&db, 13, "by sql too", 2, 10, &[(1, 0)]);
    let p = start(&db, &redis, 1, 2);
    let mut c = PduClient::connect(p.port);
    // Group 12 gets its hash from a first request; 13 has none yet.
    assert_eq!(group_info(&mut c, 1, &[(12, 0)]).group_info_list.len(), 1);
    assert!(members_in_cache(&redis, 13).is_empty());
    let mut asked: Vec<(u32, u32)> = (1000..4000).map(|g| (g, 0)).collect();
    asked.extend([(12, 0), (13, 0), (12, 0), (13, 0)]);
    let i = group_info(&mut c, 1, &asked);
    let ids: Vec<u32> = i.group_info_list.iter().map(|g| g.group_id).collect();
    assert_eq!(ids, vec![12, 13]);
    assert_eq!(members_in_cache(&redis, 13), vec![1]);
}

#[test]
fn group_ids_from_eight_concurrent_links_have_no_gap() {
    const LINKS: u32 = 8;
    const PER_LINK: u32 = 50;
    let (db, redis, p, mut c) = fresh(4, 8);
    let g = create(
        &mut c,
        1,
        "busy",
        GroupType::GROUP_TYPE_NORMAL,
        &(1..=LINKS).collect::<Vec<_>>(),
    )
    .group_id
    .unwrap();
    let links = (1..=LINKS)
        .map(|user| {
            (0..PER_LINK)
                .map(|_| group_text(user, g, b"x", 9))
                .collect()
        })
        .collect();
    let mut ids: Vec<u32> = send_from_links(p.port, links)
        .into_iter()
        .flatten()
        .map(|r| r.msg_id)
        .collect();
    ids.sort_unstable();
    let n = LINKS * PER_LINK;
    assert_eq!(ids, (1..=n).collect::<Vec<_>>());
    let stored: Vec<u32> = rows(
        &db,
        &[
            "SELECT msgId FROM ",
            &shard("IMGroupMessage", g),
            " ORDER BY msgId",
        ]
        .concat(),
    );
    assert_eq!(stored, (1..=n).collect::<Vec<_>>());
    let mut unread_db = redis_db(&redis, DB_UNREAD);
    assert_eq!(
        hfield(&mut unread_db, &format!("{g}_im_group_msg"), "count").as_deref(),
        Some(n.to_string().as_str())
    );
    let sessions: Vec<u32> = rows(
        &db,
        "SELECT COUNT(*) FROM IMRecentSession GROUP BY userId ORDER BY userId",
    );
    assert_eq!(
        sessions,
        vec![1; LINKS as usize],
        "one group session per sender"
    );
}

#[test]
fn concurrent_creations_all_succeed_with_distinct_ids() {
    // A DELETE of the (absent) rows of each new id gap-locked the member
    // index: creations on parallel links deadlocked and answered result 1.
    let (_db, _redis, p, _c) = fresh(8, 8);
    let threads: Vec<_> = (0..8u32)
        .map(|link| {
            let port = p.port;
            std::thread::spawn(move || {
                let mut c = PduClient::connect(port);
                (0..5)
                    .map(|i| {
                        let name = format!("g{link}-{i}");
                        create(&mut c, 0, &name, GroupType::GROUP_TYPE_NORMAL, &[1, 2, 3])
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in threads {
        for rsp in t.join().unwrap() {
            assert_eq!(rsp.result_code, 0, "{:?} failed", rsp.group_name);
            ids.push(rsp.group_id.unwrap());
        }
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 40);
}
