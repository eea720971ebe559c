//! The login flow: `/oauth2/start`, the redirect to the provider and
//! `/oauth2/callback`.
//!
//! Flow state lives in the session store, keyed by `state` and sealed with
//! it, so any number of logins can run at once in several tabs and cookies
//! never grow. Each flow records the hash of the browser's binding cookie. A
//! callback whose browser does not present that cookie is rejected, so a
//! `state` (and code) replayed from another browser fails.
//!
//! Because each start stores a flow, starts are limited per client address
//! ([`rate_limit`]), and the flows are records that a full in-memory store
//! evicts first.

pub mod rate_limit;

use std::net::IpAddr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderMap, StatusCode};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{redirect, Auth, BINDING_COOKIE_PATH};
use crate::session::store::LogLimiter;
use crate::session::{unix_now, Session};
use crate::web::cookies::{self, CookieAttributes};
use crate::web::LocalResponse;

/// Namespace of login flows in the session store.
const LOGIN_PREFIX: &str = "portcullis:login:";

/// A login must come back from the provider within this time.
const LOGIN_FLOW_TTL: Duration = Duration::from_secs(600);

/// Length in bytes of a binding cookie value before encoding.
const BINDING_LEN: usize = 32;

/// Path that starts a login; `rd` names the page to land on.
pub const START_PATH: &str = "/oauth2/start";

/// What is kept between the redirect to the provider and the callback.
#[derive(Serialize, Deserialize)]
struct LoginFlow {
    /// Hex SHA-256 of the binding cookie of the browser that started the flow.
    binding_hash: String,
    pkce_verifier: String,
    nonce: String,
    /// Validated same-origin path to land on after login.
    return_to: String,
}

