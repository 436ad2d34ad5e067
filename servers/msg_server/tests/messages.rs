//! Message routing through real route_server and login_server, with a
//! fake db_proxy (tests/common/fake_db.rs) storing messages and answering
//! group member lists: one-to-one chat across msg_servers, the message
//! checks and rate limit, group fan-out exactly once with the member-list
//! cache, read notifies, presence queries and P2P commands.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base::pdu::ImPdu;
use common::*;
use std::collections::HashMap;
use std::time::Duration;
use tt_proto::IM::BaseDefine::{
    BuddyListCmdID, GroupCmdID, GroupModifyType, MessageCmdID, MsgType, SessionType,
    SwitchServiceCmdID, UserStatType,
};
use tt_proto::IM::Buddy::{IMUsersStatReq, IMUsersStatRsp};
use tt_proto::IM::Group::{
    IMGroupChangeMemberNotify, IMGroupChangeMemberReq, IMGroupChangeMemberRsp,
};
use tt_proto::IM::Message::{IMMsgData, IMMsgDataAck, IMMsgDataReadAck, IMMsgDataReadNotify};
use tt_proto::IM::SwitchService::IMP2PCmdMsg;
use tt_rs::PduClient;

const CID_DATA: u16 = MessageCmdID::CID_MSG_DATA as u16;
const CID_ACK: u16 = MessageCmdID::CID_MSG_DATA_ACK as u16;
const TEXT: MsgType = MsgType::MSG_TYPE_SINGLE_TEXT;
const GROUP_TEXT: MsgType = MsgType::MSG_TYPE_GROUP_TEXT;

fn send(c: &mut PduClient, seq: u16, from: u32, to: u32, t: MsgType, data: &[u8]) {
    c.send_msg(SID_MSG, CID_DATA, seq, &msg_data(from, to, t, data));
}

/// Every PDU up to and including the first for which `last` holds.
fn collect_until(c: &mut PduClient, last: impl Fn(&ImPdu) -> bool) -> Vec<ImPdu> {
    let mut out = Vec::new();
    loop {
        let pdu = c.recv();
        let done = last(&pdu);
        out.push(pdu);
        if done {
            return out;
        }
    }
}

/// The messages (`CID_MSG_DATA`) among `pdus`.
fn messages(pdus: &[ImPdu]) -> Vec<IMMsgData> {
    pdus.iter()
        .filter(|p| p.command_id() == CID_DATA)
        .map(|p| p.msg::<IMMsgData>().unwrap())
        .collect()
}

/// Waits for the ack of the message sent with `seq`.
fn ack_of(c: &mut PduClient, seq: u16) -> IMMsgDataAck {
    let pdus = collect_until(c, |p| p.command_id() == CID_ACK && p.seq_num() == seq);
    pdus.last().unwrap().msg().unwrap()
}

/// Waits for the message with `msg_id`; returns everything received up to it.
fn until_msg(c: &mut PduClient, msg_id: u32) -> Vec<ImPdu> {
    collect_until(c, |p| {
        p.command_id() == CID_DATA && p.msg::<IMMsgData>().is_ok_and(|m| m.msg_id == msg_id)
    })
}

#[test]
fn one_to_one_chat_across_msg_servers_both_ways() {
    let cluster = Cluster::start_fake(HashMap::new());
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice_pc, _) = login(ms1.port, "alice", password("alice"), PC);
    let (mut alice_phone, _) = login(ms1.port, "alice", password("alice"), IOS);
    let (mut bob, _) = login(ms2.port, "bob", password("bob"), PC);

    send(&mut alice_pc, 21, 1, 2, TEXT, b"hello bob");
    let ack = ack_of(&mut alice_pc, 21);
    assert_eq!(
        (ack.user_id, ack.session_id, ack.session_type),
        (1, 2, SessionType::SESSION_TYPE_SINGLE)
    );
    assert!(ack.msg_id > 0);
    let got = messages(&until_msg(&mut bob, ack.msg_id));
    let m = got.last().unwrap();
    assert_eq!((m.from_user_id, m.to_session_id), (1, 2));
    assert_eq!(m.msg_data, b"hello bob");
    assert_eq!(m.attach_data, None, "attach data never reaches clients");
    assert!(m.create_time > 0, "stamped by msg_server");
    let copy = messages(&until_msg(&mut alice_phone, ack.msg_id));
    assert_eq!(copy.len(), 1, "the sender's other device gets a copy");

    send(&mut bob, 22, 2, 1, TEXT, b"hi alice");
    let back = ack_of(&mut bob, 22);
    for c in [&mut alice_pc, &mut alice_phone] {
        let pdus = until_msg(c, back.msg_id);
        let got = messages(&pdus);
        assert_eq!(got.last().unwrap().msg_data, b"hi alice");
        assert!(
            got.iter().all(|m| m.msg_id != ack.msg_id),
            "no echo of one's own message to the sending device"
        );
    }
    // db_proxy stored each once and was asked for the receiver's tokens.
    assert_eq!(cluster.fake().count(CID_DATA), 2);
}

