//! The request id: one per request, in the access line, in `X-Request-Id`
//! on the request to the dashboard and on every response to the client.
//!
//! A trusted proxy's `X-Request-Id` is kept when it is a plain token, so
//! the ingress's log line (the NGINX Ingress Controller sends
//! `X-Request-ID`) and portcullis's access line carry the same id. Any other client-sent value
//! is replaced, because a client could otherwise pick ids that collide with
//! other requests' in the logs.

use http::{HeaderMap, HeaderName};
use pingora::http::RequestHeader;

use super::identity::same_header_name;

/// The header that carries the request id both ways.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Maximum length of a request id kept from a trusted proxy. UUIDs have 36
/// characters and nginx's `$request_id` 32, so 128 leaves room for prefixes.
pub const MAX_LEN: usize = 128;

/// Returns a new random id of 16 hex digits.
pub fn generate() -> String {
    use rand::Rng;
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}

/// Returns the id that a trusted proxy sent, when `trusted` is set and the
/// request carries exactly one `X-Request-Id` that [`is_valid`] accepts.
pub fn forwarded(headers: &HeaderMap, trusted: bool) -> Option<String> {
    if !trusted {
        return None;
    }
    let mut values = headers.get_all(&HEADER).iter();
    let value = values.next()?;
    if values.next().is_some() || !is_valid(value.as_bytes()) {
        return None;
    }
    // is_valid admits ASCII only, so the bytes are UTF-8.
    value.to_str().ok().map(str::to_owned)
}

/// Tells whether `value` is 1 to [`MAX_LEN`] characters of `A-Z`, `a-z`,
/// `0-9`, `.`, `_` and `-`: the characters of UUIDs, hex ids and the ids of
/// common ingress controllers, and nothing that needs quoting in a log.
pub fn is_valid(value: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&value.len())
        && value
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}

/// Replaces every client-sent `X-Request-Id`, in any case and with `_` in
/// place of `-`, by `id`.
pub fn set_on_request(request: &mut RequestHeader, id: &str) {
    let sent: Vec<HeaderName> = request
        .headers
        .keys()
        .filter(|name| same_header_name(name.as_str(), HEADER.as_str()))
        .cloned()
        .collect();
    for name in sent {
        request.remove_header(&name);
    }
    // A valid generated or forwarded id is a valid header value.
    let _ = request.insert_header(HEADER, id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(HEADER, value.parse().expect("a valid header value"));
        }
        headers
    }

    #[test]
    fn valid_ids() {
        let cases: [(&str, &[u8], bool); 9] = [
            ("nginx hex id", b"5d41402abc4b2a76b9719d911017c592", true),
            ("UUID", b"0f8fad5b-d9cb-469f-a165-70867728950e", true),
            ("dots and underscores", b"lb_1.req-42", true),
            ("one character", b"a", true),
            ("longest", &[b'a'; MAX_LEN], true),
            ("empty", b"", false),
            ("too long", &[b'a'; MAX_LEN + 1], false),
            ("space", b"abc def", false),
            ("quote and equals", b"id=\"x\"", false),
        ];
        for (case, value, expected) in cases {
            assert_eq!(is_valid(value), expected, "case {case}");
        }
    }

    #[test]
    fn forwarded_only_from_trusted_peer() {
        let one = headers(&["ingress-7"]);
        assert_eq!(forwarded(&one, true).as_deref(), Some("ingress-7"));
        assert_eq!(forwarded(&one, false), None, "untrusted peer");
        assert_eq!(forwarded(&headers(&[]), true), None, "no header");
        assert_eq!(
            forwarded(&headers(&["a", "b"]), true),
            None,
            "repeated header"
        );
        assert_eq!(forwarded(&headers(&["a b"]), true), None, "invalid value");
    }

    #[test]
    fn set_on_request_replaces_every_spelling() {
        let mut request = RequestHeader::build("GET", b"/", None).expect("a valid request line");
        for (name, value) in [
            ("X-Request-Id", "client-1"),
            ("x-request-id", "client-2"),
            ("x_request_id", "client-3"),
        ] {
            request
                .append_header(name.to_owned(), value)
                .expect("a valid header");
        }
        set_on_request(&mut request, "0123456789abcdef");
        let values: Vec<(&str, &str)> = request
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().expect("an ASCII value")))
            .collect();
        assert_eq!(values, [("x-request-id", "0123456789abcdef")]);
    }
}
