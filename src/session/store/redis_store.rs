//! `RedisStore`: the session store in Redis, shared by every replica.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use redis::AsyncCommands;
use tokio::sync::OnceCell;

use super::{SessionStore, StoreError};

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
