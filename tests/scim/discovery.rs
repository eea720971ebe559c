//! The discovery endpoints, `meta` on every resource, and ETags with
//! `If-Match`.

use http::header::{ETAG, LOCATION};
use http::Method;
use serde_json::{json, Value};

use crate::support::{
    assert_list, both_backends, Backend, Fixture, BASE_URL, ENTERPRISE, GROUP, LIST_RESPONSE, USER,
};

both_backends!(
    service_provider_config,
    resource_types_listed,
    schemas_listed,
    discovery_by_id,
    discovery_rejects_writes,
    unknown_endpoint_not_found,
    unsupported_methods_rejected,
    meta_on_create_and_patch,
    location_ignores_host,
    stale_if_match_rejected,
    if_match_on_delete_and_lists,
    search_paths_not_ids,
);

async fn service_provider_config(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let reply = fixture.get("/ServiceProviderConfig").await;
    reply.expect_status(200, "GET /ServiceProviderConfig");
    let config = &reply.body;
    assert_eq!(
        config["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"]),
        "schemas of the ServiceProviderConfig"
    );
    assert_eq!(config["patch"]["supported"], json!(true), "patch.supported");
    assert_eq!(config["etag"]["supported"], json!(true), "etag.supported");
    assert_eq!(
        config["filter"]["supported"],
        json!(true),
        "filter.supported"
    );
    assert_eq!(config["bulk"]["supported"], json!(false), "bulk.supported");
    assert!(
        config["filter"]["maxResults"].is_u64(),
        "expected filter.maxResults to be an integer in {config}"
    );
    assert_eq!(
        config["authenticationSchemes"][0]["type"],
        json!("oauthbearertoken"),
        "the bearer token scheme"
    );
}

async fn resource_types_listed(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let reply = fixture.get("/ResourceTypes").await;
    reply.expect_status(200, "GET /ResourceTypes");
    assert_list(&reply.body, 2, 1, "GET /ResourceTypes");
    let types = reply.body["Resources"]
        .as_array()
        .expect("Resources is an array");
    assert_eq!(
        types[0]["endpoint"],
        json!("/Users"),
        "expected Users first, at /Users"
    );
    for resource_type in types {
        assert_eq!(
            resource_type["id"], resource_type["name"],
            "expected id to equal name in {resource_type}"
        );
    }
    let user = &types[0];
    assert_eq!(user["schema"], json!(USER), "the User core schema");
    assert_eq!(
        user["schemaExtensions"][0]["schema"],
        json!(ENTERPRISE),
        "the Enterprise User extension"
    );
    assert_eq!(types[1]["schema"], json!(GROUP), "the Group core schema");
}

async fn schemas_listed(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let reply = fixture.get("/Schemas").await;
    reply.expect_status(200, "GET /Schemas");
    assert_eq!(
        reply.body["schemas"],
        json!([LIST_RESPONSE]),
        "expected /Schemas as a ListResponse"
    );
    let ids: Vec<&str> = reply.body["Resources"]
        .as_array()
        .expect("Resources is an array")
        .iter()
        .filter_map(|schema| schema["id"].as_str())
        .collect();
    for expected in [USER, ENTERPRISE, GROUP] {
        assert!(
            ids.contains(&expected),
            "expected {expected} in /Schemas, got {ids:?}"
        );
    }

    let types = fixture.get("/ResourceTypes").await;
    for resource_type in types.body["Resources"].as_array().into_iter().flatten() {
        let mut referenced = vec![resource_type["schema"].clone()];
        for extension in resource_type["schemaExtensions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            referenced.push(extension["schema"].clone());
        }
        for schema in referenced {
            let schema = schema.as_str().unwrap_or_default();
            assert!(
                ids.contains(&schema),
                "expected {schema}, referenced by {}, in /Schemas",
                resource_type["name"]
            );
        }
    }
}

async fn discovery_by_id(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    // (target, status, the `id` or `name` expected)
    let cases: [(String, u16, Option<&str>); 7] = [
        ("/ResourceTypes/User".to_owned(), 200, Some("User")),
        ("/ResourceTypes/Group".to_owned(), 200, Some("Group")),
        ("/ResourceTypes/Printer".to_owned(), 404, None),
        (format!("/Schemas/{USER}"), 200, Some(USER)),
        (format!("/Schemas/{ENTERPRISE}"), 200, Some(ENTERPRISE)),
        (format!("/Schemas/{GROUP}"), 200, Some(GROUP)),
        (
            "/Schemas/urn:ietf:params:scim:schemas:core:2.0:Printer".to_owned(),
            404,
            None,
        ),
    ];
    for (target, status, id) in cases {
        let reply = fixture.get(&target).await;
        match id {
            Some(id) => {
                reply.expect_status(status, &target);
                assert_eq!(reply.body["id"], json!(id), "{target}: id");
            }
            None => reply.expect_error(status, None, &format!("GET {target}")),
        }
    }
}

