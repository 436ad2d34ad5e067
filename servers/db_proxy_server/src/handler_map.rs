//! Command id → handler: the C++ `HandlerMap.cpp` (`CHandlerMap::Init`).
//! Handlers of later issues join the table as they are written.

use crate::business::{depart_action, login, message_counter, user_action, HandlerResult};
use crate::services::Services;
use base::pdu::ImPdu;
use std::collections::HashMap;
use tt_proto::IM::BaseDefine::{BuddyListCmdID, LoginCmdID, OtherCmdID};

/// A request handler: runs on a worker, returns the reply to send, if any.
pub type Handler = fn(&Services, &ImPdu) -> HandlerResult;

/// The table, built once at start.
pub struct HandlerMap {
    handlers: HashMap<u16, Handler>,
}

impl HandlerMap {
    /// `CHandlerMap::Init`.
    pub fn new() -> HandlerMap {
        let entries: [(u16, Handler); 9] = [
            (OtherCmdID::CID_OTHER_VALIDATE_REQ as u16, login::do_login),
            (
                LoginCmdID::CID_LOGIN_REQ_PUSH_SHIELD as u16,
                user_action::do_push_shield,
            ),
            (
                LoginCmdID::CID_LOGIN_REQ_QUERY_PUSH_SHIELD as u16,
                user_action::do_query_push_shield,
            ),
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
            (
                LoginCmdID::CID_LOGIN_REQ_DEVICETOKEN as u16,
                message_counter::set_devices_token,
            ),
            (
                OtherCmdID::CID_OTHER_GET_DEVICE_TOKEN_REQ as u16,
                message_counter::get_devices_token,
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
