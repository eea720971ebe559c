//! Hostile cookies and header floods. Every malformed, forged or oversized
//! session cookie gets a fresh login: 401 for an API client, a redirect to
//! the provider for a browser. Every malformed or oversized head gets a 4xx
//! or a closed connection. None of them gets a 5xx, access, or a crash.

use std::time::Duration;

use portcullis::session::{CookieCodec, SessionId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::portcullis::COOKIE_KEY;
use crate::support::{Stack, SESSION_COOKIE};

/// Time allowed for one raw exchange.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers of a fetch from a script, which gets 401 without a session.
const API: &str = "Accept: application/json\r\n";
/// Headers of a browser navigation, which gets a login redirect.
const NAVIGATION: &str = "Accept: text/html\r\nSec-Fetch-Mode: navigate\r\n";

/// What came back: the status, or `None` when the connection closed
/// without a response, and the `Location` header.
struct Outcome {
    status: Option<u16>,
    location: Option<String>,
}

/// Sends `GET /api/data` with the extra header lines `headers` (each ending
/// in CRLF) and reads the response.
async fn exchange(stack: &Stack, headers: &[u8]) -> Outcome {
    let proxy = &stack.portcullis.proxy;
    let host = proxy.host_str().expect("a host");
    let port = proxy.port().expect("a port");
    let mut request =
        format!("GET /api/data HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n")
            .into_bytes();
    request.extend_from_slice(headers);
    request.extend_from_slice(b"\r\n");

    let exchange = async {
        let mut stream = TcpStream::connect((host, port))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {proxy}: {e}"));
        // The server may respond and close before reading a huge head.
        let _ = stream.write_all(&request).await;
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received).await;
        received
    };
    let received = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .expect("the exchange completes in time");

    let text = String::from_utf8_lossy(&received);
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok());
    let location = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("location"))
        .map(|(_, value)| value.trim().to_owned());
    Outcome { status, location }
}

fn cookie_line(value: &str) -> String {
    format!("Cookie: {value}\r\n")
}

#[tokio::test]
async fn hostile_cookies_get_a_fresh_login() {
    let stack = Stack::start().await;
    let browser = stack.signed_in("alice").await;
    let valid = browser.session_cookie().expect("signed in");
    let unknown_key = CookieCodec::new(vec![b"another-key-0123456789abcdefghijklmnop".to_vec()])
        .encode(&SessionId::generate());
    let no_such_session =
        CookieCodec::new(vec![COOKIE_KEY.as_bytes().to_vec()]).encode(&SessionId::generate());
    let many = (0..200)
        .map(|i| format!("c{i}=v"))
        .collect::<Vec<_>>()
        .join("; ");
    let cases: Vec<(&str, String)> = vec![
        ("empty value", format!("{SESSION_COOKIE}=")),
        ("garbage", format!("{SESSION_COOKIE}=garbage")),
        (
            "truncated",
            format!("{SESSION_COOKIE}={}", &valid[..valid.len() - 5]),
        ),
        ("extra character", format!("{SESSION_COOKIE}={valid}x")),
        (
            "oversized",
            format!("{SESSION_COOKIE}={valid}{}", "A".repeat(4000)),
        ),
        (
            "signed by an unknown key",
            format!("{SESSION_COOKIE}={unknown_key}"),
        ),
        (
            "unknown session id",
            format!("{SESSION_COOKIE}={no_such_session}"),
        ),
        ("tag of another id", {
            let (_, tag) = valid.rsplit_once('.').expect("a tag");
            let (prefix, _) = no_such_session.rsplit_once('.').expect("a tag");
            format!("{SESSION_COOKIE}={prefix}.{tag}")
        }),
        (
            "other version",
            format!("{SESSION_COOKIE}={}", valid.replacen("v1", "v0", 1)),
        ),
        ("quoted garbage", format!("{SESSION_COOKIE}=\"garbage\"")),
        (
            "duplicated garbage",
            format!("{SESSION_COOKIE}=a; {SESSION_COOKIE}=b"),
        ),
        ("name only", SESSION_COOKIE.to_owned()),
        ("two hundred cookies", many),
        ("semicolons only", ";;;;".to_owned()),
    ];
    for (case, value) in &cases {
        let api = exchange(&stack, format!("{API}{}", cookie_line(value)).as_bytes()).await;
        assert_eq!(
            api.status,
            Some(401),
            "{case}: expected 401 for an API client"
        );
        let navigation = exchange(
            &stack,
            format!("{NAVIGATION}{}", cookie_line(value)).as_bytes(),
        )
        .await;
        assert_eq!(
            navigation.status,
            Some(302),
            "{case}: expected a login redirect"
        );
        let location = navigation.location.unwrap_or_default();
        assert!(
            location.starts_with(stack.idp.authorization_endpoint.as_str()),
            "{case}: expected a redirect to the provider, got {location:?}"
        );
    }

    let raw_bytes: Vec<(&str, Vec<u8>)> = vec![
        (
            "NUL byte",
            format!("Cookie: {SESSION_COOKIE}=a\0b\r\n").into_bytes(),
        ),
        ("bytes that are not UTF-8", {
            let mut line = format!("Cookie: {SESSION_COOKIE}=").into_bytes();
            line.extend_from_slice(&[0xC3, 0x28, 0xFF, 0xFE]);
            line.extend_from_slice(b"\r\n");
            line
        }),
    ];
    for (case, line) in &raw_bytes {
        let mut headers = API.as_bytes().to_vec();
        headers.extend_from_slice(line);
        let outcome = exchange(&stack, &headers).await;
        assert!(
            outcome
                .status
                .is_none_or(|status| status == 400 || status == 401),
            "{case}: expected 400, 401 or a closed connection, got {:?}",
            outcome.status
        );
    }

    let both = exchange(
        &stack,
        format!("{API}Cookie: {SESSION_COOKIE}=garbage; {SESSION_COOKIE}={valid}\r\n").as_bytes(),
    )
    .await;
    assert!(
        matches!(both.status, Some(200 | 401)),
        "a garbage cookie beside a valid one must give the valid session or none, got {:?}",
        both.status
    );
    let mut beside_utf8 = API.as_bytes().to_vec();
    beside_utf8.extend_from_slice(
        format!("Cookie: {SESSION_COOKIE}={valid}; theme=d\u{e9}j\u{e0}\r\n").as_bytes(),
    );
    let beside_utf8 = exchange(&stack, &beside_utf8).await;
    assert_eq!(
        beside_utf8.status,
        Some(200),
        "a UTF-8 value in another cookie must not hide the session cookie"
    );
    let control = exchange(
        &stack,
        format!("{API}{}", cookie_line(&format!("{SESSION_COOKIE}={valid}"))).as_bytes(),
    )
    .await;
    assert_eq!(control.status, Some(200), "the valid session still works");
    println!(
        "{} hostile cookies, each as an API call and a navigation, and {} raw byte cases",
        cases.len(),
        raw_bytes.len()
    );
}

