//! The idle clients: one mio loop over every client socket. Each client
//! asks login_server's HTTP port for a msg_server (or takes one from
//! `--server`), connects to it, logs in, then only heartbeats (as the real
//! clients do, every 30 s unless told otherwise) until the hold is over.
//!
//! Every socket is bound to a chosen source address with
//! `IP_BIND_ADDRESS_NO_PORT`, so the kernel picks the port at connect time
//! from the whole 4-tuple (a plain `bind` picks it alone, and runs out, or
//! gets slow, with many thousand sockets and TIME_WAITs).
//!
//! Decisions are pure functions of counts and the time ([`may_start`]);
//! the loop's queues hold work in time order, so a turn costs what is due,
//! not one step per client.

use crate::limits;
use base::md5::md5_hex;
use base::pdu::{is_pdu_available_within, ImPdu, CLIENT_MAX_PDU_LEN};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};
use tt_proto::cid;
use tt_proto::IM::BaseDefine::{ClientType, ResultType, UserStatType};
use tt_proto::IM::Login::{IMLoginReq, IMLoginRes};
use tt_proto::IM::Other::IMHeartBeat;

/// Longest HTTP answer from login_server kept.
const MAX_HTTP_ANSWER: usize = 16 * 1024;
/// Distinct failure reasons counted (the rest count as "other").
const MAX_REASONS: usize = 32;

/// What one run does.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// login_server's HTTP port, asked once per client.
    pub login: String,
    /// msg_servers to use directly (client i takes i mod n); skips login_server.
    pub servers: Vec<SocketAddr>,
    /// (name, plain password) of each client.
    pub users: Vec<(String, String)>,
    /// Logins started per second.
    pub rate: f64,
    /// Most clients between their start and their login answer.
    pub in_flight: usize,
    /// How long the clients are held once every login is answered.
    pub hold: Duration,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// What the clients log in as.
    pub client_type: ClientType,
    /// Local addresses to connect from, client i from i mod n (none: the
    /// kernel's choice).
    pub source_ips: Vec<IpAddr>,
    /// A client whose login is not answered within this is failed.
    pub login_timeout: Duration,
    /// Created when every login has been answered.
    pub ready_file: Option<String>,
    /// Slept between turns (zero: wait in epoll as a real client would).
    /// Many clients share one process and the servers' cores, so one
    /// wake-up for all that became ready keeps the bench's cost its own.
    pub batch: Duration,
}

/// Where a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Discovering,
    LoggingIn,
    Idle,
    Failed,
    Lost,
    Kicked,
}

#[derive(Debug)]
struct Client {
    phase: Phase,
    stream: Option<TcpStream>,
    /// Counts the sockets this client opened: part of its token, so an
    /// event of a closed socket never reaches the next one.
    generation: u8,
    connected: bool,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    /// The msg_server it was sent to.
    server: Option<SocketAddr>,
    heartbeat_replies: u32,
}

/// Clients allowed to start now: `elapsed_ms` into the run at `rate` per
/// second (the first at once), `started` so far, `in_flight` of at most
/// `max_in_flight` awaiting their login answer.
pub fn may_start(
    elapsed_ms: u64,
    started: u64,
    in_flight: u64,
    rate: f64,
    max_in_flight: u64,
) -> u64 {
    let by_rate = (elapsed_ms as f64 * rate / 1000.0).floor() as u64 + 1;
    by_rate
        .saturating_sub(started)
        .min(max_in_flight.saturating_sub(in_flight))
}

