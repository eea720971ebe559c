//! Deprovisioning ends access: a user signed in on two portcullis processes
//! that share one Redis and one SQLite directory is deactivated or deleted
//! through SCIM, in each client's dialect, and both processes reject the
//! next request within a second. Each test prints the measured delay from
//! the SCIM response to the first rejected request on each process.

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};

use crate::session::sign_out_post;
use crate::support::browser::NAVIGATION_ACCEPT;
use crate::support::portcullis::Portcullis;
use crate::support::scim::{ScimClient, SCIM_MEDIA_TYPE};
use crate::support::{redirect_target, Browser, SessionStore, Stack, StackOptions};

/// The provider's login name of the test user; its `sub` and
/// `preferred_username` are the same, its email `dana@example.test`.
const LOGIN: &str = "dana";

/// Interval between two requests while waiting for the rejection.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The longest accepted delay between the SCIM response and the rejection.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// How long the test keeps polling, past [`MAX_DELAY`], so that a slow
/// rejection is measured before the test fails.
const POLL_LIMIT: Duration = Duration::from_secs(8);

/// `schemas` of a PATCH request.
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The SCIM request that ends the user.
#[derive(Debug, Clone, Copy)]
enum Deprovision {
    /// Okta: PATCH without a path, `{"active": false}` as the value.
    OktaPatch,
    /// Microsoft Entra: `Replace` of path `active` with the string `"False"`.
    EntraPatch,
    /// PUT of the whole user with `active: false`.
    Put,
    /// DELETE of the user.
    Delete,
}

fn user_document(active: bool) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{LOGIN}@example.test"),
        "externalId": LOGIN,
        "name": {"givenName": "Dana", "familyName": "Test"},
        "emails": [{"value": format!("{LOGIN}@example.test"), "type": "work", "primary": true}],
        "active": active,
    })
}

/// Sends the SCIM request that deprovisions user `id` and checks its status.
async fn deprovision(scim: &ScimClient, id: &str, action: Deprovision) {
    let target = format!("/Users/{id}");
    let (method, body, expected) = match action {
        Deprovision::OktaPatch => (
            Method::PATCH,
            Some(json!({
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "value": {"active": false}}],
            })),
            StatusCode::OK,
        ),
        Deprovision::EntraPatch => (
            Method::PATCH,
            Some(json!({
                "schemas": [PATCH_OP],
                "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
            })),
            StatusCode::OK,
        ),
        Deprovision::Put => (Method::PUT, Some(user_document(false)), StatusCode::OK),
        Deprovision::Delete => (Method::DELETE, None, StatusCode::NO_CONTENT),
    };
    let mut request = scim
        .request(method, &target)
        .header(ACCEPT, SCIM_MEDIA_TYPE);
    if let Some(body) = body {
        request = request
            .header(CONTENT_TYPE, SCIM_MEDIA_TYPE)
            .body(body.to_string());
    }
    let reply = scim.send(request).await;
    assert_eq!(
        reply.status, expected,
        "expected {action:?} of {target} to succeed, got body:\n{}",
        reply.text
    );
}

/// Returns the SQLite URL of `instance`'s directory, which the harness puts
/// beside its configuration file.
fn directory_url(instance: &Portcullis) -> String {
    let path = instance.config_path.with_file_name("portcullis.db");
    format!("sqlite://{}", path.display())
}

/// Returns the `calls` of `GET` in Redis's `INFO commandstats`.
async fn redis_get_calls(redis_url: &str) -> u64 {
    let client = redis::Client::open(redis_url).expect("valid Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("the test redis-server accepts connections");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .expect("INFO commandstats succeeds");
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().expect("a numeric call count"))
}

/// Sends an API call through `proxy` with the browser's cookies.
async fn api_status(browser: &Browser, proxy: &Url) -> StatusCode {
    let url = proxy.join("/echo/api").expect("valid URL");
    browser.fetch_json(&url).await.status()
}

