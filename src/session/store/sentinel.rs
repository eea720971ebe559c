//! The Redis master that Sentinel names, and a connection to it that follows
//! failovers without a restart.
//!
//! The redis crate's `ConnectionManager` reconnects to the address it
//! started with, which after a failover is a replica or nothing at all.
//! [`SentinelMaster`] instead keeps one multiplexed connection to the master
//! that the sentinels named last, and drops it when:
//!
//! - a command fails in a way that means the master is gone or demoted
//!   ([`needs_new_master`]: a lost connection, a timeout, `READONLY`);
//! - the sentinels name another master. A watcher task queries them every
//!   [`MASTER_CHECK_INTERVAL`] while a connection is open.
//!
//! The next command then queries the sentinels again. The watcher matters for
//! a master that is demoted but keeps running, as with `SENTINEL FAILOVER`:
//! Sentinel reconfigures the old master, which closes its client
//! connections, only when it next polls the old master with `INFO` (every
//! 10 s in Redis 7.0). Until then the old master accepts writes, and it
//! drops them when it resyncs from the new master. A revocation written
//! there would come undone.
//!
//! Subscriptions opened on a master end when the watcher or a lookup finds
//! another master, so the revocation follower subscribes again on the new
//! one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, ServerErrorKind};
use tokio::sync::watch;

use super::redis_url::SentinelTopology;
use super::StoreError;
use lookup::SentinelLookup;

/// After a failed lookup, further lookups within this time fail at once with
/// the same error. While a failover runs, every request would otherwise ask
/// the sentinels in turn, one after the other.
const LOOKUP_RETRY_DELAY: Duration = Duration::from_millis(200);

/// How often the watcher queries the sentinels whether the master moved. It
/// bounds how long writes can still go to a demoted master that keeps
/// running. Each check costs one `SENTINEL MASTER` per sentinel and one
/// short connection to the master for `ROLE` per replying sentinel.
pub(super) const MASTER_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The master of one Sentinel-monitored group and the connection to it.
pub(super) struct SentinelMaster {
    /// The sentinels, with the outcome of the last lookup. The lock also
    /// makes lookups run one at a time, so a failover causes one lookup and
    /// not one per waiting request.
    lookup: tokio::sync::Mutex<Lookup>,
    /// The connection to the master found last, until it is dropped.
    current: Mutex<Option<MasterConnection>>,
    /// Address of the master that the last successful lookup found;
    /// subscriptions watch it to end when the master moves.
    master_address: watch::Sender<Option<String>>,
    /// The name the sentinels monitor the master under.
    master_name: String,
    /// Timeouts of the connection to the master.
    connection_config: AsyncConnectionConfig,
    /// Limit of one watcher check.
    timeout: Duration,
    /// Source of [`MasterConnection::generation`].
    generations: AtomicU64,
    /// Whether the watcher task runs.
    watching: AtomicBool,
    /// This value, for the watcher, which must not keep it alive.
    this: Weak<SentinelMaster>,
}

struct Lookup {
    sentinels: SentinelLookup,
    /// When the last lookup failed, and its error message.
    last_failure: Option<(Instant, String)>,
    /// Lookups failed in a row, so that a long outage logs a warning once
    /// and then every [`FAILURES_PER_WARNING`] failures.
    failures: u64,
}

/// While lookups keep failing, one warning is logged per this many.
const FAILURES_PER_WARNING: u64 = 100;

/// A connection to the master, numbered so that an error on an old
/// connection never drops a newer one.
#[derive(Clone)]
pub(super) struct MasterConnection {
    /// The multiplexed connection; clones share it.
    pub(super) connection: MultiplexedConnection,
    generation: u64,
    address: String,
}

impl SentinelMaster {
    /// Prepares the lookup; nothing is connected yet. Each connection to the
    /// master, each command on it and each watcher check time out after
    /// `timeout`. Each sentinel, and the `ROLE` check of the master it
    /// names, get half of it, so that a lookup fails, naming the sentinel
    /// at fault, before the command that waits for it times out.
    pub(super) fn new(
        topology: &SentinelTopology,
        timeout: Duration,
    ) -> Result<Arc<Self>, StoreError> {
        let sentinels = SentinelLookup::new(topology, timeout / 2);
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        Ok(Arc::new_cyclic(|this| SentinelMaster {
            lookup: tokio::sync::Mutex::new(Lookup {
                sentinels,
                last_failure: None,
                failures: 0,
            }),
            current: Mutex::new(None),
            master_address: watch::Sender::new(None),
            master_name: topology.master_name.clone(),
            connection_config,
            timeout,
            generations: AtomicU64::new(0),
            watching: AtomicBool::new(false),
            this: this.clone(),
        }))
    }

    /// Returns the connection to the current master, querying the sentinels
    /// first when there is none.
    pub(super) async fn connection(&self) -> Result<MasterConnection, StoreError> {
        if let Some(master) = self.cached() {
            return Ok(master);
        }
        let mut lookup = self.lookup.lock().await;
        // Another task may have connected while this one waited for the lock.
        if let Some(master) = self.cached() {
            return Ok(master);
        }
        let client = self.find_master(&mut lookup).await?;
        let address = client.get_connection_info().addr().to_string();
        let connection = client
            .get_multiplexed_async_connection_with_config(&self.connection_config)
            .await
            .map_err(|error| {
                StoreError::Unavailable(format!(
                    "cannot connect to the Redis master {address} that the sentinels name: {error}"
                ))
            })?;
        let master = MasterConnection {
            connection,
            generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1,
            address,
        };
        *self.lock_current() = Some(master.clone());
        self.start_watcher();
        Ok(master)
    }

