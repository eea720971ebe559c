//! The in-process session cache: a session loaded a moment ago is served
//! again without a store round trip.
//!
//! With Redis the cache is only used while this replica hears the
//! revocations that every replica publishes (see [`super::revocation`]),
//! because a cached copy of a revoked or signed-out session must go within a
//! second. While that subscription is down, every load reads the store. The
//! in-memory store has no other replica, and every change to it invalidates
//! the cache in the same process, so there the cache is always used: it saves
//! decrypting and parsing the sealed record on every request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::Session;

/// Most sessions the cache holds. Each entry is a decoded session of a few
/// KiB, so a full cache stays under about 50 MiB. When it is full, expired
/// entries are swept, and a session that still finds no room is simply not
/// cached.
pub const SESSION_CACHE_MAX_ENTRIES: usize = 10_000;

/// Recently loaded sessions, keyed by their storage key.
pub struct SessionCache {
    /// How long a loaded session is served from memory; zero turns the
    /// cache off.
    ttl: Duration,
    max_entries: usize,
    /// Whether revocations are being received, and so whether the cache may
    /// serve sessions at all.
    live: AtomicBool,
    /// Grows with every invalidation. A load that started before an
    /// invalidation must not cache what it read, because the record may
    /// have been revoked after the read.
    generation: AtomicU64,
    entries: Mutex<HashMap<String, CachedSession>>,
}

struct CachedSession {
    session: Arc<Session>,
    loaded_at: Instant,
}

impl SessionCache {
    /// Creates an empty cache that serves entries for `ttl` once it is
    /// [`set_live`](Self::set_live).
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        SessionCache {
            ttl,
            max_entries,
            live: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Tells whether the cache is configured on (a non-zero TTL).
    pub fn is_enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// Tells whether the cache currently serves sessions.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Turns serving on or off. Either way every entry is dropped, because
    /// revocations published while this replica was not listening are lost.
    pub fn set_live(&self, live: bool) {
        self.clear();
        self.live.store(live, Ordering::Release);
    }

    /// Returns the cached session under `key` if it was loaded less than the
    /// TTL ago and has not expired.
    pub fn get(&self, key: &str) -> Option<Arc<Session>> {
        if !self.is_live() || !self.is_enabled() {
            return None;
        }
        let entries = self.lock();
        let cached = entries.get(key)?;
        let fresh = cached.loaded_at.elapsed() < self.ttl && !cached.session.is_expired();
        fresh.then(|| cached.session.clone())
    }

    /// Returns the current generation, to pass to [`insert`](Self::insert)
    /// after reading the store.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Caches `session` under `key`, unless an invalidation happened since
    /// `generation` was read or the cache is full.
    pub fn insert(&self, key: &str, session: &Arc<Session>, generation: u64) {
        if !self.is_live() || !self.is_enabled() {
            return;
        }
        let mut entries = self.lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= self.max_entries && !entries.contains_key(key) {
            let ttl = self.ttl;
            entries.retain(|_, cached| cached.loaded_at.elapsed() < ttl);
            if entries.len() >= self.max_entries {
                return;
            }
        }
        entries.insert(
            key.to_owned(),
            CachedSession {
                session: Arc::clone(session),
                loaded_at: Instant::now(),
            },
        );
    }

    /// Drops the entries under `keys`.
    pub fn invalidate<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        for key in keys {
            entries.remove(key);
        }
    }

    /// Drops the entries whose session `is_match` selects and returns how
    /// many there were. Unlike [`invalidate`](Self::invalidate) this needs
    /// no storage keys, so it works while the store cannot list them.
    pub fn invalidate_matching(&self, is_match: impl Fn(&Session) -> bool) -> usize {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let before = entries.len();
        entries.retain(|_, cached| !is_match(&cached.session));
        before - entries.len()
    }

