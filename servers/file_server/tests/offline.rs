//! Offline files on file_server's client port: uploads pulled by the
//! server, downloads, the C++ on-disk format, deletion and retention.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::thread;
use tt_proto::cid;
use tt_proto::IM::BaseDefine::ClientFileRole::*;
use tt_proto::IM::BaseDefine::{ClientFileState, TransferFileType};
use tt_proto::IM::File::{IMFileDelOfflineReq, IMFilePullDataReq, IMFilePullDataRsp, IMFileState};

const OFFLINE: TransferFileType = TransferFileType::FILE_TYPE_OFFLINE;

/// Uploads file `seed` of `size` bytes from 1 to 2; returns its task id.
fn upload_file(fs: &FileServer, size: u32, seed: u8) -> String {
    let mut link = fs.msg_link();
    let task = open_task(&mut link, 1, 1, 2, size, OFFLINE);
    let mut up = logged_in(fs.ports.client, 1, &task, CLIENT_OFFLINE_UPLOAD);
    let pulls = upload(&mut up, 1, &task, size, seed);
    assert_eq!(pulls, size.div_ceil(SEGMENT), "one pull per segment");
    assert!(up.is_closed_by_peer(), "closed after DONE");
    task
}

fn pull(task: &str, user: u32, offset: u32) -> IMFilePullDataReq {
    IMFilePullDataReq {
        task_id: task.into(),
        user_id: user,
        trans_mode: OFFLINE,
        offset,
        data_size: SEGMENT,
    }
}

#[test]
fn an_upload_is_stored_in_the_cpp_format_and_downloaded() {
    let fs = FileServer::start(60);
    for (size, seed) in [(100 * 1024 + 1, 1u8), (1, 2), (SEGMENT, 3), (0, 4)] {
        let task = upload_file(&fs, size, seed);
        let stored = std::fs::read(fs.stored_path(&task)).expect("stored under its task id");
        let mut want = cpp_file(&task, 1, 2, &content(seed, 0, size as usize));
        // Ours records the name and the real time where the C++ leaves them.
        want[256..384].copy_from_slice(&stored[256..384]);
        want[384..384 + 10].copy_from_slice(b"report.pdf");
        assert_eq!(stored.len(), 960 + size as usize);
        assert!(stored == want, "header and bytes as the C++ writes them");
        let mut down = logged_in(fs.ports.client, 2, &task, CLIENT_OFFLINE_DOWNLOAD);
        if size == 0 {
            // An empty file: one empty segment, then DONE.
            send(&mut down, 3, &pull(&task, 2, 0));
            let (_, rsp) = down.recv_cmd::<IMFilePullDataRsp>(cid::FILE_PULL_DATA_RSP);
            assert!(rsp.file_data.is_empty());
            assert_eq!(
                recv_state(&mut down).state,
                ClientFileState::CLIENT_FILE_DONE
            );
        } else {
            download(&mut down, 2, 1, &task, size, seed);
        }
        // The file stays for another download.
        let mut again = logged_in(fs.ports.client, 2, &task, CLIENT_OFFLINE_DOWNLOAD);
        if size > 0 {
            download(&mut again, 2, 1, &task, size, seed);
        }
    }
}

#[test]
fn a_file_the_cpp_stored_is_served() {
    let fs = FileServer::start(60);
    let task = "5f0e6c1a-2b3d-4c5e-8f70-123456789abc";
    let data = content(42, 0, 70_000);
    let path = fs.stored_path(task);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, cpp_file(task, 7, 2, &data)).unwrap();
    refused(fs.ports.client, 3, task, CLIENT_OFFLINE_DOWNLOAD); // not the receiver
    let mut down = logged_in(fs.ports.client, 2, task, CLIENT_OFFLINE_DOWNLOAD);
    download(&mut down, 2, 7, task, 70_000, 42);
    // A file whose header disagrees with its length is refused.
    let broken = "5f0e6c1a-2b3d-4c5e-8f70-123456789abd";
    let mut bytes = cpp_file(broken, 7, 2, &data);
    bytes.truncate(960 + 1000);
    std::fs::write(fs.stored_path(broken), bytes).unwrap();
    refused(fs.ports.client, 2, broken, CLIENT_OFFLINE_DOWNLOAD);
}

