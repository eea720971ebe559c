//! Forged ID tokens at the callback. The provider fixture spoils the ID
//! token of its token response in one way per run. Each run must end on a
//! sign-in error page with 401, without a session cookie and without
//! reaching the dashboard.

use reqwest::StatusCode;

use crate::support::{Stack, StackOptions};

/// The `IDP_TAMPER_ID_TOKEN` modes of the provider fixture.
const TAMPER_MODES: &[&str] = &[
    "alg-none",
    "foreign-key",
    "claims",
    "audience",
    "issuer",
    "nonce",
    "expired",
    "hs256",
];

#[tokio::test]
async fn forged_id_tokens_are_rejected() {
    for mode in TAMPER_MODES {
        let stack = Stack::start_with_options(StackOptions {
            idp_env: vec![("IDP_TAMPER_ID_TOKEN", (*mode).to_owned())],
            ..StackOptions::default()
        })
        .await;
        let browser = stack.browser();
        let authorization = browser.start_login("/").await;
        let callback = browser.authorize_at_idp(&authorization, "alice").await;
        let response = browser.navigate(&callback).await;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{mode}: expected 401 at the callback, got body:\n{body}\nlog:\n{}",
            stack.portcullis.log()
        );
        assert!(
            body.contains("could not be verified"),
            "{mode}: expected the verification error page, got:\n{body}"
        );
        assert!(
            browser.session_cookie().is_none(),
            "{mode}: a forged ID token must not create a session"
        );
        let dashboard = browser.fetch_json(&stack.proxy_url("/api/data")).await;
        assert_eq!(
            dashboard.status(),
            StatusCode::UNAUTHORIZED,
            "{mode}: the dashboard must still need a session"
        );
    }
    println!("{} forged ID tokens rejected", TAMPER_MODES.len());
}
