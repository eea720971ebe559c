//! The PostgreSQL directory, for several replicas sharing one database.
//!
//! Every replica keeps a pool of connections. The unique indexes decide
//! races between replicas: of two concurrent writes of one `userName`, the
//! second waits for the first to commit and then fails with a unique
//! violation, reported as [`DirectoryError::Conflict`]. Writes that check a
//! version update the row with `WHERE version = $n`, which PostgreSQL
//! re-evaluates after waiting for a concurrent writer's lock, so two
//! read-modify-writes of one group cannot both succeed.
//!
//! The schema is created and migrated at start from the scripts under
//! `migrations/postgres/`, embedded in the binary. The check and the scripts
//! run in one transaction that first takes a transaction-level advisory
//! lock keyed on the current schema, so replicas starting together apply
//! each script once, and tests in separate schemas do not wait for each
//! other. The table `portcullis_schema_version` records the applied
//! versions.
//!
//! Built without TLS support: a URL with `sslmode=require` fails to
//! connect. Use the database over loopback or the cluster network. A
//! statement timeout can be set in the URL, for example
//! `?options=-c%20statement_timeout%3D5s`; a statement that exceeds it
//! returns [`DirectoryError::Unavailable`].

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Executor, Row};

use super::cursor::{self, PageCursors, PageStart};
use super::document::{self, Condition, IndexedColumn, Member, PreparedGroup, PreparedUser};
use super::{Directory, DirectoryError, Listing, Lookup, Page, ResourceKind, StoredResource};
use crate::tokens::TokenRecord;

/// The migration scripts in order; script `n` (1-based) brings the schema to
/// version n. Published scripts are never edited, only appended to.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/postgres/0001_initial.sql"),
    include_str!("migrations/postgres/0002_unique_user_external_id.sql"),
];

/// Connections per replica. PostgreSQL's default `max_connections` is 100,
/// which leaves room for several replicas.
const MAX_CONNECTIONS: u32 = 10;

/// How long a request waits for a pooled connection, including opening a
/// new one, before the directory reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The columns every resource query selects, in [`resource_from_row`]'s
/// order.
const RESOURCE_COLUMNS: &str = "id, document, created, last_modified, version";

/// Starts the read transaction of a listing: one snapshot for the total and
/// the page.
const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// A directory in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresDirectory {
    pool: PgPool,
    /// Shared by clones, so every request of the process can continue
    /// another's page.
    cursors: Arc<PageCursors>,
}

