//! The APNs client: the C++ `CAPNSClient::SendPushMsgToGateway`
//! (apns_client.cpp) and `CAPNSClientHandler::OnRecvData`
//! (apns_client_handler.cpp), for Apple's HTTP/2 provider API.
//!
//! Differences from the C++: each notification is one HTTP/2 request whose
//! answer is read and mapped to the result code (the C++ sends frames
//! blind, logs APNs's error frame, and has already answered 0); the legacy
//! feedback service (port 2196) is gone, its news comes as `410
//! Unregistered` answers. Auth is a provider token ([`ProviderToken`]) or
//! the C++'s client certificate.

use crate::apns_auth::ProviderToken;
use crate::apns_msg::{read_answer, ApnsNotification, ApnsRefusal};
use crate::h2_origin::{Origin, OriginError};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use std::sync::Mutex;

/// How APNs knows us.
pub enum ApnsAuth {
    /// A bearer JWT on each request.
    Token(Mutex<ProviderToken>),
    /// The TLS client certificate (already in the origin's TLS config).
    Certificate,
}

/// Why a notification was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ApnsError {
    /// No answer.
    #[error(transparent)]
    Origin(#[from] OriginError),
    /// APNs answered with a refusal.
    #[error("{0}")]
    Refused(ApnsRefusal),
    /// The provider token could not be made.
    #[error("cannot sign the APNs provider token: {0}")]
    Sign(String),
}

/// The APNs origin, its auth and the app's topic.
pub struct ApnsClient {
    origin: Origin,
    auth: ApnsAuth,
    topic: Option<String>,
}

fn header(name: &'static str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_static(name),
        HeaderValue::from_str(value).ok()?,
    ))
}

impl ApnsClient {
    /// A client for `origin` (its TLS config carries the certificate for
    /// certificate auth).
    pub fn new(origin: Origin, auth: ApnsAuth, topic: Option<String>) -> ApnsClient {
        ApnsClient {
            origin,
            auth,
            topic,
        }
    }

    /// The endpoint's `host:port`.
    pub fn endpoint(&self) -> String {
        self.origin.name()
    }

    /// Sends `n` at UNIX time `now`; `Ok` when APNs answered 200.
    pub async fn send(&self, n: &ApnsNotification, now: u64) -> Result<(), ApnsError> {
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(6);
        if let ApnsAuth::Token(token) = &self.auth {
            let jwt = match token.lock() {
                Ok(mut t) => t.bearer(now).map_err(|e| ApnsError::Sign(e.to_string()))?,
                Err(_) => return Err(ApnsError::Sign("token lock poisoned".into())),
            };
            headers.extend(header("authorization", &format!("bearer {jwt}")));
        }
        if let Some(topic) = &self.topic {
            headers.extend(header("apns-topic", topic));
        }
        headers.extend(header("apns-push-type", n.push_type));
        headers.extend(header("apns-priority", &n.priority.to_string()));
        headers.extend(header("apns-expiration", &n.expiration.to_string()));
        headers.extend(header("content-type", "application/json"));
        let path = format!("/3/device/{}", n.device_token);
        let (status, body) = self
            .origin
            .post(&path, &headers, Bytes::from(n.payload.clone()))
            .await?;
        read_answer(status, &body).map_err(|refusal| {
            if refusal.token_expired() {
                if let ApnsAuth::Token(token) = &self.auth {
                    if let Ok(mut t) = token.lock() {
                        t.expired(now);
                    }
                }
            }
            ApnsError::Refused(refusal)
        })
    }
}
