//! `tt-client`: a TeamTalk client on tt-rs's `proto` and `base`.
//!
//! The C++ project ships a test client that only builds on macOS; this is
//! what our integration tests, benchmarks, the `tt` command line and the
//! `tt-load` load generator use to speak to a cluster (ours or the C++ one).
//!
//! ```no_run
//! use tt_client::{discovery, LoginOptions, Session};
//! let server = discovery::via_http("127.0.0.1:8080")?;
//! let addr = format!("{}:{}", server.prior_ip, server.port);
//! let mut me = Session::login(&addr, "alice", "123456", &LoginOptions::default())?;
//! me.send_text(2, "hello bob")?;
//! # Ok::<(), tt_client::ClientError>(())
//! ```

pub mod discovery;
pub mod error;
pub mod session;

pub use error::{refusal_text, ClientError};
pub use session::{Event, IncomingMessage, LoginOptions, Session};
