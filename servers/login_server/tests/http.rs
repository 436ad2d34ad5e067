//! login_server's HTTP port (`/msg_server`), against the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{closed_within, http_exchange, parse_answer, Login, DISCOVERY, MSFS};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

const GET: &[u8] = b"GET /msg_server HTTP/1.1\r\nHost: login\r\n\r\n";

fn addr(login: &Login) -> String {
    format!("127.0.0.1:{}", login.http_port)
}

#[test]
fn get_msg_server_answers_with_the_least_loaded_one() {
    let login = Login::start();
    let _a = login.register("busy", 8001, 40, 100);
    let _b = login.register("idle", 8002, 10, 100);
    let answer = parse_answer(&http_exchange(&addr(&login), GET));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("Connection"), Some("close"));
    assert_eq!(
        answer.header("Content-Type"),
        Some("text/html;charset=utf-8")
    );
    assert_eq!(
        answer.json(),
        serde_json::json!({
            "code": 0,
            "msg": "",
            "priorIP": "idle.telecom",
            "backupIP": "idle.unicom",
            "msfsPrior": MSFS,
            "msfsBackup": MSFS,
            "discovery": DISCOVERY,
            "port": "8002",
        })
    );
    // jsoncpp's styled layout.
    let body = String::from_utf8(answer.body).unwrap();
    assert!(
        body.starts_with("{\n   \"backupIP\" : \"idle.unicom\",\n"),
        "{body}"
    );
    assert!(body.ends_with("\n}\n"), "{body}");
}

#[test]
fn refusals_carry_code_1_then_2() {
    let login = Login::start();
    let answer = parse_answer(&http_exchange(&addr(&login), GET));
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.json(),
        serde_json::json!({"code": 1, "msg": "没有msg_server"})
    );

    let _full = login.register("full", 8001, 7, 7);
    let answer = parse_answer(&http_exchange(&addr(&login), GET));
    assert_eq!(
        answer.json(),
        serde_json::json!({"code": 2, "msg": "负载过高"})
    );
}

#[test]
fn post_sent_in_pieces_is_answered_once_whole() {
    let login = Login::start();
    let _a = login.register("posted", 8001, 0, 10);
    let mut s = TcpStream::connect(addr(&login)).unwrap();
    s.write_all(b"POST /msg_server?app=1 HTTP/1.1\r\nContent-Length: 8\r\n")
        .unwrap();
    assert!(
        !closed_within(&mut s, Duration::from_millis(300)),
        "waits for the rest"
    );
    s.write_all(b"\r\nuser=").unwrap();
    assert!(
        !closed_within(&mut s, Duration::from_millis(300)),
        "waits for the body"
    );
    s.write_all(b"bob").unwrap();
    s.set_read_timeout(Some(tt_rs::WAIT)).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut out).unwrap();
    let answer = parse_answer(&out);
    assert_eq!(answer.json()["port"], "8001");
}

#[test]
fn unknown_urls_oversized_and_malformed_requests_are_closed_unanswered() {
    let login = Login::start();
    let _a = login.register("quiet", 8001, 0, 10);
    assert!(http_exchange(&addr(&login), b"GET /other HTTP/1.1\r\n\r\n").is_empty());
    let mut big = b"GET /msg_server HTTP/1.1\r\nX-Pad: ".to_vec();
    big.resize(2000, b'p');
    assert!(http_exchange(&addr(&login), &big).is_empty());
    assert!(http_exchange(&addr(&login), b"\x00\x00\x00\x10 not http\r\n\r\n").is_empty());
    // The port still serves.
    let answer = parse_answer(&http_exchange(&addr(&login), GET));
    assert_eq!(answer.json()["port"], "8001");
}

#[test]
fn http_and_tcp_hand_outs_share_the_provisional_load() {
    let login = Login::start();
    let _a = login.register("left", 8001, 0, 10);
    let _b = login.register("right", 8002, 0, 10);
    let via_http = parse_answer(&http_exchange(&addr(&login), GET)).json()["port"]
        .as_str()
        .unwrap()
        .parse::<u32>()
        .unwrap();
    let via_tcp = login.ask_port();
    assert_ne!(via_http, via_tcp);
}

#[test]
fn ipv6_clients_get_ip2_first() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    }
    let login = Login::start_with_http_ips("127.0.0.1;::1");
    login.server.wait_log(&format!("[::1]:{}", login.http_port));
    let _a = login.register("dual", 8001, 0, 10);
    let v6 = parse_answer(&http_exchange(&format!("[::1]:{}", login.http_port), GET)).json();
    assert_eq!(v6["priorIP"], "dual.unicom");
    assert_eq!(v6["backupIP"], "dual.telecom");
    let v4 = parse_answer(&http_exchange(&addr(&login), GET)).json();
    assert_eq!(v4["priorIP"], "dual.telecom");
}
