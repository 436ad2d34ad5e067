//! The HTTP port: the C++ `HttpConn.cpp` (`CHttpConn::OnRead`, and the
//! choice `CHttpTask::run` makes between upload, download and 403). The
//! connection and request reading are `tt-http`'s; this is the handler.
//!
//! [`plan`] is a pure function of the request: a `GET` of a plain path is
//! a download, any `POST` an upload (its multipart body parsed here, on the
//! loop: a few substring searches over at most 10 MiB), anything else a
//! 403. [`MsfsHttp`] carries the plan out through [`crate::http_task`].
//!
//! Differences from the C++:
//! - A body over 10 MiB is refused from its `Content-Length`, before it is
//!   read (the C++ buffers it whole first), with the C++ answer
//!   (`error_code` 1); a request that does not parse gets a 400 at once
//!   (the C++ waits 30 s for more).
//! - Answers are JSON built with `serde_json` (the C++ `snprintf`s the
//!   `Host` header into it unescaped), with the whole body and a right
//!   `Content-Length` (its 403/404/500 heads are cut by one byte).
//! - A download path holding `..` is a 404 (the C++ closes without an
//!   answer); see [`crate::file_manager`] for what is served.
//! - When the pools hold too much (see [`crate::state`]) a request gets a
//!   503 (the C++ queues without bound).

use crate::file_manager::download_path;
use crate::http_task;
use crate::multipart::{parse_upload, Upload, UploadError};
use crate::state::MsfsState;
use netlib::Ctx;
use tt_http::{HttpConn, HttpHandler, Limits, ParseError, Request, Response, Verdict};

/// `HTTP_CONN_TIMEOUT`: a connection silent this long is closed.
pub const HTTP_CONN_TIMEOUT: u64 = 30_000;
/// `HTTP_UPLOAD_MAX`: the largest body taken (10 MiB).
pub const HTTP_UPLOAD_MAX: usize = 0xA0_0000;
/// The largest request head taken (the C++ has no bound).
pub const HTTP_HEAD_MAX: usize = 64 * 1024;
/// What the port takes.
pub const LIMITS: Limits = Limits {
    head: HTTP_HEAD_MAX,
    body: HTTP_UPLOAD_MAX,
};

/// What to do with one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Answer this now.
    Reply(Response),
    /// Store the file (on the upload pool), then answer with its URL on
    /// `host`.
    Upload {
        /// Where the file is in the body.
        upload: Upload,
        /// The `Host` header (empty when absent, as the C++).
        host: String,
    },
    /// Serve `BaseDir/<segments>` (on the download pool).
    Download(Vec<String>),
}

/// The upload answer: `{"error_code":0,"error_msg":"成功","path":..,"url":..}`,
/// as `text/html;charset=utf-8` (the Mac client accepts nothing else).
pub fn upload_ok(host: &str, path: &str) -> Response {
    let body = serde_json::json!({
        "error_code": 0,
        "error_msg": "成功",
        "path": path,
        "url": format!("http://{host}/{path}"),
    });
    Response::json_html(body.to_string())
}

/// The answer to a refused upload, with the C++ code and message (code 1
/// has no `path`, as in the C++).
pub fn upload_refused(error: UploadError) -> Response {
    let body = if error == UploadError::TooLarge {
        serde_json::json!({
            "error_code": error.code(),
            "error_msg": error.message(),
            "url": "",
        })
    } else {
        serde_json::json!({
            "error_code": error.code(),
            "error_msg": error.message(),
            "path": "",
            "url": "",
        })
    };
    Response::json_html(body.to_string())
}

/// An empty answer with `status` (the C++ 403/404/500 templates).
pub fn empty(status: u16) -> Response {
    Response::new(status).with_body(tt_http::response::HTML_UTF8, "")
}

/// `CHttpConn::OnRead` + `CHttpTask::run`: what `request` asks for.
pub fn plan(request: &Request) -> Plan {
    match request.method.as_str() {
        "GET" => match download_path(&request.target) {
            Some(segments) => Plan::Download(segments.into_iter().map(String::from).collect()),
            None => {
                log::info!("download of {:?} refused", request.target);
                Plan::Reply(empty(404))
            }
        },
        "POST" => {
            let content_type = request.header("Content-Type").unwrap_or("");
            match parse_upload(content_type, &request.body) {
                Ok(upload) => Plan::Upload {
                    upload,
                    host: request.header("Host").unwrap_or("").to_string(),
                },
                Err(e) => {
                    log::info!("upload refused (code {}): {e}", e.code());
                    Plan::Reply(upload_refused(e))
                }
            }
        }
        _ => Plan::Reply(empty(403)),
    }
}

