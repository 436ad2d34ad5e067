//! What the login_server integration tests share: starting the real binary
//! on free loopback ports, fake msg_servers, fake clients.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use tt_proto::IM::BaseDefine::{LoginCmdID, OtherCmdID, ResultType, ServiceID};
use tt_proto::IM::Login::{IMMsgServReq, IMMsgServRsp};
use tt_proto::IM::Server::{IMMsgServInfo, IMUserCntUpdate};
use tt_rs::{free_port, PduClient, ServerProcess, WAIT};

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

/// Sends `request` to the HTTP port of `addr` and reads until the server
/// closes; returns everything it sent.
pub fn http_exchange(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    // The server may close (and reset) before taking everything we send
    // when it refuses the request: then whatever arrived is the answer.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("reading the HTTP answer: {e}"),
        }
    }
}

/// An HTTP answer: status, headers (lower-cased names) and body.
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Parses a whole HTTP answer, checking that Content-Length covers the body exactly.
pub fn parse_answer(bytes: &[u8]) -> HttpAnswer {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut rsp = httparse::Response::new(&mut headers);
    let head = match rsp.parse(bytes).unwrap() {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => panic!("partial answer: {:?}", String::from_utf8_lossy(bytes)),
    };
    let headers: Vec<(String, String)> = rsp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let answer = HttpAnswer {
        status: rsp.code.unwrap(),
        headers,
        body: bytes[head..].to_vec(),
    };
    let len: usize = answer.header("Content-Length").unwrap().parse().unwrap();
    assert_eq!(
        len,
        answer.body.len(),
        "Content-Length is the body's byte length"
    );
    answer
}

/// Reads from `s` until EOF or `timeout`; true when the peer closed.
pub fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}
