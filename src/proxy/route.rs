//! Request classification: which job a request belongs to, decided on one
//! normalised path, and whether an unauthenticated request is a browser
//! navigation (redirect to login) or an API call (401).

use http::{HeaderMap, Method};

/// The job a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/oauth2/start`: start a login.
    LoginStart,
    /// `/oauth2/callback`: the provider's redirect back.
    Callback,
    /// `/oauth2/sign_out`: end the session.
    SignOut,
    /// Any other `/oauth2/` path: not a portcullis endpoint, so it gets 404.
    UnknownOAuth2,
    /// Everything else: the dashboard, behind a session.
    Upstream,
}

impl Route {
    /// Returns a short label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Route::LoginStart => "login",
            Route::Callback => "callback",
            Route::SignOut => "sign_out",
            Route::UnknownOAuth2 => "oauth2_unknown",
            Route::Upstream => "upstream",
        }
    }
}

/// Reasons for rejecting a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/` (absolute-form and `*` targets).
    #[error("the request path must start with '/'")]
    NotAbsolute,
    /// A raw control character, space or backslash.
    #[error("the request path contains a control character, space or backslash")]
    ForbiddenCharacter,
    /// A `%` not followed by two hex digits.
    #[error("the request path contains an invalid percent-encoding")]
    BadPercentEncoding,
    /// An encoded `/`, `\`, `.`, `%` or control character, which servers
    /// decode differently.
    #[error(
        "the request path contains an encoded separator, dot, percent sign or control character"
    )]
    AmbiguousEncoding,
    /// A `.` or `..` segment.
    #[error("the request path contains a '.' or '..' segment")]
    DotSegment,
}

/// Normalises a request path for classification.
///
/// Some spellings are rejected because an upstream could read them as
/// another path. These are encoded separators, dots, percent signs and
/// control characters, `.` and `..` segments, and raw backslashes and control
/// characters. Other spellings are normalised. Percent-encoded unreserved
/// characters are decoded and other escapes are upper-cased. Empty segments
/// (`//`) are dropped, and `;` parameters are cut from each segment because
/// some servers ignore them.
pub fn normalise_path(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let mut normalised = String::with_capacity(raw.len());
    for segment in raw.split('/').filter(|s| !s.is_empty()) {
        let segment = segment.split(';').next().unwrap_or_default();
        let decoded = decode_segment(segment)?;
        if decoded == "." || decoded == ".." {
            return Err(PathError::DotSegment);
        }
        if decoded.is_empty() {
            continue;
        }
        normalised.push('/');
        normalised.push_str(&decoded);
    }
    if normalised.is_empty() || raw.ends_with('/') {
        normalised.push('/');
    }
    Ok(normalised)
}

fn decode_segment(segment: &str) -> Result<String, PathError> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte.is_ascii_control() || byte == b' ' || byte == b'\\' {
            return Err(PathError::ForbiddenCharacter);
        }
        if byte != b'%' {
            // Non-ASCII bytes arrive only inside valid UTF-8 here, because
            // the path is a &str.
            let c = segment[i..]
                .chars()
                .next()
                .ok_or(PathError::ForbiddenCharacter)?;
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .ok_or(PathError::BadPercentEncoding)?;
        let value = std::str::from_utf8(hex)
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or(PathError::BadPercentEncoding)?;
        if matches!(value, b'/' | b'\\' | b'.' | b'%') || value.is_ascii_control() {
            return Err(PathError::AmbiguousEncoding);
        }
        if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'_' | b'~') {
            out.push(char::from(value));
        } else {
            out.push_str(&format!("%{value:02X}"));
        }
        i += 3;
    }
    Ok(out)
}

/// Classifies a normalised path.
pub fn classify(path: &str) -> Route {
    match path {
        "/oauth2/start" => Route::LoginStart,
        "/oauth2/callback" => Route::Callback,
        "/oauth2/sign_out" => Route::SignOut,
        _ if path == "/oauth2" || path.starts_with("/oauth2/") => Route::UnknownOAuth2,
        _ => Route::Upstream,
    }
}

/// Tells whether an unauthenticated request is a top-level browser
/// navigation that should be redirected to login. Fetch and XHR calls get
/// 401 instead, because a redirect to another origin breaks them.
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    if headers.contains_key("x-requested-with") {
        return false;
    }
    if let Some(mode) = headers.get("sec-fetch-mode") {
        if mode.as_bytes() != b"navigate" {
            return false;
        }
    }
    let accept = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    !accept.contains("application/json") || accept.contains("text/html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_paths() {
        let cases = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/%61%62c", "/abc"),
            ("/a%20b", "/a%20b"),
            ("/a%2cb", "/a%2Cb"),
            ("/oauth2/callback;x=1", "/oauth2/callback"),
            ("/a;p/b", "/a/b"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/café", "/café"),
            ("/%7Euser", "/~user"),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalise_path(raw), Ok(expected.to_owned()), "path {raw:?}");
        }
    }

    #[test]
    fn rejected_paths() {
        let cases = [
            ("", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
            ("http://x/a", PathError::NotAbsolute),
            ("/a/../b", PathError::DotSegment),
            ("/a/./b", PathError::DotSegment),
            ("/..", PathError::DotSegment),
            ("/a/..;x/b", PathError::DotSegment),
            ("/a/%2e%2e/b", PathError::AmbiguousEncoding),
            ("/a/%2E/b", PathError::AmbiguousEncoding),
            ("/a%2fb", PathError::AmbiguousEncoding),
            ("/a%2Fb", PathError::AmbiguousEncoding),
            ("/a%5cb", PathError::AmbiguousEncoding),
            ("/a%00b", PathError::AmbiguousEncoding),
            ("/a%252fb", PathError::AmbiguousEncoding),
            ("/a%0ab", PathError::AmbiguousEncoding),
            ("/a%", PathError::BadPercentEncoding),
            ("/a%2", PathError::BadPercentEncoding),
            ("/a%zz", PathError::BadPercentEncoding),
            ("/a\\b", PathError::ForbiddenCharacter),
            ("/a\tb", PathError::ForbiddenCharacter),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalise_path(raw), Err(expected), "path {raw:?}");
        }
    }

    #[test]
    fn classification() {
        let cases = [
            ("/oauth2/start", Route::LoginStart),
            ("/oauth2/callback", Route::Callback),
            ("/oauth2/sign_out", Route::SignOut),
            ("/oauth2/other", Route::UnknownOAuth2),
            ("/oauth2", Route::UnknownOAuth2),
            ("/oauth2/callback/", Route::UnknownOAuth2),
            ("/oauth2x", Route::Upstream),
            ("/", Route::Upstream),
            ("/livez", Route::Upstream),
            ("/readyz", Route::Upstream),
            ("/OAuth2/callback", Route::Upstream),
        ];
        for (path, expected) in cases {
            assert_eq!(classify(path), expected, "path {path:?}");
        }
    }

    #[test]
    fn classification_of_raw_spellings() {
        let cases = [
            ("//oauth2//callback", Route::Callback),
            ("/oauth2/%63allback", Route::Callback),
            ("/oauth2/callback;jsessionid=1", Route::Callback),
        ];
        for (raw, expected) in cases {
            let path = normalise_path(raw).expect("valid path");
            assert_eq!(classify(&path), expected, "path {raw:?}");
        }
    }

    #[test]
    fn navigation_detection() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
        let cases: [Case; 10] = [
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
