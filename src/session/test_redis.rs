//! A real `redis-server` for the component tests of the session stores,
//! started on a free loopback port and killed on drop, and the helpers that
//! the Sentinel and Cluster fixtures share with it.

pub mod cluster;
pub mod sentinel;

use std::collections::HashSet;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::Rng;

/// Time allowed for redis-server to reply to PING after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running redis-server without persistence.
pub struct TestRedis {
    child: Child,
    port: u16,
}

/// Starts redis-server on `port` without persistence, with `extra` options
/// such as `["--replicaof", "127.0.0.1", "6379"]`.
pub fn spawn_server(port: u16, extra: &[&str]) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (scripts/setup.sh installs it)")
}

impl TestRedis {
    /// Starts redis-server and waits until it replies to PING. Fails the test, and
    /// never skips it, when `redis-server` is not installed.
    pub async fn start() -> TestRedis {
        let port = free_port();
        let server = TestRedis {
            child: spawn_server(port, &[]),
            port,
        };
        server.wait_until_ready().await;
        server
    }

    /// Returns the `redis://` URL of the server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once, like a crash.
    pub fn kill(&mut self) {
        // kill fails only when the process already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process with SIGSTOP: connections stay open and every
    /// command waits, as behind a network partition.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused process run again with SIGCONT.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("the kill command can be run");
        assert!(
            status.success(),
            "kill -{name} redis-server failed: {status}"
        );
    }

    /// Starts a killed server again on the same port, empty, and waits until
    /// it replies to PING.
    pub async fn restart(&mut self) {
        self.kill();
        self.child = spawn_server(self.port, &[]);
        self.wait_until_ready().await;
    }

    /// Runs one command and returns its reply.
    pub async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        query_port(self.port, command).await
    }

    async fn wait_until_ready(&self) {
        wait_until_ready(self.port).await;
    }
}

/// Lowest port handed out; ports below it are left to system services.
const LOWEST_PORT: u16 = 10_000;

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// Returns `count` different loopback ports that were free a moment ago and
/// that no earlier call in this test process returned.
///
/// The ports lie below the kernel's ephemeral range, so an outgoing
/// connection or a listener on port 0 cannot take one before the server
/// binds it.
pub fn free_ports(count: usize) -> Vec<u16> {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let mut handed_out = HANDED_OUT
        .get_or_init(Mutex::default)
        .lock()
        .expect("no test panics while holding the port list");
    let end = ephemeral_range_start();
    let mut rng = rand::thread_rng();
    let mut ports = Vec::with_capacity(count);
    for _ in 0..count * 1_000 {
        if ports.len() == count {
            break;
        }
        let port = rng.gen_range(LOWEST_PORT..end);
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.insert(port);
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), count, "expected {count} free loopback ports");
    ports
}

/// Returns the first port of the kernel's ephemeral range (32768 when the
/// setting cannot be read).
fn ephemeral_range_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .filter(|start| *start > LOWEST_PORT + 1_000)
        .unwrap_or(32_768)
}

/// Runs one command on the server (or sentinel) at `port` and returns its
/// reply, failing the test when it cannot.
pub async fn query_port<T: redis::FromRedisValue>(port: u16, command: &redis::Cmd) -> T {
    try_query_port(port, command)
        .await
        .unwrap_or_else(|e| panic!("{command:?} on port {port} failed: {e}"))
}

/// Runs one command on the server at `port`, with a 2 s limit on the whole
/// attempt.
pub async fn try_query_port<T: redis::FromRedisValue>(
    port: u16,
    command: &redis::Cmd,
) -> redis::RedisResult<T> {
    let attempt = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        command.query_async(&mut connection).await
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "test query timed out",
            )))
        })
}

/// Waits until the server at `port` replies to PING.
pub async fn wait_until_ready(port: u16) {
    let deadline = Instant::now() + READY_TIMEOUT;
    while try_query_port::<String>(port, &redis::cmd("PING"))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} did not answer PING within {READY_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
