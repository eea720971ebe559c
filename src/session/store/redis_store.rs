//! `RedisStore`: the session store in Redis, shared by every replica, on
//! one server, behind Redis Sentinel, or in Redis Cluster.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub, PubSubSink, PubSubStream,
};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncCommands, Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::{watch, OnceCell};

use super::cluster::{self, ClusterNodes};
use super::redis_url::RedisTopology;
use super::sentinel::{MasterConnection, SentinelMaster};
use super::{SessionStore, StoreError};

/// Sessions in Redis, shared by every replica.
///
/// The URL's form picks the topology (see [`RedisTopology`]):
/// - one server, through a connection that reconnects by itself after Redis
///   restarts;
/// - the master that Redis Sentinel names, looked up again after a failover
///   (see [`SentinelMaster`]);
/// - Redis Cluster, through the redis crate's cluster connection, which
///   follows slot moves and failovers. The two index operations then run in
///   several steps (see [`cluster`]).
///
/// Connections open on first use, from the runtime that serves requests,
/// because Tokio I/O objects stay bound to the runtime that created them. A
/// failed connection attempt is retried on the next call.
pub struct RedisStore {
    backend: Backend,
    timeout: Duration,
}

/// The topology behind the store, each on the heap because the variants
/// differ in size by hundreds of bytes.
enum Backend {
    Standalone(Box<StandaloneServer>),
    Sentinel(Arc<SentinelMaster>),
    Cluster(Box<ClusterNodes>),
}

struct StandaloneServer {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
}

/// A connection of any of the three topologies. Every command the store
/// sends works on each, except the two index scripts, which Cluster
/// replaces.
#[derive(Clone)]
enum StoreConnection {
    Standalone(ConnectionManager),
    Sentinel(MasterConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for StoreConnection {
    fn req_packed_command<'a>(&'a mut self, command: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            StoreConnection::Standalone(connection) => connection.req_packed_command(command),
            StoreConnection::Sentinel(master) => master.connection.req_packed_command(command),
            StoreConnection::Cluster(connection) => connection.req_packed_command(command),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            StoreConnection::Standalone(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            StoreConnection::Sentinel(master) => master
                .connection
                .req_packed_commands(pipeline, offset, count),
            StoreConnection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            StoreConnection::Standalone(connection) => connection.get_db(),
            StoreConnection::Sentinel(master) => master.connection.get_db(),
            StoreConnection::Cluster(connection) => connection.get_db(),
        }
    }
}

impl RedisStore {
    /// Creates a store for `url`, in any form that [`RedisTopology`] reads;
    /// nothing is connected yet.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let topology = RedisTopology::from_url(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: the URL {e}")))?;
        let backend = match &topology {
            RedisTopology::Standalone(info) => Backend::Standalone(Box::new(StandaloneServer {
                client: redis::Client::open(info.clone()).map_err(|e| {
                    StoreError::Unavailable(format!("invalid Redis URL: {:?}", e.kind()))
                })?,
                connection: OnceCell::new(),
            })),
            RedisTopology::Sentinel(sentinel) => {
                Backend::Sentinel(SentinelMaster::new(sentinel, timeout)?)
            }
            RedisTopology::Cluster(nodes) => {
                Backend::Cluster(Box::new(ClusterNodes::new(nodes, timeout)?))
            }
        };
        Ok(RedisStore { backend, timeout })
    }

