//! The requests Microsoft Entra's provisioning service sends, in both of its
//! shapes: the default one (capitalised ops, booleans as strings, one
//! operation per attribute) and the `aadOptscim062020` one (path-less
//! replace with dotted and URN-qualified keys).

use http::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    assert_list, both_backends, filter_query, sorted, Backend, Fixture, ENTERPRISE, GROUP, USER,
};

/// Returns the body of Entra's create request.
fn entra_user(user_name: &str) -> Value {
    json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": user_name,
        "active": true,
        "emails": [{ "primary": true, "type": "work", "value": user_name }],
        "meta": { "resourceType": "User" },
        "name": { "formatted": "Givenname Familyname", "familyName": "Familyname", "givenName": "Givenname" },
        "roles": []
    })
}

both_backends!(
    create_entra_user,
    create_entra_group,
    mixed_case_attributes,
    capitalised_ops,
    string_booleans_stored,
    add_sets_active,
    pathless_dotted_urn_keys,
    work_email_created,
    enterprise_attributes,
    remove_listed_members,
    remove_all_members,
    member_added_once,
    pathless_group_patch,
    excluded_members,
    group_patch_status,
    delete_frees_user_name,
);

async fn create_entra_user(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let body = entra_user("entra@contoso.test");
    let reply = fixture.post("/Users", &body).await;
    reply.expect_status(201, "POST /Users from Entra");
    assert_eq!(
        reply.body["externalId"], body["externalId"],
        "expected externalId stored as sent"
    );
    assert_eq!(
        reply.body["name"], body["name"],
        "expected name stored as sent"
    );
    assert_eq!(
        reply.body["meta"]["resourceType"],
        json!("User"),
        "expected meta built by the server"
    );
}

async fn create_entra_group(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let body = json!({
        "schemas": [
            GROUP,
            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
        ],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "Group1DisplayName",
        "meta": { "resourceType": "Group" }
    });
    let reply = fixture.post("/Groups", &body).await;
    reply.expect_status(201, "POST /Groups from Entra");
    assert_eq!(
        reply.body["externalId"], body["externalId"],
        "expected externalId stored as sent"
    );
    let target = format!(
        "/Groups{}",
        filter_query(
            &format!(
                "externalId eq \"{}\"",
                body["externalId"].as_str().unwrap_or_default()
            ),
            ""
        )
    );
    let found = fixture.get(&target).await;
    assert_list(&found.body, 1, 1, &target);
}

async fn mixed_case_attributes(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let body = json!({
        "schemas": [USER, ENTERPRISE],
        "UserName": "Mixed.Case@contoso.test",
        "Active": "True",
        "DisplayName": "Mixed Case",
        "Emails": [{ "Primary": true, "Type": "work", "Value": "mixed@contoso.test" }],
        ENTERPRISE: { "Department": "Ops", "Manager": { "Value": "m-1" } }
    });
    let reply = fixture.post("/Users", &body).await;
    reply.expect_status(201, "POST /Users with capitalised attribute names");

    let user = &reply.body;
    assert_eq!(
        user["userName"],
        json!("Mixed.Case@contoso.test"),
        "userName"
    );
    assert_eq!(user["active"], json!(true), "active");
    assert_eq!(user["displayName"], json!("Mixed Case"), "displayName");
    assert_eq!(
        user["emails"][0]["value"],
        json!("mixed@contoso.test"),
        "emails[0].value"
    );
    assert_eq!(user[ENTERPRISE]["department"], json!("Ops"), "department");
    assert_eq!(
        user[ENTERPRISE]["manager"]["value"],
        json!("m-1"),
        "manager.value"
    );
    assert!(
        user.get("UserName").is_none(),
        "expected only canonical names in {user}"
    );
}

