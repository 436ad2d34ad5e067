//! `tt-http`: HTTP/1.1 on netlib, written once for the three servers that
//! speak it (login_server's HTTP port, msfs, http_msg_server) and for
//! db_proxy's calls to msfs.
//!
//! Layout, against the C++ `server/src/base/`:
//! - [`request`]: `HttpParserWrapper.cpp` (the C++ wraps joyent's
//!   http_parser): [`RequestReader`] reads one request from a connection's
//!   bytes with `httparse`, under [`Limits`] given by each server (1 KiB
//!   for login_server, 10 MiB uploads for msfs), refusing an oversized body
//!   from its `Content-Length` before it is read, and parsing the head once
//!   (the C++ re-parses the whole buffer on every read).
//! - [`response`]: the `HTTP_RESPONSE_*` templates of each C++ `HttpConn.h`
//!   as one [`Response`] writer (status line, `Connection`,
//!   `Content-Length`, `Content-Type`, in the C++ order and spelling).
//! - [`conn`]: `CHttpConn` as a netlib [`ImConn`](netlib::ImConn): the
//!   [`HttpConn`] adapter feeds the raw bytes to the reader and hands each
//!   whole request to the server's [`HttpHandler`], which answers at once
//!   or later (after a db_proxy reply, or a worker's disk read).
//! - [`metrics`]: `GET /metrics`, the Prometheus scrape port every server
//!   opens when its conf sets `MetricsListenIP`/`MetricsPort`.
//! - [`styled_json`]: the JSON text of the C++ answers as jsoncpp's
//!   `toStyledString` lays it out (login_server, http_msg_server).
//! - [`client`]: `HttpClient.cpp` (libcurl in the C++): a small blocking
//!   HTTP/1.1 client with timeouts and a size cap, for db_proxy's audio
//!   uploads to and downloads from msfs.
//!
//! One request per connection, `Connection: close`, as every C++ HTTP port
//! does: no keep-alive, no pipelining.

pub mod client;
pub mod conn;
pub mod metrics;
pub mod request;
pub mod response;
pub mod styled_json;

pub use conn::{send_response, HttpConn, HttpHandler, Verdict};
pub use request::{Limits, ParseError, Request, RequestReader};
pub use response::Response;
