//! Peers restarted under a running cluster (issue 17): links come back at
//! once, and what was acknowledged is delivered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};
use tt_client::{Event, LoginOptions, Session};
use tt_rs::cluster::Cluster;
use tt_rs::WAIT;

const USERS: [(u32, &str, &str); 2] = [(1, "alice", "alice-pw"), (2, "bob", "bob-pw")];

/// `name` logged in directly at msg_server `idx` of `cluster`.
fn login(cluster: &Cluster, idx: usize, name: &str, pw: &str) -> Session {
    let addr = format!("127.0.0.1:{}", cluster.msg_servers[idx].1);
    Session::login(&addr, name, pw, &LoginOptions::default()).expect("login")
}

/// The next message `s` receives (bounded by WAIT).
fn next_message(s: &mut Session) -> tt_client::IncomingMessage {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no message arrived");
        if let Some(Event::Message(m)) = s.next_event(Duration::from_millis(100)).expect("event") {
            return m;
        }
    }
}

/// Links per msg_server to db_proxy in the harness's conf: the one
/// db_proxy listed twice, two links each.
const DB_LINKS: usize = 4;

#[test]
fn links_to_a_restarted_db_proxy_and_route_server_come_back_and_carry_the_next_message() {
    let mut cluster = Cluster::start(&USERS, 2);
    for (p, _) in &cluster.msg_servers {
        p.wait_log_count("connected to db_proxy", DB_LINKS);
        p.wait_log("is the master");
    }
    let mut alice = login(&cluster, 0, "alice", "alice-pw");
    let mut bob = login(&cluster, 1, "bob", "bob-pw");

    // db_proxy killed and back after 1 s: every link of both msg_servers
    // comes back (the C++ back-off would take 5-10 s), and the first
    // message after it is stored and delivered live across msg_servers.
    cluster.stop_db_proxy();
    for (p, _) in &cluster.msg_servers {
        p.wait_log_count("lost db_proxy", DB_LINKS);
    }
    std::thread::sleep(Duration::from_secs(1));
    cluster.restart_db_proxy();
    for (p, _) in &cluster.msg_servers {
        p.wait_log_count("connected to db_proxy", 2 * DB_LINKS);
        assert!(
            !p.log().contains("ms of fast retries; backing off"),
            "the fast retries reached the peer"
        );
    }
    let id = alice.send_text(2, "after db_proxy").expect("acked");
    let got = next_message(&mut bob);
    assert_eq!((got.msg_id, got.text.as_str()), (id, "after db_proxy"));

    // route_server killed and back after 1 s: both msg_servers link again,
    // list their users, and a message crosses again.
    cluster.stop_route_server();
    for (p, _) in &cluster.msg_servers {
        p.wait_log_count("lost route_server", 1);
    }
    std::thread::sleep(Duration::from_secs(1));
    cluster.restart_route_server();
    for (p, _) in &cluster.msg_servers {
        p.wait_log_count("connected to route_server", 2);
        p.wait_log_count("is the master", 2);
    }
    // route_server learns bob's msg_server from the user list each
    // msg_server sends on connect (twice before the kill, twice after).
    cluster
        .route_server()
        .wait_log_count("online user info from", 4);
    let id = alice.send_text(2, "after route_server").expect("acked");
    let got = next_message(&mut bob);
    assert_eq!((got.msg_id, got.text.as_str()), (id, "after route_server"));
}

#[test]
fn what_is_sent_while_db_proxy_or_route_server_is_down_goes_through_once_it_is_back() {
    let mut cluster = Cluster::start(&USERS, 2);
    for (p, _) in &cluster.msg_servers {
        p.wait_log_count("connected to db_proxy", DB_LINKS);
        p.wait_log("is the master");
    }
    let mut alice = login(&cluster, 0, "alice", "alice-pw");
    let mut bob = login(&cluster, 1, "bob", "bob-pw");

    // db_proxy down: a message and a read-only request wait in msg_server
    // and are answered once it is back (the C++ drops both).
    cluster.stop_db_proxy();
    cluster.msg_servers[0]
        .0
        .wait_log_count("lost db_proxy", DB_LINKS);
    let sender = std::thread::spawn(move || {
        let id = alice.send_text(2, "while db_proxy is down");
        let unread = alice.unread().map(|u| u.total_cnt);
        (alice, id, unread)
    });
    std::thread::sleep(Duration::from_secs(1));
    cluster.restart_db_proxy();
    let (mut alice, id, unread) = sender.join().expect("sender");
    let id = id.expect("acked after the restart");
    assert_eq!(unread.expect("answered after the restart"), 0);
    let got = next_message(&mut bob);
    assert_eq!(
        (got.msg_id, got.text.as_str()),
        (id, "while db_proxy is down")
    );
    assert!(cluster.msg_servers[0]
        .0
        .log()
        .contains("db_proxy usable again: sending"));

    // route_server down: the stored message for bob's msg_server waits
    // and arrives live once route_server is back (the C++: history only).
    cluster.stop_route_server();
    cluster.msg_servers[0]
        .0
        .wait_log_count("lost route_server", 1);
    let id = alice
        .send_text(2, "while route_server is down")
        .expect("acked");
    std::thread::sleep(Duration::from_secs(1));
    cluster.restart_route_server();
    let got = next_message(&mut bob);
    assert_eq!(
        (got.msg_id, got.text.as_str()),
        (id, "while route_server is down")
    );
    assert!(cluster.msg_servers[0]
        .0
        .log()
        .contains("route_server master up: sending 1 held PDUs"));

    // Past the hold's bound (8 s) the C++ "no db_proxy" answer goes out:
    // an empty group list.
    cluster.stop_db_proxy();
    cluster.msg_servers[0]
        .0
        .wait_log_count("lost db_proxy", 2 * DB_LINKS);
    let groups = alice.groups().expect("answered without db_proxy");
    assert!(groups.is_empty());
    assert!(cluster.msg_servers[0]
        .0
        .log()
        .contains("held requests answered as without one"));
}

