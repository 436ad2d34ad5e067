//! The reactor's own tests that look inside it (socket-free ones sit
//! beside their code; the black-box ones are in `netlib/tests/reactor.rs`).

#[cfg(test)]
mod internals {
    use super::super::*;
    use crate::imconn::{Ctx, ImConn};
    use base::pdu::ImPdu;
    use std::io::Read;
    use std::net::SocketAddr;
    use std::time::Duration;

    /// Listens on a free loopback port; each accepted connection's id goes
    /// into the state, its handler from `make`.
    fn listen_recording(
        net: &mut Reactor<Vec<ConnId>>,
        make: fn() -> Box<dyn ImConn<Vec<ConnId>>>,
    ) -> SocketAddr {
        net.listen("127.0.0.1", 0, move |s: &mut Vec<ConnId>, id| {
            s.push(id);
            make()
        })
        .unwrap()[0]
    }

    struct Nop;
    impl ImConn<Vec<ConnId>> for Nop {
        fn on_pdu(&mut self, _cx: &mut Ctx<'_, Vec<ConnId>>, _pdu: ImPdu) {}
    }

    /// The cap counts only unsent bytes, but the already-written prefix of
    /// out_buf is only freed when the backlog reaches exactly 0: a peer that
    /// reads steadily but never quite catches up grows out_buf without bound.
    #[test]
    fn out_buf_memory_follows_the_backlog_with_a_slow_steady_reader() {
        let mut net = Reactor::<Vec<ConnId>>::new().unwrap();
        net.set_out_buf_cap(1 << 20); // 1 MiB
        let addr = listen_recording(&mut net, || Box::new(Nop));
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client.set_nonblocking(true).unwrap();
        let mut state = Vec::new();
        while state.is_empty() {
            net.run_once(&mut state, 10).unwrap();
        }
        let id = state[0];
        {
            let c = net.conns.get(id.key as usize).unwrap();
            socket2::SockRef::from(&c.stream)
                .set_send_buffer_size(16 * 1024)
                .unwrap();
            socket2::SockRef::from(&client)
                .set_recv_buffer_size(16 * 1024)
                .unwrap();
        }
        let chunk = vec![7u8; 64 * 1024];
        let mut buf = vec![0u8; 64 * 1024];
        // phase 1: the peer does not read until we hold a backlog
        while net.backlog(id) < 256 * 1024 {
            net.send(id, &chunk).unwrap();
            net.run_once(&mut state, 0).unwrap();
        }
        // phase 2: the peer reads exactly as fast as we send
        let mut max_len = 0;
        for _ in 0..400 {
            net.send(id, &chunk).unwrap();
            let mut got = 0;
            while got < buf.len() {
                match client.read(&mut buf[..64 * 1024 - got]) {
                    Ok(n) if n > 0 => got += n,
                    _ => net.run_once(&mut state, 1).unwrap(),
                }
            }
            net.run_once(&mut state, 0).unwrap();
            let c = net.conn(id).expect("still open");
            max_len = max_len.max(c.out.held());
            assert!(c.out.backlog() <= 1 << 20);
        }
        assert!(
            max_len <= 2 << 20,
            "out_buf holds {max_len} bytes with a 1 MiB cap"
        );
    }

