//! The requests Okta's SCIM 2.0 client sends, in the shapes of Okta's
//! developer documentation. They cover the credentials test, the existence
//! check before a create, and the create itself. Then come full imports in
//! pages of 100, profile push with PUT, deactivation with a path-less
//! PATCH, and Group Push.

use http::header::LOCATION;
use serde_json::{json, Value};

use crate::support::{
    assert_list, both_backends, filter_query, resource_ids, sorted, Backend, Fixture, BASE_URL,
    GROUP, LIST_RESPONSE, USER,
};

/// Returns the body of Okta's create request, with the `password`
/// placeholder and the read-only `groups` it always sends.
/// Returns a User as Okta's "Create Users" sends it. The `externalId` is
/// Okta's user id, one per user, so it is derived from `user_name` here.
fn okta_user(user_name: &str, email: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": user_name,
        "name": { "givenName": "Test", "familyName": "User" },
        "emails": [{ "primary": true, "value": email, "type": "work" }],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": format!("00u-{user_name}"),
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

both_backends!(
    credentials_test_lists,
    existence_check_miss,
    create_user_echoes,
    create_ignores_groups,
    duplicate_user_conflict,
    case_variant_conflict,
    same_email_other_user,
    import_pages_stable,
    paging_edge_cases,
    get_user_by_id,
    unknown_user_not_found,
    put_full_user,
    put_deactivates,
    put_clears_omitted,
    unknown_id_writes,
    deactivate_and_reactivate,
    group_push_create_find,
    group_rename_with_id,
    group_rename_conflict,
    group_members_add_remove,
    group_members_full_replace,
    group_put_replaces,
    group_put_clears_members,
    group_delete,
);

async fn credentials_test_lists(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    fixture.user("first@okta.local").await;
    fixture.group("Everyone", &[]).await;

    let users = fixture.get("/Users?startIndex=1&count=2").await;
    users.expect_status(200, "GET /Users?startIndex=1&count=2");
    assert_list(&users.body, 1, 1, "GET /Users?startIndex=1&count=2");

    let groups = fixture.get("/Groups?startIndex=1&count=100").await;
    groups.expect_status(200, "GET /Groups?startIndex=1&count=100");
    assert_list(&groups.body, 1, 1, "GET /Groups?startIndex=1&count=100");
}

async fn existence_check_miss(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let target = format!(
        "/Users{}",
        filter_query(
            "userName eq \"test.user@okta.local\"",
            "&startIndex=1&count=100"
        )
    );
    let reply = fixture.get(&target).await;
    reply.expect_status(200, &target);
    assert_eq!(
        reply.body,
        json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": 0,
            "startIndex": 1,
            "itemsPerPage": 0,
            "Resources": []
        }),
        "{target}: expected an empty ListResponse with integer counts"
    );
}

async fn create_user_echoes(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let mut body = okta_user("test.user@okta.local", "test.user@okta.local");
    body["id"] = json!("client-chosen-id");
    let reply = fixture.post("/Users", &body).await;
    reply.expect_status(201, "POST /Users");
    let id = reply.id();
    let created = &reply.body;

    assert!(!id.is_empty(), "expected a non-empty id in {created}");
    assert_ne!(
        id, "client-chosen-id",
        "expected the server to assign the id"
    );
    let location = format!("{BASE_URL}/Users/{id}");
    assert_eq!(
        reply.header(&LOCATION),
        Some(location.as_str()),
        "expected Location to be the user's URL"
    );
    assert_eq!(
        created["meta"]["location"],
        json!(location),
        "expected meta.location to equal Location"
    );
    for field in [
        "userName",
        "name",
        "emails",
        "displayName",
        "locale",
        "externalId",
    ] {
        assert_eq!(
            created[field], body[field],
            "expected {field} echoed as sent in {created}"
        );
    }
    assert_eq!(created["active"], json!(true), "expected active true");
    assert!(
        created["schemas"]
            .as_array()
            .is_some_and(|schemas| schemas.contains(&json!(USER))),
        "expected the core User schema in {created}"
    );
    assert!(
        created.get("password").is_none(),
        "expected the password placeholder never to be returned, got {created}"
    );

    let read = fixture.get(&format!("/Users/{id}")).await;
    read.expect_status(200, "GET the created user");
    assert!(
        read.body.get("password").is_none(),
        "expected the password not to be stored, got {}",
        read.body
    );
}

