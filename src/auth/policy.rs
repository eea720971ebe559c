//! The authorization policy of `[access]`: which signed-in identities may
//! use the dashboard, which paths are public, and which groups the
//! dashboard receives.
//!
//! Every check here reads only the identity and groups already in the
//! session, so the per-request check costs no directory query. The
//! directory is consulted once, at login (see [`super::provisioning`]).

use crate::config::{AccessConfig, GroupsSource, MatchClaim};

/// Reasons that an identity may not use the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// `allowed_email_domains` is set and the ID token has no `email`.
    #[error("the ID token has no email claim, which access.allowed_email_domains requires")]
    MissingEmail,
    /// The `email` claim is not `local@domain` with exactly one `@`.
    #[error("the email claim is not a valid address")]
    InvalidEmail,
    /// The email's domain is not in `allowed_email_domains`.
    #[error("the email domain is not in access.allowed_email_domains")]
    EmailDomainNotAllowed,
    /// None of the user's groups is in `allowed_groups`.
    #[error("no group of the user is in access.allowed_groups")]
    NotInAllowedGroup,
    /// `require_provisioned_user` is on and the directory has no such user.
    #[error("the user is not provisioned in the directory")]
    NotProvisioned,
    /// `require_provisioned_user` is on and the directory user is
    /// `active: false`.
    #[error("the user is deactivated in the directory")]
    Deactivated,
    /// The login's `sub` is the `externalId` of more than one directory
    /// User, so the directory cannot tell which one signs in.
    #[error("the login matches several directory users by externalId")]
    AmbiguousUser,
}

impl Denial {
    /// Returns the sentence shown to the person who was denied.
    pub fn user_message(&self) -> &'static str {
        match self {
            Denial::MissingEmail => {
                "Your identity provider did not send an email address, which this dashboard requires."
            }
            Denial::InvalidEmail => {
                "Your account's email address is not a valid address, so this dashboard cannot admit it."
            }
            Denial::EmailDomainNotAllowed => {
                "Accounts of your email domain may not use this dashboard."
            }
            Denial::NotInAllowedGroup => {
                "Your account is not in a group that may use this dashboard. Ask your administrator for access."
            }
            Denial::NotProvisioned => {
                "This account is not provisioned for this dashboard. Ask your administrator to assign it to the dashboard's application."
            }
            Denial::Deactivated => {
                "This account is not provisioned for this dashboard: it has been deactivated. Ask your administrator to reactivate it."
            }
            Denial::AmbiguousUser => {
                "This account matches more than one provisioned user, so it cannot be admitted. Ask your administrator to remove the duplicate."
            }
        }
    }
}

/// The `X-Forwarded-Groups` value of one user, cut to the configured size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupsHeader {
    /// The groups that fit, in their original order.
    pub kept: Vec<String>,
    /// How many groups were left out because they did not fit.
    pub dropped: usize,
}

/// The `[access]` settings, checked and normalised.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    require_provisioned_user: bool,
    match_claim: MatchClaim,
    allowed_groups: Vec<String>,
    /// Lower-cased.
    allowed_email_domains: Vec<String>,
    public_paths: Vec<String>,
    groups_source: GroupsSource,
    max_groups_header_bytes: usize,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        AccessPolicy::from_config(&AccessConfig::default())
    }
}

impl AccessPolicy {
    /// Builds the policy from a configuration that `config::load` has
    /// validated.
    pub fn from_config(config: &AccessConfig) -> Self {
        AccessPolicy {
            require_provisioned_user: config.require_provisioned_user,
            match_claim: config.provisioned_match_claim,
            allowed_groups: config.allowed_groups.clone(),
            allowed_email_domains: config
                .allowed_email_domains
                .iter()
                .map(|domain| domain.to_lowercase())
                .collect(),
            public_paths: config.public_paths.clone(),
            groups_source: config.groups_source,
            max_groups_header_bytes: config.max_groups_header_bytes,
        }
    }

    /// Tells whether a login must match an active directory user.
    pub fn require_provisioned_user(&self) -> bool {
        self.require_provisioned_user
    }

    /// Returns the ID token claim compared with a directory user's
    /// `userName`.
    pub fn match_claim(&self) -> MatchClaim {
        self.match_claim
    }

