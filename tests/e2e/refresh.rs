//! Access-token refresh: one token call for many concurrent requests across
//! two replicas with rotating refresh tokens, `invalid_grant` ending the
//! session, and a provider outage or a refresh slower than
//! `oidc.http_timeout` keeping it.
//!
//! The provider issues access tokens that live [`ACCESS_TOKEN_TTL`] seconds
//! and portcullis refreshes them one second before they expire, so a test
//! that sleeps [`UNTIL_DUE`] after login has a session whose refresh is due.

use std::time::Duration;

use reqwest::header::{ACCEPT, COOKIE};
use reqwest::{Response, StatusCode, Url};

use crate::support::browser::NAVIGATION_ACCEPT;
use crate::support::{Echo, SessionStore, Stack, StackOptions, SESSION_COOKIE};

/// Lifetime of the provider's access tokens, in seconds.
const ACCESS_TOKEN_TTL: &str = "3";

/// Time after a token was issued when its refresh is surely due: its
/// lifetime, past the one-second refresh margin and the rounding of expiry
/// to whole seconds.
const UNTIL_DUE: Duration = Duration::from_secs(3);

/// Delay of the provider's token endpoint in the concurrency test, long
/// enough for every concurrent request to arrive while the refresh runs.
const TOKEN_DELAY_MS: &str = "2500";

/// Requests sent at once to each of the two replicas.
const REQUESTS_PER_REPLICA: usize = 10;

/// Time after a failed refresh during which portcullis tries no other
/// refresh of the session (its fixed retry backoff).
const RETRY_BACKOFF: Duration = Duration::from_secs(10);

fn stack_options(store: SessionStore, idp_env: &[(&'static str, &str)]) -> StackOptions {
    let mut env: Vec<(&'static str, String)> = vec![
        ("IDP_ACCESS_TOKEN_TTL", ACCESS_TOKEN_TTL.to_owned()),
        ("IDP_TEST_STATS", "1".to_owned()),
    ];
    env.extend(idp_env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    StackOptions {
        store,
        idp_env: env,
        env: vec![("PORTCULLIS_SESSION__REFRESH_MARGIN", "1s".to_owned())],
        ..StackOptions::default()
    }
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("HTTP client builds")
}

/// Requests `url` with only the session cookie `session` and `accept`.
async fn get_with_session(
    client: &reqwest::Client,
    url: Url,
    session: &str,
    accept: &str,
) -> Response {
    client
        .get(url.clone())
        .header(ACCEPT, accept)
        .header(COOKIE, format!("{SESSION_COOKIE}={session}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"))
}

#[tokio::test]
async fn concurrent_refresh_redeems_once() {
    let options = stack_options(
        SessionStore::Redis,
        &[
            ("IDP_ROTATE_REFRESH_TOKENS", "1"),
            ("IDP_TOKEN_DELAY_MS", TOKEN_DELAY_MS),
        ],
    );
    let stack = Stack::start_with_options(options).await;
    let replica = stack
        .start_replica("replica", &[("PORTCULLIS_SESSION__REFRESH_MARGIN", "1s")])
        .await;
    let alice = stack.signed_in("alice").await;
    let session = alice.session_cookie().expect("signed in");
    tokio::time::sleep(UNTIL_DUE).await;
    let before = stack.idp.stats().await;

    let client = plain_client();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..REQUESTS_PER_REPLICA * 2 {
        let proxy = if i % 2 == 0 {
            &stack.portcullis.proxy
        } else {
            &replica.proxy
        };
        let url = proxy.join(&format!("/echo/burst-{i}")).expect("valid URL");
        let (client, session) = (client.clone(), session.clone());
        requests.spawn(async move {
            let response = get_with_session(&client, url, &session, "application/json").await;
            (i, response.status())
        });
    }
    let mut statuses = Vec::new();
    while let Some(result) = requests.join_next().await {
        statuses.push(result.expect("request task completes"));
    }
    let after = stack.idp.stats().await;

    for (i, status) in &statuses {
        assert_eq!(*status, StatusCode::OK, "request {i} of the burst");
    }
    assert_eq!(
        after.refresh_grants() - before.refresh_grants(),
        1,
        "expected exactly one refresh-token grant for {} concurrent requests",
        statuses.len()
    );

    let refreshed = stack
        .portcullis
        .log()
        .matches("access token refreshed")
        .count()
        + replica.log().matches("access token refreshed").count();
    assert_eq!(refreshed, 1, "expected one replica to log one refresh");

    // The rotated refresh token was stored: the next refresh succeeds too,
    // which it would not if a spent token had been redeemed twice (the
    // provider then revokes the grant).
    tokio::time::sleep(UNTIL_DUE).await;
    let url = replica.proxy.join("/echo/next-refresh").expect("valid URL");
    let response = get_with_session(&client, url, &session, "application/json").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "expected the session to survive a second refresh"
    );
    let last = stack.idp.stats().await;
    assert_eq!(
        last.refresh_grants() - after.refresh_grants(),
        1,
        "expected one more refresh-token grant for the next due request"
    );
}

#[tokio::test]
async fn invalid_grant_ends_session() {
    let mut stack = Stack::start_with_options(stack_options(SessionStore::Memory, &[])).await;
    let navigator = stack.signed_in("alice").await;
    let fetcher = stack.signed_in("bob").await;

    // A restarted provider has lost every grant, so it rejects both refresh
    // tokens with invalid_grant.
    stack.idp.restart().await;
    tokio::time::sleep(UNTIL_DUE).await;

    let page = stack.proxy_url("/echo/page");
    let response = navigator.navigate(&page).await;
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "expected a navigation with a rejected refresh token to go to login"
    );
    let location = crate::support::redirect_target(&page, &response);
    assert!(
        location
            .as_str()
            .starts_with(stack.idp.authorization_endpoint.as_str()),
        "expected the redirect to go to the provider, got {location}"
    );

    let api = stack.proxy_url("/echo/api");
    let response = fetcher.fetch_json(&api).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "expected an API call with a rejected refresh token to get 401"
    );
    let response = fetcher.fetch_json(&api).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "expected the ended session to stay ended"
    );
}

