//! The SQLite directory, the embedded default for a single replica.
//!
//! One database file in WAL mode, so reads go on while a write commits.
//! Foreign keys are on, so memberships and email keys go with their user. A
//! busy timeout covers the rare second process on the same file, such as
//! the `token` command of the CLI next to a running server.
//!
//! Writes go through a pool of one connection and start with
//! `BEGIN IMMEDIATE`: they queue in this process instead of polling SQLite's
//! lock, and a transaction that reads before it writes can never fail to
//! upgrade its lock. Reads use a separate pool of several connections.
//! `sqlite::memory:` (for tests) uses a single connection for both, because
//! an in-memory database lives only as long as its connections.
//!
//! The schema is created and migrated at start from the scripts under
//! `migrations/sqlite/`, embedded in the binary. `PRAGMA user_version`
//! records how many have run; the check and the scripts run in one
//! `BEGIN IMMEDIATE` transaction, so two processes starting together apply
//! each script once.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow,
};
use sqlx::types::Json;
use sqlx::{Executor, Row};

use super::cursor::{self, PageCursors, PageStart};
use super::document::{self, Condition, IndexedColumn, Member, PreparedGroup, PreparedUser};
use super::{Directory, DirectoryError, Listing, Lookup, Page, ResourceKind, StoredResource};
use crate::tokens::TokenRecord;

/// The migration scripts in order; script `n` (1-based) brings the schema to
/// `user_version` n. Published scripts are never edited, only appended to.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/sqlite/0001_initial.sql"),
    include_str!("migrations/sqlite/0002_unique_user_external_id.sql"),
];

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request waits for a pooled connection before the directory
/// reports itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Read connections of a file database. SQLite reads in WAL mode do not
/// block each other, and more connections than cores buy nothing.
const READ_CONNECTIONS: u32 = 4;

/// The columns every resource query selects, in [`resource_from_row`]'s
/// order.
const RESOURCE_COLUMNS: &str = "id, document, created, last_modified, version";

/// A directory in one SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteDirectory {
    reader: SqlitePool,
    writer: SqlitePool,
    /// Shared by clones, so every request of the process can continue
    /// another's page.
    cursors: Arc<PageCursors>,
}

impl SqliteDirectory {
    /// Opens, creating if missing, the database at `path_or_url` (a file
    /// path, a `sqlite://` URL or `sqlite::memory:`), and brings its schema
    /// up to date.
    pub async fn open(path_or_url: &str) -> Result<Self, DirectoryError> {
        let in_memory = path_or_url == ":memory:"
            || path_or_url == "sqlite::memory:"
            || path_or_url.contains("mode=memory");
        let options = connect_options(path_or_url)?;

        let directory = if in_memory {
            let pool = pool_options(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .map_err(database_error)?;
            SqliteDirectory {
                reader: pool.clone(),
                writer: pool,
                cursors: Arc::default(),
            }
        } else {
            // The writer connects first, so the file is created and switched
            // to WAL by one connection before the readers open it. Its error
            // names the file, which SQLite's own message does not.
            let writer = pool_options(1)
                .connect_with(options.clone())
                .await
                .map_err(|error| naming_file(database_error(error), &options))?;
            let reader = pool_options(READ_CONNECTIONS)
                .connect_with(options)
                .await
                .map_err(database_error)?;
            SqliteDirectory {
                reader,
                writer,
                cursors: Arc::default(),
            }
        };
        directory.migrate().await?;
        Ok(directory)
    }

    /// Applies the migration scripts this database has not run yet.
    async fn migrate(&self) -> Result<(), DirectoryError> {
        let mut transaction = self.begin_write().await?;
        let applied: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *transaction)
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
        for (index, script) in MIGRATIONS.iter().enumerate().skip(applied) {
            // A query without parameters may hold several statements.
            transaction
                .execute(*script)
                .await
                .map_err(|error| super::migration_error(index + 1, database_error(error)))?;
            // PRAGMA takes no bound parameters; the value is a number.
            sqlx::query(&format!("PRAGMA user_version = {}", index + 1))
                .execute(&mut *transaction)
                .await
                .map_err(database_error)?;
            tracing::info!(version = index + 1, "migrated the SQLite directory schema");
        }
        transaction.commit().await.map_err(database_error)
    }

