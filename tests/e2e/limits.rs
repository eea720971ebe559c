//! Limits and timeouts at the edges: a dashboard that is down or slower than
//! `upstream.read_timeout`, request heads larger than
//! `server.max_request_header_bytes`, and the `X-Forwarded-*` headers the
//! dashboard receives from trusted and untrusted peers.

use reqwest::StatusCode;

use crate::support::raw_http;
use crate::support::{Echo, Stack, SESSION_COOKIE};

#[tokio::test]
async fn slow_dashboard_gets_504() {
    let stack = Stack::start_with_env(&[("PORTCULLIS_UPSTREAM__READ_TIMEOUT", "500ms")]).await;
    let browser = stack.signed_in("alice").await;

    let api = browser.fetch_json(&stack.proxy_url("/slow?ms=3000")).await;
    assert_eq!(
        api.status(),
        StatusCode::GATEWAY_TIMEOUT,
        "expected 504 for a dashboard slower than upstream.read_timeout"
    );
    let body: serde_json::Value = api.json().await.expect("a JSON error for an API client");
    assert_eq!(body["error"], "upstream_timeout", "got {body}");

    let page = browser.navigate(&stack.proxy_url("/slow?ms=3000")).await;
    assert_eq!(page.status(), StatusCode::GATEWAY_TIMEOUT);
    let html = page.text().await.unwrap_or_default();
    assert!(
        html.contains("Dashboard timed out"),
        "expected the timeout page for a browser, got:\n{html}"
    );

    let quick = browser.fetch_json(&stack.proxy_url("/slow?ms=50")).await;
    assert_eq!(
        quick.status(),
        StatusCode::OK,
        "expected a response within the read timeout to pass, with the session intact"
    );
}

#[tokio::test]
async fn oversized_request_head_gets_431() {
    let stack =
        Stack::start_with_env(&[("PORTCULLIS_SERVER__MAX_REQUEST_HEADER_BYTES", "4096")]).await;
    let url = stack.proxy_url("/api/data");
    let cases = [
        ("one large header", vec![("X-Padding", "a".repeat(5000))]),
        (
            "many small headers",
            (0..100)
                .map(|i| ("X-Padding", format!("{i:0>60}")))
                .collect(),
        ),
    ];
    for (case, headers) in &cases {
        let mut sent: Vec<(&str, &str)> = vec![("Accept", "application/json")];
        sent.extend(headers.iter().map(|(name, value)| (*name, value.as_str())));
        let response = raw_http::get(&url, &sent).await;
        assert_eq!(
            response.status,
            431,
            "{case}: expected 431 above 4096 bytes, got body:\n{}",
            response.text()
        );
        assert!(
            response.text().contains("request_header_too_large"),
            "{case}: expected a JSON error, got:\n{}",
            response.text()
        );
    }
    let small = "a".repeat(2000);
    let response = raw_http::get(
        &url,
        &[("Accept", "application/json"), ("X-Padding", &small)],
    )
    .await;
    assert_eq!(
        response.status,
        401,
        "expected a head under the limit to reach the session check, got body:\n{}",
        response.text()
    );
}

/// Headers a client sends to make the dashboard believe it came from
/// elsewhere.
const FORGED: &[(&str, &str)] = &[
    ("X-Forwarded-For", "203.0.113.9"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "https"),
    ("X_Forwarded_Host", "evil.example"),
    ("Forwarded", "for=203.0.113.9;host=evil.example"),
    ("X-Real-IP", "203.0.113.9"),
    ("X-Original-URL", "/admin"),
];

/// Sends the forged headers with the session of `browser` and returns the
/// dashboard's echo.
async fn forged_echo(stack: &Stack) -> Echo {
    let browser = stack.signed_in("alice").await;
    let session = browser.session_cookie().expect("signed in");
    let cookie = format!("{SESSION_COOKIE}={session}");
    let mut headers = FORGED.to_vec();
    headers.push(("Accept", "application/json"));
    headers.push(("Cookie", &cookie));
    let response = raw_http::get(&stack.proxy_url("/echo/forwarded"), &headers).await;
    assert_eq!(response.status, 200, "body:\n{}", response.text());
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("expected a JSON echo ({e}), got:\n{}", response.text()))
}

#[tokio::test]
async fn forwarded_headers_need_a_trusted_peer() {
    let mut stack = Stack::start().await;
    let public = stack.proxy_url("/");
    let public_host = format!(
        "{}:{}",
        public.host_str().expect("a host"),
        public.port().expect("a port")
    );

    let echo = forged_echo(&stack).await;
    assert_eq!(
        echo.single("x-forwarded-for"),
        "127.0.0.1",
        "an untrusted peer's X-Forwarded-For must be replaced by its address"
    );
    assert_eq!(echo.single("x-forwarded-host"), public_host);
    assert_eq!(echo.single("x-forwarded-proto"), "http");
    for removed in [
        "x_forwarded_host",
        "forwarded",
        "x-real-ip",
        "x-original-url",
    ] {
        assert!(
            echo.values(removed).is_empty(),
            "expected {removed} from an untrusted peer to be removed, got {:?}",
            echo.headers
        );
    }

    stack
        .portcullis
        .restart_with_env(&[("PORTCULLIS_SERVER__TRUSTED_PROXIES", "127.0.0.0/8")])
        .await;
    let echo = forged_echo(&stack).await;
    assert_eq!(
        echo.single("x-forwarded-for"),
        "203.0.113.9, 127.0.0.1",
        "a trusted peer's X-Forwarded-For must be kept and extended"
    );
    assert_eq!(echo.single("x-forwarded-host"), "evil.example");
    assert_eq!(echo.single("x-forwarded-proto"), "https");
    assert_eq!(echo.single("x-real-ip"), "203.0.113.9");
    assert!(
        echo.values("x_forwarded_host").is_empty(),
        "an underscore spelling is removed even from a trusted peer"
    );
    let names_client =
        |line: &str| line.contains("/echo/forwarded") && line.contains("203.0.113.9");
    let log = stack.portcullis.log_once(names_client).await;
    assert!(
        log.lines().any(names_client),
        "expected the access log to name the client behind the trusted proxy:\n{log}"
    );
}

#[tokio::test]
async fn dashboard_down_gets_502_and_keeps_session() {
    let mut stack = Stack::start().await;
    let browser = stack.signed_in("alice").await;
    stack.upstream.stop();

    let api = browser.fetch_json(&stack.proxy_url("/api/data")).await;
    assert_eq!(
        api.status(),
        StatusCode::BAD_GATEWAY,
        "API call while the dashboard is down"
    );
    let body: serde_json::Value = api.json().await.expect("a JSON error for an API client");
    assert_eq!(body["error"], "upstream_unavailable", "got {body}");
    let page = browser.navigate(&stack.proxy_url("/reports")).await;
    assert_eq!(
        page.status(),
        StatusCode::BAD_GATEWAY,
        "navigation while the dashboard is down"
    );
    let html = page.text().await.unwrap_or_default();
    assert!(
        html.contains("Dashboard unavailable"),
        "expected the 502 page, got:\n{html}"
    );

    stack.upstream.restart().await;
    let echo = Echo::read(browser.fetch_json(&stack.proxy_url("/echo/back")).await).await;
    assert_eq!(
        echo.single("x-forwarded-user"),
        "alice",
        "expected the same session to work once the dashboard is back"
    );
}
