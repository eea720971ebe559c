//! Client connections driven byte by byte: pipelined HTTP/1.1 requests,
//! HTTP/1.0 clients, the dashboard's hop-by-hop headers, the connection cap
//! and the request head timeout.

use std::time::Duration;

use reqwest::Url;

use crate::support::raw_http::{self, exchange, read_until_idle, Exchange, RawResponse};
use crate::support::scim::ScimStack;
use crate::support::{Echo, Stack};

/// How long a read waits for more bytes before the connection counts as
/// left open by the server.
const IDLE: Duration = Duration::from_secs(2);

/// Public paths of the stacks here, so a request can reach the dashboard
/// without a session.
const PUBLIC_PATHS: (&str, &str) = ("PORTCULLIS_ACCESS__PUBLIC_PATHS", "/echo/public/");

fn address(stack: &ScimStack) -> String {
    url_address(&stack.portcullis.proxy)
}

fn url_address(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().expect("proxy URL has a host"),
        url.port().expect("proxy URL has a port")
    )
}

/// Starts a stack with the sample dashboard, whose streamed, echo and
/// hop-by-hop paths are public so that raw requests reach it.
async fn dashboard_stack() -> Stack {
    Stack::start_with_env(&[(
        "PORTCULLIS_ACCESS__PUBLIC_PATHS",
        "/echo/public/ /stream /hop-by-hop",
    )])
    .await
}

/// The body of the dashboard's `/stream`.
const STREAM_BODY: &str = "chunk 1\nchunk 2\nchunk 3\nchunk 4\nchunk 5\n";

/// Splits the bytes of one response into its head, in lower case, and
/// its body as received.
fn split_raw(received: &[u8]) -> (String, Vec<u8>) {
    let end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "response has no end of headers: {:?}",
                String::from_utf8_lossy(received)
            )
        });
    let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
    (head, received[end + 4..].to_vec())
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

#[tokio::test]
async fn http10_stream_is_close_delimited() {
    let stack = dashboard_stack().await;
    let address = url_address(&stack.portcullis.proxy);
    let cases = [
        ("HTTP/1.0", ""),
        (
            "HTTP/1.0 asking for keep-alive",
            "Connection: keep-alive\r\n",
        ),
    ];
    for (name, connection) in cases {
        let request = format!("GET /stream HTTP/1.0\r\nHost: portcullis.test\r\n{connection}\r\n");
        let result = exchange(&address, request.as_bytes(), IDLE).await;
        let (head, body) = split_raw(&result.received);
        assert!(
            head.starts_with("http/1.1 200 ") || head.starts_with("http/1.0 200 "),
            "{name}: expected 200, got:\n{}",
            result.text()
        );
        assert!(
            !head.contains("transfer-encoding"),
            "{name}: Transfer-Encoding is forbidden in a response to HTTP/1.0, got:\n{head}"
        );
        assert!(
            !head.contains("content-length"),
            "{name}: the stream's length is unknown, got:\n{head}"
        );
        assert!(
            head.contains("\r\nconnection: close"),
            "{name}: expected the close to be announced, got:\n{head}"
        );
        assert_eq!(
            String::from_utf8_lossy(&body),
            STREAM_BODY,
            "{name}: expected the body as sent, without chunk framing"
        );
        assert!(
            result.closed,
            "{name}: a body without length ends with the connection"
        );
    }

    // An HTTP/1.1 client still gets the stream chunked on a kept connection.
    let request = "GET /stream HTTP/1.1\r\nHost: portcullis.test\r\n\r\n";
    let result = exchange(&address, request.as_bytes(), IDLE).await;
    let responses = result.responses();
    assert_eq!(statuses(&responses), vec![200], "got:\n{}", result.text());
    assert_eq!(responses[0].header("transfer-encoding"), Some("chunked"));
    assert_eq!(responses[0].text(), STREAM_BODY);
    assert!(
        !result.closed,
        "expected the HTTP/1.1 connection to stay open"
    );
}

