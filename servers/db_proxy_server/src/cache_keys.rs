//! Every Redis key db_proxy reads or writes: the C++ `business/Common.h`
//! (the group counter suffixes and field), plus the key literals the C++
//! spells inline in `MessageModel.cpp`, `GroupMessageModel.cpp`,
//! `GroupModel.cpp`, `MessageCounter.cpp` and `SyncCenter.cpp`.
//!
//! The names are the C++'s, byte for byte: a C++ db_proxy_server and ours
//! share one Redis (the README's "side by side" run carried counters over).
//! Nothing else in the crate writes a key name; the pool each key lives in
//! is in [`crate::cache_pool::pools`].
//!
//! | key | pool | type | holds |
//! |---|---|---|---|
//! | `unread_<user>` | `unread` | hash | peer user id → unread count |
//! | `msg_id_<relation>` | `unread` | string | last message id of a pair |
//! | `group_msg_id_<group>` | `unread` | string | last message id of a group |
//! | `<group>_im_group_msg` | `unread` | hash | field `count`: the group's messages |
//! | `<user>_<group>_im_user_group` | `unread` | hash | field `count`: how many the user has read |
//! | `total_user_updated`, `total_user_update`, `last_update_group` | `unread` | string | sync times |
//! | `group_member_<group>` | `group_member` | hash | user id → join time |
//! | `group_set_<group>` | `group_set` | hash | field `<user>_1`: push shield |
//! | `device_<user>` | `token` | string | `ios:<token>`, `android:<token>` or the token |
//! | `device_<token>` | `token` | string | the user id of the token |
//!
//! Difference from the C++: none in the names; the C++ writes the
//! misspelt [`TOTAL_USER_UPDATE_CPP`] only, we write it beside
//! [`TOTAL_USER_UPDATED`] (see `sync_center`).

/// One user's unread counts by peer: `unread_<user>` (`MessageModel.cpp`).
pub fn unread(user_id: u32) -> String {
    format!("unread_{user_id}")
}

/// The message-id counter of a one-to-one pair: `msg_id_<relation>`
/// (`CMessageModel::getMsgId`).
pub fn pair_msg_id(relate_id: u32) -> String {
    format!("msg_id_{relate_id}")
}

/// The message-id counter of a group: `group_msg_id_<group>`
/// (`CGroupMessageModel::getMsgId`).
pub fn group_msg_id(group_id: u32) -> String {
    format!("group_msg_id_{group_id}")
}

/// `GROUP_TOTAL_MSG_COUNTER_REDIS_KEY_SUFFIX`: `<group>_im_group_msg`
/// holds the group's message count in [`GROUP_COUNTER_FIELD`].
pub fn group_msg_count(group_id: u32) -> String {
    format!("{group_id}_im_group_msg")
}

/// `GROUP_USER_MSG_COUNTER_REDIS_KEY_SUFFIX`: `<user>_<group>_im_user_group`
/// holds how many of the group's messages the user has read, in
/// [`GROUP_COUNTER_FIELD`].
pub fn user_group_read_count(user_id: u32, group_id: u32) -> String {
    format!("{user_id}_{group_id}_im_user_group")
}

/// `GROUP_COUNTER_SUBKEY_COUNTER_FIELD`: the field of both group counters.
pub const GROUP_COUNTER_FIELD: &str = "count";

/// A group's members: `group_member_<group>`, user id → join time
/// (`GroupModel.cpp`).
pub fn group_member(group_id: u32) -> String {
    format!("group_member_{group_id}")
}

/// A group's settings: `group_set_<group>` (`GroupModel.cpp`).
pub fn group_set(group_id: u32) -> String {
    format!("group_set_{group_id}")
}

/// `IM_GROUP_SETTING_PUSH`: the number of the push-shield setting.
pub const IM_GROUP_SETTING_PUSH: u32 = 1;

/// The field of a user's push shield in [`group_set`]: `<user>_1`.
pub fn group_push_field(user_id: u32) -> String {
    format!("{user_id}_{IM_GROUP_SETTING_PUSH}")
}

/// A user's push token: `device_<user>` (`MessageCounter.cpp`).
pub fn user_device(user_id: u32) -> String {
    format!("device_{user_id}")
}

/// The user a push token belongs to: `device_<token>` (`MessageCounter.cpp`).
pub fn token_owner(token: &str) -> String {
    format!("device_{token}")
}

/// When any user profile last changed (`CSyncCenter`, the key it reads).
pub const TOTAL_USER_UPDATED: &str = "total_user_updated";

/// The key the C++ `CSyncCenter::updateTotalUpdate` writes by mistake;
/// kept in step for C++ tools.
pub const TOTAL_USER_UPDATE_CPP: &str = "total_user_update";

/// Up to when group chats are folded into recent sessions (`CSyncCenter`).
pub const LAST_UPDATE_GROUP: &str = "last_update_group";

#[cfg(test)]
mod tests {
    use super::*;

    /// The names a C++ db_proxy_server reads: a rename here would split
    /// the data of a mixed cluster.
    #[test]
    fn names_are_the_cpp_ones() {
        assert_eq!(unread(7), "unread_7");
        assert_eq!(pair_msg_id(3), "msg_id_3");
        assert_eq!(group_msg_id(3), "group_msg_id_3");
        assert_eq!(group_msg_count(12), "12_im_group_msg");
        assert_eq!(user_group_read_count(5, 12), "5_12_im_user_group");
        assert_eq!(group_member(12), "group_member_12");
        assert_eq!(group_set(12), "group_set_12");
        assert_eq!(group_push_field(5), "5_1");
        assert_eq!(user_device(5), "device_5");
        assert_eq!(token_owner("abc"), "device_abc");
    }
}