#[test]
fn bad_messages_are_dropped_and_the_rate_is_limited() {
    let cluster = Cluster::start_fake(HashMap::new());
    let ms = cluster.start_msg_server();
    let (mut alice, _) = login(ms.port, "alice", password("alice"), PC);

    send(&mut alice, 1, 1, 2, TEXT, b"");
    send(&mut alice, 2, 1, 1, TEXT, b"to myself");
    send(
        &mut alice,
        3,
        7,
        1,
        TEXT,
        b"to myself, lying about the sender",
    );
    send(&mut alice, 4, 1, 2, TEXT, b"fine");
    let pdus = collect_until(&mut alice, |p| p.command_id() == CID_ACK);
    assert_eq!(
        pdus.last().unwrap().seq_num(),
        4,
        "only the good one is acknowledged"
    );
    let stored = cluster.fake().requests(CID_DATA);
    assert_eq!(stored.len(), 1, "only the good one reached db_proxy");
    let m: IMMsgData = stored[0].msg().unwrap();
    assert_eq!(m.from_user_id, 1, "the sender is the logged-in user");

    // A burst of 45 within one second: at most 20 per one-second window
    // pass (the burst may straddle one window boundary).
    std::thread::sleep(Duration::from_millis(1100));
    for seq in 100..145 {
        send(&mut alice, seq, 1, 2, TEXT, b"burst");
    }
    std::thread::sleep(Duration::from_millis(1100));
    send(&mut alice, 999, 1, 2, TEXT, b"marker");
    let pdus = collect_until(&mut alice, |p| {
        p.command_id() == CID_ACK && p.seq_num() == 999
    });
    let passed = pdus
        .iter()
        .filter(|p| p.command_id() == CID_ACK && (100..145).contains(&p.seq_num()))
        .count();
    assert!((20..=40).contains(&passed), "{passed} of 45 passed");
}

