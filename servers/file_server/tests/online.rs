//! Online transfers on file_server's client port, with the task opened on
//! its msg_server port: both ends as the clients run them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base::ImPdu;
use common::*;
use std::thread;
use tt_proto::cid;
use tt_proto::IM::BaseDefine::ClientFileRole::*;
use tt_proto::IM::BaseDefine::{ClientFileState, TransferFileType};
use tt_proto::IM::File::{IMFilePullDataReq, IMFilePullDataRsp, IMFileState};
use tt_rs::PduClient;

const ONLINE: TransferFileType = TransferFileType::FILE_TYPE_ONLINE;

/// Opens an online task 1 -> 2 of `size` bytes, logs both ends in (the
/// receiver gets PEER_READY naming the sender) and returns them.
fn both_in(fs: &FileServer, size: u32) -> (String, PduClient, PduClient) {
    let mut link = fs.msg_link();
    let task = open_task(&mut link, 1, 1, 2, size, ONLINE);
    let sender = logged_in(fs.ports.client, 1, &task, CLIENT_REALTIME_SENDER);
    let mut receiver = logged_in(fs.ports.client, 2, &task, CLIENT_REALTIME_RECVER);
    let ready = recv_state(&mut receiver);
    assert_eq!(ready.state, ClientFileState::CLIENT_FILE_PEER_READY);
    assert_eq!((ready.task_id.as_str(), ready.user_id), (task.as_str(), 1));
    (task, sender, receiver)
}

fn transfer(fs: &FileServer, size: u32, block: u32, seed: u8) {
    let (task, sender, mut receiver) = both_in(fs, size);
    let t = task.clone();
    let sending = thread::spawn(move || serve_pulls(sender, 1, &t, seed));
    assert_eq!(
        pull_online(&mut receiver, 2, &task, size, block, seed),
        u64::from(size)
    );
    let (end, sent) = sending.join().unwrap();
    assert_eq!(
        end,
        SenderEnd::State(ClientFileState::CLIENT_FILE_DONE),
        "DONE reaches the sender"
    );
    assert_eq!(sent, u64::from(size));
    assert!(receiver.is_closed_by_peer(), "both ends close after DONE");
    // The task is gone.
    refused(fs.ports.client, 1, &task, CLIENT_REALTIME_SENDER);
}

#[test]
fn online_transfers_are_byte_identical() {
    let fs = FileServer::start(60);
    transfer(&fs, 1, WIN_BLOCK, 1);
    transfer(&fs, 100 * 1024 + 1, WIN_BLOCK, 2);
    transfer(&fs, 0, WIN_BLOCK, 3);
    transfer(&fs, 3 * 1024 * 1024 + 17, 1024 * 1000, 4);
}

#[test]
fn the_receiver_refuses_and_the_sender_cancels() {
    let fs = FileServer::start(60);
    for (who, state) in [
        (2, ClientFileState::CLIENT_FILE_REFUSE),
        (1, ClientFileState::CLIENT_FILE_CANCEL),
    ] {
        let (task, mut sender, mut receiver) = both_in(&fs, 10);
        let (from, to) = if who == 2 {
            (&mut receiver, &mut sender)
        } else {
            (&mut sender, &mut receiver)
        };
        send(
            from,
            5,
            &IMFileState {
                state,
                task_id: task.clone(),
                user_id: who,
            },
        );
        let got = recv_state(to);
        assert_eq!((got.state, got.user_id), (state, who), "the peer is told");
        assert!(to.is_closed_by_peer());
        assert!(from.is_closed_by_peer());
        refused(fs.ports.client, 2, &task, CLIENT_REALTIME_RECVER);
    }
}

