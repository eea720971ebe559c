//! The dashboard's response head on its way to the client: its hop-by-hop
//! headers are removed, and an HTTP/1.0 client gets a body framing it can
//! read. Pingora writes `Connection` itself, from the client connection's
//! keep-alive state, and frames the body from `Transfer-Encoding` and
//! `Content-Length` as they leave `response_filter`.

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderName, Method, StatusCode, Version};
use pingora::http::ResponseHeader;

/// Hop-by-hop headers that no `Connection` header need name: `Keep-Alive`
/// (RFC 9112 appendix C.2.2) and `Proxy-Connection`, which old clients and
/// servers send in its place.
const ALWAYS_HOP_BY_HOP: [&str; 2] = ["keep-alive", "proxy-connection"];

/// Removes the hop-by-hop headers of the dashboard's response (RFC 9110
/// section 7.6.1): `Connection`, `Keep-Alive`, `Proxy-Connection` and every
/// header that `Connection` names. They describe the connection between portcullis
/// and the dashboard, so a client reading them would follow the
/// dashboard's `Keep-Alive: timeout=5` rather than portcullis's own.
///
/// The framing headers stay even when named, because Pingora frames the
/// body from them. A `101 Switching Protocols` keeps `Connection` and
/// `Upgrade`, which the client needs to finish the WebSocket handshake.
pub fn remove_hop_by_hop(response: &mut ResponseHeader) {
    let upgrade = response.status == StatusCode::SWITCHING_PROTOCOLS;
    for name in connection_options(response) {
        let framing = name == CONTENT_LENGTH || name == TRANSFER_ENCODING;
        let handshake = upgrade && (name == UPGRADE || name == CONNECTION);
        if !framing && !handshake {
            response.remove_header(&name);
        }
    }
    for name in ALWAYS_HOP_BY_HOP {
        response.remove_header(name);
    }
    if !upgrade {
        // Pingora writes its own, for the client's connection.
        response.remove_header(&CONNECTION);
    }
}

/// Returns the header names listed in the `Connection` headers, such as
/// `keep-alive` or `x-upstream-hop`. Options that are not valid header names
/// name no header and are skipped.
fn connection_options(response: &ResponseHeader) -> Vec<HeaderName> {
    response
        .headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&byte| byte == b','))
        .filter_map(|option| HeaderName::from_bytes(option.trim_ascii()).ok())
        .collect()
}

/// The framing of a response body sent to an HTTP/1.0 client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http10Framing {
    /// `Content-Length` frames it, or there is no body: the connection may
    /// stay open.
    Unchanged,
    /// It ends when the connection closes, so keep-alive must be off before
    /// Pingora writes `Connection`.
    UntilClose,
}

