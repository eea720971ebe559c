//! Server-side sessions: the `Session` model, the `SessionStore` trait with
//! its Redis (one server, Sentinel or Cluster) and in-memory stores, the
//! session cookie codec, the in-process session cache, the per-user index
//! that revocation uses, and the count of live sessions.
//!
//! The browser holds only a signed random id ([`cookie`]). Each record is
//! stored under the SHA-256 of its secret (the session id, or the `state` of
//! a login flow) and sealed with ChaCha20-Poly1305 under a key derived from
//! that same secret. Reading the store alone therefore yields neither a usable
//! cookie nor the tokens inside the records.

pub mod cache;
pub mod cookie;
pub mod revocation;
pub mod store;
pub mod tally;
#[cfg(test)]
pub(crate) mod test_redis;

use crate::metrics::metrics;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use cache::{SessionCache, SESSION_CACHE_MAX_ENTRIES};
pub use cookie::{CookieCodec, DecodedCookie, SessionId};
pub use revocation::{RevocationKey, REVOCATION_CHANNEL};
pub use store::{MemoryStore, RedisStore, SessionStore, StoreError, Subscription};

/// Namespace of session records in the store.
const SESSION_PREFIX: &str = "portcullis:session:";

/// The verified identity of a signed-in user, as the dashboard receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The ID token's `sub` claim: the provider's stable user id.
    pub subject: String,
    /// The `email` claim.
    pub email: Option<String>,
    /// The `preferred_username` claim.
    pub preferred_username: Option<String>,
    /// The `name` claim.
    pub name: Option<String>,
    /// The `groups` claim.
    pub groups: Vec<String>,
}

/// One signed-in browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Who is signed in.
    pub identity: Identity,
    /// The raw ID token, kept for `id_token_hint` at sign-out.
    pub id_token: String,
    /// The access token from the provider.
    pub access_token: String,
    /// When the access token expires (from `expires_in`), seconds since the
    /// Unix epoch; `None` when the provider did not say.
    #[serde(default)]
    pub access_token_expires_at: Option<u64>,
    /// No refresh is tried before this time, seconds since the Unix epoch. It
    /// is set after a failed refresh, so that requests do not all retry a
    /// provider that is down.
    #[serde(default)]
    pub refresh_not_before: Option<u64>,
    /// The refresh token, when the provider issued one.
    pub refresh_token: Option<String>,
    /// The provider's session id (`sid` claim), for back-channel logout.
    pub provider_session_id: Option<String>,
    /// Names of the user's groups in the directory, read at login when
    /// `access.groups_source` includes SCIM; `None` when they were not read.
    #[serde(default)]
    pub directory_groups: Option<Vec<String>>,
    /// Login time, seconds since the Unix epoch.
    pub created_at: u64,
    /// End of the session, seconds since the Unix epoch.
    pub expires_at: u64,
}

impl Session {
    /// Tells whether the session has passed its end.
    pub fn is_expired(&self) -> bool {
        unix_now() >= self.expires_at
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Sealed, typed records in a [`SessionStore`], each under a secret only
/// the client holds.
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    ttl: Duration,
    cache: Arc<SessionCache>,
}

impl Sessions {
    /// Wraps `store`; sessions live for `ttl` after login. The session cache
    /// is off until [`with_cache_ttl`](Self::with_cache_ttl) turns it on.
    pub fn new(store: Arc<dyn SessionStore>, ttl: Duration) -> Self {
        Sessions {
            store,
            ttl,
            cache: Arc::new(SessionCache::new(Duration::ZERO, 0)),
        }
    }

    /// Serves a loaded session from memory for `cache_ttl` (zero: never).
    /// The cache only serves while [`follow_revocations`](Self::follow_revocations)
    /// runs and is subscribed.
    pub fn with_cache_ttl(mut self, cache_ttl: Duration) -> Self {
        self.cache = Arc::new(SessionCache::new(cache_ttl, SESSION_CACHE_MAX_ENTRIES));
        self
    }

    /// The in-process session cache.
    pub fn cache(&self) -> &SessionCache {
        &self.cache
    }

    /// The underlying store, for readiness checks.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// The lifetime of a new session.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Stores `session` under a fresh random id, adds it to the per-user
    /// index (see [`revocation`]) and returns the id.
    pub async fn create(&self, session: &Session) -> Result<SessionId, StoreError> {
        let id = SessionId::generate();
        let (key, sealed) = seal_record(SESSION_PREFIX, id.as_bytes(), session);
        let indexes = revocation::index_keys(session);
        let lifetime = session_lifetime(session);
        let stored = self
            .store
            .put_indexed(&key, sealed, lifetime, &indexes)
            .await;
        metrics().record_store("create", &stored);
        stored?;
        self.track_live(&key, lifetime).await;
        Ok(id)
    }

    /// Loads the session `id`, treating an expired or unreadable record as
    /// absent. A session loaded less than the cache TTL ago comes from the
    /// in-process cache.
    pub async fn load(&self, id: &SessionId) -> Result<Option<Arc<Session>>, StoreError> {
        let key = storage_key(SESSION_PREFIX, id.as_bytes());
        if let Some(session) = self.cache.get(&key) {
            return Ok(Some(session));
        }
        let generation = self.cache.generation();
        let loaded = self.get_sealed(SESSION_PREFIX, id.as_bytes()).await;
        metrics().record_store("load", &loaded);
        let session: Option<Session> = loaded?;
        let session = session.filter(|s| !s.is_expired()).map(Arc::new);
        if let Some(session) = &session {
            self.cache.insert(&key, session, generation);
        }
        Ok(session)
    }

