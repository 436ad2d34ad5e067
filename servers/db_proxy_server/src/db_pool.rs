//! MySQL connection pools: the C++ `DBPool.cpp` (`CDBPool`, `CDBConn`,
//! `CDBManager`).
//!
//! As in the C++: one pool per `DBInstances` entry, 2 connections opened at
//! start, more opened on demand up to `maxconncnt`, callers wait when all
//! are busy, `utf8mb4`. Differences: a connection comes as a guard
//! ([`DbConn`]) that goes back to the pool when dropped, so no path forgets
//! to release it; one that failed at the socket level is dropped and
//! replaced instead of being handed out again; a connection idle for a
//! while is pinged before use (the C++ pings before every statement); and a
//! caller waits at most [`CHECKOUT_TIMEOUT`] instead of forever.
//!
//! And for a MariaDB restart (not in the C++, which fails every request
//! until a connection works again): a connection that fails at the socket
//! level marks every idle one of its pool as suspect, so each is pinged
//! before its next use and replaced if dead (a restart fails only the
//! statements running at that moment); and opening a connection that is
//! refused is tried again on the [`crate::store_wait`] schedule for at
//! most [`STORE_WAIT`] before the request
//! fails as in the C++.

use crate::config::DbInstanceConfig;
use crate::metrics::PoolMetrics;
use crate::store_wait::{with_retries, STORE_WAIT};
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// `MIN_DB_CONN_CNT`: connections opened at start.
const MIN_DB_CONN_CNT: usize = 2;
/// How long a caller waits for a free connection before giving up.
pub const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection (the driver's default is 32).
const STMT_CACHE_SIZE: usize = 256;
/// A connection idle longer than this is pinged before it is handed out
/// (a MariaDB restarted meanwhile left it dead; at load no connection
/// sits this long, so no ping is paid).
const PING_AFTER_IDLE: Duration = Duration::from_secs(2);

/// Where the MySQL C client puts its server's socket on Debian (the
/// `MYSQL_UNIX_ADDR` libmariadb is built with).
const DEFAULT_UNIX_SOCKET: &str = "/run/mysqld/mysqld.sock";

/// The unix socket a pool reaches MySQL through, if any: a `host` of
/// `localhost` means the local socket, as it does for the C client the
/// C++ links (`mysql_real_connect`), which then ignores the port;
/// `MYSQL_UNIX_PORT` names another socket, as for that client. Any other
/// host is reached over TCP (the driver may still switch to the server's
/// socket when the address is loopback). This lets a MariaDB with
/// `skip-networking`, or one outside db_proxy's network namespace, serve
/// the same `.conf` the C++ ran with.
fn unix_socket_for(host: &str, env_socket: Option<String>) -> Option<String> {
    if host != "localhost" {
        return None;
    }
    Some(
        env_socket
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_UNIX_SOCKET.to_string()),
    )
}

/// Why a database operation failed.
#[derive(Debug, Error)]
pub enum DbError {
    /// No pool of that name is configured.
    #[error("no db pool named {0}")]
    NoPool(String),
    /// A connection could not be opened.
    #[error("cannot connect to db pool {pool}: {source}")]
    Connect {
        /// Pool name.
        pool: String,
        /// The driver's error.
        source: mysql::Error,
    },
    /// Every connection stayed busy for [`CHECKOUT_TIMEOUT`].
    #[error("db pool {0}: no free connection within {CHECKOUT_TIMEOUT:?}")]
    Exhausted(String),
    /// A statement failed.
    #[error("db pool {pool}: {source}")]
    Query {
        /// Pool name.
        pool: String,
        /// The driver's error.
        source: mysql::Error,
    },
}

struct Idle {
    conn: Conn,
    since: Instant,
    /// The pool's generation when it was last known good.
    generation: u64,
}

struct PoolState {
    free: Vec<Idle>,
    /// Connections open, free or lent out.
    total: usize,
}

