//! Identity headers: every client-sent variant is removed, then the verified
//! values are set, on every request that reaches the dashboard.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::session::Identity;

/// Verified user id (the `sub` claim).
pub const USER: &str = "x-forwarded-user";
/// Verified email address.
pub const EMAIL: &str = "x-forwarded-email";
/// Verified groups, comma-separated.
pub const GROUPS: &str = "x-forwarded-groups";
/// Verified `preferred_username`.
pub const PREFERRED_USERNAME: &str = "x-forwarded-preferred-username";
/// Where the groups in [`GROUPS`] come from: `token`, `scim` or `both`.
pub const GROUPS_SOURCE: &str = "x-forwarded-groups-source";

/// Headers that carry identity to the dashboard, or that other auth proxies
/// and dashboards' header login use for it, so a dashboard configured to
/// read any of them cannot be fooled by a client that sends it. The README
/// lists them under "Security defaults".
const OWNED_HEADERS: &[&str] = &[
    USER,
    EMAIL,
    GROUPS,
    PREFERRED_USERNAME,
    GROUPS_SOURCE,
    "x-forwarded-access-token",
    // Apache's REMOTE_USER convention, Authelia, Superset and Airflow.
    "remote-user",
    "remote-email",
    "remote-groups",
    "remote-name",
    // Kubernetes' authenticating-proxy headers and others of that family.
    "x-remote-user",
    "x-remote-email",
    "x-remote-group",
    "x-remote-groups",
    // Generic names that dashboards are often configured to trust.
    "x-user",
    "x-email",
    "x-username",
    "x-user-email",
    "x-authenticated-user",
    "x-authenticated-email",
    "x-authenticated-groups",
    "x-authenticated-userid",
    // OpenSearch Dashboards' proxy authentication.
    "x-proxy-user",
    "x-proxy-roles",
    // Elasticsearch's run-as user.
    "es-security-runas-user",
    // Google Cloud IAP.
    "x-goog-authenticated-user-email",
    "x-goog-authenticated-user-id",
    "x-goog-iap-jwt-assertion",
    // Cloudflare Access.
    "cf-access-authenticated-user-email",
    "cf-access-jwt-assertion",
];

/// Prefixes of identity headers set by other auth proxies and read by
/// dashboards' header login.
const OWNED_PREFIXES: &[&str] = &[
    // oauth2-proxy.
    "x-auth-request-",
    // Grafana's auth proxy (default `X-WEBAUTH-USER`), Gitea and Forgejo.
    "x-webauth-",
    // Kubernetes' authenticating proxy: `X-Remote-Extra-<key>`.
    "x-remote-extra-",
    // AWS Application Load Balancer's OIDC authentication.
    "x-amzn-oidc-",
    // Azure App Service authentication.
    "x-ms-client-principal",
    // Pomerium, authentik and Vouch Proxy.
    "x-pomerium-",
    "x-authentik-",
    "x-vouch-",
];

/// Tells whether `name` is an identity header in any spelling: header names
/// are case-insensitive, and some servers read `_` as `-`.
pub fn is_identity_header(name: &str) -> bool {
    OWNED_HEADERS
        .iter()
        .any(|owned| same_header_name(name, owned))
        || OWNED_PREFIXES
            .iter()
            .any(|prefix| header_name_starts_with(name, prefix))
}

/// Tells whether header `name` is `canonical` (lower case, `-` separated),
/// ignoring ASCII case and reading `_` as `-`. It runs on every header of
/// every request, so it compares bytes instead of building a new string.
pub(crate) fn same_header_name(name: &str, canonical: &str) -> bool {
    name.len() == canonical.len()
        && name
            .bytes()
            .zip(canonical.bytes())
            .all(|(byte, expected)| canonical_byte(byte) == expected)
}

/// Tells whether header `name` starts with `canonical_prefix`, compared as
/// in [`same_header_name`].
pub(crate) fn header_name_starts_with(name: &str, canonical_prefix: &str) -> bool {
    name.get(..canonical_prefix.len())
        .is_some_and(|start| same_header_name(start, canonical_prefix))
}

fn canonical_byte(byte: u8) -> u8 {
    if byte == b'_' {
        b'-'
    } else {
        byte.to_ascii_lowercase()
    }
}

/// Removes every identity header from `headers` and returns the names
/// removed, for a debug log line.
pub fn strip_identity_headers(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_identity_header(name.as_str()))
        .cloned()
        .collect();
    names.dedup();
    names
}

