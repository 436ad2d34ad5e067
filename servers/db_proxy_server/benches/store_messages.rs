//! Stored messages per second through db_proxy_server (not a timed test).
//!
//! Starts the release binary against a fresh test database and a private
//! redis-server, then fake msg_servers send one-to-one text messages, each
//! link keeping up to `WINDOW` messages in flight, and count the answers
//! (an answer means the row is committed and the counter raised). Runs:
//! 1 link; 8 links on 8 different pairs; 8 links on one pair.
//!
//! `cargo bench -p db_proxy_server --bench store_messages`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;
use tt_proto::IM::BaseDefine::{MessageCmdID, MsgType, ServiceID};
use tt_proto::IM::Message::IMMsgData;
use tt_rs::{free_port, PduClient, RedisServer, ServerProcess, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_db_proxy_server");
const WINDOW: u32 = 32;
const THREADS: usize = 8;

fn conf(db: &TestDb, redis: u16, port: u16) -> String {
    let (host, db_port, user, pass) = db.server();
    let mut c = format!(
        "ListenIP=127.0.0.1\nListenPort={port}\nThreadNum={THREADS}\n\
         MsfsSite=http://127.0.0.1:8700/\naesKey=12345678901234567890123456789012\n\
         DBInstances=teamtalk_master,teamtalk_slave\n\
         CacheInstances=unread,group_set,token,sync,group_member\n"
    );
    for inst in ["teamtalk_master", "teamtalk_slave"] {
        c += &format!(
            "{inst}_host={host}\n{inst}_port={db_port}\n{inst}_dbname={}\n\
             {inst}_username={user}\n{inst}_password={pass}\n{inst}_maxconncnt=16\n",
            db.name()
        );
    }
    for (i, inst) in ["unread", "group_set", "token", "sync", "group_member"]
        .iter()
        .enumerate()
    {
        c += &format!(
            "{inst}_host=127.0.0.1\n{inst}_port={redis}\n{inst}_db={}\n{inst}_maxconncnt=16\n",
            i + 1
        );
    }
    c
}

fn message(from: u32, to: u32, i: u32) -> IMMsgData {
    IMMsgData {
        from_user_id: from,
        to_session_id: to,
        msg_id: 0,
        create_time: 1_700_000_000 + i,
        msg_type: MsgType::MSG_TYPE_SINGLE_TEXT,
        // About the size of a short encrypted text.
        msg_data: format!("{i:08}-aGVsbG8gd29ybGQsIHRoaXMgaXMgYSBtZXNzYWdl").into_bytes(),
        attach_data: None,
    }
}

/// Sends `count` messages on one link, `WINDOW` in flight; returns how
/// many were stored.
fn pump(port: u16, from: u32, to: u32, count: u32) -> u32 {
    let mut c = PduClient::connect(port);
    let cid = MessageCmdID::CID_MSG_DATA as u16;
    let (mut sent, mut stored) = (0u32, 0u32);
    while stored < count {
        while sent < count && sent - stored < WINDOW {
            c.send_msg(
                ServiceID::SID_MSG as u16,
                cid,
                sent as u16,
                &message(from, to, sent),
            );
            sent += 1;
        }
        let (_, r) = c.recv_cmd::<IMMsgData>(cid);
        assert_ne!(r.msg_id, 0, "a message was not stored");
        stored += 1;
    }
    stored
}

fn run(label: &str, pairs: &[(u32, u32)], per_link: u32) {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let port = free_port();
    let mut server =
        ServerProcess::start(BIN, "dbproxyserver.conf", &conf(&db, redis.port(), port));
    server.wait_listening(port);
    // First messages create relations and sessions: not timed.
    for &(from, to) in pairs {
        pump(port, from, to, 1);
    }
    let started = Instant::now();
    let threads: Vec<_> = pairs
        .iter()
        .map(|&(from, to)| std::thread::spawn(move || pump(port, from, to, per_link)))
        .collect();
    let total: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{label}: {total} messages stored in {secs:.2} s = {:.0} msgs/s",
        f64::from(total) / secs
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too, but
    // with --test-like flags we only check that it starts.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    run("1 link, 1 pair", &[(1, 2)], 10_000);
    let distinct: Vec<(u32, u32)> = (0..8).map(|k| (100 + 2 * k, 101 + 2 * k)).collect();
    run("8 links, 8 pairs", &distinct, 4_000);
    let same: Vec<(u32, u32)> = (0..8)
        .map(|k| if k % 2 == 0 { (1, 2) } else { (2, 1) })
        .collect();
    run("8 links, 1 pair", &same, 4_000);
}
