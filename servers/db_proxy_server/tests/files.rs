//! Offline files through the real binary, with and without the
//! `IMTransmitFile` table the reference schema lacks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use tt_proto::IM::BaseDefine::FileCmdID;
use tt_proto::IM::File::{
    IMFileAddOfflineReq, IMFileDelOfflineReq, IMFileHasOfflineReq, IMFileHasOfflineRsp,
};
use tt_rs::{PduClient, TestDb};

fn add(c: &mut PduClient, from: u32, to: u32, task: &str, name: &str, size: u32) {
    let req = IMFileAddOfflineReq {
        from_user_id: from,
        to_user_id: to,
        task_id: task.into(),
        file_name: name.into(),
        file_size: size,
    };
    c.send_msg(
        SID_FILE,
        FileCmdID::CID_FILE_ADD_OFFLINE_REQ as u16,
        1,
        &req,
    );
}

fn del(c: &mut PduClient, from: u32, to: u32, task: &str) {
    let req = IMFileDelOfflineReq {
        from_user_id: from,
        to_user_id: to,
        task_id: task.into(),
    };
    c.send_msg(
        SID_FILE,
        FileCmdID::CID_FILE_DEL_OFFLINE_REQ as u16,
        2,
        &req,
    );
}

fn has(c: &mut PduClient, user: u32) -> Vec<(u32, String, String, u32)> {
    let req = IMFileHasOfflineReq {
        user_id: user,
        attach_data: Some(b"f".to_vec()),
    };
    let rsp = ask::<IMFileHasOfflineRsp>(
        c,
        SID_FILE,
        FileCmdID::CID_FILE_HAS_OFFLINE_REQ as u16,
        3,
        &req,
        FileCmdID::CID_FILE_HAS_OFFLINE_RES as u16,
    );
    assert_eq!(rsp.user_id, user);
    assert_eq!(rsp.attach_data.as_deref(), Some(&b"f"[..]));
    rsp.offline_file_list
        .into_iter()
        .map(|f| (f.from_user_id, f.task_id, f.file_name, f.file_size))
        .collect()
}

#[test]
fn without_the_table_there_are_no_offline_files() {
    let db = TestDb::with_schema();
    let redis = tt_rs::RedisServer::start();
    let p = start(&db, &redis, 1, 2);
    let mut c = PduClient::connect(p.port);
    add(&mut c, 1, 2, "t1", "a.txt", 10);
    del(&mut c, 1, 2, "t1");
    assert!(has(&mut c, 2).is_empty(), "answered, with no file");
    assert!(
        p.server.log().contains("IMTransmitFile"),
        "{}",
        p.server.log()
    );
}

#[test]
fn offline_files_are_added_listed_and_deleted() {
    let db = TestDb::with_schema();
    db.load_file(&tt_rs::repo_root().join("sql/offline_files.sql"));
    let redis = tt_rs::RedisServer::start();
    // One worker: the adds (no reply) are done before the listing.
    let p = start(&db, &redis, 1, 2);
    let mut c = PduClient::connect(p.port);
    add(&mut c, 1, 2, "task-1", "a.txt", 10);
    add(&mut c, 3, 2, "task-2", "b.bin", 20);
    add(&mut c, 1, 4, "task-3", "c.txt", 30);
    assert_eq!(
        has(&mut c, 2),
        vec![
            (1, "task-1".into(), "a.txt".into(), 10),
            (3, "task-2".into(), "b.bin".into(), 20)
        ]
    );
    let stored: Vec<(u32, u32, String, u32, String, u32)> = rows(
        &db,
        "SELECT fromId, toId, fileName, size, taskId, status FROM IMTransmitFile ORDER BY id",
    );
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[2], (1, 4, "c.txt".into(), 30, "task-3".into(), 0));
    // A quote in the task id is data, not SQL.
    del(&mut c, 1, 2, "x' OR '1'='1");
    assert_eq!(has(&mut c, 2).len(), 2);
    del(&mut c, 1, 2, "task-1");
    assert_eq!(
        has(&mut c, 2),
        vec![(3, "task-2".into(), "b.bin".into(), 20)]
    );
    assert_eq!(has(&mut c, 4).len(), 1);
}