/// One MySQL instance's pool (`CDBPool`).
pub struct DbPool {
    name: String,
    opts: OptsBuilder,
    max: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
    /// In use, waiting, errors: for `GET /metrics`.
    pub metrics: PoolMetrics,
    /// Bumped when a connection breaks at the socket level: idle
    /// connections of an older generation are pinged before use. Shared
    /// by the pools on one server (`teamtalk_master` and `teamtalk_slave`
    /// are often the same MariaDB): one restart makes all of them suspect.
    generation: Arc<AtomicU64>,
}

impl DbPool {
    /// Opens the first connections (`CDBPool::Init`); fails if MySQL is not
    /// reachable, as the C++ refuses to start then. (A pool alone, for the
    /// tests; [`DbManager::new`] opens them sharing a generation.)
    #[cfg(test)]
    pub fn new(cfg: &DbInstanceConfig) -> Result<DbPool, DbError> {
        DbPool::with_generation(cfg, Arc::default())
    }

    /// `DbPool::new` sharing `generation` with the other pools on the
    /// same server.
    fn with_generation(
        cfg: &DbInstanceConfig,
        generation: Arc<AtomicU64>,
    ) -> Result<DbPool, DbError> {
        let socket = unix_socket_for(&cfg.host, std::env::var("MYSQL_UNIX_PORT").ok());
        let opts = OptsBuilder::new()
            .ip_or_hostname(Some(cfg.host.clone()))
            .tcp_port(cfg.port)
            .socket(socket)
            .user(Some(cfg.username.clone()))
            .pass(Some(cfg.password.clone()))
            .db_name(Some(cfg.dbname.clone()))
            .tcp_connect_timeout(Some(Duration::from_secs(5)))
            // Room for every prepared statement a connection reuses: the
            // handlers' and the batch inserts' (a few sizes per table).
            .stmt_cache_size(Some(STMT_CACHE_SIZE))
            .init(vec!["SET NAMES utf8mb4"]);
        let pool = DbPool {
            name: cfg.name.clone(),
            opts,
            max: cfg.max_conn_cnt,
            state: Mutex::new(PoolState {
                free: Vec::new(),
                total: 0,
            }),
            freed: Condvar::new(),
            metrics: PoolMetrics::default(),
            generation,
        };
        let first = MIN_DB_CONN_CNT.min(cfg.max_conn_cnt);
        for _ in 0..first {
            let conn = pool.open()?;
            let mut st = pool.state.lock();
            st.total += 1;
            st.free.push(Idle {
                conn,
                since: Instant::now(),
                generation: pool.generation.load(Ordering::SeqCst),
            });
        }
        log::info!("db pool {:?} ready with {first} connections", cfg);
        Ok(pool)
    }

    fn open(&self) -> Result<Conn, DbError> {
        Conn::new(self.opts.clone()).map_err(|source| DbError::Connect {
            pool: self.name.clone(),
            source,
        })
    }

    /// [`open`](Self::open), tried again while MySQL refuses, for at most
    /// [`STORE_WAIT`] (a restart of a second or two).
    fn open_waiting(&self) -> Result<Conn, DbError> {
        with_retries(STORE_WAIT, || {
            let r = self.open();
            if let Err(e) = &r {
                log::debug!("{e}; trying again");
            }
            r
        })
    }

