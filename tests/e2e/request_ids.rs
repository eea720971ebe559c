//! `X-Request-Id`: the id of the access line reaches the dashboard and the
//! client, on forwarded and local responses alike. A client's own id is
//! replaced, unless a trusted proxy sent a valid one, which is kept.

use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::support::browser::NAVIGATION_ACCEPT;
use crate::support::portcullis::Portcullis;
use crate::support::{Browser, Echo, Stack};

const HEADER: &str = "x-request-id";

/// Access lines are written in batches, so a test waits this long at most
/// for the line of its last request.
const ACCESS_LINE_TIMEOUT: Duration = Duration::from_secs(5);

/// Returns the only `X-Request-Id` of `response`, and panics when it is
/// missing or repeated.
fn response_id(response: &Response, case: &str) -> String {
    let values: Vec<&str> = response
        .headers()
        .get_all(HEADER)
        .iter()
        .map(|value| value.to_str().expect("an ASCII request id"))
        .collect();
    assert_eq!(
        values.len(),
        1,
        "{case}: expected one {HEADER} on the response, got {values:?}"
    );
    values[0].to_owned()
}

/// Returns the `request_id` of the JSON access line for `path`, waiting for
/// the line to be written.
async fn access_line_id(portcullis: &Portcullis, path: &str) -> String {
    let deadline = tokio::time::Instant::now() + ACCESS_LINE_TIMEOUT;
    loop {
        let log = portcullis.log();
        let id = log
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|record| record["target"] == "portcullis::access" && record["path"] == path)
            .and_then(|record| record["request_id"].as_str().map(str::to_owned));
        if let Some(id) = id {
            return id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected a JSON access line for {path} in:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Tells whether `id` has the form of a generated id: 16 hex digits.
fn is_generated(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|byte| byte.is_ascii_hexdigit())
}

async fn send(request: RequestBuilder, case: &str) -> Response {
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{case}: request failed: {e}"))
}

/// Sends a signed-in request to `/echo/<name>` with `X-Request-Id: sent`
/// and returns the ids of the response, the dashboard and the access line.
async fn forwarded_ids(stack: &Stack, browser: &Browser, name: &str, sent: &str) -> [String; 3] {
    let path = format!("/echo/{name}");
    let request = browser
        .client()
        .get(stack.proxy_url(&path))
        .header(ACCEPT, "application/json")
        .header(HEADER, sent)
        .header("x_request_id", "underscore-spelling");
    let response = send(request, name).await;
    let from_response = response_id(&response, name);
    let echo = Echo::read(response).await;
    assert!(
        echo.values("x_request_id").is_empty(),
        "{name}: the `_` spelling must not reach the dashboard, got {:?}",
        echo.headers
    );
    let at_dashboard = echo.single(HEADER).to_owned();
    let in_log = access_line_id(&stack.portcullis, &path).await;
    [from_response, at_dashboard, in_log]
}

#[tokio::test]
async fn request_id_replaced_from_untrusted_peer() {
    let stack = Stack::start_with_env(&[("PORTCULLIS_LOG__FORMAT", "json")]).await;
    let browser = stack.signed_in("alice").await;

    let [from_response, at_dashboard, in_log] =
        forwarded_ids(&stack, &browser, "untrusted", "client-chosen-1").await;
    assert!(
        is_generated(&in_log),
        "expected a generated id in the access line, got {in_log:?}"
    );
    assert_eq!(
        at_dashboard, in_log,
        "the dashboard's id and the access line's"
    );
    assert_eq!(
        from_response, in_log,
        "the client's id and the access line's"
    );

    let anonymous = stack.browser();
    let local_cases = [
        (
            "401 for an API call",
            "/api/rid-401",
            "application/json",
            StatusCode::UNAUTHORIZED,
        ),
        (
            "redirect to the login",
            "/rid-login",
            NAVIGATION_ACCEPT,
            StatusCode::FOUND,
        ),
        (
            "404 of an unknown sign-in endpoint",
            "/oauth2/rid-unknown",
            NAVIGATION_ACCEPT,
            StatusCode::NOT_FOUND,
        ),
        (
            "SCIM 401 without a token",
            "/scim/v2/Users",
            "application/scim+json",
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (case, path, accept, status) in local_cases {
        let request = anonymous
            .client()
            .get(stack.proxy_url(path))
            .header(ACCEPT, accept)
            .header(HEADER, "client-chosen-2");
        let response = send(request, case).await;
        assert_eq!(response.status(), status, "{case}");
        let id = response_id(&response, case);
        assert!(
            is_generated(&id),
            "{case}: expected a generated id, got {id:?}"
        );
        assert_eq!(
            access_line_id(&stack.portcullis, path).await,
            id,
            "{case}: the access line's id"
        );
    }
}

/// Starts a stack with a JSON log that trusts every loopback peer, so the
/// test's own requests come from a trusted proxy.
async fn start_behind_trusted_proxy() -> Stack {
    Stack::start_with_env(&[
        ("PORTCULLIS_LOG__FORMAT", "json"),
        ("PORTCULLIS_SERVER__TRUSTED_PROXIES", "127.0.0.0/8"),
    ])
    .await
}

#[tokio::test]
async fn request_id_kept_from_trusted_proxy() {
    let stack = start_behind_trusted_proxy().await;
    let browser = stack.signed_in("alice").await;

    // The NGINX Ingress Controller's own ids are 32 hex digits.
    let ingress_id = "5d41402abc4b2a76b9719d911017c592";
    let [from_response, at_dashboard, in_log] =
        forwarded_ids(&stack, &browser, "trusted", ingress_id).await;
    assert_eq!(in_log, ingress_id, "the access line's id");
    assert_eq!(at_dashboard, ingress_id, "the dashboard's id");
    assert_eq!(from_response, ingress_id, "the client's id");

    let request = stack
        .browser()
        .client()
        .get(stack.proxy_url("/api/rid-trusted-401"))
        .header(ACCEPT, "application/json")
        .header(HEADER, "0f8fad5b-d9cb-469f-a165-70867728950e");
    let response = send(request, "trusted 401").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response_id(&response, "trusted 401"),
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "a local response keeps the trusted proxy's id"
    );
}

#[tokio::test]
async fn invalid_request_id_from_trusted_proxy_replaced() {
    let stack = start_behind_trusted_proxy().await;
    let browser = stack.signed_in("alice").await;

    let too_long = "a".repeat(129);
    let cases = [
        ("invalid-space", "two words"),
        ("invalid-quote", "id=\"x\""),
        ("invalid-slash", "../../etc"),
        ("invalid-length", too_long.as_str()),
    ];
    for (name, sent) in cases {
        let [from_response, at_dashboard, in_log] =
            forwarded_ids(&stack, &browser, name, sent).await;
        assert!(
            is_generated(&in_log),
            "{name}: expected a generated id in the access line, got {in_log:?}"
        );
        assert_eq!(at_dashboard, in_log, "{name}: the dashboard's id");
        assert_eq!(from_response, in_log, "{name}: the client's id");
    }
}