async fn create_ignores_groups(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let group = fixture.group("Pushed", &[]).await;
    let mut body = okta_user("grouped@okta.local", "grouped@okta.local");
    body["groups"] = json!([{ "value": group, "display": "Pushed" }]);
    let reply = fixture.post("/Users", &body).await;
    reply.expect_status(201, "POST /Users with groups");
    assert!(
        reply.body.get("groups").is_none(),
        "expected read-only groups to be ignored on create, got {}",
        reply.body
    );
    assert!(
        fixture.member_ids(&group).await.is_empty(),
        "expected groups in a User body not to create a membership"
    );
}

async fn duplicate_user_conflict(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let body = okta_user("dup@okta.local", "dup@okta.local");
    fixture.create_user(body.clone()).await;
    let reply = fixture.post("/Users", &body).await;
    reply.expect_error(409, Some("uniqueness"), "POST /Users twice");
}

async fn case_variant_conflict(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    fixture
        .create_user(okta_user("Case.User@Okta.Local", "case@okta.local"))
        .await;
    let reply = fixture
        .post(
            "/Users",
            &okta_user("case.user@OKTA.LOCAL", "other@okta.local"),
        )
        .await;
    reply.expect_error(409, Some("uniqueness"), "POST a case variant of userName");
}

async fn same_email_other_user(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    fixture
        .create_user(okta_user("first@okta.local", "shared@okta.local"))
        .await;
    let reply = fixture
        .post(
            "/Users",
            &okta_user("second@okta.local", "shared@okta.local"),
        )
        .await;
    reply.expect_status(201, "POST a second user with the same email");
}

async fn import_pages_stable(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let mut created = Vec::new();
    for n in 0..7 {
        created.push(fixture.user(&format!("import{n}@okta.local")).await);
    }
    let everything = fixture.get("/Users?startIndex=1&count=100").await;
    everything.expect_status(200, "GET every user");
    assert_list(&everything.body, 7, 1, "GET every user");
    let full_order = resource_ids(&everything.body);

    let mut paged = Vec::new();
    for (start, expected_items) in [(1, 3), (4, 3), (7, 1)] {
        let target = format!("/Users?startIndex={start}&count=3");
        let page = fixture.get(&target).await;
        page.expect_status(200, &target);
        assert_list(&page.body, 7, start, &target);
        assert_eq!(
            page.body["itemsPerPage"],
            json!(expected_items),
            "{target}: itemsPerPage"
        );
        paged.extend(resource_ids(&page.body));
    }
    assert_eq!(
        paged, full_order,
        "expected pages to follow the order of the full listing"
    );
    let created: Vec<&str> = created.iter().map(String::as_str).collect();
    let paged_refs: Vec<&str> = paged.iter().map(String::as_str).collect();
    assert_eq!(
        sorted(&paged_refs),
        sorted(&created),
        "expected the pages to hold every user exactly once"
    );

    let again = fixture.get("/Users?startIndex=1&count=100").await;
    assert_eq!(
        resource_ids(&again.body),
        full_order,
        "expected the same order on a second listing"
    );
}

async fn paging_edge_cases(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    for n in 0..3 {
        fixture.user(&format!("edge{n}@okta.local")).await;
    }
    // (query, startIndex returned, itemsPerPage)
    let cases: [(&str, u64, u64); 7] = [
        ("startIndex=101&count=100", 101, 0),
        ("startIndex=4&count=10", 4, 0),
        ("startIndex=1&count=0", 1, 0),
        ("startIndex=1&count=-5", 1, 0),
        ("startIndex=0&count=2", 1, 2),
        ("startIndex=-3", 1, 3),
        ("count=1", 1, 1),
    ];
    for (query, start_index, items) in cases {
        let target = format!("/Users?{query}");
        let reply = fixture.get(&target).await;
        reply.expect_status(200, &target);
        assert_list(&reply.body, 3, start_index, &target);
        assert_eq!(
            reply.body["itemsPerPage"],
            json!(items),
            "{target}: itemsPerPage"
        );
    }
}

