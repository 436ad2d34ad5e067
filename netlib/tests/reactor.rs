//! The reactor over real loopback sockets: an echo server on one thread,
//! plain blocking clients on others.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base::pdu::{ImPdu, IM_PDU_HEADER_LEN};
use crossbeam_channel::{bounded, Receiver};
use netlib::{ConnId, Ctx, Heartbeat, ImConn, ManualClock, Reactor, Remote};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Default)]
struct Echo {
    pdus: u64,
    closed: u64,
    timer_ticks: u64,
    loop_iterations: u64,
    /// `pdus` when the last loop callback ran, and the most PDUs handled
    /// between two loop callbacks (one loop turn).
    pdus_at_last_loop: u64,
    most_pdus_in_a_turn: u64,
}

struct EchoConn;

impl ImConn<Echo> for EchoConn {
    fn on_pdu(&mut self, cx: &mut Ctx<'_, Echo>, pdu: ImPdu) {
        cx.state.pdus += 1;
        cx.send_pdu(&pdu);
    }
    fn on_close(&mut self, cx: &mut Ctx<'_, Echo>) {
        cx.state.closed += 1;
    }
}

struct Server {
    addr: SocketAddr,
    remote: Remote<Echo>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(setup: impl FnOnce(&mut Reactor<Echo>) + Send + 'static, wait_ms: u64) -> Server {
        let (tx, rx) = bounded(1);
        let thread = std::thread::spawn(move || {
            let mut net = Reactor::<Echo>::new().unwrap();
            let addrs = net
                .listen("127.0.0.1", 0, |_s: &mut Echo, _id| {
                    Box::new(EchoConn) as Box<dyn ImConn<Echo>>
                })
                .unwrap();
            setup(&mut net);
            tx.send((addrs[0], net.remote())).unwrap();
            let mut state = Echo::default();
            net.run(&mut state, wait_ms).unwrap();
        });
        let (addr, remote) = rx.recv().unwrap();
        Server {
            addr,
            remote,
            thread: Some(thread),
        }
    }