#[test]
fn nothing_outside_offline_file_is_opened() {
    let fs = FileServer::start(60);
    let outside = fs.process.dir().join("secret");
    let task = "abcdef01-2345-4678-9abc-def012345678";
    std::fs::write(&outside, cpp_file(task, 1, 2, b"secret")).unwrap();
    let dir = fs.offline_dir().join("ab");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(task)).unwrap();
    refused(fs.ports.client, 2, task, CLIENT_OFFLINE_DOWNLOAD);
    // A symlinked two-character directory is refused too.
    let task2 = "cdef0123-4567-489a-bcde-f0123456789a";
    let elsewhere = fs.process.dir().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join(task2), cpp_file(task2, 1, 2, b"x")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, fs.offline_dir().join("cd")).unwrap();
    refused(fs.ports.client, 2, task2, CLIENT_OFFLINE_DOWNLOAD);
    // Path-like ids never reach the disk.
    std::fs::write(
        fs.process.dir().join("evil"),
        cpp_file("../evil", 1, 2, b"x"),
    )
    .unwrap();
    refused(fs.ports.client, 2, "../evil", CLIENT_OFFLINE_DOWNLOAD);
    refused(fs.ports.client, 2, "../../secret", CLIENT_OFFLINE_DOWNLOAD);
}

#[test]
fn an_upload_must_send_exactly_the_segments_asked_for() {
    let fs = FileServer::start(60);
    let size = 3 * SEGMENT;
    for (offset_delta, short) in [(0, true), (1, false)] {
        let mut link = fs.msg_link();
        let task = open_task(&mut link, 1, 1, 2, size, OFFLINE);
        let mut up = logged_in(fs.ports.client, 1, &task, CLIENT_OFFLINE_UPLOAD);
        let (pdu, req) = up.recv_cmd::<IMFilePullDataReq>(cid::FILE_PULL_DATA_REQ);
        let len = if short { 100 } else { SEGMENT as usize };
        send(
            &mut up,
            pdu.seq_num(),
            &IMFilePullDataRsp {
                result_code: 0,
                task_id: task.clone(),
                user_id: 1,
                offset: req.offset + offset_delta,
                file_data: vec![0; len],
            },
        );
        assert!(up.is_closed_by_peer(), "a wrong segment closes the upload");
        assert!(!fs.stored_path(&task).exists(), "nothing stored");
        eventually("the partial file is removed", || {
            std::fs::read_dir(fs.stored_path(&task).parent().unwrap())
                .map(|d| d.count() == 0)
                .unwrap_or(true)
        });
        refused(fs.ports.client, 1, &task, CLIENT_OFFLINE_UPLOAD);
        refused(fs.ports.client, 2, &task, CLIENT_OFFLINE_DOWNLOAD);
    }
}

