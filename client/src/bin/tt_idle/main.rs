//! `tt-idle`: many idle clients, for the scale benchmark (issue 20).
//!
//! ```text
//! tt-idle run [--login HOST:PORT | --server HOST:PORT,...] --csv FILE
//!             [--skip N] [--users N] [--rate LOGINS_PER_S] [--in-flight N]
//!             [--hold SECS] [--heartbeat SECS] [--client-type android|ios|windows|mac]
//!             [--source-ips 127.0.1.1-127.0.1.100,...] [--pids NAME=PID,...]
//!             [--json PATH] [--ready-file PATH] [--batch-ms MS] [--allow-remote]
//! tt-idle users --count N [--first-id ID] [--prefix NAME] --csv FILE [--tsv FILE]
//! ```
//!
//! `run` logs the CSV's users in (from line `--skip`, `--users` of them) at
//! `--rate` per second with at most `--in-flight` awaiting their answer,
//! each asking login_server's HTTP port for its msg_server as the real
//! clients do; keeps them heartbeating; holds them for `--hold` seconds
//! once every login is answered; then reports logins/s, failures and why,
//! clients per msg_server, each `--pids` process's resident memory (at the
//! start and the end, and per client for a name that is a msg_server's
//! port), and `/proc/net/sockstat`. Before it starts it raises its soft
//! file limit to the hard one and refuses (exit 2, saying what to set) a
//! target the limits cannot hold; split a larger one over processes with
//! `--skip`/`--users`. Between its turns it sleeps `--batch-ms` so that one
//! wake-up serves the many clients that became ready meanwhile: real phones
//! are each their own machine, and here the clients share the servers'
//! cores, so a wake-up for each heartbeat's echo would be the bench's own
//! cost, not the servers'. Exit 0 when every client logged in and was held,
//! 1 otherwise.
//!
//! `users` writes generated users (`PREFIX<id>`, password `pw<id>`) as the
//! CSV `run` reads and as `IMUser` rows for `LOAD DATA`
//! (`scripts/load-users.sh`).
//!
//! Layout: [`clients`] is the event loop and the clients' state machine,
//! [`limits`] the machine's limits and figures, [`users`] the generated users.

mod clients;
mod limits;
mod users;

use clients::{Outcome, RunPlan};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use tt_proto::IM::BaseDefine::ClientType;

const HELP: &str = "\
usage: tt-idle run [--login HOST:PORT | --server HOST:PORT,...] --csv FILE
                   [--skip N] [--users N] [--rate LOGINS_PER_S] [--in-flight N]
                   [--hold SECS] [--heartbeat SECS] [--client-type TYPE]
                   [--source-ips LIST] [--pids NAME=PID,...] [--json PATH]
                   [--ready-file PATH] [--login-timeout SECS] [--batch-ms MS]
                   [--allow-remote]
       tt-idle users --count N [--first-id ID] [--prefix NAME] --csv FILE [--tsv FILE]
       tt-idle users --columns

run:
  --login HOST:PORT    login_server's HTTP port (default 127.0.0.1:8080)
  --server LIST        msg_servers to use directly (client i: i mod n)
  --csv FILE           users as `name,password` lines
  --skip N, --users N  use lines N+1 .. N+users (split a run over processes)
  --rate R             logins started per second (default 1000)
  --in-flight N        most logins awaiting an answer (default 200)
  --hold SECS          hold the clients this long after the logins (default 60)
  --heartbeat SECS     heartbeat period (default 30, as the real clients)
  --client-type TYPE   android (default), ios, windows or mac
  --source-ips LIST    local addresses, `,` list of addresses and A-B ranges
  --pids LIST          NAME=PID of servers whose memory is reported; a NAME
                       that is a msg_server's port also gets bytes per client
                       (RSS growth over this process's clients on it: right
                       when no other process adds clients meanwhile)
  --json PATH          the report as JSON
  --ready-file PATH    written once every login is answered
  --login-timeout SECS a login not answered within this fails (default 60)
  --batch-ms MS        sleep this long between turns, so one wake-up serves
                       every client ready meanwhile (default 5; 0 wakes up
                       for each event, as a real client would)
  --allow-remote       allow targets outside 127.0.0.0/8
users:
  --count N            how many (ids first-id .. first-id+N-1)
  --first-id ID        default 1000000
  --prefix NAME        login names are NAME<id> (default idle), passwords pw<id>
  --csv FILE           name,password lines
  --tsv FILE           IMUser rows for LOAD DATA
  --columns            print the TSV's IMUser columns and exit
";

fn usage(msg: &str) -> ! {
    eprintln!("tt-idle: {msg}\n\n{HELP}");
    std::process::exit(2);
}

/// What `run` was asked, beside the plan.
struct RunArgs {
    plan: RunPlan,
    pids: Vec<(String, u32)>,
    json: Option<String>,
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> T {
    v.parse()
        .unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v}")))
}

fn secs(flag: &str, v: &str) -> Duration {
    let s: f64 = number(flag, v);
    if !(0.0..=1e7).contains(&s) {
        usage(&format!("{flag}: out of range"));
    }
    Duration::from_secs_f64(s)
}

