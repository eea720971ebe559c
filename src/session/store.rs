//! The `SessionStore` trait, a small key-value interface with expiry, index
//! sets and publish/subscribe, and its two implementations: Redis (shared by
//! replicas; one server, Sentinel or Cluster) and process memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// Errors of a session store. Every one of them means "cannot tell right
/// now", never "no session": callers answer 503 and keep the session.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or returned an error.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// The store did not answer within the configured timeout.
    #[error("session store timed out after {0:?}")]
    Timeout(Duration),
    /// The in-memory store holds its maximum number of entries.
    #[error("session store is full ({0} entries)")]
    Full(usize),
}

/// Key-value storage with per-key expiry, the only thing sessions and login
/// flows need from a store.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Returns the value stored under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` under `key`, replacing any value, expiring after `ttl`.
    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError>;
    /// Stores `value` like [`put`](Self::put), as a record that the store
    /// may evict before `ttl` to make room. The memory store evicts such
    /// records, oldest first, rather than reject a write when it is full.
    /// The default stores it like `put`, which in Redis leaves eviction to
    /// the server's `maxmemory-policy`.
    async fn put_evictable(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.put(key, value, ttl).await
    }
    /// Removes and returns the value under `key` in one atomic step, so two
    /// callers can never both take it.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes `key`; removing a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Checks that the store answers, for the readiness probe.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Stores `value` under `key` like [`put`](Self::put) and adds `key` to
    /// each set named in `indexes`. Each index set then lives at least
    /// `ttl`, so it outlives every key it lists. When it returns `Ok`, the
    /// record is listed in every one of those sets, or a concurrent
    /// [`take_index`](Self::take_index) of one of them has removed it. A
    /// record is never left stored but missing from a set. The memory store
    /// and one Redis server (also the master that Sentinel names) do this in
    /// one atomic step, Redis Cluster in several.
    async fn put_indexed(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        indexes: &[String],
    ) -> Result<(), StoreError>;
    /// Removes the index set `index` and every key it lists, and returns the
    /// keys that still existed. A key that a concurrent
    /// [`put_indexed`](Self::put_indexed) adds after the set was read stays,
    /// listed in a new set. The memory store and one Redis server (also the
    /// master that Sentinel names) do this in one atomic step. Redis Cluster
    /// does it in several steps. Another reader can still read a listed key
    /// for a moment, and the returned list can miss a key that a concurrent
    /// `put_indexed` removed itself. An error can leave some keys removed
    /// while the set lists the rest, so repeating the call finishes the job.
    async fn take_index(&self, index: &str) -> Result<Vec<String>, StoreError>;
    /// Replaces the value under `key` only while `key` exists, and returns
    /// whether it did. A record removed by [`take_index`](Self::take_index)
    /// is therefore never written back by a slower update.
    async fn put_existing(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// Sends `message` to every current subscriber of `channel`, in every
    /// replica.
    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError>;
    /// Subscribes to `channel` on a connection of its own. `Ok(None)` means
    /// the store is private to this process, so there are no other
    /// replicas to hear from.
    async fn subscribe(&self, channel: &str) -> Result<Option<Subscription>, StoreError>;
    /// Takes the lock `key` for `lease` unless someone holds it, writing the
    /// holder's random `token`; returns whether it was taken.
    async fn try_lock(&self, key: &str, token: &str, lease: Duration) -> Result<bool, StoreError>;
    /// Extends the lease of lock `key` to `lease` from now, only while
    /// `token` still holds it; returns whether it did.
    async fn extend_lock(
        &self,
        key: &str,
        token: &str,
        lease: Duration,
    ) -> Result<bool, StoreError>;
    /// Releases lock `key` only while `token` still holds it, so a holder
    /// whose lease lapsed never frees another holder's lock.
    async fn unlock(&self, key: &str, token: &str) -> Result<bool, StoreError>;
    /// Adds `member` to the expiring set `set` until `ttl` from now, or
    /// moves its expiry there when the set lists it already. A member leaves
    /// the set at its expiry, so a missed
    /// [`remove_expiring`](Self::remove_expiring) corrects itself then. The
    /// set is one key, so in Redis Cluster it lives on one node.
    async fn add_expiring(&self, set: &str, member: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Removes `members` from the expiring set `set`, skipping any member it
    /// does not list.
    async fn remove_expiring(&self, set: &str, members: &[String]) -> Result<(), StoreError>;
    /// Removes the expired members of the expiring set `set` and returns the
    /// number left. The cost grows with the number of expired members, not
    /// with the size of the set.
    async fn count_expiring(&self, set: &str) -> Result<u64, StoreError>;
}

/// Sessions in this process's memory: one replica only, lost on restart.
pub struct MemoryStore {
    state: Mutex<MemoryState>,
    writes: AtomicU64,
    max_entries: usize,
}

/// The records and the index sets, behind one lock so that the indexed
/// operations are atomic.
#[derive(Default)]
struct MemoryState {
    entries: HashMap<Arc<str>, MemoryEntry>,
    indexes: HashMap<String, MemoryIndex>,
    /// The key of every entry, ordered by expiry, so that a write removes
    /// the expired entries without scanning the others.
    expiries: BTreeMap<(Instant, u64), Arc<str>>,
    /// The keys of evictable entries, oldest write first.
    evictable: BTreeMap<u64, Arc<str>>,
    /// Number of the next write, which orders entries that expire at the
    /// same instant and the evictable entries.
    next_write: u64,
    /// The expiring sets by name, kept apart from the entries because their
    /// members are not records.
    expiring_sets: HashMap<String, ExpiringSet>,
}

struct MemoryIndex {
    keys: HashSet<String>,
    expires_at: Instant,
}

/// Default maximum number of entries (sessions, login flows and locks
/// together), `session.memory_max_entries`. Each is under 2 KiB, so the
/// store stays under about 200 MiB even when clients start logins they never
/// finish.
pub const MEMORY_STORE_MAX_ENTRIES: usize = 100_000;

struct MemoryEntry {
    value: Vec<u8>,
    expires_at: Instant,
    /// Number of the write that stored the entry: its place in `expiries`
    /// and `evictable`.
    write: u64,
    /// Whether the store may drop the entry before it expires.
    evictable: bool,
}

/// Expired index sets are swept once every this many writes, so memory stays
/// bounded by the live sessions without a background task. Expired entries
/// go at every write.
const SWEEP_EVERY_WRITES: u64 = 1024;

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_max_entries(MEMORY_STORE_MAX_ENTRIES)
    }
}

