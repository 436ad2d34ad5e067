//! Message handlers: the C++ `business/MessageContent.cpp` (`getMessage`,
//! `sendMessage`, `getMessageById`, `getLatestMsgId`).
//!
//! `CID_MSG_DATA` is acknowledged with the stored message's id only once
//! the row is committed. Where the C++ ignores a failed insert and still
//! answers with a fresh id (so the sender's client is told the message was
//! delivered), we answer with `msg_id` 0: the reply the C++ itself gives a
//! message it does not store (one to oneself), which the msg_server reads
//! as "write db failed" and does not acknowledge to the client.

use super::group_message_model::{self, GroupSend};
use super::{message_model, reply, HandlerResult};
use crate::services::Services;
use base::pdu::ImPdu;
use tt_proto::IM::BaseDefine::{MsgType, SessionType};
use tt_proto::IM::Message::{
    IMGetLatestMsgIdReq, IMGetLatestMsgIdRsp, IMGetMsgByIdReq, IMGetMsgByIdRsp, IMGetMsgListReq,
    IMGetMsgListRsp, IMMsgData,
};

/// `CID_MSG_LIST_REQUEST`: a page of a session's messages, newest first.
pub fn get_message(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMGetMsgListReq = req.msg()?;
    let list = match msg.session_type {
        SessionType::SESSION_TYPE_SINGLE => message_model::get_message(
            services,
            msg.user_id,
            msg.session_id,
            msg.msg_id_begin,
            msg.msg_cnt,
        )?,
        SessionType::SESSION_TYPE_GROUP => {
            if super::group_model::is_in_group(services, msg.user_id, msg.session_id)? {
                group_message_model::get_message(
                    services,
                    msg.user_id,
                    msg.session_id,
                    msg.msg_id_begin,
                    msg.msg_cnt,
                )?
            } else {
                Vec::new()
            }
        }
    };
    log::info!(
        "user {} session {} from msg {} count {}: {} messages",
        msg.user_id,
        msg.session_id,
        msg.msg_id_begin,
        msg.msg_cnt,
        list.len()
    );
    let rsp = IMGetMsgListRsp {
        user_id: msg.user_id,
        session_type: msg.session_type,
        session_id: msg.session_id,
        msg_id_begin: msg.msg_id_begin,
        msg_list: list,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// Why a text is refused before anything is written.
pub(super) fn text_refused(data: &[u8]) -> Option<&'static str> {
    match std::str::from_utf8(data) {
        Err(_) => Some("not UTF-8"),
        Ok(s) if s.chars().count() > message_model::MAX_CONTENT_CHARS => {
            Some("longer than the content column")
        }
        Ok(_) => None,
    }
}

/// `CID_MSG_DATA`: stores a message and answers with it and its id (0 when
/// not stored). As in the C++: an empty message, an unknown group or a
/// sender outside the group gets no answer at all.
pub fn send_message(services: &Services, req: &ImPdu) -> HandlerResult {
    let mut msg: IMMsgData = req.msg()?;
    let (from_id, to_id) = (msg.from_user_id, msg.to_session_id);
    if msg.msg_data.is_empty() {
        log::info!("empty message {from_id} -> {to_id}, dropped");
        return Ok(None);
    }
    let now = base::tick::unix_time();
    let is_text = matches!(
        msg.msg_type,
        MsgType::MSG_TYPE_SINGLE_TEXT | MsgType::MSG_TYPE_GROUP_TEXT
    );
    let refused = if is_text {
        text_refused(&msg.msg_data)
    } else {
        None
    };
    let msg_id = match (refused, msg.msg_type) {
        (Some(why), _) => {
            log::info!("message {from_id} -> {to_id} refused: {why}");
            // The group checks still decide whether the C++ would answer.
            if matches!(msg.msg_type, MsgType::MSG_TYPE_GROUP_TEXT)
                && !super::group_model::is_in_group(services, from_id, to_id)?
            {
                return Ok(None);
            }
            0
        }
        (None, MsgType::MSG_TYPE_GROUP_TEXT | MsgType::MSG_TYPE_GROUP_AUDIO) => {
            match group_message_model::send_message(services, &msg, now) {
                Ok(GroupSend::Stored(id)) => id,
                Ok(GroupSend::Refused) => 0,
                Ok(GroupSend::NoReply) => return Ok(None),
                Err(e) => {
                    log::error!("group message {from_id} -> {to_id} not stored: {e}");
                    0
                }
            }
        }
        (None, MsgType::MSG_TYPE_SINGLE_TEXT | MsgType::MSG_TYPE_SINGLE_AUDIO) => {
            if from_id == to_id {
                log::info!("message to oneself ({from_id}), not stored");
                0
            } else {
                match message_model::send_message(services, &msg, now) {
                    Ok(Some(id)) => id,
                    Ok(None) => 0,
                    Err(e) => {
                        log::error!("message {from_id} -> {to_id} not stored: {e}");
                        0
                    }
                }
            }
        }
    };
    log::info!(
        "message {from_id} -> {to_id} type {:?}: msg id {msg_id}",
        msg.msg_type
    );
    msg.msg_id = msg_id;
    reply(req, &msg)
}

/// `CID_MSG_GET_BY_MSG_ID_REQ`: the listed messages of a session.
pub fn get_message_by_id(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMGetMsgByIdReq = req.msg()?;
    let list = match msg.session_type {
        SessionType::SESSION_TYPE_SINGLE => message_model::get_msg_by_msg_id(
            services,
            msg.user_id,
            msg.session_id,
            &msg.msg_id_list,
        )?,
        SessionType::SESSION_TYPE_GROUP => group_message_model::get_msg_by_msg_id(
            services,
            msg.user_id,
            msg.session_id,
            &msg.msg_id_list,
        )?,
    };
    log::info!(
        "user {} session {}: {} of {} messages by id",
        msg.user_id,
        msg.session_id,
        list.len(),
        msg.msg_id_list.len()
    );
    let rsp = IMGetMsgByIdRsp {
        user_id: msg.user_id,
        session_type: msg.session_type,
        session_id: msg.session_id,
        msg_list: list,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_MSG_GET_LATEST_MSG_ID_REQ`: the id of a session's newest message (0
/// when there is none).
pub fn get_latest_msg_id(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMGetLatestMsgIdReq = req.msg()?;
    let last = match msg.session_type {
        SessionType::SESSION_TYPE_SINGLE => {
            message_model::get_last_msg(services, msg.user_id, msg.session_id)?
        }
        SessionType::SESSION_TYPE_GROUP => {
            group_message_model::get_last_msg(services, msg.session_id)?
        }
    };
    let latest_msg_id = last.map_or(0, |l| l.msg_id);
    log::info!(
        "user {} session {}: latest msg id {latest_msg_id}",
        msg.user_id,
        msg.session_id
    );
    let rsp = IMGetLatestMsgIdRsp {
        user_id: msg.user_id,
        session_type: msg.session_type,
        session_id: msg.session_id,
        latest_msg_id,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}
