//! The `X-Forwarded-*` family the dashboard receives. Only peers listed in
//! `server.trusted_proxies` may describe the original client. From any other
//! peer these headers are replaced by values portcullis has itself: the
//! peer's address and the scheme and host of `server.public_url`.
//!
//! Routing and redirect URIs never read these headers, so a forged one can
//! at worst mislead the dashboard, which this prevents.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use pingora::http::RequestHeader;
use url::Url;

use super::identity::{header_name_starts_with, same_header_name};

const FOR: &str = "x-forwarded-for";
const PROTO: &str = "x-forwarded-proto";
const HOST: &str = "x-forwarded-host";
const PORT: &str = "x-forwarded-port";

/// Headers outside the `x-forwarded-` prefix that carry a client address,
/// a host or a scheme, which servers and frameworks trust when present.
/// Only a trusted proxy may send them.
const CLIENT_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-proxyuser-ip",
    "x-envoy-external-address",
    "x-original-forwarded-for",
    "x-host",
    "x-original-host",
    "x-scheme",
    "x-url-scheme",
    "front-end-https",
];

/// Headers that name a request path other than the one sent, which some
/// frameworks (Symfony, IIS, Zend) route on. portcullis decides on the
/// request path alone, so no peer may send them, trusted or not: an ingress
/// that passes them through from clients would open public paths onto
/// protected ones.
const REWRITE_HEADERS: &[&str] = &[
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-path",
];

/// The trusted proxies and the public address, built once at start.
#[derive(Debug, Clone)]
pub struct ForwardedHeaders {
    trusted: Vec<IpNet>,
    public_proto: HeaderValue,
    public_host: HeaderValue,
    public_port: HeaderValue,
}

impl ForwardedHeaders {
    /// Creates the rules for `trusted` proxies in front of `public_url`.
    pub fn new(trusted: Vec<IpNet>, public_url: &Url) -> Self {
        let host = public_url.host_str().unwrap_or_default();
        let host = match public_url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let port = public_url.port_or_known_default().unwrap_or(80);
        ForwardedHeaders {
            trusted: trusted.into_iter().map(|net| net.trunc()).collect(),
            public_proto: header_value(public_url.scheme()),
            public_host: header_value(&host),
            public_port: header_value(&port.to_string()),
        }
    }

    /// Tells whether `peer` is one of the trusted proxies.
    pub fn is_trusted(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.trusted.iter().any(|net| net.contains(&canonical(ip))))
    }

    /// Returns the original client's address: the peer itself, or behind
    /// trusted proxies the last address in `X-Forwarded-For` that is not one
    /// of them.
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        let peer = peer.map(canonical);
        if !self.is_trusted(peer) {
            return peer;
        }
        let listed: Vec<&str> = headers
            .get_all(FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        for entry in listed.iter().rev() {
            let Ok(ip) = entry.trim().parse::<IpAddr>().map(canonical) else {
                // An entry that is not an address ends the trusted chain.
                return peer;
            };
            if !self.is_trusted(Some(ip)) {
                return Some(ip);
            }
        }
        peer
    }

    /// Rewrites the forwarded headers of a request about to be sent to the
    /// dashboard, which arrived from `peer`.
    pub fn apply(&self, request: &mut RequestHeader, peer: Option<IpAddr>) {
        let trusted = self.is_trusted(peer);
        for name in removed_headers(&request.headers, trusted) {
            request.remove_header(&name);
        }
        if let Some(peer) = peer {
            let mut chain: Vec<String> = request
                .headers
                .get_all(FOR)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .map(str::to_owned)
                .collect();
            chain.push(canonical(peer).to_string());
            let chain = chain.join(", ");
            // Earlier values were joined into `chain`, so one header remains.
            request.remove_header(FOR);
            let _ = request.insert_header(FOR, header_value(&chain));
        }
        for (name, value) in [
            (PROTO, &self.public_proto),
            (HOST, &self.public_host),
            (PORT, &self.public_port),
        ] {
            if !request.headers.contains_key(name) {
                // Static names and values built from a parsed URL are valid.
                let _ = request.insert_header(name, value.clone());
            }
        }
    }

    /// Sets `Host` to the host of `server.public_url` when the client sent
    /// none, as HTTP/1.0 clients may. The request goes to the dashboard as
    /// HTTP/1.1, which requires `Host` (RFC 9112 section 3.2), and the
    /// public host is the one the client reached.
    pub fn set_missing_host(&self, request: &mut RequestHeader) {
        if !request.headers.contains_key(http::header::HOST) {
            // A static name and a value built from a parsed URL are valid.
            let _ = request.insert_header(http::header::HOST, self.public_host.clone());
        }
    }
}

/// Lists the headers to remove: the rewrite headers from every peer, and the
/// whole forwarded family from an untrusted one. From a trusted peer the
/// spellings with `_` go too, because some servers read them as the `-`
/// spelling.
fn removed_headers(headers: &HeaderMap, trusted: bool) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            if REWRITE_HEADERS
                .iter()
                .any(|rewrite| same_header_name(name, rewrite))
            {
                return true;
            }
            let in_family = header_name_starts_with(name, "x-forwarded-")
                || CLIENT_HEADERS
                    .iter()
                    .any(|client| same_header_name(name, client));
            in_family && (!trusted || name.contains('_'))
        })
        .cloned()
        .collect();
    names.dedup();
    names
}

