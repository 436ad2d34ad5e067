//! Asking login_server which msg_server to use, as real clients do: over
//! HTTP (`GET /msg_server`) or over its TCP client port
//! (`CID_LOGIN_REQ_MSGSERVER`).

use crate::error::ClientError;
use crate::session::{read_pdu, write_pdu};
use base::pdu::ImPdu;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use tt_proto::cid;
use tt_proto::IM::BaseDefine::ResultType;
use tt_proto::IM::Login::{IMMsgServReq, IMMsgServRsp};

/// How long discovery waits for login_server.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A msg_server as login_server names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgServer {
    /// First choice address (`priorIP` / `prior_ip`).
    pub prior_ip: String,
    /// Second choice (`backupIP` / `backip_ip`).
    pub backup_ip: String,
    /// Client port.
    pub port: u16,
}

/// `GET /msg_server` on login_server's HTTP port (`host:port`).
pub fn via_http(addr: &str) -> Result<MsgServer, ClientError> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(DISCOVERY_TIMEOUT))?;
    write!(
        s,
        "GET /msg_server HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    // login_server answers then closes; read to the end or to a timeout.
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| ClientError::Protocol("HTTP answer without a body".into()))?;
    let json: serde_json::Value =
        serde_json::from_str(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let code = json["code"].as_u64().unwrap_or(u64::MAX) as u32;
    if code != 0 {
        return Err(ClientError::Refused(code));
    }
    let port = json["port"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| ClientError::Protocol("no port in the answer".into()))?;
    Ok(MsgServer {
        prior_ip: json["priorIP"].as_str().unwrap_or_default().to_string(),
        backup_ip: json["backupIP"].as_str().unwrap_or_default().to_string(),
        port,
    })
}

/// `CID_LOGIN_REQ_MSGSERVER` on login_server's TCP client port (`host:port`).
pub fn via_tcp(addr: &str) -> Result<MsgServer, ClientError> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(DISCOVERY_TIMEOUT))?;
    let req =
        ImPdu::for_msg(1, &IMMsgServReq {}).map_err(|e| ClientError::Protocol(e.to_string()))?;
    write_pdu(&mut s, &req)?;
    loop {
        let pdu = read_pdu(&mut s)?;
        if pdu.command_id() != cid::LOGIN_RES_MSGSERVER {
            continue;
        }
        let rsp: IMMsgServRsp = pdu
            .msg()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if rsp.result_code != ResultType::REFUSE_REASON_NONE {
            return Err(ClientError::Refused(rsp.result_code as u32));
        }
        let port = rsp
            .port
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| ClientError::Protocol("no port in the answer".into()))?;
        return Ok(MsgServer {
            prior_ip: rsp.prior_ip.unwrap_or_default(),
            backup_ip: rsp.backip_ip.unwrap_or_default(),
            port,
        });
    }
}
