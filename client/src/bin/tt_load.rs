//! `tt-load`: the load generator.
//!
//! N users log in (the demo users, or `name,password` lines of a CSV), each
//! sends M messages at a share of a total rate to its peer (the next user)
//! or, for a share `--group-ratio`, to a group; every receiver matches what
//! arrives by content and records the send-to-arrival latency in an HDR
//! histogram. At the end: a table (p50/p90/p99/p99.9/max, msgs/s, losses:
//! sent and acked but never delivered) and a JSON file, which also splits
//! the latency of each user's first message (its pair's relation and
//! sessions may be made then, for new users) from the rest. Bounded by count
//! and time; targets must be loopback unless `--allow-remote`.
//!
//! ```text
//! tt-load [--login HOST:PORT | --server HOST:PORT] [--csv FILE] [--users N]
//!         [--messages M] [--rate MSGS_PER_S] [--group-ratio F] [--group ID]
//!         [--time-limit SECS] [--json PATH] [--aes-key KEY] [--allow-remote]
//!         [--source-ips 127.0.0.2,127.0.0.3,...]
//! ```
//!
//! All connections run on one netlib reactor thread (the generator must
//! cost the machine far less than the cluster it measures). Each user asks
//! login_server for its msg_server, as real clients do. `--source-ips`
//! spreads the connections over several local addresses (user i connects
//! from address i mod n). A user never sends faster than its pace to catch
//! up: msg_server drops a user's messages past 20/s.

use base::aes::Aes;
use base::md5::md5_hex;
use base::pdu::ImPdu;
use hdrhistogram::Histogram;
use netlib::{Ctx, Heartbeat, ImConn, Reactor};
use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, Instant};
use tt_client::discovery;
use tt_proto::IM::BaseDefine::{ClientType, MsgType, ResultType, SessionType, UserStatType};
use tt_proto::IM::Group::IMGroupInfoListRsp;
use tt_proto::IM::Login::{IMKickUser, IMLoginReq, IMLoginRes};
use tt_proto::IM::Message::{IMMsgData, IMMsgDataAck};
use tt_proto::{cid, Command};

/// What one run is asked to do.
#[derive(Debug, Clone)]
struct Plan {
    login: String,
    server: Option<String>,
    users: Vec<(String, String)>,
    messages: u64,
    rate: f64,
    group_ratio: f64,
    group: u32,
    time_limit: Duration,
    json: String,
    aes_key: String,
    source_ips: Vec<IpAddr>,
}

/// The options, for `--help` and for a mistake on the command line.
const HELP: &str = "\
usage: tt-load [--login HOST:PORT | --server HOST:PORT] [--csv FILE] [--users N]
               [--messages M] [--rate MSGS_PER_S] [--group-ratio F] [--group ID]
               [--time-limit SECS] [--json PATH] [--aes-key KEY] [--allow-remote]
               [--source-ips 127.0.0.2,127.0.0.3,...]

  --login HOST:PORT    login_server's HTTP port (default 127.0.0.1:8080)
  --server HOST:PORT   one msg_server, skipping login_server
  --csv FILE           users as `name,password` lines (default: the demo users)
  --users N            use only the first N users
  --messages M         messages each user sends (default 100)
  --rate R             total messages per second offered (default 100)
  --group-ratio F      share of messages sent to --group instead of the next user
  --group ID           the group (default 1)
  --time-limit SECS    stop after this long whatever is left (default 60)
  --json PATH          where the results go (default tt-load.json)
  --aes-key KEY        the cluster's aesKey (default: the demo key)
  --source-ips LIST    spread connections over these local addresses
  --allow-remote       allow targets outside 127.0.0.0/8
";

fn usage(msg: &str) -> ! {
    eprintln!("tt-load: {msg}\n\n{HELP}");
    std::process::exit(2);
}