async fn get_user_by_id(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture
        .create_user(okta_user("read@okta.local", "read@okta.local"))
        .await;
    let reply = fixture.get(&format!("/Users/{id}")).await;
    reply.expect_status(200, "GET /Users/{id}");
    assert_eq!(reply.body["id"], json!(id), "expected the same id");
    assert_eq!(
        reply.body["userName"],
        json!("read@okta.local"),
        "expected the userName"
    );
    assert_eq!(
        reply.body["emails"][0]["value"],
        json!("read@okta.local"),
        "expected the email"
    );
}

async fn unknown_user_not_found(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    for id in ["00919288221112222", "6a0f1b5e-0000-4000-8000-000000000000"] {
        let target = format!("/Users/{id}");
        fixture
            .get(&target)
            .await
            .expect_error(404, None, &format!("GET {target}"));
    }
}

async fn put_full_user(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture
        .create_user(okta_user("push@okta.local", "push@okta.local"))
        .await;
    let group = fixture.group("Unrelated", &[]).await;
    let read = fixture.get(&format!("/Users/{id}")).await;
    let mut full = read.body.clone();
    full["name"]["givenName"] = json!("Pushed");
    full["groups"] = json!([{ "value": group, "display": "Unrelated" }]);
    full["active"] = json!(true);

    let reply = fixture.put(&format!("/Users/{id}"), &full).await;
    reply.expect_status(200, "PUT the whole user with id, meta and groups");
    assert_eq!(reply.body["id"], json!(id), "expected the id unchanged");
    assert_eq!(
        reply.body["name"]["givenName"],
        json!("Pushed"),
        "expected the new givenName"
    );
    assert_eq!(
        reply.body["meta"]["created"], read.body["meta"]["created"],
        "expected meta.created unchanged"
    );
    assert_ne!(
        reply.body["meta"]["version"], read.body["meta"]["version"],
        "expected a new meta.version"
    );
    assert!(
        fixture.member_ids(&group).await.is_empty(),
        "expected groups in a PUT body not to change memberships"
    );
    let reread = fixture.get(&format!("/Users/{id}")).await;
    assert_eq!(
        reread.body["name"]["givenName"],
        json!("Pushed"),
        "expected the PUT to be stored"
    );
}

/// Okta integrations built with the App Integration Wizard deactivate with
/// a PUT of the whole user.
async fn put_deactivates(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture
        .create_user(okta_user("aiw@okta.local", "aiw@okta.local"))
        .await;
    for active in [false, true] {
        let mut full = fixture.get(&format!("/Users/{id}")).await.body;
        full["active"] = json!(active);
        let reply = fixture.put(&format!("/Users/{id}"), &full).await;
        reply.expect_status(200, &format!("PUT active {active}"));
        let read = fixture.get(&format!("/Users/{id}")).await;
        assert_eq!(
            read.body["active"],
            json!(active),
            "GET after PUT active {active}"
        );
    }
}

/// PUT replaces the whole resource, so an attribute it omits is removed.
async fn put_clears_omitted(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture
        .create_user(okta_user("omit@okta.local", "omit@okta.local"))
        .await;
    let reply = fixture
        .put(
            &format!("/Users/{id}"),
            &json!({ "schemas": [USER], "userName": "omit@okta.local", "active": true }),
        )
        .await;
    reply.expect_status(200, "PUT without emails, name and locale");
    for omitted in ["emails", "name", "locale", "externalId", "displayName"] {
        assert!(
            reply.body.get(omitted).is_none(),
            "expected {omitted} removed by the PUT, got {}",
            reply.body
        );
    }
}

