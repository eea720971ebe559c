//! Validation of the `[access]` section.

use super::{AccessConfig, ConfigError};
use crate::proxy::route::{classify, Route};
use crate::web::path::normalise_path;

/// Checks the lists of `[access]`, naming the key and the entry at fault.
pub(super) fn validate_access(access: &AccessConfig) -> Result<(), ConfigError> {
    if access.allowed_groups.iter().any(|group| group.is_empty()) {
        return Err(ConfigError::invalid(
            "access.allowed_groups",
            "must not contain an empty group name",
        ));
    }
    for domain in &access.allowed_email_domains {
        validate_email_domain(domain)?;
    }
    for path in &access.public_paths {
        validate_public_path(path)?;
    }
    if access.max_groups_header_bytes == 0 {
        return Err(ConfigError::invalid(
            "access.max_groups_header_bytes",
            "must be at least 1",
        ));
    }
    Ok(())
}

fn validate_email_domain(domain: &str) -> Result<(), ConfigError> {
    let valid = !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain
            .chars()
            .any(|c| c == '@' || c.is_whitespace() || c.is_control());
    if valid {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "access.allowed_email_domains",
            format!("invalid domain {domain:?}; write the domain alone, such as \"example.com\""),
        ))
    }
}

/// Accepts a path in the normalised form that requests are matched in, so
/// an entry can never silently match nothing. Rejects paths that portcullis
/// handles itself, and `/`, which would make everything public.
fn validate_public_path(path: &str) -> Result<(), ConfigError> {
    const KEY: &str = "access.public_paths";
    let normalised = normalise_path(path)
        .map_err(|error| ConfigError::invalid(KEY, format!("invalid path {path:?}: {error}")))?;
    if normalised != path {
        return Err(ConfigError::invalid(
            KEY,
            format!("{path:?} is not in normalised form; write {normalised:?}"),
        ));
    }
    if path.contains(['?', '#']) {
        return Err(ConfigError::invalid(
            KEY,
            format!("{path:?} has a query or fragment; public paths match the path alone"),
        ));
    }
    if path == "/" {
        return Err(ConfigError::invalid(
            KEY,
            "\"/\" would make every path public",
        ));
    }
    if classify(path) != Route::Upstream {
        return Err(ConfigError::invalid(
            KEY,
            format!("{path:?} is a portcullis endpoint (/oauth2 or /scim/v2) and cannot be public"),
        ));
    }
    Ok(())
}
