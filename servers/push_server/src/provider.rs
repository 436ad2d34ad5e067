//! The provider thread: a small tokio runtime (current-thread) that sends
//! the planned pushes to APNs and FCM and hands each request's answer back
//! to the event loop through netlib's [`Remote`]. The C++ has no such
//! thread: `CAPNSClient` writes to the gateway from the loop and
//! `_HandlePushMsg` answers at once (apns_client.cpp, push_app.cpp).
//!
//! Bounds: at most [`JOB_QUEUE`] requests wait for the thread (past that
//! the loop answers at once, result 3), at most [`MAX_JOBS`] are worked on
//! and at most [`MAX_DELIVERIES`] pushes are in flight; each push has
//! `ApnsTimeout` from the moment its request is taken up, waiting for a
//! free slot included. One `IMPushToUserRsp` answers each request, its
//! entries in input order.

use crate::apns_auth::ProviderToken;
use crate::apns_client::{ApnsAuth, ApnsClient, ApnsError};
use crate::config::PushConfig;
use crate::fcm_client::{FcmClient, FcmError, ServiceAccount};
use crate::h2_origin::Origin;
use crate::key_file::{parse_certs, parse_private_key, read_pem_file, KeyError};
use crate::push_plan::{
    self, token_hint, Delivery, PlannedPush, Providers, RESULT_OK, RESULT_PROVIDER_REFUSED,
    RESULT_UNREACHABLE,
};
use crate::state::PushState;
use crate::tls::{client_config, roots};
use netlib::{ConnId, Remote};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, Semaphore};

/// Requests waiting for the provider thread.
pub const JOB_QUEUE: usize = 1_024;
/// Requests worked on at once.
pub const MAX_JOBS: usize = 256;
/// Pushes in flight at once, over both providers.
pub const MAX_DELIVERIES: usize = 1_024;

/// The UNIX time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One request from a msg_server link, planned.
#[derive(Debug)]
pub struct PushJob {
    /// The link to answer on.
    pub conn: ConnId,
    /// Its tokens, in input order.
    pub planned: Vec<PlannedPush>,
}

/// A conf key whose file or value cannot be used: exits 1 naming it.
#[derive(Debug, thiserror::Error)]
#[error("config key {key} ({value}): {why}")]
pub struct SetupError {
    /// The key.
    pub key: &'static str,
    /// Its value.
    pub value: String,
    /// Why.
    pub why: String,
}

fn setup_error(key: &'static str, value: &str, why: impl std::fmt::Display) -> SetupError {
    SetupError {
        key,
        value: value.to_string(),
        why: why.to_string(),
    }
}

/// The configured clients, before the thread takes them.
pub struct ProviderClients {
    apns: Option<ApnsClient>,
    fcm: Option<FcmClient>,
    timeout: Duration,
}

impl ProviderClients {
    /// Loads the credentials `config` names. A file the operator named in
    /// a key we added must load; the C++ `CertPath` may name a file that
    /// does not exist (the reference conf's demo value): then APNs is
    /// simply not configured, and that is logged.
    pub fn from_config(config: &PushConfig) -> Result<ProviderClients, SetupError> {
        let apns = apns_client(config)?;
        let fcm = match &config.fcm {
            None => {
                log::warn!(
                    "FCM not configured (no FcmServiceAccountPath): Android pushes are answered 1"
                );
                None
            }
            Some(keys) => {
                let path = keys.service_account_path.as_str();
                let account = ServiceAccount::load(path)
                    .map_err(|e| setup_error("FcmServiceAccountPath", path, e))?;
                let ca = config.fcm_ca_path.as_deref();
                let trust = roots(ca).map_err(|e| setup_error("FcmCaPath", ca.unwrap_or(""), e))?;
                let tls = client_config(trust, None)
                    .map_err(|e| setup_error("FcmCaPath", ca.unwrap_or(""), e))?;
                let client = FcmClient::new(account, &keys.project_id, &config.fcm_endpoint, tls)
                    .map_err(|e| setup_error("FcmEndpoint", &config.fcm_endpoint, e))?;
                log::info!(
                    "FCM: project {}, endpoint {}",
                    keys.project_id,
                    client.endpoint()
                );
                Some(client)
            }
        };
        Ok(ProviderClients {
            apns,
            fcm,
            timeout: config.timeout,
        })
    }

