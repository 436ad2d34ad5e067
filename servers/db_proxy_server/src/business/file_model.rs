//! Offline files (`IMTransmitFile`): the C++ `business/FileModel.cpp`
//! (`CFileModel`).
//!
//! The reference schema (`ttopen.sql`) has no `IMTransmitFile` table, so
//! against it the C++ queries fail: it logs and lists no offline file. We
//! do the same for that one error (a missing table means no offline file
//! was ever stored); `sql/offline_files.sql` (repository root) creates the
//! table for deployments that want offline files kept.

use super::{col_str, col_u32};
use crate::db_pool::{DbError, DbManager, MASTER, SLAVE};
use mysql::prelude::Queryable;
use mysql::Row;
use tt_proto::IM::BaseDefine::OfflineFileInfo;

/// MySQL's `ER_NO_SUCH_TABLE`.
const ER_NO_SUCH_TABLE: u16 = 1146;

/// True when `e` says `IMTransmitFile` does not exist.
pub fn is_missing_table(e: &DbError) -> bool {
    matches!(
        e,
        DbError::Query {
            source: mysql::Error::MySqlError(m),
            ..
        } if m.code == ER_NO_SUCH_TABLE
    )
}

/// `getOfflineFile`: files waiting for `user_id`, oldest first.
pub fn get_offline_file(db: &DbManager, user_id: u32) -> Result<Vec<OfflineFileInfo>, DbError> {
    let rows: Vec<Row> = db.get(SLAVE)?.run(|c| {
        crate::db_rows::exec(
            c,
            "SELECT fromId, taskId, fileName, size FROM IMTransmitFile \
             WHERE toId = ? AND status = 0 ORDER BY created",
            (user_id,),
        )
    })?;
    Ok(rows
        .iter()
        .map(|row| OfflineFileInfo {
            from_user_id: col_u32(row, "fromId"),
            task_id: col_str(row, "taskId"),
            file_name: col_str(row, "fileName"),
            file_size: col_u32(row, "size"),
        })
        .collect())
}

/// `addOfflineFile`.
pub fn add_offline_file(
    db: &DbManager,
    from_id: u32,
    to_id: u32,
    task_id: &str,
    file_name: &str,
    file_size: u32,
    now: u32,
) -> Result<(), DbError> {
    db.get(MASTER)?.run(|c| {
        c.exec_drop(
            "INSERT INTO IMTransmitFile (fromId, toId, fileName, size, taskId, status, \
             created, updated) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
            (from_id, to_id, file_name, file_size, task_id, now, now),
        )
    })
}

/// `delOfflineFile`: returns whether a row went.
pub fn del_offline_file(
    db: &DbManager,
    from_id: u32,
    to_id: u32,
    task_id: &str,
) -> Result<bool, DbError> {
    db.execute_update(
        "DELETE FROM IMTransmitFile WHERE fromId = ? AND toId = ? AND taskId = ?",
        (from_id, to_id, task_id),
    )
}
