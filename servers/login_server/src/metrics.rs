//! `GET /metrics` (not in the C++): the reactor's figures and
//! login_server's own: hand-outs by result, the registered msg_servers
//! and the load each reported.

use crate::state::LoginState;
use netlib::metrics::{Exposition, Kind};
use netlib::Reactor;

/// Writes login_server's metrics (a `tt_http::metrics::RenderFn`).
pub fn render(net: &Reactor<LoginState>, state: &LoginState, w: &mut Exposition) {
    net.write_metrics(w);
    let table = &state.msg_servs;
    let handouts = table.handouts();
    w.counters(
        "tt_login_handouts_total",
        "Answers to clients asking for a msg_server (TCP and HTTP), by result.",
        "result",
        ["chosen", "no_msg_server", "all_full"]
            .into_iter()
            .map(|r| (r, handouts.get(r))),
    );
    w.single(
        "tt_login_msg_servers",
        "msg_servers registered with this login_server.",
        Kind::Gauge,
        table.len() as f64,
    );
    w.single(
        "tt_login_online_users",
        "Users on every registered msg_server, as they reported.",
        Kind::Gauge,
        table.total_users() as f64,
    );
    let servers: Vec<_> = table
        .servers()
        .map(|(s, handed_out)| (format!("{}:{}", s.ip_addr1, s.port), s, handed_out))
        .collect();
    w.family(
        "tt_login_msg_server_users",
        "Users a registered msg_server reported logged in.",
        Kind::Gauge,
    );
    for (addr, s, _) in &servers {
        w.sample(&[("msg_server", addr)], s.cur_conn_cnt.into());
    }
    w.family(
        "tt_login_msg_server_max_users",
        "The most users a registered msg_server takes (its MaxConnCnt).",
        Kind::Gauge,
    );
    for (addr, s, _) in &servers {
        w.sample(&[("msg_server", addr)], s.max_conn_cnt.into());
    }
    w.family(
        "tt_login_msg_server_handed_out",
        "Clients sent to a msg_server that it has not reported logged in yet.",
        Kind::Gauge,
    );
    for (addr, _, handed_out) in &servers {
        w.sample(&[("msg_server", addr)], *handed_out as f64);
    }
}
