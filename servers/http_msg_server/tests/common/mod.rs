//! What the http_msg_server tests share: a cluster (route, login,
//! db_proxy on a scratch database and a private Redis, one msg_server)
//! with http_msg_server beside it, HTTP requests from the test side, and
//! clients logged in with tt-client.

#![allow(dead_code)]

use std::time::{Duration, Instant};
use tt_client::{Event, LoginOptions, Session};
use tt_proto::cid;
use tt_proto::IM::BaseDefine::GroupVersionInfo;
use tt_proto::IM::Group::IMGroupChangeMemberNotify;
use tt_rs::cluster::Cluster;
use tt_rs::http::{http_exchange, parse_answer, HttpAnswer};
use tt_rs::{ServerProcess, WAIT};

/// The users of every cluster: (id, name, password).
pub const USERS: [(u32, &str, &str); 4] = [
    (1, "alice", "alice-pw"),
    (2, "bob", "bob-pw"),
    (3, "carol", "carol-pw"),
    (4, "dave", "dave-pw"),
];

/// A cluster with one msg_server and an http_msg_server linked to it.
pub struct HttpCluster {
    pub cluster: Cluster,
    pub http: ServerProcess,
    pub port: u16,
}

impl HttpCluster {
    /// Starts everything; `extra_conf` goes into `httpmsgserver.conf`.
    pub fn start(extra_conf: &str) -> HttpCluster {
        let cluster = Cluster::start(&USERS, 1);
        let (http, port) = cluster.start_http_msg_server(extra_conf);
        HttpCluster {
            cluster,
            http,
            port,
        }
    }

    /// `127.0.0.1:<port>` of the API.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Logs user `name` in at the msg_server.
    pub fn login(&self, name: &str) -> Session {
        let (_, _, pw) = USERS.iter().find(|u| u.1 == name).unwrap();
        let ms = format!("127.0.0.1:{}", self.cluster.msg_servers[0].1);
        Session::login(&ms, name, pw, &LoginOptions::default()).unwrap()
    }
}

/// The bytes of `POST path` with `body`.
pub fn post_request(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends `request` and parses the answer; checks the C++ head and that
/// the server closed after it.
pub fn exchange(addr: &str, request: &[u8]) -> HttpAnswer {
    let bytes = http_exchange(addr, request);
    assert!(
        !bytes.is_empty(),
        "no answer to {:?}",
        String::from_utf8_lossy(&request[..request.len().min(200)])
    );
    let a = parse_answer(&bytes);
    assert_eq!(a.header("Connection"), Some("close"));
    assert_eq!(a.header("Content-Type"), Some("text/html;charset=utf-8"));
    a
}

/// `POST path` with `body`.
pub fn post(addr: &str, path: &str, body: &serde_json::Value) -> HttpAnswer {
    exchange(addr, &post_request(path, &body.to_string()))
}

/// `error_code` of a 200 answer.
pub fn code(a: &HttpAnswer) -> i64 {
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    a.json()["error_code"].as_i64().unwrap()
}

/// `POST /query/CreateGroup`; returns (error_code, group_id).
pub fn create_group(addr: &str, name: &str, group_type: u32, members: &[u32]) -> (i64, u32) {
    let a = post(
        addr,
        "/query/CreateGroup",
        &serde_json::json!({"req_user_id": 1, "app_key": "any", "group_name": name,
            "group_type": group_type, "group_avatar": format!("http://img/{name}.png"),
            "user_id_list": members}),
    );
    let v = a.json();
    (code(&a), v["group_id"].as_u64().unwrap() as u32)
}

/// `POST /query/ChangeMembers`; returns error_code.
pub fn change_members(addr: &str, group_id: u32, modify_type: u32, members: &[u32]) -> i64 {
    let a = post(
        addr,
        "/query/ChangeMembers",
        &serde_json::json!({"req_user_id": 1, "app_key": "any", "group_id": group_id,
            "modify_type": modify_type, "user_id_list": members}),
    );
    code(&a)
}

/// The next `CID_GROUP_CHANGE_MEMBER_NOTIFY` for `group_id` the session
/// gets (other PDUs, e.g. status notifies, are skipped).
pub fn change_notify(s: &mut Session, group_id: u32) -> IMGroupChangeMemberNotify {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(Event::Other(pdu)) = s.next_event(Duration::from_millis(200)).unwrap() {
            if pdu.command_id() == cid::GROUP_CHANGE_MEMBER_NOTIFY {
                let n: IMGroupChangeMemberNotify = pdu.msg().unwrap();
                if n.group_id == group_id {
                    return n;
                }
            }
        }
    }
    panic!("no change notify for group {group_id}");
}

/// The ids of the session's normal groups.
pub fn group_ids(s: &mut Session) -> Vec<u32> {
    s.groups().unwrap().iter().map(|g| g.group_id).collect()
}

/// The group's info as the session sees it (asked at version 0).
pub fn group_info(s: &mut Session, group_id: u32) -> tt_proto::IM::BaseDefine::GroupInfo {
    let mut list = s
        .group_info(vec![GroupVersionInfo {
            group_id,
            version: 0,
        }])
        .unwrap();
    assert_eq!(list.len(), 1, "group {group_id} known");
    list.remove(0)
}

/// Waits until `p` has logged `needle` at least `n` times.
pub fn wait_log_count(p: &ServerProcess, needle: &str, n: usize) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if p.log().matches(needle).count() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("never logged {needle:?} {n} times:\n{}", p.log());
}