#[test]
fn an_abandoned_or_stalled_upload_is_cleaned_up() {
    let fs = FileServer::start(1);
    let size = 4 * SEGMENT;
    let mut link = fs.msg_link();
    // Abandoned after one segment.
    let task = open_task(&mut link, 1, 1, 2, size, OFFLINE);
    let mut up = logged_in(fs.ports.client, 1, &task, CLIENT_OFFLINE_UPLOAD);
    let (pdu, req) = up.recv_cmd::<IMFilePullDataReq>(cid::FILE_PULL_DATA_REQ);
    send(
        &mut up,
        pdu.seq_num(),
        &IMFilePullDataRsp {
            result_code: 0,
            task_id: task.clone(),
            user_id: 1,
            offset: req.offset,
            file_data: content(1, 0, SEGMENT as usize),
        },
    );
    assert_eq!(up.recv().command_id(), cid::FILE_PULL_DATA_REQ);
    let part = fs.stored_path(&task).with_extension("part");
    assert!(
        part.exists(),
        "the upload is under way in {}",
        part.display()
    );
    drop(up);
    eventually("the partial file goes with the uploader", || !part.exists());
    refused(fs.ports.client, 1, &task, CLIENT_OFFLINE_UPLOAD);
    // Stalled: the uploader stays but sends nothing.
    let task = open_task(&mut link, 2, 1, 2, size, OFFLINE);
    let mut up = logged_in(fs.ports.client, 1, &task, CLIENT_OFFLINE_UPLOAD);
    assert_eq!(up.recv().command_id(), cid::FILE_PULL_DATA_REQ);
    assert!(up.is_closed_by_peer(), "dropped after TaskTimeout");
    eventually("the stalled upload is removed", || {
        !fs.stored_path(&task).with_extension("part").exists()
    });
    // Cancelled by the uploader.
    let task = open_task(&mut link, 3, 1, 2, size, OFFLINE);
    let mut up = logged_in(fs.ports.client, 1, &task, CLIENT_OFFLINE_UPLOAD);
    assert_eq!(up.recv().command_id(), cid::FILE_PULL_DATA_REQ);
    send(
        &mut up,
        1,
        &IMFileState {
            state: ClientFileState::CLIENT_FILE_CANCEL,
            task_id: task.clone(),
            user_id: 1,
        },
    );
    assert!(up.is_closed_by_peer());
    eventually("cancelled upload removed", || {
        !fs.stored_path(&task).with_extension("part").exists()
    });
}

#[test]
fn two_downloads_of_one_file_at_once_end_in_either_order() {
    let fs = FileServer::start(60);
    let size = 5 * SEGMENT + 3;
    let task = upload_file(&fs, size, 8);
    for first_closes in [0, 1] {
        let mut a = logged_in(fs.ports.client, 2, &task, CLIENT_OFFLINE_DOWNLOAD);
        let mut b = logged_in(fs.ports.client, 2, &task, CLIENT_OFFLINE_DOWNLOAD);
        // Interleaved pulls: each connection has its own place in the file.
        for k in 0..3 {
            for c in [&mut a, &mut b] {
                send(c, 1, &pull(&task, 2, k * SEGMENT));
                let (_, rsp) = c.recv_cmd::<IMFilePullDataRsp>(cid::FILE_PULL_DATA_RSP);
                assert!(rsp.file_data == content(8, u64::from(k * SEGMENT), SEGMENT as usize));
            }
        }
        let (mut gone, mut stays) = if first_closes == 0 { (a, b) } else { (b, a) };
        drop(std::mem::replace(
            &mut gone,
            tt_rs::PduClient::connect(fs.ports.client),
        ));
        for k in 3..6 {
            send(&mut stays, 1, &pull(&task, 2, k * SEGMENT));
            let (_, rsp) = stays.recv_cmd::<IMFilePullDataRsp>(cid::FILE_PULL_DATA_RSP);
            let len = SEGMENT.min(size - k * SEGMENT) as usize;
            assert!(rsp.file_data == content(8, u64::from(k * SEGMENT), len));
        }
        assert_eq!(
            recv_state(&mut stays).state,
            ClientFileState::CLIENT_FILE_DONE
        );
    }
    // Twenty at once, in threads.
    let port = fs.ports.client;
    let all: Vec<_> = (0..20)
        .map(|_| {
            let t = task.clone();
            thread::spawn(move || {
                let mut c = logged_in(port, 2, &t, CLIENT_OFFLINE_DOWNLOAD);
                download(&mut c, 2, 1, &t, size, 8);
            })
        })
        .collect();
    for h in all {
        h.join().unwrap();
    }
}

