//! Group commands and group messages: the C++ `GroupChat.cpp` (`CGroupChat`).
//!
//! Group requests of clients go to db_proxy and the replies back to the
//! client by attach data. A stored group message is acknowledged to its
//! sender, sent once to route_server (every other msg_server fans it out to
//! its own users) and fanned out here to every member's connections but the
//! sender's.
//!
//! Differences from the C++, on purpose:
//! - Member lists are cached ([`crate::group_cache`], whose doc lists how
//!   they are kept fresh and bounded): the C++ asks db_proxy for the member
//!   list on every group message on every msg_server. Who gets a message
//!   stays the same.
//! - Only the msg_server the message was sent to asks for pushes; the C++
//!   asks on every msg_server, pushing each offline member once per
//!   msg_server.
//! - A change-member notify reaches a user once even if it is both in the
//!   changed and in the current member list (the C++ sends it twice).
//! - The no-db_proxy replies carry the required fields the C++ leaves
//!   unset (`user_id`, `group_id`).

use crate::attach_data::{AttachData, AttachType};
use crate::group_cache::WaitingMsg;
use crate::peers::DbPick;
use crate::state::MsgState;
use base::pdu::PduError;
use base::tick::monotonic_ms;
use base::ImPdu;
use netlib::{ConnId, Reactor};
use std::collections::BTreeSet;
use tt_proto::cid;
use tt_proto::IM::BaseDefine::{GroupType, GroupVersionInfo, SessionType};
use tt_proto::IM::Group::{
    IMGroupChangeMemberNotify, IMGroupChangeMemberReq, IMGroupChangeMemberRsp, IMGroupCreateReq,
    IMGroupCreateRsp, IMGroupInfoListReq, IMGroupInfoListRsp, IMGroupShieldReq, IMGroupShieldRsp,
    IMNormalGroupListReq, IMNormalGroupListRsp,
};
use tt_proto::IM::Message::IMMsgData;
use tt_proto::IM::Server::{IMGetDeviceTokenReq, IMGroupGetShieldReq, IMGroupGetShieldRsp};

type Handled = Result<(), PduError>;

/// `service_type` of the attach data of a waiting group message stored
/// through this msg_server (0: relayed from another one). Only this
/// msg_server reads it back.
const SERVICE_TYPE_ORIGIN: u32 = 1;

/// Who gets a group message here: each member's connections, but the
/// sender's connection `from_conn`. Empty when the sender is not a member
/// (the C++ then drops the message).
pub fn fan_out_targets(
    state: &MsgState,
    members: &[u32],
    from_user: u32,
    from_conn: Option<ConnId>,
) -> Option<Vec<ConnId>> {
    if !members.contains(&from_user) {
        return None;
    }
    let mut out = Vec::new();
    for &m in members {
        if let Some(user) = state.users.get(m) {
            let except = if m == from_user { from_conn } else { None };
            out.extend(user.targets(except));
        }
    }
    Some(out)
}

/// The group commands of `CMsgConn::HandlePdu`: to db_proxy, or answered
/// at once when no db_proxy link is open.
pub fn handle_client_request(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    user_id: u32,
    pdu: ImPdu,
) -> Handled {
    macro_rules! to_db_or_answer {
        ($answer:expr) => {
            state.db.forward_or_answer(net, id, user_id, pdu, $answer)
        };
    }
    match pdu.command_id() {
        cid::GROUP_NORMAL_LIST_REQUEST => {
            to_db_or_answer!(|_: IMNormalGroupListReq| {
                IMNormalGroupListRsp {
                    user_id,
                    ..IMNormalGroupListRsp::default()
                }
            })
        }
        cid::GROUP_INFO_REQUEST => {
            to_db_or_answer!(|_: IMGroupInfoListReq| {
                IMGroupInfoListRsp {
                    user_id,
                    ..IMGroupInfoListRsp::default()
                }
            })
        }
        cid::GROUP_CREATE_REQUEST => {
            let req: IMGroupCreateReq = pdu.msg()?;
            if req.group_type == GroupType::GROUP_TYPE_NORMAL {
                log::warn!(
                    "user {user_id} may not create a normal group {:?}",
                    req.group_name
                );
                return Ok(());
            }
            to_db_or_answer!(|req: IMGroupCreateReq| {
                IMGroupCreateRsp {
                    user_id,
                    result_code: 1,
                    group_name: req.group_name,
                    ..IMGroupCreateRsp::default()
                }
            })
        }
        cid::GROUP_CHANGE_MEMBER_REQUEST => {
            to_db_or_answer!(|req: IMGroupChangeMemberReq| {
                IMGroupChangeMemberRsp {
                    user_id,
                    change_type: req.change_type,
                    result_code: 1,
                    group_id: req.group_id,
                    ..IMGroupChangeMemberRsp::default()
                }
            })
        }
        cid::GROUP_SHIELD_GROUP_REQUEST => {
            to_db_or_answer!(|req: IMGroupShieldReq| {
                IMGroupShieldRsp {
                    user_id,
                    group_id: req.group_id,
                    result_code: 1,
                    attach_data: None,
                }
            })
        }
        other => {
            log::warn!("wrong group command {other:#06x} from user {user_id}");
            Ok(())
        }
    }
}

