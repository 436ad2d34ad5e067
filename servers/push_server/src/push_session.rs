//! A msg_server link: the C++ `CPushSession` / `CPushSessionHandler`
//! (push_session.cpp, push_session_handler.cpp), its framing (`CPduMsg`,
//! pdu_msg.cpp) and its timeout check (`CSessionManager::CheckPushSessionTimeOut`).
//!
//! Differences from the C++:
//! - A lone heartbeat is echoed at once (the C++ waits for more than 16
//!   buffered bytes, so a heartbeat alone sits until the next PDU).
//! - A header announcing a length of 0 or below 16 closes the link (netlib's
//!   framing; the C++ spins forever on a length-0 header).
//! - An undecodable push request closes the link with a log line (the C++
//!   closes it too, but a header it cannot parse is only logged).
//! - Each request is answered once its providers answered or timed out,
//!   from the provider thread; heartbeats and other requests go on meanwhile.

use crate::provider::{unix_now, PushJob};
use crate::push_plan::{self, RESULT_UNREACHABLE};
use crate::state::PushState;
use base::ImPdu;
use netlib::imconn::SERVER_TIMEOUT;
use netlib::{Ctx, Heartbeat, ImConn};
use tt_proto::cid;
use tt_proto::IM::Server::IMPushToUserReq;

/// push_server never heartbeats first (it echoes msg_server's); a link
/// silent for 30 s is closed (`TIMEOUT_PUSHSESSION`).
pub const PUSH_SESSION: Heartbeat = Heartbeat {
    send_after_ms: None,
    timeout_ms: SERVER_TIMEOUT,
};

/// The handler of one msg_server link.
#[derive(Debug, Default)]
pub struct PushSession;

impl ImConn<PushState> for PushSession {
    /// `CPushServerHandler::OnAccept`.
    fn on_connect(&mut self, cx: &mut Ctx<'_, PushState>) {
        log::info!("msg_server connected from {:?} ({})", cx.peer_addr(), cx.id);
    }

    /// `CPushSessionHandler::OnClose`.
    fn on_close(&mut self, cx: &mut Ctx<'_, PushState>) {
        log::warn!("msg_server link {} ({:?}) closed", cx.id, cx.peer_addr());
    }

    /// `CheckPushSessionTimeOut`.
    fn on_timer(&mut self, cx: &mut Ctx<'_, PushState>, now: u64) {
        cx.keep_alive(PUSH_SESSION, now);
    }

    /// `OnRecvData`: heartbeats are echoed, push requests planned and
    /// handed on, anything else closes the link.
    fn on_pdu(&mut self, cx: &mut Ctx<'_, PushState>, pdu: ImPdu) {
        match pdu.command_id() {
            cid::OTHER_HEARTBEAT => {
                cx.send_pdu(&pdu);
            }
            cid::OTHER_PUSH_TO_USER_REQ => match pdu.msg::<IMPushToUserReq>() {
                Ok(req) => handle_push(cx, &req),
                Err(e) => {
                    log::warn!(
                        "msg_server link {}: undecodable push request ({e}), closing",
                        cx.id
                    );
                    cx.close();
                }
            },
            other => {
                log::warn!(
                    "msg_server link {}: unknown command {other:#06x}, closing",
                    cx.id
                );
                cx.close();
            }
        }
    }
}

/// `_HandlePushMsg`: plans each token; answers at once when no provider is
/// to be asked (or the queue is full), else hands the job to the provider
/// thread, which answers.
fn handle_push(cx: &mut Ctx<'_, PushState>, req: &IMPushToUserReq) {
    let planned = push_plan::plan(req, cx.state.providers, unix_now());
    log::info!(
        "push request on link {}: {} token(s), {} for a provider",
        cx.id,
        planned.len(),
        planned.iter().filter(|p| p.delivery.pending()).count()
    );
    if !planned.iter().any(|p| p.delivery.pending()) {
        let rsp = push_plan::answer_now(&planned, RESULT_UNREACHABLE, "");
        cx.send_msg(0, &rsp);
        return;
    }
    let job = PushJob {
        conn: cx.id,
        planned,
    };
    let refused = match &cx.state.queue {
        Some(queue) => match queue.submit(job) {
            Ok(()) => return,
            Err(job) => (job, "the push queue is full"),
        },
        None => (job, "no provider thread"),
    };
    let (job, why) = refused;
    let rsp = push_plan::answer_now(&job.planned, RESULT_UNREACHABLE, why);
    cx.send_msg(0, &rsp);
}
