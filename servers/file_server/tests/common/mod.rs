//! What the file_server integration tests share: a file_server process on
//! free ports, a PDU client acting as a msg_server to open tasks, and the
//! two ends of a transfer as a client runs them.

#![allow(dead_code)]

use base::ImPdu;
use std::time::{Duration, Instant};
use tt_proto::IM::BaseDefine::{ClientFileRole, ClientFileState, TransferFileType};
use tt_proto::IM::File::{
    IMFileLoginReq, IMFileLoginRsp, IMFilePullDataReq, IMFilePullDataRsp, IMFileState,
};
use tt_proto::IM::Server::{IMFileTransferReq, IMFileTransferRsp};
use tt_proto::{cid, Command};
use tt_rs::cluster::{start_file_server, FileServerPorts};
use tt_rs::{PduClient, ServerProcess, WAIT};

/// The segment size of offline files.
pub const SEGMENT: u32 = 32_768;
/// What the Windows client asks per pull.
pub const WIN_BLOCK: u32 = 34 * 1024;

/// A running file_server.
pub struct FileServer {
    pub process: ServerProcess,
    pub ports: FileServerPorts,
}

impl FileServer {
    /// file_server with `TaskTimeout` = `timeout` seconds.
    pub fn start(timeout: u32) -> FileServer {
        Self::start_with(timeout, "")
    }

    /// The same with more conf lines.
    pub fn start_with(timeout: u32, extra: &str) -> FileServer {
        let ports = FileServerPorts::free();
        FileServer {
            process: start_file_server(ports, timeout, extra),
            ports,
        }
    }

    /// Kills and restarts it in the same directory; waits for its ports.
    pub fn restart(&mut self) {
        self.process.restart();
        self.process.wait_listening(self.ports.client);
        self.process.wait_listening(self.ports.msg);
    }

    /// A link as msg_server opens it.
    pub fn msg_link(&self) -> PduClient {
        PduClient::connect(self.ports.msg)
    }

    /// `offline_file/` of this server.
    pub fn offline_dir(&self) -> std::path::PathBuf {
        self.process.dir().join("offline_file")
    }

    /// Where the stored file of `task_id` is.
    pub fn stored_path(&self, task_id: &str) -> std::path::PathBuf {
        self.offline_dir().join(&task_id[..2]).join(task_id)
    }
}

/// Sends `msg` under its own command.
pub fn send<M: Command>(c: &mut PduClient, seq: u16, msg: &M) {
    c.send(&ImPdu::for_msg(seq, msg).expect("encode"));
}

/// Opens a task through a msg_server link; asserts it was made.
pub fn open_task(
    link: &mut PduClient,
    seq: u16,
    from: u32,
    to: u32,
    size: u32,
    mode: TransferFileType,
) -> String {
    let rsp = ask_task(link, seq, from, to, size, mode);
    assert_eq!(rsp.result_code, 0, "{rsp:?}");
    rsp.task_id.expect("a task id")
}

/// Asks for a task and returns the whole answer (seq checked).
pub fn ask_task(
    link: &mut PduClient,
    seq: u16,
    from: u32,
    to: u32,
    size: u32,
    mode: TransferFileType,
) -> IMFileTransferRsp {
    let req = IMFileTransferReq {
        from_user_id: from,
        to_user_id: to,
        file_name: "report.pdf".into(),
        file_size: size,
        trans_mode: mode,
        attach_data: Some(vec![7, 7, 7]),
    };
    send(link, seq, &req);
    let (pdu, rsp) = link.recv_cmd::<IMFileTransferRsp>(cid::OTHER_FILE_TRANSFER_RSP);
    assert_eq!(pdu.seq_num(), seq);
    rsp
}

/// Connects to the client port and logs in; returns the connection and
/// the result code (the answer's seq and task id checked).
pub fn file_login(port: u16, user: u32, task_id: &str, role: ClientFileRole) -> (PduClient, u32) {
    let mut c = PduClient::connect(port);
    let req = IMFileLoginReq {
        user_id: user,
        task_id: task_id.into(),
        file_role: role,
    };
    send(&mut c, 41, &req);
    let (pdu, rsp) = c.recv_cmd::<IMFileLoginRsp>(cid::FILE_LOGIN_RES);
    assert_eq!(pdu.seq_num(), 41, "the answer carries the login's seq");
    assert_eq!(rsp.task_id, task_id);
    (c, rsp.result_code)
}

