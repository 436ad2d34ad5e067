//! db_proxy_server against real MariaDB and Redis: the real binary on a
//! free loopback port, fake msg_servers speaking the protocol to it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base::md5::md5_hex;
use base::pdu::ImPdu;
use mysql::prelude::Queryable;
use std::time::Duration;
use tt_proto::IM::BaseDefine::{
    BuddyListCmdID, ClientType, DepartmentStatusType, LoginCmdID, OtherCmdID, ServiceID,
};
use tt_proto::IM::Buddy::{
    IMAllUserReq, IMAllUserRsp, IMChangeSignInfoReq, IMChangeSignInfoRsp, IMDepartmentReq,
    IMDepartmentRsp, IMUsersInfoReq, IMUsersInfoRsp,
};
use tt_proto::IM::Login::{
    IMDeviceTokenReq, IMDeviceTokenRsp, IMPushShieldReq, IMPushShieldRsp, IMQueryPushShieldReq,
    IMQueryPushShieldRsp,
};
use tt_proto::IM::Server::{
    IMGetDeviceTokenReq, IMGetDeviceTokenRsp, IMStopReceivePacket, IMValidateReq, IMValidateRsp,
};
mod common;

use common::{add_user, ask, conf, fresh, reference_db, start, BIN};
use tt_rs::{free_port, PduClient, RedisServer, TestDb};

const SID_OTHER: u16 = ServiceID::SID_OTHER as u16;
const SID_BUDDY: u16 = ServiceID::SID_BUDDY_LIST as u16;
const SID_LOGIN: u16 = ServiceID::SID_LOGIN as u16;

fn validate(c: &mut PduClient, seq: u16, name: &str, plain: &str) -> IMValidateRsp {
    let req = IMValidateReq {
        user_name: name.into(),
        password: md5_hex(plain.as_bytes()),
        attach_data: Some(b"attach".to_vec()),
    };
    c.send_msg(
        SID_OTHER,
        OtherCmdID::CID_OTHER_VALIDATE_REQ as u16,
        seq,
        &req,
    );
    let (pdu, rsp) = c.recv_cmd::<IMValidateRsp>(OtherCmdID::CID_OTHER_VALIDATE_RSP as u16);
    assert_eq!(pdu.seq_num(), seq, "reply carries the request's seq");
    assert_eq!(
        rsp.attach_data.as_deref(),
        Some(&b"attach"[..]),
        "and its attach data"
    );
    rsp
}

#[test]
fn login_checks_the_salted_password() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    add_user(&db, 1, "alice", "123456", 100);
    let p = start(&db, &redis, 2, 4);
    let mut c = PduClient::connect(p.port);

    let ok = validate(&mut c, 1, "alice", "123456");
    assert_eq!(ok.result_code, 0);
    assert_eq!(ok.result_string.as_deref(), Some("成功"));
    assert_eq!(ok.user_name, "alice");
    let u = ok.user_info.expect("user info on success");
    assert_eq!(u.user_id, 1);
    assert_eq!(u.user_nick_name, "alice-nick");
    assert_eq!(u.user_real_name, "alice");
    assert_eq!(u.email, "alice@example.com");
    assert_eq!(u.status, 0);

    let wrong = validate(&mut c, 2, "alice", "654321");
    assert_eq!(wrong.result_code, 1);
    assert_eq!(wrong.result_string.as_deref(), Some("用户名/密码错误"));
    assert!(wrong.user_info.is_none());

    let unknown = validate(&mut c, 3, "nobody", "123456");
    assert_eq!(unknown.result_code, 1);
}