fn parse_args() -> Plan {
    let mut plan = Plan {
        login: "127.0.0.1:8080".into(),
        server: None,
        users: ["alice", "bob", "carol", "dave"]
            .iter()
            .map(|n| (n.to_string(), "123456".to_string()))
            .collect(),
        messages: 100,
        rate: 100.0,
        group_ratio: 0.0,
        group: 1,
        time_limit: Duration::from_secs(60),
        json: "tt-load.json".into(),
        aes_key: tt_client::LoginOptions::default().aes_key,
        source_ips: Vec::new(),
    };
    let mut user_limit = None;
    let mut allow_remote = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--allow-remote" {
            allow_remote = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            print!("{HELP}");
            std::process::exit(0);
        }
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let num = |v: &str| -> f64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: not a number")))
        };
        match flag.as_str() {
            "--login" => plan.login = value,
            "--server" => plan.server = Some(value),
            "--csv" => plan.users = read_csv(&value),
            "--users" => user_limit = Some(num(&value) as usize),
            "--messages" => plan.messages = num(&value) as u64,
            "--rate" => plan.rate = num(&value).max(0.1),
            "--group-ratio" => plan.group_ratio = num(&value).clamp(0.0, 1.0),
            "--group" => plan.group = num(&value) as u32,
            "--time-limit" => plan.time_limit = Duration::from_secs_f64(num(&value).max(1.0)),
            "--json" => plan.json = value,
            "--aes-key" => plan.aes_key = value,
            "--source-ips" => {
                plan.source_ips = value
                    .split(',')
                    .map(|ip| {
                        ip.trim()
                            .parse()
                            .unwrap_or_else(|_| usage(&format!("bad address {ip}")))
                    })
                    .collect()
            }
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    if let Some(n) = user_limit {
        plan.users.truncate(n);
    }
    if plan.users.len() < 2 {
        usage("at least 2 users are needed");
    }
    if !allow_remote {
        if let Some(ip) = plan.source_ips.iter().find(|ip| !ip.is_loopback()) {
            usage(&format!(
                "source address {ip} is not loopback (use --allow-remote)"
            ));
        }
        for target in std::iter::once(&plan.login).chain(plan.server.iter()) {
            if !is_loopback(target) {
                usage(&format!(
                    "{target} is not a loopback address (use --allow-remote)"
                ));
            }
        }
    }
    plan
}

fn is_loopback(target: &str) -> bool {
    target
        .to_socket_addrs()
        .map(|mut a| a.all(|a| a.ip().is_loopback()))
        .unwrap_or(false)
}

fn read_csv(path: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| usage(&format!("{path}: {e}")));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(','))
        .map(|(n, p)| (n.trim().to_string(), p.trim().to_string()))
        .collect()
}

/// The body of a load message: who sent it, its number, when (µs since the run began).
fn encode_text(sender: u32, seq: u64, at_us: u64) -> String {
    format!("tt-load {sender} {seq} {at_us}")
}

