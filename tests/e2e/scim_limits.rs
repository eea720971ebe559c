//! The SCIM request body limit (`scim.max_body_bytes`), the request head
//! limit (`server.max_request_header_bytes`) on SCIM paths and
//! `Expect: 100-continue`, over HTTP against the real binary.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::raw_http;
use crate::support::scim::{
    raw_exchange, ScimClient, ScimStack, ERROR_URN, SCIM_MEDIA_TYPE, USER_URN,
};

/// The body limit the tests configure, in bytes.
const LIMIT: usize = 2048;

/// curl waits this long for `100 Continue` before it sends the body
/// anyway, so a request that takes longer never received it.
const CONTINUE_STALL: Duration = Duration::from_secs(1);

/// Returns a User body of exactly `size` bytes, padded in `title`, which is
/// not indexed and so has no length limit of its own.
fn user_of_size(user_name: &str, size: usize) -> String {
    let empty = json!({ "schemas": [USER_URN], "userName": user_name, "title": "" });
    let padding = size
        .checked_sub(empty.to_string().len())
        .expect("the size fits the empty body");
    let mut body: Value = empty;
    body["title"] = json!("x".repeat(padding));
    let text = body.to_string();
    assert_eq!(text.len(), size, "the padded body has the requested size");
    text
}

#[tokio::test]
async fn body_limit_enforced() {
    let limit = LIMIT.to_string();
    let stack = ScimStack::start(&[("PORTCULLIS_SCIM__MAX_BODY_BYTES", &limit)]).await;
    let client = stack.client();

    let fits = client
        .send(
            client
                .request(reqwest::Method::POST, "/Users")
                .header("content-type", "application/scim+json")
                .body(user_of_size("fits@example.test", LIMIT)),
        )
        .await;
    fits.expect_status(201, "POST a body of exactly the limit");

    let oversized = client
        .send(
            client
                .request(reqwest::Method::POST, "/Users")
                .header("content-type", "application/scim+json")
                .body(user_of_size("big@example.test", LIMIT + 1)),
        )
        .await;
    oversized.expect_error(413, "POST a body one byte over the limit");

    let chunk = user_of_size("chunked@example.test", LIMIT + 500);
    let (first, rest) = chunk.split_at(LIMIT / 2);
    let request = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n{first}\r\n{:x}\r\n{rest}\r\n0\r\n\r\n",
        client.token,
        first.len(),
        rest.len()
    );
    let chunked = raw_exchange(
        &stack.portcullis.proxy,
        request.as_bytes(),
        "POST a chunked body over the limit",
    )
    .await;
    assert_eq!(
        chunked.status, 413,
        "expected 413 for a chunked body over the limit, got {}",
        chunked.body
    );
    assert!(
        chunked.body.contains("\"413\""),
        "expected a SCIM error body, got {}",
        chunked.body
    );

    let found = client.get("/Users?count=10").await;
    assert_eq!(
        found.body["totalResults"],
        json!(1),
        "expected only the body within the limit stored"
    );
}

/// What curl reports about one request.
struct CurlResult {
    status: u16,
    total_time: Duration,
    /// Whether the server sent `100 Continue` before the final response.
    continued: bool,
}

/// Runs curl with `Expect: 100-continue` and returns what it reports.
fn curl_with_continue(client: &ScimClient, body_path: &std::path::Path) -> CurlResult {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--verbose", "--noproxy", "*"])
        .args(["--max-time", "10", "--output", "/dev/null"])
        .args(["--write-out", "%{http_code} %{time_total}"])
        .args(["--request", "POST"])
        .arg("--header")
        .arg(format!("Authorization: Bearer {}", client.token))
        .args(["--header", "Content-Type: application/scim+json"])
        .args(["--header", "Expect: 100-continue"])
        .arg("--data-binary")
        .arg(format!("@{}", body_path.display()))
        .arg(client.url("/Users").as_str())
        .output()
        .expect("curl can be run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "curl failed with {}: {}{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let (code, seconds) = stdout
        .split_once(' ')
        .unwrap_or_else(|| panic!("unexpected curl output {stdout:?}"));
    let seconds: f64 = seconds.parse().expect("curl prints the total time");
    CurlResult {
        status: code.parse().expect("curl prints the status code"),
        total_time: Duration::from_secs_f64(seconds),
        continued: String::from_utf8_lossy(&output.stderr).contains("< HTTP/1.1 100"),
    }
}

#[tokio::test]
async fn expect_continue_no_stall() {
    let limit = LIMIT.to_string();
    let stack = ScimStack::start(&[("PORTCULLIS_SCIM__MAX_BODY_BYTES", &limit)]).await;
    let client = stack.client();
    // (userName, body size, final status, whether 100 Continue comes first)
    let cases = [
        ("continued@example.test", LIMIT / 2, 201, true),
        ("refused@example.test", LIMIT * 4, 413, false),
    ];
    for (user_name, size, status, continued) in cases {
        let request = format!("POST {size} bytes with Expect: 100-continue");
        let body_path = stack.dir.path().join(format!("{user_name}.json"));
        std::fs::write(&body_path, user_of_size(user_name, size)).expect("write the body file");
        let result = curl_with_continue(&client, &body_path);
        assert_eq!(result.status, status, "{request}: status");
        assert_eq!(
            result.continued, continued,
            "{request}: whether 100 Continue was sent"
        );
        assert!(
            result.total_time < CONTINUE_STALL,
            "{request}: took {:?}; curl waited for 100 Continue",
            result.total_time
        );
    }
}

#[tokio::test]
async fn oversized_head_gets_scim_431() {
    let stack = ScimStack::start(&[("PORTCULLIS_SERVER__MAX_REQUEST_HEADER_BYTES", "4096")]).await;
    let token = format!("Bearer {}", stack.portcullis.token());
    let padding = "a".repeat(5000);
    // Whatever the client accepts, a SCIM path gets a SCIM error.
    let cases = [
        (
            "/scim/v2/Users",
            "text/html,application/xhtml+xml,*/*;q=0.8",
        ),
        ("/scim/v2/Users", "application/scim+json"),
        ("/SCIM/V2/Groups", "*/*"),
        ("/scim/v2", ""),
    ];
    for (path, accept) in cases {
        let url = stack.portcullis.proxy_url(path);
        let mut headers = vec![("Authorization", token.as_str()), ("X-Padding", &padding)];
        if !accept.is_empty() {
            headers.push(("Accept", accept));
        }
        let response = raw_http::get(&url, &headers).await;
        let case = format!("GET {path} with Accept {accept:?}");
        assert_eq!(
            response.status,
            431,
            "{case}: expected 431, got body:\n{}",
            response.text()
        );
        assert_eq!(
            response.header("content-type"),
            Some(SCIM_MEDIA_TYPE),
            "{case}: expected a SCIM error"
        );
        let body: Value = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
            panic!(
                "{case}: expected a JSON body ({e}), got:\n{}",
                response.text()
            )
        });
        assert_eq!(body["schemas"], json!([ERROR_URN]), "{case}: {body}");
        assert_eq!(body["status"], json!("431"), "{case}: {body}");
    }
}