#[test]
fn more_than_ten_failures_lock_the_name_and_success_clears_them() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    add_user(&db, 2, "bob", "secret", 100);
    add_user(&db, 3, "carol", "secret", 100);
    let p = start(&db, &redis, 2, 4);
    let mut c = PduClient::connect(p.port);
    for i in 0..11 {
        assert_eq!(
            validate(&mut c, i, "bob", "wrong").result_code,
            1,
            "failure {i}"
        );
    }
    // The 11th failure is on record: even the right password is refused now.
    let locked = validate(&mut c, 20, "bob", "secret");
    assert_eq!(locked.result_code, 6);
    assert_eq!(
        locked.result_string.as_deref(),
        Some("用户名/密码错误次数太多")
    );
    // Other names are not affected; a success clears that name's failures.
    for i in 0..10 {
        assert_eq!(validate(&mut c, 30 + i, "carol", "wrong").result_code, 1);
    }
    assert_eq!(validate(&mut c, 41, "carol", "secret").result_code, 0);
    for i in 0..10 {
        assert_eq!(validate(&mut c, 50 + i, "carol", "wrong").result_code, 1);
    }
    assert_eq!(validate(&mut c, 61, "carol", "secret").result_code, 0);
}

#[test]
fn injection_strings_are_just_wrong_names() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    add_user(&db, 1, "alice", "123456", 100);
    let p = start(&db, &redis, 2, 4);
    let mut c = PduClient::connect(p.port);
    // Against the C++ this logs in as user 1: the forged row's password is
    // md5(md5("x") + "") and its salt empty.
    let forged = md5_hex(md5_hex(b"x").as_bytes());
    // The attack string, written as the attacker would type it.
    let union = [
        "nobody' UNION SELECT 1,0,'n','d','evil','",
        &forged,
        "','','','','',1,0,0,0,0,'' -- ",
    ]
    .concat();
    let attacks = [
        "' OR '1'='1",
        "alice' -- ",
        "alice' #",
        union.as_str(),
        "'; DROP TABLE IMUser; -- ",
        "\\' OR 1=1 -- ",
    ];
    for (i, name) in attacks.iter().enumerate() {
        for pass in ["x", "123456"] {
            let rsp = validate(&mut c, i as u16, name, pass);
            assert_eq!(rsp.result_code, 1, "{name:?} with {pass:?}");
            assert!(rsp.user_info.is_none());
        }
    }
    let users: u32 = db
        .conn()
        .query_first("SELECT COUNT(*) FROM IMUser")
        .unwrap()
        .unwrap();
    assert_eq!(users, 1, "the table is untouched");
    assert_eq!(validate(&mut c, 99, "alice", "123456").result_code, 0);
}

#[test]
fn user_info_and_changed_users() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    add_user(&db, 10, "u10", "p", 1000);
    add_user(&db, 11, "u11", "p", 2000);
    add_user(&db, 12, "u12", "p", 3000);
    db.conn()
        .query_drop("UPDATE IMUser SET status = 3 WHERE id = 12")
        .unwrap();
    let p = start(&db, &redis, 2, 4);
    let mut c = PduClient::connect(p.port);

    let req = IMUsersInfoReq {
        user_id: 10,
        user_id_list: vec![11, 10, 999],
        attach_data: None,
    };
    c.send_msg(
        SID_BUDDY,
        BuddyListCmdID::CID_BUDDY_LIST_USER_INFO_REQUEST as u16,
        5,
        &req,
    );
    let (pdu, rsp) =
        c.recv_cmd::<IMUsersInfoRsp>(BuddyListCmdID::CID_BUDDY_LIST_USER_INFO_RESPONSE as u16);
    assert_eq!(pdu.seq_num(), 5);
    assert_eq!(pdu.service_id(), SID_BUDDY);
    assert_eq!(rsp.user_id, 10);
    let mut ids: Vec<u32> = rsp.user_info_list.iter().map(|u| u.user_id).collect();
    ids.sort();
    assert_eq!(ids, vec![10, 11], "unknown ids are skipped");
    let u11 = rsp.user_info_list.iter().find(|u| u.user_id == 11).unwrap();
    assert_eq!(u11.user_nick_name, "u11-nick");
    assert_eq!(u11.user_domain, "u11-domain");
    assert_eq!(u11.user_tel, "1380000");
    assert_eq!(u11.avatar_url, "http://a/x.png");
    assert_eq!(u11.sign_info.as_deref(), Some("hi"));
    assert_eq!(u11.department_id, 1);
    assert_eq!(u11.user_gender, 1);

    // Everything not deleted since 0; since 1500 includes 11 and 12 (status is no filter then).
    let all = |c: &mut PduClient, since: u32| {
        let req = IMAllUserReq {
            user_id: 10,
            latest_update_time: since,
            attach_data: Some(vec![1, 2]),
        };
        ask::<IMAllUserRsp>(
            c,
            SID_BUDDY,
            BuddyListCmdID::CID_BUDDY_LIST_ALL_USER_REQUEST as u16,
            6,
            &req,
            BuddyListCmdID::CID_BUDDY_LIST_ALL_USER_RESPONSE as u16,
        )
    };
    let r = all(&mut c, 0);
    let mut ids: Vec<u32> = r.user_list.iter().map(|u| u.user_id).collect();
    ids.sort();
    assert_eq!(ids, vec![10, 11]);
    assert_eq!(r.latest_update_time, 2000, "newest update among them");
    assert_eq!(r.attach_data.as_deref(), Some(&[1u8, 2][..]));
    let r = all(&mut c, 1500);
    let mut ids: Vec<u32> = r.user_list.iter().map(|u| u.user_id).collect();
    ids.sort();
    assert_eq!(ids, vec![11, 12]);
    assert_eq!(r.latest_update_time, 3000);
}

