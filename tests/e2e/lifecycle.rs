//! The process around the proxy: start-up, shutdown on SIGTERM and the
//! `check-config` command.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode, Url};
use tokio::task::JoinHandle;

use crate::support::portcullis::portcullis_command;
use crate::support::ports::{free_port, PROXY_HOST};
use crate::support::{Browser, Stack};

/// A grace period far longer than any wait below, so a test that passes
/// shows portcullis did not sleep it out.
const LONG_GRACE: &str = "30s";

/// Time allowed from SIGTERM to exit when nothing is in flight.
const IDLE_EXIT: Duration = Duration::from_secs(3);

fn example_config() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/portcullis.example.toml"
    ))
}

fn check_config(config: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = portcullis_command();
    command.arg("check-config").arg("--config").arg(config);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("portcullis check-config runs")
}

/// Waits for exit and fails with the log unless the exit was clean and came
/// within `limit` of `since`.
async fn expect_clean_exit(stack: &mut Stack, since: Instant, limit: Duration) {
    let status = stack.portcullis.wait_exit(limit).await;
    let log = stack.portcullis.log();
    let Some(status) = status else {
        panic!("expected portcullis to exit within {limit:?} after SIGTERM; log:\n{log}");
    };
    assert!(
        status.success(),
        "expected a clean exit after SIGTERM, got {status}; log:\n{log}"
    );
    println!("exited {:?} after SIGTERM", since.elapsed());
}

/// Sends `GET url` as an API client of `browser` in a background task, so
/// the request can be in flight when SIGTERM arrives.
fn spawn_api_request(browser: &Browser, url: Url) -> JoinHandle<reqwest::Result<Response>> {
    let client = browser.client().clone();
    tokio::spawn(async move {
        client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
    })
}

#[tokio::test]
async fn sigterm_exits_at_once_when_idle() {
    let mut stack = Stack::start_with_env(&[("PORTCULLIS_SERVER__GRACE_PERIOD", LONG_GRACE)]).await;
    let browser = stack.signed_in("alice").await;
    let warm = browser.fetch_json(&stack.proxy_url("/api/data")).await;
    assert_eq!(warm.status(), StatusCode::OK, "a request before SIGTERM");

    let sent = Instant::now();
    stack.portcullis.terminate();
    expect_clean_exit(&mut stack, sent, IDLE_EXIT).await;
}