/// The group replies of `CDBServConn::HandlePdu`.
pub fn handle_db_reply(net: &mut Reactor<MsgState>, state: &mut MsgState, pdu: ImPdu) -> Handled {
    match pdu.command_id() {
        cid::GROUP_NORMAL_LIST_RESPONSE => {
            let rsp = state.relay_to_client::<IMNormalGroupListRsp>(net, pdu)?;
            for v in &rsp.group_version_list {
                state
                    .groups
                    .observe(v.group_id, v.version, None, monotonic_ms());
            }
        }
        cid::GROUP_INFO_RESPONSE => handle_group_info_response(net, state, pdu)?,
        cid::GROUP_CREATE_RESPONSE => {
            let rsp = state.relay_to_client::<IMGroupCreateRsp>(net, pdu)?;
            log::info!(
                "group create response, user_id={}, result={}, group_id={:?}",
                rsp.user_id,
                rsp.result_code,
                rsp.group_id
            );
        }
        cid::GROUP_CHANGE_MEMBER_RESPONSE => handle_change_member_response(net, state, pdu)?,
        cid::GROUP_SHIELD_GROUP_RESPONSE => {
            state.relay_to_client::<IMGroupShieldRsp>(net, pdu)?;
        }
        other => log::warn!("db_proxy: unexpected group command {other:#06x} ignored"),
    }
    Ok(())
}

/// `HandleGroupInfoResponse`: either a client's question (relayed), or
/// the member list a group message was waiting for (fanned out).
fn handle_group_info_response(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    pdu: ImPdu,
) -> Handled {
    let rsp: IMGroupInfoListRsp = pdu.msg()?;
    let attach = match AttachData::decode(rsp.attach_data.as_deref().unwrap_or_default()) {
        Ok(a) => a,
        Err(e) => {
            log::warn!("group info response with unusable attach data dropped: {e}");
            return Ok(());
        }
    };
    if attach.pdu.is_empty() {
        for info in &rsp.group_info_list {
            state.groups.observe(
                info.group_id,
                info.version,
                Some(&info.group_member_list),
                monotonic_ms(),
            );
        }
        state.relay_to_client::<IMGroupInfoListRsp>(net, pdu)?;
        return Ok(());
    }
    let msg: IMMsgData = match tt_proto::decode(&attach.pdu) {
        Ok(m) => m,
        Err(e) => {
            log::warn!("waiting group message unusable, dropped: {e}");
            return Ok(());
        }
    };
    let Some(info) = rsp.group_info_list.into_iter().next() else {
        let dropped = state.groups.fetched(msg.to_session_id).0.len();
        log::warn!(
            "group {} unknown to db_proxy: {dropped} waiting messages dropped",
            msg.to_session_id
        );
        return Ok(());
    };
    let (queued, keep) = state.groups.fetched(info.group_id);
    if keep {
        state.groups.insert(
            info.group_id,
            info.version,
            info.group_member_list.clone(),
            monotonic_ms(),
        );
    } else {
        log::debug!(
            "group {} changed while its members were fetched: list not kept",
            info.group_id
        );
    }
    // The queue holds the message the request carried too, in arrival
    // order; an empty one means an earlier answer delivered them all.
    for w in queued {
        deliver(
            net,
            state,
            &info.group_member_list,
            &w.msg,
            w.from_conn,
            w.origin,
        );
    }
    Ok(())
}

