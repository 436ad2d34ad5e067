//! Groups and their members: the C++ `business/GroupModel.cpp` (`CGroupModel`).
//!
//! `IMGroup` and `IMGroupMember` hold the truth; the Redis hash
//! `group_member_<group>` (pool `group_member`, user id → join time) is the
//! membership every message checks, kept in step on each change. The C++
//! treats a group whose hash is absent (rows loaded by SQL, a flushed
//! Redis) as no group at all; we fill the hash from `IMGroupMember` first.
//! Push settings live in `group_set_<group>` (pool `group_set`), field
//! `<user>_1`.

use super::{col_str, col_u32, user_model, with_in_list, HandlerError, IN_CHUNK};
use crate::cache_keys;
use crate::cache_pool::{pools, CacheError, CacheManager};
use crate::db_pool::{DbError, DbManager, MASTER, SLAVE};
use crate::services::Services;
use mysql::prelude::Queryable;
use mysql::Row;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tt_proto::IM::BaseDefine::{
    GroupInfo, GroupModifyType, GroupType, GroupVersionInfo, SessionType, ShieldStatus,
};

/// Fills an absent member hash in one step, so a concurrent change made
/// through the hash is never overwritten by an older read.
const FILL_MEMBERS: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1";

/// Sets the member rows of `users` (at most [`IN_CHUNK`]) in `group_id` to
/// `status` (0 in the group, 1 removed), touched at `now`.
fn set_member_status(
    tx: &mut mysql::Transaction<'_>,
    group_id: u32,
    users: &[u32],
    status: u32,
    now: u32,
) -> Result<(), mysql::Error> {
    let sql = with_in_list(
        "UPDATE IMGroupMember SET status = ?, updated = ? WHERE groupId = ? AND userId IN (",
        users.len(),
        ")",
    );
    let mut params: Vec<mysql::Value> = vec![status.into(), now.into(), group_id.into()];
    params.extend(users.iter().map(|&u| mysql::Value::from(u)));
    tx.exec_drop(&sql, params)
}

/// Locks the group's `IMGroup` row for the rest of the transaction, so
/// membership changes of one group run one after another (the "already a
/// member?" read then sees the previous change, and no two transactions
/// take the group and its member/session rows in opposite orders; a group
/// message also updates the group row first).
fn lock_group_row(tx: &mut mysql::Transaction<'_>, group_id: u32) -> Result<(), mysql::Error> {
    tx.exec_drop(
        "SELECT id FROM IMGroup WHERE id = ? FOR UPDATE",
        (group_id,),
    )
}

/// Makes sure `group_member_<group>` exists when the group has active
/// members in `IMGroupMember`; returns whether it exists
/// (`isValidateGroupId`).
pub fn load_members(services: &Services, group_id: u32) -> Result<bool, HandlerError> {
    let key = cache_keys::group_member(group_id);
    let mut redis = services.cache.get(pools::GROUP_MEMBER)?;
    let exists: bool = redis.run(|c| redis::cmd("EXISTS").arg(&key).query(c))?;
    if exists {
        return Ok(true);
    }
    // fill_members checks out its own connection from this pool.
    drop(redis);
    fill_members(services, group_id)
}