/// Polls every process in `proxies` until an API call is rejected there.
/// Returns each process's delay from `since`, or `None` when it still
/// admitted the session after [`POLL_LIMIT`].
async fn wait_for_rejections(
    browser: &Browser,
    proxies: &[&Url],
    since: Instant,
) -> Vec<Option<Duration>> {
    let mut delays: Vec<Option<Duration>> = vec![None; proxies.len()];
    while since.elapsed() < POLL_LIMIT && delays.iter().any(Option::is_none) {
        for (proxy, delay) in proxies.iter().zip(delays.iter_mut()) {
            if delay.is_some() {
                continue;
            }
            let status = api_status(browser, proxy).await;
            if status == StatusCode::UNAUTHORIZED {
                *delay = Some(since.elapsed());
            } else {
                assert_eq!(status, StatusCode::OK, "expected 200 or 401 from {proxy}");
            }
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    delays
}

/// Signs the user in through the first process, uses the session on both,
/// deprovisions the user with `action` and checks that both processes reject
/// the session within [`MAX_DELAY`].
async fn deprovisioning_ends_sessions(action: Deprovision) {
    let stack = Stack::start_with(SessionStore::Redis).await;
    let redis_url = stack.redis.as_ref().expect("a Redis stack").url();
    let shared_directory = directory_url(&stack.portcullis);
    let replica = stack
        .start_replica(
            "replica",
            &[("PORTCULLIS_DIRECTORY__URL", shared_directory.as_str())],
        )
        .await;
    let scim = ScimClient::new(&stack.portcullis.proxy, &stack.portcullis.token());
    let created = scim.post("/Users", &user_document(true)).await;
    created.expect_status(201, "POST /Users");
    let id = created.body["id"]
        .as_str()
        .expect("the created user has an id")
        .to_owned();

    let browser = stack.signed_in(LOGIN).await;
    let proxies = [&stack.portcullis.proxy, &replica.proxy];
    for proxy in proxies {
        assert_eq!(
            api_status(&browser, proxy).await,
            StatusCode::OK,
            "expected the session to work on {proxy}"
        );
    }
    let gets_before = redis_get_calls(&redis_url).await;
    for proxy in proxies {
        assert_eq!(
            api_status(&browser, proxy).await,
            StatusCode::OK,
            "expected the cached session to work on {proxy}"
        );
    }
    assert_eq!(
        redis_get_calls(&redis_url).await,
        gets_before,
        "expected a second request within session.cache_ttl to read no session from Redis"
    );

    deprovision(&scim, &id, action).await;
    let responded = Instant::now();
    let delays = wait_for_rejections(&browser, &proxies, responded).await;
    for (name, delay) in ["primary", "replica"].iter().zip(&delays) {
        match delay {
            Some(delay) => println!(
                "revocation delay after {action:?}: {name} rejected the session {:.1} ms after the SCIM response",
                delay.as_secs_f64() * 1000.0
            ),
            None => println!(
                "revocation delay after {action:?}: {name} still admitted the session after {} ms",
                POLL_LIMIT.as_millis()
            ),
        }
    }
    for (name, delay) in ["primary", "replica"].iter().zip(&delays) {
        let delay = delay.unwrap_or(POLL_LIMIT);
        assert!(
            delay <= MAX_DELAY,
            "expected the {name} process to reject the session within {MAX_DELAY:?} of {action:?}, took {delay:?}"
        );
    }
    for proxy in proxies {
        assert_navigation_goes_to_login(&browser, proxy, &stack).await;
    }
}

/// Checks that a page navigation with the revoked session is sent to the
/// provider to sign in.
async fn assert_navigation_goes_to_login(browser: &Browser, proxy: &Url, stack: &Stack) {
    let url = proxy.join("/dashboard").expect("valid URL");
    let response = browser
        .client()
        .get(url.clone())
        .header(ACCEPT, NAVIGATION_ACCEPT)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "expected a navigation to {url} with the revoked session to redirect"
    );
    let location = redirect_target(&url, &response);
    assert!(
        location
            .as_str()
            .starts_with(stack.idp.authorization_endpoint.as_str()),
        "expected {url} to redirect to the provider's login, got {location}"
    );
}

#[tokio::test]
async fn okta_patch_ends_sessions() {
    deprovisioning_ends_sessions(Deprovision::OktaPatch).await;
}

#[tokio::test]
async fn entra_patch_ends_sessions() {
    deprovisioning_ends_sessions(Deprovision::EntraPatch).await;
}

#[tokio::test]
async fn put_inactive_ends_sessions() {
    deprovisioning_ends_sessions(Deprovision::Put).await;
}

#[tokio::test]
async fn delete_ends_sessions() {
    deprovisioning_ends_sessions(Deprovision::Delete).await;
}

#[tokio::test]
async fn cli_deactivate_ends_sessions() {
    let stack = Stack::start_with(SessionStore::Redis).await;
    let scim = ScimClient::new(&stack.portcullis.proxy, &stack.portcullis.token());
    let created = scim.post("/Users", &user_document(true)).await;
    created.expect_status(201, "POST /Users");
    let id = created.body["id"]
        .as_str()
        .expect("the created user has an id")
        .to_owned();
    let browser = stack.signed_in(LOGIN).await;
    let proxy = &stack.portcullis.proxy;
    assert_eq!(
        api_status(&browser, proxy).await,
        StatusCode::OK,
        "expected the session to work before the deactivation"
    );

    let output = stack.portcullis.command(&["user", "deactivate", &id]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "portcullis user deactivate failed with {}; stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout.trim(),
        format!("deactivated {id}; ended 1 sessions"),
        "expected the command to report the ended session"
    );
    let delays = wait_for_rejections(&browser, &[proxy], Instant::now()).await;
    assert!(
        delays[0].is_some_and(|delay| delay <= MAX_DELAY),
        "expected the server to reject the session within {MAX_DELAY:?} of the command, got {:?}",
        delays[0]
    );
}

/// A rename followed by a deactivation, as Okta sends an email change and,
/// later, a leaver. Sessions are indexed by the login's claims, so the
/// rename itself must end them; otherwise the deactivation, which looks up
/// the new identifiers, would find none. The user has no `externalId`,
/// as with Entra, whose `sub` differs from anything SCIM sends.
#[tokio::test]
async fn rename_ends_sessions_under_old_identifiers() {
    let stack = Stack::start_with(SessionStore::Redis).await;
    let scim = ScimClient::new(&stack.portcullis.proxy, &stack.portcullis.token());
    let mut document = user_document(true);
    document
        .as_object_mut()
        .expect("a User document is an object")
        .remove("externalId");
    let created = scim.post("/Users", &document).await;
    created.expect_status(201, "POST /Users");
    let id = created.body["id"].as_str().expect("an id").to_owned();
    let browser = stack.signed_in(LOGIN).await;
    let proxy = &stack.portcullis.proxy;
    assert_eq!(api_status(&browser, proxy).await, StatusCode::OK);

    let rename = json!({
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "value": {
            "userName": "robert@example.test",
            "emails": [{"value": "robert@example.test", "primary": true}],
        }}],
    });
    let request = scim
        .request(Method::PATCH, &format!("/Users/{id}"))
        .header(CONTENT_TYPE, SCIM_MEDIA_TYPE)
        .body(rename.to_string());
    scim.send(request).await.expect_status(200, "PATCH rename");
    let delays = wait_for_rejections(&browser, &[proxy], Instant::now()).await;
    let delay = delays[0].unwrap_or(POLL_LIMIT);
    assert!(
        delay <= MAX_DELAY,
        "expected the rename to end the session under the old email within {MAX_DELAY:?}, took {delay:?}"
    );
    deprovision(&scim, &id, Deprovision::OktaPatch).await;
}