/// The parameters of a callback request.
#[derive(Default)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl Auth {
    /// Starts a login that ends at `target` (validated here): stores the flow
    /// and redirects the browser to the provider. A `client` address that
    /// started too many logins gets 429 instead, as JSON for an
    /// `api_client`.
    pub async fn start_login(
        &self,
        headers: &HeaderMap,
        target: &str,
        client: Option<IpAddr>,
        api_client: bool,
    ) -> LocalResponse {
        let return_to = redirect::safe_return_target(target, &self.public_url);
        if let Err(wait) = self.login_limit.admit(client) {
            return login_rate_limited(client, wait, &return_to, api_client);
        }
        let (binding, new_binding) = self.binding_cookie(headers);
        if !self.provider.is_reachable().await {
            // Redirecting would leave the browser on its own connection
            // error page, with no way back to the dashboard.
            return provider_unavailable_page();
        }
        let request = match self.provider.authorization_request().await {
            Ok(request) => request,
            Err(error) => {
                tracing::error!(error = %error, "cannot start login");
                return provider_unavailable_page();
            }
        };
        let flow = LoginFlow {
            binding_hash: hex_sha256(binding.as_bytes()),
            pkce_verifier: request.pkce_verifier,
            nonce: request.nonce,
            return_to,
        };
        if let Err(error) = self
            .sessions
            .put_sealed_evictable(
                LOGIN_PREFIX,
                request.state.as_bytes(),
                &flow,
                LOGIN_FLOW_TTL,
            )
            .await
        {
            tracing::error!(error = %error, "cannot store login flow");
            return store_unavailable_page();
        }
        let response = LocalResponse::redirect(request.url.as_str());
        match new_binding {
            Some(cookie) => response.with_cookie(cookie),
            None => response,
        }
    }

    /// Completes a login at `/oauth2/callback`: checks the flow and the
    /// binding cookie, exchanges the code, verifies the ID token, creates a
    /// fresh session and redirects to the page first requested.
    pub async fn finish_login(&self, headers: &HeaderMap, query: Option<&str>) -> LocalResponse {
        let Some(params) = parse_callback_query(query.unwrap_or_default()) else {
            let page = sign_in_again_page(
                StatusCode::BAD_REQUEST,
                "The sign-in response is malformed: a parameter appears more than once.",
            );
            return login_error("invalid_callback", page);
        };
        let Some(state) = params.state else {
            let page = sign_in_again_page(
                StatusCode::BAD_REQUEST,
                "The sign-in response has no state parameter.",
            );
            return login_error("invalid_callback", page);
        };
        // The flow is read first and taken only once the binding cookie
        // matches, so a callback replayed from another browser cannot use up
        // the login of the browser that started it.
        let flow = match self.read_flow(&state, false).await {
            Ok(flow) => flow,
            Err(page) => return login_error("session_store", page),
        };
        let Some(flow) = flow else {
            return login_error("unknown_state", self.unknown_state(headers).await);
        };
        if !self.binding_matches(headers, &flow.binding_hash) {
            tracing::warn!("login callback from a browser that did not start the login");
            let page = sign_in_again_page(
                StatusCode::BAD_REQUEST,
                "This sign-in was started in another browser or its cookie was lost. Start again from this browser.",
            );
            return login_error("binding_mismatch", page);
        }
        let flow = match self.read_flow(&state, true).await {
            Ok(Some(flow)) => flow,
            Ok(None) => return login_error("unknown_state", self.unknown_state(headers).await),
            Err(page) => return login_error("session_store", page),
        };
        if let Some(error) = params.error {
            let detail = params.error_description.unwrap_or_default();
            // Both values come from the query string, so they are logged in
            // their escaped Debug form: a newline cannot forge a log line.
            tracing::info!(error = ?error, detail = ?detail, "provider returned an error to the callback");
            record_login("denied", "provider");
            return sign_in_again_page(
                StatusCode::FORBIDDEN,
                &format!("The identity provider did not complete the sign-in ({error})."),
            );
        }
        let Some(code) = params.code else {
            let page = sign_in_again_page(
                StatusCode::BAD_REQUEST,
                "The sign-in response has no authorization code.",
            );
            return login_error("invalid_callback", page);
        };
        self.create_session(headers, code, flow).await
    }

    async fn create_session(
        &self,
        headers: &HeaderMap,
        code: String,
        flow: LoginFlow,
    ) -> LocalResponse {
        let login = match self
            .provider
            .complete_login(code, flow.pkce_verifier, &flow.nonce)
            .await
        {
            Ok(login) => login,
            Err(error) => return login_error("token_exchange", login_failed_page(&error)),
        };
        let directory_groups = match self.admit(&login.identity).await {
            Ok(groups) => groups,
            Err(page) if page.status == StatusCode::FORBIDDEN => {
                record_login("denied", "policy");
                return page;
            }
            Err(page) => return login_error("directory", page),
        };
        // Any session the browser already holds ends here, so a session id
        // planted before login is never carried over.
        self.delete_presented_sessions(headers).await;
        let now = unix_now();
        let session = Session {
            identity: login.identity,
            id_token: login.id_token,
            access_token: login.access_token,
            access_token_expires_at: login.access_token_expires_at,
            refresh_not_before: None,
            refresh_token: login.refresh_token,
            provider_session_id: login.provider_session_id,
            directory_groups,
            created_at: now,
            expires_at: now + self.sessions.ttl().as_secs(),
        };
        let id = match self.sessions.create(&session).await {
            Ok(id) => id,
            Err(error) => {
                tracing::error!(error = %error, "cannot store new session");
                return login_error("session_store", store_unavailable_page());
            }
        };
        tracing::info!(user = %session.identity.subject, "login succeeded");
        record_login("success", "none");
        crate::metrics::metrics().sessions_created.inc();
        LocalResponse::redirect(&flow.return_to).with_cookie(self.session_cookie(&id))
    }

    /// Reads the flow of `state`, removing it when `take` is set. A store
    /// failure becomes the page to show.
    async fn read_flow(&self, state: &str, take: bool) -> Result<Option<LoginFlow>, LocalResponse> {
        let read = if take {
            self.sessions
                .take_sealed(LOGIN_PREFIX, state.as_bytes())
                .await
        } else {
            self.sessions
                .get_sealed(LOGIN_PREFIX, state.as_bytes())
                .await
        };
        read.map_err(|error| {
            tracing::error!(error = %error, "cannot read login flow");
            store_unavailable_page()
        })
    }

    /// A callback whose `state` is unknown or expired. A browser that is
    /// already signed in (a second tab finished first, or the back button)
    /// goes to the start page; anyone else gets a page with one link, never an
    /// automatic redirect to the provider, which could loop.
    async fn unknown_state(&self, headers: &HeaderMap) -> LocalResponse {
        if let Ok(Some(_)) = self.authenticate(headers).await {
            return LocalResponse::redirect(redirect::DEFAULT_TARGET);
        }
        sign_in_again_page(
            StatusCode::BAD_REQUEST,
            "This sign-in link has expired or was already used.",
        )
    }

    /// Returns the browser's binding value, and a `Set-Cookie` when a new one
    /// had to be made. An existing well-formed value is kept, so logins
    /// started in several tabs share it.
    fn binding_cookie(&self, headers: &HeaderMap) -> (String, Option<String>) {
        let existing = cookies::cookie_values(headers, &self.cookies.binding_name)
            .into_iter()
            .find(|value| is_binding_value(value));
        if let Some(value) = existing {
            return (value.to_owned(), None);
        }
        let mut bytes = [0u8; BINDING_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let value = URL_SAFE_NO_PAD.encode(bytes);
        let cookie = cookies::set_cookie(
            &self.cookies.binding_name,
            &value,
            &CookieAttributes {
                path: BINDING_COOKIE_PATH,
                max_age: None,
                secure: self.cookies.secure,
            },
        );
        (value, Some(cookie))
    }

    fn binding_matches(&self, headers: &HeaderMap, expected_hash: &str) -> bool {
        cookies::cookie_values(headers, &self.cookies.binding_name)
            .into_iter()
            .any(|value| {
                hex_sha256(value.as_bytes())
                    .as_bytes()
                    .ct_eq(expected_hash.as_bytes())
                    .into()
            })
    }

    async fn delete_presented_sessions(&self, headers: &HeaderMap) {
        for value in cookies::cookie_values(headers, &self.cookies.session_name) {
            if let Some(decoded) = self.codec().decode(value) {
                if let Err(error) = self.sessions.delete(decoded.session_id()).await {
                    tracing::warn!(error = %error, "cannot delete previous session at login");
                }
            }
        }
    }
}

