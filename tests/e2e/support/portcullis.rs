//! The portcullis binary under test, started with a configuration file
//! written for the test.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use reqwest::{StatusCode, Url};

use super::fixtures::{CLIENT_ID, CLIENT_SECRET};
use super::ports::PROXY_HOST;
use super::process::ChildGuard;

/// Time allowed for `/livez` and then `/readyz` to return 200 after start.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Cookie signing key of every test instance. A fixed key keeps cookies valid
/// across a restart of the same instance.
pub const COOKIE_KEY: &str = "e2e-cookie-key-0123456789abcdefghijklmnop";

/// Name of the session cookie (the default of `session.cookie_name`).
pub const SESSION_COOKIE: &str = "_portcullis";

/// Name of the login binding cookie: `<session cookie>_login`.
pub const BINDING_COOKIE: &str = "_portcullis_login";

/// Where portcullis keeps sessions.
#[derive(Debug, Clone)]
pub enum Store {
    /// `session.store = "memory"`.
    Memory,
    /// `session.store = "redis"` at this URL.
    Redis(String),
}

/// What the configuration file of one instance points at.
pub struct PortcullisConfig {
    /// Port of the proxy listener. The provider's redirect URIs contain it.
    pub proxy_port: u16,
    /// Port of the admin listener.
    pub admin_port: u16,
    /// The dashboard.
    pub upstream: Url,
    /// The provider's issuer.
    pub issuer: Url,
    /// The session store.
    pub store: Store,
}

impl PortcullisConfig {
    /// Renders the configuration as TOML.
    pub fn to_toml(&self) -> String {
        let store = match &self.store {
            Store::Memory => "store = \"memory\"".to_owned(),
            Store::Redis(url) => {
                format!("store = \"redis\"\nredis_url = \"{url}\"\nredis_timeout = \"1s\"")
            }
        };
        format!(
            r#"[server]
listen = "{host}:{proxy}"
public_url = "http://{host}:{proxy}"
admin_listen = "{host}:{admin}"
grace_period = "1s"
shutdown_timeout = "1s"

[upstream]
url = "{upstream}"
connect_timeout = "2s"

[oidc]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
scopes = ["openid", "email", "profile", "groups"]
http_timeout = "5s"

[session]
{store}
cookie_secure = false
ttl = "1h"
cookie_keys = ["{COOKIE_KEY}"]

[log]
format = "text"
level = "info"
"#,
            host = PROXY_HOST,
            proxy = self.proxy_port,
            admin = self.admin_port,
            upstream = self.upstream.as_str().trim_end_matches('/'),
            issuer = self.issuer.as_str().trim_end_matches('/'),
        )
    }
}

/// Returns the `[directory]` table of an instance in `dir`: SQLite in
/// `dir/portcullis.db`, so no test writes the default `portcullis.db` into
/// the working directory.
fn directory_toml(dir: &Path) -> String {
    let path = dir.join("portcullis.db");
    format!("\n[directory]\nurl = \"sqlite://{}\"\n", path.display())
}

/// A running portcullis process.
pub struct Portcullis {
    /// `http://127.0.0.1:<proxy port>/`, also the configured `public_url`.
    pub proxy: Url,
    /// `http://127.0.0.1:<admin port>/`.
    pub admin: Url,
    /// The configuration file, which the administration commands read too.
    pub config_path: PathBuf,
    /// `PORTCULLIS_*` overrides given to the server and to every
    /// administration command.
    env: Vec<(String, String)>,
    process: ChildGuard,
}

impl Portcullis {
    /// Writes `config` to `dir/portcullis.toml`, starts `portcullis serve` and
    /// waits until `/livez` and `/readyz` return 200.
    // Not every build of the suite has a test that needs no options.
    #[allow(dead_code)]
    pub async fn start(dir: &Path, config: &PortcullisConfig) -> Self {
        Portcullis::start_with_env(dir, config, &[]).await
    }

    /// Like [`Portcullis::start`], with `PORTCULLIS_<SECTION>__<KEY>`
    /// overrides such as `("PORTCULLIS_SCIM__MAX_BODY_BYTES", "2048")`.
    pub async fn start_with_env(
        dir: &Path,
        config: &PortcullisConfig,
        env: &[(&str, &str)],
    ) -> Self {
        let mut portcullis = Portcullis::spawn(dir, config, env);
        portcullis.wait_until_ready().await;
        portcullis
    }

    /// Like [`Portcullis::start_with_env`], but waits only until `/livez`
    /// returns 200, for a test whose instance cannot become ready.
    pub async fn start_live(dir: &Path, config: &PortcullisConfig, env: &[(&str, &str)]) -> Self {
        let mut portcullis = Portcullis::spawn(dir, config, env);
        portcullis.wait_for_status(&["/livez"]).await;
        portcullis
    }

    /// Writes the configuration file and starts `portcullis serve`.
    fn spawn(dir: &Path, config: &PortcullisConfig, env: &[(&str, &str)]) -> Self {
        let config_path = dir.join("portcullis.toml");
        let toml = format!("{}{}", config.to_toml(), directory_toml(dir));
        std::fs::write(&config_path, toml)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let mut command = portcullis_command();
        command.envs(env.iter().map(|(name, value)| (name, value)));
        command.arg("serve").arg("--config").arg(&config_path);
        let process = ChildGuard::spawn("portcullis", command, &dir.join("portcullis.log"));
        Portcullis {
            proxy: origin(config.proxy_port),
            admin: origin(config.admin_port),
            config_path,
            env,
            process,
        }
    }

