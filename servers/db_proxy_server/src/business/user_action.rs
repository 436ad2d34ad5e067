//! User handlers: the C++ `business/UserAction.cpp` (`getUserInfo`,
//! `getChangedUser`, `changeUserSignInfo`, `doPushShield`,
//! `doQueryPushShield`). Replies carry the request's seq and attach data.

use super::{or_failed, reply, user_model, HandlerResult};
use crate::services::Services;
use base::pdu::ImPdu;
use tt_proto::IM::Buddy::{
    IMAllUserReq, IMAllUserRsp, IMChangeSignInfoReq, IMChangeSignInfoRsp, IMUsersInfoReq,
    IMUsersInfoRsp,
};
use tt_proto::IM::Login::{
    IMPushShieldReq, IMPushShieldRsp, IMQueryPushShieldReq, IMQueryPushShieldRsp,
};

/// `CID_BUDDY_LIST_USER_INFO_REQUEST`: profiles of the listed users.
pub fn get_user_info(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMUsersInfoReq = req.msg()?;
    let users = user_model::get_users(&services.db, &msg.user_id_list)?;
    log::debug!(
        "user {} asks {} profiles",
        msg.user_id,
        msg.user_id_list.len()
    );
    let rsp = IMUsersInfoRsp {
        user_id: msg.user_id,
        user_info_list: users,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_BUDDY_LIST_ALL_USER_REQUEST`: users changed since the client's
/// `latest_update_time`, looked up only when the sync center says something
/// changed since then; the reply carries the newest update time seen.
pub fn get_changed_user(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMAllUserReq = req.msg()?;
    let mut latest = msg.latest_update_time;
    let mut users = Vec::new();
    if services.sync.last_update() > msg.latest_update_time {
        let (ids, newest) = user_model::get_changed_ids(&services.db, msg.latest_update_time)?;
        latest = newest;
        users = user_model::get_users(&services.db, &ids)?;
    }
    log::debug!(
        "user {}: {} users changed since {}",
        msg.user_id,
        users.len(),
        msg.latest_update_time
    );
    let rsp = IMAllUserRsp {
        user_id: msg.user_id,
        latest_update_time: latest,
        user_list: users,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_BUDDY_LIST_CHANGE_SIGN_INFO_REQUEST`.
pub fn change_user_sign_info(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMChangeSignInfoReq = req.msg()?;
    let now = base::tick::unix_time();
    let updated = user_model::update_sign_info(&services.db, msg.user_id, &msg.sign_info, now);
    let ok = or_failed("change sign info", updated.map_err(Into::into), false)?;
    if ok {
        services.sync.update_total_update(&services.cache, now);
    }
    log::info!(
        "user {} changes sign info: {}",
        msg.user_id,
        if ok { "ok" } else { "failed" }
    );
    let rsp = IMChangeSignInfoRsp {
        user_id: msg.user_id,
        result_code: u32::from(!ok),
        sign_info: ok.then_some(msg.sign_info),
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_LOGIN_REQ_PUSH_SHIELD`: set the push do-not-disturb flag.
pub fn do_push_shield(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMPushShieldReq = req.msg()?;
    let now = base::tick::unix_time();
    let updated = user_model::update_push_shield(&services.db, msg.user_id, msg.shield_status, now);
    let ok = or_failed("set push shield", updated.map_err(Into::into), false)?;
    let rsp = IMPushShieldRsp {
        user_id: msg.user_id,
        result_code: u32::from(!ok),
        shield_status: ok.then_some(msg.shield_status),
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_LOGIN_REQ_QUERY_PUSH_SHIELD`.
pub fn do_query_push_shield(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMQueryPushShieldReq = req.msg()?;
    let read = user_model::get_push_shield(&services.db, msg.user_id);
    let status = or_failed("query push shield", read.map_err(Into::into), None)?;
    let rsp = IMQueryPushShieldRsp {
        user_id: msg.user_id,
        result_code: u32::from(status.is_none()),
        shield_status: status,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}
