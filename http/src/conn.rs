//! An HTTP port on netlib: the C++ `CHttpConn` (`HttpConn.cpp` of
//! login_server, msfs and http_msg_server), whose connection handling the
//! three copy; here once, with each server's request logic behind
//! [`HttpHandler`].
//!
//! [`HttpConn`] is a raw-bytes [`ImConn`]: it feeds what arrives to a
//! [`RequestReader`] and hands the whole request to the handler, which
//! answers at once ([`Verdict::Reply`]), later ([`Verdict::Later`], then
//! [`send_response`] when a peer server or a worker has answered), or
//! closes. One request per connection: bytes after it are dropped, and the
//! connection closes once the answer is written.
//!
//! Differences from the C++: a request that cannot be parsed, or is over
//! the server's limits, gets an answer at once (by default 400, 413 or
//! 431; login_server keeps the C++ silent close) rather than a close or a
//! wait for the idle timeout; the answer is always written whole before
//! the close.

use crate::request::{Limits, ParseError, Request, RequestReader};
use crate::response::Response;
use base::ImPdu;
use netlib::{ConnId, Ctx, Heartbeat, ImConn, Reactor};

/// The C++ `HTTP_CONN_TIMEOUT` of login_server and http_msg_server: an
/// HTTP connection silent for 60 s is closed (msfs uses 30 s).
pub const DEFAULT_IDLE_MS: u64 = 60_000;

/// What to do once a request (or a malformed one) is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send this and close once it is written.
    Reply(Response),
    /// The handler answers later with [`send_response`] (after a peer
    /// server's reply or a worker's disk I/O).
    Later,
    /// Close now without an answer, for this reason (logged).
    Close(String),
}

/// One server's request logic, one value per connection (as each C++
/// `CHttpConn` object holds its request).
pub trait HttpHandler<S>: 'static {
    /// The biggest request this server takes.
    fn limits(&self) -> Limits;

    /// A connection silent this long (ms) is closed.
    fn idle_timeout_ms(&self) -> u64 {
        DEFAULT_IDLE_MS
    }

    /// A whole request arrived on `cx.id`.
    fn on_request(&mut self, cx: &mut Ctx<'_, S>, request: Request) -> Verdict;

    /// The bytes cannot become a request within the limits. By default a
    /// 400 (malformed), 413 (body too large) or 431 (head too large) with
    /// the reason as the body.
    fn on_malformed(&mut self, _cx: &mut Ctx<'_, S>, error: &ParseError) -> Verdict {
        Verdict::Reply(default_refusal(error))
    }

    /// The connection ended, however (answered, refused, idle, peer gone).
    fn on_close(&mut self, _cx: &mut Ctx<'_, S>) {}
}

/// The default answer to a request that cannot be taken.
pub fn default_refusal(error: &ParseError) -> Response {
    let status = match error {
        ParseError::BodyTooLarge { .. } => 413,
        ParseError::HeadTooLarge { .. } => 431,
        ParseError::Head(_) | ParseError::ContentLength(_) | ParseError::Chunk => 400,
    };
    Response::new(status).with_body("text/plain;charset=utf-8", format!("{error}\n"))
}

/// Queues `response` on `id` and closes the connection once it is
/// written: how a [`Verdict::Later`] answer goes out. False when the
/// connection has gone (the answer is dropped; nothing else to do).
pub fn send_response<S: 'static>(net: &mut Reactor<S>, id: ConnId, response: &Response) -> bool {
    if net.send(id, &response.to_bytes()).is_ok() {
        net.close_after_flush(id);
        true
    } else {
        false
    }
}

/// `CHttpConn`: one connection on an HTTP port, running `H`.
#[derive(Debug)]
pub struct HttpConn<H> {
    handler: H,
    reader: RequestReader,
    /// A verdict was reached; later bytes are dropped until the close.
    done: bool,
}

impl<H> HttpConn<H> {
    /// A connection whose requests `handler` answers, within `limits`.
    pub fn new(handler: H, limits: Limits) -> HttpConn<H> {
        HttpConn {
            handler,
            reader: RequestReader::new(limits),
            done: false,
        }
    }

    /// A connection for `handler`, with the handler's own limits.
    pub fn for_handler<S>(handler: H) -> HttpConn<H>
    where
        H: HttpHandler<S>,
    {
        let limits = handler.limits();
        HttpConn::new(handler, limits)
    }

    /// The handler (for tests).
    pub fn handler(&self) -> &H {
        &self.handler
    }
}

/// Carries out `verdict` on `cx.id`.
fn apply<S: 'static>(cx: &mut Ctx<'_, S>, verdict: Verdict) {
    match verdict {
        Verdict::Reply(response) => {
            log::debug!(
                "http {} ({:?}): answering {}",
                cx.id,
                cx.peer_addr(),
                response.status
            );
            send_response(cx.net, cx.id, &response);
        }
        Verdict::Later => {}
        Verdict::Close(reason) => {
            log::info!("http {} ({:?}): {reason}; closing", cx.id, cx.peer_addr());
            cx.close();
        }
    }
}

impl<S: 'static, H: HttpHandler<S>> ImConn<S> for HttpConn<H> {
    fn raw_bytes(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        netlib::metrics::short_type_name::<H>()
    }

    fn on_connect(&mut self, cx: &mut Ctx<'_, S>) {
        log::debug!("http connection {} from {:?}", cx.id, cx.peer_addr());
    }

    fn on_pdu(&mut self, cx: &mut Ctx<'_, S>, _pdu: ImPdu) {
        // Raw connections never get PDUs.
        cx.close();
    }

    fn on_bytes(&mut self, cx: &mut Ctx<'_, S>, in_buf: &mut Vec<u8>) {
        if self.done {
            in_buf.clear();
            return;
        }
        match self.reader.read(in_buf) {
            Ok(None) => {}
            Ok(Some(request)) => {
                in_buf.clear();
                self.done = true;
                let verdict = self.handler.on_request(cx, request);
                apply(cx, verdict);
            }
            Err(e) => {
                in_buf.clear();
                log::info!("http {} ({:?}): {e}", cx.id, cx.peer_addr());
                self.done = true;
                let verdict = self.handler.on_malformed(cx, &e);
                apply(cx, verdict);
            }
        }
    }

    fn on_close(&mut self, cx: &mut Ctx<'_, S>) {
        self.handler.on_close(cx);
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_, S>, now: u64) {
        let idle = Heartbeat {
            send_after_ms: None,
            timeout_ms: self.handler.idle_timeout_ms(),
        };
        cx.keep_alive(idle, now);
    }
}