    /// Runs an administration command, such as `["token", "list"]`, with
    /// this instance's configuration file and overrides, and returns its
    /// output.
    pub fn command(&self, args: &[&str]) -> Output {
        let mut command = portcullis_command();
        command
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .args(args)
            .arg("--config")
            .arg(&self.config_path);
        command
            .output()
            .unwrap_or_else(|e| panic!("cannot run portcullis {args:?}: {e}"))
    }

    /// Creates an API token named "e2e" with `portcullis token create` and
    /// returns it. Panics unless the command succeeds and prints exactly one
    /// line, the token.
    pub fn token(&self) -> String {
        let output = self.command(&["token", "create", "--name", "e2e"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "portcullis token create failed with {}; stderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected token create to print exactly one line, got {stdout:?}"
        );
        assert!(
            lines[0].starts_with("wxt_"),
            "expected the token to start with wxt_, got {:?}",
            lines[0]
        );
        assert!(
            stdout.ends_with('\n') && !stdout.ends_with("\n\n"),
            "expected one line ending in a newline, got {stdout:?}"
        );
        lines[0].to_owned()
    }

    /// Returns the URL of `path` (with query) on the proxy listener.
    pub fn proxy_url(&self, path: &str) -> Url {
        self.proxy.join(path).expect("valid proxy path")
    }

    /// Returns the URL of `path` on the admin listener.
    pub fn admin_url(&self, path: &str) -> Url {
        self.admin.join(path).expect("valid admin path")
    }

    /// Sends `GET /metrics` to the admin listener and returns the response.
    pub async fn get_metrics(&self) -> reqwest::Response {
        let url = self.admin_url("/metrics");
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("HTTP client builds")
            .get(url.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url} failed: {e}"))
    }

    /// Returns the value of the sample `series` (name and labels exactly as
    /// rendered) at `/metrics`, or `None` when it is not listed.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self
            .get_metrics()
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("reading GET /metrics failed: {e}"));
        metric_sample(&text, series)
    }

    /// Fetches `/metrics` every 50 ms until the sample `series` reads
    /// `expected`, and prints how long that took. Fails the test, naming
    /// `case` and the last value read, when that takes longer than `limit`.
    pub async fn expect_metric(&self, series: &str, expected: f64, limit: Duration, case: &str) {
        let since = Instant::now();
        let mut value = self.metric(series).await;
        while value != Some(expected) {
            assert!(
                since.elapsed() < limit,
                "{case}: expected {series} {expected} within {limit:?}, got {value:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            value = self.metric(series).await;
        }
        println!(
            "{case}: {series} read {expected} after {} ms",
            since.elapsed().as_millis()
        );
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.process.terminate();
    }

    /// Kills the process and starts it again on the same ports and
    /// configuration file, with the overrides `env` in place of the earlier
    /// ones, and waits until it is ready. The log file continues.
    pub async fn restart_with_env(&mut self, env: &[(&str, &str)]) {
        self.process.kill();
        self.env = env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let mut command = portcullis_command();
        command.envs(self.env.iter().map(|(name, value)| (name, value)));
        command.arg("serve").arg("--config").arg(&self.config_path);
        let log = self.config_path.with_file_name("portcullis.log");
        self.process = ChildGuard::spawn("portcullis", command, &log);
        self.wait_until_ready().await;
    }

    /// Sends SIGHUP, which makes portcullis read its secret files again.
    pub fn reload_secrets(&self) {
        self.process.signal("HUP");
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout).await
    }

    /// Returns the log so far, for assertion messages.
    pub fn log(&self) -> String {
        self.process.log_contents()
    }

    /// Returns the log once a line satisfies `matches`, or the log so far
    /// after a second. Access lines are written in batches a few
    /// milliseconds after their response.
    pub async fn log_once(&self, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let log = self.log();
            if log.lines().any(&matches) || Instant::now() > deadline {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_until_ready(&mut self) {
        self.wait_for_status(&["/livez", "/readyz"]).await;
    }

    /// Waits until each of `paths` on the admin listener returns 200, in
    /// turn.
    async fn wait_for_status(&mut self, paths: &[&str]) {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client builds");
        let deadline = Instant::now() + READY_TIMEOUT;
        for path in paths {
            let url = self.admin_url(path);
            loop {
                let status = client.get(url.clone()).send().await.map(|r| r.status());
                if matches!(status, Ok(StatusCode::OK)) {
                    break;
                }
                self.process
                    .assert_running(&format!("GET {url} to return 200"));
                assert!(
                    Instant::now() < deadline,
                    "GET {url} did not return 200 within {READY_TIMEOUT:?}, last result {status:?}; log:\n{}",
                    self.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn origin(port: u16) -> Url {
    Url::parse(&format!("http://{PROXY_HOST}:{port}/")).expect("valid loopback URL")
}

/// Returns the value of the sample `series` (name and labels exactly as
/// rendered) in the Prometheus text `metrics`, or `None` when it is not
/// listed.
pub fn metric_sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Builds a command that runs the portcullis binary of this build, without
/// the `PORTCULLIS_*` overrides of the environment the tests run in.
pub fn portcullis_command() -> Command {
    let mut command = Command::new(binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PORTCULLIS_") {
            command.env_remove(name);
        }
    }
    command
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portcullis"))
}
