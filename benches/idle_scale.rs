//! Idle clients at scale (issue 20), measured with `tt-idle`: route,
//! login, db_proxy (real MariaDB, a private Redis) and K msg_servers, all
//! release builds, on loopback, with N idle Android clients that each ask
//! login_server's HTTP port for a msg_server, log in, heartbeat every 30 s
//! and are held. Not a criterion bench: it prints one table row per run.
//!
//! ```text
//! TT_IDLE_RUNS=20000x2,100000x10 cargo bench --bench idle_scale
//! ```
//!
//! `TT_IDLE_RUNS` lists CLIENTSxMSG_SERVERS runs (default `20000x2`);
//! `TT_IDLE_RATE` the logins started per second over all tt-idle processes
//! (default 3000), `TT_IDLE_HOLD` the seconds the clients are held after
//! the last login (default 60), `TT_IDLE_NICE` the tt-idle processes'
//! niceness (default 10: they yield to the servers), `TT_IDLE_BATCH_MS`
//! their `--batch-ms` (default tt-idle's 5). The clients are split over tt-idle
//! processes of at most 19,000 (this machine caps each process at 20,000
//! files), each connecting from 20 source addresses of its own. Figures:
//! logins/s (first start to last answer, the slowest process), each
//! msg_server's resident memory growth per client on it (min-max over the
//! msg_servers), route_server's per online user, and `/proc/net/sockstat`
//! (TCP sockets in use and their memory) in the middle of the hold.
//!
//! The second row of a run: each server's CPU (user+system, from
//! `/proc/PID/stat`) per login over the login phase (the clients already
//! in heartbeat meanwhile; MariaDB is the machine's shared one), the
//! servers' CPU while the clients only heartbeat (`TT_IDLE_QUIET`
//! seconds, default 20, right after the last login), then `tt-load`:
//! `TT_IDLE_PAIRS` (default 100) pairs of extra users, logged in through
//! login_server like the idle ones (so a pair's two users are mostly on
//! different msg_servers), send 1:1 messages at `TT_IDLE_MSG_RATE`
//! (default 1000) msgs/s for 10 s while every idle client is held; its
//! send-to-arrival p50/p99/max and losses, and the same for each
//! sender's first message (its pair is new) apart from the others.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tt_rs::cluster::Cluster;
use tt_rs::{built_binary_in, ScratchDir};

/// Most clients per tt-idle process (this machine caps a process at
/// 20,000 files; `TT_IDLE_PER_PROCESS` overrides).
const PER_PROCESS: u32 = 19_000;

/// CPU ms (user + system) of process `pid` so far.
fn cpu_ms(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = text.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|w| w.parse().unwrap_or(0))
        .collect();
    // After the name: state is field 3; utime and stime are 14 and 15.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks * 10 // USER_HZ is 100
}

/// The machine's MariaDB, if one runs.
fn mariadb_pid() -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-x", "mariadbd"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU ms of every server (and MariaDB) now.
fn cpu_snapshot(cluster: &Cluster) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = cluster
        .servers()
        .into_iter()
        .map(|(n, p)| (n, cpu_ms(p.pid())))
        .collect();
    if let Some(pid) = mariadb_pid() {
        m.insert("mariadb".into(), cpu_ms(pid));
    }
    m
}

