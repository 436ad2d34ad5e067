//! Through the whole cluster (route, login, db_proxy with MariaDB and
//! Redis, msg_server, file_server), as two logged-in clients transfer
//! files the way the clients do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base::md5::md5_hex;
use common::*;
use std::thread;
use std::time::{Duration, Instant};
use tt_proto::cid;
use tt_proto::IM::BaseDefine::ClientFileRole::*;
use tt_proto::IM::BaseDefine::{
    ClientFileState, ClientType, ResultType, TransferFileType, UserStatType,
};
use tt_proto::IM::File::{
    IMFileAddOfflineReq, IMFileDelOfflineReq, IMFileHasOfflineReq, IMFileHasOfflineRsp,
    IMFileNotify, IMFileReq, IMFileRsp, IMFileState,
};
use tt_proto::IM::Login::{IMLoginReq, IMLoginRes};
use tt_rs::cluster::Cluster;
use tt_rs::{PduClient, WAIT};

const ONLINE: TransferFileType = TransferFileType::FILE_TYPE_ONLINE;
const OFFLINE: TransferFileType = TransferFileType::FILE_TYPE_OFFLINE;
const ALICE: u32 = 1;
const BOB: u32 = 2;

/// A cluster with alice and bob, a file_server (`TaskTimeout` 2 s) and a
/// msg_server that has its addresses.
fn cluster() -> Cluster {
    let mut c = Cluster::start(&[(ALICE, "alice", "alice-pw"), (BOB, "bob", "bob-pw")], 0);
    c.db.load_file(&tt_rs::repo_root().join("sql/offline_files.sql"));
    c.add_file_server(2, "");
    c.add_msg_server();
    c.msg_servers[0].0.wait_log("serves clients on");
    c
}

/// Logs `name` in to the cluster's msg_server as a Windows client.
fn login(c: &Cluster, name: &str, plain: &str) -> PduClient {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut conn = PduClient::connect(c.msg_servers[0].1);
        send(
            &mut conn,
            3,
            &IMLoginReq {
                user_name: name.into(),
                password: md5_hex(plain.as_bytes()),
                online_status: UserStatType::USER_STATUS_ONLINE,
                client_type: ClientType::CLIENT_TYPE_WINDOWS,
                client_version: Some("test/1.0".into()),
            },
        );
        let (_, res) = conn.recv_cmd::<IMLoginRes>(cid::LOGIN_RES_USERLOGIN);
        match res.result_code {
            ResultType::REFUSE_REASON_NONE => return conn,
            ResultType::REFUSE_REASON_NO_DB_SERVER
            | ResultType::REFUSE_REASON_NO_LOGIN_SERVER
            | ResultType::REFUSE_REASON_NO_ROUTE_SERVER
                if Instant::now() < deadline =>
            {
                thread::sleep(Duration::from_millis(100));
            }
            other => panic!("login of {name} refused: {other:?}"),
        }
    }
}

/// alice asks her msg_server to send bob `size` bytes in `mode`.
fn file_request(alice: &mut PduClient, seq: u16, size: u32, mode: TransferFileType) -> IMFileRsp {
    send(
        alice,
        seq,
        &IMFileReq {
            from_user_id: ALICE,
            to_user_id: BOB,
            file_name: "holiday.jpg".into(),
            file_size: size,
            trans_mode: mode,
        },
    );
    let (pdu, rsp) = alice.recv_cmd::<IMFileRsp>(cid::FILE_RESPONSE);
    assert_eq!(pdu.seq_num(), seq);
    rsp
}

/// The file_server port the answer sends the client to.
fn port_of(rsp: &IMFileRsp, c: &Cluster) -> u16 {
    let addr = rsp.ip_addr_list.first().expect("a file_server address");
    assert_eq!(addr.ip, "127.0.0.1");
    let port = addr.port as u16;
    assert_eq!(
        port,
        c.file_server.as_ref().unwrap().1.client,
        "the client port"
    );
    port
}

/// An online transfer alice -> bob, both logged in on the cluster.
fn online(
    c: &Cluster,
    alice: &mut PduClient,
    bob: &mut PduClient,
    size: u32,
    block: u32,
    seed: u8,
) {
    let rsp = file_request(alice, 11, size, ONLINE);
    assert_eq!((rsp.result_code, rsp.trans_mode), (0, ONLINE), "{rsp:?}");
    let port = port_of(&rsp, c);
    let (_, notify) = bob.recv_cmd::<IMFileNotify>(cid::FILE_NOTIFY);
    assert_eq!(
        (
            notify.from_user_id,
            notify.task_id.as_str(),
            notify.file_size,
            notify.trans_mode
        ),
        (ALICE, rsp.task_id.as_str(), size, ONLINE)
    );
    let task = rsp.task_id;
    let sender = logged_in(port, ALICE, &task, CLIENT_REALTIME_SENDER);
    let mut receiver = logged_in(port, BOB, &task, CLIENT_REALTIME_RECVER);
    assert_eq!(
        recv_state(&mut receiver).state,
        ClientFileState::CLIENT_FILE_PEER_READY
    );
    let t = task.clone();
    let sending = thread::spawn(move || serve_pulls(sender, ALICE, &t, seed));
    assert_eq!(
        pull_online(&mut receiver, BOB, &task, size, block, seed),
        u64::from(size)
    );
    assert_eq!(
        sending.join().unwrap().0,
        SenderEnd::State(ClientFileState::CLIENT_FILE_DONE)
    );
    assert!(receiver.is_closed_by_peer());
}

