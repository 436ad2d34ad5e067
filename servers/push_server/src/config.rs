//! The keys of `pushserver.conf`: the C++ `CPushApp::Start` (push_app.cpp)
//! and the keys we add for today's provider APIs.
//!
//! Differences from the C++: the C++ keys are all still required, but
//! `CertPath`/`KeyPath` name files that may be absent (the reference conf
//! ships a demo value): then APNs certificate auth is simply not configured.
//! The added keys (`Apns*`, `Fcm*`) are optional; a group of them is all
//! or nothing (`ApnsKeyPath` needs `ApnsKeyId`, `ApnsTeamId` and
//! `ApnsTopic`; `FcmServiceAccountPath` needs `FcmProjectId`).

use base::config::{ConfigError, ConfigFileReader};
use std::time::Duration;

/// Apple's production endpoint (`SandBox=0`).
pub const APNS_PRODUCTION: &str = "https://api.push.apple.com";
/// Apple's development endpoint (`SandBox=1`).
pub const APNS_SANDBOX: &str = "https://api.sandbox.push.apple.com";
/// Google's FCM HTTP v1 endpoint.
pub const FCM_DEFAULT: &str = "https://fcm.googleapis.com";
/// How long one push may wait for its provider by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// APNs token (JWT) auth: the `.p8` key Apple hands out and its ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApnsTokenKeys {
    /// `ApnsKeyPath`: PKCS#8 PEM of the P-256 signing key.
    pub key_path: String,
    /// `ApnsKeyId`: the key's 10-character id (`kid`).
    pub key_id: String,
    /// `ApnsTeamId`: the developer team (`iss`).
    pub team_id: String,
}

/// FCM HTTP v1: the service-account key and its project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcmKeys {
    /// `FcmServiceAccountPath`: the service account's JSON key file.
    pub service_account_path: String,
    /// `FcmProjectId`: the Firebase project.
    pub project_id: String,
}

/// Everything `pushserver.conf` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushConfig {
    /// `ListenIP` (`;`-separated list, as every server's listen keys).
    pub listen_ip: String,
    /// `ListenPort`.
    pub listen_port: u16,
    /// `CertPath`: APNs client certificate (PEM); absent file = no cert auth.
    pub cert_path: String,
    /// `KeyPath`: its private key (PEM, maybe encrypted).
    pub key_path: String,
    /// `KeyPassword`: the key's password (empty: not encrypted).
    pub key_password: String,
    /// `SandBox`: 1 for Apple's development environment.
    pub sandbox: bool,
    /// `ApnsEndpoint` (not in the C++): the APNs base URL.
    pub apns_endpoint: String,
    /// `ApnsCaPath` (not in the C++): PEM CAs trusted for APNs instead of
    /// the public roots.
    pub apns_ca_path: Option<String>,
    /// `ApnsTopic` (not in the C++): the app's bundle id.
    pub apns_topic: Option<String>,
    /// `ApnsKeyPath`/`ApnsKeyId`/`ApnsTeamId` (not in the C++).
    pub apns_token: Option<ApnsTokenKeys>,
    /// `ApnsTimeout` (not in the C++), seconds: the longest a push waits
    /// for APNs or FCM.
    pub timeout: Duration,
    /// `FcmServiceAccountPath`/`FcmProjectId` (not in the C++).
    pub fcm: Option<FcmKeys>,
    /// `FcmEndpoint` (not in the C++): the FCM base URL.
    pub fcm_endpoint: String,
    /// `FcmCaPath` (not in the C++): PEM CAs trusted for FCM and the token
    /// endpoint instead of the public roots.
    pub fcm_ca_path: Option<String>,
}

fn optional(conf: &ConfigFileReader, key: &str) -> Option<String> {
    conf.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| v.to_string())
}

fn needed_with(conf: &ConfigFileReader, key: &str, with: &str) -> Result<String, ConfigError> {
    optional(conf, key).ok_or_else(|| ConfigError::Invalid {
        key: key.to_string(),
        value: String::new(),
        reason: format!("needed when {with} is set"),
    })
}

