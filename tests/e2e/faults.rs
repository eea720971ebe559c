//! Faults of the directory's database: PostgreSQL stopped and started
//! again under a running portcullis.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::postgres::PostgresServer;
use crate::support::scim::{ScimClient, ScimStack, SCIM_MEDIA_TYPE};

/// Time allowed for SCIM to work again after PostgreSQL is back.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(15);

fn user(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "active": true,
        "emails": [{ "value": name, "primary": true }],
    })
}

/// PATCH that adds `member` to a group.
async fn add_member(client: &ScimClient, group: &str, member: &str) -> u16 {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "add", "path": "members", "value": [{ "value": member }] }],
    });
    let request = client
        .request(Method::PATCH, &format!("/Groups/{group}"))
        .header(reqwest::header::CONTENT_TYPE, SCIM_MEDIA_TYPE)
        .body(body.to_string());
    client.send(request).await.status.as_u16()
}

#[tokio::test]
async fn postgres_restart_loses_nothing() {
    let mut postgres = PostgresServer::start().await;
    let url = postgres.url();
    let stack = ScimStack::start(&[
        ("PORTCULLIS_DIRECTORY__BACKEND", "postgres"),
        ("PORTCULLIS_DIRECTORY__URL", &url),
    ])
    .await;
    let client = stack.client();
    let alice = client.post("/Users", &user("alice@example.test")).await;
    alice.expect_status(201, "POST alice");
    let alice_id = alice.body["id"].as_str().expect("an id").to_owned();
    let bob = client.post("/Users", &user("bob@example.test")).await;
    bob.expect_status(201, "POST bob");
    let bob_id = bob.body["id"].as_str().expect("an id").to_owned();
    let group = client
        .post(
            "/Groups",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "admins",
                "members": [{ "value": alice_id }],
            }),
        )
        .await;
    group.expect_status(201, "POST group");
    let group_id = group.body["id"].as_str().expect("an id").to_owned();

    postgres.stop().await;
    let carol = client.post("/Users", &user("carol@example.test")).await;
    carol.expect_error(503, "POST carol while PostgreSQL is down");
    client
        .get("/Users")
        .await
        .expect_error(503, "GET /Users while PostgreSQL is down");
    assert_eq!(
        add_member(&client, &group_id, &bob_id).await,
        503,
        "PATCH while PostgreSQL is down"
    );
    let readiness = reqwest::get(stack.portcullis.admin_url("/readyz"))
        .await
        .expect("the admin listener responds");
    assert_eq!(
        readiness.status(),
        503,
        "readiness while PostgreSQL is down"
    );
    let readiness: Value = readiness.json().await.expect("readiness JSON");
    assert!(
        readiness["failed"].to_string().contains("directory"),
        "expected the directory check to fail, got {readiness}"
    );

    postgres.restart().await;
    let started = std::time::Instant::now();
    let listed = loop {
        let reply = client.get("/Users?count=100").await;
        if reply.status == 200 {
            break reply;
        }
        assert!(
            started.elapsed() < RECOVERY_TIMEOUT,
            "expected SCIM to recover within {RECOVERY_TIMEOUT:?}, still {} {}",
            reply.status,
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "SCIM recovered {:?} after PostgreSQL restarted",
        started.elapsed()
    );
    let names: Vec<&str> = listed.body["Resources"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|user| user["userName"].as_str())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "expected alice and bob and nothing from the failed POST, got {names:?}"
    );
    let group = client.get(&format!("/Groups/{group_id}")).await;
    group.expect_status(200, "GET group after recovery");
    assert_eq!(
        group.body["members"].as_array().map(Vec::len),
        Some(1),
        "expected the failed PATCH to have changed nothing: {}",
        group.text
    );

    client
        .post("/Users", &user("carol@example.test"))
        .await
        .expect_status(201, "POST carol again after recovery");
    assert!(
        matches!(add_member(&client, &group_id, &bob_id).await, 200 | 204),
        "PATCH again after recovery"
    );
    let readiness = reqwest::get(stack.portcullis.admin_url("/readyz"))
        .await
        .expect("the admin listener responds");
    assert_eq!(readiness.status(), 200, "readiness after recovery");
}