    /// Drops every entry.
    pub fn clear(&self) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Returns the number of entries, fresh or not.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Tells whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, CachedSession>> {
        // Every critical section is a single map operation, so a panic
        // cannot leave the map half-updated.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{unix_now, Identity};

    fn session(expires_in: u64) -> Arc<Session> {
        Arc::new(Session {
            identity: Identity {
                subject: "alice".into(),
                email: None,
                preferred_username: None,
                name: None,
                groups: Vec::new(),
            },
            id_token: String::new(),
            access_token: String::new(),
            access_token_expires_at: None,
            refresh_not_before: None,
            refresh_token: None,
            provider_session_id: None,
            directory_groups: None,
            created_at: unix_now(),
            expires_at: unix_now() + expires_in,
        })
    }

    fn live_cache(ttl: Duration, max_entries: usize) -> SessionCache {
        let cache = SessionCache::new(ttl, max_entries);
        cache.set_live(true);
        cache
    }

    #[test]
    fn serves_only_while_live() {
        let cache = SessionCache::new(Duration::from_secs(5), 10);
        cache.insert("k", &session(60), cache.generation());
        assert!(
            cache.get("k").is_none(),
            "a cache that is not live stores nothing"
        );
        cache.set_live(true);
        cache.insert("k", &session(60), cache.generation());
        assert!(
            cache.get("k").is_some(),
            "a live cache serves what it stored"
        );
        cache.set_live(false);
        assert!(cache.get("k").is_none(), "going offline drops every entry");
    }

    #[test]
    fn insert_after_invalidation_is_skipped() {
        let cache = live_cache(Duration::from_secs(5), 10);
        let generation = cache.generation();
        cache.invalidate(["k"]);
        cache.insert("k", &session(60), generation);
        assert!(
            cache.get("k").is_none(),
            "a read that raced an invalidation must not be cached"
        );
    }

    #[test]
    fn invalidate_drops_named_keys() {
        let cache = live_cache(Duration::from_secs(5), 10);
        cache.insert("a", &session(60), cache.generation());
        cache.insert("b", &session(60), cache.generation());
        cache.invalidate(["a"]);
        assert!(cache.get("a").is_none(), "the invalidated key is gone");
        assert!(cache.get("b").is_some(), "other keys stay");
    }

    #[test]
    fn invalidate_matching_drops_selected() {
        let cache = live_cache(Duration::from_secs(5), 10);
        let mut bob = (*session(60)).clone();
        bob.identity.subject = "bob".into();
        cache.insert("alice-1", &session(60), cache.generation());
        cache.insert("alice-2", &session(60), cache.generation());
        cache.insert("bob", &Arc::new(bob), cache.generation());
        let generation = cache.generation();

        let dropped = cache.invalidate_matching(|s| s.identity.subject == "alice");
        assert_eq!(dropped, 2, "both of alice's entries are dropped");
        assert!(
            cache.get("alice-1").is_none(),
            "alice's first entry is gone"
        );
        assert!(
            cache.get("alice-2").is_none(),
            "alice's second entry is gone"
        );
        assert!(cache.get("bob").is_some(), "bob's entry stays");
        cache.insert("alice-1", &session(60), generation);
        assert!(
            cache.get("alice-1").is_none(),
            "a read that raced the drop must not be cached"
        );
    }

    #[test]
    fn entries_expire_with_ttl_and_session() {
        let cache = live_cache(Duration::from_millis(30), 10);
        cache.insert("k", &session(60), cache.generation());
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            cache.get("k").is_none(),
            "an entry older than the TTL is stale"
        );
        cache.insert("ended", &session(0), cache.generation());
        assert!(
            cache.get("ended").is_none(),
            "an expired session is never served"
        );
    }

    #[test]
    fn size_is_bounded() {
        let cache = live_cache(Duration::from_secs(5), 2);
        for key in ["a", "b", "c"] {
            cache.insert(key, &session(60), cache.generation());
        }
        assert_eq!(cache.len(), 2, "the cache holds at most max_entries");
        assert!(cache.get("c").is_none(), "no room for the third session");
    }

    #[test]
    fn zero_ttl_disables() {
        let cache = live_cache(Duration::ZERO, 10);
        cache.insert("k", &session(60), cache.generation());
        assert!(!cache.is_enabled(), "a zero TTL turns the cache off");
        assert!(cache.get("k").is_none(), "a disabled cache serves nothing");
    }
}
