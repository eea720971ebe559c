//! Reading the `Cookie` request header and writing `Set-Cookie` values.

use http::HeaderMap;

/// Returns every value of the cookie `name` across all `Cookie` headers, in
/// order. Browsers can send two cookies with one name (say, one host-only and
/// one for a parent domain), so callers try each value instead of the first.
///
/// Headers are read as bytes, because browsers send other cookies' values in
/// UTF-8; such a cookie must not hide the session cookie beside it.
pub fn cookie_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|value| cookie_pairs(value.as_bytes()))
        .filter(|(key, _)| *key == name.as_bytes())
        .filter_map(|(_, value)| std::str::from_utf8(value).ok())
        .map(|value| value.trim_matches('"'))
        .collect()
}

/// Splits a `Cookie` header into trimmed name and value pairs; a pair
/// without `=` has an empty value.
fn cookie_pairs(line: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    line.split(|byte| *byte == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|byte| *byte == b'=') {
            Some(at) => (pair[..at].trim_ascii(), pair[at + 1..].trim_ascii()),
            None => (pair, &pair[pair.len()..]),
        })
}

/// Rewrites the `Cookie` headers without the cookies named in `names`, and
/// removes the header when nothing is left. Returns whether anything was
/// removed. Other cookies are kept byte for byte, UTF-8 values included.
pub fn remove_cookies(headers: &mut HeaderMap, names: &[&str]) -> bool {
    let mut removed = false;
    let mut kept: Vec<&[u8]> = Vec::new();
    for value in headers.get_all(http::header::COOKIE) {
        for pair in value
            .as_bytes()
            .split(|byte| *byte == b';')
            .map(<[u8]>::trim_ascii)
            .filter(|pair| !pair.is_empty())
        {
            let key = pair
                .iter()
                .position(|byte| *byte == b'=')
                .map_or(pair, |at| pair[..at].trim_ascii());
            if names.iter().any(|name| name.as_bytes() == key) {
                removed = true;
            } else {
                kept.push(pair);
            }
        }
    }
    if !removed {
        return false;
    }
    let joined = kept.join(&b"; "[..]);
    headers.remove(http::header::COOKIE);
    if !joined.is_empty() {
        if let Ok(value) = http::HeaderValue::from_bytes(&joined) {
            headers.insert(http::header::COOKIE, value);
        }
    }
    true
}

/// Attributes of a cookie that portcullis sets.
#[derive(Debug, Clone)]
pub struct CookieAttributes<'a> {
    /// `Path`.
    pub path: &'a str,
    /// `Max-Age` in seconds; `None` makes a browser-session cookie.
    pub max_age: Option<u64>,
    /// `Secure`.
    pub secure: bool,
}

/// Builds a `Set-Cookie` value: always `HttpOnly` and `SameSite=Lax`, so
/// scripts cannot read it and it still travels on the top-level redirect back
/// from the provider.
pub fn set_cookie(name: &str, value: &str, attributes: &CookieAttributes<'_>) -> String {
    let mut cookie = format!("{name}={value}; Path={}", attributes.path);
    if let Some(max_age) = attributes.max_age {
        cookie.push_str(&format!("; Max-Age={max_age}"));
    }
    cookie.push_str("; HttpOnly; SameSite=Lax");
    if attributes.secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// Builds a `Set-Cookie` value that deletes the cookie `name` at `path`.
pub fn clear_cookie(name: &str, path: &str, secure: bool) -> String {
    let mut cookie =
        format!("{name}=; Path={path}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax");
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for cookie in cookies {
            map.append(
                http::header::COOKIE,
                cookie.parse().expect("valid header value"),
            );
        }
        map
    }

    #[test]
    fn values_across_headers_and_duplicates() {
        let map = headers(&["a=1; sess=x", "sess=y;b=2", "sess=\"z\""]);
        assert_eq!(cookie_values(&map, "sess"), ["x", "y", "z"]);
        assert_eq!(cookie_values(&map, "a"), ["1"]);
        assert!(cookie_values(&map, "missing").is_empty());
        assert!(cookie_values(&map, "ses").is_empty());
    }

    #[test]
    fn utf8_cookie_does_not_hide_session() {
        let mut map = HeaderMap::new();
        map.append(
            http::header::COOKIE,
            http::HeaderValue::from_bytes("sess=x; theme=d\u{e9}j\u{e0}".as_bytes())
                .expect("a header value may hold UTF-8 bytes"),
        );
        assert_eq!(cookie_values(&map, "sess"), ["x"]);
        assert!(remove_cookies(&mut map, &["sess"]));
        let left: Vec<&[u8]> = map
            .get_all(http::header::COOKIE)
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect();
        assert_eq!(left, ["theme=d\u{e9}j\u{e0}".as_bytes()]);
    }

    #[test]
    fn remove_cookies_cases() {
        let cases: [(&[&str], Option<&str>); 6] = [
            (&["sess=1"], None),
            (&["a=1; sess=2; b=3"], Some("a=1; b=3")),
            (&["a=1", "sess=2", "b=3"], Some("a=1; b=3")),
            (&["sess=1; sess_login=2; sess=3"], None),
            (&["a=1;sess=2;;c"], Some("a=1; c")),
            (&["session=1; sess2=2"], Some("session=1; sess2=2")),
        ];
        for (input, expected) in cases {
            let mut map = headers(input);
            remove_cookies(&mut map, &["sess", "sess_login"]);
            let left: Vec<_> = map
                .get_all(http::header::COOKIE)
                .iter()
                .map(|v| v.to_str().expect("ascii"))
                .collect();
            let expected: Vec<&str> = expected.into_iter().collect();
            assert_eq!(left, expected, "input {input:?}");
        }
    }

    #[test]
    fn set_cookie_flags() {
        let attributes = CookieAttributes {
            path: "/",
            max_age: Some(60),
            secure: true,
        };
        assert_eq!(
            set_cookie("s", "v", &attributes),
            "s=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        let insecure = CookieAttributes {
            secure: false,
            max_age: None,
            ..attributes
        };
        assert_eq!(
            set_cookie("s", "v", &insecure),
            "s=v; Path=/; HttpOnly; SameSite=Lax"
        );
        assert!(clear_cookie("s", "/", false).contains("Max-Age=0"));
    }
}