    /// Which providers are configured.
    pub fn providers(&self) -> Providers {
        Providers {
            apns: self.apns.is_some(),
            fcm: self.fcm.is_some(),
        }
    }
}

fn apns_client(config: &PushConfig) -> Result<Option<ApnsClient>, SetupError> {
    let ca = config.apns_ca_path.as_deref();
    let trust = || roots(ca).map_err(|e| setup_error("ApnsCaPath", ca.unwrap_or(""), e));
    let endpoint = config.apns_endpoint.as_str();
    let (auth, tls, how) = if let Some(keys) = &config.apns_token {
        let path = keys.key_path.as_str();
        let pem = read_pem_file(path).map_err(|e| setup_error("ApnsKeyPath", path, e))?;
        let token = ProviderToken::new(&pem, &keys.key_id, &keys.team_id)
            .map_err(|e| setup_error("ApnsKeyPath", path, e))?;
        let tls = client_config(trust()?, None).map_err(|e| setup_error("ApnsKeyPath", path, e))?;
        let how = format!("token auth (key {}, team {})", keys.key_id, keys.team_id);
        (ApnsAuth::Token(Mutex::new(token)), tls, how)
    } else if std::path::Path::new(&config.cert_path).exists() {
        let cert_path = config.cert_path.as_str();
        let certs = read_pem_file(cert_path)
            .and_then(|pem| parse_certs(&pem))
            .map_err(|e| setup_error("CertPath", cert_path, e))?;
        let key_path = config.key_path.as_str();
        let key = read_pem_file(key_path)
            .and_then(|pem| parse_private_key(&pem, &config.key_password))
            .map_err(|e| match e {
                KeyError::Decrypt(_) => setup_error("KeyPassword", "(not shown)", e),
                e => setup_error("KeyPath", key_path, e),
            })?;
        let tls = client_config(trust()?, Some((certs, key)))
            .map_err(|e| setup_error("KeyPath", key_path, e))?;
        (
            ApnsAuth::Certificate,
            tls,
            format!("certificate auth ({cert_path})"),
        )
    } else {
        log::warn!(
            "APNs not configured: no ApnsKeyPath, and CertPath {} does not exist; iOS pushes are answered 1",
            config.cert_path
        );
        return Ok(None);
    };
    let origin =
        Origin::new("APNs", endpoint, tls).map_err(|e| setup_error("ApnsEndpoint", endpoint, e))?;
    if matches!(auth, ApnsAuth::Certificate) && config.apns_topic.is_none() {
        log::info!("APNs: no ApnsTopic; APNs takes the topic from the certificate");
    }
    let client = ApnsClient::new(origin, auth, config.apns_topic.clone());
    log::info!(
        "APNs: {how}, endpoint {}, topic {}",
        client.endpoint(),
        config
            .apns_topic
            .as_deref()
            .unwrap_or("(from the certificate)")
    );
    Ok(Some(client))
}

/// The loop's end of the queue to the provider thread.
#[derive(Debug, Clone)]
pub struct ProviderQueue {
    tx: mpsc::Sender<PushJob>,
}

impl ProviderQueue {
    /// Queues `job`; gives it back when the queue is full or the thread gone.
    pub fn submit(&self, job: PushJob) -> Result<(), PushJob> {
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
        })
    }
}

/// Starts the provider thread with `clients`; answers go back through `remote`.
pub fn spawn(
    clients: ProviderClients,
    remote: Remote<PushState>,
) -> std::io::Result<ProviderQueue> {
    let (tx, rx) = mpsc::channel(JOB_QUEUE);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("providers".into())
        .spawn(move || runtime.block_on(serve(Arc::new(clients), rx, remote)))?;
    Ok(ProviderQueue { tx })
}

