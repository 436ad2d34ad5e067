#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The private MariaDB of the restart tests: a committed row survives a
//! kill -9 and the restart on the same port.

use mysql::prelude::Queryable;
use tt_rs::{MariaDbServer, TestDb};

#[test]
fn a_committed_row_survives_kill_and_restart() {
    let mut server = MariaDbServer::start();
    let db = TestDb::with_schema_on(&server.url());
    db.conn()
        .exec_drop(
            "INSERT INTO IMMessage_0 (relateId, fromId, toId, msgId, content, type, status, updated, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (1, 2, 3, 4, "kept", 1, 0, 5, 5),
        )
        .unwrap();
    server.kill();
    assert!(mysql::Conn::new(mysql::Opts::from_url(&server.url()).unwrap()).is_err());
    server.restart();
    let content: Option<String> = db
        .conn()
        .query_first("SELECT content FROM IMMessage_0 WHERE msgId = 4")
        .unwrap();
    assert_eq!(content.as_deref(), Some("kept"), "{}", server.log());
}
