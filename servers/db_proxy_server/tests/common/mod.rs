//! Helpers shared by the db_proxy_server integration tests: the conf, the
//! started proxy, rows written the way the admin UI or demo SQL writes
//! them, a fake msg_server's requests, a Redis reader per pool, and a fake
//! msfs for voice messages.
#![allow(dead_code)]

use mysql::prelude::Queryable;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tt_proto::ProtoMessage;
use tt_proto::IM::BaseDefine::{
    GroupCmdID, GroupVersionInfo, MessageCmdID, MsgType, ServiceID, SessionType,
};
use tt_proto::IM::Group::{
    IMGroupInfoListReq, IMGroupInfoListRsp, IMNormalGroupListReq, IMNormalGroupListRsp,
};
use tt_proto::IM::Message::{
    IMGetMsgByIdReq, IMGetMsgByIdRsp, IMGetMsgListReq, IMGetMsgListRsp, IMMsgData,
    IMUnreadMsgCntReq, IMUnreadMsgCntRsp,
};
use tt_rs::{free_port, PduClient, RedisServer, ServerProcess, TestDb};

pub const BIN: &str = env!("CARGO_BIN_EXE_db_proxy_server");
pub const SID_MSG: u16 = ServiceID::SID_MSG as u16;
pub const SID_GROUP: u16 = ServiceID::SID_GROUP as u16;
pub const SID_OTHER: u16 = ServiceID::SID_OTHER as u16;
pub const SID_BUDDY: u16 = ServiceID::SID_BUDDY_LIST as u16;
pub const SID_FILE: u16 = ServiceID::SID_FILE as u16;
pub const AES_KEY: &str = "12345678901234567890123456789012";

/// Redis databases of the pools, as [`conf`] numbers them.
pub const DB_UNREAD: u8 = 1;
pub const DB_GROUP_SET: u8 = 2;
pub const DB_GROUP_MEMBER: u8 = 5;

/// The conf of a proxy on `port` with the test database and Redis; its msfs
/// (port 8700) is not started by any test, so audio uploads fail.
pub fn conf(db: &TestDb, redis: u16, port: u16, threads: usize, max_conn: usize) -> String {
    tt_rs::db_proxy_conf(db, redis, port, threads, max_conn, "http://127.0.0.1:8700/")
}

pub struct Proxy {
    pub server: ServerProcess,
    pub port: u16,
}

pub fn start(db: &TestDb, redis: &RedisServer, threads: usize, max_conn: usize) -> Proxy {
    let port = free_port();
    start_with(conf(db, redis.port(), port, threads, max_conn), port)
}

pub fn start_with(conf_text: String, port: u16) -> Proxy {
    let mut server = ServerProcess::start(BIN, "dbproxyserver.conf", &conf_text);
    server.wait_listening(port);
    Proxy { server, port }
}