    async fn connection(&self) -> Result<StoreConnection, StoreError> {
        match &self.backend {
            Backend::Standalone(server) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                let connection = server
                    .connection
                    .get_or_try_init(|| {
                        ConnectionManager::new_with_config(server.client.clone(), config)
                    })
                    .await
                    .map_err(|error| {
                        // The redis crate's message lacks the address for a
                        // refused connection or a rejected password.
                        StoreError::Unavailable(format!(
                            "cannot connect to Redis at {}: {error}",
                            server.client.get_connection_info().addr()
                        ))
                    })?;
                Ok(StoreConnection::Standalone(connection.clone()))
            }
            Backend::Sentinel(master) => master.connection().await.map(StoreConnection::Sentinel),
            Backend::Cluster(nodes) => nodes.connection().await.map(StoreConnection::Cluster),
        }
    }

    /// Runs one command with the configured timeout. With Sentinel, an
    /// error or timeout that may mean a failover drops the connection to
    /// the master, so the next command queries the sentinels again.
    async fn run<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(StoreConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let mut used = None;
        let attempt = async {
            let connection = self.connection().await?;
            used = Some(connection.clone());
            let result = command(connection.clone()).await;
            if let Err(error) = &result {
                self.report_failure(&connection, Some(error));
            }
            result.map_err(redis_error)
        };
        let outcome = tokio::time::timeout(self.timeout, attempt).await;
        outcome.unwrap_or_else(|_| {
            if let Some(connection) = &used {
                self.report_failure(connection, None);
            }
            Err(StoreError::Timeout(self.timeout))
        })
    }

    /// Tells the Sentinel or Cluster backend that a command on `connection`
    /// failed with `error`, or timed out when `error` is `None`.
    fn report_failure(&self, connection: &StoreConnection, error: Option<&redis::RedisError>) {
        match (&self.backend, connection) {
            (Backend::Sentinel(master), StoreConnection::Sentinel(used)) => {
                master.report_failure(used, error);
            }
            (Backend::Cluster(nodes), _) => nodes.report_failure(error),
            _ => {}
        }
    }

    /// Opens a pub/sub connection: to the one server, to the master that the
    /// sentinels name now, or to a seed node of the cluster. With Sentinel
    /// it also returns what [`Subscription::master_moved`] watches.
    async fn open_pubsub(&self) -> Result<(PubSub, Option<MasterWatch>), StoreError> {
        match &self.backend {
            Backend::Standalone(server) => {
                let pubsub = server
                    .client
                    .get_async_pubsub()
                    .await
                    .map_err(redis_error)?;
                Ok((pubsub, None))
            }
            Backend::Sentinel(master) => {
                let (client, addresses) = master.current_master().await?;
                let address = client.get_connection_info().addr().to_string();
                let pubsub = client.get_async_pubsub().await.map_err(redis_error)?;
                Ok((pubsub, Some(MasterWatch { addresses, address })))
            }
            Backend::Cluster(nodes) => Ok((nodes.pubsub().await.map_err(redis_error)?, None)),
        }
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
// The script deletes keys it was not given in KEYS. A single server allows
// that; Redis Cluster does not, so it runs `cluster::take_index` instead.
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

/// Adds member ARGV[1] to sorted set KEYS[1], scored by its expiry: the
/// server's time in milliseconds plus ARGV[2]. The set itself expires with
/// its last member, so it goes away when no replica is left to count it.
/// Redis's own clock scores the member, as it times the record's `PX`, so
/// the clocks of the replicas never matter.
const EXPIRING_ADD_SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
";

/// Removes the members of sorted set KEYS[1] whose expiry has passed on the
/// server's clock, and returns the number left.
const EXPIRING_COUNT_SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
";

/// Builds an `EVAL` of `script`. The scripts are a few hundred bytes, and
/// Redis caches each compiled script, so sending the text every time costs
/// little and needs no `EVALSHA` fallback.
pub(super) fn eval(script: &str, keys: &[&str]) -> redis::Cmd {
    let mut command = redis::cmd("EVAL");
    command.arg(script).arg(keys.len()).arg(keys);
    command
}

pub(super) fn redis_error(error: redis::RedisError) -> StoreError {
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

    /// Sends `PING`. For Cluster it first checks `CLUSTER INFO`, because a
    /// live node replies to `PING` while the cluster rejects every command
    /// with `CLUSTERDOWN`.
    async fn ping(&self) -> Result<(), StoreError> {
        if let Backend::Cluster(nodes) = &self.backend {
            nodes.check_health().await?;
        }
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
        self.run(|c| async move {
            if let StoreConnection::Cluster(c) = &c {
                return cluster::put_indexed(c, key, value, millis, indexes).await;
            }
            let mut keys = vec![key];
            keys.extend(indexes.iter().map(String::as_str));
            let mut command = eval(PUT_INDEXED_SCRIPT, &keys);
            command.arg(value).arg(millis);
            command.query_async::<i64>(&mut c.clone()).await.map(drop)
        })
        .await
    }

    async fn take_index(&self, index: &str) -> Result<Vec<String>, StoreError> {
        self.run(|c| async move {
            if let StoreConnection::Cluster(c) = &c {
                return cluster::take_index(c, index).await;
            }
            eval(TAKE_INDEX_SCRIPT, &[index])
                .query_async(&mut c.clone())
                .await
        })
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
            let (mut pubsub, master) = self.open_pubsub().await?;
            pubsub.subscribe(channel).await.map_err(redis_error)?;
            let (sink, stream) = pubsub.split();
            Ok::<_, StoreError>((sink, stream, master))
        };
        let (sink, stream, master) = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))??;
        Ok(Some(Subscription {
            sink,
            stream,
            timeout: self.timeout,
            master,
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

    /// Runs a script on the set's key alone, which Redis Cluster accepts.
    async fn add_expiring(&self, set: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut command = eval(EXPIRING_ADD_SCRIPT, &[set]);
        command.arg(member).arg(ttl_millis(ttl));
        self.run(|mut c| async move { command.query_async::<i64>(&mut c).await })
            .await
            .map(drop)
    }

    async fn remove_expiring(&self, set: &str, members: &[String]) -> Result<(), StoreError> {
        if members.is_empty() {
            return Ok(());
        }
        self.run(|mut c| async move { c.zrem::<_, _, i64>(set, members).await })
            .await
            .map(drop)
    }

    async fn count_expiring(&self, set: &str) -> Result<u64, StoreError> {
        let command = eval(EXPIRING_COUNT_SCRIPT, &[set]);
        self.run(|mut c| async move { command.query_async::<u64>(&mut c).await })
            .await
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
    /// With Sentinel, the master this subscription is on and the addresses
    /// that later lookups find.
    master: Option<MasterWatch>,
}

/// The master a Sentinel subscription is on, and the master addresses that
/// lookups publish.
struct MasterWatch {
    addresses: watch::Receiver<Option<String>>,
    address: String,
}

impl Subscription {
    /// Waits for the next message. `None` means the subscription ended:
    /// Redis closed it, a keep-alive `PING` got no reply in time, or (with
    /// Sentinel) the sentinels now name another master, whose publishes this
    /// connection would miss. A payload that is not UTF-8 arrives as an
    /// empty string.
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
                () = master_moved(self.master.as_mut()) => return None,
            }
        }
    }

    async fn is_alive(&mut self) -> bool {
        let ping = self.sink.ping::<redis::Value>();
        matches!(tokio::time::timeout(self.timeout, ping).await, Ok(Ok(_)))
    }
}

/// Completes when a lookup finds a master other than the one `watch` is
/// on; never completes without a watch, or once the store is dropped.
async fn master_moved(watch: Option<&mut MasterWatch>) {
    let Some(watch) = watch else {
        return std::future::pending().await;
    };
    loop {
        if watch.addresses.changed().await.is_err() {
            return std::future::pending().await;
        }
        let moved = watch
            .addresses
            .borrow_and_update()
            .as_deref()
            .is_some_and(|address| address != watch.address);
        if moved {
            tracing::info!(
                master = %watch.address,
                "ending the subscription on the old Redis master"
            );
            return;
        }
    }
}
