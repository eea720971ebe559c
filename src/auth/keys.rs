//! The provider's signing keys: the rate limit of on-demand JWKS refetches,
//! and verification of a compact JWS (a logout token) against a key set.
//!
//! ID tokens are verified by `openidconnect`. Logout tokens have no verifier
//! there, so [`verify_compact_jws`] checks their signature with the same
//! `openidconnect` key types and the same cached key set, and so accepts
//! exactly the asymmetric algorithms that ID token verification accepts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyUse, JwsSigningAlgorithm};
use serde::Deserialize;

/// Errors verifying a compact JWS.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwsError {
    /// The token is not three base64url parts with a JSON header.
    #[error("malformed JWS: {0}")]
    Malformed(&'static str),
    /// The header names `none`, an HMAC algorithm or an unknown one.
    #[error("JWS algorithm not accepted")]
    AlgorithmRejected,
    /// No key of the set has this `kid` and fits the algorithm.
    #[error("no signing key matches the JWS header")]
    NoMatchingKey,
    /// A matching key exists but the signature does not verify.
    #[error("JWS signature is invalid")]
    InvalidSignature,
}

/// Allows at most one on-demand refetch per cooldown, so tokens with made-up
/// key ids cannot make portcullis flood the provider with JWKS requests.
pub struct RefetchGate {
    cooldown: Duration,
    last: Mutex<Option<Instant>>,
}

impl RefetchGate {
    /// Creates a gate that opens once per `cooldown`.
    pub fn new(cooldown: Duration) -> Self {
        RefetchGate {
            cooldown,
            last: Mutex::new(None),
        }
    }

    /// Returns true, and starts a new cooldown, when no refetch started within
    /// the cooldown before `now`.
    pub fn try_start(&self, now: Instant) -> bool {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = last.is_none_or(|at| now.saturating_duration_since(at) >= self.cooldown);
        if open {
            *last = Some(now);
        }
        open
    }
}

#[derive(Deserialize)]
struct JwsHeader {
    alg: CoreJwsSigningAlgorithm,
    #[serde(default)]
    kid: Option<String>,
}