/// `CHttpConn`'s request logic, one per connection.
#[derive(Debug, Default)]
pub struct MsfsHttp;

impl MsfsHttp {
    /// A connection on the HTTP port.
    pub fn conn() -> HttpConn<MsfsHttp> {
        HttpConn::new(MsfsHttp, LIMITS)
    }
}

impl HttpHandler<MsfsState> for MsfsHttp {
    fn limits(&self) -> Limits {
        LIMITS
    }

    fn idle_timeout_ms(&self) -> u64 {
        HTTP_CONN_TIMEOUT
    }

    fn on_request(&mut self, cx: &mut Ctx<'_, MsfsState>, mut request: Request) -> Verdict {
        log::debug!("{:?} {} {}", cx.peer_addr(), request.method, request.target);
        match plan(&request) {
            Plan::Reply(response) => Verdict::Reply(response),
            Plan::Upload { upload, host } => {
                let body = std::mem::take(&mut request.body);
                http_task::start_upload(cx, upload, body, host)
            }
            Plan::Download(segments) => http_task::start_download(cx, segments),
        }
    }

    fn on_malformed(&mut self, _cx: &mut Ctx<'_, MsfsState>, error: &ParseError) -> Verdict {
        match error {
            ParseError::BodyTooLarge { .. } => {
                Verdict::Reply(upload_refused(UploadError::TooLarge))
            }
            other => Verdict::Reply(tt_http::conn::default_refusal(other)),
        }
    }

    fn on_write(&mut self, cx: &mut Ctx<'_, MsfsState>) {
        http_task::on_drained(cx);
    }

    fn on_close(&mut self, cx: &mut Ctx<'_, MsfsState>) {
        cx.state.streams.remove(&cx.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn methods_choose_the_task() {
        assert_eq!(
            plan(&request("GET", "/g0/000/000/1_2.jpg", &[], b"")),
            Plan::Download(vec!["000".into(), "000".into(), "1_2.jpg".into()])
        );
        assert_eq!(
            plan(&request("GET", "/g0/../x", &[], b"")),
            Plan::Reply(empty(404))
        );
        for m in ["PUT", "DELETE", "HEAD", "OPTIONS"] {
            assert_eq!(
                plan(&request(m, "/g0/000/000/1.jpg", &[], b"")),
                Plan::Reply(empty(403))
            );
        }
        let body = b"--b\r\nContent-Disposition: form-data; filename=\"a.jpg\"\r\n\
                     Content-Type: image/jpeg\r\n\r\nJPG\r\n--b--\r\n";
        let ct = ("Content-Type", "multipart/form-data; boundary=b");
        match plan(&request("POST", "/upload/", &[ct, ("Host", "h:1")], body)) {
            Plan::Upload { upload, host } => {
                assert_eq!(&body[upload.file], b"JPG");
                assert_eq!(host, "h:1");
            }
            other => panic!("{other:?}"),
        }
        match plan(&request("POST", "/", &[], body)) {
            Plan::Reply(r) => {
                assert!(String::from_utf8_lossy(&r.body).contains("\"error_code\":4"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answers_are_json_with_the_host_escaped() {
        let r = upload_ok("a\"b", "g0/000/000/1_2.jpg");
        assert_eq!(r.content_type.as_deref(), Some("text/html;charset=utf-8"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["url"], "http://a\"b/g0/000/000/1_2.jpg");
        assert_eq!(
            String::from_utf8(upload_ok("h", "p").body).unwrap(),
            "{\"error_code\":0,\"error_msg\":\"成功\",\"path\":\"p\",\"url\":\"http://h/p\"}"
        );
        assert_eq!(
            String::from_utf8(upload_refused(UploadError::TooLarge).body).unwrap(),
            "{\"error_code\":1,\"error_msg\":\"上传文件过大\",\"url\":\"\"}"
        );
        assert_eq!(
            String::from_utf8(upload_refused(UploadError::NoBoundary).body).unwrap(),
            "{\"error_code\":4,\"error_msg\":\"格式错误\",\"path\":\"\",\"url\":\"\"}"
        );
    }
}
