//! Bugs that shipped in other SCIM servers and broke Okta or Entra
//! provisioning, one test each, with the request that exposed them.

use serde_json::json;

use crate::support::{
    assert_list, both_backends, filter_query, resource_ids, sorted, Backend, Fixture, USER,
};

both_backends!(
    pathless_deactivate_applies,
    string_booleans_accepted,
    capitalised_member_ops,
    add_op_deactivates,
    filtered_member_removal,
    remove_value_keeps_others,
    replace_members_drops_stale,
    user_name_filter_ignores_case,
    case_variant_duplicate_rejected,
    items_per_page_counts_returned,
    member_value_removal_rejected,
);

/// Okta deactivates with a `replace` that has no `path`. Servers that
/// required one failed with 500.
async fn pathless_deactivate_applies(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let user = fixture.user("okta.leaver@example.com").await;
    for active in [false, true] {
        let request = format!("path-less replace active {active}");
        let reply = fixture
            .patch(
                &format!("/Users/{user}"),
                json!([{ "op": "replace", "value": { "active": active } }]),
            )
            .await;
        reply.expect_status(200, &request);
        assert_eq!(
            reply.body["active"],
            json!(active),
            "{request}: response body"
        );
        let read = fixture.get(&format!("/Users/{user}")).await;
        read.expect_status(200, &format!("{request}: GET"));
        assert_eq!(read.body["active"], json!(active), "{request}: GET");
    }
}

/// Entra sends booleans as `"False"` and `"True"`, in PATCH and in POST.
async fn string_booleans_accepted(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let user = fixture.user("entra.bool@example.com").await;
    let reply = fixture
        .patch(
            &format!("/Users/{user}"),
            json!([{ "op": "Replace", "path": "active", "value": "False" }]),
        )
        .await;
    reply.expect_status(200, "Replace active \"False\"");
    let read = fixture.get(&format!("/Users/{user}")).await;
    assert_eq!(
        read.body["active"],
        json!(false),
        "expected the JSON boolean false, not a string"
    );

    let created = fixture
        .post(
            "/Users",
            &json!({ "schemas": [USER], "userName": "emp1", "active": "True" }),
        )
        .await;
    created.expect_status(201, "POST with active \"True\"");
    assert_eq!(
        created.body["active"],
        json!(true),
        "expected the JSON boolean true"
    );
}

/// `"op":"Add"` on members fell through to "unknown" and did nothing
/// while returning success.
async fn capitalised_member_ops(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let user = fixture.user("member@example.com").await;
    let group = fixture.group("Capitalised", &[]).await;
    let add = fixture
        .patch(
            &format!("/Groups/{group}"),
            json!([{ "op": "Add", "path": "members", "value": [{ "$ref": null, "value": user }] }]),
        )
        .await;
    add.expect_status(204, "Add members");
    assert_eq!(
        fixture.member_ids(&group).await,
        vec![user.clone()],
        "expected Add to add the member"
    );
    let remove = fixture
        .patch(
            &format!("/Groups/{group}"),
            json!([{ "op": "Remove", "path": "members", "value": [{ "$ref": null, "value": user }] }]),
        )
        .await;
    remove.expect_status(204, "Remove members");
    assert!(
        fixture.member_ids(&group).await.is_empty(),
        "expected Remove to remove the member"
    );
}

/// Entra deactivates with `Add` on `active`, which a server must read as
/// a replace of the single value.
async fn add_op_deactivates(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let user = fixture.user("added.off@example.com").await;
    let reply = fixture
        .patch(
            &format!("/Users/{user}"),
            json!([{ "op": "Add", "path": "active", "value": "False" }]),
        )
        .await;
    reply.expect_status(200, "Add active \"False\"");
    let read = fixture.get(&format!("/Users/{user}")).await;
    assert_eq!(read.body["active"], json!(false), "expected active false");
}

/// Okta removes a pushed member with `members[value eq "…"]`. Servers that
/// ignored the filter kept the member and returned 200.
async fn filtered_member_removal(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let u1 = fixture.user("u1@example.com").await;
    let u2 = fixture.user("u2@example.com").await;
    let group = fixture.group("Filtered", &[&u1, &u2]).await;
    let remove = fixture
        .patch(
            &format!("/Groups/{group}"),
            json!([{ "op": "remove", "path": format!("members[value eq \"{u1}\"]") }]),
        )
        .await;
    remove.expect_status(204, "remove members[value eq U1]");
    assert_eq!(
        fixture.member_ids(&group).await,
        vec![u2.clone()],
        "expected only U1 removed"
    );
    let add = fixture
        .patch(
            &format!("/Groups/{group}"),
            json!([{ "op": "add", "path": "members", "value": [{ "value": u1 }] }]),
        )
        .await;
    add.expect_status(204, "add U1 back");
    assert_eq!(
        fixture.member_ids(&group).await,
        sorted(&[&u1, &u2]),
        "expected U1 re-added"
    );
}

