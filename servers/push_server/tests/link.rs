//! The msg_server link, no provider configured: heartbeats, answers,
//! malformed input, independent links, start-up with the shipped conf.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::time::Duration;
use tt_proto::IM::BaseDefine::ClientType;
use tt_proto::{cid, sid};
use tt_rs::{free_port, PduClient};

#[test]
fn the_shipped_conf_starts_and_every_push_is_answered_one_with_a_reason() {
    let shipped = std::fs::read_to_string(tt_rs::repo_root().join("conf/pushserver.conf")).unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let text: String = shipped
        .lines()
        .map(|l| {
            if l.starts_with("ListenPort=") {
                format!("ListenPort={port}\n")
            } else if l.starts_with("MetricsPort=") {
                format!("MetricsPort={metrics_port}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let server = start_push_server(port, &text);
    let mut c = PduClient::connect(port);
    let ios_token = hex_token("ab");
    let got = push(
        &mut c,
        &push_req(
            "alice:hi",
            "{}",
            vec![
                ios(&ios_token),
                android("fcm-token"),
                token(3, ClientType::CLIENT_TYPE_WINDOWS, "pc", 1, 1),
            ],
        ),
    );
    assert_eq!(
        got,
        vec![
            (ios_token, 1),
            ("fcm-token".to_string(), 1),
            ("pc".to_string(), 1)
        ]
    );
    let log = server.log();
    assert!(log.contains("APNs not configured"), "{log}");
    assert!(log.contains("APNs is not configured"), "{log}");
    assert!(log.contains("FCM is not configured"), "{log}");
    // The shipped file turns metrics on: the msg_server link counts.
    let s = tt_rs::metrics::scrape(&server);
    assert!(s.value("tt_connections_opened_total", &[("kind", "PushSession")]) >= 1.0);
    assert!(
        s.value(
            "tt_pdus_received_total",
            &[("command", "CID_OTHER_PUSH_TO_USER_REQ")]
        ) >= 1.0
    );
}

#[test]
fn a_lone_heartbeat_is_echoed_and_an_empty_request_answered() {
    let port = free_port();
    let _server = start_push_server(port, &conf(port, ""));
    let mut c = PduClient::connect(port);
    c.send(&heartbeat());
    let echo = c.recv();
    assert_eq!(
        (echo.service_id(), echo.command_id()),
        (sid::OTHER, cid::OTHER_HEARTBEAT)
    );
    assert!(push(&mut c, &push_req("", "", vec![])).is_empty());
}

#[test]
fn garbage_on_one_link_closes_it_and_leaves_the_others_working() {
    let port = free_port();
    let server = start_push_server(port, &conf(port, ""));
    let mut good = PduClient::connect(port);
    good.send(&heartbeat());
    good.recv();

    // An unknown command.
    let mut unknown = PduClient::connect(port);
    unknown.send(&base::ImPdu::new(sid::OTHER, cid::OTHER_GET_SHIELD_REQ));
    assert!(unknown.is_closed_by_peer());
    // A header announcing length 0 (the C++ spins on it), then one of 15.
    for len in [0u32, 15] {
        let mut zero = PduClient::connect(port);
        let mut header = vec![0u8; 16];
        header[..4].copy_from_slice(&len.to_be_bytes());
        header[4..6].copy_from_slice(&1u16.to_be_bytes());
        header[8..10].copy_from_slice(&sid::OTHER.to_be_bytes());
        header[10..12].copy_from_slice(&cid::OTHER_PUSH_TO_USER_REQ.to_be_bytes());
        zero.send_raw(&header);
        assert!(zero.is_closed_by_peer(), "length {len}");
    }
    // A push request whose body is not an IMPushToUserReq.
    let mut bad_body = PduClient::connect(port);
    let mut pdu = base::ImPdu::new(sid::OTHER, cid::OTHER_PUSH_TO_USER_REQ);
    pdu.set_body(&[0xff, 0xff, 0xff]).unwrap();
    bad_body.send(&pdu);
    assert!(bad_body.is_closed_by_peer());

    // The first link never noticed.
    good.send(&heartbeat());
    assert_eq!(good.recv().command_id(), cid::OTHER_HEARTBEAT);
    let got = push(&mut good, &push_req("x", "", vec![ios(&hex_token("1"))]));
    assert_eq!(codes(&got), vec![1]);
    let log = server.log();
    assert!(log.contains("unknown command"), "{log}");
    assert!(log.contains("undecodable push request"), "{log}");
}

#[test]
fn heartbeats_are_echoed_and_push_server_never_heartbeats_first() {
    let port = free_port();
    let _server = start_push_server(port, &conf(port, ""));
    let mut c = PduClient::connect(port);
    for _ in 0..3 {
        c.send(&heartbeat());
        assert_eq!(c.recv().command_id(), cid::OTHER_HEARTBEAT);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        c.try_recv(Duration::from_millis(200)).is_none(),
        "push_server never heartbeats first"
    );
}

#[test]
fn an_unusable_credential_named_in_the_conf_exits_1_naming_the_key() {
    let port = free_port();
    let cases = [
        (
            "ApnsKeyPath=/nonexistent/key.p8\nApnsKeyId=K\nApnsTeamId=T\nApnsTopic=com.tt\n",
            "ApnsKeyPath",
        ),
        (
            "FcmServiceAccountPath=/nonexistent/sa.json\nFcmProjectId=p\n",
            "FcmServiceAccountPath",
        ),
        ("ApnsKeyPath=k.p8\n", "ApnsKeyId"),
        ("SandBox=3\n", "SandBox"),
    ];
    for (extra, key) in cases {
        let text = if key == "SandBox" {
            conf(port, "").replace("SandBox=1", "SandBox=3")
        } else {
            conf(port, extra)
        };
        let (code, out) = tt_rs::run_to_exit(PUSH_SERVER, "pushserver.conf", &text, &[]);
        assert_eq!(code, Some(1), "{key}: {out}");
        assert!(out.contains(key), "{key}: {out}");
    }
}