async fn serve(
    clients: Arc<ProviderClients>,
    mut rx: mpsc::Receiver<PushJob>,
    remote: Remote<PushState>,
) {
    let jobs = Arc::new(Semaphore::new(MAX_JOBS));
    let deliveries = Arc::new(Semaphore::new(MAX_DELIVERIES));
    while let Some(job) = rx.recv().await {
        let Ok(permit) = jobs.clone().acquire_owned().await else {
            break;
        };
        let (clients, deliveries, remote) = (clients.clone(), deliveries.clone(), remote.clone());
        tokio::spawn(async move {
            let conn = job.conn;
            let rsp = run_job(clients, deliveries, job).await;
            drop(permit);
            remote.run(move |net, _state| {
                // A link closed meanwhile: the reactor logs and drops it.
                let _ = net.send_msg(conn, 0, &rsp);
            });
        });
    }
    log::info!("provider thread: the loop is gone, stopping");
}

/// Every push of `job` at once, each bounded by the timeout; the answer.
async fn run_job(
    clients: Arc<ProviderClients>,
    deliveries: Arc<Semaphore>,
    job: PushJob,
) -> tt_proto::IM::Server::IMPushToUserRsp {
    let tokens: Vec<String> = job.planned.iter().map(|p| p.token.clone()).collect();
    let tasks: Vec<_> = job
        .planned
        .into_iter()
        .map(|p| {
            let (clients, deliveries) = (clients.clone(), deliveries.clone());
            tokio::spawn(async move { deliver(&clients, &deliveries, p).await })
        })
        .collect();
    let mut codes = Vec::with_capacity(tasks.len());
    for task in tasks {
        codes.push(task.await.unwrap_or(RESULT_UNREACHABLE));
    }
    push_plan::answer(tokens.into_iter().zip(codes))
}

/// Sends one push; its result code, with a log line for every failure.
async fn deliver(clients: &ProviderClients, deliveries: &Semaphore, p: PlannedPush) -> u32 {
    let who = format!("user {} token {}", p.user_id, token_hint(&p.token));
    let secs = clients.timeout.as_secs();
    let outcome: Result<(), (u32, String)> = match &p.delivery {
        Delivery::Done { code, why } => {
            if *code == RESULT_OK {
                Ok(())
            } else {
                Err((*code, why.clone()))
            }
        }
        Delivery::Apns(n) => {
            let Some(apns) = &clients.apns else {
                return RESULT_UNREACHABLE;
            };
            let send = async {
                let _slot = deliveries.acquire().await;
                apns.send(n, unix_now()).await
            };
            match tokio::time::timeout(clients.timeout, send).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(ApnsError::Refused(r))) => Err((RESULT_PROVIDER_REFUSED, r.to_string())),
                Ok(Err(e)) => Err((RESULT_UNREACHABLE, e.to_string())),
                Err(_) => Err((
                    RESULT_UNREACHABLE,
                    format!("no answer from APNs within {secs} s"),
                )),
            }
        }
        Delivery::Fcm(m) => {
            let Some(fcm) = &clients.fcm else {
                return RESULT_UNREACHABLE;
            };
            let send = async {
                let _slot = deliveries.acquire().await;
                fcm.send(m, unix_now()).await
            };
            match tokio::time::timeout(clients.timeout, send).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(FcmError::Refused(r))) => Err((RESULT_PROVIDER_REFUSED, r.to_string())),
                Ok(Err(e)) => Err((RESULT_UNREACHABLE, e.to_string())),
                Err(_) => Err((
                    RESULT_UNREACHABLE,
                    format!("no answer from FCM within {secs} s"),
                )),
            }
        }
    };
    match outcome {
        Ok(()) => {
            log::info!("push to {who}: delivered to its provider");
            RESULT_OK
        }
        Err((code, why)) => {
            log::warn!("push to {who}: result {code}: {why}");
            code
        }
    }
}