/// CPU ms between two snapshots, msg_servers summed: (name, ms) with
/// `msg_servers` first, then route, login, db_proxy, mariadb.
fn cpu_delta(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let d = |n: &str| {
        b.get(n)
            .copied()
            .unwrap_or(0)
            .saturating_sub(a.get(n).copied().unwrap_or(0))
    };
    let msg: u64 = b
        .keys()
        .filter(|n| n.starts_with("msg_server:"))
        .map(|n| d(n))
        .sum();
    let mut out = vec![("msg_servers".to_string(), msg)];
    for n in ["route_server", "login_server", "db_proxy_server", "mariadb"] {
        out.push((n.to_string(), d(n)));
    }
    out
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn sockstat_tcp() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with("TCP:")).unwrap_or("");
    let words: Vec<&str> = line.split_whitespace().collect();
    let field = |name: &str| {
        words
            .iter()
            .position(|w| *w == name)
            .and_then(|i| words.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("inuse"), field("mem"))
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// Loads `n` users `idle1000000..` (passwords `pw<id>`) into the cluster's
/// database with one `LOAD DATA` (as `scripts/load-users.sh`: a million in
/// seconds, where row inserts take minutes); returns their CSV.
fn bulk_load_users(cluster: &Cluster, n: u32, dir: &Path, tt_idle: &Path) -> std::path::PathBuf {
    let (csv, tsv) = (
        dir.join(format!("users-{n}.csv")),
        dir.join(format!("users-{n}.tsv")),
    );
    let ok = Command::new(tt_idle)
        .args(["users", "--count", &n.to_string(), "--csv"])
        .arg(&csv)
        .arg("--tsv")
        .arg(&tsv)
        .status()
        .expect("tt-idle users");
    assert!(ok.success(), "tt-idle users failed");
    let columns = Command::new(tt_idle)
        .args(["users", "--columns"])
        .output()
        .expect("tt-idle users --columns");
    let columns = String::from_utf8_lossy(&columns.stdout).trim().to_string();
    let url = tt_rs::mysql_url();
    let rest = url.trim_start_matches("mysql://");
    let (creds, hostport) = rest.rsplit_once('@').expect("user@host in TT_MYSQL_URL");
    let hostport = hostport.split('/').next().unwrap_or(hostport);
    let (user, pass) = creds.split_once(':').unwrap_or((creds, ""));
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "3306"));
    // The password goes through a private file, never the command line.
    let defaults = dir.join("my.cnf");
    std::fs::write(
        &defaults,
        format!("[client]\nuser={user}\npassword={pass}\nhost={host}\nport={port}\n"),
    )
    .expect("write my.cnf");
    let started = Instant::now();
    let ok = Command::new("mariadb")
        .arg(format!("--defaults-extra-file={}", defaults.display()))
        .args(["--local-infile=1", cluster.db.name(), "-e"])
        .arg(format!(
            "LOAD DATA LOCAL INFILE '{}' REPLACE INTO TABLE IMUser FIELDS TERMINATED BY '\\t' ({columns})",
            tsv.display()
        ))
        .status()
        .expect("mariadb");
    let _ = std::fs::remove_file(&defaults);
    assert!(ok.success(), "LOAD DATA failed");
    println!(
        "  {n} users loaded in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    csv
}

