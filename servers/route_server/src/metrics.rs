//! `GET /metrics` (not in the C++): the reactor's figures (links,
//! PDUs, bytes, memory) and route_server's own: users online and the
//! msg_server links.

use crate::state::RouteState;
use netlib::metrics::{Exposition, Kind};
use netlib::Reactor;

/// Writes route_server's metrics (a `tt_http::metrics::RenderFn`).
pub fn render(net: &Reactor<RouteState>, state: &RouteState, w: &mut Exposition) {
    net.write_metrics(w);
    w.single(
        "tt_route_online_users",
        "Users with at least one client on some msg_server.",
        Kind::Gauge,
        state.user_count() as f64,
    );
    w.single(
        "tt_route_msg_server_links",
        "msg_servers linked to this route_server.",
        Kind::Gauge,
        state.link_count() as f64,
    );
    w.single(
        "tt_route_dropped_users",
        "Users kept after their msg_server's link was lost, waiting for it to come back.",
        Kind::Gauge,
        state.dropped_count() as f64,
    );
}
