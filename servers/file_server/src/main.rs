//! `file_server`: the C++ `file_server/file_server.cpp` (start-up) and
//! `config_util.cpp` (its conf).
//!
//! Files go from one client to another through here: online (both
//! connected, the receiver pulls through us from the sender) or offline
//! (the sender uploads into `offline_file/`, the receiver downloads later).
//! msg_servers connect to one port to open tasks; clients connect to the
//! other to log in for a task and move its data.
//!
//! Module map against the C++ `server/src/file_server/`:
//! - `main.rs` is `file_server.cpp` and `config_util.cpp` (conf keys,
//!   listen, loop);
//! - [`file_msg_server_conn`] is `file_msg_server_conn.cpp` (the msg_server
//!   port);
//! - [`file_client_conn`] is `file_client_conn.cpp` (the client port);
//! - [`transfer_task`] is `transfer_task.cpp` (a task's rules, pure);
//! - [`transfer_task_manager`] is `transfer_task_manager.cpp` (the table);
//! - [`offline_file`] is `offline_file_util.h`, `OfflineFileHeader` and the
//!   file code of `transfer_task.cpp` (the on-disk format);
//! - [`state`] gathers the C++ singletons into the reactor's state;
//! - [`metrics`]: `GET /metrics` (not in the C++).

mod file_client_conn;
mod file_msg_server_conn;
mod metrics;
mod offline_file;
mod state;
mod transfer_task;
mod transfer_task_manager;

use base::config::{ConfigError, ConfigFileReader};
use base::tick::{monotonic_ms, unix_time};
use file_client_conn::FileClientConn;
use file_msg_server_conn::FileMsgServerConn;
use netlib::{ImConn, NetError, Reactor};
use offline_file::{OfflineError, OfflineStore, OFFLINE_DIR};
use state::FileState;
use std::time::Duration;
use thiserror::Error;
use transfer_task_manager::TransferTaskManager;
use tt_proto::IM::BaseDefine::IpAddr;

/// The conf file the C++ reads from its working directory.
const CONF_FILE: &str = "fileserver.conf";
/// Longest wait of one loop iteration (ms).
const LOOP_WAIT_MS: u64 = 1_000;
/// How often stalled tasks are looked for (the C++ task timer is 10 s; ours
/// runs every second so a short `TaskTimeout` is honoured closely).
const TASK_TIMER_MS: u64 = 1_000;
/// The longest pause between two retention sweeps.
const MAX_SWEEP_INTERVAL_SECS: u64 = 3_600;

/// Everything `fileserver.conf` says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileConfig {
    /// `ClientListenIP` (or `Address`): a `;` list, also handed to clients.
    client_listen_ip: String,
    /// `ClientListenPort` (or `ListenPort`).
    client_listen_port: u16,
    /// `MsgServerListenIP`.
    msg_server_listen_ip: String,
    /// `MsgServerListenPort`.
    msg_server_listen_port: u16,
    /// `TaskTimeout`, seconds.
    task_timeout_secs: u64,
    /// `OfflineFileRetention`, seconds; 0 keeps files forever (the C++).
    offline_retention_secs: u64,
}

impl FileConfig {
    /// Reads every key, failing on the first missing or invalid one. The
    /// stale keys of the reference `fileserver.conf` (`Address`,
    /// `ListenPort`) stand for `ClientListenIP` and `ClientListenPort` when
    /// those are absent.
    fn from_conf(c: &ConfigFileReader) -> Result<FileConfig, ConfigError> {
        let aliased = |key: &'static str, alias: &'static str| {
            if c.get(key).is_some() || c.get(alias).is_none() {
                key
            } else {
                alias
            }
        };
        let ip_key = aliased("ClientListenIP", "Address");
        let client_listen_ip = c.require(ip_key)?.to_string();
        if base::config::explode(&client_listen_ip, ';').is_empty() {
            return Err(invalid(ip_key, &client_listen_ip, "lists no address"));
        }
        let client_listen_port = c.require_parse(aliased("ClientListenPort", "ListenPort"))?;
        let msg_server_listen_ip = c.require("MsgServerListenIP")?.to_string();
        if base::config::explode(&msg_server_listen_ip, ';').is_empty() {
            return Err(invalid(
                "MsgServerListenIP",
                &msg_server_listen_ip,
                "lists no address",
            ));
        }
        let msg_server_listen_port = c.require_parse("MsgServerListenPort")?;
        let task_timeout_secs: u64 = c.require_parse("TaskTimeout")?;
        if task_timeout_secs == 0 {
            return Err(invalid("TaskTimeout", "0", "must be at least 1 second"));
        }
        Ok(FileConfig {
            client_listen_ip,
            client_listen_port,
            msg_server_listen_ip,
            msg_server_listen_port,
            task_timeout_secs,
            offline_retention_secs: c.get_parse("OfflineFileRetention")?.unwrap_or(0),
        })
    }