async fn capitalised_ops(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture.create_user(entra_user("caps@contoso.test")).await;
    let reply = fixture
        .patch(
            &format!("/Users/{id}"),
            json!([
                { "op": "Replace", "path": "name.familyName", "value": "Replaced" },
                { "op": "Add", "path": "title", "value": "Engineer" },
                { "op": "Remove", "path": "roles" },
                { "op": "REPLACE", "path": "userName", "value": "caps.renamed@contoso.test" }
            ]),
        )
        .await;
    reply.expect_status(200, "PATCH with Replace, Add, Remove, REPLACE");
    let user = &reply.body;
    assert_eq!(
        user["name"]["familyName"],
        json!("Replaced"),
        "Replace familyName"
    );
    assert_eq!(
        user["name"]["givenName"],
        json!("Givenname"),
        "givenName untouched"
    );
    assert_eq!(user["title"], json!("Engineer"), "Add title");
    assert_eq!(
        user["userName"],
        json!("caps.renamed@contoso.test"),
        "REPLACE userName"
    );
}

async fn string_booleans_stored(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture.create_user(entra_user("bools@contoso.test")).await;
    for (sent, stored) in [("False", false), ("True", true), ("false", false)] {
        let request = format!("Replace active with {sent:?}");
        let reply = fixture
            .patch(
                &format!("/Users/{id}"),
                json!([{ "op": "Replace", "path": "active", "value": sent }]),
            )
            .await;
        reply.expect_status(200, &request);
        let read = fixture.get(&format!("/Users/{id}")).await;
        assert_eq!(
            read.body["active"],
            Value::Bool(stored),
            "{request}: expected a JSON boolean"
        );
    }
}

async fn add_sets_active(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture.create_user(entra_user("add@contoso.test")).await;
    let reply = fixture
        .patch(
            &format!("/Users/{id}"),
            json!([{ "op": "Add", "path": "active", "value": "False" }]),
        )
        .await;
    reply.expect_status(200, "Add active False");
    assert_eq!(
        reply.body["active"],
        json!(false),
        "expected Add on a single-valued attribute to replace it"
    );
}

async fn pathless_dotted_urn_keys(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture.create_user(entra_user("dotted@contoso.test")).await;
    let reply = fixture
        .patch(
            &format!("/Users/{id}"),
            json!([{ "op": "replace", "value": {
                "displayName": "Bjfe",
                "name.givenName": "Kkom",
                "name.familyName": "Unua",
                format!("{ENTERPRISE}:employeeNumber"): "Aklq"
            } }]),
        )
        .await;
    reply.expect_status(200, "path-less replace with dotted and URN keys");
    let user = &reply.body;
    assert_eq!(user["displayName"], json!("Bjfe"), "displayName");
    assert_eq!(user["name"]["givenName"], json!("Kkom"), "name.givenName");
    assert_eq!(user["name"]["familyName"], json!("Unua"), "name.familyName");
    assert_eq!(
        user["name"]["formatted"],
        json!("Givenname Familyname"),
        "expected name.formatted untouched"
    );
    assert_eq!(
        user[ENTERPRISE]["employeeNumber"],
        json!("Aklq"),
        "URN-qualified employeeNumber"
    );
    assert!(
        user.get("name.givenName").is_none(),
        "expected no literal dotted key stored, got {user}"
    );
}

async fn work_email_created(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture.user("noemail@contoso.test").await;
    let reply = fixture
        .patch(
            &format!("/Users/{id}"),
            json!([
                { "op": "Replace", "path": "emails[type eq \"work\"].value", "value": "work@contoso.test" },
                { "op": "Replace", "path": "emails[type eq \"work\"].primary", "value": "True" }
            ]),
        )
        .await;
    reply.expect_status(
        200,
        "Replace emails[type eq \"work\"].value on a user without emails",
    );
    assert_eq!(
        reply.body["emails"],
        json!([{ "type": "work", "value": "work@contoso.test", "primary": true }]),
        "expected one work email created and merged"
    );

    let target = format!(
        "/Users{}",
        filter_query(
            "emails[type eq \"work\"].value eq \"work@contoso.test\"",
            ""
        )
    );
    let found = fixture.get(&target).await;
    assert_list(&found.body, 1, 1, &target);
}

