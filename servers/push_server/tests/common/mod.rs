//! What push_server's tests share: a test CA made with rcgen, a fake
//! HTTP/2-over-TLS provider (APNs, or FCM with its token endpoint) on a
//! free loopback port, push_server started as a real process, and the
//! msg_server side of the link.

#![allow(dead_code)]

use base::ImPdu;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tt_proto::IM::BaseDefine::{ClientType, UserTokenInfo};
use tt_proto::IM::Server::{IMPushToUserReq, IMPushToUserRsp};
use tt_proto::{cid, sid};
use tt_rs::{free_port, PduClient, ScratchDir, ServerProcess, WAIT};

pub const PUSH_SERVER: &str = env!("CARGO_BIN_EXE_push_server");
pub const PASSWORD: &str = "tt@mogujie";

/// A test file shipped in `tests/data`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and client
/// certificates on demand.
pub struct TestPki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    server_chain: Vec<CertificateDer<'static>>,
    server_key_der: Vec<u8>,
}

impl TestPki {
    pub fn new() -> TestPki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tt-rs test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let server = params.signed_by(&server_key, &ca, &ca_key).unwrap();
        TestPki {
            server_chain: vec![server.der().clone()],
            server_key_der: server_key.serialize_der(),
            ca,
            ca_key,
        }
    }

    /// The CA as PEM (what `ApnsCaPath` / `FcmCaPath` name).
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A client certificate (PEM) for the key in `key_pem`, signed by the CA.
    pub fn client_cert_pem(&self, key_pem: &str) -> String {
        let key = rcgen::KeyPair::from_pem(key_pem).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "Apple Push Services: com.tt.test",
        );
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params
            .signed_by(&key, &self.ca, &self.ca_key)
            .unwrap()
            .pem()
    }

    fn server_config(&self, require_client_cert: bool) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca.der().clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_der.clone()));
        let mut config = builder
            .with_single_cert(self.server_chain.clone(), key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the fake answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// How long the fake sits on the request before answering.
    pub hold: Duration,
}

impl Reply {
    pub fn ok(body: &str) -> Reply {
        Reply {
            status: 200,
            body: body.into(),
            hold: Duration::ZERO,
        }
    }

    pub fn status(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.into(),
            hold: Duration::ZERO,
        }
    }
}