fn read_csv(path: &str, skip: usize, take: Option<usize>) -> Vec<(String, String)> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).unwrap_or_else(|e| usage(&format!("{path}: {e}")));
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .skip(skip)
        .take(take.unwrap_or(usize::MAX))
        .filter_map(|l| {
            l.split_once(',')
                .map(|(n, p)| (n.trim().to_string(), p.trim().to_string()))
        })
        .collect()
}

fn is_loopback(addr: &str) -> bool {
    addr.to_socket_addrs()
        .map(|mut a| a.all(|a| a.ip().is_loopback()))
        .unwrap_or(false)
}

fn parse_run(mut args: impl Iterator<Item = String>) -> RunArgs {
    let mut plan = RunPlan {
        login: "127.0.0.1:8080".into(),
        servers: Vec::new(),
        users: Vec::new(),
        rate: 1000.0,
        in_flight: 200,
        hold: Duration::from_secs(60),
        heartbeat: Duration::from_secs(30),
        client_type: ClientType::CLIENT_TYPE_ANDROID,
        source_ips: Vec::new(),
        login_timeout: Duration::from_secs(60),
        ready_file: None,
        batch: Duration::from_millis(5),
    };
    let (mut csv, mut skip, mut take) = (None, 0usize, None);
    let (mut pids, mut json, mut allow_remote, mut server_text) =
        (Vec::new(), None, false, Vec::new());
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--allow-remote" => {
                allow_remote = true;
                continue;
            }
            "--help" | "-h" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            _ => {}
        }
        let v = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--login" => plan.login = v,
            "--server" => server_text = v.split(',').map(|s| s.trim().to_string()).collect(),
            "--csv" => csv = Some(v),
            "--skip" => skip = number(&flag, &v),
            "--users" => take = Some(number(&flag, &v)),
            "--rate" => plan.rate = number::<f64>(&flag, &v).max(0.1),
            "--in-flight" => plan.in_flight = number::<usize>(&flag, &v).max(1),
            "--hold" => plan.hold = secs(&flag, &v),
            "--heartbeat" => plan.heartbeat = secs(&flag, &v).max(Duration::from_millis(100)),
            "--login-timeout" => plan.login_timeout = secs(&flag, &v),
            "--batch-ms" => plan.batch = Duration::from_millis(number::<u64>(&flag, &v).min(1000)),
            "--client-type" => {
                plan.client_type = match v.as_str() {
                    "android" => ClientType::CLIENT_TYPE_ANDROID,
                    "ios" => ClientType::CLIENT_TYPE_IOS,
                    "windows" => ClientType::CLIENT_TYPE_WINDOWS,
                    "mac" => ClientType::CLIENT_TYPE_MAC,
                    other => usage(&format!("unknown client type {other}")),
                }
            }
            "--source-ips" => {
                plan.source_ips = limits::parse_source_ips(&v).unwrap_or_else(|e| usage(&e))
            }
            "--pids" => {
                for item in v.split(',').filter(|s| !s.is_empty()) {
                    let (name, pid) = item
                        .split_once('=')
                        .unwrap_or_else(|| usage(&format!("--pids: {item} is not NAME=PID")));
                    pids.push((name.to_string(), number(&flag, pid)));
                }
            }
            "--json" => json = Some(v),
            "--ready-file" => plan.ready_file = Some(v),
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    let csv = csv.unwrap_or_else(|| usage("--csv is needed"));
    plan.users = read_csv(&csv, skip, take);
    if plan.users.is_empty() {
        usage(&format!("{csv} has no users from line {}", skip + 1));
    }
    plan.servers = server_text
        .iter()
        .map(|s| {
            s.to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .unwrap_or_else(|| usage(&format!("bad msg_server address {s}")))
        })
        .collect::<Vec<SocketAddr>>();
    if !allow_remote {
        if let Some(ip) = plan.source_ips.iter().find(|ip| !ip.is_loopback()) {
            usage(&format!(
                "source address {ip} is not loopback (use --allow-remote)"
            ));
        }
        if plan.servers.iter().any(|s| !s.ip().is_loopback())
            || (plan.servers.is_empty() && !is_loopback(&plan.login))
        {
            usage("targets must be loopback (use --allow-remote)");
        }
    }
    RunArgs { plan, pids, json }
}

