//! The client port: the C++ `file_client_conn.cpp` (`FileClientConn`).
//!
//! A client connection logs in for one task (`CID_FILE_LOGIN_REQ`) as the
//! sender or receiver of an online transfer, the uploader of an offline
//! file, or its downloader, then moves data with `CID_FILE_PULL_DATA_REQ`
//! and `_RSP` and ends with `CID_FILE_STATE`. The rules are in
//! [`crate::transfer_task`] and [`crate::offline_file`]; this module does
//! the I/O.
//!
//! Differences from the C++, on purpose:
//! - A PDU whose body does not decode, or that breaks the task's rules
//!   (another user or task, an offset or length outside the file, data
//!   nobody asked for, more than 8 pulls in flight), closes that one
//!   connection with a log line; so does a download connection whose
//!   unread replies pass 4 MiB. Every other transfer carries on.
//! - A second login on a connection is refused (result 1, closed); the C++
//!   moves the connection to the new task and leaves the old one pointing
//!   at it.
//! - When one end of an online transfer goes, the other is closed at once
//!   and the task deleted (the C++ marks the task and closes the other end
//!   on its next 1 s tick). An upload that ends before its last segment
//!   deletes its task and its partial file.
//! - A connection that has not logged in within `TaskTimeout`, and a
//!   download that has not pulled for `TaskTimeout`, are closed; a client
//!   silent for 120 s is closed, as in the C++.

use crate::offline_file::{
    is_task_id, segment_at, FileHeader, OfflineError, StoredFile, UploadFile,
};
use crate::state::FileState;
use crate::transfer_task::{Fault, Joined, Side, TaskKind, UploadStep};
use base::pdu::{PduError, CLIENT_MAX_PDU_LEN};
use base::tick::monotonic_ms;
use base::ImPdu;
use netlib::{Ctx, Heartbeat, ImConn};
use thiserror::Error;
use tt_proto::cid;
use tt_proto::IM::BaseDefine::{ClientFileRole, ClientFileState, TransferFileType};
use tt_proto::IM::File::{
    IMFileLoginReq, IMFileLoginRsp, IMFilePullDataReq, IMFilePullDataRsp, IMFileState,
};

/// Unread reply bytes a download connection may leave queued before it is
/// closed as a flood (a real client reads each segment before the next).
pub const MAX_DOWNLOAD_BACKLOG: usize = 4 * 1024 * 1024;

