//! A msg_server's link to us: the C++ `ProxyConn.cpp` (`CProxyConn`,
//! `proxy_timer_callback`, `sig_handler`, `exit_callback`).
//!
//! The loop thread frames PDUs and hands each to a worker of the pool
//! (`CProxyTask`) through [`ProxyState::work`]; the reply comes back
//! through [`ProxyState::request_done`].
//!
//! Differences from the C++: a link with too many requests with the
//! workers has its further requests held, and is closed past a hard cap
//! (see `work_queue`; the C++ queues them all); after SIGTERM's 4 s the
//! queued and held requests are finished, with the loop still running
//! (heartbeats, timeouts), before the process exits (the C++ `exit`s at
//! 4 s whatever is queued).

use crate::state::{ProxyState, Request};
use crate::work_queue::Admit;
use base::pdu::ImPdu;
use netlib::{Ctx, Heartbeat, ImConn, Reactor};
use std::sync::atomic::Ordering;
use tt_proto::cid;
use tt_proto::IM::Server::IMStopReceivePacket;

/// How long after SIGTERM the process exits (`exit_callback` after 4 s).
pub const EXIT_DELAY_MS: u64 = 4_000;

/// One msg_server link.
pub struct ProxyConn;

impl ImConn<ProxyState> for ProxyConn {
    fn on_connect(&mut self, cx: &mut Ctx<'_, ProxyState>) {
        log::info!("msg_server connected from {:?}", cx.peer_addr());
        cx.state.links.insert(cx.id);
    }

    fn on_close(&mut self, cx: &mut Ctx<'_, ProxyState>) {
        log::info!("msg_server link {} closed", cx.id);
        cx.state.links.remove(&cx.id);
        cx.state.paused.remove(&cx.id);
        let dropped = cx.state.work.close(cx.id);
        if dropped > 0 {
            log::warn!("link {}: {dropped} held requests dropped with it", cx.id);
        }
        cx.state.finish_when_drained();
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_, ProxyState>, now: u64) {
        cx.keep_alive(Heartbeat::SERVER, now);
    }

    /// `HandlePduBuf`: heartbeats end here; other commands go to a worker.
    fn on_pdu(&mut self, cx: &mut Ctx<'_, ProxyState>, pdu: ImPdu) {
        if pdu.command_id() == cid::OTHER_HEARTBEAT {
            return;
        }
        let Some(handler) = cx.state.handlers.get(pdu.command_id()) else {
            log::warn!("no handler for command {:#06x}, dropped", pdu.command_id());
            return;
        };
        if cx.state.draining {
            log::warn!("shutting down: command {:#06x} dropped", pdu.command_id());
            return;
        }
        let bytes = pdu.len();
        match cx.state.work.offer(cx.id, Request { handler, pdu }, bytes) {
            Admit::Run(req) => cx.state.run_request(cx.id, req),
            Admit::Held { engaged: true } => {
                // Nothing more is read from it until its held requests are
                // all with the workers: TCP holds the msg_server back.
                cx.net.pause_reading(cx.id);
                cx.state.paused.insert(cx.id);
                let n = cx.state.metrics.engaged();
                log::warn!(
                    "link {}: over its bound of requests with the workers ({} in all); \
                     holding its next ones until they drain (backpressure engaged {n} times)",
                    cx.id,
                    cx.state.work.in_flight()
                );
            }
            Admit::Held { engaged: false } => {
                cx.net.pause_reading(cx.id);
                cx.state.paused.insert(cx.id);
            }
            Admit::Overflow => {
                cx.state
                    .metrics
                    .links_closed_over_hold
                    .fetch_add(1, Ordering::Relaxed);
                log::error!(
                    "link {}: too many requests held while the workers are busy; closing it",
                    cx.id
                );
                cx.close();
            }
        }
    }
}

/// `sig_handler(SIGTERM)`: tell every msg_server to stop sending, ask the
/// sync thread to stop, and after [`EXIT_DELAY_MS`] finish the queued
/// work and exit ([`ProxyState::finish_when_drained`]).
pub fn on_sigterm(net: &mut Reactor<ProxyState>, state: &mut ProxyState) {
    log::info!(
        "SIGTERM: telling {} msg_servers to stop sending",
        state.links.len()
    );
    match ImPdu::for_msg(0, &IMStopReceivePacket { result: 0 }) {
        Ok(pdu) => {
            for &link in &state.links {
                let _ = net.send_pdu(link, &pdu);
            }
        }
        Err(e) => log::error!("cannot build STOP_RECV_PACKET: {e}"),
    }
    if let Some(sync) = state.sync_thread.as_ref() {
        sync.request_stop();
    }
    net.register_timer(EXIT_DELAY_MS, |_, state: &mut ProxyState| {
        if state.draining {
            return; // the timer repeats; the drain is under way
        }
        log::info!(
            "exiting: finishing {} queued and {} held requests",
            state.work.in_flight(),
            state.work.held()
        );
        state.draining = true;
        state.finish_when_drained();
    });
}
