//! The request handlers and the data models behind them: the C++
//! `db_proxy_server/business/` directory, one module per C++ file pair
//! (`*Action.cpp` handlers decode, call `*Model.cpp` queries, encode).

pub mod depart_action;
pub mod depart_model;
pub mod group_message_model;
pub mod group_model;
pub mod login;
pub mod message_counter;
pub mod message_model;
pub mod session_model;
pub mod user_action;
pub mod user_model;

use crate::cache_pool::CacheError;
use crate::db_pool::DbError;
use base::pdu::{ImPdu, PduError};
use mysql::Row;
use thiserror::Error;
use tt_proto::ProtoMessage;

/// Why a handler produced no reply. Every variant is logged by the worker;
/// none of them stops it.
#[derive(Debug, Error)]
pub enum HandlerError {
    /// MySQL failed (the C++ would answer with empty data; we answer nothing
    /// rather than claim there is none).
    #[error(transparent)]
    Db(#[from] DbError),
    /// Redis failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The request body does not decode (the C++ logs "parse pb failed"
    /// and answers nothing).
    #[error(transparent)]
    Pdu(#[from] PduError),
}

/// What a handler returns: the reply PDU, if the C++ sends one.
pub type HandlerResult = Result<Option<ImPdu>, HandlerError>;

/// Builds the reply to `req`: same seq, the given service and command.
pub fn reply<M: ProtoMessage>(
    req: &ImPdu,
    service_id: u16,
    command_id: u16,
    msg: &M,
) -> HandlerResult {
    Ok(Some(ImPdu::with_msg(
        service_id,
        command_id,
        req.seq_num(),
        msg,
    )?))
}

/// A text column, `""` for NULL (the C++ `CResultSet::GetString`).
pub fn col_str(row: &Row, name: &str) -> String {
    row.get_opt::<Option<String>, _>(name)
        .and_then(Result::ok)
        .flatten()
        .unwrap_or_default()
}

/// An integer column, 0 for NULL or out of range (the C++ `GetInt` uses `atoi`).
pub fn col_u32(row: &Row, name: &str) -> u32 {
    row.get_opt::<Option<i64>, _>(name)
        .and_then(Result::ok)
        .flatten()
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(0)
}

/// `?,?,?` with `n` placeholders, for `IN (...)` lists: the values are
/// always bound, never spliced into the statement.
pub fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 2);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push('?');
    }
    s
}

/// Most ids bound in one `IN (...)` statement.
pub const IN_CHUNK: usize = 1000;
