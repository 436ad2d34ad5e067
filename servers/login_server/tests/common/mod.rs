//! What the login_server integration tests share: starting the real binary
//! on free loopback ports, fake msg_servers, fake clients.

#![allow(dead_code)]

use tt_proto::IM::BaseDefine::{LoginCmdID, OtherCmdID, ResultType, ServiceID};
use tt_proto::IM::Login::{IMMsgServReq, IMMsgServRsp};
use tt_proto::IM::Server::{IMMsgServInfo, IMUserCntUpdate};
use tt_rs::{free_port, PduClient, ServerProcess};

pub const BIN: &str = env!("CARGO_BIN_EXE_login_server");
pub const MSFS: &str = "http://127.0.0.1:8700/";
pub const DISCOVERY: &str = "http://127.0.0.1/api/discovery";

/// A running login_server and its three ports.
pub struct Login {
    pub server: ServerProcess,
    pub client_port: u16,
    pub http_port: u16,
    pub msg_port: u16,
}

/// The conf of the reference `loginserver.conf`, on the given ports.
pub fn conf_text(http_ips: &str, client_port: u16, http_port: u16, msg_port: u16) -> String {
    format!(
        "ClientListenIP=127.0.0.1\nClientPort={client_port}\n\
         HttpListenIP={http_ips}\nHttpPort={http_port}\n\
         MsgServerListenIP=127.0.0.1\nMsgServerPort={msg_port}\n\
         msfs={MSFS}\ndiscovery={DISCOVERY}\n"
    )
}

impl Login {
    /// Starts login_server with HTTP on `http_ips` and waits for its ports.
    pub fn start_with_http_ips(http_ips: &str) -> Login {
        let (client_port, http_port, msg_port) = (free_port(), free_port(), free_port());
        let mut server = ServerProcess::start(
            BIN,
            "loginserver.conf",
            &conf_text(http_ips, client_port, http_port, msg_port),
        );
        for port in [client_port, http_port, msg_port] {
            server.wait_listening(port);
        }
        Login {
            server,
            client_port,
            http_port,
            msg_port,
        }
    }

    /// Starts login_server on loopback.
    pub fn start() -> Login {
        Self::start_with_http_ips("127.0.0.1")
    }

    /// Connects a fake msg_server that registers as `host` with addresses
    /// `<host>.telecom` / `<host>.unicom`, and waits until it is registered.
    pub fn register(&self, host: &str, port: u32, cur: u32, max: u32) -> PduClient {
        let mut c = PduClient::connect(self.msg_port);
        c.send_msg(
            ServiceID::SID_OTHER as u16,
            OtherCmdID::CID_OTHER_MSG_SERV_INFO as u16,
            0,
            &IMMsgServInfo {
                ip1: format!("{host}.telecom"),
                ip2: format!("{host}.unicom"),
                port,
                max_conn_cnt: max,
                cur_conn_cnt: cur,
                host_name: host.to_string(),
            },
        );
        self.server.wait_log(&format!("hostname={host},"));
        c
    }

    /// Sends `n` user-count updates (1 = inc, 2 = dec) from the fake
    /// msg_server `c` (registered as `host`:`port`) and waits until the
    /// server logged the resulting count `expect`.
    pub fn update_cnt(
        &self,
        c: &mut PduClient,
        host: &str,
        port: u32,
        action: u32,
        n: u32,
        expect: u32,
    ) {
        for user_id in 0..n {
            c.send_msg(
                ServiceID::SID_OTHER as u16,
                OtherCmdID::CID_OTHER_USER_CNT_UPDATE as u16,
                0,
                &IMUserCntUpdate {
                    user_action: action,
                    user_id,
                },
            );
        }
        self.server
            .wait_log(&format!("{host}:{port}, cur_cnt={expect},"));
    }

    /// A client asks the client port for a msg_server; checks the answer
    /// echoes the seq and that the server closes afterwards.
    pub fn ask(&self) -> IMMsgServRsp {
        let mut c = PduClient::connect(self.client_port);
        c.send_msg(
            ServiceID::SID_LOGIN as u16,
            LoginCmdID::CID_LOGIN_REQ_MSGSERVER as u16,
            77,
            &IMMsgServReq {},
        );
        let (pdu, rsp) = c.recv_cmd::<IMMsgServRsp>(LoginCmdID::CID_LOGIN_RES_MSGSERVER as u16);
        assert_eq!(pdu.seq_num(), 77);
        assert_eq!(pdu.service_id(), ServiceID::SID_LOGIN as u16);
        assert!(
            c.is_closed_by_peer(),
            "client connection closed after the answer"
        );
        rsp
    }

    /// Like [`ask`](Self::ask), expecting a msg_server: returns its port.
    pub fn ask_port(&self) -> u32 {
        let rsp = self.ask();
        assert_eq!(rsp.result_code, ResultType::REFUSE_REASON_NONE, "{rsp:?}");
        rsp.port.expect("port")
    }
}

#[allow(unused_imports)]
pub use tt_rs::http::{closed_within, http_exchange, parse_answer, HttpAnswer};