#[test]
fn group_messages_reach_every_member_once_across_msg_servers() {
    let groups = HashMap::from([(100, vec![1, 2, 3, 4])]);
    let cluster = Cluster::start_fake(groups);
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice, _) = login(ms1.port, "alice", password("alice"), PC);
    let (mut bob, _) = login(ms1.port, "bob", password("bob"), PC);
    let (mut carol, _) = login(ms2.port, "carol", password("carol"), PC);
    let (mut dave, _) = login(ms2.port, "dave", password("dave"), PC);

    for seq in 1..=4 {
        send(
            &mut alice,
            seq,
            1,
            100,
            GROUP_TEXT,
            format!("g{seq}").as_bytes(),
        );
    }
    let pdus = collect_until(&mut alice, |p| {
        p.command_id() == CID_ACK && p.seq_num() == 4
    });
    let acks: Vec<IMMsgDataAck> = pdus
        .iter()
        .filter(|p| p.command_id() == CID_ACK)
        .map(|p| p.msg().unwrap())
        .collect();
    assert_eq!(acks.len(), 4);
    assert!(acks
        .iter()
        .all(|a| a.session_type == SessionType::SESSION_TYPE_GROUP && a.session_id == 100));
    let last = acks[3].msg_id;
    for (name, c) in [
        ("bob", &mut bob),
        ("carol", &mut carol),
        ("dave", &mut dave),
    ] {
        let got = messages(&until_msg(c, last));
        let ids: Vec<u32> = got.iter().map(|m| m.msg_id).collect();
        let want: Vec<u32> = acks.iter().map(|a| a.msg_id).collect();
        assert_eq!(ids, want, "{name} gets each group message once, in order");
        assert!(got
            .iter()
            .all(|m| m.to_session_id == 100 && m.from_user_id == 1));
    }
    // The sender's own connection gets none back.
    send(&mut alice, 5, 1, 2, TEXT, b"marker");
    let pdus = collect_until(&mut alice, |p| {
        p.command_id() == CID_ACK && p.seq_num() == 5
    });
    assert!(messages(&pdus).is_empty(), "{:?}", messages(&pdus));
    // One member-list fetch per msg_server, then the cache.
    let info = GroupCmdID::CID_GROUP_INFO_REQUEST as u16;
    assert_eq!(cluster.fake().count(info), 2);

    // Alice removes dave: members here and on the other msg_server are told,
    // lists are fetched again, and dave gets no more group messages.
    let req = IMGroupChangeMemberReq {
        user_id: 0,
        change_type: GroupModifyType::GROUP_MODIFY_TYPE_DEL,
        group_id: 100,
        member_id_list: vec![4],
        attach_data: None,
    };
    let (_, rsp) = ask::<_, IMGroupChangeMemberRsp>(
        &mut alice,
        SID_GROUP,
        GroupCmdID::CID_GROUP_CHANGE_MEMBER_REQUEST as u16,
        6,
        &req,
        GroupCmdID::CID_GROUP_CHANGE_MEMBER_RESPONSE as u16,
    );
    assert_eq!(
        (rsp.result_code, rsp.cur_user_id_list.clone()),
        (0, vec![1, 2, 3])
    );
    let notify = GroupCmdID::CID_GROUP_CHANGE_MEMBER_NOTIFY as u16;
    for c in [&mut bob, &mut carol, &mut dave] {
        let (_, n) = c.recv_cmd::<IMGroupChangeMemberNotify>(notify);
        assert_eq!((n.group_id, n.chg_user_id_list), (100, vec![4]));
    }
    send(&mut alice, 7, 1, 100, GROUP_TEXT, b"without dave");
    let after = ack_of(&mut alice, 7);
    for c in [&mut bob, &mut carol] {
        assert_eq!(messages(&until_msg(c, after.msg_id)).len(), 1);
    }
    // Carol (same msg_server as dave) has it: dave's fan-out is done too.
    send(&mut alice, 8, 1, 4, TEXT, b"direct to dave");
    let direct = ack_of(&mut alice, 8);
    let got = messages(&until_msg(&mut dave, direct.msg_id));
    assert_eq!(got.len(), 1, "dave got only the direct message: {got:?}");
    assert_eq!(
        cluster.fake().count(info),
        4,
        "each msg_server fetched the new list"
    );
}

#[test]
fn read_acks_reach_the_readers_other_devices_elsewhere() {
    let cluster = Cluster::start_fake(HashMap::new());
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice_pc, _) = login(ms1.port, "alice", password("alice"), PC);
    let (mut alice_phone, _) = login(ms2.port, "alice", password("alice"), IOS);
    let (mut bob, _) = login(ms1.port, "bob", password("bob"), PC);

    send(&mut bob, 1, 2, 1, TEXT, b"read me");
    let ack = ack_of(&mut bob, 1);
    until_msg(&mut alice_pc, ack.msg_id);
    let read = IMMsgDataReadAck {
        user_id: 0,
        session_id: 2,
        msg_id: ack.msg_id,
        session_type: SessionType::SESSION_TYPE_SINGLE,
    };
    alice_pc.send_msg(SID_MSG, MessageCmdID::CID_MSG_READ_ACK as u16, 2, &read);
    let (_, n) =
        alice_phone.recv_cmd::<IMMsgDataReadNotify>(MessageCmdID::CID_MSG_READ_NOTIFY as u16);
    assert_eq!((n.user_id, n.session_id, n.msg_id), (1, 2, ack.msg_id));
    // db_proxy gets it on another link than the notify: wait (bounded).
    let cid = MessageCmdID::CID_MSG_READ_ACK as u16;
    let deadline = std::time::Instant::now() + tt_rs::WAIT;
    while cluster.fake().count(cid) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "read ack never stored"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stored = cluster.fake().requests(cid);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].msg::<IMMsgDataReadAck>().unwrap().user_id, 1);
}

