//! What one connection tick costs as idle connections grow (issue 20):
//! N open loopback connections in one netlib reactor on a `ManualClock`,
//! each handler applying the mobile-client rule (300 s timeout) either
//! every tick as the C++ (`keep_alive`, the handler asks nothing) or only
//! when due (`keep_alive_until_due`, on the timer wheel). Each row: the
//! median and the slowest of 30 ticks in which no connection is due.
//! Not a criterion bench: one table.
//!
//! ```text
//! cargo bench --bench conn_tick            # TT_TICK_COUNTS=1000,5000,10000,19000
//! ```
//!
//! The connections go to mio listeners that never accept (the kernel
//! holds them in their accept queues), so each costs one file here and N
//! can reach this machine's 20,000-file cap.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base::pdu::ImPdu;
use mio::net::TcpListener;
use netlib::{Ctx, Heartbeat, ImConn, ManualClock, Reactor};
use std::time::Instant;

struct Idle {
    lazy: bool,
}

impl ImConn<u64> for Idle {
    fn on_pdu(&mut self, _cx: &mut Ctx<'_, u64>, _pdu: ImPdu) {}
    fn on_confirm(&mut self, cx: &mut Ctx<'_, u64>) {
        *cx.state += 1;
    }
    fn on_timer(&mut self, cx: &mut Ctx<'_, u64>, now: u64) {
        if self.lazy {
            cx.keep_alive_until_due(Heartbeat::MOBILE_CLIENT, now);
        } else {
            cx.keep_alive(Heartbeat::MOBILE_CLIENT, now);
        }
    }
}

/// Median and max µs of a tick with `n` idle connections.
fn measure(n: usize, lazy: bool) -> (f64, f64) {
    // Accept queues of 128 (mio's backlog): one listener per 100.
    let listeners: Vec<TcpListener> = (0..n.div_ceil(100))
        .map(|_| TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap())
        .collect();
    let clock = ManualClock::new(0);
    let mut net = Reactor::<u64>::with_clock(clock.clone()).unwrap();
    for i in 0..n {
        let addr = listeners[i / 100].local_addr().unwrap();
        net.connect_addr(addr, Box::new(Idle { lazy })).unwrap();
    }
    let mut confirmed = 0u64;
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while confirmed < n as u64 && Instant::now() < deadline {
        net.run_once(&mut confirmed, 10).unwrap();
    }
    assert_eq!(confirmed, n as u64, "connections confirmed");
    // The first tick after opening calls every handler (they then ask
    // for their timeout, 300 s away, when lazy).
    clock.advance(1000);
    net.run_once(&mut confirmed, 0).unwrap();
    let mut us: Vec<f64> = (0..30)
        .map(|_| {
            clock.advance(1000);
            let t = Instant::now();
            net.run_once(&mut confirmed, 0).unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    assert_eq!(net.conn_count(), n, "every connection still open");
    us.sort_by(f64::total_cmp);
    (us[us.len() / 2], us[us.len() - 1])
}

fn main() {
    let counts: Vec<usize> = std::env::var("TT_TICK_COUNTS")
        .unwrap_or_else(|_| "1000,5000,10000,19000".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    println!("| idle connections | every tick (C++ way): median / max µs | when due (timer wheel): median / max µs |");
    println!("|---|---|---|");
    for n in counts {
        let (em, ex) = measure(n, false);
        let (lm, lx) = measure(n, true);
        println!("| {n} | {em:.1} / {ex:.1} | {lm:.1} / {lx:.1} |");
    }
}