/// [`load_members`] for many groups at once: which of `ids` exist. One
/// pipelined `EXISTS` per [`IN_CHUNK`] groups, then one query per chunk of
/// the groups without a hash for their active members, and a fill for each
/// group that has some; a request naming many unknown groups costs a few
/// round trips, not two per group.
pub fn load_members_many(
    services: &Services,
    ids: &BTreeSet<u32>,
) -> Result<BTreeSet<u32>, HandlerError> {
    let ids: Vec<u32> = ids.iter().copied().collect();
    let mut existing = BTreeSet::new();
    let mut without_hash = Vec::new();
    {
        let mut redis = services.cache.get(pools::GROUP_MEMBER)?;
        for chunk in ids.chunks(IN_CHUNK) {
            let mut pipe = redis::pipe();
            for &id in chunk {
                pipe.cmd("EXISTS").arg(cache_keys::group_member(id));
            }
            let found: Vec<bool> = redis.run(|c| pipe.query(c))?;
            for (&id, found) in chunk.iter().zip(found) {
                if found {
                    existing.insert(id);
                } else {
                    without_hash.push(id);
                }
            }
        }
    }
    // The active members of every group without a hash, one query per
    // chunk; each group found is filled from its rows.
    for chunk in without_hash.chunks(IN_CHUNK) {
        let sql = with_in_list(
            "SELECT groupId, userId, updated FROM IMGroupMember WHERE status = 0 AND groupId IN (",
            chunk.len(),
            ") ORDER BY groupId",
        );
        let rows: Vec<(u32, u32, u32)> = services
            .db
            .get(MASTER)?
            .run(|c| crate::db_rows::exec(c, &sql, chunk.to_vec()))?;
        let mut members: BTreeMap<u32, Vec<(u32, u32)>> = BTreeMap::new();
        for (group_id, user_id, joined) in rows {
            members.entry(group_id).or_default().push((user_id, joined));
        }
        for (group_id, rows) in members {
            fill_members_from(services, group_id, &rows)?;
            existing.insert(group_id);
        }
    }
    Ok(existing)
}

fn fill_members(services: &Services, group_id: u32) -> Result<bool, HandlerError> {
    let rows: Vec<Row> = services.db.get(MASTER)?.run(|c| {
        crate::db_rows::exec(
            c,
            "SELECT userId, updated FROM IMGroupMember WHERE groupId = ? AND status = 0",
            (group_id,),
        )
    })?;
    let rows: Vec<(u32, u32)> = rows
        .iter()
        .map(|r| (col_u32(r, "userId"), col_u32(r, "updated")))
        .collect();
    if rows.is_empty() {
        return Ok(false);
    }
    fill_members_from(services, group_id, &rows)?;
    Ok(true)
}

/// Writes `group_member_<group>` from its active member rows (user, joined),
/// unless another worker wrote it meanwhile.
fn fill_members_from(
    services: &Services,
    group_id: u32,
    rows: &[(u32, u32)],
) -> Result<(), HandlerError> {
    let fill = redis::Script::new(FILL_MEMBERS);
    let mut script = fill.key(cache_keys::group_member(group_id));
    for (user_id, joined) in rows {
        script.arg(user_id).arg(joined);
    }
    let filled: i64 = services
        .cache
        .get(pools::GROUP_MEMBER)?
        .run(|c| script.invoke(c))?;
    if filled == 1 {
        log::info!(
            "group {group_id}: member cache filled from IMGroupMember ({} members)",
            rows.len()
        );
    }
    Ok(())
}

/// What the member hash says about one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    /// No such group (no hash, no active member row).
    NoGroup,
    /// The group exists; the user is not in it.
    NotMember,
    /// A member since this time.
    Member(u32),
}

/// `isValidateGroupId` and `isInGroup` / `getUserJoinTime` in one round
/// trip on the usual path.
pub fn membership(
    services: &Services,
    user_id: u32,
    group_id: u32,
) -> Result<Membership, HandlerError> {
    let key = cache_keys::group_member(group_id);
    let mut redis = services.cache.get(pools::GROUP_MEMBER)?;
    let query = |redis: &mut crate::cache_pool::CacheConn<'_>| {
        redis.run(|c| {
            redis::pipe()
                .cmd("EXISTS")
                .arg(&key)
                .cmd("HGET")
                .arg(&key)
                .arg(user_id)
                .query::<(bool, Option<String>)>(c)
        })
    };
    let (mut exists, mut joined) = query(&mut redis)?;
    if !exists {
        drop(redis);
        if !fill_members(services, group_id)? {
            return Ok(Membership::NoGroup);
        }
        redis = services.cache.get(pools::GROUP_MEMBER)?;
        (exists, joined) = query(&mut redis)?;
        if !exists {
            return Ok(Membership::NoGroup);
        }
    }
    Ok(match joined {
        Some(t) => Membership::Member(t.parse().unwrap_or(0)),
        None => Membership::NotMember,
    })
}

