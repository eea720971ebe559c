//! Queries the sentinels for the master: all of them at once, each with its
//! own time limit, taking the first valid reply.
//!
//! The redis crate's lookup (1.8.2, `Sentinel::async_master_for`) takes the
//! replies in the order of the URL and sets no limit per sentinel. One hung
//! sentinel at the head of the list (a stopped process, a lost network path)
//! then holds every lookup until the store's command timeout drops it, and a
//! failover is never followed. Here a hung sentinel costs a lookup at most
//! [`SentinelLookup::limit`], and only when no other sentinel names a master.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    RedisConnectionInfo, RedisResult, Role,
};

use crate::session::store::redis_url::SentinelTopology;

/// The sentinels of one master and the settings of its data nodes.
pub(super) struct SentinelLookup {
    sentinels: Vec<SentinelNode>,
    master_name: String,
    /// Database and credentials for the master.
    data_settings: RedisConnectionInfo,
    /// Limit of each step of a lookup: connecting to a sentinel and getting
    /// its reply, then connecting to the master it names and getting its
    /// `ROLE`. A lookup therefore takes at most twice this.
    limit: Duration,
}

/// One sentinel and the connection to it that the last lookup left open.
struct SentinelNode {
    settings: ConnectionInfo,
    /// `host:port`, for messages; never contains a password.
    address: String,
    connection: Option<MultiplexedConnection>,
}

impl SentinelLookup {
    /// Prepares the lookup; nothing is connected yet.
    pub(super) fn new(topology: &SentinelTopology, limit: Duration) -> Self {
        let sentinels = topology
            .sentinel_connections()
            .into_iter()
            .map(|settings| SentinelNode {
                address: settings.addr().to_string(),
                settings,
                connection: None,
            })
            .collect();
        SentinelLookup {
            sentinels,
            master_name: topology.master_name.clone(),
            data_settings: topology.data_credentials.redis_settings(topology.db),
            limit,
        }
    }

    /// Returns the settings of the master that the first sentinel to reply
    /// names, once the master confirms its role with `ROLE`. When no
    /// sentinel leads to a confirmed master, the error lists what went wrong
    /// with each sentinel, naming it.
    pub(super) async fn find_master(&mut self) -> Result<ConnectionInfo, String> {
        let limit = self.limit;
        let master_name = self.master_name.as_str();
        let data_settings = &self.data_settings;
        let mut lookups: FuturesUnordered<_> = self
            .sentinels
            .iter_mut()
            .map(|sentinel| async move {
                let (host, port) = sentinel.master_address(master_name, limit).await?;
                let master = ConnectionAddr::Tcp(host, port)
                    .into_connection_info()
                    .map_err(|e| format!("sentinel {}: {e}", sentinel.address))?
                    .set_redis_settings(data_settings.clone());
                confirm_master(&master, limit).await.map_err(|e| {
                    format!(
                        "master {} named by sentinel {}: {e}",
                        master.addr(),
                        sentinel.address
                    )
                })?;
                Ok::<_, String>(master)
            })
            .collect();

        let mut failures = Vec::new();
        while let Some(lookup) = lookups.next().await {
            match lookup {
                Ok(master) => return Ok(master),
                Err(failure) => failures.push(failure),
            }
        }
        Err(failures.join("; "))
    }
}

impl SentinelNode {
    /// Asks this sentinel for the address of `master_name`, which must not
    /// be flagged down. A connection that failed or timed out is closed, so
    /// the next lookup connects again.
    async fn master_address(
        &mut self,
        master_name: &str,
        limit: Duration,
    ) -> Result<(String, u16), String> {
        let reply = tokio::time::timeout(limit, self.query_master(master_name, limit)).await;
        let fields = match reply {
            Ok(Ok(fields)) => fields,
            Ok(Err(error)) => {
                self.connection = None;
                return Err(format!("sentinel {}: {error}", self.address));
            }
            Err(_) => {
                self.connection = None;
                return Err(format!(
                    "sentinel {}: no answer within {limit:?}",
                    self.address
                ));
            }
        };
        valid_master(&fields).map_err(|reason| format!("sentinel {}: {reason}", self.address))
    }

    async fn query_master(
        &mut self,
        master_name: &str,
        limit: Duration,
    ) -> RedisResult<HashMap<String, String>> {
        let mut connection = match &self.connection {
            Some(connection) => connection.clone(),
            None => {
                let connection = connect(&self.settings, limit).await?;
                self.connection = Some(connection.clone());
                connection
            }
        };
        redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(master_name)
            .query_async(&mut connection)
            .await
    }
}

/// Reads the address from a `SENTINEL MASTER` reply, unless the sentinel
/// considers that master down (`s_down` by itself, `o_down` with a quorum)
/// or no longer a master.
fn valid_master(fields: &HashMap<String, String>) -> Result<(String, u16), String> {
    let flags = fields.get("flags").map_or("", String::as_str);
    let flagged = |flag: &str| flags.split(',').any(|f| f == flag);
    if !flagged("master") || flagged("s_down") || flagged("o_down") {
        return Err(format!("the master is flagged {flags:?}"));
    }
    let host = fields.get("ip").ok_or("the reply has no ip")?;
    let port = fields
        .get("port")
        .and_then(|port| port.parse::<u16>().ok())
        .ok_or("the reply has no valid port")?;
    Ok((host.clone(), port))
}

/// Checks that the node at `master` replies to `ROLE` as a master, within
/// `limit` for connecting and the reply together. A sentinel can name a
/// master that was demoted moments ago.
async fn confirm_master(master: &ConnectionInfo, limit: Duration) -> Result<(), String> {
    let check = async {
        let mut connection = connect(master, limit).await?;
        redis::cmd("ROLE")
            .query_async::<Role>(&mut connection)
            .await
    };
    match tokio::time::timeout(limit, check).await {
        Ok(Ok(Role::Primary { .. })) => Ok(()),
        Ok(Ok(_)) => Err("the node is not a master".to_owned()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer to ROLE within {limit:?}")),
    }
}

async fn connect(settings: &ConnectionInfo, limit: Duration) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(limit))
        .set_response_timeout(Some(limit));
    Client::open(settings.clone())?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}