#[tokio::test]
async fn provider_down_keeps_session() {
    let mut stack = Stack::start_with_options(stack_options(SessionStore::Memory, &[])).await;
    let alice = stack.signed_in("alice").await;
    let session = alice.session_cookie().expect("signed in");
    stack.idp.stop();
    tokio::time::sleep(UNTIL_DUE).await;

    let client = plain_client();
    for attempt in ["first", "second"] {
        let url = stack.proxy_url(&format!("/echo/{attempt}"));
        let response = get_with_session(&client, url, &session, NAVIGATION_ACCEPT).await;
        let echo = Echo::read(response).await;
        assert_eq!(
            echo.single("x-forwarded-user"),
            "alice",
            "expected the {attempt} request to reach the dashboard while the provider is down"
        );
    }
    let log = stack.portcullis.log();
    assert_eq!(
        log.matches("token refresh failed; keeping the session")
            .count(),
        1,
        "expected one failed refresh, then a backoff; log:\n{log}"
    );
}

#[tokio::test]
async fn refresh_timeout_keeps_session() {
    // A refresh margin above the access token's hour-long lifetime makes
    // every request of the session due for a refresh, so the test need not
    // wait for the token to age.
    let stack = Stack::start_with_options(StackOptions {
        idp_env: vec![("IDP_TEST_CONTROL", "1".to_owned())],
        env: vec![
            ("PORTCULLIS_SESSION__REFRESH_MARGIN", "2h".to_owned()),
            ("PORTCULLIS_OIDC__HTTP_TIMEOUT", "1s".to_owned()),
        ],
        ..StackOptions::default()
    })
    .await;
    let alice = stack.signed_in("alice").await;
    let session = alice.session_cookie().expect("signed in");
    let client = plain_client();
    let count = |needle: &str| stack.portcullis.log().matches(needle).count();
    let refreshed_at_login = count("access token refreshed");

    stack.idp.set_token_delay(Duration::from_secs(3)).await;
    let started = std::time::Instant::now();
    let url = stack.proxy_url("/echo/timed-out");
    let echo = Echo::read(get_with_session(&client, url, &session, "application/json").await).await;
    let elapsed = started.elapsed();
    println!("request with a timed-out refresh answered after {elapsed:?}");
    assert_eq!(
        echo.single("x-forwarded-user"),
        "alice",
        "expected the request whose refresh timed out to reach the dashboard"
    );
    assert!(
        elapsed >= Duration::from_millis(950),
        "expected the request to wait for the 1 s refresh timeout, got {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2500),
        "expected the request to go on after the 1 s timeout, not the provider's 3 s, got {elapsed:?}"
    );
    assert_eq!(
        count("token refresh failed; keeping the session"),
        1,
        "expected one failed refresh; log:\n{}",
        stack.portcullis.log()
    );

    let url = stack.proxy_url("/echo/backing-off");
    let echo = Echo::read(get_with_session(&client, url, &session, "application/json").await).await;
    assert_eq!(echo.single("x-forwarded-user"), "alice");
    assert_eq!(
        count("token refresh failed; keeping the session"),
        1,
        "expected no second refresh while the backoff runs"
    );

    // The backoff is counted in whole seconds from the failure, so it is
    // over 10 s after the failed request returned.
    stack.idp.set_token_delay(Duration::ZERO).await;
    tokio::time::sleep(RETRY_BACKOFF).await;
    let url = stack.proxy_url("/echo/retried");
    let echo = Echo::read(get_with_session(&client, url, &session, "application/json").await).await;
    assert_eq!(echo.single("x-forwarded-user"), "alice");
    assert_eq!(
        count("access token refreshed"),
        refreshed_at_login + 1,
        "expected the refresh to be tried again, and to succeed, once the backoff is over; log:\n{}",
        stack.portcullis.log()
    );
}