#[test]
fn sign_info_departments_and_push_shield() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    add_user(&db, 20, "u20", "p", 100);
    db.conn()
        .query_drop(
            "INSERT INTO IMDepart (id, departName, priority, parentId, status, created, updated) VALUES \
             (1, 'Eng', 5, 0, 0, 1, 500), (2, 'Ops', 6, 1, 1, 1, 600), (3, 'Old', 7, 0, 9, 1, 700), \
             (4, 'Stale', 8, 0, 0, 1, 50)",
        )
        .unwrap();
    let p = start(&db, &redis, 2, 4);
    let mut c = PduClient::connect(p.port);

    let req = IMDepartmentReq {
        user_id: 20,
        latest_update_time: 100,
        attach_data: None,
    };
    let rsp = ask::<IMDepartmentRsp>(
        &mut c,
        SID_BUDDY,
        BuddyListCmdID::CID_BUDDY_LIST_DEPARTMENT_REQUEST as u16,
        1,
        &req,
        BuddyListCmdID::CID_BUDDY_LIST_DEPARTMENT_RESPONSE as u16,
    );
    let mut depts: Vec<(u32, String, u32, u32)> = rsp
        .dept_list
        .iter()
        .map(|d| (d.dept_id, d.dept_name.clone(), d.priority, d.parent_dept_id))
        .collect();
    depts.sort();
    assert_eq!(
        depts,
        vec![(1, "Eng".into(), 5, 0), (2, "Ops".into(), 6, 1)],
        "invalid status 9 and unchanged departments are left out"
    );
    assert!(rsp
        .dept_list
        .iter()
        .any(|d| d.dept_status == DepartmentStatusType::DEPT_STATUS_DELETE));
    assert_eq!(
        rsp.latest_update_time, 700,
        "newest update seen, as the C++"
    );

    let sign = |c: &mut PduClient, text: &str| {
        let req = IMChangeSignInfoReq {
            user_id: 20,
            sign_info: text.into(),
            attach_data: None,
        };
        ask::<IMChangeSignInfoRsp>(
            c,
            SID_BUDDY,
            BuddyListCmdID::CID_BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST as u16,
            2,
            &req,
            BuddyListCmdID::CID_BUDDY_LIST_CHANGE_SIGN_INFO_RESPONSE as u16,
        )
    };
    let r = sign(&mut c, "new sign 中文");
    assert_eq!(
        (r.result_code, r.sign_info.as_deref()),
        (0, Some("new sign 中文"))
    );
    let stored: String = db
        .conn()
        .query_first("SELECT sign_info FROM IMUser WHERE id = 20")
        .unwrap()
        .unwrap();
    assert_eq!(stored, "new sign 中文");
    let r = sign(&mut c, &"x".repeat(129));
    assert_eq!(
        (r.result_code, r.sign_info),
        (1, None),
        "over 128 bytes refused"
    );

    let shield = |c: &mut PduClient, user: u32, status: u32| {
        let req = IMPushShieldReq {
            user_id: user,
            shield_status: status,
            attach_data: None,
        };
        ask::<IMPushShieldRsp>(
            c,
            SID_LOGIN,
            LoginCmdID::CID_LOGIN_REQ_PUSH_SHIELD as u16,
            3,
            &req,
            LoginCmdID::CID_LOGIN_RES_PUSH_SHIELD as u16,
        )
    };
    let query = |c: &mut PduClient, user: u32| {
        let req = IMQueryPushShieldReq {
            user_id: user,
            attach_data: None,
        };
        ask::<IMQueryPushShieldRsp>(
            c,
            SID_LOGIN,
            LoginCmdID::CID_LOGIN_REQ_QUERY_PUSH_SHIELD as u16,
            4,
            &req,
            LoginCmdID::CID_LOGIN_RES_QUERY_PUSH_SHIELD as u16,
        )
    };
    assert_eq!(query(&mut c, 20).shield_status, Some(0));
    let r = shield(&mut c, 20, 1);
    assert_eq!((r.result_code, r.shield_status), (0, Some(1)));
    assert_eq!(query(&mut c, 20).shield_status, Some(1));
    assert_eq!(shield(&mut c, 999, 1).result_code, 1, "unknown user");
    let q = query(&mut c, 999);
    assert_eq!((q.result_code, q.shield_status), (1, None));
    // A value the column cannot hold fails in MariaDB: result 1, as the C++
    // answers a failed update, rather than no answer.
    let r = shield(&mut c, 20, 300);
    assert_eq!((r.result_code, r.shield_status), (1, None));
    assert_eq!(query(&mut c, 20).shield_status, Some(1), "unchanged");
}

