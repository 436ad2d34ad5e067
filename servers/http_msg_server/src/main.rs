//! `http_msg_server`: the C++ `http_msg_server/http_msg_server.cpp`
//! (start-up).
//!
//! The back-office JSON API: `POST /query/CreateGroup` and
//! `POST /query/ChangeMembers` create groups and change their members
//! through db_proxy_server, without a client login; a member change is
//! announced through route_server to the online members on every
//! msg_server.
//!
//! Module map against the C++ `server/src/http_msg_server/`:
//! - `main.rs` is `http_msg_server.cpp` (conf keys, listen, links, loop);
//! - [`http_conn`] is `HttpConn.cpp` (the HTTP port, on `tt-http`);
//! - [`http_query`] is `HttpQuery.cpp` (the checks, as a pure function);
//! - [`http_pdu`] is `HttpPdu.cpp` and `HttpQuery.h`'s error table (the
//!   answers);
//! - [`db_serv_conn`] and [`route_serv_conn`] are `DBServConn.cpp` and
//!   `RouteServConn.cpp` (the peer links);
//! - [`attach_data`] is `AttachData.cpp` (the handle form only);
//! - [`state`] gathers the C++ globals into the reactor's state;
//! - [`metrics`]: `GET /metrics` (not in the C++).

mod attach_data;
mod db_serv_conn;
mod http_conn;
mod http_pdu;
mod http_query;
mod metrics;
mod route_serv_conn;
mod state;

use base::config::{ConfigError, ConfigFileReader, DbServerLinks, ServerAddr};
use base::tick::monotonic_ms;
use db_serv_conn::{DbServConn, DbServers, DEFAULT_CONCURRENT_DB_CONN_CNT};
use http_conn::QueryHttp;
use http_pdu::{result, HttpError};
use netlib::{ImConn, NetError, PeerList, Reactor, ServList};
use route_serv_conn::{RouteServConn, RouteServers};
use state::{HttpMsgState, DB_REPLY_TIMEOUT_MS};
use std::collections::BTreeSet;
use thiserror::Error;

/// The conf file the C++ reads from its working directory.
const CONF_FILE: &str = "httpmsgserver.conf";
/// Longest wait of one loop iteration when no timer is due (ms).
const LOOP_WAIT_MS: u64 = 1_000;
/// The pending-reply sweep (ms).
const TICK_MS: u64 = 1_000;
/// The peer links' reconnect check (ms): fast retries of a lost link (the
/// C++ checks once a second; see `netlib::serv_info`).
const RECONNECT_CHECK_MS: u64 = netlib::serv_info::RECONNECT_CHECK_MS;

/// Everything `httpmsgserver.conf` says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpMsgConfig {
    listen_ip: String,
    listen_port: u16,
    /// `DBServerIP<n>`/`DBServerPort<n>` and `ConcurrentDBConnCnt`.
    db: DbServerLinks,
    route_servers: Vec<ServerAddr>,
    /// `AppKeys` (not in the C++).
    app_keys: Option<BTreeSet<String>>,
}

