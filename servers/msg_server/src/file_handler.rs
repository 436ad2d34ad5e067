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
use crate::db_serv_conn::{self, DbPick};
use crate::route_serv_conn;
use crate::state::{make_pdu, send_all, send_msg, send_to_user, MsgState};
use base::pdu::PduError;
use base::ImPdu;
use netlib::{ConnId, Reactor};
use tt_proto::IM::BaseDefine::{
    BuddyListCmdID, FileCmdID, OtherCmdID, ServiceID, TransferFileType, UserStatType,
};
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
    let cid = pdu.command_id();
    match cid {
        c if c == FileCmdID::CID_FILE_REQUEST as u16 => {
            handle_file_request(net, state, id, user_id, &pdu)
        }
        c if c == FileCmdID::CID_FILE_HAS_OFFLINE_REQ as u16 => {
            let rsp = (
                ServiceID::SID_FILE as u16,
                FileCmdID::CID_FILE_HAS_OFFLINE_RES as u16,
            );
            // No db_proxy: an empty offline file list.
            db_serv_conn::forward_or_answer(
                net,
                state,
                id,
                user_id,
                pdu,
                rsp,
                |_: IMFileHasOfflineReq| IMFileHasOfflineRsp {
                    user_id,
                    ..IMFileHasOfflineRsp::default()
                },
            )
        }
        c if c == FileCmdID::CID_FILE_ADD_OFFLINE_REQ as u16 => {
            handle_add_offline(net, state, user_id, pdu)
        }
        c if c == FileCmdID::CID_FILE_DEL_OFFLINE_REQ as u16 => {
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
            if let Some(link) = state.db.pick(DbPick::Other) {
                let _ = net.send_pdu(link, &pdu);
            }
            // The file goes with its record: every file_server is told
            // (a C++ file_server ignores the command).
            for link in state.file.peers.open_links() {
                let _ = net.send_pdu(link, &pdu);
            }
            Ok(())
        }
        _ => {
            log::warn!("wrong file command {cid:#06x} from user {user_id}");
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
        send_msg(
            net,
            id,
            ServiceID::SID_FILE as u16,
            FileCmdID::CID_FILE_RESPONSE as u16,
            pdu.seq_num(),
            &rsp,
        );
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
    let (sid, cid) = (
        ServiceID::SID_OTHER as u16,
        OtherCmdID::CID_OTHER_FILE_TRANSFER_REQ as u16,
    );
    let Some(out) = make_pdu(sid, cid, pdu.seq_num(), &transfer) else {
        return Ok(());
    };
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
    let (sid, cid) = (
        ServiceID::SID_BUDDY_LIST as u16,
        BuddyListCmdID::CID_BUDDY_LIST_USERS_STATUS_REQUEST as u16,
    );
    if let Some(out) = make_pdu(sid, cid, pdu.seq_num(), &status_req) {
        route_serv_conn::send_to_master(net, state, &out);
    }
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
        send_msg(
            net,
            link,
            ServiceID::SID_OTHER as u16,
            OtherCmdID::CID_OTHER_FILE_TRANSFER_REQ as u16,
            seq,
            &req,
        );
        return Ok(());
    }
    log::warn!("file request: no file_server");
    let rsp = refused(
        req.from_user_id,
        req.to_user_id,
        &req.file_name,
        req.trans_mode,
    );
    let (sid, cid) = (
        ServiceID::SID_FILE as u16,
        FileCmdID::CID_FILE_RESPONSE as u16,
    );
    if let Some(conn) = state.users.conn_of(req.from_user_id, attach.handle) {
        send_msg(net, conn, sid, cid, seq, &rsp);
    }
    Ok(())
}

/// `HandleClientFileAddOfflineReq`: stored by db_proxy; the receiver's PC
/// clients (here and elsewhere) are told the file is ready.
fn handle_add_offline(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    user_id: u32,
    mut pdu: ImPdu,
) -> Handled {
    let mut req: IMFileAddOfflineReq = pdu.msg()?;
    log::info!(
        "add offline file, {user_id}->{}, task_id={}, file={}, size={}",
        req.to_user_id,
        req.task_id,
        req.file_name,
        req.file_size
    );
    if let Some(link) = state.db.pick(DbPick::Other) {
        req.from_user_id = user_id;
        pdu.set_msg(&req)?;
        let _ = net.send_pdu(link, &pdu);
    }
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
        let (sid, cid) = (
            ServiceID::SID_FILE as u16,
            FileCmdID::CID_FILE_NOTIFY as u16,
        );
        if let Some(out) = make_pdu(sid, cid, 0, &notify) {
            if let Some(to) = state.users.get(notify.to_user_id) {
                send_all(net, &to.pc_targets(None), &out);
            }
            route_serv_conn::send_to_master(net, state, &out);
        }
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
    let conn = db_serv_conn::client_of(state, rsp.user_id, rsp.attach_data.as_deref());
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
    send_to_user(net, state, msg.to_user_id, None, pdu);
    Ok(())
}