impl PostgresDirectory {
    /// Connects to the database at `url` (`postgres://user@host:port/db`)
    /// and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self, DirectoryError> {
        // The parse error never echoes the URL, which may contain a password.
        let options = PgConnectOptions::from_str(url).map_err(|error| {
            DirectoryError::Internal(format!("invalid PostgreSQL URL: {error}"))
        })?;
        Self::connect_with(options).await
    }

    /// Connects with prepared options, for example with a `search_path`
    /// set through [`PgConnectOptions::options`], and brings the schema up
    /// to date.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, DirectoryError> {
        let address = format!("{}:{}", options.get_host(), options.get_port());
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|error| match database_error(error) {
                DirectoryError::Unavailable(message) => DirectoryError::Unavailable(format!(
                    "cannot connect to PostgreSQL at {address}: {message}"
                )),
                other => other,
            })?;
        let directory = PostgresDirectory {
            pool,
            cursors: Arc::default(),
        };
        directory.migrate().await?;
        Ok(directory)
    }

    /// Applies the migration scripts this schema has not run yet.
    async fn migrate(&self) -> Result<(), DirectoryError> {
        let mut transaction = self.pool.begin().await.map_err(database_error)?;
        let applied = lock_schema_version(&mut transaction).await?;

        for (index, script) in MIGRATIONS.iter().enumerate().skip(applied) {
            let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
            // A query without parameters may hold several statements.
            transaction
                .execute(*script)
                .await
                .map_err(|error| super::migration_error(index + 1, database_error(error)))?;
            sqlx::query("INSERT INTO portcullis_schema_version (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *transaction)
                .await
                .map_err(database_error)?;
            tracing::info!(version, "migrated the PostgreSQL directory schema");
        }
        transaction.commit().await.map_err(database_error)
    }

    /// Runs `EXPLAIN` on the query [`Directory::list`] runs.
    #[cfg(test)]
    pub(crate) async fn list_query_plan(&self, kind: ResourceKind, lookup: &Lookup) -> String {
        let condition = document::lookup_condition(kind, Some(lookup));
        let Condition::Equals(_, value) = &condition else {
            return String::new();
        };
        let sql = format!(
            "EXPLAIN {}",
            page_sql(kind, &condition, PageStart::Offset(0))
        );
        let rows = sqlx::query(&sql)
            .bind(value)
            .bind(100_i64)
            .bind(0_i64)
            .fetch_all(&self.pool)
            .await
            .expect("EXPLAIN runs");
        rows.iter()
            .map(|row| row.get::<String, _>(0))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Inserts `count` users named `user{n}@example.com` in one
    /// transaction, faster than `count` calls of [`Directory::create`], and
    /// refreshes the planner's statistics.
    #[cfg(test)]
    pub(crate) async fn insert_test_users(&self, count: usize) {
        const BATCH: usize = 10_000;
        let now = super::now();
        let mut transaction = self.pool.begin().await.expect("begin");
        for start in (0..count).step_by(BATCH) {
            let mut ids = Vec::new();
            let mut user_name_keys = Vec::new();
            let mut external_ids = Vec::new();
            let mut display_name_keys = Vec::new();
            let mut documents = Vec::new();
            let mut email_keys = Vec::new();
            for n in start..count.min(start + BATCH) {
                let user = document::prepare_user(super::conformance::test_user(n))
                    .expect("test user is valid");
                ids.push(super::new_id());
                user_name_keys.push(user.user_name_key);
                external_ids.push(user.external_id);
                display_name_keys.push(user.display_name_key);
                documents.push(user.document);
                email_keys.push(user.email_keys.into_iter().next());
            }
            sqlx::query(
                "INSERT INTO users (id, user_name_key, external_id, display_name_key, document, \
                 created, last_modified, version) \
                 SELECT id, user_name_key, external_id, display_name_key, document, $6, $6, 1 \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[]) \
                 AS batch(id, user_name_key, external_id, display_name_key, document)",
            )
            .bind(&ids)
            .bind(&user_name_keys)
            .bind(&external_ids)
            .bind(&display_name_keys)
            .bind(documents.into_iter().map(Json).collect::<Vec<_>>())
            .bind(now)
            .execute(&mut *transaction)
            .await
            .expect("insert test users");
            sqlx::query(
                "INSERT INTO user_emails (user_id, email_key) \
                 SELECT * FROM unnest($1::text[], $2::text[])",
            )
            .bind(&ids)
            .bind(&email_keys)
            .execute(&mut *transaction)
            .await
            .expect("insert test user emails");
        }
        transaction.commit().await.expect("commit test users");
        sqlx::query("ANALYZE users, user_emails")
            .execute(&self.pool)
            .await
            .expect("analyze test users");
    }

    /// Closes the pool's connections.
    #[cfg(test)]
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// Takes the schema's migration lock for the rest of the transaction and
/// returns the number of migration scripts already applied.
async fn lock_schema_version(connection: &mut PgConnection) -> Result<usize, DirectoryError> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(\
         hashtextextended('portcullis directory ' || current_schema(), 0))",
    )
    .execute(&mut *connection)
    .await
    .map_err(database_error)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS portcullis_schema_version (version INTEGER PRIMARY KEY)",
    )
    .execute(&mut *connection)
    .await
    .map_err(database_error)?;

    let applied: i32 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM portcullis_schema_version")
            .fetch_one(&mut *connection)
            .await
            .map_err(database_error)?;
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(DirectoryError::Internal(format!(
            "the database schema is at version {applied}, newer than version {} that this \
             portcullis supports; upgrade portcullis",
            MIGRATIONS.len()
        )));
    }
    Ok(applied)
}

/// SQLSTATE classes that mean "try again later": connection exceptions (08),
/// transaction rollbacks such as deadlocks (40), insufficient resources (53),
/// operator intervention such as a statement timeout or shutdown (57), and
/// a lock that could not be obtained (55P03).
fn is_transient(error: &dyn sqlx::error::DatabaseError) -> bool {
    let code = error.code().unwrap_or_default();
    ["08", "40", "53", "57"]
        .iter()
        .any(|class| code.starts_with(class))
        || code == "55P03"
}

fn database_error(error: sqlx::Error) -> DirectoryError {
    super::database_error(error, is_transient)
}

