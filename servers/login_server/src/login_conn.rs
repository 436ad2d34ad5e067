//! The PDU ports: the C++ `LoginConn.cpp` (`CLoginConn`).
//!
//! One handler type serves both PDU ports, told apart by [`LoginConnType`]
//! as the C++ `m_conn_type`:
//! - the client port answers `CID_LOGIN_REQ_MSGSERVER` with the
//!   least-loaded msg_server and closes (clients silent for 120 s are
//!   dropped);
//! - the msg_server port takes `CID_OTHER_MSG_SERV_INFO` and
//!   `CID_OTHER_USER_CNT_UPDATE`, heartbeats both ways, and forgets a
//!   msg_server whose connection closes or stays silent for 30 s.
//!
//! Differences from the C++, on purpose: the C++ never reads the client
//! port at all (a dangling `else` in `OnConnect2` leaves client connections
//! out of the map its callback looks them up in), so we answer as the code
//! means to; each port only acts on its own commands (the C++ would let a
//! client register as a msg_server, and drop a msg_server that asked for a
//! msg_server); a body that does not decode closes the connection.

use crate::msg_serv_info::{Choice, MsgServInfo, UserCntAction};
use crate::state::LoginState;
use base::tick::monotonic_ms;
use base::ImPdu;
use netlib::{Ctx, Heartbeat, ImConn};
use tt_proto::cid;
use tt_proto::IM::BaseDefine::ResultType;
use tt_proto::IM::Login::{IMMsgServReq, IMMsgServRsp};
use tt_proto::IM::Server::{IMMsgServInfo, IMUserCntUpdate};

/// `LOGIN_CONN_TYPE_CLIENT` / `LOGIN_CONN_TYPE_MSG_SERV`: which port a
/// connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginConnType {
    /// A client asking for a msg_server.
    Client,
    /// A msg_server reporting its load.
    MsgServ,
}

/// `CLoginConn`: one connection on the client or the msg_server port.
#[derive(Debug)]
pub struct LoginConn {
    conn_type: LoginConnType,
}

impl LoginConn {
    /// A handler for a connection accepted on the `conn_type` port.
    pub fn new(conn_type: LoginConnType) -> LoginConn {
        LoginConn { conn_type }
    }

    /// `_HandleMsgServInfo`: registers (or re-registers) the msg_server.
    fn handle_msg_serv_info(&mut self, cx: &mut Ctx<'_, LoginState>, pdu: &ImPdu) {
        let msg: IMMsgServInfo = match pdu.msg() {
            Ok(m) => m,
            Err(e) => return close_bad(cx, &e),
        };
        let Ok(port) = u16::try_from(msg.port) else {
            return close_bad(cx, &format!("msg_server port {} out of range", msg.port));
        };
        let info = MsgServInfo {
            ip_addr1: msg.ip1,
            ip_addr2: msg.ip2,
            port,
            max_conn_cnt: msg.max_conn_cnt,
            cur_conn_cnt: msg.cur_conn_cnt,
            hostname: msg.host_name,
        };
        log::info!(
            "msg_server registered from {:?}: hostname={}, ip_addr1={}, ip_addr2={}, port={}, \
             max_conn_cnt={}, cur_conn_cnt={}",
            cx.peer_addr(),
            info.hostname,
            info.ip_addr1,
            info.ip_addr2,
            info.port,
            info.max_conn_cnt,
            info.cur_conn_cnt
        );
        if let Some(old) = cx.state.msg_servs.register(cx.id, info) {
            log::info!("msg_server {}:{} re-registered", old.hostname, old.port);
        }
    }

    /// `_HandleUserCntUpdate`: one user more or less on this msg_server.
    fn handle_user_cnt_update(&mut self, cx: &mut Ctx<'_, LoginState>, pdu: &ImPdu) {
        let msg: IMUserCntUpdate = match pdu.msg() {
            Ok(m) => m,
            Err(e) => return close_bad(cx, &e),
        };
        let Some(action) = UserCntAction::from_wire(msg.user_action) else {
            log::warn!(
                "msg_server {:?}: unknown user_action {} ignored",
                cx.peer_addr(),
                msg.user_action
            );
            return;
        };
        let table = &mut cx.state.msg_servs;
        match table.update_user_cnt(cx.id, action, monotonic_ms()) {
            Some(info) => {
                let (host, port, cur) = (info.hostname.clone(), info.port, info.cur_conn_cnt);
                log::debug!(
                    "{host}:{port}, cur_cnt={cur}, total_cnt={}",
                    table.total_users()
                );
            }
            None => log::warn!(
                "user count update from unregistered msg_server {:?} ignored",
                cx.peer_addr()
            ),
        }
    }

