//! `IMDepart` queries: the C++ `business/DepartModel.cpp` (`CDepartModel`).

use super::{col_str, col_u32, with_in_list, IN_CHUNK};
use crate::db_pool::{DbError, DbManager, SLAVE};
use mysql::{Row, Value};
use tt_proto::IM::BaseDefine::{DepartInfo, DepartmentStatusType};

/// `getChgedDeptId`: ids of departments updated after `last_time`, and the
/// newest `updated` seen (at least `last_time`).
pub fn get_changed_dept_ids(db: &DbManager, last_time: u32) -> Result<(Vec<u32>, u32), DbError> {
    let mut conn = db.get(SLAVE)?;
    let rows: Vec<(u32, u32)> = conn.run(|c| {
        crate::db_rows::exec(
            c,
            "SELECT id, updated FROM IMDepart WHERE updated > ?",
            (last_time,),
        )
    })?;
    let newest = rows.iter().map(|&(_, u)| u).fold(last_time, u32::max);
    Ok((rows.into_iter().map(|(id, _)| id).collect(), newest))
}

/// `getDepts`: the departments with these ids whose status is a valid
/// `DepartmentStatusType` (others are skipped, as the C++ does).
pub fn get_depts(db: &DbManager, ids: &[u32]) -> Result<Vec<DepartInfo>, DbError> {
    let mut depts = Vec::new();
    if ids.is_empty() {
        return Ok(depts);
    }
    let mut conn = db.get(SLAVE)?;
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = with_in_list(
            "SELECT id, parentId, departName, status, priority FROM IMDepart WHERE id IN (",
            chunk.len(),
            ")",
        );
        let params: Vec<Value> = chunk.iter().map(|&id| Value::from(id)).collect();
        let rows: Vec<Row> = conn.run(|c| crate::db_rows::exec(c, &sql, params))?;
        for row in &rows {
            let dept_status = match col_u32(row, "status") {
                0 => DepartmentStatusType::DEPT_STATUS_OK,
                1 => DepartmentStatusType::DEPT_STATUS_DELETE,
                _ => continue,
            };
            depts.push(DepartInfo {
                dept_id: col_u32(row, "id"),
                priority: col_u32(row, "priority"),
                dept_name: col_str(row, "departName"),
                parent_dept_id: col_u32(row, "parentId"),
                dept_status,
            });
        }
    }
    Ok(depts)
}