/// Reads an IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`) as IPv4, so
/// an IPv4 block matches a peer on a dual-stack listener.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(trusted: &[&str]) -> ForwardedHeaders {
        let trusted = trusted
            .iter()
            .map(|net| net.parse().expect("a valid CIDR block"))
            .collect();
        ForwardedHeaders::new(
            trusted,
            &Url::parse("https://dash.example.com").expect("a valid URL"),
        )
    }

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut request = RequestHeader::build("GET", b"/", None).expect("a valid request line");
        for (name, value) in headers {
            request
                .append_header(name.to_string(), *value)
                .expect("a valid header");
        }
        request
    }

    fn values(request: &RequestHeader, name: &str) -> Vec<String> {
        request
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("an ASCII value").to_owned())
            .collect()
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("a valid IP address"))
    }

    #[test]
    fn missing_host_set_from_public_url() {
        let rules = rules(&[]);
        let mut without = request(&[]);
        rules.set_missing_host(&mut without);
        assert_eq!(values(&without, "host"), ["dash.example.com"]);

        let mut with = request(&[("Host", "dash.example.com:8443")]);
        rules.set_missing_host(&mut with);
        assert_eq!(
            values(&with, "host"),
            ["dash.example.com:8443"],
            "a client's Host is kept"
        );
    }

    #[test]
    fn untrusted_peer_headers_are_replaced() {
        let mut request = request(&[
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Uri", "/healthz"),
            ("x_forwarded_host", "evil.example"),
            ("Forwarded", "for=1.2.3.4;host=evil.example"),
            ("X-Real-IP", "1.2.3.4"),
            ("X-Original-URL", "/admin"),
            ("X-Forwarded", "for=1.2.3.4"),
            ("Client-IP", "1.2.3.4"),
            ("CF-Connecting-IP", "1.2.3.4"),
            ("X-Original-Host", "evil.example"),
        ]);
        rules(&["10.0.0.0/8"]).apply(&mut request, ip("192.0.2.7"));
        assert_eq!(values(&request, FOR), ["192.0.2.7"]);
        assert_eq!(values(&request, PROTO), ["https"]);
        assert_eq!(values(&request, HOST), ["dash.example.com"]);
        assert_eq!(values(&request, PORT), ["443"]);
        for removed in [
            "x-forwarded-uri",
            "x_forwarded_host",
            "forwarded",
            "x-real-ip",
            "x-original-url",
            "x-forwarded",
            "client-ip",
            "cf-connecting-ip",
            "x-original-host",
        ] {
            assert!(
                values(&request, removed).is_empty(),
                "expected {removed} to be removed from an untrusted peer's request"
            );
        }
    }

    #[test]
    fn trusted_peer_headers_are_kept_and_extended() {
        let mut request = request(&[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-For", "10.1.1.1"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "dash.example.com"),
            ("X-Real-IP", "203.0.113.9"),
            ("x_forwarded_for", "6.6.6.6"),
            ("X-Original-URL", "/admin"),
            ("X-Rewrite-URL", "/admin"),
            ("X-Forwarded-Uri", "/admin"),
        ]);
        rules(&["10.0.0.0/8"]).apply(&mut request, ip("10.2.3.4"));
        assert_eq!(values(&request, FOR), ["203.0.113.9, 10.1.1.1, 10.2.3.4"]);
        assert_eq!(values(&request, PROTO), ["https"]);
        assert_eq!(values(&request, "x-real-ip"), ["203.0.113.9"]);
        assert!(values(&request, "x_forwarded_for").is_empty());
        for rewrite in ["x-original-url", "x-rewrite-url", "x-forwarded-uri"] {
            assert!(
                values(&request, rewrite).is_empty(),
                "expected {rewrite} to be removed even from a trusted peer"
            );
        }
    }

    #[test]
    fn mapped_ipv4_peer_matches_ipv4_block() {
        assert!(rules(&["10.0.0.0/8"]).is_trusted(ip("::ffff:10.0.0.1")));
        assert!(!rules(&["10.0.0.0/8"]).is_trusted(ip("::ffff:11.0.0.1")));
        assert!(!rules(&[]).is_trusted(ip("127.0.0.1")));
        assert!(!rules(&["0.0.0.0/0"]).is_trusted(None));
    }

    #[test]
    fn client_ip_reads_mapped_ipv4_as_ipv4() {
        let rules = rules(&["10.0.0.0/8"]);
        let headers = request(&[]);
        assert_eq!(
            rules.client_ip(&headers.headers, ip("::ffff:192.0.2.1")),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn client_ip_skips_trusted_hops() {
        let rules = rules(&["10.0.0.0/8"]);
        let headers = request(&[("X-Forwarded-For", "203.0.113.9, 198.51.100.1, 10.0.0.5")]);
        assert_eq!(
            rules.client_ip(&headers.headers, ip("10.0.0.1")),
            ip("198.51.100.1")
        );
        assert_eq!(
            rules.client_ip(&headers.headers, ip("192.0.2.1")),
            ip("192.0.2.1"),
            "an untrusted peer's X-Forwarded-For must be ignored"
        );
        let garbage = request(&[("X-Forwarded-For", "not-an-ip")]);
        assert_eq!(
            rules.client_ip(&garbage.headers, ip("10.0.0.1")),
            ip("10.0.0.1")
        );
    }
}
