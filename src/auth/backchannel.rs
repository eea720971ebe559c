//! OpenID Connect Back-Channel Logout 1.0 at `/oauth2/backchannel_logout`:
//! the provider POSTs a signed logout token (form field `logout_token`) when
//! a user's session ends there, and portcullis ends the sessions made from
//! it.
//!
//! A logout token is accepted only when all of these hold:
//!
//! - its signature verifies against the provider's JWKS, with the same
//!   reload on an unknown key id as ID tokens;
//! - `iss` is the configured issuer and `aud` contains the client id;
//! - `iat` is within the clock leeway of now, and `exp`, when present, has
//!   not passed;
//! - `events` contains the back-channel logout event and there is no `nonce`;
//! - `jti` is present and was not seen before;
//! - `sid` or `sub` is present.
//!
//! A token with `sid` ends the sessions of that provider session, and one
//! with only `sub` ends every session of the user. When a token names both
//! and no session has that `sid` (the provider put no `sid` in its ID
//! tokens), every session of the `sub` ends, so a logout is never lost.
//!
//! The signature is checked with `openidconnect`'s own key types, through
//! [`Provider::verify_signed_token`](super::Provider::verify_signed_token),
//! rather than with the `jsonwebtoken` crate: `openidconnect` has no logout
//! token verifier, but its keys already verify ID tokens, so one key cache
//! and one set of accepted algorithms serve both, and no second JWT library
//! enters the build. The claim checks are the few rules below.

use std::time::Duration;

use http::StatusCode;
use sha2::{Digest, Sha256};

use super::Auth;
use crate::session::{unix_now, RevocationKey, StoreError};
use crate::web::LocalResponse;

/// Path of the endpoint, to register at the provider as the client's
/// back-channel logout URI.
pub const BACKCHANNEL_LOGOUT_PATH: &str = "/oauth2/backchannel_logout";

/// Largest accepted request body. Logout tokens are a few hundred bytes to a
/// few KiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The member of `events` that marks a logout token.
const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Namespace of the `jti` values already used, in the session store.
const JTI_PREFIX: &str = "portcullis:logout-jti:";

/// The reason a logout token was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogoutTokenError {
    /// The form body has no `logout_token`, or more than one.
    #[error("the request has no single logout_token parameter")]
    MissingToken,
    /// The signature did not verify, or the keys could not be loaded.
    #[error("invalid signature: {0}")]
    Signature(String),
    /// The payload is not a JSON object.
    #[error("the claims are not a JSON object")]
    Malformed,
    /// `iss` is not the configured issuer.
    #[error("iss is not the configured issuer")]
    Issuer,
    /// `aud` does not contain this client's id.
    #[error("aud does not contain the client id")]
    Audience,
    /// `iat` is missing or further from now than the clock leeway.
    #[error("iat is missing or outside the clock leeway")]
    IssuedAt,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `events` lacks the back-channel logout event.
    #[error("events does not contain the back-channel logout event")]
    Events,
    /// A `nonce` is present, which marks an ID token, never a logout token.
    #[error("a logout token must not contain nonce")]
    Nonce,
    /// Neither `sid` nor `sub` is present.
    #[error("the token contains neither sid nor sub")]
    NoSubject,
    /// `jti` is missing.
    #[error("jti is missing")]
    MissingJti,
    /// This `jti` was accepted before.
    #[error("the token was already used (jti replayed)")]
    Replayed,
}

/// The expected values and the clock for the checks of the claims.
pub struct ClaimRules<'a> {
    /// The configured issuer.
    pub issuer: &'a str,
    /// This client's id.
    pub client_id: &'a str,
    /// Tolerated clock difference with the provider.
    pub leeway: Duration,
    /// The current time, seconds since the Unix epoch.
    pub now: u64,
}

