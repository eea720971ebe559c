//! A Redis Sentinel group on loopback ports: a master, one replica and
//! three sentinels with a quorum of two, each a `redis-server` (run as a
//! sentinel with `--sentinel`), killed when the group is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::ports::{free_port, PROXY_HOST};
use super::process::ChildGuard;

/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "mymaster";

/// Number of sentinels; with a quorum of two, one may be missing.
const SENTINELS: usize = 3;

/// Time allowed for each node to start, and for the sentinels to discover
/// each other and the replica.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// One redis-server process of the group.
struct Node {
    port: u16,
    process: Option<ChildGuard>,
}

/// A running master, replica and sentinels.
pub struct SentinelGroup {
    master: Node,
    replica: Node,
    sentinels: Vec<Node>,
}

impl SentinelGroup {
    /// Starts the group with its files under `dir`, waits until the replica
    /// is in sync and until every sentinel has discovered the others and the
    /// replica, so that a failover can start at once. A sentinel considers
    /// the master down after 1 s without a reply.
    pub async fn start(dir: &Path) -> SentinelGroup {
        let dir = dir.join("redis-sentinel");
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let master_port = free_port(PROXY_HOST);
        let master = start_node("redis master", data_node(&dir, master_port, None), &dir).await;
        let replica_port = free_port(PROXY_HOST);
        let replica = start_node(
            "redis replica",
            data_node(&dir, replica_port, Some(master_port)),
            &dir,
        )
        .await;
        let mut group = SentinelGroup {
            master,
            replica,
            sentinels: Vec::new(),
        };
        // A sentinel refreshes a replica's state only every 10 s and does
        // not promote a replica that it last saw out of sync.
        group.wait_until_replica_synced().await;
        for _ in 0..SENTINELS {
            let port = free_port(PROXY_HOST);
            let command = sentinel_node(&dir, port, master_port);
            group
                .sentinels
                .push(start_node("redis sentinel", command, &dir).await);
        }
        group.wait_until_sentinels_ready().await;
        group
    }

    /// Returns the `redis+sentinel://` URL that portcullis connects to.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("{PROXY_HOST}:{}", sentinel.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// Returns the port of the replica the group started with.
    pub fn replica_port(&self) -> u16 {
        self.replica.port
    }

    /// Writes a marker on the master and waits until the replica has
    /// acknowledged it. Replication is one ordered stream, so every earlier
    /// write, such as portcullis's sessions, has then reached the replica.
    /// `WAIT` on a connection of its own would not do: it waits only for
    /// the writes of the calling connection.
    pub async fn sync_replica(&self) {
        let replicated: i64 = async {
            let mut connection = connect(self.master.port).await?;
            redis::cmd("SET")
                .arg("e2e:replication-marker")
                .arg("1")
                .query_async::<()>(&mut connection)
                .await?;
            redis::cmd("WAIT")
                .arg(1)
                .arg(2000)
                .query_async(&mut connection)
                .await
        }
        .await
        .expect("SET and WAIT on the master");
        assert_eq!(
            replicated, 1,
            "expected the replica to acknowledge the writes within 2 s"
        );
    }

    /// Kills the master at once, like a crash or a lost node.
    pub fn kill_master(&mut self) {
        if let Some(mut process) = self.master.process.take() {
            process.kill();
        }
    }

    /// Returns the port of the master that the first sentinel names, or
    /// `None` when it does not reply.
    pub async fn named_master_port(&self) -> Option<u16> {
        let mut command = redis::cmd("SENTINEL");
        command.arg("get-master-addr-by-name").arg(MASTER_NAME);
        let reply: Option<(String, u16)> = query(self.sentinels[0].port, &command).await.ok()?;
        reply.map(|(_, port)| port)
    }

