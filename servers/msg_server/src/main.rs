//! `msg_server`: the C++ `msg_server/msg_server.cpp` (start-up).
//!
//! Clients log in here and stay connected; their commands go to
//! db_proxy_server (storage), route_server (users on other msg_servers),
//! login_server (load reports), push_server and file_server.
//!
//! Module map against the C++ `server/src/msg_server/`:
//! - `main.rs` is `msg_server.cpp` (conf keys, listen, links, loop);
//! - [`msg_conn`] is `MsgConn.cpp`, split along its seams: the handler and
//!   its dispatch (`mod.rs`), a connection's fields (`conn`), the checks
//!   before a command runs (`checks`), logins and kicks (`login`), the
//!   message and session commands (`commands`);
//! - [`im_user`] is `ImUser.cpp` (users and their connections);
//! - [`db_serv_conn`], [`login_serv_conn`], [`route_serv_conn`],
//!   [`push_serv_conn`], [`file_serv_conn`] are the `*ServConn.cpp` link
//!   handlers (confirm, close, replies);
//! - [`peers`] holds their server lists and the sends to peers
//!   (`get_db_serv_conn`, `send_to_all_route_server`...);
//! - [`group_chat`] is `GroupChat.cpp`, [`file_handler`] is `FileHandler.cpp`;
//! - [`group_cache`] keeps group member lists and the messages waiting
//!   for one (the C++ keeps none);
//! - [`peer_hold`] holds requests for db_proxy and PDUs for route_server
//!   while no link is usable, and the read-only requests in flight (the
//!   C++ drops them);
//! - [`attach_data`] is `AttachData.cpp`;
//! - `netlib::PeerList` is `ServInfo.h`'s list plus each link's open flag;
//! - [`shutdown`] is the graceful stop on SIGTERM (not in the C++);
//! - [`state`] gathers the C++ globals into the reactor's state;
//! - [`metrics`]: `GET /metrics` (not in the C++) and the counters behind it.
//!
//! Calls point one way, down this stack (a module calls only those below
//! it, never one beside or above):
//! 1. the link handlers: [`db_serv_conn`] and [`route_serv_conn`] (the
//!    replies and relays, dispatched to the modules below), [`msg_conn`]
//!    (client commands);
//! 2. the features they dispatch to: `msg_conn::login` (called by
//!    db_serv_conn for a validated login, by route_serv_conn for a kick),
//!    [`group_chat`], [`file_handler`], [`push_serv_conn`], and the link
//!    handlers nothing dispatches to ([`login_serv_conn`],
//!    [`file_serv_conn`]);
//! 3. [`state`]: the state and the sends that need more than one link
//!    set (to a user's connections, back to the client a reply names);
//! 4. the leaves: [`peers`] (sending to peers, on [`peer_hold`]), [`group_cache`],
//!    [`im_user`], `msg_conn::conn`, `msg_conn::checks`, [`attach_data`],
//!    [`metrics`].
//!
//! So a reply handler sends through `state.route.to_master(net, &pdu)` or
//! `state.db.forward(...)`, never through another link's module.

mod attach_data;
mod db_serv_conn;
mod file_handler;
mod file_serv_conn;
mod group_cache;
mod group_chat;
mod im_user;
mod login_serv_conn;
mod login_servers;
mod metrics;
mod msg_conn;
mod peer_hold;
mod peers;
mod push_serv_conn;
mod route_serv_conn;
mod shutdown;
mod state;

use base::aes::Aes;
use base::config::{ConfigError, ConfigFileReader, DbServerLinks, ServerAddr};
use base::tick::monotonic_ms;
use db_serv_conn::DbServConn;
use file_serv_conn::FileServConn;
use login_serv_conn::LoginServConn;
use login_servers::LoginServers;
use msg_conn::MsgConn;
use netlib::PeerList;
use netlib::{ImConn, NetError, Reactor, ServList};
use peers::{DbServers, FileServers, PushServers, RouteServers, DEFAULT_CONCURRENT_DB_CONN_CNT};
use push_serv_conn::PushServConn;
use route_serv_conn::RouteServConn;
use state::{MsgState, MsgStats, ServerIdentity};
use thiserror::Error;

