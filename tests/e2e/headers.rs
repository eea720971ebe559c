//! What reaches the dashboard: identity headers, cookies, and which requests
//! get through without a session.

use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE};
use reqwest::{StatusCode, Url};

use crate::support::raw_http::{self, RawResponse};
use crate::support::{redirect_target, Echo, Stack, BINDING_COOKIE, SESSION_COOKIE};

/// Identity headers as a client might forge them, in several spellings.
const SPOOFED_HEADERS: &[(&str, &str)] = &[
    ("X-Forwarded-User", "mallory"),
    ("x_forwarded_user", "mallory"),
    ("X-FORWARDED-EMAIL", "ceo@corp"),
    ("X-Forwarded-Groups", "admins"),
    ("X_Forwarded_Preferred_Username", "mallory"),
    ("x-auth-request-user", "x"),
    ("Remote-User", "x"),
    ("X-WEBAUTH-USER", "mallory"),
    ("x_webauth_email", "ceo@corp"),
    ("X-User", "mallory"),
    ("X-Email", "ceo@corp"),
    ("X-Authenticated-User", "mallory"),
    ("X-Remote-User", "mallory"),
    ("X_Remote_Email", "ceo@corp"),
    ("X-Proxy-User", "mallory"),
    ("X-Amzn-Oidc-Identity", "mallory"),
    ("X-MS-CLIENT-PRINCIPAL-NAME", "mallory"),
    ("Cf-Access-Authenticated-User-Email", "ceo@corp"),
];

/// Identity headers of other products that must not reach the dashboard in
/// any spelling, compared with `-` for `_` and in lower case.
const FOREIGN_IDENTITY_HEADERS: &[&str] = &[
    "x-auth-request-user",
    "remote-user",
    "x-webauth-user",
    "x-webauth-email",
    "x-user",
    "x-email",
    "x-authenticated-user",
    "x-remote-user",
    "x-remote-email",
    "x-proxy-user",
    "x-amzn-oidc-identity",
    "x-ms-client-principal-name",
    "cf-access-authenticated-user-email",
];

/// Header names whose every spelling portcullis owns.
const IDENTITY_HEADERS: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
];

/// Sends the spoofed headers with `extra` headers added.
async fn spoofed_get(url: &Url, extra: &[(&str, &str)]) -> RawResponse {
    let mut headers: Vec<(&str, &str)> = SPOOFED_HEADERS.to_vec();
    headers.extend_from_slice(extra);
    raw_http::get(url, &headers).await
}

#[tokio::test]
async fn spoofed_identity_headers_are_replaced() {
    let stack = Stack::start().await;
    let users = [
        ("alice", "alice@example.test", "admins,engineering"),
        ("bob", "bob@example.test", "engineering"),
    ];
    for (user, email, groups) in users {
        let browser = stack.signed_in(user).await;
        let session = browser.session_cookie().expect("signed in");
        let cookie = format!("{SESSION_COOKIE}={session}");
        let url = stack.proxy_url("/echo/spoof");
        let response =
            spoofed_get(&url, &[("Accept", "application/json"), ("Cookie", &cookie)]).await;
        assert_eq!(
            response.status,
            200,
            "expected {user}'s request with spoofed headers to reach the dashboard; body:\n{}",
            response.text()
        );
        let echo: Echo = serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("expected a JSON echo ({e}), got:\n{}", response.text()));

        assert_eq!(
            echo.single("x-forwarded-user"),
            user,
            "expected one x-forwarded-user with the signed-in user"
        );
        assert_eq!(
            echo.single("x-forwarded-email"),
            email,
            "expected {user}'s verified email instead of the spoofed one"
        );
        assert_eq!(
            echo.single("x-forwarded-groups"),
            groups,
            "expected {user}'s groups to be unchanged by the spoofed header"
        );
        assert_eq!(
            echo.single("x-forwarded-preferred-username"),
            user,
            "expected {user}'s verified preferred username"
        );
        for (name, value) in &echo.headers {
            let canonical = name.to_ascii_lowercase().replace('_', "-");
            assert!(
                !(name.contains('_') && IDENTITY_HEADERS.contains(&canonical.as_str())),
                "expected no underscore spelling of an identity header, got {name}: {value}"
            );
            assert!(
                !value.contains("mallory") && !value.contains("ceo@corp"),
                "expected no spoofed value at the dashboard, got {name}: {value}"
            );
        }
        for (name, value) in &echo.headers {
            let canonical = name.to_ascii_lowercase().replace('_', "-");
            assert!(
                !FOREIGN_IDENTITY_HEADERS.contains(&canonical.as_str()),
                "expected {name} to be removed, got {name}: {value}"
            );
        }
    }

    // Without a session, portcullis sends the response itself.
    let url = stack.proxy_url("/echo/spoof");
    let api = spoofed_get(&url, &[("Accept", "application/json")]).await;
    assert_eq!(
        api.status,
        401,
        "expected an API request with spoofed headers and no session to get 401; body:\n{}",
        api.text()
    );
    let body: serde_json::Value = serde_json::from_slice(&api.body).unwrap_or_default();
    assert_eq!(
        body["error"], "unauthenticated",
        "expected portcullis's own 401 body, not the dashboard's echo: {body}"
    );
    let navigation = spoofed_get(&url, &[("Accept", "text/html")]).await;
    assert_eq!(
        navigation.status, 302,
        "expected a navigation with spoofed headers and no session to be redirected to login"
    );
    let location = navigation.header("location").unwrap_or_default();
    assert!(
        location.starts_with(stack.idp.authorization_endpoint.as_str()),
        "expected the redirect to go to the provider, got {location:?}"
    );
}

