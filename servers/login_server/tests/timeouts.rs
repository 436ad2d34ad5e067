//! The slow timeouts (30 s for a silent msg_server, 60 s for an idle HTTP
//! connection), each waited for once with a bounded loop. The two tests
//! run in parallel, so this file takes about a minute.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{closed_within, Login};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tt_proto::IM::BaseDefine::{OtherCmdID, ServiceID};
use tt_proto::IM::Other::IMHeartBeat;

#[test]
fn a_silent_msg_server_is_dropped_and_a_beating_one_kept() {
    let login = Login::start();
    let mut beating = login.register("beating", 8001, 60, 100);
    let _silent = login.register("silent", 8002, 0, 100);
    assert_eq!(login.ask_port(), 8002);

    let deadline = Instant::now() + Duration::from_secs(50);
    let mut last_beat = Instant::now();
    while !login.server.log().contains("msg_server lost: silent:8002") {
        assert!(
            Instant::now() < deadline,
            "silent msg_server never dropped:\n{}",
            login.server.log()
        );
        if last_beat.elapsed() > Duration::from_secs(2) {
            beating.send_msg(
                ServiceID::SID_OTHER as u16,
                OtherCmdID::CID_OTHER_HEARTBEAT as u16,
                0,
                &IMHeartBeat {},
            );
            last_beat = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!login.server.log().contains("msg_server lost: beating"));
    assert_eq!(login.ask_port(), 8001);
}

#[test]
fn an_idle_http_connection_is_closed_after_a_minute() {
    let login = Login::start();
    let mut s = TcpStream::connect(format!("127.0.0.1:{}", login.http_port)).unwrap();
    s.write_all(b"GET /msg_").unwrap();
    assert!(
        !closed_within(&mut s, Duration::from_secs(2)),
        "kept while within the minute"
    );
    assert!(
        closed_within(&mut s, Duration::from_secs(75)),
        "closed after 60 s idle"
    );
}
