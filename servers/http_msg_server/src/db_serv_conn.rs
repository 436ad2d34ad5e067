//! Links to db_proxy_server: the C++ `DBServConn.cpp` (`CDBServConn`,
//! `init_db_serv_conn`, `get_db_serv_conn`, `_HandleCreateGroupRsp`,
//! `_HandleChangeMemberRsp`, `_HandleStopReceivePacket`).
//!
//! `ConcurrentDBConnCnt` links go to each configured db_proxy; a request
//! goes to a random open link of the second half of the db_proxies, else
//! of the first (`get_db_serv_conn`; the first half serves logins in
//! msg_server, the split is kept so one conf fits both). Heartbeat every
//! 5 s, closed after 30 s of silence, reconnected with netlib's back-off.
//!
//! A reply finds its HTTP connection through the attach data of the
//! request ([`crate::attach_data`]) and the pending table; a reply for a
//! connection that has gone is dropped with a debug line.
//!
//! Differences from the C++:
//! - A successful member change is announced to route_server even when
//!   the HTTP client has gone before the reply (the C++ returns early and
//!   the online members never hear of a change made in the database).
//! - Requests in flight on a link that closes are answered 10 at once
//!   (the C++ leaves them to the 60 s idle close); they are not sent
//!   again (a group creation is not idempotent).
//! - With no usable link (none up, or all sent `STOP_RECV_PACKET`) a
//!   request waits, in order, for one (at most [`HOLD_MAX`] requests,
//!   none longer than [`HOLD_MAX_AGE_MS`], then answered 10, what the C++
//!   answers at once), so a db_proxy restart costs latency.
//! - `ConcurrentDBConnCnt=0` exits 1 naming the key (the C++ divides by
//!   zero).

use crate::attach_data;
use crate::http_pdu::{create_group_result, result, HttpError};
use crate::http_query::{DbRequest, QueryKind};
use crate::route_serv_conn;
use crate::state::HttpMsgState;
use base::pdu::PduError;
use base::ImPdu;
use netlib::{ConnId, Ctx, Heartbeat, ImConn, PeerLink, PeerList, Reactor};
use rand::Rng;
use tt_http::{send_response, Response};
use tt_proto::cid;
use tt_proto::IM::Group::{IMGroupChangeMemberNotify, IMGroupChangeMemberRsp, IMGroupCreateRsp};

/// `DEFAULT_CONCURRENT_DB_CONN_CNT` of `http_msg_server.cpp`: links per
/// db_proxy when `ConcurrentDBConnCnt` is absent.
pub const DEFAULT_CONCURRENT_DB_CONN_CNT: usize = 2;

/// Most requests held while no db_proxy link is usable.
pub const HOLD_MAX: usize = 10_000;
/// Longest a request is held (ms), as in msg_server: db_proxy's SIGTERM
/// drain (4 s) plus a restart of a few seconds.
pub const HOLD_MAX_AGE_MS: u64 = 8_000;

/// The db_proxy links (`g_db_server_list`, `g_db_server_login_count`),
/// and the requests waiting for one.
#[derive(Debug, Default)]
pub struct DbServers {
    /// One entry per link: `ConcurrentDBConnCnt` per configured db_proxy.
    pub peers: PeerList,
    /// Links `[0, login_count)` are the first half.
    pub login_count: usize,
    /// (since, HTTP connection, request) waiting for a usable link.
    held: std::collections::VecDeque<(u64, ConnId, DbRequest)>,
}

impl DbServers {
    /// `init_db_serv_conn`'s split for `peers` holding `concurrent` links
    /// to each db_proxy.
    pub fn new(peers: PeerList, concurrent: usize) -> DbServers {
        let instances = peers.peer_count() / concurrent.max(1);
        let login_count = (instances / 2) * concurrent;
        DbServers {
            peers,
            login_count,
            held: Default::default(),
        }
    }

    /// A request can go now or wait for a link (what the C++ checks as
    /// "a db_proxy link is open").
    pub fn can_take(&self) -> bool {
        self.pick().is_some() || self.held.len() < HOLD_MAX
    }

