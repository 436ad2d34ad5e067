//! msg_server in a real cluster: logins, kicks, refusals, and peers going
//! away and coming back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::{Duration, Instant};
use tt_proto::IM::BaseDefine::{
    BuddyListCmdID, KickReasonType, LoginCmdID, MessageCmdID, OtherCmdID, ResultType, UserStatType,
};
use tt_proto::IM::Buddy::{IMUsersInfoReq, IMUsersInfoRsp};
use tt_proto::IM::Login::{IMKickUser, IMLogoutReq, IMLogoutRsp};
use tt_proto::IM::Message::IMClientTimeReq;
use tt_proto::IM::Other::IMHeartBeat;
use tt_rs::{free_port, run_to_exit, PduClient, ServerProcess};

const CID_KICK: u16 = LoginCmdID::CID_LOGIN_KICK_USER as u16;

fn user_info_req(ids: &[u32]) -> IMUsersInfoReq {
    IMUsersInfoReq {
        user_id: 0,
        user_id_list: ids.to_vec(),
        attach_data: None,
    }
}

/// Waits for a kick notice on `c` and checks the connection closes after it.
fn expect_kicked(c: &mut PduClient, user_id: u32, reason: KickReasonType) {
    let (_, kick) = c.recv_cmd::<IMKickUser>(CID_KICK);
    assert_eq!((kick.user_id, kick.kick_reason), (user_id, reason));
    assert!(c.is_closed_by_peer(), "a kicked connection is closed");
}

#[test]
fn login_succeeds_and_wrong_password_is_refused() {
    let cluster = Cluster::start();
    let ms = cluster.start_msg_server();

    let before = unix_now();
    let (mut alice, res) = login(ms.port, "alice", password("alice"), PC);
    assert_eq!(res.result_code, ResultType::REFUSE_REASON_NONE);
    assert!(res.server_time >= before && res.server_time <= unix_now() + 1);
    assert_eq!(res.online_status, Some(UserStatType::USER_STATUS_ONLINE));
    let info = res.user_info.expect("user info");
    assert_eq!(info.user_id, 1);
    assert_eq!(info.user_nick_name, "alice-nick");
    assert_eq!(info.email, "alice@example.com");
    let t = server_time(&mut alice, 3);
    assert!(t >= before && t <= unix_now() + 1);

    let (mut wrong, res) = try_login(ms.port, "alice", "not-her-password", MAC, 7);
    assert_eq!(
        res.result_code,
        ResultType::REFUSE_REASON_DB_VALIDATE_FAILED
    );
    assert_eq!(res.result_string.as_deref(), Some("用户名/密码错误"));
    assert!(res.user_info.is_none());
    assert!(wrong.is_closed_by_peer(), "a refused login is closed");

    let (mut nobody, res) = try_login(ms.port, "nobody", "x", PC, 8);
    assert_eq!(
        res.result_code,
        ResultType::REFUSE_REASON_DB_VALIDATE_FAILED
    );
    assert!(nobody.is_closed_by_peer());

    // The refused attempts did not disturb the logged-in connection.
    assert!(server_time(&mut alice, 4) >= before);
}

#[test]
fn duplicate_login_of_the_same_client_class_kicks_the_first() {
    let cluster = Cluster::start();
    let ms = cluster.start_msg_server();
    let (mut pc, _) = login(ms.port, "alice", password("alice"), PC);
    let (mut phone, _) = login(ms.port, "alice", password("alice"), IOS);
    let (mut mac, res) = login(ms.port, "alice", password("alice"), MAC);
    assert_eq!(res.result_code, ResultType::REFUSE_REASON_NONE);
    expect_kicked(&mut pc, 1, KickReasonType::KICK_REASON_DUPLICATE_USER);

    // The mobile client and the new PC client stay.
    for c in [&mut phone, &mut mac] {
        c.send_msg(
            SID_MSG,
            MessageCmdID::CID_MSG_TIME_REQUEST as u16,
            11,
            &IMClientTimeReq {},
        );
        loop {
            let pdu = c.recv();
            assert_ne!(pdu.command_id(), CID_KICK, "not kicked");
            if pdu.command_id() == MessageCmdID::CID_MSG_TIME_RESPONSE as u16 {
                break;
            }
        }
    }
}

