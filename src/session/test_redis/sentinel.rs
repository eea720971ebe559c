//! A Sentinel group for the component tests: a master, one replica and
//! sentinels, each a `redis-server` on a free loopback port, all killed on
//! drop. `redis-server <file> --sentinel` runs a sentinel, so the Debian
//! `redis-server` package is enough.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{free_ports, query_port, spawn_server, try_query_port, wait_until_ready};

/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "mymaster";

/// Time allowed for the sentinels to know each other and the replica.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// One process and its port.
struct Node {
    child: Option<Child>,
    port: u16,
}

impl Node {
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // kill fails only when the process already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running master, replica and sentinels.
pub struct TestSentinel {
    master: Node,
    replica: Node,
    sentinels: Vec<Node>,
    /// Sentinels rewrite their configuration file, so each gets a fresh one
    /// here.
    _dir: TempDir,
}

impl TestSentinel {
    /// Starts a master, a replica of it and `sentinel_count` sentinels with
    /// a quorum of `sentinel_count / 2 + 1` that consider a master down after
    /// 1 s without a reply, and waits until every sentinel names the master.
    /// The sentinels start once the replica is in sync, because a sentinel
    /// refreshes a replica's state only every 10 s and refuses to promote a
    /// replica it last saw out of sync.
    pub async fn start(sentinel_count: usize) -> TestSentinel {
        let dir = tempfile::Builder::new()
            .prefix("portcullis-sentinel-")
            .tempdir()
            .expect("a temporary folder");
        let ports = free_ports(2 + sentinel_count);
        let (master_port, replica_port) = (ports[0], ports[1]);
        // A replica writes the snapshot of its full sync into its folder,
        // which must not be the working directory of the tests.
        let folder = dir.path().to_str().expect("a UTF-8 temporary path");
        let master = Node {
            child: Some(spawn_server(master_port, &["--dir", folder])),
            port: master_port,
        };
        let replica = Node {
            child: Some(spawn_server(
                replica_port,
                &[
                    "--dir",
                    folder,
                    "--replicaof",
                    "127.0.0.1",
                    &master_port.to_string(),
                ],
            )),
            port: replica_port,
        };
        let mut group = TestSentinel {
            master,
            replica,
            sentinels: Vec::new(),
            _dir: dir,
        };
        wait_until_ready(master_port).await;
        wait_until_ready(replica_port).await;
        group.wait_until_replica_synced().await;

        let quorum = sentinel_count / 2 + 1;
        group.sentinels = ports[2..]
            .iter()
            .map(|port| spawn_sentinel(&group._dir, *port, master_port, quorum))
            .collect();
        for sentinel in &group.sentinels {
            wait_until_ready(sentinel.port).await;
        }
        for sentinel in &group.sentinels {
            group.wait_for_sentinel(sentinel.port, |_| true).await;
        }
        group
    }

    /// Returns the `redis+sentinel://` URL of the group.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
    }

    /// Returns the port of the master the group started with.
    pub fn master_port(&self) -> u16 {
        self.master.port
    }

    /// Returns the port of the replica the group started with.
    pub fn replica_port(&self) -> u16 {
        self.replica.port
    }

    /// Returns the port of the first sentinel.
    pub fn sentinel_port(&self) -> u16 {
        self.sentinels[0].port
    }

    /// Waits until every sentinel knows the other sentinels and sees the
    /// replica connected and in sync, so that a failover can start.
    pub async fn wait_until_failover_ready(&self) {
        let others = self.sentinels.len() - 1;
        for sentinel in &self.sentinels {
            self.wait_for_sentinel(sentinel.port, |fields| {
                field(fields, "num-other-sentinels") == Some(others.to_string())
                    && field(fields, "num-slaves") == Some("1".to_owned())
            })
            .await;
            self.wait_for_replica_seen_by(sentinel.port).await;
        }
    }

