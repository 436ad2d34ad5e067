//! route_server end to end: the real binary on a free loopback port, fake
//! msg_servers as `PduClient`s.
//!
//! Ordering between links is made deterministic with a barrier: a
//! `CID_BUDDY_LIST_USERS_STATUS_REQUEST` round trip on a link proves that
//! everything sent on it before was handled, and whatever the server sent
//! to a link before handling that request arrives before its response.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base::ImPdu;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tt_proto::IM::BaseDefine::{
    BuddyListCmdID, ClientType, FileCmdID, GroupCmdID, MessageCmdID, MsgType, OtherCmdID,
    ServerUserStat, ServiceID, SwitchServiceCmdID, UserStatType,
};
use tt_proto::IM::Buddy::{IMUserStatNotify, IMUsersStatReq, IMUsersStatRsp};
use tt_proto::IM::Message::IMMsgData;
use tt_proto::IM::Server::{
    IMOnlineUserInfo, IMRoleSet, IMServerKickUser, IMServerPCLoginStatusNotify, IMUserStatusUpdate,
};
use tt_rs::{free_port, run_to_exit, PduClient, ServerProcess, WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_route_server");
const CONF: &str = "routeserver.conf";

const SID_OTHER: u16 = ServiceID::SID_OTHER as u16;
const SID_BUDDY: u16 = ServiceID::SID_BUDDY_LIST as u16;
const CID_HEARTBEAT: u16 = OtherCmdID::CID_OTHER_HEARTBEAT as u16;
const CID_STATUS_UPDATE: u16 = OtherCmdID::CID_OTHER_USER_STATUS_UPDATE as u16;
const CID_ONLINE_USER_INFO: u16 = OtherCmdID::CID_OTHER_ONLINE_USER_INFO as u16;
const CID_LOGIN_STATUS_NOTIFY: u16 = OtherCmdID::CID_OTHER_LOGIN_STATUS_NOTIFY as u16;
const CID_STATUS_NOTIFY: u16 = BuddyListCmdID::CID_BUDDY_LIST_STATUS_NOTIFY as u16;
const CID_STATUS_REQ: u16 = BuddyListCmdID::CID_BUDDY_LIST_USERS_STATUS_REQUEST as u16;
const CID_STATUS_RSP: u16 = BuddyListCmdID::CID_BUDDY_LIST_USERS_STATUS_RESPONSE as u16;
const CID_MSG_DATA: u16 = MessageCmdID::CID_MSG_DATA as u16;

const ONLINE: u32 = UserStatType::USER_STATUS_ONLINE as u32;
const OFFLINE: u32 = UserStatType::USER_STATUS_OFFLINE as u32;
const WINDOWS: ClientType = ClientType::CLIENT_TYPE_WINDOWS;
const MAC: ClientType = ClientType::CLIENT_TYPE_MAC;
const ANDROID: ClientType = ClientType::CLIENT_TYPE_ANDROID;

fn conf(port: u16) -> String {
    format!("ListenIP=127.0.0.1\nListenMsgPort={port}\n")
}

fn start() -> (ServerProcess, u16) {
    let port = free_port();
    let mut server = ServerProcess::start(BIN, CONF, &conf(port));
    server.wait_listening(port);
    (server, port)
}

/// A fake msg_server: a PDU link plus a running seq for barriers.
struct MsgServer {
    link: PduClient,
    seq: u16,
    /// PDUs received during a barrier and not looked at yet.
    pending: Vec<ImPdu>,
}

impl MsgServer {
    /// Connects and waits until the server has registered the link.
    fn connect(port: u16) -> MsgServer {
        let mut m = MsgServer {
            link: PduClient::connect(port),
            seq: 0,
            pending: Vec::new(),
        };
        m.sync();
        m
    }

    fn status_update(&mut self, user_id: u32, status: u32, client_type: ClientType) {
        let msg = IMUserStatusUpdate {
            user_status: status,
            user_id,
            client_type,
        };
        self.link.send_msg(SID_OTHER, CID_STATUS_UPDATE, 0, &msg);
    }

    fn online_user_info(&mut self, list: &[(u32, ClientType)]) {
        let msg = IMOnlineUserInfo {
            user_stat_list: list
                .iter()
                .map(|&(user_id, client_type)| ServerUserStat {
                    user_id,
                    status: UserStatType::USER_STATUS_ONLINE,
                    client_type,
                })
                .collect(),
        };
        self.link.send_msg(SID_OTHER, CID_ONLINE_USER_INFO, 0, &msg);
    }

    /// Sends a status request and returns the response with every other
    /// PDU (heartbeats excepted) received before it.
    fn query(&mut self, req: &IMUsersStatReq) -> (ImPdu, IMUsersStatRsp, Vec<ImPdu>) {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.link.send_msg(SID_BUDDY, CID_STATUS_REQ, seq, req);
        let mut before = Vec::new();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let pdu = self.link.recv();
            if pdu.command_id() == CID_STATUS_RSP && pdu.seq_num() == seq {
                let rsp = pdu.msg::<IMUsersStatRsp>().unwrap();
                return (pdu, rsp, before);
            }
            if pdu.command_id() != CID_HEARTBEAT {
                before.push(pdu);
            }
        }
        panic!("no status response with seq {seq}");
    }

    /// The barrier: returns what arrived before it.
    fn sync(&mut self) -> Vec<ImPdu> {
        self.query(&IMUsersStatReq::default()).2
    }

    /// Status of each of `users`, as the server reports them.
    fn statuses(&mut self, users: &[u32]) -> Vec<UserStatType> {
        let req = IMUsersStatReq {
            user_id: 1,
            user_id_list: users.to_vec(),
            attach_data: None,
        };
        let (_, rsp, _) = self.query(&req);
        assert_eq!(rsp.user_stat_list.len(), users.len());
        for (stat, &user) in rsp.user_stat_list.iter().zip(users) {
            assert_eq!(stat.user_id, user);
        }
        rsp.user_stat_list.iter().map(|s| s.status).collect()
    }
}

