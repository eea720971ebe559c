//! Session lifetime: sign-out, and a Redis outage that must neither end the
//! session nor send the browser to the provider.

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE, RETRY_AFTER};
use reqwest::{Response, StatusCode, Url};

use crate::support::{
    redirect_target, set_cookies_named, Browser, Echo, SessionStore, Stack, SESSION_COOKIE,
};

/// Time allowed for portcullis to serve the session again after Redis is
/// back: its Redis client reconnects on the next command, and a command
/// times out after `redis_timeout` (1 s in the test configuration).
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests `url` with only the session cookie `session`, outside any jar.
async fn get_with_session(
    client: &reqwest::Client,
    url: &Url,
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

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("HTTP client builds")
}

/// Follows a link to `url` as a browser does, with `Sec-Fetch-Site` set
/// to `fetch_site` when given.
async fn sign_out_get(browser: &Browser, url: &Url, fetch_site: Option<&str>) -> Response {
    let mut request = browser
        .client()
        .get(url.clone())
        .header(ACCEPT, "text/html")
        .header("sec-fetch-mode", "navigate");
    if let Some(site) = fetch_site {
        request = request.header("sec-fetch-site", site);
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"))
}

/// Submits the sign-out form to `url` with `Origin: origin`.
pub(crate) async fn sign_out_post(browser: &Browser, url: &Url, origin: &str) -> Response {
    browser
        .client()
        .post(url.clone())
        .header(ACCEPT, "text/html")
        .header("origin", origin)
        .header("sec-fetch-mode", "navigate")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} failed: {e}"))
}

/// Asserts that `browser`'s session still reaches the dashboard.
async fn assert_session_lives(stack: &Stack, browser: &Browser, case: &str) {
    let response = browser.fetch_json(&stack.proxy_url("/echo/alive")).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{case}: expected the session to survive"
    );
}

/// Asserts that `browser`'s session is gone, at portcullis and in the jar.
async fn assert_session_ended(stack: &Stack, browser: &Browser, case: &str) {
    assert!(
        browser.session_cookie().is_none(),
        "{case}: expected the session cookie to be cleared"
    );
    let response = browser.fetch_json(&stack.proxy_url("/echo/alive")).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "{case}: expected the session to have ended"
    );
}

#[tokio::test]
async fn sign_out_from_other_sites() {
    let stack = Stack::start().await;
    let alice = stack.signed_in("alice").await;
    let sign_out = stack.proxy_url("/oauth2/sign_out");
    let origin = stack.proxy_url("/").origin().ascii_serialization();

    for fetch_site in [Some("cross-site"), Some("same-site"), None] {
        let case = format!("GET with Sec-Fetch-Site {fetch_site:?}");
        let response = sign_out_get(&alice, &sign_out, fetch_site).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{case}: expected the confirmation page"
        );
        assert!(
            set_cookies_named(response.headers(), SESSION_COOKIE).is_empty(),
            "{case}: expected no change to the session cookie"
        );
        let body = response.text().await.expect("confirmation page body");
        assert!(
            body.contains("<form method=\"post\" action=\"/oauth2/sign_out\">"),
            "{case}: expected a form that POSTs to sign-out, got {body}"
        );
        assert_session_lives(&stack, &alice, &case).await;
    }

    let response = sign_out_post(&alice, &sign_out, "http://evil.example").await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "expected 403 for a POST from another origin"
    );
    assert_session_lives(&stack, &alice, "POST from another origin").await;

    let response = sign_out_post(&alice, &sign_out, &origin).await;
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "expected a POST from {origin} to sign out and redirect to the provider"
    );
    assert_session_ended(&stack, &alice, "POST from this origin").await;

    let bob = stack.signed_in("bob").await;
    let response = sign_out_get(&bob, &sign_out, Some("same-origin")).await;
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "expected a same-origin GET to sign out"
    );
    assert_session_ended(&stack, &bob, "same-origin GET").await;
}