    /// Loads the session `id` from the store, past the in-process cache, for
    /// decisions that another replica's write may have changed.
    pub async fn load_uncached(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let loaded = self.get_sealed(SESSION_PREFIX, id.as_bytes()).await;
        metrics().record_store("load", &loaded);
        let session: Option<Session> = loaded?;
        Ok(session.filter(|s| !s.is_expired()))
    }

    /// Replaces the record of session `id` with `session`, keeping the id,
    /// and returns false when the session no longer exists (it was signed
    /// out or revoked meanwhile), so an update never brings it back. Other
    /// replicas drop their cached copies.
    pub async fn update(&self, id: &SessionId, session: &Session) -> Result<bool, StoreError> {
        let (key, sealed) = seal_record(SESSION_PREFIX, id.as_bytes(), session);
        let updated = self
            .store
            .put_existing(&key, sealed, session_lifetime(session))
            .await;
        metrics().record_store("update", &updated);
        let updated = updated?;
        self.forget(&[key]).await;
        Ok(updated)
    }

    /// Deletes the session `id`, here and in every replica's cache.
    pub async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let key = storage_key(SESSION_PREFIX, id.as_bytes());
        let deleted = self.store.delete(&key).await;
        metrics().record_store("delete", &deleted);
        deleted?;
        metrics()
            .sessions_ended
            .with_label_values(&["deleted"])
            .inc();
        let keys = [key];
        self.untrack_live(&keys).await;
        self.forget(&keys).await;
        Ok(())
    }

    /// Stores `value` sealed under `secret` in the namespace `prefix`, as a
    /// record that the store may evict before `ttl` to make room (see
    /// [`SessionStore::put_evictable`]). Login flows are such records: losing
    /// one costs its browser a new login, while a store too full to take
    /// another flow would fail every login.
    pub async fn put_sealed_evictable<T: Serialize>(
        &self,
        prefix: &str,
        secret: &[u8],
        value: &T,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let (key, sealed) = seal_record(prefix, secret, value);
        self.store.put_evictable(&key, sealed, ttl).await
    }

    /// Reads the record sealed under `secret` in the namespace `prefix`.
    pub async fn get_sealed<T: DeserializeOwned>(
        &self,
        prefix: &str,
        secret: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let key = storage_key(prefix, secret);
        let sealed = self.store.get(&key).await?;
        Ok(sealed.and_then(|bytes| unseal(secret, &key, &bytes)))
    }

    /// Removes and returns the record sealed under `secret`, atomically.
    pub async fn take_sealed<T: DeserializeOwned>(
        &self,
        prefix: &str,
        secret: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let key = storage_key(prefix, secret);
        let sealed = self.store.take(&key).await?;
        Ok(sealed.and_then(|bytes| unseal(secret, &key, &bytes)))
    }
}

/// Returns the time left until `session` ends, at least one second.
fn session_lifetime(session: &Session) -> Duration {
    Duration::from_secs(session.expires_at.saturating_sub(unix_now()).max(1))
}

/// Serializes `value` and seals it under `secret`; returns the store key and
/// the sealed bytes.
fn seal_record<T: Serialize>(prefix: &str, secret: &[u8], value: &T) -> (String, Vec<u8>) {
    let key = storage_key(prefix, secret);
    let plaintext = serde_json::to_vec(value).expect("session records serialize to JSON");
    let sealed = seal(secret, key.as_bytes(), &plaintext);
    (key, sealed)
}

/// The store key of the record whose secret is `secret`: a hash, so the store
/// never holds the secret itself.
fn storage_key(prefix: &str, secret: &[u8]) -> String {
    const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(secret);
    let mut key = String::with_capacity(prefix.len() + 64);
    key.push_str(prefix);
    for byte in digest {
        key.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        key.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
    }
    key
}

fn sealing_key(secret: &[u8]) -> Key {
    let mut hasher = Sha256::new();
    hasher.update(b"portcullis record seal v1\0");
    hasher.update(secret);
    hasher.finalize()
}

const NONCE_LEN: usize = 12;

fn seal(secret: &[u8], associated: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(&sealing_key(secret));
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: associated,
            },
        )
        .expect("ChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&ciphertext);
    sealed
}

fn unseal<T: DeserializeOwned>(secret: &[u8], key: &str, sealed: &[u8]) -> Option<T> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let cipher = ChaCha20Poly1305::new(&sealing_key(secret));
    let plaintext = cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: key.as_bytes(),
            },
        )
        .ok()?;
    serde_json::from_slice(&plaintext).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip() {
        let sealed = seal(b"secret", b"key", b"{\"a\":1}");
        let value: serde_json::Value = unseal(b"secret", "key", &sealed).expect("unseals");
        assert_eq!(value["a"], 1);
    }

    #[test]
    fn unseal_rejects_wrong_secret_or_key() {
        let sealed = seal(b"secret", b"key", b"{}");
        assert!(unseal::<serde_json::Value>(b"other", "key", &sealed).is_none());
        assert!(unseal::<serde_json::Value>(b"secret", "other", &sealed).is_none());
        assert!(unseal::<serde_json::Value>(b"secret", "key", &sealed[..5]).is_none());
    }

    #[test]
    fn storage_key_hides_the_secret() {
        let key = storage_key(SESSION_PREFIX, b"abc");
        assert!(key.starts_with(SESSION_PREFIX));
        assert!(!key.contains("abc"));
        assert_eq!(key.len(), SESSION_PREFIX.len() + 64);
    }
}
