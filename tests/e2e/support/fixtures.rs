//! The Node.js fixtures from tests/fixtures: the OpenID provider (`idp.mjs`)
//! and the dashboard behind the proxy (`upstream.mjs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use reqwest::Url;

use super::ports::{free_port, IDP_HOST, PROXY_HOST};
use super::process::ChildGuard;

/// Time allowed for a fixture to print its ready line. Both fixtures took
/// under a second in this suite on an idle 2-core machine, so this leaves a
/// wide margin for a loaded one.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Time one provider start gets before it is abandoned and tried again.
const IDP_START_ATTEMPT: Duration = Duration::from_secs(20);

/// Provider starts tried before a test fails.
const IDP_START_ATTEMPTS: u32 = 3;

/// Client id and secret registered at the provider and configured in
/// portcullis.
pub const CLIENT_ID: &str = "portcullis";
/// See [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "e2e-client-secret";

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `npm ci` in tests/fixtures when node_modules is missing, once per
/// test process, so that parallel tests never run two installs at once.
/// scripts/setup.sh normally did it already.
fn ensure_fixture_packages() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let dir = fixtures_dir();
        if dir.join("node_modules").is_dir() {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .expect("npm can be run");
        assert!(
            status.success(),
            "npm ci in {} failed: {status}",
            dir.display()
        );
    });
}

fn node_command(script: &str) -> Command {
    ensure_fixture_packages();
    let mut command = Command::new("node");
    command.arg(fixtures_dir().join(script));
    command
}

/// The certificate the provider serves HTTPS with, and the CA that signed it.
#[derive(Clone)]
pub struct IdpTls {
    /// The server certificate for 127.0.0.2, in PEM.
    pub cert: PathBuf,
    /// Its private key, in PEM.
    pub key: PathBuf,
    /// The CA certificate, which the test's own clients trust.
    pub ca: reqwest::Certificate,
}

/// The OpenID provider, with the endpoints its discovery document lists.
pub struct Idp {
    /// `http://127.0.0.2:<port>`, or `https://` when it serves HTTPS, as it
    /// appears in ID tokens.
    pub issuer: Url,
    /// Where portcullis sends browsers to sign in.
    pub authorization_endpoint: Url,
    /// Where portcullis sends browsers after sign-out.
    pub end_session_endpoint: Url,
    /// The CA that the test's clients trust when the provider serves HTTPS.
    pub ca: Option<reqwest::Certificate>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    starts: usize,
    process: Option<ChildGuard>,
}

impl Idp {
    /// Starts the provider with one client whose redirect URIs point at the
    /// proxy on `proxy_origin`, and reads its discovery document.
    // Not every build of the suite has a test that needs no options.
    #[allow(dead_code)]
    pub async fn start(dir: &Path, proxy_origin: &Url) -> Self {
        Idp::start_with_env(dir, proxy_origin, &[]).await
    }

    /// Like [`Idp::start`], with extra `IDP_*` variables (see
    /// tests/fixtures/README.md), which restarts keep.
    pub async fn start_with_env(dir: &Path, proxy_origin: &Url, extra: &[(&str, &str)]) -> Self {
        Idp::start_with_tls(dir, proxy_origin, extra, None).await
    }

