//! Offline-file handlers: the C++ `business/FileAction.cpp`
//! (`hasOfflineFile`, `addOfflineFile`, `delOfflineFile`).

use super::{file_model, reply, HandlerResult};
use crate::services::Services;
use base::pdu::ImPdu;
use tt_proto::IM::File::{
    IMFileAddOfflineReq, IMFileDelOfflineReq, IMFileHasOfflineReq, IMFileHasOfflineRsp,
};

/// `CID_FILE_HAS_OFFLINE_REQ`: the files waiting for the user. Without an
/// `IMTransmitFile` table the list is empty, as the C++ answers.
pub fn has_offline_file(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMFileHasOfflineReq = req.msg()?;
    let files = match file_model::get_offline_file(&services.db, msg.user_id) {
        Ok(files) => files,
        Err(e) if file_model::is_missing_table(&e) => {
            log::warn!("no IMTransmitFile table: no offline files ({e})");
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    log::info!("user {}: {} offline files", msg.user_id, files.len());
    let rsp = IMFileHasOfflineRsp {
        user_id: msg.user_id,
        offline_file_list: files,
        ip_addr_list: Vec::new(),
        attach_data: msg.attach_data,
    };
    reply(req, &rsp)
}

/// `CID_FILE_ADD_OFFLINE_REQ`: records a file left for a user; no reply.
pub fn add_offline_file(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMFileAddOfflineReq = req.msg()?;
    file_model::add_offline_file(
        &services.db,
        msg.from_user_id,
        msg.to_user_id,
        &msg.task_id,
        &msg.file_name,
        msg.file_size,
        base::tick::unix_time(),
    )?;
    log::info!(
        "offline file {} -> {}: task {}, {} ({} bytes)",
        msg.from_user_id,
        msg.to_user_id,
        msg.task_id,
        msg.file_name,
        msg.file_size
    );
    Ok(None)
}

/// `CID_FILE_DEL_OFFLINE_REQ`: forgets a file once fetched; no reply.
pub fn del_offline_file(services: &Services, req: &ImPdu) -> HandlerResult {
    let msg: IMFileDelOfflineReq = req.msg()?;
    let gone =
        file_model::del_offline_file(&services.db, msg.from_user_id, msg.to_user_id, &msg.task_id)?;
    log::info!(
        "offline file {} -> {} task {}: {}",
        msg.from_user_id,
        msg.to_user_id,
        msg.task_id,
        if gone { "deleted" } else { "not found" }
    );
    Ok(None)
}
