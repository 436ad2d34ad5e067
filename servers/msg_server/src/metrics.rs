//! `GET /metrics` (not in the C++, whose only figures are the 5-minute
//! statistics line): the reactor's figures (client and peer connections by
//! kind, PDUs per command, bytes, out-buffers, memory), the peer links, and
//! msg_server's own counters, kept here and bumped by the handlers on the
//! loop thread (no lock).

use crate::state::MsgState;
use netlib::metrics::{write_peer_links, Exposition, Kind, LabeledCounter};
use netlib::Reactor;
use tt_proto::IM::BaseDefine::MsgType;

/// Login results: accepted, refused before asking db_proxy (a peer is
/// missing), refused by db_proxy (wrong name or password...).
pub const LOGIN_RESULTS: [&str; 3] = ["ok", "refused_no_peer", "refused_by_db"];

/// msg_server's own counters (never reset: SIGUSR1 resets the log line's).
#[derive(Debug, Clone)]
pub struct MsgMetrics {
    /// Logins by result ([`LOGIN_RESULTS`]).
    pub logins: LabeledCounter,
    /// Messages clients sent us, by type.
    pub msgs_in: LabeledCounter,
    /// Messages delivered to clients here, by type.
    pub msgs_out: LabeledCounter,
}

impl Default for MsgMetrics {
    fn default() -> MsgMetrics {
        let types = MSG_TYPES.map(|(_, l)| l);
        MsgMetrics {
            logins: LabeledCounter::with_labels(&LOGIN_RESULTS),
            msgs_in: LabeledCounter::with_labels(&types),
            msgs_out: LabeledCounter::with_labels(&types),
        }
    }
}

/// Every message type and its label.
const MSG_TYPES: [(MsgType, &str); 4] = [
    (MsgType::MSG_TYPE_SINGLE_TEXT, "single_text"),
    (MsgType::MSG_TYPE_SINGLE_AUDIO, "single_audio"),
    (MsgType::MSG_TYPE_GROUP_TEXT, "group_text"),
    (MsgType::MSG_TYPE_GROUP_AUDIO, "group_audio"),
];

/// The `type` label of a message type.
pub fn msg_type_label(t: MsgType) -> &'static str {
    MSG_TYPES
        .iter()
        .find(|(m, _)| *m == t)
        .map_or("unknown", |(_, l)| l)
}

/// Writes msg_server's metrics (a `tt_http::metrics::RenderFn`).
pub fn render(net: &Reactor<MsgState>, state: &MsgState, w: &mut Exposition) {
    net.write_metrics(w);
    write_peer_links(
        w,
        &[
            ("db_proxy", &state.db.peers),
            ("login_server", &state.login.peers),
            ("route_server", &state.route.peers),
            ("push_server", &state.push.peers),
            ("file_server", &state.file.peers),
        ],
    );
    let m = &state.metrics;
    w.counters(
        "tt_msg_logins_total",
        "Client logins by result.",
        "result",
        m.logins.iter(),
    );
    w.counters(
        "tt_msg_messages_received_total",
        "Messages clients sent to this msg_server, by type.",
        "type",
        m.msgs_in.iter(),
    );
    w.counters(
        "tt_msg_messages_delivered_total",
        "Messages this msg_server sent to its clients, by type.",
        "type",
        m.msgs_out.iter(),
    );
    w.single(
        "tt_msg_messages_dropped_no_db_total",
        "Client messages dropped for lack of a db_proxy link (since the last SIGUSR1).",
        Kind::Counter,
        state.stats.up_miss.into(),
    );
    w.single(
        "tt_msg_online_users",
        "Users logged in on this msg_server.",
        Kind::Gauge,
        state.users.user_count() as f64,
    );
    w.single(
        "tt_msg_client_connections",
        "Client connections, logged in or not.",
        Kind::Gauge,
        state.conns.len() as f64,
    );
    let g = state.groups.counters();
    w.family(
        "tt_msg_group_cache_lookups_total",
        "Group member list lookups for a group message, by result.",
        Kind::Counter,
    )
    .sample(&[("result", "hit")], g.hits as f64)
    .sample(&[("result", "miss")], g.misses as f64);
    w.family(
        "tt_msg_group_cache_removals_total",
        "Member lists removed by the cache's bounds, by reason.",
        Kind::Counter,
    )
    .sample(&[("reason", "evicted")], g.lists_evicted as f64)
    .sample(&[("reason", "expired")], g.lists_expired as f64);
    w.family(
        "tt_msg_group_waits_dropped_total",
        "Group messages dropped while waiting for a member list, by reason.",
        Kind::Counter,
    )
    .sample(&[("reason", "full")], g.waits_dropped as f64)
    .sample(&[("reason", "expired")], g.waits_expired as f64);
    w.single(
        "tt_msg_group_cache_lists",
        "Group member lists cached.",
        Kind::Gauge,
        state.groups.group_count() as f64,
    );
    w.single(
        "tt_msg_group_waiting_messages",
        "Group messages waiting for a member list.",
        Kind::Gauge,
        state.groups.waiting_count() as f64,
    );
}