    /// Drops `used` after `error` (or a timeout, when `error` is `None`)
    /// when the error means that the master may have changed, so the next
    /// command queries the sentinels again.
    pub(super) fn report_failure(&self, used: &MasterConnection, error: Option<&RedisError>) {
        if error.is_some_and(|error| !needs_new_master(error)) {
            return;
        }
        let reason = error.map_or_else(|| "timed out".to_owned(), ToString::to_string);
        self.drop_connection(used.generation, &reason);
    }

    /// Queries the sentinels for the master now, past the cached connection,
    /// and returns a client for it with a receiver of later master
    /// addresses. Subscriptions use this: they are opened rarely, and right
    /// after a failover no command may yet have found the cached connection
    /// stale.
    pub(super) async fn current_master(
        &self,
    ) -> Result<(Client, watch::Receiver<Option<String>>), StoreError> {
        let mut lookup = self.lookup.lock().await;
        let client = self.find_master(&mut lookup).await?;
        self.drop_stale_connection(&client);
        let mut addresses = self.master_address.subscribe();
        addresses.mark_unchanged();
        Ok((client, addresses))
    }

    fn cached(&self) -> Option<MasterConnection> {
        self.lock_current().clone()
    }

    fn lock_current(&self) -> std::sync::MutexGuard<'_, Option<MasterConnection>> {
        // The guarded value is replaced whole, so a panic elsewhere cannot
        // leave it half-written.
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops the cached connection if it is still number `generation`.
    fn drop_connection(&self, generation: u64, reason: &str) {
        let mut current = self.lock_current();
        let Some(master) = current.as_ref().filter(|m| m.generation == generation) else {
            return;
        };
        tracing::warn!(
            master = %master.address,
            reason,
            "Redis master connection dropped; the next command queries the sentinels for the master"
        );
        *current = None;
    }

    /// Drops the cached connection when it leads elsewhere than `client`.
    fn drop_stale_connection(&self, client: &Client) {
        let address = client.get_connection_info().addr().to_string();
        let stale = self
            .cached()
            .filter(|master| master.address != address)
            .map(|master| master.generation);
        if let Some(generation) = stale {
            self.drop_connection(generation, "the sentinels name another master");
        }
    }

    /// Queries the sentinels, all at once, for a master that they do not
    /// consider down and that reports the master role itself (see
    /// [`SentinelLookup`]). A failure is logged and remembered for
    /// [`LOOKUP_RETRY_DELAY`].
    async fn find_master(&self, lookup: &mut Lookup) -> Result<Client, StoreError> {
        if let Some((failed_at, message)) = &lookup.last_failure {
            if failed_at.elapsed() < LOOKUP_RETRY_DELAY {
                return Err(StoreError::Unavailable(message.clone()));
            }
        }
        let found = lookup.sentinels.find_master().await.and_then(|master| {
            Client::open(master).map_err(|e| format!("invalid master address: {e}"))
        });
        match found {
            Ok(client) => {
                if lookup.failures > 0 {
                    tracing::info!(
                        master_name = %self.master_name,
                        failures = lookup.failures,
                        "Sentinel master lookup succeeded again"
                    );
                }
                lookup.last_failure = None;
                lookup.failures = 0;
                self.publish_address(&client);
                Ok(client)
            }
            Err(error) => {
                lookup.failures += 1;
                if lookup.failures % FAILURES_PER_WARNING == 1 {
                    tracing::warn!(
                        master_name = %self.master_name,
                        error = %error,
                        failures = lookup.failures,
                        "Sentinel master lookup failed"
                    );
                }
                let message = format!("no Redis master found through Sentinel: {error}");
                lookup.last_failure = Some((Instant::now(), message.clone()));
                Err(StoreError::Unavailable(message))
            }
        }
    }

    /// Records the address of `client` as the master's, logging a change.
    fn publish_address(&self, client: &Client) {
        let address = client.get_connection_info().addr().to_string();
        self.master_address.send_if_modified(|known| {
            if known.as_deref() == Some(address.as_str()) {
                return false;
            }
            tracing::info!(
                master_name = %self.master_name,
                master = %address,
                previous = known.as_deref().unwrap_or("none"),
                "Redis master found through Sentinel"
            );
            *known = Some(address);
            true
        });
    }

    /// Starts the watcher once, on the runtime of the first connection. It
    /// holds only a weak reference, so it ends when the store is dropped.
    fn start_watcher(&self) {
        if self.watching.swap(true, Ordering::Relaxed) {
            return;
        }
        let this = self.this.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(MASTER_CHECK_INTERVAL).await;
                let Some(master) = this.upgrade() else {
                    return;
                };
                master.check_master().await;
            }
        });
    }

    /// Drops the cached connection when the sentinels name another master.
    /// Does nothing without a cached connection, because the next command
    /// queries the sentinels anyway, and nothing when the sentinels cannot be
    /// asked, because the connection may well still be fine.
    async fn check_master(&self) {
        if self.cached().is_none() {
            return;
        }
        let check = async {
            let mut lookup = self.lookup.lock().await;
            self.find_master(&mut lookup).await
        };
        if let Ok(Ok(client)) = tokio::time::timeout(self.timeout, check).await {
            self.drop_stale_connection(&client);
        }
    }
}

/// Tells whether `error` means that the connection no longer leads to a
/// usable master: the connection broke or timed out, or the node answers
/// as a replica (`READONLY` to a write, `MASTERDOWN` when it lost its own
/// master). Other errors, such as a wrong key type, leave the connection.
pub(super) fn needs_new_master(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_timeout()
        || error.is_unrecoverable_error()
        || matches!(
            error.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

mod lookup;
#[cfg(test)]
mod tests;