/// `isInGroup`.
pub fn is_in_group(services: &Services, user_id: u32, group_id: u32) -> Result<bool, HandlerError> {
    Ok(matches!(
        membership(services, user_id, group_id)?,
        Membership::Member(_)
    ))
}

/// `getGroupUser`: the group's members, in the C++'s order (ids sorted as
/// text, the order of its `std::map<string, string>`).
pub fn get_group_user(services: &Services, group_id: u32) -> Result<Vec<u32>, HandlerError> {
    if !load_members(services, group_id)? {
        return Ok(Vec::new());
    }
    let members: HashMap<String, String> = services.cache.get(pools::GROUP_MEMBER)?.run(|c| {
        redis::cmd("HGETALL")
            .arg(cache_keys::group_member(group_id))
            .query(c)
    })?;
    let mut keys: Vec<&String> = members.keys().collect();
    keys.sort();
    Ok(keys.into_iter().filter_map(|k| k.parse().ok()).collect())
}

/// `getUserGroupIds`: the groups the user is an active member of, most
/// recently updated first; `limit` 0 means all.
pub fn get_user_group_ids(db: &DbManager, user_id: u32, limit: u32) -> Result<Vec<u32>, DbError> {
    let mut conn = db.get(SLAVE)?;
    if limit == 0 {
        conn.run(|c| {
            crate::db_rows::exec(
                c,
                "SELECT groupId FROM IMGroupMember WHERE userId = ? AND status = 0 \
                 ORDER BY updated DESC, id DESC",
                (user_id,),
            )
        })
    } else {
        conn.run(|c| {
            crate::db_rows::exec(
                c,
                "SELECT groupId FROM IMGroupMember WHERE userId = ? AND status = 0 \
                 ORDER BY updated DESC, id DESC LIMIT ?",
                (user_id, limit),
            )
        })
    }
}

/// `getUserGroup`: versions of the user's groups of `group_type`, most
/// recently updated first.
pub fn get_user_group(
    db: &DbManager,
    user_id: u32,
    group_type: GroupType,
) -> Result<Vec<GroupVersionInfo>, DbError> {
    let ids = get_user_group_ids(db, user_id, 0)?;
    let mut list = Vec::new();
    let mut conn = db.get(SLAVE)?;
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = with_in_list(
            "SELECT id, version FROM IMGroup WHERE id IN (",
            chunk.len(),
            ") AND type = ? ORDER BY updated DESC",
        );
        let mut params: Vec<mysql::Value> = chunk.iter().map(|&id| id.into()).collect();
        params.push((group_type as u32).into());
        let rows: Vec<Row> = conn.run(|c| crate::db_rows::exec(c, &sql, params))?;
        list.extend(rows.iter().map(|r| GroupVersionInfo {
            group_id: col_u32(r, "id"),
            version: col_u32(r, "version"),
        }));
    }
    Ok(list)
}

/// `getGroupInfo`: the requested groups whose version is newer than the
/// one the client has, with their members.
pub fn get_group_info(
    services: &Services,
    requested: &BTreeMap<u32, u32>,
) -> Result<Vec<GroupInfo>, HandlerError> {
    let ids: Vec<u32> = requested.keys().copied().collect();
    let mut list = Vec::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = with_in_list(
            "SELECT id, version, name, avatar, type, creator FROM IMGroup WHERE id IN (",
            chunk.len(),
            ") ORDER BY updated DESC",
        );
        let params: Vec<mysql::Value> = chunk.iter().map(|&id| id.into()).collect();
        let rows: Vec<Row> = services
            .db
            .get(SLAVE)?
            .run(|c| crate::db_rows::exec(c, &sql, params))?;
        for row in &rows {
            let group_id = col_u32(row, "id");
            let version = col_u32(row, "version");
            if requested.get(&group_id).copied().unwrap_or(0) >= version {
                continue;
            }
            let group_type = match col_u32(row, "type") {
                1 => GroupType::GROUP_TYPE_NORMAL,
                2 => GroupType::GROUP_TYPE_TMP,
                other => {
                    log::info!("group {group_id} has invalid type {other}");
                    continue;
                }
            };
            list.push(GroupInfo {
                group_id,
                version,
                group_name: col_str(row, "name"),
                group_avatar: col_str(row, "avatar"),
                group_creator_id: col_u32(row, "creator"),
                group_type,
                shield_status: 0,
                group_member_list: Vec::new(),
            });
        }
    }
    for info in &mut list {
        info.group_member_list = get_group_user(services, info.group_id)?;
    }
    Ok(list)
}