fn decode_text(text: &str) -> Option<(u32, u64, u64)> {
    let mut it = text.strip_prefix("tt-load ")?.split(' ');
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

/// One simulated user.
#[derive(Default)]
struct User {
    user_id: u32,
    conn: Option<netlib::ConnId>,
    logged_in: bool,
    /// Kicked by the server (the error is counted once, at the kick).
    kicked: bool,
    sent: u64,
    next_send: Option<Instant>,
    rng: u64,
    /// The msg_server it was sent to (`host:port`), for the report of a
    /// lost message.
    server: String,
}

/// Everything the reactor's handlers share.
struct Load {
    plan: Plan,
    aes: Aes,
    users: Vec<User>,
    /// Group members among the loaded users (minus the sender), once known.
    group_recipients: u32,
    origin: Option<Instant>,
    login_started: Instant,
    logins_done_at: Option<Instant>,
    logins_ok: u64,
    login_failed: u64,
    sent: u64,
    acked: u64,
    delivered: u64,
    errors: u64,
    /// (sender, seq) -> recipients still expected.
    outstanding: HashMap<(u32, u64), u32>,
    /// (user index, PDU seq) -> (sender, seq) of messages not acked yet
    /// (acks carry the request's seq).
    unacked: HashMap<(usize, u16), (u32, u64)>,
    last_send: Instant,
    latency_us: Histogram<u64>,
    /// Of each sender's first message only, and of the others.
    first_latency_us: Histogram<u64>,
    later_latency_us: Histogram<u64>,
    seq: u16,
}

impl Load {
    /// `msg` under its command, with the next seq.
    fn pdu<M: Command>(&mut self, msg: &M) -> Option<ImPdu> {
        self.seq = self.seq.wrapping_add(1);
        ImPdu::for_msg(self.seq, msg).ok()
    }

    /// Messages never acked that are still awaited by a receiver.
    fn unacked_undelivered(&self) -> usize {
        self.unacked
            .values()
            .filter(|k| self.outstanding.contains_key(k))
            .count()
    }

    fn all_logins_answered(&self) -> bool {
        self.logins_ok + self.login_failed == self.users.len() as u64
    }
}

/// One user's connection.
struct LoadConn {
    index: usize,
}

impl ImConn<Load> for LoadConn {
    fn on_confirm(&mut self, cx: &mut Ctx<'_, Load>) {
        let (name, pass) = cx.state.plan.users[self.index].clone();
        let req = IMLoginReq {
            user_name: name,
            password: md5_hex(pass.as_bytes()),
            online_status: UserStatType::USER_STATUS_ONLINE,
            client_type: ClientType::CLIENT_TYPE_WINDOWS,
            client_version: Some("tt-load".into()),
        };
        if let Some(p) = cx.state.pdu(&req) {
            cx.send_pdu(&p);
        }
    }

    fn on_pdu(&mut self, cx: &mut Ctx<'_, Load>, pdu: ImPdu) {
        let received = Instant::now();
        let state = &mut *cx.state;
        match pdu.command_id() {
            cid::LOGIN_RES_USERLOGIN => {
                match pdu.msg::<IMLoginRes>() {
                    Ok(r) if r.result_code == ResultType::REFUSE_REASON_NONE => {
                        let user = &mut state.users[self.index];
                        user.user_id = r.user_info.map_or(0, |u| u.user_id);
                        user.logged_in = true;
                        user.rng = u64::from(user.user_id).wrapping_mul(6364136223846793005) | 1;
                        state.logins_ok += 1;
                    }
                    other => {
                        state.login_failed += 1;
                        eprintln!("tt-load: login of user {} refused: {other:?}", self.index);
                    }
                }
                if state.all_logins_answered() {
                    state.logins_done_at = Some(Instant::now());
                }
            }
            cid::MSG_DATA_ACK => {
                let first = state.unacked.remove(&(self.index, pdu.seq_num())).is_some();
                state.acked += u64::from(first);
            }
            cid::MSG_DATA => {
                let Ok(m) = pdu.msg::<IMMsgData>() else {
                    state.errors += 1;
                    return;
                };
                let group = matches!(m.msg_type, MsgType::MSG_TYPE_GROUP_TEXT);
                let ack = IMMsgDataAck {
                    user_id: state.users[self.index].user_id,
                    session_id: if group {
                        m.to_session_id
                    } else {
                        m.from_user_id
                    },
                    msg_id: m.msg_id,
                    session_type: if group {
                        SessionType::SESSION_TYPE_GROUP
                    } else {
                        SessionType::SESSION_TYPE_SINGLE
                    },
                };
                if let Some(p) = state.pdu(&ack) {
                    cx.send_pdu(&p);
                }
                let state = &mut *cx.state;
                let text = state
                    .aes
                    .decrypt(&m.msg_data)
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                if let (Some((sender, seq, sent_us)), Some(origin)) =
                    (decode_text(&text), state.origin)
                {
                    if let Some(left) = state.outstanding.get_mut(&(sender, seq)) {
                        *left -= 1;
                        if *left == 0 {
                            state.outstanding.remove(&(sender, seq));
                        }
                        state.delivered += 1;
                        let now_us = received.duration_since(origin).as_micros() as u64;
                        let took = now_us.saturating_sub(sent_us).max(1);
                        let _ = state.latency_us.record(took);
                        let _ = if seq == 0 {
                            state.first_latency_us.record(took)
                        } else {
                            state.later_latency_us.record(took)
                        };
                    }
                }
            }
            cid::GROUP_INFO_RESPONSE => {
                if let Ok(r) = pdu.msg::<IMGroupInfoListRsp>() {
                    let members = r
                        .group_info_list
                        .iter()
                        .find(|g| g.group_id == state.plan.group)
                        .map(|g| g.group_member_list.clone())
                        .unwrap_or_default();
                    let loaded: Vec<u32> = state.users.iter().map(|u| u.user_id).collect();
                    state.group_recipients = loaded
                        .iter()
                        .filter(|id| members.contains(id))
                        .count()
                        .saturating_sub(1) as u32;
                }
            }
            cid::LOGIN_KICK_USER => {
                // A kicked session ends here, as the real clients do: the C++
                // msg_server sends the kick but leaves the connection open (and
                // goes on delivering to it), which would count one user twice.
                let reason = pdu
                    .msg::<IMKickUser>()
                    .map(|k| format!("{:?}", k.kick_reason))
                    .unwrap_or_else(|e| e.to_string());
                eprintln!("tt-load: user {} kicked ({reason}); closing it", self.index);
                state.errors += 1;
                state.users[self.index].kicked = true;
                cx.close();
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_, Load>, now: u64) {
        // Client heartbeats every 30 s; we never time the server out.
        let rule = Heartbeat {
            send_after_ms: Some(30_000),
            timeout_ms: u64::MAX / 2,
        };
        cx.keep_alive(rule, now);
    }

    fn on_close(&mut self, cx: &mut Ctx<'_, Load>) {
        let user = &mut cx.state.users[self.index];
        user.conn = None;
        if user.kicked {
            // Counted when the kick came.
        } else if !user.logged_in {
            cx.state.login_failed += 1;
        } else {
            cx.state.errors += 1;
            eprintln!("tt-load: user {} lost its connection", self.index);
        }
        user.logged_in = false;
    }
}

/// Sends every message that is due (the pacing timer).
fn send_due(net: &mut Reactor<Load>, state: &mut Load) {
    let Some(origin) = state.origin else { return };
    let now = Instant::now();
    let n = state.users.len();
    let interval = Duration::from_secs_f64(n as f64 / state.plan.rate);
    for i in 0..n {
        let u = &mut state.users[i];
        let (Some(conn), true) = (u.conn, u.logged_in) else {
            continue;
        };
        if u.sent >= state.plan.messages {
            continue;
        }
        let due = *u
            .next_send
            .get_or_insert(origin + interval.mul_f64(i as f64 / n as f64));
        if now < due {
            continue;
        }
        u.rng = u
            .rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let to_group = ((u.rng >> 33) as f64 / (1u64 << 31) as f64) < state.plan.group_ratio;
        let (me, seq) = (u.user_id, u.sent);
        u.sent += 1;
        u.next_send = Some((due + interval).max(now));
        let peer = state.users[(i + 1) % n].user_id;
        let at_us = now.duration_since(origin).as_micros() as u64;
        let Ok(cipher) = state.aes.encrypt(encode_text(me, seq, at_us).as_bytes()) else {
            state.errors += 1;
            continue;
        };
        let msg = IMMsgData {
            from_user_id: me,
            to_session_id: if to_group { state.plan.group } else { peer },
            msg_id: 0,
            create_time: base::tick::unix_time(),
            msg_type: if to_group {
                MsgType::MSG_TYPE_GROUP_TEXT
            } else {
                MsgType::MSG_TYPE_SINGLE_TEXT
            },
            msg_data: cipher.into_bytes(),
            attach_data: None,
        };
        let recipients = if to_group { state.group_recipients } else { 1 };
        if recipients > 0 {
            state.outstanding.insert((me, seq), recipients);
        }
        state.sent += 1;
        if let Some(p) = state.pdu(&msg) {
            state.unacked.insert((i, p.seq_num()), (me, seq));
            state.last_send = now;
            let _ = net.send_pdu(conn, &p);
        }
    }
}

fn main() {
    base::logging::init_logging();
    let plan = parse_args();
    let aes =
        Aes::new(plan.aes_key.as_bytes()).unwrap_or_else(|e| usage(&format!("--aes-key: {e}")));
    let Ok(mut net) = Reactor::<Load>::new() else {
        eprintln!("tt-load: cannot create the event loop");
        std::process::exit(1);
    };
    let mut state = Load {
        users: (0..plan.users.len()).map(|_| User::default()).collect(),
        plan,
        aes,
        group_recipients: 0,
        origin: None,
        login_started: Instant::now(),
        logins_done_at: None,
        logins_ok: 0,
        login_failed: 0,
        sent: 0,
        acked: 0,
        delivered: 0,
        errors: 0,
        outstanding: HashMap::new(),
        unacked: HashMap::new(),
        last_send: Instant::now(),
        latency_us: histogram(),
        first_latency_us: histogram(),
        later_latency_us: histogram(),
        seq: 0,
    };
    // Each user asks login_server (as real clients do), then connects.
    for i in 0..state.users.len() {
        let server = match &state.plan.server {
            Some(s) => s.clone(),
            None => match discovery::via_http(&state.plan.login) {
                Ok(ms) => format!("{}:{}", ms.prior_ip, ms.port),
                Err(e) => {
                    eprintln!("tt-load: {e}");
                    std::process::exit(1);
                }
            },
        };
        let Some((host, port)) = server
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
        else {
            usage(&format!("bad msg_server address {server}"));
        };
        state.users[i].server = server.clone();
        let handler = Box::new(LoadConn { index: i });
        let source = (!state.plan.source_ips.is_empty())
            .then(|| state.plan.source_ips[i % state.plan.source_ips.len()]);
        let conn = match source {
            Some(ip) => net.connect_from(&host, port, ip, handler),
            None => net.connect(&host, port, handler),
        };
        match conn {
            Ok(id) => state.users[i].conn = Some(id),
            Err(e) => {
                eprintln!("tt-load: user {i}: {e}");
                state.login_failed += 1;
            }
        }
    }
    let deadline = Instant::now() + state.plan.time_limit + Duration::from_secs(30);
    // Logins first (bounded).
    while !state.all_logins_answered() && Instant::now() < deadline {
        if net.run_once(&mut state, 10).is_err() {
            break;
        }
    }
    let login_secs = state
        .logins_done_at
        .unwrap_or_else(Instant::now)
        .duration_since(state.login_started)
        .as_secs_f64();
    if state.logins_ok < 2 {
        eprintln!("tt-load: fewer than 2 users logged in");
        std::process::exit(1);
    }
    if state.plan.group_ratio > 0.0 {
        ask_group_members(&mut net, &mut state);
    }
    let origin = Instant::now();
    state.origin = Some(origin);
    net.register_timer(2, send_due);
    let total = state.plan.messages * state.logins_ok;
    let end = origin + state.plan.time_limit;
    let mut last_progress = Instant::now();
    loop {
        if net.run_once(&mut state, 5).is_err() {
            break;
        }
        // Done when everything is sent and delivered; or, 5 s after the
        // last send, when every message still awaited is one the server
        // never acked (dropped, so not a loss).
        let settled = state.last_send.elapsed() > Duration::from_secs(5);
        let done = state.sent >= total
            && (state.outstanding.is_empty()
                || (settled
                    && state.outstanding.len() <= state.unacked.len()
                    && state.unacked_undelivered() == state.outstanding.len()));
        if done || Instant::now() >= end {
            break;
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "t={:>4.1}s sent {} acked {} delivered {} errors {}",
                origin.elapsed().as_secs_f64(),
                state.sent,
                state.acked,
                state.delivered,
                state.errors
            );
        }
    }
    report(&state, origin.elapsed().as_secs_f64(), login_secs);
}

/// Asks (through the first user) which loaded users are in the group.
fn ask_group_members(net: &mut Reactor<Load>, state: &mut Load) {
    let Some(u) = state.users.iter().find(|u| u.logged_in) else {
        return;
    };
    let (conn, uid) = (u.conn, u.user_id);
    let req = tt_proto::IM::Group::IMGroupInfoListReq {
        user_id: uid,
        group_version_list: vec![tt_proto::IM::BaseDefine::GroupVersionInfo {
            group_id: state.plan.group,
            version: 0,
        }],
        attach_data: None,
    };
    if let (Some(conn), Some(p)) = (conn, state.pdu(&req)) {
        let _ = net.send_pdu(conn, &p);
    }
    let until = Instant::now() + Duration::from_secs(10);
    while state.group_recipients == 0 && Instant::now() < until {
        if net.run_once(state, 10).is_err() {
            return;
        }
    }
}

/// Send-to-arrival µs, up to a minute, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| usage("histogram"))
}

/// p50, p99 and max of `h`, in ms.
fn summary(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |us: u64| us as f64 / 1000.0;
    serde_json::json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.5)),
        "p99": ms(h.value_at_quantile(0.99)),
        "max": ms(h.max()),
    })
}

