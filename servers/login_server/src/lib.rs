//! `login_server` as a library: the C++ `login_server.cpp` without its
//! `main` (which is `main.rs`), so tests can run the server's loop in their
//! own process on a [`netlib::ManualClock`] and check its 30 s and 60 s
//! timeouts in milliseconds.
//!
//! Tells clients which msg_server to use. msg_servers connect to the
//! msg_server port and report their addresses and user counts; clients ask
//! on the client port (PDUs) or the HTTP port (`GET /msg_server`) and get
//! the least-loaded msg_server that is not full.
//!
//! Module map against the C++ `server/src/login_server/`:
//! - `lib.rs` (this file) is `login_server.cpp` (conf keys, the three
//!   listeners, the loop: [`serve`], [`start`]); `main.rs` only calls
//!   [`serve`] from the command line;
//! - `login_conn` is `LoginConn.cpp` (client and msg_server PDU ports);
//! - [`http_conn`] is `HttpConn.cpp` (+ the `HttpParserWrapper` parts it uses);
//! - `ip_parser` is `ipparser.cpp`;
//! - `msg_serv_info` is `msg_serv_info_t`, `g_msg_serv_info` and the choice loop;
//! - `metrics`: `GET /metrics` (not in the C++);
//! - `state` gathers the C++ globals into the reactor's state ([`LoginState`]);
//! - `tt_http::styled_json` lays out the HTTP answers as jsoncpp's
//!   `toStyledString`.
//!
//! The connection modules (`login_conn`, `http_conn`) call down into
//! `state` and `msg_serv_info`, never into each other.

pub mod http_conn;
mod ip_parser;
mod login_conn;
mod metrics;
mod msg_serv_info;
mod state;

use base::config::{ConfigError, ConfigFileReader};
use http_conn::{ClientUrls, LoginHttp};
use login_conn::{LoginConn, LoginConnType};
use msg_serv_info::MsgServTable;
use netlib::{ImConn, NetError, Reactor};
/// The state every handler reaches.
pub use state::LoginState;
use thiserror::Error;

/// The conf file the C++ reads from its working directory.
pub const CONF_FILE: &str = "loginserver.conf";
/// Longest wait of one loop iteration when no timer is due (ms).
pub const LOOP_WAIT_MS: u64 = 1_000;

/// The keys of `loginserver.conf`. All are required: the C++ refuses to
/// start without the HTTP, msg_server, `msfs` and `discovery` keys (and
/// crashes without the client ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginConfig {
    /// `ClientListenIP`: the client port's addresses (`;` list).
    pub client_listen_ip: String,
    /// `ClientPort`.
    pub client_port: u16,
    /// `HttpListenIP`.
    pub http_listen_ip: String,
    /// `HttpPort`.
    pub http_port: u16,
    /// `MsgServerListenIP`.
    pub msg_server_listen_ip: String,
    /// `MsgServerPort`.
    pub msg_server_port: u16,
    /// `msfs` and `discovery`, handed to HTTP clients.
    pub urls: ClientUrls,
}

impl LoginConfig {
    /// Reads every key, failing on the first missing or invalid one.
    pub fn from_conf(conf: &ConfigFileReader) -> Result<LoginConfig, ConfigError> {
        Ok(LoginConfig {
            client_listen_ip: conf.require("ClientListenIP")?.to_string(),
            client_port: conf.require_parse("ClientPort")?,
            http_listen_ip: conf.require("HttpListenIP")?.to_string(),
            http_port: conf.require_parse("HttpPort")?,
            msg_server_listen_ip: conf.require("MsgServerListenIP")?.to_string(),
            msg_server_port: conf.require_parse("MsgServerPort")?,
            urls: ClientUrls {
                msfs: conf.require("msfs")?.to_string(),
                discovery: conf.require("discovery")?.to_string(),
            },
        })
    }
}

