//! Limits and timeouts at the edges. A dashboard may be down, may not accept
//! connections within `upstream.connect_timeout`, or may be slower than
//! `upstream.read_timeout`. The provider may be slower than
//! `oidc.http_timeout`. Request heads may be larger than
//! `server.max_request_header_bytes`. Trusted and untrusted peers may send
//! `X-Forwarded-*` headers, which change what the dashboard receives but
//! never the redirects built from `server.public_url`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HOST};
use reqwest::{StatusCode, Url};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::support::browser::NAVIGATION_ACCEPT;
use crate::support::ports::{free_port, PROXY_HOST};
use crate::support::{raw_http, redirect_target};
use crate::support::{Browser, Echo, Stack, StackOptions, SESSION_COOKIE};

#[tokio::test]
async fn slow_dashboard_gets_504() {
    let stack = Stack::start_with_env(&[("PORTCULLIS_UPSTREAM__READ_TIMEOUT", "500ms")]).await;
    let browser = stack.signed_in("alice").await;

    let api = browser.fetch_json(&stack.proxy_url("/slow?ms=3000")).await;
    assert_eq!(
        api.status(),
        StatusCode::GATEWAY_TIMEOUT,
        "expected 504 for a dashboard slower than upstream.read_timeout"
    );
    let body: serde_json::Value = api.json().await.expect("a JSON error for an API client");
    assert_eq!(body["error"], "upstream_timeout", "got {body}");

    let page = browser.navigate(&stack.proxy_url("/slow?ms=3000")).await;
    assert_eq!(page.status(), StatusCode::GATEWAY_TIMEOUT);
    let html = page.text().await.unwrap_or_default();
    assert!(
        html.contains("Dashboard timed out"),
        "expected the timeout page for a browser, got:\n{html}"
    );

    let quick = browser.fetch_json(&stack.proxy_url("/slow?ms=50")).await;
    assert_eq!(
        quick.status(),
        StatusCode::OK,
        "expected a response within the read timeout to pass, with the session intact"
    );
}

#[tokio::test]
async fn oversized_request_head_gets_431() {
    let stack =
        Stack::start_with_env(&[("PORTCULLIS_SERVER__MAX_REQUEST_HEADER_BYTES", "4096")]).await;
    let url = stack.proxy_url("/api/data");
    let cases = [
        ("one large header", vec![("X-Padding", "a".repeat(5000))]),
        (
            "many small headers",
            (0..100)
                .map(|i| ("X-Padding", format!("{i:0>60}")))
                .collect(),
        ),
    ];
    for (case, headers) in &cases {
        let mut sent: Vec<(&str, &str)> = vec![("Accept", "application/json")];
        sent.extend(headers.iter().map(|(name, value)| (*name, value.as_str())));
        let response = raw_http::get(&url, &sent).await;
        assert_eq!(
            response.status,
            431,
            "{case}: expected 431 above 4096 bytes, got body:\n{}",
            response.text()
        );
        assert!(
            response.text().contains("request_header_too_large"),
            "{case}: expected a JSON error, got:\n{}",
            response.text()
        );
    }
    let small = "a".repeat(2000);
    let response = raw_http::get(
        &url,
        &[("Accept", "application/json"), ("X-Padding", &small)],
    )
    .await;
    assert_eq!(
        response.status,
        401,
        "expected a head under the limit to reach the session check, got body:\n{}",
        response.text()
    );
}

/// Headers a client sends to make the dashboard believe it came from
/// elsewhere.
const FORGED: &[(&str, &str)] = &[
    ("X-Forwarded-For", "203.0.113.9"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "https"),
    ("X_Forwarded_Host", "evil.example"),
    ("Forwarded", "for=203.0.113.9;host=evil.example"),
    ("X-Real-IP", "203.0.113.9"),
    ("X-Original-URL", "/admin"),
];

/// Sends the forged headers with the session of `browser` and returns the
/// dashboard's echo.
async fn forged_echo(stack: &Stack) -> Echo {
    let browser = stack.signed_in("alice").await;
    let session = browser.session_cookie().expect("signed in");
    let cookie = format!("{SESSION_COOKIE}={session}");
    let mut headers = FORGED.to_vec();
    headers.push(("Accept", "application/json"));
    headers.push(("Cookie", &cookie));
    let response = raw_http::get(&stack.proxy_url("/echo/forwarded"), &headers).await;
    assert_eq!(response.status, 200, "body:\n{}", response.text());
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("expected a JSON echo ({e}), got:\n{}", response.text()))
}