/// The sessions a verified logout token ends, and its `jti`.
#[derive(Debug, PartialEq, Eq)]
pub struct LogoutTarget {
    /// The sessions of the provider session (`sid`) when the token names
    /// one, otherwise every session of the user (`sub`).
    pub key: RevocationKey,
    /// Every session of the user (`sub`), ended when `key` names a `sid`
    /// that no session has.
    pub fallback: Option<RevocationKey>,
    /// The token's unique id.
    pub jti: String,
}

/// Checks the claims of a logout token whose signature was verified.
pub fn check_logout_claims(
    payload: &[u8],
    rules: &ClaimRules<'_>,
) -> Result<LogoutTarget, LogoutTokenError> {
    use LogoutTokenError as E;
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(payload).map_err(|_| E::Malformed)?;
    let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);

    if text("iss").as_deref() != Some(rules.issuer) {
        return Err(E::Issuer);
    }
    if !audience_contains(claims.get("aud"), rules.client_id) {
        return Err(E::Audience);
    }
    check_times(&claims, rules)?;
    let events = claims.get("events").and_then(|v| v.as_object());
    if !events.is_some_and(|events| {
        events
            .get(BACKCHANNEL_LOGOUT_EVENT)
            .is_some_and(|e| e.is_object())
    }) {
        return Err(E::Events);
    }
    if claims.contains_key("nonce") {
        return Err(E::Nonce);
    }
    let (key, fallback) = match (text("sid"), text("sub")) {
        (Some(sid), sub) => (
            RevocationKey::ProviderSession(sid),
            sub.map(RevocationKey::Subject),
        ),
        (None, Some(sub)) => (RevocationKey::Subject(sub), None),
        (None, None) => return Err(E::NoSubject),
    };
    let jti = text("jti")
        .filter(|jti| !jti.is_empty())
        .ok_or(E::MissingJti)?;
    Ok(LogoutTarget { key, fallback, jti })
}

fn audience_contains(aud: Option<&serde_json::Value>, client_id: &str) -> bool {
    match aud {
        Some(serde_json::Value::String(one)) => one == client_id,
        Some(serde_json::Value::Array(many)) => many.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    }
}

fn check_times(
    claims: &serde_json::Map<String, serde_json::Value>,
    rules: &ClaimRules<'_>,
) -> Result<(), LogoutTokenError> {
    let leeway = rules.leeway.as_secs();
    let iat = claims
        .get("iat")
        .and_then(|v| v.as_u64())
        .ok_or(LogoutTokenError::IssuedAt)?;
    if iat.abs_diff(rules.now) > leeway {
        return Err(LogoutTokenError::IssuedAt);
    }
    if let Some(exp) = claims.get("exp") {
        let exp = exp.as_u64().ok_or(LogoutTokenError::Expired)?;
        if exp.saturating_add(leeway) < rules.now {
            return Err(LogoutTokenError::Expired);
        }
    }
    Ok(())
}

/// Reads the single `logout_token` of a form body.
fn logout_token_param(body: &[u8]) -> Result<String, LogoutTokenError> {
    let mut tokens = url::form_urlencoded::parse(body)
        .filter(|(name, _)| name == "logout_token")
        .map(|(_, value)| value.into_owned());
    match (tokens.next(), tokens.next()) {
        (Some(token), None) if !token.is_empty() => Ok(token),
        _ => Err(LogoutTokenError::MissingToken),
    }
}

impl Auth {
    /// Handles a back-channel logout request whose form body is `body`:
    /// verifies the logout token and ends the sessions it names. Returns 200,
    /// or 400 with `{"error":"invalid_request"}` for a rejected token.
    pub async fn backchannel_logout(&self, body: &[u8]) -> LocalResponse {
        let target = match self.verify_logout_token(body).await {
            Ok(target) => target,
            Err(error) => {
                tracing::info!(error = %error, "back-channel logout token rejected");
                return logout_error("invalid_request", &error.to_string());
            }
        };
        match self.end_sessions(target).await {
            Ok(()) => LocalResponse::json(StatusCode::OK, &serde_json::json!({})),
            Err(error) => {
                tracing::error!(error = %error, "back-channel logout cannot end sessions");
                // Back-Channel Logout 1.0 section 2.8 requires 400 whenever
                // the logout failed, so the provider can report it.
                logout_error(
                    "temporarily_unavailable",
                    "the session store is unavailable",
                )
            }
        }
    }

