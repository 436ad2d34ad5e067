//! `IMUser` queries: the C++ `business/UserModel.cpp` (`CUserModel`).
//! Reads go to `teamtalk_slave`, writes to `teamtalk_master`, as the C++.

use super::{col_str, col_u32, with_in_list, IN_CHUNK};
use crate::cache_keys;
use crate::db_pool::{DbError, DbManager, SLAVE};
use mysql::{Row, Value};
use tt_proto::IM::BaseDefine::UserInfo;

/// The `IMUser` columns a `UserInfo` is made of.
pub const USER_COLUMNS: &str =
    "id, sex, nick, domain, name, phone, email, avatar, sign_info, departId, status";

/// The most bytes of `sign_info` the C++ accepts (`updateUserSignInfo`).
pub const MAX_SIGN_INFO_LEN: usize = 128;

/// A `UserInfo` from a row selected with [`USER_COLUMNS`] (`getUsers`).
pub fn user_from_row(row: &Row) -> UserInfo {
    UserInfo {
        user_id: col_u32(row, "id"),
        user_gender: col_u32(row, "sex"),
        user_nick_name: col_str(row, "nick"),
        avatar_url: col_str(row, "avatar"),
        department_id: col_u32(row, "departId"),
        email: col_str(row, "email"),
        user_real_name: col_str(row, "name"),
        user_tel: col_str(row, "phone"),
        user_domain: col_str(row, "domain"),
        status: col_u32(row, "status"),
        sign_info: Some(col_str(row, "sign_info")),
    }
}

/// `getUsers`: the users with these ids (missing ids are skipped).
pub fn get_users(db: &DbManager, ids: &[u32]) -> Result<Vec<UserInfo>, DbError> {
    let mut users = Vec::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(users);
    }
    let mut conn = db.get(SLAVE)?;
    for chunk in ids.chunks(IN_CHUNK) {
        let head = ["SELECT ", USER_COLUMNS, " FROM IMUser WHERE id IN ("].concat();
        let sql = with_in_list(&head, chunk.len(), ")");
        let params: Vec<Value> = chunk.iter().map(|&id| Value::from(id)).collect();
        let rows: Vec<Row> = conn.run(|c| crate::db_rows::exec(c, &sql, params))?;
        users.extend(rows.iter().map(user_from_row));
    }
    Ok(users)
}

/// `getChangedId`: ids of users updated since `last_time` (every user not
/// deleted when it is 0), and the newest `updated` seen (at least `last_time`).
pub fn get_changed_ids(db: &DbManager, last_time: u32) -> Result<(Vec<u32>, u32), DbError> {
    let mut conn = db.get(SLAVE)?;
    let rows: Vec<(u32, u32)> = if last_time == 0 {
        conn.run(|c| crate::db_rows::query(c, "SELECT id, updated FROM IMUser WHERE status != 3"))?
    } else {
        conn.run(|c| {
            crate::db_rows::exec(
                c,
                "SELECT id, updated FROM IMUser WHERE updated >= ?",
                (last_time,),
            )
        })?
    };
    let newest = rows.iter().map(|&(_, u)| u).fold(last_time, u32::max);
    Ok((rows.into_iter().map(|(id, _)| id).collect(), newest))
}

/// `updateUserSignInfo`: false when too long or no row changed, as the C++.
pub fn update_sign_info(
    db: &DbManager,
    user_id: u32,
    sign_info: &str,
    now: u32,
) -> Result<bool, DbError> {
    if sign_info.len() > MAX_SIGN_INFO_LEN {
        log::info!(
            "user {user_id}: sign_info of {} bytes refused",
            sign_info.len()
        );
        return Ok(false);
    }
    db.execute_update(
        "UPDATE IMUser SET sign_info = ?, updated = ? WHERE id = ?",
        (sign_info, now, user_id),
    )
}

/// `updatePushShield`: false when no row changed, as the C++ `ExecuteUpdate`.
pub fn update_push_shield(
    db: &DbManager,
    user_id: u32,
    shield_status: u32,
    now: u32,
) -> Result<bool, DbError> {
    db.execute_update(
        "UPDATE IMUser SET push_shield_status = ?, updated = ? WHERE id = ?",
        (shield_status, now, user_id),
    )
}

/// `getPushShield`: the user's setting, `None` for an unknown user.
pub fn get_push_shield(db: &DbManager, user_id: u32) -> Result<Option<u32>, DbError> {
    let mut conn = db.get(SLAVE)?;
    let v: Option<Option<u32>> = conn.run(|c| {
        crate::db_rows::exec_first(
            c,
            "SELECT push_shield_status FROM IMUser WHERE id = ?",
            (user_id,),
        )
    })?;
    Ok(v.map(Option::unwrap_or_default))
}

/// Copies a hash whole (`HGETALL` then `HMSET` in the C++), in one step.
const COPY_HASH: &str = r"
local all = redis.call('HGETALL', KEYS[1])
if #all > 0 then redis.call('HMSET', KEYS[2], unpack(all)) end
return #all";

/// `clearUserCounter`: a read-ack. One-to-one: the user's unread count from
/// the peer is deleted. Group: the user's read count becomes the group's
/// message count, in one atomic script where the C++ makes two calls.
pub fn clear_user_counter(
    cache: &crate::cache_pool::CacheManager,
    user_id: u32,
    peer_id: u32,
    session_type: tt_proto::IM::BaseDefine::SessionType,
) -> Result<(), crate::cache_pool::CacheError> {
    use tt_proto::IM::BaseDefine::SessionType;
    let mut conn = cache.get(crate::cache_pool::pools::UNREAD)?;
    match session_type {
        SessionType::SESSION_TYPE_SINGLE => conn.run(|c| {
            redis::cmd("HDEL")
                .arg(cache_keys::unread(user_id))
                .arg(peer_id)
                .query::<()>(c)
        }),
        SessionType::SESSION_TYPE_GROUP => conn.run(|c| {
            redis::Script::new(COPY_HASH)
                .key(cache_keys::group_msg_count(peer_id))
                .key(cache_keys::user_group_read_count(user_id, peer_id))
                .invoke::<()>(c)
        }),
    }
}
