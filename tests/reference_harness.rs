#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The harness runs a C++ reference server as it runs ours: a binary with
//! a `log4cxx.properties` beside it gets that file in its working
//! directory, and what it logs under `log/` is part of
//! `ServerProcess::log` (so the benches' waits on log lines work).
//! A shell script stands in for the C++ server here: it logs, as log4cxx
//! would, only when it finds its properties file.

use std::os::unix::fs::PermissionsExt;
use tt_rs::{ScratchDir, ServerProcess};

#[test]
fn a_server_with_log4cxx_properties_beside_it_gets_them_and_its_log_is_read() {
    let build = ScratchDir::new("reference-build");
    std::fs::write(
        build.path().join("log4cxx.properties"),
        "log4j.rootLogger=INFO, default\n",
    )
    .unwrap();
    let server = build.path().join("fake_login_server");
    std::fs::write(
        &server,
        "#!/bin/sh\n\
         [ -f log4cxx.properties ] && [ -d log ] || exit 7\n\
         echo 'MsgServInfo, ip_addr1=127.0.0.1, port=8000, max_conn_cnt=10' >> log/default.log\n\
         exec sleep 30\n",
    )
    .unwrap();
    std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o755)).unwrap();

    let p = ServerProcess::start(server.to_str().unwrap(), "loginserver.conf", "");
    p.wait_log("port=8000,");
    assert!(p.dir().join("log4cxx.properties").exists());

    // Our servers have no properties file beside them: nothing is copied.
    let ours = ScratchDir::new("our-build");
    let plain = ours.path().join("fake_msg_server");
    std::fs::write(&plain, "#!/bin/sh\necho listening\nexec sleep 30\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
    let q = ServerProcess::start(plain.to_str().unwrap(), "msgserver.conf", "");
    q.wait_log("listening");
    assert!(!q.dir().join("log4cxx.properties").exists());
    assert!(!q.dir().join("log").exists());
}
