//! Validations looked up in batches (`login_lane`, `business/login`'s
//! `validate_batch`): requests that arrive together are looked up
//! together, and each is answered as it would be alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base::md5::md5_hex;
use common::*;
use mysql::prelude::Queryable;
use std::collections::HashMap;
use tt_proto::IM::BaseDefine::{OtherCmdID, ServiceID};
use tt_proto::IM::Server::{IMValidateReq, IMValidateRsp};
use tt_rs::metrics::scrape;
use tt_rs::{free_port, PduClient, RedisServer, TestDb};

const SID_OTHER: u16 = ServiceID::SID_OTHER as u16;
const VALIDATE_REQ: u16 = OtherCmdID::CID_OTHER_VALIDATE_REQ as u16;
const VALIDATE_RSP: u16 = OtherCmdID::CID_OTHER_VALIDATE_RSP as u16;

fn start_with_metrics(db: &TestDb, redis: &RedisServer) -> Proxy {
    let port = free_port();
    let text = conf(db, redis.port(), port, 4, 8)
        + &format!("MetricsListenIP=127.0.0.1\nMetricsPort={}\n", free_port());
    start_with(text, port)
}

/// What a request should get: result code and, for 0, the user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Ok(u32),
    Wrong,
    Locked,
}

fn send_validate(c: &mut PduClient, seq: u16, name: &str, plain: &str) {
    let req = IMValidateReq {
        user_name: name.into(),
        password: md5_hex(plain.as_bytes()),
        attach_data: Some(format!("attach-{seq}").into_bytes()),
    };
    c.send_msg(SID_OTHER, VALIDATE_REQ, seq, &req);
}

/// Three links each write their validations at once, without waiting
/// (so they queue up behind one another's lookups): right and wrong
/// passwords, unknown and disabled users, one name many times, a name
/// with trailing spaces (MariaDB's collation ignores them, as for a
/// lookup alone), and a name that passes the failure limit inside a
/// batch. Every request gets its own answer, with its seq and attach
/// data, as it would alone; and the lookups went in fewer batches than
/// requests.
#[test]
fn validations_that_queue_up_are_looked_up_together_and_answered_each_alone() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    for id in 1..=40u32 {
        add_user(&db, id, &format!("user{id}"), &format!("pw-{id}"), 100);
    }
    db.conn()
        .exec_drop("UPDATE IMUser SET status = 1 WHERE id = 40", ())
        .unwrap();
    let p = start_with_metrics(&db, &redis);

    let mut plans: Vec<Vec<(String, String, Expect)>> = vec![Vec::new(), Vec::new(), Vec::new()];
    for id in 1..=39u32 {
        let (name, pw) = (format!("user{id}"), format!("pw-{id}"));
        let link = (id % 3) as usize;
        plans[link].push((name.clone(), pw.clone(), Expect::Ok(id)));
        if id % 4 == 0 {
            plans[link].push((name, "not-it".into(), Expect::Wrong));
        }
    }
    plans[0].push(("nobody".into(), "x".into(), Expect::Wrong));
    plans[1].push(("user40".into(), "pw-40".into(), Expect::Wrong)); // disabled
    plans[2].push(("user7  ".into(), "pw-7".into(), Expect::Ok(7)));
    for _ in 0..5 {
        plans[1].push(("user5".into(), "pw-5".into(), Expect::Ok(5)));
    }
    // user9 on one link: 11 failures in a row are answered "wrong", the
    // 12th attempt (right password and all) is refused as locked.
    for _ in 0..11 {
        plans[0].push(("user9".into(), "guess".into(), Expect::Wrong));
    }
    plans[0].push(("user9".into(), "pw-9".into(), Expect::Locked));
    // user9's own successful login comes first on its link.
    let first9 = plans[0].iter().position(|(n, _, _)| n == "user9").unwrap();
    assert_eq!(plans[0][first9].2, Expect::Ok(9));

    let mut links: Vec<PduClient> = (0..3).map(|_| PduClient::connect(p.port)).collect();
    for (c, plan) in links.iter_mut().zip(&plans) {
        for (i, (name, pw, _)) in plan.iter().enumerate() {
            send_validate(c, i as u16 + 1, name, pw);
        }
    }
    let mut total = 0;
    for (c, plan) in links.iter_mut().zip(&plans) {
        let mut got: HashMap<u16, IMValidateRsp> = HashMap::new();
        for _ in 0..plan.len() {
            let (pdu, rsp) = c.recv_cmd::<IMValidateRsp>(VALIDATE_RSP);
            assert!(got.insert(pdu.seq_num(), rsp).is_none(), "one answer a seq");
        }
        for (i, (name, _, expect)) in plan.iter().enumerate() {
            let seq = i as u16 + 1;
            let rsp = &got[&seq];
            assert_eq!(&rsp.user_name, name, "seq {seq}");
            assert_eq!(
                rsp.attach_data.as_deref(),
                Some(format!("attach-{seq}").as_bytes()),
                "seq {seq}"
            );
            let code = match expect {
                Expect::Ok(id) => {
                    let user = rsp.user_info.as_ref().expect("user info");
                    assert_eq!(user.user_id, *id, "{name}");
                    0
                }
                Expect::Wrong => 1,
                Expect::Locked => 6,
            };
            assert_eq!(rsp.result_code, code, "{name} (seq {seq}): {rsp:?}");
            if code != 0 {
                assert!(rsp.user_info.is_none(), "{name}");
            }
        }
        total += plan.len();
    }
    let s = scrape(&p.server);
    let batched = s.value("tt_db_login_batched_total", &[]);
    let batches = s.value("tt_db_login_batches_total", &[]);
    assert_eq!(
        batched, total as f64,
        "every validation went through the lane"
    );
    assert!(
        batches >= 1.0 && batches < batched,
        "{batches} batches for {batched} validations"
    );
    assert_eq!(s.value("tt_db_login_lane_waiting", &[]), 0.0);
    // Nothing holds a place: a validation alone is answered at once.
    let (_, rsp) = {
        send_validate(&mut links[0], 999, "user1", "pw-1");
        links[0].recv_cmd::<IMValidateRsp>(VALIDATE_RSP)
    };
    assert_eq!(rsp.result_code, 0);
}
