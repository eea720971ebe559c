//! How the directory governs access. At the callback, a login is checked
//! against the policy: provisioned users only, allowed groups and email
//! domains. Each request's session is checked again from its own data. The
//! [`SessionRevoker`] here ends the sessions of users that SCIM deactivates
//! or deletes.

use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;

use super::policy::{AccessPolicy, Denial};
use super::Auth;
use crate::config::MatchClaim;
use crate::directory::{Directory, DirectoryError, Lookup, ResourceKind, StoredResource};
use crate::scim::revoke::{is_deactivated, RevocationError, SessionRevoker, UserIdentifiers};
use crate::session::{Identity, RevocationKey, Session, Sessions};
use crate::web::LocalResponse;

/// The access policy and the directory it consults at login.
#[derive(Clone, Default)]
pub struct AccessControl {
    /// The `[access]` policy.
    pub policy: AccessPolicy,
    /// The directory of provisioned users; `None` when no policy needs it.
    pub directory: Option<Arc<dyn Directory>>,
}

/// The identity a request forwards to the dashboard.
#[derive(Debug, Clone)]
pub struct ForwardedIdentity {
    /// The identity, with `groups` replaced by the groups the dashboard
    /// receives, already cut to the header size.
    pub identity: Identity,
    /// The value of `X-Forwarded-Groups-Source`.
    pub groups_source: &'static str,
}

impl Auth {
    /// Decides at the callback whether the verified `identity` may sign in.
    /// Returns the user's directory groups to keep in the session (`None`
    /// when the policy does not use them), or the page to show instead of
    /// creating a session.
    pub(super) async fn admit(
        &self,
        identity: &Identity,
    ) -> Result<Option<Vec<String>>, LocalResponse> {
        let policy = &self.access.policy;
        policy
            .check_email(identity.email.as_deref())
            .map_err(|denial| denied_at_login(identity, &denial))?;
        let directory_groups = if policy.needs_directory() {
            self.directory_groups(identity).await?
        } else {
            None
        };
        let groups = policy.effective_groups(&identity.groups, directory_groups.as_deref());
        policy
            .check_groups(&groups)
            .map_err(|denial| denied_at_login(identity, &denial))?;
        let header = policy.groups_header(&groups);
        if header.dropped > 0 {
            tracing::warn!(
                user = %identity.subject,
                dropped_groups = header.dropped,
                kept_groups = header.kept.len(),
                "X-Forwarded-Groups exceeds access.max_groups_header_bytes; groups that do not fit are left out"
            );
        }
        Ok(directory_groups)
    }

    /// Looks the identity up in the directory and returns its group names,
    /// enforcing `require_provisioned_user`.
    async fn directory_groups(
        &self,
        identity: &Identity,
    ) -> Result<Option<Vec<String>>, LocalResponse> {
        let policy = &self.access.policy;
        let Some(directory) = &self.access.directory else {
            return Ok(None);
        };
        let user = match find_user(directory.as_ref(), identity, policy.match_claim()).await {
            Ok(user) => user,
            Err(FindUserError::Ambiguous(users)) => {
                tracing::warn!(
                    user = %identity.subject,
                    users,
                    "login denied: its sub is the externalId of several directory users"
                );
                return Err(access_denied_page(&Denial::AmbiguousUser));
            }
            Err(FindUserError::Directory(error)) => {
                tracing::error!(error = %error, user = %identity.subject, "cannot check the directory at login");
                return Err(directory_unavailable_page());
            }
        };
        if policy.require_provisioned_user() {
            let denial = match &user {
                None => Some(Denial::NotProvisioned),
                Some(found) if is_deactivated(&found.document) => Some(Denial::Deactivated),
                Some(_) => None,
            };
            if let Some(denial) = denial {
                return Err(denied_at_login(identity, &denial));
            }
        }
        let Some(active) = user.filter(|found| !is_deactivated(&found.document)) else {
            return Ok(Some(Vec::new()));
        };
        match directory.groups_of_user(&active.id).await {
            Ok(groups) => Ok(Some(groups.into_iter().map(|(_, name)| name).collect())),
            Err(error) => {
                tracing::error!(error = %error, user = %identity.subject, "cannot read the user's groups at login");
                Err(directory_unavailable_page())
            }
        }
    }

    /// Checks a loaded session against the policy and builds what the
    /// dashboard receives. Reads only the session, never the directory.
    pub fn authorize(&self, session: &Session) -> Result<ForwardedIdentity, Denial> {
        let policy = &self.access.policy;
        let identity = &session.identity;
        let groups = policy.effective_groups(&identity.groups, session.directory_groups.as_deref());
        policy.check(identity.email.as_deref(), &groups)?;
        let header = policy.groups_header(&groups);
        if header.dropped > 0 {
            tracing::debug!(user = %identity.subject, dropped_groups = header.dropped, "groups left out of X-Forwarded-Groups");
        }
        Ok(ForwardedIdentity {
            identity: Identity {
                groups: header.kept,
                ..identity.clone()
            },
            groups_source: policy.groups_source().as_str(),
        })
    }

    /// Returns the access policy.
    pub fn access_policy(&self) -> &AccessPolicy {
        &self.access.policy
    }
}

