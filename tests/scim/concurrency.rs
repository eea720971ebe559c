//! Requests that race: creates of one `userName` in different letter cases,
//! and membership PATCHes of one group.

use std::sync::Arc;

use portcullis::directory::ResourceKind;
use serde_json::json;

use crate::support::{both_backends, Backend, Fixture, USER};

/// Concurrent creates of the same `userName`.
const RACING_CREATES: usize = 50;

/// Concurrent PATCHes that each add one member to the same group.
const RACING_MEMBER_ADDS: usize = 20;

both_backends!(racing_creates_one_wins, racing_member_adds_kept);

/// Spells `user_name` with the letters whose index bit is set in `mask`
/// upper-cased, so each mask gives a different case variant.
fn case_variant(user_name: &str, mask: usize) -> String {
    let mut letter = 0;
    user_name
        .chars()
        .map(|c| {
            if !c.is_ascii_alphabetic() {
                return c;
            }
            letter += 1;
            if mask & (1 << (letter - 1)) != 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

async fn racing_creates_one_wins(backend: Backend) {
    let fixture = Arc::new(Fixture::new(backend).await);
    let mut tasks = Vec::new();
    for n in 0..RACING_CREATES {
        let fixture = fixture.clone();
        tasks.push(tokio::spawn(async move {
            let user_name = case_variant("race.condition@example.com", n);
            let body = json!({ "schemas": [USER], "userName": user_name });
            fixture.post("/Users", &body).await
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for task in tasks {
        let reply = task.await.expect("the create task completes");
        match reply.status.as_u16() {
            201 => created += 1,
            409 => {
                reply.expect_error(409, Some("uniqueness"), "a racing duplicate");
                conflicts += 1;
            }
            other => panic!(
                "expected 201 or 409 from a racing create, got {other}: {}",
                reply.body
            ),
        }
    }
    assert_eq!(created, 1, "expected exactly one create to win");
    assert_eq!(
        conflicts,
        RACING_CREATES - 1,
        "expected every other create to get 409"
    );
    let stored = fixture
        .directory
        .count(ResourceKind::User)
        .await
        .expect("the directory counts users");
    assert_eq!(stored, 1, "expected one stored user");
}

async fn racing_member_adds_kept(backend: Backend) {
    let fixture = Arc::new(Fixture::new(backend).await);
    let mut users = Vec::new();
    for n in 0..RACING_MEMBER_ADDS {
        users.push(fixture.user(&format!("member{n}@example.com")).await);
    }
    let group = fixture.group("Crowded", &[]).await;

    let mut tasks = Vec::new();
    for user in &users {
        let fixture = fixture.clone();
        let target = format!("/Groups/{group}");
        let user = user.clone();
        tasks.push(tokio::spawn(async move {
            let operations =
                json!([{ "op": "add", "path": "members", "value": [{ "value": user }] }]);
            fixture.patch(&target, operations).await
        }));
    }

    let mut added = Vec::new();
    let mut failures = Vec::new();
    for (user, task) in users.iter().zip(tasks) {
        let reply = task.await.expect("the PATCH task completes");
        if reply.status.as_u16() == 204 {
            added.push(user.clone());
        } else {
            failures.push(format!("{} {}", reply.status, reply.body));
        }
    }
    added.sort();
    assert_eq!(
        fixture.member_ids(&group).await,
        added,
        "expected every member whose add returned 204 in the group, and no other"
    );
    assert!(
        failures.is_empty(),
        "expected all {RACING_MEMBER_ADDS} racing member adds to return 204, {} did not:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