    /// `GetDBConn`: a free connection, a new one if below the maximum, or
    /// the next one released (waiting at most [`CHECKOUT_TIMEOUT`]).
    pub fn get(&self) -> Result<DbConn<'_>, DbError> {
        let deadline = Instant::now() + CHECKOUT_TIMEOUT;
        let mut st = self.state.lock();
        loop {
            if let Some(idle) = st.free.pop() {
                drop(st);
                return self.lend(idle);
            }
            if st.total < self.max {
                st.total += 1;
                drop(st);
                return match self.open_waiting() {
                    Ok(conn) => {
                        log::info!("db pool {}: new connection", self.name);
                        Ok(self.guard(conn))
                    }
                    Err(e) => {
                        self.metrics.errors.inc();
                        self.forget_one();
                        Err(e)
                    }
                };
            }
            self.metrics.waiting.inc();
            let timed_out = self.freed.wait_until(&mut st, deadline).timed_out();
            self.metrics.waiting.dec();
            if timed_out {
                self.metrics.errors.inc();
                return Err(DbError::Exhausted(self.name.clone()));
            }
        }
    }

    /// Hands out an idle connection, pinging it first if it sat long enough
    /// for the server to have dropped it; a dead one is replaced.
    fn lend(&self, mut idle: Idle) -> Result<DbConn<'_>, DbError> {
        let suspect = idle.generation != self.generation.load(Ordering::SeqCst);
        if (suspect || idle.since.elapsed() > PING_AFTER_IDLE) && idle.conn.ping().is_err() {
            log::warn!("db pool {}: idle connection lost, reconnecting", self.name);
            match self.open_waiting() {
                Ok(conn) => idle.conn = conn,
                Err(e) => {
                    self.metrics.errors.inc();
                    self.forget_one();
                    return Err(e);
                }
            }
        }
        Ok(self.guard(idle.conn))
    }

    /// A connection broke at the socket level: the idle ones went to the
    /// same server and are suspect.
    fn suspect_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn guard(&self, conn: Conn) -> DbConn<'_> {
        self.metrics.in_use.inc();
        DbConn {
            pool: self,
            conn: Some(conn),
            broken: false,
        }
    }

    /// A lent or reserved connection is gone for good.
    fn forget_one(&self) {
        self.state.lock().total -= 1;
        self.freed.notify_one();
    }

    /// `RelDBConn`, done by [`DbConn`]'s drop.
    fn release(&self, conn: Conn) {
        let generation = self.generation.load(Ordering::SeqCst);
        self.state.lock().free.push(Idle {
            conn,
            since: Instant::now(),
            generation,
        });
        self.freed.notify_one();
    }
}

/// A pooled connection, returned to its pool when dropped.
pub struct DbConn<'a> {
    pool: &'a DbPool,
    conn: Option<Conn>,
    broken: bool,
}

impl DbConn<'_> {
    /// Closes the connection instead of reusing it: for a state a failed
    /// statement may have left on it (named locks still held, a
    /// transaction still open).
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Runs `f` on the connection. An error at the socket or protocol level
    /// marks the connection broken: it is closed instead of being reused.
    pub fn run<T>(&mut self, f: impl FnOnce(&mut Conn) -> mysql::Result<T>) -> Result<T, DbError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(DbError::Exhausted(self.pool.name.clone()));
        };
        f(conn).map_err(|source| {
            self.pool.metrics.errors.inc();
            if matches!(
                source,
                mysql::Error::IoError(_)
                    | mysql::Error::DriverError(_)
                    | mysql::Error::CodecError(_)
            ) {
                self.broken = true;
            }
            DbError::Query {
                pool: self.pool.name.clone(),
                source,
            }
        })
    }

    /// Runs `f` inside one transaction: committed when `f` succeeds, rolled
    /// back when it fails (the C++ autocommits each statement; one commit per
    /// request writes several rows with one log flush and never half of
    /// them). A failure that leaves the connection unusable marks it broken.
    pub fn transaction<T, E>(
        &mut self,
        f: impl FnOnce(&mut mysql::Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let pool = self.pool.name.clone();
        let Some(conn) = self.conn.as_mut() else {
            return Err(DbError::Exhausted(pool).into());
        };
        let broken = |e: &mysql::Error| {
            matches!(
                e,
                mysql::Error::IoError(_)
                    | mysql::Error::DriverError(_)
                    | mysql::Error::CodecError(_)
            )
        };
        let mut tx = match conn.start_transaction(mysql::TxOpts::default()) {
            Ok(tx) => tx,
            Err(source) => {
                self.broken = broken(&source);
                return Err(DbError::Query { pool, source }.into());
            }
        };
        match f(&mut tx) {
            Ok(value) => match tx.commit() {
                Ok(()) => Ok(value),
                Err(source) => {
                    self.broken = broken(&source);
                    Err(DbError::Query { pool, source }.into())
                }
            },
            Err(e) => {
                // Dropping the transaction rolls it back.
                drop(tx);
                if conn.ping().is_err() {
                    self.broken = true;
                }
                Err(e)
            }
        }
    }

    /// True once a statement failed at the socket or protocol level: the
    /// connection is closed when given back, and should not be used again.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Rows affected by the last statement (`mysql_affected_rows`).
    pub fn affected_rows(&self) -> u64 {
        self.conn.as_ref().map_or(0, |c| c.affected_rows())
    }

    /// Id generated by the last insert (`GetInsertId`).
    pub fn last_insert_id(&self) -> u64 {
        self.conn.as_ref().map_or(0, |c| c.last_insert_id())
    }
}

