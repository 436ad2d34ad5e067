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
//!   every msg_server. We keep member lists with their group version
//!   ([`GroupCache`]) and ask only for a group we do not know; a list is
//!   dropped when its membership changes (`CID_GROUP_CHANGE_MEMBER_NOTIFY`,
//!   from here or through route_server), replaced or dropped when a group
//!   info or normal group list reply for a client shows a newer version,
//!   and all are dropped when a route_server link opens (a change may have
//!   been missed). Who gets a message stays the same.
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
use crate::state::{send_to_user, MsgState};
use base::pdu::PduError;
use base::tick::monotonic_ms;
use base::ImPdu;
use netlib::{ConnId, Reactor};
use std::collections::{BTreeSet, HashMap};
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

/// How long a cached member list is used before it is asked for again:
/// bounds how long a membership changed without a notify (in the database
/// directly, say) goes unseen.
pub const MEMBER_LIST_MAX_AGE_MS: u64 = 60_000;

/// A member list, the group version it was read at, and when (monotonic ms).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CachedGroup {
    version: u32,
    members: Vec<u32>,
    since: u64,
}

/// A member list being asked of db_proxy.
#[derive(Debug, Default)]
struct Fetch {
    /// When it was asked for (monotonic ms).
    since: u64,
    /// Every message waiting for the list, in arrival order, the one the
    /// request carries included (so a lost request loses none of them).
    queue: Vec<WaitingMsg>,
    /// The membership changed since it was asked: the answer may predate
    /// the change, so it serves the waiting messages but is not kept.
    stale: bool,
}

/// Member lists of the groups messages went to lately, by group id, each
/// with the group version db_proxy read it at, and the messages waiting for
/// a list being fetched.
///
/// db_proxy bumps a group's version on every membership change. A list is
/// dropped when a change is announced (`CID_GROUP_CHANGE_MEMBER_NOTIFY`,
/// which carries no version) and replaced or dropped whenever a reply
/// passing through shows a newer version than the cached one (a client's
/// group info or normal group list); a fetched list never replaces a newer
/// one, and a fetch overtaken by a change is not kept. A list older than
/// [`MEMBER_LIST_MAX_AGE_MS`] is asked for again.
#[derive(Debug, Default)]
pub struct GroupCache {
    groups: HashMap<u32, CachedGroup>,
    fetching: HashMap<u32, Fetch>,
}

impl GroupCache {
    /// The members of `group_id` at `now`, if known and fresh enough.
    pub fn members(&self, group_id: u32, now: u64) -> Option<&[u32]> {
        self.groups
            .get(&group_id)
            .filter(|g| now < g.since + MEMBER_LIST_MAX_AGE_MS)
            .map(|g| g.members.as_slice())
    }

    /// The version of the cached list of `group_id`, if known.
    #[cfg(test)]
    pub fn version(&self, group_id: u32) -> Option<u32> {
        self.groups.get(&group_id).map(|g| g.version)
    }

    /// Remembers `group_id`'s members at `version`, read at `now`, unless
    /// a newer version is known (and still fresh).
    pub fn insert(&mut self, group_id: u32, version: u32, members: Vec<u32>, now: u64) {
        match self.groups.get(&group_id) {
            Some(g) if g.version > version && now < g.since + MEMBER_LIST_MAX_AGE_MS => {}
            _ => {
                let g = CachedGroup {
                    version,
                    members,
                    since: now,
                };
                self.groups.insert(group_id, g);
            }
        }
    }

    /// A reply seen on its way to a client says `group_id` is at `version`
    /// (with its `members` when the reply lists them): a cached list of an
    /// older version is replaced, or dropped when no members came with it.
    /// An unknown group stays unknown (the reply may predate a change
    /// announced since).
    pub fn observe(&mut self, group_id: u32, version: u32, members: Option<&[u32]>, now: u64) {
        let Some(g) = self.groups.get_mut(&group_id) else {
            return;
        };
        if g.version >= version {
            return;
        }
        match members {
            Some(m) => {
                g.version = version;
                g.members = m.to_vec();
                g.since = now;
            }
            None => {
                self.groups.remove(&group_id);
            }
        }
    }