/// [`file_login`] that must succeed.
pub fn logged_in(port: u16, user: u32, task_id: &str, role: ClientFileRole) -> PduClient {
    let (c, result) = file_login(port, user, task_id, role);
    assert_eq!(result, 0, "login of {user} as {role:?} for {task_id}");
    c
}

/// [`file_login`] that must be refused: answered 1, then closed.
pub fn refused(port: u16, user: u32, task_id: &str, role: ClientFileRole) {
    let (mut c, result) = file_login(port, user, task_id, role);
    assert_eq!(result, 1, "login of {user} as {role:?} for {task_id:?}");
    assert!(c.is_closed_by_peer(), "a refused login is closed");
}

/// Byte `i` of test file `seed`.
pub fn byte_at(seed: u8, i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 11) as u8 ^ seed
}

/// Bytes `offset..offset+len` of test file `seed`.
pub fn content(seed: u8, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| byte_at(seed, offset + i)).collect()
}

/// Receives the next `FILE_STATE`, skipping nothing else.
pub fn recv_state(c: &mut PduClient) -> IMFileState {
    let pdu = c.recv();
    assert_eq!(pdu.command_id(), cid::FILE_STATE, "expected a FILE_STATE");
    pdu.msg().expect("decode FILE_STATE")
}

/// How the sender's loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SenderEnd {
    /// A `FILE_STATE` arrived (the receiver's DONE, CANCEL or REFUSE).
    State(ClientFileState),
    /// The server closed the connection.
    Closed,
}

/// The online sender: answers every pull relayed to it with the bytes of
/// file `seed` until a state arrives or the connection closes. Returns how
/// it ended and the bytes it sent.
pub fn serve_pulls(mut c: PduClient, user: u32, task_id: &str, seed: u8) -> (SenderEnd, u64) {
    let mut sent = 0u64;
    loop {
        let Some(pdu) = c.try_recv(WAIT) else {
            return (SenderEnd::Closed, sent);
        };
        match pdu.command_id() {
            cid::FILE_PULL_DATA_REQ => {
                let req: IMFilePullDataReq = pdu.msg().expect("decode pull");
                assert_eq!(req.task_id, task_id);
                let data = content(seed, u64::from(req.offset), req.data_size as usize);
                sent += data.len() as u64;
                let rsp = IMFilePullDataRsp {
                    result_code: 0,
                    task_id: task_id.into(),
                    user_id: user,
                    offset: req.offset,
                    file_data: data,
                };
                send(&mut c, pdu.seq_num(), &rsp);
            }
            cid::FILE_STATE => {
                let st: IMFileState = pdu.msg().expect("decode state");
                return (SenderEnd::State(st.state), sent);
            }
            _ => {}
        }
    }
}

/// The online receiver, as the Windows client pulls: `block` bytes at a
/// time (the remainder last), each checked against file `seed`, then DONE.
/// Returns the bytes received.
pub fn pull_online(
    c: &mut PduClient,
    user: u32,
    task_id: &str,
    size: u32,
    block: u32,
    seed: u8,
) -> u64 {
    let mut offset = 0u32;
    let mut seq = 100u16;
    loop {
        let want = block.min(size - offset);
        let req = IMFilePullDataReq {
            task_id: task_id.into(),
            user_id: user,
            trans_mode: TransferFileType::FILE_TYPE_ONLINE,
            offset,
            data_size: want,
        };
        seq = seq.wrapping_add(1);
        send(c, seq, &req);
        let (pdu, rsp) = c.recv_cmd::<IMFilePullDataRsp>(cid::FILE_PULL_DATA_RSP);
        assert_eq!(pdu.seq_num(), seq, "data comes back with the pull's seq");
        assert_eq!((rsp.result_code, rsp.offset), (0, offset));
        assert_eq!(rsp.file_data.len(), want as usize);
        assert!(
            rsp.file_data == content(seed, u64::from(offset), want as usize),
            "bytes at {offset} differ"
        );
        offset += want;
        if offset >= size {
            break;
        }
    }
    let done = IMFileState {
        state: ClientFileState::CLIENT_FILE_DONE,
        task_id: task_id.into(),
        user_id: user,
    };
    send(c, 200, &done);
    u64::from(offset)
}

