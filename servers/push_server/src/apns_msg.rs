//! One APNs notification and APNs's answer to it: the C++ `apns_msg.cpp`
//! (`CAPNSGateWayMsg::_BuildPayload`, `SerializeToArray`,
//! `CAPNSGateWayResMsg`), for Apple's HTTP/2 provider API.
//!
//! Differences from the C++: the payload is the same JSON, but it travels
//! as the body of `POST /3/device/<token>`, with the expiration, priority
//! and push type as headers instead of binary frame items; the limit is
//! HTTP/2's 4,096 bytes (the legacy protocol's was 256). A device token is
//! any even-length hex string of 64 to 200 digits (Apple says tokens may
//! grow; the C++ insists on exactly 64). The silent push keeps the C++
//! payload, a badge alone: Apple counts a badge as a user-visible
//! notification, so it goes as push type `alert` (a `background` push must
//! carry only `content-available` and no badge), at priority 5 (Apple's
//! "conserve power" priority, the one meant for notifications that do not
//! need to arrive at once); normal pushes go at priority 10.

use serde_json::json;

/// Apple's limit on a notification payload.
pub const APNS_PAYLOAD_MAX: usize = 4_096;
/// `time_now + 3600`: APNs keeps an undelivered notification one hour.
pub const APNS_EXPIRATION_SECS: u64 = 3_600;
/// The sound a normal push plays (the C++'s).
pub const APNS_SOUND: &str = "bingbong.aiff";

/// What the C++ `SetSound(FALSE)` / `SetSound(TRUE)` chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// `push_type` 1: alert, badge and sound.
    Normal,
    /// `push_type` 2 (or anything else, as in the C++): the badge only.
    Silent,
}

impl PushKind {
    /// `IM_PUSH_TYPE_NORMAL` is 1; the C++ treats every other value as silent.
    pub fn from_push_type(push_type: u32) -> PushKind {
        if push_type == 1 {
            PushKind::Normal
        } else {
            PushKind::Silent
        }
    }
}

/// One request to APNs, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApnsNotification {
    /// The device token, lower-case hex (the request path's last segment).
    pub device_token: String,
    /// The JSON body.
    pub payload: String,
    /// `apns-push-type`.
    pub push_type: &'static str,
    /// `apns-priority`.
    pub priority: u8,
    /// `apns-expiration`, UNIX seconds.
    pub expiration: u64,
}

/// Why a notification cannot be built (answered 1, as the C++'s failed
/// `SerializeToArray`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApnsMsgError {
    /// Not 64..=200 hex digits.
    #[error("malformed APNs device token ({len} characters)")]
    BadToken {
        /// Its length.
        len: usize,
    },
    /// Over [`APNS_PAYLOAD_MAX`].
    #[error("APNs payload of {0} bytes is over Apple's limit of 4096")]
    TooLarge(usize),
}

/// `_BuildPayload`: `{"aps":{"alert":{"body":…},"badge":…,"sound":…},"custom":…}`
/// for a normal push, `{"aps":{"badge":…},"custom":…}` for a silent one.
/// An empty flash leaves `alert` an empty object, as the C++.
pub fn build_payload(kind: PushKind, flash: &str, badge: u32, custom: &str) -> String {
    let aps = match kind {
        PushKind::Normal => {
            let alert = if flash.is_empty() {
                json!({})
            } else {
                json!({ "body": flash })
            };
            json!({ "alert": alert, "badge": badge, "sound": APNS_SOUND })
        }
        PushKind::Silent => json!({ "badge": badge }),
    };
    json!({ "aps": aps, "custom": custom }).to_string()
}

/// A device token as APNs wants it in the path, or why it is refused.
pub fn device_token(token: &str) -> Result<String, ApnsMsgError> {
    let ok = (64..=200).contains(&token.len())
        && token.len() & 1 == 0
        && token.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(token.to_ascii_lowercase())
    } else {
        Err(ApnsMsgError::BadToken { len: token.len() })
    }
}

