//! The msg_server port: the C++ `file_msg_server_conn.cpp`
//! (`FileMsgServerConn`).
//!
//! Each msg_server connects here, asks where clients reach us
//! (`CID_OTHER_FILE_SERVER_IP_REQ`) and opens a task for each file
//! transfer its clients ask for (`CID_OTHER_FILE_TRANSFER_REQ`): the answer
//! carries a new task id, and the client then logs in on the client port.
//!
//! Differences from the C++, on purpose:
//! - A request that cannot become a task (an unknown mode, a full table)
//!   is answered with result 1 and the link stays up (the C++ closes the
//!   msg_server link).
//! - `CID_FILE_DEL_OFFLINE_REQ`, which our msg_server sends here after
//!   the record is deleted, deletes the stored file if its header names
//!   the same sender and receiver (the C++ file_server ignores the
//!   command and keeps every file forever).
//! - A body that does not decode is logged and dropped; the link stays up
//!   (as every server link in tt-rs).

use crate::offline_file::is_task_id;
use crate::state::FileState;
use crate::transfer_task::TransferTask;
use base::pdu::PduError;
use base::tick::{monotonic_ms, unix_time};
use base::ImPdu;
use netlib::imconn::SERVER_TIMEOUT;
use netlib::{Ctx, Heartbeat, ImConn};
use tt_proto::cid;
use tt_proto::IM::File::IMFileDelOfflineReq;
use tt_proto::IM::Server::{IMFileServerIPRsp, IMFileTransferReq, IMFileTransferRsp};

/// msg_server heartbeats us; we only answer (as the C++), and close a
/// link silent for 30 s.
const MSG_SERVER_LINK: Heartbeat = Heartbeat {
    send_after_ms: None,
    timeout_ms: SERVER_TIMEOUT,
};

/// `FileMsgServerConn`: one msg_server link.
#[derive(Debug, Default)]
pub struct FileMsgServerConn;

impl ImConn<FileState> for FileMsgServerConn {
    fn on_connect(&mut self, cx: &mut Ctx<'_, FileState>) {
        log::info!("msg_server connected from {:?}", cx.peer_addr());
    }

    fn on_close(&mut self, cx: &mut Ctx<'_, FileState>) {
        log::info!("msg_server link from {:?} closed", cx.peer_addr());
    }

    /// `OnTimer`: 30 s of silence closes the link.
    fn on_timer(&mut self, cx: &mut Ctx<'_, FileState>, now: u64) {
        cx.keep_alive(MSG_SERVER_LINK, now);
    }

    /// `HandlePdu`.
    fn on_pdu(&mut self, cx: &mut Ctx<'_, FileState>, pdu: ImPdu) {
        let handled = match pdu.command_id() {
            cid::OTHER_HEARTBEAT => {
                cx.send_pdu(&pdu);
                Ok(())
            }
            cid::OTHER_FILE_SERVER_IP_REQ => {
                let rsp = IMFileServerIPRsp {
                    ip_addr_list: cx.state.client_addrs.clone(),
                };
                cx.send_msg(pdu.seq_num(), &rsp);
                Ok(())
            }
            cid::OTHER_FILE_TRANSFER_REQ => handle_transfer_req(cx, &pdu),
            cid::FILE_DEL_OFFLINE_REQ => handle_del_offline(cx, &pdu),
            other => {
                log::warn!(
                    "msg_server link {}: unknown command {other:#06x} ignored",
                    cx.id
                );
                Ok(())
            }
        };
        if let Err(e) = handled {
            log::warn!("msg_server link {}: PDU dropped: {e}", cx.id);
        }
    }
}

/// `_HandleMsgFileTransferReq`: a new task, its id in the answer.
fn handle_transfer_req(cx: &mut Ctx<'_, FileState>, pdu: &ImPdu) -> Result<(), PduError> {
    let req: IMFileTransferReq = pdu.msg()?;
    let mut rsp = IMFileTransferRsp {
        result_code: 1,
        from_user_id: req.from_user_id,
        to_user_id: req.to_user_id,
        file_name: Some(req.file_name.clone()),
        file_size: Some(req.file_size),
        task_id: Some(String::new()),
        trans_mode: Some(req.trans_mode),
        attach_data: req.attach_data.clone(),
    };
    let task_id = cx.state.new_task_id();
    let task = TransferTask::new(
        task_id.clone(),
        req.trans_mode,
        req.from_user_id,
        req.to_user_id,
        req.file_name,
        req.file_size,
        monotonic_ms(),
        u64::from(unix_time()),
    );
    let inserted = cx.state.tasks.insert(task);
    let result = if inserted.is_ok() { "ok" } else { "refused" };
    cx.state.metrics.tasks.inc(result);
    match inserted {
        Ok(()) => {
            log::info!(
                "task {task_id}: {:?} {}->{}, {} bytes ({} tasks open)",
                req.trans_mode,
                req.from_user_id,
                req.to_user_id,
                req.file_size,
                cx.state.tasks.open_count()
            );
            rsp.result_code = 0;
            rsp.task_id = Some(task_id);
        }
        Err(e) => log::warn!(
            "transfer {}->{} refused: {e}",
            req.from_user_id,
            req.to_user_id
        ),
    }
    cx.send_msg(pdu.seq_num(), &rsp);
    Ok(())
}

/// The record of an offline file was deleted: its file goes too.
fn handle_del_offline(cx: &mut Ctx<'_, FileState>, pdu: &ImPdu) -> Result<(), PduError> {
    let req: IMFileDelOfflineReq = pdu.msg()?;
    if !is_task_id(&req.task_id) {
        log::warn!("delete of offline file {:?}: not a task id", req.task_id);
        return Ok(());
    }
    match cx
        .state
        .store
        .remove_stored(&req.task_id, req.from_user_id, req.to_user_id)
    {
        Ok(true) => log::info!(
            "offline file {} ({}->{}) deleted with its record",
            req.task_id,
            req.from_user_id,
            req.to_user_id
        ),
        Ok(false) => log::debug!("offline file {} is not here", req.task_id),
        Err(e) => log::warn!("delete of offline file {}: {e}", req.task_id),
    }
    Ok(())
}