    /// Forgets `group_id` (its membership changed); a list being fetched
    /// will not be kept.
    pub fn invalidate(&mut self, group_id: u32) {
        self.groups.remove(&group_id);
        if let Some(f) = self.fetching.get_mut(&group_id) {
            f.stale = true;
        }
    }

    /// Forgets every group; no list being fetched will be kept.
    pub fn clear(&mut self) {
        self.groups.clear();
        for f in self.fetching.values_mut() {
            f.stale = true;
        }
    }

    /// A message for `group_id`, whose list is not known, at `now`: it is
    /// queued; true when a fetch is under way, false when the caller must
    /// ask db_proxy (a fetch is then recorded, or a lost one retried).
    pub fn wait_for_fetch(&mut self, group_id: u32, waiting: WaitingMsg, now: u64) -> bool {
        let f = self.fetching.entry(group_id).or_insert_with(|| Fetch {
            since: now,
            ..Fetch::default()
        });
        let under_way = !f.queue.is_empty() && now < f.since + FETCH_RETRY_MS;
        f.queue.push(waiting);
        if !under_way {
            f.since = now;
        }
        under_way
    }

    /// The member list of `group_id` arrived: every message waiting for it
    /// in arrival order (none when an earlier answer already took them),
    /// and whether the list may be kept (no change since it was asked).
    pub fn fetched(&mut self, group_id: u32) -> (Vec<WaitingMsg>, bool) {
        match self.fetching.remove(&group_id) {
            Some(f) => (f.queue, !f.stale),
            None => (Vec::new(), true),
        }
    }

