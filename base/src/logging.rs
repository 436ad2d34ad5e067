//! Logging set-up shared by every server (the C++ uses log4cxx/slog with a
//! `log4cxx.properties`; we use `log` + `env_logger`).

/// Installs the process logger: level from `RUST_LOG` (default `info`),
/// millisecond timestamps, to stderr. Calling it twice is harmless.
pub fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    let _ = env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .try_init();
}
