//! Validation of post-login targets (`rd`, and the page first requested).
//!
//! Only same-origin targets are accepted, because anything else turns the
//! login into an open redirect. A target is kept only when it is certainly a
//! path on this origin as every browser parses it; everything else becomes
//! `/`.

use url::Url;

use crate::web::path::normalise_path;

/// Longest accepted target, in bytes. Longer values are dropped rather than
/// stored with the login flow, which bounds the size of each flow record.
const MAX_TARGET_LEN: usize = 1024;

/// Landing path of a login whose requested target is not acceptable.
pub const DEFAULT_TARGET: &str = "/";

/// Returns `target` as a path (with query) on `public_url`'s origin, or `/`
/// when it is not one.
///
/// Accepted: a path starting with a single `/`, or an absolute URL with
/// exactly the origin of `public_url`. Rejected: scheme-relative forms
/// (`//host`, `/\host`), backslashes, control characters and whitespace (raw
/// or percent-encoded, which browsers strip or fold), other schemes, other
/// hosts and ports, and paths under `/oauth2/`, which would loop.
pub fn safe_return_target(target: &str, public_url: &Url) -> String {
    validate_target(target, public_url).unwrap_or_else(|| DEFAULT_TARGET.to_owned())
}

fn validate_target(target: &str, public_url: &Url) -> Option<String> {
    if target.is_empty() || target.len() > MAX_TARGET_LEN {
        return None;
    }
    if !target.bytes().all(|b| b.is_ascii_graphic()) || target.contains('\\') {
        return None;
    }
    let path = if target.starts_with('/') {
        target.to_owned()
    } else {
        same_origin_path(target, public_url)?
    };
    is_plain_path(&path).then_some(path)
}

/// Converts an absolute URL on `public_url`'s origin to its path and query.
fn same_origin_path(target: &str, public_url: &Url) -> Option<String> {
    let url = Url::parse(target).ok()?;
    if url.origin() != public_url.origin() || !url.username().is_empty() || url.password().is_some()
    {
        return None;
    }
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    Some(path)
}

/// Checks that a value starting with `/` can only be read as a path on this
/// origin, and that its path, normalised as requests are, is not a login
/// endpoint.
fn is_plain_path(path: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(path).collect::<Vec<u8>>();
    let starts_like_authority = |bytes: &[u8]| {
        bytes.len() >= 2 && bytes[0] == b'/' && (bytes[1] == b'/' || bytes[1] == b'\\')
    };
    if starts_like_authority(path.as_bytes())
        || starts_like_authority(&decoded)
        || decoded
            .iter()
            .any(|b| b.is_ascii_control() || *b == b'\\' || *b == b' ')
    {
        return false;
    }
    let path_only = path.split(['?', '#']).next().unwrap_or_default();
    match normalise_path(path_only) {
        Ok(normalised) => normalised != "/oauth2" && !normalised.starts_with("/oauth2/"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn public_url() -> Url {
        Url::parse("https://dash.example.com").expect("valid URL")
    }

    #[test]
    fn accepted_targets() {
        let cases = [
            ("/", "/"),
            ("/reports", "/reports"),
            ("/reports?id=7&tab=a", "/reports?id=7&tab=a"),
            ("/a/b/c#frag", "/a/b/c#frag"),
            ("/search?q=%2F%2Fx", "/search?q=%2F%2Fx"),
            ("https://dash.example.com/x?y=1", "/x?y=1"),
            ("https://dash.example.com:443/x", "/x"),
            ("/oauth2x", "/oauth2x"),
        ];
        for (target, expected) in cases {
            assert_eq!(
                safe_return_target(target, &public_url()),
                expected,
                "target {target:?}"
            );
        }
    }

    #[test]
    fn rejected_targets_end_at_root() {
        let long = format!("/{}", "a".repeat(MAX_TARGET_LEN));
        let cases = [
            "",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/%2F/evil.example",
            "/%2fevil.example",
            "/%5Cevil.example",
            "/%5cevil.example",
            "https://evil.example/",
            "http://dash.example.com/",
            "https://dash.example.com:8443/",
            "https://dash.example.com.evil.example/",
            "https://user@dash.example.com/",
            "https://dash.example.com@evil.example/",
            "javascript:alert(1)",
            "data:text/html,x",
            "evil.example",
            " /x",
            "/x y",
            "/\t/evil.example",
            "/%09/evil.example",
            "/%0d%0aSet-Cookie:x=1",
            "/x\r\nLocation: //evil.example",
            "/ünicode",
            "/oauth2/start",
            "/oauth2/sign_out?x=1",
            "/oauth2",
            "/./oauth2/sign_out",
            "/a/../oauth2/sign_out",
            "/oauth2;x/sign_out",
            "//oauth2/sign_out",
            "/%6Fauth2/sign_out",
            "/a/%2e%2e/b",
            "/a%2Fb",
            &long,
        ];
        for target in cases {
            assert_eq!(
                safe_return_target(target, &public_url()),
                DEFAULT_TARGET,
                "target {target:?} was accepted"
            );
        }
    }

    /// Targets built from what open-redirect payloads are made of: slashes,
    /// backslashes, schemes, `@`, ports, encodings and whitespace.
    fn tricky_target() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[/\\\\a-z:.@%0-9?#\\t ]{0,30}",
            "(https?:|javascript:|//|/\\\\|/%2[fF]|/%5[cC]|)[a-z.]{0,12}(:[0-9]{1,5})?(/[a-z%0-9]{0,6}){0,3}",
            "https://dash\\.example\\.com(:443|:8443|\\.evil\\.test|@evil\\.test)?/[a-z/]{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn return_target_stays_on_origin(target in tricky_target()) {
            let public = public_url();
            let result = safe_return_target(&target, &public);
            prop_assert!(result.starts_with('/'), "{result:?} from {target:?}");
            prop_assert!(!result.starts_with("//"), "{result:?} from {target:?}");
            prop_assert!(!result.contains('\\'), "{result:?} from {target:?}");
            prop_assert!(!result.starts_with("/oauth2/"), "{result:?} from {target:?}");
            let joined = public.join(&result).expect("a path joins onto the public URL");
            prop_assert_eq!(joined.origin(), public.origin(), "from {:?}", target);
        }
    }
}
