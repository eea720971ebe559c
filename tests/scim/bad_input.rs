//! Malformed requests: bodies that are not JSON objects, attributes of the
//! wrong type, media types other than JSON, and invalid PATCH messages.
//! Each gets a 4xx SCIM error and leaves the directory as it was.

use http::Method;
use serde_json::json;

use crate::support::{both_backends, Backend, Fixture, GROUP, PATCH_OP, USER};

both_backends!(
    malformed_user_bodies,
    malformed_group_bodies,
    scalar_for_list_rejected,
    malformed_patch_bodies,
    content_types,
    duplicate_external_id_rejected,
);

/// A User's `externalId` is unique, compared exactly, because logins are
/// matched against it. A Group may share it.
async fn duplicate_external_id_rejected(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let with_external_id = |user_name: &str, external_id: &str| json!({ "schemas": [USER], "userName": user_name, "externalId": external_id });
    fixture
        .create_user(with_external_id("alice@example.com", "00u1"))
        .await;
    let carol = fixture
        .create_user(with_external_id("carol@example.com", "00U1"))
        .await;
    let before = fixture.snapshot().await;

    let writes = [
        (
            "POST a second User with externalId 00u1",
            fixture
                .post("/Users", &with_external_id("bob@example.com", "00u1"))
                .await,
        ),
        (
            "PUT carol with alice's externalId",
            fixture
                .put(
                    &format!("/Users/{carol}"),
                    &with_external_id("carol@example.com", "00u1"),
                )
                .await,
        ),
        (
            "PATCH carol's externalId to alice's",
            fixture
                .patch(
                    &format!("/Users/{carol}"),
                    json!([{"op": "replace", "path": "externalId", "value": "00u1"}]),
                )
                .await,
        ),
    ];
    for (request, reply) in &writes {
        reply.expect_error(409, Some("uniqueness"), request);
        assert!(
            reply.body["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains("externalId")),
            "{request}: expected the detail to name externalId, got {}",
            reply.body
        );
    }
    assert_eq!(
        fixture.snapshot().await,
        before,
        "expected the rejected writes to leave the directory unchanged"
    );
    fixture
        .post(
            "/Groups",
            &json!({ "schemas": [GROUP], "displayName": "Admins", "externalId": "00u1" }),
        )
        .await
        .expect_status(201, "POST a Group with a User's externalId");
}

async fn malformed_user_bodies(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let user = fixture.user("existing@example.com").await;
    let before = fixture.snapshot().await;

    let user_name_number = json!({ "schemas": [USER], "userName": 42 }).to_string();
    let active_maybe =
        json!({ "schemas": [USER], "userName": "x@example.com", "active": "maybe" }).to_string();
    let name_string =
        json!({ "schemas": [USER], "userName": "x@example.com", "name": "X" }).to_string();
    let missing_user_name = json!({ "schemas": [USER], "displayName": "Nobody" }).to_string();
    let empty_user_name = json!({ "schemas": [USER], "userName": "  " }).to_string();
    let null_user_name = json!({ "schemas": [USER], "userName": null }).to_string();

    // (case, body, status, scimType)
    let cases: Vec<(&str, &[u8], u16, &str)> = vec![
        ("not JSON", b"userName=x", 400, "invalidSyntax"),
        (
            "truncated JSON",
            b"{\"userName\": \"x\"",
            400,
            "invalidSyntax",
        ),
        (
            "JSON array",
            b"[{\"userName\": \"x@example.com\"}]",
            400,
            "invalidSyntax",
        ),
        ("JSON string", b"\"x@example.com\"", 400, "invalidSyntax"),
        ("JSON null", b"null", 400, "invalidSyntax"),
        ("empty body", b"", 400, "invalidSyntax"),
        (
            "userName as a number",
            user_name_number.as_bytes(),
            400,
            "invalidValue",
        ),
        (
            "active as \"maybe\"",
            active_maybe.as_bytes(),
            400,
            "invalidValue",
        ),
        (
            "name as a string",
            name_string.as_bytes(),
            400,
            "invalidValue",
        ),
        (
            "missing userName",
            missing_user_name.as_bytes(),
            400,
            "invalidValue",
        ),
        (
            "blank userName",
            empty_user_name.as_bytes(),
            400,
            "invalidValue",
        ),
        (
            "null userName",
            null_user_name.as_bytes(),
            400,
            "invalidValue",
        ),
    ];
    for (case, body, status, scim_type) in cases {
        for (method, target) in [
            (Method::POST, "/Users".to_owned()),
            (Method::PUT, format!("/Users/{user}")),
        ] {
            let request = format!("{method} {target} with {case}");
            let reply = fixture
                .send(fixture.call(method.clone(), &target).raw_body(body))
                .await;
            reply.expect_error(status, Some(scim_type), &request);
            assert_eq!(
                fixture.snapshot().await,
                before,
                "{request}: expected the directory unchanged"
            );
        }
    }
}

async fn malformed_group_bodies(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let user = fixture.user("member@example.com").await;
    let group = fixture.group("Existing", &[&user]).await;
    let before = fixture.snapshot().await;
    let cases = [
        (
            "member that is no user",
            json!({ "schemas": [GROUP], "displayName": "G",
                    "members": [{ "value": "00919288221112222" }] }),
        ),
        (
            "member value as a number",
            json!({ "schemas": [GROUP], "displayName": "G", "members": [{ "value": 7 }] }),
        ),
        (
            "missing displayName",
            json!({ "schemas": [GROUP], "members": [] }),
        ),
        (
            "displayName as a list",
            json!({ "schemas": [GROUP], "displayName": ["G"] }),
        ),
    ];
    for (case, body) in cases {
        for (method, target) in [
            (Method::POST, "/Groups".to_owned()),
            (Method::PUT, format!("/Groups/{group}")),
        ] {
            let request = format!("{method} {target} with {case}");
            let reply = fixture
                .send(fixture.call(method.clone(), &target).json(&body))
                .await;
            reply.expect_error(400, None, &request);
            assert_eq!(
                fixture.snapshot().await,
                before,
                "{request}: expected the directory unchanged"
            );
        }
    }
    let duplicate = fixture
        .post(
            "/Groups",
            &json!({ "schemas": [GROUP], "displayName": "EXISTING" }),
        )
        .await;
    duplicate.expect_error(
        409,
        Some("uniqueness"),
        "POST a case variant of a group name",
    );
}

/// A POST or PUT body must give a multi-valued attribute as a JSON array
/// (RFC 7643 §2.4). The handler reads a single value as a list of one
/// instead, so a string `emails` is stored as `[{"value": …}]`.
async fn scalar_for_list_rejected(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let user = fixture.user("member@example.com").await;
    let group = fixture.group("Existing", &[&user]).await;
    let before = fixture.snapshot().await;
    let cases = [
        (
            "emails as a string",
            Method::POST,
            "/Users".to_owned(),
            json!({ "schemas": [USER], "userName": "x@example.com", "emails": "x@example.com" }),
        ),
        (
            "emails as an object",
            Method::PUT,
            format!("/Users/{user}"),
            json!({ "schemas": [USER], "userName": "member@example.com",
                    "emails": { "value": "x@example.com" } }),
        ),
        (
            "members as an object",
            Method::POST,
            "/Groups".to_owned(),
            json!({ "schemas": [GROUP], "displayName": "G", "members": { "value": user } }),
        ),
        (
            "members as a string",
            Method::PUT,
            format!("/Groups/{group}"),
            json!({ "schemas": [GROUP], "displayName": "Existing", "members": user }),
        ),
    ];
    let mut accepted = Vec::new();
    for (case, method, target, body) in cases {
        let reply = fixture
            .send(fixture.call(method.clone(), &target).json(&body))
            .await;
        if reply.status.as_u16() != 400 {
            accepted.push(format!(
                "{method} with {case}: {} {}",
                reply.status, reply.body
            ));
        }
    }
    assert!(
        accepted.is_empty(),
        "expected 400 for a single value where a list is required, got:\n{}",
        accepted.join("\n")
    );
    assert_eq!(
        fixture.snapshot().await,
        before,
        "expected the rejected bodies to change nothing"
    );
}

async fn malformed_patch_bodies(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let user = fixture.user("patched@example.com").await;
    fixture.user("other@example.com").await;
    let group = fixture.group("Patched", &[&user]).await;
    let before = fixture.snapshot().await;
    let user_target = format!("/Users/{user}");
    let group_target = format!("/Groups/{group}");
    // (case, target, body, scimType)
    let cases = [
        (
            "no schemas",
            &user_target,
            json!({ "Operations": [{ "op": "replace", "path": "active", "value": false }] }),
            Some("invalidSyntax"),
        ),
        (
            "no Operations",
            &user_target,
            json!({ "schemas": [PATCH_OP] }),
            None,
        ),
        (
            "Operations as an object",
            &user_target,
            json!({ "schemas": [PATCH_OP], "Operations": { "op": "replace" } }),
            None,
        ),
        (
            "unknown op",
            &user_target,
            json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "jump", "path": "active", "value": false }] }),
            None,
        ),
        (
            "remove without a path",
            &user_target,
            json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "remove" }] }),
            Some("noTarget"),
        ),
        (
            "invalid path",
            &user_target,
            json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "path": "emails[type eq", "value": "x" }] }),
            Some("invalidPath"),
        ),
        (
            "active as \"maybe\"",
            &user_target,
            json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "path": "active", "value": "maybe" }] }),
            Some("invalidValue"),
        ),
        (
            "userName removed",
            &user_target,
            json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "remove", "path": "userName" }] }),
            None,
        ),
        (
            "userName taken by another user",
            &user_target,
            json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "replace", "path": "userName", "value": "OTHER@example.com" }] }),
            Some("uniqueness"),
        ),
        (
            "second operation fails",
            &user_target,
            json!({ "schemas": [PATCH_OP], "Operations": [
                { "op": "replace", "path": "displayName", "value": "Applied?" },
                { "op": "replace", "path": "active", "value": "maybe" }
            ] }),
            Some("invalidValue"),
        ),
        (
            "member that is no user",
            &group_target,
            json!({ "schemas": [PATCH_OP], "Operations": [{ "op": "add", "path": "members", "value": [{ "value": "00919288221112222" }] }] }),
            None,
        ),
    ];
    for (case, target, body, scim_type) in cases {
        let request = format!("PATCH {target} with {case}");
        let reply = fixture
            .send(fixture.call(Method::PATCH, target).json(&body))
            .await;
        let status = if scim_type == Some("uniqueness") {
            409
        } else {
            400
        };
        reply.expect_error(status, scim_type, &request);
        assert_eq!(
            fixture.snapshot().await,
            before,
            "{request}: expected the directory unchanged"
        );
    }
}

async fn content_types(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let before = fixture.snapshot().await;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        let body = json!({ "schemas": [USER], "userName": "typed@example.com" });
        let call = fixture
            .call(Method::POST, "/Users")
            .without("content-type")
            .header("content-type", content_type)
            .json(&body);
        let reply = fixture.send(call).await;
        reply.expect_error(415, None, &format!("POST with Content-Type {content_type}"));
    }
    assert_eq!(
        fixture.snapshot().await,
        before,
        "expected rejected media types to change nothing"
    );

    for (n, content_type) in [
        "application/json",
        "application/scim+json; charset=utf-8",
        "application/json; charset=UTF-8",
        "Application/SCIM+JSON",
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({ "schemas": [USER], "userName": format!("typed{n}@example.com") });
        let call = fixture
            .call(Method::POST, "/Users")
            .without("content-type")
            .header("content-type", content_type)
            .json(&body);
        let reply = fixture.send(call).await;
        reply.expect_status(201, &format!("POST with Content-Type {content_type}"));
    }
}