#[test]
fn presence_queries_and_p2p_commands_go_through_route_server() {
    let cluster = Cluster::start_fake(HashMap::new());
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice, _) = login(ms1.port, "alice", password("alice"), PC);
    let (mut bob, _) = login(ms2.port, "bob", password("bob"), PC);
    // Bob's PC login is announced to PC clients everywhere.
    let cid = BuddyListCmdID::CID_BUDDY_LIST_STATUS_NOTIFY as u16;
    loop {
        let (_, n) = alice.recv_cmd::<tt_proto::IM::Buddy::IMUserStatNotify>(cid);
        if n.user_stat.user_id == 2 {
            assert_eq!(n.user_stat.status, UserStatType::USER_STATUS_ONLINE);
            break;
        }
    }

    let req = IMUsersStatReq {
        user_id: 0,
        user_id_list: vec![2, 3],
        attach_data: None,
    };
    let (_, rsp) = ask::<_, IMUsersStatRsp>(
        &mut alice,
        SID_BUDDY,
        BuddyListCmdID::CID_BUDDY_LIST_USERS_STATUS_REQUEST as u16,
        3,
        &req,
        BuddyListCmdID::CID_BUDDY_LIST_USERS_STATUS_RESPONSE as u16,
    );
    assert_eq!(rsp.user_id, 1);
    assert_eq!(rsp.attach_data, None);
    let stats: Vec<(u32, UserStatType)> = rsp
        .user_stat_list
        .iter()
        .map(|s| (s.user_id, s.status))
        .collect();
    assert_eq!(
        stats,
        vec![
            (2, UserStatType::USER_STATUS_ONLINE),
            (3, UserStatType::USER_STATUS_OFFLINE)
        ]
    );

    let p2p = IMP2PCmdMsg {
        from_user_id: 1,
        to_user_id: 2,
        cmd_msg_data: "{\"shake\":1}".into(),
    };
    let cid = SwitchServiceCmdID::CID_SWITCH_P2P_CMD as u16;
    alice.send_msg(
        tt_proto::IM::BaseDefine::ServiceID::SID_SWITCH_SERVICE as u16,
        cid,
        4,
        &p2p,
    );
    let (_, got) = bob.recv_cmd::<IMP2PCmdMsg>(cid);
    assert_eq!(got.cmd_msg_data, "{\"shake\":1}");
}

#[test]
fn chat_across_msg_servers_resumes_after_route_server_restarts() {
    let mut cluster = Cluster::start_fake(HashMap::new());
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice, _) = login(ms1.port, "alice", password("alice"), PC);
    let (mut bob, _) = login(ms2.port, "bob", password("bob"), PC);
    send(&mut alice, 1, 1, 2, TEXT, b"before");
    let ack = ack_of(&mut alice, 1);
    until_msg(&mut bob, ack.msg_id);

    cluster.restart_route();
    // Messages sent while the links are down are stored but not relayed
    // (as in the C++); keep sending until one gets through. The reconnect
    // back-off is 4 s, then 8 s...: allow two minutes.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut seq = 2;
    loop {
        send(&mut alice, seq, 1, 2, TEXT, b"after");
        ack_of(&mut alice, seq);
        let mut through = false;
        while let Some(p) = bob.try_recv(Duration::from_millis(500)) {
            through |= p.command_id() == CID_DATA
                && p.msg::<IMMsgData>().is_ok_and(|m| m.msg_data == b"after");
        }
        if through {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "chat never resumed");
        seq += 1;
    }
    // Both msg_servers re-listed their users: presence answers are right again.
    let req = IMUsersStatReq {
        user_id: 0,
        user_id_list: vec![1, 2],
        attach_data: None,
    };
    let (_, rsp) = ask::<_, IMUsersStatRsp>(
        &mut bob,
        SID_BUDDY,
        BuddyListCmdID::CID_BUDDY_LIST_USERS_STATUS_REQUEST as u16,
        500,
        &req,
        BuddyListCmdID::CID_BUDDY_LIST_USERS_STATUS_RESPONSE as u16,
    );
    assert!(rsp
        .user_stat_list
        .iter()
        .all(|s| s.status == UserStatType::USER_STATUS_ONLINE));
}