async fn unknown_id_writes(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let user = json!({ "schemas": [USER], "userName": "ghost@okta.local" });
    let group = json!({ "schemas": [GROUP], "displayName": "Ghosts" });
    let operations = json!([{ "op": "replace", "value": { "active": false } }]);
    for endpoint in ["Users", "Groups"] {
        let target = format!("/{endpoint}/00919288221112222");
        let body = if endpoint == "Users" { &user } else { &group };
        fixture
            .put(&target, body)
            .await
            .expect_error(404, None, &format!("PUT {target}"));
        fixture
            .patch(&target, operations.clone())
            .await
            .expect_error(404, None, &format!("PATCH {target}"));
        fixture
            .delete(&target)
            .await
            .expect_error(404, None, &format!("DELETE {target}"));
    }
    assert!(
        fixture.snapshot().await.is_empty(),
        "expected writes to unknown ids to create nothing"
    );
}

async fn deactivate_and_reactivate(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture
        .create_user(okta_user("leaver@okta.local", "leaver@okta.local"))
        .await;
    for active in [false, true] {
        let request = format!("path-less PATCH active {active}");
        let reply = fixture
            .patch(
                &format!("/Users/{id}"),
                json!([{ "op": "replace", "value": { "active": active } }]),
            )
            .await;
        reply.expect_status(200, &request);
        assert_eq!(
            reply.body["active"],
            json!(active),
            "{request}: response body"
        );

        let read = fixture.get(&format!("/Users/{id}")).await;
        read.expect_status(200, &format!("{request}: GET afterwards"));
        assert_eq!(
            read.body["active"],
            json!(active),
            "{request}: GET afterwards"
        );

        let listed = fixture.get("/Users?startIndex=1&count=100").await;
        assert_eq!(
            resource_ids(&listed.body),
            vec![id.clone()],
            "{request}: the user stays listed"
        );
        let target = format!(
            "/Users{}",
            filter_query("userName eq \"leaver@okta.local\"", "")
        );
        let found = fixture.get(&target).await;
        assert_eq!(
            found.body["Resources"][0]["active"],
            json!(active),
            "{request}: found by filter"
        );
    }
}

async fn group_push_create_find(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let find = format!(
        "/Groups{}",
        filter_query("displayName eq \"Test SCIMv2\"", "")
    );
    let before = fixture.get(&find).await;
    before.expect_status(200, &find);
    assert_list(&before.body, 0, 1, &find);

    let body = json!({ "schemas": [GROUP], "displayName": "Test SCIMv2", "members": [] });
    let created = fixture.post("/Groups", &body).await;
    created.expect_status(201, "POST /Groups");
    let id = created.id();
    assert_eq!(
        created.header(&LOCATION),
        Some(format!("{BASE_URL}/Groups/{id}").as_str()),
        "expected Location of the group"
    );
    assert_eq!(
        created.body["displayName"],
        json!("Test SCIMv2"),
        "expected displayName echoed"
    );

    let after = fixture.get(&find).await;
    assert_list(&after.body, 1, 1, &find);
    assert_eq!(
        resource_ids(&after.body),
        vec![id.clone()],
        "expected the group to be found by displayName"
    );
    let imported = fixture.get("/Groups?startIndex=1&count=100").await;
    assert_list(&imported.body, 1, 1, "GET /Groups");
    assert!(
        imported.body["Resources"].is_array(),
        "expected Resources to be an array"
    );
}

async fn group_rename_with_id(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture.group("Old name", &[]).await;
    let reply = fixture
        .patch(
            &format!("/Groups/{id}"),
            json!([{ "op": "replace", "value": { "id": id, "displayName": "Test SCIMv2" } }]),
        )
        .await;
    reply.expect_status(204, "PATCH rename with id in the value");
    let read = fixture.get(&format!("/Groups/{id}")).await;
    assert_eq!(
        read.body["displayName"],
        json!("Test SCIMv2"),
        "expected the new name"
    );
    assert_eq!(read.body["id"], json!(id), "expected the id unchanged");
}

