//! HTTP from the tests' side: send a raw request to a server's HTTP port
//! (login_server, msfs, http_msg_server), read the whole answer, parse it
//! strictly (the `Content-Length` must be the body's length).

use crate::WAIT;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `request` to the HTTP port of `addr` and reads until the server
/// closes; returns everything it sent.
pub fn http_exchange(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    // The server may close (and reset) before taking everything we send
    // when it refuses the request: then whatever arrived is the answer.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("reading the HTTP answer: {e}"),
        }
    }
}

/// An HTTP answer: status, headers (lower-cased names) and body.
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Parses a whole HTTP answer, checking that Content-Length covers the body exactly.
pub fn parse_answer(bytes: &[u8]) -> HttpAnswer {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut rsp = httparse::Response::new(&mut headers);
    let head = match rsp.parse(bytes).unwrap() {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => panic!("partial answer: {:?}", String::from_utf8_lossy(bytes)),
    };
    let headers: Vec<(String, String)> = rsp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let answer = HttpAnswer {
        status: rsp.code.unwrap(),
        headers,
        body: bytes[head..].to_vec(),
    };
    let len: usize = answer.header("Content-Length").unwrap().parse().unwrap();
    assert_eq!(
        len,
        answer.body.len(),
        "Content-Length is the body's byte length"
    );
    answer
}

/// Reads from `s` until EOF or `timeout`; true when the peer closed.
pub fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}
