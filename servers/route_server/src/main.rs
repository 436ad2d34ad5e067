//! `route_server`: the C++ `route_server/route_server.cpp` (start-up).
//!
//! Reads `routeserver.conf` (keys `ListenIP`, a `;` list, and
//! `ListenMsgPort`) from the working directory or `-c PATH`, listens for
//! msg_servers on every listed address and runs the event loop.
//!
//! Layout (modules call down, never up):
//! - [`route_conn`] is `RouteConn.cpp`'s `CRouteConn`: one msg_server
//!   link, its commands and the presence notifications they cause;
//! - [`state`] is `RouteConn.cpp`'s globals: the links, the user table
//!   and broadcasting to the links;
//! - [`user_info`] is `UserInfo.cpp`: one user's clients per link;
//! - [`start_replay`]: what was relayed just after start, for the
//!   msg_servers that link a little later (not in the C++);
//! - [`metrics`]: `GET /metrics` (not in the C++).

mod metrics;
mod route_conn;
mod start_replay;
mod state;
mod user_info;

use base::config::{ConfigError, ConfigFileReader};
use base::tick::monotonic_ms;
use netlib::{ImConn, NetError, Reactor};
use route_conn::RouteConn;
use state::RouteState;
use thiserror::Error;

/// The C++ conf file name, read from the working directory.
const CONF_NAME: &str = "routeserver.conf";
/// How often users dropped with a lost link, and login marks, are aged
/// out (the C++
/// `route_serv_timer_callback` period).
const TIMER_MS: u64 = 1_000;
/// Longest wait of one loop iteration.
const LOOP_WAIT_MS: u64 = 1_000;

/// Why the server could not start or stopped.
#[derive(Debug, Error)]
enum ServeError {
    /// A conf key is missing or unusable (names the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listening address could not be used.
    #[error("cannot listen for msg_servers: {0}")]
    Listen(#[from] NetError),
    /// The metrics port could not be opened.
    #[error(transparent)]
    Metrics(#[from] tt_http::metrics::MetricsError),
    /// The event loop failed.
    #[error("event loop failed: {0}")]
    Io(#[from] std::io::Error),
}

fn main() {
    base::cli::run_server("route_server", CONF_NAME, serve)
}

/// `main` after the command line: listen, then loop until killed.
fn serve(config: ConfigFileReader) -> Result<(), ServeError> {
    let listen_ip = config.require("ListenIP")?;
    let listen_msg_port: u16 = config.require_parse("ListenMsgPort")?;
    if base::config::explode(listen_ip, ';').is_empty() {
        return Err(ConfigError::Invalid {
            key: "ListenIP".into(),
            value: listen_ip.into(),
            reason: "lists no address".into(),
        }
        .into());
    }

    let mut net = Reactor::<RouteState>::new()?;
    let bound = net.listen(listen_ip, listen_msg_port, |_state, _id| {
        Box::new(RouteConn::new()) as Box<dyn ImConn<RouteState>>
    })?;
    for addr in &bound {
        log::info!("route_server listening for msg_servers on {addr}");
    }
    tt_http::metrics::listen_metrics(&mut net, &config, metrics::render)?;
    net.register_timer(TIMER_MS, |_net, state: &mut RouteState| {
        let now = monotonic_ms();
        state.forget_dropped(now);
        state.forget_pending_logins(now);
    });

    let mut state = RouteState::default();
    state.start_replay = start_replay::StartReplay::new(monotonic_ms());
    log::info!("route_server entering the event loop");
    net.run(&mut state, LOOP_WAIT_MS)?;
    Ok(())
}