#[test]
fn duplicate_login_on_another_msg_server_kicks_through_route_server() {
    let cluster = Cluster::start();
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut first, _) = login(ms1.port, "bob", password("bob"), PC);
    let (mut second, res) = login(ms2.port, "bob", password("bob"), MAC);
    assert_eq!(res.result_code, ResultType::REFUSE_REASON_NONE);
    expect_kicked(&mut first, 2, KickReasonType::KICK_REASON_DUPLICATE_USER);
    assert!(server_time(&mut second, 2) > 0, "the new login stays");
}

#[test]
fn commands_before_login_are_ignored_then_close_the_connection() {
    let cluster = Cluster::start();
    let ms = cluster.start_msg_server();
    let mut c = PduClient::connect(ms.port);
    let info = BuddyListCmdID::CID_BUDDY_LIST_USER_INFO_REQUEST as u16;
    c.send_msg(SID_BUDDY, info, 1, &user_info_req(&[1]));
    c.send_msg(
        SID_OTHER,
        OtherCmdID::CID_OTHER_HEARTBEAT as u16,
        2,
        &IMHeartBeat {},
    );
    let first = c.recv();
    assert_eq!(
        (first.command_id(), first.seq_num()),
        (OtherCmdID::CID_OTHER_HEARTBEAT as u16, 2),
        "the request before login got no answer; the heartbeat is echoed"
    );
    c.send_msg(SID_BUDDY, info, 3, &user_info_req(&[1]));
    assert!(c.is_closed_by_peer(), "the second violation closes");

    // A client that logs in first is served.
    let (mut alice, _) = login(ms.port, "alice", password("alice"), PC);
    let (_, rsp) = ask::<_, IMUsersInfoRsp>(
        &mut alice,
        SID_BUDDY,
        info,
        4,
        &user_info_req(&[1, 2]),
        BuddyListCmdID::CID_BUDDY_LIST_USER_INFO_RESPONSE as u16,
    );
    assert_eq!(rsp.user_id, 1);
    assert_eq!(rsp.user_info_list.len(), 2);
    assert_eq!(rsp.attach_data, None, "attach data stays between servers");
}

#[test]
fn login_server_counts_our_users() {
    let cluster = Cluster::start();
    let ms = cluster.start_msg_server();
    let (mut alice, _) = login(ms.port, "alice", password("alice"), PC);
    cluster.login.wait_log(&format!(":{}, cur_cnt=1,", ms.port));
    let rsp = cluster.ask_login_server();
    assert_eq!(rsp.result_code, ResultType::REFUSE_REASON_NONE);
    assert_eq!(
        rsp.port,
        Some(u32::from(ms.port)),
        "login_server names our msg_server"
    );
    assert_eq!(rsp.prior_ip.as_deref(), Some("127.0.0.1"));

    let (_, rsp) = ask::<_, IMLogoutRsp>(
        &mut alice,
        SID_LOGIN,
        LoginCmdID::CID_LOGIN_REQ_LOGINOUT as u16,
        5,
        &IMLogoutReq {},
        LoginCmdID::CID_LOGIN_RES_LOGINOUT as u16,
    );
    assert_eq!(rsp.result_code, 0);
    assert!(alice.is_closed_by_peer(), "closed after logout");
    cluster.login.wait_log(&format!(":{}, cur_cnt=0,", ms.port));
}

/// A burst of logins and logouts within the coalescing interval: every
/// update reaches login_server, once, in order.
#[test]
fn login_server_counts_a_burst_of_logins_exactly() {
    let cluster = Cluster::start();
    let ms = cluster.start_msg_server();
    let mut clients = Vec::new();
    for (_, name, pw) in USERS {
        for class in [PC, IOS] {
            clients.push(login(ms.port, name, pw, class).0);
        }
    }
    let port = ms.port;
    cluster.login.wait_log(&format!(":{port}, cur_cnt=8,"));
    drop(clients);
    cluster.login.wait_log(&format!(":{port}, cur_cnt=0,"));
    let log = cluster.login.log();
    for n in 1..=8 {
        let times = if n == 8 { 1 } else { 2 };
        assert_eq!(
            log.matches(&format!(":{port}, cur_cnt={n},")).count(),
            times,
            "the count passes {n} once up and once down:\n{log}"
        );
    }
    assert!(!log.contains(&format!(":{port}, cur_cnt=9,")), "{log}");
}