    /// `get_db_serv_conn`: a random open link of the second half, else of
    /// the first.
    pub fn pick(&self) -> Option<ConnId> {
        let first = 0..self.login_count;
        let second = self.login_count..self.peers.peer_count();
        random_of(&self.peers.open_in(second)).or_else(|| random_of(&self.peers.open_in(first)))
    }
}

fn random_of(links: &[ConnId]) -> Option<ConnId> {
    match links.len() {
        0 => None,
        n => Some(links[rand::thread_rng().gen_range(0..n)]),
    }
}

/// Sends `req` for HTTP connection `http` to a db_proxy link, with attach
/// data naming `http`, and notes that `http` waits for it. False when it
/// could not be sent (no link, the pending table full, the link refusing):
/// the caller answers 10.
pub fn send_query(
    net: &mut Reactor<HttpMsgState>,
    state: &mut HttpMsgState,
    http: ConnId,
    req: DbRequest,
    now: u64,
) -> bool {
    if state.pending.is_full() {
        log::warn!(
            "{} requests wait for db_proxy already; {http} refused",
            state.pending.len()
        );
        return false;
    }
    let Some(link) = state.db.pick() else {
        if state.db.held.len() >= HOLD_MAX {
            log::warn!("no db_proxy and {HOLD_MAX} requests held: {http} refused");
            return false;
        }
        log::info!("no db_proxy link: {http}'s request held");
        state.db.held.push_back((now, http, req));
        return true;
    };
    let kind = req.kind();
    let attach = Some(attach_data::encode(http));
    let sent = match req {
        DbRequest::CreateGroup(mut msg) => {
            msg.attach_data = attach;
            net.send_msg(link, 0, &msg)
        }
        DbRequest::ChangeMembers(mut msg) => {
            msg.attach_data = attach;
            net.send_msg(link, 0, &msg)
        }
    };
    if sent.is_err() {
        return false;
    }
    state.pending.insert(http, kind, link, now);
    true
}

/// A link is usable again: the held requests whose HTTP connection is
/// still there go out, in order.
pub fn send_held(net: &mut Reactor<HttpMsgState>, state: &mut HttpMsgState, now: u64) {
    if state.db.held.is_empty() || state.db.pick().is_none() {
        return;
    }
    let held = std::mem::take(&mut state.db.held);
    log::info!(
        "db_proxy usable again: sending {} held requests",
        held.len()
    );
    let response = result(HttpError::ServerException);
    for (_, http, req) in held {
        if net.is_open(http) && !send_query(net, state, http, req, now) {
            send_response(net, http, &response);
        }
    }
}

/// Held requests past [`HOLD_MAX_AGE_MS`] are answered 10, as the C++
/// answers without a db_proxy.
pub fn answer_held_expired(net: &mut Reactor<HttpMsgState>, state: &mut HttpMsgState, now: u64) {
    let response = result(HttpError::ServerException);
    let mut n = 0;
    while let Some(&(since, http, _)) = state.db.held.front() {
        if now.saturating_sub(since) <= HOLD_MAX_AGE_MS {
            break;
        }
        state.db.held.pop_front();
        send_response(net, http, &response);
        n += 1;
    }
    if n > 0 {
        log::warn!("no db_proxy for {HOLD_MAX_AGE_MS} ms: {n} held requests answered 10");
    }
}

/// `_HandleCreateGroupRsp`'s answer: 0 with the new group's id, or 11
/// with the id db_proxy gave (0).
pub fn create_group_answer(rsp: &IMGroupCreateRsp) -> Response {
    let group_id = rsp.group_id.unwrap_or(0);
    if rsp.result_code == 0 {
        create_group_result(HttpError::Success, group_id)
    } else {
        create_group_result(HttpError::CreateGroup, group_id)
    }
}

