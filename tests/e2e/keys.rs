//! The provider's signing keys: a provider that restarts with a new key (and
//! key id) keeps logins working through the same running portcullis, and
//! tokens with made-up key ids reload the keys at most once per cooldown.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::{StatusCode, Url};

use portcullis::auth::{Provider, ProviderSettings};

use crate::support::fixtures::{Idp, CLIENT_ID, CLIENT_SECRET};
use crate::support::{Echo, Stack};

/// Tokens with made-up key ids sent at once in the flood test.
const BOGUS_TOKENS: usize = 200;

#[tokio::test]
async fn provider_key_rotation_keeps_login() {
    let mut stack = Stack::start().await;
    let alice = stack.signed_in("alice").await;

    stack.idp.restart().await;

    let bob = stack.browser();
    let landing = bob.login("bob", "/echo/after-rotation").await;
    let echo = Echo::read(landing).await;
    assert_eq!(
        echo.single("x-forwarded-user"),
        "bob",
        "expected a login after the provider's key rotation to succeed"
    );
    let log = stack.portcullis.log();
    assert!(
        log.contains("signing key not in the cached JWKS; reloading"),
        "expected portcullis to reload the keys on the unknown key id; log:\n{log}"
    );
    let response = alice
        .fetch_json(&stack.proxy_url("/echo/still-signed-in"))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "expected a session made before the rotation to keep working"
    );
}

/// Builds a compact JWS whose header names `kid` and whose signature is garbage.
fn token_with_kid(kid: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#));
    let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"x"}"#);
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

fn provider_for(idp: &Idp, cooldown: Duration) -> Provider {
    let callback = Url::parse("http://127.0.0.1:9/oauth2/callback").expect("valid URL");
    Provider::new(ProviderSettings {
        issuer: idp.issuer.as_str().trim_end_matches('/').to_owned(),
        client_id: CLIENT_ID.to_owned(),
        client_secret: CLIENT_SECRET.to_owned(),
        redirect_uri: callback.clone(),
        post_logout_redirect_uri: callback,
        scopes: vec!["openid".to_owned()],
        require_email_verified: true,
        clock_leeway: Duration::from_secs(60),
        http_timeout: Duration::from_secs(5),
        jwks_refetch_cooldown: cooldown,
        ca_certificates: Vec::new(),
    })
    .expect("the provider client builds")
}

#[tokio::test]
async fn unknown_kid_flood_refetches_once() {
    let dir = tempfile::tempdir().expect("a temporary folder can be created");
    let origin = Url::parse("http://127.0.0.1:9/").expect("valid URL");
    let idp = Idp::start_with_env(dir.path(), &origin, &[("IDP_TEST_STATS", "1")]).await;
    let provider = Arc::new(provider_for(&idp, Duration::from_secs(30)));
    provider.reload().await.expect("discovery succeeds");
    let before = idp.stats().await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..BOGUS_TOKENS {
        let provider = provider.clone();
        tasks.spawn(async move {
            provider
                .verify_signed_token(&token_with_kid(&format!("bogus-{i}")))
                .await
        });
    }
    let mut accepted = 0;
    while let Some(result) = tasks.join_next().await {
        if result.expect("verification task completes").is_ok() {
            accepted += 1;
        }
    }
    let after = idp.stats().await;

    assert_eq!(accepted, 0, "expected every bogus token to be rejected");
    assert_eq!(
        provider.key_refetches(),
        1,
        "expected one key reload for {BOGUS_TOKENS} unknown key ids within the cooldown"
    );
    assert!(
        after.jwks - before.jwks <= 1,
        "expected at most one JWKS request at the provider, got {}",
        after.jwks - before.jwks
    );
    assert!(
        after.discovery - before.discovery <= 1,
        "expected at most one discovery request at the provider, got {}",
        after.discovery - before.discovery
    );
    assert_eq!(
        after.token, before.token,
        "expected no token endpoint request while checking signatures"
    );
}