impl Drop for DbConn<'_> {
    fn drop(&mut self) {
        // A connection given back while its worker unwinds from a panic may
        // still hold a named lock (`GET_LOCK`) or session state: closing it
        // makes MariaDB release them; reusing it would make every later
        // request for that lock time out.
        let panicking = std::thread::panicking();
        self.pool.metrics.in_use.dec();
        match self.conn.take() {
            Some(conn) if !self.broken && !panicking => self.pool.release(conn),
            _ => {
                if self.broken {
                    self.pool.suspect_all();
                }
                log::warn!(
                    "db pool {}: closing a {} connection",
                    self.pool.name,
                    if panicking {
                        "panicked worker's"
                    } else {
                        "broken"
                    }
                );
                self.pool.forget_one();
            }
        }
    }
}

/// Every MySQL pool by name (`CDBManager`).
pub struct DbManager {
    pools: HashMap<String, DbPool>,
}

/// The pool the C++ reads from.
pub const SLAVE: &str = "teamtalk_slave";
/// The pool the C++ writes to.
pub const MASTER: &str = "teamtalk_master";

impl DbManager {
    /// Opens every configured pool.
    pub fn new(instances: &[DbInstanceConfig]) -> Result<DbManager, DbError> {
        let mut pools = HashMap::new();
        let mut generations: HashMap<(String, u16), Arc<AtomicU64>> = HashMap::new();
        for cfg in instances {
            let generation = generations
                .entry((cfg.host.clone(), cfg.port))
                .or_default()
                .clone();
            pools.insert(cfg.name.clone(), DbPool::with_generation(cfg, generation)?);
        }
        Ok(DbManager { pools })
    }

    /// Every pool and its name.
    pub fn pools(&self) -> impl Iterator<Item = (&str, &PoolMetrics)> {
        self.pools.iter().map(|(n, p)| (n.as_str(), &p.metrics))
    }