    /// `_HandleMsgServRequest`: answers with the least-loaded msg_server
    /// (or why there is none) and closes once the answer is written.
    fn handle_msg_serv_request(&mut self, cx: &mut Ctx<'_, LoginState>, pdu: &ImPdu) {
        if let Err(e) = pdu.msg::<IMMsgServReq>() {
            return close_bad(cx, &e);
        }
        let rsp = match cx.state.msg_servs.choose(monotonic_ms()) {
            Choice::NoMsgServer => {
                log::info!(
                    "msg_server request from {:?}: no msg_server",
                    cx.peer_addr()
                );
                refusal(ResultType::REFUSE_REASON_NO_MSG_SERVER)
            }
            Choice::AllFull => {
                log::info!(
                    "msg_server request from {:?}: all msg_servers full",
                    cx.peer_addr()
                );
                refusal(ResultType::REFUSE_REASON_MSG_SERVER_FULL)
            }
            Choice::Chosen(info) => {
                log::debug!(
                    "msg_server request from {:?}: {}:{}",
                    cx.peer_addr(),
                    info.hostname,
                    info.port
                );
                IMMsgServRsp {
                    result_code: ResultType::REFUSE_REASON_NONE,
                    prior_ip: Some(info.ip_addr1),
                    backip_ip: Some(info.ip_addr2),
                    port: Some(u32::from(info.port)),
                }
            }
        };
        cx.send_msg(pdu.seq_num(), &rsp);
        cx.close_after_flush();
    }
}

/// An `IMMsgServRsp` that names no msg_server.
fn refusal(code: ResultType) -> IMMsgServRsp {
    IMMsgServRsp {
        result_code: code,
        ..IMMsgServRsp::default()
    }
}

/// Logs why the peer's PDU is unusable and closes its connection.
fn close_bad(cx: &mut Ctx<'_, LoginState>, why: &dyn std::fmt::Display) {
    log::warn!(
        "connection {} ({:?}) sent a bad PDU, closing it: {why}",
        cx.id,
        cx.peer_addr()
    );
    cx.close();
}

impl ImConn<LoginState> for LoginConn {
    /// One handler type serves two ports: the metrics tell them apart.
    fn kind(&self) -> &'static str {
        match self.conn_type {
            LoginConnType::MsgServ => "LoginConn(msg_server)",
            LoginConnType::Client => "LoginConn(client)",
        }
    }

    /// Clients ask for a msg_server in a few bytes; msg_servers keep the
    /// server limit.
    fn max_pdu_len(&self) -> u32 {
        match self.conn_type {
            LoginConnType::MsgServ => base::pdu::MAX_PDU_LEN,
            LoginConnType::Client => base::pdu::CLIENT_MAX_PDU_LEN,
        }
    }

    fn on_connect(&mut self, cx: &mut Ctx<'_, LoginState>) {
        match self.conn_type {
            LoginConnType::MsgServ => log::info!("msg_server connected from {:?}", cx.peer_addr()),
            LoginConnType::Client => log::debug!("client connected from {:?}", cx.peer_addr()),
        }
    }

    /// `HandlePdu`.
    fn on_pdu(&mut self, cx: &mut Ctx<'_, LoginState>, pdu: ImPdu) {
        let cmd = pdu.command_id();
        match (self.conn_type, cmd) {
            (_, cid::OTHER_HEARTBEAT) => {}
            (LoginConnType::MsgServ, cid::OTHER_MSG_SERV_INFO) => {
                self.handle_msg_serv_info(cx, &pdu)
            }
            (LoginConnType::MsgServ, cid::OTHER_USER_CNT_UPDATE) => {
                self.handle_user_cnt_update(cx, &pdu)
            }
            (LoginConnType::Client, cid::LOGIN_REQ_MSGSERVER) => {
                self.handle_msg_serv_request(cx, &pdu)
            }
            _ => log::warn!(
                "wrong msg on the {:?} port from {:?}, cmd id={cmd:#x}",
                self.conn_type,
                cx.peer_addr()
            ),
        }
    }

    /// `OnTimer`: clients are dropped after 120 s of silence; msg_servers
    /// get heartbeats and are dropped after 30 s of silence.
    fn on_timer(&mut self, cx: &mut Ctx<'_, LoginState>, now: u64) {
        let rule = match self.conn_type {
            LoginConnType::Client => Heartbeat::CLIENT,
            LoginConnType::MsgServ => Heartbeat::SERVER,
        };
        cx.keep_alive(rule, now);
    }

    /// `Close`: a msg_server leaves the table with its connection.
    fn on_close(&mut self, cx: &mut Ctx<'_, LoginState>) {
        if self.conn_type != LoginConnType::MsgServ {
            return;
        }
        match cx.state.msg_servs.remove(cx.id) {
            Some(info) => log::info!(
                "msg_server lost: {}:{} ({} users; {} msg_servers left)",
                info.hostname,
                info.port,
                info.cur_conn_cnt,
                cx.state.msg_servs.len()
            ),
            None => log::info!("unregistered msg_server connection {} closed", cx.id),
        }
    }
}
