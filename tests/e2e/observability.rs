//! What operators see: the Prometheus families at `/metrics` on the admin
//! listener, and an access log, in JSON or text, that never carries a
//! credential.

use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::fixtures::CLIENT_SECRET;
use crate::support::portcullis::{metric_sample, Portcullis};
use crate::support::scim::ScimClient;
use crate::support::{SessionStore, Stack, StackOptions, BINDING_COOKIE};

async fn fetch_metrics(stack: &Stack) -> String {
    let response = stack.portcullis.get_metrics().await;
    assert_eq!(response.status(), StatusCode::OK, "status of GET /metrics");
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "expected the Prometheus text format, got {content_type:?}"
    );
    response.text().await.expect("the metrics body is text")
}

/// Pingora runs the `logging` hook after the response is sent, so a client
/// can read `/metrics` or the log before the last request is recorded. The
/// tests retry this many times, this far apart.
const RECORD_RETRIES: u32 = 50;
const RECORD_RETRY_INTERVAL: Duration = Duration::from_millis(100);

/// Fetches `/metrics` until `series` has a sample of at least 1, and
/// returns the last text fetched.
async fn metrics_with(stack: &Stack, series: &str) -> String {
    let mut metrics = fetch_metrics(stack).await;
    for _ in 0..RECORD_RETRIES {
        if metric_sample(&metrics, series).is_some_and(|value| value >= 1.0) {
            break;
        }
        tokio::time::sleep(RECORD_RETRY_INTERVAL).await;
        metrics = fetch_metrics(stack).await;
    }
    metrics
}

