//! A bare HTTP/1.1 client for requests whose header names must reach the
//! proxy exactly as written: reqwest lower-cases them.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use reqwest::Url;

/// Time allowed for the whole exchange.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A response read to the end of the connection.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// The status line as received, such as `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// Header lines as received.
    pub headers: Vec<(String, String)>,
    /// The body, with chunked transfer coding removed.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Returns the first value of header `name`, compared without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Returns the body as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `GET url` with exactly `headers` (plus `Host` and
/// `Connection: close`) and reads the response until the server closes.
pub async fn get(url: &Url, headers: &[(&str, &str)]) -> RawResponse {
    let host = url.host_str().expect("URL has a host");
    let port = url.port_or_known_default().expect("URL has a port");
    let target = &url[url::Position::BeforePath..];
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");

    let exchange = async {
        let mut stream = TcpStream::connect((host, port))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        stream
            .write_all(request.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("cannot send the request to {url}: {e}"));
        let mut received = Vec::new();
        stream
            .read_to_end(&mut received)
            .await
            .unwrap_or_else(|e| panic!("cannot read the response from {url}: {e}"));
        received
    };
    let received = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("GET {url} did not complete within {EXCHANGE_TIMEOUT:?}"));
    parse_response(&received)
}

fn parse_response(received: &[u8]) -> RawResponse {
    let split = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "response has no end of headers: {:?}",
                String::from_utf8_lossy(received)
            )
        });
    let mut response = parse_head(&received[..split]);
    response.body = received[split + 4..].to_vec();
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
    if chunked {
        response.body = decode_chunked(&response.body);
    }
    response
}

/// Parses a status line and header lines, without the blank line after them.
fn parse_head(head: &[u8]) -> RawResponse {
    let head = std::str::from_utf8(head).expect("response headers are UTF-8");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("invalid status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        status_line: status_line.to_owned(),
        headers,
        body: Vec::new(),
    }
}

fn decode_chunked(mut encoded: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = encoded
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line ends with CRLF");
        let size_text = std::str::from_utf8(&encoded[..line_end]).expect("chunk size is ASCII");
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .unwrap_or_else(|e| panic!("invalid chunk size {size_text:?}: {e}"));
        if size == 0 {
            return body;
        }
        let start = line_end + 2;
        body.extend_from_slice(&encoded[start..start + size]);
        encoded = &encoded[start + size + 2..];
    }
}

/// What came back on one connection: the bytes received, and whether the
/// server closed the connection (rather than leaving it idle).
#[derive(Debug)]
pub struct Exchange {
    /// Every byte received.
    pub received: Vec<u8>,
    /// `true` when the server closed the connection within the wait.
    pub closed: bool,
}

impl Exchange {
    /// Splits the bytes received into responses. Responses to `HEAD` are
    /// not told apart, so send no `HEAD` through this.
    pub fn responses(&self) -> Vec<RawResponse> {
        split_responses(&self.received)
    }

    /// Returns the bytes received as text, for assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }
}

/// Writes `request` to `address` as it is, then reads until the server
/// closes the connection or sends nothing for `idle`.
pub async fn exchange(address: &str, request: &[u8], idle: Duration) -> Exchange {
    let mut stream = TcpStream::connect(address)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {address}: {e}"));
    stream
        .write_all(request)
        .await
        .unwrap_or_else(|e| panic!("cannot send the request to {address}: {e}"));
    read_until_idle(&mut stream, idle).await
}

/// Reads from `stream` until the peer closes it or sends nothing for `idle`.
pub async fn read_until_idle(stream: &mut TcpStream, idle: Duration) -> Exchange {
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let closed = loop {
        match tokio::time::timeout(idle, stream.read(&mut buffer)).await {
            Err(_) => break false,
            Ok(Ok(0)) => break true,
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            // A reset after the response is a close too.
            Ok(Err(_)) => break true,
        }
    };
    Exchange { received, closed }
}

/// Splits a byte stream into responses framed by `Content-Length` or
/// chunked coding. A response with neither takes the rest of the stream.
fn split_responses(mut received: &[u8]) -> Vec<RawResponse> {
    let mut responses = Vec::new();
    while !received.is_empty() {
        let Some(split) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
            panic!(
                "response has no end of headers: {:?}",
                String::from_utf8_lossy(received)
            );
        };
        let mut response = parse_head(&received[..split]);
        let rest = &received[split + 4..];
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
        let length = if matches!(response.status, 100..=199 | 204 | 304) {
            0
        } else if chunked {
            chunked_length(rest)
        } else if let Some(length) = response.header("content-length") {
            length.parse().expect("Content-Length is a number")
        } else {
            rest.len()
        };
        let body = &rest[..length.min(rest.len())];
        response.body = if chunked {
            decode_chunked(body)
        } else {
            body.to_vec()
        };
        responses.push(response);
        received = &rest[body.len()..];
    }
    responses
}

/// Returns the length in bytes of the chunked body at the start of `encoded`.
fn chunked_length(encoded: &[u8]) -> usize {
    let mut at = 0;
    loop {
        let Some(line_end) = encoded[at..].windows(2).position(|w| w == b"\r\n") else {
            return encoded.len();
        };
        let size_text =
            std::str::from_utf8(&encoded[at..at + line_end]).expect("chunk size is ASCII");
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .unwrap_or_else(|e| panic!("invalid chunk size {size_text:?}: {e}"));
        at += line_end + 2 + size + 2;
        if size == 0 || at >= encoded.len() {
            return at.min(encoded.len());
        }
    }
}