async fn discovery_rejects_writes(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let targets = [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/ResourceTypes/User",
        "/Schemas",
        "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
    ];
    for target in targets {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let call = fixture.call(method.clone(), target).json(&json!({}));
            let reply = fixture.send(call).await;
            reply.expect_error(405, None, &format!("{method} {target}"));
        }
    }
}

async fn unknown_endpoint_not_found(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    for target in ["/Printers", "/Users/a/b", "", "/"] {
        let reply = fixture.get(target).await;
        reply.expect_error(404, None, &format!("GET {target:?}"));
    }
}

async fn unsupported_methods_rejected(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    // (method, target, status)
    let cases = [
        (Method::DELETE, "/Users", 405),
        (Method::PUT, "/Users", 405),
        (Method::PATCH, "/Groups", 405),
        (Method::POST, "/Users/00919288221112222", 405),
        (Method::GET, "/Bulk", 501),
        (Method::POST, "/Bulk", 501),
        (Method::GET, "/Me", 501),
    ];
    for (method, target, status) in cases {
        let call = fixture.call(method.clone(), target).json(&json!({}));
        let reply = fixture.send(call).await;
        reply.expect_error(status, None, &format!("{method} {target}"));
    }
}

/// Returns `meta` of a resource, after checking its fields' types.
fn meta(resource: &Value, request: &str) -> Value {
    let meta = resource["meta"].clone();
    for field in [
        "resourceType",
        "created",
        "lastModified",
        "version",
        "location",
    ] {
        assert!(
            meta[field].is_string(),
            "{request}: expected meta.{field} as a string in {meta}"
        );
    }
    meta
}

async fn meta_on_create_and_patch(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let created = fixture
        .post(
            "/Users",
            &json!({ "schemas": [USER], "userName": "meta@example.com",
                     "meta": { "version": "W/\"99\"", "created": "2000-01-01T00:00:00Z" } }),
        )
        .await;
    created.expect_status(201, "POST /Users");
    let id = created.id();
    let first = meta(&created.body, "POST /Users");
    assert_eq!(first["resourceType"], json!("User"), "meta.resourceType");
    assert_eq!(
        first["created"], first["lastModified"],
        "expected created == lastModified on create"
    );
    assert_ne!(
        first["created"],
        json!("2000-01-01T00:00:00Z"),
        "expected client-sent meta ignored"
    );
    assert_eq!(first["version"], json!("W/\"1\""), "meta.version on create");
    assert_eq!(
        first["location"],
        json!(format!("{BASE_URL}/Users/{id}")),
        "meta.location"
    );
    assert_eq!(
        created.header(&ETAG),
        first["version"].as_str(),
        "expected ETag to equal meta.version"
    );
    chrono::DateTime::parse_from_rfc3339(first["created"].as_str().unwrap_or_default())
        .expect("meta.created is an RFC 3339 date-time");

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let patched = fixture
        .patch(
            &format!("/Users/{id}"),
            json!([{ "op": "replace", "path": "displayName", "value": "Meta" }]),
        )
        .await;
    patched.expect_status(200, "PATCH displayName");
    let second = meta(&patched.body, "PATCH");
    assert_eq!(
        second["created"], first["created"],
        "expected meta.created unchanged"
    );
    assert!(
        second["lastModified"].as_str() > first["lastModified"].as_str(),
        "expected lastModified to advance: {} then {}",
        first["lastModified"],
        second["lastModified"]
    );
    assert_eq!(
        second["version"],
        json!("W/\"2\""),
        "meta.version after PATCH"
    );

    let read = fixture.get(&format!("/Users/{id}")).await;
    assert_eq!(
        read.header(&ETAG),
        Some("W/\"2\""),
        "expected the ETag of GET to be the current version"
    );

    let group = fixture.group("Meta group", &[&id]).await;
    let group_read = fixture.get(&format!("/Groups/{group}")).await;
    let group_meta = meta(&group_read.body, "GET /Groups/{id}");
    assert_eq!(
        group_meta["resourceType"],
        json!("Group"),
        "group meta.resourceType"
    );
    assert_eq!(
        group_meta["location"],
        json!(format!("{BASE_URL}/Groups/{group}")),
        "group meta.location"
    );
    assert_eq!(
        group_read.body["members"][0]["$ref"],
        json!(format!("{BASE_URL}/Users/{id}")),
        "expected member $ref built from the base URL"
    );
}

