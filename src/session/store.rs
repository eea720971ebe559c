//! The `SessionStore` trait, a small key-value interface with expiry, index
//! sets and publish/subscribe, and its two implementations: Redis (shared by
//! replicas) and process memory.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
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
    /// Stores `value` under `key` like [`put`](Self::put) and adds `key` to
    /// each set named in `indexes`, in one atomic step. Each index set then
    /// lives at least `ttl`, so it outlives every key it lists.
    async fn put_indexed(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        indexes: &[String],
    ) -> Result<(), StoreError>;
    /// Removes the index set `index` and every key it lists, in one atomic
    /// step, and returns the keys that still existed. A concurrent
    /// [`put_indexed`](Self::put_indexed) to the same index runs wholly
    /// before or wholly after it.
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
    entries: HashMap<String, MemoryEntry>,
    indexes: HashMap<String, MemoryIndex>,
}

struct MemoryIndex {
    keys: HashSet<String>,
    expires_at: Instant,
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

    /// Inserts one record, sweeping expired entries first when the store is
    /// full or a sweep is due.
    fn insert(
        &self,
        state: &mut MemoryState,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let full = state.entries.len() >= self.max_entries && !state.entries.contains_key(key);
        if full || self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY_WRITES == 0 {
            state.entries.retain(|_, entry| entry.expires_at > now);
            state.indexes.retain(|_, index| index.expires_at > now);
        }
        if state.entries.len() >= self.max_entries && !state.entries.contains_key(key) {
            return Err(StoreError::Full(self.max_entries));
        }
        state.entries.insert(
            key.to_owned(),
            MemoryEntry {
                value,
                expires_at: now + ttl,
            },
        );
        record_entry_count(state);
        Ok(())
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
        self.insert(&mut state, key, value, ttl)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut state = self.lock();
        let taken = state.entries.remove(key);
        record_entry_count(&state);
        Ok(taken
            .filter(|entry| entry.expires_at > Instant::now())
            .map(|entry| entry.value))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.entries.remove(key);
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
        self.insert(&mut state, key, value, ttl)?;
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
            let entry = state.entries.remove(&key);
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
        let Some(entry) = state.entries.get_mut(key).filter(|e| e.expires_at > now) else {
            return Ok(false);
        };
        entry.value = value;
        entry.expires_at = now + ttl;
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
        if state.entries.get(key).is_some_and(|e| e.expires_at > now) {
            return Ok(false);
        }
        self.insert(&mut state, key, token.as_bytes().to_vec(), lease)?;
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
        let held = state.entries.get_mut(key).filter(|e| e.expires_at > now);
        match held {
            Some(entry) if entry.value == token.as_bytes() => {
                entry.expires_at = now + lease;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn unlock(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let now = Instant::now();
        let held = state
            .entries
            .get(key)
            .is_some_and(|e| e.expires_at > now && e.value == token.as_bytes());
        if held {
            state.entries.remove(key);
        }
        Ok(held)
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

/// Stores a record and adds its key to index sets. KEYS[1] is the record,
/// KEYS[2..] the index sets; ARGV[1] the value, ARGV[2] the lifetime in
/// milliseconds. An index set's expiry only ever grows, so it outlives
/// every record it lists.
const PUT_INDEXED_SCRIPT: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local ttl = tonumber(ARGV[2])
for i = 2, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[1])
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return 1
";

/// Deletes index set KEYS[1] and every record it lists; returns the records
/// that existed.
// NOTE: the script deletes keys it was not given in KEYS. Standalone Redis
// allows that; Redis Cluster would not, because the keys hash to other slots.
const TAKE_INDEX_SCRIPT: &str = r"
local listed = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
local removed = {}
for _, key in ipairs(listed) do
  if redis.call('DEL', key) == 1 then
    removed[#removed + 1] = key
  end
end
return removed
";

/// Sets the expiry of lock KEYS[1] to ARGV[2] milliseconds while it holds
/// the token ARGV[1]; returns 1 when it did.
const EXTEND_LOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Deletes lock KEYS[1] while it holds the token ARGV[1]; returns 1 when it
/// did.
const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Builds an `EVAL` of `script`. The scripts are a few hundred bytes, and
/// Redis caches each compiled script, so sending the text every time costs
/// little and needs no `EVALSHA` fallback.
fn eval(script: &str, keys: &[&str]) -> redis::Cmd {
    let mut command = redis::cmd("EVAL");
    command.arg(script).arg(keys.len()).arg(keys);
    command
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
        let millis = ttl_millis(ttl);
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

    async fn put_indexed(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        indexes: &[String],
    ) -> Result<(), StoreError> {
        let millis = ttl_millis(ttl);
        let mut keys = vec![key];
        keys.extend(indexes.iter().map(String::as_str));
        let mut command = eval(PUT_INDEXED_SCRIPT, &keys);
        command.arg(value).arg(millis);
        self.run(|mut c| async move { command.query_async::<i64>(&mut c).await })
            .await
            .map(drop)
    }

    async fn take_index(&self, index: &str) -> Result<Vec<String>, StoreError> {
        let command = eval(TAKE_INDEX_SCRIPT, &[index]);
        self.run(|mut c| async move { command.query_async(&mut c).await })
            .await
    }

    async fn put_existing(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let millis = ttl_millis(ttl);
        self.run(|mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(millis)
                .arg("XX")
                .query_async::<Option<String>>(&mut c)
                .await
        })
        .await
        .map(|reply| reply.is_some())
    }

    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError> {
        self.run(|mut c| async move { c.publish::<_, _, i64>(channel, message).await })
            .await
            .map(drop)
    }

    async fn subscribe(&self, channel: &str) -> Result<Option<Subscription>, StoreError> {
        let connect = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok(pubsub.split())
        };
        let (sink, stream) = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
            .map_err(redis_error)?;
        Ok(Some(Subscription {
            sink,
            stream,
            timeout: self.timeout,
        }))
    }

    async fn try_lock(&self, key: &str, token: &str, lease: Duration) -> Result<bool, StoreError> {
        let millis = ttl_millis(lease);
        self.run(|mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(millis)
                .query_async::<Option<String>>(&mut c)
                .await
        })
        .await
        .map(|reply| reply.is_some())
    }

    async fn extend_lock(
        &self,
        key: &str,
        token: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let mut command = eval(EXTEND_LOCK_SCRIPT, &[key]);
        command.arg(token).arg(ttl_millis(lease));
        self.run(|mut c| async move { command.query_async::<i64>(&mut c).await })
            .await
            .map(|extended| extended == 1)
    }

    async fn unlock(&self, key: &str, token: &str) -> Result<bool, StoreError> {
        let mut command = eval(UNLOCK_SCRIPT, &[key]);
        command.arg(token);
        self.run(|mut c| async move { command.query_async::<i64>(&mut c).await })
            .await
            .map(|deleted| deleted == 1)
    }
}

/// Converts a lifetime to whole milliseconds, at least 1, because Redis
/// rejects an expiry of 0.
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// An idle subscription sends `PING` this often, so that a connection that
/// died without closing (a lost network path) is noticed.
const SUBSCRIPTION_KEEPALIVE: Duration = Duration::from_secs(5);

/// A live subscription to one channel, on a connection of its own.
pub struct Subscription {
    sink: PubSubSink,
    stream: PubSubStream,
    timeout: Duration,
}

impl Subscription {
    /// Waits for the next message. `None` means the connection is lost:
    /// Redis closed it, or a keep-alive `PING` got no reply in time. A
    /// payload that is not UTF-8 arrives as an empty string.
    pub async fn next_message(&mut self) -> Option<String> {
        loop {
            tokio::select! {
                message = self.stream.next() => {
                    return message.map(|m| m.get_payload::<String>().unwrap_or_default());
                }
                () = tokio::time::sleep(SUBSCRIPTION_KEEPALIVE) => {
                    if !self.is_alive().await {
                        return None;
                    }
                }
            }
        }
    }

    async fn is_alive(&mut self) -> bool {
        let ping = self.sink.ping::<redis::Value>();
        matches!(tokio::time::timeout(self.timeout, ping).await, Ok(Ok(_)))
    }
}

#[cfg(test)]
mod tests;
