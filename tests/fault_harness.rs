//! Faults injected under steady traffic between users on two msg_servers
//! (issue 17), one after another on one cluster: kill -9 and SIGTERM of
//! the only db_proxy, kill -9 of the only route_server, the private Redis
//! killed; a private MariaDB killed, then stopped and started; each peer
//! back after 1 s. For each: no acked message lost (live or in the
//! receiver's history under its acked id), none delivered twice, none
//! acked but not stored, no server died, and at most 20 unanswered sends
//! and 20 acked-but-not-live messages (what was in flight at the kill);
//! a msg_server stopped or killed: the same, with at most 200 unanswered
//! (what its clients had in flight, which grows with the store latency on
//! a loaded machine).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault;

use base::ImPdu;
use fault::{RawClient, Report, Traffic, TABLE_HEAD};
use std::time::Duration;
use tt_proto::cid;
use tt_proto::IM::Message::{IMUnreadMsgCntReq, IMUnreadMsgCntRsp};
use tt_rs::WAIT;

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
    check_with(r, MAX_UNANSWERED);
}

/// A msg_server stopped or killed under traffic leaves unanswered what its
/// clients had sent and it had not answered: 100 msgs/s times the store
/// latency (0-1 here alone; 121 seen with the whole harness and a MariaDB
/// start loading the machine, stores taking over a second).
const MAX_UNANSWERED_MSG_SERVER: usize = 200;

fn check_with(r: &Report, max_unanswered: usize) {
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
        r.unanswered <= max_unanswered,
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
    let mut cluster = fault::cluster_on(PAIRS, &server.url(), 2);
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
    let mut gone = Vec::new();
    for (name, kill) in [
        ("SIGTERM the senders' msg_server", false),
        ("kill -9 the senders' msg_server", true),
    ] {
        let idx = traffic.senders_msg_server(&cluster);
        assert_ne!(idx, 1, "senders apart from their receivers");
        gone.push(format!("msg_server:{}", ports[idx]));
        let inject: fault::Inject = if kill {
            Box::new(fault::kill_msg_server(idx))
        } else {
            Box::new(fault::term_msg_server(idx))
        };
        let mut r = traffic.phase(&mut cluster, name, BEFORE, AFTER, inject);
        // The ones stopped or killed are meant to be gone.
        r.exited.retain(|n| !gone.contains(n));
        check_with(&r, MAX_UNANSWERED_MSG_SERVER);
        if !kill {
            // SIGTERM stops reading clients, then waits for their stores:
            // what goes unanswered was never stored, so a resend is safe.
            assert_eq!(
                r.unanswered_stored, 0,
                "{name}: unanswered but stored (a resend duplicates it): {r:?}"
            );
        }
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

/// Two clients ask for their unread counts under the same seq while
/// db_proxy is stopped (SIGSTOP), so both requests are in flight on its
/// links when it is killed; once it is back each client gets one answer,
/// its own, under its own seq (msg_server sent them under tags of its
/// own and gives the seq back).
#[test]
fn two_clients_asking_under_one_seq_on_a_dying_link_each_get_their_own_answer_once() {
    let mut cluster = fault::cluster(1);
    let port = cluster.msg_servers[0].1;
    let mut s = RawClient::login(port, "s1", "pw1");
    let mut r = RawClient::login(port, "r1", "pw101");
    // s1 has one unread message from r1, r1 two from s1.
    s.send_text(2, r.user_id, "one");
    s.send_text(3, r.user_id, "two");
    r.send_text(2, s.user_id, "three");
    for (c, acks) in [(&s, 2), (&r, 1)] {
        for _ in 0..acks {
            c.next_of(cid::MSG_DATA_ACK, WAIT).expect("acked");
        }
    }
    let pid = cluster.db_proxy().pid().to_string();
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    assert!(stopped.success());
    let ask = ImPdu::for_msg(
        7,
        &IMUnreadMsgCntReq {
            user_id: 0,
            attach_data: None,
        },
    )
    .unwrap();
    s.send(&ask);
    r.send(&ask);
    std::thread::sleep(Duration::from_millis(300));
    cluster.stop_db_proxy();
    cluster.msg_servers[0]
        .0
        .wait_log("read-only requests in flight: sending them again");
    cluster.restart_db_proxy();
    for (c, unread) in [(&s, 1), (&r, 2)] {
        let pdu = c
            .next_of(cid::MSG_UNREAD_CNT_RESPONSE, WAIT)
            .expect("answered after the restart");
        assert_eq!(pdu.seq_num(), 7, "under the client's seq");
        let rsp: IMUnreadMsgCntRsp = pdu.msg().unwrap();
        assert_eq!((rsp.user_id, rsp.total_cnt), (c.user_id, unread));
    }
    for c in [&s, &r] {
        assert!(
            c.next_of(cid::MSG_UNREAD_CNT_RESPONSE, Duration::from_millis(500))
                .is_none(),
            "answered once"
        );
    }
}
