//! A kick ends a session, whichever msg_server sends it: ours closes the
//! kicked connection, the C++ one (`CImUser::KickOutSameClientType`) sends
//! the kick and leaves the connection open, still delivering to it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base::pdu::{read_frame, ImPdu};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;
use tt_client::{ClientError, Event, LoginOptions, Session};
use tt_proto::IM::BaseDefine::{
    KickReasonType, LoginCmdID, ResultType, ServiceID, UserInfo, UserStatType,
};
use tt_proto::IM::Login::{IMKickUser, IMLoginRes};
use tt_rs::cluster::Cluster;
use tt_rs::WAIT;

mod common;

/// Against a peer that kicks as the C++ msg_server does (and keeps the
/// connection open), the session reports the kick, refuses every later
/// call, and shuts its connection: the peer reads end-of-stream.
#[test]
fn a_kick_that_leaves_the_connection_open_still_ends_the_session() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let login = read_frame(&mut s).unwrap();
        assert_eq!(
            login.command_id(),
            LoginCmdID::CID_LOGIN_REQ_USERLOGIN as u16
        );
        let res = IMLoginRes {
            server_time: 1,
            result_code: ResultType::REFUSE_REASON_NONE,
            result_string: None,
            online_status: Some(UserStatType::USER_STATUS_ONLINE),
            user_info: Some(UserInfo {
                user_id: 7,
                user_nick_name: "seven".into(),
                user_real_name: "seven".into(),
                ..UserInfo::default()
            }),
        };
        let sid = ServiceID::SID_LOGIN as u16;
        let rsp = ImPdu::with_msg(
            sid,
            LoginCmdID::CID_LOGIN_RES_USERLOGIN as u16,
            login.seq_num(),
            &res,
        )
        .unwrap();
        s.write_all(rsp.as_bytes()).unwrap();
        let kick = IMKickUser {
            user_id: 7,
            kick_reason: KickReasonType::KICK_REASON_DUPLICATE_USER,
        };
        let kick = ImPdu::with_msg(sid, LoginCmdID::CID_LOGIN_KICK_USER as u16, 0, &kick).unwrap();
        s.write_all(kick.as_bytes()).unwrap();
        // The C++ keeps the connection open; the client must close it.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).map(|_| rest)
    });
    let mut session =
        Session::login(&addr.to_string(), "seven", "pw", &LoginOptions::default()).unwrap();
    let event = loop {
        if let Some(e) = session.next_event(Duration::from_millis(200)).unwrap() {
            break e;
        }
    };
    assert!(
        matches!(
            event,
            Event::Kicked(KickReasonType::KICK_REASON_DUPLICATE_USER)
        ),
        "{event:?}"
    );
    assert!(matches!(
        session.send_text(8, "after the kick"),
        Err(ClientError::Kicked(_))
    ));
    assert!(matches!(
        session.next_event(Duration::from_millis(10)),
        Err(ClientError::Kicked(_))
    ));
    // End-of-stream, not the read timeout: the session shut its socket
    // (it sent nothing after the login).
    let rest = peer.join().unwrap().expect("the client closed its side");
    assert!(rest.is_empty(), "{rest:?}");
}

/// `tt` at the prompt, kicked by a second login of the same user: it says
/// why in one line and exits 1.
#[test]
fn tt_ends_with_the_kick_reason_when_the_user_logs_in_elsewhere() {
    let cluster = Cluster::start(&[(1, "alice", "alice-pw"), (2, "bob", "bob-pw")], 1);
    let login = cluster.login_http();
    let (mut bob, _bob_out, line) = common::tt_prompt(&login, "bob", "bob-pw");
    assert!(line.starts_with("logged in as bob-nick (id 2)"), "{line:?}");
    // Same user, same client type: the first session is kicked.
    let _second = Session::login(
        &format!("127.0.0.1:{}", cluster.msg_servers[0].1),
        "bob",
        "bob-pw",
        &LoginOptions::default(),
    )
    .unwrap();
    let status = bob.wait().unwrap();
    let mut err = String::new();
    bob.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(err, "tt: kicked: KICK_REASON_DUPLICATE_USER\n");
    // stdin is still open: tt ended because of the kick, not end of input.
    drop(bob.stdin.take());
}