fn write_error(error: sqlx::Error, attribute: &'static str) -> DirectoryError {
    super::write_error(error, attribute, is_transient)
}

fn table(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::User => "users",
        ResourceKind::Group => "groups",
    }
}

/// Returns the `WHERE` clause of a lookup, with its value as `$1`.
fn where_clause(condition: &Condition) -> &'static str {
    match condition {
        Condition::All | Condition::Nothing => "",
        Condition::Equals(column, _) => match column {
            IndexedColumn::Id => " WHERE id = $1",
            IndexedColumn::UserNameKey => " WHERE user_name_key = $1",
            IndexedColumn::ExternalId => " WHERE external_id = $1",
            IndexedColumn::DisplayNameKey => " WHERE display_name_key = $1",
            IndexedColumn::EmailKey => {
                " WHERE id IN (SELECT user_id FROM user_emails WHERE email_key = $1)"
            }
        },
    }
}

/// Builds the query of one page, which also reads each row's `seq`. The
/// lookup value (if any) is `$1`, and the limit and start are the next two
/// parameters.
fn page_sql(kind: ResourceKind, condition: &Condition, start: PageStart) -> String {
    let next = match condition {
        Condition::Equals(..) => 2,
        Condition::All | Condition::Nothing => 1,
    };
    format!(
        "SELECT {RESOURCE_COLUMNS}, seq FROM {}{}",
        table(kind),
        cursor::page_bounds(where_clause(condition), start, next)
    )
}

fn resource_from_row(kind: ResourceKind, row: &PgRow) -> Result<StoredResource, DirectoryError> {
    let document: Json<Value> = row.try_get("document").map_err(database_error)?;
    Ok(StoredResource {
        id: row.try_get("id").map_err(database_error)?,
        kind,
        document: document.0,
        created: row.try_get("created").map_err(database_error)?,
        last_modified: row.try_get("last_modified").map_err(database_error)?,
        version: row.try_get("version").map_err(database_error)?,
    })
}

fn token_from_row(row: &PgRow) -> Result<TokenRecord, DirectoryError> {
    Ok(TokenRecord {
        id: row.try_get("id").map_err(database_error)?,
        name: row.try_get("name").map_err(database_error)?,
        hash: row.try_get("hash").map_err(database_error)?,
        created: row.try_get("created").map_err(database_error)?,
        last_used: row.try_get("last_used").map_err(database_error)?,
        revoked: row.try_get("revoked").map_err(database_error)?,
    })
}

async fn insert_user(
    connection: &mut PgConnection,
    user: PreparedUser,
) -> Result<StoredResource, DirectoryError> {
    let id = super::new_id();
    let now = super::now();
    sqlx::query(
        "INSERT INTO users (id, user_name_key, external_id, display_name_key, document, \
         created, last_modified, version) VALUES ($1, $2, $3, $4, $5, $6, $6, 1)",
    )
    .bind(&id)
    .bind(&user.user_name_key)
    .bind(&user.external_id)
    .bind(&user.display_name_key)
    .bind(Json(&user.document))
    .bind(now)
    .execute(&mut *connection)
    .await
    .map_err(|error| write_error(error, "userName"))?;
    insert_emails(connection, &id, &user.email_keys).await?;
    Ok(StoredResource {
        id,
        kind: ResourceKind::User,
        document: user.document,
        created: now,
        last_modified: now,
        version: 1,
    })
}

async fn insert_group(
    connection: &mut PgConnection,
    group: PreparedGroup,
) -> Result<StoredResource, DirectoryError> {
    let id = super::new_id();
    let now = super::now();
    sqlx::query(
        "INSERT INTO groups (id, display_name, display_name_key, external_id, document, \
         created, last_modified, version) VALUES ($1, $2, $3, $4, $5, $6, $6, 1)",
    )
    .bind(&id)
    .bind(&group.display_name)
    .bind(&group.display_name_key)
    .bind(&group.external_id)
    .bind(Json(&group.document))
    .bind(now)
    .execute(&mut *connection)
    .await
    .map_err(|error| write_error(error, "displayName"))?;
    insert_members(connection, &id, &group.members).await?;
    Ok(StoredResource {
        id,
        kind: ResourceKind::Group,
        document: document::compose_group(group.document, group.members),
        created: now,
        last_modified: now,
        version: 1,
    })
}

