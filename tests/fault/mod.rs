//! The fault-injection harness (issue 17): steady one-to-one traffic
//! between pairs of users, each sender on the first msg_server and its
//! receiver on the second (so every message crosses route_server), while
//! a fault is injected; then every message is accounted for.
//!
//! Senders pipeline: each message goes out on its own seq and its ack is
//! matched by that seq, so a message that is never answered does not hold
//! up the next (as a real client goes on sending). Receivers are
//! `tt_client` sessions (they ack what arrives). After the traffic stops
//! and the acks have drained, each receiver's history is read back through
//! msg_server, so an acked message is either delivered live, or found in
//! history under its acked id, or reported lost.
//!
//! Shared by `tests/fault_harness.rs` (short windows, bounds asserted) and
//! `benches/failover.rs` (the README's table).

#![allow(dead_code)]

use base::aes::Aes;
use base::ImPdu;
use crossbeam_channel::{unbounded, Receiver, TryRecvError};
use std::collections::{HashMap, HashSet};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tt_client::session::{read_pdu, write_pdu};
use tt_client::{Event, LoginOptions, Session};
use tt_proto::cid;
use tt_proto::IM::BaseDefine::{ClientType, MsgType, SessionType, UserStatType};
use tt_proto::IM::Login::{IMLoginReq, IMLoginRes};
use tt_proto::IM::Message::{IMMsgData, IMMsgDataAck};
use tt_rs::cluster::Cluster;
use tt_rs::MariaDbServer;
use tt_rs::AES_KEY;

/// The users: senders `s1..sN` (ids 1..N), receivers `r1..rN` (ids
/// 101..100+N).
pub fn users(pairs: u32) -> Vec<(u32, String, String)> {
    (1..=pairs)
        .flat_map(|i| {
            [
                (i, format!("s{i}"), format!("pw{i}")),
                (100 + i, format!("r{i}"), format!("pw{}", 100 + i)),
            ]
        })
        .collect()
}

/// A cluster of two msg_servers with `pairs` pairs of users, and one
/// db_proxy and one route_server (or, `redundant`, two of each).
pub fn cluster_with(pairs: u32, redundant: bool) -> Cluster {
    let users = users(pairs);
    let refs: Vec<(u32, &str, &str)> = users
        .iter()
        .map(|(i, n, p)| (*i, n.as_str(), p.as_str()))
        .collect();
    let cluster = if redundant {
        Cluster::start_redundant(&refs, 2)
    } else {
        Cluster::start(&refs, 2)
    };
    linked(cluster, redundant)
}

/// [`cluster`] with `msg_servers` msg_servers (senders on the first,
/// receivers on the second, the others spare: where senders land when
/// theirs goes).
pub fn cluster_of(pairs: u32, msg_servers: usize) -> Cluster {
    let users = users(pairs);
    let refs: Vec<(u32, &str, &str)> = users
        .iter()
        .map(|(i, n, p)| (*i, n.as_str(), p.as_str()))
        .collect();
    linked(Cluster::start(&refs, msg_servers), false)
}

/// [`cluster_of`] with its database on the MariaDB at `url` (a private
/// one the test takes away).
pub fn cluster_on(pairs: u32, url: &str, msg_servers: usize) -> Cluster {
    let users = users(pairs);
    let refs: Vec<(u32, &str, &str)> = users
        .iter()
        .map(|(i, n, p)| (*i, n.as_str(), p.as_str()))
        .collect();
    linked(Cluster::start_on(url, &refs, msg_servers), false)
}

/// `cluster` once every msg_server has all its links.
fn linked(cluster: Cluster, redundant: bool) -> Cluster {
    for (p, _) in &cluster.msg_servers {
        p.wait_log("is the master");
        // Two db_proxy entries, two links each.
        p.wait_log_count("connected to db_proxy", 4);
        p.wait_log_count("connected to route_server", 1 + usize::from(redundant));
    }
    cluster
}

/// [`cluster_with`] one peer of each kind.
pub fn cluster(pairs: u32) -> Cluster {
    cluster_with(pairs, false)
}

