//! Sessions in Redis Sentinel and Redis Cluster, through `redis+sentinel://`
//! and `redis+cluster://` URLs. A Sentinel failover keeps the session: while
//! it runs, requests get 503 with `Retry-After`, never a 500 or a redirect
//! to the login, and the same cookie works again afterwards. On both
//! topologies a SCIM deactivation ends the session. The Sentinel test
//! prints how long the session was unavailable.

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::json;

use crate::support::browser::NAVIGATION_ACCEPT;
use crate::support::portcullis::Portcullis;
use crate::support::scim::ScimClient;
use crate::support::{redirect_target, Browser, Echo, SessionStore, Stack, StackOptions};

/// The provider's login name of the test user; its `sub` and
/// `preferred_username` are the same, its email `dana@example.test`.
const LOGIN: &str = "dana";

/// Interval between two requests while waiting for a state change.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Longest accepted time from the master's kill until a request with the
/// session returns 200 again. Sentinel needs 1 s (`down-after-milliseconds`)
/// to consider the master down, then an election, and portcullis a lookup.
/// The store tests measured 2.3 to 2.6 s for all of it on a 2-core machine.
const FAILOVER_LIMIT: Duration = Duration::from_secs(15);

/// Longest accepted delay between the SCIM response and the rejection of
/// the session, as in the deprovisioning tests on one Redis server.
const REVOCATION_LIMIT: Duration = Duration::from_secs(1);

/// How long the tests keep polling for a rejection, past
/// [`REVOCATION_LIMIT`], so that a slow one is measured before it fails.
const REVOCATION_POLL_LIMIT: Duration = Duration::from_secs(8);

/// `session.active_count_interval` of these tests, so that
/// `portcullis_sessions_active` follows a change within a second.
const ACTIVE_COUNT_INTERVAL: (&str, &str) = ("PORTCULLIS_SESSION__ACTIVE_COUNT_INTERVAL", "200ms");

/// Starts a stack over `store` that counts active sessions every 200 ms.
async fn start_stack(store: SessionStore) -> Stack {
    let (name, value) = ACTIVE_COUNT_INTERVAL;
    Stack::start_with_options(StackOptions {
        store,
        env: vec![(name, value.to_owned())],
        ..StackOptions::default()
    })
    .await
}

/// Waits until `portcullis_sessions_active` of `instance` reads
/// `expected`, for at most [`REVOCATION_POLL_LIMIT`].
async fn expect_active_sessions(instance: &Portcullis, expected: f64, case: &str) {
    instance
        .expect_metric(
            "portcullis_sessions_active",
            expected,
            REVOCATION_POLL_LIMIT,
            case,
        )
        .await;
}

/// Creates the active SCIM user `dana` and returns the client and its id.
async fn provision_user(stack: &Stack) -> (ScimClient, String) {
    let scim = ScimClient::new(&stack.portcullis.proxy, &stack.portcullis.token());
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{LOGIN}@example.test"),
        "externalId": LOGIN,
        "emails": [{"value": format!("{LOGIN}@example.test"), "type": "work", "primary": true}],
        "active": true,
    });
    let created = scim.post("/Users", &user).await;
    created.expect_status(201, "POST /Users");
    let id = created.body["id"]
        .as_str()
        .expect("the created user has an id")
        .to_owned();
    (scim, id)
}

/// Sends an API call through `proxy` with the browser's cookies.
async fn api_status(browser: &Browser, proxy: &Url) -> StatusCode {
    let url = proxy.join("/echo/api").expect("valid URL");
    browser.fetch_json(&url).await.status()
}

