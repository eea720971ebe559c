//! Okta's "SCIM 2.0 SPEC Test" (the Runscope collection Okta publishes for
//! SCIM integrations), its twelve steps in order over HTTP against the real
//! binary, with Okta's request headers.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::scim::{
    filter_query, ScimClient, ScimReply, ScimStack, LIST_RESPONSE_URN, SCIM_MEDIA_TYPE, USER_URN,
};

/// The user agent of Okta's provisioning client.
const OKTA_USER_AGENT: &str = "Okta SCIM Client 1.0.0";

/// The collection's limit on the `/Groups` request of step 10.
const GROUPS_RESPONSE_LIMIT: Duration = Duration::from_millis(600);

/// Sends a request with Okta's headers.
async fn okta(
    client: &ScimClient,
    method: Method,
    target: &str,
    body: Option<&Value>,
) -> ScimReply {
    let mut request = client
        .request(method, target)
        .header(USER_AGENT, OKTA_USER_AGENT)
        .header(ACCEPT, "application/scim+json; charset=utf-8")
        .header("Accept-Charset", "utf-8");
    if let Some(body) = body {
        request = request
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    client.send(request).await
}

/// Asserts that `user` has the non-empty fields step 1 and 2 check.
fn assert_full_user(user: &Value, step: &str) {
    for pointer in [
        "/id",
        "/name/familyName",
        "/name/givenName",
        "/userName",
        "/emails/0/value",
    ] {
        assert!(
            user.pointer(pointer)
                .and_then(Value::as_str)
                .is_some_and(|value| !value.is_empty()),
            "{step}: expected a non-empty {pointer} in {user}"
        );
    }
    assert!(
        user["active"].is_boolean(),
        "{step}: expected active as a boolean in {user}"
    );
}

fn assert_scim_json(reply: &ScimReply, step: &str) {
    assert!(
        reply.content_type().starts_with(SCIM_MEDIA_TYPE),
        "{step}: expected Content-Type {SCIM_MEDIA_TYPE}, got {:?}",
        reply.content_type()
    );
}

fn assert_list_response(reply: &ScimReply, step: &str) {
    assert!(
        reply.body["schemas"]
            .as_array()
            .is_some_and(|schemas| schemas.contains(&json!(LIST_RESPONSE_URN))),
        "{step}: expected the ListResponse schema in {}",
        reply.text
    );
    for field in ["itemsPerPage", "startIndex", "totalResults"] {
        assert!(
            reply.body[field].is_number(),
            "{step}: expected {field} as a number in {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn okta_spec_steps() {
    let stack = ScimStack::start(&[]).await;
    let client = stack.client();
    let seeded = client
        .post(
            "/Users",
            &json!({
                "schemas": [USER_URN],
                "userName": "seeded.user@example.test",
                "name": { "givenName": "Seeded", "familyName": "User" },
                "emails": [{ "value": "seeded.user@example.test", "type": "work", "primary": true }],
                "active": true
            }),
        )
        .await;
    seeded.expect_status(201, "seed one fully populated user");

    let random = format!("{:016x}", rand_suffix());
    let random_user_name = format!("okta.spec.{random}@example.test");
    let random_user_name_caps = random_user_name.to_uppercase();
    let invalid_user_email = format!("invalid.{random}@example.test");
    let user_id_that_does_not_exist = format!("010101{random}");

    let step = "step 1 (GET /Users?count=1&startIndex=1)";
    let reply = okta(&client, Method::GET, "/Users?count=1&startIndex=1", None).await;
    reply.expect_status(200, step);
    assert_scim_json(&reply, step);
    assert_list_response(&reply, step);
    let first = &reply.body["Resources"][0];
    assert_full_user(first, step);
    let isv_user_id = first["id"].as_str().unwrap_or_default().to_owned();

    let step = "step 2 (GET /Users/{ISVUserid})";
    let reply = okta(&client, Method::GET, &format!("/Users/{isv_user_id}"), None).await;
    reply.expect_status(200, step);
    assert_full_user(&reply.body, step);
    assert_eq!(reply.body["id"], json!(isv_user_id), "{step}: the same id");

    let step = "step 3 (filter on InvalidUserEmail)";
    let target = format!(
        "/Users{}",
        filter_query(&format!("userName eq \"{invalid_user_email}\""), "")
    );
    let reply = okta(&client, Method::GET, &target, None).await;
    reply.expect_status(200, step);
    assert_list_response(&reply, step);
    assert_eq!(reply.body["totalResults"], json!(0), "{step}: totalResults");

    let step = "step 4 (GET /Users/{UserIdThatDoesNotExist})";
    let reply = okta(
        &client,
        Method::GET,
        &format!("/Users/{user_id_that_does_not_exist}"),
        None,
    )
    .await;
    reply.expect_error(404, step);

    let step = "step 5 (filter on a random userName)";
    let target = format!(
        "/Users{}",
        filter_query(&format!("userName eq \"{random_user_name}\""), "")
    );
    let reply = okta(&client, Method::GET, &target, None).await;
    reply.expect_status(200, step);
    assert_list_response(&reply, step);
    assert_eq!(reply.body["totalResults"], json!(0), "{step}: totalResults");

    let step = "step 6 (POST /Users)";
    let new_user = json!({
        "schemas": [USER_URN],
        "userName": random_user_name,
        "name": { "givenName": "Okta", "familyName": "Spec" },
        "emails": [{ "primary": true, "value": random_user_name, "type": "work" }],
        "displayName": "Okta Spec",
        "active": true
    });
    let reply = okta(&client, Method::POST, "/Users", Some(&new_user)).await;
    reply.expect_status(201, step);
    assert_scim_json(&reply, step);
    assert_eq!(reply.body["active"], json!(true), "{step}: active");
    let created_id = reply.body["id"].as_str().unwrap_or_default().to_owned();
    assert!(!created_id.is_empty(), "{step}: expected an id");
    for pointer in ["/userName", "/name/givenName", "/name/familyName"] {
        assert_eq!(
            reply.body.pointer(pointer),
            new_user.pointer(pointer),
            "{step}: {pointer} echoed exactly"
        );
    }
    assert!(
        reply.body["schemas"]
            .as_array()
            .is_some_and(|schemas| schemas.contains(&json!(USER_URN))),
        "{step}: expected the core User schema in {}",
        reply.text
    );

    let step = "step 7 (GET the created user)";
    let reply = okta(&client, Method::GET, &format!("/Users/{created_id}"), None).await;
    reply.expect_status(200, step);
    assert_eq!(
        reply.body["userName"],
        json!(random_user_name),
        "{step}: userName"
    );

    let step = "step 8 (POST the same user again)";
    let reply = okta(&client, Method::POST, "/Users", Some(&new_user)).await;
    reply.expect_error(409, step);

    let step = "step 9 (filter on the userName in capitals)";
    let target = format!(
        "/Users{}",
        filter_query(&format!("userName eq \"{random_user_name_caps}\""), "")
    );
    let reply = okta(&client, Method::GET, &target, None).await;
    reply.expect_status(200, step);
    assert_eq!(reply.body["totalResults"], json!(1), "{step}: totalResults");
    assert_eq!(
        reply.body["Resources"][0]["id"],
        json!(created_id),
        "{step}: the created user"
    );

    let step = "step 10 (GET /Groups)";
    let reply = okta(&client, Method::GET, "/Groups", None).await;
    reply.expect_status(200, step);
    if reply.body["totalResults"].as_u64().unwrap_or_default() > 0 {
        assert!(
            reply.body["Resources"].is_array(),
            "{step}: expected Resources as an array in {}",
            reply.text
        );
    }
    assert!(
        reply.elapsed < GROUPS_RESPONSE_LIMIT,
        "{step}: took {:?}, over {GROUPS_RESPONSE_LIMIT:?}",
        reply.elapsed
    );

    let step = "step 11 (Authorization: non-token)";
    let request = client
        .anonymous(Method::GET, "/Users")
        .header(AUTHORIZATION, "non-token")
        .header(USER_AGENT, OKTA_USER_AGENT);
    let reply = client.send(request).await;
    reply.expect_error(401, step);

    let step = "step 12 (GET /Users/00919288221112222)";
    let reply = okta(&client, Method::GET, "/Users/00919288221112222", None).await;
    reply.expect_error(404, step);
}

/// Returns 64 random bits for the step variables.
fn rand_suffix() -> u64 {
    rand::random()
}