#[tokio::test]
async fn header_floods_get_4xx() {
    let stack = Stack::start().await;
    let flood = |count: usize, line: &str| line.repeat(count).into_bytes();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("300 headers", flood(300, "X-Flood: a\r\n")),
        (
            "a 70 KiB header",
            format!("X-Big: {}\r\n", "a".repeat(70 * 1024)).into_bytes(),
        ),
        (
            "a 2 MiB head",
            flood(2048, &format!("X-Big: {}\r\n", "a".repeat(1024))),
        ),
        (
            "a 70 KiB cookie",
            format!("Cookie: {SESSION_COOKIE}={}\r\n", "A".repeat(70 * 1024)).into_bytes(),
        ),
        ("a line without a colon", b"NoColonHere\r\n".to_vec()),
        ("a space before the colon", b"X-Bad : a\r\n".to_vec()),
        ("an obsolete line fold", b"X-Folded: a\r\n b\r\n".to_vec()),
        ("a name with a slash", b"X/Bad: a\r\n".to_vec()),
        ("a bare LF inside a value", b"X-Lf: a\nb\r\n".to_vec()),
        (
            "Content-Length and Transfer-Encoding",
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n".to_vec(),
        ),
        (
            "two Content-Lengths",
            b"Content-Length: 0\r\nContent-Length: 5\r\n".to_vec(),
        ),
        (
            "a negative Content-Length",
            b"Content-Length: -1\r\n".to_vec(),
        ),
    ];
    for (case, headers) in &cases {
        let mut sent = API.as_bytes().to_vec();
        sent.extend_from_slice(headers);
        let outcome = exchange(&stack, &sent).await;
        assert!(
            outcome
                .status
                .is_none_or(|status| (400..500).contains(&status)),
            "{case}: expected a 4xx or a closed connection, got {:?}",
            outcome.status
        );
        assert_ne!(
            outcome.status,
            Some(200),
            "{case}: must not reach the dashboard"
        );
    }
    let control = exchange(&stack, API.as_bytes()).await;
    assert_eq!(
        control.status,
        Some(401),
        "portcullis still serves after the floods"
    );
    let log = stack.portcullis.log();
    assert!(
        !log.contains("panicked"),
        "expected no panic in the log:\n{log}"
    );
    println!("{} malformed or oversized heads", cases.len());
}