#[tokio::test]
async fn metrics_count_login_proxy_and_scim() {
    let stack = Stack::start().await;
    let browser = stack.signed_in("alice").await;

    let proxied = browser
        .fetch_json(&stack.proxy_url("/reports?page=2"))
        .await;
    assert_eq!(proxied.status(), StatusCode::OK, "signed-in API call");

    let anonymous = stack.browser();
    let unauthorized = anonymous.fetch_json(&stack.proxy_url("/api/data")).await;
    assert_eq!(
        unauthorized.status(),
        StatusCode::UNAUTHORIZED,
        "API call without a session"
    );

    let token = stack.portcullis.token();
    let scim = anonymous
        .client()
        .get(stack.proxy_url("/scim/v2/Users"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("SCIM request is sent");
    assert_eq!(scim.status(), StatusCode::OK, "SCIM list of Users");

    // The SCIM request is the last one sent.
    let metrics = metrics_with(
        &stack,
        r#"portcullis_requests_total{route="scim",status="2xx"}"#,
    )
    .await;
    let expected = [
        r#"portcullis_requests_total{route="upstream",status="2xx"}"#,
        r#"portcullis_requests_total{route="upstream",status="4xx"}"#,
        r#"portcullis_requests_total{route="callback",status="3xx"}"#,
        r#"portcullis_requests_total{route="scim",status="2xx"}"#,
        r#"portcullis_request_duration_seconds_count{route="upstream"}"#,
        r#"portcullis_upstream_duration_seconds_count{status="2xx"}"#,
        r#"portcullis_logins_total{outcome="success",reason="none"}"#,
        r#"portcullis_sessions_created_total"#,
        r#"portcullis_session_store_operations_total{operation="create"}"#,
        r#"portcullis_scim_operations_total{method="GET",resource="Users",status="2xx"}"#,
        r#"portcullis_provider_fetches_total{outcome="success"}"#,
    ];
    for series in expected {
        let value = metric_sample(&metrics, series);
        assert!(
            value.is_some_and(|value| value >= 1.0),
            "expected {series} >= 1, got {value:?} in:\n{metrics}"
        );
    }
    assert!(
        !metrics.contains("/reports") && !metrics.contains("alice"),
        "no path or user may appear as a label:\n{metrics}"
    );

    let build_info = format!(
        "portcullis_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        metric_sample(&metrics, &build_info),
        Some(1.0),
        "expected {build_info} 1 in:\n{metrics}"
    );
    let process_families = [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ];
    for family in process_families {
        let value = metric_sample(&metrics, family);
        assert!(
            value.is_some_and(|value| value >= 0.0),
            "expected a sample of {family} in:\n{metrics}"
        );
    }
    for family in ["process_resident_memory_bytes", "process_open_fds"] {
        let value = metric_sample(&metrics, family);
        assert!(
            value.is_some_and(|value| value > 0.0),
            "expected {family} > 0, got {value:?}"
        );
    }
}

fn is_access_line(line: &str, path: &str) -> bool {
    line.contains("portcullis::access") && line.contains(path)
}

/// A refresh margin longer than the provider's one-hour access tokens, so
/// that every request with a session refreshes the tokens first.
const REFRESH_ON_EVERY_REQUEST: &str = "2h";

#[tokio::test]
async fn log_carries_no_credentials() {
    assert_log_free_of_credentials("text", "info").await;
}

#[tokio::test]
async fn json_debug_log_carries_no_credentials() {
    assert_log_free_of_credentials("json", "debug").await;
}

/// Signs in, calls SCIM with a bearer token and calls the dashboard with
/// the session cookie and an `Authorization` header of its own. Each request
/// with the session refreshes the tokens first. Then checks that the log,
/// written in `format` at `level`, contains no credential of these steps.
async fn assert_log_free_of_credentials(format: &str, level: &str) {
    let stack = Stack::start_with_options(StackOptions {
        idp_env: vec![("IDP_TEST_STATS", "1".to_owned())],
        env: vec![
            ("PORTCULLIS_LOG__FORMAT", format.to_owned()),
            ("PORTCULLIS_LOG__LEVEL", level.to_owned()),
            (
                "PORTCULLIS_SESSION__REFRESH_MARGIN",
                REFRESH_ON_EVERY_REQUEST.to_owned(),
            ),
        ],
        ..StackOptions::default()
    })
    .await;
    let browser = stack.browser();
    let authorization = browser.start_login("/").await;
    let callback = browser.authorize_at_idp(&authorization, "alice").await;
    let code = callback
        .query_pairs()
        .find(|(name, _)| name == "code")
        .map(|(_, value)| value.into_owned())
        .expect("the callback URL carries an authorization code");
    let binding = browser
        .cookie(BINDING_COOKIE, &callback)
        .expect("the browser holds the login binding cookie at the callback");
    let landing = browser.finish_login(&callback).await;
    assert_eq!(
        landing.status(),
        StatusCode::OK,
        "login ends on the dashboard"
    );
    let session = browser
        .session_cookie()
        .expect("a session cookie after login");

    let token = stack.portcullis.token();
    let scim = browser
        .client()
        .get(stack.proxy_url("/scim/v2/Users?count=1"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("SCIM request is sent");
    assert_eq!(scim.status(), StatusCode::OK, "SCIM list of Users");

    let dashboard_authorization = "Bearer dashboard-credential-6d1f0c";
    let dashboard = browser
        .client()
        .get(stack.proxy_url("/api/data?key=1"))
        .header(reqwest::header::AUTHORIZATION, dashboard_authorization)
        .send()
        .await
        .expect("dashboard request is sent");
    assert_eq!(dashboard.status(), StatusCode::OK, "dashboard API call");

    let log = log_with_access_line(&stack.portcullis, "/api/data").await;
    let access_line = log
        .lines()
        .find(|line| is_access_line(line, "/api/data"))
        .unwrap_or_else(|| panic!("expected an access log line for /api/data in:\n{log}"));
    assert!(
        !access_line.contains("key=1"),
        "the access log must show the path without its query: {access_line}"
    );
    if level == "debug" {
        let debug_marker = if format == "json" {
            "\"level\":\"DEBUG\""
        } else {
            " DEBUG "
        };
        assert!(
            log.contains(debug_marker),
            "expected debug lines in the {format} log at level {level}:\n{log}"
        );
    }

    let stats = stack.idp.stats().await;
    assert!(
        stats.refresh_grants() >= 1,
        "expected at least one token refresh, got {stats:?}"
    );
    assert!(
        stats.issued.len() >= 3,
        "expected the access, refresh and ID token of the login among {:?}",
        stats.issued
    );
    let secrets = [
        ("session cookie value", session.as_str()),
        ("login binding cookie value", binding.as_str()),
        ("SCIM token", token.as_str()),
        ("client secret", CLIENT_SECRET),
        ("ID token (a JWT)", "eyJ"),
        ("authorization code", code.as_str()),
        ("dashboard Authorization value", dashboard_authorization),
        (
            "dashboard Authorization credential",
            "dashboard-credential-6d1f0c",
        ),
    ];
    for (what, secret) in secrets {
        assert!(!secret.is_empty(), "{what} must not be empty");
        assert!(!log.contains(secret), "the log contains the {what}:\n{log}");
    }
    for issued in &stats.issued {
        assert!(
            !log.contains(issued.as_str()),
            "the log contains the token {issued:?} that the provider issued:\n{log}"
        );
    }
}

/// Waits until the log has an access line for `path` and returns the log.
async fn log_with_access_line(portcullis: &Portcullis, path: &str) -> String {
    let mut log = portcullis.log();
    for _ in 0..RECORD_RETRIES {
        if log.lines().any(|line| is_access_line(line, path)) {
            break;
        }
        tokio::time::sleep(RECORD_RETRY_INTERVAL).await;
        log = portcullis.log();
    }
    log
}

/// A value that the tests below send in a query string and look for in the
/// log. It stands for an API key that some dashboards take in the URL.
const QUERY_SECRET: &str = "QSECRET7c1e";

/// Returns the lines of Pingora's "Fail to proxy" errors for `path`.
fn pingora_failures<'a>(log: &'a str, path: &str) -> Vec<&'a str> {
    log.lines()
        .filter(|line| line.contains("Fail to proxy") && line.contains(path))
        .collect()
}

#[tokio::test]
async fn failed_proxy_log_hides_query() {
    let mut stack = Stack::start_with_env(&[("PORTCULLIS_UPSTREAM__READ_TIMEOUT", "500ms")]).await;
    let browser = stack.signed_in("alice").await;

    let slow = browser
        .fetch_json(&stack.proxy_url(&format!("/slow?ms=3000&api_key={QUERY_SECRET}")))
        .await;
    assert_eq!(
        slow.status(),
        StatusCode::GATEWAY_TIMEOUT,
        "dashboard slower than upstream.read_timeout"
    );
    let slow_id = request_id_of(&slow);

    stack.upstream.stop();
    let down = browser
        .fetch_json(&stack.proxy_url(&format!("/report?api_key={QUERY_SECRET}")))
        .await;
    assert_eq!(down.status(), StatusCode::BAD_GATEWAY, "dashboard stopped");
    let down_id = request_id_of(&down);

    // Pingora writes its error line before the access line.
    let log = log_with_access_line(&stack.portcullis, "/report").await;
    assert!(
        !log.contains(QUERY_SECRET),
        "the log contains the query string's secret:\n{log}"
    );
    for (path, id) in [("GET /slow,", slow_id), ("GET /report,", down_id)] {
        let failures = pingora_failures(&log, path);
        assert!(
            !failures.is_empty(),
            "expected Pingora's error line for {path} in:\n{log}"
        );
        for line in failures {
            assert!(
                line.contains(&format!("request_id: {id}")),
                "expected the request id {id} in Pingora's line: {line}"
            );
        }
    }
}

fn request_id_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("expected X-Request-Id on {}", response.url()))
        .to_owned()
}

