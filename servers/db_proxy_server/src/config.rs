//! `dbproxyserver.conf`: the keys `db_proxy_server.cpp`, `DBPool.cpp`
//! (`CDBManager::Init`) and `CachePool.cpp` (`CacheManager::Init`) read.
//!
//! Every C++ key is required, as in the C++ (which refuses to start
//! without them); an absent or unusable key is an error naming it. Three
//! optional keys are ours, not in the C++ (`WorkerQueueSize`,
//! `LinkQueueSize`, `LinkHoldSize`: the bounds of [`crate::work_queue`]).

use crate::work_queue::Limits;
use base::config::{explode, ConfigError, ConfigFileReader};

/// One MySQL instance (`DBInstances=teamtalk_master,teamtalk_slave`).
#[derive(Clone)]
pub struct DbInstanceConfig {
    /// Pool name, the prefix of its keys (`teamtalk_master`).
    pub name: String,
    /// `<name>_host`.
    pub host: String,
    /// `<name>_port`.
    pub port: u16,
    /// `<name>_dbname`.
    pub dbname: String,
    /// `<name>_username`.
    pub username: String,
    /// `<name>_password`: never logged.
    pub password: String,
    /// `<name>_maxconncnt`.
    pub max_conn_cnt: usize,
}

impl std::fmt::Debug for DbInstanceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        write!(
            f,
            "{} ({}@{}:{}/{}, max {})",
            self.name, self.username, self.host, self.port, self.dbname, self.max_conn_cnt
        )
    }
}

/// One Redis instance (`CacheInstances=unread,group_set,token,sync,group_member`).
#[derive(Debug, Clone)]
pub struct CacheInstanceConfig {
    /// Pool name (`unread`...).
    pub name: String,
    /// `<name>_host`.
    pub host: String,
    /// `<name>_port`.
    pub port: u16,
    /// `<name>_db`: the database `SELECT`ed on connect.
    pub db: i64,
    /// `<name>_maxconncnt`.
    pub max_conn_cnt: usize,
}

/// Everything db_proxy_server reads from its conf.
#[derive(Clone)]
pub struct DbProxyConfig {
    /// `ListenIP`, a `;` list.
    pub listen_ip: String,
    /// `ListenPort`.
    pub listen_port: u16,
    /// `ThreadNum`: worker threads.
    pub thread_num: usize,
    /// `MsfsSite`: base URL of audio files.
    pub msfs_site: String,
    /// `aesKey`: encrypts the "\[语音\]" text shown as the latest message of
    /// a session whose last message is audio. Never logged.
    pub aes_key: String,
    /// `DBInstances` and their keys.
    pub db_instances: Vec<DbInstanceConfig>,
    /// `CacheInstances` and their keys.
    pub cache_instances: Vec<CacheInstanceConfig>,
    /// Not in the C++: `WorkerQueueSize`, `LinkQueueSize`, `LinkHoldSize`
    /// (the C++ queues without bound).
    pub work_limits: Limits,
}

impl std::fmt::Debug for DbProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The AES key stays out of logs.
        f.debug_struct("DbProxyConfig")
            .field("listen_ip", &self.listen_ip)
            .field("listen_port", &self.listen_port)
            .field("thread_num", &self.thread_num)
            .field("msfs_site", &self.msfs_site)
            .field("db_instances", &self.db_instances)
            .field("cache_instances", &self.cache_instances)
            .field("work_limits", &self.work_limits)
            .finish_non_exhaustive()
    }
}

impl DbProxyConfig {
    /// Reads and checks every key.
    pub fn from_reader(c: &ConfigFileReader) -> Result<DbProxyConfig, ConfigError> {
        let aes_key = c.require("aesKey")?;
        if aes_key.len() != 32 {
            return Err(ConfigError::Invalid {
                key: "aesKey".into(),
                value: format!("<{} bytes>", aes_key.len()),
                reason: "must be exactly 32 characters".into(),
            });
        }
        let thread_num: usize = c.require_parse("ThreadNum")?;
        if thread_num == 0 {
            return Err(invalid("ThreadNum", "0", "must be at least 1"));
        }
        let mut db_instances = Vec::new();
        for name in explode(c.require("DBInstances")?, ',') {
            let key = |k: &str| format!("{name}_{k}");
            db_instances.push(DbInstanceConfig {
                host: c.require(&key("host"))?.to_string(),
                port: c.require_parse(&key("port"))?,
                dbname: c.require(&key("dbname"))?.to_string(),
                username: c.require(&key("username"))?.to_string(),
                password: c.require(&key("password"))?.to_string(),
                max_conn_cnt: positive(c, &key("maxconncnt"))?,
                name,
            });
        }
        let mut cache_instances = Vec::new();
        for name in explode(c.require("CacheInstances")?, ',') {
            let key = |k: &str| format!("{name}_{k}");
            cache_instances.push(CacheInstanceConfig {
                host: c.require(&key("host"))?.to_string(),
                port: c.require_parse(&key("port"))?,
                db: c.require_parse(&key("db"))?,
                max_conn_cnt: positive(c, &key("maxconncnt"))?,
                name,
            });
        }
        Ok(DbProxyConfig {
            listen_ip: c.require("ListenIP")?.to_string(),
            listen_port: c.require_parse("ListenPort")?,
            thread_num,
            msfs_site: c.require("MsfsSite")?.to_string(),
            aes_key: aes_key.to_string(),
            db_instances,
            cache_instances,
            work_limits: Limits {
                queue_size: optional_positive(c, "WorkerQueueSize", Limits::DEFAULT_QUEUE_SIZE)?,
                link_queue_size: optional_positive(
                    c,
                    "LinkQueueSize",
                    Limits::DEFAULT_LINK_QUEUE_SIZE,
                )?,
                link_hold_size: optional_positive(
                    c,
                    "LinkHoldSize",
                    Limits::DEFAULT_LINK_HOLD_SIZE,
                )?,
                link_hold_bytes: Limits::LINK_HOLD_BYTES,
            },
        })
    }
}

/// An optional count of ours (not in the C++): `default` when absent, at
/// least 1 when present.
fn optional_positive(
    c: &ConfigFileReader,
    key: &str,
    default: usize,
) -> Result<usize, ConfigError> {
    match c.get_parse::<usize>(key)? {
        None => Ok(default),
        Some(0) => Err(invalid(key, "0", "must be at least 1")),
        Some(n) => Ok(n),
    }
}

fn positive(c: &ConfigFileReader, key: &str) -> Result<usize, ConfigError> {
    let n: usize = c.require_parse(key)?;
    if n == 0 {
        return Err(invalid(key, "0", "must be at least 1"));
    }
    Ok(n)
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}
