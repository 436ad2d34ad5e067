//! `GET /metrics` (not in the C++): the reactor's figures (API
//! connections, db_proxy and route_server links, PDUs, bytes, memory), the
//! peer links, and http_msg_server's own: requests by query and answers by
//! `error_code`, counted on the loop thread.

use crate::state::HttpMsgState;
use netlib::metrics::{write_peer_links, Exposition, Kind, LabeledCounter};
use netlib::Reactor;
use tt_http::Response;

/// The `query` label of a request path.
pub fn query_label(path: &str) -> &'static str {
    match path {
        "/query/CreateGroup" => "CreateGroup",
        "/query/ChangeMembers" => "ChangeMembers",
        _ => "other",
    }
}

/// The `code` label of an answer: its JSON `error_code` (every code this
/// server writes, see `http_pdu::HttpError`), `other` for anything else.
pub fn code_label(code: i64) -> &'static str {
    match code {
        0 => "0",
        1 => "1",
        2 => "2",
        5 => "5",
        10 => "10",
        11 => "11",
        12 => "12",
        _ => "other",
    }
}

/// http_msg_server's own counters.
#[derive(Debug, Clone, Default)]
pub struct HttpMsgMetrics {
    /// Requests read, by query (`CreateGroup`, `ChangeMembers`, `other`,
    /// `unreadable`).
    pub requests: LabeledCounter,
    /// Answers sent, by `error_code`.
    pub answers: LabeledCounter,
}

impl HttpMsgMetrics {
    /// Counts `response` as sent, under the `error_code` of its body.
    pub fn answered(&mut self, response: &Response) {
        let code = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|v| v["error_code"].as_i64())
            .unwrap_or(-1);
        self.answers.inc(code_label(code));
    }
}

/// Writes http_msg_server's metrics (a `tt_http::metrics::RenderFn`).
pub fn render(net: &Reactor<HttpMsgState>, state: &HttpMsgState, w: &mut Exposition) {
    net.write_metrics(w);
    write_peer_links(
        w,
        &[
            ("db_proxy", &state.db.peers),
            ("route_server", &state.route.peers),
        ],
    );
    w.counters(
        "tt_http_msg_requests_total",
        "API requests read, by query (unreadable: not a request within the limits).",
        "query",
        state.metrics.requests.iter(),
    );
    w.counters(
        "tt_http_msg_answers_total",
        "API answers sent, by error_code (0 success, 10 server error...).",
        "code",
        state.metrics.answers.iter(),
    );
    w.single(
        "tt_http_msg_pending_requests",
        "API requests waiting for db_proxy's reply.",
        Kind::Gauge,
        state.pending.len() as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_counted_by_their_error_code() {
        let mut m = HttpMsgMetrics::default();
        m.answered(&crate::http_pdu::result(
            crate::http_pdu::HttpError::Success,
        ));
        m.answered(&crate::http_pdu::result(
            crate::http_pdu::HttpError::ServerException,
        ));
        m.answered(&Response::new(200));
        assert_eq!((m.answers.get("0"), m.answers.get("10")), (1, 1));
        assert_eq!(m.answers.get("other"), 1);
        assert_eq!(query_label("/query/CreateGroup"), "CreateGroup");
        assert_eq!(query_label("/x"), "other");
    }
}
