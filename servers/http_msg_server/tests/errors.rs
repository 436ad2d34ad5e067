//! Every error code and every kind of bad request, against the real
//! server: each gets a whole HTTP answer, and the server carries on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

fn create_body() -> serde_json::Value {
    json!({"req_user_id": 1, "app_key": "k", "group_name": "g", "group_type": 1,
           "group_avatar": "a", "user_id_list": [1, 2]})
}

fn with(mut body: serde_json::Value, key: &str, v: serde_json::Value) -> serde_json::Value {
    body[key] = v;
    body
}

fn without(mut body: serde_json::Value, key: &str) -> serde_json::Value {
    body.as_object_mut().unwrap().remove(key);
    body
}

/// The answer's status, `error_code` and `error_msg`.
fn outcome(a: &tt_rs::http::HttpAnswer) -> (u16, i64, String) {
    let v = a.json();
    (
        a.status,
        v["error_code"].as_i64().unwrap(),
        v["error_msg"].as_str().unwrap().to_string(),
    )
}

#[test]
fn each_error_code_from_a_request_that_provokes_it() {
    let hc = HttpCluster::start("");
    let addr = hc.addr();
    let create = |body: serde_json::Value| outcome(&post(&addr, "/query/CreateGroup", &body));
    let change = |body: serde_json::Value| outcome(&post(&addr, "/query/ChangeMembers", &body));
    let param = (200, 1, "参数错误".to_string());
    let iface = (200, 5, "未授权的接口".to_string());

    // 1: missing, null or invalid fields.
    for key in [
        "req_user_id",
        "group_name",
        "group_type",
        "group_avatar",
        "user_id_list",
    ] {
        assert_eq!(create(without(create_body(), key)), param, "no {key}");
        assert_eq!(
            create(with(create_body(), key, json!(null))),
            param,
            "null {key}"
        );
    }
    assert_eq!(create(with(create_body(), "group_type", json!(3))), param);
    assert_eq!(
        create(with(create_body(), "user_id_list", json!(["x"]))),
        param
    );
    let change_body = json!({"req_user_id": 1, "app_key": "k", "group_id": 1, "modify_type": 1, "user_id_list": [1]});
    assert_eq!(
        change(with(change_body.clone(), "modify_type", json!(0))),
        param
    );
    assert_eq!(change(without(change_body.clone(), "group_id")), param);

    // 5: the body is not an object, req_user_id or app_key do not convert.
    assert_eq!(create(json!([1, 2])), iface);
    assert_eq!(
        create(with(create_body(), "req_user_id", json!("1"))),
        iface
    );
    assert_eq!(create(with(create_body(), "req_user_id", json!(-1))), iface);
    assert_eq!(
        create(with(create_body(), "app_key", json!({"a": 1}))),
        iface
    );

    // 11: db_proxy refuses an empty member list or name, with group_id 0.
    for body in [
        with(create_body(), "user_id_list", json!([])),
        with(create_body(), "group_name", json!("")),
    ] {
        let a = post(&addr, "/query/CreateGroup", &body);
        assert_eq!(outcome(&a), (200, 11, "创建群失败".to_string()));
        assert_eq!(a.json()["group_id"], 0);
    }

    // 12: a group that does not exist (answered at once), members already in.
    let missing = with(change_body.clone(), "group_id", json!(999_999));
    assert_eq!(change(missing), (200, 12, "更改群成员失败".to_string()));
    let (c, g) = create_group(&addr, "g", 1, &[1, 2]);
    assert_eq!(c, 0);
    assert_eq!(change_members(&addr, g, 1, &[1, 2]), 12);
    assert_eq!(change_members(&addr, g, 1, &[3]), 0);

    // 0 has its text too.
    let ok = post(&addr, "/query/CreateGroup", &create_body());
    assert_eq!(outcome(&ok).2, "成功");
    assert!(ok.json()["group_id"].as_u64().unwrap() > 0);

    // The answer is jsoncpp's layout under the C++ head.
    assert!(String::from_utf8(ok.body.clone()).unwrap().starts_with(
        "{\n   \"error_code\" : 0,\n   \"error_msg\" : \"成功\",\n   \"group_id\" : "
    ));
    assert_eq!(ok.header("Cache-Control"), Some("no-cache"));
}