/// A presence notification as a comparable value.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Seen {
    /// `CID_OTHER_LOGIN_STATUS_NOTIFY` (user, login_status 1 on / 0 off).
    PcLogin(u32, u32),
    /// `CID_BUDDY_LIST_STATUS_NOTIFY` (user, status).
    Status(u32, u32),
    /// Anything else, by command id.
    Other(u16),
}

fn seen(pdus: &[ImPdu]) -> Vec<Seen> {
    pdus.iter()
        .map(|p| match p.command_id() {
            CID_LOGIN_STATUS_NOTIFY => {
                assert_eq!(p.service_id(), SID_OTHER);
                let m = p.msg::<IMServerPCLoginStatusNotify>().unwrap();
                Seen::PcLogin(m.user_id, m.login_status)
            }
            CID_STATUS_NOTIFY => {
                assert_eq!(p.service_id(), SID_BUDDY);
                let m = p.msg::<IMUserStatNotify>().unwrap();
                Seen::Status(m.user_stat.user_id, m.user_stat.status as u32)
            }
            other => Seen::Other(other),
        })
        .collect()
}

fn raw_pdu(sid: u16, cid: u16, seq: u16, body: &[u8]) -> ImPdu {
    let mut pdu = ImPdu::new(sid, cid);
    pdu.set_seq_num(seq);
    pdu.set_body(body).unwrap();
    pdu
}

/// Receives until a PDU with `cid` (heartbeats and notifications skipped).
fn recv_cid(c: &mut PduClient, cid: u16) -> ImPdu {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let pdu = c.recv();
        if pdu.command_id() == cid {
            return pdu;
        }
    }
    panic!("no command {cid:#x}");
}