    async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, DirectoryError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(database_error)
    }

    /// Runs `EXPLAIN QUERY PLAN` on the query [`Directory::list`] runs.
    #[cfg(test)]
    pub(crate) async fn list_query_plan(&self, kind: ResourceKind, lookup: &Lookup) -> String {
        let condition = document::lookup_condition(kind, Some(lookup));
        let Condition::Equals(_, value) = &condition else {
            return String::new();
        };
        let sql = format!(
            "EXPLAIN QUERY PLAN {}",
            page_sql(kind, &condition, PageStart::Offset(0))
        );
        let rows = sqlx::query(&sql)
            .bind(value)
            .bind(i64::MAX)
            .bind(0_i64)
            .fetch_all(&self.reader)
            .await
            .expect("EXPLAIN QUERY PLAN runs");
        rows.iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Inserts `count` users named `user{n}@example.com` in one
    /// transaction, faster than `count` calls of [`Directory::create`].
    #[cfg(test)]
    pub(crate) async fn insert_test_users(&self, count: usize) {
        const BATCH: usize = 10_000;
        let now = super::now();
        let mut transaction = self.begin_write().await.expect("begin");
        for start in (0..count).step_by(BATCH) {
            let users: Vec<Value> = (start..count.min(start + BATCH))
                .map(|n| {
                    let user = document::prepare_user(super::conformance::test_user(n))
                        .expect("test user is valid");
                    serde_json::json!({
                        "id": super::new_id(),
                        "user_name_key": user.user_name_key,
                        "external_id": user.external_id,
                        "display_name_key": user.display_name_key,
                        "document": user.document,
                        "email_key": user.email_keys.first(),
                    })
                })
                .collect();
            let users = Json(users);
            sqlx::query(
                "INSERT INTO users (id, user_name_key, external_id, display_name_key, document, \
                 created, last_modified, version) \
                 SELECT value ->> 'id', value ->> 'user_name_key', value ->> 'external_id', \
                 value ->> 'display_name_key', value -> 'document', $2, $2, 1 FROM json_each($1)",
            )
            .bind(&users)
            .bind(now)
            .execute(&mut *transaction)
            .await
            .expect("insert test users");
            sqlx::query(
                "INSERT INTO user_emails (user_id, email_key) \
                 SELECT value ->> 'id', value ->> 'email_key' FROM json_each($1)",
            )
            .bind(&users)
            .execute(&mut *transaction)
            .await
            .expect("insert test user emails");
        }
        transaction.commit().await.expect("commit test users");
    }
}

fn connect_options(path_or_url: &str) -> Result<SqliteConnectOptions, DirectoryError> {
    let options = if path_or_url.starts_with("sqlite:") || path_or_url == ":memory:" {
        SqliteConnectOptions::from_str(path_or_url)
            .map_err(|error| DirectoryError::Internal(format!("invalid SQLite URL: {error}")))?
    } else {
        SqliteConnectOptions::new().filename(path_or_url)
    };
    Ok(options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true))
}

fn pool_options(connections: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
}

/// SQLite result codes that mean "try again later": BUSY, LOCKED, IOERR,
/// FULL and CANTOPEN, with any extended code.
fn is_transient(error: &dyn sqlx::error::DatabaseError) -> bool {
    let code = error
        .code()
        .and_then(|code| code.parse::<i32>().ok())
        .unwrap_or(0);
    matches!(code & 0xff, 5 | 6 | 10 | 13 | 14)
}

fn database_error(error: sqlx::Error) -> DirectoryError {
    super::database_error(error, is_transient)
}

