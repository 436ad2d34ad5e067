//! `HttpConn` over a real reactor on loopback: whole requests reach the
//! handler, refusals are answered at once (an oversized body before it is
//! sent), late answers go out through `send_response`, and a bad request
//! on one connection leaves the others served; a long body streamed part
//! by part on `on_write` arrives whole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use netlib::{ConnId, Ctx, Reactor};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;
use tt_http::{send_response, HttpConn, HttpHandler, Limits, Request, Response, Verdict};

/// The loop's state: connections waiting for a late answer.
#[derive(Default)]
struct Pending {
    waiting: Vec<ConnId>,
}

#[derive(Default)]
struct Echo {
    parts_left: usize,
}

const STREAM_PARTS: usize = 48;
const PART: usize = 64 * 1024;

impl HttpHandler<Pending> for Echo {
    fn on_write(&mut self, cx: &mut Ctx<'_, Pending>) {
        if self.parts_left == 0 {
            cx.close_after_flush();
            return;
        }
        self.parts_left -= 1;
        let _ = cx.net.send(cx.id, &[self.parts_left as u8; PART]);
        cx.net.notify_when_drained(cx.id);
    }

    fn limits(&self) -> Limits {
        Limits {
            head: 512,
            body: 64,
        }
    }

    fn on_request(&mut self, cx: &mut Ctx<'_, Pending>, request: Request) -> Verdict {
        match request.path() {
            "/later" => {
                cx.state.waiting.push(cx.id);
                Verdict::Later
            }
            "/close" => Verdict::Close("asked to".into()),
            "/stream" => {
                // 3 MiB in 64 KiB parts, one per drained out-buffer.
                let head = Response::new(200).with_body("image/png", "");
                cx.net
                    .send(cx.id, &head.head_bytes(STREAM_PARTS * PART))
                    .ok();
                self.parts_left = STREAM_PARTS;
                self.on_write(cx);
                Verdict::Later
            }
            _ => Verdict::Reply(Response::json_html(format!(
                "{} {} {}",
                request.method,
                request.target,
                String::from_utf8_lossy(&request.body)
            ))),
        }
    }
}

/// Starts a reactor serving `Echo` on a free port; a timer answers the
/// late requests every 50 ms.
fn serve() -> u16 {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut net: Reactor<Pending> = Reactor::new().expect("reactor");
        let bound = net
            .listen("127.0.0.1", 0, |_, _| {
                Box::new(HttpConn::for_handler(Echo::default()))
            })
            .expect("listen");
        tx.send(bound[0].port()).expect("port");
        net.register_timer(50, |net, state: &mut Pending| {
            for id in state.waiting.drain(..) {
                send_response(net, id, &Response::json_html("late"));
            }
        });
        let mut state = Pending::default();
        let _ = net.run(&mut state, 20);
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("server port")
}

fn exchange(port: u16, request: &[u8]) -> String {
    String::from_utf8_lossy(&exchange_bytes(port, request)).into_owned()
}

fn exchange_bytes(port: u16, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn requests_refusals_and_late_answers() {
    let port = serve();
    let ok = exchange(
        port,
        b"POST /x?q=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(
        ok,
        "HTTP/1.1 200 OK\r\nConnection:close\r\nContent-Length:15\r\n\
         Content-Type:text/html;charset=utf-8\r\n\r\nPOST /x?q=1 abc"
    );
    // The body is refused from its Content-Length: the head alone is sent.
    let big = exchange(
        port,
        b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 65\r\n\r\n",
    );
    assert!(big.starts_with("HTTP/1.1 413 "), "{big}");
    // Without `Expect`, a head alone is answered, then closed once no body
    // comes for a while.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"POST /x HTTP/1.1\r\nContent-Length: 65\r\n\r\n")
        .expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("closed, not timed out");
    assert!(out.starts_with(b"HTTP/1.1 413 "));
    // A client that sends the whole oversized body still reads the refusal.
    let mut whole = b"POST /x HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n".to_vec();
    whole.resize(whole.len() + 5_000_000, b'z');
    let big = exchange(port, &whole);
    assert!(big.starts_with("HTTP/1.1 413 "), "{big}");
    let bad = exchange(port, b"\x01\x02 nonsense\r\n\r\n");
    assert!(bad.starts_with("HTTP/1.1 400 "), "{bad}");
    let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
    long.resize(600, b'a');
    assert!(exchange(port, &long).starts_with("HTTP/1.1 431 "));
    assert!(exchange(port, b"GET /close HTTP/1.1\r\n\r\n").is_empty());
    let late = exchange(port, b"GET /later HTTP/1.1\r\n\r\n");
    assert!(late.ends_with("\r\n\r\nlate"), "{late}");
    let streamed = exchange_bytes(port, b"GET /stream HTTP/1.1\r\n\r\n");
    let head_len = streamed.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&streamed[..head_len]);
    assert!(
        head.contains(&format!("Content-Length:{}\r\n", STREAM_PARTS * PART)),
        "{head}"
    );
    let body = &streamed[head_len..];
    assert_eq!(body.len(), STREAM_PARTS * PART);
    for (i, part) in body.chunks(PART).enumerate() {
        assert!(part.iter().all(|&b| b as usize == STREAM_PARTS - 1 - i));
    }
    // Still serving after all that.
    assert!(exchange(port, b"GET /y HTTP/1.1\r\n\r\n").ends_with("GET /y "));
}
