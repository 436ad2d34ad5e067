//! db_proxy_server's validate (login check) round trip over loopback: one
//! link, sequential requests, real MariaDB and Redis. The C++ answers in
//! about 10.3 ms here because its workers' replies wait for the loop's
//! 10 ms tick; ours wake the loop at once.
//!
//! `cargo bench --bench validate` (needs MariaDB and redis-server, as
//! `scripts/test.sh` sets them up).

use base::md5::md5_hex;
use criterion::{criterion_group, criterion_main, Criterion};
use mysql::prelude::Queryable;
use tt_proto::IM::BaseDefine::{OtherCmdID, ServiceID};
use tt_proto::IM::Server::{IMValidateReq, IMValidateRsp};
use tt_rs::{built_binary, free_port, PduClient, RedisServer, ServerProcess, TestDb};

fn conf(db: &TestDb, redis: u16, port: u16) -> String {
    let (host, db_port, user, pass) = db.server();
    let mut c = format!(
        "ListenIP=127.0.0.1\nListenPort={port}\nThreadNum=4\nMsfsSite=http://127.0.0.1:8700/\n\
         aesKey=12345678901234567890123456789012\nDBInstances=teamtalk_master,teamtalk_slave\n\
         CacheInstances=unread,group_set,token,sync,group_member\n"
    );
    for inst in ["teamtalk_master", "teamtalk_slave"] {
        c += &format!(
            "{inst}_host={host}\n{inst}_port={db_port}\n{inst}_dbname={}\n{inst}_username={user}\n\
             {inst}_password={pass}\n{inst}_maxconncnt=8\n",
            db.name()
        );
    }
    for (i, inst) in ["unread", "group_set", "token", "sync", "group_member"]
        .iter()
        .enumerate()
    {
        c += &format!(
            "{inst}_host=127.0.0.1\n{inst}_port={redis}\n{inst}_db={}\n{inst}_maxconncnt=8\n",
            i + 1
        );
    }
    c
}

fn validate_round_trip(c: &mut Criterion) {
    let db = TestDb::with_schema();
    let salt = "1234";
    let stored = md5_hex(format!("{}{salt}", md5_hex(b"123456")).as_bytes());
    db.conn()
        .exec_drop(
            "INSERT INTO IMUser (id, name, password, salt, departId, status, created, updated) \
             VALUES (1, 'alice', ?, ?, 1, 0, 1, 1)",
            (stored, salt),
        )
        .expect("insert user");
    let redis = RedisServer::start();
    let port = free_port();
    let bin = built_binary("db_proxy_server");
    let mut server = ServerProcess::start(
        bin.to_str().expect("utf-8 path"),
        "dbproxyserver.conf",
        &conf(&db, redis.port(), port),
    );
    server.wait_listening(port);
    let mut link = PduClient::connect(port);
    let req = IMValidateReq {
        user_name: "alice".into(),
        password: md5_hex(b"123456"),
        attach_data: None,
    };
    let mut seq = 0u16;
    c.bench_function("db_proxy_validate_round_trip", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            link.send_msg(
                ServiceID::SID_OTHER as u16,
                OtherCmdID::CID_OTHER_VALIDATE_REQ as u16,
                seq,
                &req,
            );
            let (_, rsp) =
                link.recv_cmd::<IMValidateRsp>(OtherCmdID::CID_OTHER_VALIDATE_RSP as u16);
            assert_eq!(rsp.result_code, 0);
        })
    });
}

criterion_group!(benches, validate_round_trip);
criterion_main!(benches);
