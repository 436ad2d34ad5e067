//! The HTTP port: the C++ `HttpConn.cpp` (`CHttpConn`); the request
//! reading and the connection itself are `tt-http`'s, this is the handler.
//!
//! One request per connection, as in the C++: a request for a URL starting
//! with `/msg_server` (any method) gets a `200` whose JSON body names the
//! least-loaded msg_server, anything else is closed without an answer, and
//! the connection closes once the answer is written. More than 1 KiB of
//! request head or body, or 60 s without a byte, closes the connection.
//!
//! The request logic is [`handle_request`], a pure function of the request,
//! the table, the peer and the time; [`LoginHttp`] only plugs it into `tt-http`.

use crate::ip_parser::is_telecom;
use crate::msg_serv_info::{Choice, MsgServTable};
use crate::LoginState;
use base::tick::monotonic_ms;
use netlib::Ctx;
use std::net::IpAddr;
use tt_http::styled_json::{styled_object, JsonScalar};
use tt_http::{HttpConn, HttpHandler, Limits, ParseError, Request, Response, Verdict};

/// `HTTP_CONN_TIMEOUT`: an HTTP connection silent this long is closed.
pub const HTTP_CONN_TIMEOUT: u64 = 60_000;
/// The C++ closes a connection that sent more than this many bytes
/// ("a normal URL is short; more is an attack").
pub const HTTP_REQUEST_MAX: usize = 1024;
/// What the login port takes: 1 KiB of head, 1 KiB of body.
pub const LIMITS: Limits = Limits {
    head: HTTP_REQUEST_MAX,
    body: HTTP_REQUEST_MAX,
};
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

/// `CHttpConn::OnRead` once the request is whole: hands out a msg_server
/// (counted in `table`) when the request asks for one.
pub fn handle_request(
    request: &Request,
    table: &mut MsgServTable,
    urls: &ClientUrls,
    peer: Option<IpAddr>,
    now: u64,
) -> Verdict {
    if !request.target.starts_with("/msg_server") {
        return Verdict::Close(format!("url unknown, url={}", request.target));
    }
    Verdict::Reply(msg_serv_response(&table.choose(now), urls, peer))
}

/// `CHttpConn::_HandleMsgServRequest`: the whole HTTP answer for `choice`.
/// An IPv4 peer gets the msg_server's `ip1` as `priorIP`, any other its
/// `ip2` (see `is_telecom`).
pub fn msg_serv_response(choice: &Choice, urls: &ClientUrls, peer: Option<IpAddr>) -> Response {
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
    Response::json_html(body)
}

/// The login port's handler, one per connection.
#[derive(Debug, Default)]
pub struct LoginHttp;

impl LoginHttp {
    /// A connection on the HTTP port.
    pub fn conn() -> HttpConn<LoginHttp> {
        HttpConn::new(LoginHttp, LIMITS)
    }
}

impl HttpHandler<LoginState> for LoginHttp {
    fn limits(&self) -> Limits {
        LIMITS
    }

    fn idle_timeout_ms(&self) -> u64 {
        HTTP_CONN_TIMEOUT
    }

    fn on_request(&mut self, cx: &mut Ctx<'_, LoginState>, request: Request) -> Verdict {
        let peer = cx.peer_addr().map(|a| a.ip());
        let state = &mut *cx.state;
        handle_request(
            &request,
            &mut state.msg_servs,
            &state.urls,
            peer,
            monotonic_ms(),
        )
    }

    /// The C++ closes what it cannot parse, without an answer; so do we.
    fn on_malformed(&mut self, _cx: &mut Ctx<'_, LoginState>, error: &ParseError) -> Verdict {
        Verdict::Close(error.to_string())
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

    /// What the port does with `buf` as the whole input so far: `None`
    /// while the request is not whole.
    fn handle(
        buf: &[u8],
        table: &mut MsgServTable,
        urls: &ClientUrls,
        peer: Option<IpAddr>,
    ) -> Option<Verdict> {
        match tt_http::request::parse_request(buf, LIMITS) {
            Ok(Some(request)) => Some(handle_request(&request, table, urls, peer, 0)),
            Ok(None) => None,
            Err(e) => Some(Verdict::Close(e.to_string())),
        }
    }

    fn reply(v: Option<Verdict>) -> Vec<u8> {
        match v {
            Some(Verdict::Reply(r)) => r.to_bytes(),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn get_msg_server_names_the_msg_server() {
        let mut t = table_with(3, 10);
        let answer = reply(handle(
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
        let answer = reply(handle(
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
        let (_, json) = split(&reply(handle(
            req,
            &mut MsgServTable::default(),
            &urls(),
            v4(),
        )));
        assert_eq!(
            json,
            serde_json::json!({"code": 1, "msg": MSG_NO_MSG_SERVER})
        );
        let (_, json) = split(&reply(handle(req, &mut table_with(10, 10), &urls(), v4())));
        assert_eq!(json, serde_json::json!({"code": 2, "msg": MSG_ALL_FULL}));
    }

    #[test]
    fn post_waits_for_its_body() {
        let mut t = table_with(0, 10);
        let head = b"POST /msg_server HTTP/1.1\r\nContent-Length: 5\r\n\r\n".to_vec();
        assert_eq!(handle(&head, &mut t, &urls(), v4()), None);
        let mut whole = head.clone();
        whole.extend_from_slice(b"a=b&c");
        reply(handle(&whole, &mut t, &urls(), v4()));
        assert_eq!(handle(b"GET /msg_ser", &mut t, &urls(), v4()), None);
    }

    #[test]
    fn url_is_matched_by_prefix_as_the_cpp_strncmp() {
        let mut t = table_with(0, 10);
        for req in [
            &b"GET /msg_server?from=app HTTP/1.1\r\n\r\n"[..],
            b"HEAD /msg_server/x HTTP/1.0\r\n\r\n",
        ] {
            reply(handle(req, &mut t, &urls(), v4()));
        }
        for req in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET /msg HTTP/1.1\r\n\r\n",
            b"GET http://h/msg_server HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(
                handle(req, &mut t, &urls(), v4()),
                Some(Verdict::Close(_))
            ));
        }
    }

    #[test]
    fn oversized_and_malformed_requests_are_closed() {
        let mut t = table_with(0, 10);
        let mut big = b"GET /msg_server HTTP/1.1\r\nX-Pad: ".to_vec();
        big.resize(HTTP_REQUEST_MAX + 1, b'a');
        assert!(matches!(
            handle(&big, &mut t, &urls(), v4()),
            Some(Verdict::Close(_))
        ));
        assert!(matches!(
            handle(b"\x00\x01garbage\r\n\r\n", &mut t, &urls(), v4()),
            Some(Verdict::Close(_))
        ));
        assert!(matches!(
            handle(
                b"POST /msg_server HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                &mut t,
                &urls(),
                v4()
            ),
            Some(Verdict::Close(_))
        ));
        // Nothing was handed out by refused requests.
        assert_eq!(t.choose(0), {
            let mut fresh = table_with(0, 10);
            fresh.choose(0)
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
            },
        );
        let req = b"GET /msg_server HTTP/1.1\r\n\r\n";
        let first = split(&reply(handle(req, &mut t, &urls(), v4()))).1;
        let second = split(&reply(handle(req, &mut t, &urls(), v4()))).1;
        assert_ne!(first["port"], second["port"]);
    }
}