/// The failures of [`find_user`].
#[derive(Debug, thiserror::Error)]
enum FindUserError {
    /// The directory could not be read.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// This many Users have the login's `sub` as `externalId`. The
    /// directory rejects such duplicates, but data written before that
    /// rule may still hold them.
    #[error("{0} users have the login's sub as externalId")]
    Ambiguous(u64),
}

/// Finds the directory User of `identity`: `userName` equal to the
/// configured claim (ignoring case), or `externalId` equal to `sub`. An
/// active match wins over a deactivated one. Several Users with `sub` as
/// `externalId` are an error rather than a guess.
async fn find_user(
    directory: &dyn Directory,
    identity: &Identity,
    claim: MatchClaim,
) -> Result<Option<StoredResource>, FindUserError> {
    let claim_value = match claim {
        MatchClaim::Email => identity.email.clone(),
        MatchClaim::PreferredUsername => identity.preferred_username.clone(),
        MatchClaim::Sub => Some(identity.subject.clone()),
    };
    let mut lookups = Vec::new();
    if let Some(value) = claim_value.filter(|value| !value.is_empty()) {
        lookups.push(Lookup::UserName(value));
    }
    lookups.push(Lookup::ExternalId(identity.subject.clone()));
    let mut candidates = Vec::new();
    for lookup in &lookups {
        let listing = directory
            .list(ResourceKind::User, Some(lookup), None)
            .await?;
        if matches!(lookup, Lookup::ExternalId(_)) && listing.total > 1 {
            return Err(FindUserError::Ambiguous(listing.total));
        }
        candidates.extend(listing.resources);
    }
    let active = candidates
        .iter()
        .position(|user| !is_deactivated(&user.document));
    let chosen = active.unwrap_or(0);
    Ok((chosen < candidates.len()).then(|| candidates.swap_remove(chosen)))
}

/// Logs a denied login and builds its 403 page. A denial is the user's
/// situation, not a fault, so it is logged at info.
fn denied_at_login(identity: &Identity, denial: &Denial) -> LocalResponse {
    tracing::info!(user = %identity.subject, reason = %denial, "login denied by the access policy");
    access_denied_page(denial)
}

/// Builds the 403 page for a browser whose identity the policy denies.
pub fn access_denied_page(denial: &Denial) -> LocalResponse {
    LocalResponse::page(
        StatusCode::FORBIDDEN,
        "Access denied",
        denial.user_message(),
        None,
    )
}

/// Builds the 403 JSON error for an API call whose identity the policy
/// denies.
pub fn access_denied_json(denial: &Denial) -> LocalResponse {
    LocalResponse::json_error(StatusCode::FORBIDDEN, "forbidden", denial.user_message())
}

fn directory_unavailable_page() -> LocalResponse {
    LocalResponse::page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable",
        "Your access cannot be checked right now. Try again in a moment.",
        Some((super::login::START_PATH, "Try again")),
    )
    .with_header(http::header::RETRY_AFTER, "5")
}

/// Ends the sessions of Users that SCIM deactivates or deletes.
pub struct SessionRevocation {
    sessions: Sessions,
    match_claim: MatchClaim,
}

impl SessionRevocation {
    /// Revokes through `sessions`. A User's `userName` is read as the
    /// `match_claim` of its sessions, as at login.
    pub fn new(sessions: Sessions, match_claim: MatchClaim) -> Self {
        SessionRevocation {
            sessions,
            match_claim,
        }
    }
}

#[async_trait]
impl SessionRevoker for SessionRevocation {
    async fn revoke_user(&self, user: &UserIdentifiers) -> Result<usize, RevocationError> {
        crate::metrics::metrics()
            .revocations
            .with_label_values(&["deprovisioning"])
            .inc();
        let keys = revocation_keys(user, self.match_claim);
        // Every key's cached copies go first: after a store error the
        // remaining keys are not tried, because each would wait for the
        // store's timeout, and a retry repeats the whole revocation.
        for key in &keys {
            self.sessions.forget_cached(key);
        }
        let mut ended = 0;
        for key in keys {
            ended += self
                .sessions
                .revoke(key)
                .await
                .map_err(|error| RevocationError(error.to_string()))?;
        }
        Ok(ended)
    }
}

/// Returns the index keys of a User's sessions: `userName` as the
/// configured claim, every email as `Email`, `externalId` as `Subject`.
pub fn revocation_keys(user: &UserIdentifiers, match_claim: MatchClaim) -> Vec<RevocationKey> {
    let by_user_name = |name: &String| match match_claim {
        MatchClaim::Email => RevocationKey::Email(name.clone()),
        MatchClaim::PreferredUsername => RevocationKey::PreferredUsername(name.clone()),
        MatchClaim::Sub => RevocationKey::Subject(name.clone()),
    };
    let mut keys: Vec<RevocationKey> = Vec::new();
    let candidates = user
        .user_names
        .iter()
        .map(by_user_name)
        .chain(user.emails.iter().cloned().map(RevocationKey::Email))
        .chain(
            user.external_ids
                .iter()
                .cloned()
                .map(RevocationKey::Subject),
        );
    for key in candidates {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

#[cfg(test)]
mod tests;
