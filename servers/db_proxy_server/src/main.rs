//! `db_proxy_server`: the C++ `db_proxy_server.cpp`.
//!
//! The only server that talks to MySQL and Redis. msg_servers (and
//! http_msg_server) connect on `ListenPort`; each request PDU is answered
//! by a worker of a fixed pool of `ThreadNum` threads.
//!
//! Layout (C++ file in brackets):
//! - `main.rs`: conf, then run (`db_proxy_server.cpp`).
//! - [`state`]: the loop thread's state, one [`state::ProxyState`].
//! - [`message_lanes`]: one-to-one messages gathered per user pair and
//!   stored in batches by the lane's worker (not in the C++);
//!   [`new_pairs`]: a new pair's messages parked while a worker without a
//!   lane makes the pair (not in the C++).
//! - [`proxy_conn`]: a msg_server's link, SIGTERM (`ProxyConn.cpp`).
//! - [`handler_map`]: command id → handler (`HandlerMap.cpp`).
//! - [`services`]: what the workers share: pools, sync times, login
//!   failures (the C++ singletons).
//! - [`business`]: the handlers and models (`business/`).
//! - [`cache_keys`]: every Redis key name (`business/Common.h` and the
//!   literals of the models).
//! - [`db_pool`], [`cache_pool`]: MySQL and Redis pools (`DBPool.cpp`,
//!   `CachePool.cpp`); [`sync_center`] (`SyncCenter.cpp`);
//!   `http_client`: audio to and from msfs (`base/HttpClient.cpp`);
//!   [`store_wait`]: how a request waits for a restarted store (not in
//!   the C++); [`config`]: the conf keys; [`work_queue`]: the bound on work
//!   handed to the workers, with backpressure per link (`ThreadPool.cpp`);
//!   [`metrics`]: `GET /metrics` (not in the C++); [`db_rows`]: rows
//!   read without the `mysql` crate's panic on a value that does not fit.

mod business;
mod cache_keys;
mod cache_pool;
mod config;
mod db_pool;
mod db_rows;
mod handler_map;
mod login_lane;
mod message_lanes;
mod metrics;
mod new_pairs;
mod proxy_conn;
mod services;
mod state;
mod store_wait;
mod sync_center;
mod work_queue;

use config::DbProxyConfig;
use netlib::{ImConn, Reactor};
use proxy_conn::ProxyConn;
use services::{Services, StartError};
use state::ProxyState;
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn main() {
    base::cli::run_server("db_proxy_server", "dbproxyserver.conf", serve)
}

fn serve(config: base::config::ConfigFileReader) -> Result<(), StartError> {
    let cfg = DbProxyConfig::from_reader(&config)?;
    let services = Arc::new(Services::connect(&cfg)?);
    let sync_thread = sync_center::SyncThread::start(services.clone())?;
    let workers = base::thread_pool::ThreadPool::new("db-worker", cfg.thread_num)?;
    let mut net = Reactor::<ProxyState>::new()?;
    let remote = net.remote();
    let mut state = ProxyState::new(services, workers, remote, sync_thread, cfg.work_limits);
    let metrics = state.metrics.clone();
    let l = cfg.work_limits;
    log::info!(
        "{} workers; at most {} requests with them, {} per link, then up to {} held per link",
        cfg.thread_num,
        l.queue_size,
        l.link_queue_size,
        l.link_hold_size
    );
    // Signals before the port opens: a SIGTERM that comes at once is ours.
    net.handle_signals(&[signal_hook::consts::SIGTERM], |net, state, _| {
        proxy_conn::on_sigterm(net, state)
    })?;
    for addr in net.listen(&cfg.listen_ip, cfg.listen_port, |_, _| {
        Box::new(ProxyConn) as Box<dyn ImConn<ProxyState>>
    })? {
        log::info!("db_proxy_server listening for msg_servers on {addr}");
    }
    tt_http::metrics::listen_metrics(&mut net, &config, metrics::render)?;
    net.run(&mut state, 1000)?;
    // Flush the replies the last workers handed back.
    for _ in 0..10 {
        net.run_once(&mut state, 10)?;
    }
    log::info!(
        "db_proxy_server stopped (backpressure engaged {} times, {} links closed over the hold cap)",
        metrics.backpressure_engaged.load(Ordering::Relaxed),
        metrics.links_closed_over_hold.load(Ordering::Relaxed)
    );
    if let Some(left) = state.abandoned {
        return Err(StartError::DrainAbandoned(left));
    }
    Ok(())
}
