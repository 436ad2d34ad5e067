//! `tt-load`: the load generator.
//!
//! N users log in (the demo users, or `name,password` lines of a CSV), each
//! sends M messages at a share of a total rate to its peer (the next user)
//! or, for a share `--group-ratio`, to a group; every receiver matches what
//! arrives by content and records the send-to-arrival latency in an HDR
//! histogram. At the end: a table (p50/p90/p99/p99.9/max, msgs/s, losses:
//! sent and acked but never delivered) and a JSON file. Bounded by count
//! and time; targets must be loopback unless `--allow-remote`.
//!
//! ```text
//! tt-load [--login HOST:PORT | --server HOST:PORT] [--csv FILE] [--users N]
//!         [--messages M] [--rate MSGS_PER_S] [--group-ratio F] [--group ID]
//!         [--time-limit SECS] [--json PATH] [--aes-key KEY] [--allow-remote]
//!         [--source-ips 127.0.0.2,127.0.0.3,...]
//! ```
//!
//! `--source-ips` spreads the users' connections over several local
//! addresses (user i connects from address i mod n), for more connections
//! than one address has ephemeral ports.

use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tt_client::{discovery, ClientError, Event, LoginOptions, Session};

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
    source_ips: Vec<std::net::IpAddr>,
}

/// Counters and the histogram, shared by the user threads.
#[derive(Default)]
struct Stats {
    logins_ok: AtomicU64,
    login_failed: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    errors: AtomicU64,
    /// (sender, seq) -> recipients still expected.
    outstanding: Mutex<HashMap<(u32, u64), u32>>,
    latency_us: Mutex<Option<Histogram<u64>>>,
}

fn usage(msg: &str) -> ! {
    eprintln!("tt-load: {msg}\nsee the doc comment of client/src/bin/tt_load.rs for the options");
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
        aes_key: LoginOptions::default().aes_key,
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

fn msg_server(plan: &Plan) -> Result<String, ClientError> {
    match &plan.server {
        Some(s) => Ok(s.clone()),
        None => {
            let ms = discovery::via_http(&plan.login)?;
            Ok(format!("{}:{}", ms.prior_ip, ms.port))
        }
    }
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

fn record_arrival(stats: &Stats, origin: Instant, text: &str, received_at: Instant) {
    let Some((sender, seq, sent_us)) = decode_text(text) else {
        return;
    };
    let mut outstanding = stats.outstanding.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(left) = outstanding.get_mut(&(sender, seq)) {
        *left -= 1;
        if *left == 0 {
            outstanding.remove(&(sender, seq));
        }
        drop(outstanding);
        stats.delivered.fetch_add(1, Ordering::SeqCst);
        let now_us = received_at.duration_since(origin).as_micros() as u64;
        if let Some(h) = stats
            .latency_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            let _ = h.record(now_us.saturating_sub(sent_us).max(1));
        }
    }
}

struct UserRun {
    session: Session,
    peer: u32,
    group_members: u32,
    index: usize,
}

fn run_user(plan: &Plan, stats: &Stats, origin: Instant, stop: &AtomicBool, mut u: UserRun) {
    let me = u.session.user_id();
    let interval = Duration::from_secs_f64(plan.users.len() as f64 / plan.rate);
    // Spread the users' first sends over one interval.
    let mut next = origin + interval.mul_f64(u.index as f64 / plan.users.len() as f64);
    let mut seq = 0u64;
    let mut rng = (me as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1);
    while !stop.load(Ordering::SeqCst) {
        if seq < plan.messages && Instant::now() >= next {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let to_group = ((rng >> 33) as f64 / (1u64 << 31) as f64) < plan.group_ratio;
            let at_us = Instant::now().duration_since(origin).as_micros() as u64;
            let text = encode_text(me, seq, at_us);
            let recipients = if to_group { u.group_members } else { 1 };
            if recipients > 0 {
                stats
                    .outstanding
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((me, seq), recipients);
            }
            stats.sent.fetch_add(1, Ordering::SeqCst);
            let sent = if to_group {
                u.session.send_group_text(plan.group, &text)
            } else {
                u.session.send_text(u.peer, &text)
            };
            match sent {
                Ok(_) => {
                    stats.acked.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => {
                    // Not acked: not counted as a loss.
                    stats
                        .outstanding
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&(me, seq));
                    stats.errors.fetch_add(1, Ordering::SeqCst);
                    log::warn!("user {me}: send failed: {e}");
                }
            }
            seq += 1;
            // Never burst to catch up: msg_server drops a user's messages
            // past 20/s, so a late user resumes its pace from now.
            next = (next + interval).max(Instant::now());
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(20));
        match u.session.next_event(wait) {
            Ok(Some(Event::Message(m))) => record_arrival(stats, origin, &m.text, m.received_at),
            Ok(_) => {}
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::SeqCst);
                log::warn!("user {me}: {e}");
                return;
            }
        }
    }
}