/// Counts a finished login. Reasons are a fixed set: `none` on success,
/// `provider` and `policy` for denials, and `invalid_callback`,
/// `unknown_state`, `binding_mismatch`, `token_exchange`, `directory` and
/// `session_store` for errors.
fn record_login(outcome: &'static str, reason: &'static str) {
    crate::metrics::metrics()
        .logins
        .with_label_values(&[outcome, reason])
        .inc();
}

/// Counts a login that failed for `reason` and returns its `page`.
fn login_error(reason: &'static str, page: LocalResponse) -> LocalResponse {
    record_login("error", reason);
    page
}

fn is_binding_value(value: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(value)
        .is_ok_and(|bytes| bytes.len() == BINDING_LEN)
}

/// Parses the callback query; `None` when a parameter repeats, because two
/// values for `state` or `code` cannot be told apart safely.
fn parse_callback_query(query: &str) -> Option<CallbackParams> {
    let mut params = CallbackParams::default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match name.as_ref() {
            "code" => &mut params.code,
            "state" => &mut params.state,
            "error" => &mut params.error,
            "error_description" => &mut params.error_description,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return None;
        }
    }
    Some(params)
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sign_in_again_page(status: StatusCode, message: &str) -> LocalResponse {
    LocalResponse::page(
        status,
        "Sign-in failed",
        message,
        Some((START_PATH, "Sign in again")),
    )
}