/// Inserts member rows for `users` (multi-row, in chunks) in a transaction.
fn insert_members(
    tx: &mut mysql::Transaction<'_>,
    group_id: u32,
    users: &[u32],
    now: u32,
) -> Result<(), mysql::Error> {
    for chunk in users.chunks(IN_CHUNK) {
        let mut sql = String::from(
            "INSERT INTO IMGroupMember (groupId, userId, status, created, updated) VALUES ",
        );
        let mut params: Vec<mysql::Value> = Vec::with_capacity(chunk.len() * 4);
        for (i, &user_id) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str("(?, ?, 0, ?, ?)");
            params.extend([group_id.into(), user_id.into(), now.into(), now.into()]);
        }
        tx.exec_drop(&sql, params)?;
    }
    Ok(())
}

/// Sets the member hash entries of `users` to `now`; on failure drops the
/// hash so the next use rebuilds it from `IMGroupMember`.
fn cache_add_members(cache: &CacheManager, group_id: u32, users: &[u32], now: u32, reset: bool) {
    let key = cache_keys::group_member(group_id);
    let done = cache.get(pools::GROUP_MEMBER).and_then(|mut c| {
        c.run(|c| {
            let mut pipe = redis::pipe();
            pipe.atomic();
            if reset {
                pipe.cmd("DEL").arg(&key).ignore();
            }
            for user_id in users {
                pipe.cmd("HSET").arg(&key).arg(user_id).arg(now).ignore();
            }
            pipe.query::<()>(c)
        })
    });
    if let Err(e) = done {
        forget_members(cache, group_id, &e);
    }
}

/// The member hash could not follow a change already committed: drop it so
/// it is rebuilt from `IMGroupMember` (if even that fails, it stays stale
/// until Redis is back and the next change, and an error is logged).
fn forget_members(cache: &CacheManager, group_id: u32, why: &CacheError) {
    let key = cache_keys::group_member(group_id);
    let dropped = cache
        .get(pools::GROUP_MEMBER)
        .and_then(|mut c| c.run(|c| redis::cmd("DEL").arg(&key).query::<()>(c)));
    match dropped {
        Ok(()) => log::warn!("{key} not updated ({why}); dropped, to be rebuilt"),
        Err(e) => log::error!("{key} not updated ({why}) and not dropped ({e}): stale"),
    }
}

/// `createGroup`: the group row and its member rows in one transaction,
/// then the member hash and a message counter at 0 (`resetMsgId`). An
/// empty name or member list is refused (`None`), as in the C++.
pub fn create_group(
    services: &Services,
    creator: u32,
    name: &str,
    avatar: &str,
    group_type: GroupType,
    members: &BTreeSet<u32>,
) -> Result<Option<u32>, HandlerError> {
    if name.is_empty() || members.is_empty() {
        return Ok(None);
    }
    let now = base::tick::unix_time();
    let users: Vec<u32> = members.iter().copied().collect();
    let mut conn = services.db.get(MASTER)?;
    let group_id = conn.transaction(|tx| {
        tx.exec_drop(
            "INSERT INTO IMGroup (name, avatar, creator, type, userCnt, status, version, \
             lastChated, updated, created) VALUES (?, ?, ?, ?, ?, 0, 1, 0, ?, ?)",
            (
                name,
                avatar,
                creator,
                group_type as u32,
                users.len() as u32,
                now,
                now,
            ),
        )?;
        let id = tx.last_insert_id().unwrap_or(0);
        let group_id = u32::try_from(id).map_err(|_| HandlerError::IdRange(id))?;
        // `clearGroupMember`: rows a reused id may have left. Looked for
        // with a plain (non-locking) read first: a DELETE that finds no
        // row still gap-locks the end of the index, and concurrent
        // creations then deadlock on each other's member inserts.
        let left: Option<u32> = crate::db_rows::exec_first(
            tx,
            "SELECT id FROM IMGroupMember WHERE groupId = ? LIMIT 1",
            (group_id,),
        )?;
        if left.is_some() {
            tx.exec_drop("DELETE FROM IMGroupMember WHERE groupId = ?", (group_id,))?;
        }
        insert_members(tx, group_id, &users, now)?;
        Ok::<u32, HandlerError>(group_id)
    })?;
    drop(conn);
    // The id counter first: once the member hash exists, members can send,
    // and a reset after their first message would hand out its id again.
    let reset = services.cache.get(pools::UNREAD).and_then(|mut c| {
        c.run(|c| {
            redis::cmd("SET")
                .arg(cache_keys::group_msg_id(group_id))
                .arg(0)
                .query::<()>(c)
        })
    });
    if let Err(e) = reset {
        log::warn!("group {group_id}: message counter not reset: {e}");
    }
    cache_add_members(&services.cache, group_id, &users, now, true);
    Ok(Some(group_id))
}