/// `_HandleChangeMemberRsp`'s answer (0, or 12), and on success the
/// notify for route_server: who changed and who is in the group now.
pub fn change_members_answer(
    rsp: &IMGroupChangeMemberRsp,
) -> (Response, Option<IMGroupChangeMemberNotify>) {
    if rsp.result_code != 0 {
        return (result(HttpError::ChangeMember), None);
    }
    let notify = IMGroupChangeMemberNotify {
        user_id: rsp.user_id,
        change_type: rsp.change_type,
        group_id: rsp.group_id,
        cur_user_id_list: rsp.cur_user_id_list.clone(),
        chg_user_id_list: rsp.chg_user_id_list.clone(),
    };
    (result(HttpError::Success), Some(notify))
}

/// Sends `response` to the HTTP connection named by `attach`, if it still
/// waits for a `kind` reply.
fn answer(
    net: &mut Reactor<HttpMsgState>,
    state: &mut HttpMsgState,
    attach: Option<&[u8]>,
    kind: QueryKind,
    response: &Response,
) {
    let http = match attach_data::decode(attach) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("db_proxy reply to {kind:?} dropped: {e}");
            return;
        }
    };
    if state.pending.take(http, kind).is_some() && send_response(net, http, response) {
        state.metrics.answered(response);
    } else {
        log::debug!("db_proxy reply to {kind:?} for {http}: connection gone, dropped");
    }
}

/// `CDBServConn`: the handler of db_proxy link `idx`.
#[derive(Debug)]
pub struct DbServConn {
    link: PeerLink,
}

impl DbServConn {
    /// The handler for link `idx`.
    pub fn new(idx: usize) -> DbServConn {
        DbServConn {
            link: PeerLink::new("db_proxy", idx),
        }
    }
}

impl ImConn<HttpMsgState> for DbServConn {
    /// `OnConfirm`.
    fn on_confirm(&mut self, cx: &mut Ctx<'_, HttpMsgState>) {
        let addr = cx.peer_addr();
        self.link.confirm(&mut cx.state.db.peers, cx.id, addr);
        send_held(cx.net, cx.state, base::tick::monotonic_ms());
    }

    /// `OnClose`: reconnected after the back-off; what waited on this
    /// link is answered 10.
    fn on_close(&mut self, cx: &mut Ctx<'_, HttpMsgState>) {
        let addr = cx.peer_addr();
        self.link.closed(&mut cx.state.db.peers, cx.id, addr);
        let lost = cx.state.pending.take_on_link(cx.id);
        if !lost.is_empty() {
            log::warn!(
                "{} requests lost with db_proxy link {}: answered 10",
                lost.len(),
                cx.id
            );
        }
        let response = result(HttpError::ServerException);
        for http in lost {
            if send_response(cx.net, http, &response) {
                cx.state.metrics.answered(&response);
            }
        }
    }

    /// `OnTimer`: heartbeat after 5 s of quiet, close after 30 s of silence.
    fn on_timer(&mut self, cx: &mut Ctx<'_, HttpMsgState>, now: u64) {
        cx.keep_alive(Heartbeat::SERVER, now);
    }

    /// `HandlePdu`: a reply that does not decode is logged and dropped, as
    /// the C++ does.
    fn on_pdu(&mut self, cx: &mut Ctx<'_, HttpMsgState>, pdu: ImPdu) {
        if let Err(e) = handle_reply(cx.net, cx.state, cx.id, &pdu) {
            log::warn!("db_proxy link {}: reply dropped: {e}", cx.id);
        }
    }
}

