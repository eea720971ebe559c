//! Request classification: which job a request belongs to, decided on one
//! normalised path, and whether an unauthenticated request is a browser
//! navigation (redirect to login) or an API call (401).

use http::{HeaderMap, Method};

pub use crate::web::path::{normalise_path, PathError};

/// The job a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/oauth2/start`: start a login.
    LoginStart,
    /// `/oauth2/callback`: the provider's redirect back.
    Callback,
    /// `/oauth2/sign_out`: end the session.
    SignOut,
    /// `/oauth2/backchannel_logout`: the provider's logout token.
    BackchannelLogout,
    /// Any other `/oauth2/` path: not a portcullis endpoint, so it gets 404.
    UnknownOAuth2,
    /// `/scim/v2` and below, in any letter case: the SCIM endpoint, never
    /// forwarded to the dashboard.
    Scim,
    /// Everything else: the dashboard, behind a session.
    Upstream,
    /// A dashboard path listed in `access.public_paths`, forwarded without
    /// a session. [`classify`] never returns it, because the list is
    /// configuration; the proxy turns `Upstream` into `Public`.
    Public,
}

impl Route {
    /// Returns a short label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Route::LoginStart => "login",
            Route::Callback => "callback",
            Route::SignOut => "sign_out",
            Route::BackchannelLogout => "backchannel_logout",
            Route::UnknownOAuth2 => "oauth2_unknown",
            Route::Scim => "scim",
            Route::Upstream => "upstream",
            Route::Public => "public",
        }
    }
}

/// The SCIM base path. It is matched ignoring case, because an upstream on a
/// case-insensitive file system or framework would read `/SCIM/V2` as the
/// same path.
pub const SCIM_PREFIX: &str = "/scim/v2";

/// Returns the part of a normalised SCIM path below [`SCIM_PREFIX`], such as
/// `/Users/7`, or `None` when the path is not a SCIM path.
pub fn scim_subpath(path: &str) -> Option<&str> {
    let prefix = path.get(..SCIM_PREFIX.len())?;
    let rest = &path[SCIM_PREFIX.len()..];
    (prefix.eq_ignore_ascii_case(SCIM_PREFIX) && (rest.is_empty() || rest.starts_with('/')))
        .then_some(rest)
}

/// Classifies a normalised path.
pub fn classify(path: &str) -> Route {
    if scim_subpath(path).is_some() {
        return Route::Scim;
    }
    match path {
        "/oauth2/start" => Route::LoginStart,
        "/oauth2/callback" => Route::Callback,
        "/oauth2/sign_out" => Route::SignOut,
        "/oauth2/backchannel_logout" => Route::BackchannelLogout,
        _ if path == "/oauth2" || path.starts_with("/oauth2/") => Route::UnknownOAuth2,
        _ => Route::Upstream,
    }
}

/// Tells whether an unauthenticated request is a top-level browser
/// navigation that should be redirected to login. Fetch and XHR calls get
/// 401 instead, because a redirect to another origin breaks them.
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD) && !is_api_client(headers)
}

/// Tells whether a request of any method comes from fetch, XHR or a
/// non-browser client that wants JSON rather than pages. Such a request
/// names a fetch mode other than `navigate`, carries `X-Requested-With`, or
/// accepts a JSON media type but not HTML. JSON is `application/json` or
/// any `application/*+json`, such as SCIM's `application/scim+json`.
pub fn is_api_client(headers: &HeaderMap) -> bool {
    if headers.contains_key("x-requested-with") {
        return true;
    }
    if let Some(mode) = headers.get("sec-fetch-mode") {
        if mode.as_bytes() != b"navigate" {
            return true;
        }
    }
    let mut accepts_json = false;
    let mut accepts_html = false;
    for media_range in accepted_media_ranges(headers) {
        accepts_json |= is_json_media_type(&media_range);
        accepts_html |= media_range == "text/html";
    }
    accepts_json && !accepts_html
}

/// Returns the media ranges of every `Accept` header, lower case and
/// without their parameters (`q` and others).
fn accepted_media_ranges(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|range| {
            let media_type = range.split(';').next().unwrap_or_default();
            media_type.trim().to_ascii_lowercase()
        })
}

