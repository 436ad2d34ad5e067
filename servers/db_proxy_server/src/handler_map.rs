//! Command id → handler: the C++ `HandlerMap.cpp` (`CHandlerMap::Init`).

use crate::business::{
    depart_action, file_action, group_action, login, message_content, message_counter,
    recent_session, user_action, HandlerResult,
};
use crate::services::Services;
use base::pdu::ImPdu;
use std::collections::HashMap;
use tt_proto::IM::BaseDefine::{
    BuddyListCmdID, FileCmdID, GroupCmdID, LoginCmdID, MessageCmdID, OtherCmdID,
};

/// A request handler: runs on a worker, returns the reply to send, if any.
pub type Handler = fn(&Services, &ImPdu) -> HandlerResult;

/// The table, built once at start.
pub struct HandlerMap {
    handlers: HashMap<u16, Handler>,
}

impl HandlerMap {
    /// `CHandlerMap::Init`, in its order.
    pub fn new() -> HandlerMap {
        let entries: [(u16, Handler); 26] = [
            // Login validation.
            (OtherCmdID::CID_OTHER_VALIDATE_REQ as u16, login::do_login),
            (
                LoginCmdID::CID_LOGIN_REQ_PUSH_SHIELD as u16,
                user_action::do_push_shield,
            ),
            (
                LoginCmdID::CID_LOGIN_REQ_QUERY_PUSH_SHIELD as u16,
                user_action::do_query_push_shield,
            ),
            // Recent sessions.
            (
                BuddyListCmdID::CID_BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST as u16,
                recent_session::get_recent_session,
            ),
            (
                BuddyListCmdID::CID_BUDDY_LIST_REMOVE_SESSION_REQ as u16,
                recent_session::delete_recent_session,
            ),
            // Users.
            (
                BuddyListCmdID::CID_BUDDY_LIST_USER_INFO_REQUEST as u16,
                user_action::get_user_info,
            ),
            (
                BuddyListCmdID::CID_BUDDY_LIST_ALL_USER_REQUEST as u16,
                user_action::get_changed_user,
            ),
            (
                BuddyListCmdID::CID_BUDDY_LIST_DEPARTMENT_REQUEST as u16,
                depart_action::get_changed_depart,
            ),
            (
                BuddyListCmdID::CID_BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST as u16,
                user_action::change_user_sign_info,
            ),
            // Messages.
            (
                MessageCmdID::CID_MSG_DATA as u16,
                message_content::send_message,
            ),
            (
                MessageCmdID::CID_MSG_LIST_REQUEST as u16,
                message_content::get_message,
            ),
            (
                MessageCmdID::CID_MSG_UNREAD_CNT_REQUEST as u16,
                message_counter::get_unread_msg_counter,
            ),
            (
                MessageCmdID::CID_MSG_READ_ACK as u16,
                message_counter::clear_unread_msg_counter,
            ),
            (
                MessageCmdID::CID_MSG_GET_BY_MSG_ID_REQ as u16,
                message_content::get_message_by_id,
            ),
            (
                MessageCmdID::CID_MSG_GET_LATEST_MSG_ID_REQ as u16,
                message_content::get_latest_msg_id,
            ),
            // Device tokens.
            (
                LoginCmdID::CID_LOGIN_REQ_DEVICETOKEN as u16,
                message_counter::set_devices_token,
            ),
            (
                OtherCmdID::CID_OTHER_GET_DEVICE_TOKEN_REQ as u16,
                message_counter::get_devices_token,
            ),
            // Push shields.
            (
                GroupCmdID::CID_GROUP_SHIELD_GROUP_REQUEST as u16,
                group_action::set_group_push,
            ),
            (
                OtherCmdID::CID_OTHER_GET_SHIELD_REQ as u16,
                group_action::get_group_push,
            ),
            // Groups.
            (
                GroupCmdID::CID_GROUP_NORMAL_LIST_REQUEST as u16,
                group_action::get_normal_group_list,
            ),
            (
                GroupCmdID::CID_GROUP_INFO_REQUEST as u16,
                group_action::get_group_info,
            ),
            (
                GroupCmdID::CID_GROUP_CREATE_REQUEST as u16,
                group_action::create_group,
            ),
            (
                GroupCmdID::CID_GROUP_CHANGE_MEMBER_REQUEST as u16,
                group_action::modify_member,
            ),
            // Offline files.
            (
                FileCmdID::CID_FILE_HAS_OFFLINE_REQ as u16,
                file_action::has_offline_file,
            ),
            (
                FileCmdID::CID_FILE_ADD_OFFLINE_REQ as u16,
                file_action::add_offline_file,
            ),
            (
                FileCmdID::CID_FILE_DEL_OFFLINE_REQ as u16,
                file_action::del_offline_file,
            ),
        ];
        HandlerMap {
            handlers: entries.into_iter().collect(),
        }
    }

    /// `GetHandler`.
    pub fn get(&self, command_id: u16) -> Option<Handler> {
        self.handlers.get(&command_id).copied()
    }
}

impl Default for HandlerMap {
    fn default() -> Self {
        Self::new()
    }
}
