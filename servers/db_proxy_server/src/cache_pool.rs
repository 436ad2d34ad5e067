//! Redis connection pools: the C++ `CachePool.cpp` (`CachePool`,
//! `CacheConn`, `CacheManager`).
//!
//! As in the C++: one pool per `CacheInstances` entry, `SELECT <db>` on
//! connect, a 200 ms connect timeout, 2 connections at start, more on
//! demand up to `maxconncnt`. Connections come as guards ([`CacheConn`])
//! that return to the pool on drop.
//!
//! Differences from the C++ (`CacheConn::Init` tries a lost connection at
//! most once per 4 s, failing every request meanwhile): a request whose
//! connection is lost connects again at once and, while Redis does not
//! answer, waits for it on the [`crate::store_wait`] schedule for at most
//! [`STORE_WAIT`], then fails as before.
//! And a connection that fails at the socket level marks every idle
//! connection of its pool as suspect (they went to the same Redis): each
//! is pinged before its next use and replaced if dead, so a Redis restart
//! fails only the commands running at that moment, not one request per
//! pooled connection.

use crate::config::CacheInstanceConfig;
use crate::metrics::PoolMetrics;
use crate::store_wait::{with_retries, STORE_WAIT};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;

/// `MIN_CACHE_CONN_CNT`.
const MIN_CACHE_CONN_CNT: usize = 2;
/// `CacheConn::Init`: connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
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
    /// Redis did not answer within the wait.
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

/// One slot of a pool: a connection (or none yet), and the pool's
/// generation when it was last known good.
struct Slot {
    conn: Option<redis::Connection>,
    generation: u64,
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
    /// Bumped when a connection fails at the socket level: idle
    /// connections of an older generation are pinged before use.
    generation: AtomicU64,
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
            generation: AtomicU64::new(0),
        };
        let first = MIN_CACHE_CONN_CNT.min(cfg.max_conn_cnt);
        for _ in 0..first {
            let mut slot = Slot {
                conn: None,
                generation: 0,
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

    /// `CacheConn::Init`: connects `slot` if it has no connection.
    fn connect(&self, slot: &mut Slot) -> Result<(), CacheError> {
        if slot.conn.is_some() {
            return Ok(());
        }
        let generation = self.generation.load(Ordering::SeqCst);
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
        slot.generation = generation;
        Ok(())
    }

    /// A suspect connection (older than the last socket failure seen in
    /// the pool) is pinged; a dead one is dropped, to be connected again.
    fn check(&self, slot: &mut Slot) {
        let generation = self.generation.load(Ordering::SeqCst);
        if slot.generation == generation {
            return;
        }
        if let Some(conn) = slot.conn.as_mut() {
            if redis::cmd("PING").query::<String>(conn).is_err() {
                log::info!(
                    "cache pool {}: idle connection lost, reconnecting",
                    self.name
                );
                slot.conn = None;
                return;
            }
        }
        slot.generation = generation;
    }

    /// Marks every other connection suspect after a socket failure.
    fn suspect_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
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
                    generation: 0,
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
        self.check(&mut slot);
        let connected = with_retries(STORE_WAIT, || {
            let r = self.connect(&mut slot);
            if let Err(e) = &r {
                log::debug!("{e}; trying again");
            }
            r
        });
        if let Err(e) = connected {
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
                self.pool.suspect_all();
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

    /// A Redis restart of half a second: the pooled connections are dead,
    /// the first command finds out, and the next request waits for Redis
    /// instead of failing (the C++ fails every request for up to 4 s).
    #[test]
    fn a_request_waits_for_a_restarted_redis_and_dead_connections_are_replaced() {
        let mut redis = tt_rs::RedisServer::start();
        let pool = CachePool::new(&CacheInstanceConfig {
            name: "unread".into(),
            host: "127.0.0.1".into(),
            port: redis.port(),
            db: 0,
            max_conn_cnt: 2,
        })
        .expect("pool on the private redis");
        redis.stop();
        let mut conn = pool.get().expect("a pooled (dead) connection");
        let err = conn
            .run(|c| redis::cmd("SET").arg("k").arg("1").query::<String>(c))
            .expect_err("redis is down");
        assert!(matches!(err, CacheError::Command { .. }), "{err}");
        drop(conn);
        let restarter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            redis.restart();
            redis
        });
        // Both slots: the dead one is pinged and replaced, the other
        // waits for the connect; both run their command.
        for _ in 0..2 {
            let mut conn = pool.get().expect("waited for redis");
            let reply: String = conn
                .run(|c| redis::cmd("SET").arg("k").arg("2").query(c))
                .expect("SET after the restart");
            assert_eq!(reply, "OK");
        }
        let redis = restarter.join().expect("restarter");
        // Redis down for longer than the wait: the request fails, bounded.
        let mut redis = redis;
        redis.stop();
        let mut failed = false;
        for _ in 0..3 {
            match pool.get() {
                Err(CacheError::Unavailable { .. }) => {
                    failed = true;
                    break;
                }
                Ok(mut conn) => {
                    let _ = conn.run(|c| redis::cmd("PING").query::<String>(c));
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(failed, "fails once the wait is over, never hangs");
    }
}
