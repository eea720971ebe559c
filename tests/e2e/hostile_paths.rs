//! Hostile spellings of protected paths, sent without a session. Each one
//! must be rejected with 400, get a response from portcullis itself (401, or SCIM's
//! 401), or forwarded only when every plausible reading of it by the
//! dashboard is a public path. SCIM spellings must never reach the
//! dashboard.
//!
//! The spellings are generated from tricks taken from RFC 3986 and from
//! advisories against other auth proxies: case, percent-encoding (single,
//! double, overlong UTF-8, fullwidth look-alikes), dot segments, `;`
//! parameters, duplicate slashes, backslashes, query and fragment markers,
//! and NUL or line-break bytes.

use crate::support::scim::{raw_get, ScimStack};

/// Public paths of the stack: one prefix and one exact path.
const PUBLIC_PATHS: &str = "/public/ /healthz";

/// Steps from a public prefix back up one level, in different spellings.
const PARENT_STEPS: &[&str] = &[
    "../",
    "..;/",
    "..;x=1/",
    "%2e%2e/",
    "%2E%2E/",
    ".%2e/",
    "%2e./",
    "..%2f",
    "..%2F",
    "%2e%2e%2f",
    "..%5c",
    "..\\",
    "%252e%252e/",
    "..%252f",
    "./../",
    ".;/../",
    "..%00/",
    "..%0d%0a/",
    "%c0%ae%c0%ae/",
    "%c0%ae%c0%ae%c0%af",
    "%e0%80%ae%e0%80%ae/",
    "\u{FF0E}\u{FF0E}/",
    "%ef%bc%8e%ef%bc%8e/",
    "..%ef%bc%8f",
    "/../",
    "..//",
    ".../",
    "....//",
    "..%3b/",
    "..%23/",
    "..%3f/",
    "..%20/",
    "..%c2%a0/",
    "..%e2%80%8b/",
    ".%3b/../",
];

/// Protected targets reached from the public prefix.
const PROTECTED: &[&str] = &[
    "admin",
    "scim/v2/Users",
    "SCIM/v2/Users",
    "healthz/../admin",
];

/// Targets that put a public-looking part where a careless matcher reads it.
const DISGUISES: &[&str] = &[
    "/admin?/public/",
    "/admin#/public/",
    "/admin%3f/public/",
    "/admin%23/public/",
    "/admin;/public/",
    "/admin/;/public/",
    "/admin%2f..%2fpublic/",
    "//public/../admin",
    "///admin",
    "/public//../admin",
    "/./public/../admin",
    "/public/./../admin",
    "/healthz/../admin",
    "/healthz;/../admin",
    "/healthz%2f..%2fadmin",
    "/healthz%00/admin",
    "/healthz%20",
    "/Public/../admin",
    "/PUBLIC/x",
    "/publi%63/../admin",
    "/%70ublic/../admin",
    "/public\\..\\admin",
    "/public%5c..%5cadmin",
    "/admin\u{FF0F}public/",
    "http://127.0.0.1/public/../admin",
    "*",
    "/scim/v2/../../public/x",
    "/scim%2fv2/Users",
    "/scim/v2%2fUsers",
    "/%73cim/v2/Users",
    "/sCiM/V2/Users",
    "/scim;x/v2/Users",
    "/scim/v2;/Users",
    "/scim/v2/Users%3f",
    "/scim/v2/Users#x",
];

/// Reads `target` as the most lenient server would: decoding escapes
/// repeatedly, overlong and fullwidth dots and slashes included, treating
/// `\` as `/`, cutting `;` parameters and NUL bytes, resolving dot segments
/// and collapsing empty ones. The result is lower-case.
fn lenient_reading(target: &str) -> String {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let mut bytes = path.as_bytes().to_vec();
    for _ in 0..3 {
        bytes = percent_encoding::percent_decode(&bytes).collect();
    }
    let text = String::from_utf8_lossy(&replace_overlong(&bytes))
        .replace(['\u{FF0E}', '\u{2024}', '\u{FE52}'], ".")
        .replace(['\u{FF0F}', '\u{FF3C}', '\u{FE68}', '\\'], "/");
    let text = text.split('\0').next().unwrap_or_default();
    let mut segments: Vec<&str> = Vec::new();
    for segment in text.split(['/', '?', '#']) {
        let segment = segment
            .split(';')
            .next()
            .unwrap_or_default()
            .trim_matches(|c: char| c.is_whitespace() || c == '\u{200B}');
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let trailing = if text.ends_with('/') { "/" } else { "" };
    format!("/{}{trailing}", segments.join("/")).to_lowercase()
}

/// Replaces overlong two- and three-byte encodings of `.` and `/`.
fn replace_overlong(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let (byte, width) = match bytes[i..] {
            [0xC0, 0xAE, ..] => (b'.', 2),
            [0xC0, 0xAF, ..] => (b'/', 2),
            [0xE0, 0x80, 0xAE, ..] => (b'.', 3),
            [0xE0, 0x80, 0xAF, ..] => (b'/', 3),
            _ => (bytes[i], 1),
        };
        out.push(byte);
        i += width;
    }
    out
}