/// Tells whether a lower-case media type is JSON: `application/json`, or
/// `application/<name>+json` with the structured syntax suffix of RFC 6839.
fn is_json_media_type(media_type: &str) -> bool {
    let Some(subtype) = media_type.strip_prefix("application/") else {
        return false;
    };
    subtype == "json" || (subtype.len() > "+json".len() && subtype.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let cases = [
            ("/oauth2/start", Route::LoginStart),
            ("/oauth2/callback", Route::Callback),
            ("/oauth2/sign_out", Route::SignOut),
            ("/oauth2/backchannel_logout", Route::BackchannelLogout),
            ("/oauth2/other", Route::UnknownOAuth2),
            ("/oauth2", Route::UnknownOAuth2),
            ("/oauth2/callback/", Route::UnknownOAuth2),
            ("/oauth2x", Route::Upstream),
            ("/", Route::Upstream),
            ("/livez", Route::Upstream),
            ("/readyz", Route::Upstream),
            ("/OAuth2/callback", Route::Upstream),
            ("/scim/v2", Route::Scim),
            ("/scim/v2/", Route::Scim),
            ("/scim/v2/Users", Route::Scim),
            ("/SCIM/V2/Users/1", Route::Scim),
            ("/Scim/v2/.search", Route::Scim),
            ("/scim/v2x", Route::Upstream),
            ("/scim/v3/Users", Route::Upstream),
            ("/scim", Route::Upstream),
        ];
        for (path, expected) in cases {
            assert_eq!(classify(path), expected, "path {path:?}");
        }
    }

    #[test]
    fn classification_of_raw_spellings() {
        let cases = [
            ("/oauth2/%63allback", Route::Callback),
            ("/oauth2/callback;jsessionid=1", Route::Callback),
            ("/scim/v2;x=1/Users", Route::Scim),
            ("/%73cim/v2/Users", Route::Scim),
            ("/sc%69m/V2/Users", Route::Scim),
            ("/scim;a/v2;b/Users", Route::Scim),
        ];
        for (raw, expected) in cases {
            let path = normalise_path(raw).expect("valid path");
            assert_eq!(classify(&path), expected, "path {raw:?}");
        }
    }

    #[test]
    fn scim_subpaths() {
        let cases = [
            ("/scim/v2", Some("")),
            ("/scim/v2/", Some("/")),
            ("/SCIM/v2/Users/7", Some("/Users/7")),
            ("/scim/v2x", None),
            ("/scim", None),
            ("/", None),
        ];
        for (path, expected) in cases {
            assert_eq!(scim_subpath(path), expected, "path {path:?}");
        }
    }

    #[test]
    fn navigation_detection() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
        let cases: [Case; 19] = [
            ("GET", &[], true),
            (
                "GET",
                &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
                true,
            ),
            ("GET", &[("sec-fetch-mode", "navigate")], true),
            ("HEAD", &[], true),
            ("GET", &[("accept", "application/json")], false),
            (
                "GET",
                &[("accept", "application/json, text/plain, */*")],
                false,
            ),
            ("GET", &[("x-requested-with", "XMLHttpRequest")], false),
            ("GET", &[("sec-fetch-mode", "cors")], false),
            (
                "GET",
                &[("sec-fetch-mode", "no-cors"), ("accept", "text/html")],
                false,
            ),
            ("POST", &[("accept", "text/html")], false),
            ("GET", &[("accept", "application/scim+json")], false),
            ("GET", &[("accept", "application/vnd.api+json")], false),
            (
                "GET",
                &[("accept", "Application/Problem+JSON; charset=utf-8")],
                false,
            ),
            ("GET", &[("accept", "application/json;q=0.9")], false),
            (
                "GET",
                &[("accept", "text/plain"), ("accept", "application/json")],
                false,
            ),
            ("GET", &[("accept", "application/+json")], true),
            ("GET", &[("accept", "application/jsonp")], true),
            ("GET", &[("accept", "text/json")], true),
            (
                "GET",
                &[("accept", "text/html, application/vnd.api+json")],
                true,
            ),
        ];
        for (method, headers, expected) in cases {
            let mut map = HeaderMap::new();
            for (name, value) in headers {
                map.append(
                    http::HeaderName::from_static(name),
                    value.parse().expect("valid header value"),
                );
            }
            let method = Method::from_bytes(method.as_bytes()).expect("valid method");
            assert_eq!(
                is_navigation(&method, &map),
                expected,
                "{method} with {headers:?}"
            );
        }
    }
}