async fn insert_emails(
    connection: &mut PgConnection,
    user_id: &str,
    email_keys: &[String],
) -> Result<(), DirectoryError> {
    if email_keys.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO user_emails (user_id, email_key) SELECT $1, unnest($2::text[])")
        .bind(user_id)
        .bind(email_keys)
        .execute(&mut *connection)
        .await
        .map_err(database_error)?;
    Ok(())
}

/// Inserts a group's members in one statement after checking that each is
/// an existing user. `FOR KEY SHARE` keeps those users from being deleted
/// until this transaction ends, so the check cannot go stale.
async fn insert_members(
    connection: &mut PgConnection,
    group_id: &str,
    members: &[Member],
) -> Result<(), DirectoryError> {
    if members.is_empty() {
        return Ok(());
    }
    let member_ids: Vec<&str> = members.iter().map(|member| member.value.as_str()).collect();
    let existing: Vec<String> =
        sqlx::query_scalar("SELECT id FROM users WHERE id = ANY($1) FOR KEY SHARE")
            .bind(&member_ids)
            .fetch_all(&mut *connection)
            .await
            .map_err(database_error)?;
    let existing: HashSet<&str> = existing.iter().map(String::as_str).collect();
    if let Some(missing) = member_ids.iter().find(|id| !existing.contains(**id)) {
        return Err(DirectoryError::InvalidMember((*missing).to_owned()));
    }

    let positions: Vec<i64> = (0..members.len())
        .map(|position| i64::try_from(position).unwrap_or(i64::MAX))
        .collect();
    let displays: Vec<Option<&str>> = members.iter().map(|m| m.display.as_deref()).collect();
    let types: Vec<Option<&str>> = members.iter().map(|m| m.member_type.as_deref()).collect();
    sqlx::query(
        "INSERT INTO group_members (group_id, member_id, position, display, member_type) \
         SELECT $1, member_id, position, display, member_type \
         FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[]) \
         AS members(member_id, position, display, member_type)",
    )
    .bind(group_id)
    .bind(&member_ids)
    .bind(&positions)
    .bind(&displays)
    .bind(&types)
    .execute(&mut *connection)
    .await
    .map_err(database_error)?;
    Ok(())
}

