//! What to do with each token of an `IMPushToUserReq`, and the answer: the
//! loop of the C++ `CPushSessionHandler::_HandlePushMsg`, as pure functions
//! of (request, configured providers, time).
//!
//! Differences from the C++: an entry is answered 0 only once its provider
//! accepted it (the C++ answers 0 as soon as the frame is queued, even with
//! no gateway connection, and the push is dropped); provider refusals and
//! timeouts answer non-zero. Android tokens go to FCM when it is configured.

use crate::apns_msg::{self, ApnsNotification, PushKind};
use crate::fcm_msg::{self, FcmMessage};
use tt_proto::IM::BaseDefine::{ClientType, PushResult};
use tt_proto::IM::Server::{IMPushToUserReq, IMPushToUserRsp};

/// The provider accepted the push.
pub const RESULT_OK: u32 = 0;
/// The C++'s only failure code: a token this server cannot push to (a
/// client type without a configured provider, a malformed token, a
/// payload over the provider's limit).
pub const RESULT_REFUSED: u32 = 1;
/// The provider answered with a refusal (`410 Unregistered`...).
pub const RESULT_PROVIDER_REFUSED: u32 = 2;
/// The provider could not be reached, or did not answer in time, or the
/// push queue was full.
pub const RESULT_UNREACHABLE: u32 = 3;

/// Tokens of one request sent to providers; those past it are answered
/// 1 (a group of this many offline members is far beyond TeamTalk's).
pub const MAX_TOKENS_PER_REQUEST: usize = 10_000;

/// Which providers are configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Providers {
    /// APNs credentials loaded.
    pub apns: bool,
    /// FCM credentials loaded.
    pub fcm: bool,
}

/// The fate of one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Answered without asking a provider.
    Done {
        /// The result code.
        code: u32,
        /// Why, for the log.
        why: String,
    },
    /// To be sent to APNs.
    Apns(ApnsNotification),
    /// To be sent to FCM.
    Fcm(FcmMessage),
}

impl Delivery {
    /// True when a provider must be asked.
    pub fn pending(&self) -> bool {
        !matches!(self, Delivery::Done { .. })
    }
}

/// One token of a request and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPush {
    /// The user (for the log).
    pub user_id: u32,
    /// The token as msg_server sent it (echoed in the answer).
    pub token: String,
    /// What to do.
    pub delivery: Delivery,
}

/// A short, loggable form of a device token.
pub fn token_hint(token: &str) -> String {
    let head: String = token.chars().take(8).collect();
    format!("{head}…({} chars)", token.chars().count())
}

/// Plans every token of `req` at UNIX time `now`, in input order.
pub fn plan(req: &IMPushToUserReq, providers: Providers, now: u64) -> Vec<PlannedPush> {
    req.user_token_list
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let kind = PushKind::from_push_type(t.push_type);
            let refused = |why: String| Delivery::Done {
                code: RESULT_REFUSED,
                why,
            };
            let delivery = match t.user_type {
                _ if i >= MAX_TOKENS_PER_REQUEST => refused(format!(
                    "more than {MAX_TOKENS_PER_REQUEST} tokens in one request"
                )),
                ClientType::CLIENT_TYPE_IOS if providers.apns => {
                    match apns_msg::build(&t.token, kind, &req.flash, t.push_count, &req.data, now)
                    {
                        Ok(n) => Delivery::Apns(n),
                        Err(e) => refused(e.to_string()),
                    }
                }
                ClientType::CLIENT_TYPE_IOS => refused(
                    "APNs is not configured (no ApnsKeyPath, and no certificate at CertPath)"
                        .into(),
                ),
                ClientType::CLIENT_TYPE_ANDROID if providers.fcm => {
                    match fcm_msg::build(&t.token, kind, &req.flash, t.push_count, &req.data) {
                        Ok(m) => Delivery::Fcm(m),
                        Err(e) => refused(e.to_string()),
                    }
                }
                ClientType::CLIENT_TYPE_ANDROID => {
                    refused("FCM is not configured (no FcmServiceAccountPath)".into())
                }
                other => refused(format!("client type {other:?} has no push service")),
            };
            PlannedPush {
                user_id: t.user_id,
                token: t.token.clone(),
                delivery,
            }
        })
        .collect()
}