/// The offline uploader: answers the server's pulls with file `seed` until
/// DONE; returns the pulls it answered.
pub fn upload(c: &mut PduClient, user: u32, task_id: &str, size: u32, seed: u8) -> u32 {
    let mut pulls = 0;
    loop {
        let pdu = c.recv();
        match pdu.command_id() {
            cid::FILE_PULL_DATA_REQ => {
                let req: IMFilePullDataReq = pdu.msg().expect("decode pull");
                assert_eq!(
                    (req.task_id.as_str(), req.user_id, req.trans_mode),
                    (task_id, user, TransferFileType::FILE_TYPE_OFFLINE)
                );
                assert_eq!(req.offset, pulls * SEGMENT, "segments in order");
                assert_eq!(req.data_size, SEGMENT.min(size - req.offset));
                pulls += 1;
                let rsp = IMFilePullDataRsp {
                    result_code: 0,
                    task_id: task_id.into(),
                    user_id: user,
                    offset: req.offset,
                    file_data: content(seed, u64::from(req.offset), req.data_size as usize),
                };
                send(c, pdu.seq_num(), &rsp);
            }
            cid::FILE_STATE => {
                let st: IMFileState = pdu.msg().expect("decode state");
                assert_eq!(st.state, ClientFileState::CLIENT_FILE_DONE);
                assert_eq!((st.task_id.as_str(), st.user_id), (task_id, user));
                return pulls;
            }
            other => panic!("unexpected {other:#06x} during upload"),
        }
    }
}

/// The offline downloader, as the Windows client: asks `WIN_BLOCK` first
/// and then whatever the last segment brought; checks every byte against
/// file `seed`, and the DONE at the end (which names the sender `from`).
pub fn download(c: &mut PduClient, user: u32, from: u32, task_id: &str, size: u32, seed: u8) {
    let mut offset = 0u32;
    let mut ask = WIN_BLOCK.min(size);
    loop {
        let req = IMFilePullDataReq {
            task_id: task_id.into(),
            user_id: user,
            trans_mode: TransferFileType::FILE_TYPE_OFFLINE,
            offset,
            data_size: ask,
        };
        send(c, 7, &req);
        let (pdu, rsp) = c.recv_cmd::<IMFilePullDataRsp>(cid::FILE_PULL_DATA_RSP);
        assert_eq!(pdu.seq_num(), 7);
        assert_eq!(
            (rsp.result_code, rsp.offset, rsp.user_id),
            (0, offset, user)
        );
        let len = rsp.file_data.len() as u32;
        assert_eq!(len, SEGMENT.min(size - offset), "one segment per pull");
        assert!(
            rsp.file_data == content(seed, u64::from(offset), len as usize),
            "bytes at {offset} differ"
        );
        offset += len;
        if offset >= size {
            break;
        }
        ask = len.min(size - offset);
    }
    let st = recv_state(c);
    assert_eq!(st.state, ClientFileState::CLIENT_FILE_DONE);
    assert_eq!((st.task_id.as_str(), st.user_id), (task_id, from));
    assert!(c.is_closed_by_peer(), "closed after DONE");
}

/// A file in the C++ on-disk format: the 960-byte header, then the bytes.
pub fn cpp_file(task_id: &str, from: u32, to: u32, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 960];
    let mut put = |at: usize, s: &str| out[at..at + s.len()].copy_from_slice(s.as_bytes());
    put(0, task_id);
    put(128, &from.to_string());
    put(192, &to.to_string());
    put(256, "1436000000");
    // file_name[512] at 384 stays empty, as the C++ writes it.
    put(896, &data.len().to_string());
    out.extend_from_slice(data);
    out
}

/// Polls `cond` until it holds (bounded by [`WAIT`]).
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
