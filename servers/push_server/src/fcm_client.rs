//! The FCM HTTP v1 client for Android tokens, with its OAuth2 access
//! token. Not in the C++ (it answers 1 for every Android token).
//!
//! The access token comes from the service-account key's `token_uri`
//! (Google's OAuth2 "JWT bearer" grant: an RS256 assertion with `iss` the
//! account's e-mail, `scope` FCM's, `aud` the token URI, one hour of
//! validity), is cached until [`REFRESH_MARGIN_SECS`] before it expires,
//! and dropped when FCM answers 401. Concurrent pushes share one fetch.

use crate::fcm_msg::{read_answer, FcmMessage, FcmRefusal};
use crate::h2_origin::{Origin, OriginError};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Uri};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::sync::Arc;
use tokio_rustls::rustls::ClientConfig;

/// The OAuth2 scope FCM wants.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// Fetch a new access token this long before the cached one expires.
pub const REFRESH_MARGIN_SECS: u64 = 300;
/// Longest service-account file read.
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// Why the service account cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ServiceAccountError {
    /// Not readable.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// Over [`MAX_KEY_FILE`].
    #[error("larger than 64 KiB")]
    TooLarge,
    /// Not JSON, or a field missing.
    #[error("not a service-account key: {0}")]
    Format(String),
    /// The private key does not load.
    #[error("its private_key is not an RSA key: {0}")]
    Key(#[from] jsonwebtoken::errors::Error),
    /// `token_uri` is not an https URL.
    #[error(transparent)]
    TokenUri(#[from] OriginError),
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum FcmError {
    /// No answer from FCM or the token endpoint.
    #[error(transparent)]
    Origin(#[from] OriginError),
    /// FCM refused the message.
    #[error("{0}")]
    Refused(FcmRefusal),
    /// No access token.
    #[error("no FCM access token: {0}")]
    Token(String),
}

/// The parts of a service-account key file we use.
pub struct ServiceAccount {
    client_email: String,
    private_key_id: Option<String>,
    key: EncodingKey,
    token_uri: String,
}

impl ServiceAccount {
    /// Reads the JSON key file at `path`.
    pub fn load(path: &str) -> Result<ServiceAccount, ServiceAccountError> {
        if std::fs::metadata(path)?.len() > MAX_KEY_FILE {
            return Err(ServiceAccountError::TooLarge);
        }
        ServiceAccount::parse(&std::fs::read(path)?)
    }

    /// Parses a key file's text.
    pub fn parse(json: &[u8]) -> Result<ServiceAccount, ServiceAccountError> {
        let v: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| ServiceAccountError::Format(e.to_string()))?;
        let field = |name: &str| {
            v.get(name)
                .and_then(|f| f.as_str())
                .map(str::to_string)
                .ok_or_else(|| ServiceAccountError::Format(format!("no {name}")))
        };
        let token_uri = field("token_uri")?;
        split_url(&token_uri)?;
        Ok(ServiceAccount {
            client_email: field("client_email")?,
            private_key_id: field("private_key_id").ok(),
            key: EncodingKey::from_rsa_pem(field("private_key")?.as_bytes())?,
            token_uri,
        })
    }

    /// The signed assertion for a token request at UNIX time `now`.
    pub fn assertion(&self, now: u64) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.private_key_id.clone();
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": FCM_SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + 3_600,
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

/// Splits an `https://host[:port]/path` URL into its base and path.
pub fn split_url(url: &str) -> Result<(String, String), OriginError> {
    let bad = || OriginError::BadUrl(url.to_string());
    let uri: Uri = url.parse().map_err(|_| bad())?;
    let (Some("https"), Some(auth)) = (uri.scheme_str(), uri.authority()) else {
        return Err(bad());
    };
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    Ok((format!("https://{auth}"), path))
}

/// A cached access token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenCache {
    current: Option<(String, u64)>,
}

impl TokenCache {
    /// The cached token if it is still good at `now` (with the margin).
    pub fn valid(&self, now: u64) -> Option<&str> {
        match &self.current {
            Some((t, expires_at)) if now + REFRESH_MARGIN_SECS < *expires_at => Some(t),
            _ => None,
        }
    }

    /// Keeps `token`, valid for `expires_in` seconds from `now`.
    pub fn store(&mut self, token: String, expires_in: u64, now: u64) {
        self.current = Some((token, now + expires_in.min(24 * 3_600)));
    }

    /// Forgets the token (FCM refused it).
    pub fn clear(&mut self) {
        self.current = None;
    }
}

/// Reads a token endpoint's answer: the token and its lifetime.
pub fn read_token_answer(status: u16, body: &[u8]) -> Result<(String, u64), String> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if status != 200 {
        let why = v["error"].as_str().unwrap_or_default();
        return Err(format!("token endpoint answered {status} {why}"));
    }
    match (v["access_token"].as_str(), v["expires_in"].as_u64()) {
        (Some(t), Some(e)) if !t.is_empty() => Ok((t.to_string(), e)),
        _ => Err("token endpoint answer without access_token/expires_in".into()),
    }
}

/// FCM, its token endpoint and the cached token.
pub struct FcmClient {
    fcm: Origin,
    token_origin: Origin,
    token_path: String,
    account: ServiceAccount,
    send_path: String,
    cache: tokio::sync::Mutex<TokenCache>,
}

fn header(name: &'static str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_static(name),
        HeaderValue::from_str(value).ok()?,
    ))
}