    /// `GetDBConn(pool_name)`.
    pub fn get(&self, pool: &str) -> Result<DbConn<'_>, DbError> {
        self.pools
            .get(pool)
            .ok_or_else(|| DbError::NoPool(pool.to_string()))?
            .get()
    }

    /// `ExecuteUpdate` on the master: runs one write statement with
    /// `params` bound; true when it changed a row (the C++ answers "no
    /// effect" as a failure).
    pub fn execute_update(
        &self,
        sql: &str,
        params: impl Into<mysql::Params>,
    ) -> Result<bool, DbError> {
        let mut conn = self.get(MASTER)?;
        conn.run(|c| c.exec_drop(sql, params))?;
        Ok(conn.affected_rows() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql::prelude::Queryable;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    fn pool_on(db: &tt_rs::TestDb, max_conn_cnt: usize) -> DbPool {
        let (host, port, username, password) = db.server();
        DbPool::new(&DbInstanceConfig {
            name: "teamtalk_master".into(),
            host,
            port,
            dbname: db.name().into(),
            username,
            password,
            max_conn_cnt,
        })
        .expect("pool on the scratch database")
    }

    /// A worker that panics while holding a named lock must not hand the
    /// lock on to the next request through the pool: its connection is
    /// closed, MariaDB frees the lock, and the pool opens a new one.
    #[test]
    fn a_connection_dropped_by_a_panicking_worker_is_closed_and_its_lock_freed() {
        let db = tt_rs::TestDb::empty();
        let pool = pool_on(&db, 1);
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            let mut conn = pool.get().expect("a connection");
            let got: Option<i64> = conn
                .run(|c| c.query_first("SELECT GET_LOCK('tt_panic_test', 5)"))
                .expect("GET_LOCK");
            assert_eq!(got, Some(1));
            panic!("a handler fails on purpose");
        }));
        assert!(panicked.is_err());
        // Another session gets the lock (GET_LOCK waits while MariaDB
        // notices the closed connection): the pool kept no connection that
        // holds it.
        let got: Option<i64> = db
            .conn()
            .query_first("SELECT GET_LOCK('tt_panic_test', 5)")
            .expect("GET_LOCK from another session");
        assert_eq!(
            got,
            Some(1),
            "the lock was freed with the closed connection"
        );
        // And the pool's only slot was given back: it lends a new connection.
        let mut conn = pool.get().expect("the pool still lends a connection");
        let one: Option<i64> = conn.run(|c| c.query_first("SELECT 1")).expect("SELECT 1");
        assert_eq!(one, Some(1));
    }

    #[test]
    fn localhost_means_the_local_socket_as_for_the_c_client() {
        assert_eq!(
            unix_socket_for("localhost", None).as_deref(),
            Some(DEFAULT_UNIX_SOCKET)
        );
        assert_eq!(
            unix_socket_for("localhost", Some("/tmp/other.sock".into())).as_deref(),
            Some("/tmp/other.sock")
        );
        assert_eq!(
            unix_socket_for("localhost", Some(String::new())).as_deref(),
            Some(DEFAULT_UNIX_SOCKET)
        );
        assert_eq!(unix_socket_for("127.0.0.1", None), None);
        assert_eq!(unix_socket_for("db.example", Some("/tmp/x".into())), None);
    }

    /// `<name>_host=localhost` reaches the server through its socket, as
    /// the C++ does: with a port nothing listens on, the pool still opens
    /// and answers, and the server sees a socket client.
    #[test]
    fn a_pool_on_localhost_uses_the_socket_and_ignores_the_port() {
        let db = tt_rs::TestDb::empty();
        let (_, _, username, password) = db.server();
        let mut conn0 = db.conn();
        let socket: Option<String> = conn0.query_first("SELECT @@socket").expect("@@socket");
        let socket = socket.unwrap_or_default();
        // (No set_var here: the other tests read the environment meanwhile.)
        let ours = unix_socket_for("localhost", std::env::var("MYSQL_UNIX_PORT").ok());
        if ours.as_deref() != Some(socket.as_str()) || !std::path::Path::new(&socket).exists() {
            eprintln!(
                "skipped: the server's socket {socket:?} is not the one a pool on \
                 localhost uses here ({ours:?}; set MYSQL_UNIX_PORT)"
            );
            return;
        }
        let unused = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = unused.local_addr().expect("addr").port();
        drop(unused);
        let pool = DbPool::new(&DbInstanceConfig {
            name: "teamtalk_master".into(),
            host: "localhost".into(),
            port,
            dbname: db.name().into(),
            username,
            password,
            max_conn_cnt: 1,
        })
        .expect("a pool through the socket");
        let mut conn = pool.get().expect("a connection");
        let user: Option<String> = conn
            .run(|c| c.query_first("SELECT CURRENT_USER()"))
            .expect("CURRENT_USER()");
        assert!(
            user.as_deref().is_some_and(|u| u.ends_with("@localhost")),
            "a socket client is user@localhost: {user:?}"
        );
    }
}