#[tokio::test]
async fn sign_out_invalidates_old_cookie() {
    let stack = Stack::start().await;
    let alice = stack.signed_in("alice").await;
    let saved = alice.session_cookie().expect("signed in");
    let client = plain_client();
    let url = stack.proxy_url("/echo/after");

    let before = get_with_session(&client, &url, &saved, "application/json").await;
    assert_eq!(
        before.status(),
        StatusCode::OK,
        "expected the saved cookie to work before sign-out"
    );

    let sign_out = stack.proxy_url("/oauth2/sign_out");
    let response = sign_out_get(&alice, &sign_out, Some("same-origin")).await;
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "expected sign-out to redirect to the provider"
    );
    let location = redirect_target(&sign_out, &response);
    assert!(
        location
            .as_str()
            .starts_with(stack.idp.end_session_endpoint.as_str()),
        "expected sign-out to redirect to the provider's end_session_endpoint {}, got {location}",
        stack.idp.end_session_endpoint
    );
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    assert!(
        param("id_token_hint").is_some_and(|v| !v.is_empty()),
        "expected an id_token_hint in {location}"
    );
    assert_eq!(
        param("post_logout_redirect_uri").as_deref(),
        Some(stack.proxy_url("/").as_str()),
        "expected post_logout_redirect_uri to be the proxy's public URL in {location}"
    );
    let cleared = set_cookies_named(response.headers(), SESSION_COOKIE);
    assert_eq!(
        cleared.len(),
        1,
        "expected one Set-Cookie for {SESSION_COOKIE} at sign-out, got {cleared:?}"
    );
    assert!(
        cleared[0].starts_with(&format!("{SESSION_COOKIE}=;")) && cleared[0].contains("Max-Age=0"),
        "expected sign-out to clear the session cookie, got {:?}",
        cleared[0]
    );
    assert!(
        alice.session_cookie().is_none(),
        "expected the browser to drop the session cookie"
    );

    let replay = get_with_session(&client, &url, &saved, "application/json").await;
    assert_eq!(
        replay.status(),
        StatusCode::UNAUTHORIZED,
        "expected the saved cookie to be rejected after sign-out"
    );
}

/// Asserts that a request with the session during the outage gets 503 with
/// `Retry-After`, and neither a login redirect nor a 500.
async fn assert_unavailable(client: &reqwest::Client, url: &Url, session: &str, accept: &str) {
    let response = get_with_session(client, url, session, accept).await;
    let status = response.status();
    let retry_after = response.headers().get(RETRY_AFTER).cloned();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "expected 503 with Accept: {accept} while Redis is down; body:\n{body}"
    );
    assert!(
        retry_after.is_some(),
        "expected Retry-After on the 503 with Accept: {accept}"
    );
}

