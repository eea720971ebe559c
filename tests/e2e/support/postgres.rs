//! A private PostgreSQL server on a free loopback port, which a test can
//! stop and start again, unlike the shared one on port 5432.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the
//! server runs as the `postgres` system user, which owns its data folder.

use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::ports::{free_port, PROXY_HOST};
use super::process::ChildGuard;
use super::tls::ServerCertificate;

/// Where Debian installs the server programs.
const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// Time allowed for the server to accept connections after it starts,
/// including crash recovery.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Time allowed for an immediate shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or stopped) PostgreSQL server with its data folder.
pub struct PostgresServer {
    port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    owner: Option<(u32, u32)>,
    /// `-c name=value` settings besides the ones every server gets.
    settings: Vec<String>,
    process: Option<ChildGuard>,
    /// A folder of its own, because the `postgres` user cannot enter the
    /// test's folder, which only root may open.
    _root: tempfile::TempDir,
}

impl PostgresServer {
    /// Creates a cluster in a new temporary folder with trust
    /// authentication and starts it on a free port.
    pub async fn start() -> Self {
        PostgresServer::start_with_tls(None).await
    }

    /// Like [`PostgresServer::start`], with `ssl=on` and `certificate` when
    /// it is given, and with `log_connections=on`, so the log records whether
    /// each connection used TLS.
    pub async fn start_with_tls(certificate: Option<&ServerCertificate>) -> Self {
        let temporary = tempfile::Builder::new()
            .prefix("portcullis-e2e-postgres-")
            .tempdir()
            .expect("a temporary folder can be created");
        let root = temporary.path().to_owned();
        let owner = postgres_owner();
        if let Some((uid, gid)) = owner {
            chown(&root, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("cannot give {} to postgres: {e}", root.display()));
        }

        let data_dir = root.join("data");
        let mut initdb = server_command("initdb", owner);
        initdb.arg("--pgdata").arg(&data_dir).args([
            "--auth",
            "trust",
            "--username",
            "postgres",
            "--no-sync",
        ]);
        let output = initdb.output().expect("initdb can be run");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );

        let mut settings = Vec::new();
        if let Some(certificate) = certificate {
            settings = vec![
                "ssl=on".to_owned(),
                format!("ssl_cert_file={}", give_to(&certificate.cert, &root, owner)),
                format!("ssl_key_file={}", give_to(&certificate.key, &root, owner)),
                "log_connections=on".to_owned(),
            ];
        }
        let mut server = PostgresServer {
            port: free_port(PROXY_HOST),
            log: root.join("postgres.log"),
            data_dir,
            owner,
            settings,
            process: None,
            _root: temporary,
        };
        server.restart().await;
        server
    }

    /// Returns the URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@{PROXY_HOST}:{}/postgres", self.port)
    }

    /// Stops the server with an immediate shutdown, which ends every
    /// connection at once like a crash; the next start runs crash recovery.
    pub async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.signal("QUIT");
            if process.wait_exit(STOP_TIMEOUT).await.is_none() {
                process.kill();
            }
        }
    }

    /// Starts the server again on the same port and data folder, and waits
    /// until it accepts connections.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut command = server_command("postgres", self.owner);
        command
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-p", &self.port.to_string()])
            .args(["-h", &PROXY_HOST.to_string()])
            .arg("-k")
            .arg(self.data_dir.parent().unwrap_or(&self.data_dir))
            .args(["-c", "fsync=off", "-c", "max_connections=50"]);
        for setting in &self.settings {
            command.arg("-c").arg(setting);
        }
        self.process = Some(ChildGuard::spawn("postgres", command, &self.log));
        self.wait_until_ready().await;
    }

    /// Returns the server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let ready = Command::new(Path::new(BIN_DIR).join("pg_isready"))
                .args(["-h", &PROXY_HOST.to_string(), "-p", &self.port.to_string()])
                .output()
                .is_ok_and(|output| output.status.success());
            if ready {
                return;
            }
            if let Some(process) = self.process.as_mut() {
                process.assert_running("PostgreSQL to accept connections");
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not accept connections within {READY_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // An immediate shutdown lets the server end its backends; the guard
        // then kills whatever is left.
        if let Some(process) = self.process.as_ref() {
            process.signal("QUIT");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Copies `file` into `root`, readable only by the server's user as
/// PostgreSQL requires of a key file, and returns the copy's path.
fn give_to(file: &Path, root: &Path, owner: Option<(u32, u32)>) -> String {
    let name = file.file_name().expect("a file name");
    let copy = root.join(name);
    std::fs::copy(file, &copy)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", file.display(), copy.display()));
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("cannot restrict {}: {e}", copy.display()));
    if let Some((uid, gid)) = owner {
        chown(&copy, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("cannot give {} to postgres: {e}", copy.display()));
    }
    copy.display().to_string()
}

/// Returns the uid and gid of the `postgres` user when running as root.
fn postgres_owner() -> Option<(u32, u32)> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0");
    if !is_root {
        return None;
    }
    let read = |flag: &str| -> u32 {
        let output = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id can be run");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| {
                panic!("tests run as root need a postgres user (id {flag} postgres)")
            })
    };
    Some((read("-u"), read("-g")))
}

fn server_command(program: &str, owner: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(Path::new(BIN_DIR).join(program));
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
}
