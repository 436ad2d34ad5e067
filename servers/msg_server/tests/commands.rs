//! Client commands end to end against the real db_proxy_server (MariaDB
//! and Redis), route_server and login_server, with two msg_servers: each
//! request comes from a logged-in client, and the reply fields, the rows
//! and keys written, and the notifies to other devices (here and through
//! route_server) are checked. The group member-list cache is shown to
//! follow membership changes and group versions, and chat across
//! msg_servers to resume after route_server or db_proxy_server restarts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base::pdu::ImPdu;
use common::*;
use mysql::prelude::Queryable;
use std::time::{Duration, Instant};
use tt_proto::IM::BaseDefine::{
    BuddyListCmdID, FileCmdID, GroupCmdID, GroupModifyType, GroupType, GroupVersionInfo,
    MessageCmdID, MsgType, ServiceID, SessionType, UserStatType,
};
use tt_proto::IM::Buddy::{
    IMChangeAvatarReq, IMRecentContactSessionReq, IMRecentContactSessionRsp, IMRemoveSessionNotify,
    IMRemoveSessionReq, IMRemoveSessionRsp, IMUsersStatReq, IMUsersStatRsp,
};
use tt_proto::IM::File::{
    IMFileAddOfflineReq, IMFileDelOfflineReq, IMFileHasOfflineReq, IMFileHasOfflineRsp,
};
use tt_proto::IM::Group::{
    IMGroupChangeMemberNotify, IMGroupChangeMemberReq, IMGroupChangeMemberRsp, IMGroupCreateReq,
    IMGroupCreateRsp, IMGroupInfoListReq, IMGroupInfoListRsp, IMGroupShieldReq, IMGroupShieldRsp,
    IMNormalGroupListReq, IMNormalGroupListRsp,
};
use tt_proto::IM::Message::{
    IMClientTimeReq, IMClientTimeRsp, IMGetLatestMsgIdReq, IMGetLatestMsgIdRsp, IMGetMsgByIdReq,
    IMGetMsgByIdRsp, IMMsgData, IMMsgDataAck, IMMsgDataReadAck, IMMsgDataReadNotify,
    IMUnreadMsgCntReq, IMUnreadMsgCntRsp,
};
use tt_rs::PduClient;

use BuddyListCmdID as B;
use GroupCmdID as G;
use MessageCmdID as M;

const SID_FILE: u16 = ServiceID::SID_FILE as u16;
/// How long a client waits to be sure nothing more is coming, once what
/// must come first has arrived.
const QUIET: Duration = Duration::from_millis(300);

/// Sends a message and returns its ack (whatever arrives meanwhile is skipped).
fn send_typed(c: &mut PduClient, seq: u16, to: u32, t: MsgType, text: &str) -> IMMsgDataAck {
    send_and_ack(c, seq, &msg_data(0, to, t, &encrypted(text)))
}

fn send(c: &mut PduClient, seq: u16, to: u32, text: &str) -> IMMsgDataAck {
    send_typed(c, seq, to, MsgType::MSG_TYPE_SINGLE_TEXT, text)
}

fn send_group(c: &mut PduClient, seq: u16, group: u32, text: &str) -> IMMsgDataAck {
    send_typed(c, seq, group, MsgType::MSG_TYPE_GROUP_TEXT, text)
}

/// Everything `c` receives until the message `msg_id`, that one excluded.
fn until_msg(c: &mut PduClient, msg_id: u32) -> Vec<ImPdu> {
    let mut before = Vec::new();
    loop {
        let pdu = c.recv();
        if pdu.command_id() == M::CID_MSG_DATA as u16
            && pdu.msg::<IMMsgData>().unwrap().msg_id == msg_id
        {
            return before;
        }
        before.push(pdu);
    }
}

/// Nothing but heartbeats arrives within [`QUIET`].
fn assert_quiet(c: &mut PduClient, who: &str) {
    while let Some(p) = c.try_recv(QUIET) {
        assert_eq!(
            p.command_id(),
            tt_proto::IM::BaseDefine::OtherCmdID::CID_OTHER_HEARTBEAT as u16,
            "{who} got an unexpected {:#06x}",
            p.command_id()
        );
    }
}

fn unread(c: &mut PduClient, seq: u16) -> IMUnreadMsgCntRsp {
    let req = IMUnreadMsgCntReq {
        user_id: 0,
        attach_data: None,
    };
    ask::<_, IMUnreadMsgCntRsp>(
        c,
        SID_MSG,
        M::CID_MSG_UNREAD_CNT_REQUEST as u16,
        seq,
        &req,
        M::CID_MSG_UNREAD_CNT_RESPONSE as u16,
    )
    .1
}

fn latest_msg_id(c: &mut PduClient, seq: u16, t: SessionType, session: u32) -> IMGetLatestMsgIdRsp {
    let req = IMGetLatestMsgIdReq {
        user_id: 77,
        session_type: t,
        session_id: session,
        attach_data: None,
    };
    ask::<_, IMGetLatestMsgIdRsp>(
        c,
        SID_MSG,
        M::CID_MSG_GET_LATEST_MSG_ID_REQ as u16,
        seq,
        &req,
        M::CID_MSG_GET_LATEST_MSG_ID_RSP as u16,
    )
    .1
}

fn remove_session(c: &mut PduClient, seq: u16, session_id: u32) -> IMRemoveSessionRsp {
    let req = IMRemoveSessionReq {
        user_id: 0,
        session_type: SessionType::SESSION_TYPE_SINGLE,
        session_id,
        attach_data: None,
    };
    ask::<_, IMRemoveSessionRsp>(
        c,
        SID_BUDDY,
        B::CID_BUDDY_LIST_REMOVE_SESSION_REQ as u16,
        seq,
        &req,
        B::CID_BUDDY_LIST_REMOVE_SESSION_RES as u16,
    )
    .1
}

