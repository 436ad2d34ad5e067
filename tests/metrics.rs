//! `GET /metrics` of every server in a running cluster: the text passes
//! our parser and `promtool check metrics` (where installed), and the
//! values move as the test's traffic does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base::md5::md5_hex;
use std::time::{Duration, Instant};
use tt_proto::cid;
use tt_proto::sid;
use tt_proto::IM::BaseDefine::{ClientType, MsgType, ResultType, TransferFileType, UserStatType};
use tt_proto::IM::Login::{IMLoginReq, IMLoginRes};
use tt_proto::IM::Message::{IMMsgData, IMMsgDataAck};
use tt_proto::IM::Server::{IMFileTransferReq, IMFileTransferRsp};
use tt_rs::cluster::Cluster;
use tt_rs::http::{http_exchange, parse_answer};
use tt_rs::metrics::{scrape, Scrape};
use tt_rs::{PduClient, ServerProcess, WAIT};

const USERS: [(u32, &str, &str); 3] = [
    (1, "alice", "pw-a"),
    (2, "bob", "pw-b"),
    (3, "carol", "pw-c"),
];

/// Logs `name` in on the msg_server at `port`; retries while the server is
/// still linking to its peers. Returns the client and the result.
fn login(port: u16, name: &str, plain: &str) -> (PduClient, ResultType) {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = PduClient::connect(port);
        let req = IMLoginReq {
            user_name: name.into(),
            password: md5_hex(plain.as_bytes()),
            online_status: UserStatType::USER_STATUS_ONLINE,
            client_type: ClientType::CLIENT_TYPE_WINDOWS,
            client_version: Some("metrics-test".into()),
        };
        c.send_msg(sid::LOGIN, cid::LOGIN_REQ_USERLOGIN, 1, &req);
        let (_, res) = c.recv_cmd::<IMLoginRes>(cid::LOGIN_RES_USERLOGIN);
        match res.result_code {
            ResultType::REFUSE_REASON_NO_DB_SERVER
            | ResultType::REFUSE_REASON_NO_LOGIN_SERVER
            | ResultType::REFUSE_REASON_NO_ROUTE_SERVER
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(100))
            }
            code => return (c, code),
        }
    }
}

fn msg(from: u32, to: u32, t: MsgType) -> IMMsgData {
    IMMsgData {
        from_user_id: from,
        to_session_id: to,
        msg_id: 0,
        create_time: 0,
        msg_type: t,
        msg_data: b"hello".to_vec(),
        attach_data: None,
    }
}

fn send_and_ack(c: &mut PduClient, seq: u16, m: &IMMsgData) {
    c.send_msg(sid::MSG, cid::MSG_DATA, seq, m);
    loop {
        let (pdu, ack) = c.recv_cmd::<IMMsgDataAck>(cid::MSG_DATA_ACK);
        if pdu.seq_num() == seq {
            assert!(ack.msg_id > 0, "stored: {ack:?}");
            return;
        }
    }
}

