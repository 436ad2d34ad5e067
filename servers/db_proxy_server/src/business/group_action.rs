//! Group handlers: the C++ `business/GroupAction.cpp` (`createGroup`,
//! `getNormalGroupList`, `getGroupInfo`, `modifyMember`, `setGroupPush`,
//! `getGroupPush`).

use super::group_model;
use super::{or_failed, reply, HandlerResult};
use crate::services::Services;
use base::pdu::ImPdu;
use std::collections::{BTreeMap, BTreeSet};
use tt_proto::IM::BaseDefine::GroupType;
use tt_proto::IM::Group::{
    IMGroupChangeMemberReq, IMGroupChangeMemberRsp, IMGroupCreateReq, IMGroupCreateRsp,
    IMGroupInfoListReq, IMGroupInfoListRsp, IMGroupShieldReq, IMGroupShieldRsp,
    IMNormalGroupListReq, IMNormalGroupListRsp,
};
use tt_proto::IM::Server::{IMGroupGetShieldReq, IMGroupGetShieldRsp};

/// `CID_GROUP_CREATE_REQUEST`: a normal or temporary group with the listed
/// members; result 0 with the new id, or 1 (empty name or member list).
pub fn create_group(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMGroupCreateReq = req.msg()?;
    let members: BTreeSet<u32> = msg.member_id_list.iter().copied().collect();
    let created = group_model::create_group(
        services,
        msg.user_id,
        &msg.group_name,
        &msg.group_avatar,
        msg.group_type,
        &members,
    );
    let group_id = or_failed("create group", created, None)?;
    log::info!(
        "user {} creates group {:?} ({:?}, {} members): {group_id:?}",
        msg.user_id,
        msg.group_name,
        msg.group_type,
        members.len()
    );
    let rsp = IMGroupCreateRsp {
        user_id: msg.user_id,
        result_code: u32::from(group_id.is_none()),
        group_id,
        group_name: msg.group_name,
        user_id_list: members.into_iter().collect(),
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_GROUP_NORMAL_LIST_REQUEST`: ids and versions of the user's normal groups.
pub fn get_normal_group_list(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMNormalGroupListReq = req.msg()?;
    let groups =
        group_model::get_user_group(&services.db, msg.user_id, GroupType::GROUP_TYPE_NORMAL)?;
    log::info!("user {}: {} normal groups", msg.user_id, groups.len());
    let rsp = IMNormalGroupListRsp {
        user_id: msg.user_id,
        group_version_list: groups,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_GROUP_INFO_REQUEST`: details of the listed groups the client holds
/// an older version of.
pub fn get_group_info(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMGroupInfoListReq = req.msg()?;
    // One entry per group (the last version given wins, as in the C++ map).
    let mut requested: BTreeMap<u32, u32> = msg
        .group_version_list
        .iter()
        .map(|v| (v.group_id, v.version))
        .collect();
    let ids: BTreeSet<u32> = requested.keys().copied().collect();
    let existing = group_model::load_members_many(services, &ids)?;
    requested.retain(|id, _| existing.contains(id));
    let groups = group_model::get_group_info(services, &requested)?;
    log::info!(
        "user {} asks {} groups: {} changed",
        msg.user_id,
        msg.group_version_list.len(),
        groups.len()
    );
    let rsp = IMGroupInfoListRsp {
        user_id: msg.user_id,
        group_info_list: groups,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_GROUP_CHANGE_MEMBER_REQUEST`: adds or removes members; on success
/// the reply lists who changed and who is in the group now (the msg_server
/// notifies both). An unknown group answers result 1 (the C++ sends no
/// reply, so http_msg_server's caller waited for its 60 s timeout).
pub fn modify_member(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMGroupChangeMemberReq = req.msg()?;
    let mut users: BTreeSet<u32> = msg.member_id_list.iter().copied().collect();
    let current = if group_model::load_members(services, msg.group_id)? {
        let changed = group_model::modify_group_member(
            services,
            msg.user_id,
            msg.group_id,
            msg.change_type,
            &mut users,
        );
        or_failed("change group members", changed, None)?
    } else {
        log::info!(
            "user {} changes unknown group {}",
            msg.user_id,
            msg.group_id
        );
        None
    };
    let ok = current.is_some();
    log::info!(
        "user {} {:?} group {}: result {}, {} changed",
        msg.user_id,
        msg.change_type,
        msg.group_id,
        u32::from(!ok),
        users.len()
    );
    let rsp = IMGroupChangeMemberRsp {
        user_id: msg.user_id,
        change_type: msg.change_type,
        result_code: u32::from(!ok),
        group_id: msg.group_id,
        cur_user_id_list: current.unwrap_or_default(),
        chg_user_id_list: if ok {
            users.into_iter().collect()
        } else {
            Vec::new()
        },
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_GROUP_SHIELD_GROUP_REQUEST`: a member shields (1) or unshields (0)
/// the group's pushes; result 1 for a non-member. No reply for an unknown group.
pub fn set_group_push(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMGroupShieldReq = req.msg()?;
    if !group_model::load_members(services, msg.group_id)? {
        log::info!("shield of unknown group {}", msg.group_id);
        return Ok(None);
    }
    let set = group_model::set_push(services, msg.user_id, msg.group_id, msg.shield_status);
    let ok = or_failed("set group shield", set, false)?;
    log::info!(
        "user {} group {} shield {}: result {}",
        msg.user_id,
        msg.group_id,
        msg.shield_status,
        u32::from(!ok)
    );
    let rsp = IMGroupShieldRsp {
        user_id: msg.user_id,
        group_id: msg.group_id,
        result_code: u32::from(!ok),
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_OTHER_GET_SHIELD_REQ`: the listed users' push shields for a group.
pub fn get_group_push(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMGroupGetShieldReq = req.msg()?;
    if !group_model::load_members(services, msg.group_id)? {
        log::info!("shields of unknown group {}", msg.group_id);
        return Ok(None);
    }
    let list = group_model::get_push(&services.cache, msg.group_id, &msg.user_id)?;
    log::info!("group {}: {} shield states", msg.group_id, list.len());
    let rsp = IMGroupGetShieldRsp {
        group_id: msg.group_id,
        shield_status_list: list,
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}
