//! Group commands and group messages: the C++ `GroupChat.cpp` (`CGroupChat`).
//!
//! Group requests of clients go to db_proxy and the replies back to the
//! client by attach data. A stored group message is acknowledged to its
//! sender, sent once to route_server (every other msg_server fans it out to
//! its own users) and fanned out here to every member's connections but the
//! sender's.
//!
//! Differences from the C++, on purpose:
//! - The C++ asks db_proxy for the member list on every group message on
//!   every msg_server. We keep member lists ([`GroupCache`]) and ask only
//!   for a group we do not know; a list is dropped when its membership
//!   changes (`CID_GROUP_CHANGE_MEMBER_NOTIFY`, from here or through
//!   route_server) and all are dropped when a route_server link opens (a
//!   change may have been missed). Who gets a message stays the same.
//! - Only the msg_server the message was sent to asks for pushes; the C++
//!   asks on every msg_server, pushing each offline member once per
//!   msg_server.
//! - A change-member notify reaches a user once even if it is both in the
//!   changed and in the current member list (the C++ sends it twice).
//! - The no-db_proxy replies carry the required fields the C++ leaves
//!   unset (`user_id`, `group_id`).

use crate::attach_data::{AttachData, AttachType};
use crate::db_serv_conn::{self, client_of, DbPick};
use crate::route_serv_conn;
use crate::state::{make_pdu, MsgState};
use base::pdu::PduError;
use base::tick::monotonic_ms;
use base::ImPdu;
use netlib::{ConnId, Reactor};
use std::collections::{BTreeSet, HashMap};
use tt_proto::IM::BaseDefine::{
    GroupCmdID, GroupType, GroupVersionInfo, MessageCmdID, OtherCmdID, ServiceID, SessionType,
};
use tt_proto::IM::Group::{
    IMGroupChangeMemberNotify, IMGroupChangeMemberReq, IMGroupChangeMemberRsp, IMGroupCreateReq,
    IMGroupCreateRsp, IMGroupInfoListReq, IMGroupInfoListRsp, IMGroupShieldReq, IMGroupShieldRsp,
    IMNormalGroupListReq, IMNormalGroupListRsp,
};
use tt_proto::IM::Message::{IMMsgData, IMMsgDataAck};
use tt_proto::IM::Server::{IMGetDeviceTokenReq, IMGroupGetShieldReq, IMGroupGetShieldRsp};

type Handled = Result<(), PduError>;

/// `service_type` of the attach data of a waiting group message stored
/// through this msg_server (0: relayed from another one). Only this
/// msg_server reads it back.
const SERVICE_TYPE_ORIGIN: u32 = 1;

/// How long messages wait for a member list asked of db_proxy before the
/// next message of that group asks again (the reply may be lost with its
/// link).
pub const FETCH_RETRY_MS: u64 = 10_000;

/// A group message waiting for its group's member list.
#[derive(Debug, Clone)]
pub struct WaitingMsg {
    /// The stored message.
    pub msg: IMMsgData,
    /// The sender's connection here, if sent here.
    pub from_conn: Option<ConnId>,
    /// Sent here (pushes are asked for) rather than relayed.
    pub origin: bool,
}

/// Member lists of the groups messages went to lately, by group id, and
/// the messages waiting for a list being fetched.
#[derive(Debug, Default)]
pub struct GroupCache {
    groups: HashMap<u32, (u32, Vec<u32>)>,
    /// Group id → (when its list was asked for, messages after the one
    /// the request carries).
    fetching: HashMap<u32, (u64, Vec<WaitingMsg>)>,
}

impl GroupCache {
    /// The members of `group_id`, if known.
    pub fn members(&self, group_id: u32) -> Option<&[u32]> {
        self.groups.get(&group_id).map(|(_, m)| m.as_slice())
    }

    /// Remembers `group_id`'s members at `version`.
    pub fn insert(&mut self, group_id: u32, version: u32, members: Vec<u32>) {
        self.groups.insert(group_id, (version, members));
    }

    /// Forgets `group_id` (its membership changed).
    pub fn invalidate(&mut self, group_id: u32) {
        self.groups.remove(&group_id);
    }

    /// Forgets every group.
    pub fn clear(&mut self) {
        self.groups.clear();
    }