fn main() {
    base::logging::init_logging();
    let plan = parse_args();
    let stats = Arc::new(Stats::default());
    *stats.latency_us.lock().unwrap_or_else(|e| e.into_inner()) =
        Histogram::new_with_bounds(1, 60_000_000, 3).ok();
    let login_start = Instant::now();
    let opts = LoginOptions {
        aes_key: plan.aes_key.clone(),
        ..LoginOptions::default()
    };
    let mut sessions = Vec::new();
    for (i, (name, pass)) in plan.users.iter().enumerate() {
        let opts = LoginOptions {
            source_ip: (!plan.source_ips.is_empty())
                .then(|| plan.source_ips[i % plan.source_ips.len()]),
            ..opts.clone()
        };
        // Each user asks login_server, as real clients do, so the users
        // spread over the msg_servers.
        let login = msg_server(&plan).and_then(|server| Session::login(&server, name, pass, &opts));
        match login {
            Ok(s) => {
                stats.logins_ok.fetch_add(1, Ordering::SeqCst);
                sessions.push(s);
            }
            Err(e) => {
                stats.login_failed.fetch_add(1, Ordering::SeqCst);
                eprintln!("tt-load: login {name}: {e}");
            }
        }
    }
    let login_secs = login_start.elapsed().as_secs_f64();
    if sessions.len() < 2 {
        eprintln!("tt-load: fewer than 2 users logged in");
        std::process::exit(1);
    }
    let ids: Vec<u32> = sessions.iter().map(Session::user_id).collect();
    let group_members = if plan.group_ratio > 0.0 {
        let members = sessions[0]
            .groups()
            .and_then(|g| sessions[0].group_info(g))
            .map(|groups| {
                groups
                    .into_iter()
                    .find(|g| g.group_id == plan.group)
                    .map(|g| g.group_member_list)
                    .unwrap_or_default()
            })
            .unwrap_or_default();
        // Every loaded member but the sender receives it.
        ids.iter()
            .filter(|id| members.contains(id))
            .count()
            .saturating_sub(1) as u32
    } else {
        0
    };
    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let n = sessions.len();
    let mut threads = Vec::new();
    for (index, session) in sessions.into_iter().enumerate() {
        let run = UserRun {
            session,
            peer: ids[(index + 1) % n],
            group_members,
            index,
        };
        let (plan, stats, stop) = (plan.clone(), stats.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            run_user(&plan, &stats, origin, &stop, run)
        }));
    }
    let total = plan.messages * n as u64;
    let deadline = origin + plan.time_limit;
    let mut last_progress = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let sent_all = stats.sent.load(Ordering::SeqCst) >= total;
        let nothing_left = stats
            .outstanding
            .lock()
            .map(|o| o.is_empty())
            .unwrap_or(true);
        if (sent_all && nothing_left) || Instant::now() >= deadline {
            break;
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "t={:>4.1}s sent {} acked {} delivered {} errors {}",
                origin.elapsed().as_secs_f64(),
                stats.sent.load(Ordering::SeqCst),
                stats.acked.load(Ordering::SeqCst),
                stats.delivered.load(Ordering::SeqCst),
                stats.errors.load(Ordering::SeqCst)
            );
        }
    }
    let elapsed = origin.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    report(&plan, &stats, elapsed, login_secs, n);
}

fn report(plan: &Plan, stats: &Stats, elapsed: f64, login_secs: f64, users: usize) {
    let lost = stats.outstanding.lock().map(|o| o.len()).unwrap_or(0) as u64;
    let hist = stats
        .latency_us
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let q = |p: f64| {
        hist.as_ref()
            .map_or(0.0, |h| h.value_at_quantile(p) as f64 / 1000.0)
    };
    let max = hist.as_ref().map_or(0.0, |h| h.max() as f64 / 1000.0);
    let delivered = stats.delivered.load(Ordering::SeqCst);
    let json = serde_json::json!({
        "users": users,
        "logins_ok": stats.logins_ok.load(Ordering::SeqCst),
        "logins_failed": stats.login_failed.load(Ordering::SeqCst),
        "login_rate_per_s": users as f64 / login_secs.max(1e-9),
        "sent": stats.sent.load(Ordering::SeqCst),
        "acked": stats.acked.load(Ordering::SeqCst),
        "delivered": delivered,
        "lost": lost,
        "errors": stats.errors.load(Ordering::SeqCst),
        "seconds": elapsed,
        "delivered_per_s": delivered as f64 / elapsed.max(1e-9),
        "latency_ms": { "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p99.9": q(0.999), "max": max },
        "rate_offered": plan.rate,
    });
    println!(
        "users {users}  logins ok {} failed {}  ({:.0}/s)",
        json["logins_ok"],
        json["logins_failed"],
        json["login_rate_per_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "sent {}  acked {}  delivered {}  lost {}  errors {}  in {elapsed:.1}s ({:.0} delivered/s)",
        json["sent"],
        json["acked"],
        delivered,
        lost,
        json["errors"],
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
    if let Err(e) = std::fs::write(&plan.json, json.to_string()) {
        eprintln!("tt-load: cannot write {}: {e}", plan.json);
    }
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