fn parse_users(mut args: impl Iterator<Item = String>) {
    let (mut count, mut first_id, mut prefix, mut csv, mut tsv) =
        (None, 1_000_000u32, "idle".to_string(), None, None);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            print!("{HELP}");
            std::process::exit(0);
        }
        if flag == "--columns" {
            println!("{}", users::TSV_COLUMNS);
            std::process::exit(0);
        }
        let v = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--count" => count = Some(number::<u32>(&flag, &v)),
            "--first-id" => first_id = number(&flag, &v),
            "--prefix" => {
                if !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || v.is_empty() {
                    usage("--prefix: letters, digits and _ only");
                }
                prefix = v
            }
            "--csv" => csv = Some(v),
            "--tsv" => tsv = Some(v),
            _ => usage(&format!("unknown option {flag}")),
        }
    }
    let count = count.unwrap_or_else(|| usage("--count is needed"));
    let csv = csv.unwrap_or_else(|| usage("--csv is needed"));
    if let Err(e) = users::write_files(&prefix, first_id, count, &csv, tsv.as_deref()) {
        eprintln!("tt-idle: cannot write the users: {e}");
        std::process::exit(1);
    }
    println!(
        "tt-idle: {count} users {prefix}{first_id}.. written to {csv}{}",
        tsv.map(|t| format!(" and {t}")).unwrap_or_default()
    );
}

/// The report, printed and as JSON.
fn report(out: &Outcome, pids: &[(String, u32, Option<u64>)], json: Option<&str>) -> bool {
    let rate = out.logins_ok as f64 / out.login_secs.max(1e-9);
    println!(
        "clients {}  logged in {}  failed {}  in {:.1}s ({rate:.0} logins/s)",
        out.users, out.logins_ok, out.logins_failed, out.login_secs
    );
    println!(
        "held {} for {:.0}s  lost {}  kicked {}  heartbeats sent {}  fewest heartbeat answers {}",
        out.held,
        out.hold_secs,
        out.lost,
        out.kicked,
        out.heartbeats_sent,
        out.min_heartbeat_replies
    );
    for (server, n) in &out.per_server {
        println!("  msg_server {server}: {n} clients");
    }
    for (why, n) in &out.failures {
        println!("  failed: {why}: {n}");
    }
    let mut servers = Vec::new();
    for (name, pid, start_kib) in pids {
        let end = limits::rss_kib(*pid);
        let clients = name
            .parse::<u16>()
            .ok()
            .and_then(|port| {
                out.per_server
                    .iter()
                    .find(|(s, _)| s.ends_with(&format!(":{port}")))
            })
            .map(|(_, n)| *n);
        let per_client = match (start_kib, end, clients) {
            (Some(a), Some(b), Some(n)) if n > 0 => {
                Some(b.saturating_sub(*a) as f64 * 1024.0 / n as f64)
            }
            _ => None,
        };
        println!(
            "  {name} (pid {pid}): RSS {} KiB at the start, {} KiB at the end{}",
            start_kib.map_or("?".into(), |v| v.to_string()),
            end.map_or("?".into(), |v| v.to_string()),
            per_client.map_or(String::new(), |b| format!(", {b:.0} bytes per client"))
        );
        servers.push(serde_json::json!({
            "name": name, "pid": pid, "rss_kib_start": start_kib, "rss_kib_end": end,
            "clients": clients, "bytes_per_client": per_client,
        }));
    }
    let sockstat = limits::sockstat();
    for (name, fields) in &sockstat {
        let text: Vec<String> = fields.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  sockstat {name}: {}", text.join(" "));
    }
    let ok = out.logins_failed == 0 && out.lost == 0 && out.kicked == 0 && out.held == out.users;
    if let Some(path) = json {
        let mut sockstat_json = serde_json::Map::new();
        for (name, fields) in &sockstat {
            let mut m = serde_json::Map::new();
            for (k, v) in fields {
                m.insert(k.clone(), (*v).into());
            }
            sockstat_json.insert(name.clone(), m.into());
        }
        let doc = serde_json::json!({
            "users": out.users,
            "logins_ok": out.logins_ok,
            "logins_failed": out.logins_failed,
            "login_secs": out.login_secs,
            "logins_per_s": rate,
            "held": out.held,
            "hold_secs": out.hold_secs,
            "lost": out.lost,
            "kicked": out.kicked,
            "heartbeats_sent": out.heartbeats_sent,
            "min_heartbeat_replies": out.min_heartbeat_replies,
            "per_server": out.per_server,
            "failures": out.failures,
            "servers": servers,
            "sockstat": sockstat_json,
        });
        if let Err(e) = std::fs::write(path, doc.to_string()) {
            eprintln!("tt-idle: cannot write {path}: {e}");
        }
    }
    ok
}

fn main() {
    base::logging::init_logging();
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("users") => parse_users(args),
        Some("run") => {
            let RunArgs { plan, pids, json } = parse_run(args);
            if let Err(problem) = clients::check_limits(&plan) {
                eprintln!("tt-idle: cannot hold this target: {problem}");
                std::process::exit(2);
            }
            let pids: Vec<(String, u32, Option<u64>)> = pids
                .into_iter()
                .map(|(n, p)| (n, p, limits::rss_kib(p)))
                .collect();
            match clients::run(plan) {
                Ok(out) => {
                    let ok = report(&out, &pids, json.as_deref());
                    std::process::exit(if ok { 0 } else { 1 });
                }
                Err(e) => {
                    eprintln!("tt-idle: {e}");
                    std::process::exit(1);
                }
            }
        }
        Some("--help" | "-h") => print!("{HELP}"),
        _ => usage("say `run` or `users`"),
    }
}
