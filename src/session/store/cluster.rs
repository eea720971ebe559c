//! Redis Cluster: the cluster connection, the subscription node, and the two
//! index operations in a form that Cluster accepts.
//!
//! In Cluster every key that a script touches must be passed in `KEYS`, and
//! all of them must hash to one slot. A session record and the index sets
//! that list it hash to different slots, so the scripts that a single server
//! runs for [`put_indexed`] and [`take_index`] would be rejected. Here each
//! step touches one key, in an order that keeps the guarantee that
//! revocation relies on. A record that a [`take_index`] read from its set
//! never outlives that call, and a record that stays is listed in every one
//! of its sets. What Cluster gives up is the single atomic step, as each
//! function describes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::{join_all, try_join_all};
use redis::aio::PubSub;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::ServerErrorKind;
use redis::{AsyncCommands, Client, ConnectionInfo, ErrorKind, RedisError, RedisResult};
use tokio::sync::OnceCell;

use super::redis_store::{eval, redis_error};
use super::redis_url::ClusterTopology;
use super::StoreError;
use health::ClusterHealth;

/// The cluster client and its lazily opened connection.
pub(super) struct ClusterNodes {
    client: ClusterClient,
    connection: OnceCell<ClusterConnection>,
    /// The seed nodes of the URL, for subscriptions.
    seeds: Vec<ConnectionInfo>,
    /// Index into `seeds` of the node the next subscription tries first, so
    /// that after losing a node the next attempt starts at another one.
    next_seed: AtomicUsize,
    timeout: Duration,
    /// Whether the cluster was last found down, so commands fail at once.
    health: ClusterHealth,
}

impl ClusterNodes {
    /// Prepares the client; nothing is connected yet.
    pub(super) fn new(topology: &ClusterTopology, timeout: Duration) -> Result<Self, StoreError> {
        let seeds = topology.node_connections();
        let mut builder = ClusterClientBuilder::new(seeds.clone())
            .connection_timeout(timeout)
            .response_timeout(timeout);
        if let Some(username) = &topology.credentials.username {
            builder = builder.username(username);
        }
        if let Some(password) = &topology.credentials.password {
            builder = builder.password(password);
        }
        Ok(ClusterNodes {
            client: builder.build().map_err(redis_error)?,
            connection: OnceCell::new(),
            health: ClusterHealth::new(seeds.clone(), timeout / 2),
            seeds,
            next_seed: AtomicUsize::new(0),
            timeout,
        })
    }

    /// Returns the cluster connection, opening it on first use, or fails at
    /// once while the cluster is known to be down (see [`ClusterHealth`]).
    /// The connection follows slot moves by itself, and refreshes its slot
    /// map after a failover.
    // NOTE: the tests use a cluster without replicas, so no test runs a
    // Cluster failover.
    pub(super) async fn connection(&self) -> Result<ClusterConnection, StoreError> {
        self.health.fail_fast().await?;
        let connection = self
            .connection
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .map_err(|error| {
                let seeds: Vec<String> = self.seeds.iter().map(|s| s.addr().to_string()).collect();
                StoreError::Unavailable(format!(
                    "cannot connect to Redis Cluster through {}: {error}",
                    seeds.join(", ")
                ))
            })?;
        Ok(connection.clone())
    }

    /// Checks `CLUSTER INFO` now; fails when no node reports
    /// `cluster_state:ok`.
    pub(super) async fn check_health(&self) -> Result<(), StoreError> {
        self.health.check().await
    }

    /// Checks the cluster's state in the background after a command timed
    /// out (`error` is `None`), failed with `CLUSTERDOWN`, or failed to reach
    /// a node. A command on the slots of a dead master gets a connection
    /// error, not `CLUSTERDOWN`. Other server errors, such as `WRONGTYPE`,
    /// say nothing about the cluster.
    pub(super) fn report_failure(&self, error: Option<&RedisError>) {
        let may_be_down = match error.map(RedisError::kind) {
            None | Some(ErrorKind::Server(ServerErrorKind::ClusterDown)) => true,
            Some(ErrorKind::Server(_)) => false,
            Some(_) => true,
        };
        if may_be_down {
            self.health.check_later();
        }
    }

    /// Opens a pub/sub connection to the first seed node that accepts one.
    /// `PUBLISH` on any node of a cluster reaches the subscribers of every
    /// node, so one node is enough.
    pub(super) async fn pubsub(&self) -> RedisResult<PubSub> {
        let start = self.next_seed.fetch_add(1, Ordering::Relaxed);
        let mut last_error = None;
        for offset in 0..self.seeds.len() {
            let seed = &self.seeds[(start + offset) % self.seeds.len()];
            let attempt = async { Client::open(seed.clone())?.get_async_pubsub().await };
            match tokio::time::timeout(self.timeout, attempt).await {
                Ok(Ok(pubsub)) => return Ok(pubsub),
                Ok(Err(error)) => last_error = Some(error),
                Err(_) => {
                    last_error = Some(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "connecting for a subscription timed out",
                    )));
                }
            }
        }
        Err(last_error.expect("a Cluster URL names at least one node"))
    }
}

/// Adds the members ARGV[2..] to set KEYS[1] and makes the set live at least
/// ARGV[1] milliseconds. An expiry only ever grows, so the set outlives
/// every record it lists.
const INDEX_ADD_SCRIPT: &str = r"
for i = 2, #ARGV do
  redis.call('SADD', KEYS[1], ARGV[i])
