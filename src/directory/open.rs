//! Opening the configured directory, at once (commands) or on first use
//! (the server).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::postgres::PostgresDirectory;
use super::sqlite::SqliteDirectory;
use super::{Directory, DirectoryError, Listing, Lookup, Page, ResourceKind, StoredResource};
use crate::config::DirectoryBackend;
use crate::tokens::TokenRecord;

/// Opens the directory at `url` with `backend`, creating or migrating its
/// schema.
pub async fn open(
    backend: DirectoryBackend,
    url: &str,
) -> Result<Arc<dyn Directory>, DirectoryError> {
    Ok(match backend {
        DirectoryBackend::Sqlite => Arc::new(SqliteDirectory::open(url).await?),
        DirectoryBackend::Postgres => Arc::new(PostgresDirectory::connect(url).await?),
    })
}

/// A directory that connects on first use and retries on the next call when
/// connecting fails.
///
/// The server needs this because PostgreSQL connections are Tokio I/O
/// objects bound to the runtime that opened them: the pool must be opened
/// from the runtime that serves requests, not during start-up.
pub struct LazyDirectory {
    backend: DirectoryBackend,
    url: String,
    inner: OnceCell<Arc<dyn Directory>>,
}

impl LazyDirectory {
    /// Creates the wrapper; nothing is opened yet.
    pub fn new(backend: DirectoryBackend, url: String) -> Self {
        LazyDirectory {
            backend,
            url,
            inner: OnceCell::new(),
        }
    }

    async fn inner(&self) -> Result<&Arc<dyn Directory>, DirectoryError> {
        self.inner
            .get_or_try_init(|| async {
                let opened = open(self.backend, &self.url).await;
                match &opened {
                    Ok(_) => tracing::info!(backend = ?self.backend, "directory opened"),
                    Err(error) => tracing::error!(error = %error, "cannot open the directory"),
                }
                opened
            })
            .await
    }
}

#[async_trait]
impl Directory for LazyDirectory {
    async fn create(
        &self,
        kind: ResourceKind,
        document: Value,
    ) -> Result<StoredResource, DirectoryError> {
        self.inner().await?.create(kind, document).await
    }

    async fn get(
        &self,
        kind: ResourceKind,
        id: &str,
    ) -> Result<Option<StoredResource>, DirectoryError> {
        self.inner().await?.get(kind, id).await
    }

    async fn replace(
        &self,
        kind: ResourceKind,
        id: &str,
        document: Value,
        expected_version: Option<i64>,
    ) -> Result<StoredResource, DirectoryError> {
        self.inner()
            .await?
            .replace(kind, id, document, expected_version)
            .await
    }

    async fn delete(&self, kind: ResourceKind, id: &str) -> Result<bool, DirectoryError> {
        self.inner().await?.delete(kind, id).await
    }

    async fn list(
        &self,
        kind: ResourceKind,
        lookup: Option<&Lookup>,
        page: Option<Page>,
    ) -> Result<Listing, DirectoryError> {
        self.inner().await?.list(kind, lookup, page).await
    }

    async fn count(&self, kind: ResourceKind) -> Result<u64, DirectoryError> {
        self.inner().await?.count(kind).await
    }

    async fn groups_of_user(&self, user_id: &str) -> Result<Vec<(String, String)>, DirectoryError> {
        self.inner().await?.groups_of_user(user_id).await
    }

    async fn groups_of_users(
        &self,
        user_ids: &[String],
    ) -> Result<HashMap<String, Vec<(String, String)>>, DirectoryError> {
        self.inner().await?.groups_of_users(user_ids).await
    }

    async fn ping(&self) -> Result<(), DirectoryError> {
        self.inner().await?.ping().await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), DirectoryError> {
        self.inner().await?.insert_token(token).await
    }

    async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, DirectoryError> {
        self.inner().await?.find_token(hash).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>, DirectoryError> {
        self.inner().await?.list_tokens().await
    }

    async fn revoke_token(&self, id: &str) -> Result<bool, DirectoryError> {
        self.inner().await?.revoke_token(id).await
    }

    async fn touch_token(&self, id: &str, when: DateTime<Utc>) -> Result<(), DirectoryError> {
        self.inner().await?.touch_token(id, when).await
    }
}
