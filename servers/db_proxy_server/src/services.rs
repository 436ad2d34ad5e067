//! What every handler reaches: the pools, the sync center and the login
//! failure table. The C++ keeps each as a process-wide singleton
//! (`CDBManager::getInstance()`...); here they are one value shared by the
//! workers through an `Arc`.

use crate::business::audio_model::AudioModel;
use crate::business::login::LoginLimiter;
use crate::business::message_model::PairCache;
use crate::cache_pool::{CacheError, CacheManager};
use crate::config::DbProxyConfig;
use crate::db_pool::{DbError, DbManager};
use crate::sync_center::SyncCenter;
use thiserror::Error;

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// A config key is missing or invalid (the message names it).
    #[error(transparent)]
    Config(#[from] base::config::ConfigError),
    /// MySQL is unreachable (the C++ refuses to start too).
    #[error(transparent)]
    Db(#[from] DbError),
    /// Redis is unreachable (the C++ refuses to start too).
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Listening, threads, signals.
    #[error(transparent)]
    Net(#[from] netlib::NetError),
    /// The metrics port could not be opened.
    #[error(transparent)]
    Metrics(#[from] tt_http::metrics::MetricsError),
    /// `aesKey` unusable for encryption.
    #[error("aesKey: {0}")]
    Aes(#[from] base::aes::AesError),
    /// Anything else from the OS.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// After SIGTERM the drain was given up with this many requests
    /// unanswered (see `proxy_conn::DRAIN_LIMIT_MS`).
    #[error("stopped with {0} requests unanswered: MariaDB or Redis did not answer the drain")]
    DrainAbandoned(usize),
}

/// The shared state of the workers.
pub struct Services {
    /// MySQL pools by name.
    pub db: DbManager,
    /// Redis pools by name.
    pub cache: CacheManager,
    /// Sync times.
    pub sync: SyncCenter,
    /// Recent login failures.
    pub login_limiter: LoginLimiter,
    /// The msfs site for voice messages and the encrypted "\[语音\]".
    pub audio: AudioModel,
    /// Relations and sessions of recent message pairs.
    pub pairs: PairCache,
}

impl Services {
    /// Opens the pools (`CacheManager::getInstance`, `CDBManager::getInstance`)
    /// and loads the sync times.
    pub fn connect(cfg: &DbProxyConfig) -> Result<Services, StartError> {
        log::info!("audio files are served from {}", cfg.msfs_site);
        let audio = AudioModel::new(&cfg.msfs_site, &cfg.aes_key)?;
        let cache = CacheManager::new(&cfg.cache_instances)?;
        let db = DbManager::new(&cfg.db_instances)?;
        let services = Services {
            db,
            cache,
            sync: SyncCenter::default(),
            login_limiter: LoginLimiter::default(),
            audio,
            pairs: PairCache::default(),
        };
        services.sync.init(&services.cache);
        Ok(services)
    }
}