#[tokio::test]
async fn log_formats_json_and_text() {
    let stack = Stack::start().await;
    let json = stack
        .start_replica("json-log", &[("PORTCULLIS_LOG__FORMAT", "json")])
        .await;
    let browser = stack.signed_in("alice").await;
    let response = browser.fetch_json(&json.proxy_url("/api/json-log")).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "the replica has its own memory store, so the session is unknown there"
    );
    let text_response = browser.fetch_json(&stack.proxy_url("/api/text-log")).await;
    assert_eq!(text_response.status(), StatusCode::OK);

    let log = log_with_access_line(&json, "/api/json-log").await;
    let mut access = None;
    for line in log.lines().filter(|line| !line.trim().is_empty()) {
        let record: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("expected every line to be JSON ({e}): {line}"));
        if record["path"] == "/api/json-log" {
            access = Some(record);
        }
    }
    let access = access.unwrap_or_else(|| panic!("expected an access record in:\n{log}"));
    assert_eq!(access["target"], "portcullis::access", "{access}");
    assert_eq!(access["method"], "GET", "{access}");
    assert_eq!(access["status"], 401, "{access}");
    assert_eq!(access["route"], "upstream", "{access}");
    assert_eq!(access["client"], "127.0.0.1", "{access}");
    assert!(
        access["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 16),
        "{access}"
    );
    assert!(access["duration_ms"].as_f64().is_some(), "{access}");
    assert!(access["level"].as_str().is_some(), "{access}");

    let log = log_with_access_line(&stack.portcullis, "/api/text-log").await;
    let line = log
        .lines()
        .find(|line| is_access_line(line, "/api/text-log"))
        .unwrap_or_else(|| panic!("expected a text access line in:\n{log}"));
    assert!(
        serde_json::from_str::<serde_json::Value>(line).is_err(),
        "expected a text line, got JSON: {line}"
    );
    let fields = [
        "method=GET",
        "status=200",
        "duration_ms=",
        "route=\"upstream\"",
        "user=\"alice\"",
        "request_id=",
    ];
    for field in fields {
        assert!(
            line.contains(field),
            "expected {field} in the text line: {line}"
        );
    }
    let duration = line
        .split_once("duration_ms=")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|value| value.parse::<f64>().ok());
    assert!(
        duration.is_some_and(|duration| duration >= 0.0),
        "expected a number of milliseconds in duration_ms: {line}"
    );
}