    /// A message for `group_id`, whose list is not known, at `now`: true
    /// when a fetch is under way and the message was queued behind it;
    /// false when the caller must ask db_proxy (a fetch is then recorded).
    pub fn wait_for_fetch(&mut self, group_id: u32, waiting: WaitingMsg, now: u64) -> bool {
        match self.fetching.get_mut(&group_id) {
            Some((since, queue)) if now < *since + FETCH_RETRY_MS => {
                queue.push(waiting);
                true
            }
            Some((since, _)) => {
                *since = now;
                false
            }
            None => {
                self.fetching.insert(group_id, (now, Vec::new()));
                false
            }
        }
    }

    /// The member list of `group_id` arrived: the messages queued behind it.
    pub fn fetched(&mut self, group_id: u32) -> Vec<WaitingMsg> {
        self.fetching
            .remove(&group_id)
            .map(|(_, q)| q)
            .unwrap_or_default()
    }
}

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

/// The group commands of `CMsgConn::HandlePdu`.
pub fn handle_client_request(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    user_id: u32,
    pdu: ImPdu,
) -> Handled {
    use GroupCmdID as G;
    let cid = pdu.command_id();
    let seq = pdu.seq_num();
    let has_db = state.db.pick(DbPick::Other).is_some();
    let sid = ServiceID::SID_GROUP as u16;
    let reply = |net: &mut Reactor<MsgState>, cid: G, out: Option<ImPdu>| {
        log::warn!("no db_proxy: group command of user {user_id} answered {cid:?}");
        if let Some(out) = out {
            let _ = net.send_pdu(id, &out);
        }
    };
    match cid {
        c if c == G::CID_GROUP_NORMAL_LIST_REQUEST as u16 => {
            if has_db {
                return db_serv_conn::forward::<IMNormalGroupListReq>(
                    net,
                    state,
                    id,
                    user_id,
                    pdu,
                    DbPick::Other,
                    true,
                );
            }
            let _req: IMNormalGroupListReq = pdu.msg()?;
            let rsp = IMNormalGroupListRsp {
                user_id,
                ..IMNormalGroupListRsp::default()
            };
            let out = make_pdu(sid, G::CID_GROUP_NORMAL_LIST_RESPONSE as u16, seq, &rsp);
            reply(net, G::CID_GROUP_NORMAL_LIST_RESPONSE, out);
        }
        c if c == G::CID_GROUP_INFO_REQUEST as u16 => {
            if has_db {
                return db_serv_conn::forward::<IMGroupInfoListReq>(
                    net,
                    state,
                    id,
                    user_id,
                    pdu,
                    DbPick::Other,
                    true,
                );
            }
            let _req: IMGroupInfoListReq = pdu.msg()?;
            let rsp = IMGroupInfoListRsp {
                user_id,
                ..IMGroupInfoListRsp::default()
            };
            let out = make_pdu(sid, G::CID_GROUP_INFO_RESPONSE as u16, seq, &rsp);
            reply(net, G::CID_GROUP_INFO_RESPONSE, out);
        }
        c if c == G::CID_GROUP_CREATE_REQUEST as u16 => {
            let req: IMGroupCreateReq = pdu.msg()?;
            if req.group_type == GroupType::GROUP_TYPE_NORMAL {
                log::warn!(
                    "user {user_id} may not create a normal group {:?}",
                    req.group_name
                );
                return Ok(());
            }
            if has_db {
                return db_serv_conn::forward::<IMGroupCreateReq>(
                    net,
                    state,
                    id,
                    user_id,
                    pdu,
                    DbPick::Other,
                    true,
                );
            }
            let rsp = IMGroupCreateRsp {
                user_id,
                result_code: 1,
                group_name: req.group_name,
                ..IMGroupCreateRsp::default()
            };
            let out = make_pdu(sid, G::CID_GROUP_CREATE_RESPONSE as u16, seq, &rsp);
            reply(net, G::CID_GROUP_CREATE_RESPONSE, out);
        }
        c if c == G::CID_GROUP_CHANGE_MEMBER_REQUEST as u16 => {
            let req: IMGroupChangeMemberReq = pdu.msg()?;
            if has_db {
                return db_serv_conn::forward::<IMGroupChangeMemberReq>(
                    net,
                    state,
                    id,
                    user_id,
                    pdu,
                    DbPick::Other,
                    true,
                );
            }
            let rsp = IMGroupChangeMemberRsp {
                user_id,
                change_type: req.change_type,
                result_code: 1,
                group_id: req.group_id,
                ..IMGroupChangeMemberRsp::default()
            };
            let out = make_pdu(sid, G::CID_GROUP_CHANGE_MEMBER_RESPONSE as u16, seq, &rsp);
            reply(net, G::CID_GROUP_CHANGE_MEMBER_RESPONSE, out);
        }
        c if c == G::CID_GROUP_SHIELD_GROUP_REQUEST as u16 => {
            let req: IMGroupShieldReq = pdu.msg()?;
            if has_db {
                return db_serv_conn::forward::<IMGroupShieldReq>(
                    net,
                    state,
                    id,
                    user_id,
                    pdu,
                    DbPick::Other,
                    true,
                );
            }
            let rsp = IMGroupShieldRsp {
                user_id,
                group_id: req.group_id,
                result_code: 1,
                attach_data: None,
            };
            let out = make_pdu(sid, G::CID_GROUP_SHIELD_GROUP_RESPONSE as u16, seq, &rsp);
            reply(net, G::CID_GROUP_SHIELD_GROUP_RESPONSE, out);
        }
        _ => log::warn!("wrong group command {cid:#06x} from user {user_id}"),
    }
    Ok(())
}