async fn enterprise_attributes(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let manager = fixture.user("boss@contoso.test").await;
    let id = fixture.create_user(entra_user("report@contoso.test")).await;
    let reply = fixture
        .patch(
            &format!("/Users/{id}"),
            json!([
                { "op": "Add", "path": format!("{ENTERPRISE}:employeeNumber"), "value": "701984" },
                { "op": "Replace", "path": format!("{ENTERPRISE}:manager"), "value": manager },
                { "op": "Add", "path": format!("{ENTERPRISE}:department"), "value": "Sales" }
            ]),
        )
        .await;
    reply.expect_status(200, "PATCH enterprise attributes");
    let read = fixture.get(&format!("/Users/{id}")).await;
    let extension = &read.body[ENTERPRISE];
    assert_eq!(
        extension["employeeNumber"],
        json!("701984"),
        "employeeNumber"
    );
    assert_eq!(extension["department"], json!("Sales"), "department");
    assert_eq!(
        extension["manager"]["value"],
        json!(manager),
        "expected a bare manager id stored as {{\"value\": id}}, got {extension}"
    );
    assert!(
        read.body["schemas"]
            .as_array()
            .is_some_and(|schemas| schemas.contains(&json!(ENTERPRISE))),
        "expected the extension URN in schemas, got {}",
        read.body["schemas"]
    );

    let target = format!(
        "/Users{}",
        filter_query(&format!("{ENTERPRISE}:manager.value eq \"{manager}\""), "")
    );
    let found = fixture.get(&target).await;
    assert_list(&found.body, 1, 1, &target);
}

async fn remove_listed_members(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let u1 = fixture.user("u1@contoso.test").await;
    let u2 = fixture.user("u2@contoso.test").await;
    let u3 = fixture.user("u3@contoso.test").await;
    let group = fixture.group("Entra group", &[&u1, &u2, &u3]).await;
    let reply = fixture
        .patch(
            &format!("/Groups/{group}"),
            json!([{ "op": "Remove", "path": "members", "value": [{ "$ref": null, "value": u2 }] }]),
        )
        .await;
    reply.expect_status(204, "Remove members with a value list");
    assert_eq!(
        fixture.member_ids(&group).await,
        sorted(&[&u1, &u3]),
        "expected only the listed member removed"
    );
}

async fn remove_all_members(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let u1 = fixture.user("u1@contoso.test").await;
    let u2 = fixture.user("u2@contoso.test").await;
    let group = fixture.group("Emptied", &[&u1, &u2]).await;
    let reply = fixture
        .patch(
            &format!("/Groups/{group}"),
            json!([{ "op": "remove", "path": "members" }]),
        )
        .await;
    reply.expect_status(204, "remove members without a value");
    assert!(
        fixture.member_ids(&group).await.is_empty(),
        "expected every member removed"
    );
}

async fn member_added_once(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let u1 = fixture.user("u1@contoso.test").await;
    let group = fixture.group("Once", &[&u1]).await;
    for op in ["Add", "add"] {
        let reply = fixture
            .patch(
                &format!("/Groups/{group}"),
                json!([{ "op": op, "path": "members", "value": [{ "value": u1 }] }]),
            )
            .await;
        reply.expect_status(204, &format!("{op} a member already present"));
    }
    let read = fixture.get(&format!("/Groups/{group}")).await;
    assert_eq!(
        read.body["members"].as_array().map(Vec::len),
        Some(1),
        "expected the member once, got {}",
        read.body["members"]
    );
}

