//! Fills a directory with numbered SCIM users for the benchmark in
//! `scripts/bench.sh`, through the same `Directory` API that SCIM requests
//! use, so the rows and indexes are the ones the server reads.
//!
//! ```text
//! cargo run --release --example bench_seed -- sqlite sqlite:///tmp/bench.db 100000
//! cargo run --release --example bench_seed -- postgres 'postgres://postgres@127.0.0.1:5432/test' 100000
//! ```
//!
//! User `n` (counted from 0) has `userName` `user<n, 6 digits>@example.test`,
//! which is what the benchmark's filter requests look up. It prints one line
//! with the number of users and the time taken.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use portcullis::config::DirectoryBackend;
use portcullis::directory::{self, Directory, ResourceKind};
use serde_json::{json, Value};

/// Concurrent `Directory::create` calls. SQLite serialises the writes, so
/// more only helps PostgreSQL.
const WORKERS: usize = 8;

fn user_document(n: usize) -> Value {
    let user_name = format!("user{n:06}@example.test");
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "externalId": format!("ext-{n:06}"),
        "displayName": format!("User {n:06}"),
        "name": { "givenName": "User", "familyName": format!("{n:06}") },
        "emails": [{ "value": user_name, "type": "work", "primary": true }],
        "active": true
    })
}

fn parse_backend(name: &str) -> anyhow::Result<DirectoryBackend> {
    match name {
        "sqlite" => Ok(DirectoryBackend::Sqlite),
        "postgres" => Ok(DirectoryBackend::Postgres),
        other => bail!("backend must be sqlite or postgres, got {other:?}"),
    }
}

async fn seed(directory: Arc<dyn Directory>, users: usize) -> anyhow::Result<()> {
    let mut workers = Vec::with_capacity(WORKERS);
    for worker in 0..WORKERS {
        let directory = directory.clone();
        workers.push(tokio::spawn(async move {
            for n in (worker..users).step_by(WORKERS) {
                directory
                    .create(ResourceKind::User, user_document(n))
                    .await
                    .with_context(|| format!("creating user {n}"))?;
            }
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await.context("a seeding task panicked")??;
    }
    Ok(())
}

/// Runs `VACUUM ANALYZE` on the database, as autovacuum does some time
/// after a bulk load. Without it the first minutes after seeding measure a
/// table whose index-only scans still read every row from the heap, which
/// a long-running directory does not.
async fn vacuum(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;

    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL to vacuum")?;
    sqlx::query("VACUUM ANALYZE")
        .execute(&mut connection)
        .await
        .context("VACUUM ANALYZE after seeding")?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [backend, url, users] = arguments.as_slice() else {
        bail!("usage: bench_seed sqlite|postgres URL USERS");
    };
    let backend = parse_backend(backend)?;
    let users: usize = users
        .parse()
        .with_context(|| format!("USERS must be a whole number, got {users:?}"))?;

    let started = Instant::now();
    let directory = directory::open(backend, url)
        .await
        .with_context(|| format!("opening the directory at {url}"))?;
    seed(directory.clone(), users).await?;
    let stored = directory.count(ResourceKind::User).await?;
    if stored != users as u64 {
        bail!("expected {users} users in the directory, found {stored}");
    }
    if backend == DirectoryBackend::Postgres {
        vacuum(url).await?;
    }
    println!(
        "seeded {users} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