/// Updates a resource's row; returns `(created, new version)`, or the
/// reason no row matched.
async fn update_row(
    connection: &mut PgConnection,
    kind: ResourceKind,
    id: &str,
    expected_version: Option<i64>,
    update: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<(DateTime<Utc>, i64), DirectoryError> {
    let row = update
        .fetch_optional(&mut *connection)
        .await
        .map_err(|error| write_error(error, super::unique_attribute(kind)))?;
    if let Some(row) = row {
        let created = row.try_get("created").map_err(database_error)?;
        let version = row.try_get("version").map_err(database_error)?;
        return Ok((created, version));
    }
    let exists = sqlx::query(&format!("SELECT 1 FROM {} WHERE id = $1", table(kind)))
        .bind(id)
        .fetch_optional(&mut *connection)
        .await
        .map_err(database_error)?
        .is_some();
    match (exists, expected_version) {
        (true, Some(_)) => Err(DirectoryError::VersionMismatch),
        _ => Err(DirectoryError::NotFound),
    }
}

async fn replace_user(
    connection: &mut PgConnection,
    id: &str,
    user: PreparedUser,
    expected_version: Option<i64>,
) -> Result<StoredResource, DirectoryError> {
    let now = super::now();
    let update = sqlx::query(
        "UPDATE users SET user_name_key = $1, external_id = $2, display_name_key = $3, \
         document = $4, last_modified = $5, version = version + 1 \
         WHERE id = $6 AND ($7::bigint IS NULL OR version = $7) RETURNING created, version",
    )
    .bind(&user.user_name_key)
    .bind(&user.external_id)
    .bind(&user.display_name_key)
    .bind(Json(&user.document))
    .bind(now)
    .bind(id)
    .bind(expected_version);
    let (created, version) =
        update_row(connection, ResourceKind::User, id, expected_version, update).await?;

    sqlx::query("DELETE FROM user_emails WHERE user_id = $1")
        .bind(id)
        .execute(&mut *connection)
        .await
        .map_err(database_error)?;
    insert_emails(connection, id, &user.email_keys).await?;
    Ok(StoredResource {
        id: id.to_owned(),
        kind: ResourceKind::User,
        document: user.document,
        created,
        last_modified: now,
        version,
    })
}

async fn replace_group(
    connection: &mut PgConnection,
    id: &str,
    group: PreparedGroup,
    expected_version: Option<i64>,
) -> Result<StoredResource, DirectoryError> {
    let now = super::now();
    let update = sqlx::query(
        "UPDATE groups SET display_name = $1, display_name_key = $2, external_id = $3, \
         document = $4, last_modified = $5, version = version + 1 \
         WHERE id = $6 AND ($7::bigint IS NULL OR version = $7) RETURNING created, version",
    )
    .bind(&group.display_name)
    .bind(&group.display_name_key)
    .bind(&group.external_id)
    .bind(Json(&group.document))
    .bind(now)
    .bind(id)
    .bind(expected_version);
    let (created, version) = update_row(
        connection,
        ResourceKind::Group,
        id,
        expected_version,
        update,
    )
    .await?;

    sqlx::query("DELETE FROM group_members WHERE group_id = $1")
        .bind(id)
        .execute(&mut *connection)
        .await
        .map_err(database_error)?;
    insert_members(connection, id, &group.members).await?;
    Ok(StoredResource {
        id: id.to_owned(),
        kind: ResourceKind::Group,
        document: document::compose_group(group.document, group.members),
        created,
        last_modified: now,
        version,
    })
}

/// Reads one page of the resources matching `condition`, without members,
/// and the `seq` of its last row.
async fn fetch_page(
    connection: &mut PgConnection,
    kind: ResourceKind,
    condition: &Condition,
    limit: i64,
    start: PageStart,
) -> Result<(Vec<StoredResource>, Option<i64>), DirectoryError> {
    if limit == 0 {
        return Ok((Vec::new(), None));
    }
    let sql = page_sql(kind, condition, start);
    let mut select = sqlx::query(&sql);
    if let Condition::Equals(_, value) = condition {
        select = select.bind(value);
    }
    let rows = select
        .bind(limit)
        .bind(start.value())
        .fetch_all(&mut *connection)
        .await
        .map_err(database_error)?;
    let last_seq = match rows.last() {
        Some(row) => Some(row.try_get("seq").map_err(database_error)?),
        None => None,
    };
    let resources = rows
        .iter()
        .map(|row| resource_from_row(kind, row))
        .collect::<Result<_, _>>()?;
    Ok((resources, last_seq))
}

/// Counts the resources matching `condition`.
async fn count_matches(
    connection: &mut PgConnection,
    kind: ResourceKind,
    condition: &Condition,
) -> Result<i64, DirectoryError> {
    let sql = format!(
        "SELECT COUNT(*) FROM {}{}",
        table(kind),
        where_clause(condition)
    );
    let mut count = sqlx::query_scalar::<_, i64>(&sql);
    if let Condition::Equals(_, value) = condition {
        count = count.bind(value);
    }
    count
        .fetch_one(&mut *connection)
        .await
        .map_err(database_error)
}

/// Reads the members of several groups, each list in stored order.
async fn members_of(
    connection: &mut PgConnection,
    group_ids: &[&str],
) -> Result<HashMap<String, Vec<Member>>, DirectoryError> {
    let mut members: HashMap<String, Vec<Member>> = HashMap::new();
    if group_ids.is_empty() {
        return Ok(members);
    }
    let rows = sqlx::query(
        "SELECT group_id, member_id, display, member_type FROM group_members \
         WHERE group_id = ANY($1) ORDER BY group_id, position",
    )
    .bind(group_ids)
    .fetch_all(&mut *connection)
    .await
    .map_err(database_error)?;
    for row in rows {
        let group_id: String = row.try_get("group_id").map_err(database_error)?;
        members.entry(group_id).or_default().push(Member {
            value: row.try_get("member_id").map_err(database_error)?,
            display: row.try_get("display").map_err(database_error)?,
            member_type: row.try_get("member_type").map_err(database_error)?,
        });
    }
    Ok(members)
}

/// Puts each group's members into its document.
async fn compose_groups(
    connection: &mut PgConnection,
    groups: &mut [StoredResource],
) -> Result<(), DirectoryError> {
    let ids: Vec<&str> = groups.iter().map(|group| group.id.as_str()).collect();
    let mut members = members_of(connection, &ids).await?;
    for group in groups {
        let group_members = members.remove(&group.id).unwrap_or_default();
        let document = std::mem::take(&mut group.document);
        group.document = document::compose_group(document, group_members);
    }
    Ok(())
}

#[async_trait]
impl Directory for PostgresDirectory {
    async fn create(
        &self,
        kind: ResourceKind,
        document: Value,
    ) -> Result<StoredResource, DirectoryError> {
        let mut transaction = self.pool.begin().await.map_err(database_error)?;
        let resource = match kind {
            ResourceKind::User => {
                insert_user(&mut transaction, document::prepare_user(document)?).await?
            }
            ResourceKind::Group => {
                insert_group(&mut transaction, document::prepare_group(document)?).await?
            }
        };
        transaction.commit().await.map_err(database_error)?;
        Ok(resource)
    }

    async fn get(
        &self,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<StoredResource>, DirectoryError> {
        let condition = Condition::Equals(IndexedColumn::Id, id.to_owned());
        let mut transaction = self
            .pool
            .begin_with(BEGIN_SNAPSHOT)
            .await
            .map_err(database_error)?;
        let (mut resources, _) =
            fetch_page(&mut transaction, kind, &condition, 1, PageStart::Offset(0)).await?;
        if kind == ResourceKind::Group {
            compose_groups(&mut transaction, &mut resources).await?;
        }
        transaction.commit().await.map_err(database_error)?;
        Ok(resources.pop())
    }

    async fn replace(
        &self,
        kind: ResourceKind,
        id: &str,
        document: Value,
        expected_version: Option<i64>,
    ) -> Result<StoredResource, DirectoryError> {
        let mut transaction = self.pool.begin().await.map_err(database_error)?;
        let resource = match kind {
            ResourceKind::User => {
                let user = document::prepare_user(document)?;
                replace_user(&mut transaction, id, user, expected_version).await?
            }
            ResourceKind::Group => {
                let group = document::prepare_group(document)?;
                replace_group(&mut transaction, id, group, expected_version).await?
            }
        };
        transaction.commit().await.map_err(database_error)?;
        Ok(resource)
    }

    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<bool, DirectoryError> {
        let mut transaction = self.pool.begin().await.map_err(database_error)?;
        if kind == ResourceKind::User {
            // Group writes lock the group row, then its members' user rows
            // (FOR KEY SHARE). Locking in the same order here cannot
            // deadlock with them, and once the user row is locked no group
            // write can add it, so every group it belongs to at deletion
            // gets a new version.
            sqlx::query(
                "SELECT 1 FROM groups WHERE id IN \
                 (SELECT group_id FROM group_members WHERE member_id = $1) \
                 ORDER BY id FOR UPDATE",
            )
            .bind(id)
            .execute(&mut *transaction)
            .await
            .map_err(database_error)?;
            sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
                .bind(id)
                .execute(&mut *transaction)
                .await
                .map_err(database_error)?;
            sqlx::query(
                "UPDATE groups SET version = version + 1, last_modified = $1 \
                 WHERE id IN (SELECT group_id FROM group_members WHERE member_id = $2)",
            )
            .bind(super::now())
            .bind(id)
            .execute(&mut *transaction)
            .await
            .map_err(database_error)?;
        }
        // Memberships and email keys go with the row (ON DELETE CASCADE).
        let deleted = sqlx::query(&format!("DELETE FROM {} WHERE id = $1", table(kind)))
            .bind(id)
            .execute(&mut *transaction)
            .await
            .map_err(database_error)?
            .rows_affected();
        transaction.commit().await.map_err(database_error)?;
        Ok(deleted > 0)
    }

    async fn list(
        &self,
        kind: ResourceKind,
        lookup: Option<&Lookup>,
        page: Option<Page>,
    ) -> Result<Listing, DirectoryError> {
        let condition = document::lookup_condition(kind, lookup);
        if condition == Condition::Nothing {
            return Ok(Listing {
                resources: Vec::new(),
                total: 0,
            });
        }
        let (limit, offset) = match page {
            Some(page) => (super::sql_bound(page.limit), super::sql_bound(page.offset)),
            None => (i64::MAX, 0),
        };

        // A filter lookup usually matches one User. Its first page, when not
        // full, holds every match, so one statement without a transaction
        // answers it and saves the BEGIN and COMMIT round trips.
        if kind == ResourceKind::User && offset == 0 && matches!(condition, Condition::Equals(..)) {
            let mut connection = self.pool.acquire().await.map_err(database_error)?;
            let (resources, _) = fetch_page(
                &mut connection,
                kind,
                &condition,
                limit,
                PageStart::Offset(0),
            )
            .await?;
            let fetched = i64::try_from(resources.len()).unwrap_or(i64::MAX);
            if fetched < limit {
                return Ok(Listing {
                    resources,
                    total: super::count_from_sql(fetched),
                });
            }
        }

        // One read transaction, so the total and the page see one snapshot.
        let mut transaction = self
            .pool
            .begin_with(BEGIN_SNAPSHOT)
            .await
            .map_err(database_error)?;
        let start = self.cursors.start(kind, &condition, offset);
        let (mut resources, last_seq) =
            fetch_page(&mut transaction, kind, &condition, limit, start).await?;
        let fetched = i64::try_from(resources.len()).unwrap_or(i64::MAX);
        if let (Some(last_seq), Some(_)) = (last_seq, page) {
            self.cursors
                .remember(kind, &condition, offset.saturating_add(fetched), last_seq);
        }
        // A first page that is not full contains every match, which spares the
        // count for the usual filter lookups that match one resource.
        let total = if offset == 0 && fetched < limit {
            fetched
        } else {
            count_matches(&mut transaction, kind, &condition).await?
        };
        if kind == ResourceKind::Group {
            compose_groups(&mut transaction, &mut resources).await?;
        }
        transaction.commit().await.map_err(database_error)?;
        Ok(Listing {
            resources,
            total: super::count_from_sql(total),
        })
    }

    async fn count(&self, kind: ResourceKind) -> Result<u64, DirectoryError> {
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", table(kind)))
            .fetch_one(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(super::count_from_sql(total))
    }

    async fn groups_of_user(&self, user_id: &str) -> Result<Vec<(String, String)>, DirectoryError> {
        let rows = sqlx::query(
            "SELECT groups.id, groups.display_name FROM group_members \
             JOIN groups ON groups.id = group_members.group_id \
             WHERE group_members.member_id = $1 ORDER BY groups.seq",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(database_error)?;
        rows.iter()
            .map(|row| {
                let id = row.try_get("id").map_err(database_error)?;
                let display_name = row.try_get("display_name").map_err(database_error)?;
                Ok((id, display_name))
            })
            .collect()
    }

    async fn groups_of_users(
        &self,
        user_ids: &[String],
    ) -> Result<HashMap<String, Vec<(String, String)>>, DirectoryError> {
        let rows = sqlx::query(
            "SELECT group_members.member_id, groups.id, groups.display_name FROM group_members \
             JOIN groups ON groups.id = group_members.group_id \
             WHERE group_members.member_id = ANY($1) ORDER BY groups.seq",
        )
        .bind(user_ids)
        .fetch_all(&self.pool)
        .await
        .map_err(database_error)?;
        let mut groups: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for row in &rows {
            let member: String = row.try_get("member_id").map_err(database_error)?;
            let id: String = row.try_get("id").map_err(database_error)?;
            let name: String = row.try_get("display_name").map_err(database_error)?;
            groups.entry(member).or_default().push((id, name));
        }
        Ok(groups)
    }

    async fn ping(&self) -> Result<(), DirectoryError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(())
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), DirectoryError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, hash, created, last_used, revoked) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&token.id)
        .bind(&token.name)
        .bind(&token.hash)
        .bind(token.created)
        .bind(token.last_used)
        .bind(token.revoked)
        .execute(&self.pool)
        .await
        .map_err(|error| write_error(error, "id"))?;
        Ok(())
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, DirectoryError> {
        let row = sqlx::query("SELECT * FROM api_tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(database_error)?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, DirectoryError> {
        let rows = sqlx::query("SELECT * FROM api_tokens ORDER BY created, id")
            .fetch_all(&self.pool)
            .await
            .map_err(database_error)?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, DirectoryError> {
        let revoked =
            sqlx::query("UPDATE api_tokens SET revoked = COALESCE(revoked, $1) WHERE id = $2")
                .bind(super::now())
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(database_error)?
                .rows_affected();
        Ok(revoked > 0)
    }

    async fn touch_token(&self, id: &str, when: DateTime<Utc>) -> Result<(), DirectoryError> {
        sqlx::query("UPDATE api_tokens SET last_used = $1 WHERE id = $2")
            .bind(when)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(database_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use rand::RngCore;
    use sqlx::Connection;

    use super::*;
    use crate::directory::conformance::{conformance_tests, Fixture};

    /// The server the tests use unless `DATABASE_URL` names another.
    const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    fn database_url() -> String {
        std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
    }

    /// A schema of its own for one test, so tests running in parallel, and
    /// CI runs sharing a server, never see each other's rows. The schema is
    /// dropped when the fixture is, even when the test panicked.
    struct PostgresFixture {
        directory: Arc<PostgresDirectory>,
        url: String,
        schema: String,
    }

    /// Connects to the test server, failing the test with a clear message
    /// when it is unreachable: CI must run these tests, not skip them.
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

    async fn create_schema(url: &str) -> String {
        let mut random = [0_u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let suffix: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        let schema = format!("portcullis_test_{suffix}");
        let mut admin = admin_connection(url).await;
        admin
            .execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .expect("create test schema");
        schema
    }

    fn schema_options(url: &str, schema: &str) -> PgConnectOptions {
        PgConnectOptions::from_str(url)
            .expect("DATABASE_URL is a PostgreSQL URL")
            .options([("search_path", schema)])
    }

    async fn open_fixture() -> PostgresFixture {
        let url = database_url();
        let schema = create_schema(&url).await;
        let directory = PostgresDirectory::connect_with(schema_options(&url, &schema))
            .await
            .expect("connect the PostgreSQL directory");
        PostgresFixture {
            directory: Arc::new(directory),
            url,
            schema,
        }
    }

    /// Drops a test schema from a thread of its own, because `Drop` cannot
    /// await and may run while a panic unwinds.
    fn drop_schema(url: String, schema: String) {
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a runtime to drop the test schema");
            runtime.block_on(async {
                let mut admin = admin_connection(&url).await;
                admin
                    .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                    .await
                    .map(drop)
            })
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("failed to drop a test schema: {error}"),
            Err(_) => eprintln!("failed to drop a test schema: the dropping thread panicked"),
        }
    }

    impl Drop for PostgresFixture {
        fn drop(&mut self) {
            drop_schema(self.url.clone(), self.schema.clone());
        }
    }

    #[async_trait]
    impl Fixture for PostgresFixture {
        fn directory(&self) -> Arc<dyn Directory> {
            self.directory.clone()
        }

        async fn insert_test_users(&self, count: usize) {
            self.directory.insert_test_users(count).await;
        }

        async fn list_query_plan(&self, lookup: &Lookup) -> String {
            self.directory
                .list_query_plan(ResourceKind::User, lookup)
                .await
        }

        fn backend(&self) -> &'static str {
            "PostgreSQL"
        }
    }

    conformance_tests!(open_fixture());

    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        let connected =
            PostgresDirectory::connect("postgres://portcullis:secret-password@127.0.0.1:1/test")
                .await;
        match connected {
            Err(DirectoryError::Unavailable(message)) => {
                assert!(message.contains("127.0.0.1:1"), "{message}");
                assert!(!message.contains("secret-password"), "{message}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn invalid_url_hides_password() {
        let connected = PostgresDirectory::connect("postgres://u:secret-password@[bad/test").await;
        match connected {
            Err(error) => assert!(!error.to_string().contains("secret-password"), "{error}"),
            Ok(_) => panic!("an invalid URL connected"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_startups_migrate_once() {
        const REPLICAS: usize = 4;
        let url = database_url();
        let schema = create_schema(&url).await;
        let mut startups = Vec::new();
        for _ in 0..REPLICAS {
            let options = schema_options(&url, &schema);
            startups.push(tokio::spawn(PostgresDirectory::connect_with(options)));
        }
        let mut directories = Vec::new();
        for startup in startups {
            let directory = startup.await.expect("startup task completes");
            directories.push(directory.expect("every replica starts"));
        }
        let versions: Vec<i32> =
            sqlx::query_scalar("SELECT version FROM portcullis_schema_version ORDER BY version")
                .fetch_all(&directories[0].pool)
                .await
                .expect("read schema versions");
        let expected: Vec<i32> = (1..=MIGRATIONS.len() as i32).collect();
        assert_eq!(versions, expected);
        for directory in &directories {
            directory.close().await;
        }
        drop_schema(url, schema);
    }
}
