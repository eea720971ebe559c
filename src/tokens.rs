//! API tokens: the bearer credentials SCIM clients (Okta, Entra) present on
//! `/scim/v2`.
//!
//! A token is `wxt_` followed by 43 characters, the unpadded URL-safe base64
//! of 32 bytes from the operating system's random number generator, so it
//! carries 256 bits of entropy. The directory stores only its SHA-256 hash.
//! A slow password hash would add nothing, because a 256-bit space cannot be
//! searched by brute force, and a fast hash keeps verification cheap on
//! every request.
//! The plaintext is shown once when the token is generated and is never
//! stored or logged.
//!
//! [`verify`] checks a presented token: the format first (no database query
//! for garbage), then the hash lookup, a constant-time comparison of the
//! hashes, revocation, and a `last_used` update at most once per
//! [`LAST_USED_INTERVAL`].

use std::fmt;
use std::fmt::Write as _;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::directory::{Directory, DirectoryError};

/// The prefix of every API token, so secret scanners and people can tell
/// one apart.
pub const TOKEN_PREFIX: &str = "wxt_";

/// Random bytes in a token: 256 bits.
const TOKEN_RANDOM_BYTES: usize = 32;

/// Length of the base64 part: 32 bytes are 43 characters without padding.
const TOKEN_SECRET_CHARS: usize = 43;

/// [`verify`] writes `last_used` only when the stored value is older than
/// this, so verification does not cost a database write on every request.
/// Requests that read the same stale value at once may each write it.
pub const LAST_USED_INTERVAL: TimeDelta = TimeDelta::seconds(60);

/// A token's plaintext, held only between generation and showing it once.
/// `Debug` prints it redacted, and it implements no `Display`, so it cannot
/// reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenPlaintext(String);

impl TokenPlaintext {
    /// Returns the plaintext, to show it to the operator once.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenPlaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenPlaintext(\"wxt_[redacted]\")")
    }
}

/// A stored API token: everything but the plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// A short random identifier (`tok_` and 12 hex digits) used to list and
    /// revoke the token without knowing it.
    pub id: String,
    /// The operator's label, such as "okta-production".
    pub name: String,
    /// SHA-256 of the plaintext, lower-case hex.
    pub hash: String,
    /// When the token was generated, truncated to microseconds.
    pub created: DateTime<Utc>,
    /// The last successful verification, within [`LAST_USED_INTERVAL`].
    pub last_used: Option<DateTime<Utc>>,
    /// When the token was revoked; a revoked token never verifies.
    pub revoked: Option<DateTime<Utc>>,
}

impl TokenRecord {
    /// Generates a token named `name` and its record, ready for
    /// [`Directory::insert_token`].
    pub fn generate(name: &str) -> (TokenPlaintext, TokenRecord) {
        let (plaintext, hash) = generate();
        let record = TokenRecord {
            id: new_token_id(),
            name: name.to_owned(),
            hash,
            created: crate::directory::now(),
            last_used: None,
            revoked: None,
        };
        (plaintext, record)
    }
}

/// Generates a token from the operating system's random number generator;
/// returns its plaintext and its hash.
pub fn generate() -> (TokenPlaintext, String) {
    let mut random = [0_u8; TOKEN_RANDOM_BYTES];
    OsRng.fill_bytes(&mut random);
    let plaintext = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
    let hash = hash_token(&plaintext);
    (TokenPlaintext(plaintext), hash)
}

/// Hashes a token with SHA-256, as lower-case hex.
pub fn hash_token(token: &str) -> String {
    to_hex(&Sha256::digest(token.as_bytes()))
}