/// Parses every line of a JSON log, failing on a line that is not JSON.
fn json_records(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("expected every line to be JSON ({e}): {line}"))
        })
        .collect()
}

#[tokio::test]
async fn json_log_carries_pingora_records() {
    let stack = Stack::start_with_env(&[("PORTCULLIS_LOG__FORMAT", "json")]).await;
    // Pingora logs "Server starting" through the `log` crate before it
    // starts the listeners, so the line is there once the stack is ready.
    let log = stack.portcullis.log();
    let records = json_records(&log);
    let starting = records
        .iter()
        .find(|record| record["message"] == "Server starting")
        .unwrap_or_else(|| panic!("expected Pingora's \"Server starting\" record in:\n{log}"));
    assert_eq!(starting["target"], "pingora_core::server", "{starting}");
    assert_eq!(starting["level"], "INFO", "{starting}");
    let fields = starting.as_object().expect("a record is a JSON object");
    for name in fields.keys() {
        assert!(
            !name.starts_with("log."),
            "expected no field {name} of the log bridge in: {starting}"
        );
    }
}

#[tokio::test]
async fn access_line_of_signed_in_request() {
    let stack = Stack::start_with_env(&[("PORTCULLIS_LOG__FORMAT", "json")]).await;
    let browser = stack.signed_in("alice").await;
    // `%6F` is an encoded unreserved `o`, which the proxy decodes rather
    // than rejects, so the access line shows `/reports`.
    let response = browser
        .fetch_json(&stack.proxy_url("/rep%6Frts?page=2"))
        .await;
    assert_eq!(response.status(), StatusCode::OK, "signed-in API call");

    let log = log_with_access_line(&stack.portcullis, "\"path\":\"/reports\"").await;
    let records = json_records(&log);
    let access = records
        .iter()
        .find(|record| record["target"] == "portcullis::access" && record["path"] == "/reports")
        .unwrap_or_else(|| panic!("expected an access record for /reports in:\n{log}"));
    assert!(
        access["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{access}"
    );
    assert_eq!(access["method"], "GET", "{access}");
    assert_eq!(access["status"], 200, "{access}");
    assert!(
        access["duration_ms"]
            .as_f64()
            .is_some_and(|duration| duration >= 0.0),
        "{access}"
    );
    assert_eq!(access["route"], "upstream", "{access}");
    // `user` is the ID token's `sub`, which the test provider sets to the
    // login name; the email would be alice@example.test.
    assert_eq!(access["user"], "alice", "{access}");
    assert!(access.get("error").is_none(), "{access}");
}

/// Fetches `/metrics` until `series` is at least `expected`, and returns its
/// last value.
async fn metric_reaching(stack: &Stack, series: &str, expected: f64) -> Option<f64> {
    let mut value = stack.metric(series).await;
    for _ in 0..RECORD_RETRIES {
        if value.is_some_and(|value| value >= expected) {
            break;
        }
        tokio::time::sleep(RECORD_RETRY_INTERVAL).await;
        value = stack.metric(series).await;
    }
    value
}

/// The provider's login name of the user provisioned and then deactivated
/// through SCIM. Its `sub` is the same and its email `dana@example.test`.
const DEPROVISIONED_LOGIN: &str = "dana";

/// Creates the SCIM User of [`DEPROVISIONED_LOGIN`] and returns its id.
async fn provision_user(scim: &ScimClient) -> String {
    let document = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{DEPROVISIONED_LOGIN}@example.test"),
        "externalId": DEPROVISIONED_LOGIN,
        "active": true,
    });
    let created = scim.post("/Users", &document).await;
    created.expect_status(201, "POST /Users");
    created.body["id"]
        .as_str()
        .expect("the created user has an id")
        .to_owned()
}