impl FcmClient {
    /// A client for project `project_id` at `endpoint`, both origins
    /// trusting what `tls` trusts.
    pub fn new(
        account: ServiceAccount,
        project_id: &str,
        endpoint: &str,
        tls: Arc<ClientConfig>,
    ) -> Result<FcmClient, OriginError> {
        let (token_base, token_path) = split_url(&account.token_uri)?;
        Ok(FcmClient {
            fcm: Origin::new("FCM", endpoint, tls.clone())?,
            token_origin: Origin::new("OAuth2", &token_base, tls)?,
            token_path,
            send_path: format!("/v1/projects/{project_id}/messages:send"),
            account,
            cache: tokio::sync::Mutex::new(TokenCache::default()),
        })
    }

    /// The endpoint's `host:port`.
    pub fn endpoint(&self) -> String {
        self.fcm.name()
    }

    async fn access_token(&self, now: u64) -> Result<String, FcmError> {
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.valid(now) {
            return Ok(t.to_string());
        }
        let assertion = self
            .account
            .assertion(now)
            .map_err(|e| FcmError::Token(format!("cannot sign the assertion: {e}")))?;
        let form = format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        );
        let headers: Vec<_> = header("content-type", "application/x-www-form-urlencoded")
            .into_iter()
            .collect();
        let (status, body) = self
            .token_origin
            .post(&self.token_path, &headers, Bytes::from(form))
            .await?;
        let (token, expires_in) = read_token_answer(status, &body).map_err(FcmError::Token)?;
        log::info!("FCM access token fetched, valid {expires_in} s");
        cache.store(token.clone(), expires_in, now);
        Ok(token)
    }

    /// Sends `m` at UNIX time `now`; `Ok` when FCM answered 200.
    pub async fn send(&self, m: &FcmMessage, now: u64) -> Result<(), FcmError> {
        let token = self.access_token(now).await?;
        let mut headers: Vec<_> = header("authorization", &format!("Bearer {token}"))
            .into_iter()
            .collect();
        headers.extend(header("content-type", "application/json"));
        let (status, body) = self
            .fcm
            .post(&self.send_path, &headers, Bytes::from(m.body.clone()))
            .await?;
        match read_answer(status, &body) {
            Ok(()) => Ok(()),
            Err(refusal) => {
                if refusal.token_refused() {
                    self.cache.lock().await.clear();
                }
                Err(FcmError::Refused(refusal))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    const KEY: &str = include_str!("../tests/data/fcm-service-account-key.pem");
    const PUBLIC: &str = include_str!("../tests/data/fcm-service-account-pub.pem");

    fn account() -> ServiceAccount {
        let json = serde_json::json!({
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "kid1",
            "private_key": KEY,
            "client_email": "push@p.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.example/token",
        });
        ServiceAccount::parse(json.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn the_assertion_is_rs256_for_the_token_uri() {
        let jwt = account().assertion(1_000).unwrap();
        let h = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!((h.alg, h.kid.as_deref()), (Algorithm::RS256, Some("kid1")));
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.set_audience(&["https://oauth2.example/token"]);
        let public = DecodingKey::from_rsa_pem(PUBLIC.as_bytes()).unwrap();
        let c = jsonwebtoken::decode::<serde_json::Value>(&jwt, &public, &v)
            .unwrap()
            .claims;
        assert_eq!(c["iss"], "push@p.iam.gserviceaccount.com");
        assert_eq!(c["scope"], FCM_SCOPE);
        assert_eq!(
            (c["iat"].as_u64(), c["exp"].as_u64()),
            (Some(1_000), Some(4_600))
        );
    }

    #[test]
    fn bad_key_files() {
        assert!(ServiceAccount::parse(b"{").is_err());
        assert!(ServiceAccount::parse(br#"{"token_uri":"https://x/t"}"#).is_err());
        let json = serde_json::json!({
            "private_key": KEY, "client_email": "e", "token_uri": "http://plain/token",
        });
        assert!(ServiceAccount::parse(json.to_string().as_bytes()).is_err());
    }

    #[test]
    fn tokens_are_cached_until_shortly_before_expiry() {
        let mut c = TokenCache::default();
        assert_eq!(c.valid(0), None);
        c.store("t".into(), 3_600, 1_000);
        assert_eq!(c.valid(1_000), Some("t"));
        assert_eq!(c.valid(4_600 - REFRESH_MARGIN_SECS - 1), Some("t"));
        assert_eq!(c.valid(4_600 - REFRESH_MARGIN_SECS), None);
        c.clear();
        assert_eq!(c.valid(1_000), None);
    }

    #[test]
    fn token_answers_and_urls() {
        assert_eq!(
            read_token_answer(200, br#"{"access_token":"ya29","expires_in":3599}"#),
            Ok(("ya29".into(), 3599))
        );
        assert!(read_token_answer(400, br#"{"error":"invalid_grant"}"#)
            .unwrap_err()
            .contains("invalid_grant"));
        assert!(read_token_answer(200, b"{}").is_err());
        assert_eq!(
            split_url("https://oauth2.googleapis.com/token").unwrap(),
            ("https://oauth2.googleapis.com".into(), "/token".into())
        );
        assert!(split_url("http://x/token").is_err());
    }
}
