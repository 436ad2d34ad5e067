//! PDU ping-pong latency over loopback: through the netlib reactor, and
//! through a bare mio echo loop as the floor.
//!
//! `cargo bench --bench reactor`

#![allow(clippy::unwrap_used, clippy::expect_used)]
// criterion_group! makes an undocumented public function.
#![allow(missing_docs)]

use base::pdu::{ImPdu, PduHeader, IM_PDU_HEADER_LEN};
use criterion::{criterion_group, criterion_main, Criterion};
use mio::net::TcpListener as MioListener;
use mio::{Events, Interest, Poll, Token};
use netlib::{Ctx, ImConn, Reactor};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;

struct EchoConn;

impl ImConn<()> for EchoConn {
    fn on_pdu(&mut self, cx: &mut Ctx<'_, ()>, pdu: ImPdu) {
        cx.send_pdu(&pdu);
    }
}

fn start_reactor_echo() -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut net = Reactor::<()>::new().unwrap();
        let addr = net
            .listen("127.0.0.1", 0, |_, _| {
                Box::new(EchoConn) as Box<dyn ImConn<()>>
            })
            .unwrap()[0];
        tx.send(addr).unwrap();
        net.run(&mut (), 1000).unwrap();
    });
    rx.recv().unwrap()
}

/// The floor: one mio poll loop that echoes bytes back as they come.
fn start_mio_echo() -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut poll = Poll::new().unwrap();
        let mut listener = MioListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        tx.send(listener.local_addr().unwrap()).unwrap();
        poll.registry()
            .register(&mut listener, Token(0), Interest::READABLE)
            .unwrap();
        let mut conns = Vec::new();
        let mut events = Events::with_capacity(64);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            poll.poll(&mut events, None).unwrap();
            for ev in events.iter() {
                if ev.token() == Token(0) {
                    while let Ok((mut s, _)) = listener.accept() {
                        s.set_nodelay(true).unwrap();
                        poll.registry()
                            .register(&mut s, Token(conns.len() + 1), Interest::READABLE)
                            .unwrap();
                        conns.push(s);
                    }
                } else {
                    let s = &mut conns[ev.token().0 - 1];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => s.write_all(&buf[..n]).unwrap(),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(_) => break,
                        }
                    }
                }
            }
        }
    });
    rx.recv().unwrap()
}

fn round_trip(c: &mut TcpStream, frame: &[u8], back: &mut Vec<u8>) {
    c.write_all(frame).unwrap();
    let mut head = [0u8; IM_PDU_HEADER_LEN];
    c.read_exact(&mut head).unwrap();
    let h = PduHeader::parse(&head).unwrap().unwrap();
    back.resize(h.length as usize - IM_PDU_HEADER_LEN, 0);
    c.read_exact(back).unwrap();
}

fn ping_pong(c: &mut Criterion) {
    let mut pdu = ImPdu::new(3, 0x301);
    pdu.set_body(&[7u8; 64]).unwrap();
    let frame = pdu.into_bytes();
    let mut group = c.benchmark_group("ping_pong_80B_pdu");
    for (name, addr) in [
        ("netlib_reactor", start_reactor_echo()),
        ("bare_mio_echo", start_mio_echo()),
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        let mut back = Vec::new();
        group.bench_function(name, |b| b.iter(|| round_trip(&mut s, &frame, &mut back)));
    }
    group.finish();
}

criterion_group!(benches, ping_pong);
criterion_main!(benches);
