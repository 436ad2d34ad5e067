//! The client's message, session and presence commands: the C++
//! `MsgConn.cpp` (`_HandleClientMsgData`, `_HandleClientMsgDataAck`,
//! `_HandleClientMsgReadAck`, `_HandleClientP2PCmdMsg`,
//! `_HandleClientRemoveSessionRequest`, `_HandleClientUsersStatusRequest`).
//! The plain requests db_proxy answers are forwarded by the dispatch in
//! [`super`]; group and file commands are in `group_chat` and
//! `file_handler`.

use super::checks::check_msg_data;
use super::Handled;
use crate::attach_data::AttachData;
use crate::peers::DbPick;
use crate::state::MsgState;
use base::tick::unix_time;
use base::ImPdu;
use netlib::{ConnId, Reactor};
use tt_proto::Command;
use tt_proto::IM::BaseDefine::SessionType;
use tt_proto::IM::Buddy::{IMRemoveSessionNotify, IMRemoveSessionReq, IMUsersStatReq};
use tt_proto::IM::Message::{IMMsgData, IMMsgDataAck, IMMsgDataReadAck, IMMsgDataReadNotify};
use tt_proto::IM::SwitchService::IMP2PCmdMsg;

/// `_HandleClientMsgData`: stamps sender, time and attach data and sends
/// the message to db_proxy to be stored; delivery follows its reply.
pub(super) fn handle_msg_data(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    mut pdu: ImPdu,
) -> Handled {
    let mut msg: IMMsgData = pdu.msg()?;
    let Some(conn) = state.conns.get_mut(&id) else {
        return Ok(());
    };
    if let Err(why) = check_msg_data(conn, &msg) {
        log::warn!(
            "message from user {} to {} dropped: {why:?}",
            conn.user_id,
            msg.to_session_id
        );
        return Ok(());
    }
    let user_id = conn.user_id;
    state.stats.up_total += 1;
    let label = crate::metrics::msg_type_label(msg.msg_type);
    state.metrics.msgs_in.inc(label);
    if state.log_msg {
        log::info!(
            "HandleClientMsgData, {user_id}->{}, msg_type={:?}, msg_id={}",
            msg.to_session_id,
            msg.msg_type,
            msg.msg_id
        );
    }
    msg.from_user_id = user_id;
    msg.create_time = unix_time();
    msg.attach_data = Some(AttachData::handle(id).encode());
    pdu.set_msg(&msg)?;
    if !state.db.send_pdu(net, DbPick::Other, &pdu) {
        state.stats.up_miss += 1;
        log::warn!("no db_proxy: message from user {user_id} dropped");
    }
    Ok(())
}

/// A one-to-one message delivered to connection `id` was received (by
/// ack or read ack): it no longer awaits its ack. Group messages are not
/// tracked.
fn acknowledged(
    state: &mut MsgState,
    id: ConnId,
    session_type: SessionType,
    msg_id: u32,
    session_id: u32,
) {
    if session_type == SessionType::SESSION_TYPE_SINGLE {
        if let Some(conn) = state.conns.get_mut(&id) {
            conn.del_from_send_list(msg_id, session_id);
        }
    }
}

/// A notify about what `user_id` did on connection `id`: to the user's
/// other connections here, and through route_server to those elsewhere.
fn tell_other_devices<M: Command>(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    user_id: u32,
    id: ConnId,
    notify: &M,
) {
    match ImPdu::for_msg(0, notify) {
        Ok(out) => {
            state.send_to_user(net, user_id, Some(id), &out);
            state.route.to_master(net, &out);
        }
        Err(e) => log::error!("notify {:#06x} of user {user_id} not sent: {e}", M::CID),
    }
}

/// `_HandleClientMsgDataAck`: a delivered one-to-one message was received.
pub(super) fn handle_msg_data_ack(state: &mut MsgState, id: ConnId, pdu: &ImPdu) -> Handled {
    let ack: IMMsgDataAck = pdu.msg()?;
    acknowledged(state, id, ack.session_type, ack.msg_id, ack.session_id);
    Ok(())
}

/// `_HandleClientMsgReadAck`: stored by db_proxy; the reader's other
/// devices (here and elsewhere) are told the session was read.
pub(super) fn handle_msg_read_ack(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    pdu: ImPdu,
) -> Handled {
    let mut ack: IMMsgDataReadAck = pdu.msg()?;
    let user_id = state.conns.get(&id).map_or(0, |c| c.user_id);
    log::debug!(
        "read ack, user_id={user_id}, session_id={}, msg_id={}, session_type={:?}",
        ack.session_id,
        ack.msg_id,
        ack.session_type
    );
    ack.user_id = user_id;
    state.db.send_as(net, DbPick::Other, pdu, &ack)?;
    let notify = IMMsgDataReadNotify {
        user_id,
        session_id: ack.session_id,
        msg_id: ack.msg_id,
        session_type: ack.session_type,
    };
    tell_other_devices(net, state, user_id, id, &notify);
    acknowledged(state, id, ack.session_type, ack.msg_id, ack.session_id);
    Ok(())
}

/// `_HandleClientP2PCmdMsg`: relayed to the sender's other devices, the
/// receiver's devices here, and route_server.
pub(super) fn handle_p2p_cmd(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    pdu: &ImPdu,
) -> Handled {
    let msg: IMP2PCmdMsg = pdu.msg()?;
    let user_id = state.conns.get(&id).map_or(0, |c| c.user_id);
    log::debug!("p2p cmd, {}->{}", msg.from_user_id, msg.to_user_id);
    state.send_to_user(net, user_id, Some(id), pdu);
    state.send_to_user(net, msg.to_user_id, None, pdu);
    state.route.to_master(net, pdu);
    Ok(())
}

/// `_HandleClientRemoveSessionRequest`: db_proxy removes it; for a
/// one-to-one session the user's other devices are told.
pub(super) fn handle_remove_session(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    pdu: ImPdu,
) -> Handled {
    let req: IMRemoveSessionReq = pdu.msg()?;
    let user_id = state.conns.get(&id).map_or(0, |c| c.user_id);
    state
        .db
        .forward::<_, IMRemoveSessionReq>(net, id, user_id, pdu, DbPick::Other, true)?;
    if req.session_type == SessionType::SESSION_TYPE_SINGLE {
        let notify = IMRemoveSessionNotify {
            user_id,
            session_type: req.session_type,
            session_id: req.session_id,
        };
        tell_other_devices(net, state, user_id, id, &notify);
    }
    Ok(())
}

/// `_HandleClientUsersStatusRequest`: asked of route_server, which knows
/// every msg_server's users; the reply finds us by attach data.
pub(super) fn handle_users_status_request(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    user_id: u32,
    mut pdu: ImPdu,
) -> Handled {
    let mut req: IMUsersStatReq = pdu.msg()?;
    if let Some(master) = state.route.master {
        req.user_id = user_id;
        req.attach_data = Some(AttachData::handle(id).encode());
        pdu.set_msg(&req)?;
        let _ = net.send_pdu(master, &pdu);
    }
    Ok(())
}
