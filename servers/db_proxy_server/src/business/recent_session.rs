//! Recent-session handlers: the C++ `business/RecentSession.cpp`
//! (`getRecentSession`, `deleteRecentSession`).

use super::{or_failed, reply, session_model, user_model, HandlerError, HandlerResult};
use crate::services::Services;
use base::pdu::ImPdu;
use tt_proto::IM::Buddy::{
    IMRecentContactSessionReq, IMRecentContactSessionRsp, IMRemoveSessionReq, IMRemoveSessionRsp,
};

/// `CID_BUDDY_LIST_RECENT_CONTACT_SESSION_REQUEST`: sessions changed since
/// the client's time, each with its newest message.
pub fn get_recent_session(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMRecentContactSessionReq = req.msg()?;
    let list = session_model::get_recent_session(services, msg.user_id, msg.latest_update_time)?;
    log::info!(
        "user {} since {}: {} sessions",
        msg.user_id,
        msg.latest_update_time,
        list.len()
    );
    let rsp = IMRecentContactSessionRsp {
        user_id: msg.user_id,
        contact_session_list: list,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_BUDDY_LIST_REMOVE_SESSION_REQ`: removes a session and clears its
/// unread count; result 0 on success, 1 when there was no such session.
pub fn delete_recent_session(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMRemoveSessionReq = req.msg()?;
    let session_type = msg.session_type as u32;
    let remove = || -> Result<bool, HandlerError> {
        let Some(id) = session_model::get_session_id(
            &services.db,
            msg.user_id,
            msg.session_id,
            session_type,
            false,
        )?
        else {
            return Ok(false);
        };
        let removed = session_model::remove_session(&services.db, id, base::tick::unix_time())?;
        if msg.session_type == tt_proto::IM::BaseDefine::SessionType::SESSION_TYPE_SINGLE {
            // The next message between them sets the session active again.
            services.pairs.forget(msg.user_id, msg.session_id);
        }
        if removed {
            user_model::clear_user_counter(
                &services.cache,
                msg.user_id,
                msg.session_id,
                msg.session_type,
            )?;
        }
        Ok(removed)
    };
    let removed = or_failed("remove session", remove(), false)?;
    log::info!(
        "user {} removes session {}: {}",
        msg.user_id,
        msg.session_id,
        if removed { "success" } else { "failed" }
    );
    let rsp = IMRemoveSessionRsp {
        user_id: msg.user_id,
        result_code: u32::from(!removed),
        session_type: msg.session_type,
        session_id: msg.session_id,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}
