//! Every way a client call can fail, with the text a person should see.

use thiserror::Error;
use tt_proto::IM::BaseDefine::ResultType;

/// Why a client operation failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The network failed (connect, read, write).
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// No answer within the wait.
    #[error("no answer from the server within {0:?}")]
    Timeout(std::time::Duration),
    /// No answer within the wait, with what commonly causes it.
    #[error("no answer from the server within {0:?} ({1})")]
    TimeoutWithHint(std::time::Duration, &'static str),
    /// A PDU or body we could not decode.
    #[error("bad answer from the server: {0}")]
    Protocol(String),
    /// login_server or msg_server refused (a `REFUSE_REASON_*` code).
    #[error("refused: {}", refusal_text(*.0))]
    Refused(u32),
    /// The server kicked this session.
    #[error("kicked: {0}")]
    Kicked(String),
    /// A message text could not be encrypted or decrypted.
    #[error("message encryption: {0}")]
    Crypto(#[from] base::aes::AesError),
}

/// The person-readable meaning of a `ResultType` refusal code.
pub fn refusal_text(code: u32) -> String {
    let reason = match code {
        x if x == ResultType::REFUSE_REASON_NO_MSG_SERVER as u32 => "no msg_server is available",
        x if x == ResultType::REFUSE_REASON_MSG_SERVER_FULL as u32 => "every msg_server is full",
        x if x == ResultType::REFUSE_REASON_NO_DB_SERVER as u32 => {
            "the msg_server has no database server"
        }
        x if x == ResultType::REFUSE_REASON_NO_LOGIN_SERVER as u32 => {
            "the msg_server has no login server"
        }
        x if x == ResultType::REFUSE_REASON_NO_ROUTE_SERVER as u32 => {
            "the msg_server has no route server"
        }
        x if x == ResultType::REFUSE_REASON_DB_VALIDATE_FAILED as u32 => {
            "wrong user name or password"
        }
        x if x == ResultType::REFUSE_REASON_VERSION_TOO_OLD as u32 => "client version too old",
        _ => "unknown reason",
    };
    format!("{reason} (code {code})")
}
