//! TLS to the OpenID provider and to PostgreSQL, with certificates from a
//! throwaway CA that no system store contains.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header::LOCATION;
use reqwest::StatusCode;
use tempfile::TempDir;

use crate::support::fixtures::IdpTls;
use crate::support::portcullis::{portcullis_command, PortcullisConfig, Store};
use crate::support::ports::{free_port, IDP_HOST, PROXY_HOST};
use crate::support::postgres::PostgresServer;
use crate::support::tls::TestCa;
use crate::support::{Stack, StackOptions};

/// How long a portcullis that does not trust the provider is watched for
/// a readiness that must not come.
const UNREADY_WATCH: Duration = Duration::from_secs(3);

/// Creates a CA in a new folder and a certificate for the provider's address.
fn provider_tls() -> (TempDir, TestCa, IdpTls) {
    let dir = tempfile::tempdir().expect("a temporary folder can be created");
    let ca = TestCa::create(dir.path());
    let certificate = ca.issue("idp", IDP_HOST);
    let tls = IdpTls {
        cert: certificate.cert,
        key: certificate.key,
        ca: ca.certificate(),
    };
    (dir, ca, tls)
}

/// Starts a stack whose provider serves HTTPS with `tls`, with these
/// environment variables for portcullis.
async fn https_stack(tls: IdpTls, env: Vec<(&'static str, String)>, ready: bool) -> Stack {
    Stack::start_with_options(StackOptions {
        idp_tls: Some(tls),
        env,
        skip_readiness: !ready,
        ..StackOptions::default()
    })
    .await
}

#[tokio::test]
async fn provider_private_ca_untrusted() {
    let (_dir, _ca, tls) = provider_tls();
    let stack = https_stack(tls, Vec::new(), false).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < UNREADY_WATCH {
        let readiness = client
            .get(stack.admin_url("/readyz"))
            .send()
            .await
            .expect("the admin listener responds");
        assert_eq!(
            readiness.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "expected not ready while the provider's CA is untrusted"
        );
        let body = readiness.text().await.unwrap_or_default();
        assert!(body.contains("oidc_discovery"), "readiness body: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let browser = stack.browser();
    for path in ["/reports", "/oauth2/start?rd=/reports"] {
        let response = browser.navigate(&stack.proxy_url(path)).await;
        let status = response.status();
        let location = response.headers().get(LOCATION).cloned();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: expected the unavailable page, got body:\n{body}"
        );
        assert!(
            location.is_none(),
            "{path}: expected no redirect, got {location:?}"
        );
        assert!(
            body.contains("Sign-in is unavailable"),
            "{path}: expected the unavailable page, got:\n{body}"
        );
    }
    let log = stack
        .portcullis
        .log_once(|line| line.contains("UnknownIssuer"))
        .await;
    assert!(
        log.contains("UnknownIssuer"),
        "expected the log to name the certificate error; log:\n{log}"
    );
}

#[tokio::test]
async fn provider_trusted_through_ca_file() {
    let (_dir, ca, tls) = provider_tls();
    let ca_file = ca.cert.display().to_string();
    let stack = https_stack(tls, vec![("PORTCULLIS_OIDC__CA_FILE", ca_file)], true).await;
    assert_eq!(stack.idp.issuer.scheme(), "https");
    stack.signed_in("alice").await;
}

#[tokio::test]
async fn provider_trusted_through_ssl_cert_file() {
    let (_dir, ca, tls) = provider_tls();
    let ca_file = ca.cert.display().to_string();
    let stack = https_stack(tls, vec![("SSL_CERT_FILE", ca_file)], true).await;
    stack.signed_in("alice").await;
}

/// Runs `portcullis token create`, which opens the directory at `url`, and
/// returns whether it succeeded and its stderr.
fn create_token(dir: &Path, url: &str) -> (bool, String) {
    let config = PortcullisConfig {
        proxy_port: free_port(PROXY_HOST),
        admin_port: free_port(PROXY_HOST),
        upstream: "http://127.0.0.1:9".parse().expect("valid URL"),
        issuer: "http://127.0.0.2:9".parse().expect("valid URL"),
        store: Store::Memory,
    };
    let path = dir.join("portcullis.toml");
    let toml = format!(
        "{}\n[directory]\nbackend = \"postgres\"\nurl = \"{url}\"\n",
        config.to_toml()
    );
    std::fs::write(&path, toml).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    let output = portcullis_command()
        .args(["token", "create", "--name", "tls"])
        .arg("--config")
        .arg(&path)
        .output()
        .expect("portcullis can be run");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Returns the `connection authorized` lines the server logged after the
/// first `skip` of them.
fn new_connections(server: &PostgresServer, skip: usize) -> Vec<String> {
    server
        .log()
        .lines()
        .filter(|line| line.contains("connection authorized"))
        .skip(skip)
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn postgres_sslmode_in_url() {
    let dir = tempfile::tempdir().expect("a temporary folder can be created");
    let ca = TestCa::create(dir.path());
    let certificate = ca.issue("postgres", PROXY_HOST);
    let server = PostgresServer::start_with_tls(Some(&certificate)).await;
    let root = ca.cert.display();
    // (query, connects, over TLS)
    let cases = [
        ("sslmode=require", true, true),
        (
            &format!("sslmode=verify-ca&sslrootcert={root}") as &str,
            true,
            true,
        ),
        (
            &format!("sslmode=verify-full&sslrootcert={root}"),
            true,
            true,
        ),
        ("sslmode=prefer", true, true),
        ("sslmode=disable", true, false),
        ("sslmode=verify-full", false, false),
    ];
    for (query, connects, encrypted) in cases {
        let before = new_connections(&server, 0).len();
        let (succeeded, stderr) = create_token(dir.path(), &format!("{}?{query}", server.url()));
        assert_eq!(succeeded, connects, "{query}: stderr:\n{stderr}");
        let connections = new_connections(&server, before);
        if !connects {
            assert!(
                stderr.contains("UnknownIssuer"),
                "{query}: expected the certificate error, got:\n{stderr}"
            );
            continue;
        }
        assert!(
            !connections.is_empty(),
            "{query}: expected a logged connection"
        );
        for line in connections {
            assert_eq!(
                line.contains("SSL enabled"),
                encrypted,
                "{query}: expected TLS {encrypted} in {line:?}"
            );
        }
    }
}
