//! A real `redis-server` on a free loopback port, which a test can stop and
//! start again on the same port.
//!
//! The server appends every write command to a file and, with `appendfsync
//! always`, syncs the file before it replies. A server started again after a
//! kill therefore has every key written before, so a test can stop Redis and
//! check that sessions survive the outage.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ports::{free_port, PROXY_HOST};
use super::process::ChildGuard;

/// Time allowed for redis-server to reply to PING after it starts, including
/// loading its append-only file.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed for one PING attempt.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// A running (or stopped) redis-server with its data folder.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    process: Option<ChildGuard>,
}

impl RedisServer {
    /// Starts redis-server on a free port with its data folder under `dir`.
    pub async fn start(dir: &Path) -> Self {
        let data_dir = dir.join("redis");
        std::fs::create_dir_all(&data_dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", data_dir.display()));
        let mut server = RedisServer {
            port: free_port(PROXY_HOST),
            dir: data_dir,
            process: None,
        };
        server.restart().await;
        server
    }

    /// Returns the URL that portcullis connects to.
    pub fn url(&self) -> String {
        format!("redis://{PROXY_HOST}:{}", self.port)
    }

    /// Kills the server at once, like a crash or a lost node.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the server again on the same port and data folder, and waits
    /// until it replies to PING.
    pub async fn restart(&mut self) {
        self.stop();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", &PROXY_HOST.to_string()])
            .args(["--save", ""])
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir);
        let mut process = ChildGuard::spawn("redis-server", command, &self.dir.join("redis.log"));
        self.wait_until_ready(&mut process).await;
        self.process = Some(process);
    }

    async fn wait_until_ready(&self, process: &mut ChildGuard) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !ping(self.port).await {
            process.assert_running("redis-server to reply to PING");
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not reply to PING within {READY_TIMEOUT:?}; log:\n{}",
                self.port,
                process.log_contents()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends one inline PING; true when the reply is PONG (a server still
/// loading its data replies with an error instead).
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect((PROXY_HOST, port)).await.ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 64];
        let read = stream.read(&mut reply).await.ok()?;
        Some(reply[..read].starts_with(b"+PONG"))
    };
    tokio::time::timeout(PING_TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