async fn location_ignores_host(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let call = fixture
        .call(Method::POST, "/Users")
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "host=evil.example;proto=http")
        .json(&json!({ "schemas": [USER], "userName": "host@example.com" }));
    let reply = fixture.send(call).await;
    reply.expect_status(201, "POST /Users with a foreign Host");
    let id = reply.id();
    let expected = format!("{BASE_URL}/Users/{id}");
    assert_eq!(
        reply.header(&LOCATION),
        Some(expected.as_str()),
        "expected Location from the configured base URL"
    );
    assert_eq!(
        reply.body["meta"]["location"],
        json!(expected),
        "expected meta.location from the configured base URL"
    );
}

async fn stale_if_match_rejected(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture.user("etag@example.com").await;
    let target = format!("/Users/{id}");
    let changed = fixture
        .patch(
            &target,
            json!([{ "op": "replace", "path": "displayName", "value": "Version two" }]),
        )
        .await;
    changed.expect_status(200, "PATCH to version 2");
    let before = fixture.snapshot().await;

    let body = json!({ "schemas": [USER], "userName": "etag@example.com", "displayName": "Stale" });
    let stale_put = fixture
        .send(
            fixture
                .call(Method::PUT, &target)
                .header("if-match", "W/\"1\"")
                .json(&body),
        )
        .await;
    stale_put.expect_error(412, None, "PUT with a stale If-Match");

    let patch_body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": "displayName", "value": "Stale" }]
    });
    let stale_patch = fixture
        .send(
            fixture
                .call(Method::PATCH, &target)
                .header("if-match", "W/\"1\"")
                .json(&patch_body),
        )
        .await;
    stale_patch.expect_error(412, None, "PATCH with a stale If-Match");
    assert_eq!(
        fixture.snapshot().await,
        before,
        "expected the rejected writes to change nothing"
    );

    for if_match in ["W/\"2\"", "*"] {
        let reply = fixture
            .send(
                fixture
                    .call(Method::PUT, &target)
                    .header("if-match", if_match)
                    .json(&body),
            )
            .await;
        reply.expect_status(200, &format!("PUT with If-Match {if_match}"));
    }
    let read = fixture.get(&target).await;
    assert_eq!(
        read.body["meta"]["version"],
        json!("W/\"4\""),
        "expected two accepted PUTs after version 2"
    );
}

async fn if_match_on_delete_and_lists(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    let id = fixture.group("Etag group", &[]).await;
    let target = format!("/Groups/{id}");
    let renamed = fixture
        .patch(
            &target,
            json!([{ "op": "replace", "path": "displayName", "value": "Etag group 2" }]),
        )
        .await;
    assert!(
        renamed.status == 204 || renamed.status == 200,
        "PATCH to version 2 returned {}",
        renamed.status
    );

    let stale_delete = fixture
        .send(
            fixture
                .call(Method::DELETE, &target)
                .header("if-match", "W/\"1\""),
        )
        .await;
    stale_delete.expect_error(412, None, "DELETE with a stale If-Match");
    fixture
        .get(&target)
        .await
        .expect_status(200, "GET after the rejected DELETE");

    let malformed = fixture
        .send(
            fixture
                .call(Method::DELETE, &target)
                .header("if-match", "garbage"),
        )
        .await;
    malformed.expect_error(
        400,
        Some("invalidValue"),
        "DELETE with a malformed If-Match",
    );

    let listed = fixture
        .send(
            fixture
                .call(Method::DELETE, &target)
                .header("if-match", "W/\"1\", W/\"2\""),
        )
        .await;
    listed.expect_status(204, "DELETE with a list of tags naming the current version");
    fixture
        .get(&target)
        .await
        .expect_status(404, "GET after DELETE");
}

async fn search_paths_not_ids(backend: Backend) {
    let fixture = Fixture::new(backend).await;
    for method in [Method::PUT, Method::PATCH, Method::DELETE] {
        let reply = fixture
            .send(
                fixture
                    .call(method.clone(), "/Users/.search")
                    .json(&json!({})),
            )
            .await;
        reply.expect_error(405, None, &format!("{method} /Users/.search"));
    }
    let search = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "noSuchAttribute eq \"x\""
    });
    let reply = fixture.post("/.search", &search).await;
    reply.expect_error(
        400,
        Some("invalidFilter"),
        "POST /.search with an unknown attribute",
    );
}
