//! Whether the cluster serves every hash slot, from `CLUSTER INFO`.
//!
//! With `cluster-require-full-coverage yes` (the default) a cluster whose
//! master of some slots is gone rejects every command with `CLUSTERDOWN`.
//! `PING` still succeeds on any live node, so it cannot tell readiness. The
//! redis crate (1.8.2) retries `CLUSTERDOWN` with backoff and has no setting
//! to stop that alone, so each command would run until the store's timeout.
//! [`ClusterHealth`] remembers a failed state and fails commands at once,
//! checking again at most every [`RECHECK_INTERVAL`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use redis::{Client, ConnectionInfo};

use crate::session::store::StoreError;

/// While the cluster is known to be down, commands fail at once for this
/// long before one check of `CLUSTER INFO` looks again.
const RECHECK_INTERVAL: Duration = Duration::from_millis(500);

/// The cluster state that the last check found down, shared with the
/// checks that run in the background.
#[derive(Clone)]
pub(super) struct ClusterHealth {
    seeds: Arc<Vec<ConnectionInfo>>,
    /// Limit of the `CLUSTER INFO` of one node.
    limit: Duration,
    /// When a check last found the cluster down, and why.
    down: Arc<Mutex<Option<(Instant, String)>>>,
    /// Whether a background check runs, so that a burst of timeouts starts
    /// one check and not one each.
    checking: Arc<AtomicBool>,
}

impl ClusterHealth {
    pub(super) fn new(seeds: Vec<ConnectionInfo>, limit: Duration) -> Self {
        ClusterHealth {
            seeds: Arc::new(seeds),
            limit,
            down: Arc::new(Mutex::new(None)),
            checking: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Fails at once while the cluster is known to be down. After
    /// [`RECHECK_INTERVAL`] it checks `CLUSTER INFO` again first, so the
    /// first command after a recovery goes through.
    pub(super) async fn fail_fast(&self) -> Result<(), StoreError> {
        let Some((since, message)) = self.lock().clone() else {
            return Ok(());
        };
        if since.elapsed() < RECHECK_INTERVAL {
            return Err(StoreError::Unavailable(message));
        }
        self.check().await
    }

    /// Queries `CLUSTER INFO` on every seed node at once and records the
    /// result. The cluster counts as up when any node reports
    /// `cluster_state:ok`: a node cut off from the majority reports `fail`
    /// while the rest serve every slot.
    pub(super) async fn check(&self) -> Result<(), StoreError> {
        let states = join_all(self.seeds.iter().map(|seed| node_state(seed, self.limit))).await;
        if states.iter().any(|state| state.as_deref() == Ok("ok")) {
            if self.lock().take().is_some() {
                tracing::info!("Redis Cluster reports cluster_state:ok again");
            }
            return Ok(());
        }
        let reports: Vec<String> = self
            .seeds
            .iter()
            .zip(&states)
            .map(|(seed, state)| match state {
                Ok(state) => format!("{} reports cluster_state:{state}", seed.addr()),
                Err(error) => format!("{}: {error}", seed.addr()),
            })
            .collect();
        let message = format!(
            "Redis Cluster is down, so commands fail with CLUSTERDOWN until every hash slot has a master again: {}",
            reports.join("; ")
        );
        let previous = self.lock().replace((Instant::now(), message.clone()));
        if previous.is_none() {
            tracing::warn!(reason = %message, "Redis Cluster is down; commands fail at once until it recovers");
        }
        Err(StoreError::Unavailable(message))
    }

    /// Starts a [`check`](Self::check) in the background after a command
    /// failed in a way that a cluster that is down would cause, so later
    /// commands fail at once when it is.
    pub(super) fn check_later(&self) {
        if self.checking.swap(true, Ordering::Relaxed) {
            return;
        }
        let health = self.clone();
        tokio::spawn(async move {
            // The result is recorded, and logged when the state changes.
            let _ = health.check().await;
            health.checking.store(false, Ordering::Relaxed);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, String)>> {
        // The guarded value is replaced whole, so a panic elsewhere cannot
        // leave it half-written.
        self.down
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Returns the `cluster_state` value that the node at `seed` reports.
async fn node_state(seed: &ConnectionInfo, limit: Duration) -> Result<String, String> {
    let query = async {
        let mut connection = Client::open(seed.clone())?
            .get_multiplexed_async_connection()
            .await?;
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async::<String>(&mut connection)
            .await
    };
    let info = match tokio::time::timeout(limit, query).await {
        Ok(Ok(info)) => info,
        Ok(Err(error)) => return Err(error.to_string()),
        Err(_) => return Err(format!("no reply to CLUSTER INFO within {limit:?}")),
    };
    cluster_state(&info)
        .map(str::to_owned)
        .ok_or_else(|| "CLUSTER INFO has no cluster_state".to_owned())
}

/// Reads the `cluster_state` field of a `CLUSTER INFO` reply.
pub(super) fn cluster_state(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|line| line.trim_end().strip_prefix("cluster_state:"))
}
