//! Outgoing links to peer servers: the C++ `ServInfo.h` (`serv_info_t`,
//! `serv_init`, `serv_check_reconnect`, `serv_reset`).
//!
//! msg_server keeps one of these lists per peer kind (db_proxy, login,
//! route, push, file). A link that never came up is reconnected after an
//! idle count of 1 s ticks that starts at [`MIN_RECONNECT_CNT`] and doubles
//! on every failure up to [`MAX_RECONNECT_CNT`], then starts over, exactly
//! as `serv_reset` does.
//!
//! Differences from the C++:
//! - A link that was up and is lost is retried at once, then after about
//!   100 ms, 250 ms and every 190-250 ms (each delay shortened by a random
//!   share of up to a quarter, so a thousand links to one dead peer do not
//!   knock in step) for [`FAST_RETRY_WINDOW_MS`]; only then does the C++
//!   back-off take over. So every link to a peer that listens again within
//!   that window is up within 0.5 s of it (the C++ first tries 3-4 s after
//!   the loss, and its links come back over 5-10 s). The owner calls
//!   [`ServList::check_reconnect`] every [`RECONNECT_CHECK_MS`] (the C++
//!   once a second); the C++ back-off still counts 1 s ticks
//!   ([`TICK_MS`]), however often it is called.
//! - Each peer's name is resolved once, when the list is made from the conf
//!   ([`ServList::new`]), not by a blocking `gethostbyname` on the loop at
//!   every reconnect try. A name that does not resolve then is logged and
//!   tried again at each connect until it does (then kept), so a peer whose
//!   DNS entry appears later is still reached.

use crate::imconn::ImConn;
use crate::reactor::{resolve, ConnId, Reactor};
use base::config::ServerAddr;
use std::net::SocketAddr;

/// `MIN_RECONNECT_CNT`: ticks before the first reconnect after a failure.
pub const MIN_RECONNECT_CNT: u32 = 4;
/// `MAX_RECONNECT_CNT`: the back-off's ceiling, in ticks.
pub const MAX_RECONNECT_CNT: u32 = 64;

/// The C++ back-off's tick: `check_reconnect` counts one per second.
pub const TICK_MS: u64 = 1_000;
/// How often a list's owner should call [`ServList::check_reconnect`]:
/// the granularity of the fast retries.
pub const RECONNECT_CHECK_MS: u64 = 50;
/// The fast retries' delays (before jitter) after the loss (the first try,
/// at once) and after each failed try; then [`FAST_RETRY_PERIOD_MS`].
pub const FAST_RETRY_MS: [u64; 3] = [0, 100, 250];
/// The delay between fast retries after the first ones (before jitter:
/// 190-250 ms), so a peer that listens again is reached within a quarter
/// of a second (a restarted peer's messages flow again within 0.5 s of
/// it listening, what was held sent first).
pub const FAST_RETRY_PERIOD_MS: u64 = 250;
/// How long after a loss the fast retries go on before the C++ back-off
/// takes over.
pub const FAST_RETRY_WINDOW_MS: u64 = 10_000;

/// The delay before fast retry number `tries` (0: the first, right after
/// the loss), shortened by `jitter_permille`/4000 of itself (0..=999: up
/// to a quarter). A pure function of its inputs; the jitter is drawn by
/// the caller.
pub fn fast_retry_delay(tries: u32, jitter_permille: u64) -> u64 {
    let base = FAST_RETRY_MS
        .get(tries as usize)
        .copied()
        .unwrap_or(FAST_RETRY_PERIOD_MS);
    base - base * jitter_permille.min(999) / 4_000
}

/// A cheap spread in 0..1000 for the jitter (splitmix64 of what makes each
/// try different: the peer, the link, the try and the time), so no random
/// number crate is needed for it.
fn jitter_permille(port: u16, idx: usize, tries: u32, now: u64) -> u64 {
    let mut z = (u64::from(port) << 48)
        ^ ((idx as u64) << 32)
        ^ (u64::from(tries) << 24)
        ^ now
        ^ u64::from(std::process::id()).rotate_left(17);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % 1_000
}

