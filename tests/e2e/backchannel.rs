//! Back-channel logout: the real provider's logout token ends the session,
//! and tokens with a bad signature or wrong claims are rejected with 400
//! and end nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{ACCEPT, COOKIE};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};

use crate::support::browser::NAVIGATION_ACCEPT;
use crate::support::fixtures::CLIENT_ID;
use crate::support::{SessionStore, Stack, StackOptions, SESSION_COOKIE};

const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("HTTP client builds")
}

/// Returns the status of an API call with only the session cookie `session`.
async fn api_status(client: &reqwest::Client, stack: &Stack, session: &str) -> StatusCode {
    let url = stack.proxy_url("/echo/api");
    client
        .get(url.clone())
        .header(ACCEPT, "application/json")
        .header(COOKIE, format!("{SESSION_COOKIE}={session}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"))
        .status()
}

/// Reads the value of the hidden `xsrf` field of the provider's logout form.
fn xsrf_of(html: &str) -> String {
    html.split_once("name=\"xsrf\" value=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| value.to_owned())
        .unwrap_or_else(|| panic!("expected an xsrf field in the logout form:\n{html}"))
}

#[tokio::test]
async fn provider_logout_ends_session() {
    let stack = Stack::start_with_options(StackOptions {
        store: SessionStore::Redis,
        backchannel_logout: true,
        ..StackOptions::default()
    })
    .await;
    let alice = stack.signed_in("alice").await;
    let session = alice.session_cookie().expect("signed in");
    let client = plain_client();
    assert_eq!(
        api_status(&client, &stack, &session).await,
        StatusCode::OK,
        "expected the session to work before the logout at the provider"
    );

    // Sign out at the provider itself, as a user of another application
    // would; portcullis learns of it only through the back channel.
    let end_session = stack.idp.end_session_endpoint.clone();
    let form = alice.navigate(&end_session).await;
    assert_eq!(
        form.status(),
        StatusCode::OK,
        "expected the provider's logout form"
    );
    let xsrf = xsrf_of(&form.text().await.expect("logout form body"));
    let confirm = end_session.join("/session/end/confirm").expect("valid URL");
    let confirmed = alice
        .client()
        .post(confirm.clone())
        .header(ACCEPT, NAVIGATION_ACCEPT)
        .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {confirm} failed: {e}"));
    assert!(
        confirmed.status().is_redirection() || confirmed.status().is_success(),
        "expected the provider to confirm the logout, got {}",
        confirmed.status()
    );

    assert_eq!(
        api_status(&client, &stack, &session).await,
        StatusCode::UNAUTHORIZED,
        "expected the session to end after the provider's back-channel logout"
    );
    let log = stack.portcullis.log();
    assert!(
        log.contains("back-channel logout ended sessions"),
        "expected portcullis to log the back-channel logout; log:\n{log}"
    );
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn valid_claims(issuer: &Url, jti: &str) -> Value {
    json!({
        "iss": issuer.as_str().trim_end_matches('/'),
        "aud": CLIENT_ID,
        "iat": now(),
        "jti": jti,
        "sub": "alice",
        "events": { LOGOUT_EVENT: {} },
    })
}

fn changed(claims: &Value, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut claims = claims.clone();
    change(claims.as_object_mut().expect("claims are an object"));
    claims
}

/// Posts `token` to the back-channel endpoint; returns the status and body.
async fn post_logout(client: &reqwest::Client, stack: &Stack, token: &str) -> (StatusCode, String) {
    let url = stack.proxy_url("/oauth2/backchannel_logout");
    let response = client
        .post(url.clone())
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url} failed: {e}"));
    let status = response.status();
    let cache_control = response
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(
        cache_control.as_deref(),
        Some("no-store"),
        "expected Cache-Control: no-store on the back-channel response"
    );
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn bad_logout_tokens_rejected() {
    let stack = Stack::start_with_options(StackOptions {
        idp_env: vec![("IDP_TEST_SIGNING", "1".to_owned())],
        ..StackOptions::default()
    })
    .await;
    let alice = stack.signed_in("alice").await;
    let session = alice.session_cookie().expect("signed in");
    let client = plain_client();
    let valid = valid_claims(&stack.idp.issuer, "jti-valid");

    let good = stack.idp.sign(&valid).await;
    let mut bad_signature = good.clone();
    let last = bad_signature.pop().expect("token is not empty");
    bad_signature.push(if last == 'A' { 'B' } else { 'A' });
    let cases = [
        ("bad signature", bad_signature),
        (
            "wrong aud",
            stack
                .idp
                .sign(&changed(&valid, |c| {
                    c.insert("aud".into(), json!("another-client"));
                }))
                .await,
        ),
        (
            "nonce present",
            stack
                .idp
                .sign(&changed(&valid, |c| {
                    c.insert("nonce".into(), json!("n-1"));
                }))
                .await,
        ),
        (
            "missing events",
            stack
                .idp
                .sign(&changed(&valid, |c| {
                    c.remove("events");
                }))
                .await,
        ),
        (
            "wrong issuer",
            stack
                .idp
                .sign(&changed(&valid, |c| {
                    c.insert("iss".into(), json!("http://127.0.0.2:1"));
                }))
                .await,
        ),
        (
            "stale iat",
            stack
                .idp
                .sign(&changed(&valid, |c| {
                    c.insert("iat".into(), json!(now() - 3600));
                }))
                .await,
        ),
        ("not a JWT", "not-a-token".to_owned()),
    ];
    for (case, token) in &cases {
        let (status, body) = post_logout(&client, &stack, token).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "case {case:?}: body {body}"
        );
        let error: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("case {case:?}: body is not JSON ({e}): {body}"));
        assert_eq!(
            error["error"], "invalid_request",
            "case {case:?}: error code"
        );
        assert_eq!(
            api_status(&client, &stack, &session).await,
            StatusCode::OK,
            "case {case:?} must not end the session"
        );
    }

    let (status, body) = post_logout(&client, &stack, &good).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the valid token is accepted: {body}"
    );
    assert_eq!(
        api_status(&client, &stack, &session).await,
        StatusCode::UNAUTHORIZED,
        "the valid token ends alice's session"
    );
    let (status, _) = post_logout(&client, &stack, &good).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a replayed jti is rejected"
    );
}