#[test]
fn device_token_set_then_get() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    add_user(&db, 30, "u30", "p", 100);
    add_user(&db, 31, "u31", "p", 100);
    let p = start(&db, &redis, 2, 4);
    let mut c = PduClient::connect(p.port);
    let set = |c: &mut PduClient, user: u32, token: &str, client: ClientType| {
        let req = IMDeviceTokenReq {
            user_id: user,
            device_token: token.into(),
            client_type: Some(client),
            attach_data: Some(b"a".to_vec()),
        };
        c.send_msg(
            SID_LOGIN,
            LoginCmdID::CID_LOGIN_REQ_DEVICETOKEN as u16,
            8,
            &req,
        );
        let (pdu, rsp) =
            c.recv_cmd::<IMDeviceTokenRsp>(LoginCmdID::CID_LOGIN_RES_DEVICETOKEN as u16);
        assert_eq!(pdu.seq_num(), 8);
        assert_eq!(rsp.user_id, user);
    };
    set(&mut c, 30, "tok-old", ClientType::CLIENT_TYPE_IOS);
    set(&mut c, 30, "tok-ios", ClientType::CLIENT_TYPE_IOS);
    set(&mut c, 31, "tok-android", ClientType::CLIENT_TYPE_ANDROID);

    // The C++ layout in the token cache (db 3 here).
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/3", redis.port())).unwrap();
    let mut r = client.get_connection().unwrap();
    let get = |r: &mut redis::Connection, k: &str| -> Option<String> {
        redis::cmd("GET").arg(k).query(r).unwrap()
    };
    assert_eq!(get(&mut r, "device_30").as_deref(), Some("ios:tok-ios"));
    assert_eq!(get(&mut r, "device_tok-ios").as_deref(), Some("30"));
    assert_eq!(
        get(&mut r, "device_tok-old").as_deref(),
        Some(""),
        "old token released"
    );
    assert_eq!(
        get(&mut r, "device_31").as_deref(),
        Some("android:tok-android")
    );
    // Two unread messages for user 31 from user 30 (the unread cache, db 1).
    let unread = redis::Client::open(format!("redis://127.0.0.1:{}/1", redis.port())).unwrap();
    let mut u = unread.get_connection().unwrap();
    redis::cmd("HSET")
        .arg("unread_31")
        .arg("30")
        .arg("2")
        .query::<()>(&mut u)
        .unwrap();

    let req = IMGetDeviceTokenReq {
        user_id: vec![30, 31, 32],
        attach_data: Some(b"z".to_vec()),
    };
    let rsp = ask::<IMGetDeviceTokenRsp>(
        &mut c,
        SID_OTHER,
        OtherCmdID::CID_OTHER_GET_DEVICE_TOKEN_REQ as u16,
        9,
        &req,
        OtherCmdID::CID_OTHER_GET_DEVICE_TOKEN_RSP as u16,
    );
    assert_eq!(rsp.attach_data.as_deref(), Some(&b"z"[..]));
    let mut infos: Vec<(u32, ClientType, String, u32)> = rsp
        .user_token_info
        .iter()
        .map(|t| (t.user_id, t.user_type, t.token.clone(), t.push_count))
        .collect();
    infos.sort_by_key(|t| t.0);
    assert_eq!(
        infos,
        vec![
            (30, ClientType::CLIENT_TYPE_IOS, "tok-ios".into(), 0),
            (31, ClientType::CLIENT_TYPE_ANDROID, "tok-android".into(), 2),
        ]
    );
}

