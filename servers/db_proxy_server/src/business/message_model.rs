//! One-to-one message storage and counters: the C++
//! `business/MessageModel.cpp` (`CMessageModel`). This issue only needs the
//! unread total; the message handlers extend it.

use crate::cache_pool::{pools, CacheError, CacheManager};
use std::collections::HashMap;

/// Redis hash of one user's unread counts by peer: `unread_<user>`.
pub fn unread_key(user_id: u32) -> String {
    format!("unread_{user_id}")
}

/// `getUnReadCntAll`: the user's unread one-to-one messages, all peers.
pub fn get_unread_cnt_all(cache: &CacheManager, user_id: u32) -> Result<u32, CacheError> {
    let mut conn = cache.get(pools::UNREAD)?;
    let counts: HashMap<String, String> =
        conn.run(|c| redis::cmd("HGETALL").arg(unread_key(user_id)).query(c))?;
    Ok(counts
        .values()
        .map(|v| v.parse::<u32>().unwrap_or(0))
        .fold(0u32, u32::saturating_add))
}