/// The fast retries of a link that was up and was lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FastRetry {
    /// When the loss was first seen by `check_reconnect` (reactor ms).
    pub lost_at: Option<u64>,
    /// Tries that failed since the loss.
    pub tries: u32,
    /// When the next try is due; `None` until `check_reconnect` draws it.
    pub next_at: Option<u64>,
}

/// One peer server and our link to it (`serv_info_t`).
#[derive(Debug, Clone)]
pub struct ServInfo {
    /// Where the peer listens, as the conf says.
    pub addr: ServerAddr,
    /// `addr` resolved (when the list was made, or at the first connect
    /// that could resolve it); `None` until a resolution succeeds.
    pub resolved: Option<SocketAddr>,
    /// The open (or connecting) link, if any.
    pub conn: Option<ConnId>,
    /// Ticks since the link was lost.
    pub idle_cnt: u32,
    /// Ticks to wait before the next try.
    pub reconnect_cnt: u32,
    /// Connects started to this peer (the first and every reconnect), for
    /// metrics.
    pub connects: u64,
    /// The link in `conn` completed its connect ([`ServList::confirmed`]).
    pub up: bool,
    /// Set while a lost link is retried fast (not in the C++).
    pub fast: Option<FastRetry>,
}

/// The list of peers of one kind.
#[derive(Debug, Clone, Default)]
pub struct ServList {
    /// The peers, in configuration order (index = the C++ `serv_idx`).
    pub servers: Vec<ServInfo>,
    /// When `check_reconnect` last counted a C++ tick.
    last_tick: Option<u64>,
}

impl ServList {
    /// A list for the configured addresses, each resolved now (blocking,
    /// once, while the conf is read); nothing is connected yet.
    pub fn new(addrs: Vec<ServerAddr>) -> ServList {
        ServList {
            servers: addrs
                .into_iter()
                .map(|addr| {
                    let resolved = match resolve(&addr.ip, addr.port) {
                        Ok(a) => Some(a),
                        Err(e) => {
                            log::warn!("{e}; resolving it again at each connect try");
                            None
                        }
                    };
                    ServInfo {
                        addr,
                        resolved,
                        conn: None,
                        idle_cnt: 0,
                        reconnect_cnt: MIN_RECONNECT_CNT / 2,
                        connects: 0,
                        up: false,
                        fast: None,
                    }
                })
                .collect(),
            last_tick: None,
        }
    }

