//! The CI-sized proof of issue 20: 20,000 idle clients over two
//! msg_servers stay logged in across two heartbeat periods, and a message
//! between two users on different msg_servers arrives meanwhile.
//!
//! The whole cluster runs as real processes (debug builds) on loopback.
//! The idle clients are two `tt-idle run` child processes of 9,999 each
//! (every process here may open at most 20,000 files, so neither this test
//! nor one child could hold them all), each asking login_server's HTTP port
//! for its msg_server as real Android clients do, from 20 source addresses
//! of its own; users 1 and 2 log in with the client library straight to
//! msg_server A and B. tt-idle heartbeats every 10 s here (the real clients:
//! 30 s; the msg_server's own timeouts stay 120 s / 300 s) and holds the
//! clients for 25 s after the last login, so every held client must have
//! had at least two heartbeats answered. It takes about 45 s on the 2-core
//! development machine (14 s of logins through the debug builds, 25 s of
//! hold),
//! and skips, saying why, when the file limits cannot hold 20,000 clients
//! (`TT_IDLE_CLIENTS` sets another count).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tt_client::{Event, LoginOptions, Session};
use tt_rs::cluster::Cluster;
use tt_rs::ScratchDir;

const TT_IDLE: &str = env!("CARGO_BIN_EXE_tt-idle");
/// tt-idle's heartbeat period in this test.
const HEARTBEAT_SECS: u64 = 10;
/// The hold after the logins: past two heartbeat periods.
const HOLD_SECS: u64 = 2 * HEARTBEAT_SECS + 5;
/// Idle client processes.
const CHILDREN: u32 = 2;