#[test]
fn msg_data_goes_to_the_other_msg_servers_unchanged() {
    // A one-to-one message goes only where its users are (the C++: to
    // every other link); a group message to every other link.
    let (_server, port) = start();
    let mut a = MsgServer::connect(port);
    let mut b = MsgServer::connect(port);
    let mut c = MsgServer::connect(port);
    a.status_update(100, ONLINE, WINDOWS);
    a.sync();

    let mut msg = IMMsgData {
        from_user_id: 200,
        to_session_id: 100,
        msg_id: 7,
        create_time: 1_700_000_000,
        msg_type: MsgType::MSG_TYPE_SINGLE_TEXT,
        msg_data: b"hello".to_vec(),
        attach_data: Some(b"attach".to_vec()),
    };
    let sent = ImPdu::with_msg(ServiceID::SID_MSG as u16, CID_MSG_DATA, 4242, &msg).unwrap();
    b.link.send(&sent);

    let got = recv_cid(&mut a.link, CID_MSG_DATA);
    assert_eq!(got.as_bytes(), sent.as_bytes(), "relayed byte for byte");
    // B's barrier proves its own message was handled without coming back.
    let before = b.sync();
    assert!(
        before.iter().all(|p| p.command_id() != CID_MSG_DATA),
        "the sender got its own message back: {:?}",
        seen(&before)
    );
    let at_c = c.sync();
    assert!(
        at_c.iter().all(|p| p.command_id() != CID_MSG_DATA),
        "a link holding neither user got it: {:?}",
        seen(&at_c)
    );

    msg.msg_type = MsgType::MSG_TYPE_GROUP_TEXT;
    msg.to_session_id = 9;
    let group = ImPdu::with_msg(ServiceID::SID_MSG as u16, CID_MSG_DATA, 4243, &msg).unwrap();
    b.link.send(&group);
    let got = recv_cid(&mut c.link, CID_MSG_DATA);
    assert_eq!(
        got.as_bytes(),
        group.as_bytes(),
        "a group message reaches every link"
    );
    let got = recv_cid(&mut a.link, CID_MSG_DATA);
    assert_eq!(got.as_bytes(), group.as_bytes());

    // A one-to-one message to a user no link reported (its msg_server may
    // have answered the login before its status update got here): every
    // other link, as in the C++.
    msg.msg_type = MsgType::MSG_TYPE_SINGLE_TEXT;
    msg.to_session_id = 300;
    let unknown = ImPdu::with_msg(ServiceID::SID_MSG as u16, CID_MSG_DATA, 4244, &msg).unwrap();
    b.link.send(&unknown);
    assert_eq!(
        recv_cid(&mut a.link, CID_MSG_DATA).as_bytes(),
        unknown.as_bytes()
    );
    assert_eq!(
        recv_cid(&mut c.link, CID_MSG_DATA).as_bytes(),
        unknown.as_bytes()
    );
    let before = b.sync();
    assert!(
        before.iter().all(|p| p.command_id() != CID_MSG_DATA),
        "not back to its sender: {:?}",
        seen(&before)
    );
}