#[test]
fn logins_that_do_not_fit_are_refused() {
    let fs = FileServer::start(60);
    let mut link = fs.msg_link();
    let task = open_task(&mut link, 1, 1, 2, 10, ONLINE);
    let port = fs.ports.client;
    refused(port, 2, &task, CLIENT_REALTIME_SENDER); // the receiver as sender
    refused(port, 3, &task, CLIENT_REALTIME_RECVER); // a stranger
    refused(port, 1, &task, CLIENT_OFFLINE_UPLOAD); // the wrong mode
    refused(port, 2, &task, CLIENT_OFFLINE_DOWNLOAD);
    refused(
        port,
        1,
        "0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d",
        CLIENT_REALTIME_SENDER,
    );
    for forged in [
        "../x/evil",
        "../../../../etc/passwd",
        "",
        "..",
        "ab",
        &task.to_uppercase(),
    ] {
        refused(port, 2, forged, CLIENT_OFFLINE_DOWNLOAD);
        refused(port, 1, forged, CLIENT_REALTIME_SENDER);
    }
    // Refusals cost nothing: the task still works, once per end.
    let mut sender = logged_in(port, 1, &task, CLIENT_REALTIME_SENDER);
    refused(port, 1, &task, CLIENT_REALTIME_SENDER);
    // A second login on a logged-in connection is refused and closes it.
    send(
        &mut sender,
        9,
        &tt_proto::IM::File::IMFileLoginReq {
            user_id: 1,
            task_id: task.clone(),
            file_role: CLIENT_REALTIME_SENDER,
        },
    );
    let (_, rsp) = sender.recv_cmd::<tt_proto::IM::File::IMFileLoginRsp>(cid::FILE_LOGIN_RES);
    assert_eq!(rsp.result_code, 1);
    assert!(sender.is_closed_by_peer());
}

#[test]
fn pdus_before_login_are_ignored() {
    let fs = FileServer::start(60);
    let mut link = fs.msg_link();
    let task = open_task(&mut link, 1, 1, 2, 10, ONLINE);
    let mut c = PduClient::connect(fs.ports.client);
    send(
        &mut c,
        1,
        &IMFileState {
            state: ClientFileState::CLIENT_FILE_CANCEL,
            task_id: task.clone(),
            user_id: 1,
        },
    );
    send(
        &mut c,
        2,
        &IMFilePullDataReq {
            task_id: task.clone(),
            user_id: 2,
            trans_mode: ONLINE,
            offset: 0,
            data_size: 10,
        },
    );
    c.send(&ImPdu::new(tt_proto::sid::OTHER, cid::OTHER_HEARTBEAT));
    assert_eq!(
        c.recv().command_id(),
        cid::OTHER_HEARTBEAT,
        "only the heartbeat is answered"
    );
    send(
        &mut c,
        41,
        &tt_proto::IM::File::IMFileLoginReq {
            user_id: 1,
            task_id: task.clone(),
            file_role: CLIENT_REALTIME_SENDER,
        },
    );
    let (_, rsp) = c.recv_cmd::<tt_proto::IM::File::IMFileLoginRsp>(cid::FILE_LOGIN_RES);
    assert_eq!(rsp.result_code, 0, "the task was not touched");
}

#[test]
fn a_dropped_end_closes_the_other_and_ends_the_task() {
    let fs = FileServer::start(60);
    for dropped in [1, 2] {
        let (task, sender, receiver) = both_in(&fs, 100);
        let mut other = if dropped == 1 {
            drop(sender);
            receiver
        } else {
            drop(receiver);
            sender
        };
        assert!(other.is_closed_by_peer(), "the other end is closed");
        refused(fs.ports.client, 1, &task, CLIENT_REALTIME_SENDER);
    }
    // One end alone, gone before the other came: the task goes too.
    let mut link = fs.msg_link();
    let task = open_task(&mut link, 2, 1, 2, 10, ONLINE);
    drop(logged_in(fs.ports.client, 1, &task, CLIENT_REALTIME_SENDER));
    eventually("the task is deleted", || {
        let (mut c, result) = file_login(fs.ports.client, 2, &task, CLIENT_REALTIME_RECVER);
        result == 1 && c.is_closed_by_peer()
    });
}

#[test]
fn a_task_nobody_joins_or_that_stalls_expires() {
    let fs = FileServer::start(1);
    let mut link = fs.msg_link();
    let never = open_task(&mut link, 1, 1, 2, 10, ONLINE);
    let (task, mut sender, mut receiver) = both_in(&fs, 10);
    fs.process.wait_log(&format!("task {never} "));
    fs.process.wait_log(&format!("task {task} ("));
    refused(fs.ports.client, 1, &never, CLIENT_REALTIME_SENDER);
    assert!(
        sender.is_closed_by_peer(),
        "a stalled task's ends are closed"
    );
    assert!(receiver.is_closed_by_peer());
    // A connection that never logs in is closed too.
    let mut idle = PduClient::connect(fs.ports.client);
    assert!(idle.is_closed_by_peer());
}

