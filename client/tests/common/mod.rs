//! What the client's tests share: a real login_server on free ports.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use tt_rs::{built_binary, free_port, ServerProcess};

/// A running login_server and its three ports.
pub struct Login {
    pub server: ServerProcess,
    pub client: u16,
    pub http: u16,
    pub msg: u16,
}

/// Starts login_server on loopback and waits for its ports.
pub fn start_login() -> Login {
    let (client, http, msg) = (free_port(), free_port(), free_port());
    let conf = format!(
        "ClientListenIP=127.0.0.1\nClientPort={client}\nHttpListenIP=127.0.0.1\nHttpPort={http}\n\
         MsgServerListenIP=127.0.0.1\nMsgServerPort={msg}\nmsfs=http://127.0.0.1:8700/\n\
         discovery=http://127.0.0.1/api/discovery\n"
    );
    let bin = built_binary("login_server");
    let mut server = ServerProcess::start(bin.to_str().unwrap(), "loginserver.conf", &conf);
    for p in [client, http, msg] {
        server.wait_listening(p);
    }
    Login {
        server,
        client,
        http,
        msg,
    }
}

/// `tt login USER PASS` at its prompt (stdin, stdout and stderr piped),
/// past its "logged in as ..." line, which is returned with the process
/// and its stdout.
pub fn tt_prompt(
    login_http: &str,
    user: &str,
    pass: &str,
) -> (Child, BufReader<ChildStdout>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tt"))
        .args(["--login", login_http, "login", user, pass])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tt");
    let mut out = BufReader::new(child.stdout.take().expect("tt's stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("tt's first line");
    (child, out, line)
}