/// Why a client connection is closed.
#[derive(Debug, Error)]
enum ClientError {
    /// The body does not decode.
    #[error(transparent)]
    Pdu(#[from] PduError),
    /// The PDU breaks the task's rules.
    #[error(transparent)]
    Fault(#[from] Fault),
    /// The offline file failed.
    #[error(transparent)]
    Offline(#[from] OfflineError),
    /// The task was dropped (expired, or its peer ended it).
    #[error("task {0} is gone")]
    TaskGone(String),
    /// A download that does not read its replies.
    #[error("{0} reply bytes unread")]
    Flood(usize),
    /// A state this end may not send.
    #[error("file state {0:?} from a client")]
    BadState(ClientFileState),
}

/// What a logged-in connection is doing.
#[derive(Debug)]
enum Session {
    /// An end of an online task, or an upload, in the task table.
    Task {
        task_id: String,
        side: Side,
        /// The upload's file, for an offline upload.
        upload: Option<UploadFile>,
    },
    /// A download of a stored file.
    Download {
        user: u32,
        file: StoredFile,
        /// When it last pulled (monotonic ms).
        last_active: u64,
    },
}

/// `FileClientConn`: one client connection.
#[derive(Debug)]
pub struct FileClientConn {
    session: Option<Session>,
    /// When it was accepted (monotonic ms).
    accepted: u64,
}

impl FileClientConn {
    /// A connection accepted now.
    pub fn new() -> FileClientConn {
        FileClientConn {
            session: None,
            accepted: monotonic_ms(),
        }
    }
}

impl Default for FileClientConn {
    fn default() -> Self {
        FileClientConn::new()
    }
}

/// `_StatesNotify`.
fn file_state(state: ClientFileState, task_id: &str, user_id: u32) -> IMFileState {
    IMFileState {
        state,
        task_id: task_id.to_string(),
        user_id,
    }
}

impl ImConn<FileState> for FileClientConn {
    fn max_pdu_len(&self) -> u32 {
        CLIENT_MAX_PDU_LEN
    }

    fn on_connect(&mut self, cx: &mut Ctx<'_, FileState>) {
        log::debug!("client {} connected from {:?}", cx.id, cx.peer_addr());
    }

    /// `Close`: an online task ends with either end, an unfinished upload
    /// is deleted.
    fn on_close(&mut self, cx: &mut Ctx<'_, FileState>) {
        log::debug!("client {} ({:?}) closed", cx.id, cx.peer_addr());
        let Some(Session::Task {
            task_id, upload, ..
        }) = self.session.take()
        else {
            return;
        };
        let Some(task) = cx.state.tasks.remove(&task_id) else {
            return;
        };
        match task.kind {
            TaskKind::Online(_) => {
                log::info!("task {task_id}: an end closed, the transfer ends");
                for conn in task.conns().into_iter().filter(|&c| c != cx.id) {
                    cx.net.close(conn);
                }
            }
            TaskKind::Upload(_) => {
                log::info!("task {task_id}: upload abandoned, partial file removed");
                drop(upload);
                cx.state.store.remove_part(&task_id);
            }
        }
    }

    /// `OnTimer`.
    fn on_timer(&mut self, cx: &mut Ctx<'_, FileState>, now: u64) {
        if !cx.keep_alive(Heartbeat::CLIENT, now) {
            return;
        }
        let timeout = cx.state.tasks.timeout_ms();
        let idle_since = match &self.session {
            None => Some(self.accepted),
            Some(Session::Download { last_active, .. }) => Some(*last_active),
            Some(Session::Task { .. }) => None,
        };
        if idle_since.is_some_and(|t| now.saturating_sub(t) > timeout) {
            log::info!(
                "client {} ({:?}): no login or pull for {timeout} ms, closing",
                cx.id,
                cx.peer_addr()
            );
            cx.close();
        }
    }

    /// `HandlePdu`.
    fn on_pdu(&mut self, cx: &mut Ctx<'_, FileState>, pdu: ImPdu) {
        let command = pdu.command_id();
        let handled = match command {
            cid::OTHER_HEARTBEAT => {
                cx.send_pdu(&pdu);
                Ok(())
            }
            cid::FILE_LOGIN_REQ => self.login(cx, &pdu),
            cid::FILE_STATE | cid::FILE_PULL_DATA_REQ | cid::FILE_PULL_DATA_RSP
                if self.session.is_none() =>
            {
                log::debug!("client {}: {command:#06x} before login ignored", cx.id);
                Ok(())
            }
            cid::FILE_STATE => self.state(cx, &pdu),
            cid::FILE_PULL_DATA_REQ => self.pull_req(cx, &pdu),
            cid::FILE_PULL_DATA_RSP => self.pull_rsp(cx, pdu),
            other => {
                log::debug!("client {}: unknown command {other:#06x} ignored", cx.id);
                Ok(())
            }
        };
        if let Err(e) = handled {
            log::warn!("client {} ({:?}): {e}; closing", cx.id, cx.peer_addr());
            cx.close();
        }
    }
}

impl FileClientConn {
    /// `_HandleClientFileLoginReq`.
    fn login(&mut self, cx: &mut Ctx<'_, FileState>, pdu: &ImPdu) -> Result<(), ClientError> {
        let req: IMFileLoginReq = pdu.msg()?;
        log::info!(
            "client {}: login of user {} for task {:?} as {:?}",
            cx.id,
            req.user_id,
            req.task_id,
            req.file_role
        );
        let joined = if self.session.is_some() {
            Err("this connection is logged in already".to_string())
        } else {
            self.join(cx, &req)
        };
        let ok = joined.is_ok();
        let rsp = IMFileLoginRsp {
            result_code: u32::from(!ok),
            task_id: req.task_id.clone(),
        };
        cx.send_msg(pdu.seq_num(), &rsp);
        match joined {
            Err(reason) => {
                log::warn!(
                    "client {}: login of user {} for task {:?} refused: {reason}",
                    cx.id,
                    req.user_id,
                    req.task_id
                );
                cx.close_after_flush();
                Ok(())
            }
            Ok(joined) => self.after_join(cx, &req, joined),
        }
    }

    /// The login's decision: a session, or why not.
    fn join(
        &mut self,
        cx: &mut Ctx<'_, FileState>,
        req: &IMFileLoginReq,
    ) -> Result<Option<Joined>, String> {
        let task_id = &req.task_id;
        if !is_task_id(task_id) {
            return Err("not a task id".into());
        }
        let now = monotonic_ms();
        if req.file_role == ClientFileRole::CLIENT_OFFLINE_DOWNLOAD {
            if cx.state.tasks.contains(task_id) {
                return Err("the task has no finished offline file".into());
            }
            let file = cx
                .state
                .store
                .open_stored(task_id)
                .map_err(|e| e.to_string())?;
            if file.header.to_user_id != req.user_id {
                return Err(format!(
                    "user {} is not the receiver ({})",
                    req.user_id, file.header.to_user_id
                ));
            }
            self.session = Some(Session::Download {
                user: req.user_id,
                file,
                last_active: now,
            });
            return Ok(None);
        }
        let state = &mut *cx.state;
        let task = state.tasks.get_mut(task_id).ok_or("unknown task")?;
        let (side, joined) = task
            .login(req.user_id, req.file_role, cx.id, now)
            .map_err(|e| e.to_string())?;
        let upload = if matches!(task.kind, TaskKind::Upload(_)) {
            let header = FileHeader {
                task_id: task.task_id.clone(),
                from_user_id: task.from_user_id,
                to_user_id: task.to_user_id,
                create_time: task.create_time,
                file_name: task.file_name.clone(),
                file_size: task.file_size,
            };
            match state.store.create_upload(&header) {
                Ok(f) => Some(f),
                Err(e) => {
                    state.tasks.remove(task_id);
                    state.store.remove_part(task_id);
                    return Err(format!("cannot store the upload: {e}"));
                }
            }
        } else {
            None
        };
        self.session = Some(Session::Task {
            task_id: task_id.clone(),
            side,
            upload,
        });
        Ok(Some(joined))
    }

    /// What follows a successful login.
    fn after_join(
        &mut self,
        cx: &mut Ctx<'_, FileState>,
        req: &IMFileLoginReq,
        joined: Option<Joined>,
    ) -> Result<(), ClientError> {
        let task_id = &req.task_id;
        match joined {
            None | Some(Joined::Waiting) => {}
            Some(Joined::PeerReady(receiver)) => {
                let from = self.task_from(cx, task_id)?;
                let ready = file_state(ClientFileState::CLIENT_FILE_PEER_READY, task_id, from);
                let _ = cx.net.send_msg(receiver, 0, &ready);
                log::info!("task {task_id}: both ends in, receiver told");
            }
            Some(Joined::PullFirst { offset, size }) => {
                self.pull_segment(cx, task_id, req.user_id, offset, size);
            }
            Some(Joined::EmptyUpload) => self.finish_upload(cx, task_id)?,
        }
        Ok(())
    }

    fn task_from(&self, cx: &mut Ctx<'_, FileState>, task_id: &str) -> Result<u32, ClientError> {
        cx.state
            .tasks
            .get_mut(task_id)
            .map(|t| t.from_user_id)
            .ok_or_else(|| ClientError::TaskGone(task_id.to_string()))
    }

    /// Asks the uploader for one segment (the server's own pull).
    fn pull_segment(
        &self,
        cx: &mut Ctx<'_, FileState>,
        task_id: &str,
        user_id: u32,
        offset: u32,
        size: u32,
    ) {
        let req = IMFilePullDataReq {
            task_id: task_id.to_string(),
            user_id,
            trans_mode: TransferFileType::FILE_TYPE_OFFLINE,
            offset,
            data_size: size,
        };
        cx.send_msg(0, &req);
    }

    /// The upload is complete: stored under its final name, the uploader
    /// told `DONE`, the task gone.
    fn finish_upload(
        &mut self,
        cx: &mut Ctx<'_, FileState>,
        task_id: &str,
    ) -> Result<(), ClientError> {
        let Some(Session::Task { upload, .. }) = self.session.take() else {
            return Err(ClientError::TaskGone(task_id.to_string()));
        };
        let task = cx
            .state
            .tasks
            .remove(task_id)
            .ok_or_else(|| ClientError::TaskGone(task_id.to_string()))?;
        let Some(upload) = upload else {
            return Err(ClientError::TaskGone(task_id.to_string()));
        };
        if let Err(e) = upload.finish(&cx.state.store) {
            cx.state.store.remove_part(task_id);
            return Err(e.into());
        }
        log::info!(
            "task {task_id}: offline file of {} bytes from {} to {} stored",
            task.file_size,
            task.from_user_id,
            task.to_user_id
        );
        let done = file_state(
            ClientFileState::CLIENT_FILE_DONE,
            task_id,
            task.from_user_id,
        );
        cx.send_msg(0, &done);
        cx.close_after_flush();
        Ok(())
    }

    /// `_HandleClientFileStates`: `CANCEL`, `REFUSE` and `DONE` go to the
    /// other end; both connections close and the task is deleted.
    fn state(&mut self, cx: &mut Ctx<'_, FileState>, pdu: &ImPdu) -> Result<(), ClientError> {
        let msg: IMFileState = pdu.msg()?;
        log::info!(
            "client {}: state {:?} for task {:?} from user {}",
            cx.id,
            msg.state,
            msg.task_id,
            msg.user_id
        );
        match &self.session {
            Some(Session::Task { task_id, side, .. }) => {
                let task = cx
                    .state
                    .tasks
                    .get_mut(task_id)
                    .ok_or_else(|| ClientError::TaskGone(task_id.clone()))?;
                task.check_claim(*side, msg.user_id, &msg.task_id)?;
            }
            Some(Session::Download { user, file, .. }) => {
                if msg.user_id != *user || msg.task_id != file.header.task_id {
                    return Err(Fault::NotYours {
                        user: msg.user_id,
                        task_id: msg.task_id,
                    }
                    .into());
                }
            }
            None => return Ok(()),
        }
        if msg.state == ClientFileState::CLIENT_FILE_PEER_READY {
            return Err(ClientError::BadState(msg.state));
        }
        if let Some(Session::Task { task_id, side, .. }) = &self.session {
            let task_id = task_id.clone();
            let side = *side;
            if let Some(task) = cx.state.tasks.get_mut(&task_id) {
                if let TaskKind::Online(o) = &task.kind {
                    let peer = match side {
                        Side::Sender => o.receiver,
                        Side::Receiver => o.sender,
                    };
                    if let Some(peer) = peer {
                        let _ = cx.net.send_pdu(peer, pdu);
                        cx.net.close_after_flush(peer);
                    }
                    cx.state.tasks.remove(&task_id);
                    self.session = None;
                }
            }
            // An upload ended early: on_close removes the task and its file.
        }
        cx.close_after_flush();
        Ok(())
    }

    /// `_HandleClientFilePullFileReq`: online, relayed to the sender; a
    /// download, answered from the stored file.
    fn pull_req(&mut self, cx: &mut Ctx<'_, FileState>, pdu: &ImPdu) -> Result<(), ClientError> {
        let req: IMFilePullDataReq = pdu.msg()?;
        let now = monotonic_ms();
        match &mut self.session {
            Some(Session::Task { task_id, side, .. }) => {
                let task = cx
                    .state
                    .tasks
                    .get_mut(task_id)
                    .ok_or_else(|| ClientError::TaskGone(task_id.clone()))?;
                task.check_claim(*side, req.user_id, &req.task_id)?;
                let sender = task.pull(*side, req.offset, req.data_size, pdu.seq_num(), now)?;
                let _ = cx.net.send_pdu(sender, pdu);
                Ok(())
            }
            Some(Session::Download {
                user,
                file,
                last_active,
            }) => {
                if req.user_id != *user || req.task_id != file.header.task_id {
                    return Err(Fault::NotYours {
                        user: req.user_id,
                        task_id: req.task_id,
                    }
                    .into());
                }
                let file_size = file.header.file_size;
                let segment = segment_at(req.offset, file_size).ok_or(Fault::BadPull {
                    offset: req.offset,
                    size: req.data_size,
                    file_size,
                })?;
                let backlog = cx.net.backlog(cx.id);
                if backlog > MAX_DOWNLOAD_BACKLOG {
                    return Err(ClientError::Flood(backlog));
                }
                *last_active = now;
                let rsp = IMFilePullDataRsp {
                    result_code: 0,
                    task_id: req.task_id.clone(),
                    user_id: req.user_id,
                    offset: segment.offset,
                    file_data: file.read(segment)?,
                };
                let sent = rsp.file_data.len() as u64;
                cx.state.metrics.bytes.add("download", sent);
                cx.send_msg(pdu.seq_num(), &rsp);
                if segment.last {
                    let from = file.header.from_user_id;
                    log::info!("task {}: download complete", req.task_id);
                    cx.send_msg(
                        0,
                        &file_state(ClientFileState::CLIENT_FILE_DONE, &req.task_id, from),
                    );
                    cx.close_after_flush();
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// `_HandleClientFilePullFileRsp`: online, relayed to the receiver with
    /// its pull's seq; an upload, written and the next segment pulled.
    fn pull_rsp(&mut self, cx: &mut Ctx<'_, FileState>, mut pdu: ImPdu) -> Result<(), ClientError> {
        let rsp: IMFilePullDataRsp = pdu.msg()?;
        let now = monotonic_ms();
        let Some(Session::Task {
            task_id,
            side,
            upload,
        }) = &mut self.session
        else {
            return Err(Fault::WrongSide("downloader").into());
        };
        let task = cx
            .state
            .tasks
            .get_mut(task_id)
            .ok_or_else(|| ClientError::TaskGone(task_id.clone()))?;
        task.check_claim(*side, rsp.user_id, &rsp.task_id)?;
        if let TaskKind::Online(_) = task.kind {
            let (receiver, seq) = task.data(*side, rsp.offset, rsp.file_data.len(), now)?;
            pdu.set_seq_num(seq);
            let _ = cx.net.send_pdu(receiver, &pdu);
            let relayed = rsp.file_data.len() as u64;
            cx.state.metrics.bytes.add("online", relayed);
            return Ok(());
        }
        let step = task.upload(rsp.offset, rsp.file_data.len(), now)?;
        let from = task.from_user_id;
        match upload {
            Some(f) => {
                f.write(&rsp.file_data)?;
                let stored = rsp.file_data.len() as u64;
                cx.state.metrics.bytes.add("upload", stored);
            }
            None => return Err(ClientError::TaskGone(task_id.clone())),
        }
        match step {
            UploadStep::Next { offset, size } => {
                let task_id = task_id.clone();
                self.pull_segment(cx, &task_id, from, offset, size);
                Ok(())
            }
            UploadStep::Done => {
                let task_id = task_id.clone();
                self.finish_upload(cx, &task_id)
            }
        }
    }
}
