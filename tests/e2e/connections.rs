//! Client connections driven byte by byte: pipelined HTTP/1.1 requests,
//! HTTP/1.0 clients, the connection cap and the request head timeout.

use std::time::Duration;

use crate::support::raw_http::{exchange, read_until_idle, Exchange, RawResponse};
use crate::support::scim::ScimStack;

/// How long a read waits for more bytes before the connection counts as
/// left open by the server.
const IDLE: Duration = Duration::from_secs(2);

/// Public paths of the stacks here, so a request can reach the dashboard
/// without a session.
const PUBLIC_PATHS: (&str, &str) = ("PORTCULLIS_ACCESS__PUBLIC_PATHS", "/echo/public/");

fn address(stack: &ScimStack) -> String {
    let url = &stack.portcullis.proxy;
    format!(
        "{}:{}",
        url.host_str().expect("proxy URL has a host"),
        url.port().expect("proxy URL has a port")
    )
}

fn get(path: &str, accept: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: portcullis.test\r\nAccept: {accept}\r\n\r\n")
}

fn statuses(responses: &[RawResponse]) -> Vec<u16> {
    responses.iter().map(|response| response.status).collect()
}

#[tokio::test]
async fn pipelined_requests_all_answered() {
    let stack = ScimStack::start(&[PUBLIC_PATHS]).await;
    let token = stack.portcullis.token();
    let address = address(&stack);
    let public = get("/echo/public/next", "application/json");
    let scim_get = format!(
        "GET /scim/v2/Users HTTP/1.1\r\nHost: portcullis.test\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    let scim_post = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: portcullis.test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/scim+json\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let public_post = "POST /echo/public/form HTTP/1.1\r\nHost: portcullis.test\r\n\
                       Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
    let scim_without_token = "GET /scim/v2/Users HTTP/1.1\r\nHost: portcullis.test\r\n\r\n";
    let cases: [(&str, String, Vec<u16>); 9] = [
        (
            "public then public",
            get("/echo/public/first", "application/json") + &public,
            vec![200, 200],
        ),
        (
            "401 then public",
            get("/protected", "application/json") + &public,
            vec![401, 200],
        ),
        (
            "login redirect then public",
            get("/protected", "text/html") + &public,
            vec![302, 200],
        ),
        (
            "local 404 page then public",
            get("/oauth2/nothing", "text/html") + &public,
            vec![404, 200],
        ),
        (
            "SCIM then public",
            scim_get.clone() + &public,
            vec![200, 200],
        ),
        (
            "SCIM without token then public",
            scim_without_token.to_owned() + &public,
            vec![401, 200],
        ),
        (
            "SCIM POST with body then SCIM",
            scim_post + &scim_get,
            vec![400, 200],
        ),
        (
            "public POST with body then public",
            public_post.to_owned() + &public,
            vec![200, 200],
        ),
        (
            "public, 401, public",
            get("/echo/public/first", "application/json")
                + &get("/protected", "application/json")
                + &public,
            vec![200, 401, 200],
        ),
    ];
    for (name, requests, expected) in cases {
        let result = exchange(&address, requests.as_bytes(), IDLE).await;
        let responses = result.responses();
        assert_eq!(
            statuses(&responses),
            expected,
            "{name}: expected a response to each pipelined request, got:\n{}",
            result.text()
        );
        for response in &responses {
            assert_eq!(
                response.header("connection"),
                Some("keep-alive"),
                "{name}: expected keep-alive on {}",
                response.status_line
            );
        }
        assert!(
            !result.closed,
            "{name}: expected the connection to stay open after the last response"
        );
    }
}

#[tokio::test]
async fn unread_body_ends_connection() {
    let stack = ScimStack::start(&[PUBLIC_PATHS]).await;
    let address = address(&stack);
    // The 401 is written before the body is read, so Pingora closes the
    // connection after it and sends `Connection: close`. The client must
    // send the second request again on a new connection.
    let requests =
        "POST /protected HTTP/1.1\r\nHost: portcullis.test\r\nAccept: application/json\r\n\
                    Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
            .to_owned()
            + &get("/echo/public/next", "application/json");
    let result = exchange(&address, requests.as_bytes(), IDLE).await;
    let responses = result.responses();
    assert_eq!(
        statuses(&responses),
        vec![401],
        "expected only the 401, got:\n{}",
        result.text()
    );
    assert_eq!(
        responses[0].header("connection"),
        Some("close"),
        "expected the 401 to announce the close"
    );
    assert!(result.closed, "expected the connection to be closed");
}

#[tokio::test]
async fn http10_local_responses() {
    let stack = ScimStack::start(&[PUBLIC_PATHS]).await;
    let token = stack.portcullis.token();
    let address = address(&stack);
    let public_url = stack.portcullis.proxy.as_str().trim_end_matches('/');
    let scim_auth = format!("Authorization: Bearer {token}\r\n");
    let cases: [(&str, &str, &str, u16); 7] = [
        ("login redirect", "/protected", "Accept: text/html\r\n", 302),
        (
            "401 JSON",
            "/protected",
            "Accept: application/json\r\n",
            401,
        ),
        (
            "sign-out page",
            "/oauth2/sign_out",
            "Accept: text/html\r\n",
            200,
        ),
        ("unknown sign-in path", "/oauth2/nothing", "", 404),
        ("invalid path", "/%zz", "", 400),
        ("SCIM without token", "/scim/v2/Users", "", 401),
        ("SCIM list", "/scim/v2/Users", &scim_auth, 200),
    ];
    for (name, path, headers, status) in cases {
        // No Host header: HTTP/1.0 does not require one.
        let request = format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n{headers}\r\n");
        let twice = request.repeat(2);
        let result = exchange(&address, twice.as_bytes(), IDLE).await;
        let responses = result.responses();
        assert_eq!(
            statuses(&responses),
            vec![status, status],
            "{name}: expected two responses on one kept-alive connection, got:\n{}",
            result.text()
        );
        let response = &responses[0];
        assert!(
            response.status_line.starts_with("HTTP/1.1 ")
                || response.status_line.starts_with("HTTP/1.0 "),
            "{name}: invalid status line {:?}",
            response.status_line
        );
        assert!(
            response.header("content-length").is_some(),
            "{name}: expected Content-Length for an HTTP/1.0 client"
        );
        assert_eq!(
            response.header("transfer-encoding"),
            None,
            "{name}: an HTTP/1.0 client cannot read chunked coding"
        );
        assert_eq!(
            response.header("connection"),
            Some("keep-alive"),
            "{name}: expected the requested keep-alive"
        );
        if status == 302 {
            let location = response
                .header("location")
                .expect("redirect has a Location");
            let redirect_uri = url::Url::parse(location)
                .expect("Location is a URL")
                .query_pairs()
                .find(|(key, _)| key == "redirect_uri")
                .map(|(_, value)| value.into_owned());
            assert_eq!(
                redirect_uri,
                Some(format!("{public_url}/oauth2/callback")),
                "{name}: expected the redirect URI from server.public_url"
            );
        }
    }

    // Without keep-alive an HTTP/1.0 connection ends after the response.
    let request = "GET /protected HTTP/1.0\r\nAccept: application/json\r\n\r\n";
    let result = exchange(&address, request.as_bytes(), IDLE).await;
    let responses = result.responses();
    assert_eq!(statuses(&responses), vec![401], "got:\n{}", result.text());
    assert_eq!(responses[0].header("connection"), Some("close"));
    assert!(
        result.closed,
        "expected the HTTP/1.0 connection to be closed"
    );
    assert!(
        !stack.portcullis.log().contains("panicked"),
        "expected no panic:\n{}",
        stack.portcullis.log()
    );
}

/// Returns the value of the metric line starting with `name ` on `/metrics`.
async fn metric(stack: &ScimStack, name: &str) -> f64 {
    let url = stack.portcullis.admin_url("/metrics");
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("HTTP client builds")
        .get(url.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"))
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing from:\n{text}"))
}

/// Waits until `portcullis_connections_open` is `expected`.
async fn wait_for_open_connections(stack: &ScimStack, expected: f64) {
    for _ in 0..100 {
        if metric(stack, "portcullis_connections_open").await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "portcullis_connections_open did not reach {expected}; it is {}",
        metric(stack, "portcullis_connections_open").await
    );
}

#[tokio::test]
async fn connection_cap_closes_extra() {
    let stack =
        ScimStack::start(&[PUBLIC_PATHS, ("PORTCULLIS_SERVER__MAX_CONNECTIONS", "5")]).await;
    let address = address(&stack);
    assert_eq!(metric(&stack, "portcullis_connections_max").await, 5.0);

    let mut idle = Vec::new();
    for _ in 0..5 {
        let stream = tokio::net::TcpStream::connect(&address)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {address}: {e}"));
        idle.push(stream);
    }
    wait_for_open_connections(&stack, 5.0).await;

    let request = get("/echo/public/extra", "application/json");
    let extra = exchange(&address, request.as_bytes(), IDLE).await;
    assert!(
        extra.closed,
        "expected the sixth connection to be closed at once"
    );
    assert!(
        extra.received.is_empty(),
        "expected no response on the sixth connection, got:\n{}",
        extra.text()
    );
    assert!(
        metric(&stack, "portcullis_connections_rejected_total").await >= 1.0,
        "expected the closed connection to be counted"
    );

    idle.truncate(3);
    wait_for_open_connections(&stack, 3.0).await;
    let after = exchange(&address, request.as_bytes(), IDLE).await;
    assert_eq!(
        statuses(&after.responses()),
        vec![200],
        "expected a new connection to work once some closed, got:\n{}",
        after.text()
    );
}

/// Sends `head` one byte every `pause` until the server closes the
/// connection or the head is sent, and returns how long the server kept
/// the connection open.
async fn trickle(address: &str, head: &[u8], pause: Duration) -> (Duration, bool) {
    use tokio::io::AsyncWriteExt;

    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {address}: {e}"));
    let started = std::time::Instant::now();
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            return (started.elapsed(), true);
        }
        tokio::time::sleep(pause).await;
        // A closed connection shows as a zero-byte read.
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut probe)).await
        {
            return (started.elapsed(), true);
        }
    }
    (started.elapsed(), false)
}

