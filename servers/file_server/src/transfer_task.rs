//! A transfer task and its rules: the C++ `transfer_task.cpp`
//! (`BaseTransferTask`, `OnlineTransferTask`, `OfflineTransferTask`:
//! `ChangePullState`, `CheckByUserIDAndFileRole`, `DoRecvData`,
//! `DoPullFileRequest`).
//!
//! Pure: every decision is a function of the task, the request and the
//! time, and returns what to do; the sockets and files are in
//! [`crate::file_client_conn`]. An online task relays the receiver's pulls
//! to the sender and the sender's data back; an offline task is an upload
//! the server pulls segment by segment (downloads are per connection, see
//! [`crate::offline_file::segment_at`]).
//!
//! Differences from the C++, on purpose:
//! - Every offset and length is checked against the task: an online pull
//!   must lie inside the file and is answered in order, by data that fits
//!   the pull (the C++ relays anything); an upload segment must be exactly
//!   the one asked for (the C++ writes its expected length whatever the
//!   client sent, so a short chunk writes garbage and still reports DONE).
//! - At most [`MAX_PULLS_IN_FLIGHT`] pulls of [`MAX_PULL_SIZE`] each wait
//!   for the sender, so what a transfer holds in memory is bounded.
//! - A task remembers when it last moved; one that does not move for
//!   `TaskTimeout` is dropped (in the C++ `TaskTimeout` has no effect).

use netlib::ConnId;
use std::collections::VecDeque;
use thiserror::Error;
use tt_proto::IM::BaseDefine::{ClientFileRole, TransferFileType};

use crate::offline_file::SEGMENT_SIZE;

/// The most data one online pull may ask for (a client PDU is at most
/// 1 MiB; the real clients ask for 34 KiB).
pub const MAX_PULL_SIZE: u32 = 1024 * 1024 - 4096;
/// Pulls of one online task relayed to the sender and not answered yet.
/// The real clients keep one.
pub const MAX_PULLS_IN_FLIGHT: usize = 8;

/// Why a login is refused (`LOGIN_RES` result 1).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The role does not fit the task's mode.
    #[error("role {0:?} does not fit this task")]
    WrongRole(ClientFileRole),
    /// The user is not the sender (or receiver) the role needs.
    #[error("user {user} is not the {side} of this task")]
    WrongUser {
        /// Who logged in.
        user: u32,
        /// `sender` or `receiver`.
        side: &'static str,
    },
    /// That end of the task already has a connection.
    #[error("the {0} is already logged in")]
    AlreadyIn(&'static str),
}

/// A request that breaks the task's rules: the connection that sent it is
/// closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Fault {
    /// The user or task id in the PDU is not the connection's.
    #[error("PDU names user {user} task {task_id:?}, not this connection's")]
    NotYours {
        /// The user the PDU names.
        user: u32,
        /// The task it names.
        task_id: String,
    },
    /// Only the other end may send this.
    #[error("the {0} may not send this")]
    WrongSide(&'static str),
    /// The other end has not logged in yet.
    #[error("the peer is not logged in yet")]
    PeerAbsent,
    /// A pull outside the file or too big.
    #[error("pull of {size} bytes at {offset} does not fit a {file_size}-byte file")]
    BadPull {
        /// Offset asked.
        offset: u32,
        /// Size asked.
        size: u32,
        /// The file's size.
        file_size: u32,
    },
    /// Too many pulls waiting for the sender.
    #[error("more than {MAX_PULLS_IN_FLIGHT} pulls in flight")]
    TooManyPulls,
    /// Data that answers no pull, or does not fit the pull it answers.
    #[error("{len} bytes at {offset} answer no pull (expected {expected})")]
    BadData {
        /// Offset sent.
        offset: u32,
        /// Length sent.
        len: usize,
        /// What was expected.
        expected: String,
    },
}

/// One end of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `from_user_id`: has the file.
    Sender,
    /// `to_user_id`: wants it.
    Receiver,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Sender => "sender",
            Side::Receiver => "receiver",
        }
    }
}

/// A pull relayed to the sender, waiting for its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pull {
    /// Offset asked.
    pub offset: u32,
    /// Size asked.
    pub size: u32,
    /// The receiver's seq, given back with the data.
    pub seq: u16,
}