/// Deactivates the user and checks that every process in `proxies` rejects
/// the session within [`REVOCATION_LIMIT`], then sends a navigation to the
/// provider's login. Prints each delay.
async fn assert_deactivation_ends_session(
    stack: &Stack,
    scim: &ScimClient,
    id: &str,
    browser: &Browser,
    proxies: &[&Url],
    case: &str,
) {
    scim.deactivate_user(id).await;
    let responded = Instant::now();
    for proxy in proxies {
        let delay = loop {
            let status = api_status(browser, proxy).await;
            if status == StatusCode::UNAUTHORIZED {
                break responded.elapsed();
            }
            assert_eq!(
                status,
                StatusCode::OK,
                "{case}: expected 200 or 401 from {proxy}"
            );
            assert!(
                responded.elapsed() < REVOCATION_POLL_LIMIT,
                "{case}: {proxy} still admitted the session {REVOCATION_POLL_LIMIT:?} after the deactivation"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        println!(
            "{case}: {proxy} rejected the session {:.1} ms after the SCIM response",
            delay.as_secs_f64() * 1000.0
        );
        assert!(
            delay <= REVOCATION_LIMIT,
            "{case}: expected {proxy} to reject the session within {REVOCATION_LIMIT:?}, took {delay:?}"
        );
        assert_navigation_goes_to_login(browser, proxy, stack, case).await;
    }
}

async fn assert_navigation_goes_to_login(
    browser: &Browser,
    proxy: &Url,
    stack: &Stack,
    case: &str,
) {
    let url = proxy.join("/dashboard").expect("valid URL");
    let response = browser.navigate(&url).await;
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "{case}: expected a navigation with the revoked session to redirect"
    );
    let location = redirect_target(&url, &response);
    assert!(
        location
            .as_str()
            .starts_with(stack.idp.authorization_endpoint.as_str()),
        "{case}: expected {url} to redirect to the provider's login, got {location}"
    );
}

/// What the polling during a failover saw.
struct FailoverObservation {
    /// From the kill to the first 200 after a 503.
    recovered: Duration,
    /// From the kill to the first poll that found the sentinels naming the
    /// new master.
    switched: Option<Duration>,
    /// 503 responses seen.
    unavailable: usize,
}

/// Requests `url` with the browser's session every [`POLL_INTERVAL`],
/// alternating fetch and navigation `Accept` headers, until a request
/// returns 200 after at least one 503. Every other response fails the
/// test: a 500, a 401, or a redirect to the login would each mean the
/// outage was taken for a missing session.
async fn poll_through_failover(
    stack: &Stack,
    browser: &Browser,
    url: &Url,
    killed_at: Instant,
) -> FailoverObservation {
    let group = stack.sentinel.as_ref().expect("a Sentinel stack");
    let mut observation = FailoverObservation {
        recovered: Duration::ZERO,
        switched: None,
        unavailable: 0,
    };
    for request in 0usize.. {
        if observation.switched.is_none()
            && group.named_master_port().await == Some(group.replica_port())
        {
            observation.switched = Some(killed_at.elapsed());
        }
        let accept = if request % 2 == 0 {
            "application/json"
        } else {
            NAVIGATION_ACCEPT
        };
        let response = browser
            .client()
            .get(url.clone())
            .header(ACCEPT, accept)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
        let status = response.status();
        let retry_after = response.headers().get(RETRY_AFTER).cloned();
        match status {
            StatusCode::OK if observation.unavailable > 0 => {
                observation.recovered = killed_at.elapsed();
                return observation;
            }
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(
                    retry_after.is_some(),
                    "expected Retry-After on the 503 with Accept: {accept}"
                );
                observation.unavailable += 1;
            }
            other => {
                let body = response.text().await.unwrap_or_default();
                panic!(
                    "expected 200 or 503 with Accept: {accept} during the failover, got {other} {:.0} ms after the kill; body:\n{body}",
                    killed_at.elapsed().as_secs_f64() * 1000.0
                );
            }
        }
        assert!(
            killed_at.elapsed() < FAILOVER_LIMIT,
            "expected the session to answer 200 within {FAILOVER_LIMIT:?} of the master's kill ({} responses were 503)",
            observation.unavailable
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    unreachable!("the loop returns or fails")
}

#[tokio::test]
async fn sentinel_failover_keeps_session() {
    let mut stack = start_stack(SessionStore::Sentinel).await;
    let (scim, id) = provision_user(&stack).await;
    let browser = stack.signed_in(LOGIN).await;
    let cookie = browser.session_cookie().expect("signed in");
    let url = stack.proxy_url("/echo/failover");
    let before = Echo::read(browser.fetch_json(&url).await).await;
    assert_eq!(
        before.single("x-forwarded-user"),
        LOGIN,
        "expected the session to work before the failover"
    );

    let group = stack.sentinel.as_mut().expect("a Sentinel stack");
    group.sync_replica().await;
    group.kill_master();
    let killed_at = Instant::now();
    let observation = poll_through_failover(&stack, &browser, &url, killed_at).await;
    let group = stack.sentinel.as_ref().expect("a Sentinel stack");
    assert_eq!(
        group.named_master_port().await,
        Some(group.replica_port()),
        "expected the sentinels to name the old replica as master"
    );
    println!(
        "Sentinel failover: the sentinels named the new master after {}, and the session answered 200 again {:.0} ms after the master was killed ({} responses were 503)",
        observation.switched.map_or_else(
            || "an unknown time".to_owned(),
            |switched| format!("{:.0} ms", switched.as_secs_f64() * 1000.0)
        ),
        observation.recovered.as_secs_f64() * 1000.0,
        observation.unavailable
    );

    assert_eq!(
        browser.session_cookie().as_deref(),
        Some(cookie.as_str()),
        "expected the same session cookie after the failover"
    );
    for _ in 0..3 {
        let echo = Echo::read(browser.fetch_json(&url).await).await;
        assert_eq!(
            echo.single("x-forwarded-user"),
            LOGIN,
            "expected the session to keep working on the new master"
        );
    }
    expect_active_sessions(&stack.portcullis, 1.0, "after failover").await;
    let proxy = &stack.portcullis.proxy;
    assert_deactivation_ends_session(&stack, &scim, &id, &browser, &[proxy], "after failover")
        .await;
    expect_active_sessions(&stack.portcullis, 0.0, "deactivated after failover").await;
}

/// Returns the SQLite URL of `instance`'s directory, which the harness puts
/// beside its configuration file, so a second process can share it.
fn directory_url(instance: &Portcullis) -> String {
    let path = instance.config_path.with_file_name("portcullis.db");
    format!("sqlite://{}", path.display())
}

#[tokio::test]
async fn cluster_login_and_revocation() {
    let stack = start_stack(SessionStore::Cluster).await;
    let shared_directory = directory_url(&stack.portcullis);
    let replica = stack
        .start_replica(
            "replica",
            &[
                ("PORTCULLIS_DIRECTORY__URL", shared_directory.as_str()),
                ACTIVE_COUNT_INTERVAL,
            ],
        )
        .await;
    let (scim, id) = provision_user(&stack).await;
    let browser = stack.signed_in(LOGIN).await;
    let proxies = [&stack.portcullis.proxy, &replica.proxy];
    for proxy in proxies {
        assert_eq!(
            api_status(&browser, proxy).await,
            StatusCode::OK,
            "expected the session to work on {proxy}"
        );
    }

    let cluster = stack.cluster.as_ref().expect("a Cluster stack");
    assert_eq!(
        cluster.count_keys("portcullis:session:*").await,
        1,
        "expected the session record in the cluster"
    );
    let indexes = cluster.count_keys("portcullis:index:*").await;
    assert!(
        indexes >= 2,
        "expected the session's index sets in the cluster, found {indexes}"
    );

    for (name, instance) in [("primary", &stack.portcullis), ("replica", &replica)] {
        let case = format!("cluster, signed in, {name}");
        expect_active_sessions(instance, 1.0, &case).await;
    }

    assert_deactivation_ends_session(&stack, &scim, &id, &browser, &proxies, "cluster").await;
    for (name, instance) in [("primary", &stack.portcullis), ("replica", &replica)] {
        let case = format!("cluster, deactivated, {name}");
        expect_active_sessions(instance, 0.0, &case).await;
    }
    assert_eq!(
        cluster.count_keys("portcullis:session:*").await,
        0,
        "expected the revocation to delete the session record"
    );
}