/// Checks that `presented` has the shape of a token: the prefix and 43
/// characters of the URL-safe base64 alphabet.
pub fn is_well_formed(presented: &str) -> bool {
    let Some(secret) = presented.strip_prefix(TOKEN_PREFIX) else {
        return false;
    };
    secret.len() == TOKEN_SECRET_CHARS
        && secret
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Verifies a presented bearer token; returns its record when it is a
/// stored, unrevoked token. A malformed token is rejected without a
/// database query.
///
/// A failure to record `last_used` is logged and does not reject the token,
/// because the token itself was verified.
pub async fn verify(
    directory: &dyn Directory,
    presented: &str,
) -> Result<Option<TokenRecord>, DirectoryError> {
    if !is_well_formed(presented) {
        return Ok(None);
    }
    let computed = hash_token(presented);
    let Some(mut record) = directory.find_token(&computed).await? else {
        return Ok(None);
    };
    // The database matched on the hash already. Comparing again in constant
    // time keeps the decision itself free of timing differences whatever
    // the backend's index does.
    if !bool::from(record.hash.as_bytes().ct_eq(computed.as_bytes())) {
        return Ok(None);
    }
    if record.revoked.is_some() {
        return Ok(None);
    }

    let now = crate::directory::now();
    if is_last_used_stale(record.last_used, now) {
        match directory.touch_token(&record.id, now).await {
            Ok(()) => record.last_used = Some(now),
            Err(error) => tracing::warn!(
                token_id = %record.id,
                error = %error,
                "failed to record the API token's last use"
            ),
        }
    }
    Ok(Some(record))
}

fn is_last_used_stale(last_used: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    match last_used {
        None => true,
        Some(last_used) => now - last_used >= LAST_USED_INTERVAL,
    }
}

/// Creates a token id: `tok_` and 12 random hex digits. 48 bits make a
/// collision among a deployment's handful of tokens negligible, and a
/// collision would fail the insert rather than overwrite a token.
fn new_token_id() -> String {
    let mut random = [0_u8; 6];
    OsRng.fill_bytes(&mut random);
    format!("tok_{}", to_hex(&random))
}

fn to_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use async_trait::async_trait;
    use serde_json::Value;

    use super::*;
    use crate::directory::{Listing, Lookup, Page, ResourceKind, StoredResource};

    #[test]
    fn generate_has_prefix_length_and_alphabet() {
        let (plaintext, hash) = generate();
        let token = plaintext.expose_secret();
        assert!(token.starts_with("wxt_"), "{token}");
        assert_eq!(token.len(), 4 + 43);
        assert!(is_well_formed(token));
        assert_eq!(hash, hash_token(token));
        assert_eq!(hash.len(), 64);
    }

    #[test]
    fn generate_differs_every_time() {
        let (first, _) = generate();
        let (second, _) = generate();
        assert_ne!(first, second);
    }

    #[test]
    fn hash_token_is_sha256_hex() {
        // The SHA-256 test vector for "abc" from FIPS 180-2, appendix B.1.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn is_well_formed_cases() {
        let valid_secret = "A".repeat(43);
        let cases = [
            (format!("wxt_{valid_secret}"), true),
            (format!("wxt_{}", "-_09az".repeat(7) + "Z"), true),
            (format!("WXT_{valid_secret}"), false),
            (format!("wxt_{}", "A".repeat(42)), false),
            (format!("wxt_{}", "A".repeat(44)), false),
            (format!("wxt_{}=", "A".repeat(42)), false),
            (format!("wxt_{}+", "A".repeat(42)), false),
            (format!("wxt_{}/", "A".repeat(42)), false),
            (format!(" wxt_{valid_secret}"), false),
            (format!("Bearer wxt_{valid_secret}"), false),
            ("".to_owned(), false),
            ("wxt_".to_owned(), false),
        ];
        for (presented, expected) in cases {
            assert_eq!(is_well_formed(&presented), expected, "{presented:?}");
        }
    }

    #[test]
    fn plaintext_debug_is_redacted() {
        let (plaintext, _) = generate();
        let debug = format!("{plaintext:?}");
        assert!(!debug.contains(&plaintext.expose_secret()[4..]), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
    }

    #[test]
    fn token_record_generate_matches_plaintext() {
        let (plaintext, record) = TokenRecord::generate("okta");
        assert_eq!(record.hash, hash_token(plaintext.expose_secret()));
        assert_eq!(record.name, "okta");
        assert!(record.id.starts_with("tok_"), "{}", record.id);
        assert_eq!(record.id.len(), 4 + 12);
        assert_eq!(record.last_used, None);
        assert_eq!(record.revoked, None);
    }

    /// A directory holding one token that counts the token queries made.
    struct OneTokenDirectory {
        token: Mutex<TokenRecord>,
        finds: AtomicUsize,
        touches: AtomicUsize,
    }

    impl OneTokenDirectory {
        fn new(token: TokenRecord) -> Self {
            OneTokenDirectory {
                token: Mutex::new(token),
                finds: AtomicUsize::new(0),
                touches: AtomicUsize::new(0),
            }
        }

        fn token(&self) -> std::sync::MutexGuard<'_, TokenRecord> {
            self.token.lock().expect("token lock not poisoned")
        }
    }

    #[async_trait]
    impl Directory for OneTokenDirectory {
        async fn create(
            &self,
            _: ResourceKind,
            _: Value,
        ) -> Result<StoredResource, DirectoryError> {
            unreachable!("verify never writes resources")
        }
        async fn get(
            &self,
            _: ResourceKind,
            _: &str,
        ) -> Result<Option<StoredResource>, DirectoryError> {
            unreachable!("verify never reads resources")
        }
        async fn replace(
            &self,
            _: ResourceKind,
            _: &str,
            _: Value,
            _: Option<i64>,
        ) -> Result<StoredResource, DirectoryError> {
            unreachable!("verify never writes resources")
        }
        async fn delete(&self, _: ResourceKind, _: &str) -> Result<bool, DirectoryError> {
            unreachable!("verify never deletes resources")
        }
        async fn list(
            &self,
            _: ResourceKind,
            _: Option<&Lookup>,
            _: Option<Page>,
        ) -> Result<Listing, DirectoryError> {
            unreachable!("verify never lists resources")
        }
        async fn count(&self, _: ResourceKind) -> Result<u64, DirectoryError> {
            unreachable!("verify never counts resources")
        }
        async fn groups_of_user(&self, _: &str) -> Result<Vec<(String, String)>, DirectoryError> {
            unreachable!("verify never reads groups")
        }
        async fn ping(&self) -> Result<(), DirectoryError> {
            Ok(())
        }
        async fn insert_token(&self, _: &TokenRecord) -> Result<(), DirectoryError> {
            unreachable!("verify never inserts tokens")
        }
        async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, DirectoryError> {
            self.finds.fetch_add(1, Ordering::SeqCst);
            let token = self.token();
            Ok((token.hash == hash).then(|| token.clone()))
        }
        async fn list_tokens(&self) -> Result<Vec<TokenRecord>, DirectoryError> {
            Ok(vec![self.token().clone()])
        }
        async fn revoke_token(&self, _: &str) -> Result<bool, DirectoryError> {
            unreachable!("verify never revokes tokens")
        }
        async fn touch_token(&self, _: &str, when: DateTime<Utc>) -> Result<(), DirectoryError> {
            self.touches.fetch_add(1, Ordering::SeqCst);
            self.token().last_used = Some(when);
            Ok(())
        }
    }

    #[tokio::test]
    async fn verify_rejects_malformed_without_query() {
        let (_, record) = TokenRecord::generate("okta");
        let directory = OneTokenDirectory::new(record);
        for presented in [
            "",
            "wxt_short",
            "Bearer x",
            "wxt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ] {
            let verified = verify(&directory, presented).await.expect("verify");
            assert_eq!(verified, None, "{presented:?}");
        }
        assert_eq!(directory.finds.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn verify_accepts_stored_token() {
        let (plaintext, record) = TokenRecord::generate("okta");
        let directory = OneTokenDirectory::new(record.clone());
        let verified = verify(&directory, plaintext.expose_secret())
            .await
            .expect("verify")
            .expect("stored token verifies");
        assert_eq!(verified.id, record.id);
        assert!(verified.last_used.is_some());
    }

    #[tokio::test]
    async fn verify_rejects_unknown_and_revoked() {
        let (plaintext, mut record) = TokenRecord::generate("okta");
        record.revoked = Some(Utc::now());
        let directory = OneTokenDirectory::new(record);
        let revoked = verify(&directory, plaintext.expose_secret())
            .await
            .expect("verify");
        assert_eq!(revoked, None);

        let (other, _) = generate();
        let unknown = verify(&directory, other.expose_secret())
            .await
            .expect("verify");
        assert_eq!(unknown, None);
        assert_eq!(directory.touches.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn verify_touches_at_most_once_a_minute() {
        let (plaintext, record) = TokenRecord::generate("okta");
        let directory = OneTokenDirectory::new(record);
        for _ in 0..5 {
            verify(&directory, plaintext.expose_secret())
                .await
                .expect("verify")
                .expect("stored token verifies");
        }
        assert_eq!(directory.touches.load(Ordering::SeqCst), 1);

        // A last use older than the interval is refreshed.
        let long_ago = Utc::now() - LAST_USED_INTERVAL - TimeDelta::seconds(1);
        directory.token().last_used = Some(long_ago);
        let verified = verify(&directory, plaintext.expose_secret())
            .await
            .expect("verify")
            .expect("stored token verifies");
        assert_eq!(directory.touches.load(Ordering::SeqCst), 2);
        assert!(verified.last_used > Some(long_ago));
    }
}
