//! The HTTP port: the C++ `HttpConn.cpp` (`CHttpConn`); reading requests
//! and the connection itself are `tt-http`'s, this is the handler that
//! plugs [`http_query::dispatch`] in and sends what it decides.
//!
//! One request per connection, answered then closed, as in the C++; a
//! connection silent for 60 s (`HTTP_CONN_TIMEOUT`) is closed.
//!
//! Differences from the C++:
//! - Every request gets an answer before the close: what cannot be read
//!   (a malformed head, a bad `Content-Length` or chunk) `400`, a body over
//!   [`MAX_BODY`] `413` (from its `Content-Length`, before it is read), a
//!   head over [`MAX_HEAD`] `431`, each with a JSON body (error 1); the C++
//!   closes without a byte, and buffers any size.
//! - The connection is closed once, when the answer is written (the C++
//!   closes twice on every error path, freeing the object twice).
//! - The pending table forgets a connection when it closes, so a late
//!   reply is dropped.

use crate::db_serv_conn;
use crate::http_pdu::{refusal, result, HttpError};
use crate::http_query::{self, Decision, Links};
use crate::state::HttpMsgState;
use base::tick::monotonic_ms;
use netlib::Ctx;
use tt_http::{HttpConn, HttpHandler, Limits, ParseError, Request, Response, Verdict};

/// `HTTP_CONN_TIMEOUT`: an HTTP connection silent this long is closed.
pub const HTTP_CONN_TIMEOUT: u64 = 60_000;
/// The biggest request body taken: 1 MiB (some 100,000 member ids).
pub const MAX_BODY: usize = 1024 * 1024;
/// The biggest request line and headers taken.
pub const MAX_HEAD: usize = 16 * 1024;
/// What the API port takes.
pub const LIMITS: Limits = Limits {
    head: MAX_HEAD,
    body: MAX_BODY,
};

/// The answer to bytes that cannot become a request: `413` for a body
/// over [`MAX_BODY`], `431` for a head over [`MAX_HEAD`], else `400`; the
/// body says error 1 and why.
pub fn malformed_answer(error: &ParseError) -> Response {
    let status = match error {
        ParseError::BodyTooLarge { .. } => 413,
        ParseError::HeadTooLarge { .. } => 431,
        ParseError::Head(_) | ParseError::ContentLength(_) | ParseError::Chunk => 400,
    };
    refusal(status, HttpError::Parameter, &error.to_string())
}

/// The handler of one connection on the API port.
#[derive(Debug, Default)]
pub struct QueryHttp;

impl QueryHttp {
    /// A connection on the API port.
    pub fn conn() -> HttpConn<QueryHttp> {
        HttpConn::new(QueryHttp, LIMITS)
    }
}

impl HttpHandler<HttpMsgState> for QueryHttp {
    fn limits(&self) -> Limits {
        LIMITS
    }

    fn idle_timeout_ms(&self) -> u64 {
        HTTP_CONN_TIMEOUT
    }

    /// `CHttpConn::OnRead` once the request is whole, then
    /// `DispatchQuery`: answered now, or sent to db_proxy and answered
    /// from its reply.
    fn on_request(&mut self, cx: &mut Ctx<'_, HttpMsgState>, request: Request) -> Verdict {
        log::info!(
            "{} {} from {:?}, {} bytes",
            request.method,
            request.target,
            cx.peer_addr(),
            request.body.len()
        );
        let state = &mut *cx.state;
        let query = crate::metrics::query_label(request.path());
        state.metrics.requests.inc(query);
        let links = Links {
            db: state.db.can_take(),
            route: state.route.can_notify(),
        };
        let response = match http_query::dispatch(&request, links, state.app_keys.as_ref()) {
            Decision::Reply(response) => response,
            Decision::ToDb(req) => {
                if db_serv_conn::send_query(cx.net, cx.state, cx.id, req, monotonic_ms()) {
                    return Verdict::Later;
                }
                result(HttpError::ServerException)
            }
        };
        cx.state.metrics.answered(&response);
        Verdict::Reply(response)
    }

    /// What cannot become a request is answered, with a JSON body.
    fn on_malformed(&mut self, cx: &mut Ctx<'_, HttpMsgState>, error: &ParseError) -> Verdict {
        let response = malformed_answer(error);
        cx.state.metrics.requests.inc("unreadable");
        cx.state.metrics.answered(&response);
        Verdict::Reply(response)
    }

    /// `OnClose`: a reply still to come is dropped.
    fn on_close(&mut self, cx: &mut Ctx<'_, HttpMsgState>) {
        cx.state.pending.forget(cx.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cannot_be_read_is_answered_with_its_status() {
        let cases = [
            (
                ParseError::BodyTooLarge {
                    length: 2 << 20,
                    limit: MAX_BODY,
                },
                413,
            ),
            (ParseError::HeadTooLarge { limit: MAX_HEAD }, 431),
            (ParseError::ContentLength("x".into()), 400),
            (ParseError::Chunk, 400),
        ];
        for (e, status) in cases {
            let r = malformed_answer(&e);
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!((r.status, v["error_code"].as_i64()), (status, Some(1)));
            assert_eq!(v["reason"], e.to_string());
        }
    }

    #[test]
    fn limits_and_timeout() {
        let h = QueryHttp;
        assert_eq!(HttpHandler::<HttpMsgState>::limits(&h).body, 1 << 20);
        assert_eq!(HttpHandler::<HttpMsgState>::idle_timeout_ms(&h), 60_000);
    }
}