/// The group replies of `CDBServConn::HandlePdu`.
pub fn handle_db_reply(net: &mut Reactor<MsgState>, state: &mut MsgState, pdu: ImPdu) -> Handled {
    use GroupCmdID as G;
    let cid = pdu.command_id();
    match cid {
        c if c == G::CID_GROUP_NORMAL_LIST_RESPONSE as u16 => {
            db_serv_conn::relay_to_client::<IMNormalGroupListRsp>(net, state, pdu)?;
        }
        c if c == G::CID_GROUP_INFO_RESPONSE as u16 => handle_group_info_response(net, state, pdu)?,
        c if c == G::CID_GROUP_CREATE_RESPONSE as u16 => {
            let rsp = db_serv_conn::relay_to_client::<IMGroupCreateRsp>(net, state, pdu)?;
            log::info!(
                "group create response, user_id={}, result={}, group_id={:?}",
                rsp.user_id,
                rsp.result_code,
                rsp.group_id
            );
        }
        c if c == G::CID_GROUP_CHANGE_MEMBER_RESPONSE as u16 => {
            handle_change_member_response(net, state, pdu)?
        }
        c if c == G::CID_GROUP_SHIELD_GROUP_RESPONSE as u16 => {
            db_serv_conn::relay_to_client::<IMGroupShieldRsp>(net, state, pdu)?;
        }
        _ => log::warn!("db_proxy: unexpected group command {cid:#06x} ignored"),
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
        db_serv_conn::relay_to_client::<IMGroupInfoListRsp>(net, state, pdu)?;
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
        let dropped = 1 + state.groups.fetched(msg.to_session_id).len();
        log::warn!(
            "group {} unknown to db_proxy: {dropped} waiting messages dropped",
            msg.to_session_id
        );
        return Ok(());
    };
    state
        .groups
        .insert(info.group_id, info.version, info.group_member_list.clone());
    let origin = attach.service_type == SERVICE_TYPE_ORIGIN;
    let from_conn = state.users.conn_of(rsp.user_id, attach.handle);
    deliver(net, state, &info.group_member_list, &msg, from_conn, origin);
    for w in state.groups.fetched(info.group_id) {
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
    let (sid, cid) = (ServiceID::SID_MSG as u16, MessageCmdID::CID_MSG_DATA as u16);
    let Some(out) = make_pdu(sid, cid, 0, msg) else {
        return;
    };
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
        let (sid, cid) = (
            ServiceID::SID_OTHER as u16,
            OtherCmdID::CID_OTHER_GET_SHIELD_REQ as u16,
        );
        if let (Some(link), Some(out)) = (state.db.pick(DbPick::Other), make_pdu(sid, cid, 0, &req))
        {
            let _ = net.send_pdu(link, &out);
        }
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
    if let Some(members) = state.groups.members(group_id).map(<[u32]>::to_vec) {
        deliver(net, state, &members, &msg, from_conn, origin);
        return;
    }
    let waiting = WaitingMsg {
        msg,
        from_conn,
        origin,
    };
    if state
        .groups
        .wait_for_fetch(group_id, waiting.clone(), monotonic_ms())
    {
        return;
    }
    let WaitingMsg {
        msg,
        from_conn,
        origin,
    } = waiting;
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
    let (sid, cid) = (
        ServiceID::SID_GROUP as u16,
        GroupCmdID::CID_GROUP_INFO_REQUEST as u16,
    );
    match (state.db.pick(DbPick::Other), make_pdu(sid, cid, 0, &req)) {
        (Some(link), Some(out)) => {
            let _ = net.send_pdu(link, &out);
        }
        _ => log::warn!("no db_proxy: group {group_id} message not fanned out"),
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
    let from_conn = client_of(state, from, msg.attach_data.as_deref());
    if let Some(sender) = from_conn {
        let ack = IMMsgDataAck {
            user_id: from,
            session_id: group_id,
            msg_id,
            session_type: SessionType::SESSION_TYPE_GROUP,
        };
        let (sid, cid) = (
            ServiceID::SID_MSG as u16,
            MessageCmdID::CID_MSG_DATA_ACK as u16,
        );
        if let Some(out) = make_pdu(sid, cid, pdu.seq_num(), &ack) {
            let _ = net.send_pdu(sender, &out);
        }
    }
    msg.attach_data = None;
    pdu.set_msg(&msg)?;
    pdu.set_seq_num(0);
    route_serv_conn::send_to_master(net, state, &pdu);
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
        client_of(state, rsp.user_id, rsp.attach_data.as_deref())
    };
    let rsp = db_serv_conn::relay_to_client::<IMGroupChangeMemberRsp>(net, state, pdu)?;
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
    let (sid, cid) = (
        ServiceID::SID_GROUP as u16,
        GroupCmdID::CID_GROUP_CHANGE_MEMBER_NOTIFY as u16,
    );
    let Some(out) = make_pdu(sid, cid, 0, &notify) else {
        return Ok(());
    };
    route_serv_conn::send_to_master(net, state, &out);
    for uid in notify_receivers(&notify.chg_user_id_list, &notify.cur_user_id_list) {
        if let Some(user) = state.users.get(uid) {
            crate::state::send_all(net, &user.targets(from_conn), &out);
        }
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
        if let Some(user) = state.users.get(uid) {
            crate::state::send_all(net, &user.targets(None), pdu);
        }
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
    let (sid, cid) = (
        ServiceID::SID_OTHER as u16,
        OtherCmdID::CID_OTHER_GET_DEVICE_TOKEN_REQ as u16,
    );
    if let (Some(link), Some(out)) = (state.db.pick(DbPick::Other), make_pdu(sid, cid, 0, &req)) {
        let _ = net.send_pdu(link, &out);
    }
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

    #[test]
    fn cache_follows_changes() {
        let mut c = GroupCache::default();
        c.insert(9, 1, vec![1, 2]);
        assert_eq!(c.members(9), Some(&[1, 2][..]));
        c.invalidate(9);
        assert_eq!(c.members(9), None);
        c.insert(9, 2, vec![1]);
        c.clear();
        assert_eq!(c.members(9), None);
    }

    #[test]
    fn one_fetch_at_a_time_per_group() {
        let mut c = GroupCache::default();
        let w = |id| WaitingMsg {
            msg: IMMsgData {
                msg_id: id,
                ..IMMsgData::default()
            },
            from_conn: None,
            origin: false,
        };
        assert!(!c.wait_for_fetch(9, w(1), 0), "first message fetches");
        assert!(c.wait_for_fetch(9, w(2), 10), "later ones wait");
        assert!(c.wait_for_fetch(9, w(3), 20));
        assert!(!c.wait_for_fetch(7, w(4), 20), "other groups fetch");
        let ids: Vec<u32> = c.fetched(9).iter().map(|w| w.msg.msg_id).collect();
        assert_eq!(ids, vec![2, 3]);
        assert!(c.fetched(9).is_empty());
        assert!(
            !c.wait_for_fetch(7, w(5), 20 + FETCH_RETRY_MS),
            "a lost reply is asked again"
        );
        assert_eq!(c.fetched(7).len(), 0);
    }
}