end
local ttl = tonumber(ARGV[1])
if ttl > 0 and redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
";

/// Returns 1 when set KEYS[1] lists ARGV[2], and then makes the set live at
/// least ARGV[1] milliseconds; returns 0 when it does not list it.
const INDEX_CONFIRM_SCRIPT: &str = r"
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 0 then
  return 0
end
local ttl = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
";

/// Deletes set KEYS[1] and returns its remaining lifetime in milliseconds
/// (PTTL: -2 when missing) and its members.
const INDEX_TAKE_SCRIPT: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
local listed = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return {ttl, listed}
";

/// Stores a record and adds its key to index sets, in three steps:
///
/// 1. add `key` to each set (each set on its own, atomically);
/// 2. `SET` the record;
/// 3. check that each set still lists `key`, extending the set's expiry.
///
/// A [`take_index`] deletes a set before it deletes the records the set
/// listed. So when step 3 finds `key` missing from a set, a revocation took
/// that set after step 1, and it may have deleted the record before step 2
/// wrote it. The record is then deleted here, and the login counts as
/// revoked. When step 3 finds every set listing `key`, any later
/// [`take_index`] of those sets deletes the record. Either way no record
/// stays stored without being listed in all its sets. Step 3 comes after
/// the `SET`, so each set's expiry is at least the record's.
///
/// Between steps 2 and 3 the record exists before it is confirmed, which
/// matters to no one: its key is derived from a session id that the caller
/// has not handed out yet. For the same reason, an error in step 3 (or a
/// timeout, which drops this future at any step) is safe: the caller gets
/// the error, never hands out the id, and the record at worst lives unused
/// until it expires.
pub(super) async fn put_indexed(
    connection: &ClusterConnection,
    key: &str,
    value: Vec<u8>,
    millis: u64,
    indexes: &[String],
) -> RedisResult<()> {
    try_join_all(indexes.iter().map(|index| {
        let mut connection = connection.clone();
        let mut command = eval(INDEX_ADD_SCRIPT, &[index.as_str()]);
        command.arg(millis).arg(key);
        async move { command.query_async::<i64>(&mut connection).await }
    }))
    .await?;

    let mut writer = connection.clone();
    writer.pset_ex::<_, _, ()>(key, value, millis).await?;

    let confirmed = try_join_all(indexes.iter().map(|index| {
        let mut connection = connection.clone();
        let mut command = eval(INDEX_CONFIRM_SCRIPT, &[index.as_str()]);
        command.arg(millis).arg(key);
        async move { command.query_async::<i64>(&mut connection).await }
    }))
    .await;
    match confirmed {
        Ok(listed) if listed.iter().all(|&listed| listed == 1) => Ok(()),
        Ok(_) => {
            tracing::info!(
                "a revocation took an index set during a login; the new session is deleted"
            );
            writer.del::<_, ()>(key).await
        }
        Err(error) => {
            // Best effort only: the caller gets the error either way.
            let _ = writer.del::<_, ()>(key).await;
            Err(error)
        }
    }
}

/// Deletes index set `index` and every record it listed, and returns the
/// records that still existed. Unlike the single-server script this is not
/// one atomic step:
///
/// 1. one script reads and deletes the set;
/// 2. each listed record is deleted with its own `DEL`.
///
/// Between the two steps another replica can still read a listed record,
/// for about one round trip. A record whose login races this call may not
/// be in the set yet at step 1, and then it stays, listed in a new set.
/// Otherwise it is deleted, here or by its own [`put_indexed`], and in the
/// second case it may be missing from the returned list. When a `DEL` fails, the records not
/// deleted are put back into the set, so that repeating the call finishes
/// the revocation, and the error is returned.
pub(super) async fn take_index(
    connection: &ClusterConnection,
    index: &str,
) -> RedisResult<Vec<String>> {
    let (ttl, listed): (i64, Vec<String>) = eval(INDEX_TAKE_SCRIPT, &[index])
        .query_async(&mut connection.clone())
        .await?;
    let deletions = join_all(listed.iter().map(|key| {
        let mut connection = connection.clone();
        async move { connection.del::<_, i64>(key).await }
    }))
    .await;

    let mut removed = Vec::new();
    let mut kept = Vec::new();
    let mut first_error = None;
    for (key, deleted) in listed.into_iter().zip(deletions) {
        match deleted {
            Ok(1) => removed.push(key),
            Ok(_) => {}
            Err(error) => {
                kept.push(key);
                first_error.get_or_insert(error);
            }
        }
    }
    let Some(error) = first_error else {
        return Ok(removed);
    };
    let mut restore = eval(INDEX_ADD_SCRIPT, &[index]);
    restore.arg(ttl).arg(&kept);
    if let Err(restore_error) = restore.query_async::<i64>(&mut connection.clone()).await {
        // NOTE: these sessions stay valid, and no index lists them any more,
        // until they expire or are signed out.
        tracing::error!(
            error = %restore_error,
            sessions = kept.len(),
            "cannot list the sessions that a failed revocation did not delete; they stay valid until they expire"
        );
    }
    Err(error)
}

mod health;
#[cfg(test)]
mod tests;