fn msg_by_id(
    c: &mut PduClient,
    seq: u16,
    t: SessionType,
    session_id: u32,
    ids: &[u32],
) -> IMGetMsgByIdRsp {
    let req = IMGetMsgByIdReq {
        user_id: 0,
        session_type: t,
        session_id,
        msg_id_list: ids.to_vec(),
        attach_data: None,
    };
    ask::<_, IMGetMsgByIdRsp>(
        c,
        SID_MSG,
        M::CID_MSG_GET_BY_MSG_ID_REQ as u16,
        seq,
        &req,
        M::CID_MSG_GET_BY_MSG_ID_RES as u16,
    )
    .1
}

/// Sends a read ack (no answer comes).
fn read_ack(c: &mut PduClient, seq: u16, t: SessionType, session_id: u32, msg_id: u32) {
    let ack = IMMsgDataReadAck {
        user_id: 0,
        session_id,
        msg_id,
        session_type: t,
    };
    c.send_msg(SID_MSG, M::CID_MSG_READ_ACK as u16, seq, &ack);
}

#[test]
fn latest_id_by_id_read_ack_and_time_queries() {
    let cluster = Cluster::start();
    let redis_port = cluster.redis.as_ref().unwrap().port();
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice, _) = login(ms1.port, "alice", password("alice"), PC);
    let (mut bob, _) = login(ms2.port, "bob", password("bob"), PC);
    // Bob's phone is on the other msg_server; carol's two devices share one.
    let (mut bob_phone, _) = login(ms1.port, "bob", password("bob"), IOS);
    let (mut carol, _) = login(ms1.port, "carol", password("carol"), PC);
    let (mut carol_phone, _) = login(ms1.port, "carol", password("carol"), IOS);

    let first = send(&mut alice, 1, 2, "one");
    let second = send(&mut alice, 2, 2, "two");
    let to_carol = send(&mut alice, 3, 3, "carol?");
    recv_msg(&mut bob, second.msg_id);
    recv_msg(&mut carol, to_carol.msg_id);

    // Latest message id: the user id is the logged-in user's.
    let rsp = latest_msg_id(&mut bob, 10, SessionType::SESSION_TYPE_SINGLE, 1);
    assert_eq!(
        (
            rsp.user_id,
            rsp.session_id,
            rsp.latest_msg_id,
            rsp.attach_data.as_ref()
        ),
        (2, 1, second.msg_id, None),
        "{rsp:?}"
    );
    assert_eq!(rsp.session_type, SessionType::SESSION_TYPE_SINGLE);
    let rsp = latest_msg_id(&mut alice, 11, SessionType::SESSION_TYPE_SINGLE, 2);
    assert_eq!(
        rsp.latest_msg_id, second.msg_id,
        "the same session seen by alice"
    );
    let rsp = latest_msg_id(&mut alice, 12, SessionType::SESSION_TYPE_SINGLE, 4);
    assert_eq!(
        (rsp.session_id, rsp.latest_msg_id),
        (4, 0),
        "no messages with dave"
    );

    // Messages by id: the unknown id is left out.
    let rsp = msg_by_id(
        &mut bob,
        13,
        SessionType::SESSION_TYPE_SINGLE,
        1,
        &[first.msg_id, second.msg_id, second.msg_id + 100],
    );
    assert_eq!((rsp.user_id, rsp.session_id, rsp.attach_data), (2, 1, None));
    let mut got: Vec<(u32, u32, Vec<u8>)> = rsp
        .msg_list
        .iter()
        .map(|m| (m.msg_id, m.from_session_id, m.msg_data.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (first.msg_id, 1, encrypted("one")),
            (second.msg_id, 1, encrypted("two"))
        ]
    );
    assert!(rsp
        .msg_list
        .iter()
        .all(|m| m.msg_type == MsgType::MSG_TYPE_SINGLE_TEXT));

    // Unread, then read on bob's PC: his phone on the other msg_server is
    // told through route_server, the count is cleared in Redis.
    let rsp = unread(&mut bob, 14);
    assert_eq!(rsp.total_cnt, 2, "{rsp:?}");
    assert!(redis(redis_port, 1, &["HGET", "unread_2", "1"]).contains("\r\n2\r\n"));
    read_ack(
        &mut bob,
        15,
        SessionType::SESSION_TYPE_SINGLE,
        1,
        second.msg_id,
    );
    let notify = recv_where(
        &mut bob_phone,
        M::CID_MSG_READ_NOTIFY as u16,
        |_: &IMMsgDataReadNotify| true,
    );
    assert_eq!(
        (notify.user_id, notify.session_id, notify.msg_id),
        (2, 1, second.msg_id)
    );
    assert_eq!(notify.session_type, SessionType::SESSION_TYPE_SINGLE);
    eventually("bob's unread count from alice is cleared", || {
        redis(redis_port, 1, &["HGET", "unread_2", "1"]).starts_with("$-1")
    });
    let rsp = unread(&mut bob, 16);
    assert_eq!((rsp.user_id, rsp.total_cnt), (2, 0), "{rsp:?}");
    assert!(rsp.unreadinfo_list.is_empty());

    // Carol reads on her phone; her PC on the same msg_server is told, and
    // the phone itself is not.
    read_ack(
        &mut carol_phone,
        17,
        SessionType::SESSION_TYPE_SINGLE,
        1,
        to_carol.msg_id,
    );
    let notify = recv_where(
        &mut carol,
        M::CID_MSG_READ_NOTIFY as u16,
        |_: &IMMsgDataReadNotify| true,
    );
    assert_eq!((notify.user_id, notify.session_id), (3, 1));
    eventually("carol's unread count is cleared", || {
        unread(&mut carol, 18).total_cnt == 0
    });
    // The phone's stream up to the answer of a later request holds no notify.
    carol_phone.send_msg(
        SID_MSG,
        M::CID_MSG_TIME_REQUEST as u16,
        19,
        &IMClientTimeReq {},
    );
    let mut seen = Vec::new();
    let t = loop {
        let p = carol_phone.recv();
        if p.command_id() == M::CID_MSG_TIME_RESPONSE as u16 {
            break p.msg::<IMClientTimeRsp>().unwrap().server_time;
        }
        seen.push(p.command_id());
    };
    assert!(
        !seen.contains(&(M::CID_MSG_READ_NOTIFY as u16)),
        "the reading device is not told: {seen:?}"
    );

    // The server clock, in unix seconds.
    let now = unix_now();
    assert!(t + 5 >= now && t <= now + 5, "server time {t}, here {now}");
    assert!(server_time(&mut alice, 20) >= t);
}

