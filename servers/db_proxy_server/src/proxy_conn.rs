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
//! 4 s whatever is queued); and that drain starts as soon as no request
//! has come for [`QUIET_MS`] (the msg_servers have stopped sending), not
//! always 4 s after the signal, so a restart is not held up by 4 s of
//! waiting in which the msg_servers can only hold their requests. A drain
//! in which no request has finished for [`DRAIN_LIMIT_MS`] (MariaDB or
//! Redis not answering a worker) is given up: the process exits 1 with
//! those requests unanswered, never acknowledged (see
//! `ProxyState::abandon_drain`).

use crate::state::{ProxyState, Request};
use crate::work_queue::Admit;
use base::pdu::ImPdu;
use netlib::{Ctx, Heartbeat, ImConn, Reactor};
use std::sync::atomic::Ordering;
use tt_proto::cid;
use tt_proto::IM::Server::IMStopReceivePacket;

/// How long after SIGTERM the process exits at the latest
/// (`exit_callback` after 4 s).
pub const EXIT_DELAY_MS: u64 = 4_000;
/// After SIGTERM, the drain starts once no request has come for this long
/// (ms), and at least this long after the signal: every msg_server has
/// had `STOP_RECV_PACKET` and what it sent before is in.
pub const QUIET_MS: u64 = 250;
/// How often, after SIGTERM, the quiet is checked (ms).
const QUIET_CHECK_MS: u64 = 50;
/// Longest a drain may go without a request finishing (ms): beyond the
/// 2.5 s a request waits for a lost store and any query db_proxy makes, so
/// only a store that hangs (a MariaDB frozen, a link to it black-holed)
/// reaches it, and a stop is then not held up for ever. A slow drain that
/// goes on finishing requests is waited for.
pub const DRAIN_LIMIT_MS: u64 = 10_000;

/// Is a drain in which no request finished for `since_progress` ms stuck?
pub fn drain_stuck(since_progress: u64) -> bool {
    since_progress >= DRAIN_LIMIT_MS
}

/// After SIGTERM: is it time to finish the queued work and exit, `since_signal`
/// ms after the signal and `since_request` ms after the last request?
pub fn drain_due(since_signal: u64, since_request: u64) -> bool {
    since_signal >= EXIT_DELAY_MS || (since_signal >= QUIET_MS && since_request >= QUIET_MS)
}

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
        cx.state.last_request_at = cx.net.now_ms();
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
/// sync thread to stop, and once they are quiet ([`drain_due`]: at most
/// [`EXIT_DELAY_MS`]) finish the queued work and exit
/// ([`ProxyState::finish_when_drained`]).
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
    let signal_at = net.now_ms();
    // Once draining: (when a request last finished, how many were left).
    let mut progress: Option<(u64, usize)> = None;
    net.register_timer(QUIET_CHECK_MS, move |net, state: &mut ProxyState| {
        let now = net.now_ms();
        if let Some((at, left)) = progress {
            // The timer repeats; the drain is under way.
            let still = state.work.in_flight() + state.work.held();
            if still < left {
                progress = Some((now, still));
            } else if drain_stuck(now.saturating_sub(at)) {
                state.abandon_drain(net);
            }
            return;
        }
        if state.draining {
            return; // a later SIGTERM's timer: the first one drains
        }
        let since_request = now.saturating_sub(state.last_request_at);
        if !drain_due(now.saturating_sub(signal_at), since_request) {
            return;
        }
        log::info!(
            "exiting: finishing {} queued and {} held requests",
            state.work.in_flight(),
            state.work.held()
        );
        state.draining = true;
        progress = Some((now, state.work.in_flight() + state.work.held()));
        state.finish_when_drained();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_starts_once_the_msg_servers_are_quiet_or_at_the_cxx_delay() {
        assert!(!drain_due(0, 10_000), "not at the signal itself");
        assert!(!drain_due(QUIET_MS, QUIET_MS - 1), "a request just came");
        assert!(drain_due(QUIET_MS, QUIET_MS));
        assert!(!drain_due(EXIT_DELAY_MS - 1, 0), "still sending");
        assert!(drain_due(EXIT_DELAY_MS, 0), "at most the C++ delay");
    }

    #[test]
    fn a_drain_is_given_up_only_after_the_limit_without_progress() {
        assert!(!drain_stuck(0));
        assert!(!drain_stuck(DRAIN_LIMIT_MS - 1));
        assert!(drain_stuck(DRAIN_LIMIT_MS));
    }
}