/// Adds the database file's path to the message of `error`.
fn naming_file(error: DirectoryError, options: &SqliteConnectOptions) -> DirectoryError {
    let file = options.get_filename().display();
    match error {
        DirectoryError::Unavailable(message) => {
            DirectoryError::Unavailable(format!("SQLite file {file}: {message}"))
        }
        DirectoryError::Internal(message) => {
            DirectoryError::Internal(format!("SQLite file {file}: {message}"))
        }
        other => other,
    }
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

fn resource_from_row(
    kind: ResourceKind,
    row: &SqliteRow,
) -> Result<StoredResource, DirectoryError> {
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

fn token_from_row(row: &SqliteRow) -> Result<TokenRecord, DirectoryError> {
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
    connection: &mut SqliteConnection,
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
    connection: &mut SqliteConnection,
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
    connection: &mut SqliteConnection,
    user_id: &str,
    email_keys: &[String],
) -> Result<(), DirectoryError> {
    for email_key in email_keys {
        sqlx::query("INSERT INTO user_emails (user_id, email_key) VALUES ($1, $2)")
            .bind(user_id)
            .bind(email_key)
            .execute(&mut *connection)
            .await
            .map_err(database_error)?;
    }
    Ok(())
}

/// Inserts a group's members one by one; SQLite checks the foreign key per
/// statement, so a violation names the member that is not a user.
async fn insert_members(
    connection: &mut SqliteConnection,
    group_id: &str,
    members: &[Member],
) -> Result<(), DirectoryError> {
    for (position, member) in members.iter().enumerate() {
        let result = sqlx::query(
            "INSERT INTO group_members (group_id, member_id, position, display, member_type) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(group_id)
        .bind(&member.value)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(&member.display)
        .bind(&member.member_type)
        .execute(&mut *connection)
        .await;
        match result {
            Ok(_) => {}
            Err(sqlx::Error::Database(error))
                if error.kind() == sqlx::error::ErrorKind::ForeignKeyViolation =>
            {
                return Err(DirectoryError::InvalidMember(member.value.clone()));
            }
            Err(error) => return Err(database_error(error)),
        }
    }
    Ok(())
}

/// Updates a resource's row; returns `(created, new version)`, or the
/// reason no row matched.
async fn update_row<'q>(
    connection: &mut SqliteConnection,
    kind: ResourceKind,
    id: &str,
    expected_version: Option<i64>,
    update: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
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
    connection: &mut SqliteConnection,
    id: &str,
    user: PreparedUser,
    expected_version: Option<i64>,
) -> Result<StoredResource, DirectoryError> {
    let now = super::now();
    let update = sqlx::query(
        "UPDATE users SET user_name_key = $1, external_id = $2, display_name_key = $3, \
         document = $4, last_modified = $5, version = version + 1 \
         WHERE id = $6 AND ($7 IS NULL OR version = $7) RETURNING created, version",
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
    connection: &mut SqliteConnection,
    id: &str,
    group: PreparedGroup,
    expected_version: Option<i64>,
) -> Result<StoredResource, DirectoryError> {
    let now = super::now();
    let update = sqlx::query(
        "UPDATE groups SET display_name = $1, display_name_key = $2, external_id = $3, \
         document = $4, last_modified = $5, version = version + 1 \
         WHERE id = $6 AND ($7 IS NULL OR version = $7) RETURNING created, version",
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
    connection: &mut SqliteConnection,
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
    connection: &mut SqliteConnection,
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
    connection: &mut SqliteConnection,
    group_ids: &[&str],
) -> Result<HashMap<String, Vec<Member>>, DirectoryError> {
    let mut members: HashMap<String, Vec<Member>> = HashMap::new();
    if group_ids.is_empty() {
        return Ok(members);
    }
    let rows = sqlx::query(
        "SELECT group_id, member_id, display, member_type FROM group_members \
         WHERE group_id IN (SELECT value FROM json_each($1)) ORDER BY group_id, position",
    )
    .bind(Json(group_ids))
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
    connection: &mut SqliteConnection,
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
impl Directory for SqliteDirectory {
    async fn create(
        &self,
        kind: ResourceKind,
        document: Value,
    ) -> Result<StoredResource, DirectoryError> {
        let mut transaction = self.begin_write().await?;
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
        let mut transaction = self.reader.begin().await.map_err(database_error)?;
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
        let mut transaction = self.begin_write().await?;
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
        let mut transaction = self.begin_write().await?;
        if kind == ResourceKind::User {
            // The user's groups change membership, so they get a new version.
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

        // One read transaction, so the total and the page see one snapshot.
        let mut transaction = self.reader.begin().await.map_err(database_error)?;
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
            .fetch_one(&self.reader)
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
        .fetch_all(&self.reader)
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
        let mut groups: HashMap<String, Vec<(String, String)>> = HashMap::new();
        // SQLite limits the number of bound parameters, so long lists go in
        // chunks well below that limit.
        for chunk in user_ids.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT group_members.member_id, groups.id, groups.display_name FROM group_members \
                 JOIN groups ON groups.id = group_members.group_id \
                 WHERE group_members.member_id IN ({placeholders}) ORDER BY groups.seq"
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id);
            }
            let rows = query
                .fetch_all(&self.reader)
                .await
                .map_err(database_error)?;
            collect_memberships(&rows, &mut groups)?;
        }
        Ok(groups)
    }

    async fn ping(&self) -> Result<(), DirectoryError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
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
        .execute(&self.writer)
        .await
        .map_err(|error| write_error(error, "id"))?;
        Ok(())
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, DirectoryError> {
        let row = sqlx::query("SELECT * FROM api_tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.reader)
            .await
            .map_err(database_error)?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, DirectoryError> {
        let rows = sqlx::query("SELECT * FROM api_tokens ORDER BY created, id")
            .fetch_all(&self.reader)
            .await
            .map_err(database_error)?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, DirectoryError> {
        let revoked =
            sqlx::query("UPDATE api_tokens SET revoked = COALESCE(revoked, $1) WHERE id = $2")
                .bind(super::now())
                .bind(id)
                .execute(&self.writer)
                .await
                .map_err(database_error)?
                .rows_affected();
        Ok(revoked > 0)
    }

    async fn touch_token(&self, id: &str, when: DateTime<Utc>) -> Result<(), DirectoryError> {
        sqlx::query("UPDATE api_tokens SET last_used = $1 WHERE id = $2")
            .bind(when)
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(database_error)?;
        Ok(())
    }
}

/// Adds `(member_id, group id, displayName)` rows to a map keyed by member.
fn collect_memberships(
    rows: &[SqliteRow],
    groups: &mut HashMap<String, Vec<(String, String)>>,
) -> Result<(), DirectoryError> {
    for row in rows {
        let member: String = row.try_get("member_id").map_err(database_error)?;
        let id: String = row.try_get("id").map_err(database_error)?;
        let name: String = row.try_get("display_name").map_err(database_error)?;
        groups.entry(member).or_default().push((id, name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;

    use super::*;
    use crate::directory::conformance::{conformance_tests, Fixture};

    /// A directory in a file of its own temporary folder, removed on drop.
    struct SqliteFixture {
        directory: Arc<SqliteDirectory>,
        _folder: tempfile::TempDir,
    }

    async fn open_fixture() -> SqliteFixture {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let path = folder.path().join("directory.db");
        let path = path.to_str().expect("temporary path is UTF-8");
        let directory = SqliteDirectory::open(path)
            .await
            .expect("open SQLite directory");
        SqliteFixture {
            directory: Arc::new(directory),
            _folder: folder,
        }
    }

    #[async_trait]
    impl Fixture for SqliteFixture {
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
            "SQLite"
        }
    }

    conformance_tests!(open_fixture());

    #[tokio::test]
    async fn reopen_keeps_data_and_schema() {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let url = format!("sqlite://{}", folder.path().join("d.db").display());
        let first = SqliteDirectory::open(&url).await.expect("open");
        let created = first
            .create(ResourceKind::User, serde_json::json!({"userName": "kept"}))
            .await
            .expect("create");
        first.writer.close().await;
        first.reader.close().await;

        let second = SqliteDirectory::open(&url).await.expect("reopen");
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&second.reader)
            .await
            .expect("read user_version");
        assert_eq!(version, MIGRATIONS.len() as i64);
        let fetched = second
            .get(ResourceKind::User, &created.id)
            .await
            .expect("get");
        assert_eq!(fetched, Some(created));
    }

    #[tokio::test]
    async fn memory_database_keeps_data() {
        let directory = SqliteDirectory::open("sqlite::memory:")
            .await
            .expect("open in memory");
        let created = directory
            .create(ResourceKind::User, serde_json::json!({"userName": "mem"}))
            .await
            .expect("create");
        let listing = directory
            .list(ResourceKind::User, None, None)
            .await
            .expect("list");
        assert_eq!(listing.resources, vec![created]);
    }

    #[tokio::test]
    async fn open_in_missing_folder_is_unavailable() {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let path = folder.path().join("missing").join("d.db");
        let opened = SqliteDirectory::open(path.to_str().expect("UTF-8 path")).await;
        assert!(
            matches!(opened, Err(DirectoryError::Unavailable(_))),
            "{opened:?}"
        );
    }

    /// Opens a new directory at `path` and takes its schema back to version
    /// 1, whose externalId index is not unique.
    async fn open_at_version_1(path: &str) -> SqliteDirectory {
        let directory = SqliteDirectory::open(path).await.expect("open");
        directory
            .writer
            .execute(
                "DROP INDEX users_external_id; \
                 CREATE INDEX users_external_id ON users (external_id); \
                 PRAGMA user_version = 1;",
            )
            .await
            .expect("go back to schema version 1");
        directory
    }

    /// A version 1 database in which two Users share an externalId cannot
    /// take the unique index of version 2, and the error names the fix.
    #[tokio::test]
    async fn duplicate_external_ids_stop_migration() {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let path = folder.path().join("d.db");
        let path = path.to_str().expect("UTF-8 path");
        let directory = open_at_version_1(path).await;
        for user_name in ["alice", "bob"] {
            directory
                .create(
                    ResourceKind::User,
                    serde_json::json!({"userName": user_name, "externalId": "00u1"}),
                )
                .await
                .expect("version 1 allows a shared externalId");
        }
        directory.writer.close().await;
        directory.reader.close().await;

        let reopened = SqliteDirectory::open(path).await;
        assert!(
            matches!(reopened, Err(DirectoryError::Internal(ref message)) if message.contains("externalId")),
            "{reopened:?}"
        );
    }

    /// Users that an earlier release stored with an empty externalId do not
    /// stop the unique index of version 2, because an empty one counts as none.
    #[tokio::test]
    async fn empty_external_ids_migrate() {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let path = folder.path().join("d.db");
        let path = path.to_str().expect("UTF-8 path");
        let directory = open_at_version_1(path).await;
        for user_name in ["alice", "bob"] {
            directory
                .create(
                    ResourceKind::User,
                    serde_json::json!({"userName": user_name, "externalId": ""}),
                )
                .await
                .expect("create");
        }
        // An earlier release indexed the empty value as it was sent.
        directory
            .writer
            .execute("UPDATE users SET external_id = ''")
            .await
            .expect("store the empty externalIds as an earlier release did");
        directory.writer.close().await;
        directory.reader.close().await;

        let reopened = SqliteDirectory::open(path).await;
        assert!(reopened.is_ok(), "{:?}", reopened.err());
    }

    #[tokio::test]
    async fn newer_schema_is_rejected() {
        let folder = tempfile::tempdir().expect("create a temporary folder");
        let path = folder.path().join("d.db");
        let path = path.to_str().expect("UTF-8 path");
        let directory = SqliteDirectory::open(path).await.expect("open");
        sqlx::query("PRAGMA user_version = 999")
            .execute(&directory.writer)
            .await
            .expect("set user_version");
        directory.writer.close().await;
        directory.reader.close().await;

        let reopened = SqliteDirectory::open(path).await;
        assert!(
            matches!(reopened, Err(DirectoryError::Internal(ref message)) if message.contains("999")),
            "{reopened:?}"
        );
    }
}
