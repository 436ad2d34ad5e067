//! The loop thread's state: what the C++ keeps in the globals of
//! `ProxyConn.cpp` (`g_proxy_conn_map`, `g_thread_pool`) and
//! `db_proxy_server.cpp` (the handler map, the sync center it starts),
//! gathered in one struct owned by the event loop.

use crate::handler_map::HandlerMap;
use crate::services::Services;
use crate::sync_center::SyncThread;
use base::thread_pool::ThreadPool;
use netlib::{ConnId, Remote};
use std::collections::HashSet;
use std::sync::Arc;

/// The state of db_proxy's event loop, handed to every `ProxyConn` callback.
pub struct ProxyState {
    /// Pools and the rest, shared with the workers.
    pub services: Arc<Services>,
    /// Command id → handler.
    pub handlers: HandlerMap,
    /// The worker pool (`g_thread_pool`); taken on shutdown.
    pub workers: Option<ThreadPool>,
    /// Hands replies back to this loop.
    pub remote: Remote<ProxyState>,
    /// Every open msg_server link (`g_proxy_conn_map`).
    pub links: HashSet<ConnId>,
    /// The group-chat sync thread; stopped on SIGTERM.
    pub sync_thread: Option<SyncThread>,
}
