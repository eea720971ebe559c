//! Cookie key rotation without a mass logout. A cookie signed by an older
//! key still works and is re-issued under the new signing key, and a cookie
//! whose key was dropped leads to a clean login. SIGHUP puts new keys from
//! the key file in use without a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, COOKIE};
use reqwest::{Response, StatusCode};

use crate::support::browser::NAVIGATION_ACCEPT;
use crate::support::fixtures::CLIENT_SECRET;
use crate::support::portcullis::COOKIE_KEY;
use crate::support::{set_cookies_named, SessionStore, Stack, StackOptions, SESSION_COOKIE};

/// A second signing key, as an operator would add when rotating.
const NEW_KEY: &str = "e2e-rotated-cookie-key-abcdefghijklmnopqrstu";

/// Time allowed for portcullis to log that it reloaded its secrets.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("HTTP client builds")
}

/// Requests `/echo/keys` with only the session cookie `session`.
async fn get_with_session(stack: &Stack, session: &str, accept: &str) -> Response {
    let url = stack.proxy_url("/echo/keys");
    plain_client()
        .get(url.clone())
        .header(ACCEPT, accept)
        .header(COOKIE, format!("{SESSION_COOKIE}={session}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"))
}

/// Returns the value of the one session cookie that `response` sets.
fn reissued_value(response: &Response) -> String {
    let set = set_cookies_named(response.headers(), SESSION_COOKIE);
    assert_eq!(
        set.len(),
        1,
        "expected one re-issued session cookie, got {set:?}"
    );
    let pair = set[0].split(';').next().unwrap_or_default();
    pair.split_once('=')
        .map(|(_, v)| v.to_owned())
        .expect("name=value")
}

/// Asserts that `session` no longer works: a navigation starts a login and
/// an API call gets 401, never a 500.
async fn assert_signed_out(stack: &Stack, session: &str, case: &str) {
    let navigation = get_with_session(stack, session, NAVIGATION_ACCEPT).await;
    assert_eq!(
        navigation.status(),
        StatusCode::FOUND,
        "{case}: navigation goes to login"
    );
    let api = get_with_session(stack, session, "application/json").await;
    assert_eq!(
        api.status(),
        StatusCode::UNAUTHORIZED,
        "{case}: API call gets 401"
    );
}

#[tokio::test]
async fn rotated_key_keeps_session() {
    let mut stack = Stack::start_with(SessionStore::Redis).await;
    let alice = stack.signed_in("alice").await;
    let old = alice.session_cookie().expect("signed in");

    let both = format!("{NEW_KEY},{COOKIE_KEY}");
    stack
        .portcullis
        .restart_with_env(&[("PORTCULLIS_SESSION__COOKIE_KEYS", &both)])
        .await;
    let response = get_with_session(&stack, &old, "application/json").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "old-key cookie accepted after rotation"
    );
    let new = reissued_value(&response);
    assert_ne!(new, old, "cookie re-issued under the new key");

    stack
        .portcullis
        .restart_with_env(&[("PORTCULLIS_SESSION__COOKIE_KEYS", NEW_KEY)])
        .await;
    let response = get_with_session(&stack, &new, "application/json").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "re-issued cookie works with the new key alone"
    );
    assert!(
        set_cookies_named(response.headers(), SESSION_COOKIE).is_empty(),
        "a current cookie is not re-issued"
    );
    assert_signed_out(&stack, &old, "cookie of the dropped key").await;
}

