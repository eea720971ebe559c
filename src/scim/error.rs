//! The SCIM error type shared by the filter parser, the PATCH engine and the
//! protocol handler, and its RFC 7644 §3.12 JSON body.

use std::fmt;

use serde_json::{json, Value};

/// The `schemas` URN of a SCIM error response body.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `scimType` keywords of RFC 7644 §3.12, which refine a 400 (and, for
/// `uniqueness`, a 409) response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScimType {
    /// The filter syntax is invalid, or the attribute and comparison
    /// combination is not supported.
    InvalidFilter,
    /// The filter yields more results than the server will process.
    TooMany,
    /// One or more unique attribute values are already in use.
    Uniqueness,
    /// The request tries to change an immutable or read-only attribute.
    Mutability,
    /// The request body structure is invalid or does not follow the schema.
    InvalidSyntax,
    /// The PATCH `path` is invalid or malformed.
    InvalidPath,
    /// The PATCH `path` selects no attribute value to operate on.
    NoTarget,
    /// A value is missing, of the wrong type or otherwise not acceptable.
    InvalidValue,
    /// The protocol version in the request is not supported.
    InvalidVers,
    /// The request puts sensitive data, such as a password, in the URL.
    Sensitive,
}

impl ScimType {
    /// Returns the keyword as it appears in the `scimType` member.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }
}

impl fmt::Display for ScimType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SCIM error: the HTTP status, the optional `scimType` and a `detail`
/// message that is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {}: {detail}", scim_type.map_or("error", ScimType::as_str))]
pub struct ScimError {
    /// The HTTP status code of the response.
    pub status: u16,
    /// The RFC 7644 §3.12 error keyword, if one applies.
    pub scim_type: Option<ScimType>,
    /// A human-readable message for the client. It never contains secrets.
    pub detail: String,
}

impl ScimError {
    /// Creates an error with the given status, keyword and message.
    pub fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    /// Creates a 400 Bad Request error with a `scimType`.
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        ScimError::new(400, Some(scim_type), detail)
    }

    /// Creates a 400 `invalidFilter` error.
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        ScimError::bad_request(ScimType::InvalidFilter, detail)
    }

    /// Creates a 400 `invalidPath` error.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        ScimError::bad_request(ScimType::InvalidPath, detail)
    }

    /// Creates a 400 `invalidValue` error.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        ScimError::bad_request(ScimType::InvalidValue, detail)
    }

    /// Creates a 400 `invalidSyntax` error.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        ScimError::bad_request(ScimType::InvalidSyntax, detail)
    }

    /// Creates a 400 `noTarget` error.
    pub fn no_target(detail: impl Into<String>) -> Self {
        ScimError::bad_request(ScimType::NoTarget, detail)
    }

    /// Creates a 400 `mutability` error.
    pub fn mutability(detail: impl Into<String>) -> Self {
        ScimError::bad_request(ScimType::Mutability, detail)
    }

    /// Creates a 409 Conflict `uniqueness` error.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        ScimError::new(409, Some(ScimType::Uniqueness), detail)
    }

    /// Creates a 404 Not Found error without a `scimType`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        ScimError::new(404, None, detail)
    }

    /// Renders the RFC 7644 §3.12 error body. `status` is a JSON string, as
    /// the RFC specifies and Okta's SCIM test suite checks.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(scim_type), Some(object)) = (self.scim_type, body.as_object_mut()) {
            object.insert("scimType".to_owned(), Value::from(scim_type.as_str()));
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scim_type_keywords() {
        let cases = [
            (ScimType::InvalidFilter, "invalidFilter"),
            (ScimType::TooMany, "tooMany"),
            (ScimType::Uniqueness, "uniqueness"),
            (ScimType::Mutability, "mutability"),
            (ScimType::InvalidSyntax, "invalidSyntax"),
            (ScimType::InvalidPath, "invalidPath"),
            (ScimType::NoTarget, "noTarget"),
            (ScimType::InvalidValue, "invalidValue"),
            (ScimType::InvalidVers, "invalidVers"),
            (ScimType::Sensitive, "sensitive"),
        ];
        for (scim_type, keyword) in cases {
            assert_eq!(scim_type.as_str(), keyword, "keyword of {scim_type:?}");
            assert_eq!(scim_type.to_string(), keyword, "display of {scim_type:?}");
        }
    }

    #[test]
    fn error_body_with_scim_type() {
        let error = ScimError::invalid_filter("unknown operator \"xx\"");
        let expected = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": "400",
            "scimType": "invalidFilter",
            "detail": "unknown operator \"xx\"",
        });
        assert_eq!(error.to_json(), expected, "invalidFilter body");
    }

    #[test]
    fn error_body_without_scim_type() {
        let body = ScimError::not_found("User 42 not found").to_json();
        assert_eq!(body["status"], json!("404"), "status is a string");
        assert!(body.get("scimType").is_none(), "no scimType on a 404");
        assert_eq!(body["detail"], json!("User 42 not found"), "detail");
    }

    #[test]
    fn constructors_set_status_and_type() {
        let cases = [
            (
                ScimError::invalid_path("p"),
                400,
                Some(ScimType::InvalidPath),
            ),
            (
                ScimError::invalid_value("v"),
                400,
                Some(ScimType::InvalidValue),
            ),
            (
                ScimError::invalid_syntax("s"),
                400,
                Some(ScimType::InvalidSyntax),
            ),
            (ScimError::no_target("t"), 400, Some(ScimType::NoTarget)),
            (ScimError::mutability("m"), 400, Some(ScimType::Mutability)),
            (ScimError::uniqueness("u"), 409, Some(ScimType::Uniqueness)),
            (ScimError::not_found("n"), 404, None),
        ];
        for (error, status, scim_type) in cases {
            assert_eq!(error.status, status, "status of {error:?}");
            assert_eq!(error.scim_type, scim_type, "scimType of {error:?}");
        }
    }

    #[test]
    fn display_names_status_and_type() {
        let error = ScimError::no_target("no email of type work");
        assert_eq!(
            error.to_string(),
            "400 noTarget: no email of type work",
            "display"
        );
    }
}
