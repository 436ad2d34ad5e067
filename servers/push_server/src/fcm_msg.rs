//! One FCM HTTP v1 message and FCM's answer to it. Not in the C++, which
//! answers 1 for every Android token.
//!
//! A normal push is a notification (the flash as its body, the unread
//! count as Android's `notification_count`) at high priority; a silent
//! push is a data message at normal priority. Both carry the C++'s custom
//! `data` under the data key `custom`, and the count as `badge`.

use serde_json::json;

/// FCM's limit on a message.
pub const FCM_MESSAGE_MAX: usize = 4_096;
/// Longest registration token accepted.
pub const FCM_TOKEN_MAX: usize = 4_096;

use crate::apns_msg::PushKind;

/// One request to FCM, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcmMessage {
    /// The JSON body of `messages:send`.
    pub body: String,
}

/// Why a message cannot be built (answered 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FcmMsgError {
    /// Empty, too long, or not the characters FCM tokens are made of.
    #[error("malformed FCM registration token ({len} characters)")]
    BadToken {
        /// Its length.
        len: usize,
    },
    /// Over [`FCM_MESSAGE_MAX`].
    #[error("FCM message of {0} bytes is over FCM's limit of 4096")]
    TooLarge(usize),
}

/// The message for one Android token.
pub fn build(
    token: &str,
    kind: PushKind,
    flash: &str,
    badge: u32,
    custom: &str,
) -> Result<FcmMessage, FcmMsgError> {
    let token_ok = !token.is_empty()
        && token.len() <= FCM_TOKEN_MAX
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b));
    if !token_ok {
        return Err(FcmMsgError::BadToken { len: token.len() });
    }
    let data = json!({ "custom": custom, "badge": badge.to_string() });
    let message = match kind {
        PushKind::Normal => json!({
            "token": token,
            "notification": { "body": flash },
            "android": {
                "priority": "high",
                "notification": { "notification_count": badge.min(i32::MAX as u32) }
            },
            "data": data,
        }),
        PushKind::Silent => json!({
            "token": token,
            "android": { "priority": "normal" },
            "data": data,
        }),
    };
    let body = json!({ "message": message }).to_string();
    if body.len() - token.len() > FCM_MESSAGE_MAX {
        return Err(FcmMsgError::TooLarge(body.len()));
    }
    Ok(FcmMessage { body })
}

/// FCM refused a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcmRefusal {
    /// The HTTP status.
    pub status: u16,
    /// FCM's `errorCode` (`UNREGISTERED`...) or, without one, the `status`.
    pub reason: String,
}

impl FcmRefusal {
    /// The access token was refused: fetch a new one next time.
    pub fn token_refused(&self) -> bool {
        self.status == 401
    }
}

impl std::fmt::Display for FcmRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FCM answered {} {}", self.status, self.reason)
    }
}

/// What FCM's answer means: `Ok` for 200, else the status and reason.
pub fn read_answer(status: u16, body: &[u8]) -> Result<(), FcmRefusal> {
    if status == 200 {
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error = &v["error"];
    let detail = error["details"].as_array().and_then(|ds| {
        ds.iter()
            .find_map(|d| d["errorCode"].as_str().map(str::to_string))
    });
    let reason = detail
        .or_else(|| error["status"].as_str().map(str::to_string))
        .unwrap_or_default();
    Err(FcmRefusal { status, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_and_silent_messages() {
        let m = build("tok:A-1_b", PushKind::Normal, "Al:hi", 3, "{}").unwrap();
        let v: serde_json::Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(v["message"]["token"], "tok:A-1_b");
        assert_eq!(v["message"]["notification"]["body"], "Al:hi");
        assert_eq!(v["message"]["android"]["priority"], "high");
        assert_eq!(
            v["message"]["android"]["notification"]["notification_count"],
            3
        );
        assert_eq!(v["message"]["data"]["custom"], "{}");
        assert_eq!(v["message"]["data"]["badge"], "3");
        let s = build("t", PushKind::Silent, "Al:hi", 4, "x").unwrap();
        let v: serde_json::Value = serde_json::from_str(&s.body).unwrap();
        assert!(v["message"].get("notification").is_none());
        assert_eq!(v["message"]["android"]["priority"], "normal");
        assert_eq!(v["message"]["data"]["badge"], "4");
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            build("", PushKind::Normal, "", 0, ""),
            Err(FcmMsgError::BadToken { .. })
        ));
        assert!(build("a b", PushKind::Normal, "", 0, "").is_err());
        assert!(matches!(
            build("t", PushKind::Normal, &"x".repeat(5_000), 0, ""),
            Err(FcmMsgError::TooLarge(_))
        ));
    }

    #[test]
    fn answers() {
        assert_eq!(read_answer(200, br#"{"name":"x"}"#), Ok(()));
        let body = br#"{"error":{"code":404,"status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#;
        let r = read_answer(404, body).unwrap_err();
        assert_eq!((r.status, r.reason.as_str()), (404, "UNREGISTERED"));
        let r = read_answer(401, br#"{"error":{"status":"UNAUTHENTICATED"}}"#).unwrap_err();
        assert!(r.token_refused() && r.reason == "UNAUTHENTICATED");
        assert_eq!(read_answer(502, b"").unwrap_err().reason, "");
    }
}