/// A sender's raw connection: its writer, and what its reader thread took
/// off the socket.
pub struct RawClient {
    stream: TcpStream,
    inbox: Receiver<ImPdu>,
    /// The logged-in user.
    pub user_id: u32,
    aes: Aes,
    /// The msg_server's port.
    port: u16,
}

impl RawClient {
    /// Logs in at msg_server `port` (panics if it cannot).
    pub fn login(port: u16, name: &str, password: &str) -> RawClient {
        RawClient::try_login(port, name, password).expect("sender login")
    }

    /// Logs in at msg_server `port`; an error for a connection refused or
    /// closed, or a login refused (a msg_server that is stopping).
    fn try_login(port: u16, name: &str, password: &str) -> Result<RawClient, String> {
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut reader = stream.try_clone().map_err(|e| e.to_string())?;
        let (tx, inbox) = unbounded();
        std::thread::spawn(move || {
            while let Ok(pdu) = read_pdu(&mut reader) {
                if tx.send(pdu).is_err() {
                    break;
                }
            }
        });
        let mut c = RawClient {
            stream,
            inbox,
            user_id: 0,
            aes: Aes::new(AES_KEY.as_bytes()).expect("aes"),
            port,
        };
        let req = IMLoginReq {
            user_name: name.into(),
            password: base::md5::md5_hex(password.as_bytes()),
            online_status: UserStatType::USER_STATUS_ONLINE,
            client_type: ClientType::CLIENT_TYPE_WINDOWS,
            client_version: Some("fault-harness".into()),
        };
        c.send(&ImPdu::for_msg(1, &req).expect("login pdu"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let pdu = c
                .inbox
                .recv_timeout(left)
                .map_err(|e| format!("login answer: {e}"))?;
            if pdu.command_id() == cid::LOGIN_RES_USERLOGIN {
                let res: IMLoginRes = pdu.msg().map_err(|e| e.to_string())?;
                let info = res
                    .user_info
                    .ok_or_else(|| format!("login refused: {:?}", res.result_code))?;
                c.user_id = info.user_id;
                return Ok(c);
            }
        }
    }

    /// Logs in again through login_server (`login_http`: its HTTP
    /// address), as a real client whose msg_server went away: asks for a
    /// msg_server and logs in there, trying again until one takes it.
    fn relogin(login_http: &str, name: &str, password: &str) -> RawClient {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let tried = tt_client::discovery::via_http(login_http)
                .map_err(|e| e.to_string())
                .and_then(|m| RawClient::try_login(m.port, name, password));
            match tried {
                Ok(c) => return c,
                Err(e) if Instant::now() < deadline => {
                    if std::env::var_os("TT_FAULT_DEBUG").is_some() {
                        eprintln!("{name}: login again: {e}");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("{name} could not log in again: {e}"),
            }
        }
    }

    /// Writes `pdu` (a write to a closed connection shows as unanswered).
    pub fn send(&mut self, pdu: &ImPdu) {
        // A write to a closed connection shows as unanswered sends.
        let _ = write_pdu(&mut self.stream, pdu);
    }

    /// A text message `text` to user `to` under `seq`.
    pub fn send_text(&mut self, seq: u16, to: u32, text: &str) {
        let msg = IMMsgData {
            from_user_id: self.user_id,
            to_session_id: to,
            msg_id: 0,
            create_time: 0,
            msg_type: MsgType::MSG_TYPE_SINGLE_TEXT,
            msg_data: self
                .aes
                .encrypt(text.as_bytes())
                .expect("encrypt")
                .into_bytes(),
            attach_data: None,
        };
        self.send(&ImPdu::for_msg(seq, &msg).expect("msg pdu"));
    }

    /// The next PDU of `command` that arrives within `wait` (others are
    /// passed over).
    pub fn next_of(&self, command: u16, wait: Duration) -> Option<ImPdu> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let pdu = self.inbox.recv_timeout(left).ok()?;
            if pdu.command_id() == command {
                return Some(pdu);
            }
        }
    }
}

