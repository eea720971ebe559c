//! The SCIM protocol handler: bearer-token authentication, routing of
//! `/scim/v2/...` requests and the mapping of every failure to a SCIM error
//! response. It takes a plain request and returns a plain response, so it
//! runs without Pingora in tests.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use serde_json::Value;

use super::discovery;
use super::error::ScimError;
use super::resources::Resources;
use super::revoke::RevocationRetries;
use crate::directory::{Directory, DirectoryError, ResourceKind};
use crate::tokens;

/// Media type of every SCIM response body.
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

/// A SCIM request, with the path below the SCIM base (`/Users/123`).
pub struct ScimRequest<'a> {
    /// The HTTP method.
    pub method: &'a Method,
    /// The path below the SCIM base, starting with `/` or empty.
    pub path: &'a str,
    /// The raw query string.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The request body.
    pub body: &'a [u8],
}

/// A SCIM response: status, extra headers and an optional JSON body.
#[derive(Debug)]
pub struct ScimResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// Headers such as `Location`, `ETag` and `WWW-Authenticate`.
    pub headers: Vec<(HeaderName, String)>,
    /// The body, served as `application/scim+json`.
    pub body: Option<Bytes>,
}

impl ScimResponse {
    /// Builds a response with a JSON body.
    pub fn json(status: StatusCode, body: &Value) -> Self {
        ScimResponse {
            status,
            headers: Vec::new(),
            body: Some(Bytes::from(body.to_string())),
        }
    }

    /// Builds a response without a body.
    pub fn empty(status: StatusCode) -> Self {
        ScimResponse {
            status,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Builds the response for a SCIM error.
    pub fn error(error: &ScimError) -> Self {
        let status =
            StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = Self::json(status, &error.to_json());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response = response.with_header(http::header::RETRY_AFTER, "2");
        }
        if status == StatusCode::UNAUTHORIZED {
            response = response.with_header(
                http::header::WWW_AUTHENTICATE,
                "Bearer realm=\"portcullis SCIM\"",
            );
        }
        response
    }

    /// Adds a header.
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Settings of the SCIM endpoint.
#[derive(Debug, Clone)]
pub struct ScimSettings {
    /// External base URL without a trailing slash, for `meta.location`.
    pub base_url: String,
    /// Status of a successful Group PATCH: 204 or 200.
    pub group_patch_status: StatusCode,
    /// Largest accepted request body, in bytes. The proxy stops reading a
    /// body at this size, and the handler rejects a larger one with 413.
    pub max_body_bytes: usize,
}

/// The SCIM endpoint over a directory.
pub struct ScimService {
    directory: Arc<dyn Directory>,
    resources: Resources,
    settings: ScimSettings,
}

impl ScimService {
    /// Creates the endpoint.
    pub fn new(directory: Arc<dyn Directory>, settings: ScimSettings) -> Self {
        let resources = Resources::new(directory.clone(), settings.clone());
        ScimService {
            directory,
            resources,
            settings,
        }
    }

    /// Ends the sessions of every User that a request deactivates
    /// (`active: false` by PUT or PATCH) or deletes, through `revocations`.
    /// The caller runs [`RevocationRetries::run`] for the retries.
    pub fn with_session_revocations(mut self, revocations: Arc<RevocationRetries>) -> Self {
        self.resources.set_session_revocations(revocations);
        self
    }

    /// Returns the settings.
    pub fn settings(&self) -> &ScimSettings {
        &self.settings
    }

    /// Authenticates and answers one request.
    pub async fn handle(&self, request: &ScimRequest<'_>) -> ScimResponse {
        if let Err(response) = self.check_token(request.headers).await {
            return response;
        }
        self.handle_authenticated(request).await
    }

    /// Checks the bearer token; the error is the response to send. The
    /// proxy calls this before reading the body, so an unauthenticated
    /// client cannot make portcullis buffer one.
    pub async fn check_token(&self, headers: &HeaderMap) -> Result<(), ScimResponse> {
        self.authenticate(headers)
            .await
            .map_err(|error| ScimResponse::error(&error))
    }

    /// Answers a request whose token [`ScimService::check_token`] accepted.
    pub async fn handle_authenticated(&self, request: &ScimRequest<'_>) -> ScimResponse {
        let limit = self.settings.max_body_bytes;
        if request.body.len() > limit {
            return ScimResponse::error(&ScimError::new(
                413,
                None,
                format!("the request body is larger than the limit of {limit} bytes"),
            ));
        }
        match self.route(request).await {
            Ok(response) => response,
            Err(error) => ScimResponse::error(&error),
        }
    }

    /// Checks `Authorization: Bearer <token>` against the stored tokens.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<(), ScimError> {
        let Some(presented) = bearer_token(headers) else {
            return Err(unauthorized(
                "a valid API token is required as Authorization: Bearer <token>",
            ));
        };
        match tokens::verify(self.directory.as_ref(), presented).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(unauthorized(
                "the API token is unknown, revoked or malformed",
            )),
            Err(error) => Err(directory_error(error)),
        }
    }

