//! Reading one HTTP/1.1 request: the C++ `HttpParserWrapper.cpp`
//! (`CHttpParserWrapper::ParseHttpContent`, `IsReadAll`).
//!
//! Differences from the C++:
//! - The head is parsed once, when it is whole; later reads only count the
//!   body (the C++ re-parses the whole buffer on every read).
//! - Each server gives its [`Limits`]: a head over `head` bytes, or a body
//!   over `body` bytes, is refused as soon as it is known (a
//!   `Content-Length` over the limit is refused before any of the body is
//!   read; the C++ msfs buffers 10 MiB and more before looking).
//! - A malformed head is an error at once (the C++ waits for more bytes
//!   until the connection times out).

use thiserror::Error;

/// Headers one request may carry.
const MAX_HEADERS: usize = 64;

/// How big a request a server takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Request line and headers, with the blank line, in bytes.
    pub head: usize,
    /// The body, in bytes (after chunked decoding).
    pub body: usize,
}

/// One whole request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: String,
    /// The request target as sent (`/msg_server?x=1`), not decoded.
    pub target: String,
    /// Header names and values in order, values trimmed (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    /// The body (chunked bodies decoded).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The target without its query string (`/query/CreateGroup?x` ->
    /// `/query/CreateGroup`).
    pub fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or("")
    }
}

/// Why the bytes are not a request this server takes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The request line or headers do not parse.
    #[error("malformed request head: {0}")]
    Head(httparse::Error),
    /// The head is longer than the server takes.
    #[error("request head over {limit} bytes")]
    HeadTooLarge {
        /// [`Limits::head`].
        limit: usize,
    },
    /// `Content-Length` is not a number.
    #[error("invalid Content-Length {0:?}")]
    ContentLength(String),
    /// The body is (or announces to be) longer than the server takes.
    #[error("request body of {length} bytes is over the limit of {limit}")]
    BodyTooLarge {
        /// What `Content-Length` announced, or what arrived so far.
        length: usize,
        /// [`Limits::body`].
        limit: usize,
    },
    /// A chunk of a chunked body is malformed.
    #[error("malformed chunked body")]
    Chunk,
}

/// How the body of a parsed head ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyKind {
    Length(usize),
    Chunked,
}

/// A head, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    len: usize,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: BodyKind,
}

/// Reads one request from the bytes a connection received, incrementally:
/// feed it the whole buffer each time more arrives.
#[derive(Debug, Clone)]
pub struct RequestReader {
    limits: Limits,
    head: Option<Head>,
}

impl RequestReader {
    /// A reader for a server that takes requests within `limits`.
    pub fn new(limits: Limits) -> RequestReader {
        RequestReader { limits, head: None }
    }

    /// The limits this reader applies.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// `Ok(Some(request))` once `buf` (everything received so far) holds a
    /// whole request; `Ok(None)` while more is needed; an error as soon as
    /// the bytes cannot become a request within the limits.
    pub fn read(&mut self, buf: &[u8]) -> Result<Option<Request>, ParseError> {
        if self.head.is_none() {
            self.head = parse_head(buf, self.limits)?;
        }
        let Some(head) = &self.head else {
            return Ok(None);
        };
        let rest = buf.get(head.len..).unwrap_or_default();
        let body = match head.body {
            BodyKind::Length(len) => {
                if rest.len() < len {
                    return Ok(None);
                }
                rest[..len].to_vec()
            }
            BodyKind::Chunked => match read_chunked(rest, self.limits.body)? {
                Some(body) => body,
                None => return Ok(None),
            },
        };
        Ok(Some(Request {
            method: head.method.clone(),
            target: head.target.clone(),
            headers: head.headers.clone(),
            body,
        }))
    }
}

/// Parses a request in one go (tests and tools): [`RequestReader::read`]
/// on a fresh reader.
pub fn parse_request(buf: &[u8], limits: Limits) -> Result<Option<Request>, ParseError> {
    RequestReader::new(limits).read(buf)
}

fn parse_head(buf: &[u8], limits: Limits) -> Result<Option<Head>, ParseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf).map_err(ParseError::Head)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => {
            if buf.len() > limits.head {
                return Err(ParseError::HeadTooLarge { limit: limits.head });
            }
            return Ok(None);
        }
    };
    if len > limits.head {
        return Err(ParseError::HeadTooLarge { limit: limits.head });
    }
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let chunked =
        find("Transfer-Encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        BodyKind::Chunked
    } else if let Some(value) = find("Content-Length") {
        let length: usize = value
            .parse()
            .map_err(|_| ParseError::ContentLength(value.to_string()))?;
        if length > limits.body {
            return Err(ParseError::BodyTooLarge {
                length,
                limit: limits.body,
            });
        }
        BodyKind::Length(length)
    } else {
        BodyKind::Length(0)
    };
    Ok(Some(Head {
        len,
        method: req.method.unwrap_or_default().to_string(),
        target: req.path.unwrap_or_default().to_string(),
        headers,
        body,
    }))
}