/// What one sender did in a phase.
#[derive(Debug, Default)]
struct Sent {
    /// seq -> (text, when sent).
    sent: HashMap<u16, (String, Instant)>,
    /// seq -> (msg_id, when acked).
    acked: HashMap<u16, (u32, Instant)>,
}

/// What a receiver got: (from, msg_id, text, when).
type Got = Arc<Mutex<Vec<(u32, u32, String, Instant)>>>;

/// One pair: the sender's raw client and the receiver's collector.
struct Pair {
    index: u32,
    sender: Option<RawClient>,
    receiver_id: u32,
    receiver_name: String,
    receiver_password: String,
    got: Got,
    next_seq: u16,
}

/// The pairs, logged in; receivers collect in their own threads until
/// the traffic is dropped.
pub struct Traffic {
    pairs: Vec<Pair>,
    stop_receivers: Arc<AtomicBool>,
    receivers: Vec<std::thread::JoinHandle<()>>,
    /// Messages per second per pair.
    pub rate_per_pair: u32,
    /// login_server's HTTP address, where a sender whose msg_server went
    /// away asks for another.
    login_http: String,
}

impl Traffic {
    /// Logs `pairs` senders in at msg_server 0 and receivers at 1.
    pub fn start(cluster: &Cluster, pairs: u32, rate_per_pair: u32) -> Traffic {
        let (p0, p1) = (cluster.msg_servers[0].1, cluster.msg_servers[1].1);
        let stop = Arc::new(AtomicBool::new(false));
        let mut out = Vec::new();
        let mut receivers = Vec::new();
        for i in 1..=pairs {
            let sender = RawClient::login(p0, &format!("s{i}"), &format!("pw{i}"));
            let (rid, rname, rpw) = (100 + i, format!("r{i}"), format!("pw{}", 100 + i));
            let mut session = Session::login(
                &format!("127.0.0.1:{p1}"),
                &rname,
                &rpw,
                &LoginOptions::default(),
            )
            .expect("receiver login");
            let got: Got = Arc::default();
            let (g, st) = (got.clone(), stop.clone());
            receivers.push(std::thread::spawn(move || {
                while !st.load(Ordering::SeqCst) {
                    match session.next_event(Duration::from_millis(50)) {
                        Ok(Some(Event::Message(m))) => {
                            g.lock()
                                .unwrap()
                                .push((m.from, m.msg_id, m.text, m.received_at))
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }));
            out.push(Pair {
                index: i,
                sender: Some(sender),
                receiver_id: rid,
                receiver_name: rname,
                receiver_password: rpw,
                got,
                next_seq: 10,
            });
        }
        Traffic {
            pairs: out,
            stop_receivers: stop,
            receivers,
            rate_per_pair,
            login_http: cluster.login_http(),
        }
    }

    /// Runs traffic for `before`, then `fault` (which returns when the
    /// peer is back: that moment is the restart), then traffic for
    /// `after`; then waits for acks and deliveries and accounts for every
    /// message. `fault_name` names the phase in the report.
    pub fn phase(
        &mut self,
        cluster: &mut Cluster,
        fault_name: &str,
        before: Duration,
        after: Duration,
        fault: impl FnOnce(&mut Cluster),
    ) -> Report {
        let stop = Arc::new(AtomicBool::new(false));
        let interval = Duration::from_micros(1_000_000 / u64::from(self.rate_per_pair.max(1)));
        let mut handles = Vec::new();
        let pairs = self.pairs.len() as u32;
        for pair in &mut self.pairs {
            let mut client = pair.sender.take().expect("sender");
            let to = pair.receiver_id;
            let (index, first_seq) = (pair.index, pair.next_seq);
            let st = stop.clone();
            let login_http = self.login_http.clone();
            handles.push(std::thread::spawn(move || {
                let (name, password) = (format!("s{index}"), format!("pw{index}"));
                let mut log = Sent::default();
                let mut seq = first_seq;
                // Senders spread over the interval, as independent users
                // are (not all on one grid that a fault could hit at once).
                let mut next = Instant::now() + interval * (index - 1) / pairs;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
                // Takes the acks off the inbox; false once the connection
                // is gone and everything it brought was taken.
                let collect = |client: &RawClient, log: &mut Sent| -> bool {
                    loop {
                        match client.inbox.try_recv() {
                            Ok(pdu) => {
                                if pdu.command_id() == cid::MSG_DATA_ACK {
                                    if let Ok(ack) = pdu.msg::<IMMsgDataAck>() {
                                        log.acked
                                            .entry(pdu.seq_num())
                                            .or_insert((ack.msg_id, Instant::now()));
                                    }
                                }
                            }
                            Err(TryRecvError::Empty) => return true,
                            Err(TryRecvError::Disconnected) => return false,
                        }
                    }
                };
                while !st.load(Ordering::SeqCst) {
                    if !collect(&client, &mut log) {
                        // Our msg_server went away: log in again elsewhere
                        // and go on (what is due meanwhile goes out late).
                        client = RawClient::relogin(&login_http, &name, &password);
                    }
                    let text = format!("p{index}-{seq}");
                    let msg = IMMsgData {
                        from_user_id: client.user_id,
                        to_session_id: to,
                        msg_id: 0,
                        create_time: 0,
                        msg_type: MsgType::MSG_TYPE_SINGLE_TEXT,
                        msg_data: client
                            .aes
                            .encrypt(text.as_bytes())
                            .expect("encrypt")
                            .into_bytes(),
                        attach_data: None,
                    };
                    let pdu = ImPdu::for_msg(seq, &msg).expect("msg pdu");
                    client.send(&pdu);
                    log.sent.insert(seq, (text, Instant::now()));
                    seq = seq.wrapping_add(1).max(10);
                    next += interval;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                // Acks still to come: what was held is answered within the
                // hold's 8 s bound.
                let deadline = Instant::now() + Duration::from_secs(10);
                while log.acked.len() < log.sent.len() && Instant::now() < deadline {
                    if !collect(&client, &mut log) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                collect(&client, &mut log);
                (client, log, seq)
            }));
        }
        std::thread::sleep(before);
        let fault_at = Instant::now();
        fault(cluster);
        let back_at = Instant::now();
        std::thread::sleep(after);
        stop.store(true, Ordering::SeqCst);
        let mut logs = Vec::new();
        for (pair, h) in self.pairs.iter_mut().zip(handles) {
            let (client, log, seq) = h.join().expect("sender thread");
            pair.sender = Some(client);
            pair.next_seq = seq;
            logs.push(log);
        }
        // Deliveries of what was acked last.
        let deadline = Instant::now() + Duration::from_secs(6);
        loop {
            let all = self.pairs.iter().zip(&logs).all(|(p, l)| {
                let got = p.got.lock().unwrap();
                let ids: HashSet<u32> = got.iter().map(|g| g.1).collect();
                l.acked.values().all(|(id, _)| ids.contains(id))
            });
            if all || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut report = Report {
            fault: fault_name.to_string(),
            ..Report::default()
        };
        for (pair, log) in self.pairs.iter().zip(&logs) {
            let got: Vec<_> = std::mem::take(&mut *pair.got.lock().unwrap());
            let history = history_of(cluster, pair, log);
            report.add(pair.index, log, &got, &history, fault_at, back_at);
        }
        report.exited = cluster.exited();
        report
    }

    /// The index in `cluster.msg_servers` of the msg_server the first
    /// sender is logged in at (between phases).
    pub fn senders_msg_server(&self, cluster: &Cluster) -> usize {
        let port = self.pairs[0].sender.as_ref().map_or(0, |c| c.port);
        cluster
            .msg_servers
            .iter()
            .position(|m| m.1 == port)
            .expect("the senders' msg_server")
    }

    /// Stops the receivers.
    pub fn stop(self) {
        self.stop_receivers.store(true, Ordering::SeqCst);
        for h in self.receivers {
            let _ = h.join();
        }
    }
}

/// The receiver's stored messages from its sender (msg_id -> text), read
/// through msg_server with a second (mobile) session of the receiver.
fn history_of(cluster: &Cluster, pair: &Pair, log: &Sent) -> HashMap<u32, String> {
    let opts = LoginOptions {
        client_type: ClientType::CLIENT_TYPE_ANDROID,
        ..LoginOptions::default()
    };
    let mut s = Session::login(
        &format!("127.0.0.1:{}", cluster.msg_servers[1].1),
        &pair.receiver_name,
        &pair.receiver_password,
        &opts,
    )
    .expect("history session");
    let sender_id = pair.sender.as_ref().map_or(0, |c| c.user_id);
    let lowest = log.acked.values().map(|(id, _)| *id).min().unwrap_or(1);
    let mut out = HashMap::new();
    let mut begin = 0;
    loop {
        let page = s
            .history(sender_id, SessionType::SESSION_TYPE_SINGLE, begin, 100)
            .expect("history");
        let Some(min) = page.iter().map(|m| m.msg_id).min() else {
            break;
        };
        for m in &page {
            out.insert(m.msg_id, s.decrypt(m));
        }
        if min <= lowest || min <= 1 {
            break;
        }
        begin = min - 1;
    }
    let _ = s.logout();
    out
}

/// Every message of a phase accounted for.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// The phase.
    pub fault: String,
    /// Messages sent.
    pub sent: usize,
    /// Never acked.
    pub unanswered: usize,
    /// Never acked, yet stored (in the receiver's history): a client that
    /// sends it again makes a duplicate. A graceful stop must leave none.
    pub unanswered_stored: usize,
    /// Acked, and delivered live.
    pub live: usize,
    /// Acked, not delivered live, but in the receiver's history under its id.
    pub acked_not_live: usize,
    /// Acked, and neither delivered nor stored under its id: lost.
    pub acked_lost: usize,
    /// Acked, but not in history under its id with its text.
    pub acked_not_stored: usize,
    /// A message id delivered more than once to a receiver.
    pub duplicates: usize,
    /// Delivered with a text other than the one acked under that id.
    pub mismatched: usize,
    /// From the peer's restart to the first live delivery of a message
    /// sent after it.
    pub flow_again: Option<Duration>,
    /// Longest ack latency of the phase.
    pub max_ack: Duration,
    /// Servers that exited.
    pub exited: Vec<String>,
}

impl Report {
    fn add(
        &mut self,
        _pair: u32,
        log: &Sent,
        got: &[(u32, u32, String, Instant)],
        history: &HashMap<u32, String>,
        _fault_at: Instant,
        back_at: Instant,
    ) {
        self.sent += log.sent.len();
        let mut seen: HashMap<u32, usize> = HashMap::new();
        for g in got {
            *seen.entry(g.1).or_default() += 1;
        }
        self.duplicates += seen.values().filter(|&&n| n > 1).count();
        let stored: std::collections::HashSet<&String> = history.values().collect();
        for (seq, (text, sent_at)) in &log.sent {
            let Some((id, acked_at)) = log.acked.get(seq) else {
                self.unanswered += 1;
                if stored.contains(text) {
                    self.unanswered_stored += 1;
                }
                if std::env::var_os("TT_FAULT_DEBUG").is_some() {
                    eprintln!(
                        "unanswered seq {seq}: sent {:?} after the fault began",
                        sent_at.checked_duration_since(_fault_at)
                    );
                }
                continue;
            };
            self.max_ack = self.max_ack.max(acked_at.duration_since(*sent_at));
            if history.get(id) != Some(text) {
                self.acked_not_stored += 1;
            }
            let live: Vec<_> = got.iter().filter(|g| g.1 == *id).collect();
            if let Some(g) = live.first() {
                if &g.2 != text {
                    self.mismatched += 1;
                }
                self.live += 1;
                if *sent_at >= back_at {
                    let flow = g.3.duration_since(back_at);
                    self.flow_again = Some(self.flow_again.map_or(flow, |f| f.min(flow)));
                }
            } else if history.get(id) == Some(text) {
                self.acked_not_live += 1;
            } else {
                self.acked_lost += 1;
            }
        }
    }

    /// One line for the table.
    pub fn line(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            self.fault,
            self.sent,
            self.unanswered,
            self.acked_not_live,
            self.acked_lost + self.acked_not_stored,
            self.duplicates,
            self.flow_again
                .map_or("-".to_string(), |d| format!("{:.2} s", d.as_secs_f64())),
            if self.exited.is_empty() {
                "none".to_string()
            } else {
                self.exited.join(", ")
            }
        )
    }
}

/// The table's head, for [`Report::line`].
pub const TABLE_HEAD: &str = "| fault | sent | unanswered | acked, not live (history only) | acked, lost or not stored | delivered twice | flows again after the restart | servers that died |\n|---|---|---|---|---|---|---|---|";

/// A fault: returns once the peer is back.
pub type Inject = Box<dyn FnOnce(&mut Cluster)>;

/// kill -9 of db_proxy, back after `down`.
pub fn kill_db_proxy(down: Duration) -> impl FnOnce(&mut Cluster) {
    move |c: &mut Cluster| {
        c.stop_db_proxy();
        std::thread::sleep(down);
        c.restart_db_proxy();
    }
}

/// SIGTERM of db_proxy (it drains, then exits), back `down` after it
/// exited.
pub fn term_db_proxy(down: Duration) -> impl FnOnce(&mut Cluster) {
    move |c: &mut Cluster| {
        c.terminate_db_proxy();
        std::thread::sleep(down);
        c.restart_db_proxy();
    }
}

/// kill -9 of route_server, back after `down`.
pub fn kill_route_server(down: Duration) -> impl FnOnce(&mut Cluster) {
    move |c: &mut Cluster| {
        c.stop_route_server();
        std::thread::sleep(down);
        c.restart_route_server();
    }
}

/// kill -9 of the second of two db_proxies, back after `down`.
pub fn kill_one_of_two_db_proxies(down: Duration) -> impl FnOnce(&mut Cluster) {
    move |c: &mut Cluster| {
        c.stop_second_db_proxy();
        std::thread::sleep(down);
        c.restart_second_db_proxy();
    }
}

/// kill -9 of msg_server `idx` (its clients log in again through
/// login_server); returns at once: what is measured is how soon its
/// clients' messages flow again through another.
pub fn kill_msg_server(idx: usize) -> impl FnOnce(&mut Cluster) {
    move |c: &mut Cluster| c.msg_servers[idx].0.stop()
}

/// SIGTERM of msg_server `idx`: it finishes what is in flight, closes its
/// clients (they log in again through login_server) and exits with 0;
/// returns once it has exited.
pub fn term_msg_server(idx: usize) -> impl FnOnce(&mut Cluster) {
    move |c: &mut Cluster| {
        let p = &mut c.msg_servers[idx].0;
        p.terminate();
        assert_eq!(p.wait_exit(), Some(0), "msg_server's exit after SIGTERM");
    }
}

/// The private MariaDB killed (kill -9), back after `down` (with its crash
/// recovery: the peer is back when it takes a login).
pub fn kill_mariadb(server: &mut MariaDbServer, down: Duration) -> impl FnOnce(&mut Cluster) + '_ {
    move |_: &mut Cluster| {
        server.kill();
        std::thread::sleep(down);
        server.restart();
    }
}

/// The private MariaDB stopped cleanly (SIGTERM, as `service mariadb
/// stop`), started again after `down`.
pub fn stop_mariadb(server: &mut MariaDbServer, down: Duration) -> impl FnOnce(&mut Cluster) + '_ {
    move |_: &mut Cluster| {
        server.stop();
        std::thread::sleep(down);
        server.restart();
    }
}

/// The private Redis killed, back (empty) after `down`.
pub fn kill_redis(down: Duration) -> impl FnOnce(&mut Cluster) {
    move |c: &mut Cluster| {
        c.redis.stop();
        std::thread::sleep(down);
        c.redis.restart();
    }
}
