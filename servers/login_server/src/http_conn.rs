//! The HTTP port: the C++ `HttpConn.cpp` (`CHttpConn`) with the parts of
//! `HttpParserWrapper.cpp` it uses.
//!
//! One request per connection, as in the C++: the bytes are accumulated
//! until a whole request is there; a request for a URL starting with
//! `/msg_server` (any method) gets a `200` whose JSON body names the
//! least-loaded msg_server, anything else is closed without an answer, and
//! the connection closes once the answer is written. More than 1 KiB of
//! request, or 60 s without a byte, closes the connection.
//!
//! The request logic is [`handle_request`], a pure function of the bytes,
//! the table and the peer; [`HttpConn`] only plugs it into the reactor.

use crate::ip_parser::is_telecom;
use crate::msg_serv_info::{Choice, MsgServTable};
use crate::styled_json::{styled_object, JsonScalar};
use crate::LoginState;
use base::ImPdu;
use netlib::{Ctx, Heartbeat, ImConn};
use std::net::IpAddr;
use thiserror::Error;

/// `HTTP_CONN_TIMEOUT`: an HTTP connection silent this long is closed.
pub const HTTP_CONN_TIMEOUT: u64 = 60_000;
/// The C++ closes a connection that sent more than this many bytes
/// ("a normal URL is short; more is an attack").
pub const HTTP_REQUEST_MAX: usize = 1024;
/// Headers one request may carry (1 KiB cannot hold many more).
const MAX_HEADERS: usize = 64;
/// `msg` of the answer when no msg_server is registered (code 1).
pub const MSG_NO_MSG_SERVER: &str = "没有msg_server";
/// `msg` of the answer when every msg_server is full (code 2).
pub const MSG_ALL_FULL: &str = "负载过高";

/// The URLs login_server hands to HTTP clients next to the msg_server
/// (the C++ globals `strMsfsUrl` and `strDiscovery`, from the conf keys
/// `msfs` and `discovery`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUrls {
    /// File-storage server (`msfsPrior` and `msfsBackup`).
    pub msfs: String,
    /// Discovery page (`discovery`).
    pub discovery: String,
}

/// One whole HTTP request, as much of it as the login port needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`...
    pub method: String,
    /// The request target as sent (`/msg_server?x=1`).
    pub url: String,
    /// The body (never used, as in the C++, but read so the request is whole).
    pub body: Vec<u8>,
}

/// Why the bytes are not an HTTP request.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum HttpParseError {
    /// The request line or headers do not parse.
    #[error("malformed request head: {0}")]
    Head(httparse::Error),
    /// `Content-Length` is not a number.
    #[error("invalid Content-Length {0:?}")]
    ContentLength(String),
    /// A chunk of a chunked body is malformed.
    #[error("malformed chunked body")]
    Chunk,
}

/// What to do with a connection after new bytes arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpVerdict {
    /// The request is not whole yet.
    Wait,
    /// Send this and close once it is written.
    Reply(Vec<u8>),
    /// Close now without an answer, for this reason (logged).
    Close(String),
}

/// `CHttpParserWrapper::ParseHttpContent` + `IsReadAll`: the request in
/// `buf` if it is whole, `Ok(None)` if more bytes are needed.
pub fn parse_request(buf: &[u8]) -> Result<Option<HttpRequest>, HttpParseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf).map_err(HttpParseError::Head)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    let rest = &buf[head_len..];
    let chunked =
        header("Transfer-Encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        match read_chunked(rest)? {
            Some(body) => body,
            None => return Ok(None),
        }
    } else if let Some(value) = header("Content-Length") {
        let len: usize = value
            .parse()
            .map_err(|_| HttpParseError::ContentLength(value.clone()))?;
        if rest.len() < len {
            return Ok(None);
        }
        rest[..len].to_vec()
    } else {
        Vec::new()
    };
    Ok(Some(HttpRequest {
        method: req.method.unwrap_or_default().to_string(),
        url: req.path.unwrap_or_default().to_string(),
        body,
    }))
}

