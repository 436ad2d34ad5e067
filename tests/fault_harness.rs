//! Faults injected under steady traffic between users on two msg_servers
//! (issue 17), one after another on one cluster: kill -9 and SIGTERM of
//! the only db_proxy, kill -9 of the only route_server, the private Redis
//! killed; a private MariaDB killed, then stopped and started; each peer
//! back after 1 s. For each: no acked message lost (live or in the
//! receiver's history under its acked id), none delivered twice, none
//! acked but not stored, no server died, and at most 20 unanswered sends
//! and 20 acked-but-not-live messages (what was in flight at the kill).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault;

use fault::{Report, Traffic, TABLE_HEAD};
use std::time::Duration;

/// Pairs of users and messages per second per pair (100 msgs/s in all).
const PAIRS: u32 = 10;
const RATE_PER_PAIR: u32 = 10;
/// Traffic before the fault and after the restart.
const BEFORE: Duration = Duration::from_millis(1_000);
const AFTER: Duration = Duration::from_millis(2_000);
/// How long the peer stays down.
const DOWN: Duration = Duration::from_secs(1);
/// The bounds: only what was in flight at the kill goes
/// unanswered, or (a route fault) only to history (measured: 0-2).
const MAX_UNANSWERED: usize = 20;
const MAX_ACKED_NOT_LIVE: usize = 20;

fn check(r: &Report) {
    eprintln!("{}", r.line());
    assert!(r.sent > 0, "{}: no traffic", r.fault);
    assert_eq!(r.acked_lost, 0, "{}: acked messages lost: {r:?}", r.fault);
    assert_eq!(
        r.acked_not_stored, 0,
        "{}: acked but not stored under its id: {r:?}",
        r.fault
    );
    assert_eq!(r.duplicates, 0, "{}: delivered twice: {r:?}", r.fault);
    assert_eq!(
        r.mismatched, 0,
        "{}: wrong text under an id: {r:?}",
        r.fault
    );
    assert!(r.exited.is_empty(), "{}: servers died: {r:?}", r.fault);
    assert!(
        r.unanswered <= MAX_UNANSWERED,
        "{}: {} unanswered: {r:?}",
        r.fault,
        r.unanswered
    );
    assert!(
        r.acked_not_live <= MAX_ACKED_NOT_LIVE,
        "{}: {} acked but not live: {r:?}",
        r.fault,
        r.acked_not_live
    );
    assert!(
        r.live > 0 && r.flow_again.is_some(),
        "{}: messages flow after the restart: {r:?}",
        r.fault
    );
}

#[test]
fn one_of_each_peer_killed_and_back_after_a_second_costs_latency_not_messages() {
    let mut cluster = fault::cluster(PAIRS);
    let mut traffic = Traffic::start(&cluster, PAIRS, RATE_PER_PAIR);
    eprintln!("{TABLE_HEAD}");
    let phases: Vec<(&str, fault::Inject)> = vec![
        ("kill -9 db_proxy", Box::new(fault::kill_db_proxy(DOWN))),
        ("SIGTERM db_proxy", Box::new(fault::term_db_proxy(DOWN))),
        (
            "kill -9 route_server",
            Box::new(fault::kill_route_server(DOWN)),
        ),
        ("kill -9 Redis", Box::new(fault::kill_redis(DOWN))),
    ];
    for (name, inject) in phases {
        let r = traffic.phase(&mut cluster, name, BEFORE, AFTER, inject);
        check(&r);
    }
    traffic.stop();
}

/// The only MariaDB (a private one) killed with kill -9, then stopped
/// cleanly; each back after a second (plus its start and crash recovery,
/// which db_proxy's wait for a restarted store covers).
#[test]
fn the_mariadb_killed_or_restarted_costs_latency_not_messages() {
    if !tt_rs::MariaDbServer::available() {
        eprintln!("skipped: no mariadbd (scripts/deps.sh installs it)");
        return;
    }
    let mut server = tt_rs::MariaDbServer::start();
    let mut cluster = fault::cluster_on(PAIRS, &server.url());
    let mut traffic = Traffic::start(&cluster, PAIRS, RATE_PER_PAIR);
    eprintln!("{TABLE_HEAD}");
    let r = traffic.phase(
        &mut cluster,
        "kill -9 MariaDB",
        BEFORE,
        AFTER,
        fault::kill_mariadb(&mut server, DOWN),
    );
    check(&r);
    let r = traffic.phase(
        &mut cluster,
        "MariaDB stopped and started",
        BEFORE,
        AFTER,
        fault::stop_mariadb(&mut server, DOWN),
    );
    check(&r);
    traffic.stop();
}

/// A msg_server of the senders stopped with SIGTERM, then the one they
/// moved to killed with kill -9: each time they log in again through
/// login_server and land on another. What the stopped or killed one acked
/// is in history under its acked id (or was delivered live), nothing is
/// delivered twice, only what was in flight at the kill goes unanswered.
/// (Receivers stay on theirs: while a receiver is away its messages go
/// only to history, as the protocol has it.)
#[test]
fn a_msg_server_stopped_or_killed_costs_its_clients_a_login_not_messages() {
    // Senders on 0, receivers on 1, 2 spare: where the senders land first.
    let mut cluster = fault::cluster_of(PAIRS, 3);
    let mut traffic = Traffic::start(&cluster, PAIRS, RATE_PER_PAIR);
    eprintln!("{TABLE_HEAD}");
    let ports: Vec<u16> = cluster.msg_servers.iter().map(|m| m.1).collect();
    for (name, idx, inject) in [
        (
            "SIGTERM the senders' msg_server",
            0,
            Box::new(fault::term_msg_server(0)) as fault::Inject,
        ),
        (
            "kill -9 the senders' msg_server",
            2,
            Box::new(fault::kill_msg_server(2)),
        ),
    ] {
        let mut r = traffic.phase(&mut cluster, name, BEFORE, AFTER, inject);
        // The one stopped or killed (and the one before) are meant to be gone.
        r.exited.retain(|n| {
            ports[..=idx]
                .iter()
                .all(|p| n != &format!("msg_server:{p}"))
        });
        check(&r);
    }
    traffic.stop();
}

/// With two of each, the other one carries on: only what was in flight on
/// the dead one can go unanswered (db_proxy) or only to history (route).
const MAX_UNANSWERED_REDUNDANT: usize = 20;
const MAX_NOT_LIVE_REDUNDANT: usize = 20;

#[test]
fn one_of_two_db_proxies_or_route_servers_killed_costs_next_to_nothing() {
    let mut cluster = fault::cluster_with(PAIRS, true);
    let mut traffic = Traffic::start(&cluster, PAIRS, RATE_PER_PAIR);
    eprintln!("{TABLE_HEAD}");
    let phases: Vec<(&str, fault::Inject)> = vec![
        (
            "kill -9 one of two db_proxies",
            Box::new(fault::kill_one_of_two_db_proxies(DOWN)),
        ),
        (
            "kill -9 the first of two route_servers",
            Box::new(fault::kill_route_server(DOWN)),
        ),
    ];
    for (name, inject) in phases {
        let r = traffic.phase(&mut cluster, name, BEFORE, AFTER, inject);
        check(&r);
        assert!(r.unanswered <= MAX_UNANSWERED_REDUNDANT, "{r:?}");
        assert!(r.acked_not_live <= MAX_NOT_LIVE_REDUNDANT, "{r:?}");
    }
    traffic.stop();
}