/// `CDBServConn::HandlePdu`'s switch.
fn handle_reply(
    net: &mut Reactor<HttpMsgState>,
    state: &mut HttpMsgState,
    link: ConnId,
    pdu: &ImPdu,
) -> Result<(), PduError> {
    match pdu.command_id() {
        cid::OTHER_HEARTBEAT => {}
        cid::OTHER_STOP_RECV_PACKET => {
            log::info!("db_proxy link {link} stops taking requests");
            state.db.peers.stop_using(link);
        }
        cid::GROUP_CREATE_RESPONSE => {
            let rsp: IMGroupCreateRsp = pdu.msg()?;
            log::info!(
                "CreateGroup reply: group_name={:?}, result={}, group_id={:?}",
                rsp.group_name,
                rsp.result_code,
                rsp.group_id
            );
            let response = create_group_answer(&rsp);
            answer(
                net,
                state,
                rsp.attach_data.as_deref(),
                QueryKind::CreateGroup,
                &response,
            );
        }
        cid::GROUP_CHANGE_MEMBER_RESPONSE => {
            let rsp: IMGroupChangeMemberRsp = pdu.msg()?;
            log::info!(
                "ChangeMembers reply: change_type={:?}, group_id={}, result={}, chg_user_cnt={}, cur_user_cnt={}",
                rsp.change_type,
                rsp.group_id,
                rsp.result_code,
                rsp.chg_user_id_list.len(),
                rsp.cur_user_id_list.len()
            );
            let (response, notify) = change_members_answer(&rsp);
            answer(
                net,
                state,
                rsp.attach_data.as_deref(),
                QueryKind::ChangeMembers,
                &response,
            );
            if let Some(notify) = notify {
                route_serv_conn::send_to_master(net, state, &notify);
            }
        }
        other => log::warn!("db_proxy link {link}: unexpected command {other:#06x}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base::config::ServerAddr;
    use netlib::ServList;
    use tt_proto::IM::BaseDefine::GroupModifyType;

    fn c(n: u64) -> ConnId {
        ConnId::from_u64((1 << 32) | n)
    }

    fn body(r: &Response) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn the_second_half_first_then_the_first() {
        let addrs = (0..4)
            .map(|i| ServerAddr {
                ip: "127.0.0.1".into(),
                port: 1 + i / 2,
            })
            .collect();
        let mut db = DbServers::new(PeerList::new(ServList::new(addrs)), 2);
        assert_eq!(db.login_count, 2);
        assert_eq!(db.pick(), None);
        db.peers.confirm(0, c(0), 0);
        assert_eq!(db.pick(), Some(c(0)), "falls back on the first half");
        db.peers.confirm(3, c(3), 0);
        for _ in 0..20 {
            assert_eq!(db.pick(), Some(c(3)));
        }
    }

    #[test]
    fn create_group_replies_become_answers() {
        let mut rsp = IMGroupCreateRsp {
            result_code: 0,
            group_id: Some(42),
            ..Default::default()
        };
        let ok = body(&create_group_answer(&rsp));
        assert_eq!(
            (ok["error_code"].as_i64(), ok["group_id"].as_i64()),
            (Some(0), Some(42))
        );
        assert_eq!(ok["error_msg"], "成功");
        rsp.result_code = 1;
        rsp.group_id = None;
        let failed = body(&create_group_answer(&rsp));
        assert_eq!(
            (failed["error_code"].as_i64(), failed["group_id"].as_i64()),
            (Some(11), Some(0))
        );
        assert_eq!(failed["error_msg"], "创建群失败");
    }

    #[test]
    fn change_member_replies_become_answers_and_a_notify() {
        let rsp = IMGroupChangeMemberRsp {
            user_id: 0,
            change_type: GroupModifyType::GROUP_MODIFY_TYPE_ADD,
            result_code: 0,
            group_id: 5,
            cur_user_id_list: vec![1, 2, 3],
            chg_user_id_list: vec![3],
            attach_data: None,
        };
        let (ok, notify) = change_members_answer(&rsp);
        assert_eq!(body(&ok)["error_code"], 0);
        let notify = notify.unwrap();
        assert_eq!(
            (
                notify.group_id,
                notify.change_type,
                notify.cur_user_id_list.clone(),
                notify.chg_user_id_list.clone()
            ),
            (
                5,
                GroupModifyType::GROUP_MODIFY_TYPE_ADD,
                vec![1, 2, 3],
                vec![3]
            )
        );
        let failed = IMGroupChangeMemberRsp {
            result_code: 1,
            ..rsp
        };
        let (answer, notify) = change_members_answer(&failed);
        assert_eq!(body(&answer)["error_code"], 12);
        assert_eq!(body(&answer)["error_msg"], "更改群成员失败");
        assert!(notify.is_none());
    }
}