fn clients() -> u32 {
    std::env::var("TT_IDLE_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn nofile() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    (lim.rlim_cur, lim.rlim_max)
}

/// Why this machine cannot run the test, if it cannot.
fn cannot_run(clients: u64) -> Option<String> {
    let (soft, hard) = nofile();
    // Each msg_server inherits our soft limit and holds half the clients.
    let per_msg_server = clients / 2 + 200;
    if soft < per_msg_server {
        return Some(format!(
            "RLIMIT_NOFILE soft limit {soft} < {per_msg_server} files a msg_server needs \
             (raise `ulimit -n`)"
        ));
    }
    let per_child = clients / u64::from(CHILDREN) + 400;
    if hard < per_child {
        return Some(format!(
            "RLIMIT_NOFILE hard limit {hard} < {per_child} files a tt-idle process needs"
        ));
    }
    let file_max: u64 = std::fs::read_to_string("/proc/sys/fs/file-max")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX);
    if file_max < 4 * clients + 10_000 {
        return Some(format!(
            "fs.file-max {file_max} cannot hold {clients} loopback connection pairs"
        ));
    }
    None
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn child_log(dir: &Path, k: u32) -> String {
    std::fs::read_to_string(dir.join(format!("idle{k}.err"))).unwrap_or_default()
}

#[test]
fn twenty_thousand_idle_clients_over_two_msg_servers_stay_logged_in() {
    let total = clients();
    if let Some(why) = cannot_run(u64::from(total)) {
        eprintln!("skipped: {why}");
        return;
    }
    let started = Instant::now();
    let cluster = Cluster::start_numbered(total, 2);
    let (port_a, port_b) = (cluster.msg_servers[0].1, cluster.msg_servers[1].1);
    let dir = ScratchDir::new("idle");
    let csv = dir.path().join("users.csv");
    std::fs::write(&csv, cluster.users_csv()).unwrap();
    let pids = format!(
        "{port_a}={},{port_b}={}",
        cluster.msg_servers[0].0.pid(),
        cluster.msg_servers[1].0.pid()
    );

    // Users 1 and 2 (the first two CSV lines) are ours; the children take
    // the rest.
    let idle = total - 2;
    let per_child = idle / CHILDREN;
    let mut children: Vec<Child> = (0..CHILDREN)
        .map(|k| {
            let take = if k + 1 == CHILDREN {
                idle - per_child * k
            } else {
                per_child
            };
            let out = std::fs::File::create(dir.path().join(format!("idle{k}.out"))).unwrap();
            let err = std::fs::File::create(dir.path().join(format!("idle{k}.err"))).unwrap();
            Command::new(TT_IDLE)
                .args(["run", "--login", &cluster.login_http(), "--csv"])
                .arg(&csv)
                .args(["--skip", &(2 + per_child * k).to_string()])
                .args(["--users", &take.to_string()])
                .args(["--rate", "2000", "--in-flight", "200"])
                .args(["--heartbeat", &HEARTBEAT_SECS.to_string()])
                .args(["--hold", &HOLD_SECS.to_string()])
                .args(["--login-timeout", "60"])
                .args([
                    "--source-ips",
                    &format!("127.0.{}.1-127.0.{}.20", k + 1, k + 1),
                ])
                .args(["--pids", &pids])
                .arg("--json")
                .arg(dir.path().join(format!("idle{k}.json")))
                .arg("--ready-file")
                .arg(dir.path().join(format!("idle{k}.ready")))
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .spawn()
                .expect("spawn tt-idle")
        })
        .collect();

    let mut one = Session::login(
        &format!("127.0.0.1:{port_a}"),
        "load1",
        "pw1",
        &LoginOptions::default(),
    )
    .expect("user 1 logs in on msg_server A");
    let mut two = Session::login(
        &format!("127.0.0.1:{port_b}"),
        "load2",
        "pw2",
        &LoginOptions::default(),
    )
    .expect("user 2 logs in on msg_server B");

    // Every child has answered all its logins (or died, which fails).
    let deadline = Instant::now() + Duration::from_secs(240);
    for k in 0..CHILDREN {
        let ready = dir.path().join(format!("idle{k}.ready"));
        while !ready.exists() {
            if let Ok(Some(status)) = children[k as usize].try_wait() {
                panic!(
                    "tt-idle {k} ended early ({status}):\n{}",
                    child_log(dir.path(), k)
                );
            }
            assert!(
                Instant::now() < deadline,
                "tt-idle {k}: logins not answered in 240 s:\n{}",
                child_log(dir.path(), k)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let logged_in_after = started.elapsed();

    // While all of them are held: a message from A's user to B's user.
    let text = "across msg_servers under 20k idle clients";
    one.send_text(two.user_id(), text).expect("send");
    let arrived = loop {
        match two
            .next_event(Duration::from_secs(20))
            .expect("user 2's session")
        {
            Some(Event::Message(m)) => break m,
            Some(_) => continue,
            None => panic!("the message did not arrive within 20 s"),
        }
    };
    assert_eq!((arrived.from, arrived.text.as_str()), (one.user_id(), text));

    let mut per_server: std::collections::BTreeMap<String, u64> = Default::default();
    for (k, child) in children.iter_mut().enumerate() {
        let status = child.wait().unwrap();
        let k = k as u32;
        let report = read_json(&dir.path().join(format!("idle{k}.json")));
        let log = child_log(dir.path(), k);
        let users = report["users"].as_u64().unwrap();
        assert!(status.success(), "tt-idle {k}: {report}\n{log}");
        assert_eq!(report["logins_ok"].as_u64(), Some(users), "{report}");
        assert_eq!(report["held"].as_u64(), Some(users), "{report}");
        assert_eq!(report["lost"].as_u64(), Some(0), "{report}");
        assert_eq!(report["kicked"].as_u64(), Some(0), "{report}");
        let min = report["min_heartbeat_replies"].as_u64().unwrap();
        assert!(min >= 2, "a client had {min} heartbeats answered: {report}");
        for (server, n) in report["per_server"].as_object().unwrap() {
            *per_server.entry(server.clone()).or_default() += n.as_u64().unwrap();
        }
        eprintln!(
            "tt-idle {k}: {}",
            std::fs::read_to_string(dir.path().join(format!("idle{k}.out"))).unwrap_or_default()
        );
    }
    // login_server spread them over both msg_servers.
    assert_eq!(per_server.len(), 2, "{per_server:?}");
    for (server, n) in &per_server {
        assert!(
            *n * 4 >= u64::from(idle),
            "msg_server {server} got only {n} of {idle}: {per_server:?}"
        );
    }
    // The two users' sessions outlived it all.
    assert!(one.user_info(&[2]).is_ok() && two.user_info(&[1]).is_ok());
    eprintln!(
        "{total} clients logged in after {:.0}s, whole test {:.0}s",
        logged_in_after.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
