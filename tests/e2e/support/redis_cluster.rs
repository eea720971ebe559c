//! A Redis Cluster on loopback ports: three masters without replicas, each
//! a `redis-server`, joined with `redis-cli --cluster create` and killed
//! when the cluster is dropped.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::ports::{free_port, PROXY_HOST};
use super::process::ChildGuard;

/// Time allowed for each node to start, for `redis-cli --cluster create`
/// and for every node to report `cluster_state:ok`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Three running masters that together serve all 16384 slots.
pub struct RedisCluster {
    ports: Vec<u16>,
    _nodes: Vec<ChildGuard>,
}

impl RedisCluster {
    /// Starts three nodes with their files under `dir`, makes them one
    /// cluster and waits until every node serves requests.
    pub async fn start(dir: &Path) -> RedisCluster {
        let dir = dir.join("redis-cluster");
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut ports = Vec::new();
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let (port, node) = start_node(&dir).await;
            ports.push(port);
            nodes.push(node);
        }
        let cluster = RedisCluster {
            ports,
            _nodes: nodes,
        };
        cluster.create(&dir).await;
        cluster.wait_until_ok().await;
        cluster
    }

    /// Returns the `redis+cluster://` URL that portcullis connects to.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .ports
            .iter()
            .map(|port| format!("{PROXY_HOST}:{port}"))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Returns the number of keys matching `pattern` on all nodes together.
    pub async fn count_keys(&self, pattern: &str) -> usize {
        let mut total = 0;
        for port in &self.ports {
            let keys: Vec<String> = query(*port, redis::cmd("KEYS").arg(pattern))
                .await
                .unwrap_or_else(|e| panic!("KEYS on node {port} failed: {e}"));
            total += keys.len();
        }
        total
    }

    async fn create(&self, dir: &Path) {
        let log = dir.join("redis-cli.log");
        let mut command = Command::new("redis-cli");
        command.args(["--cluster", "create"]);
        for port in &self.ports {
            command.arg(format!("{PROXY_HOST}:{port}"));
        }
        command
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null());
        let mut process = ChildGuard::spawn("redis-cli --cluster create", command, &log);
        let status = process.wait_exit(READY_TIMEOUT).await.unwrap_or_else(|| {
            panic!(
                "redis-cli --cluster create did not finish within {READY_TIMEOUT:?}; log:\n{}",
                process.log_contents()
            )
        });
        assert!(
            status.success(),
            "redis-cli --cluster create failed with {status}; log:\n{}",
            process.log_contents()
        );
    }

    async fn wait_until_ok(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for port in &self.ports {
            loop {
                let info: String = query(*port, redis::cmd("CLUSTER").arg("INFO"))
                    .await
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "expected node {port} to report cluster_state:ok within {READY_TIMEOUT:?}:\n{info}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Runs one command on the node at `port` alone, with a 2 s limit.
async fn query<T: redis::FromRedisValue>(port: u16, command: &redis::Cmd) -> redis::RedisResult<T> {
    let attempt = async {
        let client = redis::Client::open(format!("redis://{PROXY_HOST}:{port}"))?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        command.query_async(&mut connection).await
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .unwrap_or_else(|_| Err((redis::ErrorKind::Io, "query timed out").into()))
}

/// Starts one cluster-enabled node and waits until it replies to PING. The
/// cluster bus gets its own free port, because the default (the client
/// port + 10000) can pass 65535 for the high ports the kernel hands out.
async fn start_node(dir: &Path) -> (u16, ChildGuard) {
    let port = free_port(PROXY_HOST);
    let bus_port = free_port(PROXY_HOST);
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port.to_string()])
        .args(["--bind", &PROXY_HOST.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-port", &bus_port.to_string()])
        .args(["--cluster-node-timeout", "2000"])
        .arg("--cluster-config-file")
        .arg(dir.join(format!("nodes-{port}.conf")))
        .arg("--dir")
        .arg(dir);
    let log = dir.join(format!("redis-node-{port}.log"));
    let mut process = ChildGuard::spawn("redis cluster node", command, &log);
    let deadline = Instant::now() + READY_TIMEOUT;
    while query::<String>(port, &redis::cmd("PING")).await.is_err() {
        process.assert_running(&format!("cluster node {port} to reply to PING"));
        assert!(
            Instant::now() < deadline,
            "cluster node {port} did not reply to PING within {READY_TIMEOUT:?}; log:\n{}",
            process.log_contents()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (port, process)
}