#[tokio::test]
async fn metrics_count_session_lifecycle() {
    let stack = Stack::start_with_env(&[
        ("PORTCULLIS_ACCESS__PUBLIC_PATHS", "/echo/public/"),
        (
            "PORTCULLIS_SESSION__REFRESH_MARGIN",
            REFRESH_ON_EVERY_REQUEST,
        ),
    ])
    .await;
    let visitor = stack.browser();
    let start = visitor
        .navigate(&stack.proxy_url("/oauth2/start?rd=%2F"))
        .await;
    assert_eq!(start.status(), StatusCode::FOUND, "GET /oauth2/start");
    let public = visitor
        .fetch_json(&stack.proxy_url("/echo/public/page"))
        .await;
    assert_eq!(
        public.status(),
        StatusCode::OK,
        "public path without a session"
    );
    let unknown = visitor
        .navigate(&stack.proxy_url("/oauth2/callback?state=unknown-state&code=unused"))
        .await;
    assert_eq!(
        unknown.status(),
        StatusCode::BAD_REQUEST,
        "callback with a state that no login stored"
    );

    // The landing page after login is the first request with the session,
    // and it refreshes the tokens.
    let alice = stack.signed_in("alice").await;
    let deleted = r#"portcullis_sessions_ended_total{reason="deleted"}"#;
    assert_eq!(
        stack.metric(deleted).await,
        Some(0.0),
        "{deleted} before sign-out"
    );
    let sign_out = alice
        .client()
        .get(stack.proxy_url("/oauth2/sign_out"))
        .header(ACCEPT, "text/html")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .expect("sign-out request is sent");
    assert_eq!(sign_out.status(), StatusCode::FOUND, "same-origin sign-out");
    assert_eq!(
        stack.metric(deleted).await,
        Some(1.0),
        "{deleted} after one sign-out"
    );

    let scim = ScimClient::new(&stack.portcullis.proxy, &stack.portcullis.token());
    let dana_id = provision_user(&scim).await;
    let dana = stack.signed_in(DEPROVISIONED_LOGIN).await;
    scim.deactivate_user(&dana_id).await;
    let after = dana.fetch_json(&stack.proxy_url("/echo/after")).await;
    assert_eq!(
        after.status(),
        StatusCode::UNAUTHORIZED,
        "API call with the session of the deactivated user"
    );

    let expected = [
        r#"portcullis_requests_total{route="login",status="3xx"}"#,
        r#"portcullis_requests_total{route="public",status="2xx"}"#,
        r#"portcullis_requests_total{route="callback",status="4xx"}"#,
        r#"portcullis_requests_total{route="sign_out",status="3xx"}"#,
        r#"portcullis_logins_total{outcome="error",reason="unknown_state"}"#,
        r#"portcullis_token_refreshes_total{outcome="success"}"#,
        r#"portcullis_revocations_total{source="deprovisioning"}"#,
        r#"portcullis_sessions_ended_total{reason="revoked"}"#,
    ];
    for series in expected {
        let value = metric_reaching(&stack, series, 1.0).await;
        assert!(
            value.is_some_and(|value| value >= 1.0),
            "expected {series} >= 1, got {value:?}"
        );
    }
}

#[tokio::test]
async fn metrics_count_session_store_errors() {
    let mut stack = Stack::start_with(SessionStore::Redis).await;
    let alice = stack.signed_in("alice").await;
    let errors = r#"portcullis_session_store_errors_total{operation="load"}"#;
    assert_eq!(
        stack.metric(errors).await,
        Some(0.0),
        "{errors} while Redis runs"
    );

    stack.redis.as_mut().expect("a stack with Redis").stop();
    // A session read just before the kill can come from the in-process
    // cache for a moment, so the request is repeated until it fails.
    let url = stack.proxy_url("/echo/outage");
    let mut status = alice.fetch_json(&url).await.status();
    for _ in 0..RECORD_RETRIES {
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(RECORD_RETRY_INTERVAL).await;
        status = alice.fetch_json(&url).await.status();
    }
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "API call with a session while Redis is down"
    );
    let value = stack.metric(errors).await;
    assert!(
        value.is_some_and(|value| value >= 1.0),
        "expected {errors} >= 1 after Redis stopped, got {value:?}"
    );
}
