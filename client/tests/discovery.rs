//! Asking a real login_server for a msg_server, over HTTP and TCP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use common::start_login;
use tt_client::{discovery, refusal_text, ClientError};
use tt_proto::IM::BaseDefine::{OtherCmdID, ServiceID};
use tt_proto::IM::Server::IMMsgServInfo;
use tt_rs::PduClient;

mod common;

#[test]
fn finds_the_registered_msg_server_both_ways() {
    let login = start_login();
    let mut ms = PduClient::connect(login.msg);
    ms.send_msg(
        ServiceID::SID_OTHER as u16,
        OtherCmdID::CID_OTHER_MSG_SERV_INFO as u16,
        0,
        &IMMsgServInfo {
            ip1: "127.0.0.1".into(),
            ip2: "127.0.0.2".into(),
            port: 8123,
            max_conn_cnt: 100,
            cur_conn_cnt: 0,
            host_name: "ms1".into(),
        },
    );
    login.server.wait_log("hostname=ms1,");
    let http = discovery::via_http(&format!("127.0.0.1:{}", login.http)).unwrap();
    assert_eq!(http.port, 8123);
    assert_eq!(http.prior_ip, "127.0.0.1");
    assert_eq!(http.backup_ip, "127.0.0.2");
    let tcp = discovery::via_tcp(&format!("127.0.0.1:{}", login.client)).unwrap();
    assert_eq!(tcp.port, 8123);
    assert!(["127.0.0.1", "127.0.0.2"].contains(&tcp.prior_ip.as_str()));
}

#[test]
fn no_msg_server_is_a_clear_refusal() {
    let login = start_login();
    for result in [
        discovery::via_http(&format!("127.0.0.1:{}", login.http)),
        discovery::via_tcp(&format!("127.0.0.1:{}", login.client)),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, ClientError::Refused(1)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "refused: no msg_server is available (code 1)"
        );
    }
    assert!(refusal_text(6).starts_with("wrong user name or password"));
}
