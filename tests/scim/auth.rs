//! Bearer-token authentication: every failure is a SCIM 401 with
//! `WWW-Authenticate: Bearer …`, on every endpoint, and changes nothing.

use http::header::WWW_AUTHENTICATE;
use http::Method;
use portcullis::tokens::TokenRecord;
use serde_json::json;

use crate::support::{both_backends, Backend, Call, Fixture, USER};

both_backends!(
    rejected_credentials,
    revoked_token_rejected,
    rejected_writes_change_nothing,
    bearer_scheme_ignores_case,
);

/// Sends `call` and checks the 401 response.
async fn expect_unauthorized(fixture: &Fixture, call: Call, case: &str) {
    let request = format!("{case}: {}", call.describe());
    let reply = fixture.send(call).await;
    reply.expect_error(401, None, &request);
    let challenge = reply.header(&WWW_AUTHENTICATE).unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer "),
        "{request}: expected a Bearer challenge, got {challenge:?}"
    );
}

async fn rejected_credentials(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let (unknown, _) = TokenRecord::generate("never stored");
    let unknown = unknown.expose_secret().to_owned();
    let valid = format!("Bearer {}", fixture.token);
    // (case, Authorization header values)
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("missing", vec![]),
        (
            "Basic scheme",
            vec!["Basic dXNlcjpwYXNzd29yZA==".to_owned()],
        ),
        ("Bearer alone", vec!["Bearer".to_owned()]),
        ("Bearer and a space", vec!["Bearer ".to_owned()]),
        ("token without scheme", vec![fixture.token.clone()]),
        ("Okta's non-token", vec!["non-token".to_owned()]),
        ("malformed token", vec!["Bearer wxt_short".to_owned()]),
        (
            "two tokens in one header",
            vec![format!("{valid} {}", fixture.token)],
        ),
        (
            "two Authorization headers",
            vec![valid.clone(), valid.clone()],
        ),
        ("unknown token", vec![format!("Bearer {unknown}")]),
        (
            "token with a changed character",
            vec![format!(
                "Bearer {}x",
                &fixture.token[..fixture.token.len() - 1]
            )],
        ),
    ];
    let targets = [
        (Method::GET, "/Users"),
        (Method::GET, "/Groups?filter=displayName%20eq%20%22x%22"),
        (Method::GET, "/Users/00919288221112222"),
        (Method::GET, "/ServiceProviderConfig"),
        (Method::GET, "/Schemas"),
        (Method::DELETE, "/Users/00919288221112222"),
    ];
    for (case, values) in &cases {
        for (method, target) in &targets {
            let mut call = fixture
                .call(method.clone(), target)
                .without("authorization");
            for value in values {
                call = call.header("authorization", value);
            }
            expect_unauthorized(&fixture, call, case).await;
        }
    }
}

async fn revoked_token_rejected(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let (plaintext, record) = TokenRecord::generate("to be revoked");
    fixture
        .directory
        .insert_token(&record)
        .await
        .expect("the second token is stored");
    let header = format!("Bearer {}", plaintext.expose_secret());
    let before = fixture
        .send(
            fixture
                .call(Method::GET, "/Users")
                .without("authorization")
                .header("authorization", &header),
        )
        .await;
    before.expect_status(200, "GET /Users with the token before revocation");

    let revoked = fixture
        .directory
        .revoke_token(&record.id)
        .await
        .expect("the token is revoked");
    assert!(revoked, "expected revoke_token to find the token");
    let call = fixture
        .call(Method::GET, "/Users")
        .without("authorization")
        .header("authorization", &header);
    expect_unauthorized(&fixture, call, "revoked token").await;

    let other = fixture.get("/Users").await;
    other.expect_status(200, "GET /Users with the token that was not revoked");
}

async fn rejected_writes_change_nothing(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let user = fixture.user("kept@example.com").await;
    let before = fixture.snapshot().await;
    let calls = [
        fixture
            .call(Method::POST, "/Users")
            .json(&json!({ "schemas": [USER], "userName": "intruder@example.com" })),
        fixture
            .call(Method::PUT, &format!("/Users/{user}"))
            .json(&json!({ "schemas": [USER], "userName": "kept@example.com", "active": false })),
        fixture
            .call(Method::PATCH, &format!("/Users/{user}"))
            .json(&json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "replace", "value": { "active": false } }]
            })),
        fixture.call(Method::DELETE, &format!("/Users/{user}")),
    ];
    for call in calls {
        let call = call.without("authorization");
        expect_unauthorized(&fixture, call, "no token").await;
    }
    assert_eq!(
        fixture.snapshot().await,
        before,
        "expected unauthenticated writes to change nothing"
    );
}

async fn bearer_scheme_ignores_case(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let call = fixture
            .call(Method::GET, "/Users")
            .without("authorization")
            .header("authorization", &format!("{scheme} {}", fixture.token));
        let reply = fixture.send(call).await;
        reply.expect_status(200, &format!("GET /Users with scheme {scheme:?}"));
    }
}
