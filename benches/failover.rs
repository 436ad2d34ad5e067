//! Failover figures (issue 17): the fault harness of `tests/fault/` at the
//! issue's load (300 msgs/s between users on two msg_servers: 20 pairs at
//! 15 msgs/s, under msg_server's 20 msgs/s per user), each fault with one
//! peer of each kind, the peer back after 1 s; then a private MariaDB
//! killed and stopped (where mariadbd is installed), and the senders'
//! msg_server stopped with SIGTERM, then the one they moved to killed
//! (a third msg_server is spare for them). Not a criterion bench: it
//! prints the README's table.
//!
//! `cargo bench --bench failover`; `TT_SERVER_BIN_DIR=DIR` runs the
//! servers found in DIR instead (the "before" column: binaries of an
//! older build); `TT_FAULT_PAIRS` and `TT_FAULT_RATE` (msgs/s per pair,
//! at most 20) set the load.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/fault/mod.rs"]
mod fault;

use fault::{Traffic, TABLE_HEAD};
use std::time::Duration;
use tt_rs::MariaDbServer;

fn main() {
    if std::env::var_os("RUST_LOG").is_none() {
        // Per-message debug lines would be measured too; the harness waits
        // for a few info lines (links, master, registrations).
        std::env::set_var("RUST_LOG", "info");
    }
    let env = |name: &str, default: u32| -> u32 {
        std::env::var(name)
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(default)
    };
    let pairs = env("TT_FAULT_PAIRS", 20);
    let rate = env("TT_FAULT_RATE", 15).min(20);
    let down = Duration::from_secs(1);
    let (before, after) = (Duration::from_secs(2), Duration::from_secs(4));
    // Senders on msg_server 0, receivers on 1, 2 spare.
    let mut mariadb = MariaDbServer::available().then(MariaDbServer::start);
    let mut cluster = match &mariadb {
        Some(m) => fault::cluster_on(pairs, &m.url(), 3),
        None => fault::cluster_of(pairs, 3),
    };
    let mut traffic = Traffic::start(&cluster, pairs, rate);
    println!(
        "== {pairs} pairs, {} msgs/s, servers from {}",
        pairs * rate,
        std::env::var("TT_SERVER_BIN_DIR").unwrap_or_else(|_| "this build".into())
    );
    println!("{TABLE_HEAD}");
    let phases: Vec<(&str, fault::Inject)> = vec![
        (
            "kill -9 db_proxy, back after 1 s",
            Box::new(fault::kill_db_proxy(down)),
        ),
        (
            "SIGTERM db_proxy, back 1 s after it exits",
            Box::new(fault::term_db_proxy(down)),
        ),
        (
            "kill -9 route_server, back after 1 s",
            Box::new(fault::kill_route_server(down)),
        ),
        (
            "kill -9 the private Redis, back after 1 s",
            Box::new(fault::kill_redis(down)),
        ),
    ];
    for (name, inject) in phases {
        let r = traffic.phase(&mut cluster, name, before, after, inject);
        println!("{}", r.line());
    }
    if let Some(m) = mariadb.as_mut() {
        let r = traffic.phase(
            &mut cluster,
            "kill -9 the private MariaDB, back after 1 s",
            before,
            after,
            fault::kill_mariadb(m, down),
        );
        println!("{}", r.line());
        let r = traffic.phase(
            &mut cluster,
            "the private MariaDB stopped, started 1 s later",
            before,
            after,
            fault::stop_mariadb(m, down),
        );
        println!("{}", r.line());
    }
    // The msg_servers stopped or killed are meant to be gone.
    let mut gone = Vec::new();
    for (name, kill) in [
        (
            "SIGTERM the senders' msg_server (they log in again elsewhere)",
            false,
        ),
        ("kill -9 the msg_server they moved to", true),
    ] {
        let idx = traffic.senders_msg_server(&cluster);
        gone.push(format!("msg_server:{}", cluster.msg_servers[idx].1));
        let inject: fault::Inject = if kill {
            Box::new(fault::kill_msg_server(idx))
        } else {
            Box::new(fault::term_msg_server(idx))
        };
        let mut r = traffic.phase(&mut cluster, name, before, after, inject);
        r.exited.retain(|n| !gone.contains(n));
        println!("{}", r.line());
    }
    traffic.stop();
    drop(cluster);
    drop(mariadb);
}