/// Builds the identity headers for `identity`, in order. A value that is not
/// a valid header value (it has control characters) is dropped rather than
/// sent mangled.
pub fn identity_headers(identity: &Identity) -> Vec<(&'static str, HeaderValue)> {
    let values = [
        (USER, Some(identity.subject.clone())),
        (EMAIL, identity.email.clone()),
        (
            GROUPS,
            (!identity.groups.is_empty()).then(|| identity.groups.join(",")),
        ),
        (PREFERRED_USERNAME, identity.preferred_username.clone()),
    ];
    values
        .into_iter()
        .filter_map(|(name, value)| {
            let value = HeaderValue::from_str(&value?).ok()?;
            Some((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_header_spellings() {
        let owned = [
            "X-Forwarded-User",
            "x-forwarded-user",
            "X_FORWARDED_USER",
            "x_forwarded-email",
            "X-Forwarded_Groups",
            "x-forwarded-preferred-username",
            "X_Forwarded_Preferred_Username",
            "X-Forwarded-Groups-Source",
            "x_forwarded_groups_source",
            "x-auth-request-email",
            "X_AUTH_REQUEST_USER",
            "remote-user",
            "Remote_User",
            "x-forwarded-access-token",
            "X-WEBAUTH-USER",
            "x_webauth_email",
            "X-User",
            "x-email",
            "X-Authenticated-User",
            "X_Remote_Email",
            "X-Remote-Group",
            "x-remote-extra-scopes",
            "X-Proxy-User",
            "x-amzn-oidc-identity",
            "X-MS-CLIENT-PRINCIPAL-NAME",
            "x-ms-client-principal",
            "x-goog-authenticated-user-email",
            "Cf-Access-Authenticated-User-Email",
            "X-Pomerium-Claim-Email",
            "x-authentik-username",
            "ES-Security-RunAs-User",
        ];
        for name in owned {
            assert!(is_identity_header(name), "{name} was not recognised");
        }
        let other = [
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-forwarded-users",
            "x-user-agent",
            "x-users",
            "x-request-id",
            "x-remote-addr",
            "forwarded",
            "user-agent",
            "cookie",
        ];
        for name in other {
            assert!(!is_identity_header(name), "{name} was treated as identity");
        }
    }

    #[test]
    fn header_name_comparison() {
        let cases = [
            ("x-forwarded-user", "x-forwarded-user", true),
            ("X_Forwarded_User", "x-forwarded-user", true),
            ("x-forwarded-users", "x-forwarded-user", false),
            ("x-forwarded-use", "x-forwarded-user", false),
            ("x+forwarded-user", "x-forwarded-user", false),
            ("", "", true),
        ];
        for (name, canonical, expected) in cases {
            assert_eq!(
                same_header_name(name, canonical),
                expected,
                "same_header_name({name:?}, {canonical:?})"
            );
        }
        assert!(header_name_starts_with(
            "X_Auth_Request-Email",
            "x-auth-request-"
        ));
        assert!(!header_name_starts_with("x-auth", "x-auth-request-"));
        assert!(!header_name_starts_with(
            "é-auth-request-email",
            "x-auth-request-"
        ));
    }

    #[test]
    fn strip_finds_every_variant() {
        let mut headers = HeaderMap::new();
        for name in [
            "x-forwarded-user",
            "x_forwarded_user",
            "x-forwarded-email",
            "accept",
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("valid name"),
                HeaderValue::from_static("v"),
            );
        }
        headers.append("x-forwarded-user", HeaderValue::from_static("second"));
        let stripped = strip_identity_headers(&headers);
        assert_eq!(stripped.len(), 3, "{stripped:?}");
        assert!(!stripped.iter().any(|n| n == "accept"));
    }

    #[test]
    fn headers_from_identity() {
        let identity = Identity {
            subject: "alice".into(),
            email: Some("alice@example.test".into()),
            preferred_username: None,
            name: Some("Alice".into()),
            groups: vec!["admins".into(), "engineering".into()],
        };
        let headers = identity_headers(&identity);
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(find(USER), Some(HeaderValue::from_static("alice")));
        assert_eq!(
            find(GROUPS),
            Some(HeaderValue::from_static("admins,engineering"))
        );
        assert_eq!(find(PREFERRED_USERNAME), None);
        let bad = Identity {
            subject: "x\ny".into(),
            groups: vec![],
            ..identity
        };
        assert!(identity_headers(&bad).iter().all(|(n, _)| *n != USER));
    }
}