/// Fans the stored group message `msg` out to `members` here; when this
/// msg_server is where it was sent (`origin`), asks for pushes too.
fn deliver(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    members: &[u32],
    msg: &IMMsgData,
    from_conn: Option<ConnId>,
    origin: bool,
) {
    let group_id = msg.to_session_id;
    let Some(targets) = fan_out_targets(state, members, msg.from_user_id, from_conn) else {
        log::warn!(
            "user {} is not in group {group_id}: message dropped",
            msg.from_user_id
        );
        return;
    };
    let out = match ImPdu::for_msg(0, msg) {
        Ok(out) => out,
        Err(e) => {
            log::error!("group message to {group_id} not delivered: {e}");
            return;
        }
    };
    let label = crate::metrics::msg_type_label(msg.msg_type);
    state.metrics.msgs_out.add(label, targets.len() as u64);
    for t in targets {
        let _ = net.send_pdu(t, &out);
        state.stats.down_total += 1;
    }
    if origin {
        let req = IMGroupGetShieldReq {
            group_id,
            user_id: members.to_vec(),
            attach_data: Some(out.body().to_vec()),
        };
        state.db.send_msg(net, DbPick::Other, 0, &req);
    }
}

/// Delivers `msg` if the group's members are known, else asks db_proxy
/// for them with the message waiting in the attach data.
fn fan_out_or_fetch(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    msg: IMMsgData,
    from_conn: Option<ConnId>,
    origin: bool,
) {
    let group_id = msg.to_session_id;
    let now = monotonic_ms();
    let cached = state.groups.members(group_id, now).map(<[u32]>::to_vec);
    state.groups.count_lookup(cached.is_some());
    if let Some(members) = cached {
        deliver(net, state, &members, &msg, from_conn, origin);
        return;
    }
    let waiting = WaitingMsg {
        msg,
        from_conn,
        origin,
    };
    if state.groups.wait_for_fetch(group_id, waiting.clone(), now) {
        return;
    }
    ask_members(net, state, &waiting);
}

/// Asks db_proxy for the members of `waiting`'s group, with the message in
/// the attach data (what the C++ sends, and what a C++ db_proxy echoes).
fn ask_members(net: &mut Reactor<MsgState>, state: &mut MsgState, waiting: &WaitingMsg) {
    let WaitingMsg {
        msg,
        from_conn,
        origin,
    } = waiting.clone();
    let group_id = msg.to_session_id;
    let mut attach =
        AttachData::with_pdu(AttachType::HandleAndPdu, from_conn, tt_proto::encode(&msg));
    if origin {
        attach.service_type = SERVICE_TYPE_ORIGIN;
    }
    let req = IMGroupInfoListReq {
        user_id: msg.from_user_id,
        group_version_list: vec![GroupVersionInfo {
            group_id,
            version: 0,
        }],
        attach_data: Some(attach.encode()),
    };
    if !state.db.send_msg(net, DbPick::Other, 0, &req) {
        log::warn!("no db_proxy: group {group_id} members not asked; retried later");
    }
}

/// A db_proxy link closed: member lists asked on it may never come, so
/// every fetch under way is asked again (its messages stay queued).
pub fn refetch_pending(net: &mut Reactor<MsgState>, state: &mut MsgState) {
    for waiting in state.groups.refetch_all(monotonic_ms()) {
        ask_members(net, state, &waiting);
    }
}

/// The once-a-second sweep of the group cache at `now`: old member lists
/// are forgotten, and the messages that waited too long for theirs
/// ([`crate::group_cache::MAX_WAIT_MS`]) are dropped with a log line. Their
/// senders already have their acks and nobody else is sent anything: what
/// a C++ msg_server does when db_proxy never answers a member list request
/// (the members find the message in their unread counts and history).
pub fn expire_waits(state: &mut MsgState, now: u64) {
    for (group_id, w) in state.groups.expire(now) {
        log::warn!(
            "group message {}->{group_id} (msg_id {}) dropped: no member list from db_proxy in {} ms",
            w.msg.from_user_id,
            w.msg.msg_id,
            crate::group_cache::MAX_WAIT_MS
        );
    }
}

