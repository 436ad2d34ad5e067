//! A graceful stop on SIGTERM (not in the C++, which has no SIGTERM
//! handler and dies at once, with whatever was in flight).
//!
//! 1. Logins are refused (`REFUSE_REASON_MSG_SERVER_FULL`) and the links
//!    to login_server are closed and not reconnected, so login_server
//!    stops handing this msg_server out at once.
//! 2. What is in flight is finished: messages sent to db_proxy and not
//!    answered yet, requests held for db_proxy, PDUs held for
//!    route_server. Clients may go on sending meanwhile (their messages
//!    are acked as usual).
//! 3. Then, or after [`MAX_DRAIN_MS`] whatever is left, reading from
//!    clients stops: what they send from then on stays unread (so it is
//!    never stored, and a client that sees no ack sends it again on its
//!    next msg_server), and what was already sent to db_proxy is awaited,
//!    at most [`QUIESCE_MS`], so its acks reach the clients. Closing
//!    clients while their stores were in flight would leave messages
//!    stored but unanswered, which a client resends: a duplicate.
//! 4. Then every client is closed (after what was written to it), so real
//!    clients reconnect through login_server to another msg_server; their
//!    logouts reach route_server as usual.
//! 5. The process exits once the clients are gone, or [`CLOSE_WAIT_MS`]
//!    after they were told.
//!
//! [`next_step`] is the pure decision; [`tick`] runs it from the peer
//! timer.

use crate::state::MsgState;
use netlib::Reactor;

/// The shortest drain (ms): a request a client sent just before the
/// signal has time to reach db_proxy and come back.
pub const MIN_DRAIN_MS: u64 = 300;
/// The longest drain (ms): then clients are closed whatever is left.
pub const MAX_DRAIN_MS: u64 = 3_000;
/// How long, once clients are no longer read, their stores in flight have
/// to be answered before the clients are closed anyway (ms).
pub const QUIESCE_MS: u64 = 2_000;
/// How long closed clients have to go before the process exits (ms).
pub const CLOSE_WAIT_MS: u64 = 1_000;

/// Where a stop is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// When SIGTERM came (reactor ms).
    pub since: u64,
    /// When reading from clients stopped, if it did.
    pub reads_paused_at: Option<u64>,
    /// When the clients were told to go, if they were.
    pub clients_closed_at: Option<u64>,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Go on draining (or waiting for the clients to go).
    Wait,
    /// Stop reading from every client; wait for what is in flight.
    PauseClients,
    /// Close every client.
    CloseClients,
    /// Leave the event loop.
    Exit,
}

/// The stop's next step at `now`, given whether anything is still in
/// flight (`drained`) and whether any client connection is left.
pub fn next_step(s: &Shutdown, now: u64, drained: bool, clients_left: bool) -> Step {
    match (s.reads_paused_at, s.clients_closed_at) {
        (None, None) => {
            let waited = now.saturating_sub(s.since);
            if (drained && waited >= MIN_DRAIN_MS) || waited >= MAX_DRAIN_MS {
                Step::PauseClients
            } else {
                Step::Wait
            }
        }
        (Some(paused), None) => {
            if drained || now.saturating_sub(paused) >= QUIESCE_MS {
                Step::CloseClients
            } else {
                Step::Wait
            }
        }
        (_, Some(at)) if !clients_left || now.saturating_sub(at) >= CLOSE_WAIT_MS => Step::Exit,
        (_, Some(_)) => Step::Wait,
    }
}

/// SIGTERM: refuse logins from now on and leave login_server.
pub fn begin(net: &mut Reactor<MsgState>, state: &mut MsgState) {
    if state.shutdown.is_some() {
        return;
    }
    log::info!(
        "SIGTERM: refusing logins, leaving login_server, finishing what is in flight \
         ({} clients)",
        state.conns.len()
    );
    state.shutdown = Some(Shutdown {
        since: net.now_ms(),
        reads_paused_at: None,
        clients_closed_at: None,
    });
    for link in state.login.peers.open_links() {
        net.close(link);
    }
}

/// Runs the stop's next step; call it from a short timer.
pub fn tick(net: &mut Reactor<MsgState>, state: &mut MsgState) {
    let Some(s) = state.shutdown else {
        return;
    };
    let now = net.now_ms();
    let (db_held, _) = state.db.held_count();
    let stores = state.db.stores_in_flight();
    let drained = db_held == 0 && stores == 0 && state.route.held_count() == 0;
    match next_step(&s, now, drained, !state.conns.is_empty()) {
        Step::Wait => {}
        Step::PauseClients => {
            log::info!(
                "no longer reading {} clients; waiting for {stores} messages in flight",
                state.conns.len()
            );
            let clients: Vec<_> = state.conns.keys().copied().collect();
            for c in clients {
                net.pause_reading(c);
            }
            state.shutdown = Some(Shutdown {
                reads_paused_at: Some(now),
                ..s
            });
        }
        Step::CloseClients => {
            if !drained {
                log::warn!(
                    "stopping with {stores} messages in flight, {db_held} requests held for \
                     db_proxy, {} PDUs held for route_server",
                    state.route.held_count()
                );
            }
            log::info!("closing {} clients", state.conns.len());
            let clients: Vec<_> = state.conns.keys().copied().collect();
            for c in clients {
                net.close_after_flush(c);
            }
            state.shutdown = Some(Shutdown {
                clients_closed_at: Some(now),
                ..s
            });
        }
        Step::Exit => {
            log::info!("stopped: exiting");
            net.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_at_least_briefly_at_most_for_the_bound_then_waits_for_clients() {
        let s = Shutdown {
            since: 1_000,
            reads_paused_at: None,
            clients_closed_at: None,
        };
        assert_eq!(next_step(&s, 1_000, true, true), Step::Wait, "too soon");
        assert_eq!(next_step(&s, 1_300, true, true), Step::PauseClients);
        assert_eq!(next_step(&s, 3_999, false, true), Step::Wait, "in flight");
        assert_eq!(next_step(&s, 4_000, false, true), Step::PauseClients);
        let paused = Shutdown {
            reads_paused_at: Some(4_000),
            ..s
        };
        assert_eq!(
            next_step(&paused, 4_500, false, true),
            Step::Wait,
            "stores in flight are awaited"
        );
        assert_eq!(next_step(&paused, 4_500, true, true), Step::CloseClients);
        assert_eq!(
            next_step(&paused, 6_000, false, true),
            Step::CloseClients,
            "at most QUIESCE_MS"
        );
        let closed = Shutdown {
            clients_closed_at: Some(6_000),
            ..paused
        };
        assert_eq!(next_step(&closed, 6_100, true, true), Step::Wait);
        assert_eq!(next_step(&closed, 6_100, true, false), Step::Exit);
        assert_eq!(next_step(&closed, 7_000, false, true), Step::Exit);
    }
}