#[test]
fn online_transfers_through_the_cluster() {
    let c = cluster();
    let mut alice = login(&c, "alice", "alice-pw");
    let mut bob = login(&c, "bob", "bob-pw");
    online(&c, &mut alice, &mut bob, 1, WIN_BLOCK, 1);
    online(&c, &mut alice, &mut bob, 100 * 1024 + 1, WIN_BLOCK, 2);
    online(&c, &mut alice, &mut bob, 50 * 1024 * 1024, 512 * 1024, 3);
    // 50 MiB went through without being held: the server's peak memory
    // stays far below the file's size.
    let (_, peak_kib) = c
        .file_server
        .as_ref()
        .unwrap()
        .0
        .memory_kib()
        .expect("/proc");
    assert!(peak_kib < 32 * 1024, "file_server peaked at {peak_kib} KiB");

    // bob refuses; then alice cancels halfway.
    for state in [
        ClientFileState::CLIENT_FILE_REFUSE,
        ClientFileState::CLIENT_FILE_CANCEL,
    ] {
        let rsp = file_request(&mut alice, 12, 10 * WIN_BLOCK, ONLINE);
        let port = port_of(&rsp, &c);
        let task = rsp.task_id;
        bob.recv_cmd::<IMFileNotify>(cid::FILE_NOTIFY);
        let mut sender = logged_in(port, ALICE, &task, CLIENT_REALTIME_SENDER);
        let mut receiver = logged_in(port, BOB, &task, CLIENT_REALTIME_RECVER);
        assert_eq!(
            recv_state(&mut receiver).state,
            ClientFileState::CLIENT_FILE_PEER_READY
        );
        let (from, to, who) = if state == ClientFileState::CLIENT_FILE_REFUSE {
            (&mut receiver, &mut sender, BOB)
        } else {
            (&mut sender, &mut receiver, ALICE)
        };
        send(
            from,
            1,
            &IMFileState {
                state,
                task_id: task.clone(),
                user_id: who,
            },
        );
        assert_eq!(recv_state(to).state, state);
        assert!(to.is_closed_by_peer() && from.is_closed_by_peer());
    }
}

#[test]
fn offline_files_through_the_cluster() {
    let mut c = cluster();
    let mut alice = login(&c, "alice", "alice-pw");
    // bob is not logged in: an online request becomes offline.
    let size = 3 * SEGMENT + 99;
    let rsp = file_request(&mut alice, 21, size, ONLINE);
    assert_eq!((rsp.result_code, rsp.trans_mode), (0, OFFLINE), "{rsp:?}");
    let port = port_of(&rsp, &c);
    let task = rsp.task_id;
    let mut up = logged_in(port, ALICE, &task, CLIENT_OFFLINE_UPLOAD);
    upload(&mut up, ALICE, &task, size, 7);
    send(
        &mut alice,
        22,
        &IMFileAddOfflineReq {
            from_user_id: ALICE,
            to_user_id: BOB,
            task_id: task.clone(),
            file_name: "holiday.jpg".into(),
            file_size: size,
        },
    );

    let mut bob = login(&c, "bob", "bob-pw");
    let has_offline = |bob: &mut PduClient| {
        send(
            bob,
            23,
            &IMFileHasOfflineReq {
                user_id: BOB,
                attach_data: None,
            },
        );
        let (pdu, rsp) = bob.recv_cmd::<IMFileHasOfflineRsp>(cid::FILE_HAS_OFFLINE_RES);
        assert_eq!(pdu.seq_num(), 23);
        rsp
    };
    let deadline = Instant::now() + WAIT;
    let list = loop {
        let rsp = has_offline(&mut bob);
        if !rsp.offline_file_list.is_empty() || Instant::now() > deadline {
            break rsp;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let files: Vec<(u32, &str, u32)> = list
        .offline_file_list
        .iter()
        .map(|f| (f.from_user_id, f.task_id.as_str(), f.file_size))
        .collect();
    assert_eq!(files, vec![(ALICE, task.as_str(), size)]);
    assert_eq!(list.ip_addr_list[0].port as u16, port);
    let mut down = logged_in(port, BOB, &task, CLIENT_OFFLINE_DOWNLOAD);
    download(&mut down, BOB, ALICE, &task, size, 7);

    // bob deletes the record: the stored file goes with it.
    let stored = {
        let (p, _) = c.file_server.as_ref().unwrap();
        p.dir().join("offline_file").join(&task[..2]).join(&task)
    };
    assert!(stored.exists());
    send(
        &mut bob,
        24,
        &IMFileDelOfflineReq {
            from_user_id: ALICE,
            to_user_id: BOB,
            task_id: task.clone(),
        },
    );
    eventually("the stored file is deleted", || !stored.exists());
    // db_proxy deletes the record on its own time.
    eventually("the record is deleted", || {
        has_offline(&mut bob).offline_file_list.is_empty()
    });

    // With the file_server down, a request is answered with result 1.
    c.file_server = None;
    eventually("msg_server refuses file requests", || {
        file_request(&mut alice, 25, 10, OFFLINE).result_code == 1
    });
}