#[tokio::test]
async fn sigterm_drains_then_lets_requests_finish() {
    let mut stack = Stack::start_with_env(&[
        ("PORTCULLIS_SERVER__GRACE_PERIOD", LONG_GRACE),
        ("PORTCULLIS_SERVER__DRAIN_DELAY", "1s"),
    ])
    .await;
    let browser = stack.signed_in("alice").await;
    let slow = spawn_api_request(&browser, stack.proxy_url("/slow?ms=2500"));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let sent = Instant::now();
    stack.portcullis.terminate();
    let readyz = stack.admin_url("/readyz");
    let mut readiness = None;
    for _ in 0..20 {
        let response = browser.client().get(readyz.clone()).send().await;
        if let Ok(response) = response {
            if response.status() == StatusCode::SERVICE_UNAVAILABLE {
                readiness = Some(response.text().await.unwrap_or_default());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let readiness = readiness.unwrap_or_else(|| {
        panic!(
            "expected /readyz to turn 503 within 500 ms of SIGTERM; log:\n{}",
            stack.portcullis.log()
        )
    });
    assert!(
        readiness.contains("shutting_down"),
        "expected the readiness body to say why, got {readiness}"
    );
    assert!(
        sent.elapsed() < Duration::from_millis(900),
        "readiness must turn false before the drain delay ends"
    );

    let during_drain = browser.fetch_json(&stack.proxy_url("/api/data")).await;
    assert_eq!(
        during_drain.status(),
        StatusCode::OK,
        "requests arriving during the drain delay are still served"
    );

    let finished = slow
        .await
        .expect("the slow request's task completes")
        .expect("the in-flight request is answered, not cut");
    assert_eq!(
        finished.status(),
        StatusCode::OK,
        "the in-flight request finishes"
    );
    // The drain delay (1 s) and the rest of the slow request end about 2.2 s
    // after SIGTERM; the exit must follow closely, not the 30 s grace.
    expect_clean_exit(&mut stack, sent, Duration::from_secs(5)).await;
    // Access lines are written in batches; the last one must not be lost
    // when the process exits right after its request.
    let log = stack.portcullis.log();
    assert!(
        log.lines()
            .any(|line| line.contains("portcullis::access") && line.contains("/slow")),
        "expected the in-flight request's access line before the exit; log:\n{log}"
    );
}

#[tokio::test]
async fn check_config_cli() {
    let secret = [("PORTCULLIS_OIDC__CLIENT_SECRET", "example-secret")];
    let valid = check_config(example_config(), &secret);
    assert!(
        valid.status.success(),
        "expected the example configuration with a client secret to be valid; stderr:\n{}",
        String::from_utf8_lossy(&valid.stderr)
    );

    let dir = tempfile::tempdir().expect("a temporary folder can be created");
    let example = std::fs::read_to_string(example_config()).expect("read the example");
    assert!(
        example.contains("\n[session]\n"),
        "expected a [session] table in the example configuration"
    );
    let misspelt = example.replace("\n[session]\n", "\n[session]\ncookie_nmae = \"x\"\n");
    let misspelt_path = dir.path().join("misspelt.toml");
    std::fs::write(&misspelt_path, misspelt).expect("write the misspelt configuration");
    let unknown = check_config(&misspelt_path, &secret);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        !unknown.status.success(),
        "expected an unknown key to be rejected"
    );
    assert!(
        stderr.contains("session.cookie_nmae"),
        "expected the error to name session.cookie_nmae, got:\n{stderr}"
    );

    let bad_ttl = [
        ("PORTCULLIS_OIDC__CLIENT_SECRET", "example-secret"),
        ("PORTCULLIS_SESSION__TTL", "soon"),
    ];
    let invalid = check_config(example_config(), &bad_ttl);
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert!(
        !invalid.status.success(),
        "expected PORTCULLIS_SESSION__TTL=soon to be rejected"
    );
    assert!(
        stderr.contains("session.ttl"),
        "expected the error to name session.ttl, got:\n{stderr}"
    );
}

#[tokio::test]
async fn sigterm_cuts_requests_after_grace_period() {
    const GRACE: Duration = Duration::from_secs(2);
    const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);
    let mut stack = Stack::start_with_env(&[
        ("PORTCULLIS_SERVER__GRACE_PERIOD", "2s"),
        ("PORTCULLIS_SERVER__SHUTDOWN_TIMEOUT", "1s"),
    ])
    .await;
    let browser = stack.signed_in("alice").await;
    // The dashboard responds long after the grace period ends.
    let slow = spawn_api_request(&browser, stack.proxy_url("/slow?ms=10000"));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let sent = Instant::now();
    stack.portcullis.terminate();
    let limit = GRACE + SHUTDOWN_TIMEOUT + Duration::from_secs(1);
    let status = stack.portcullis.wait_exit(limit).await;
    let exited_after = sent.elapsed();
    let log = stack.portcullis.log();
    let status = status.unwrap_or_else(|| {
        panic!("expected portcullis to exit within {limit:?} of SIGTERM; log:\n{log}")
    });
    println!("exited {exited_after:?} after SIGTERM with {status}");
    assert!(
        exited_after >= GRACE - Duration::from_millis(100),
        "expected the in-flight request to get the {GRACE:?} grace period, but the process exited after {exited_after:?}"
    );
    assert!(
        status.success(),
        "expected a clean exit after the grace period, got {status}; log:\n{log}"
    );

    let outcome = tokio::time::timeout(Duration::from_secs(2), slow)
        .await
        .expect("expected the cut request to end within 2 s of the exit")
        .expect("the slow request's task completes");
    println!("the cut request ended with {outcome:?}");
    assert!(
        outcome.is_err(),
        "expected the request still in flight after the grace period to get no response, got {outcome:?}"
    );
}

#[tokio::test]
async fn taken_listen_address_fails_start() {
    let holder = std::net::TcpListener::bind((PROXY_HOST, 0)).expect("a loopback port binds");
    let taken_address = holder.local_addr().expect("the bound address");
    let admin_port = free_port(PROXY_HOST);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/quickstart.toml"
    ));

    let mut command = portcullis_command();
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("PORTCULLIS_SERVER__LISTEN", taken_address.to_string())
        .env(
            "PORTCULLIS_SERVER__ADMIN_LISTEN",
            format!("{PROXY_HOST}:{admin_port}"),
        )
        .env(
            "PORTCULLIS_DIRECTORY__URL",
            format!("sqlite://{}/portcullis.db", dir.path().display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("portcullis starts");

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("the exit status is readable") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("expected portcullis to exit when {taken_address} is taken, but it kept running for 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut log = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        std::io::Read::read_to_string(&mut stderr, &mut log).expect("stderr is readable");
    }

    assert!(!status.success(), "expected a failed exit, got {status}");
    let expected = format!("server.listen: cannot listen on {taken_address}");
    assert!(
        log.contains(&expected),
        "expected {expected:?} in the log:\n{log}"
    );
    drop(holder);
}