    async fn wait_until_replica_synced(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let info: String = query(self.replica.port, redis::cmd("INFO").arg("replication"))
                .await
                .unwrap_or_default();
            if info.contains("master_link_status:up") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "expected the replica to sync within {READY_TIMEOUT:?}:\n{info}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_until_sentinels_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for sentinel in &self.sentinels {
            loop {
                let (known, seen) = sentinel_view(sentinel.port).await;
                if known == SENTINELS - 1 && seen {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "expected the sentinel on port {} to know {} other sentinels and an in-sync replica within {READY_TIMEOUT:?}, it knows {known} (replica seen: {seen})",
                    sentinel.port,
                    SENTINELS - 1
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Returns how many other sentinels the sentinel at `port` has discovered,
/// and whether it sees a connected replica in sync with the master.
async fn sentinel_view(port: u16) -> (usize, bool) {
    let mut sentinels = redis::cmd("SENTINEL");
    sentinels.arg("SENTINELS").arg(MASTER_NAME);
    let known: Vec<Vec<String>> = query(port, &sentinels).await.unwrap_or_default();
    let mut replicas = redis::cmd("SENTINEL");
    replicas.arg("REPLICAS").arg(MASTER_NAME);
    let replicas: Vec<Vec<String>> = query(port, &replicas).await.unwrap_or_default();
    let seen = replicas.iter().any(|fields| {
        field(fields, "flags") == Some("slave") && field(fields, "master-link-status") == Some("ok")
    });
    (known.len(), seen)
}

/// Returns the value after `name` in a flat name, value, … reply.
fn field<'a>(fields: &'a [String], name: &str) -> Option<&'a str> {
    fields
        .chunks(2)
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair.get(1))
        .map(String::as_str)
}

async fn connect(port: u16) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(format!("redis://{PROXY_HOST}:{port}"))?
        .get_multiplexed_async_connection()
        .await
}

/// Runs one command on the node at `port`, with a 2 s limit.
async fn query<T: redis::FromRedisValue>(port: u16, command: &redis::Cmd) -> redis::RedisResult<T> {
    let attempt = async { command.query_async(&mut connect(port).await?).await };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .unwrap_or_else(|_| Err((redis::ErrorKind::Io, "query timed out").into()))
}

/// Builds the command of a data node on `port`, a replica of `master` when
/// given, without persistence. Its folder also takes the snapshot that a
/// replica receives in a full sync.
fn data_node(dir: &Path, port: u16, master: Option<u16>) -> (u16, Command) {
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string()])
        .args(["--bind", &PROXY_HOST.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir);
    if let Some(master) = master {
        command.args(["--replicaof", &PROXY_HOST.to_string(), &master.to_string()]);
    }
    (port, command)
}

/// Writes a fresh configuration file for a sentinel on `port` (a sentinel
/// rewrites its file) and builds its command.
fn sentinel_node(dir: &Path, port: u16, master_port: u16) -> (u16, Command) {
    let path: PathBuf = dir.join(format!("sentinel-{port}.conf"));
    let config = format!(
        "bind {PROXY_HOST}\nport {port}\ndir {dir}\n\
         sentinel monitor {MASTER_NAME} {PROXY_HOST} {master_port} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
         sentinel failover-timeout {MASTER_NAME} 5000\n",
        dir = dir.display(),
    );
    std::fs::write(&path, config)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    let mut command = Command::new("redis-server");
    command.arg(&path).arg("--sentinel");
    (port, command)
}

async fn start_node(name: &str, (port, command): (u16, Command), dir: &Path) -> Node {
    let log = dir.join(format!("{}-{port}.log", name.replace(' ', "-")));
    let mut process = ChildGuard::spawn(name, command, &log);
    let deadline = Instant::now() + READY_TIMEOUT;
    while query::<String>(port, &redis::cmd("PING")).await.is_err() {
        process.assert_running(&format!("{name} on port {port} to reply to PING"));
        assert!(
            Instant::now() < deadline,
            "{name} on port {port} did not reply to PING within {READY_TIMEOUT:?}; log:\n{}",
            process.log_contents()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Node {
        port,
        process: Some(process),
    }
}
