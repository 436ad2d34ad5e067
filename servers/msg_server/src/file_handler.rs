//! File transfer commands of clients: the C++ `FileHandler.cpp`
//! (`CFileHandler`).
//!
//! A transfer request goes to a file_server, which makes a task. An online
//! transfer needs the receiver's PC client: if none is known here,
//! route_server is asked for the receiver's status first, and the mode
//! becomes offline when the receiver is not online. Offline files are
//! listed, added and deleted through db_proxy.
//!
//! Differences from the C++, on purpose: an offline file is deleted only
//! at the request of its sender or receiver; the C++ deletes any file whose
//! sender, receiver and task id the client names. The deletion also goes
//! to every file_server, so the stored file goes with its record (the C++
//! never deletes offline files).

use crate::attach_data::{AttachData, AttachType};
use crate::peers::DbPick;
use crate::state::{send_all, MsgState};
use base::pdu::PduError;
use base::ImPdu;
use netlib::{ConnId, Reactor};
use tt_proto::cid;
use tt_proto::IM::BaseDefine::{TransferFileType, UserStatType};
use tt_proto::IM::Buddy::IMUsersStatReq;
use tt_proto::IM::File::{
    IMFileAddOfflineReq, IMFileDelOfflineReq, IMFileHasOfflineReq, IMFileHasOfflineRsp,
    IMFileNotify, IMFileReq, IMFileRsp,
};
use tt_proto::IM::Server::IMFileTransferReq;

type Handled = Result<(), PduError>;

/// The file commands of `CMsgConn::HandlePdu`.
pub fn handle_client_request(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    user_id: u32,
    pdu: ImPdu,
) -> Handled {
    match pdu.command_id() {
        cid::FILE_REQUEST => handle_file_request(net, state, id, user_id, &pdu),
        cid::FILE_HAS_OFFLINE_REQ => {
            // No db_proxy: an empty offline file list.
            state
                .db
                .forward_or_answer(net, id, user_id, pdu, |_: IMFileHasOfflineReq| {
                    IMFileHasOfflineRsp {
                        user_id,
                        ..IMFileHasOfflineRsp::default()
                    }
                })
        }
        cid::FILE_ADD_OFFLINE_REQ => handle_add_offline(net, state, user_id, pdu),
        cid::FILE_DEL_OFFLINE_REQ => {
            let req: IMFileDelOfflineReq = pdu.msg()?;
            log::info!(
                "del offline file, {}->{}, task_id={}",
                req.from_user_id,
                req.to_user_id,
                req.task_id
            );
            if !may_delete_offline(user_id, &req) {
                log::warn!(
                    "user {user_id} may not delete offline file {} ({}->{}): dropped",
                    req.task_id,
                    req.from_user_id,
                    req.to_user_id
                );
                return Ok(());
            }
            state.db.send_pdu(net, DbPick::Other, &pdu);
            // The file goes with its record: every file_server is told
            // (a C++ file_server ignores the command).
            send_all(net, &state.file.peers.open_links(), &pdu);
            Ok(())
        }
        other => {
            log::warn!("wrong file command {other:#06x} from user {user_id}");
            Ok(())
        }
    }
}

/// Whether `user_id` may delete the offline file of `req`: only its sender
/// or its receiver. (The C++ deletes whatever pair the client names.)
pub fn may_delete_offline(user_id: u32, req: &IMFileDelOfflineReq) -> bool {
    user_id == req.from_user_id || user_id == req.to_user_id
}

/// `HandleClientFileRequest`.
fn handle_file_request(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    id: ConnId,
    user_id: u32,
    pdu: &ImPdu,
) -> Handled {
    let req: IMFileReq = pdu.msg()?;
    log::info!(
        "file request, {user_id}->{}, file={}, mode={:?}",
        req.to_user_id,
        req.file_name,
        req.trans_mode
    );
    let Some(link) = state.file.pick() else {
        log::warn!("file request: no file_server");
        let rsp = refused(user_id, req.to_user_id, &req.file_name, req.trans_mode);
        let _ = net.send_msg(id, pdu.seq_num(), &rsp);
        return Ok(());
    };
    let transfer = IMFileTransferReq {
        from_user_id: user_id,
        to_user_id: req.to_user_id,
        file_name: req.file_name,
        file_size: req.file_size,
        trans_mode: req.trans_mode,
        attach_data: Some(AttachData::handle(id).encode()),
    };
    let out = ImPdu::for_msg(pdu.seq_num(), &transfer)?;
    let receiver_pc_here = state
        .users
        .get(transfer.to_user_id)
        .is_some_and(|u| u.pc_login_status != 0);
    if transfer.trans_mode == TransferFileType::FILE_TYPE_OFFLINE || receiver_pc_here {
        let _ = net.send_pdu(link, &out);
        return Ok(());
    }
    // Ask route_server whether the receiver is online, the request waiting
    // in the attach data.
    let attach = AttachData::with_pdu(
        AttachType::HandleAndPduForFile,
        Some(id),
        out.body().to_vec(),
    );
    let status_req = IMUsersStatReq {
        user_id,
        user_id_list: vec![transfer.to_user_id],
        attach_data: Some(attach.encode()),
    };
    state.route.msg_to_master(net, pdu.seq_num(), &status_req);
    Ok(())
}

