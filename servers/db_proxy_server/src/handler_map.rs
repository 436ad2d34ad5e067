//! Command id → handler: the C++ `HandlerMap.cpp` (`CHandlerMap::Init`).

use crate::business::{
    depart_action, file_action, group_action, login, message_content, message_counter,
    recent_session, user_action, HandlerResult,
};
use crate::services::Services;
use base::pdu::ImPdu;
use std::collections::HashMap;
use tt_proto::cid;

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
            (cid::OTHER_VALIDATE_REQ, login::do_login),
            (cid::LOGIN_REQ_PUSH_SHIELD, user_action::do_push_shield),
            (
                cid::LOGIN_REQ_QUERY_PUSH_SHIELD,
                user_action::do_query_push_shield,
            ),
            // Recent sessions.
            (
                cid::BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST,
                recent_session::get_recent_session,
            ),
            (
                cid::BUDDY_LIST_REMOVE_SESSION_REQ,
                recent_session::delete_recent_session,
            ),
            // Users.
            (
                cid::BUDDY_LIST_USER_INFO_REQUEST,
                user_action::get_user_info,
            ),
            (
                cid::BUDDY_LIST_ALL_USER_REQUEST,
                user_action::get_changed_user,
            ),
            (
                cid::BUDDY_LIST_DEPARTMENT_REQUEST,
                depart_action::get_changed_depart,
            ),
            (
                cid::BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST,
                user_action::change_user_sign_info,
            ),
            // Messages.
            (cid::MSG_DATA, message_content::send_message),
            (cid::MSG_LIST_REQUEST, message_content::get_message),
            (
                cid::MSG_UNREAD_CNT_REQUEST,
                message_counter::get_unread_msg_counter,
            ),
            (cid::MSG_READ_ACK, message_counter::clear_unread_msg_counter),
            (
                cid::MSG_GET_BY_MSG_ID_REQ,
                message_content::get_message_by_id,
            ),
            (
                cid::MSG_GET_LATEST_MSG_ID_REQ,
                message_content::get_latest_msg_id,
            ),
            // Device tokens.
            (
                cid::LOGIN_REQ_DEVICETOKEN,
                message_counter::set_devices_token,
            ),
            (
                cid::OTHER_GET_DEVICE_TOKEN_REQ,
                message_counter::get_devices_token,
            ),
            // Push shields.
            (
                cid::GROUP_SHIELD_GROUP_REQUEST,
                group_action::set_group_push,
            ),
            (cid::OTHER_GET_SHIELD_REQ, group_action::get_group_push),
            // Groups.
            (
                cid::GROUP_NORMAL_LIST_REQUEST,
                group_action::get_normal_group_list,
            ),
            (cid::GROUP_INFO_REQUEST, group_action::get_group_info),
            (cid::GROUP_CREATE_REQUEST, group_action::create_group),
            (
                cid::GROUP_CHANGE_MEMBER_REQUEST,
                group_action::modify_member,
            ),
            // Offline files.
            (cid::FILE_HAS_OFFLINE_REQ, file_action::has_offline_file),
            (cid::FILE_ADD_OFFLINE_REQ, file_action::add_offline_file),
            (cid::FILE_DEL_OFFLINE_REQ, file_action::del_offline_file),
        ];
        HandlerMap {
            handlers: entries.into_iter().collect(),
        }
    }

    /// Every command with a handler.
    pub fn commands(&self) -> impl Iterator<Item = u16> + '_ {
        self.handlers.keys().copied()
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
