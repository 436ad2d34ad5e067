//! Group queries: the C++ `business/GroupModel.cpp` (`CGroupModel`). This
//! issue needs only what the sync center and unread totals use; the group
//! handlers extend it.

use crate::cache_pool::{pools, CacheError, CacheManager};
use crate::db_pool::{DbError, DbManager, SLAVE};
use mysql::prelude::Queryable;
use std::collections::HashMap;

/// Redis hash of a group's members (`group_member_<group>`: user id → join time).
pub fn group_member_key(group_id: u32) -> String {
    format!("group_member_{group_id}")
}

/// `getGroupUser`: the group's members as the `group_member` cache has them.
pub fn get_group_user(cache: &CacheManager, group_id: u32) -> Result<Vec<u32>, CacheError> {
    let mut conn = cache.get(pools::GROUP_MEMBER)?;
    let members: HashMap<String, String> = conn.run(|c| {
        redis::cmd("HGETALL")
            .arg(group_member_key(group_id))
            .query(c)
    })?;
    Ok(members.keys().filter_map(|k| k.parse().ok()).collect())
}

/// `getUserGroupIds`: the groups the user is an active member of, most
/// recently updated first; `limit` 0 means all.
pub fn get_user_group_ids(db: &DbManager, user_id: u32, limit: u32) -> Result<Vec<u32>, DbError> {
    let mut conn = db.get(SLAVE)?;
    if limit == 0 {
        conn.run(|c| {
            c.exec(
                "SELECT groupId FROM IMGroupMember WHERE userId = ? AND status = 0 \
                 ORDER BY updated DESC, id DESC",
                (user_id,),
            )
        })
    } else {
        conn.run(|c| {
            c.exec(
                "SELECT groupId FROM IMGroupMember WHERE userId = ? AND status = 0 \
                 ORDER BY updated DESC, id DESC LIMIT ?",
                (user_id, limit),
            )
        })
    }
}
