//! A real `redis-server` for the component tests of the session stores,
//! started on a free loopback port and killed on drop.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Time allowed for redis-server to reply to PING after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running redis-server without persistence.
pub struct TestRedis {
    child: Child,
    port: u16,
}

fn spawn_server(port: u16) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (scripts/setup.sh installs it)")
}

impl TestRedis {
    /// Starts redis-server and waits until it replies to PING. Fails the test, and
    /// never skips it, when `redis-server` is not installed.
    pub async fn start() -> TestRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let server = TestRedis {
            child: spawn_server(port),
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

    /// Starts a killed server again on the same port, empty, and waits until
    /// it replies to PING.
    pub async fn restart(&mut self) {
        self.kill();
        self.child = spawn_server(self.port);
        self.wait_until_ready().await;
    }

    /// Runs one command and returns its reply.
    pub async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let client = redis::Client::open(self.url()).expect("valid Redis URL");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("the test redis-server accepts connections");
        command
            .query_async(&mut connection)
            .await
            .expect("the test redis-server runs the command")
    }

    async fn wait_until_ready(&self) {
        let client = redis::Client::open(self.url()).expect("valid Redis URL");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut connection).await;
                if pong.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING within {READY_TIMEOUT:?}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
