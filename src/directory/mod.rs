//! The directory: where SCIM provisioning stores Users and Groups, and where
//! the API tokens that authenticate SCIM clients are kept.
//!
//! [`Directory`] is the pluggable backend, used as `Arc<dyn Directory>`. Two
//! implementations pass the same conformance suite:
//!
//! | backend | for |
//! | --- | --- |
//! | [`sqlite::SqliteDirectory`] | the embedded default: one file, one replica |
//! | [`postgres::PostgresDirectory`] | several replicas sharing one database |
//!
//! Resources are SCIM JSON documents. The directory does not interpret SCIM
//! beyond the attributes it indexes for uniqueness and lookups (`userName`,
//! `externalId`, `displayName`, `emails[].value`) and a Group's `members`,
//! which it keeps in a membership table so that deleting a user removes it
//! from every group. Every write runs in one transaction, so a failed request
//! leaves the directory unchanged.
//!
//! Neither backend is built with TLS support: the database is expected on
//! loopback or on the cluster network, next to portcullis.

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::tokens::TokenRecord;

pub use open::{open, LazyDirectory};

#[cfg(test)]
mod conformance;
mod cursor;
mod document;
mod open;
pub mod postgres;
pub mod sqlite;

/// Errors of a directory backend.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No resource of that kind has that id (404).
    #[error("resource not found")]
    NotFound,
    /// Another resource already has this value of a unique attribute,
    /// compared case-insensitively (409, `scimType` "uniqueness").
    #[error("another resource already has this {attribute}")]
    Conflict {
        /// The SCIM attribute whose uniqueness the write would break.
        attribute: &'static str,
    },
    /// The resource changed since the caller read it, so its version differs
    /// from the expected one (412, or a retry of the read-modify-write).
    #[error("resource was modified concurrently")]
    VersionMismatch,
    /// A Group's `members` names an id that is not an existing user (400).
    #[error("group member {0:?} is not an existing user id")]
    InvalidMember(String),
    /// The document lacks a required attribute or has one of the wrong type
    /// (400, `scimType` "invalidValue").
    #[error("invalid resource document: {0}")]
    InvalidDocument(String),
    /// The database could not be reached, timed out or is busy (503). The
    /// message never contains a password.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The database returned an unexpected error or unreadable data (500).
    #[error("directory error: {0}")]
    Internal(String),
}

/// The two SCIM resource types the directory stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// `urn:ietf:params:scim:schemas:core:2.0:User`.
    User,
    /// `urn:ietf:params:scim:schemas:core:2.0:Group`.
    Group,
}

impl ResourceKind {
    /// Returns the SCIM `resourceType` name: `User` or `Group`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored User or Group with the metadata SCIM's `meta` is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    /// The SCIM `id`: a UUID v4 assigned by the directory on create.
    pub id: String,
    /// Whether this is a User or a Group.
    pub kind: ResourceKind,
    /// The attributes as sent, without `id` and `meta`. A User's read-only
    /// `groups` is never stored (see [`Directory::groups_of_user`]). A
    /// Group's `members` is always present, composed from the membership
    /// table as `[{value, display?, type?}]` in the order it was written.
    pub document: Value,
    /// When the resource was created, truncated to microseconds.
    pub created: DateTime<Utc>,
    /// When the resource was last written, truncated to microseconds.
    pub last_modified: DateTime<Utc>,
    /// A counter that starts at 1 and grows by 1 with every write, including
    /// membership changes caused by deleting a member. It backs
    /// `meta.version` and optimistic concurrency in [`Directory::replace`].
    pub version: i64,
}

/// An indexed lookup, the translation of a SCIM `eq` filter on one of the
/// attributes that Okta and Entra match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// `id eq`, case-exact.
    Id(String),
    /// `userName eq`, case-insensitive. Matches no Group.
    UserName(String),
    /// `externalId eq`, case-exact. An empty value matches no User,
    /// because a User's empty `externalId` counts as none.
    ExternalId(String),
    /// `displayName eq`, case-insensitive.
    DisplayName(String),
    /// `emails.value eq`, case-insensitive, true when any of the user's
    /// `emails[].value` matches. Matches no Group.
    Email(String),
}

/// A window into a listing, in the directory's stable order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Number of matching resources to skip (SCIM's `startIndex` - 1).
    pub offset: u64,
    /// Maximum number of resources to return (SCIM's `count`); 0 returns
    /// only the total.
    pub limit: u64,
}

/// One page of resources and the number of all matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// The resources of the page, in insertion order.
    pub resources: Vec<StoredResource>,
    /// The number of resources matching the lookup, whatever the page
    /// (SCIM's `totalResults`).
    pub total: u64,
}

/// Storage for SCIM Users and Groups and for API tokens.
///
/// Every write is one transaction. Unique attributes (`userName` of Users,
/// `displayName` of Groups) are enforced by unique indexes on a case-folded
/// copy, so concurrent writers racing for one value get exactly one success
/// and [`DirectoryError::Conflict`] for the others. A User's `externalId` is
/// unique too, compared exactly, because logins are matched against it; a
/// Group's is not. Users without one, or with an empty one, never clash.
#[async_trait]
pub trait Directory: Send + Sync {
    /// Creates a resource and assigns its id. `id`, `meta` (and a User's
    /// `groups`) in `document` are ignored. A User needs a non-empty string
    /// `userName`, a Group a non-empty string `displayName`; a Group's
    /// `members[].value` must be ids of existing users. No string or member
    /// name may contain NUL, which PostgreSQL cannot store, and the indexed
    /// values (`userName`, `displayName`, `externalId`, `emails[].value`)
    /// have at most 1,024 bytes.
    async fn create(
        &self,
        kind: ResourceKind,
        document: Value,
    ) -> Result<StoredResource, DirectoryError>;

