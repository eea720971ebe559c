//! The session cookie codec. Decoding any value never panics, and a value
//! that verifies is exactly the encoding of the id it carries, so no other
//! spelling of a cookie is accepted. Encoding an id and decoding the result
//! returns that id, under the signing key and under a rotated one.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis::session::cookie::SESSION_ID_LEN;
use portcullis::session::{CookieCodec, DecodedCookie, SessionId};

const SIGNING_KEY: &[u8] = b"fuzz-signing-key-fuzz-signing-key";
const OLD_KEY: &[u8] = b"fuzz-old-key-fuzz-old-key-fuzz-old";

/// A codec that signs with `SIGNING_KEY`.
static CURRENT: LazyLock<CookieCodec> =
    LazyLock::new(|| CookieCodec::new(vec![SIGNING_KEY.to_vec()]));
/// A codec that signs with `OLD_KEY`.
static OLD: LazyLock<CookieCodec> = LazyLock::new(|| CookieCodec::new(vec![OLD_KEY.to_vec()]));
/// A codec that signs with `SIGNING_KEY` and still verifies `OLD_KEY`.
static ROTATED: LazyLock<CookieCodec> =
    LazyLock::new(|| CookieCodec::new(vec![SIGNING_KEY.to_vec(), OLD_KEY.to_vec()]));

fuzz_target!(|data: &[u8]| {
    if let Some(bytes) = data.first_chunk::<SESSION_ID_LEN>() {
        check_round_trip(SessionId::from_bytes(*bytes));
    }
    if let Ok(value) = std::str::from_utf8(data) {
        check_decode(&CURRENT, value);
        check_decode(&ROTATED, value);
    }
});

fn check_round_trip(id: SessionId) {
    let value = CURRENT.encode(&id);
    assert_eq!(
        CURRENT.decode(&value),
        Some(DecodedCookie::Current(id.clone()))
    );
    assert_eq!(
        ROTATED.decode(&value),
        Some(DecodedCookie::Current(id.clone()))
    );
    let old_value = OLD.encode(&id);
    assert_eq!(
        ROTATED.decode(&old_value),
        Some(DecodedCookie::Rotated(id.clone()))
    );
    assert_eq!(
        CURRENT.decode(&old_value),
        None,
        "a cookie signed by an unknown key verified"
    );
}

fn check_decode(codec: &CookieCodec, value: &str) {
    let Some(decoded) = codec.decode(value) else {
        return;
    };
    let reencoded = match &decoded {
        DecodedCookie::Current(id) => CURRENT.encode(id),
        DecodedCookie::Rotated(id) => OLD.encode(id),
    };
    assert_eq!(reencoded, value, "a non-canonical cookie verified");
}