/// Decodes a chunked body; `Ok(None)` until the last chunk and the
/// trailer section are there.
fn read_chunked(mut rest: &[u8]) -> Result<Option<Vec<u8>>, HttpParseError> {
    let mut body = Vec::new();
    loop {
        let (start, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(HttpParseError::Chunk),
        };
        rest = &rest[start..];
        if size == 0 {
            // Trailers end at the first empty line.
            let done = rest.starts_with(b"\r\n") || rest.windows(4).any(|w| w == b"\r\n\r\n");
            return Ok(done.then_some(body));
        }
        let size = usize::try_from(size).map_err(|_| HttpParseError::Chunk)?;
        let Some(end) = size.checked_add(2) else {
            return Err(HttpParseError::Chunk);
        };
        if rest.len() < end {
            return Ok(None);
        }
        if &rest[size..end] != b"\r\n" {
            return Err(HttpParseError::Chunk);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[end..];
    }
}

/// `CHttpConn::OnRead`: decides what the bytes received so far call for.
/// Hands out a msg_server (counted in `table`) when the request asks for one.
pub fn handle_request(
    buf: &[u8],
    table: &mut MsgServTable,
    urls: &ClientUrls,
    peer: Option<IpAddr>,
) -> HttpVerdict {
    if buf.len() > HTTP_REQUEST_MAX {
        return HttpVerdict::Close(format!(
            "request over {HTTP_REQUEST_MAX} bytes ({} so far)",
            buf.len()
        ));
    }
    let request = match parse_request(buf) {
        Ok(Some(request)) => request,
        Ok(None) => return HttpVerdict::Wait,
        Err(e) => return HttpVerdict::Close(e.to_string()),
    };
    if !request.url.starts_with("/msg_server") {
        return HttpVerdict::Close(format!("url unknown, url={}", request.url));
    }
    HttpVerdict::Reply(msg_serv_response(&table.choose(), urls, peer))
}

/// `CHttpConn::_HandleMsgServRequest`: the whole HTTP answer for `choice`.
/// An IPv4 peer gets the msg_server's `ip1` as `priorIP`, any other its
/// `ip2` (see [`is_telecom`]).
pub fn msg_serv_response(choice: &Choice, urls: &ClientUrls, peer: Option<IpAddr>) -> Vec<u8> {
    let body = match choice {
        Choice::NoMsgServer => styled_object(&[
            ("code", JsonScalar::Int(1)),
            ("msg", JsonScalar::Str(MSG_NO_MSG_SERVER.into())),
        ]),
        Choice::AllFull => styled_object(&[
            ("code", JsonScalar::Int(2)),
            ("msg", JsonScalar::Str(MSG_ALL_FULL.into())),
        ]),
        Choice::Chosen(info) => {
            let (prior, backup) = if is_telecom(peer) {
                (&info.ip_addr1, &info.ip_addr2)
            } else {
                (&info.ip_addr2, &info.ip_addr1)
            };
            styled_object(&[
                ("code", JsonScalar::Int(0)),
                ("msg", JsonScalar::Str(String::new())),
                ("priorIP", JsonScalar::Str(prior.clone())),
                ("backupIP", JsonScalar::Str(backup.clone())),
                ("msfsPrior", JsonScalar::Str(urls.msfs.clone())),
                ("msfsBackup", JsonScalar::Str(urls.msfs.clone())),
                ("discovery", JsonScalar::Str(urls.discovery.clone())),
                ("port", JsonScalar::Str(info.port.to_string())),
            ])
        }
    };
    // `HTTP_RESPONSE_HTML`, with the body's length in bytes.
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nConnection:close\r\nContent-Length:{}\r\n\
         Content-Type:text/html;charset=utf-8\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// `CHttpConn`: one connection on the HTTP port.
#[derive(Debug, Default)]
pub struct HttpConn {
    /// The answer is queued; later bytes are ignored until the close.
    answered: bool,
}

impl HttpConn {
    /// The idle rule: no heartbeats, closed after [`HTTP_CONN_TIMEOUT`] of silence.
    pub const IDLE: Heartbeat = Heartbeat {
        send_after_ms: None,
        timeout_ms: HTTP_CONN_TIMEOUT,
    };
}

impl ImConn<LoginState> for HttpConn {
    fn raw_bytes(&self) -> bool {
        true
    }

    fn on_connect(&mut self, cx: &mut Ctx<'_, LoginState>) {
        log::debug!("http connection {} from {:?}", cx.id, cx.peer_addr());
    }

    fn on_pdu(&mut self, cx: &mut Ctx<'_, LoginState>, _pdu: ImPdu) {
        // Raw connections never get PDUs; be safe rather than sorry.
        cx.close();
    }

    fn on_bytes(&mut self, cx: &mut Ctx<'_, LoginState>, in_buf: &mut Vec<u8>) {
        if self.answered {
            in_buf.clear();
            return;
        }
        let peer = cx.peer_addr();
        let state = &mut *cx.state;
        match handle_request(
            in_buf,
            &mut state.msg_servs,
            &state.urls,
            peer.map(|a| a.ip()),
        ) {
            HttpVerdict::Wait => {}
            HttpVerdict::Reply(answer) => {
                self.answered = true;
                in_buf.clear();
                log::debug!("http {}: answering {:?}", cx.id, peer);
                if cx.net.send(cx.id, &answer).is_ok() {
                    cx.close_after_flush();
                }
            }
            HttpVerdict::Close(reason) => {
                log::info!("http {} ({peer:?}): {reason}; closing", cx.id);
                cx.close();
            }
        }
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_, LoginState>, now: u64) {
        cx.keep_alive(Self::IDLE, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg_serv_info::MsgServInfo;
    use netlib::ConnId;

    fn urls() -> ClientUrls {
        ClientUrls {
            msfs: "http://msfs.example/".into(),
            discovery: "http://x.example/api/discovery".into(),
        }
    }

    fn table_with(cur: u32, max: u32) -> MsgServTable {
        let mut t = MsgServTable::default();
        t.register(
            ConnId::from_u64((1 << 32) | 1),
            MsgServInfo {
                ip_addr1: "1.1.1.1".into(),
                ip_addr2: "2.2.2.2".into(),
                port: 8000,
                max_conn_cnt: max,
                cur_conn_cnt: cur,
                hostname: "m".into(),
                handed_out: 0,
            },
        );
        t
    }

    fn v4() -> Option<IpAddr> {
        Some("10.0.0.9".parse().unwrap())
    }

    /// Splits an answer into (head, parsed JSON body), checking Content-Length.
    fn split(answer: &[u8]) -> (String, serde_json::Value) {
        let text = std::str::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length:"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len(), "Content-Length counts bytes");
        (head.to_string(), serde_json::from_str(body).unwrap())
    }

    fn reply(v: HttpVerdict) -> Vec<u8> {
        match v {
            HttpVerdict::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn get_msg_server_names_the_msg_server() {
        let mut t = table_with(3, 10);
        let answer = reply(handle_request(
            b"GET /msg_server HTTP/1.1\r\nHost: x\r\n\r\n",
            &mut t,
            &urls(),
            v4(),
        ));
        let (head, json) = split(&answer);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\nConnection:close\r\n"));
        assert!(head.contains("Content-Type:text/html;charset=utf-8"));
        assert_eq!(json["code"], 0);
        assert_eq!(json["msg"], "");
        assert_eq!(json["priorIP"], "1.1.1.1");
        assert_eq!(json["backupIP"], "2.2.2.2");
        assert_eq!(json["port"], "8000");
        assert_eq!(json["msfsPrior"], "http://msfs.example/");
        assert_eq!(json["msfsBackup"], "http://msfs.example/");
        assert_eq!(json["discovery"], "http://x.example/api/discovery");
        assert_eq!(json.as_object().unwrap().len(), 8);
    }

    #[test]
    fn non_ipv4_peer_gets_ip2_first() {
        let mut t = table_with(3, 10);
        let answer = reply(handle_request(
            b"GET /msg_server HTTP/1.1\r\n\r\n",
            &mut t,
            &urls(),
            Some("::1".parse().unwrap()),
        ));
        let (_, json) = split(&answer);
        assert_eq!(json["priorIP"], "2.2.2.2");
        assert_eq!(json["backupIP"], "1.1.1.1");
    }

    #[test]
    fn refusals_carry_codes_1_and_2() {
        let req = b"GET /msg_server HTTP/1.1\r\n\r\n";
        let (_, json) = split(&reply(handle_request(
            req,
            &mut MsgServTable::default(),
            &urls(),
            v4(),
        )));
        assert_eq!(
            json,
            serde_json::json!({"code": 1, "msg": MSG_NO_MSG_SERVER})
        );
        let (_, json) = split(&reply(handle_request(
            req,
            &mut table_with(10, 10),
            &urls(),
            v4(),
        )));
        assert_eq!(json, serde_json::json!({"code": 2, "msg": MSG_ALL_FULL}));
    }

    #[test]
    fn post_waits_for_its_body() {
        let mut t = table_with(0, 10);
        let head = b"POST /msg_server HTTP/1.1\r\nContent-Length: 5\r\n\r\n".to_vec();
        assert_eq!(
            handle_request(&head, &mut t, &urls(), v4()),
            HttpVerdict::Wait
        );
        let mut whole = head.clone();
        whole.extend_from_slice(b"a=b&c");
        reply(handle_request(&whole, &mut t, &urls(), v4()));
        assert_eq!(
            handle_request(b"GET /msg_ser", &mut t, &urls(), v4()),
            HttpVerdict::Wait
        );
    }

    #[test]
    fn chunked_bodies_are_read_whole() {
        let head = b"POST /msg_server HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut buf = head.to_vec();
        buf.extend_from_slice(b"3\r\nabc\r\n");
        assert_eq!(parse_request(&buf), Ok(None));
        buf.extend_from_slice(b"2\r\nde\r\n0\r\n");
        assert_eq!(parse_request(&buf), Ok(None));
        buf.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&buf).unwrap().unwrap().body, b"abcde");
        let mut bad = head.to_vec();
        bad.extend_from_slice(b"3\r\nabcXX");
        assert_eq!(parse_request(&bad), Err(HttpParseError::Chunk));
    }

    #[test]
    fn url_is_matched_by_prefix_as_the_cpp_strncmp() {
        let mut t = table_with(0, 10);
        for req in [
            &b"GET /msg_server?from=app HTTP/1.1\r\n\r\n"[..],
            b"HEAD /msg_server/x HTTP/1.0\r\n\r\n",
        ] {
            reply(handle_request(req, &mut t, &urls(), v4()));
        }
        for req in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET /msg HTTP/1.1\r\n\r\n",
            b"GET http://h/msg_server HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(
                handle_request(req, &mut t, &urls(), v4()),
                HttpVerdict::Close(_)
            ));
        }
    }

    #[test]
    fn oversized_and_malformed_requests_are_closed() {
        let mut t = table_with(0, 10);
        let mut big = b"GET /msg_server HTTP/1.1\r\nX-Pad: ".to_vec();
        big.resize(HTTP_REQUEST_MAX + 1, b'a');
        assert!(matches!(
            handle_request(&big, &mut t, &urls(), v4()),
            HttpVerdict::Close(_)
        ));
        assert!(matches!(
            handle_request(b"\x00\x01garbage\r\n\r\n", &mut t, &urls(), v4()),
            HttpVerdict::Close(_)
        ));
        assert!(matches!(
            handle_request(
                b"POST /msg_server HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                &mut t,
                &urls(),
                v4()
            ),
            HttpVerdict::Close(_)
        ));
        // Nothing was handed out by refused requests.
        assert_eq!(t.choose(), {
            let mut fresh = table_with(0, 10);
            fresh.choose()
        });
    }

    #[test]
    fn a_reply_counts_as_a_hand_out() {
        let mut t = table_with(0, 10);
        t.register(
            ConnId::from_u64((1 << 32) | 2),
            MsgServInfo {
                ip_addr1: "3.3.3.3".into(),
                ip_addr2: "4.4.4.4".into(),
                port: 9000,
                max_conn_cnt: 10,
                cur_conn_cnt: 0,
                hostname: "n".into(),
                handed_out: 0,
            },
        );
        let req = b"GET /msg_server HTTP/1.1\r\n\r\n";
        let first = split(&reply(handle_request(req, &mut t, &urls(), v4()))).1;
        let second = split(&reply(handle_request(req, &mut t, &urls(), v4()))).1;
        assert_ne!(first["port"], second["port"]);
    }
}
