//! The `tt` command line as a person uses it: refusals read as text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use tt_rs::free_port;

mod common;

const TT: &str = env!("CARGO_BIN_EXE_tt");

#[test]
fn a_refusal_is_one_line_of_text() {
    let login = common::start_login();
    let http = login.http;
    let out = Command::new(TT)
        .args([
            "--login",
            &format!("127.0.0.1:{http}"),
            "send",
            "--as",
            "alice:123456",
            "bob",
            "hi",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err, "tt: refused: no msg_server is available (code 1)\n");
}

#[test]
fn nothing_listening_is_a_network_error_not_a_crash() {
    let port = free_port();
    let out = Command::new(TT)
        .args([
            "--server",
            &format!("127.0.0.1:{port}"),
            "login",
            "alice",
            "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("tt: network: "), "{err}");
    assert!(!err.contains("panicked"));
}

#[test]
fn bad_usage_says_how() {
    let out = Command::new(TT).args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage: tt"));
}

#[test]
fn help_is_printed_and_is_not_an_error() {
    for bin in [TT, env!("CARGO_BIN_EXE_tt-load")] {
        let out = Command::new(bin).arg("--help").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{bin}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("usage: tt"), "{bin}: {text}");
        assert!(text.contains("--login HOST:PORT"), "{bin}: {text}");
    }
}