/// Scrapes `p` until `cond` holds on the scrape (bounded by WAIT); the
/// scrape that held.
fn scrape_until(p: &ServerProcess, what: &str, cond: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = scrape(p);
        if cond(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "never: {what}\n{}", s.text);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn server<'a>(cluster: &'a Cluster, name: &str) -> &'a ServerProcess {
    cluster
        .servers()
        .into_iter()
        .find(|(n, _)| n.starts_with(name))
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn every_server_serves_metrics_that_follow_the_traffic() {
    if tt_rs::metrics::promtool_check("").is_none() {
        println!("promtool is not installed: the format is checked by our parser only");
    }
    let mut cluster = Cluster::start(&USERS, 0);
    let files = cluster.add_file_server(30, "");
    cluster.add_msg_server();
    cluster.add_group(7, "metrics", &[1, 2, 3]);
    let msg_port = cluster.msg_servers[0].1;
    let msg_server = server(&cluster, "msg_server");
    let db_proxy = server(&cluster, "db_proxy_server");

    // Every server answers, and the format holds, before any traffic.
    for (name, p) in cluster.servers() {
        let s = scrape(p);
        assert!(s.has("tt_process_resident_memory_bytes"), "{name}");
        assert!(s.value("tt_process_open_fds", &[]) >= 3.0, "{name}");
    }
    // Unknown paths 404.
    let port = tt_rs::metrics::metrics_port(msg_server);
    let raw = http_exchange(
        &format!("127.0.0.1:{port}"),
        b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(parse_answer(&raw).status, 404);

    // msg_server links to its peers: the link gauges say so.
    let before = scrape_until(msg_server, "db_proxy and route links up", |s| {
        s.value("tt_peer_link_up", &[("peer", "route_server")]) == 1.0
            && s.value("tt_peer_link_up", &[("peer", "db_proxy")]) == 4.0
            && s.value("tt_peer_link_up", &[("peer", "file_server")]) == 1.0
    });
    assert_eq!(
        before.value("tt_peer_link_up", &[("peer", "push_server")]),
        0.0
    );
    assert!(before.value("tt_peer_connects_total", &[("peer", "push_server")]) >= 1.0);
    let db_before = scrape(db_proxy);
    assert_eq!(db_before.value("tt_db_msg_server_links", &[]), 4.0);

    // Logins: two accepted, one refused by db_proxy.
    let (mut alice, r) = login(msg_port, "alice", "pw-a");
    assert_eq!(r, ResultType::REFUSE_REASON_NONE);
    let (mut bob, r) = login(msg_port, "bob", "pw-b");
    assert_eq!(r, ResultType::REFUSE_REASON_NONE);
    let (_refused, r) = login(msg_port, "carol", "wrong");
    assert_eq!(r, ResultType::REFUSE_REASON_DB_VALIDATE_FAILED);

    // One 1:1 text message, alice to bob; then two group messages.
    send_and_ack(&mut alice, 5, &msg(1, 2, MsgType::MSG_TYPE_SINGLE_TEXT));
    bob.recv_cmd::<IMMsgData>(cid::MSG_DATA);
    send_and_ack(&mut alice, 6, &msg(1, 7, MsgType::MSG_TYPE_GROUP_TEXT));
    bob.recv_cmd::<IMMsgData>(cid::MSG_DATA);
    send_and_ack(&mut alice, 7, &msg(1, 7, MsgType::MSG_TYPE_GROUP_TEXT));
    bob.recv_cmd::<IMMsgData>(cid::MSG_DATA);

    let after = scrape(msg_server);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(delta("tt_msg_logins_total", &[("result", "ok")]), 2.0);
    assert_eq!(
        delta("tt_msg_logins_total", &[("result", "refused_by_db")]),
        1.0
    );
    assert_eq!(
        delta("tt_msg_logins_total", &[("result", "refused_no_peer")]),
        0.0
    );
    let single = [("type", "single_text")];
    let group = [("type", "group_text")];
    assert_eq!(delta("tt_msg_messages_received_total", &single), 1.0);
    assert_eq!(delta("tt_msg_messages_delivered_total", &single), 1.0);
    assert_eq!(delta("tt_msg_messages_received_total", &group), 2.0);
    assert_eq!(
        delta("tt_msg_messages_delivered_total", &group),
        2.0,
        "to bob"
    );
    let cache = |r: &str| delta("tt_msg_group_cache_lookups_total", &[("result", r)]);
    assert_eq!((cache("miss"), cache("hit")), (1.0, 1.0));
    let cmd = [("command", "CID_MSG_DATA")];
    assert!(
        delta("tt_pdus_received_total", &cmd) >= 3.0 + 3.0,
        "3 from alice, 3 stored replies from db_proxy"
    );
    assert!(
        delta("tt_pdus_sent_total", &cmd) >= 3.0 + 3.0,
        "to db_proxy and to bob"
    );
    assert_eq!(
        after.value("tt_connections", &[("kind", "MsgConn")]),
        2.0,
        "alice and bob (refused logins are closed once answered)"
    );
    assert!(delta("tt_received_bytes_total", &[("kind", "MsgConn")]) > 0.0);
    assert_eq!(after.value("tt_msg_online_users", &[]), 2.0);

    // db_proxy: each request has its latency counted under its command.
    let db = scrape(db_proxy);
    let count = |c: &str| {
        let l = [("command", c)];
        db.value("tt_db_request_duration_seconds_count", &l)
            - db_before.value("tt_db_request_duration_seconds_count", &l)
    };
    assert_eq!(count("CID_OTHER_VALIDATE_REQ"), 3.0);
    assert_eq!(count("CID_MSG_DATA"), 3.0);
    assert!(db.value("tt_db_pool_in_use", &[("store", "mysql")]) >= 0.0);
    assert_eq!(db.value("tt_db_pool_errors_total", &[]), 0.0);
    assert_eq!(db.value("tt_db_workers", &[]), 4.0);

    // route_server sees both users and the one msg_server.
    let route = server(&cluster, "route_server");
    scrape_until(route, "two users online at route_server", |s| {
        s.value("tt_route_online_users", &[]) == 2.0
    });
    assert_eq!(scrape(route).value("tt_route_msg_server_links", &[]), 1.0);

    // login_server: one more hand-out per HTTP ask.
    let login = server(&cluster, "login_server");
    let l0 = scrape_until(login, "two users reported", |s| {
        s.value("tt_login_online_users", &[]) == 2.0
    });
    assert_eq!(l0.value("tt_login_msg_servers", &[]), 1.0);
    let ask = parse_answer(&http_exchange(
        &cluster.login_http(),
        b"GET /msg_server HTTP/1.1\r\nHost: x\r\n\r\n",
    ));
    assert_eq!(ask.status, 200);
    let l1 = scrape(login);
    let chosen = [("result", "chosen")];
    assert_eq!(
        l1.value("tt_login_handouts_total", &chosen) - l0.value("tt_login_handouts_total", &chosen),
        1.0
    );
    let addr = format!("127.0.0.1:{msg_port}");
    assert_eq!(
        l1.value("tt_login_msg_server_users", &[("msg_server", &addr)]),
        2.0
    );

    // file_server: a task asked for on its msg_server port.
    let file = server(&cluster, "file_server");
    let f0 = scrape(file);
    assert_eq!(
        f0.value("tt_connections", &[("kind", "FileMsgServerConn")]),
        1.0
    );
    let mut fake_msg_server = PduClient::connect(files.msg);
    let req = IMFileTransferReq {
        from_user_id: 1,
        to_user_id: 2,
        file_name: "a.txt".into(),
        file_size: 10,
        trans_mode: TransferFileType::FILE_TYPE_OFFLINE,
        attach_data: None,
    };
    fake_msg_server.send_msg(sid::OTHER, cid::OTHER_FILE_TRANSFER_REQ, 3, &req);
    let (_, rsp) = fake_msg_server.recv_cmd::<IMFileTransferRsp>(cid::OTHER_FILE_TRANSFER_RSP);
    assert_eq!(rsp.result_code, 0);
    let f1 = scrape(file);
    assert_eq!(f1.value("tt_file_open_tasks", &[]), 1.0);
    let ok = [("result", "ok")];
    assert_eq!(
        f1.value("tt_file_tasks_total", &ok) - f0.value("tt_file_tasks_total", &ok),
        1.0
    );

    // http_msg_server: one CreateGroup, answered 0.
    let (http_msg, api_port) = cluster.start_http_msg_server("");
    let h0 = scrape(&http_msg);
    let body = r#"{"req_user_id":1,"app_key":"k","group_name":"g","group_type":1,"group_avatar":"","user_id_list":[1,2]}"#;
    let req = format!(
        "POST /query/CreateGroup HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let a = parse_answer(&http_exchange(
        &format!("127.0.0.1:{api_port}"),
        req.as_bytes(),
    ));
    assert_eq!(a.json()["error_code"], 0);
    let h1 = scrape_until(&http_msg, "both db_proxy links up", |s| {
        s.value("tt_peer_link_up", &[("peer", "db_proxy")]) == 2.0
    });
    let d = |n: &str, l: &[(&str, &str)]| h1.value(n, l) - h0.value(n, l);
    assert_eq!(
        d("tt_http_msg_requests_total", &[("query", "CreateGroup")]),
        1.0
    );
    assert_eq!(d("tt_http_msg_answers_total", &[("code", "0")]), 1.0);
}

#[test]
fn a_server_without_the_keys_opens_no_metrics_port() {
    let port = tt_rs::free_port();
    let bin = tt_rs::built_binary("route_server");
    let mut p = ServerProcess::start(
        &bin.to_string_lossy(),
        "routeserver.conf",
        &format!("ListenIP=127.0.0.1\nListenMsgPort={port}\n"),
    );
    p.wait_listening(port);
    p.wait_log("entering the event loop");
    assert!(!p.log().contains("metrics:"), "{}", p.log());
    // Half the keys is a conf error naming the missing one.
    let bin = tt_rs::built_binary("route_server");
    let (code, log) = tt_rs::run_to_exit(
        &bin.to_string_lossy(),
        "routeserver.conf",
        &format!(
            "ListenIP=127.0.0.1\nListenMsgPort={}\nMetricsPort=1\n",
            tt_rs::free_port()
        ),
        &[],
    );
    assert_eq!(code, Some(1));
    assert!(log.contains("MetricsListenIP"), "{log}");
}