#[test]
fn malformed_requests_are_answered_and_the_server_carries_on() {
    let hc = HttpCluster::start("AppKeys=good;better\n");
    let addr = hc.addr();
    let status_code = |request: &[u8]| {
        let a = exchange(&addr, request);
        (a.status, a.json()["error_code"].as_i64().unwrap())
    };
    let valid = with(create_body(), "app_key", json!("good")).to_string();

    // Bodies that are not JSON, or none at all.
    for body in ["{", "not json", "", "{\"a\":1}}", "\u{1}"] {
        assert_eq!(
            status_code(&post_request("/query/CreateGroup", body)),
            (400, 1),
            "{body:?}"
        );
    }
    // Unknown URLs, inside and outside /query/, and a GET.
    assert_eq!(status_code(&post_request("/query/Nope", &valid)), (404, 5));
    assert_eq!(status_code(&post_request("/msg_server", &valid)), (404, 5));
    let get = b"GET /query/CreateGroup HTTP/1.1\r\nHost: test\r\n\r\n";
    let a = exchange(&addr, get);
    assert_eq!((a.status, a.header("Allow")), (405, Some("POST")));
    // Garbage instead of a request line; a Content-Length that is no number.
    assert_eq!(status_code(b"\x00\x01\x02 garbage\r\n\r\n"), (400, 1));
    assert_eq!(
        status_code(b"POST /query/CreateGroup HTTP/1.1\r\nContent-Length: many\r\n\r\n"),
        (400, 1)
    );
    // A 2 MiB body: 413 from its Content-Length, before it is read.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2 << 20));
    assert_eq!(
        status_code(&post_request("/query/CreateGroup", &big)),
        (413, 1)
    );
    // A head over its limit.
    let long = format!(
        "POST /query/CreateGroup HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "y".repeat(20 << 10)
    );
    assert_eq!(status_code(long.as_bytes()), (431, 1));

    // An app key that AppKeys does not list: 2.
    let bad_key = post(
        &addr,
        "/query/CreateGroup",
        &with(create_body(), "app_key", json!("k")),
    );
    assert_eq!(outcome(&bad_key), (200, 2, "appKey不存在".to_string()));

    // A slow body, in three pieces: answered once whole.
    let request = post_request("/query/CreateGroup", &valid);
    let mut s = TcpStream::connect(&addr).unwrap();
    let (a, rest) = request.split_at(40);
    let (b, c) = rest.split_at(rest.len() - 5);
    for piece in [a, b, c] {
        s.write_all(piece).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    let mut answer = Vec::new();
    s.set_read_timeout(Some(tt_rs::WAIT)).unwrap();
    std::io::Read::read_to_end(&mut s, &mut answer).unwrap();
    let a = tt_rs::http::parse_answer(&answer);
    assert_eq!(outcome(&a).1, 0);

    // A client that leaves before the reply: the reply is dropped.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(&post_request("/query/CreateGroup", &valid))
        .unwrap();
    drop(s);
    hc.http.wait_log("connection gone, dropped");

    // After all that, a valid request still works.
    let ok = exchange(&addr, &post_request("/query/CreateGroup", &valid));
    assert_eq!(outcome(&ok).1, 0);
    let ok = post(
        &addr,
        "/query/CreateGroup",
        &with(create_body(), "app_key", json!("better")),
    );
    assert_eq!(outcome(&ok).1, 0);
}

#[test]
fn without_db_proxy_requests_wait_then_answer_10_and_work_again_after() {
    let mut hc = HttpCluster::start("");
    let addr = hc.addr();
    let (c, g) = create_group(&addr, "before", 1, &[1, 2]);
    assert_eq!(c, 0);

    // db_proxy back within the hold: the request waited and is done.
    hc.cluster.stop_db_proxy();
    wait_log_count(&hc.http, "lost db_proxy", 2);
    let waiting = {
        let addr = addr.clone();
        std::thread::spawn(move || outcome(&post(&addr, "/query/CreateGroup", &create_body())))
    };
    hc.http.wait_log("request held");
    hc.cluster.restart_db_proxy();
    assert_eq!(
        waiting.join().unwrap().1,
        0,
        "created once db_proxy was back"
    );
    wait_log_count(&hc.http, "connected to db_proxy", 4);

    // db_proxy down past the hold's 8 s: answered 10, as the C++ at once.
    hc.cluster.stop_db_proxy();
    wait_log_count(&hc.http, "lost db_proxy", 4);
    let down = (200, 10, "服务器异常".to_string());
    let change = json!({"req_user_id": 1, "app_key": "k", "group_id": g, "modify_type": 1,
                        "user_id_list": [3]});
    assert_eq!(outcome(&post(&addr, "/query/ChangeMembers", &change)), down);
    assert!(hc.http.log().contains("held requests answered 10"));

    hc.cluster.restart_db_proxy();
    wait_log_count(&hc.http, "connected to db_proxy", 5);
    let (c, g2) = create_group(&addr, "after", 1, &[1, 2]);
    assert_eq!(c, 0);
    assert!(g2 > g);
    assert_eq!(change_members(&addr, g, 1, &[3]), 0);
}
