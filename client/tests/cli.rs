//! The `tt` command line as a person uses it: refusals read as text.

use std::process::Command;
use tt_rs::{built_binary, free_port, ServerProcess};

const TT: &str = env!("CARGO_BIN_EXE_tt");

#[test]
fn a_refusal_is_one_line_of_text() {
    let (client, http, msg) = (free_port(), free_port(), free_port());
    let conf = format!(
        "ClientListenIP=127.0.0.1\nClientPort={client}\nHttpListenIP=127.0.0.1\nHttpPort={http}\n\
         MsgServerListenIP=127.0.0.1\nMsgServerPort={msg}\nmsfs=http://127.0.0.1:8700/\n\
         discovery=http://127.0.0.1/api/discovery\n"
    );
    let bin = built_binary("login_server");
    let mut login = ServerProcess::start(bin.to_str().unwrap(), "loginserver.conf", &conf);
    login.wait_listening(http);
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
