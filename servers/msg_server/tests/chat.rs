//! Chat end to end with the real db_proxy_server, MariaDB and Redis:
//! messages stored for an offline user are found as unread counts and in
//! the message list when it logs in; then live chat across msg_servers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base::pdu::ImPdu;
use common::*;
use tt_proto::IM::BaseDefine::{BuddyListCmdID, MessageCmdID, MsgType, SessionType};
use tt_proto::IM::Buddy::{IMRecentContactSessionReq, IMRecentContactSessionRsp};
use tt_proto::IM::Message::{
    IMGetMsgListReq, IMGetMsgListRsp, IMMsgData, IMMsgDataAck, IMUnreadMsgCntReq, IMUnreadMsgCntRsp,
};
use tt_rs::PduClient;

use MessageCmdID as M;

fn send(c: &mut PduClient, seq: u16, from: u32, to: u32, text: &str) -> IMMsgDataAck {
    let msg = msg_data(from, to, MsgType::MSG_TYPE_SINGLE_TEXT, &encrypted(text));
    send_and_ack(c, seq, &msg)
}

#[test]
fn offline_messages_are_found_at_login_then_chat_goes_both_ways() {
    let cluster = Cluster::start();
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut alice, _) = login(ms1.port, "alice", password("alice"), PC);

    let first = send(&mut alice, 1, 1, 2, "are you there?");
    let second = send(&mut alice, 2, 1, 2, "bob?");
    assert!(
        first.msg_id > 0 && second.msg_id > first.msg_id,
        "{first:?} {second:?}"
    );

    let (mut bob, _) = login(ms2.port, "bob", password("bob"), PC);
    let req = IMUnreadMsgCntReq {
        user_id: 0,
        attach_data: None,
    };
    let (_, unread) = ask::<_, IMUnreadMsgCntRsp>(
        &mut bob,
        SID_MSG,
        M::CID_MSG_UNREAD_CNT_REQUEST as u16,
        3,
        &req,
        M::CID_MSG_UNREAD_CNT_RESPONSE as u16,
    );
    assert_eq!((unread.user_id, unread.total_cnt), (2, 2), "{unread:?}");
    let from_alice = unread
        .unreadinfo_list
        .iter()
        .find(|u| u.session_id == 1)
        .expect("unread from alice");
    assert_eq!(from_alice.unread_cnt, 2);
    assert_eq!(from_alice.latest_msg_id, second.msg_id);

    let req = IMGetMsgListReq {
        user_id: 0,
        session_type: SessionType::SESSION_TYPE_SINGLE,
        session_id: 1,
        msg_id_begin: 0,
        msg_cnt: 10,
        attach_data: None,
    };
    let (_, list) = ask::<_, IMGetMsgListRsp>(
        &mut bob,
        SID_MSG,
        M::CID_MSG_LIST_REQUEST as u16,
        4,
        &req,
        M::CID_MSG_LIST_RESPONSE as u16,
    );
    assert_eq!(list.user_id, 2);
    let mut got: Vec<(u32, Vec<u8>)> = list
        .msg_list
        .iter()
        .map(|m| (m.msg_id, m.msg_data.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (first.msg_id, encrypted("are you there?")),
            (second.msg_id, encrypted("bob?"))
        ]
    );

    // Live, across msg_servers, both ways.
    let ack = send(&mut bob, 5, 2, 1, "here!");
    let m = recv_msg(&mut alice, ack.msg_id);
    assert_eq!((m.from_user_id, m.to_session_id), (2, 1));
    assert_eq!(m.msg_data, encrypted("here!"));
    let ack = send(&mut alice, 6, 1, 2, "great");
    let m = recv_msg(&mut bob, ack.msg_id);
    assert_eq!(m.msg_data, encrypted("great"));

    // Bob's recent sessions list alice with the latest message.
    let req = IMRecentContactSessionReq {
        user_id: 0,
        latest_update_time: 0,
        attach_data: None,
    };
    let (_, rsp) = ask::<_, IMRecentContactSessionRsp>(
        &mut bob,
        SID_BUDDY,
        BuddyListCmdID::CID_BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST as u16,
        7,
        &req,
        BuddyListCmdID::CID_BUDDY_LIST_RECENT_CONTACT_SESSION_RESPONSE as u16,
    );
    assert_eq!(rsp.user_id, 2);
    let s = rsp
        .contact_session_list
        .iter()
        .find(|s| s.session_id == 1)
        .expect("a session with alice");
    assert_eq!(s.latest_msg_id, ack.msg_id);
}

