//! Redirect loops cannot happen: a callback whose `state` is unknown or
//! expired gets a page with one "Sign in again" link and never a redirect to
//! the provider, and a browser that is already signed in goes to the
//! dashboard instead.

use reqwest::header::LOCATION;
use reqwest::{Response, StatusCode, Url};
use sha2::{Digest, Sha256};

use crate::support::{Browser, SessionStore, Stack};

/// Returns the `state` parameter of an authorization URL.
fn state_of(authorization: &Url) -> String {
    authorization
        .query_pairs()
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| panic!("expected a state parameter in {authorization}"))
}

/// Makes the stored login flow of `state` expire at once, as if the
/// provider had taken longer than the flow's lifetime.
async fn expire_flow(redis_url: &str, state: &str) {
    let digest = Sha256::digest(state.as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    let key = format!("portcullis:login:{hex}");
    let client = redis::Client::open(redis_url).expect("valid Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("the test redis-server accepts connections");
    let expired: i64 = redis::cmd("PEXPIRE")
        .arg(&key)
        .arg(1)
        .query_async(&mut connection)
        .await
        .expect("PEXPIRE succeeds");
    assert_eq!(
        expired, 1,
        "expected the login flow {key} to exist in Redis"
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
}

/// Checks that `response` is the "Sign in again" page and no redirect.
async fn assert_sign_in_again_page(response: Response, case: &str) {
    let status = response.status();
    let location = response.headers().get(LOCATION).cloned();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{case}: expected 400; body:\n{body}"
    );
    assert!(
        location.is_none(),
        "{case}: expected no redirect, got Location {location:?}"
    );
    assert_eq!(
        body.matches("href=").count(),
        1,
        "{case}: expected exactly one link on the page, got:\n{body}"
    );
    assert!(
        body.contains("href=\"/oauth2/start\""),
        "{case}: expected the link to start a new login, got:\n{body}"
    );
}

/// Completes a login at the provider up to the callback URL, without
/// opening it. The login starts at `/oauth2/start`, which also works for a
/// browser that is signed in already.
async fn callback_url(browser: &Browser, user: &str) -> Url {
    let authorization = browser.start_login("/oauth2/start?rd=/reports").await;
    browser.authorize_at_idp(&authorization, user).await
}

#[tokio::test]
async fn expired_state_shows_page() {
    let stack = Stack::start_with(SessionStore::Redis).await;
    let redis_url = stack.redis.as_ref().expect("a Redis stack").url();

    let browser = stack.browser();
    let callback = callback_url(&browser, "alice").await;
    expire_flow(&redis_url, &state_of(&callback)).await;
    let response = browser.navigate(&callback).await;
    assert_sign_in_again_page(response, "expired state").await;
    assert!(
        browser.session_cookie().is_none(),
        "expected no session after an expired state"
    );

    let unknown = stack.proxy_url("/oauth2/callback?code=made-up&state=never-issued");
    for attempt in 1..=3 {
        let response = browser.navigate(&unknown).await;
        assert_sign_in_again_page(response, &format!("unknown state, attempt {attempt}")).await;
    }
}

#[tokio::test]
async fn signed_in_stale_state_goes_home() {
    let stack = Stack::start_with(SessionStore::Redis).await;
    let redis_url = stack.redis.as_ref().expect("a Redis stack").url();
    let browser = stack.signed_in("alice").await;

    let callback = callback_url(&browser, "alice").await;
    expire_flow(&redis_url, &state_of(&callback)).await;
    let cases = [
        ("expired state", callback),
        (
            "unknown state",
            stack.proxy_url("/oauth2/callback?code=made-up&state=never-issued"),
        ),
    ];
    for (case, url) in cases {
        let response = browser.navigate(&url).await;
        assert_eq!(
            response.status(),
            StatusCode::FOUND,
            "{case}: expected a signed-in browser to be redirected"
        );
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            location, "/",
            "{case}: expected the dashboard's start page, never the provider"
        );
    }
}

#[tokio::test]
async fn provider_down_shows_page_then_recovers() {
    let mut stack = Stack::start().await;
    stack.idp.stop();
    let browser = stack.browser();
    for path in ["/reports", "/oauth2/start?rd=/reports"] {
        let response = browser.navigate(&stack.proxy_url(path)).await;
        let status = response.status();
        let location = response.headers().get(LOCATION).cloned();
        let retry_after = response.headers().get("retry-after").cloned();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: expected 503 while the provider is down; body:\n{body}"
        );
        assert!(
            location.is_none(),
            "{path}: expected no redirect to a provider that is down, got {location:?}"
        );
        assert!(retry_after.is_some(), "{path}: expected Retry-After");
        assert!(
            body.contains("Sign-in is unavailable") && body.contains("href=\"/oauth2/start\""),
            "{path}: expected the unavailable page with a link to try again, got:\n{body}"
        );
    }

    stack.idp.restart().await;
    let mut recovered = None;
    // A probe's outcome is reused for 10 s, so allow a little more.
    for _ in 0..30 {
        let response = browser.navigate(&stack.proxy_url("/reports")).await;
        if response.status() == StatusCode::FOUND {
            recovered = Some(response);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(
        recovered.is_some(),
        "expected logins to redirect to the provider within 15 s of its restart; log:\n{}",
        stack.portcullis.log()
    );
    let landing = browser.login("alice", "/reports").await;
    assert_eq!(
        landing.status(),
        StatusCode::OK,
        "expected a full login once the provider is back"
    );
}