#[test]
fn relayed_commands_reach_the_same_links_as_the_cpp() {
    let (_server, port) = start();
    let mut a = MsgServer::connect(port);
    let mut b = MsgServer::connect(port);
    let to_others = [
        (ServiceID::SID_MSG, CID_MSG_DATA),
        (
            ServiceID::SID_SWITCH_SERVICE,
            SwitchServiceCmdID::CID_SWITCH_P2P_CMD as u16,
        ),
        (ServiceID::SID_MSG, MessageCmdID::CID_MSG_READ_NOTIFY as u16),
        (
            ServiceID::SID_GROUP,
            GroupCmdID::CID_GROUP_CHANGE_MEMBER_NOTIFY as u16,
        ),
        (ServiceID::SID_FILE, FileCmdID::CID_FILE_NOTIFY as u16),
        (
            ServiceID::SID_BUDDY_LIST,
            BuddyListCmdID::CID_BUDDY_LIST_REMOVE_SESSION_NOTIFY as u16,
        ),
    ];
    for (i, &(sid, cid)) in to_others.iter().enumerate() {
        // Relayed bodies are opaque to route_server, as in the C++.
        let sent = raw_pdu(sid as u16, cid, i as u16 + 1, &[0x08, i as u8, 0x10, 0x01]);
        b.link.send(&sent);
        let got = recv_cid(&mut a.link, cid);
        assert_eq!(got.as_bytes(), sent.as_bytes(), "command {cid:#x}");
        let before = b.sync();
        assert!(
            before.iter().all(|p| p.command_id() != cid),
            "command {cid:#x} came back to its sender"
        );
    }

    // The signature change goes to every link, the sender included.
    let cid = BuddyListCmdID::CID_BUDDY_LIST_SIGN_INFO_CHANGED_NOTIFY as u16;
    let sent = raw_pdu(SID_BUDDY, cid, 9, &[0x08, 0x05, 0x12, 0x01, b'x']);
    b.link.send(&sent);
    assert_eq!(recv_cid(&mut a.link, cid).as_bytes(), sent.as_bytes());
    assert_eq!(recv_cid(&mut b.link, cid).as_bytes(), sent.as_bytes());

    // An unknown command is ignored and the link stays up.
    b.link.send(&raw_pdu(SID_OTHER, 0x07ff, 1, &[]));
    b.sync();
    let before = a.sync();
    assert!(before.iter().all(|p| p.command_id() != 0x07ff));
}

const CID_KICK: u16 = OtherCmdID::CID_OTHER_SERVER_KICK_USER as u16;

fn kick_pdu(user_id: u32) -> ImPdu {
    let kick = IMServerKickUser {
        user_id,
        client_type: ANDROID,
        reason: tt_proto::IM::BaseDefine::KickReasonType::KICK_REASON_DUPLICATE_USER as u32,
    };
    ImPdu::with_msg(SID_OTHER, CID_KICK, 0, &kick).unwrap()
}

fn kicks_in(pdus: &[ImPdu]) -> Vec<u32> {
    pdus.iter()
        .filter(|p| p.command_id() == CID_KICK)
        .map(|p| p.msg::<IMServerKickUser>().unwrap().user_id)
        .collect()
}

/// Not in the C++ (which sends every kick to every other link): a
/// duplicate-login kick reaches only the links that hold the user, or that
/// sent a kick for it and have not reported it online yet; the login
/// itself (kick, then status update) reaches no other link.
#[test]
fn a_kick_reaches_only_the_msg_servers_that_hold_the_user() {
    let (_server, port) = start();
    let mut a = MsgServer::connect(port);
    let mut b = MsgServer::connect(port);
    let mut c = MsgServer::connect(port);
    // User 100 logs in on A, as msg_server does it: the kick, then online.
    a.link.send(&kick_pdu(100));
    a.status_update(100, ONLINE, ANDROID);
    a.sync();
    assert!(kicks_in(&b.sync()).is_empty(), "B does not hold 100");
    assert!(kicks_in(&c.sync()).is_empty(), "C does not hold 100");

    // A duplicate login of 100 on B kicks it on A, byte for byte, not on C.
    let sent = kick_pdu(100);
    b.link.send(&sent);
    let got = recv_cid(&mut a.link, CID_KICK);
    assert_eq!(got.as_bytes(), sent.as_bytes(), "relayed byte for byte");
    b.sync();
    assert!(kicks_in(&c.sync()).is_empty(), "C does not hold 100");
    assert!(kicks_in(&b.sync()).is_empty(), "not back to its sender");
    a.status_update(100, OFFLINE, ANDROID);
    b.status_update(100, ONLINE, ANDROID);
    b.sync();

    // Two logins of 200 at once, on A and C: each kick was sent before its
    // status update, so the later kick finds the earlier login.
    a.link.send(&kick_pdu(200));
    a.sync();
    c.link.send(&kick_pdu(200));
    c.sync();
    assert_eq!(
        kicks_in(&a.sync()),
        vec![200],
        "A's login of 200 was pending"
    );
    assert!(kicks_in(&b.sync()).is_empty(), "B holds no 200");

    // An undecodable kick closes that link only.
    c.link.send(&raw_pdu(SID_OTHER, CID_KICK, 1, &[0x08, 0x01]));
    assert!(c.link.is_closed_by_peer());
    assert_eq!(b.statuses(&[100]).len(), 1, "the others carry on");
}

