//! Through the whole cluster: a message to a user who registered an iOS
//! device token and is offline reaches the fake APNs as msg_server builds
//! it (the sender's nick, the text decrypted, the unread count as badge).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base::md5::md5_hex;
use common::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tt_proto::IM::BaseDefine::{ClientType, MsgType, ResultType, UserStatType};
use tt_proto::IM::Login::{IMDeviceTokenReq, IMDeviceTokenRsp, IMLoginReq, IMLoginRes};
use tt_proto::IM::Message::{IMMsgData, IMMsgDataAck};
use tt_proto::{cid, sid};
use tt_rs::cluster::{start_server, Cluster};
use tt_rs::{free_port, PduClient, AES_KEY, WAIT};

/// Logs `name` in on the msg_server at `port`, retrying while it is still
/// connecting to its peers.
fn login(port: u16, name: &str, plain: &str, client_type: ClientType) -> PduClient {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = PduClient::connect(port);
        let req = IMLoginReq {
            user_name: name.into(),
            password: md5_hex(plain.as_bytes()),
            online_status: UserStatType::USER_STATUS_ONLINE,
            client_type,
            client_version: Some("test/1.0".into()),
        };
        c.send_msg(sid::LOGIN, cid::LOGIN_REQ_USERLOGIN, 1, &req);
        let (_, res) = c.recv_cmd::<IMLoginRes>(cid::LOGIN_RES_USERLOGIN);
        match res.result_code {
            ResultType::REFUSE_REASON_NONE => return c,
            other => {
                assert!(Instant::now() < deadline, "login of {name}: {other:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// `GET key` in Redis database `db` (db_proxy keeps device tokens in 3).
fn redis_get(port: u16, db: u32, key: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let db = db.to_string();
    let req = format!(
        "*2\r\n$6\r\nSELECT\r\n${}\r\n{db}\r\n*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n",
        db.len(),
        key.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    // "+OK\r\n" then the bulk string (or "$-1\r\n").
    while !(got.starts_with("+OK\r\n") && got[5..].ends_with("\r\n") && got.len() > 7) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "redis closed");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    got
}

#[test]
fn a_message_to_an_offline_ios_user_reaches_apns_with_nick_and_text() {
    let cluster = Cluster::start(&[(1, "alice", "alice-pw"), (2, "bob", "bob-pw")], 0);
    let pki = TestPki::new();
    let apns = FakeProvider::start(
        &pki,
        0,
        false,
        std::sync::Arc::new(|_: &Recorded| Reply::ok("")),
    );
    let files = Files::new();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let p8 = files.write("AuthKey.p8", &key.serialize_pem());
    let ca = files.write("ca.pem", &pki.ca_pem());
    let push_port = free_port();
    let _push_server = start_push_server(
        push_port,
        &conf(
            push_port,
            &format!(
                "ApnsEndpoint={}\nApnsCaPath={ca}\nApnsTopic=com.tt.test\nApnsKeyPath={p8}\n\
                 ApnsKeyId=KEYID12345\nApnsTeamId=TEAM123456\nApnsTimeout=5\n",
                apns.url()
            ),
        ),
    );
    // A msg_server of the cluster whose push_server is ours.
    let port = free_port();
    let msg_conf: String = cluster
        .msg_server_conf(port)
        .lines()
        .map(|l| {
            if l.starts_with("PushServerPort1=") {
                format!("PushServerPort1={push_port}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let msg_server = start_server("msg_server", "msgserver.conf", &msg_conf, &[port]);

    // Bob registers his iPhone's token, then goes offline.
    let device = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let mut phone = login(port, "bob", "bob-pw", ClientType::CLIENT_TYPE_IOS);
    let req = IMDeviceTokenReq {
        user_id: 0,
        device_token: device.into(),
        client_type: None,
        attach_data: None,
    };
    phone.send_msg(sid::LOGIN, cid::LOGIN_REQ_DEVICETOKEN, 2, &req);
    phone.recv_cmd::<IMDeviceTokenRsp>(cid::LOGIN_RES_DEVICETOKEN);
    let deadline = Instant::now() + WAIT;
    while !redis_get(cluster.redis.port(), 3, "device_2").contains(device) {
        assert!(Instant::now() < deadline, "device token never stored");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(phone);

    // Alice writes to him.
    let mut alice = login(port, "alice", "alice-pw", ClientType::CLIENT_TYPE_WINDOWS);
    let aes = base::aes::Aes::new(AES_KEY.as_bytes()).unwrap();
    let msg = IMMsgData {
        from_user_id: 1,
        to_session_id: 2,
        msg_id: 0,
        create_time: 0,
        msg_type: MsgType::MSG_TYPE_SINGLE_TEXT,
        msg_data: aes.encrypt("hello bob".as_bytes()).unwrap().into_bytes(),
        attach_data: None,
    };
    alice.send_msg(sid::MSG, cid::MSG_DATA, 3, &msg);
    let (_, ack) = alice.recv_cmd::<IMMsgDataAck>(cid::MSG_DATA_ACK);
    assert!(ack.msg_id > 0, "stored: {ack:?}");

    let reqs = apns.wait_requests(1);
    let r = &reqs[0];
    assert_eq!(
        r.path,
        format!("/3/device/{device}"),
        "{}",
        msg_server.log()
    );
    assert_eq!(
        r.header("apns-priority"),
        Some("10"),
        "offline: a normal push"
    );
    assert_eq!(
        r.json(),
        serde_json::json!({
            "aps": {"alert": {"body": "alice-nick:hello bob"}, "badge": 1, "sound": "bingbong.aiff"},
            "custom": r#"{"from_id":1,"msg_type":1}"#,
        })
    );
    assert!(r.header("authorization").unwrap().starts_with("bearer "));
}
