//! Hands `POST /oauth2/backchannel_logout` to the logout handler: checks the
//! method and reads the small form body within its limit.

use bytes::BytesMut;
use http::{Method, StatusCode};
use pingora::proxy::Session;

use crate::auth::backchannel::MAX_BODY_BYTES;
use crate::auth::Auth;
use crate::web::LocalResponse;

/// Serves one back-channel logout request.
pub async fn serve(session: &mut Session, auth: &Auth) -> LocalResponse {
    if session.req_header().method != Method::POST {
        return LocalResponse::json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "the back-channel logout endpoint accepts only POST",
        )
        .with_header(http::header::ALLOW, "POST");
    }
    match read_body(session).await {
        Some(body) => auth.backchannel_logout(&body).await,
        None => {
            // The rest of the body is not read, so the connection cannot
            // carry another request.
            session.set_keepalive(None);
            LocalResponse::json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({
                    "error": "invalid_request",
                    "error_description": format!("the body is unreadable or larger than {MAX_BODY_BYTES} bytes"),
                }),
            )
        }
    }
}

/// Reads the whole body; `None` when it cannot be read or exceeds
/// [`MAX_BODY_BYTES`].
async fn read_body(session: &mut Session) -> Option<BytesMut> {
    let mut body = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_BODY_BYTES => {
                body.extend_from_slice(&chunk);
            }
            Ok(Some(_)) => return None,
            Ok(None) => return Some(body),
            Err(error) => {
                tracing::debug!(error = %error, "cannot read back-channel logout body");
                return None;
            }
        }
    }
}
