//! The login flow: identity after login, parallel logins, state binding and
//! the post-login target.

use reqwest::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};

use crate::support::{set_cookies_named, Browser, Echo, Stack, SESSION_COOKIE};

/// Returns the `state` parameter of an authorization URL.
fn state_of(authorization: &Url) -> String {
    authorization
        .query_pairs()
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| panic!("expected a state parameter in {authorization}"))
}

fn is_html(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"))
}

#[tokio::test]
async fn login_reaches_dashboard_with_identity() {
    let stack = Stack::start().await;

    let alice = stack.browser();
    let landing = alice.login("alice", "/echo/page?x=1").await;
    assert_eq!(
        landing.url().path(),
        "/echo/page",
        "expected the login to land on the requested path"
    );
    assert_eq!(
        landing.url().query(),
        Some("x=1"),
        "expected the login to keep the requested query"
    );
    let echo = Echo::read(landing).await;
    assert_eq!(
        echo.path, "/echo/page?x=1",
        "expected the dashboard to receive the requested target"
    );
    let expected = [
        ("x-forwarded-user", "alice"),
        ("x-forwarded-email", "alice@example.test"),
        ("x-forwarded-groups", "admins,engineering"),
        ("x-forwarded-preferred-username", "alice"),
    ];
    for (name, value) in expected {
        assert_eq!(
            echo.single(name),
            value,
            "expected the dashboard to receive {name}: {value} for alice"
        );
    }

    let bob = stack.browser();
    let echo = Echo::read(bob.login("bob", "/echo/bob").await).await;
    assert_eq!(
        echo.single("x-forwarded-user"),
        "bob",
        "expected the dashboard to receive x-forwarded-user: bob"
    );
    assert_eq!(
        echo.single("x-forwarded-email"),
        "bob@example.test",
        "expected the dashboard to receive bob's email"
    );
    assert_eq!(
        echo.single("x-forwarded-groups"),
        "engineering",
        "expected bob's groups to be engineering only"
    );
}

#[tokio::test]
async fn parallel_tabs_both_log_in() {
    let stack = Stack::start().await;
    let browser = stack.browser();

    let first = browser.start_login("/a").await;
    let second = browser.start_login("/b").await;
    assert_ne!(
        state_of(&first),
        state_of(&second),
        "expected each tab's login to get its own state"
    );

    let second_callback = browser.authorize_at_idp(&second, "alice").await;
    let second_landing = browser.finish_login(&second_callback).await;
    assert_eq!(
        second_landing.url().path(),
        "/b",
        "expected the second tab to land on /b"
    );
    assert_eq!(
        second_landing.status(),
        StatusCode::OK,
        "expected the second tab's page to load"
    );

    // The provider already has a session now, so it may skip its forms.
    let first_callback = browser.authorize_at_idp(&first, "alice").await;
    let response = browser.navigate(&first_callback).await;
    let status = response.status();
    let location = response.headers().get(LOCATION).cloned();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(
        status,
        StatusCode::FOUND,
        "expected the first tab's callback to redirect to /a after the second tab signed in; body:\n{body}"
    );
    assert_eq!(
        location.as_ref().and_then(|l| l.to_str().ok()),
        Some("/a"),
        "expected the first tab's callback to return to /a"
    );
    let first_landing = browser.navigate(&stack.proxy_url("/a")).await;
    assert_eq!(
        first_landing.status(),
        StatusCode::OK,
        "expected the first tab's page to load"
    );
}

#[tokio::test]
async fn state_from_other_browser_rejected() {
    let stack = Stack::start().await;

    // The other browser has either no binding cookie or the one of its own
    // login. Neither matches the cookie of the browser that started the flow.
    for other_has_own_login in [false, true] {
        let starter = stack.browser();
        let authorization = starter.start_login("/reports").await;

        let other = stack.browser();
        if other_has_own_login {
            other.start_login("/").await;
        }
        let callback = other.authorize_at_idp(&authorization, "bob").await;
        let response = other.navigate(&callback).await;
        let status = response.status();
        let session_cookies = set_cookies_named(response.headers(), SESSION_COOKIE).len();
        let content_type = response.headers().get(CONTENT_TYPE).cloned();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "expected a callback from another browser (own login: {other_has_own_login}) to be rejected; body:\n{body}"
        );
        assert!(
            is_html(content_type.as_ref()),
            "expected an HTML page for a callback from another browser, got {content_type:?}"
        );
        assert_eq!(
            session_cookies, 0,
            "expected no session cookie for a callback from another browser"
        );
        assert!(
            other.session_cookie().is_none(),
            "expected the other browser to stay signed out"
        );
    }

    let browser = stack.browser();
    let unknown = stack.proxy_url("/oauth2/callback?code=made-up&state=unknown-state");
    let response = browser.navigate(&unknown).await;
    let status = response.status();
    let location = response.headers().get(LOCATION).cloned();
    let content_type = response.headers().get(CONTENT_TYPE).cloned();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "expected a callback with an unknown state to get 400; body:\n{body}"
    );
    assert!(
        location.is_none(),
        "expected no redirect for an unknown state, got Location {location:?}"
    );
    assert!(
        is_html(content_type.as_ref()),
        "expected an HTML page for an unknown state, got {content_type:?}"
    );
    assert!(
        body.contains("Sign in again"),
        "expected a \"Sign in again\" link on the page, got:\n{body}"
    );
    assert!(
        body.contains("href=\"/oauth2/start\""),
        "expected the link to start a new login, got:\n{body}"
    );
}

#[tokio::test]
async fn rd_parameter_same_origin_only() {
    let stack = Stack::start().await;
    let cases = [
        ("/reports", "/reports"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
    ];
    for (rd, expected) in cases {
        let browser: Browser = stack.browser();
        let encoded: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let landing = browser
            .login("alice", &format!("/oauth2/start?rd={encoded}"))
            .await;
        assert_eq!(
            landing.url().as_str(),
            stack.proxy_url(expected).as_str(),
            "expected rd={rd} to land on {expected}"
        );
        assert_eq!(
            landing.status(),
            StatusCode::OK,
            "expected the page after rd={rd} to load"
        );
    }
}
