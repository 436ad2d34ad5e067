//! Group message storage and counters: the C++
//! `business/GroupMessageModel.cpp` (`CGroupMessageModel`). This issue only
//! needs the unread total; the message handlers extend it.

use super::group_model;
use super::HandlerError;
use crate::cache_pool::pools;
use crate::services::Services;

/// `GROUP_TOTAL_MSG_COUNTER_REDIS_KEY_SUFFIX`: `<group>_im_group_msg`
/// holds the group's message count.
pub fn group_total_key(group_id: u32) -> String {
    format!("{group_id}_im_group_msg")
}

/// `GROUP_USER_MSG_COUNTER_REDIS_KEY_SUFFIX`: `<user>_<group>_im_user_group`
/// holds how many of them the user has read.
pub fn group_user_key(user_id: u32, group_id: u32) -> String {
    format!("{user_id}_{group_id}_im_user_group")
}

/// `GROUP_COUNTER_SUBKEY_COUNTER_FIELD`.
pub const COUNTER_FIELD: &str = "count";

/// `getUnReadCntAll`: unread group messages over all the user's groups.
pub fn get_unread_cnt_all(services: &Services, user_id: u32) -> Result<u32, HandlerError> {
    let groups = group_model::get_user_group_ids(&services.db, user_id, 0)?;
    let mut conn = services.cache.get(pools::UNREAD)?;
    let mut total = 0u32;
    for group_id in groups {
        let (group_cnt, user_cnt): (Option<u32>, Option<u32>) = conn.run(|c| {
            redis::pipe()
                .cmd("HGET")
                .arg(group_total_key(group_id))
                .arg(COUNTER_FIELD)
                .cmd("HGET")
                .arg(group_user_key(user_id, group_id))
                .arg(COUNTER_FIELD)
                .query(c)
        })?;
        let Some(group_cnt) = group_cnt else { continue };
        total = total.saturating_add(group_cnt.saturating_sub(user_cnt.unwrap_or(0)));
    }
    Ok(total)
}