/// Sends `request` on an open connection and reads its response.
async fn exchange_on(stream: &mut tokio::net::TcpStream, request: &[u8]) -> Exchange {
    use tokio::io::AsyncWriteExt;

    stream
        .write_all(request)
        .await
        .expect("the request is sent on the open connection");
    read_until_idle(stream, Duration::from_millis(300)).await
}

#[tokio::test]
async fn trickled_head_is_cut_off() {
    let stack = ScimStack::start(&[
        PUBLIC_PATHS,
        ("PORTCULLIS_SERVER__REQUEST_HEADER_TIMEOUT", "2s"),
        ("PORTCULLIS_SERVER__KEEPALIVE_TIMEOUT", "3s"),
    ])
    .await;
    let address = address(&stack);

    // 40 header bytes at 200 ms each take 8 s, each read well inside
    // Pingora's own 60 s per-read limit.
    let head = format!(
        "GET /echo/public/slow HTTP/1.1\r\nHost: a\r\nX-Slow: {}",
        "b".repeat(40)
    );
    let (open_for, closed) = trickle(&address, head.as_bytes(), Duration::from_millis(200)).await;
    assert!(closed, "expected the trickling connection to be closed");
    assert!(
        open_for >= Duration::from_secs(2) && open_for < Duration::from_secs(4),
        "expected the connection closed about 2 s after it opened, after {open_for:?}"
    );
    assert!(
        metric(&stack, "portcullis_request_header_timeouts_total").await >= 1.0,
        "expected the closed connection to be counted"
    );

    // A prompt request on a connection idle for less than keepalive_timeout
    // plus request_header_timeout is still served.
    let request = get("/echo/public/after-idle", "application/json");
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {address}: {e}"));
    let first = exchange_on(&mut stream, request.as_bytes()).await;
    assert_eq!(statuses(&first.responses()), vec![200], "first request");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let second = exchange_on(&mut stream, request.as_bytes()).await;
    assert_eq!(
        statuses(&second.responses()),
        vec![200],
        "expected a request 2.5 s into keep-alive to be served, got:\n{}",
        second.text()
    );
}