/// Makes the response readable for an HTTP/1.0 client, which cannot read
/// chunked coding. A server must not send `Transfer-Encoding` in a response
/// to an HTTP/1.0 request (RFC 9112 section 6.1), and Pingora 0.9 adds
/// `Transfer-Encoding: chunked` to every upstream response without a
/// `Content-Length`. Without both headers Pingora writes the body as it
/// comes and ends it by closing the connection, which the caller must allow.
pub fn frame_for_http10(
    request_version: Version,
    request_method: &Method,
    response: &mut ResponseHeader,
) -> Http10Framing {
    if request_version != Version::HTTP_10 {
        return Http10Framing::Unchanged;
    }
    if response.headers.contains_key(TRANSFER_ENCODING) {
        response.remove_header(&TRANSFER_ENCODING);
        // A Content-Length beside Transfer-Encoding does not count (RFC 9112
        // section 6.3), so it cannot frame the decoded body either.
        response.remove_header(&CONTENT_LENGTH);
    }
    let status = response.status;
    let has_body = request_method != Method::HEAD
        && !status.is_informational()
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED;
    if has_body && !response.headers.contains_key(CONTENT_LENGTH) {
        Http10Framing::UntilClose
    } else {
        Http10Framing::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut response = ResponseHeader::build(status, None).expect("valid status");
        for (name, value) in headers {
            response
                .append_header(name.to_string(), *value)
                .expect("valid header");
        }
        response
    }

    fn names(response: &ResponseHeader) -> Vec<String> {
        let mut names: Vec<String> = response
            .headers
            .keys()
            .map(|name| name.as_str().to_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn hop_by_hop_headers_removed() {
        type Case<'a> = (&'a str, u16, &'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: [Case; 7] = [
            (
                "Keep-Alive without Connection",
                200,
                &[("Keep-Alive", "timeout=5"), ("Content-Type", "text/plain")],
                &["content-type"],
            ),
            (
                "Keep-Alive beside Connection: close",
                200,
                &[("Connection", "close"), ("Keep-Alive", "timeout=5")],
                &[],
            ),
            (
                "headers named by Connection, in any case",
                200,
                &[
                    ("Connection", "keep-alive, X-Upstream-Hop"),
                    ("Connection", "x-other-hop"),
                    ("x-upstream-hop", "1"),
                    ("X-Other-Hop", "2"),
                    ("X-End-To-End", "3"),
                ],
                &["x-end-to-end"],
            ),
            (
                "Proxy-Connection",
                200,
                &[("Proxy-Connection", "keep-alive"), ("Content-Length", "0")],
                &["content-length"],
            ),
            (
                "framing headers stay when named",
                200,
                &[
                    ("Connection", "Content-Length, Transfer-Encoding"),
                    ("Content-Length", "4"),
                ],
                &["content-length"],
            ),
            (
                "101 keeps the handshake",
                101,
                &[
                    ("Connection", "Upgrade, X-Upstream-Hop"),
                    ("Upgrade", "websocket"),
                    ("X-Upstream-Hop", "1"),
                    ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                ],
                &["connection", "sec-websocket-accept", "upgrade"],
            ),
            (
                "Upgrade of a 200 is hop-by-hop",
                200,
                &[("Connection", "Upgrade"), ("Upgrade", "h2c")],
                &[],
            ),
        ];
        for (name, status, headers, expected) in cases {
            let mut response = response(status, headers);
            remove_hop_by_hop(&mut response);
            assert_eq!(names(&response), expected, "case {name}");
        }
    }

    #[test]
    fn http10_framing() {
        type Case<'a> = (
            &'a str,
            Version,
            Method,
            u16,
            &'a [(&'a str, &'a str)],
            Http10Framing,
            &'a [&'a str],
        );
        let chunked: &[(&str, &str)] = &[("Transfer-Encoding", "chunked")];
        let cases: [Case; 7] = [
            (
                "chunked to HTTP/1.0",
                Version::HTTP_10,
                Method::GET,
                200,
                chunked,
                Http10Framing::UntilClose,
                &[],
            ),
            (
                "chunked with Content-Length to HTTP/1.0",
                Version::HTTP_10,
                Method::GET,
                200,
                &[("Transfer-Encoding", "chunked"), ("Content-Length", "9")],
                Http10Framing::UntilClose,
                &[],
            ),
            (
                "Content-Length to HTTP/1.0",
                Version::HTTP_10,
                Method::GET,
                200,
                &[("Content-Length", "9")],
                Http10Framing::Unchanged,
                &["content-length"],
            ),
            (
                "HEAD to HTTP/1.0",
                Version::HTTP_10,
                Method::HEAD,
                200,
                chunked,
                Http10Framing::Unchanged,
                &[],
            ),
            (
                "304 to HTTP/1.0",
                Version::HTTP_10,
                Method::GET,
                304,
                &[],
                Http10Framing::Unchanged,
                &[],
            ),
            (
                "no framing header to HTTP/1.0",
                Version::HTTP_10,
                Method::POST,
                200,
                &[],
                Http10Framing::UntilClose,
                &[],
            ),
            (
                "chunked to HTTP/1.1",
                Version::HTTP_11,
                Method::GET,
                200,
                chunked,
                Http10Framing::Unchanged,
                &["transfer-encoding"],
            ),
        ];
        for (name, version, method, status, headers, framing, remaining) in cases {
            let mut response = response(status, headers);
            assert_eq!(
                frame_for_http10(version, &method, &mut response),
                framing,
                "case {name}"
            );
            assert_eq!(names(&response), remaining, "case {name}: headers left");
        }
    }
}
