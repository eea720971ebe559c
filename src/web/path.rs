//! Request path normalisation: the one spelling of a path that routing
//! rules, the SCIM intercept and the post-login target check all compare.

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
    /// An empty segment (`//`). Routing could drop it, but many servers
    /// read a leading `//` as the start of a host name, so the dashboard
    /// would see another path.
    #[error("the request path contains an empty segment ('//')")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("the request path contains a '.' or '..' segment")]
    DotSegment,
    /// Percent-encoded bytes that are not UTF-8, such as the overlong
    /// `%C0%AE`, which some servers decode to `.`.
    #[error("the request path contains percent-encoded bytes that are not UTF-8")]
    InvalidUtf8,
    /// A character that Unicode normalisation turns into `.`, `/` or `\`,
    /// such as the fullwidth `．`, raw or percent-encoded.
    #[error("the request path contains a character that looks like a dot or a slash")]
    LookAlikeSeparator,
}

/// Characters that NFKC normalisation maps to `.`, `/` or `\`. A server
/// that normalises paths would read them as dot segments or separators.
const LOOK_ALIKE_SEPARATORS: &[char] = &[
    '\u{2024}', // one dot leader
    '\u{FE52}', // small full stop
    '\u{FE68}', // small reverse solidus
    '\u{FF0E}', // fullwidth full stop
    '\u{FF0F}', // fullwidth solidus
    '\u{FF3C}', // fullwidth reverse solidus
];

/// Normalises a request path for classification.
///
/// Some spellings are rejected because an upstream could read them as
/// another path. These are encoded separators, dots, percent signs and
/// control characters, `.` and `..` segments, and raw backslashes and control
/// characters, and empty segments (`//`). Other spellings are normalised.
/// Percent-encoded unreserved characters are decoded and other escapes are
/// upper-cased, and `;` parameters are cut from each segment because some
/// servers ignore them.
pub fn normalise_path(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if raw.contains("//") {
        return Err(PathError::EmptySegment);
    }
    let mut normalised = String::with_capacity(raw.len());
    for segment in raw.split('/').filter(|s| !s.is_empty()) {
        let segment = segment.split(';').next().unwrap_or_default();
        let (decoded, text) = decode_segment(segment)?;
        if is_dot_segment(&text) {
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

/// Tells whether a fully decoded segment is `.` or `..` as a lenient server
/// could read it: cut at a decoded `;`, `?` or `#`, with whitespace and
/// invisible characters around it trimmed.
fn is_dot_segment(text: &str) -> bool {
    let cut = text.split([';', '?', '#']).next().unwrap_or_default();
    let trimmed = cut.trim_matches(|c: char| {
        c.is_whitespace() || matches!(c, '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{FEFF}')
    });
    trimmed == "." || trimmed == ".."
}

/// Decodes one segment. Returns its normalised spelling and its text with
/// every escape decoded.
fn decode_segment(segment: &str) -> Result<(String, String), PathError> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    // Every byte of the segment, with escapes decoded, to check that the
    // escapes form UTF-8 together with the raw characters around them.
    let mut decoded = Vec::with_capacity(segment.len());
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
            decoded.extend_from_slice(&bytes[i..i + c.len_utf8()]);
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
        decoded.push(value);
        i += 3;
    }
    let text = String::from_utf8(decoded).map_err(|_| PathError::InvalidUtf8)?;
    if text.contains(LOOK_ALIKE_SEPARATORS) {
        return Err(PathError::LookAlikeSeparator);
    }
    Ok((out, text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalised_paths() {
        let cases = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
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
            ("//a", PathError::EmptySegment),
            ("/a//b", PathError::EmptySegment),
            ("//static/echo/x", PathError::EmptySegment),
            ("/a/../b", PathError::DotSegment),
            ("/a/./b", PathError::DotSegment),
            ("/..", PathError::DotSegment),
            ("/a/..;x/b", PathError::DotSegment),
            ("/a/..%3B/b", PathError::DotSegment),
            ("/a/..%23/b", PathError::DotSegment),
            ("/a/..%3F/b", PathError::DotSegment),
            ("/a/..%20/b", PathError::DotSegment),
            ("/a/%20..%09/b", PathError::AmbiguousEncoding),
            ("/a/..%C2%A0/b", PathError::DotSegment),
            ("/a/..%E2%80%8B/b", PathError::DotSegment),
            ("/a/.%3Bx/b", PathError::DotSegment),
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
            ("/a/%c0%ae%c0%ae/b", PathError::InvalidUtf8),
            ("/a/%C0%AF", PathError::InvalidUtf8),
            ("/a%e9b", PathError::InvalidUtf8),
            ("/caf%C3", PathError::InvalidUtf8),
            ("/a/\u{FF0E}\u{FF0E}/b", PathError::LookAlikeSeparator),
            ("/a/%EF%BC%8E%EF%BC%8E/b", PathError::LookAlikeSeparator),
            ("/a%EF%BC%8Fb", PathError::LookAlikeSeparator),
            ("/a\u{FF3C}b", PathError::LookAlikeSeparator),
            ("/a\u{2024}\u{2024}", PathError::LookAlikeSeparator),
            ("/a\tb", PathError::ForbiddenCharacter),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalise_path(raw), Err(expected), "path {raw:?}");
        }
    }

    /// Paths built from the characters that matter to normalisation:
    /// separators, dots, `;`, `%` with and without hex digits, and letters.
    fn tricky_path() -> impl Strategy<Value = String> {
        "/([a-zA-Z0-9._~;-]|%[0-9a-fA-F]{2}|%[0-9a-zA-Z]{0,1}|/|\\\\|\\.\\.){0,24}"
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(raw in any::<String>()) {
            let _ = normalise_path(&raw);
        }

        #[test]
        fn normalised_path_is_clean_and_stable(raw in tricky_path()) {
            if let Ok(path) = normalise_path(&raw) {
                prop_assert!(path.starts_with('/'), "{path:?} from {raw:?}");
                prop_assert!(!path.contains("//"), "{path:?} from {raw:?}");
                prop_assert!(!path.contains(';'), "{path:?} from {raw:?}");
                prop_assert!(
                    !path.split('/').any(|segment| segment == "." || segment == ".."),
                    "{path:?} from {raw:?}"
                );
                prop_assert_eq!(normalise_path(&path), Ok(path.clone()), "from {:?}", raw);
            }
        }
    }
}
