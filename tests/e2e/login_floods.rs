//! Floods of login starts from one client: the per-address limit
//! (`session.login_starts_per_minute`, `session.login_starts_burst`), and
//! the in-memory store, which evicts login flows rather than fail logins
//! when it is full. Every test client is 127.0.0.1, so the limit is shown to
//! let a login through by waiting for the bucket to refill.

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Response, StatusCode};

use crate::support::Stack;

/// Navigations without a session in the flood of the limit tests.
const FLOOD: usize = 10;

/// Reads the `Retry-After` seconds of a 429.
fn retry_after(response: &Response) -> u64 {
    response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "expected a Retry-After in seconds, got headers {:?}",
                response.headers()
            )
        })
}

#[tokio::test]
async fn login_starts_over_limit_get_429() {
    // One start a minute, so no start is earned back while the test runs.
    let stack = Stack::start_with_env(&[
        ("PORTCULLIS_SESSION__LOGIN_STARTS_PER_MINUTE", "1"),
        ("PORTCULLIS_SESSION__LOGIN_STARTS_BURST", "3"),
    ])
    .await;
    let flooder = stack.browser();
    let url = stack.proxy_url("/reports?tab=2");
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..FLOOD {
        let response = flooder.navigate(&url).await;
        statuses.push(response.status().as_u16());
        if response.status() == StatusCode::TOO_MANY_REQUESTS && limited.is_none() {
            limited = Some(response);
        }
    }
    let expected: Vec<u16> = [302; 3].into_iter().chain([429; FLOOD - 3]).collect();
    assert_eq!(statuses, expected, "a burst of 3 starts, then 429");

    let page = limited.expect("a 429 in the flood");
    let wait = retry_after(&page);
    assert!(
        (1..=60).contains(&wait),
        "expected a wait of at most one refill interval, got {wait} s"
    );
    let content_type = page.headers().get(CONTENT_TYPE).cloned();
    let html = page.text().await.expect("the 429 page is text");
    assert_eq!(
        content_type.and_then(|value| value.to_str().ok().map(str::to_owned)),
        Some("text/html; charset=utf-8".to_owned()),
        "a navigation gets a page:\n{html}"
    );
    assert!(html.contains("Too many sign-ins"), "page:\n{html}");
    assert!(
        html.contains("href=\"/reports?tab=2\""),
        "the page links back to the page requested:\n{html}"
    );

    let api = flooder
        .client()
        .get(stack.proxy_url("/oauth2/start?rd=/reports"))
        .header(ACCEPT, "application/json")
        .send()
        .await
        .expect("GET /oauth2/start");
    assert_eq!(api.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&api) >= 1);
    let body: serde_json::Value = api.json().await.expect("a JSON error for an API client");
    assert_eq!(body["error"], "login_rate_limited", "got {body}");

    let unauthenticated = flooder.fetch_json(&stack.proxy_url("/api/data")).await;
    assert_eq!(
        unauthenticated.status(),
        StatusCode::UNAUTHORIZED,
        "an API call starts no login, so the limit does not apply to it"
    );

    assert_eq!(
        stack.metric("portcullis_memory_store_entries").await,
        Some(3.0),
        "only the admitted starts stored a login flow"
    );
    let rejected = FLOOD - 3 + 1;
    assert_eq!(
        stack
            .metric("portcullis_login_starts_rate_limited_total")
            .await,
        Some(rejected as f64),
        "every 429 is counted"
    );
    const WARNING: &str = "too many logins started from one client address";
    let log = stack
        .portcullis
        .log_once(|line| line.contains(WARNING))
        .await;
    let warnings = log.lines().filter(|line| line.contains(WARNING)).count();
    assert!(
        (1..rejected).contains(&warnings),
        "expected the 429s to be logged at most once a second, got {warnings} lines"
    );
}

#[tokio::test]
async fn login_works_after_bucket_refills() {
    let stack = Stack::start_with_env(&[
        ("PORTCULLIS_SESSION__LOGIN_STARTS_PER_MINUTE", "60"),
        ("PORTCULLIS_SESSION__LOGIN_STARTS_BURST", "2"),
    ])
    .await;
    let flooder = stack.browser();
    let url = stack.proxy_url("/");
    let mut wait = None;
    for _ in 0..FLOOD {
        let response = flooder.navigate(&url).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            wait = Some(retry_after(&response));
            break;
        }
        assert_eq!(response.status(), StatusCode::FOUND);
    }
    let wait = wait.expect("a 429 within the flood, past the burst of 2");
    assert_eq!(wait, 1, "one start is earned each second");

    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    // The login's own start uses the earned token; the callback and the
    // landing page start none.
    stack.signed_in("alice").await;
}

#[tokio::test]
async fn full_memory_store_keeps_logins_working() {
    const MAX_ENTRIES: usize = 100;
    const FLOWS: usize = 3 * MAX_ENTRIES;
    let stack = Stack::start_with_env(&[
        ("PORTCULLIS_SESSION__LOGIN_STARTS_PER_MINUTE", "0"),
        ("PORTCULLIS_SESSION__MEMORY_MAX_ENTRIES", "100"),
    ])
    .await;
    let bob = stack.signed_in("bob").await;
    let early = stack.browser();
    let early_authorization = early.start_login("/").await;

    let flooder = stack.browser();
    let url = stack.proxy_url("/");
    let started = Instant::now();
    for i in 0..FLOWS {
        let response = flooder.navigate(&url).await;
        assert_eq!(
            response.status(),
            StatusCode::FOUND,
            "navigation {i}: a full store evicts a flow instead of failing the login"
        );
    }
    println!("{FLOWS} login starts took {:?}", started.elapsed());

    assert_eq!(
        stack.metric("portcullis_memory_store_entries").await,
        Some(MAX_ENTRIES as f64),
        "the store stays at its cap"
    );
    let evictions = stack
        .metric("portcullis_memory_store_evictions_total")
        .await
        .expect("the eviction counter is listed");
    assert!(
        evictions >= (FLOWS + 1 - MAX_ENTRIES) as f64,
        "expected the flood to evict flows, got {evictions}"
    );

    stack.signed_in("alice").await;
    let page = bob.navigate(&stack.proxy_url("/")).await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "a session made before the flood is never evicted"
    );

    let callback = early.authorize_at_idp(&early_authorization, "bob").await;
    let expired = early.navigate(&callback).await;
    assert_eq!(
        expired.status(),
        StatusCode::BAD_REQUEST,
        "the oldest flow was evicted first"
    );
    let html = expired.text().await.unwrap_or_default();
    assert!(html.contains("expired"), "page:\n{html}");
}