    async fn wait_for_replica_seen_by(&self, sentinel_port: u16) {
        let deadline = Instant::now() + DISCOVERY_TIMEOUT;
        let mut command = redis::cmd("SENTINEL");
        command.arg("REPLICAS").arg(MASTER_NAME);
        loop {
            let replicas: Vec<Vec<String>> = try_query_port(sentinel_port, &command)
                .await
                .unwrap_or_default();
            let usable = replicas.iter().any(|fields| {
                field(fields, "flags").as_deref() == Some("slave")
                    && field(fields, "master-link-status").as_deref() == Some("ok")
            });
            if usable {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinel on port {sentinel_port} did not see a usable replica within {DISCOVERY_TIMEOUT:?}: {replicas:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_until_replica_synced(&self) {
        let deadline = Instant::now() + DISCOVERY_TIMEOUT;
        loop {
            let info: String =
                query_port(self.replica.port, redis::cmd("INFO").arg("replication")).await;
            if info.contains("master_link_status:up") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the replica did not sync within {DISCOVERY_TIMEOUT:?}:\n{info}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes a marker on the master and waits until the replica has it.
    /// Replication is one ordered stream, so every earlier write of any
    /// client has then reached the replica too. `WAIT` alone would not
    /// do: it waits only for the calling connection's own writes.
    pub async fn sync_replica(&self) {
        let mut marker = redis::cmd("SET");
        marker.arg("test:replication-marker").arg("1");
        let replicated: i64 = async {
            let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.master.port))?;
            let mut connection = client.get_multiplexed_async_connection().await?;
            marker.query_async::<()>(&mut connection).await?;
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
            "the replica acknowledged the writes within 2 s"
        );
    }

    /// Kills the master at once, like a crash.
    pub fn kill_master(&mut self) {
        self.master.kill();
    }

    /// Stops sentinel number `index` with `SIGSTOP`, so that it accepts TCP
    /// connections (the kernel completes the handshake) but never answers,
    /// like a hung process. The returned guard resumes it with `SIGCONT`
    /// when dropped, also when the test panics.
    pub fn pause_sentinel(&self, index: usize) -> PausedProcess {
        let pid = self.sentinels[index]
            .child
            .as_ref()
            .expect("the sentinel is running")
            .id();
        send_signal("STOP", pid);
        PausedProcess { pid }
    }

    /// Asks the first sentinel for the master's port until it is `port`, for
    /// at most `limit`. Returns the time it took.
    pub async fn wait_for_master(&self, port: u16, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.named_master_port().await == Some(port) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "the sentinels did not name port {port} the master within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Returns the port of the master that the first sentinel names.
    pub async fn named_master_port(&self) -> Option<u16> {
        let mut command = redis::cmd("SENTINEL");
        command.arg("get-master-addr-by-name").arg(MASTER_NAME);
        let reply: Option<(String, u16)> = try_query_port(self.sentinels[0].port, &command)
            .await
            .ok()
            .flatten();
        reply.map(|(_, port)| port)
    }

    /// Polls `SENTINEL MASTER` on the sentinel at `port` until it names the
    /// master and its fields satisfy `ready`.
    async fn wait_for_sentinel(&self, port: u16, ready: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + DISCOVERY_TIMEOUT;
        let mut command = redis::cmd("SENTINEL");
        command.arg("MASTER").arg(MASTER_NAME);
        loop {
            let fields: Vec<String> = try_query_port(port, &command).await.unwrap_or_default();
            if !fields.is_empty() && ready(&fields) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinel on port {port} was not ready within {DISCOVERY_TIMEOUT:?}: {fields:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for TestSentinel {
    fn drop(&mut self) {
        for sentinel in &mut self.sentinels {
            sentinel.kill();
        }
        self.master.kill();
        self.replica.kill();
    }
}

/// A process stopped with `SIGSTOP`, resumed with `SIGCONT` on drop.
pub struct PausedProcess {
    pid: u32,
}

impl Drop for PausedProcess {
    fn drop(&mut self) {
        send_signal("CONT", self.pid);
    }
}

/// Sends `SIG<signal>` to `pid` with kill(1), which procps installs on
/// every Debian system.
fn send_signal(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// Returns the value after `name` in a flat name, value, … reply.
fn field(fields: &[String], name: &str) -> Option<String> {
    fields
        .chunks(2)
        .find(|pair| pair[0] == name)
        .and_then(|pair| pair.get(1).cloned())
}

fn spawn_sentinel(dir: &TempDir, port: u16, master_port: u16, quorum: usize) -> Node {
    let path = dir.path().join(format!("sentinel-{port}.conf"));
    let config = format!(
        "bind 127.0.0.1\nport {port}\ndir {dir}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {quorum}\n\
         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
         sentinel failover-timeout {MASTER_NAME} 5000\n",
        dir = dir.path().display(),
    );
    std::fs::write(&path, config).expect("the sentinel configuration is written");
    let child = Command::new("redis-server")
        .arg(&path)
        .arg("--sentinel")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (scripts/setup.sh installs it)");
    Node {
        child: Some(child),
        port,
    }
}