#[test]
fn remove_session_users_status_and_change_avatar() {
    let cluster = Cluster::start();
    let db = cluster.db.as_ref().unwrap();
    let redis_port = cluster.redis.as_ref().unwrap().port();
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice, _) = login(ms1.port, "alice", password("alice"), PC);
    let (mut alice_phone, _) = login(ms1.port, "alice", password("alice"), IOS);
    let (mut bob, _) = login(ms2.port, "bob", password("bob"), PC);
    let (mut carol, _) = login(ms1.port, "carol", password("carol"), PC);

    send(&mut alice, 1, 2, "to bob");
    send(&mut alice, 2, 3, "to carol");
    let from_bob = send(&mut bob, 3, 1, "to alice");
    recv_msg(&mut alice, from_bob.msg_id);
    send(&mut carol, 4, 1, "to alice too");
    assert!(redis(redis_port, 1, &["HGET", "unread_1", "2"]).contains("\r\n1\r\n"));

    // Removing the session with bob: the reply, the row, the unread count
    // of the session, and alice's phone here is told.
    let rsp = remove_session(&mut alice, 5, 2);
    assert_eq!(
        (
            rsp.user_id,
            rsp.result_code,
            rsp.session_id,
            rsp.attach_data.as_ref()
        ),
        (1, 0, 2, None),
        "{rsp:?}"
    );
    assert_eq!(rsp.session_type, SessionType::SESSION_TYPE_SINGLE);
    let status: Vec<(u32, u32)> = db
        .conn()
        .query("SELECT peerId, status FROM IMRecentSession WHERE userId = 1 ORDER BY peerId")
        .unwrap();
    assert_eq!(
        status,
        vec![(2, 1), (3, 0)],
        "only the session with bob is removed"
    );
    let status: Option<u32> = db
        .conn()
        .query_first("SELECT status FROM IMRecentSession WHERE userId = 2 AND peerId = 1")
        .unwrap();
    assert_eq!(status, Some(0), "bob keeps his side");
    assert!(redis(redis_port, 1, &["HGET", "unread_1", "2"]).starts_with("$-1"));
    let notify = recv_where(
        &mut alice_phone,
        B::CID_BUDDY_LIST_REMOVE_SESSION_NOTIFY as u16,
        |_: &IMRemoveSessionNotify| true,
    );
    assert_eq!((notify.user_id, notify.session_id), (1, 2));
    assert_eq!(notify.session_type, SessionType::SESSION_TYPE_SINGLE);
    let req = IMRecentContactSessionReq {
        user_id: 0,
        latest_update_time: 0,
        attach_data: None,
    };
    let (_, sessions) = ask::<_, IMRecentContactSessionRsp>(
        &mut alice,
        SID_BUDDY,
        B::CID_BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST as u16,
        6,
        &req,
        B::CID_BUDDY_LIST_RECENT_CONTACT_SESSION_RESPONSE as u16,
    );
    let peers: Vec<u32> = sessions
        .contact_session_list
        .iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(peers, vec![3], "the removed session is no longer listed");
    // A new message brings it back (the same row, active again).
    let again = send(&mut bob, 60, 1, "hello again");
    recv_msg(&mut alice, again.msg_id);
    let rows: Vec<u32> = db
        .conn()
        .query("SELECT status FROM IMRecentSession WHERE userId = 1 AND peerId = 2")
        .unwrap();
    assert_eq!(rows, vec![0]);

    // Alice's phone moves to the other msg_server: the next removal
    // reaches it through route_server.
    drop(alice_phone);
    let (mut alice_phone, _) = login(ms2.port, "alice", password("alice"), IOS);
    let rsp = remove_session(&mut alice, 7, 3);
    assert_eq!((rsp.result_code, rsp.session_id), (0, 3));
    let notify = recv_where(
        &mut alice_phone,
        B::CID_BUDDY_LIST_REMOVE_SESSION_NOTIFY as u16,
        |_: &IMRemoveSessionNotify| true,
    );
    assert_eq!((notify.user_id, notify.session_id), (1, 3));
    // Bob (another user on that msg_server) is not told.
    server_time(&mut bob, 8);
    assert_quiet(&mut bob, "bob");
    // A session that does not exist: result 1, and still no crash.
    let rsp = remove_session(&mut alice, 9, 4);
    assert_eq!((rsp.result_code, rsp.session_id), (1, 4));

    // Users status through route_server: who is logged in anywhere.
    let req = IMUsersStatReq {
        user_id: 0,
        user_id_list: vec![1, 2, 3, 4, 99],
        attach_data: None,
    };
    let (_, rsp) = ask::<_, IMUsersStatRsp>(
        &mut carol,
        SID_BUDDY,
        B::CID_BUDDY_LIST_USERS_STATUS_REQUEST as u16,
        10,
        &req,
        B::CID_BUDDY_LIST_USERS_STATUS_RESPONSE as u16,
    );
    assert_eq!((rsp.user_id, rsp.attach_data.as_ref()), (3, None));
    let mut stats: Vec<(u32, UserStatType)> = rsp
        .user_stat_list
        .iter()
        .map(|s| (s.user_id, s.status))
        .collect();
    stats.sort_by_key(|(id, _)| *id);
    use UserStatType::{USER_STATUS_OFFLINE as OFF, USER_STATUS_ONLINE as ON};
    assert_eq!(stats, vec![(1, ON), (2, ON), (3, ON), (4, OFF), (99, OFF)]);

    // Change avatar: forwarded to db_proxy, which (like the C++
    // db_proxy_server) has no handler for it: no reply, nothing stored,
    // the connection stays usable.
    let req = IMChangeAvatarReq {
        user_id: 0,
        avatar_url: "http://a/new.png".into(),
        attach_data: None,
    };
    carol.send_msg(
        SID_BUDDY,
        B::CID_BUDDY_LIST_CHANGE_AVATAR_REQUEST as u16,
        11,
        &req,
    );
    cluster
        .db_proxy
        .as_ref()
        .unwrap()
        .wait_log("no handler for command 0x020c");
    server_time(&mut carol, 12);
    let mut seen = Vec::new();
    while let Some(p) = carol.try_recv(QUIET) {
        seen.push(p.command_id());
    }
    assert!(
        !seen.contains(&(B::CID_BUDDY_LIST_CHANGE_AVATAR_RESPONSE as u16)),
        "{seen:?}"
    );
    let avatar: Option<String> = db
        .conn()
        .query_first("SELECT avatar FROM IMUser WHERE id = 3")
        .unwrap();
    assert_eq!(avatar.as_deref(), Some("http://a/x.png"));
}

