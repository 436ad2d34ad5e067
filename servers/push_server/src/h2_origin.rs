//! One long-lived HTTP/2 connection over TLS to one provider origin, made
//! again when it is lost: the C++ `CAPNSClient` connect/reconnect timers
//! (apns_client.cpp) and its `CSSLClientAsync`, for HTTP/2.
//!
//! Requests are multiplexed as streams on the one connection (as many at
//! once as the server's `SETTINGS_MAX_CONCURRENT_STREAMS` allows); a slow
//! answer holds only its own stream. The connection is made at the first
//! request, not at start, so a name that does not resolve yet never keeps
//! push_server from starting (the C++ gives up on start then). After a
//! failed connect, requests within the next [`RETRY_AFTER`] fail at once
//! with the same error instead of each trying again.

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::TlsConnector;

/// How long a failed connect is remembered before the next try.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest answer body read (providers answer a few hundred bytes).
pub const MAX_ANSWER_BODY: usize = 64 * 1024;

/// Why a request got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OriginError {
    /// The base URL is not `https://host[:port]`.
    #[error("{0:?} is not an https://host[:port] URL")]
    BadUrl(String),
    /// TCP, TLS or HTTP/2 set-up failed.
    #[error("cannot connect to {origin}: {why}")]
    Connect {
        /// `host:port`.
        origin: String,
        /// Why.
        why: String,
    },
    /// The connection broke during the request.
    #[error("{origin}: {why}")]
    Stream {
        /// `host:port`.
        origin: String,
        /// Why.
        why: String,
    },
}

/// A live connection and the flag its driver task clears when it ends.
#[derive(Clone)]
struct Live {
    send: SendRequest<Bytes>,
    open: Arc<AtomicBool>,
}

/// An origin (`https://host:port`) and its connection, if any.
pub struct Origin {
    /// What the log calls it (`APNs`, `FCM`...).
    label: &'static str,
    host: String,
    port: u16,
    /// `scheme://authority`, the prefix of every request URI.
    base: String,
    tls: TlsConnector,
    server_name: ServerName<'static>,
    live: tokio::sync::Mutex<Option<Live>>,
    failed: Mutex<Option<(Instant, OriginError)>>,
}

/// Splits `https://host[:port][/]` into host and port (443 by default).
pub fn parse_base_url(url: &str) -> Result<(String, u16), OriginError> {
    let bad = || OriginError::BadUrl(url.to_string());
    let uri: Uri = url.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("https") {
        return Err(bad());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad());
    }
    let auth = uri.authority().ok_or_else(bad)?;
    let host = auth.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), auth.port_u16().unwrap_or(443)))
}

impl Origin {
    /// An origin for `base_url` (`https://host[:port]`), not connected yet.
    pub fn new(
        label: &'static str,
        base_url: &str,
        tls: Arc<ClientConfig>,
    ) -> Result<Origin, OriginError> {
        let (host, port) = parse_base_url(base_url)?;
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| OriginError::BadUrl(base_url.to_string()))?;
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Origin {
            label,
            host,
            port,
            base: format!("https://{authority}"),
            tls: TlsConnector::from(tls),
            server_name,
            live: tokio::sync::Mutex::new(None),
            failed: Mutex::new(None),
        })
    }

    /// `host:port`, for messages.
    pub fn name(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn connect_error(&self, why: impl std::fmt::Display) -> OriginError {
        OriginError::Connect {
            origin: self.name(),
            why: why.to_string(),
        }
    }

    /// The live connection, made now if there is none.
    async fn live(&self) -> Result<Live, OriginError> {
        let mut slot = self.live.lock().await;
        if let Some(live) = slot.as_ref() {
            if live.open.load(Ordering::Acquire) {
                return Ok(live.clone());
            }
            log::warn!("{} connection to {} lost", self.label, self.name());
            *slot = None;
        }
        if let Ok(failed) = self.failed.lock() {
            if let Some((at, e)) = failed.as_ref() {
                if at.elapsed() < RETRY_AFTER {
                    return Err(e.clone());
                }
            }
        }
        match self.connect().await {
            Ok(live) => {
                log::info!("{} connected to {}", self.label, self.name());
                *slot = Some(live.clone());
                if let Ok(mut failed) = self.failed.lock() {
                    *failed = None;
                }
                Ok(live)
            }
            Err(e) => {
                log::warn!("{}: {e}", self.label);
                if let Ok(mut failed) = self.failed.lock() {
                    *failed = Some((Instant::now(), e.clone()));
                }
                Err(e)
            }
        }
    }

    async fn connect(&self) -> Result<Live, OriginError> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.connect_error(e))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| self.connect_error(format!("TLS: {e}")))?;
        if let Some(alpn) = tls.get_ref().1.alpn_protocol() {
            if alpn != b"h2" {
                return Err(self.connect_error("the server did not agree to HTTP/2"));
            }
        }
        let (send, connection) = h2::client::Builder::new()
            .handshake::<_, Bytes>(tls)
            .await
            .map_err(|e| self.connect_error(format!("HTTP/2: {e}")))?;
        let open = Arc::new(AtomicBool::new(true));
        let flag = open.clone();
        let (label, name) = (self.label, self.name());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::warn!("{label} connection to {name} ended: {e}");
            }
            flag.store(false, Ordering::Release);
        });
        Ok(Live { send, open })
    }

    /// `POST path` with `headers` and `body`; the status and up to
    /// [`MAX_ANSWER_BODY`] bytes of the answer. The caller bounds the time.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<(u16, Bytes), OriginError> {
        // A connection that broke is noticed through its driver's flag at
        // the next request; an error of one stream leaves the others alone.
        let live = self.live().await?;
        self.exchange(live, path, headers, body).await
    }

    async fn exchange(
        &self,
        live: Live,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<(u16, Bytes), OriginError> {
        let stream_err = |e: h2::Error| OriginError::Stream {
            origin: self.name(),
            why: e.to_string(),
        };
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req.body(()).map_err(|e| OriginError::Stream {
            origin: self.name(),
            why: format!("bad request: {e}"),
        })?;
        let mut send = live.send.ready().await.map_err(stream_err)?;
        let (answer, mut out) = send.send_request(req, false).map_err(stream_err)?;
        out.send_data(body, true).map_err(stream_err)?;
        let answer = answer.await.map_err(stream_err)?;
        let status = answer.status().as_u16();
        let mut recv = answer.into_body();
        let mut got = BytesMut::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk.map_err(stream_err)?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            if got.len() + chunk.len() > MAX_ANSWER_BODY {
                break; // enough to read a reason; the rest is dropped with the stream
            }
            got.extend_from_slice(&chunk);
        }
        Ok((status, got.freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            parse_base_url("https://api.push.apple.com").unwrap(),
            ("api.push.apple.com".into(), 443)
        );
        assert_eq!(
            parse_base_url("https://127.0.0.1:8443/").unwrap(),
            ("127.0.0.1".into(), 8443)
        );
        assert_eq!(
            parse_base_url("https://[::1]:9").unwrap(),
            ("::1".into(), 9)
        );
        for bad in [
            "http://x",
            "api.push.apple.com",
            "https://x/3/device",
            "",
            "https://",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }
}
