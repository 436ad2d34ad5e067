//! login_server's PDU ports and conf, against the real binary: fake
//! msg_servers register on the msg_server port, fake clients ask on the
//! client port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{conf_text, Login, BIN};
use std::collections::BTreeMap;
use tt_proto::IM::BaseDefine::{LoginCmdID, OtherCmdID, ResultType, ServiceID};
use tt_proto::IM::Login::IMMsgServReq;
use tt_proto::IM::Other::IMHeartBeat;
use tt_rs::{free_port, run_to_exit, PduClient, ServerProcess};

#[test]
fn no_msg_server_is_refused() {
    let login = Login::start();
    let rsp = login.ask();
    assert_eq!(rsp.result_code, ResultType::REFUSE_REASON_NO_MSG_SERVER);
    assert_eq!(rsp.port, None);
}

#[test]
fn clients_get_the_least_loaded_msg_server_and_counts_move() {
    let login = Login::start();
    let mut a = login.register("alpha", 8001, 10, 100);
    let mut b = login.register("beta", 8002, 5, 100);

    let rsp = login.ask();
    assert_eq!(rsp.result_code, ResultType::REFUSE_REASON_NONE);
    assert_eq!(rsp.prior_ip.as_deref(), Some("beta.telecom"));
    assert_eq!(rsp.backip_ip.as_deref(), Some("beta.unicom"));
    assert_eq!(rsp.port, Some(8002));

    // beta's users log in: 5 + 10 = 15 > alpha's 10.
    login.update_cnt(&mut b, "beta", 8002, 1, 10, 15);
    assert_eq!(login.ask_port(), 8001);
    // alpha grows past beta: 10 + 8 = 18 > 15.
    login.update_cnt(&mut a, "alpha", 8001, 1, 8, 18);
    assert_eq!(login.ask_port(), 8002);
    // beta's users leave: 15 - 12 = 3.
    login.update_cnt(&mut b, "beta", 8002, 2, 12, 3);
    assert_eq!(login.ask_port(), 8002);
}

#[test]
fn full_msg_servers_are_refused_and_reported_counts_decide_fullness() {
    let login = Login::start();
    let _full = login.register("stuffed", 8001, 50, 50);
    let mut almost = login.register("almost", 8002, 49, 50);
    // Hand-outs alone never make a msg_server full.
    for _ in 0..3 {
        assert_eq!(login.ask_port(), 8002);
    }
    login.update_cnt(&mut almost, "almost", 8002, 1, 1, 50);
    assert_eq!(
        login.ask().result_code,
        ResultType::REFUSE_REASON_MSG_SERVER_FULL
    );
    login.update_cnt(&mut almost, "almost", 8002, 2, 1, 49);
    assert_eq!(login.ask_port(), 8002);
}

#[test]
fn a_storm_of_requests_is_spread_over_equal_msg_servers() {
    let login = Login::start();
    let _servers: Vec<PduClient> = (0..4)
        .map(|n| login.register(&format!("storm{n}"), 9000 + n, 0, 100_000))
        .collect();
    let mut counts = BTreeMap::new();
    for _ in 0..1000 {
        *counts.entry(login.ask_port()).or_insert(0u32) += 1;
    }
    assert_eq!(counts.len(), 4, "{counts:?}");
    for (port, n) in &counts {
        assert!(
            (225..=275).contains(n),
            "msg_server {port} got {n} of 1000: {counts:?}"
        );
    }
}

#[test]
fn a_closed_msg_server_is_no_longer_chosen() {
    let login = Login::start();
    let a = login.register("gone", 8001, 0, 100);
    let _b = login.register("stays", 8002, 50, 100);
    assert_eq!(login.ask_port(), 8001);
    drop(a);
    login.server.wait_log("msg_server lost: gone:8001");
    assert_eq!(login.ask_port(), 8002);
}

#[test]
fn login_server_heartbeats_its_msg_servers() {
    let login = Login::start();
    let mut a = login.register("beating", 8001, 0, 100);
    let (pdu, _) = a.recv_cmd::<IMHeartBeat>(OtherCmdID::CID_OTHER_HEARTBEAT as u16);
    assert_eq!(pdu.service_id(), ServiceID::SID_OTHER as u16);
}

#[test]
fn garbage_closes_only_its_own_connection() {
    let login = Login::start();
    let _a = login.register("solid", 8001, 0, 100);

    // A client announcing a 4 GiB PDU.
    let mut bad_client = PduClient::connect(login.client_port);
    bad_client.send_raw(&[0xff; 32]);
    assert!(bad_client.is_closed_by_peer());

    // A msg_server sending garbage after registering is dropped...
    let mut bad_ms = login.register("shaky", 8002, 0, 100);
    bad_ms.send_raw(b"\x00\x00\x00\x05garbage garbage!");
    assert!(bad_ms.is_closed_by_peer());
    login.server.wait_log("msg_server lost: shaky:8002");

    // ...and one whose MSG_SERV_INFO lacks required fields never registers.
    let mut empty = PduClient::connect(login.msg_port);
    empty.send_msg(
        ServiceID::SID_OTHER as u16,
        OtherCmdID::CID_OTHER_MSG_SERV_INFO as u16,
        0,
        &IMHeartBeat {},
    );
    assert!(empty.is_closed_by_peer());

    // The rest carries on.
    assert_eq!(login.ask_port(), 8001);
    assert_eq!(login.ask_port(), 8001);
}

#[test]
fn each_port_acts_only_on_its_own_commands() {
    let login = Login::start();
    // A msg_server asking for a msg_server gets no answer and stays registered.
    let mut ms = login.register("asker", 8001, 0, 100);
    ms.send_msg(
        ServiceID::SID_LOGIN as u16,
        LoginCmdID::CID_LOGIN_REQ_MSGSERVER as u16,
        1,
        &IMMsgServReq {},
    );
    login.server.wait_log("wrong msg on the MsgServ port");
    assert_eq!(login.ask_port(), 8001);
}

#[test]
fn conf_can_be_given_with_dash_c() {
    let (c, h, m) = (free_port(), free_port(), free_port());
    let mut server = ServerProcess::start_with_args(
        BIN,
        "elsewhere.conf",
        &conf_text("127.0.0.1", c, h, m),
        &["-c", "elsewhere.conf"],
    );
    server.wait_listening(c);
    server.wait_listening(h);
    server.wait_listening(m);
    server.wait_log("listening for http");
}

#[test]
fn missing_keys_exit_non_zero_naming_the_key() {
    let full = conf_text("127.0.0.1", free_port(), free_port(), free_port());
    for key in [
        "ClientListenIP",
        "ClientPort",
        "HttpListenIP",
        "HttpPort",
        "MsgServerListenIP",
        "MsgServerPort",
        "msfs",
        "discovery",
    ] {
        let text: String = full
            .lines()
            .filter(|l| !l.starts_with(&format!("{key}=")))
            .map(|l| format!("{l}\n"))
            .collect();
        let (code, out) = run_to_exit(BIN, "loginserver.conf", &text, &[]);
        assert!(code.is_some_and(|c| c != 0), "{key}: exit {code:?}");
        assert!(out.contains(key), "{key} not named in: {out}");
    }
}

#[test]
fn a_port_in_use_exits_non_zero_naming_the_listener() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let text = conf_text("127.0.0.1", free_port(), free_port(), port);
    let (code, out) = run_to_exit(BIN, "loginserver.conf", &text, &[]);
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}");
    assert!(out.contains("msg_servers"), "{out}");
    drop(taken);
}
