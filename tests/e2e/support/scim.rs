//! What the SCIM end-to-end tests share: a stack whose dashboard records
//! every request it receives, a SCIM client with a bearer token, and raw
//! HTTP/1.1 exchanges for request targets that URL parsers would rewrite.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::browser::Browser;
use super::fixtures::Idp;
use super::portcullis::{Portcullis, PortcullisConfig, Store};
use super::ports::{free_port, PROXY_HOST};

/// `schemas` URN of a SCIM error body.
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// `schemas` URN of a list response.
pub const LIST_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The core User schema.
pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The media type of SCIM responses.
pub const SCIM_MEDIA_TYPE: &str = "application/scim+json";

/// Time allowed for one SCIM request over HTTP.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest request head the recording dashboard reads.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Time allowed for one raw exchange.
const RAW_TIMEOUT: Duration = Duration::from_secs(10);

/// A dashboard that replies to every request with a small HTML page and
/// records the request line, so a test can tell whether portcullis
/// forwarded anything.
pub struct RecordingUpstream {
    /// `http://127.0.0.1:<port>`.
    pub url: Url,
    requests: Arc<Mutex<Vec<String>>>,
    server: JoinHandle<()>,
}

impl RecordingUpstream {
    /// Listens on a free loopback port until dropped.
    pub async fn start() -> RecordingUpstream {
        let listener = TcpListener::bind((PROXY_HOST, 0))
            .await
            .expect("the recording dashboard binds a loopback port");
        let port = listener
            .local_addr()
            .expect("a bound listener has an address")
            .port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let server = tokio::spawn(async move {
            // Runs until the test drops the upstream, which aborts it.
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer_dashboard(stream, recorded.clone()));
            }
        });
        RecordingUpstream {
            url: Url::parse(&format!("http://{PROXY_HOST}:{port}")).expect("valid upstream URL"),
            requests,
            server,
        }
    }

    /// Returns the request lines received so far, such as `GET / HTTP/1.1`.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .expect("the request log is not poisoned")
            .clone()
    }
}

impl Drop for RecordingUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer_dashboard(mut stream: TcpStream, requests: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut buffer = [0_u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < MAX_HEAD_BYTES {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next().unwrap_or_default().to_owned();
    requests
        .lock()
        .expect("the request log is not poisoned")
        .push(line);
    let page = "<!doctype html><title>dashboard</title><p>recorded</p>";
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    );
    // A write error means the proxy closed the connection, which the test
    // reports on its own side.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The processes of one SCIM test: the OpenID provider, which portcullis
/// needs to become ready, a recording dashboard, and portcullis with its
/// directory in the test's folder.
pub struct ScimStack {
    /// The proxy under test.
    pub portcullis: Portcullis,
    /// The dashboard behind the proxy.
    pub upstream: RecordingUpstream,
    /// The OpenID provider.
    pub idp: Idp,
    /// Configuration, logs and the SQLite directory `portcullis.db`.
    pub dir: TempDir,
}

impl ScimStack {
    /// Starts a stack in a new temporary folder.
    pub async fn start(env: &[(&str, &str)]) -> ScimStack {
        ScimStack::start_in(new_dir(), env).await
    }

    /// Starts a stack in `dir`, whose `portcullis.db`, if present, is the
    /// directory portcullis serves. `env` lists `PORTCULLIS_*` overrides.
    pub async fn start_in(dir: TempDir, env: &[(&str, &str)]) -> ScimStack {
        let proxy_port = free_port(PROXY_HOST);
        let admin_port = free_port(PROXY_HOST);
        let proxy_origin =
            Url::parse(&format!("http://{PROXY_HOST}:{proxy_port}/")).expect("valid proxy URL");
        let idp = Idp::start(dir.path(), &proxy_origin).await;
        let upstream = RecordingUpstream::start().await;
        let config = PortcullisConfig {
            proxy_port,
            admin_port,
            upstream: upstream.url.clone(),
            issuer: idp.issuer.clone(),
            store: Store::Memory,
        };
        let portcullis = Portcullis::start_with_env(dir.path(), &config, env).await;
        ScimStack {
            portcullis,
            upstream,
            idp,
            dir,
        }
    }

    /// Creates a browser with an empty cookie jar.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.portcullis.proxy, &self.idp.authorization_endpoint)
    }

    /// Creates a token with the CLI and a client that sends it.
    pub fn client(&self) -> ScimClient {
        ScimClient::new(&self.portcullis.proxy, &self.portcullis.token())
    }
}

/// Creates the temporary folder of one test.
pub fn new_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("portcullis-scim-")
        .tempdir()
        .expect("a temporary folder can be created")
}