/// Polls, at most for [`RECOVERY_TIMEOUT`], until the session gets 503.
async fn wait_until_unavailable(client: &reqwest::Client, url: &Url, session: &str) {
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    loop {
        let response = get_with_session(client, url, session, "application/json").await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            return;
        }
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "expected the cached session (200) or 503 after the Redis kill"
        );
        assert!(
            Instant::now() < deadline,
            "expected 503 within {RECOVERY_TIMEOUT:?} of the Redis kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn redis_outage_gives_503_then_recovers() {
    // The test's redis-server syncs every write to its append-only file before
    // it replies, so the server restarted after the kill below reloads the
    // session. Without that file a restart would lose the session, and the
    // test could not tell a kept session from a lost one. A kill also makes a
    // real outage: a closed connection, refused reconnects and a new server
    // process. DEBUG SLEEP or CLIENT PAUSE would only make a slow server on a
    // connection that stays open.
    let mut stack = Stack::start_with(SessionStore::Redis).await;
    let alice = stack.signed_in("alice").await;
    let session = alice.session_cookie().expect("signed in");
    let client = plain_client();
    let url = stack.proxy_url("/echo/outage");
    let readyz = stack.admin_url("/readyz");

    let echo =
        Echo::read(get_with_session(&client, &url, &session, "application/json").await).await;
    assert_eq!(
        echo.single("x-forwarded-user"),
        "alice",
        "expected alice's session to work before the outage"
    );

    stack.redis.as_mut().expect("stack with Redis").stop();
    // A session read just before the kill may be served from the in-process
    // cache until portcullis notices that its revocation subscription is gone,
    // which is meant to take at most a moment. Wait for that first.
    wait_until_unavailable(&client, &url, &session).await;
    for _ in 0..2 {
        assert_unavailable(&client, &url, &session, "text/html").await;
        assert_unavailable(&client, &url, &session, "application/json").await;
    }
    let ready = client
        .get(readyz.clone())
        .send()
        .await
        .expect("GET /readyz");
    assert_eq!(
        ready.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "expected /readyz to return 503 while Redis is down"
    );

    stack
        .redis
        .as_mut()
        .expect("stack with Redis")
        .restart()
        .await;
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    let recovered = loop {
        let response = get_with_session(&client, &url, &session, "application/json").await;
        match response.status() {
            StatusCode::OK => break response,
            StatusCode::SERVICE_UNAVAILABLE if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            status => {
                let body = response.text().await.unwrap_or_default();
                panic!("expected the session to work again within {RECOVERY_TIMEOUT:?} after Redis restarted, got {status}; body:\n{body}");
            }
        }
    };
    let echo = Echo::read(recovered).await;
    assert_eq!(
        echo.single("x-forwarded-user"),
        "alice",
        "expected alice's identity after Redis recovered"
    );
    assert_eq!(
        echo.single("x-forwarded-groups"),
        "admins,engineering",
        "expected alice's groups after Redis recovered"
    );
    let ready = client.get(readyz).send().await.expect("GET /readyz");
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "expected /readyz to return 200 after Redis recovered"
    );
}

/// Statuses seen by the load loops of the test below.
#[derive(Debug, Default)]
struct LoadTally {
    ok: usize,
    unavailable: usize,
    unavailable_without_retry_after: usize,
    other: Vec<u16>,
}

#[tokio::test]
async fn redis_kill_under_load_loses_no_session() {
    const WORKERS: usize = 6;
    let mut stack = Stack::start_with(SessionStore::Redis).await;
    let mut sessions = Vec::new();
    for user in ["alice", "bob", "carol"] {
        let browser = stack.signed_in(user).await;
        sessions.push(browser.session_cookie().expect("signed in"));
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let client = plain_client();
        let url = stack.proxy_url(&format!("/echo/load-{worker}"));
        let session = sessions[worker % sessions.len()].clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut tally = LoadTally::default();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let response = get_with_session(&client, &url, &session, "application/json").await;
                match response.status() {
                    StatusCode::OK => tally.ok += 1,
                    StatusCode::SERVICE_UNAVAILABLE => {
                        tally.unavailable += 1;
                        if response.headers().get(RETRY_AFTER).is_none() {
                            tally.unavailable_without_retry_after += 1;
                        }
                    }
                    other => tally.other.push(other.as_u16()),
                }
            }
            tally
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let redis = stack.redis.as_mut().expect("stack with Redis");
    redis.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.restart().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut total = LoadTally::default();
    for worker in workers {
        let tally = worker.await.expect("a load loop completes");
        total.ok += tally.ok;
        total.unavailable += tally.unavailable;
        total.unavailable_without_retry_after += tally.unavailable_without_retry_after;
        total.other.extend(tally.other);
    }
    println!("Redis killed under load: {total:?}");
    assert!(
        total.other.is_empty(),
        "expected only 200 and 503 while Redis was killed and restarted, got {:?}",
        total.other
    );
    assert!(
        total.unavailable > 0,
        "expected some 503 while Redis was down"
    );
    assert_eq!(
        total.unavailable_without_retry_after, 0,
        "every 503 must carry Retry-After"
    );

    let client = plain_client();
    for (index, session) in sessions.iter().enumerate() {
        let url = stack.proxy_url(&format!("/echo/after-{index}"));
        let response = get_with_session(&client, &url, session, "application/json").await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "expected session {index} to work after Redis came back"
        );
    }
}