#[test]
fn a_group_of_twenty_over_two_msg_servers_gets_each_message_once() {
    use tt_proto::IM::BaseDefine::{GroupCmdID, GroupType};
    use tt_proto::IM::Group::{IMGroupCreateReq, IMGroupCreateRsp};

    let cluster = Cluster::start();
    let db = cluster.db.as_ref().unwrap();
    let extra: Vec<(u32, String)> = (10..26).map(|id| (id, format!("user{id}"))).collect();
    for (id, name) in &extra {
        add_user(db, *id, name, "pw");
    }
    let ms = [cluster.start_msg_server(), cluster.start_msg_server()];
    let mut members: Vec<(u32, PduClient)> = Vec::new();
    for (i, (id, name, pw)) in USERS.iter().enumerate() {
        members.push((*id, login(ms[i % 2].port, name, pw, PC).0));
    }
    for (i, (id, name)) in extra.iter().enumerate() {
        members.push((*id, login(ms[i % 2].port, name, "pw", PC).0));
    }
    assert_eq!(members.len(), 20);

    let ids: Vec<u32> = members.iter().map(|(id, _)| *id).collect();
    let req = IMGroupCreateReq {
        user_id: 0,
        group_type: GroupType::GROUP_TYPE_TMP,
        group_name: "twenty".into(),
        group_avatar: String::new(),
        member_id_list: ids.clone(),
        attach_data: None,
    };
    let (_, created) = ask::<_, IMGroupCreateRsp>(
        &mut members[0].1,
        SID_GROUP,
        GroupCmdID::CID_GROUP_CREATE_REQUEST as u16,
        1,
        &req,
        GroupCmdID::CID_GROUP_CREATE_RESPONSE as u16,
    );
    assert_eq!(created.result_code, 0, "{created:?}");
    let group_id = created.group_id.expect("group id");

    // Three senders on both msg_servers, two messages each.
    let mut sent = Vec::new();
    let mut early: Vec<Vec<ImPdu>> = vec![Vec::new(); members.len()];
    for (k, sender) in [0usize, 1, 7].into_iter().enumerate() {
        for j in 0..2u16 {
            let seq = 10 + (k as u16) * 2 + j;
            let from = members[sender].0;
            let msg = IMMsgData {
                from_user_id: from,
                to_session_id: group_id,
                msg_id: 0,
                create_time: 0,
                msg_type: MsgType::MSG_TYPE_GROUP_TEXT,
                msg_data: encrypted(&format!("m{seq}")),
                attach_data: None,
            };
            let c = &mut members[sender].1;
            c.send_msg(SID_MSG, M::CID_MSG_DATA as u16, seq, &msg);
            let ack: IMMsgDataAck = loop {
                let pdu = c.recv();
                if pdu.command_id() == M::CID_MSG_DATA_ACK as u16 && pdu.seq_num() == seq {
                    break pdu.msg().unwrap();
                }
                // What arrives meanwhile is checked below.
                early[sender].push(pdu);
            };
            assert_eq!(ack.session_type, SessionType::SESSION_TYPE_GROUP);
            sent.push((from, ack.msg_id));
        }
    }
    // A final message from member 0 marks the end of each stream.
    let marker = {
        let c = &mut members[0].1;
        let msg = IMMsgData {
            from_user_id: 1,
            to_session_id: group_id,
            msg_id: 0,
            create_time: 0,
            msg_type: MsgType::MSG_TYPE_GROUP_TEXT,
            msg_data: encrypted("end"),
            attach_data: None,
        };
        c.send_msg(SID_MSG, M::CID_MSG_DATA as u16, 99, &msg);
        loop {
            let pdu = c.recv();
            if pdu.command_id() == M::CID_MSG_DATA_ACK as u16 && pdu.seq_num() == 99 {
                break pdu.msg::<IMMsgDataAck>().unwrap().msg_id;
            }
            early[0].push(pdu);
        }
    };
    for (i, (id, c)) in members.iter_mut().enumerate().skip(1) {
        let mut got = Vec::new();
        let mut backlog = std::mem::take(&mut early[i]).into_iter();
        loop {
            let pdu = backlog.next().unwrap_or_else(|| c.recv());
            if pdu.command_id() != M::CID_MSG_DATA as u16 {
                continue;
            }
            let m: IMMsgData = pdu.msg().unwrap();
            assert_eq!(m.to_session_id, group_id);
            if m.msg_id == marker {
                break;
            }
            got.push((m.from_user_id, m.msg_id));
        }
        let want: Vec<(u32, u32)> = sent
            .iter()
            .filter(|(from, _)| from != id)
            .copied()
            .collect();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(
            got_sorted, want_sorted,
            "user {id}: every message of the others exactly once"
        );
    }
}
