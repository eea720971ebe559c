//! The administration commands: API tokens (`token create|list|revoke`) and
//! manual user management (`user add|list|deactivate`). They open the
//! configured directory directly, so they work beside a running server.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::auth::provisioning::SessionRevocation;
use crate::config::Settings;
use crate::directory::{self, Directory, DirectoryError, ResourceKind};
use crate::scim::revoke::{SessionRevoker, UserIdentifiers};
use crate::session::{RedisStore, Sessions};
use crate::tokens::TokenRecord;

/// Errors of an administration command, printed to standard error.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The directory failed.
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
    /// The command's input is invalid.
    #[error("{0}")]
    Invalid(String),
    /// No resource has the given id.
    #[error("{0}")]
    NotFound(String),
    /// The user was deactivated, but its sessions in Redis could not be
    /// ended.
    #[error("the user is deactivated, but its sessions could not be ended ({0}); run the command again once Redis is reachable")]
    SessionsNotEnded(String),
}

async fn open(settings: &Settings) -> Result<Arc<dyn Directory>, CommandError> {
    Ok(directory::open(settings.config.directory.backend, &settings.directory_url).await?)
}

/// Creates an API token named `name` and returns its plaintext, the only
/// time it exists outside the caller.
pub async fn create_token(settings: &Settings, name: &str) -> Result<String, CommandError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CommandError::Invalid("--name must not be empty".to_owned()));
    }
    let directory = open(settings).await?;
    let (plaintext, record) = TokenRecord::generate(name);
    directory.insert_token(&record).await?;
    eprintln!(
        "created token {} named {:?}; it is shown only once",
        record.id, record.name
    );
    Ok(plaintext.expose_secret().to_owned())
}

/// Lists the tokens as a table, never with their secrets.
pub async fn list_tokens(settings: &Settings) -> Result<String, CommandError> {
    let directory = open(settings).await?;
    let mut table = vec![["ID", "NAME", "CREATED", "LAST USED", "REVOKED"].map(String::from)];
    for token in directory.list_tokens().await? {
        table.push([
            token.id,
            token.name,
            format_time(Some(token.created)),
            format_time(token.last_used),
            format_time(token.revoked),
        ]);
    }
    Ok(render_table(&table))
}

/// Revokes the token `id`.
pub async fn revoke_token(settings: &Settings, id: &str) -> Result<(), CommandError> {
    let directory = open(settings).await?;
    if directory.revoke_token(id).await? {
        Ok(())
    } else {
        Err(CommandError::NotFound(format!(
            "no token has id {id:?}; `portcullis token list` shows the ids"
        )))
    }
}

/// Adds an active user whose `userName` is `email`; returns its id.
pub async fn add_user(
    settings: &Settings,
    name: &str,
    email: &str,
) -> Result<String, CommandError> {
    let email = email.trim();
    if email.matches('@').count() != 1 || email.starts_with('@') || email.ends_with('@') {
        return Err(CommandError::Invalid(format!(
            "--email {email:?} is not an email address"
        )));
    }
    let name = name.trim();
    if name.is_empty() {
        return Err(CommandError::Invalid("--name must not be empty".to_owned()));
    }
    let document = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": email,
        "displayName": name,
        "name": { "formatted": name },
        "emails": [{ "value": email, "type": "work", "primary": true }],
        "active": true,
    });
    let directory = open(settings).await?;
    let stored = directory
        .create(ResourceKind::User, document)
        .await
        .map_err(|error| match error {
            DirectoryError::Conflict { .. } => {
                CommandError::Invalid(format!("a user with userName {email:?} already exists"))
            }
            other => CommandError::Directory(other),
        })?;
    Ok(stored.id)
}

/// Lists the users as a table.
pub async fn list_users(settings: &Settings) -> Result<String, CommandError> {
    let directory = open(settings).await?;
    let listing = directory.list(ResourceKind::User, None, None).await?;
    let mut table = vec![["ID", "USERNAME", "DISPLAY NAME", "ACTIVE"].map(String::from)];
    for user in listing.resources {
        let text = |name: &str| {
            user.document
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let active = user.document.get("active").and_then(Value::as_bool) != Some(false);
        table.push([
            user.id.clone(),
            text("userName"),
            text("displayName"),
            active.to_string(),
        ]);
    }
    Ok(render_table(&table))
}

/// Marks the user `id` inactive; it stays in the directory. With Redis
/// sessions the user's sessions end too, and the number ended is returned.
/// `None` means the sessions are in a server's memory, out of this
/// command's reach.
pub async fn deactivate_user(settings: &Settings, id: &str) -> Result<Option<usize>, CommandError> {
    let directory = open(settings).await?;
    let Some(user) = directory.get(ResourceKind::User, id).await? else {
        return Err(CommandError::NotFound(format!(
            "no user has id {id:?}; `portcullis user list` shows the ids"
        )));
    };
    let mut document = user.document;
    document["active"] = Value::Bool(false);
    directory
        .replace(ResourceKind::User, id, document.clone(), Some(user.version))
        .await?;
    end_sessions(settings, &document).await
}

/// Ends the sessions of a deactivated user when they are in Redis, where
/// this command can reach them. Running servers drop their cached copies
/// through the revocation channel.
async fn end_sessions(
    settings: &Settings,
    document: &Value,
) -> Result<Option<usize>, CommandError> {
    let Some(url) = &settings.redis_url else {
        return Ok(None);
    };
    let session = &settings.config.session;
    let store = RedisStore::new(url, session.redis_timeout)
        .map_err(|error| CommandError::SessionsNotEnded(error.to_string()))?;
    let sessions = Sessions::new(Arc::new(store), session.ttl);
    let revocation =
        SessionRevocation::new(sessions, settings.config.access.provisioned_match_claim);
    revocation
        .revoke_user(&UserIdentifiers::from_document(document))
        .await
        .map(Some)
        .map_err(|error| CommandError::SessionsNotEnded(error.to_string()))
}

fn format_time(time: Option<chrono::DateTime<chrono::Utc>>) -> String {
    time.map_or_else(
        || "-".to_owned(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// Renders rows as columns padded to the widest cell.
fn render_table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut output = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        output.push_str(cells.join("  ").trim_end());
        output.push('\n');
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns() {
        let rows = [
            ["ID".to_owned(), "NAME".to_owned()],
            ["tok_1".to_owned(), "okta".to_owned()],
        ];
        assert_eq!(render_table(&rows), "ID     NAME\ntok_1  okta\n");
    }
}