impl HttpMsgConfig {
    /// Reads every key, failing on the first missing or invalid one.
    fn from_conf(c: &ConfigFileReader) -> Result<HttpMsgConfig, ConfigError> {
        let listen_ip = c.require("ListenIP")?.to_string();
        if base::config::explode(&listen_ip, ';').is_empty() {
            return Err(invalid("ListenIP", &listen_ip, "lists no address"));
        }
        let listen_port = c.require_parse("ListenPort")?;
        let db = DbServerLinks::read(c, DEFAULT_CONCURRENT_DB_CONN_CNT)?;
        let app_keys = match c.get("AppKeys") {
            None => None,
            Some(v) => {
                let keys: BTreeSet<String> = base::config::explode(v, ';').into_iter().collect();
                if keys.is_empty() {
                    return Err(invalid("AppKeys", "", "lists no key"));
                }
                Some(keys)
            }
        };
        Ok(HttpMsgConfig {
            listen_ip,
            listen_port,
            db,
            route_servers: c.read_server_config("RouteServerIP", "RouteServerPort")?,
            app_keys,
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
    /// The API port could not be opened.
    #[error("cannot listen for HTTP: {0}")]
    Listen(#[from] NetError),
    /// The metrics port could not be opened.
    #[error(transparent)]
    Metrics(#[from] tt_http::metrics::MetricsError),
    /// The event loop failed.
    #[error("event loop failed: {0}")]
    Io(#[from] std::io::Error),
}

fn main() {
    base::cli::run_server("http_msg_server", CONF_FILE, serve)
}

/// `main` after the command line.
fn serve(conf: ConfigFileReader) -> Result<(), ServeError> {
    let cfg = HttpMsgConfig::from_conf(&conf)?;
    let mut net = Reactor::<HttpMsgState>::new()?;
    for addr in net.listen(&cfg.listen_ip, cfg.listen_port, |_state, _id| {
        Box::new(QueryHttp::conn()) as Box<dyn ImConn<HttpMsgState>>
    })? {
        log::info!("http_msg_server listening for HTTP on {addr}");
    }
    for (kind, list) in [
        ("db_proxy", &cfg.db.servers),
        ("route_server", &cfg.route_servers),
    ] {
        for s in list {
            log::info!("{kind} at {}:{}", s.ip, s.port);
        }
    }
    if cfg.route_servers.is_empty() {
        log::warn!("no route_server configured: member changes reach no online client");
    }
    match &cfg.app_keys {
        Some(keys) => log::info!("{} app keys accepted (AppKeys)", keys.len()),
        None => log::info!("every app key accepted (no AppKeys)"),
    }
    let db = DbServers::new(
        PeerList::new(ServList::new(cfg.db.links())),
        cfg.db.concurrent,
    );
    log::info!(
        "db_proxy links, first half: [0, {}), second half: [{}, {})",
        db.login_count,
        db.login_count,
        db.peers.peer_count()
    );
    let route = RouteServers {
        peers: PeerList::new(ServList::new(cfg.route_servers.clone())),
        master: None,
    };
    let mut state = HttpMsgState::new(db, route, cfg.app_keys.clone());
    tt_http::metrics::listen_metrics(&mut net, &conf, metrics::render)?;

    state
        .db
        .peers
        .init(&mut net, |i| Box::new(DbServConn::new(i)));
    state
        .route
        .peers
        .init(&mut net, |i| Box::new(RouteServConn::new(i)));
    net.register_timer(RECONNECT_CHECK_MS, |net, state: &mut HttpMsgState| {
        state
            .db
            .peers
            .check_reconnect(net, |i| Box::new(DbServConn::new(i)));
        state
            .route
            .peers
            .check_reconnect(net, |i| Box::new(RouteServConn::new(i)));
    });
    net.register_timer(TICK_MS, |net, state: &mut HttpMsgState| {
        answer_expired(net, state, monotonic_ms());
        db_serv_conn::answer_held_expired(net, state, monotonic_ms());
    });

    log::info!("http_msg_server entering the event loop");
    net.run(&mut state, LOOP_WAIT_MS)?;
    Ok(())
}

/// Requests db_proxy has not answered within [`DB_REPLY_TIMEOUT_MS`] are
/// answered 10 (the C++ leaves them to the 60 s idle close).
fn answer_expired(net: &mut Reactor<HttpMsgState>, state: &mut HttpMsgState, now: u64) {
    let expired = state.pending.take_expired(now, DB_REPLY_TIMEOUT_MS);
    if expired.is_empty() {
        return;
    }
    log::warn!(
        "{} requests without a db_proxy reply for {} s: answered 10",
        expired.len(),
        DB_REPLY_TIMEOUT_MS / 1000
    );
    let response = result(HttpError::ServerException);
    for http in expired {
        if tt_http::send_response(net, http, &response) {
            state.metrics.answered(&response);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "ListenIP=127.0.0.1\nListenPort=8400\n\
        DBServerIP1=127.0.0.1\nDBServerPort1=1\nDBServerIP2=127.0.0.1\nDBServerPort2=2\n";

    fn parse(text: &str) -> Result<HttpMsgConfig, ConfigError> {
        HttpMsgConfig::from_conf(&ConfigFileReader::parse(text))
    }

    #[test]
    fn defaults_follow_the_cpp() {
        let c = parse(BASE).unwrap();
        assert_eq!(c.db.concurrent, 2);
        let ports: Vec<u16> = c.db.links().iter().map(|s| s.port).collect();
        assert_eq!(ports, vec![1, 1, 2, 2]);
        assert!(c.route_servers.is_empty());
        assert_eq!(c.app_keys, None);
        let c = parse(&format!(
            "{BASE}ConcurrentDBConnCnt=3\nRouteServerIP1=127.0.0.1\nRouteServerPort1=9\n"
        ))
        .unwrap();
        assert_eq!(c.db.links().len(), 6);
        assert_eq!(c.route_servers.len(), 1);
    }

    #[test]
    fn the_shipped_conf_parses() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../conf/httpmsgserver.conf"
        ))
        .unwrap();
        let c = parse(&text).unwrap();
        assert_eq!((c.listen_port, c.db.concurrent), (8400, 4));
        assert_eq!(c.route_servers.len(), 1);
    }

    #[test]
    fn missing_and_invalid_keys_are_named() {
        for key in ["ListenIP", "ListenPort"] {
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
        let no_port = BASE.replace("DBServerPort2=2\n", "");
        assert!(parse(&no_port)
            .unwrap_err()
            .to_string()
            .contains("DBServerPort2"));
        for (extra, key) in [
            ("ConcurrentDBConnCnt=0\n", "ConcurrentDBConnCnt"),
            ("ConcurrentDBConnCnt=x\n", "ConcurrentDBConnCnt"),
            ("AppKeys=;\n", "AppKeys"),
            ("RouteServerIP1=a\nRouteServerPort1=x\n", "RouteServerPort1"),
        ] {
            let e = parse(&format!("{BASE}{extra}")).unwrap_err().to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
        assert!(parse(&BASE.replace("ListenPort=8400", "ListenPort=80x")).is_err());
    }

    #[test]
    fn app_keys_are_a_list() {
        let c = parse(&format!("{BASE}AppKeys=a;b\n")).unwrap();
        let keys: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        assert_eq!(c.app_keys, Some(keys));
    }
}