    /// Reads a value out of the loop thread.
    fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Reactor<Echo>, &mut Echo) -> T + Send + 'static,
    ) -> T {
        let (tx, rx) = bounded(1);
        self.remote.run(move |net, s| {
            let _ = tx.send(f(net, s));
        });
        rx.recv_timeout(Duration::from_secs(30)).unwrap()
    }

    /// Polls the loop until `cond` holds (bounded: 30 s).
    fn wait_until(
        &self,
        cond: impl Fn(&mut Reactor<Echo>, &mut Echo) -> bool + Send + Sync + Copy + 'static,
    ) {
        for _ in 0..3000 {
            if self.query(cond) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("condition not reached in 30 s");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.remote.run(|net, _| net.stop());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn pdu(seq: u16, body: &[u8]) -> ImPdu {
    let mut p = ImPdu::new(3, 0x301);
    p.set_seq_num(seq);
    p.set_body(body).unwrap();
    p
}

fn read_pdu(s: &mut TcpStream) -> ImPdu {
    base::pdu::read_frame(s).unwrap()
}

#[test]
fn thousand_connections_exchange_pdus() {
    let server = Server::start(|_| {}, 100);
    let mut clients: Vec<TcpStream> = (0..1000).map(|_| connect(server.addr)).collect();
    for round in 0..3u16 {
        for (i, c) in clients.iter_mut().enumerate() {
            let body = format!("client {i} round {round}");
            c.write_all(pdu(round, body.as_bytes()).as_bytes()).unwrap();
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let back = read_pdu(c);
            assert_eq!(back.seq_num(), round);
            assert_eq!(back.body(), format!("client {i} round {round}").as_bytes());
        }
    }
    assert_eq!(server.query(|_, s| s.pdus), 3000);
    drop(clients);
    server.wait_until(|net, s| s.closed == 1000 && net.conn_count() == 0);
}

#[test]
fn ten_mib_pdu_arrives_whole_and_in_order() {
    let server = Server::start(|_| {}, 100);
    let mut c = connect(server.addr);
    let body: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let big = pdu(1, &body);
    let small = pdu(2, b"after");
    // Write from another thread while this one reads, so both directions
    // fill their socket buffers and the server hits WouldBlock.
    let mut w = c.try_clone().unwrap();
    let (bytes_big, bytes_small) = (big.as_bytes().to_vec(), small.as_bytes().to_vec());
    let writer = std::thread::spawn(move || {
        w.write_all(&bytes_big).unwrap();
        w.write_all(&bytes_small).unwrap();
    });
    let back = read_pdu(&mut c);
    assert_eq!(back.seq_num(), 1);
    assert!(back.body() == body.as_slice(), "10 MiB body differs");
    assert_eq!(read_pdu(&mut c).body(), b"after");
    writer.join().unwrap();
}

#[test]
fn slow_reader_backlog_is_kept_in_order() {
    let server = Server::start(|_| {}, 100);
    let mut c = connect(server.addr);
    // Send many PDUs without reading: the server's echoes back up in its
    // out-buffer; then read them all and check order.
    let n = 2000u16;
    let body = vec![7u8; 8 * 1024];
    let mut w = c.try_clone().unwrap();
    let frames: Vec<Vec<u8>> = (0..n).map(|i| pdu(i, &body).into_bytes()).collect();
    let writer = std::thread::spawn(move || {
        for f in frames {
            w.write_all(&f).unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..n {
        assert_eq!(read_pdu(&mut c).seq_num(), i);
    }
    writer.join().unwrap();
}

#[test]
fn peer_closing_mid_pdu_is_a_clean_close() {
    let server = Server::start(|_| {}, 100);
    let mut c = connect(server.addr);
    let p = pdu(1, b"0123456789");
    c.write_all(&p.as_bytes()[..20]).unwrap();
    drop(c);
    server.wait_until(|net, s| s.closed == 1 && net.conn_count() == 0);
    assert_eq!(server.query(|_, s| s.pdus), 0, "no partial PDU delivered");
}

#[test]
fn garbage_closes_only_that_connection() {
    let server = Server::start(|_| {}, 100);
    let mut good = connect(server.addr);
    let mut bad = connect(server.addr);
    let mut huge = connect(server.addr);
    good.write_all(pdu(1, b"before").as_bytes()).unwrap();
    assert_eq!(read_pdu(&mut good).body(), b"before");

    // Length 5 (below the header) and a 4 GiB announcement.
    bad.write_all(&[0, 0, 0, 5, 0, 1, 0, 0, 0, 3, 3, 1, 0, 0, 0, 0])
        .unwrap();
    huge.write_all(&[0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 3, 3, 1, 0, 0, 0, 0])
        .unwrap();
    for s in [&mut bad, &mut huge] {
        let mut buf = [0u8; 16];
        // The server closes: read sees EOF (0) or a reset.
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("server answered garbage with {n} bytes"),
        }
    }
    server.wait_until(|_, s| s.closed == 2);
    good.write_all(pdu(2, b"after").as_bytes()).unwrap();
    assert_eq!(read_pdu(&mut good).body(), b"after");
    assert_eq!(server.query(|net, _| net.conn_count()), 1);
}

#[test]
fn timers_fire_at_their_intervals() {
    // On a manual clock: each 20 ms step makes the 20 ms timer run once,
    // never before it is due; the deleted one never runs.
    let clock = ManualClock::new(0);
    let mut net = Reactor::<Echo>::with_clock(clock.clone()).unwrap();
    net.register_timer(20, |_, s: &mut Echo| s.timer_ticks += 1);
    let doomed = net.register_timer(10, |_, s: &mut Echo| s.timer_ticks += 1000);
    net.delete_timer(doomed);
    net.add_loop(|_, s: &mut Echo| s.loop_iterations += 1);
    let mut state = Echo::default();
    net.run_once(&mut state, 0).unwrap();
    assert_eq!(state.timer_ticks, 0, "not due at 0 ms");
    for step in 1..=50 {
        clock.advance(19);
        net.run_once(&mut state, 0).unwrap();
        assert_eq!(
            state.timer_ticks,
            step - 1,
            "not due {} ms in",
            step * 20 - 1
        );
        clock.advance(1);
        net.run_once(&mut state, 0).unwrap();
        assert_eq!(state.timer_ticks, step, "due at {} ms", step * 20);
    }
    assert_eq!(state.loop_iterations, 101, "loop callbacks run every turn");
}

#[test]
fn reply_from_another_thread_needs_no_tick() {
    // No timers, an hour-long poll timeout and a clock that never moves
    // (so no connection tick): only the waker can make the loop send the
    // reply.
    struct Hold;
    impl ImConn<Echo> for Hold {
        fn on_pdu(&mut self, _cx: &mut Ctx<'_, Echo>, _pdu: ImPdu) {}
    }
    let (tx, rx): (_, Receiver<(SocketAddr, Remote<Echo>)>) = bounded(1);
    let (id_tx, id_rx) = bounded(1);
    let thread = std::thread::spawn(move || {
        let mut net = Reactor::<Echo>::with_clock(ManualClock::new(0)).unwrap();
        let addr = net
            .listen("127.0.0.1", 0, move |_s: &mut Echo, id| {
                let _ = id_tx.send(id);
                Box::new(Hold) as Box<dyn ImConn<Echo>>
            })
            .unwrap()[0];
        tx.send((addr, net.remote())).unwrap();
        let mut state = Echo::default();
        net.run(&mut state, 3_600_000).unwrap();
    });
    let (addr, remote) = rx.recv().unwrap();
    let mut c = connect(addr);
    let id = id_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    // Give the loop time to go back to sleep in poll.
    std::thread::sleep(Duration::from_millis(100));
    let worker = std::thread::spawn(move || {
        assert!(remote.send(id, pdu(42, b"from a worker").into_bytes()));
        remote
    });
    let back = read_pdu(&mut c);
    assert_eq!(back.seq_num(), 42);
    assert_eq!(back.body(), b"from a worker");
    let remote = worker.join().unwrap();
    remote.run(|net, _| net.stop());
    thread.join().unwrap();
}

#[test]
fn ten_thousand_connect_close_cycles_leave_the_table_empty() {
    let server = Server::start(|_| {}, 100);
    for _ in 0..100 {
        let batch: Vec<TcpStream> = (0..100).map(|_| connect(server.addr)).collect();
        drop(batch);
    }
    server.wait_until(|net, s| s.closed == 10_000 && net.conn_count() == 0);
}

#[test]
fn outgoing_connect_confirms_or_closes() {
    #[derive(Default)]
    struct Outcome {
        confirmed: u32,
        closed: u32,
    }
    struct Probe;
    impl ImConn<Outcome> for Probe {
        fn on_confirm(&mut self, cx: &mut Ctx<'_, Outcome>) {
            cx.state.confirmed += 1;
            cx.close();
        }
        fn on_pdu(&mut self, _cx: &mut Ctx<'_, Outcome>, _pdu: ImPdu) {}
        fn on_close(&mut self, cx: &mut Ctx<'_, Outcome>) {
            cx.state.closed += 1;
        }
    }
    let server = Server::start(|_| {}, 100);
    // A port nothing listens on: bind then drop a listener to find one.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut net = Reactor::<Outcome>::new().unwrap();
    let mut state = Outcome::default();
    net.connect("127.0.0.1", server.addr.port(), Box::new(Probe))
        .unwrap();
    net.connect("127.0.0.1", dead.port(), Box::new(Probe))
        .unwrap();
    for _ in 0..500 {
        net.run_once(&mut state, 10).unwrap();
        if state.closed == 2 {
            break;
        }
    }
    assert_eq!(state.confirmed, 1);
    assert_eq!(state.closed, 2);
    assert_eq!(net.conn_count(), 0);
}

#[test]
fn peer_that_never_reads_is_closed_at_the_cap() {
    let server = Server::start(|net| net.set_out_buf_cap(256 * 1024), 100);
    let c = connect(server.addr);
    let mut w = c.try_clone().unwrap();
    let frame = pdu(1, &vec![1u8; 64 * 1024]).into_bytes();
    // Echoes pile up on the server since we never read; the writer stops
    // when the server closes (or after 64 MiB).
    let writer = std::thread::spawn(move || {
        for _ in 0..1024 {
            if w.write_all(&frame).is_err() {
                break;
            }
        }
    });
    server.wait_until(|net, s| s.closed == 1 && net.conn_count() == 0);
    drop(c);
    writer.join().unwrap();
}

#[test]
fn signals_reach_the_loop_thread() {
    let (tx, rx) = bounded(1);
    let server = Server::start(
        move |net| {
            net.handle_signals(&[signal_hook::consts::SIGUSR2], move |_, _, sig| {
                let _ = tx.send((sig, std::thread::current().name().map(String::from)));
            })
            .unwrap();
        },
        100,
    );
    signal_hook::low_level::raise(signal_hook::consts::SIGUSR2).unwrap();
    let (sig, _thread) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(sig, signal_hook::consts::SIGUSR2);
    drop(server);
}

/// Server links' rule (5 s heartbeat, 30 s timeout) on a manual clock,
/// one connection tick (1 s) at a time.
#[test]
fn keep_alive_sends_heartbeats_then_drops_a_silent_peer() {
    #[derive(Default)]
    struct Links {
        ids: Vec<netlib::ConnId>,
        closed: Vec<netlib::ConnId>,
    }
    struct Watched;
    impl ImConn<Links> for Watched {
        fn on_connect(&mut self, cx: &mut Ctx<'_, Links>) {
            cx.state.ids.push(cx.id);
        }
        fn on_pdu(&mut self, _cx: &mut Ctx<'_, Links>, _pdu: ImPdu) {}
        fn on_timer(&mut self, cx: &mut Ctx<'_, Links>, now: u64) {
            assert_eq!(now, cx.now_ms(), "on_timer gets the reactor's time");
            cx.keep_alive(Heartbeat::SERVER, now);
        }
        fn on_close(&mut self, cx: &mut Ctx<'_, Links>) {
            cx.state.closed.push(cx.id);
        }
    }
    let clock = ManualClock::new(0);
    let mut net = Reactor::<Links>::with_clock(clock.clone()).unwrap();
    let addr = net
        .listen("127.0.0.1", 0, |_s: &mut Links, _id| {
            Box::new(Watched) as Box<dyn ImConn<Links>>
        })
        .unwrap()[0];
    let mut silent = connect(addr);
    let mut talker = connect(addr);
    let mut st = Links::default();
    for _ in 0..3000 {
        if st.ids.len() == 2 {
            break;
        }
        net.run_once(&mut st, 10).unwrap();
    }
    let (a, b) = (st.ids[0], st.ids[1]);
    assert_eq!(net.conn_ticks(a), Some((0, 0)));
    let tick_to = |net: &mut Reactor<Links>, st: &mut Links, t: u64| {
        while net.now_ms() < t {
            clock.advance(1000);
            net.run_once(st, 0).unwrap();
        }
    };
    // Quiet for 5 s is not yet "more than 5 s": the heartbeat goes at 6 s.
    tick_to(&mut net, &mut st, 5_000);
    assert_eq!(net.conn_ticks(a), Some((0, 0)));
    tick_to(&mut net, &mut st, 6_000);
    assert_eq!(net.conn_ticks(a), Some((6_000, 0)));
    let hb = read_pdu(&mut silent);
    assert_eq!(hb.command_id(), netlib::imconn::CID_OTHER_HEARTBEAT);
    assert_eq!(hb.service_id(), netlib::imconn::SID_OTHER);
    // The talker answers at 20 s; the loop sees it on this clock's 20 s.
    tick_to(&mut net, &mut st, 20_000);
    talker
        .write_all(netlib::imconn::heartbeat_pdu().as_bytes())
        .unwrap();
    for _ in 0..3000 {
        if net.conn_ticks(b).map(|(_, recv)| recv) == Some(20_000) {
            break;
        }
        net.run_once(&mut st, 10).unwrap();
    }
    assert_eq!(net.conn_ticks(b).map(|(_, recv)| recv), Some(20_000));
    // Silent for 30 s is kept, for 31 s closed; the talker lasts until 51 s.
    tick_to(&mut net, &mut st, 30_000);
    assert!(net.is_open(a) && st.closed.is_empty());
    tick_to(&mut net, &mut st, 31_000);
    assert_eq!(st.closed, vec![a]);
    assert!(net.is_open(b));
    tick_to(&mut net, &mut st, 50_000);
    assert!(net.is_open(b));
    tick_to(&mut net, &mut st, 51_000);
    assert_eq!(st.closed, vec![a, b]);
    // Heartbeats at 6, 12, 18, 24 and 30 s, then the close.
    let mut rest = Vec::new();
    let _ = silent.read_to_end(&mut rest);
    assert_eq!(
        rest.len(),
        4 * IM_PDU_HEADER_LEN,
        "the first was read above"
    );
}

#[test]
fn raw_connections_get_bytes_not_pdus() {
    // A line-echo server: what an HTTP port does, in miniature.
    struct Lines;
    impl ImConn<Echo> for Lines {
        fn on_pdu(&mut self, _cx: &mut Ctx<'_, Echo>, _pdu: ImPdu) {
            panic!("raw connections never get PDUs");
        }
        fn raw_bytes(&self) -> bool {
            true
        }
        fn on_bytes(&mut self, cx: &mut Ctx<'_, Echo>, in_buf: &mut Vec<u8>) {
            while let Some(end) = in_buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = in_buf.drain(..=end).collect();
                if line == b"quit\n" {
                    cx.close_after_flush();
                    return;
                }
                cx.net.send(cx.id, &line).unwrap();
            }
        }
    }
    let (tx, rx) = bounded(1);
    let thread = std::thread::spawn(move || {
        let mut net = Reactor::<Echo>::new().unwrap();
        let addr = net
            .listen("127.0.0.1", 0, |_s: &mut Echo, _id| {
                Box::new(Lines) as Box<dyn ImConn<Echo>>
            })
            .unwrap()[0];
        tx.send((addr, net.remote())).unwrap();
        net.run(&mut Echo::default(), 100).unwrap();
    });
    let (addr, remote) = rx.recv().unwrap();
    let mut c = connect(addr);
    // 16 bytes of "header" that would be garbage as a PDU: raw mode ignores it.
    c.write_all(b"\x00\x00\x00\x01 not a pdu\nsecond ").unwrap();
    c.write_all(b"line\nquit\n").unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"\x00\x00\x00\x01 not a pdu\nsecond line\n");
    remote.run(|net, _| net.stop());
    thread.join().unwrap();
}

#[test]
fn a_half_closed_peer_still_gets_the_whole_reply() {
    // Answers "GET\n" with 8 MiB (more than the socket takes at once).
    struct Big;
    impl ImConn<Echo> for Big {
        fn on_pdu(&mut self, _cx: &mut Ctx<'_, Echo>, _pdu: ImPdu) {}
        fn raw_bytes(&self) -> bool {
            true
        }
        fn on_bytes(&mut self, cx: &mut Ctx<'_, Echo>, in_buf: &mut Vec<u8>) {
            if in_buf.ends_with(b"GET\n") {
                in_buf.clear();
                let body: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
                cx.net.send(cx.id, &body).unwrap();
                cx.close_after_flush();
            }
        }
    }
    let (tx, rx) = bounded(1);
    let thread = std::thread::spawn(move || {
        let mut net = Reactor::<Echo>::new().unwrap();
        let addr = net
            .listen("127.0.0.1", 0, |_s: &mut Echo, _id| {
                Box::new(Big) as Box<dyn ImConn<Echo>>
            })
            .unwrap()[0];
        tx.send((addr, net.remote())).unwrap();
        net.run(&mut Echo::default(), 100).unwrap();
    });
    let (addr, remote) = rx.recv().unwrap();
    let mut c = connect(addr);
    c.write_all(b"GET\n").unwrap();
    // HTTP/1.0 style: done sending, still reading.
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), 8 * 1024 * 1024, "the whole reply, then EOF");
    assert!(got.iter().enumerate().all(|(i, &b)| b == (i % 253) as u8));
    remote.run(|net, _| net.stop());
    thread.join().unwrap();
}

#[test]
fn a_deleted_timer_id_never_deletes_another_timer() {
    let clock = ManualClock::new(0);
    let mut net = Reactor::<Echo>::with_clock(clock.clone()).unwrap();
    let old = net.register_timer(5, |_, s: &mut Echo| s.timer_ticks += 1000);
    net.delete_timer(old);
    // Takes the freed slot.
    net.register_timer(5, |_, s: &mut Echo| s.timer_ticks += 1);
    net.delete_timer(old); // stale: must be a no-op
    let mut state = Echo::default();
    clock.advance(5);
    net.run_once(&mut state, 0).unwrap();
    assert_eq!(
        state.timer_ticks, 1,
        "the live timer runs, the deleted one never"
    );
}

#[test]
fn a_burst_of_pdus_is_handled_over_several_turns_in_order() {
    // 2,000 PDUs in ten writes, the later ones arriving while earlier ones
    // still wait in the buffer: the loop handles at most 64 of them per
    // turn (timers, heartbeats and other connections run in between), and
    // echoes them all, in order.
    let server = Server::start(
        |net| {
            net.add_loop(|_, s: &mut Echo| {
                s.most_pdus_in_a_turn = s.most_pdus_in_a_turn.max(s.pdus - s.pdus_at_last_loop);
                s.pdus_at_last_loop = s.pdus;
            });
        },
        100,
    );
    let mut c = connect(server.addr);
    let mut writer = c.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        for batch in 0..10u16 {
            let mut burst = Vec::new();
            for i in 0..200u16 {
                burst.extend_from_slice(pdu(batch * 200 + i, b"fan").as_bytes());
            }
            writer.write_all(&burst).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    for seq in 0..2000u16 {
        assert_eq!(read_pdu(&mut c).seq_num(), seq);
    }
    sender.join().unwrap();
    let most = server.query(|_, s| s.most_pdus_in_a_turn);
    assert!(
        (1..=64).contains(&most),
        "{most} PDUs of one connection in one turn"
    );
}

#[test]
fn a_connection_storm_is_accepted_over_several_turns() {
    // 600 connects already in the accept queue when the loop first looks:
    // one turn takes at most 256 of them, and the loop callbacks (as the
    // timers and heartbeats) run between turns.
    #[derive(Default)]
    struct Storm {
        accepted: usize,
        after_each_turn: Vec<usize>,
    }
    struct Quiet;
    impl ImConn<Storm> for Quiet {
        fn on_pdu(&mut self, _cx: &mut Ctx<'_, Storm>, _pdu: ImPdu) {}
    }
    let mut net = Reactor::<Storm>::new().unwrap();
    let addr = net
        .listen("127.0.0.1", 0, |s: &mut Storm, _id| {
            s.accepted += 1;
            Box::new(Quiet) as Box<dyn ImConn<Storm>>
        })
        .unwrap()[0];
    net.add_loop(|_, s: &mut Storm| s.after_each_turn.push(s.accepted));
    // Each connect returns once the kernel has queued the connection.
    let clients: Vec<TcpStream> = (0..600).map(|_| connect(addr)).collect();
    let mut state = Storm::default();
    for _ in 0..100 {
        net.run_once(&mut state, 100).unwrap();
        if state.accepted == 600 {
            break;
        }
    }
    assert_eq!(state.after_each_turn, vec![256, 512, 600]);
    assert_eq!(net.conn_count(), 600);
    drop(clients);
}

#[test]
fn a_full_inbox_refuses_at_once_and_counts() {
    let mut net = Reactor::<Echo>::new().unwrap();
    net.set_inbox_bound(2);
    let remote = net.remote();
    assert!(remote.run(|_, s| s.pdus += 1));
    assert!(remote.run(|_, s| s.pdus += 1));
    assert!(
        !remote.run(|_, s| s.pdus += 100),
        "a third message is refused"
    );
    let stats = net.inbox_stats();
    assert_eq!((stats.queued, stats.bound), (2, 2));
    assert_eq!((stats.full, stats.refused), (1, 1));
    let mut state = Echo::default();
    net.run_once(&mut state, 0).unwrap();
    assert_eq!(state.pdus, 2, "what was accepted runs, the refused never");
    assert_eq!(remote.inbox_stats().queued, 0);
    assert!(remote.run(|_, s| s.pdus += 1), "room again once drained");
}

#[test]
fn a_send_with_a_timeout_waits_for_room_then_gives_up() {
    let mut net = Reactor::<Echo>::new().unwrap();
    net.set_inbox_bound(1);
    let remote = net.remote();
    assert!(remote.run(|_, s| s.pdus += 1));
    // A short timeout on an inbox nobody drains: refused.
    assert!(!remote.run_timeout(|_, s| s.pdus += 100, Duration::from_millis(10)));
    // A worker waiting for room gets it as soon as the loop drains.
    let worker = {
        let remote = remote.clone();
        std::thread::spawn(move || remote.run_timeout(|_, s| s.pdus += 10, Duration::from_secs(30)))
    };
    for _ in 0..3000 {
        if net.inbox_stats().waiting == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(net.inbox_stats().waiting, 1, "the worker waits for room");
    let mut state = Echo::default();
    net.run_once(&mut state, 0).unwrap();
    assert!(worker.join().unwrap(), "the waiting message got in");
    net.run_once(&mut state, 0).unwrap();
    assert_eq!(state.pdus, 11);
    let stats = net.inbox_stats();
    assert_eq!((stats.full, stats.refused, stats.queued), (2, 1, 0));
}

#[test]
fn notify_when_drained_feeds_a_long_body_part_by_part() {
    // Sends 2,000 parts of 1 KiB, the next on each `on_write` after
    // `notify_when_drained`: the kernel takes most parts at once, when no
    // backlog waits for the socket, and each still gets its `on_write`;
    // 4 MiB parts fill the socket, and those get theirs after the drain.
    struct Parts {
        left: usize,
        size: usize,
    }
    impl Parts {
        fn next(&mut self, cx: &mut Ctx<'_, Echo>) {
            if self.left == 0 {
                cx.close_after_flush();
                return;
            }
            self.left -= 1;
            let byte = (self.left % 251) as u8;
            cx.net.send(cx.id, &vec![byte; self.size]).unwrap();
            cx.net.notify_when_drained(cx.id);
        }
    }
    impl ImConn<Echo> for Parts {
        fn on_pdu(&mut self, _cx: &mut Ctx<'_, Echo>, _pdu: ImPdu) {}
        fn raw_bytes(&self) -> bool {
            true
        }
        fn on_bytes(&mut self, cx: &mut Ctx<'_, Echo>, in_buf: &mut Vec<u8>) {
            if in_buf.contains(&b'\n') {
                in_buf.clear();
                self.next(cx);
            }
        }
        fn on_write(&mut self, cx: &mut Ctx<'_, Echo>) {
            self.next(cx);
        }
    }
    for (parts, size) in [(2_000usize, 1024usize), (4, 4 << 20)] {
        let (tx, rx) = bounded(1);
        let thread = std::thread::spawn(move || {
            let mut net = Reactor::<Echo>::new().unwrap();
            let addr = net
                .listen("127.0.0.1", 0, move |_s: &mut Echo, _id| {
                    Box::new(Parts { left: parts, size }) as Box<dyn ImConn<Echo>>
                })
                .unwrap()[0];
            tx.send((addr, net.remote())).unwrap();
            net.run(&mut Echo::default(), 1_000).unwrap();
        });
        let (addr, remote) = rx.recv().unwrap();
        let mut c = connect(addr);
        c.write_all(b"go\n").unwrap();
        let mut all = Vec::new();
        c.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), parts * size);
        for (i, part) in all.chunks(size).enumerate() {
            let want = ((parts - 1 - i) % 251) as u8;
            assert!(part.iter().all(|&b| b == want), "part {i} in order");
        }
        remote.run(|net, _| net.stop());
        thread.join().unwrap();
    }
}

#[test]
fn a_paused_connection_is_not_read_nor_timed_out_and_resumes_in_order() {
    // The handler pauses its connection after every 3rd PDU (as db_proxy
    // pauses a link over its bound); nothing more is handled until the
    // test resumes it, a silent-link timeout does not fire meanwhile, and
    // the PDUs are handled in order once it is resumed.
    struct Pauser {
        seen: Vec<u16>,
        id: Option<ConnId>,
    }
    struct PauseConn;
    impl ImConn<Pauser> for PauseConn {
        fn on_connect(&mut self, cx: &mut Ctx<'_, Pauser>) {
            cx.state.id = Some(cx.id);
        }
        fn on_pdu(&mut self, cx: &mut Ctx<'_, Pauser>, pdu: ImPdu) {
            cx.state.seen.push(pdu.seq_num());
            if cx.state.seen.len().is_multiple_of(3) {
                cx.net.pause_reading(cx.id);
            }
        }
        fn on_timer(&mut self, cx: &mut Ctx<'_, Pauser>, now: u64) {
            cx.keep_alive(Heartbeat::SERVER, now);
        }
    }
    let clock = ManualClock::new(0);
    let mut net = Reactor::<Pauser>::with_clock(clock.clone()).unwrap();
    let addr = net
        .listen("127.0.0.1", 0, |_, _| {
            Box::new(PauseConn) as Box<dyn ImConn<Pauser>>
        })
        .unwrap()[0];
    let mut state = Pauser {
        seen: Vec::new(),
        id: None,
    };
    let mut c = connect(addr);
    let mut all = Vec::new();
    for seq in 1..=7u16 {
        all.extend_from_slice(pdu(seq, b"x").as_bytes());
    }
    c.write_all(&all).unwrap();
    let turns = |net: &mut Reactor<Pauser>, state: &mut Pauser| {
        for _ in 0..20 {
            net.run_once(state, 5).unwrap();
        }
    };
    turns(&mut net, &mut state);
    assert_eq!(state.seen, [1, 2, 3], "nothing handled while paused");
    let id = state.id.unwrap();
    assert!(net.is_paused(id));
    // 40 s with nothing read: a paused peer is not silent.
    for _ in 0..40 {
        clock.advance(1_000);
        net.run_once(&mut state, 0).unwrap();
    }
    assert!(net.is_open(id), "a paused link is not timed out");
    net.resume_reading(id);
    turns(&mut net, &mut state);
    assert_eq!(state.seen, [1, 2, 3, 4, 5, 6], "resumed, then paused again");
    net.resume_reading(id);
    turns(&mut net, &mut state);
    assert_eq!(state.seen, [1, 2, 3, 4, 5, 6, 7]);
    assert!(!net.is_paused(id));
}
