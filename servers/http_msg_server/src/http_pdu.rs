//! The answers: the C++ `HttpPdu.cpp` (`PackSendResult`,
//! `PackSendCreateGroupResult`) and the error table of `HttpQuery.h`
//! (`HTTP_ERROR_CODE`, `HTTP_ERROR_MSG`).
//!
//! Bodies are laid out as jsoncpp's `toStyledString` (keys sorted, three
//! spaces, `" : "`), under the C++ head: `200 OK`, `Cache-Control:no-cache`,
//! `Connection:close`, the body's byte length,
//! `Content-Type:text/html;charset=utf-8`.
//!
//! Differences from the C++:
//! - What the C++ closes without a byte (a body that is not JSON, a GET,
//!   an unknown URL, a request over the limits) is answered with a 4xx
//!   status and the same kind of body, plus a `reason` in English
//!   ([`refusal`]).
//! - The C++ writes the code-5 answer (a body that is not an object,
//!   `req_user_id` not a number) as bare JSON with no status line; ours has
//!   the head every other answer has.
//! - The C++ builds each answer in one static 800 KiB buffer and would cut
//!   a longer one; ours are whole.

use tt_http::response::HTML_UTF8;
use tt_http::styled_json::{styled_object, JsonScalar};
use tt_http::Response;

/// `HTTP_ERROR_CODE`: the `error_code` of an answer (those this server
/// sends; the C++ enum lists more that nothing uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// `HTTP_ERROR_SUCCESS`.
    Success = 0,
    /// `HTTP_ERROR_PARMENT`: a field is missing, null or invalid.
    Parameter = 1,
    /// `HTTP_ERROR_APPKEY`: the app key is not accepted (only with the
    /// `AppKeys` conf key, which the C++ lacks).
    AppKey = 2,
    /// `HTTP_ERROR_INTERFACE`: `app_key` or `req_user_id` do not convert,
    /// or (ours) the URL or method is not one of the API's.
    Interface = 5,
    /// `HTTP_ERROR_SERVER_EXCEPTION`: no db_proxy (or route_server) link,
    /// or db_proxy did not answer.
    ServerException = 10,
    /// `HTTP_ERROR_CREATE_GROUP`: db_proxy refused the group.
    CreateGroup = 11,
    /// `HTTP_ERROR_CHANGE_MEMBER`: db_proxy refused the change.
    ChangeMember = 12,
}

impl HttpError {
    /// The number in `error_code`.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// `HTTP_ERROR_MSG[...]`: the text in `error_msg`.
    pub fn msg(self) -> &'static str {
        match self {
            HttpError::Success => "成功",
            HttpError::Parameter => "参数错误",
            HttpError::AppKey => "appKey不存在",
            HttpError::Interface => "未授权的接口",
            HttpError::ServerException => "服务器异常",
            HttpError::CreateGroup => "创建群失败",
            HttpError::ChangeMember => "更改群成员失败",
        }
    }
}

/// The `error_code` and `error_msg` members of `error`.
fn members(error: HttpError) -> Vec<(&'static str, JsonScalar)> {
    vec![
        ("error_code", JsonScalar::Int(error.code())),
        ("error_msg", JsonScalar::Str(error.msg().to_string())),
    ]
}

/// `HTTP_QUEYR_HEADER` around `members`, with `status`.
fn answer(status: u16, members: &[(&str, JsonScalar)]) -> Response {
    Response::new(status)
        .with_body(HTML_UTF8, styled_object(members))
        .with_header("Cache-Control", "no-cache")
}

/// `PackSendResult`: `{"error_code", "error_msg"}`.
pub fn result(error: HttpError) -> Response {
    answer(200, &members(error))
}

/// `PackSendCreateGroupResult`: `{"error_code", "error_msg", "group_id"}`.
pub fn create_group_result(error: HttpError, group_id: u32) -> Response {
    let mut m = members(error);
    m.push(("group_id", JsonScalar::Int(i64::from(group_id))));
    answer(200, &m)
}

/// A 4xx answer for a request the C++ closes without a byte: `error` as
/// in [`result`], and `reason` saying what was wrong.
pub fn refusal(status: u16, error: HttpError, reason: &str) -> Response {
    let mut m = members(error);
    m.push(("reason", JsonScalar::Str(reason.to_string())));
    answer(status, &m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Response) -> String {
        String::from_utf8(r.to_bytes()).unwrap()
    }

    #[test]
    fn answers_are_laid_out_as_the_cpp() {
        let body =
            "{\n   \"error_code\" : 0,\n   \"error_msg\" : \"成功\",\n   \"group_id\" : 7\n}\n";
        assert_eq!(
            text(&create_group_result(HttpError::Success, 7)),
            format!(
                "HTTP/1.1 200 OK\r\nConnection:close\r\nContent-Length:{}\r\n\
                 Content-Type:text/html;charset=utf-8\r\nCache-Control:no-cache\r\n\r\n{body}",
                body.len()
            )
        );
        let r = result(HttpError::ChangeMember);
        assert_eq!(
            String::from_utf8(r.body).unwrap(),
            "{\n   \"error_code\" : 12,\n   \"error_msg\" : \"更改群成员失败\"\n}\n"
        );
    }

    #[test]
    fn codes_and_texts_follow_the_cpp_table() {
        let table = [
            (HttpError::Success, 0, "成功"),
            (HttpError::Parameter, 1, "参数错误"),
            (HttpError::AppKey, 2, "appKey不存在"),
            (HttpError::Interface, 5, "未授权的接口"),
            (HttpError::ServerException, 10, "服务器异常"),
            (HttpError::CreateGroup, 11, "创建群失败"),
            (HttpError::ChangeMember, 12, "更改群成员失败"),
        ];
        for (e, code, msg) in table {
            assert_eq!((e.code(), e.msg()), (code, msg));
        }
    }

    #[test]
    fn a_refusal_has_its_status_and_a_reason() {
        let r = refusal(404, HttpError::Interface, "no such URL");
        assert_eq!(r.status, 404);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error_code"], 5);
        assert_eq!(v["reason"], "no such URL");
    }
}