/// Returns the SQLite URL of the directory in `dir`, the one portcullis
/// started in `dir` opens.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("portcullis.db").display())
}

/// A SCIM response read to the end.
#[derive(Debug)]
pub struct ScimReply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub text: String,
    /// The body parsed as JSON, `Value::Null` when it is empty or not
    /// JSON.
    pub body: Value,
    /// Time from sending the request to reading the whole body.
    pub elapsed: Duration,
}

impl ScimReply {
    /// Returns the `Content-Type` header, or "".
    pub fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    /// Asserts the status, printing the body when it differs.
    pub fn expect_status(&self, expected: u16, request: &str) {
        assert_eq!(
            self.status.as_u16(),
            expected,
            "{request}: expected status {expected}, got body {}",
            self.text
        );
    }

    /// Asserts a SCIM error: the status, the Error schema, `status` as a
    /// string, a `detail`, and the SCIM media type.
    pub fn expect_error(&self, status: u16, request: &str) {
        self.expect_status(status, request);
        assert!(
            self.content_type().starts_with(SCIM_MEDIA_TYPE),
            "{request}: expected Content-Type {SCIM_MEDIA_TYPE}, got {:?}",
            self.content_type()
        );
        assert_eq!(
            self.body["schemas"],
            json!([ERROR_URN]),
            "{request}: expected the Error schema in {}",
            self.text
        );
        assert_eq!(
            self.body["status"],
            json!(status.to_string()),
            "{request}: expected status as a string in {}",
            self.text
        );
        assert!(
            self.body["detail"]
                .as_str()
                .is_some_and(|detail| !detail.is_empty()),
            "{request}: expected a detail in {}",
            self.text
        );
    }
}

/// A SCIM client of one portcullis instance, with a bearer token.
pub struct ScimClient {
    client: reqwest::Client,
    /// `http://127.0.0.1:<port>/scim/v2`, without a trailing slash.
    pub base: String,
    /// The API token it sends.
    pub token: String,
}

impl ScimClient {
    /// Creates a client of the SCIM endpoint on `proxy` that sends `token`.
    pub fn new(proxy: &Url, token: &str) -> ScimClient {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("HTTP client builds");
        ScimClient {
            client,
            base: format!("{}scim/v2", proxy.as_str()),
            token: token.to_owned(),
        }
    }

    /// Returns the URL of `target` (path below the base, with query).
    pub fn url(&self, target: &str) -> Url {
        Url::parse(&format!("{}{target}", self.base))
            .unwrap_or_else(|e| panic!("invalid SCIM target {target:?}: {e}"))
    }

    /// Starts a request with `Authorization: Bearer <token>` and no other
    /// header.
    pub fn request(&self, method: Method, target: &str) -> reqwest::RequestBuilder {
        self.anonymous(method, target)
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
    }