/// Why the server stopped.
#[derive(Debug, Error)]
pub enum ServeError {
    /// A conf key is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be set up.
    #[error("cannot listen for {what}: {source}")]
    Listen {
        /// Which port.
        what: &'static str,
        /// Why.
        source: NetError,
    },
    /// The metrics port could not be opened.
    #[error(transparent)]
    Metrics(#[from] tt_http::metrics::MetricsError),
    /// The event loop failed.
    #[error("event loop: {0}")]
    Io(#[from] std::io::Error),
}

/// `main` after the conf is read: listens on the three ports and runs the loop.
pub fn serve(conf: ConfigFileReader) -> Result<(), ServeError> {
    let config = LoginConfig::from_conf(&conf)?;
    let mut net = Reactor::<LoginState>::new()?;
    let mut state = start(config, &mut net)?;
    tt_http::metrics::listen_metrics(&mut net, &conf, metrics::render)?;
    log::info!("login_server: entering the event loop");
    net.run(&mut state, LOOP_WAIT_MS)?;
    Ok(())
}

/// Listens on the three ports of `config` with `net` and returns the
/// state to run it with: everything of [`serve`] but the loop.
pub fn start(config: LoginConfig, net: &mut Reactor<LoginState>) -> Result<LoginState, ServeError> {
    let listen = |net: &mut Reactor<LoginState>,
                  what: &'static str,
                  ips: &str,
                  port: u16,
                  make: fn() -> Box<dyn ImConn<LoginState>>| {
        // Clients and HTTP speak first: their request comes with the
        // connection (one wake-up for both); msg_servers are peers.
        let accept = move |_: &mut LoginState, _| make();
        let bound = if what == "msg_servers" {
            net.listen(ips, port, accept)
        } else {
            net.listen_clients(ips, port, accept)
        }
        .map_err(|source| ServeError::Listen { what, source })?;
        log::info!("listening for {what} on {bound:?}");
        Ok::<(), ServeError>(())
    };
    listen(
        net,
        "clients",
        &config.client_listen_ip,
        config.client_port,
        || Box::new(LoginConn::new(LoginConnType::Client)),
    )?;
    listen(
        net,
        "msg_servers",
        &config.msg_server_listen_ip,
        config.msg_server_port,
        || Box::new(LoginConn::new(LoginConnType::MsgServ)),
    )?;
    listen(
        net,
        "http",
        &config.http_listen_ip,
        config.http_port,
        || Box::new(LoginHttp::conn()),
    )?;

    Ok(LoginState {
        msg_servs: MsgServTable::default(),
        urls: config.urls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "ClientListenIP=0.0.0.0\nClientPort=8008\nHttpListenIP=0.0.0.0\n\
                        HttpPort=8080\nMsgServerListenIP=0.0.0.0\nMsgServerPort=8100\n\
                        msfs=http://127.0.0.1:8700/\ndiscovery=http://127.0.0.1/api/discovery\n";

    #[test]
    fn reads_the_reference_conf() {
        let c = LoginConfig::from_conf(&ConfigFileReader::parse(FULL)).unwrap();
        assert_eq!(c.client_port, 8008);
        assert_eq!(c.http_port, 8080);
        assert_eq!(c.msg_server_port, 8100);
        assert_eq!(c.urls.msfs, "http://127.0.0.1:8700/");
        assert_eq!(c.urls.discovery, "http://127.0.0.1/api/discovery");
    }

    #[test]
    fn every_key_is_required_and_named() {
        for key in [
            "ClientListenIP",
            "ClientPort",
            "HttpListenIP",
            "HttpPort",
            "MsgServerListenIP",
            "MsgServerPort",
            "msfs",
            "discovery",
        ] {
            let text: String = FULL
                .lines()
                .filter(|l| !l.starts_with(&format!("{key}=")))
                .map(|l| format!("{l}\n"))
                .collect();
            let e = LoginConfig::from_conf(&ConfigFileReader::parse(&text)).unwrap_err();
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
    }
}