#[tokio::test]
async fn session_cookie_not_forwarded() {
    let stack = Stack::start().await;
    let alice = stack.signed_in("alice").await;
    let session = alice.session_cookie().expect("signed in");
    let binding = alice
        .cookie(BINDING_COOKIE, &stack.proxy_url("/oauth2/"))
        .expect("the login left a binding cookie");

    let cookie =
        format!("theme=dark; {SESSION_COOKIE}={session}; lang=en; {BINDING_COOKIE}={binding}");
    let response = alice
        .client()
        .get(stack.proxy_url("/echo/cookies"))
        .header(ACCEPT, "application/json")
        .header(COOKIE, cookie)
        .send()
        .await
        .expect("GET /echo/cookies");
    let echo = Echo::read(response).await;
    assert_eq!(
        echo.single("x-forwarded-user"),
        "alice",
        "expected the session cookie to sign the request in"
    );
    let names: Vec<String> = echo
        .values("cookie")
        .iter()
        .flat_map(|line| line.split(';'))
        .map(|pair| pair.trim().split('=').next().unwrap_or_default().to_owned())
        .collect();
    for other in ["theme", "lang"] {
        assert!(
            names.iter().any(|n| n == other),
            "expected the dashboard to receive the {other} cookie, got {:?}",
            echo.values("cookie")
        );
    }
    for own in [SESSION_COOKIE, BINDING_COOKIE] {
        assert!(
            !names.iter().any(|n| n == own),
            "expected the {own} cookie to be removed, got {:?}",
            echo.values("cookie")
        );
    }
    assert!(
        echo.values("cookie")
            .iter()
            .any(|line| line.contains("theme=dark")),
        "expected the theme cookie's value to be kept, got {:?}",
        echo.values("cookie")
    );

    // The same through the cookie jar, as a browser sends it.
    alice.add_cookie("theme=dark; Path=/", &stack.proxy_url("/"));
    let echo = Echo::read(alice.fetch_json(&stack.proxy_url("/echo/jar")).await).await;
    assert_eq!(
        echo.values("cookie"),
        ["theme=dark"],
        "expected only the theme cookie at the dashboard"
    );
}

#[tokio::test]
async fn xhr_without_session_gets_401() {
    let stack = Stack::start().await;
    let browser = stack.browser();
    let url = stack.proxy_url("/api/data");
    let api_headers = [
        ("accept", "application/json"),
        ("accept", "application/vnd.api+json"),
        ("x-requested-with", "XMLHttpRequest"),
        ("sec-fetch-mode", "cors"),
    ];
    for (name, value) in api_headers {
        let response = browser
            .client()
            .get(url.clone())
            .header(name, value)
            .send()
            .await
            .expect("GET /api/data");
        let status = response.status();
        let content_type = response.headers().get(CONTENT_TYPE).cloned();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "expected 401 for a request with {name}: {value} and no session; body:\n{body}"
        );
        assert!(
            content_type
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json")),
            "expected a JSON 401 for {name}: {value}, got {content_type:?}"
        );
        let json: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("expected a JSON body ({e}), got:\n{body}"));
        assert!(
            json["error"].is_string(),
            "expected an \"error\" field in the 401 body, got {json}"
        );
    }

    let response = browser.navigate(&url).await;
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "expected a navigation without a session to be redirected"
    );
    let location = redirect_target(&url, &response);
    assert!(
        location
            .as_str()
            .starts_with(stack.idp.authorization_endpoint.as_str()),
        "expected the redirect to go to the provider's authorization endpoint, got {location}"
    );
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    assert_eq!(
        param("code_challenge_method").as_deref(),
        Some("S256"),
        "expected PKCE with S256 in {location}"
    );
    assert!(
        param("code_challenge").is_some_and(|v| !v.is_empty()),
        "expected a code_challenge in {location}"
    );
    assert!(
        param("state").is_some_and(|v| !v.is_empty()),
        "expected a state in {location}"
    );
    assert!(
        param("nonce").is_some_and(|v| !v.is_empty()),
        "expected a nonce in {location}"
    );
    let callback = stack.proxy_url("/oauth2/callback");
    assert_eq!(
        param("redirect_uri").as_deref(),
        Some(callback.as_str()),
        "expected redirect_uri to be the proxy's callback in {location}"
    );
}

#[tokio::test]
async fn admin_endpoints_not_on_proxy() {
    let stack = Stack::start().await;
    let alice = stack.signed_in("alice").await;
    let anonymous = stack.browser();
    for path in ["/livez", "/readyz"] {
        let url = stack.proxy_url(path);
        let response = anonymous.navigate(&url).await;
        assert_eq!(
            response.status(),
            StatusCode::FOUND,
            "expected {path} on the proxy without a session to redirect to login"
        );
        let location = redirect_target(&url, &response);
        assert!(
            location
                .as_str()
                .starts_with(stack.idp.authorization_endpoint.as_str()),
            "expected {path} on the proxy to redirect to the provider, got {location}"
        );

        let echo = Echo::read(alice.fetch_json(&url).await).await;
        assert_eq!(
            echo.path, path,
            "expected {path} on the proxy to reach the dashboard"
        );
        assert_eq!(
            echo.single("x-forwarded-user"),
            "alice",
            "expected {path} to reach the dashboard as alice"
        );

        let admin = anonymous
            .client()
            .get(stack.admin_url(path))
            .send()
            .await
            .expect("GET on the admin listener");
        assert_eq!(
            admin.status(),
            StatusCode::OK,
            "expected {path} on the admin listener to return 200"
        );
    }
}