    /// Returns where the forwarded groups come from.
    pub fn groups_source(&self) -> GroupsSource {
        self.groups_source
    }

    /// Tells whether a login has to look the user up in the directory.
    pub fn needs_directory(&self) -> bool {
        self.require_provisioned_user || self.groups_source != GroupsSource::Token
    }

    /// Tells whether the normalised `path` is public: equal to an exact
    /// entry, or below an entry that ends with `/`.
    pub fn is_public(&self, path: &str) -> bool {
        self.public_paths
            .iter()
            .any(|entry| public_path_matches(entry, path))
    }

    /// Checks an identity's email and groups (the groups the dashboard
    /// receives, before the header cap) against the policy.
    pub fn check(&self, email: Option<&str>, groups: &[String]) -> Result<(), Denial> {
        self.check_email(email)?;
        self.check_groups(groups)
    }

    /// Checks the `email` claim against `allowed_email_domains`; any email,
    /// or none, passes when that list is empty.
    pub fn check_email(&self, email: Option<&str>) -> Result<(), Denial> {
        if self.allowed_email_domains.is_empty() {
            return Ok(());
        }
        let email = email.ok_or(Denial::MissingEmail)?;
        let domain = email_domain(email).ok_or(Denial::InvalidEmail)?;
        let domain = domain.to_lowercase();
        if self.allowed_email_domains.contains(&domain) {
            Ok(())
        } else {
            Err(Denial::EmailDomainNotAllowed)
        }
    }

    /// Checks that one of `groups` is in `allowed_groups`, comparing exactly;
    /// everyone passes when that list is empty.
    pub fn check_groups(&self, groups: &[String]) -> Result<(), Denial> {
        if self.allowed_groups.is_empty() || groups.iter().any(|g| self.allowed_groups.contains(g))
        {
            Ok(())
        } else {
            Err(Denial::NotInAllowedGroup)
        }
    }

    /// Returns the groups the dashboard receives: the ID token's, the
    /// directory's, or both (token groups first, duplicates once).
    pub fn effective_groups(&self, token: &[String], directory: Option<&[String]>) -> Vec<String> {
        let directory = directory.unwrap_or_default();
        match self.groups_source {
            GroupsSource::Token => token.to_vec(),
            GroupsSource::Scim => directory.to_vec(),
            GroupsSource::Both => {
                let mut groups = token.to_vec();
                for group in directory {
                    if !groups.contains(group) {
                        groups.push(group.clone());
                    }
                }
                groups
            }
        }
    }

    /// Cuts `groups` so that their comma-separated list fits in
    /// `max_groups_header_bytes`.
    pub fn groups_header(&self, groups: &[String]) -> GroupsHeader {
        cap_groups(groups, self.max_groups_header_bytes)
    }
}

/// Returns the domain of `email` when it has the form `local@domain` with
/// exactly one `@` and both parts non-empty. Anything else is rejected,
/// because parsers disagree about an address with two `@`: a check of the
/// text after the last `@` would admit `a@evil.com@corp.com`.
pub fn email_domain(email: &str) -> Option<&str> {
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    valid.then_some(domain)
}

/// Tells whether normalised `path` matches one `public_paths` entry. An
/// entry ending in `/` matches itself and every path below it, so a match
/// always ends at a segment boundary. Any other entry matches only itself.
pub fn public_path_matches(entry: &str, path: &str) -> bool {
    if entry.ends_with('/') {
        path.starts_with(entry)
    } else {
        path == entry
    }
}

/// Keeps every group, in order, whose addition keeps the comma-separated
/// list within `max_bytes`, and counts the groups left out. Whole groups are
/// dropped, so the header never ends in a cut name.
pub fn cap_groups(groups: &[String], max_bytes: usize) -> GroupsHeader {
    let mut kept = Vec::new();
    let mut used = 0;
    let mut dropped = 0;
    for group in groups {
        let separator = usize::from(!kept.is_empty());
        if used + separator + group.len() <= max_bytes {
            used += separator + group.len();
            kept.push(group.clone());
        } else {
            dropped += 1;
        }
    }
    GroupsHeader { kept, dropped }
}

#[cfg(test)]
mod tests;