#[test]
fn bad_download_pulls_close_that_download_only() {
    let fs = FileServer::start(60);
    let size = 2 * SEGMENT + 1;
    let task = upload_file(&fs, size, 5);
    for bad in [
        pull(&task, 2, 1),
        pull(&task, 2, 3 * SEGMENT),
        pull(&task, 1, 0),
        pull("0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d", 2, 0),
    ] {
        let mut c = logged_in(fs.ports.client, 2, &task, CLIENT_OFFLINE_DOWNLOAD);
        send(&mut c, 1, &bad);
        assert!(c.is_closed_by_peer(), "{bad:?}");
    }
    // An upload's task cannot be downloaded before it is complete, nor
    // can data be pushed at a download.
    let mut link = fs.msg_link();
    let pending = open_task(&mut link, 1, 1, 2, 10, OFFLINE);
    refused(fs.ports.client, 2, &pending, CLIENT_OFFLINE_DOWNLOAD);
    let mut c = logged_in(fs.ports.client, 2, &task, CLIENT_OFFLINE_DOWNLOAD);
    send(
        &mut c,
        1,
        &IMFilePullDataRsp {
            result_code: 0,
            task_id: task.clone(),
            user_id: 2,
            offset: 0,
            file_data: vec![1],
        },
    );
    assert!(c.is_closed_by_peer());
    let mut c = logged_in(fs.ports.client, 2, &task, CLIENT_OFFLINE_DOWNLOAD);
    download(&mut c, 2, 1, &task, size, 5);
}

#[test]
fn a_restart_keeps_offline_files() {
    let mut fs = FileServer::start(60);
    let task = upload_file(&fs, 3 * SEGMENT + 11, 6);
    // An upload cut by the restart leaves nothing behind.
    let mut link = fs.msg_link();
    let cut = open_task(&mut link, 1, 1, 2, 2 * SEGMENT, OFFLINE);
    let mut up = logged_in(fs.ports.client, 1, &cut, CLIENT_OFFLINE_UPLOAD);
    assert_eq!(up.recv().command_id(), cid::FILE_PULL_DATA_REQ);
    fs.restart();
    assert!(!fs.stored_path(&cut).with_extension("part").exists());
    refused(fs.ports.client, 1, &cut, CLIENT_OFFLINE_UPLOAD);
    let mut down = logged_in(fs.ports.client, 2, &task, CLIENT_OFFLINE_DOWNLOAD);
    download(&mut down, 2, 1, &task, 3 * SEGMENT + 11, 6);
}

#[test]
fn a_deleted_record_deletes_its_file() {
    let fs = FileServer::start(60);
    let task = upload_file(&fs, 10, 1);
    let mut link = fs.msg_link();
    let del = |from, to| IMFileDelOfflineReq {
        from_user_id: from,
        to_user_id: to,
        task_id: task.clone(),
    };
    send(&mut link, 1, &del(2, 1)); // not its pair
    send(
        &mut link,
        1,
        &IMFileDelOfflineReq {
            from_user_id: 1,
            to_user_id: 2,
            task_id: "../x".into(),
        },
    );
    fs.process.wait_log("not 2->1: kept");
    assert!(fs.stored_path(&task).exists());
    send(&mut link, 2, &del(1, 2));
    eventually("the file is deleted", || !fs.stored_path(&task).exists());
    refused(fs.ports.client, 2, &task, CLIENT_OFFLINE_DOWNLOAD);
}

#[test]
fn files_past_their_retention_are_deleted() {
    let fs = FileServer::start_with(60, "OfflineFileRetention=3600\n");
    let old = "0ddf11e5-0000-4000-8000-000000000001";
    let path = fs.stored_path(old);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, cpp_file(old, 1, 2, b"from 2015")).unwrap();
    let fresh = upload_file(&fs, 5, 3);
    // The sweep runs at start-up, then every retention / 4.
    let mut fs = fs;
    fs.restart();
    eventually("the 2015 file is deleted", || !path.exists());
    assert!(fs.stored_path(&fresh).exists(), "a fresh file stays");
}
