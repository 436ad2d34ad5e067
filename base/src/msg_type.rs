//! Message-type classes: the C++ `CHECK_MSG_TYPE_GROUP` macro
//! (`ImPduBase.h`), which msg_server (store, relay, push) and the client
//! library both apply to `IM.BaseDefine.MsgType` values.

use tt_proto::IM::BaseDefine::MsgType;

/// Group text and group audio go to a group's members; every other type
/// to one user.
pub fn is_group_msg(t: MsgType) -> bool {
    matches!(
        t,
        MsgType::MSG_TYPE_GROUP_TEXT | MsgType::MSG_TYPE_GROUP_AUDIO
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(is_group_msg(MsgType::MSG_TYPE_GROUP_TEXT));
        assert!(is_group_msg(MsgType::MSG_TYPE_GROUP_AUDIO));
        assert!(!is_group_msg(MsgType::MSG_TYPE_SINGLE_TEXT));
        assert!(!is_group_msg(MsgType::MSG_TYPE_SINGLE_AUDIO));
    }
}
