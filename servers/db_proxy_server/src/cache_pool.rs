//! Redis connection pools: the C++ `CachePool.cpp` (`CachePool`,
//! `CacheConn`, `CacheManager`).
//!
//! As in the C++: one pool per `CacheInstances` entry, `SELECT <db>` on
//! connect, a 200 ms connect timeout, no more than one reconnect try per
//! 4 s per connection (`CacheConn::Init`), 2 connections at start, more on
//! demand up to `maxconncnt`. A connection that fails at the socket level is
//! closed and reconnected on a later use, so a Redis restart costs failed
//! requests, never a stuck pool. Connections come as guards ([`CacheConn`])
//! that return to the pool on drop.

use crate::config::CacheInstanceConfig;
use crate::metrics::PoolMetrics;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use thiserror::Error;

/// `MIN_CACHE_CONN_CNT`.
const MIN_CACHE_CONN_CNT: usize = 2;
/// `CacheConn::Init`: connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// `CacheConn::Init`: one reconnect try per 4 s.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(4);
/// A command that takes longer is a failure (the C++ has no limit).
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free connection.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a cache operation failed.
#[derive(Debug, Error)]
pub enum CacheError {
    /// No pool of that name is configured.
    #[error("no cache pool named {0}")]
    NoPool(String),
    /// Redis is unreachable (or was, less than 4 s ago).
    #[error("cache pool {pool}: not connected: {reason}")]
    Unavailable {
        /// Pool name.
        pool: String,
        /// Why.
        reason: String,
    },
    /// Every connection stayed busy.
    #[error("cache pool {0}: no free connection within {CHECKOUT_TIMEOUT:?}")]
    Exhausted(String),
    /// A command failed.
    #[error("cache pool {pool}: {source}")]
    Command {
        /// Pool name.
        pool: String,
        /// Redis's error.
        source: redis::RedisError,
    },
}

/// One slot of a pool: a connection, or the memory of the last try.
struct Slot {
    conn: Option<redis::Connection>,
    last_try: Option<Instant>,
}

struct PoolState {
    free: Vec<Slot>,
    total: usize,
}

/// One Redis instance's pool.
pub struct CachePool {
    name: String,
    client: redis::Client,
    max: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
    /// In use, waiting, errors: for `GET /metrics`.
    pub metrics: PoolMetrics,
}

impl CachePool {
    /// Opens the first connections; fails if Redis is unreachable, as the
    /// C++ refuses to start then.
    pub fn new(cfg: &CacheInstanceConfig) -> Result<CachePool, CacheError> {
        let url = format!("redis://{}:{}/{}", cfg.host, cfg.port, cfg.db);
        let client = redis::Client::open(url).map_err(|source| CacheError::Command {
            pool: cfg.name.clone(),
            source,
        })?;
        let pool = CachePool {
            name: cfg.name.clone(),
            client,
            max: cfg.max_conn_cnt,
            state: Mutex::new(PoolState {
                free: Vec::new(),
                total: 0,
            }),
            freed: Condvar::new(),
            metrics: PoolMetrics::default(),
        };
        let first = MIN_CACHE_CONN_CNT.min(cfg.max_conn_cnt);
        for _ in 0..first {
            let mut slot = Slot {
                conn: None,
                last_try: None,
            };
            pool.connect(&mut slot)?;
            let mut st = pool.state.lock();
            st.total += 1;
            st.free.push(slot);
        }
        log::info!(
            "cache pool {} ready: {}:{} db {}, {first} connections",
            cfg.name,
            cfg.host,
            cfg.port,
            cfg.db
        );
        Ok(pool)
    }

    /// `CacheConn::Init`: (re)connects `slot` unless it tried less than 4 s ago.
    fn connect(&self, slot: &mut Slot) -> Result<(), CacheError> {
        if slot.conn.is_some() {
            return Ok(());
        }
        if slot
            .last_try
            .is_some_and(|t| t.elapsed() < RECONNECT_INTERVAL)
        {
            return Err(CacheError::Unavailable {
                pool: self.name.clone(),
                reason: "last connect failed less than 4 s ago".into(),
            });
        }
        slot.last_try = Some(Instant::now());
        let conn = self
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .and_then(|c| {
                c.set_read_timeout(Some(IO_TIMEOUT))?;
                c.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(c)
            })
            .map_err(|e| CacheError::Unavailable {
                pool: self.name.clone(),
                reason: e.to_string(),
            })?;
        slot.conn = Some(conn);
        Ok(())
    }

