//! The whole cluster under load, measured with `tt-load`: route, login,
//! db_proxy (real MariaDB and a private Redis) and two msg_servers, all
//! release builds, on loopback. Not a criterion bench: it prints tt-load's
//! table for each run.
//!
//! `cargo bench --bench cluster_load` (set TT_LOAD_RATES=1000,6000 to choose
//! the offered rates; each run sends 10 s worth of messages). Each user
//! sends 10 msgs/s, half msg_server's per-user limit of 20/s, so the
//! number of users grows with the rate (100 users at 1,000 msgs/s);
//! TT_LOAD_USERS=N sets the number of users instead (memory per connection).

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
    for rate in rates {
        let n = users.unwrap_or(rate / 10).max(2);
        // A fresh cluster per run: empty tables, cold caches.
        let cluster = Cluster::start_numbered(n, 2);
        let csv = dir.path().join(format!("users-{n}.csv"));
        std::fs::write(&csv, cluster.users_csv()).expect("write csv");
        let per_user = (rate as usize * 10 / n as usize).max(1);
        println!(
            "== {n} users (a ring of 1:1 pairs), {rate} msgs/s offered, {per_user} messages each"
        );
        let json = dir.path().join(format!("rate-{rate}.json"));
        let status = Command::new(&tt_load)
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
            .status()
            .expect("run tt-load");
        assert!(status.success(), "tt-load failed");
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