#[test]
fn status_request_follows_get_status() {
    let (_server, port) = start();
    let mut a = MsgServer::connect(port);
    a.status_update(1, ONLINE, WINDOWS); // PC: online
    a.status_update(2, ONLINE, ANDROID); // mobile only: offline
    a.status_update(3, ONLINE, ANDROID); // mobile, then PC too: online
    a.status_update(3, ONLINE, MAC);
    a.status_update(4, UserStatType::USER_STATUS_LEAVE as u32, WINDOWS); // leave counts as logged in
    a.status_update(5, ONLINE, WINDOWS); // in and out again
    a.status_update(5, OFFLINE, WINDOWS);

    let req = IMUsersStatReq {
        user_id: 77,
        user_id_list: vec![1, 2, 3, 4, 5, 6],
        attach_data: Some(vec![0, 1, 2, 0xff]),
    };
    a.seq = 0x1234;
    let (pdu, rsp, _) = a.query(&req);
    assert_eq!(pdu.service_id(), SID_BUDDY);
    assert_eq!(pdu.seq_num(), 0x1235, "seq echoed");
    assert_eq!(rsp.user_id, 77);
    assert_eq!(rsp.attach_data, Some(vec![0, 1, 2, 0xff]));
    let got: Vec<(u32, UserStatType)> = rsp
        .user_stat_list
        .iter()
        .map(|s| (s.user_id, s.status))
        .collect();
    use UserStatType::{USER_STATUS_OFFLINE as OFF, USER_STATUS_ONLINE as ON};
    assert_eq!(
        got,
        vec![(1, ON), (2, OFF), (3, ON), (4, ON), (5, OFF), (6, OFF)]
    );

    // Like the C++, attach data is always set, empty when not given.
    let (_, rsp, _) = a.query(&IMUsersStatReq {
        user_id: 78,
        user_id_list: vec![],
        attach_data: None,
    });
    assert_eq!(rsp.attach_data, Some(vec![]));
    assert!(rsp.user_stat_list.is_empty());
}