/// An online transfer (`OnlineTransferTask`): both ends connected, the
/// receiver pulls through us.
#[derive(Debug, Default)]
pub struct OnlineTask {
    /// `from_conn_`.
    pub sender: Option<ConnId>,
    /// `to_conn_`.
    pub receiver: Option<ConnId>,
    /// Pulls relayed and not answered, oldest first.
    pub pulls: VecDeque<Pull>,
}

/// An offline upload (`OfflineTransferTask` while uploading): we pull the
/// file from the sender one segment at a time.
#[derive(Debug, Default)]
pub struct UploadTask {
    /// The uploader's connection.
    pub uploader: Option<ConnId>,
    /// Bytes received and written so far (the next segment's offset).
    pub received: u32,
}

/// What kind of task and how far it is.
#[derive(Debug)]
pub enum TaskKind {
    /// `FILE_TYPE_ONLINE`.
    Online(OnlineTask),
    /// `FILE_TYPE_OFFLINE` before its upload completes.
    Upload(UploadTask),
}

/// `BaseTransferTask`: one file from one user to another.
#[derive(Debug)]
pub struct TransferTask {
    /// `task_id_` (a UUID we issued).
    pub task_id: String,
    /// `from_user_id_`.
    pub from_user_id: u32,
    /// `to_user_id_`.
    pub to_user_id: u32,
    /// `file_name_`.
    pub file_name: String,
    /// `file_size_`.
    pub file_size: u32,
    /// When the task was made, unix seconds (the offline header's time).
    pub create_time: u64,
    /// When it last moved (monotonic ms): a login, a pull, data.
    pub last_active: u64,
    /// Its mode and progress.
    pub kind: TaskKind,
}

/// What a successful login leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// Wait for the other end.
    Waiting,
    /// Both ends are in: tell the receiver on this connection `PEER_READY`.
    PeerReady(ConnId),
    /// An upload starts: pull this segment from the uploader.
    PullFirst {
        /// Offset (0).
        offset: u32,
        /// Size.
        size: u32,
    },
    /// An upload of an empty file: complete at once.
    EmptyUpload,
}

/// What an accepted upload segment leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStep {
    /// Pull the next segment.
    Next {
        /// Its offset.
        offset: u32,
        /// Its size.
        size: u32,
    },
    /// The file is complete.
    Done,
}

