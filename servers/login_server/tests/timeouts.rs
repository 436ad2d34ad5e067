//! The slow timeouts (30 s for a silent msg_server, 60 s for an idle HTTP
//! connection), checked in milliseconds: the server's loop runs in the test
//! process on a `ManualClock` (login_server is a library with a thin
//! `main`), and the test moves its time on. The sockets are real.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use login_server::http_conn::ClientUrls;
use login_server::LoginConfig;
use netlib::{ManualClock, Reactor};
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;
use tt_proto::IM::Login::{IMMsgServReq, IMMsgServRsp};
use tt_proto::IM::Other::IMHeartBeat;
use tt_proto::IM::Server::IMMsgServInfo;
use tt_proto::{cid, sid};
use tt_rs::http::closed_within;
use tt_rs::{free_port, PduClient};

/// login_server's loop on a thread of this process, on a manual clock.
struct InProcess {
    clock: ManualClock,
    client_port: u16,
    http_port: u16,
    msg_port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    fn start() -> InProcess {
        let (client_port, http_port, msg_port) = (free_port(), free_port(), free_port());
        let clock = ManualClock::new(1_000_000);
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = mpsc::channel();
        let thread = {
            let (clock, stop) = (clock.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut net = Reactor::with_clock(clock).unwrap();
                let config = LoginConfig {
                    client_listen_ip: "127.0.0.1".into(),
                    client_port,
                    http_listen_ip: "127.0.0.1".into(),
                    http_port,
                    msg_server_listen_ip: "127.0.0.1".into(),
                    msg_server_port: msg_port,
                    urls: ClientUrls {
                        msfs: "http://127.0.0.1:8700/".into(),
                        discovery: "http://127.0.0.1/api/discovery".into(),
                    },
                };
                let mut state = login_server::start(config, &mut net).unwrap();
                ready_tx.send(()).unwrap();
                while !stop.load(Ordering::SeqCst) {
                    net.run_once(&mut state, 5).unwrap();
                }
            })
        };
        ready.recv_timeout(tt_rs::WAIT).unwrap();
        InProcess {
            clock,
            client_port,
            http_port,
            msg_port,
            stop,
            thread: Some(thread),
        }
    }

    /// Moves the server's time on by `ms`, then gives its loop a moment
    /// to run the connection tick that follows.
    fn advance(&self, ms: u64) {
        self.clock.advance(ms);
        std::thread::sleep(Duration::from_millis(50));
    }

    /// A fake msg_server registering as `host`:`port` with `cur` users.
    fn register(&self, host: &str, port: u32, cur: u32) -> PduClient {
        let mut c = PduClient::connect(self.msg_port);
        c.send_msg(
            sid::OTHER,
            cid::OTHER_MSG_SERV_INFO,
            0,
            &IMMsgServInfo {
                ip1: format!("{host}.telecom"),
                ip2: format!("{host}.unicom"),
                port,
                max_conn_cnt: 100,
                cur_conn_cnt: cur,
                host_name: host.to_string(),
            },
        );
        c
    }

    /// The msg_server port a client is handed (None: none registered).
    fn ask_port(&self) -> Option<u32> {
        let mut c = PduClient::connect(self.client_port);
        c.send_msg(sid::LOGIN, cid::LOGIN_REQ_MSGSERVER, 1, &IMMsgServReq {});
        let (_, rsp) = c.recv_cmd::<IMMsgServRsp>(cid::LOGIN_RES_MSGSERVER);
        rsp.port
    }

    /// Asks until the answer is `port` (a registration is read by the
    /// loop asynchronously); fails after the harness's wait.
    fn wait_for_port(&self, port: u32) {
        let deadline = std::time::Instant::now() + tt_rs::WAIT;
        while self.ask_port() != Some(port) {
            assert!(
                std::time::Instant::now() < deadline,
                "never handed out {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_silent_msg_server_is_dropped_and_a_beating_one_kept() {
    let login = InProcess::start();
    let mut beating = login.register("beating", 8001, 60);
    let mut silent = login.register("silent", 8002, 0);
    // The least loaded is handed out while both are registered.
    login.wait_for_port(8002);

    login.advance(29_000);
    beating.send_msg(sid::OTHER, cid::OTHER_HEARTBEAT, 0, &IMHeartBeat {});
    std::thread::sleep(Duration::from_millis(50));
    // 31 s after registering: the silent one has been quiet past 30 s, the
    // beating one spoke 2 s ago.
    login.advance(2_000);
    assert!(
        closed_within(silent.stream(), Duration::from_secs(5)),
        "the silent msg_server's link is closed"
    );
    assert!(
        !closed_within(beating.stream(), Duration::from_millis(200)),
        "the beating msg_server's link is kept"
    );
    assert_eq!(login.ask_port(), Some(8001), "only the beating one is left");
}

#[test]
fn an_idle_http_connection_is_closed_after_a_minute() {
    let login = InProcess::start();
    let mut s = TcpStream::connect(("127.0.0.1", login.http_port)).unwrap();
    s.write_all(b"GET /msg_").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    login.advance(59_000);
    assert!(
        !closed_within(&mut s, Duration::from_millis(200)),
        "kept while within the minute"
    );
    login.advance(2_000);
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "closed after 60 s idle"
    );
}
