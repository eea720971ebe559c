//! The link from provisioning to sign-in: when a User is deactivated
//! (`active: false`) or deleted, its live sessions must end.
//!
//! SCIM stays free of the session store: the resource endpoints call a
//! [`SessionRevoker`] with the user's identifiers, and the server supplies
//! the implementation.

mod retry;

use async_trait::async_trait;
use serde_json::Value;

pub use retry::{RevocationRetries, MAX_PENDING_REVOCATIONS};

/// A failed revocation, with a message that is safe to log.
#[derive(Debug, thiserror::Error)]
#[error("cannot end the user's sessions: {0}")]
pub struct RevocationError(pub String);

/// The identifiers of a User that sessions are indexed by. Each list has
/// one value per version of the User that the request saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserIdentifiers {
    /// `userName`.
    pub user_names: Vec<String>,
    /// Every `emails[].value`.
    pub emails: Vec<String>,
    /// `externalId`, usually the provider's `sub` for the user.
    pub external_ids: Vec<String>,
}

impl UserIdentifiers {
    /// Reads the identifiers of a stored User document. Missing, empty and
    /// non-string values are left out.
    pub fn from_document(document: &Value) -> Self {
        let text = |name: &str| {
            document
                .get(name)
                .and_then(Value::as_str)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let emails = document
            .get("emails")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|email| email.get("value").and_then(Value::as_str))
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .collect();
        UserIdentifiers {
            user_names: text("userName").into_iter().collect(),
            emails,
            external_ids: text("externalId").into_iter().collect(),
        }
    }

    /// Returns the identifiers here that `other` lacks, compared without
    /// regard to case as the session indexes are: the values a change of
    /// the User took away.
    pub fn without(&self, other: &UserIdentifiers) -> UserIdentifiers {
        let missing = |mine: &[String], theirs: &[String]| {
            mine.iter()
                .filter(|value| {
                    !theirs
                        .iter()
                        .any(|t| t.to_lowercase() == value.to_lowercase())
                })
                .cloned()
                .collect()
        };
        UserIdentifiers {
            user_names: missing(&self.user_names, &other.user_names),
            emails: missing(&self.emails, &other.emails),
            external_ids: missing(&self.external_ids, &other.external_ids),
        }
    }

    /// Tells whether there is no identifier at all.
    pub fn is_empty(&self) -> bool {
        self.user_names.is_empty() && self.emails.is_empty() && self.external_ids.is_empty()
    }

    /// Adds the identifiers of `other` that are not here yet, so a request
    /// that changed an identifier and deactivated the user at once ends the
    /// sessions indexed under the old and the new value.
    pub fn merge(&mut self, other: UserIdentifiers) {
        let lists = [
            (&mut self.user_names, other.user_names),
            (&mut self.emails, other.emails),
            (&mut self.external_ids, other.external_ids),
        ];
        for (list, values) in lists {
            for value in values {
                if !list.contains(&value) {
                    list.push(value);
                }
            }
        }
    }
}

/// Ends the sessions of a User that was deactivated or deleted.
#[async_trait]
pub trait SessionRevoker: Send + Sync {
    /// Ends every live session indexed under one of `user`'s identifiers,
    /// on every replica, and returns how many ended.
    async fn revoke_user(&self, user: &UserIdentifiers) -> Result<usize, RevocationError>;
}

/// Tells whether a stored User document is deactivated. The PATCH engine
/// and POST/PUT coercion store `active` as a boolean, and a string
/// `"false"` is accepted too, as Entra sends it.
pub fn is_deactivated(document: &Value) -> bool {
    match document.get("active") {
        Some(Value::Bool(active)) => !active,
        Some(Value::String(active)) => active.eq_ignore_ascii_case("false"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn identifiers_from_documents() {
        let user = UserIdentifiers::from_document(&json!({
            "userName": "Alice@Example.test",
            "externalId": "00u1",
            "emails": [
                {"value": "alice@example.test", "primary": true},
                {"value": "a.l@example.test"},
                {"type": "work"},
                {"value": 7},
            ],
        }));
        assert_eq!(user.user_names, ["Alice@Example.test"], "userName");
        assert_eq!(user.external_ids, ["00u1"], "externalId");
        assert_eq!(
            user.emails,
            ["alice@example.test", "a.l@example.test"],
            "only string email values"
        );
        let empty = UserIdentifiers::from_document(&json!({"userName": "", "emails": "x"}));
        assert_eq!(
            empty,
            UserIdentifiers::default(),
            "empty or malformed values are left out"
        );
    }

    #[test]
    fn merge_keeps_old_and_new() {
        let mut after = UserIdentifiers::from_document(&json!({
            "userName": "new@example.test",
            "emails": [{"value": "new@example.test"}],
        }));
        after.merge(UserIdentifiers::from_document(&json!({
            "userName": "old@example.test",
            "externalId": "00u1",
            "emails": [{"value": "old@example.test"}, {"value": "new@example.test"}],
        })));
        assert_eq!(
            after.user_names,
            ["new@example.test", "old@example.test"],
            "userName of both versions"
        );
        assert_eq!(
            after.external_ids,
            ["00u1"],
            "externalId of the old version"
        );
        assert_eq!(
            after.emails,
            ["new@example.test", "old@example.test"],
            "emails of both versions, once each"
        );
    }

    #[test]
    fn deactivation_forms() {
        let cases = [
            (json!({"active": false}), true),
            (json!({"active": "False"}), true),
            (json!({"active": true}), false),
            (json!({"active": "True"}), false),
            (json!({}), false),
            (json!({"active": null}), false),
        ];
        for (document, expected) in cases {
            assert_eq!(is_deactivated(&document), expected, "document {document}");
        }
    }
}