/// Waits until `portcullis_sessions_active` of `instance` reads
/// `expected`, for at most [`POLL_LIMIT`].
async fn expect_active_sessions(instance: &Portcullis, expected: f64, case: &str) {
    instance
        .expect_metric("portcullis_sessions_active", expected, POLL_LIMIT, case)
        .await;
}

/// The active-sessions gauge counts the sessions in Redis: two sign-ins
/// make 2, a sign-out 1, and a SCIM deactivation 0. The count runs every
/// 200 ms here in place of every 15 s.
#[tokio::test]
async fn active_sessions_gauge_follows_sessions() {
    let stack = Stack::start_with_options(StackOptions {
        store: SessionStore::Redis,
        env: vec![(
            "PORTCULLIS_SESSION__ACTIVE_COUNT_INTERVAL",
            "200ms".to_owned(),
        )],
        ..StackOptions::default()
    })
    .await;
    let scim = ScimClient::new(&stack.portcullis.proxy, &stack.portcullis.token());
    let created = scim.post("/Users", &user_document(true)).await;
    created.expect_status(201, "POST /Users");
    let id = created.body["id"].as_str().expect("an id").to_owned();
    expect_active_sessions(&stack.portcullis, 0.0, "before any login").await;

    let alice = stack.signed_in("alice").await;
    let _dana = stack.signed_in(LOGIN).await;
    expect_active_sessions(&stack.portcullis, 2.0, "two users signed in").await;

    let sign_out = stack.proxy_url("/oauth2/sign_out");
    let origin = stack.proxy_url("/").origin().ascii_serialization();
    let response = sign_out_post(&alice, &sign_out, &origin).await;
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "expected the sign-out to redirect to the provider"
    );
    expect_active_sessions(&stack.portcullis, 1.0, "alice signed out").await;

    deprovision(&scim, &id, Deprovision::OktaPatch).await;
    expect_active_sessions(&stack.portcullis, 0.0, "dana deactivated").await;
}