/// The parts of a compact JWS, decoded but not yet verified.
pub struct CompactJws<'a> {
    header_and_payload: &'a str,
    header: JwsHeader,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl<'a> CompactJws<'a> {
    /// Splits and decodes `token`; nothing is verified yet.
    pub fn parse(token: &'a str) -> Result<Self, JwsError> {
        let mut parts = token.split('.');
        let (Some(encoded_header), Some(encoded_payload), Some(encoded_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed("expected three dot-separated parts"));
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part);
        let header_bytes =
            decode(encoded_header).map_err(|_| JwsError::Malformed("header encoding"))?;
        let header: JwsHeader = serde_json::from_slice(&header_bytes)
            .map_err(|_| JwsError::Malformed("header is not a JWS header"))?;
        let payload =
            decode(encoded_payload).map_err(|_| JwsError::Malformed("payload encoding"))?;
        let signature =
            decode(encoded_signature).map_err(|_| JwsError::Malformed("signature encoding"))?;
        Ok(CompactJws {
            header_and_payload: &token[..encoded_header.len() + 1 + encoded_payload.len()],
            header,
            payload,
            signature,
        })
    }

    /// The `kid` of the header.
    pub fn key_id(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// Checks the signature against the keys of `keys` that fit the header,
    /// and returns the payload when one of them verifies it.
    pub fn verify(&self, keys: &CoreJsonWebKeySet) -> Result<&[u8], JwsError> {
        let alg = &self.header.alg;
        if alg.uses_shared_secret() || alg.key_type().is_none() {
            return Err(JwsError::AlgorithmRejected);
        }
        let candidates: Vec<&CoreJsonWebKey> =
            keys.keys().iter().filter(|key| self.fits(key)).collect();
        if candidates.is_empty() {
            return Err(JwsError::NoMatchingKey);
        }
        let message = self.header_and_payload.as_bytes();
        let verified = candidates
            .iter()
            .any(|key| key.verify_signature(alg, message, &self.signature).is_ok());
        if verified {
            Ok(&self.payload)
        } else {
            Err(JwsError::InvalidSignature)
        }
    }

    /// Tells whether `key` may check this token: same `kid` when the header
    /// has one, a signing key of the algorithm's key type, and no conflicting
    /// `alg` on the key.
    fn fits(&self, key: &CoreJsonWebKey) -> bool {
        let alg = &self.header.alg;
        if let Some(kid) = &self.header.kid {
            if key.key_id().map(|id| id.as_str()) != Some(kid.as_str()) {
                return false;
            }
        }
        if key
            .key_use()
            .is_some_and(|key_use| !key_use.allows_signature())
        {
            return false;
        }
        if alg.key_type().as_ref() != Some(key.key_type()) {
            return false;
        }
        match key.signing_alg() {
            JsonWebKeyAlgorithm::Unspecified => true,
            JsonWebKeyAlgorithm::Algorithm(key_alg) => key_alg == alg,
            JsonWebKeyAlgorithm::Unsupported => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refetch_gate_opens_once_per_cooldown() {
        let start = Instant::now();
        let gate = RefetchGate::new(Duration::from_secs(30));
        let cases = [
            (0, true, "first refetch"),
            (0, false, "same instant"),
            (1, false, "one second later"),
            (29, false, "just inside the cooldown"),
            (30, true, "cooldown over"),
            (45, false, "inside the second cooldown"),
            (61, true, "second cooldown over"),
        ];
        for (seconds, expected, case) in cases {
            let now = start + Duration::from_secs(seconds);
            assert_eq!(gate.try_start(now), expected, "case {case:?}");
        }
    }

    #[test]
    fn refetch_gate_under_a_flood() {
        let start = Instant::now();
        let gate = RefetchGate::new(Duration::from_secs(30));
        let opened = (0..1000u64)
            .filter(|i| gate.try_start(start + Duration::from_millis(i * 10)))
            .count();
        assert_eq!(
            opened, 1,
            "1000 attempts within 10 s opened the gate {opened} times"
        );
    }

    #[test]
    fn malformed_tokens() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#);
        let cases = [
            ("empty", String::new()),
            ("two parts", format!("{header}.e30")),
            ("four parts", format!("{header}.e30.sig.x")),
            ("header not base64", "@@.e30.c2ln".to_owned()),
            (
                "header not JSON",
                format!("{}.e30.c2ln", URL_SAFE_NO_PAD.encode(b"nope")),
            ),
            ("payload not base64", format!("{header}.@@.c2ln")),
        ];
        for (case, token) in cases {
            assert!(
                matches!(CompactJws::parse(&token), Err(JwsError::Malformed(_))),
                "case {case:?} was not rejected as malformed"
            );
        }
    }

    #[test]
    fn rejected_algorithms() {
        let keys = CoreJsonWebKeySet::new(Vec::new());
        for alg in ["none", "HS256", "HS512"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
            let token = format!("{header}.e30.");
            let parsed = CompactJws::parse(&token);
            let result = parsed.and_then(|jws| jws.verify(&keys).map(drop));
            assert!(
                matches!(
                    result,
                    Err(JwsError::AlgorithmRejected) | Err(JwsError::Malformed(_))
                ),
                "alg {alg} was not rejected: {result:?}"
            );
        }
    }

    #[test]
    fn unknown_kid_has_no_matching_key() {
        let key: CoreJsonWebKey = serde_json::from_str(
            r#"{"kty":"RSA","kid":"known","use":"sig","alg":"RS256","n":"AQAB","e":"AQAB"}"#,
        )
        .expect("valid JWK");
        let keys = CoreJsonWebKeySet::new(vec![key]);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"other"}"#);
        let token = format!("{header}.e30.c2ln");
        let jws = CompactJws::parse(&token).expect("well-formed");
        assert_eq!(jws.key_id(), Some("other"), "kid read from the header");
        assert_eq!(
            jws.verify(&keys).map(drop),
            Err(JwsError::NoMatchingKey),
            "a kid absent from the set"
        );
    }
}