/// The conf file the C++ reads from its working directory.
const CONF_FILE: &str = "msgserver.conf";
/// Longest wait of one loop iteration when no timer is due (ms).
const LOOP_WAIT_MS: u64 = 1_000;
/// The peer links' reconnect timer (the C++ `*_conn_timer_callback`, once
/// a second there): fast retries of a lost link (see `netlib::serv_info`).
const RECONNECT_TIMER_MS: u64 = netlib::serv_info::RECONNECT_CHECK_MS;
/// `msg_conn_timer_callback`'s period.
const MSG_CONN_TIMER_MS: u64 = 1_000;
/// `LOG_MSG_STAT_INTERVAL`: message statistics are logged every 5 minutes.
const LOG_MSG_STAT_INTERVAL_MS: u64 = 300_000;

/// Everything `msgserver.conf` says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MsgConfig {
    listen_ip: String,
    listen_port: u16,
    ip_addr1: String,
    ip_addr2: String,
    max_conn_cnt: u32,
    aes_key: String,
    /// `DBServerIP<n>`/`DBServerPort<n>` and `ConcurrentDBConnCnt`.
    db: DbServerLinks,
    login_servers: Vec<ServerAddr>,
    route_servers: Vec<ServerAddr>,
    push_servers: Vec<ServerAddr>,
    file_servers: Vec<ServerAddr>,
}