impl MemoryStore {
    /// Creates an empty store with the default maximum size.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an empty store that holds at most `max_entries` entries.
    pub fn with_max_entries(max_entries: usize) -> Self {
        MemoryStore {
            state: Mutex::new(MemoryState::default()),
            writes: AtomicU64::new(0),
            max_entries,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // A panic while holding the lock cannot leave a half-written entry,
        // because no critical section can panic between two map updates.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Inserts one record after removing the expired ones. When the store
    /// is full, the oldest evictable record makes room, and without one the
    /// write fails.
    fn insert(
        &self,
        state: &mut MemoryState,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        evictable: bool,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        state.remove_expired(now);
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY_WRITES == 0 {
            state.indexes.retain(|_, index| index.expires_at > now);
        }
        if state.entries.len() >= self.max_entries && !state.entries.contains_key(key) {
            if !state.evict_oldest() {
                return Err(StoreError::Full(self.max_entries));
            }
            record_eviction(self.max_entries);
        }
        state.store(key, value, now + ttl, evictable);
        record_entry_count(state);
        Ok(())
    }
}

impl MemoryState {
    /// Stores an entry under `key`, replacing any entry there.
    fn store(&mut self, key: &str, value: Vec<u8>, expires_at: Instant, evictable: bool) {
        self.remove(key);
        let write = self.next_write;
        self.next_write += 1;
        let key: Arc<str> = Arc::from(key);
        self.expiries.insert((expires_at, write), key.clone());
        if evictable {
            self.evictable.insert(write, key.clone());
        }
        let entry = MemoryEntry {
            value,
            expires_at,
            write,
            evictable,
        };
        self.entries.insert(key, entry);
    }

    /// Removes the entry under `key`, expired or not, and returns it.
    fn remove(&mut self, key: &str) -> Option<MemoryEntry> {
        let entry = self.entries.remove(key)?;
        self.expiries.remove(&(entry.expires_at, entry.write));
        if entry.evictable {
            self.evictable.remove(&entry.write);
        }
        Some(entry)
    }

    /// Returns the entry under `key` unless it has expired at `now`.
    fn live_entry(&mut self, key: &str, now: Instant) -> Option<&mut MemoryEntry> {
        self.entries
            .get_mut(key)
            .filter(|entry| entry.expires_at > now)
    }

    /// Moves the expiry of the live entry under `key` to `expires_at`.
    fn set_expiry(&mut self, key: &str, expires_at: Instant) {
        let Some((stored_key, entry)) = self.entries.get_key_value(key) else {
            return;
        };
        let stored_key = stored_key.clone();
        let (previous, write) = (entry.expires_at, entry.write);
        self.expiries.remove(&(previous, write));
        self.expiries.insert((expires_at, write), stored_key);
        if let Some(entry) = self.entries.get_mut(key) {
            entry.expires_at = expires_at;
        }
    }

    /// Removes every entry that has expired at `now`. Each entry is removed
    /// once, so the cost over time is one ordered-map removal per write.
    fn remove_expired(&mut self, now: Instant) {
        while let Some(first) = self.expiries.first_entry() {
            if first.key().0 > now {
                return;
            }
            let key = first.remove();
            if let Some(entry) = self.entries.remove(&*key) {
                if entry.evictable {
                    self.evictable.remove(&entry.write);
                }
            }
        }
    }

    /// Removes the oldest evictable entry; returns false when there is none.
    fn evict_oldest(&mut self) -> bool {
        let Some((_, key)) = self.evictable.pop_first() else {
            return false;
        };
        if let Some(entry) = self.entries.remove(&*key) {
            self.expiries.remove(&(entry.expires_at, entry.write));
        }
        true
    }
}

/// Counts one eviction and logs at most one line per second about them.
fn record_eviction(max_entries: usize) {
    static LOG_LIMIT: LogLimiter = LogLimiter::new(Duration::from_secs(1));
    crate::metrics::metrics().memory_store_evictions.inc();
    if let Some(suppressed) = LOG_LIMIT.admit() {
        tracing::warn!(
            max_entries,
            suppressed,
            "in-memory session store full; evicted the oldest login flow"
        );
    }
}

/// Sets the memory-store gauge. With several stores in one process (only
/// in tests) it shows the one written last.
fn record_entry_count(state: &MemoryState) {
    let count = i64::try_from(state.entries.len()).unwrap_or(i64::MAX);
    crate::metrics::metrics().memory_store_entries.set(count);
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let state = self.lock();
        Ok(state
            .entries
            .get(key)
            .filter(|entry| entry.expires_at > Instant::now())
            .map(|entry| entry.value.clone()))
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let mut state = self.lock();
        self.insert(&mut state, key, value, ttl, false)
    }

    async fn put_evictable(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        self.insert(&mut state, key, value, ttl, true)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut state = self.lock();
        let taken = state.remove(key);
        record_entry_count(&state);
        Ok(taken
            .filter(|entry| entry.expires_at > Instant::now())
            .map(|entry| entry.value))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.remove(key);
        record_entry_count(&state);
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn put_indexed(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        indexes: &[String],
    ) -> Result<(), StoreError> {
        let mut state = self.lock();
        self.insert(&mut state, key, value, ttl, false)?;
        let expires_at = Instant::now() + ttl;
        for name in indexes {
            let index = state
                .indexes
                .entry(name.clone())
                .or_insert_with(|| MemoryIndex {
                    keys: HashSet::new(),
                    expires_at,
                });
            index.keys.insert(key.to_owned());
            index.expires_at = index.expires_at.max(expires_at);
        }
        Ok(())
    }

    async fn take_index(&self, index: &str) -> Result<Vec<String>, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        let Some(listed) = state.indexes.remove(index) else {
            return Ok(Vec::new());
        };
        let mut removed = Vec::new();
        for key in listed.keys {
            let entry = state.remove(&key);
            if entry.is_some_and(|entry| entry.expires_at > now) {
                removed.push(key);
            }
        }
        Ok(removed)
    }

    async fn put_existing(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        let Some(entry) = state.live_entry(key, now) else {
            return Ok(false);
        };
        entry.value = value;
        state.set_expiry(key, now + ttl);
        Ok(true)
    }

    async fn publish(&self, _channel: &str, _message: &str) -> Result<(), StoreError> {
        Ok(())
    }

    async fn subscribe(&self, _channel: &str) -> Result<Option<Subscription>, StoreError> {
        Ok(None)
    }

    async fn try_lock(&self, key: &str, token: &str, lease: Duration) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        if state.live_entry(key, now).is_some() {
            return Ok(false);
        }
        self.insert(&mut state, key, token.as_bytes().to_vec(), lease, false)?;
        Ok(true)
    }

