//! The `[access]` policy against the real provider: provisioned users only,
//! allowed groups and email domains, public paths, the groups source and
//! the size cap of `X-Forwarded-Groups`.
//!
//! The provider's `alice` has the groups admins and engineering, `bob` only
//! engineering; any other login name is a user without groups whose email
//! is `<login>@example.test`.

use reqwest::header::ACCEPT;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::support::scim::raw_get;
use crate::support::scim::{ScimClient, SCIM_MEDIA_TYPE};
use crate::support::{set_cookies_named, Browser, Echo, Stack, StackOptions, SESSION_COOKIE};

/// Starts a stack with in-memory sessions and the `PORTCULLIS_ACCESS__*`
/// overrides in `env`.
async fn stack_with(env: &[(&'static str, &str)]) -> Stack {
    Stack::start_with_options(StackOptions {
        env: env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        ..StackOptions::default()
    })
    .await
}

/// Signs in as `user` up to the callback and returns the callback's
/// response, which is not followed.
async fn callback_response(browser: &Browser, user: &str) -> Response {
    let authorization = browser.start_login("/").await;
    let callback = browser.authorize_at_idp(&authorization, user).await;
    browser.navigate(&callback).await
}

/// Checks that a login ended in a 403 page that contains `message`, and that
/// no session cookie was set.
async fn assert_denied(browser: &Browser, response: Response, user: &str, message: &str) {
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "expected {user}'s login to be denied with 403"
    );
    assert!(
        set_cookies_named(response.headers(), SESSION_COOKIE).is_empty(),
        "expected no session cookie for {user}"
    );
    let body = response.text().await.unwrap_or_default();
    assert!(
        body.contains(message),
        "expected {user}'s 403 page to say {message:?}, got:\n{body}"
    );
    assert!(
        browser.session_cookie().is_none(),
        "expected {user}'s browser to hold no session"
    );
}

/// Checks that a login ended in a redirect into the dashboard with a session.
async fn assert_admitted(browser: &Browser, response: Response, user: &str) {
    let status = response.status();
    let body = if status == StatusCode::FOUND {
        String::new()
    } else {
        response.text().await.unwrap_or_default()
    };
    assert_eq!(
        status,
        StatusCode::FOUND,
        "expected {user}'s login to be admitted, got body:\n{body}"
    );
    assert!(
        browser.session_cookie().is_some(),
        "expected a session cookie for {user}"
    );
}

fn user_document(user_name: &str, external_id: Option<&str>, active: bool) -> Value {
    let mut user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "active": active,
    });
    if let Some(external_id) = external_id {
        user["externalId"] = json!(external_id);
    }
    user
}

/// Creates a SCIM user and returns its id.
async fn create_user(scim: &ScimClient, document: &Value) -> String {
    let reply = scim.post("/Users", document).await;
    reply.expect_status(201, "POST /Users");
    reply.body["id"]
        .as_str()
        .expect("the created user has an id")
        .to_owned()
}

/// Requests `/echo/<path>` as an API call and reads the dashboard's echo.
async fn echo_of(browser: &Browser, path: &str) -> Echo {
    Echo::read(browser.fetch_json(&browser.proxy_url(path)).await).await
}

#[tokio::test]
async fn provisioned_users_only() {
    let stack = stack_with(&[("PORTCULLIS_ACCESS__REQUIRE_PROVISIONED_USER", "true")]).await;
    let scim = ScimClient::new(&stack.portcullis.proxy, &stack.portcullis.token());
    create_user(&scim, &user_document("Carol@Example.test", None, true)).await;
    create_user(&scim, &user_document("erin@example.test", None, false)).await;
    create_user(
        &scim,
        &user_document("frank.other@corp.test", Some("frank"), true),
    )
    .await;
    let gina = create_user(&scim, &user_document("gina@example.test", None, true)).await;
    let deactivate = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}],
    });
    let request = scim
        .request(Method::PATCH, &format!("/Users/{gina}"))
        .header(ACCEPT, SCIM_MEDIA_TYPE)
        .header(reqwest::header::CONTENT_TYPE, SCIM_MEDIA_TYPE)
        .body(deactivate.to_string());
    scim.send(request)
        .await
        .expect_status(200, "PATCH gina inactive");

    let denied = [
        ("dave", "not provisioned"),
        ("erin", "deactivated"),
        ("gina", "deactivated"),
    ];
    for (user, message) in denied {
        let browser = stack.browser();
        let response = callback_response(&browser, user).await;
        assert_denied(&browser, response, user, message).await;
    }
    for user in ["carol", "frank"] {
        let browser = stack.browser();
        let response = callback_response(&browser, user).await;
        assert_admitted(&browser, response, user).await;
    }
}

#[tokio::test]
async fn allowed_groups_and_domains() {
    let stack = stack_with(&[
        ("PORTCULLIS_ACCESS__ALLOWED_GROUPS", "admins"),
        ("PORTCULLIS_ACCESS__ALLOWED_EMAIL_DOMAINS", "EXAMPLE.TEST"),
    ])
    .await;
    let alice = stack.browser();
    let response = callback_response(&alice, "alice").await;
    assert_admitted(&alice, response, "alice").await;
    let echo = echo_of(&alice, "/echo/groups").await;
    assert_eq!(echo.single("x-forwarded-user"), "alice", "alice's identity");
    assert_eq!(
        echo.single("x-forwarded-groups-source"),
        "token",
        "groups come from the ID token by default"
    );

    let bob = stack.browser();
    let response = callback_response(&bob, "bob").await;
    assert_denied(&bob, response, "bob", "not in a group").await;
}