fn group_info(c: &mut PduClient, seq: u16, versions: &[(u32, u32)]) -> IMGroupInfoListRsp {
    let req = IMGroupInfoListReq {
        user_id: 0,
        group_version_list: versions
            .iter()
            .map(|&(group_id, version)| GroupVersionInfo { group_id, version })
            .collect(),
        attach_data: None,
    };
    ask::<_, IMGroupInfoListRsp>(
        c,
        SID_GROUP,
        G::CID_GROUP_INFO_REQUEST as u16,
        seq,
        &req,
        G::CID_GROUP_INFO_RESPONSE as u16,
    )
    .1
}

fn change_members(
    c: &mut PduClient,
    seq: u16,
    group_id: u32,
    t: GroupModifyType,
    members: &[u32],
) -> IMGroupChangeMemberRsp {
    let req = IMGroupChangeMemberReq {
        user_id: 0,
        change_type: t,
        group_id,
        member_id_list: members.to_vec(),
        attach_data: None,
    };
    ask::<_, IMGroupChangeMemberRsp>(
        c,
        SID_GROUP,
        G::CID_GROUP_CHANGE_MEMBER_REQUEST as u16,
        seq,
        &req,
        G::CID_GROUP_CHANGE_MEMBER_RESPONSE as u16,
    )
    .1
}

fn change_notify(c: &mut PduClient, group_id: u32) -> IMGroupChangeMemberNotify {
    recv_where(
        c,
        G::CID_GROUP_CHANGE_MEMBER_NOTIFY as u16,
        |n: &IMGroupChangeMemberNotify| n.group_id == group_id,
    )
}

fn normal_groups(c: &mut PduClient, seq: u16) -> IMNormalGroupListRsp {
    let req = IMNormalGroupListReq {
        user_id: 0,
        attach_data: None,
    };
    ask::<_, IMNormalGroupListRsp>(
        c,
        SID_GROUP,
        G::CID_GROUP_NORMAL_LIST_REQUEST as u16,
        seq,
        &req,
        G::CID_GROUP_NORMAL_LIST_RESPONSE as u16,
    )
    .1
}

fn create_group(c: &mut PduClient, seq: u16, req: &IMGroupCreateReq) -> IMGroupCreateRsp {
    ask::<_, IMGroupCreateRsp>(
        c,
        SID_GROUP,
        G::CID_GROUP_CREATE_REQUEST as u16,
        seq,
        req,
        G::CID_GROUP_CREATE_RESPONSE as u16,
    )
    .1
}

fn shield(c: &mut PduClient, seq: u16, req: &IMGroupShieldReq) -> IMGroupShieldRsp {
    ask::<_, IMGroupShieldRsp>(
        c,
        SID_GROUP,
        G::CID_GROUP_SHIELD_GROUP_REQUEST as u16,
        seq,
        req,
        G::CID_GROUP_SHIELD_GROUP_RESPONSE as u16,
    )
    .1
}

/// The current members of group `gid` in the database.
fn group_members(db: &tt_rs::TestDb, gid: u32) -> Vec<u32> {
    db.conn()
        .exec(
            "SELECT userId FROM IMGroupMember WHERE groupId = ? AND status = 0 ORDER BY userId",
            (gid,),
        )
        .unwrap()
}