/// The notification for one `UserTokenInfo` of an iOS user at UNIX time `now`.
pub fn build(
    token: &str,
    kind: PushKind,
    flash: &str,
    badge: u32,
    custom: &str,
    now: u64,
) -> Result<ApnsNotification, ApnsMsgError> {
    let device_token = device_token(token)?;
    let payload = build_payload(kind, flash, badge, custom);
    if payload.len() > APNS_PAYLOAD_MAX {
        return Err(ApnsMsgError::TooLarge(payload.len()));
    }
    Ok(ApnsNotification {
        device_token,
        payload,
        push_type: "alert",
        priority: match kind {
            PushKind::Normal => 10,
            PushKind::Silent => 5,
        },
        expiration: now + APNS_EXPIRATION_SECS,
    })
}

/// What APNs's answer means: `Ok` for 200, else the status and Apple's
/// `reason` (`410 Unregistered`, `400 BadDeviceToken`...) for the log.
pub fn read_answer(status: u16, body: &[u8]) -> Result<(), ApnsRefusal> {
    if status == 200 {
        return Ok(());
    }
    let reason = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_string))
        .unwrap_or_default();
    Err(ApnsRefusal { status, reason })
}

/// APNs refused a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApnsRefusal {
    /// The HTTP status (400, 403, 410, 429...).
    pub status: u16,
    /// Apple's `reason` (empty when the body had none).
    pub reason: String,
}

impl ApnsRefusal {
    /// The provider token must be made anew (`403 ExpiredProviderToken`).
    pub fn token_expired(&self) -> bool {
        self.status == 403 && self.reason == "ExpiredProviderToken"
    }
}

impl std::fmt::Display for ApnsRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "APNs answered {} {}", self.status, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn payloads_as_the_cpp_builds_them() {
        assert_eq!(
            build_payload(PushKind::Normal, "Al:hi", 3, r#"{"from_id":1}"#),
            r#"{"aps":{"alert":{"body":"Al:hi"},"badge":3,"sound":"bingbong.aiff"},"custom":"{\"from_id\":1}"}"#
        );
        assert_eq!(
            build_payload(PushKind::Silent, "Al:hi", 4, "x"),
            r#"{"aps":{"badge":4},"custom":"x"}"#
        );
        assert_eq!(
            build_payload(PushKind::Normal, "", 0, ""),
            r#"{"aps":{"alert":{},"badge":0,"sound":"bingbong.aiff"},"custom":""}"#
        );
    }

    #[test]
    fn headers_follow_the_kind() {
        let n = build(TOKEN, PushKind::Normal, "f", 1, "d", 1_000).unwrap();
        assert_eq!(n.device_token, TOKEN.to_ascii_lowercase());
        assert_eq!(
            (n.push_type, n.priority, n.expiration),
            ("alert", 10, 4_600)
        );
        let s = build(TOKEN, PushKind::Silent, "f", 1, "d", 1_000).unwrap();
        assert_eq!((s.push_type, s.priority), ("alert", 5));
        assert_eq!(PushKind::from_push_type(1), PushKind::Normal);
        assert_eq!(PushKind::from_push_type(2), PushKind::Silent);
        assert_eq!(PushKind::from_push_type(0), PushKind::Silent);
    }

    #[test]
    fn bad_tokens_and_big_payloads_are_refused() {
        for bad in [
            "",
            "abc",
            &TOKEN[1..],
            &format!("{}zz", &TOKEN[2..]),
            &"a".repeat(202),
        ] {
            assert!(matches!(
                build(bad, PushKind::Normal, "", 0, "", 0),
                Err(ApnsMsgError::BadToken { .. })
            ));
        }
        assert!(build(&"a".repeat(200), PushKind::Normal, "", 0, "", 0).is_ok());
        assert!(matches!(
            build(TOKEN, PushKind::Normal, &"x".repeat(5_000), 0, "", 0),
            Err(ApnsMsgError::TooLarge(_))
        ));
    }

    #[test]
    fn answers() {
        assert_eq!(read_answer(200, b""), Ok(()));
        let r = read_answer(410, br#"{"reason":"Unregistered","timestamp":1}"#).unwrap_err();
        assert_eq!((r.status, r.reason.as_str()), (410, "Unregistered"));
        assert_eq!(read_answer(500, b"<html>").unwrap_err().reason, "");
        assert!(read_answer(403, br#"{"reason":"ExpiredProviderToken"}"#)
            .unwrap_err()
            .token_expired());
    }
}