fn report(state: &Load, elapsed: f64, login_secs: f64) {
    let h = &state.latency_us;
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    let max = h.max() as f64 / 1000.0;
    let users = state.users.len();
    // Lost: acked, yet some receiver never got it. Not acked: dropped by the
    // server (e.g. over the per-user limit), reported apart.
    let lost = state.outstanding.len() - state.unacked_undelivered();
    let unacked = state.unacked.len();
    let lost_examples = lost_examples(state);
    let json = serde_json::json!({
        "users": users,
        "logins_ok": state.logins_ok,
        "logins_failed": state.login_failed,
        "login_rate_per_s": state.logins_ok as f64 / login_secs.max(1e-9),
        "sent": state.sent,
        "acked": state.acked,
        "delivered": state.delivered,
        "lost": lost,
        "lost_examples": lost_examples,
        "unacked": unacked,
        "errors": state.errors,
        "seconds": elapsed,
        "delivered_per_s": state.delivered as f64 / elapsed.max(1e-9),
        "latency_ms": { "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p99.9": q(0.999), "max": max },
        "first_latency_ms": summary(&state.first_latency_us),
        "later_latency_ms": summary(&state.later_latency_us),
        "rate_offered": state.plan.rate,
    });
    println!(
        "users {users}  logins ok {} failed {}  ({:.0}/s)",
        state.logins_ok,
        state.login_failed,
        json["login_rate_per_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "sent {}  acked {}  delivered {}  lost {lost}  unacked {unacked}  errors {}  in {elapsed:.1}s ({:.0} delivered/s)",
        state.sent,
        state.acked,
        state.delivered,
        state.errors,
        json["delivered_per_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "latency ms   p50 {:.2}   p90 {:.2}   p99 {:.2}   p99.9 {:.2}   max {:.2}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        max
    );
    for line in &lost_examples {
        println!("{line}");
    }
    if let Err(e) = std::fs::write(&state.plan.json, json.to_string()) {
        eprintln!("tt-load: cannot write {}: {e}", state.plan.json);
    }
}

/// The first few messages acked but not delivered: who sent them to whom,
/// through which msg_servers, so that a loss can be looked for in the
/// servers' logs and the database.
fn lost_examples(state: &Load) -> Vec<String> {
    let mut lines = Vec::new();
    let acked_undelivered = state
        .outstanding
        .keys()
        .filter(|k| !state.unacked.values().any(|v| v == *k));
    for &(sender, seq) in acked_undelivered.take(5) {
        let n = state.users.len();
        let Some(i) = state.users.iter().position(|u| u.user_id == sender) else {
            continue;
        };
        let peer = &state.users[(i + 1) % n];
        let to = if state.plan.group_ratio > 0.0 {
            " or the group"
        } else {
            ""
        };
        lines.push(format!(
            "lost: user {sender}'s message {seq} to user {}{to} (sender on {}, receiver on {})",
            peer.user_id, state.users[i].server, peer.server
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_text_round_trips() {
        assert_eq!(
            decode_text(&encode_text(7, 42, 123456)),
            Some((7, 42, 123456))
        );
        assert_eq!(decode_text("hello"), None);
    }

    #[test]
    fn loopback_only_by_default() {
        assert!(is_loopback("127.0.0.1:8080"));
        assert!(is_loopback("127.0.0.5:1"));
        assert!(!is_loopback("10.0.0.1:8080"));
    }
}