/// What a run found.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Clients asked for.
    pub users: u64,
    /// Logins accepted.
    pub logins_ok: u64,
    /// Logins refused, timed out or whose connection failed.
    pub logins_failed: u64,
    /// From the first start to the last login answer.
    pub login_secs: f64,
    /// Still logged in at the end of the hold.
    pub held: u64,
    /// Logged in, then the connection was lost.
    pub lost: u64,
    /// Logged in, then kicked.
    pub kicked: u64,
    /// Heartbeats sent.
    pub heartbeats_sent: u64,
    /// Fewest heartbeat answers of a held client.
    pub min_heartbeat_replies: u32,
    /// Clients per msg_server.
    pub per_server: BTreeMap<String, u64>,
    /// Why logins failed, with counts.
    pub failures: BTreeMap<String, u64>,
    /// How long the hold lasted.
    pub hold_secs: f64,
}

/// The loop's state.
struct Run {
    plan: RunPlan,
    login_addr: Option<SocketAddr>,
    poll: Poll,
    clients: Vec<Client>,
    origin: Instant,
    next_start: usize,
    in_flight: u64,
    /// (deadline ms, client) of logins in flight, in start order.
    login_deadlines: VecDeque<(u64, usize)>,
    /// (due ms, client) of heartbeats, in time order.
    heartbeats: VecDeque<(u64, usize)>,
    seq: u16,
    out: Outcome,
    last_answer_ms: u64,
}

fn token(index: usize, generation: u8) -> Token {
    Token(index << 8 | usize::from(generation))
}

fn untoken(t: Token) -> (usize, u8) {
    (t.0 >> 8, (t.0 & 0xff) as u8)
}

