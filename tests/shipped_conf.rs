//! The `.conf` files we ship in `conf/` start the real servers: each file is
//! used as it is, with only ports (and the database name and Redis port)
//! moved to free values so tests never touch fixed ports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use tt_rs::{built_binary, free_port, RedisServer, ServerProcess, TestDb};

/// `text` with the value of each listed key replaced (comments and every
/// other line kept).
fn with_values(text: &str, values: &[(&str, String)]) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        match values.iter().find(|(k, _)| *k == key && line.contains('=')) {
            Some((k, v)) => out += &format!("{k}={v}\n"),
            None => out += &format!("{line}\n"),
        }
    }
    out
}

/// The shipped `conf/<name>`, its metrics port moved to a free one.
fn shipped(name: &str) -> String {
    let text = std::fs::read_to_string(tt_rs::repo_root().join("conf").join(name)).unwrap();
    with_values(&text, &[("MetricsPort", free_port().to_string())])
}

fn start(binary: &str, conf_name: &str, conf: &str, ports: &[u16]) -> ServerProcess {
    let bin = built_binary(binary);
    let mut p = ServerProcess::start(bin.to_str().unwrap(), conf_name, conf);
    for &port in ports {
        p.wait_listening(port);
    }
    p
}

#[test]
fn route_server_starts_with_the_shipped_conf() {
    let port = free_port();
    let conf = with_values(
        &shipped("routeserver.conf"),
        &[("ListenMsgPort", port.to_string())],
    );
    let p = start("route_server", "routeserver.conf", &conf, &[port]);
    assert!(p.log().contains(&format!("127.0.0.1:{port}")));
    // The shipped files turn metrics on (at a loopback port).
    let s = tt_rs::metrics::scrape(&p);
    assert_eq!(s.value("tt_route_msg_server_links", &[]), 0.0);
}

#[test]
fn login_server_starts_with_the_shipped_conf() {
    let (client, http, msg) = (free_port(), free_port(), free_port());
    let conf = with_values(
        &shipped("loginserver.conf"),
        &[
            ("ClientPort", client.to_string()),
            ("HttpPort", http.to_string()),
            ("MsgServerPort", msg.to_string()),
        ],
    );
    start(
        "login_server",
        "loginserver.conf",
        &conf,
        &[client, http, msg],
    );
}

#[test]
fn db_proxy_server_starts_with_the_shipped_conf() {
    let db = TestDb::with_schema();
    let redis = RedisServer::start();
    let (host, db_port, user, pass) = db.server();
    let port = free_port();
    let mut values = vec![("ListenPort", port.to_string())];
    let keys: Vec<(String, String)> = ["teamtalk_master", "teamtalk_slave"]
        .iter()
        .flat_map(|i| {
            [
                (format!("{i}_host"), host.clone()),
                (format!("{i}_port"), db_port.to_string()),
                (format!("{i}_dbname"), db.name().to_string()),
                (format!("{i}_username"), user.clone()),
                (format!("{i}_password"), pass.clone()),
            ]
        })
        .chain(
            ["unread", "group_set", "token", "sync", "group_member"]
                .iter()
                .map(|c| (format!("{c}_port"), redis.port().to_string())),
        )
        .collect();
    values.extend(keys.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let conf = with_values(&shipped("dbproxyserver.conf"), &values);
    let p = start("db_proxy_server", "dbproxyserver.conf", &conf, &[port]);
    assert!(
        !p.log().contains(&format!("password={pass}")),
        "no secret in the log"
    );
}

#[test]
fn msg_server_starts_with_the_shipped_conf() {
    // Its peers are not running: it listens anyway and keeps retrying them.
    let port = free_port();
    let mut values = vec![("ListenPort", port.to_string())];
    let peers = [
        "DBServerPort1",
        "DBServerPort2",
        "LoginServerPort1",
        "RouteServerPort1",
        "PushServerPort1",
        "FileServerPort1",
    ];
    let ports: Vec<String> = peers.iter().map(|_| free_port().to_string()).collect();
    values.extend(peers.iter().copied().zip(ports));
    let conf = with_values(&shipped("msgserver.conf"), &values);
    let p = start("msg_server", "msgserver.conf", &conf, &[port]);
    p.wait_log("connect");
}

#[test]
fn http_msg_server_starts_with_the_shipped_conf() {
    // No db_proxy or route_server runs: it listens anyway, answers 10
    // ("服务器异常": ChangeMembers needs route_server, at once) and keeps
    // retrying them.
    let port = free_port();
    let mut values = vec![("ListenPort", port.to_string())];
    for key in ["DBServerPort1", "DBServerPort2", "RouteServerPort1"] {
        values.push((key, free_port().to_string()));
    }
    let conf = with_values(&shipped("httpmsgserver.conf"), &values);
    let p = start("http_msg_server", "httpmsgserver.conf", &conf, &[port]);
    let body = r#"{"req_user_id":1,"app_key":"k","group_id":1,"modify_type":1,"user_id_list":[2]}"#;
    let request = format!(
        "POST /query/ChangeMembers HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = tt_rs::http::parse_answer(&tt_rs::http::http_exchange(
        &format!("127.0.0.1:{port}"),
        request.as_bytes(),
    ));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["error_code"], 10);
    p.wait_log("connect to");
}

#[test]
fn file_server_starts_with_the_shipped_conf() {
    let (client, msg) = (free_port(), free_port());
    let conf = with_values(
        &shipped("fileserver.conf"),
        &[
            ("ClientListenPort", client.to_string()),
            ("MsgServerListenPort", msg.to_string()),
        ],
    );
    let p = start("file_server", "fileserver.conf", &conf, &[client, msg]);
    assert!(p
        .log()
        .contains(&format!("listening for clients on 127.0.0.1:{client}")));
    assert!(
        p.dir().join("offline_file").is_dir(),
        "offline_file/ in its working directory"
    );
}

#[test]
fn msfs_starts_with_the_shipped_conf() {
    let port = free_port();
    let conf = with_values(&shipped("msfs.conf"), &[("ListenPort", port.to_string())]);
    let p = start("msfs", "msfs.conf", &conf, &[port]);
    let addr = format!("127.0.0.1:{port}");
    let body = "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\
                Content-Type: image/png\r\n\r\nPNG\r\n--b--\r\n";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=b\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = tt_rs::http::parse_answer(&tt_rs::http::http_exchange(&addr, request.as_bytes()));
    let path = answer.json()["path"].as_str().unwrap().to_string();
    // BaseDir=./tmp, relative to the working directory.
    let stored = p.dir().join("tmp").join(path.strip_prefix("g0/").unwrap());
    assert_eq!(std::fs::read(stored).unwrap(), b"PNG");
    // The shipped file turns metrics on: the upload's connection counts.
    let s = tt_rs::metrics::scrape(&p);
    assert!(s.value("tt_connections_opened_total", &[("kind", "MsfsHttp")]) >= 1.0);
}