/// `hasModifyPermission`: the system (user 0), the creator, or anyone
/// adding to a temporary group.
fn has_modify_permission(
    db: &DbManager,
    user_id: u32,
    group_id: u32,
    change: GroupModifyType,
) -> Result<bool, DbError> {
    if user_id == 0 {
        return Ok(true);
    }
    let row: Option<Row> = db.get(SLAVE)?.run(|c| {
        crate::db_rows::exec_first(
            c,
            "SELECT creator, type FROM IMGroup WHERE id = ?",
            (group_id,),
        )
    })?;
    let row = row.map(|r| (col_u32(&r, "creator"), col_u32(&r, "type")));
    Ok(match row {
        Some((_, 2)) if change == GroupModifyType::GROUP_MODIFY_TYPE_ADD => true,
        Some((creator, 1 | 2)) => creator == user_id,
        _ => false,
    })
}

/// `modifyGroupMember`: adds or removes `users` (adding skips those
/// already in); on success returns the members after the change, and
/// `users` holds the ones changed. `None` is the C++'s failure (no
/// permission, or nobody new to add).
pub fn modify_group_member(
    services: &Services,
    user_id: u32,
    group_id: u32,
    change: GroupModifyType,
    users: &mut BTreeSet<u32>,
) -> Result<Option<Vec<u32>>, HandlerError> {
    if !has_modify_permission(&services.db, user_id, group_id, change)? {
        log::info!("user {user_id} may not change group {group_id}");
        return Ok(None);
    }
    let now = base::tick::unix_time();
    match change {
        GroupModifyType::GROUP_MODIFY_TYPE_ADD => {
            // `removeRepeatUser`.
            let listed: Vec<u32> = users.iter().copied().collect();
            if !listed.is_empty() {
                let present: Vec<Option<String>> =
                    services.cache.get(pools::GROUP_MEMBER)?.run(|c| {
                        let mut cmd = redis::cmd("HMGET");
                        cmd.arg(cache_keys::group_member(group_id)).arg(&listed);
                        cmd.query(c)
                    })?;
                for (user, there) in listed.iter().zip(present) {
                    if there.is_some() {
                        users.remove(user);
                    }
                }
            }
            if users.is_empty() {
                return Ok(None);
            }
            let adding: Vec<u32> = users.iter().copied().collect();
            services.db.get(MASTER)?.transaction(|tx| {
                lock_group_row(tx, group_id)?;
                let mut had: BTreeSet<u32> = BTreeSet::new();
                for chunk in adding.chunks(IN_CHUNK) {
                    let sql = with_in_list(
                        "SELECT userId FROM IMGroupMember WHERE groupId = ? AND userId IN (",
                        chunk.len(),
                        ")",
                    );
                    let mut params: Vec<mysql::Value> = vec![group_id.into()];
                    params.extend(chunk.iter().map(|&u| mysql::Value::from(u)));
                    had.extend(tx.exec::<u32, _, _>(&sql, params)?);
                }
                let revive: Vec<u32> = had.iter().copied().collect();
                for chunk in revive.chunks(IN_CHUNK) {
                    set_member_status(tx, group_id, chunk, 0, now)?;
                }
                let fresh: Vec<u32> = adding
                    .iter()
                    .copied()
                    .filter(|u| !had.contains(u))
                    .collect();
                insert_members(tx, group_id, &fresh, now)?;
                bump_group(tx, group_id)?;
                Ok::<(), HandlerError>(())
            })?;
            cache_add_members(&services.cache, group_id, &adding, now, false);
        }
        GroupModifyType::GROUP_MODIFY_TYPE_DEL => {
            // The C++ answers success, with no member list, for nobody to remove.
            if users.is_empty() {
                return Ok(Some(Vec::new()));
            }
            let removing: Vec<u32> = users.iter().copied().collect();
            let group_session = SessionType::SESSION_TYPE_GROUP as u32;
            services.db.get(MASTER)?.transaction(|tx| {
                lock_group_row(tx, group_id)?;
                for chunk in removing.chunks(IN_CHUNK) {
                    set_member_status(tx, group_id, chunk, 1, now)?;
                    // `removeSession` for each removed user.
                    let sql = with_in_list(
                        "UPDATE IMRecentSession SET status = 1, updated = ? \
                         WHERE peerId = ? AND type = ? AND status = 0 AND userId IN (",
                        chunk.len(),
                        ")",
                    );
                    let mut params: Vec<mysql::Value> =
                        vec![now.into(), group_id.into(), group_session.into()];
                    params.extend(chunk.iter().map(|&u| mysql::Value::from(u)));
                    tx.exec_drop(&sql, params)?;
                }
                bump_group(tx, group_id)?;
                Ok::<(), HandlerError>(())
            })?;
            let key = cache_keys::group_member(group_id);
            let done = services.cache.get(pools::GROUP_MEMBER).and_then(|mut c| {
                c.run(|c| redis::cmd("HDEL").arg(&key).arg(&removing).query::<()>(c))
            });
            if let Err(e) = done {
                forget_members(&services.cache, group_id, &e);
            }
        }
    }
    for &changed in users.iter() {
        user_model::clear_user_counter(
            &services.cache,
            changed,
            group_id,
            SessionType::SESSION_TYPE_GROUP,
        )?;
    }
    Ok(Some(get_group_user(services, group_id)?))
}