/// A non-blocking connect to `target` from `source`, the port left to
/// the kernel at connect time.
fn connect_socket(target: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    if let Some(ip) = source {
        netlib::bind_source(&socket, ip)?;
    }
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// Reads what `stream` has into `buf` (at most `limit` bytes kept);
/// true when the peer closed or the read failed.
fn read_all(stream: &mut TcpStream, buf: &mut Vec<u8>, limit: usize) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => {
                if buf.len() + n > limit {
                    return true;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// The msg_server address in login_server's HTTP answer, or why not.
fn parse_discovery(answer: &[u8]) -> Result<SocketAddr, String> {
    let text = String::from_utf8_lossy(answer);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or("login_server: HTTP answer without a body")?;
    let json: serde_json::Value =
        serde_json::from_str(body).map_err(|_| "login_server: answer is not JSON".to_string())?;
    let code = json["code"].as_u64().unwrap_or(u64::MAX);
    if code != 0 {
        return Err(format!("login_server refused: code {code}"));
    }
    let ip = json["priorIP"].as_str().unwrap_or_default();
    let port: u16 = json["port"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .ok_or("login_server: no port in the answer")?;
    format!("{ip}:{port}")
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("login_server named an unusable address {ip}:{port}"))
}

impl Run {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn source(&self, index: usize) -> Option<IpAddr> {
        let ips = &self.plan.source_ips;
        (!ips.is_empty()).then(|| ips[index % ips.len()])
    }

    fn next_seq(&mut self) -> u16 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Opens client `index`'s next socket, to `target`.
    fn open(&mut self, index: usize, target: SocketAddr) -> Result<(), String> {
        let source = self.source(index);
        let mut stream =
            connect_socket(target, source).map_err(|e| format!("connect to {target}: {e}"))?;
        let c = &mut self.clients[index];
        c.generation = c.generation.wrapping_add(1);
        self.poll
            .registry()
            .register(
                &mut stream,
                token(index, c.generation),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("register: {e}"))?;
        c.stream = Some(stream);
        c.connected = false;
        c.inbuf = Vec::new();
        Ok(())
    }

    fn close_socket(&mut self, index: usize) {
        let c = &mut self.clients[index];
        if let Some(mut s) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        c.inbuf = Vec::new();
        c.out = Vec::new();
    }

    fn count_failure(&mut self, reason: String) {
        let failures = &mut self.out.failures;
        if failures.len() < MAX_REASONS || failures.contains_key(&reason) {
            *failures.entry(reason).or_insert(0) += 1;
        } else {
            *failures.entry("other".into()).or_insert(0) += 1;
        }
    }

    /// Client `index`'s login failed (before it was logged in).
    fn fail(&mut self, index: usize, reason: String) {
        if !matches!(
            self.clients[index].phase,
            Phase::Discovering | Phase::LoggingIn
        ) {
            return;
        }
        self.close_socket(index);
        self.clients[index].phase = Phase::Failed;
        self.in_flight -= 1;
        self.out.logins_failed += 1;
        self.last_answer_ms = self.now_ms();
        self.count_failure(reason);
    }

    fn start(&mut self, index: usize) {
        let now = self.now_ms();
        self.in_flight += 1;
        self.login_deadlines
            .push_back((now + self.plan.login_timeout.as_millis() as u64, index));
        let result = match (self.plan.servers.is_empty(), self.login_addr) {
            (true, Some(login)) => {
                self.clients[index].phase = Phase::Discovering;
                self.open(index, login)
            }
            (true, None) => Err("no login_server address".into()),
            (false, _) => {
                let target = self.plan.servers[index % self.plan.servers.len()];
                self.clients[index].phase = Phase::LoggingIn;
                self.clients[index].server = Some(target);
                self.open(index, target)
            }
        };
        if let Err(reason) = result {
            self.clients[index].phase = Phase::Discovering;
            self.fail(index, reason);
        }
    }

    /// Writes what client `index` has queued; false when the socket failed.
    fn flush(&mut self, index: usize) -> bool {
        let c = &mut self.clients[index];
        let Some(stream) = c.stream.as_mut() else {
            return false;
        };
        while !c.out.is_empty() {
            match stream.write(&c.out) {
                Ok(0) => return false,
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        c.out = Vec::new();
        true
    }

    fn queue_pdu(&mut self, index: usize, pdu: &ImPdu) -> bool {
        self.clients[index].out.extend_from_slice(pdu.as_bytes());
        self.flush(index)
    }

    /// A connect finished: Ok(true) connected, Ok(false) not yet.
    fn check_connected(&mut self, index: usize) -> Result<bool, String> {
        let c = &mut self.clients[index];
        if c.connected {
            return Ok(true);
        }
        let Some(stream) = c.stream.as_mut() else {
            return Err("no socket".into());
        };
        if let Ok(Some(e)) | Err(e) = stream.take_error() {
            return Err(format!("connect: {e}"));
        }
        match stream.peer_addr() {
            Ok(_) => {
                c.connected = true;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(format!("connect: {e}")),
        }
    }

    fn on_event(&mut self, index: usize) {
        match self.clients[index].phase {
            Phase::Discovering => self.on_discovery_event(index),
            Phase::LoggingIn | Phase::Idle => self.on_msg_server_event(index),
            _ => {}
        }
    }

    fn on_discovery_event(&mut self, index: usize) {
        let was_connected = self.clients[index].connected;
        match self.check_connected(index) {
            Ok(true) => {}
            Ok(false) => return,
            Err(reason) => return self.fail(index, format!("login_server {reason}")),
        }
        if !was_connected {
            let login = self.plan.login.clone();
            let req =
                format!("GET /msg_server HTTP/1.1\r\nHost: {login}\r\nConnection: close\r\n\r\n");
            self.clients[index].out = req.into_bytes();
        }
        if !self.flush(index) {
            return self.fail(index, "login_server: write failed".into());
        }
        let c = &mut self.clients[index];
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        if !read_all(stream, &mut c.inbuf, MAX_HTTP_ANSWER) {
            return; // more to come
        }
        let answer = std::mem::take(&mut c.inbuf);
        self.close_socket(index);
        match parse_discovery(&answer) {
            Ok(target) => {
                self.clients[index].phase = Phase::LoggingIn;
                self.clients[index].server = Some(target);
                if let Err(reason) = self.open(index, target) {
                    self.fail(index, reason);
                }
            }
            Err(reason) => self.fail(index, reason),
        }
    }

    fn on_msg_server_event(&mut self, index: usize) {
        let was_connected = self.clients[index].connected;
        match self.check_connected(index) {
            Ok(true) => {}
            Ok(false) => return,
            Err(reason) => return self.fail(index, format!("msg_server {reason}")),
        }
        if !was_connected {
            let (name, pass) = self.plan.users[index].clone();
            let req = IMLoginReq {
                user_name: name,
                password: md5_hex(pass.as_bytes()),
                online_status: UserStatType::USER_STATUS_ONLINE,
                client_type: self.plan.client_type,
                client_version: Some("tt-idle".into()),
            };
            let seq = self.next_seq();
            match ImPdu::for_msg(seq, &req) {
                Ok(pdu) => self.clients[index].out.extend_from_slice(pdu.as_bytes()),
                Err(e) => return self.fail(index, format!("login request: {e}")),
            }
        }
        if !self.flush(index) {
            return self.gone(index, "write failed");
        }
        let c = &mut self.clients[index];
        let Some(stream) = c.stream.as_mut() else {
            return;
        };
        let closed = read_all(stream, &mut c.inbuf, 2 * CLIENT_MAX_PDU_LEN as usize);
        loop {
            let c = &mut self.clients[index];
            let len = match is_pdu_available_within(&c.inbuf, CLIENT_MAX_PDU_LEN) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => return self.gone(index, &format!("bad PDU: {e}")),
            };
            let frame: Vec<u8> = c.inbuf.drain(..len).collect();
            if c.inbuf.is_empty() {
                c.inbuf = Vec::new();
            }
            match ImPdu::from_frame(frame) {
                Ok(pdu) => self.on_pdu(index, &pdu),
                Err(e) => return self.gone(index, &format!("bad PDU: {e}")),
            }
            if !matches!(self.clients[index].phase, Phase::LoggingIn | Phase::Idle) {
                return;
            }
        }
        if closed {
            self.gone(index, "closed by the msg_server");
        }
    }

    /// The connection of client `index` ended.
    fn gone(&mut self, index: usize, why: &str) {
        match self.clients[index].phase {
            Phase::LoggingIn => self.fail(index, format!("msg_server: {why}")),
            Phase::Idle => {
                self.close_socket(index);
                self.clients[index].phase = Phase::Lost;
                self.out.lost += 1;
                if self.out.lost <= 10 {
                    eprintln!("tt-idle: client {index} lost: {why}");
                }
            }
            _ => {}
        }
    }

    fn on_pdu(&mut self, index: usize, pdu: &ImPdu) {
        match pdu.command_id() {
            cid::LOGIN_RES_USERLOGIN if self.clients[index].phase == Phase::LoggingIn => {
                match pdu.msg::<IMLoginRes>() {
                    Ok(r) if r.result_code == ResultType::REFUSE_REASON_NONE => {
                        let now = self.now_ms();
                        self.clients[index].phase = Phase::Idle;
                        self.in_flight -= 1;
                        self.out.logins_ok += 1;
                        self.last_answer_ms = now;
                        let key = self.clients[index]
                            .server
                            .map_or_else(|| "?".into(), |s| s.to_string());
                        *self.out.per_server.entry(key).or_insert(0) += 1;
                        self.heartbeats
                            .push_back((now + self.plan.heartbeat.as_millis() as u64, index));
                    }
                    Ok(r) => self.fail(index, format!("login refused: {:?}", r.result_code)),
                    Err(e) => self.fail(index, format!("login answer: {e}")),
                }
            }
            cid::OTHER_HEARTBEAT => self.clients[index].heartbeat_replies += 1,
            cid::LOGIN_KICK_USER if self.clients[index].phase == Phase::Idle => {
                self.close_socket(index);
                self.clients[index].phase = Phase::Kicked;
                self.out.kicked += 1;
            }
            _ => {}
        }
    }

    /// Heartbeats and login deadlines that are due at `now`.
    fn due(&mut self, now: u64) {
        while let Some(&(at, index)) = self.heartbeats.front() {
            if at > now {
                break;
            }
            self.heartbeats.pop_front();
            if self.clients[index].phase != Phase::Idle {
                continue;
            }
            let seq = self.next_seq();
            if let Ok(pdu) = ImPdu::for_msg(seq, &IMHeartBeat {}) {
                self.out.heartbeats_sent += 1;
                if !self.queue_pdu(index, &pdu) {
                    self.gone(index, "heartbeat write failed");
                    continue;
                }
            }
            self.heartbeats
                .push_back((now + self.plan.heartbeat.as_millis() as u64, index));
        }
        while let Some(&(at, index)) = self.login_deadlines.front() {
            if at > now {
                break;
            }
            self.login_deadlines.pop_front();
            self.fail(index, "login not answered in time".into());
        }
    }

    fn all_answered(&self) -> bool {
        self.next_start == self.clients.len() && self.in_flight == 0
    }

    /// One turn: waits up to `max_wait_ms` for events, or with a batch
    /// sleeps it (heartbeats and starts a few ms late do not matter) and
    /// takes what is ready; then handles them.
    fn turn(&mut self, events: &mut Events, max_wait_ms: u64) {
        if self.plan.batch.is_zero() {
            return self.poll_once(events, Some(Duration::from_millis(max_wait_ms)));
        }
        std::thread::sleep(self.plan.batch);
        loop {
            self.poll_once(events, Some(Duration::ZERO));
            if events.iter().count() < events.capacity() {
                return;
            }
        }
    }

    fn poll_once(&mut self, events: &mut Events, timeout: Option<Duration>) {
        if let Err(e) = self.poll.poll(events, timeout) {
            if e.kind() != ErrorKind::Interrupted {
                eprintln!("tt-idle: poll failed: {e}");
            }
            events.clear();
            return;
        }
        for ev in events.iter() {
            let (index, generation) = untoken(ev.token());
            if self
                .clients
                .get(index)
                .is_some_and(|c| c.generation == generation && c.stream.is_some())
            {
                self.on_event(index);
            }
        }
    }
}

/// Logs every client in, holds them, and says what happened.
pub fn run(plan: RunPlan) -> Result<Outcome, String> {
    let login_addr = if plan.servers.is_empty() {
        Some(
            plan.login
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| format!("cannot resolve {}", plan.login))?,
        )
    } else {
        None
    };
    let n = plan.users.len();
    let mut run = Run {
        login_addr,
        poll: Poll::new().map_err(|e| format!("epoll: {e}"))?,
        clients: (0..n)
            .map(|_| Client {
                phase: Phase::Waiting,
                stream: None,
                generation: 0,
                connected: false,
                inbuf: Vec::new(),
                out: Vec::new(),
                server: None,
                heartbeat_replies: 0,
            })
            .collect(),
        origin: Instant::now(),
        next_start: 0,
        in_flight: 0,
        login_deadlines: VecDeque::new(),
        heartbeats: VecDeque::new(),
        seq: 0,
        out: Outcome {
            users: n as u64,
            ..Outcome::default()
        },
        last_answer_ms: 0,
        plan,
    };
    let mut events = Events::with_capacity(4096);
    let mut last_progress = Instant::now();
    // Logins.
    while !run.all_answered() {
        let now = run.now_ms();
        let allowed = may_start(
            now,
            run.next_start as u64,
            run.in_flight,
            run.plan.rate,
            run.plan.in_flight as u64,
        );
        for _ in 0..allowed {
            if run.next_start == n {
                break;
            }
            let index = run.next_start;
            run.next_start += 1;
            run.start(index);
        }
        run.due(now);
        run.turn(&mut events, 2);
        if last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            eprintln!(
                "tt-idle: t={:.0}s started {} logged in {} failed {} in flight {}",
                run.origin.elapsed().as_secs_f64(),
                run.next_start,
                run.out.logins_ok,
                run.out.logins_failed,
                run.in_flight
            );
        }
    }
    run.out.login_secs = run.last_answer_ms as f64 / 1000.0;
    eprintln!(
        "tt-idle: every login answered in {:.1}s: {} logged in, {} failed; holding {:.0}s",
        run.out.login_secs,
        run.out.logins_ok,
        run.out.logins_failed,
        run.plan.hold.as_secs_f64()
    );
    if let Some(path) = &run.plan.ready_file {
        let text = format!(
            "ok {} failed {}\n",
            run.out.logins_ok, run.out.logins_failed
        );
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("tt-idle: cannot write {path}: {e}");
        }
    }
    // The hold.
    let hold_start = Instant::now();
    while hold_start.elapsed() < run.plan.hold {
        let now = run.now_ms();
        run.due(now);
        let next = run
            .heartbeats
            .front()
            .map_or(100, |&(at, _)| at.saturating_sub(now))
            .clamp(1, 100);
        run.turn(&mut events, next);
        if last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            eprintln!(
                "tt-idle: holding t={:.0}s: {} held, {} lost, {} kicked, {} heartbeats sent",
                hold_start.elapsed().as_secs_f64(),
                run.clients
                    .iter()
                    .filter(|c| c.phase == Phase::Idle)
                    .count(),
                run.out.lost,
                run.out.kicked,
                run.out.heartbeats_sent
            );
        }
    }
    run.out.hold_secs = hold_start.elapsed().as_secs_f64();
    let held: Vec<&Client> = run
        .clients
        .iter()
        .filter(|c| c.phase == Phase::Idle)
        .collect();
    run.out.held = held.len() as u64;
    run.out.min_heartbeat_replies = held.iter().map(|c| c.heartbeat_replies).min().unwrap_or(0);
    Ok(run.out)
}

/// The `--source-ips` a run needs at least, and the check of the limits
/// (after raising the soft file limit): `Err` says what to set.
pub fn check_limits(plan: &RunPlan) -> Result<(), String> {
    let hard = limits::raise_nofile().map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    let ports = limits::port_range().map_or(28_232, |(a, b)| u64::from(b.saturating_sub(a)) + 1);
    let destinations = if plan.servers.is_empty() {
        1
    } else {
        plan.servers.len() as u64
    };
    match limits::capacity_problem(
        plan.users.len() as u64,
        plan.in_flight as u64,
        hard,
        plan.source_ips.len() as u64,
        ports,
        destinations,
    ) {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_follow_the_rate_and_the_in_flight_bound() {
        assert_eq!(may_start(0, 0, 0, 1000.0, 100), 1, "the first at once");
        assert_eq!(may_start(10, 1, 1, 1000.0, 100), 10);
        assert_eq!(may_start(1000, 0, 0, 1000.0, 100), 100, "bounded in flight");
        assert_eq!(may_start(1000, 900, 100, 1000.0, 100), 0);
        assert_eq!(
            may_start(1000, 1001, 0, 1000.0, 100),
            0,
            "ahead of the rate"
        );
    }

    #[test]
    fn tokens_keep_index_and_generation() {
        assert_eq!(untoken(token(123_456, 7)), (123_456, 7));
        assert_ne!(token(1, 1), token(1, 2));
    }

    #[test]
    fn discovery_answers_parse() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"code\":0,\"priorIP\":\"127.0.0.1\",\"port\":\"8001\"}";
        assert_eq!(
            parse_discovery(ok).unwrap(),
            "127.0.0.1:8001".parse().unwrap()
        );
        let full = b"HTTP/1.1 200 OK\r\n\r\n{\"code\":2,\"msg\":\"x\"}";
        assert_eq!(
            parse_discovery(full).unwrap_err(),
            "login_server refused: code 2"
        );
        assert!(parse_discovery(b"garbage").is_err());
    }
}
