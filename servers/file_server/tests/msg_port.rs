//! file_server's msg_server port, spoken to directly as a msg_server does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base::ImPdu;
use common::{ask_task, send, FileServer};
use tt_proto::cid;
use tt_proto::IM::BaseDefine::TransferFileType;
use tt_proto::IM::Server::{IMFileServerIPReq, IMFileServerIPRsp};
use tt_rs::cluster::{start_server, FileServerPorts};
use tt_rs::{built_binary, run_to_exit};

#[test]
fn heartbeats_are_echoed_and_addresses_listed() {
    let fs = FileServer::start(60);
    let mut link = fs.msg_link();
    link.send(&ImPdu::new(tt_proto::sid::OTHER, cid::OTHER_HEARTBEAT));
    assert_eq!(link.recv().command_id(), cid::OTHER_HEARTBEAT);
    send(&mut link, 77, &IMFileServerIPReq {});
    let (pdu, rsp) = link.recv_cmd::<IMFileServerIPRsp>(cid::OTHER_FILE_SERVER_IP_RSP);
    assert_eq!(pdu.seq_num(), 77);
    let addrs: Vec<(String, u32)> = rsp
        .ip_addr_list
        .into_iter()
        .map(|a| (a.ip, a.port))
        .collect();
    assert_eq!(
        addrs,
        vec![("127.0.0.1".to_string(), u32::from(fs.ports.client))]
    );
}

#[test]
fn every_client_address_is_listed() {
    let ports = FileServerPorts::free();
    let conf = format!(
        "ClientListenIP=127.0.0.1;127.0.0.2\nClientListenPort={}\nMsgServerListenIP=127.0.0.1\n\
         MsgServerListenPort={}\nTaskTimeout=60\n",
        ports.client, ports.msg
    );
    let _p = start_server(
        "file_server",
        "fileserver.conf",
        &conf,
        &[ports.client, ports.msg],
    );
    let mut link = tt_rs::PduClient::connect(ports.msg);
    send(&mut link, 1, &IMFileServerIPReq {});
    let (_, rsp) = link.recv_cmd::<IMFileServerIPRsp>(cid::OTHER_FILE_SERVER_IP_RSP);
    let ips: Vec<String> = rsp.ip_addr_list.into_iter().map(|a| a.ip).collect();
    assert_eq!(ips, ["127.0.0.1", "127.0.0.2"]);
}

#[test]
fn a_transfer_request_gets_a_new_task() {
    let fs = FileServer::start(60);
    let mut link = fs.msg_link();
    let rsp = ask_task(
        &mut link,
        9,
        1,
        2,
        1234,
        TransferFileType::FILE_TYPE_OFFLINE,
    );
    assert_eq!(rsp.result_code, 0);
    assert_eq!((rsp.from_user_id, rsp.to_user_id), (1, 2));
    assert_eq!(rsp.file_name.as_deref(), Some("report.pdf"));
    assert_eq!(rsp.file_size, Some(1234));
    assert_eq!(rsp.trans_mode, Some(TransferFileType::FILE_TYPE_OFFLINE));
    assert_eq!(rsp.attach_data, Some(vec![7, 7, 7]), "attach data echoed");
    let id = rsp.task_id.expect("task id");
    assert_eq!(id.len(), 36);
    assert!(
        id.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{id}"
    );
    let other = ask_task(&mut link, 10, 1, 2, 1, TransferFileType::FILE_TYPE_ONLINE);
    assert_eq!(other.trans_mode, Some(TransferFileType::FILE_TYPE_ONLINE));
    assert_ne!(other.task_id, Some(id), "each task its own id");
}

#[test]
fn malformed_pdus_leave_the_link_and_other_links_up() {
    let fs = FileServer::start(60);
    let mut bad = fs.msg_link();
    let mut good = fs.msg_link();
    // A transfer request without its required fields, an unknown command.
    let mut pdu = ImPdu::new(tt_proto::sid::OTHER, cid::OTHER_FILE_TRANSFER_REQ);
    pdu.set_body(&[0xff, 0xff, 0xff]).unwrap();
    bad.send(&pdu);
    bad.send(&ImPdu::new(0x7777, 0x7777));
    let rsp = ask_task(&mut bad, 3, 1, 2, 5, TransferFileType::FILE_TYPE_ONLINE);
    assert_eq!(rsp.result_code, 0, "the link survives a bad body");
    // A length below the header's closes only that link.
    bad.send_raw(&[0, 0, 0, 4, 0, 1, 0, 0, 0, 7, 7, 1, 0, 0, 0, 0]);
    assert!(bad.is_closed_by_peer());
    let rsp = ask_task(&mut good, 4, 1, 2, 5, TransferFileType::FILE_TYPE_ONLINE);
    assert_eq!(rsp.result_code, 0);
    fs.process.wait_log("PDU dropped");
}

#[test]
fn a_flood_of_requests_is_answered_in_order() {
    let fs = FileServer::start(60);
    let mut link = fs.msg_link();
    let mut bytes = Vec::new();
    for seq in 0..2_000u16 {
        let req = tt_proto::IM::Server::IMFileTransferReq {
            from_user_id: 1,
            to_user_id: 2,
            file_name: "x".into(),
            file_size: 1,
            trans_mode: TransferFileType::FILE_TYPE_ONLINE,
            attach_data: None,
        };
        bytes.extend_from_slice(ImPdu::for_msg(seq, &req).unwrap().as_bytes());
    }
    link.send_raw(&bytes);
    for seq in 0..2_000u16 {
        let (pdu, rsp) =
            link.recv_cmd::<tt_proto::IM::Server::IMFileTransferRsp>(cid::OTHER_FILE_TRANSFER_RSP);
        assert_eq!((pdu.seq_num(), rsp.result_code), (seq, 0));
    }
}

#[test]
fn missing_keys_exit_1_naming_the_key_and_aliases_are_read() {
    let bin = built_binary("file_server");
    let bin = bin.to_str().unwrap();
    // The C++ segfaults without TaskTimeout.
    let (code, out) = run_to_exit(
        bin,
        "fileserver.conf",
        "ClientListenIP=127.0.0.1\nClientListenPort=1\nMsgServerListenIP=127.0.0.1\nMsgServerListenPort=2\n",
        &[],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("TaskTimeout"), "{out}");
    // The reference file's keys alone: the msg_server port is missing.
    let (code, out) = run_to_exit(
        bin,
        "fileserver.conf",
        "Address=127.0.0.1\nListenPort=1\nTaskTimeout=60\n",
        &[],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("MsgServerListenIP"), "{out}");
    // Address and ListenPort stand for the client keys.
    let ports = FileServerPorts::free();
    let conf = format!(
        "Address=127.0.0.1\nListenPort={}\nMsgServerListenIP=127.0.0.1\nMsgServerListenPort={}\n\
         TaskTimeout=60\n",
        ports.client, ports.msg
    );
    let p = start_server(
        "file_server",
        "fileserver.conf",
        &conf,
        &[ports.client, ports.msg],
    );
    assert!(p.log().contains(&format!(
        "listening for clients on 127.0.0.1:{}",
        ports.client
    )));
}
