//! `msfs`: the image store, the C++ `msfs/main.cpp`.
//!
//! Clients upload the pictures they send in chats (db_proxy the voice
//! clips) with a multipart `POST`, get back a URL on this server, and
//! download them with `GET`; login_server hands the URL of msfs out.
//!
//! Module map against the C++ `server/src/msfs/`:
//! - `main.rs` is `main.cpp`: conf, `BaseDir`, the two worker pools, the
//!   listener, the loop, and `FileCnt` written back on SIGINT/SIGTERM/SIGQUIT;
//! - [`config`] is the part of `ConfigFileReader` msfs uses (its seven keys,
//!   `SetConfigValue`);
//! - [`state`] is the C++ globals, as one [`state::MsfsState`];
//! - [`http_conn`] is `HttpConn.cpp`'s `CHttpConn` (what a request asks for);
//! - [`multipart`] is the parsing half of `CHttpTask::OnUpload`;
//! - [`http_task`] is `CHttpTask` on the pools, and the answer's way back;
//! - [`file_manager`] is `FileManager.cpp` and `FileLin.cpp` (the on-disk
//!   layout, storing, opening).
//!
//! Differences from the C++ at start-up: the 65,536 storage folders are
//! made when first needed (the C++ makes them all before it listens), and
//! a missing or invalid key exits 1 naming it.

mod config;
mod file_manager;
mod http_conn;
mod http_task;
mod multipart;
mod state;

use base::cli::Command;
use base::config::{ConfigError, ConfigFileReader};
use base::thread_pool::ThreadPool;
use config::{MsfsConfig, FILE_CNT};
use file_manager::FileError;
use http_conn::MsfsHttp;
use netlib::{NetError, Reactor};
use state::{MsfsState, PoolLoad};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// The conf file the C++ reads from its working directory.
const CONF_FILE: &str = "msfs.conf";
/// Longest wait of one loop iteration when no timer is due (ms).
const LOOP_WAIT_MS: u64 = 1_000;

/// Why the server stopped.
#[derive(Debug, Error)]
enum ServeError {
    /// A conf key is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `BaseDir` cannot be made or used.
    #[error("BaseDir: {0}")]
    BaseDir(#[from] FileError),
    /// The listener could not be set up.
    #[error("cannot listen: {0}")]
    Listen(#[from] NetError),
    /// The metrics port could not be opened.
    #[error(transparent)]
    Metrics(#[from] tt_http::metrics::MetricsError),
    /// The pools or the event loop failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn main() {
    base::cli::run_server("msfs", CONF_FILE, serve)
}

/// The conf path `run_server` read (rewritten on the way out).
fn conf_path() -> PathBuf {
    match base::cli::parse_args(std::env::args().skip(1), CONF_FILE) {
        Ok(Command::Run(path)) => path,
        _ => PathBuf::from(CONF_FILE),
    }
}

/// `main` after the conf is read.
fn serve(conf: ConfigFileReader) -> Result<(), ServeError> {
    let config = MsfsConfig::from_conf(&conf)?;
    let base_dir = file_manager::init_base_dir(&config.base_dir)?;
    log::info!(
        "msfs: BaseDir {}, FileCnt {}, FilesPerDir {}, {} download and {} upload workers",
        base_dir.display(),
        config.file_cnt,
        config.files_per_dir,
        config.get_threads,
        config.post_threads
    );
    let mut net = Reactor::<MsfsState>::new()?;
    // Signals before the port opens: one that comes at once is ours.
    net.handle_signals(
        &[libc::SIGINT, libc::SIGTERM, libc::SIGQUIT],
        |net, state: &mut MsfsState, sig| {
            let count = state.file_cnt.to_string();
            match config::rewrite_value(&state.conf_path, FILE_CNT, &count) {
                Ok(()) => log::info!(
                    "signal {sig}: {FILE_CNT}={count} written to {}; stopping",
                    state.conf_path.display()
                ),
                Err(e) => log::error!(
                    "signal {sig}: cannot write {FILE_CNT}={count} to {}: {e}; stopping",
                    state.conf_path.display()
                ),
            }
            net.stop();
        },
    )?;
    let bound = net.listen(&config.listen_ip, config.listen_port, |_state, _id| {
        Box::new(MsfsHttp::conn())
    })?;
    log::info!("msfs: listening for HTTP on {bound:?}");
    tt_http::metrics::listen_metrics(&mut net, &conf, |net, _state, out| net.write_metrics(out))?;
    let mut state = MsfsState {
        base_dir: Arc::new(base_dir),
        file_cnt: config.file_cnt,
        files_per_dir: config.files_per_dir,
        conf_path: conf_path(),
        get_pool: ThreadPool::new("msfs-get", config.get_threads)?,
        post_pool: ThreadPool::new("msfs-post", config.post_threads)?,
        remote: net.remote(),
        load: PoolLoad::default(),
        streams: HashMap::new(),
    };
    log::info!("msfs: entering the event loop");
    net.run(&mut state, LOOP_WAIT_MS)?;
    // Dropping the state finishes the stores already queued (their
    // numbers are counted in the FileCnt just written).
    drop(state);
    log::info!("msfs: stopped");
    Ok(())
}