/// The version of group `gid` in the database.
fn group_version(db: &tt_rs::TestDb, gid: u32) -> u32 {
    db.conn()
        .exec_first("SELECT version FROM IMGroup WHERE id = ?", (gid,))
        .unwrap()
        .unwrap()
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}

#[test]
fn group_commands_and_membership_changes_across_msg_servers() {
    let cluster = Cluster::start();
    let db = cluster.db.as_ref().unwrap();
    let redis_port = cluster.redis.as_ref().unwrap().port();
    // A normal group (made by the admin UI, not by clients): alice, bob, carol.
    db.conn()
        .query_drop(
            "INSERT INTO IMGroup (id, name, avatar, creator, type, userCnt, status, version, \
             lastChated, updated, created) VALUES (500, 'staff', 'http://g/s.png', 1, 1, 3, 0, 3, 0, 100, 100); \
             INSERT INTO IMGroupMember (groupId, userId, status, created, updated) VALUES \
             (500, 1, 0, 100, 100), (500, 2, 0, 100, 100), (500, 3, 0, 100, 100)",
        )
        .unwrap();
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice, _) = login(ms1.port, "alice", password("alice"), PC);
    let (mut bob, _) = login(ms2.port, "bob", password("bob"), PC);
    let (mut carol, _) = login(ms1.port, "carol", password("carol"), PC);
    let (mut dave, _) = login(ms2.port, "dave", password("dave"), PC);

    // Create a temporary group of alice and bob.
    let req = IMGroupCreateReq {
        user_id: 0,
        group_type: GroupType::GROUP_TYPE_TMP,
        group_name: "pair".into(),
        group_avatar: "http://g/p.png".into(),
        member_id_list: vec![1, 2],
        attach_data: None,
    };
    let created = create_group(&mut alice, 1, &req);
    assert_eq!(
        (
            created.user_id,
            created.result_code,
            created.group_name.as_str()
        ),
        (1, 0, "pair")
    );
    assert_eq!(sorted(created.user_id_list.clone()), vec![1, 2]);
    assert_eq!(created.attach_data, None);
    let gid = created.group_id.expect("group id");
    let row: Option<(String, u32, u32, u32)> = db
        .conn()
        .exec_first(
            "SELECT name, creator, type, userCnt FROM IMGroup WHERE id = ?",
            (gid,),
        )
        .unwrap();
    assert_eq!(row, Some(("pair".into(), 1, 2, 2)));
    let members = group_members(db, gid);
    assert_eq!(members, vec![1, 2]);
    let v1 = group_version(db, gid);

    // A client may not create a normal group: the C++ drops it silently.
    let req = IMGroupCreateReq {
        group_type: GroupType::GROUP_TYPE_NORMAL,
        group_name: "nope".into(),
        ..req
    };
    alice.send_msg(SID_GROUP, G::CID_GROUP_CREATE_REQUEST as u16, 2, &req);
    ms1.server
        .wait_log("may not create a normal group \"nope\"");
    server_time(&mut alice, 3);
    assert_quiet(&mut alice, "alice");
    let nope: Option<u32> = db
        .conn()
        .query_first("SELECT id FROM IMGroup WHERE name = 'nope'")
        .unwrap();
    assert_eq!(nope, None);

    // Normal group list: the normal group only, with its version.
    let list = normal_groups(&mut carol, 4);
    assert_eq!(list.user_id, 3);
    let versions: Vec<(u32, u32)> = list
        .group_version_list
        .iter()
        .map(|v| (v.group_id, v.version))
        .collect();
    assert_eq!(versions, vec![(500, 3)]);
    let list = normal_groups(&mut dave, 5);
    assert!(list.group_version_list.is_empty(), "{list:?}");

    // Group info: the groups the client holds an older version of.
    let info = group_info(&mut alice, 6, &[(500, 0), (gid, 0)]);
    assert_eq!(info.user_id, 1);
    let mut got: Vec<(u32, u32, String, GroupType, Vec<u32>)> = info
        .group_info_list
        .iter()
        .map(|g| {
            (
                g.group_id,
                g.group_creator_id,
                g.group_name.clone(),
                g.group_type,
                sorted(g.group_member_list.clone()),
            )
        })
        .collect();
    got.sort_by_key(|g| g.0);
    let mut want = vec![
        (
            500,
            1,
            "staff".to_string(),
            GroupType::GROUP_TYPE_NORMAL,
            vec![1, 2, 3],
        ),
        (
            gid,
            1,
            "pair".to_string(),
            GroupType::GROUP_TYPE_TMP,
            vec![1, 2],
        ),
    ];
    want.sort_by_key(|g| g.0);
    assert_eq!(got, want);
    let info = group_info(&mut alice, 7, &[(500, 3), (gid, v1)]);
    assert!(info.group_info_list.is_empty(), "up to date: {info:?}");

    // A group message warms both msg_servers' member lists.
    let m = send_group(&mut alice, 8, gid, "hello pair");
    let got = recv_msg(&mut bob, m.msg_id);
    assert_eq!((got.from_user_id, got.to_session_id), (1, gid));
    let m = send_group(&mut bob, 9, gid, "hi alice");
    recv_msg(&mut alice, m.msg_id);

    // Alice adds carol (her msg_server) and dave (the other one).
    let rsp = change_members(
        &mut alice,
        10,
        gid,
        GroupModifyType::GROUP_MODIFY_TYPE_ADD,
        &[3, 4],
    );
    assert_eq!((rsp.user_id, rsp.result_code, rsp.group_id), (1, 0, gid));
    assert_eq!(rsp.change_type, GroupModifyType::GROUP_MODIFY_TYPE_ADD);
    assert_eq!(sorted(rsp.chg_user_id_list.clone()), vec![3, 4]);
    assert_eq!(sorted(rsp.cur_user_id_list.clone()), vec![1, 2, 3, 4]);
    assert_eq!(rsp.attach_data, None);
    let members = group_members(db, gid);
    assert_eq!(members, vec![1, 2, 3, 4]);
    let v2 = group_version(db, gid);
    assert!(v2 > v1, "the version moves on with the membership");
    // Every member is told, here and on the other msg_server.
    for (who, c) in [
        ("carol", &mut carol),
        ("bob", &mut bob),
        ("dave", &mut dave),
    ] {
        let n = change_notify(c, gid);
        assert_eq!(
            (n.user_id, n.change_type),
            (1, GroupModifyType::GROUP_MODIFY_TYPE_ADD),
            "{who}"
        );
        assert_eq!(sorted(n.chg_user_id_list), vec![3, 4], "{who}");
        assert_eq!(sorted(n.cur_user_id_list), vec![1, 2, 3, 4], "{who}");
    }
    // Carol (changed and current member) was told once; alice, who asked,
    // not at all.
    let marker = send(&mut alice, 30, 3, "marker");
    let before = until_msg(&mut carol, marker.msg_id);
    assert!(
        before
            .iter()
            .all(|p| p.command_id() != G::CID_GROUP_CHANGE_MEMBER_NOTIFY as u16),
        "carol was told once"
    );
    let marker = send(&mut carol, 31, 1, "marker");
    let before = until_msg(&mut alice, marker.msg_id);
    assert!(
        before
            .iter()
            .all(|p| p.command_id() != G::CID_GROUP_CHANGE_MEMBER_NOTIFY as u16),
        "the requester gets the response, not the notify"
    );

    // The new members get the next messages, from either msg_server.
    let m = send_group(&mut bob, 11, gid, "welcome");
    for c in [&mut alice, &mut carol, &mut dave] {
        assert_eq!(recv_msg(c, m.msg_id).msg_data, encrypted("welcome"));
    }
    let m = send_group(&mut alice, 12, gid, "from ms1");
    for c in [&mut bob, &mut carol, &mut dave] {
        assert_eq!(recv_msg(c, m.msg_id).from_user_id, 1);
    }
    let m = send_group(&mut dave, 13, gid, "thanks");
    for c in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(recv_msg(c, m.msg_id).from_user_id, 4);
    }
    // Group sessions: latest id, message by id, unread cleared by a read ack.
    let thanks = m.msg_id;
    let rsp = latest_msg_id(&mut carol, 40, SessionType::SESSION_TYPE_GROUP, gid);
    assert_eq!(
        (rsp.session_id, rsp.latest_msg_id),
        (gid, thanks),
        "{rsp:?}"
    );
    let rsp = msg_by_id(
        &mut carol,
        41,
        SessionType::SESSION_TYPE_GROUP,
        gid,
        &[thanks],
    );
    let got: Vec<(u32, u32, MsgType, Vec<u8>)> = rsp
        .msg_list
        .iter()
        .map(|m| (m.msg_id, m.from_session_id, m.msg_type, m.msg_data.clone()))
        .collect();
    assert_eq!(
        got,
        vec![(thanks, 4, MsgType::MSG_TYPE_GROUP_TEXT, encrypted("thanks"))]
    );
    let group_unread = |c: &mut PduClient, seq: u16| {
        unread(c, seq)
            .unreadinfo_list
            .iter()
            .find(|u| u.session_id == gid)
            .map(|u| (u.unread_cnt, u.latest_msg_id))
    };
    let before = group_unread(&mut carol, 42).expect("the group has unread messages");
    // The three messages since she joined (joining clears the counter).
    assert_eq!(before, (3, thanks));
    read_ack(&mut carol, 43, SessionType::SESSION_TYPE_GROUP, gid, thanks);
    eventually("carol's group unread count is cleared", || {
        group_unread(&mut carol, 44).is_none()
    });

    // Bob leaves (removed by alice): the next message no longer reaches him.
    let rsp = change_members(
        &mut alice,
        15,
        gid,
        GroupModifyType::GROUP_MODIFY_TYPE_DEL,
        &[2],
    );
    assert_eq!(rsp.result_code, 0);
    assert_eq!(sorted(rsp.cur_user_id_list), vec![1, 3, 4]);
    let n = change_notify(&mut bob, gid);
    assert_eq!(n.chg_user_id_list, vec![2], "the removed member is told");
    change_notify(&mut dave, gid);
    let m = send_group(&mut carol, 16, gid, "without bob");
    recv_msg(&mut alice, m.msg_id);
    recv_msg(&mut dave, m.msg_id); // bob's msg_server fanned it out
    let last = send(&mut alice, 17, 2, "marker for bob");
    let before = until_msg(&mut bob, last.msg_id);
    assert!(
        before
            .iter()
            .filter(|p| p.command_id() == M::CID_MSG_DATA as u16)
            .all(|p| p.msg::<IMMsgData>().unwrap().to_session_id != gid),
        "bob got a message of a group he left"
    );

    // Bob is no longer a member: his group message is not stored (no ack,
    // as the C++ db_proxy does not answer) and reaches nobody.
    let msg = msg_data(
        2,
        gid,
        MsgType::MSG_TYPE_GROUP_TEXT,
        &encrypted("let me in"),
    );
    bob.send_msg(SID_MSG, M::CID_MSG_DATA as u16, 50, &msg);
    cluster
        .db_proxy
        .as_ref()
        .unwrap()
        .wait_log(&format!("group message 2 -> {gid} refused"));
    let marker = send(&mut bob, 51, 4, "marker for dave");
    let before = until_msg(&mut dave, marker.msg_id);
    assert!(
        before
            .iter()
            .filter(|p| p.command_id() == M::CID_MSG_DATA as u16)
            .all(|p| p.msg::<IMMsgData>().unwrap().msg_data != encrypted("let me in")),
        "a non-member's message reached dave"
    );
    let rsp = latest_msg_id(&mut carol, 52, SessionType::SESSION_TYPE_GROUP, gid);
    assert_eq!(
        rsp.latest_msg_id, m.msg_id,
        "nothing stored after carol's message"
    );

    // Shield: a member's setting lands in Redis; a non-member gets result 1.
    let req = IMGroupShieldReq {
        user_id: 0,
        group_id: gid,
        shield_status: 1,
        attach_data: None,
    };
    let rsp = shield(&mut carol, 18, &req);
    assert_eq!(
        (rsp.user_id, rsp.group_id, rsp.result_code, rsp.attach_data),
        (3, gid, 0, None)
    );
    let key = format!("group_set_{gid}");
    assert!(redis(redis_port, 2, &["HGET", &key, "3_1"]).contains("\r\n1\r\n"));
    let rsp = shield(&mut bob, 19, &req);
    assert_eq!((rsp.user_id, rsp.result_code), (2, 1));
    assert!(redis(redis_port, 2, &["HGET", &key, "2_1"]).starts_with("$-1"));
}

