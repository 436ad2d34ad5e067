//! APNs token-based auth: the provider JWT (ES256, `kid`, `iss`, `iat`)
//! signed with the `.p8` key Apple issues. Not in the C++ (certificates only).
//!
//! One token is reused across requests and connections and made anew
//! after [`RENEW_AFTER_SECS`]: Apple refuses tokens older than an hour and
//! answers `429 TooManyProviderTokenUpdates` to a provider renewing more
//! often than every 20 minutes, so a `403 ExpiredProviderToken` only brings
//! the renewal forward when the token is at least [`MIN_AGE_SECS`] old.

use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// Renew after 50 minutes (Apple: between 20 and 60).
pub const RENEW_AFTER_SECS: u64 = 50 * 60;
/// Never renew a token younger than 20 minutes.
pub const MIN_AGE_SECS: u64 = 20 * 60;

/// Why the signing key cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("not a PKCS#8 P-256 key: {0}")]
pub struct AuthKeyError(#[from] jsonwebtoken::errors::Error);

/// The provider token and what makes it.
pub struct ProviderToken {
    key: EncodingKey,
    key_id: String,
    team_id: String,
    /// The token and its `iat`.
    current: Option<(String, u64)>,
}

impl std::fmt::Debug for ProviderToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key, never the token.
        f.debug_struct("ProviderToken")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("issued_at", &self.current.as_ref().map(|c| c.1))
            .finish()
    }
}

impl ProviderToken {
    /// From the `.p8` file's PEM text (PKCS#8 EC P-256).
    pub fn new(p8_pem: &[u8], key_id: &str, team_id: &str) -> Result<ProviderToken, AuthKeyError> {
        Ok(ProviderToken {
            key: EncodingKey::from_ec_pem(p8_pem)?,
            key_id: key_id.to_string(),
            team_id: team_id.to_string(),
            current: None,
        })
    }

    /// The token to send at UNIX time `now`, made anew when there is none
    /// or it is [`RENEW_AFTER_SECS`] old (or `now` went backwards past it).
    pub fn bearer(&mut self, now: u64) -> Result<String, jsonwebtoken::errors::Error> {
        if let Some((token, iat)) = &self.current {
            if now >= *iat && now - iat < RENEW_AFTER_SECS {
                return Ok(token.clone());
            }
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        header.typ = None;
        let claims = serde_json::json!({ "iss": self.team_id, "iat": now });
        let token = jsonwebtoken::encode(&header, &claims, &self.key)?;
        log::info!(
            "APNs provider token made (key {}, team {})",
            self.key_id,
            self.team_id
        );
        self.current = Some((token.clone(), now));
        Ok(token)
    }

    /// APNs said the token expired: make a new one next time, unless that
    /// would be a renewal Apple refuses.
    pub fn expired(&mut self, now: u64) {
        if let Some((_, iat)) = &self.current {
            if now.saturating_sub(*iat) >= MIN_AGE_SECS {
                self.current = None;
            }
        }
    }

    /// The `iat` of the current token.
    #[cfg(test)]
    pub fn issued_at(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn key() -> (String, String) {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        (kp.serialize_pem(), kp.public_key_pem())
    }

    #[test]
    fn the_token_is_es256_with_kid_iss_iat_and_verifies() {
        let (private, public) = key();
        let mut t = ProviderToken::new(private.as_bytes(), "KEYID12345", "TEAM123456").unwrap();
        let jwt = t.bearer(1_700_000_000).unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("KEYID12345"));
        let mut v = Validation::new(Algorithm::ES256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &jwt,
            &DecodingKey::from_ec_pem(public.as_bytes()).unwrap(),
            &v,
        )
        .unwrap();
        assert_eq!(
            data.claims,
            serde_json::json!({"iss": "TEAM123456", "iat": 1_700_000_000u64})
        );
    }

    #[test]
    fn reused_then_renewed_and_never_too_often() {
        let (private, _) = key();
        let mut t = ProviderToken::new(private.as_bytes(), "K", "T").unwrap();
        let first = t.bearer(1_000).unwrap();
        assert_eq!(t.bearer(1_000 + RENEW_AFTER_SECS - 1).unwrap(), first);
        // An "expired" answer 10 minutes in does not renew (Apple would refuse).
        t.expired(1_000 + 600);
        assert_eq!(t.bearer(1_000 + 601).unwrap(), first);
        // 20 minutes in it does.
        t.expired(1_000 + MIN_AGE_SECS);
        let second = t.bearer(1_000 + MIN_AGE_SECS).unwrap();
        assert_ne!(second, first);
        assert_eq!(t.issued_at(), Some(1_000 + MIN_AGE_SECS));
        let third = t.bearer(1_000 + MIN_AGE_SECS + RENEW_AFTER_SECS).unwrap();
        assert_ne!(third, second);
    }

    #[test]
    fn a_bad_key_is_an_error() {
        assert!(ProviderToken::new(b"not a key", "K", "T").is_err());
    }
}
