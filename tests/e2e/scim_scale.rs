//! 100,000 users, on each backend: seeded in-process through the
//! `Directory` API, then served by the real binary. Okta's existence check
//! (`userName eq`) must stay fast, and a full Okta import in pages of 100
//! must return every user once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::directory::postgres::PostgresDirectory;
use portcullis::directory::sqlite::SqliteDirectory;
use portcullis::directory::{Directory, ResourceKind};
use serde_json::{json, Value};

#[path = "../shared/postgres.rs"]
mod postgres;

use crate::support::scim::{filter_query, new_dir, sqlite_url, ScimClient, ScimStack, USER_URN};
use postgres::PostgresSchema;

/// Users in the directory.
const USERS: usize = 100_000;

/// Concurrent `Directory::create` calls while seeding.
const SEED_WORKERS: usize = 8;

/// `userName eq` requests timed.
const LOOKUPS: usize = 200;

/// Okta's import page size.
const PAGE: usize = 100;

/// Upper bound on the 99th percentile of a `userName eq` lookup on a debug
/// build. The aim on a release build is 5 ms.
const LOOKUP_P99_LIMIT: Duration = Duration::from_millis(50);

/// Upper bound on a full import on a debug build: generous, so only a
/// pathological slowdown fails it.
const IMPORT_LIMIT: Duration = Duration::from_secs(300);

fn user_name(n: usize) -> String {
    format!("user{n:05}@example.test")
}

fn user_document(n: usize) -> Value {
    json!({
        "schemas": [USER_URN],
        "userName": user_name(n),
        "externalId": format!("ext-{n:05}"),
        "displayName": format!("User {n:05}"),
        "name": { "givenName": "User", "familyName": format!("{n:05}") },
        "emails": [{ "value": user_name(n), "type": "work", "primary": true }],
        "active": true
    })
}

/// Creates [`USERS`] users with [`SEED_WORKERS`] concurrent creates.
async fn seed(directory: Arc<dyn Directory>, backend: &str) {
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..SEED_WORKERS {
        let directory = directory.clone();
        workers.push(tokio::spawn(async move {
            for n in (worker..USERS).step_by(SEED_WORKERS) {
                directory
                    .create(ResourceKind::User, user_document(n))
                    .await
                    .unwrap_or_else(|e| panic!("cannot seed user {n}: {e}"));
            }
        }));
    }
    for worker in workers {
        worker.await.expect("a seeding worker completes");
    }
    let stored = directory
        .count(ResourceKind::User)
        .await
        .expect("the directory counts users");
    assert_eq!(stored, USERS as u64, "expected every seeded user stored");
    println!(
        "{backend}: seeded {USERS} users in {:.1?}",
        started.elapsed()
    );
}

/// Returns the value at `percentile` (0 to 100) of sorted durations.
fn percentile(sorted: &[Duration], percentile: usize) -> Duration {
    let rank = (sorted.len() * percentile).div_ceil(100).max(1);
    sorted[rank - 1]
}

async fn time_lookups(client: &ScimClient, backend: &str) {
    let mut timings = Vec::with_capacity(LOOKUPS);
    for i in 0..LOOKUPS {
        // Spread over the whole range, in no particular order.
        let n = (i * 49_999 + 17) % USERS;
        let target = format!(
            "/Users{}",
            filter_query(&format!("userName eq \"{}\"", user_name(n)), "")
        );
        let reply = client.get(&target).await;
        reply.expect_status(200, &target);
        assert_eq!(
            reply.body["totalResults"],
            json!(1),
            "{target}: totalResults"
        );
        assert_eq!(
            reply.body["Resources"][0]["userName"],
            json!(user_name(n)),
            "{target}: the user"
        );
        timings.push(reply.elapsed);
    }
    timings.sort();
    let p50 = percentile(&timings, 50);
    let p99 = percentile(&timings, 99);
    println!("{backend}: {LOOKUPS} userName eq lookups over HTTP: p50 {p50:.1?}, p99 {p99:.1?}");
    assert!(
        p99 < LOOKUP_P99_LIMIT,
        "{backend}: expected p99 of userName eq under {LOOKUP_P99_LIMIT:?}, got {p99:?} (p50 {p50:?})"
    );
}

async fn time_import(client: &ScimClient, backend: &str) {
    let started = Instant::now();
    let mut ids = HashSet::with_capacity(USERS);
    let pages = USERS.div_ceil(PAGE);
    for page in 0..pages {
        let start_index = page * PAGE + 1;
        let target = format!("/Users?startIndex={start_index}&count={PAGE}");
        let reply = client.get(&target).await;
        reply.expect_status(200, &target);
        assert_eq!(
            reply.body["totalResults"],
            json!(USERS),
            "{target}: totalResults"
        );
        let resources = reply.body["Resources"]
            .as_array()
            .unwrap_or_else(|| panic!("{target}: expected Resources in {}", reply.text));
        assert_eq!(
            resources.len(),
            PAGE.min(USERS - page * PAGE),
            "{target}: page size"
        );
        for resource in resources {
            let id = resource["id"].as_str().unwrap_or_default().to_owned();
            assert!(ids.insert(id), "{target}: an id returned twice");
        }
    }
    let elapsed = started.elapsed();
    println!("{backend}: imported {USERS} users in {pages} pages of {PAGE} in {elapsed:.1?}");
    assert_eq!(ids.len(), USERS, "expected every user imported once");
    assert!(
        elapsed < IMPORT_LIMIT,
        "{backend}: the import took {elapsed:?}, over {IMPORT_LIMIT:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale test: scripts/test.sh runs it alone, after the other tests"]
async fn hundred_thousand_sqlite() {
    let dir = new_dir();
    let directory = SqliteDirectory::open(&sqlite_url(dir.path()))
        .await
        .expect("the SQLite directory opens in the test folder");
    let directory: Arc<dyn Directory> = Arc::new(directory);
    seed(directory.clone(), "SQLite").await;
    drop(directory);

    let stack = ScimStack::start_in(dir, &[]).await;
    let client = stack.client();
    time_lookups(&client, "SQLite").await;
    time_import(&client, "SQLite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scale test: scripts/test.sh runs it alone, after the other tests"]
async fn hundred_thousand_postgres() {
    let schema = PostgresSchema::create().await;
    let directory = PostgresDirectory::connect_with(schema.options())
        .await
        .expect("the PostgreSQL directory opens in a fresh schema");
    let directory: Arc<dyn Directory> = Arc::new(directory);
    seed(directory.clone(), "PostgreSQL").await;
    drop(directory);

    let url = schema.url();
    let stack = ScimStack::start(&[
        ("PORTCULLIS_DIRECTORY__BACKEND", "postgres"),
        ("PORTCULLIS_DIRECTORY__URL", &url),
    ])
    .await;
    let client = stack.client();
    time_lookups(&client, "PostgreSQL").await;
    time_import(&client, "PostgreSQL").await;
}
