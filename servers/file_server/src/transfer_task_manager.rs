//! The task table: the C++ `transfer_task_manager.cpp`
//! (`TransferTaskManager`: `NewTransferTask`, `FindByTaskID`,
//! `DeleteTransferTask`, `OnTimer`).
//!
//! Differences from the C++, on purpose:
//! - The table holds at most [`MAX_TASKS`] tasks; past that a transfer
//!   request is refused (result 1) rather than the table growing.
//! - [`expire`](TransferTaskManager::expire) drops every task that has not
//!   moved for `TaskTimeout` (the C++ timer tests a condition that never
//!   holds, so its tasks live until both connections close, and forever if
//!   nobody joins).
//! - Finished offline files are not tasks: a download is served from disk
//!   by its own connection (the C++ keeps one task, file handle and cursor
//!   per file, shared by every downloader, and frees it when the first one
//!   closes, under the others).

use crate::transfer_task::TransferTask;
use std::collections::HashMap;
use thiserror::Error;

/// Most tasks at once (a flood of transfer requests cannot grow the table).
pub const MAX_TASKS: usize = 65_536;

/// Why a task could not be made.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TaskError {
    /// [`MAX_TASKS`] tasks are open.
    #[error("{MAX_TASKS} tasks are open")]
    Full,
    /// The id is taken (never, for ids from [`crate::offline_file::new_task_id`]).
    #[error("task {0} exists")]
    Exists(String),
}

/// `TransferTaskManager`: every open task by id.
#[derive(Debug)]
pub struct TransferTaskManager {
    tasks: HashMap<String, TransferTask>,
    /// `TaskTimeout`, in ms.
    timeout_ms: u64,
}

impl TransferTaskManager {
    /// An empty table whose tasks expire after `timeout_ms` of stillness.
    pub fn new(timeout_ms: u64) -> TransferTaskManager {
        TransferTaskManager {
            tasks: HashMap::new(),
            timeout_ms,
        }
    }

    /// `TaskTimeout` in ms.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// `NewTransferTask`.
    pub fn insert(&mut self, task: TransferTask) -> Result<(), TaskError> {
        if self.tasks.len() >= MAX_TASKS {
            return Err(TaskError::Full);
        }
        if self.tasks.contains_key(&task.task_id) {
            return Err(TaskError::Exists(task.task_id));
        }
        self.tasks.insert(task.task_id.clone(), task);
        Ok(())
    }

    /// Whether `task_id` is an open task.
    pub fn contains(&self, task_id: &str) -> bool {
        self.tasks.contains_key(task_id)
    }

    /// `FindByTaskID`.
    pub fn get_mut(&mut self, task_id: &str) -> Option<&mut TransferTask> {
        self.tasks.get_mut(task_id)
    }

    /// `DeleteTransferTask`.
    pub fn remove(&mut self, task_id: &str) -> Option<TransferTask> {
        self.tasks.remove(task_id)
    }

    /// Number of open tasks.
    pub fn open_count(&self) -> usize {
        self.tasks.len()
    }

    /// `OnTimer`: removes and returns the tasks that have not moved for
    /// `TaskTimeout` at `now` (ms); the caller closes their connections.
    pub fn expire(&mut self, now: u64) -> Vec<TransferTask> {
        let timeout = self.timeout_ms;
        let stale: Vec<String> = self
            .tasks
            .values()
            .filter(|t| t.stalled(now, timeout))
            .map(|t| t.task_id.clone())
            .collect();
        stale
            .iter()
            .filter_map(|id| self.tasks.remove(id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tt_proto::IM::BaseDefine::TransferFileType;

    fn task(id: &str, now: u64) -> TransferTask {
        TransferTask::new(
            id.into(),
            TransferFileType::FILE_TYPE_ONLINE,
            1,
            2,
            "f".into(),
            1,
            now,
            0,
        )
    }

    #[test]
    fn tasks_expire_when_still_for_the_timeout() {
        let mut m = TransferTaskManager::new(2_000);
        m.insert(task("a", 0)).unwrap();
        m.insert(task("b", 1_500)).unwrap();
        assert_eq!(m.insert(task("a", 0)), Err(TaskError::Exists("a".into())));
        assert!(m.expire(2_000).is_empty());
        let gone: Vec<String> = m.expire(2_001).into_iter().map(|t| t.task_id).collect();
        assert_eq!(gone, vec!["a".to_string()]);
        m.get_mut("b").unwrap().last_active = 3_000;
        assert!(m.expire(4_000).is_empty());
        assert_eq!(m.expire(5_001).len(), 1);
        assert_eq!(m.open_count(), 0);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut m = TransferTaskManager::new(1);
        for i in 0..MAX_TASKS {
            m.insert(task(&i.to_string(), 0)).unwrap();
        }
        assert_eq!(m.insert(task("one more", 0)), Err(TaskError::Full));
        assert_eq!(m.open_count(), MAX_TASKS);
    }
}