#[test]
fn a_group_changed_behind_a_msg_servers_back_is_refreshed_by_version() {
    // Membership changed in the database directly (as the admin UI does),
    // so no change-member notify is sent: a client's group info reply
    // carrying the newer version refreshes the cached member list.
    let cluster = Cluster::start();
    let db = cluster.db.as_ref().unwrap();
    let redis_port = cluster.redis.as_ref().unwrap().port();
    db.conn()
        .query_drop(
            "INSERT INTO IMGroup (id, name, avatar, creator, type, userCnt, status, version, \
             lastChated, updated, created) VALUES (600, 'team', '', 1, 1, 2, 0, 1, 0, 100, 100); \
             INSERT INTO IMGroupMember (groupId, userId, status, created, updated) VALUES \
             (600, 1, 0, 100, 100), (600, 2, 0, 100, 100)",
        )
        .unwrap();
    let ms = cluster.start_msg_server();
    let (mut alice, _) = login(ms.port, "alice", password("alice"), PC);
    let (mut bob, _) = login(ms.port, "bob", password("bob"), PC);
    let (mut carol, _) = login(ms.port, "carol", password("carol"), PC);
    let m = send_group(&mut alice, 1, 600, "before");
    recv_msg(&mut bob, m.msg_id);

    db.conn()
        .query_drop(
            "INSERT INTO IMGroupMember (groupId, userId, status, created, updated) \
             VALUES (600, 3, 0, 200, 200); \
             UPDATE IMGroup SET version = 2, userCnt = 3 WHERE id = 600",
        )
        .unwrap();
    // db_proxy's own member cache must see it too.
    redis(redis_port, 5, &["DEL", "group_member_600"]);
    let m = send_group(&mut alice, 2, 600, "still cached");
    recv_msg(&mut bob, m.msg_id);
    let marker = send(&mut alice, 3, 3, "marker");
    let before = until_msg(&mut carol, marker.msg_id);
    assert!(
        before
            .iter()
            .all(|p| p.command_id() != M::CID_MSG_DATA as u16),
        "the cached list (version 1) does not have carol yet"
    );
    // Bob asks for the group's info: version 2 passes through msg_server.
    let info = group_info(&mut bob, 4, &[(600, 1)]);
    assert_eq!(info.group_info_list.len(), 1);
    assert_eq!(info.group_info_list[0].version, 2);
    let m = send_group(&mut alice, 5, 600, "after");
    assert_eq!(recv_msg(&mut carol, m.msg_id).msg_data, encrypted("after"));
    recv_msg(&mut bob, m.msg_id);
}

