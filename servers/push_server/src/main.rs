//! `push_server`: the C++ `push_server/` (main.cpp, push_app.cpp,
//! push_server.cpp), speaking today's provider APIs.
//!
//! msg_servers connect and send `IMPushToUserReq` (a flash line, custom
//! data, device tokens); each token goes to Apple (APNs over HTTP/2, token
//! or certificate auth) or, for Android, to FCM HTTP v1, and one
//! `IMPushToUserRsp` answers each request with a result per token. The C++
//! speaks Apple's legacy binary protocol, switched off in 2021.
//!
//! Module map against the C++ `server/src/push_server/`:
//! - `main.rs` is `main.cpp`, `push_app.cpp` and `push_server.cpp`: the
//!   conf, the listener, the provider thread and the loop;
//! - [`config`] is the conf part of `CPushApp::Start`;
//! - [`state`] is `CSessionManager`'s state;
//! - [`push_session`] is `push_session.cpp`, `push_session_handler.cpp` and
//!   `pdu_msg.cpp`: the msg_server link;
//! - [`push_plan`] is `_HandlePushMsg`'s loop: what happens to each token;
//! - [`apns_msg`] is `apns_msg.cpp`: the APNs payload, headers and answer;
//! - [`apns_client`] is `apns_client.cpp` and `apns_client_handler.cpp`;
//! - [`apns_auth`] (provider tokens) and [`fcm_msg`], [`fcm_client`] (FCM)
//!   are new;
//! - [`provider`] is the provider thread (tokio), new;
//! - [`h2_origin`], [`tls`], [`key_file`] are the C++'s `socket/`
//!   (`CSSLClientAsync`): HTTP/2 over TLS, PEM certificates and keys.

mod apns_auth;
mod apns_client;
mod apns_msg;
mod config;
mod fcm_client;
mod fcm_msg;
mod h2_origin;
mod key_file;
mod provider;
mod push_plan;
mod push_session;
mod state;
mod tls;

use base::config::{ConfigError, ConfigFileReader};
use config::PushConfig;
use netlib::{NetError, Reactor};
use provider::{ProviderClients, SetupError};
use push_session::PushSession;
use state::PushState;
use thiserror::Error;

/// The conf file the C++ reads from its working directory.
const CONF_FILE: &str = "pushserver.conf";
/// Longest wait of one loop iteration when no timer is due (ms).
const LOOP_WAIT_MS: u64 = 1_000;

/// Why the server stopped.
#[derive(Debug, Error)]
enum ServeError {
    /// A conf key is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A credential or endpoint named in the conf is unusable.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The listener could not be set up.
    #[error("cannot listen for msg_servers: {0}")]
    Listen(NetError),
    /// The metrics port could not be opened.
    #[error(transparent)]
    Metrics(#[from] tt_http::metrics::MetricsError),
    /// The event loop or the provider thread failed to start or run.
    #[error("event loop: {0}")]
    Io(#[from] std::io::Error),
}

fn main() {
    base::cli::run_server("push_server", CONF_FILE, serve)
}

/// `CPushApp::Start` after the conf is read: credentials, listener,
/// provider thread, loop.
fn serve(conf: ConfigFileReader) -> Result<(), ServeError> {
    let config = PushConfig::from_conf(&conf)?;
    let clients = ProviderClients::from_config(&config)?;
    let providers = clients.providers();
    let mut net = Reactor::<PushState>::new()?;
    let bound = net
        .listen(&config.listen_ip, config.listen_port, |_state, _id| {
            Box::new(PushSession)
        })
        .map_err(ServeError::Listen)?;
    log::info!("listening for msg_servers on {bound:?}");
    tt_http::metrics::listen_metrics(&mut net, &conf, |net, _state, out| net.write_metrics(out))?;
    let queue = if providers.apns || providers.fcm {
        Some(provider::spawn(clients, net.remote())?)
    } else {
        log::warn!("no push provider configured: every push is answered 1");
        None
    };
    let mut state = PushState { providers, queue };
    log::info!("push_server: entering the event loop");
    net.run(&mut state, LOOP_WAIT_MS)?;
    Ok(())
}
