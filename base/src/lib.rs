//! `tt-base`: the code every tt-rs server shares, as the C++ `server/src/base/`
//! library is shared by every C++ server.
//!
//! Module map against the C++:
//! - [`pdu`]: `ImPduBase.cpp` (16-byte header, framing, protobuf bodies).
//! - [`config`]: `ConfigFileReader.cpp`, `ServInfo.cpp::read_server_config`,
//!   `util.cpp::CStrExplode`.
//! - [`aes`], [`md5`]: `EncDec.cpp` (`CAes`, `CMd5`).
//! - [`tick`] is `util.cpp::get_tick_count`.
//! - [`thread_pool`]: `ThreadPool.cpp` (`CThreadPool`, `CWorkerThread`).
//! - [`client_type`]: the `CHECK_CLIENT_TYPE_*` macros of `ImPduBase.h`.
//! - [`logging`], [`cli`]: what each C++ `main()` does before its loop.

pub mod aes;
pub mod cli;
pub mod client_type;
pub mod config;
pub mod logging;
pub mod md5;
pub mod msg_type;
pub mod pdu;
pub mod thread_pool;
pub mod tick;

pub use pdu::{ImPdu, PduError, PduHeader};