fn run(clients: u32, msg_servers: usize, rate: u64, hold: u64, dir: &Path, tt_idle: &Path) {
    let started = Instant::now();
    let pairs = env_num("TT_IDLE_PAIRS", 100) as u32;
    // The talkers (ids 1..) through the harness; the idle users in bulk.
    let cluster = Cluster::start_numbered(2 * pairs, msg_servers);
    let load_csv = dir.join(format!("talkers-{clients}.csv"));
    std::fs::write(&load_csv, cluster.users_csv()).expect("write csv");
    let csv = bulk_load_users(&cluster, clients, dir, tt_idle);
    let base: BTreeMap<String, u64> = cluster
        .servers()
        .into_iter()
        .filter_map(|(n, p)| p.memory_kib().map(|(rss, _)| (n, rss)))
        .collect();
    println!(
        "== {clients} clients over {msg_servers} msg_servers (cluster up and users loaded in {:.0}s)",
        started.elapsed().as_secs_f64()
    );
    let per_process = env_num("TT_IDLE_PER_PROCESS", u64::from(PER_PROCESS)) as u32;
    // The load generator yields to the servers it measures (on a real
    // deployment the clients are not on the servers' cores).
    let nice = env_num("TT_IDLE_NICE", 10);
    let batch_ms = std::env::var("TT_IDLE_BATCH_MS").ok();
    let procs = clients.div_ceil(per_process);
    let cpu_before = cpu_snapshot(&cluster);
    let login_started = Instant::now();
    let per = clients.div_ceil(procs);
    let mut children: Vec<(Child, u32)> = Vec::new();
    for k in 0..procs {
        let skip = per * k;
        let take = per.min(clients - skip);
        // A run of the same count before left its files here.
        let _ = std::fs::remove_file(dir.join(format!("idle-{clients}-{k}.ready")));
        let _ = std::fs::remove_file(dir.join(format!("idle-{clients}-{k}.json")));
        let child = Command::new("nice")
            .args(["-n", &nice.to_string()])
            .arg(tt_idle)
            .args(["run", "--login", &cluster.login_http(), "--csv"])
            .arg(&csv)
            .args(["--skip", &skip.to_string(), "--users", &take.to_string()])
            .args(["--rate", &(rate / u64::from(procs)).max(1).to_string()])
            .args(["--in-flight", &(400 / procs).max(20).to_string()])
            .args(["--hold", &hold.to_string()])
            .args(batch_ms.iter().flat_map(|ms| ["--batch-ms", ms.as_str()]))
            .args([
                "--source-ips",
                &format!("127.0.{}.1-127.0.{}.20", k + 1, k + 1),
            ])
            .arg("--json")
            .arg(dir.join(format!("idle-{clients}-{k}.json")))
            .arg("--ready-file")
            .arg(dir.join(format!("idle-{clients}-{k}.ready")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tt-idle");
        children.push((child, k));
    }
    // Every login answered, however slow the machine (500 logins/s at worst).
    let deadline = Instant::now() + Duration::from_secs(600 + u64::from(clients) / 500);
    for (child, k) in &mut children {
        let ready = dir.join(format!("idle-{clients}-{k}.ready"));
        while !ready.exists() && Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let cpu_logged_in = cpu_snapshot(&cluster);
    let login_wall = login_started.elapsed().as_secs_f64();
    // Only heartbeats now: the servers' CPU for holding the clients.
    let quiet = env_num("TT_IDLE_QUIET", 20);
    std::thread::sleep(Duration::from_secs(quiet));
    let cpu_quiet = cpu_snapshot(&cluster);
    let now: BTreeMap<String, u64> = cluster
        .servers()
        .into_iter()
        .filter_map(|(n, p)| p.memory_kib().map(|(rss, _)| (n, rss)))
        .collect();
    let (tcp_inuse, tcp_mem_pages) = sockstat_tcp();
    // 1:1 messages between extra users while every idle client is held.
    let msg_rate = env_num("TT_IDLE_MSG_RATE", 1000);
    let load_json = dir.join(format!("load-{clients}.json"));
    let status = Command::new(built_binary_in("tt-client", "tt-load"))
        .args(["--login", &cluster.login_http(), "--csv"])
        .arg(&load_csv)
        .args([
            "--messages",
            &(msg_rate * 10 / u64::from(2 * pairs).max(1))
                .max(1)
                .to_string(),
        ])
        .args(["--rate", &msg_rate.to_string(), "--time-limit", "40"])
        .args([
            "--source-ips",
            "127.0.250.1,127.0.250.2,127.0.250.3,127.0.250.4",
        ])
        .arg("--json")
        .arg(&load_json)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let load = read_json(&load_json);
    if status.map_or(true, |s| !s.success()) {
        println!("  tt-load did not finish cleanly: {load}");
    }
    let mut login_secs: f64 = 0.0;
    let (mut ok, mut failed, mut held, mut lost) = (0u64, 0u64, 0u64, 0u64);
    let mut per_port: BTreeMap<u16, u64> = BTreeMap::new();
    for (child, k) in &mut children {
        let _ = child.wait();
        let r = read_json(&dir.join(format!("idle-{clients}-{k}.json")));
        login_secs = login_secs.max(r["login_secs"].as_f64().unwrap_or(0.0));
        ok += r["logins_ok"].as_u64().unwrap_or(0);
        failed += r["logins_failed"].as_u64().unwrap_or(0);
        held += r["held"].as_u64().unwrap_or(0);
        lost += r["lost"].as_u64().unwrap_or(0) + r["kicked"].as_u64().unwrap_or(0);
        if let Some(m) = r["per_server"].as_object() {
            for (addr, n) in m {
                let port = addr
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                *per_port.entry(port).or_default() += n.as_u64().unwrap_or(0);
            }
        }
        if let Some(f) = r["failures"].as_object() {
            for (why, n) in f {
                println!("  failed ({k}): {why}: {n}");
            }
        }
    }
    let per_client: Vec<f64> = cluster
        .msg_servers
        .iter()
        .filter_map(|(_, port)| {
            let name = format!("msg_server:{port}");
            let n = *per_port.get(port)?;
            let grown = now.get(&name)?.saturating_sub(*base.get(&name)?);
            (n > 0).then(|| grown as f64 * 1024.0 / n as f64)
        })
        .collect();
    let min = per_client.iter().copied().fold(f64::MAX, f64::min);
    let max = per_client.iter().copied().fold(0.0, f64::max);
    let grown = |name: &str| {
        now.get(name)
            .copied()
            .unwrap_or(0)
            .saturating_sub(base.get(name).copied().unwrap_or(0))
    };
    let route_per_user = grown("route_server") as f64 * 1024.0 / ok.max(1) as f64;
    let spread: Vec<String> = per_port.values().map(u64::to_string).collect();
    println!(
        "| {clients} | {msg_servers} | {:.0} | {failed} | {held} | {lost} | {min:.0}-{max:.0} | {route_per_user:.0} | {:.1} / {:.1} MiB | {tcp_inuse} / {:.0} MiB |",
        ok as f64 / login_secs.max(1e-9),
        now.get("login_server").copied().unwrap_or(0) as f64 / 1024.0,
        now.get("db_proxy_server").copied().unwrap_or(0) as f64 / 1024.0,
        tcp_mem_pages as f64 * 4096.0 / 1048576.0,
    );
    println!("  clients per msg_server: {}", spread.join(", "));
    let logins = ok.max(1) as f64;
    let during_login = cpu_delta(&cpu_before, &cpu_logged_in);
    let per_login: Vec<String> = during_login
        .iter()
        .map(|(n, ms)| format!("{n} {:.0}", *ms as f64 * 1000.0 / logins))
        .collect();
    let servers_total: u64 = during_login
        .iter()
        .filter(|(n, _)| n != "mariadb")
        .map(|(_, ms)| ms)
        .sum();
    let hb = cpu_delta(&cpu_logged_in, &cpu_quiet);
    let hb_text: Vec<String> = hb
        .iter()
        .filter(|(n, _)| n != "mariadb")
        .map(|(n, ms)| format!("{n} {:.1}%", *ms as f64 / (quiet as f64 * 10.0)))
        .collect();
    let lat = &load["latency_ms"];
    println!(
        "  CPU µs per login (login phase {login_wall:.0} s): {}; servers total {:.0}, with MariaDB {:.0}",
        per_login.join(", "),
        servers_total as f64 * 1000.0 / logins,
        during_login.iter().map(|(_, ms)| ms).sum::<u64>() as f64 * 1000.0 / logins,
    );
    println!(
        "  CPU while only heartbeating ({quiet} s, {clients} clients, one heartbeat per 30 s each): {}",
        hb_text.join(", ")
    );
    println!(
        "  1:1 messages while held: {} sent, {} delivered, {} lost, {} unacked at {msg_rate}/s offered; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        load["sent"], load["delivered"], load["lost"], load["unacked"],
        lat["p50"].as_f64().unwrap_or(f64::NAN),
        lat["p99"].as_f64().unwrap_or(f64::NAN),
        lat["max"].as_f64().unwrap_or(f64::NAN),
    );
    let part = |key: &str| {
        let l = &load[key];
        format!(
            "{} messages, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            l["count"],
            l["p50"].as_f64().unwrap_or(f64::NAN),
            l["p99"].as_f64().unwrap_or(f64::NAN),
            l["max"].as_f64().unwrap_or(f64::NAN)
        )
    };
    println!(
        "    each sender's first (its new pair made): {}; the others: {}",
        part("first_latency_ms"),
        part("later_latency_ms")
    );
    for line in load["lost_examples"].as_array().into_iter().flatten() {
        println!("    {}", line.as_str().unwrap_or_default());
    }
    let rss: Vec<String> = ["route_server", "login_server", "db_proxy_server"]
        .iter()
        .map(|n| {
            format!(
                "{n} {:.1} MiB",
                now.get(*n).copied().unwrap_or(0) as f64 / 1024.0
            )
        })
        .collect();
    let msg_rss: u64 = now
        .iter()
        .filter(|(n, _)| n.starts_with("msg_server:"))
        .map(|(_, k)| k)
        .sum();
    println!(
        "  RSS: {}, msg_servers {:.1} MiB in all",
        rss.join(", "),
        msg_rss as f64 / 1024.0
    );
    println!(
        "  columns: clients | msg_servers | logins/s | failed | held | lost+kicked | \
         msg_server bytes/client (min-max) | route bytes/online user | login / db_proxy RSS | \
         sockstat TCP inuse / mem"
    );
    let problems = cluster.problems();
    println!("  {} warnings/errors in the servers' logs", problems.len());
    for line in problems.iter().take(10) {
        println!("    {line}");
    }
}

fn main() {
    if std::env::var_os("RUST_LOG").is_none() {
        // login_server stays at info: the harness waits for its registration line.
        std::env::set_var("RUST_LOG", "warn,login_server=info");
    }
    let runs: Vec<(u32, usize)> = std::env::var("TT_IDLE_RUNS")
        .unwrap_or_else(|_| "20000x2".into())
        .split(',')
        .filter_map(|r| {
            let (c, m) = r.trim().split_once('x')?;
            Some((c.parse().ok()?, m.parse().ok()?))
        })
        .collect();
    let rate = env_num("TT_IDLE_RATE", 3000);
    let hold = env_num("TT_IDLE_HOLD", 60);
    let tt_idle = built_binary_in("tt-client", "tt-idle");
    let dir = ScratchDir::new("idle-scale");
    for (clients, msg_servers) in runs {
        run(clients, msg_servers, rate, hold, dir.path(), &tt_idle);
    }
}