#[tokio::test]
async fn http10_without_host_gets_public_host() {
    let stack = dashboard_stack().await;
    // server.public_url is the proxy's own address in the test stacks.
    let address = url_address(&stack.portcullis.proxy);
    let cases = [
        ("without Host", "", address.as_str()),
        ("with Host", "Host: portcullis.test\r\n", "portcullis.test"),
    ];
    for (name, host, expected) in cases {
        let request =
            format!("GET /echo/public/host HTTP/1.0\r\n{host}Accept: application/json\r\n\r\n");
        let result = exchange(&address, request.as_bytes(), IDLE).await;
        let responses = result.responses();
        assert_eq!(
            statuses(&responses),
            vec![200],
            "{name}: got:\n{}",
            result.text()
        );
        let echo: Echo = serde_json::from_slice(&responses[0].body)
            .unwrap_or_else(|e| panic!("{name}: expected the echo ({e}), got:\n{}", result.text()));
        assert_eq!(
            echo.single("host"),
            expected,
            "{name}: expected the dashboard's Host"
        );
    }
}

#[tokio::test]
async fn dashboard_hop_by_hop_headers_removed() {
    let stack = dashboard_stack().await;
    let hop_by_hop = ["keep-alive", "proxy-connection", "x-upstream-hop"];
    for path in ["/hop-by-hop", "/echo/public/keep-alive"] {
        let response = raw_http::get(&stack.proxy_url(path), &[]).await;
        assert_eq!(response.status, 200, "GET {path}: {}", response.text());
        for name in hop_by_hop {
            assert_eq!(
                response.header(name),
                None,
                "GET {path}: expected the dashboard's {name} to be removed"
            );
        }
        assert_eq!(
            response.header("connection"),
            Some("close"),
            "GET {path}: expected portcullis's own Connection"
        );
    }
    let response = raw_http::get(&stack.proxy_url("/hop-by-hop"), &[]).await;
    assert_eq!(
        response.header("x-upstream-end-to-end"),
        Some("kept"),
        "expected end-to-end headers to pass"
    );
    assert_eq!(response.text(), "hop-by-hop\n");

    // On a kept connection the only keep-alive timing is portcullis's.
    let address = url_address(&stack.portcullis.proxy);
    let request = "GET /echo/public/kept HTTP/1.1\r\nHost: portcullis.test\r\n\r\n";
    let result = exchange(&address, request.as_bytes(), IDLE).await;
    let responses = result.responses();
    assert_eq!(statuses(&responses), vec![200], "got:\n{}", result.text());
    assert_eq!(responses[0].header("connection"), Some("keep-alive"));
    assert_eq!(
        responses[0].header("keep-alive"),
        None,
        "expected no Keep-Alive from the dashboard"
    );
}

#[tokio::test]
async fn malformed_chunked_body_not_an_error() {
    let stack = ScimStack::start(&[PUBLIC_PATHS]).await;
    let address = address(&stack);
    let request = "POST /echo/public/upload HTTP/1.1\r\nHost: portcullis.test\r\n\
                   Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
                   zz\r\nhello\r\n0\r\n\r\n";
    let result = exchange(&address, request.as_bytes(), IDLE).await;
    assert!(
        result.closed,
        "expected the connection to end after the malformed body, got:\n{}",
        result.text()
    );

    let log = stack
        .portcullis
        .log_once(|line| {
            line.contains("portcullis::access") && line.contains("/echo/public/upload")
        })
        .await;
    let access = log
        .lines()
        .find(|line| line.contains("portcullis::access") && line.contains("/echo/public/upload"))
        .unwrap_or_else(|| panic!("expected an access line for the request, log:\n{log}"));
    assert!(
        access.contains("InvalidChunk"),
        "expected the access line to name the client's error: {access}"
    );
    let errors: Vec<&str> = log.lines().filter(|line| line.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "a client's malformed body is not a server error, got:\n{}",
        errors.join("\n")
    );
}

/// Returns the value of the unlabelled metric `name` on `/metrics`.
async fn metric(stack: &ScimStack, name: &str) -> f64 {
    stack
        .portcullis
        .metric(name)
        .await
        .unwrap_or_else(|| panic!("metric {name} missing from /metrics"))
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