fn login_failed_page(error: &super::ProviderError) -> LocalResponse {
    use super::ProviderError as E;
    match error {
        E::EmailNotVerified => {
            tracing::info!(error = %error, "login rejected");
            sign_in_again_page(
                StatusCode::FORBIDDEN,
                "Your identity provider has not verified your email address.",
            )
        }
        E::CodeRejected(_) => {
            tracing::info!(error = %error, "login rejected");
            sign_in_again_page(
                StatusCode::BAD_REQUEST,
                "This sign-in link has expired or was already used.",
            )
        }
        E::InvalidIdToken(_) | E::MissingIdToken => {
            tracing::warn!(error = %error, "login rejected");
            sign_in_again_page(
                StatusCode::UNAUTHORIZED,
                "The identity provider's response could not be verified.",
            )
        }
        E::TokenRequest(_)
        | E::Discovery(_)
        | E::Timeout(_)
        | E::RefreshRejected(_)
        | E::InvalidSignature(_) => {
            tracing::error!(error = %error, "login failed");
            sign_in_again_page(
                StatusCode::BAD_GATEWAY,
                "The identity provider could not complete the sign-in. Try again in a moment.",
            )
        }
    }
}

/// Builds the 429 for a client address whose login starts exceed
/// `session.login_starts_per_minute`: a page with a link back to
/// `return_to`, or JSON for an API client. Counts and logs it.
fn login_rate_limited(
    client: Option<IpAddr>,
    wait: Duration,
    return_to: &str,
    api_client: bool,
) -> LocalResponse {
    // A flood repeats this line for every request, so one line per second,
    // with the count of the others, is enough.
    static LOG_LIMIT: LogLimiter = LogLimiter::new(Duration::from_secs(1));
    if let Some(suppressed) = LOG_LIMIT.admit() {
        tracing::warn!(
            client = client.map(|ip| ip.to_string()),
            suppressed,
            "too many logins started from one client address; answered 429"
        );
    }
    crate::metrics::metrics().login_starts_rate_limited.inc();
    let seconds = rate_limit::retry_after_seconds(wait);
    let message = format!(
        "Too many sign-ins were started from your network in a short time. Try again in {seconds} s."
    );
    let response = if api_client {
        LocalResponse::json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "login_rate_limited",
            &message,
        )
    } else {
        LocalResponse::page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-ins",
            &message,
            Some((return_to, "Try again")),
        )
    };
    response.with_header(http::header::RETRY_AFTER, seconds.to_string())
}

/// Page shown when the provider cannot be reached to start a login.
pub fn provider_unavailable_page() -> LocalResponse {
    LocalResponse::page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable",
        "The identity provider cannot be reached right now. Try again in a moment.",
        Some((START_PATH, "Try again")),
    )
    .with_header(http::header::RETRY_AFTER, "5")
}

/// Page shown when the session store cannot be reached.
pub fn store_unavailable_page() -> LocalResponse {
    LocalResponse::page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "Sessions cannot be checked right now. Your session is kept; reload the page in a moment.",
        None,
    )
    .with_header(http::header::RETRY_AFTER, "2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_query_cases() {
        let parsed = parse_callback_query("code=c&state=s&iss=x").expect("valid query");
        assert_eq!(parsed.code.as_deref(), Some("c"));
        assert_eq!(parsed.state.as_deref(), Some("s"));
        assert!(parse_callback_query("state=a&state=b").is_none());
        assert!(parse_callback_query("code=a&code=b&state=s").is_none());
        let error = parse_callback_query("error=access_denied&error_description=no&state=s")
            .expect("valid query");
        assert_eq!(error.error.as_deref(), Some("access_denied"));
        assert!(parse_callback_query("")
            .expect("empty query")
            .state
            .is_none());
    }

    #[test]
    fn binding_values() {
        assert!(is_binding_value(
            &URL_SAFE_NO_PAD.encode([1u8; BINDING_LEN])
        ));
        assert!(!is_binding_value(&URL_SAFE_NO_PAD.encode([1u8; 8])));
        assert!(!is_binding_value("not base64!"));
    }
}