#[test]
fn pool_exhaustion_waits_then_answers_all() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    for id in 1..=5 {
        add_user(&db, id, &format!("p{id}"), "p", 100);
    }
    // Eight workers share one connection per pool.
    let p = start(&db, &redis, 8, 1);
    let mut c = PduClient::connect(p.port);
    for seq in 0..200u16 {
        let req = IMUsersInfoReq {
            user_id: 1,
            user_id_list: vec![1, 2, 3, 4, 5],
            attach_data: None,
        };
        c.send_msg(
            SID_BUDDY,
            BuddyListCmdID::CID_BUDDY_LIST_USER_INFO_REQUEST as u16,
            seq,
            &req,
        );
    }
    let mut seen = [false; 200];
    for _ in 0..200 {
        let (pdu, rsp) =
            c.recv_cmd::<IMUsersInfoRsp>(BuddyListCmdID::CID_BUDDY_LIST_USER_INFO_RESPONSE as u16);
        assert_eq!(rsp.user_info_list.len(), 5);
        seen[pdu.seq_num() as usize] = true;
    }
    assert!(seen.iter().all(|&s| s), "every request answered once");
}

#[test]
fn redis_restart_fails_cleanly_then_recovers() {
    let (_db, mut redis, p, mut c) = fresh(2, 2);
    let set_token = |c: &mut PduClient, seq: u16| {
        let req = IMDeviceTokenReq {
            user_id: 40,
            device_token: "t".into(),
            client_type: Some(ClientType::CLIENT_TYPE_ANDROID),
            attach_data: None,
        };
        c.send_msg(
            SID_LOGIN,
            LoginCmdID::CID_LOGIN_REQ_DEVICETOKEN as u16,
            seq,
            &req,
        );
        c.try_recv(Duration::from_millis(1500))
    };
    assert!(set_token(&mut c, 1).is_some());
    redis.stop();
    // Requests now fail: no reply (nothing stored to acknowledge), no crash.
    for seq in 2..5 {
        if let Some(pdu) = set_token(&mut c, seq) {
            assert_eq!(
                pdu.command_id(),
                OtherCmdID::CID_OTHER_HEARTBEAT as u16,
                "no ack"
            );
        }
    }
    redis.restart();
    // Each connection retries at most every 4 s: bounded wait for recovery.
    let mut recovered = false;
    for seq in 10..60 {
        if let Some(pdu) = set_token(&mut c, seq) {
            if pdu.command_id() == LoginCmdID::CID_LOGIN_RES_DEVICETOKEN as u16 {
                recovered = true;
                break;
            }
        }
    }
    assert!(
        recovered,
        "answers again after Redis is back:\n{}",
        p.server.log()
    );
    assert!(
        p.server.log().contains("cache pool"),
        "the failure was logged"
    );
}

