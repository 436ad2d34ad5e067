//! What the msfs tests share: a real msfs process on a free port, and the
//! requests clients send it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
pub use tt_rs::http::{http_exchange, parse_answer, HttpAnswer};
use tt_rs::{built_binary, free_port, ServerProcess};

/// The boundary our uploads use (the Android client's style).
pub const BOUNDARY: &str = "----tt-rs-test-7MA4YWxkTrZu0gW";

/// The binary under test.
pub fn bin() -> String {
    built_binary("msfs").to_string_lossy().into_owned()
}

/// An `msfs.conf`: `BaseDir` as given (relative to the server's directory
/// unless absolute).
pub fn conf(port: u16, base_dir: &str, file_cnt: u64, files_per_dir: u64) -> String {
    format!(
        "# msfs under test\nListenIP=127.0.0.1\nListenPort={port}\nBaseDir={base_dir}\n\
         FileCnt={file_cnt}   # files so far\nFilesPerDir={files_per_dir}\nGetThreadCount=4\nPostThreadCount=2\n"
    )
}

/// A running msfs.
pub struct Msfs {
    pub process: ServerProcess,
    pub port: u16,
}

impl Msfs {
    /// Starts msfs with `BaseDir=./tmp`, counting from `file_cnt`.
    pub fn start_with(file_cnt: u64, files_per_dir: u64) -> Msfs {
        let port = free_port();
        Msfs::start_conf(port, &conf(port, "./tmp", file_cnt, files_per_dir), &[])
    }

    /// Starts msfs with the default count and `FilesPerDir`.
    pub fn start() -> Msfs {
        Msfs::start_with(0, 30000)
    }

    /// Starts msfs on `port` with `conf_text` and `args`.
    pub fn start_conf(port: u16, conf_text: &str, args: &[&str]) -> Msfs {
        let mut process = ServerProcess::start_with_args(&bin(), "msfs.conf", conf_text, args);
        process.wait_listening(port);
        Msfs { process, port }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `BaseDir` (for `./tmp`).
    pub fn base_dir(&self) -> PathBuf {
        self.process.dir().join("tmp")
    }

    /// Sends raw bytes, parses the answer.
    pub fn raw(&self, request: &[u8]) -> HttpAnswer {
        parse_answer(&http_exchange(&self.addr(), request))
    }

    /// Uploads `data` as `file_name`.
    pub fn upload(&self, file_name: &str, data: &[u8]) -> HttpAnswer {
        self.raw(&upload_request(&self.addr(), "/", file_name, data))
    }

    /// Uploads `data` and returns the answer's `path`, checking it worked.
    pub fn upload_ok(&self, file_name: &str, data: &[u8]) -> String {
        let answer = self.upload(file_name, data);
        assert_eq!(answer.status, 200);
        let json = answer.json();
        assert_eq!(json["error_code"], 0, "{json}");
        json["path"].as_str().unwrap().to_string()
    }

    /// `GET /<path>`.
    pub fn get(&self, path: &str) -> HttpAnswer {
        self.raw(format!("GET /{path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr()).as_bytes())
    }

    /// The file a URL path (`g0/...`) names on disk.
    pub fn file_of(&self, path: &str) -> PathBuf {
        self.base_dir().join(path.strip_prefix("g0/").unwrap())
    }
}

/// A multipart upload request as the clients send it: the file part's
/// bytes followed by CRLF and the closing delimiter.
pub fn upload_request(host: &str, target: &str, file_name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    post(
        host,
        target,
        &format!("multipart/form-data; boundary={BOUNDARY}"),
        &body,
    )
}

/// A `POST` of `body` with `content_type`.
pub fn post(host: &str, target: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// `len` bytes that differ with `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// The value of `key` in the conf file at `path`, as the servers read it.
pub fn conf_value(path: &Path, key: &str) -> Option<String> {
    base::config::ConfigFileReader::load(path)
        .ok()?
        .get(key)
        .map(String::from)
}
