//! The `SessionStore` trait, a small key-value interface with expiry, and its
//! two implementations: Redis (shared by replicas) and process memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use tokio::sync::OnceCell;

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
    /// Removes and returns the value under `key` in one atomic step, so two
    /// callers can never both take it.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes `key`; removing a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Checks that the store answers, for the readiness probe.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Sessions in this process's memory: one replica only, lost on restart.
pub struct MemoryStore {
    entries: Mutex<HashMap<String, MemoryEntry>>,
    writes: AtomicU64,
    max_entries: usize,
}

/// Default maximum number of entries (sessions and login flows together).
/// Each is under 2 KiB, so the store stays under about 200 MiB even when
/// clients start logins they never finish.
pub const MEMORY_STORE_MAX_ENTRIES: usize = 100_000;

struct MemoryEntry {
    value: Vec<u8>,
    expires_at: Instant,
}

/// Expired entries are swept once every this many writes, so memory stays
/// bounded by the live sessions without a background task.
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
            entries: Mutex::new(HashMap::new()),
            writes: AtomicU64::new(0),
            max_entries,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, MemoryEntry>> {
        // A panic while holding the lock cannot leave a half-written entry,
        // because every critical section is a single map operation.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let entries = self.lock();
        Ok(entries
            .get(key)
            .filter(|entry| entry.expires_at > Instant::now())
            .map(|entry| entry.value.clone()))
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut entries = self.lock();
        let full = entries.len() >= self.max_entries && !entries.contains_key(key);
        if full || self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY_WRITES == 0 {
            entries.retain(|_, entry| entry.expires_at > now);
        }
        if entries.len() >= self.max_entries && !entries.contains_key(key) {
            return Err(StoreError::Full(self.max_entries));
        }
        entries.insert(
            key.to_owned(),
            MemoryEntry {
                value,
                expires_at: now + ttl,
            },
        );
        Ok(())
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut entries = self.lock();
        Ok(entries
            .remove(key)
            .filter(|entry| entry.expires_at > Instant::now())
            .map(|entry| entry.value))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock().remove(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Sessions in Redis, shared by every replica.
///
/// The connection opens on first use, from the runtime that serves requests,
/// because Tokio I/O objects stay bound to the runtime that created them. A
/// failed connection attempt is retried on the next call, and an established
/// connection reconnects by itself after Redis restarts.
pub struct RedisStore {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    timeout: Duration,
}

impl RedisStore {
    /// Creates a store for `url`; nothing is connected yet.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {:?}", e.kind())))?;
        Ok(RedisStore {
            client,
            connection: OnceCell::new(),
            timeout,
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = self
            .connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .map_err(redis_error)?;
        Ok(connection.clone())
    }

    /// Runs one command with the configured timeout.
    async fn run<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let connection = self.connection().await?;
            command(connection).await.map_err(redis_error)
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
    }
}

fn redis_error(error: redis::RedisError) -> StoreError {
    // The error's Display can include the server's address but never the
    // password, so it is safe to log.
    StoreError::Unavailable(error.to_string())
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(|mut c| async move { c.get(key).await }).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(|mut c| async move { c.pset_ex(key, value, millis).await })
            .await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(|mut c| async move { c.get_del(key).await }).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.run(|mut c| async move { c.del(key).await }).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_take_is_single_use() {
        let store = MemoryStore::new();
        store
            .put("k", b"v".to_vec(), Duration::from_secs(60))
            .await
            .expect("memory put");
        assert_eq!(store.take("k").await.expect("take"), Some(b"v".to_vec()));
        assert_eq!(store.take("k").await.expect("take"), None);
    }

    #[tokio::test]
    async fn memory_store_rejects_writes_when_full() {
        let store = MemoryStore::with_max_entries(2);
        let ttl = Duration::from_secs(60);
        store.put("a", b"1".to_vec(), ttl).await.expect("first put");
        store
            .put("b", b"2".to_vec(), ttl)
            .await
            .expect("second put");
        assert!(matches!(
            store.put("c", b"3".to_vec(), ttl).await,
            Err(StoreError::Full(2))
        ));
        store
            .put("a", b"updated".to_vec(), ttl)
            .await
            .expect("replacing an existing key still works");
        store.delete("b").await.expect("delete");
        store
            .put("c", b"3".to_vec(), ttl)
            .await
            .expect("room again");
    }

    #[tokio::test]
    async fn memory_store_expires_entries() {
        let store = MemoryStore::new();
        store
            .put("k", b"v".to_vec(), Duration::from_millis(20))
            .await
            .expect("memory put");
        assert!(store.get("k").await.expect("get").is_some());
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(store.get("k").await.expect("get"), None);
    }
}