/// `HandleGroupMessage`: a group message was stored (or not: msg id 0).
pub fn handle_group_message(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    mut pdu: ImPdu,
    mut msg: IMMsgData,
) -> Handled {
    let (from, group_id, msg_id) = (msg.from_user_id, msg.to_session_id, msg.msg_id);
    if msg_id == 0 {
        log::warn!("group message {from}->{group_id}: storing failed, dropped");
        return Ok(());
    }
    log::debug!("group message stored, {from}->{group_id}, msg_id={msg_id}");
    let session_type = SessionType::SESSION_TYPE_GROUP;
    let from_conn = state.ack_and_route_stored(net, &mut pdu, &mut msg, session_type)?;
    fan_out_or_fetch(net, state, msg, from_conn, true);
    Ok(())
}

/// `HandleGroupMessageBroadcast`: a group message stored through another
/// msg_server, relayed by route_server: fanned out to the members here.
pub fn handle_group_message_broadcast(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    mut msg: IMMsgData,
) -> Handled {
    log::debug!(
        "relayed group message {}->{}, msg_id={}",
        msg.from_user_id,
        msg.to_session_id,
        msg.msg_id
    );
    msg.attach_data = None;
    fan_out_or_fetch(net, state, msg, None, false);
    Ok(())
}

/// The users a change-member notify goes to: changed and current members,
/// each once, in that order.
pub fn notify_receivers(chg: &[u32], cur: &[u32]) -> Vec<u32> {
    let mut seen = BTreeSet::new();
    chg.iter()
        .chain(cur)
        .copied()
        .filter(|u| seen.insert(*u))
        .collect()
}

/// `HandleGroupChangeMemberResponse`: to the client that asked; on success
/// every member (here, and elsewhere through route_server) is told.
fn handle_change_member_response(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    pdu: ImPdu,
) -> Handled {
    let from_conn = {
        let rsp: IMGroupChangeMemberRsp = pdu.msg()?;
        state.client_of(rsp.user_id, rsp.attach_data.as_deref())
    };
    let rsp = state.relay_to_client::<IMGroupChangeMemberRsp>(net, pdu)?;
    log::info!(
        "change member response, user_id={}, group_id={}, result={}",
        rsp.user_id,
        rsp.group_id,
        rsp.result_code
    );
    if rsp.result_code != 0 {
        return Ok(());
    }
    state.groups.invalidate(rsp.group_id);
    let notify = IMGroupChangeMemberNotify {
        user_id: rsp.user_id,
        change_type: rsp.change_type,
        group_id: rsp.group_id,
        cur_user_id_list: rsp.cur_user_id_list,
        chg_user_id_list: rsp.chg_user_id_list,
    };
    let out = ImPdu::for_msg(0, &notify)?;
    state.route.to_master(net, &out);
    for uid in notify_receivers(&notify.chg_user_id_list, &notify.cur_user_id_list) {
        state.send_to_user(net, uid, from_conn, &out);
    }
    Ok(())
}

/// `HandleGroupChangeMemberBroadcast`: a membership changed through another
/// msg_server; the members here are told.
pub fn handle_change_member_broadcast(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    pdu: &ImPdu,
) -> Handled {
    let notify: IMGroupChangeMemberNotify = pdu.msg()?;
    log::info!(
        "change member broadcast, group_id={}, changed={:?}",
        notify.group_id,
        notify.chg_user_id_list
    );
    state.groups.invalidate(notify.group_id);
    for uid in notify_receivers(&notify.chg_user_id_list, &notify.cur_user_id_list) {
        state.send_to_user(net, uid, None, pdu);
    }
    Ok(())
}

/// `HandleGroupGetShieldByGroupResponse`: the members who did not mute the
/// group get pushes: their device tokens are asked for.
pub fn handle_get_shield_response(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    pdu: &ImPdu,
) -> Handled {
    let rsp: IMGroupGetShieldRsp = pdu.msg()?;
    let req = IMGetDeviceTokenReq {
        user_id: rsp
            .shield_status_list
            .iter()
            .filter(|s| s.shield_status == 0)
            .map(|s| s.user_id)
            .collect(),
        attach_data: rsp.attach_data,
    };
    state.db.send_msg(net, DbPick::Other, 0, &req);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_reaches_each_user_once() {
        assert_eq!(notify_receivers(&[3, 4], &[1, 3, 4, 5]), vec![3, 4, 1, 5]);
        assert_eq!(notify_receivers(&[], &[2, 2]), vec![2]);
    }
}