/// Sends SIGHUP and waits until portcullis has logged `reloads` reloads.
async fn reload_and_wait(stack: &Stack, reloads: usize) {
    stack.portcullis.reload_secrets();
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        let log = stack.portcullis.log();
        if log.matches("secrets reloaded after SIGHUP").count() >= reloads {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "portcullis did not log reload {reloads} within {RELOAD_TIMEOUT:?}; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn write_keys(path: &Path, keys: &[&str]) {
    std::fs::write(path, keys.join("\n") + "\n")
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

#[tokio::test]
async fn sighup_reloads_cookie_keys() {
    let keys_dir = tempfile::tempdir().expect("a temporary folder can be created");
    let keys_file = keys_dir.path().join("cookie-keys");
    write_keys(&keys_file, &[COOKIE_KEY]);
    let stack = Stack::start_with_options(StackOptions {
        env: vec![
            ("PORTCULLIS_SESSION__COOKIE_KEYS", String::new()),
            (
                "PORTCULLIS_SESSION__COOKIE_KEYS_FILE",
                keys_file.display().to_string(),
            ),
        ],
        ..StackOptions::default()
    })
    .await;
    let alice = stack.signed_in("alice").await;
    let old = alice.session_cookie().expect("signed in");

    write_keys(&keys_file, &[NEW_KEY, COOKIE_KEY]);
    reload_and_wait(&stack, 1).await;
    let response = get_with_session(&stack, &old, "application/json").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "session kept across the reload"
    );
    let new = reissued_value(&response);

    write_keys(&keys_file, &[NEW_KEY]);
    reload_and_wait(&stack, 2).await;
    let response = get_with_session(&stack, &new, "application/json").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "re-issued cookie works after the second reload"
    );
    assert_signed_out(&stack, &old, "cookie of the key dropped by SIGHUP").await;
}

/// Waits until portcullis has logged `message` at least once.
async fn wait_for_log(stack: &Stack, message: &str) {
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        let log = stack.portcullis.log();
        if log.contains(message) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "portcullis did not log {message:?} within {RELOAD_TIMEOUT:?}; log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn failed_reload_changes_nothing() {
    let secrets_dir = tempfile::tempdir().expect("a temporary folder can be created");
    let keys_file = secrets_dir.path().join("cookie-keys");
    let secret_file = secrets_dir.path().join("client-secret");
    write_keys(&keys_file, &[COOKIE_KEY]);
    std::fs::write(&secret_file, CLIENT_SECRET).expect("client secret file is written");
    let keys_path = keys_file.display().to_string();
    let env = [
        ("PORTCULLIS_SESSION__COOKIE_KEYS", ""),
        ("PORTCULLIS_SESSION__COOKIE_KEYS_FILE", keys_path.as_str()),
    ];
    let mut stack = Stack::start_with_env(&env).await;
    // The test configuration names the client secret inline, and an
    // override cannot remove a key, so the file is edited instead.
    let config_path = stack.portcullis.config_path.clone();
    let config = std::fs::read_to_string(&config_path).expect("configuration is readable");
    let inline = format!("client_secret = \"{CLIENT_SECRET}\"");
    assert!(
        config.contains(&inline),
        "expected {inline} in the test configuration"
    );
    let from_file = format!(
        "client_secret_file = {:?}",
        secret_file.display().to_string()
    );
    std::fs::write(&config_path, config.replace(&inline, &from_file))
        .expect("configuration is written");
    stack.portcullis.restart_with_env(&env).await;
    let alice = stack.signed_in("alice").await;
    let session = alice.session_cookie().expect("signed in");

    // A new client secret that the provider does not know, and a key file
    // emptied by mistake: the reload must fail as a whole.
    std::fs::write(&secret_file, "rotated-client-secret").expect("client secret file is written");
    std::fs::write(&keys_file, "\n").expect("key file is written");
    stack.portcullis.reload_secrets();
    wait_for_log(&stack, "cannot reload secrets after SIGHUP").await;

    let log = stack.portcullis.log();
    assert!(
        log.contains("session.cookie_keys_file"),
        "expected the error to name session.cookie_keys_file; log:\n{log}"
    );
    assert!(
        !log.contains("secrets reloaded after SIGHUP"),
        "expected no success message; log:\n{log}"
    );
    assert!(
        !log.contains("client secret replaced"),
        "expected the client secret to stay; log:\n{log}"
    );
    let response = get_with_session(&stack, &session, "application/json").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "expected the session signed with the old key to work"
    );
    // The provider accepts only the old secret, so a login that completes
    // shows that it is still in use.
    stack.signed_in("bob").await;
}