#[test]
fn pc_and_mobile_notify_rules() {
    let (_server, port) = start();
    let mut a = MsgServer::connect(port);
    let mut b = MsgServer::connect(port);
    use Seen::{PcLogin, Status};

    // Runs `step`, then returns what A and B were told because of it.
    let step = |a: &mut MsgServer, b: &mut MsgServer, on_b: bool, user, status, ct| {
        let sender = if on_b { &mut *b } else { &mut *a };
        sender.status_update(user, status, ct);
        sender.sync_into_self();
        let told_a = seen(&a.take_pending_and_sync());
        let told_b = seen(&b.take_pending_and_sync());
        (told_a, told_b)
    };

    // Mobile logs in while no PC is on: nobody is told.
    let (ta, tb) = step(&mut a, &mut b, false, 1, ONLINE, ANDROID);
    assert_eq!((ta, tb), (vec![], vec![]));
    // A PC logs in: everyone (the sender too) hears PC-on and online.
    let (ta, tb) = step(&mut a, &mut b, false, 1, ONLINE, WINDOWS);
    let both = vec![PcLogin(1, 1), Status(1, ONLINE)];
    assert_eq!((ta, tb), (both.clone(), both.clone()));
    // Another PC on another msg_server: told again.
    let (ta, tb) = step(&mut a, &mut b, true, 1, ONLINE, MAC);
    assert_eq!((ta, tb), (both.clone(), both.clone()));
    // A mobile logging in while a PC is on: PC-on again, no buddy status.
    let (ta, tb) = step(&mut a, &mut b, true, 1, ONLINE, ANDROID);
    assert_eq!((ta, tb), (vec![PcLogin(1, 1)], vec![PcLogin(1, 1)]));
    // One of two PCs leaves: nothing (the user is still on a PC).
    let (ta, tb) = step(&mut a, &mut b, true, 1, OFFLINE, MAC);
    assert_eq!((ta, tb), (vec![], vec![]));
    // The last PC leaves while mobiles remain: PC-off and offline.
    let (ta, tb) = step(&mut a, &mut b, false, 1, OFFLINE, WINDOWS);
    let off = vec![PcLogin(1, 0), Status(1, OFFLINE)];
    assert_eq!((ta, tb), (off.clone(), off.clone()));
    // Mobiles leave: nothing.
    let (ta, tb) = step(&mut a, &mut b, false, 1, OFFLINE, ANDROID);
    assert_eq!((ta, tb), (vec![], vec![]));
    let (ta, tb) = step(&mut a, &mut b, true, 1, OFFLINE, ANDROID);
    assert_eq!((ta, tb), (vec![], vec![]));
    assert_eq!(a.statuses(&[1]), vec![UserStatType::USER_STATUS_OFFLINE]);

    // A PC-only user logging out leaves the table: only the buddy status
    // goes out (the C++ sends PC-off only while the user is still there).
    let (ta, tb) = step(&mut a, &mut b, false, 2, ONLINE, WINDOWS);
    assert_eq!(ta, vec![PcLogin(2, 1), Status(2, ONLINE)]);
    assert_eq!(tb, ta);
    let (ta, tb) = step(&mut a, &mut b, false, 2, OFFLINE, WINDOWS);
    assert_eq!(
        (ta, tb),
        (vec![Status(2, OFFLINE)], vec![Status(2, OFFLINE)])
    );
    // An offline for a client this link never reported: the table does not
    // change, and the PC rule still announces the offline (as the C++).
    let (ta, tb) = step(&mut a, &mut b, true, 3, OFFLINE, WINDOWS);
    assert_eq!(
        (ta, tb),
        (vec![Status(3, OFFLINE)], vec![Status(3, OFFLINE)])
    );

    // The role set is accepted and changes nothing visible.
    a.link.send_msg(
        SID_OTHER,
        OtherCmdID::CID_OTHER_ROLE_SET as u16,
        0,
        &IMRoleSet { master: 1 },
    );
    assert!(a.sync().is_empty());
}

impl MsgServer {
    /// A barrier on the sender's own link; what it received meanwhile is
    /// kept for [`take_pending_and_sync`].
    fn sync_into_self(&mut self) {
        let before = self.sync();
        self.pending.extend(before);
    }

    /// What arrived since the last call: pending PDUs plus a fresh barrier.
    fn take_pending_and_sync(&mut self) -> Vec<ImPdu> {
        let mut all = std::mem::take(&mut self.pending);
        all.extend(self.sync());
        all
    }
}

#[test]
fn a_lost_link_takes_its_users_and_announces_them_offline() {
    let (server, port) = start();
    let mut a = MsgServer::connect(port);
    let mut b = MsgServer::connect(port);
    a.status_update(5, ONLINE, WINDOWS); // PC only on A
    a.status_update(6, ONLINE, WINDOWS); // PC on A, mobile on B
    a.status_update(7, ONLINE, WINDOWS); // PC on A and on B
    a.status_update(8, ONLINE, ANDROID); // mobile only on A
    a.sync();
    b.status_update(6, ONLINE, ANDROID);
    b.status_update(7, ONLINE, MAC);
    b.sync();
    assert_eq!(
        b.statuses(&[5, 6, 7, 8]),
        [ONLINE, ONLINE, ONLINE, OFFLINE].map(|s| UserStatType::from(s as i32))
    );

    drop(a);
    server.wait_log("lost: 3 users with a PC client on it");
    let told = seen(&b.sync());
    // 5 left the table: offline; 6 still has a mobile: PC-off and offline;
    // 7 still has a PC on B: nothing; 8 had no PC: nothing.
    assert_eq!(
        told,
        vec![
            Seen::Status(5, OFFLINE),
            Seen::PcLogin(6, 0),
            Seen::Status(6, OFFLINE),
        ]
    );
    assert_eq!(
        b.statuses(&[5, 6, 7, 8]),
        [OFFLINE, OFFLINE, ONLINE, OFFLINE].map(|s| UserStatType::from(s as i32))
    );

    // The msg_server comes back (as after a network blip) and lists its
    // users again: the ones announced offline are announced online.
    let mut a2 = MsgServer::connect(port);
    a2.online_user_info(&[(5, WINDOWS), (6, WINDOWS), (7, WINDOWS), (8, ANDROID)]);
    a2.sync();
    let told = seen(&b.sync());
    assert_eq!(
        told,
        vec![
            Seen::PcLogin(5, 1),
            Seen::Status(5, ONLINE),
            Seen::PcLogin(6, 1),
            Seen::Status(6, ONLINE),
        ]
    );
    assert_eq!(
        b.statuses(&[5, 6, 7, 8]),
        [ONLINE, ONLINE, ONLINE, OFFLINE].map(|s| UserStatType::from(s as i32))
    );
}

