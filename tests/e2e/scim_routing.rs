//! `/scim/v2` belongs to portcullis in every spelling. With or without a
//! session, the SCIM handler replies to a request there (401 SCIM JSON
//! without a token), and it never reaches the dashboard or the login
//! redirect.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::scim::{raw_get, RawReply, ScimStack, ERROR_URN, SCIM_MEDIA_TYPE};
use crate::support::SESSION_COOKIE;

/// Spellings of `/scim/v2/Users` that routing must normalise to the SCIM
/// endpoint.
const SCIM_SPELLINGS: [&str; 4] = [
    "/scim/v2/Users",
    "/SCIM/V2/Users",
    "/scim/v2;x=1/Users",
    "/%73cim/v2/Users",
];

/// Targets with a dot segment or an empty segment, rejected with 400 before
/// routing.
const REJECTED_TARGETS: [&str; 3] = [
    "/scim/v2/../scim/v2/Users",
    "//scim//v2/Users",
    "/scim//v2/Users",
];

fn assert_scim_unauthorized(reply: &RawReply, case: &str) {
    assert_eq!(
        reply.status, 401,
        "{case}: expected 401 from the SCIM handler, got body {}",
        reply.body
    );
    assert_eq!(
        reply.header("content-type"),
        Some(SCIM_MEDIA_TYPE),
        "{case}: expected SCIM JSON"
    );
    let body: Value = serde_json::from_str(&reply.body)
        .unwrap_or_else(|e| panic!("{case}: the body is not JSON ({e}): {}", reply.body));
    assert_eq!(
        body["schemas"][0], ERROR_URN,
        "{case}: expected a SCIM error in {body}"
    );
    assert_eq!(body["status"], "401", "{case}: status in {body}");
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|value| value.starts_with("Bearer")),
        "{case}: expected a Bearer challenge, got {:?}",
        reply.header("www-authenticate")
    );
    assert!(
        reply.header("location").is_none(),
        "{case}: expected no redirect, got Location {:?}",
        reply.header("location")
    );
    assert!(
        !reply.body.contains("dashboard"),
        "{case}: expected no dashboard page, got {}",
        reply.body
    );
}

#[tokio::test]
async fn scim_paths_never_forwarded() {
    let stack = ScimStack::start(&[]).await;
    let browser = stack.browser();
    let landing = browser.login("alice", "/").await;
    assert_eq!(
        landing.status(),
        StatusCode::OK,
        "expected the login to end on the dashboard"
    );
    let cookie = browser
        .session_cookie()
        .expect("the browser holds a session cookie after login");
    let forwarded_before = stack.upstream.requests();
    assert!(
        !forwarded_before.is_empty(),
        "expected the dashboard to record the landing page request"
    );

    let session_header = format!("{SESSION_COOKIE}={cookie}");
    let header_sets: [(&str, Vec<(&str, &str)>); 3] = [
        ("no session", vec![]),
        ("session cookie", vec![("Cookie", session_header.as_str())]),
        (
            "browser navigation with a session",
            vec![
                ("Cookie", session_header.as_str()),
                ("Accept", "text/html"),
                ("Sec-Fetch-Mode", "navigate"),
            ],
        ),
    ];
    for (headers_case, headers) in &header_sets {
        for target in SCIM_SPELLINGS {
            let case = format!("GET {target} with {headers_case}");
            let reply = raw_get(&stack.portcullis.proxy, target, headers).await;
            assert_scim_unauthorized(&reply, &case);
        }
        for target in REJECTED_TARGETS {
            let case = format!("GET {target} with {headers_case}");
            let reply = raw_get(&stack.portcullis.proxy, target, headers).await;
            assert_eq!(
                reply.status, 400,
                "{case}: expected 400, got body {}",
                reply.body
            );
            assert!(
                reply.header("location").is_none(),
                "{case}: expected no redirect"
            );
        }
    }

    assert_eq!(
        stack.upstream.requests(),
        forwarded_before,
        "expected no SCIM request to reach the dashboard"
    );
}