#[test]
fn a_malformed_pdu_closes_only_its_link() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    add_user(&db, 1, "alice", "123456", 100);
    let p = start(&db, &redis, 2, 4);
    let mut good = PduClient::connect(p.port);
    let mut bad = PduClient::connect(p.port);
    let mut undecodable = PduClient::connect(p.port);
    bad.send_raw(&[0, 0, 0, 3, 0, 1, 0, 0, 0, 7, 7, 3, 0, 0, 0, 0]);
    assert!(bad.is_closed_by_peer());
    // A body that does not decode: the C++'s reply for a validate request.
    let mut pdu = ImPdu::new(SID_OTHER, OtherCmdID::CID_OTHER_VALIDATE_REQ as u16);
    pdu.set_body(&[0xff, 0xff, 0xff]).unwrap();
    undecodable.send(&pdu);
    let (_, rsp) = undecodable.recv_cmd::<IMValidateRsp>(OtherCmdID::CID_OTHER_VALIDATE_RSP as u16);
    assert_eq!(rsp.result_code, 2);
    // An unknown command is dropped; the link stays.
    undecodable.send(&ImPdu::new(SID_OTHER, 0x07ff));
    assert_eq!(
        validate(&mut undecodable, 3, "alice", "123456").result_code,
        0
    );
    assert_eq!(validate(&mut good, 4, "alice", "123456").result_code, 0);
}

#[test]
fn sigterm_sends_stop_recv_packet_and_exits_zero() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let mut p = start(&db, &redis, 2, 2);
    let mut links: Vec<PduClient> = (0..3).map(|_| PduClient::connect(p.port)).collect();
    // Make sure all three are registered before the signal.
    for (i, l) in links.iter_mut().enumerate() {
        validate(l, i as u16, "nobody", "x");
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &p.server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for l in &mut links {
        let (_, stop) =
            l.recv_cmd::<IMStopReceivePacket>(OtherCmdID::CID_OTHER_STOP_RECV_PACKET as u16);
        assert_eq!(stop.result, 0);
    }
    // Still answering after it (the drain starts once no request has come
    // for 250 ms, at most 4 s after the signal).
    assert_eq!(validate(&mut links[0], 9, "nobody", "x").result_code, 1);
    assert_eq!(p.server.wait_exit(), Some(0));
}

#[test]
fn missing_or_bad_keys_exit_naming_them() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let good = conf(&db, redis.port(), free_port(), 2, 2);
    let cases = [
        (
            "aesKey",
            good.replace("aesKey=12345678901234567890123456789012", "aesKey=short"),
        ),
        (
            "teamtalk_slave_maxconncnt",
            good.replace("teamtalk_slave_maxconncnt=2\n", ""),
        ),
        ("unread_db", good.replace("unread_db=1\n", "")),
        ("ThreadNum", good.replace("ThreadNum=2\n", "")),
    ];
    for (key, text) in cases {
        let (code, out) = tt_rs::run_to_exit(BIN, "dbproxyserver.conf", &text, &[]);
        assert_ne!(code, Some(0), "{key}");
        assert!(out.contains(key), "{key} not named in:\n{out}");
    }
}

#[test]
fn runs_on_a_database_made_from_the_reference_schema() {
    let Some(db) = reference_db() else { return };
    db.conn().query_drop("DELETE FROM IMUser").unwrap();
    let redis = RedisServer::start();
    add_user(&db, 7, "ref", "pw", 100);
    let p = start(&db, &redis, 2, 2);
    let mut c = PduClient::connect(p.port);
    let rsp = validate(&mut c, 1, "ref", "pw");
    assert_eq!(rsp.result_code, 0);
    assert_eq!(rsp.user_info.unwrap().user_id, 7);
}