#[test]
fn a_thousand_msg_servers_come_and_go_and_leave_nothing() {
    const LINKS: u32 = 1000;
    const BATCH: u32 = 100;
    const FIRST_USER: u32 = 10_000;
    let (server, port) = start();
    let mut observer = MsgServer::connect(port);
    let all_users: Vec<u32> = (FIRST_USER..FIRST_USER + LINKS).collect();

    for batch in 0..LINKS / BATCH {
        let users: Vec<u32> = (0..BATCH).map(|i| FIRST_USER + batch * BATCH + i).collect();
        let mut links: Vec<MsgServer> = users
            .iter()
            .map(|&user| {
                let mut m = MsgServer::connect(port);
                m.status_update(user, ONLINE, WINDOWS);
                m.status_update(user + LINKS, ONLINE, ANDROID);
                m
            })
            .collect();
        for m in &mut links {
            m.sync();
        }
        assert!(
            observer
                .statuses(&users)
                .iter()
                .all(|&s| s == UserStatType::USER_STATUS_ONLINE),
            "batch {batch} registered"
        );
        drop(links);
    }

    // Every link is gone: every user, PC or mobile, is out of the table.
    // (Mobile-only users read offline anyway; that their entries went too
    // shows in the server's own count below.)
    let deadline = Instant::now() + WAIT;
    loop {
        let statuses = observer.statuses(&all_users);
        if statuses
            .iter()
            .all(|&s| s == UserStatType::USER_STATUS_OFFLINE)
        {
            break;
        }
        assert!(Instant::now() < deadline, "users still online");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The last link closes with only the observer left.
    server.wait_log("lost: 1 users with a PC client on it; 1 links and 0 users left");
    let log = server.log();
    let lost = log.matches("msg_server 127.0.0.1:").count();
    assert!(
        lost >= 2 * LINKS as usize,
        "each link logged connected and lost"
    );
}

#[test]
fn garbage_closes_only_that_link() {
    let (_server, port) = start();
    let mut a = MsgServer::connect(port);
    let mut b = MsgServer::connect(port);

    // Framing garbage: a length below the header size.
    let mut g1 = MsgServer::connect(port);
    g1.link
        .send_raw(&[0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(g1.link.is_closed_by_peer());

    // A well-framed PDU whose body route_server must read and cannot.
    let mut g2 = MsgServer::connect(port);
    g2.status_update(30, ONLINE, WINDOWS);
    g2.link.send(&raw_pdu(
        SID_OTHER,
        CID_STATUS_UPDATE,
        0,
        &[0xff, 0xff, 0xff],
    ));
    assert!(g2.link.is_closed_by_peer());

    // A body missing a required field is refused the same way.
    let mut g3 = MsgServer::connect(port);
    g3.link
        .send(&raw_pdu(SID_BUDDY, CID_STATUS_REQ, 1, &[0x10, 0x05]));
    assert!(g3.link.is_closed_by_peer());

    // The others still relay, and g2's user went with its link.
    let sent = raw_pdu(ServiceID::SID_MSG as u16, CID_MSG_DATA, 3, &[0x08, 0x01]);
    b.link.send(&sent);
    assert_eq!(
        recv_cid(&mut a.link, CID_MSG_DATA).as_bytes(),
        sent.as_bytes()
    );
    assert_eq!(a.statuses(&[30]), vec![UserStatType::USER_STATUS_OFFLINE]);
}

#[test]
fn heartbeats_an_idle_link() {
    let (_server, port) = start();
    let mut a = MsgServer::connect(port);
    // The server heartbeats after 5 s without sending (bounded by WAIT).
    let pdu = a.link.recv();
    assert_eq!(pdu.command_id(), CID_HEARTBEAT);
    assert_eq!(pdu.service_id(), SID_OTHER);
}

#[test]
fn listens_on_every_listed_address() {
    let port = free_port();
    let conf = format!("ListenIP=127.0.0.1;127.0.0.2\nListenMsgPort={port}\n");
    let mut server = ServerProcess::start(BIN, CONF, &conf);
    server.wait_listening(port);
    server.wait_log(&format!("listening for msg_servers on 127.0.0.2:{port}"));
    let mut s = TcpStream::connect(("127.0.0.2", port)).unwrap();
    // A status request on the second address is answered.
    let req = ImPdu::with_msg(SID_BUDDY, CID_STATUS_REQ, 3, &IMUsersStatReq::default()).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut head = [0u8; 16];
    s.read_exact(&mut head).unwrap();
    let h = base::PduHeader::parse(&head).unwrap().unwrap();
    assert_eq!((h.command_id, h.seq_num), (CID_STATUS_RSP, 3));
}

#[test]
fn missing_listen_msg_port_exits_naming_it() {
    let (code, out) = run_to_exit(BIN, CONF, "ListenIP=127.0.0.1\n", &[]);
    assert_ne!(code, Some(0), "{out}");
    assert!(code.is_some(), "killed by a signal: {out}");
    assert!(out.contains("ListenMsgPort"), "{out}");

    let (code, out) = run_to_exit(BIN, CONF, "ListenMsgPort=8200\n", &[]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("ListenIP"), "{out}");

    let (code, out) = run_to_exit(BIN, CONF, "ListenIP=127.0.0.1\nListenMsgPort=x\n", &[]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("ListenMsgPort"), "{out}");
}

/// Just after route_server starts (a restart), what the first msg_server
/// to link relays reaches the ones that link a little later, once each,
/// even when a port probe came and went in between (not in the C++).
#[test]
fn what_is_relayed_just_after_start_reaches_the_msg_servers_that_link_later() {
    let (_server, port) = start();
    let mut a = MsgServer::connect(port);
    a.online_user_info(&[(200, WINDOWS)]);
    let msg = IMMsgData {
        from_user_id: 200,
        to_session_id: 100,
        msg_id: 8,
        create_time: 1_700_000_000,
        msg_type: MsgType::MSG_TYPE_SINGLE_TEXT,
        msg_data: b"early".to_vec(),
        attach_data: None,
    };
    let sent = ImPdu::with_msg(ServiceID::SID_MSG as u16, CID_MSG_DATA, 9, &msg).unwrap();
    a.link.send(&sent);
    a.sync();
    // A health check connects and goes: it is no msg_server.
    drop(std::net::TcpStream::connect(("127.0.0.1", port)).unwrap());
    let mut b = MsgServer::connect(port);
    b.online_user_info(&[(100, WINDOWS)]);
    let got = recv_cid(&mut b.link, CID_MSG_DATA);
    assert_eq!(got.as_bytes(), sent.as_bytes(), "sent on, byte for byte");
    let before = b.sync();
    assert!(
        before.iter().all(|p| p.command_id() != CID_MSG_DATA),
        "once: {:?}",
        seen(&before)
    );
    // Nothing comes back to its sender.
    let before = a.sync();
    assert!(before.iter().all(|p| p.command_id() != CID_MSG_DATA));
}
