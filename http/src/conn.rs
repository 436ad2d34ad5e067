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
//! connection closes once the answer is written. A long body may be
//! streamed: the head and a first part sent, each next part on
//! [`HttpHandler::on_write`] after [`Reactor::notify_when_drained`].
//!
//! Differences from the C++: a request that cannot be parsed, or is over
//! the server's limits, gets an answer at once (by default 400, 413 or
//! 431; login_server keeps the C++ silent close) rather than a close or a
//! wait for the idle timeout; the answer is always written whole before
//! the close (after a refused oversized body, once the body announced by
//! its `Content-Length` has been read and dropped, up to [`MAX_DRAIN`],
//! unless it stops coming for [`DRAIN_IDLE_MS`] or the client waits for a
//! `100 Continue`);
//! a connection is idle only when silent both ways
//! ([`is_idle`]), so a long answer to a slow reader is not cut.

use crate::request::{unread_body, Limits, ParseError, Request, RequestReader};
use crate::response::Response;
use base::ImPdu;
use netlib::{ConnId, Ctx, ImConn, Reactor};

/// The largest refused body read and dropped so that its sender gets the
/// refusal (past it the connection closes at once, and a client still
/// sending may see a reset instead).
pub const MAX_DRAIN: usize = 64 * 1024 * 1024;

/// A client that stops sending a refused body for this long (ms) is
/// closed (it may have sent the head alone and be waiting for the close).
pub const DRAIN_IDLE_MS: u64 = 2_000;

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

    /// The out-buffer drained ([`ImConn::on_write`]): after
    /// [`Reactor::notify_when_drained`], where a streamed body (an msfs
    /// download) queues its next part.
    fn on_write(&mut self, _cx: &mut Ctx<'_, S>) {}

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

/// The head in `buf` asks `Expect: 100-continue`: its client sends no body
/// until told to, so a refused one need not be drained.
fn expects_continue(buf: &[u8]) -> bool {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end])
        .to_ascii_lowercase()
        .lines()
        .any(|l| l.starts_with("expect:") && l.contains("100-continue"))
}

/// `CHttpConn::OnTimer`: a connection is idle when nothing came in and
/// nothing was queued out for `timeout_ms`. The C++ looks at what came in
/// only, which would also cut a long answer streamed to a slow reader (an
/// msfs download) after its request.
pub fn is_idle(now: u64, last_send: u64, last_recv: u64, timeout_ms: u64) -> bool {
    now > last_send.max(last_recv).saturating_add(timeout_ms)
}

/// `CHttpConn`: one connection on an HTTP port, running `H`.
#[derive(Debug)]
pub struct HttpConn<H> {
    handler: H,
    reader: RequestReader,
    /// A verdict was reached; later bytes are dropped until the close.
    done: bool,
    /// Bytes of a refused body still to read and drop before the close.
    drain_left: Option<usize>,
}

impl<H> HttpConn<H> {
    /// A connection whose requests `handler` answers, within `limits`.
    pub fn new(handler: H, limits: Limits) -> HttpConn<H> {
        HttpConn {
            handler,
            reader: RequestReader::new(limits),
            done: false,
            drain_left: None,
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
        if let Some(left) = self.drain_left {
            let left = left.saturating_sub(in_buf.len());
            in_buf.clear();
            self.drain_left = Some(left);
            if left == 0 {
                cx.close_after_flush();
            }
            return;
        }
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
                // A body refused for its size is read and dropped after the
                // answer, so a client still sending it can read the answer
                // (closing with its bytes unread would reset the connection).
                let drain = match e {
                    ParseError::BodyTooLarge { .. } if !expects_continue(in_buf) => {
                        unread_body(in_buf).filter(|&n| n > 0 && n <= MAX_DRAIN)
                    }
                    _ => None,
                };
                in_buf.clear();
                log::info!("http {} ({:?}): {e}", cx.id, cx.peer_addr());
                self.done = true;
                match (self.handler.on_malformed(cx, &e), drain) {
                    (Verdict::Reply(response), Some(left)) => {
                        if cx.net.send(cx.id, &response.to_bytes()).is_ok() {
                            self.drain_left = Some(left);
                        }
                    }
                    (verdict, _) => apply(cx, verdict),
                }
            }
        }
    }

    fn on_write(&mut self, cx: &mut Ctx<'_, S>) {
        self.handler.on_write(cx);
    }

    fn on_close(&mut self, cx: &mut Ctx<'_, S>) {
        self.handler.on_close(cx);
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_, S>, now: u64) {
        let Some((last_send, last_recv)) = cx.net.conn_ticks(cx.id) else {
            return;
        };
        if self.drain_left.is_some() && now > last_recv.saturating_add(DRAIN_IDLE_MS) {
            log::debug!("http {}: refused body stopped coming; closing", cx.id);
            cx.close();
            return;
        }
        if is_idle(now, last_send, last_recv, self.handler.idle_timeout_ms()) {
            log::info!(
                "http {} ({:?}): silent both ways for {} ms; closing",
                cx.id,
                cx.peer_addr(),
                now - last_send.max(last_recv)
            );
            cx.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_idle;

    #[test]
    fn idle_means_silent_both_ways() {
        // Nothing received since the request, but a part queued recently.
        assert!(!is_idle(40_000, 35_000, 1_000, 30_000));
        assert!(is_idle(40_000, 9_000, 1_000, 30_000));
        assert!(!is_idle(31_000, 0, 1_000, 30_000));
        assert!(is_idle(31_001, 0, 1_000, 30_000));
        assert!(!is_idle(5, u64::MAX, 0, 30_000));
    }

    #[test]
    fn a_client_waiting_for_continue_sends_no_body() {
        assert!(super::expects_continue(
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n"
        ));
        assert!(!super::expects_continue(
            b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nExpect: 100-continue"
        ));
    }
}
