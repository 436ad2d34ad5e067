//! Transfer throughput through a release file_server on loopback: one
//! online transfer, then 20 at once, each end a client thread pulling as
//! the Windows client does (34 KiB per pull), and offline upload and
//! download. Prints MB/s and the server's peak memory.
//!
//! `cargo bench -p file_server --bench transfer` (TT_BENCH_MIB sets the
//! size of one file, default 64).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base::ImPdu;
use std::thread;
use std::time::Instant;
use tt_proto::IM::BaseDefine::{ClientFileRole, ClientFileState, TransferFileType};
use tt_proto::IM::File::{
    IMFileLoginReq, IMFileLoginRsp, IMFilePullDataReq, IMFilePullDataRsp, IMFileState,
};
use tt_proto::IM::Server::{IMFileTransferReq, IMFileTransferRsp};
use tt_proto::{cid, Command};
use tt_rs::cluster::{start_file_server, FileServerPorts};
use tt_rs::PduClient;

const BLOCK: u32 = 34 * 1024;

fn send<M: Command>(c: &mut PduClient, seq: u16, m: &M) {
    c.send(&ImPdu::for_msg(seq, m).unwrap());
}

fn task(link: &mut PduClient, size: u32, mode: TransferFileType) -> String {
    send(
        link,
        1,
        &IMFileTransferReq {
            from_user_id: 1,
            to_user_id: 2,
            file_name: "bench".into(),
            file_size: size,
            trans_mode: mode,
            attach_data: None,
        },
    );
    link.recv_cmd::<IMFileTransferRsp>(cid::OTHER_FILE_TRANSFER_RSP)
        .1
        .task_id
        .unwrap()
}

fn login(port: u16, user: u32, task: &str, role: ClientFileRole) -> PduClient {
    let mut c = PduClient::connect(port);
    send(
        &mut c,
        1,
        &IMFileLoginReq {
            user_id: user,
            task_id: task.into(),
            file_role: role,
        },
    );
    let (_, rsp) = c.recv_cmd::<IMFileLoginRsp>(cid::FILE_LOGIN_RES);
    assert_eq!(rsp.result_code, 0);
    c
}

/// Answers pulls with `chunk` until a state arrives.
fn sender(mut c: PduClient, task: String, chunk: Vec<u8>) {
    loop {
        let Some(pdu) = c.try_recv(tt_rs::WAIT) else {
            return;
        };
        match pdu.command_id() {
            cid::FILE_PULL_DATA_REQ => {
                let req: IMFilePullDataReq = pdu.msg().unwrap();
                let rsp = IMFilePullDataRsp {
                    result_code: 0,
                    task_id: task.clone(),
                    user_id: 1,
                    offset: req.offset,
                    file_data: chunk[..req.data_size as usize].to_vec(),
                };
                send(&mut c, pdu.seq_num(), &rsp);
            }
            cid::FILE_STATE => return,
            _ => {}
        }
    }
}

/// Pulls the whole file, `block` at a time; DONE at the end.
fn receiver(mut c: PduClient, task: &str, size: u32, mode: TransferFileType, block: u32) {
    let mut offset = 0;
    while offset < size {
        send(
            &mut c,
            2,
            &IMFilePullDataReq {
                task_id: task.into(),
                user_id: 2,
                trans_mode: mode,
                offset,
                data_size: block.min(size - offset),
            },
        );
        let (_, rsp) = c.recv_cmd::<IMFilePullDataRsp>(cid::FILE_PULL_DATA_RSP);
        offset += rsp.file_data.len() as u32;
    }
    if mode == TransferFileType::FILE_TYPE_ONLINE {
        send(
            &mut c,
            3,
            &IMFileState {
                state: ClientFileState::CLIENT_FILE_DONE,
                task_id: task.into(),
                user_id: 2,
            },
        );
    }
}

