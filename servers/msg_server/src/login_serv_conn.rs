//! Links to login_server: the C++ `LoginServConn.cpp` (`CLoginServConn`);
//! `send_to_all_login_server` is [`crate::login_servers::LoginServers`].
//!
//! On connect we tell each login_server where clients reach us and how
//! many are logged in (`CID_OTHER_MSG_SERV_INFO`); then every login and
//! logout is counted (`CID_OTHER_USER_CNT_UPDATE`), so login_server can send
//! new clients to the least-loaded msg_server. login_server sends nothing
//! but heartbeats.

use crate::state::MsgState;
use base::ImPdu;
use netlib::PeerLink;
use netlib::{Ctx, Heartbeat, ImConn};
use tt_proto::IM::Server::IMMsgServInfo;

/// `CLoginServConn`: the handler of the link to login_server `idx`.
#[derive(Debug)]
pub struct LoginServConn {
    link: PeerLink,
}

impl LoginServConn {
    /// The handler for peer `idx`.
    pub fn new(idx: usize) -> LoginServConn {
        LoginServConn {
            link: PeerLink::new("login_server", idx),
        }
    }
}

/// The `IMMsgServInfo` of `OnConfirm`: our addresses, limit and load.
pub fn msg_serv_info(state: &MsgState) -> IMMsgServInfo {
    IMMsgServInfo {
        ip1: state.me.ip1.clone(),
        ip2: state.me.ip2.clone(),
        port: u32::from(state.me.port),
        max_conn_cnt: state.me.max_conn_cnt,
        cur_conn_cnt: u32::try_from(state.users.conn_count()).unwrap_or(u32::MAX),
        host_name: state.me.host_name.clone(),
    }
}

impl ImConn<MsgState> for LoginServConn {
    /// `OnConfirm`: registers this msg_server.
    fn on_confirm(&mut self, cx: &mut Ctx<'_, MsgState>) {
        // Waiting count updates go to the links up before this one: this
        // one's count below already holds them.
        cx.state.login.flush_cnt(cx.net);
        let addr = cx.peer_addr();
        self.link.confirm(&mut cx.state.login.peers, cx.id, addr);
        let info = msg_serv_info(cx.state);
        cx.send_msg(0, &info);
    }

    /// `OnClose`: reconnected after the back-off.
    fn on_close(&mut self, cx: &mut Ctx<'_, MsgState>) {
        let addr = cx.peer_addr();
        self.link.closed(&mut cx.state.login.peers, cx.id, addr);
    }

    /// `OnTimer`: heartbeat after 5 s of quiet, close after 30 s of silence.
    fn on_timer(&mut self, cx: &mut Ctx<'_, MsgState>, now: u64) {
        cx.keep_alive(Heartbeat::SERVER, now);
    }

    /// `HandlePdu`: nothing to do (heartbeats refresh the link by arriving).
    fn on_pdu(&mut self, _cx: &mut Ctx<'_, MsgState>, _pdu: ImPdu) {}
}
