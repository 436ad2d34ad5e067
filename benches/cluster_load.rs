//! The whole cluster under load, measured with `tt-load`: route, login,
//! db_proxy (real MariaDB and a private Redis) and two msg_servers, all
//! release builds, on loopback. Not a criterion bench: it prints tt-load's
//! table for each run.
//!
//! `cargo bench --bench cluster_load` (set TT_LOAD_RATES=1000,6000 to choose
//! the offered rates; each run sends 10 s worth of messages). Each user
//! sends 10 msgs/s, half msg_server's per-user limit of 20/s, so the
//! number of users grows with the rate (100 users at 1,000 msgs/s);
//! TT_LOAD_USERS=N sets the number of users instead (memory per connection);
//! TT_LOAD_SECS=S sends S seconds worth instead of 10; TT_LOAD_WARM=1 has
//! every user send one message first, not measured, so that the measured
//! run finds every pair's relation and sessions made (steady state).
//!
//! After each run it prints the CPU time (utime + stime from
//! `/proc/<pid>/stat`, before and after the run) of every server process,
//! of the private redis-server, of mariadbd (shared with whatever else runs
//! on the machine) and of tt-load, in µs per delivered message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use tt_rs::cluster::Cluster;
use tt_rs::{built_binary_in, ScratchDir};