#[test]
fn sigterm_stops_a_msg_server_gracefully_and_login_server_sends_clients_elsewhere() {
    let mut cluster = Cluster::start(&USERS, 2);
    for (p, _) in &cluster.msg_servers {
        p.wait_log("is the master");
    }
    let ms1 = cluster.msg_servers[1].1;
    let mut alice = login(&cluster, 0, "alice", "alice-pw");
    let mut bob = login(&cluster, 1, "bob", "bob-pw");
    // bob's message is on its way when SIGTERM comes: it is still stored,
    // acked and delivered.
    let sender = std::thread::spawn(move || {
        let id = bob.send_text(1, "just before SIGTERM");
        (bob, id)
    });
    cluster.msg_servers[1].0.terminate();
    let (mut bob, id) = sender.join().expect("sender");
    let id = id.expect("acked during the stop");
    let got = next_message(&mut alice);
    assert_eq!((got.msg_id, got.text.as_str()), (id, "just before SIGTERM"));
    // Then bob is disconnected, and msg_server exits cleanly.
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "bob was never disconnected");
        match bob.next_event(Duration::from_millis(100)) {
            Err(_) => break,
            Ok(_) => continue,
        }
    }
    assert_eq!(cluster.msg_servers[1].0.wait_exit(), Some(0));
    let log = cluster.msg_servers[1].0.log();
    assert!(log.contains("SIGTERM: refusing logins"), "{log}");
    assert!(!log.contains("stopping with"), "nothing left in flight");
    // login_server no longer hands it out.
    cluster.login_server().wait_log("msg_server lost");
    for _ in 0..10 {
        let m = tt_client::discovery::via_http(&cluster.login_http()).expect("discovery");
        assert_ne!(m.port, ms1, "a stopped msg_server handed out");
    }
    // bob logs in again (at the other msg_server) and finds his message.
    let m = tt_client::discovery::via_http(&cluster.login_http()).expect("discovery");
    let mut bob = Session::login(
        &format!("{}:{}", m.prior_ip, m.port),
        "bob",
        "bob-pw",
        &LoginOptions::default(),
    )
    .expect("bob again");
    let history = bob
        .history(
            1,
            tt_proto::IM::BaseDefine::SessionType::SESSION_TYPE_SINGLE,
            0,
            10,
        )
        .expect("history");
    assert!(history.iter().any(|h| h.msg_id == id));
}

#[test]
fn a_msg_server_killed_its_clients_log_in_again_through_login_server_on_the_other() {
    let mut cluster = Cluster::start(&USERS, 2);
    for (p, _) in &cluster.msg_servers {
        p.wait_log("is the master");
    }
    let ms1 = cluster.msg_servers[1].1;
    let mut alice = login(&cluster, 0, "alice", "alice-pw");
    let mut bob = login(&cluster, 1, "bob", "bob-pw");
    cluster.msg_servers[1].0.stop();
    let deadline = Instant::now() + WAIT;
    while bob.next_event(Duration::from_millis(100)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "bob's connection outlived its server"
        );
    }
    // Sent while bob is away: stored for him.
    let id = alice
        .send_text(2, "while bob's msg_server is gone")
        .expect("acked");
    cluster.login_server().wait_log("msg_server lost");
    let m = tt_client::discovery::via_http(&cluster.login_http()).expect("discovery");
    assert_ne!(m.port, ms1, "a dead msg_server handed out");
    let mut bob = Session::login(
        &format!("{}:{}", m.prior_ip, m.port),
        "bob",
        "bob-pw",
        &LoginOptions::default(),
    )
    .expect("bob on the other msg_server");
    let history = bob
        .history(
            1,
            tt_proto::IM::BaseDefine::SessionType::SESSION_TYPE_SINGLE,
            0,
            10,
        )
        .expect("history");
    assert!(history.iter().any(|h| h.msg_id == id));
    // And live again from there.
    let id = alice.send_text(2, "back").expect("acked");
    let got = next_message(&mut bob);
    assert_eq!((got.msg_id, got.text.as_str()), (id, "back"));
    assert_eq!(cluster.exited(), vec![format!("msg_server:{ms1}")]);
}