#[test]
fn offline_files_are_listed_added_and_deleted() {
    let cluster = Cluster::start();
    let db = cluster.db.as_ref().unwrap();
    db.load_file(&tt_rs::repo_root().join("sql/offline_files.sql"));
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice, _) = login(ms1.port, "alice", password("alice"), PC);
    let (mut bob, _) = login(ms2.port, "bob", password("bob"), PC);
    let (mut carol, _) = login(ms1.port, "carol", password("carol"), PC);

    let has_offline = |c: &mut PduClient, seq: u16| {
        ask::<_, IMFileHasOfflineRsp>(
            c,
            SID_FILE,
            FileCmdID::CID_FILE_HAS_OFFLINE_REQ as u16,
            seq,
            &IMFileHasOfflineReq {
                user_id: 0,
                attach_data: None,
            },
            FileCmdID::CID_FILE_HAS_OFFLINE_RES as u16,
        )
        .1
    };
    let rsp = has_offline(&mut bob, 1);
    assert_eq!((rsp.user_id, rsp.offline_file_list.len()), (2, 0));

    // Added by alice; the sender is the logged-in user, whatever was written.
    let add = IMFileAddOfflineReq {
        from_user_id: 99,
        to_user_id: 2,
        task_id: "task-1".into(),
        file_name: "notes.txt".into(),
        file_size: 1234,
    };
    alice.send_msg(
        SID_FILE,
        FileCmdID::CID_FILE_ADD_OFFLINE_REQ as u16,
        2,
        &add,
    );
    let row = || -> Option<(u32, u32, String, u32, String)> {
        db.conn()
            .query_first("SELECT fromId, toId, fileName, size, taskId FROM IMTransmitFile")
            .unwrap()
    };
    eventually("the offline file is stored", || row().is_some());
    assert_eq!(
        row(),
        Some((1, 2, "notes.txt".into(), 1234, "task-1".into()))
    );
    let rsp = has_offline(&mut bob, 3);
    assert_eq!(rsp.attach_data, None);
    let files: Vec<(u32, String, String, u32)> = rsp
        .offline_file_list
        .iter()
        .map(|f| {
            (
                f.from_user_id,
                f.task_id.clone(),
                f.file_name.clone(),
                f.file_size,
            )
        })
        .collect();
    assert_eq!(files, vec![(1, "task-1".into(), "notes.txt".into(), 1234)]);
    assert!(
        rsp.ip_addr_list.is_empty(),
        "no file_server in this cluster"
    );

    // Carol is neither sender nor receiver: her delete is dropped.
    let del = IMFileDelOfflineReq {
        from_user_id: 1,
        to_user_id: 2,
        task_id: "task-1".into(),
    };
    carol.send_msg(
        SID_FILE,
        FileCmdID::CID_FILE_DEL_OFFLINE_REQ as u16,
        4,
        &del,
    );
    ms1.server
        .wait_log("user 3 may not delete offline file task-1");
    assert!(row().is_some());
    // The receiver deletes it once fetched.
    bob.send_msg(
        SID_FILE,
        FileCmdID::CID_FILE_DEL_OFFLINE_REQ as u16,
        5,
        &del,
    );
    eventually("the offline file is deleted", || row().is_none());
    let rsp = has_offline(&mut bob, 6);
    assert!(rsp.offline_file_list.is_empty(), "{rsp:?}");
}