fn is_public_reading(reading: &str) -> bool {
    reading.starts_with("/public/") || reading == "/healthz"
}

fn hostile_targets() -> Vec<String> {
    let mut targets: Vec<String> = Vec::new();
    for step in PARENT_STEPS {
        for protected in PROTECTED {
            targets.push(format!("/public/{step}{protected}"));
            targets.push(format!("/public/x/{step}{step}{protected}"));
        }
    }
    targets.extend(DISGUISES.iter().map(|target| (*target).to_owned()));
    targets
}

#[tokio::test]
async fn hostile_paths_never_bypass_login() {
    let stack = ScimStack::start(&[("PORTCULLIS_ACCESS__PUBLIC_PATHS", PUBLIC_PATHS)]).await;
    let proxy = &stack.portcullis.proxy;
    let headers = [("Accept", "application/json")];

    let control = raw_get(proxy, "/public/report", &headers).await;
    assert_eq!(control.status, 200, "a plain public path must be forwarded");
    let control = raw_get(proxy, "/admin", &headers).await;
    assert_eq!(
        control.status, 401,
        "a plain protected path must need a session"
    );

    let targets = hostile_targets();
    let mut outcomes = std::collections::BTreeMap::<u16, usize>::new();
    for target in &targets {
        let before = stack.upstream.requests().len();
        let reply = raw_get(proxy, target, &headers).await;
        *outcomes.entry(reply.status).or_default() += 1;
        let forwarded = stack.upstream.requests()[before..].to_vec();
        let reading = lenient_reading(target);
        assert!(
            reply.status < 500,
            "{target:?}: expected no server error, got {} {}",
            reply.status,
            reply.body
        );
        assert!(
            reply.header("location").is_none(),
            "{target:?}: an API request must not be redirected"
        );
        if reply.status == 200 {
            assert!(
                is_public_reading(&reading),
                "{target:?} was forwarded without a session, but a dashboard may read it as {reading:?}"
            );
            assert_eq!(
                forwarded,
                [format!("GET {target} HTTP/1.1")],
                "{target:?}: a forwarded request must reach the dashboard unchanged"
            );
        } else {
            assert!(
                forwarded.is_empty(),
                "{target:?} got {} but reached the dashboard as {forwarded:?}",
                reply.status
            );
        }
        if reading.starts_with("/scim") {
            assert!(
                forwarded.is_empty(),
                "{target:?} reads as SCIM ({reading:?}) and must never reach the dashboard"
            );
        }
    }
    println!("{} hostile paths: {outcomes:?} by status", targets.len());
}

#[test]
fn lenient_reading_resolves_tricks() {
    let cases = [
        ("/public/../admin", "/admin"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%252e%252e/admin", "/admin"),
        ("/public/%c0%ae%c0%ae/admin", "/admin"),
        ("/public/\u{FF0E}\u{FF0E}/admin", "/admin"),
        ("/public\\..\\admin", "/admin"),
        ("/public/..;/admin", "/admin"),
        ("/public/..%3B/admin", "/admin"),
        ("/public/..%23/admin", "/admin"),
        ("/public/..%20/admin", "/admin"),
        ("/healthz%00/admin", "/healthz"),
        ("//public/x", "/public/x"),
        ("/PUBLIC/x?y", "/public/x"),
    ];
    for (target, expected) in cases {
        assert_eq!(lenient_reading(target), expected, "reading of {target:?}");
    }
}