    /// Starts a request without any header.
    pub fn anonymous(&self, method: Method, target: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(target))
    }

    /// Sends a request and reads the whole response.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> ScimReply {
        let started = Instant::now();
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("SCIM request failed: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("cannot read the SCIM response: {e}"));
        let elapsed = started.elapsed();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        ScimReply {
            status,
            headers,
            text,
            body,
            elapsed,
        }
    }

    /// `GET target` with `Accept: application/scim+json`.
    pub async fn get(&self, target: &str) -> ScimReply {
        let request = self
            .request(Method::GET, target)
            .header(ACCEPT, SCIM_MEDIA_TYPE);
        self.send(request).await
    }

    /// `POST target` with a JSON body.
    pub async fn post(&self, target: &str, body: &Value) -> ScimReply {
        let request = self
            .request(Method::POST, target)
            .header(ACCEPT, SCIM_MEDIA_TYPE)
            .header(CONTENT_TYPE, SCIM_MEDIA_TYPE)
            .body(body.to_string());
        self.send(request).await
    }

    /// Deactivates User `id` as Okta does: a PATCH of `active` without a
    /// path. Fails the test unless the response is 200.
    pub async fn deactivate_user(&self, id: &str) {
        let patch = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "value": {"active": false}}],
        });
        let request = self
            .request(Method::PATCH, &format!("/Users/{id}"))
            .header(ACCEPT, SCIM_MEDIA_TYPE)
            .header(CONTENT_TYPE, SCIM_MEDIA_TYPE)
            .body(patch.to_string());
        self.send(request)
            .await
            .expect_status(200, "PATCH of active to false");
    }
}

/// Returns `?filter=<filter>` with the filter percent-encoded, followed by
/// `extra`.
pub fn filter_query(filter: &str, extra: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    format!("?filter={encoded}{extra}")
}

/// A response to a raw exchange.
#[derive(Debug)]
pub struct RawReply {
    /// The status code.
    pub status: u16,
    /// Header lines as received.
    pub headers: Vec<(String, String)>,
    /// The body as text, read to the end of the connection.
    pub body: String,
}

impl RawReply {
    /// Returns the first value of header `name`, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Sends `GET target` exactly as written (no normalisation of `..`, `//`
/// or percent-encoding) with `headers` and `Connection: close`, and reads
/// the response until the server closes the connection.
pub async fn raw_get(proxy: &Url, target: &str, headers: &[(&str, &str)]) -> RawReply {
    let mut request = format!("GET {target} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    raw_exchange(proxy, request.as_bytes(), &format!("GET {target}")).await
}

/// Sends `request`, a request line, headers and body without `Host` and
/// `Connection`, which this adds after the request line, and reads the
/// response until the server closes the connection.
pub async fn raw_exchange(proxy: &Url, request: &[u8], describe: &str) -> RawReply {
    let host = proxy.host_str().expect("proxy URL has a host");
    let port = proxy.port().expect("proxy URL has a port");
    let line_end = request
        .windows(2)
        .position(|window| window == b"\r\n")
        .expect("the request has a request line");
    let mut bytes = request[..line_end + 2].to_vec();
    bytes.extend_from_slice(format!("Host: {host}:{port}\r\nConnection: close\r\n").as_bytes());
    bytes.extend_from_slice(&request[line_end + 2..]);
    let exchange = async {
        let mut stream = TcpStream::connect((host, port))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {proxy}: {e}"));
        // The server may reply and close before it reads the whole body,
        // as it does for an oversized one, so a failed write is no error.
        let _ = stream.write_all(&bytes).await;
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received).await;
        received
    };
    let received = tokio::time::timeout(RAW_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{describe} did not complete within {RAW_TIMEOUT:?}"));
    parse_raw(&received, describe)
}

fn parse_raw(received: &[u8], describe: &str) -> RawReply {
    let text = String::from_utf8_lossy(received);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{describe}: the response has no end of headers: {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{describe}: invalid status line {status_line:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_owned(), value.trim().to_owned()))
        .collect::<Vec<_>>();
    let reply = RawReply {
        status,
        headers,
        body: body.to_owned(),
    };
    let chunked = reply
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
    assert!(
        !chunked,
        "{describe}: expected a local response with Content-Length, got chunked"
    );
    reply
}
