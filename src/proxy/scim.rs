//! Hands `/scim/v2` requests to the SCIM handler: reads the body within the
//! configured limit and turns the SCIM response into a local response.

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

use crate::scim::error::ScimError;
use crate::scim::handler::{ScimRequest, ScimResponse, ScimService, SCIM_CONTENT_TYPE};
use crate::web::LocalResponse;

/// Handles one SCIM request. `service` is `None` when SCIM is disabled.
pub async fn serve_scim(
    session: &mut Session,
    service: Option<&ScimService>,
    subpath: &str,
) -> LocalResponse {
    let Some(service) = service else {
        return to_local(ScimResponse::error(&ScimError::not_found(
            "SCIM is disabled on this server",
        )));
    };
    if let Err(response) = service.check_token(&session.req_header().headers).await {
        // An unread body would be taken for the next request, so the
        // connection ends after the response. A request without a body
        // keeps it.
        if !session.is_body_done() {
            session.set_keepalive(None);
        }
        return to_local(response);
    }
    let body = match read_body(session, service.settings().max_body_bytes).await {
        Ok(body) => body,
        Err(error) => {
            // The rest of an oversized body is not read, so the connection
            // cannot carry another request.
            session.set_keepalive(None);
            return to_local(ScimResponse::error(&error));
        }
    };
    let request = session.req_header();
    let scim_request = ScimRequest {
        method: &request.method,
        path: subpath,
        query: request.uri.query(),
        headers: &request.headers,
        body: &body,
    };
    to_local(service.handle_authenticated(&scim_request).await)
}

/// Reads the whole request body, up to `limit` bytes.
async fn read_body(session: &mut Session, limit: usize) -> Result<Bytes, ScimError> {
    let too_large = || {
        ScimError::new(
            413,
            None,
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    };
    let headers = &session.req_header().headers;
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let expects_continue = headers
        .get(http::header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session
            .write_continue_response()
            .await
            .map_err(|e| read_failed(&e))?;
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = session
        .read_request_body()
        .await
        .map_err(|e| read_failed(&e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn read_failed(error: &pingora::Error) -> ScimError {
    tracing::debug!(error = %error, "cannot read SCIM request body");
    ScimError::invalid_syntax("the request body could not be read")
}

/// Answers a request under `/scim/v2` whose path was rejected, in SCIM
/// JSON like every other SCIM error.
pub fn rejected_path(error: &crate::web::path::PathError) -> LocalResponse {
    error_response(http::StatusCode::BAD_REQUEST, &error.to_string())
}

/// Builds a SCIM error without a `scimType`, for a failure found outside
/// the SCIM handler (a request head too large, a failed proxy phase), so a
/// SCIM client gets SCIM JSON whatever its `Accept`.
pub fn error_response(status: http::StatusCode, detail: &str) -> LocalResponse {
    to_local(ScimResponse::error(&ScimError::new(
        status.as_u16(),
        None,
        detail,
    )))
}

fn to_local(response: ScimResponse) -> LocalResponse {
    let has_body = response.body.is_some();
    LocalResponse {
        status: response.status,
        headers: response.headers,
        content_type: has_body.then_some(SCIM_CONTENT_TYPE),
        body: response.body.unwrap_or_default(),
    }
}
