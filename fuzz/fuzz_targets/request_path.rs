//! Request path normalisation. It never panics. An accepted path starts
//! with `/` and has no empty segment, no `;` parameter and no segment that
//! reads as `.` or `..`, raw or percent-decoded. It also contains no
//! encoded `/` or `\`, and normalising it again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;
use portcullis::web::path::normalise_path;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = normalise_path(raw) else {
        return;
    };
    assert!(path.starts_with('/'), "{path:?} from {raw:?}");
    assert!(
        !path.contains("//"),
        "{path:?} from {raw:?} has an empty segment"
    );
    assert!(
        !path.contains(';'),
        "{path:?} from {raw:?} keeps a parameter"
    );
    for segment in path.split('/') {
        let decoded = percent_decode_str(segment).decode_utf8_lossy();
        assert!(
            !matches!(decoded.as_ref(), "." | ".."),
            "{path:?} from {raw:?} has the dot segment {segment:?}"
        );
        assert!(
            !decoded.contains(['/', '\\']),
            "{path:?} from {raw:?} has an encoded separator in {segment:?}"
        );
    }
    assert_eq!(normalise_path(&path), Ok(path.clone()), "from {raw:?}");
});
