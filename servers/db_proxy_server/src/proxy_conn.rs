//! A msg_server's link to us: the C++ `ProxyConn.cpp` (`CProxyConn`,
//! `proxy_timer_callback`, `sig_handler`, `exit_callback`).
//!
//! The loop thread frames PDUs and hands each to a worker of the pool
//! (`CProxyTask`); the worker's reply comes back through the reactor's
//! [`netlib::Remote`], which wakes the loop at once (the C++ drains its
//! response list in a loop callback, up to 10 ms later).

use crate::state::ProxyState;
use base::pdu::ImPdu;
use netlib::{Ctx, Heartbeat, ImConn, Reactor};
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
        let Some(workers) = cx.state.workers.as_ref() else {
            log::warn!("shutting down: command {:#06x} dropped", pdu.command_id());
            return;
        };
        let services = cx.state.services.clone();
        let remote = cx.state.remote.clone();
        let link = cx.id;
        workers.add_task(move || match handler(&services, &pdu) {
            Ok(Some(reply)) => {
                remote.send(link, reply.into_bytes());
            }
            Ok(None) => {}
            Err(e) => log::warn!("command {:#06x}: {e}", pdu.command_id()),
        });
    }
}

/// `sig_handler(SIGTERM)`: tell every msg_server to stop sending, stop the
/// sync thread, finish queued work, exit after [`EXIT_DELAY_MS`].
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
    if let Some(mut sync) = state.sync_thread.take() {
        sync.stop();
    }
    net.register_timer(EXIT_DELAY_MS, |net, state: &mut ProxyState| {
        log::info!("exiting: finishing queued work");
        // Joins the workers after their queues drain.
        drop(state.workers.take());
        net.stop();
    });
}
