//! The session cookie codec: a random session id and an HMAC-SHA-256 tag.
//!
//! The cookie value is `v1.<id>.<tag>` in unpadded URL-safe base64, 90
//! bytes whatever the size of the tokens kept server-side. Several keys
//! verify, so keys can be rotated without logging everyone out. The first key
//! signs, and a cookie verified by another key is reported so that the caller
//! can re-issue it under the first.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Length of a session id in bytes (256 bits of randomness).
pub const SESSION_ID_LEN: usize = 32;

const VERSION: &str = "v1";

/// Maximum length of an accepted cookie value. Longer values were not made by this codec.
const MAX_COOKIE_LEN: usize = 128;

/// A random session id. It is the only secret the browser holds.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId([u8; SESSION_ID_LEN]);

impl SessionId {
    /// Generates a fresh id from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SESSION_ID_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SessionId(bytes)
    }

    /// Wraps raw bytes as an id. Only the fuzz targets under `fuzz/` call
    /// this. Real ids come from [`SessionId::generate`].
    #[doc(hidden)]
    pub fn from_bytes(bytes: [u8; SESSION_ID_LEN]) -> Self {
        SessionId(bytes)
    }

    /// Returns the raw bytes of the id.
    pub fn as_bytes(&self) -> &[u8; SESSION_ID_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id is a bearer credential, so debug output never shows it.
        f.write_str("SessionId(..)")
    }
}

/// The outcome of decoding a cookie value.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodedCookie {
    /// Verified by the signing key.
    Current(SessionId),
    /// Verified by an older key; re-issue the cookie under the signing key.
    Rotated(SessionId),
}

impl DecodedCookie {
    /// Returns the session id, whichever key verified it.
    pub fn session_id(&self) -> &SessionId {
        match self {
            DecodedCookie::Current(id) | DecodedCookie::Rotated(id) => id,
        }
    }
}

/// Signs and verifies session cookie values.
#[derive(Clone)]
pub struct CookieCodec {
    keys: Vec<Vec<u8>>,
}

impl CookieCodec {
    /// Creates a codec; `keys[0]` signs and every key verifies. With no keys
    /// a random key is generated, valid for this process only.
    pub fn new(keys: Vec<Vec<u8>>) -> Self {
        if keys.is_empty() {
            let mut key = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            CookieCodec { keys: vec![key] }
        } else {
            CookieCodec { keys }
        }
    }