    /// `serv_init`: connects to every peer; `make(idx)` builds the handler
    /// for the link to peer `idx`.
    pub fn serv_init<S: 'static>(
        &mut self,
        net: &mut Reactor<S>,
        mut make: impl FnMut(usize) -> Box<dyn ImConn<S>>,
    ) {
        self.last_tick = Some(net.now_ms());
        for idx in 0..self.servers.len() {
            self.servers[idx].idle_cnt = 0;
            self.servers[idx].reconnect_cnt = MIN_RECONNECT_CNT / 2;
            self.connect(net, idx, &mut make);
        }
    }

    /// `serv_check_reconnect`: call every [`RECONNECT_CHECK_MS`] (the C++
    /// calls it once per 1 s tick); reconnects each lost link whose fast
    /// retry is due, and, once a [`TICK_MS`] has passed since the last
    /// tick, each link whose C++ back-off has run out.
    pub fn check_reconnect<S: 'static>(
        &mut self,
        net: &mut Reactor<S>,
        mut make: impl FnMut(usize) -> Box<dyn ImConn<S>>,
    ) {
        let now = net.now_ms();
        let tick = match self.last_tick {
            Some(t) if now < t + TICK_MS => false,
            _ => {
                self.last_tick = Some(now);
                true
            }
        };
        for idx in 0..self.servers.len() {
            let s = &mut self.servers[idx];
            if s.conn.is_some() {
                continue;
            }
            if let Some(f) = &mut s.fast {
                let lost_at = *f.lost_at.get_or_insert(now);
                if now.saturating_sub(lost_at) <= FAST_RETRY_WINDOW_MS {
                    let due = *f.next_at.get_or_insert_with(|| {
                        now + fast_retry_delay(
                            f.tries,
                            jitter_permille(s.addr.port, idx, f.tries, now),
                        )
                    });
                    if now >= due {
                        self.connect(net, idx, &mut make);
                    }
                    continue;
                }
                log::info!(
                    "{}:{} still down after {} ms of fast retries; backing off",
                    s.addr.ip,
                    s.addr.port,
                    FAST_RETRY_WINDOW_MS
                );
                s.fast = None;
                s.idle_cnt = 0;
                s.reconnect_cnt = MIN_RECONNECT_CNT;
                continue;
            }
            if tick {
                s.idle_cnt += 1;
                if s.idle_cnt >= s.reconnect_cnt {
                    self.connect(net, idx, &mut make);
                }
            }
        }
    }

    /// `OnConfirm`: the link to peer `idx` completed its connect; the
    /// back-off starts over (`reconnect_cnt = MIN_RECONNECT_CNT / 2`) and
    /// its next loss is retried fast.
    pub fn confirmed(&mut self, idx: usize) {
        if let Some(s) = self.servers.get_mut(idx) {
            s.up = true;
            s.fast = None;
            s.reconnect_cnt = MIN_RECONNECT_CNT / 2;
        }
    }

    fn connect<S: 'static>(
        &mut self,
        net: &mut Reactor<S>,
        idx: usize,
        make: &mut impl FnMut(usize) -> Box<dyn ImConn<S>>,
    ) {
        let s = &mut self.servers[idx];
        s.connects += 1;
        let started = match s.resolved {
            Some(addr) => net.connect_addr(addr, make(idx)),
            None => net.connect(&s.addr.ip, s.addr.port, make(idx)),
        };
        match started {
            Ok(id) => {
                if s.resolved.is_none() {
                    s.resolved = net.peer_addr(id);
                    log::info!("{}:{} resolved to {:?}", s.addr.ip, s.addr.port, s.resolved);
                }
                s.conn = Some(id);
            }
            Err(e) => {
                log::warn!("cannot connect to {}:{}: {e}", s.addr.ip, s.addr.port);
                s.conn = None;
                Self::failed(s);
            }
        }
    }

    /// `serv_reset`: the link to peer `idx` closed. A link that was up is
    /// retried fast from now on; a failed try waits longer before the next
    /// (the next fast delay, or the C++ back-off). Call it from the link's
    /// `on_close`.
    pub fn reset(&mut self, idx: usize) {
        if let Some(s) = self.servers.get_mut(idx) {
            s.conn = None;
            if std::mem::take(&mut s.up) {
                s.fast = Some(FastRetry::default());
            } else {
                Self::failed(s);
            }
        }
    }

    /// A try on `s` failed: the next fast retry, or the C++ back-off.
    fn failed(s: &mut ServInfo) {
        match &mut s.fast {
            Some(f) => {
                f.tries += 1;
                f.next_at = None;
            }
            None => Self::back_off(s),
        }
    }

    fn back_off(s: &mut ServInfo) {
        s.idle_cnt = 0;
        s.reconnect_cnt *= 2;
        if s.reconnect_cnt > MAX_RECONNECT_CNT {
            s.reconnect_cnt = MIN_RECONNECT_CNT;
        }
    }

    /// The peer whose link is `id`, if any.
    pub fn index_of(&self, id: ConnId) -> Option<usize> {
        self.servers.iter().position(|s| s.conn == Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    #[test]
    fn back_off_doubles_then_wraps() {
        let mut list = ServList::new(vec![ServerAddr {
            ip: "127.0.0.1".into(),
            port: 1,
        }]);
        let mut seen = Vec::new();
        for _ in 0..7 {
            list.reset(0);
            seen.push(list.servers[0].reconnect_cnt);
        }
        assert_eq!(seen, vec![4, 8, 16, 32, 64, 4, 8]);
    }

    fn addr(ip: &str, port: u16) -> ServerAddr {
        ServerAddr {
            ip: ip.into(),
            port,
        }
    }

    #[test]
    fn names_are_resolved_when_the_list_is_made() {
        let list = ServList::new(vec![
            addr("127.0.0.1", 10600),
            addr("localhost", 10601),
            addr("no-such-peer.invalid", 10602),
        ]);
        let got: Vec<Option<SocketAddr>> = list.servers.iter().map(|s| s.resolved).collect();
        assert_eq!(
            got,
            vec![
                Some("127.0.0.1:10600".parse().unwrap()),
                Some("127.0.0.1:10601".parse().unwrap()),
                None
            ]
        );
    }

    struct Link;
    impl ImConn<()> for Link {
        fn on_pdu(&mut self, _cx: &mut crate::Ctx<'_, ()>, _pdu: base::ImPdu) {}
    }

    #[test]
    fn links_connect_to_the_resolved_address_and_an_unresolved_name_backs_off() {
        let mut net = Reactor::<()>::new().unwrap();
        let port = net
            .listen("127.0.0.1", 0, |_, _| Box::new(Link) as Box<dyn ImConn<()>>)
            .unwrap()[0]
            .port();
        let mut list = ServList::new(vec![
            addr("localhost", port),
            addr("no-such-peer.invalid", port),
        ]);
        list.serv_init(&mut net, |_| Box::new(Link));
        let link = list.servers[0].conn.expect("connecting");
        assert_eq!(net.peer_addr(link), list.servers[0].resolved);
        assert_eq!(list.servers[1].conn, None);
        assert_eq!(list.servers[1].reconnect_cnt, MIN_RECONNECT_CNT);
        assert_eq!(
            list.servers[1].resolved, None,
            "still tried at each connect"
        );
    }

    #[test]
    fn fast_delays_grow_then_hold_and_jitter_only_shortens() {
        let plain: Vec<u64> = (0..6).map(|t| fast_retry_delay(t, 0)).collect();
        assert_eq!(plain, vec![0, 100, 250, 250, 250, 250]);
        assert_eq!(fast_retry_delay(1, 999), 76);
        assert_eq!(fast_retry_delay(3, 500), 219);
        assert_eq!(fast_retry_delay(3, 5_000), 188, "jitter capped at 999");
        let spread: std::collections::HashSet<u64> = (0..100)
            .map(|i| jitter_permille(8000, i, 3, 12_345))
            .collect();
        assert!(spread.len() > 50, "links draw different jitters");
    }

    /// What the test's links tell their list.
    struct Peers {
        peers: crate::PeerList,
    }

    struct PeerConn(crate::PeerLink);
    impl ImConn<Peers> for PeerConn {
        fn on_confirm(&mut self, cx: &mut crate::Ctx<'_, Peers>) {
            self.0.confirm(&mut cx.state.peers, cx.id, None);
        }
        fn on_close(&mut self, cx: &mut crate::Ctx<'_, Peers>) {
            self.0.closed(&mut cx.state.peers, cx.id, None);
        }
        fn on_pdu(&mut self, _cx: &mut crate::Ctx<'_, Peers>, _pdu: base::ImPdu) {}
    }

    /// A reactor on a manual clock whose list of one peer at `port` is
    /// checked every RECONNECT_CHECK_MS, as the servers do.
    fn manual_reactor(port: u16) -> (Reactor<Peers>, crate::ManualClock, Peers) {
        let clock = crate::ManualClock::new(1_000);
        let mut net = Reactor::<Peers>::with_clock(clock.clone()).unwrap();
        let mut st = Peers {
            peers: crate::PeerList::new(ServList::new(vec![addr("127.0.0.1", port)])),
        };
        st.peers.init(&mut net, |i| {
            Box::new(PeerConn(crate::PeerLink::new("test peer", i)))
        });
        net.register_timer(RECONNECT_CHECK_MS, |net, st: &mut Peers| {
            st.peers.check_reconnect(net, |i| {
                Box::new(PeerConn(crate::PeerLink::new("test peer", i)))
            })
        });
        (net, clock, st)
    }

    /// Runs real turns (manual time standing still) until a try under way
    /// has been refused or confirmed.
    fn settle(net: &mut Reactor<Peers>, st: &mut Peers) {
        for _ in 0..500 {
            let s = &st.peers.list.servers[0];
            if s.conn.is_none() || s.up {
                return;
            }
            net.run_once(st, 2).unwrap();
        }
        panic!("a connect on loopback neither failed nor completed");
    }

    #[test]
    fn a_lost_link_is_retried_at_once_then_fast_and_is_up_soon_after_the_peer_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mut net, clock, mut st) = manual_reactor(port);
        settle(&mut net, &mut st);
        assert!(st.peers.list.servers[0].up, "first connect completes");
        let (accepted, _) = listener.accept().unwrap();
        // The peer dies: its socket and its listener go.
        drop(listener);
        drop(accepted);
        settle_until_lost(&mut net, &mut st);
        assert_eq!(st.peers.list.servers[0].fast, Some(FastRetry::default()));
        let lost_at = clock.now_ms();
        // Walk 3 s in 10 ms steps, noting when each try starts.
        let mut tries_at = Vec::new();
        for _ in 0..300 {
            clock.advance(10);
            net.run_once(&mut st, 0).unwrap();
            if st.peers.list.servers[0].conn.is_some() {
                tries_at.push(clock.now_ms() - lost_at);
                settle(&mut net, &mut st);
                assert!(!st.peers.list.servers[0].up, "nobody listens");
            }
        }
        assert!(
            tries_at[0] <= RECONNECT_CHECK_MS,
            "first try at once: {tries_at:?}"
        );
        for w in tries_at.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                (50..=FAST_RETRY_PERIOD_MS + RECONNECT_CHECK_MS).contains(&gap),
                "tries {tries_at:?}"
            );
        }
        assert!(tries_at.len() >= 8, "fast retries all along: {tries_at:?}");
        // The peer listens again: the link is up within 0.5 s of it.
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let back_at = clock.now_ms();
        let mut up_after = None;
        for _ in 0..100 {
            clock.advance(10);
            net.run_once(&mut st, 0).unwrap();
            settle(&mut net, &mut st);
            if st.peers.list.servers[0].up {
                up_after = Some(clock.now_ms() - back_at);
                break;
            }
        }
        let up_after = up_after.expect("the link came back");
        assert!(up_after <= 500, "up {up_after} ms after the peer listened");
        assert!(st.peers.any_open());
        assert_eq!(st.peers.list.servers[0].fast, None, "fast retries end");
        drop(listener);
    }

    /// Turns until the link's loss has been seen.
    fn settle_until_lost(net: &mut Reactor<Peers>, st: &mut Peers) {
        for _ in 0..500 {
            if st.peers.list.servers[0].conn.is_none() {
                return;
            }
            net.run_once(st, 2).unwrap();
        }
        panic!("the peer's hang-up was not seen");
    }

    #[test]
    fn after_the_fast_window_the_cpp_back_off_takes_over() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mut net, clock, mut st) = manual_reactor(port);
        settle(&mut net, &mut st);
        let (accepted, _) = listener.accept().unwrap();
        drop(listener);
        drop(accepted);
        settle_until_lost(&mut net, &mut st);
        for _ in 0..(FAST_RETRY_WINDOW_MS / 50 + 4) {
            clock.advance(50);
            net.run_once(&mut st, 0).unwrap();
            settle(&mut net, &mut st);
        }
        let s = &st.peers.list.servers[0];
        assert_eq!(s.fast, None, "fast retries ended");
        assert_eq!(s.reconnect_cnt, MIN_RECONNECT_CNT);
        // Now one try per MIN_RECONNECT_CNT ticks of 1 s: none in the next 3 s.
        let mut tries = 0;
        for _ in 0..60 {
            clock.advance(50);
            net.run_once(&mut st, 0).unwrap();
            if st.peers.list.servers[0].conn.is_some() {
                tries += 1;
                settle(&mut net, &mut st);
            }
        }
        assert_eq!(tries, 0, "back to the C++ ticks");
        for _ in 0..40 {
            clock.advance(50);
            net.run_once(&mut st, 0).unwrap();
            if st.peers.list.servers[0].conn.is_some() {
                tries += 1;
                settle(&mut net, &mut st);
            }
        }
        assert_eq!(tries, 1, "one try at the fourth tick");
        assert_eq!(
            st.peers.list.servers[0].reconnect_cnt,
            2 * MIN_RECONNECT_CNT
        );
    }
}
