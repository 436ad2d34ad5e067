//! The API: the C++ `HttpQuery.cpp` (`CHttpQuery::DispatchQuery`,
//! `_QueryCreateGroup`, `_QueryChangeMember`, `_CheckAuth`).
//!
//! [`dispatch`] is a pure function of the request, which links are up and
//! the accepted app keys: it gives either the answer to send now or the
//! db_proxy request to send. The checks run in the C++'s order, with its
//! codes:
//! 1. the body is JSON (ours: else `400`, the C++ closes);
//! 2. `app_key` and `req_user_id` convert to a string and a `u32` (else
//!    5 "未授权的接口"), and the app key is accepted (only with `AppKeys`,
//!    else 2 "appKey不存在"; the C++ check is a stub);
//! 3. the URL is `/query/CreateGroup` or `/query/ChangeMembers` (ours: else
//!    `404`, the C++ closes);
//! 4. a db_proxy link is open (else 10 "服务器异常");
//! 5. every field is present, JSON `null` counting as missing (else 1
//!    "参数错误"), in the C++ order;
//! 6. the values are valid: `group_type` / `modify_type` 1 or 2, strings
//!    where strings go, ids numeric (else 1).
//!
//! Differences from the C++:
//! - A path outside `/query/` is answered `404` and any method but POST
//!   `405` before the body is looked at (the C++ closes the first, and
//!   reads a GET's body like a POST's).
//! - Numbers must be whole and within `u32`: a `true`, `1.5` or `"7"`
//!   where a number goes is refused (jsoncpp reads `true` as 1 and `1.5`
//!   as 1; a string fails there too). `user_id_list` must be an array
//!   (the C++ reads a scalar as an empty list) of such numbers (a `null`
//!   item is not read as user 0).
//! - `ChangeMembers` also needs the master route_server link when route
//!   servers are configured (else 10): without it the change would reach
//!   no online member (the C++ changes the group and tells nobody).

use crate::http_pdu::{refusal, result, HttpError};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use thiserror::Error;
use tt_http::{Request, Response};
use tt_proto::IM::BaseDefine::{GroupModifyType, GroupType};
use tt_proto::IM::Group::{IMGroupChangeMemberReq, IMGroupCreateReq};

/// What every URL of the API starts with (`HttpConn.cpp` closes others).
pub const QUERY_PREFIX: &str = "/query/";
/// `POST /query/CreateGroup`.
pub const CREATE_GROUP: &str = "/query/CreateGroup";
/// `POST /query/ChangeMembers`.
pub const CHANGE_MEMBERS: &str = "/query/ChangeMembers";

/// Which peer links can take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Links {
    /// Some db_proxy link is open (`get_db_serv_conn`).
    pub db: bool,
    /// The master route_server link is open, or none is configured.
    pub route: bool,
}

/// The two queries, for logs and for matching a reply to its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// `/query/CreateGroup`.
    CreateGroup,
    /// `/query/ChangeMembers`.
    ChangeMembers,
}

/// A request for db_proxy, attach data still to be set.
#[derive(Debug, Clone, PartialEq)]
pub enum DbRequest {
    /// `CID_GROUP_CREATE_REQUEST`.
    CreateGroup(IMGroupCreateReq),
    /// `CID_GROUP_CHANGE_MEMBER_REQUEST`.
    ChangeMembers(IMGroupChangeMemberReq),
}

