//! Links to file_server: the C++ `FileServConn.cpp` (`CFileServConn`,
//! `_HandleFileMsgTransRsp`); `get_random_file_serv_conn` is
//! [`crate::peers::FileServers`].
//!
//! On connect each file_server is asked where clients reach it
//! (`CID_OTHER_FILE_SERVER_IP_REQ`); file transfer requests go to a random
//! open link, and its answer (a task id) goes to both ends of the transfer.

use crate::attach_data::AttachData;
use crate::state::{send_all, MsgState};
use base::pdu::PduError;
use base::ImPdu;
use netlib::PeerLink;
use netlib::{ConnId, Ctx, Heartbeat, ImConn, Reactor};
use tt_proto::cid;
use tt_proto::IM::BaseDefine::TransferFileType;
use tt_proto::IM::File::{IMFileNotify, IMFileRsp};
use tt_proto::IM::Server::{IMFileServerIPReq, IMFileServerIPRsp, IMFileTransferRsp};

/// `CFileServConn`: the handler of the link to file_server `idx`.
#[derive(Debug)]
pub struct FileServConn {
    link: PeerLink,
}

impl FileServConn {
    /// The handler for peer `idx`.
    pub fn new(idx: usize) -> FileServConn {
        FileServConn {
            link: PeerLink::new("file_server", idx),
        }
    }
}

impl ImConn<MsgState> for FileServConn {
    /// `OnConfirm`: asks where clients reach this file_server.
    fn on_confirm(&mut self, cx: &mut Ctx<'_, MsgState>) {
        let addr = cx.peer_addr();
        self.link.confirm(&mut cx.state.file.peers, cx.id, addr);
        cx.send_msg(0, &IMFileServerIPReq {});
    }

    /// `OnClose`.
    fn on_close(&mut self, cx: &mut Ctx<'_, MsgState>) {
        let addr = cx.peer_addr();
        self.link.closed(&mut cx.state.file.peers, cx.id, addr);
        cx.state.file.ip_lists.remove(&cx.id);
    }

    /// `OnTimer`: heartbeat after 5 s of quiet, close after 30 s of silence.
    fn on_timer(&mut self, cx: &mut Ctx<'_, MsgState>, now: u64) {
        cx.keep_alive(Heartbeat::SERVER, now);
    }

    /// `HandlePdu`: a body that does not decode is logged and dropped.
    fn on_pdu(&mut self, cx: &mut Ctx<'_, MsgState>, pdu: ImPdu) {
        let handled = match pdu.command_id() {
            cid::OTHER_HEARTBEAT => Ok(()),
            cid::OTHER_FILE_SERVER_IP_RSP => pdu.msg::<IMFileServerIPRsp>().map(|rsp| {
                for ip in &rsp.ip_addr_list {
                    log::info!(
                        "file_server {} serves clients on {}:{}",
                        cx.id,
                        ip.ip,
                        ip.port
                    );
                }
                cx.state.file.ip_lists.insert(cx.id, rsp.ip_addr_list);
            }),
            cid::OTHER_FILE_TRANSFER_RSP => handle_transfer_response(cx.net, cx.state, cx.id, &pdu),
            other => {
                log::warn!("file_server: unexpected command {other:#06x} ignored");
                Ok(())
            }
        };
        if let Err(e) = handled {
            log::warn!("file_server link {}: PDU dropped: {e}", cx.id);
        }
    }
}

/// `_HandleFileMsgTransRsp`: the file_server made (or refused) a task;
/// the sender gets `CID_FILE_RESPONSE`, and on success the receiver's PC
/// clients (here and elsewhere) `CID_FILE_NOTIFY`.
fn handle_transfer_response(
    net: &mut Reactor<MsgState>,
    state: &mut MsgState,
    link: ConnId,
    pdu: &ImPdu,
) -> Result<(), PduError> {
    let rsp: IMFileTransferRsp = pdu.msg()?;
    let ip_addr_list = state.file.ip_list(link);
    let trans_mode = rsp.trans_mode.unwrap_or(TransferFileType::FILE_TYPE_ONLINE);
    let file_name = rsp.file_name.clone().unwrap_or_default();
    let task_id = rsp.task_id.clone().unwrap_or_default();
    log::info!(
        "file transfer response, result={}, {}->{}, file={file_name}, task={task_id}",
        rsp.result_code,
        rsp.from_user_id,
        rsp.to_user_id
    );
    let answer = IMFileRsp {
        result_code: rsp.result_code,
        from_user_id: rsp.from_user_id,
        to_user_id: rsp.to_user_id,
        file_name: file_name.clone(),
        task_id: task_id.clone(),
        ip_addr_list: ip_addr_list.clone(),
        trans_mode,
    };
    let handle = rsp
        .attach_data
        .as_deref()
        .and_then(|a| AttachData::decode(a).ok())
        .map_or(0, |a| a.handle);
    if let Some(sender) = state.users.conn_of(rsp.from_user_id, handle) {
        let _ = net.send_msg(sender, pdu.seq_num(), &answer);
    }
    if rsp.result_code == 0 {
        let notify = IMFileNotify {
            from_user_id: rsp.from_user_id,
            to_user_id: rsp.to_user_id,
            file_name,
            file_size: rsp.file_size.unwrap_or(0),
            task_id,
            ip_addr_list,
            trans_mode,
            offline_ready: 0,
        };
        let out = ImPdu::for_msg(0, &notify)?;
        if let Some(to) = state.users.get(rsp.to_user_id) {
            send_all(net, &to.pc_targets(None), &out);
        }
        state.route.to_master(net, &out);
    }
    Ok(())
}