fn main() {
    // The servers log at warn: per-message debug lines would be measured too.
    if std::env::var_os("RUST_LOG").is_none() {
        // (login_server stays at info: the harness waits for its registration line.)
        std::env::set_var("RUST_LOG", "warn,login_server=info");
    }
    // `cargo bench` passes --bench; nothing else to parse.
    let rates: Vec<u32> = std::env::var("TT_LOAD_RATES")
        .unwrap_or_else(|_| "1000,6000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let tt_load = built_binary_in("tt-client", "tt-load");
    let dir = ScratchDir::new("cluster-load");
    // TT_LOAD_USERS=10000 instead logs that many users in (for memory per
    // connection), each sending its share of the rate.
    let users: Option<u32> = std::env::var("TT_LOAD_USERS")
        .ok()
        .and_then(|n| n.trim().parse().ok());
    let secs: u32 = std::env::var("TT_LOAD_SECS")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(10);
    let warm = std::env::var_os("TT_LOAD_WARM").is_some_and(|v| v == "1");
    for rate in rates {
        let n = users.unwrap_or(rate / 10).max(2);
        // A fresh cluster per run: empty tables, cold caches (unless
        // TT_LOAD_WARM=1: see below).
        let cluster = Cluster::start_numbered(n, 2);
        let csv = dir.path().join(format!("users-{n}.csv"));
        std::fs::write(&csv, cluster.users_csv()).expect("write csv");
        let per_user = (rate as usize * secs as usize / n as usize).max(1);
        println!(
            "== {n} users (a ring of 1:1 pairs), {rate} msgs/s offered, {per_user} messages each"
        );
        let json = dir.path().join(format!("rate-{rate}.json"));
        if warm {
            // One message per user first, not measured: every pair's
            // relation and sessions exist before the measured run.
            let status = Command::new(&tt_load)
                .args(["--login", &cluster.login_http(), "--csv"])
                .arg(&csv)
                .args(["--messages", "1", "--rate", &rate.to_string()])
                .args(["--time-limit", "60", "--json"])
                .arg(dir.path().join("warm-up.json"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("run tt-load");
            assert!(status.success(), "tt-load (warm-up) failed");
            println!("(warm: one message per user sent first, not measured)");
        }
        let mut watched: Vec<(String, u32)> = cluster
            .servers()
            .into_iter()
            .map(|(name, p)| (name, p.pid()))
            .collect();
        if let Some(pid) = redis_pid(cluster.redis.port()) {
            watched.push(("redis-server".into(), pid));
        }
        if let Some(pid) = system_mariadbd() {
            watched.push(("mariadbd (shared)".into(), pid));
        }
        let batches_before = db_batches(&cluster);
        let before: Vec<Option<u64>> = watched.iter().map(|(_, pid)| cpu_ticks(*pid)).collect();
        let mut child = Command::new(&tt_load)
            .args(["--login", &cluster.login_http(), "--csv"])
            .arg(&csv)
            .args([
                "--messages",
                &per_user.to_string(),
                "--rate",
                &rate.to_string(),
            ])
            .args(["--time-limit", "60", "--json"])
            .arg(&json)
            .spawn()
            .expect("run tt-load");
        let load_pid = child.id();
        let mut load_ticks = cpu_ticks(load_pid).unwrap_or(0);
        // Sampled while it runs: once reaped, its /proc entry is gone.
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for tt-load") {
                break status;
            }
            load_ticks = cpu_ticks(load_pid).unwrap_or(load_ticks);
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        assert!(status.success(), "tt-load failed");
        let after: Vec<Option<u64>> = watched.iter().map(|(_, pid)| cpu_ticks(*pid)).collect();
        let delivered = std::fs::read_to_string(&json)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["delivered"].as_u64())
            .unwrap_or(0)
            .max(1);
        println!("CPU per delivered message ({delivered} delivered), utime+stime:");
        let us = |ticks: u64| ticks as f64 * 1e6 / clock_ticks() as f64;
        let mut servers_total = 0.0;
        for (((name, _), b), a) in watched.iter().zip(&before).zip(&after) {
            match (b, a) {
                (Some(b), Some(a)) => {
                    let spent = us(a.saturating_sub(*b));
                    servers_total += spent;
                    println!(
                        "  {name:<20} {:>8.0} ms  {:>6.1} µs/msg",
                        spent / 1000.0,
                        spent / delivered as f64
                    );
                }
                _ => println!("  {name:<20} unknown"),
            }
        }
        println!(
            "  {:<20} {:>8.0} ms  {:>6.1} µs/msg",
            "all of the above",
            servers_total / 1000.0,
            servers_total / delivered as f64
        );
        println!(
            "  {:<20} {:>8.0} ms  {:>6.1} µs/msg",
            "tt-load",
            us(load_ticks) / 1000.0,
            us(load_ticks) / delivered as f64
        );
        let (batches, batched) = db_batches(&cluster);
        let (batches, batched) = (batches - batches_before.0, batched - batches_before.1);
        println!(
            "db_proxy stored {batched:.0} messages in {batches:.0} batches ({:.1} a batch)",
            batched / batches.max(1.0)
        );
        println!("resident memory after the run (peak):");
        for (name, p) in cluster.servers() {
            match p.memory_kib() {
                Some((rss, peak)) => println!(
                    "  {name:<20} {:>7.1} MiB ({:.1} MiB)",
                    rss as f64 / 1024.0,
                    peak as f64 / 1024.0
                ),
                None => println!("  {name:<20} unknown"),
            }
        }
        let problems = cluster.problems();
        println!("{} warnings/errors in the servers' logs", problems.len());
        for line in problems.iter().take(20) {
            println!("  {line}");
        }
    }
}

/// utime + stime of `pid` in clock ticks (`/proc/<pid>/stat` fields 14
/// and 15; the command name, field 2, may hold spaces, so fields are
/// counted after its closing parenthesis).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": field 3 (state) is index 0, so field 14 is index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// db_proxy's batch counters (`tt_db_message_batches_total`,
/// `tt_db_message_batched_total`): how many messages a batch stored, on
/// average, over the measured run.
fn db_batches(cluster: &Cluster) -> (f64, f64) {
    let servers = cluster.servers();
    let Some((_, db)) = servers.iter().find(|(n, _)| n == "db_proxy_server") else {
        return (0.0, 0.0);
    };
    let Some(port) = tt_rs::metrics::configured_metrics_port(db) else {
        return (0.0, 0.0);
    };
    let m = tt_rs::metrics::scrape_port(port);
    (
        m.value("tt_db_message_batches_total", &[]),
        m.value("tt_db_message_batched_total", &[]),
    )
}

/// `sysconf(_SC_CLK_TCK)`: 100 on Linux unless configured otherwise.
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// The pid of the redis-server listening on `port` (the cluster's private
/// one), from the command lines in `/proc`.
fn redis_pid(port: u16) -> Option<u32> {
    let port = port.to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        // redis-server rewrites its title to `redis-server 127.0.0.1:<port>`.
        let title = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let is_redis = title.contains("redis-server");
        let on_port =
            title.contains(&format!(":{port} ")) || title.trim_end().ends_with(&format!(":{port}"));
        (is_redis && on_port).then_some(pid)
    })
}

/// The machine's mariadbd (the one `TestDb` uses): its pid file, else
/// `pidof` when only one runs (tests may start private ones).
fn system_mariadbd() -> Option<u32> {
    for file in ["/run/mysqld/mysqld.pid", "/var/run/mysqld/mysqld.pid"] {
        if let Some(pid) = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return Some(pid);
        }
    }
    let out = Command::new("pidof").arg("mariadbd").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let pids: Vec<u32> = text
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    match pids.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}