/// The `IMFileRsp` of a refused transfer (result 1, no task).
fn refused(from: u32, to: u32, file_name: &str, mode: TransferFileType) -> IMFileRsp {
    IMFileRsp {
        result_code: 1,
        from_user_id: from,
        to_user_id: to,
        file_name: file_name.to_string(),
        task_id: String::new(),
        ip_addr_list: Vec::new(),
        trans_mode: mode,
    }
}

/// The `ATTACH_TYPE_HANDLE_AND_PDU_FOR_FILE` branch of
/// `CRouteServConn::_HandleUsersStatusResponse`: the receiver's status
/// decides the mode, then the request goes to a file_server.
pub fn transfer_after_status(
    net: &mut Reactor<MsgState>,
    state: &MsgState,
    status: UserStatType,
    attach: &AttachData,
    seq: u16,
) -> Handled {
    let mut req: IMFileTransferReq = match tt_proto::decode(&attach.pdu) {
        Ok(r) => r,
        Err(e) => {
            log::warn!("waiting file request unusable, dropped: {e}");
            return Ok(());
        }
    };
    req.trans_mode = if status == UserStatType::USER_STATUS_ONLINE {
        TransferFileType::FILE_TYPE_ONLINE
    } else {
        TransferFileType::FILE_TYPE_OFFLINE
    };
    if let Some(link) = state.file.pick() {
        let _ = net.send_msg(link, seq, &req);
        return Ok(());
    }
    log::warn!("file request: no file_server");
    let rsp = refused(
        req.from_user_id,
        req.to_user_id,
        &req.file_name,
        req.trans_mode,
    );
    if let Some(conn) = state.users.conn_of(req.from_user_id, attach.handle) {
        let _ = net.send_msg(conn, seq, &rsp);
    }
    Ok(())
}

/// `HandleClientFileAddOfflineReq`: stored by db_proxy; the receiver's PC
/// clients (here and elsewhere) are told the file is ready.
fn handle_add_offline(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    user_id: u32,
    pdu: ImPdu,
) -> Handled {
    let mut req: IMFileAddOfflineReq = pdu.msg()?;
    log::info!(
        "add offline file, {user_id}->{}, task_id={}, file={}, size={}",
        req.to_user_id,
        req.task_id,
        req.file_name,
        req.file_size
    );
    req.from_user_id = user_id;
    state.db.send_as(net, DbPick::Other, pdu, &req)?;
    if let Some(file_link) = state.file.pick() {
        let notify = IMFileNotify {
            from_user_id: user_id,
            to_user_id: req.to_user_id,
            file_name: req.file_name,
            file_size: req.file_size,
            task_id: req.task_id,
            ip_addr_list: state.file.ip_list(file_link),
            trans_mode: TransferFileType::FILE_TYPE_OFFLINE,
            offline_ready: 1,
        };
        let out = ImPdu::for_msg(0, &notify)?;
        if let Some(to) = state.users.get(notify.to_user_id) {
            send_all(net, &to.pc_targets(None), &out);
        }
        state.route.to_master(net, &out);
    }
    Ok(())
}

/// `HandleFileHasOfflineRes`: the offline file list, with a file_server's
/// addresses, to the client that asked.
pub fn handle_has_offline_response(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    mut pdu: ImPdu,
) -> Handled {
    let mut rsp: IMFileHasOfflineRsp = pdu.msg()?;
    let conn = state.client_of(rsp.user_id, rsp.attach_data.as_deref());
    match state.file.pick() {
        Some(link) => rsp.ip_addr_list.extend(state.file.ip_list(link)),
        None => log::warn!("offline file list: no file_server"),
    }
    if let Some(conn) = conn {
        rsp.attach_data = None;
        pdu.set_msg(&rsp)?;
        let _ = net.send_pdu(conn, &pdu);
    }
    Ok(())
}

/// `HandleFileNotify`: relayed by route_server, to the receiver's clients here.
pub fn handle_file_notify(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    pdu: &ImPdu,
) -> Handled {
    let msg: IMFileNotify = pdu.msg()?;
    log::debug!(
        "file notify, {}->{}, task={}",
        msg.from_user_id,
        msg.to_user_id,
        msg.task_id
    );
    state.send_to_user(net, msg.to_user_id, None, pdu);
    Ok(())
}