/// Entra's `Remove` with a value list means "remove these". Servers that
/// read it as "remove all" wiped whole groups.
async fn remove_value_keeps_others(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let u1 = fixture.user("u1@example.com").await;
    let u2 = fixture.user("u2@example.com").await;
    let u3 = fixture.user("u3@example.com").await;
    let group = fixture.group("Wipe-proof", &[&u1, &u2, &u3]).await;
    let reply = fixture
        .patch(
            &format!("/Groups/{group}"),
            json!([{ "op": "Remove", "path": "members", "value": [{ "value": u2 }] }]),
        )
        .await;
    reply.expect_status(204, "Remove members value [U2]");
    assert_eq!(
        fixture.member_ids(&group).await,
        sorted(&[&u1, &u3]),
        "expected U1 and U3 kept"
    );
}

/// Okta's full push replaces the member set. Servers that merged kept
/// members Okta had removed.
async fn replace_members_drops_stale(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let u1 = fixture.user("u1@example.com").await;
    let u2 = fixture.user("u2@example.com").await;
    let u3 = fixture.user("u3@example.com").await;
    let group = fixture.group("Replaced", &[&u1, &u2]).await;
    let reply = fixture
        .patch(
            &format!("/Groups/{group}"),
            json!([{ "op": "replace", "path": "members",
                     "value": [{ "value": u2, "display": "b" }, { "value": u3, "display": "c" }] }]),
        )
        .await;
    reply.expect_status(204, "replace members with [U2, U3]");
    assert_eq!(
        fixture.member_ids(&group).await,
        sorted(&[&u2, &u3]),
        "expected exactly U2 and U3"
    );
}

/// `userName` is `caseExact: false`, so its filter ignores case, and the
/// stored spelling is returned unchanged.
async fn user_name_filter_ignores_case(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture.user("Alice@Example.com").await;
    let target = format!(
        "/Users{}",
        filter_query("userName eq \"alice@EXAMPLE.com\"", "")
    );
    let reply = fixture.get(&target).await;
    reply.expect_status(200, &target);
    assert_list(&reply.body, 1, 1, &target);
    assert_eq!(
        resource_ids(&reply.body),
        vec![id],
        "{target}: expected the user"
    );
    assert_eq!(
        reply.body["Resources"][0]["userName"],
        json!("Alice@Example.com"),
        "expected the userName exactly as created"
    );
}

/// A case variant of a taken `userName` is a duplicate: 409 with
/// `scimType` "uniqueness", while a shared email is not.
async fn case_variant_duplicate_rejected(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    fixture
        .create_user(json!({
            "schemas": [USER], "userName": "bob@x.com",
            "emails": [{ "value": "bob@x.com", "primary": true }]
        }))
        .await;
    let before = fixture.snapshot().await;
    let reply = fixture
        .post(
            "/Users",
            &json!({ "schemas": [USER], "userName": "BOB@X.COM" }),
        )
        .await;
    reply.expect_error(409, Some("uniqueness"), "POST userName BOB@X.COM");
    assert_eq!(
        fixture.snapshot().await,
        before,
        "expected the rejected duplicate to change nothing"
    );
    let other = fixture
        .post(
            "/Users",
            &json!({
                "schemas": [USER], "userName": "robert@x.com",
                "emails": [{ "value": "bob@x.com", "primary": true }]
            }),
        )
        .await;
    other.expect_status(201, "POST another userName with the same email");
}

/// `itemsPerPage` is the number of resources returned, not the `count`
/// asked for.
async fn items_per_page_counts_returned(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    fixture.user("one@example.com").await;
    fixture.user("two@example.com").await;
    let beyond = fixture.get("/Users?startIndex=101&count=100").await;
    beyond.expect_status(200, "startIndex=101&count=100");
    assert_list(&beyond.body, 2, 101, "startIndex=101&count=100");
    assert_eq!(
        beyond.body["itemsPerPage"],
        json!(0),
        "expected itemsPerPage 0 past the end"
    );
    let first = fixture.get("/Users?startIndex=1&count=1").await;
    assert_list(&first.body, 2, 1, "startIndex=1&count=1");
    assert_eq!(
        first.body["itemsPerPage"],
        json!(1),
        "expected itemsPerPage 1"
    );
}

/// `remove` of `members.value` would strip the value from every member,
/// leaving a group whose members cannot be kept: it must be rejected and
/// change nothing.
async fn member_value_removal_rejected(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let one = fixture.user("value-one@example.com").await;
    let two = fixture.user("value-two@example.com").await;
    let group = fixture.group("Value removal", &[&one, &two]).await;
    let target = format!("/Groups/{group}");
    let reply = fixture
        .patch(
            &target,
            json!([{ "op": "remove", "path": "members.value" }]),
        )
        .await;
    reply.expect_error(400, Some("invalidPath"), "PATCH remove members.value");
    assert_eq!(
        sorted(
            &fixture
                .member_ids(&group)
                .await
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        ),
        sorted(&[&one, &two]),
        "expected both members to remain"
    );
}
