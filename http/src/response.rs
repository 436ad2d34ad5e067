//! Writing an answer: the `HTTP_RESPONSE_*` templates of the C++
//! `login_server/HttpConn.h`, `msfs/HttpConn.h` and
//! `http_msg_server/HttpConn.h` as one writer.
//!
//! The head is written as the C++ templates write it, so clients that
//! match on bytes see no change: the status line, `Connection:close`,
//! `Content-Length:<n>`, `Content-Type:<type>`, then any other header,
//! each `Name:value` with no space. Differences from the C++: the length
//! is always the body's real length in bytes (the C++ cuts bodies at its
//! buffer size, 1 KiB on login_server, and writes truncated 403/404/500
//! heads on msfs).

/// `text/html;charset=utf-8`, what every C++ JSON answer is labelled (the
/// Mac client accepts nothing else from msfs).
pub const HTML_UTF8: &str = "text/html;charset=utf-8";

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code (`200`).
    pub status: u16,
    /// `Content-Type`, when there is one.
    pub content_type: Option<String>,
    /// Other headers, written after `Content-Type`, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty answer with `status`.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `200 OK` with `body` as `text/html;charset=utf-8`: how every C++
    /// server sends its JSON.
    pub fn json_html(body: impl Into<Vec<u8>>) -> Response {
        Response::new(200).with_body(HTML_UTF8, body)
    }

    /// `status` with a JSON body labelled `application/json`.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::new(status).with_body("application/json", value.to_string())
    }

    /// Sets the body and its `Content-Type`.
    pub fn with_body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        self.content_type = Some(content_type.to_string());
        self.body = body.into();
        self
    }

    /// Adds a header after `Content-Type`.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The head alone, announcing `content_length` body bytes: for a body
    /// that is streamed after it (msfs downloads).
    pub fn head_bytes(&self, content_length: usize) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nConnection:close\r\nContent-Length:{content_length}\r\n",
            self.status,
            reason(self.status)
        );
        if let Some(t) = &self.content_type {
            out.push_str("Content-Type:");
            out.push_str(t);
            out.push_str("\r\n");
        }
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push(':');
            out.push_str(value);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    /// The whole answer: head and body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.head_bytes(self.body.len());
        out.extend_from_slice(&self.body);
        out
    }
}

/// The reason phrase of `status` (the C++ spells 403 "Access Forbidden").
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Access Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_laid_out_as_the_cpp_templates() {
        let r = Response::json_html("{\"a\":\"é\"}");
        let bytes = r.to_bytes();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nConnection:close\r\nContent-Length:10\r\n\
             Content-Type:text/html;charset=utf-8\r\n\r\n{\"a\":\"é\"}"
        );
    }

    #[test]
    fn extra_headers_follow_the_content_type() {
        let r = Response::new(404).with_header("X-A", "1");
        assert_eq!(
            String::from_utf8(r.to_bytes()).unwrap(),
            "HTTP/1.1 404 Not Found\r\nConnection:close\r\nContent-Length:0\r\nX-A:1\r\n\r\n"
        );
        assert!(String::from_utf8(Response::new(403).head_bytes(0))
            .unwrap()
            .starts_with("HTTP/1.1 403 Access Forbidden\r\n"));
    }
}