    /// Returns the resource of this kind with this id, if any.
    async fn get(
        &self,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<StoredResource>, DirectoryError>;

    /// Replaces every attribute of a resource, and a Group's whole member
    /// set, with `document`. With `expected_version`, fails with
    /// [`DirectoryError::VersionMismatch`] unless the stored version equals
    /// it, so a read-modify-write that lost a race can retry.
    async fn replace(
        &self,
        kind: ResourceKind,
        id: &str,
        document: Value,
        expected_version: Option<i64>,
    ) -> Result<StoredResource, DirectoryError>;

    /// Deletes a resource; returns false when it did not exist. Deleting a
    /// User frees its `userName` and removes it from every group, bumping
    /// those groups' versions.
    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<bool, DirectoryError>;

    /// Lists the resources of a kind that match `lookup` (all of them when
    /// `None`), in insertion order, with the total number of matches. No
    /// page returns every match.
    async fn list(
        &self,
        kind: ResourceKind,
        lookup: Option<&Lookup>,
        page: Option<Page>,
    ) -> Result<Listing, DirectoryError>;

    /// Counts the resources of a kind.
    async fn count(&self, kind: ResourceKind) -> Result<u64, DirectoryError>;

    /// Returns `(group id, displayName)` of every group the user is a member
    /// of, ordered by group creation, for the User's read-only `groups`.
    async fn groups_of_user(&self, user_id: &str) -> Result<Vec<(String, String)>, DirectoryError>;

    /// Returns [`Directory::groups_of_user`] for many users in one query,
    /// keyed by user id; users in no group are absent from the map. A page
    /// of a list response renders its `groups` with one call instead of one
    /// per user.
    async fn groups_of_users(
        &self,
        user_ids: &[String],
    ) -> Result<HashMap<String, Vec<(String, String)>>, DirectoryError> {
        let mut groups = HashMap::new();
        for id in user_ids {
            let of_user = self.groups_of_user(id).await?;
            if !of_user.is_empty() {
                groups.insert(id.clone(), of_user);
            }
        }
        Ok(groups)
    }

    /// Checks that the database responds, for the readiness probe.
    async fn ping(&self) -> Result<(), DirectoryError>;

    /// Stores a new API token record; a taken id gives
    /// [`DirectoryError::Conflict`] on `id`.
    async fn insert_token(&self, token: &TokenRecord) -> Result<(), DirectoryError>;

    /// Returns the token whose hash is `hash`, revoked or not.
    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, DirectoryError>;

    /// Returns every token, revoked ones included, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, DirectoryError>;

    /// Revokes a token; returns false when no token has this id. Revoking a
    /// revoked token keeps its first revocation time.
    async fn revoke_token(&self, id: &str) -> Result<bool, DirectoryError>;

    /// Records that a token was used at `when`.
    async fn touch_token(&self, id: &str, when: DateTime<Utc>) -> Result<(), DirectoryError>;
}

/// Returns the current time truncated to microseconds, the precision both
/// backends store, so a resource reads back exactly as it was returned.
pub(crate) fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// Creates a new resource id: a random UUID v4, hyphenated lower case.
fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Converts a page bound to SQL's signed 64-bit LIMIT/OFFSET, clamping
/// values no database could hold.
fn sql_bound(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Converts a SQL `COUNT(*)`, which is never negative, to `u64`.
fn count_from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Maps a database error to a [`DirectoryError`]. `is_transient` picks the
/// backend's error codes that mean "try again later" (busy, shut down,
/// out of connections), which become [`DirectoryError::Unavailable`].
fn database_error(
    error: sqlx::Error,
    is_transient: fn(&dyn sqlx::error::DatabaseError) -> bool,
) -> DirectoryError {
    match &error {
        sqlx::Error::Database(database) if is_transient(database.as_ref()) => {
            DirectoryError::Unavailable(database.message().to_owned())
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => DirectoryError::Unavailable(error.to_string()),
        _ => DirectoryError::Internal(error.to_string()),
    }
}

/// Maps the error of a write whose unique index a client can violate is
/// the one on `attribute`, or, for a User, the one on `externalId`.
fn write_error(
    error: sqlx::Error,
    attribute: &'static str,
    is_transient: fn(&dyn sqlx::error::DatabaseError) -> bool,
) -> DirectoryError {
    match &error {
        sqlx::Error::Database(database)
            if database.kind() == sqlx::error::ErrorKind::UniqueViolation =>
        {
            let attribute = if violates_external_id(database.as_ref()) {
                "externalId"
            } else {
                attribute
            };
            DirectoryError::Conflict { attribute }
        }
        _ => database_error(error, is_transient),
    }
}

/// Tells whether a unique violation is on the `users_external_id` index.
/// PostgreSQL names the index, and SQLite names the column in its message
/// ("UNIQUE constraint failed: users.external_id").
fn violates_external_id(error: &dyn sqlx::error::DatabaseError) -> bool {
    error.constraint() == Some("users_external_id") || error.message().contains("users.external_id")
}

/// Adds the fix to the failure of migration script `version` when the
/// stored data can make that script fail.
fn migration_error(version: usize, error: DirectoryError) -> DirectoryError {
    match error {
        DirectoryError::Internal(message) if version == 2 => DirectoryError::Internal(format!(
            "{message}; schema version 2 makes a User's externalId unique, and two Users \
             share one: give one of them another externalId, or delete it, with the previous \
             portcullis release, then start again"
        )),
        error => error,
    }
}

/// The SCIM attribute whose uniqueness the directory enforces for a kind.
fn unique_attribute(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::User => "userName",
        ResourceKind::Group => "displayName",
    }
}
