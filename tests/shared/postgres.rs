//! A PostgreSQL schema of its own for one test, shared by the `scim` and
//! `e2e` test crates through `#[path]`. Tests in separate schemas never see
//! each other's rows, so they run in parallel on one server, and CI runs
//! can share it.

use std::str::FromStr;

use rand::RngCore;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor};

/// The PostgreSQL server the tests use unless `DATABASE_URL` names another.
const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Returns the URL of the PostgreSQL server: `DATABASE_URL` or the local
/// default.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned())
}

/// A schema of its own in the test server, dropped when the guard is, even
/// while a failed assertion unwinds.
pub struct PostgresSchema {
    url: String,
    /// The schema name, `portcullis_scim_<16 hex digits>`.
    pub name: String,
}

impl PostgresSchema {
    /// Creates a schema with a random name. Fails the test, never skips
    /// it, when the server is unreachable.
    pub async fn create() -> PostgresSchema {
        let url = database_url();
        let mut random = [0_u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let suffix: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        let name = format!("portcullis_scim_{suffix}");
        let mut admin = admin_connection(&url).await;
        admin
            .execute(format!("CREATE SCHEMA {name}").as_str())
            .await
            .unwrap_or_else(|error| panic!("cannot create schema {name}: {error}"));
        PostgresSchema { url, name }
    }

    /// Returns the server URL with `options=-c search_path=<schema>`, for a
    /// process that reads its database URL from configuration.
    pub fn url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.url, self.name
        )
    }

    /// Returns connection options whose `search_path` is this schema.
    pub fn options(&self) -> PgConnectOptions {
        PgConnectOptions::from_str(&self.url)
            .expect("DATABASE_URL is a PostgreSQL URL")
            .options([("search_path", self.name.as_str())])
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        let url = self.url.clone();
        let name = self.name.clone();
        // Drop cannot await, and the test's runtime may be shutting down,
        // so the schema is dropped on a thread with a runtime of its own.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for dropping the test schema builds");
            runtime.block_on(async {
                let mut admin = admin_connection(&url).await;
                admin
                    .execute(format!("DROP SCHEMA {name} CASCADE").as_str())
                    .await
                    .map(drop)
            })
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("failed to drop test schema: {error}"),
            Err(_) => eprintln!("failed to drop test schema: the dropping thread panicked"),
        }
    }
}

async fn admin_connection(url: &str) -> sqlx::PgConnection {
    let options = PgConnectOptions::from_str(url).expect("DATABASE_URL is a PostgreSQL URL");
    let address = format!("{}:{}", options.get_host(), options.get_port());
    sqlx::PgConnection::connect_with(&options)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot connect to PostgreSQL at {address} ({error}); these tests need a \
                 server: start PostgreSQL on 127.0.0.1:5432 or set DATABASE_URL"
            )
        })
}