/// The `IMPushToUserRsp` for `results` (token, code), in input order.
pub fn answer(results: impl IntoIterator<Item = (String, u32)>) -> IMPushToUserRsp {
    IMPushToUserRsp {
        push_result_list: results
            .into_iter()
            .map(|(user_token, result_code)| PushResult {
                user_token,
                result_code,
            })
            .collect(),
    }
}

/// The answer when no provider will be asked: the codes of finished
/// entries, and `pending_code` for the others. Logs each failure.
pub fn answer_now(
    planned: &[PlannedPush],
    pending_code: u32,
    pending_why: &str,
) -> IMPushToUserRsp {
    answer(planned.iter().map(|p| {
        let (code, why) = match &p.delivery {
            Delivery::Done { code, why } => (*code, why.as_str()),
            _ => (pending_code, pending_why),
        };
        if code != RESULT_OK {
            log::warn!(
                "push to user {} token {}: result {code}: {why}",
                p.user_id,
                token_hint(&p.token)
            );
        }
        (p.token.clone(), code)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tt_proto::IM::BaseDefine::UserTokenInfo;

    fn token(user_type: ClientType, token: &str, push_type: u32) -> UserTokenInfo {
        UserTokenInfo {
            user_id: 7,
            user_type,
            token: token.into(),
            push_count: 2,
            push_type,
        }
    }

    fn req(tokens: Vec<UserTokenInfo>) -> IMPushToUserReq {
        IMPushToUserReq {
            flash: "Al:hi".into(),
            data: "{}".into(),
            user_token_list: tokens,
        }
    }

    const IOS_TOKEN: &str = "aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00aa00";

    #[test]
    fn nothing_configured_answers_one_for_every_token() {
        let r = req(vec![
            token(ClientType::CLIENT_TYPE_IOS, IOS_TOKEN, 1),
            token(ClientType::CLIENT_TYPE_ANDROID, "fcm", 1),
            token(ClientType::CLIENT_TYPE_WINDOWS, "pc", 1),
        ]);
        let p = plan(&r, Providers::default(), 0);
        assert!(p.iter().all(|p| !p.delivery.pending()));
        let rsp = answer_now(&p, RESULT_UNREACHABLE, "");
        let got: Vec<_> = rsp
            .push_result_list
            .iter()
            .map(|r| (r.user_token.as_str(), r.result_code))
            .collect();
        assert_eq!(got, vec![(IOS_TOKEN, 1), ("fcm", 1), ("pc", 1)]);
    }

    #[test]
    fn configured_providers_get_their_tokens_in_order() {
        let r = req(vec![
            token(ClientType::CLIENT_TYPE_ANDROID, "fcm", 2),
            token(ClientType::CLIENT_TYPE_IOS, "short", 1),
            token(ClientType::CLIENT_TYPE_IOS, IOS_TOKEN, 2),
        ]);
        let both = Providers {
            apns: true,
            fcm: true,
        };
        let p = plan(&r, both, 100);
        assert!(matches!(p[0].delivery, Delivery::Fcm(_)));
        assert!(matches!(
            p[1].delivery,
            Delivery::Done {
                code: RESULT_REFUSED,
                ..
            }
        ));
        match &p[2].delivery {
            Delivery::Apns(n) => {
                assert_eq!(n.payload, r#"{"aps":{"badge":2},"custom":"{}"}"#);
                assert_eq!((n.priority, n.expiration), (5, 3_700));
            }
            other => panic!("{other:?}"),
        }
        let rsp = answer_now(&p, RESULT_UNREACHABLE, "queue full");
        let codes: Vec<u32> = rsp.push_result_list.iter().map(|r| r.result_code).collect();
        assert_eq!(codes, vec![3, 1, 3]);
    }

    #[test]
    fn tokens_past_the_cap_are_answered_one() {
        let many = (0..MAX_TOKENS_PER_REQUEST + 2)
            .map(|_| token(ClientType::CLIENT_TYPE_IOS, IOS_TOKEN, 1))
            .collect();
        let apns = Providers {
            apns: true,
            fcm: false,
        };
        let p = plan(&req(many), apns, 0);
        assert_eq!(p.len(), MAX_TOKENS_PER_REQUEST + 2);
        assert!(p[MAX_TOKENS_PER_REQUEST - 1].delivery.pending());
        assert!(p[MAX_TOKENS_PER_REQUEST..].iter().all(|p| matches!(
            p.delivery,
            Delivery::Done {
                code: RESULT_REFUSED,
                ..
            }
        )));
    }
}