async fn group_rename_conflict(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    fixture.group("Taken", &[]).await;
    let id = fixture.group("Free", &[]).await;
    let reply = fixture
        .patch(
            &format!("/Groups/{id}"),
            json!([{ "op": "replace", "value": { "id": id, "displayName": "TAKEN" } }]),
        )
        .await;
    reply.expect_error(
        409,
        Some("uniqueness"),
        "rename to a case variant of a taken name",
    );
    let read = fixture.get(&format!("/Groups/{id}")).await;
    assert_eq!(
        read.body["displayName"],
        json!("Free"),
        "expected the name unchanged"
    );
}

async fn group_members_add_remove(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let first = fixture.user("first@okta.local").await;
    let second = fixture.user("second@okta.local").await;
    let group = fixture.group("Pushed", &[&first]).await;
    let reply = fixture
        .patch(
            &format!("/Groups/{group}"),
            json!([
                { "op": "remove", "path": format!("members[value eq \"{first}\"]") },
                { "op": "add", "path": "members",
                  "value": [{ "value": second, "display": "second@okta.local" }] }
            ]),
        )
        .await;
    reply.expect_status(204, "PATCH remove one member and add another");
    assert_eq!(
        fixture.member_ids(&group).await,
        vec![second.clone()],
        "expected only the added member"
    );

    let read = fixture.get(&format!("/Groups/{group}")).await;
    assert_eq!(
        read.body["members"][0]["display"],
        json!("second@okta.local"),
        "expected the member's display kept"
    );
    let user = fixture.get(&format!("/Users/{second}")).await;
    assert_eq!(
        user.body["groups"][0]["value"],
        json!(group),
        "expected the user's groups to list the group"
    );
}

async fn group_members_full_replace(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let a = fixture.user("a@okta.local").await;
    let b = fixture.user("b@okta.local").await;
    let c = fixture.user("c@okta.local").await;
    let group = fixture.group("Full push", &[&a, &b]).await;
    let reply = fixture
        .patch(
            &format!("/Groups/{group}"),
            json!([{ "op": "replace", "path": "members",
                     "value": [{ "value": b, "display": "b" }, { "value": c, "display": "c" }] }]),
        )
        .await;
    reply.expect_status(204, "PATCH replace members");
    assert_eq!(
        fixture.member_ids(&group).await,
        sorted(&[&b, &c]),
        "expected exactly the replacement members"
    );
}

async fn group_put_replaces(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let a = fixture.user("a@okta.local").await;
    let b = fixture.user("b@okta.local").await;
    let group = fixture.group("Put me", &[&a]).await;
    let body = json!({
        "schemas": [GROUP],
        "id": group,
        "displayName": "Put me renamed",
        "members": [{ "value": b, "display": "b@okta.local" }]
    });
    let reply = fixture.put(&format!("/Groups/{group}"), &body).await;
    reply.expect_status(200, "PUT /Groups/{id}");
    assert_eq!(
        reply.body["displayName"],
        json!("Put me renamed"),
        "expected the new name"
    );
    assert_eq!(
        fixture.member_ids(&group).await,
        vec![b],
        "expected the PUT's member list"
    );
}

async fn group_put_clears_members(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let a = fixture.user("a@okta.local").await;
    let group = fixture.group("Cleared", &[&a]).await;
    let body = json!({ "schemas": [GROUP], "displayName": "Cleared" });
    let reply = fixture.put(&format!("/Groups/{group}"), &body).await;
    reply.expect_status(200, "PUT a group without members");
    assert!(
        fixture.member_ids(&group).await.is_empty(),
        "expected a PUT without members to remove every member"
    );
}

async fn group_delete(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let member = fixture.user("member@okta.local").await;
    let group = fixture.group("Unlinked", &[&member]).await;
    let reply = fixture.delete(&format!("/Groups/{group}")).await;
    reply.expect_status(204, "DELETE /Groups/{id}");
    assert!(!reply.has_body, "expected no body on 204");
    fixture
        .get(&format!("/Groups/{group}"))
        .await
        .expect_error(404, None, "GET a deleted group");
    let user = fixture.get(&format!("/Users/{member}")).await;
    user.expect_status(200, "GET a member of a deleted group");
    assert!(
        user.body.get("groups").is_none(),
        "expected the deleted group gone from the user's groups, got {}",
        user.body
    );
}