impl TransferTask {
    /// A task as `NewTransferTask` makes it, at `now` (ms) / `unix` (s).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        task_id: String,
        mode: TransferFileType,
        from_user_id: u32,
        to_user_id: u32,
        file_name: String,
        file_size: u32,
        now: u64,
        unix: u64,
    ) -> TransferTask {
        let kind = match mode {
            TransferFileType::FILE_TYPE_ONLINE => TaskKind::Online(OnlineTask::default()),
            TransferFileType::FILE_TYPE_OFFLINE => TaskKind::Upload(UploadTask::default()),
        };
        TransferTask {
            task_id,
            from_user_id,
            to_user_id,
            file_name,
            file_size,
            create_time: unix,
            last_active: now,
            kind,
        }
    }

    /// `FILE_TYPE_ONLINE` or `FILE_TYPE_OFFLINE`.
    pub fn mode(&self) -> TransferFileType {
        match self.kind {
            TaskKind::Online(_) => TransferFileType::FILE_TYPE_ONLINE,
            TaskKind::Upload(_) => TransferFileType::FILE_TYPE_OFFLINE,
        }
    }

    /// The connections on this task.
    pub fn conns(&self) -> Vec<ConnId> {
        match &self.kind {
            TaskKind::Online(o) => o.sender.into_iter().chain(o.receiver).collect(),
            TaskKind::Upload(u) => u.uploader.into_iter().collect(),
        }
    }

    /// True when the task has not moved for `timeout_ms` at `now`.
    pub fn stalled(&self, now: u64, timeout_ms: u64) -> bool {
        now.saturating_sub(self.last_active) > timeout_ms
    }

    /// The side `role` takes, if `user` may take it
    /// (`CheckByUserIDAndFileRole`). Downloads are not tasks: a finished
    /// offline file is served from disk.
    fn side_of(&self, user: u32, role: ClientFileRole) -> Result<Side, Refusal> {
        let side = match (&self.kind, role) {
            (TaskKind::Online(_), ClientFileRole::CLIENT_REALTIME_SENDER)
            | (TaskKind::Upload(_), ClientFileRole::CLIENT_OFFLINE_UPLOAD) => Side::Sender,
            (TaskKind::Online(_), ClientFileRole::CLIENT_REALTIME_RECVER) => Side::Receiver,
            _ => return Err(Refusal::WrongRole(role)),
        };
        let expected = match side {
            Side::Sender => self.from_user_id,
            Side::Receiver => self.to_user_id,
        };
        if user != expected {
            return Err(Refusal::WrongUser {
                user,
                side: side.name(),
            });
        }
        Ok(side)
    }

    /// `ChangePullState`: `user` logs in on `conn` as `role` at `now`.
    pub fn login(
        &mut self,
        user: u32,
        role: ClientFileRole,
        conn: ConnId,
        now: u64,
    ) -> Result<(Side, Joined), Refusal> {
        let side = self.side_of(user, role)?;
        let file_size = self.file_size;
        let joined = match &mut self.kind {
            TaskKind::Online(o) => {
                let slot = match side {
                    Side::Sender => &mut o.sender,
                    Side::Receiver => &mut o.receiver,
                };
                if slot.is_some() {
                    return Err(Refusal::AlreadyIn(side.name()));
                }
                *slot = Some(conn);
                match (o.sender, o.receiver) {
                    (Some(_), Some(receiver)) => Joined::PeerReady(receiver),
                    _ => Joined::Waiting,
                }
            }
            TaskKind::Upload(u) => {
                if u.uploader.is_some() || u.received > 0 {
                    return Err(Refusal::AlreadyIn(side.name()));
                }
                u.uploader = Some(conn);
                if file_size == 0 {
                    Joined::EmptyUpload
                } else {
                    Joined::PullFirst {
                        offset: 0,
                        size: SEGMENT_SIZE.min(file_size),
                    }
                }
            }
        };
        self.last_active = now;
        Ok((side, joined))
    }

    /// Checks that a PDU from `side`'s connection names that end's user
    /// and this task.
    pub fn check_claim(&self, side: Side, user: u32, task_id: &str) -> Result<(), Fault> {
        let expected = match side {
            Side::Sender => self.from_user_id,
            Side::Receiver => self.to_user_id,
        };
        if user != expected || task_id != self.task_id {
            return Err(Fault::NotYours {
                user,
                task_id: task_id.to_string(),
            });
        }
        Ok(())
    }

    /// `DoPullFileRequest` (online): the receiver asks for `size` bytes at
    /// `offset` with `seq`; returns the sender's connection to relay it to.
    pub fn pull(
        &mut self,
        side: Side,
        offset: u32,
        size: u32,
        seq: u16,
        now: u64,
    ) -> Result<ConnId, Fault> {
        let file_size = self.file_size;
        let TaskKind::Online(o) = &mut self.kind else {
            return Err(Fault::WrongSide("uploader"));
        };
        if side != Side::Receiver {
            return Err(Fault::WrongSide("sender"));
        }
        let sender = o.sender.ok_or(Fault::PeerAbsent)?;
        let fits = size <= MAX_PULL_SIZE
            && offset <= file_size
            && u64::from(offset) + u64::from(size) <= u64::from(file_size);
        if !fits {
            return Err(Fault::BadPull {
                offset,
                size,
                file_size,
            });
        }
        if o.pulls.len() >= MAX_PULLS_IN_FLIGHT {
            return Err(Fault::TooManyPulls);
        }
        o.pulls.push_back(Pull { offset, size, seq });
        self.last_active = now;
        Ok(sender)
    }

    /// `DoRecvData` (online): the sender's data, `len` bytes at `offset`,
    /// answers the oldest pull; returns the receiver's connection and the
    /// seq of its pull.
    pub fn data(
        &mut self,
        side: Side,
        offset: u32,
        len: usize,
        now: u64,
    ) -> Result<(ConnId, u16), Fault> {
        let TaskKind::Online(o) = &mut self.kind else {
            return Err(Fault::WrongSide("uploader"));
        };
        if side != Side::Sender {
            return Err(Fault::WrongSide("receiver"));
        }
        let receiver = o.receiver.ok_or(Fault::PeerAbsent)?;
        let Some(pull) = o.pulls.front().copied() else {
            return Err(Fault::BadData {
                offset,
                len,
                expected: "no pull".into(),
            });
        };
        if offset != pull.offset || len > pull.size as usize {
            return Err(Fault::BadData {
                offset,
                len,
                expected: format!("at most {} bytes at {}", pull.size, pull.offset),
            });
        }
        o.pulls.pop_front();
        self.last_active = now;
        Ok((receiver, pull.seq))
    }

    /// `DoRecvData` (offline upload): `len` bytes at `offset` from the
    /// uploader must be exactly the segment we asked for.
    pub fn upload(&mut self, offset: u32, len: usize, now: u64) -> Result<UploadStep, Fault> {
        let file_size = self.file_size;
        let TaskKind::Upload(u) = &mut self.kind else {
            return Err(Fault::WrongSide("online peer"));
        };
        let expected = crate::offline_file::segment_at(u.received, file_size);
        let Some(seg) = expected.filter(|s| s.offset == offset && s.len as usize == len) else {
            return Err(Fault::BadData {
                offset,
                len,
                expected: match expected {
                    Some(s) => format!("{} bytes at {}", s.len, s.offset),
                    None => "nothing".into(),
                },
            });
        };
        u.received += seg.len;
        self.last_active = now;
        if seg.last {
            return Ok(UploadStep::Done);
        }
        let next = u.received;
        Ok(UploadStep::Next {
            offset: next,
            size: SEGMENT_SIZE.min(file_size - next),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClientFileRole::*;

    fn conn(n: u64) -> ConnId {
        ConnId::from_u64((1 << 32) | n)
    }

    fn task(mode: TransferFileType, size: u32) -> TransferTask {
        TransferTask::new("t".into(), mode, 1, 2, "f".into(), size, 0, 0)
    }

    #[test]
    fn online_login_needs_the_right_user_and_role_once() {
        let mut t = task(TransferFileType::FILE_TYPE_ONLINE, 10);
        assert_eq!(
            t.login(2, CLIENT_REALTIME_SENDER, conn(1), 5),
            Err(Refusal::WrongUser {
                user: 2,
                side: "sender"
            })
        );
        assert_eq!(
            t.login(1, CLIENT_OFFLINE_UPLOAD, conn(1), 5),
            Err(Refusal::WrongRole(CLIENT_OFFLINE_UPLOAD))
        );
        assert_eq!(
            t.login(1, CLIENT_REALTIME_SENDER, conn(1), 5),
            Ok((Side::Sender, Joined::Waiting))
        );
        assert_eq!(
            t.login(1, CLIENT_REALTIME_SENDER, conn(3), 6),
            Err(Refusal::AlreadyIn("sender"))
        );
        assert_eq!(t.last_active, 5);
        assert_eq!(
            t.login(2, CLIENT_REALTIME_RECVER, conn(2), 7),
            Ok((Side::Receiver, Joined::PeerReady(conn(2))))
        );
        assert_eq!(t.conns(), vec![conn(1), conn(2)]);
        assert!(t.stalled(7 + 1001, 1000) && !t.stalled(7 + 1000, 1000));
    }

    #[test]
    fn online_pulls_are_checked_and_answered_in_order() {
        let mut t = task(TransferFileType::FILE_TYPE_ONLINE, 100);
        t.login(2, CLIENT_REALTIME_RECVER, conn(2), 0).unwrap();
        assert_eq!(t.pull(Side::Receiver, 0, 10, 1, 0), Err(Fault::PeerAbsent));
        t.login(1, CLIENT_REALTIME_SENDER, conn(1), 0).unwrap();
        assert_eq!(t.pull(Side::Receiver, 0, 60, 7, 1), Ok(conn(1)));
        assert_eq!(t.pull(Side::Receiver, 60, 40, 8, 1), Ok(conn(1)));
        assert!(matches!(
            t.pull(Side::Receiver, 60, 41, 9, 1),
            Err(Fault::BadPull { .. })
        ));
        assert!(matches!(
            t.pull(Side::Receiver, u32::MAX, 2, 9, 1),
            Err(Fault::BadPull { .. })
        ));
        assert_eq!(
            t.pull(Side::Sender, 0, 1, 9, 1),
            Err(Fault::WrongSide("sender"))
        );
        assert!(matches!(
            t.data(Side::Sender, 60, 40, 2),
            Err(Fault::BadData { .. })
        ));
        assert!(matches!(
            t.data(Side::Sender, 0, 61, 2),
            Err(Fault::BadData { .. })
        ));
        assert_eq!(t.data(Side::Sender, 0, 60, 2), Ok((conn(2), 7)));
        assert_eq!(t.data(Side::Sender, 60, 40, 3), Ok((conn(2), 8)));
        assert!(
            matches!(t.data(Side::Sender, 60, 40, 3), Err(Fault::BadData { .. })),
            "unsolicited data"
        );
        for i in 0..MAX_PULLS_IN_FLIGHT {
            t.pull(Side::Receiver, 0, 1, i as u16, 4).unwrap();
        }
        assert_eq!(
            t.pull(Side::Receiver, 0, 1, 99, 4),
            Err(Fault::TooManyPulls)
        );
        assert!(t.check_claim(Side::Sender, 1, "t").is_ok());
        assert!(t.check_claim(Side::Sender, 2, "t").is_err());
        assert!(t.check_claim(Side::Receiver, 2, "u").is_err());
    }

    #[test]
    fn an_empty_online_file_is_one_empty_pull() {
        let mut t = task(TransferFileType::FILE_TYPE_ONLINE, 0);
        t.login(1, CLIENT_REALTIME_SENDER, conn(1), 0).unwrap();
        t.login(2, CLIENT_REALTIME_RECVER, conn(2), 0).unwrap();
        assert_eq!(t.pull(Side::Receiver, 0, 0, 3, 0), Ok(conn(1)));
        assert_eq!(t.data(Side::Sender, 0, 0, 0), Ok((conn(2), 3)));
    }

    #[test]
    fn uploads_take_exactly_the_segments_asked_for() {
        let size = 2 * SEGMENT_SIZE + 5;
        let mut t = task(TransferFileType::FILE_TYPE_OFFLINE, size);
        assert_eq!(
            t.login(2, CLIENT_OFFLINE_UPLOAD, conn(1), 0),
            Err(Refusal::WrongUser {
                user: 2,
                side: "sender"
            })
        );
        assert_eq!(
            t.login(1, CLIENT_REALTIME_SENDER, conn(1), 0),
            Err(Refusal::WrongRole(CLIENT_REALTIME_SENDER))
        );
        assert_eq!(
            t.login(1, CLIENT_OFFLINE_UPLOAD, conn(1), 0),
            Ok((
                Side::Sender,
                Joined::PullFirst {
                    offset: 0,
                    size: SEGMENT_SIZE
                }
            ))
        );
        assert!(
            matches!(t.upload(0, 100, 1), Err(Fault::BadData { .. })),
            "a short segment"
        );
        assert!(matches!(
            t.upload(SEGMENT_SIZE, SEGMENT_SIZE as usize, 1),
            Err(Fault::BadData { .. })
        ));
        assert_eq!(
            t.upload(0, SEGMENT_SIZE as usize, 1),
            Ok(UploadStep::Next {
                offset: SEGMENT_SIZE,
                size: SEGMENT_SIZE
            })
        );
        assert_eq!(
            t.upload(SEGMENT_SIZE, SEGMENT_SIZE as usize, 2),
            Ok(UploadStep::Next {
                offset: 2 * SEGMENT_SIZE,
                size: 5
            })
        );
        assert_eq!(t.upload(2 * SEGMENT_SIZE, 5, 3), Ok(UploadStep::Done));
        assert!(matches!(t.upload(size, 0, 3), Err(Fault::BadData { .. })));
        assert_eq!(
            t.login(1, CLIENT_OFFLINE_UPLOAD, conn(5), 4),
            Err(Refusal::AlreadyIn("sender"))
        );
    }

    #[test]
    fn an_empty_upload_completes_at_login() {
        let mut t = task(TransferFileType::FILE_TYPE_OFFLINE, 0);
        assert_eq!(
            t.login(1, CLIENT_OFFLINE_UPLOAD, conn(1), 0),
            Ok((Side::Sender, Joined::EmptyUpload))
        );
    }
}