    /// An accepted connection is registered for writable events only once
    /// it has a backlog, and then its backlog drains; it has the
    /// listener's `TCP_NODELAY`.
    #[test]
    fn an_accepted_connection_waits_to_write_only_with_a_backlog() {
        let mut net = Reactor::<Vec<ConnId>>::new().unwrap();
        let addr = listen_recording(&mut net, || Box::new(Nop));
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let mut state = Vec::new();
        while state.is_empty() {
            net.run_once(&mut state, 10).unwrap();
        }
        let id = state[0];
        let c = net.conn(id).unwrap();
        assert!(
            c.stream.nodelay().unwrap(),
            "TCP_NODELAY as the C++ sets it"
        );
        assert!(!c.write_interest);
        net.send(id, b"small").unwrap();
        net.run_once(&mut state, 0).unwrap();
        assert!(!net.conn(id).unwrap().write_interest, "written at once");
        socket2::SockRef::from(&net.conn(id).unwrap().stream)
            .set_send_buffer_size(16 * 1024)
            .unwrap();
        let chunk = vec![7u8; 64 * 1024];
        while net.backlog(id) == 0 {
            net.send(id, &chunk).unwrap();
            net.run_once(&mut state, 0).unwrap();
        }
        assert!(net.conn(id).unwrap().write_interest);
        // The reader catches up: the writable events drain the backlog.
        client.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while net.backlog(id) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "backlog never drained"
            );
            while client.read(&mut buf).is_ok_and(|n| n > 0) {}
            net.run_once(&mut state, 1).unwrap();
        }
    }

    /// Records what the loop did: accepts, then PDUs.
    struct Note;
    impl ImConn<Vec<&'static str>> for Note {
        fn on_connect(&mut self, cx: &mut Ctx<'_, Vec<&'static str>>) {
            cx.state.push("accepted");
        }
        fn on_pdu(&mut self, cx: &mut Ctx<'_, Vec<&'static str>>, _pdu: ImPdu) {
            cx.state.push("pdu");
        }
    }

    /// A client listener hands a connection over with its first bytes, and
    /// they are handled in the turn that accepts it; a silent connection
    /// waits in the kernel.
    #[test]
    fn a_client_listener_accepts_with_the_first_pdu() {
        use std::io::Write;
        let mut net = Reactor::<Vec<&'static str>>::new().unwrap();
        let addr = net
            .listen_clients("127.0.0.1", 0, |_: &mut Vec<&'static str>, _| {
                Box::new(Note) as Box<dyn ImConn<Vec<&'static str>>>
            })
            .unwrap()[0];
        let mut state = Vec::new();
        let _silent = std::net::TcpStream::connect(addr).unwrap();
        for _ in 0..5 {
            net.run_once(&mut state, 20).unwrap();
        }
        assert!(
            state.is_empty(),
            "a silent connection is held back: {state:?}"
        );
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let mut pdu = ImPdu::new(1, 2);
        pdu.set_body(b"hi").unwrap();
        client.write_all(pdu.as_bytes()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while state.is_empty() {
            assert!(std::time::Instant::now() < deadline, "never accepted");
            net.run_once(&mut state, 20).unwrap();
        }
        assert_eq!(state, ["accepted", "pdu"], "one turn for both");
    }

    /// Past the connection limit a new connection is closed at once and
    /// counted; once one ends, the next is accepted again.
    #[test]
    fn past_the_connection_limit_new_connections_are_closed() {
        let mut net = Reactor::<Vec<ConnId>>::new().unwrap();
        assert!(net.conn_limit > 1000, "the default follows the file limit");
        net.set_conn_limit(2);
        let addr = listen_recording(&mut net, || Box::new(Nop));
        let mut state = Vec::new();
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while state.len() < 2 || net.stats.over_conn_limit_closes < 1 {
            assert!(std::time::Instant::now() < deadline, "{state:?}");
            net.run_once(&mut state, 20).unwrap();
        }
        assert_eq!(net.conn_count(), 2);
        // The refused one reads its end of stream; the others wait.
        let refused = clients
            .iter()
            .filter(|c| {
                c.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                match (&**c).read(&mut [0u8; 1]) {
                    Ok(0) => true,
                    Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
                    Ok(_) => false,
                }
            })
            .count();
        assert_eq!(refused, 1);
        net.close(state[0]);
        net.run_once(&mut state, 0).unwrap();
        let _next = std::net::TcpStream::connect(addr).unwrap();
        while state.len() < 3 {
            assert!(std::time::Instant::now() < deadline, "{state:?}");
            net.run_once(&mut state, 20).unwrap();
        }
        assert_eq!(net.conn_count(), 2);
    }

    /// Counts PDUs and echoes each, as msg_server does a heartbeat.
    struct Echo;
    impl ImConn<Vec<ConnId>> for Echo {
        fn on_pdu(&mut self, cx: &mut Ctx<'_, Vec<ConnId>>, pdu: ImPdu) {
            let _ = cx.net.send_pdu(cx.id, &pdu);
        }
    }

    /// A reactor with one [`Echo`] connection accepted from `client`
    /// (reads time out after 20 ms).
    fn echo_link() -> (
        Reactor<Vec<ConnId>>,
        Vec<ConnId>,
        ConnId,
        std::net::TcpStream,
    ) {
        let mut net = Reactor::<Vec<ConnId>>::new().unwrap();
        let addr = listen_recording(&mut net, || Box::new(Echo));
        let client = std::net::TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut state = Vec::new();
        while state.is_empty() {
            net.run_once(&mut state, 10).unwrap();
        }
        let id = state[0];
        (net, state, id, client)
    }

    /// An idle client holds no in- or out-buffer between its PDUs (issue
    /// 20: a few hundred bytes a connection, times a million clients); a
    /// PDU split across reads is still put together, in order.
    #[test]
    fn an_idle_connection_holds_no_buffers() {
        use std::io::Write;
        let (mut net, mut state, id, mut client) = echo_link();
        let pdu = |seq: u16, body: &[u8]| {
            let mut p = ImPdu::new(1, 2);
            p.set_seq_num(seq);
            p.set_body(body).unwrap();
            p.as_bytes().to_vec()
        };
        let (a, b, c) = (pdu(1, &[1; 300]), pdu(2, &[2; 50]), pdu(3, b""));
        let mut sent = a.clone();
        sent.extend_from_slice(&b);
        sent.extend_from_slice(&c);
        // One whole PDU, then one and a half, then the rest.
        let cuts = [0, a.len(), a.len() + b.len() + 5, sent.len()];
        let mut echoed = Vec::new();
        for w in cuts.windows(2) {
            client.write_all(&sent[w[0]..w[1]]).unwrap();
            let want = echoed.len()
                + if w[1] == cuts[2] {
                    b.len()
                } else {
                    w[1] - w[0]
                };
            let mut buf = [0u8; 1024];
            while echoed.len() < want {
                net.run_once(&mut state, 10).unwrap();
                if let Ok(n) = client.read(&mut buf) {
                    echoed.extend_from_slice(&buf[..n]);
                }
            }
            let conn = net.conn(id).expect("still open");
            if w[1] == cuts[2] {
                assert_eq!(conn.in_buf.len(), 5, "half a PDU waits for the rest");
            } else {
                assert_eq!(conn.in_buf.capacity(), 0, "no in-buffer kept");
            }
            assert_eq!(conn.out.capacity(), 0, "no out-buffer kept");
        }
        assert_eq!(echoed, sent, "every PDU echoed whole, in order");
    }

    /// A read shorter than asked for ends the event's turn (no read that
    /// would only say `WouldBlock`): what the peer sends after it, and its
    /// FIN, sent alone or together with a last PDU, still arrive as new
    /// events.
    #[test]
    fn after_a_short_read_later_data_and_the_peers_fin_still_arrive() {
        use std::io::Write;
        for fin_with_last_pdu in [false, true] {
            let (mut net, mut state, id, mut client) = echo_link();
            let mut sent = Vec::new();
            let mut echoed = Vec::new();
            let mut buf = [0u8; 1024];
            for seq in 1..=3u16 {
                let mut p = ImPdu::new(1, 2);
                p.set_seq_num(seq);
                p.set_body(&[seq as u8; 40]).unwrap();
                client.write_all(p.as_bytes()).unwrap();
                sent.extend_from_slice(p.as_bytes());
                if seq == 3 && fin_with_last_pdu {
                    client.shutdown(std::net::Shutdown::Write).unwrap();
                }
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while echoed.len() < sent.len() {
                    assert!(std::time::Instant::now() < deadline, "PDU {seq} not echoed");
                    net.run_once(&mut state, 10).unwrap();
                    if let Ok(n) = client.read(&mut buf) {
                        echoed.extend_from_slice(&buf[..n]);
                    }
                }
            }
            assert_eq!(echoed, sent, "each PDU echoed, in order");
            if !fin_with_last_pdu {
                assert!(net.conn(id).is_some(), "open while the peer is");
                client.shutdown(std::net::Shutdown::Write).unwrap();
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while net.conn(id).is_some() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the peer's FIN was never seen (with the last PDU: {fin_with_last_pdu})"
                );
                net.run_once(&mut state, 10).unwrap();
            }
        }
    }

    /// Keeps the capacity of every frame it is handed.
    struct Frames;
    impl ImConn<Vec<usize>> for Frames {
        fn on_pdu(&mut self, cx: &mut Ctx<'_, Vec<usize>>, pdu: ImPdu) {
            cx.state.push(pdu.into_bytes().capacity());
        }
    }

    /// A small PDU read into a busy link's big in-buffer is copied out to a
    /// frame of its own size: a handler may keep a PDU a while, and it must
    /// not pin the link's buffer; a PDU read on its own is its buffer.
    #[test]
    fn a_frame_never_pins_a_big_buffer() {
        use std::io::Write;
        let mut net = Reactor::<Vec<usize>>::new().unwrap();
        let addr = net
            .listen("127.0.0.1", 0, |_: &mut Vec<usize>, _| {
                Box::new(Frames) as Box<dyn ImConn<Vec<usize>>>
            })
            .unwrap()[0];
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let pdu = |body: &[u8]| {
            let mut p = ImPdu::new(1, 2);
            p.set_body(body).unwrap();
            p.as_bytes().to_vec()
        };
        let mut frames = Vec::new();
        let mut pump = |frames: &mut Vec<usize>, n: usize| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while frames.len() < n {
                assert!(std::time::Instant::now() < deadline, "only {frames:?}");
                net.run_once(frames, 10).unwrap();
            }
        };
        // One PDU alone: its buffer, exactly its size.
        let small = pdu(&[1; 100]);
        client.write_all(&small).unwrap();
        pump(&mut frames, 1);
        assert_eq!(frames[0], small.len());
        // A big PDU and half a small one grow the in-buffer past 4 KiB, and
        // it is kept for the rest; the small PDU then fills it exactly.
        let mut burst = pdu(&[2; 20_000]);
        burst.extend_from_slice(&small[..50]);
        client.write_all(&burst).unwrap();
        pump(&mut frames, 2);
        std::thread::sleep(Duration::from_millis(20));
        client.write_all(&small[50..]).unwrap();
        pump(&mut frames, 3);
        assert!(
            frames[2] <= small.len() + small.len() / 4,
            "a {}-byte PDU in a frame of {} bytes",
            small.len(),
            frames[2]
        );
    }

    #[derive(Default)]
    struct St {
        ids: Vec<ConnId>,
        blackhole: Option<SocketAddr>,
        out: Option<ConnId>,
        out_closed: bool,
    }
    struct Role(usize);
    struct Out;
    impl ImConn<St> for Out {
        fn on_pdu(&mut self, _cx: &mut Ctx<'_, St>, _pdu: ImPdu) {}
        fn on_close(&mut self, cx: &mut Ctx<'_, St>) {
            cx.state.out_closed = true;
        }
    }
    impl ImConn<St> for Role {
        fn on_pdu(&mut self, cx: &mut Ctx<'_, St>, _pdu: ImPdu) {
            match self.0 {
                1 => {
                    let a = cx.state.ids[0];
                    cx.net.close(a); // e.g. a duplicate login kicks A
                }
                2 => {
                    let bh = cx.state.blackhole.unwrap();
                    let id = cx
                        .net
                        .connect(&bh.ip().to_string(), bh.port(), Box::new(Out))
                        .unwrap();
                    cx.state.out = Some(id);
                }
                _ => {}
            }
        }
    }

    /// A stale event of a connection reaped earlier in the same poll batch
    /// is dispatched to whatever new connection took its slab slot.
    #[test]
    fn a_stale_event_never_reaches_a_new_connection_in_the_same_slot() {
        use std::io::Write;
        // a listener whose accept queue is full: connects to it stay in progress
        let bh = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        bh.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        bh.listen(0).unwrap();
        let bh_addr = bh.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..3 {
            if let Ok(s) =
                std::net::TcpStream::connect_timeout(&bh_addr, Duration::from_millis(200))
            {
                fillers.push(s);
            }
        }
        let mut net = Reactor::<St>::new().unwrap();
        let addr = net
            .listen("127.0.0.1", 0, |s: &mut St, id| {
                s.ids.push(id);
                Box::new(Role(s.ids.len() - 1)) as Box<dyn ImConn<St>>
            })
            .unwrap()[0];
        let mut st = St {
            blackhole: Some(bh_addr),
            ..Default::default()
        };
        let ca = std::net::TcpStream::connect(addr).unwrap();
        let mut cx = std::net::TcpStream::connect(addr).unwrap();
        let mut cy = std::net::TcpStream::connect(addr).unwrap();
        while st.ids.len() < 3 {
            net.run_once(&mut st, 10).unwrap();
        }
        for _ in 0..5 {
            net.run_once(&mut st, 10).unwrap();
        }
        let p = ImPdu::new(1, 1);
        cx.write_all(p.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        cy.write_all(p.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(ca);
        std::thread::sleep(Duration::from_millis(50));
        net.run_once(&mut st, 10).unwrap();
        let out = st.out.expect("Y connected");
        assert_eq!(out.key, st.ids[0].key, "the new link took A's slot");
        assert!(
            !st.out_closed && net.is_open(out),
            "in-progress connect was closed by A's stale hang-up event"
        );
    }
}

mod timers {
    use super::super::*;
    /// Timer A (due) deletes timer B (also due) and registers C, which takes
    /// B's slot: C runs at once in this same pass, before its interval.
    #[test]
    fn a_timer_registered_in_a_freed_due_slot_waits_its_interval() {
        let clock = crate::ManualClock::new(0);
        let mut net = Reactor::<Vec<&'static str>>::with_clock(clock.clone()).unwrap();
        let b = std::rc::Rc::new(std::cell::Cell::new(None));
        let b2 = b.clone();
        net.register_timer(1, move |net, _s| {
            if let Some(id) = b2.take() {
                net.delete_timer(id);
                net.register_timer(60_000, |_, s: &mut Vec<&'static str>| s.push("C ran"));
            }
        });
        b.set(Some(net.register_timer(1, |_, _| {})));
        clock.advance(1);
        let mut s = Vec::new();
        net.run_timers(&mut s);
        assert!(
            s.is_empty(),
            "a 60 s timer ran right after registration: {s:?}"
        );
    }
}