#[tokio::test]
async fn forwarded_headers_need_a_trusted_peer() {
    let mut stack = Stack::start().await;
    let public = stack.proxy_url("/");
    let public_host = format!(
        "{}:{}",
        public.host_str().expect("a host"),
        public.port().expect("a port")
    );

    let echo = forged_echo(&stack).await;
    assert_eq!(
        echo.single("x-forwarded-for"),
        "127.0.0.1",
        "an untrusted peer's X-Forwarded-For must be replaced by its address"
    );
    assert_eq!(echo.single("x-forwarded-host"), public_host);
    assert_eq!(echo.single("x-forwarded-proto"), "http");
    for removed in [
        "x_forwarded_host",
        "forwarded",
        "x-real-ip",
        "x-original-url",
    ] {
        assert!(
            echo.values(removed).is_empty(),
            "expected {removed} from an untrusted peer to be removed, got {:?}",
            echo.headers
        );
    }

    stack
        .portcullis
        .restart_with_env(&[("PORTCULLIS_SERVER__TRUSTED_PROXIES", "127.0.0.0/8")])
        .await;
    let echo = forged_echo(&stack).await;
    assert_eq!(
        echo.single("x-forwarded-for"),
        "203.0.113.9, 127.0.0.1",
        "a trusted peer's X-Forwarded-For must be kept and extended"
    );
    assert_eq!(echo.single("x-forwarded-host"), "evil.example");
    assert_eq!(echo.single("x-forwarded-proto"), "https");
    assert_eq!(echo.single("x-real-ip"), "203.0.113.9");
    assert!(
        echo.values("x_forwarded_host").is_empty(),
        "an underscore spelling is removed even from a trusted peer"
    );
    let names_client =
        |line: &str| line.contains("/echo/forwarded") && line.contains("203.0.113.9");
    let log = stack.portcullis.log_once(names_client).await;
    assert!(
        log.lines().any(names_client),
        "expected the access log to name the client behind the trusted proxy:\n{log}"
    );
}

#[tokio::test]
async fn dashboard_down_gets_502_and_keeps_session() {
    let mut stack = Stack::start().await;
    let browser = stack.signed_in("alice").await;
    stack.upstream.stop();

    let api = browser.fetch_json(&stack.proxy_url("/api/data")).await;
    assert_eq!(
        api.status(),
        StatusCode::BAD_GATEWAY,
        "API call while the dashboard is down"
    );
    let body: serde_json::Value = api.json().await.expect("a JSON error for an API client");
    assert_eq!(body["error"], "upstream_unavailable", "got {body}");
    let page = browser.navigate(&stack.proxy_url("/reports")).await;
    assert_eq!(
        page.status(),
        StatusCode::BAD_GATEWAY,
        "navigation while the dashboard is down"
    );
    let html = page.text().await.unwrap_or_default();
    assert!(
        html.contains("Dashboard unavailable"),
        "expected the 502 page, got:\n{html}"
    );

    stack.upstream.restart().await;
    let echo = Echo::read(browser.fetch_json(&stack.proxy_url("/echo/back")).await).await;
    assert_eq!(
        echo.single("x-forwarded-user"),
        "alice",
        "expected the same session to work once the dashboard is back"
    );
}

/// A loopback listener that never completes a TCP handshake: its accept
/// queue is full and nothing accepts, so Linux drops every further SYN and a
/// connect hangs until the client gives up.
struct UnacceptingPeer {
    port: u16,
    _listener: TcpListener,
    _queued: TcpStream,
}