#[test]
fn chat_resumes_after_route_server_restarts_with_the_real_db_proxy() {
    let mut cluster = Cluster::start();
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice, _) = login(ms1.port, "alice", password("alice"), PC);
    let (mut bob, _) = login(ms2.port, "bob", password("bob"), PC);
    let m = send(&mut alice, 1, 2, "before");
    recv_msg(&mut bob, m.msg_id);

    cluster.restart_route();
    // Messages sent while the links are down are stored but not relayed
    // (as in the C++); keep sending until one gets through. The reconnect
    // back-off grows from 4 s: allow two minutes.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seq = 2;
    let through = loop {
        let m = send(&mut alice, seq, 2, "after");
        let mut through = false;
        while let Some(p) = bob.try_recv(Duration::from_millis(500)) {
            through |= p.command_id() == M::CID_MSG_DATA as u16
                && p.msg::<IMMsgData>().is_ok_and(|d| d.msg_id == m.msg_id);
        }
        if through {
            break m;
        }
        assert!(Instant::now() < deadline, "chat never resumed");
        seq += 1;
    };
    // Every message was stored, relayed or not: bob finds them all.
    let rsp = latest_msg_id(&mut bob, 900, SessionType::SESSION_TYPE_SINGLE, 1);
    assert_eq!(rsp.latest_msg_id, through.msg_id);
    // And the other way, across msg_servers again.
    let m = send(&mut bob, 901, 1, "back");
    assert_eq!(recv_msg(&mut alice, m.msg_id).msg_data, encrypted("back"));
    // A group across both msg_servers works again too.
    let req = IMGroupCreateReq {
        user_id: 0,
        group_type: GroupType::GROUP_TYPE_TMP,
        group_name: "after restart".into(),
        group_avatar: String::new(),
        member_id_list: vec![1, 2],
        attach_data: None,
    };
    let created = create_group(&mut alice, 902, &req);
    let gid = created.group_id.unwrap();
    let m = send_group(&mut alice, 903, gid, "group after restart");
    recv_msg(&mut bob, m.msg_id);
}

#[test]
fn chat_resumes_after_db_proxy_restarts() {
    let mut cluster = Cluster::start();
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice, _) = login(ms1.port, "alice", password("alice"), PC);
    let (mut bob, _) = login(ms2.port, "bob", password("bob"), PC);
    let m = send(&mut alice, 1, 2, "before");
    recv_msg(&mut bob, m.msg_id);

    cluster.stop_db_proxy();
    cluster.start_db_proxy();
    // Messages sent while no db_proxy link is open are dropped unacked (as
    // in the C++); keep sending until one is stored. The reconnect back-off
    // grows from 4 s: allow two minutes.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seq = 2;
    let stored = loop {
        let msg = msg_data(1, 2, MsgType::MSG_TYPE_SINGLE_TEXT, &encrypted("after"));
        alice.send_msg(SID_MSG, M::CID_MSG_DATA as u16, seq, &msg);
        let mut acked = None;
        while let Some(p) = alice.try_recv(Duration::from_millis(500)) {
            if p.command_id() == M::CID_MSG_DATA_ACK as u16 && p.seq_num() == seq {
                acked = Some(p.msg::<IMMsgDataAck>().unwrap());
            }
        }
        if let Some(ack) = acked {
            break ack;
        }
        assert!(Instant::now() < deadline, "messages never stored again");
        seq += 1;
    };
    assert!(stored.msg_id > m.msg_id, "{stored:?}");
    assert_eq!(
        recv_msg(&mut bob, stored.msg_id).msg_data,
        encrypted("after")
    );
    let m = send(&mut bob, 900, 1, "back");
    assert_eq!(recv_msg(&mut alice, m.msg_id).msg_data, encrypted("back"));
}