    /// The fetches under way, each with its oldest waiting message, marked
    /// as asked again at `now` (their db_proxy link closed: the requests
    /// and the replies may be lost).
    pub fn refetch_all(&mut self, now: u64) -> Vec<WaitingMsg> {
        self.fetching
            .values_mut()
            .filter_map(|f| {
                f.since = now;
                f.queue.first().cloned()
            })
            .collect()
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
            db_serv_conn::forward_or_answer(net, state, id, user_id, pdu, $answer)
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
            let rsp = db_serv_conn::relay_to_client::<IMNormalGroupListRsp>(net, state, pdu)?;
            for v in &rsp.group_version_list {
                state
                    .groups
                    .observe(v.group_id, v.version, None, monotonic_ms());
            }
        }
        cid::GROUP_INFO_RESPONSE => handle_group_info_response(net, state, pdu)?,
        cid::GROUP_CREATE_RESPONSE => {
            let rsp = db_serv_conn::relay_to_client::<IMGroupCreateRsp>(net, state, pdu)?;
            log::info!(
                "group create response, user_id={}, result={}, group_id={:?}",
                rsp.user_id,
                rsp.result_code,
                rsp.group_id
            );
        }
        cid::GROUP_CHANGE_MEMBER_RESPONSE => handle_change_member_response(net, state, pdu)?,
        cid::GROUP_SHIELD_GROUP_RESPONSE => {
            db_serv_conn::relay_to_client::<IMGroupShieldRsp>(net, state, pdu)?;
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
        if let Some(link) = state.db.pick(DbPick::Other) {
            let _ = net.send_msg(link, 0, &req);
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
    let now = monotonic_ms();
    if let Some(members) = state.groups.members(group_id, now).map(<[u32]>::to_vec) {
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
    match state.db.pick(DbPick::Other) {
        Some(link) => {
            let _ = net.send_msg(link, 0, &req);
        }
        None => log::warn!("no db_proxy: group {group_id} members not asked; retried later"),
    }
}

/// A db_proxy link closed: member lists asked on it may never come, so
/// every fetch under way is asked again (its messages stay queued).
pub fn refetch_pending(net: &mut Reactor<MsgState>, state: &mut MsgState) {
    for waiting in state.groups.refetch_all(monotonic_ms()) {
        ask_members(net, state, &waiting);
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
    let from_conn =
        db_serv_conn::ack_and_route_stored(net, state, &mut pdu, &mut msg, session_type)?;
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
    let out = ImPdu::for_msg(0, &notify)?;
    route_serv_conn::send_to_master(net, state, &out);
    for uid in notify_receivers(&notify.chg_user_id_list, &notify.cur_user_id_list) {
        send_to_user(net, state, uid, from_conn, &out);
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
        send_to_user(net, state, uid, None, pdu);
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
    if let Some(link) = state.db.pick(DbPick::Other) {
        let _ = net.send_msg(link, 0, &req);
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
        c.insert(9, 1, vec![1, 2], 0);
        assert_eq!(c.members(9, 0), Some(&[1, 2][..]));
        c.invalidate(9);
        assert_eq!(c.members(9, 0), None);
        c.insert(9, 2, vec![1], 0);
        c.clear();
        assert_eq!(c.members(9, 0), None);
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
        let (queued, keep) = c.fetched(9);
        let ids: Vec<u32> = queued.iter().map(|w| w.msg.msg_id).collect();
        assert_eq!(ids, vec![1, 2, 3], "every waiting message, in order");
        assert!(keep);
        assert!(
            c.fetched(9).0.is_empty(),
            "a second answer delivers nothing"
        );
        assert!(
            !c.wait_for_fetch(7, w(5), 20 + FETCH_RETRY_MS),
            "a lost reply is asked again"
        );
        let ids: Vec<u32> = c.fetched(7).0.iter().map(|w| w.msg.msg_id).collect();
        assert_eq!(ids, vec![4, 5], "nothing waiting is lost with the reply");
        assert!(!c.wait_for_fetch(6, w(6), 0));
        assert!(c.wait_for_fetch(6, w(7), 1));
        let again: Vec<u32> = c.refetch_all(2).iter().map(|w| w.msg.msg_id).collect();
        assert_eq!(again, vec![6], "a closed link asks again for the oldest");
        assert_eq!(c.fetched(6).0.len(), 2);
    }

    #[test]
    fn versions_decide_which_list_is_kept() {
        let mut c = GroupCache::default();
        c.insert(9, 3, vec![1, 2], 0);
        c.insert(9, 2, vec![1], 0);
        assert_eq!(
            c.members(9, 0),
            Some(&[1, 2][..]),
            "an older fetch never wins"
        );
        c.observe(9, 3, Some(&[7]), 0);
        assert_eq!(c.members(9, 0), Some(&[1, 2][..]), "same version: kept");
        c.observe(9, 4, Some(&[1, 2, 3]), 0);
        assert_eq!(
            (c.version(9), c.members(9, 0)),
            (Some(4), Some(&[1, 2, 3][..]))
        );
        c.observe(9, 5, None, 0);
        assert_eq!(
            c.members(9, 0),
            None,
            "a newer version without members drops it"
        );
        c.observe(9, 6, Some(&[1]), 0);
        assert_eq!(c.members(9, 0), None, "an unknown group stays unknown");
        c.insert(8, 1, vec![1], 0);
        c.observe(8, 1, None, 0);
        assert_eq!(c.members(8, 0), Some(&[1][..]));
    }

    #[test]
    fn old_lists_are_asked_for_again() {
        let mut c = GroupCache::default();
        c.insert(9, 1, vec![1, 2], 1000);
        assert!(c.members(9, 1000 + MEMBER_LIST_MAX_AGE_MS - 1).is_some());
        assert!(c.members(9, 1000 + MEMBER_LIST_MAX_AGE_MS).is_none());
        c.insert(9, 1, vec![1, 2], 1000 + MEMBER_LIST_MAX_AGE_MS);
        assert!(
            c.members(9, 1000 + MEMBER_LIST_MAX_AGE_MS).is_some(),
            "refetched"
        );
        let later = 1000 + 2 * MEMBER_LIST_MAX_AGE_MS;
        c.insert(9, 0, vec![5], later);
        assert_eq!(
            c.members(9, later),
            Some(&[5][..]),
            "an expired list gives way even to a lower version (a recreated group)"
        );
    }

    #[test]
    fn a_fetch_overtaken_by_a_change_is_not_kept() {
        let mut c = GroupCache::default();
        let w = WaitingMsg {
            msg: IMMsgData::default(),
            from_conn: None,
            origin: false,
        };
        assert!(!c.wait_for_fetch(9, w.clone(), 0));
        c.invalidate(9);
        assert!(!c.fetched(9).1, "changed since asked");
        assert!(!c.wait_for_fetch(9, w.clone(), 0));
        assert!(c.fetched(9).1, "a new fetch is fresh");
        assert!(!c.wait_for_fetch(9, w, 0));
        c.clear();
        assert!(
            !c.fetched(9).1,
            "a route_server reconnect counts as a change"
        );
    }
}
