//! `tt` and `tt-load` against a whole cluster of real processes on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, Write};
use std::process::Command;
use std::time::{Duration, Instant};
use tt_client::{Event, LoginOptions, Session};
use tt_rs::cluster::Cluster;
use tt_rs::{ScratchDir, WAIT};

mod common;

const TT: &str = env!("CARGO_BIN_EXE_tt");
const TT_LOAD: &str = env!("CARGO_BIN_EXE_tt-load");

const USERS: [(u32, &str, &str); 3] = [
    (1, "alice", "alice-pw"),
    (2, "bob", "bob-pw"),
    (3, "carol", "carol-pw"),
];

#[test]
fn two_tt_sessions_exchange_messages() {
    let cluster = Cluster::start(&USERS, 1);
    let login = cluster.login_http();
    let (mut bob, mut bob_out, mut line) = common::tt_prompt(&login, "bob", "bob-pw");
    assert!(line.starts_with("logged in as bob-nick (id 2)"), "{line:?}");

    let sent = Command::new(TT)
        .args([
            "--login",
            &login,
            "send",
            "--as",
            "alice:alice-pw",
            "bob",
            "hello",
            "bob",
        ])
        .output()
        .unwrap();
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(String::from_utf8_lossy(&sent.stdout).starts_with("sent, message id 1"));

    line.clear();
    bob_out.read_line(&mut line).unwrap();
    assert_eq!(line, "[1] 1 -> 2: hello bob\n");

    // Bob answers from his prompt; alice (the library) receives it.
    let mut alice = Session::login(
        &format!("127.0.0.1:{}", cluster.msg_servers[0].1),
        "alice",
        "alice-pw",
        &LoginOptions::default(),
    )
    .unwrap();
    let stdin = bob.stdin.as_mut().unwrap();
    writeln!(stdin, "send alice hi alice").unwrap();
    let deadline = Instant::now() + WAIT;
    let got = loop {
        assert!(Instant::now() < deadline, "alice got nothing");
        if let Some(Event::Message(m)) = alice.next_event(Duration::from_millis(200)).unwrap() {
            break m;
        }
    };
    assert_eq!(
        (got.from, got.text.as_str(), got.msg_id),
        (2, "hi alice", 2)
    );
    cluster.add_group(9, "friends", &[1, 2, 3]);
    writeln!(stdin, "groups").unwrap();
    loop {
        line.clear();
        bob_out.read_line(&mut line).unwrap();
        if !line.starts_with("sent, message id") {
            break;
        }
    }
    assert_eq!(line, "     9  friends (3 members)\n");
    writeln!(stdin, "quit").unwrap();
    assert!(bob.wait().unwrap().success());
}

#[test]
fn bad_credentials_read_as_a_refusal() {
    let cluster = Cluster::start(&USERS, 1);
    let out = Command::new(TT)
        .args([
            "--login",
            &cluster.login_http(),
            "send",
            "--as",
            "alice:wrong",
            "bob",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "tt: refused: wrong user name or password (code 6)\n"
    );
}

#[test]
fn tt_load_fifty_users_two_thousand_messages_none_lost() {
    let cluster = Cluster::start_numbered(50, 2);
    let dir = ScratchDir::new("tt-load");
    let csv = dir.path().join("users.csv");
    let json = dir.path().join("out.json");
    std::fs::write(&csv, cluster.users_csv()).unwrap();
    let out = Command::new(TT_LOAD)
        .args(["--login", &cluster.login_http(), "--csv"])
        .arg(&csv)
        .args([
            "--messages",
            "40",
            "--rate",
            "500",
            "--time-limit",
            "120",
            "--source-ips",
            "127.0.0.2,127.0.0.3",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("latency ms   p50"), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["logins_ok"], 50, "{report}");
    assert_eq!(report["sent"], 2000, "{report}");
    assert_eq!(report["acked"], 2000, "{report}\n{:#?}", cluster.problems());
    assert_eq!(report["delivered"], 2000, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    assert!(report["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    let logs: String = cluster.msg_servers.iter().map(|(p, _)| p.log()).collect();
    for source in ["127.0.0.2:", "127.0.0.3:"] {
        assert!(
            logs.contains(&format!("accepted {source}")),
            "no client from {source}"
        );
    }
}