/// The reference schema's tables (`ttopen.sql`) in a fresh database, or
/// `None` when `../shared` is absent.
pub fn reference_db() -> Option<TestDb> {
    let reference = tt_rs::repo_root().join("../shared/reference/teamtalk/ttopen.sql");
    let Ok(text) = std::fs::read_to_string(&reference) else {
        eprintln!("skipped: {} is absent", reference.display());
        return None;
    };
    // The file drops and creates a database named teamtalk: keep only the tables.
    let tables: String = text
        .lines()
        .filter(|l| {
            let u = l.trim_start().to_ascii_uppercase();
            !(u.starts_with("CREATE DATABASE")
                || u.starts_with("DROP DATABASE")
                || u.starts_with("USE "))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let db = TestDb::empty();
    db.load_sql(&tables);
    Some(db)
}

/// A fresh schema, a private Redis, a proxy started on them with `threads`
/// workers and `max_conn` MySQL connections, and a client connected to it
/// (the usual start of a test; bind them in this order so that they drop
/// client first).
pub fn fresh(threads: usize, max_conn: usize) -> (TestDb, RedisServer, Proxy, PduClient) {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let p = start(&db, &redis, threads, max_conn);
    let c = PduClient::connect(p.port);
    (db, redis, p, c)
}

/// Inserts a user whose plain password is `plain` (see `tt_rs::add_user`).
pub fn add_user(db: &TestDb, id: u32, name: &str, plain: &str, updated: u32) {
    tt_rs::add_user(db, id, name, plain, updated)
}

/// A message as a msg_server forwards it.
pub fn msg_data(from: u32, to: u32, msg_type: MsgType, data: &[u8], created: u32) -> IMMsgData {
    IMMsgData {
        from_user_id: from,
        to_session_id: to,
        msg_id: 0,
        create_time: created,
        msg_type,
        msg_data: data.to_vec(),
        attach_data: Some(format!("attach-{from}-{to}").into_bytes()),
    }
}

/// A one-to-one text message, as a msg_server forwards it.
pub fn text_msg(from: u32, to: u32, data: &[u8], created: u32) -> IMMsgData {
    msg_data(from, to, MsgType::MSG_TYPE_SINGLE_TEXT, data, created)
}

/// A group text message, as a msg_server forwards it.
pub fn group_text(from: u32, group: u32, data: &[u8], created: u32) -> IMMsgData {
    msg_data(from, group, MsgType::MSG_TYPE_GROUP_TEXT, data, created)
}

/// Sends a message and waits for db_proxy's answer (the message with its id).
pub fn send(c: &mut PduClient, seq: u16, msg: &IMMsgData) -> IMMsgData {
    c.send_msg(SID_MSG, MessageCmdID::CID_MSG_DATA as u16, seq, msg);
    let (pdu, rsp) = c.recv_cmd::<IMMsgData>(MessageCmdID::CID_MSG_DATA as u16);
    assert_eq!(pdu.seq_num(), seq);
    rsp
}

/// Sends a message as a msg_server does and does not wait: for requests
/// db_proxy answers nothing (the next reply proves it).
pub fn send_unanswered(c: &mut PduClient, seq: u16, msg: &IMMsgData) {
    c.send_msg(SID_MSG, MessageCmdID::CID_MSG_DATA as u16, seq, msg);
}

/// Sends `req` as command `cid` of service `sid` and returns the reply of
/// command `rsp_cid`: one round trip of the fake msg_server.
pub fn ask<Rsp: ProtoMessage>(
    c: &mut PduClient,
    sid: u16,
    cid: u16,
    seq: u16,
    req: &impl ProtoMessage,
    rsp_cid: u16,
) -> Rsp {
    c.send_msg(sid, cid, seq, req);
    c.recv_cmd::<Rsp>(rsp_cid).1
}

/// The user's unread counts (`CID_MSG_UNREAD_CNT_REQUEST`).
pub fn unread(c: &mut PduClient, user: u32) -> IMUnreadMsgCntRsp {
    let req = IMUnreadMsgCntReq {
        user_id: user,
        attach_data: None,
    };
    ask(
        c,
        SID_MSG,
        MessageCmdID::CID_MSG_UNREAD_CNT_REQUEST as u16,
        8,
        &req,
        MessageCmdID::CID_MSG_UNREAD_CNT_RESPONSE as u16,
    )
}

/// Up to `cnt` messages of a session, newest first, from `begin` down (0:
/// from the newest); checks the attach data comes back.
pub fn msg_list(
    c: &mut PduClient,
    user: u32,
    session_type: SessionType,
    session: u32,
    begin: u32,
    cnt: u32,
) -> IMGetMsgListRsp {
    let req = IMGetMsgListReq {
        user_id: user,
        session_type,
        session_id: session,
        msg_id_begin: begin,
        msg_cnt: cnt,
        attach_data: Some(b"l".to_vec()),
    };
    let rsp: IMGetMsgListRsp = ask(
        c,
        SID_MSG,
        MessageCmdID::CID_MSG_LIST_REQUEST as u16,
        7,
        &req,
        MessageCmdID::CID_MSG_LIST_RESPONSE as u16,
    );
    assert_eq!(rsp.attach_data.as_deref(), Some(&b"l"[..]));
    rsp
}

/// The listed messages of a session (`CID_MSG_GET_BY_MSG_ID_REQ`).
pub fn msgs_by_id(
    c: &mut PduClient,
    user: u32,
    session_type: SessionType,
    session: u32,
    ids: &[u32],
) -> IMGetMsgByIdRsp {
    let req = IMGetMsgByIdReq {
        user_id: user,
        session_type,
        session_id: session,
        msg_id_list: ids.to_vec(),
        attach_data: None,
    };
    ask(
        c,
        SID_MSG,
        MessageCmdID::CID_MSG_GET_BY_MSG_ID_REQ as u16,
        14,
        &req,
        MessageCmdID::CID_MSG_GET_BY_MSG_ID_RES as u16,
    )
}

/// The user's normal groups as `(group, version)`.
pub fn normal_list(c: &mut PduClient, user: u32) -> Vec<(u32, u32)> {
    let req = IMNormalGroupListReq {
        user_id: user,
        attach_data: None,
    };
    let rsp: IMNormalGroupListRsp = ask(
        c,
        SID_GROUP,
        GroupCmdID::CID_GROUP_NORMAL_LIST_REQUEST as u16,
        3,
        &req,
        GroupCmdID::CID_GROUP_NORMAL_LIST_RESPONSE as u16,
    );
    rsp.group_version_list
        .iter()
        .map(|g| (g.group_id, g.version))
        .collect()
}

/// The groups whose `(group, version)` the client holds is older.
pub fn group_info(c: &mut PduClient, user: u32, groups: &[(u32, u32)]) -> IMGroupInfoListRsp {
    let req = IMGroupInfoListReq {
        user_id: user,
        group_version_list: groups
            .iter()
            .map(|&(group_id, version)| GroupVersionInfo { group_id, version })
            .collect(),
        attach_data: None,
    };
    ask(
        c,
        SID_GROUP,
        GroupCmdID::CID_GROUP_INFO_REQUEST as u16,
        4,
        &req,
        GroupCmdID::CID_GROUP_INFO_RESPONSE as u16,
    )
}

/// Sends each link's messages at once from its own connection (seq = index)
/// and returns each link's replies, in the order they came.
pub fn send_from_links(port: u16, links: Vec<Vec<IMMsgData>>) -> Vec<Vec<IMMsgData>> {
    let threads: Vec<_> = links
        .into_iter()
        .map(|msgs| {
            std::thread::spawn(move || {
                let mut c = PduClient::connect(port);
                for (i, msg) in msgs.iter().enumerate() {
                    send_unanswered(&mut c, i as u16, msg);
                }
                (0..msgs.len())
                    .map(|_| c.recv_cmd::<IMMsgData>(MessageCmdID::CID_MSG_DATA as u16).1)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// The current Unix second, as a msg_server stamps messages.
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// One field of a Redis hash.
pub fn hfield(conn: &mut redis::Connection, key: &str, field: &str) -> Option<String> {
    hgetall(conn, key).get(field).cloned()
}

/// A connection to one of the test Redis's databases.
pub fn redis_db(redis: &RedisServer, db: u8) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{}/{db}", redis.port()))
        .unwrap()
        .get_connection()
        .unwrap()
}

pub fn hgetall(conn: &mut redis::Connection, key: &str) -> HashMap<String, String> {
    redis::cmd("HGETALL").arg(key).query(conn).unwrap()
}

pub fn get(conn: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(conn).unwrap()
}

/// `<prefix>_<id % 8>`: a message shard table.
pub fn shard(prefix: &str, id: u32) -> String {
    [prefix, "_", &(id % 8).to_string()].concat()
}

/// The rows of one query as tuples.
pub fn rows<T: mysql::prelude::FromRow>(db: &TestDb, sql: &str) -> Vec<T> {
    db.conn().query(sql).unwrap()
}

/// A fake msfs: answers an upload with a URL on itself and serves the
/// uploaded bytes back there.
pub struct FakeMsfs {
    pub port: u16,
    pub files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl FakeMsfs {
    pub fn start() -> FakeMsfs {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let store = files.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                // Read the head, then the body by Content-Length.
                let (head_end, len) = loop {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break (None, 0);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        break (Some(i + 4), len);
                    }
                };
                let Some(head_end) = head_end else { continue };
                while buf.len() < head_end + len {
                    let n = s.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                if head.starts_with("POST") {
                    let body = &buf[head_end..head_end + len];
                    // The part's data sits between the blank line and the closing boundary.
                    let start = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let end = body
                        .windows(4)
                        .rposition(|w| w == b"\r\n--")
                        .unwrap_or(body.len());
                    let mut files = store.lock().unwrap();
                    let name = format!("/g0/{}.audio", files.len());
                    files.insert(name.clone(), body[start..end].to_vec());
                    let json = format!(
                        "{{\"error_code\":0,\"error_msg\":\"ok\",\"path\":\"{name}\",\
                         \"url\":\"http://127.0.0.1:{port}{name}\"}}"
                    );
                    let _ = write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                        json.len()
                    );
                } else {
                    let data = store.lock().unwrap().get(&path).cloned();
                    match data {
                        Some(d) => {
                            let _ = write!(
                                s,
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                d.len()
                            );
                            let _ = s.write_all(&d);
                        }
                        None => {
                            let _ = s.write_all(
                                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                            );
                        }
                    }
                }
            }
        });
        FakeMsfs { port, files }
    }

    pub fn site(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

/// Every stored row of the pair `relate_id`: msgId → (fromId, content).
pub fn rows_of(db: &TestDb, relate_id: u32) -> BTreeMap<u32, (u32, String)> {
    let sql = format!(
        "SELECT msgId, fromId, content FROM IMMessage_{} WHERE relateId = ?",
        relate_id % 8
    );
    let rows: Vec<(u32, u32, String)> = db.conn().exec(sql, (relate_id,)).unwrap();
    let mut out = BTreeMap::new();
    for (id, from, content) in rows {
        assert!(
            out.insert(id, (from, content)).is_none(),
            "msgId {id} stored twice in relation {relate_id}"
        );
    }
    out
}

pub fn relation_id(db: &TestDb, a: u32, b: u32) -> u32 {
    let (small, big) = if a < b { (a, b) } else { (b, a) };
    db.conn()
        .exec_first(
            "SELECT id FROM IMRelationShip WHERE smallId = ? AND bigId = ?",
            (small, big),
        )
        .unwrap()
        .expect("the pair's relation")
}

/// Sends `msgs` on `c` with seqs `first_seq..`, up to `window` in flight,
/// and returns the answers by seq.
pub fn pump(
    c: &mut PduClient,
    first_seq: u16,
    msgs: &[IMMsgData],
    window: usize,
) -> HashMap<u16, IMMsgData> {
    let mut answers = HashMap::new();
    let mut sent = 0;
    while answers.len() < msgs.len() {
        while sent < msgs.len() && sent - answers.len() < window {
            c.send_msg(
                SID_MSG,
                MessageCmdID::CID_MSG_DATA as u16,
                first_seq + sent as u16,
                &msgs[sent],
            );
            sent += 1;
        }
        let (pdu, rsp) = c.recv_cmd::<IMMsgData>(MessageCmdID::CID_MSG_DATA as u16);
        assert!(
            answers.insert(pdu.seq_num(), rsp).is_none(),
            "seq {} answered twice",
            pdu.seq_num()
        );
    }
    answers
}