pub type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// An HTTP/2-over-TLS server on 127.0.0.1: a stand-in for APNs or FCM.
pub struct FakeProvider {
    pub port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeProvider {
    /// Starts on `port` (0: a free one).
    pub fn start(pki: &TestPki, port: u16, require_client_cert: bool, handler: Handler) -> Self {
        let port = if port == 0 { free_port() } else { port };
        let config = pki.server_config(require_client_cert);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (reqs, conns) = (requests.clone(), connections.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .unwrap();
                ready_tx.send(()).unwrap();
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let accept = async {
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else {
                            continue;
                        };
                        let (acceptor, handler, reqs, conns) = (
                            acceptor.clone(),
                            handler.clone(),
                            reqs.clone(),
                            conns.clone(),
                        );
                        tokio::spawn(async move {
                            let Ok(tls) = acceptor.accept(tcp).await else {
                                return; // e.g. no client certificate
                            };
                            conns.fetch_add(1, Ordering::SeqCst);
                            let Ok(mut h2) = h2::server::handshake(tls).await else {
                                return;
                            };
                            while let Some(Ok((req, respond))) = h2.accept().await {
                                let (handler, reqs) = (handler.clone(), reqs.clone());
                                tokio::spawn(serve_stream(req, respond, handler, reqs));
                            }
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection.
            drop(rt);
        });
        ready_rx
            .recv_timeout(WAIT)
            .expect("fake provider listening");
        FakeProvider {
            port,
            requests,
            connections,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Stops listening and drops every connection.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// TLS connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests arrived.
    pub fn wait_requests(&self, n: usize) -> Vec<Recorded> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} requests: {got:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve_stream(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<bytes::Bytes>,
    handler: Handler,
    reqs: Arc<Mutex<Vec<Recorded>>>,
) {
    let (parts, mut body) = req.into_parts();
    let mut got = Vec::new();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return };
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    let recorded = Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: got,
    };
    let reply = handler(&recorded);
    reqs.lock().unwrap().push(recorded);
    if !reply.hold.is_zero() {
        tokio::time::sleep(reply.hold).await;
    }
    let rsp = http::Response::builder()
        .status(reply.status)
        .body(())
        .unwrap();
    if let Ok(mut out) = respond.send_response(rsp, false) {
        let _ = out.send_data(bytes::Bytes::from(reply.body), true);
    }
}

/// A `pushserver.conf`: the C++ keys (CertPath naming no file) and `extra`.
pub fn conf(port: u16, extra: &str) -> String {
    format!(
        "ListenIP=127.0.0.1\nListenPort={port}\nCertPath=absent-cert.pem\n\
         KeyPath=absent-key.pem\nKeyPassword={PASSWORD}\nSandBox=1\n{extra}"
    )
}

/// push_server running with `conf_text`, listening on `port`.
pub fn start_push_server(port: u16, conf_text: &str) -> ServerProcess {
    let mut p = ServerProcess::start(PUSH_SERVER, "pushserver.conf", conf_text);
    p.wait_listening(port);
    p
}

/// Files a test writes for push_server (keys, CAs), outside its scratch dir.
pub struct Files {
    dir: ScratchDir,
}

impl Files {
    pub fn new() -> Files {
        Files {
            dir: ScratchDir::new("push-files"),
        }
    }

    /// Writes `text` as `name`; its absolute path.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }
}

pub fn token(
    user_id: u32,
    user_type: ClientType,
    token: &str,
    count: u32,
    push_type: u32,
) -> UserTokenInfo {
    UserTokenInfo {
        user_id,
        user_type,
        token: token.into(),
        push_count: count,
        push_type,
    }
}

pub fn ios(token: &str) -> UserTokenInfo {
    self::token(9, ClientType::CLIENT_TYPE_IOS, token, 1, 1)
}

pub fn android(token: &str) -> UserTokenInfo {
    self::token(8, ClientType::CLIENT_TYPE_ANDROID, token, 1, 1)
}

/// A 64-digit hex device token ending in `tail`.
pub fn hex_token(tail: &str) -> String {
    format!("{tail:0>64}")
}

pub fn push_req(flash: &str, data: &str, tokens: Vec<UserTokenInfo>) -> IMPushToUserReq {
    IMPushToUserReq {
        flash: flash.into(),
        data: data.into(),
        user_token_list: tokens,
    }
}

/// Sends a push request as msg_server does (seq 0).
pub fn send_push(c: &mut PduClient, req: &IMPushToUserReq) {
    c.send_msg(sid::OTHER, cid::OTHER_PUSH_TO_USER_REQ, 0, req);
}

/// The next push answer: (token, code) in order.
pub fn recv_results(c: &mut PduClient) -> Vec<(String, u32)> {
    let (pdu, rsp) = c.recv_cmd::<IMPushToUserRsp>(cid::OTHER_PUSH_TO_USER_RSP);
    assert_eq!(pdu.seq_num(), 0);
    rsp.push_result_list
        .into_iter()
        .map(|r| (r.user_token, r.result_code))
        .collect()
}

/// Sends `req` and waits for its answer.
pub fn push(c: &mut PduClient, req: &IMPushToUserReq) -> Vec<(String, u32)> {
    send_push(c, req);
    recv_results(c)
}

/// The codes of an answer.
pub fn codes(results: &[(String, u32)]) -> Vec<u32> {
    results.iter().map(|r| r.1).collect()
}

pub fn heartbeat() -> ImPdu {
    ImPdu::new(sid::OTHER, cid::OTHER_HEARTBEAT)
}