#[tokio::test]
async fn other_email_domain_denied() {
    let stack = stack_with(&[("PORTCULLIS_ACCESS__ALLOWED_EMAIL_DOMAINS", "corp.test")]).await;
    let alice = stack.browser();
    let response = callback_response(&alice, "alice").await;
    assert_denied(&alice, response, "alice", "email domain").await;
}

#[tokio::test]
async fn public_paths_need_no_session() {
    let stack = stack_with(&[("PORTCULLIS_ACCESS__PUBLIC_PATHS", "/healthz /echo/public/")]).await;
    let anonymous = stack.browser();
    let spoofed = [
        ("X-Forwarded-User", "mallory"),
        ("x_forwarded_email", "ceo@example.test"),
        ("X-Forwarded-Groups", "admins"),
        ("X-Forwarded-Groups-Source", "scim"),
    ];
    for path in ["/echo/public/", "/echo/public/report", "/%65cho/public/x"] {
        let url = stack.proxy_url(path);
        let mut request = anonymous
            .client()
            .get(url.clone())
            .header(ACCEPT, "application/json");
        for (name, value) in spoofed {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
        let echo = Echo::read(response).await;
        for (name, _) in spoofed {
            assert!(
                echo.values(name).is_empty(),
                "expected {name} to be stripped on the public path {path}, got {:?}",
                echo.values(name)
            );
        }
    }
    let healthz = anonymous.fetch_json(&stack.proxy_url("/healthz")).await;
    assert_ne!(
        healthz.status(),
        StatusCode::UNAUTHORIZED,
        "expected the exact public path /healthz to need no session"
    );
    for path in [
        "/healthz/",
        "/healthzx",
        "/echo/public",
        "/echo/publicx/a",
        "/echo/private",
        "/healthz;x",
        "/echo/public;a/report",
    ] {
        let response = anonymous.fetch_json(&stack.proxy_url(path)).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "expected {path} to need a session"
        );
    }
    // A leading `//` would be read by many servers as a host name, turning
    // //echo/public/x into another path at the dashboard.
    // They are sent over a raw socket, because a URL library would read
    // them as a host name too.
    for path in ["//echo/public/x", "/echo//public/x", "///healthz"] {
        let reply = raw_get(
            &stack.portcullis.proxy,
            path,
            &[("Accept", "application/json")],
        )
        .await;
        assert_eq!(reply.status, 400, "expected {path} to be rejected");
    }

    let alice = stack.signed_in("alice").await;
    let echo = echo_of(&alice, "/echo/public/report").await;
    assert_eq!(
        echo.single("x-forwarded-user"),
        "alice",
        "a public path still carries the identity of a valid session"
    );
}

#[tokio::test]
async fn groups_header_capped() {
    let stack = stack_with(&[("PORTCULLIS_ACCESS__MAX_GROUPS_HEADER_BYTES", "10")]).await;
    let alice = stack.signed_in("alice").await;
    let echo = echo_of(&alice, "/echo/groups").await;
    assert_eq!(
        echo.single("x-forwarded-groups"),
        "admins",
        "only the groups that fit in 10 bytes are forwarded"
    );
    let log = stack.portcullis.log();
    let warning = log
        .lines()
        .find(|line| line.contains("X-Forwarded-Groups exceeds"))
        .unwrap_or_else(|| panic!("expected a warning about the groups header in:\n{log}"));
    assert!(warning.contains("WARN"), "expected a warning: {warning}");
    assert!(warning.contains("alice"), "expected the user id: {warning}");
    assert!(
        warning.contains("dropped_groups=1"),
        "expected the number of dropped groups: {warning}"
    );
}

#[tokio::test]
async fn scim_groups_forwarded() {
    let stack = stack_with(&[("PORTCULLIS_ACCESS__GROUPS_SOURCE", "both")]).await;
    let scim = ScimClient::new(&stack.portcullis.proxy, &stack.portcullis.token());
    let alice_id = create_user(&scim, &user_document("alice@example.test", None, true)).await;
    let group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "scim-team",
        "members": [{"value": alice_id}],
    });
    scim.post("/Groups", &group)
        .await
        .expect_status(201, "POST /Groups");

    let alice = stack.signed_in("alice").await;
    let echo = echo_of(&alice, "/echo/groups").await;
    assert_eq!(
        echo.single("x-forwarded-groups"),
        "admins,engineering,scim-team",
        "token groups first, then the directory's"
    );
    assert_eq!(
        echo.single("x-forwarded-groups-source"),
        "both",
        "the dashboard is told where the groups come from"
    );
    let bob = stack.signed_in("bob").await;
    let echo = echo_of(&bob, "/echo/groups").await;
    assert_eq!(
        echo.single("x-forwarded-groups"),
        "engineering",
        "an unprovisioned user keeps the token's groups"
    );
}