async fn pathless_group_patch(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let u1 = fixture.user("u1@contoso.test").await;
    let u2 = fixture.user("u2@contoso.test").await;
    let group = fixture.group("Path-less", &[&u1]).await;
    let reply = fixture
        .patch(
            &format!("/Groups/{group}"),
            json!([
                { "op": "add", "value": { "members": [{ "value": u2 }] } },
                { "op": "Replace", "value": { "externalId": "ext-group" } }
            ]),
        )
        .await;
    reply.expect_status(204, "path-less add of members and replace of externalId");
    let read = fixture.get(&format!("/Groups/{group}")).await;
    assert_eq!(
        read.body["externalId"],
        json!("ext-group"),
        "externalId replaced"
    );
    assert_eq!(
        fixture.member_ids(&group).await,
        sorted(&[&u1, &u2]),
        "expected the path-less add to append members"
    );
}

async fn excluded_members(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let member = fixture.user("member@contoso.test").await;
    let group = fixture.group("Big group", &[&member]).await;

    let target = format!("/Groups/{group}?excludedAttributes=members");
    let one = fixture.get(&target).await;
    one.expect_status(200, &target);
    assert!(
        one.body.get("members").is_none(),
        "{target}: expected no members, got {}",
        one.body
    );
    assert_eq!(one.body["id"], json!(group), "{target}: id stays");
    assert_eq!(
        one.body["displayName"],
        json!("Big group"),
        "{target}: displayName stays"
    );

    let target = format!(
        "/Groups{}",
        filter_query(
            "displayName eq \"Big group\"",
            "&excludedAttributes=members"
        )
    );
    let list = fixture.get(&target).await;
    assert_list(&list.body, 1, 1, &target);
    let found = &list.body["Resources"][0];
    assert!(
        found.get("members").is_none(),
        "{target}: expected no members, got {found}"
    );
    assert_eq!(found["id"], json!(group), "{target}: id stays");
}

async fn group_patch_status(backend: Backend) {
    for (configured, body_expected) in [(StatusCode::NO_CONTENT, false), (StatusCode::OK, true)] {
        let fixture = Fixture::with_group_patch_status(backend, configured).await;
        let group = fixture.group("Status", &[]).await;
        let request = format!("Group PATCH with group_patch_status {configured}");
        let reply = fixture
            .patch(
                &format!("/Groups/{group}"),
                json!([{ "op": "Replace", "path": "displayName", "value": "Status renamed" }]),
            )
            .await;
        reply.expect_status(configured.as_u16(), &request);
        assert_eq!(reply.has_body, body_expected, "{request}: body present");
        if body_expected {
            assert_eq!(
                reply.body["displayName"],
                json!("Status renamed"),
                "{request}: the group in the body"
            );
        }

        let user = fixture.user("patched@contoso.test").await;
        let user_reply = fixture
            .patch(
                &format!("/Users/{user}"),
                json!([{ "op": "Replace", "path": "active", "value": false }]),
            )
            .await;
        user_reply.expect_status(200, &format!("{request}: a User PATCH stays 200"));
    }
}

async fn delete_frees_user_name(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture.create_user(entra_user("gone@contoso.test")).await;
    let group = fixture.group("Holder", &[&id]).await;

    let reply = fixture.delete(&format!("/Users/{id}")).await;
    reply.expect_status(204, "DELETE /Users/{id}");
    fixture
        .get(&format!("/Users/{id}"))
        .await
        .expect_error(404, None, "GET a deleted user");
    fixture
        .delete(&format!("/Users/{id}"))
        .await
        .expect_error(404, None, "DELETE a deleted user");
    assert!(
        fixture.member_ids(&group).await.is_empty(),
        "expected the deleted user gone from its group"
    );
    let listed = fixture
        .get(&format!(
            "/Users{}",
            filter_query("userName eq \"gone@contoso.test\"", "")
        ))
        .await;
    assert_list(&listed.body, 0, 1, "filter for a deleted user");

    let again = fixture
        .post("/Users", &entra_user("gone@contoso.test"))
        .await;
    again.expect_status(201, "POST the deleted userName again");
    assert_ne!(again.id(), id, "expected a new id for the new user");
}