    /// Like [`Idp::start_with_env`], serving HTTPS with `tls` when it is
    /// given.
    pub async fn start_with_tls(
        dir: &Path,
        proxy_origin: &Url,
        extra: &[(&str, &str)],
        tls: Option<&IdpTls>,
    ) -> Self {
        let port = free_port(IDP_HOST);
        let origin = proxy_origin.as_str().trim_end_matches('/');
        let mut env: Vec<(String, String)> = vec![
            ("IDP_HOST".into(), IDP_HOST.to_string()),
            ("IDP_PORT".into(), port.to_string()),
            ("IDP_CLIENT_ID".into(), CLIENT_ID.into()),
            ("IDP_CLIENT_SECRET".into(), CLIENT_SECRET.into()),
            (
                "IDP_REDIRECT_URIS".into(),
                format!("{origin}/oauth2/callback"),
            ),
            ("IDP_POST_LOGOUT_URIS".into(), format!("{origin}/")),
        ];
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        if let Some(tls) = tls {
            env.push(("IDP_TLS_CERT".into(), tls.cert.display().to_string()));
            env.push(("IDP_TLS_KEY".into(), tls.key.display().to_string()));
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let issuer =
            Url::parse(&format!("{scheme}://{IDP_HOST}:{port}")).expect("valid issuer URL");
        let mut idp = Idp {
            authorization_endpoint: issuer.clone(),
            end_session_endpoint: issuer.clone(),
            issuer,
            ca: tls.map(|tls| tls.ca.clone()),
            dir: dir.to_owned(),
            env,
            starts: 0,
            process: None,
        };
        idp.restart().await;
        let discovery = read_discovery(&idp.client(), &idp.issuer).await;
        idp.authorization_endpoint = endpoint(&discovery, "authorization_endpoint");
        idp.end_session_endpoint = endpoint(&discovery, "end_session_endpoint");
        idp
    }

    /// Stops the provider at once; its in-memory grants and sessions are lost.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the provider again on the same port, with a new signing key
    /// (and key id) and no grants, and waits until it is ready. Each start
    /// logs to its own file, so the ready line of an earlier start does not
    /// count.
    ///
    /// NOTE: on a loaded machine a provider process has been seen to stop
    /// after loading oidc-provider and never listen; the cause is not known.
    /// Such a start is abandoned after [`IDP_START_ATTEMPT`] and tried again,
    /// up to [`IDP_START_ATTEMPTS`] times.
    pub async fn restart(&mut self) {
        self.stop();
        for attempt in 1..=IDP_START_ATTEMPTS {
            self.starts += 1;
            let mut command = node_command("idp.mjs");
            command.envs(self.env.iter().map(|(k, v)| (k, v)));
            let log = self.dir.join(format!("idp-{}.log", self.starts));
            let mut process = ChildGuard::spawn("idp", command, &log);
            if attempt == IDP_START_ATTEMPTS {
                process
                    .wait_for_log_line("idp listening on ", READY_TIMEOUT)
                    .await;
            } else if !process
                .log_line_within("idp listening on ", IDP_START_ATTEMPT)
                .await
            {
                eprintln!(
                    "idp start {attempt} was not ready within {IDP_START_ATTEMPT:?}; retrying"
                );
                process.kill();
                continue;
            }
            self.process = Some(process);
            return;
        }
    }

    /// Reads the request counters and issued tokens at `/test/stats`, which
    /// exist only when the provider was started with `IDP_TEST_STATS=1`.
    pub async fn stats(&self) -> IdpStats {
        let url = self.issuer.join("/test/stats").expect("valid stats URL");
        let response = self
            .client()
            .get(url.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
        assert_eq!(
            response.status(),
            reqwest::StatusCode::OK,
            "expected 200 from {url}; was the provider started with IDP_TEST_STATS=1?"
        );
        response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{url} did not return the stats JSON: {e}"))
    }
}

impl Idp {
    /// Signs `claims` with the provider's current key, as a logout token.
    /// Needs `IDP_TEST_SIGNING=1`.
    pub async fn sign(&self, claims: &serde_json::Value) -> String {
        let url = self.issuer.join("/test/sign").expect("valid signing URL");
        let response = self
            .client()
            .post(url.clone())
            .body(claims.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url} failed: {e}"));
        assert_eq!(
            response.status(),
            reqwest::StatusCode::OK,
            "expected 200 from {url}; was the provider started with IDP_TEST_SIGNING=1?"
        );
        response.text().await.expect("the signed token is text")
    }

    /// Makes the token endpoint wait `delay` before each request that
    /// arrives from now on. Needs `IDP_TEST_CONTROL=1`.
    pub async fn set_token_delay(&self, delay: Duration) {
        let url = self
            .issuer
            .join("/test/token-delay")
            .expect("valid control URL");
        let response = self
            .client()
            .put(url.clone())
            .body(delay.as_millis().to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {url} failed: {e}"));
        assert_eq!(
            response.status(),
            reqwest::StatusCode::NO_CONTENT,
            "expected 204 from {url}; was the provider started with IDP_TEST_CONTROL=1?"
        );
    }
}

/// The provider's request counters and issued tokens since its last start.
#[derive(Debug, serde::Deserialize)]
pub struct IdpStats {
    /// `GET /.well-known/openid-configuration` requests.
    pub discovery: u64,
    /// `GET /jwks` requests.
    pub jwks: u64,
    /// Token endpoint requests by `grant_type`, successful or not.
    pub token: std::collections::HashMap<String, u64>,
    /// Every access, refresh and ID token the token endpoint returned.
    pub issued: Vec<String>,
}

impl IdpStats {
    /// Token endpoint requests with `grant_type=refresh_token`.
    pub fn refresh_grants(&self) -> u64 {
        self.token.get("refresh_token").copied().unwrap_or(0)
    }
}

impl Idp {
    /// Returns an HTTP client for the test's own calls to the provider,
    /// which trusts [`Idp::ca`].
    fn client(&self) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10));
        if let Some(ca) = &self.ca {
            builder = builder.add_root_certificate(ca.clone());
        }
        builder.build().expect("HTTP client builds")
    }
}