/// `incGroupVersion`, and `userCnt` recounted from the member rows.
fn bump_group(tx: &mut mysql::Transaction<'_>, group_id: u32) -> Result<(), mysql::Error> {
    tx.exec_drop(
        "UPDATE IMGroup SET version = version + 1, \
         userCnt = (SELECT COUNT(*) FROM IMGroupMember WHERE groupId = ? AND status = 0) \
         WHERE id = ?",
        (group_id, group_id),
    )
}

/// `setPush`: a member's push shield for the group; false for a non-member.
pub fn set_push(
    services: &Services,
    user_id: u32,
    group_id: u32,
    status: u32,
) -> Result<bool, HandlerError> {
    if !is_in_group(services, user_id, group_id)? {
        log::info!("user {user_id} is not in group {group_id}");
        return Ok(false);
    }
    services.cache.get(pools::GROUP_SET)?.run(|c| {
        redis::cmd("HSET")
            .arg(cache_keys::group_set(group_id))
            .arg(cache_keys::group_push_field(user_id))
            .arg(status)
            .query::<()>(c)
    })?;
    Ok(true)
}

/// `getPush`: each listed user's push shield for the group (0 when unset).
pub fn get_push(
    cache: &CacheManager,
    group_id: u32,
    users: &[u32],
) -> Result<Vec<ShieldStatus>, CacheError> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let settings: HashMap<String, String> = cache.get(pools::GROUP_SET)?.run(|c| {
        redis::cmd("HGETALL")
            .arg(cache_keys::group_set(group_id))
            .query(c)
    })?;
    Ok(users
        .iter()
        .map(|&user_id| ShieldStatus {
            user_id,
            group_id,
            shield_status: settings
                .get(&cache_keys::group_push_field(user_id))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        })
        .collect())
}