    /// Encodes `id` as a cookie value signed by the signing key.
    pub fn encode(&self, id: &SessionId) -> String {
        let tag = tag(&self.keys[0], id);
        format!(
            "{VERSION}.{}.{}",
            URL_SAFE_NO_PAD.encode(id.as_bytes()),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Decodes and verifies a cookie value. Anything malformed, truncated or
    /// signed by an unknown key is `None`, never an error: the caller then
    /// treats the request as having no session.
    pub fn decode(&self, value: &str) -> Option<DecodedCookie> {
        if value.len() > MAX_COOKIE_LEN {
            return None;
        }
        let mut parts = value.split('.');
        let (version, id, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if version != VERSION || parts.next().is_some() {
            return None;
        }
        let id: [u8; SESSION_ID_LEN] = URL_SAFE_NO_PAD.decode(id).ok()?.try_into().ok()?;
        let id = SessionId(id);
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let position = self.keys.iter().position(|key| verify(key, &id, &tag))?;
        Some(if position == 0 {
            DecodedCookie::Current(id)
        } else {
            DecodedCookie::Rotated(id)
        })
    }
}

fn mac(key: &[u8], id: &SessionId) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(b"portcullis session v1\0");
    mac.update(id.as_bytes());
    mac
}

fn tag(key: &[u8], id: &SessionId) -> [u8; 32] {
    mac(key, id).finalize().into_bytes().into()
}

fn verify(key: &[u8], id: &SessionId, tag: &[u8]) -> bool {
    // verify_slice compares in constant time.
    mac(key, id).verify_slice(tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codec(keys: &[&str]) -> CookieCodec {
        CookieCodec::new(keys.iter().map(|k| k.as_bytes().to_vec()).collect())
    }

    const K1: &str = "first-key-first-key-first-key-first-key";
    const K2: &str = "second-key-second-key-second-key-second";

    #[test]
    fn round_trip_with_signing_key() {
        let codec = codec(&[K1]);
        let id = SessionId::generate();
        let value = codec.encode(&id);
        assert!(value.len() < 200, "cookie is {} bytes", value.len());
        assert_eq!(codec.decode(&value), Some(DecodedCookie::Current(id)));
    }

    #[test]
    fn older_key_verifies_as_rotated() {
        let id = SessionId::generate();
        let old = codec(&[K1]).encode(&id);
        assert_eq!(
            codec(&[K2, K1]).decode(&old),
            Some(DecodedCookie::Rotated(id))
        );
    }

    #[test]
    fn rejected_values() {
        let signer = codec(&[K1]);
        let id = SessionId::generate();
        let good = signer.encode(&id);
        let foreign = codec(&[K2]).encode(&id);
        let mut flipped_tag = good.clone();
        let last = flipped_tag.pop().expect("non-empty");
        flipped_tag.push(if last == 'A' { 'B' } else { 'A' });
        let other_id = format!(
            "v1.{}.{}",
            URL_SAFE_NO_PAD.encode([7u8; 32]),
            good.rsplit('.').next().expect("has a tag")
        );
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("garbage", "not a cookie".to_owned()),
            ("truncated", good[..good.len() - 5].to_owned()),
            (
                "missing tag",
                good[..good.rfind('.').expect("has a dot")].to_owned(),
            ),
            ("extra part", format!("{good}.x")),
            ("wrong version", good.replacen("v1", "v2", 1)),
            ("unknown key", foreign),
            ("altered tag", flipped_tag),
            ("tag of another id", other_id),
            (
                "short id",
                format!("v1.{}.AAAA", URL_SAFE_NO_PAD.encode([1u8; 16])),
            ),
            ("oversized", format!("{good}{}", "A".repeat(4096))),
            ("non-ascii", "v1.é.é".to_owned()),
        ];
        for (name, value) in cases {
            assert_eq!(signer.decode(&value), None, "case {name:?} was accepted");
        }
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(SessionId::generate(), SessionId::generate());
    }

    #[test]
    fn empty_key_list_generates_a_key() {
        let codec = CookieCodec::new(Vec::new());
        let id = SessionId::generate();
        assert!(codec.decode(&codec.encode(&id)).is_some());
    }

    proptest! {
        #[test]
        fn arbitrary_value_is_rejected(value in any::<String>()) {
            prop_assert_eq!(codec(&[K1]).decode(&value), None);
        }

        #[test]
        fn encoded_id_round_trips(bytes in any::<[u8; SESSION_ID_LEN]>()) {
            let codec = codec(&[K1]);
            let id = SessionId(bytes);
            prop_assert_eq!(codec.decode(&codec.encode(&id)), Some(DecodedCookie::Current(id)));
        }

        #[test]
        fn edited_cookie_is_rejected(
            bytes in any::<[u8; SESSION_ID_LEN]>(),
            position in any::<prop::sample::Index>(),
            replacement in "[A-Za-z0-9_.-]",
        ) {
            let codec = codec(&[K1]);
            let value = codec.encode(&SessionId(bytes));
            let at = position.index(value.len());
            prop_assume!(value[at..].chars().next().map(String::from) != Some(replacement.clone()));
            let edited = format!("{}{}{}", &value[..at], replacement, &value[at + 1..]);
            prop_assert_eq!(codec.decode(&edited), None, "edited {:?} into {:?}", value, edited);
        }
    }
}