impl DbRequest {
    /// Which query this is.
    pub fn kind(&self) -> QueryKind {
        match self {
            DbRequest::CreateGroup(_) => QueryKind::CreateGroup,
            DbRequest::ChangeMembers(_) => QueryKind::ChangeMembers,
        }
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Answer this now.
    Reply(Response),
    /// Send this to db_proxy; its reply makes the answer.
    ToDb(DbRequest),
}

/// Why a request is answered at once.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum QueryError {
    /// The path is not under `/query/`.
    #[error("url unknown: {0}")]
    NotQuery(String),
    /// Not a POST.
    #[error("method {0} not allowed")]
    Method(String),
    /// The body is not JSON (or is empty).
    #[error("body is not JSON: {0}")]
    Json(String),
    /// The body is JSON but not an object.
    #[error("body is not a JSON object")]
    NotObject,
    /// `app_key` or `req_user_id` does not convert.
    #[error("{0} does not convert")]
    Convert(&'static str),
    /// The app key is not in `AppKeys`.
    #[error("app key not accepted")]
    AppKey,
    /// Under `/query/` but not one of the two.
    #[error("url not supported: {0}")]
    UnknownUrl(String),
    /// No db_proxy link is open.
    #[error("no connection to db_proxy")]
    NoDb,
    /// No route_server link is open.
    #[error("no connection to route_server")]
    NoRoute,
    /// A field is absent or null.
    #[error("no {0}")]
    Missing(&'static str),
    /// A field's value is not valid.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

impl QueryError {
    /// The answer: the C++ code where it has one, a 4xx where it closes.
    pub fn response(&self) -> Response {
        let reason = self.to_string();
        match self {
            QueryError::NotQuery(_) | QueryError::UnknownUrl(_) => {
                refusal(404, HttpError::Interface, &reason)
            }
            QueryError::Method(_) => {
                refusal(405, HttpError::Interface, &reason).with_header("Allow", "POST")
            }
            QueryError::Json(_) => refusal(400, HttpError::Parameter, &reason),
            QueryError::NotObject | QueryError::Convert(_) => result(HttpError::Interface),
            QueryError::AppKey => result(HttpError::AppKey),
            QueryError::NoDb | QueryError::NoRoute => result(HttpError::ServerException),
            QueryError::Missing(_) | QueryError::Invalid(_) => result(HttpError::Parameter),
        }
    }
}

/// `DispatchQuery`: the answer to `request` now, or the db_proxy request
/// to send. `app_keys` is `AppKeys` (`None`: every key, as the C++).
pub fn dispatch(request: &Request, links: Links, app_keys: Option<&BTreeSet<String>>) -> Decision {
    match check(request, links, app_keys) {
        Ok(req) => Decision::ToDb(req),
        Err(e) => {
            log::info!("{} {}: {e}", request.method, request.target);
            Decision::Reply(e.response())
        }
    }
}

fn check(
    request: &Request,
    links: Links,
    app_keys: Option<&BTreeSet<String>>,
) -> Result<DbRequest, QueryError> {
    let path = request.path();
    if !path.starts_with(QUERY_PREFIX) {
        return Err(QueryError::NotQuery(path.to_string()));
    }
    if request.method != "POST" {
        return Err(QueryError::Method(request.method.clone()));
    }
    let value: Value =
        serde_json::from_slice(&request.body).map_err(|e| QueryError::Json(e.to_string()))?;
    // jsoncpp's `value["key"]` makes `null` an empty object and throws
    // on any other non-object.
    let empty = Map::new();
    let body = match &value {
        Value::Object(map) => map,
        Value::Null => &empty,
        _ => return Err(QueryError::NotObject),
    };
    // `_CheckAuth`'s arguments; a null or absent one reads "" / 0 here and
    // is caught as missing below.
    let app_key = as_string(field(body, "app_key")).ok_or(QueryError::Convert("app_key"))?;
    let req_user_id = match field(body, "req_user_id") {
        Value::Null => 0,
        v => as_u32(v).ok_or(QueryError::Convert("req_user_id"))?,
    };
    if app_keys.is_some_and(|keys| !keys.contains(&app_key)) {
        return Err(QueryError::AppKey);
    }
    let kind = match path {
        CREATE_GROUP => QueryKind::CreateGroup,
        CHANGE_MEMBERS => QueryKind::ChangeMembers,
        _ => return Err(QueryError::UnknownUrl(path.to_string())),
    };
    if !links.db {
        return Err(QueryError::NoDb);
    }
    match kind {
        QueryKind::CreateGroup => create_group(body, req_user_id),
        QueryKind::ChangeMembers => {
            if !links.route {
                return Err(QueryError::NoRoute);
            }
            change_members(body, req_user_id)
        }
    }
}

/// `_QueryCreateGroup`: `IMGroupCreateReq` with `user_id` 0, as the C++
/// sends it (db_proxy stores creator 0 and does not add `req_user_id`).
fn create_group(body: &Map<String, Value>, req_user_id: u32) -> Result<DbRequest, QueryError> {
    require(
        body,
        &[
            "req_user_id",
            "group_name",
            "group_type",
            "group_avatar",
            "user_id_list",
        ],
    )?;
    let group_name =
        as_string(field(body, "group_name")).ok_or(QueryError::Invalid("group_name"))?;
    let group_type = match as_u32(field(body, "group_type")) {
        Some(1) => GroupType::GROUP_TYPE_NORMAL,
        Some(2) => GroupType::GROUP_TYPE_TMP,
        _ => return Err(QueryError::Invalid("group_type")),
    };
    let group_avatar =
        as_string(field(body, "group_avatar")).ok_or(QueryError::Invalid("group_avatar"))?;
    let member_id_list = id_list(field(body, "user_id_list"))?;
    log::info!(
        "CreateGroup, req_user_id={req_user_id}, group_name={group_name:?}, \
         group_type={group_type:?}, user_cnt={}",
        member_id_list.len()
    );
    Ok(DbRequest::CreateGroup(IMGroupCreateReq {
        user_id: 0,
        group_type,
        group_name,
        group_avatar,
        member_id_list,
        attach_data: None,
    }))
}

/// `_QueryChangeMember`: `IMGroupChangeMemberReq` with `user_id` 0 (db_proxy
/// lets user 0 change any group).
fn change_members(body: &Map<String, Value>, req_user_id: u32) -> Result<DbRequest, QueryError> {
    require(
        body,
        &["req_user_id", "group_id", "modify_type", "user_id_list"],
    )?;
    let group_id = as_u32(field(body, "group_id")).ok_or(QueryError::Invalid("group_id"))?;
    let change_type = match as_u32(field(body, "modify_type")) {
        Some(1) => GroupModifyType::GROUP_MODIFY_TYPE_ADD,
        Some(2) => GroupModifyType::GROUP_MODIFY_TYPE_DEL,
        _ => return Err(QueryError::Invalid("modify_type")),
    };
    let member_id_list = id_list(field(body, "user_id_list"))?;
    log::info!(
        "ChangeMembers, req_user_id={req_user_id}, group_id={group_id}, \
         modify_type={change_type:?}, user_cnt={}",
        member_id_list.len()
    );
    Ok(DbRequest::ChangeMembers(IMGroupChangeMemberReq {
        user_id: 0,
        change_type,
        group_id,
        member_id_list,
        attach_data: None,
    }))
}

/// `value["key"]`: the member, `null` when absent.
fn field<'a>(body: &'a Map<String, Value>, key: &str) -> &'a Value {
    body.get(key).unwrap_or(&Value::Null)
}

/// The C++ `isNull()` checks, in their order.
fn require(body: &Map<String, Value>, keys: &[&'static str]) -> Result<(), QueryError> {
    match keys.iter().find(|k| field(body, k).is_null()) {
        Some(k) => Err(QueryError::Missing(k)),
        None => Ok(()),
    }
}

/// jsoncpp's `asString`: null reads "", booleans and numbers as their
/// text; arrays and objects do not convert.
fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// A whole number within `u32` (`5` or `5.0`); anything else is `None`.
fn as_u32(v: &Value) -> Option<u32> {
    let n = v.as_number()?;
    if let Some(u) = n.as_u64() {
        return u32::try_from(u).ok();
    }
    if n.is_i64() {
        return None;
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f)).then_some(f as u32)
}

/// `user_id_list`: an array of ids.
fn id_list(v: &Value) -> Result<Vec<u32>, QueryError> {
    let items = v.as_array().ok_or(QueryError::Invalid("user_id_list"))?;
    items
        .iter()
        .map(|item| as_u32(item).ok_or(QueryError::Invalid("user_id_list")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UP: Links = Links {
        db: true,
        route: true,
    };

    fn post(path: &str, body: &str) -> Request {
        Request {
            method: "POST".into(),
            target: path.into(),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn create_body() -> Value {
        json!({"req_user_id": 7, "app_key": "k", "group_name": "g", "group_type": 1,
               "group_avatar": "a.png", "user_id_list": [1, 2, 3]})
    }

    fn change_body() -> Value {
        json!({"req_user_id": 7, "app_key": "k", "group_id": 4, "modify_type": 2,
               "user_id_list": [2]})
    }

    fn run(path: &str, body: &Value, links: Links) -> Result<DbRequest, QueryError> {
        check(&post(path, &body.to_string()), links, None)
    }

    fn without(mut body: Value, key: &str) -> Value {
        body.as_object_mut().unwrap().remove(key);
        body
    }

    fn with(mut body: Value, key: &str, v: Value) -> Value {
        body[key] = v;
        body
    }

    #[test]
    fn create_group_becomes_a_request_from_user_zero() {
        let got = run(CREATE_GROUP, &create_body(), UP).unwrap();
        assert_eq!(
            got,
            DbRequest::CreateGroup(IMGroupCreateReq {
                user_id: 0,
                group_type: GroupType::GROUP_TYPE_NORMAL,
                group_name: "g".into(),
                group_avatar: "a.png".into(),
                member_id_list: vec![1, 2, 3],
                attach_data: None,
            })
        );
        let tmp = with(create_body(), "group_type", json!(2));
        let Ok(DbRequest::CreateGroup(req)) = run(CREATE_GROUP, &tmp, UP) else {
            panic!("temporary group refused");
        };
        assert_eq!(req.group_type, GroupType::GROUP_TYPE_TMP);
    }

    #[test]
    fn change_members_becomes_a_request_from_user_zero() {
        let got = run(CHANGE_MEMBERS, &change_body(), UP).unwrap();
        assert_eq!(got.kind(), QueryKind::ChangeMembers);
        assert_eq!(
            got,
            DbRequest::ChangeMembers(IMGroupChangeMemberReq {
                user_id: 0,
                change_type: GroupModifyType::GROUP_MODIFY_TYPE_DEL,
                group_id: 4,
                member_id_list: vec![2],
                attach_data: None,
            })
        );
    }

    #[test]
    fn each_required_field_absent_or_null_is_a_parameter_error() {
        for key in [
            "req_user_id",
            "group_name",
            "group_type",
            "group_avatar",
            "user_id_list",
        ] {
            let gone = without(create_body(), key);
            assert_eq!(run(CREATE_GROUP, &gone, UP), Err(QueryError::Missing(key)));
            let null = with(create_body(), key, Value::Null);
            assert_eq!(run(CREATE_GROUP, &null, UP), Err(QueryError::Missing(key)));
        }
        for key in ["req_user_id", "group_id", "modify_type", "user_id_list"] {
            let gone = without(change_body(), key);
            assert_eq!(
                run(CHANGE_MEMBERS, &gone, UP),
                Err(QueryError::Missing(key))
            );
        }
        // app_key may be absent: it converts to "" and the C++ checks nothing.
        assert!(run(CREATE_GROUP, &without(create_body(), "app_key"), UP).is_ok());
    }

    #[test]
    fn invalid_values_are_parameter_errors() {
        let cases = [
            ("group_type", json!(3), "group_type"),
            ("group_type", json!(0), "group_type"),
            ("group_type", json!("1"), "group_type"),
            ("group_name", json!([1]), "group_name"),
            ("group_avatar", json!({}), "group_avatar"),
            ("user_id_list", json!(5), "user_id_list"),
            ("user_id_list", json!([1, "2"]), "user_id_list"),
            ("user_id_list", json!([1, -2]), "user_id_list"),
            ("user_id_list", json!([1.5]), "user_id_list"),
            ("user_id_list", json!([4294967296u64]), "user_id_list"),
            ("user_id_list", json!([null]), "user_id_list"),
        ];
        for (key, v, what) in cases {
            let body = with(create_body(), key, v.clone());
            assert_eq!(
                run(CREATE_GROUP, &body, UP),
                Err(QueryError::Invalid(what)),
                "{key}={v}"
            );
        }
        for (key, v) in [
            ("modify_type", json!(3)),
            ("group_id", json!("4")),
            ("group_id", json!(true)),
        ] {
            let body = with(change_body(), key, v);
            assert!(matches!(
                run(CHANGE_MEMBERS, &body, UP),
                Err(QueryError::Invalid(_))
            ));
        }
        // Whole floats and scalar names convert, as jsoncpp's do.
        let body = with(
            with(create_body(), "group_type", json!(1.0)),
            "group_name",
            json!(12),
        );
        let Ok(DbRequest::CreateGroup(req)) = run(CREATE_GROUP, &body, UP) else {
            panic!("refused");
        };
        assert_eq!(req.group_name, "12");
    }

    #[test]
    fn the_checks_run_in_the_cpp_order() {
        // A body that is not JSON comes first, whatever the URL.
        let bad = check(&post("/query/Nope", "{"), UP, None);
        assert!(matches!(bad, Err(QueryError::Json(_))));
        assert!(matches!(
            check(&post(CREATE_GROUP, ""), UP, None),
            Err(QueryError::Json(_))
        ));
        // Then the conversions (code 5), before the URL.
        let s = with(create_body(), "req_user_id", json!("7"));
        assert_eq!(
            run("/query/Nope", &s, UP),
            Err(QueryError::Convert("req_user_id"))
        );
        let neg = with(create_body(), "req_user_id", json!(-1));
        assert_eq!(
            run(CREATE_GROUP, &neg, UP),
            Err(QueryError::Convert("req_user_id"))
        );
        let key = with(create_body(), "app_key", json!([]));
        assert_eq!(
            run(CREATE_GROUP, &key, UP),
            Err(QueryError::Convert("app_key"))
        );
        assert_eq!(
            run(CREATE_GROUP, &json!([1]), UP),
            Err(QueryError::NotObject)
        );
        assert_eq!(
            run(CREATE_GROUP, &json!("x"), UP),
            Err(QueryError::NotObject)
        );
        // Then the URL, then the db link, then the fields.
        assert!(matches!(
            run("/query/Nope", &create_body(), UP),
            Err(QueryError::UnknownUrl(_))
        ));
        let down = Links {
            db: false,
            route: true,
        };
        assert_eq!(run(CREATE_GROUP, &json!({}), down), Err(QueryError::NoDb));
        // `null` reads as an empty object: the fields are missing.
        assert_eq!(
            run(CREATE_GROUP, &Value::Null, UP),
            Err(QueryError::Missing("req_user_id"))
        );
        let no_route = Links {
            db: true,
            route: false,
        };
        assert_eq!(
            run(CHANGE_MEMBERS, &change_body(), no_route),
            Err(QueryError::NoRoute)
        );
        assert!(run(CREATE_GROUP, &create_body(), no_route).is_ok());
    }

    #[test]
    fn paths_and_methods_outside_the_api_are_refused_first() {
        let mut get = post(CREATE_GROUP, &create_body().to_string());
        get.method = "GET".into();
        assert_eq!(check(&get, UP, None), Err(QueryError::Method("GET".into())));
        assert_eq!(
            check(&post("/other", "{"), UP, None),
            Err(QueryError::NotQuery("/other".into()))
        );
        let q = post(&format!("{CREATE_GROUP}?x=1"), &create_body().to_string());
        assert!(check(&q, UP, None).is_ok(), "the query string is ignored");
    }

    #[test]
    fn app_keys_when_configured() {
        let keys: BTreeSet<String> = ["k".to_string()].into();
        let req = post(CREATE_GROUP, &create_body().to_string());
        assert!(check(&req, UP, Some(&keys)).is_ok());
        let other = post(
            CREATE_GROUP,
            &with(create_body(), "app_key", json!("z")).to_string(),
        );
        assert_eq!(check(&other, UP, Some(&keys)), Err(QueryError::AppKey));
        assert!(check(&other, UP, None).is_ok(), "absent: every key");
    }

    #[test]
    fn each_error_answers_its_status_and_code() {
        let code = |e: QueryError| {
            let r = e.response();
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            (r.status, v["error_code"].as_i64().unwrap())
        };
        assert_eq!(code(QueryError::NotQuery("/".into())), (404, 5));
        assert_eq!(code(QueryError::UnknownUrl("/query/x".into())), (404, 5));
        assert_eq!(code(QueryError::Method("GET".into())), (405, 5));
        assert_eq!(code(QueryError::Json("eof".into())), (400, 1));
        assert_eq!(code(QueryError::NotObject), (200, 5));
        assert_eq!(code(QueryError::Convert("app_key")), (200, 5));
        assert_eq!(code(QueryError::AppKey), (200, 2));
        assert_eq!(code(QueryError::NoDb), (200, 10));
        assert_eq!(code(QueryError::NoRoute), (200, 10));
        assert_eq!(code(QueryError::Missing("x")), (200, 1));
        assert_eq!(code(QueryError::Invalid("x")), (200, 1));
        let allow = QueryError::Method("GET".into()).response();
        assert!(allow.headers.contains(&("Allow".into(), "POST".into())));
    }
}
