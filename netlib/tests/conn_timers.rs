//! The connection tick on the timer wheel (issue 20): a handler that says
//! when it next has something to do is called only then, one that says
//! nothing every tick (as the C++), and heartbeats and timeouts still
//! happen on time. All on a `ManualClock`, with real loopback sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base::pdu::ImPdu;
use netlib::{ConnId, Ctx, Heartbeat, ImConn, ManualClock, Reactor};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Default)]
struct St {
    ids: Vec<ConnId>,
    /// (connection, now) of every on_timer call.
    calls: Vec<(ConnId, u64)>,
    closed: Vec<ConnId>,
}

/// `every`: asks for its next call that many ms ahead; `None`: asks nothing.
/// `keep`: applies the rule through `keep_alive_until_due` instead.
struct Probe {
    every: Option<u64>,
    keep: Option<Heartbeat>,
}

impl ImConn<St> for Probe {
    fn on_pdu(&mut self, _cx: &mut Ctx<'_, St>, _pdu: ImPdu) {}
    fn on_timer(&mut self, cx: &mut Ctx<'_, St>, now: u64) {
        cx.state.calls.push((cx.id, now));
        if let Some(rule) = self.keep {
            cx.keep_alive_until_due(rule, now);
        }
        if let Some(d) = self.every {
            cx.timer_at(now + d);
        }
    }
    fn on_close(&mut self, cx: &mut Ctx<'_, St>) {
        cx.state.closed.push(cx.id);
    }
}

struct Rig {
    clock: ManualClock,
    net: Reactor<St>,
    st: St,
    addr: SocketAddr,
    peers: Vec<TcpStream>,
}

impl Rig {
    fn new(every: Option<u64>, keep: Option<Heartbeat>) -> Rig {
        let clock = ManualClock::new(0);
        let mut net = Reactor::<St>::with_clock(clock.clone()).unwrap();
        let addr = net
            .listen("127.0.0.1", 0, move |s: &mut St, id| {
                s.ids.push(id);
                Box::new(Probe { every, keep }) as Box<dyn ImConn<St>>
            })
            .unwrap()[0];
        Rig {
            clock,
            net,
            st: St::default(),
            addr,
            peers: Vec::new(),
        }
    }

    fn connect(&mut self, n: usize) {
        let want = self.st.ids.len() + n;
        for _ in 0..n {
            self.peers.push(TcpStream::connect(self.addr).unwrap());
        }
        while self.st.ids.len() < want {
            self.net.run_once(&mut self.st, 10).unwrap();
        }
    }

    /// Advances one second and runs the tick; returns the calls it made.
    fn tick(&mut self) -> Vec<(ConnId, u64)> {
        self.clock.advance(1000);
        let before = self.st.calls.len();
        self.net.run_once(&mut self.st, 0).unwrap();
        self.st.calls[before..].to_vec()
    }
}

#[test]
fn a_handler_that_asks_nothing_is_called_every_tick() {
    let mut rig = Rig::new(None, None);
    rig.connect(3);
    for _ in 0..5 {
        let calls = rig.tick();
        let mut ids: Vec<ConnId> = calls.iter().map(|c| c.0).collect();
        ids.sort();
        assert_eq!(ids, rig.st.ids, "each connection once per tick");
    }
}

#[test]
fn a_handler_that_asks_is_called_only_when_it_asked() {
    let mut rig = Rig::new(Some(10_000), None);
    rig.connect(50);
    // The first tick after opening calls each one; each asks for +10 s.
    assert_eq!(rig.tick().len(), 50);
    for second in 2..=10 {
        assert!(rig.tick().is_empty(), "nothing due at {second} s");
    }
    let calls = rig.tick();
    assert_eq!(calls.len(), 50, "all due at 11 s");
    assert!(calls.iter().all(|c| c.1 == 11_000));
    assert_eq!(rig.net.timer_wheel_len(), 50, "one entry per connection");
}

#[test]
fn asking_from_outside_only_moves_the_next_call_earlier() {
    let mut rig = Rig::new(Some(60_000), None);
    rig.connect(2);
    assert_eq!(rig.tick().len(), 2); // at 1 s: next at 61 s
    let (a, b) = (rig.st.ids[0], rig.st.ids[1]);
    let now = rig.net.now_ms();
    rig.net.timer_at(a, now + 2_000);
    rig.net.timer_at(b, now + 600_000); // later than asked: no change
    assert!(rig.tick().is_empty());
    assert_eq!(rig.tick(), vec![(a, 3_000)]);
    // a asked for +60 s again at 3 s; the stale entry at 61 s is dropped.
    let mut seen = Vec::new();
    for _ in 0..60 {
        seen.extend(rig.tick());
    }
    assert_eq!(seen, vec![(b, 61_000), (a, 63_000)]);
}

#[test]
fn a_closed_connection_is_never_called_again() {
    let mut rig = Rig::new(Some(2_000), None);
    rig.connect(2);
    rig.tick();
    let gone = rig.st.ids[0];
    rig.net.close(gone);
    rig.net.run_once(&mut rig.st, 0).unwrap();
    assert_eq!(rig.st.closed, vec![gone]);
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.extend(rig.tick());
    }
    assert!(seen.iter().all(|c| c.0 != gone), "{seen:?}");
    assert!(!seen.is_empty());
}

#[test]
fn keep_alive_until_due_heartbeats_and_times_out_on_time_with_few_calls() {
    // A server link whose peer never speaks: heartbeat after 5 s of not
    // sending, closed after 30 s of silence, as with keep_alive every tick.
    let mut rig = Rig::new(None, Some(Heartbeat::SERVER));
    rig.connect(1);
    let id = rig.st.ids[0];
    let peer = &mut rig.peers[0];
    peer.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut heartbeats_at = Vec::new();
    let mut closed_at = None;
    let mut buf = [0u8; 64];
    for second in 1..=40u64 {
        rig.clock.advance(1000);
        rig.net.run_once(&mut rig.st, 0).unwrap();
        rig.net.run_once(&mut rig.st, 0).unwrap();
        if closed_at.is_none() && rig.st.closed.contains(&id) {
            closed_at = Some(second);
        }
        let peer = &mut rig.peers[0];
        peer.set_nonblocking(true).unwrap();
        while let Ok(n) = peer.read(&mut buf) {
            if n == 0 {
                break;
            }
            heartbeats_at.push(second);
        }
    }
    // Heartbeats at 6, 12, 18, 24, 30 s (each once 5 s of quiet have passed).
    assert_eq!(heartbeats_at, vec![6, 12, 18, 24, 30]);
    assert_eq!(closed_at, Some(31), "closed once silent for more than 30 s");
    let calls = rig.st.calls.iter().filter(|c| c.0 == id).count();
    assert!(
        calls <= 7,
        "{calls} on_timer calls in 31 s: should be one per heartbeat and the close"
    );
}

#[test]
fn heartbeat_next_due_is_the_first_ms_keep_alive_acts() {
    let server = Heartbeat::SERVER;
    assert_eq!(server.next_due(1_000, 0), 6_001);
    assert_eq!(server.next_due(40_000, 0), 30_001);
    assert_eq!(Heartbeat::MOBILE_CLIENT.next_due(0, 5_000), 305_001);
    assert_eq!(Heartbeat::CLIENT.next_due(u64::MAX, 7), 120_008);
}