#[test]
fn a_kicked_connection_is_counted_out_before_its_successor_is_counted_in() {
    let cluster = Cluster::start();
    let ms = cluster.start_msg_server();
    let port = ms.port;
    let (_first, _) = login(ms.port, "alice", password("alice"), PC);
    cluster.login.wait_log(&format!(":{port}, cur_cnt=1,"));
    // The same client class again: the first is kicked.
    let (_second, res) = login(ms.port, "alice", password("alice"), PC);
    assert_eq!(res.result_code, ResultType::REFUSE_REASON_NONE);
    cluster.login.wait_log(&format!(":{port}, cur_cnt=0,"));
    cluster
        .login
        .wait_log_count(&format!(":{port}, cur_cnt=1,"), 2);
    let log = cluster.login.log();
    assert!(
        !log.contains(&format!(":{port}, cur_cnt=2,")),
        "one user on one client class was counted twice:\n{log}"
    );
}

#[test]
fn without_db_proxy_logins_are_refused_and_the_server_stays_up() {
    let cluster = Cluster::start_with(false);
    let ms = cluster.start_msg_server();
    for seq in 1..=2 {
        let (mut c, res) = try_login(ms.port, "alice", password("alice"), PC, seq);
        assert_eq!(res.result_code, ResultType::REFUSE_REASON_NO_DB_SERVER);
        assert_eq!(res.result_string.as_deref(), Some("服务端异常"));
        assert!(c.is_closed_by_peer());
    }
}