    /// `ConfigUtil::AddAddress` for each client address.
    fn client_addrs(&self) -> Vec<IpAddr> {
        base::config::explode(&self.client_listen_ip, ';')
            .into_iter()
            .map(|ip| IpAddr {
                ip,
                port: u32::from(self.client_listen_port),
            })
            .collect()
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, Error)]
enum ServeError {
    /// A conf key is missing or invalid (names the key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A port could not be opened.
    #[error("cannot listen: {0}")]
    Listen(#[from] NetError),
    /// `offline_file/` cannot be used.
    #[error(transparent)]
    Offline(#[from] OfflineError),
    /// The metrics port could not be opened.
    #[error(transparent)]
    Metrics(#[from] tt_http::metrics::MetricsError),
    /// The event loop failed.
    #[error("event loop failed: {0}")]
    Io(#[from] std::io::Error),
}

fn main() {
    base::cli::run_server("file_server", CONF_FILE, serve)
}

/// `main` after the command line.
fn serve(conf: ConfigFileReader) -> Result<(), ServeError> {
    let cfg = FileConfig::from_conf(&conf)?;
    let store = OfflineStore::open(OFFLINE_DIR)?;
    log::info!("offline files are kept in {}", store.root().display());
    let mut net = Reactor::<FileState>::new()?;
    for addr in net.listen(&cfg.client_listen_ip, cfg.client_listen_port, |_s, _id| {
        Box::new(FileClientConn::new()) as Box<dyn ImConn<FileState>>
    })? {
        log::info!("file_server listening for clients on {addr}");
    }
    for addr in net.listen(
        &cfg.msg_server_listen_ip,
        cfg.msg_server_listen_port,
        |_s, _id| Box::new(FileMsgServerConn) as Box<dyn ImConn<FileState>>,
    )? {
        log::info!("file_server listening for msg_servers on {addr}");
    }
    tt_http::metrics::listen_metrics(&mut net, &conf, metrics::render)?;
    net.register_timer(TASK_TIMER_MS, |net, state: &mut FileState| {
        state::expire_tasks(net, state, monotonic_ms());
    });
    if cfg.offline_retention_secs > 0 {
        start_retention_sweep(store.clone(), cfg.offline_retention_secs);
    } else {
        log::info!("offline files are kept until their record is deleted");
    }
    let mut state = FileState {
        client_addrs: cfg.client_addrs(),
        tasks: TransferTaskManager::new(cfg.task_timeout_secs.saturating_mul(1_000)),
        store,
        metrics: Default::default(),
    };
    log::info!("file_server entering the event loop");
    net.run(&mut state, LOOP_WAIT_MS)?;
    Ok(())
}

/// Deletes offline files older than `retention_secs`, on a thread of its
/// own so a large directory never holds the event loop.
fn start_retention_sweep(store: OfflineStore, retention_secs: u64) {
    let interval = (retention_secs / 4).clamp(1, MAX_SWEEP_INTERVAL_SECS);
    log::info!(
        "offline files are deleted {retention_secs} s after their upload (checked every {interval} s)"
    );
    std::thread::spawn(move || loop {
        let n = store.sweep(u64::from(unix_time()), retention_secs);
        if n > 0 {
            log::info!("retention: {n} offline files deleted");
        }
        std::thread::sleep(Duration::from_secs(interval));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Result<FileConfig, ConfigError> {
        FileConfig::from_conf(&ConfigFileReader::parse(text))
    }

    const FULL: &str = "ClientListenIP=127.0.0.1;10.0.0.1\nClientListenPort=8600\n\
                        MsgServerListenIP=127.0.0.1\nMsgServerListenPort=8601\nTaskTimeout=60\n";

    #[test]
    fn reads_the_keys_the_cpp_reads() {
        let c = conf(FULL).unwrap();
        assert_eq!(c.client_listen_port, 8600);
        assert_eq!(c.msg_server_listen_port, 8601);
        assert_eq!(c.task_timeout_secs, 60);
        assert_eq!(c.offline_retention_secs, 0, "forever by default");
        let addrs: Vec<(String, u32)> = c
            .client_addrs()
            .into_iter()
            .map(|a| (a.ip, a.port))
            .collect();
        assert_eq!(
            addrs,
            vec![("127.0.0.1".into(), 8600), ("10.0.0.1".into(), 8600)]
        );
        let c = conf(&format!("{FULL}OfflineFileRetention=86400\n")).unwrap();
        assert_eq!(c.offline_retention_secs, 86_400);
    }

    #[test]
    fn the_stale_reference_keys_are_aliases() {
        let c = conf(
            "Address=0.0.0.0\nListenPort=8600\nMsgServerListenIP=127.0.0.1\n\
             MsgServerListenPort=8601\nTaskTimeout=60\n",
        )
        .unwrap();
        assert_eq!(
            (c.client_listen_ip.as_str(), c.client_listen_port),
            ("0.0.0.0", 8600)
        );
        // The real key wins over its alias.
        let c = conf(&format!("Address=10.9.9.9\nListenPort=1\n{FULL}")).unwrap();
        assert_eq!(
            (c.client_listen_ip.as_str(), c.client_listen_port),
            ("127.0.0.1;10.0.0.1", 8600)
        );
    }

    #[test]
    fn a_missing_or_bad_key_is_named() {
        for key in [
            "ClientListenIP",
            "ClientListenPort",
            "MsgServerListenIP",
            "MsgServerListenPort",
            "TaskTimeout",
        ] {
            let text: String = FULL
                .lines()
                .filter(|l| !l.starts_with(&format!("{key}=")))
                .map(|l| format!("{l}\n"))
                .collect();
            let err = conf(&text).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let err = conf(&FULL.replace("TaskTimeout=60", "TaskTimeout=0")).unwrap_err();
        assert!(err.to_string().contains("TaskTimeout"), "{err}");
        let err = conf(&format!("{FULL}OfflineFileRetention=soon\n")).unwrap_err();
        assert!(err.to_string().contains("OfflineFileRetention"), "{err}");
        let err = conf(&FULL.replace("8601", "86x")).unwrap_err();
        assert!(err.to_string().contains("MsgServerListenPort"), "{err}");
    }
}