    /// Ends the sessions `target` names, falling back to every session of
    /// the user when no session has the token's `sid`.
    async fn end_sessions(&self, target: LogoutTarget) -> Result<(), StoreError> {
        crate::metrics::metrics()
            .revocations
            .with_label_values(&["backchannel_logout"])
            .inc();
        let kind = target.key.kind();
        let ended = self.sessions.revoke(target.key).await?;
        tracing::info!(
            by = kind,
            sessions = ended,
            "back-channel logout ended sessions"
        );
        if let (0, Some(fallback)) = (ended, target.fallback) {
            let ended = self.sessions.revoke(fallback).await?;
            tracing::info!(
                by = "sub",
                sessions = ended,
                "back-channel logout ended sessions"
            );
        }
        Ok(())
    }

    async fn verify_logout_token(&self, body: &[u8]) -> Result<LogoutTarget, LogoutTokenError> {
        let token = logout_token_param(body)?;
        let payload = self
            .provider
            .verify_signed_token(&token)
            .await
            .map_err(|e| LogoutTokenError::Signature(e.to_string()))?;
        let settings = self.provider.settings();
        let rules = ClaimRules {
            issuer: &settings.issuer,
            client_id: &settings.client_id,
            leeway: settings.clock_leeway,
            now: unix_now(),
        };
        let target = check_logout_claims(&payload, &rules)?;
        self.record_jti(&target.jti, settings.clock_leeway).await?;
        Ok(target)
    }

    /// Remembers `jti` for as long as a token carrying it could be accepted,
    /// and rejects it when it was seen already.
    // NOTE: a store error skips the replay check, so that an outage of the
    // store never blocks a logout. Revoking then fails on the same store.
    async fn record_jti(&self, jti: &str, leeway: Duration) -> Result<(), LogoutTokenError> {
        let digest = Sha256::digest(jti.as_bytes());
        let key = format!("{JTI_PREFIX}{}", hex(&digest));
        let keep = leeway * 2 + Duration::from_secs(60);
        match self.sessions.store().try_lock(&key, "used", keep).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(LogoutTokenError::Replayed),
            Err(error) => {
                tracing::warn!(error = %error, "cannot record the logout token's jti");
                Ok(())
            }
        }
    }
}