#[test]
fn receivers_get_pushes_silent_while_online_elsewhere() {
    use tt_proto::IM::Buddy::IMPCLoginStatusNotify;
    let cluster = Cluster::start_fake(HashMap::new());
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice, _) = login(ms1.port, "alice", password("alice"), PC);
    // Carol is here with a phone and a PC: her phone learns the PC is on
    // once route_server told this msg_server.
    let (mut carol_phone, _) = login(ms1.port, "carol", password("carol"), IOS);
    let (_carol_pc, _) = login(ms1.port, "carol", password("carol"), PC);
    let cid = BuddyListCmdID::CID_BUDDY_LIST_PC_LOGIN_STATUS_NOTIFY as u16;
    loop {
        let (_, n) = carol_phone.recv_cmd::<IMPCLoginStatusNotify>(cid);
        if n.login_stat == UserStatType::USER_STATUS_ONLINE {
            break;
        }
    }
    // Dave is online on the other msg_server; bob is offline.
    let (_dave, _) = login(ms2.port, "dave", password("dave"), PC);

    let aes = base::aes::Aes::new(AES_KEY.as_bytes()).unwrap();
    for (seq, to) in [(1u16, 2u32), (2, 3), (3, 4)] {
        let text = aes.encrypt(b"hello").unwrap().into_bytes();
        send(&mut alice, seq, 1, to, TEXT, &text);
        ack_of(&mut alice, seq);
    }
    let push = cluster.push.as_ref().unwrap();
    let deadline = std::time::Instant::now() + tt_rs::WAIT;
    let mut got = push.pushed();
    while got.len() < 3 {
        assert!(std::time::Instant::now() < deadline, "pushes: {got:?}");
        std::thread::sleep(Duration::from_millis(50));
        got = push.pushed();
    }
    got.sort();
    let (normal, silent) = (1, 2);
    let flash = "alice-nick:hello".to_string();
    assert_eq!(
        got,
        vec![
            (2, normal, flash.clone()),
            (3, silent, flash.clone()),
            (4, silent, flash)
        ],
        "offline: normal push; PC on (here or elsewhere): silent"
    );
    let data = push.pushes.lock().unwrap()[0].data.clone();
    assert_eq!(data, r#"{"from_id":1,"msg_type":1}"#);
}

#[test]
fn file_requests_get_a_task_and_the_receiver_is_told() {
    use common::fake_db::FAKE_FILE_CLIENT_PORT;
    use tt_proto::IM::BaseDefine::{FileCmdID, TransferFileType};
    use tt_proto::IM::File::{IMFileNotify, IMFileReq, IMFileRsp};
    let cluster = Cluster::start_fake(HashMap::new());
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice, _) = login(ms1.port, "alice", password("alice"), PC);
    let (mut bob, _) = login(ms2.port, "bob", password("bob"), PC);
    let sid = tt_proto::IM::BaseDefine::ServiceID::SID_FILE as u16;
    let request = |c: &mut PduClient, seq: u16, to: u32, mode: TransferFileType| {
        let req = IMFileReq {
            from_user_id: 1,
            to_user_id: to,
            file_name: "a.txt".into(),
            file_size: 10,
            trans_mode: mode,
        };
        ask::<_, IMFileRsp>(
            c,
            sid,
            FileCmdID::CID_FILE_REQUEST as u16,
            seq,
            &req,
            FileCmdID::CID_FILE_RESPONSE as u16,
        )
        .1
    };
    // The file_server link may still be opening: retry a refusal (bounded).
    let deadline = std::time::Instant::now() + tt_rs::WAIT;
    let offline = loop {
        let rsp = request(&mut alice, 1, 2, TransferFileType::FILE_TYPE_OFFLINE);
        if rsp.result_code == 0 || std::time::Instant::now() > deadline {
            break rsp;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(offline.result_code, 0, "{offline:?}");
    assert_eq!(offline.trans_mode, TransferFileType::FILE_TYPE_OFFLINE);
    assert_eq!(offline.ip_addr_list.len(), 1);
    assert_eq!(offline.ip_addr_list[0].port, FAKE_FILE_CLIENT_PORT);
    let (_, n) = bob.recv_cmd::<IMFileNotify>(FileCmdID::CID_FILE_NOTIFY as u16);
    assert_eq!(
        (n.from_user_id, n.task_id.as_str()),
        (1, offline.task_id.as_str())
    );

    // Online transfers depend on the receiver's status, asked of route_server.
    let online = request(&mut alice, 2, 2, TransferFileType::FILE_TYPE_ONLINE);
    assert_eq!(online.trans_mode, TransferFileType::FILE_TYPE_ONLINE);
    let to_carol = request(&mut alice, 3, 3, TransferFileType::FILE_TYPE_ONLINE);
    assert_eq!(
        to_carol.trans_mode,
        TransferFileType::FILE_TYPE_OFFLINE,
        "carol is offline"
    );
    let seen = cluster
        .file
        .as_ref()
        .unwrap()
        .requests
        .lock()
        .unwrap()
        .clone();
    assert!(seen.iter().all(|r| r.from_user_id == 1));
}