async fn read_discovery(client: &reqwest::Client, issuer: &Url) -> serde_json::Value {
    let url = issuer
        .join("/.well-known/openid-configuration")
        .expect("valid discovery URL");
    let response = client
        .get(url.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
    assert_eq!(
        response.status(),
        reqwest::StatusCode::OK,
        "expected 200 from the provider's discovery document {url}"
    );
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("discovery document at {url} is not JSON: {e}"))
}

fn endpoint(discovery: &serde_json::Value, name: &str) -> Url {
    let value = discovery[name]
        .as_str()
        .unwrap_or_else(|| panic!("discovery document has no {name}: {discovery}"));
    Url::parse(value).unwrap_or_else(|e| panic!("{name} {value:?} is not a URL: {e}"))
}

/// The dashboard behind the proxy: JSON echo, HTML page, stream, big body and
/// WebSocket echo.
pub struct Upstream {
    /// `http://127.0.0.1:<port>`.
    pub url: Url,
    port: u16,
    dir: PathBuf,
    process: Option<ChildGuard>,
    starts: u32,
}

impl Upstream {
    /// Starts the dashboard on a free port.
    pub async fn start(dir: &Path) -> Self {
        let port = free_port(PROXY_HOST);
        let mut upstream = Upstream {
            url: Url::parse(&format!("http://{PROXY_HOST}:{port}")).expect("valid upstream URL"),
            port,
            dir: dir.to_owned(),
            process: None,
            starts: 0,
        };
        upstream.restart().await;
        upstream
    }

    /// Stops the dashboard at once, like a crashed pod.
    // Not every build of the suite has a test that stops the dashboard.
    #[allow(dead_code)]
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts the dashboard again on the same port and waits until it
    /// listens. Each start logs to its own file, so the ready line of an
    /// earlier start does not count.
    pub async fn restart(&mut self) {
        self.stop();
        self.starts += 1;
        let log = match self.starts {
            1 => self.dir.join("upstream.log"),
            n => self.dir.join(format!("upstream-{n}.log")),
        };
        let mut command = node_command("upstream.mjs");
        command
            .env("UPSTREAM_HOST", PROXY_HOST.to_string())
            .env("UPSTREAM_PORT", self.port.to_string());
        let mut process = ChildGuard::spawn("upstream", command, &log);
        process
            .wait_for_log_line("upstream listening on ", READY_TIMEOUT)
            .await;
        self.process = Some(process);
    }
}