#[test]
fn pulls_and_data_outside_the_task_close_the_connection() {
    let fs = FileServer::start(60);
    let pull = |task: &str, user, offset, size| IMFilePullDataReq {
        task_id: task.into(),
        user_id: user,
        trans_mode: ONLINE,
        offset,
        data_size: size,
    };
    // Past the end of the file.
    let (task, _sender, mut receiver) = both_in(&fs, 100);
    send(&mut receiver, 1, &pull(&task, 2, 90, 11));
    assert!(receiver.is_closed_by_peer());
    // Another user's name in the pull.
    let (task, _sender, mut receiver) = both_in(&fs, 100);
    send(&mut receiver, 1, &pull(&task, 1, 0, 10));
    assert!(receiver.is_closed_by_peer());
    // Data nobody asked for, and data longer than the pull.
    let (task, mut sender, mut receiver) = both_in(&fs, 100);
    let data = |offset, len| IMFilePullDataRsp {
        result_code: 0,
        task_id: task.clone(),
        user_id: 1,
        offset,
        file_data: vec![1; len],
    };
    send(&mut sender, 1, &data(0, 10));
    assert!(sender.is_closed_by_peer());
    assert!(receiver.is_closed_by_peer(), "its transfer ends with it");
    let (task, mut sender, mut receiver) = both_in(&fs, 100);
    send(&mut receiver, 1, &pull(&task, 2, 0, 10));
    assert_eq!(sender.recv().command_id(), cid::FILE_PULL_DATA_REQ);
    send(
        &mut sender,
        1,
        &IMFilePullDataRsp {
            result_code: 0,
            task_id: task.clone(),
            user_id: 1,
            offset: 0,
            file_data: vec![1; 11],
        },
    );
    assert!(sender.is_closed_by_peer());
    // More than 8 pulls waiting for the sender.
    let (task, _sender, mut receiver) = both_in(&fs, 100);
    for i in 0..9 {
        send(&mut receiver, i, &pull(&task, 2, 0, 1));
    }
    assert!(receiver.is_closed_by_peer());
}

#[test]
fn garbage_and_floods_leave_other_transfers_running() {
    let fs = FileServer::start(60);
    let size = 2 * 1024 * 1024 + 5;
    let (task, sender, mut receiver) = both_in(&fs, size);
    let t = task.clone();
    let sending = thread::spawn(move || serve_pulls(sender, 1, &t, 9));
    let port = fs.ports.client;
    let attackers = thread::spawn(move || {
        // A body that does not decode after login.
        let mut link = PduClient::connect(port);
        let mut pdu = ImPdu::new(tt_proto::sid::FILE, cid::FILE_LOGIN_REQ);
        pdu.set_body(&[0x08]).unwrap();
        link.send(&pdu);
        assert!(link.is_closed_by_peer());
        // A length below the header's.
        let mut short = PduClient::connect(port);
        short.send_raw(&[0, 0, 0, 3, 0, 1, 0, 0, 0, 5, 0, 1, 0, 0, 0, 0]);
        assert!(short.is_closed_by_peer());
        // A length over the client limit.
        let mut huge = PduClient::connect(port);
        huge.send_raw(&[0x10, 0, 0, 0, 0, 1, 0, 0, 0, 5, 0, 5, 0, 0, 0, 0]);
        assert!(huge.is_closed_by_peer());
        // Random bytes.
        let mut noise = PduClient::connect(port);
        noise.send_raw(
            &(0..4096u32)
                .map(|i| (i * 7919 % 251) as u8)
                .collect::<Vec<_>>(),
        );
        assert!(noise.is_closed_by_peer());
        // A flood of heartbeats and unknown commands, all answered in turn.
        let mut flood = PduClient::connect(port);
        let mut bytes = Vec::new();
        for _ in 0..20_000 {
            bytes.extend_from_slice(
                ImPdu::new(tt_proto::sid::OTHER, cid::OTHER_HEARTBEAT).as_bytes(),
            );
            bytes.extend_from_slice(ImPdu::new(0x0005, 0x05ff).as_bytes());
        }
        flood.send_raw(&bytes);
        for _ in 0..20_000 {
            assert_eq!(flood.recv().command_id(), cid::OTHER_HEARTBEAT);
        }
    });
    assert_eq!(
        pull_online(&mut receiver, 2, &task, size, WIN_BLOCK, 9),
        u64::from(size)
    );
    attackers.join().unwrap();
    let (end, _) = sending.join().unwrap();
    assert_eq!(end, SenderEnd::State(ClientFileState::CLIENT_FILE_DONE));
}