#[test]
fn db_proxy_restart_is_survived() {
    let mut cluster = Cluster::start();
    let ms = cluster.start_msg_server();
    let (mut alice, _) = login(ms.port, "alice", password("alice"), PC);

    cluster.stop_db_proxy();
    let deadline = Instant::now() + tt_rs::WAIT;
    loop {
        let (_, res) = try_login(ms.port, "bob", password("bob"), PC, 1);
        if res.result_code == ResultType::REFUSE_REASON_NO_DB_SERVER {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "db_proxy loss never noticed: {res:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    cluster.start_db_proxy();
    // The reconnect back-off is 4 s, then 8 s, 16 s...: allow two minutes.
    let (_, res) = login_within(
        ms.port,
        "bob",
        password("bob"),
        PC,
        Duration::from_secs(120),
    );
    assert_eq!(res.user_info.map(|u| u.user_id), Some(2));
    // The connection that outlived the restart is served again.
    let (_, rsp) = ask::<_, IMUsersInfoRsp>(
        &mut alice,
        SID_BUDDY,
        BuddyListCmdID::CID_BUDDY_LIST_USER_INFO_REQUEST as u16,
        6,
        &user_info_req(&[2]),
        BuddyListCmdID::CID_BUDDY_LIST_USER_INFO_RESPONSE as u16,
    );
    assert_eq!(rsp.user_info_list.len(), 1);
}

#[test]
fn missing_conf_keys_are_named() {
    let cluster_less = "ListenIP=127.0.0.1\nListenPort=1\nIpAddr1=127.0.0.1\nMaxConnCnt=10\n\
        DBServerIP1=127.0.0.1\nDBServerPort1=1\nDBServerIP2=127.0.0.1\nDBServerPort2=1\n";
    let (code, out) = run_to_exit(MSG_SERVER, "msgserver.conf", cluster_less, &[]);
    assert_eq!(code, Some(1));
    assert!(out.contains("aesKey"), "{out}");
    let one_db = format!(
        "{}aesKey={AES_KEY}\n",
        cluster_less.replace("DBServerIP2=127.0.0.1\n", "")
    );
    let (code, out) = run_to_exit(MSG_SERVER, "msgserver.conf", &one_db, &[]);
    assert_eq!(code, Some(1));
    assert!(out.contains("DBServerIP2"), "{out}");
}

#[test]
fn a_phone_kicks_its_users_pc_clients_everywhere() {
    use tt_proto::IM::Login::{IMKickPCClientReq, IMKickPCClientRsp};
    let cluster = Cluster::start();
    let ms1 = cluster.start_msg_server();
    let ms2 = cluster.start_msg_server();
    let (mut pc, _) = login(ms1.port, "carol", password("carol"), MAC);
    let (mut phone, _) = login(ms2.port, "carol", password("carol"), IOS);
    let (_, rsp) = ask::<_, IMKickPCClientRsp>(
        &mut phone,
        SID_LOGIN,
        LoginCmdID::CID_LOGIN_REQ_KICKPCCLIENT as u16,
        4,
        &IMKickPCClientReq { user_id: 0 },
        LoginCmdID::CID_LOGIN_RES_KICKPCCLIENT as u16,
    );
    assert_eq!((rsp.user_id, rsp.result_code), (3, 0));
    expect_kicked(&mut pc, 3, KickReasonType::KICK_REASON_MOBILE_KICK);
    assert!(server_time(&mut phone, 5) > 0, "the phone stays");
}

#[test]
fn a_connection_that_never_logs_in_is_closed_after_15_seconds() {
    let cluster = Cluster::start();
    let ms = cluster.start_msg_server();
    let mut c = PduClient::connect(ms.port);
    let started = Instant::now();
    c.send_msg(
        SID_OTHER,
        OtherCmdID::CID_OTHER_HEARTBEAT as u16,
        1,
        &IMHeartBeat {},
    );
    assert_eq!(c.recv().seq_num(), 1, "open, heartbeat echoed");
    assert!(c.is_closed_by_peer(), "closed without a login");
    assert!(
        started.elapsed() >= Duration::from_secs(14),
        "not before the login wait ran out"
    );
}

#[test]
fn sighup_exits_cleanly() {
    let cluster = Cluster::start_with(false);
    let mut ms = cluster.start_msg_server();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &ms.server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(ms.server.wait_exit(), Some(0));
}

#[test]
fn malformed_input_closes_only_that_connection() {
    let cluster = Cluster::start();
    let ms = cluster.start_msg_server();
    let (mut alice, _) = login(ms.port, "alice", password("alice"), PC);

    // A login body missing its required fields.
    let mut bad_body = PduClient::connect(ms.port);
    bad_body.send_msg(
        SID_LOGIN,
        LoginCmdID::CID_LOGIN_REQ_USERLOGIN as u16,
        1,
        &IMLogoutReq {},
    );
    assert!(bad_body.is_closed_by_peer());
    // A header announcing an impossible length.
    let mut garbage = PduClient::connect(ms.port);
    garbage.send_raw(&[0xff; 16]);
    assert!(garbage.is_closed_by_peer());
    // A logged-in client sending a body that does not decode.
    let (mut bob, _) = login(ms.port, "bob", password("bob"), PC);
    bob.send_msg(
        SID_BUDDY,
        BuddyListCmdID::CID_BUDDY_LIST_USER_INFO_REQUEST as u16,
        2,
        &IMLogoutReq {},
    );
    assert!(bob.is_closed_by_peer());
    // A client announcing a PDU over the client limit is closed on the
    // header alone (a server link could send it).
    let (mut carol, _) = login(ms.port, "carol", password("carol"), PC);
    let mut header = base::pdu::PduHeader {
        length: base::pdu::CLIENT_MAX_PDU_LEN + 1,
        version: 1,
        flag: 0,
        service_id: SID_BUDDY,
        command_id: BuddyListCmdID::CID_BUDDY_LIST_USER_INFO_REQUEST as u16,
        seq_num: 3,
        reserved: 0,
    }
    .to_bytes()
    .to_vec();
    header.extend_from_slice(&[0x08, 0x03]);
    carol.send_raw(&header);
    assert!(carol.is_closed_by_peer());
    assert!(
        ms.server
            .log()
            .contains("exceeds this connection's limit of 1048576 bytes"),
        "the close is logged with its reason"
    );

    assert!(server_time(&mut alice, 3) > 0, "the others are unaffected");
}

/// Not in the C++ msg_server (it only tells login_server its limit): past
/// `MaxConnCnt` logged-in connections a login is refused with the code
/// login_server gives when every msg_server is full, and the connection is
/// closed; a logout makes room again. login_server, told the counts,
/// refuses too.
#[test]
fn max_conn_cnt_refuses_logins_past_it() {
    let cluster = Cluster::start();
    let port = free_port();
    let conf = cluster
        .msg_server_conf(port)
        .replace("MaxConnCnt=1000", "MaxConnCnt=2");
    let mut server = ServerProcess::start(MSG_SERVER, "msgserver.conf", &conf);
    server.wait_listening(port);
    let (alice, _) = login(port, "alice", password("alice"), PC);
    let (_bob, _) = login(port, "bob", password("bob"), PC);
    let (mut carol, res) = try_login(port, "carol", password("carol"), PC, 3);
    assert_eq!(res.result_code, ResultType::REFUSE_REASON_MSG_SERVER_FULL);
    assert!(res.user_info.is_none());
    assert!(carol.is_closed_by_peer(), "a refused login is closed");
    eventually("login_server sees the msg_server full", || {
        cluster.ask_login_server().result_code == ResultType::REFUSE_REASON_MSG_SERVER_FULL
    });

    drop(alice);
    eventually("a logout makes room", || {
        try_login(port, "carol", password("carol"), PC, 4)
            .1
            .result_code
            == ResultType::REFUSE_REASON_NONE
    });
}
