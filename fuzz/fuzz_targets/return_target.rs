//! Post-login targets (`rd`). Whatever the request carries, the result is a
//! path on the public URL's origin: it starts with a single `/`, has no
//! backslash, is not under `/oauth2/`, and joined onto the public URL it
//! stays on that origin.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis::auth::redirect::safe_return_target;
use url::Url;

static PUBLIC_URL: LazyLock<Url> =
    LazyLock::new(|| Url::parse("https://dash.example.com").expect("valid URL"));

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let result = safe_return_target(target, &PUBLIC_URL);
    assert!(result.starts_with('/'), "{result:?} from {target:?}");
    assert!(!result.starts_with("//"), "{result:?} from {target:?}");
    assert!(!result.contains('\\'), "{result:?} from {target:?}");
    assert!(
        !result.starts_with("/oauth2/"),
        "{result:?} from {target:?}"
    );
    let joined = match PUBLIC_URL.join(&result) {
        Ok(joined) => joined,
        Err(error) => panic!("{result:?} from {target:?} does not join: {error}"),
    };
    assert_eq!(
        joined.origin(),
        PUBLIC_URL.origin(),
        "{result:?} from {target:?}"
    );
});
