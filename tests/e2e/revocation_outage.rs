//! Deprovisioning while Redis is down: SCIM responds with 503 instead of
//! a success that would leave the user's sessions alive, and once Redis is
//! back the background retry ends the session without the client sending
//! anything again. The test's redis-server keeps its data across a restart
//! (see `support::redis`), so the session outlives the outage.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};

use crate::support::scim::{ScimClient, ScimReply, SCIM_MEDIA_TYPE};
use crate::support::{Browser, SessionStore, Stack};

/// The provider's login name of the test user; its `sub` and
/// `preferred_username` are the same, its email `erin@example.test`.
const LOGIN: &str = "erin";

/// How long Redis stays down, long enough for several failed retries.
const OUTAGE: Duration = Duration::from_secs(3);

/// The longest accepted delay from Redis accepting connections again to
/// the session being rejected: the retry's longest backoff (5 s) plus a margin.
const MAX_DELAY_AFTER_RESTART: Duration = Duration::from_secs(7);

/// `schemas` of a PATCH request.
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

async fn create_user(scim: &ScimClient) -> String {
    let created = scim
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": format!("{LOGIN}@example.test"),
                "externalId": LOGIN,
                "emails": [{"value": format!("{LOGIN}@example.test"), "primary": true}],
                "active": true,
            }),
        )
        .await;
    created.expect_status(201, "POST /Users");
    created.body["id"]
        .as_str()
        .expect("the created user has an id")
        .to_owned()
}

async fn send(scim: &ScimClient, method: Method, target: &str, body: Option<Value>) -> ScimReply {
    let mut request = scim.request(method, target);
    if let Some(body) = body {
        request = request
            .header(CONTENT_TYPE, SCIM_MEDIA_TYPE)
            .body(body.to_string());
    }
    scim.send(request).await
}

async fn api_status(browser: &Browser, proxy: &Url) -> StatusCode {
    let url = proxy.join("/echo/api").expect("valid URL");
    browser.fetch_json(&url).await.status()
}

/// Checks a 503 SCIM error with `Retry-After`.
fn expect_retry_later(reply: &ScimReply, request: &str) {
    reply.expect_error(503, request);
    assert!(
        reply.headers.contains_key(RETRY_AFTER),
        "{request}: expected Retry-After on the 503"
    );
}

#[tokio::test]
async fn deactivation_during_outage_retried() {
    let mut stack = Stack::start_with(SessionStore::Redis).await;
    let scim = ScimClient::new(&stack.portcullis.proxy, &stack.portcullis.token());
    let id = create_user(&scim).await;
    let browser = stack.signed_in(LOGIN).await;
    let proxy = stack.portcullis.proxy.clone();
    assert_eq!(
        api_status(&browser, &proxy).await,
        StatusCode::OK,
        "expected the session to work before the outage"
    );

    let redis = stack.redis.as_mut().expect("a Redis stack");
    redis.stop();
    let deactivate = json!({
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "value": {"active": false}}],
    });
    let target = format!("/Users/{id}");
    let reply = send(&scim, Method::PATCH, &target, Some(deactivate)).await;
    expect_retry_later(&reply, "PATCH active=false while Redis is down");
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("stored") && detail.contains("retry"),
        "expected the detail to say the change was stored and to retry, got {detail:?}"
    );
    let stored = scim.get(&target).await;
    stored.expect_status(200, "GET the user during the outage");
    assert_eq!(
        stored.body["active"],
        json!(false),
        "expected the deactivation to be stored"
    );
    assert_eq!(
        api_status(&browser, &proxy).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "expected the session to be unavailable, not admitted, while Redis is down"
    );

    tokio::time::sleep(OUTAGE).await;
    redis.restart().await;
    let restarted = Instant::now();
    let mut statuses = Vec::new();
    loop {
        let status = api_status(&browser, &proxy).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        statuses.push(status);
        assert!(
            restarted.elapsed() < MAX_DELAY_AFTER_RESTART,
            "expected the session to be rejected within {MAX_DELAY_AFTER_RESTART:?} of the restart without a client retry; statuses meanwhile: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "session rejected {} ms after Redis answered again, with no SCIM retry ({} requests admitted or unavailable before)",
        restarted.elapsed().as_millis(),
        statuses.len()
    );
    assert_eq!(
        stack.metric("portcullis_revocation_retries_pending").await,
        Some(0.0),
        "expected no revocation waiting once the session ended"
    );
    assert!(
        stack
            .metric("portcullis_revocation_retries_total{outcome=\"success\"}")
            .await
            .is_some_and(|count| count >= 1.0),
        "expected a successful retry in /metrics"
    );
}

#[tokio::test]
async fn delete_during_outage_keeps_user() {
    let mut stack = Stack::start_with(SessionStore::Redis).await;
    let scim = ScimClient::new(&stack.portcullis.proxy, &stack.portcullis.token());
    let id = create_user(&scim).await;
    let target = format!("/Users/{id}");

    let redis = stack.redis.as_mut().expect("a Redis stack");
    redis.stop();
    let reply = send(&scim, Method::DELETE, &target, None).await;
    expect_retry_later(&reply, "DELETE while Redis is down");
    scim.get(&target)
        .await
        .expect_status(200, "GET the user after the failed DELETE");

    redis.restart().await;
    send(&scim, Method::DELETE, &target, None)
        .await
        .expect_status(204, "DELETE retried after the restart");
    scim.get(&target)
        .await
        .expect_status(404, "GET the user after the DELETE");
}