impl UnacceptingPeer {
    /// Binds a listener with a backlog of 0 (Linux queues backlog + 1
    /// connections), fills its queue with one connection, and checks that
    /// the next connect hangs.
    async fn start() -> Self {
        let port = free_port(PROXY_HOST);
        let socket = TcpSocket::new_v4().expect("a TCP socket can be created");
        socket
            .bind(SocketAddr::new(PROXY_HOST, port))
            .unwrap_or_else(|e| panic!("cannot bind {PROXY_HOST}:{port}: {e}"));
        let listener = socket
            .listen(0)
            .unwrap_or_else(|e| panic!("cannot listen on {PROXY_HOST}:{port}: {e}"));
        let queued = TcpStream::connect((PROXY_HOST, port))
            .await
            .expect("the first connection fills the accept queue");
        let probe = tokio::time::timeout(
            Duration::from_millis(300),
            TcpStream::connect((PROXY_HOST, port)),
        )
        .await;
        assert!(
            probe.is_err(),
            "expected a connect to a listener with a full accept queue to hang, got {probe:?}"
        );
        UnacceptingPeer {
            port,
            _listener: listener,
            _queued: queued,
        }
    }

    fn url(&self) -> String {
        format!("http://{PROXY_HOST}:{}", self.port)
    }
}

/// Signs in as `user` without opening the landing page, which would need a
/// working dashboard.
async fn sign_in_without_landing(stack: &Stack, user: &str) -> Browser {
    let browser = stack.browser();
    let authorization = browser.start_login("/").await;
    let callback = browser.authorize_at_idp(&authorization, user).await;
    let response = browser.navigate(&callback).await;
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "expected the callback to redirect into the dashboard"
    );
    assert!(
        browser.session_cookie().is_some(),
        "expected a session cookie after {user}'s login"
    );
    browser
}

/// `upstream.connect_timeout` of the connect-timeout test.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::test]
async fn dashboard_connect_timeout_gets_504() {
    let peer = UnacceptingPeer::start().await;
    let stack = Stack::start_with_env(&[
        ("PORTCULLIS_UPSTREAM__URL", &peer.url()),
        ("PORTCULLIS_UPSTREAM__CONNECT_TIMEOUT", "1s"),
    ])
    .await;
    let browser = sign_in_without_landing(&stack, "alice").await;
    let url = stack.proxy_url("/api/data");

    let started = Instant::now();
    let api = browser.fetch_json(&url).await;
    let api_elapsed = started.elapsed();
    assert_eq!(
        api.status(),
        StatusCode::GATEWAY_TIMEOUT,
        "expected 504 from an API call to a dashboard that does not accept connections"
    );
    let body: serde_json::Value = api.json().await.expect("a JSON error for an API client");
    assert_eq!(body["error"], "upstream_timeout", "got {body}");

    let started = Instant::now();
    let page = browser.navigate(&url).await;
    let page_elapsed = started.elapsed();
    assert_eq!(
        page.status(),
        StatusCode::GATEWAY_TIMEOUT,
        "expected 504 for a navigation to a dashboard that does not accept connections"
    );
    let content_type = page
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/html"),
        "expected an HTML page for a navigation, got Content-Type {content_type:?}"
    );
    let html = page.text().await.unwrap_or_default();
    assert!(
        html.contains("Dashboard timed out"),
        "expected the timeout page for a browser, got:\n{html}"
    );

    println!("504 after {api_elapsed:?} (API) and {page_elapsed:?} (navigation)");
    for (client, elapsed) in [("API", api_elapsed), ("navigation", page_elapsed)] {
        assert!(
            elapsed >= CONNECT_TIMEOUT - Duration::from_millis(50),
            "expected the {client} 504 after the {CONNECT_TIMEOUT:?} connect timeout, got it after {elapsed:?}"
        );
        assert!(
            elapsed < CONNECT_TIMEOUT * 4,
            "expected the {client} 504 soon after the {CONNECT_TIMEOUT:?} connect timeout, got it after {elapsed:?}"
        );
    }
}

/// `oidc.http_timeout` of the token-exchange test.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(1);

/// Delay of the provider's token endpoint in the token-exchange test, well
/// past [`PROVIDER_TIMEOUT`].
const TOKEN_DELAY: Duration = Duration::from_secs(3);