    async fn route(&self, request: &ScimRequest<'_>) -> Result<ScimResponse, ScimError> {
        let segments: Vec<&str> = request
            .path
            .split('/')
            .filter(|segment| !segment.is_empty())
            .collect();
        let method = request.method;
        let base = &self.settings.base_url;
        match segments.as_slice() {
            [endpoint] if eq(endpoint, "ServiceProviderConfig") => {
                only_get(method)?;
                Ok(ok(&discovery::service_provider_config(
                    base,
                    self.settings.max_body_bytes,
                )))
            }
            [endpoint] if eq(endpoint, "ResourceTypes") => {
                only_get(method)?;
                Ok(ok(&discovery::resource_types(base)))
            }
            [endpoint, id] if eq(endpoint, "ResourceTypes") => {
                only_get(method)?;
                discovery::resource_type(id, base)
                    .map(|found| ok(&found))
                    .ok_or_else(|| ScimError::not_found(format!("no resource type {id:?}")))
            }
            [endpoint] if eq(endpoint, "Schemas") => {
                only_get(method)?;
                Ok(ok(&discovery::schemas(base)))
            }
            [endpoint, id] if eq(endpoint, "Schemas") => {
                only_get(method)?;
                discovery::schema(id, base)
                    .map(|found| ok(&found))
                    .ok_or_else(|| ScimError::not_found(format!("no schema {id:?}")))
            }
            [".search"] if method == Method::POST => self.resources.search_all(request).await,
            [".search"] => Err(method_not_allowed(method)),
            [endpoint, ..] if eq(endpoint, "Bulk") || eq(endpoint, "Me") => Err(ScimError::new(
                501,
                None,
                format!("/{endpoint} is not supported by this server"),
            )),
            [endpoint, rest @ ..] => match resource_kind(endpoint) {
                Some(kind) => self.route_resource(kind, rest, request).await,
                None => Err(ScimError::not_found(format!(
                    "no SCIM endpoint /{endpoint}"
                ))),
            },
            [] => Err(ScimError::not_found(
                "no SCIM endpoint here; use /Users, /Groups or the discovery endpoints",
            )),
        }
    }

    async fn route_resource(
        &self,
        kind: ResourceKind,
        rest: &[&str],
        request: &ScimRequest<'_>,
    ) -> Result<ScimResponse, ScimError> {
        let resources = &self.resources;
        match (request.method, rest) {
            (&Method::GET, []) => resources.list_from_query(kind, request.query).await,
            (&Method::POST, []) => resources.create(kind, request).await,
            (&Method::POST, [search]) if *search == ".search" => {
                resources.list_from_search(kind, request).await
            }
            (&Method::GET, [id]) => resources.get(kind, id, request.query).await,
            (&Method::PUT, [id]) if *id != ".search" => resources.replace(kind, id, request).await,
            (&Method::PATCH, [id]) if *id != ".search" => resources.patch(kind, id, request).await,
            (&Method::DELETE, [id]) if *id != ".search" => {
                resources.delete(kind, id, request.headers).await
            }
            (_, [] | [_]) => Err(method_not_allowed(request.method)),
            _ => Err(ScimError::not_found("no such SCIM resource path")),
        }
    }
}

fn eq(segment: &str, name: &str) -> bool {
    segment.eq_ignore_ascii_case(name)
}

fn resource_kind(endpoint: &str) -> Option<ResourceKind> {
    if eq(endpoint, "Users") {
        Some(ResourceKind::User)
    } else if eq(endpoint, "Groups") {
        Some(ResourceKind::Group)
    } else {
        None
    }
}

fn ok(body: &Value) -> ScimResponse {
    ScimResponse::json(StatusCode::OK, body)
}

fn only_get(method: &Method) -> Result<(), ScimError> {
    if method == Method::GET {
        Ok(())
    } else {
        Err(method_not_allowed(method))
    }
}

fn method_not_allowed(method: &Method) -> ScimError {
    ScimError::new(
        405,
        None,
        format!("{method} is not allowed on this SCIM endpoint"),
    )
}

fn unauthorized(detail: &str) -> ScimError {
    ScimError::new(401, None, detail)
}

/// Reads the token of a single `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next()?.to_str().ok()?;
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// Maps a directory failure to the SCIM error the client gets. Internal
/// failures are logged here, once, and their detail is not shown.
pub fn directory_error(error: DirectoryError) -> ScimError {
    match error {
        DirectoryError::NotFound => ScimError::not_found("resource not found"),
        DirectoryError::Conflict { attribute } => {
            ScimError::uniqueness(format!("another resource already has this {attribute}"))
        }
        DirectoryError::VersionMismatch => ScimError::new(
            412,
            None,
            "the resource was modified since the version given in If-Match",
        ),
        DirectoryError::InvalidMember(id) => {
            ScimError::invalid_value(format!("group member {id:?} is not an existing user id"))
        }
        DirectoryError::InvalidDocument(detail) => ScimError::invalid_value(detail),
        DirectoryError::Unavailable(detail) => {
            tracing::error!(error = %detail, "directory unavailable");
            ScimError::new(503, None, "the directory is unavailable; retry shortly")
        }
        DirectoryError::Internal(detail) => {
            tracing::error!(error = %detail, "directory error");
            ScimError::new(500, None, "internal error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_parsing() {
        let cases: [(&[&str], Option<&str>); 8] = [
            (&["Bearer abc"], Some("abc")),
            (&["bearer abc"], Some("abc")),
            (&["BEARER  abc "], Some("abc")),
            (&["Basic abc"], None),
            (&["Bearer"], None),
            (&["Bearer "], None),
            (&["Bearer a b"], None),
            (&["Bearer a", "Bearer b"], None),
        ];
        for (values, expected) in cases {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(
                    http::header::AUTHORIZATION,
                    value.parse().expect("valid header value"),
                );
            }
            assert_eq!(bearer_token(&headers), expected, "headers {values:?}");
        }
    }
}