impl PushConfig {
    /// Reads every key, failing on the first missing or invalid one.
    pub fn from_conf(conf: &ConfigFileReader) -> Result<PushConfig, ConfigError> {
        let sandbox = match conf.require("SandBox")? {
            "1" => true,
            "0" => false,
            other => {
                return Err(ConfigError::Invalid {
                    key: "SandBox".into(),
                    value: other.to_string(),
                    reason: "must be 1 (sandbox) or 0 (production)".into(),
                })
            }
        };
        let apns_token = match optional(conf, "ApnsKeyPath") {
            None => None,
            Some(key_path) => Some(ApnsTokenKeys {
                key_path,
                key_id: needed_with(conf, "ApnsKeyId", "ApnsKeyPath")?,
                team_id: needed_with(conf, "ApnsTeamId", "ApnsKeyPath")?,
            }),
        };
        let apns_topic = match &apns_token {
            Some(_) => Some(needed_with(conf, "ApnsTopic", "ApnsKeyPath")?),
            None => optional(conf, "ApnsTopic"),
        };
        let fcm = match optional(conf, "FcmServiceAccountPath") {
            None => None,
            Some(service_account_path) => Some(FcmKeys {
                service_account_path,
                project_id: needed_with(conf, "FcmProjectId", "FcmServiceAccountPath")?,
            }),
        };
        let timeout = match conf.get_parse::<u64>("ApnsTimeout")? {
            None => DEFAULT_TIMEOUT,
            Some(0) => {
                return Err(ConfigError::Invalid {
                    key: "ApnsTimeout".into(),
                    value: "0".into(),
                    reason: "must be at least 1 second".into(),
                })
            }
            Some(s) => Duration::from_secs(s),
        };
        let default_apns = if sandbox {
            APNS_SANDBOX
        } else {
            APNS_PRODUCTION
        };
        Ok(PushConfig {
            listen_ip: conf.require("ListenIP")?.to_string(),
            listen_port: conf.require_parse("ListenPort")?,
            cert_path: conf.require("CertPath")?.to_string(),
            key_path: conf.require("KeyPath")?.to_string(),
            key_password: conf.require("KeyPassword")?.to_string(),
            sandbox,
            apns_endpoint: optional(conf, "ApnsEndpoint").unwrap_or_else(|| default_apns.into()),
            apns_ca_path: optional(conf, "ApnsCaPath"),
            apns_topic,
            apns_token,
            timeout,
            fcm,
            fcm_endpoint: optional(conf, "FcmEndpoint").unwrap_or_else(|| FCM_DEFAULT.into()),
            fcm_ca_path: optional(conf, "FcmCaPath"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPP: &str = "ListenIP=127.0.0.1\nListenPort=8500\nCertPath=apns-dev-cert.pem\n\
                       KeyPath=apns-dev-key.pem\nKeyPassword=tt@mogujie\nSandBox=1\n";

    fn parse(extra: &str) -> Result<PushConfig, ConfigError> {
        PushConfig::from_conf(&ConfigFileReader::parse(&format!("{CPP}{extra}")))
    }

    #[test]
    fn the_cpp_conf_reads_with_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.listen_port, 8500);
        assert_eq!(c.key_password, "tt@mogujie");
        assert_eq!(c.apns_endpoint, APNS_SANDBOX);
        assert_eq!(c.fcm_endpoint, FCM_DEFAULT);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(c.apns_token.is_none() && c.fcm.is_none() && c.apns_topic.is_none());
        let prod = CPP.replace("SandBox=1", "SandBox=0");
        let c = PushConfig::from_conf(&ConfigFileReader::parse(&prod)).unwrap();
        assert_eq!(c.apns_endpoint, APNS_PRODUCTION);
    }

    #[test]
    fn each_cpp_key_is_required() {
        for key in [
            "ListenIP",
            "ListenPort",
            "CertPath",
            "KeyPath",
            "KeyPassword",
            "SandBox",
        ] {
            let text: String = CPP
                .lines()
                .filter(|l| !l.starts_with(&format!("{key}=")))
                .map(|l| format!("{l}\n"))
                .collect();
            let err = PushConfig::from_conf(&ConfigFileReader::parse(&text)).unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        let err = PushConfig::from_conf(&ConfigFileReader::parse(
            &CPP.replace("SandBox=1", "SandBox=2"),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("SandBox"));
    }

    #[test]
    fn added_keys_come_in_groups() {
        let err = parse("ApnsKeyPath=k.p8\nApnsKeyId=ABC\n").unwrap_err();
        assert!(err.to_string().contains("ApnsTeamId"), "{err}");
        let err = parse("ApnsKeyPath=k.p8\nApnsKeyId=ABC\nApnsTeamId=T\n").unwrap_err();
        assert!(err.to_string().contains("ApnsTopic"), "{err}");
        let c = parse("ApnsKeyPath=k.p8\nApnsKeyId=ABC\nApnsTeamId=T\nApnsTopic=com.x\n").unwrap();
        assert_eq!(c.apns_token.unwrap().key_id, "ABC");
        let err = parse("FcmServiceAccountPath=sa.json\n").unwrap_err();
        assert!(err.to_string().contains("FcmProjectId"), "{err}");
        let c = parse("FcmServiceAccountPath=sa.json\nFcmProjectId=p\nApnsTimeout=2\n").unwrap();
        assert_eq!(c.fcm.unwrap().project_id, "p");
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert!(parse("ApnsTimeout=0\n").is_err());
        assert!(parse("ApnsTimeout=x\n").is_err());
        let c = parse("ApnsEndpoint=https://127.0.0.1:9\n").unwrap();
        assert_eq!(c.apns_endpoint, "https://127.0.0.1:9");
    }
}
