//! Traffic that must pass through unchanged: streamed and large responses,
//! WebSockets and request bodies.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE, COOKIE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::support::{Browser, Echo, Stack, SESSION_COOKIE};

/// Chunks `/stream` sends, 100 ms apart (see tests/fixtures/upstream.mjs).
const STREAM_CHUNKS: usize = 5;

/// Modulus of the byte pattern of `/big`: byte `i` is `i % 251`.
const BIG_PATTERN_MODULUS: usize = 251;

/// Time allowed for one WebSocket handshake or message.
const WEBSOCKET_TIMEOUT: Duration = Duration::from_secs(10);

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn check_stream(stack: &Stack, alice: &Browser) {
    let mut response = alice.fetch_json(&stack.proxy_url("/stream")).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "expected /stream to return 200"
    );
    let started = Instant::now();
    let mut chunks = Vec::new();
    let mut arrivals = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("read a /stream chunk") {
        arrivals.push(started.elapsed());
        chunks.push(String::from_utf8_lossy(&chunk).into_owned());
    }
    let expected: String = (1..=STREAM_CHUNKS)
        .map(|n| format!("chunk {n}\n"))
        .collect();
    assert_eq!(chunks.concat(), expected, "expected the whole /stream body");
    assert_eq!(
        chunks.len(),
        STREAM_CHUNKS,
        "expected /stream to arrive as {STREAM_CHUNKS} separate chunks, got {chunks:?} at {arrivals:?}"
    );
    let spread = arrivals[arrivals.len() - 1] - arrivals[0];
    assert!(
        spread >= Duration::from_millis(300),
        "expected the chunks to arrive as they were sent, 100 ms apart, but they arrived within {spread:?}"
    );
}

async fn check_big_body(stack: &Stack, alice: &Browser) {
    const BYTES: usize = 1024 * 1024;
    let response = alice
        .fetch_json(&stack.proxy_url(&format!("/big?bytes={BYTES}")))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "expected /big to return 200"
    );
    let body = response.bytes().await.expect("read the /big body");
    assert_eq!(body.len(), BYTES, "expected /big to deliver {BYTES} bytes");
    let pattern: Vec<u8> = (0..BYTES)
        .map(|i| u8::try_from(i % BIG_PATTERN_MODULUS).expect("below 251"))
        .collect();
    assert_eq!(
        sha256_hex(&body),
        sha256_hex(&pattern),
        "expected /big to deliver the pattern i % 251 unchanged"
    );
}

async fn check_websocket(stack: &Stack, session: Option<&str>) -> Result<(), tungstenite::Error> {
    let mut url = stack.proxy_url("/ws");
    url.set_scheme("ws").expect("http URL becomes ws");
    let mut request = url
        .as_str()
        .into_client_request()
        .expect("valid WebSocket request");
    if let Some(session) = session {
        let cookie = format!("{SESSION_COOKIE}={session}");
        request
            .headers_mut()
            .insert(COOKIE, cookie.parse().expect("valid cookie header"));
    }
    let (mut socket, response) =
        tokio::time::timeout(WEBSOCKET_TIMEOUT, tokio_tungstenite::connect_async(request))
            .await
            .expect("the WebSocket handshake completes in time")?;
    assert_eq!(
        response.status(),
        StatusCode::SWITCHING_PROTOCOLS,
        "expected the upgrade to be accepted"
    );

    let greeting = next_text(&mut socket).await;
    assert_eq!(
        greeting, "hello alice",
        "expected the dashboard to greet the signed-in user over the WebSocket"
    );
    socket
        .send(Message::text("ping through portcullis"))
        .await
        .expect("send a WebSocket message");
    let echoed = next_text(&mut socket).await;
    assert_eq!(
        echoed, "echo:ping through portcullis",
        "expected the dashboard's echo of the message"
    );
    // The test is over whether or not the close handshake completes.
    let _ = socket.close(None).await;
    Ok(())
}

async fn next_text<S>(socket: &mut S) -> String
where
    S: StreamExt<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    let message = tokio::time::timeout(WEBSOCKET_TIMEOUT, socket.next())
        .await
        .expect("a WebSocket message arrives in time")
        .expect("the WebSocket is still open")
        .expect("a valid WebSocket message");
    message
        .to_text()
        .expect("a text WebSocket message")
        .to_owned()
}

#[tokio::test]
async fn websocket_and_streaming_pass_through() {
    let stack = Stack::start().await;
    let alice = stack.signed_in("alice").await;
    let session = alice.session_cookie().expect("signed in");

    check_stream(&stack, &alice).await;
    check_big_body(&stack, &alice).await;
    check_websocket(&stack, Some(&session))
        .await
        .expect("expected the WebSocket upgrade with a session to succeed");

    match check_websocket(&stack, None).await {
        Err(tungstenite::Error::Http(response)) => {
            assert!(
                matches!(response.status().as_u16(), 302 | 401),
                "expected a WebSocket without a session to get 302 or 401, got {}",
                response.status()
            );
        }
        Err(other) => {
            panic!("expected an HTTP refusal of the upgrade without a session, got {other}")
        }
        Ok(()) => panic!("expected the WebSocket upgrade without a session to be refused"),
    }
}

#[tokio::test]
async fn body_passes_through() {
    let stack = Stack::start().await;
    let alice = stack.signed_in("alice").await;
    let body: Vec<u8> = (0..100 * 1024u32)
        .map(|i| u8::try_from(i.wrapping_mul(7) % 256).expect("below 256"))
        .collect();
    let response = alice
        .client()
        .post(stack.proxy_url("/echo/upload"))
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .expect("POST /echo/upload");
    let echo = Echo::read(response).await;
    assert_eq!(
        echo.method, "POST",
        "expected the dashboard to receive a POST"
    );
    assert_eq!(
        echo.single("x-forwarded-user"),
        "alice",
        "expected the POST to be signed in as alice"
    );
    assert_eq!(
        echo.body_bytes,
        body.len() as u64,
        "expected the dashboard to receive the whole body"
    );
    assert_eq!(
        echo.body_sha256,
        sha256_hex(&body),
        "expected the dashboard to receive the body unchanged"
    );
}
