//! The two HTTP calls db_proxy's audio messages need: the C++
//! `base/HttpClient.cpp` (`UploadByteFile`, `DownloadByteFile`, done there
//! with libcurl).
//!
//! A small blocking HTTP/1.1 client over `std::net`: one request per
//! connection (`Connection: close`), plain `http://` only, bounded
//! timeouts, and a size cap on what it reads back.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;
use thiserror::Error;

/// Connect, read and write timeout (the C++ download uses 2 s; the upload
/// has none).
const TIMEOUT: Duration = Duration::from_secs(2);
/// Largest response body read (an audio clip is far smaller).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// The multipart boundary the C++ sends.
const BOUNDARY: &str = "WebKitFormBoundary8riBH6S4ZsoT69so";

/// Why an HTTP call failed.
#[derive(Debug, Error)]
pub enum HttpError {
    /// Only `http://host[:port]/path` URLs are understood.
    #[error("unsupported url {0:?}")]
    BadUrl(String),
    /// Socket trouble.
    #[error("http i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The response is not HTTP/1.x as we read it.
    #[error("malformed http response")]
    Malformed,
    /// The server answered with a status other than 200.
    #[error("http status {0}")]
    Status(u16),
    /// The upload answer says it failed or names no url.
    #[error("upload refused: {0}")]
    Refused(String),
}

struct Url {
    host_port: String,
    host: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Url, HttpError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| HttpError::BadUrl(url.to_string()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(HttpError::BadUrl(url.to_string()));
    }
    let host_port = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(Url {
        host_port,
        host: authority.to_string(),
        path: path.to_string(),
    })
}

fn connect(url: &Url) -> Result<TcpStream, HttpError> {
    let mut last = None;
    for addr in url.host_port.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(s) => {
                s.set_read_timeout(Some(TIMEOUT))?;
                s.set_write_timeout(Some(TIMEOUT))?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| HttpError::BadUrl(url.host_port.clone()), HttpError::Io))
}

/// Sends one request and returns the status and body.
fn exchange(url: &Url, head: &str, body: &[u8]) -> Result<(u16, Vec<u8>), HttpError> {
    let mut stream = connect(url)?;
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream
        .take((MAX_BODY + 64 * 1024) as u64)
        .read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(HttpError::Malformed)?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| HttpError::Malformed)?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or(HttpError::Malformed)?;
    let mut content_length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if name == "content-length" {
                content_length = value.trim().parse::<usize>().ok();
            } else if name == "transfer-encoding" && value.trim().eq_ignore_ascii_case("chunked") {
                return Err(HttpError::Malformed);
            }
        }
    }
    let mut body = raw[end + 4..].to_vec();
    if let Some(len) = content_length {
        if body.len() < len {
            return Err(HttpError::Malformed);
        }
        body.truncate(len);
    }
    Ok((status, body))
}

/// `UploadByteFile`: posts `data` as the multipart file `1.audio` to the
/// msfs at `site`; returns the URL msfs answers with.
pub fn upload_byte_file(site: &str, data: &[u8]) -> Result<String, HttpError> {
    let url = parse_url(site)?;
    let mut body = Vec::with_capacity(data.len() + 256);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"1.audio\"\r\nContent-Type:image/jpg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n\r\n").as_bytes());
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        url.path,
        url.host,
        body.len()
    );
    let (_, answer) = exchange(&url, &head, &body)?;
    // The C++ reads the JSON whatever the status is.
    let value: serde_json::Value = serde_json::from_slice(&answer)
        .map_err(|_| HttpError::Refused(String::from_utf8_lossy(&answer).into_owned()))?;
    match value.get("error_code").and_then(serde_json::Value::as_u64) {
        Some(0) => {}
        _ => return Err(HttpError::Refused(value.to_string())),
    }
    match value.get("url").and_then(serde_json::Value::as_str) {
        Some(u) if !u.is_empty() => Ok(u.to_string()),
        _ => Err(HttpError::Refused(value.to_string())),
    }
}

/// `DownloadByteFile`: the body at `url`, which must be exactly
/// `expected_size` bytes long (as the C++ checks).
pub fn download_byte_file(url: &str, expected_size: usize) -> Result<Vec<u8>, HttpError> {
    let parsed = parse_url(url)?;
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        parsed.path, parsed.host
    );
    let (status, body) = exchange(&parsed, &head, &[])?;
    if status != 200 {
        return Err(HttpError::Status(status));
    }
    if body.len() != expected_size {
        return Err(HttpError::Malformed);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_path() {
        let u = parse_url("http://127.0.0.1:8700/").unwrap();
        assert_eq!(u.host_port, "127.0.0.1:8700");
        assert_eq!(u.path, "/");
        let u = parse_url("http://files.example/g0/1.audio").unwrap();
        assert_eq!(u.host_port, "files.example:80");
        assert_eq!(u.path, "/g0/1.audio");
        assert!(parse_url("https://x/").is_err());
        assert!(parse_url("http:///x").is_err());
    }
}