    /// `GetCacheConn`: a connected guard, or an error when Redis is down.
    pub fn get(&self) -> Result<CacheConn<'_>, CacheError> {
        let deadline = Instant::now() + CHECKOUT_TIMEOUT;
        let mut st = self.state.lock();
        let mut slot = loop {
            if let Some(slot) = st.free.pop() {
                break slot;
            }
            if st.total < self.max {
                st.total += 1;
                break Slot {
                    conn: None,
                    last_try: None,
                };
            }
            self.metrics.waiting.inc();
            let timed_out = self.freed.wait_until(&mut st, deadline).timed_out();
            self.metrics.waiting.dec();
            if timed_out {
                self.metrics.errors.inc();
                return Err(CacheError::Exhausted(self.name.clone()));
            }
        };
        drop(st);
        if let Err(e) = self.connect(&mut slot) {
            self.metrics.errors.inc();
            self.release(slot);
            return Err(e);
        }
        self.metrics.in_use.inc();
        Ok(CacheConn {
            pool: self,
            slot: Some(slot),
        })
    }

    fn release(&self, slot: Slot) {
        self.state.lock().free.push(slot);
        self.freed.notify_one();
    }
}

/// A pooled Redis connection, returned to its pool when dropped.
pub struct CacheConn<'a> {
    pool: &'a CachePool,
    slot: Option<Slot>,
}

impl CacheConn<'_> {
    /// Runs `f` on the connection. A socket-level error closes the
    /// connection; the slot reconnects on a later use.
    pub fn run<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, CacheError> {
        let pool = self.pool.name.clone();
        let Some(conn) = self.slot.as_mut().and_then(|s| s.conn.as_mut()) else {
            return Err(CacheError::Unavailable {
                pool,
                reason: "connection lost".into(),
            });
        };
        f(conn).map_err(|source| {
            self.pool.metrics.errors.inc();
            if source.is_io_error()
                || source.is_connection_dropped()
                || source.is_connection_refusal()
                || source.is_timeout()
            {
                log::warn!("cache pool {pool}: connection lost: {source}");
                if let Some(slot) = self.slot.as_mut() {
                    slot.conn = None;
                }
            }
            CacheError::Command { pool, source }
        })
    }
}

impl Drop for CacheConn<'_> {
    fn drop(&mut self) {
        if let Some(mut slot) = self.slot.take() {
            self.pool.metrics.in_use.dec();
            // A worker unwinding from a panic may have left the connection
            // inside a MULTI or with replies unread: close it; the slot
            // reconnects on its next use, at once (Redis is not down).
            if std::thread::panicking() && slot.conn.take().is_some() {
                slot.last_try = None;
                log::warn!(
                    "cache pool {}: closing a panicked worker's connection",
                    self.pool.name
                );
            }
            self.pool.release(slot);
        }
    }
}

/// Every Redis pool by name (`CacheManager`).
pub struct CacheManager {
    pools: HashMap<String, CachePool>,
}

impl CacheManager {
    /// Opens every configured pool.
    pub fn new(instances: &[CacheInstanceConfig]) -> Result<CacheManager, CacheError> {
        let mut pools = HashMap::new();
        for cfg in instances {
            pools.insert(cfg.name.clone(), CachePool::new(cfg)?);
        }
        Ok(CacheManager { pools })
    }

    /// Every pool and its name.
    pub fn pools(&self) -> impl Iterator<Item = (&str, &PoolMetrics)> {
        self.pools.iter().map(|(n, p)| (n.as_str(), &p.metrics))
    }

    /// `GetCacheConn(pool_name)`.
    pub fn get(&self, pool: &str) -> Result<CacheConn<'_>, CacheError> {
        self.pools
            .get(pool)
            .ok_or_else(|| CacheError::NoPool(pool.to_string()))?
            .get()
    }
}

/// The cache pool names the C++ uses.
pub mod pools {
    /// Unread counters, sync times, message-id counters.
    pub const UNREAD: &str = "unread";
    /// Device tokens (`device_<user>`, `device_<token>`).
    pub const TOKEN: &str = "token";
    /// Group member sets (`group_member_<group>`).
    pub const GROUP_MEMBER: &str = "group_member";
    /// Group settings (`group_set_<group>`: push shields).
    pub const GROUP_SET: &str = "group_set";
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// A worker that panics inside a MULTI must not hand the open
    /// transaction to the next request: that request's commands would only
    /// be queued (`QUEUED`), never run.
    #[test]
    fn a_connection_dropped_by_a_panicking_worker_is_not_reused() {
        let redis = tt_rs::RedisServer::start();
        let pool = CachePool::new(&CacheInstanceConfig {
            name: "unread".into(),
            host: "127.0.0.1".into(),
            port: redis.port(),
            db: 0,
            max_conn_cnt: 1,
        })
        .expect("pool on the private redis");
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            let mut conn = pool.get().expect("a connection");
            conn.run(|c| redis::cmd("MULTI").query::<()>(c))
                .expect("MULTI");
            panic!("a handler fails on purpose");
        }));
        assert!(panicked.is_err());
        let mut conn = pool.get().expect("the pool still lends a connection");
        let reply: String = conn
            .run(|c| redis::cmd("SET").arg("k").arg("v").query(c))
            .expect("SET");
        assert_eq!(reply, "OK", "SET ran at once, outside any MULTI");
    }
}
