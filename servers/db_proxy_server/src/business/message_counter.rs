//! Unread counters and device tokens: the C++ `business/MessageCounter.cpp`
//! (`getUnreadMsgCounter`, `clearUnreadMsgCounter`, `setDevicesToken`,
//! `getDevicesToken`).
//!
//! Redis layout (pool `token`), as the C++: `device_<user>` holds
//! `ios:<token>`, `android:<token>` or the bare token; `device_<token>`
//! holds the user id, and is emptied when the user moves to another token.

use super::{group_message_model, message_model, reply, user_model, HandlerResult};
use crate::cache_keys;
use crate::cache_pool::pools;
use crate::services::Services;
use base::pdu::ImPdu;
use tt_proto::IM::BaseDefine::{ClientType, UserTokenInfo};
use tt_proto::IM::Login::{IMDeviceTokenReq, IMDeviceTokenRsp};
use tt_proto::IM::Message::{IMMsgDataReadAck, IMUnreadMsgCntReq, IMUnreadMsgCntRsp};
use tt_proto::IM::Server::{IMGetDeviceTokenReq, IMGetDeviceTokenRsp};

/// `CID_LOGIN_REQ_DEVICETOKEN`: remember a user's push token.
pub fn set_devices_token(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMDeviceTokenReq = req.msg()?;
    let value = match msg.client_type {
        Some(ClientType::CLIENT_TYPE_IOS) => format!("ios:{}", msg.device_token),
        Some(ClientType::CLIENT_TYPE_ANDROID) => format!("android:{}", msg.device_token),
        _ => msg.device_token.clone(),
    };
    let user_key = cache_keys::user_device(msg.user_id);
    let mut conn = services.cache.get(pools::TOKEN)?;
    let old: Option<String> = conn.run(|c| redis::cmd("GET").arg(&user_key).query(c))?;
    if let Some((_, old_token)) = old.as_deref().and_then(|v| v.split_once(':')) {
        let old_key = cache_keys::token_owner(old_token);
        let owner: Option<String> = conn.run(|c| redis::cmd("GET").arg(&old_key).query(c))?;
        if owner.is_some_and(|o| !o.is_empty()) {
            conn.run(|c| redis::cmd("SET").arg(&old_key).arg("").query::<()>(c))?;
        }
    }
    conn.run(|c| {
        redis::pipe()
            .cmd("SET")
            .arg(&user_key)
            .arg(&value)
            .ignore()
            .cmd("SET")
            .arg(cache_keys::token_owner(&msg.device_token))
            .arg(msg.user_id.to_string())
            .ignore()
            .query::<()>(c)
    })?;
    log::info!("user {} set a device token", msg.user_id);
    let rsp = IMDeviceTokenRsp {
        user_id: msg.user_id,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// Local hour of the day, for the C++'s 22:00-07:00 quiet hours.
fn local_hour(now: i64) -> u32 {
    let t: libc::time_t = now as libc::time_t;
    // SAFETY: localtime_r only writes the struct we own; zeroed tm is valid.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        tm.tm_hour as u32
    } else {
        12
    }
}

/// `CID_OTHER_GET_DEVICE_TOKEN_REQ`: push tokens of the listed users, with
/// their unread totals. iOS users who set do-not-disturb are left out
/// between 22:00 and 07:00 (local time), as the C++ does.
pub fn get_devices_token(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMGetDeviceTokenReq = req.msg()?;
    let hour = local_hour(base::tick::unix_time() as i64);
    let quiet_hours = hour >= 22 || hour <= 7;
    let keys: Vec<String> = msg
        .user_id
        .iter()
        .map(|&id| cache_keys::user_device(id))
        .collect();
    // MGET in chunks: one command with every key of a long list would make
    // Redis build (and us read) one huge reply.
    let mut values: Vec<Option<String>> = Vec::with_capacity(keys.len());
    if !keys.is_empty() {
        let mut conn = services.cache.get(pools::TOKEN)?;
        for chunk in keys.chunks(super::IN_CHUNK) {
            let part: Vec<Option<String>> = conn.run(|c| redis::cmd("MGET").arg(chunk).query(c))?;
            values.extend(part);
        }
    }
    let mut infos = Vec::new();
    for (&user_id, value) in msg.user_id.iter().zip(values) {
        let Some(value) = value else { continue };
        let Some((kind, token)) = value.split_once(':') else {
            log::debug!("user {user_id}: token without a client type, skipped");
            continue;
        };
        let user_type = match kind {
            "ios" => {
                if quiet_hours && user_model::get_push_shield(&services.db, user_id)? == Some(1) {
                    continue;
                }
                ClientType::CLIENT_TYPE_IOS
            }
            "android" => ClientType::CLIENT_TYPE_ANDROID,
            _ => {
                log::debug!("user {user_id}: unknown client type {kind:?}");
                continue;
            }
        };
        let push_count = message_model::get_unread_cnt_all(&services.cache, user_id)?
            .saturating_add(group_message_model::get_unread_cnt_all(services, user_id)?);
        infos.push(UserTokenInfo {
            user_id,
            user_type,
            token: token.to_string(),
            push_count,
            push_type: 1,
        });
    }
    let rsp = IMGetDeviceTokenRsp {
        user_token_info: infos,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_MSG_UNREAD_CNT_REQUEST`: the user's unread counts, one-to-one then
/// groups, each with the session's newest message.
pub fn get_unread_msg_counter(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMUnreadMsgCntReq = req.msg()?;
    let mut total = 0u32;
    let mut list = Vec::new();
    message_model::get_unread_msg_count(services, msg.user_id, &mut total, &mut list)?;
    group_message_model::get_unread_msg_count(services, msg.user_id, &mut total, &mut list)?;
    log::info!(
        "user {}: {} sessions with unread messages, {total} in all",
        msg.user_id,
        list.len()
    );
    let rsp = IMUnreadMsgCntRsp {
        user_id: msg.user_id,
        total_cnt: total,
        unreadinfo_list: list,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_MSG_READ_ACK`: the user has read the session; no reply.
pub fn clear_unread_msg_counter(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMMsgDataReadAck = req.msg()?;
    user_model::clear_user_counter(
        &services.cache,
        msg.user_id,
        msg.session_id,
        msg.session_type,
    )?;
    log::info!(
        "user {} read session {} ({:?})",
        msg.user_id,
        msg.session_id,
        msg.session_type
    );
    Ok(None)
}