    async fn extend_lock(
        &self,
        key: &str,
        token: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        let held = state
            .live_entry(key, now)
            .is_some_and(|entry| entry.value == token.as_bytes());
        if held {
            state.set_expiry(key, now + lease);
        }
        Ok(held)
    }

    async fn unlock(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        let held = state
            .entries
            .get(key)
            .is_some_and(|e| e.expires_at > now && e.value == token.as_bytes());
        if held {
            state.remove(key);
        }
        Ok(held)
    }

    async fn add_expiring(&self, set: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        let members = state.expiring_sets.entry(set.to_owned()).or_default();
        // Removing the expired members here keeps the set bounded by the
        // live ones even when nothing counts it.
        members.remove_expired(now);
        members.insert(member, now + ttl);
        Ok(())
    }

    async fn remove_expiring(&self, set: &str, members: &[String]) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(listed) = state.expiring_sets.get_mut(set) {
            for member in members {
                listed.remove(member);
            }
        }
        Ok(())
    }

    async fn count_expiring(&self, set: &str) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let Some(members) = state.expiring_sets.get_mut(set) else {
            return Ok(0);
        };
        members.remove_expired(Instant::now());
        Ok(u64::try_from(members.len()).unwrap_or(u64::MAX))
    }
}

mod cluster;
mod expiring_set;
mod log_limit;
mod redis_store;
pub mod redis_url;
mod sentinel;

use expiring_set::ExpiringSet;
pub use log_limit::LogLimiter;
pub use redis_store::{RedisStore, Subscription};

#[cfg(test)]
mod tests;