fn online(ports: FileServerPorts, size: u32, n: usize) -> f64 {
    let mut link = PduClient::connect(ports.msg);
    let tasks: Vec<String> = (0..n)
        .map(|_| task(&mut link, size, TransferFileType::FILE_TYPE_ONLINE))
        .collect();
    let start = Instant::now();
    let handles: Vec<_> = tasks
        .into_iter()
        .map(|t| {
            thread::spawn(move || {
                let s = login(ports.client, 1, &t, ClientFileRole::CLIENT_REALTIME_SENDER);
                let r = login(ports.client, 2, &t, ClientFileRole::CLIENT_REALTIME_RECVER);
                let t2 = t.clone();
                let h = thread::spawn(move || sender(s, t2, vec![0x5a; 1024 * 1024]));
                receiver(r, &t, size, TransferFileType::FILE_TYPE_ONLINE, BLOCK);
                h.join().unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    (size as f64 * n as f64) / 1e6 / start.elapsed().as_secs_f64()
}

fn offline(ports: FileServerPorts, size: u32, n: usize) -> (f64, f64) {
    let mut link = PduClient::connect(ports.msg);
    let tasks: Vec<String> = (0..n)
        .map(|_| task(&mut link, size, TransferFileType::FILE_TYPE_OFFLINE))
        .collect();
    let start = Instant::now();
    let ups: Vec<_> = tasks
        .clone()
        .into_iter()
        .map(|t| {
            thread::spawn(move || {
                let mut c = login(ports.client, 1, &t, ClientFileRole::CLIENT_OFFLINE_UPLOAD);
                let chunk = vec![0xa5u8; 32_768];
                loop {
                    let pdu = c.recv();
                    if pdu.command_id() == cid::FILE_STATE {
                        return;
                    }
                    let req: IMFilePullDataReq = pdu.msg().unwrap();
                    send(
                        &mut c,
                        pdu.seq_num(),
                        &IMFilePullDataRsp {
                            result_code: 0,
                            task_id: t.clone(),
                            user_id: 1,
                            offset: req.offset,
                            file_data: chunk[..req.data_size as usize].to_vec(),
                        },
                    );
                }
            })
        })
        .collect();
    for h in ups {
        h.join().unwrap();
    }
    let up = (size as f64 * n as f64) / 1e6 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let downs: Vec<_> = tasks
        .into_iter()
        .map(|t| {
            thread::spawn(move || {
                let c = login(ports.client, 2, &t, ClientFileRole::CLIENT_OFFLINE_DOWNLOAD);
                receiver(c, &t, size, TransferFileType::FILE_TYPE_OFFLINE, BLOCK);
            })
        })
        .collect();
    for h in downs {
        h.join().unwrap();
    }
    (
        up,
        (size as f64 * n as f64) / 1e6 / start.elapsed().as_secs_f64(),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib: u32 = std::env::var("TT_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let size = mib * 1024 * 1024;
    let ports = FileServerPorts::free();
    let server = start_file_server(ports, 60, "");
    let one = online(ports, size, 1);
    println!("online, 1 transfer of {mib} MiB, 34 KiB pulls: {one:.0} MB/s");
    let twenty = online(ports, size / 4, 20);
    println!(
        "online, 20 transfers of {} MiB at once: {twenty:.0} MB/s in all ({:.1} MB/s each)",
        mib / 4,
        twenty / 20.0
    );
    let (up, down) = offline(ports, size / 4, 1);
    println!(
        "offline, 1 file of {} MiB: upload {up:.0} MB/s, download {down:.0} MB/s",
        mib / 4
    );
    let (up, down) = offline(ports, size / 16, 20);
    println!(
        "offline, 20 files of {} MiB at once: upload {up:.0} MB/s, download {down:.0} MB/s in all",
        mib / 16
    );
    if let Some((rss, peak)) = server.memory_kib() {
        println!("file_server memory: {} KiB now, {} KiB peak", rss, peak);
    }
}
