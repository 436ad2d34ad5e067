//! db_proxy_server's validate (login check) round trip over loopback: one
//! link, sequential requests, real MariaDB and Redis. The C++ answers in
//! about 10.3 ms here because its workers' replies wait for the loop's
//! 10 ms tick; ours wake the loop at once.
//!
//! `cargo bench --bench validate` (needs MariaDB and redis-server, as
//! `scripts/test.sh` sets them up).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// criterion_group! makes an undocumented public function.
#![allow(missing_docs)]

use base::md5::md5_hex;
use criterion::{criterion_group, criterion_main, Criterion};
use mysql::prelude::Queryable;
use tt_proto::IM::BaseDefine::{OtherCmdID, ServiceID};
use tt_proto::IM::Server::{IMValidateReq, IMValidateRsp};
use tt_rs::{built_binary, free_port, PduClient, RedisServer, ServerProcess, TestDb};

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
        &tt_rs::db_proxy_conf(&db, redis.port(), port, 4, 8, "http://127.0.0.1:8700/"),
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