#[tokio::test]
async fn token_exchange_timeout_shows_error_page() {
    let stack = Stack::start_with_options(StackOptions {
        idp_env: vec![("IDP_TOKEN_DELAY_MS", TOKEN_DELAY.as_millis().to_string())],
        env: vec![("PORTCULLIS_OIDC__HTTP_TIMEOUT", "1s".to_owned())],
        ..StackOptions::default()
    })
    .await;
    let browser = stack.browser();
    let authorization = browser.start_login("/reports").await;
    let callback = browser.authorize_at_idp(&authorization, "alice").await;

    let started = Instant::now();
    let response = browser.navigate(&callback).await;
    let elapsed = started.elapsed();
    println!("callback answered after {elapsed:?}");
    let status = response.status();
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "expected 502 when the token exchange times out, not a 500 or a redirect"
    );
    assert!(
        browser.session_cookie().is_none(),
        "expected no session after a timed-out token exchange"
    );
    let html = response.text().await.unwrap_or_default();
    assert!(
        html.contains("Sign-in failed"),
        "expected the sign-in error page, got:\n{html}"
    );
    assert!(
        html.contains("href=\"/oauth2/start\""),
        "expected a link to sign in again, got:\n{html}"
    );
    assert!(
        elapsed >= PROVIDER_TIMEOUT - Duration::from_millis(50),
        "expected the error page after the {PROVIDER_TIMEOUT:?} timeout, got it after {elapsed:?}"
    );
    assert!(
        elapsed < TOKEN_DELAY - Duration::from_millis(500),
        "expected the error page before the provider's {TOKEN_DELAY:?} response, got it after {elapsed:?}"
    );
}

/// Headers that name another host, scheme or port than `server.public_url`.
const FORGED_ORIGIN: &[(&str, &str)] = &[
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Port", "8443"),
    ("Forwarded", "for=203.0.113.9;proto=https;host=evil.example"),
];

/// Sends a navigation to `url` with a forged `Host` and [`FORGED_ORIGIN`].
async fn navigate_forged(browser: &Browser, url: &Url) -> reqwest::Response {
    let mut request = browser
        .client()
        .get(url.clone())
        .header(ACCEPT, NAVIGATION_ACCEPT)
        .header(HOST, "evil.example");
    for (name, value) in FORGED_ORIGIN {
        request = request.header(*name, *value);
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"))
}

/// Walks a login with forged origin headers on every request to the proxy
/// and checks that both redirects stay on `server.public_url`. `peer` names
/// the case in messages.
async fn login_with_forged_origin(stack: &Stack, peer: &str) {
    let public = stack.portcullis.proxy.clone();
    let browser = stack.browser();
    let page = stack.proxy_url("/reports?tab=1");
    let response = navigate_forged(&browser, &page).await;
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "{peer}: expected an anonymous navigation to redirect to the provider"
    );
    let authorization = redirect_target(&page, &response);
    assert!(
        authorization
            .as_str()
            .starts_with(stack.idp.authorization_endpoint.as_str()),
        "{peer}: expected a redirect to the provider, got {authorization}"
    );
    let redirect_uris: Vec<String> = authorization
        .query_pairs()
        .filter(|(name, _)| name == "redirect_uri")
        .map(|(_, value)| value.into_owned())
        .collect();
    let expected = public.join("/oauth2/callback").expect("valid callback URL");
    assert_eq!(
        redirect_uris,
        [expected.to_string()],
        "{peer}: expected redirect_uri built from server.public_url"
    );

    let callback = browser.authorize_at_idp(&authorization, "alice").await;
    let response = navigate_forged(&browser, &callback).await;
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "{peer}: expected the callback to redirect into the dashboard"
    );
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        !location.contains("evil.example") && !location.starts_with("https:"),
        "{peer}: expected the post-login redirect to ignore the forged headers, got {location:?}"
    );
    let landing = redirect_target(&callback, &response);
    assert_eq!(
        landing.origin(),
        public.origin(),
        "{peer}: expected the post-login redirect on server.public_url's origin, got {landing}"
    );
    assert_eq!(
        &landing[url::Position::BeforePath..],
        "/reports?tab=1",
        "{peer}: expected the post-login redirect to the page first requested"
    );
}

#[tokio::test]
async fn public_url_wins_over_forged_origin() {
    let mut stack = Stack::start().await;
    login_with_forged_origin(&stack, "untrusted peer").await;

    stack
        .portcullis
        .restart_with_env(&[("PORTCULLIS_SERVER__TRUSTED_PROXIES", "127.0.0.0/8")])
        .await;
    login_with_forged_origin(&stack, "trusted peer").await;
}