impl MsgConfig {
    /// Reads every key, failing on the first missing or invalid one, as
    /// the C++ `main` refuses to start.
    fn from_conf(c: &ConfigFileReader) -> Result<MsgConfig, ConfigError> {
        let listen_ip = c.require("ListenIP")?.to_string();
        if base::config::explode(&listen_ip, ';').is_empty() {
            return Err(invalid("ListenIP", &listen_ip, "lists no address"));
        }
        let aes_key = c.require("aesKey")?.to_string();
        if aes_key.len() != 32 {
            return Err(ConfigError::Invalid {
                key: "aesKey".into(),
                value: format!("<{} bytes>", aes_key.len()),
                reason: "must be exactly 32 characters".into(),
            });
        }
        let db = DbServerLinks::read(c, DEFAULT_CONCURRENT_DB_CONN_CNT)?;
        let ip_addr1 = c.require("IpAddr1")?.to_string();
        Ok(MsgConfig {
            listen_port: c.require_parse("ListenPort")?,
            ip_addr2: c.get("IpAddr2").unwrap_or(&ip_addr1).to_string(),
            ip_addr1,
            max_conn_cnt: c.require_parse("MaxConnCnt")?,
            aes_key,
            db,
            login_servers: c.read_server_config("LoginServerIP", "LoginServerPort")?,
            route_servers: c.read_server_config("RouteServerIP", "RouteServerPort")?,
            push_servers: c.read_server_config("PushServerIP", "PushServerPort")?,
            file_servers: c.read_server_config("FileServerIP", "FileServerPort")?,
            listen_ip,
        })
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::invalid(key, value, reason)
}

/// Why the server could not start or stopped.
#[derive(Debug, Error)]
enum ServeError {
    /// A conf key is missing or invalid (names the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The client port could not be opened.
    #[error("cannot listen for clients: {0}")]
    Listen(#[from] NetError),
    /// The metrics port could not be opened.
    #[error(transparent)]
    Metrics(#[from] tt_http::metrics::MetricsError),
    /// The event loop failed.
    #[error("event loop failed: {0}")]
    Io(#[from] std::io::Error),
}

/// `gethostname`, for login_server's list.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

fn main() {
    base::cli::run_server("msg_server", CONF_FILE, serve)
}

/// `main` after the command line.
fn serve(conf: ConfigFileReader) -> Result<(), ServeError> {
    let cfg = MsgConfig::from_conf(&conf)?;
    let aes = Aes::new(cfg.aes_key.as_bytes())
        .map_err(|e| invalid("aesKey", "<hidden>", &e.to_string()))?;
    let mut net = Reactor::<MsgState>::new()?;
    // Signals first: one that comes as soon as the port is open (a test,
    // an operator's script) is ours, not the default action's.
    init_msg_conn(&mut net)?;
    // A client's login comes with its connection: one wake-up for both.
    for addr in net.listen_clients(&cfg.listen_ip, cfg.listen_port, |_state, _id| {
        Box::new(MsgConn) as Box<dyn ImConn<MsgState>>
    })? {
        log::info!("msg_server listening for clients on {addr}");
    }

    let mut state = MsgState {
        me: ServerIdentity {
            ip1: cfg.ip_addr1.clone(),
            ip2: cfg.ip_addr2.clone(),
            port: cfg.listen_port,
            max_conn_cnt: cfg.max_conn_cnt,
            host_name: host_name(),
        },
        aes,
        conns: Default::default(),
        users: Default::default(),
        db: DbServers::new(
            PeerList::new(ServList::new(cfg.db.links())),
            cfg.db.concurrent,
        ),
        login: LoginServers::new(PeerList::new(ServList::new(cfg.login_servers.clone()))),
        route: RouteServers::new(PeerList::new(ServList::new(cfg.route_servers.clone()))),
        push: PushServers {
            peers: PeerList::new(ServList::new(cfg.push_servers.clone())),
            master: None,
        },
        file: FileServers {
            peers: PeerList::new(ServList::new(cfg.file_servers.clone())),
            ip_lists: Default::default(),
        },
        groups: Default::default(),
        stats: MsgStats::default(),
        metrics: Default::default(),
        log_msg: true,
        shutdown: None,
    };
    for (kind, list) in [
        ("db_proxy", &cfg.db.servers),
        ("login_server", &cfg.login_servers),
        ("route_server", &cfg.route_servers),
        ("push_server", &cfg.push_servers),
        ("file_server", &cfg.file_servers),
    ] {
        for s in list {
            log::info!("{kind} at {}:{}", s.ip, s.port);
        }
        if list.is_empty() {
            log::warn!("no {kind} configured");
        }
    }

    tt_http::metrics::listen_metrics(&mut net, &conf, metrics::render)?;
    state
        .file
        .peers
        .init(&mut net, |i| Box::new(FileServConn::new(i)));
    state
        .db
        .peers
        .init(&mut net, |i| Box::new(DbServConn::new(i)));
    state
        .login
        .peers
        .init(&mut net, |i| Box::new(LoginServConn::new(i)));
    state
        .route
        .peers
        .init(&mut net, |i| Box::new(RouteServConn::new(i)));
    state
        .push
        .peers
        .init(&mut net, |i| Box::new(PushServConn::new(i)));
    net.register_timer(RECONNECT_TIMER_MS, |net, state: &mut MsgState| {
        state
            .file
            .peers
            .check_reconnect(net, |i| Box::new(FileServConn::new(i)));
        state
            .db
            .peers
            .check_reconnect(net, |i| Box::new(DbServConn::new(i)));
        // Stopping: login_server must not hear of us again.
        if state.shutdown.is_none() {
            state
                .login
                .peers
                .check_reconnect(net, |i| Box::new(LoginServConn::new(i)));
        }
        state
            .route
            .peers
            .check_reconnect(net, |i| Box::new(RouteServConn::new(i)));
        state
            .push
            .peers
            .check_reconnect(net, |i| Box::new(PushServConn::new(i)));
        // What waits for db_proxy or route_server: sent once a link is
        // usable, answered as without one past its bound.
        let dropped = state.db.expire(net);
        state.stats.up_miss += dropped;
        state.route.tick(net);
        shutdown::tick(net, state);
    });

    log::info!("msg_server entering the event loop");
    net.run(&mut state, LOOP_WAIT_MS)?;
    Ok(())
}

/// `init_msg_conn`: the statistics timer (which also sweeps the group
/// cache, see [`group_chat::expire_waits`]) and the signals (SIGUSR1
/// resets the statistics, SIGUSR2 toggles message logging, SIGHUP exits,
/// SIGTERM stops gracefully: [`shutdown`], not in the C++).
fn init_msg_conn(net: &mut Reactor<MsgState>) -> std::io::Result<()> {
    let mut last_stat = monotonic_ms();
    net.register_timer(MSG_CONN_TIMER_MS, move |_net, state: &mut MsgState| {
        let now = monotonic_ms();
        group_chat::expire_waits(state, now);
        if now > last_stat + LOG_MSG_STAT_INTERVAL_MS {
            last_stat = now;
            let s = state.stats;
            let g = state.groups.counters();
            let (db_held, db_in_flight) = state.db.held_count();
            log::info!(
                "held for db_proxy: {db_held}, read-only in flight: {db_in_flight}, held for route_server: {}",
                state.route.held_count()
            );
            log::info!(
                "up_msg_cnt={}, up_msg_miss_cnt={}, down_msg_cnt={}, down_msg_miss_cnt={}, users={}, connections={}, \
                 group_lists={} (evicted {}, expired {}), group_waits={} (dropped {}, expired {})",
                s.up_total,
                s.up_miss,
                s.down_total,
                s.down_miss,
                state.users.user_count(),
                state.conns.len(),
                state.groups.group_count(),
                g.lists_evicted,
                g.lists_expired,
                state.groups.waiting_count(),
                g.waits_dropped,
                g.waits_expired
            );
        }
    });
    use signal_hook::consts::{SIGHUP, SIGTERM, SIGUSR1, SIGUSR2};
    net.handle_signals(
        &[SIGUSR1, SIGUSR2, SIGHUP, SIGTERM],
        |net, state: &mut MsgState, sig| match sig {
            SIGUSR1 => {
                log::info!("SIGUSR1: message statistics reset");
                state.stats = MsgStats::default();
            }
            SIGUSR2 => {
                state.log_msg = !state.log_msg;
                log::info!(
                    "SIGUSR2: message logging {}",
                    if state.log_msg { "on" } else { "off" }
                );
            }
            SIGTERM => shutdown::begin(net, state),
            _ => {
                log::info!("SIGHUP: exiting");
                net.stop();
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "ListenIP=127.0.0.1\nListenPort=8000\nIpAddr1=a\nMaxConnCnt=10\n\
        aesKey=12345678901234567890123456789012\n\
        DBServerIP1=127.0.0.1\nDBServerPort1=1\nDBServerIP2=127.0.0.1\nDBServerPort2=2\n";

    fn parse(text: &str) -> Result<MsgConfig, ConfigError> {
        MsgConfig::from_conf(&ConfigFileReader::parse(text))
    }

    #[test]
    fn defaults_follow_the_cpp() {
        let c = parse(BASE).unwrap();
        assert_eq!(c.ip_addr2, "a", "IpAddr2 defaults to IpAddr1");
        assert_eq!(c.db.concurrent, DEFAULT_CONCURRENT_DB_CONN_CNT);
        assert_eq!(c.db.links().len(), 20);
        assert!(c.route_servers.is_empty());
        let c = parse(&format!("{BASE}ConcurrentDBConnCnt=2\n")).unwrap();
        let ports: Vec<u16> = c.db.links().iter().map(|s| s.port).collect();
        assert_eq!(ports, vec![1, 1, 2, 2]);
    }

    #[test]
    fn missing_keys_are_named() {
        for key in ["ListenIP", "ListenPort", "IpAddr1", "MaxConnCnt", "aesKey"] {
            let text: String = BASE
                .lines()
                .filter(|l| !l.starts_with(&format!("{key}=")))
                .map(|l| format!("{l}\n"))
                .collect();
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        let one_db = BASE.replace("DBServerIP2=127.0.0.1\n", "");
        assert!(parse(&one_db)
            .unwrap_err()
            .to_string()
            .contains("DBServerIP2"));
        let short_key = BASE.replace("aesKey=12345678901234567890123456789012", "aesKey=short");
        assert!(parse(&short_key)
            .unwrap_err()
            .to_string()
            .contains("aesKey"));
        let zero = format!("{BASE}ConcurrentDBConnCnt=0\n");
        assert!(parse(&zero)
            .unwrap_err()
            .to_string()
            .contains("ConcurrentDBConnCnt"));
    }
}
