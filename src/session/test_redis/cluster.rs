//! A three-master Redis Cluster for the component tests, each node a
//! `redis-server` on free loopback ports, joined by
//! `redis-cli --cluster create` and killed on drop.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{free_ports, spawn_server, try_query_port, wait_until_ready};

/// Time allowed for `redis-cli --cluster create` and for every node to
/// report `cluster_state:ok`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Three running masters that together serve all 16384 slots.
pub struct TestCluster {
    nodes: Vec<(Child, u16)>,
    /// The nodes' cluster configuration files.
    _dir: TempDir,
}

impl TestCluster {
    /// Starts three nodes, makes them one cluster without replicas and
    /// waits until every node serves requests.
    pub async fn start() -> TestCluster {
        let dir = tempfile::Builder::new()
            .prefix("portcullis-cluster-")
            .tempdir()
            .expect("a temporary folder");
        let ports = free_ports(6);
        let nodes = ports
            .chunks(2)
            .map(|pair| spawn_node(&dir, pair[0], pair[1]))
            .collect();
        let cluster = TestCluster { nodes, _dir: dir };
        for port in cluster.ports() {
            wait_until_ready(port).await;
        }
        cluster.create().await;
        cluster.wait_until_ok().await;
        cluster
    }

    /// Returns the `redis+cluster://` URL listing every node, starting with
    /// node number `first`.
    pub fn url_from(&self, first: usize) -> String {
        let ports = self.ports();
        let hosts: Vec<String> = (0..ports.len())
            .map(|offset| format!("127.0.0.1:{}", ports[(first + offset) % ports.len()]))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Returns the `redis+cluster://` URL listing every node.
    pub fn url(&self) -> String {
        self.url_from(0)
    }

    /// Runs one command through a cluster connection, which sends it to the
    /// node that serves its key.
    pub async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let seeds: Vec<String> = self
            .ports()
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect();
        let client = redis::cluster::ClusterClient::new(seeds).expect("valid node URLs");
        let mut connection = client
            .get_async_connection()
            .await
            .expect("the test cluster accepts connections");
        command
            .query_async(&mut connection)
            .await
            .unwrap_or_else(|e| panic!("{command:?} on the test cluster failed: {e}"))
    }

    /// Kills node number `index` at once, like a crash, and waits until
    /// node `watcher` reports `cluster_state:fail`, which takes the 2 s node
    /// timeout and a little more.
    pub async fn kill_node(&mut self, index: usize, watcher: usize) {
        let (child, _) = &mut self.nodes[index];
        // kill fails only when the process already exited.
        let _ = child.kill();
        let _ = child.wait();
        let port = self.nodes[watcher].1;
        let deadline = Instant::now() + JOIN_TIMEOUT;
        loop {
            let info: String = try_query_port(port, redis::cmd("CLUSTER").arg("INFO"))
                .await
                .unwrap_or_default();
            if info.contains("cluster_state:fail") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {port} did not report cluster_state:fail within {JOIN_TIMEOUT:?}:\n{info}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(_, port)| *port).collect()
    }

    async fn create(&self) {
        let mut command = tokio::process::Command::new("redis-cli");
        command.arg("--cluster").arg("create");
        for port in self.ports() {
            command.arg(format!("127.0.0.1:{port}"));
        }
        command
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(JOIN_TIMEOUT, command.output())
            .await
            .unwrap_or_else(|_| panic!("redis-cli --cluster create took over {JOIN_TIMEOUT:?}"))
            .expect("redis-cli is installed (scripts/setup.sh installs it)");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed with {}:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    async fn wait_until_ok(&self) {
        let deadline = Instant::now() + JOIN_TIMEOUT;
        for port in self.ports() {
            loop {
                let info: String = try_query_port(port, redis::cmd("CLUSTER").arg("INFO"))
                    .await
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {port} did not report cluster_state:ok within {JOIN_TIMEOUT:?}:\n{info}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for (child, _) in &mut self.nodes {
            // kill fails only when the process already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts one cluster-enabled node. The cluster bus gets its own free port,
/// because the default (the client port + 10000) can pass 65535 for the
/// high ports the kernel hands out.
fn spawn_node(dir: &TempDir, port: u16, bus_port: u16) -> (Child, u16) {
    let bus_port = bus_port.to_string();
    let config_file = dir.path().join(format!("nodes-{port}.conf"));
    let config_file = config_file.to_str().expect("a UTF-8 temporary path");
    let directory = dir.path().to_str().expect("a UTF-8 temporary path");
    let child = spawn_server(
        port,
        &[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            config_file,
            "--cluster-port",
            &bus_port,
            "--cluster-node-timeout",
            "2000",
            "--dir",
            directory,
        ],
    );
    (child, port)
}