fn logout_error(code: &str, description: &str) -> LocalResponse {
    LocalResponse::json(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({ "error": code, "error_description": description }),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn rules() -> ClaimRules<'static> {
        ClaimRules {
            issuer: "https://idp.example",
            client_id: "portcullis",
            leeway: Duration::from_secs(60),
            now: NOW,
        }
    }

    fn valid_claims() -> serde_json::Value {
        json!({
            "iss": "https://idp.example",
            "aud": "portcullis",
            "iat": NOW,
            "exp": NOW + 120,
            "jti": "jti-1",
            "sid": "sid-1",
            "sub": "alice",
            "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
        })
    }

    fn check(claims: &serde_json::Value) -> Result<LogoutTarget, LogoutTokenError> {
        check_logout_claims(claims.to_string().as_bytes(), &rules())
    }

    fn with(
        change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) -> serde_json::Value {
        let mut claims = valid_claims();
        change(claims.as_object_mut().expect("claims are an object"));
        claims
    }

    #[test]
    fn valid_token_prefers_sid() {
        let target = check(&valid_claims()).expect("valid claims pass");
        assert_eq!(target.jti, "jti-1", "jti read");
        assert_eq!(
            target.key,
            RevocationKey::ProviderSession("sid-1".to_owned()),
            "sid wins over sub"
        );
        assert_eq!(
            target.fallback,
            Some(RevocationKey::Subject("alice".to_owned())),
            "sub is the fallback when no session has the sid"
        );
    }

    #[test]
    fn accepted_variants() {
        let cases = [
            (
                "aud as a list",
                with(|c| {
                    c.insert("aud".into(), json!(["other", "portcullis"]));
                }),
            ),
            (
                "only sub",
                with(|c| {
                    c.remove("sid");
                }),
            ),
            (
                "only sid",
                with(|c| {
                    c.remove("sub");
                }),
            ),
            (
                "no exp",
                with(|c| {
                    c.remove("exp");
                }),
            ),
            (
                "iat inside the leeway",
                with(|c| {
                    c.insert("iat".into(), json!(NOW - 59));
                }),
            ),
            (
                "iat ahead inside the leeway",
                with(|c| {
                    c.insert("iat".into(), json!(NOW + 59));
                }),
            ),
        ];
        for (case, claims) in cases {
            assert!(check(&claims).is_ok(), "case {case:?} was rejected");
        }
        let only_sub = check(&with(|c| {
            c.remove("sid");
        }))
        .expect("only sub passes");
        assert_eq!(
            only_sub.key,
            RevocationKey::Subject("alice".to_owned()),
            "a token without sid ends the user's sessions"
        );
    }

    #[test]
    fn rejected_claims() {
        use LogoutTokenError as E;
        let cases = [
            (
                "wrong issuer",
                with(|c| {
                    c.insert("iss".into(), json!("https://evil.example"));
                }),
                E::Issuer,
            ),
            (
                "wrong aud",
                with(|c| {
                    c.insert("aud".into(), json!("other"));
                }),
                E::Audience,
            ),
            (
                "aud list without client",
                with(|c| {
                    c.insert("aud".into(), json!(["a", "b"]));
                }),
                E::Audience,
            ),
            (
                "missing aud",
                with(|c| {
                    c.remove("aud");
                }),
                E::Audience,
            ),
            (
                "missing iat",
                with(|c| {
                    c.remove("iat");
                }),
                E::IssuedAt,
            ),
            (
                "old iat",
                with(|c| {
                    c.insert("iat".into(), json!(NOW - 61));
                }),
                E::IssuedAt,
            ),
            (
                "future iat",
                with(|c| {
                    c.insert("iat".into(), json!(NOW + 61));
                }),
                E::IssuedAt,
            ),
            (
                "expired",
                with(|c| {
                    c.insert("exp".into(), json!(NOW - 61));
                }),
                E::Expired,
            ),
            (
                "missing events",
                with(|c| {
                    c.remove("events");
                }),
                E::Events,
            ),
            (
                "other event",
                with(|c| {
                    c.insert("events".into(), json!({"urn:other": {}}));
                }),
                E::Events,
            ),
            (
                "event not an object",
                with(|c| {
                    c.insert("events".into(), json!({BACKCHANNEL_LOGOUT_EVENT: "x"}));
                }),
                E::Events,
            ),
            (
                "nonce present",
                with(|c| {
                    c.insert("nonce".into(), json!("n"));
                }),
                E::Nonce,
            ),
            (
                "neither sid nor sub",
                with(|c| {
                    c.remove("sid");
                    c.remove("sub");
                }),
                E::NoSubject,
            ),
            (
                "missing jti",
                with(|c| {
                    c.remove("jti");
                }),
                E::MissingJti,
            ),
            (
                "empty jti",
                with(|c| {
                    c.insert("jti".into(), json!(""));
                }),
                E::MissingJti,
            ),
            ("not an object", json!(["iss"]), E::Malformed),
        ];
        for (case, claims, expected) in cases {
            assert_eq!(check(&claims).map(drop), Err(expected), "case {case:?}");
        }
    }

    #[test]
    fn logout_token_param_cases() {
        let cases: [(&[u8], Option<&str>); 5] = [
            (b"logout_token=abc", Some("abc")),
            (b"other=1&logout_token=a%2Eb", Some("a.b")),
            (b"logout_token=a&logout_token=b", None),
            (b"logout_token=", None),
            (b"", None),
        ];
        for (body, expected) in cases {
            assert_eq!(
                logout_token_param(body).ok().as_deref(),
                expected,
                "body {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