/// How many body bytes of a request announced by its `Content-Length`
/// have not arrived in `buf` yet: what to read and drop after refusing an
/// oversized body, so the client, still sending, can read the refusal.
/// `None` when `buf` holds no whole head or the body is chunked.
pub fn unread_body(buf: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head) = req.parse(buf).ok()? else {
        return None;
    };
    let value = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if value("Transfer-Encoding").is_some_and(|v| v.contains("chunked")) {
        return None;
    }
    let length: usize = value("Content-Length")?.parse().ok()?;
    Some(length.saturating_sub(buf.len() - head))
}

/// Decodes a chunked body; `Ok(None)` until the last chunk and the
/// trailer section are there.
fn read_chunked(mut rest: &[u8], limit: usize) -> Result<Option<Vec<u8>>, ParseError> {
    let mut body = Vec::new();
    loop {
        let (start, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ParseError::Chunk),
        };
        rest = &rest[start..];
        if size == 0 {
            // Trailers end at the first empty line.
            let done = rest.starts_with(b"\r\n") || rest.windows(4).any(|w| w == b"\r\n\r\n");
            return Ok(done.then_some(body));
        }
        let size = usize::try_from(size).map_err(|_| ParseError::Chunk)?;
        let length = body.len().saturating_add(size);
        if length > limit {
            return Err(ParseError::BodyTooLarge { length, limit });
        }
        let Some(end) = size.checked_add(2) else {
            return Err(ParseError::Chunk);
        };
        if rest.len() < end {
            return Ok(None);
        }
        if &rest[size..end] != b"\r\n" {
            return Err(ParseError::Chunk);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        head: 1024,
        body: 1024,
    };

    #[test]
    fn a_get_is_whole_at_the_blank_line() {
        assert_eq!(parse_request(b"GET /msg_ser", SMALL), Ok(None));
        let r = parse_request(b"GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", SMALL)
            .unwrap()
            .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/a/b?x=1");
        assert_eq!(r.path(), "/a/b");
        assert_eq!(r.header("host"), Some("h"));
        assert!(r.body.is_empty());
    }

    #[test]
    fn a_body_is_waited_for_and_the_head_parsed_once() {
        let mut reader = RequestReader::new(SMALL);
        let mut buf = b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nab".to_vec();
        assert_eq!(reader.read(&buf), Ok(None));
        assert!(reader.head.is_some());
        buf.extend_from_slice(b"cde");
        assert_eq!(reader.read(&buf).unwrap().unwrap().body, b"abcde");
    }

    #[test]
    fn chunked_bodies_are_read_whole() {
        let head = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut buf = head.to_vec();
        buf.extend_from_slice(b"3\r\nabc\r\n");
        assert_eq!(parse_request(&buf, SMALL), Ok(None));
        buf.extend_from_slice(b"2\r\nde\r\n0\r\n");
        assert_eq!(parse_request(&buf, SMALL), Ok(None));
        buf.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&buf, SMALL).unwrap().unwrap().body, b"abcde");
        let mut bad = head.to_vec();
        bad.extend_from_slice(b"3\r\nabcXX");
        assert_eq!(parse_request(&bad, SMALL), Err(ParseError::Chunk));
    }

    #[test]
    fn an_oversized_body_is_refused_from_its_content_length() {
        let limits = Limits {
            head: 1024,
            body: 10,
        };
        // Only the head has arrived: refused before the body is read.
        assert_eq!(
            parse_request(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", limits),
            Err(ParseError::BodyTooLarge {
                length: 11,
                limit: 10
            })
        );
        let mut chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        chunked.extend_from_slice(b"b\r\n");
        assert!(matches!(
            parse_request(&chunked, limits),
            Err(ParseError::BodyTooLarge { .. })
        ));
    }

    #[test]
    fn the_unread_body_is_counted_from_the_content_length() {
        assert_eq!(
            unread_body(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\nabc"),
            Some(8)
        );
        assert_eq!(
            unread_body(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nabc"),
            Some(0)
        );
        assert_eq!(unread_body(b"POST / HTTP/1.1\r\nContent-Le"), None);
        assert_eq!(
            unread_body(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            None
        );
    }

    #[test]
    fn an_oversized_or_malformed_head_is_refused_at_once() {
        let mut big = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        big.resize(1025, b'a');
        assert_eq!(
            parse_request(&big, SMALL),
            Err(ParseError::HeadTooLarge { limit: 1024 })
        );
        assert!(matches!(
            parse_request(b"\x00\x01garbage\r\n\r\n", SMALL),
            Err(ParseError::Head(_))
        ));
        assert_eq!(
            parse_request(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", SMALL),
            Err(ParseError::ContentLength("x".into()))
        );
    }
}
