//! The state every handler reaches through its `Ctx`: what the C++ keeps
//! in singletons (`ConfigUtil`, `TransferTaskManager`) and in
//! `GetCurrentOfflinePath`, gathered in one struct owned by the event loop.

use crate::metrics::FileMetrics;
use crate::offline_file::{new_task_id, OfflineStore};
use crate::transfer_task::TaskKind;
use crate::transfer_task_manager::TransferTaskManager;
use netlib::Reactor;
use tt_proto::IM::BaseDefine::IpAddr;

/// The file_server's state (`S` of the reactor).
pub struct FileState {
    /// `ConfigUtil::GetAddressList`: one `{ip, port}` per `ClientListenIP`
    /// address, handed to msg_servers for their clients.
    pub client_addrs: Vec<IpAddr>,
    /// Open transfer tasks.
    pub tasks: TransferTaskManager,
    /// `offline_file/` under the working directory.
    pub store: OfflineStore,
    /// Tasks and bytes, for `GET /metrics`.
    pub metrics: FileMetrics,
}

impl FileState {
    /// `GenerateUUID`: a task id no open task and no stored file has.
    pub fn new_task_id(&self) -> String {
        loop {
            let id = new_task_id(rand::random());
            if !self.tasks.contains(&id) && !self.store.exists(&id) {
                return id;
            }
        }
    }
}

/// `TransferTaskManager::OnTimer`: drops the tasks that have not moved for
/// `TaskTimeout`, closes their connections and removes unfinished uploads.
pub fn expire_tasks(net: &mut Reactor<FileState>, state: &mut FileState, now: u64) {
    for task in state.tasks.expire(now) {
        log::info!(
            "task {} ({}->{}, {:?}) still for {} ms: dropped",
            task.task_id,
            task.from_user_id,
            task.to_user_id,
            task.mode(),
            state.tasks.timeout_ms()
        );
        for conn in task.conns() {
            net.close(conn);
        }
        if let TaskKind::Upload(_) = task.kind {
            state.store.remove_part(&task.task_id);
        }
    }
}
